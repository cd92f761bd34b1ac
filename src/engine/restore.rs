//! Online snapshot restore: `POST sys/storage/raft/snapshot` (`bao operator raft snapshot restore`)
//! replaces the whole store with a snapshot archive while the server runs, and
//! `sys/storage/raft/snapshot-force` does it for an archive of another store.
//!
//! The archive (written by the HTTP layer to a private [`SnapshotUpload`] directory, never held in
//! memory) is verified exactly as `kvseal operator restore` verifies it ([`backup::stage`],
//! [`backup::verify_backup`]'s steps) with the keys of the running server. Only then is every row
//! replaced, in one write transaction ([`crate::storage::replace_rows`], as the offline PostgreSQL
//! restore does), and what the engine serves from memory (keyring, mounts, policies, audit devices)
//! is installed from the restored store in the same commit order, so the restored data is what the
//! next request sees. Other nodes on a PostgreSQL store follow through the change generation, as
//! after any change (`follow`).
//!
//! A snapshot whose root key the running seal key does not open is of another store (or of this
//! one before its unseal keys changed). Vault refuses it unless forced; forced, a Shamir-sealed
//! Vault installs it and seals itself, so that the other store's unseal keys open it. kvseal does
//! the same with the Shamir seal. With the file seal the key file is the only key the server has:
//! a snapshot it cannot open would leave the server sealed for good, so even a forced restore of
//! one is refused (restore it offline, with that store's key file).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::backup::{self, Refused, RestoreKey, SNAPSHOT_DB_NAME};
use super::error::{EngineError, EngineResult};
use super::model::Mount;
use super::policies::PolicyCache;
use super::{audit, mounts, policies, seal, Engine, Memory, SealMode, Unsealed};
use crate::audit::AuditDevice;
use crate::crypto::{Key32, Keyring};
use crate::storage::snapshot;

/// Vault's answer to a snapshot its Shamir keys do not verify (`vault/logical_system_raft.go`);
/// `bao operator raft snapshot restore` prints it as is.
pub const OTHER_UNSEAL_KEYS: &str = "could not verify hash file, possibly the snapshot is using a different set of unseal keys; use the snapshot-force API to bypass this check";

/// Vault's answer with an auto-unseal seal, kvseal's file seal's counterpart: given when the key
/// file opens the snapshot's keys but not its sealed checksums (which `snapshot-force` bypasses).
pub const OTHER_AUTOSEAL_KEY: &str = "could not verify hash file, possibly the snapshot is using a different autoseal key; use the snapshot-force API to bypass this check";

/// When the key file does not open the snapshot's root key: forcing would not help.
const OTHER_KEY_FILE: &str = "could not verify hash file: the seal key file of this server does not open the snapshot's root key, so the snapshot is of another store (or the key file changed since); kvseal does not install a snapshot it could not unseal, not even with snapshot-force: stop the server, configure that store's key file and run `kvseal operator restore`";

/// A private directory for one uploaded snapshot and the database staged from it, removed with
/// everything in it when dropped.
pub struct SnapshotUpload {
    dir: PathBuf,
}

impl SnapshotUpload {
    /// Where the uploaded archive is written.
    pub fn archive_path(&self) -> PathBuf {
        self.dir.join("snapshot.tar.gz")
    }

    fn db_path(&self) -> PathBuf {
        self.dir.join(SNAPSHOT_DB_NAME)
    }
}

impl Drop for SnapshotUpload {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a restore left the server as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restored {
    /// Unsealed, serving the restored store.
    Serving,
    /// Sealed: the restored store is of another store (forced, Shamir seal); that store's unseal
    /// keys unseal it.
    Sealed,
}

/// What the engine will serve once the restored rows are committed, loaded from the staged
/// database before anything is replaced (so that nothing is replaced when any of it fails).
struct Loaded {
    keyring: Arc<Keyring>,
    mounts: Vec<Mount>,
    policies: PolicyCache,
    audit: Arc<Vec<Arc<AuditDevice>>>,
}

enum Plan {
    /// Verified with this server's keys: serve the restored store.
    Serve(Box<Loaded>),
    /// Of another store (forced, Shamir seal): replace, then seal.
    Seal,
}

impl Memory {
    fn install(&self, seal_key: Key32, loaded: Loaded) {
        self.set_mounts(loaded.mounts);
        *self.policies.write().unwrap_or_else(|p| p.into_inner()) = loaded.policies;
        *self.audit.write().unwrap_or_else(|p| p.into_inner()) = loaded.audit;
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Unsealed {
            seal_key: Some(seal_key),
            keyring: Some(loaded.keyring),
        };
        self.acl_cache.invalidate();
    }
}

impl Engine {
    /// A private directory (mode 0700) for a snapshot about to be uploaded, beside the store (its
    /// own directory with SQLite, the system's temporary directory with PostgreSQL).
    pub fn restore_upload(&self) -> EngineResult<SnapshotUpload> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = self
            .store
            .scratch_dir()
            .join(format!(".restore-{}", uuid::Uuid::new_v4()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| EngineError::Storage(format!("restore: {}: {e}", dir.display())))?;
        Ok(SnapshotUpload { dir })
    }

    /// Replaces the whole store with the snapshot archive in `upload` (at most `limit` bytes of
    /// database), verified first with this server's keys; nothing is replaced when it does not
    /// verify. `force` (`snapshot-force`) takes a snapshot of another store: see the module
    /// comment. Administrative changes wait meanwhile.
    ///
    /// The restore runs to its end even if the caller stops waiting (the request deadline, a
    /// closed connection): once the rows are replaced, the caches must be emptied too.
    pub async fn restore_snapshot(
        self: &Arc<Self>,
        upload: SnapshotUpload,
        force: bool,
        limit: u64,
    ) -> EngineResult<Restored> {
        let engine = Arc::clone(self);
        tokio::spawn(async move { engine.restore_snapshot_now(&upload, force, limit).await })
            .await
            .map_err(|e| EngineError::Storage(format!("restore: {e}")))?
    }

    async fn restore_snapshot_now(
        self: &Arc<Self>,
        upload: &SnapshotUpload,
        force: bool,
        limit: u64,
    ) -> EngineResult<Restored> {
        let guard = self.admin_lock().await;
        let seal_key = self.seal_key()?;
        let shamir = matches!(self.seal_mode, SealMode::Shamir);
        let (archive, db) = (upload.archive_path(), upload.db_path());
        let (key, staged) = (seal_key.clone(), db.clone());
        // Reading, hashing and opening a whole store: off the async workers.
        let plan = tokio::task::spawn_blocking(move || {
            prepare(&archive, &staged, key, shamir, force, limit)
        })
        .await
        .map_err(|e| EngineError::Storage(format!("restore: {e}")))??;
        let old = self.keyring()?;
        let outcome = self
            .admin_write(
                guard,
                move |tx| Ok(crate::storage::replace_rows(tx, &db)?),
                move |mem, ()| {
                    // In commit order: no write commits between the restored rows and the memory
                    // that serves them.
                    Ok(match plan {
                        Plan::Serve(loaded) => {
                            if !loaded.keyring.contains(&old) {
                                old.retire();
                            }
                            mem.install(seal_key, *loaded);
                            Restored::Serving
                        }
                        Plan::Seal => {
                            old.retire();
                            mem.forget_keys();
                            Restored::Sealed
                        }
                    })
                },
            )
            .await?;
        self.token_cache.invalidate();
        self.record_cache.clear();
        self.unseal_progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        match outcome {
            Restored::Serving => tracing::info!("a snapshot was restored; serving it"),
            Restored::Sealed => tracing::warn!(
                "a snapshot of another store was restored (snapshot-force); sealed until unsealed with that store's unseal keys"
            ),
        }
        Ok(outcome)
    }
}

/// Stages and verifies the archive, and loads what will be served from it (see
/// [`Engine::restore_snapshot`]).
fn prepare(
    archive: &Path,
    db: &Path,
    seal_key: Key32,
    shamir: bool,
    force: bool,
    limit: u64,
) -> EngineResult<Plan> {
    let sealed_sums = backup::stage(archive, db, limit, true)?
        .ok_or_else(|| EngineError::invalid("not a snapshot archive"))?;
    snapshot::verify(db).map_err(|e| {
        EngineError::invalid(format!(
            "failed checking integrity of snapshot: {}",
            strip_path(e.to_string(), db)
        ))
    })?;
    crate::storage::check_row_copy(db).map_err(|_| {
        EngineError::invalid(
            "a snapshot of schema 1 is restored offline only (`kvseal operator restore` into a SQLite store)",
        )
    })?;
    let key = RestoreKey::Current {
        key: seal_key.clone(),
        shamir,
    };
    let keyring = match backup::open_backup_keyring(db, &key) {
        Ok(k) => k,
        Err(Refused::OtherKeys(_)) if !shamir => return Err(EngineError::invalid(OTHER_KEY_FILE)),
        Err(Refused::OtherKeys(_)) if force => return Ok(Plan::Seal),
        Err(Refused::OtherKeys(_)) => return Err(EngineError::invalid(OTHER_UNSEAL_KEYS)),
        Err(other) => return Err(integrity(other)),
    };
    match backup::check_sealed_sums(db, &keyring, &sealed_sums) {
        Ok(()) => {}
        // Forced: without checksums this keyring opens, every record is authenticated instead.
        Err(Refused::SumsSealed(_)) if force => {
            backup::check_records(db, &keyring).map_err(integrity)?
        }
        Err(Refused::SumsSealed(_)) if shamir => {
            return Err(EngineError::invalid(OTHER_UNSEAL_KEYS))
        }
        Err(Refused::SumsSealed(_)) => return Err(EngineError::invalid(OTHER_AUTOSEAL_KEY)),
        Err(other) => return Err(integrity(other)),
    }
    load(db, &seal_key).map(|l| Plan::Serve(Box::new(l)))
}

/// A refusal as Vault words an archive that fails its checks.
fn integrity(r: Refused) -> EngineError {
    match r {
        Refused::Failed(e) => e,
        Refused::OtherKeys(m) | Refused::SumsSealed(m) | Refused::Invalid(m) => {
            EngineError::invalid(format!("failed checking integrity of snapshot: {m}"))
        }
    }
}

/// A storage message without the private path of the staged file.
fn strip_path(message: String, db: &Path) -> String {
    message.replace(&format!("{}: ", db.display()), "")
}

/// The keyring, mounts, policies and audit devices of the staged database, as an unseal would
/// load them from the store; a snapshot whose tables do not open or whose audit devices cannot be
/// opened here is refused.
fn load(db: &Path, seal_key: &Key32) -> EngineResult<Loaded> {
    snapshot::read_file(db, |tx| {
        let (_, keyring) = seal::open_stored_keys(tx, seal_key)?;
        let (_, table) = mounts::read_table(tx, &keyring)?;
        let policies = policies::load_cache(tx, &keyring)?;
        let audit = audit::load_devices(tx, &keyring)?;
        Ok::<_, EngineError>(Loaded {
            keyring: Arc::new(keyring),
            mounts: table.mounts,
            policies,
            audit,
        })
    })
    .map_err(|e| match e {
        EngineError::Storage(m) | EngineError::Corrupt(m) => {
            EngineError::invalid(format!("the snapshot cannot be served: {m}"))
        }
        other => other,
    })
}
