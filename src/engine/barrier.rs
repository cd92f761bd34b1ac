//! The barrier: every record the engine stores, sealed and authenticated (Vault's barrier, over a
//! storage that is untrusted).
//!
//! A record is JSON sealed with the keyring's active key (XChaCha20-Poly1305). Its associated data
//! binds the table, the record's key columns and the key id, so a record edited, moved to another
//! row, swapped with another or relabelled with another key id fails to open. A record that fails is
//! never served: the caller gets [`EngineError::Corrupt`] naming the record (not its contents), and
//! the log says which record it was.
//!
//! Secret version data keeps its schema-1 associated data (`crypto::version_aad`: mount id, path,
//! version; the key id is implied, a wrong one fails), so migrated ciphertexts open unchanged.

use serde::de::DeserializeOwned;
use serde::Serialize;
use zeroize::Zeroizing;

use super::error::{EngineError, EngineResult};
use crate::crypto::Keyring;
use crate::storage::{ReadTx, SealedRow, WriteTx};

const NONCE: usize = 24;

/// Where a record lives: its table and key columns.
pub(super) struct Place<'a> {
    pub table: &'static str,
    pub keys: &'a [&'a [u8]],
}

impl Place<'_> {
    fn aad(&self, key_id: u32) -> Vec<u8> {
        let mut aad = Vec::with_capacity(64);
        aad.extend_from_slice(b"kvseal/v2/");
        aad.extend_from_slice(self.table.as_bytes());
        for k in self.keys {
            // Length-prefixed, so that no two key tuples give the same bytes.
            aad.extend_from_slice(&(k.len() as u64).to_be_bytes());
            aad.extend_from_slice(k);
        }
        aad.extend_from_slice(&key_id.to_be_bytes());
        aad
    }
}

/// Set when the store is shared with other nodes (PostgreSQL): a record sealed under a key newer than
/// this node's keyring is then most likely another node's rotation, not tampering.
static SHARED_STORE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub(super) fn set_shared_store() {
    SHARED_STORE.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// `KeyringBehind` for a key id newer than any in `keyring` on a shared store (see
/// [`EngineError::KeyringBehind`]); `None` otherwise.
pub(super) fn behind(keyring: &Keyring, key_id: u32) -> Option<EngineError> {
    (SHARED_STORE.load(std::sync::atomic::Ordering::Relaxed)
        && key_id > keyring.active_term().0
        && !keyring.has_key(key_id))
    .then_some(EngineError::KeyringBehind)
}

/// Seals `value` for `place` under the active key.
pub(super) fn seal<T: Serialize>(
    keyring: &Keyring,
    place: &Place<'_>,
    value: &T,
) -> EngineResult<SealedRow> {
    let json =
        Zeroizing::new(serde_json::to_vec(value).map_err(|e| EngineError::Storage(e.to_string()))?);
    let (active, _) = keyring.active_term();
    let (key_id, sealed) = keyring.seal(&json, &place.aad(active))?;
    if key_id != active {
        return Err(EngineError::Storage(
            "the keyring changed while sealing".into(),
        ));
    }
    let mut blob = sealed.nonce;
    blob.extend_from_slice(&sealed.ciphertext);
    Ok(SealedRow { key_id, blob })
}

/// Opens the record `row` found at `place`; `what` names it in errors and the log.
pub(super) fn open<T: DeserializeOwned>(
    keyring: &Keyring,
    place: &Place<'_>,
    row: &SealedRow,
    what: &dyn Fn() -> String,
) -> EngineResult<T> {
    let fail = || {
        let name = what();
        tracing::error!(record = %name, "a stored record failed authentication; not served");
        EngineError::Corrupt(name)
    };
    if row.blob.len() < NONCE {
        return Err(fail());
    }
    if let Some(e) = behind(keyring, row.key_id) {
        return Err(e);
    }
    let plain = keyring
        .open(
            row.key_id,
            &row.blob[..NONCE],
            &row.blob[NONCE..],
            &place.aad(row.key_id),
        )
        .map_err(|_| fail())?;
    serde_json::from_slice(&plain).map_err(|_| fail())
}

/// A sealed document kept as a fact (`kvseal_meta`): key id, nonce, ciphertext.
fn doc_place(name: &str) -> [&[u8]; 1] {
    [name.as_bytes()]
}

fn encode_doc(row: &SealedRow) -> Vec<u8> {
    let mut out = row.key_id.to_be_bytes().to_vec();
    out.extend_from_slice(&row.blob);
    out
}

/// Reads and opens the sealed document `name`: `None` when absent. Returns the stored bytes too, for
/// a conditional replace.
pub(super) fn read_doc<T: DeserializeOwned>(
    tx: &dyn ReadTx,
    keyring: &Keyring,
    name: &str,
) -> EngineResult<Option<(Vec<u8>, T)>> {
    let Some(raw) = tx.get_fact(name)? else {
        return Ok(None);
    };
    let value = open_doc(keyring, name, &raw)?;
    Ok(Some((raw, value)))
}

/// Opens the stored bytes `raw` of document `name`.
pub(super) fn open_doc<T: DeserializeOwned>(
    keyring: &Keyring,
    name: &str,
    raw: &[u8],
) -> EngineResult<T> {
    let what = || format!("the {name} table (kvseal_meta {name:?})");
    if raw.len() < 4 {
        tracing::error!(record = %what(), "a stored record failed authentication; not served");
        return Err(EngineError::Corrupt(what()));
    }
    let row = SealedRow {
        key_id: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
        blob: raw[4..].to_vec(),
    };
    let keys = doc_place(name);
    let place = Place {
        table: "kvseal_meta",
        keys: &keys,
    };
    open(keyring, &place, &row, &what)
}

/// Where a missing document is reported: every initialised store has its tables.
pub(super) fn missing_doc(name: &str) -> EngineError {
    let what = format!("the {name} table (kvseal_meta {name:?}) is missing");
    tracing::error!(record = %what, "a stored record is missing");
    EngineError::Corrupt(what)
}

/// Like [`read_doc`], for a document every initialised store has: absent is corrupt (deleted).
pub(super) fn require_doc<T: DeserializeOwned>(
    tx: &dyn ReadTx,
    keyring: &Keyring,
    name: &str,
) -> EngineResult<(Vec<u8>, T)> {
    read_doc(tx, keyring, name)?.ok_or_else(|| missing_doc(name))
}

/// Seals and stores document `name` if the stored bytes are still `old` (`None`: absent).
pub(super) fn write_doc<T: Serialize>(
    tx: &dyn WriteTx,
    keyring: &Keyring,
    name: &str,
    old: Option<&[u8]>,
    value: &T,
) -> EngineResult<()> {
    let keys = doc_place(name);
    let place = Place {
        table: "kvseal_meta",
        keys: &keys,
    };
    let row = seal(keyring, &place, value)?;
    tx.replace_fact(name, old, &encode_doc(&row))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_opens_only_where_it_was_sealed() {
        let ring = Keyring::generate(1);
        let here = Place {
            table: "secrets",
            keys: &[b"1", b"a/b"],
        };
        let row = seal(&ring, &here, &"value").unwrap();
        let name = || "r".to_string();
        assert_eq!(open::<String>(&ring, &here, &row, &name).unwrap(), "value");
        // (place, row) pairs that must fail: moved row, another table, key tuples that would
        // concatenate to the same bytes, a relabelled key id, a flipped byte.
        let moved = Place {
            table: "secrets",
            keys: &[b"1", b"a/c"],
        };
        let table = Place {
            table: "tokens",
            keys: &[b"1", b"a/b"],
        };
        let shifted = Place {
            table: "secrets",
            keys: &[b"1a", b"/b"],
        };
        let mut relabelled = row.clone();
        relabelled.key_id += 1;
        let mut flipped = row.clone();
        flipped.blob[30] ^= 1;
        for (place, r) in [
            (&moved, &row),
            (&table, &row),
            (&shifted, &row),
            (&here, &relabelled),
            (&here, &flipped),
        ] {
            assert!(matches!(
                open::<String>(&ring, place, r, &name),
                Err(EngineError::Corrupt(_))
            ));
        }
    }
}
