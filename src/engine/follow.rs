//! Following a shared store: what other nodes commit reaches this node's memory.
//!
//! With PostgreSQL several nodes serve one store. Each keeps the administrative state in memory
//! (keyring, mounts, policies, audit devices) and caches token entries and compiled ACLs; secret data
//! is always read from the database. A thread polls the store's change generation every
//! [`POLL`] and, when it moved, reloads that state from storage and empties the caches: a token
//! revoked, a policy narrowed, a mount changed or a key rotated on another node is in force here
//! within `POLL` plus one reload (well under the promised second). The same poll finds a store that
//! another node initialised (this node then unseals itself with its key file) and tells `sys/health`
//! whether the database answers.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::error::{EngineError, EngineResult};
use super::{seal, Engine, SealMode, SealStatus};
use crate::crypto::Keyring;

/// How often a node looks at the store's change generation.
pub const POLL: Duration = Duration::from_millis(200);

impl Engine {
    /// Starts following the store if other nodes may write to it (a no-op with SQLite).
    pub fn follow_store(self: &Arc<Self>) {
        if !self.store.is_shared() {
            return;
        }
        super::barrier::set_shared_store();
        let weak: Weak<Engine> = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("kvseal-follow".into())
            .spawn(move || {
                let mut seen = None;
                loop {
                    std::thread::sleep(POLL);
                    let Some(engine) = weak.upgrade() else {
                        return;
                    };
                    engine.follow_once(&mut seen);
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the thread that follows the shared store");
        }
    }

    /// Runs `f` with the keyring; when it met a record sealed under a newer key than this node holds
    /// (another node rotated the keyring since the last poll), loads the stored keyring and runs `f`
    /// once more.
    pub(super) fn with_current_keys<R>(
        &self,
        f: impl Fn(&Arc<Keyring>) -> EngineResult<R>,
    ) -> EngineResult<R> {
        match f(&self.keyring()?) {
            Err(EngineError::KeyringBehind) => {
                self.reload_keyring()?;
                f(&self.keyring()?).map_err(still_behind)
            }
            other => other,
        }
    }

    pub(super) fn reload_keyring(&self) -> EngineResult<()> {
        let seal_key = self.seal_key()?;
        let (_, ring) = match self.store.read(|tx| seal::open_stored_keys(tx, &seal_key)) {
            Err(EngineError::Crypto) => {
                let key = self.adopt_rekeyed_seal_key()?;
                self.store.read(|tx| seal::open_stored_keys(tx, &key))?
            }
            other => other?,
        };
        self.mem.set_keyring(Arc::new(ring));
        Ok(())
    }

    /// The seal key for a key change (`sys/rotate`, `sys/rotate/root`): on a shared store, one that
    /// still opens the stored root key, taken from the barrier if another node rekeyed since the
    /// last poll.
    pub(super) fn seal_key_now(&self) -> EngineResult<crate::crypto::Key32> {
        let key = self.seal_key()?;
        if !self.store.is_shared() {
            return Ok(key);
        }
        match self.store.read(|tx| seal::open_stored_keys(tx, &key)) {
            Err(EngineError::Crypto) => self.adopt_rekeyed_seal_key(),
            Err(e) => Err(e),
            Ok(_) => Ok(key),
        }
    }

    /// Another node rekeyed (the stored root key no longer opens with this node's seal key): takes
    /// the new seal key it left in the barrier, if it opens the stored root key. Without one, this
    /// node cannot follow the store any more; the error says so (a restart and an unseal with the
    /// new shares bring it back).
    fn adopt_rekeyed_seal_key(&self) -> EngineResult<crate::crypto::Key32> {
        // Without one the seal key simply does not open the store any more (a snapshot of another
        // store restored on another node, `snapshot-force`): the caller decides what that means.
        let key = self.rekeyed_seal_key()?.ok_or(EngineError::Crypto)?;
        self.store.read(|tx| seal::open_stored_keys(tx, &key))?;
        let mut keys = self.mem.keys.write().unwrap_or_else(|p| p.into_inner());
        if keys.keyring.is_some() {
            keys.seal_key = Some(key.clone());
        }
        tracing::info!("the unseal keys were changed on another node (rekey); following");
        Ok(key)
    }

    /// Reads the mount table again on a shared store; whether it changed.
    pub(super) fn catch_up_mounts(&self) -> bool {
        if !self.store.is_shared() {
            return false;
        }
        let Ok(keyring) = self.keyring() else {
            return false;
        };
        match self
            .store
            .read(|tx| super::mounts::read_table(tx, &keyring))
        {
            Ok((_, table)) => {
                let changed = {
                    let now = self.mounts();
                    now.len() != table.mounts.len()
                        || now
                            .iter()
                            .zip(table.mounts.iter())
                            .any(|(a, b)| a.id != b.id || a.path != b.path)
                };
                if changed {
                    self.mem.set_mounts(table.mounts);
                }
                changed
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the mount table again failed");
                false
            }
        }
    }

    /// Whether the store answered its last poll (always true with SQLite).
    pub fn storage_reachable(&self) -> bool {
        self.storage_ok.load(Ordering::Relaxed)
    }

    fn follow_once(&self, seen: &mut Option<i64>) {
        let generation = match self.store.generation() {
            Ok(g) => g,
            Err(e) => {
                if self.storage_ok.swap(false, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "the database does not answer; serving 503 until it does");
                }
                // Whatever changed meanwhile is read again once the database is back.
                *seen = None;
                return;
            }
        };
        if !self.storage_ok.swap(true, Ordering::Relaxed) {
            tracing::info!("the database answers again");
        }
        if *seen == Some(generation) {
            return;
        }
        match self.reload_shared_state() {
            Ok(()) => *seen = Some(generation),
            Err(e) => {
                tracing::warn!(error = %e, "reloading what other nodes changed failed; retrying")
            }
        }
    }

    /// Reads the administrative state again from storage, under the administrative lock (a change
    /// committing on this node meanwhile installs its own state after this one, never before).
    fn reload_shared_state(&self) -> EngineResult<()> {
        let _guard = self.admin.blocking_lock();
        match self.seal_status() {
            SealStatus::Uninitialized => {
                if !seal::is_initialized(&self.store)? {
                    return Ok(());
                }
                seal::check_mode(&self.store, &self.seal_mode)?;
                *self
                    .mem
                    .initialized
                    .write()
                    .unwrap_or_else(|p| p.into_inner()) = true;
                tracing::info!("the store was initialised by another node");
                if let SealMode::File(key) = &self.seal_mode {
                    self.unseal_with(key.clone())?;
                    tracing::info!("unsealed with the key file");
                }
            }
            // A sealed node stays sealed until it is unsealed (`sys/unseal`, or a restart with the
            // file seal), as a Vault node does.
            SealStatus::Sealed => {}
            SealStatus::Unsealed => {
                if let Ok(key) = self.seal_key() {
                    let old = self.keyring()?;
                    let unsealed = match self.unseal_with(key) {
                        // Rekeyed on another node: its new seal key is in the barrier.
                        Err(EngineError::Crypto) => self
                            .adopt_rekeyed_seal_key()
                            .and_then(|key| self.unseal_with(key)),
                        other => other,
                    };
                    match unsealed {
                        Ok(()) => {
                            // A snapshot restored on another node may lack keys this node seals
                            // with (see `Keyring::retire`).
                            if !self.keyring()?.contains(&old) {
                                old.retire();
                            }
                        }
                        // The stored root key opens neither with this node's seal key nor with a
                        // rekey's: another node restored a snapshot of another store
                        // (`snapshot-force`). Vault seals every node then; that store's unseal
                        // keys unseal each again.
                        Err(EngineError::Crypto) => {
                            old.retire();
                            self.mem.forget_keys();
                            self.record_cache.clear();
                            tracing::warn!(
                                "the store's root key does not open with this node's seal key (a snapshot of another store was restored); sealed"
                            );
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        self.token_cache.invalidate();
        self.mem.acl_cache.invalidate();
        Ok(())
    }
}

/// A record still sealed under an unknown key after the stored keyring was loaded: no node sealed
/// it, so it is tampering, served as any record that fails authentication.
pub(super) fn still_behind(e: EngineError) -> EngineError {
    match e {
        EngineError::KeyringBehind => {
            tracing::error!("a stored record names a key id no stored keyring has; not served");
            EngineError::Corrupt("a record sealed under an unknown key".into())
        }
        other => other,
    }
}
