//! Online backup under write load, and restore on a fresh store (issue: reliability, backup).
//!
//! A server takes writes from several threads while a snapshot is taken through the API (the
//! endpoint `vault operator raft snapshot save` uses) and a copy is taken with `kvseal operator
//! backup`. Each is restored into an empty storage directory (a "fresh machine" that has only the key
//! file) and served: every write acknowledged before the backup began must read back exactly.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{free_port, Http, Server};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_kvseal");

/// (key, value, when the write was acknowledged)
type Acked = Arc<Mutex<Vec<(String, String, Instant)>>>;

fn write_load(base: String, token: String, stop: Arc<AtomicBool>, acked: Acked, n: usize) {
    let http = Http::new(&base, &token);
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        let key = format!("load/w{n}/k{i}");
        let value = format!("v-{n}-{i}-{}", "x".repeat(i % 50));
        if let Ok((200, _)) = http.try_request(
            "POST",
            &format!("secret/data/{key}"),
            Some(&json!({"data": {"v": value}})),
        ) {
            acked.lock().unwrap().push((key, value, Instant::now()));
        }
        i += 1;
    }
}

fn config(dir: &Path, storage: &Path, key_file: &Path, port: u16) -> PathBuf {
    let cfg = dir.join(format!("restore-{port}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "[listener]\naddress = \"127.0.0.1:{port}\"\ntls_disable = true\n[storage]\npath = \"{}\"\n[seal]\ntype = \"file\"\nkey_file = \"{}\"\n[log]\nlevel = \"warn\"\n",
            storage.display(),
            key_file.display()
        ),
    )
    .unwrap();
    cfg
}

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(cfg: &Path, port: u16) -> Proc {
    let proc = Proc(
        Command::new(BIN)
            .arg("server")
            .arg("--config")
            .arg(cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if common::raw_get_status(&format!("127.0.0.1:{port}"), "/v1/sys/health") == Some(200) {
            return proc;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("restored server did not become ready");
}

fn operator(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .arg("operator")
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Restores `backup` into a fresh storage directory and checks every write acknowledged before
/// `began`; returns how many were checked.
fn restore_and_check(
    server: &Server,
    backup: &Path,
    acked: &[(String, String, Instant)],
    began: Instant,
    token: &str,
) -> usize {
    let fresh = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config(
        fresh.path(),
        &fresh.path().join("storage"),
        &server.key_file(),
        port,
    );
    let (ok, text) = operator(&[
        "restore",
        "--config",
        cfg.to_str().unwrap(),
        backup.to_str().unwrap(),
    ]);
    assert!(ok, "restore failed: {text}");
    let _p = serve(&cfg, port);
    let http = Http::new(&format!("http://127.0.0.1:{port}"), token);
    // The latest acknowledged value per key, among writes acknowledged before the backup began.
    let mut want: HashMap<&str, &str> = HashMap::new();
    for (k, v, at) in acked {
        if *at < began {
            want.insert(k, v);
        }
    }
    assert!(
        !want.is_empty(),
        "no write was acknowledged before the backup began"
    );
    for (k, v) in &want {
        let r = http.get(&format!("secret/data/{k}"));
        assert_eq!(r.status, 200, "{k} lost in the restored store: {}", r.text);
        assert_eq!(r.json["data"]["data"]["v"], *v, "{k}");
    }
    want.len()
}

#[test]
fn backup_under_load_restores_every_acknowledged_write() {
    let mut server = Server::config_mode();
    let token = server.init();
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Acked = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..4)
        .map(|n| {
            let (b, t, s, a) = (
                server.addr.clone(),
                token.clone(),
                stop.clone(),
                acked.clone(),
            );
            std::thread::spawn(move || write_load(b, t, s, a, n))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));

    // 1. The API snapshot, while the writers keep going.
    let began_api = Instant::now();
    let resp = reqwest::blocking::Client::new()
        .get(format!("{}/v1/sys/storage/raft/snapshot", server.addr))
        .header("X-Vault-Token", &token)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "application/gzip");
    let archive = resp.bytes().unwrap().to_vec();
    // The format vault's snapshot client checks: gzip tar, last entry a non-empty SHA256SUMS.sealed.
    let mut names = Vec::new();
    let mut last_len = 0;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive.as_slice()));
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        names.push(e.path().unwrap().to_string_lossy().to_string());
        let mut buf = Vec::new();
        e.read_to_end(&mut buf).unwrap();
        last_len = buf.len();
    }
    assert_eq!(names, ["kvseal.db", "SHA256SUMS", "SHA256SUMS.sealed"]);
    assert!(last_len > 0);

    // 2. The operator command on the live store.
    std::thread::sleep(Duration::from_millis(300));
    let scratch = tempfile::tempdir().unwrap();
    let copy = scratch.path().join("copy.db");
    let began_cli = Instant::now();
    let (ok, text) = operator(&[
        "backup",
        "--config",
        server.config_file().to_str().unwrap(),
        copy.to_str().unwrap(),
    ]);
    assert!(ok, "backup failed: {text}");
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();

    // Restore refuses while the server holds the store.
    let (ok, text) = operator(&[
        "restore",
        "--config",
        server.config_file().to_str().unwrap(),
        copy.to_str().unwrap(),
    ]);
    assert!(
        !ok && text.contains("in use"),
        "restore on a running server must be refused: {text}"
    );
    // A damaged file is refused before anything changes.
    let junk = scratch.path().join("junk.db");
    std::fs::write(&junk, b"not a database").unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let cfg = config(
        fresh.path(),
        &fresh.path().join("storage"),
        &server.key_file(),
        free_port(),
    );
    let (ok, text) = operator(&[
        "restore",
        "--config",
        cfg.to_str().unwrap(),
        junk.to_str().unwrap(),
    ]);
    assert!(!ok, "{text}");

    server.kill9();
    let api_file = scratch.path().join("snapshot.tar.gz");
    std::fs::write(&api_file, &archive).unwrap();
    let n1 = restore_and_check(&server, &api_file, &acked, began_api, &token);
    let n2 = restore_and_check(&server, &copy, &acked, began_cli, &token);
    assert!(
        n2 >= n1,
        "the later backup holds at least as much ({n1} then {n2})"
    );
    eprintln!("checked {n1} writes from the API snapshot and {n2} from the operator backup");
}

/// A config-mode node on the PostgreSQL database `url`, initialised: the node, its config file (for
/// `kvseal operator`) and a root client.
fn pg_node(url: &str) -> (Server, PathBuf, Http) {
    let storage = format!("type = \"postgresql\"\nconnection_url = \"{url}\"\n");
    let mut node = Server::config_mode_storage(&storage, "", None, &[501]);
    node.init();
    let (cfg, http) = (node.config_file(), node.http());
    (node, cfg, http)
}

/// `v` of the latest version of `secret/<key>`, or the status when it is not 200.
fn latest(http: &Http, key: &str) -> Result<String, u16> {
    let r = http.get(&format!("secret/data/{key}"));
    match r.status {
        200 => Ok(r.json["data"]["data"]["v"].as_str().unwrap().to_string()),
        s => Err(s),
    }
}

#[test]
fn a_postgresql_backup_restores_into_its_store_while_a_node_serves_it() {
    let pg = common::pg::PgCluster::start();
    let dir = tempfile::tempdir().unwrap();
    let (_node, cfg, http) = pg_node(&pg.url());
    http.put_secret("secret", "kept", &json!({"v": "1"}));
    http.put_secret("secret", "changed", &json!({"v": "1"}));

    let backup = dir.path().join("pg.db");
    let (ok, text) = operator(&[
        "backup",
        "--config",
        cfg.to_str().unwrap(),
        backup.to_str().unwrap(),
    ]);
    assert!(ok, "backup failed: {text}");
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(&backup).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    assert!(
        std::fs::read(&backup)
            .unwrap()
            .starts_with(b"SQLite format 3\0"),
        "a backup is a SQLite database file whichever the backend"
    );

    http.put_secret("secret", "changed", &json!({"v": "2"}));
    http.put_secret("secret", "added", &json!({"v": "1"}));
    let (ok, text) = operator(&[
        "restore",
        "--config",
        cfg.to_str().unwrap(),
        backup.to_str().unwrap(),
    ]);
    assert!(ok, "restore failed: {text}");

    // The restore is a change of the shared store like another node's: in force within 1 s.
    let want = [
        ("kept", Ok("1".to_string())),
        ("changed", Ok("1".to_string())),
        ("added", Err(404)),
    ];
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let got: Vec<_> = want.iter().map(|(k, _)| (*k, latest(&http, k))).collect();
        if got.iter().zip(&want).all(|(g, w)| g.1 == w.1) {
            break;
        }
        assert!(Instant::now() < deadline, "not restored after 1 s: {got:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let meta = http.get("secret/metadata/changed");
    assert_eq!(meta.status, 200, "{}", meta.text);
    assert_eq!(meta.json["data"]["current_version"], 1);
}

#[test]
fn a_postgresql_restore_refuses_a_backup_of_another_store_and_changes_nothing() {
    let pg = common::pg::PgCluster::start();
    let other = tempfile::tempdir().unwrap();
    let (_a, cfg, http) = pg_node(&pg.url());
    http.put_secret("secret", "mine", &json!({"v": "1"}));
    let (_b, other_cfg, other_http) = pg_node(&pg.new_database());
    other_http.put_secret("secret", "theirs", &json!({"v": "1"}));
    let foreign = other.path().join("other.db");
    let (ok, text) = operator(&[
        "backup",
        "--config",
        other_cfg.to_str().unwrap(),
        foreign.to_str().unwrap(),
    ]);
    assert!(ok, "backup failed: {text}");

    let (ok, text) = operator(&[
        "restore",
        "--config",
        cfg.to_str().unwrap(),
        foreign.to_str().unwrap(),
    ]);
    assert!(
        !ok && text.contains("refused") && text.contains("does not open the backup's root key"),
        "a backup of another store must be refused: {text}"
    );
    assert_eq!(latest(&http, "mine"), Ok("1".to_string()));
    assert_eq!(latest(&http, "theirs"), Err(404));
}
