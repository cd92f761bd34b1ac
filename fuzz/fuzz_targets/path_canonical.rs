//! Path canonicalisation: `SecretPath`, `FolderPath`, `MountPath` and `check_request_path` never
//! panic, and every path they accept is canonical (no empty, `.` or `..` segment, no NUL or control
//! character) and parses back to itself.
#![no_main]

use kvseal::engine::path::{check_request_path, FolderPath, MountPath, SecretPath};
use libfuzzer_sys::fuzz_target;

fn canonical_segments(body: &str, what: &str, input: &str) {
    assert!(
        !body.is_empty(),
        "{what}: empty body accepted for {input:?}"
    );
    for seg in body.split('/') {
        assert!(
            !seg.is_empty() && seg != "." && seg != "..",
            "{what}: non-canonical segment {seg:?} accepted in {input:?}"
        );
    }
    assert!(
        !body.chars().any(|c| c.is_control()),
        "{what}: control character accepted in {input:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = SecretPath::parse(s) {
        let v = p.as_str();
        assert_eq!(v, s, "SecretPath changed its input");
        assert!(!v.starts_with('/') && !v.ends_with('/'), "SecretPath {v:?}");
        canonical_segments(v, "SecretPath", s);
        assert_eq!(
            SecretPath::parse(v).ok().as_ref(),
            Some(&p),
            "SecretPath round trip"
        );
    }
    if let Ok(f) = FolderPath::parse(s) {
        let v = f.as_str().to_string();
        if !v.is_empty() {
            assert!(v.ends_with('/') && !v.starts_with('/'), "FolderPath {v:?}");
            canonical_segments(&v[..v.len() - 1], "FolderPath", s);
        }
        assert_eq!(FolderPath::parse(&v).ok(), Some(f), "FolderPath round trip");
    }
    if let Ok(m) = MountPath::parse(s) {
        let v = m.as_str().to_string();
        assert!(v.ends_with('/') && !v.starts_with('/'), "MountPath {v:?}");
        assert_eq!(format!("{}/", m.bare()), v, "MountPath bare()");
        canonical_segments(m.bare(), "MountPath", s);
        assert!(
            MountPath::parse(&v).ok() == Some(m.clone()),
            "MountPath round trip"
        );
        assert!(
            MountPath::parse(m.bare()).ok() == Some(m),
            "MountPath bare round trip"
        );
    }
    if check_request_path(s).is_ok() {
        let body = s.strip_suffix('/').unwrap_or(s);
        if !body.is_empty() {
            canonical_segments(body, "check_request_path", s);
        }
    }
});
