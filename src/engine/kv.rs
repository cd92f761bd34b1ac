//! The KV v2 rules: versions, check-and-set, pruning, delete-after, soft delete, destroy, metadata.
//! Every rule follows `hashicorp/vault-plugin-secrets-kv` (see `../shared/spec/vault-kv2-wire.md` §1).
//! Each write runs as one job on the storage writer thread, so a read-modify-write (check-and-set) is
//! atomic.

use std::collections::BTreeMap;
use std::sync::Arc;

use rusqlite::Connection;
use serde_json::{Map, Value};

use super::clock::Nanos;
use super::error::{EngineError, EngineResult};
use super::model::{
    ListPage, MetaUpdate, Mount, PatchOutcome, PutOutcome, PutSecret, SecretMeta, SecretRecord,
    VersionMeta, VersionOp, VersionRead, VersionState, WriteOutcome,
};
use super::path::{FolderPath, SecretPath};
use super::Engine;
use crate::crypto::{version_aad, Keyring};
use crate::storage::rows;

/// The number of versions kept: `max(key, mount)`, or 10 when both are 0. (Vault's docs say the key
/// setting overrides the mount's; its code has used the larger of the two since 2018, and clients see
/// the code.)
pub fn effective_max_versions(key: u32, mount: u32) -> u64 {
    match key.max(mount) {
        0 => 10,
        n => n as u64,
    }
}

/// When a version written (or undeleted) at `now` is scheduled for deletion: the smaller non-zero of
/// the mount's and the key's `delete_version_after`; never when the mount's is negative (disabled).
pub fn deletion_time(now: Nanos, mount_dva: i64, key_dva: i64) -> Option<Nanos> {
    let secs = match (mount_dva, key_dva) {
        (m, _) if m < 0 => return None,
        (0, 0) => return None,
        (0, k) => k,
        (m, 0) => m,
        (m, k) => m.min(k),
    };
    if secs <= 0 {
        return None;
    }
    Some(now.saturating_add(secs.saturating_mul(super::clock::NANOS_PER_SEC)))
}

/// Checks `cas` against the current version, and `cas_required` (from the mount or the key).
fn check_cas(cas: Option<i64>, current: u64, required: bool) -> EngineResult<()> {
    match cas {
        Some(c) if c < 0 || c as u64 != current => Err(EngineError::CasMismatch),
        Some(_) => Ok(()),
        None if required => Err(EngineError::CasRequired),
        None => Ok(()),
    }
}

/// Validates custom metadata as Vault does: at most 64 keys, key length 1..=128, value length
/// 1..=512, printable characters only.
pub fn validate_custom_metadata(m: &BTreeMap<String, String>) -> EngineResult<()> {
    let mut problems = Vec::new();
    if m.len() > 64 {
        problems.push(format!(
            "payload must contain at most 64 keys, provided {}",
            m.len()
        ));
    }
    for (k, v) in m {
        let klen = k.chars().count();
        if klen == 0 || klen > 128 {
            problems.push(format!(
                "length of key {k:?} is {klen} but must be 0 < len(key) <= 128"
            ));
        }
        if k.chars().any(|c| c.is_control()) {
            problems.push(format!(
                "key {k:?} (value {v:?}) contains unprintable characters"
            ));
        }
        let vlen = v.chars().count();
        if vlen == 0 || vlen > 512 {
            problems.push(format!(
                "length of value for key {k:?} is {vlen} but must be 0 < len(value) <= 512"
            ));
        }
        if v.chars().any(|c| c.is_control()) {
            problems.push(format!(
                "value for key {k:?} contains unprintable characters"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(EngineError::invalid(format!(
            "custom_metadata validation failed: {}",
            problems.join("; ")
        )))
    }
}

fn mount_in(c: &Connection, id: i64) -> EngineResult<Mount> {
    rows::get_mount(c, id)?.ok_or(EngineError::NotFound)
}

pub(super) fn decrypt(
    keyring: &Keyring,
    c: &Connection,
    mount_id: i64,
    path: &str,
    version: u64,
) -> EngineResult<Map<String, Value>> {
    let (key_id, nonce, ct) =
        rows::get_blob(c, mount_id, path, version)?.ok_or(EngineError::NotFound)?;
    let plain = keyring.open(key_id, &nonce, &ct, &version_aad(mount_id, path, version))?;
    serde_json::from_slice(&plain).map_err(|_| EngineError::Crypto)
}

/// Adds a version on the writer thread: the shared core of write and patch.
fn add_version(
    c: &Connection,
    keyring: &Keyring,
    mount: &Mount,
    path: &str,
    meta: Option<SecretMeta>,
    data: &Map<String, Value>,
    now: Nanos,
) -> EngineResult<WriteOutcome> {
    let mut meta = meta.unwrap_or_else(|| SecretMeta::new(now));
    meta.current_version += 1;
    meta.updated = now;
    let version = VersionMeta {
        version: meta.current_version,
        created: now,
        deletion_time: deletion_time(
            now,
            mount.kv.delete_version_after,
            meta.delete_version_after,
        ),
        destroyed: false,
    };
    let plain = zeroize::Zeroizing::new(
        serde_json::to_vec(data).map_err(|e| EngineError::invalid(e.to_string()))?,
    );
    let (key_id, sealed) = keyring.seal(&plain, &version_aad(mount.id, path, version.version))?;
    rows::insert_version(
        c,
        mount.id,
        path,
        &version,
        &(key_id, sealed.nonce, sealed.ciphertext),
    )?;
    // Prune on write only (lowering max_versions takes effect at the next write, as in Vault).
    let max = effective_max_versions(meta.max_versions, mount.kv.max_versions);
    if meta.current_version - meta.oldest_version >= max {
        let to_delete = meta.current_version - max;
        rows::prune_versions(c, mount.id, path, to_delete)?;
        meta.oldest_version = to_delete + 1;
    }
    rows::put_meta(c, mount.id, path, &meta)?;
    Ok(WriteOutcome {
        version,
        custom_metadata: meta.custom_metadata,
    })
}

/// Applies an RFC 7396 merge patch to custom metadata (a `null` value removes a key).
fn merge_custom(
    current: Option<BTreeMap<String, String>>,
    patch: &Map<String, Value>,
) -> EngineResult<BTreeMap<String, String>> {
    let mut out = current.unwrap_or_default();
    for (k, v) in patch {
        match v {
            Value::Null => {
                out.remove(k);
            }
            other => {
                out.insert(k.clone(), weak_string(other)?);
            }
        }
    }
    Ok(out)
}

/// Vault decodes `custom_metadata` values weakly into strings.
pub fn weak_string(v: &Value) -> EngineResult<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(if *b { "1" } else { "0" }.to_string()),
        _ => Err(EngineError::invalid(
            "custom_metadata values must be strings",
        )),
    }
}

impl Engine {
    fn kv_mount_check(&self, mount: &Mount) -> EngineResult<Arc<Keyring>> {
        let k = self.keyring()?;
        if mount.kv_version != 2 {
            return Err(EngineError::invalid(
                "kvseal serves only the KV version 2 API; upgrade this mount with `vault kv enable-versioning`",
            ));
        }
        Ok(k)
    }

    /// Reads key metadata and its versions (one snapshot).
    pub fn read_metadata(&self, mount: &Mount, path: &SecretPath) -> EngineResult<SecretRecord> {
        self.kv_mount_check(mount)?;
        self.store.read(|c| {
            let meta = rows::get_meta(c, mount.id, path.as_str())?.ok_or(EngineError::NotFound)?;
            let versions = rows::list_versions(c, mount.id, path.as_str())?;
            Ok(SecretRecord { meta, versions })
        })
    }

    /// Reads one version (`None` or 0 = current). A missing key or version is `NotFound`; a deactivated
    /// or destroyed one is `Gone` with its metadata.
    pub fn read_version(
        &self,
        mount: &Mount,
        path: &SecretPath,
        version: Option<u64>,
    ) -> EngineResult<VersionRead> {
        let keyring = self.kv_mount_check(mount)?;
        let now = self.clock.now();
        self.store.read(|c| {
            let meta = rows::get_meta(c, mount.id, path.as_str())?.ok_or(EngineError::NotFound)?;
            let v = match version {
                None | Some(0) => meta.current_version,
                Some(v) => v,
            };
            let vm = rows::get_version_meta(c, mount.id, path.as_str(), v)?
                .ok_or(EngineError::NotFound)?;
            if vm.state(now) != VersionState::Active {
                return Ok(VersionRead::Gone {
                    version: vm,
                    custom_metadata: meta.custom_metadata,
                });
            }
            let data = decrypt(&keyring, c, mount.id, path.as_str(), v)?;
            Ok(VersionRead::Data {
                data,
                version: vm,
                custom_metadata: meta.custom_metadata,
            })
        })
    }

    /// Writes a new version, enforcing check-and-set (Vault's `POST data/<path>`).
    pub async fn write_secret(
        &self,
        mount: &Mount,
        path: &SecretPath,
        data: Map<String, Value>,
        cas: Option<i64>,
    ) -> EngineResult<WriteOutcome> {
        let out = self
            .put_secret(
                mount,
                path,
                PutSecret {
                    meta: None,
                    data: Some(data),
                    cas,
                    ..Default::default()
                },
            )
            .await?;
        out.version
            .map(|version| WriteOutcome {
                version,
                custom_metadata: out.meta.custom_metadata,
            })
            .ok_or_else(|| EngineError::Storage("a write produced no version".into()))
    }

    /// Changes metadata and/or writes a new version in one atomic step (OKMS creates a secret with its
    /// metadata and first version at once, and its updates change both together). The metadata change
    /// applies first, so a request that turns `cas_required` off can write without `cas` (okms-cli's
    /// test 014 relies on this).
    pub async fn put_secret(
        &self,
        mount: &Mount,
        path: &SecretPath,
        req: PutSecret,
    ) -> EngineResult<PutOutcome> {
        let keyring = self.kv_mount_check(mount)?;
        if let Some(update) = &req.meta {
            validate_meta_update(update)?;
        }
        let (mount_id, path, now) = (mount.id, path.clone(), self.clock.now());
        self.store
            .write(move |c| {
                let mount = mount_in(c, mount_id)?;
                let existing = rows::get_meta(c, mount_id, path.as_str())?;
                if req.create_only && existing.is_some() {
                    return Err(EngineError::AlreadyExists);
                }
                if req.update_only && existing.is_none() {
                    return Err(EngineError::NotFound);
                }
                let mut meta = existing.unwrap_or_else(|| SecretMeta::new(now));
                if let Some(update) = req.meta {
                    apply_meta_update(&mut meta, update);
                }
                let version = match &req.data {
                    Some(data) => {
                        // Check-and-set does not apply to a create (OKMS `POST /v2/secret` with
                        // `casRequired: true` in its metadata creates version 1 without `cas`).
                        if !req.create_only {
                            check_cas(
                                req.cas,
                                meta.current_version,
                                mount.kv.cas_required || meta.cas_required,
                            )?;
                        }
                        let out =
                            add_version(c, &keyring, &mount, path.as_str(), Some(meta), data, now)?;
                        meta = rows::get_meta(c, mount_id, path.as_str())?
                            .ok_or(EngineError::NotFound)?;
                        Some(out.version)
                    }
                    None => {
                        rows::put_meta(c, mount_id, path.as_str(), &meta)?;
                        None
                    }
                };
                Ok(PutOutcome { meta, version })
            })
            .await
    }

    /// Applies a JSON merge patch to the current version's data and writes the result as a new version.
    pub async fn patch_secret(
        &self,
        mount: &Mount,
        path: &SecretPath,
        patch: Value,
        cas: Option<i64>,
    ) -> EngineResult<PatchOutcome> {
        let keyring = self.kv_mount_check(mount)?;
        let (mount_id, path, now) = (mount.id, path.clone(), self.clock.now());
        self.store
            .write(move |c| {
                let mount = mount_in(c, mount_id)?;
                let Some(meta) = rows::get_meta(c, mount_id, path.as_str())? else {
                    return Ok(PatchOutcome::Missing);
                };
                check_cas(
                    cas,
                    meta.current_version,
                    mount.kv.cas_required || meta.cas_required,
                )?;
                let versions = rows::list_versions(c, mount_id, path.as_str())?;
                let Some(current) = versions
                    .into_iter()
                    .find(|v| v.version == meta.current_version)
                else {
                    return Ok(PatchOutcome::Missing);
                };
                if current.state(now) != VersionState::Active {
                    return Ok(PatchOutcome::Gone {
                        version: current,
                        custom_metadata: meta.custom_metadata,
                    });
                }
                let data = decrypt(&keyring, c, mount_id, path.as_str(), current.version)?;
                let mut doc = Value::Object(data);
                json_patch::merge(&mut doc, &patch);
                let Value::Object(merged) = doc else {
                    return Err(EngineError::invalid(
                        "the patched data is not a JSON object",
                    ));
                };
                add_version(c, &keyring, &mount, path.as_str(), Some(meta), &merged, now)
                    .map(PatchOutcome::Written)
            })
            .await
    }

    /// Soft-deletes the latest version (`DELETE data/<path>`). A missing key, or a latest version
    /// already deleted or destroyed, is a no-op.
    pub async fn delete_latest(&self, mount: &Mount, path: &SecretPath) -> EngineResult<()> {
        self.kv_mount_check(mount)?;
        let (mount_id, path, now) = (mount.id, path.clone(), self.clock.now());
        self.store
            .write(move |c| {
                let Some(meta) = rows::get_meta(c, mount_id, path.as_str())? else {
                    return Ok(());
                };
                let versions = rows::list_versions(c, mount_id, path.as_str())?;
                if let Some(v) = versions.iter().find(|v| v.version == meta.current_version) {
                    if v.state(now) == VersionState::Active {
                        rows::set_deletion(c, mount_id, path.as_str(), v.version, Some(now))?;
                    }
                }
                Ok(())
            })
            .await
    }

    /// Deletes, undeletes or destroys the listed versions. Unknown versions are skipped; a missing key
    /// is a no-op.
    pub async fn version_op(
        &self,
        mount: &Mount,
        path: &SecretPath,
        op: VersionOp,
        numbers: Vec<u64>,
    ) -> EngineResult<()> {
        self.kv_mount_check(mount)?;
        let (mount_id, path, now) = (mount.id, path.clone(), self.clock.now());
        self.store
            .write(move |c| {
                let mount = mount_in(c, mount_id)?;
                let Some(meta) = rows::get_meta(c, mount_id, path.as_str())? else {
                    return Ok(());
                };
                let versions = rows::list_versions(c, mount_id, path.as_str())?;
                for n in numbers {
                    let Some(v) = versions.iter().find(|v| v.version == n) else {
                        continue;
                    };
                    match op {
                        VersionOp::Delete if v.state(now) == VersionState::Active => {
                            rows::set_deletion(c, mount_id, path.as_str(), n, Some(now))?;
                        }
                        VersionOp::Undelete if !v.destroyed => {
                            let dt = deletion_time(
                                now,
                                mount.kv.delete_version_after,
                                meta.delete_version_after,
                            );
                            rows::set_deletion(c, mount_id, path.as_str(), n, dt)?;
                        }
                        VersionOp::Destroy if !v.destroyed => {
                            rows::destroy_version(c, mount_id, path.as_str(), n)?;
                        }
                        _ => {}
                    }
                }
                Ok(())
            })
            .await
    }

    /// Writes key metadata, creating it (with no versions) if missing. Returns whether `cas_required =
    /// false` was asked for while the mount mandates it (Vault answers with a warning then).
    pub async fn write_metadata(
        &self,
        mount: &Mount,
        path: &SecretPath,
        update: MetaUpdate,
    ) -> EngineResult<bool> {
        self.kv_mount_check(mount)?;
        validate_meta_update(&update)?;
        let (mount_id, path, now) = (mount.id, path.clone(), self.clock.now());
        self.store
            .write(move |c| {
                let mount = mount_in(c, mount_id)?;
                let mut meta = rows::get_meta(c, mount_id, path.as_str())?
                    .unwrap_or_else(|| SecretMeta::new(now));
                apply_meta_update(&mut meta, update.clone());
                rows::put_meta(c, mount_id, path.as_str(), &meta)?;
                Ok(update.cas_required == Some(false) && mount.kv.cas_required)
            })
            .await
    }

    /// Merge-patches key metadata. `custom_metadata` entries set to `null` are removed. A missing key
    /// is `NotFound` (Vault answers 404 with an empty body).
    pub async fn patch_metadata(
        &self,
        mount: &Mount,
        path: &SecretPath,
        update: MetaUpdate,
        custom_patch: Option<Map<String, Value>>,
    ) -> EngineResult<()> {
        self.kv_mount_check(mount)?;
        validate_meta_update(&update)?;
        let (mount_id, path) = (mount.id, path.clone());
        self.store
            .write(move |c| {
                let mut meta =
                    rows::get_meta(c, mount_id, path.as_str())?.ok_or(EngineError::NotFound)?;
                let mut update = update;
                if let Some(p) = &custom_patch {
                    let merged = merge_custom(meta.custom_metadata.clone(), p)?;
                    validate_custom_metadata(&merged)?;
                    update.custom_metadata = Some(merged);
                }
                apply_meta_update(&mut meta, update);
                rows::put_meta(c, mount_id, path.as_str(), &meta)
            })
            .await
    }

    /// Deletes a key's metadata and every version. A missing key is a no-op.
    pub async fn delete_metadata(&self, mount: &Mount, path: &SecretPath) -> EngineResult<()> {
        self.kv_mount_check(mount)?;
        let (mount_id, path) = (mount.id, path.clone());
        self.store
            .write(move |c| rows::delete_secret(c, mount_id, path.as_str()))
            .await
    }

    /// Lists a folder's direct children (keys, and sub-folders with a trailing `/`), optionally only
    /// names after `after` and at most `limit` of them. An empty or missing folder gives no keys.
    pub fn list(
        &self,
        mount: &Mount,
        folder: &FolderPath,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> EngineResult<ListPage> {
        self.kv_mount_check(mount)?;
        let keys = self
            .store
            .read(|c| rows::list_children(c, mount.id, folder.as_str(), after, limit))?;
        Ok(ListPage { keys })
    }

    /// Whether a key (its metadata) exists: the create-vs-update distinction of Vault's ACLs.
    pub fn secret_exists(&self, mount: &Mount, path: &SecretPath) -> EngineResult<bool> {
        self.store
            .read(|c| Ok(rows::get_meta(c, mount.id, path.as_str())?.is_some()))
    }
}

/// Checks a metadata change before any storage work: custom metadata as Vault validates it, and a
/// key's `delete_version_after` is never negative (only the mount's may be: "disabled").
fn validate_meta_update(update: &MetaUpdate) -> EngineResult<()> {
    if let Some(cm) = &update.custom_metadata {
        validate_custom_metadata(cm)?;
    }
    if update.delete_version_after.is_some_and(|d| d < 0) {
        return Err(EngineError::invalid(
            "delete_version_after cannot be negative",
        ));
    }
    Ok(())
}

fn apply_meta_update(meta: &mut SecretMeta, update: MetaUpdate) {
    if let Some(v) = update.max_versions {
        meta.max_versions = v;
    }
    if let Some(v) = update.cas_required {
        meta.cas_required = v;
    }
    if let Some(v) = update.delete_version_after {
        meta.delete_version_after = v;
        meta.delete_version_after_text = update.delete_version_after_text;
    }
    if let Some(v) = update.custom_metadata {
        meta.custom_metadata = if v.is_empty() { None } else { Some(v) };
    }
    // `updated_time` is not touched: it moves only when a version is added (or the key is
    // created), as in Vault, whose metadata write and patch handlers leave it alone (found by
    // tests/model_engine.rs).
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_versions_is_the_larger_or_ten() {
        assert_eq!(effective_max_versions(0, 0), 10);
        assert_eq!(effective_max_versions(3, 0), 3);
        assert_eq!(effective_max_versions(3, 5), 5);
        assert_eq!(effective_max_versions(7, 5), 7);
    }

    #[test]
    fn deletion_time_rules() {
        let s = super::super::clock::NANOS_PER_SEC;
        assert_eq!(deletion_time(0, 0, 0), None);
        assert_eq!(deletion_time(0, -1, 30), None);
        assert_eq!(deletion_time(0, 0, 30), Some(30 * s));
        assert_eq!(deletion_time(0, 60, 0), Some(60 * s));
        assert_eq!(deletion_time(0, 60, 30), Some(30 * s));
        assert_eq!(deletion_time(0, 20, 30), Some(20 * s));
    }

    #[test]
    fn cas_rules() {
        assert!(check_cas(Some(0), 0, false).is_ok());
        assert!(matches!(
            check_cas(Some(0), 1, false),
            Err(EngineError::CasMismatch)
        ));
        assert!(matches!(
            check_cas(Some(-1), 0, false),
            Err(EngineError::CasMismatch)
        ));
        assert!(matches!(
            check_cas(None, 3, true),
            Err(EngineError::CasRequired)
        ));
        assert!(check_cas(None, 3, false).is_ok());
    }

    #[test]
    fn custom_metadata_validation() {
        let ok: BTreeMap<_, _> = [("a".to_string(), "b".to_string())].into();
        assert!(validate_custom_metadata(&ok).is_ok());
        let empty_value: BTreeMap<_, _> = [("a".to_string(), String::new())].into();
        assert!(validate_custom_metadata(&empty_value).is_err());
        let long_key: BTreeMap<_, _> = [("k".repeat(129), "v".to_string())].into();
        assert!(validate_custom_metadata(&long_key).is_err());
        let many: BTreeMap<_, _> = (0..65)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        let err = validate_custom_metadata(&many).unwrap_err().to_string();
        assert!(
            err.starts_with("custom_metadata validation failed: "),
            "{err}"
        );
    }
}
