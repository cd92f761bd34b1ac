//! Connections to PostgreSQL: the connection URL, TLS, and a bounded pool.
//!
//! tokio-postgres splits a connection in two: a `Client` that queues requests on a channel, and a
//! `Connection` future that does the socket I/O. The connection futures run on a small runtime of
//! this backend's own; the storage interface waits for a query's answer with `block_on` on the
//! calling thread (an actix worker for reads, as SQLite's reads run there; a blocking thread for
//! writes). The synchronous `postgres` crate cannot be used for that: it starts a runtime of its own
//! inside each call, which panics on actix's threads.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use postgres_openssl::MakeTlsConnector;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls, Statement};

use crate::storage::error::{StorageError, StorageResult};

/// How long a request waits for a free connection, and how long a new connection may take.
pub const WAIT: Duration = Duration::from_secs(5);

/// Run on every new connection. A statement (or a lock wait) never holds a request beyond its
/// deadline; a transaction left open by a node that vanished is ended by the server.
const SESSION_SETUP: &str =
    "SET client_min_messages = warning; SET statement_timeout = '10s'; SET lock_timeout = '5s';
     SET idle_in_transaction_session_timeout = '60s'";

/// The parsed `connection_url`. libpq's `sslmode=verify-ca|verify-full` and `sslrootcert`,
/// `sslcert`, `sslkey` are handled here (tokio-postgres knows only disable/prefer/require).
#[derive(Clone)]
pub struct Settings {
    config: tokio_postgres::Config,
    tls: Tls,
    /// The URL without its password, for messages.
    pub shown: String,
}

#[derive(Clone)]
enum Tls {
    None,
    Openssl(MakeTlsConnector),
}

/// What `sslmode` asks of the server's certificate.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verify {
    Nothing,
    Chain,
    ChainAndHost,
}

impl Settings {
    pub fn parse(url: &str) -> Result<Self, String> {
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, q),
            None => (url, ""),
        };
        if !(base.starts_with("postgres://") || base.starts_with("postgresql://")) {
            return Err("must be a postgres:// or postgresql:// URL".into());
        }
        let mut kept = Vec::new();
        let mut mode = "prefer".to_string();
        let (mut root, mut cert, mut key) = (None, None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_encoding::percent_decode_str(v)
                .decode_utf8()
                .map_err(|_| format!("{k}: not UTF-8"))?
                .into_owned();
            match k {
                "sslmode" => mode = v,
                "sslrootcert" => root = Some(v),
                "sslcert" => cert = Some(v),
                "sslkey" => key = Some(v),
                _ => kept.push(pair),
            }
        }
        let (ssl_mode, verify) = match mode.as_str() {
            "disable" => (SslMode::Disable, Verify::Nothing),
            "prefer" => (SslMode::Prefer, Verify::Nothing),
            "require" if root.is_none() => (SslMode::Require, Verify::Nothing),
            // libpq: `require` with a root certificate verifies the chain, as `verify-ca`.
            "require" | "verify-ca" => (SslMode::Require, Verify::Chain),
            "verify-full" => (SslMode::Require, Verify::ChainAndHost),
            other => {
                return Err(format!(
                    "sslmode={other}: expected disable, prefer, require, verify-ca or verify-full"
                ))
            }
        };
        let rebuilt = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut config: tokio_postgres::Config = rebuilt
            .parse()
            .map_err(|e: tokio_postgres::Error| e.to_string())?;
        config
            .ssl_mode(ssl_mode)
            .connect_timeout(WAIT)
            .tcp_user_timeout(WAIT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .application_name("kvseal");
        let tls = if ssl_mode == SslMode::Disable {
            Tls::None
        } else {
            Tls::Openssl(tls_connector(verify, root, cert, key)?)
        };
        let shown = match config.get_password() {
            Some(_) => redact_password(base),
            None => base.to_string(),
        };
        Ok(Self { config, tls, shown })
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn redact_password(base: &str) -> String {
    let Some((scheme, rest)) = base.split_once("://") else {
        return base.into();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        None => base.into(),
    }
}

fn tls_connector(
    verify: Verify,
    root: Option<String>,
    cert: Option<String>,
    key: Option<String>,
) -> Result<MakeTlsConnector, String> {
    let mut b = SslConnector::builder(SslMethod::tls()).map_err(|e| e.to_string())?;
    match &root {
        Some(path) => b
            .set_ca_file(path)
            .map_err(|e| format!("sslrootcert {path}: {e}"))?,
        None => b.set_default_verify_paths().map_err(|e| e.to_string())?,
    }
    match (&cert, &key) {
        (Some(c), Some(k)) => {
            b.set_certificate_chain_file(c)
                .map_err(|e| format!("sslcert {c}: {e}"))?;
            b.set_private_key_file(k, openssl::ssl::SslFiletype::PEM)
                .map_err(|e| format!("sslkey {k}: {e}"))?;
        }
        (None, None) => {}
        _ => return Err("sslcert and sslkey go together".into()),
    }
    b.set_verify(if verify == Verify::Nothing {
        SslVerifyMode::NONE
    } else {
        SslVerifyMode::PEER
    });
    let mut m = MakeTlsConnector::new(b.build());
    m.set_callback(move |c, _| {
        c.set_verify_hostname(verify == Verify::ChainAndHost);
        Ok(())
    });
    Ok(m)
}

/// One connection and its prepared statements.
pub struct PgConn {
    pub client: Client,
    statements: Mutex<HashMap<&'static str, Statement>>,
}

impl PgConn {
    /// The prepared statement for `sql` (prepared once per connection).
    pub fn statement(&self, sql: &'static str) -> StorageResult<Statement> {
        if let Some(s) = self
            .statements
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(sql)
        {
            return Ok(s.clone());
        }
        let s = futures_executor::block_on(self.client.prepare(sql)).map_err(super::map_err)?;
        self.statements
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sql, s.clone());
        Ok(s)
    }
}

struct PoolState {
    idle: Vec<PgConn>,
    /// Connections open, idle or lent.
    total: usize,
}

/// At most `max` connections, made on demand; a broken one is dropped, not returned.
pub struct Pool {
    settings: Settings,
    rt: Arc<tokio::runtime::Runtime>,
    state: Mutex<PoolState>,
    freed: Condvar,
    max: usize,
    /// Why the last connection attempt failed, with its causes (for the start-up error; clients
    /// get "the database does not answer" and no detail).
    last_error: Mutex<Option<String>>,
}

impl Pool {
    pub fn new(settings: Settings, rt: Arc<tokio::runtime::Runtime>, max: usize) -> Self {
        Self {
            settings,
            rt,
            state: Mutex::new(PoolState {
                idle: Vec::new(),
                total: 0,
            }),
            freed: Condvar::new(),
            max: max.max(1),
            last_error: Mutex::new(None),
        }
    }

    pub fn shown(&self) -> &str {
        &self.settings.shown
    }

    /// A connection: an idle one, a new one while under `max`, or the next one returned within
    /// [`WAIT`]; otherwise `Unavailable`.
    pub fn get(&self) -> StorageResult<PgConn> {
        let deadline = std::time::Instant::now() + WAIT;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            while let Some(c) = st.idle.pop() {
                if !c.client.is_closed() {
                    return Ok(c);
                }
                st.total -= 1;
            }
            if st.total < self.max {
                st.total += 1;
                drop(st);
                return self.connect().inspect_err(|_| {
                    self.state.lock().unwrap_or_else(|p| p.into_inner()).total -= 1;
                    self.freed.notify_one();
                });
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Err(StorageError::Unavailable(
                    "no database connection free within 5 s".into(),
                ));
            }
            st = self
                .freed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Returns a connection; `healthy: false` (it failed mid-transaction, or its state is unknown)
    /// closes it instead.
    pub fn put(&self, conn: PgConn, healthy: bool) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if healthy && !conn.client.is_closed() {
            st.idle.push(conn);
        } else {
            st.total -= 1;
        }
        drop(st);
        self.freed.notify_one();
    }

    /// Counts out a connection that left the pool for good (a shared reader that broke).
    pub fn forget(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).total -= 1;
        self.freed.notify_one();
    }

    /// Drops every idle connection (after the database went away, so that the next requests do not
    /// each find a dead one first).
    pub fn clear_idle(&self) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let n = st.idle.len();
        st.idle.clear();
        st.total -= n;
    }

    fn connect(&self) -> StorageResult<PgConn> {
        let config = self.settings.config.clone();
        let tls = self.settings.tls.clone();
        let task = self.rt.spawn(async move {
            let client = match tls {
                Tls::None => {
                    let (client, conn) = config.connect(NoTls).await?;
                    tokio::spawn(drive(conn));
                    client
                }
                Tls::Openssl(m) => {
                    let (client, conn) = config.connect(m).await?;
                    tokio::spawn(drive(conn));
                    client
                }
            };
            client.batch_execute(SESSION_SETUP).await?;
            Ok::<_, tokio_postgres::Error>(client)
        });
        let client = futures_executor::block_on(task)
            .map_err(|e| StorageError::Other(format!("connecting: {e}")))?
            .map_err(|e| {
                // The detail (host, the server's words, TLS's reason) goes to the log and to the
                // start-up error, not to clients.
                let cause = causes(&e);
                tracing::debug!(database = %self.shown(), error = %cause, "cannot connect to the database");
                *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(cause);
                StorageError::Unavailable("the database does not answer".into())
            })?;
        Ok(PgConn {
            client,
            statements: Mutex::new(HashMap::new()),
        })
    }
}

/// Why the last connection attempt failed, if one did.
impl Pool {
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// An error with its chain of causes (tokio-postgres's own message leaves out the server's words
/// and OpenSSL's reason, which are its source).
fn causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}

async fn drive<F: std::future::Future<Output = Result<(), tokio_postgres::Error>>>(conn: F) {
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "a database connection ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_urls() {
        let ok = [
            "postgres://u@h:5432/db?sslmode=disable",
            "postgresql://u:pw@h/db",
            "postgres://u@h/db?sslmode=require",
            "postgres://u@h/db?sslmode=verify-full",
        ];
        for url in ok {
            assert!(Settings::parse(url).is_ok(), "{url}");
        }
        let bad = [
            ("mysql://u@h/db", "postgres://"),
            ("postgres://u@h/db?sslmode=allow-ish", "sslmode=allow-ish"),
            ("postgres://u@h/db?sslcert=/x", "go together"),
        ];
        for (url, want) in bad {
            match Settings::parse(url) {
                Err(e) => assert!(e.contains(want), "{url}: {e}"),
                Ok(_) => panic!("{url} accepted"),
            }
        }
        let s = Settings::parse("postgres://u:hunter2@h/db").expect("parse");
        assert!(!s.shown.contains("hunter2"), "{}", s.shown);
    }
}
