//! In-process tests of rekey: Vault's unauthenticated `sys/rekey/init|update|verify` (raw JSON)
//! and OpenBao's authenticated `sys/rotate/root/init|update|verify` (in `data`).

use serde_json::{json, Value};

use super::tests_generate_root::{anon, shamir, unseal};
use crate::engine::SealMode;
use crate::testutil::{harness, Harness, Resp};

const INIT: &str = "/v1/sys/rekey/init";
const UPDATE: &str = "/v1/sys/rekey/update";
const VERIFY: &str = "/v1/sys/rekey/verify";

fn idle(required: usize) -> Value {
    json!({
        "nonce": "", "started": false, "t": 0, "n": 0, "progress": 0, "required": required,
        "pgp_fingerprints": null, "backup": false, "verification_required": false,
    })
}

/// Starts a rekey to `n`/`t`; returns its nonce.
async fn start(h: &Harness, n: usize, t: usize, verify: bool) -> String {
    let body = json!({"secret_shares": n, "secret_threshold": t, "require_verification": verify});
    let (s, v) = anon(h, "PUT", INIT, Some(body)).await;
    assert_eq!(s, 200, "{v}");
    v["nonce"].as_str().unwrap().to_string()
}

/// Gives `keys` to `path` with `nonce`; returns the last answer (each must be 200).
async fn give(h: &Harness, path: &str, keys: &[String], nonce: &str) -> Value {
    let mut last = Value::Null;
    for k in keys {
        let (s, v) = anon(h, "PUT", path, Some(json!({"key": k, "nonce": nonce}))).await;
        assert_eq!(s, 200, "{path}: {v}");
        last = v;
    }
    last
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

async fn seal_status(h: &Harness) -> Value {
    anon(h, "GET", "/v1/sys/seal-status", None).await.1
}

/// Seals, then gives `keys` to `sys/unseal` one by one; returns whether the server is sealed after.
async fn seal_then_unseal_with(h: &Harness, root: &str, keys: &[String]) -> (bool, Vec<u16>) {
    assert_eq!(
        h.call_as(root, "PUT", "/v1/sys/seal", None).await.status,
        204
    );
    let mut statuses = Vec::new();
    for k in keys {
        statuses.push(
            anon(h, "PUT", "/v1/sys/unseal", Some(json!({"key": k})))
                .await
                .0,
        );
    }
    (seal_status(h).await["sealed"] == true, statuses)
}

#[actix_web::test]
async fn status_without_a_rekey_is_vaults_raw_json() {
    let (h, _, _) = shamir(5, 3).await;
    assert_eq!(anon(&h, "GET", INIT, None).await, (200, idle(3)));
    assert_eq!(
        anon(&h, "GET", VERIFY, None).await,
        (400, json!({"errors": ["no rekey configuration found"]}))
    );
}

#[actix_web::test]
async fn init_checks_the_new_configuration_as_vault_does() {
    let (h, _, _) = shamir(3, 2).await;
    let bad = |m: &str| json!({"errors": [format!("invalid rekey seal configuration: {m}")]});
    let cases = [
        (json!({}), bad("shares must be at least one")),
        (
            json!({"secret_shares": 3}),
            bad("threshold must be at least one"),
        ),
        (
            json!({"secret_shares": 2, "secret_threshold": 3}),
            bad("threshold cannot be larger than shares"),
        ),
        (
            json!({"secret_shares": 3, "secret_threshold": 1}),
            bad("threshold must be greater than one for multiple shares"),
        ),
        (
            json!({"secret_shares": 300, "secret_threshold": 3}),
            bad("shares must be less than 256"),
        ),
        (
            json!({"secret_shares": 3, "secret_threshold": 2, "backup": true}),
            json!({"errors": ["cannot request a backup of the new keys without providing PGP keys for encryption"]}),
        ),
        (
            json!({"secret_shares": 1, "secret_threshold": 1, "pgp_keys": ["mQENBF..."]}),
            json!({"errors": ["pgp_keys is not supported by kvseal: the new unseal keys are returned in clear (omit pgp_keys and backup)"]}),
        ),
    ];
    for (body, want) in cases {
        assert_eq!(
            anon(&h, "PUT", INIT, Some(body.clone())).await,
            (400, want),
            "{body}"
        );
    }
    assert_eq!(
        anon(&h, "GET", INIT, None).await,
        (200, idle(2)),
        "nothing started"
    );
}

#[actix_web::test]
async fn init_takes_what_the_cli_sends_and_refuses_a_second_one() {
    let (h, _, _) = shamir(3, 2).await;
    // `bao operator rekey -init` sends null PGP keys and a false backup.
    let body = json!({"secret_shares": 1, "secret_threshold": 1, "pgp_keys": null, "backup": false,
                      "require_verification": false});
    let (s, v) = anon(&h, "PUT", INIT, Some(body)).await;
    assert_eq!(s, 200, "{v}");
    let nonce = v["nonce"].as_str().unwrap();
    assert_eq!(
        v,
        json!({"nonce": nonce, "started": true, "t": 1, "n": 1, "progress": 0, "required": 2,
               "pgp_fingerprints": null, "backup": false, "verification_required": false})
    );
    assert_eq!(
        anon(
            &h,
            "POST",
            INIT,
            Some(json!({"secret_shares": 3, "secret_threshold": 2}))
        )
        .await,
        (400, json!({"errors": ["rekey already in progress"]}))
    );
    assert_eq!(anon(&h, "DELETE", INIT, None).await, (204, Value::Null));
    assert_eq!(anon(&h, "GET", INIT, None).await, (200, idle(2)));
}

#[actix_web::test]
async fn updates_are_refused_as_vault_refuses_them() {
    let (h, keys, _) = shamir(3, 2).await;
    assert_eq!(
        anon(
            &h,
            "PUT",
            UPDATE,
            Some(json!({"key": keys[0], "nonce": "n"}))
        )
        .await,
        (400, json!({"errors": ["no barrier rekey in progress"]}))
    );
    let nonce = start(&h, 3, 2, false).await;
    let wrong_nonce =
        format!("incorrect nonce supplied; nonce for this rekey operation is \"{nonce}\"");
    give(&h, UPDATE, &keys[..1], &nonce).await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"key": keys[1], "nonce": "other"}), &wrong_nonce),
        (
            json!({"nonce": nonce}),
            "'key' must be specified in request body as JSON",
        ),
        (
            json!({"key": "zz!!", "nonce": nonce}),
            "'key' must be a valid hex or base64 string",
        ),
        (
            json!({"key": "abcd", "nonce": nonce}),
            "key is shorter than minimum 16 bytes",
        ),
        (
            json!({"key": keys[0], "nonce": nonce}),
            "given key has already been provided during this generation operation",
        ),
    ];
    for (body, error) in cases {
        assert_eq!(
            anon(&h, "PUT", UPDATE, Some(body.clone())).await,
            (400, json!({"errors": [error]})),
            "{body}"
        );
    }
    assert_eq!(anon(&h, "GET", INIT, None).await.1["progress"], 1);
}

#[actix_web::test]
async fn rekey_to_three_shares_threshold_two_then_only_the_new_keys_unseal() {
    let (h, old, root) = shamir(5, 3).await;
    let w = h
        .call_as(
            &root,
            "POST",
            "/v1/secret/data/kept",
            Some(json!({"data": {"v": "1"}})),
        )
        .await;
    assert_eq!(w.status, 200, "{}", w.text);
    let nonce = start(&h, 3, 2, false).await;
    let two = give(&h, UPDATE, &old[1..3], &nonce).await;
    assert_eq!(
        two,
        json!({"nonce": nonce, "started": true, "t": 2, "n": 3, "progress": 2, "required": 3,
               "pgp_fingerprints": null, "backup": false, "verification_required": false})
    );
    let done = give(&h, UPDATE, &old[4..5], &nonce).await;
    let keys = strings(&done["keys"]);
    let b64 = strings(&done["keys_base64"]);
    assert_eq!(
        done,
        json!({"nonce": nonce, "complete": true, "keys": keys, "keys_base64": b64,
               "pgp_fingerprints": null, "backup": false, "verification_required": false})
    );
    assert_eq!((keys.len(), keys[0].len()), (3, 66));
    // The seal says so at once; the rekey is over.
    let st = seal_status(&h).await;
    assert_eq!(
        (st["t"].clone(), st["n"].clone(), st["sealed"].clone()),
        (json!(2), json!(3), json!(false))
    );
    assert_eq!(anon(&h, "GET", INIT, None).await, (200, idle(2)));

    // Old keys: the threshold of them (now 2) no longer opens the seal.
    let (sealed, statuses) = seal_then_unseal_with(&h, &root, &old[..2]).await;
    assert_eq!((sealed, statuses), (true, vec![200, 400]));
    // Two new ones (hex and base64) do; the data is there.
    unseal(&h, &[keys[2].clone(), b64[0].clone()]).await;
    let g = h.call_as(&root, "GET", "/v1/secret/data/kept", None).await;
    assert_eq!(g.json()["data"]["data"], json!({"v": "1"}), "{}", g.text);
}

#[actix_web::test]
async fn the_new_keys_unseal_after_a_restart() {
    let (mut h, old, root) = shamir(3, 2).await;
    let nonce = start(&h, 4, 3, false).await;
    let keys = strings(&give(&h, UPDATE, &old[..2], &nonce).await["keys"]);
    h.reopen(SealMode::Shamir);
    let st = seal_status(&h).await;
    assert_eq!(
        (st["t"].clone(), st["n"].clone(), st["sealed"].clone()),
        (json!(3), json!(4), json!(true))
    );
    unseal(&h, &keys[1..4]).await;
    assert_eq!(
        h.call_as(&root, "GET", "/v1/auth/token/lookup-self", None)
            .await
            .status,
        200
    );
}

#[actix_web::test]
async fn wrong_shares_at_the_threshold_are_refused_and_forgotten_and_the_rekey_goes_on() {
    let (h, keys, root) = shamir(3, 2).await;
    let (_, other, _) = shamir(3, 2).await;
    let nonce = start(&h, 3, 2, false).await;
    give(&h, UPDATE, &other[..1], &nonce).await;
    assert_eq!(
        anon(
            &h,
            "PUT",
            UPDATE,
            Some(json!({"key": keys[0], "nonce": nonce}))
        )
        .await,
        (
            400,
            json!({"errors": ["root key verification failed: the unseal keys given do not open the stored root key"]})
        )
    );
    let st = anon(&h, "GET", INIT, None).await.1;
    assert_eq!(
        (
            st["started"].clone(),
            st["nonce"].clone(),
            st["progress"].clone()
        ),
        (json!(true), json!(nonce), json!(0))
    );
    // Nothing changed: the old keys still unseal.
    let (sealed, _) = seal_then_unseal_with(&h, &root, &keys[1..3]).await;
    assert!(!sealed);
}

#[actix_web::test]
async fn with_verification_the_new_keys_take_effect_only_once_given_back() {
    let (h, old, root) = shamir(3, 2).await;
    let nonce = start(&h, 5, 3, true).await;
    let done = give(&h, UPDATE, &old[..2], &nonce).await;
    let keys = strings(&done["keys"]);
    let vnonce = done["verification_nonce"].as_str().unwrap().to_string();
    assert_eq!(
        (
            done["complete"].clone(),
            done["verification_required"].clone(),
            keys.len()
        ),
        (json!(true), json!(true), 5)
    );
    assert_ne!(vnonce, nonce);
    // Not in force yet.
    assert_eq!(
        (
            seal_status(&h).await["t"].clone(),
            seal_status(&h).await["n"].clone()
        ),
        (json!(2), json!(3))
    );
    let st = anon(&h, "GET", INIT, None).await.1;
    assert_eq!(st["verification_nonce"], vnonce.as_str(), "{st}");
    assert_eq!(
        anon(
            &h,
            "PUT",
            UPDATE,
            Some(json!({"key": old[2], "nonce": nonce}))
        )
        .await,
        (
            400,
            json!({"errors": [format!("rekey operation already finished; verification must be performed; nonce for the verification operation is \"{vnonce}\"")]})
        )
    );
    assert_eq!(
        anon(&h, "GET", VERIFY, None).await,
        (
            200,
            json!({"nonce": vnonce, "started": true, "t": 3, "n": 5, "progress": 0})
        )
    );
    // DELETE starts the verification over with a new nonce.
    let (s, restarted) = anon(&h, "DELETE", VERIFY, None).await;
    assert_eq!(s, 200, "{restarted}");
    let vnonce2 = restarted["nonce"].as_str().unwrap().to_string();
    assert_ne!(vnonce2, vnonce);
    assert_eq!(
        anon(
            &h,
            "PUT",
            VERIFY,
            Some(json!({"key": keys[0], "nonce": vnonce}))
        )
        .await,
        (
            400,
            json!({"errors": [format!("incorrect nonce supplied; nonce for this verify operation is \"{vnonce2}\"")]})
        )
    );
    // Wrong shares at the new threshold: refused, forgotten, and the nonce changes again.
    give(&h, VERIFY, &[keys[0].clone(), old[0].clone()], &vnonce2).await;
    assert_eq!(
        anon(
            &h,
            "PUT",
            VERIFY,
            Some(json!({"key": old[1], "nonce": vnonce2}))
        )
        .await,
        (
            400,
            json!({"errors": ["rekey verification failed; incorrect key shares supplied"]})
        )
    );
    let st = anon(&h, "GET", VERIFY, None).await.1;
    let vnonce3 = st["nonce"].as_str().unwrap().to_string();
    assert_ne!(vnonce3, vnonce2);
    assert_eq!(st["progress"], 0);
    let step = give(&h, VERIFY, &keys[1..3], &vnonce3).await;
    assert_eq!(
        step,
        json!({"nonce": vnonce3, "started": true, "t": 3, "n": 5, "progress": 2})
    );
    assert_eq!(
        give(&h, VERIFY, &keys[4..5], &vnonce3).await,
        json!({"nonce": vnonce3, "complete": true})
    );
    let st = seal_status(&h).await;
    assert_eq!((st["t"].clone(), st["n"].clone()), (json!(3), json!(5)));
    assert_eq!(anon(&h, "GET", INIT, None).await, (200, idle(3)));
    let (sealed, _) = seal_then_unseal_with(&h, &root, &keys[2..5]).await;
    assert!(!sealed);
}

#[actix_web::test]
async fn cancel_during_verification_keeps_the_old_keys() {
    let (h, old, root) = shamir(3, 2).await;
    let nonce = start(&h, 3, 2, true).await;
    let keys = strings(&give(&h, UPDATE, &old[..2], &nonce).await["keys"]);
    assert_eq!(anon(&h, "DELETE", INIT, None).await.0, 204);
    assert_eq!(
        anon(
            &h,
            "PUT",
            VERIFY,
            Some(json!({"key": keys[0], "nonce": "x"}))
        )
        .await,
        (400, json!({"errors": ["no rekey in progress"]}))
    );
    let (sealed, _) = seal_then_unseal_with(&h, &root, &old[1..3]).await;
    assert!(!sealed);
}

#[actix_web::test]
async fn sealing_forgets_the_rekey_and_the_generate_root_attempt() {
    let (h, old, root) = shamir(3, 2).await;
    let nonce = start(&h, 3, 2, true).await;
    give(&h, UPDATE, &old[..2], &nonce).await;
    let r = anon(&h, "PUT", "/v1/sys/generate-root/attempt", Some(json!({}))).await;
    assert_eq!(r.0, 200, "{}", r.1);
    let (sealed, _) = seal_then_unseal_with(&h, &root, &old[..2]).await;
    assert!(!sealed);
    assert_eq!(anon(&h, "GET", INIT, None).await, (200, idle(2)));
    let st = anon(&h, "GET", "/v1/sys/generate-root/attempt", None)
        .await
        .1;
    assert_eq!(st["started"], false, "{st}");
}

#[actix_web::test]
async fn with_the_file_seal_rekey_is_refused() {
    let h = harness().await;
    assert_eq!(anon(&h, "GET", INIT, None).await, (200, idle(1)));
    let (s, v) = anon(
        &h,
        "PUT",
        INIT,
        Some(json!({"secret_shares": 3, "secret_threshold": 2})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("rekey is not supported with the file seal"),
        "{v}"
    );
    let r = h
        .call(
            "PUT",
            "/v1/sys/rotate/root/init",
            Some(json!({"secret_shares": 3, "secret_threshold": 2})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
}

#[actix_web::test]
async fn sealed_is_503() {
    let (h, _, root) = shamir(3, 2).await;
    assert_eq!(
        h.call_as(&root, "PUT", "/v1/sys/seal", None).await.status,
        204
    );
    for (method, path) in [
        ("GET", INIT),
        ("PUT", INIT),
        ("GET", VERIFY),
        ("DELETE", INIT),
    ] {
        assert_eq!(
            anon(&h, method, path, Some(json!({}))).await,
            (503, json!({"errors": ["Vault is sealed"]})),
            "{method} {path}"
        );
    }
}

const BAO_INIT: &str = "/v1/sys/rotate/root/init";
const BAO_UPDATE: &str = "/v1/sys/rotate/root/update";
const BAO_VERIFY: &str = "/v1/sys/rotate/root/verify";

fn data(r: Resp) -> Value {
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["data"].clone()
}

#[actix_web::test]
async fn openbao_rotate_root_routes_answer_in_data() {
    let (h, old, root) = shamir(3, 2).await;
    assert_eq!(
        anon(&h, "GET", BAO_INIT, None).await,
        (403, json!({"errors": ["permission denied"]}))
    );
    assert_eq!(
        data(h.call_as(&root, "GET", BAO_INIT, None).await),
        json!({"n": 0, "t": 0, "started": false, "required": 2})
    );
    let r = h.call_as(&root, "GET", BAO_VERIFY, None).await;
    assert_eq!(
        (r.status.as_u16(), r.json()),
        (400, json!({"errors": ["no rotation configuration found"]}))
    );
    // What `bao operator rotate-keys -init` sends.
    let body = json!({"secret_shares": 3, "secret_threshold": 2, "pgp_keys": null, "backup": false,
                      "require_verification": false});
    let started = data(h.call_as(&root, "POST", BAO_INIT, Some(body)).await);
    let nonce = started["nonce"].as_str().unwrap().to_string();
    assert_eq!(
        started,
        json!({"n": 3, "t": 2, "nonce": nonce, "progress": 0, "required": 2, "started": true,
               "verification_required": false, "verification_nonce": ""})
    );
    let r = h
        .call_as(&root, "PUT", BAO_UPDATE, Some(json!({"key": old[0]})))
        .await;
    assert_eq!(
        (r.status.as_u16(), r.json()),
        (400, json!({"errors": ["missing required field 'nonce'"]}))
    );
    let one = data(
        h.call_as(
            &root,
            "PUT",
            BAO_UPDATE,
            Some(json!({"key": old[0], "nonce": nonce})),
        )
        .await,
    );
    assert_eq!(one["progress"], 1);
    let done = data(
        h.call_as(
            &root,
            "PUT",
            BAO_UPDATE,
            Some(json!({"key": old[1], "nonce": nonce})),
        )
        .await,
    );
    let keys = strings(&done["keys"]);
    assert_eq!(
        done,
        json!({"backup": false, "complete": true, "keys": keys, "keys_base64": done["keys_base64"],
               "nonce": nonce, "pgp_fingerprints": null, "verification_nonce": "",
               "verification_required": false})
    );
    let (sealed, _) = seal_then_unseal_with(&h, &root, &keys[..2]).await;
    assert!(!sealed);
}

#[actix_web::test]
async fn openbao_rotate_root_verification_answers_in_data() {
    let (h, old, root) = shamir(3, 2).await;
    let started = data(
        h.call_as(
            &root,
            "POST",
            BAO_INIT,
            Some(json!({"secret_shares": 2, "secret_threshold": 2, "require_verification": true})),
        )
        .await,
    );
    let nonce = started["nonce"].as_str().unwrap().to_string();
    let mut done = Value::Null;
    for k in &old[..2] {
        done = data(
            h.call_as(
                &root,
                "PUT",
                BAO_UPDATE,
                Some(json!({"key": k, "nonce": nonce})),
            )
            .await,
        );
    }
    let vnonce = done["verification_nonce"].as_str().unwrap().to_string();
    let keys = strings(&done["keys"]);
    assert_eq!(
        data(h.call_as(&root, "GET", BAO_VERIFY, None).await),
        json!({"nonce": vnonce, "started": true, "t": 2, "n": 2, "progress": 0})
    );
    data(
        h.call_as(
            &root,
            "PUT",
            BAO_VERIFY,
            Some(json!({"key": keys[0], "nonce": vnonce})),
        )
        .await,
    );
    assert_eq!(
        data(
            h.call_as(
                &root,
                "PUT",
                BAO_VERIFY,
                Some(json!({"key": keys[1], "nonce": vnonce}))
            )
            .await
        ),
        json!({"complete": true, "nonce": vnonce})
    );
    assert_eq!(seal_status(&h).await["n"], 2);
}

#[actix_web::test]
async fn rotate_root_itself_still_rotates_the_root_key_and_needs_sudo_where_init_does_not() {
    let (h, keys, root) = shamir(3, 2).await;
    assert_eq!(
        h.call_as(&root, "PUT", "/v1/sys/rotate/root", None)
            .await
            .status,
        204
    );
    let policy = r#"path "sys/rotate/root/*" { capabilities = ["read", "update", "delete"] }
path "sys/rotate/root" { capabilities = ["update"] }"#;
    let t = h.token_with_policy_as(&root, "rk", policy).await;
    assert_eq!(h.call_as(&t, "GET", BAO_INIT, None).await.status, 200);
    assert_eq!(
        h.call_as(&t, "PUT", "/v1/sys/rotate/root", None)
            .await
            .status,
        403
    );
    // The shares still unseal after the root key rotation.
    let (sealed, _) = seal_then_unseal_with(&h, &root, &keys[..2]).await;
    assert!(!sealed);
}

#[actix_web::test]
async fn backups_never_exist_and_need_a_token() {
    let (h, _, root) = shamir(3, 2).await;
    for path in ["/v1/sys/rekey/backup", "/v1/sys/rotate/root/backup"] {
        let r = h.call_as(&root, "GET", path, None).await;
        assert_eq!(
            (r.status.as_u16(), r.json()),
            (400, json!({"errors": ["no backed-up keys found"]})),
            "{path}"
        );
        assert_eq!(
            h.call_as(&root, "DELETE", path, None).await.status,
            204,
            "{path}"
        );
        assert_eq!(anon(&h, "GET", path, None).await.0, 403, "{path}");
    }
}

#[actix_web::test]
async fn vaults_routes_spend_the_rate_budget() {
    use crate::kv2::request::{Op, VaultRequest};
    use crate::pipeline::Access;
    let (h, _, _) = shamir(3, 2).await;
    for (op, path) in [
        (Op::Read, "sys/rekey/init"),
        (Op::Update, "sys/rekey/init"),
        (Op::Delete, "sys/rekey/init"),
        (Op::Update, "sys/rekey/update"),
        (Op::Read, "sys/rekey/verify"),
        (Op::Update, "sys/rekey/verify"),
        (Op::Delete, "sys/rekey/verify"),
    ] {
        let req = VaultRequest {
            op,
            path: path.to_string(),
            query: Default::default(),
            body: Default::default(),
            token: None,
            wrap_ttl_ns: None,
        };
        let (kind, access) = super::routes::classify(&h.engine, &req);
        assert_eq!(kind, super::routes::Kind::Public, "{path}");
        assert!(matches!(access, Access::PublicRateLimited), "{op:?} {path}");
    }
}
