//! Crash durability: SIGKILL the server in the middle of a write load,
//! restart on the same files, and check that every acknowledged (HTTP 200)
//! write is still there with its exact value.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{Http, Server};
use rand::Rng;
use serde_json::{json, Value};

const WRITERS: usize = 6;
const ROUNDS: usize = 3;
/// Overwritten keys per writer thread (each is owned by exactly one thread,
/// so its writes are totally ordered).
const OW_KEYS: usize = 4;

#[derive(Default, Debug)]
struct KeyState {
    /// Last acknowledged value.
    acked: Option<String>,
    /// Value of a write that was in flight when the server died and was
    /// issued after `acked` (it may or may not have been persisted).
    maybe: Option<String>,
    /// Number of acknowledged writes (lower bound for current_version).
    acked_count: u64,
}

#[derive(Default)]
struct ThreadLog {
    acked: Vec<(String, String)>,
    inflight: Option<(String, String)>,
    bad: Vec<String>,
}

fn pad_for(v: &str) -> String {
    // Value-dependent padding so pages and the WAL do some work: ~300 bytes,
    // or ~64 KiB for values ending in "-big" (spans many WAL frames).
    let target = if v.ends_with("-big") { 64 * 1024 } else { 300 };
    v.repeat(target / v.len().max(1) + 1)
}

fn body_for(v: &str) -> Value {
    json!({"data": {"v": v, "pad": pad_for(v)}})
}

fn writer(addr: String, token: String, round: usize, t: usize, stop: Arc<AtomicBool>) -> ThreadLog {
    let http = Http::new(&addr, &token);
    let mut log = ThreadLog::default();
    let mut seq = 0usize;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let val = if seq % 7 == 5 {
            format!("r{round}-t{t}-s{seq}-big")
        } else {
            format!("r{round}-t{t}-s{seq}")
        };
        let key = if seq.is_multiple_of(3) {
            format!("crash/ow-t{t}-{}", (seq / 3) % OW_KEYS)
        } else {
            format!("crash/d-r{round}-t{t}-{seq}")
        };
        match http.try_request("POST", &format!("secret/data/{key}"), Some(&body_for(&val))) {
            Ok((200, _)) => log.acked.push((key, val)),
            Ok((status, text)) => {
                // A killed process cannot answer, so any response must be 200.
                log.bad
                    .push(format!("POST secret/data/{key} -> {status} {text}"));
                break;
            }
            Err(_) => {
                log.inflight = Some((key, val));
                break;
            }
        }
    }
    log
}

/// Reads every key in the model (8 reader threads) and checks it.
fn verify(server: &Server, model: &mut HashMap<String, KeyState>, round: usize) {
    let keys: Vec<String> = model.keys().cloned().collect();
    let keys = Arc::new(keys);
    let next = Arc::new(AtomicUsize::new(0));
    let results: Arc<Mutex<Vec<(String, u16, Value)>>> = Arc::new(Mutex::new(Vec::new()));
    let mut hs = Vec::new();
    for _ in 0..8 {
        let http = server.http();
        let (keys, next, results) = (keys.clone(), next.clone(), results.clone());
        hs.push(thread::spawn(move || loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= keys.len() {
                break;
            }
            let k = &keys[i];
            let r = http.get(&format!("secret/data/{k}"));
            let mut v = r.json["data"].clone();
            if k.contains("/ow-") {
                let md = http.get(&format!("secret/metadata/{k}"));
                v["current_version"] = md.json["data"]["current_version"].clone();
            }
            results.lock().expect("lock").push((k.clone(), r.status, v));
        }));
    }
    for h in hs {
        h.join().expect("reader panicked");
    }
    let results = std::mem::take(&mut *results.lock().expect("lock"));
    assert_eq!(results.len(), model.len());

    let mut failures = Vec::new();
    for (k, status, data) in results {
        let st = model.get_mut(&k).expect("key in model");
        let got = data["data"]["v"].as_str().map(str::to_string);
        let ok_value = match (&st.acked, &st.maybe) {
            (Some(a), m) => {
                status == 200 && (got.as_deref() == Some(a.as_str()) || got.is_some() && got == *m)
            }
            (None, Some(m)) => {
                status == 404 || (status == 200 && got.as_deref() == Some(m.as_str()))
            }
            (None, None) => unreachable!("key without any write"),
        };
        if !ok_value {
            failures.push(format!(
                "round {round}: GET secret/data/{k}: expected {:?} (or in-flight {:?}), got {status} {}",
                st.acked, st.maybe, data
            ));
            continue;
        }
        if status == 200 {
            let want_pad = pad_for(got.as_deref().unwrap_or_default());
            if data["data"]["pad"].as_str() != Some(want_pad.as_str()) {
                failures.push(format!("round {round}: {k}: pad corrupted: {data}"));
            }
        }
        if k.contains("/ow-") {
            let cv = data["current_version"].as_u64().unwrap_or(0);
            let max = st.acked_count + u64::from(st.maybe.is_some());
            if cv < st.acked_count || cv > max {
                failures.push(format!(
                    "round {round}: {k}: current_version {cv}, expected {}..={max}",
                    st.acked_count
                ));
            }
            st.acked_count = cv;
        } else if status == 200 && data["metadata"]["version"] != json!(1) {
            failures.push(format!("round {round}: {k}: version != 1: {data}"));
        }
        // Resolve the in-flight write to what was actually persisted.
        if status == 200 {
            st.acked = got;
        }
        st.maybe = None;
    }
    model.retain(|_, s| s.acked.is_some());
    assert!(
        failures.is_empty(),
        "{} durability failures (showing up to 20):\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let t_start = Instant::now();
    let mut server = Server::config_mode();
    let token = server.init();
    let mut model: HashMap<String, KeyState> = HashMap::new();
    let mut rng = rand::thread_rng();

    for round in 0..ROUNDS {
        let stop = Arc::new(AtomicBool::new(false));
        let hs: Vec<_> = (0..WRITERS)
            .map(|t| {
                let (addr, token, stop) = (server.addr.clone(), token.clone(), stop.clone());
                thread::spawn(move || writer(addr, token, round, t, stop))
            })
            .collect();
        let delay = rng.gen_range(200..=800);
        thread::sleep(Duration::from_millis(delay));
        let pid = server.pid();
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        let logs: Vec<ThreadLog> = hs
            .into_iter()
            .map(|h| h.join().expect("writer panicked"))
            .collect();

        let mut acked_total = 0;
        let mut inflight_total = 0;
        for log in &logs {
            assert!(
                log.bad.is_empty(),
                "round {round}: non-200 responses before the kill: {:?}\n{}",
                log.bad,
                server.logs()
            );
            for (k, v) in &log.acked {
                let st = model.entry(k.clone()).or_default();
                st.acked = Some(v.clone());
                st.maybe = None;
                st.acked_count += 1;
                acked_total += 1;
            }
            if let Some((k, v)) = &log.inflight {
                model.entry(k.clone()).or_default().maybe = Some(v.clone());
                inflight_total += 1;
            }
        }
        eprintln!(
            "round {round}: killed pid {pid:?} after {delay} ms: {acked_total} acked, {inflight_total} in flight, {} keys total",
            model.len()
        );
        assert!(
            acked_total >= 10,
            "round {round}: only {acked_total} writes acknowledged in {delay} ms; the test needs load\n{}",
            server.logs()
        );

        server.restart();
        // Same root token keeps working after the restart (file seal).
        let r = server.http().get("secret/config");
        assert_eq!(r.status, 200, "root token after restart: {}", r.text);
        verify(&server, &mut model, round);
    }
    eprintln!("crash durability total {:?}", t_start.elapsed());
}
