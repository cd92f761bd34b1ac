//! A throwaway PostgreSQL cluster for the tests that run kvseal on PostgreSQL.
//!
//! [`PgCluster::start`] makes a data directory in a temp dir (`initdb -A trust -U postgres
//! --no-sync`), starts `postgres` on 127.0.0.1 and a free port (fsync on: the durability tests
//! depend on it), waits until it accepts connections and creates an empty database with a unique
//! name. [`PgCluster::kill9`] takes the postmaster and every backend down at once, as a crash
//! would.
//!
//! Running as root (as on the dev machine), initdb and postgres refuse to run: they are run as the
//! `postgres` user, and the temp dir is given to that user. As a normal user (a CI runner), they
//! are run directly.
//!
//! [`PgCluster::start_tls`] starts one with `ssl = on`: a server certificate for `localhost` (the DNS
//! name only, no IP address) signed by a test CA made for the cluster, and a `pg_hba.conf` that
//! either accepts TCP clients with or without TLS, or rejects those without ([`PgTls`]).
//!
//! The binaries come from `KVSEAL_PG_BINDIR` if set, else the highest version under
//! `/usr/lib/postgresql/*/bin` (Debian's layout), else `pg_config --bindir`, else `PATH`. None
//! found is a test failure saying what to install: there is no skipping.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{free_port, pki, uid};

/// How long PostgreSQL may take to accept connections after a start (crash recovery included).
pub const PG_READY_TIMEOUT: Duration = Duration::from_secs(60);

const INSTALL_HINT: &str = "PostgreSQL server binaries (initdb, postgres, pg_ctl, psql) not found: \
     install Debian's `postgresql` package (apt-get install -y postgresql; .ci/run does it), or set \
     KVSEAL_PG_BINDIR to the directory holding them";

/// The user and group the server runs as when the tests run as root.
#[derive(Clone, Copy, Debug)]
struct RunAs {
    uid: u32,
    gid: u32,
}

/// TLS on a [`PgCluster`] (`ssl = on`) and what its `pg_hba.conf` does with TCP clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PgTls {
    /// `host` lines: TCP clients are accepted with TLS or without.
    Allowed,
    /// `hostssl ... trust` and `hostnossl ... reject`: a TCP client without TLS is refused.
    Required,
}

/// A PostgreSQL server of its own, for one test.
pub struct PgCluster {
    bindir: PathBuf,
    run_as: Option<RunAs>,
    /// Removed on drop, after the server is stopped.
    tmp: Option<TempDir>,
    data: PathBuf,
    sock: PathBuf,
    port: u16,
    /// The database [`PgCluster::url`] names.
    db: String,
    /// The postmaster (leader of its own process group).
    child: Option<Child>,
    starts: usize,
    /// `Some` for [`PgCluster::start_tls`].
    tls: Option<PgTls>,
}

impl PgCluster {
    /// initdb, start, wait until it accepts connections, create a database of a unique name.
    pub fn start() -> PgCluster {
        PgCluster::start_with(None)
    }

    /// [`PgCluster::start`] with `ssl = on`. The files are in [`PgCluster::tls_dir`]: `ca.pem` (the
    /// CA that signed the server's certificate, see [`PgCluster::ca_file`]), `other-ca.pem` (a CA
    /// that signed nothing of this server, [`PgCluster::other_ca_file`]), `server.pem` and
    /// `server-key.pem` (the server's certificate, for `DNS:localhost` only, and its key, owned by
    /// the server's user and mode 0600 as PostgreSQL demands).
    pub fn start_tls(tls: PgTls) -> PgCluster {
        PgCluster::start_with(Some(tls))
    }

    fn start_with(tls: Option<PgTls>) -> PgCluster {
        let bindir = pg_bindir();
        let run_as = run_as();
        let tmp = tempfile::Builder::new()
            .prefix("kvseal-pg-")
            .tempdir()
            .expect("tempdir for PostgreSQL");
        let root = tmp.path().to_path_buf();
        let data = root.join("data");
        let sock = root.join("sock");
        fs::create_dir_all(&sock).expect("mkdir sock");
        fs::create_dir_all(root.join("logs")).expect("mkdir logs");
        if let Some(u) = run_as {
            for p in [&root, &sock, &root.join("logs")] {
                std::os::unix::fs::chown(p, Some(u.uid), Some(u.gid))
                    .unwrap_or_else(|e| panic!("chown {} to postgres: {e}", p.display()));
            }
        }
        let mut pg = PgCluster {
            bindir,
            run_as,
            tmp: Some(tmp),
            data,
            sock,
            port: free_port(),
            db: format!("kvseal_{}", uid()),
            child: None,
            starts: 0,
            tls,
        };
        let out = pg
            .command("initdb")
            .arg("-D")
            .arg(&pg.data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .args(["--locale", "C"])
            .output()
            .unwrap_or_else(|e| panic!("running initdb: {e}\n{INSTALL_HINT}"));
        assert_success("initdb", &out);
        if let Some(tls) = tls {
            pg.make_tls_files();
            pg.write_hba(tls);
        }
        pg.start_again();
        let db = pg.db.clone();
        pg.psql_on(&pg.admin_url(), &format!("CREATE DATABASE {db}"));
        pg
    }

    /// The CA, another CA, and the server's certificate and key (see [`PgCluster::start_tls`]).
    fn make_tls_files(&self) {
        let dir = self.tls_dir();
        fs::create_dir_all(&dir).expect("mkdir tls");
        pki::make_ca(&dir, "ca");
        pki::make_ca(&dir, "other-ca");
        pki::make_leaf(
            &dir,
            "ca",
            "server",
            "/CN=localhost",
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost\n",
            "0x2001",
        );
        let key = dir.join("server-key.pem");
        if let Some(u) = self.run_as {
            for p in [&dir, &dir.join("server.pem"), &key] {
                std::os::unix::fs::chown(p, Some(u.uid), Some(u.gid))
                    .unwrap_or_else(|e| panic!("chown {} to postgres: {e}", p.display()));
            }
        }
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("chmod 600 {}: {e}", key.display()));
    }

    /// Replaces initdb's `pg_hba.conf`: the unix socket is trusted; TCP on 127.0.0.1 as `tls` says.
    fn write_hba(&self, tls: PgTls) {
        let tcp = match tls {
            PgTls::Allowed => "host all all 127.0.0.1/32 trust\n",
            PgTls::Required => {
                "hostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n"
            }
        };
        let path = self.data.join("pg_hba.conf");
        fs::write(&path, format!("local all all trust\n{tcp}"))
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// Where [`PgCluster::start_tls`] keeps its certificates.
    pub fn tls_dir(&self) -> PathBuf {
        self.root().join("tls")
    }

    /// The CA that signed the server's certificate (TLS clusters only).
    pub fn ca_file(&self) -> PathBuf {
        assert!(self.tls.is_some(), "ca_file needs PgCluster::start_tls");
        self.tls_dir().join("ca.pem")
    }

    /// A CA that signed nothing of this server (TLS clusters only).
    pub fn other_ca_file(&self) -> PathBuf {
        assert!(
            self.tls.is_some(),
            "other_ca_file needs PgCluster::start_tls"
        );
        self.tls_dir().join("other-ca.pem")
    }

    /// `postgres://postgres@127.0.0.1:PORT/DB?sslmode=disable` for the test's database
    /// (`sslmode=require` on a cluster of [`PgTls::Required`]).
    pub fn url(&self) -> String {
        self.url_of(&self.db)
    }

    /// The URL of the `postgres` database (to create or drop databases).
    pub fn admin_url(&self) -> String {
        self.url_of("postgres")
    }

    fn url_of(&self, db: &str) -> String {
        let mode = match self.tls {
            Some(PgTls::Required) => "require",
            None | Some(PgTls::Allowed) => "disable",
        };
        self.url_with("postgres", "127.0.0.1", db, &format!("sslmode={mode}"))
    }

    /// `postgres://USERINFO@HOST:PORT/DB?QUERY` on this server (`userinfo` may hold a password:
    /// the server trusts every local client and never asks for it).
    pub fn url_with(&self, userinfo: &str, host: &str, db: &str, query: &str) -> String {
        format!("postgres://{userinfo}@{host}:{}/{db}?{query}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `psql` binary used here (compat tests create their databases with it).
    pub fn psql_path(&self) -> PathBuf {
        self.bindir.join("psql")
    }

    /// Creates another empty database and returns its URL.
    pub fn new_database(&self) -> String {
        let db = self.create_database();
        self.url_of(&db)
    }

    /// Creates another empty database and returns its name.
    pub fn create_database(&self) -> String {
        let db = format!("kvseal_{}", uid());
        self.psql_on(&self.admin_url(), &format!("CREATE DATABASE {db}"));
        db
    }

    /// Runs `sql` on the test's database; returns psql's unaligned, tuples-only output
    /// (`|` between columns, one row a line), trimmed. A failing statement fails the test.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_on(&self.url(), sql)
    }

    /// [`PgCluster::psql`] on the database named by `url`.
    pub fn psql_on(&self, url: &str, sql: &str) -> String {
        let out = self.try_psql(url, sql);
        assert_success(&format!("psql {sql:?}"), &out);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn try_psql(&self, url: &str, sql: &str) -> Output {
        Command::new(self.psql_path())
            .args([
                "-X",
                "-A",
                "-t",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                url,
                "-c",
                sql,
            ])
            .env("PGCONNECT_TIMEOUT", "5")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running psql: {e}\n{INSTALL_HINT}"))
    }

    /// How many live processes the server has (postmaster, auxiliaries, backends).
    pub fn server_processes(&self) -> usize {
        processes_in(&self.data).len()
    }

    /// True while the server runs (started and neither stopped nor killed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts the server again on the same data directory and port (after [`PgCluster::stop`]
    /// or [`PgCluster::kill9`]) and waits until it accepts connections.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "PostgreSQL is already running");
        self.starts += 1;
        let log = self.log_path(self.starts);
        let out = fs::File::create(&log).expect("PostgreSQL log file");
        let err = out.try_clone().expect("PostgreSQL log file");
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(&self.data)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(&self.sock)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=on"])
            .args(["-c", "max_connections=200", "-c", "shared_buffers=32MB"])
            .args(self.tls_args())
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning postgres: {e}\n{INSTALL_HINT}"));
        self.child = Some(child);
        self.wait_ready();
    }

    /// `-c ssl=on` and the certificate files, on a TLS cluster.
    fn tls_args(&self) -> Vec<String> {
        if self.tls.is_none() {
            return Vec::new();
        }
        let dir = self.tls_dir();
        vec![
            "-c".into(),
            "ssl=on".into(),
            "-c".into(),
            format!("ssl_cert_file={}", dir.join("server.pem").display()),
            "-c".into(),
            format!("ssl_key_file={}", dir.join("server-key.pem").display()),
        ]
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + PG_READY_TIMEOUT;
        let admin = self.admin_url();
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    panic!(
                        "postgres exited during start-up with {status}\n{}",
                        self.logs()
                    );
                }
            }
            let out = self.try_psql(&admin, "SELECT 1");
            if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "1" {
                return;
            }
            if Instant::now() > deadline {
                let last = String::from_utf8_lossy(&out.stderr).into_owned();
                panic!(
                    "PostgreSQL on port {} does not accept connections after {PG_READY_TIMEOUT:?} \
                     (last psql error: {last})\n{}",
                    self.port,
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `pg_ctl stop -m fast`: clients are disconnected, the server shuts down cleanly.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            panic!("PostgreSQL is not running");
        };
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["stop", "-m", "fast", "-w", "-t", "60"])
            .output()
            .unwrap_or_else(|e| panic!("running pg_ctl: {e}\n{INSTALL_HINT}"));
        if !out.status.success() {
            self.kill_all(child.id());
            let _ = child.wait();
            panic!(
                "pg_ctl stop -m fast failed:\n{}{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.logs()
            );
        }
        let _ = child.wait();
    }

    /// SIGKILL to the postmaster and every backend at once, as a crash. (Backends are session
    /// leaders of their own, so they are found by their working directory, the data directory,
    /// until none is left: a backend left running would keep the old shared memory attached.)
    pub fn kill9(&mut self) {
        let Some(mut child) = self.child.take() else {
            panic!("PostgreSQL is not running");
        };
        self.kill_all(child.id());
        let _ = child.wait();
    }

    fn kill_all(&self, postmaster: u32) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut pids = vec![postmaster];
        loop {
            pids.extend(processes_in(&self.data));
            pids.sort_unstable();
            pids.dedup();
            if pids.is_empty() {
                return;
            }
            let _ = Command::new("kill")
                .arg("-KILL")
                .args(pids.iter().map(|p| p.to_string()))
                .stderr(Stdio::null())
                .status();
            pids.clear();
            std::thread::sleep(Duration::from_millis(20));
            if processes_in(&self.data).is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL processes of {} survive SIGKILL",
                self.data.display()
            );
        }
    }

    /// The server's logs (every start), for failure messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for n in 1..=self.starts {
            let text = fs::read(self.log_path(n))
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let tail = if text.len() > 6000 {
                let mut start = text.len() - 6000;
                while !text.is_char_boundary(start) {
                    start += 1;
                }
                format!("...{}", &text[start..])
            } else {
                text
            };
            s.push_str(&format!("----- postgres log (start {n}) -----\n{tail}\n"));
        }
        s
    }

    fn root(&self) -> &Path {
        self.tmp.as_ref().expect("temp dir").path()
    }

    fn log_path(&self, n: usize) -> PathBuf {
        self.root().join("logs").join(format!("postgres.{n}.log"))
    }

    /// A command for one of the server binaries, as `postgres` when we are root.
    fn command(&self, name: &str) -> Command {
        let mut c = Command::new(self.bindir.join(name));
        if let Some(u) = self.run_as {
            c.uid(u.uid).gid(u.gid);
            c.env("HOME", self.root());
        }
        c.env_remove("PGDATA").env("LC_ALL", "C");
        c
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if std::thread::panicking() {
                eprintln!("{}", self.logs());
            }
            let stopped = self
                .command("pg_ctl")
                .arg("-D")
                .arg(&self.data)
                .args(["stop", "-m", "fast", "-w", "-t", "20"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if !stopped {
                self.kill_all(child.id());
            }
            let _ = child.wait();
        }
    }
}

fn assert_success(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Live (not zombie) processes whose working directory is `dir`: a PostgreSQL server's
/// processes all work in its data directory.
fn processes_in(dir: &Path) -> Vec<u32> {
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            if fs::read_link(e.path().join("cwd")).ok()? != dir {
                return None;
            }
            let stat = fs::read_to_string(e.path().join("stat")).ok()?;
            // "pid (comm) state ...": comm may hold anything, so look after its last ')'.
            let state = stat[stat.rfind(')')? + 1..].split_whitespace().next()?;
            (state != "Z" && state != "X").then_some(pid)
        })
        .collect()
}

/// `Some(postgres user)` when this process runs as root.
fn run_as() -> Option<RunAs> {
    let me = fs::metadata("/proc/self").expect("stat /proc/self").uid();
    if me != 0 {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("running id");
        assert!(
            out.status.success(),
            "running as root, PostgreSQL needs the `postgres` user, which does not exist: {INSTALL_HINT}"
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("id output")
    };
    Some(RunAs {
        uid: id("-u"),
        gid: id("-g"),
    })
}

/// Where initdb, postgres, pg_ctl and psql are.
pub fn pg_bindir() -> PathBuf {
    let has_all = |d: &Path| {
        ["initdb", "postgres", "pg_ctl", "psql"]
            .iter()
            .all(|b| d.join(b).is_file())
    };
    if let Some(d) = std::env::var_os("KVSEAL_PG_BINDIR") {
        let d = PathBuf::from(d);
        assert!(
            has_all(&d),
            "KVSEAL_PG_BINDIR={} lacks initdb, postgres, pg_ctl or psql",
            d.display()
        );
        return d;
    }
    // Debian: /usr/lib/postgresql/<major>/bin, the highest major first.
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has_all(d))
        .collect();
    versions.sort();
    if let Some((_, d)) = versions.pop() {
        return d;
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let d = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_all(&d) {
            return d;
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            if has_all(&d) {
                return d;
            }
        }
    }
    panic!("{INSTALL_HINT}");
}
