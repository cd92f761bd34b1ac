//! Security features of the real `kvseal` binary: HTTPS (`--dev-tls`) with vaultrs, the Shamir seal
//! lifecycle across a restart, keyring rotation + rewrap checked in the SQLite file, the file audit
//! device, and client-certificate identities (reqwest + rustls identity).
//!
//! Each test spawns its own server(s) on free ports in a private temp dir. Certificates for the
//! client-certificate test are made with the `openssl` CLI.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use tempfile::TempDir;

mod common;

use common::pki::{make_ca, make_leaf, tls_client};

const BIN: &str = env!("CARGO_BIN_EXE_kvseal");
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// The OKMS domain the config-mode servers of this file serve (backed by `secret/`).
const OKMS_D: &str = "0b5e6f8a-3c2d-4e1f-9a8b-7c6d5e4f3a2b";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local_addr")
        .port()
}

/// Minimal plain-HTTP GET returning the status code (None when there is no HTTP answer).
fn raw_get_status(host_port: &str, path: &str) -> Option<u16> {
    let addr = host_port.parse().ok()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.windows(2).any(|w| w == b"\r\n") {
                    break;
                }
            }
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let mut parts = text.lines().next()?.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// A kvseal process started by this file (killed on drop; logs printed if the test panics).
struct Proc {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
    args: Vec<String>,
    spawns: usize,
}

impl Proc {
    fn start(dir: &Path, port: u16, args: Vec<String>) -> Proc {
        let mut p = Proc {
            child: None,
            dir: dir.to_path_buf(),
            port,
            args,
            spawns: 0,
        };
        p.spawn();
        p
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none());
        self.spawns += 1;
        let n = self.spawns;
        let out = fs::File::create(self.dir.join(format!("stdout.{n}.log"))).expect("log");
        let err = fs::File::create(self.dir.join(format!("stderr.{n}.log"))).expect("log");
        let tmp = self.dir.join("tmp");
        fs::create_dir_all(&tmp).expect("mkdir tmp");
        let child = Command::new(BIN)
            .args(&self.args)
            // dev mode creates its storage under TMPDIR: keep it in our temp dir.
            .env("TMPDIR", &tmp)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));
        self.child = Some(child);
    }

    fn host_port(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn stdout(&self) -> String {
        fs::read_to_string(self.dir.join(format!("stdout.{}.log", self.spawns))).unwrap_or_default()
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        for n in 1..=self.spawns {
            for kind in ["stdout", "stderr"] {
                let t = fs::read_to_string(self.dir.join(format!("{kind}.{n}.log")))
                    .unwrap_or_default();
                let tail = if t.len() > 6000 {
                    t[t.len() - 6000..].to_string()
                } else {
                    t
                };
                s.push_str(&format!("----- kvseal {kind} (spawn {n}) -----\n{tail}\n"));
            }
        }
        s
    }

    fn assert_alive(&mut self) {
        if let Some(c) = self.child.as_mut() {
            if let Ok(Some(st)) = c.try_wait() {
                self.child = None;
                panic!("kvseal exited with {st}\n{}", self.logs());
            }
        }
    }

    /// Polls `probe` (returning the health status) until it is one of `accept`.
    fn wait_for(&mut self, accept: &[u16], mut probe: impl FnMut() -> Option<u16>) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = None;
        loop {
            self.assert_alive();
            last = probe().or(last);
            if last.is_some_and(|c| accept.contains(&c)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "kvseal not ready (last health {last:?}, want {accept:?})\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_plain(&mut self, accept: &[u16]) {
        let hp = self.host_port();
        self.wait_for(accept, || raw_get_status(&hp, "/v1/sys/health"));
    }

    /// SIGTERM (clean shutdown, so the SQLite WAL is checkpointed), then SIGKILL after 10 s.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = c.id();
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// A blocking client and helpers for status + JSON.
struct Api {
    client: reqwest::blocking::Client,
    base: String,
    token: String,
}

#[derive(Debug)]
struct Resp {
    status: u16,
    text: String,
    json: Value,
}

impl Api {
    fn new(base: &str, token: &str) -> Api {
        Api {
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            base: base.to_string(),
            token: token.to_string(),
        }
    }

    fn with_client(client: reqwest::blocking::Client, base: &str, token: &str) -> Api {
        Api {
            client,
            base: base.to_string(),
            token: token.to_string(),
        }
    }

    fn req(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let url = format!("{}/v1/{}", self.base, path);
        let mut rb = self.client.request(m, &url);
        if !self.token.is_empty() {
            rb = rb.header("X-Vault-Token", &self.token);
        }
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = rb
            .send()
            .unwrap_or_else(|e| panic!("{method} {url}: {e:?}"));
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp { status, text, json }
    }

    fn expect(&self, method: &str, path: &str, body: Option<&Value>, status: u16) -> Resp {
        let r = self.req(method, path, body);
        assert_eq!(
            r.status, status,
            "{method} /v1/{path} {body:?}: expected {status}, got {} {}",
            r.status, r.text
        );
        r
    }
}

fn write_config(dir: &Path, port: u16, extra: &str) -> PathBuf {
    let storage = dir.join("storage");
    fs::create_dir_all(&storage).expect("mkdir storage");
    let cfg = dir.join("kvseal.toml");
    let text = format!(
        "[listener]\naddress = \"127.0.0.1:{port}\"\n{extra}\n[storage]\npath = \"{}\"\n",
        storage.display()
    );
    fs::write(&cfg, text).expect("write config");
    cfg
}

fn config_args(cfg: &Path) -> Vec<String> {
    vec![
        "server".into(),
        "--config".into(),
        cfg.display().to_string(),
    ]
}

fn tempdir(prefix: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("tempdir")
}

// ------------------------------------------------------------------------------------------------
// 1. HTTPS with --dev-tls: vaultrs with the printed CA; plain HTTP on the TLS port fails.

#[test]
fn dev_tls_vaultrs_kv2_and_plain_http_answered_400() {
    let tmp = tempdir("kvseal-devtls-");
    let port = free_port();
    let mut p = Proc::start(
        tmp.path(),
        port,
        vec![
            "server".into(),
            "--dev".into(),
            "--dev-tls".into(),
            "--dev-root-token-id=root".into(),
            format!("--dev-listen-address=127.0.0.1:{port}"),
        ],
    );
    // The CA path is printed on stdout.
    let deadline = Instant::now() + READY_TIMEOUT;
    let ca_path = loop {
        p.assert_alive();
        let out = p.stdout();
        if let Some(line) = out
            .lines()
            .find(|l| l.trim().starts_with("CA certificate: "))
        {
            break PathBuf::from(line.trim().trim_start_matches("CA certificate: ").trim());
        }
        assert!(Instant::now() < deadline, "no CA line\n{}", p.logs());
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = p.stdout();
    assert!(
        out.contains(&format!("export VAULT_CACERT='{}'", ca_path.display())),
        "{out}"
    );
    assert!(
        out.contains(&format!("export VAULT_ADDR='https://127.0.0.1:{port}'")),
        "{out}"
    );
    let ca_pem = fs::read(&ca_path).expect("read CA");
    let ca = reqwest::Certificate::from_pem(&ca_pem).expect("CA pem");
    let https = reqwest::blocking::Client::builder()
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let base = format!("https://127.0.0.1:{port}");
    p.wait_for(&[200], || {
        https
            .get(format!("{base}/v1/sys/health"))
            .send()
            .ok()
            .map(|r| r.status().as_u16())
    });

    // vaultrs over HTTPS, trusting the printed CA.
    let settings = vaultrs::client::VaultClientSettingsBuilder::default()
        .address(&base)
        .token("root")
        .ca_certs(vec![ca_path.display().to_string()])
        .verify(true)
        .timeout(Some(Duration::from_secs(30)))
        .build()
        .expect("settings");
    let client = vaultrs::client::VaultClient::new(settings).expect("vaultrs client");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let data = json!({"user": "alice", "password": "tls-pa55"});
        let meta = vaultrs::kv2::set(&client, "secret", "tls/app", &data)
            .await
            .expect("kv2 set over https");
        assert_eq!(meta.version, 1);
        let back: Value = vaultrs::kv2::read(&client, "secret", "tls/app")
            .await
            .expect("kv2 read over https");
        assert_eq!(back, data);
        let meta = vaultrs::kv2::set(&client, "secret", "tls/app", &json!({"v": 2}))
            .await
            .expect("kv2 set v2");
        assert_eq!(meta.version, 2);
    });

    // vaultrs without the CA: the server certificate is not trusted.
    let untrusting = vaultrs::client::VaultClient::new(
        vaultrs::client::VaultClientSettingsBuilder::default()
            .address(&base)
            .token("root")
            .ca_certs(vec![])
            .verify(true)
            .timeout(Some(Duration::from_secs(10)))
            .build()
            .expect("settings"),
    )
    .expect("client");
    let e = rt
        .block_on(vaultrs::kv2::read::<Value>(
            &untrusting,
            "secret",
            "tls/app",
        ))
        .expect_err("an untrusted server certificate must fail");
    let dbg = format!("{e:?}").to_lowercase();
    assert!(
        dbg.contains("certificate") || dbg.contains("unknownissuer") || dbg.contains("tls"),
        "{dbg}"
    );

    // Plain HTTP to the TLS port gets Go's net/http answer (as Vault), then a close.
    assert_eq!(raw_get_status(&p.host_port(), "/v1/sys/health"), Some(400));
    let plain = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let r = plain
        .get(format!("http://127.0.0.1:{port}/v1/sys/health"))
        .send()
        .expect("plain HTTP to the TLS port is answered");
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(
        r.text().expect("body"),
        "Client sent an HTTP request to an HTTPS server.\n"
    );
    // ... and the server is still serving TLS afterwards.
    let r = https
        .get(format!("{base}/v1/sys/health"))
        .send()
        .expect("https after plain");
    assert_eq!(r.status().as_u16(), 200);
}

// ------------------------------------------------------------------------------------------------
// 2. The Shamir seal lifecycle through raw HTTP, across a restart.

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn shamir_init_unseal_seal_restart_unseal() {
    let tmp = tempdir("kvseal-shamir-");
    let port = free_port();
    let cfg = write_config(
        tmp.path(),
        port,
        &format!("tls_disable = true\n\n[seal]\ntype = \"shamir\"\n\n[[okms.domains]]\nid = \"{OKMS_D}\"\nmount = \"secret\"\n"),
    );
    let mut p = Proc::start(tmp.path(), port, config_args(&cfg));
    p.wait_plain(&[501]);
    let base = format!("http://127.0.0.1:{port}");
    let anon = Api::new(&base, "");

    let r = anon.expect("GET", "sys/init", None, 200);
    assert_eq!(r.json, json!({"initialized": false}));
    let r = anon.expect("GET", "sys/health", None, 501);
    assert_eq!(r.json["initialized"], false);
    assert_eq!(r.json["sealed"], true);

    // Invalid configurations are refused.
    let r = anon.expect(
        "PUT",
        "sys/init",
        Some(&json!({"secret_shares": 3, "secret_threshold": 4})),
        400,
    );
    assert!(r.text.contains("secret_threshold"), "{}", r.text);
    let r = anon.expect(
        "PUT",
        "sys/init",
        Some(&json!({"secret_shares": 5, "secret_threshold": 1})),
        400,
    );
    assert!(r.text.contains("threshold"), "{}", r.text);

    let r = anon.expect(
        "PUT",
        "sys/init",
        Some(&json!({"secret_shares": 5, "secret_threshold": 3})),
        200,
    );
    let hex: Vec<String> = r.json["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k.as_str().expect("str").to_string())
        .collect();
    let b64: Vec<String> = r.json["keys_base64"]
        .as_array()
        .expect("keys_base64")
        .iter()
        .map(|k| k.as_str().expect("str").to_string())
        .collect();
    let root = r.json["root_token"]
        .as_str()
        .expect("root_token")
        .to_string();
    assert_eq!(hex.len(), 5);
    assert_eq!(b64.len(), 5);
    assert!(!root.is_empty());
    for (h, b) in hex.iter().zip(&b64) {
        assert!(h.bytes().all(|c| c.is_ascii_hexdigit()), "{h}");
        assert_eq!(
            hex_decode(h),
            base64::engine::general_purpose::STANDARD
                .decode(b)
                .expect("b64"),
            "hex and base64 shares differ"
        );
    }
    let mut uniq = hex.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), 5, "shares must be distinct");

    // Initialised but sealed: 503 except the seal endpoints.
    anon.expect(
        "PUT",
        "sys/init",
        Some(&json!({"secret_shares": 5, "secret_threshold": 3})),
        400,
    );
    let r = anon.expect("GET", "sys/health", None, 503);
    assert_eq!(
        (r.json["initialized"].clone(), r.json["sealed"].clone()),
        (json!(true), json!(true))
    );
    let st = anon.expect("GET", "sys/seal-status", None, 200).json;
    assert_eq!(st["type"], "shamir");
    assert_eq!(st["sealed"], true);
    assert_eq!(st["t"], 3);
    assert_eq!(st["n"], 5);
    assert_eq!(st["progress"], 0);
    let rooted = Api::new(&base, &root);
    rooted.expect("GET", "secret/data/life", None, 503);
    rooted.expect(
        "POST",
        "secret/data/life",
        Some(&json!({"data": {"v": "x"}})),
        503,
    );
    rooted.expect("GET", "sys/mounts", None, 503);
    let okms_sealed = |tok: &str| {
        let r = reqwest::blocking::Client::new()
            .get(format!("{base}/api/{OKMS_D}/v2/secret"))
            .bearer_auth(tok)
            .send()
            .expect("okms");
        let status = r.status().as_u16();
        let b: Value = r.json().unwrap_or(Value::Null);
        (status, b)
    };
    let (s, b) = okms_sealed(&root);
    assert_eq!(s, 503, "OKMS while sealed: {b}");
    assert_eq!(
        (b["error_code"].as_i64().expect("error_code") >> 12) & 0xf,
        7,
        "{b}"
    );

    // Progress, a repeated share (hex then base64 of the same share), reset.
    let unseal = |key: &str| {
        anon.expect("PUT", "sys/unseal", Some(&json!({"key": key})), 200)
            .json
    };
    let s = unseal(&hex[0]);
    assert_eq!(
        (s["sealed"].clone(), s["progress"].clone()),
        (json!(true), json!(1))
    );
    let s = unseal(&b64[0]);
    assert_eq!(
        s["progress"], 1,
        "the same share twice must count once: {s}"
    );
    let s = anon
        .expect("PUT", "sys/unseal", Some(&json!({"reset": true})), 200)
        .json;
    assert_eq!(
        (s["sealed"].clone(), s["progress"].clone()),
        (json!(true), json!(0))
    );
    let r = anon.expect(
        "PUT",
        "sys/unseal",
        Some(&json!({"key": "not a key!"})),
        400,
    );
    assert!(
        !r.json["errors"].as_array().expect("errors").is_empty(),
        "{}",
        r.text
    );
    anon.expect("PUT", "sys/unseal", Some(&json!({})), 400);

    // A corrupted share among three: refused, still sealed, progress reset.
    let mut bad = hex_decode(&hex[2]);
    let last = bad.len() - 1;
    bad[last] ^= 0x5a;
    let bad_hex: String = bad.iter().map(|b| format!("{b:02x}")).collect();
    unseal(&hex[0]);
    unseal(&hex[1]);
    let r = anon.expect("PUT", "sys/unseal", Some(&json!({"key": bad_hex})), 400);
    assert!(r.text.contains("unseal"), "{}", r.text);
    let st = anon.expect("GET", "sys/seal-status", None, 200).json;
    assert_eq!(
        (st["sealed"].clone(), st["progress"].clone()),
        (json!(true), json!(0))
    );

    // Unseal with 3 shares, mixing hex and base64.
    assert_eq!(unseal(&hex[0])["progress"], 1);
    assert_eq!(unseal(&b64[1])["progress"], 2);
    let s = unseal(&hex[2]);
    assert_eq!(s["sealed"], false, "{s}");
    assert_eq!(s["progress"], 0);
    anon.expect("GET", "sys/health", None, 200);
    // Unsealing again is harmless.
    assert_eq!(unseal(&hex[3])["sealed"], false);

    let r = rooted.expect(
        "POST",
        "secret/data/life",
        Some(&json!({"data": {"v": "one"}})),
        200,
    );
    assert_eq!(r.json["data"]["version"], 1);
    let r = rooted.expect(
        "POST",
        "secret/data/life",
        Some(&json!({"data": {"v": "two"}})),
        200,
    );
    assert_eq!(r.json["data"]["version"], 2);

    // Sealing needs a token with sudo.
    anon.expect("PUT", "sys/seal", Some(&json!({})), 403);
    rooted.expect("PUT", "sys/seal", Some(&json!({})), 204);
    anon.expect("GET", "sys/health", None, 503);
    let r = rooted.expect("GET", "secret/data/life", None, 503);
    assert!(r.text.to_lowercase().contains("sealed"), "{}", r.text);
    assert_eq!(
        anon.expect("GET", "sys/seal-status", None, 200).json["sealed"],
        true
    );

    // Restart on the same files: sealed again; three other shares open it; data intact.
    p.restart();
    p.wait_plain(&[503]);
    let st = anon.expect("GET", "sys/seal-status", None, 200).json;
    assert_eq!(st["sealed"], true);
    assert_eq!(st["initialized"], true);
    assert_eq!(
        (st["t"].clone(), st["n"].clone(), st["progress"].clone()),
        (json!(3), json!(5), json!(0))
    );
    rooted.expect("GET", "secret/data/life", None, 503);
    assert_eq!(unseal(&b64[4])["progress"], 1);
    assert_eq!(unseal(&hex[3])["progress"], 2);
    let s = unseal(&b64[1]);
    assert_eq!(s["sealed"], false, "{s}");
    anon.expect("GET", "sys/health", None, 200);
    let r = rooted.expect("GET", "secret/data/life", None, 200);
    assert_eq!(r.json["data"]["data"], json!({"v": "two"}));
    assert_eq!(r.json["data"]["metadata"]["version"], 2);
    let r = rooted.expect("GET", "secret/data/life?version=1", None, 200);
    assert_eq!(r.json["data"]["data"], json!({"v": "one"}));
    let (s, b) = okms_sealed(&root);
    assert_eq!(s, 200, "OKMS after unseal: {b}");
    assert!(
        b.as_array()
            .is_some_and(|a| a.iter().any(|x| x["path"] == "life")),
        "{b}"
    );
}

// ------------------------------------------------------------------------------------------------
// 3. Keyring rotation and rewrap, verified in the database file.

fn file_seal_server(prefix: &str) -> (TempDir, Proc, String) {
    let tmp = tempdir(prefix);
    let port = free_port();
    let key = tmp.path().join("seal.key");
    let cfg = write_config(
        tmp.path(),
        port,
        &format!(
            "tls_disable = true\n\n[seal]\ntype = \"file\"\nkey_file = \"{}\"\n\n[audit]\nallowed_dir = \"{}\"\n\n[[okms.domains]]\nid = \"{OKMS_D}\"\nmount = \"secret\"\n",
            key.display(),
            tmp.path().join("audit").display()
        ),
    );
    let mut p = Proc::start(tmp.path(), port, config_args(&cfg));
    p.wait_plain(&[501]);
    let base = format!("http://127.0.0.1:{port}");
    let r = Api::new(&base, "").expect(
        "PUT",
        "sys/init",
        Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
        200,
    );
    let root = r.json["root_token"]
        .as_str()
        .expect("root_token")
        .to_string();
    assert_eq!(
        r.json["keys"],
        json!([]),
        "the file seal hands out no shares"
    );
    p.wait_plain(&[200]);
    (tmp, p, root)
}

fn key_ids(db: &Path) -> Vec<(i64, i64)> {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open db");
    let mut st = c
        .prepare("SELECT key_id, COUNT(*) FROM versions WHERE ciphertext IS NOT NULL GROUP BY key_id ORDER BY key_id")
        .expect("prepare");
    st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect()
}

#[test]
fn rotate_rewrap_and_reopen() {
    let (tmp, mut p, root) = file_seal_server("kvseal-rotate-");
    let api = Api::new(&format!("http://127.0.0.1:{}", p.port), &root);

    let ks = api.expect("GET", "sys/key-status", None, 200).json;
    assert_eq!(ks["data"]["term"], 1, "{ks}");
    let mut expected: Vec<(String, u64, Value)> = Vec::new();
    for i in 1..=3u64 {
        let d = json!({"n": i, "s": format!("before-rotate-{i}")});
        let r = api.expect("POST", "secret/data/rot/a", Some(&json!({"data": d})), 200);
        assert_eq!(r.json["data"]["version"], i);
        expected.push(("rot/a".into(), i, d));
    }
    let d = json!({"other": "before"});
    api.expect("POST", "secret/data/rot/b", Some(&json!({"data": d})), 200);
    expected.push(("rot/b".into(), 1, d));

    // Only a sudo token may rotate.
    api.expect("PUT", "sys/rotate", Some(&json!({})), 204);
    let ks = api.expect("GET", "sys/key-status", None, 200).json;
    assert_eq!(ks["data"]["term"], 2, "{ks}");
    assert!(
        ks["data"]["install_time"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{ks}"
    );

    for i in 4..=5u64 {
        let d = json!({"n": i, "s": format!("after-rotate-{i}")});
        let r = api.expect("POST", "secret/data/rot/a", Some(&json!({"data": d})), 200);
        assert_eq!(r.json["data"]["version"], i);
        expected.push(("rot/a".into(), i, d));
    }
    // Old versions still read (opened with term 1).
    let r = api.expect("GET", "secret/data/rot/a?version=1", None, 200);
    assert_eq!(r.json["data"]["data"], expected[0].2);

    let st = api.expect("GET", "sys/rewrap", None, 200).json;
    // Every record sealed under term 1: versions 1-3 of rot/a and 1 of rot/b, rot/b's key record
    // (rot/a's was re-sealed by the writes after the rotation), and the root token's entry.
    assert_eq!(st["data"]["remaining"], 6, "records under term 1: {st}");
    assert_eq!(st["data"]["running"], false);

    let r = api.expect("PUT", "sys/rewrap", Some(&json!({})), 200).json;
    assert_eq!(r["data"]["started"], true, "{r}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let last = loop {
        let st = api.expect("GET", "sys/rewrap", None, 200).json;
        if st["data"]["running"] == false && st["data"]["remaining"] == 0 {
            break st;
        }
        assert!(Instant::now() < deadline, "rewrap did not finish: {st}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(last["data"]["rewrapped"], 6, "{last}");

    // Rotate the root key too: the keyring is re-sealed; the key file must still open it.
    api.expect("PUT", "sys/rotate/root", Some(&json!({})), 204);
    assert_eq!(
        api.expect("GET", "sys/key-status", None, 200).json["data"]["term"],
        2
    );

    p.stop();
    let db = tmp.path().join("storage").join("kvseal.db");
    assert_eq!(
        key_ids(&db),
        vec![(2, 6)],
        "every version must be under term 2"
    );

    p.spawn();
    p.wait_plain(&[200]);
    for (path, v, d) in &expected {
        let r = api.expect("GET", &format!("secret/data/{path}?version={v}"), None, 200);
        assert_eq!(&r.json["data"]["data"], d, "{path} v{v}");
    }
    let ks = api.expect("GET", "sys/key-status", None, 200).json;
    assert_eq!(ks["data"]["term"], 2);
    let st = api.expect("GET", "sys/rewrap", None, 200).json;
    assert_eq!(st["data"]["remaining"], 0);
    // New writes after restart use term 2 as well.
    api.expect(
        "POST",
        "secret/data/rot/c",
        Some(&json!({"data": {"x": "y"}})),
        200,
    );
    p.stop();
    assert_eq!(key_ids(&db), vec![(2, 7)]);
}

// ------------------------------------------------------------------------------------------------
// 4. The file audit device.

#[test]
fn audit_log_hashes_secrets_and_fails_closed() {
    let (tmp, p, root) = file_seal_server("kvseal-audit-");
    let api = Api::new(&format!("http://127.0.0.1:{}", p.port), &root);
    let log_dir = tmp.path().join("audit");
    fs::create_dir_all(&log_dir).expect("mkdir audit");
    let log = log_dir.join("audit.log");

    // A relative path / unknown type / raw logging are refused.
    api.expect(
        "PUT",
        "sys/audit/bad",
        Some(&json!({"type": "syslog", "options": {}})),
        400,
    );
    let r = api.req(
        "PUT",
        "sys/audit/raw",
        Some(&json!({"type": "file", "options": {"file_path": log.display().to_string(), "log_raw": "true"}})),
    );
    assert_eq!(r.status, 400, "log_raw must be refused: {}", r.text);

    api.expect(
        "PUT",
        "sys/audit/file1",
        Some(&json!({"type": "file", "options": {"file_path": log.display().to_string()}})),
        204,
    );
    let r = api.expect("GET", "sys/audit", None, 200);
    assert_eq!(r.json["data"]["file1/"]["type"], "file", "{}", r.text);

    let marker = format!("audit-marker-{}", uuid::Uuid::new_v4().simple());
    let r = api.expect(
        "POST",
        "secret/data/aud",
        Some(&json!({"data": {"password": marker}})),
        200,
    );
    assert_eq!(r.json["data"]["version"], 1);
    let r = api.expect("GET", "secret/data/aud", None, 200);
    assert_eq!(r.json["data"]["data"]["password"], marker.as_str());

    let text = fs::read_to_string(&log).expect("read audit log");
    assert!(
        !text.contains(&marker),
        "the secret value is in the audit log"
    );
    assert!(!text.contains(&root), "the token is in the audit log");
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l}: {e}")))
        .collect();
    let of = |kind: &str, op: &str| -> Vec<&Value> {
        entries
            .iter()
            .filter(|e| {
                e["type"] == kind
                    && e["request"]["path"] == "secret/data/aud"
                    && e["request"]["operation"] == op
            })
            .collect()
    };
    // POST is written as "post"/"update" depending on the implementation's naming: accept either.
    let write_req: Vec<&Value> = ["post", "update", "create"]
        .iter()
        .flat_map(|op| of("request", op))
        .collect();
    let write_resp: Vec<&Value> = ["post", "update", "create"]
        .iter()
        .flat_map(|op| of("response", op))
        .collect();
    let read_req: Vec<&Value> = ["get", "read"]
        .iter()
        .flat_map(|op| of("request", op))
        .collect();
    let read_resp: Vec<&Value> = ["get", "read"]
        .iter()
        .flat_map(|op| of("response", op))
        .collect();
    assert_eq!(write_req.len(), 1, "write request entries:\n{text}");
    assert_eq!(write_resp.len(), 1, "write response entries:\n{text}");
    assert_eq!(read_req.len(), 1, "read request entries:\n{text}");
    assert_eq!(read_resp.len(), 1, "read response entries:\n{text}");

    let hash = |input: &str| -> String {
        let r = api.expect(
            "POST",
            "sys/audit-hash/file1",
            Some(&json!({"input": input})),
            200,
        );
        r.json["data"]["hash"].as_str().expect("hash").to_string()
    };
    let marker_hash = hash(&marker);
    assert!(marker_hash.starts_with("hmac-sha256:"), "{marker_hash}");
    assert_eq!(marker_hash.len(), "hmac-sha256:".len() + 64);
    assert_eq!(
        write_req[0]["request"]["data"]["data"]["password"], marker_hash,
        "{}",
        write_req[0]
    );
    assert_eq!(
        read_resp[0]["response"]["data"]["data"]["data"]["password"], marker_hash,
        "{}",
        read_resp[0]
    );
    assert_eq!(read_resp[0]["response"]["status"], 200);
    let token_hash = hash(&root);
    assert_eq!(write_req[0]["auth"]["client_token"], token_hash);
    assert_eq!(write_req[0]["request"]["client_token"], token_hash);
    assert_eq!(read_req[0]["request"]["id"], read_resp[0]["request"]["id"]);
    // Unknown device.
    api.expect(
        "POST",
        "sys/audit-hash/nope",
        Some(&json!({"input": "x"})),
        400,
    );

    // A bogus token is hashed too, and the log file is private.
    let bogus = format!("hvs.bogus-{}", uuid::Uuid::new_v4().simple());
    let r = Api::new(&format!("http://127.0.0.1:{}", p.port), &bogus).req(
        "GET",
        "secret/data/aud",
        None,
    );
    assert_eq!(r.status, 403, "{}", r.text);
    let text = fs::read_to_string(&log).expect("read audit log");
    assert!(
        !text.contains(&bogus),
        "an invalid token is in the audit log"
    );
    assert!(
        text.contains(&hash(&bogus)),
        "the invalid token's hash is not logged"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&log).expect("stat log").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "audit log mode {mode:o}");
    }

    // The OKMS API is audited too, with the same hashing.
    let okms_marker = format!("okms-marker-{}", uuid::Uuid::new_v4().simple());
    let r = reqwest::blocking::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/api/{OKMS_D}/v2/secret",
            p.port
        ))
        .bearer_auth(&root)
        .json(&json!({"path": "aud-okms", "version": {"data": {"pw": okms_marker}}}))
        .send()
        .expect("okms post");
    assert_eq!(r.status().as_u16(), 200);
    let text = fs::read_to_string(&log).expect("read audit log");
    assert!(
        !text.contains(&okms_marker),
        "OKMS secret value in the audit log"
    );
    assert!(!text.contains(&root), "token in the audit log");
    let okms_path = format!("/api/{OKMS_D}/v2/secret");
    let okms_entries: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| {
            e["request"]["path"]
                .as_str()
                .is_some_and(|x| x.ends_with(&okms_path))
        })
        .collect();
    assert_eq!(
        okms_entries.len(),
        2,
        "OKMS request + response entries:\n{text}"
    );
    let okms_req = okms_entries
        .iter()
        .find(|e| e["type"] == "request")
        .expect("OKMS request entry");
    assert_eq!(
        okms_req["request"]["data"]["version"]["data"]["pw"],
        hash(&okms_marker),
        "{okms_req}"
    );
    assert_eq!(okms_req["auth"]["client_token"], token_hash);

    // The log cannot be written: requests are refused with 500.
    fs::remove_dir_all(&log_dir).expect("rm audit dir");
    let r = api.expect("GET", "secret/data/aud", None, 500);
    assert!(r.text.contains("audit"), "{}", r.text);
    let r = api.req(
        "POST",
        "secret/data/aud",
        Some(&json!({"data": {"password": "unaudited"}})),
    );
    assert_eq!(r.status, 500, "{}", r.text);
    // ... and the refused write did not happen.
    fs::create_dir_all(&log_dir).expect("mkdir audit again");
    let r = api.expect("GET", "secret/data/aud", None, 200);
    assert_eq!(r.json["data"]["metadata"]["version"], 1, "{}", r.text);
    assert_eq!(r.json["data"]["data"]["password"], marker.as_str());
    let text = fs::read_to_string(&log).expect("recreated log");
    assert!(!text.contains(&marker));

    // The device is kept across a restart: still logging, with the same salt.
    let mut p = p;
    p.restart();
    p.wait_plain(&[200]);
    let api = Api::new(&format!("http://127.0.0.1:{}", p.port), &root);
    let before = fs::read_to_string(&log).expect("log").lines().count();
    api.expect("GET", "secret/data/aud", None, 200);
    let after = fs::read_to_string(&log).expect("log").lines().count();
    assert_eq!(after, before + 2, "request + response after restart");
    let r = api.expect("GET", "sys/audit", None, 200);
    assert_eq!(
        r.json["data"]["file1/"]["options"]["file_path"],
        log.display().to_string()
    );
    let h = api
        .expect(
            "POST",
            "sys/audit-hash/file1",
            Some(&json!({"input": marker})),
            200,
        )
        .json["data"]["hash"]
        .clone();
    assert_eq!(h, marker_hash, "the device's salt must survive a restart");

    // Disabling the device stops the logging.
    api.expect("DELETE", "sys/audit/file1", None, 204);
    fs::remove_dir_all(&log_dir).expect("rm audit dir");
    api.expect("GET", "secret/data/aud", None, 200);
    drop(p);
}

// ------------------------------------------------------------------------------------------------
// 5. Client certificates from Rust (reqwest with a rustls identity): auth/cert/login and OKMS.

fn client_ext(domain: Option<&str>) -> String {
    let mut s = String::from(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    );
    if let Some(d) = domain {
        s.push_str(&format!(
            "subjectAltName=otherName:1.3.6.1.4.1.311.20.2.3;UTF8:okms.domain:{d}\n"
        ));
    }
    s
}

/// Returns the process, the base URL and the root token.
fn mtls_server(dir: &Path, d1: &str, d2: &str) -> (Proc, String, String) {
    make_leaf(
        dir,
        "ca",
        "server",
        "/CN=localhost",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
        "0x1001",
    );
    let port = free_port();
    let key = dir.join("seal.key");
    let extra = format!(
        "tls_cert_file = \"{d}/server.pem\"\ntls_key_file = \"{d}/server-key.pem\"\n\
         tls_client_ca_file = \"{d}/ca.pem\"\n\n\
         [seal]\ntype = \"file\"\nkey_file = \"{k}\"\n\n\
         [[okms.domains]]\nid = \"{d1}\"\nmount = \"secret\"\n\n\
         [[okms.domains]]\nid = \"{d2}\"\nmount = \"secret\"\n\n\
         [[auth.cert]]\nname = \"app1\"\nsubject = \"CN=app1\"\npolicies = [\"app\"]\nttl = \"1h\"\n",
        d = dir.display(),
        k = key.display()
    );
    // [storage] must come after the listener keys; write_config appends it, so put the rest
    // of the tables before it by writing the file by hand.
    let storage = dir.join("storage");
    fs::create_dir_all(&storage).expect("storage");
    let cfg = dir.join("kvseal.toml");
    fs::write(
        &cfg,
        format!(
            "[storage]\npath = \"{}\"\n\n[listener]\naddress = \"127.0.0.1:{port}\"\n{extra}",
            storage.display()
        ),
    )
    .expect("config");
    let mut p = Proc::start(dir, port, config_args(&cfg));
    let base = format!("https://127.0.0.1:{port}");
    let anon_client = tls_client(dir, None);
    p.wait_for(&[501], || {
        anon_client
            .get(format!("{base}/v1/sys/health"))
            .send()
            .ok()
            .map(|r| r.status().as_u16())
    });
    let r = Api::with_client(anon_client, &base, "").expect(
        "PUT",
        "sys/init",
        Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
        200,
    );
    let root = r.json["root_token"].as_str().expect("root").to_string();
    (p, base, root)
}

#[test]
fn client_certificates_login_and_okms_from_rust() {
    let tmp = tempdir("kvseal-mtls-");
    let dir = tmp.path();
    let d1 = "11111111-2222-4333-8444-555555555555";
    let d2 = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
    make_ca(dir, "ca");
    make_ca(dir, "evil");
    make_leaf(
        dir,
        "ca",
        "app1",
        "/CN=app1",
        &client_ext(Some(d1)),
        "0x2001",
    );
    make_leaf(
        dir,
        "ca",
        "nobody",
        "/CN=nobody",
        &client_ext(None),
        "0x2002",
    );
    make_leaf(
        dir,
        "evil",
        "evil-app1",
        "/CN=app1",
        &client_ext(Some(d1)),
        "0x3001",
    );
    let (mut p, base, root) = mtls_server(dir, d1, d2);
    let anon = Api::with_client(tls_client(dir, None), &base, "");
    let rooted = Api::with_client(tls_client(dir, None), &base, &root);
    rooted.expect(
        "PUT",
        "sys/policies/acl/app",
        Some(&json!({"policy": "path \"secret/data/*\" { capabilities = [\"create\",\"read\",\"update\"] }\npath \"secret/metadata/*\" { capabilities = [\"read\",\"list\"] }"})),
        204,
    );

    // auth/cert/login with the app1 certificate.
    let app1 = Api::with_client(tls_client(dir, Some("app1")), &base, "");
    let r = app1.expect("POST", "auth/cert/login", Some(&json!({})), 200);
    let tok = r.json["auth"]["client_token"]
        .as_str()
        .expect("token")
        .to_string();
    assert_eq!(
        r.json["auth"]["policies"],
        json!(["app", "default"]),
        "{}",
        r.text
    );
    assert_eq!(r.json["auth"]["lease_duration"], 3600, "{}", r.text);
    assert_eq!(r.json["auth"]["metadata"]["cert_name"], "app1");
    let r = app1.expect(
        "POST",
        "auth/cert/login",
        Some(&json!({"name": "app1"})),
        200,
    );
    assert!(r.json["auth"]["client_token"]
        .as_str()
        .is_some_and(|t| t != tok));
    app1.expect(
        "POST",
        "auth/cert/login",
        Some(&json!({"name": "other"})),
        400,
    );
    // No certificate, or a trusted one that matches no identity: no login.
    anon.expect("POST", "auth/cert/login", Some(&json!({})), 400);
    let nobody = Api::with_client(tls_client(dir, Some("nobody")), &base, "");
    nobody.expect("POST", "auth/cert/login", Some(&json!({})), 400);

    let app_tok = Api::with_client(tls_client(dir, None), &base, &tok);
    let r = app_tok.expect("GET", "auth/token/lookup-self", None, 200);
    assert_eq!(r.json["data"]["policies"], json!(["app", "default"]));
    app_tok.expect(
        "POST",
        "secret/data/certs/a",
        Some(&json!({"data": {"k": "v"}})),
        200,
    );
    let r = app_tok.expect("GET", "secret/data/certs/a", None, 200);
    assert_eq!(r.json["data"]["data"], json!({"k": "v"}));
    app_tok.expect("DELETE", "secret/metadata/certs/a", None, 403);
    app_tok.expect("GET", "sys/policies/acl/app", None, 403);

    // OKMS with only the certificate (no token header).
    let okms = |client: &reqwest::blocking::Client,
                method: &str,
                domain: &str,
                rest: &str,
                body: Option<Value>| {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = client.request(m, format!("{base}/api/{domain}/v2/{rest}"));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().expect("okms request");
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        (
            status,
            serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
            text,
        )
    };
    let c_app1 = tls_client(dir, Some("app1"));
    let (s, b, t) = okms(
        &c_app1,
        "POST",
        d1,
        "secret",
        Some(json!({"path": "rust/okms", "version": {"data": {"pw": "cert-only"}}})),
    );
    assert_eq!(s, 200, "{t}");
    assert_eq!(b["path"], "rust/okms");
    let (s, b, t) = okms(
        &c_app1,
        "GET",
        d1,
        "secret/rust%2Fokms?includeData=true",
        None,
    );
    assert_eq!(s, 200, "{t}");
    assert_eq!(b["version"]["data"], json!({"pw": "cert-only"}));
    // The same certificate on the other domain (same mount, same policies): 403, OKMS body.
    let (s, b, t) = okms(
        &c_app1,
        "GET",
        d2,
        "secret/rust%2Fokms?includeData=true",
        None,
    );
    assert_eq!(s, 403, "{t}");
    assert_eq!(
        (b["error_code"].as_i64().expect("code") >> 12) & 0xf,
        4,
        "{t}"
    );
    assert!(
        b["request_id"].as_str().is_some_and(|x| !x.is_empty()),
        "{t}"
    );
    // No certificate, no token: 401. A trusted certificate matching no identity: 401.
    let (s, b, t) = okms(&tls_client(dir, None), "GET", d1, "secret", None);
    assert_eq!(s, 401, "{t}");
    assert_eq!(
        (b["error_code"].as_i64().expect("code") >> 12) & 0xf,
        3,
        "{t}"
    );
    let (s, _, t) = okms(&tls_client(dir, Some("nobody")), "GET", d1, "secret", None);
    assert_eq!(s, 401, "{t}");
    // A certificate from another CA: the handshake fails.
    let evil = tls_client(dir, Some("evil-app1"));
    let r = evil.get(format!("{base}/api/{d1}/v2/secret")).send();
    assert!(
        r.is_err(),
        "a client certificate from an untrusted CA must fail the handshake: {:?}",
        r.map(|r| r.status())
    );
    // The server is still fine.
    let (s, _, t) = okms(&c_app1, "GET", d1, "secret", None);
    assert_eq!(s, 200, "{t}");
    p.assert_alive();
}

/// The DER of an OCTET STRING holding what the old DER scanner took for a UPN otherName: the UPN
/// OID, `[0]`, a UTF8String `value`. As `openssl x509 -extfile` `DER:` syntax.
fn smuggled_upn_ext(value: &str) -> String {
    let mut inner = vec![0x0c, value.len() as u8];
    inner.extend_from_slice(value.as_bytes());
    let mut v = vec![
        0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x14, 0x02, 0x03, 0xa0,
    ];
    v.push(inner.len() as u8);
    v.extend(inner);
    let mut der = vec![0x04, v.len() as u8];
    der.extend(v);
    let hex: Vec<String> = der.iter().map(|b| format!("{b:02x}")).collect();
    format!("1.3.6.1.4.1.99999.1=DER:{}\n", hex.join(":"))
}

/// Security review finding 12: certificates are parsed, not scanned. A domain restriction cannot be
/// lifted by a UPN-looking value in another extension, and a subject with an extra CN does not match
/// the `CN=app1` identity.
#[test]
fn attack_certificates_gain_nothing() {
    let tmp = tempdir("kvseal-mtls-attack-");
    let dir = tmp.path();
    let d1 = "11111111-2222-4333-8444-555555555555";
    let d2 = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
    make_ca(dir, "ca");
    make_leaf(
        dir,
        "ca",
        "smuggler",
        "/CN=app1",
        &format!(
            "{}{}",
            client_ext(Some(d1)),
            smuggled_upn_ext("okms.domain:*")
        ),
        "0x4001",
    );
    make_leaf(
        dir,
        "ca",
        "stacked",
        "/CN=evil/CN=app1",
        &client_ext(None),
        "0x4002",
    );
    let (p, base, root) = mtls_server(dir, d1, d2);
    Api::with_client(tls_client(dir, None), &base, &root).expect(
        "PUT",
        "sys/policies/acl/app",
        Some(&json!({"policy": "path \"secret/*\" { capabilities = [\"create\",\"read\",\"update\",\"list\"] }"})),
        204,
    );
    // (client certificate, method, URL path, expected status)
    let cases = [
        ("smuggler", "GET", format!("/api/{d1}/v2/secret"), 200),
        ("smuggler", "GET", format!("/api/{d2}/v2/secret"), 403),
        ("smuggler", "POST", "/v1/auth/cert/login".to_string(), 200),
        ("stacked", "GET", format!("/api/{d1}/v2/secret"), 401),
        ("stacked", "POST", "/v1/auth/cert/login".to_string(), 400),
    ];
    for (cert, method, path, want) in cases {
        let client = tls_client(dir, Some(cert));
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = client.request(m, format!("{base}{path}"));
        if method == "POST" {
            rb = rb.json(&json!({}));
        }
        let r = rb.send().expect("request");
        let status = r.status().as_u16();
        let text = r.text().unwrap_or_default();
        assert_eq!(status, want, "{cert} {method} {path}: {text}");
    }
    drop(p);
}
