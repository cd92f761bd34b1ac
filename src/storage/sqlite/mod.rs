//! The SQLite backend: one writer thread with group commit, and a pool of read connections.
//!
//! Writes are closures run on the writer thread inside one transaction shared by every job drained from
//! the queue at that moment (each in its own savepoint, so a failing job rolls back alone); replies are
//! sent only after `COMMIT` has returned, so an acknowledged write has been fsynced
//! (`synchronous=FULL`). Group commit is this backend's own affair: the engine's check-and-set and
//! use counts are conditional writes (see `WriteTx`), exact whatever runs them. Reads use their own
//! connections (WAL lets them proceed while the writer commits) and never wait for the writer.

mod schema;
mod tx;
mod v1;
mod writer;

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

use super::error::{StorageError, StorageResult};
use super::{create_private_dir, lock_dir, Durability, ReadTx, WriteTx};
pub(super) use tx::SqliteTx;
use writer::Writer;

pub use schema::CURRENT_VERSION;
pub use v1::BACKUP_NAME as V1_BACKUP_NAME;

pub struct SqliteStore {
    path: PathBuf,
    writer: Writer,
    readers: Arc<Mutex<Vec<Connection>>>,
    /// An exclusive lock on `<dir>/kvseal.lock` for as long as the store is open: a second server,
    /// or `kvseal operator restore`, on the same directory is refused.
    _lock: std::fs::File,
}

pub(super) fn open_conn(
    path: &Path,
    durability: Durability,
    read_only: bool,
) -> rusqlite::Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let sync = match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", sync)?;
        // Deleted content is not zeroed: every record is sealed, so what a rewrite leaves in free
        // space is sealed too. The schema-1 migration turns it on while it drops the tables that
        // held records in clear.
        conn.pragma_update(None, "secure_delete", "OFF")?;
    }
    if read_only {
        // 16 MiB of page cache per read connection (SQLite's default is 2 MiB): keeps the hot part
        // of a store with 100,000 secrets in memory without a large RSS (few readers are live).
        conn.pragma_update(None, "cache_size", -16_000)?;
    }
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Creates `path` with mode 0600 if it does not exist, so that SQLite (which keeps an existing file's
/// mode and gives its -wal and -shm files the same mode) never creates it world-readable.
fn ensure_private_file(path: &Path) -> std::io::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

fn io_err(path: &Path, e: std::io::Error) -> StorageError {
    StorageError::Other(format!("{}: {e}", path.display()))
}

impl SqliteStore {
    /// Opens (creating if needed) the database `<dir>/kvseal.db` and applies the schema. A schema-1
    /// database is first copied beside itself (`kvseal.db.v1.bak`); its records are sealed at the
    /// first unseal (the keys are needed), see [`WriteTx::take_v1`].
    pub fn open(dir: &Path, durability: Durability) -> StorageResult<Self> {
        create_private_dir(dir).map_err(|e| io_err(dir, e))?;
        let lock = lock_dir(dir)?;
        let path = dir.join("kvseal.db");
        for suffix in ["", "-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{suffix}", path.display()));
            ensure_private_file(&p).map_err(|e| io_err(&p, e))?;
        }
        {
            // Before any setting touches the file (turning WAL on rewrites its header): the copy of
            // a schema-1 database is the file as it was.
            let plain = Connection::open(&path)?;
            if schema::version(&plain)? == 1 {
                v1::keep_copy(&plain, dir)?;
            }
        }
        let conn = open_conn(&path, durability, false)?;
        schema::migrate(&conn)?;
        let writer = Writer::start(conn)?;
        Ok(Self {
            path,
            writer,
            readers: Arc::new(Mutex::new(Vec::new())),
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    pub fn copy_to(&self, target: &Path) -> StorageResult<()> {
        super::snapshot::vacuum_into(&self.path, target)
    }

    /// Moves the WAL's content into the database file and empties the WAL (after the schema-1
    /// migration: the old pages in clear are overwritten in the file itself, not only in the WAL).
    pub fn checkpoint(&self) -> StorageResult<()> {
        let conn = open_conn(&self.path, Durability::Full, false)?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    pub fn needs_v1_migration(&self) -> StorageResult<bool> {
        let conn = open_conn(&self.path, Durability::Full, true)?;
        Ok(schema::version(&conn)? == 1)
    }

    pub fn read<R, E: From<StorageError>>(
        &self,
        f: impl FnOnce(&dyn ReadTx) -> Result<R, E>,
    ) -> Result<R, E> {
        let conn = {
            let mut pool = self.readers.lock().unwrap_or_else(|p| p.into_inner());
            pool.pop()
        };
        let conn = match conn {
            Some(c) => c,
            None => open_conn(&self.path, Durability::Full, true).map_err(StorageError::from)?,
        };
        let result = match conn.execute_batch("BEGIN") {
            Err(e) => Err(E::from(StorageError::from(e))),
            Ok(()) => {
                let r = f(&SqliteTx::new(&conn));
                match conn.execute_batch("COMMIT") {
                    Ok(()) => r,
                    Err(e) => Err(E::from(StorageError::from(e))),
                }
            }
        };
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        let mut pool = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < 32 {
            pool.push(conn);
        }
        result
    }

    pub async fn write<R: Send + 'static, E: From<StorageError> + Send + 'static>(
        &self,
        f: impl FnOnce(&dyn WriteTx) -> Result<R, E> + Send + 'static,
    ) -> Result<R, E> {
        self.writer.submit(f).await
    }

    pub async fn write_then<
        R: Send + 'static,
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    >(
        &self,
        f: impl FnOnce(&dyn WriteTx) -> Result<R, E> + Send + 'static,
        then: impl FnOnce(R) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        self.writer.submit_then(f, then).await
    }

    pub fn write_blocking<R: Send + 'static, E: From<StorageError> + Send + 'static>(
        &self,
        f: impl FnOnce(&dyn WriteTx) -> Result<R, E> + Send + 'static,
    ) -> Result<R, E> {
        self.writer.submit_blocking(f)
    }

    pub fn stall_writer(&self, ms: u64) {
        let writer = self.writer.clone();
        std::thread::spawn(move || {
            let _ = writer.submit_blocking(move |_| {
                std::thread::sleep(std::time::Duration::from_millis(ms));
                Ok::<_, StorageError>(())
            });
        });
    }

    pub async fn set_max_page_count(&self, pages: u64) -> StorageResult<()> {
        self.writer
            .submit_conn(move |c| {
                c.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
                Ok(())
            })
            .await
    }
}
