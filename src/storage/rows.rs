//! SQL for each table. Plain functions over a connection: the engine calls them inside a write job or
//! a read snapshot. Every statement is cached (`prepare_cached`).

use rusqlite::{params, Connection, OptionalExtension};

use crate::engine::clock::Nanos;
use crate::engine::error::EngineResult;
use crate::engine::model::{KvConfig, Mount, SecretMeta, VersionMeta};
use crate::engine::path::MountPath;

// ---- kvseal_meta ----

pub fn get_fact(conn: &Connection, key: &str) -> EngineResult<Option<Vec<u8>>> {
    Ok(conn
        .prepare_cached("SELECT value FROM kvseal_meta WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

pub fn put_fact(conn: &Connection, key: &str, value: &[u8]) -> EngineResult<()> {
    conn.prepare_cached(
        "INSERT INTO kvseal_meta (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key, value])?;
    Ok(())
}

// ---- mounts ----

const MOUNT_COLS: &str = "id, path, type, kv_version, description, uuid, accessor, options, \
     default_lease_ttl, max_lease_ttl, force_no_cache, max_versions, cas_required, \
     delete_version_after, created_ns, delete_version_after_text";

fn mount_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Mount> {
    let path: String = r.get(1)?;
    let options: String = r.get(7)?;
    Ok(Mount {
        id: r.get(0)?,
        path: MountPath::parse(&path).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, e.into())
        })?,
        kind: r.get(2)?,
        kv_version: r.get(3)?,
        description: r.get(4)?,
        uuid: r.get(5)?,
        accessor: r.get(6)?,
        options: serde_json::from_str(&options).unwrap_or_default(),
        default_lease_ttl: r.get(8)?,
        max_lease_ttl: r.get(9)?,
        force_no_cache: r.get(10)?,
        kv: KvConfig {
            max_versions: r.get(11)?,
            cas_required: r.get(12)?,
            delete_version_after: r.get(13)?,
            delete_version_after_text: r.get(15)?,
        },
        created: r.get(14)?,
    })
}

pub fn load_mounts(conn: &Connection) -> EngineResult<Vec<Mount>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {MOUNT_COLS} FROM mounts ORDER BY path"))?;
    let rows = stmt.query_map([], mount_from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Inserts a mount and returns its new id.
pub fn insert_mount(conn: &Connection, m: &Mount) -> EngineResult<i64> {
    conn.prepare_cached(
        "INSERT INTO mounts (path, type, kv_version, description, uuid, accessor, options,
            default_lease_ttl, max_lease_ttl, force_no_cache, max_versions, cas_required,
            delete_version_after, created_ns, delete_version_after_text)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    )?
    .execute(params![
        m.path.as_str(),
        m.kind,
        m.kv_version,
        m.description,
        m.uuid,
        m.accessor,
        serde_json::to_string(&m.options).unwrap_or_else(|_| "{}".into()),
        m.default_lease_ttl,
        m.max_lease_ttl,
        m.force_no_cache,
        m.kv.max_versions,
        m.kv.cas_required,
        m.kv.delete_version_after,
        m.created,
        m.kv.delete_version_after_text,
    ])?;
    Ok(conn.last_insert_rowid())
}

pub fn update_mount(conn: &Connection, m: &Mount) -> EngineResult<()> {
    conn.prepare_cached(
        "UPDATE mounts SET kv_version = ?2, description = ?3, options = ?4, default_lease_ttl = ?5,
            max_lease_ttl = ?6, force_no_cache = ?7, max_versions = ?8, cas_required = ?9,
            delete_version_after = ?10, delete_version_after_text = ?11
         WHERE id = ?1",
    )?
    .execute(params![
        m.id,
        m.kv_version,
        m.description,
        serde_json::to_string(&m.options).unwrap_or_else(|_| "{}".into()),
        m.default_lease_ttl,
        m.max_lease_ttl,
        m.force_no_cache,
        m.kv.max_versions,
        m.kv.cas_required,
        m.kv.delete_version_after,
        m.kv.delete_version_after_text,
    ])?;
    Ok(())
}

pub fn get_mount(conn: &Connection, id: i64) -> EngineResult<Option<Mount>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {MOUNT_COLS} FROM mounts WHERE id = ?1"))?
        .query_row([id], mount_from_row)
        .optional()?)
}

/// Deletes a mount and everything stored under it.
pub fn delete_mount(conn: &Connection, id: i64) -> EngineResult<()> {
    conn.prepare_cached("DELETE FROM versions WHERE mount_id = ?1")?
        .execute([id])?;
    conn.prepare_cached("DELETE FROM secrets WHERE mount_id = ?1")?
        .execute([id])?;
    conn.prepare_cached("DELETE FROM mounts WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

// ---- secrets (key metadata) ----

const META_COLS: &str = "created_ns, updated_ns, current_version, oldest_version, max_versions, \
     cas_required, delete_version_after, custom_metadata, delete_version_after_text, path";

fn meta_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SecretMeta> {
    let custom: Option<String> = r.get(7)?;
    Ok(SecretMeta {
        created: r.get(0)?,
        updated: r.get(1)?,
        current_version: r.get::<_, i64>(2)? as u64,
        oldest_version: r.get::<_, i64>(3)? as u64,
        max_versions: r.get(4)?,
        cas_required: r.get(5)?,
        delete_version_after: r.get(6)?,
        delete_version_after_text: r.get(8)?,
        custom_metadata: custom.and_then(|s| serde_json::from_str(&s).ok()),
    })
}

pub fn get_meta(conn: &Connection, mount_id: i64, path: &str) -> EngineResult<Option<SecretMeta>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {META_COLS} FROM secrets WHERE mount_id = ?1 AND path = ?2"
        ))?
        .query_row(params![mount_id, path], meta_from_row)
        .optional()?)
}

pub fn put_meta(conn: &Connection, mount_id: i64, path: &str, m: &SecretMeta) -> EngineResult<()> {
    let custom = m
        .custom_metadata
        .as_ref()
        .filter(|c| !c.is_empty())
        .map(|c| serde_json::to_string(c).unwrap_or_default());
    conn.prepare_cached(
        "INSERT INTO secrets (mount_id, path, created_ns, updated_ns, current_version, oldest_version,
            max_versions, cas_required, delete_version_after, custom_metadata,
            delete_version_after_text)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT(mount_id, path) DO UPDATE SET
            created_ns = excluded.created_ns, updated_ns = excluded.updated_ns,
            current_version = excluded.current_version, oldest_version = excluded.oldest_version,
            max_versions = excluded.max_versions, cas_required = excluded.cas_required,
            delete_version_after = excluded.delete_version_after,
            custom_metadata = excluded.custom_metadata,
            delete_version_after_text = excluded.delete_version_after_text",
    )?
    .execute(params![
        mount_id,
        path,
        m.created,
        m.updated,
        m.current_version as i64,
        m.oldest_version as i64,
        m.max_versions,
        m.cas_required,
        m.delete_version_after,
        custom,
        m.delete_version_after_text,
    ])?;
    Ok(())
}

/// Deletes a key's metadata and all its versions.
pub fn delete_secret(conn: &Connection, mount_id: i64, path: &str) -> EngineResult<()> {
    conn.prepare_cached("DELETE FROM versions WHERE mount_id = ?1 AND path = ?2")?
        .execute(params![mount_id, path])?;
    conn.prepare_cached("DELETE FROM secrets WHERE mount_id = ?1 AND path = ?2")?
        .execute(params![mount_id, path])?;
    Ok(())
}

/// Key metadata for paths after `after` (exclusive), in path order: one index range scan.
pub fn list_metas_after(
    conn: &Connection,
    mount_id: i64,
    after: &str,
    limit: usize,
) -> EngineResult<Vec<(String, SecretMeta)>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {META_COLS} FROM secrets WHERE mount_id = ?1 AND path > ?2 ORDER BY path LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![mount_id, after, limit as i64], |r| {
        Ok((r.get::<_, String>(9)?, meta_from_row(r)?))
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

// ---- versions ----

pub fn list_versions(
    conn: &Connection,
    mount_id: i64,
    path: &str,
) -> EngineResult<Vec<VersionMeta>> {
    let mut stmt = conn.prepare_cached(
        "SELECT version, created_ns, deletion_ns, destroyed FROM versions
         WHERE mount_id = ?1 AND path = ?2 ORDER BY version",
    )?;
    let rows = stmt.query_map(params![mount_id, path], |r| {
        Ok(VersionMeta {
            version: r.get::<_, i64>(0)? as u64,
            created: r.get(1)?,
            deletion_time: r.get(2)?,
            destroyed: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// One version's metadata.
pub fn get_version_meta(
    conn: &Connection,
    mount_id: i64,
    path: &str,
    version: u64,
) -> EngineResult<Option<VersionMeta>> {
    Ok(conn
        .prepare_cached(
            "SELECT version, created_ns, deletion_ns, destroyed FROM versions
             WHERE mount_id = ?1 AND path = ?2 AND version = ?3",
        )?
        .query_row(params![mount_id, path, version as i64], |r| {
            Ok(VersionMeta {
                version: r.get::<_, i64>(0)? as u64,
                created: r.get(1)?,
                deletion_time: r.get(2)?,
                destroyed: r.get(3)?,
            })
        })
        .optional()?)
}

/// A version's sealed data: (key id, nonce, ciphertext), `None` when destroyed or missing.
pub type SealedBlob = (u32, Vec<u8>, Vec<u8>);

pub fn get_blob(
    conn: &Connection,
    mount_id: i64,
    path: &str,
    version: u64,
) -> EngineResult<Option<SealedBlob>> {
    type MaybeBlob = (Option<u32>, Option<Vec<u8>>, Option<Vec<u8>>);
    let row: Option<MaybeBlob> = conn
        .prepare_cached(
            "SELECT key_id, nonce, ciphertext FROM versions
             WHERE mount_id = ?1 AND path = ?2 AND version = ?3",
        )?
        .query_row(params![mount_id, path, version as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    Ok(match row {
        Some((Some(k), Some(n), Some(c))) => Some((k, n, c)),
        _ => None,
    })
}

pub fn insert_version(
    conn: &Connection,
    mount_id: i64,
    path: &str,
    v: &VersionMeta,
    blob: &SealedBlob,
) -> EngineResult<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO versions (mount_id, path, version, created_ns, deletion_ns, destroyed,
            key_id, nonce, ciphertext)
         VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?8)",
    )?
    .execute(params![
        mount_id,
        path,
        v.version as i64,
        v.created,
        v.deletion_time,
        blob.0,
        blob.1,
        blob.2
    ])?;
    Ok(())
}

/// A version sealed under an older key (for rewrapping).
pub struct StaleVersion {
    pub mount_id: i64,
    pub path: String,
    pub version: u64,
    pub key_id: u32,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

pub fn stale_versions(
    conn: &Connection,
    active: u32,
    limit: usize,
) -> EngineResult<Vec<StaleVersion>> {
    let mut stmt = conn.prepare_cached(
        "SELECT mount_id, path, version, key_id, nonce, ciphertext FROM versions
         WHERE ciphertext IS NOT NULL AND key_id != ?1 LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![active, limit as i64], |r| {
        Ok(StaleVersion {
            mount_id: r.get(0)?,
            path: r.get(1)?,
            version: r.get::<_, i64>(2)? as u64,
            key_id: r.get(3)?,
            nonce: r.get(4)?,
            ciphertext: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub fn count_stale_versions(conn: &Connection, active: u32) -> EngineResult<u64> {
    Ok(conn
        .prepare_cached(
            "SELECT count(*) FROM versions WHERE ciphertext IS NOT NULL AND key_id != ?1",
        )?
        .query_row([active], |r| r.get::<_, i64>(0))? as u64)
}

pub fn replace_blob(
    conn: &Connection,
    mount_id: i64,
    path: &str,
    version: u64,
    blob: &SealedBlob,
) -> EngineResult<()> {
    conn.prepare_cached(
        "UPDATE versions SET key_id = ?4, nonce = ?5, ciphertext = ?6
         WHERE mount_id = ?1 AND path = ?2 AND version = ?3 AND ciphertext IS NOT NULL",
    )?
    .execute(params![
        mount_id,
        path,
        version as i64,
        blob.0,
        blob.1,
        blob.2
    ])?;
    Ok(())
}

/// Sets a version's deletion time (soft delete, undelete, schedule).
pub fn set_deletion(
    conn: &Connection,
    mount_id: i64,
    path: &str,
    version: u64,
    deletion: Option<Nanos>,
) -> EngineResult<()> {
    conn.prepare_cached(
        "UPDATE versions SET deletion_ns = ?4 WHERE mount_id = ?1 AND path = ?2 AND version = ?3",
    )?
    .execute(params![mount_id, path, version as i64, deletion])?;
    Ok(())
}

/// Marks a version destroyed and wipes its data.
pub fn destroy_version(
    conn: &Connection,
    mount_id: i64,
    path: &str,
    version: u64,
) -> EngineResult<()> {
    conn.prepare_cached(
        "UPDATE versions SET destroyed = 1, key_id = NULL, nonce = NULL, ciphertext = NULL
         WHERE mount_id = ?1 AND path = ?2 AND version = ?3",
    )?
    .execute(params![mount_id, path, version as i64])?;
    Ok(())
}

/// Removes every version numbered `upto` or lower (pruning).
pub fn prune_versions(conn: &Connection, mount_id: i64, path: &str, upto: u64) -> EngineResult<()> {
    conn.prepare_cached(
        "DELETE FROM versions WHERE mount_id = ?1 AND path = ?2 AND version <= ?3",
    )?
    .execute(params![mount_id, path, upto as i64])?;
    Ok(())
}

// ---- listing ----

/// The smallest string greater than every string that starts with `prefix` (for range scans).
fn prefix_end(prefix: &str) -> String {
    // U+10FFFF sorts after every other code point in UTF-8 byte order.
    format!("{prefix}\u{10FFFF}")
}

/// Lists the direct children of `folder` (`""` or ending in `/`) in byte order: keys as their name,
/// sub-folders as `name/`. Only names greater than `after` are returned, at most `limit` of them.
///
/// This is a skip scan: rows are read in path order a small batch at a time and, when a row lies in a
/// sub-folder, the scan jumps past that whole sub-folder. A folder's deep contents are never loaded,
/// so a folder with 100,000 keys lists in pages without holding them all in memory.
pub fn list_children(
    conn: &Connection,
    mount_id: i64,
    folder: &str,
    after: Option<&str>,
    limit: Option<usize>,
) -> EngineResult<Vec<String>> {
    const BATCH: i64 = 256;
    let end = prefix_end(folder);
    let mut cursor = match after {
        // Names greater than `after`: start just past `folder + after` and, if `after` is a folder
        // (`x/`), past everything inside it.
        Some(a) if a.ends_with('/') => prefix_end(&format!("{folder}{a}")),
        Some(a) => format!("{folder}{a}\u{0}"),
        None => folder.to_string(),
    };
    let mut out = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT path FROM secrets WHERE mount_id = ?1 AND path >= ?2 AND path < ?3
         ORDER BY path LIMIT ?4",
    )?;
    'scan: loop {
        let rows: Vec<String> = stmt
            .query_map(params![mount_id, cursor, end, BATCH], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        if rows.is_empty() {
            break;
        }
        let full = rows.len() as i64 == BATCH;
        let mut next_cursor = None;
        for path in &rows {
            let rest = &path[folder.len()..];
            match rest.find('/') {
                Some(i) => {
                    let child = format!("{}/", &rest[..i]);
                    // Skip the whole sub-folder and re-query from past it.
                    next_cursor = Some(prefix_end(&format!("{folder}{child}")));
                    out.push(child);
                }
                None => out.push(rest.to_string()),
            }
            if limit.is_some_and(|l| out.len() >= l) {
                break 'scan;
            }
            if next_cursor.is_some() {
                break;
            }
        }
        cursor = match next_cursor {
            Some(c) => c,
            None if full => format!("{}\u{0}", rows[rows.len() - 1]),
            None => break,
        };
    }
    Ok(out)
}
