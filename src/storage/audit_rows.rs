//! SQL for audit devices.

use rusqlite::{params, Connection};

use crate::engine::error::EngineResult;

/// A stored audit device; `salt` is sealed under the keyring.
pub struct AuditRow {
    pub name: String,
    pub kind: String,
    pub description: String,
    pub options: String,
    pub salt: Vec<u8>,
}

pub fn list(conn: &Connection) -> EngineResult<Vec<AuditRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, type, description, options, salt FROM audit_devices ORDER BY name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(AuditRow {
            name: r.get(0)?,
            kind: r.get(1)?,
            description: r.get(2)?,
            options: r.get(3)?,
            salt: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub fn insert(conn: &Connection, row: &AuditRow) -> EngineResult<()> {
    conn.prepare_cached(
        "INSERT INTO audit_devices (name, type, description, options, salt) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![row.name, row.kind, row.description, row.options, row.salt])?;
    Ok(())
}

pub fn delete(conn: &Connection, name: &str) -> EngineResult<()> {
    conn.prepare_cached("DELETE FROM audit_devices WHERE name = ?1")?
        .execute([name])?;
    Ok(())
}
