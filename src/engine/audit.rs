//! Audit devices as stored objects: enable, disable, list, and reload at unseal. Writing entries is
//! the API layers' job (they know the request shapes); see `crate::audit`.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::barrier;
use super::error::{EngineError, EngineResult};
use super::{Engine, Memory};
use crate::audit::{AuditDevice, AuditError, OpenMode};
use crate::crypto::{Key32, Keyring};
use crate::storage::{ReadTx, WriteTx};

/// The name of the sealed audit device table (one record, as Vault's `core/audit`).
pub(super) const AUDIT_DOC: &str = "audit_devices";

/// A stored audit device; `salt` is sealed under the keyring on its own too (schema 1 kept it so).
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
pub(super) struct AuditRow {
    pub name: String,
    pub kind: String,
    pub description: String,
    pub options: String,
    pub salt: Vec<u8>,
}

fn read_rows(tx: &dyn ReadTx, keyring: &Keyring) -> EngineResult<(Vec<u8>, Vec<AuditRow>)> {
    barrier::require_doc(tx, keyring, AUDIT_DOC)
}

/// Changes the device table with `change`, stores it, and returns it as committed.
fn change_rows(
    tx: &dyn WriteTx,
    keyring: &Keyring,
    change: impl FnOnce(&mut Vec<AuditRow>),
) -> EngineResult<Vec<AuditRow>> {
    let (old, mut rows) = read_rows(tx, keyring)?;
    change(&mut rows);
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    barrier::write_doc(tx, keyring, AUDIT_DOC, Some(&old), &rows)?;
    Ok(rows)
}

fn salt_aad(name: &str) -> Vec<u8> {
    format!("kvseal/audit-salt/{name}").into_bytes()
}

fn seal_salt(keyring: &Keyring, name: &str, salt: &Key32) -> EngineResult<Vec<u8>> {
    let (key_id, sealed) = keyring.seal(salt.as_bytes(), &salt_aad(name))?;
    let mut out = key_id.to_be_bytes().to_vec();
    out.extend_from_slice(&sealed.nonce);
    out.extend_from_slice(&sealed.ciphertext);
    Ok(out)
}

fn open_salt(keyring: &Keyring, name: &str, blob: &[u8]) -> EngineResult<Key32> {
    if blob.len() < 28 {
        return Err(EngineError::Corrupt(format!(
            "the salt of audit device {name:?}"
        )));
    }
    let key_id = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]);
    let plain = keyring.open(key_id, &blob[4..28], &blob[28..], &salt_aad(name))?;
    Key32::from_slice(&plain).ok_or(EngineError::Crypto)
}

/// The devices of `rows`, opened (their salts under `keyring`, their files for appending).
fn open_devices(keyring: &Keyring, rows: Vec<AuditRow>) -> EngineResult<Vec<Arc<AuditDevice>>> {
    let mut devices = Vec::new();
    for r in rows {
        let salt = open_salt(keyring, &r.name, &r.salt)?;
        let options: Map<String, Value> = serde_json::from_str(&r.options).unwrap_or_default();
        match AuditDevice::open(
            &r.name,
            &r.kind,
            &r.description,
            options,
            salt,
            OpenMode::Restore,
        ) {
            Ok(d) => devices.push(Arc::new(d)),
            Err(e) => {
                // A device that cannot be restored would let requests go unaudited: refuse to
                // serve (sealed) rather than run without it.
                return Err(EngineError::Storage(format!(
                    "audit device {}: {e}",
                    r.name
                )));
            }
        }
    }
    Ok(devices)
}

/// The devices stored in `tx` (a store, or a snapshot being restored), opened with `keyring`.
pub(super) fn load_devices(
    tx: &dyn ReadTx,
    keyring: &Keyring,
) -> EngineResult<Arc<Vec<Arc<AuditDevice>>>> {
    let (_, rows) = read_rows(tx, keyring)?;
    Ok(Arc::new(open_devices(keyring, rows)?))
}

/// Replaces the devices in memory with those of the committed `rows`.
fn install_devices(mem: &Memory, rows: Vec<AuditRow>) -> EngineResult<()> {
    let keyring = mem
        .keys
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .keyring
        .clone()
        .ok_or(EngineError::Sealed)?;
    let devices = open_devices(&keyring, rows)?;
    *mem.audit.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(devices);
    Ok(())
}

impl Engine {
    /// The enabled devices (empty while sealed).
    pub fn audit_devices(&self) -> Arc<Vec<Arc<AuditDevice>>> {
        self.mem
            .audit
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Sets `[audit] allowed_dir`, the only directory under which `sys/audit` may create file
    /// devices (none: only `stdout` and `discard`). Set once at start-up.
    pub fn set_audit_allowed_dir(&self, dir: Option<std::path::PathBuf>) {
        *self
            .audit_allowed_dir
            .write()
            .unwrap_or_else(|p| p.into_inner()) = dir;
    }

    /// The stored devices, opened with `keyring` (at unseal).
    pub(super) fn load_audit(&self, keyring: &Keyring) -> EngineResult<Arc<Vec<Arc<AuditDevice>>>> {
        self.store.read(|tx| load_devices(tx, keyring))
    }

    /// Enables a device at `name` (`sys/audit/<name>`).
    pub async fn enable_audit(
        &self,
        name: &str,
        kind: &str,
        description: &str,
        options: Map<String, Value>,
    ) -> EngineResult<()> {
        let guard = self.admin_lock().await;
        let keyring = self.keyring()?;
        if name.is_empty() || name.contains('/') {
            return Err(EngineError::invalid("invalid audit device path"));
        }
        if self.audit_devices().iter().any(|d| d.name == name) {
            return Err(EngineError::invalid(format!(
                "path already in use: {name}/"
            )));
        }
        let salt = Key32::random();
        let allowed_dir = self
            .audit_allowed_dir
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mode = OpenMode::Enable {
            allowed_dir: allowed_dir.as_deref(),
        };
        AuditDevice::open(name, kind, description, options.clone(), salt.clone(), mode).map_err(
            |e| match e {
                AuditError::Invalid(m) => EngineError::Invalid(m),
                other => EngineError::Invalid(other.to_string()),
            },
        )?;
        let row = AuditRow {
            name: name.to_string(),
            kind: kind.to_string(),
            description: description.to_string(),
            options: serde_json::to_string(&options).unwrap_or_else(|_| "{}".into()),
            salt: seal_salt(&keyring, name, &salt)?,
        };
        self.admin_write(
            guard,
            move |tx| change_rows(tx, &keyring, |rows| rows.push(row.clone())),
            install_devices,
        )
        .await
    }

    /// Disables a device; a missing one is not an error.
    pub async fn disable_audit(&self, name: &str) -> EngineResult<()> {
        let guard = self.admin_lock().await;
        let keyring = self.keyring()?;
        let n = name.to_string();
        self.admin_write(
            guard,
            move |tx| change_rows(tx, &keyring, |rows| rows.retain(|r| r.name != n)),
            install_devices,
        )
        .await
    }
}
