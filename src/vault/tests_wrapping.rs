//! In-process tests of response wrapping (`X-Vault-Wrap-TTL`, `sys/wrapping/*`) and cubbyholes,
//! against the real app and the real engine. What OpenBao 2.7.2 answers for each case was seen
//! on `bao server -dev`; `compat-tests/test_wrapping_cubbyhole.py` runs the same flows on both.

use serde_json::{json, Value};

use crate::testutil::{harness, Harness, Resp, OKMS_ID};

const INVALID: &str = "wrapping token is not valid or does not exist";

async fn write_secret(h: &Harness, key: &str, data: Value) {
    let r = h
        .put(&format!("/v1/secret/data/{key}"), json!({ "data": data }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// A request as `token` asking for wrapping with the header value `ttl`.
async fn wrapped(
    h: &Harness,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
    ttl: &str,
) -> Resp {
    let b = body.map(|b| b.to_string());
    h.call_with(
        method,
        path,
        b.as_deref(),
        &[("X-Vault-Token", token), ("X-Vault-Wrap-TTL", ttl)],
    )
    .await
}

/// The wrapping token of a wrapped answer, after checking the answer's shape.
fn wrap_token(r: &Resp) -> String {
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["data"], Value::Null, "{v}");
    assert_eq!(v["auth"], Value::Null, "{v}");
    assert_eq!(v["request_id"], "", "{v}");
    v["wrap_info"]["token"].as_str().unwrap().to_string()
}

async fn unwrap_as(h: &Harness, token: &str) -> Resp {
    h.call_as(token, "POST", "/v1/sys/wrapping/unwrap", None)
        .await
}

async fn lookup(h: &Harness, wrapping: &str) -> Resp {
    h.call_with(
        "POST",
        "/v1/sys/wrapping/lookup",
        Some(&json!({ "token": wrapping }).to_string()),
        &[],
    )
    .await
}

fn error_of(r: &Resp) -> String {
    r.json()["errors"][0]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

// ---- the header ----

#[actix_web::test]
async fn wrap_ttl_header_values_as_vault_takes_them() {
    let h = harness().await;
    write_secret(&h, "x", json!({"password": "hunter2"})).await;
    // (header value, status, wrapped TTL shown or the error)
    let cases: &[(&str, u16, Result<i64, &str>)] = &[
        ("60", 200, Ok(60)),
        ("60s", 200, Ok(60)),
        ("1m", 200, Ok(60)),
        ("1d", 200, Ok(86400)),
        ("500ms", 200, Ok(0)),
        ("10000h", 200, Ok(36_000_000)),
        (
            "abc",
            400,
            Err("error parsing X-Vault-Wrap-TTL header: time: invalid duration \"abc\""),
        ),
        (
            "-5",
            400,
            Err("error parsing X-Vault-Wrap-TTL header: requested wrap ttl cannot be negative"),
        ),
    ];
    for (ttl, status, want) in cases {
        let r = wrapped(&h, "root", "GET", "/v1/secret/data/x", None, ttl).await;
        assert_eq!(r.status, *status, "{ttl}: {}", r.text);
        assert!(!r.text.contains("hunter2"), "{ttl}: {}", r.text);
        match want {
            Ok(secs) => {
                let v = r.json();
                assert_eq!(v["wrap_info"]["ttl"], *secs, "{ttl}: {v}");
                assert_eq!(v["wrap_info"]["creation_path"], "secret/data/x", "{v}");
            }
            Err(msg) => assert_eq!(error_of(&r), *msg, "{ttl}"),
        }
    }
    // `0` asks for no wrapping.
    let r = wrapped(&h, "root", "GET", "/v1/secret/data/x", None, "0").await;
    assert_eq!(
        r.json()["data"]["data"]["password"],
        "hunter2",
        "{}",
        r.text
    );
}

#[actix_web::test]
async fn jwt_wrapping_format_is_refused() {
    let h = harness().await;
    write_secret(&h, "x", json!({"a": "b"})).await;
    let r = h
        .call_with(
            "GET",
            "/v1/secret/data/x",
            None,
            &[
                ("X-Vault-Token", "root"),
                ("X-Vault-Wrap-TTL", "60"),
                ("X-Vault-Wrap-Format", "jwt"),
            ],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(error_of(&r).contains("X-Vault-Wrap-Format"), "{}", r.text);
}

#[actix_web::test]
async fn a_wrapped_read_answers_wrap_info_only_and_unwraps_once() {
    let h = harness().await;
    write_secret(&h, "x", json!({"password": "hunter2"})).await;
    let plain = h.call("GET", "/v1/secret/data/x", None).await.json();
    let r = wrapped(&h, "root", "GET", "/v1/secret/data/x", None, "60s").await;
    let w = wrap_token(&r);
    let info = &r.json()["wrap_info"];
    assert_eq!(info["ttl"], 60);
    assert!(info["accessor"].as_str().is_some_and(|a| !a.is_empty()));
    assert!(info.get("wrapped_accessor").is_none(), "{info}");
    assert!(info["creation_time"].as_str().unwrap().ends_with('Z'));

    let u = unwrap_as(&h, &w).await;
    assert_eq!(u.status, 200, "{}", u.text);
    assert_eq!(u.content_type, "application/json");
    let v = u.json();
    assert_eq!(v["data"], plain["data"], "{v}");
    assert_eq!(v["wrap_info"], Value::Null);
    // The request id is the wrapped request's, which its client never saw.
    assert!(v["request_id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_ne!(v["request_id"], plain["request_id"]);

    let again = unwrap_as(&h, &w).await;
    assert_eq!(
        (again.status.as_u16(), error_of(&again)),
        (400, INVALID.into())
    );
    let l = lookup(&h, &w).await;
    assert_eq!((l.status.as_u16(), error_of(&l)), (400, INVALID.into()));
}

#[actix_web::test]
async fn unwrap_takes_the_token_in_the_body_with_a_client_token() {
    let h = harness().await;
    write_secret(&h, "x", json!({"a": "b"})).await;
    let w = wrap_token(&wrapped(&h, "root", "GET", "/v1/secret/data/x", None, "60").await);
    let client = h.token_as("root", &["default"]).await;
    let u = h
        .call_as(
            &client,
            "POST",
            "/v1/sys/wrapping/unwrap",
            Some(json!({ "token": w })),
        )
        .await;
    assert_eq!(u.status, 200, "{}", u.text);
    assert_eq!(u.json()["data"]["data"], json!({"a": "b"}));
    assert_eq!(unwrap_as(&h, &w).await.status, 400);
    // The client token was not used up.
    assert_eq!(
        h.call_as(&client, "GET", "/v1/auth/token/lookup-self", None)
            .await
            .status,
        200
    );
}

#[actix_web::test]
async fn unwrap_refusals_as_vault_orders_them() {
    let h = harness().await;
    write_secret(&h, "x", json!({"a": "b"})).await;
    let w = wrap_token(&wrapped(&h, "root", "GET", "/v1/secret/data/x", None, "60").await);
    let body = |t: &str| Some(json!({ "token": t }).to_string());
    // (why, header token, body, status, error)
    type Case<'a> = (&'a str, Option<&'a str>, Option<String>, u16, &'a str);
    let cases: &[Case] = &[
        (
            "an unknown header token",
            Some("kvs.nope"),
            None,
            400,
            INVALID,
        ),
        (
            "a client token is no wrapping token",
            Some("root"),
            None,
            400,
            INVALID,
        ),
        (
            "an unknown body token",
            Some("root"),
            body("kvs.nope"),
            400,
            INVALID,
        ),
        ("no token at all", None, None, 403, "permission denied"),
        (
            "a valid body token with a bad client token",
            Some("kvs.nope"),
            body(&w),
            403,
            "permission denied",
        ),
        (
            "a valid body token and no client token",
            None,
            body(&w),
            403,
            "permission denied",
        ),
        (
            "an empty body token",
            Some("root"),
            body(""),
            403,
            "error validating wrapping token: empty token in request body",
        ),
    ];
    for (why, header, body, status, error) in cases {
        let headers: Vec<(&str, &str)> = header.iter().map(|t| ("X-Vault-Token", *t)).collect();
        let r = h
            .call_with("POST", "/v1/sys/wrapping/unwrap", body.as_deref(), &headers)
            .await;
        assert_eq!(r.status, *status, "{why}: {}", r.text);
        assert_eq!(error_of(&r), *error, "{why}");
    }
    // None of them used the wrapping token up.
    assert_eq!(lookup(&h, &w).await.status, 200);
}

#[actix_web::test]
async fn a_wrapping_token_used_anywhere_else_is_refused_and_burnt() {
    let h = harness().await;
    write_secret(&h, "x", json!({"a": "b"})).await;
    // (method, path): a read its policy does not grant, its own token lookup, the kv preflight,
    // a rewrap of itself, and the OKMS API.
    let okms = format!("/api/{OKMS_ID}/v2/secret");
    let elsewhere: &[(&str, &str)] = &[
        ("GET", "/v1/secret/data/x"),
        ("GET", "/v1/auth/token/lookup-self"),
        ("GET", "/v1/sys/internal/ui/mounts/secret"),
        ("POST", "/v1/sys/wrapping/rewrap"),
        ("GET", "/v1/cubbyhole/response"),
        ("GET", &okms),
    ];
    for (method, path) in elsewhere {
        let w = wrap_token(&wrapped(&h, "root", "GET", "/v1/secret/data/x", None, "60").await);
        let r = h.call_as(&w, method, path, None).await;
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text);
        assert!(!r.text.contains("\"a\""), "{}", r.text);
        let l = lookup(&h, &w).await;
        assert_eq!(l.status, 400, "{method} {path}: not burnt: {}", l.text);
        assert_eq!(unwrap_as(&h, &w).await.status, 400, "{method} {path}");
    }
}

#[actix_web::test]
async fn lookup_needs_no_token_and_uses_nothing() {
    let h = harness().await;
    write_secret(&h, "x", json!({"a": "b"})).await;
    let w = wrap_token(&wrapped(&h, "root", "GET", "/v1/secret/data/x", None, "90").await);
    for r in [
        lookup(&h, &w).await,
        h.call_as(&w, "GET", "/v1/sys/wrapping/lookup", None).await,
        h.call_as(&w, "POST", "/v1/sys/wrapping/lookup", None).await,
        h.call_with(
            "GET",
            &format!("/v1/sys/wrapping/lookup?token={w}"),
            None,
            &[],
        )
        .await,
    ] {
        assert_eq!(r.status, 200, "{}", r.text);
        let d = &r.json()["data"];
        assert_eq!(d["creation_path"], "secret/data/x");
        assert_eq!(d["creation_ttl"], 90);
        assert!(d["creation_time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(d.as_object().unwrap().len(), 3, "{d}");
    }
    assert_eq!(unwrap_as(&h, &w).await.status, 200);
    let r = h
        .call_with("POST", "/v1/sys/wrapping/lookup", None, &[])
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
}

#[actix_web::test]
async fn rewrap_keeps_reply_path_and_ttl_under_a_new_token() {
    let h = harness().await;
    write_secret(&h, "x", json!({"a": "b"})).await;
    let w = wrap_token(&wrapped(&h, "root", "GET", "/v1/secret/data/x", None, "120").await);
    let r = h
        .call_as(
            "root",
            "POST",
            "/v1/sys/wrapping/rewrap",
            Some(json!({ "token": w })),
        )
        .await;
    let w2 = wrap_token(&r);
    assert_ne!(w, w2);
    let info = &r.json()["wrap_info"];
    assert_eq!(info["creation_path"], "secret/data/x");
    assert_eq!(info["ttl"], 120);
    assert_eq!(lookup(&h, &w).await.status, 400);
    // A shorter header TTL caps the new token's.
    let r = wrapped(
        &h,
        "root",
        "POST",
        "/v1/sys/wrapping/rewrap",
        Some(json!({ "token": w2 })),
        "30",
    )
    .await;
    let w3 = wrap_token(&r);
    assert_eq!(r.json()["wrap_info"]["ttl"], 30);
    let u = unwrap_as(&h, &w3).await;
    assert_eq!(u.json()["data"]["data"], json!({"a": "b"}), "{}", u.text);
    // The default policy does not grant rewrap.
    let client = h.token_as("root", &["default"]).await;
    let w4 = wrap_token(&wrapped(&h, "root", "GET", "/v1/secret/data/x", None, "60").await);
    let r = h
        .call_as(
            &client,
            "POST",
            "/v1/sys/wrapping/rewrap",
            Some(json!({ "token": w4 })),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(lookup(&h, &w4).await.status, 200);
}

#[actix_web::test]
async fn sys_wrapping_wrap_wraps_its_body_and_needs_the_header() {
    let h = harness().await;
    let client = h.token_as("root", &["default"]).await;
    let r = h
        .call_as(
            &client,
            "POST",
            "/v1/sys/wrapping/wrap",
            Some(json!({"k": "v"})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        error_of(&r),
        "endpoint requires response wrapping to be used"
    );
    let body = json!({"k": "v", "n": 1, "nested": {"a": [1, 2]}});
    let r = wrapped(
        &h,
        &client,
        "POST",
        "/v1/sys/wrapping/wrap",
        Some(body.clone()),
        "60s",
    )
    .await;
    let w = wrap_token(&r);
    assert_eq!(r.json()["wrap_info"]["creation_path"], "sys/wrapping/wrap");
    let u = unwrap_as(&h, &w).await;
    assert_eq!(u.json()["data"], body, "{}", u.text);
}

#[actix_web::test]
async fn a_wrapped_token_creation_carries_the_wrapped_accessor() {
    let h = harness().await;
    let r = wrapped(
        &h,
        "root",
        "POST",
        "/v1/auth/token/create",
        Some(json!({"policies": ["default"]})),
        "60",
    )
    .await;
    let w = wrap_token(&r);
    let info = r.json()["wrap_info"].clone();
    assert_eq!(info["creation_path"], "auth/token/create");
    let u = unwrap_as(&h, &w).await.json();
    let token = u["auth"]["client_token"].as_str().unwrap();
    assert_eq!(
        info["wrapped_accessor"], u["auth"]["accessor"],
        "{info} {u}"
    );
    let me = h
        .call_as(token, "GET", "/v1/auth/token/lookup-self", None)
        .await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json()["data"]["policies"], json!(["default"]));
}

#[actix_web::test]
async fn errors_and_no_content_replies_are_never_wrapped() {
    let h = harness().await;
    let r = wrapped(&h, "root", "GET", "/v1/secret/data/missing", None, "60").await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(r.json().get("wrap_info").is_none());
    let r = wrapped(&h, "root", "GET", "/v1/sys/health", None, "60").await;
    assert_eq!(
        (r.status.as_u16(), r.json()["sealed"].clone()),
        (200, json!(false))
    );
    let r = wrapped(
        &h,
        "root",
        "POST",
        "/v1/sys/policies/acl/p1",
        Some(json!({"policy": "path \"x\" { capabilities = [\"read\"] }"})),
        "60",
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    let c = h.token_as("root", &["default"]).await;
    let r = wrapped(&h, &c, "GET", "/v1/secret/data/x", None, "60").await;
    assert_eq!(r.status, 403, "{}", r.text);
}

#[actix_web::test]
async fn a_deleted_version_unwraps_to_its_404_with_metadata() {
    let h = harness().await;
    write_secret(&h, "d", json!({"a": "b"})).await;
    assert_eq!(
        h.call("DELETE", "/v1/secret/data/d", None).await.status,
        204
    );
    let w = wrap_token(&wrapped(&h, "root", "GET", "/v1/secret/data/d", None, "60").await);
    let u = unwrap_as(&h, &w).await;
    assert_eq!(u.status, 404, "{}", u.text);
    assert_eq!(u.json()["data"]["metadata"]["version"], 1);
}

#[actix_web::test]
async fn an_expired_wrapping_token_is_invalid_and_purged_with_its_cubbyhole() {
    let h = harness().await;
    write_secret(&h, "x", json!({"a": "b"})).await;
    let w = wrap_token(&wrapped(&h, "root", "GET", "/v1/secret/data/x", None, "60").await);
    let kept = wrap_token(&wrapped(&h, "root", "GET", "/v1/secret/data/x", None, "600").await);
    h.engine.clock().advance(61);
    assert_eq!(lookup(&h, &w).await.status, 400);
    assert_eq!(unwrap_as(&h, &w).await.status, 400);
    let rows = |h: &Harness| {
        h.engine
            .store_for_tests()
            .read(|tx| tx.count_rows(crate::storage::Table::Cubbyhole))
            .unwrap()
    };
    assert_eq!(rows(&h), 4, "two wrapping tokens, two entries each");
    assert_eq!(h.engine.purge_cubbyholes().unwrap(), 1);
    assert_eq!(rows(&h), 2);
    assert_eq!(lookup(&h, &kept).await.status, 200);
}

// ---- policies that require wrapping ----

#[actix_web::test]
async fn min_and_max_wrapping_ttl_are_enforced_as_vault_does() {
    let h = harness().await;
    write_secret(&h, "x", json!({"a": "b"})).await;
    let t = h.token_with_policy(
        "wrapreq",
        "path \"secret/data/x\" {\n capabilities = [\"read\"]\n min_wrapping_ttl = \"30s\"\n max_wrapping_ttl = \"2m\"\n}",
    )
    .await;
    // (wrap TTL header, status)
    for (ttl, status) in [
        (None, 403),
        (Some("10"), 403),
        (Some("300"), 403),
        (Some("30"), 200),
        (Some("60s"), 200),
        (Some("2m"), 200),
    ] {
        let r = match ttl {
            None => h.call_as(&t, "GET", "/v1/secret/data/x", None).await,
            Some(ttl) => wrapped(&h, &t, "GET", "/v1/secret/data/x", None, ttl).await,
        };
        assert_eq!(r.status, status, "{ttl:?}: {}", r.text);
        if status == 403 {
            assert_eq!(error_of(&r), "permission denied");
        } else {
            let w = wrap_token(&r);
            assert_eq!(unwrap_as(&h, &w).await.status, 200);
        }
    }
    // The OKMS API cannot wrap: a rule that requires wrapping refuses it there.
    let r = h
        .call_as(&t, "GET", &format!("/api/{OKMS_ID}/v1/secret/data/x"), None)
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
}

#[actix_web::test]
async fn the_okms_api_refuses_a_wrap_ttl() {
    let h = harness().await;
    write_secret(&h, "x", json!({"a": "b"})).await;
    let r = wrapped(
        &h,
        "root",
        "GET",
        &format!("/api/{OKMS_ID}/v1/secret/data/x"),
        None,
        "60",
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(!r.text.contains("\"a\""), "{}", r.text);
}

#[actix_web::test]
async fn the_response_wrapping_policy_is_built_in() {
    let h = harness().await;
    let p = "path \"x\" { capabilities = [\"read\"] }";
    let r = h
        .put(
            "/v1/sys/policies/acl/response-wrapping",
            json!({ "policy": p }),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), error_of(&r)),
        (400, "cannot update \"response-wrapping\" policy".into())
    );
    let r = h
        .call("DELETE", "/v1/sys/policies/acl/response-wrapping", None)
        .await;
    assert_eq!(
        (r.status.as_u16(), error_of(&r)),
        (400, "cannot delete \"response-wrapping\" policy".into())
    );
    let r = h
        .put(
            "/v1/auth/token/create",
            json!({"policies": ["response-wrapping"]}),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), error_of(&r)),
        (400, "cannot assign policy \"response-wrapping\"".into())
    );
    let list = h.call("LIST", "/v1/sys/policies/acl", None).await.json();
    assert_eq!(list["data"]["keys"], json!(["default", "root"]));
    let read = h
        .call("GET", "/v1/sys/policies/acl/response-wrapping", None)
        .await;
    assert_eq!(read.status, 200, "{}", read.text);
    assert!(read.json()["data"]["policy"]
        .as_str()
        .unwrap()
        .contains("sys/wrapping/unwrap"));
}

#[actix_web::test]
async fn the_audit_log_never_holds_a_wrapped_secret() {
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
    let marker = format!("wrapped-marker-{}", uuid::Uuid::new_v4());
    write_secret(&h, "x", json!({ "v": marker })).await;
    let w = wrap_token(&wrapped(&h, "root", "GET", "/v1/secret/data/x", None, "60").await);
    let u = unwrap_as(&h, &w).await;
    assert!(u.text.contains(&marker));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(&marker), "the secret is in the audit log");
    assert!(!text.contains(&w), "the wrapping token is in the audit log");
    let entries: Vec<Value> = text
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let wrap_entry = entries
        .iter()
        .find(|e| {
            e["type"] == "response"
                && e["request"]["path"] == "secret/data/x"
                && e["response"]["data"]["wrap_info"].is_object()
        })
        .expect("the wrapped response is audited");
    let hashed = wrap_entry["response"]["data"]["wrap_info"]["token"]
        .as_str()
        .unwrap();
    assert!(hashed.starts_with("hmac-sha256:"), "{hashed}");
}

// ---- cubbyholes ----

#[actix_web::test]
async fn cubbyhole_read_write_list_delete_as_vault() {
    let h = harness().await;
    let t = h.token_as("root", &["default"]).await;
    let call = |m: &'static str, p: &'static str, b: Option<Value>| {
        let t = t.clone();
        let h = &h;
        async move { h.call_as(&t, m, p, b).await }
    };
    assert_eq!(
        call("POST", "/v1/cubbyhole/a/b", Some(json!({"k": "v", "n": 1})))
            .await
            .status,
        204
    );
    assert_eq!(
        call("PUT", "/v1/cubbyhole/c", Some(json!({"k": "v"})))
            .await
            .status,
        204
    );
    let r = call("GET", "/v1/cubbyhole/a/b", None).await;
    assert_eq!(r.json()["data"], json!({"k": "v", "n": 1}), "{}", r.text);
    // (method, path, body, status, data or error)
    let cases: &[(&str, &str, Option<Value>, u16, Value)] = &[
        (
            "LIST",
            "/v1/cubbyhole/",
            None,
            200,
            json!({"keys": ["a/", "c"]}),
        ),
        (
            "GET",
            "/v1/cubbyhole?list=true",
            None,
            200,
            json!({"keys": ["a/", "c"]}),
        ),
        ("LIST", "/v1/cubbyhole/a", None, 200, json!({"keys": ["b"]})),
        ("LIST", "/v1/cubbyhole/zz/", None, 404, json!([])),
        ("GET", "/v1/cubbyhole/none", None, 404, json!([])),
        ("GET", "/v1/cubbyhole/a", None, 404, json!([])),
        (
            "POST",
            "/v1/cubbyhole/e",
            Some(json!({})),
            400,
            json!(["missing data fields"]),
        ),
        (
            "POST",
            "/v1/cubbyhole/f/",
            Some(json!({"a": "b"})),
            400,
            json!(["cannot write to a path ending in '/'"]),
        ),
    ];
    for (method, path, body, status, want) in cases {
        let r = h.call_as(&t, method, path, body.clone()).await;
        assert_eq!(r.status, *status, "{method} {path}: {}", r.text);
        let v = r.json();
        let got = if *status == 200 {
            &v["data"]
        } else {
            &v["errors"]
        };
        assert_eq!(got, want, "{method} {path}");
    }
    // A write replaces; a delete is 204 whether or not anything is there.
    assert_eq!(
        call("PUT", "/v1/cubbyhole/c", Some(json!({"z": "1"})))
            .await
            .status,
        204
    );
    assert_eq!(
        call("GET", "/v1/cubbyhole/c", None).await.json()["data"],
        json!({"z": "1"})
    );
    assert_eq!(call("DELETE", "/v1/cubbyhole/c", None).await.status, 204);
    assert_eq!(call("DELETE", "/v1/cubbyhole/c", None).await.status, 204);
    assert_eq!(call("GET", "/v1/cubbyhole/c", None).await.status, 404);
    // The backend has no PATCH (root: the capability is no question).
    let r = h
        .call_as(
            "root",
            "PATCH",
            "/v1/cubbyhole/a/b",
            Some(json!({"a": "b"})),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), error_of(&r)),
        (405, "unsupported operation".into())
    );
    // The mount itself is no entry (Vault: 500 `missing path`; the client's error here).
    let r = h.call("GET", "/v1/cubbyhole", None).await;
    assert_eq!(
        (r.status.as_u16(), error_of(&r)),
        (400, "missing path".into())
    );
}

#[actix_web::test]
async fn one_token_never_sees_anothers_cubbyhole() {
    let h = harness().await;
    let a = h.token_as("root", &["default"]).await;
    let b = h.token_as("root", &["default"]).await;
    let r = h
        .call_as(
            &a,
            "POST",
            "/v1/cubbyhole/secret",
            Some(json!({"owner": "a"})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        h.call_as(&b, "GET", "/v1/cubbyhole/secret", None)
            .await
            .status,
        404
    );
    assert_eq!(
        h.call_as(&b, "LIST", "/v1/cubbyhole/", None).await.status,
        404
    );
    assert_eq!(
        h.call("GET", "/v1/cubbyhole/secret", None).await.status,
        404,
        "not even root"
    );
    let r = h
        .call_as(
            &b,
            "POST",
            "/v1/cubbyhole/secret",
            Some(json!({"owner": "b"})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        h.call_as(&b, "DELETE", "/v1/cubbyhole/secret", None)
            .await
            .status,
        204
    );
    let r = h.call_as(&a, "GET", "/v1/cubbyhole/secret", None).await;
    assert_eq!(r.json()["data"], json!({"owner": "a"}), "{}", r.text);
}

#[actix_web::test]
async fn a_revoked_tokens_cubbyhole_is_gone_with_it() {
    let h = harness().await;
    let parent = h
        .token_with_policy(
            "creator",
            "path \"auth/token/create\" { capabilities = [\"update\"] }",
        )
        .await;
    let child = {
        let r = h
            .call_as(&parent, "POST", "/v1/auth/token/create", Some(json!({})))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for t in [&parent, &child] {
        let r = h
            .call_as(t, "POST", "/v1/cubbyhole/k", Some(json!({"a": "b"})))
            .await;
        assert_eq!(r.status, 204, "{}", r.text);
    }
    let rows = |h: &Harness| {
        h.engine
            .store_for_tests()
            .read(|tx| tx.count_rows(crate::storage::Table::Cubbyhole))
            .unwrap()
    };
    assert_eq!(rows(&h), 2);
    let r = h
        .put("/v1/auth/token/revoke", json!({ "token": parent }))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(rows(&h), 0, "the revocation took both cubbyholes");
    assert_eq!(
        h.call_as(&child, "GET", "/v1/cubbyhole/k", None)
            .await
            .status,
        403
    );
}

#[actix_web::test]
async fn cubbyhole_writes_need_create_or_update_by_existence() {
    let h = harness().await;
    let r = h
        .put(
            "/v1/sys/policies/acl/cubby-create",
            json!({"policy": "path \"cubbyhole/*\" { capabilities = [\"create\", \"read\"] }"}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    // Without `default`, which grants `update` on the cubbyhole.
    let r = h
        .put(
            "/v1/auth/token/create",
            json!({"policies": ["cubby-create"], "no_default_policy": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let t = r.json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let write = |v: &'static str| {
        let t = t.clone();
        let h = &h;
        async move {
            h.call_as(&t, "POST", "/v1/cubbyhole/k", Some(json!({ "v": v })))
                .await
                .status
        }
    };
    assert_eq!(write("1").await, 204, "create");
    assert_eq!(write("2").await, 403, "update needs update");
    let r = h.call_as(&t, "GET", "/v1/cubbyhole/k", None).await;
    assert_eq!(r.json()["data"], json!({"v": "1"}));
}

#[actix_web::test]
async fn cubbyhole_is_mounted_and_cannot_be_moved_or_tuned() {
    let h = harness().await;
    let m = h.call("GET", "/v1/sys/mounts", None).await.json();
    let c = &m["data"]["cubbyhole/"];
    assert_eq!(c["type"], "cubbyhole", "{m}");
    assert_eq!(c["description"], "per-token private secret storage");
    assert_eq!(c["local"], true);
    assert_eq!(
        m["cubbyhole/"], *c,
        "sys/mounts copies data to the top level"
    );
    assert_eq!(
        h.call("GET", "/v1/sys/mounts/cubbyhole", None).await.json()["data"],
        *c
    );
    // (method, path, body, error)
    let cases: &[(&str, &str, Option<Value>, &str)] = &[
        (
            "DELETE",
            "/v1/sys/mounts/cubbyhole",
            None,
            "cannot unmount \"cubbyhole/\"",
        ),
        (
            "POST",
            "/v1/sys/mounts/cubbyhole",
            Some(json!({"type": "kv"})),
            "cannot mount \"cubbyhole/\"",
        ),
        (
            "POST",
            "/v1/sys/mounts/cubbyhole/x",
            Some(json!({"type": "kv"})),
            "cannot mount \"cubbyhole/x/\"",
        ),
        (
            "POST",
            "/v1/sys/mounts/cub2",
            Some(json!({"type": "cubbyhole"})),
            "mount type of \"cubbyhole\" is not mountable",
        ),
        (
            "POST",
            "/v1/sys/remount",
            Some(json!({"from": "cubbyhole", "to": "cub3"})),
            "cannot remount \"cubbyhole/\"",
        ),
        (
            "POST",
            "/v1/sys/mounts/cubbyhole/tune",
            Some(json!({"description": "x"})),
            "cannot tune cubbyhole/",
        ),
    ];
    for (method, path, body, error) in cases {
        let r = h.call(method, path, body.clone()).await;
        assert_eq!(r.status, 400, "{method} {path}: {}", r.text);
        assert_eq!(error_of(&r), *error, "{method} {path}");
    }
    let tune = h
        .call("GET", "/v1/sys/mounts/cubbyhole/tune", None)
        .await
        .json();
    assert_eq!(tune["data"]["default_lease_ttl"], 2_764_800, "{tune}");
}
