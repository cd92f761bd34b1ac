//! Two kvseal nodes, A and B, on one PostgreSQL database and one file seal: what one node does is
//! what the other serves. Real processes throughout: a PostgreSQL server of the test's own
//! ([`PgCluster`]) and two `kvseal server --config` processes.
//!
//! The promises checked (the PostgreSQL contract): B unseals itself within 5 s of `sys/init` on A;
//! a write acknowledged by one node reads the same on the other at once; check-and-set has one
//! winner across nodes; a token revoked, a policy narrowed, a mount enabled or disabled, a key
//! rotated on A is in force on B within 1 s; a SIGKILL of A loses no acknowledged write.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::pg::PgCluster;

// ---------------------------------------------------------------- the harness itself

#[test]
fn harness_starts_stops_and_restarts_postgresql() {
    let mut pg = PgCluster::start();
    assert!(
        pg.url().starts_with(&format!(
            "postgres://postgres@127.0.0.1:{}/kvseal_",
            pg.port()
        )),
        "{}",
        pg.url()
    );
    assert!(pg.url().ends_with("?sslmode=disable"), "{}", pg.url());

    // The test's database is empty, and fsync is on.
    assert_eq!(
        pg.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        "0"
    );
    assert_eq!(pg.psql("SHOW fsync"), "on");
    assert_eq!(pg.psql("SHOW listen_addresses"), "127.0.0.1");

    pg.psql("CREATE TABLE t (k text PRIMARY KEY, v text NOT NULL)");
    pg.psql("INSERT INTO t VALUES ('a', '1'), ('b', '2')");
    assert_eq!(pg.psql("SELECT k, v FROM t ORDER BY k"), "a|1\nb|2");

    // Another database: empty, and not the same one.
    let other = pg.new_database();
    assert_ne!(other, pg.url());
    assert_eq!(
        pg.psql_on(
            &other,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ),
        "0"
    );

    // Stopped: no connection; started again on the same port and data: the rows are there.
    pg.stop();
    assert!(!pg.is_running());
    assert_refuses_connections(&pg);
    pg.start_again();
    assert_eq!(pg.psql("SELECT k, v FROM t ORDER BY k"), "a|1\nb|2");

    // Killed with a client connected (postmaster and every backend at once), then crash recovery
    // keeps the committed rows.
    pg.psql("INSERT INTO t VALUES ('c', '3')");
    let mut sleeper = Command::new(pg.psql_path())
        .args(["-X", "-q", "-d", &pg.url(), "-c", "SELECT pg_sleep(60)"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while pg.psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'")
        != "1"
    {
        assert!(
            Instant::now() < deadline,
            "the sleeping client never connected"
        );
        thread::sleep(Duration::from_millis(50));
    }
    assert!(pg.server_processes() >= 2, "postmaster and backends");
    pg.kill9();
    assert_eq!(
        pg.server_processes(),
        0,
        "a PostgreSQL process survived kill9"
    );
    assert!(
        !sleeper.wait().unwrap().success(),
        "the client saw its server die"
    );
    assert_refuses_connections(&pg);
    pg.start_again();
    assert_eq!(pg.psql("SELECT k, v FROM t ORDER BY k"), "a|1\nb|2\nc|3");
}

fn assert_refuses_connections(pg: &PgCluster) {
    let port = pg.port();
    let refused = std::net::TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_millis(500),
    )
    .is_err();
    assert!(refused, "PostgreSQL still accepts connections on {port}");
}
