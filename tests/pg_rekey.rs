//! Rekey on two Shamir-sealed kvseal nodes sharing one PostgreSQL database: what node A's rekey
//! changes, node B follows. Real processes throughout: a PostgreSQL server of the test's own and two
//! `kvseal server --config` processes.
//!
//! The promises checked: after a rekey on A, B (unsealed with the old keys) keeps serving, its key
//! changes still work (it took the new seal key from the barrier), and after a restart B unseals
//! with the new keys only.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::pg::PgCluster;
use common::{Http, Server};
use serde_json::{json, Value};

/// How soon a change on one node is in force on the other.
const PROPAGATION: Duration = Duration::from_secs(2);

fn keys(v: &Value, field: &str) -> Vec<String> {
    v[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect()
}

/// Gives `keys` to `sys/unseal` without a token; returns the last answer.
fn unseal(node: &Server, keys: &[String]) -> Value {
    let anon = Http::new(&node.addr, "");
    let mut last = Value::Null;
    for k in keys {
        let r = anon.request("PUT", "sys/unseal", Some(&json!({"key": k})));
        assert_eq!(r.status, 200, "unseal: {}", r.text);
        last = r.json;
    }
    last
}

fn wait_until(what: &str, node: &Server, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + PROPAGATION;
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "{what} not within {PROPAGATION:?}\n{}",
            node.logs()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_rekey_on_a_is_followed_by_b_and_b_unseals_with_the_new_keys_after_a_restart() {
    let pg = PgCluster::start();
    let storage = format!("type = \"postgresql\"\nconnection_url = \"{}\"\n", pg.url());
    let mut a = Server::config_mode_shamir(&storage);
    let mut b = Server::config_mode_shamir(&storage);

    let init = Http::new(&a.addr, "").request(
        "PUT",
        "sys/init",
        Some(&json!({"secret_shares": 3, "secret_threshold": 2})),
    );
    assert_eq!(init.status, 200, "{}", init.text);
    let old = keys(&init.json, "keys");
    let root = init.json["root_token"].as_str().unwrap().to_string();
    a.token = root.clone();
    b.token = root.clone();
    for node in [&a, &b] {
        // B sees the store initialised by A within a poll, then takes the old keys.
        wait_until("initialised", node, || {
            Http::new(&node.addr, "").get("sys/seal-status").json["initialized"] == true
        });
        assert_eq!(unseal(node, &old[..2])["sealed"], false);
    }
    a.http().put_secret("secret", "before", &json!({"v": "1"}));

    // Rekey on A to 4 shares, threshold 3.
    let anon_a = Http::new(&a.addr, "");
    let r = anon_a.request(
        "PUT",
        "sys/rekey/init",
        Some(&json!({"secret_shares": 4, "secret_threshold": 3})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let nonce = r.json["nonce"].as_str().unwrap().to_string();
    let mut done = Value::Null;
    for k in &old[1..3] {
        let r = anon_a.request(
            "PUT",
            "sys/rekey/update",
            Some(&json!({"key": k, "nonce": nonce})),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        done = r.json;
    }
    assert_eq!(done["complete"], true, "{done}");
    let new = keys(&done, "keys");

    // B: the new seal configuration, the data, and key changes that need the seal key.
    wait_until("B reports the new threshold", &b, || {
        let st = Http::new(&b.addr, "").get("sys/seal-status").json;
        st["t"] == 3 && st["n"] == 4
    });
    a.http().put_secret("secret", "after", &json!({"v": "2"}));
    for path in ["secret/data/before", "secret/data/after"] {
        let r = b.http().get(path);
        assert_eq!(r.status, 200, "B reads {path}: {}", r.text);
    }
    let rotated = b.http().request("PUT", "sys/rotate/root", None);
    assert_eq!(
        rotated.status,
        204,
        "B rotates the root key: {}\n{}",
        rotated.text,
        b.logs()
    );
    let rotated = b.http().request("PUT", "sys/rotate", None);
    assert_eq!(
        rotated.status, 204,
        "B rotates the keyring: {}",
        rotated.text
    );
    b.http().put_secret("secret", "from-b", &json!({"v": "3"}));
    wait_until("A reads what B wrote after B's rotations", &a, || {
        a.http().get("secret/data/from-b").status == 200
    });

    assert!(
        b.logs()
            .contains("the unseal keys were changed on another node (rekey); following"),
        "B took the new seal key from the barrier\n{}",
        b.logs()
    );

    // After a restart, B is sealed and takes the new keys only.
    b.restart_sealed();
    let st = Http::new(&b.addr, "").get("sys/seal-status").json;
    assert_eq!(
        (st["t"].clone(), st["n"].clone(), st["sealed"].clone()),
        (json!(3), json!(4), json!(true))
    );
    // Three old keys (the new threshold) combine to the old seal key, which opens nothing now.
    let anon_b = Http::new(&b.addr, "");
    let statuses: Vec<u16> = old
        .iter()
        .map(|k| {
            anon_b
                .request("PUT", "sys/unseal", Some(&json!({"key": k})))
                .status
        })
        .collect();
    assert_eq!(statuses, [200, 200, 400], "the old keys do not unseal B");
    assert_eq!(unseal(&b, &new[1..4])["sealed"], false);
    b.wait_ready(&[200]);
    let r = b.http().get("secret/data/from-b");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["data"]["data"], json!({"v": "3"}));
}
