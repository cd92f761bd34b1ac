//! The TOML configuration file (`kvseal server --config FILE`). Unknown keys and bad values stop the
//! server with the file, the key and the reason.

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const DEFAULT_MAX_REQUEST_SIZE: usize = 32 * 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub listener: Listener,
    pub storage: Storage,
    pub seal: Seal,
    #[serde(default)]
    pub log: Log,
    #[serde(default)]
    pub okms: Okms,
    #[serde(default)]
    pub auth: Auth,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub audit: Audit,
}

/// `[audit]`: where audit devices may write.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    /// The directory under which `sys/audit` may create file devices (an absolute path). Unset:
    /// the API may enable only `stdout` and `discard` devices, so a token holding sudo on
    /// `sys/audit` cannot make kvseal write to any file the process can (Vault's CVE-2025-6000).
    #[serde(default)]
    pub allowed_dir: Option<PathBuf>,
}

/// Client-certificate identities.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    #[serde(default)]
    pub cert: Vec<CertIdentity>,
}

/// `[[auth.cert]]`: a verified client certificate whose subject and/or SANs match gets `policies`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct CertIdentity {
    pub name: String,
    /// The whole subject, as an RFC 4514 string (most specific RDN first, as
    /// `openssl x509 -noout -subject -nameopt RFC2253` prints it): `"CN=app1"` matches a certificate
    /// whose subject is exactly CN=app1, `"CN=app1,O=acme"` one made with `-subj /O=acme/CN=app1`.
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub san_dns: Option<String>,
    #[serde(default)]
    pub san_uri: Option<String>,
    #[serde(default)]
    pub policies: Vec<String>,
    /// TTL of tokens from `auth/cert/login` and the default renewal increment (a duration such as
    /// "1h"; default 768h), as Vault's cert role `token_ttl`. Not a limit: renewals may ask for more.
    #[serde(default)]
    pub ttl: Option<String>,
    /// The longest a token from this identity lives, renewals included, counted from login (Vault's
    /// cert role `token_max_ttl`; default and ceiling: the system maximum, 768h).
    #[serde(default)]
    pub max_ttl: Option<String>,
}

impl CertIdentity {
    /// The token settings the engine applies at login and renewal (durations validated at load).
    pub fn token_role(&self) -> crate::engine::tokens::CertRole {
        let secs = |d: &Option<String>| {
            d.as_deref()
                .and_then(crate::engine::duration::parse_go_duration)
                .unwrap_or(0)
        };
        crate::engine::tokens::CertRole {
            name: self.name.clone(),
            policies: self.policies.clone(),
            ttl: secs(&self.ttl),
            max_ttl: secs(&self.max_ttl),
        }
    }
}

/// Rate limits on the endpoints anyone can call without a token, and on failed authentications,
/// per client IP (a token bucket: `per_second` refill, `burst` capacity).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default = "default_rate")]
    pub unauthenticated_per_second: f64,
    #[serde(default = "default_burst")]
    pub unauthenticated_burst: f64,
    /// Deepest nesting of a JSON request body.
    #[serde(default = "default_json_depth")]
    pub max_json_depth: usize,
    /// Most entries in one JSON object (so also most keys in a secret).
    #[serde(default = "default_json_entries")]
    pub max_json_object_entries: usize,
    /// Most elements in one JSON array.
    #[serde(default = "default_json_entries")]
    pub max_json_array_elements: usize,
    /// Longest JSON string, in bytes.
    #[serde(default = "default_json_string")]
    pub max_json_string_length: usize,
    /// A request still running after this long is answered 503 (a duration, as "90s").
    #[serde(default = "default_request_timeout")]
    pub request_timeout: String,
    /// Largest snapshot an online restore (`POST sys/storage/raft/snapshot`) takes, in bytes: the
    /// uploaded archive, and the database inside it. Beyond it: 413, nothing replaced.
    #[serde(default = "default_max_snapshot_size")]
    pub max_snapshot_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            unauthenticated_per_second: default_rate(),
            unauthenticated_burst: default_burst(),
            max_json_depth: default_json_depth(),
            max_json_object_entries: default_json_entries(),
            max_json_array_elements: default_json_entries(),
            max_json_string_length: default_json_string(),
            request_timeout: default_request_timeout(),
            max_snapshot_size: default_max_snapshot_size(),
        }
    }
}

impl Limits {
    /// The request timeout in seconds (validated at load).
    pub fn request_timeout_secs(&self) -> u64 {
        crate::engine::duration::parse_go_duration(&self.request_timeout)
            .filter(|s| *s > 0)
            .map_or(90, |s| s as u64)
    }
}

/// JSON complexity defaults: generous for real secrets (a certificate bundle, a large JSON config),
/// tight enough to refuse pathological bodies. serde_json itself stops at a depth of 128.
fn default_json_depth() -> usize {
    100
}

fn default_json_entries() -> usize {
    10_000
}

/// A single string may be as large as a request (a secret holding one big file is legitimate).
fn default_json_string() -> usize {
    DEFAULT_MAX_REQUEST_SIZE
}

/// 1 GiB: a store of several hundred thousand secrets. The upload goes to a temporary file (with
/// the database taken out of it, about twice the archive on disk while it is verified), never to
/// memory.
fn default_max_snapshot_size() -> u64 {
    1024 * 1024 * 1024
}

/// Vault's default `max_request_duration`.
fn default_request_timeout() -> String {
    "90s".into()
}

/// Generous enough for scripts and test suites on one address, small enough to make guessing unseal
/// shares or tokens from one address pointless.
fn default_rate() -> f64 {
    50.0
}

fn default_burst() -> f64 {
    200.0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    #[serde(default = "default_address")]
    pub address: String,
    /// Plain HTTP must be asked for explicitly, as in Vault.
    #[serde(default)]
    pub tls_disable: bool,
    #[serde(default = "default_max_request_size")]
    pub max_request_size: usize,
    /// PEM certificate chain and key of the server (required unless `tls_disable`).
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// CAs whose client certificates are accepted; enables client-certificate identities.
    #[serde(default)]
    pub tls_client_ca_file: Option<PathBuf>,
    /// Refuse connections without a client certificate (otherwise one is only requested).
    #[serde(default)]
    pub tls_require_client_cert: bool,
    /// "tls12" (default) or "tls13".
    #[serde(default)]
    pub tls_min_version: Option<String>,
    /// Vault's listener timeouts (durations such as "10s", or whole seconds; "0" keeps the default,
    /// as in Vault). The time allowed to read the first request's headers of a connection.
    #[serde(
        default = "default_read_header_timeout",
        deserialize_with = "duration_or_seconds"
    )]
    pub http_read_header_timeout: String,
    /// The time allowed to read a request's body, from the end of its headers (408 beyond).
    #[serde(
        default = "default_read_timeout",
        deserialize_with = "duration_or_seconds"
    )]
    pub http_read_timeout: String,
    /// Vault's write timeout; only "0" (none, Vault's default) is supported.
    #[serde(
        default = "default_write_timeout",
        deserialize_with = "duration_or_seconds"
    )]
    pub http_write_timeout: String,
    /// How long an idle keep-alive connection is kept open.
    #[serde(
        default = "default_idle_timeout",
        deserialize_with = "duration_or_seconds"
    )]
    pub http_idle_timeout: String,
    /// Most connections open at once (rounded up to a multiple of the worker count); further
    /// connections wait in the kernel's accept queue until one closes.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Vault's X-Forwarded-For options: the peers (CIDRs or addresses) whose X-Forwarded-For header
    /// is trusted for the client address (rate limits, audit `remote_address`). Empty: never trusted.
    #[serde(default, deserialize_with = "addrs_list")]
    pub x_forwarded_for_authorized_addrs: Vec<String>,
    /// How many addresses to skip from the end of the X-Forwarded-For chain.
    #[serde(default)]
    pub x_forwarded_for_hop_skips: usize,
    /// Answer 400 when an unauthorized peer sends X-Forwarded-For (otherwise the header is ignored).
    #[serde(default)]
    pub x_forwarded_for_reject_not_authorized: bool,
    /// Answer 400 when a request has no X-Forwarded-For (otherwise the peer address is used).
    #[serde(default)]
    pub x_forwarded_for_reject_not_present: bool,
}

/// Vault takes `x_forwarded_for_authorized_addrs` as a list or as one comma-separated string.
fn addrs_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Addrs {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Addrs::deserialize(d)? {
        Addrs::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect(),
        Addrs::Many(v) => v,
    })
}

/// A listener duration written as a string ("30s") or, as Vault also takes it, a number of seconds.
fn duration_or_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Dur {
        Text(String),
        Seconds(u64),
    }
    Ok(match Dur::deserialize(d)? {
        Dur::Text(s) => s,
        Dur::Seconds(n) => n.to_string(),
    })
}

/// The listener's timeouts, validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenerTimeouts {
    pub read_header: std::time::Duration,
    pub read: std::time::Duration,
    pub idle: std::time::Duration,
}

impl Default for ListenerTimeouts {
    fn default() -> Self {
        Listener::default().timeouts().unwrap_or(ListenerTimeouts {
            read_header: std::time::Duration::from_secs(10),
            read: std::time::Duration::from_secs(30),
            idle: std::time::Duration::from_secs(300),
        })
    }
}

/// A listener duration as Vault's `ParseDurationSecond` reads it: a Go duration ("30s", "5m") or a
/// whole number of seconds.
fn listener_duration(s: &str) -> Option<u64> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    crate::engine::duration::parse_go_duration(s).and_then(|v| u64::try_from(v).ok())
}

impl Listener {
    /// The timeouts; "0" keeps the default (Vault overrides its defaults only with values > 0).
    pub fn timeouts(&self) -> Result<ListenerTimeouts, (&'static str, String)> {
        let one = |key: &'static str, v: &str, default: &str| {
            let secs = listener_duration(v)
                .ok_or_else(|| (key, format!("{v:?} is not a duration such as \"30s\"")))?;
            let secs = if secs == 0 {
                listener_duration(default).unwrap_or(1)
            } else {
                secs
            };
            Ok(std::time::Duration::from_secs(secs))
        };
        match listener_duration(&self.http_write_timeout) {
            Some(0) => {}
            _ => {
                return Err((
                    "listener.http_write_timeout",
                    format!(
                        "{:?}: only \"0\" (no write timeout, Vault's default) is supported",
                        self.http_write_timeout
                    ),
                ))
            }
        }
        Ok(ListenerTimeouts {
            read_header: one(
                "listener.http_read_header_timeout",
                &self.http_read_header_timeout,
                &default_read_header_timeout(),
            )?,
            read: one(
                "listener.http_read_timeout",
                &self.http_read_timeout,
                &default_read_timeout(),
            )?,
            idle: one(
                "listener.http_idle_timeout",
                &self.http_idle_timeout,
                &default_idle_timeout(),
            )?,
        })
    }

    /// The authorized X-Forwarded-For sources as networks (a bare address is a /32 or /128).
    pub fn xff_networks(&self) -> Result<Vec<ipnet::IpNet>, (&'static str, String)> {
        self.x_forwarded_for_authorized_addrs
            .iter()
            .map(|a| {
                a.parse::<ipnet::IpNet>()
                    .or_else(|_| a.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        (
                            "listener.x_forwarded_for_authorized_addrs",
                            format!("{a:?} is not an IP address or CIDR"),
                        )
                    })
            })
            .collect()
    }
}

/// Vault's listener defaults (`command/server.go`).
fn default_read_header_timeout() -> String {
    "10s".into()
}

fn default_read_timeout() -> String {
    "30s".into()
}

fn default_write_timeout() -> String {
    "0".into()
}

fn default_idle_timeout() -> String {
    "5m".into()
}

/// Room for many keep-alive clients, and a bound so that a flood of idle connections cannot exhaust
/// the process's file descriptors or memory.
fn default_max_connections() -> usize {
    4096
}

impl Default for Listener {
    fn default() -> Self {
        Self {
            address: default_address(),
            tls_disable: false,
            max_request_size: DEFAULT_MAX_REQUEST_SIZE,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            tls_require_client_cert: false,
            tls_min_version: None,
            http_read_header_timeout: default_read_header_timeout(),
            http_read_timeout: default_read_timeout(),
            http_write_timeout: default_write_timeout(),
            http_idle_timeout: default_idle_timeout(),
            max_connections: default_max_connections(),
            x_forwarded_for_authorized_addrs: Vec::new(),
            x_forwarded_for_hop_skips: 0,
            x_forwarded_for_reject_not_authorized: false,
            x_forwarded_for_reject_not_present: false,
        }
    }
}

fn default_address() -> String {
    "127.0.0.1:8200".into()
}

fn default_max_request_size() -> usize {
    DEFAULT_MAX_REQUEST_SIZE
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// fsync at every commit: an acknowledged write survives power loss (the default).
    #[default]
    Full,
    /// fsync at checkpoints only: an acknowledged write survives a crash of kvseal, not of the machine.
    Normal,
}

/// Which database holds the store.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum StorageType {
    /// Embedded, one node: `path` is a directory holding `kvseal.db`.
    #[default]
    Sqlite,
    /// Any number of active nodes on one PostgreSQL database (`connection_url`).
    Postgresql,
}

/// The default `max_connections` of the PostgreSQL pool (per node).
pub const DEFAULT_PG_MAX_CONNECTIONS: usize = 16;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    #[serde(rename = "type", default)]
    pub kind: StorageType,
    /// SQLite: a directory; the database is `<path>/kvseal.db`.
    #[serde(default)]
    pub path: PathBuf,
    /// SQLite only (PostgreSQL's durability is its own `synchronous_commit`).
    pub synchronous: Option<Synchronous>,
    /// PostgreSQL: `postgres://USER[:PASSWORD]@HOST:PORT/DBNAME?sslmode=...`.
    pub connection_url: Option<String>,
    /// PostgreSQL: the connection pool's size on this node.
    pub max_connections: Option<usize>,
}

impl Storage {
    pub fn synchronous(&self) -> Synchronous {
        self.synchronous.unwrap_or_default()
    }
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SealType {
    /// The seal key lives in a file; the server unseals itself at start.
    File,
    /// The seal key is split into shares at `sys/init`; the server starts sealed and is unsealed
    /// with `sys/unseal` (`vault operator unseal`).
    Shamir,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seal {
    #[serde(rename = "type")]
    pub kind: SealType,
    /// The seal key file (`type = "file"` only; created with mode 0600 at first start when missing).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    #[serde(default = "default_level")]
    pub level: String,
}

impl Default for Log {
    fn default() -> Self {
        Self {
            level: default_level(),
        }
    }
}

fn default_level() -> String {
    "info".into()
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Okms {
    #[serde(default)]
    pub domains: Vec<OkmsDomain>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct OkmsDomain {
    pub id: uuid::Uuid,
    pub mount: String,
}

impl Config {
    /// Reads and checks a config file. The error names the file, the key and the reason.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read the config file: {e}", path.display()))?;
        let cfg: Config = toml::from_str(&text)
            .map_err(|e| format!("{}: {}", path.display(), e.to_string().trim_end()))?;
        cfg.check()
            .map_err(|(key, reason)| format!("{}: {key}: {reason}", path.display()))?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), (&'static str, String)> {
        if !self.listener.tls_disable {
            if self.listener.tls_cert_file.is_none() || self.listener.tls_key_file.is_none() {
                return Err((
                    "listener.tls_cert_file",
                    "TLS needs tls_cert_file and tls_key_file (or set tls_disable = true to serve plain HTTP)".into(),
                ));
            }
            if let Some(v) = &self.listener.tls_min_version {
                if v != "tls12" && v != "tls13" {
                    return Err((
                        "listener.tls_min_version",
                        format!("{v:?} must be \"tls12\" or \"tls13\""),
                    ));
                }
            }
        } else if self.listener.tls_client_ca_file.is_some() {
            return Err((
                "listener.tls_client_ca_file",
                "client certificates need TLS (tls_disable = false)".into(),
            ));
        }
        for c in &self.auth.cert {
            if c.subject.is_none() && c.san_dns.is_none() && c.san_uri.is_none() {
                return Err((
                    "auth.cert",
                    format!(
                        "{:?} must match on at least one of subject, san_dns, san_uri",
                        c.name
                    ),
                ));
            }
            if let Some(s) = &c.subject {
                crate::tls::parse_dn(s)
                    .map_err(|e| ("auth.cert.subject", format!("{:?}: {s:?}: {e}", c.name)))?;
            }
            for (key, value) in [("auth.cert.ttl", &c.ttl), ("auth.cert.max_ttl", &c.max_ttl)] {
                if let Some(t) = value {
                    if crate::engine::duration::parse_go_duration(t).is_none_or(|s| s <= 0) {
                        return Err((key, format!("{t:?} is not a positive duration")));
                    }
                }
            }
            // Vault refuses a cert role whose token_ttl is above its token_max_ttl.
            let role = c.token_role();
            if role.max_ttl > 0 && role.ttl > role.max_ttl {
                return Err((
                    "auth.cert.ttl",
                    format!("{:?}: ttl cannot be greater than max_ttl", c.name),
                ));
            }
        }
        if crate::engine::duration::parse_go_duration(&self.limits.request_timeout)
            .is_none_or(|s| s <= 0)
        {
            return Err((
                "limits.request_timeout",
                format!(
                    "{:?} is not a positive duration",
                    self.limits.request_timeout
                ),
            ));
        }
        if self.limits.max_snapshot_size == 0 {
            return Err((
                "limits.max_snapshot_size",
                "must be a positive number of bytes".into(),
            ));
        }
        if self.limits.max_json_depth == 0 || self.limits.max_json_depth > 128 {
            return Err(("limits.max_json_depth", "must be from 1 to 128".into()));
        }
        if !(self.limits.unauthenticated_per_second > 0.0
            && self.limits.unauthenticated_burst >= 1.0)
        {
            return Err((
                "limits.unauthenticated_per_second",
                "the rate must be positive and the burst at least 1".into(),
            ));
        }
        if self
            .listener
            .address
            .parse::<std::net::SocketAddr>()
            .is_err()
        {
            return Err((
                "listener.address",
                format!("{:?} is not an IP:port address", self.listener.address),
            ));
        }
        self.listener.timeouts()?;
        if self.listener.max_connections == 0 {
            return Err(("listener.max_connections", "must be greater than 0".into()));
        }
        self.listener.xff_networks()?;
        let l = &self.listener;
        if l.x_forwarded_for_authorized_addrs.is_empty()
            && (l.x_forwarded_for_hop_skips > 0
                || l.x_forwarded_for_reject_not_authorized
                || l.x_forwarded_for_reject_not_present)
        {
            return Err((
                "listener.x_forwarded_for_authorized_addrs",
                "the other x_forwarded_for_* options need it (without it X-Forwarded-For is never read)"
                    .into(),
            ));
        }
        if self.listener.max_request_size == 0 {
            return Err(("listener.max_request_size", "must be greater than 0".into()));
        }
        if let Some(d) = &self.audit.allowed_dir {
            if !d.is_absolute() {
                return Err((
                    "audit.allowed_dir",
                    format!("{} must be an absolute path", d.display()),
                ));
            }
        }
        let st = &self.storage;
        match st.kind {
            StorageType::Sqlite => {
                if st.path.as_os_str().is_empty() {
                    return Err(("storage.path", "must not be empty".into()));
                }
                for (key, set) in [
                    ("storage.connection_url", st.connection_url.is_some()),
                    ("storage.max_connections", st.max_connections.is_some()),
                ] {
                    if set {
                        return Err((key, "is for type = \"postgresql\"".into()));
                    }
                }
            }
            StorageType::Postgresql => {
                match &st.connection_url {
                    None => {
                        return Err((
                            "storage.connection_url",
                            "is required with type = \"postgresql\"".into(),
                        ))
                    }
                    Some(u) if u.trim().is_empty() => {
                        return Err(("storage.connection_url", "must not be empty".into()))
                    }
                    Some(_) => {}
                }
                if st.max_connections == Some(0) {
                    return Err(("storage.max_connections", "must be at least 1".into()));
                }
                if !st.path.as_os_str().is_empty() {
                    return Err((
                        "storage.path",
                        "is for type = \"sqlite\" (PostgreSQL keeps everything in the database)"
                            .into(),
                    ));
                }
                if st.synchronous.is_some() {
                    return Err((
                        "storage.synchronous",
                        "is for type = \"sqlite\" (PostgreSQL's durability is its synchronous_commit)"
                            .into(),
                    ));
                }
            }
        }
        match (self.seal.kind, &self.seal.key_file) {
            (SealType::File, None) => {
                return Err(("seal.key_file", "is required with type = \"file\"".into()))
            }
            (SealType::File, Some(p)) if p.as_os_str().is_empty() => {
                return Err(("seal.key_file", "must not be empty".into()))
            }
            (SealType::Shamir, Some(_)) => {
                return Err((
                    "seal.key_file",
                    "is not used with type = \"shamir\" (the key is split into unseal shares)"
                        .into(),
                ))
            }
            _ => {}
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err((
                "log.level",
                format!("{:?} is not a log level", self.log.level),
            ));
        }
        for d in &self.okms.domains {
            if crate::engine::path::MountPath::parse(&d.mount).is_err() {
                return Err((
                    "okms.domains.mount",
                    format!("{:?} is not a mount path", d.mount),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(s: &str) -> Result<Config, String> {
        let dir = std::env::temp_dir().join(format!("kvseal-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.toml");
        std::fs::write(&p, s).unwrap();
        let r = Config::load(&p);
        std::fs::remove_dir_all(&dir).unwrap();
        r
    }

    const GOOD: &str = "[listener]\naddress = \"127.0.0.1:8200\"\ntls_disable = true\n[storage]\npath = \"/tmp/x\"\n[seal]\ntype = \"file\"\nkey_file = \"/tmp/x/k\"\n";

    #[test]
    fn the_example_config_is_valid() {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
        let c = Config::load(&p).unwrap();
        assert_eq!(c.limits.request_timeout_secs(), 90);
        assert_eq!(c.okms.domains.len(), 1);
    }

    #[test]
    fn good_config_loads() {
        let c = load_str(GOOD).unwrap();
        assert_eq!(c.listener.max_request_size, DEFAULT_MAX_REQUEST_SIZE);
        assert_eq!(c.storage.synchronous(), Synchronous::Full);
    }

    /// (the `[limits]` table, the snapshot bound it loads as, or the key named in the error)
    #[test]
    fn the_snapshot_bound_is_a_positive_number_of_bytes() {
        let cases: [(&str, Result<u64, &str>); 4] = [
            ("", Ok(1 << 30)),
            ("[limits]\nmax_snapshot_size = 5\n", Ok(5)),
            (
                "[limits]\nmax_snapshot_size = 0\n",
                Err("limits.max_snapshot_size"),
            ),
            (
                "[limits]\nmax_snapshot_size = \"1G\"\n",
                Err("max_snapshot_size"),
            ),
        ];
        for (table, want) in cases {
            match (load_str(&format!("{GOOD}{table}")), want) {
                (Ok(c), Ok(n)) => assert_eq!(c.limits.max_snapshot_size, n, "{table}"),
                (Err(e), Err(k)) => assert!(e.contains(k), "{table}: {e}"),
                (r, _) => panic!("{table}: {r:?}"),
            }
        }
    }

    /// (the `[[auth.cert]]` TTL lines, the key named in the error or None when the file loads)
    #[test]
    fn cert_ttls_are_positive_and_ttl_within_max_ttl() {
        let cases = [
            ("ttl = \"1h\"\nmax_ttl = \"2h\"", None),
            ("ttl = \"2h\"\nmax_ttl = \"2h\"", None),
            ("max_ttl = \"2h\"", None),
            ("ttl = \"3h\"\nmax_ttl = \"2h\"", Some("auth.cert.ttl")),
            ("max_ttl = \"0s\"", Some("auth.cert.max_ttl")),
            ("max_ttl = \"soon\"", Some("auth.cert.max_ttl")),
        ];
        for (lines, key) in cases {
            let text = format!("{GOOD}[[auth.cert]]\nname = \"a\"\nsubject = \"CN=a\"\n{lines}\n");
            match (load_str(&text), key) {
                (Ok(c), None) => assert_eq!(c.auth.cert.len(), 1),
                (Err(e), Some(k)) => assert!(e.contains(k), "{lines}: {e}"),
                (r, _) => panic!("{lines}: {r:?}"),
            }
        }
    }

    #[test]
    fn errors_name_file_key_and_reason() {
        let e = load_str(&GOOD.replace("tls_disable", "tls_disabled")).unwrap_err();
        assert!(e.contains("c.toml") && e.contains("tls_disabled"), "{e}");
        let e = load_str(&GOOD.replace("tls_disable = true", "tls_disable = false")).unwrap_err();
        assert!(e.contains("listener.tls_cert_file"), "{e}");
        let e = load_str(&GOOD.replace("127.0.0.1:8200", "nowhere")).unwrap_err();
        assert!(e.contains("listener.address"), "{e}");
        let e = load_str(&GOOD.replace("\"file\"", "\"shamir\"")).unwrap_err();
        assert!(e.contains("seal.key_file"), "{e}");
        let e = load_str(&GOOD.replace("\"file\"", "\"hsm\"")).unwrap_err();
        assert!(e.contains("hsm"), "{e}");
        let e = load_str(&GOOD.replace("tls_disable", "http_write_timeout = \"5s\"\ntls_disable"))
            .unwrap_err();
        assert!(e.contains("listener.http_write_timeout"), "{e}");
        let e = load_str(&GOOD.replace("tls_disable", "http_read_timeout = \"soon\"\ntls_disable"))
            .unwrap_err();
        assert!(
            e.contains("listener.http_read_timeout") && e.contains("soon"),
            "{e}"
        );
        let c = load_str(&GOOD.replace(
            "tls_disable",
            "http_read_timeout = \"0\"\nhttp_idle_timeout = 7\ntls_disable",
        ))
        .unwrap();
        let t = c.listener.timeouts().unwrap();
        assert_eq!(
            (t.read.as_secs(), t.idle.as_secs(), t.read_header.as_secs()),
            (30, 7, 10),
            "0 keeps Vault's default; a number is seconds"
        );
        let with = |line: &str| GOOD.replace("tls_disable", &format!("{line}\ntls_disable"));
        let e = load_str(&with(
            "x_forwarded_for_authorized_addrs = [\"10.0.0.0/33\"]",
        ))
        .unwrap_err();
        assert!(
            e.contains("listener.x_forwarded_for_authorized_addrs"),
            "{e}"
        );
        let e = load_str(&with("x_forwarded_for_reject_not_present = true")).unwrap_err();
        assert!(
            e.contains("listener.x_forwarded_for_authorized_addrs"),
            "{e}"
        );
        let c = load_str(&with(
            "x_forwarded_for_authorized_addrs = \"10.0.0.0/24, 127.0.0.1\"",
        ))
        .unwrap();
        assert_eq!(
            c.listener.xff_networks().unwrap(),
            vec![
                "10.0.0.0/24".parse().unwrap(),
                "127.0.0.1/32".parse().unwrap()
            ],
            "Vault's comma-separated form; a bare address is a /32"
        );
        let e = load_str(&format!("{GOOD}[audit]\nallowed_dir = \"logs\"\n")).unwrap_err();
        assert!(e.contains("audit.allowed_dir"), "{e}");
        let e = load_str(&format!(
            "{GOOD}[[auth.cert]]\nname = \"a\"\nsubject = \"XX=app1\"\n"
        ))
        .unwrap_err();
        assert!(e.contains("auth.cert.subject") && e.contains("XX"), "{e}");
        let ok = load_str(&GOOD.replace(
            "type = \"file\"\nkey_file = \"/tmp/x/k\"",
            "type = \"shamir\"",
        ));
        assert!(ok.is_ok(), "{ok:?}");
    }
}
