//! Cubbyholes: each token's private storage (Vault's `cubbyhole/` backend), and where response
//! wrapping keeps a wrapped response (see `wrapping`).
//!
//! An entry lives in the `cubbyhole` table under the owning token's keyed hash and its path, sealed
//! with associated data binding both: an entry moved to another token or another path fails to
//! open, so no token can be made to read another's cubbyhole by editing storage. Entries go with
//! their token: a revocation deletes the token rows and their cubbyholes in the same statement
//! (`WriteTx::delete_token_tree`); an expired token can no longer authenticate, so its cubbyhole is
//! unreachable at once, and [`Engine::purge_cubbyholes`] (every [`PURGE_EVERY`]) deletes it with the
//! token.

use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use super::barrier::{self, Place};
use super::clock::Nanos;
use super::error::{EngineError, EngineResult};
use super::token_entry::open_token;
use super::{Engine, Identity, SealStatus};
use crate::crypto::Keyring;
use crate::storage::{ReadTx, SealedRow};

/// How often the cubbyholes of expired tokens (unused wrapping tokens, mostly) are purged.
pub const PURGE_EVERY: Duration = Duration::from_secs(60);

/// Tokens looked at per purge transaction.
const PURGE_BATCH: usize = 256;

fn with_place<T>(token: &[u8], path: &str, f: impl FnOnce(&Place<'_>) -> T) -> T {
    let keys: [&[u8]; 2] = [token, path.as_bytes()];
    f(&Place {
        table: "cubbyhole",
        keys: &keys,
    })
}

fn describe(token: &[u8], path: &str) -> String {
    let prefix: String = token.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("cubbyhole entry {path:?} of token {prefix}…")
}

/// Seals `value` as the entry at `path` of the cubbyhole of `token` (a keyed token hash).
pub(super) fn seal_entry<T: Serialize>(
    keyring: &Keyring,
    token: &[u8],
    path: &str,
    value: &T,
) -> EngineResult<SealedRow> {
    with_place(token, path, |place| barrier::seal(keyring, place, value))
}

/// Opens the entry `row` found at `path` of the cubbyhole of `token`.
pub(super) fn open_entry<T: DeserializeOwned>(
    keyring: &Keyring,
    token: &[u8],
    path: &str,
    row: &SealedRow,
) -> EngineResult<T> {
    with_place(token, path, |place| {
        barrier::open(keyring, place, row, &|| describe(token, path))
    })
}

/// Reads and opens one entry.
pub(super) fn read_entry<T: DeserializeOwned>(
    tx: &dyn ReadTx,
    keyring: &Keyring,
    token: &[u8],
    path: &str,
) -> EngineResult<Option<T>> {
    tx.get_cubby(token, path)?
        .map(|row| open_entry(keyring, token, path, &row))
        .transpose()
}

/// Whether the token `hash` is dead as seen in `tx`: gone, expired, or under a parent that is.
pub(super) fn is_dead(
    tx: &dyn ReadTx,
    keyring: &Keyring,
    hash: &[u8],
    now: Nanos,
) -> EngineResult<bool> {
    let mut next = Some(hash.to_vec());
    let mut depth = 0;
    while let Some(h) = next {
        depth += 1;
        let Some(rec) = tx.get_token(&h)? else {
            return Ok(true);
        };
        let row = match open_token(keyring, &rec) {
            Ok(row) => row,
            // A token whose entry fails is no token (see `tokens::load_token`).
            Err(EngineError::Corrupt(_)) => return Ok(true),
            Err(e) => return Err(e),
        };
        if row.expire.is_some_and(|e| e <= now) || depth > 64 {
            return Ok(true);
        }
        next = row.parent;
    }
    Ok(false)
}

/// The hash of the token whose cubbyhole a caller reaches: its own, never anyone else's.
fn owner(id: &Identity) -> EngineResult<Vec<u8>> {
    if id.entry.hash.is_empty() {
        // A client certificate on an OKMS route is no stored token: it has no cubbyhole.
        return Err(EngineError::PermissionDenied);
    }
    Ok(id.entry.hash.clone())
}

impl Engine {
    /// Whether the caller's cubbyhole holds `path` (a write's create-or-update decision).
    pub fn cubby_exists(&self, id: &Identity, path: &str) -> EngineResult<bool> {
        let token = owner(id)?;
        Ok(self.store.read(|tx| tx.get_cubby(&token, path))?.is_some())
    }

    /// The entry at `path` in the caller's cubbyhole.
    pub fn cubby_read(
        &self,
        id: &Identity,
        path: &str,
    ) -> EngineResult<Option<Map<String, Value>>> {
        let token = owner(id)?;
        self.with_current_keys(|keyring| {
            self.store.read(|tx| read_entry(tx, keyring, &token, path))
        })
    }

    /// Writes the entry at `path` of the caller's cubbyhole, replacing what was there. Refused
    /// (403) if the token was revoked meanwhile: nothing is left behind a dead token.
    pub async fn cubby_write(
        &self,
        id: &Identity,
        path: &str,
        data: Map<String, Value>,
    ) -> EngineResult<()> {
        let token = owner(id)?;
        let keyring = self.keyring()?;
        let path = path.to_string();
        let row = seal_entry(&keyring, &token, &path, &data)?;
        self.store
            .write(move |tx| {
                if tx.get_token(&token)?.is_none() {
                    return Err(EngineError::PermissionDenied);
                }
                tx.put_cubby(&token, &path, &row)?;
                Ok(())
            })
            .await
    }

    /// Deletes the entry at `path` of the caller's cubbyhole (nothing there is no error, as Vault).
    pub async fn cubby_delete(&self, id: &Identity, path: &str) -> EngineResult<()> {
        let token = owner(id)?;
        let path = path.to_string();
        self.store
            .write(move |tx| {
                tx.delete_cubby(&token, &path)?;
                Ok::<_, EngineError>(())
            })
            .await
    }

    /// The names directly under `folder` (`""` or ending in `/`) in the caller's cubbyhole, sorted;
    /// sub-folders end in `/`. Every row a name comes from is authenticated first.
    pub fn cubby_list(&self, id: &Identity, folder: &str) -> EngineResult<Vec<String>> {
        let token = owner(id)?;
        self.with_current_keys(|keyring| {
            self.store.read(|tx| {
                let children = tx.cubby_children(&token, folder)?;
                children
                    .into_iter()
                    .map(|(name, path, row)| {
                        open_entry::<serde::de::IgnoredAny>(keyring, &token, &path, &row)?;
                        Ok(name)
                    })
                    .collect()
            })
        })
    }

    /// Deletes the cubbyholes whose token is dead (expired, under an expired parent, or gone),
    /// with the dead token and its descendants; returns how many cubbyholes. Tokens alive keep
    /// theirs.
    pub fn purge_cubbyholes(&self) -> EngineResult<usize> {
        let mut after: Option<Vec<u8>> = None;
        let mut purged = 0;
        loop {
            let keyring = self.keyring()?;
            let now = self.clock.now();
            let from = after.clone();
            let (n, last, full) = self.store.write_blocking(move |tx| {
                let owners = tx.cubby_owners(from.as_deref(), PURGE_BATCH)?;
                let mut n = 0;
                for token in &owners {
                    if is_dead(tx, &keyring, token, now)? {
                        tx.delete_cubbyhole(token)?;
                        tx.delete_token_tree(token)?;
                        n += 1;
                    }
                }
                Ok::<_, EngineError>((n, owners.last().cloned(), owners.len() == PURGE_BATCH))
            })?;
            if n > 0 {
                self.token_cache.invalidate();
            }
            purged += n;
            match last {
                Some(l) if full => after = Some(l),
                _ => return Ok(purged),
            }
        }
    }

    /// Runs [`Engine::purge_cubbyholes`] every [`PURGE_EVERY`] on a thread of its own while the
    /// engine is unsealed (on several nodes at once it is idempotent: each deletion is of what
    /// its transaction still sees dead).
    pub fn start_cubby_purge(self: &Arc<Self>) {
        let weak: Weak<Engine> = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("kvseal-cubby-purge".into())
            .spawn(move || loop {
                std::thread::sleep(PURGE_EVERY);
                let Some(engine) = weak.upgrade() else {
                    return;
                };
                if engine.seal_status() != SealStatus::Unsealed {
                    continue;
                }
                match engine.purge_cubbyholes() {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(cubbyholes = n, "purged the cubbyholes of expired tokens")
                    }
                    Err(e) => tracing::warn!(error = %e, "purging expired cubbyholes failed"),
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the thread that purges expired cubbyholes");
        }
    }
}
