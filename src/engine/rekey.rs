//! Rekey: new unseal key shares (a new share count and threshold) from the current ones, as Vault's
//! `sys/rekey` (and OpenBao's `sys/rotate/root/init|update|verify`). The holders of the current
//! shares give them; once they open the stored root key, a new seal key is made and split, and in
//! one conditional write a new root key is sealed under it (as Vault's rekey also rotates the root
//! key), the keyring re-sealed under that root key, and the seal configuration replaced. With
//! `require_verification`, the new shares are handed out first and the write waits until a
//! threshold of them has been given back.
//!
//! The attempt lives in memory, one per server, as in Vault. Only the Shamir seal has shares to
//! change: with the file seal, rekey is refused.
//!
//! Other nodes on the same PostgreSQL store hold the old seal key in memory; the new one is kept in
//! the barrier too (sealed under the keyring, as Vault keeps its Shamir key in the barrier for its
//! standbys), where `follow` finds it when the stored root key no longer opens with the old one.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::error::{EngineError, EngineResult};
use super::key_shares::{self, Shares};
use super::seal::{self, KEYRING_FACT, ROOT_KEY_FACT, SEAL_CONFIG_FACT};
use super::{barrier, Engine, SealMode};
use crate::crypto::{seal_root_key, shamir, Key32};

/// The sealed document holding the current seal key, for the other nodes of a shared store.
pub(super) const SEAL_KEY_DOC: &str = "seal_key";

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct SealKeyDoc {
    /// The seal key, base64.
    key: String,
}

/// The in-progress rekey, if any (one per server).
#[derive(Default)]
pub(super) struct RekeyState(Mutex<Option<Rekey>>);

impl RekeyState {
    /// Forgets the rekey (on seal: the keys it holds leave memory with the others, as Vault clears
    /// its rekey in `preSeal`).
    pub(super) fn clear(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

struct Rekey {
    nonce: String,
    shares: usize,
    threshold: usize,
    require_verification: bool,
    /// Current shares given so far.
    progress: Shares,
    /// Once the current shares were right and verification is required: the new key, waiting for a
    /// threshold of its shares.
    pending: Option<Pending>,
}

struct Pending {
    nonce: String,
    /// The seal key the current shares gave (what the stored root key opens with).
    current: Key32,
    new_key: Key32,
    progress: Shares,
}

/// A rekey's progress, as `sys/rekey/init` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RekeyStatus {
    /// `None` when no rekey is in progress (then `shares` and `threshold` are 0).
    pub nonce: Option<String>,
    /// The new share count and threshold.
    pub shares: usize,
    pub threshold: usize,
    /// Current shares given so far.
    pub progress: usize,
    /// Current shares needed (the current threshold).
    pub required: usize,
    pub verification_required: bool,
    /// Set once the new shares were handed out and wait to be verified.
    pub verification_nonce: Option<String>,
}

/// A verification's progress, as `sys/rekey/verify` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RekeyVerifyStatus {
    /// The verification nonce; empty before the new shares were handed out.
    pub nonce: String,
    pub started: bool,
    pub shares: usize,
    pub threshold: usize,
    /// New shares given back so far.
    pub progress: usize,
}

/// What giving a current share did.
pub enum RekeyStep {
    Progress(RekeyStatus),
    /// The new shares. Without verification the seal already uses them; with it,
    /// `verification_nonce` names the verification to complete with them.
    Done {
        nonce: String,
        keys: Vec<Zeroizing<Vec<u8>>>,
        verification_nonce: Option<String>,
    },
}

/// What giving a new share back did.
pub enum RekeyVerifyStep {
    Progress(RekeyVerifyStatus),
    /// The seal uses the new shares now.
    Done {
        nonce: String,
    },
}

/// Vault's checks of a new seal configuration (`SealConfig.Validate`), in its order and words.
fn validate(shares: i64, threshold: i64) -> EngineResult<(usize, usize)> {
    let problem = if shares < 1 {
        Some("shares must be at least one")
    } else if threshold < 1 {
        Some("threshold must be at least one")
    } else if shares > 1 && threshold == 1 {
        Some("threshold must be greater than one for multiple shares")
    } else if shares > 255 {
        Some("shares must be less than 256")
    } else if threshold > 255 {
        Some("threshold must be less than 256")
    } else if threshold > shares {
        Some("threshold cannot be larger than shares")
    } else {
        None
    };
    match problem {
        Some(p) => Err(EngineError::invalid(format!(
            "invalid rekey seal configuration: {p}"
        ))),
        // In range: checked above.
        None => Ok((shares as usize, threshold as usize)),
    }
}

impl Rekey {
    fn status(&self, required: usize) -> RekeyStatus {
        RekeyStatus {
            nonce: Some(self.nonce.clone()),
            shares: self.shares,
            threshold: self.threshold,
            progress: self.progress.len(),
            required,
            verification_required: self.require_verification,
            verification_nonce: self.pending.as_ref().map(|p| p.nonce.clone()),
        }
    }

    fn verify_status(&self) -> RekeyVerifyStatus {
        RekeyVerifyStatus {
            nonce: self
                .pending
                .as_ref()
                .map(|p| p.nonce.clone())
                .unwrap_or_default(),
            started: self.pending.is_some(),
            shares: self.shares,
            threshold: self.threshold,
            progress: self.pending.as_ref().map_or(0, |p| p.progress.len()),
        }
    }
}

impl Engine {
    fn rekey_locked(&self) -> std::sync::MutexGuard<'_, Option<Rekey>> {
        self.rekey.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The rekey's progress (`GET sys/rekey/init`).
    pub fn rekey_status(&self) -> EngineResult<RekeyStatus> {
        self.require_unsealed_for_keys()?;
        let required = self.share_threshold();
        Ok(match self.rekey_locked().as_ref() {
            Some(r) => r.status(required),
            None => RekeyStatus {
                required,
                ..Default::default()
            },
        })
    }

    /// Starts a rekey to `shares` shares, any `threshold` of which unseal. Refused with the file
    /// seal, and while another rekey is in progress.
    pub fn start_rekey(
        &self,
        shares: i64,
        threshold: i64,
        require_verification: bool,
    ) -> EngineResult<RekeyStatus> {
        self.require_unsealed_for_keys()?;
        if let SealMode::File(_) = self.seal_mode {
            return Err(EngineError::invalid(
                "rekey is not supported with the file seal: there are no unseal key shares to \
                 change (the seal key is the key file)",
            ));
        }
        let (shares, threshold) = validate(shares, threshold)?;
        {
            let mut slot = self.rekey_locked();
            if slot.is_some() {
                return Err(EngineError::invalid("rekey already in progress"));
            }
            *slot = Some(Rekey {
                nonce: key_shares::nonce(),
                shares,
                threshold,
                require_verification,
                progress: Shares::default(),
                pending: None,
            });
        }
        tracing::info!(shares, threshold, require_verification, "rekey started");
        self.rekey_status()
    }

    /// Cancels the rekey, verification included (the current shares stay valid).
    pub fn cancel_rekey(&self) -> EngineResult<()> {
        self.require_unsealed_for_keys()?;
        if self.rekey_locked().take().is_some() {
            tracing::info!("rekey canceled");
        }
        Ok(())
    }

    /// Gives one current share to the rekey named by `nonce`. The share that reaches the current
    /// threshold ends this stage: wrong shares are refused and forgotten (the rekey goes on); right
    /// ones give the new shares, in force at once unless verification is required.
    pub async fn provide_rekey_share(&self, share: &[u8], nonce: &str) -> EngineResult<RekeyStep> {
        self.require_unsealed_for_keys()?;
        key_shares::check_length(share)?;
        let required = self.share_threshold();
        let (current, new_key, shares, threshold, keys) = {
            let mut slot = self.rekey_locked();
            let r = slot
                .as_mut()
                .ok_or_else(|| EngineError::invalid("no barrier rekey in progress"))?;
            if let Some(p) = &r.pending {
                return Err(EngineError::invalid(format!(
                    "rekey operation already finished; verification must be performed; nonce for \
                     the verification operation is {:?}",
                    p.nonce
                )));
            }
            if nonce != r.nonce {
                return Err(EngineError::invalid(format!(
                    "incorrect nonce supplied; nonce for this rekey operation is {:?}",
                    r.nonce
                )));
            }
            let progress = r.progress.add(
                share,
                "given key has already been provided during this generation operation",
            )?;
            if progress < required {
                return Ok(RekeyStep::Progress(r.status(required)));
            }
            let given = r.progress.take();
            let current = self.seal_key_from_shares(&given).map_err(|e| match e {
                EngineError::Invalid(m) => {
                    tracing::warn!("rekey: the unseal keys given are not valid");
                    EngineError::invalid(format!("root key verification failed: {m}"))
                }
                other => other,
            })?;
            let new_key = Key32::random();
            let keys = shamir::split(new_key.as_bytes(), r.shares, r.threshold)
                .map_err(|e| EngineError::invalid(e.to_string()))?;
            if r.require_verification {
                let verification = key_shares::nonce();
                r.pending = Some(Pending {
                    nonce: verification.clone(),
                    current,
                    new_key,
                    progress: Shares::default(),
                });
                tracing::info!("rekey: new shares handed out, waiting for their verification");
                return Ok(RekeyStep::Done {
                    nonce: r.nonce.clone(),
                    keys,
                    verification_nonce: Some(verification),
                });
            }
            (current, new_key, r.shares, r.threshold, keys)
        };
        self.apply_rekey(current, new_key, shares, threshold)
            .await?;
        self.end_rekey(nonce);
        Ok(RekeyStep::Done {
            nonce: nonce.to_string(),
            keys,
            verification_nonce: None,
        })
    }

    /// The verification's progress; `None` when no rekey is in progress.
    pub fn rekey_verify_status(&self) -> EngineResult<Option<RekeyVerifyStatus>> {
        self.require_unsealed_for_keys()?;
        Ok(self.rekey_locked().as_ref().map(Rekey::verify_status))
    }

    /// Starts the verification over: its progress is forgotten and its nonce changes (Vault's
    /// `DELETE sys/rekey/verify`); the rekey itself goes on. `None` when no rekey is in progress.
    pub fn restart_rekey_verify(&self) -> EngineResult<Option<RekeyVerifyStatus>> {
        self.require_unsealed_for_keys()?;
        let mut slot = self.rekey_locked();
        Ok(slot.as_mut().map(|r| {
            if let Some(p) = r.pending.as_mut() {
                p.progress = Shares::default();
                p.nonce = key_shares::nonce();
            }
            r.verify_status()
        }))
    }

    /// Gives back one of the new shares. At the new threshold: the shares must combine to the new
    /// key (else they are refused, forgotten, and the verification nonce changes, as in Vault), and
    /// then the rekey is done.
    pub async fn provide_rekey_verify_share(
        &self,
        share: &[u8],
        nonce: &str,
    ) -> EngineResult<RekeyVerifyStep> {
        self.require_unsealed_for_keys()?;
        key_shares::check_length(share)?;
        let (rekey_nonce, verification, current, new_key, shares, threshold) = {
            let mut slot = self.rekey_locked();
            let r = slot
                .as_mut()
                .ok_or_else(|| EngineError::invalid("no rekey in progress"))?;
            let (shares, threshold, rekey_nonce) = (r.shares, r.threshold, r.nonce.clone());
            let p = r
                .pending
                .as_mut()
                .ok_or_else(|| EngineError::invalid("no rekey verification in progress"))?;
            if nonce != p.nonce {
                return Err(EngineError::invalid(format!(
                    "incorrect nonce supplied; nonce for this verify operation is {:?}",
                    p.nonce
                )));
            }
            let progress = p.progress.add(
                share,
                "given key has already been provided during this verify operation",
            )?;
            if progress < threshold {
                return Ok(RekeyVerifyStep::Progress(r.verify_status()));
            }
            let given = p.progress.take();
            let right = shamir::combine(given.as_slice())
                .ok()
                .is_some_and(|k| p.new_key.ct_eq(&k));
            if !right {
                p.nonce = key_shares::nonce();
                tracing::warn!("rekey verification failed: the new shares given are not valid");
                return Err(EngineError::invalid(
                    "rekey verification failed; incorrect key shares supplied",
                ));
            }
            (
                rekey_nonce,
                p.nonce.clone(),
                p.current.clone(),
                p.new_key.clone(),
                shares,
                threshold,
            )
        };
        self.apply_rekey(current, new_key, shares, threshold)
            .await?;
        self.end_rekey(&rekey_nonce);
        Ok(RekeyVerifyStep::Done {
            nonce: verification,
        })
    }

    /// Forgets the rekey named `nonce` once it is done (unless it was canceled and another
    /// started meanwhile).
    fn end_rekey(&self, nonce: &str) {
        let mut slot = self.rekey_locked();
        if slot.as_ref().is_some_and(|r| r.nonce == nonce) {
            *slot = None;
        }
    }

    /// The rekey's one write: a new root key sealed under `new_key`, the keyring re-sealed under
    /// it, the new seal configuration, and `new_key` in the barrier for the other nodes. The root
    /// key is replaced only if it is still the one `current` opened (another node's rekey in
    /// between fails this one rather than being lost).
    async fn apply_rekey(
        &self,
        current: Key32,
        new_key: Key32,
        shares: usize,
        threshold: usize,
    ) -> EngineResult<()> {
        let guard = self.admin_lock().await;
        let config = seal::shamir_config(shares, threshold)?;
        let next = new_key.clone();
        self.admin_write(
            guard,
            move |tx| {
                let old_root = tx.get_fact(ROOT_KEY_FACT)?.ok_or(EngineError::Crypto)?;
                let (_, keyring) = seal::open_stored_keys(tx, &current).map_err(|e| match e {
                    EngineError::Crypto => EngineError::invalid(
                        "the seal changed since the unseal keys were checked (a rekey on another \
                         node?); start the rekey again",
                    ),
                    other => other,
                })?;
                let root = Key32::random();
                tx.replace_fact(ROOT_KEY_FACT, Some(&old_root), &seal_root_key(&next, &root))?;
                tx.put_fact(KEYRING_FACT, &keyring.seal_under(&root))?;
                tx.put_fact(SEAL_CONFIG_FACT, &config)?;
                let old_doc = tx.get_fact(SEAL_KEY_DOC)?;
                let doc = SealKeyDoc {
                    key: base64::engine::general_purpose::STANDARD.encode(next.as_bytes()),
                };
                barrier::write_doc(tx, &keyring, SEAL_KEY_DOC, old_doc.as_deref(), &doc)?;
                Ok(keyring)
            },
            move |mem, keyring| {
                let mut keys = mem.keys.write().unwrap_or_else(|p| p.into_inner());
                // Sealed meanwhile: no key comes back into memory.
                if keys.keyring.is_some() {
                    keys.seal_key = Some(new_key);
                    keys.keyring = Some(Arc::new(keyring));
                }
                Ok(())
            },
        )
        .await?;
        tracing::info!(
            shares,
            threshold,
            "rekey done: the seal uses the new shares"
        );
        Ok(())
    }

    /// The seal key another node's rekey left in the barrier, opened with the keyring in memory
    /// (`None` when no rekey ever stored one). `follow` uses it when the stored root key no longer
    /// opens with the seal key this node holds.
    pub(super) fn rekeyed_seal_key(&self) -> EngineResult<Option<Key32>> {
        let keyring = self.keyring()?;
        let doc = self
            .store
            .read(|tx| barrier::read_doc::<SealKeyDoc>(tx, &keyring, SEAL_KEY_DOC))?;
        Ok(doc.and_then(|(_, d)| {
            let bytes = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(&d.key)
                    .ok()?,
            );
            Key32::from_slice(&bytes)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::clock::Clock;
    use crate::storage::{Durability, Store};

    #[test]
    fn new_configurations_are_checked_in_vaults_order_and_words() {
        type Want = Result<(usize, usize), &'static str>;
        let cases: [(i64, i64, Want); 9] = [
            (0, 0, Err("shares must be at least one")),
            (-1, 2, Err("shares must be at least one")),
            (3, 0, Err("threshold must be at least one")),
            (
                3,
                1,
                Err("threshold must be greater than one for multiple shares"),
            ),
            (256, 3, Err("shares must be less than 256")),
            (2, 3, Err("threshold cannot be larger than shares")),
            (1, 1, Ok((1, 1))),
            (3, 2, Ok((3, 2))),
            (255, 255, Ok((255, 255))),
        ];
        for (n, t, want) in cases {
            let got = validate(n, t).map_err(|e| e.to_string());
            let want = want.map_err(|m| format!("invalid rekey seal configuration: {m}"));
            assert_eq!(got, want, "{n}/{t}");
        }
    }

    /// A Shamir engine on SQLite, initialised with 3 shares (threshold 2) and unsealed.
    async fn unsealed() -> (Engine, Vec<Zeroizing<Vec<u8>>>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("kvseal-test-{}", uuid::Uuid::new_v4()));
        let store = Store::open(&dir, Durability::Normal).unwrap();
        let engine = Engine::open(store, SealMode::Shamir, Clock::default()).unwrap();
        let out = engine.init(None, 3, 2).await.unwrap();
        engine.unseal(Some(&out.shares[0]), false).unwrap();
        engine.unseal(Some(&out.shares[1]), false).unwrap();
        (engine, out.shares, dir)
    }

    async fn rekey(engine: &Engine, shares: &[Zeroizing<Vec<u8>>]) -> Vec<Zeroizing<Vec<u8>>> {
        let nonce = engine.start_rekey(3, 2, false).unwrap().nonce.unwrap();
        assert!(matches!(
            engine.provide_rekey_share(&shares[0], &nonce).await,
            Ok(RekeyStep::Progress(_))
        ));
        match engine.provide_rekey_share(&shares[2], &nonce).await {
            Ok(RekeyStep::Done { keys, .. }) => keys,
            _ => panic!("the rekey did not complete"),
        }
    }

    #[actix_web::test]
    async fn a_rekey_keeps_the_new_seal_key_in_the_barrier() {
        let (engine, shares, dir) = unsealed().await;
        assert!(engine.rekeyed_seal_key().unwrap().is_none());
        let new = rekey(&engine, &shares).await;
        let stored = engine.rekeyed_seal_key().unwrap().unwrap();
        let combined = shamir::combine(&new[1..]).unwrap();
        assert!(stored.ct_eq(&combined));
        assert!(engine.seal_key().unwrap().ct_eq(&combined));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[actix_web::test]
    async fn a_node_holding_the_old_seal_key_takes_the_new_one_from_the_barrier() {
        let (engine, shares, dir) = unsealed().await;
        let old = engine.seal_key().unwrap();
        let new = rekey(&engine, &shares).await;
        // As another node of the store would be: unsealed with the old key.
        engine.mem.keys.write().unwrap().seal_key = Some(old);
        engine.reload_keyring().unwrap();
        let combined = shamir::combine(&new[..2]).unwrap();
        assert!(engine.seal_key().unwrap().ct_eq(&combined));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[actix_web::test]
    async fn a_concurrent_change_of_the_root_key_fails_the_rekey_and_keeps_the_seal() {
        let (engine, shares, dir) = unsealed().await;
        let nonce = engine.start_rekey(3, 2, true).unwrap().nonce.unwrap();
        engine.provide_rekey_share(&shares[0], &nonce).await.ok();
        let Ok(RekeyStep::Done {
            keys,
            verification_nonce: Some(v),
            ..
        }) = engine.provide_rekey_share(&shares[1], &nonce).await
        else {
            panic!("no verification");
        };
        // Another rekey committed meanwhile (here: from the same shares, bypassing this attempt).
        let other = Key32::random();
        engine
            .apply_rekey(engine.seal_key().unwrap(), other.clone(), 2, 2)
            .await
            .unwrap();
        engine.provide_rekey_verify_share(&keys[0], &v).await.ok();
        let err = engine
            .provide_rekey_verify_share(&keys[1], &v)
            .await
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .starts_with("the seal changed since the unseal keys were checked"),
            "{err}"
        );
        assert!(engine.seal_key().unwrap().ct_eq(other.as_bytes()));
        let _ = std::fs::remove_dir_all(dir);
    }
}
