//! The versioned secret engine. It knows nothing of HTTP: both APIs call these methods.

pub mod clock;
pub mod duration;
pub mod error;
mod kv;
pub mod model;
mod mounts;
pub mod path;
mod policies;
mod states;
pub mod tokens;

use std::sync::{Arc, RwLock};

use crate::crypto::{Key32, Keyring};
use crate::storage::{rows, Store};
use clock::Clock;
use error::{EngineError, EngineResult};
use model::Mount;

pub use states::{SecretSummary, SecretView};
pub use tokens::{Identity, Token};

const KEYRING_FACT: &str = "keyring";

/// Where the engine stands with respect to its keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealStatus {
    /// No keyring yet: `sys/init` has not run.
    Uninitialized,
    /// Initialised, but the keyring is not open (the root key does not open it).
    Sealed,
    Unsealed,
}

pub struct Engine {
    store: Store,
    clock: Clock,
    root_key: Key32,
    keyring: RwLock<Option<Arc<Keyring>>>,
    initialized: RwLock<bool>,
    mounts: RwLock<Arc<Vec<Mount>>>,
    policies: RwLock<policies::PolicyCache>,
    init_lock: tokio::sync::Mutex<()>,
}

impl Engine {
    /// Opens the engine over a store with the root key from the seal. A root key that does not open the
    /// stored keyring leaves the engine sealed: it serves 503, never garbage.
    pub fn open(store: Store, root_key: Key32, clock: Clock) -> EngineResult<Self> {
        let blob = store.read(|c| rows::get_fact(c, KEYRING_FACT))?;
        let (initialized, keyring) = match blob {
            None => (false, None),
            Some(blob) => match Keyring::open_under(&root_key, &blob) {
                Ok(k) => (true, Some(Arc::new(k))),
                Err(_) => {
                    tracing::error!(
                        "the root key does not open the stored keyring (wrong key file?); staying sealed"
                    );
                    (true, None)
                }
            },
        };
        let mounts = store.read(rows::load_mounts)?;
        let policy_cache = policies::load_cache(&store)?;
        Ok(Self {
            store,
            clock,
            root_key,
            keyring: RwLock::new(keyring),
            initialized: RwLock::new(initialized),
            mounts: RwLock::new(Arc::new(mounts)),
            policies: RwLock::new(policy_cache),
            init_lock: tokio::sync::Mutex::new(()),
        })
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn seal_status(&self) -> SealStatus {
        if !*self.initialized.read().unwrap_or_else(|p| p.into_inner()) {
            SealStatus::Uninitialized
        } else if self
            .keyring
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
        {
            SealStatus::Unsealed
        } else {
            SealStatus::Sealed
        }
    }

    fn keyring(&self) -> EngineResult<Arc<Keyring>> {
        self.keyring
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(EngineError::Sealed)
    }

    /// Initialises the store: a new keyring sealed by the root key, a root token, and a kv-v2 mount
    /// at `secret/` (as `vault operator init` followed by Vault's default dev setup). Returns the root
    /// token. `root_token` picks its value (dev mode's `--dev-root-token-id`).
    pub async fn init(&self, root_token: Option<String>) -> EngineResult<Token> {
        let _one_at_a_time = self.init_lock.lock().await;
        if self.seal_status() != SealStatus::Uninitialized {
            return Err(EngineError::AlreadyInitialized);
        }
        let now = self.clock.now();
        let keyring = Arc::new(Keyring::generate(now));
        let sealed = keyring.seal_under(&self.root_key);
        let token = root_token.map(Token::new).unwrap_or_else(Token::generate);
        let row = tokens::root_token_row(&keyring, &token, now);
        let secret_mount = mounts::new_mount_record(
            model::MountSpec {
                kind: "kv".into(),
                description: "key/value secret storage".into(),
                options: [("version".to_string(), "2".to_string())].into(),
                ..Default::default()
            },
            path::MountPath::parse("secret")?,
            2,
            now,
        );
        self.store
            .write(move |c| {
                rows::put_fact(c, KEYRING_FACT, &sealed)?;
                crate::storage::token_rows::insert_token(c, &row)?;
                rows::insert_mount(c, &secret_mount)?;
                Ok(())
            })
            .await?;
        *self.keyring.write().unwrap_or_else(|p| p.into_inner()) = Some(keyring);
        *self.initialized.write().unwrap_or_else(|p| p.into_inner()) = true;
        self.ensure_default_policy().await?;
        self.reload_mounts()?;
        Ok(token)
    }

    fn reload_mounts(&self) -> EngineResult<()> {
        let mounts = self.store.read(rows::load_mounts)?;
        *self.mounts.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(mounts);
        Ok(())
    }
}
