//! Sealing: initialisation, unsealing (key file or Shamir shares), sealing, and key rotation.
//!
//! Key layering, as Vault's barrier: the seal key (the key file's, or the key the Shamir shares
//! combine to) opens the stored root key; the root key opens the keyring; keyring keys seal the data.
//! Rotating the keyring (`sys/rotate`) adds a key for new writes; rotating the root key
//! (`sys/rotate/root`) re-seals the keyring under a new root key without touching the shares.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::error::{EngineError, EngineResult};
use super::{model, mounts, path, tokens, Engine, Unsealed};
use crate::crypto::{open_root_key, seal_root_key, shamir, Key32, Keyring};
use crate::policy;
use crate::storage::token_rows::{self, Named};
use crate::storage::{rows, Store};

pub(super) const KEYRING_FACT: &str = "keyring";
const ROOT_KEY_FACT: &str = "root_key";
const SEAL_CONFIG_FACT: &str = "seal_config";

/// How the seal key is obtained.
pub enum SealMode {
    /// From a key file: the server unseals itself at start.
    File(Key32),
    /// From `t` of `n` Shamir shares given through `sys/unseal`.
    Shamir,
}

impl SealMode {
    fn name(&self) -> &'static str {
        match self {
            SealMode::File(_) => "file",
            SealMode::Shamir => "shamir",
        }
    }
}

/// Where the engine stands with respect to its keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealStatus {
    /// No keyring yet: `sys/init` has not run.
    Uninitialized,
    /// Initialised, but the keys are not in memory.
    Sealed,
    Unsealed,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug)]
struct SealConfig {
    #[serde(rename = "type")]
    kind: SealKindName,
    shares: usize,
    threshold: usize,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum SealKindName {
    File,
    Shamir,
}

/// What `sys/seal-status` and `sys/unseal` report.
#[derive(Debug, Clone)]
pub struct SealInfo {
    pub kind: &'static str,
    pub status: SealStatus,
    pub threshold: usize,
    pub shares: usize,
    pub progress: usize,
}

/// What `sys/init` returns: the root token and, with the Shamir seal, the unseal key shares.
pub struct InitOutput {
    pub root_token: tokens::Token,
    pub shares: Vec<Zeroizing<Vec<u8>>>,
}

fn read_config(store: &Store) -> EngineResult<Option<SealConfig>> {
    let raw = store.read(|c| rows::get_fact(c, SEAL_CONFIG_FACT))?;
    Ok(raw.and_then(|r| serde_json::from_slice(&r).ok()))
}

/// Refuses to serve a store initialised with another seal type than the configured one.
pub(super) fn check_mode(store: &Store, mode: &SealMode) -> EngineResult<()> {
    if let Some(cfg) = read_config(store)? {
        let want = match mode {
            SealMode::File(_) => SealKindName::File,
            SealMode::Shamir => SealKindName::Shamir,
        };
        if cfg.kind != want {
            return Err(EngineError::Storage(format!(
                "this storage was initialised with the {:?} seal, but the configuration says {}",
                cfg.kind,
                mode.name()
            )));
        }
    }
    Ok(())
}

impl Engine {
    pub fn seal_status(&self) -> SealStatus {
        if !*self.initialized.read().unwrap_or_else(|p| p.into_inner()) {
            SealStatus::Uninitialized
        } else if self
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keyring
            .is_some()
        {
            SealStatus::Unsealed
        } else {
            SealStatus::Sealed
        }
    }

    pub fn seal_info(&self) -> SealInfo {
        let cfg = read_config(&self.store).ok().flatten();
        SealInfo {
            kind: self.seal_mode.name(),
            status: self.seal_status(),
            threshold: cfg.map_or(1, |c| c.threshold),
            shares: cfg.map_or(1, |c| c.shares),
            progress: self
                .unseal_progress
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .len(),
        }
    }

    /// Opens the stored root key and keyring with `seal_key` and keeps them in memory.
    pub(super) fn unseal_with(&self, seal_key: Key32) -> EngineResult<()> {
        let root_blob = self
            .store
            .read(|c| rows::get_fact(c, ROOT_KEY_FACT))?
            .ok_or(EngineError::Crypto)?;
        let ring_blob = self
            .store
            .read(|c| rows::get_fact(c, KEYRING_FACT))?
            .ok_or(EngineError::Crypto)?;
        let root = open_root_key(&seal_key, &root_blob)?;
        let keyring = Keyring::open_under(&root, &ring_blob)?;
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Unsealed {
            seal_key: Some(seal_key),
            root_key: Some(root),
            keyring: Some(Arc::new(keyring)),
        };
        if let Err(e) = self.load_audit() {
            *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Unsealed::default();
            return Err(e);
        }
        Ok(())
    }

    /// Initialises the store: seal key (and its shares with the Shamir seal), root key, keyring, a root
    /// token, the `default` policy and a kv-v2 mount at `secret/`. With the file seal the engine is
    /// unsealed afterwards; with the Shamir seal it stays sealed until unsealed with the shares, as
    /// after `vault operator init`.
    pub async fn init(
        &self,
        root_token: Option<String>,
        shares: usize,
        threshold: usize,
    ) -> EngineResult<InitOutput> {
        let _one_at_a_time = self.init_lock.lock().await;
        if self.seal_status() != SealStatus::Uninitialized {
            return Err(EngineError::AlreadyInitialized);
        }
        let now = self.clock.now();
        let (seal_key, key_shares, cfg) = match &self.seal_mode {
            SealMode::File(k) => (
                k.clone(),
                Vec::new(),
                SealConfig {
                    kind: SealKindName::File,
                    shares: 1,
                    threshold: 1,
                },
            ),
            SealMode::Shamir => {
                if threshold == 0 || shares == 0 || threshold > shares || shares > 255 {
                    return Err(EngineError::invalid(
                        "invalid seal configuration: secret_threshold must be between 1 and secret_shares, and secret_shares at most 255",
                    ));
                }
                if shares > 1 && threshold == 1 {
                    return Err(EngineError::invalid(
                        "invalid seal configuration: threshold must be greater than one for multiple shares",
                    ));
                }
                let key = Key32::random();
                let split = shamir::split(key.as_bytes(), shares, threshold)
                    .map_err(|e| EngineError::invalid(e.to_string()))?;
                (
                    key,
                    split,
                    SealConfig {
                        kind: SealKindName::Shamir,
                        shares,
                        threshold,
                    },
                )
            }
        };
        let root = Key32::random();
        let keyring = Keyring::generate(now);
        let root_blob = seal_root_key(&seal_key, &root);
        let ring_blob = keyring.seal_under(&root);
        let token = root_token
            .map(tokens::Token::new)
            .unwrap_or_else(tokens::Token::generate);
        let token_row = tokens::root_token_row(&keyring, &token, now);
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
        let cfg_json = serde_json::to_vec(&cfg).map_err(|e| EngineError::Storage(e.to_string()))?;
        self.store
            .write(move |c| {
                rows::put_fact(c, SEAL_CONFIG_FACT, &cfg_json)?;
                rows::put_fact(c, ROOT_KEY_FACT, &root_blob)?;
                rows::put_fact(c, KEYRING_FACT, &ring_blob)?;
                token_rows::insert_token(c, &token_row)?;
                token_rows::put_named(c, Named::Policies, "default", policy::DEFAULT_POLICY)?;
                rows::insert_mount(c, &secret_mount)?;
                Ok(())
            })
            .await?;
        if let Ok(p) = policy::parse("default", policy::DEFAULT_POLICY) {
            self.policies
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert("default".into(), Arc::new(p));
        }
        *self.initialized.write().unwrap_or_else(|p| p.into_inner()) = true;
        if matches!(self.seal_mode, SealMode::File(_)) {
            *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Unsealed {
                seal_key: Some(seal_key),
                root_key: Some(root),
                keyring: Some(Arc::new(keyring)),
            };
        }
        self.reload_mounts()?;
        Ok(InitOutput {
            root_token: token,
            shares: key_shares,
        })
    }

    /// Adds an unseal share (Shamir) and unseals once enough have been given. Repeating a share does
    /// not count twice. With the file seal, unsealing re-reads nothing: it reopens with the key file.
    pub fn unseal(&self, share: Option<&[u8]>, reset: bool) -> EngineResult<SealInfo> {
        match self.seal_status() {
            SealStatus::Uninitialized => {
                return Err(EngineError::invalid("Vault is not initialized"))
            }
            SealStatus::Unsealed => return Ok(self.seal_info()),
            SealStatus::Sealed => {}
        }
        if reset {
            self.unseal_progress
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
            return Ok(self.seal_info());
        }
        match &self.seal_mode {
            SealMode::File(k) => {
                self.unseal_with(k.clone())?;
            }
            SealMode::Shamir => {
                let share =
                    share.ok_or_else(|| EngineError::invalid("missing required input key"))?;
                let threshold = self.seal_info().threshold;
                let combined = {
                    let mut progress = self
                        .unseal_progress
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    if !progress.iter().any(|s| s.as_slice() == share) {
                        progress.push(Zeroizing::new(share.to_vec()));
                    }
                    if progress.len() < threshold {
                        None
                    } else {
                        let all = std::mem::take(&mut *progress);
                        Some(shamir::combine(&all))
                    }
                };
                if let Some(combined) = combined {
                    let key = combined
                        .ok()
                        .and_then(|k| Key32::from_slice(&k))
                        .ok_or_else(|| {
                            EngineError::invalid("Error unsealing: the unseal keys are not valid")
                        })?;
                    self.unseal_with(key).map_err(|_| {
                        EngineError::invalid(
                            "Error unsealing: the unseal keys do not open the stored root key",
                        )
                    })?;
                }
            }
        }
        Ok(self.seal_info())
    }

    /// Seals: every key leaves memory; every route but the seal endpoints answers 503.
    pub fn seal(&self) -> EngineResult<()> {
        if self.seal_status() != SealStatus::Unsealed {
            return Ok(());
        }
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Unsealed::default();
        *self.audit.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Vec::new());
        Ok(())
    }

    /// `sys/key-status`: the active keyring term and when it was installed.
    pub fn key_status(&self) -> EngineResult<(u32, i64)> {
        Ok(self.keyring()?.active_term())
    }

    /// `sys/rotate`: a new keyring key seals every write from now on; old versions keep opening with
    /// their own key until rewrapped.
    pub async fn rotate_keyring(&self) -> EngineResult<(u32, i64)> {
        let (root, current) = {
            let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
            (
                keys.root_key.clone().ok_or(EngineError::Sealed)?,
                keys.keyring.clone().ok_or(EngineError::Sealed)?,
            )
        };
        let next = Arc::new(current.rotated(self.clock.now()));
        let blob = next.seal_under(&root);
        self.store
            .write(move |c| rows::put_fact(c, KEYRING_FACT, &blob))
            .await?;
        let term = next.active_term();
        self.keys.write().unwrap_or_else(|p| p.into_inner()).keyring = Some(next);
        Ok(term)
    }

    /// `sys/rotate/root`: a new root key; the keyring is re-sealed under it and the root key under the
    /// seal key, in one transaction. Unseal shares and the key file stay valid.
    pub async fn rotate_root_key(&self) -> EngineResult<()> {
        let (seal_key, keyring) = {
            let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
            (
                keys.seal_key.clone().ok_or(EngineError::Sealed)?,
                keys.keyring.clone().ok_or(EngineError::Sealed)?,
            )
        };
        let root = Key32::random();
        let root_blob = seal_root_key(&seal_key, &root);
        let ring_blob = keyring.seal_under(&root);
        self.store
            .write(move |c| {
                rows::put_fact(c, ROOT_KEY_FACT, &root_blob)?;
                rows::put_fact(c, KEYRING_FACT, &ring_blob)
            })
            .await?;
        self.keys
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .root_key = Some(root);
        Ok(())
    }
}
