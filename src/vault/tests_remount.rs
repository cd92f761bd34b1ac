//! In-process tests of `sys/auth` (the auth methods, listed read-only) and `sys/remount` (moving a
//! mount), against the real app and the real engine.

use actix_web::{test, web, App};
use serde_json::{json, Value};

use crate::app::AppState;
use crate::testutil::{harness, Harness, OKMS_ID};

const RUNNING: &str = concat!("v", env!("CARGO_PKG_VERSION"), "+kvseal");

async fn enable_kv2(h: &Harness, path: &str) {
    let r = h
        .put(
            &format!("/v1/sys/mounts/{path}"),
            json!({"type": "kv", "options": {"version": "2"}}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
}

async fn write(h: &Harness, path: &str, data: Value) {
    let r = h.put(path, json!({ "data": data })).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text);
}

async fn remount(h: &Harness, from: &str, to: &str) -> String {
    let r = h
        .put("/v1/sys/remount", json!({"from": from, "to": to}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let id = v["migration_id"].as_str().unwrap().to_string();
    assert_eq!(v["data"]["migration_id"], id.as_str(), "{v}");
    id
}

/// `GET /v1/sys/auth` through an app whose configuration has `[[auth.cert]]` identities.
async fn auth_list_with_cert_identities(h: &Harness) -> (u16, Value) {
    let identity: crate::config::CertIdentity = serde_json::from_value(
        json!({"name": "app1", "subject": "CN=app1", "policies": ["default"]}),
    )
    .unwrap();
    let mut state = AppState::new(h.engine.clone(), h.max, Default::default());
    state.cert_identities = vec![identity];
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(state))
            .configure(crate::vault::configure),
    )
    .await;
    let req = test::TestRequest::get()
        .uri("/v1/sys/auth")
        .insert_header(("X-Vault-Token", "root"))
        .to_request();
    let resp = test::call_service(&app, req).await;
    let status = resp.status().as_u16();
    let body = test::read_body(resp).await;
    (status, serde_json::from_slice(&body).unwrap())
}

// ---- sys/auth ----

#[actix_web::test]
async fn auth_list_shows_the_token_method_in_vaults_shape() {
    let h = harness().await;
    for path in ["/v1/sys/auth", "/v1/sys/auth/"] {
        let r = h.call("GET", path, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        let v = r.json();
        let token = &v["data"]["token/"];
        let keys: Vec<&String> = v["data"].as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["token/"],
            "{path}: only token/ without [[auth.cert]]"
        );
        let accessor = token["accessor"].as_str().unwrap();
        assert!(
            accessor.starts_with("auth_token_") && accessor.len() == "auth_token_".len() + 8,
            "{accessor}"
        );
        assert!(uuid::Uuid::parse_str(token["uuid"].as_str().unwrap()).is_ok());
        assert_eq!(
            *token,
            json!({
                "accessor": accessor,
                "config": {"default_lease_ttl": 0, "force_no_cache": false, "max_lease_ttl": 0,
                           "token_type": "default-service"},
                "description": "token based credentials",
                "external_entropy_access": false,
                "local": false,
                "options": null,
                "plugin_version": "",
                "running_plugin_version": RUNNING,
                "running_sha256": "",
                "seal_wrap": false,
                "type": "token",
                "uuid": token["uuid"],
            }),
            "{path}"
        );
        assert_eq!(v["token/"], *token, "{path}: injected at the top level too");
    }
    // The ids are stable: the same on every request (and on every node).
    let a = h.call("GET", "/v1/sys/auth", None).await.json();
    let b = h.call("GET", "/v1/sys/auth/token", None).await.json();
    assert_eq!(a["data"]["token/"], b["data"]);
}

#[actix_web::test]
async fn auth_list_shows_cert_when_identities_are_configured() {
    let h = harness().await;
    let (status, v) = auth_list_with_cert_identities(&h).await;
    assert_eq!(status, 200, "{v}");
    let keys: Vec<&String> = v["data"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["cert/", "token/"]);
    let cert = &v["data"]["cert/"];
    assert_eq!(cert["type"], "cert");
    assert_eq!(cert["options"], json!({}));
    assert_eq!(cert["deprecation_status"], "supported");
    assert_eq!(cert["config"]["token_type"], "default-service");
    assert!(cert["accessor"].as_str().unwrap().starts_with("auth_cert_"));
    assert_ne!(cert["uuid"], v["data"]["token/"]["uuid"]);
}

#[actix_web::test]
async fn auth_methods_are_read_only() {
    let h = harness().await;
    let enable_refused = "cannot enable an auth method at cert/: kvseal's auth methods are fixed";
    let cases: [(&str, &str, Option<Value>, u16, &str); 9] = [
        (
            "POST",
            "/v1/sys/auth/cert",
            Some(json!({"type": "cert"})),
            400,
            enable_refused,
        ),
        (
            "POST",
            "/v1/sys/auth/token",
            Some(json!({"type": "token"})),
            400,
            "cannot enable an auth method at token/",
        ),
        (
            "DELETE",
            "/v1/sys/auth/token",
            None,
            400,
            "token credential backend cannot be disabled",
        ),
        // Nothing to disable: Vault answers 204 too.
        ("DELETE", "/v1/sys/auth/nothere", None, 204, ""),
        (
            "GET",
            "/v1/sys/auth/nothere",
            None,
            400,
            "No auth engine at nothere/",
        ),
        (
            "POST",
            "/v1/sys/auth/token/tune",
            Some(json!({"default_lease_ttl": "1h"})),
            400,
            "cannot tune token/: kvseal's auth methods are not tunable",
        ),
        (
            "GET",
            "/v1/sys/auth/nothere/tune",
            None,
            400,
            "cannot fetch sysview for path \"nothere/\"",
        ),
        ("DELETE", "/v1/sys/auth", None, 405, "unsupported operation"),
        (
            "POST",
            "/v1/sys/auth",
            Some(json!({})),
            405,
            "unsupported operation",
        ),
    ];
    for (method, path, body, status, error) in cases {
        let r = h.call(method, path, body).await;
        assert_eq!(r.status.as_u16(), status, "{method} {path}: {}", r.text);
        if !error.is_empty() {
            let e = r.json()["errors"][0].as_str().unwrap_or("").to_string();
            assert!(e.contains(error), "{method} {path}: {e:?} lacks {error:?}");
        }
    }
    let r = h.call("GET", "/v1/sys/auth", None).await.json();
    assert_eq!(
        r["data"].as_object().unwrap().len(),
        1,
        "nothing was enabled"
    );
}

#[actix_web::test]
async fn auth_method_tune_reads_the_system_defaults() {
    let h = harness().await;
    let r = h.call("GET", "/v1/sys/auth/token/tune", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json()["data"],
        json!({"default_lease_ttl": 2764800, "description": "token based credentials",
               "force_no_cache": false, "max_lease_ttl": 2764800,
               "token_type": "default-service"})
    );
}

#[actix_web::test]
async fn auth_listing_needs_read_and_a_method_needs_sudo() {
    let h = harness().await;
    let list_only = h
        .token_with_policy(
            "auth-read",
            r#"path "sys/auth" { capabilities = ["read"] }
           path "sys/auth/*" { capabilities = ["read"] }"#,
        )
        .await;
    let sudo = h
        .token_with_policy(
            "auth-sudo",
            r#"path "sys/auth/*" { capabilities = ["read", "sudo"] }"#,
        )
        .await;
    let nothing = h
        .token_with_policy("none", r#"path "x/*" { capabilities = ["read"] }"#)
        .await;
    let cases = [
        (&list_only, "/v1/sys/auth", 200),
        (&list_only, "/v1/sys/auth/token", 403),
        (&list_only, "/v1/sys/auth/token/tune", 403),
        (&sudo, "/v1/sys/auth", 403),
        (&sudo, "/v1/sys/auth/token", 200),
        (&sudo, "/v1/sys/auth/token/tune", 200),
        (&nothing, "/v1/sys/auth", 403),
    ];
    for (token, path, status) in cases {
        let r = h.call_as(token, "GET", path, None).await;
        assert_eq!(r.status.as_u16(), status, "{path}: {}", r.text);
    }
}

// ---- sys/remount ----

#[actix_web::test]
async fn remount_moves_data_versions_and_settings_and_keeps_the_mount() {
    let h = harness().await;
    enable_kv2(&h, "team-a").await;
    write(&h, "/v1/team-a/data/app/db", json!({"password": "one"})).await;
    write(&h, "/v1/team-a/data/app/db", json!({"password": "two"})).await;
    write(&h, "/v1/team-a/data/other", json!({"k": "v"})).await;
    let r = h
        .put(
            "/v1/team-a/config",
            json!({"max_versions": 7, "cas_required": false}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let before = h.call("GET", "/v1/sys/mounts", None).await.json()["data"]["team-a/"].clone();

    let id = remount(&h, "team-a", "moved/team-a").await;
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");

    let mounts = h.call("GET", "/v1/sys/mounts", None).await.json()["data"].clone();
    assert!(mounts.get("team-a/").is_none(), "{mounts}");
    assert_eq!(
        mounts["moved/team-a/"], before,
        "same uuid, accessor, options and config"
    );

    let cases = [
        ("/v1/moved/team-a/data/app/db", 200, Some(("two", 2))),
        (
            "/v1/moved/team-a/data/app/db?version=1",
            200,
            Some(("one", 1)),
        ),
        ("/v1/team-a/data/app/db", 404, None),
    ];
    for (path, status, want) in cases {
        let r = h.call("GET", path, None).await;
        assert_eq!(r.status.as_u16(), status, "{path}: {}", r.text);
        if let Some((password, version)) = want {
            let v = r.json();
            assert_eq!(v["data"]["data"]["password"], password, "{path}");
            assert_eq!(v["data"]["metadata"]["version"], version, "{path}");
        }
    }
    let list = h.call("LIST", "/v1/moved/team-a/metadata/", None).await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(list.json()["data"]["keys"], json!(["app/", "other"]));
    let cfg = h.call("GET", "/v1/moved/team-a/config", None).await;
    assert_eq!(cfg.json()["data"]["max_versions"], 7);
    // The moved mount takes writes, and the old path is free again.
    write(
        &h,
        "/v1/moved/team-a/data/app/db",
        json!({"password": "three"}),
    )
    .await;
    enable_kv2(&h, "team-a").await;
    let r = h.call("GET", "/v1/team-a/data/app/db", None).await;
    assert_eq!(
        r.status, 404,
        "a new mount at the old path is empty: {}",
        r.text
    );
}

#[actix_web::test]
async fn remount_status_answers_success_at_once() {
    let h = harness().await;
    enable_kv2(&h, "src").await;
    let id = remount(&h, "src/", "dst").await;
    let r = h
        .call("GET", &format!("/v1/sys/remount/status/{id}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json()["data"],
        json!({"migration_id": id, "migration_info": {
            "source_mount": "src/", "target_mount": "dst/", "status": "success"}})
    );
    for (path, status) in [
        (
            "/v1/sys/remount/status/6f0c3d1e-0000-4000-8000-000000000000",
            404,
        ),
        ("/v1/sys/remount/status/", 404),
    ] {
        let r = h.call("GET", path, None).await;
        assert_eq!(r.status.as_u16(), status, "{path}: {}", r.text);
    }
}

#[actix_web::test]
async fn remount_refusals_have_vaults_messages() {
    let h = harness().await;
    enable_kv2(&h, "kvb").await;
    enable_kv2(&h, "deep/inner").await;
    let missing = "both 'from' and 'to' path must be specified as a string";
    let cases: [(Value, &str); 13] = [
        (
            json!({"from": "nothere", "to": "x"}),
            "no matching mount at \"nothere/\"",
        ),
        // A path inside a mount is not a mount (OpenBao accepts it and fails the move later).
        (
            json!({"from": "kvb/sub", "to": "x"}),
            "no matching mount at \"kvb/sub/\"",
        ),
        (
            json!({"from": "kvb", "to": "secret"}),
            "path already in use at \"secret/\"",
        ),
        (
            json!({"from": "kvb", "to": "secret/sub"}),
            "path already in use at \"secret/\"",
        ),
        (
            json!({"from": "kvb", "to": "deep"}),
            "path already in use at \"deep/inner/\"",
        ),
        (
            json!({"from": "kvb/", "to": "kvb"}),
            "path already in use at \"kvb/\"",
        ),
        (
            json!({"from": "kvb", "to": "kvb/sub"}),
            "path already in use at \"kvb/\"",
        ),
        (json!({"from": "sys", "to": "x"}), "cannot remount \"sys/\""),
        (
            json!({"from": "kvb", "to": "sys/x"}),
            "cannot remount to destination sys/x/",
        ),
        (
            json!({"from": "kvb", "to": "auth/x"}),
            "cannot remount to destination auth/x/",
        ),
        (json!({"from": "kvb"}), missing),
        (json!({}), missing),
        (json!({"from": "kvb", "to": ""}), missing),
    ];
    for (body, error) in cases {
        let r = h.put("/v1/sys/remount", body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_eq!(r.json(), json!({ "errors": [error] }), "{body}");
    }
    let mounts = h.call("GET", "/v1/sys/mounts", None).await.json()["data"].clone();
    for m in ["kvb/", "deep/inner/", "secret/"] {
        assert!(mounts.get(m).is_some(), "{m} is still there: {mounts}");
    }
    let r = h.call("GET", "/v1/sys/remount", None).await;
    assert_eq!(r.status, 405, "{}", r.text);
}

#[actix_web::test]
async fn remount_is_refused_while_an_okms_domain_names_the_mount() {
    let h = harness().await;
    write(&h, "/v1/secret/data/k", json!({"a": "b"})).await;
    let r = h
        .put(
            "/v1/sys/remount",
            json!({"from": "secret", "to": "elsewhere"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let e = r.json()["errors"][0].as_str().unwrap().to_string();
    assert!(
        e.contains(&format!("the OKMS domain {OKMS_ID} is backed by it"))
            && e.contains("[[okms.domains]]")
            && e.contains("\"elsewhere/\" first"),
        "{e}"
    );
    let r = h.call("GET", "/v1/secret/data/k", None).await;
    assert_eq!(r.status, 200, "the mount did not move: {}", r.text);
    let r = h
        .call("GET", &format!("/api/{OKMS_ID}/v2/secret/k"), None)
        .await;
    assert_eq!(r.status, 200, "the OKMS domain still serves it: {}", r.text);
}

#[actix_web::test]
async fn remount_needs_sudo_and_its_status_needs_read() {
    let h = harness().await;
    enable_kv2(&h, "one").await;
    let update = h
        .token_with_policy(
            "mv",
            r#"path "sys/remount" { capabilities = ["update"] }
           path "sys/remount/status/*" { capabilities = ["read"] }"#,
        )
        .await;
    let sudo = h
        .token_with_policy(
            "mv-sudo",
            r#"path "sys/remount" { capabilities = ["update", "sudo"] }"#,
        )
        .await;
    let body = json!({"from": "one", "to": "two"});
    let r = h
        .call_as(&update, "POST", "/v1/sys/remount", Some(body.clone()))
        .await;
    assert_eq!(r.status, 403, "update without sudo: {}", r.text);
    let r = h
        .call_as(&sudo, "POST", "/v1/sys/remount", Some(body))
        .await;
    assert_eq!(r.status, 200, "update with sudo: {}", r.text);
    let id = r.json()["migration_id"].as_str().unwrap().to_string();
    let status = format!("/v1/sys/remount/status/{id}");
    let r = h.call_as(&update, "GET", &status, None).await;
    assert_eq!(r.status, 200, "read on the status: {}", r.text);
    let r = h.call_as(&sudo, "GET", &status, None).await;
    assert_eq!(r.status, 403, "no read on the status: {}", r.text);
}

#[actix_web::test]
async fn remount_does_not_rewrite_policies() {
    let h = harness().await;
    enable_kv2(&h, "old").await;
    write(&h, "/v1/old/data/s", json!({"k": "v"})).await;
    let reader = h
        .token_with_policy(
            "old-reader",
            r#"path "old/data/*" { capabilities = ["read"] }"#,
        )
        .await;
    let r = h.call_as(&reader, "GET", "/v1/old/data/s", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    remount(&h, "old", "new").await;
    let r = h.call_as(&reader, "GET", "/v1/new/data/s", None).await;
    assert_eq!(r.status, 403, "the policy still names old/: {}", r.text);
    let policy = h.call("GET", "/v1/sys/policies/acl/old-reader", None).await;
    assert!(policy.json()["data"]["policy"]
        .as_str()
        .unwrap()
        .contains("\"old/data/*\""));
}
