//! `kvseal server --config FILE` with a bad or missing file must exit
//! non-zero quickly and name the file and the offending key on stderr.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, raw_get_status, BIN};

const EXIT_TIMEOUT: Duration = Duration::from_secs(5);

struct Outcome {
    code: Option<i32>,
    stderr: String,
    stdout: String,
}

/// Runs `kvseal server --config <cfg>` and waits up to EXIT_TIMEOUT for it to
/// exit. Panics (after killing it) if it keeps running.
fn run_with_config(dir: &Path, cfg: &Path, port: u16) -> Outcome {
    let out_p = dir.join("stdout.log");
    let err_p = dir.join("stderr.log");
    let mut child = Command::new(BIN)
        .arg("server")
        .arg("--config")
        .arg(cfg)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_p).expect("log"))
        .stderr(fs::File::create(&err_p).expect("log"))
        .spawn()
        .expect("spawn kvseal");
    let deadline = Instant::now() + EXIT_TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() > deadline {
            let health = raw_get_status(&format!("127.0.0.1:{port}"), "/v1/sys/health");
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "kvseal still running {EXIT_TIMEOUT:?} after start with config {cfg:?} \
                 (health: {health:?})\nconfig:\n{}\nstderr:\n{}",
                fs::read_to_string(cfg).unwrap_or_default(),
                fs::read_to_string(&err_p).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    Outcome {
        code: status.code(),
        stderr: fs::read_to_string(&err_p).unwrap_or_default(),
        stdout: fs::read_to_string(&out_p).unwrap_or_default(),
    }
}

struct Case {
    dir: tempfile::TempDir,
    port: u16,
}

impl Case {
    fn new() -> Case {
        let dir = tempfile::Builder::new()
            .prefix("kvseal-cfgerr-")
            .tempdir()
            .expect("tempdir");
        fs::create_dir_all(dir.path().join("storage")).expect("mkdir");
        Case {
            dir,
            port: free_port(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A valid config with `{listener_extra}` etc. spliced in.
    fn config(&self, listener: &str, storage: &str, seal: &str, extra: &str) -> String {
        let d = self.path();
        format!(
            "[listener]\naddress = \"127.0.0.1:{}\"\n{listener}\n\n\
             [storage]\npath = \"{}\"\n{storage}\n\n\
             [seal]\ntype = \"file\"\nkey_file = \"{}\"\n{seal}\n{extra}",
            self.port,
            d.join("storage").display(),
            d.join("root.key").display()
        )
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path().join(name);
        fs::write(&p, text).expect("write config");
        p
    }
}

/// Asserts a failed start: non-zero exit, stderr names the file and every
/// string in `must_mention`.
fn assert_rejected(case: &Case, cfg: &Path, must_mention: &[&str], what: &str) {
    let out = run_with_config(case.path(), cfg, case.port);
    let text = fs::read_to_string(cfg).unwrap_or_else(|_| "<missing>".into());
    assert!(
        matches!(out.code, Some(c) if c != 0),
        "{what}: expected a non-zero exit code, got {:?}\nconfig:\n{text}\nstderr:\n{}\nstdout:\n{}",
        out.code,
        out.stderr,
        out.stdout
    );
    let cfg_s = cfg.display().to_string();
    let file_name = cfg
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    assert!(
        out.stderr.contains(&cfg_s) || out.stderr.contains(&file_name),
        "{what}: stderr does not name the config file {cfg_s:?}:\n{}",
        out.stderr
    );
    for m in must_mention {
        assert!(
            out.stderr.contains(m),
            "{what}: stderr does not mention {m:?}:\n{}",
            out.stderr
        );
    }
}

/// Control: the same template with nothing wrong starts and serves health
/// (so the rejection tests below cannot pass merely because the binary
/// always exits non-zero).
#[test]
fn valid_config_starts() {
    let case = Case::new();
    let cfg = case.write("good.toml", &case.config("tls_disable = true", "", "", ""));
    let mut child = Command::new(BIN)
        .arg("server")
        .arg("--config")
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(case.path().join("stderr.log")).expect("log"))
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut health = None;
    while Instant::now() < deadline {
        if let Ok(Some(st)) = child.try_wait() {
            panic!(
                "valid config: kvseal exited with {st}\nstderr:\n{}",
                fs::read_to_string(case.path().join("stderr.log")).unwrap_or_default()
            );
        }
        health = raw_get_status(&format!("127.0.0.1:{}", case.port), "/v1/sys/health");
        if health.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        health,
        Some(501),
        "fresh config-mode server is uninitialized"
    );
}

#[test]
fn unknown_key_in_section() {
    let case = Case::new();
    let cfg = case.write(
        "unknown-key.toml",
        &case.config("tls_disable = true\nbogus_listener_opt = 1", "", "", ""),
    );
    assert_rejected(
        &case,
        &cfg,
        &["bogus_listener_opt"],
        "unknown key in [listener]",
    );
}

#[test]
fn unknown_top_level_section() {
    let case = Case::new();
    let cfg = case.write(
        "unknown-section.toml",
        &case.config("tls_disable = true", "", "", "[telemetry_bogus]\nx = 1\n"),
    );
    assert_rejected(&case, &cfg, &["telemetry_bogus"], "unknown section");
}

#[test]
fn bad_value_type() {
    let case = Case::new();
    let cfg = case.write(
        "bad-value.toml",
        &case.config("tls_disable = \"definitely\"", "", "", ""),
    );
    assert_rejected(&case, &cfg, &["tls_disable"], "string for a bool");
}

#[test]
fn bad_listen_address() {
    let case = Case::new();
    let text = case
        .config("tls_disable = true", "", "", "")
        .replace(&format!("127.0.0.1:{}", case.port), "not-an-address");
    let cfg = case.write("bad-address.toml", &text);
    assert_rejected(&case, &cfg, &["not-an-address"], "unparseable address");
}

#[test]
fn bad_seal_type() {
    let case = Case::new();
    let text = case
        .config("tls_disable = true", "", "", "")
        .replace("type = \"file\"", "type = \"no-such-seal\"");
    let cfg = case.write("bad-seal.toml", &text);
    assert_rejected(&case, &cfg, &["no-such-seal"], "unknown seal type");
}

#[test]
fn missing_storage_section() {
    let case = Case::new();
    let text = format!(
        "[listener]\naddress = \"127.0.0.1:{}\"\ntls_disable = true\n\n\
         [seal]\ntype = \"file\"\nkey_file = \"{}\"\n",
        case.port,
        case.path().join("root.key").display()
    );
    let cfg = case.write("no-storage.toml", &text);
    assert_rejected(&case, &cfg, &["storage"], "missing [storage]");
}

#[test]
fn toml_syntax_error() {
    let case = Case::new();
    let cfg = case.write("syntax.toml", "[listener\naddress = \"127.0.0.1:1\"\n");
    assert_rejected(&case, &cfg, &[], "TOML syntax error");
}

#[test]
fn missing_config_file() {
    let case = Case::new();
    let cfg = case.path().join("does-not-exist.toml");
    assert_rejected(&case, &cfg, &[], "missing config file");
}
