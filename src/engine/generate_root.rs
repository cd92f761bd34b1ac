//! Generating a new root token from the unseal keys, with Vault's one-time-password flow
//! (`sys/generate-root`, and OpenBao's `sys/generate-root-token`): an attempt is started with an OTP
//! (given, or made here and returned once), the holders of the unseal keys give their shares, and
//! the share that reaches the threshold gets the new root token XORed with the OTP, base64 without
//! padding (Go's `base64.RawStdEncoding`, what `vault operator generate-root -decode` reverses).
//!
//! As in Vault, the attempt lives in memory, one per server; it is gone on restart. The shares are
//! checked when the threshold is reached, by opening the stored root key with what they combine to.

use std::sync::Mutex;

use base64::Engine as _;
use zeroize::Zeroizing;

use super::error::{EngineError, EngineResult};
use super::key_shares::{self, Shares};
use super::tokens::{self, Token, TOKEN_LENGTH};
use super::Engine;

/// The length of Vault's tokens (`hvs.` and 24 characters). An OTP of this length is accepted too,
/// and the root token then has this length: clients written for Vault hard-code it (hvac's own
/// generate-root test sends a fixed 28-character OTP).
pub const VAULT_TOKEN_LENGTH: usize = 28;

/// The in-progress attempt, if any (one per server, as Vault's).
#[derive(Default)]
pub(super) struct RootGeneration(Mutex<Option<Attempt>>);

impl RootGeneration {
    /// Forgets the attempt (on seal: its OTP and shares leave memory with the keys).
    pub(super) fn clear(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

struct Attempt {
    nonce: String,
    otp: Zeroizing<String>,
    shares: Shares,
}

/// An attempt's progress, as `sys/generate-root/attempt` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootGenerationStatus {
    /// The attempt's nonce; `None` when no attempt is in progress.
    pub nonce: Option<String>,
    pub progress: usize,
    pub required: usize,
    /// The length an OTP must have (kvseal's token length).
    pub otp_length: usize,
}

/// What giving a share did.
#[derive(Debug)]
pub enum RootGenerationStep {
    /// Not enough shares yet.
    Progress { progress: usize, required: usize },
    /// The threshold was reached and the shares were right: the new root token, encoded with the
    /// attempt's OTP. The attempt is over.
    Done {
        required: usize,
        encoded_token: String,
    },
}

/// Vault's message for a share given twice in one attempt.
const DUPLICATE: &str = "given key has already been provided during this generation operation";

/// `token` XOR `otp`, base64 without padding (Vault's `roottoken.EncodeToken`). Both have the same
/// length: the attempt's OTP decides the token's length.
pub fn encode_token(token: &str, otp: &str) -> String {
    let xored: Zeroizing<Vec<u8>> =
        Zeroizing::new(token.bytes().zip(otp.bytes()).map(|(t, o)| t ^ o).collect());
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(xored.as_slice())
}

impl Engine {
    fn root_generation_locked(&self) -> std::sync::MutexGuard<'_, Option<Attempt>> {
        self.root_generation
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The attempt's progress (`GET sys/generate-root/attempt`).
    pub fn root_generation_status(&self) -> EngineResult<RootGenerationStatus> {
        self.require_unsealed_for_keys()?;
        let required = self.share_threshold();
        let attempt = self.root_generation_locked();
        Ok(RootGenerationStatus {
            nonce: attempt.as_ref().map(|a| a.nonce.clone()),
            progress: attempt.as_ref().map_or(0, |a| a.shares.len()),
            required,
            otp_length: TOKEN_LENGTH,
        })
    }

    /// Starts an attempt with the client's OTP, or with one made here (returned with the status,
    /// and never shown again). Refused while another attempt is in progress.
    pub fn start_root_generation(
        &self,
        otp: Option<&str>,
    ) -> EngineResult<(RootGenerationStatus, Option<Zeroizing<String>>)> {
        self.require_unsealed_for_keys()?;
        let (otp, generated) = match otp.filter(|o| !o.is_empty()) {
            Some(o) if o.len() == TOKEN_LENGTH || o.len() == VAULT_TOKEN_LENGTH => {
                (Zeroizing::new(o.to_string()), None)
            }
            Some(_) => return Err(EngineError::invalid("OTP string has incorrect length")),
            None => {
                let o = tokens::random_base62(TOKEN_LENGTH);
                (o.clone(), Some(o))
            }
        };
        {
            let mut attempt = self.root_generation_locked();
            if attempt.is_some() {
                return Err(EngineError::invalid(
                    "root generation already in progress for this namespace",
                ));
            }
            *attempt = Some(Attempt {
                nonce: key_shares::nonce(),
                otp,
                shares: Shares::default(),
            });
        }
        tracing::info!("root token generation started");
        Ok((self.root_generation_status()?, generated))
    }

    /// Cancels the attempt, if any (its progress and OTP are forgotten).
    pub fn cancel_root_generation(&self) -> EngineResult<()> {
        self.require_unsealed_for_keys()?;
        if self.root_generation_locked().take().is_some() {
            tracing::info!("root token generation canceled");
        }
        Ok(())
    }

    /// Gives one unseal key share to the attempt named by `nonce`. The share that reaches the
    /// threshold ends the attempt: with the right shares, a new root token is stored (a real one,
    /// with the `root` policy, as `sys/init` makes) and returned encoded with the OTP; with wrong
    /// ones, the progress is forgotten and the attempt goes on (Vault's behaviour).
    pub async fn provide_root_generation_share(
        &self,
        share: &[u8],
        nonce: &str,
    ) -> EngineResult<RootGenerationStep> {
        self.require_unsealed_for_keys()?;
        key_shares::check_length(share)
            .map_err(|e| EngineError::invalid(format!("invalid key: {e}")))?;
        let required = self.share_threshold();
        let (otp, nonce) = {
            let mut slot = self.root_generation_locked();
            let attempt = slot
                .as_mut()
                .ok_or_else(|| EngineError::invalid("no root generation in progress"))?;
            if nonce != attempt.nonce {
                return Err(EngineError::invalid(format!(
                    "incorrect nonce supplied; nonce for this root generation operation is {:?}",
                    attempt.nonce
                )));
            }
            let progress = attempt.shares.add(share, DUPLICATE)?;
            if progress < required {
                return Ok(RootGenerationStep::Progress { progress, required });
            }
            if let Err(e) = self.seal_key_from_shares(&attempt.shares.take()) {
                tracing::warn!("root token generation: the unseal keys given are not valid");
                return Err(match e {
                    EngineError::Invalid(m) => {
                        EngineError::invalid(format!("root generation aborted: {m}"))
                    }
                    other => other,
                });
            }
            // Right shares: the attempt is over, whatever happens next.
            let done = slot.take();
            let otp = done.map(|a| a.otp).unwrap_or_default();
            (otp, nonce.to_string())
        };
        let token = Token::generate_of_length(otp.len());
        self.store_root_token(&token).await?;
        tracing::info!(nonce = %nonce, "root token generation finished: a new root token was made");
        Ok(RootGenerationStep::Done {
            required,
            encoded_token: encode_token(token.expose(), &otp),
        })
    }

    /// Stores a new root token entry (no parent, no expiry, the `root` policy), as `sys/init` does.
    async fn store_root_token(&self, token: &Token) -> EngineResult<()> {
        let keyring = self.keyring()?;
        let row = tokens::root_token_row(&keyring, token, self.clock.now());
        let record = super::token_entry::seal_token(&keyring, &row)?;
        self.store
            .write(move |tx| {
                tx.insert_token(&record)?;
                Ok::<_, EngineError>(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_is_xor_then_unpadded_base64() {
        // XOR with itself is all zeros: 36 zero bytes are 48 'A's, with no padding.
        assert_eq!(
            encode_token(&"k".repeat(36), &"k".repeat(36)),
            "A".repeat(48)
        );
        // 28 bytes (not a multiple of 3): unpadded, 38 characters.
        let e = encode_token(&"a".repeat(28), &"b".repeat(28));
        assert_eq!(e.len(), 38);
        assert!(!e.contains('='));
        let raw = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(&e)
            .unwrap();
        let back: String = raw.iter().map(|b| (b ^ b'b') as char).collect();
        assert_eq!(back, "a".repeat(28));
    }
}
