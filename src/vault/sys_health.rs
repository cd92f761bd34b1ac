//! Unauthenticated system endpoints: `sys/health`, `sys/seal-status`, `sys/leader`, `sys/init`.
//! All four answer raw JSON, without the envelope (the Go client and hvac decode them directly).

use actix_web::http::StatusCode;
use serde_json::{json, Value};

use base64::Engine as _;

use super::decode;
use super::error::{VaultError, VaultResult};
use super::request::{Op, VaultRequest};
use super::response::Reply;
use crate::engine::{Engine, SealStatus};

/// The version kvseal reports: the Vault API level it implements, with kvseal's own as build
/// metadata (tools that compare versions see a Vault they know).
pub const VAULT_VERSION: &str = concat!("1.17.0+kvseal.", env!("CARGO_PKG_VERSION"));

pub async fn route(engine: &Engine, req: &VaultRequest) -> VaultResult<Reply> {
    match (req.path.as_str(), req.op) {
        ("sys/health", Op::Read | Op::Head) => health(engine, req),
        ("sys/seal-status", Op::Read) => Ok(Reply::RawJson(StatusCode::OK, seal_status(engine))),
        ("sys/leader", Op::Read) => Ok(leader(engine)),
        ("sys/init", Op::Read) => Ok(Reply::RawJson(
            StatusCode::OK,
            json!({"initialized": engine.seal_status() != SealStatus::Uninitialized}),
        )),
        ("sys/init", Op::Update) => init(engine, req).await,
        ("sys/unseal", Op::Update) => unseal(engine, req).await,
        _ => Err(VaultError::UnsupportedOperation),
    }
}

fn now_unix(engine: &Engine) -> i64 {
    engine.clock().now() / crate::engine::clock::NANOS_PER_SEC
}

/// `sys/health`: 200 active, 501 uninitialised, 503 sealed; each overridable by a query parameter.
/// An override must be a final status (200–599): a 1xx would be followed by a body on a response
/// the client takes as interim, breaking the connection's framing. A 204 or 304 is sent, as the
/// status demands, without a body.
fn health(engine: &Engine, req: &VaultRequest) -> VaultResult<Reply> {
    let status = engine.seal_status();
    let (default_code, param) = match status {
        SealStatus::Unsealed => (200, "activecode"),
        SealStatus::Uninitialized => (501, "uninitcode"),
        SealStatus::Sealed => (503, "sealedcode"),
    };
    let code = match req.query.get(param) {
        None => default_code,
        Some(c) => c
            .parse::<u16>()
            .ok()
            .filter(|c| (200..=599).contains(c))
            .ok_or_else(|| {
                VaultError::bad(format!(
                    "invalid value for {param}: {c:?} (a status code from 200 to 599)"
                ))
            })?,
    };
    let mut code = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    if status == SealStatus::Unsealed && !engine.storage_reachable() {
        // The shared database does not answer: this node cannot serve, so a load balancer must
        // drain it (no override: `activecode` is for a node that works).
        code = StatusCode::SERVICE_UNAVAILABLE;
    }
    let body = json!({
        "initialized": status != SealStatus::Uninitialized,
        "sealed": status != SealStatus::Unsealed,
        "standby": false,
        "performance_standby": false,
        "replication_performance_mode": "disabled",
        "replication_dr_mode": "disabled",
        "server_time_utc": now_unix(engine),
        "version": VAULT_VERSION,
        "enterprise": false,
        "cluster_name": "kvseal",
        "cluster_id": "",
        "echo_duration_ms": 0,
        "clock_skew_ms": 0,
    });
    if req.op == Op::Head || code == StatusCode::NO_CONTENT || code == StatusCode::NOT_MODIFIED {
        return Ok(Reply::Empty(code));
    }
    Ok(Reply::RawJson(code, body))
}

/// `sys/seal-status` (and the answer of `sys/unseal`): raw JSON, as the Go client decodes it.
pub fn seal_status(engine: &Engine) -> Value {
    let info = engine.seal_info();
    json!({
        "type": info.kind,
        "initialized": info.status != SealStatus::Uninitialized,
        "sealed": info.status != SealStatus::Unsealed,
        "t": info.threshold,
        "n": info.shares,
        "progress": info.progress,
        "nonce": "",
        "version": VAULT_VERSION,
        "build_date": "",
        "migration": false,
        "cluster_name": "kvseal",
        "cluster_id": "",
        "recovery_seal": false,
        "storage_type": "sqlite",
    })
}

/// `sys/leader`. `active_time` must be an RFC 3339 timestamp: the Go client decodes it into a
/// `time.Time`, so `""` would break `vault status`.
fn leader(engine: &Engine) -> Reply {
    if engine.seal_status() != SealStatus::Unsealed {
        return Reply::RawJson(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"errors": ["Vault is sealed"]}),
        );
    }
    Reply::RawJson(
        StatusCode::OK,
        json!({
            "ha_enabled": false,
            "is_self": false,
            "active_time": "0001-01-01T00:00:00Z",
            "leader_address": "",
            "leader_cluster_address": "",
            "performance_standby": false,
            "performance_standby_last_remote_wal": 0,
        }),
    )
}

/// `PUT sys/init` (`vault operator init`, hvac's `sys.initialize`). With the file seal there are no
/// unseal keys to hand out and the server is unsealed at once; with the Shamir seal the response
/// carries `secret_shares` keys (hex and base64), any `secret_threshold` of which unseal it.
async fn init(engine: &Engine, req: &VaultRequest) -> VaultResult<Reply> {
    let count = |field: &str| -> VaultResult<Option<usize>> {
        match req.body.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                let n = decode::int(v, field)?;
                usize::try_from(n)
                    .map(Some)
                    .map_err(|_| VaultError::bad(format!("{field} must not be negative")))
            }
        }
    };
    let shares = count("secret_shares")?.unwrap_or(1);
    let threshold = count("secret_threshold")?.unwrap_or(1);
    let out = engine.init(None, shares, threshold).await?;
    let hex: Vec<String> = out
        .shares
        .iter()
        .map(|s| s.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    let b64: Vec<String> = out
        .shares
        .iter()
        .map(|s| base64::engine::general_purpose::STANDARD.encode(s.as_slice()))
        .collect();
    Ok(Reply::RawJson(
        StatusCode::OK,
        json!({
            "keys": hex,
            "keys_base64": b64,
            "root_token": out.root_token.expose(),
        }),
    ))
}

/// `PUT sys/unseal` `{"key": "<hex or base64 share>"}` or `{"reset": true}`: the seal status back.
async fn unseal(engine: &Engine, req: &VaultRequest) -> VaultResult<Reply> {
    let reset = match req.body.get("reset") {
        Some(v) => decode::bool_(v, "reset")?,
        None => false,
    };
    let key = match req.body.get("key").filter(|v| !v.is_null()) {
        Some(v) => {
            let s = decode::string(v, "key")?;
            let s = s.trim();
            // Vault takes a share in hex or in base64.
            let bytes = crate::crypto::decode_key_text(s)
                .ok_or_else(|| VaultError::bad("'key' must be a valid hex or base64 string"))?;
            Some(bytes)
        }
        None if !reset => return Err(VaultError::bad("missing required input key")),
        None => None,
    };
    engine.unseal(key.as_deref().map(|k| k.as_slice()), reset)?;
    if engine.seal_status() == SealStatus::Unsealed {
        // A Shamir store is sealed at start, when the file-seal stores get the upgraded built-in
        // `default` policy (server.rs): it gets it at its unseal instead (no write when current).
        engine.ensure_default_policy().await?;
    }
    Ok(Reply::RawJson(StatusCode::OK, seal_status(engine)))
}
