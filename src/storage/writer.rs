//! The writer thread and its group commit.

use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::engine::error::{EngineError, EngineResult};

/// The most jobs committed in one transaction.
const MAX_BATCH: usize = 512;

type Reply = Box<dyn FnOnce(Option<String>) + Send>;
/// A job gets the connection inside the group's transaction, or `None` when no transaction could be
/// started (it then only reports the failure).
type Job = Box<dyn FnOnce(Option<&Connection>) -> (bool, Reply) + Send>;

#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    pub fn start(conn: Connection) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("kvseal-writer".into())
            .spawn(move || run(conn, rx))
            .expect("spawning the writer thread");
        Self { tx }
    }

    fn job<R: Send + 'static>(
        f: impl FnOnce(&Connection) -> EngineResult<R> + Send + 'static,
        done: impl FnOnce(EngineResult<R>) + Send + 'static,
    ) -> Job {
        Box::new(move |conn: Option<&Connection>| {
            let result = match conn {
                Some(conn) => f(conn),
                None => Err(EngineError::Storage("could not start a transaction".into())),
            };
            let ok = result.is_ok();
            let reply: Reply = Box::new(move |commit_error: Option<String>| {
                done(match commit_error {
                    Some(e) => Err(EngineError::Storage(e)),
                    None => result,
                })
            });
            (ok, reply)
        })
    }

    pub async fn submit<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> EngineResult<R> + Send + 'static,
    ) -> EngineResult<R> {
        let (tx, rx) = oneshot::channel();
        let job = Self::job(f, move |r| {
            let _ = tx.send(r);
        });
        self.tx
            .send(job)
            .map_err(|_| EngineError::Storage("the writer has stopped".into()))?;
        rx.await
            .map_err(|_| EngineError::Storage("the writer has stopped".into()))?
    }

    pub fn submit_blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> EngineResult<R> + Send + 'static,
    ) -> EngineResult<R> {
        let (tx, rx) = mpsc::sync_channel(1);
        let job = Self::job(f, move |r| {
            let _ = tx.send(r);
        });
        self.tx
            .send(job)
            .map_err(|_| EngineError::Storage("the writer has stopped".into()))?;
        rx.recv()
            .map_err(|_| EngineError::Storage("the writer has stopped".into()))?
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
        let msg = format!("begin: {e}");
        tracing::error!(error = %msg, "cannot start a write transaction");
        for job in batch {
            let (_, reply) = job(None);
            reply(Some(msg.clone()));
        }
        return;
    }
    let mut replies = Vec::with_capacity(batch.len());
    for job in batch {
        if conn.execute_batch("SAVEPOINT job").is_err() {
            let (_, reply) = job(None);
            replies.push(reply);
            continue;
        }
        let (ok, reply) = job(Some(conn));
        let end = if ok {
            "RELEASE job"
        } else {
            "ROLLBACK TO job; RELEASE job"
        };
        let _ = conn.execute_batch(end);
        replies.push(reply);
    }
    let commit_error = conn.execute_batch("COMMIT").err().map(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        format!("commit: {e}")
    });
    if let Some(e) = &commit_error {
        tracing::error!(error = %e, "group commit failed; every write in the group is refused");
    }
    for reply in replies {
        reply(commit_error.clone());
    }
}
