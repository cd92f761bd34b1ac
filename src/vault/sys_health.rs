//! Unauthenticated system endpoints: `sys/health`, `sys/seal-status`, `sys/leader`, `sys/init`.
//! All four answer raw JSON, without the envelope (the Go client and hvac decode them directly).

use actix_web::http::StatusCode;
use serde_json::{json, Value};

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
        ("sys/health", Op::Read | Op::Head) => Ok(health(engine, req)),
        ("sys/seal-status", Op::Read) => Ok(Reply::RawJson(StatusCode::OK, seal_status(engine))),
        ("sys/leader", Op::Read) => Ok(leader(engine)),
        ("sys/init", Op::Read) => Ok(Reply::RawJson(
            StatusCode::OK,
            json!({"initialized": engine.seal_status() != SealStatus::Uninitialized}),
        )),
        ("sys/init", Op::Update) => init(engine, req).await,
        _ => Err(VaultError::UnsupportedOperation),
    }
}

fn now_unix(engine: &Engine) -> i64 {
    engine.clock().now() / crate::engine::clock::NANOS_PER_SEC
}

/// `sys/health`: 200 active, 501 uninitialised, 503 sealed; each overridable by a query parameter.
fn health(engine: &Engine, req: &VaultRequest) -> Reply {
    let status = engine.seal_status();
    let (default_code, param) = match status {
        SealStatus::Unsealed => (200, "activecode"),
        SealStatus::Uninitialized => (501, "uninitcode"),
        SealStatus::Sealed => (503, "sealedcode"),
    };
    let code = req
        .query
        .get(param)
        .and_then(|c| c.parse::<u16>().ok())
        .unwrap_or(default_code);
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
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
    if req.op == Op::Head {
        return Reply::Empty(code);
    }
    Reply::RawJson(code, body)
}

fn seal_status(engine: &Engine) -> Value {
    let status = engine.seal_status();
    json!({
        "type": "file",
        "initialized": status != SealStatus::Uninitialized,
        "sealed": status != SealStatus::Unsealed,
        "t": 1,
        "n": 1,
        "progress": 0,
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

/// `PUT sys/init`. With the file seal there are no unseal keys to hand out: `keys` are empty and the
/// server is unsealed as soon as it is initialised. `secret_shares`/`secret_threshold` are accepted
/// (hvac and `vault operator init` send them) and checked for sanity only.
async fn init(engine: &Engine, req: &VaultRequest) -> VaultResult<Reply> {
    for field in ["secret_shares", "secret_threshold"] {
        if let Some(v) = req.body.get(field) {
            if decode::int(v, field)? < 0 {
                return Err(VaultError::bad(format!("{field} must not be negative")));
            }
        }
    }
    let token = engine.init(None).await?;
    Ok(Reply::RawJson(
        StatusCode::OK,
        json!({
            "keys": [],
            "keys_base64": [],
            "root_token": token.expose(),
        }),
    ))
}
