//! In-process tests of the snapshot routes through the whole app: `GET` saves, `POST`/`PUT`
//! restore from a binary body, what each refusal answers, the size bound, who may call them, and
//! the audit entry of a restore (without its body).

use actix_web::http::Method;
use actix_web::{test, web, App};
use serde_json::{json, Value};

use crate::app::AppState;
use crate::engine::path::MountPath;
use crate::testutil::{harness, Harness, OKMS_ID};

const SNAPSHOT: &str = "/v1/sys/storage/raft/snapshot";
const FORCE: &str = "/v1/sys/storage/raft/snapshot-force";

struct Answer {
    status: u16,
    text: String,
    content_type: String,
    bytes: Vec<u8>,
}

/// One request with a raw body through the real app, whose snapshot bound is `max_snapshot`.
async fn send(
    h: &Harness,
    max_snapshot: u64,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> Answer {
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new({
                let mut state = AppState::new(
                    h.engine.clone(),
                    h.max,
                    [(OKMS_ID, MountPath::parse("secret").expect("mount"))].into(),
                );
                state.max_snapshot_size = max_snapshot;
                state
            }))
            .configure(crate::vault::configure),
    )
    .await;
    let mut req = test::TestRequest::default()
        .method(Method::from_bytes(method.as_bytes()).expect("method"))
        .uri(path)
        .set_payload(body.to_vec());
    if let Some(t) = token {
        req = req.insert_header(("X-Vault-Token", t));
    }
    let resp = test::call_service(&app, req.to_request()).await;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("Content-Type")
        .map(|v| v.to_str().expect("ascii").to_string())
        .unwrap_or_default();
    let bytes = test::read_body(resp).await.to_vec();
    Answer {
        status,
        text: String::from_utf8_lossy(&bytes).into_owned(),
        content_type,
        bytes,
    }
}

const BIG: u64 = 64 * 1024 * 1024;

/// A request (method, path, token, body, the snapshot bound) and its answer (status, words the
/// body holds).
type Case<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    Vec<u8>,
    u64,
    u16,
    &'a str,
);

async fn save(h: &Harness) -> Vec<u8> {
    let r = send(h, BIG, "GET", SNAPSHOT, Some("root"), b"").await;
    assert_eq!(
        (r.status, r.content_type.as_str()),
        (200, "application/gzip")
    );
    r.bytes
}

async fn value(h: &Harness, key: &str) -> Value {
    let r = h.call("GET", &format!("/v1/secret/data/{key}"), None).await;
    match r.status.as_u16() {
        200 => r.json()["data"]["data"]["v"].clone(),
        404 => Value::Null,
        s => panic!("secret/{key}: {s} {}", r.text),
    }
}

async fn write(h: &Harness, key: &str, v: &str) {
    let r = h
        .put(&format!("/v1/secret/data/{key}"), json!({"data": {"v": v}}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[actix_web::test]
async fn a_restore_through_the_api_is_served_at_once() {
    let h = harness().await;
    write(&h, "app", "one").await;
    let archive = save(&h).await;
    write(&h, "app", "two").await;
    write(&h, "new", "x").await;

    for (method, path) in [("POST", SNAPSHOT), ("PUT", SNAPSHOT), ("POST", FORCE)] {
        let r = send(&h, BIG, method, path, Some("root"), &archive).await;
        assert_eq!((r.status, r.text.as_str()), (204, ""), "{method} {path}");
        assert_eq!(value(&h, "app").await, json!("one"), "{method} {path}");
        assert_eq!(value(&h, "new").await, Value::Null, "{method} {path}");
        write(&h, "app", "two").await;
        write(&h, "new", "x").await;
    }
}

#[actix_web::test]
async fn snapshot_route_answers() {
    let h = harness().await;
    write(&h, "app", "one").await;
    let archive = save(&h).await;
    let other = harness().await;
    let foreign = save(&other).await;
    write(&h, "app", "two").await;
    let size = archive.len() as u64;
    let sudo = h
        .token_with_policy(
            "snapshots",
            r#"path "sys/storage/raft/*" { capabilities = ["read", "update", "sudo"] }"#,
        )
        .await;
    let no_sudo = h
        .token_with_policy(
            "nosudo",
            r#"path "sys/storage/raft/*" { capabilities = ["read", "update"] }"#,
        )
        .await;
    const DENIED: &str = r#"{"errors":["permission denied"]}"#;
    // (method, path, token, body, bound, status, body's words). Each leaves the store as it was.
    let cases: Vec<Case> = vec![
        ("POST", SNAPSHOT, None, archive.clone(), BIG, 403, DENIED),
        ("POST", SNAPSHOT, Some("nonsense"), archive.clone(), BIG, 403, DENIED),
        ("POST", SNAPSHOT, Some(no_sudo.as_str()), archive.clone(), BIG, 403, DENIED),
        ("POST", FORCE, Some(no_sudo.as_str()), archive.clone(), BIG, 403, DENIED),
        ("GET", SNAPSHOT, Some(no_sudo.as_str()), Vec::new(), BIG, 403, DENIED),
        (
            "POST",
            SNAPSHOT,
            Some("root"),
            b"{\"not\":\"an archive\"}".to_vec(),
            BIG,
            400,
            "not a snapshot archive",
        ),
        ("POST", SNAPSHOT, Some("root"), Vec::new(), BIG, 400, "not a snapshot archive"),
        (
            "POST",
            SNAPSHOT,
            Some("root"),
            archive[..archive.len() / 2].to_vec(),
            BIG,
            400,
            "truncated or damaged",
        ),
        (
            "POST",
            SNAPSHOT,
            Some("root"),
            foreign.clone(),
            BIG,
            400,
            "could not verify hash file: the seal key file of this server does not open the snapshot's root key",
        ),
        (
            "POST",
            FORCE,
            Some("root"),
            foreign,
            BIG,
            400,
            "not even with snapshot-force",
        ),
        (
            "POST",
            SNAPSHOT,
            Some("root"),
            archive.clone(),
            size - 1,
            413,
            "http: request body too large",
        ),
        ("DELETE", SNAPSHOT, Some("root"), Vec::new(), BIG, 405, "unsupported operation"),
        ("GET", FORCE, Some("root"), Vec::new(), BIG, 405, "unsupported operation"),
        ("DELETE", FORCE, Some("root"), Vec::new(), BIG, 405, "unsupported operation"),
        // kvseal's own name for the snapshot read takes no write.
        ("POST", "/v1/sys/backup", Some("root"), Vec::new(), BIG, 405, "unsupported operation"),
    ];
    for (method, path, token, body, bound, status, words) in &cases {
        let r = send(&h, *bound, method, path, *token, body).await;
        assert_eq!(r.status, *status, "{method} {path} {token:?}: {}", r.text);
        assert!(
            r.text.contains(words),
            "{method} {path} {token:?}: {}",
            r.text
        );
        assert_eq!(
            value(&h, "app").await,
            json!("two"),
            "{method} {path} {token:?}"
        );
    }
    // A sudo token other than root restores too.
    let r = send(&h, BIG, "POST", SNAPSHOT, Some(sudo.as_str()), &archive).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(value(&h, "app").await, json!("one"));
}

#[actix_web::test]
async fn a_sealed_server_refuses_a_restore() {
    let h = harness().await;
    let archive = save(&h).await;
    let r = h.call("PUT", "/v1/sys/seal", None).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = send(&h, BIG, "POST", SNAPSHOT, Some("root"), &archive).await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (503, r#"{"errors":["Vault is sealed"]}"#)
    );
}

#[actix_web::test]
async fn a_restore_is_audited_without_its_body() {
    let h = harness().await;
    let logdir = h.dir.join("audit");
    std::fs::create_dir_all(&logdir).expect("mkdir");
    h.engine.set_audit_allowed_dir(Some(logdir.clone()));
    let log = logdir.join("audit.log");
    let r = h
        .put(
            "/v1/sys/audit/file",
            json!({"type": "file", "options": {"file_path": log.to_str().expect("utf-8")}}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let archive = save(&h).await;
    let r = send(&h, BIG, "POST", SNAPSHOT, Some("root"), &archive).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let bad = send(&h, BIG, "POST", SNAPSHOT, Some("root"), b"not an archive").await;
    assert_eq!(bad.status, 400, "{}", bad.text);

    let text = std::fs::read_to_string(&log).expect("audit log");
    let restores: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON line"))
        .filter(|e| e["request"]["path"] == "sys/storage/raft/snapshot")
        .filter(|e| e["request"]["operation"] == "update")
        .collect();
    // (type, response status) of each entry, in order: both restores, request and response.
    let seen: Vec<(Value, Value)> = restores
        .iter()
        .map(|e| (e["type"].clone(), e["response"]["status"].clone()))
        .collect();
    assert_eq!(
        seen,
        [
            (json!("request"), Value::Null),
            (json!("response"), json!(204)),
            (json!("request"), Value::Null),
            (json!("response"), json!(400)),
        ]
    );
    for e in &restores {
        assert_eq!(e["request"]["data"], Value::Null, "{e}");
    }
    assert!(
        !text.contains("not an archive"),
        "the body of a restore is never in the audit log"
    );
}
