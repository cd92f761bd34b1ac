//! Schema versioning: `schema.sql` is version 1; later versions add steps here keyed on
//! `PRAGMA user_version`, so an old database migrates at start-up.

use rusqlite::Connection;

use crate::engine::error::{EngineError, EngineResult};

const SCHEMA_V1: &str = include_str!("../../schema.sql");
pub const CURRENT_VERSION: i64 = 1;

pub fn migrate(conn: &Connection) -> EngineResult<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > CURRENT_VERSION {
        return Err(EngineError::Storage(format!(
            "the database has schema version {version}, newer than this kvseal ({CURRENT_VERSION})"
        )));
    }
    if version < 1 {
        conn.execute_batch(&format!(
            "BEGIN; {SCHEMA_V1}; PRAGMA user_version = 1; COMMIT;"
        ))?;
    }
    Ok(())
}
