//! The PostgreSQL backend: several kvseal nodes, all active, on one database.
//!
//! Every node reads and writes the database itself; there is no leader and no forwarding. What makes
//! that exact is the storage interface's conditional writes (a lost check-and-set, use count or
//! create-only is a `Conflict`, and the transaction runs again on fresh rows) and PostgreSQL's own
//! commit: an acknowledged write has committed, durable as the database is configured
//! (`synchronous_commit`).
//!
//! What nodes keep in memory (mount table, policies, audit devices, keyring, token entries) must
//! follow what other nodes commit. Every transaction that changes a fact or a token bumps
//! `kvseal_info.generation`, and each node polls that one row (see `Engine::follow_store`). Polling
//! was chosen over LISTEN/NOTIFY: it works through PgBouncer's transaction pooling (LISTEN does not),
//! needs no long-lived connection of its own, and its cost is one indexed read per node every 200 ms;
//! it also tells the node, with no other probe, whether the database answers (`sys/health`).

mod conn;
mod tx;

use std::sync::Arc;

use conn::{Pool, Settings};
use tx::{PgTx, BEGIN_READ, BEGIN_WRITE};

use super::error::{StorageError, StorageResult};
use super::{ReadTx, WriteTx};

const SCHEMA: &str = include_str!("schema.sql");
/// The schema version this build writes (the same numbering as SQLite's `user_version`). Version 3
/// is version 2 plus the `cubbyhole` table, which `schema.sql` creates on a version-2 database.
pub const CURRENT_VERSION: i64 = 3;
/// Any number: the key of the advisory lock that serialises schema creation between nodes.
const SCHEMA_LOCK: i64 = 0x6b76_7365_616c;
/// A transaction that lost a conditional write runs again at most this many times.
const MAX_ATTEMPTS: usize = 20;

/// Maps a database error to storage terms.
pub(super) fn map_err(e: tokio_postgres::Error) -> StorageError {
    use tokio_postgres::error::SqlState;
    let Some(code) = e.code() else {
        // No SQL state: the connection failed (refused, closed, timed out).
        return StorageError::Unavailable(e.to_string());
    };
    let c = code.code();
    if *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::UNIQUE_VIOLATION
    {
        StorageError::Conflict
    } else if c.starts_with("08")
        || c.starts_with("53")
        || c.starts_with("57")
        || c.starts_with("58")
        || *code == SqlState::LOCK_NOT_AVAILABLE
        || *code == SqlState::READ_ONLY_SQL_TRANSACTION
    {
        // Connection exceptions, insufficient resources, operator intervention (shutdown, statement
        // timeout), system errors, a lock not granted in time, a standby after a failover.
        StorageError::Unavailable(format!("{c}: {}", db_message(&e)))
    } else {
        StorageError::Other(format!("{c}: {}", db_message(&e)))
    }
}

/// The server's message only: never the statement's parameters.
fn db_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

/// Connections shared by one-statement reads (see `PgStore::read_one`).
const SHARED_READERS: usize = 2;

pub struct PgStore {
    pool: Arc<Pool>,
    /// Connections that one-statement reads share: statements outside a transaction can be sent by
    /// many threads at once on one connection, which tokio-postgres pipelines (the database reads
    /// several per wake-up). Each is taken from the pool for good and replaced when it breaks.
    shared: Vec<std::sync::Mutex<Option<Arc<conn::PgConn>>>>,
    next_shared: std::sync::atomic::AtomicUsize,
    /// Drives the connections' I/O (two threads) and runs write transactions on its blocking pool.
    rt: Arc<tokio::runtime::Runtime>,
}

impl PgStore {
    /// Connects to `url` and creates or checks the schema. The database must be reachable now: a
    /// node does not start on a database it cannot see (it would not know whether it is initialised).
    pub fn open(url: &str, max_connections: usize) -> StorageResult<Self> {
        let settings = Settings::parse(url)
            .map_err(|e| StorageError::Other(format!("storage.connection_url: {e}")))?;
        let rt = Arc::new(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("kvseal-pg")
                .enable_all()
                .build()
                .map_err(|e| StorageError::Other(format!("database runtime: {e}")))?,
        );
        let store = Self {
            pool: Arc::new(Pool::new(settings, Arc::clone(&rt), max_connections)),
            // A small pool keeps every connection for transactions: shared readers would hold
            // half of it for good.
            shared: (0..if max_connections >= 4 * SHARED_READERS {
                SHARED_READERS
            } else {
                0
            })
                .map(|_| std::sync::Mutex::new(None))
                .collect(),
            next_shared: std::sync::atomic::AtomicUsize::new(0),
            rt,
        };
        // A node does not start on a database it cannot reach: say which and why (the URL without
        // its password).
        store
            .migrate()
            .map_err(|e| match (e, store.pool.last_error()) {
                (StorageError::Unavailable(_), Some(cause)) => StorageError::Other(format!(
                    "cannot connect to the database {}: {cause}",
                    store.describe()
                )),
                (e, _) => e,
            })?;
        Ok(store)
    }

    /// The connection URL without its password.
    pub fn describe(&self) -> String {
        self.pool.shown().to_string()
    }

    fn migrate(&self) -> StorageResult<()> {
        let conn = self.pool.get()?;
        let result = (|| {
            let c = &conn.client;
            futures_executor::block_on(c.batch_execute(&format!(
                "BEGIN; SELECT pg_advisory_xact_lock({SCHEMA_LOCK}); {SCHEMA}"
            )))
            .map_err(map_err)?;
            let row = futures_executor::block_on(
                c.query_opt("SELECT value FROM kvseal_info WHERE key = 'schema'", &[]),
            )
            .map_err(map_err)?;
            match row.map(|r| r.try_get::<_, i64>(0)) {
                None => {
                    futures_executor::block_on(c.execute(
                        "INSERT INTO kvseal_info (key, value) VALUES ('schema', $1)",
                        &[&CURRENT_VERSION],
                    ))
                    .map_err(map_err)?;
                }
                Some(Ok(v)) if v == CURRENT_VERSION => {}
                // The schema above has just added the cubbyhole table, all version 3 adds.
                Some(Ok(2)) => {
                    futures_executor::block_on(c.execute(
                        "UPDATE kvseal_info SET value = $1 WHERE key = 'schema'",
                        &[&CURRENT_VERSION],
                    ))
                    .map_err(map_err)?;
                }
                Some(Ok(v)) => {
                    return Err(StorageError::Other(format!(
                        "the database has schema version {v}; this kvseal knows {CURRENT_VERSION}"
                    )))
                }
                Some(Err(e)) => return Err(StorageError::Corrupt(format!("schema version: {e}"))),
            }
            futures_executor::block_on(c.batch_execute("COMMIT")).map_err(map_err)
        })();
        let ok = result.is_ok();
        if !ok {
            let _ = futures_executor::block_on(conn.client.batch_execute("ROLLBACK"));
        }
        self.pool.put(conn, ok);
        result
    }

    /// The change generation (see the module comment). An error means the database does not answer.
    pub fn generation(&self) -> StorageResult<i64> {
        let conn = self.pool.get()?;
        let r = futures_executor::block_on(conn.client.query_one(
            "SELECT value FROM kvseal_info WHERE key = 'generation'",
            &[],
        ));
        match r {
            Ok(row) => {
                self.pool.put(conn, true);
                row.try_get(0)
                    .map_err(|e| StorageError::Corrupt(format!("generation: {e}")))
            }
            Err(e) => {
                let e = match map_err(e) {
                    StorageError::Unavailable(m) => {
                        StorageError::Unavailable(format!("{}: {m}", self.describe()))
                    }
                    other => other,
                };
                self.pool.put(conn, false);
                if matches!(e, StorageError::Unavailable(_)) {
                    self.pool.clear_idle();
                }
                Err(e)
            }
        }
    }

    pub fn read<R, E: From<StorageError>>(
        &self,
        f: impl FnOnce(&dyn ReadTx) -> Result<R, E>,
    ) -> Result<R, E> {
        let conn = self.pool.get()?;
        let tx = PgTx::new(&conn, Some(BEGIN_READ));
        let r = f(&tx);
        let healthy = !tx.broken();
        if healthy {
            tx.end_read();
        } else {
            drop(tx);
        }
        self.pool.put(conn, healthy);
        r
    }

    /// A read of one statement, which is its own snapshot: no BEGIN or ROLLBACK around it.
    pub fn read_one<R, E: From<StorageError>>(
        &self,
        f: impl FnOnce(&dyn ReadTx) -> Result<R, E>,
    ) -> Result<R, E> {
        use std::sync::atomic::Ordering;
        if self.shared.is_empty() {
            let conn = self.pool.get()?;
            let tx = PgTx::new(&conn, None);
            let r = f(&tx);
            let healthy = !tx.broken();
            drop(tx);
            self.pool.put(conn, healthy);
            return r;
        }
        let i = self.next_shared.fetch_add(1, Ordering::Relaxed) % self.shared.len();
        let slot = &self.shared[i];
        let conn = {
            let mut s = slot.lock().unwrap_or_else(|p| p.into_inner());
            match &*s {
                Some(c) if !c.client.is_closed() => Arc::clone(c),
                _ => {
                    if let Some(old) = s.take() {
                        if let Ok(c) = Arc::try_unwrap(old) {
                            self.pool.put(c, false);
                        } else {
                            self.pool.forget();
                        }
                    }
                    let c = Arc::new(self.pool.get()?);
                    *s = Some(Arc::clone(&c));
                    c
                }
            }
        };
        let tx = PgTx::new(&conn, None);
        let r = f(&tx);
        if tx.broken() {
            let mut s = slot.lock().unwrap_or_else(|p| p.into_inner());
            if s.as_ref().is_some_and(|c| Arc::ptr_eq(c, &conn)) {
                *s = None;
                self.pool.forget();
            }
        }
        r
    }

    pub async fn write<R: Send + 'static, E: From<StorageError> + Send + 'static>(
        &self,
        f: impl FnMut(&dyn WriteTx) -> Result<R, E> + Send + 'static,
    ) -> Result<R, E> {
        self.write_then(f, Ok).await
    }

    pub async fn write_then<
        R: Send + 'static,
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    >(
        &self,
        f: impl FnMut(&dyn WriteTx) -> Result<R, E> + Send + 'static,
        then: impl FnOnce(R) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        let pool = Arc::clone(&self.pool);
        let task = self
            .rt
            .spawn_blocking(move || run_write(&pool, f).and_then(then));
        match task.await {
            Ok(r) => r,
            Err(e) => Err(E::from(StorageError::Other(format!("write task: {e}")))),
        }
    }

    pub fn write_blocking<R: Send + 'static, E: From<StorageError> + Send + 'static>(
        &self,
        f: impl FnMut(&dyn WriteTx) -> Result<R, E> + Send + 'static,
    ) -> Result<R, E> {
        run_write(&self.pool, f)
    }
}

/// Runs `f` in a transaction and commits it; a transaction that lost a conditional write (or hit a
/// serialization failure or deadlock) runs again from the start on fresh rows, where the engine's
/// own checks then decide (a check-and-set loser finds the new version and gets its 400).
fn run_write<R, E: From<StorageError>>(
    pool: &Pool,
    mut f: impl FnMut(&dyn WriteTx) -> Result<R, E>,
) -> Result<R, E> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let conn = pool.get()?;
        let tx = PgTx::new(&conn, Some(BEGIN_WRITE));
        let result = f(&tx);
        let outcome = match result {
            Ok(v) => match tx.commit() {
                Ok(()) => Ok(v),
                Err(e) => Err(E::from(e)),
            },
            Err(e) => {
                tx.rollback();
                Err(e)
            }
        };
        let retry = outcome.is_err() && tx.conflicted() && attempt < MAX_ATTEMPTS;
        let healthy = !tx.broken();
        // Unanswered writes (a rolled-back transaction's) go before the connection does.
        drop(tx);
        pool.put(conn, healthy);
        if !retry {
            return outcome;
        }
        // Two writers that keep colliding on the same row step apart.
        std::thread::sleep(std::time::Duration::from_micros(
            200 * attempt as u64 + rand::random::<u64>() % 500,
        ));
    }
}
