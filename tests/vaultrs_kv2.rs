//! vaultrs (the Rust Vault client) driving the real kvseal binary.
//!
//! Each test spawns its own `kvseal server --dev` (or uses the reference
//! server named by `KVSEAL_TEST_ADDR`, with unique paths/mounts so the tests
//! can share it).

mod common;

use std::collections::HashMap;

use common::{uid, vault_client, vaultrs_err_code, Server};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use vaultrs::api::kv2::requests::{
    SetConfigurationRequest, SetSecretMetadataRequest, SetSecretRequestOptions,
};
use vaultrs::api::sys::requests::EnableEngineRequest;
use vaultrs::client::VaultClient;
use vaultrs::error::ClientError;
use vaultrs::{kv2, sys::mount};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
struct TestSecret {
    key: String,
    password: String,
}

fn secret(key: &str, password: &str) -> TestSecret {
    TestSecret {
        key: key.to_string(),
        password: password.to_string(),
    }
}

/// Raw async HTTP call (for checks vaultrs cannot express, e.g. the body of
/// a 404 for a soft-deleted version).
async fn raw(server: &Server, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut rb = client
        .request(m, format!("{}/v1/{}", server.addr, path))
        .header("X-Vault-Token", &server.token);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let resp = rb.send().await.expect("raw request");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Enables a fresh kv-v2 mount named `<prefix>-<uid>` and returns its path.
async fn fresh_kv2_mount(client: &VaultClient, prefix: &str) -> String {
    let path = format!("{prefix}-{}", uid());
    mount::enable(
        client,
        &path,
        "kv",
        Some(
            EnableEngineRequest::builder()
                .description("kvseal test mount")
                .options(HashMap::from([("version".to_string(), "2".to_string())])),
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("enable kv v2 mount {path}: {e:?}"));
    path
}

fn assert_code(res: Result<impl std::fmt::Debug, ClientError>, code: u16, what: &str) {
    match res {
        Ok(v) => panic!("{what}: expected HTTP {code}, got success {v:?}"),
        Err(e) => assert_eq!(
            vaultrs_err_code(&e),
            Some(code),
            "{what}: expected HTTP {code}, got {e:?}"
        ),
    }
}

fn assert_api_error(
    res: Result<impl std::fmt::Debug, ClientError>,
    code: u16,
    msg: &str,
    what: &str,
) {
    match res {
        Ok(v) => panic!("{what}: expected APIError {code}, got success {v:?}"),
        Err(ClientError::APIError { code: c, errors }) => {
            assert_eq!(c, code, "{what}: status (errors {errors:?})");
            assert!(
                errors.iter().any(|e| e.contains(msg)),
                "{what}: expected an error containing {msg:?}, got {errors:?}"
            );
        }
        Err(e) => panic!("{what}: expected APIError {code} {msg:?}, got {e:?}"),
    }
}

fn assert_rfc3339_utc(ts: &str, what: &str) {
    // e.g. 2018-03-22T02:24:06.945319214Z (fraction optional, always Z)
    assert!(ts.len() >= 20, "{what}: timestamp too short: {ts:?}");
    assert!(
        ts.ends_with('Z'),
        "{what}: timestamp must end with Z: {ts:?}"
    );
    let b = ts.as_bytes();
    assert!(
        b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':' && b[16] == b':',
        "{what}: not RFC3339: {ts:?}"
    );
    if ts.len() > 20 {
        assert_eq!(b[19], b'.', "{what}: not RFC3339: {ts:?}");
        let frac = &ts[20..ts.len() - 1];
        assert!(
            !frac.is_empty() && frac.len() <= 9 && frac.bytes().all(|c| c.is_ascii_digit()),
            "{what}: bad fraction in {ts:?}"
        );
        assert!(
            !frac.ends_with('0'),
            "{what}: Go RFC3339Nano trims trailing zeros: {ts:?}"
        );
    }
}

#[tokio::test]
async fn set_read_versions_and_metadata() {
    let server = Server::dev_or_external();
    let client = vault_client(&server);
    let p = format!("vrs-{}/app/db", uid());

    let m1 = kv2::set(&client, "secret", &p, &secret("k1", "p1"))
        .await
        .expect("set v1");
    assert_eq!(m1.version, 1);
    assert!(!m1.destroyed);
    assert_eq!(m1.deletion_time, "");
    assert_rfc3339_utc(&m1.created_time, "v1 created_time");
    assert!(
        m1.custom_metadata.is_none(),
        "custom_metadata should be null, got {:?}",
        m1.custom_metadata
    );

    let m2 = kv2::set(&client, "secret", &p, &secret("k2", "p2"))
        .await
        .expect("set v2");
    assert_eq!(m2.version, 2);
    assert_eq!(m2.deletion_time, "");

    let latest: TestSecret = kv2::read(&client, "secret", &p).await.expect("read");
    assert_eq!(latest, secret("k2", "p2"));
    let v1: TestSecret = kv2::read_version(&client, "secret", &p, 1)
        .await
        .expect("read v1");
    assert_eq!(v1, secret("k1", "p1"));
    let v2: TestSecret = kv2::read_version(&client, "secret", &p, 2)
        .await
        .expect("read v2");
    assert_eq!(v2, secret("k2", "p2"));

    // Version beyond current and a missing key: 404 {"errors":[]}
    assert_code(
        kv2::read_version::<Value>(&client, "secret", &p, 3).await,
        404,
        "read_version 3 of 2",
    );
    assert_code(
        kv2::read::<Value>(&client, "secret", &format!("{p}-missing")).await,
        404,
        "read missing key",
    );
    assert_code(
        kv2::read_metadata(&client, "secret", &format!("{p}-missing")).await,
        404,
        "read_metadata missing key",
    );

    let md = kv2::read_metadata(&client, "secret", &p)
        .await
        .expect("read_metadata");
    assert_eq!(md.current_version, 2);
    assert_eq!(md.oldest_version, 0);
    assert_eq!(md.max_versions, 0);
    assert!(!md.cas_required);
    assert_eq!(md.delete_version_after, "0s");
    assert!(md.custom_metadata.is_none(), "{:?}", md.custom_metadata);
    let mut keys: Vec<&String> = md.versions.keys().collect();
    keys.sort();
    assert_eq!(keys, ["1", "2"]);
    for (k, v) in &md.versions {
        assert_eq!(v.deletion_time, "", "version {k}");
        assert!(!v.destroyed, "version {k}");
        assert_rfc3339_utc(&v.created_time, "versions[].created_time");
    }
    assert_eq!(md.versions["1"].created_time, m1.created_time);
    assert_eq!(md.versions["2"].created_time, m2.created_time);
    assert_eq!(md.created_time, m1.created_time, "key created_time = v1");
    assert_eq!(md.updated_time, m2.created_time, "updated_time = v2");

    // Raw envelope shape checks that vaultrs relies on.
    let (st, body) = raw(&server, "GET", &format!("secret/data/{p}?version=1"), None).await;
    assert_eq!(st, 200, "{body}");
    assert!(body["request_id"].is_string(), "{body}");
    assert_eq!(body["lease_id"], json!(""), "{body}");
    assert_eq!(body["lease_duration"], json!(0), "{body}");
    assert_eq!(body["renewable"], json!(false), "{body}");
    assert_eq!(body["data"]["data"], json!({"key":"k1","password":"p1"}));
    assert_eq!(body["data"]["metadata"]["version"], json!(1));
    assert_eq!(body["data"]["metadata"]["custom_metadata"], Value::Null);
}

#[tokio::test]
async fn check_and_set() {
    let server = Server::dev_or_external();
    let client = vault_client(&server);
    let p = format!("vrs-cas-{}", uid());

    let m = kv2::set_with_options(
        &client,
        "secret",
        &p,
        &secret("a", "1"),
        SetSecretRequestOptions { cas: 0 },
    )
    .await
    .expect("cas 0 on a new key creates it");
    assert_eq!(m.version, 1);

    assert_api_error(
        kv2::set_with_options(
            &client,
            "secret",
            &p,
            &secret("b", "2"),
            SetSecretRequestOptions { cas: 0 },
        )
        .await,
        400,
        "check-and-set parameter did not match the current version",
        "cas 0 on an existing key",
    );
    assert_api_error(
        kv2::set_with_options(
            &client,
            "secret",
            &p,
            &secret("b", "2"),
            SetSecretRequestOptions { cas: 7 },
        )
        .await,
        400,
        "check-and-set parameter did not match the current version",
        "cas 7 with current 1",
    );
    let m = kv2::set_with_options(
        &client,
        "secret",
        &p,
        &secret("c", "3"),
        SetSecretRequestOptions { cas: 1 },
    )
    .await
    .expect("cas 1 with current 1");
    assert_eq!(m.version, 2);
    let cur: TestSecret = kv2::read(&client, "secret", &p).await.expect("read");
    assert_eq!(
        cur,
        secret("c", "3"),
        "failed CAS writes must not be stored"
    );
    let md = kv2::read_metadata(&client, "secret", &p).await.expect("md");
    assert_eq!(md.current_version, 2);
    assert_eq!(md.versions.len(), 2);

    // cas_required on the key's metadata
    kv2::set_metadata(
        &client,
        "secret",
        &p,
        Some(SetSecretMetadataRequest::builder().cas_required(true)),
    )
    .await
    .expect("set_metadata cas_required");
    assert_api_error(
        kv2::set(&client, "secret", &p, &secret("d", "4")).await,
        400,
        "check-and-set parameter required for this call",
        "write without cas on a cas_required key",
    );
    let m = kv2::set_with_options(
        &client,
        "secret",
        &p,
        &secret("d", "4"),
        SetSecretRequestOptions { cas: 2 },
    )
    .await
    .expect("cas 2 on cas_required key");
    assert_eq!(m.version, 3);

    // cas_required on the mount config
    let mnt = fresh_kv2_mount(&client, "casreq").await;
    kv2::config::set(
        &client,
        &mnt,
        Some(SetConfigurationRequest::builder().cas_required(true)),
    )
    .await
    .expect("config cas_required");
    assert_api_error(
        kv2::set(&client, &mnt, "x", &secret("x", "x")).await,
        400,
        "check-and-set parameter required for this call",
        "write without cas on a cas_required mount",
    );
    let m = kv2::set_with_options(
        &client,
        &mnt,
        "x",
        &secret("x", "x"),
        SetSecretRequestOptions { cas: 0 },
    )
    .await
    .expect("cas 0 on cas_required mount");
    assert_eq!(m.version, 1);
    mount::disable(&client, &mnt).await.expect("disable");
}

#[tokio::test]
async fn metadata_custom_and_max_versions() {
    let server = Server::dev_or_external();
    let client = vault_client(&server);
    let p = format!("vrs-md-{}", uid());

    // Metadata can be created before any version exists.
    kv2::set_metadata(
        &client,
        "secret",
        &p,
        Some(
            SetSecretMetadataRequest::builder()
                .max_versions(2u64)
                .delete_version_after("1h")
                .custom_metadata(HashMap::from([
                    ("key1".to_string(), "foo".to_string()),
                    ("key2".to_string(), "bar".to_string()),
                ])),
        ),
    )
    .await
    .expect("set_metadata on a new key");
    let md = kv2::read_metadata(&client, "secret", &p)
        .await
        .expect("read_metadata (no versions yet)");
    assert_eq!(md.current_version, 0);
    assert_eq!(md.oldest_version, 0);
    assert!(md.versions.is_empty(), "{:?}", md.versions);
    assert_eq!(md.max_versions, 2);
    assert_eq!(md.delete_version_after, "1h0m0s");
    let expected_cm = HashMap::from([
        ("key1".to_string(), "foo".to_string()),
        ("key2".to_string(), "bar".to_string()),
    ]);
    assert_eq!(md.custom_metadata.as_ref(), Some(&expected_cm));

    // Writes carry the key's custom_metadata and a (future) deletion_time.
    let mut last = None;
    for i in 1..=4u64 {
        let m = kv2::set(&client, "secret", &p, &secret(&format!("k{i}"), "pw"))
            .await
            .expect("set");
        assert_eq!(m.version, i);
        assert_eq!(m.custom_metadata.as_ref(), Some(&expected_cm));
        assert_ne!(
            m.deletion_time, "",
            "delete_version_after=1h must set a deletion_time on v{i}"
        );
        assert_rfc3339_utc(&m.deletion_time, "deletion_time");
        assert!(
            m.deletion_time > m.created_time,
            "deletion_time {} should be after created_time {}",
            m.deletion_time,
            m.created_time
        );
        last = Some(m);
    }
    // Future deletion_time: still readable.
    let cur: TestSecret = kv2::read(&client, "secret", &p).await.expect("read");
    assert_eq!(cur.key, "k4");

    // max_versions 2: after 4 writes only versions 3 and 4 remain.
    let md = kv2::read_metadata(&client, "secret", &p).await.expect("md");
    assert_eq!(md.current_version, 4);
    assert_eq!(md.oldest_version, 3);
    let mut keys: Vec<&String> = md.versions.keys().collect();
    keys.sort();
    assert_eq!(keys, ["3", "4"]);
    assert_eq!(
        md.versions["4"].created_time,
        last.as_ref()
            .map(|m| m.created_time.clone())
            .unwrap_or_default()
    );
    assert_code(
        kv2::read_version::<Value>(&client, "secret", &p, 1).await,
        404,
        "read pruned version 1",
    );
    let v3: TestSecret = kv2::read_version(&client, "secret", &p, 3)
        .await
        .expect("read v3");
    assert_eq!(v3.key, "k3");

    // custom_metadata is replaced wholesale; delete_version_after "0s" clears.
    kv2::set_metadata(
        &client,
        "secret",
        &p,
        Some(
            SetSecretMetadataRequest::builder()
                .delete_version_after("0s")
                .custom_metadata(HashMap::from([("only".to_string(), "one".to_string())])),
        ),
    )
    .await
    .expect("set_metadata replace");
    let md = kv2::read_metadata(&client, "secret", &p).await.expect("md");
    assert_eq!(
        md.custom_metadata,
        Some(HashMap::from([("only".to_string(), "one".to_string())]))
    );
    assert_eq!(md.delete_version_after, "0s");
    assert_eq!(md.max_versions, 2, "fields not sent must be kept");
    let m = kv2::set(&client, "secret", &p, &secret("k5", "pw"))
        .await
        .expect("set v5");
    assert_eq!(m.version, 5);
    assert_eq!(m.deletion_time, "");
}

#[tokio::test]
async fn delete_undelete_destroy() {
    let server = Server::dev_or_external();
    let client = vault_client(&server);
    let p = format!("vrs-del-{}", uid());
    for i in 1..=3 {
        kv2::set(&client, "secret", &p, &secret(&format!("k{i}"), "pw"))
            .await
            .expect("set");
    }

    // delete_latest soft-deletes v3 only.
    kv2::delete_latest(&client, "secret", &p)
        .await
        .expect("delete_latest");
    let md = kv2::read_metadata(&client, "secret", &p).await.expect("md");
    assert_eq!(md.current_version, 3);
    assert_ne!(md.versions["3"].deletion_time, "", "v3 soft-deleted");
    assert_rfc3339_utc(&md.versions["3"].deletion_time, "v3 deletion_time");
    assert!(!md.versions["3"].destroyed);
    assert_eq!(md.versions["2"].deletion_time, "");
    assert_eq!(md.versions["1"].deletion_time, "");
    assert_code(
        kv2::read::<Value>(&client, "secret", &p).await,
        404,
        "read soft-deleted latest",
    );
    // The 404 for a deleted version is a full envelope, data.data null, no errors.
    let (st, body) = raw(&server, "GET", &format!("secret/data/{p}"), None).await;
    assert_eq!(st, 404, "{body}");
    assert!(body.get("errors").is_none(), "no errors key: {body}");
    assert_eq!(body["data"]["data"], Value::Null, "{body}");
    assert_eq!(body["data"]["metadata"]["version"], json!(3), "{body}");
    assert_eq!(
        body["data"]["metadata"]["destroyed"],
        json!(false),
        "{body}"
    );
    assert_eq!(
        body["data"]["metadata"]["deletion_time"],
        json!(md.versions["3"].deletion_time),
        "{body}"
    );
    let v2: TestSecret = kv2::read_version(&client, "secret", &p, 2)
        .await
        .expect("v2 still readable");
    assert_eq!(v2.key, "k2");

    // delete_versions [1,2]
    kv2::delete_versions(&client, "secret", &p, vec![1, 2])
        .await
        .expect("delete_versions");
    let md = kv2::read_metadata(&client, "secret", &p).await.expect("md");
    for v in ["1", "2", "3"] {
        assert_ne!(md.versions[v].deletion_time, "", "v{v} deleted");
        assert!(!md.versions[v].destroyed, "v{v} not destroyed");
    }
    assert_code(
        kv2::read_version::<Value>(&client, "secret", &p, 1).await,
        404,
        "read deleted v1",
    );

    // undelete [1,3]
    kv2::undelete_versions(&client, "secret", &p, vec![1, 3])
        .await
        .expect("undelete_versions");
    let md = kv2::read_metadata(&client, "secret", &p).await.expect("md");
    assert_eq!(md.versions["1"].deletion_time, "");
    assert_ne!(md.versions["2"].deletion_time, "");
    assert_eq!(md.versions["3"].deletion_time, "");
    let cur: TestSecret = kv2::read(&client, "secret", &p).await.expect("read");
    assert_eq!(cur.key, "k3");
    let v1: TestSecret = kv2::read_version(&client, "secret", &p, 1)
        .await
        .expect("v1");
    assert_eq!(v1.key, "k1");

    // destroy [2] (a deleted version) and [1]
    kv2::destroy_versions(&client, "secret", &p, vec![1, 2])
        .await
        .expect("destroy_versions");
    let md = kv2::read_metadata(&client, "secret", &p).await.expect("md");
    assert!(md.versions["1"].destroyed);
    assert!(md.versions["2"].destroyed);
    assert!(!md.versions["3"].destroyed);
    assert_eq!(md.versions.len(), 3, "destroyed versions stay listed");
    assert_eq!(
        md.versions["1"].deletion_time, "",
        "destroy leaves it as is"
    );
    assert_code(
        kv2::read_version::<Value>(&client, "secret", &p, 1).await,
        404,
        "read destroyed v1",
    );
    let (st, body) = raw(&server, "GET", &format!("secret/data/{p}?version=1"), None).await;
    assert_eq!(st, 404, "{body}");
    assert!(body.get("errors").is_none(), "no errors key: {body}");
    assert_eq!(body["data"]["data"], Value::Null, "{body}");
    assert_eq!(body["data"]["metadata"]["destroyed"], json!(true), "{body}");
    assert_eq!(body["data"]["metadata"]["version"], json!(1), "{body}");
    // undelete of a destroyed version does nothing.
    kv2::undelete_versions(&client, "secret", &p, vec![1])
        .await
        .expect("undelete destroyed");
    assert_code(
        kv2::read_version::<Value>(&client, "secret", &p, 1).await,
        404,
        "destroyed stays unreadable",
    );
    let cur: TestSecret = kv2::read(&client, "secret", &p).await.expect("read");
    assert_eq!(cur.key, "k3");

    // delete_metadata removes everything.
    let dir = format!("vrs-delmd-{}", uid());
    kv2::set(&client, "secret", &format!("{dir}/keep"), &secret("a", "b"))
        .await
        .expect("set keep");
    kv2::set(&client, "secret", &format!("{dir}/gone"), &secret("a", "b"))
        .await
        .expect("set gone");
    kv2::delete_metadata(&client, "secret", &format!("{dir}/gone"))
        .await
        .expect("delete_metadata");
    assert_code(
        kv2::read_metadata(&client, "secret", &format!("{dir}/gone")).await,
        404,
        "metadata after delete_metadata",
    );
    assert_code(
        kv2::read::<Value>(&client, "secret", &format!("{dir}/gone")).await,
        404,
        "data after delete_metadata",
    );
    assert_eq!(
        kv2::list(&client, "secret", &dir).await.expect("list"),
        ["keep"]
    );
    // Deleting a missing key (data or metadata) is a 204 no-op.
    kv2::delete_latest(&client, "secret", &format!("{dir}/never"))
        .await
        .expect("delete_latest on missing key");
    kv2::delete_metadata(&client, "secret", &format!("{dir}/never"))
        .await
        .expect("delete_metadata on missing key");
    // Writing after delete_metadata starts again at version 1.
    let m = kv2::set(&client, "secret", &format!("{dir}/gone"), &secret("n", "n"))
        .await
        .expect("recreate");
    assert_eq!(m.version, 1);
}

#[tokio::test]
async fn list_keys_and_folders() {
    let server = Server::dev_or_external();
    let client = vault_client(&server);
    let dir = format!("vrs-list-{}", uid());
    for k in ["b", "a", "sub/c", "sub/deeper/d", "b/x"] {
        kv2::set(&client, "secret", &format!("{dir}/{k}"), &secret(k, "pw"))
            .await
            .expect("set");
    }
    let want = ["a", "b", "b/", "sub/"];
    assert_eq!(
        kv2::list(&client, "secret", &format!("{dir}/"))
            .await
            .expect("list dir/"),
        want
    );
    assert_eq!(
        kv2::list(&client, "secret", &dir)
            .await
            .expect("list dir (no slash)"),
        want
    );
    assert_eq!(
        kv2::list(&client, "secret", &format!("{dir}/sub/"))
            .await
            .expect("list sub/"),
        ["c", "deeper/"]
    );
    let root = kv2::list(&client, "secret", "").await.expect("list root");
    assert!(
        root.contains(&format!("{dir}/")),
        "{dir}/ missing from root listing {root:?}"
    );
    assert_code(
        kv2::list(&client, "secret", &format!("{dir}/nope/")).await,
        404,
        "list of a nonexistent folder",
    );
    // GET ?list=true is equivalent, and data is exactly {"keys":[...]}.
    let (st, body) = raw(
        &server,
        "GET",
        &format!("secret/metadata/{dir}?list=true"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"], json!({"keys": want}));
}

#[tokio::test]
async fn config_set_read() {
    let server = Server::dev_or_external();
    let client = vault_client(&server);
    let mnt = fresh_kv2_mount(&client, "cfg").await;

    let c = kv2::config::read(&client, &mnt).await.expect("config read");
    assert_eq!(c.max_versions, 0, "unset max_versions reads 0");
    assert!(!c.cas_required);
    assert_eq!(c.delete_version_after, "0s");

    kv2::config::set(
        &client,
        &mnt,
        Some(
            SetConfigurationRequest::builder()
                .max_versions(100u64)
                .delete_version_after("768h"),
        ),
    )
    .await
    .expect("config set");
    let c = kv2::config::read(&client, &mnt).await.expect("config read");
    assert_eq!(c.max_versions, 100);
    assert!(!c.cas_required);
    assert_eq!(c.delete_version_after, "768h0m0s");

    // Only fields that are sent change.
    kv2::config::set(
        &client,
        &mnt,
        Some(SetConfigurationRequest::builder().cas_required(true)),
    )
    .await
    .expect("config set cas_required");
    let c = kv2::config::read(&client, &mnt).await.expect("config read");
    assert_eq!(c.max_versions, 100);
    assert!(c.cas_required);
    assert_eq!(c.delete_version_after, "768h0m0s");

    kv2::config::set(
        &client,
        &mnt,
        Some(
            SetConfigurationRequest::builder()
                .cas_required(false)
                .max_versions(1u64)
                .delete_version_after("30m"),
        ),
    )
    .await
    .expect("config set 2");
    let c = kv2::config::read(&client, &mnt).await.expect("config read");
    assert_eq!(c.max_versions, 1);
    assert!(!c.cas_required);
    assert_eq!(c.delete_version_after, "30m0s");

    // Mount delete_version_after applies to new versions.
    let m = kv2::set(&client, &mnt, "k", &secret("a", "b"))
        .await
        .expect("set");
    assert_eq!(m.version, 1);
    assert_ne!(m.deletion_time, "", "mount delete_version_after=30m");

    // Other mounts are unaffected.
    let d = kv2::config::read(&client, "secret").await.expect("secret/");
    assert!(!d.cas_required);
    mount::disable(&client, &mnt).await.expect("disable");
}

#[tokio::test]
async fn mounts_enable_list_disable() {
    let server = Server::dev_or_external();
    let client = vault_client(&server);

    let mounts = mount::list(&client).await.expect("mount list");
    let s = mounts
        .get("secret/")
        .unwrap_or_else(|| panic!("secret/ missing from {:?}", mounts.keys()));
    assert_eq!(s.mount_type, "kv");
    assert_eq!(
        s.options.as_ref().and_then(|o| o.get("version")).cloned(),
        Some("2".to_string()),
        "secret/ must be kv v2: {:?}",
        s.options
    );

    // kv with options version 2
    let a = fresh_kv2_mount(&client, "mnt-a").await;
    // kv-v2 type name
    let b = format!("mnt-b-{}", uid());
    mount::enable(&client, &b, "kv-v2", None)
        .await
        .expect("enable kv-v2");

    let mounts = mount::list(&client).await.expect("mount list");
    for (name, desc) in [(&a, "kvseal test mount"), (&b, "")] {
        let m = mounts
            .get(&format!("{name}/"))
            .unwrap_or_else(|| panic!("{name}/ missing from {:?}", mounts.keys()));
        assert_eq!(m.mount_type, "kv", "{name}");
        assert_eq!(
            m.options.as_ref().and_then(|o| o.get("version")).cloned(),
            Some("2".to_string()),
            "{name} options {:?}",
            m.options
        );
        assert_eq!(m.description, desc, "{name}");
        assert!(!m.accessor.is_empty(), "{name} accessor");
        assert!(!m.uuid.is_empty(), "{name} uuid");
    }
    assert_ne!(mounts[&format!("{a}/")].uuid, mounts[&format!("{b}/")].uuid);

    // Both behave as kv v2 and are independent.
    let m = kv2::set(&client, &a, "x", &secret("in-a", "1"))
        .await
        .expect("set a");
    assert_eq!(m.version, 1);
    assert_code(
        kv2::read::<Value>(&client, &b, "x").await,
        404,
        "same key in the other mount",
    );
    let m = kv2::set(&client, &b, "x", &secret("in-b", "1"))
        .await
        .expect("set b");
    assert_eq!(m.version, 1);
    let ra: TestSecret = kv2::read(&client, &a, "x").await.expect("read a");
    assert_eq!(ra.key, "in-a");

    // Enabling over an existing path fails with 400.
    assert_api_error(
        mount::enable(&client, &a, "kv-v2", None).await,
        400,
        "path is already in use",
        "enable over an existing mount",
    );

    mount::disable(&client, &a).await.expect("disable a");
    let mounts = mount::list(&client).await.expect("mount list");
    assert!(!mounts.contains_key(&format!("{a}/")), "{a}/ still listed");
    assert!(mounts.contains_key(&format!("{b}/")), "{b}/ vanished");
    assert_code(
        kv2::read::<Value>(&client, &a, "x").await,
        404,
        "read from a disabled mount",
    );

    // Re-enabling the same path starts empty.
    mount::enable(&client, &a, "kv-v2", None)
        .await
        .expect("re-enable");
    assert_code(
        kv2::read::<Value>(&client, &a, "x").await,
        404,
        "data of a disabled-then-re-enabled mount is gone",
    );
    mount::disable(&client, &a).await.expect("disable a");
    mount::disable(&client, &b).await.expect("disable b");
    // Disabling a nonexistent mount is a 204 no-op.
    mount::disable(&client, &format!("never-{}", uid()))
        .await
        .expect("disable nonexistent mount");
}

/// vaultrs's own `test_kv2_url_encoding`: a multi-segment mount path with a
/// space and a secret name with spaces.
#[tokio::test]
async fn url_encoding_mount_and_key_with_spaces() {
    let server = Server::dev_or_external();
    let client = vault_client(&server);
    let path = "path/to/secret engine";
    let name = "path/to/some secret/password name with whitespace";
    if server.is_external() {
        let _ = mount::disable(&client, path).await;
    }

    mount::enable(&client, path, "kv-v2", None)
        .await
        .expect("enable mount with spaces");
    let m = kv2::set(&client, path, name, &secret("mykey", "supersecret"))
        .await
        .expect("set secret with spaces");
    assert_eq!(m.version, 1);

    let keys = kv2::list(&client, path, "path/to/some secret/")
        .await
        .expect("list");
    assert_eq!(keys, ["password name with whitespace"]);
    let keys = kv2::list(&client, path, "path/to/").await.expect("list");
    assert_eq!(keys, ["some secret/"]);

    let got: TestSecret = kv2::read(&client, path, name).await.expect("read");
    assert_eq!(got, secret("mykey", "supersecret"));
    let md = kv2::read_metadata(&client, path, name).await.expect("md");
    assert_eq!(md.current_version, 1);

    let mounts = mount::list(&client).await.expect("mount list");
    let mi = mounts
        .get("path/to/secret engine/")
        .unwrap_or_else(|| panic!("mount missing from {:?}", mounts.keys()));
    assert_eq!(mi.mount_type, "kv");

    // The secret is not visible under secret/.
    assert_code(
        kv2::read::<Value>(&client, "secret", name).await,
        404,
        "same name under secret/",
    );

    mount::disable(&client, path).await.expect("disable");
    let mounts = mount::list(&client).await.expect("mount list");
    assert!(!mounts.contains_key("path/to/secret engine/"));
}
