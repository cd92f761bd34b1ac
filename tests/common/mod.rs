//! Shared helpers for the kvseal integration tests.
//!
//! * [`Server`] spawns the real `kvseal` binary (dev mode or config mode),
//!   waits for `/v1/sys/health`, can SIGKILL and restart it on the same files,
//!   and kills it on drop (printing its logs if the test is panicking).
//! * [`Server::dev_or_external`] honours `KVSEAL_TEST_ADDR` / `KVSEAL_TEST_TOKEN`
//!   so the HTTP-level tests can be pointed at a reference server (OpenBao /
//!   Vault dev server) instead of spawning kvseal.
//! * [`vault_client`] builds a `vaultrs` client, [`Http`] is a small blocking
//!   reqwest wrapper that returns status + parsed JSON.
#![allow(dead_code)]

pub mod db;
pub mod pg;
pub mod pki;
pub mod populate;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// Path of the binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_kvseal");

/// How long to wait for a spawned server to answer `/v1/sys/health`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Returns a port that was free a moment ago (bind :0, read, drop), never one this process
/// returned before: tests that start servers from several threads would otherwise, now and then,
/// get the same port twice before either server has bound it.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local_addr").port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A short random id for unique paths / mounts.
pub fn uid() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// Minimal HTTP/1.1 GET over a raw socket, returning the status code.
/// Used for health polling so it works from sync and async contexts alike.
pub fn raw_get_status(host_port: &str, path: &str) -> Option<u16> {
    let addr = host_port.parse().ok()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(2))).ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    // Read at least the status line.
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.windows(2).any(|w| w == b"\r\n") {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let line = text.lines().next()?;
    let mut parts = line.split_whitespace();
    let proto = parts.next()?;
    if !proto.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

#[derive(Debug, Clone)]
enum Mode {
    Dev,
    Config,
    External,
}

/// A config-mode server over TLS: `listener` lines go in `[listener]` (certificate files, client
/// CA), `tables` after the rest (`[[auth.cert]]`, ...). `client` trusts the server's CA and is used
/// for readiness and `init`.
#[derive(Clone)]
pub struct TlsConfig {
    pub listener: String,
    pub tables: String,
    pub client: reqwest::blocking::Client,
}

/// A kvseal server under test (or an external reference server).
pub struct Server {
    /// Base address, e.g. `http://127.0.0.1:41234`.
    pub addr: String,
    /// `127.0.0.1:PORT`
    pub host_port: String,
    /// Root token (empty until `init()` in config mode).
    pub token: String,
    mode: Mode,
    child: Option<Child>,
    tmp: Option<TempDir>,
    /// Root of the temp dir (config file, storage/, keys/, logs/).
    pub dir: PathBuf,
    spawn_count: usize,
    /// More arguments for `kvseal server` (e.g. `--dev-okms-id=…`).
    extra_args: Vec<String>,
    /// Set for [`Server::config_mode_tls`].
    tls: Option<TlsConfig>,
    /// Extra TOML lines for the `[listener]` table (config mode).
    listener_extra: String,
    /// Extra TOML tables appended to the config file (config mode).
    tables_extra: String,
    /// The body of `[storage]` (config mode); `None`: SQLite in [`Server::storage_dir`].
    storage: Option<String>,
    /// The body of `[seal]` (config mode); `None`: the file seal with [`Server::key_file`].
    seal: Option<String>,
}

impl Server {
    /// `kvseal server --dev` with a random root token, or the external server
    /// named by `KVSEAL_TEST_ADDR` (+ `KVSEAL_TEST_TOKEN`, default `root`).
    pub fn dev_or_external() -> Server {
        if let Some(s) = Server::external() {
            return s;
        }
        Server::dev()
    }

    /// The external reference server, if `KVSEAL_TEST_ADDR` is set.
    pub fn external() -> Option<Server> {
        let addr = std::env::var("KVSEAL_TEST_ADDR").ok()?;
        let addr = addr.trim_end_matches('/').to_string();
        let token = std::env::var("KVSEAL_TEST_TOKEN").unwrap_or_else(|_| "root".to_string());
        let host_port = addr
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_string();
        Some(Server {
            addr,
            host_port,
            token,
            mode: Mode::External,
            child: None,
            tmp: None,
            dir: PathBuf::new(),
            spawn_count: 0,
            extra_args: Vec::new(),
            tls: None,
            listener_extra: String::new(),
            tables_extra: String::new(),
            storage: None,
            seal: None,
        })
    }

    pub fn is_external(&self) -> bool {
        matches!(self.mode, Mode::External)
    }

    /// Spawns `kvseal server --dev` and waits for health 200.
    pub fn dev() -> Server {
        Server::dev_with(&[])
    }

    /// `kvseal server --dev` with more arguments (e.g. `--dev-okms-id=UUID`).
    pub fn dev_with(extra: &[&str]) -> Server {
        let tmp = tempfile::Builder::new()
            .prefix("kvseal-dev-")
            .tempdir()
            .expect("tempdir");
        let dir = tmp.path().to_path_buf();
        fs::create_dir_all(dir.join("logs")).expect("mkdir logs");
        let token = format!("kvs-root-{}", uid());
        let mut s = Server {
            addr: String::new(),
            host_port: String::new(),
            token,
            mode: Mode::Dev,
            child: None,
            tmp: Some(tmp),
            dir,
            spawn_count: 0,
            extra_args: extra.iter().map(|a| a.to_string()).collect(),
            tls: None,
            listener_extra: String::new(),
            tables_extra: String::new(),
            storage: None,
            seal: None,
        };
        s.spawn();
        s.wait_ready(&[200]);
        s
    }

    /// Spawns `kvseal server --config FILE` on a fresh temp dir. The server
    /// starts uninitialised (health 501); call [`Server::init`] next.
    pub fn config_mode() -> Server {
        Server::config_mode_with("", "")
    }

    /// [`Server::config_mode`] with extra `[listener]` lines and extra tables in the config file.
    pub fn config_mode_with(listener_extra: &str, tables_extra: &str) -> Server {
        let tmp = tempfile::Builder::new()
            .prefix("kvseal-cfg-")
            .tempdir()
            .expect("tempdir");
        let mut s = Server::config_in(tmp, None);
        s.listener_extra = listener_extra.to_string();
        s.tables_extra = tables_extra.to_string();
        s.spawn();
        s.wait_ready(&[501, 200]);
        s
    }

    /// A config-mode server whose `[storage]` table holds `storage` (e.g. `type = "postgresql"` and
    /// its `connection_url`), with `tables_extra` appended to the config file. With `key_from`, that
    /// seal key file is copied to this server's key path before the first start (nodes sharing one
    /// seal). Waits until health answers one of `accept`.
    pub fn config_mode_storage(
        storage: &str,
        tables_extra: &str,
        key_from: Option<&Path>,
        accept: &[u16],
    ) -> Server {
        let tmp = tempfile::Builder::new()
            .prefix("kvseal-cfg-")
            .tempdir()
            .expect("tempdir");
        let mut s = Server::config_in(tmp, None);
        s.storage = Some(storage.to_string());
        s.tables_extra = tables_extra.to_string();
        if let Some(src) = key_from {
            fs::copy(src, s.key_file()).unwrap_or_else(|e| {
                panic!(
                    "copying the seal key file {} to {}: {e}",
                    src.display(),
                    s.key_file().display()
                )
            });
        }
        s.spawn();
        s.wait_ready(accept);
        s
    }

    /// A config-mode server with the Shamir seal whose `[storage]` table holds `storage`; it starts
    /// uninitialised (health 501) and, once initialised, sealed until given its unseal keys.
    pub fn config_mode_shamir(storage: &str) -> Server {
        let tmp = tempfile::Builder::new()
            .prefix("kvseal-cfg-")
            .tempdir()
            .expect("tempdir");
        let mut s = Server::config_in(tmp, None);
        s.storage = Some(storage.to_string());
        s.seal = Some("type = \"shamir\"\n".to_string());
        s.spawn();
        s.wait_ready(&[501, 503]);
        s
    }

    /// A config-mode server (not yet spawned) whose files live in `tmp`.
    fn config_in(tmp: TempDir, tls: Option<TlsConfig>) -> Server {
        let dir = tmp.path().to_path_buf();
        for sub in ["logs", "storage", "keys"] {
            fs::create_dir_all(dir.join(sub)).expect("mkdir");
        }
        Server {
            addr: String::new(),
            host_port: String::new(),
            token: String::new(),
            mode: Mode::Config,
            child: None,
            tmp: Some(tmp),
            dir,
            spawn_count: 0,
            extra_args: Vec::new(),
            tls,
            listener_extra: String::new(),
            tables_extra: String::new(),
            storage: None,
            seal: None,
        }
    }

    /// Like [`Server::config_mode`], over TLS with the settings in `tls` (the temp dir is `dir`, so
    /// certificates made there before live as long as the server).
    pub fn config_mode_tls(tmp: TempDir, tls: TlsConfig) -> Server {
        let mut s = Server::config_in(tmp, Some(tls));
        s.spawn();
        s.wait_ready(&[501, 200]);
        s
    }

    /// Replaces the extra tables of a TLS config (takes effect at the next restart).
    pub fn set_config_tables(&mut self, tables: &str) {
        let tls = self
            .tls
            .as_mut()
            .expect("set_config_tables needs config_mode_tls");
        tls.tables = tables.to_string();
    }

    /// The client the helpers use: the TLS one for [`Server::config_mode_tls`], else plain.
    fn probe_client(&self) -> reqwest::blocking::Client {
        match &self.tls {
            Some(t) => t.client.clone(),
            None => reqwest::blocking::Client::new(),
        }
    }

    pub fn storage_dir(&self) -> PathBuf {
        self.dir.join("storage")
    }

    pub fn key_file(&self) -> PathBuf {
        self.dir.join("keys").join("root.key")
    }

    pub fn config_file(&self) -> PathBuf {
        self.dir.join("kvseal.toml")
    }

    pub fn log_dir(&self) -> PathBuf {
        self.dir.join("logs")
    }

    fn write_config(&self, port: u16) {
        let (listener, tables) = match &self.tls {
            Some(t) => (t.listener.as_str(), t.tables.as_str()),
            None => ("tls_disable = true", ""),
        };
        let storage = match &self.storage {
            Some(s) => s.clone(),
            None => format!("path = \"{}\"", self.storage_dir().display()),
        };
        let seal = match &self.seal {
            Some(s) => s.clone(),
            None => format!(
                "type = \"file\"\nkey_file = \"{}\"\n",
                self.key_file().display()
            ),
        };
        let cfg = format!(
            "[listener]\naddress = \"127.0.0.1:{port}\"\n{listener}\n{}\n\n\
             [storage]\n{storage}\n\n\
             [seal]\n{seal}\n{tables}\n{}\n",
            self.listener_extra, self.tables_extra
        );
        fs::write(self.config_file(), cfg).expect("write config");
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let port = free_port();
        self.host_port = format!("127.0.0.1:{port}");
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        self.addr = format!("{scheme}://{}", self.host_port);
        self.spawn_count += 1;
        let n = self.spawn_count;
        let out = fs::File::create(self.log_dir().join(format!("stdout.{n}.log"))).expect("log");
        let err = fs::File::create(self.log_dir().join(format!("stderr.{n}.log"))).expect("log");
        let mut cmd = Command::new(BIN);
        cmd.arg("server");
        match self.mode {
            Mode::Dev => {
                cmd.arg("--dev")
                    .arg(format!("--dev-root-token-id={}", self.token))
                    .arg(format!("--dev-listen-address={}", self.host_port));
            }
            Mode::Config => {
                self.write_config(port);
                cmd.arg("--config").arg(self.config_file());
            }
            Mode::External => unreachable!("cannot spawn an external server"),
        }
        cmd.args(&self.extra_args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .env("RUST_BACKTRACE", "1");
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("failed to spawn {BIN}: {e}"));
        self.child = Some(child);
    }

    /// Polls `/v1/sys/health` until it returns one of `accept`.
    pub fn wait_ready(&mut self, accept: &[u16]) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = None;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    panic!(
                        "kvseal exited during startup with {status}\n{}",
                        self.logs()
                    );
                }
            }
            let status = match &self.tls {
                Some(t) => t
                    .client
                    .get(format!("{}/v1/sys/health", self.addr))
                    .send()
                    .ok()
                    .map(|r| r.status().as_u16()),
                None => raw_get_status(&self.host_port, "/v1/sys/health"),
            };
            last = status.or(last);
            if let Some(code) = last {
                if accept.contains(&code) {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "kvseal at {} not ready after {:?} (last health status {:?}, want {:?})\n{}",
                    self.addr,
                    READY_TIMEOUT,
                    last,
                    accept,
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `PUT /v1/sys/init {"secret_shares":1,"secret_threshold":1}`; stores and
    /// returns the root token. Waits until health is 200 afterwards.
    pub fn init(&mut self) -> String {
        let http = self.probe_client();
        let resp = http
            .put(format!("{}/v1/sys/init", self.addr))
            .json(&serde_json::json!({"secret_shares": 1, "secret_threshold": 1}))
            .send()
            .unwrap_or_else(|e| panic!("sys/init request failed: {e}\n{}", self.logs()));
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        assert_eq!(
            status,
            200,
            "PUT /v1/sys/init: expected 200, got {status}: {text}\n{}",
            self.logs()
        );
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("sys/init body is not JSON ({e}): {text}"));
        let tok = v["root_token"]
            .as_str()
            .unwrap_or_else(|| panic!("sys/init: no root_token in {text}"))
            .to_string();
        assert!(!tok.is_empty(), "sys/init: empty root_token");
        self.token = tok.clone();
        self.wait_ready(&[200]);
        tok
    }

    /// SIGKILL (child.kill() is SIGKILL on unix) and reap the process.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Restarts on the same files (config mode) after a kill; waits for 200.
    pub fn restart(&mut self) {
        assert!(
            matches!(self.mode, Mode::Config),
            "restart needs config mode"
        );
        self.kill9();
        self.spawn();
        self.wait_ready(&[200]);
    }

    /// Restarts a Shamir-sealed server on the same files after a kill; waits until it answers
    /// sealed (503).
    pub fn restart_sealed(&mut self) {
        self.kill9();
        self.spawn();
        self.wait_ready(&[503]);
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Concatenated logs of all spawns (for failure messages).
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for n in 1..=self.spawn_count {
            for kind in ["stdout", "stderr"] {
                let p = self.log_dir().join(format!("{kind}.{n}.log"));
                let text = fs::read(&p)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let tail: String = if text.len() > 8000 {
                    let mut start = text.len() - 8000;
                    while !text.is_char_boundary(start) {
                        start += 1;
                    }
                    format!("...{}", &text[start..])
                } else {
                    text
                };
                s.push_str(&format!("----- kvseal {kind} (spawn {n}) -----\n{tail}\n"));
            }
        }
        s
    }

    /// Blocking HTTP helper bound to this server and its token.
    pub fn http(&self) -> Http {
        match &self.tls {
            Some(t) => Http::with_client(t.client.clone(), &self.addr, &self.token),
            None => Http::new(&self.addr, &self.token),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.is_some() || self.spawn_count > 0 {
            self.kill9();
            if std::thread::panicking() && !matches!(self.mode, Mode::External) {
                eprintln!("{}", self.logs());
            }
        }
    }
}

/// A vaultrs client for `server`.
pub fn vault_client(server: &Server) -> vaultrs::client::VaultClient {
    vault_client_for(&server.addr, &server.token)
}

pub fn vault_client_for(addr: &str, token: &str) -> vaultrs::client::VaultClient {
    let settings = vaultrs::client::VaultClientSettingsBuilder::default()
        .address(addr)
        .token(token)
        .timeout(Some(Duration::from_secs(30)))
        .build()
        .expect("vaultrs settings");
    vaultrs::client::VaultClient::new(settings).expect("vaultrs client")
}

/// HTTP status code of a vaultrs error: `APIError{code}` when the body had
/// `{"errors":[...]}`, otherwise the rustify `ServerResponseError{code}`
/// (e.g. a 404 whose body is a full envelope without `errors`).
pub fn vaultrs_err_code(e: &vaultrs::error::ClientError) -> Option<u16> {
    if let vaultrs::error::ClientError::APIError { code, .. } = e {
        return Some(*code);
    }
    let dbg = format!("{e:?}");
    let idx = dbg.find("ServerResponseError { code: ")?;
    let rest = &dbg[idx + "ServerResponseError { code: ".len()..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// A response from [`Http`].
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub content_type: Option<String>,
    pub text: String,
    /// Parsed body; `Value::Null` if empty or not JSON.
    pub json: Value,
}

impl Resp {
    /// The `errors` array as strings (empty if absent).
    pub fn errors(&self) -> Vec<String> {
        self.json["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| e.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Blocking reqwest wrapper. Do not use inside a tokio runtime thread.
#[derive(Clone)]
pub struct Http {
    pub client: reqwest::blocking::Client,
    pub base: String,
    pub token: String,
}

impl Http {
    pub fn new(base: &str, token: &str) -> Http {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(4)
            .build()
            .expect("reqwest client");
        Http {
            client,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
        }
    }

    /// With a given client (TLS roots, a client certificate).
    pub fn with_client(client: reqwest::blocking::Client, base: &str, token: &str) -> Http {
        Http {
            client,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
        }
    }

    /// `path` is relative to `/v1/` (e.g. `secret/data/foo`).
    pub fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let url = format!("{}/v1/{}", self.base, path.trim_start_matches('/'));
        let mut rb = self
            .client
            .request(m, &url)
            .header("X-Vault-Token", &self.token)
            .header("X-Vault-Request", "true");
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = rb
            .send()
            .unwrap_or_else(|e| panic!("{method} {url} failed: {e}"));
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = resp.text().unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            content_type,
            text,
            json,
        }
    }

    /// Like [`Http::request`] but returns transport errors instead of panicking.
    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, String), reqwest::Error> {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let url = format!("{}/v1/{}", self.base, path.trim_start_matches('/'));
        let mut rb = self
            .client
            .request(m, &url)
            .header("X-Vault-Token", &self.token);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = rb.send()?;
        let status = resp.status().as_u16();
        let text = resp.text()?;
        Ok((status, text))
    }

    pub fn get(&self, path: &str) -> Resp {
        self.request("GET", path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Resp {
        self.request("POST", path, Some(body))
    }

    pub fn list(&self, path: &str) -> Resp {
        self.request("LIST", path, None)
    }

    pub fn delete(&self, path: &str) -> Resp {
        self.request("DELETE", path, None)
    }

    /// POST `{"data": data}` to `<mount>/data/<key>`; asserts 200 and
    /// returns the new version number.
    pub fn put_secret(&self, mount: &str, key: &str, data: &Value) -> u64 {
        let r = self.post(
            &format!("{mount}/data/{key}"),
            &serde_json::json!({ "data": data }),
        );
        assert_eq!(
            r.status, 200,
            "POST /v1/{mount}/data/{key}: expected 200, got {} {}",
            r.status, r.text
        );
        r.json["data"]["version"]
            .as_u64()
            .unwrap_or_else(|| panic!("no data.version in {}", r.text))
    }
}

/// Recursively collects every regular file under `dir`.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// True if `needle` occurs in `hay`.
pub fn contains_bytes(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}
