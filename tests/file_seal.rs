//! The file seal and its files, on the real binary (security review, issue 10).
//!
//! * finding 9: after `sys/seal`, `sys/unseal` (no token needed) unseals only with the seal key;
//! * finding 15: the storage directory is private, a key file others can read is refused, and an
//!   initialised store whose key file is missing refuses to start instead of making a new key.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{Http, Server};
use serde_json::{json, Value};

/// A config-mode server (file seal), initialised, with one secret written.
fn server_with_a_secret() -> Server {
    let mut server = Server::config_mode();
    server.init();
    server
        .http()
        .put_secret("secret", "kept", &json!({"v": "before"}));
    server
}

/// The secret written by [`server_with_a_secret`] reads back unchanged.
fn assert_secret_kept(server: &Server) {
    let r = server.http().get("secret/data/kept");
    assert_eq!(r.status, 200, "GET /v1/secret/data/kept: {}", r.text);
    assert_eq!(r.json["data"]["data"], json!({"v": "before"}));
}

fn key_file_text(server: &Server) -> String {
    std::fs::read_to_string(server.key_file())
        .unwrap()
        .trim()
        .to_string()
}

fn assert_sealed(anon: &Http, sealed: bool, after: &str) {
    let r = anon.get("sys/seal-status");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["sealed"], sealed, "after {after}: {}", r.text);
}

#[test]
fn sys_unseal_after_sys_seal_needs_the_seal_key() {
    let server = server_with_a_secret();
    let key = key_file_text(&server);
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&key)
        .unwrap();
    let mut flipped = raw.clone();
    flipped[0] ^= 1;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let wrong_key = json!({"errors": [
        "Error unsealing: the key is not the seal key (give the content of the seal key file)"
    ]});

    let r = server.http().request("PUT", "sys/seal", Some(&json!({})));
    assert_eq!(r.status, 204, "PUT /v1/sys/seal: {}", r.text);
    let anon = Http::new(&server.addr, "");
    assert_sealed(&anon, true, "sys/seal");

    // (body of PUT sys/unseal without a token, status, body) — the server stays sealed after each.
    let refused: Vec<(Value, u16, Value)> = vec![
        (json!({"key": "00"}), 400, wrong_key.clone()),
        (json!({"key": b64(&[0u8; 32])}), 400, wrong_key.clone()),
        (json!({"key": b64(&flipped)}), 400, wrong_key.clone()),
        (json!({"key": hex(&flipped)}), 400, wrong_key.clone()),
        (json!({"key": b64(&raw[..31])}), 400, wrong_key.clone()),
        (
            json!({}),
            400,
            json!({"errors": ["missing required input key"]}),
        ),
    ];
    for (body, status, want) in &refused {
        let r = anon.request("PUT", "sys/unseal", Some(body));
        assert_eq!(
            (r.status, &r.json),
            (*status, want),
            "PUT sys/unseal {body}"
        );
        assert_sealed(&anon, true, &format!("PUT sys/unseal {body}"));
        let r = server.http().get("secret/data/kept");
        assert_eq!(r.status, 503, "sealed after {body}: {}", r.text);
    }

    // The key file's content, as the file holds it, unseals; nothing was lost.
    let r = anon.request("PUT", "sys/unseal", Some(&json!({"key": key})));
    assert_eq!(
        r.status, 200,
        "PUT sys/unseal with the key file: {}",
        r.text
    );
    assert_eq!(r.json["sealed"], false, "{}", r.text);
    assert_secret_kept(&server);
}

/// Runs `kvseal server` on `server`'s config (the server must be stopped) and expects it to refuse
/// to start: a non-zero exit within a few seconds. Returns its stderr.
fn start_expecting_refusal(server: &Server) -> String {
    let err_path = server.log_dir().join("refused.stderr.log");
    let mut child = Command::new(common::BIN)
        .arg("server")
        .arg("--config")
        .arg(server.config_file())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "kvseal started instead of refusing\nstderr:\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    let stderr = std::fs::read_to_string(&err_path).unwrap();
    assert!(!status.success(), "exit {status}, stderr:\n{stderr}");
    stderr
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn storage_directory_and_key_file_are_created_private() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = tmp.path().join("new").join("storage");
    let key_file = tmp.path().join("seal.key");
    let port = common::free_port();
    let cfg = tmp.path().join("kvseal.toml");
    std::fs::write(
        &cfg,
        format!(
            "[listener]\naddress = \"127.0.0.1:{port}\"\ntls_disable = true\n\
             [storage]\npath = \"{}\"\n[seal]\ntype = \"file\"\nkey_file = \"{}\"\n",
            storage.display(),
            key_file.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(common::BIN)
        .arg("server")
        .arg("--config")
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + common::READY_TIMEOUT;
    let host_port = format!("127.0.0.1:{port}");
    while common::raw_get_status(&host_port, "/v1/sys/health") != Some(501) {
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("kvseal did not start on {}", cfg.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    // (path, mode) as created by the server.
    let want = [
        (storage.clone(), 0o700),
        (storage.parent().unwrap().to_path_buf(), 0o700),
        (storage.join("kvseal.db"), 0o600),
        (key_file, 0o600),
    ];
    for (path, mode) in want {
        assert_eq!(
            format!("{:04o}", mode_of(&path)),
            format!("{mode:04o}"),
            "{}",
            path.display()
        );
    }
}

#[test]
fn a_key_file_group_or_others_can_access_is_refused() {
    let mut server = server_with_a_secret();
    server.kill9();
    let key = server.key_file();
    let shown = key.display().to_string();
    for mode in [0o644, 0o640, 0o604, 0o620, 0o660] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        let stderr = start_expecting_refusal(&server);
        for must in [
            shown.clone(),
            format!("mode {mode:04o}"),
            format!("chmod 600 {shown}"),
        ] {
            assert!(
                stderr.contains(&must),
                "mode {mode:04o}: stderr does not say {must:?}:\n{stderr}"
            );
        }
        assert_eq!(mode_of(&key), mode, "the key file's mode is left alone");
    }
    // Once the owner alone can read it, the server starts, unsealed, with everything in place.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    server.restart();
    assert_secret_kept(&server);
}

#[test]
fn a_missing_key_file_on_an_initialised_store_is_refused() {
    let mut server = server_with_a_secret();
    server.kill9();
    let key = server.key_file();
    let kept = server.dir.join("seal.key.kept");
    std::fs::rename(&key, &kept).unwrap();
    let stderr = start_expecting_refusal(&server);
    for must in [key.display().to_string(), "missing".to_string()] {
        assert!(
            stderr.contains(&must),
            "stderr does not say {must:?}:\n{stderr}"
        );
    }
    assert!(
        !key.exists(),
        "a new key file was made for an initialised store"
    );
    // With the key file back, the server starts, unsealed, with everything in place.
    std::fs::rename(&kept, &key).unwrap();
    server.restart();
    assert_secret_kept(&server);
}
