//! TLS between kvseal and PostgreSQL: what each `sslmode` of `storage.connection_url` accepts.
//!
//! Real processes: a PostgreSQL server of the test's own with `ssl = on` and a certificate for
//! `localhost` only (a DNS name, no IP address) signed by a test CA ([`PgCluster::start_tls`]), and
//! `kvseal server --config` on `[storage] type = "postgresql"`.
//!
//! A URL that works: the node comes up uninitialised (health 501), `sys/init` works, a secret
//! round-trips, and PostgreSQL's `pg_stat_ssl` says whether kvseal's connections use TLS. A URL that
//! is refused: kvseal exits with an error at start (it does not start on a database it cannot
//! open), says on stderr that the database could not be reached, and writes nothing in it.
//!
//! Every URL carries a password (the server trusts local clients and never asks for it): it must
//! appear in no output of kvseal's.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::pg::{PgCluster, PgTls};
use common::{free_port, uid, Server, BIN};
use serde_json::json;

/// How long a refused kvseal may take to give up and exit (a connection attempt waits at most 5 s).
const REFUSED_EXIT: Duration = Duration::from_secs(30);

/// What a connection URL does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// The node starts, and its connections to the database are TLS (`true`) or not (`false`).
    Works { tls: bool },
    /// kvseal refuses to start.
    Refused,
}
use Outcome::{Refused, Works};

/// Which CA a URL's `sslrootcert` names.
#[derive(Clone, Copy, Debug)]
enum Root {
    None,
    /// The CA that signed the server's certificate.
    Ours,
    /// A CA that signed nothing of the server's.
    Other,
}

struct Case {
    what: &'static str,
    host: &'static str,
    sslmode: &'static str,
    root: Root,
    want: Outcome,
}

const fn case(
    what: &'static str,
    host: &'static str,
    sslmode: &'static str,
    root: Root,
    want: Outcome,
) -> Case {
    Case {
        what,
        host,
        sslmode,
        root,
        want,
    }
}

/// A server whose `pg_hba.conf` requires TLS on TCP (`hostssl ... trust`, `hostnossl ... reject`).
#[test]
fn sslmodes_against_a_server_that_requires_tls() {
    let table = [
        case(
            "require: TLS, nothing verified",
            "127.0.0.1",
            "require",
            Root::None,
            Works { tls: true },
        ),
        case(
            "verify-full: our CA, and the host is in the certificate",
            "localhost",
            "verify-full",
            Root::Ours,
            Works { tls: true },
        ),
        case(
            "verify-full: a certificate not signed by the CA named",
            "localhost",
            "verify-full",
            Root::Other,
            Refused,
        ),
        case(
            "verify-full: 127.0.0.1 is not in the certificate (localhost only)",
            "127.0.0.1",
            "verify-full",
            Root::Ours,
            Refused,
        ),
        case(
            "verify-ca: the chain is checked, not the host",
            "127.0.0.1",
            "verify-ca",
            Root::Ours,
            Works { tls: true },
        ),
        case(
            "verify-ca: a certificate not signed by the CA named",
            "127.0.0.1",
            "verify-ca",
            Root::Other,
            Refused,
        ),
        case(
            "require with sslrootcert: the chain is checked (libpq's rule)",
            "127.0.0.1",
            "require",
            Root::Other,
            Refused,
        ),
        case(
            "disable: pg_hba.conf rejects TCP without TLS",
            "127.0.0.1",
            "disable",
            Root::None,
            Refused,
        ),
    ];
    let pg = PgCluster::start_tls(PgTls::Required);
    run_table(&pg, &table);
}

/// A server that accepts TCP clients with TLS or without: `sslmode` alone decides, and `pg_stat_ssl`
/// tells the two apart.
#[test]
fn sslmodes_against_a_server_that_allows_both() {
    let table = [
        case(
            "disable: plain TCP",
            "127.0.0.1",
            "disable",
            Root::None,
            Works { tls: false },
        ),
        case(
            "require: TLS",
            "127.0.0.1",
            "require",
            Root::None,
            Works { tls: true },
        ),
        case(
            "verify-full: our CA, host in the certificate",
            "localhost",
            "verify-full",
            Root::Ours,
            Works { tls: true },
        ),
    ];
    let pg = PgCluster::start_tls(PgTls::Allowed);
    run_table(&pg, &table);
}

/// Runs every case on a database of its own; reports all failures at once.
fn run_table(pg: &PgCluster, table: &[Case]) {
    let mut failures = Vec::new();
    for c in table {
        let db = pg.create_database();
        let password = format!("pw-{}", uid());
        let mut query = format!("sslmode={}", c.sslmode);
        match c.root {
            Root::None => {}
            Root::Ours => query.push_str(&format!("&sslrootcert={}", pg.ca_file().display())),
            Root::Other => {
                query.push_str(&format!("&sslrootcert={}", pg.other_ca_file().display()))
            }
        }
        let url = pg.url_with(&format!("postgres:{password}"), c.host, &db, &query);
        let label = format!("{} ({}, {query})", c.what, c.host);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match c.want {
            Works { tls } => assert_works(pg, &db, &url, &password, tls),
            Refused => assert_refused(pg, &db, &url, &password),
        }));
        if let Err(e) = result {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{label}:\n{msg}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        table.len(),
        failures.join("\n\n")
    );
}

fn storage(url: &str) -> String {
    format!("type = \"postgresql\"\nconnection_url = \"{url}\"\n")
}

/// The node comes up (501), initialises, round-trips a secret; its connections are TLS or not as
/// `tls` says; the password is in no output.
fn assert_works(pg: &PgCluster, db: &str, url: &str, password: &str, tls: bool) {
    let mut node = Server::config_mode_storage(&storage(url), "", None, &[501]);
    node.init();
    let http = node.http();
    let data = json!({"user": "app", "password": "s3cret"});
    assert_eq!(http.put_secret("secret", "tls/db", &data), 1);
    let r = http.get("secret/data/tls/db");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["data"]["data"], data, "{}", r.text);

    // What PostgreSQL says of kvseal's connections to this database.
    let admin = pg.url_with("postgres", "127.0.0.1", db, "sslmode=prefer");
    let ssl = pg.psql_on(
        &admin,
        "SELECT ssl FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
         WHERE application_name = 'kvseal' AND datname = current_database()",
    );
    let flags: Vec<&str> = ssl.lines().collect();
    assert!(
        !flags.is_empty(),
        "no kvseal connection in pg_stat_activity"
    );
    let want = if tls { "t" } else { "f" };
    assert!(
        flags.iter().all(|f| *f == want),
        "pg_stat_ssl.ssl of kvseal's connections: {flags:?}, want all {want:?}"
    );
    let logs = node.logs();
    assert!(
        !logs.contains(password),
        "the database password appears in kvseal's output:\n{logs}"
    );
}

/// kvseal exits non-zero at start, says on stderr that it could not reach the database (without the
/// password), and leaves the database empty.
fn assert_refused(pg: &PgCluster, db: &str, url: &str, password: &str) {
    let dir = tempfile::Builder::new()
        .prefix("kvseal-pgtls-")
        .tempdir()
        .unwrap();
    let cfg = dir.path().join("kvseal.toml");
    fs::write(
        &cfg,
        format!(
            "[listener]\naddress = \"127.0.0.1:{}\"\ntls_disable = true\n\n\
             [storage]\n{}\n\
             [seal]\ntype = \"file\"\nkey_file = \"{}\"\n",
            free_port(),
            storage(url),
            dir.path().join("root.key").display()
        ),
    )
    .unwrap();
    let (out, err) = (dir.path().join("stdout.log"), dir.path().join("stderr.log"));
    let mut child = Command::new(BIN)
        .args(["server", "--config"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > REFUSED_EXIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = fs::read_to_string(&out).unwrap_or_default();
    let stderr = fs::read_to_string(&err).unwrap_or_default();
    let shown = format!("----- stdout -----\n{stdout}\n----- stderr -----\n{stderr}");
    let status = status.unwrap_or_else(|| {
        panic!("kvseal still runs {REFUSED_EXIT:?} after its start (want: refused)\n{shown}")
    });
    assert!(
        !status.success(),
        "kvseal exited with {status} (want non-zero)\n{shown}"
    );
    assert!(
        !stdout.contains(password) && !stderr.contains(password),
        "the database password appears in kvseal's output\n{shown}"
    );
    // The refusal names the connection (its URL, password masked) and the cause after it.
    assert!(
        stderr.contains("error: storage error: cannot connect to the database postgres://")
            && stderr.contains(":***@"),
        "stderr does not name the database connection\n{shown}"
    );
    assert!(
        stderr.contains("certificate verify failed") || stderr.contains("pg_hba.conf"),
        "stderr does not say why the connection failed\n{shown}"
    );
    // Nothing was written in the database.
    let admin = pg.url_with("postgres", "127.0.0.1", db, "sslmode=prefer");
    assert_eq!(
        pg.psql_on(
            &admin,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        "0",
        "a refused node created tables"
    );
}
