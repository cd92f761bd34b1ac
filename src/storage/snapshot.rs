//! Consistent copies of the database (backup) and checking one before it is restored.

use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::error::{StorageError, StorageResult};
use super::sqlite::CURRENT_VERSION;

/// Copies the database at `db` into `target` (a new file) from one read snapshot. Works while a
/// server is writing: WAL readers never block the writer.
pub fn vacuum_into(db: &Path, target: &Path) -> StorageResult<()> {
    if target.exists() {
        return Err(StorageError::Other(format!(
            "{} already exists",
            target.display()
        )));
    }
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    let target_str = target
        .to_str()
        .ok_or_else(|| StorageError::Other("the backup path is not valid UTF-8".into()))?;
    conn.execute("VACUUM INTO ?1", [target_str])?;
    restrict(target)?;
    Ok(())
}

/// The SQLite schema (`sqlite/schema.sql`), for a database file written here from another backend.
const SQLITE_SCHEMA: &str = include_str!("sqlite/schema.sql");

/// Creates the SQLite database file `target` (which must not exist; mode 0600) with the current
/// schema, and runs `fill` in one transaction on it: a PostgreSQL store's snapshot is its rows
/// written into a file of the same schema as SQLite's own copy, so that the archive, its
/// verification and a restore into either backend are the same. Nothing is left at `target` if
/// `fill` fails.
pub fn new_file<R>(
    target: &Path,
    fill: impl FnOnce(&dyn super::WriteTx) -> StorageResult<R>,
) -> StorageResult<R> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(target)
        .map_err(|e| StorageError::Other(format!("{}: {e}", target.display())))?;
    let result = (|| {
        let conn = Connection::open_with_flags(
            target,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.execute_batch(&format!(
            "BEGIN; {SQLITE_SCHEMA}; PRAGMA user_version = {CURRENT_VERSION};"
        ))?;
        let r = fill(&super::sqlite::SqliteTx::new(&conn));
        match r {
            Ok(v) => {
                conn.execute_batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(target);
    }
    result
}

/// Gives a file holding (encrypted) secrets mode 0600.
pub fn restrict(path: &Path) -> StorageResult<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| StorageError::Other(format!("{}: {e}", path.display())))
}

/// Checks that `path` is a sound kvseal database of a version this build can open.
pub fn verify(path: &Path) -> StorageResult<()> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| StorageError::Other(format!("{}: not a database: {e}", path.display())))?;
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| StorageError::Other(format!("{}: not a database: {e}", path.display())))?;
    if check != "ok" {
        return Err(StorageError::Other(format!(
            "{}: integrity check failed: {check}",
            path.display()
        )));
    }
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if !(1..=CURRENT_VERSION).contains(&version) {
        return Err(StorageError::Other(format!(
            "{}: schema version {version} is not one this kvseal can restore",
            path.display()
        )));
    }
    let has_meta: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'kvseal_meta'",
        [],
        |r| r.get(0),
    )?;
    if has_meta != 1 {
        return Err(StorageError::Other(format!(
            "{}: not a kvseal database",
            path.display()
        )));
    }
    Ok(())
}

/// The values of the facts `keys` (rows of `kvseal_meta`) in the database file at `path`, read in one
/// read transaction of a read-only connection: `None` for a fact the file does not hold. A restore
/// reads the backup's own root key and keyring with it, to verify the backup before it is installed.
pub fn read_facts(path: &Path, keys: &[&str]) -> StorageResult<Vec<Option<Vec<u8>>>> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| StorageError::Other(format!("{}: not a database: {e}", path.display())))?;
    let tx = conn.unchecked_transaction()?;
    let mut stmt = tx.prepare("SELECT value FROM kvseal_meta WHERE key = ?1")?;
    let mut values = Vec::with_capacity(keys.len());
    for key in keys {
        values.push(stmt.query_row([key], |r| r.get(0)).optional()?);
    }
    Ok(values)
}

/// The schema version of the database file at `path`.
pub fn schema_version(path: &Path) -> StorageResult<i64> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| StorageError::Other(format!("{}: not a database: {e}", path.display())))?;
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Runs `f` in one read transaction over the database file at `path` (a backup being verified),
/// through the same interface the engine reads a live store with.
pub fn read_file<R, E: From<StorageError>>(
    path: &Path,
    f: impl FnOnce(&dyn super::ReadTx) -> Result<R, E>,
) -> Result<R, E> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| StorageError::Other(format!("{}: not a database: {e}", path.display())))?;
    conn.execute_batch("BEGIN").map_err(StorageError::from)?;
    let r = f(&super::sqlite::SqliteTx::new(&conn));
    let _ = conn.execute_batch("ROLLBACK");
    r
}
