//! In-process tests of generate-root: Vault's unauthenticated `sys/generate-root/attempt|update`
//! (raw JSON) and OpenBao's authenticated `sys/generate-root-token/attempt|update` (in `data`).

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::crypto::Key32;
use crate::engine::clock::Clock;
use crate::engine::{Engine, SealMode};
use crate::storage::{Durability, Store};
use crate::testutil::{harness_shamir, Harness};

const ATTEMPT: &str = "/v1/sys/generate-root/attempt";
const UPDATE: &str = "/v1/sys/generate-root/update";

/// A Shamir server initialised with `shares`/`threshold` and unsealed: (harness, hex keys, root).
pub(super) async fn shamir(shares: usize, threshold: usize) -> (Harness, Vec<String>, String) {
    let h = harness_shamir();
    let init = h
        .call_with(
            "PUT",
            "/v1/sys/init",
            Some(&json!({"secret_shares": shares, "secret_threshold": threshold}).to_string()),
            &[],
        )
        .await;
    assert_eq!(init.status, 200, "{}", init.text);
    let init = init.json();
    let keys: Vec<String> = init["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let root = init["root_token"].as_str().unwrap().to_string();
    unseal(&h, &keys[..threshold]).await;
    (h, keys, root)
}

/// Gives `keys` to `sys/unseal`; asserts the server is unsealed after the last.
pub(super) async fn unseal(h: &Harness, keys: &[String]) {
    let mut last = Value::Null;
    for k in keys {
        let r = h
            .call_with(
                "PUT",
                "/v1/sys/unseal",
                Some(&json!({"key": k}).to_string()),
                &[],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        last = r.json();
    }
    assert_eq!(last["sealed"], false, "{last}");
}

/// A request without a token; returns (status, body as JSON or Null).
pub(super) async fn anon(
    h: &Harness,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let b = body.map(|b| b.to_string());
    let r = h.call_with(method, path, b.as_deref(), &[]).await;
    let v = if r.text.is_empty() {
        Value::Null
    } else {
        r.json()
    };
    (r.status.as_u16(), v)
}

/// Starts an attempt; returns (nonce, otp).
async fn start(h: &Harness) -> (String, String) {
    let (status, v) = anon(h, "PUT", ATTEMPT, Some(json!({}))).await;
    assert_eq!(status, 200, "{v}");
    (
        v["nonce"].as_str().unwrap().to_string(),
        v["otp"].as_str().unwrap().to_string(),
    )
}

/// What `vault operator generate-root -decode` does: base64 (no padding), XOR with the OTP.
fn decode(encoded: &str, otp: &str) -> String {
    let raw = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(encoded)
        .unwrap();
    assert_eq!(raw.len(), otp.len(), "the token has the OTP's length");
    raw.iter()
        .zip(otp.bytes())
        .map(|(a, b)| (a ^ b) as char)
        .collect()
}

/// Asserts `token` is a working root token: its entry says so, and it reads a secret.
async fn assert_root(h: &Harness, token: &str) {
    let me = h
        .call_as(token, "GET", "/v1/auth/token/lookup-self", None)
        .await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json()["data"]["policies"], json!(["root"]));
    assert_eq!(me.json()["data"]["path"], "auth/token/root");
    let w = h
        .call_as(
            token,
            "POST",
            "/v1/secret/data/by-new-root",
            Some(json!({"data": {"a": "1"}})),
        )
        .await;
    assert_eq!(w.status, 200, "{}", w.text);
    let g = h
        .call_as(token, "GET", "/v1/secret/data/by-new-root", None)
        .await;
    assert_eq!(g.json()["data"]["data"], json!({"a": "1"}));
}

fn idle(required: usize) -> Value {
    json!({
        "nonce": "", "started": false, "progress": 0, "required": required, "complete": false,
        "encoded_token": "", "encoded_root_token": "", "pgp_fingerprint": "", "otp": "",
        "otp_length": 36,
    })
}

#[actix_web::test]
async fn status_without_an_attempt_is_vaults_raw_json() {
    let (h, _, _) = shamir(5, 3).await;
    assert_eq!(anon(&h, "GET", ATTEMPT, None).await, (200, idle(3)));
}

#[actix_web::test]
async fn start_returns_a_nonce_and_an_otp_of_token_length_once() {
    let (h, _, _) = shamir(5, 3).await;
    let (status, v) = anon(&h, "POST", ATTEMPT, None).await;
    assert_eq!(status, 200, "{v}");
    let nonce = v["nonce"].as_str().unwrap();
    let otp = v["otp"].as_str().unwrap();
    assert_eq!(otp.len(), 36);
    assert!(otp.bytes().all(|b| b.is_ascii_alphanumeric()), "{otp}");
    assert!(uuid::Uuid::parse_str(nonce).is_ok(), "{nonce}");
    let mut want = idle(3);
    want["nonce"] = json!(nonce);
    want["started"] = json!(true);
    want["otp"] = json!(otp);
    assert_eq!(v, want);
    // The status never shows the OTP again.
    want["otp"] = json!("");
    assert_eq!(anon(&h, "GET", ATTEMPT, None).await, (200, want));
}

#[actix_web::test]
async fn start_takes_an_otp_of_kvseal_or_vault_token_length_only() {
    let (h, _, _) = shamir(3, 2).await;
    let cases = [
        ("o".repeat(36), 200, None),
        ("o".repeat(28), 200, None),
        ("o".repeat(26), 400, Some("OTP string has incorrect length")),
        ("o".repeat(37), 400, Some("OTP string has incorrect length")),
    ];
    for (otp, status, error) in cases {
        let (s, v) = anon(&h, "PUT", ATTEMPT, Some(json!({"otp": otp}))).await;
        assert_eq!(s, status, "otp of {}: {v}", otp.len());
        match error {
            Some(e) => assert_eq!(v, json!({"errors": [e]})),
            // A client's OTP is not echoed back.
            None => assert_eq!(v["otp"], "", "{v}"),
        }
        assert_eq!(
            anon(&h, "DELETE", ATTEMPT, None).await.0,
            204,
            "cancel after otp of {}",
            otp.len()
        );
    }
}

#[actix_web::test]
async fn pgp_key_is_refused_and_starts_nothing() {
    let (h, _, _) = shamir(3, 2).await;
    for body in [
        json!({"pgp_key": "mQENBF..."}),
        json!({"otp": "o".repeat(36), "pgp_key": "x"}),
    ] {
        let (s, v) = anon(&h, "PUT", ATTEMPT, Some(body.clone())).await;
        assert_eq!(s, 400, "{body}: {v}");
        assert!(
            v["errors"][0]
                .as_str()
                .unwrap()
                .starts_with("pgp_key is not supported"),
            "{v}"
        );
    }
    assert_eq!(anon(&h, "GET", ATTEMPT, None).await, (200, idle(2)));
}

#[actix_web::test]
async fn a_second_start_is_refused_while_an_attempt_is_in_progress() {
    let (h, _, _) = shamir(3, 2).await;
    let (nonce, _) = start(&h).await;
    assert_eq!(
        anon(&h, "PUT", ATTEMPT, Some(json!({}))).await,
        (
            400,
            json!({"errors": ["root generation already in progress for this namespace"]})
        )
    );
    assert_eq!(anon(&h, "GET", ATTEMPT, None).await.1["nonce"], nonce);
}

#[actix_web::test]
async fn updates_are_refused_as_vault_refuses_them() {
    let (h, keys, _) = shamir(3, 2).await;
    let no_attempt = anon(
        &h,
        "PUT",
        UPDATE,
        Some(json!({"key": keys[0], "nonce": "n"})),
    )
    .await;
    assert_eq!(
        no_attempt,
        (400, json!({"errors": ["no root generation in progress"]}))
    );
    let (nonce, _) = start(&h).await;
    let wrong_nonce = format!(
        "incorrect nonce supplied; nonce for this root generation operation is \"{nonce}\""
    );
    let cases: Vec<(Value, &str)> = vec![
        (json!({"key": keys[0], "nonce": "other"}), &wrong_nonce),
        (json!({"key": keys[0]}), &wrong_nonce),
        (
            json!({"nonce": nonce}),
            "'key' must be specified in request body as JSON",
        ),
        (
            json!({"key": "", "nonce": nonce}),
            "'key' must be specified in request body as JSON",
        ),
        (
            json!({"key": "zz!!", "nonce": nonce}),
            "'key' must be a valid hex or base64 string",
        ),
        (
            json!({"key": "abcd", "nonce": nonce}),
            "invalid key: key is shorter than minimum 16 bytes",
        ),
        (
            json!({"key": "ab".repeat(34), "nonce": nonce}),
            "invalid key: key is longer than maximum 33 bytes",
        ),
    ];
    for (body, error) in cases {
        let r = anon(&h, "PUT", UPDATE, Some(body.clone())).await;
        assert_eq!(r, (400, json!({"errors": [error]})), "{body}");
    }
    // Nothing of the above counted.
    assert_eq!(anon(&h, "GET", ATTEMPT, None).await.1["progress"], 0);
}

#[actix_web::test]
async fn a_share_given_twice_is_refused_in_hex_or_base64() {
    let (h, keys, _) = shamir(3, 2).await;
    let (nonce, _) = start(&h).await;
    let (s, v) = anon(
        &h,
        "PUT",
        UPDATE,
        Some(json!({"key": keys[0], "nonce": nonce})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let b64 = base64::engine::general_purpose::STANDARD
        .encode(crate::crypto::decode_key_text(&keys[0]).unwrap().as_slice());
    for again in [keys[0].clone(), b64] {
        assert_eq!(
            anon(
                &h,
                "PUT",
                UPDATE,
                Some(json!({"key": again, "nonce": nonce}))
            )
            .await,
            (
                400,
                json!({"errors": ["given key has already been provided during this generation operation"]})
            )
        );
    }
    assert_eq!(anon(&h, "GET", ATTEMPT, None).await.1["progress"], 1);
}

#[actix_web::test]
async fn the_threshold_share_returns_a_working_root_token_encoded_with_the_otp() {
    let (h, keys, _) = shamir(5, 3).await;
    let (nonce, otp) = start(&h).await;
    for (i, k) in keys[2..4].iter().enumerate() {
        let (s, v) = anon(&h, "PUT", UPDATE, Some(json!({"key": k, "nonce": nonce}))).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(
            v,
            json!({
                "nonce": nonce, "started": true, "progress": i + 1, "required": 3,
                "complete": false, "encoded_token": "", "encoded_root_token": "",
                "pgp_fingerprint": "", "otp": "", "otp_length": 0,
            })
        );
    }
    let (s, v) = anon(
        &h,
        "PUT",
        UPDATE,
        Some(json!({"key": keys[0], "nonce": nonce})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let encoded = v["encoded_token"].as_str().unwrap().to_string();
    assert_eq!(v["encoded_root_token"], encoded.as_str());
    assert!(!encoded.contains('='), "unpadded: {encoded}");
    assert_eq!(
        (
            v["complete"].clone(),
            v["progress"].clone(),
            v["required"].clone()
        ),
        (json!(true), json!(3), json!(3))
    );
    let token = decode(&encoded, &otp);
    assert!(token.starts_with("kvs.") && token.len() == 36, "{token}");
    assert_root(&h, &token).await;
    // The attempt is over.
    assert_eq!(anon(&h, "GET", ATTEMPT, None).await, (200, idle(3)));
}

#[actix_web::test]
async fn a_vault_length_otp_gives_a_root_token_of_that_length() {
    // hvac's integration test sends this fixed OTP, made for Vault's 28-character tokens.
    let otp = "BMjzW3wAsEzINXCM05Wbas3u9zSl";
    let (h, keys, _) = shamir(3, 2).await;
    let (s, v) = anon(&h, "PUT", ATTEMPT, Some(json!({"otp": otp}))).await;
    assert_eq!(s, 200, "{v}");
    let nonce = v["nonce"].as_str().unwrap().to_string();
    let mut last = Value::Null;
    for k in &keys[..2] {
        last = anon(&h, "PUT", UPDATE, Some(json!({"key": k, "nonce": nonce})))
            .await
            .1;
    }
    let token = decode(last["encoded_root_token"].as_str().unwrap(), otp);
    assert_eq!(token.len(), 28, "{token}");
    assert_root(&h, &token).await;
}

#[actix_web::test]
async fn wrong_shares_at_the_threshold_are_refused_and_forgotten_and_the_attempt_goes_on() {
    let (h, keys, _) = shamir(3, 2).await;
    let (_, other_keys, _) = shamir(3, 2).await;
    let (nonce, otp) = start(&h).await;
    let r = anon(
        &h,
        "PUT",
        UPDATE,
        Some(json!({"key": keys[0], "nonce": nonce})),
    )
    .await;
    assert_eq!(r.0, 200, "{}", r.1);
    let r = anon(
        &h,
        "PUT",
        UPDATE,
        Some(json!({"key": other_keys[1], "nonce": nonce})),
    )
    .await;
    assert_eq!(
        r,
        (
            400,
            json!({"errors": ["root generation aborted: the unseal keys given do not open the stored root key"]})
        )
    );
    let st = anon(&h, "GET", ATTEMPT, None).await.1;
    assert_eq!(
        (
            st["started"].clone(),
            st["nonce"].clone(),
            st["progress"].clone()
        ),
        (json!(true), json!(nonce), json!(0))
    );
    // The same attempt completes with the right shares.
    let mut last = Value::Null;
    for k in &keys[1..3] {
        last = anon(&h, "PUT", UPDATE, Some(json!({"key": k, "nonce": nonce})))
            .await
            .1;
    }
    assert_eq!(last["complete"], true, "{last}");
    assert_root(&h, &decode(last["encoded_token"].as_str().unwrap(), &otp)).await;
}

#[actix_web::test]
async fn cancel_forgets_the_attempt() {
    let (h, keys, _) = shamir(3, 2).await;
    let (nonce, _) = start(&h).await;
    let r = anon(
        &h,
        "PUT",
        UPDATE,
        Some(json!({"key": keys[0], "nonce": nonce})),
    )
    .await;
    assert_eq!(r.0, 200, "{}", r.1);
    assert_eq!(anon(&h, "DELETE", ATTEMPT, None).await, (204, Value::Null));
    assert_eq!(anon(&h, "GET", ATTEMPT, None).await, (200, idle(2)));
    assert_eq!(
        anon(
            &h,
            "PUT",
            UPDATE,
            Some(json!({"key": keys[1], "nonce": nonce}))
        )
        .await,
        (400, json!({"errors": ["no root generation in progress"]}))
    );
    // Cancelling nothing is fine.
    assert_eq!(anon(&h, "DELETE", ATTEMPT, None).await.0, 204);
}

#[actix_web::test]
async fn other_methods_are_405() {
    let (h, _, _) = shamir(3, 2).await;
    for (method, path) in [("GET", UPDATE), ("DELETE", UPDATE)] {
        assert_eq!(anon(&h, method, path, None).await.0, 405, "{method} {path}");
    }
}

#[actix_web::test]
async fn sealed_is_503_and_uninitialised_is_400() {
    let h = harness_shamir();
    assert_eq!(
        anon(&h, "GET", ATTEMPT, None).await,
        (400, json!({"errors": ["server is not yet initialized"]}))
    );
    let (h, _, root) = shamir(3, 2).await;
    assert_eq!(
        h.call_as(&root, "PUT", "/v1/sys/seal", None).await.status,
        204
    );
    for (method, path, body) in [
        ("GET", ATTEMPT, None),
        ("PUT", ATTEMPT, Some(json!({}))),
        ("DELETE", ATTEMPT, None),
        (
            "PUT",
            UPDATE,
            Some(json!({"key": "ab".repeat(33), "nonce": "n"})),
        ),
    ] {
        assert_eq!(
            anon(&h, method, path, body).await,
            (503, json!({"errors": ["Vault is sealed"]})),
            "{method} {path}"
        );
    }
}

/// A server with the file seal, and its seal key.
async fn file_sealed() -> (Harness, Key32) {
    let dir = std::env::temp_dir().join(format!("kvseal-test-{}", uuid::Uuid::new_v4()));
    let store = Store::open(&dir, Durability::Normal).unwrap();
    let key = Key32::random();
    let engine =
        Arc::new(Engine::open(store, SealMode::File(key.clone()), Clock::default()).unwrap());
    engine.init(Some("root".into()), 1, 1).await.unwrap();
    let h = Harness {
        engine,
        dir,
        max: 1024 * 1024,
        timeout: None,
    };
    (h, key)
}

#[actix_web::test]
async fn with_the_file_seal_the_seal_key_is_the_one_share() {
    let (h, key) = file_sealed().await;
    assert_eq!(anon(&h, "GET", ATTEMPT, None).await, (200, idle(1)));
    let (nonce, otp) = start(&h).await;
    // Another 32-byte key: refused, and the attempt goes on.
    let other = base64::engine::general_purpose::STANDARD.encode(Key32::random().as_bytes());
    assert_eq!(
        anon(
            &h,
            "PUT",
            UPDATE,
            Some(json!({"key": other, "nonce": nonce}))
        )
        .await,
        (
            400,
            json!({"errors": ["root generation aborted: the unseal keys given do not open the stored root key"]})
        )
    );
    // The key file's content: the seal key in base64.
    let share = base64::engine::general_purpose::STANDARD.encode(key.as_bytes());
    let (s, v) = anon(
        &h,
        "PUT",
        UPDATE,
        Some(json!({"key": share, "nonce": nonce})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["complete"].clone(), v["required"].clone()),
        (json!(true), json!(1))
    );
    assert_root(&h, &decode(v["encoded_token"].as_str().unwrap(), &otp)).await;
}

const BAO_ATTEMPT: &str = "/v1/sys/generate-root-token/attempt";
const BAO_UPDATE: &str = "/v1/sys/generate-root-token/update";

#[actix_web::test]
async fn openbao_routes_need_a_token() {
    let (h, _, _) = shamir(3, 2).await;
    for (method, path) in [
        ("GET", BAO_ATTEMPT),
        ("PUT", BAO_ATTEMPT),
        ("DELETE", BAO_ATTEMPT),
        ("PUT", BAO_UPDATE),
    ] {
        assert_eq!(
            anon(&h, method, path, Some(json!({}))).await,
            (403, json!({"errors": ["permission denied"]})),
            "{method} {path}"
        );
    }
}

#[actix_web::test]
async fn openbao_routes_answer_in_data_and_drive_the_same_attempt() {
    let (h, keys, root) = shamir(3, 2).await;
    let data = |r: crate::testutil::Resp| {
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()["data"].clone()
    };
    assert_eq!(
        data(h.call_as(&root, "GET", BAO_ATTEMPT, None).await),
        json!({"started": false, "complete": false, "progress": 0, "required": 2, "otp": "", "otp_length": 36})
    );
    // What `bao operator generate-root -init` sends.
    let started = data(
        h.call_as(
            &root,
            "PUT",
            BAO_ATTEMPT,
            Some(json!({"otp": "", "pgp_key": ""})),
        )
        .await,
    );
    let nonce = started["nonce"].as_str().unwrap().to_string();
    let otp = started["otp"].as_str().unwrap().to_string();
    assert_eq!(
        started,
        json!({"started": true, "complete": false, "progress": 0, "required": 2, "otp": otp,
               "otp_length": 36, "nonce": nonce, "pgp_fingerprint": ""})
    );
    // Vault's route sees the same attempt.
    assert_eq!(
        anon(&h, "GET", ATTEMPT, None).await.1["nonce"],
        nonce.as_str()
    );
    let r = h
        .call_as(&root, "PUT", BAO_UPDATE, Some(json!({"key": keys[0]})))
        .await;
    assert_eq!(
        (r.status.as_u16(), r.json()),
        (400, json!({"errors": ["missing required field 'nonce'"]}))
    );
    let r = h
        .call_as(&root, "PUT", BAO_UPDATE, Some(json!({"nonce": nonce})))
        .await;
    assert_eq!(
        (r.status.as_u16(), r.json()),
        (400, json!({"errors": ["missing required field 'key'"]}))
    );
    let one = data(
        h.call_as(
            &root,
            "PUT",
            BAO_UPDATE,
            Some(json!({"key": keys[2], "nonce": nonce})),
        )
        .await,
    );
    assert_eq!(
        one,
        json!({"started": true, "complete": false, "progress": 1, "required": 2, "nonce": nonce,
               "encoded_token": "", "pgp_fingerprint": ""})
    );
    let done = data(
        h.call_as(
            &root,
            "PUT",
            BAO_UPDATE,
            Some(json!({"key": keys[1], "nonce": nonce})),
        )
        .await,
    );
    assert_eq!(
        (done["complete"].clone(), done["progress"].clone()),
        (json!(true), json!(2))
    );
    assert_root(&h, &decode(done["encoded_token"].as_str().unwrap(), &otp)).await;
    // DELETE answers 204 (nothing left to cancel).
    assert_eq!(
        h.call_as(&root, "DELETE", BAO_ATTEMPT, None).await.status,
        204
    );
}

#[actix_web::test]
async fn openbao_routes_follow_the_acl_without_sudo() {
    let (h, _, root) = shamir(3, 2).await;
    let policy =
        r#"path "sys/generate-root-token/*" { capabilities = ["read", "update", "delete"] }"#;
    let t = h.token_with_policy_as(&root, "gr", policy).await;
    let plain = h.token_as(&root, &["default"]).await;
    assert_eq!(h.call_as(&t, "GET", BAO_ATTEMPT, None).await.status, 200);
    assert_eq!(
        h.call_as(&t, "PUT", BAO_ATTEMPT, Some(json!({})))
            .await
            .status,
        200
    );
    assert_eq!(h.call_as(&t, "DELETE", BAO_ATTEMPT, None).await.status, 204);
    assert_eq!(
        h.call_as(&plain, "GET", BAO_ATTEMPT, None).await.status,
        403
    );
}

#[actix_web::test]
async fn vaults_routes_spend_the_rate_budget_and_openbaos_are_checked_by_the_acl() {
    use crate::kv2::request::{Op, VaultRequest};
    use crate::pipeline::Access;
    let (h, _, _) = shamir(3, 2).await;
    let classify = |op: Op, path: &str| {
        let req = VaultRequest {
            op,
            path: path.to_string(),
            query: Default::default(),
            body: Default::default(),
            token: None,
            wrap_ttl_ns: None,
        };
        super::routes::classify(&h.engine, &req)
    };
    for (op, path) in [
        (Op::Read, "sys/generate-root/attempt"),
        (Op::Update, "sys/generate-root/attempt"),
        (Op::Delete, "sys/generate-root/attempt"),
        (Op::Update, "sys/generate-root/update"),
    ] {
        let (kind, access) = classify(op, path);
        assert_eq!(kind, super::routes::Kind::Public, "{path}");
        assert!(matches!(access, Access::PublicRateLimited), "{op:?} {path}");
    }
    let (kind, access) = classify(Op::Read, "sys/generate-root-token/attempt");
    assert_eq!(kind, super::routes::Kind::Authenticated);
    assert!(matches!(access, Access::Checks(_)));
}
