//! The transaction interface over one PostgreSQL connection.
//!
//! A transaction's `BEGIN` is sent with its first statement (pipelined: one round trip), and a read
//! transaction's end (`ROLLBACK`: it changed nothing) is queued without waiting, ahead of whatever
//! the connection does next. Writes run in READ COMMITTED: every decision that depends on a row
//! (check-and-set, token uses, create-only, the mount table) is a conditional write that reports
//! `Conflict` when it lost, and the store reruns the whole transaction (see `PgStore::write`).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;

use futures_util::FutureExt;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::conn::PgConn;
use crate::storage::error::{StorageError, StorageResult};
use crate::storage::rows::{SealedRow, StaleVersion, TokenRecord, V1Dump, VersionBlob};
use crate::storage::{list_scan, RawRow, ReadTx, Table, WriteTx};

pub const BEGIN_READ: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";
pub const BEGIN_WRITE: &str = "BEGIN";

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];
/// A statement's parameters owned by the statement's future (see `PgTx::defer`).
type Owned = Vec<Box<dyn ToSql + Sync + Send>>;
/// A statement sent whose answer is read later.
type Pending<'c> = Pin<Box<dyn Future<Output = Result<u64, tokio_postgres::Error>> + 'c>>;

pub struct PgTx<'c> {
    conn: &'c PgConn,
    /// `None`: one statement on its own, no transaction (see `PgStore::read_one`).
    begin: Option<&'static str>,
    begun: Cell<bool>,
    /// A conditional write lost, or the database reported a serialization failure or deadlock.
    conflict: Cell<bool>,
    /// The connection failed in a way that leaves its state unknown.
    broken: Cell<bool>,
    /// A fact or a token changed: other nodes must reload (see `PgStore`'s generation).
    changed_shared: Cell<bool>,
    /// The one statement of a read without a transaction has run.
    single: Cell<bool>,
    /// Writes sent but not yet answered (see `defer`).
    pending: RefCell<Vec<Pending<'c>>>,
}

impl<'c> PgTx<'c> {
    pub fn new(conn: &'c PgConn, begin: Option<&'static str>) -> Self {
        Self {
            conn,
            begin,
            begun: Cell::new(false),
            conflict: Cell::new(false),
            broken: Cell::new(false),
            changed_shared: Cell::new(false),
            single: Cell::new(false),
            pending: RefCell::new(Vec::new()),
        }
    }

    pub fn conflicted(&self) -> bool {
        self.conflict.get()
    }

    pub fn broken(&self) -> bool {
        self.broken.get()
    }

    fn fail(&self, e: tokio_postgres::Error) -> StorageError {
        let mapped = super::map_err(e);
        match &mapped {
            StorageError::Conflict => self.conflict.set(true),
            StorageError::Unavailable(_) => self.broken.set(true),
            _ => {}
        }
        mapped
    }

    /// Sends the statement `sql` as `send` builds it and waits for its answer: pipelined after the
    /// transaction's BEGIN when it is the first, after the writes still pending otherwise. `read`:
    /// whether it may run alone, outside a transaction (see `PgStore::read_one`).
    fn run<T, F: std::future::Future<Output = Result<T, tokio_postgres::Error>>>(
        &self,
        sql: &'static str,
        read: bool,
        send: impl FnOnce(tokio_postgres::Statement) -> F,
    ) -> StorageResult<T> {
        if self.single.get() {
            return Err(StorageError::Other(
                "a second statement in a read without a transaction".into(),
            ));
        }
        let stmt = self.conn.statement(sql).inspect_err(|e| {
            if matches!(e, StorageError::Unavailable(_)) {
                self.broken.set(true)
            }
        })?;
        let next = send(stmt);
        let result = match self.begin {
            _ if self.begun.get() => self.after_pending(next)?,
            None if read => {
                self.begun.set(true);
                self.single.set(true);
                futures_executor::block_on(next)
            }
            None => return Err(StorageError::Other("a write outside a transaction".into())),
            Some(begin) => {
                let (b, r) = futures_executor::block_on(futures_util::future::join(
                    self.conn.client.batch_execute(begin),
                    next,
                ));
                b.map_err(|e| self.fail(e))?;
                self.begun.set(true);
                r
            }
        };
        result.map_err(|e| self.fail(e))
    }

    fn query(&self, sql: &'static str, params: Params<'_>) -> StorageResult<Vec<Row>> {
        let client = &self.conn.client;
        self.run(sql, true, |stmt| async move {
            client.query(&stmt, params).await
        })
    }

    fn opt(&self, sql: &'static str, params: Params<'_>) -> StorageResult<Option<Row>> {
        let mut rows = self.query(sql, params)?;
        if rows.len() > 1 {
            return Err(StorageError::Corrupt("a key matched several rows".into()));
        }
        Ok(rows.pop())
    }

    /// Runs a statement; returns how many rows it changed.
    fn exec(&self, sql: &'static str, params: Params<'_>) -> StorageResult<u64> {
        let client = &self.conn.client;
        self.run(sql, false, |stmt| async move {
            client.execute(&stmt, params).await
        })
    }

    /// Waits for `next`, sent after the writes still pending, and for those: one round trip for all.
    /// A pending write that failed is the error (the transaction is aborted, so `next` failed too).
    fn after_pending<T>(
        &self,
        next: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> StorageResult<Result<T, tokio_postgres::Error>> {
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        if pending.is_empty() {
            return Ok(futures_executor::block_on(next));
        }
        let (done, r) = futures_executor::block_on(futures_util::future::join(
            futures_util::future::join_all(pending),
            next,
        ));
        for d in done {
            d.map_err(|e| self.fail(e))?;
        }
        Ok(r)
    }

    /// Sends a write whose answer nobody needs at once (a version row inserted, replaced or
    /// deleted), and reads its answer with the next statement or the commit: the writes of a KV
    /// write go out together instead of one round trip each. Its outcome still decides the
    /// transaction (an error aborts it, and `commit` reports it).
    fn defer(&self, sql: &'static str, params: Owned) -> StorageResult<()> {
        if !self.begun.get() || self.begin.is_none() {
            let refs: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                .collect();
            return self.exec(sql, &refs).map(|_| ());
        }
        let stmt = self.conn.statement(sql).inspect_err(|e| {
            if matches!(e, StorageError::Unavailable(_)) {
                self.broken.set(true)
            }
        })?;
        let client = &self.conn.client;
        let mut fut: Pending<'c> = Box::pin(async move {
            let refs: Vec<&(dyn ToSql + Sync)> = params
                .iter()
                .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                .collect();
            client.execute(&stmt, &refs).await
        });
        // The first poll encodes the statement and queues it on the connection.
        let waker = futures_util::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        match fut.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(r) => r.map(|_| ()).map_err(|e| self.fail(e)),
            std::task::Poll::Pending => {
                self.pending.borrow_mut().push(fut);
                Ok(())
            }
        }
    }

    /// Ends a read transaction without waiting: `ROLLBACK` is queued on the connection, ahead of its
    /// next use (a read-only transaction has nothing to commit).
    pub fn end_read(self) {
        if self.begun.get() && self.begin.is_some() {
            let _ = self.conn.client.batch_execute("ROLLBACK").now_or_never();
        }
    }

    /// Commits a write transaction (bumping the generation in it when shared state changed).
    pub fn commit(&self) -> StorageResult<()> {
        if !self.begun.get() || self.begin.is_none() {
            return Ok(());
        }
        let client = &self.conn.client;
        let sql = if self.changed_shared.get() {
            "UPDATE kvseal_info SET value = value + 1 WHERE key = 'generation'; COMMIT"
        } else {
            "COMMIT"
        };
        // A pending write that failed aborted the transaction, and PostgreSQL answers COMMIT of an
        // aborted transaction with a rollback, not an error: its error is the outcome.
        let r = match self.after_pending(client.batch_execute(sql)) {
            Ok(r) => r,
            Err(e) => {
                self.broken.set(true);
                return Err(e);
            }
        };
        r.map_err(|e| {
            // An unanswered COMMIT may or may not have taken effect: the connection goes.
            self.broken.set(true);
            self.fail(e)
        })
    }

    pub fn rollback(&self) {
        if self.begun.get() && self.begin.is_some() && !self.broken.get() {
            if let Err(e) = futures_executor::block_on(self.conn.client.batch_execute("ROLLBACK")) {
                self.fail(e);
                self.broken.set(true);
            }
        }
    }
}

fn key_id(v: i64) -> StorageResult<u32> {
    u32::try_from(v).map_err(|_| StorageError::Corrupt(format!("key id {v} out of range")))
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(r: &'a Row, i: usize) -> StorageResult<T> {
    r.try_get(i)
        .map_err(|e| StorageError::Corrupt(format!("column {i}: {e}")))
}

fn sealed(r: &Row, k: usize, b: usize) -> StorageResult<SealedRow> {
    Ok(SealedRow {
        key_id: key_id(get(r, k)?)?,
        blob: get(r, b)?,
    })
}

fn token(r: &Row) -> StorageResult<TokenRecord> {
    Ok(TokenRecord {
        hash: get(r, 0)?,
        accessor: get(r, 1)?,
        parent: get(r, 2)?,
        sealed: sealed(r, 3, 4)?,
    })
}

fn export_row(table: Table, r: &Row) -> StorageResult<RawRow> {
    Ok(match table {
        Table::Facts => RawRow::Fact {
            key: get(r, 0)?,
            value: get(r, 1)?,
        },
        Table::Secrets => RawRow::Secret {
            mount_id: get(r, 0)?,
            path: get(r, 1)?,
            row: sealed(r, 2, 3)?,
        },
        Table::Versions => {
            let version: i64 = get(r, 2)?;
            RawRow::Version {
                mount_id: get(r, 0)?,
                path: get(r, 1)?,
                version: u64::try_from(version)
                    .map_err(|_| StorageError::Corrupt(format!("version {version}")))?,
                blob: VersionBlob {
                    key_id: key_id(get(r, 3)?)?,
                    nonce: get(r, 4)?,
                    ciphertext: get(r, 5)?,
                },
            }
        }
        Table::Tokens => RawRow::Token(token(r)?),
        Table::Cubbyhole => RawRow::Cubby {
            token: get(r, 0)?,
            path: get(r, 1)?,
            row: sealed(r, 2, 3)?,
        },
    })
}

fn version_i64(v: u64) -> StorageResult<i64> {
    i64::try_from(v).map_err(|_| StorageError::Other(format!("version {v} out of range")))
}

fn one_row(changed: u64) -> StorageResult<()> {
    if changed == 1 {
        Ok(())
    } else {
        Err(StorageError::Conflict)
    }
}

impl ReadTx for PgTx<'_> {
    fn get_fact(&self, key: &str) -> StorageResult<Option<Vec<u8>>> {
        self.opt("SELECT value FROM kvseal_meta WHERE key = $1", &[&key])?
            .map(|r| get(&r, 0))
            .transpose()
    }

    fn get_secret(&self, mount_id: i64, path: &str) -> StorageResult<Option<SealedRow>> {
        self.opt(
            "SELECT key_id, sealed FROM secrets WHERE mount_id = $1 AND path = $2",
            &[&mount_id, &path],
        )?
        .map(|r| sealed(&r, 0, 1))
        .transpose()
    }

    fn get_fact_and_secret(
        &self,
        key: &str,
        mount_id: i64,
        path: &str,
    ) -> StorageResult<(Option<Vec<u8>>, Option<SealedRow>)> {
        let rows = self.query(
            "SELECT (SELECT value FROM kvseal_meta WHERE key = $1), s.key_id, s.sealed
             FROM (SELECT 1) AS one
             LEFT JOIN secrets s ON s.mount_id = $2 AND s.path = $3",
            &[&key, &mount_id, &path],
        )?;
        let [r] = rows.as_slice() else {
            return Err(StorageError::Corrupt("a key matched several rows".into()));
        };
        let fact: Option<Vec<u8>> = get(r, 0)?;
        let secret = match get::<Option<i64>>(r, 1)? {
            None => None,
            Some(_) => Some(sealed(r, 1, 2)?),
        };
        Ok((fact, secret))
    }

    fn get_secret_and_latest(
        &self,
        mount_id: i64,
        path: &str,
    ) -> StorageResult<Option<(SealedRow, Option<(u64, VersionBlob)>)>> {
        let Some(r) = self.opt(
            "SELECT s.key_id, s.sealed, v.version, v.key_id, v.nonce, v.ciphertext
             FROM secrets s LEFT JOIN LATERAL (
                 SELECT version, key_id, nonce, ciphertext FROM versions
                 WHERE mount_id = s.mount_id AND path = s.path ORDER BY version DESC LIMIT 1
             ) v ON true
             WHERE s.mount_id = $1 AND s.path = $2",
            &[&mount_id, &path],
        )?
        else {
            return Ok(None);
        };
        let latest = match get::<Option<i64>>(&r, 2)? {
            None => None,
            Some(n) => Some((
                n as u64,
                VersionBlob {
                    key_id: key_id(get(&r, 3)?)?,
                    nonce: get(&r, 4)?,
                    ciphertext: get(&r, 5)?,
                },
            )),
        };
        Ok(Some((sealed(&r, 0, 1)?, latest)))
    }

    fn secrets_after(
        &self,
        mount_id: i64,
        after: &str,
        limit: usize,
    ) -> StorageResult<Vec<(String, SealedRow)>> {
        let limit = limit as i64;
        self.query(
            "SELECT path, key_id, sealed FROM secrets WHERE mount_id = $1 AND path > $2
             ORDER BY path LIMIT $3",
            &[&mount_id, &after, &limit],
        )?
        .iter()
        .map(|r| Ok((get(r, 0)?, sealed(r, 1, 2)?)))
        .collect()
    }

    fn list_children(
        &self,
        mount_id: i64,
        folder: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> StorageResult<Vec<(String, String, SealedRow)>> {
        list_scan::list_children(folder, after, limit, |cursor, end, batch| {
            let batch = batch as i64;
            self.query(
                "SELECT path, key_id, sealed FROM secrets
                 WHERE mount_id = $1 AND path > $2 AND path < $3 ORDER BY path LIMIT $4",
                &[&mount_id, &cursor, &end, &batch],
            )?
            .iter()
            .map(|r| Ok((get(r, 0)?, sealed(r, 1, 2)?)))
            .collect()
        })
    }

    fn get_version(
        &self,
        mount_id: i64,
        path: &str,
        version: u64,
    ) -> StorageResult<Option<VersionBlob>> {
        let version = version_i64(version)?;
        self.opt(
            "SELECT key_id, nonce, ciphertext FROM versions
             WHERE mount_id = $1 AND path = $2 AND version = $3",
            &[&mount_id, &path, &version],
        )?
        .map(|r| {
            Ok(VersionBlob {
                key_id: key_id(get(&r, 0)?)?,
                nonce: get(&r, 1)?,
                ciphertext: get(&r, 2)?,
            })
        })
        .transpose()
    }

    fn stale_versions(&self, active: u32, limit: usize) -> StorageResult<Vec<StaleVersion>> {
        let (active, limit) = (i64::from(active), limit as i64);
        self.query(
            "SELECT mount_id, path, version, key_id, nonce, ciphertext FROM versions
             WHERE key_id != $1 LIMIT $2",
            &[&active, &limit],
        )?
        .iter()
        .map(|r| {
            Ok(StaleVersion {
                mount_id: get(r, 0)?,
                path: get(r, 1)?,
                version: get::<i64>(r, 2)? as u64,
                blob: VersionBlob {
                    key_id: key_id(get(r, 3)?)?,
                    nonce: get(r, 4)?,
                    ciphertext: get(r, 5)?,
                },
            })
        })
        .collect()
    }

    fn stale_secrets(
        &self,
        active: u32,
        limit: usize,
    ) -> StorageResult<Vec<(i64, String, SealedRow)>> {
        let (active, limit) = (i64::from(active), limit as i64);
        self.query(
            "SELECT mount_id, path, key_id, sealed FROM secrets WHERE key_id != $1 LIMIT $2",
            &[&active, &limit],
        )?
        .iter()
        .map(|r| Ok((get(r, 0)?, get(r, 1)?, sealed(r, 2, 3)?)))
        .collect()
    }

    fn stale_tokens(&self, active: u32, limit: usize) -> StorageResult<Vec<TokenRecord>> {
        let (active, limit) = (i64::from(active), limit as i64);
        self.query(
            "SELECT hash, accessor, parent, key_id, sealed FROM tokens WHERE key_id != $1 LIMIT $2",
            &[&active, &limit],
        )?
        .iter()
        .map(token)
        .collect()
    }

    fn stale_cubby(
        &self,
        active: u32,
        limit: usize,
    ) -> StorageResult<Vec<(Vec<u8>, String, SealedRow)>> {
        let (active, limit) = (i64::from(active), limit as i64);
        self.query(
            "SELECT token, path, key_id, sealed FROM cubbyhole WHERE key_id != $1 LIMIT $2",
            &[&active, &limit],
        )?
        .iter()
        .map(|r| Ok((get(r, 0)?, get(r, 1)?, sealed(r, 2, 3)?)))
        .collect()
    }

    fn count_stale(&self, active: u32) -> StorageResult<u64> {
        let active = i64::from(active);
        let rows = self.query(
            "SELECT (SELECT count(*) FROM versions WHERE key_id != $1)
                  + (SELECT count(*) FROM secrets WHERE key_id != $1)
                  + (SELECT count(*) FROM tokens WHERE key_id != $1)
                  + (SELECT count(*) FROM cubbyhole WHERE key_id != $1)",
            &[&active],
        )?;
        let n: i64 = rows.first().map(|r| get(r, 0)).transpose()?.unwrap_or(0);
        Ok(n as u64)
    }

    fn get_cubby(&self, token: &[u8], path: &str) -> StorageResult<Option<SealedRow>> {
        self.opt(
            "SELECT key_id, sealed FROM cubbyhole WHERE token = $1 AND path = $2",
            &[&token, &path],
        )?
        .map(|r| sealed(&r, 0, 1))
        .transpose()
    }

    fn cubby_children(
        &self,
        token: &[u8],
        folder: &str,
    ) -> StorageResult<Vec<(String, String, SealedRow)>> {
        list_scan::list_children(folder, None, None, |cursor, end, batch| {
            let batch = batch as i64;
            self.query(
                "SELECT path, key_id, sealed FROM cubbyhole
                 WHERE token = $1 AND path > $2 AND path < $3 ORDER BY path LIMIT $4",
                &[&token, &cursor, &end, &batch],
            )?
            .iter()
            .map(|r| Ok((get(r, 0)?, sealed(r, 1, 2)?)))
            .collect()
        })
    }

    fn cubby_owners(&self, after: Option<&[u8]>, limit: usize) -> StorageResult<Vec<Vec<u8>>> {
        let (after, limit) = (after.unwrap_or_default(), limit as i64);
        self.query(
            "SELECT DISTINCT token FROM cubbyhole WHERE token > $1 ORDER BY token LIMIT $2",
            &[&after, &limit],
        )?
        .iter()
        .map(|r| get(r, 0))
        .collect()
    }

    fn get_token(&self, hash: &[u8]) -> StorageResult<Option<TokenRecord>> {
        self.opt(
            "SELECT hash, accessor, parent, key_id, sealed FROM tokens WHERE hash = $1",
            &[&hash],
        )?
        .map(|r| token(&r))
        .transpose()
    }

    fn get_token_by_accessor(&self, accessor: &[u8]) -> StorageResult<Option<TokenRecord>> {
        self.opt(
            "SELECT hash, accessor, parent, key_id, sealed FROM tokens WHERE accessor = $1",
            &[&accessor],
        )?
        .map(|r| token(&r))
        .transpose()
    }

    fn all_tokens(&self) -> StorageResult<Vec<TokenRecord>> {
        self.query(
            "SELECT hash, accessor, parent, key_id, sealed FROM tokens",
            &[],
        )?
        .iter()
        .map(token)
        .collect()
    }

    fn token_children(&self, hash: &[u8]) -> StorageResult<Vec<TokenRecord>> {
        self.query(
            "SELECT hash, accessor, parent, key_id, sealed FROM tokens WHERE parent = $1",
            &[&hash],
        )?
        .iter()
        .map(token)
        .collect()
    }

    fn export_rows(
        &self,
        table: Table,
        after: Option<&RawRow>,
        limit: usize,
    ) -> StorageResult<Vec<RawRow>> {
        let limit = limit as i64;
        let rows = match (table, after) {
            (Table::Facts, None) => self.query(
                "SELECT key, value FROM kvseal_meta ORDER BY key LIMIT $1",
                &[&limit],
            )?,
            (Table::Facts, Some(RawRow::Fact { key, .. })) => self.query(
                "SELECT key, value FROM kvseal_meta WHERE key > $2 ORDER BY key LIMIT $1",
                &[&limit, key],
            )?,
            (Table::Secrets, None) => self.query(
                "SELECT mount_id, path, key_id, sealed FROM secrets ORDER BY mount_id, path LIMIT $1",
                &[&limit],
            )?,
            (Table::Secrets, Some(RawRow::Secret { mount_id, path, .. })) => self.query(
                "SELECT mount_id, path, key_id, sealed FROM secrets
                 WHERE (mount_id, path) > ($2, $3) ORDER BY mount_id, path LIMIT $1",
                &[&limit, mount_id, path],
            )?,
            (Table::Versions, None) => self.query(
                "SELECT mount_id, path, version, key_id, nonce, ciphertext FROM versions
                 ORDER BY mount_id, path, version LIMIT $1",
                &[&limit],
            )?,
            (
                Table::Versions,
                Some(RawRow::Version {
                    mount_id,
                    path,
                    version,
                    ..
                }),
            ) => {
                let version = version_i64(*version)?;
                self.query(
                    "SELECT mount_id, path, version, key_id, nonce, ciphertext FROM versions
                     WHERE (mount_id, path, version) > ($2, $3, $4)
                     ORDER BY mount_id, path, version LIMIT $1",
                    &[&limit, mount_id, path, &version],
                )?
            }
            (Table::Tokens, None) => self.query(
                "SELECT hash, accessor, parent, key_id, sealed FROM tokens ORDER BY hash LIMIT $1",
                &[&limit],
            )?,
            (Table::Tokens, Some(RawRow::Token(t))) => self.query(
                "SELECT hash, accessor, parent, key_id, sealed FROM tokens WHERE hash > $2
                 ORDER BY hash LIMIT $1",
                &[&limit, &t.hash],
            )?,
            (Table::Cubbyhole, None) => self.query(
                "SELECT token, path, key_id, sealed FROM cubbyhole ORDER BY token, path LIMIT $1",
                &[&limit],
            )?,
            (Table::Cubbyhole, Some(RawRow::Cubby { token, path, .. })) => self.query(
                "SELECT token, path, key_id, sealed FROM cubbyhole
                 WHERE (token, path) > ($2, $3) ORDER BY token, path LIMIT $1",
                &[&limit, token, path],
            )?,
            (table, Some(_)) => {
                return Err(StorageError::Other(format!(
                    "a page of {} must follow a row of that table",
                    table.name()
                )))
            }
        };
        rows.iter().map(|r| export_row(table, r)).collect()
    }

    fn count_rows(&self, table: Table) -> StorageResult<u64> {
        let sql = match table {
            Table::Facts => "SELECT count(*) FROM kvseal_meta",
            Table::Secrets => "SELECT count(*) FROM secrets",
            Table::Versions => "SELECT count(*) FROM versions",
            Table::Tokens => "SELECT count(*) FROM tokens",
            Table::Cubbyhole => "SELECT count(*) FROM cubbyhole",
        };
        let rows = self.query(sql, &[])?;
        let n: i64 = rows.first().map(|r| get(r, 0)).transpose()?.unwrap_or(0);
        Ok(n as u64)
    }
}

impl WriteTx for PgTx<'_> {
    fn put_fact(&self, key: &str, value: &[u8]) -> StorageResult<()> {
        self.changed_shared.set(true);
        self.exec(
            "INSERT INTO kvseal_meta (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&key, &value],
        )?;
        Ok(())
    }

    fn replace_fact(&self, key: &str, expect: Option<&[u8]>, value: &[u8]) -> StorageResult<()> {
        self.changed_shared.set(true);
        let changed = match expect {
            None => self.exec(
                "INSERT INTO kvseal_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, &value],
            )?,
            Some(old) => self.exec(
                "UPDATE kvseal_meta SET value = $3 WHERE key = $1 AND value = $2",
                &[&key, &old, &value],
            )?,
        };
        one_row(changed).inspect_err(|_| self.conflict.set(true))
    }

    fn put_secret(
        &self,
        mount_id: i64,
        path: &str,
        expect: Option<&SealedRow>,
        new: &SealedRow,
    ) -> StorageResult<()> {
        let new_key = i64::from(new.key_id);
        let changed = match expect {
            None => self.exec(
                "INSERT INTO secrets (mount_id, path, key_id, sealed) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (mount_id, path) DO NOTHING",
                &[&mount_id, &path, &new_key, &new.blob],
            )?,
            Some(old) => {
                let old_key = i64::from(old.key_id);
                self.exec(
                    "UPDATE secrets SET key_id = $3, sealed = $4
                     WHERE mount_id = $1 AND path = $2 AND key_id = $5 AND sealed = $6",
                    &[&mount_id, &path, &new_key, &new.blob, &old_key, &old.blob],
                )?
            }
        };
        one_row(changed).inspect_err(|_| self.conflict.set(true))
    }

    fn delete_secret(&self, mount_id: i64, path: &str) -> StorageResult<()> {
        self.exec(
            "DELETE FROM versions WHERE mount_id = $1 AND path = $2",
            &[&mount_id, &path],
        )?;
        self.exec(
            "DELETE FROM secrets WHERE mount_id = $1 AND path = $2",
            &[&mount_id, &path],
        )?;
        Ok(())
    }

    fn delete_mount_data(&self, mount_id: i64) -> StorageResult<()> {
        self.exec("DELETE FROM versions WHERE mount_id = $1", &[&mount_id])?;
        self.exec("DELETE FROM secrets WHERE mount_id = $1", &[&mount_id])?;
        Ok(())
    }

    /// Replaces a version row left by a writer that lost its race (as SQLite's `INSERT OR REPLACE`):
    /// the key record's conditional write decides which writer's version stands.
    fn insert_version(
        &self,
        mount_id: i64,
        path: &str,
        version: u64,
        blob: &VersionBlob,
    ) -> StorageResult<()> {
        let (version, k) = (version_i64(version)?, i64::from(blob.key_id));
        self.defer(
            "INSERT INTO versions (mount_id, path, version, key_id, nonce, ciphertext)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (mount_id, path, version) DO UPDATE
             SET key_id = excluded.key_id, nonce = excluded.nonce, ciphertext = excluded.ciphertext",
            vec![
                Box::new(mount_id),
                Box::new(path.to_string()),
                Box::new(version),
                Box::new(k),
                Box::new(blob.nonce.clone()),
                Box::new(blob.ciphertext.clone()),
            ],
        )
    }

    fn delete_version(&self, mount_id: i64, path: &str, version: u64) -> StorageResult<()> {
        let version = version_i64(version)?;
        self.defer(
            "DELETE FROM versions WHERE mount_id = $1 AND path = $2 AND version = $3",
            vec![
                Box::new(mount_id),
                Box::new(path.to_string()),
                Box::new(version),
            ],
        )
    }

    fn delete_versions_upto(&self, mount_id: i64, path: &str, upto: u64) -> StorageResult<()> {
        let upto = version_i64(upto)?;
        self.defer(
            "DELETE FROM versions WHERE mount_id = $1 AND path = $2 AND version <= $3",
            vec![
                Box::new(mount_id),
                Box::new(path.to_string()),
                Box::new(upto),
            ],
        )
    }

    fn replace_version_blob(
        &self,
        mount_id: i64,
        path: &str,
        version: u64,
        old_nonce: &[u8],
        blob: &VersionBlob,
    ) -> StorageResult<()> {
        let (version, k) = (version_i64(version)?, i64::from(blob.key_id));
        self.exec(
            "UPDATE versions SET key_id = $4, nonce = $5, ciphertext = $6
             WHERE mount_id = $1 AND path = $2 AND version = $3 AND nonce = $7",
            &[
                &mount_id,
                &path,
                &version,
                &k,
                &blob.nonce,
                &blob.ciphertext,
                &old_nonce,
            ],
        )?;
        Ok(())
    }

    fn insert_token(&self, t: &TokenRecord) -> StorageResult<()> {
        self.changed_shared.set(true);
        let k = i64::from(t.sealed.key_id);
        let changed = self.exec(
            "INSERT INTO tokens (hash, accessor, parent, key_id, sealed) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT DO NOTHING",
            &[&t.hash, &t.accessor, &t.parent, &k, &t.sealed.blob],
        )?;
        one_row(changed).inspect_err(|_| self.conflict.set(true))
    }

    fn replace_token(&self, old: &TokenRecord, new: &TokenRecord) -> StorageResult<()> {
        if old.hash != new.hash {
            return Err(StorageError::Other("a token's hash cannot change".into()));
        }
        self.changed_shared.set(true);
        let (nk, ok) = (i64::from(new.sealed.key_id), i64::from(old.sealed.key_id));
        let changed = self.exec(
            "UPDATE tokens SET accessor = $2, parent = $3, key_id = $4, sealed = $5
             WHERE hash = $1 AND key_id = $6 AND sealed = $7",
            &[
                &new.hash,
                &new.accessor,
                &new.parent,
                &nk,
                &new.sealed.blob,
                &ok,
                &old.sealed.blob,
            ],
        )?;
        one_row(changed).inspect_err(|_| self.conflict.set(true))
    }

    fn delete_token_tree(&self, hash: &[u8]) -> StorageResult<usize> {
        self.changed_shared.set(true);
        // One statement: the tokens and their cubbyholes go together.
        Ok(self.exec(
            "WITH RECURSIVE sub(h) AS (
                 SELECT hash FROM tokens WHERE hash = $1
                 UNION SELECT t.hash FROM tokens t JOIN sub ON t.parent = sub.h
             ), cubby AS (
                 DELETE FROM cubbyhole WHERE token IN (SELECT h FROM sub)
             )
             DELETE FROM tokens WHERE hash IN (SELECT h FROM sub)",
            &[&hash],
        )? as usize)
    }

    fn delete_token(&self, hash: &[u8]) -> StorageResult<usize> {
        self.changed_shared.set(true);
        Ok(self.exec(
            "WITH cubby AS (DELETE FROM cubbyhole WHERE token = $1)
             DELETE FROM tokens WHERE hash = $1",
            &[&hash],
        )? as usize)
    }

    fn put_cubby(&self, token: &[u8], path: &str, row: &SealedRow) -> StorageResult<()> {
        let k = i64::from(row.key_id);
        self.exec(
            "INSERT INTO cubbyhole (token, path, key_id, sealed) VALUES ($1, $2, $3, $4)
             ON CONFLICT (token, path) DO UPDATE SET key_id = EXCLUDED.key_id,
             sealed = EXCLUDED.sealed",
            &[&token, &path, &k, &row.blob],
        )?;
        Ok(())
    }

    fn replace_cubby(
        &self,
        token: &[u8],
        path: &str,
        old: &SealedRow,
        new: &SealedRow,
    ) -> StorageResult<()> {
        let (nk, ok) = (i64::from(new.key_id), i64::from(old.key_id));
        let changed = self.exec(
            "UPDATE cubbyhole SET key_id = $3, sealed = $4
             WHERE token = $1 AND path = $2 AND key_id = $5 AND sealed = $6",
            &[&token, &path, &nk, &new.blob, &ok, &old.blob],
        )?;
        one_row(changed).inspect_err(|_| self.conflict.set(true))
    }

    fn delete_cubby(&self, token: &[u8], path: &str) -> StorageResult<usize> {
        Ok(self.exec(
            "DELETE FROM cubbyhole WHERE token = $1 AND path = $2",
            &[&token, &path],
        )? as usize)
    }

    fn delete_cubbyhole(&self, token: &[u8]) -> StorageResult<usize> {
        Ok(self.exec("DELETE FROM cubbyhole WHERE token = $1", &[&token])? as usize)
    }

    /// PostgreSQL stores begin at schema 2: there is nothing to migrate.
    fn take_v1(&self) -> StorageResult<Option<V1Dump>> {
        Ok(None)
    }

    fn finish_v1(&self) -> StorageResult<()> {
        Ok(())
    }

    /// A plain insert: a key already taken is a unique violation, `Conflict`. A fact or a token
    /// moves the generation, as any write of them does.
    fn import_row(&self, row: &RawRow) -> StorageResult<()> {
        match row {
            RawRow::Fact { key, value } => {
                self.changed_shared.set(true);
                self.exec(
                    "INSERT INTO kvseal_meta (key, value) VALUES ($1, $2)",
                    &[key, value],
                )?;
            }
            RawRow::Secret {
                mount_id,
                path,
                row,
            } => {
                let k = i64::from(row.key_id);
                self.exec(
                    "INSERT INTO secrets (mount_id, path, key_id, sealed) VALUES ($1, $2, $3, $4)",
                    &[mount_id, path, &k, &row.blob],
                )?;
            }
            RawRow::Version {
                mount_id,
                path,
                version,
                blob,
            } => {
                let (version, k) = (version_i64(*version)?, i64::from(blob.key_id));
                self.exec(
                    "INSERT INTO versions (mount_id, path, version, key_id, nonce, ciphertext)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[mount_id, path, &version, &k, &blob.nonce, &blob.ciphertext],
                )?;
            }
            RawRow::Token(t) => self.insert_token(t)?,
            RawRow::Cubby { token, path, row } => {
                let k = i64::from(row.key_id);
                self.exec(
                    "INSERT INTO cubbyhole (token, path, key_id, sealed) VALUES ($1, $2, $3, $4)",
                    &[token, path, &k, &row.blob],
                )?;
            }
        }
        Ok(())
    }

    fn delete_all(&self) -> StorageResult<()> {
        self.changed_shared.set(true);
        for sql in [
            "DELETE FROM versions",
            "DELETE FROM secrets",
            "DELETE FROM tokens",
            "DELETE FROM cubbyhole",
            "DELETE FROM kvseal_meta",
        ] {
            self.exec(sql, &[])?;
        }
        Ok(())
    }
}
