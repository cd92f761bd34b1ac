//! In-process tests of the audit log.

use serde_json::{json, Value};

use crate::testutil::{harness, OKMS_ID};

#[actix_web::test]
async fn audit_log_hashes_secrets_and_blocks_when_it_cannot_write() {
    let h = harness().await;
    let logdir = h.dir.join("audit");
    std::fs::create_dir_all(&logdir).unwrap();
    h.engine.set_audit_allowed_dir(Some(logdir.clone()));
    let log = logdir.join("audit.log");
    let r = h
        .put(
            "/v1/sys/audit/file",
            json!({"type": "file", "options": {"file_path": log.to_str().unwrap()}}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    // Refused configurations.
    assert_eq!(
        h.put(
            "/v1/sys/audit/raw",
            json!({"type": "file", "options": {"file_path": "/tmp/x", "log_raw": true}})
        )
        .await
        .status,
        400
    );
    assert_eq!(
        h.put(
            "/v1/sys/audit/sock",
            json!({"type": "socket", "options": {}})
        )
        .await
        .status,
        400
    );
    assert_eq!(
        h.put(
            "/v1/sys/audit/bad",
            json!({"type": "file", "options": {"file_path": "/nonexistent-dir/x.log"}})
        )
        .await
        .status,
        400
    );
    let listed = h.call("GET", "/v1/sys/audit", None).await.json();
    assert_eq!(listed["data"]["file/"]["type"], "file");
    assert_eq!(listed["file/"]["path"], "file/");

    let marker = format!("kvseal-audit-marker-{}", uuid::Uuid::new_v4());
    // A token of its own, so its value is recognisable in the log.
    let t = h
        .put("/v1/auth/token/create", json!({"policies": ["root"]}))
        .await
        .json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let w = h
        .call_as(
            &t,
            "POST",
            "/v1/secret/data/audited",
            Some(json!({"data": {"pw": marker}})),
        )
        .await;
    assert_eq!(w.status, 200);
    let g = h
        .call_as(&t, "GET", "/v1/secret/data/audited", None)
        .await
        .json();
    assert_eq!(g["data"]["data"]["pw"], marker);
    let okms = h
        .call(
            "GET",
            &format!("/api/{OKMS_ID}/v2/secret/audited?includeData=true"),
            None,
        )
        .await;
    assert_eq!(okms.status, 200);

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains(&marker),
        "a secret value is in the audit log in plaintext"
    );
    assert!(
        !text.contains(&t),
        "a token is in the audit log in plaintext"
    );
    assert!(
        !text.contains("\"client_token\":\"root\""),
        "the root token is in the audit log in plaintext"
    );
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // One request and one response entry per call (enable of `file` itself was not audited: the
    // device did not exist yet when it was requested; the refused enables and the list were).
    let for_path = |p: &str| entries.iter().filter(|e| e["request"]["path"] == p).count();
    assert_eq!(for_path("secret/data/audited"), 4);
    assert_eq!(
        entries.iter().filter(|e| e["type"] == "request").count(),
        entries.iter().filter(|e| e["type"] == "response").count()
    );
    // The value appears as its HMAC, which sys/audit-hash reproduces.
    let hash = h
        .put("/v1/sys/audit-hash/file", json!({"input": marker}))
        .await
        .json()["data"]["hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(hash.starts_with("hmac-sha256:"));
    let write = entries
        .iter()
        .find(|e| {
            e["type"] == "request"
                && e["request"]["path"] == "secret/data/audited"
                && e["request"]["operation"] == "update"
        })
        .unwrap();
    assert_eq!(write["request"]["data"]["data"]["pw"], hash);
    assert!(write["auth"]["client_token"]
        .as_str()
        .unwrap()
        .starts_with("hmac-sha256:"));
    assert_eq!(write["auth"]["policies"], json!(["root"]));
    let read = entries
        .iter()
        .find(|e| {
            e["type"] == "response"
                && e["request"]["path"] == "secret/data/audited"
                && e["request"]["operation"] == "read"
        })
        .unwrap();
    assert_eq!(read["response"]["data"]["data"]["data"]["pw"], hash);
    assert!(text.contains(&format!("/api/{OKMS_ID}/v2/secret/audited")));

    // A device that cannot write blocks every request (no unaudited access), and nothing is done.
    std::fs::remove_dir_all(&logdir).unwrap();
    let r = h
        .put("/v1/secret/data/blocked", json!({"data": {"a": 1}}))
        .await;
    assert_eq!(r.status, 500, "{}", r.text);
    assert!(r.json()["errors"][0]
        .as_str()
        .unwrap()
        .contains("audit log"));
    let r = h
        .call("GET", &format!("/api/{OKMS_ID}/v2/secret"), None)
        .await;
    assert_eq!(r.status, 500);
    std::fs::create_dir_all(&logdir).unwrap();
    assert_eq!(
        h.call("GET", "/v1/secret/data/blocked", None).await.status,
        404,
        "the blocked write did not happen"
    );
    assert_eq!(
        h.call("DELETE", "/v1/sys/audit/file", None).await.status,
        204
    );
    assert_eq!(
        h.call("GET", "/v1/sys/audit", None).await.json()["data"],
        json!({})
    );
}
