//! Schema versions, keyed on `PRAGMA user_version`: 3 is `schema.sql` (every record sealed); 2 is 3
//! without the `cubbyhole` table (added in place at start); 1 was the first release's (records in
//! clear), migrated by `v1.rs` at the first unseal.

use rusqlite::Connection;

use crate::storage::error::{StorageError, StorageResult};

pub(super) const SCHEMA: &str = include_str!("schema.sql");
pub const CURRENT_VERSION: i64 = 3;

/// What version 3 adds to version 2: a new table, nothing else changes.
const V2_TO_V3: &str = include_str!("schema_v3.sql");

pub fn version(conn: &Connection) -> StorageResult<i64> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Creates the schema in an empty database, adds the cubbyhole table to a version-2 one; refuses a
/// database newer than this build. A version-1 database is left as it is until its records can be
/// sealed.
pub fn migrate(conn: &Connection) -> StorageResult<()> {
    let version = version(conn)?;
    if version > CURRENT_VERSION {
        return Err(StorageError::Other(format!(
            "the database has schema version {version}, newer than this kvseal ({CURRENT_VERSION})"
        )));
    }
    if version == 0 {
        conn.execute_batch(&format!(
            "BEGIN; {SCHEMA}; PRAGMA user_version = {CURRENT_VERSION}; COMMIT;"
        ))?;
    }
    if version == 2 {
        conn.execute_batch(&format!(
            "BEGIN; {V2_TO_V3}; PRAGMA user_version = {CURRENT_VERSION}; COMMIT;"
        ))?;
    }
    Ok(())
}
