//! A token's stored entry and its sealed row. The row keeps in clear only what finds it: the token's
//! keyed hash, the accessor's keyed hash and the parent token's hash (for revoking a subtree); all
//! three are bound into the sealed entry's associated data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::barrier::{self, Place};
use super::clock::Nanos;
use super::error::{EngineError, EngineResult};
use crate::crypto::Keyring;
use crate::storage::TokenRecord;

/// A token's entry (never the token itself: `hash` is its keyed hash).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenRow {
    /// The row's key column, not inside the sealed entry.
    #[serde(skip)]
    pub hash: Vec<u8>,
    pub accessor: String,
    /// The row's `parent` column, not inside the sealed entry.
    #[serde(skip)]
    pub parent: Option<Vec<u8>>,
    pub policies: Vec<String>,
    pub path: String,
    pub display_name: String,
    pub meta: Option<BTreeMap<String, String>>,
    pub creation: Nanos,
    /// Seconds; 0 = never expires.
    pub creation_ttl: i64,
    pub expire: Option<Nanos>,
    pub explicit_max_ttl: i64,
    pub period: i64,
    pub renewable: bool,
    /// Uses left; 0 = unlimited.
    pub num_uses: i64,
    pub orphan: bool,
    pub role: Option<String>,
    pub last_renewal: Option<Nanos>,
}

/// The accessor's keyed hash: accessors are looked up, never stored in clear.
pub(super) fn accessor_hash(keyring: &Keyring, accessor: &str) -> Vec<u8> {
    keyring.token_hash(&format!("kvseal/accessor/{accessor}"))
}

fn with_place<T>(
    hash: &[u8],
    accessor: &[u8],
    parent: Option<&[u8]>,
    f: impl FnOnce(&Place<'_>) -> T,
) -> T {
    // A missing parent and an empty one must differ.
    let (flag, parent): (&[u8], &[u8]) = match parent {
        Some(p) => (b"p", p),
        None => (b"-", b""),
    };
    let keys: [&[u8]; 4] = [hash, accessor, flag, parent];
    f(&Place {
        table: "tokens",
        keys: &keys,
    })
}

/// Seals an entry into its row.
pub(super) fn seal_token(keyring: &Keyring, row: &TokenRow) -> EngineResult<TokenRecord> {
    let accessor = accessor_hash(keyring, &row.accessor);
    let sealed = with_place(&row.hash, &accessor, row.parent.as_deref(), |place| {
        barrier::seal(keyring, place, row)
    })?;
    Ok(TokenRecord {
        hash: row.hash.clone(),
        accessor,
        parent: row.parent.clone(),
        sealed,
    })
}

/// Opens a row. A row that fails (edited, moved, its accessor not its own) is no token: the caller
/// gets `Corrupt`, which token lookups turn into "permission denied".
pub(super) fn open_token(keyring: &Keyring, rec: &TokenRecord) -> EngineResult<TokenRow> {
    let what = || {
        let prefix: String = rec
            .hash
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("token entry {prefix}…")
    };
    let mut row: TokenRow = with_place(&rec.hash, &rec.accessor, rec.parent.as_deref(), |place| {
        barrier::open(keyring, place, &rec.sealed, &what)
    })?;
    if accessor_hash(keyring, &row.accessor) != rec.accessor {
        tracing::error!(record = %what(), "a token entry's accessor is not its row's");
        return Err(EngineError::Corrupt(what()));
    }
    row.hash = rec.hash.clone();
    row.parent = rec.parent.clone();
    Ok(row)
}
