//! In-process tests of the Shamir seal, key rotation and rewrap.

use serde_json::{json, Value};

use crate::engine::SealMode;
use crate::testutil::{harness, harness_shamir};

fn keys(v: &Value, field: &str) -> Vec<String> {
    v[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

#[actix_web::test]
async fn shamir_init_unseal_seal_restart() {
    let mut h = harness_shamir();
    let st = h
        .call_with("GET", "/v1/sys/seal-status", None, &[])
        .await
        .json();
    assert_eq!(
        (st["initialized"].clone(), st["sealed"].clone()),
        (json!(false), json!(true))
    );
    assert_eq!(
        h.call_with("GET", "/v1/sys/health", None, &[]).await.status,
        501
    );
    let bad = h
        .call_with(
            "PUT",
            "/v1/sys/init",
            Some(r#"{"secret_shares":3,"secret_threshold":4}"#),
            &[],
        )
        .await;
    assert_eq!(bad.status, 400);
    let init = h
        .call_with(
            "PUT",
            "/v1/sys/init",
            Some(r#"{"secret_shares":5,"secret_threshold":3}"#),
            &[],
        )
        .await;
    assert_eq!(init.status, 200, "{}", init.text);
    let init = init.json();
    let hex = keys(&init, "keys");
    let b64 = keys(&init, "keys_base64");
    assert_eq!((hex.len(), b64.len()), (5, 5));
    assert!(hex.iter().all(|k| k.len() == 66));
    let root = init["root_token"].as_str().unwrap().to_string();
    // Initialised but sealed, as after `vault operator init`.
    let st = h
        .call_with("GET", "/v1/sys/seal-status", None, &[])
        .await
        .json();
    assert_eq!(
        (
            st["sealed"].clone(),
            st["t"].clone(),
            st["n"].clone(),
            st["type"].clone()
        ),
        (json!(true), json!(3), json!(5), json!("shamir"))
    );
    assert_eq!(
        h.call_as(&root, "GET", "/v1/secret/config", None)
            .await
            .status,
        503
    );
    assert_eq!(
        h.call_as(&root, "GET", "/v1/secret/config", None)
            .await
            .json(),
        json!({"errors": ["Vault is sealed"]})
    );
    assert_eq!(
        h.call_with("GET", "/v1/sys/health", None, &[]).await.status,
        503
    );

    let unseal = |k: &str| format!(r#"{{"key":"{k}"}}"#);
    let s = h
        .call_with("PUT", "/v1/sys/unseal", Some(&unseal(&hex[0])), &[])
        .await
        .json();
    assert_eq!(
        (s["sealed"].clone(), s["progress"].clone()),
        (json!(true), json!(1))
    );
    // The same share twice does not count twice.
    let s = h
        .call_with("PUT", "/v1/sys/unseal", Some(&unseal(&hex[0])), &[])
        .await
        .json();
    assert_eq!(s["progress"], 1);
    // reset
    let s = h
        .call_with("PUT", "/v1/sys/unseal", Some(r#"{"reset":true}"#), &[])
        .await
        .json();
    assert_eq!(s["progress"], 0);
    h.call_with("PUT", "/v1/sys/unseal", Some(&unseal(&hex[4])), &[])
        .await;
    h.call_with("PUT", "/v1/sys/unseal", Some(&unseal(&b64[2])), &[])
        .await;
    let s = h
        .call_with("PUT", "/v1/sys/unseal", Some(&unseal(&hex[1])), &[])
        .await
        .json();
    assert_eq!(
        (s["sealed"].clone(), s["progress"].clone()),
        (json!(false), json!(0))
    );
    assert_eq!(
        h.call_with("GET", "/v1/sys/health", None, &[]).await.status,
        200
    );
    let w = h
        .call_as(
            &root,
            "POST",
            "/v1/secret/data/kept",
            Some(json!({"data": {"v": "1"}})),
        )
        .await;
    assert_eq!(w.status, 200, "{}", w.text);
    // Rotating the root key keeps the shares valid (checked by the restart below).
    assert_eq!(
        h.call_as(&root, "PUT", "/v1/sys/rotate/root", None)
            .await
            .status,
        204
    );
    assert_eq!(
        h.call_as(&root, "PUT", "/v1/sys/rotate", None).await.status,
        204
    );

    // sys/seal needs sudo (root has it), then everything is 503 again.
    assert_eq!(
        h.call_as(&root, "PUT", "/v1/sys/seal", None).await.status,
        204
    );
    assert_eq!(
        h.call_as(&root, "GET", "/v1/secret/data/kept", None)
            .await
            .status,
        503
    );

    // Wrong shares: progress resets and the server stays sealed.
    let other = harness_shamir();
    let other_init = other
        .call_with(
            "PUT",
            "/v1/sys/init",
            Some(r#"{"secret_shares":3,"secret_threshold":2}"#),
            &[],
        )
        .await
        .json();
    let wrong = keys(&other_init, "keys");
    h.call_with("PUT", "/v1/sys/unseal", Some(&unseal(&wrong[0])), &[])
        .await;
    h.call_with("PUT", "/v1/sys/unseal", Some(&unseal(&wrong[1])), &[])
        .await;
    let r = h
        .call_with("PUT", "/v1/sys/unseal", Some(&unseal(&wrong[2])), &[])
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let st = h
        .call_with("GET", "/v1/sys/seal-status", None, &[])
        .await
        .json();
    assert_eq!(
        (st["sealed"].clone(), st["progress"].clone()),
        (json!(true), json!(0))
    );
    assert_eq!(
        h.call_with("PUT", "/v1/sys/unseal", Some(r#"{"key":"zz"}"#), &[])
            .await
            .status,
        400
    );

    // Restart: sealed; 3 of the 5 shares unseal it; the data is intact.
    h.reopen(SealMode::Shamir);
    assert_eq!(
        h.call_with("GET", "/v1/sys/seal-status", None, &[])
            .await
            .json()["sealed"],
        true
    );
    for k in [&hex[3], &hex[2], &hex[0]] {
        h.call_with("PUT", "/v1/sys/unseal", Some(&unseal(k)), &[])
            .await;
    }
    let g = h.call_as(&root, "GET", "/v1/secret/data/kept", None).await;
    assert_eq!(g.status, 200, "{}", g.text);
    assert_eq!(g.json()["data"]["data"], json!({"v": "1"}));
}

#[actix_web::test]
async fn rotate_rewrap_and_root_rotation() {
    let h = harness().await;
    h.put("/v1/secret/data/a", json!({"data": {"n": 1}})).await;
    h.put("/v1/secret/data/a", json!({"data": {"n": 2}})).await;
    let ks = h.call("GET", "/v1/sys/key-status", None).await.json();
    assert_eq!(ks["data"]["term"], 1);
    assert_eq!(ks["term"], 1);
    assert_eq!(h.call("PUT", "/v1/sys/rotate", None).await.status, 204);
    let ks = h.call("GET", "/v1/sys/key-status", None).await.json();
    assert_eq!(ks["data"]["term"], 2);
    h.put("/v1/secret/data/a", json!({"data": {"n": 3}})).await;
    // Old and new versions all read.
    for (v, n) in [(1, 1), (2, 2), (3, 3)] {
        let g = h
            .call("GET", &format!("/v1/secret/data/a?version={v}"), None)
            .await
            .json();
        assert_eq!(g["data"]["data"]["n"], n);
    }
    let key_ids = |h: &crate::testutil::Harness| -> Vec<i64> {
        let conn = rusqlite::Connection::open(h.dir.join("kvseal.db")).unwrap();
        let mut st = conn
            .prepare("SELECT key_id FROM versions ORDER BY version")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    assert_eq!(key_ids(&h), [1, 1, 2]);
    let st = h.call("GET", "/v1/sys/rewrap", None).await.json();
    // Versions 1 and 2, and the root token's entry (sealed at init); the key's record was re-sealed
    // by the write of version 3.
    assert_eq!(st["data"]["remaining"], 3);
    let r = h.call("PUT", "/v1/sys/rewrap", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    for _ in 0..100 {
        let st = h.call("GET", "/v1/sys/rewrap", None).await.json();
        if st["data"]["running"] == false && st["data"]["remaining"] == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        key_ids(&h),
        [2, 2, 2],
        "every version is under the newest key after rewrap"
    );
    let other_ids = |h: &crate::testutil::Harness| -> Vec<(String, i64)> {
        let conn = rusqlite::Connection::open(h.dir.join("kvseal.db")).unwrap();
        let mut st = conn
            .prepare(
                "SELECT 'secrets', key_id FROM secrets UNION ALL SELECT 'tokens', key_id FROM tokens
                 UNION ALL SELECT key, CAST(substr(value, 4, 1) AS BLOB) FROM kvseal_meta
                 WHERE key IN ('mounts', 'policies', 'token_roles', 'audit_devices')",
            )
            .unwrap();
        st.query_map([], |r| {
            let id: rusqlite::types::Value = r.get(1)?;
            Ok((
                r.get(0)?,
                match id {
                    rusqlite::types::Value::Integer(i) => i,
                    rusqlite::types::Value::Blob(b) => b.first().copied().unwrap_or(0) as i64,
                    _ => -1,
                },
            ))
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
    };
    for (table, id) in other_ids(&h) {
        assert_eq!(id, 2, "{table} is under the newest key after rewrap");
    }
    for (v, n) in [(1, 1), (2, 2), (3, 3)] {
        let g = h
            .call("GET", &format!("/v1/secret/data/a?version={v}"), None)
            .await
            .json();
        assert_eq!(g["data"]["data"]["n"], n);
    }
    // Root key rotation re-seals the keyring; data still reads, and so it does after a restart.
    assert_eq!(h.call("PUT", "/v1/sys/rotate/root", None).await.status, 204);
    assert_eq!(
        h.call("GET", "/v1/secret/data/a", None).await.json()["data"]["data"]["n"],
        3
    );
    // Non-root tokens need sudo for these.
    h.put(
        "/v1/sys/policies/acl/rot",
        json!({"policy": "path \"sys/rotate\" { capabilities = [\"update\"] }"}),
    )
    .await;
    let t = h
        .put("/v1/auth/token/create", json!({"policies": ["rot"]}))
        .await
        .json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        h.call_as(&t, "PUT", "/v1/sys/rotate", None).await.status,
        403
    );
}

#[actix_web::test]
async fn full_storage_is_503_and_recovers() {
    let h = harness().await;
    h.put("/v1/secret/data/before", json!({"data": {"a": "1"}}))
        .await;
    // Cap the database at its current size: the next write finds the "disk" full.
    let pages: u64 = {
        let conn = rusqlite::Connection::open(h.dir.join("kvseal.db")).unwrap();
        conn.query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap()
    };
    h.engine.set_max_page_count(pages).await.unwrap();
    let big = "x".repeat(200_000);
    let r = h
        .put("/v1/secret/data/big", json!({"data": {"a": big}}))
        .await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(
        r.json()["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("storage unavailable"),
        "{}",
        r.text
    );
    let r = h
        .call(
            "GET",
            &format!("/api/{}/v2/secret", crate::testutil::OKMS_ID),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "reads still work while writes cannot");
    let r = h
        .call(
            "POST",
            &format!("/api/{}/v2/secret", crate::testutil::OKMS_ID),
            Some(json!({"path": "big2", "version": {"data": {"a": "x".repeat(60_000)}}})),
        )
        .await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(r.json()["errors"][0]
        .as_str()
        .unwrap()
        .starts_with("storage unavailable"));
    // Nothing half-written; the earlier secret is intact.
    assert_eq!(h.call("GET", "/v1/secret/data/big", None).await.status, 404);
    assert_eq!(
        h.call("GET", "/v1/secret/data/before", None).await.json()["data"]["data"],
        json!({"a": "1"})
    );
    // Space returns: the same write succeeds, no restart needed.
    h.engine.set_max_page_count(1 << 30).await.unwrap();
    let r = h
        .put(
            "/v1/secret/data/big",
            json!({"data": {"a": "x".repeat(200_000)}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// A Shamir store still holding an earlier kvseal's built-in `default` policy (which granted no
/// cubbyhole and no response wrapping) gets Vault's at its unseal: it is sealed at start, when the
/// file-seal stores are upgraded.
#[actix_web::test]
async fn shamir_unseal_upgrades_the_previous_builtin_default_policy() {
    let h = harness_shamir();
    let init = h
        .call_with(
            "PUT",
            "/v1/sys/init",
            Some(r#"{"secret_shares":1,"secret_threshold":1}"#),
            &[],
        )
        .await;
    assert_eq!(init.status, 200, "{}", init.text);
    let init = init.json();
    let key = keys(&init, "keys")[0].clone();
    let root = init["root_token"].as_str().unwrap().to_string();
    let unseal = format!(r#"{{"key":"{key}"}}"#);
    let r = h
        .call_with("PUT", "/v1/sys/unseal", Some(&unseal), &[])
        .await;
    assert_eq!(
        (r.status.as_u16(), r.json()["sealed"].clone()),
        (200, json!(false))
    );
    let old = json!({ "policy": crate::policy::PREVIOUS_DEFAULT_POLICY });
    let r = h
        .call_as(&root, "PUT", "/v1/sys/policies/acl/default", Some(old))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = h.call_as(&root, "PUT", "/v1/sys/seal", None).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = h
        .call_with("PUT", "/v1/sys/unseal", Some(&unseal), &[])
        .await;
    assert_eq!(
        (r.status.as_u16(), r.json()["sealed"].clone()),
        (200, json!(false))
    );
    let r = h
        .call_as(&root, "GET", "/v1/sys/policies/acl/default", None)
        .await;
    assert_eq!(
        (r.status.as_u16(), r.json()["data"]["policy"].clone()),
        (200, json!(crate::policy::DEFAULT_POLICY))
    );
}
