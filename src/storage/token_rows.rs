//! SQL for tokens, policies and token roles.

use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension};

use crate::engine::clock::Nanos;
use crate::engine::error::EngineResult;

/// A stored token (never the token itself: `hash` is its keyed hash).
#[derive(Clone, Debug)]
pub struct TokenRow {
    pub hash: Vec<u8>,
    pub accessor: String,
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

const COLS: &str = "hash, accessor, parent_hash, policies, path, display_name, meta, creation_ns, \
     creation_ttl, expire_ns, explicit_max_ttl, period, renewable, num_uses, orphan, role, \
     last_renewal_ns";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRow> {
    let policies: String = r.get(3)?;
    let meta: Option<String> = r.get(6)?;
    Ok(TokenRow {
        hash: r.get(0)?,
        accessor: r.get(1)?,
        parent: r.get(2)?,
        policies: serde_json::from_str(&policies).unwrap_or_default(),
        path: r.get(4)?,
        display_name: r.get(5)?,
        meta: meta.and_then(|m| serde_json::from_str(&m).ok()),
        creation: r.get(7)?,
        creation_ttl: r.get(8)?,
        expire: r.get(9)?,
        explicit_max_ttl: r.get(10)?,
        period: r.get(11)?,
        renewable: r.get(12)?,
        num_uses: r.get(13)?,
        orphan: r.get(14)?,
        role: r.get(15)?,
        last_renewal: r.get(16)?,
    })
}

pub fn insert_token(conn: &Connection, t: &TokenRow) -> EngineResult<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO tokens ({COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
    ))?
    .execute(params![
        t.hash,
        t.accessor,
        t.parent,
        serde_json::to_string(&t.policies).unwrap_or_else(|_| "[]".into()),
        t.path,
        t.display_name,
        t.meta.as_ref().map(|m| serde_json::to_string(m).unwrap_or_default()),
        t.creation,
        t.creation_ttl,
        t.expire,
        t.explicit_max_ttl,
        t.period,
        t.renewable,
        t.num_uses,
        t.orphan,
        t.role,
        t.last_renewal,
    ])?;
    Ok(())
}

pub fn get_token(conn: &Connection, hash: &[u8]) -> EngineResult<Option<TokenRow>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLS} FROM tokens WHERE hash = ?1"))?
        .query_row([hash], from_row)
        .optional()?)
}

pub fn get_token_by_accessor(conn: &Connection, accessor: &str) -> EngineResult<Option<TokenRow>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLS} FROM tokens WHERE accessor = ?1"))?
        .query_row([accessor], from_row)
        .optional()?)
}

pub fn set_expiry(
    conn: &Connection,
    hash: &[u8],
    expire: Option<Nanos>,
    last_renewal: Nanos,
) -> EngineResult<()> {
    conn.prepare_cached("UPDATE tokens SET expire_ns = ?2, last_renewal_ns = ?3 WHERE hash = ?1")?
        .execute(params![hash, expire, last_renewal])?;
    Ok(())
}

pub fn set_num_uses(conn: &Connection, hash: &[u8], n: i64) -> EngineResult<()> {
    conn.prepare_cached("UPDATE tokens SET num_uses = ?2 WHERE hash = ?1")?
        .execute(params![hash, n])?;
    Ok(())
}

/// Deletes a token and every token descended from it.
pub fn delete_token_tree(conn: &Connection, hash: &[u8]) -> EngineResult<usize> {
    Ok(conn
        .prepare_cached(
            "WITH RECURSIVE sub(h) AS (
                 SELECT hash FROM tokens WHERE hash = ?1
                 UNION SELECT t.hash FROM tokens t JOIN sub ON t.parent_hash = sub.h
             )
             DELETE FROM tokens WHERE hash IN (SELECT h FROM sub)",
        )?
        .execute([hash])?)
}

/// Deletes one token and makes its children orphans (`revoke-orphan`).
pub fn delete_token_keep_children(conn: &Connection, hash: &[u8]) -> EngineResult<usize> {
    conn.prepare_cached("UPDATE tokens SET parent_hash = NULL, orphan = 1 WHERE parent_hash = ?1")?
        .execute([hash])?;
    Ok(conn
        .prepare_cached("DELETE FROM tokens WHERE hash = ?1")?
        .execute([hash])?)
}

pub fn list_accessors(conn: &Connection) -> EngineResult<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT accessor FROM tokens ORDER BY accessor")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<Result<Vec<String>, _>>()?)
}

// ---- named documents: policies and token roles ----

/// The two tables that map a name to a text: `policies` (HCL) and `token_roles` (JSON).
#[derive(Clone, Copy, Debug)]
pub enum Named {
    Policies,
    TokenRoles,
}

impl Named {
    fn sql(self) -> (&'static str, &'static str) {
        match self {
            Named::Policies => ("policies", "text"),
            Named::TokenRoles => ("token_roles", "config"),
        }
    }
}

pub fn get_named(conn: &Connection, t: Named, name: &str) -> EngineResult<Option<String>> {
    let (table, col) = t.sql();
    Ok(conn
        .prepare_cached(&format!("SELECT {col} FROM {table} WHERE name = ?1"))?
        .query_row([name], |r| r.get(0))
        .optional()?)
}

pub fn put_named(conn: &Connection, t: Named, name: &str, text: &str) -> EngineResult<()> {
    let (table, col) = t.sql();
    conn.prepare_cached(&format!(
        "INSERT INTO {table} (name, {col}) VALUES (?1, ?2)
         ON CONFLICT(name) DO UPDATE SET {col} = excluded.{col}"
    ))?
    .execute(params![name, text])?;
    Ok(())
}

pub fn delete_named(conn: &Connection, t: Named, name: &str) -> EngineResult<()> {
    let (table, _) = t.sql();
    conn.prepare_cached(&format!("DELETE FROM {table} WHERE name = ?1"))?
        .execute([name])?;
    Ok(())
}

pub fn list_named(conn: &Connection, t: Named) -> EngineResult<Vec<(String, String)>> {
    let (table, col) = t.sql();
    let mut stmt =
        conn.prepare_cached(&format!("SELECT name, {col} FROM {table} ORDER BY name"))?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}
