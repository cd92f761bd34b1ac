//! Administrative changes (keys, policies, mounts) sent all at once to the real binary, then a
//! restart: the store must still unseal, and everything must read back as stored.
//!
//! Security review, finding 1: `sys/rotate` and `sys/rotate/root` sent together left the keyring
//! sealed under a root key that was no longer stored (the next start never unsealed), and concurrent
//! writes of one policy could leave the enforced ACL different from the stored text.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};

use common::{Http, Server};
use serde_json::{json, Value};

/// Rounds per racing thread.
const ROUNDS: usize = 8;
/// Threads per kind of change.
const THREADS: usize = 4;

/// A request of the storm and the status it must get.
struct Change {
    method: &'static str,
    path: String,
    body: Value,
    status: u16,
}

fn policy_granting_read(path: &str) -> String {
    format!("path \"{path}\" {{ capabilities = [\"read\"] }}")
}

/// What thread `t` of each kind sends in round `r`.
fn changes(t: usize, r: usize) -> Vec<Change> {
    vec![
        Change {
            method: "PUT",
            path: "sys/rotate".into(),
            body: json!({}),
            status: 204,
        },
        Change {
            method: "PUT",
            path: "sys/rotate/root".into(),
            body: json!({}),
            status: 204,
        },
        // Every thread rewrites the same policy, each with its own text.
        Change {
            method: "PUT",
            path: "sys/policies/acl/shared".into(),
            body: json!({"policy": policy_granting_read(&format!("secret/data/shared/{t}"))}),
            status: 204,
        },
        // And its own policy, whose last text is known.
        Change {
            method: "PUT",
            path: format!("sys/policies/acl/own-{t}"),
            body: json!({"policy": policy_granting_read(&format!("secret/data/own/{t}/{r}"))}),
            status: 204,
        },
        Change {
            method: "POST",
            path: format!("sys/mounts/kv-{t}-{r}"),
            body: json!({"type": "kv", "options": {"version": "2"}}),
            status: 204,
        },
        // Data written between the key changes must open after the restart.
        Change {
            method: "POST",
            path: format!("secret/data/race/{t}/{r}"),
            body: json!({"data": {"t": t, "r": r}}),
            status: 200,
        },
    ]
}

fn send(http: &Http, c: &Change) {
    let r = http.request(c.method, &c.path, Some(&c.body));
    assert_eq!(
        r.status, c.status,
        "{} /v1/{} {}: {}",
        c.method, c.path, c.body, r.text
    );
}

fn expect(http: &Http, method: &str, path: &str, body: Option<&Value>, status: u16) -> Value {
    let r = http.request(method, path, body);
    assert_eq!(r.status, status, "{method} /v1/{path}: {}", r.text);
    r.json
}

/// A token whose only policy is `shared`.
fn shared_token(http: &Http) -> String {
    let v = expect(
        http,
        "POST",
        "auth/token/create",
        Some(&json!({"policies": ["shared"], "no_default_policy": true})),
        200,
    );
    v["auth"]["client_token"].as_str().unwrap().to_string()
}

/// The ACL enforced for `shared` is the one of its stored text: the token reads exactly the one
/// `secret/data/shared/<t>` that the stored text names.
fn assert_shared_policy_enforced_as_stored(http: &Http, token: &str) {
    let text = expect(http, "GET", "sys/policies/acl/shared", None, 200)["data"]["policy"]
        .as_str()
        .unwrap()
        .to_string();
    let reader = Http::new(&http.base, token);
    for t in 0..THREADS {
        let path = format!("secret/data/shared/{t}");
        let granted = text == policy_granting_read(&path);
        let status = reader.get(&path).status;
        assert_eq!(
            status,
            if granted { 200 } else { 403 },
            "GET /v1/{path} with a `shared` token, stored text {text:?}"
        );
    }
}

/// Everything the storm wrote reads back as the last acknowledged write.
fn assert_reads_back(http: &Http, rotations: usize) {
    let term = expect(http, "GET", "sys/key-status", None, 200)["data"]["term"].clone();
    assert_eq!(
        term,
        json!(1 + rotations),
        "one keyring term per sys/rotate"
    );
    let mut want: BTreeMap<String, Value> = BTreeMap::new();
    for t in 0..THREADS {
        want.insert(
            format!("sys/policies/acl/own-{t}"),
            json!(policy_granting_read(&format!(
                "secret/data/own/{t}/{}",
                ROUNDS - 1
            ))),
        );
        for r in 0..ROUNDS {
            want.insert(format!("secret/data/race/{t}/{r}"), json!({"t": t, "r": r}));
            want.insert(format!("sys/mounts/kv-{t}-{r}"), json!("kv"));
        }
    }
    for (path, body) in &want {
        let v = expect(http, "GET", path, None, 200);
        let got = if path.starts_with("secret/") {
            &v["data"]["data"]
        } else if path.starts_with("sys/mounts/") {
            &v["data"]["type"]
        } else {
            &v["data"]["policy"]
        };
        assert_eq!(got, body, "GET /v1/{path}");
    }
}

#[test]
fn concurrent_key_policy_and_mount_changes_survive_a_restart() {
    let mut server = Server::config_mode();
    server.init();
    let http = server.http();
    // Setup: the secrets the `shared` policy is about, the policy itself, and a token holding it.
    for t in 0..THREADS {
        http.put_secret("secret", &format!("shared/{t}"), &json!({"t": t}));
    }
    send(&http, &changes(0, 0)[2]);
    let token = shared_token(&http);

    let start = Arc::new(Barrier::new(THREADS * changes(0, 0).len()));
    let mut threads = Vec::new();
    for t in 0..THREADS {
        for kind in 0..changes(0, 0).len() {
            let (http, start) = (http.clone(), Arc::clone(&start));
            threads.push(std::thread::spawn(move || {
                start.wait();
                for r in 0..ROUNDS {
                    send(&http, &changes(t, r)[kind]);
                }
            }));
        }
    }
    for th in threads {
        th.join().unwrap();
    }
    assert_shared_policy_enforced_as_stored(&http, &token);
    assert_reads_back(&http, THREADS * ROUNDS);

    // The next start must unseal with the key file (it stayed sealed: "stored data failed
    // authentication"), and serve the same.
    server.restart();
    let http = server.http();
    assert_shared_policy_enforced_as_stored(&http, &token);
    assert_reads_back(&http, THREADS * ROUNDS);
}
