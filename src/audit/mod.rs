//! Audit devices: where every request and response is recorded, one JSON line each, as Vault's
//! `file` audit device writes them. Secret values, tokens and accessors are never written as they
//! are: every string in request and response data, and every token, is replaced by
//! `hmac-sha256:<hex>` under the device's salt, so an operator can search the log for a value only by
//! asking the server for its hash (`sys/audit-hash/<name>`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Map, Value};

use crate::crypto::Key32;

/// The first line of every audit log kvseal creates. kvseal appends only to a file that starts with
/// it (or is empty), so a `file_path` naming some other file (a script, `authorized_keys`: Vault's
/// CVE-2025-6000) is never written. A first line rather than an extended attribute: it survives
/// copies, backups and filesystems without xattrs, and the operator can see it. It is a JSON line
/// like the entries, so log readers that parse every line keep working.
const MARKER: &[u8] = b"{\"type\":\"kvseal_audit_log\"}\n";

/// Where a device writes: Vault's special `file_path` values, or a file.
#[derive(Debug)]
enum Sink {
    Stdout,
    Discard,
    File(PathBuf),
}

/// How a device is being opened.
pub enum OpenMode<'a> {
    /// Enabled through the API now: the path must be `stdout`, `discard`, or a file under
    /// `allowed_dir` (`[audit] allowed_dir`; none: no file devices from the API) reached without a
    /// symlink, and the file is opened once so that a bad path is refused at once.
    Enable { allowed_dir: Option<&'a Path> },
    /// Restored at unseal: already checked when enabled; the file is checked at its first entry.
    Restore,
}

/// Opens the log to append one entry: never through a symlink (O_NOFOLLOW), never a FIFO or device
/// (O_NONBLOCK, then a regular-file check), creating it (mode 0600, with `MARKER`) when missing, and
/// appending to an existing file only if it is one kvseal created. `verified` remembers the
/// (device, inode) already checked, so the first line is read once per file, not per entry.
fn open_log(path: &Path, verified: &mut Option<(u64, u64)>) -> std::io::Result<File> {
    let flags = libc::O_NOFOLLOW | libc::O_NONBLOCK;
    let existing = OpenOptions::new()
        .read(true)
        .append(true)
        .custom_flags(flags)
        .open(path);
    let f = match existing {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut f = OpenOptions::new()
                .read(true)
                .append(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(flags)
                .open(path)?;
            f.write_all(MARKER)?;
            let m = f.metadata()?;
            *verified = Some((m.dev(), m.ino()));
            return Ok(f);
        }
        Err(e) => return Err(e),
    };
    let m = f.metadata()?;
    if !m.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if *verified == Some((m.dev(), m.ino())) {
        return Ok(f);
    }
    let mut head = vec![0u8; MARKER.len()];
    let n = f.read_at(&mut head, 0)?;
    let mut f = f;
    if n == 0 {
        // Emptied by log rotation (copytruncate, or `create`): start it again.
        f.write_all(MARKER)?;
    } else if head[..n] != *MARKER {
        return Err(std::io::Error::other(
            "the file exists and is not an audit log kvseal created; refusing to append to it",
        ));
    }
    *verified = Some((m.dev(), m.ino()));
    Ok(f)
}

/// Where an API-enabled device may write (see `OpenMode::Enable`); the file to open.
fn allowed_path(path: &str, allowed_dir: Option<&Path>) -> Result<PathBuf, AuditError> {
    let invalid = |m: String| AuditError::Invalid(m);
    let dir = allowed_dir.ok_or_else(|| {
        invalid("file audit devices can only write under the directory set as [audit] allowed_dir in kvseal's config file, and none is set (file_path may be \"stdout\" or \"discard\")".into())
    })?;
    let p = Path::new(path);
    if !p.is_absolute()
        || p.components()
            .any(|c| !matches!(c, Component::RootDir | Component::Normal(_)))
    {
        return Err(invalid(format!(
            "file_path {path:?} must be an absolute path without . or .. components"
        )));
    }
    let real_dir = std::fs::canonicalize(dir)
        .map_err(|e| invalid(format!("[audit] allowed_dir {}: {e}", dir.display())))?;
    let rel = p
        .strip_prefix(dir)
        .or_else(|_| p.strip_prefix(&real_dir))
        .ok()
        .filter(|r| r.components().next().is_some())
        .ok_or_else(|| {
            invalid(format!(
                "file_path {path:?} is not under the allowed audit directory {}",
                dir.display()
            ))
        })?;
    // Every directory between allowed_dir and the file must be a real directory, not a symlink.
    let mut at = real_dir.clone();
    let parts: Vec<_> = rel.components().collect();
    for c in &parts[..parts.len() - 1] {
        at.push(c);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() || !m.is_dir() => {
                return Err(invalid(format!(
                    "file_path {path:?}: {} is not a directory (symlinks are not followed)",
                    at.display()
                )))
            }
            _ => {}
        }
    }
    Ok(real_dir.join(rel))
}

/// One enabled device.
pub struct AuditDevice {
    pub name: String,
    pub kind: String,
    pub description: String,
    pub options: Map<String, Value>,
    salt: Key32,
    sink: Sink,
    /// Serialises writers so that lines never interleave; holds the file last verified.
    lock: Mutex<Option<(u64, u64)>>,
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
    /// A device of the `file` type (the only one; `log_raw`, which would write secrets in
    /// plaintext, is refused). `file_path` is `stdout`, `discard` (Vault's special values) or a file;
    /// see `OpenMode` for what is checked when.
    pub fn open(
        name: &str,
        kind: &str,
        description: &str,
        options: Map<String, Value>,
        salt: Key32,
        mode: OpenMode<'_>,
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
        let mut verified = None;
        let sink = match (path.as_str(), mode) {
            ("stdout", _) => Sink::Stdout,
            ("discard", _) => Sink::Discard,
            (_, OpenMode::Restore) => Sink::File(PathBuf::from(&path)),
            (_, OpenMode::Enable { allowed_dir }) => {
                let file = allowed_path(&path, allowed_dir)?;
                open_log(&file, &mut verified).map_err(|err| AuditError::Open {
                    path: path.clone(),
                    err,
                })?;
                Sink::File(file)
            }
        };
        Ok(Self {
            name: name.to_string(),
            kind: kind.to_string(),
            description: description.to_string(),
            options,
            salt,
            sink,
            lock: Mutex::new(verified),
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
        let mut verified = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        match &self.sink {
            Sink::Discard => Ok(()),
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&line)?;
                out.flush()
            }
            Sink::File(path) => {
                let mut f = open_log(path, &mut verified)?;
                f.write_all(&line)?;
                f.flush()
            }
        }
    }
}
pub mod http;
