//! `kvseal operator restore` verifies a backup with the seal key before anything is replaced
//! (issue 11, "Snapshots"; acceptance 4, the tampered-snapshot test).
//!
//! The unkeyed SHA256SUMS of a snapshot archive only catches accidents: whoever edits the database
//! recomputes it. So the restore opens the archived database's own root key and keyring with the
//! seal key (the key file, or the unseal keys with the Shamir seal), opens SHA256SUMS.sealed with
//! that keyring and compares the database's digest with it. A raw backup (`operator backup`) has no
//! sealed sums and is verified by its keys. Each case below checks the exit status, the message, that
//! the storage files are byte for byte what they were after a refusal, and that the store still serves
//! its data afterwards.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{files_under, free_port, raw_get_status, Http, Server, BIN};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// One restore attempt: the file given, the unseal keys on standard input (`--unseal-keys-stdin`),
/// and what must come out (a refusal's message on stderr, or success).
struct Case {
    name: &'static str,
    file: Vec<u8>,
    keys: Option<String>,
    accepted: bool,
    message: &'static str,
}

fn refused(name: &'static str, file: Vec<u8>, message: &'static str) -> Case {
    Case {
        name,
        file,
        keys: None,
        accepted: false,
        message,
    }
}

fn accepted(name: &'static str, file: Vec<u8>) -> Case {
    Case {
        name,
        file,
        keys: None,
        accepted: true,
        message: "Restored",
    }
}

/// Runs `kvseal operator restore`; returns (success, stdout, stderr).
fn restore(config: &Path, file: &Path, keys: Option<&str>) -> (bool, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["operator", "restore", "--config"]).arg(config);
    if keys.is_some() {
        cmd.arg("--unseal-keys-stdin");
    }
    let mut child = cmd
        .arg(file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(keys.unwrap_or_default().as_bytes())
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every file of the storage directory (but the lock file) and the SHA-256 of its content.
fn storage_state(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    files_under(dir)
        .into_iter()
        .filter(|p| !p.ends_with("kvseal.lock"))
        .map(|p| {
            let digest = Sha256::digest(std::fs::read(&p).unwrap()).to_vec();
            (p, digest)
        })
        .collect()
}

/// Runs each case against the stopped store at `storage` (configuration `config`), then calls
/// `serves` to prove the store still serves its data.
fn run_cases(
    cases: &[Case],
    config: &Path,
    storage: &Path,
    scratch: &Path,
    mut serves: impl FnMut(&str),
) {
    for (i, case) in cases.iter().enumerate() {
        let file = scratch.join(format!("case-{i}"));
        std::fs::write(&file, &case.file).unwrap();
        let before = storage_state(storage);
        assert!(
            before.keys().any(|p| p.ends_with("kvseal.db")),
            "{}: no database before the restore",
            case.name
        );
        let started = Instant::now();
        let (ok, stdout, stderr) = restore(config, &file, case.keys.as_deref());
        eprintln!(
            "{}: {} in {:?}: {}",
            case.name,
            if ok { "accepted" } else { "refused" },
            started.elapsed(),
            stderr.trim()
        );
        assert_eq!(ok, case.accepted, "{}: {stdout}{stderr}", case.name);
        if case.accepted {
            assert!(stdout.contains(case.message), "{}: {stdout}", case.name);
        } else {
            assert!(
                stderr.starts_with("error: ") && stderr.contains(case.message),
                "{}: the message should say {:?}: {stderr}",
                case.name,
                case.message
            );
            assert_eq!(
                storage_state(storage),
                before,
                "{}: a refused restore changed the storage directory",
                case.name
            );
        }
        let staged: Vec<_> = files_under(storage)
            .into_iter()
            .filter(|p| p.to_string_lossy().contains(".restore-"))
            .collect();
        assert!(staged.is_empty(), "{}: left behind {staged:?}", case.name);
        serves(case.name);
    }
}

// ---- archives and databases ----

fn entries(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    tar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (name, data)
        })
        .collect()
}

fn entry(archive: &[u8], name: &str) -> Vec<u8> {
    entries(archive)
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name} in the archive"))
        .1
}

fn build(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_cksum();
        tar.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// `archive` with entry `name` replaced by `data`, or removed with `None` (order kept).
fn with_entry(archive: &[u8], name: &str, data: Option<Vec<u8>>) -> Vec<u8> {
    let mut es = entries(archive);
    assert!(
        es.iter().any(|(n, _)| n == name),
        "no {name} in the archive"
    );
    match data {
        Some(d) => es
            .iter_mut()
            .filter(|(n, _)| n == name)
            .for_each(|e| e.1 = d.clone()),
        None => es.retain(|(n, _)| n != name),
    }
    build(&es)
}

/// `archive` with its database replaced by `db` and SHA256SUMS recomputed, as an attacker would.
fn with_db(archive: &[u8], db: Vec<u8>) -> Vec<u8> {
    let digest: String = Sha256::digest(&db)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let archive = with_entry(archive, "kvseal.db", Some(db));
    with_entry(
        &archive,
        "SHA256SUMS",
        Some(format!("{digest}  kvseal.db\n").into_bytes()),
    )
}

/// A byte flip in the database header's application id (offset 68): no SQLite check sees it, so
/// only the keyed checksum can.
fn flip_header_byte(mut db: Vec<u8>) -> Vec<u8> {
    db[68] ^= 0x01;
    db
}

/// `db` after `edit` ran on a copy of it with SQLite.
fn edit_db(db: &[u8], scratch: &Path, edit: impl FnOnce(&rusqlite::Connection)) -> Vec<u8> {
    let path = scratch.join(format!("edit-{}.db", common::uid()));
    std::fs::write(&path, db).unwrap();
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.pragma_update(None, "journal_mode", "DELETE").unwrap();
        edit(&c);
    }
    let out = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    out
}

fn fact(db: &[u8], scratch: &Path, key: &str) -> Vec<u8> {
    let mut value = Vec::new();
    edit_db(db, scratch, |c| {
        value = c
            .query_row("SELECT value FROM kvseal_meta WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .unwrap();
    });
    value
}

fn snapshot(http: &Http) -> Vec<u8> {
    let resp = http
        .client
        .get(format!("{}/v1/sys/storage/raft/snapshot", http.base))
        .header("X-Vault-Token", &http.token)
        .send()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "snapshot");
    let bytes = resp.bytes().unwrap().to_vec();
    let names: Vec<String> = entries(&bytes).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["kvseal.db", "SHA256SUMS", "SHA256SUMS.sealed"]);
    bytes
}

fn raw_backup(server: &Server, out: &Path) -> Vec<u8> {
    let o = Command::new(BIN)
        .args(["operator", "backup", "--config"])
        .arg(server.config_file())
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read(out).unwrap()
}

fn expect(r: common::Resp, status: u16, what: &str) -> Value {
    assert_eq!(r.status, status, "{what}: {}", r.text);
    r.json
}

// ---- the file seal ----

#[test]
fn file_seal_restore_refuses_every_tampered_or_foreign_backup() {
    let started = Instant::now();
    let scratch = tempfile::tempdir().unwrap();
    let mut a = Server::config_mode();
    a.init();
    let http = a.http();
    http.put_secret("secret", "app", &json!({"v": "one"}));
    let earlier = snapshot(&http);
    http.put_secret("secret", "app", &json!({"v": "two"}));
    let weak = expect(
        http.post(
            "auth/token/create",
            &json!({"policies": ["default"], "ttl": "1h"}),
        ),
        200,
        "token create",
    );
    let weak = weak["auth"]["client_token"].as_str().unwrap().to_string();
    let current = snapshot(&http);
    let raw = raw_backup(&a, &scratch.path().join("a.db"));

    let mut b = Server::config_mode();
    b.init();
    b.http()
        .put_secret("secret", "app", &json!({"v": "other store"}));
    let other_archive = snapshot(&b.http());
    let other_raw = raw_backup(&b, &scratch.path().join("b.db"));
    drop(b);

    let db = entry(&current, "kvseal.db");
    let root_token = edit_db(&db, scratch.path(), |c| {
        let n = c
            .execute(
                // Every token entry replaced: with the sums recomputed, only the sealed
                // checksums can tell.
                "UPDATE tokens SET sealed = zeroblob(length(sealed))",
                [],
            )
            .unwrap();
        assert!(n >= 2, "the root token and the weak one");
    });
    let other_keyring = fact(&other_raw, scratch.path(), "keyring");
    let forged_keyring = edit_db(&raw, scratch.path(), |c| {
        c.execute(
            "UPDATE kvseal_meta SET value = ?1 WHERE key = 'keyring'",
            [&other_keyring],
        )
        .unwrap();
    });
    // A raw backup has no sealed checksums: its records are authenticated one by one.
    let raw_secret_edited = edit_db(&raw, scratch.path(), |c| {
        let n = c
            .execute(
                "UPDATE secrets SET sealed = zeroblob(length(sealed)) WHERE path = 'app'",
                [],
            )
            .unwrap();
        assert_eq!(n, 1, "the key record of secret/app");
    });
    let raw_version_gone = edit_db(&raw, scratch.path(), |c| {
        let n = c
            .execute(
                "DELETE FROM versions WHERE path = 'app' AND version = 1",
                [],
            )
            .unwrap();
        assert_eq!(n, 1, "version 1 of secret/app");
    });
    let raw_token_edited = edit_db(&raw, scratch.path(), |c| {
        let n = c
            .execute(
                "UPDATE tokens SET sealed = (SELECT sealed FROM tokens t2 WHERE t2.hash != tokens.hash LIMIT 1)",
                [],
            )
            .unwrap();
        assert!(n >= 2, "the root token and the weak one");
    });
    let mut flipped_sealed = entry(&current, "SHA256SUMS.sealed");
    let last = flipped_sealed.len() - 1;
    flipped_sealed[last] ^= 0x80;

    const NO_MATCH: &str = "kvseal.db does not match SHA256SUMS.sealed";
    const NOT_OPEN: &str = "SHA256SUMS.sealed does not open with the snapshot's keyring";
    const OTHER_STORE: &str = "does not open the backup's root key";
    let cases = [
        accepted("untouched archive", current.clone()),
        refused(
            "database byte flipped, SHA256SUMS recomputed",
            with_db(&current, flip_header_byte(db.clone())),
            NO_MATCH,
        ),
        refused(
            "tokens made root and eternal with SQLite, SHA256SUMS recomputed",
            with_db(&current, root_token),
            NO_MATCH,
        ),
        refused(
            "database byte flipped, SHA256SUMS left as it was",
            with_entry(&current, "kvseal.db", Some(flip_header_byte(db.clone()))),
            "checksum mismatch",
        ),
        refused(
            "SHA256SUMS.sealed removed",
            with_entry(&current, "SHA256SUMS.sealed", None),
            "the archive has no SHA256SUMS.sealed",
        ),
        refused(
            "SHA256SUMS.sealed bytes flipped",
            with_entry(&current, "SHA256SUMS.sealed", Some(flipped_sealed)),
            NOT_OPEN,
        ),
        refused(
            "SHA256SUMS.sealed emptied",
            with_entry(&current, "SHA256SUMS.sealed", Some(Vec::new())),
            NOT_OPEN,
        ),
        refused(
            "SHA256SUMS.sealed of another snapshot of this store",
            with_entry(
                &current,
                "SHA256SUMS.sealed",
                Some(entry(&earlier, "SHA256SUMS.sealed")),
            ),
            NO_MATCH,
        ),
        refused(
            "SHA256SUMS.sealed of another store",
            with_entry(
                &current,
                "SHA256SUMS.sealed",
                Some(entry(&other_archive, "SHA256SUMS.sealed")),
            ),
            NOT_OPEN,
        ),
        refused("archive of another store", other_archive, OTHER_STORE),
        refused("raw backup of another store", other_raw, OTHER_STORE),
        refused(
            "raw backup with another store's keyring",
            forged_keyring,
            "the backup's keyring does not open with its root key",
        ),
        refused(
            "raw backup with a key record edited",
            raw_secret_edited,
            "the backup does not authenticate (metadata of \"app\" in mount 1)",
        ),
        refused(
            "raw backup with a version its key lists deleted",
            raw_version_gone,
            "the backup does not authenticate (version 1 of \"app\" in mount 1 is missing)",
        ),
        refused(
            "raw backup with token entries swapped",
            raw_token_edited,
            "the backup does not authenticate (token entry ",
        ),
        accepted("raw backup of this store", raw),
    ];

    a.kill9();
    let (config, storage) = (a.config_file(), a.storage_dir());
    run_cases(&cases, &config, &storage, scratch.path(), |name| {
        a.restart();
        let http = a.http();
        let r = expect(http.get("secret/data/app"), 200, name);
        assert_eq!(r["data"]["data"]["v"], "two", "{name}");
        let r = expect(http.get("secret/data/app?version=1"), 200, name);
        assert_eq!(r["data"]["data"]["v"], "one", "{name}");
        // The weak token is still weak.
        let weak = Http::new(&a.addr, &weak);
        expect(weak.get("secret/data/app"), 403, name);
        a.kill9();
    });
    eprintln!("{} cases in {:?}", cases.len(), started.elapsed());
}

// ---- the Shamir seal ----

/// A server with the Shamir seal (the shared helpers know the file seal only).
struct ShamirServer {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl ShamirServer {
    fn new(dir: &Path) -> ShamirServer {
        let port = free_port();
        std::fs::write(
            dir.join("kvseal.toml"),
            format!(
                "[listener]\naddress = \"127.0.0.1:{port}\"\ntls_disable = true\n\n[storage]\npath = \"{}\"\n\n[seal]\ntype = \"shamir\"\n\n[log]\nlevel = \"warn\"\n",
                dir.join("storage").display()
            ),
        )
        .unwrap();
        ShamirServer {
            dir: dir.to_path_buf(),
            port,
            child: None,
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.join("kvseal.toml")
    }

    fn storage(&self) -> PathBuf {
        self.dir.join("storage")
    }

    fn http(&self, token: &str) -> Http {
        Http::new(&format!("http://127.0.0.1:{}", self.port), token)
    }

    /// Starts the server and waits until `sys/health` answers one of `accept`.
    fn start(&mut self, accept: &[u16]) {
        assert!(self.child.is_none());
        self.child = Some(
            Command::new(BIN)
                .arg("server")
                .arg("--config")
                .arg(self.config())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + common::READY_TIMEOUT;
        let host = format!("127.0.0.1:{}", self.port);
        let mut last = None;
        while Instant::now() < deadline {
            last = raw_get_status(&host, "/v1/sys/health").or(last);
            if last.is_some_and(|s| accept.contains(&s)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the shamir server did not become ready (last health {last:?})");
    }

    fn unseal(&self, keys: &[&str]) {
        let anon = self.http("");
        for key in keys {
            expect(
                anon.request("PUT", "sys/unseal", Some(&json!({ "key": key }))),
                200,
                "unseal",
            );
        }
        let st = expect(anon.get("sys/seal-status"), 200, "seal-status");
        assert_eq!(st["sealed"], false, "{st}");
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for ShamirServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn shamir_restore_needs_the_unseal_keys() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let scratch = tmp.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let mut s = ShamirServer::new(tmp.path());
    s.start(&[501]);
    let init = expect(
        s.http("").request(
            "PUT",
            "sys/init",
            Some(&json!({"secret_shares": 3, "secret_threshold": 2})),
        ),
        200,
        "init",
    );
    let (hex, b64) = (strings(&init["keys"]), strings(&init["keys_base64"]));
    let root = init["root_token"].as_str().unwrap().to_string();
    s.unseal(&[&hex[0], &hex[1]]);
    s.http(&root)
        .put_secret("secret", "app", &json!({"v": "sealed by shares"}));
    let archive = snapshot(&s.http(&root));

    let mut file_store = Server::config_mode();
    file_store.init();
    let file_archive = snapshot(&file_store.http());
    drop(file_store);

    // A share with one value byte changed (the last byte is its x coordinate): it combines into
    // another key.
    let mut wrong = hex[0].clone();
    wrong.replace_range(
        0..2,
        &format!("{:02x}", u8::from_str_radix(&hex[0][..2], 16).unwrap() ^ 1),
    );
    let good = format!("{}\n\n  {}  \n", hex[2], b64[0]);
    let with_keys = |mut case: Case, keys: String| {
        case.keys = Some(keys);
        case
    };
    let tampered = with_db(&archive, flip_header_byte(entry(&archive, "kvseal.db")));
    let cases = [
        refused(
            "no unseal keys",
            archive.clone(),
            "give at least the threshold of them on standard input, one per line (hex or base64, as `vault operator unseal` takes them), with --unseal-keys-stdin",
        ),
        with_keys(
            refused(
                "wrong unseal keys",
                archive.clone(),
                "the unseal keys given do not open the backup's root key",
            ),
            format!("{wrong}\n{}\n", hex[1]),
        ),
        with_keys(
            refused(
                "one unseal key of two",
                archive.clone(),
                "the backup's seal needs 2 unseal keys and 1 were given",
            ),
            format!("{}\n", hex[1]),
        ),
        with_keys(
            refused(
                "a line that is no key",
                archive.clone(),
                "line 2 of standard input is not an unseal key in hex or base64",
            ),
            format!("{}\nnot-a-key!\n", hex[1]),
        ),
        with_keys(
            refused(
                "archive of a file-seal store",
                file_archive,
                "the backup is of a store with the file seal, but this configuration has the shamir seal",
            ),
            good.clone(),
        ),
        with_keys(
            refused(
                "database byte flipped, SHA256SUMS recomputed",
                tampered,
                "kvseal.db does not match SHA256SUMS.sealed",
            ),
            good.clone(),
        ),
        with_keys(accepted("unseal keys given (hex and base64)", archive), good),
    ];

    s.stop();
    let (config, storage) = (s.config(), s.storage());
    run_cases(&cases, &config, &storage, &scratch, |name| {
        s.start(&[503]);
        s.unseal(&[&b64[1], &hex[2]]);
        let r = expect(s.http(&root).get("secret/data/app"), 200, name);
        assert_eq!(r["data"]["data"]["v"], "sealed by shares", "{name}");
        s.stop();
    });
    eprintln!("{} cases in {:?}", cases.len(), started.elapsed());
}
