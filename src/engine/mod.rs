//! The versioned secret engine. It knows nothing of HTTP: both APIs call these methods.

mod audit;
pub mod backup;
mod barrier;
mod cache;
pub mod clock;
mod cubbyhole;
pub mod duration;
pub mod error;
mod follow;
pub mod generate_root;
mod key_shares;
mod kv;
mod kv1;
mod migrate_v1;
pub mod model;
mod mounts;
pub mod path;
mod policies;
mod record_cache;
pub mod rekey;
mod restore;
mod rewrap;
pub mod seal;
mod states;
#[cfg(test)]
mod tests_admin;
#[cfg(test)]
mod tests_cubbyhole;
#[cfg(test)]
mod tests_kv1;
#[cfg(test)]
mod tests_restore;
mod token_entry;
mod token_roles;
pub mod tokens;
pub mod ttl;
pub mod wrapping;

use std::sync::{Arc, Mutex, RwLock};

use crate::crypto::{Key32, Keyring};
use crate::storage::{Store, WriteTx};
use clock::Clock;
use error::{EngineError, EngineResult};
use model::Mount;

pub use restore::{Restored, SnapshotUpload};
pub use seal::{SealMode, SealStatus};
pub use states::{SecretSummary, SecretView};
pub use tokens::{Identity, Token};

/// The keys in memory while unsealed. All are wiped from memory on seal (Key32 zeroizes on drop).
/// The root key is not kept: a key change opens it from storage, in the transaction that changes it.
#[derive(Default)]
struct Unsealed {
    /// The key that opens the stored root key (the key file's, or what the Shamir shares combine to).
    seal_key: Option<Key32>,
    keyring: Option<Arc<Keyring>>,
}

/// The administrative state the engine serves from memory: keys, mounts, policies, audit devices.
/// Outside start-up, unseal and seal, it changes only in an [`Engine::admin_write`]'s after-commit
/// step, which runs in commit order: memory is never ahead of storage (a keyring key no stored
/// keyring has would seal data that cannot be opened after a restart) nor left behind it.
#[derive(Default)]
struct Memory {
    initialized: RwLock<bool>,
    keys: RwLock<Unsealed>,
    mounts: RwLock<Arc<Vec<Mount>>>,
    policies: RwLock<policies::PolicyCache>,
    audit: RwLock<Arc<Vec<Arc<crate::audit::AuditDevice>>>>,
    /// Compiled ACLs by policy set (invalidated by every policy change).
    acl_cache: cache::GenCache<Vec<String>, Arc<crate::policy::Acl>>,
}

impl Memory {
    fn set_mounts(&self, mounts: Vec<Mount>) {
        *self.mounts.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(mounts);
    }

    /// Drops every key and what was opened with them: a seal, a restore of another store's
    /// snapshot, a node finding that its seal key no longer opens the store.
    fn forget_keys(&self) {
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Unsealed::default();
        *self.audit.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Vec::new());
        self.set_mounts(Vec::new());
        *self.policies.write().unwrap_or_else(|p| p.into_inner()) = Default::default();
        self.acl_cache.invalidate();
    }

    /// Installs a committed keyring, unless the engine was sealed meanwhile (then no key may come
    /// back into memory).
    fn set_keyring(&self, keyring: Arc<Keyring>) {
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        if keys.keyring.is_some() {
            keys.keyring = Some(keyring);
        }
    }
}

pub struct Engine {
    store: Store,
    clock: Clock,
    seal_mode: SealMode,
    mem: Arc<Memory>,
    /// Unseal shares given so far (Shamir), wiped when used or reset.
    unseal_progress: Mutex<Vec<zeroize::Zeroizing<Vec<u8>>>>,
    /// Serialises every administrative change (init, seal, keys, policies, mounts, audit devices):
    /// held from the check of the current state through the commit to the in-memory update. Without
    /// it, `sys/rotate` and `sys/rotate/root` sent together sealed the keyring under a root key that
    /// was no longer stored, and the next start could not unseal.
    admin: Arc<tokio::sync::Mutex<()>>,
    rewrap: rewrap::RewrapState,
    /// `[audit] allowed_dir`: where audit devices enabled through the API may write files.
    audit_allowed_dir: RwLock<Option<std::path::PathBuf>>,
    /// Token entries by hash (invalidated by every token change).
    token_cache: cache::GenCache<Vec<u8>, tokens::TokenRow>,
    /// Certificate identities (`[[auth.cert]]`): cert logins and their renewals read them.
    cert_roles: tokens::CertRoles,
    /// The mount table as KV writes last opened it (see `mounts::mount_in`).
    mount_cache: Arc<mounts::TableCache>,
    /// Key records reads have opened (see `record_cache`).
    record_cache: record_cache::RecordCache,
    /// Whether a shared store answered its last poll (see `follow`).
    storage_ok: std::sync::atomic::AtomicBool,
    /// The generate-root attempt and the rekey in progress (in memory, as Vault keeps them).
    root_generation: generate_root::RootGeneration,
    rekey: rekey::RekeyState,
}

impl Engine {
    /// Opens the engine over a store. With the file seal it unseals itself with the key file; a key
    /// that does not open the stored keys leaves it sealed (503), never serving garbage. With the
    /// Shamir seal it starts sealed until `sys/unseal` has enough shares.
    pub fn open(store: Store, seal_mode: SealMode, clock: Clock) -> EngineResult<Self> {
        let initialized = seal::is_initialized(&store)?;
        if initialized {
            seal::check_mode(&store, &seal_mode)?;
        }
        // Mounts and policies are sealed: they are loaded at unseal.
        let mem = Memory {
            initialized: RwLock::new(initialized),
            ..Default::default()
        };
        let engine = Self {
            store,
            clock,
            seal_mode,
            mem: Arc::new(mem),
            unseal_progress: Mutex::new(Vec::new()),
            admin: Arc::new(tokio::sync::Mutex::new(())),
            rewrap: rewrap::RewrapState::default(),
            audit_allowed_dir: RwLock::new(None),
            token_cache: cache::GenCache::default(),
            cert_roles: Default::default(),
            mount_cache: Default::default(),
            record_cache: Default::default(),
            storage_ok: std::sync::atomic::AtomicBool::new(true),
            root_generation: Default::default(),
            rekey: Default::default(),
        };
        if initialized {
            if let SealMode::File(key) = &engine.seal_mode {
                if let Err(e) = engine.unseal_with(key.clone()) {
                    tracing::error!(error = %e, "the key file does not open the stored keys (wrong key file?); staying sealed");
                }
            }
        }
        Ok(engine)
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    fn keyring(&self) -> EngineResult<Arc<Keyring>> {
        self.mem
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keyring
            .clone()
            .ok_or(EngineError::Sealed)
    }

    /// Takes the administrative lock (see `admin`). The guard is owned so that it can travel with
    /// the change into the writer and be released only after memory is updated.
    async fn admin_lock(&self) -> tokio::sync::OwnedMutexGuard<()> {
        Arc::clone(&self.admin).lock_owned().await
    }

    /// Commits an administrative change and updates memory from what was committed: `change` runs in
    /// the writer's transaction (it reads the state it changes there, not from memory), and `apply`
    /// runs on the writer thread once that transaction has committed, in commit order, with `guard`
    /// held until it returns. A request dropped mid-way (deadline, client gone) cannot leave memory
    /// behind storage: a queued write commits anyway, and so `apply` runs anyway.
    async fn admin_write<R: Send + 'static, T: Send + 'static>(
        &self,
        guard: tokio::sync::OwnedMutexGuard<()>,
        change: impl FnMut(&dyn WriteTx) -> EngineResult<R> + Send + 'static,
        apply: impl FnOnce(&Memory, R) -> EngineResult<T> + Send + 'static,
    ) -> EngineResult<T> {
        let mem = Arc::clone(&self.mem);
        self.store
            .write_then(change, move |r| {
                let result = apply(&mem, r);
                drop(guard);
                result
            })
            .await
    }

    /// The store (tests look at what it holds).
    #[cfg(test)]
    pub fn store_for_tests(&self) -> &Store {
        &self.store
    }

    /// Keeps the writer busy for `ms` milliseconds (tests of the request deadline).
    #[cfg(test)]
    pub fn stall_writer(&self, ms: u64) {
        self.store.stall_writer(ms);
    }

    /// Limits the database's size in pages (tests use it to make the disk "full" without a disk).
    #[cfg(test)]
    pub async fn set_max_page_count(&self, pages: u64) -> EngineResult<()> {
        Ok(self.store.set_max_page_count(pages).await?)
    }
}
