//! In-process tests of tokens, policies and their enforcement on the Vault routes.

use serde_json::{json, Value};

use crate::testutil::{harness, Harness};

const APP_POLICY: &str = r#"
path "secret/data/app/*"     { capabilities = ["create", "read", "update", "delete"] }
path "secret/metadata/app/*" { capabilities = ["read", "list"] }
path "secret/metadata/app"   { capabilities = ["list"] }
"#;

async fn token_with(h: &Harness, body: Value) -> (String, Value) {
    let r = h.put("/v1/auth/token/create", body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert!(v["data"].is_null());
    (v["auth"]["client_token"].as_str().unwrap().to_string(), v)
}

async fn app_token(h: &Harness) -> String {
    let r = h
        .put("/v1/sys/policies/acl/app", json!({"policy": APP_POLICY}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    token_with(h, json!({"policies": ["app"], "ttl": "1h"}))
        .await
        .0
}

#[actix_web::test]
async fn policy_crud_both_forms() {
    let h = harness().await;
    let r = h
        .put("/v1/sys/policies/acl/Mixed", json!({"policy": APP_POLICY}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["warnings"][0],
        "policy name was converted to mixed"
    );
    let v = h
        .call("GET", "/v1/sys/policies/acl/mixed", None)
        .await
        .json();
    assert_eq!(v["data"], json!({"name": "mixed", "policy": APP_POLICY}));
    // Base64 is accepted (vault policy write sends plain text; other tools encode it).
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD
        .encode("path \"x/*\" { capabilities = [\"read\"] }");
    assert_eq!(
        h.put("/v1/sys/policies/acl/b64", json!({"policy": b64}))
            .await
            .status,
        204
    );
    let v = h.call("GET", "/v1/sys/policy/b64", None).await.json();
    assert_eq!(
        v["data"]["rules"],
        "path \"x/*\" { capabilities = [\"read\"] }"
    );
    assert_eq!(
        v["rules"], v["data"]["rules"],
        "legacy route is injected at the top level"
    );
    let list = h.call("LIST", "/v1/sys/policies/acl", None).await.json();
    assert_eq!(
        list["data"]["keys"],
        json!(["b64", "default", "mixed", "root"])
    );
    let legacy = h.call("GET", "/v1/sys/policy", None).await.json();
    assert_eq!(legacy["data"]["policies"], list["data"]["keys"]);
    // Errors: empty, unparsable, root immutable, default undeletable.
    let e = h.put("/v1/sys/policies/acl/x", json!({"policy": ""})).await;
    assert_eq!(
        e.json(),
        json!({"errors": ["'policy' parameter not supplied or empty"]})
    );
    let e = h
        .put(
            "/v1/sys/policies/acl/x",
            json!({"policy": "path \"a\" { capabilities = [\"fly\"] }"}),
        )
        .await;
    assert_eq!(e.status, 400);
    assert!(e.json()["errors"][0]
        .as_str()
        .unwrap()
        .starts_with("failed to parse policy"));
    assert_eq!(
        h.call("GET", "/v1/sys/policies/acl/x", None).await.status,
        404
    );
    assert_eq!(
        h.put("/v1/sys/policies/acl/root", json!({"policy": APP_POLICY}))
            .await
            .status,
        400
    );
    assert_eq!(
        h.call("DELETE", "/v1/sys/policies/acl/default", None)
            .await
            .status,
        400
    );
    assert_eq!(
        h.call("DELETE", "/v1/sys/policies/acl/root", None)
            .await
            .status,
        400
    );
    assert_eq!(
        h.call("DELETE", "/v1/sys/policies/acl/mixed", None)
            .await
            .status,
        204
    );
    assert_eq!(
        h.call("GET", "/v1/sys/policies/acl/mixed", None)
            .await
            .status,
        404
    );
    assert_eq!(
        h.call("DELETE", "/v1/sys/policies/acl/mixed", None)
            .await
            .status,
        204
    );
}

#[actix_web::test]
async fn token_create_lookup_renew_revoke() {
    let h = harness().await;
    h.put("/v1/sys/policies/acl/app", json!({"policy": APP_POLICY}))
        .await;
    let (t, v) = token_with(&h, json!({"policies": "app", "ttl": "1h", "display_name": "ci", "meta": {"team": "a"}, "num_uses": 0})).await;
    let auth = &v["auth"];
    assert!(t.starts_with("kvs."));
    assert_eq!(auth["policies"], json!(["app", "default"]));
    assert_eq!(auth["token_policies"], json!(["app", "default"]));
    assert_eq!(auth["lease_duration"], 3600);
    assert_eq!(auth["renewable"], true);
    assert_eq!(auth["orphan"], false);
    assert_eq!(auth["token_type"], "service");
    assert_eq!(auth["entity_id"], "");
    assert_eq!(auth["metadata"], json!({"team": "a"}));

    let me = h
        .call_as(&t, "GET", "/v1/auth/token/lookup-self", None)
        .await
        .json();
    assert_eq!(me["data"]["policies"], json!(["app", "default"]));
    assert_eq!(me["data"]["display_name"], "token-ci");
    assert_eq!(me["data"]["path"], "auth/token/create");
    assert_eq!(me["data"]["creation_ttl"], 3600);
    assert!(me["data"]["expire_time"].is_string());
    let by_root = h
        .put("/v1/auth/token/lookup", json!({"token": t}))
        .await
        .json();
    assert_eq!(by_root["data"]["accessor"], auth["accessor"]);
    let by_acc = h
        .put(
            "/v1/auth/token/lookup-accessor",
            json!({"accessor": auth["accessor"]}),
        )
        .await
        .json();
    assert_eq!(by_acc["data"]["id"], "");
    assert_eq!(
        h.put("/v1/auth/token/lookup", json!({"token": "kvs.nope"}))
            .await
            .status,
        403
    );

    // Renewal moves the expiry forward; the default policy lets a token renew itself.
    h.engine.clock().advance(1800);
    let r = h
        .call_as(
            &t,
            "POST",
            "/v1/auth/token/renew-self",
            Some(json!({"increment": "1h"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["auth"]["lease_duration"], 3600);
    // Expiry: an hour and a bit later the token stops working, without any sweep.
    h.engine.clock().advance(3601);
    assert_eq!(
        h.call_as(&t, "GET", "/v1/auth/token/lookup-self", None)
            .await
            .status,
        403
    );

    // Revocation, and children dying with their parent.
    let (parent, _) = token_with(&h, json!({"policies": ["app"]})).await;
    let child = h
        .call_as(
            &parent,
            "POST",
            "/v1/auth/token/create",
            Some(json!({"policies": ["app"]})),
        )
        .await;
    // A non-root token cannot create children without update on auth/token/create.
    assert_eq!(child.status, 403);
    h.put(
        "/v1/sys/policies/acl/creator",
        json!({"policy": "path \"auth/token/create\" { capabilities = [\"update\"] }"}),
    )
    .await;
    let (parent, _) = token_with(&h, json!({"policies": ["app", "creator"]})).await;
    let child = h
        .call_as(
            &parent,
            "POST",
            "/v1/auth/token/create",
            Some(json!({"policies": ["app"]})),
        )
        .await;
    assert_eq!(child.status, 200, "{}", child.text);
    let child = child.json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    // Children cannot get policies their parent lacks.
    let r = h
        .call_as(
            &parent,
            "POST",
            "/v1/auth/token/create",
            Some(json!({"policies": ["admin"]})),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        h.call_as(&child, "GET", "/v1/auth/token/lookup-self", None)
            .await
            .status,
        200
    );
    assert_eq!(
        h.put("/v1/auth/token/revoke", json!({"token": parent}))
            .await
            .status,
        204
    );
    assert_eq!(
        h.call_as(&parent, "GET", "/v1/auth/token/lookup-self", None)
            .await
            .status,
        403
    );
    assert_eq!(
        h.call_as(&child, "GET", "/v1/auth/token/lookup-self", None)
            .await
            .status,
        403
    );
    // revoke-self
    let (t2, _) = token_with(&h, json!({"policies": ["app"]})).await;
    assert_eq!(
        h.call_as(&t2, "POST", "/v1/auth/token/revoke-self", None)
            .await
            .status,
        204
    );
    assert_eq!(
        h.call_as(&t2, "GET", "/v1/auth/token/lookup-self", None)
            .await
            .status,
        403
    );
}

#[actix_web::test]
async fn parent_expiry_ends_children_and_num_uses_counts_down() {
    let h = harness().await;
    h.put(
        "/v1/sys/policies/acl/creator",
        json!({"policy": "path \"auth/token/create\" { capabilities = [\"update\"] }"}),
    )
    .await;
    let (parent, _) = token_with(&h, json!({"policies": ["creator"], "ttl": "10m"})).await;
    let r = h
        .call_as(
            &parent,
            "POST",
            "/v1/auth/token/create",
            Some(json!({"policies": ["creator"], "ttl": "1h"})),
        )
        .await;
    let v = r.json();
    // Capped at the parent's remaining life.
    assert!(v["auth"]["lease_duration"].as_i64().unwrap() <= 600);
    let child = v["auth"]["client_token"].as_str().unwrap().to_string();
    h.engine.clock().advance(601);
    assert_eq!(
        h.call_as(&child, "GET", "/v1/auth/token/lookup-self", None)
            .await
            .status,
        403
    );

    let (limited, _) = token_with(&h, json!({"policies": ["default"], "num_uses": 2})).await;
    assert_eq!(
        h.call_as(&limited, "GET", "/v1/auth/token/lookup-self", None)
            .await
            .json()["data"]["num_uses"],
        1
    );
    assert_eq!(
        h.call_as(&limited, "GET", "/v1/auth/token/lookup-self", None)
            .await
            .status,
        200
    );
    assert_eq!(
        h.call_as(&limited, "GET", "/v1/auth/token/lookup-self", None)
            .await
            .status,
        403
    );
}

#[actix_web::test]
async fn roles_orphans_and_accessors() {
    let h = harness().await;
    h.put("/v1/sys/policies/acl/app", json!({"policy": APP_POLICY}))
        .await;
    let r = h
        .put(
            "/v1/auth/token/roles/ci",
            json!({"allowed_policies": "app", "orphan": true, "token_period": "1h"}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let role = h.call("GET", "/v1/auth/token/roles/ci", None).await.json();
    assert_eq!(role["data"]["allowed_policies"], json!(["app"]));
    assert_eq!(role["data"]["token_period"], 3600);
    assert_eq!(
        h.call("LIST", "/v1/auth/token/roles", None).await.json()["data"]["keys"],
        json!(["ci"])
    );
    let (t, v) = token_with(&h, json!({})).await;
    let _ = t;
    assert_eq!(v["auth"]["orphan"], false);
    let r = h.put("/v1/auth/token/create/ci", json!({})).await.json();
    assert_eq!(r["auth"]["policies"], json!(["app", "default"]));
    assert_eq!(r["auth"]["orphan"], true);
    assert_eq!(r["auth"]["lease_duration"], 3600);
    let r = h
        .put("/v1/auth/token/create/ci", json!({"policies": ["root"]}))
        .await;
    assert_eq!(r.status, 400);
    let r = h
        .put("/v1/auth/token/create-orphan", json!({"policies": ["app"]}))
        .await
        .json();
    assert_eq!(r["auth"]["orphan"], true);
    let acc = h
        .call("LIST", "/v1/auth/token/accessors", None)
        .await
        .json();
    assert!(acc["data"]["keys"].as_array().unwrap().len() >= 4);
    // `accessors` needs sudo: a token with plain list on it is refused.
    h.put(
        "/v1/sys/policies/acl/lister",
        json!({"policy": "path \"auth/token/accessors\" { capabilities = [\"list\"] }"}),
    )
    .await;
    let (lister, _) = token_with(&h, json!({"policies": ["lister"]})).await;
    assert_eq!(
        h.call_as(&lister, "LIST", "/v1/auth/token/accessors", None)
            .await
            .status,
        403
    );
    assert_eq!(
        h.call("DELETE", "/v1/auth/token/roles/ci", None)
            .await
            .status,
        204
    );
    assert_eq!(
        h.call("GET", "/v1/auth/token/roles/ci", None).await.status,
        404
    );
}

#[actix_web::test]
async fn limited_token_on_vault_routes() {
    let h = harness().await;
    let t = app_token(&h).await;
    // Allowed: its own subtree.
    let w = h
        .call_as(
            &t,
            "POST",
            "/v1/secret/data/app/db",
            Some(json!({"data": {"p": "1"}})),
        )
        .await;
    assert_eq!(w.status, 200, "{}", w.text);
    assert_eq!(
        h.call_as(&t, "GET", "/v1/secret/data/app/db", None)
            .await
            .json()["data"]["data"],
        json!({"p": "1"})
    );
    assert_eq!(
        h.call_as(&t, "LIST", "/v1/secret/metadata/app", None)
            .await
            .json()["data"]["keys"],
        json!(["db"])
    );
    // Denied everywhere else, with the same body as a bad token.
    h.put("/v1/secret/data/other", json!({"data": {"x": 1}}))
        .await;
    for (m, p, b) in [
        ("GET", "/v1/secret/data/other", None),
        (
            "POST",
            "/v1/secret/data/other",
            Some(json!({"data": {"x": 2}})),
        ),
        ("GET", "/v1/secret/data/application", None),
        ("LIST", "/v1/secret/metadata/", None),
        ("GET", "/v1/secret/config", None),
        ("GET", "/v1/sys/mounts", None),
        ("POST", "/v1/sys/mounts/x", Some(json!({"type": "kv-v2"}))),
        ("LIST", "/v1/sys/policies/acl", None),
        (
            "POST",
            "/v1/secret/destroy/app/db",
            Some(json!({"versions": [1]})),
        ),
        (
            "PATCH",
            "/v1/secret/data/app/db",
            Some(json!({"data": {"q": "2"}})),
        ),
    ] {
        let r = h.call_as(&t, m, p, b).await;
        assert_eq!(r.status, 403, "{m} {p}: {}", r.text);
        assert_eq!(
            r.json(),
            json!({"errors": ["permission denied"]}),
            "{m} {p}"
        );
    }
    assert_eq!(
        h.call("GET", "/v1/secret/data/other", None).await.json()["data"]["data"],
        json!({"x": 1})
    );

    // create vs update: a create-only policy may write a new key but not overwrite it.
    h.put(
        "/v1/sys/policies/acl/c",
        json!({"policy": "path \"secret/data/c/*\" { capabilities = [\"create\"] }"}),
    )
    .await;
    let (c, _) = token_with(&h, json!({"policies": ["c"]})).await;
    assert_eq!(
        h.call_as(
            &c,
            "POST",
            "/v1/secret/data/c/new",
            Some(json!({"data": {"a": 1}}))
        )
        .await
        .status,
        200
    );
    assert_eq!(
        h.call_as(
            &c,
            "POST",
            "/v1/secret/data/c/new",
            Some(json!({"data": {"a": 2}}))
        )
        .await
        .status,
        403
    );
    h.put(
        "/v1/sys/policies/acl/u",
        json!({"policy": "path \"secret/data/u/*\" { capabilities = [\"update\", \"patch\"] }"}),
    )
    .await;
    let (u, _) = token_with(&h, json!({"policies": ["u"]})).await;
    assert_eq!(
        h.call_as(
            &u,
            "POST",
            "/v1/secret/data/u/new",
            Some(json!({"data": {"a": 1}}))
        )
        .await
        .status,
        403
    );
    h.put("/v1/secret/data/u/old", json!({"data": {"a": 1}}))
        .await;
    assert_eq!(
        h.call_as(
            &u,
            "POST",
            "/v1/secret/data/u/old",
            Some(json!({"data": {"a": 2}}))
        )
        .await
        .status,
        200
    );
    // patch needs `patch`: the app token has update but not patch (above: 403), this one has it.
    assert_eq!(
        h.call_as(
            &u,
            "PATCH",
            "/v1/secret/data/u/old",
            Some(json!({"data": {"b": 3}}))
        )
        .await
        .status,
        200
    );

    // The preflight: 403 for a mount the token has nothing under, 200 for its own.
    h.put("/v1/sys/mounts/hidden", json!({"type": "kv-v2"}))
        .await;
    let r = h
        .call_as(&t, "GET", "/v1/sys/internal/ui/mounts/hidden/x", None)
        .await;
    assert_eq!(r.status, 403);
    assert!(r.json()["errors"][0]
        .as_str()
        .unwrap()
        .contains("preflight capability check returned 403"));
    assert_eq!(
        h.call_as(&t, "GET", "/v1/sys/internal/ui/mounts/secret/app/db", None)
            .await
            .status,
        200
    );

    // capabilities-self
    let v = h
        .call_as(
            &t,
            "POST",
            "/v1/sys/capabilities-self",
            Some(json!({"path": "secret/data/app/db"})),
        )
        .await
        .json();
    assert_eq!(
        v["data"]["capabilities"],
        json!(["create", "delete", "read", "update"])
    );
    assert_eq!(v["capabilities"], v["data"]["capabilities"]);
    let v = h
        .call_as(
            &t,
            "POST",
            "/v1/sys/capabilities-self",
            Some(json!({"paths": ["secret/data/other", "secret/metadata/app/"]})),
        )
        .await
        .json();
    assert_eq!(v["data"]["secret/data/other"], json!(["deny"]));
    // Vault answers capabilities as for a list, so `app/` falls back to the exact rule for `app`.
    assert_eq!(v["data"]["secret/metadata/app/"], json!(["list"]));
    let v = h
        .put(
            "/v1/sys/capabilities",
            json!({"token": t, "path": "secret/data/app/x"}),
        )
        .await
        .json();
    assert_eq!(
        v["data"]["capabilities"],
        json!(["create", "delete", "read", "update"])
    );
    let v = h
        .put("/v1/sys/capabilities-self", json!({"path": "anything"}))
        .await
        .json();
    assert_eq!(v["data"]["capabilities"], json!(["root"]));
}

#[actix_web::test]
async fn tokens_are_stored_hashed() {
    let h = harness().await;
    let (t, _) = token_with(&h, json!({"policies": ["default"]})).await;
    let mut found = false;
    for entry in std::fs::read_dir(&h.dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        found |= bytes.windows(t.len()).any(|w| w == t.as_bytes());
    }
    assert!(
        !found,
        "a token was found in plaintext in the storage files"
    );
}
