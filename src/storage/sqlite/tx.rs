//! The transaction interface over one SQLite connection: a read snapshot or the writer's
//! transaction. Every statement is cached (`prepare_cached`).

use rusqlite::{params, Connection, OptionalExtension};

use crate::storage::error::{StorageError, StorageResult};
use crate::storage::rows::{SealedRow, StaleVersion, TokenRecord, V1Dump, VersionBlob};
use crate::storage::{list_scan, RawRow, ReadTx, Table, WriteTx};

pub struct SqliteTx<'c> {
    conn: &'c Connection,
}

impl<'c> SqliteTx<'c> {
    pub fn new(conn: &'c Connection) -> Self {
        Self { conn }
    }
}

fn sealed_row(key_id: i64, blob: Vec<u8>) -> rusqlite::Result<SealedRow> {
    let key_id =
        u32::try_from(key_id).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, key_id))?;
    Ok(SealedRow { key_id, blob })
}

fn token_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        hash: r.get(0)?,
        accessor: r.get(1)?,
        parent: r.get(2)?,
        sealed: sealed_row(r.get(3)?, r.get(4)?)?,
    })
}

const TOKEN_COLS: &str = "hash, accessor, parent, key_id, sealed";

/// A fact's value as bytes, whatever type it was stored as (see `get_fact`).
fn fact_bytes(v: rusqlite::types::Value) -> Vec<u8> {
    use rusqlite::types::Value;
    match v {
        Value::Blob(b) => b,
        Value::Text(t) => t.into_bytes(),
        Value::Integer(i) => i.to_string().into_bytes(),
        Value::Real(f) => f.to_string().into_bytes(),
        Value::Null => Vec::new(),
    }
}

fn export_row(table: Table, r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(match table {
        Table::Facts => RawRow::Fact {
            key: r.get(0)?,
            value: fact_bytes(r.get(1)?),
        },
        Table::Secrets => RawRow::Secret {
            mount_id: r.get(0)?,
            path: r.get(1)?,
            row: sealed_row(r.get(2)?, r.get(3)?)?,
        },
        Table::Versions => {
            let version: i64 = r.get(2)?;
            RawRow::Version {
                mount_id: r.get(0)?,
                path: r.get(1)?,
                version: u64::try_from(version)
                    .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(2, version))?,
                blob: VersionBlob {
                    key_id: sealed_row(r.get(3)?, Vec::new())?.key_id,
                    nonce: r.get(4)?,
                    ciphertext: r.get(5)?,
                },
            }
        }
        Table::Tokens => RawRow::Token(token_from_row(r)?),
        Table::Cubbyhole => RawRow::Cubby {
            token: r.get(0)?,
            path: r.get(1)?,
            row: sealed_row(r.get(2)?, r.get(3)?)?,
        },
    })
}

fn version_i64(v: u64) -> StorageResult<i64> {
    i64::try_from(v).map_err(|_| StorageError::Other(format!("version {v} out of range")))
}

impl ReadTx for SqliteTx<'_> {
    /// A value of another type than the blob kvseal writes (SQLite keeps whatever it is given) comes
    /// back as its bytes: it then fails authentication where it is opened, like any other edit,
    /// instead of failing here for everything that reads facts (start-up included).
    fn get_fact(&self, key: &str) -> StorageResult<Option<Vec<u8>>> {
        use rusqlite::types::Value;
        let value: Option<Value> = self
            .conn
            .prepare_cached("SELECT value FROM kvseal_meta WHERE key = ?1")?
            .query_row([key], |r| r.get(0))
            .optional()?;
        Ok(value.map(fact_bytes))
    }

    fn get_secret(&self, mount_id: i64, path: &str) -> StorageResult<Option<SealedRow>> {
        Ok(self
            .conn
            .prepare_cached("SELECT key_id, sealed FROM secrets WHERE mount_id = ?1 AND path = ?2")?
            .query_row(params![mount_id, path], |r| {
                sealed_row(r.get(0)?, r.get(1)?)
            })
            .optional()?)
    }

    fn get_fact_and_secret(
        &self,
        key: &str,
        mount_id: i64,
        path: &str,
    ) -> StorageResult<(Option<Vec<u8>>, Option<SealedRow>)> {
        Ok((self.get_fact(key)?, self.get_secret(mount_id, path)?))
    }

    fn get_secret_and_latest(
        &self,
        mount_id: i64,
        path: &str,
    ) -> StorageResult<Option<(SealedRow, Option<(u64, VersionBlob)>)>> {
        let Some(row) = self.get_secret(mount_id, path)? else {
            return Ok(None);
        };
        let latest = self
            .conn
            .prepare_cached(
                "SELECT version, key_id, nonce, ciphertext FROM versions
                 WHERE mount_id = ?1 AND path = ?2 ORDER BY version DESC LIMIT 1",
            )?
            .query_row(params![mount_id, path], |r| {
                Ok((
                    r.get::<_, i64>(0)? as u64,
                    VersionBlob {
                        key_id: sealed_row(r.get(1)?, Vec::new())?.key_id,
                        nonce: r.get(2)?,
                        ciphertext: r.get(3)?,
                    },
                ))
            })
            .optional()?;
        Ok(Some((row, latest)))
    }

    fn secrets_after(
        &self,
        mount_id: i64,
        after: &str,
        limit: usize,
    ) -> StorageResult<Vec<(String, SealedRow)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT path, key_id, sealed FROM secrets WHERE mount_id = ?1 AND path > ?2
             ORDER BY path LIMIT ?3",
        )?;
        let rows = stmt.query_map(params![mount_id, after, limit as i64], |r| {
            Ok((r.get(0)?, sealed_row(r.get(1)?, r.get(2)?)?))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn list_children(
        &self,
        mount_id: i64,
        folder: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> StorageResult<Vec<(String, String, SealedRow)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT path, key_id, sealed FROM secrets WHERE mount_id = ?1 AND path > ?2 AND path < ?3
             ORDER BY path LIMIT ?4",
        )?;
        list_scan::list_children(folder, after, limit, |cursor, end, batch| {
            let rows = stmt.query_map(params![mount_id, cursor, end, batch as i64], |r| {
                Ok((r.get(0)?, sealed_row(r.get(1)?, r.get(2)?)?))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn get_version(
        &self,
        mount_id: i64,
        path: &str,
        version: u64,
    ) -> StorageResult<Option<VersionBlob>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT key_id, nonce, ciphertext FROM versions
                 WHERE mount_id = ?1 AND path = ?2 AND version = ?3",
            )?
            .query_row(params![mount_id, path, version_i64(version)?], |r| {
                let s = sealed_row(r.get(0)?, Vec::new())?;
                Ok(VersionBlob {
                    key_id: s.key_id,
                    nonce: r.get(1)?,
                    ciphertext: r.get(2)?,
                })
            })
            .optional()?)
    }

    fn stale_versions(&self, active: u32, limit: usize) -> StorageResult<Vec<StaleVersion>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT mount_id, path, version, key_id, nonce, ciphertext FROM versions
             WHERE key_id != ?1 LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![active, limit as i64], |r| {
            Ok(StaleVersion {
                mount_id: r.get(0)?,
                path: r.get(1)?,
                version: r.get::<_, i64>(2)? as u64,
                blob: VersionBlob {
                    key_id: sealed_row(r.get(3)?, Vec::new())?.key_id,
                    nonce: r.get(4)?,
                    ciphertext: r.get(5)?,
                },
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn stale_secrets(
        &self,
        active: u32,
        limit: usize,
    ) -> StorageResult<Vec<(i64, String, SealedRow)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT mount_id, path, key_id, sealed FROM secrets WHERE key_id != ?1 LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![active, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, sealed_row(r.get(2)?, r.get(3)?)?))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn stale_tokens(&self, active: u32, limit: usize) -> StorageResult<Vec<TokenRecord>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {TOKEN_COLS} FROM tokens WHERE key_id != ?1 LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![active, limit as i64], token_from_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn stale_cubby(
        &self,
        active: u32,
        limit: usize,
    ) -> StorageResult<Vec<(Vec<u8>, String, SealedRow)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT token, path, key_id, sealed FROM cubbyhole WHERE key_id != ?1 LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![active, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, sealed_row(r.get(2)?, r.get(3)?)?))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn count_stale(&self, active: u32) -> StorageResult<u64> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT (SELECT count(*) FROM versions WHERE key_id != ?1)
                      + (SELECT count(*) FROM secrets WHERE key_id != ?1)
                      + (SELECT count(*) FROM tokens WHERE key_id != ?1)
                      + (SELECT count(*) FROM cubbyhole WHERE key_id != ?1)",
            )?
            .query_row([active], |r| r.get::<_, i64>(0))? as u64)
    }

    fn get_cubby(&self, token: &[u8], path: &str) -> StorageResult<Option<SealedRow>> {
        Ok(self
            .conn
            .prepare_cached("SELECT key_id, sealed FROM cubbyhole WHERE token = ?1 AND path = ?2")?
            .query_row(params![token, path], |r| sealed_row(r.get(0)?, r.get(1)?))
            .optional()?)
    }

    fn cubby_children(
        &self,
        token: &[u8],
        folder: &str,
    ) -> StorageResult<Vec<(String, String, SealedRow)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT path, key_id, sealed FROM cubbyhole WHERE token = ?1 AND path > ?2 AND path < ?3
             ORDER BY path LIMIT ?4",
        )?;
        list_scan::list_children(folder, None, None, |cursor, end, batch| {
            let rows = stmt.query_map(params![token, cursor, end, batch as i64], |r| {
                Ok((r.get(0)?, sealed_row(r.get(1)?, r.get(2)?)?))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn cubby_owners(&self, after: Option<&[u8]>, limit: usize) -> StorageResult<Vec<Vec<u8>>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT token FROM cubbyhole WHERE token > ?1 ORDER BY token LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after.unwrap_or_default(), limit as i64], |r| {
            r.get(0)
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn get_token(&self, hash: &[u8]) -> StorageResult<Option<TokenRecord>> {
        Ok(self
            .conn
            .prepare_cached(&format!("SELECT {TOKEN_COLS} FROM tokens WHERE hash = ?1"))?
            .query_row([hash], token_from_row)
            .optional()?)
    }

    fn get_token_by_accessor(&self, accessor: &[u8]) -> StorageResult<Option<TokenRecord>> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {TOKEN_COLS} FROM tokens WHERE accessor = ?1"
            ))?
            .query_row([accessor], token_from_row)
            .optional()?)
    }

    fn all_tokens(&self) -> StorageResult<Vec<TokenRecord>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {TOKEN_COLS} FROM tokens"))?;
        let rows = stmt.query_map([], token_from_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn token_children(&self, hash: &[u8]) -> StorageResult<Vec<TokenRecord>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {TOKEN_COLS} FROM tokens WHERE parent = ?1"
        ))?;
        let rows = stmt.query_map([hash], token_from_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn export_rows(
        &self,
        table: Table,
        after: Option<&RawRow>,
        limit: usize,
    ) -> StorageResult<Vec<RawRow>> {
        use rusqlite::types::Value;
        let limit = limit as i64;
        let (sql, args): (&str, Vec<Value>) = match (table, after) {
            (Table::Facts, None) => ("SELECT key, value FROM kvseal_meta ORDER BY key LIMIT ?1", vec![]),
            (Table::Facts, Some(RawRow::Fact { key, .. })) => (
                "SELECT key, value FROM kvseal_meta WHERE key > ?2 ORDER BY key LIMIT ?1",
                vec![key.clone().into()],
            ),
            (Table::Secrets, None) => (
                "SELECT mount_id, path, key_id, sealed FROM secrets ORDER BY mount_id, path LIMIT ?1",
                vec![],
            ),
            (Table::Secrets, Some(RawRow::Secret { mount_id, path, .. })) => (
                "SELECT mount_id, path, key_id, sealed FROM secrets
                 WHERE (mount_id, path) > (?2, ?3) ORDER BY mount_id, path LIMIT ?1",
                vec![(*mount_id).into(), path.clone().into()],
            ),
            (Table::Versions, None) => (
                "SELECT mount_id, path, version, key_id, nonce, ciphertext FROM versions
                 ORDER BY mount_id, path, version LIMIT ?1",
                vec![],
            ),
            (
                Table::Versions,
                Some(RawRow::Version {
                    mount_id,
                    path,
                    version,
                    ..
                }),
            ) => (
                "SELECT mount_id, path, version, key_id, nonce, ciphertext FROM versions
                 WHERE (mount_id, path, version) > (?2, ?3, ?4)
                 ORDER BY mount_id, path, version LIMIT ?1",
                vec![
                    (*mount_id).into(),
                    path.clone().into(),
                    version_i64(*version)?.into(),
                ],
            ),
            (Table::Tokens, None) => (
                "SELECT hash, accessor, parent, key_id, sealed FROM tokens ORDER BY hash LIMIT ?1",
                vec![],
            ),
            (Table::Tokens, Some(RawRow::Token(t))) => (
                "SELECT hash, accessor, parent, key_id, sealed FROM tokens WHERE hash > ?2
                 ORDER BY hash LIMIT ?1",
                vec![t.hash.clone().into()],
            ),
            (Table::Cubbyhole, None) => (
                "SELECT token, path, key_id, sealed FROM cubbyhole ORDER BY token, path LIMIT ?1",
                vec![],
            ),
            (Table::Cubbyhole, Some(RawRow::Cubby { token, path, .. })) => (
                "SELECT token, path, key_id, sealed FROM cubbyhole
                 WHERE (token, path) > (?2, ?3) ORDER BY token, path LIMIT ?1",
                vec![token.clone().into(), path.clone().into()],
            ),
            (table, Some(_)) => {
                return Err(StorageError::Other(format!(
                    "a page of {} must follow a row of that table",
                    table.name()
                )))
            }
        };
        let mut stmt = self.conn.prepare_cached(sql)?;
        let params = std::iter::once(Value::from(limit)).chain(args);
        let rows = stmt.query_map(rusqlite::params_from_iter(params), |r| export_row(table, r))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn count_rows(&self, table: Table) -> StorageResult<u64> {
        let sql = match table {
            Table::Facts => "SELECT count(*) FROM kvseal_meta",
            Table::Secrets => "SELECT count(*) FROM secrets",
            Table::Versions => "SELECT count(*) FROM versions",
            Table::Tokens => "SELECT count(*) FROM tokens",
            Table::Cubbyhole => "SELECT count(*) FROM cubbyhole",
        };
        Ok(self
            .conn
            .prepare_cached(sql)?
            .query_row([], |r| r.get::<_, i64>(0))? as u64)
    }
}

/// `Conflict` unless exactly one row changed.
fn one_row(changed: usize) -> StorageResult<()> {
    if changed == 1 {
        Ok(())
    } else {
        Err(StorageError::Conflict)
    }
}

impl WriteTx for SqliteTx<'_> {
    fn put_fact(&self, key: &str, value: &[u8]) -> StorageResult<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO kvseal_meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![key, value])?;
        Ok(())
    }

    fn replace_fact(&self, key: &str, expect: Option<&[u8]>, value: &[u8]) -> StorageResult<()> {
        let changed = match expect {
            None => self
                .conn
                .prepare_cached(
                    "INSERT INTO kvseal_meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO NOTHING",
                )?
                .execute(params![key, value])?,
            Some(old) => self
                .conn
                .prepare_cached("UPDATE kvseal_meta SET value = ?3 WHERE key = ?1 AND value = ?2")?
                .execute(params![key, old, value])?,
        };
        one_row(changed)
    }

    fn put_secret(
        &self,
        mount_id: i64,
        path: &str,
        expect: Option<&SealedRow>,
        new: &SealedRow,
    ) -> StorageResult<()> {
        let changed = match expect {
            None => self
                .conn
                .prepare_cached(
                    "INSERT INTO secrets (mount_id, path, key_id, sealed) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(mount_id, path) DO NOTHING",
                )?
                .execute(params![mount_id, path, new.key_id, new.blob])?,
            Some(old) => self
                .conn
                .prepare_cached(
                    "UPDATE secrets SET key_id = ?3, sealed = ?4
                     WHERE mount_id = ?1 AND path = ?2 AND key_id = ?5 AND sealed = ?6",
                )?
                .execute(params![
                    mount_id, path, new.key_id, new.blob, old.key_id, old.blob
                ])?,
        };
        one_row(changed)
    }

    fn delete_secret(&self, mount_id: i64, path: &str) -> StorageResult<()> {
        self.conn
            .prepare_cached("DELETE FROM versions WHERE mount_id = ?1 AND path = ?2")?
            .execute(params![mount_id, path])?;
        self.conn
            .prepare_cached("DELETE FROM secrets WHERE mount_id = ?1 AND path = ?2")?
            .execute(params![mount_id, path])?;
        Ok(())
    }

    fn delete_mount_data(&self, mount_id: i64) -> StorageResult<()> {
        self.conn
            .prepare_cached("DELETE FROM versions WHERE mount_id = ?1")?
            .execute([mount_id])?;
        self.conn
            .prepare_cached("DELETE FROM secrets WHERE mount_id = ?1")?
            .execute([mount_id])?;
        Ok(())
    }

    fn insert_version(
        &self,
        mount_id: i64,
        path: &str,
        version: u64,
        blob: &VersionBlob,
    ) -> StorageResult<()> {
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO versions (mount_id, path, version, key_id, nonce, ciphertext)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                mount_id,
                path,
                version_i64(version)?,
                blob.key_id,
                blob.nonce,
                blob.ciphertext
            ])?;
        Ok(())
    }

    fn delete_version(&self, mount_id: i64, path: &str, version: u64) -> StorageResult<()> {
        self.conn
            .prepare_cached(
                "DELETE FROM versions WHERE mount_id = ?1 AND path = ?2 AND version = ?3",
            )?
            .execute(params![mount_id, path, version_i64(version)?])?;
        Ok(())
    }

    fn delete_versions_upto(&self, mount_id: i64, path: &str, upto: u64) -> StorageResult<()> {
        self.conn
            .prepare_cached(
                "DELETE FROM versions WHERE mount_id = ?1 AND path = ?2 AND version <= ?3",
            )?
            .execute(params![mount_id, path, version_i64(upto)?])?;
        Ok(())
    }

    fn replace_version_blob(
        &self,
        mount_id: i64,
        path: &str,
        version: u64,
        old_nonce: &[u8],
        blob: &VersionBlob,
    ) -> StorageResult<()> {
        self.conn
            .prepare_cached(
                "UPDATE versions SET key_id = ?4, nonce = ?5, ciphertext = ?6
                 WHERE mount_id = ?1 AND path = ?2 AND version = ?3 AND nonce = ?7",
            )?
            .execute(params![
                mount_id,
                path,
                version_i64(version)?,
                blob.key_id,
                blob.nonce,
                blob.ciphertext,
                old_nonce
            ])?;
        Ok(())
    }

    fn insert_token(&self, t: &TokenRecord) -> StorageResult<()> {
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO tokens ({TOKEN_COLS}) VALUES (?1, ?2, ?3, ?4, ?5)"
            ))?
            .execute(params![
                t.hash,
                t.accessor,
                t.parent,
                t.sealed.key_id,
                t.sealed.blob
            ])?;
        Ok(())
    }

    fn replace_token(&self, old: &TokenRecord, new: &TokenRecord) -> StorageResult<()> {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE tokens SET accessor = ?2, parent = ?3, key_id = ?4, sealed = ?5
                 WHERE hash = ?1 AND key_id = ?6 AND sealed = ?7",
            )?
            .execute(params![
                new.hash,
                new.accessor,
                new.parent,
                new.sealed.key_id,
                new.sealed.blob,
                old.sealed.key_id,
                old.sealed.blob
            ])?;
        if old.hash != new.hash {
            return Err(StorageError::Other("a token's hash cannot change".into()));
        }
        one_row(changed)
    }

    fn delete_token_tree(&self, hash: &[u8]) -> StorageResult<usize> {
        // The cubbyholes first, while the tree can still be walked.
        self.conn
            .prepare_cached(
                "WITH RECURSIVE sub(h) AS (
                     SELECT hash FROM tokens WHERE hash = ?1
                     UNION SELECT t.hash FROM tokens t JOIN sub ON t.parent = sub.h
                 )
                 DELETE FROM cubbyhole WHERE token IN (SELECT h FROM sub)",
            )?
            .execute([hash])?;
        Ok(self
            .conn
            .prepare_cached(
                "WITH RECURSIVE sub(h) AS (
                     SELECT hash FROM tokens WHERE hash = ?1
                     UNION SELECT t.hash FROM tokens t JOIN sub ON t.parent = sub.h
                 )
                 DELETE FROM tokens WHERE hash IN (SELECT h FROM sub)",
            )?
            .execute([hash])?)
    }

    fn delete_token(&self, hash: &[u8]) -> StorageResult<usize> {
        self.delete_cubbyhole(hash)?;
        Ok(self
            .conn
            .prepare_cached("DELETE FROM tokens WHERE hash = ?1")?
            .execute([hash])?)
    }

    fn put_cubby(&self, token: &[u8], path: &str, row: &SealedRow) -> StorageResult<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO cubbyhole (token, path, key_id, sealed) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(token, path) DO UPDATE SET key_id = excluded.key_id,
                 sealed = excluded.sealed",
            )?
            .execute(params![token, path, row.key_id, row.blob])?;
        Ok(())
    }

    fn replace_cubby(
        &self,
        token: &[u8],
        path: &str,
        old: &SealedRow,
        new: &SealedRow,
    ) -> StorageResult<()> {
        let changed = self
            .conn
            .prepare_cached(
                "UPDATE cubbyhole SET key_id = ?3, sealed = ?4
                 WHERE token = ?1 AND path = ?2 AND key_id = ?5 AND sealed = ?6",
            )?
            .execute(params![
                token, path, new.key_id, new.blob, old.key_id, old.blob
            ])?;
        one_row(changed)
    }

    fn delete_cubby(&self, token: &[u8], path: &str) -> StorageResult<usize> {
        Ok(self
            .conn
            .prepare_cached("DELETE FROM cubbyhole WHERE token = ?1 AND path = ?2")?
            .execute(params![token, path])?)
    }

    fn delete_cubbyhole(&self, token: &[u8]) -> StorageResult<usize> {
        Ok(self
            .conn
            .prepare_cached("DELETE FROM cubbyhole WHERE token = ?1")?
            .execute([token])?)
    }

    fn take_v1(&self) -> StorageResult<Option<V1Dump>> {
        super::v1::take(self.conn)
    }

    fn finish_v1(&self) -> StorageResult<()> {
        super::v1::finish(self.conn)
    }

    fn import_row(&self, row: &RawRow) -> StorageResult<()> {
        match row {
            RawRow::Fact { key, value } => {
                self.conn
                    .prepare_cached("INSERT INTO kvseal_meta (key, value) VALUES (?1, ?2)")?
                    .execute(params![key, value])?;
            }
            RawRow::Secret {
                mount_id,
                path,
                row,
            } => {
                self.conn
                    .prepare_cached(
                        "INSERT INTO secrets (mount_id, path, key_id, sealed) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![mount_id, path, row.key_id, row.blob])?;
            }
            RawRow::Version {
                mount_id,
                path,
                version,
                blob,
            } => {
                self.conn
                    .prepare_cached(
                        "INSERT INTO versions (mount_id, path, version, key_id, nonce, ciphertext)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?
                    .execute(params![
                        mount_id,
                        path,
                        version_i64(*version)?,
                        blob.key_id,
                        blob.nonce,
                        blob.ciphertext
                    ])?;
            }
            RawRow::Token(t) => self.insert_token(t)?,
            RawRow::Cubby { token, path, row } => {
                self.conn
                    .prepare_cached(
                        "INSERT INTO cubbyhole (token, path, key_id, sealed) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![token, path, row.key_id, row.blob])?;
            }
        }
        Ok(())
    }

    fn delete_all(&self) -> StorageResult<()> {
        self.conn.execute_batch(
            "DELETE FROM versions; DELETE FROM secrets; DELETE FROM tokens; DELETE FROM cubbyhole;
             DELETE FROM kvseal_meta;",
        )?;
        Ok(())
    }
}
