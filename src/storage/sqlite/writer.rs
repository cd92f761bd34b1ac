//! The writer thread and its group commit.

use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::tx::SqliteTx;
use crate::storage::error::{StorageError, StorageResult};
use crate::storage::WriteTx;

/// The most jobs committed in one transaction.
const MAX_BATCH: usize = 512;

/// A failure that ends a whole group: the error to give every job of it.
#[derive(Clone)]
struct GroupError {
    unavailable: bool,
    message: String,
}

impl GroupError {
    fn from_sqlite(what: &str, e: &rusqlite::Error) -> Self {
        Self {
            unavailable: matches!(
                StorageError::from(clone_err(e)),
                StorageError::Unavailable(_)
            ),
            message: format!("{what}: {e}"),
        }
    }

    fn to_storage(&self) -> StorageError {
        if self.unavailable {
            StorageError::Unavailable(self.message.clone())
        } else {
            StorageError::Other(self.message.clone())
        }
    }
}

/// rusqlite errors are not Clone; keep what classification needs.
fn clone_err(e: &rusqlite::Error) -> rusqlite::Error {
    match e {
        rusqlite::Error::SqliteFailure(f, m) => rusqlite::Error::SqliteFailure(*f, m.clone()),
        other => rusqlite::Error::InvalidParameterName(other.to_string()),
    }
}

type Reply = Box<dyn FnOnce(Option<GroupError>) + Send>;
/// A job gets the connection inside the group's transaction, or `None` when no transaction could be
/// started (it then only reports the failure).
type Job = Box<dyn FnOnce(Option<&Connection>) -> (bool, Reply) + Send>;

#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    pub fn start(conn: Connection) -> StorageResult<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("kvseal-writer".into())
            .spawn(move || run(conn, rx))
            .map_err(|e| StorageError::Other(format!("cannot start the writer thread: {e}")))?;
        Ok(Self { tx })
    }

    fn job<R: Send + 'static, E: From<StorageError> + Send + 'static>(
        f: impl FnOnce(&dyn WriteTx) -> Result<R, E> + Send + 'static,
        done: impl FnOnce(Result<R, E>) + Send + 'static,
    ) -> Job {
        Self::conn_job(move |c: &Connection| f(&SqliteTx::new(c)), done)
    }

    fn conn_job<R: Send + 'static, E: From<StorageError> + Send + 'static>(
        f: impl FnOnce(&Connection) -> Result<R, E> + Send + 'static,
        done: impl FnOnce(Result<R, E>) + Send + 'static,
    ) -> Job {
        Box::new(move |conn: Option<&Connection>| {
            let result = match conn {
                Some(conn) => f(conn),
                None => Err(E::from(StorageError::Other(
                    "could not start a transaction".into(),
                ))),
            };
            let ok = result.is_ok();
            let reply: Reply = Box::new(move |commit_error: Option<GroupError>| {
                done(match commit_error {
                    Some(e) => Err(E::from(e.to_storage())),
                    None => result,
                })
            });
            (ok, reply)
        })
    }

    fn stopped<E: From<StorageError>>() -> E {
        E::from(StorageError::Other("the writer has stopped".into()))
    }

    pub async fn submit<R: Send + 'static, E: From<StorageError> + Send + 'static>(
        &self,
        f: impl FnOnce(&dyn WriteTx) -> Result<R, E> + Send + 'static,
    ) -> Result<R, E> {
        let (tx, rx) = oneshot::channel();
        let job = Self::job(f, move |r| {
            let _ = tx.send(r);
        });
        self.tx.send(job).map_err(|_| Self::stopped::<E>())?;
        rx.await.map_err(|_| Self::stopped::<E>())?
    }

    /// Like [`Writer::submit`], and once the group has committed, runs `then` with the job's result
    /// on the writer thread, before the reply: so `then` runs in commit order, and runs even when the
    /// caller has stopped waiting (a request deadline, a client gone). `then` must not submit writes.
    pub async fn submit_then<
        R: Send + 'static,
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
    >(
        &self,
        f: impl FnOnce(&dyn WriteTx) -> Result<R, E> + Send + 'static,
        then: impl FnOnce(R) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        let (tx, rx) = oneshot::channel();
        let job = Self::job(f, move |r| {
            let _ = tx.send(r.and_then(then));
        });
        self.tx.send(job).map_err(|_| Self::stopped::<E>())?;
        rx.await.map_err(|_| Self::stopped::<E>())?
    }

    /// Runs `f` on the writer's connection itself (settings only tests change).
    pub async fn submit_conn(
        &self,
        f: impl FnOnce(&Connection) -> StorageResult<()> + Send + 'static,
    ) -> StorageResult<()> {
        let (tx, rx) = oneshot::channel();
        let job = Self::conn_job(f, move |r| {
            let _ = tx.send(r);
        });
        self.tx
            .send(job)
            .map_err(|_| Self::stopped::<StorageError>())?;
        rx.await.map_err(|_| Self::stopped::<StorageError>())?
    }

    pub fn submit_blocking<R: Send + 'static, E: From<StorageError> + Send + 'static>(
        &self,
        f: impl FnOnce(&dyn WriteTx) -> Result<R, E> + Send + 'static,
    ) -> Result<R, E> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job = Self::job(f, move |r| {
            let _ = tx.send(r);
        });
        self.tx.send(job).map_err(|_| Self::stopped::<E>())?;
        rx.recv().map_err(|_| Self::stopped::<E>())?
    }
}

fn run(conn: Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&conn, batch);
    }
}

fn commit_batch(conn: &Connection, batch: Vec<Job>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let err = GroupError::from_sqlite("begin", &e);
        tracing::error!(error = %err.message, "cannot start a write transaction");
        for job in batch {
            let (_, reply) = job(None);
            reply(Some(err.clone()));
        }
        return;
    }
    // (reply, whether the job itself failed: its own error then stands whatever happens to the group)
    let mut replies: Vec<(Reply, bool)> = Vec::with_capacity(batch.len());
    let mut jobs = batch.into_iter();
    let mut rolled_back = false;
    for job in jobs.by_ref() {
        if exec_cached(conn, "SAVEPOINT job").is_err() {
            let (_, reply) = job(None);
            replies.push((reply, true));
            continue;
        }
        let (ok, reply) = job(Some(conn));
        // On SQLITE_FULL, IOERR or NOMEM, SQLite may roll the whole transaction back by itself.
        // Nothing of this group is then stored: stop, and refuse every job of it (running the rest
        // would commit them one by one outside the group, behind their callers' backs).
        if conn.is_autocommit() {
            replies.push((reply, !ok));
            rolled_back = true;
            break;
        }
        if !ok {
            let _ = exec_cached(conn, "ROLLBACK TO job");
        }
        let _ = exec_cached(conn, "RELEASE job");
        replies.push((reply, !ok));
    }
    let commit_error = if rolled_back {
        Some(GroupError {
            unavailable: true,
            message: "the database rolled the transaction back (disk full or I/O error)".into(),
        })
    } else {
        conn.execute_batch("COMMIT").err().map(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            GroupError::from_sqlite("commit", &e)
        })
    };
    if let Some(e) = &commit_error {
        tracing::error!(error = %e.message, "group commit failed; every write in the group is refused");
    }
    for job in jobs {
        let (_, reply) = job(None);
        reply(commit_error.clone());
    }
    for (reply, failed_itself) in replies {
        reply(if failed_itself {
            None
        } else {
            commit_error.clone()
        });
    }
}

/// Runs a statement through the connection's statement cache: the savepoint statements run twice per
/// write, and `execute_batch` would parse them every time.
fn exec_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}
