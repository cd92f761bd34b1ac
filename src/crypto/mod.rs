//! Encryption at rest.
//!
//! Layering (as Vault's barrier): a 32-byte **root key** (here from the key file of seal type `file`)
//! seals the **keyring**; the keyring holds the data keys that seal each secret version, each with an id
//! stored beside the ciphertext so keys can rotate, plus the key used to hash tokens.
//! Values use XChaCha20-Poly1305 with a random 24-byte nonce; the associated data binds mount id,
//! secret path and version number, so a ciphertext copied to another row fails to open.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::engine::error::EngineError;

pub mod shamir;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const KEYRING_AAD: &[u8] = b"kvseal/keyring/v1";
const ROOT_KEY_AAD: &[u8] = b"kvseal/root-key/v1";

/// A 32-byte key that is wiped from memory when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Key32([u8; 32]);

impl Key32 {
    pub fn random() -> Self {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        Self(k)
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; 32] = bytes.try_into().ok()?;
        Some(Self(arr))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether `other` is this key, in constant time (a wrong length is `false` at once: the length
    /// of a key is no secret).
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        bool::from(subtle::ConstantTimeEq::ct_eq(&self.0[..], other))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.0).into())
    }
}

impl std::fmt::Debug for Key32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key32(<redacted>)")
    }
}

/// A sealed value: nonce and ciphertext (tag included).
pub struct Sealed {
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

fn seal_with(key: &Key32, plaintext: &[u8], aad: &[u8]) -> Sealed {
    let mut nonce = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ciphertext = key
        .cipher()
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        // Encryption only fails for inputs beyond XChaCha20's 256 GiB limit, far above any request limit.
        .unwrap_or_default();
    Sealed {
        nonce: nonce.to_vec(),
        ciphertext,
    }
}

fn open_with(
    key: &Key32,
    nonce: &[u8],
    ciphertext: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, EngineError> {
    if nonce.len() != 24 {
        return Err(EngineError::Crypto);
    }
    key.cipher()
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| EngineError::Crypto)
}

/// HMAC-SHA256 under a 32-byte key. The key is zero-padded to SHA-256's 64-byte block, which is
/// exactly what HMAC does with a short key, so this is standard HMAC without a fallible constructor.
pub fn hmac_sha256(key: &Key32, data: &[u8]) -> Vec<u8> {
    use hmac::digest::KeyInit;
    let mut block = Zeroizing::new([0u8; 64]);
    block[..32].copy_from_slice(&key.0);
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&(*block).into());
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Associated data for a secret version: binds the ciphertext to its row.
pub fn version_aad(mount_id: i64, path: &str, version: u64) -> Vec<u8> {
    let mut aad = Vec::with_capacity(32 + path.len());
    aad.extend_from_slice(b"kvseal/v1/");
    aad.extend_from_slice(&mount_id.to_be_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad.extend_from_slice(path.as_bytes());
    aad
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    id: u32,
    key: String,
    created_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct StoredKeyring {
    keys: Vec<StoredKey>,
    token_hmac_key: String,
}

/// The keyring: data keys by id (the newest seals new writes) and the token-hashing key.
pub struct Keyring {
    keys: Vec<(u32, Key32, i64)>,
    token_hmac_key: Key32,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring({} keys, <redacted>)", self.keys.len())
    }
}

impl Keyring {
    pub fn generate(now_ns: i64) -> Self {
        Self {
            keys: vec![(1, Key32::random(), now_ns)],
            token_hmac_key: Key32::random(),
        }
    }

    /// The key for new writes: the newest. A keyring is never empty (`generate` makes one key and
    /// `open_under` refuses an empty one), but this stays an error rather than a panic.
    fn active(&self) -> Result<(u32, &Key32), EngineError> {
        self.keys
            .last()
            .map(|(id, key, _)| (*id, key))
            .ok_or(EngineError::Crypto)
    }

    /// The id (Vault's "term") of the key that seals new writes, and when it was installed.
    pub fn active_term(&self) -> (u32, i64) {
        self.keys
            .last()
            .map(|(id, _, t)| (*id, *t))
            .unwrap_or((0, 0))
    }

    /// A copy of this keyring with one more key, which becomes the active one. Old keys stay so old
    /// versions still open (`sys/rotate`).
    pub fn rotated(&self, now_ns: i64) -> Self {
        let mut keys = self.keys.clone();
        let next = keys.last().map(|(id, _, _)| id + 1).unwrap_or(1);
        keys.push((next, Key32::random(), now_ns));
        Self {
            keys,
            token_hmac_key: self.token_hmac_key.clone(),
        }
    }

    /// Seals a value; returns the key id to store beside it.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<(u32, Sealed), EngineError> {
        let (id, key) = self.active()?;
        Ok((id, seal_with(key, plaintext, aad)))
    }

    pub fn open(
        &self,
        key_id: u32,
        nonce: &[u8],
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, EngineError> {
        let key = self
            .keys
            .iter()
            .find(|(id, _, _)| *id == key_id)
            .map(|(_, k, _)| k)
            .ok_or(EngineError::Crypto)?;
        open_with(key, nonce, ciphertext, aad)
    }

    /// HMAC-SHA256 of a token under the keyring's token key: the only form in which tokens are stored.
    pub fn token_hash(&self, token: &str) -> Vec<u8> {
        hmac_sha256(&self.token_hmac_key, token.as_bytes())
    }

    /// Seals the keyring under the root key for storage.
    pub fn seal_under(&self, root: &Key32) -> Vec<u8> {
        let stored = StoredKeyring {
            keys: self
                .keys
                .iter()
                .map(|(id, k, t)| StoredKey {
                    id: *id,
                    key: B64.encode(k.0),
                    created_ns: *t,
                })
                .collect(),
            token_hmac_key: B64.encode(self.token_hmac_key.0),
        };
        let json = Zeroizing::new(serde_json::to_vec(&stored).unwrap_or_default());
        let sealed = seal_with(root, &json, KEYRING_AAD);
        let mut out = sealed.nonce;
        out.extend_from_slice(&sealed.ciphertext);
        out
    }

    /// Opens a stored keyring; a wrong root key fails here (the server then stays sealed).
    pub fn open_under(root: &Key32, blob: &[u8]) -> Result<Self, EngineError> {
        if blob.len() < 24 {
            return Err(EngineError::Crypto);
        }
        let json = open_with(root, &blob[..24], &blob[24..], KEYRING_AAD)?;
        let stored: StoredKeyring =
            serde_json::from_slice(&json).map_err(|_| EngineError::Crypto)?;
        let decode = |s: &str| -> Result<Key32, EngineError> {
            let bytes = Zeroizing::new(B64.decode(s).map_err(|_| EngineError::Crypto)?);
            let arr: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| EngineError::Crypto)?;
            Ok(Key32(arr))
        };
        let mut keys = Vec::new();
        for k in &stored.keys {
            keys.push((k.id, decode(&k.key)?, k.created_ns));
        }
        if keys.is_empty() {
            return Err(EngineError::Crypto);
        }
        Ok(Self {
            keys,
            token_hmac_key: decode(&stored.token_hmac_key)?,
        })
    }
}

/// Seals the root key under the seal's key (the key file, or the key the Shamir shares combine to).
pub fn seal_root_key(seal_key: &Key32, root: &Key32) -> Vec<u8> {
    let sealed = seal_with(seal_key, &root.0, ROOT_KEY_AAD);
    let mut out = sealed.nonce;
    out.extend_from_slice(&sealed.ciphertext);
    out
}

/// Opens the stored root key; a wrong seal key fails here.
pub fn open_root_key(seal_key: &Key32, blob: &[u8]) -> Result<Key32, EngineError> {
    if blob.len() < 24 {
        return Err(EngineError::Crypto);
    }
    let bytes = open_with(seal_key, &blob[..24], &blob[24..], ROOT_KEY_AAD)?;
    Key32::from_slice(&bytes).ok_or(EngineError::Crypto)
}

/// Loads the seal key from `path`, creating it (mode 0600, 32 random bytes, base64) when missing.
pub fn load_or_create_key_file(path: &Path) -> std::io::Result<Key32> {
    match std::fs::File::open(path) {
        Ok(mut f) => {
            let mut text = Zeroizing::new(String::new());
            f.read_to_string(&mut text)?;
            let bytes = Zeroizing::new(B64.decode(text.trim()).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: not a base64-encoded 32-byte key", path.display()),
                )
            })?);
            let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: the key must be 32 bytes", path.display()),
                )
            })?;
            Ok(Key32(arr))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Key32::random();
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
            let text = Zeroizing::new(B64.encode(key.0));
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            Ok(key)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper_detection() {
        let ring = Keyring::generate(1);
        let aad = version_aad(1, "a/b", 3);
        let (id, sealed) = ring.seal(b"hunter2", &aad).unwrap();
        assert_eq!(
            ring.open(id, &sealed.nonce, &sealed.ciphertext, &aad)
                .unwrap()
                .as_slice(),
            b"hunter2"
        );
        // Moved to another row: different AAD.
        for other in [
            version_aad(2, "a/b", 3),
            version_aad(1, "a/c", 3),
            version_aad(1, "a/b", 4),
        ] {
            assert!(ring
                .open(id, &sealed.nonce, &sealed.ciphertext, &other)
                .is_err());
        }
        // A flipped bit.
        let mut bad = sealed.ciphertext.clone();
        bad[0] ^= 1;
        assert!(ring.open(id, &sealed.nonce, &bad, &aad).is_err());
        assert!(!sealed.ciphertext.windows(7).any(|w| w == b"hunter2"));
    }

    #[test]
    fn padded_hmac_is_standard_hmac() {
        let key = Key32::random();
        let mut reference = <Hmac<Sha256> as Mac>::new_from_slice(&key.0).unwrap();
        reference.update(b"kvs.token");
        assert_eq!(
            hmac_sha256(&key, b"kvs.token"),
            reference.finalize().into_bytes().to_vec()
        );
    }

    #[test]
    fn keyring_opens_only_under_its_root_key() {
        let root = Key32::random();
        let ring = Keyring::generate(1);
        let blob = ring.seal_under(&root);
        let back = Keyring::open_under(&root, &blob).unwrap();
        assert_eq!(back.token_hash("t"), ring.token_hash("t"));
        assert!(Keyring::open_under(&Key32::random(), &blob).is_err());
    }
}
