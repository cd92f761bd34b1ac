//! kvseal-loadgen: a small closed-loop HTTP/1.1 load generator (hyper) used by `bench/run`.
//!
//! Each of `--conns` connections sends one request at a time over a keep-alive connection, as fast as
//! the server answers, for `--duration` seconds (after `--warmup` seconds that are not counted) or
//! until `--count` requests have been sent in all. A request is a read or a write: `--write-frac`
//! of them (spread exactly, not at random) are writes. Path and body templates may contain
//!   {k}  a key drawn uniformly at random from 0..--keys (per-connection xorshift),
//!   {n}  a unique number per request (a global counter starting at --start): distinct keys.
//! Prints one JSON object: counts, throughput, latency percentiles (all, reads, writes) in ms,
//! and the status codes of failures. Only loopback addresses are accepted.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[derive(Clone)]
struct Op {
    method: hyper::Method,
    path: String,
    body: Option<String>,
}

struct Cfg {
    addr: SocketAddr,
    host: String,
    conns: usize,
    duration: Option<Duration>,
    warmup: Duration,
    count: Option<u64>,
    headers: Vec<(String, String)>,
    read: Option<Op>,
    write: Option<Op>,
    write_frac: f64,
    keys: u64,
    threads: usize,
    start: u64,
}

#[derive(Default)]
struct ConnStats {
    read_lat: Vec<u32>,
    write_lat: Vec<u32>,
    ok: u64,
    failed: Vec<(u16, u64)>,
    io_errors: u64,
    first_error: Option<String>,
}

impl ConnStats {
    fn fail(&mut self, status: u16, detail: impl FnOnce() -> String) {
        match self.failed.iter_mut().find(|(s, _)| *s == status) {
            Some((_, c)) => *c += 1,
            None => self.failed.push((status, 1)),
        }
        if self.first_error.is_none() {
            self.first_error = Some(detail());
        }
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: kvseal-loadgen --addr 127.0.0.1:PORT --conns N (--duration S [--warmup S] | --count N)\n\
         \x20  [--header 'Name: value']... [--read 'METHOD /path/{{k}}'] [--write 'METHOD /path/{{n}}' --body JSON]\n\
         \x20  [--write-frac F] [--keys N] [--start N] [--threads N]"
    );
    std::process::exit(2)
}

fn parse_op(s: &str) -> Op {
    let (m, p) = s.split_once(' ').unwrap_or_else(|| usage());
    let method = hyper::Method::from_bytes(m.as_bytes()).unwrap_or_else(|_| usage());
    Op {
        method,
        path: p.to_string(),
        body: None,
    }
}

fn parse_args() -> Cfg {
    let mut args = std::env::args().skip(1);
    let mut addr = None;
    let mut conns = 1;
    let mut duration = None;
    let mut warmup = 0.0;
    let mut count = None;
    let mut headers = Vec::new();
    let mut read = None;
    let mut write: Option<Op> = None;
    let mut body = None;
    let mut write_frac = None;
    let mut keys = 1;
    let mut threads = 1;
    let mut start = 0;
    while let Some(a) = args.next() {
        let mut v = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--addr" => addr = Some(v()),
            "--conns" => conns = v().parse().unwrap_or_else(|_| usage()),
            "--duration" => duration = Some(v().parse::<f64>().unwrap_or_else(|_| usage())),
            "--warmup" => warmup = v().parse().unwrap_or_else(|_| usage()),
            "--count" => count = Some(v().parse().unwrap_or_else(|_| usage())),
            "--header" => {
                let h = v();
                let (n, val) = h.split_once(':').unwrap_or_else(|| usage());
                headers.push((n.trim().to_string(), val.trim().to_string()));
            }
            "--read" => read = Some(parse_op(&v())),
            "--write" => write = Some(parse_op(&v())),
            "--body" => body = Some(v()),
            "--write-frac" => write_frac = Some(v().parse().unwrap_or_else(|_| usage())),
            "--keys" => keys = v().parse().unwrap_or_else(|_| usage()),
            "--threads" => threads = v().parse().unwrap_or_else(|_| usage()),
            "--start" => start = v().parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    let addr_s = addr.unwrap_or_else(|| usage());
    let addr: SocketAddr = addr_s.parse().unwrap_or_else(|_| usage());
    // Safety: this tool only ever loads a server on this machine.
    if !addr.ip().is_loopback() {
        eprintln!("kvseal-loadgen: refusing non-loopback address {addr}");
        std::process::exit(2);
    }
    if let Some(w) = write.as_mut() {
        w.body = body;
    }
    let write_frac = write_frac.unwrap_or(match (&read, &write) {
        (None, Some(_)) => 1.0,
        _ => 0.0,
    });
    if (read.is_none() && write_frac < 1.0) || (write.is_none() && write_frac > 0.0) {
        usage();
    }
    if duration.is_none() && count.is_none() {
        usage();
    }
    Cfg {
        addr,
        host: addr_s,
        conns: conns.max(1),
        duration: duration.map(Duration::from_secs_f64),
        warmup: Duration::from_secs_f64(warmup),
        count,
        headers,
        read,
        write,
        write_frac,
        keys: keys.max(1),
        threads: threads.max(1),
        start,
    }
}

fn fill(template: &str, k: u64, n: u64) -> String {
    if !template.contains('{') {
        return template.to_string();
    }
    template
        .replace("{k}", &k.to_string())
        .replace("{n}", &n.to_string())
}

struct Xorshift(u64);
impl Xorshift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

async fn connect(
    cfg: &Cfg,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, String> {
    let stream = TcpStream::connect(cfg.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn run_conn(
    id: usize,
    cfg: Arc<Cfg>,
    counter: Arc<AtomicU64>,
    issued: Arc<AtomicU64>,
    t0: Instant,
) -> ConnStats {
    let mut st = ConnStats::default();
    let mut rng = Xorshift(0x9E37_79B9_7F4A_7C15 ^ ((id as u64 + 1) * 0x2545_F491_4F6C_DD1D));
    // Spread writes exactly: a per-connection accumulator, offset so that connections interleave.
    let mut acc = (id as f64 * 0.618_033_988_7).fract();
    let measure_from = t0 + cfg.warmup;
    let deadline = cfg.duration.map(|d| measure_from + d);
    let mut sender = None;
    loop {
        if let Some(dl) = deadline {
            if Instant::now() >= dl {
                break;
            }
        }
        if let Some(c) = cfg.count {
            if issued.fetch_add(1, Ordering::Relaxed) >= c {
                break;
            }
        }
        if sender.is_none() {
            match connect(&cfg).await {
                Ok(s) => sender = Some(s),
                Err(e) => {
                    st.io_errors += 1;
                    st.first_error.get_or_insert(e);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        acc += cfg.write_frac;
        let is_write = acc >= 1.0 - 1e-9;
        if is_write {
            acc -= 1.0;
        }
        let op = if is_write {
            cfg.write.as_ref()
        } else {
            cfg.read.as_ref()
        };
        let Some(op) = op else { break };
        let k = rng.next() % cfg.keys;
        let n = if op.path.contains("{n}") || op.body.as_deref().is_some_and(|b| b.contains("{n}")) {
            counter.fetch_add(1, Ordering::Relaxed)
        } else {
            0
        };
        let path = fill(&op.path, k, n);
        let body = op.body.as_deref().map(|b| fill(b, k, n)).unwrap_or_default();
        let mut rb = Request::builder()
            .method(op.method.clone())
            .uri(path.as_str())
            .header("host", cfg.host.as_str());
        for (h, v) in &cfg.headers {
            rb = rb.header(h.as_str(), v.as_str());
        }
        if !body.is_empty() {
            rb = rb.header("content-type", "application/json");
        }
        let req = match rb.body(Full::new(Bytes::from(body))) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("kvseal-loadgen: bad request {path}: {e}");
                std::process::exit(2);
            }
        };
        let s = sender.as_mut().expect("connected");
        if s.ready().await.is_err() {
            sender = None;
            st.io_errors += 1;
            continue;
        }
        let start = Instant::now();
        let res = s.send_request(req).await;
        let outcome = match res {
            Ok(resp) => {
                let status = resp.status();
                match resp.into_body().collect().await {
                    Ok(b) => Ok((status, b.to_bytes())),
                    Err(e) => Err(format!("body: {e}")),
                }
            }
            Err(e) => Err(format!("request: {e}")),
        };
        let end = Instant::now();
        if start < measure_from && cfg.duration.is_some() {
            if outcome.is_err() {
                sender = None;
            }
            continue; // warm-up
        }
        match outcome {
            Ok((status, body)) if status.is_success() => {
                st.ok += 1;
                let us = (end - start).as_micros().min(u32::MAX as u128) as u32;
                if is_write {
                    st.write_lat.push(us);
                } else {
                    st.read_lat.push(us);
                }
                let _ = body;
            }
            Ok((status, body)) => {
                st.fail(status.as_u16(), || {
                    format!(
                        "{} {} -> {}: {}",
                        op.method,
                        path,
                        status,
                        String::from_utf8_lossy(&body[..body.len().min(300)])
                    )
                });
            }
            Err(e) => {
                st.io_errors += 1;
                st.first_error.get_or_insert(format!("{} {}: {e}", op.method, path));
                sender = None;
            }
        }
    }
    st
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let idx = idx.clamp(1, sorted.len()) - 1;
    sorted[idx] as f64 / 1000.0
}

fn lat_json(name: &str, v: &mut [u32]) -> String {
    v.sort_unstable();
    let mean = if v.is_empty() {
        0.0
    } else {
        v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64 / 1000.0
    };
    format!(
        "\"{name}\":{{\"n\":{},\"mean_ms\":{:.3},\"p50_ms\":{:.3},\"p90_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3},\"max_ms\":{:.3}}}",
        v.len(),
        mean,
        pct(v, 50.0),
        pct(v, 90.0),
        pct(v, 99.0),
        pct(v, 99.9),
        v.last().map(|&x| x as f64 / 1000.0).unwrap_or(0.0)
    )
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn main() {
    let cfg = Arc::new(parse_args());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.threads)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let out = rt.block_on(async {
        let counter = Arc::new(AtomicU64::new(cfg.start));
        let issued = Arc::new(AtomicU64::new(0));
        let t0 = Instant::now();
        let handles: Vec<_> = (0..cfg.conns)
            .map(|i| {
                tokio::spawn(run_conn(
                    i,
                    cfg.clone(),
                    counter.clone(),
                    issued.clone(),
                    t0,
                ))
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            all.push(h.await.expect("connection task"));
        }
        let elapsed = match cfg.duration {
            Some(d) => d.as_secs_f64(),
            None => t0.elapsed().as_secs_f64(),
        };
        (all, elapsed)
    });
    let (all, elapsed) = out;
    let mut reads = Vec::new();
    let mut writes = Vec::new();
    let mut ok = 0;
    let mut io_errors = 0;
    let mut failed: Vec<(u16, u64)> = Vec::new();
    let mut first_error = None;
    for s in all {
        reads.extend_from_slice(&s.read_lat);
        writes.extend_from_slice(&s.write_lat);
        ok += s.ok;
        io_errors += s.io_errors;
        for (st, c) in s.failed {
            match failed.iter_mut().find(|(x, _)| *x == st) {
                Some((_, n)) => *n += c,
                None => failed.push((st, c)),
            }
        }
        if first_error.is_none() {
            first_error = s.first_error;
        }
    }
    let mut both: Vec<u32> = reads.iter().chain(writes.iter()).copied().collect();
    let nfail: u64 = failed.iter().map(|(_, c)| c).sum();
    let statuses = failed
        .iter()
        .map(|(s, c)| format!("\"{s}\":{c}"))
        .collect::<Vec<_>>()
        .join(",");
    println!(
        "{{\"ok\":{ok},\"failed\":{nfail},\"io_errors\":{io_errors},\"elapsed_s\":{elapsed:.3},\"rps\":{:.1},\"read_rps\":{:.1},\"write_rps\":{:.1},{},{},{},\"failed_status\":{{{statuses}}},\"first_error\":{}}}",
        ok as f64 / elapsed,
        reads.len() as f64 / elapsed,
        writes.len() as f64 / elapsed,
        lat_json("all", &mut both),
        lat_json("read", &mut reads),
        lat_json("write", &mut writes),
        first_error.as_deref().map(json_str).unwrap_or_else(|| "null".into()),
    );
}
