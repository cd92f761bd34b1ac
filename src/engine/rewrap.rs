//! Re-encrypting old versions under the newest keyring key, in the background, in small batches
//! through the writer so that ordinary writes interleave with it and are never blocked for long.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use super::error::{EngineError, EngineResult};
use super::Engine;
use crate::crypto::version_aad;
use crate::storage::VersionBlob;

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
    /// Versions still sealed under an older key.
    pub remaining: u64,
}

impl Engine {
    pub fn rewrap_status(&self) -> EngineResult<RewrapStatus> {
        let (active, _) = self.keyring()?.active_term();
        let remaining = self.store.read(|tx| tx.count_stale_versions(active))?;
        Ok(RewrapStatus {
            running: self.rewrap.running.load(Ordering::SeqCst),
            rewrapped: self.rewrap.done.load(Ordering::SeqCst),
            remaining,
        })
    }

    /// Re-encrypts up to one batch of versions sealed under an older key; returns how many.
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
                    &VersionBlob {
                        key_id,
                        nonce: sealed.nonce,
                        ciphertext: sealed.ciphertext,
                    },
                )?;
            }
            Ok::<_, EngineError>(stale.len())
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
