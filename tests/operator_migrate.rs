//! `kvseal operator migrate` copies a store between SQLite and PostgreSQL, and a snapshot taken from
//! one backend restores into the other: every key's metadata and every version read back the same,
//! tokens and policies work, a target that holds anything is refused with nothing written.
//!
//! Real PostgreSQL (`common::pg`), the real binary, requests over HTTP.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::pg::PgCluster;
use common::{free_port, raw_get_status, Http, Server, BIN, READY_TIMEOUT};
use serde_json::{json, Value};

/// A kvseal configuration (file seal, plain HTTP on a port of its own).
struct Conf {
    path: PathBuf,
    port: u16,
    key_file: PathBuf,
    logs: PathBuf,
}

/// `[storage]` of a SQLite store in `dir`.
fn sqlite_storage(dir: &Path) -> String {
    format!("path = \"{}\"", dir.display())
}

/// `[storage]` of a PostgreSQL store.
fn pg_storage(url: &str) -> String {
    format!("type = \"postgresql\"\nconnection_url = \"{url}\"")
}

/// Writes `<dir>/<name>.toml` with `storage` as its `[storage]` body and `<dir>/<name>/root.key` as
/// its key file, copied from `key_from` when given (the operator carries the seal key over).
fn conf(dir: &Path, name: &str, storage: &str, key_from: Option<&Path>) -> Conf {
    let own = dir.join(name);
    std::fs::create_dir_all(&own).unwrap();
    let key_file = own.join("root.key");
    if let Some(src) = key_from {
        std::fs::copy(src, &key_file)
            .unwrap_or_else(|e| panic!("copying the key file {}: {e}", src.display()));
    }
    let port = free_port();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "[listener]\naddress = \"127.0.0.1:{port}\"\ntls_disable = true\n\n[storage]\n{storage}\n\n\
             [seal]\ntype = \"file\"\nkey_file = \"{}\"\n\n[log]\nlevel = \"warn\"\n",
            key_file.display()
        ),
    )
    .unwrap();
    Conf {
        path,
        port,
        key_file,
        logs: own.join("stderr.log"),
    }
}

/// A kvseal server on a [`Conf`], killed on drop.
struct Node {
    child: Child,
    addr: String,
    logs: PathBuf,
}

impl Node {
    /// Starts `kvseal server --config` and waits until `sys/health` answers one of `accept`.
    fn start(conf: &Conf, accept: &[u16]) -> Node {
        let log = std::fs::File::create(&conf.logs).unwrap();
        let child = Command::new(BIN)
            .arg("server")
            .arg("--config")
            .arg(&conf.path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let mut node = Node {
            child,
            addr: format!("http://127.0.0.1:{}", conf.port),
            logs: conf.logs.clone(),
        };
        node.wait_health(accept);
        node
    }

    fn wait_health(&mut self, accept: &[u16]) {
        let host = self.addr.trim_start_matches("http://").to_string();
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = None;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("kvseal exited with {status}:\n{}", self.logs());
            }
            last = raw_get_status(&host, "/v1/sys/health").or(last);
            if last.is_some_and(|s| accept.contains(&s)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "kvseal at {} answers health {last:?}, want one of {accept:?}:\n{}",
            self.addr,
            self.logs()
        );
    }

    /// `PUT sys/init` (one share); returns the root token once the node is unsealed.
    fn init(&mut self) -> String {
        let r = Http::new(&self.addr, "").request(
            "PUT",
            "sys/init",
            Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
        );
        assert_eq!(r.status, 200, "PUT sys/init: {}", r.text);
        self.wait_health(&[200]);
        r.json["root_token"].as_str().unwrap().to_string()
    }

    fn http(&self, token: &str) -> Http {
        Http::new(&self.addr, token)
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.logs).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("----- kvseal at {} -----\n{}", self.addr, self.logs());
        }
    }
}

/// `kvseal operator ARGS`: (success, stdout, stderr).
fn operator(args: &[&Path]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .arg("operator")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn migrate(from: &Path, to: &Path) -> (bool, String, String) {
    operator(&[
        Path::new("migrate"),
        Path::new("--from-config"),
        from,
        Path::new("--to-config"),
        to,
    ])
}

/// Asserts a migration succeeded and said what it copied and how the seal key goes along.
fn assert_migrated((ok, out, err): (bool, String, String)) {
    assert!(ok, "migrate failed:\n{out}{err}");
    for words in [
        "secrets: ",
        "versions: ",
        "tokens: ",
        "facts: ",
        "Verified: the target holds every row of the source",
        "The seal key is unchanged",
    ] {
        assert!(out.contains(words), "no {words:?} in the output:\n{out}");
    }
}

/// The keys [`populate`] writes (mount, path).
const KEYS: [(&str, &str); 4] = [
    ("secret", "app/db"),
    ("secret", "app/api"),
    ("secret", "top"),
    ("team", "x/y"),
];

/// A request and the status it must get (every setup call checks its answer).
fn send(http: &Http, method: &str, path: &str, body: Value, status: u16) -> Value {
    let r = http.request(method, path, Some(&body));
    assert_eq!(r.status, status, "{method} {path}: {}", r.text);
    r.json
}

/// Fills a store through the API as root: several keys with several versions each, a deleted
/// version, a destroyed version, a soft-deleted latest version, custom metadata and key settings, a
/// second kv-v2 mount, a policy and a token limited by it. Returns the token.
fn populate(root: &Http) -> String {
    send(
        root,
        "POST",
        "sys/mounts/team",
        json!({"type": "kv", "options": {"version": "2"}, "description": "the team's"}),
        204,
    );
    for (mount, path) in KEYS {
        for n in 1..=3 {
            root.put_secret(mount, path, &json!({"v": format!("{mount}/{path} #{n}")}));
        }
    }
    send(
        root,
        "POST",
        "secret/metadata/app/db",
        json!({"custom_metadata": {"owner": "ops", "tier": "1"}, "max_versions": 7}),
        204,
    );
    send(
        root,
        "POST",
        "secret/delete/app/db",
        json!({"versions": [2]}),
        204,
    );
    send(
        root,
        "POST",
        "secret/destroy/app/db",
        json!({"versions": [1]}),
        204,
    );
    send(root, "DELETE", "secret/data/top", json!({}), 204);
    send(
        root,
        "POST",
        "team/metadata/x/y",
        json!({"cas_required": true, "delete_version_after": "300h"}),
        204,
    );
    send(
        root,
        "PUT",
        "sys/policies/acl/reader",
        json!({"policy": "path \"secret/data/app/*\" { capabilities = [\"read\"] }"}),
        204,
    );
    let t = send(
        root,
        "POST",
        "auth/token/create",
        json!({"policies": ["reader"], "display_name": "migrated"}),
        200,
    );
    t["auth"]["client_token"].as_str().unwrap().to_string()
}

/// One answer of a [`view`]: the request, its status and its body without `request_id`.
type Seen = (String, u16, Value);

fn seen(http: &Http, method: &str, path: &str) -> Seen {
    let r = http.request(method, path, None);
    let mut body = r.json;
    if let Some(o) = body.as_object_mut() {
        o.remove("request_id");
    }
    (format!("{method} {path}"), r.status, body)
}

/// What the server answers about everything [`populate`] wrote: the mount table, the listings, the
/// policy, and for each key its metadata and every version it has numbered (and the one after).
fn view(root: &Http) -> Vec<Seen> {
    let mut all = vec![
        seen(root, "GET", "sys/mounts"),
        seen(root, "GET", "sys/policies/acl/reader"),
        seen(root, "LIST", "secret/metadata/"),
        seen(root, "LIST", "secret/metadata/app/"),
        seen(root, "LIST", "team/metadata/x/"),
    ];
    for (mount, path) in KEYS {
        let meta = seen(root, "GET", &format!("{mount}/metadata/{path}"));
        assert_eq!(meta.1, 200, "{}: {}", meta.0, meta.2);
        let current = meta.2["data"]["current_version"].as_u64().unwrap();
        all.push(meta);
        for v in 1..=current + 1 {
            all.push(seen(
                root,
                "GET",
                &format!("{mount}/data/{path}?version={v}"),
            ));
        }
    }
    all
}

/// The statuses the population must show (so that two views compared equal are not two views of
/// nothing): (request, status).
const EXPECTED: [(&str, u16); 7] = [
    ("GET secret/data/app/db?version=1", 404), // destroyed
    ("GET secret/data/app/db?version=2", 404), // deleted
    ("GET secret/data/app/db?version=3", 200),
    ("GET secret/data/top?version=3", 404), // the latest, deleted
    ("GET secret/data/top?version=2", 200),
    ("GET team/data/x/y?version=3", 200),
    ("GET team/data/x/y?version=4", 404), // never written
];

fn assert_population(v: &[Seen]) {
    for (req, status) in EXPECTED {
        let got = v
            .iter()
            .find(|s| s.0 == req)
            .unwrap_or_else(|| panic!("{req} not seen"));
        assert_eq!(got.1, status, "{req}: {}", got.2);
    }
    let meta = &v
        .iter()
        .find(|s| s.0 == "GET secret/metadata/app/db")
        .unwrap()
        .2;
    assert_eq!(
        meta["data"]["custom_metadata"],
        json!({"owner": "ops", "tier": "1"})
    );
    assert_eq!(meta["data"]["versions"]["1"]["destroyed"], true);
}

/// Two views answer the same, request by request.
fn assert_same_view(want: &[Seen], got: &[Seen], what: &str) {
    assert_eq!(want.len(), got.len(), "{what}: not the same requests");
    for (w, g) in want.iter().zip(got) {
        assert_eq!(w, g, "{what}: {} answers differently", w.0);
    }
}

/// The limited token reads what its policy allows and nothing else: (method, path, status).
fn assert_token_works(http: &Http) {
    let cases = [
        ("GET", "secret/data/app/api", 200),
        ("GET", "secret/data/app/db", 200),
        ("POST", "secret/data/app/api", 403),
        ("GET", "team/data/x/y", 403),
        ("GET", "sys/policies/acl/reader", 403),
    ];
    for (method, path, status) in cases {
        let body = (method == "POST").then(|| json!({"data": {"v": "no"}}));
        let r = http.request(method, path, body.as_ref());
        assert_eq!(
            r.status, status,
            "limited token: {method} {path}: {}",
            r.text
        );
    }
    let me = http.get("auth/token/lookup-self");
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json["data"]["display_name"], "token-migrated");
    assert_eq!(me.json["data"]["policies"], json!(["default", "reader"]));
}

#[test]
fn sqlite_to_postgresql_to_sqlite_keeps_every_version_and_metadata() {
    let mut source = Server::config_mode();
    let root = source.init();
    let limited = populate(&source.http());
    let before = view(&source.http());
    assert_population(&before);
    assert_token_works(&Http::new(&source.addr, &limited));
    source.kill9();

    let pg = PgCluster::start();
    let work = tempfile::tempdir().unwrap();
    let on_pg = conf(
        work.path(),
        "pg",
        &pg_storage(&pg.url()),
        Some(&source.key_file()),
    );
    assert_migrated(migrate(&source.config_file(), &on_pg.path));
    {
        let node = Node::start(&on_pg, &[200]);
        assert_same_view(&before, &view(&node.http(&root)), "on PostgreSQL");
        assert_token_works(&node.http(&limited));
    }

    let back = conf(
        work.path(),
        "sqlite-again",
        &sqlite_storage(&work.path().join("sqlite-again/storage")),
        Some(&on_pg.key_file),
    );
    assert_migrated(migrate(&on_pg.path, &back.path));
    let node = Node::start(&back, &[200]);
    assert_same_view(&before, &view(&node.http(&root)), "back on SQLite");
    assert_token_works(&node.http(&limited));
}

#[test]
fn migrate_copies_many_pages_byte_for_byte_whatever_the_paths() {
    // A store initialised by kvseal, then given thousands of rows written straight into the file:
    // a migration neither opens nor checks them, it copies them as they lie.
    let mut source = Server::config_mode();
    source.init();
    source.kill9();
    let db = source.storage_dir().join("kvseal.db");
    {
        let c = common::db::open(&db);
        let tx = c.unchecked_transaction().unwrap();
        let paths = ["a/", "a.", "a0", "a b/", "é/", "\u{10FFFF}", "z"];
        for i in 0..2500u32 {
            let path = format!("{}{i}", paths[i as usize % paths.len()]);
            let mount = [1i64, 2, 1000][i as usize % 3];
            tx.execute(
                "INSERT INTO secrets (mount_id, path, key_id, sealed) VALUES (?1, ?2, 1, ?3)",
                rusqlite::params![mount, path, i.to_be_bytes()],
            )
            .unwrap();
            tx.execute(
                "INSERT INTO versions (mount_id, path, version, key_id, nonce, ciphertext)
                 VALUES (?1, ?2, ?3, 1, ?4, ?5)",
                rusqlite::params![mount, path, i % 4 + 1, [i as u8; 24], i.to_le_bytes()],
            )
            .unwrap();
            tx.execute(
                "INSERT INTO tokens (hash, accessor, parent, key_id, sealed) VALUES (?1, ?2, ?3, 1, ?4)",
                rusqlite::params![
                    format!("h{i}").into_bytes(),
                    format!("a{i}").into_bytes(),
                    (i % 2 == 0).then(|| b"h0".to_vec()),
                    vec![0u8; (i % 7) as usize],
                ],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    let before = common::db::snapshot(&db);

    let pg = PgCluster::start();
    let work = tempfile::tempdir().unwrap();
    let on_pg = conf(
        work.path(),
        "pg",
        &pg_storage(&pg.url()),
        Some(&source.key_file()),
    );
    assert_migrated(migrate(&source.config_file(), &on_pg.path));
    assert_eq!(
        pg.psql("SELECT (SELECT count(*) FROM secrets) || ' ' || (SELECT count(*) FROM versions)"),
        "2500 2500"
    );
    let back_dir = work.path().join("back/storage");
    let back = conf(work.path(), "back", &sqlite_storage(&back_dir), None);
    assert_migrated(migrate(&on_pg.path, &back.path));
    let after = common::db::snapshot(&back_dir.join("kvseal.db"));
    assert_eq!(before.len(), after.len());
    for ((k1, (_, c1)), (k2, (_, c2))) in before.iter().zip(&after) {
        assert_eq!((k1, c1), (k2, c2), "a row changed on the way");
    }
}

/// Every row of the kvseal tables and the change generation, as one line (psql).
const FINGERPRINT: &str = "SELECT concat_ws(' | ',
    (SELECT value FROM kvseal_info WHERE key = 'generation'),
    (SELECT md5(string_agg(key || encode(value, 'hex'), ',' ORDER BY key)) FROM kvseal_meta),
    (SELECT md5(string_agg(mount_id || path || key_id || encode(sealed, 'hex'), ','
        ORDER BY mount_id, path)) FROM secrets),
    (SELECT md5(string_agg(mount_id || path || version || key_id || encode(nonce, 'hex')
        || encode(ciphertext, 'hex'), ',' ORDER BY mount_id, path, version)) FROM versions),
    (SELECT md5(string_agg(encode(hash, 'hex') || encode(sealed, 'hex'), ',' ORDER BY hash))
        FROM tokens))";

#[test]
fn migrate_refuses_a_non_empty_target() {
    let mut source = Server::config_mode();
    source.init();
    source
        .http()
        .put_secret("secret", "from-source", &json!({"v": "s"}));
    source.kill9();

    let pg = PgCluster::start();
    let work = tempfile::tempdir().unwrap();
    let target = conf(work.path(), "target", &pg_storage(&pg.url()), None);
    let root = {
        let mut node = Node::start(&target, &[501]);
        let root = node.init();
        node.http(&root)
            .put_secret("secret", "own", &json!({"v": "target's"}));
        root
    };
    let before = pg.psql(FINGERPRINT);

    let (ok, out, err) = migrate(&source.config_file(), &target.path);
    assert!(!ok, "a non-empty target must be refused:\n{out}{err}");
    assert!(
        err.contains("the target store is not empty") && err.contains("nothing was written"),
        "{err}"
    );
    assert_eq!(pg.psql(FINGERPRINT), before, "the target changed");

    let node = Node::start(&target, &[200]);
    let http = node.http(&root);
    let own = http.get("secret/data/own");
    assert_eq!(own.status, 200, "{}", own.text);
    assert_eq!(own.json["data"]["data"]["v"], "target's");
    assert_eq!(http.get("secret/data/from-source").status, 404);
}

#[test]
fn migrate_refuses_what_it_cannot_copy() {
    let mut running = Server::config_mode();
    running.init();
    let work = tempfile::tempdir().unwrap();
    let empty_dir = work.path().join("empty/storage");
    let empty = conf(work.path(), "empty", &sqlite_storage(&empty_dir), None);
    let nowhere = conf(
        work.path(),
        "nowhere",
        &sqlite_storage(&work.path().join("nowhere/storage")),
        None,
    );
    let shamir = work.path().join("shamir.toml");
    std::fs::write(
        &shamir,
        format!(
            "[listener]\naddress = \"127.0.0.1:1\"\ntls_disable = true\n[storage]\npath = \"{}\"\n\
             [seal]\ntype = \"shamir\"\n",
            work.path().join("shamir/storage").display()
        ),
    )
    .unwrap();
    // (source, target, words of the error)
    let cases: [(&Path, &Path, &str); 4] = [
        (
            &running.config_file(),
            &empty.path,
            "in use by another kvseal process",
        ),
        (&nowhere.path, &empty.path, "no kvseal database here"),
        (
            &empty.path,
            &empty.path,
            "the two configurations name the same store",
        ),
        (
            &running.config_file(),
            &shamir,
            "the target must have the same seal",
        ),
    ];
    for (from, to, words) in cases {
        let (ok, out, err) = migrate(from, to);
        assert!(
            !ok,
            "{} -> {}: accepted:\n{out}",
            from.display(),
            to.display()
        );
        assert!(
            err.contains(words),
            "{} -> {}: {err}",
            from.display(),
            to.display()
        );
    }
    assert!(
        !nowhere.key_file.parent().unwrap().join("storage").exists(),
        "a missing source was created"
    );
    assert!(
        !empty_dir.join("kvseal.db").exists(),
        "the target was created"
    );
}

#[test]
fn a_snapshot_of_a_postgresql_node_restores_into_sqlite() {
    let pg = PgCluster::start();
    let work = tempfile::tempdir().unwrap();
    let on_pg = conf(work.path(), "pg", &pg_storage(&pg.url()), None);
    let mut node = Node::start(&on_pg, &[501]);
    let root = node.init();
    let limited = populate(&node.http(&root));
    let before = view(&node.http(&root));
    assert_population(&before);

    let resp = reqwest::blocking::Client::new()
        .get(format!("{}/v1/sys/storage/raft/snapshot", node.addr))
        .header("X-Vault-Token", &root)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "application/gzip");
    let archive = work.path().join("pg.snap");
    std::fs::write(&archive, resp.bytes().unwrap()).unwrap();

    let on_sqlite = conf(
        work.path(),
        "sqlite",
        &sqlite_storage(&work.path().join("sqlite/storage")),
        Some(&on_pg.key_file),
    );
    let (ok, out, err) = operator(&[
        Path::new("restore"),
        Path::new("--config"),
        &on_sqlite.path,
        &archive,
    ]);
    assert!(ok, "restore failed:\n{out}{err}");
    let restored = Node::start(&on_sqlite, &[200]);
    assert_same_view(&before, &view(&restored.http(&root)), "restored on SQLite");
    assert_token_works(&restored.http(&limited));
}
