//! Audit devices: where every request and response is recorded, one JSON line each, as Vault's
//! `file` audit device writes them. Secret values, tokens and accessors are never written as they
//! are: every string in request and response data, and every token, is replaced by
//! `hmac-sha256:<hex>` under the device's salt, so an operator can search the log for a value only by
//! asking the server for its hash (`sys/audit-hash/<name>`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Mutex;

use serde_json::{Map, Value};

use crate::crypto::Key32;

fn open_log(path: &std::path::Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// One enabled device.
pub struct AuditDevice {
    pub name: String,
    pub kind: String,
    pub description: String,
    pub options: Map<String, Value>,
    salt: Key32,
    path: PathBuf,
    /// Serialises writers so that lines never interleave.
    lock: Mutex<()>,
}

impl std::fmt::Debug for AuditDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditDevice({:?}, {:?})", self.name, self.kind)
    }
}

/// Why a device cannot be enabled.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{0}")]
    Invalid(String),
    #[error("sanity check failed; unable to open {path:?} for writing: {err}")]
    Open { path: String, err: std::io::Error },
}

impl AuditDevice {
    /// Opens (creating with mode 0600) the device's file. Only the `file` type exists; `log_raw`
    /// (which would write secrets in plaintext) is refused.
    ///
    /// `check` opens the file once now (when a device is enabled, so a bad path is refused at once);
    /// a device restored at unseal is checked at its first entry instead.
    pub fn open(
        name: &str,
        kind: &str,
        description: &str,
        options: Map<String, Value>,
        salt: Key32,
        check: bool,
    ) -> Result<Self, AuditError> {
        if kind != "file" {
            return Err(AuditError::Invalid(format!(
                "audit device type {kind:?} is not supported: kvseal has the \"file\" type"
            )));
        }
        let opt = |k: &str| options.get(k).and_then(Value::as_str).map(str::to_string);
        if matches!(opt("log_raw").as_deref(), Some("true" | "1"))
            || options.get("log_raw") == Some(&Value::Bool(true))
        {
            return Err(AuditError::Invalid(
                "log_raw is not supported: kvseal never writes secrets or tokens in plaintext"
                    .into(),
            ));
        }
        if let Some(f) = opt("format") {
            if f != "json" {
                return Err(AuditError::Invalid(format!(
                    "format {f:?} is not supported: kvseal writes JSON lines"
                )));
            }
        }
        let path = opt("file_path")
            .or_else(|| opt("path"))
            .filter(|p| !p.is_empty())
            .ok_or_else(|| AuditError::Invalid("file_path is required".into()))?;
        if check {
            open_log(&PathBuf::from(&path)).map_err(|err| AuditError::Open {
                path: path.clone(),
                err,
            })?;
        }
        Ok(Self {
            name: name.to_string(),
            kind: kind.to_string(),
            description: description.to_string(),
            options,
            salt,
            path: PathBuf::from(path),
            lock: Mutex::new(()),
        })
    }

    /// `hmac-sha256:<hex>` of a value under this device's salt.
    pub fn hash(&self, input: &str) -> String {
        let out = crate::crypto::hmac_sha256(&self.salt, input.as_bytes());
        let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
        format!("hmac-sha256:{hex}")
    }

    /// Replaces every string in a JSON value (at any depth) by its hash; keys stay readable.
    pub fn hash_strings(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.hash(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.hash_strings(x)).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, x)| (k.clone(), self.hash_strings(x)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Appends one entry and flushes it to the file. An error means the entry is not recorded, and
    /// the caller must refuse the request (Vault's rule: no unaudited access).
    ///
    /// The file is opened for each entry, so a log rotated away or made unwritable is noticed at the
    /// next request rather than written into a stale descriptor.
    pub fn write(&self, entry: &Value) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let _one_writer = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut f = open_log(&self.path)?;
        f.write_all(&line)?;
        f.flush()
    }
}
pub mod http;
