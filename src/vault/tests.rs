//! In-process tests of the Vault API: the real app and the real SQLite engine in a temp directory,
//! one request at a time, checking status, headers and JSON. (The real binary driven by real clients
//! is tested in `tests/` and `compat-tests/`.)

use serde_json::{json, Value};

use crate::crypto::Key32;
use crate::engine::clock::Clock;
use crate::engine::{Engine, SealMode};
use crate::storage::{Durability, Store};
use crate::testutil::{harness, Harness};
use std::sync::Arc;

fn assert_envelope(v: &Value) {
    // vaultrs requires these four to be present and non-null.
    assert!(v["request_id"].is_string(), "{v}");
    assert_eq!(v["lease_id"], "");
    assert_eq!(v["lease_duration"], 0);
    assert_eq!(v["renewable"], false);
}

fn is_rfc3339_nano_z(s: &str) -> bool {
    s.ends_with('Z')
        && time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
}

// ---- §6.1 the preflight ----

#[actix_web::test]
async fn preflight_reports_path_and_string_version() {
    let h = harness().await;
    for p in [
        "/v1/sys/internal/ui/mounts/secret/foo/bar",
        "/v1/sys/internal/ui/mounts/secret",
        "/v1/sys/mounts-all/secret",
    ] {
        let r = h.call("GET", p, None).await;
        assert_eq!(r.status, 200, "{p}");
        let v = r.json();
        assert_envelope(&v);
        assert_eq!(v["data"]["path"], "secret/");
        assert_eq!(v["data"]["options"]["version"], json!("2"));
        assert_eq!(v["data"]["type"], "kv");
    }
    let r = h
        .call("GET", "/v1/sys/internal/ui/mounts/nope/x", None)
        .await;
    assert_eq!(r.status, 403);
    assert!(r.json()["errors"][0]
        .as_str()
        .unwrap()
        .contains("preflight capability check returned 403"));
}

// ---- §6.2 deleted, destroyed, missing ----

#[actix_web::test]
async fn deleted_and_destroyed_versions_are_404_with_metadata() {
    let h = harness().await;
    h.put("/v1/secret/data/s", json!({"data": {"k": "v1"}}))
        .await;
    h.put("/v1/secret/data/s", json!({"data": {"k": "v2"}}))
        .await;
    assert_eq!(
        h.call("DELETE", "/v1/secret/data/s", None).await.status,
        204
    );
    let r = h.call("GET", "/v1/secret/data/s", None).await;
    assert_eq!(r.status, 404);
    let v = r.json();
    assert_envelope(&v);
    assert!(v.get("errors").is_none(), "{v}");
    assert!(v["data"]["data"].is_null());
    assert_eq!(v["data"]["metadata"]["version"], 2);
    assert!(is_rfc3339_nano_z(
        v["data"]["metadata"]["deletion_time"].as_str().unwrap()
    ));
    assert_eq!(v["data"]["metadata"]["destroyed"], false);

    let r = h
        .put("/v1/secret/destroy/s", json!({"versions": [1]}))
        .await;
    assert_eq!(r.status, 204);
    let v = h.call("GET", "/v1/secret/data/s?version=1", None).await;
    assert_eq!(v.status, 404);
    let v = v.json();
    assert!(v["data"]["data"].is_null());
    assert_eq!(v["data"]["metadata"]["destroyed"], true);
    assert_eq!(v["data"]["metadata"]["deletion_time"], "");

    for p in ["/v1/secret/data/missing", "/v1/secret/data/s?version=7"] {
        let r = h.call("GET", p, None).await;
        assert_eq!(r.status, 404, "{p}");
        assert_eq!(r.json(), json!({"errors": []}), "{p}");
        assert_eq!(r.content_type, "application/json");
    }
}

#[actix_web::test]
async fn patch_of_missing_key_is_404_with_empty_body() {
    let h = harness().await;
    let r = h
        .call_with(
            "PATCH",
            "/v1/secret/data/nothing",
            Some(r#"{"data":{"a":"b"}}"#),
            &[
                ("X-Vault-Token", "root"),
                ("Content-Type", "application/merge-patch+json"),
            ],
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.text, "");
}

// ---- §6.3 / §6.4 formats ----

#[actix_web::test]
async fn timestamps_and_durations_have_vaults_formats() {
    let h = harness().await;
    let r = h.put("/v1/secret/data/t", json!({"data": {"a": 1}})).await;
    let v = r.json();
    assert_eq!(v["data"]["deletion_time"], "");
    assert!(is_rfc3339_nano_z(
        v["data"]["created_time"].as_str().unwrap()
    ));
    assert!(v["data"]["custom_metadata"].is_null());

    let c = h.call("GET", "/v1/secret/config", None).await.json();
    assert_eq!(
        c["data"],
        json!({"cas_required": false, "delete_version_after": "0s", "max_versions": 0})
    );
    for (given, back) in [
        ("30m0s", "30m0s"),
        ("30s", "30s"),
        ("1h", "1h0m0s"),
        ("-5s", "-1s"),
    ] {
        let r = h
            .put("/v1/secret/config", json!({"delete_version_after": given}))
            .await;
        assert_eq!(r.status, 204);
        let c = h.call("GET", "/v1/secret/config", None).await.json();
        assert_eq!(c["data"]["delete_version_after"], back, "{given}");
    }
    // Only the fields present change.
    h.put("/v1/secret/config", json!({"max_versions": 17}))
        .await;
    let c = h.call("GET", "/v1/secret/config", None).await.json();
    assert_eq!(c["data"]["max_versions"], 17);
    assert_eq!(c["data"]["delete_version_after"], "-1s");
    let m = h
        .put(
            "/v1/secret/metadata/t",
            json!({"delete_version_after": "768h"}),
        )
        .await;
    assert_eq!(m.status, 204);
    let m = h.call("GET", "/v1/secret/metadata/t", None).await.json();
    assert_eq!(m["data"]["delete_version_after"], "768h0m0s");
}

// ---- §6.5 versions ----

#[actix_web::test]
async fn pruning_follows_vaults_rules() {
    let h = harness().await;
    for i in 1..=9 {
        h.put("/v1/secret/data/p", json!({"data": {"i": i}})).await;
    }
    let m = h.call("GET", "/v1/secret/metadata/p", None).await.json();
    assert_eq!(m["data"]["oldest_version"], 0);
    h.put("/v1/secret/data/p", json!({"data": {"i": 10}})).await;
    let m = h.call("GET", "/v1/secret/metadata/p", None).await.json();
    assert_eq!(m["data"]["oldest_version"], 1);
    assert_eq!(m["data"]["versions"].as_object().unwrap().len(), 10);
    h.put("/v1/secret/data/p", json!({"data": {"i": 11}})).await;
    let m = h.call("GET", "/v1/secret/metadata/p", None).await.json();
    assert_eq!(m["data"]["oldest_version"], 2);
    assert!(m["data"]["versions"].get("1").is_none());
    assert_eq!(
        h.call("GET", "/v1/secret/data/p?version=1", None)
            .await
            .status,
        404
    );

    // Lowering max_versions does not prune until the next write.
    h.put("/v1/secret/metadata/p", json!({"max_versions": 3}))
        .await;
    let m = h.call("GET", "/v1/secret/metadata/p", None).await.json();
    assert_eq!(m["data"]["versions"].as_object().unwrap().len(), 10);
    assert_eq!(m["data"]["max_versions"], 3);
    h.put("/v1/secret/data/p", json!({"data": {"i": 12}})).await;
    let m = h.call("GET", "/v1/secret/metadata/p", None).await.json();
    let keys: Vec<&String> = m["data"]["versions"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["10", "11", "12"]);
    assert_eq!(m["data"]["oldest_version"], 10);

    // The effective maximum is the larger of key and mount, not the key's.
    h.put("/v1/secret/config", json!({"max_versions": 5})).await;
    for i in 13..=20 {
        h.put("/v1/secret/data/p", json!({"data": {"i": i}})).await;
    }
    let m = h.call("GET", "/v1/secret/metadata/p", None).await.json();
    assert_eq!(m["data"]["versions"].as_object().unwrap().len(), 5);
    assert_eq!(m["data"]["oldest_version"], 16);
}

#[actix_web::test]
async fn check_and_set() {
    let h = harness().await;
    let r = h
        .put(
            "/v1/secret/data/c",
            json!({"data": {"a": 1}, "options": {"cas": 0}}),
        )
        .await;
    assert_eq!(r.status, 200);
    for cas in [json!(0), json!(-1), json!(5)] {
        let r = h
            .put(
                "/v1/secret/data/c",
                json!({"data": {"a": 2}, "options": {"cas": cas}}),
            )
            .await;
        assert_eq!(r.status, 400);
        assert_eq!(
            r.json(),
            json!({"errors": ["check-and-set parameter did not match the current version"]})
        );
    }
    // A numeric string is decoded weakly.
    let r = h
        .put(
            "/v1/secret/data/c",
            json!({"data": {"a": 2}, "options": {"cas": "1"}}),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = h
        .put(
            "/v1/secret/data/c",
            json!({"data": {"a": 2}, "options": {"cas": "x"}}),
        )
        .await;
    assert_eq!(
        r.json(),
        json!({"errors": ["error parsing check-and-set parameter"]})
    );
    // cas_required from the key, then from the mount.
    h.put("/v1/secret/metadata/c", json!({"cas_required": true}))
        .await;
    let r = h.put("/v1/secret/data/c", json!({"data": {"a": 3}})).await;
    assert_eq!(
        r.json(),
        json!({"errors": ["check-and-set parameter required for this call"]})
    );
    h.put("/v1/secret/config", json!({"cas_required": true}))
        .await;
    let r = h
        .put("/v1/secret/data/other", json!({"data": {"a": 3}}))
        .await;
    assert_eq!(r.status, 400);
    // Turning it off on a key while the mount mandates it: 200 with a warning only.
    let r = h
        .put("/v1/secret/metadata/c", json!({"cas_required": false}))
        .await;
    assert_eq!(r.status, 200);
    assert!(r.json()["warnings"][0]
        .as_str()
        .unwrap()
        .contains("mandated by backend config"));
    let r = h
        .put(
            "/v1/secret/data/other",
            json!({"data": {"a": 3}, "options": {"cas": 0}}),
        )
        .await;
    assert_eq!(r.status, 200);
}

// ---- §6.6 versions arrays ----

#[actix_web::test]
async fn version_lists_accept_strings_and_ints() {
    let h = harness().await;
    for i in 0..4 {
        h.put("/v1/secret/data/v", json!({"data": {"i": i}})).await;
    }
    assert_eq!(
        h.put("/v1/secret/delete/v", json!({"versions": ["1", "2"]}))
            .await
            .status,
        204
    );
    assert_eq!(
        h.put("/v1/secret/delete/v", json!({"versions": [3]}))
            .await
            .status,
        204
    );
    assert_eq!(
        h.put("/v1/secret/delete/v", json!({"versions": "4"}))
            .await
            .status,
        204
    );
    let m = h.call("GET", "/v1/secret/metadata/v", None).await.json();
    for n in ["1", "2", "3", "4"] {
        assert_ne!(m["data"]["versions"][n]["deletion_time"], "", "{n}");
    }
    assert_eq!(
        h.put("/v1/secret/undelete/v", json!({"versions": ["1", 2, 99]}))
            .await
            .status,
        204
    );
    let m = h.call("GET", "/v1/secret/metadata/v", None).await.json();
    assert_eq!(m["data"]["versions"]["1"]["deletion_time"], "");
    assert_eq!(m["data"]["versions"]["2"]["deletion_time"], "");
    assert_ne!(m["data"]["versions"]["3"]["deletion_time"], "");
    let r = h
        .call("GET", "/v1/secret/data/v?version=1", None)
        .await
        .json();
    assert_eq!(r["data"]["data"], json!({"i": 0}));

    let e = h.put("/v1/secret/delete/v", json!({"versions": []})).await;
    assert_eq!(e.json(), json!({"errors": ["No version number provided"]}));
    let e = h.put("/v1/secret/undelete/v", json!({})).await;
    assert_eq!(e.json(), json!({"errors": ["No version number provided"]}));
    let e = h.put("/v1/secret/destroy/v", json!({"versions": []})).await;
    assert_eq!(e.json(), json!({"errors": ["no version number provided"]}));
    // Destroyed versions cannot be undeleted.
    h.put("/v1/secret/destroy/v", json!({"versions": [1]}))
        .await;
    h.put("/v1/secret/undelete/v", json!({"versions": [1]}))
        .await;
    let m = h.call("GET", "/v1/secret/metadata/v", None).await.json();
    assert_eq!(m["data"]["versions"]["1"]["destroyed"], true);
    // A missing key is fine.
    assert_eq!(
        h.put("/v1/secret/destroy/none", json!({"versions": [1]}))
            .await
            .status,
        204
    );
}

// ---- §6.7 verbs ----

#[actix_web::test]
async fn put_equals_post_and_both_list_forms() {
    let h = harness().await;
    let r = h
        .call(
            "PUT",
            "/v1/secret/data/dir/a",
            Some(json!({"data": {"x": 1}})),
        )
        .await;
    assert_eq!(r.status, 200);
    h.put("/v1/secret/data/dir/b/c", json!({"data": {"x": 1}}))
        .await;
    h.put("/v1/secret/data/dir/b", json!({"data": {"x": 1}}))
        .await;
    let want = json!({"keys": ["a", "b", "b/"]});
    for (m, p) in [
        ("LIST", "/v1/secret/metadata/dir"),
        ("LIST", "/v1/secret/metadata/dir/"),
        ("GET", "/v1/secret/metadata/dir?list=true"),
        ("GET", "/v1/secret/metadata/dir/?list=true"),
    ] {
        let r = h.call(m, p, None).await;
        assert_eq!(r.status, 200, "{m} {p}");
        assert_eq!(r.json()["data"], want, "{m} {p}");
    }
    let root = h.call("LIST", "/v1/secret/metadata/", None).await.json();
    assert_eq!(root["data"], json!({"keys": ["dir/"]}));
    let root = h
        .call("GET", "/v1/secret/metadata?list=true", None)
        .await
        .json();
    assert_eq!(root["data"], json!({"keys": ["dir/"]}));
    assert_eq!(
        h.call("GET", "/v1/secret/metadata/dir?list=maybe", None)
            .await
            .status,
        400
    );
}

// ---- §6.8 PATCH ----

#[actix_web::test]
async fn patch_needs_merge_patch_content_type() {
    let h = harness().await;
    h.put(
        "/v1/secret/data/m",
        json!({"data": {"a": "1", "b": "2", "n": {"x": 1, "y": 2}}}),
    )
    .await;
    let r = h
        .call_with(
            "PATCH",
            "/v1/secret/data/m",
            Some(r#"{"data":{"a":"9"}}"#),
            &[
                ("X-Vault-Token", "root"),
                ("Content-Type", "application/json"),
            ],
        )
        .await;
    assert_eq!(r.status, 415);
    assert_eq!(
        r.json()["errors"][0],
        "PATCH requires Content-Type of application/merge-patch+json, provided application/json"
    );
    let r = h
        .call_with(
            "PATCH",
            "/v1/secret/data/m",
            Some(r#"{"data":{"a":"9","b":null,"n":{"y":null,"z":3}},"options":{"cas":1}}"#),
            &[
                ("X-Vault-Token", "root"),
                ("Content-Type", "application/merge-patch+json"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["data"]["version"], 2);
    let d = h.call("GET", "/v1/secret/data/m", None).await.json();
    assert_eq!(d["data"]["data"], json!({"a": "9", "n": {"x": 1, "z": 3}}));
    // PATCH of a deleted current version: 404 with the flat version metadata.
    h.call("DELETE", "/v1/secret/data/m", None).await;
    let r = h
        .call_with(
            "PATCH",
            "/v1/secret/data/m",
            Some(r#"{"data":{"a":"1"}}"#),
            &[
                ("X-Vault-Token", "root"),
                ("Content-Type", "application/merge-patch+json"),
            ],
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["data"]["version"], 2);
    // Metadata PATCH merges custom_metadata; null removes a key; missing key → empty 404.
    h.put(
        "/v1/secret/metadata/m",
        json!({"custom_metadata": {"a": "1", "b": "2"}}),
    )
    .await;
    let r = h
        .call_with(
            "PATCH",
            "/v1/secret/metadata/m",
            Some(r#"{"custom_metadata":{"b":null,"c":"3"},"max_versions":4}"#),
            &[
                ("X-Vault-Token", "root"),
                ("Content-Type", "application/merge-patch+json"),
            ],
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let m = h.call("GET", "/v1/secret/metadata/m", None).await.json();
    assert_eq!(m["data"]["custom_metadata"], json!({"a": "1", "c": "3"}));
    assert_eq!(m["data"]["max_versions"], 4);
    let r = h
        .call_with(
            "PATCH",
            "/v1/secret/metadata/none",
            Some(r#"{"max_versions":4}"#),
            &[
                ("X-Vault-Token", "root"),
                ("Content-Type", "application/merge-patch+json"),
            ],
        )
        .await;
    assert_eq!((r.status.as_u16(), r.text.as_str()), (404, ""));
}

// ---- §6.10 list ----

#[actix_web::test]
async fn empty_list_is_404_and_pagination_works() {
    let h = harness().await;
    let r = h.call("LIST", "/v1/secret/metadata/nothing", None).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json(), json!({"errors": []}));
    for k in ["a", "b", "c", "d/x", "e"] {
        h.put(&format!("/v1/secret/data/f/{k}"), json!({"data": {"k": k}}))
            .await;
    }
    let r = h
        .call("LIST", "/v1/secret/metadata/f?limit=2", None)
        .await
        .json();
    assert_eq!(r["data"], json!({"keys": ["a", "b"]}));
    let r = h
        .call("LIST", "/v1/secret/metadata/f?after=b&limit=2", None)
        .await
        .json();
    assert_eq!(r["data"], json!({"keys": ["c", "d/"]}));
    let r = h
        .call("GET", "/v1/secret/metadata/f?list=true&after=d/", None)
        .await
        .json();
    assert_eq!(r["data"], json!({"keys": ["e"]}));
    assert_eq!(
        h.call("LIST", "/v1/secret/metadata/f?after=e", None)
            .await
            .status,
        404
    );
    assert_eq!(
        h.call("LIST", "/v1/secret/metadata/f?limit=x", None)
            .await
            .status,
        400
    );
    // Metadata without versions is listed; a deleted key still is.
    h.put(
        "/v1/secret/metadata/f/meta-only",
        json!({"max_versions": 2}),
    )
    .await;
    let r = h.call("LIST", "/v1/secret/metadata/f", None).await.json();
    assert_eq!(
        r["data"]["keys"],
        json!(["a", "b", "c", "d/", "e", "meta-only"])
    );
}

// ---- §6.11–6.15 envelopes and system endpoints ----

#[actix_web::test]
async fn errors_are_exact_application_json() {
    let h = harness().await;
    for (m, p, body, status) in [
        ("POST", "/v1/secret/data/x", Some("{not json"), 400),
        ("POST", "/v1/secret/data/x", Some("[1,2]"), 400),
        ("POST", "/v1/secret/data/x", Some(r#"{"options":{}}"#), 400),
        ("POST", "/v1/secret/data/x", Some(r#"{"data":"str"}"#), 400),
        ("GET", "/v1/secret/data/a/../b", None, 400),
        ("GET", "/v1/secret/data/a//b", None, 400),
        ("GET", "/v1/secret/data/a%00b", None, 400),
        ("GET", "/v1/secret/data/%ff", None, 400),
        ("GET", "/v1/nomount/x", None, 404),
        ("DELETE", "/v1/secret/config", None, 405),
    ] {
        let r = h.call_with(m, p, body, &[("X-Vault-Token", "root")]).await;
        assert_eq!(r.status, status, "{m} {p}: {}", r.text);
        assert_eq!(r.content_type, "application/json", "{m} {p}");
        assert!(r.json()["errors"].is_array(), "{m} {p}");
    }
    let r = h
        .call_with(
            "POST",
            "/v1/secret/data/x",
            Some(r#"{"options":{}}"#),
            &[("X-Vault-Token", "root")],
        )
        .await;
    assert_eq!(r.json(), json!({"errors": ["no data provided"]}));
    let r = h.call("GET", "/v1/nomount/x", None).await;
    assert_eq!(
        r.json(),
        json!({"errors": ["no handler for route \"nomount/x\". route entry not found."]})
    );
    // Nothing was stored by any of them.
    assert_eq!(
        h.call("LIST", "/v1/secret/metadata/", None).await.status,
        404
    );
}

#[actix_web::test]
async fn auth_is_required_and_bearer_works() {
    let h = harness().await;
    let r = h.call_with("GET", "/v1/secret/config", None, &[]).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json(), json!({"errors": ["permission denied"]}));
    let r = h
        .call_with(
            "GET",
            "/v1/secret/config",
            None,
            &[("X-Vault-Token", "wrong")],
        )
        .await;
    assert_eq!(r.status, 403);
    let r = h
        .call_with(
            "GET",
            "/v1/secret/config",
            None,
            &[("Authorization", "Bearer root")],
        )
        .await;
    assert_eq!(r.status, 200);
    // Health needs no token.
    assert_eq!(
        h.call_with("GET", "/v1/sys/health", None, &[]).await.status,
        200
    );
}

#[actix_web::test]
async fn lookup_self_has_policies() {
    let h = harness().await;
    for m in ["GET", "POST"] {
        let v = h.call(m, "/v1/auth/token/lookup-self", None).await.json();
        assert_envelope(&v);
        assert_eq!(v["data"]["policies"], json!(["root"]));
        assert_eq!(v["data"]["id"], "root");
        assert_eq!(v["data"]["ttl"], 0);
        assert!(v["data"]["expire_time"].is_null());
        assert_eq!(v["data"]["path"], "auth/token/root");
    }
}

#[actix_web::test]
async fn raw_system_endpoints() {
    let h = harness().await;
    let v = h.call("GET", "/v1/sys/health", None).await.json();
    assert_eq!(
        (v["initialized"].clone(), v["sealed"].clone()),
        (json!(true), json!(false))
    );
    assert!(v.get("data").is_none());
    let v = h.call("GET", "/v1/sys/seal-status", None).await.json();
    assert_eq!(v["sealed"], false);
    assert!(v.get("data").is_none());
    let v = h.call("GET", "/v1/sys/leader", None).await.json();
    assert_eq!(v["active_time"], "0001-01-01T00:00:00Z");
    assert_eq!(v["ha_enabled"], false);
    let v = h.call("GET", "/v1/sys/init", None).await.json();
    assert_eq!(v, json!({"initialized": true}));
    let r = h
        .call(
            "PUT",
            "/v1/sys/init",
            Some(json!({"secret_shares": 1, "secret_threshold": 1})),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"errors": ["Vault is already initialized"]})
    );
    assert_eq!(
        h.call("GET", "/v1/sys/health?activecode=299", None)
            .await
            .status,
        299
    );
}

#[actix_web::test]
async fn mounts_enable_list_tune_disable() {
    let h = harness().await;
    // hvac sends an int version and nulls.
    let r = h
        .put("/v1/sys/mounts/team%20a/kv", json!({"type": "kv", "options": {"version": 2}, "description": null, "config": null, "plugin_name": null}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = h
        .put("/v1/sys/mounts/team%20a/kv", json!({"type": "kv-v2"}))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"errors": ["path is already in use at team a/kv/"]})
    );
    assert_eq!(
        h.put("/v1/sys/mounts/team%20a", json!({"type": "kv-v2"}))
            .await
            .status,
        400
    );
    assert_eq!(
        h.put("/v1/sys/mounts/x", json!({"type": "pki"}))
            .await
            .status,
        400
    );
    let r = h
        .put(
            "/v1/sys/mounts/x",
            json!({"type": "pki", "options": {"version": "2"}}),
        )
        .await;
    assert_eq!(
        r.json(),
        json!({"errors": ["secrets engine \"pki\" does not allow setting a version"]})
    );
    assert_eq!(
        h.put("/v1/sys/mounts/sys/x", json!({"type": "kv"}))
            .await
            .status,
        400
    );

    let v = h.call("GET", "/v1/sys/mounts", None).await.json();
    assert_envelope(&v);
    for (k, m) in v["data"].as_object().unwrap() {
        assert!(m["type"].is_string(), "{k} is not a mount object");
    }
    assert_eq!(v["data"]["team a/kv/"]["options"]["version"], "2");
    assert_eq!(v["team a/kv/"]["type"], "kv"); // injected at the top level too
    assert_eq!(v["data"]["sys/"]["type"], "system");

    // Secrets in a mount whose path has a slash and a space, through percent-encoding.
    let r = h
        .put(
            "/v1/team%20a/kv/data/some%20secret/pw",
            json!({"data": {"p": "w"}}),
        )
        .await;
    assert_eq!(r.status, 200);
    let d = h
        .call("GET", "/v1/team%20a/kv/data/some%20secret/pw", None)
        .await
        .json();
    assert_eq!(d["data"]["data"], json!({"p": "w"}));

    // A KV v1 mount keeps its options as given (none: the kv CLI reads a missing version as 1) and
    // is upgraded by enable-versioning, a tune (KV v1 itself: tests_kv1.rs).
    let r = h.put("/v1/sys/mounts/old", json!({"type": "kv"})).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let p = h
        .call("GET", "/v1/sys/internal/ui/mounts/old", None)
        .await
        .json();
    assert_eq!(p["data"]["options"], json!({}));
    let r = h
        .put("/v1/sys/mounts/old/tune", json!({"options": {"version": "2"}, "default_lease_ttl": "", "max_lease_ttl": "", "force_no_cache": false}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json()["warnings"],
        json!(["Upgrading mount from version 0 to version 2. This mount will be unavailable for a brief period and will resume service shortly."])
    );
    let p = h
        .call("GET", "/v1/sys/internal/ui/mounts/old", None)
        .await
        .json();
    assert_eq!(p["data"]["options"]["version"], "2");
    assert_eq!(
        h.put("/v1/old/data/x", json!({"data": {"a": 1}}))
            .await
            .status,
        200
    );
    let t = h.call("GET", "/v1/sys/mounts/old/tune", None).await.json();
    assert_eq!(t["data"]["options"]["version"], "2");

    assert_eq!(
        h.call("DELETE", "/v1/sys/mounts/team%20a/kv", None)
            .await
            .status,
        204
    );
    assert_eq!(
        h.call("DELETE", "/v1/sys/mounts/never", None).await.status,
        204
    );
    assert_eq!(
        h.call("GET", "/v1/team%20a/kv/data/some%20secret/pw", None)
            .await
            .status,
        404
    );
    // Re-enabling the path starts empty.
    h.put("/v1/sys/mounts/team%20a/kv", json!({"type": "kv-v2"}))
        .await;
    assert_eq!(
        h.call("GET", "/v1/team%20a/kv/data/some%20secret/pw", None)
            .await
            .status,
        404
    );
}

#[actix_web::test]
async fn catch_all_warns_without_error() {
    let h = harness().await;
    let r = h.call("GET", "/v1/secret/foo", None).await;
    assert_eq!(r.status, 404);
    let v = r.json();
    assert!(v.get("errors").is_none());
    assert!(v["warnings"][0]
        .as_str()
        .unwrap()
        .starts_with("Invalid path for a versioned K/V secrets engine"));
    let v = h.call("GET", "/v1/secret/data", None).await.json();
    assert_eq!(
        v["warnings"][0],
        "Non-listing operations on the root of a K/V v2 mount are not supported."
    );
    let v = h.call("LIST", "/v1/secret/data/", None).await.json();
    assert!(v["warnings"][0]
        .as_str()
        .unwrap()
        .contains("'vault kv list'"));
}

#[actix_web::test]
async fn delete_version_after_schedules_deletion_and_undelete_recomputes() {
    let h = harness().await;
    h.put(
        "/v1/secret/metadata/d",
        json!({"delete_version_after": "1h"}),
    )
    .await;
    let w = h
        .put("/v1/secret/data/d", json!({"data": {"a": 1}}))
        .await
        .json();
    let scheduled = w["data"]["deletion_time"].as_str().unwrap().to_string();
    assert!(is_rfc3339_nano_z(&scheduled));
    // A future deletion_time still reads as active.
    let r = h.call("GET", "/v1/secret/data/d", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"]["metadata"]["deletion_time"], scheduled);
    h.engine.clock().advance(3601);
    let r = h.call("GET", "/v1/secret/data/d", None).await;
    assert_eq!(r.status, 404);
    assert!(r.json()["data"]["data"].is_null());
    // Undelete recomputes from now: active again, with a new deletion_time an hour ahead.
    h.put("/v1/secret/undelete/d", json!({"versions": [1]}))
        .await;
    let r = h.call("GET", "/v1/secret/data/d", None).await;
    assert_eq!(r.status, 200);
    assert_ne!(r.json()["data"]["metadata"]["deletion_time"], scheduled);
    // The mount's -1 disables it everywhere.
    h.put("/v1/secret/config", json!({"delete_version_after": -1}))
        .await;
    let w = h
        .put("/v1/secret/data/d", json!({"data": {"a": 2}}))
        .await
        .json();
    assert_eq!(w["data"]["deletion_time"], "");
}

#[actix_web::test]
async fn metadata_read_write_delete() {
    let h = harness().await;
    assert_eq!(h.put("/v1/secret/metadata/md", json!({})).await.status, 204);
    assert_eq!(
        h.call("GET", "/v1/secret/metadata/md", None).await.status,
        404,
        "no-op must not create"
    );
    let r = h
        .put(
            "/v1/secret/metadata/md",
            json!({"max_versions": 3, "custom_metadata": {"owner": "ops", "n": 5}}),
        )
        .await;
    assert_eq!(r.status, 204);
    let m = h.call("GET", "/v1/secret/metadata/md", None).await.json();
    assert_eq!(m["data"]["current_version"], 0);
    assert_eq!(m["data"]["versions"], json!({}));
    assert_eq!(
        m["data"]["custom_metadata"],
        json!({"owner": "ops", "n": "5"})
    );
    assert_eq!(h.call("GET", "/v1/secret/data/md", None).await.status, 404);
    let w = h
        .put("/v1/secret/data/md", json!({"data": {"a": 1}}))
        .await
        .json();
    assert_eq!(
        w["data"]["custom_metadata"],
        json!({"owner": "ops", "n": "5"})
    );
    // Replaced wholesale by a write.
    h.put(
        "/v1/secret/metadata/md",
        json!({"custom_metadata": {"x": "y"}}),
    )
    .await;
    let m = h.call("GET", "/v1/secret/metadata/md", None).await.json();
    assert_eq!(m["data"]["custom_metadata"], json!({"x": "y"}));
    let bad = h
        .put(
            "/v1/secret/metadata/md",
            json!({"custom_metadata": {"k": ""}}),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.json()["errors"][0]
        .as_str()
        .unwrap()
        .starts_with("custom_metadata validation failed: "));
    let m = h.call("GET", "/v1/secret/metadata/md", None).await.json();
    assert_eq!(
        m["data"]["custom_metadata"],
        json!({"x": "y"}),
        "a refused write changes nothing"
    );
    assert_eq!(
        h.call("DELETE", "/v1/secret/metadata/md", None)
            .await
            .status,
        204
    );
    assert_eq!(
        h.call("GET", "/v1/secret/metadata/md", None).await.status,
        404
    );
    assert_eq!(
        h.call("DELETE", "/v1/secret/metadata/md", None)
            .await
            .status,
        204
    );
    assert_eq!(
        h.call("DELETE", "/v1/secret/data/never", None).await.status,
        204
    );
}

#[actix_web::test]
async fn subkeys_hides_values() {
    let h = harness().await;
    h.put(
        "/v1/secret/data/sk",
        json!({"data": {"a": "x", "b": {"c": "y"}}}),
    )
    .await;
    let v = h.call("GET", "/v1/secret/subkeys/sk", None).await.json();
    assert_eq!(v["data"]["subkeys"], json!({"a": null, "b": {"c": null}}));
    assert_eq!(v["data"]["metadata"]["version"], 1);
    let v = h
        .call("GET", "/v1/secret/subkeys/sk?depth=1", None)
        .await
        .json();
    assert_eq!(v["data"]["subkeys"], json!({"a": null, "b": null}));
    assert_eq!(
        h.call("GET", "/v1/secret/subkeys/none", None).await.status,
        404
    );
}

#[actix_web::test]
async fn oversized_body_is_413() {
    let mut h = harness().await;
    h.max = 1000;
    let big = json!({"data": {"a": "x".repeat(2000)}});
    let r = h.put("/v1/secret/data/big", big).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.content_type, "application/json");
    assert_eq!(h.call("GET", "/v1/secret/data/big", None).await.status, 404);
}

#[actix_web::test]
async fn wrong_root_key_stays_sealed() {
    let dir = std::env::temp_dir().join(format!("kvseal-test-{}", uuid::Uuid::new_v4()));
    {
        let store = Store::open(&dir, Durability::Normal).unwrap();
        let engine =
            Engine::open(store, SealMode::File(Key32::random()), Clock::default()).unwrap();
        engine.init(Some("root".into()), 1, 1).await.unwrap();
    }
    let store = Store::open(&dir, Durability::Normal).unwrap();
    let engine =
        Arc::new(Engine::open(store, SealMode::File(Key32::random()), Clock::default()).unwrap());
    let h = Harness {
        engine,
        dir,
        max: 1024,
        timeout: None,
    };
    let r = h.call("GET", "/v1/secret/data/x", None).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json(), json!({"errors": ["Vault is sealed"]}));
    assert_eq!(h.call("GET", "/v1/sys/health", None).await.status, 503);
    assert_eq!(
        h.call("GET", "/v1/sys/seal-status", None).await.json()["sealed"],
        true
    );
}

#[actix_web::test]
async fn json_complexity_limits_are_400_on_both_apis() {
    let h = harness().await;
    let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let deep = format!(r#"{{"data":{{"a":{}}}}}"#, nested(110));
    let r = h
        .call_with(
            "POST",
            "/v1/secret/data/deep",
            Some(&deep),
            &[("X-Vault-Token", "root")],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.json()["errors"][0]
        .as_str()
        .unwrap()
        .contains("nesting exceeds the limit of 100"));
    let many: serde_json::Map<String, Value> =
        (0..10_001).map(|i| (format!("k{i}"), json!(i))).collect();
    let r = h.put("/v1/secret/data/wide", json!({"data": many})).await;
    assert_eq!(r.status, 400);
    assert!(r.json()["errors"][0]
        .as_str()
        .unwrap()
        .contains("10000 entries"));
    let okms = format!("/api/{}/v2/secret", crate::testutil::OKMS_ID);
    let body = format!(
        r#"{{"path":"deep","version":{{"data":{{"a":{}}}}}}}"#,
        nested(110)
    );
    let r = h
        .call_with("POST", &okms, Some(&body), &[("X-Vault-Token", "root")])
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.json()["errors"][0]
        .as_str()
        .unwrap()
        .contains("nesting exceeds"));
    // Within the limits: fine.
    let ok = format!(r#"{{"data":{{"a":{}}}}}"#, nested(50));
    let r = h
        .call_with(
            "POST",
            "/v1/secret/data/deep",
            Some(&ok),
            &[("X-Vault-Token", "root")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        h.call("GET", "/v1/secret/data/wide", None).await.status,
        404
    );
}

#[actix_web::test]
async fn a_request_past_its_deadline_is_503_on_both_apis() {
    let mut h = harness().await;
    // The writer is held busy longer than the deadline: a write queued behind it is cut off.
    h.timeout = Some(std::time::Duration::from_millis(100));
    h.engine.stall_writer(600);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let r = h
        .put("/v1/secret/data/late", json!({"data": {"a": 1}}))
        .await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.json(), json!({"errors": ["context deadline exceeded"]}));
    let okms = format!("/api/{}/v2/secret", crate::testutil::OKMS_ID);
    h.engine.stall_writer(600);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let r = h
        .put(
            &okms,
            json!({"path": "late2", "version": {"data": {"a": 1}}}),
        )
        .await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.json()["errors"][0], "request deadline exceeded");
    // With the normal deadline the same requests go through.
    h.timeout = None;
    assert_eq!(
        h.put("/v1/secret/data/late3", json!({"data": {"a": 1}}))
            .await
            .status,
        200
    );
}

#[actix_web::test]
async fn invalid_percent_escapes_in_the_path_are_400_and_store_nothing() {
    let h = harness().await;
    // (method, path, the escape Go's url.EscapeError quotes)
    let cases = [
        ("POST", "/v1/secret/data/x%zz", "%zz"),
        ("POST", "/v1/secret/data/x%4", "%4"),
        ("POST", "/v1/secret/data/x%", "%"),
        ("POST", "/v1/secret/data/x%4g/y", "%4g"),
        ("GET", "/v1/secret/data/x%zz", "%zz"),
        ("DELETE", "/v1/secret/metadata/x%", "%"),
        ("POST", "/v1/sys/policies/acl/p%zz", "%zz"),
        ("GET", "/v1/sys/health%", "%"),
        // Public routes too, and without a token: refused before routing and authentication.
        ("POST", "/v1/sys/unseal%zz", "%zz"),
    ];
    for (method, path, escape) in cases {
        let body = json!({"data": {"k": "v"}, "policy": "path \"x\" {}"}).to_string();
        let r = h.call_with(method, path, Some(&body), &[]).await;
        assert_eq!(r.status, 400, "{method} {path}: {}", r.text);
        assert_eq!(r.content_type, "application/json", "{method} {path}");
        assert_eq!(
            r.json(),
            json!({"errors": [format!("invalid URL escape \"{escape}\"")]}),
            "{method} {path}"
        );
        let r = h
            .call_with(method, path, Some(&body), &[("X-Vault-Token", "root")])
            .await;
        assert_eq!(r.status, 400, "{method} {path} with a token: {}", r.text);
    }
    // Nothing was stored under any name.
    assert_eq!(
        h.call("LIST", "/v1/secret/metadata/", None).await.status,
        404
    );
    assert_eq!(
        h.call("GET", "/v1/sys/policies/acl/p%25zz", None)
            .await
            .status,
        404
    );
    // Valid escapes still decode: `%41` is `A`.
    assert_eq!(
        h.put("/v1/secret/data/x%41", json!({"data": {"k": "v"}}))
            .await
            .status,
        200
    );
    assert_eq!(h.call("GET", "/v1/secret/data/xA", None).await.status, 200);
}

/// `sys/mounts/<path>` and its `tune` answer their fields at the top level as well as in `data`,
/// as Vault and OpenBao do (`injectDataIntoTopRoutes`): clients written against the top-level
/// fields read them there.
#[actix_web::test]
async fn mount_reads_carry_their_fields_at_the_top_level_too() {
    let h = harness().await;
    // (path, a top-level field, its expected value)
    let cases: [(&str, &str, Value); 5] = [
        ("/v1/sys/mounts/secret", "type", json!("kv")),
        ("/v1/sys/mounts/secret", "options", json!({"version": "2"})),
        (
            "/v1/sys/mounts/secret/tune",
            "default_lease_ttl",
            json!(2764800),
        ),
        (
            "/v1/sys/mounts/secret/tune",
            "options",
            json!({"version": "2"}),
        ),
        (
            "/v1/sys/mounts/cubbyhole/tune",
            "max_lease_ttl",
            json!(2764800),
        ),
    ];
    for (path, field, want) in cases {
        let r = h.call("GET", path, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        let body = r.json();
        assert_eq!(
            (&body[field], &body["data"][field]),
            (&want, &want),
            "{path}: {body}"
        );
    }
}
