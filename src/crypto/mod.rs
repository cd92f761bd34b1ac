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

/// Why a sealed value did not open. Deliberately without detail: a caller learns that the bytes are
/// not what was sealed, never which part differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The ciphertext, its nonce or its associated data is not what was sealed, or the key is wrong.
    #[error("stored data failed authentication")]
    Authentication,
    /// The sealed value names a key the keyring does not have.
    #[error("stored data names an unknown key")]
    UnknownKey,
    /// Sealing with a keyring that a snapshot restore replaced (see [`Keyring::retire`]).
    #[error("the keyring was replaced by a snapshot restore")]
    Retired,
}

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
    // A user-space CSPRNG (ChaCha12, seeded and periodically reseeded from the OS): every record is
    // sealed now, two seals per write, and a getrandom system call each showed in the writer's
    // profile. Keys still come from the OS directly.
    rand::thread_rng().fill_bytes(&mut nonce);
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
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if nonce.len() != 24 {
        return Err(CryptoError::Authentication);
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
        .map_err(|_| CryptoError::Authentication)
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

/// A key in base64 inside the stored keyring's JSON, wiped from memory when dropped.
struct B64Key(Zeroizing<String>);

impl B64Key {
    fn of(key: &Key32) -> Self {
        // `encode` allocates the exact length once: no reallocation leaves a copy behind.
        Self(Zeroizing::new(B64.encode(key.0)))
    }

    fn key(&self) -> Result<Key32, CryptoError> {
        let mut bytes = Zeroizing::new([0u8; 48]);
        let n = B64
            .decode_slice(self.0.as_bytes(), &mut bytes[..])
            .map_err(|_| CryptoError::Authentication)?;
        Key32::from_slice(&bytes[..n]).ok_or(CryptoError::Authentication)
    }
}

impl Serialize for B64Key {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for B64Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self(Zeroizing::new(String::deserialize(d)?)))
    }
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    id: u32,
    key: B64Key,
    created_ns: i64,
}

#[derive(Serialize, Deserialize)]
struct StoredKeyring {
    keys: Vec<StoredKey>,
    token_hmac_key: B64Key,
}

/// The keyring: data keys by id (the newest seals new writes) and the token-hashing key.
pub struct Keyring {
    keys: Vec<(u32, Key32, i64)>,
    token_hmac_key: Key32,
    /// Set once a snapshot restore replaced this keyring: it then seals nothing (see
    /// [`Keyring::retire`]).
    retired: std::sync::atomic::AtomicBool,
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
            retired: Default::default(),
        }
    }

    /// The key for new writes: the newest. A keyring is never empty (`generate` makes one key and
    /// `open_under` refuses an empty one), but this stays an error rather than a panic.
    fn active(&self) -> Result<(u32, &Key32), CryptoError> {
        self.keys
            .last()
            .map(|(id, key, _)| (*id, key))
            .ok_or(CryptoError::Authentication)
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
            retired: Default::default(),
        }
    }

    /// Whether the keyring holds key `key_id`.
    pub fn has_key(&self, key_id: u32) -> bool {
        self.keys.iter().any(|(id, _, _)| *id == key_id)
    }

    /// Whether every key of `other` is in this keyring, under the same id, and the token key is the
    /// same: what `other` sealed, this keyring opens, and tokens hash the same.
    pub fn contains(&self, other: &Keyring) -> bool {
        self.token_hmac_key.ct_eq(&other.token_hmac_key.0)
            && other.keys.iter().all(|(id, key, _)| {
                self.keys
                    .iter()
                    .any(|(mine, k, _)| mine == id && k.ct_eq(&key.0))
            })
    }

    /// Stops this keyring sealing anything (it still opens). A snapshot restore retires the keyring
    /// it replaces when the restored one lacks some of its keys: a write that took this keyring
    /// before the restore and runs after it must fail (the client retries) rather than seal a
    /// record under a key the restored store does not have, which no one could open again.
    pub fn retire(&self) {
        self.retired
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Seals a value; returns the key id to store beside it.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<(u32, Sealed), CryptoError> {
        if self.retired.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(CryptoError::Retired);
        }
        let (id, key) = self.active()?;
        Ok((id, seal_with(key, plaintext, aad)))
    }

    pub fn open(
        &self,
        key_id: u32,
        nonce: &[u8],
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let key = self
            .keys
            .iter()
            .find(|(id, _, _)| *id == key_id)
            .map(|(_, k, _)| k)
            .ok_or(CryptoError::UnknownKey)?;
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
                    key: B64Key::of(k),
                    created_ns: *t,
                })
                .collect(),
            token_hmac_key: B64Key::of(&self.token_hmac_key),
        };
        // Room for every entry (about 110 bytes each) up front: a growing buffer would leave copies
        // of the keys in freed memory.
        let mut json = Zeroizing::new(Vec::with_capacity(160 * (self.keys.len() + 2)));
        // Serialising strings and numbers into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *json, &stored);
        let sealed = seal_with(root, &json, KEYRING_AAD);
        let mut out = sealed.nonce;
        out.extend_from_slice(&sealed.ciphertext);
        out
    }

    /// Opens a stored keyring; a wrong root key fails here (the server then stays sealed).
    pub fn open_under(root: &Key32, blob: &[u8]) -> Result<Self, CryptoError> {
        if blob.len() < 24 {
            return Err(CryptoError::Authentication);
        }
        let json = open_with(root, &blob[..24], &blob[24..], KEYRING_AAD)?;
        let stored: StoredKeyring =
            serde_json::from_slice(&json).map_err(|_| CryptoError::Authentication)?;
        let mut keys = Vec::new();
        for k in &stored.keys {
            keys.push((k.id, k.key.key()?, k.created_ns));
        }
        if keys.is_empty() {
            return Err(CryptoError::Authentication);
        }
        Ok(Self {
            keys,
            token_hmac_key: stored.token_hmac_key.key()?,
            retired: Default::default(),
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
pub fn open_root_key(seal_key: &Key32, blob: &[u8]) -> Result<Key32, CryptoError> {
    if blob.len() < 24 {
        return Err(CryptoError::Authentication);
    }
    let bytes = open_with(seal_key, &blob[..24], &blob[24..], ROOT_KEY_AAD)?;
    Key32::from_slice(&bytes).ok_or(CryptoError::Authentication)
}

/// Decodes an unseal key or share given as text, in hex or in base64 (Vault's `sys/unseal` takes
/// either), into a buffer of its final size that is wiped when dropped.
pub fn decode_key_text(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let b = text.as_bytes();
    if b.len().is_multiple_of(2) && b.iter().all(u8::is_ascii_hexdigit) {
        let nibble = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
        let mut out = Zeroizing::new(Vec::with_capacity(b.len() / 2));
        out.extend(
            b.chunks_exact(2)
                .map(|p| (nibble(p[0]) << 4) | nibble(p[1])),
        );
        return Some(out);
    }
    let mut out = Zeroizing::new(vec![0u8; b.len() / 4 * 3 + 3]);
    let n = B64.decode_slice(b, &mut out[..]).ok()?;
    out.truncate(n);
    Some(out)
}

/// The longest key file read: 44 base64 characters and a line break, with room for whitespace. The
/// file is read into a buffer of this size, never a growing one, so that no reallocation leaves a
/// copy of the key in freed memory.
const KEY_FILE_MAX: usize = 256;

/// Reads `r` into `buf` until the end of the input or until `buf` is full, and returns the length
/// read. Secrets are read this way into a buffer of fixed size (wiped by its owner), never into a
/// growing one, so that no reallocation leaves a copy in freed memory. A caller that must refuse
/// oversized input passes a buffer one byte longer than its limit.
pub fn read_secret_into(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut len = 0;
    while len < buf.len() {
        match r.read(&mut buf[len..])? {
            0 => break,
            n => len += n,
        }
    }
    Ok(len)
}

/// Reads the seal key from `path`: `Ok(None)` when the file does not exist. The file must hold the
/// base64 of 32 bytes, and only its owner may access it: a key file that group or others can read
/// is refused (as `ssh` refuses such a private key), naming the file, its mode and the fix.
pub fn read_key_file(path: &Path) -> Result<Option<Key32>, String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{shown}: {e}")),
    };
    // The mode of the file opened, not of whatever the path names a moment later.
    let mode = f
        .metadata()
        .map_err(|e| format!("{shown}: {e}"))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{shown}: the seal key file has mode {:04o}, so group or others can access it; \
             only its owner may (run `chmod 600 {shown}`)",
            mode & 0o7777
        ));
    }
    let mut text = Zeroizing::new([0u8; KEY_FILE_MAX + 1]);
    let len = read_secret_into(&mut f, &mut text[..]).map_err(|e| format!("{shown}: {e}"))?;
    let not_a_key = || format!("{shown}: not a base64-encoded 32-byte key");
    if len > KEY_FILE_MAX {
        return Err(not_a_key());
    }
    let trimmed = text[..len].trim_ascii();
    let mut bytes = Zeroizing::new([0u8; KEY_FILE_MAX]);
    let n = B64
        .decode_slice(trimmed, &mut bytes[..])
        .map_err(|_| not_a_key())?;
    let key = Key32::from_slice(&bytes[..n])
        .ok_or_else(|| format!("{shown}: the key must be 32 bytes, not {n}"))?;
    Ok(Some(key))
}

/// Creates the seal key file at `path` (mode 0600, 32 random bytes in base64); it must not exist.
pub fn create_key_file(path: &Path) -> Result<Key32, String> {
    let shown = path.display();
    let key = Key32::random();
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{shown}: {e}"))?;
    // Encoded into a buffer of the exact size: no reallocation copies the key.
    let mut text = Zeroizing::new([0u8; 45]);
    let n = B64
        .encode_slice(key.0, &mut text[..])
        .map_err(|e| format!("{shown}: {e}"))?;
    text[n] = b'\n';
    f.write_all(&text[..=n])
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("{shown}: {e}"))?;
    Ok(key)
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
    fn a_retired_keyring_opens_but_seals_nothing() {
        let ring = Keyring::generate(1);
        let (id, sealed) = ring.seal(b"v", b"aad").unwrap();
        ring.retire();
        assert_eq!(ring.seal(b"v", b"aad").err(), Some(CryptoError::Retired));
        assert_eq!(
            ring.open(id, &sealed.nonce, &sealed.ciphertext, b"aad")
                .unwrap()
                .as_slice(),
            b"v"
        );
    }

    #[test]
    fn a_keyring_contains_the_keyrings_it_was_rotated_from() {
        let root = Key32::random();
        let first = Keyring::generate(1);
        let rotated = first.rotated(2);
        let reopened = Keyring::open_under(&root, &first.seal_under(&root)).unwrap();
        let other = Keyring::generate(1);
        // (keyring, other keyring, whether it contains it)
        let cases = [
            (&rotated, &first, true),
            (&first, &rotated, false),
            (&reopened, &first, true),
            (&first, &other, false),
            (&other, &first, false),
        ];
        for (i, (a, b, want)) in cases.into_iter().enumerate() {
            assert_eq!(a.contains(b), want, "case {i}");
        }
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
    fn key_text_is_hex_or_base64() {
        // (text, bytes) — as Vault's sys/unseal reads a key.
        let cases: [(&str, Option<&[u8]>); 6] = [
            ("00ff10", Some(&[0x00, 0xff, 0x10])),
            ("00FF10", Some(&[0x00, 0xff, 0x10])),
            ("AP8Q", Some(&[0x00, 0xff, 0x10])),
            ("", Some(&[])),
            ("zz", None),
            ("AP8", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                decode_key_text(text).as_deref().map(|v| &v[..]),
                want,
                "{text:?}"
            );
        }
    }

    #[test]
    fn key_file_round_trip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seal.key");
        assert!(read_key_file(&path).unwrap().is_none());
        let key = create_key_file(&path).unwrap();
        assert!(read_key_file(&path).unwrap().unwrap().ct_eq(key.as_bytes()));
        assert!(
            create_key_file(&path).is_err(),
            "an existing key file is never replaced"
        );
        // (file content, error) with mode 0600.
        let cases = [
            ("not base64!\n", "not a base64-encoded 32-byte key"),
            ("AAAA\n", "the key must be 32 bytes, not 3"),
        ];
        for (text, want) in cases {
            std::fs::write(&path, text).unwrap();
            let e = read_key_file(&path).err().unwrap();
            assert!(e.contains(want) && e.contains("seal.key"), "{text:?}: {e}");
        }
        std::fs::write(&path, "A".repeat(KEY_FILE_MAX + 1)).unwrap();
        assert!(read_key_file(&path).is_err(), "an oversized key file");
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
