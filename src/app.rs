//! What both HTTP APIs share: the application state, the request id, the body reader and token
//! extraction. Each API renders its own wire shapes; nothing here knows them.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::{web, HttpMessage, HttpRequest};
use futures_util::StreamExt;

use crate::engine::path::MountPath;
use crate::engine::Engine;
use crate::pipeline::json_limits::JsonLimits;

/// What every handler can reach.
pub struct AppState {
    pub engine: Arc<Engine>,
    pub max_request_size: usize,
    /// Largest snapshot `POST sys/storage/raft/snapshot` takes (`limits.max_snapshot_size`): the
    /// archive uploaded, and the database inside it.
    pub max_snapshot_size: u64,
    /// OKMS domain id → the kv-v2 mount that backs it.
    pub okms_domains: HashMap<uuid::Uuid, MountPath>,
    /// Client-certificate identities (`[[auth.cert]]`).
    pub cert_identities: Vec<crate::config::CertIdentity>,
    /// Per-client limits on unauthenticated endpoints and failed authentications.
    pub limiter: crate::ratelimit::RateLimiter,
    /// How long a request may run before it is answered 503.
    pub request_timeout: std::time::Duration,
    /// How long reading a request body may take (Vault's `http_read_timeout`); beyond it the request
    /// is answered 408 and the connection closed, so a client trickling its body cannot hold it.
    pub http_read_timeout: std::time::Duration,
}

impl AppState {
    /// A state with no certificate identities and the default limits (tests and simple set-ups).
    pub fn new(
        engine: Arc<Engine>,
        max_request_size: usize,
        okms_domains: HashMap<uuid::Uuid, MountPath>,
    ) -> Self {
        let limits = crate::config::Limits::default();
        Self {
            engine,
            max_request_size,
            max_snapshot_size: limits.max_snapshot_size,
            okms_domains,
            cert_identities: Vec::new(),
            limiter: crate::ratelimit::RateLimiter::new(
                limits.unauthenticated_per_second,
                limits.unauthenticated_burst,
            ),
            request_timeout: std::time::Duration::from_secs(limits.request_timeout_secs()),
            http_read_timeout: crate::config::ListenerTimeouts::default().read,
        }
    }

    /// The `[[auth.cert]]` entry the connection's verified client certificate matches, if any.
    pub fn cert_identity(
        &self,
        req: &HttpRequest,
        name: Option<&str>,
    ) -> Option<(crate::tls::PeerCertificate, crate::config::CertIdentity)> {
        let peer = req.conn_data::<crate::tls::PeerCertificate>()?.clone();
        let found = self
            .cert_identities
            .iter()
            .filter(|c| name.is_none_or(|n| n == c.name))
            .find(|c| {
                c.subject.as_deref().is_none_or(|s| peer.subject_matches(s))
                    && c.san_dns
                        .as_deref()
                        .is_none_or(|d| peer.san_dns.iter().any(|x| x == d))
                    && c.san_uri
                        .as_deref()
                        .is_none_or(|u| peer.san_uri.iter().any(|x| x == u))
            })?
            .clone();
        Some((peer, found))
    }
}

/// JSON complexity limits applied to every request body of both APIs (set once at start-up).
static JSON_LIMITS: std::sync::OnceLock<JsonLimits> = std::sync::OnceLock::new();

pub fn set_json_limits(l: &crate::config::Limits) {
    let _ = JSON_LIMITS.set(JsonLimits::from_config(l));
}

/// The JSON limits in force (the defaults until start-up sets them).
pub fn json_limits() -> JsonLimits {
    *JSON_LIMITS.get_or_init(JsonLimits::default)
}

/// The client's IP address: as `client_addr::middleware` resolved it (the forwarded client behind a
/// trusted proxy), else the peer's.
pub fn client_ip(req: &HttpRequest) -> Option<std::net::IpAddr> {
    req.extensions()
        .get::<crate::client_addr::ClientAddr>()
        .map(|c| c.0)
        .or_else(|| req.peer_addr().map(|a| a.ip()))
}

/// The id of one request: in the log line, in Vault envelopes and in OKMS error bodies.
#[derive(Clone)]
pub struct RequestId(pub String);

/// A fresh request id: a v4 UUID from the thread's CSPRNG (no system call per request, unlike
/// `Uuid::new_v4`). Request ids are labels, not secrets.
pub fn new_request_id() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string()
}

/// The request id set by the logging middleware (a fresh one when called without it, in tests).
pub fn request_id(req: &HttpRequest) -> String {
    req.extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_else(new_request_id)
}

/// Why a body could not be read.
pub enum BodyError {
    TooLarge,
    Read(String),
    /// Not all of it arrived within `AppState::http_read_timeout` (408; the connection is closed).
    TimedOut,
    /// A body written to a file could not be written (disk full, I/O error).
    Write(String),
}

/// Reads the body up to `limit` bytes (checking `Content-Length` first), within the app's
/// `http_read_timeout` for the whole body.
pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    if let Some(len) = req
        .headers()
        .get("Content-Length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > limit {
            return Err(BodyError::TooLarge);
        }
    }
    let timeout = req.app_data::<web::Data<AppState>>().map_or_else(
        || crate::config::ListenerTimeouts::default().read,
        |s| s.http_read_timeout,
    );
    let read = async {
        let mut body = Vec::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| BodyError::Read(e.to_string()))?;
            if body.len() + chunk.len() > limit {
                return Err(BodyError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    actix_web::rt::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(BodyError::TimedOut))
}

/// Writes the body to the new file `path` (mode 0600) as it arrives, up to `limit` bytes (checking
/// `Content-Length` first), within the app's `http_read_timeout` for the whole body: a snapshot
/// upload, which may be far larger than a request body held in memory may be. Returns how many
/// bytes were written; the file is left to the caller (in its private directory) either way.
pub async fn write_body_to_file(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: u64,
    path: &std::path::Path,
) -> Result<u64, BodyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(len) = req
        .headers()
        .get("Content-Length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > limit {
            return Err(BodyError::TooLarge);
        }
    }
    let timeout = req.app_data::<web::Data<AppState>>().map_or_else(
        || crate::config::ListenerTimeouts::default().read,
        |s| s.http_read_timeout,
    );
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| BodyError::Write(e.to_string()))?;
    let mut file = std::io::BufWriter::with_capacity(256 * 1024, file);
    let read = async {
        let mut written = 0u64;
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| BodyError::Read(e.to_string()))?;
            written += chunk.len() as u64;
            if written > limit {
                return Err(BodyError::TooLarge);
            }
            // Buffered: most chunks are copied in memory; a full buffer is one write to the page
            // cache, short enough to do on the worker.
            file.write_all(&chunk)
                .map_err(|e| BodyError::Write(e.to_string()))?;
        }
        file.flush().map_err(|e| BodyError::Write(e.to_string()))?;
        Ok(written)
    };
    actix_web::rt::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(BodyError::TimedOut))
}

/// The token: `X-Vault-Token` first, then the first `Authorization: Bearer …` (Vault's
/// `getTokenFromReq`; okms-cli's token auth and External Secrets use one or the other).
pub fn token_of(req: &HttpRequest) -> Option<String> {
    if let Some(t) = req
        .headers()
        .get("X-Vault-Token")
        .and_then(|v| v.to_str().ok())
    {
        return Some(t.trim().to_string());
    }
    req.headers()
        .get_all("Authorization")
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("Bearer ").map(|t| t.trim().to_string()))
}
