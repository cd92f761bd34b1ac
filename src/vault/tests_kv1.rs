//! In-process tests of KV version 1 mounts (`kv` without `version: 2`, `generic`) and of their
//! upgrade by `enable-versioning`, against the real app and the real engine. Every expected answer
//! is what `bao server -dev` (OpenBao 2.7.2) answered to the same request; the few places where
//! kvseal differs on purpose say so. The real `bao` CLI and raw HTTP against both servers:
//! compat-tests/test_kv_v1.py.

use serde_json::{json, Value};

use crate::engine::model::MountSpec;
use crate::engine::path::MountPath;
use crate::testutil::{harness, Harness, OKMS_ID};

/// Vault's system default lease TTL (768h): the `lease_duration` of a v1 read without `ttl`.
const DEFAULT_TTL: i64 = 2_764_800;

/// One request and the answer expected: status and exact body (`""` for none). `request_id`
/// is the only field not compared (it is random).
struct Case {
    method: &'static str,
    path: &'static str,
    body: Option<Value>,
    status: u16,
    want: Value,
}

fn case(
    method: &'static str,
    path: &'static str,
    body: Option<Value>,
    status: u16,
    want: Value,
) -> Case {
    Case {
        method,
        path,
        body,
        status,
        want,
    }
}

/// kvseal's success envelope (Vault's, with its `mount_type`).
fn envelope(data: Value, lease_duration: i64, warnings: Value, mount_type: &str) -> Value {
    json!({
        "request_id": "",
        "lease_id": "",
        "renewable": false,
        "lease_duration": lease_duration,
        "data": data,
        "wrap_info": null,
        "warnings": warnings,
        "auth": null,
        "mount_type": mount_type,
    })
}

/// A v1 read's answer.
fn read(data: Value, ttl: i64) -> Value {
    envelope(data, ttl, Value::Null, "kv")
}

/// A listing's answer.
fn keys(k: &[&str]) -> Value {
    envelope(json!({ "keys": k }), 0, Value::Null, "kv")
}

fn errors(e: &[&str]) -> Value {
    json!({ "errors": e })
}

const NONE: Value = Value::Null;

/// Sends every case in order and checks its answer.
async fn run(h: &Harness, token: &str, cases: &[Case]) {
    for c in cases {
        let r = h.call_as(token, c.method, c.path, c.body.clone()).await;
        let got = if r.text.is_empty() {
            Value::Null
        } else {
            let mut v = r.json();
            if v.get("request_id").is_some() {
                v["request_id"] = json!("");
            }
            v
        };
        assert_eq!(
            (r.status.as_u16(), &got),
            (c.status, &c.want),
            "{} {}: {}",
            c.method,
            c.path,
            r.text
        );
        if c.status == 204 {
            assert!(r.text.is_empty(), "{} {}", c.method, c.path);
        }
    }
}

async fn enable(h: &Harness, path: &str, body: Value) {
    let r = h.put(&format!("/v1/sys/mounts/{path}"), body).await;
    assert_eq!(r.status, 204, "{path}: {}", r.text);
}

async fn kv1(h: &Harness) {
    enable(h, "kv1", json!({"type": "kv"})).await;
}

// ---- reads, writes, lists, deletes ----

#[actix_web::test]
async fn v1_writes_replace_reads_lease_lists_and_deletes_remove() {
    let h = harness().await;
    kv1(&h).await;
    run(
        &h,
        "root",
        &[
            case("PUT", "/v1/kv1/foo", Some(json!({"a": "b"})), 204, NONE),
            case(
                "GET",
                "/v1/kv1/foo",
                None,
                200,
                read(json!({"a": "b"}), DEFAULT_TTL),
            ),
            // A write replaces the whole value (no merge, no version).
            case("POST", "/v1/kv1/foo", Some(json!({"c": 1})), 204, NONE),
            case(
                "GET",
                "/v1/kv1/foo",
                None,
                200,
                read(json!({"c": 1}), DEFAULT_TTL),
            ),
            case(
                "PUT",
                "/v1/kv1/dir/x",
                Some(json!({"n": {"deep": [1, null]}})),
                204,
                NONE,
            ),
            case(
                "GET",
                "/v1/kv1/dir/x",
                None,
                200,
                read(json!({"n": {"deep": [1, null]}}), DEFAULT_TTL),
            ),
            case("LIST", "/v1/kv1/", None, 200, keys(&["dir/", "foo"])),
            case(
                "GET",
                "/v1/kv1/?list=true",
                None,
                200,
                keys(&["dir/", "foo"]),
            ),
            case("LIST", "/v1/kv1", None, 200, keys(&["dir/", "foo"])),
            case("LIST", "/v1/kv1/dir", None, 200, keys(&["x"])),
            // A key is no folder; an empty or missing folder is 404.
            case("LIST", "/v1/kv1/foo", None, 404, errors(&[])),
            case("LIST", "/v1/kv1/nothing/", None, 404, errors(&[])),
            case("GET", "/v1/kv1/missing", None, 404, errors(&[])),
            case("GET", "/v1/kv1/", None, 404, errors(&[])),
            case("GET", "/v1/kv1", None, 404, errors(&[])),
            case("GET", "/v1/kv1/dir/", None, 404, errors(&[])),
            case("DELETE", "/v1/kv1/foo", None, 204, NONE),
            case("GET", "/v1/kv1/foo", None, 404, errors(&[])),
            case("DELETE", "/v1/kv1/foo", None, 204, NONE),
            case("DELETE", "/v1/kv1/dir/", None, 204, NONE),
            case("DELETE", "/v1/kv1/", None, 204, NONE),
            case("LIST", "/v1/kv1/", None, 200, keys(&["dir/"])),
            case("DELETE", "/v1/kv1/dir/x", None, 204, NONE),
            case("LIST", "/v1/kv1/", None, 404, errors(&[])),
        ],
    )
    .await;
}

#[actix_web::test]
async fn v1_form_bodies_are_stored_as_strings() {
    let h = harness().await;
    kv1(&h).await;
    let r = h
        .call_with(
            "PUT",
            "/v1/kv1/form",
            Some("a=1&b=2"),
            &[
                ("X-Vault-Token", "root"),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    run(
        &h,
        "root",
        &[case(
            "GET",
            "/v1/kv1/form",
            None,
            200,
            read(json!({"a": "1", "b": "2"}), DEFAULT_TTL),
        )],
    )
    .await;
}

#[actix_web::test]
async fn v1_write_errors_are_vaults() {
    let h = harness().await;
    kv1(&h).await;
    run(
        &h,
        "root",
        &[
            case(
                "PUT",
                "/v1/kv1/x/",
                Some(json!({"a": 1})),
                400,
                errors(&["cannot write to a path ending in '/'"]),
            ),
            case(
                "PUT",
                "/v1/kv1/",
                Some(json!({"a": 1})),
                400,
                errors(&["cannot write to a path ending in '/'"]),
            ),
            case(
                "PUT",
                "/v1/kv1",
                Some(json!({"a": 1})),
                400,
                errors(&["missing path"]),
            ),
            case(
                "PUT",
                "/v1/kv1/x",
                Some(json!({})),
                400,
                errors(&["missing data fields"]),
            ),
            case(
                "PUT",
                "/v1/kv1/x",
                None,
                400,
                errors(&["missing data fields"]),
            ),
            // No patch on the passthrough backend (`vault kv patch` refuses a v1 mount itself).
            case(
                "PATCH",
                "/v1/kv1/x",
                Some(json!({"a": 1})),
                405,
                errors(&["unsupported operation"]),
            ),
            case("GET", "/v1/kv1/x", None, 404, errors(&[])),
        ],
    )
    .await;
}

#[actix_web::test]
async fn v2_paths_on_a_v1_mount_are_plain_secret_names() {
    let h = harness().await;
    kv1(&h).await;
    run(
        &h,
        "root",
        &[
            case(
                "PUT",
                "/v1/kv1/data/x",
                Some(json!({"data": {"a": 1}})),
                204,
                NONE,
            ),
            case(
                "GET",
                "/v1/kv1/data/x",
                None,
                200,
                read(json!({"data": {"a": 1}}), DEFAULT_TTL),
            ),
            case("GET", "/v1/kv1/metadata/x", None, 404, errors(&[])),
            case("GET", "/v1/kv1/config", None, 404, errors(&[])),
            case(
                "PUT",
                "/v1/kv1/config",
                Some(json!({"max_versions": 3})),
                204,
                NONE,
            ),
            case(
                "GET",
                "/v1/kv1/config",
                None,
                200,
                read(json!({"max_versions": 3}), DEFAULT_TTL),
            ),
            case("LIST", "/v1/kv1/", None, 200, keys(&["config", "data/"])),
        ],
    )
    .await;
}

// ---- the lease duration ----

#[actix_web::test]
async fn a_ttl_in_the_data_sets_the_lease_duration() {
    let h = harness().await;
    kv1(&h).await;
    // (stored value, lease_duration bao answered).
    let table = [
        (json!({"a": "b", "ttl": "1h"}), 3600),
        (json!({"ttl": 30}), 30),
        (json!({"lease": "2m"}), 120),
        (json!({"ttl": "30", "lease": "2m"}), 30),
        (json!({"ttl": "abc"}), DEFAULT_TTL),
        (json!({"ttl": 1.5}), DEFAULT_TTL),
        (json!({"ttl": true}), DEFAULT_TTL),
        (json!({"ttl": null}), 0),
        (json!({"ttl": -5}), -5),
        (json!({"ttl": "100000h"}), 360_000_000),
    ];
    for (data, ttl) in table {
        let r = h.put("/v1/kv1/t", data.clone()).await;
        assert_eq!(r.status, 204, "{data}: {}", r.text);
        let v = h.call("GET", "/v1/kv1/t", None).await.json();
        assert_eq!(v["lease_duration"], ttl, "{data}");
        assert_eq!(v["renewable"], false, "{data}");
        assert_eq!(v["lease_id"], "", "{data}");
        assert_eq!(v["data"], data);
    }
}

#[actix_web::test]
async fn the_default_lease_duration_is_the_mounts_tuned_ttl() {
    let h = harness().await;
    kv1(&h).await;
    let r = h.put("/v1/kv1/s", json!({"a": 1})).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = h
        .put(
            "/v1/sys/mounts/kv1/tune",
            json!({"default_lease_ttl": "1h", "max_lease_ttl": "2h"}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    run(
        &h,
        "root",
        &[case(
            "GET",
            "/v1/kv1/s",
            None,
            200,
            read(json!({"a": 1}), 3600),
        )],
    )
    .await;
}

#[actix_web::test]
async fn query_parameters_of_a_read_or_list_are_warned_about_not_ignored_silently() {
    let h = harness().await;
    kv1(&h).await;
    let r = h.put("/v1/kv1/zz", json!({"a": 1})).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let ignored =
        |names: &str| format!("Endpoint ignored these unrecognized parameters: [{names}]");
    let replaced = "Endpoint replaced the value of these parameters with the values captured from the endpoint's path: [path]";
    // `vault kv get -version=1` on a v1 mount sends `?version=1`.
    let table = [
        ("/v1/kv1/zz?version=1", json!([ignored("version")])),
        ("/v1/kv1/zz?b=1&a=2", json!([ignored("a b")])),
        ("/v1/kv1/zz?path=x&q=1", json!([ignored("q"), replaced])),
    ];
    for (path, warnings) in table {
        let v = h.call("GET", path, None).await.json();
        assert_eq!(v["warnings"], warnings, "{path}");
        assert_eq!(v["data"], json!({"a": 1}), "{path}");
    }
    let v = h.call("LIST", "/v1/kv1/?after=a", None).await.json();
    assert_eq!(v["warnings"], json!([ignored("after")]));
    assert_eq!(v["data"], json!({"keys": ["zz"]}));
}

// ---- mounts ----

#[actix_web::test]
async fn kv_mount_options_are_kept_as_given() {
    let h = harness().await;
    // (enable body, the options and type sys/mounts then shows).
    let table = [
        ("plain", json!({"type": "kv"}), json!({}), "kv"),
        // hvac sends the version as an integer.
        (
            "hvac1",
            json!({"type": "kv", "options": {"version": 1}}),
            json!({"version": "1"}),
            "kv",
        ),
        (
            "alias1",
            json!({"type": "kv-v1"}),
            json!({"version": "1"}),
            "kv",
        ),
        (
            "empty",
            json!({"type": "kv", "options": {"version": ""}}),
            json!({"version": ""}),
            "kv",
        ),
        (
            "alias2",
            json!({"type": "kv-v2"}),
            json!({"version": "2"}),
            "kv",
        ),
        ("gen", json!({"type": "generic"}), json!({}), "generic"),
    ];
    for (path, body, options, kind) in &table {
        enable(&h, path, body.clone()).await;
        let m = h
            .call("GET", &format!("/v1/sys/mounts/{path}"), None)
            .await
            .json();
        assert_eq!(
            (&m["data"]["options"], &m["data"]["type"]),
            (options, &json!(kind)),
            "{path}"
        );
        let p = h
            .call("GET", &format!("/v1/sys/internal/ui/mounts/{path}/x"), None)
            .await
            .json();
        assert_eq!(p["data"]["options"], *options, "{path}: the preflight");
        assert_eq!(p["data"]["path"], format!("{path}/"));
    }
}

#[actix_web::test]
async fn generic_mounts_are_kv_v1_listed_as_generic() {
    let h = harness().await;
    enable(&h, "gen", json!({"type": "generic"})).await;
    let v = h.call("GET", "/v1/sys/mounts", None).await.json();
    let m = &v["data"]["gen/"];
    assert_eq!(m["type"], "generic", "{v}");
    assert!(
        m["accessor"].as_str().unwrap().starts_with("generic_"),
        "{m}"
    );
    // Not a plugin of Vault's catalog: no deprecation status.
    assert!(m.get("deprecation_status").is_none(), "{m}");
    assert_eq!(v["data"]["secret/"]["deprecation_status"], "supported");
    run(
        &h,
        "root",
        &[
            case("PUT", "/v1/gen/a", Some(json!({"x": 1})), 204, NONE),
            case(
                "GET",
                "/v1/gen/a",
                None,
                200,
                envelope(json!({"x": 1}), DEFAULT_TTL, Value::Null, "generic"),
            ),
            case(
                "POST",
                "/v1/sys/mounts/gen2",
                Some(json!({"type": "generic", "options": {"version": "2"}})),
                400,
                errors(&["secrets engine \"generic\" does not allow setting a version"]),
            ),
        ],
    )
    .await;
}

// ---- enable-versioning ----

#[actix_web::test]
async fn enable_versioning_keeps_each_value_as_its_version_1() {
    let h = harness().await;
    kv1(&h).await;
    for (path, data) in [("a", json!({"x": "1"})), ("dir/b", json!({"y": "2"}))] {
        let r = h.put(&format!("/v1/kv1/{path}"), data).await;
        assert_eq!(r.status, 204, "{}", r.text);
    }
    // What `vault kv enable-versioning kv1` sends.
    let r = h
        .put(
            "/v1/sys/mounts/kv1/tune",
            json!({"options": {"version": "2"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut v = r.json();
    v["request_id"] = json!("");
    assert_eq!(
        v,
        envelope(
            Value::Null,
            0,
            json!(["Upgrading mount from version 0 to version 2. This mount will be unavailable for a brief period and will resume service shortly."]),
            "system"
        )
    );
    // At once: no "Upgrading from non-versioned to versioned data" window.
    for (path, data) in [("a", json!({"x": "1"})), ("dir/b", json!({"y": "2"}))] {
        let d = h
            .call("GET", &format!("/v1/kv1/data/{path}?version=1"), None)
            .await;
        assert_eq!(d.status, 200, "{path}: {}", d.text);
        let d = d.json();
        assert_eq!(d["data"]["data"], data, "{path}");
        assert_eq!(d["data"]["metadata"]["version"], 1, "{path}");
        assert_eq!(d["data"]["metadata"]["deletion_time"], "", "{path}");
        assert_eq!(d["lease_duration"], 0, "{path}: a v2 read has no lease");
    }
    let m = h.call("GET", "/v1/kv1/metadata/a", None).await.json();
    assert_eq!(
        (
            &m["data"]["current_version"],
            &m["data"]["oldest_version"],
            m["data"]["versions"]
                .as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>())
        ),
        (&json!(1), &json!(1), Some(vec!["1".to_string()])),
        "{m}"
    );
    let l = h.call("LIST", "/v1/kv1/metadata/", None).await.json();
    assert_eq!(l["data"]["keys"], json!(["a", "dir/"]));
    // Now versioned: the next write is version 2, version 1 stays readable.
    let w = h.put("/v1/kv1/data/a", json!({"data": {"x": "2"}})).await;
    assert_eq!(w.json()["data"]["version"], 2, "{}", w.text);
    let d = h.call("GET", "/v1/kv1/data/a?version=1", None).await.json();
    assert_eq!(d["data"]["data"], json!({"x": "1"}));
    // The v1 path is no longer a secret: the v2 catch-all answers.
    let r = h.call("GET", "/v1/kv1/a", None).await;
    assert_eq!(r.status, 404);
    assert!(r.json()["warnings"][0]
        .as_str()
        .unwrap()
        .starts_with("Invalid path for a versioned K/V secrets engine."));
    let p = h
        .call("GET", "/v1/sys/internal/ui/mounts/kv1", None)
        .await
        .json();
    assert_eq!(p["data"]["options"], json!({"version": "2"}));
}

#[actix_web::test]
async fn tune_version_rules_are_vaults() {
    let h = harness().await;
    kv1(&h).await;
    let upgrading = |from: u8, to: u8| {
        envelope(
            Value::Null,
            0,
            json!([format!("Upgrading mount from version {from} to version {to}. This mount will be unavailable for a brief period and will resume service shortly.")]),
            "system",
        )
    };
    let tune = |options: Value| Some(json!({ "options": options }));
    run(
        &h,
        "root",
        &[
            case(
                "POST",
                "/v1/sys/mounts/kv1/tune",
                tune(json!({"version": "3"})),
                400,
                errors(&["invalid version provided: 3"]),
            ),
            case(
                "POST",
                "/v1/sys/mounts/kv1/tune",
                tune(json!({"version": ""})),
                400,
                errors(&["invalid version provided: 0"]),
            ),
            case(
                "POST",
                "/v1/sys/mounts/kv1/tune",
                tune(json!({"version": "abc"})),
                400,
                errors(&[
                    "unable to parse options: strconv.ParseInt: parsing \"abc\": invalid syntax",
                ]),
            ),
            // A mount enabled without a version is version 0 to this rule.
            case(
                "POST",
                "/v1/sys/mounts/kv1/tune",
                tune(json!({"version": "1"})),
                200,
                upgrading(0, 1),
            ),
            case(
                "POST",
                "/v1/sys/mounts/kv1/tune",
                tune(json!({"version": 1})),
                204,
                NONE,
            ),
            case("PUT", "/v1/kv1/s", Some(json!({"still": "v1"})), 204, NONE),
            case(
                "POST",
                "/v1/sys/mounts/kv1/tune",
                tune(json!({"version": "2", "x": "y"})),
                200,
                upgrading(1, 2),
            ),
            case(
                "POST",
                "/v1/sys/mounts/kv1/tune",
                tune(json!({"version": "2"})),
                204,
                NONE,
            ),
            case(
                "POST",
                "/v1/sys/mounts/kv1/tune",
                tune(json!({"version": "1"})),
                400,
                errors(&["cannot downgrade mount from version 2"]),
            ),
            // Any other option given empty is removed.
            case(
                "POST",
                "/v1/sys/mounts/kv1/tune",
                tune(json!({"x": ""})),
                204,
                NONE,
            ),
        ],
    )
    .await;
    let t = h.call("GET", "/v1/sys/mounts/kv1/tune", None).await.json();
    assert_eq!(t["data"]["options"], json!({"version": "2"}));
    let d = h.call("GET", "/v1/kv1/data/s", None).await.json();
    assert_eq!(d["data"]["data"], json!({"still": "v1"}));
}

// ---- policies ----

#[actix_web::test]
async fn v1_policies_name_plain_paths_with_create_and_update_by_existence() {
    let h = harness().await;
    kv1(&h).await;
    let policy = r#"
path "kv1/data/*" { capabilities = ["create", "read", "list"] }
path "kv1/open"   { capabilities = ["update", "read", "delete"] }
"#;
    let r = h
        .put("/v1/sys/policies/acl/v1", json!({"policy": policy}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = h
        .put("/v1/auth/token/create", json!({"policies": ["v1"]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let denied = || errors(&["permission denied"]);
    run(
        &h,
        "root",
        &[case(
            "PUT",
            "/v1/kv1/open",
            Some(json!({"v": "root"})),
            204,
            NONE,
        )],
    )
    .await;
    run(
        &h,
        &token,
        &[
            // `data/` is part of the secret's name, not rewritten: the rule on kv1/data/* applies.
            case("PUT", "/v1/kv1/data/new", Some(json!({"v": 1})), 204, NONE),
            case(
                "GET",
                "/v1/kv1/data/new",
                None,
                200,
                read(json!({"v": 1}), DEFAULT_TTL),
            ),
            // It exists now: replacing it is an update, which the rule does not grant.
            case(
                "PUT",
                "/v1/kv1/data/new",
                Some(json!({"v": 2})),
                403,
                denied(),
            ),
            case("LIST", "/v1/kv1/data/", None, 200, keys(&["new"])),
            // kv1/open grants update, not create: the existing one may change, a new one not.
            case("PUT", "/v1/kv1/open", Some(json!({"v": "mine"})), 204, NONE),
            case("PUT", "/v1/kv1/other", Some(json!({"v": 1})), 403, denied()),
            case(
                "GET",
                "/v1/kv1/open",
                None,
                200,
                read(json!({"v": "mine"}), DEFAULT_TTL),
            ),
            case("DELETE", "/v1/kv1/open", None, 204, NONE),
            case(
                "PUT",
                "/v1/kv1/open",
                Some(json!({"v": "again"})),
                403,
                denied(),
            ),
            case("DELETE", "/v1/kv1/data/new", None, 403, denied()),
        ],
    )
    .await;
}

// ---- OKMS ----

#[actix_web::test]
async fn an_okms_domain_cannot_be_backed_by_a_v1_mount() {
    let h = harness().await;
    // The harness's domain is backed by secret/: make room there.
    let r = h.call("DELETE", "/v1/sys/mounts/secret", None).await;
    assert_eq!(r.status, 204, "{}", r.text);
    enable(&h, "old", json!({"type": "kv"})).await;
    let enable_refused = format!(
        "cannot enable a KV version 1 mount at \"secret/\": the OKMS domain {OKMS_ID} is backed by this path and needs a KV version 2 mount; enable it with options version=2 (type kv-v2)"
    );
    let move_refused = format!(
        "cannot move the KV version 1 mount \"old/\" to \"secret/\": the OKMS domain {OKMS_ID} is backed by that path and needs a KV version 2 mount; upgrade it first (vault kv enable-versioning old)"
    );
    for body in [
        json!({"type": "kv"}),
        json!({"type": "kv", "options": {"version": "1"}}),
        json!({"type": "kv-v1"}),
        json!({"type": "generic"}),
    ] {
        let r = h.put("/v1/sys/mounts/secret", body.clone()).await;
        assert_eq!(
            (r.status.as_u16(), r.json()),
            (400, errors(&[&enable_refused])),
            "{body}"
        );
    }
    let r = h
        .put("/v1/sys/remount", json!({"from": "old", "to": "secret"}))
        .await;
    assert_eq!(
        (r.status.as_u16(), r.json()),
        (400, errors(&[&move_refused]))
    );
    // Upgraded, the same move is allowed.
    let r = h
        .put(
            "/v1/sys/mounts/old/tune",
            json!({"options": {"version": "2"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = h
        .put("/v1/sys/remount", json!({"from": "old", "to": "secret"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[actix_web::test]
async fn a_v1_mount_never_serves_an_okms_domain() {
    let h = harness().await;
    let r = h.call("DELETE", "/v1/sys/mounts/secret", None).await;
    assert_eq!(r.status, 204, "{}", r.text);
    // As a store enabled by an older kvseal, or a configuration changed to name a v1 mount, has it.
    let spec = MountSpec {
        kind: "kv".into(),
        ..Default::default()
    };
    h.engine
        .enable_mount(MountPath::parse("secret").unwrap(), spec)
        .await
        .unwrap();
    let r = h.put("/v1/secret/k", json!({"a": 1})).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let want = "the mount \"secret/\" backing this domain is KV version 1; upgrade it to version 2";
    for (method, path) in [
        ("GET", format!("/api/{OKMS_ID}/v2/secret")),
        ("GET", format!("/api/{OKMS_ID}/v2/secret/k")),
        ("GET", format!("/api/{OKMS_ID}/v1/secret/data/k")),
        ("GET", format!("/api/{OKMS_ID}/v1/secret/k")),
    ] {
        let r = h.call(method, &path, None).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text);
        assert_eq!(r.json()["errors"], json!([want]), "{path}");
    }
}
