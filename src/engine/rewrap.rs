//! Re-sealing every record under the newest keyring key (versions, key records, token entries,
//! cubbyhole entries and the sealed tables), in the background, in small batches through the writer so that ordinary
//! writes interleave with it and are never blocked for long. Each record is replaced conditionally:
//! one changed meanwhile by a request is left for the next batch.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::barrier;
use super::error::{EngineError, EngineResult};
use super::kv::{open_secret, save_secret};
use super::token_entry::{open_token, seal_token};
use super::Engine;
use crate::crypto::version_aad;
use crate::storage::{StorageError, VersionBlob};

/// The sealed tables kept as facts.
const DOCS: [&str; 4] = [
    super::mounts::MOUNTS_DOC,
    super::policies::POLICIES_DOC,
    super::token_roles::ROLES_DOC,
    super::audit::AUDIT_DOC,
];

const BATCH: usize = 256;

#[derive(Default)]
pub struct RewrapState {
    running: AtomicBool,
    done: AtomicU64,
}

/// Progress of a rewrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RewrapStatus {
    pub running: bool,
    /// Versions re-encrypted by the current (or last) run.
    pub rewrapped: u64,
    /// Records (versions, key records, token entries) still sealed under an older key.
    pub remaining: u64,
}

impl Engine {
    pub fn rewrap_status(&self) -> EngineResult<RewrapStatus> {
        let (active, _) = self.keyring()?.active_term();
        let remaining = self.store.read(|tx| tx.count_stale(active))?;
        Ok(RewrapStatus {
            running: self.rewrap.running.load(Ordering::SeqCst),
            rewrapped: self.rewrap.done.load(Ordering::SeqCst),
            remaining,
        })
    }

    /// Re-seals up to one batch of records sealed under an older key; returns how many.
    pub fn rewrap_batch(&self) -> EngineResult<usize> {
        let keyring = self.keyring()?;
        self.store.write_blocking(move |tx| {
            let (active, _) = keyring.active_term();
            let stale = tx.stale_versions(active, BATCH)?;
            for s in &stale {
                let aad = version_aad(s.mount_id, &s.path, s.version);
                let plain = keyring.open(s.blob.key_id, &s.blob.nonce, &s.blob.ciphertext, &aad)?;
                let (key_id, sealed) = keyring.seal(&plain, &aad)?;
                tx.replace_version_blob(
                    s.mount_id,
                    &s.path,
                    s.version,
                    &s.blob.nonce,
                    &VersionBlob {
                        key_id,
                        nonce: sealed.nonce,
                        ciphertext: sealed.ciphertext,
                    },
                )?;
            }
            let mut done = stale.len();
            for (mount_id, path, row) in tx.stale_secrets(active, BATCH)? {
                let rec = open_secret(&keyring, mount_id, &path, &row)?;
                match save_secret(tx, &keyring, mount_id, &path, Some(&row), &rec) {
                    Ok(()) => done += 1,
                    Err(EngineError::Unavailable(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            for old in tx.stale_tokens(active, BATCH)? {
                let entry = open_token(&keyring, &old)?;
                match tx.replace_token(&old, &seal_token(&keyring, &entry)?) {
                    Ok(()) => done += 1,
                    Err(StorageError::Conflict) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            for (token, path, old) in tx.stale_cubby(active, BATCH)? {
                let entry: serde_json::Value =
                    super::cubbyhole::open_entry(&keyring, &token, &path, &old)?;
                let new = super::cubbyhole::seal_entry(&keyring, &token, &path, &entry)?;
                match tx.replace_cubby(&token, &path, &old, &new) {
                    Ok(()) => done += 1,
                    Err(StorageError::Conflict) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            for name in DOCS {
                let Some(raw) = tx.get_fact(name)? else {
                    continue;
                };
                if raw.get(..4).is_some_and(|id| id != active.to_be_bytes()) {
                    let doc: serde_json::Value = barrier::open_doc(&keyring, name, &raw)?;
                    barrier::write_doc(tx, &keyring, name, Some(&raw), &doc)?;
                }
            }
            Ok::<_, EngineError>(done)
        })
    }

    /// Starts a rewrap on a background thread; `false` when one is already running.
    pub fn start_rewrap(self: &Arc<Self>) -> EngineResult<bool> {
        self.keyring()?;
        if self.rewrap.running.swap(true, Ordering::SeqCst) {
            return Ok(false);
        }
        self.rewrap.done.store(0, Ordering::SeqCst);
        let engine = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("kvseal-rewrap".into())
            .spawn(move || {
                loop {
                    match engine.rewrap_batch() {
                        Ok(0) => break,
                        Ok(n) => {
                            engine.rewrap.done.fetch_add(n as u64, Ordering::SeqCst);
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "rewrap stopped");
                            break;
                        }
                    }
                }
                engine.rewrap.running.store(false, Ordering::SeqCst);
            });
        if spawned.is_err() {
            self.rewrap.running.store(false, Ordering::SeqCst);
            return Err(EngineError::Storage(
                "cannot start the rewrap thread".into(),
            ));
        }
        Ok(true)
    }
}
