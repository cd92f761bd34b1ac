//! Concurrent check-and-set: with 20 writers racing on the same `cas`
//! value exactly one may win.

mod common;

use std::sync::{Arc, Barrier};
use std::thread;

use common::{uid, Http, Server};
use serde_json::{json, Value};

const WRITERS: usize = 20;
const CAS_MISMATCH: &str = "check-and-set parameter did not match the current version";

/// Result of one racing writer: (writer index, status, body).
type Outcome = (usize, u16, Value);

/// Fires `WRITERS` simultaneous POSTs to `secret/data/<key>`, each from its
/// own HTTP client (own connection), body built by `body(i)`.
fn race(server: &Server, key: &str, body: impl Fn(usize) -> Value) -> Vec<Outcome> {
    let barrier = Arc::new(Barrier::new(WRITERS));
    let mut handles = Vec::new();
    for i in 0..WRITERS {
        let http = Http::new(&server.addr, &server.token);
        // Warm the connection so the race is not dominated by TCP connects.
        let warm = http.get("sys/health");
        assert_eq!(warm.status, 200, "health: {}", warm.text);
        let barrier = barrier.clone();
        let path = format!("secret/data/{key}");
        let b = body(i);
        handles.push(thread::spawn(move || {
            barrier.wait();
            let r = http.post(&path, &b);
            (i, r.status, r.json)
        }));
    }
    handles
        .into_iter()
        .map(|h| h.join().expect("writer thread panicked"))
        .collect()
}

fn check_one_winner(server: &Server, key: &str, n: u64, outcomes: &[Outcome]) {
    let http = server.http();
    let winners: Vec<&Outcome> = outcomes.iter().filter(|o| o.1 == 200).collect();
    assert_eq!(
        winners.len(),
        1,
        "cas {n}: exactly one writer must win, got statuses {:?}",
        outcomes.iter().map(|o| (o.0, o.1)).collect::<Vec<_>>()
    );
    let (wi, _, wbody) = winners[0];
    assert_eq!(
        wbody["data"]["version"],
        json!(n + 1),
        "winner's response version: {wbody}"
    );
    for (i, status, body) in outcomes.iter().filter(|o| o.1 != 200) {
        assert_eq!(
            *status, 400,
            "writer {i}: expected 400, got {status} {body}"
        );
        assert_eq!(
            body["errors"],
            json!([CAS_MISMATCH]),
            "writer {i}: error body {body}"
        );
    }

    let md = http.get(&format!("secret/metadata/{key}"));
    assert_eq!(md.status, 200, "{}", md.text);
    assert_eq!(
        md.json["data"]["current_version"],
        json!(n + 1),
        "{}",
        md.text
    );
    let versions = md.json["data"]["versions"]
        .as_object()
        .unwrap_or_else(|| panic!("no versions object: {}", md.text));
    assert_eq!(versions.len() as u64, n + 1, "{}", md.text);

    let cur = http.get(&format!("secret/data/{key}"));
    assert_eq!(cur.status, 200, "{}", cur.text);
    assert_eq!(
        cur.json["data"]["data"],
        json!({"w": wi.to_string()}),
        "stored value must be the winner's (writer {wi})"
    );
    assert_eq!(cur.json["data"]["metadata"]["version"], json!(n + 1));
}

#[test]
fn cas_race_existing_key() {
    let server = Server::dev_or_external();
    let http = server.http();
    for round in 0..3u64 {
        let key = format!("race-{}", uid());
        // Bring the key to version N = 3 + round.
        let n = 3 + round;
        for v in 1..=n {
            assert_eq!(http.put_secret("secret", &key, &json!({"w": "init"})), v);
        }
        let outcomes = race(
            &server,
            &key,
            |i| json!({"options": {"cas": n}, "data": {"w": i.to_string()}}),
        );
        check_one_winner(&server, &key, n, &outcomes);
    }
}

#[test]
fn cas_race_create_only() {
    let server = Server::dev_or_external();
    for _ in 0..3 {
        let key = format!("race-new-{}", uid());
        let outcomes = race(
            &server,
            &key,
            |i| json!({"options": {"cas": 0}, "data": {"w": i.to_string()}}),
        );
        check_one_winner(&server, &key, 0, &outcomes);
    }
}

/// Without cas every concurrent write must succeed with a distinct version
/// (no lost updates, no duplicated version numbers).
#[test]
fn concurrent_plain_writes_get_distinct_versions() {
    let server = Server::dev_or_external();
    let http = server.http();
    let key = format!("race-plain-{}", uid());
    // max_versions high enough that nothing is pruned.
    let r = http.post(
        &format!("secret/metadata/{key}"),
        &json!({"max_versions": 100}),
    );
    assert_eq!(r.status, 204, "{}", r.text);
    let outcomes = race(&server, &key, |i| json!({"data": {"w": i.to_string()}}));
    let mut versions: Vec<u64> = outcomes
        .iter()
        .map(|(i, status, body)| {
            assert_eq!(*status, 200, "writer {i}: {body}");
            body["data"]["version"]
                .as_u64()
                .unwrap_or_else(|| panic!("writer {i}: no version in {body}"))
        })
        .collect();
    versions.sort_unstable();
    let want: Vec<u64> = (1..=WRITERS as u64).collect();
    assert_eq!(versions, want, "each version number exactly once");

    // Each version holds the value of the writer that got that version.
    for (i, _, body) in &outcomes {
        let v = body["data"]["version"].as_u64().unwrap_or_default();
        let r = http.get(&format!("secret/data/{key}?version={v}"));
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            r.json["data"]["data"],
            json!({"w": i.to_string()}),
            "version {v} should hold writer {i}'s value"
        );
    }
    let md = http.get(&format!("secret/metadata/{key}"));
    assert_eq!(md.json["data"]["current_version"], json!(WRITERS));
}

/// `cas` parsing on the wire (sequential): numeric strings are accepted
/// (mapstructure weak decoding), -1 never matches, garbage is a parse error,
/// and failed writes do not create versions.
#[test]
fn cas_value_parsing() {
    let server = Server::dev_or_external();
    let http = server.http();
    let p = format!("secret/data/cas-parse-{}", uid());
    let post = |method: &str, body: Value| http.request(method, &p, Some(&body));

    let r = post("POST", json!({"options": {"cas": "0"}, "data": {"v": "1"}}));
    assert_eq!(
        (r.status, r.json["data"]["version"].clone()),
        (200, json!(1)),
        "cas \"0\": {}",
        r.text
    );
    let r = post("POST", json!({"options": {"cas": "1"}, "data": {"v": "2"}}));
    assert_eq!(
        (r.status, r.json["data"]["version"].clone()),
        (200, json!(2)),
        "cas \"1\": {}",
        r.text
    );
    let r = post("POST", json!({"options": {"cas": -1}, "data": {"v": "x"}}));
    assert_eq!(r.status, 400, "cas -1: {}", r.text);
    assert_eq!(r.errors(), [CAS_MISMATCH]);
    for bad in [json!("abc"), json!(1.5)] {
        let r = post("POST", json!({"options": {"cas": bad}, "data": {"v": "x"}}));
        assert_eq!(r.status, 400, "cas {bad}: {}", r.text);
        assert_eq!(
            r.errors(),
            ["error parsing check-and-set parameter"],
            "cas {bad}"
        );
    }
    // PUT is the same as POST.
    let r = post("PUT", json!({"options": {"cas": 2}, "data": {"v": "3"}}));
    assert_eq!(
        (r.status, r.json["data"]["version"].clone()),
        (200, json!(3)),
        "PUT cas 2: {}",
        r.text
    );
    let r = post("PUT", json!({"options": {"cas": 2}, "data": {"v": "x"}}));
    assert_eq!(r.status, 400, "PUT stale cas: {}", r.text);
    assert_eq!(r.errors(), [CAS_MISMATCH]);
    // Missing data.
    let r = post("POST", json!({"options": {"cas": 3}}));
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.errors(), ["no data provided"]);

    let cur = http.get(&p);
    assert_eq!(cur.json["data"]["data"], json!({"v": "3"}));
    assert_eq!(cur.json["data"]["metadata"]["version"], json!(3));
}
