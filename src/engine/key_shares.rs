//! What generate-root and rekey share: collecting unseal key shares one request at a time, and
//! turning the collected shares into the seal key, checked by opening the stored root key with it.
//!
//! As in Vault, a share is only checked when the threshold is reached (a single share cannot be
//! checked: any bytes are a valid Shamir share); a wrong set is refused then, and its progress
//! forgotten.

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::error::{EngineError, EngineResult};
use super::seal::{self, SealStatus};
use super::{Engine, SealMode};
use crate::crypto::{shamir, Key32};

/// Vault's bounds on a share: its barrier's key lengths (16 to 32 bytes) plus the Shamir share's
/// one-byte x coordinate. kvseal's shares are 33 bytes, and the file seal's key 32.
const MIN_SHARE: usize = 16;
const MAX_SHARE: usize = 33;

/// The shares given so far in one operation (wiped when dropped).
#[derive(Default)]
pub(super) struct Shares(Vec<Zeroizing<Vec<u8>>>);

impl Shares {
    /// Adds `share`; a share given twice is refused with `duplicate` (Vault's message for the
    /// operation), compared in constant time: the shares given so far are secrets the caller may
    /// not know.
    pub fn add(&mut self, share: &[u8], duplicate: &str) -> EngineResult<usize> {
        if self.0.iter().any(|s| bool::from(s.as_slice().ct_eq(share))) {
            return Err(EngineError::invalid(duplicate));
        }
        self.0.push(Zeroizing::new(share.to_vec()));
        Ok(self.0.len())
    }

    pub fn as_slice(&self) -> &[Zeroizing<Vec<u8>>] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Takes every share out, leaving none (the threshold was reached: right or wrong, the next
    /// attempt starts from nothing, as Vault's does).
    pub fn take(&mut self) -> Shares {
        Shares(std::mem::take(&mut self.0))
    }
}

/// Vault's length check of a share, before anything else is done with it.
pub(super) fn check_length(share: &[u8]) -> EngineResult<()> {
    if share.len() < MIN_SHARE {
        return Err(EngineError::invalid(format!(
            "key is shorter than minimum {MIN_SHARE} bytes"
        )));
    }
    if share.len() > MAX_SHARE {
        return Err(EngineError::invalid(format!(
            "key is longer than maximum {MAX_SHARE} bytes"
        )));
    }
    Ok(())
}

/// Why a complete set of shares was refused.
pub(super) const SHARES_REFUSED: &str = "the unseal keys given do not open the stored root key";

impl Engine {
    /// Generate-root and rekey run on an unsealed server only: 400 before `sys/init` (Vault's
    /// "server is not yet initialized"), 503 while sealed.
    pub(super) fn require_unsealed_for_keys(&self) -> EngineResult<()> {
        match self.seal_status() {
            SealStatus::Uninitialized => Err(EngineError::invalid("server is not yet initialized")),
            SealStatus::Sealed => Err(EngineError::Sealed),
            SealStatus::Unsealed => Ok(()),
        }
    }

    /// How many shares open the seal now: the stored threshold (1 with the file seal, whose one
    /// "share" is the seal key itself).
    pub(super) fn share_threshold(&self) -> usize {
        self.seal_info().threshold.max(1)
    }

    /// The seal key the shares give, if it opens the stored root key (read from storage, so a key
    /// changed by another node is the one checked). With the file seal the one share is the seal
    /// key: the key file's content, decoded.
    pub(super) fn seal_key_from_shares(&self, shares: &Shares) -> EngineResult<Key32> {
        let refused = || EngineError::invalid(SHARES_REFUSED);
        let key = match &self.seal_mode {
            SealMode::File(_) => match shares.0.as_slice() {
                [one] => Key32::from_slice(one),
                _ => None,
            },
            SealMode::Shamir => shamir::combine(&shares.0)
                .ok()
                .and_then(|k| Key32::from_slice(&k)),
        }
        .ok_or_else(refused)?;
        match self.store.read(|tx| seal::open_stored_keys(tx, &key)) {
            Ok(_) => Ok(key),
            Err(EngineError::Crypto) => Err(refused()),
            Err(e) => Err(e),
        }
    }
}

/// A fresh nonce for an operation (Vault's are UUIDs).
pub(super) fn nonce() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_counts_once() {
        let mut s = Shares::default();
        assert_eq!(s.add(&[1; 33], "dup").unwrap(), 1);
        assert_eq!(s.add(&[2; 33], "dup").unwrap(), 2);
        assert_eq!(s.add(&[1; 33], "dup").unwrap_err().to_string(), "dup");
        assert_eq!(s.take().len(), 2);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn share_lengths_are_vaults_bounds() {
        for (len, ok) in [(15, false), (16, true), (32, true), (33, true), (34, false)] {
            assert_eq!(check_length(&vec![0; len]).is_ok(), ok, "{len}");
        }
    }
}
