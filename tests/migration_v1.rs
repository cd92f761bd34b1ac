//! The barrier, acceptance 4 (first half, issue 11): a store written by the kvseal of schema
//! version 1 is migrated on start, and serves everything as before.
//!
//! `tests/fixtures/store-v1/` holds such a store, made by `make.sh` there (which runs the ignored
//! test `make_fixture_store_v1` below with the schema-version-1 binary): `kvseal.db` (a single-file
//! `kvseal operator backup`), its seal key file `root.key`, and `manifest.json` (what
//! `common::populate` put in it, and the answers that binary gave to `populate::probes`).
//!
//! Each test copies the fixture into a fresh temp dir as `storage/kvseal.db` with the key file and
//! starts the server (config mode, file seal) on it:
//! * `v1_store_comes_up_unsealed_and_serves_everything_as_before`: every secret, version state,
//!   custom metadata, mount config, policy, token, role and audit device of the manifest, through
//!   both APIs, and every recorded probe answers as recorded;
//! * `migration_bumps_user_version_and_keeps_the_v1_database_beside_it`: `PRAGMA user_version` is
//!   2, and `kvseal.db.v1.bak` is byte-identical to the fixture;
//! * `migrated_store_has_no_marker_in_plaintext`: the fixture's markers are gone from
//!   `kvseal.db`, `-wal`, `-shm` (the `.bak` keeps them, by design);
//! * `second_start_does_not_migrate_again`: a second start leaves the `.bak` untouched.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::db;
use common::populate::{self, Answer, Client, Markers, Population, Probe};
use common::{contains_bytes, Server, BIN};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Where the fixture's audit device writes: an absolute path is stored in the database, so it
/// is fixed (the tests create it).
const AUDIT_DIR: &str = "/tmp/kvseal-store-v1-fixture/audit";

/// Every token of the fixture expires then (see `make_fixture_store_v1`).
const FIXTURE_EXPIRY_NS: i64 = 4_102_444_800_000_000_000; // 2100-01-01T00:00:00Z

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1")
}

#[derive(Debug, Serialize, Deserialize)]
struct Recorded {
    probe: Probe,
    answer: Answer,
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    /// How it was made.
    made_by: String,
    /// `git rev-parse HEAD` of the checkout that built the binary.
    commit: String,
    /// `kvseal --version` of that binary.
    kvseal_version: String,
    /// `PRAGMA user_version` of `kvseal.db`.
    schema_version: i64,
    notes: Vec<String>,
    audit_dir: String,
    population: Population,
    /// `populate::probes` and what the schema-version-1 server answered, on a copy of this file.
    probes: Vec<Recorded>,
}

fn manifest() -> Manifest {
    let p = fixture_dir().join("manifest.json");
    let text = fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A server on a fresh copy of the fixture (or of `db`), waited for until health is 200
/// (initialised, unsealed).
fn start_on(db: &Path, key: &Path) -> Server {
    fs::create_dir_all(AUDIT_DIR).expect("mkdir the fixture's audit dir");
    let tmp = tempfile::Builder::new()
        .prefix("kvseal-v1-")
        .tempdir()
        .expect("tempdir");
    for d in ["storage", "keys", "logs"] {
        fs::create_dir_all(tmp.path().join(d)).expect("mkdir");
    }
    fs::copy(db, tmp.path().join("storage/kvseal.db")).expect("copy database");
    let k = tmp.path().join("keys/root.key");
    fs::copy(key, &k).expect("copy key file");
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&k, fs::Permissions::from_mode(0o600)).expect("chmod key file");
    let mut s = Server::spawn_on(tmp, Path::new(AUDIT_DIR), None);
    s.wait_ready(&[200]);
    s
}

fn start_on_fixture() -> (Server, Manifest) {
    let m = manifest();
    let mut s = start_on(
        &fixture_dir().join("kvseal.db"),
        &fixture_dir().join("root.key"),
    );
    s.token = m.population.root_token.clone();
    (s, m)
}

/// An answer with what kvseal now answers differently from the first release on purpose taken
/// back out: the built-in `cubbyhole/` mount in `sys/mounts`, and the built-in `default` policy's
/// text (an unchanged one is upgraded at start to grant the token's cubbyhole and response
/// wrapping).
fn as_first_release(mut body: Value) -> Value {
    if let Some(top) = body.as_object_mut() {
        top.remove("cubbyhole/");
        if let Some(data) = top.get_mut("data").and_then(Value::as_object_mut) {
            data.remove("cubbyhole/");
            if data.get("name") == Some(&json!("default"))
                && data.get("policy") == Some(&json!(kvseal::policy::DEFAULT_POLICY))
            {
                data.insert(
                    "policy".into(),
                    json!(kvseal::policy::PREVIOUS_DEFAULT_POLICY),
                );
            }
        }
    }
    body
}

/// Each recorded probe, replayed: the same status, and the same body for a success.
fn replay(base: &str, m: &Manifest) -> Vec<String> {
    let c = Client::new(base);
    let mut diffs = Vec::new();
    for r in &m.probes {
        match populate::run_probe(&c, &m.population, &r.probe).map(|mut a| {
            a.body = as_first_release(a.body);
            a
        }) {
            Err(e) => diffs.push(format!("{}: {e}", r.probe.name)),
            Ok(a) if a.status != r.answer.status => diffs.push(format!(
                "{}: status {} (recorded {}): {}",
                r.probe.name, a.status, r.answer.status, a.body
            )),
            Ok(a) if a.status < 400 && a.body != r.answer.body => diffs.push(format!(
                "{}: {}\n      recorded {}",
                r.probe.name, a.body, r.answer.body
            )),
            Ok(_) => {}
        }
    }
    diffs
}

fn storage_file(s: &Server, name: &str) -> PathBuf {
    s.storage_dir().join(name)
}

#[test]
fn v1_store_comes_up_unsealed_and_serves_everything_as_before() {
    let (s, m) = start_on_fixture();
    assert_eq!(
        m.schema_version, 1,
        "the fixture is a schema-version-1 store"
    );
    let c = Client::new(&s.addr);
    let st = c.send("", "GET", "/v1/sys/seal-status", None);
    assert_eq!(st.status, 200, "{st:?}");
    assert_eq!(st.body["sealed"], false, "{st:?}");
    assert_eq!(st.body["initialized"], true, "{st:?}");

    let errs = populate::check_population(&s.addr, &m.population);
    assert!(
        errs.is_empty(),
        "the migrated store does not serve the fixture as recorded:\n  {}",
        errs.join("\n  ")
    );
    // The num_uses token (check_population leaves it alone) still has its uses and works.
    let uses = m.population.token(populate::USES);
    assert_eq!(uses.num_uses, 5);
    let a = c.send(&uses.token, "GET", "/v1/secret/data/app/db", None);
    assert_eq!(a.status, 200, "{a:?}");

    // populate::probes spends two uses of that token: on a fresh copy.
    drop(s);
    let (s, m) = start_on_fixture();
    let diffs = replay(&s.addr, &m);
    assert!(
        diffs.is_empty(),
        "{} of {} recorded answers differ after migration:\n  {}",
        diffs.len(),
        m.probes.len(),
        diffs.join("\n  ")
    );
}

#[test]
fn migration_bumps_user_version_and_keeps_the_v1_database_beside_it() {
    let (mut s, _m) = start_on_fixture();
    let st = s.stop().expect("running");
    assert!(st.success(), "kvseal exited with {st} on SIGTERM");
    let db_path = storage_file(&s, "kvseal.db");
    let v = db::user_version(&db_path);
    assert_eq!(
        v, 3,
        "PRAGMA user_version of the started store is {v}: the schema-version-1 fixture was not \
         migrated to the current version (3)"
    );
    let bak = storage_file(&s, "kvseal.db.v1.bak");
    assert!(
        bak.is_file(),
        "no {} beside the migrated database (the copy of the original kept before migrating); \
         storage holds {:?}",
        bak.display(),
        common::files_under(&s.storage_dir())
    );
    let fixture = fs::read(fixture_dir().join("kvseal.db")).unwrap();
    assert!(
        fs::read(&bak).unwrap() == fixture,
        "{} is not byte-identical to the fixture's kvseal.db",
        bak.display()
    );
}

#[test]
fn migrated_store_has_no_marker_in_plaintext() {
    let (mut s, m) = start_on_fixture();
    // The fixture itself holds them in clear (schema version 1): the scan is not vacuous.
    let fixture = fs::read(fixture_dir().join("kvseal.db")).unwrap();
    for (place, marker) in m.population.markers.all() {
        assert!(
            contains_bytes(&fixture, marker.as_bytes()),
            "the fixture does not hold its {place} marker {marker:?} in clear"
        );
    }
    let scan = |s: &Server, phase: &str| -> Vec<String> {
        let mut hits = Vec::new();
        for name in ["kvseal.db", "kvseal.db-wal", "kvseal.db-shm"] {
            let Ok(bytes) = fs::read(storage_file(s, name)) else {
                continue;
            };
            for (place, marker) in m.population.markers.all() {
                if contains_bytes(&bytes, marker.as_bytes()) {
                    hits.push(format!(
                        "{phase}: the {place} marker {marker:?} is in {name}"
                    ));
                }
            }
        }
        hits
    };
    let mut hits = scan(&s, "running");
    let st = s.stop().expect("running");
    assert!(st.success(), "kvseal exited with {st} on SIGTERM");
    hits.extend(scan(&s, "stopped"));
    {
        let c = db::open(&storage_file(&s, "kvseal.db"));
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .expect("checkpoint");
    }
    hits.extend(scan(&s, "after a WAL checkpoint"));
    assert!(
        hits.is_empty(),
        "the fixture's markers are still in plaintext after migration (free pages and old WAL \
         frames count: they are readable in the file):\n  {}",
        hits.join("\n  ")
    );
}

#[test]
fn second_start_does_not_migrate_again() {
    let (mut s, m) = start_on_fixture();
    s.stop().expect("running");
    let bak = storage_file(&s, "kvseal.db.v1.bak");
    assert!(
        bak.is_file(),
        "no {} after the first start (the migration keeps the original database there)",
        bak.display()
    );
    // Mark it: a second migration would write it again (new mtime or inode).
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    fs::File::options()
        .write(true)
        .open(&bak)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let before = fs::metadata(&bak).unwrap();
    s.start_again(&[200]);
    let errs = populate::check_population(&s.addr, &m.population);
    assert!(errs.is_empty(), "second start:\n  {}", errs.join("\n  "));
    s.stop().expect("running");
    let after = fs::metadata(&bak).unwrap();
    assert_eq!(
        (after.ino(), after.modified().unwrap()),
        (before.ino(), old),
        "the second start rewrote {}",
        bak.display()
    );
    assert!(
        fs::read(&bak).unwrap() == fs::read(fixture_dir().join("kvseal.db")).unwrap(),
        "{} changed on the second start",
        bak.display()
    );
    // The migration writes the current schema (3: 2 and the cubbyhole table).
    assert_eq!(db::user_version(&storage_file(&s, "kvseal.db")), 3);
}

/// Makes `tests/fixtures/store-v1` (run by its `make.sh`; needs `KVSEAL_FIXTURE_OUT` and
/// `KVSEAL_FIXTURE_COMMIT`). Only meaningful with the schema-version-1 kvseal: it refuses to write
/// a store of another version.
#[test]
#[ignore = "generator of tests/fixtures/store-v1: run its make.sh"]
fn make_fixture_store_v1() {
    let out = PathBuf::from(
        std::env::var("KVSEAL_FIXTURE_OUT").expect("KVSEAL_FIXTURE_OUT: the output directory"),
    );
    let commit = std::env::var("KVSEAL_FIXTURE_COMMIT").expect("KVSEAL_FIXTURE_COMMIT");
    fs::create_dir_all(&out).unwrap();
    let _ = fs::remove_dir_all(Path::new(AUDIT_DIR).parent().unwrap());
    fs::create_dir_all(AUDIT_DIR).unwrap();

    // 1. Populate a fresh store with fixed markers.
    let (mut server, audit_dir) = populate::server(Some(Path::new(AUDIT_DIR)));
    server.init();
    let mut pop = populate::populate(&server, &Markers::fixed(), &audit_dir, "fixture");
    pop.row_tags.clear();
    let st = server.stop().expect("running");
    assert!(st.success(), "kvseal exited with {st}");
    let live = server.storage_dir().join("kvseal.db");
    let v = db::user_version(&live);
    assert_eq!(
        v, 1,
        "this kvseal writes schema version {v}: the fixture must be made by the schema-version-1 \
         kvseal (check out the commit named in manifest.json)"
    );

    // 2. No token but root lives beyond 768h in kvseal: move every expiry to 2100 so that the
    //    fixture does not rot (an offline edit of the schema-version-1 store, whose token rows are
    //    plaintext; schema v1's column name, on purpose).
    {
        let c = db::open(&live);
        let n = c
            .execute(
                "UPDATE tokens SET expire_ns = ?1 WHERE expire_ns IS NOT NULL",
                [FIXTURE_EXPIRY_NS],
            )
            .unwrap();
        assert_eq!(n, pop.tokens.len() - 1, "every token but root expires");
    }

    // 3. A consistent single-file copy with `kvseal operator backup`.
    let db_out = out.join("kvseal.db");
    let _ = fs::remove_file(&db_out);
    let o = Command::new(BIN)
        .args(["operator", "backup", "--config"])
        .arg(server.config_file())
        .arg(&db_out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "operator backup: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    for suffix in ["-wal", "-shm"] {
        assert!(
            !out.join(format!("kvseal.db{suffix}")).exists(),
            "the backup left a {suffix} file"
        );
    }
    let key_out = out.join("root.key");
    fs::copy(server.key_file(), &key_out).unwrap();
    assert_eq!(db::user_version(&db_out), 1);

    // 4. What this kvseal serves from the fixture itself (on a copy of it).
    let mut s = start_on(&db_out, &key_out);
    let errs = populate::check_population(&s.addr, &pop);
    assert!(errs.is_empty(), "fixture copy:\n  {}", errs.join("\n  "));
    drop(s);
    s = start_on(&db_out, &key_out);
    let c = Client::new(&s.addr);
    let probes: Vec<Recorded> = populate::probes(&pop)
        .into_iter()
        .map(|probe| {
            let answer = populate::run_probe(&c, &pop, &probe).unwrap();
            Recorded { probe, answer }
        })
        .collect();
    drop(s);
    for suffix in ["-wal", "-shm"] {
        let _ = fs::remove_file(out.join(format!("kvseal.db{suffix}")));
    }

    let version = Command::new(BIN).arg("--version").output().unwrap();
    let m = Manifest {
        made_by: "tests/fixtures/store-v1/make.sh: cargo test --test migration_v1 -- --ignored \
                  --exact make_fixture_store_v1"
            .into(),
        commit,
        kvseal_version: String::from_utf8_lossy(&version.stdout).trim().to_string(),
        schema_version: 1,
        notes: vec![
            "kvseal.db: `kvseal operator backup` of a config-mode store (file seal, key root.key) \
             populated through both APIs by tests/common/populate.rs with Markers::fixed()"
                .into(),
            format!(
                "before the backup, every token's expiry but root's was set to {FIXTURE_EXPIRY_NS} \
                 ns (2100-01-01) offline (kvseal caps token TTLs at 768h; the fixture must not \
                 expire)"
            ),
            format!(
                "the audit device writes under {AUDIT_DIR} (an absolute path is stored; the tests \
                 create it)"
            ),
            "probes: what this kvseal answered to populate::probes on a fresh copy of kvseal.db \
             (normalized: request/error ids, TTLs, plugin version dropped)"
                .into(),
        ],
        audit_dir: AUDIT_DIR.into(),
        population: pop,
        probes,
    };
    fs::write(
        out.join("manifest.json"),
        serde_json::to_string_pretty(&m).unwrap() + "\n",
    )
    .unwrap();
    let total: u64 = ["kvseal.db", "root.key", "manifest.json"]
        .iter()
        .map(|f| fs::metadata(out.join(f)).unwrap().len())
        .sum();
    assert!(total < 200 * 1024, "the fixture is {total} bytes");
    println!("fixture written to {} ({total} bytes)", out.display());
}
