//! Migration from schema 1 (records in clear, kvseal's first release) to schema 2 (every record
//! sealed). Two steps, because sealing needs the keys:
//! * at open, before anything else touches the file, a copy of the database is kept beside it
//!   (`kvseal.db.v1.bak`, byte for byte, once);
//! * at the first unseal, in one write transaction, the engine takes the records in clear
//!   ([`take`]), writes them sealed through the ordinary interface, and [`finish`] drops the old
//!   tables and records version 2. A failure anywhere rolls the whole migration back.

use std::path::Path;

use rusqlite::{params, Connection};

use crate::storage::error::{StorageError, StorageResult};
use crate::storage::rows::{V1Audit, V1Dump, V1Mount, V1Secret, V1Token, V1Version};

/// The copy of a schema-1 database kept beside it before migrating.
pub const BACKUP_NAME: &str = "kvseal.db.v1.bak";

/// Keeps a copy of the schema-1 database at `<dir>/kvseal.db.v1.bak` unless one exists: the WAL is
/// merged into the file first, then the file is copied as it is and synced.
pub fn keep_copy(conn: &Connection, dir: &Path) -> StorageResult<()> {
    let backup = dir.join(BACKUP_NAME);
    if backup.exists() {
        return Ok(());
    }
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let io = |e: std::io::Error| StorageError::Other(format!("{}: {e}", backup.display()));
    let tmp = dir.join(format!("{BACKUP_NAME}.tmp"));
    std::fs::copy(dir.join("kvseal.db"), &tmp).map_err(io)?;
    super::super::snapshot::restrict(&tmp)?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    std::fs::rename(&tmp, &backup).map_err(io)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    tracing::info!(copy = %backup.display(), "schema-1 database copied before its records are sealed");
    Ok(())
}

fn v1_present(conn: &Connection) -> StorageResult<bool> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    Ok(version == 1)
}

/// Moves the schema-1 tables aside, creates the schema-2 ones, moves the version ciphertexts across
/// unchanged, and returns every other record in clear. `None` when the store is not at version 1.
pub fn take(conn: &Connection) -> StorageResult<Option<V1Dump>> {
    if !v1_present(conn)? {
        return Ok(None);
    }
    conn.execute_batch(
        "DROP INDEX IF EXISTS tokens_by_parent;
         ALTER TABLE secrets RENAME TO v1_secrets;
         ALTER TABLE versions RENAME TO v1_versions;
         ALTER TABLE tokens RENAME TO v1_tokens;",
    )?;
    conn.execute_batch(super::schema::SCHEMA)?;
    conn.execute(
        "INSERT INTO versions (mount_id, path, version, key_id, nonce, ciphertext)
         SELECT mount_id, path, version, key_id, nonce, ciphertext FROM v1_versions
         WHERE destroyed = 0 AND key_id IS NOT NULL AND nonce IS NOT NULL AND ciphertext IS NOT NULL",
        [],
    )?;
    let mut dump = V1Dump::default();
    {
        let mut stmt = conn.prepare(
            "SELECT id, path, type, kv_version, description, uuid, accessor, options,
                default_lease_ttl, max_lease_ttl, force_no_cache, max_versions, cas_required,
                delete_version_after, delete_version_after_text, created_ns FROM mounts ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(V1Mount {
                id: r.get(0)?,
                path: r.get(1)?,
                kind: r.get(2)?,
                kv_version: r.get(3)?,
                description: r.get(4)?,
                uuid: r.get(5)?,
                accessor: r.get(6)?,
                options: r.get(7)?,
                default_lease_ttl: r.get(8)?,
                max_lease_ttl: r.get(9)?,
                force_no_cache: r.get(10)?,
                max_versions: r.get(11)?,
                cas_required: r.get(12)?,
                delete_version_after: r.get(13)?,
                delete_version_after_text: r.get(14)?,
                created_ns: r.get(15)?,
            })
        })?;
        dump.mounts = rows.collect::<Result<_, _>>()?;
    }
    let seq: Option<i64> = conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'mounts'",
            [],
            |r| r.get(0),
        )
        .ok();
    let max_id = dump.mounts.iter().map(|m| m.id).max().unwrap_or(0);
    dump.next_mount_id = seq.unwrap_or(0).max(max_id) + 1;
    {
        let mut versions = conn.prepare(
            "SELECT version, created_ns, deletion_ns, destroyed FROM v1_versions
             WHERE mount_id = ?1 AND path = ?2 ORDER BY version",
        )?;
        let mut stmt = conn.prepare(
            "SELECT mount_id, path, created_ns, updated_ns, current_version, oldest_version,
                max_versions, cas_required, delete_version_after, delete_version_after_text,
                custom_metadata FROM v1_secrets ORDER BY mount_id, path",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let mut s = V1Secret {
                mount_id: r.get(0)?,
                path: r.get(1)?,
                created_ns: r.get(2)?,
                updated_ns: r.get(3)?,
                current_version: r.get(4)?,
                oldest_version: r.get(5)?,
                max_versions: r.get(6)?,
                cas_required: r.get(7)?,
                delete_version_after: r.get(8)?,
                delete_version_after_text: r.get(9)?,
                custom_metadata: r.get(10)?,
                versions: Vec::new(),
            };
            let vs = versions.query_map(params![s.mount_id, s.path], |v| {
                Ok(V1Version {
                    version: v.get(0)?,
                    created_ns: v.get(1)?,
                    deletion_ns: v.get(2)?,
                    destroyed: v.get(3)?,
                })
            })?;
            s.versions = vs.collect::<Result<_, _>>()?;
            dump.secrets.push(s);
        }
    }
    {
        let mut stmt = conn.prepare(
            "SELECT hash, accessor, parent_hash, policies, path, display_name, meta, creation_ns,
                creation_ttl, expire_ns, explicit_max_ttl, period, renewable, num_uses, orphan, role,
                last_renewal_ns FROM v1_tokens",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(V1Token {
                hash: r.get(0)?,
                accessor: r.get(1)?,
                parent_hash: r.get(2)?,
                policies: r.get(3)?,
                path: r.get(4)?,
                display_name: r.get(5)?,
                meta: r.get(6)?,
                creation_ns: r.get(7)?,
                creation_ttl: r.get(8)?,
                expire_ns: r.get(9)?,
                explicit_max_ttl: r.get(10)?,
                period: r.get(11)?,
                renewable: r.get(12)?,
                num_uses: r.get(13)?,
                orphan: r.get(14)?,
                role: r.get(15)?,
                last_renewal_ns: r.get(16)?,
            })
        })?;
        dump.tokens = rows.collect::<Result<_, _>>()?;
    }
    for (table, col, out) in [
        ("policies", "text", &mut dump.policies),
        ("token_roles", "config", &mut dump.token_roles),
    ] {
        let mut stmt = conn.prepare(&format!("SELECT name, {col} FROM {table} ORDER BY name"))?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        *out = rows.collect::<Result<_, _>>()?;
    }
    {
        let mut stmt = conn.prepare(
            "SELECT name, type, description, options, salt FROM audit_devices ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(V1Audit {
                name: r.get(0)?,
                kind: r.get(1)?,
                description: r.get(2)?,
                options: r.get(3)?,
                salt: r.get(4)?,
            })
        })?;
        dump.audit_devices = rows.collect::<Result<_, _>>()?;
    }
    Ok(Some(dump))
}

/// Drops the schema-1 tables (their pages are zeroed: `secure_delete` on for the drop) and records version 2.
pub fn finish(conn: &Connection) -> StorageResult<()> {
    conn.execute_batch(&format!(
        "PRAGMA secure_delete = ON;
         DROP TABLE v1_secrets; DROP TABLE v1_versions; DROP TABLE v1_tokens;
         DROP TABLE mounts; DROP TABLE policies; DROP TABLE token_roles; DROP TABLE audit_devices;
         PRAGMA user_version = {};
         PRAGMA secure_delete = OFF;",
        super::schema::CURRENT_VERSION
    ))?;
    Ok(())
}
