//! SQLite storage: one writer thread with group commit, and a pool of read connections.
//!
//! Writes are closures run on the writer thread inside one transaction shared by every job drained from
//! the queue at that moment (each in its own savepoint, so a failing job rolls back alone); replies are
//! sent only after `COMMIT` has returned, so an acknowledged write has been fsynced
//! (`synchronous=FULL`). Because every write runs on one thread, a read-modify-write inside a job (a
//! check-and-set) is atomic. Reads use their own connections (WAL lets them proceed while the writer
//! commits) and never wait for the writer.

pub mod audit_rows;
pub mod rows;
mod schema;
pub mod snapshot;
pub mod token_rows;
mod writer;

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

use crate::engine::error::{EngineError, EngineResult};

pub use writer::Writer;

/// How durable a commit is. `Full` (the default) fsyncs the WAL at every commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    Full,
    Normal,
}

pub struct Store {
    path: PathBuf,
    writer: Writer,
    readers: Arc<Mutex<Vec<Connection>>>,
    /// An exclusive lock on `<dir>/kvseal.lock` for as long as the store is open: a second server,
    /// or `kvseal operator restore`, on the same directory is refused.
    _lock: std::fs::File,
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
pub fn lock_dir(dir: &Path) -> EngineResult<std::fs::File> {
    let path = dir.join("kvseal.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| EngineError::Storage(format!("{}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(EngineError::Storage(format!(
            "{} is in use by another kvseal process",
            dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(EngineError::Storage(format!("{}: {e}", path.display())))
        }
    }
}

fn open_conn(path: &Path, durability: Durability, read_only: bool) -> rusqlite::Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let sync = match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", sync)?;
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

impl Store {
    /// Opens (creating if needed) the database `<dir>/kvseal.db` and applies the schema.
    pub fn open(dir: &Path, durability: Durability) -> EngineResult<Self> {
        create_private_dir(dir)
            .map_err(|e| EngineError::Storage(format!("{}: {e}", dir.display())))?;
        let lock = lock_dir(dir)?;
        let path = dir.join("kvseal.db");
        for suffix in ["", "-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{suffix}", path.display()));
            ensure_private_file(&p)
                .map_err(|e| EngineError::Storage(format!("{}: {e}", p.display())))?;
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

    /// The directory holding the database.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// Writes a consistent copy of the database to `target` (which must not exist) while the store
    /// keeps serving: `VACUUM INTO` reads one snapshot of the WAL database and writes a compact copy.
    pub fn copy_to(&self, target: &Path) -> EngineResult<()> {
        snapshot::vacuum_into(&self.path, target)
    }

    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// Runs `f` on a read connection inside a read transaction (one consistent snapshot).
    pub fn read<R>(&self, f: impl FnOnce(&Connection) -> EngineResult<R>) -> EngineResult<R> {
        let conn = {
            let mut pool = self.readers.lock().unwrap_or_else(|p| p.into_inner());
            pool.pop()
        };
        let conn = match conn {
            Some(c) => c,
            None => open_conn(&self.path, Durability::Full, true)?,
        };
        let result = (|| {
            conn.execute_batch("BEGIN")?;
            let r = f(&conn);
            conn.execute_batch("COMMIT")?;
            r
        })();
        if result.is_err() && !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        let mut pool = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < 32 {
            pool.push(conn);
        }
        result
    }

    /// Runs `f` on the writer thread; resolves after its group has committed.
    pub async fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> EngineResult<R> + Send + 'static,
    ) -> EngineResult<R> {
        self.writer.submit(f).await
    }

    /// Runs `f` on the writer thread, then `then` with its result once committed (see
    /// [`Writer::submit_then`]): for in-memory state that must follow what was committed.
    pub async fn write_then<R: Send + 'static, T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> EngineResult<R> + Send + 'static,
        then: impl FnOnce(R) -> EngineResult<T> + Send + 'static,
    ) -> EngineResult<T> {
        self.writer.submit_then(f, then).await
    }

    /// The same, for callers outside an async context (start-up, tools).
    pub fn write_blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> EngineResult<R> + Send + 'static,
    ) -> EngineResult<R> {
        self.writer.submit_blocking(f)
    }
}
