//! Encryption at rest: secret values never reach the disk in plaintext, and
//! the database / WAL / key files are private (0600).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use common::{contains_bytes, files_under, Server};
use serde_json::json;

#[test]
fn secrets_not_on_disk_in_plaintext_and_files_are_0600() {
    let mut server = Server::config_mode();
    let token = server.init();
    let http = server.http();

    let marker = format!("kvseal-marker-{}", uuid::Uuid::new_v4());
    let big_marker = format!("kvseal-bigmarker-{}", uuid::Uuid::new_v4());
    let cm_marker = format!("kvseal-cmmarker-{}", uuid::Uuid::new_v4());
    let name_marker = format!("kvseal-namemarker-{}", uuid::Uuid::new_v4().simple());

    // One secret with many versions, each containing the marker.
    let r = http.post(
        "secret/metadata/at-rest/versions",
        &json!({"max_versions": 50}),
    );
    assert_eq!(r.status, 204, "{}", r.text);
    for i in 1..=30u64 {
        let v = http.put_secret(
            "secret",
            "at-rest/versions",
            &json!({"password": format!("{marker}-v{i}"), "n": i}),
        );
        assert_eq!(v, i);
    }
    // A big one (~1 MiB; highly compressible so a plaintext or merely
    // compressed copy would still be easy to find).
    let big: String = std::iter::repeat_n(big_marker.as_str(), 1024 * 1024 / big_marker.len())
        .collect::<Vec<_>>()
        .join("|");
    assert_eq!(
        http.put_secret("secret", "at-rest/big", &json!({"blob": big})),
        1
    );
    // Soft-deleted and destroyed versions also hold the marker.
    assert_eq!(
        http.put_secret("secret", "at-rest/del", &json!({"p": marker})),
        1
    );
    assert_eq!(http.delete("secret/data/at-rest/del").status, 204);
    // custom_metadata and a key name with a marker (reported, see below).
    let r = http.post(
        "secret/metadata/at-rest/cm",
        &json!({"custom_metadata": {"owner": cm_marker}}),
    );
    assert_eq!(r.status, 204, "{}", r.text);
    http.put_secret(
        "secret",
        &format!("at-rest/{name_marker}"),
        &json!({"x": "y"}),
    );
    // A second mount too.
    let r = http.post("sys/mounts/other", &json!({"type": "kv-v2"}));
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        http.put_secret("other", "k", &json!({"p": format!("{marker}-other")})),
        1
    );

    // SIGKILL: leaves the WAL un-checkpointed, the worst case for plaintext.
    server.kill9();

    let mut files: Vec<PathBuf> = files_under(&server.storage_dir());
    let key_file = server.key_file();
    assert!(
        key_file.is_file(),
        "seal key file {key_file:?} was not created"
    );
    files.push(key_file.clone());
    let db = server.storage_dir().join("kvseal.db");
    assert!(db.is_file(), "database {db:?} missing; files: {files:?}");
    let total: u64 = files
        .iter()
        .map(|f| fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    assert!(
        total > 1024 * 1024,
        "storage holds only {total} bytes after writing a 1 MiB secret: {files:?}"
    );

    // Guard against a vacuous scan: the scanner must find a planted marker.
    let canary = server.dir.join("canary.bin");
    fs::write(&canary, format!("xx{marker}yy")).expect("write canary");
    assert!(contains_bytes(
        &fs::read(&canary).expect("read canary"),
        marker.as_bytes()
    ));

    let mut failures = Vec::new();
    let mut warnings = Vec::new();
    for f in &files {
        let bytes = fs::read(f).unwrap_or_else(|e| panic!("read {f:?}: {e}"));
        for (m, what) in [
            (&marker, "secret value marker"),
            (&big_marker, "big secret marker"),
            (&token, "root token"),
        ] {
            if contains_bytes(&bytes, m.as_bytes()) {
                failures.push(format!("{what} found in plaintext in {f:?}"));
            }
        }
        // Vault encrypts these too; reported but not fatal.
        for (m, what) in [
            (&cm_marker, "custom_metadata value"),
            (&name_marker, "secret key name"),
        ] {
            if contains_bytes(&bytes, m.as_bytes()) {
                warnings.push(format!("{what} stored in plaintext in {f:?}"));
            }
        }

        let mode = fs::metadata(f).expect("metadata").permissions().mode() & 0o777;
        if mode != 0o600 {
            failures.push(format!("{f:?} has mode {mode:o}, want 600"));
        }
    }
    // Secret values must not be logged either.
    for f in files_under(&server.log_dir()) {
        let bytes = fs::read(&f).unwrap_or_default();
        for m in [&marker, &big_marker] {
            if contains_bytes(&bytes, m.as_bytes()) {
                failures.push(format!("secret marker {m} appears in server log {f:?}"));
            }
        }
    }
    for w in &warnings {
        eprintln!("WARNING (not fatal): {w}");
    }
    eprintln!(
        "scanned {} storage files ({} bytes): {:?}",
        files.len(),
        total,
        files
    );
    assert!(
        failures.is_empty(),
        "at-rest failures:\n{}",
        failures.join("\n")
    );

    // The data is really there: restart and read it back.
    server.restart();
    let http = server.http();
    for i in [1u64, 17, 30] {
        let r = http.get(&format!("secret/data/at-rest/versions?version={i}"));
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            r.json["data"]["data"]["password"],
            json!(format!("{marker}-v{i}"))
        );
    }
    let r = http.get("secret/data/at-rest/big");
    assert_eq!(r.status, 200);
    assert_eq!(r.json["data"]["data"]["blob"], json!(big));
    let r = http.get("other/data/k");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["data"]["data"]["p"],
        json!(format!("{marker}-other"))
    );
}
