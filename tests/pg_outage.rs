//! PostgreSQL going away under a kvseal node, and coming back: the node answers 503 while the
//! database is down (never 500, never 429, each answer within 5 s), `sys/health` says 503, and the
//! node serves reads and writes again within 10 s of the database accepting connections, without
//! a restart. No write it acknowledged, before or after, is lost.
//!
//! Real processes: a PostgreSQL server of the test's own ([`PgCluster`]), stopped (`pg_ctl stop -m
//! fast`) or killed (SIGKILL to every PostgreSQL process), and one `kvseal server --config` under a
//! load of Vault KV writes, Vault KV reads and OKMS reads.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::pg::PgCluster;
use common::{uid, Http, Server};
use serde_json::{json, Value};

/// Every answer while the database is down comes within this.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// `sys/health` says 503 within this of the database going down.
const HEALTH_SEES_OUTAGE: Duration = Duration::from_secs(5);
/// The node serves again within this of the database accepting connections.
const RECOVERY: Duration = Duration::from_secs(10);
/// How long the database stays down.
const OUTAGE: Duration = Duration::from_secs(7);
/// Pause between two requests of one load thread.
const PACE: Duration = Duration::from_millis(20);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Outage {
    /// `pg_ctl stop -m fast`: connections closed by the server, clean shutdown.
    Stop,
    /// SIGKILL to the postmaster and every backend: connections die without a word.
    Kill9,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    KvWrite,
    KvRead,
    OkmsRead,
}

/// One request of the load: when it was sent, how long it took, what came back.
#[derive(Debug)]
struct Sample {
    kind: Kind,
    sent: Instant,
    took: Duration,
    /// The status, or the transport error.
    status: Result<u16, String>,
    body: String,
}

#[test]
fn postgresql_stopped_and_started_again_under_load() {
    outage_under_load(Outage::Stop);
}

#[test]
fn postgresql_killed_and_started_again_under_load() {
    outage_under_load(Outage::Kill9);
}

fn outage_under_load(outage: Outage) {
    let mut pg = PgCluster::start();
    let okms_id = uuid::Uuid::new_v4().to_string();
    let storage = format!("type = \"postgresql\"\nconnection_url = \"{}\"\n", pg.url());
    let tables = format!("[[okms.domains]]\nid = \"{okms_id}\"\nmount = \"secret\"\n");
    let mut node = Server::config_mode_storage(&storage, &tables, None, &[501]);
    let root = node.init();
    let http = node.http();

    // Secrets written before any outage: the readers read them all along.
    let prefix = format!("outage-{}", uid());
    let base: Vec<(String, Value)> = (0..8)
        .map(|i| {
            let key = format!("{prefix}/base/k{i}");
            let data = json!({"base": i});
            assert_eq!(http.put_secret("secret", &key, &data), 1);
            (key, data)
        })
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::new(Mutex::new(Vec::new()));
    // Writes answered 200 by the load: (key, data, when acknowledged).
    let acked: Arc<Mutex<Vec<(String, Value, Instant)>>> = Arc::new(Mutex::new(Vec::new()));

    let mut load = Vec::new();
    for kind in [Kind::KvWrite, Kind::KvRead, Kind::OkmsRead] {
        let (stop, samples, acked) = (stop.clone(), samples.clone(), acked.clone());
        let (addr, root, okms_id, prefix, base) = (
            node.addr.clone(),
            root.clone(),
            okms_id.clone(),
            prefix.clone(),
            base.clone(),
        );
        load.push(thread::spawn(move || {
            let client = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap();
            let mut i = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let (key, data) = &base[i % base.len()];
                let written = (format!("{prefix}/load/w{i}"), json!({"w": i}));
                let rb = match kind {
                    Kind::KvWrite => client
                        .post(format!("{addr}/v1/secret/data/{}", written.0))
                        .header("X-Vault-Token", &root)
                        .json(&json!({"data": written.1})),
                    Kind::KvRead => client
                        .get(format!("{addr}/v1/secret/data/{key}"))
                        .header("X-Vault-Token", &root),
                    Kind::OkmsRead => client
                        .get(format!(
                            "{addr}/api/{okms_id}/v2/secret/{}?includeData=true",
                            key.replace('/', "%2F")
                        ))
                        .bearer_auth(&root),
                };
                let sent = Instant::now();
                let (status, body) = match rb.send() {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        (Ok(status), r.text().unwrap_or_default())
                    }
                    Err(e) => (Err(e.to_string()), String::new()),
                };
                let took = sent.elapsed();
                if status == Ok(200) {
                    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                    match kind {
                        Kind::KvWrite => {
                            acked
                                .lock()
                                .unwrap()
                                .push((written.0, written.1, Instant::now()))
                        }
                        // A 200 read must be the right data.
                        Kind::KvRead => {
                            assert_eq!(&v["data"]["data"], data, "read {key}: {body}")
                        }
                        Kind::OkmsRead => {
                            assert_eq!(&v["version"]["data"], data, "OKMS read {key}: {body}")
                        }
                    }
                }
                samples.lock().unwrap().push(Sample {
                    kind,
                    sent,
                    took,
                    status,
                    body,
                });
                i += 1;
                thread::sleep(PACE);
            }
        }));
    }

    // The load runs on a healthy database first.
    thread::sleep(Duration::from_secs(1));
    for kind in [Kind::KvWrite, Kind::KvRead, Kind::OkmsRead] {
        let ok = samples
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.kind == kind && s.status == Ok(200))
            .count();
        assert!(
            ok > 0,
            "{kind:?}: no 200 before the outage\n{}",
            node.logs()
        );
    }

    // Down.
    match outage {
        Outage::Stop => pg.stop(),
        Outage::Kill9 => pg.kill9(),
    }
    let down = Instant::now();
    let health = Http::new(&node.addr, "");
    loop {
        let r = health.get("sys/health");
        assert_ne!(r.status, 500, "sys/health: {}", r.text);
        if r.status == 503 {
            break;
        }
        let last = (r.status, r.text);
        assert!(
            down.elapsed() < HEALTH_SEES_OUTAGE,
            "sys/health does not answer 503 {HEALTH_SEES_OUTAGE:?} after PostgreSQL went down \
             (last: {last:?})\n{}",
            node.logs()
        );
        thread::sleep(Duration::from_millis(50));
    }
    while down.elapsed() < OUTAGE {
        thread::sleep(Duration::from_millis(100));
    }
    let r = health.get("sys/health");
    assert_eq!(
        r.status, 503,
        "sys/health at the end of the outage: {}",
        r.text
    );

    // Up again: the same node (no restart) serves reads and writes within 10 s.
    let restart_sent = Instant::now();
    pg.start_again();
    let up = Instant::now();
    let probe_key = format!("{prefix}/after");
    loop {
        let w = http.try_request(
            "POST",
            &format!("secret/data/{probe_key}"),
            Some(&json!({"data": {"after": true}})),
        );
        let r = http.try_request("GET", &format!("secret/data/{}", base[0].0), None);
        if let (Ok((200, _)), Ok((200, _))) = (&w, &r) {
            break;
        }
        assert!(
            up.elapsed() < RECOVERY,
            "the node does not serve again {RECOVERY:?} after PostgreSQL accepts connections \
             (last: write {w:?}, read {r:?})\n{}",
            node.logs()
        );
        thread::sleep(Duration::from_millis(100));
    }
    let recovered = up.elapsed();
    // sys/health too (it may lag the requests by its own poll, within the same 10 s).
    loop {
        let r = health.get("sys/health");
        if r.status == 200 {
            break;
        }
        assert!(
            up.elapsed() < RECOVERY,
            "sys/health not 200 {RECOVERY:?} after PostgreSQL accepts connections: {} {}",
            r.status,
            r.text
        );
        thread::sleep(Duration::from_millis(50));
    }
    assert!(node.pid().is_some(), "the node was not restarted");

    // The load goes on a while on the recovered node.
    let resumed = Instant::now();
    thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::SeqCst);
    for h in load {
        h.join().unwrap();
    }

    let samples = samples.lock().unwrap();
    // Never a 500, never a 429, never a connection error: the node itself stays up throughout.
    for s in samples.iter() {
        match &s.status {
            Ok(500) | Ok(429) => panic!(
                "{:?} {:?} after the outage began: {:?} {}\n{}",
                s.kind,
                s.sent.checked_duration_since(down),
                s.status,
                s.body,
                node.logs()
            ),
            Err(e) => panic!("{:?}: no answer from the node: {e}", s.kind),
            Ok(_) => {}
        }
    }
    // Sent while the database was down: 503, and within 5 s.
    let during: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.sent >= down && s.sent < restart_sent)
        .collect();
    for s in &during {
        assert!(
            s.took < ANSWER_WITHIN,
            "{:?} sent {:?} into the outage took {:?}",
            s.kind,
            s.sent - down,
            s.took
        );
        if s.sent + s.took <= restart_sent {
            assert_eq!(
                s.status,
                Ok(503),
                "{:?} sent {:?} into the outage: {}",
                s.kind,
                s.sent - down,
                s.body
            );
        }
    }
    for kind in [Kind::KvWrite, Kind::KvRead, Kind::OkmsRead] {
        assert!(
            during.iter().any(|s| s.kind == kind && s.status == Ok(503)),
            "{kind:?}: no request was answered during the outage (the load stalled?)"
        );
    }
    let acked = acked.lock().unwrap();
    assert!(
        acked.iter().any(|a| a.2 < down),
        "no write acknowledged before the outage"
    );
    assert!(
        acked.iter().any(|a| a.2 > resumed),
        "no write acknowledged after recovery"
    );

    // Every acknowledged write reads back.
    let mut all: Vec<(String, Value)> = base.clone();
    all.extend(acked.iter().map(|a| (a.0.clone(), a.1.clone())));
    all.push((probe_key, json!({"after": true})));
    for (key, data) in &all {
        let r = http.get(&format!("secret/data/{key}"));
        assert_eq!(r.status, 200, "{key} after the outage: {}", r.text);
        assert_eq!(&r.json["data"]["data"], data, "{key} after the outage");
    }
    eprintln!(
        "{outage:?}: {} requests during the outage, recovered {recovered:?} after PostgreSQL \
         accepted connections, {} acknowledged writes read back",
        during.len(),
        all.len()
    );
}
