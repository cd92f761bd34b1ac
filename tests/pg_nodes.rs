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

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::pg::PgCluster;
use common::{uid, Http, Resp, Server};
use serde_json::{json, Value};

const CAS_MISMATCH: &str = "check-and-set parameter did not match the current version";

/// How soon a change on one node is in force on the other.
const PROPAGATION: Duration = Duration::from_secs(1);
/// How soon a node sees that another initialised the store (and unseals itself).
const INIT_SEEN: Duration = Duration::from_secs(5);
/// Poll period while waiting for a propagation.
const POLL: Duration = Duration::from_millis(50);

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

// ---------------------------------------------------------------- two nodes

/// Nodes A and B on one database. Fields drop in order: both kvseal processes go before
/// PostgreSQL.
struct Nodes {
    a: Server,
    b: Server,
    /// The OKMS domain both nodes serve (backed by `secret/`).
    okms_id: String,
    root: String,
    pg: PgCluster,
}

/// The `[storage]` table for a database URL.
fn pg_storage(url: &str) -> String {
    format!("type = \"postgresql\"\nconnection_url = \"{url}\"\n")
}

/// Waits until `path` exists (the key file A creates at its first start).
fn wait_for_file(path: &Path, server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.is_file() {
        assert!(
            Instant::now() < deadline,
            "{} not created by the first node\n{}",
            path.display(),
            server.logs()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Starts A (uninitialised: health 501), copies A's key file to B, starts B (501), initialises on
/// A and waits until B unseals itself (health 200, at most 5 s).
fn two_nodes() -> Nodes {
    let pg = PgCluster::start();
    let storage = pg_storage(&pg.url());
    let okms_id = uuid::Uuid::new_v4().to_string();
    let tables = format!("[[okms.domains]]\nid = \"{okms_id}\"\nmount = \"secret\"\n");

    let mut a = Server::config_mode_storage(&storage, &tables, None, &[501]);
    wait_for_file(&a.key_file(), &a);
    let mut b = Server::config_mode_storage(&storage, &tables, Some(&a.key_file()), &[501]);

    let root = a.init();
    let initialised = Instant::now();
    b.token = root.clone();
    loop {
        let r = Http::new(&b.addr, "").get("sys/health");
        if r.status == 200 {
            break;
        }
        let last = (r.status, r.text);
        assert!(
            initialised.elapsed() < INIT_SEEN,
            "B not unsealed {INIT_SEEN:?} after sys/init on A (last health {last:?})\n{}",
            b.logs()
        );
        thread::sleep(POLL);
    }
    for (name, node) in [("A", &a), ("B", &b)] {
        let h = Http::new(&node.addr, "").get("sys/health");
        assert_eq!(h.status, 200, "{name} health: {}", h.text);
        assert_eq!(h.json["initialized"], json!(true), "{name}: {}", h.text);
        assert_eq!(h.json["sealed"], json!(false), "{name}: {}", h.text);
        assert_eq!(h.json["standby"], json!(false), "{name}: {}", h.text);
    }
    Nodes {
        a,
        b,
        okms_id,
        root,
        pg,
    }
}

/// Sends a request and asserts its status; returns the response.
fn expect(http: &Http, method: &str, path: &str, body: Option<&Value>, status: u16) -> Resp {
    let r = http.request(method, path, body);
    assert_eq!(
        r.status, status,
        "{method} /v1/{path} on {}: expected {status}, got {} {}",
        http.base, r.status, r.text
    );
    r
}

/// Polls `probe` every 50 ms until it answers `Ok`, and asserts that this happened less than
/// `limit` after `since`. It keeps polling a while past the limit so that a failure says how late
/// the change came (or that it never came), with the last thing seen.
fn assert_within(
    since: Instant,
    limit: Duration,
    what: &str,
    mut probe: impl FnMut() -> Result<(), String>,
) {
    let give_up = limit + Duration::from_secs(4);
    loop {
        let last = match probe() {
            Ok(()) => {
                let elapsed = since.elapsed();
                assert!(
                    elapsed < limit,
                    "{what}: took {elapsed:?}, the promise is {limit:?}"
                );
                return;
            }
            Err(last) => last,
        };
        assert!(
            since.elapsed() < give_up,
            "{what}: still not the case {give_up:?} later (promise: {limit:?}); last seen: {last}"
        );
        thread::sleep(POLL);
    }
}

/// Tests the status of a response in a probe.
fn status_is(r: &Resp, want: u16) -> Result<(), String> {
    if r.status == want {
        Ok(())
    } else {
        Err(format!("{} {}", r.status, r.text))
    }
}

/// A token of `policies` (no default policy), created with `http` (root).
fn token_with(http: &Http, policies: &[&str]) -> String {
    let r = expect(
        http,
        "POST",
        "auth/token/create",
        Some(&json!({"policies": policies, "no_default_policy": true, "ttl": "1h"})),
        200,
    );
    r.json["auth"]["client_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no auth.client_token in {}", r.text))
        .to_string()
}

// ---------------------------------------------------------------- data

#[test]
fn secret_written_on_a_reads_the_same_on_b() {
    let n = two_nodes();
    let (a, b) = (n.a.http(), n.b.http());
    let key = format!("same-{}", uid());
    let data = json!({"user": "admin", "password": "s3cret", "n": 1});
    assert_eq!(a.put_secret("secret", &key, &data), 1);
    assert_eq!(a.put_secret("secret", &key, &json!({"v": 2})), 2);

    let on_a = expect(&a, "GET", &format!("secret/data/{key}"), None, 200);
    let on_b = expect(&b, "GET", &format!("secret/data/{key}"), None, 200);
    assert_eq!(on_b.json["data"]["data"], json!({"v": 2}), "{}", on_b.text);
    assert_eq!(on_b.json["data"], on_a.json["data"], "current version");

    let v1_b = expect(
        &b,
        "GET",
        &format!("secret/data/{key}?version=1"),
        None,
        200,
    );
    assert_eq!(v1_b.json["data"]["data"], data, "{}", v1_b.text);

    let md_a = expect(&a, "GET", &format!("secret/metadata/{key}"), None, 200);
    let md_b = expect(&b, "GET", &format!("secret/metadata/{key}"), None, 200);
    assert_eq!(md_b.json["data"], md_a.json["data"], "metadata");
    assert_eq!(md_b.json["data"]["current_version"], json!(2));
}

#[test]
fn okms_write_on_b_reads_through_the_vault_api_on_a() {
    let n = two_nodes();
    let path = format!("okms-{}/db", uid());
    let data = json!({"login": "admin", "password": "s3cret"});
    let b = n.b.http();
    let r = b
        .client
        .post(format!("{}/api/{}/v2/secret", n.b.addr, n.okms_id))
        .bearer_auth(&n.root)
        .json(&json!({"path": path, "version": {"data": data}}))
        .send()
        .expect("OKMS create on B");
    let status = r.status().as_u16();
    let text = r.text().unwrap_or_default();
    assert_eq!(status, 200, "OKMS POST v2/secret on B: {text}");

    let on_a = expect(
        &n.a.http(),
        "GET",
        &format!("secret/data/{path}"),
        None,
        200,
    );
    assert_eq!(on_a.json["data"]["data"], data, "{}", on_a.text);
    assert_eq!(on_a.json["data"]["metadata"]["version"], json!(1));

    // And the other way: a Vault write on A is the OKMS secret's next version on B.
    n.a.http()
        .put_secret("secret", &path, &json!({"login": "admin2"}));
    let enc = path.replace('/', "%2F");
    let r = b
        .client
        .get(format!(
            "{}/api/{}/v2/secret/{enc}?includeData=true",
            n.b.addr, n.okms_id
        ))
        .bearer_auth(&n.root)
        .send()
        .expect("OKMS get on B");
    let status = r.status().as_u16();
    let body: Value = r.json().unwrap_or(Value::Null);
    assert_eq!(status, 200, "OKMS GET on B: {body}");
    assert_eq!(body["metadata"]["currentVersion"], json!(2), "{body}");
    assert_eq!(
        body["version"]["data"],
        json!({"login": "admin2"}),
        "{body}"
    );
}

// ---------------------------------------------------------------- check-and-set

const WRITERS: usize = 20;

/// `WRITERS` simultaneous POSTs of `secret/data/<key>` with `cas`, even writers on A, odd on B,
/// each on its own warmed connection. Returns (writer, status, body).
fn cas_race(n: &Nodes, key: &str, cas: u64) -> Vec<(usize, u16, Value)> {
    let barrier = Arc::new(Barrier::new(WRITERS));
    let handles: Vec<_> = (0..WRITERS)
        .map(|i| {
            let node = if i % 2 == 0 { &n.a } else { &n.b };
            let http = Http::new(&node.addr, &node.token);
            expect(&http, "GET", "sys/health", None, 200);
            let barrier = barrier.clone();
            let path = format!("secret/data/{key}");
            let body = json!({"options": {"cas": cas}, "data": {"w": i}});
            thread::spawn(move || {
                barrier.wait();
                let r = http.post(&path, &body);
                (i, r.status, r.json)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// Exactly one 200 (version `cas + 1`), every other answer the 400 check-and-set mismatch, and
/// both nodes read the winner's data.
fn assert_one_winner(n: &Nodes, key: &str, cas: u64, outcomes: &[(usize, u16, Value)]) {
    let winners: Vec<_> = outcomes.iter().filter(|o| o.1 == 200).collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one writer must win, statuses: {:?}",
        outcomes.iter().map(|o| (o.0, o.1)).collect::<Vec<_>>()
    );
    let (winner, _, body) = winners[0];
    assert_eq!(body["data"]["version"], json!(cas + 1), "{body}");
    for (i, status, body) in outcomes.iter().filter(|o| o.1 != 200) {
        assert_eq!(*status, 400, "writer {i}: {body}");
        assert_eq!(body["errors"], json!([CAS_MISMATCH]), "writer {i}: {body}");
    }
    for (name, node) in [("A", &n.a), ("B", &n.b)] {
        let r = expect(
            &node.http(),
            "GET",
            &format!("secret/data/{key}"),
            None,
            200,
        );
        assert_eq!(
            r.json["data"]["data"],
            json!({"w": winner}),
            "{name}: {}",
            r.text
        );
        assert_eq!(r.json["data"]["metadata"]["version"], json!(cas + 1));
    }
}

#[test]
fn cas_race_over_two_nodes_has_exactly_one_winner() {
    let n = two_nodes();
    let a = n.a.http();
    let key = format!("race-{}", uid());
    for v in 1..=3 {
        assert_eq!(a.put_secret("secret", &key, &json!({"w": "init"})), v);
    }
    let outcomes = cas_race(&n, &key, 3);
    assert_one_winner(&n, &key, 3, &outcomes);
}

#[test]
fn cas_zero_race_over_two_nodes_creates_once() {
    let n = two_nodes();
    let key = format!("race-new-{}", uid());
    let outcomes = cas_race(&n, &key, 0);
    assert_one_winner(&n, &key, 0, &outcomes);
}

// ---------------------------------------------------------------- changes in force within 1 s

#[test]
fn token_revoked_on_a_is_refused_on_b_within_1s() {
    let n = two_nodes();
    let (a, b) = (n.a.http(), n.b.http());
    let key = format!("revoked-{}", uid());
    a.put_secret("secret", &key, &json!({"k": "v"}));
    let pol = format!("read-{}", uid());
    expect(
        &a,
        "PUT",
        &format!("sys/policies/acl/{pol}"),
        Some(&json!({"policy": "path \"secret/data/*\" { capabilities = [\"read\"] }"})),
        204,
    );
    let written = Instant::now();
    let token = token_with(&a, &[&pol]);
    let on_b = Http::new(&n.b.addr, &token);
    // B knows (and may cache) the token before the revocation. (A policy written on A is in force
    // on B within 1 s too, not at once.)
    assert_within(
        written,
        PROPAGATION,
        "the new token and policy work on B",
        || status_is(&on_b.get(&format!("secret/data/{key}")), 200),
    );

    expect(
        &a,
        "POST",
        "auth/token/revoke",
        Some(&json!({"token": token})),
        204,
    );
    let revoked = Instant::now();
    assert_within(revoked, PROPAGATION, "revoked token refused on B", || {
        status_is(&on_b.get(&format!("secret/data/{key}")), 403)
    });
    // And it stays refused, for reads and lookups alike.
    expect(&on_b, "GET", &format!("secret/data/{key}"), None, 403);
    expect(&on_b, "GET", "auth/token/lookup-self", None, 403);
    // B's root token still works: the refusal is the token's, not B's.
    expect(&b, "GET", &format!("secret/data/{key}"), None, 200);
}

#[test]
fn policy_narrowed_on_a_applies_on_b_within_1s() {
    let n = two_nodes();
    let a = n.a.http();
    let base = format!("narrow-{}", uid());
    a.put_secret("secret", &format!("{base}/wide/k"), &json!({"k": "wide"}));
    a.put_secret("secret", &format!("{base}/kept/k"), &json!({"k": "kept"}));
    let pol = format!("app-{}", uid());
    let rule = |p: &str| format!("path \"secret/data/{p}/*\" {{ capabilities = [\"read\"] }}");
    expect(
        &a,
        "PUT",
        &format!("sys/policies/acl/{pol}"),
        Some(&json!({"policy": rule(&base)})),
        204,
    );
    let written = Instant::now();
    let token = token_with(&a, &[&pol]);
    let on_b = Http::new(&n.b.addr, &token);
    assert_within(written, PROPAGATION, "the new policy in force on B", || {
        status_is(&on_b.get(&format!("secret/data/{base}/wide/k")), 200)
    });

    // Narrowed to `<base>/kept/*`.
    expect(
        &a,
        "PUT",
        &format!("sys/policies/acl/{pol}"),
        Some(&json!({"policy": rule(&format!("{base}/kept"))})),
        204,
    );
    let narrowed = Instant::now();
    assert_within(
        narrowed,
        PROPAGATION,
        "narrowed policy in force on B",
        || status_is(&on_b.get(&format!("secret/data/{base}/wide/k")), 403),
    );
    // What the narrowed policy still grants, B still allows.
    let r = expect(
        &on_b,
        "GET",
        &format!("secret/data/{base}/kept/k"),
        None,
        200,
    );
    assert_eq!(r.json["data"]["data"], json!({"k": "kept"}));
}

#[test]
fn mount_enabled_on_a_is_served_on_b_within_1s() {
    let n = two_nodes();
    let (a, b) = (n.a.http(), n.b.http());
    let mount = format!("kv-{}", uid());
    // B does not know it yet.
    expect(&b, "GET", &format!("sys/mounts/{mount}"), None, 400);

    expect(
        &a,
        "POST",
        &format!("sys/mounts/{mount}"),
        Some(&json!({"type": "kv-v2"})),
        204,
    );
    let enabled = Instant::now();
    assert_within(enabled, PROPAGATION, "new mount served on B", || {
        status_is(
            &b.post(&format!("{mount}/data/k"), &json!({"data": {"on": "B"}})),
            200,
        )
    });
    let r = expect(&a, "GET", &format!("{mount}/data/k"), None, 200);
    assert_eq!(r.json["data"]["data"], json!({"on": "B"}), "{}", r.text);
}

#[test]
fn mount_disabled_on_a_is_gone_on_b_within_1s() {
    let n = two_nodes();
    let (a, b) = (n.a.http(), n.b.http());
    let mount = format!("kv-{}", uid());
    expect(
        &a,
        "POST",
        &format!("sys/mounts/{mount}"),
        Some(&json!({"type": "kv-v2"})),
        204,
    );
    a.put_secret(&mount, "k", &json!({"k": "v"}));
    assert_within(Instant::now(), PROPAGATION, "new mount served on B", || {
        status_is(&b.get(&format!("{mount}/data/k")), 200)
    });

    expect(&a, "DELETE", &format!("sys/mounts/{mount}"), None, 204);
    let disabled = Instant::now();
    assert_within(disabled, PROPAGATION, "disabled mount gone on B", || {
        let r = b.get(&format!("{mount}/data/k"));
        if r.status == 200 {
            Err(format!("still served: {}", r.text))
        } else {
            // A path under no mount, as Vault answers it.
            let want = json!([format!(
                "no handler for route \"{mount}/data/k\". route entry not found."
            )]);
            if r.status == 404 && r.json["errors"] == want {
                Ok(())
            } else {
                Err(format!("unexpected {} {}", r.status, r.text))
            }
        }
    });
    expect(&b, "GET", &format!("sys/mounts/{mount}"), None, 400);
}

// ---------------------------------------------------------------- key rotation

#[test]
fn after_rotate_on_a_b_reads_secrets_from_before_and_after() {
    let n = two_nodes();
    let (a, b) = (n.a.http(), n.b.http());
    let before = format!("rot-before-{}", uid());
    let after = format!("rot-after-{}", uid());
    a.put_secret("secret", &before, &json!({"t": "before"}));

    expect(&a, "PUT", "sys/rotate", Some(&json!({})), 204);
    let rotated = Instant::now();
    a.put_secret("secret", &after, &json!({"t": "after"}));

    let r = expect(&b, "GET", &format!("secret/data/{before}"), None, 200);
    assert_eq!(r.json["data"]["data"], json!({"t": "before"}), "{}", r.text);
    assert_within(
        rotated,
        PROPAGATION,
        "B reads a secret sealed under the new key",
        || {
            let r = b.get(&format!("secret/data/{after}"));
            status_is(&r, 200)?;
            if r.json["data"]["data"] == json!({"t": "after"}) {
                Ok(())
            } else {
                Err(r.text)
            }
        },
    );
    // B writes too, and A reads it.
    b.put_secret("secret", &after, &json!({"t": "from B"}));
    let r = expect(&a, "GET", &format!("secret/data/{after}"), None, 200);
    assert_eq!(r.json["data"]["data"], json!({"t": "from B"}), "{}", r.text);
}

/// B does not wait for its next poll: a record sealed under a key B has not loaded makes B read the
/// stored keyring again, once, before it answers.
#[test]
fn a_secret_sealed_after_rotate_on_a_reads_on_b_at_once() {
    let n = two_nodes();
    let (a, b) = (n.a.http(), n.b.http());
    let key = format!("rot-now-{}", uid());
    expect(&a, "PUT", "sys/rotate", Some(&json!({})), 204);
    a.put_secret("secret", &key, &json!({"t": "new key"}));
    let r = expect(&b, "GET", &format!("secret/data/{key}"), None, 200);
    assert_eq!(
        r.json["data"]["data"],
        json!({"t": "new key"}),
        "{}",
        r.text
    );
}

/// A key last written on A after a rotation there, written again through B at once: B loads the
/// keyring when the record it updates is sealed under a key it has not loaded.
#[test]
fn a_secret_sealed_after_rotate_on_a_is_updated_on_b_at_once() {
    let n = two_nodes();
    let (a, b) = (n.a.http(), n.b.http());
    let key = format!("rot-write-{}", uid());
    expect(&a, "PUT", "sys/rotate", Some(&json!({})), 204);
    a.put_secret("secret", &key, &json!({"v": 1}));
    b.put_secret("secret", &key, &json!({"v": 2}));
    let r = expect(&a, "GET", &format!("secret/data/{key}"), None, 200);
    assert_eq!(r.json["data"]["data"], json!({"v": 2}), "{}", r.text);
    assert_eq!(
        r.json["data"]["metadata"]["version"],
        json!(2),
        "{}",
        r.text
    );
}

/// `vault secrets enable` on A, then a write through B at once: B reads the mount table again when
/// a path falls under no mount it knows.
#[test]
fn a_mount_enabled_on_a_is_served_on_b_at_once() {
    let n = two_nodes();
    let (a, b) = (n.a.http(), n.b.http());
    let mount = format!("now-{}", uid());
    expect(
        &a,
        "POST",
        &format!("sys/mounts/{mount}"),
        Some(&json!({"type": "kv", "options": {"version": "2"}})),
        204,
    );
    b.put_secret(&mount, "k", &json!({"on": "b"}));
    let r = expect(&a, "GET", &format!("{mount}/data/k"), None, 200);
    assert_eq!(r.json["data"]["data"], json!({"on": "b"}), "{}", r.text);
}

/// `vault policy write` on A, then a token of that policy used on B at once: B reads the policies
/// again when a token names one it does not know.
#[test]
fn a_policy_written_on_a_grants_on_b_at_once() {
    let n = two_nodes();
    let a = n.a.http();
    let key = format!("pol-now-{}", uid());
    a.put_secret("secret", &key, &json!({"k": "v"}));
    let pol = format!("read-now-{}", uid());
    expect(
        &a,
        "PUT",
        &format!("sys/policies/acl/{pol}"),
        Some(&json!({"policy": "path \"secret/data/*\" { capabilities = [\"read\"] }"})),
        204,
    );
    let token = token_with(&a, &[&pol]);
    let on_b = Http::new(&n.b.addr, &token);
    expect(&on_b, "GET", &format!("secret/data/{key}"), None, 200);
}

#[test]
fn key_status_term_on_b_matches_a_within_1s_of_rotate() {
    let n = two_nodes();
    let (a, b) = (n.a.http(), n.b.http());
    let term_a = expect(&a, "GET", "sys/key-status", None, 200).json["data"]["term"].clone();
    let term_b = expect(&b, "GET", "sys/key-status", None, 200).json["data"]["term"].clone();
    assert_eq!(term_b, term_a, "same keyring before any rotation");

    expect(&a, "PUT", "sys/rotate", Some(&json!({})), 204);
    let rotated = Instant::now();
    let new_term = expect(&a, "GET", "sys/key-status", None, 200).json["data"]["term"].clone();
    assert_eq!(
        new_term.as_u64(),
        term_a.as_u64().map(|t| t + 1),
        "one term per rotate on A"
    );
    assert_within(rotated, PROPAGATION, "B's key-status term is A's", || {
        let r = b.get("sys/key-status");
        status_is(&r, 200)?;
        if r.json["data"]["term"] == new_term {
            Ok(())
        } else {
            Err(r.text)
        }
    });
}

// ---------------------------------------------------------------- SIGKILL of a node

/// Writer threads of the load test.
const LOAD_THREADS: usize = 4;
/// Attempts per key in the load: below the default `max_versions` (10), so every version stays.
const WRITES_PER_KEY: usize = 4;

#[test]
fn acknowledged_writes_survive_kill9_of_a() {
    let mut n = two_nodes();
    let prefix = format!("load-{}", uid());
    let stop = Arc::new(AtomicBool::new(false));
    let a_dead = Arc::new(AtomicBool::new(false));
    let acked_total = Arc::new(AtomicUsize::new(0));
    // (key, version) -> data, for every write answered 200; and which node answered.
    type Acks = Vec<(String, u64, Value, &'static str, bool)>;
    let acks: Arc<Mutex<Acks>> = Arc::new(Mutex::new(Vec::new()));

    let handles: Vec<_> = (0..LOAD_THREADS)
        .map(|t| {
            let nodes = [
                ("A", Http::new(&n.a.addr, &n.root)),
                ("B", Http::new(&n.b.addr, &n.root)),
            ];
            let (stop, a_dead, acked_total, acks) = (
                stop.clone(),
                a_dead.clone(),
                acked_total.clone(),
                acks.clone(),
            );
            let prefix = prefix.clone();
            thread::spawn(move || {
                let mut i = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    // Alternate nodes: the load is spread over A and B from every thread.
                    let (name, http) = &nodes[(i + t) % 2];
                    let key = format!("{prefix}/t{t}/k{}", i / WRITES_PER_KEY);
                    let data = json!({"t": t, "i": i});
                    let after_kill = a_dead.load(Ordering::SeqCst);
                    match http.try_request(
                        "POST",
                        &format!("secret/data/{key}"),
                        Some(&json!({"data": data})),
                    ) {
                        Ok((200, text)) => {
                            let v: Value = serde_json::from_str(&text).unwrap();
                            let version = v["data"]["version"]
                                .as_u64()
                                .unwrap_or_else(|| panic!("no data.version in {text}"));
                            acks.lock()
                                .unwrap()
                                .push((key, version, data, name, after_kill));
                            acked_total.fetch_add(1, Ordering::SeqCst);
                        }
                        // Not acknowledged: an answer other than 200 (A dying), or no answer.
                        Ok(_) | Err(_) => thread::sleep(Duration::from_millis(10)),
                    }
                    i += 1;
                }
            })
        })
        .collect();

    // Let the load run on both nodes, then SIGKILL A in the middle of it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked_total.load(Ordering::SeqCst) < 60 {
        assert!(Instant::now() < deadline, "the load makes no progress");
        thread::sleep(Duration::from_millis(20));
    }
    n.a.kill9();
    a_dead.store(true, Ordering::SeqCst);
    let killed_at = acked_total.load(Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked_total.load(Ordering::SeqCst) < killed_at + 40 {
        assert!(
            Instant::now() < deadline,
            "B makes no progress after A was killed\n{}",
            n.b.logs()
        );
        thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::SeqCst);
    for h in handles {
        h.join().unwrap();
    }

    let acks = acks.lock().unwrap();
    let by_a = acks.iter().filter(|x| x.3 == "A").count();
    let by_b_after = acks.iter().filter(|x| x.3 == "B" && x.4).count();
    assert!(by_a > 0, "no write was acknowledged by A before the kill");
    assert!(
        by_b_after > 0,
        "no write was acknowledged by B after the kill"
    );

    // Every acknowledged write reads back on B, at its version, with its data.
    let b = n.b.http();
    let mut latest: BTreeMap<&str, u64> = BTreeMap::new();
    for (key, version, data, node, _) in acks.iter() {
        let r = b.get(&format!("secret/data/{key}?version={version}"));
        assert_eq!(
            r.status, 200,
            "{key} v{version} (acknowledged by {node}) on B: {}",
            r.text
        );
        assert_eq!(
            &r.json["data"]["data"], data,
            "{key} v{version} (acknowledged by {node}) on B"
        );
        let e = latest.entry(key.as_str()).or_default();
        *e = (*e).max(*version);
    }
    for (key, version) in latest {
        let md = expect(&b, "GET", &format!("secret/metadata/{key}"), None, 200);
        let current = md.json["data"]["current_version"].as_u64().unwrap_or(0);
        assert!(
            current >= version,
            "{key}: current_version {current} below an acknowledged version {version}"
        );
    }
    // The kvseal processes are killed before PostgreSQL stops (field order of Nodes).
    let _ = &n.pg;
}

// ---------------------------------------------------------------- moving a mount (sys/remount)

#[test]
fn mount_moved_on_a_is_served_at_its_new_path_on_b_within_1s() {
    let n = two_nodes();
    let (a, b) = (n.a.http(), n.b.http());
    let (from, to) = (format!("kv-{}", uid()), format!("moved-{}", uid()));
    expect(
        &a,
        "POST",
        &format!("sys/mounts/{from}"),
        Some(&json!({"type": "kv-v2"})),
        204,
    );
    assert_eq!(a.put_secret(&from, "k", &json!({"v": 1})), 1);
    assert_eq!(a.put_secret(&from, "k", &json!({"v": 2})), 2);
    assert_within(Instant::now(), PROPAGATION, "new mount served on B", || {
        status_is(&b.get(&format!("{from}/data/k")), 200)
    });

    let r = expect(
        &a,
        "POST",
        "sys/remount",
        Some(&json!({"from": from, "to": to})),
        200,
    );
    let moved = Instant::now();
    let id = r.json["migration_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_within(moved, PROPAGATION, "moved mount served on B", || {
        let r = b.get(&format!("{to}/data/k?version=1"));
        status_is(&r, 200)?;
        if r.json["data"]["data"] == json!({"v": 1}) {
            Ok(())
        } else {
            Err(r.text)
        }
    });
    expect(&b, "GET", &format!("{from}/data/k"), None, 404);
    // The move is recorded in the store: B answers its status too (the CLI may poll either node).
    let r = expect(&b, "GET", &format!("sys/remount/status/{id}"), None, 200);
    assert_eq!(
        r.json["data"]["migration_info"],
        json!({"source_mount": format!("{from}/"), "target_mount": format!("{to}/"),
               "status": "success"}),
        "{}",
        r.text
    );
    // B writes at the new path; A reads it.
    assert_eq!(b.put_secret(&to, "k", &json!({"v": 3})), 3);
    let r = expect(&a, "GET", &format!("{to}/data/k"), None, 200);
    assert_eq!(r.json["data"]["data"], json!({"v": 3}), "{}", r.text);
    // The OKMS domain's mount cannot be moved from either node.
    for node in [&a, &b] {
        let r = expect(
            node,
            "POST",
            "sys/remount",
            Some(&json!({"from": "secret", "to": "elsewhere"})),
            400,
        );
        assert!(r.text.contains("[[okms.domains]]"), "{}", r.text);
    }
}

#[test]
fn racing_moves_of_one_mount_on_two_nodes_have_exactly_one_winner() {
    let n = two_nodes();
    let a = n.a.http();
    let from = format!("kv-{}", uid());
    expect(
        &a,
        "POST",
        &format!("sys/mounts/{from}"),
        Some(&json!({"type": "kv-v2"})),
        204,
    );
    a.put_secret(&from, "k", &json!({"v": "kept"}));
    let b = n.b.http();
    assert_within(Instant::now(), PROPAGATION, "new mount served on B", || {
        status_is(&b.get(&format!("{from}/data/k")), 200)
    });
    let barrier = Arc::new(Barrier::new(WRITERS));
    let handles: Vec<_> = (0..WRITERS)
        .map(|i| {
            let node = if i % 2 == 0 { &n.a } else { &n.b };
            let http = Http::new(&node.addr, &node.token);
            let barrier = barrier.clone();
            let body = json!({"from": from, "to": format!("{from}-to-{i}")});
            thread::spawn(move || {
                barrier.wait();
                let r = http.post("sys/remount", &body);
                (i, r.status, r.json)
            })
        })
        .collect();
    let outcomes: Vec<(usize, u16, Value)> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();
    let winners: Vec<_> = outcomes.iter().filter(|o| o.1 == 200).collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one move must win: {:?}",
        outcomes.iter().map(|o| (o.0, o.1)).collect::<Vec<_>>()
    );
    let want = json!([format!("no matching mount at \"{from}/\"")]);
    for (i, status, body) in outcomes.iter().filter(|o| o.1 != 200) {
        assert_eq!(*status, 400, "mover {i}: {body}");
        assert_eq!(body["errors"], want, "mover {i}: {body}");
    }
    let target = format!("{from}-to-{}", winners[0].0);
    for (name, node) in [("A", &n.a), ("B", &n.b)] {
        let http = node.http();
        assert_within(Instant::now(), PROPAGATION, "the winner's path", || {
            status_is(&http.get(&format!("{target}/data/k")), 200)
        });
        let mounts = expect(&http, "GET", "sys/mounts", None, 200);
        let moved: Vec<&String> = mounts.json["data"]
            .as_object()
            .map(|m| m.keys().filter(|k| k.starts_with(&from)).collect())
            .unwrap_or_default();
        assert_eq!(
            moved,
            [&format!("{target}/")],
            "{name}: one mount, at the winner's path"
        );
    }
}

// ---------------------------------------------------------------- races at start, init and mounts

/// Fresh databases on which two nodes start at the same moment.
const START_RACES: usize = 5;
/// Rounds of two simultaneous `sys/init`, each on a fresh database.
const INIT_RACES: usize = 3;
/// Mounts enabled at the same moment, split over A and B.
const MOUNTS: usize = 10;

/// A seal key file made beforehand (32 random bytes in base64, mode 0600, as `openssl rand -base64
/// 32` makes it), for nodes started together: with no key file, each would make a key of its own.
fn premade_key_file(dir: &Path) -> std::path::PathBuf {
    use base64::Engine as _;
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut key = [0u8; 32];
    openssl::rand::rand_bytes(&mut key).unwrap();
    let path = dir.join("shared.key");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    let text = base64::engine::general_purpose::STANDARD.encode(key);
    writeln!(f, "{text}").unwrap();
    path
}

/// `PUT /v1/sys/init` (one share) without a token; returns (status, body).
fn put_init(http: &Http) -> (u16, Value) {
    let r = http
        .client
        .put(format!("{}/v1/sys/init", http.base))
        .json(&json!({"secret_shares": 1, "secret_threshold": 1}))
        .send()
        .unwrap_or_else(|e| panic!("PUT {}/v1/sys/init: {e}", http.base));
    let status = r.status().as_u16();
    let text = r.text().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(json!(text)))
}

/// Waits until `node` answers health 200 (unsealed), at most [`INIT_SEEN`] after `since`.
fn assert_unsealed_within_init_seen(name: &str, node: &Server, since: Instant) {
    let health = Http::new(&node.addr, "");
    assert_within(
        since,
        INIT_SEEN,
        &format!("{name} unsealed after sys/init"),
        || {
            let r = health.get("sys/health");
            status_is(&r, 200)?;
            if r.json["sealed"] == json!(false) && r.json["standby"] == json!(false) {
                Ok(())
            } else {
                Err(r.text)
            }
        },
    );
}

/// `token` works on both nodes: each writes a secret the other reads.
fn assert_token_serves_both(a: &Server, b: &Server, token: &str) {
    let (on_a, on_b) = (Http::new(&a.addr, token), Http::new(&b.addr, token));
    expect(&on_a, "GET", "auth/token/lookup-self", None, 200);
    expect(&on_b, "GET", "auth/token/lookup-self", None, 200);
    for (writer, reader, who) in [(&on_a, &on_b, "A"), (&on_b, &on_a, "B")] {
        let key = format!("from-{who}-{}", uid());
        writer.put_secret("secret", &key, &json!({"by": who}));
        let r = expect(reader, "GET", &format!("secret/data/{key}"), None, 200);
        assert_eq!(r.json["data"]["data"], json!({"by": who}), "{}", r.text);
    }
}

#[test]
fn two_nodes_starting_at_once_on_an_empty_database_both_come_up() {
    let pg = PgCluster::start();
    let keys = tempfile::tempdir().unwrap();
    let key = premade_key_file(keys.path());
    for round in 0..START_RACES {
        let storage = pg_storage(&pg.new_database());
        // Both spawned after one barrier: neither waits for the other's start.
        let barrier = Arc::new(Barrier::new(2));
        let starts: Vec<_> = (0..2)
            .map(|_| {
                let (barrier, storage, key) = (barrier.clone(), storage.clone(), key.clone());
                thread::spawn(move || {
                    barrier.wait();
                    Server::config_mode_storage(&storage, "", Some(&key), &[501])
                })
            })
            .collect();
        let mut nodes: Vec<Server> = starts
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    panic!("round {round}: a node did not come up (its logs are above)")
                })
            })
            .collect();
        for (name, node) in [("A", &nodes[0]), ("B", &nodes[1])] {
            let h = Http::new(&node.addr, "").get("sys/health");
            assert_eq!(h.status, 501, "round {round}, {name}: {}", h.text);
            assert_eq!(
                h.json["initialized"],
                json!(false),
                "round {round}: {}",
                h.text
            );
        }

        // Initialised on one (A, then B, in turn): both unsealed within 5 s.
        let first = round % 2;
        let root = nodes[first].init();
        let initialised = Instant::now();
        for (i, node) in nodes.iter_mut().enumerate() {
            let name = format!("round {round}, {}", ["A", "B"][i]);
            assert_unsealed_within_init_seen(&name, node, initialised);
            node.token = root.clone();
        }
        assert_token_serves_both(&nodes[0], &nodes[1], &root);
    }
}

#[test]
fn concurrent_init_on_two_nodes_has_one_winner() {
    let pg = PgCluster::start();
    for round in 0..INIT_RACES {
        let storage = pg_storage(&pg.new_database());
        let a = Server::config_mode_storage(&storage, "", None, &[501]);
        wait_for_file(&a.key_file(), &a);
        let b = Server::config_mode_storage(&storage, "", Some(&a.key_file()), &[501]);

        let barrier = Arc::new(Barrier::new(2));
        let inits: Vec<_> = [("A", &a), ("B", &b)]
            .into_iter()
            .map(|(name, node)| {
                let http = Http::new(&node.addr, "");
                // An open connection each, so that both requests leave at the barrier.
                expect(&http, "GET", "sys/health", None, 501);
                let barrier = barrier.clone();
                thread::spawn(move || {
                    barrier.wait();
                    let (status, body) = put_init(&http);
                    (name, status, body)
                })
            })
            .collect();
        let outcomes: Vec<_> = inits.into_iter().map(|h| h.join().unwrap()).collect();
        let done = Instant::now();

        let winners: Vec<_> = outcomes.iter().filter(|o| o.1 == 200).collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one sys/init must succeed; got {outcomes:?}"
        );
        let (winner, _, body) = winners[0];
        let root = body["root_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| panic!("round {round}: no root_token from {winner}: {body}"))
            .to_string();
        let (loser, status, body) = outcomes.iter().find(|o| o.1 != 200).unwrap();
        assert_eq!(
            (*status, body),
            (400, &json!({"errors": ["Vault is already initialized"]})),
            "round {round}: the loser {loser}'s answer"
        );

        assert_unsealed_within_init_seen(&format!("round {round}, A"), &a, done);
        assert_unsealed_within_init_seen(&format!("round {round}, B"), &b, done);
        assert_token_serves_both(&a, &b, &root);
    }
}

#[test]
fn mounts_enabled_at_once_on_two_nodes_all_exist() {
    let n = two_nodes();
    let tag = uid();
    let names: Vec<String> = (0..MOUNTS).map(|i| format!("kv{i}-{tag}")).collect();
    let on = |i: usize| {
        if i.is_multiple_of(2) {
            ("A", &n.a)
        } else {
            ("B", &n.b)
        }
    };

    let barrier = Arc::new(Barrier::new(MOUNTS));
    let enables: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, mount)| {
            let (node, server) = on(i);
            let http = server.http();
            expect(&http, "GET", "sys/health", None, 200);
            let (barrier, mount) = (barrier.clone(), mount.clone());
            thread::spawn(move || {
                barrier.wait();
                let r = http.post(&format!("sys/mounts/{mount}"), &json!({"type": "kv-v2"}));
                (mount, node, r.status, r.text)
            })
        })
        .collect();
    let outcomes: Vec<_> = enables.into_iter().map(|h| h.join().unwrap()).collect();
    let enabled = Instant::now();
    let failed: Vec<_> = outcomes.iter().filter(|o| o.2 != 204).collect();
    assert!(
        failed.is_empty(),
        "mounts not enabled (want 204): {failed:?}"
    );

    // Every mount listed by both nodes within 1 s, as a kv version 2 mount.
    for (name, node) in [("A", &n.a), ("B", &n.b)] {
        let http = node.http();
        assert_within(
            enabled,
            PROPAGATION,
            &format!("all {MOUNTS} mounts listed by GET sys/mounts on {name}"),
            || {
                let r = http.get("sys/mounts");
                status_is(&r, 200)?;
                let missing: Vec<_> = names
                    .iter()
                    .filter(|m| {
                        let e = &r.json["data"][format!("{m}/")];
                        e["type"] != json!("kv") || e["options"]["version"] != json!("2")
                    })
                    .collect();
                if missing.is_empty() {
                    Ok(())
                } else {
                    Err(format!("missing or not kv v2: {missing:?} in {}", r.text))
                }
            },
        );
    }

    // Each serves: written on the node that did not enable it, read on the one that did.
    for (i, mount) in names.iter().enumerate() {
        let (_, enabler) = on(i);
        let (_, other) = on(i + 1);
        let data = json!({"mount": mount});
        assert_eq!(other.http().put_secret(mount, "k", &data), 1, "{mount}");
        let r = expect(
            &enabler.http(),
            "GET",
            &format!("{mount}/data/k"),
            None,
            200,
        );
        assert_eq!(r.json["data"]["data"], data, "{mount}: {}", r.text);
    }
}

// ---------------------------------------------------------------- online snapshot restore

/// `POST sys/storage/raft/snapshot` on A (`bao operator raft snapshot restore`): A serves the
/// snapshot at once, and B within 1 s: the data, the tokens (one created after the snapshot is
/// gone on both) and the keyring (rotated after the snapshot: both go back to key 1, and what
/// either writes next the other reads).
#[test]
fn snapshot_restored_on_a_is_served_on_b_within_1s() {
    let n = two_nodes();
    let (a, b) = (n.a.http(), n.b.http());
    let (kept, changed, added) = (
        format!("kept-{}", uid()),
        format!("changed-{}", uid()),
        format!("added-{}", uid()),
    );
    a.put_secret("secret", &kept, &json!({"v": "1"}));
    a.put_secret("secret", &changed, &json!({"v": "1"}));
    let saved = a
        .client
        .get(format!("{}/v1/sys/storage/raft/snapshot", a.base))
        .header("X-Vault-Token", &a.token)
        .send()
        .unwrap();
    assert_eq!(saved.status().as_u16(), 200, "snapshot save");
    let archive = saved.bytes().unwrap().to_vec();

    expect(&a, "PUT", "sys/rotate", Some(&json!({})), 204);
    a.put_secret("secret", &changed, &json!({"v": "2"}));
    a.put_secret("secret", &added, &json!({"v": "1"}));
    let r = expect(
        &a,
        "POST",
        "auth/token/create",
        Some(&json!({"ttl": "1h"})),
        200,
    );
    let late = r.json["auth"]["client_token"].as_str().unwrap().to_string();
    let created = Instant::now();
    expect(
        &Http::new(&n.a.addr, &late),
        "GET",
        "auth/token/lookup-self",
        None,
        200,
    );
    assert_within(created, PROPAGATION, "the new token works on B", || {
        status_is(
            &Http::new(&n.b.addr, &late).get("auth/token/lookup-self"),
            200,
        )
    });

    let restored = a
        .client
        .post(format!("{}/v1/sys/storage/raft/snapshot", a.base))
        .header("X-Vault-Token", &a.token)
        .body(archive)
        .send()
        .unwrap();
    let status = restored.status().as_u16();
    assert_eq!(
        status,
        204,
        "restore: {}",
        restored.text().unwrap_or_default()
    );
    let at = Instant::now();

    // (key, latest version's v on every node afterwards, or 404)
    let want = [(&kept, Ok("1")), (&changed, Ok("1")), (&added, Err(404))];
    let serves = |http: &Http| -> Result<(), String> {
        for (key, v) in &want {
            let r = http.get(&format!("secret/data/{key}"));
            let got = match r.status {
                200 => Ok(r.json["data"]["data"]["v"]
                    .as_str()
                    .unwrap_or("?")
                    .to_string()),
                s => Err(s),
            };
            if got.as_deref().map_err(|s| *s) != *v {
                return Err(format!("secret/{key}: {got:?}, want {v:?}"));
            }
        }
        Ok(())
    };
    serves(&a).unwrap_or_else(|e| panic!("A right after the restore: {e}"));
    assert_within(at, PROPAGATION, "B serves the restored data", || serves(&b));
    assert_within(
        at,
        PROPAGATION,
        "B refuses a token created after the snapshot",
        || {
            status_is(
                &Http::new(&n.b.addr, &late).get("auth/token/lookup-self"),
                403,
            )
        },
    );
    let r = expect(&b, "GET", "sys/key-status", None, 200);
    assert_eq!(r.json["term"], json!(1), "{}", r.text);

    // Both nodes take writes again, each read by the other.
    b.put_secret("secret", &added, &json!({"v": "from B"}));
    let r = expect(&a, "GET", &format!("secret/data/{added}"), None, 200);
    assert_eq!(r.json["data"]["data"]["v"], json!("from B"), "{}", r.text);
    a.put_secret("secret", &kept, &json!({"v": "from A"}));
    let r = expect(&b, "GET", &format!("secret/data/{kept}"), None, 200);
    assert_eq!(r.json["data"]["data"]["v"], json!("from A"), "{}", r.text);
}

/// A node with the Shamir seal on the PostgreSQL database `url` (the shared helpers know the file
/// seal only), killed when dropped.
struct ShamirNode {
    _dir: tempfile::TempDir,
    addr: String,
    child: std::process::Child,
}

impl ShamirNode {
    /// Starts it and waits until `sys/health` answers one of `accept`.
    fn start(url: &str, accept: &[u16]) -> ShamirNode {
        let dir = tempfile::tempdir().unwrap();
        let port = common::free_port();
        let config = dir.path().join("kvseal.toml");
        std::fs::write(
            &config,
            format!(
                "[listener]\naddress = \"127.0.0.1:{port}\"\ntls_disable = true\n\n[storage]\n{}\n[seal]\ntype = \"shamir\"\n",
                pg_storage(url)
            ),
        )
        .unwrap();
        let child = Command::new(common::BIN)
            .args(["server", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let node = ShamirNode {
            _dir: dir,
            addr: format!("http://127.0.0.1:{port}"),
            child,
        };
        let deadline = Instant::now() + common::READY_TIMEOUT;
        let mut last = None;
        while !last.is_some_and(|s| accept.contains(&s)) {
            assert!(
                Instant::now() < deadline,
                "health {last:?}, want {accept:?}"
            );
            thread::sleep(POLL);
            last = common::raw_get_status(&format!("127.0.0.1:{port}"), "/v1/sys/health").or(last);
        }
        node
    }

    fn http(&self, token: &str) -> Http {
        Http::new(&self.addr, token)
    }

    /// Initialises the store with one unseal key share: (the share, the root token).
    fn init(&self) -> (String, String) {
        let body = json!({"secret_shares": 1, "secret_threshold": 1});
        let r = expect(&self.http(""), "PUT", "sys/init", Some(&body), 200);
        let key = r.json["keys_base64"][0].as_str().unwrap().to_string();
        (key, r.json["root_token"].as_str().unwrap().to_string())
    }

    fn unseal(&self, key: &str) -> Resp {
        self.http("")
            .request("PUT", "sys/unseal", Some(&json!({ "key": key })))
    }

    fn sealed(&self) -> Result<(), String> {
        let r = self.http("").get("sys/seal-status");
        match r.json["sealed"].as_bool() {
            Some(true) => Ok(()),
            _ => Err(format!("{} {}", r.status, r.text)),
        }
    }
}

impl Drop for ShamirNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `snapshot-force` of another store on A, with the Shamir seal: A installs it and seals at once,
/// B seals within 1 s (Vault seals every node), and the other store's unseal key unseals each; the
/// old key no longer does.
#[test]
fn forced_restore_of_another_store_seals_every_node() {
    let pg = PgCluster::start();
    let a = ShamirNode::start(&pg.url(), &[501]);
    let (key, root) = a.init();
    let b = ShamirNode::start(&pg.url(), &[503]);
    for node in [&a, &b] {
        let r = node.unseal(&key);
        assert_eq!(
            (r.status, &r.json["sealed"]),
            (200, &json!(false)),
            "{}",
            r.text
        );
    }
    a.http(&root)
        .put_secret("secret", "app", &json!({"v": "ours"}));

    let other = ShamirNode::start(&pg.new_database(), &[501]);
    let (other_key, other_root) = other.init();
    let r = other.unseal(&other_key);
    assert_eq!(r.status, 200, "{}", r.text);
    let o = other.http(&other_root);
    o.put_secret("secret", "app", &json!({"v": "theirs"}));
    let saved = o
        .client
        .get(format!("{}/v1/sys/storage/raft/snapshot", o.base))
        .header("X-Vault-Token", &o.token)
        .send()
        .unwrap();
    assert_eq!(saved.status().as_u16(), 200, "snapshot save");
    let archive = saved.bytes().unwrap().to_vec();
    drop(other);

    let post = |path: &str| {
        let r = a
            .http(&root)
            .client
            .post(format!("{}/v1/{path}", a.addr))
            .header("X-Vault-Token", &root)
            .body(archive.clone())
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    let (status, text) = post("sys/storage/raft/snapshot");
    assert_eq!(status, 400, "{text}");
    assert!(
        text.contains("possibly the snapshot is using a different set of unseal keys"),
        "{text}"
    );
    let r = expect(&b.http(&root), "GET", "secret/data/app", None, 200);
    assert_eq!(
        r.json["data"]["data"]["v"],
        json!("ours"),
        "refused: nothing changed"
    );

    assert_eq!(
        post("sys/storage/raft/snapshot-force"),
        (204, String::new())
    );
    let at = Instant::now();
    a.sealed()
        .unwrap_or_else(|e| panic!("A is sealed when the restore answers: {e}"));
    assert_within(at, PROPAGATION, "B seals", || b.sealed());

    for node in [&a, &b] {
        let r = node.unseal(&key);
        assert_eq!(r.status, 400, "the old key: {}", r.text);
        let r = node.unseal(&other_key);
        assert_eq!(
            (r.status, &r.json["sealed"]),
            (200, &json!(false)),
            "{}",
            r.text
        );
        let r = expect(&node.http(&other_root), "GET", "secret/data/app", None, 200);
        assert_eq!(r.json["data"]["data"]["v"], json!("theirs"), "{}", r.text);
        expect(
            &node.http(&root),
            "GET",
            "auth/token/lookup-self",
            None,
            403,
        );
    }
}
