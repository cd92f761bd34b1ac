//! The shared population of the barrier tests (issue 11): a config-mode server with the file seal,
//! filled through both APIs (Vault and OKMS REST v2) with secrets, versions in every state, custom
//! metadata, a second mount with a mount config, policies (one limited, one with `deny`), tokens
//! (limited, child, with `num_uses`, orphan, made by a role), token roles and audit devices. The
//! caller's [`Markers`] are placed where the barrier must hide them.
//!
//! [`populate`] returns a [`Population`] describing what it made (and what the server answered for
//! it), [`check_population`] asserts that a server still serves all of it, and [`probes`] is the
//! list of requests the tamper and migration tests replay and compare.
//!
//! While populating, the storage file is read after each step (schema-agnostic: see `db.rs`) to
//! record which rows that step added or changed ([`Population::row_tags`]): the tamper test uses
//! that to find the rows whose edit matters (the limited token's, the limited policy's...) without
//! naming a column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tempfile::TempDir;

use super::db::{self, RowRef, Snapshot};
use super::{Mode, Server};

/// The OKMS domain of every populated server, backed by `secret/`.
pub const OKMS_ID: &str = "6a1e2f0c-7b4d-4e39-9c55-0d1f3e2a8b71";

/// Token labels in [`Population::tokens`].
pub const ROOT: &str = "root";
pub const LIMITED: &str = "limited";
pub const CHILD: &str = "child";
pub const USES: &str = "uses";
pub const ORPHAN: &str = "orphan";
pub const ROLE_TOKEN: &str = "role";

/// The deny policy's name (the limited policy is named by a marker).
pub const DENY_POLICY: &str = "kvs-deny";

/// Unique strings placed where the barrier must hide them. Never in a secret path: paths stay in
/// clear by design.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Markers {
    /// A `custom_metadata` value of `secret/app/db`.
    pub custom_metadata: String,
    /// The limited policy's name.
    pub policy_name: String,
    /// A path inside the limited policy's body.
    pub policy_body: String,
    /// The limited token's `display_name`.
    pub display_name: String,
    /// A `meta` value of the limited token.
    pub meta: String,
    /// The audit device's path (`sys/audit/<path>`), also its log file's name.
    pub audit_path: String,
}

impl Markers {
    /// Random markers (lowercase letters, digits and `-`: valid in a policy name, a display name
    /// and an OKMS custom metadata value, and the same bytes JSON-escaped).
    pub fn random() -> Markers {
        let u = || uuid::Uuid::new_v4().simple().to_string();
        Markers {
            custom_metadata: format!("kvsmk-cm-{}", u()),
            policy_name: format!("kvsmk-pn-{}", u()),
            policy_body: format!("kvsmk-pb-{}", u()),
            display_name: format!("kvsmk-dn-{}", u()),
            meta: format!("kvsmk-meta-{}", u()),
            audit_path: format!("kvsmk-audit-{}", u()),
        }
    }

    /// Fixed markers (the committed fixture store).
    pub fn fixed() -> Markers {
        Markers {
            custom_metadata: "kvsmk-cm-fixture-5f0c1d".into(),
            policy_name: "kvsmk-pn-fixture-7a2e94".into(),
            policy_body: "kvsmk-pb-fixture-c3b8e1".into(),
            display_name: "kvsmk-dn-fixture-91d4a6".into(),
            meta: "kvsmk-meta-fixture-2e6f0b".into(),
            audit_path: "kvsmk-audit-fixture-d8a135".into(),
        }
    }

    /// (where it was placed, marker)
    pub fn all(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("custom_metadata value", &self.custom_metadata),
            ("policy name", &self.policy_name),
            ("policy body", &self.policy_body),
            ("token display_name", &self.display_name),
            ("token meta value", &self.meta),
            ("audit device path", &self.audit_path),
        ]
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VersionRec {
    pub version: u64,
    /// `active`, `deleted` (Vault's soft delete, OKMS `deactivated`) or `destroyed`.
    pub state: String,
    pub data: Value,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SecretRec {
    pub mount: String,
    pub path: String,
    /// `vault` or `okms`: the API it was written through.
    pub written_via: String,
    pub max_versions: u64,
    pub cas_required: bool,
    pub custom_metadata: BTreeMap<String, String>,
    pub current_version: u64,
    pub versions: Vec<VersionRec>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MountRec {
    /// Without the trailing `/`.
    pub path: String,
    pub description: String,
    /// `GET <mount>/config` as served after populating.
    pub config: Value,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PolicyRec {
    pub name: String,
    pub text: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenRec {
    pub label: String,
    pub token: String,
    pub accessor: String,
    /// Sorted, as `lookup-accessor` shows them (with `default`).
    pub policies: Vec<String>,
    pub display_name: String,
    pub meta: Value,
    pub num_uses: u64,
    pub orphan: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoleRec {
    pub name: String,
    /// `GET auth/token/roles/<name>`'s `data`.
    pub data: Value,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuditRec {
    pub path: String,
    pub file_path: String,
    pub description: String,
}

/// The rows of the storage file one population step added or changed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RowTag {
    pub tag: String,
    pub rows: Vec<RowRef>,
}

/// What [`populate`] made.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Population {
    pub okms_id: String,
    pub markers: Markers,
    /// A path component used in one secret path (not a marker: paths stay in clear).
    pub path_tag: String,
    pub root_token: String,
    pub mounts: Vec<MountRec>,
    pub secrets: Vec<SecretRec>,
    pub policies: Vec<PolicyRec>,
    pub tokens: Vec<TokenRec>,
    pub roles: Vec<RoleRec>,
    pub audit: Vec<AuditRec>,
    /// Which rows each step added or changed, in step order (first tag: `init`, every row there
    /// before populating).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub row_tags: Vec<RowTag>,
}

impl Population {
    pub fn token(&self, label: &str) -> &TokenRec {
        self.tokens
            .iter()
            .find(|t| t.label == label)
            .unwrap_or_else(|| panic!("no token {label:?} in the population"))
    }

    pub fn secret(&self, mount: &str, path: &str) -> &SecretRec {
        self.secrets
            .iter()
            .find(|s| s.mount == mount && s.path == path)
            .unwrap_or_else(|| panic!("no secret {mount}/{path} in the population"))
    }

    /// The limited policy (named by the policy-name marker).
    pub fn limited_policy(&self) -> &str {
        &self.markers.policy_name
    }

    /// The team mount's secret (its path carries `path_tag`).
    pub fn team_path(&self) -> String {
        format!("svc/{}", self.path_tag)
    }
}

// ---------------------------------------------------------------------------------------------
// Servers

/// The extra config tables of every populated server: the OKMS domain on `secret/` and the audit
/// directory.
pub fn config_tables(audit_dir: &Path) -> String {
    format!(
        "[audit]\nallowed_dir = \"{}\"\n\n[[okms.domains]]\nid = \"{OKMS_ID}\"\nmount = \"secret\"\n",
        audit_dir.display()
    )
}

/// An uninitialised config-mode server (file seal) ready for [`populate`]: the OKMS domain on
/// `secret/`, `[audit] allowed_dir` = `audit_dir` (created), or `<server dir>/audit` when `None`.
/// Returns the server and its audit directory. Call `init()` next.
pub fn server(audit_dir: Option<&Path>) -> (Server, PathBuf) {
    let tmp = tempfile::Builder::new()
        .prefix("kvseal-pop-")
        .tempdir()
        .expect("tempdir");
    let audit = audit_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| tmp.path().join("audit"));
    std::fs::create_dir_all(&audit).expect("mkdir audit");
    let mut s = Server::config_in(tmp, None);
    s.tables_extra = config_tables(&audit);
    s.spawn();
    s.wait_ready(&[501, 200]);
    (s, audit)
}

impl Server {
    /// A config-mode server on the files already in `tmp` (`storage/`, `keys/root.key`), with the
    /// populated servers' config tables; spawned, not yet waited for (see
    /// [`Server::wait_answering`]).
    pub fn spawn_on(tmp: TempDir, audit_dir: &Path, log_level: Option<&str>) -> Server {
        let mut s = Server::config_in(tmp, None);
        s.tables_extra = config_tables(audit_dir);
        if let Some(level) = log_level {
            s.tables_extra
                .push_str(&format!("\n[log]\nlevel = \"{level}\"\n"));
        }
        s.spawn();
        s
    }

    /// Waits until `/v1/sys/health` answers anything (200, 429, 501, 503...) and returns it, or
    /// returns why the process ended (its exit status and stderr) without answering.
    pub fn wait_answering(&mut self, timeout: Duration) -> Result<u16, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!("exited with {status}: {}", self.stderr_text()));
                }
            }
            if let Some(code) = super::raw_get_status(&self.host_port, "/v1/sys/health") {
                return Ok(code);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not answering /v1/sys/health after {timeout:?}: {}",
                    self.stderr_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process (if any) and spawns it again on the same files (a new port), without
    /// waiting: see [`Server::wait_answering`].
    pub fn respawn(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Restarts after [`Server::stop`] or a kill, waiting for `accept`.
    pub fn start_again(&mut self, accept: &[u16]) {
        assert!(
            matches!(self.mode, Mode::Config),
            "start_again: config mode"
        );
        self.kill9();
        self.spawn();
        self.wait_ready(accept);
    }

    /// SIGTERM (a clean shutdown: SQLite checkpoints its WAL) and waits up to 20 s, then SIGKILL.
    /// Returns the exit status.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(st);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the server wrote to stderr, all spawns.
    pub fn stderr_text(&self) -> String {
        let mut s = String::new();
        for n in 1..=self.spawn_count {
            let p = self.log_dir().join(format!("stderr.{n}.log"));
            if let Ok(b) = std::fs::read(&p) {
                s.push_str(&String::from_utf8_lossy(&b));
            }
        }
        s
    }
}

/// Copies every file of `from` into `to` (created): a storage directory, lock file included.
pub fn copy_dir_files(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let e = e.expect("read_dir");
        if e.file_type().map(|t| t.is_file()).unwrap_or(false) {
            std::fs::copy(e.path(), to.join(e.file_name()))
                .unwrap_or_else(|err| panic!("copy {}: {err}", e.path().display()));
        }
    }
}

/// A fresh temp dir laid out as a config-mode server's (`storage/`, `keys/`, `logs/`) holding a
/// copy of `storage` and of `key_file`.
pub fn copy_store(storage: &Path, key_file: &Path) -> TempDir {
    let tmp = tempfile::Builder::new()
        .prefix("kvseal-copy-")
        .tempdir()
        .expect("tempdir");
    copy_dir_files(storage, &tmp.path().join("storage"));
    std::fs::create_dir_all(tmp.path().join("keys")).expect("mkdir keys");
    std::fs::create_dir_all(tmp.path().join("logs")).expect("mkdir logs");
    let key = tmp.path().join("keys").join("root.key");
    std::fs::copy(key_file, &key).expect("copy key file");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
    tmp
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// One answer: the status and the body (JSON, or the text as a JSON string).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

/// A blocking client for both APIs: `/v1/...` paths send `X-Vault-Token`, `/api/...` paths
/// `Authorization: Bearer`.
pub struct Client {
    pub base: String,
    http: reqwest::blocking::Client,
}

impl Client {
    pub fn new(base: &str) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("reqwest client"),
        }
    }

    pub fn try_send(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, String> {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self.http.request(m, format!("{}{path}", self.base));
        rb = if path.starts_with("/api/") {
            rb.header("Authorization", format!("Bearer {token}"))
        } else {
            rb.header("X-Vault-Token", token)
        };
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let resp = rb.send().map_err(|e| format!("{method} {path}: {e}"))?;
        let status = resp.status().as_u16();
        let text = resp.text().map_err(|e| format!("{method} {path}: {e}"))?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok(Answer { status, body })
    }

    pub fn send(&self, token: &str, method: &str, path: &str, body: Option<&Value>) -> Answer {
        self.try_send(token, method, path, body)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `send`, asserting the status.
    pub fn expect(
        &self,
        status: u16,
        token: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Value {
        let a = self.send(token, method, path, body);
        assert_eq!(
            a.status, status,
            "{method} {path}: expected {status}, got {} {}",
            a.status, a.body
        );
        a.body
    }
}

/// `%2F`-encoded OKMS secret path.
pub fn okms_path(p: &str) -> String {
    p.replace('/', "%2F")
}

// ---------------------------------------------------------------------------------------------
// Populating

struct Tagger {
    db: PathBuf,
    last: Snapshot,
    tags: Vec<RowTag>,
}

impl Tagger {
    fn new(db: PathBuf) -> Tagger {
        let last = db::snapshot(&db);
        let rows = last.values().map(|(r, _)| r.clone()).collect();
        Tagger {
            db,
            last,
            tags: vec![RowTag {
                tag: "init".into(),
                rows,
            }],
        }
    }

    /// Records the rows added or changed since the last step under `tag`.
    fn step(&mut self, tag: &str) {
        let now = db::snapshot(&self.db);
        let rows = db::changed(&self.last, &now);
        self.last = now;
        self.tags.push(RowTag {
            tag: tag.into(),
            rows,
        });
    }
}

fn okms_secret_state(state: &str) -> &str {
    match state {
        "deleted" => "deactivated",
        "destroyed" => "deleted",
        other => other,
    }
}

/// Fills an initialised server (`server.token` is root) made by [`server`] through both APIs, and
/// returns what it made. Every call checks its own answer. `audit_dir` is the server's
/// `[audit] allowed_dir`; `path_tag` goes into one secret path (use a unique string to find it).
pub fn populate(
    server: &Server,
    markers: &Markers,
    audit_dir: &Path,
    path_tag: &str,
) -> Population {
    let c = Client::new(&server.addr);
    let root = server.token.clone();
    let r = root.as_str();
    let mut tag = Tagger::new(server.storage_dir().join("kvseal.db"));
    let okms = format!("/api/{OKMS_ID}/v2");

    // Policies: the limited one (named by a marker, a marker in a path of its body), and a deny.
    let limited = markers.policy_name.clone();
    let limited_text = format!(
        "# limited: read the app secrets, list everything\n\
         path \"secret/data/app/*\" {{ capabilities = [\"read\"] }}\n\
         path \"secret/metadata/*\" {{ capabilities = [\"list\"] }}\n\
         path \"secret/data/{}/*\" {{ capabilities = [\"read\"] }}\n",
        markers.policy_body
    );
    c.expect(
        204,
        r,
        "PUT",
        &format!("/v1/sys/policies/acl/{limited}"),
        Some(&json!({ "policy": limited_text })),
    );
    tag.step("policy:limited");
    let deny_text = "path \"secret/data/app/denied\" { capabilities = [\"deny\"] }\n\
                     path \"team/*\" { capabilities = [\"deny\"] }\n";
    c.expect(
        204,
        r,
        "PUT",
        &format!("/v1/sys/policies/acl/{DENY_POLICY}"),
        Some(&json!({ "policy": deny_text })),
    );
    tag.step("policy:deny");

    // A second KV v2 mount with a mount config.
    c.expect(
        204,
        r,
        "POST",
        "/v1/sys/mounts/team",
        Some(&json!({"type": "kv", "options": {"version": "2"}, "description": "team secrets"})),
    );
    c.expect(
        204,
        r,
        "POST",
        "/v1/team/config",
        Some(&json!({"max_versions": 3, "delete_version_after": "87600h", "cas_required": false})),
    );
    let team_config = c.expect(200, r, "GET", "/v1/team/config", None)["data"].clone();
    assert_eq!(team_config["max_versions"], 3, "team/config: {team_config}");
    assert_eq!(
        team_config["delete_version_after"], "87600h0m0s",
        "team/config: {team_config}"
    );
    let secret_config = c.expect(200, r, "GET", "/v1/secret/config", None)["data"].clone();
    tag.step("mount:team");
    let mounts = vec![
        MountRec {
            path: "secret".into(),
            description: "key/value secret storage".into(),
            config: secret_config,
        },
        MountRec {
            path: "team".into(),
            description: "team secrets".into(),
            config: team_config,
        },
    ];

    let mut secrets = Vec::new();

    // secret/app/db through the Vault API: key-level max_versions and cas_required, custom
    // metadata (a marker), four versions: v2 soft-deleted, v3 destroyed.
    let cm: BTreeMap<String, String> = [
        ("owner".to_string(), markers.custom_metadata.clone()),
        ("team".to_string(), "blue".to_string()),
    ]
    .into();
    c.expect(
        204,
        r,
        "POST",
        "/v1/secret/metadata/app/db",
        Some(&json!({"max_versions": 6, "cas_required": true, "custom_metadata": cm})),
    );
    tag.step("secret:app/db@meta");
    let mut versions = Vec::new();
    for n in 1..=4u64 {
        let data = json!({"password": format!("db-pass-v{n}"), "n": n});
        let body = c.expect(
            200,
            r,
            "POST",
            "/v1/secret/data/app/db",
            Some(&json!({"options": {"cas": n - 1}, "data": data})),
        );
        assert_eq!(body["data"]["version"], n, "{body}");
        versions.push(VersionRec {
            version: n,
            state: "active".into(),
            data,
        });
        tag.step(&format!("secret:app/db@v{n}"));
    }
    // cas_required is enforced: a write without cas is refused.
    let a = c.send(
        r,
        "POST",
        "/v1/secret/data/app/db",
        Some(&json!({"data": {"x": 1}})),
    );
    assert_eq!(a.status, 400, "write without cas on cas_required: {a:?}");
    c.expect(
        204,
        r,
        "POST",
        "/v1/secret/delete/app/db",
        Some(&json!({"versions": [2]})),
    );
    versions[1].state = "deleted".into();
    tag.step("secret:app/db@delete");
    c.expect(
        204,
        r,
        "POST",
        "/v1/secret/destroy/app/db",
        Some(&json!({"versions": [3]})),
    );
    versions[2].state = "destroyed".into();
    versions[2].data = Value::Null;
    tag.step("secret:app/db@destroy");
    secrets.push(SecretRec {
        mount: "secret".into(),
        path: "app/db".into(),
        written_via: "vault".into(),
        max_versions: 6,
        cas_required: true,
        custom_metadata: cm,
        current_version: 4,
        versions,
    });

    // secret/app/okms through OKMS REST v2 (create, then a second version), read back through
    // the Vault API.
    let okms_cm: BTreeMap<String, String> = [("env".to_string(), "prod".to_string())].into();
    let v1 = json!({"login": "admin", "pass": "okms-v1"});
    let v2 = json!({"login": "admin", "pass": "okms-v2"});
    let body = c.expect(
        200,
        r,
        "POST",
        &format!("{okms}/secret"),
        Some(&json!({
            "path": "app/okms",
            "version": {"data": v1},
            "metadata": {"maxVersions": 4, "customMetadata": okms_cm},
        })),
    );
    assert_eq!(body["path"], "app/okms", "{body}");
    assert_eq!(body["metadata"]["currentVersion"], 1, "{body}");
    let body = c.expect(
        200,
        r,
        "POST",
        &format!("{okms}/secret/app%2Fokms/version"),
        Some(&json!({"data": v2})),
    );
    assert_eq!(body["id"], 2, "{body}");
    let read = c.expect(200, r, "GET", "/v1/secret/data/app/okms", None);
    assert_eq!(
        read["data"]["data"], v2,
        "Vault read of the OKMS secret: {read}"
    );
    assert_eq!(read["data"]["metadata"]["version"], 2, "{read}");
    assert_eq!(
        read["data"]["metadata"]["custom_metadata"],
        json!(okms_cm),
        "{read}"
    );
    let read = c.expect(200, r, "GET", "/v1/secret/data/app/okms?version=1", None);
    assert_eq!(read["data"]["data"], v1, "{read}");
    tag.step("secret:app/okms");
    secrets.push(SecretRec {
        mount: "secret".into(),
        path: "app/okms".into(),
        written_via: "okms".into(),
        max_versions: 4,
        cas_required: false,
        custom_metadata: okms_cm,
        current_version: 2,
        versions: vec![
            VersionRec {
                version: 1,
                state: "active".into(),
                data: v1,
            },
            VersionRec {
                version: 2,
                state: "active".into(),
                data: v2,
            },
        ],
    });

    // Outside the limited policy, and under its deny.
    for (path, data, t) in [
        ("other/x", json!({"k": "outside"}), "secret:other"),
        ("app/denied", json!({"k": "denied"}), "secret:app/denied"),
    ] {
        let body = c.expect(
            200,
            r,
            "POST",
            &format!("/v1/secret/data/{path}"),
            Some(&json!({ "data": data })),
        );
        assert_eq!(body["data"]["version"], 1, "{body}");
        tag.step(t);
        secrets.push(SecretRec {
            mount: "secret".into(),
            path: path.into(),
            written_via: "vault".into(),
            max_versions: 0,
            cas_required: false,
            custom_metadata: BTreeMap::new(),
            current_version: 1,
            versions: vec![VersionRec {
                version: 1,
                state: "active".into(),
                data,
            }],
        });
    }

    // team/svc/<path_tag>: two versions under the mount's config.
    let team_path = format!("svc/{path_tag}");
    let mut tv = Vec::new();
    for n in 1..=2u64 {
        let data = json!({"api": format!("team-v{n}")});
        let body = c.expect(
            200,
            r,
            "POST",
            &format!("/v1/team/data/{team_path}"),
            Some(&json!({ "data": data })),
        );
        assert_eq!(body["data"]["version"], n, "{body}");
        assert_ne!(
            body["data"]["deletion_time"], "",
            "delete_version_after of the mount applies: {body}"
        );
        tv.push(VersionRec {
            version: n,
            state: "active".into(),
            data,
        });
    }
    tag.step("secret:team");
    secrets.push(SecretRec {
        mount: "team".into(),
        path: team_path,
        written_via: "vault".into(),
        max_versions: 0,
        cas_required: false,
        custom_metadata: BTreeMap::new(),
        current_version: 2,
        versions: tv,
    });

    // Token roles.
    let roles_in = [
        (
            "app-role",
            json!({"allowed_policies": [limited], "orphan": false, "renewable": true,
                   "token_explicit_max_ttl": "24h"}),
            "role:app",
        ),
        (
            "ops-role",
            json!({"allowed_policies": [DENY_POLICY], "orphan": true, "renewable": false}),
            "role:ops",
        ),
    ];
    let mut roles = Vec::new();
    for (name, body, t) in roles_in {
        c.expect(
            204,
            r,
            "POST",
            &format!("/v1/auth/token/roles/{name}"),
            Some(&body),
        );
        let data =
            c.expect(200, r, "GET", &format!("/v1/auth/token/roles/{name}"), None)["data"].clone();
        assert_eq!(data["name"], name, "{data}");
        assert_eq!(data["allowed_policies"], body["allowed_policies"], "{data}");
        tag.step(t);
        roles.push(RoleRec {
            name: name.into(),
            data,
        });
    }

    // Tokens.
    let root_acc = c.expect(200, r, "GET", "/v1/auth/token/lookup-self", None)["data"]["accessor"]
        .as_str()
        .expect("root accessor")
        .to_string();
    let mut tokens = vec![(ROOT.to_string(), root.clone(), root_acc)];
    let token_specs = [
        (
            LIMITED,
            "/v1/auth/token/create",
            json!({"policies": [limited], "display_name": markers.display_name,
                   "meta": {"owner": markers.meta, "tier": "gold"}, "num_uses": 0}),
        ),
        (
            CHILD,
            "/v1/auth/token/create",
            json!({"policies": [limited, DENY_POLICY], "display_name": "child"}),
        ),
        (
            USES,
            "/v1/auth/token/create",
            json!({"policies": [limited], "display_name": "uses", "num_uses": 5}),
        ),
        (
            ORPHAN,
            "/v1/auth/token/create-orphan",
            json!({"policies": [limited], "display_name": "orphan"}),
        ),
        (
            ROLE_TOKEN,
            "/v1/auth/token/create/app-role",
            json!({"policies": [limited], "display_name": "role"}),
        ),
    ];
    for (label, path, body) in token_specs {
        let out = c.expect(200, r, "POST", path, Some(&body));
        let token = out["auth"]["client_token"]
            .as_str()
            .unwrap_or_else(|| panic!("{path}: no client_token in {out}"))
            .to_string();
        let accessor = out["auth"]["accessor"]
            .as_str()
            .unwrap_or_else(|| panic!("{path}: no accessor in {out}"))
            .to_string();
        let mut want: Vec<&str> = body["policies"]
            .as_array()
            .expect("policies")
            .iter()
            .map(|p| p.as_str().expect("policy"))
            .collect();
        want.push("default");
        want.sort();
        let mut got: Vec<&str> = out["auth"]["policies"]
            .as_array()
            .unwrap_or_else(|| panic!("{path}: no policies in {out}"))
            .iter()
            .map(|p| p.as_str().expect("policy"))
            .collect();
        got.sort();
        assert_eq!(got, want, "{path}: {out}");
        tag.step(&format!("token:{label}"));
        tokens.push((label.to_string(), token, accessor));
    }
    let mut token_recs = Vec::new();
    for (label, token, accessor) in tokens {
        let d = c.expect(
            200,
            r,
            "POST",
            "/v1/auth/token/lookup-accessor",
            Some(&json!({ "accessor": accessor })),
        )["data"]
            .clone();
        let mut policies: Vec<String> = d["policies"]
            .as_array()
            .unwrap_or_else(|| panic!("lookup {label}: {d}"))
            .iter()
            .map(|p| p.as_str().expect("policy").to_string())
            .collect();
        policies.sort();
        token_recs.push(TokenRec {
            label,
            token,
            accessor,
            policies,
            display_name: d["display_name"].as_str().unwrap_or_default().to_string(),
            meta: d["meta"].clone(),
            num_uses: d["num_uses"].as_u64().unwrap_or(0),
            orphan: d["orphan"].as_bool().unwrap_or(false),
        });
    }
    let limited_rec = token_recs
        .iter()
        .find(|t| t.label == LIMITED)
        .expect("limited");
    assert!(
        limited_rec.display_name.contains(&markers.display_name),
        "display_name {:?} lost the marker",
        limited_rec.display_name
    );
    assert_eq!(limited_rec.meta["owner"], markers.meta.as_str());
    let find = |l: &str| token_recs.iter().find(|t| t.label == l).expect("token");
    assert_eq!(find(USES).num_uses, 5);
    assert!(!find(CHILD).orphan && find(ORPHAN).orphan);

    // Cubbyholes: one entry in the root token's and one in the limited token's (the value names
    // its owner, so a row swapped between them would be served as the other's).
    for (label, token) in [(ROOT, r), (LIMITED, find(LIMITED).token.as_str())] {
        c.expect(
            204,
            token,
            "PUT",
            "/v1/cubbyhole/note",
            Some(&json!({ "owner": label })),
        );
        let got = c.expect(200, token, "GET", "/v1/cubbyhole/note", None);
        assert_eq!(got["data"], json!({ "owner": label }), "{got}");
        tag.step(&format!("cubbyhole:{label}"));
    }

    // Audit devices: a file under audit_dir (the device path and file name are a marker), and a
    // second one that discards.
    let audit_file = audit_dir.join(format!("{}.log", markers.audit_path));
    let audit = vec![
        AuditRec {
            path: markers.audit_path.clone(),
            file_path: audit_file.display().to_string(),
            description: "barrier audit".into(),
        },
        AuditRec {
            path: "kvs-discard".into(),
            file_path: "discard".into(),
            description: "".into(),
        },
    ];
    for (a, t) in audit.iter().zip(["audit:marker", "audit:discard"]) {
        c.expect(
            204,
            r,
            "PUT",
            &format!("/v1/sys/audit/{}", a.path),
            Some(&json!({"type": "file", "description": a.description,
                         "options": {"file_path": a.file_path}})),
        );
        tag.step(t);
    }
    let listed = c.expect(200, r, "GET", "/v1/sys/audit", None);
    for a in &audit {
        assert_eq!(
            listed["data"][format!("{}/", a.path)]["options"]["file_path"],
            a.file_path.as_str(),
            "{listed}"
        );
    }
    assert!(audit_file.is_file(), "audit log {audit_file:?} not created");

    let mut policies = vec![
        PolicyRec {
            name: limited,
            text: limited_text,
        },
        PolicyRec {
            name: DENY_POLICY.into(),
            text: deny_text.into(),
        },
    ];
    let default = c.expect(200, r, "GET", "/v1/sys/policies/acl/default", None);
    policies.push(PolicyRec {
        name: "default".into(),
        text: default["data"]["policy"]
            .as_str()
            .expect("default policy text")
            .to_string(),
    });

    Population {
        okms_id: OKMS_ID.into(),
        markers: markers.clone(),
        path_tag: path_tag.into(),
        root_token: root,
        mounts,
        secrets,
        policies,
        tokens: token_recs,
        roles,
        audit,
        row_tags: tag.tags,
    }
}

// ---------------------------------------------------------------------------------------------
// Checking a served population

/// Every object of `pop`, as served by the server at `base`, checked against the record: secrets
/// and their version states through both APIs, custom metadata, mount configs, policies, tokens
/// (lookup; the limited token still limited), roles and audit devices. Never uses the `num_uses`
/// token. Returns the differences (empty: all served as recorded).
pub fn check_population(base: &str, pop: &Population) -> Vec<String> {
    let c = Client::new(base);
    let r = pop.root_token.as_str();
    let mut errs = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            errs.push(what);
        }
    };
    let okms = format!("/api/{}/v2", pop.okms_id);

    for s in &pop.secrets {
        let meta = c.send(
            r,
            "GET",
            &format!("/v1/{}/metadata/{}", s.mount, s.path),
            None,
        );
        let d = &meta.body["data"];
        check(
            meta.status == 200
                && d["current_version"] == s.current_version
                && d["max_versions"] == s.max_versions
                && d["cas_required"] == s.cas_required
                && (if s.custom_metadata.is_empty() {
                    // No custom metadata: Vault shows null (kvseal may show {}).
                    d["custom_metadata"].is_null() || d["custom_metadata"] == json!({})
                } else {
                    d["custom_metadata"] == json!(s.custom_metadata)
                }),
            format!(
                "metadata of {}/{}: {} {}",
                s.mount, s.path, meta.status, meta.body
            ),
        );
        for v in &s.versions {
            let vm = &d["versions"][v.version.to_string()];
            let state_ok = match v.state.as_str() {
                "destroyed" => vm["destroyed"] == true,
                "deleted" => vm["destroyed"] == false && vm["deletion_time"] != "",
                _ => vm["destroyed"] == false && (vm["deletion_time"] == "" || s.mount == "team"),
            };
            check(
                state_ok,
                format!(
                    "{}/{} v{} is not {}: {vm}",
                    s.mount, s.path, v.version, v.state
                ),
            );
            let a = c.send(
                r,
                "GET",
                &format!("/v1/{}/data/{}?version={}", s.mount, s.path, v.version),
                None,
            );
            let ok = match v.state.as_str() {
                "active" => a.status == 200 && a.body["data"]["data"] == v.data,
                _ => a.status == 404 && a.body["data"]["data"].is_null(),
            };
            check(
                ok,
                format!(
                    "{}/{} v{} ({}): {} {}",
                    s.mount, s.path, v.version, v.state, a.status, a.body
                ),
            );
            if s.mount == "secret" {
                let a = c.send(
                    r,
                    "GET",
                    &format!(
                        "{okms}/secret/{}/version/{}?includeData=true",
                        okms_path(&s.path),
                        v.version
                    ),
                    None,
                );
                let ok = a.status == 200
                    && a.body["state"] == okms_secret_state(&v.state)
                    && (v.state != "active" || a.body["data"] == v.data);
                check(
                    ok,
                    format!(
                        "OKMS {} v{} ({}): {} {}",
                        s.path, v.version, v.state, a.status, a.body
                    ),
                );
            }
        }
        if s.mount == "secret" {
            let a = c.send(
                r,
                "GET",
                &format!("{okms}/secret/{}?includeData=true", okms_path(&s.path)),
                None,
            );
            let cur = s
                .versions
                .iter()
                .find(|v| v.version == s.current_version)
                .expect("current version");
            let ok = a.status == 200
                && a.body["path"] == s.path.as_str()
                && a.body["metadata"]["currentVersion"] == s.current_version
                && a.body["metadata"]["maxVersions"] == s.max_versions
                && a.body["metadata"]["casRequired"] == s.cas_required
                && (s.custom_metadata.is_empty()
                    || a.body["metadata"]["customMetadata"] == json!(s.custom_metadata))
                && a.body["version"]["data"] == cur.data;
            check(ok, format!("OKMS {}: {} {}", s.path, a.status, a.body));
        }
    }

    let mounts = c.send(r, "GET", "/v1/sys/mounts", None);
    for m in &pop.mounts {
        let e = &mounts.body["data"][format!("{}/", m.path)];
        check(
            mounts.status == 200
                && e["type"] == "kv"
                && e["options"]["version"] == "2"
                && e["description"] == m.description.as_str(),
            format!("sys/mounts entry {}/: {e}", m.path),
        );
        let cfg = c.send(r, "GET", &format!("/v1/{}/config", m.path), None);
        check(
            cfg.status == 200 && cfg.body["data"] == m.config,
            format!(
                "{}/config: {} {} (want {})",
                m.path, cfg.status, cfg.body, m.config
            ),
        );
    }
    let okms_cfg = c.send(r, "GET", &format!("{okms}/secretConfig"), None);
    check(
        okms_cfg.status == 200
            && okms_cfg.body["maxVersions"]
                == pop
                    .mounts
                    .iter()
                    .find(|m| m.path == "secret")
                    .expect("secret/")
                    .config["max_versions"],
        format!("OKMS secretConfig: {} {}", okms_cfg.status, okms_cfg.body),
    );

    for p in &pop.policies {
        let a = c.send(r, "GET", &format!("/v1/sys/policies/acl/{}", p.name), None);
        // An unchanged built-in `default` of an earlier kvseal is this one's after a start
        // (README: it now grants the token's cubbyhole and response wrapping, as Vault's does).
        let want = if p.name == "default" && p.text == kvseal::policy::PREVIOUS_DEFAULT_POLICY {
            kvseal::policy::DEFAULT_POLICY
        } else {
            p.text.as_str()
        };
        check(
            a.status == 200 && a.body["data"]["policy"] == want,
            format!("policy {}: {} {}", p.name, a.status, a.body),
        );
    }

    for t in &pop.tokens {
        let a = c.send(
            r,
            "POST",
            "/v1/auth/token/lookup-accessor",
            Some(&json!({"accessor": t.accessor})),
        );
        let d = &a.body["data"];
        let mut policies: Vec<String> = d["policies"]
            .as_array()
            .map(|p| {
                p.iter()
                    .map(|x| x.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default();
        policies.sort();
        check(
            a.status == 200
                && policies == t.policies
                && d["display_name"] == t.display_name.as_str()
                && d["meta"] == t.meta
                && d["num_uses"] == t.num_uses
                && d["orphan"] == t.orphan,
            format!(
                "token {} (lookup-accessor): {} {}",
                t.label, a.status, a.body
            ),
        );
    }
    // Each limited token reads its path and nothing outside.
    for label in [LIMITED, CHILD, ORPHAN, ROLE_TOKEN] {
        let t = pop.token(label).token.as_str();
        let a = c.send(t, "GET", "/v1/secret/data/app/db", None);
        check(
            a.status == 200 && a.body["data"]["data"]["password"] == "db-pass-v4",
            format!(
                "{label} token reads secret/data/app/db: {} {}",
                a.status, a.body
            ),
        );
        for (m, p) in [
            ("GET", "/v1/secret/data/other/x"),
            ("GET", "/v1/sys/mounts"),
            ("LIST", "/v1/sys/policies/acl"),
        ] {
            let a = c.send(t, m, p, None);
            check(
                a.status == 403,
                format!("{label} token {m} {p}: {} {} (want 403)", a.status, a.body),
            );
        }
    }
    let a = c.send(
        pop.token(CHILD).token.as_str(),
        "GET",
        "/v1/secret/data/app/denied",
        None,
    );
    check(
        a.status == 403,
        format!(
            "child token reads app/denied despite the deny: {} {}",
            a.status, a.body
        ),
    );

    for role in &pop.roles {
        let a = c.send(
            r,
            "GET",
            &format!("/v1/auth/token/roles/{}", role.name),
            None,
        );
        check(
            a.status == 200 && a.body["data"] == role.data,
            format!(
                "role {}: {} {} (want {})",
                role.name, a.status, a.body, role.data
            ),
        );
    }

    let a = c.send(r, "GET", "/v1/sys/audit", None);
    for d in &pop.audit {
        let e = &a.body["data"][format!("{}/", d.path)];
        check(
            a.status == 200
                && e["type"] == "file"
                && e["options"]["file_path"] == d.file_path.as_str()
                && e["description"] == d.description.as_str(),
            format!("audit device {}: {e}", d.path),
        );
    }
    errs
}

// ---------------------------------------------------------------------------------------------
// Probes

/// What a probe's baseline must be: `Allowed` (2xx) or `Denied` (403); `Any` for root probes whose
/// baseline is what it is (a deleted version's 404).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Expect {
    Any,
    Allowed,
    Denied,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Probe {
    pub name: String,
    /// Token label.
    pub who: String,
    pub method: String,
    pub path: String,
    pub body: Option<Value>,
    pub expect: Expect,
}

/// The requests replayed after an edit or a migration: root probes first (reading everything),
/// then the limited tokens' (what they could and could not do). The `num_uses` token is used
/// twice, after every lookup of it.
pub fn probes(pop: &Population) -> Vec<Probe> {
    let mut out = Vec::new();
    let mut add = |who: &str, expect: Expect, method: &str, path: String, body: Option<Value>| {
        out.push(Probe {
            name: format!(
                "{who} {method} {path}{}",
                body.as_ref().map(|b| format!(" {b}")).unwrap_or_default()
            ),
            who: who.into(),
            method: method.into(),
            path,
            body,
            expect,
        });
    };
    let okms = format!("/api/{}/v2", pop.okms_id);
    let any = Expect::Any;
    for s in &pop.secrets {
        add(
            ROOT,
            any,
            "GET",
            format!("/v1/{}/metadata/{}", s.mount, s.path),
            None,
        );
        add(
            ROOT,
            any,
            "GET",
            format!("/v1/{}/data/{}", s.mount, s.path),
            None,
        );
        for v in &s.versions {
            add(
                ROOT,
                any,
                "GET",
                format!("/v1/{}/data/{}?version={}", s.mount, s.path, v.version),
                None,
            );
        }
        if s.mount == "secret" && s.path.starts_with("app/") && s.path != "app/denied" {
            let p = okms_path(&s.path);
            add(
                ROOT,
                any,
                "GET",
                format!("{okms}/secret/{p}?includeData=true"),
                None,
            );
            add(ROOT, any, "GET", format!("{okms}/secret/{p}/version"), None);
            for v in &s.versions {
                add(
                    ROOT,
                    any,
                    "GET",
                    format!("{okms}/secret/{p}/version/{}?includeData=true", v.version),
                    None,
                );
            }
        }
    }
    add(ROOT, any, "GET", format!("{okms}/secret"), None);
    add(ROOT, any, "GET", format!("{okms}/secretConfig"), None);
    for p in [
        "/v1/secret/metadata/",
        "/v1/secret/metadata/app/",
        "/v1/team/metadata/svc/",
    ] {
        add(ROOT, any, "LIST", p.into(), None);
    }
    for m in &pop.mounts {
        add(ROOT, any, "GET", format!("/v1/{}/config", m.path), None);
    }
    add(ROOT, any, "GET", "/v1/sys/mounts".into(), None);
    add(ROOT, any, "LIST", "/v1/sys/policies/acl".into(), None);
    for p in &pop.policies {
        add(
            ROOT,
            any,
            "GET",
            format!("/v1/sys/policies/acl/{}", p.name),
            None,
        );
    }
    add(ROOT, any, "GET", "/v1/auth/token/lookup-self".into(), None);
    for t in &pop.tokens {
        add(
            ROOT,
            any,
            "POST",
            "/v1/auth/token/lookup-accessor".into(),
            Some(json!({"accessor": t.accessor})),
        );
    }
    let paths = json!([
        "secret/data/app/db",
        "secret/data/app/denied",
        "secret/data/other/x",
        "secret/metadata/app/db",
        "team/data/x",
        "sys/mounts",
        "sys/policies/acl/x",
        "auth/token/create"
    ]);
    for label in [LIMITED, CHILD] {
        add(
            ROOT,
            any,
            "POST",
            "/v1/sys/capabilities-accessor".into(),
            Some(json!({"accessor": pop.token(label).accessor, "paths": paths})),
        );
    }
    add(ROOT, any, "LIST", "/v1/auth/token/roles".into(), None);
    for role in &pop.roles {
        add(
            ROOT,
            any,
            "GET",
            format!("/v1/auth/token/roles/{}", role.name),
            None,
        );
    }
    add(ROOT, any, "GET", "/v1/sys/audit".into(), None);
    add(ROOT, any, "GET", "/v1/cubbyhole/note".into(), None);

    // The limited token: what it could do, and what it could not.
    let (ok, no) = (Expect::Allowed, Expect::Denied);
    let team = pop.team_path();
    let limited = pop.limited_policy().to_string();
    let root_acc = pop.token(ROOT).accessor.clone();
    add(LIMITED, ok, "GET", "/v1/secret/data/app/db".into(), None);
    add(LIMITED, ok, "GET", "/v1/cubbyhole/note".into(), None);
    add(LIMITED, ok, "GET", "/v1/secret/data/app/okms".into(), None);
    add(LIMITED, ok, "LIST", "/v1/secret/metadata/".into(), None);
    add(
        LIMITED,
        ok,
        "GET",
        "/v1/auth/token/lookup-self".into(),
        None,
    );
    add(LIMITED, ok, "GET", format!("{okms}/secret"), None);
    add(LIMITED, no, "GET", "/v1/secret/data/other/x".into(), None);
    add(
        LIMITED,
        no,
        "GET",
        "/v1/secret/metadata/app/db".into(),
        None,
    );
    add(LIMITED, no, "GET", format!("/v1/team/data/{team}"), None);
    add(
        LIMITED,
        no,
        "POST",
        "/v1/secret/data/app/db".into(),
        Some(json!({"options": {"cas": 4}, "data": {"x": "limited wrote this"}})),
    );
    add(
        LIMITED,
        no,
        "POST",
        "/v1/secret/data/app/new".into(),
        Some(json!({"data": {"x": "limited wrote this"}})),
    );
    add(LIMITED, no, "LIST", "/v1/sys/policies/acl".into(), None);
    add(
        LIMITED,
        no,
        "GET",
        format!("/v1/sys/policies/acl/{limited}"),
        None,
    );
    add(
        LIMITED,
        no,
        "PUT",
        format!("/v1/sys/policies/acl/{limited}"),
        Some(json!({"policy": "path \"*\" { capabilities = [\"sudo\", \"read\", \"update\"] }"})),
    );
    add(
        LIMITED,
        no,
        "POST",
        "/v1/auth/token/create".into(),
        Some(json!({"policies": ["root"]})),
    );
    add(
        LIMITED,
        no,
        "POST",
        "/v1/auth/token/lookup-accessor".into(),
        Some(json!({"accessor": root_acc})),
    );
    add(LIMITED, no, "GET", "/v1/sys/mounts".into(), None);
    add(LIMITED, no, "GET", "/v1/sys/audit".into(), None);
    add(
        LIMITED,
        no,
        "GET",
        "/v1/auth/token/roles/app-role".into(),
        None,
    );
    add(
        LIMITED,
        no,
        "GET",
        format!("{okms}/secret/other%2Fx?includeData=true"),
        None,
    );
    add(
        LIMITED,
        no,
        "GET",
        format!("{okms}/secret/app%2Fdb?includeData=true"),
        None,
    );
    add(LIMITED, no, "GET", format!("{okms}/secretConfig"), None);
    // The child (limited + deny), the num_uses token, the orphan, the role's token.
    add(CHILD, ok, "GET", "/v1/secret/data/app/db".into(), None);
    add(CHILD, no, "GET", "/v1/secret/data/app/denied".into(), None);
    add(CHILD, no, "GET", "/v1/secret/data/other/x".into(), None);
    add(CHILD, no, "GET", format!("/v1/team/data/{team}"), None);
    add(USES, ok, "GET", "/v1/secret/data/app/db".into(), None);
    add(USES, no, "GET", "/v1/secret/data/other/x".into(), None);
    add(ORPHAN, ok, "GET", "/v1/secret/data/app/okms".into(), None);
    add(
        ORPHAN,
        no,
        "POST",
        "/v1/secret/data/app/okms".into(),
        Some(json!({"data": {"x": "orphan wrote this"}})),
    );
    add(ROLE_TOKEN, ok, "GET", "/v1/secret/data/app/db".into(), None);
    add(
        ROLE_TOKEN,
        no,
        "GET",
        "/v1/secret/data/other/x".into(),
        None,
    );
    add(ROLE_TOKEN, no, "GET", "/v1/sys/mounts".into(), None);
    out
}

/// Drops what moves between two identical reads: request and error ids, remaining TTLs, the build's plugin
/// version.
pub fn normalize(v: Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.into_iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "request_id" | "error_id" | "ttl" | "running_plugin_version"
                    )
                })
                .map(|(k, x)| (k, normalize(x)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(normalize).collect()),
        other => other,
    }
}

/// Runs one probe; `Err` on a transport failure (connection reset, timeout).
pub fn run_probe(c: &Client, pop: &Population, p: &Probe) -> Result<Answer, String> {
    let token = pop.token(&p.who).token.clone();
    let a = c.try_send(&token, &p.method, &p.path, p.body.as_ref())?;
    Ok(Answer {
        status: a.status,
        body: normalize(a.body),
    })
}
