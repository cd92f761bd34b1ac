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
use super::{barrier, model, mounts, path, policies, token_roles, tokens, Engine, Unsealed};
use crate::crypto::{open_root_key, seal_root_key, shamir, Key32, Keyring};
use crate::policy;
use crate::storage::{ReadTx, Store};

pub(super) const KEYRING_FACT: &str = "keyring";
pub(super) const ROOT_KEY_FACT: &str = "root_key";
pub(super) const SEAL_CONFIG_FACT: &str = "seal_config";

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

impl SealKindName {
    fn name(self) -> &'static str {
        match self {
            SealKindName::File => "file",
            SealKindName::Shamir => "shamir",
        }
    }
}

/// The seal type (`"file"` or `"shamir"`) and the threshold recorded in a `seal_config` fact.
pub(super) fn parse_seal_config(raw: &[u8]) -> Option<(&'static str, usize)> {
    let cfg: SealConfig = serde_json::from_slice(raw).ok()?;
    Some((cfg.kind.name(), cfg.threshold))
}

/// The `seal_config` fact of a Shamir seal of `shares` shares, any `threshold` of which unseal (what
/// a rekey stores).
pub(super) fn shamir_config(shares: usize, threshold: usize) -> EngineResult<Vec<u8>> {
    let cfg = SealConfig {
        kind: SealKindName::Shamir,
        shares,
        threshold,
    };
    serde_json::to_vec(&cfg).map_err(|e| EngineError::Storage(e.to_string()))
}

fn read_config(store: &Store) -> EngineResult<Option<SealConfig>> {
    let raw = store.read(|tx| tx.get_fact(SEAL_CONFIG_FACT))?;
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

/// Whether `sys/init` has run on this store (it has a keyring).
pub fn is_initialized(store: &Store) -> EngineResult<bool> {
    Ok(store.read(|tx| tx.get_fact(KEYRING_FACT))?.is_some())
}

/// Opens the stored root key and keyring with `seal_key`, both read from the same connection (one
/// snapshot, or the writer's transaction for a key change).
pub(super) fn open_stored_keys(
    tx: &dyn ReadTx,
    seal_key: &Key32,
) -> EngineResult<(Key32, Keyring)> {
    let root_blob = tx.get_fact(ROOT_KEY_FACT)?.ok_or(EngineError::Crypto)?;
    let ring_blob = tx.get_fact(KEYRING_FACT)?.ok_or(EngineError::Crypto)?;
    let root = open_root_key(seal_key, &root_blob)?;
    let keyring = Keyring::open_under(&root, &ring_blob)?;
    Ok((root, keyring))
}

impl Engine {
    pub fn seal_status(&self) -> SealStatus {
        if !*self
            .mem
            .initialized
            .read()
            .unwrap_or_else(|p| p.into_inner())
        {
            SealStatus::Uninitialized
        } else if self
            .mem
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

    /// Opens the stored root key and keyring with `seal_key`, seals a schema-1 store's records (once),
    /// loads the sealed mount table, policies and audit devices, and keeps the keyring in memory.
    /// Any of those tables failing authentication leaves the engine sealed (the log names it):
    /// serving without its mounts, its `deny` policies or its audit devices would fail open.
    pub(super) fn unseal_with(&self, seal_key: Key32) -> EngineResult<()> {
        let (_root, keyring) = self.store.read(|tx| open_stored_keys(tx, &seal_key))?;
        let keyring = Arc::new(keyring);
        if self.store.needs_v1_migration()? {
            super::migrate_v1::run(&self.store, &keyring, self.clock.now())?;
        }
        let (mounts, policy_cache) = self.store.read(|tx| {
            let (_, table) = mounts::read_table(tx, &keyring)?;
            let cache = policies::load_cache(tx, &keyring)?;
            Ok::<_, EngineError>((table.mounts, cache))
        })?;
        let devices = self.load_audit(&keyring)?;
        self.mem.set_mounts(mounts);
        *self.mem.policies.write().unwrap_or_else(|p| p.into_inner()) = policy_cache;
        self.mem.acl_cache.invalidate();
        *self.mem.keys.write().unwrap_or_else(|p| p.into_inner()) = Unsealed {
            seal_key: Some(seal_key),
            keyring: Some(keyring),
        };
        *self.mem.audit.write().unwrap_or_else(|p| p.into_inner()) = devices;
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
        let guard = self.admin_lock().await;
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
        let token_record = super::token_entry::seal_token(&keyring, &token_row)?;
        let mut secret_mount = mounts::new_mount_record(
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
        let default_policy = policy::parse("default", policy::DEFAULT_POLICY)
            .map_err(|e| EngineError::Storage(format!("the built-in default policy: {e}")))?;
        let unseal_now = matches!(self.seal_mode, SealMode::File(_));
        let keyring = Arc::new(keyring);
        let ring = Arc::clone(&keyring);
        secret_mount.id = 1;
        self.admin_write(
            guard,
            move |tx| {
                // Conditional: with several nodes on one database, two `sys/init` calls may race;
                // the loser finds the keyring stored when its transaction runs again.
                if tx.get_fact(KEYRING_FACT)?.is_some() {
                    return Err(EngineError::AlreadyInitialized);
                }
                tx.replace_fact(SEAL_CONFIG_FACT, None, &cfg_json)?;
                tx.replace_fact(ROOT_KEY_FACT, None, &root_blob)?;
                tx.replace_fact(KEYRING_FACT, None, &ring_blob)?;
                tx.insert_token(&token_record)?;
                let policies: policies::PolicyTexts =
                    [("default".to_string(), policy::DEFAULT_POLICY.to_string())].into();
                barrier::write_doc(tx, &ring, policies::POLICIES_DOC, None, &policies)?;
                let roles = std::collections::BTreeMap::<String, String>::new();
                barrier::write_doc(tx, &ring, token_roles::ROLES_DOC, None, &roles)?;
                barrier::write_doc(tx, &ring, super::audit::AUDIT_DOC, None, &Vec::<()>::new())?;
                let table = mounts::MountTable {
                    next_id: 2,
                    mounts: vec![secret_mount.clone()],
                    ..Default::default()
                };
                barrier::write_doc(tx, &ring, mounts::MOUNTS_DOC, None, &table)?;
                Ok(table.mounts)
            },
            move |mem, mounts| {
                mem.set_mounts(mounts);
                mem.policies
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .parsed
                    .insert("default".into(), Arc::new(default_policy));
                mem.acl_cache.invalidate();
                // With the file seal the server is unsealed at once; with the Shamir seal it stays
                // sealed until unsealed with the shares, as after `vault operator init`.
                if unseal_now {
                    *mem.keys.write().unwrap_or_else(|p| p.into_inner()) = Unsealed {
                        seal_key: Some(seal_key),
                        keyring: Some(keyring),
                    };
                }
                *mem.initialized.write().unwrap_or_else(|p| p.into_inner()) = true;
                Ok(())
            },
        )
        .await?;
        Ok(InitOutput {
            root_token: token,
            shares: key_shares,
        })
    }

    /// Adds an unseal share (Shamir) and unseals once enough have been given. Repeating a share does
    /// not count twice. With the file seal, `share` must be the seal key itself (the key file's
    /// content, decoded): after `sys/seal`, whoever can reach `sys/unseal` without a token must not
    /// be able to undo it, so the key is asked for exactly as Vault asks for its unseal key.
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
                let given =
                    share.ok_or_else(|| EngineError::invalid("missing required input key"))?;
                if !k.ct_eq(given) {
                    return Err(EngineError::invalid(
                        "Error unsealing: the key is not the seal key (give the content of the seal key file)",
                    ));
                }
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
                    // Constant time: the shares given so far are secrets the caller may not know.
                    if !progress
                        .iter()
                        .any(|s| bool::from(subtle::ConstantTimeEq::ct_eq(s.as_slice(), share)))
                    {
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

    /// Seals: every key leaves memory; every route but the seal endpoints answers 503. Waits for an
    /// administrative change in progress, so that none completes into a sealed engine.
    pub async fn seal(&self) -> EngineResult<()> {
        let _guard = self.admin_lock().await;
        if self.seal_status() != SealStatus::Unsealed {
            return Ok(());
        }
        // What was opened with the keys leaves memory with them; unseal loads it again.
        self.mem.forget_keys();
        self.token_cache.invalidate();
        self.record_cache.clear();
        // A generate-root or rekey attempt holds an OTP, shares and seal keys: they go too.
        self.root_generation.clear();
        self.rekey.clear();
        Ok(())
    }

    /// The seal key in memory (only while unsealed).
    pub(super) fn seal_key(&self) -> EngineResult<Key32> {
        self.mem
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .seal_key
            .clone()
            .ok_or(EngineError::Sealed)
    }

    /// `sys/key-status`: the active keyring term and when it was installed.
    pub fn key_status(&self) -> EngineResult<(u32, i64)> {
        Ok(self.keyring()?.active_term())
    }

    /// `sys/rotate`: a new keyring key seals every write from now on; old versions keep opening with
    /// their own key until rewrapped. The new keyring is derived from the stored one, under the
    /// stored root key, in the transaction that stores it.
    pub async fn rotate_keyring(&self) -> EngineResult<(u32, i64)> {
        let guard = self.admin_lock().await;
        let seal_key = self.seal_key_now()?;
        let now = self.clock.now();
        self.admin_write(
            guard,
            move |tx| {
                let (root, current) = open_stored_keys(tx, &seal_key)?;
                let next = current.rotated(now);
                tx.put_fact(KEYRING_FACT, &next.seal_under(&root))?;
                Ok(next)
            },
            |mem, next| {
                let term = next.active_term();
                mem.set_keyring(Arc::new(next));
                Ok(term)
            },
        )
        .await
    }

    /// `sys/rotate/root`: a new root key; the stored keyring is re-sealed under it and the root key
    /// under the seal key, in one transaction. Unseal shares and the key file stay valid.
    pub async fn rotate_root_key(&self) -> EngineResult<()> {
        let guard = self.admin_lock().await;
        let seal_key = self.seal_key_now()?;
        self.admin_write(
            guard,
            move |tx| {
                let (_old_root, keyring) = open_stored_keys(tx, &seal_key)?;
                let root = Key32::random();
                tx.put_fact(ROOT_KEY_FACT, &seal_root_key(&seal_key, &root))?;
                tx.put_fact(KEYRING_FACT, &keyring.seal_under(&root))?;
                Ok(keyring)
            },
            |mem, keyring| {
                mem.set_keyring(Arc::new(keyring));
                Ok(())
            },
        )
        .await
    }
}
