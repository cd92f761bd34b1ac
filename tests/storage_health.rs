//! A full disk is a 503 with a clear message, nothing is half-written, and the server recovers by
//! itself when space returns: the real binary on a small tmpfs that gets filled up.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, Http};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_kvseal");

struct Mounted(std::path::PathBuf);
impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_disk_is_503_and_the_server_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let storage = tmp.path().join("storage");
    std::fs::create_dir_all(&storage).unwrap();
    let mount = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=6m", "tmpfs"])
        .arg(&storage)
        .output();
    // A missing prerequisite is a failure, never a silent pass: CI runs as root, where this works.
    // (Without the right to mount, src/vault/tests_seal.rs full_storage_is_503_and_recovers covers
    // the same path with a capped database; it does not replace this test of the real binary.)
    match &mount {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "this test needs to mount a tmpfs (run it as root, as CI does): mount {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!("this test needs to mount a tmpfs (run it as root, as CI does): {e}"),
    }
    let _m = Mounted(storage.clone());
    let port = free_port();
    let cfg = tmp.path().join("kvseal.toml");
    std::fs::write(
        &cfg,
        format!(
            "[listener]\naddress = \"127.0.0.1:{port}\"\ntls_disable = true\n[storage]\npath = \"{}\"\n[seal]\ntype = \"file\"\nkey_file = \"{}\"\n",
            storage.display(),
            tmp.path().join("root.key").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["server", "--config"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let hp = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while common::raw_get_status(&hp, "/v1/sys/health") != Some(501) {
        assert!(Instant::now() < deadline, "server not ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let init: serde_json::Value = reqwest::blocking::Client::new()
        .put(format!("http://{hp}/v1/sys/init"))
        .json(&json!({"secret_shares": 1, "secret_threshold": 1}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let http = Http::new(
        &format!("http://{hp}"),
        init["root_token"].as_str().unwrap(),
    );
    assert_eq!(
        http.post("secret/data/before", &json!({"data": {"a": "1"}}))
            .status,
        200
    );

    // Fill the file system.
    let filler = storage.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k", "count=200"])
        .arg(format!("of={}", filler.display()))
        .stderr(Stdio::null())
        .status();
    let big = "y".repeat(256 * 1024);
    let mut saw_503 = false;
    for i in 0..20 {
        let r = http.post(&format!("secret/data/big{i}"), &json!({"data": {"v": big}}));
        if r.status == 503 {
            assert!(
                r.errors()[0].starts_with("storage unavailable"),
                "{}",
                r.text
            );
            saw_503 = true;
            break;
        }
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert!(saw_503, "the full disk never surfaced as a 503");
    // Reads keep working; earlier data is intact.
    assert_eq!(
        http.get("secret/data/before").json["data"]["data"],
        json!({"a": "1"})
    );
    // Space returns: writes succeed again without a restart.
    std::fs::remove_file(&filler).unwrap();
    let r = http.post("secret/data/after", &json!({"data": {"a": "2"}}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        http.get("secret/data/after").json["data"]["data"],
        json!({"a": "2"})
    );
    let _ = child.kill();
    let _ = child.wait();
}
