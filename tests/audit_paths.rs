//! Where a file audit device may write (security review finding 10, the class of Vault's
//! CVE-2025-6000): a token with sudo on `sys/audit` must not turn kvseal into a writer of arbitrary
//! files. Replayed against the real binary.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use common::Server;
use serde_json::json;

const SCRIPT: &str = "#!/bin/sh\necho hello\n";

fn enable(s: &Server, name: &str, file_path: &str) -> common::Resp {
    s.http().request(
        "PUT",
        &format!("sys/audit/{name}"),
        Some(&json!({"type": "file", "options": {"file_path": file_path}})),
    )
}

/// Device names listed by `sys/audit`.
fn listed(s: &Server) -> Vec<String> {
    let r = s.http().get("sys/audit");
    assert_eq!(r.status, 200, "{}", r.text);
    let mut names: Vec<String> = r.json["data"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn file_path_is_confined_to_allowed_dir_without_symlinks_or_foreign_files() {
    let outside = tempfile::tempdir().expect("tempdir");
    let allowed = tempfile::tempdir().expect("tempdir");
    let a = allowed.path();
    let o = outside.path();
    fs::write(o.join("run.sh"), SCRIPT).expect("outside script");
    fs::write(a.join("run.sh"), SCRIPT).expect("script inside allowed_dir");
    symlink(o.join("run.sh"), a.join("link.log")).expect("symlink");
    symlink(o, a.join("linkdir")).expect("dir symlink");
    fs::create_dir(a.join("sub")).expect("subdir");

    let mut s =
        Server::config_mode_with("", &format!("[audit]\nallowed_dir = \"{}\"\n", a.display()));
    s.init();
    let p = |rel: &str| format!("{}/{rel}", a.display());
    // (file_path, status, a part of the error)
    let cases = [
        (
            o.join("run.sh").display().to_string(),
            400,
            "not under the allowed audit directory",
        ),
        (
            o.join("new.sh").display().to_string(),
            400,
            "not under the allowed audit directory",
        ),
        ("audit.log".to_string(), 400, "absolute path"),
        (p("../escape.log"), 400, "without . or .."),
        (p("link.log"), 400, "unable to open"),
        (p("linkdir/x.log"), 400, "symlinks are not followed"),
        (p("run.sh"), 400, "not an audit log kvseal created"),
        (p("sub/ok.log"), 204, ""),
        ("stdout".to_string(), 204, ""),
        ("discard".to_string(), 204, ""),
    ];
    for (i, (file_path, status, error)) in cases.iter().enumerate() {
        let r = enable(&s, &format!("dev{i}"), file_path);
        assert_eq!(r.status, *status, "{file_path}: {}", r.text);
        if *status == 400 {
            assert!(
                r.errors().iter().any(|e| e.contains(error)),
                "{file_path}: {}",
                r.text
            );
        }
    }
    assert_eq!(
        listed(&s),
        vec!["dev7/", "dev8/", "dev9/"],
        "refused devices are not stored"
    );

    // Nothing outside was created or changed, nor the foreign file inside.
    assert_eq!(fs::read_to_string(o.join("run.sh")).expect("read"), SCRIPT);
    assert!(!o.join("new.sh").exists() && !o.join("x.log").exists());
    assert!(!a.parent().expect("parent").join("escape.log").exists());
    assert_eq!(fs::read_to_string(a.join("run.sh")).expect("read"), SCRIPT);
    // Vault's special values are not file names.
    for special in ["stdout", "discard"] {
        assert!(
            !s.dir.join(special).exists() && !Path::new(special).exists(),
            "{special} was created as a file"
        );
    }

    // The log kvseal created starts with its marker and takes the entries; once disabled it may be
    // enabled again (kvseal's own file), and a file swapped in under its name is refused.
    let log = a.join("sub/ok.log");
    let text = fs::read_to_string(&log).expect("log");
    assert!(
        text.starts_with("{\"type\":\"kvseal_audit_log\"}\n"),
        "{text}"
    );
    assert!(
        text.lines().count() > 1,
        "the enable request and response are logged:\n{text}"
    );
    for name in ["dev7", "dev8", "dev9"] {
        let r = s.http().delete(&format!("sys/audit/{name}"));
        assert_eq!(r.status, 204, "{}", r.text);
    }
    let r = enable(&s, "again", &log.display().to_string());
    assert_eq!(r.status, 204, "{}", r.text);
    fs::remove_file(&log).expect("rm log");
    fs::write(&log, SCRIPT).expect("swap in a script");
    let r = s.http().get("sys/audit");
    assert_eq!(
        r.status, 500,
        "the device cannot write, so nothing is served: {}",
        r.text
    );
    assert_eq!(fs::read_to_string(&log).expect("read"), SCRIPT);
}

#[test]
fn without_allowed_dir_the_api_enables_no_file_device() {
    let target = tempfile::tempdir().expect("tempdir");
    let mut s = Server::config_mode();
    s.init();
    let file = target.path().join("audit.log");
    let r = enable(&s, "file", &file.display().to_string());
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.errors().iter().any(|e| e.contains("[audit] allowed_dir")),
        "{}",
        r.text
    );
    assert!(!file.exists());
    let r = enable(&s, "out", "stdout");
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(listed(&s), vec!["out/"]);
}
