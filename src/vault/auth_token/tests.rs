//! In-process tests of what kvseal refuses on the token store where Vault would accept an option
//! kvseal cannot enforce (the compat suite checks the behaviours both share against OpenBao).

use serde_json::{json, Value};

use crate::testutil::harness;

/// (role write, the 400 error): each option is refused, and the stored role stays as it was.
#[actix_web::test]
async fn role_options_kvseal_cannot_enforce_are_refused() {
    let h = harness().await;
    let r = h
        .put("/v1/auth/token/roles/r", json!({"token_period": "1h"}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let before = h.call("GET", "/v1/auth/token/roles/r", None).await;
    assert_eq!(before.status, 200, "{}", before.text);
    let cases: &[(Value, &str)] = &[
        (
            json!({"token_bound_cidrs": ["127.0.0.1/32"]}),
            "token_bound_cidrs is not supported: kvseal does not bind tokens to client addresses",
        ),
        (
            json!({"bound_cidrs": "10.0.0.0/8"}),
            "bound_cidrs is not supported: kvseal does not bind tokens to client addresses",
        ),
        (
            json!({"allowed_entity_aliases": ["app"]}),
            "allowed_entity_aliases is not supported: kvseal has no identity store",
        ),
        (
            json!({"token_type": "batch"}),
            "token_type \"batch\" is not supported: kvseal issues service tokens only",
        ),
        (
            json!({"token_type": "default-batch"}),
            "token_type \"default-batch\" is not supported: kvseal issues service tokens only",
        ),
        (
            json!({"token_explicit_max_ttl": "1000h"}),
            "explicit max TTL of 3600000 is greater than the system maximum of 2764800 seconds",
        ),
    ];
    for (body, error) in cases {
        let r = h.put("/v1/auth/token/roles/r", body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_eq!(r.json(), json!({"errors": [error]}), "{body}");
        let after = h.call("GET", "/v1/auth/token/roles/r", None).await;
        assert_eq!(after.json()["data"], before.json()["data"], "{body}");
    }
    // Empty lists ask for nothing and are accepted.
    let r = h
        .put(
            "/v1/auth/token/roles/r",
            json!({"token_bound_cidrs": [], "allowed_entity_aliases": ""}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
}

/// (create path, body, the 400 error): Vault's own refusals of `entity_alias`, since no kvseal role
/// allows one; nothing is created.
#[actix_web::test]
async fn entity_alias_is_refused_as_vault_refuses_it() {
    let h = harness().await;
    let r = h.put("/v1/auth/token/roles/r", json!({})).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let before = h.call("LIST", "/v1/auth/token/accessors", None).await;
    assert_eq!(before.status, 200, "{}", before.text);
    for (path, error) in [
        (
            "/v1/auth/token/create",
            "'entity_alias' is only allowed in combination with token role",
        ),
        ("/v1/auth/token/create/r", "invalid 'entity_alias' value"),
    ] {
        let r = h.put(path, json!({"entity_alias": "app"})).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text);
        assert_eq!(r.json(), json!({"errors": [error]}), "{path}");
    }
    let after = h.call("LIST", "/v1/auth/token/accessors", None).await;
    assert_eq!(after.json()["data"], before.json()["data"]);
}

/// A sudo grant on `auth/token/create` does not cover `auth/token/create/<role>`: Vault checks
/// sudo on the path called.
#[actix_web::test]
async fn sudo_is_checked_on_the_path_called() {
    let h = harness().await;
    for (path, body) in [
        (
            "/v1/sys/policies/acl/creator",
            json!({"policy": "path \"auth/token/create\" { capabilities = [\"update\", \"sudo\"] }\npath \"auth/token/create/*\" { capabilities = [\"update\"] }"}),
        ),
        (
            "/v1/sys/policies/acl/admin",
            json!({"policy": "path \"*\" { capabilities = [\"read\"] }"}),
        ),
        ("/v1/auth/token/roles/open", json!({})),
    ] {
        let r = h.put(path, body).await;
        assert_eq!(r.status, 204, "{path}: {}", r.text);
    }
    let r = h
        .put("/v1/auth/token/create", json!({"policies": ["creator"]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let creator = r.json()["auth"]["client_token"]
        .as_str()
        .expect("token")
        .to_string();
    let cases = [
        ("/v1/auth/token/create", 200),
        ("/v1/auth/token/create/open", 400),
    ];
    for (path, status) in cases {
        let r = h
            .call_as(&creator, "POST", path, Some(json!({"policies": ["admin"]})))
            .await;
        assert_eq!(r.status, status, "{path}: {}", r.text);
    }
}
