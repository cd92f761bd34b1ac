//! Crash durability: SIGKILL the server in the middle of a write load,
//! restart on the same files, and check that every acknowledged (HTTP 200)
//! write is still there with its exact value, that a write in flight at the
//! kill is either fully there or not at all, and that SQLite's
//! `PRAGMA integrity_check` passes on the files the killed process left.
//!
//! `acknowledged_writes_survive_sigkill` runs `KVSEAL_CRASH_ROUNDS` rounds
//! (default 20) of 100-400 ms of load each; every round checks the keys
//! written in that round plus a sample of older ones, and the last round
//! checks every key ever acknowledged.
//! `sigterm_drains_and_keeps_acknowledged_writes` sends SIGTERM under load:
//! the server must exit by itself within `TERM_DEADLINE`, with status 0, and
//! every write acknowledged before it exited must be there after a restart.

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
/// Default number of SIGKILL rounds (`KVSEAL_CRASH_ROUNDS` overrides).
const ROUNDS: usize = 20;
/// Keys from earlier rounds re-checked in each intermediate round.
const SAMPLE_OLD: usize = 150;
/// How long a SIGTERMed server may take to exit.
const TERM_DEADLINE: Duration = Duration::from_secs(10);
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
    /// Last round that wrote this key.
    round: usize,
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

/// Reads `keys` (8 reader threads) and checks each against the model.
fn verify(server: &Server, model: &mut HashMap<String, KeyState>, keys: Vec<String>, round: usize) {
    let n_keys = keys.len();
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
    assert_eq!(results.len(), n_keys);

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

/// `PRAGMA integrity_check` (and a count of the secrets) on the database of a
/// stopped server, through a read-only connection (the crash state as the
/// killed process left it: WAL included, nothing checkpointed by the check).
fn integrity_check(server: &Server, when: &str) {
    let db = server.storage_dir().join("kvseal.db");
    let conn = rusqlite::Connection::open_with_flags(
        &db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap_or_else(|e| panic!("{when}: open {} read-only: {e}", db.display()));
    let rows: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut st| {
            st.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap_or_else(|e| panic!("{when}: PRAGMA integrity_check failed to run: {e}"));
    assert_eq!(
        rows,
        vec!["ok".to_string()],
        "{when}: PRAGMA integrity_check on {}",
        db.display()
    );
    let fk: Vec<String> = conn
        .prepare("PRAGMA foreign_key_check")
        .and_then(|mut st| {
            st.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap_or_else(|e| panic!("{when}: PRAGMA foreign_key_check failed to run: {e}"));
    assert!(fk.is_empty(), "{when}: foreign key violations in {fk:?}");
}

fn rounds() -> usize {
    std::env::var("KVSEAL_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ROUNDS)
}

/// Runs `WRITERS` writer threads against `server` until `stop` is set; the
/// caller stops the server (kill or TERM) and then sets `stop`.
fn start_writers(
    server: &Server,
    token: &str,
    round: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<thread::JoinHandle<ThreadLog>> {
    (0..WRITERS)
        .map(|t| {
            let (addr, token, stop) = (server.addr.clone(), token.to_string(), stop.clone());
            thread::spawn(move || writer(addr, token, round, t, stop))
        })
        .collect()
}

/// Folds the writer logs of one round into the model. Returns (acked, in flight).
fn record(
    logs: &[ThreadLog],
    model: &mut HashMap<String, KeyState>,
    round: usize,
    server: &Server,
) -> (usize, usize) {
    let mut acked_total = 0;
    let mut inflight_total = 0;
    for log in logs {
        assert!(
            log.bad.is_empty(),
            "round {round}: non-200 responses: {:?}\n{}",
            log.bad,
            server.logs()
        );
        for (k, v) in &log.acked {
            let st = model.entry(k.clone()).or_default();
            st.acked = Some(v.clone());
            st.maybe = None;
            st.acked_count += 1;
            st.round = round;
            acked_total += 1;
        }
        if let Some((k, v)) = &log.inflight {
            let st = model.entry(k.clone()).or_default();
            st.maybe = Some(v.clone());
            st.round = round;
            inflight_total += 1;
        }
    }
    (acked_total, inflight_total)
}

/// The state of a process from /proc: its state letter and, once it is a
/// zombie, its exit code in waitpid format (the field after `state` is at a
/// fixed position from the end of the line, after the `(comm)` field).
fn proc_state(pid: u32) -> Option<(char, i64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let exit_code = fields.last()?.parse().ok()?;
    Some((state, exit_code))
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let t_start = Instant::now();
    let rounds = rounds();
    let mut server = Server::config_mode();
    let token = server.init();
    let mut model: HashMap<String, KeyState> = HashMap::new();
    let mut rng = rand::thread_rng();

    let mut total_acked = 0;
    for round in 0..rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let hs = start_writers(&server, &token, round, &stop);
        let delay = rng.gen_range(100..=400);
        thread::sleep(Duration::from_millis(delay));
        let pid = server.pid();
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        let logs: Vec<ThreadLog> = hs
            .into_iter()
            .map(|h| h.join().expect("writer panicked"))
            .collect();
        let (acked, inflight) = record(&logs, &mut model, round, &server);
        total_acked += acked;
        eprintln!(
            "round {round}: killed pid {pid:?} after {delay} ms: {acked} acked, {inflight} in flight, {} keys total",
            model.len()
        );
        assert!(
            acked >= 10,
            "round {round}: only {acked} writes acknowledged in {delay} ms; the test needs load\n{}",
            server.logs()
        );

        // The files exactly as the killed process left them.
        integrity_check(&server, &format!("round {round}, after SIGKILL"));

        server.restart();
        // Same root token keeps working after the restart (file seal).
        let r = server.http().get("secret/config");
        assert_eq!(r.status, 200, "root token after restart: {}", r.text);
        let last = round + 1 == rounds;
        let keys: Vec<String> = if last {
            model.keys().cloned().collect()
        } else {
            // This round's keys, every overwritten key, and a sample of the rest.
            let mut keys: Vec<String> = model
                .iter()
                .filter(|(k, st)| st.round == round || k.contains("/ow-"))
                .map(|(k, _)| k.clone())
                .collect();
            let old: Vec<&String> = model
                .iter()
                .filter(|(k, st)| st.round != round && !k.contains("/ow-"))
                .map(|(k, _)| k)
                .collect();
            for _ in 0..SAMPLE_OLD.min(old.len()) {
                keys.push(old[rng.gen_range(0..old.len())].clone());
            }
            keys.sort();
            keys.dedup();
            keys
        };
        verify(&server, &mut model, keys, round);
    }
    server.kill9();
    integrity_check(&server, "after the last round");
    eprintln!(
        "crash durability: {rounds} SIGKILL rounds, {total_acked} acknowledged writes, {} keys checked at the end, total {:?}",
        model.len(),
        t_start.elapsed()
    );
}

#[test]
fn sigterm_drains_and_keeps_acknowledged_writes() {
    let t_start = Instant::now();
    let mut server = Server::config_mode();
    let token = server.init();
    let mut model: HashMap<String, KeyState> = HashMap::new();
    let round = 0;
    let stop = Arc::new(AtomicBool::new(false));
    let hs = start_writers(&server, &token, round, &stop);
    thread::sleep(Duration::from_millis(400));
    let pid = server.pid().expect("server running");
    let term_at = Instant::now();
    let st = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("run kill -TERM");
    assert!(st.success(), "kill -TERM {pid} failed");
    // Wait for the process to exit by itself (a zombie until reaped).
    let exit = loop {
        match proc_state(pid) {
            Some(('Z', code)) | Some(('X', code)) => break Some(code),
            None => break None,
            Some(_) => {}
        }
        if term_at.elapsed() > TERM_DEADLINE {
            stop.store(true, Ordering::Relaxed);
            panic!(
                "kvseal did not exit within {TERM_DEADLINE:?} of SIGTERM under load\n{}",
                server.logs()
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    let exit_after = term_at.elapsed();
    // Writers stop on their first failed request (the server stopped
    // accepting); give those still blocked on a request a moment to notice.
    stop.store(true, Ordering::Relaxed);
    let logs: Vec<ThreadLog> = hs
        .into_iter()
        .map(|h| h.join().expect("writer panicked"))
        .collect();
    let (acked, inflight) = record(&logs, &mut model, round, &server);
    eprintln!(
        "SIGTERM: exited after {exit_after:?} with wait status {exit:?}; {acked} acked, {inflight} failed/in flight"
    );
    assert!(
        acked >= 10,
        "only {acked} writes acknowledged; the test needs load"
    );
    if let Some(code) = exit {
        assert_eq!(
            code,
            0,
            "kvseal exited with wait status {code} on SIGTERM (0 = clean exit)\n{}",
            server.logs()
        );
    }
    // The server is gone: nothing may still accept connections on its port.
    assert!(
        common::raw_get_status(&server.host_port, "/v1/sys/health").is_none(),
        "something still answers on {} after the exit",
        server.host_port
    );
    integrity_check(&server, "after SIGTERM");
    server.restart();
    let keys: Vec<String> = model.keys().cloned().collect();
    verify(&server, &mut model, keys, round);
    server.kill9();
    eprintln!("SIGTERM test total {:?}", t_start.elapsed());
}
