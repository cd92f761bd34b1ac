//! Storage: where the engine's records live, beneath the engine and knowing nothing of it.
//!
//! The engine reaches storage only through a transaction: [`Store::read`] runs a closure over a
//! [`ReadTx`] (one consistent snapshot), [`Store::write`] over a [`WriteTx`] (committed, and durable
//! as configured, before the call returns). Storage keeps keys in clear (what finds rows: a secret's
//! path for ordered listing, a token's keyed hash) and everything else as sealed blobs it cannot read.
//! Decisions that depend on what is stored (check-and-set, a token's remaining uses, "create only")
//! are made with conditional writes ([`WriteTx::put_secret`], [`WriteTx::replace_token`],
//! [`WriteTx::replace_fact`]) that fail with [`StorageError::Conflict`] when the row changed since it
//! was read, so they stay exact with a backend that runs many writers at once.
//!
//! Two implementations (model: garage's `src/db/`, one interface and several adapters): SQLite
//! (`sqlite/`, embedded, one node) and PostgreSQL (`postgres/`, any number of active nodes on one
//! database). A write closure may run more than once on a backend with several writers (after a lost
//! conditional write), so it is `FnMut` and must not act outside the transaction.

pub mod copy;
mod error;
mod list_scan;
mod postgres;
pub mod rows;
pub mod snapshot;
mod sqlite;

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub use copy::{RawRow, Table};
pub use error::{StorageError, StorageResult};
pub use postgres::PgStore;
pub use rows::{SealedRow, StaleVersion, TokenRecord, V1Dump, VersionBlob};
pub use sqlite::{SqliteStore, V1_BACKUP_NAME};

/// How durable a commit is. `Full` (the default) fsyncs the WAL at every commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    Full,
    Normal,
}

/// What a read transaction can see.
pub trait ReadTx {
    /// A fact of `kvseal_meta` (seal configuration, sealed keys, sealed tables).
    fn get_fact(&self, key: &str) -> StorageResult<Option<Vec<u8>>>;

    /// A key's sealed metadata record.
    fn get_secret(&self, mount_id: i64, path: &str) -> StorageResult<Option<SealedRow>>;
    /// A fact and a key's sealed record, in one statement where the backend can: a KV write reads the
    /// mount table and the key it changes.
    fn get_fact_and_secret(
        &self,
        key: &str,
        mount_id: i64,
        path: &str,
    ) -> StorageResult<(Option<Vec<u8>>, Option<SealedRow>)>;
    /// A key's record with its newest stored version (number and sealed data), in one statement
    /// where the backend can: the read of a secret's current version, the hottest request.
    #[allow(clippy::type_complexity)]
    fn get_secret_and_latest(
        &self,
        mount_id: i64,
        path: &str,
    ) -> StorageResult<Option<(SealedRow, Option<(u64, VersionBlob)>)>>;
    /// Keys after `after` (exclusive) in path order, at most `limit`: one index range scan.
    fn secrets_after(
        &self,
        mount_id: i64,
        after: &str,
        limit: usize,
    ) -> StorageResult<Vec<(String, SealedRow)>>;
    /// The direct children of `folder` (`""` or ending in `/`): keys as their name, sub-folders as
    /// `name/`, names greater than `after`, at most `limit`. Each comes with the row it was read
    /// from (its full path and sealed record; for a sub-folder, the first key in it), so that the
    /// caller can authenticate every name it serves.
    fn list_children(
        &self,
        mount_id: i64,
        folder: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> StorageResult<Vec<(String, String, SealedRow)>>;
    /// A version's sealed data.
    fn get_version(
        &self,
        mount_id: i64,
        path: &str,
        version: u64,
    ) -> StorageResult<Option<VersionBlob>>;
    /// Versions sealed under another key than `active` (for rewrapping), at most `limit`.
    fn stale_versions(&self, active: u32, limit: usize) -> StorageResult<Vec<StaleVersion>>;
    /// Key records sealed under another key than `active`: (mount id, path, record).
    fn stale_secrets(
        &self,
        active: u32,
        limit: usize,
    ) -> StorageResult<Vec<(i64, String, SealedRow)>>;
    /// Token rows sealed under another key than `active`.
    fn stale_tokens(&self, active: u32, limit: usize) -> StorageResult<Vec<TokenRecord>>;
    /// Cubbyhole entries sealed under another key than `active`: (token hash, path, record).
    fn stale_cubby(
        &self,
        active: u32,
        limit: usize,
    ) -> StorageResult<Vec<(Vec<u8>, String, SealedRow)>>;
    /// How many versions, key records, token rows and cubbyhole entries are sealed under another
    /// key than `active`.
    fn count_stale(&self, active: u32) -> StorageResult<u64>;

    /// The entry at `path` in the cubbyhole of the token whose keyed hash is `token`.
    fn get_cubby(&self, token: &[u8], path: &str) -> StorageResult<Option<SealedRow>>;
    /// The direct children of `folder` (`""` or ending in `/`) in a token's cubbyhole, as
    /// [`ReadTx::list_children`] gives them: (name, full path, the row it was read from).
    fn cubby_children(
        &self,
        token: &[u8],
        folder: &str,
    ) -> StorageResult<Vec<(String, String, SealedRow)>>;
    /// The hashes of tokens that own cubbyhole entries, after `after` in byte order, at most
    /// `limit` (the purge of expired tokens' cubbyholes walks them).
    fn cubby_owners(&self, after: Option<&[u8]>, limit: usize) -> StorageResult<Vec<Vec<u8>>>;

    fn get_token(&self, hash: &[u8]) -> StorageResult<Option<TokenRecord>>;
    fn get_token_by_accessor(&self, accessor: &[u8]) -> StorageResult<Option<TokenRecord>>;
    /// Every token (listing accessors, an administrative operation).
    fn all_tokens(&self) -> StorageResult<Vec<TokenRecord>>;
    /// The tokens whose parent is `hash`.
    fn token_children(&self, hash: &[u8]) -> StorageResult<Vec<TokenRecord>>;

    /// Rows of `table` after the row `after` (exclusive; `None`: from the first) in key order, at
    /// most `limit`, as they lie: for copying the store to another backend (see `copy`). `after` is
    /// the last row of the page before, so each page is one index range scan.
    fn export_rows(
        &self,
        table: Table,
        after: Option<&RawRow>,
        limit: usize,
    ) -> StorageResult<Vec<RawRow>>;
    /// How many rows `table` holds.
    fn count_rows(&self, table: Table) -> StorageResult<u64>;
    /// Whether the store holds nothing: no fact and no row (a copy's target must be).
    fn is_empty(&self) -> StorageResult<bool> {
        for table in Table::ALL {
            if !self.export_rows(table, None, 1)?.is_empty() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// What a write transaction can do besides reading.
pub trait WriteTx: ReadTx {
    fn put_fact(&self, key: &str, value: &[u8]) -> StorageResult<()>;
    /// Sets a fact if it still holds `expect` (`None`: if it does not exist), else `Conflict`.
    fn replace_fact(&self, key: &str, expect: Option<&[u8]>, value: &[u8]) -> StorageResult<()>;

    /// Writes a key's metadata if the stored record is still `expect` (`None`: if the key does not
    /// exist), else `Conflict`.
    fn put_secret(
        &self,
        mount_id: i64,
        path: &str,
        expect: Option<&SealedRow>,
        new: &SealedRow,
    ) -> StorageResult<()>;
    /// Deletes a key's metadata and every version.
    fn delete_secret(&self, mount_id: i64, path: &str) -> StorageResult<()>;
    /// Deletes every key and version of a mount.
    fn delete_mount_data(&self, mount_id: i64) -> StorageResult<()>;

    fn insert_version(
        &self,
        mount_id: i64,
        path: &str,
        version: u64,
        blob: &VersionBlob,
    ) -> StorageResult<()>;
    fn delete_version(&self, mount_id: i64, path: &str, version: u64) -> StorageResult<()>;
    /// Removes every version numbered `upto` or lower (pruning).
    fn delete_versions_upto(&self, mount_id: i64, path: &str, upto: u64) -> StorageResult<()>;
    /// Replaces a version's sealed data if it is still the blob sealed with `old_nonce` (every seal
    /// draws a fresh nonce), else changes nothing. A KV v1 write replaces version 1 in place: a
    /// rewrap that re-sealed the value it read before that write must not bring it back.
    fn replace_version_blob(
        &self,
        mount_id: i64,
        path: &str,
        version: u64,
        old_nonce: &[u8],
        blob: &VersionBlob,
    ) -> StorageResult<()>;

    fn insert_token(&self, t: &TokenRecord) -> StorageResult<()>;
    /// Replaces a token row if it is still `old`, else `Conflict`.
    fn replace_token(&self, old: &TokenRecord, new: &TokenRecord) -> StorageResult<()>;
    /// Deletes a token and every token descended from it, with their cubbyholes; returns how many
    /// tokens.
    fn delete_token_tree(&self, hash: &[u8]) -> StorageResult<usize>;
    /// Deletes one token row, with its cubbyhole.
    fn delete_token(&self, hash: &[u8]) -> StorageResult<usize>;

    /// Writes the entry at `path` in a token's cubbyhole, replacing any there.
    fn put_cubby(&self, token: &[u8], path: &str, row: &SealedRow) -> StorageResult<()>;
    /// Replaces a cubbyhole entry if it is still `old`, else `Conflict` (rewrap).
    fn replace_cubby(
        &self,
        token: &[u8],
        path: &str,
        old: &SealedRow,
        new: &SealedRow,
    ) -> StorageResult<()>;
    /// Deletes the entry at `path` in a token's cubbyhole; returns how many rows went (0 or 1).
    fn delete_cubby(&self, token: &[u8], path: &str) -> StorageResult<usize>;
    /// Deletes every entry of a token's cubbyhole (a token gone or expired); returns how many.
    fn delete_cubbyhole(&self, token: &[u8]) -> StorageResult<usize>;

    /// A schema-1 store: moves its tables aside and returns their records in clear, once. The
    /// version ciphertexts move to the new table as they are. `None` on a current store.
    fn take_v1(&self) -> StorageResult<Option<V1Dump>>;
    /// Ends the migration begun by `take_v1`: drops the old tables and records the new version.
    fn finish_v1(&self) -> StorageResult<()>;

    /// Inserts a row as it was exported from another store; `Conflict` if its key is taken.
    fn import_row(&self, row: &RawRow) -> StorageResult<()>;
    /// Deletes every fact and every row (a restore, which imports the backup's rows in the same
    /// transaction).
    fn delete_all(&self) -> StorageResult<()>;
}

/// The store: one of the backends.
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl Store {
    /// Opens (creating if needed) the SQLite database `<dir>/kvseal.db`.
    pub fn open(dir: &Path, durability: Durability) -> StorageResult<Self> {
        Ok(Self::Sqlite(SqliteStore::open(dir, durability)?))
    }

    /// Connects to a PostgreSQL database (creating the schema in an empty one).
    pub fn open_postgres(url: &str, max_connections: usize) -> StorageResult<Self> {
        Ok(Self::Postgres(PgStore::open(url, max_connections)?))
    }

    /// Where the store is, for messages (a PostgreSQL URL without its password).
    pub fn describe(&self) -> String {
        match self {
            Store::Sqlite(s) => s.dir().display().to_string(),
            Store::Postgres(p) => p.describe(),
        }
    }

    /// A private directory for temporary files (snapshots): the store's own directory with SQLite,
    /// the system's temporary directory with PostgreSQL.
    pub fn scratch_dir(&self) -> std::path::PathBuf {
        match self {
            Store::Sqlite(s) => s.dir().to_path_buf(),
            Store::Postgres(_) => std::env::temp_dir(),
        }
    }

    /// Whether other kvseal nodes may write to the same store (then what a node keeps in memory
    /// follows [`Store::generation`]).
    pub fn is_shared(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    /// A number that changes with every committed change to a fact or a token, on any node; an
    /// error when the database does not answer. Always 0 on an unshared store.
    pub fn generation(&self) -> StorageResult<i64> {
        match self {
            Store::Sqlite(_) => Ok(0),
            Store::Postgres(p) => p.generation(),
        }
    }

    /// Writes a consistent copy of the database to `target` (which must not exist) while the store
    /// keeps serving: a SQLite database file whichever the backend (a PostgreSQL store's rows are
    /// copied into a new one from one read transaction), so that a snapshot restores into either.
    pub fn copy_to(&self, target: &Path) -> StorageResult<()> {
        match self {
            Store::Sqlite(s) => s.copy_to(target),
            Store::Postgres(p) => {
                snapshot::new_file(target, |into| p.read(|from| copy::copy_all(from, into)))
            }
        }
    }

    /// Replaces every row of the store with those of the SQLite database file `db` (a verified
    /// backup of the current schema), in one write transaction: nodes sharing the store see the
    /// whole backup or none of it, and reload once it has committed.
    pub fn replace_from(&self, db: &Path) -> StorageResult<()> {
        check_row_copy(db)?;
        let db = db.to_path_buf();
        self.write_blocking(move |into| replace_rows(into, &db))
    }

    /// Whether the store holds nothing (no fact, no row).
    pub fn is_empty(&self) -> StorageResult<bool> {
        self.read(|tx| tx.is_empty())
    }

    /// Whether the store still holds schema-1 records (migrated at the first unseal).
    pub fn needs_v1_migration(&self) -> StorageResult<bool> {
        match self {
            Store::Sqlite(s) => s.needs_v1_migration(),
            Store::Postgres(_) => Ok(false),
        }
    }

    /// Moves the write-ahead log into the database file (after a migration).
    pub fn checkpoint(&self) -> StorageResult<()> {
        match self {
            Store::Sqlite(s) => s.checkpoint(),
            Store::Postgres(_) => Ok(()),
        }
    }

    /// Runs `f` in a read transaction (one consistent snapshot).
    pub fn read<R, E: From<StorageError>>(
        &self,
        f: impl FnOnce(&dyn ReadTx) -> Result<R, E>,
    ) -> Result<R, E> {
        match self {
            Store::Sqlite(s) => s.read(f),
            Store::Postgres(p) => p.read(f),
        }
    }

    /// Runs `f`, which makes one statement, without a transaction around it where that is cheaper
    /// (PostgreSQL: no BEGIN and ROLLBACK; a second statement is refused). SQLite: [`Store::read`].
    pub fn read_one<R, E: From<StorageError>>(
        &self,
        f: impl FnOnce(&dyn ReadTx) -> Result<R, E>,
    ) -> Result<R, E> {
        match self {
            Store::Sqlite(s) => s.read(f),
            Store::Postgres(p) => p.read_one(f),
        }
    }

    /// Runs `f` in a write transaction; resolves once it has committed.
    pub async fn write<R: Send + 'static, E: From<StorageError> + Send + 'static>(
        &self,
        f: impl FnMut(&dyn WriteTx) -> Result<R, E> + Send + 'static,
    ) -> Result<R, E> {
        match self {
            Store::Sqlite(s) => s.write(f).await,
            Store::Postgres(p) => p.write(f).await,
        }
    }

    /// Runs `f` in a write transaction, then `then` with its result once committed, in commit order
    /// (for in-memory state that must follow what was committed).
    pub async fn write_then<
        R: Send + 'static,
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    >(
        &self,
        f: impl FnMut(&dyn WriteTx) -> Result<R, E> + Send + 'static,
        then: impl FnOnce(R) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        match self {
            Store::Sqlite(s) => s.write_then(f, then).await,
            Store::Postgres(p) => p.write_then(f, then).await,
        }
    }

    /// The same as [`Store::write`], for callers outside an async context (start-up, tools).
    pub fn write_blocking<R: Send + 'static, E: From<StorageError> + Send + 'static>(
        &self,
        f: impl FnMut(&dyn WriteTx) -> Result<R, E> + Send + 'static,
    ) -> Result<R, E> {
        match self {
            Store::Sqlite(s) => s.write_blocking(f),
            Store::Postgres(p) => p.write_blocking(f),
        }
    }

    /// Keeps the writer busy for `ms` milliseconds (tests of request deadlines).
    pub fn stall_writer(&self, ms: u64) {
        match self {
            Store::Sqlite(s) => s.stall_writer(ms),
            Store::Postgres(_) => {}
        }
    }

    /// Limits the database's size in pages (tests make the disk "full" without a disk).
    pub async fn set_max_page_count(&self, pages: u64) -> StorageResult<()> {
        match self {
            Store::Sqlite(s) => s.set_max_page_count(pages).await,
            Store::Postgres(_) => Err(StorageError::Other("not a SQLite store".into())),
        }
    }
}

/// Refuses a backup file that cannot be copied row for row into a store: only a backup of the
/// current schema can (a schema-1 one is migrated by a SQLite store at its first unseal).
pub fn check_row_copy(db: &Path) -> StorageResult<&'static [Table]> {
    let version = snapshot::schema_version(db)?;
    // Version 2 is version 3 without the cubbyhole table: its rows copy all the same.
    match version {
        v if v == sqlite::CURRENT_VERSION => Ok(&Table::ALL),
        2 => Ok(&Table::V2),
        _ => Err(StorageError::Other(format!(
            "{}: schema version {version}: only a backup of schema 2 or {} is copied row for row",
            db.display(),
            sqlite::CURRENT_VERSION
        ))),
    }
}

/// Replaces every fact and row of the store, inside the write transaction `into`, with those of
/// the SQLite database file `db` (a verified backup that [`check_row_copy`] accepts): what the
/// offline restore into PostgreSQL ([`Store::replace_from`]) and the online restore
/// (`Engine::restore_snapshot`) both run, so that the store holds the whole backup or, if
/// anything fails, what it held before.
pub fn replace_rows(into: &dyn WriteTx, db: &Path) -> StorageResult<()> {
    let tables = check_row_copy(db)?;
    into.delete_all()?;
    snapshot::read_file(db, |from| copy::copy_tables(from, into, tables))
}

/// Creates `dir` and its missing parents with mode 0700 (an existing directory keeps its mode): the
/// files are encrypted, but their names, sizes and the lock file are nobody else's business.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Takes the directory's lock file, or says who has it.
pub fn lock_dir(dir: &Path) -> StorageResult<std::fs::File> {
    let path = dir.join("kvseal.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| StorageError::Other(format!("{}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StorageError::Other(format!(
            "{} is in use by another kvseal process",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(StorageError::Other(format!("{}: {e}", path.display())))
        }
    }
}
