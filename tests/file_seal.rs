//! The file seal and its files, on the real binary (security review, issue 10).
//!
//! * finding 9: after `sys/seal`, `sys/unseal` (no token needed) unseals only with the seal key;
//! * finding 15: the storage directory is private, a key file others can read is refused, and an
//!   initialised store whose key file is missing refuses to start instead of making a new key.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

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
