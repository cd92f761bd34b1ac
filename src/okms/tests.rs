//! In-process tests of the OKMS API over the real engine (the real binary with okms-style clients is
//! tested in compat-tests/).

use serde_json::{json, Value};

use crate::testutil::{harness, Harness, OKMS_ID};

fn v2(p: &str) -> String {
    format!("/api/{OKMS_ID}/v2/{p}")
}

async fn create(h: &Harness, path: &str, data: Value) -> Value {
    let r = h
        .put(
            &v2("secret"),
            json!({"path": path, "version": {"data": data}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

fn assert_okms_error(v: &Value, category: u32) {
    let code = v["error_code"].as_u64().unwrap() as u32;
    assert_eq!(code >> 24, 3, "{v}");
    assert_eq!((code >> 16) & 0xff, 4, "{v}");
    assert_eq!((code >> 12) & 0xf, category, "{v}");
    assert!(v["error_id"].is_string() && v["request_id"].is_string());
    assert!(v["errors"][0].is_string());
    assert_eq!(v.as_object().unwrap().len(), 4, "{v}");
}

#[actix_web::test]
async fn create_get_update_versions_and_states() {
    let h = harness().await;
    let c = h
        .put(
            &v2("secret"),
            json!({"path": "prod/db", "metadata": {"casRequired": true, "deactivateVersionAfter": "1d", "maxVersions": 10, "customMetadata": {"team": "a"}}, "version": {"data": {"login": "admin"}}}),
        )
        .await;
    assert_eq!(c.status, 200, "{}", c.text);
    let m = &c.json()["metadata"];
    assert_eq!(m["casRequired"], true);
    assert_eq!(m["currentVersion"], 1);
    assert_eq!(m["oldestVersion"], 0);
    assert_eq!(m["deactivateVersionAfter"], "1d");
    assert_eq!(m["maxVersions"], 10);
    assert_eq!(m["customMetadata"], json!({"team": "a"}));
    let ts = m["updatedAt"].as_str().unwrap();
    assert!(ts.len() == 20 && ts.ends_with('Z'), "{ts}");
    // Exists already → 400, category Conflict; nothing changes.
    let again = h
        .put(
            &v2("secret"),
            json!({"path": "prod/db", "version": {"data": {"x": 1}}}),
        )
        .await;
    assert_eq!(again.status, 400);
    assert_okms_error(&again.json(), 10);

    // Both encodings; data only with includeData.
    let g = h.call("GET", &v2("secret/prod%2Fdb"), None).await.json();
    assert!(g["version"].get("data").is_none());
    let g = h
        .call("GET", &v2("secret/prod/db?includeData=true"), None)
        .await
        .json();
    assert_eq!(g["version"]["data"], json!({"login": "admin"}));
    assert_eq!(g["version"]["state"], "active");
    assert_eq!(g["path"], "prod/db");

    // casRequired: an update without cas fails, with cas succeeds; turning it off in the same
    // request allows a write without cas (okms-cli test 014).
    let r = h
        .call(
            "PUT",
            &v2("secret/prod%2Fdb"),
            Some(json!({"version": {"data": {"login": "x"}}})),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_okms_error(&r.json(), 10);
    let r = h
        .call(
            "PUT",
            &v2("secret/prod%2Fdb?cas=1"),
            Some(json!({"metadata": {"customMetadata": {}}, "version": {"data": {"login": "v2"}}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["metadata"]["currentVersion"], 2);
    assert_eq!(
        r.json()["metadata"]["customMetadata"],
        json!({"team": "a"}),
        "{{}} leaves it as is"
    );
    let r = h
        .call(
            "PUT",
            &v2("secret/prod%2Fdb"),
            Some(json!({"metadata": {"casRequired": false}, "version": {"data": {"login": "v3"}}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Versions: create, list, get, states.
    let v = h
        .call(
            "POST",
            &v2("secret/prod%2Fdb/version"),
            Some(json!({"data": {"login": "v4"}})),
        )
        .await;
    assert_eq!(v.json()["id"], 4);
    assert_eq!(v.json()["state"], "active");
    let list = h
        .call("GET", &v2("secret/prod%2Fdb/version"), None)
        .await
        .json();
    let ids: Vec<u64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3, 4]);
    let s = h
        .call(
            "PUT",
            &v2("secret/prod%2Fdb/version/4"),
            Some(json!({"state": "deactivated"})),
        )
        .await
        .json();
    assert_eq!(s["state"], "deactivated");
    assert!(s["deactivatedAt"].is_string());
    let g = h
        .call("GET", &v2("secret/prod%2Fdb?includeData=true"), None)
        .await;
    assert_eq!(g.status, 200);
    assert_eq!(g.json()["version"]["state"], "deactivated");
    assert!(g.json()["version"].get("data").is_none());
    let s = h
        .call(
            "PUT",
            &v2("secret/prod/db/version/4"),
            Some(json!({"state": "active"})),
        )
        .await
        .json();
    assert_eq!(s["state"], "active");
    let s = h
        .call(
            "PUT",
            &v2("secret/prod/db/version/1"),
            Some(json!({"state": "deleted"})),
        )
        .await
        .json();
    assert_eq!(s["state"], "deleted");
    let r = h
        .call(
            "PUT",
            &v2("secret/prod/db/version/1"),
            Some(json!({"state": "active"})),
        )
        .await;
    assert_eq!(r.status, 400, "deleted is terminal");
    let one = h
        .call(
            "GET",
            &v2("secret/prod/db/version/2?includeData=true"),
            None,
        )
        .await
        .json();
    assert_eq!(one["data"], json!({"login": "v2"}));

    // Cross-API: the Vault view of the same secret.
    let vault = h
        .call("GET", "/v1/secret/data/prod/db?version=1", None)
        .await;
    assert_eq!(vault.status, 404);
    assert_eq!(vault.json()["data"]["metadata"]["destroyed"], true);
    let vault = h.call("GET", "/v1/secret/data/prod/db", None).await.json();
    assert_eq!(vault["data"]["data"], json!({"login": "v4"}));
    assert_eq!(vault["data"]["metadata"]["version"], 4);
    h.call("DELETE", "/v1/secret/data/prod/db", None).await;
    let g = h
        .call("GET", &v2("secret/prod/db/version/4"), None)
        .await
        .json();
    assert_eq!(g["state"], "deactivated");

    // Delete the secret.
    assert_eq!(
        h.call("DELETE", &v2("secret/prod%2Fdb"), None).await.status,
        204
    );
    let r = h.call("GET", &v2("secret/prod%2Fdb"), None).await;
    assert_eq!(r.status, 404);
    assert_okms_error(&r.json(), 5);
    assert_eq!(
        h.call("DELETE", &v2("secret/prod%2Fdb"), None).await.status,
        404
    );
}

#[actix_web::test]
async fn bad_input_is_400_and_changes_nothing() {
    let h = harness().await;
    create(&h, "a", json!({"k": "v"})).await;
    let big = "x".repeat(70 * 1024);
    let cases: Vec<(&str, String, Option<Value>, Option<&str>)> = vec![
        ("POST", v2("secret"), None, Some("{not json")),
        (
            "POST",
            v2("secret"),
            Some(json!({"path": 5, "version": {"data": {}}})),
            None,
        ),
        (
            "POST",
            v2("secret"),
            Some(json!({"path": "x".repeat(256), "version": {"data": {}}})),
            None,
        ),
        (
            "POST",
            v2("secret"),
            Some(json!({"path": "a b", "version": {"data": {}}})),
            None,
        ),
        (
            "POST",
            v2("secret"),
            Some(json!({"path": "../a", "version": {"data": {}}})),
            None,
        ),
        (
            "POST",
            v2("secret"),
            Some(json!({"path": "b", "version": {"data": {"k": big}}})),
            None,
        ),
        (
            "POST",
            v2("secret"),
            Some(json!({"path": "b", "version": {"data": {}}, "extra": 1})),
            None,
        ),
        ("GET", v2("secret/a?version=0"), None, None),
        ("GET", v2("secret/a?version=24001"), None, None),
        ("GET", v2("secret/a?includeData=maybe"), None, None),
        (
            "PUT",
            v2("secret/a?cas=24001"),
            Some(json!({"version": {"data": {"k": "w"}}})),
            None,
        ),
        (
            "PUT",
            v2("secret/a/version/1"),
            Some(json!({"state": "paused"})),
            None,
        ),
        (
            "PUT",
            v2("secret/a"),
            Some(json!({"metadata": {"maxVersions": 24001}})),
            None,
        ),
        (
            "PUT",
            v2("secret/a"),
            Some(json!({"metadata": {"deactivateVersionAfter": "soon"}})),
            None,
        ),
        (
            "PUT",
            v2("secret/a"),
            Some(json!({"metadata": {"customMetadata": {"k": "a b"}}})),
            None,
        ),
        ("GET", v2("secret/a%20b"), None, None),
    ];
    for (m, p, body, raw) in cases {
        let text = body.map(|b| b.to_string());
        let b = raw.or(text.as_deref());
        let r = h
            .call_with(m, &p, b, &[("Authorization", "Bearer root")])
            .await;
        assert_eq!(r.status, 400, "{m} {p}: {}", r.text);
        assert_eq!(r.content_type, "application/json");
        assert_okms_error(&r.json(), 2);
    }
    let g = h
        .call("GET", &v2("secret/a?includeData=true"), None)
        .await
        .json();
    assert_eq!(g["version"]["data"], json!({"k": "v"}));
    assert_eq!(g["metadata"]["currentVersion"], 1);
    assert_eq!(g["metadata"]["maxVersions"], 0);
    let list = h.call("GET", &v2("secret"), None).await.json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    // Pagination headers out of range, a bad cursor, a missing token, an unknown domain.
    let r = h
        .call_with(
            "GET",
            &v2("secret"),
            None,
            &[("X-Vault-Token", "root"), ("X-Pagination-Size", "5")],
        )
        .await;
    assert_eq!(r.status, 400);
    let r = h
        .call_with(
            "GET",
            &v2("secret"),
            None,
            &[("X-Vault-Token", "root"), ("X-Pagination-Cursor", "!!")],
        )
        .await;
    assert_eq!(r.status, 400);
    let r = h.call_with("GET", &v2("secret"), None, &[]).await;
    assert_eq!(r.status, 401);
    assert_okms_error(&r.json(), 3);
    let r = h
        .call(
            "GET",
            &format!("/api/{}/v2/secret", uuid::Uuid::new_v4()),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    assert_okms_error(&r.json(), 5);
}

#[actix_web::test]
async fn pagination_walks_every_secret_once_under_writes() {
    let h = harness().await;
    for i in 0..45 {
        create(&h, &format!("s/{i:03}"), json!({"i": i})).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut headers = vec![("X-Vault-Token", "root"), ("X-Pagination-Size", "10")];
        let c = cursor.clone();
        if let Some(c) = &c {
            headers.push(("X-Pagination-Cursor", c.as_str()));
        }
        let r = h.call_with("GET", &v2("secret"), None, &headers).await;
        assert_eq!(r.status, 200, "{}", r.text);
        for item in r.json().as_array().unwrap() {
            seen.push(item["path"].as_str().unwrap().to_string());
        }
        pages += 1;
        // Writes between pages: new keys before and after the cursor, and a deletion.
        create(&h, &format!("s/{pages:03}-new"), json!({})).await;
        create(&h, &format!("a/{pages}"), json!({})).await;
        match r.headers.get("X-Pagination-Cursor-Next") {
            Some(n) => cursor = Some(n.to_str().unwrap().to_string()),
            None => break,
        }
        assert!(pages < 20);
    }
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), seen.len(), "a secret was returned twice");
    for i in 0..45 {
        assert!(seen.contains(&format!("s/{i:03}")), "s/{i:03} was skipped");
    }
}

#[actix_web::test]
async fn secret_config_and_the_v1_api() {
    let h = harness().await;
    let r = h
        .call(
            "PUT",
            &v2("secretConfig"),
            Some(json!({"maxVersions": 5, "casRequired": false, "deactivateVersionAfter": "0s"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json(),
        json!({"casRequired": false, "deactivateVersionAfter": "0s", "maxVersions": 5})
    );
    // okms-cli writes the config through v1 and reads it through v2.
    let r = h
        .put(
            &format!("/api/{OKMS_ID}/v1/secret/config"),
            json!({"max_versions": 24, "delete_version_after": "1d", "cas_required": false}),
        )
        .await;
    assert_eq!(r.status, 204);
    let c = h.call("GET", &v2("secretConfig"), None).await.json();
    assert_eq!(c["deactivateVersionAfter"], "1d");
    assert_eq!(c["maxVersions"], 24);
    assert_eq!(
        h.call("GET", "/v1/secret/config", None).await.json()["data"]["delete_version_after"],
        "24h0m0s"
    );

    let v1 = |p: &str| format!("/api/{OKMS_ID}/v1/secret/{p}");
    let w = h
        .put(&v1("data/x/y"), json!({"data": {"a": "1"}}))
        .await
        .json();
    assert_eq!(w["data"]["version"], 1);
    assert!(
        w.get("lease_id").is_none(),
        "OKMS v1 envelope is request_id + data only: {w}"
    );
    let r = h
        .call_with(
            "PATCH",
            &v1("data/x/y"),
            Some(r#"{"data":{"b":"2"}}"#),
            &[
                ("X-Vault-Token", "root"),
                ("Content-Type", "application/json"),
            ],
        )
        .await;
    assert_eq!(
        r.status, 200,
        "okms-sdk-go patches with application/json: {}",
        r.text
    );
    let g = h.call("GET", &v1("data/x/y"), None).await.json();
    assert_eq!(g["data"]["data"], json!({"a": "1", "b": "2"}));
    h.put(&v1("delete/x/y"), json!({"versions": [2]})).await;
    let g = h.call("GET", &v1("data/x/y"), None).await;
    assert_eq!(g.status, 404);
    let g = g.json();
    assert!(g["data"]["data"].is_null());
    assert!(g["error_code"].is_number() && g["request_id"].is_string());
    let l = h
        .call("GET", &format!("/api/{OKMS_ID}/v1/secret/metadata"), None)
        .await
        .json();
    assert_eq!(l["data"]["keys"], json!(["x/"]));
    let l = h
        .call("GET", &v1("metadata/x?list=true"), None)
        .await
        .json();
    assert_eq!(l["data"]["keys"], json!(["y"]));
    let p = h
        .call(
            "GET",
            &format!("/api/{OKMS_ID}/v1/sys/internal/ui/mounts/secret/x/y"),
            None,
        )
        .await
        .json();
    assert_eq!(p["data"]["path"], "secret/");
    assert_eq!(p["data"]["options"]["version"], "2");
}

#[actix_web::test]
async fn okms_routes_follow_the_same_policies() {
    let h = harness().await;
    let policy = r#"
path "secret/data/app/*"     { capabilities = ["create", "read", "update"] }
path "secret/metadata/app/*" { capabilities = ["read"] }
path "secret/delete/app/*"   { capabilities = ["update"] }
"#;
    assert_eq!(
        h.put("/v1/sys/policies/acl/app", json!({"policy": policy}))
            .await
            .status,
        204
    );
    let t = h
        .put("/v1/auth/token/create", json!({"policies": ["app"]}))
        .await
        .json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let as_t = |m: &'static str, p: String, b: Option<Value>| {
        let t = t.clone();
        let h = &h;
        async move {
            h.call_with(
                m,
                &p,
                b.map(|b| b.to_string()).as_deref(),
                &[("Authorization", &format!("Bearer {t}"))],
            )
            .await
        }
    };
    create(&h, "other", json!({"x": 1})).await;
    // Allowed by the mapping: create = create on data/; read = read on metadata/ (+ data/ with
    // includeData); new version = update on data/; deactivate = update on delete/.
    assert_eq!(
        as_t(
            "POST",
            v2("secret"),
            Some(json!({"path": "app/db", "version": {"data": {"a": 1}}}))
        )
        .await
        .status,
        200
    );
    assert_eq!(
        as_t("GET", v2("secret/app%2Fdb?includeData=true"), None)
            .await
            .status,
        200
    );
    assert_eq!(
        as_t(
            "POST",
            v2("secret/app%2Fdb/version"),
            Some(json!({"data": {"a": 2}}))
        )
        .await
        .status,
        200
    );
    assert_eq!(
        as_t(
            "PUT",
            v2("secret/app%2Fdb/version/1"),
            Some(json!({"state": "deactivated"}))
        )
        .await
        .status,
        200
    );
    assert_eq!(
        as_t("GET", format!("/api/{OKMS_ID}/v1/secret/data/app/db"), None)
            .await
            .status,
        200
    );
    // Denied: 403 with the OKMS body (category Authorization).
    for (m, p, b) in [
        ("GET", v2("secret"), None),
        ("GET", v2("secret/other"), None),
        (
            "PUT",
            v2("secret/app%2Fdb/version/1"),
            Some(json!({"state": "active"})),
        ),
        (
            "PUT",
            v2("secret/app%2Fdb/version/1"),
            Some(json!({"state": "deleted"})),
        ),
        ("DELETE", v2("secret/app%2Fdb"), None),
        (
            "PUT",
            v2("secret/app%2Fdb"),
            Some(json!({"metadata": {"maxVersions": 3}})),
        ),
        ("GET", v2("secretConfig"), None),
        ("GET", format!("/api/{OKMS_ID}/v1/secret/data/other"), None),
        (
            "GET",
            format!("/api/{OKMS_ID}/v1/secret/metadata?list=true"),
            None,
        ),
    ] {
        let r = as_t(m, p.clone(), b).await;
        assert_eq!(r.status, 403, "{m} {p}: {}", r.text);
        assert_okms_error(&r.json(), 4);
    }
    // Nothing denied changed anything.
    let g = h.call("GET", &v2("secret/app%2Fdb"), None).await.json();
    assert_eq!(g["metadata"]["maxVersions"], 0);
    assert_eq!(g["metadata"]["currentVersion"], 2);
}

#[actix_web::test]
async fn arrays_where_objects_are_expected_are_400_and_change_nothing() {
    let h = harness().await;
    create(&h, "a", json!({"k": "v"})).await;
    let config = h.call("GET", &v2("secretConfig"), None).await.json();
    let cases: Vec<(&str, String, Value)> = vec![
        (
            "POST",
            v2("secret"),
            json!([{"path": "b", "version": {"data": {"k": "v"}}}]),
        ),
        (
            "POST",
            v2("secret"),
            json!({"path": "b", "version": [{"k": "v"}]}),
        ),
        (
            "POST",
            v2("secret"),
            json!({"path": "b", "version": [{"data": {"k": "v"}}]}),
        ),
        (
            "POST",
            v2("secret"),
            json!({"path": "b", "version": {"data": {"k": "v"}}, "metadata": [true]}),
        ),
        ("PUT", v2("secret/a"), json!({"version": [{"k": "w"}]})),
        (
            "PUT",
            v2("secret/a"),
            json!({"metadata": [true, {"k": "v"}]}),
        ),
        ("PUT", v2("secret/a"), json!([null, {"data": {"k": "w"}}])),
        ("POST", v2("secret/a/version"), json!([{"k": "w"}])),
        ("PUT", v2("secret/a/version/1"), json!(["deactivated"])),
        ("PUT", v2("secretConfig"), json!([10, false, "1h"])),
    ];
    for (m, p, body) in cases {
        let r = h.call(m, &p, Some(body.clone())).await;
        assert_eq!(r.status, 400, "{m} {p} {body}: {}", r.text);
        assert_eq!(r.content_type, "application/json");
        let v = r.json();
        assert_okms_error(&v, 2);
        assert!(
            v["errors"][0]
                .as_str()
                .unwrap()
                .contains("expected a JSON object"),
            "{v}"
        );
    }
    assert_eq!(h.call("GET", &v2("secret/b"), None).await.status, 404);
    let g = h
        .call("GET", &v2("secret/a?includeData=true"), None)
        .await
        .json();
    assert_eq!(g["version"]["data"], json!({"k": "v"}));
    assert_eq!(g["metadata"]["currentVersion"], 1);
    assert_eq!(g["version"]["state"], "active");
    assert_eq!(
        h.call("GET", &v2("secretConfig"), None).await.json(),
        config
    );
}

#[actix_web::test]
async fn method_not_allowed_carries_allow() {
    let h = harness().await;
    create(&h, "a", json!({"k": "v"})).await;
    let v1 = |p: &str| format!("/api/{OKMS_ID}/v1/{p}");
    let cases = [
        ("DELETE", v2("secretConfig"), "GET, PUT"),
        ("PATCH", v2("secret"), "GET, POST"),
        ("POST", v2("secret/a"), "GET, PUT, DELETE"),
        ("DELETE", v2("secret/a/version"), "GET, POST, PUT"),
        ("DELETE", v2("secret/a/version/1"), "GET, PUT"),
        (
            "TRACE",
            v1("secret/data/a"),
            "GET, POST, PUT, PATCH, DELETE",
        ),
        ("DELETE", v1("secret/config"), "GET, POST, PUT"),
        ("GET", v1("secret/destroy/a"), "POST, PUT"),
        ("POST", v1("secret/subkeys/a"), "GET"),
    ];
    for (m, p, allow) in cases {
        let r = h
            .call_with(m, &p, Some("{}"), &[("Authorization", "Bearer root")])
            .await;
        assert_eq!(r.status, 405, "{m} {p}: {}", r.text);
        assert_okms_error(&r.json(), 2);
        assert_eq!(
            r.headers.get("Allow").and_then(|v| v.to_str().ok()),
            Some(allow),
            "{m} {p}"
        );
    }
}

#[actix_web::test]
async fn invalid_percent_escapes_in_the_path_are_400_and_store_nothing() {
    let h = harness().await;
    let v1 = |p: &str| format!("/api/{OKMS_ID}/v1/{p}");
    let cases = [
        ("PUT", v2("secret/x%zz"), "%zz"),
        ("GET", v2("secret/x%4"), "%4"),
        ("POST", v2("secret/x%/version"), "%/v"),
        ("PUT", format!("/api/{OKMS_ID}/v2/secret%"), "%"),
        ("PUT", v1("secret/data/x%zz"), "%zz"),
        ("PUT", v1("secret/data/x%"), "%"),
    ];
    for (m, p, escape) in cases {
        let body = json!({"data": {"k": "v"}, "version": {"data": {"k": "v"}}}).to_string();
        let r = h
            .call_with(m, &p, Some(&body), &[("Authorization", "Bearer root")])
            .await;
        assert_eq!(r.status, 400, "{m} {p}: {}", r.text);
        let v = r.json();
        assert_okms_error(&v, 2);
        assert_eq!(
            v["errors"][0],
            format!("invalid URL escape \"{escape}\""),
            "{m} {p}"
        );
    }
    let list = h.call("GET", &v2("secret"), None).await.json();
    assert_eq!(list, json!([]));
}
