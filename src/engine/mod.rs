//! The versioned secret engine. It knows nothing of HTTP: both APIs call these methods.

mod audit;
pub mod backup;
mod cache;
pub mod clock;
pub mod duration;
pub mod error;
mod kv;
pub mod model;
mod mounts;
pub mod path;
mod policies;
mod rewrap;
pub mod seal;
mod states;
pub mod tokens;

use std::sync::{Arc, Mutex, RwLock};

use crate::crypto::{Key32, Keyring};
use crate::storage::{rows, Store};
use clock::Clock;
use error::{EngineError, EngineResult};
use model::Mount;

pub use seal::{SealMode, SealStatus};
pub use states::{SecretSummary, SecretView};
pub use tokens::{Identity, Token};

/// The keys in memory while unsealed. All are wiped from memory on seal (Key32 zeroizes on drop).
#[derive(Default)]
struct Unsealed {
    /// The key that opens the stored root key (the key file's, or what the Shamir shares combine to).
    seal_key: Option<Key32>,
    root_key: Option<Key32>,
    keyring: Option<Arc<Keyring>>,
}

pub struct Engine {
    store: Store,
    clock: Clock,
    seal_mode: SealMode,
    keys: RwLock<Unsealed>,
    initialized: RwLock<bool>,
    /// Unseal shares given so far (Shamir), wiped when used or reset.
    unseal_progress: Mutex<Vec<zeroize::Zeroizing<Vec<u8>>>>,
    mounts: RwLock<Arc<Vec<Mount>>>,
    policies: RwLock<policies::PolicyCache>,
    init_lock: tokio::sync::Mutex<()>,
    rewrap: rewrap::RewrapState,
    audit: RwLock<Arc<Vec<Arc<crate::audit::AuditDevice>>>>,
    /// `[audit] allowed_dir`: where audit devices enabled through the API may write files.
    audit_allowed_dir: RwLock<Option<std::path::PathBuf>>,
    /// Token entries by hash (invalidated by every token change).
    token_cache: cache::GenCache<Vec<u8>, crate::storage::token_rows::TokenRow>,
    /// Compiled ACLs by policy set (invalidated by every policy change).
    acl_cache: cache::GenCache<Vec<String>, Arc<crate::policy::Acl>>,
}

impl Engine {
    /// Opens the engine over a store. With the file seal it unseals itself with the key file; a key
    /// that does not open the stored keys leaves it sealed (503), never serving garbage. With the
    /// Shamir seal it starts sealed until `sys/unseal` has enough shares.
    pub fn open(store: Store, seal_mode: SealMode, clock: Clock) -> EngineResult<Self> {
        let initialized = store
            .read(|c| rows::get_fact(c, seal::KEYRING_FACT))?
            .is_some();
        if initialized {
            seal::check_mode(&store, &seal_mode)?;
        }
        let mounts = store.read(rows::load_mounts)?;
        let policy_cache = policies::load_cache(&store)?;
        let engine = Self {
            store,
            clock,
            seal_mode,
            keys: RwLock::new(Unsealed::default()),
            initialized: RwLock::new(initialized),
            unseal_progress: Mutex::new(Vec::new()),
            mounts: RwLock::new(Arc::new(mounts)),
            policies: RwLock::new(policy_cache),
            init_lock: tokio::sync::Mutex::new(()),
            rewrap: rewrap::RewrapState::default(),
            audit: RwLock::new(Arc::new(Vec::new())),
            audit_allowed_dir: RwLock::new(None),
            token_cache: cache::GenCache::default(),
            acl_cache: cache::GenCache::default(),
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
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keyring
            .clone()
            .ok_or(EngineError::Sealed)
    }

    /// Keeps the writer busy for `ms` milliseconds (tests of the request deadline).
    #[cfg(test)]
    pub fn stall_writer(&self, ms: u64) {
        let store_writer = self.store.writer().clone();
        std::thread::spawn(move || {
            let _ = store_writer.submit_blocking(move |_| {
                std::thread::sleep(std::time::Duration::from_millis(ms));
                Ok(())
            });
        });
    }

    /// Limits the database's size in pages (tests use it to make the disk "full" without a disk).
    #[cfg(test)]
    pub async fn set_max_page_count(&self, pages: u64) -> EngineResult<()> {
        self.store
            .write(move |c| {
                c.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
                Ok(())
            })
            .await
    }

    fn reload_mounts(&self) -> EngineResult<()> {
        let mounts = self.store.read(rows::load_mounts)?;
        *self.mounts.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(mounts);
        Ok(())
    }
}
