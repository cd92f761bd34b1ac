//! Rekey of the unseal key shares, on the two routes clients use:
//! - Vault's unauthenticated `sys/rekey/init` (GET status, PUT/POST start, DELETE cancel),
//!   `sys/rekey/update` and `sys/rekey/verify` (GET, PUT/POST, DELETE restart): what `vault
//!   operator rekey`, `bao operator rekey` and hvac send. Raw JSON answers. The current shares are
//!   the authorisation, as in Vault; the routes spend the rate budget.
//! - OpenBao's `sys/rotate/root/init`, `update` and `verify`, behind a token and the ACL: what
//!   `bao operator rotate-keys` sends. Answers inside `data`. (`PUT sys/rotate/root` itself, the
//!   root key rotation without shares, stays in `sys_seal`.)
//!
//! Both drive the one rekey the server keeps (see `engine::rekey`). PGP-encrypted shares
//! (`pgp_keys`) and their stored backup (`backup`) are not supported: refused, never ignored; the
//! backup endpoints answer that there is none, which is always true here.

use actix_web::http::StatusCode;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use zeroize::Zeroizing;

use super::decode;
use super::error::{VaultError, VaultResult};
use super::key_share::{self, Wording};
use super::request::{Op, VaultRequest};
use super::response::Reply;
use crate::engine::rekey::{RekeyStatus, RekeyStep, RekeyVerifyStatus, RekeyVerifyStep};
use crate::engine::Engine;

/// Vault's unauthenticated paths (what `routes::UNAUTHENTICATED` lists).
pub const INIT: &str = "sys/rekey/init";
pub const UPDATE: &str = "sys/rekey/update";
pub const VERIFY: &str = "sys/rekey/verify";

/// `sys/rekey/init`, `update` and `verify` (no token).
pub async fn public_route(engine: &Engine, req: &VaultRequest) -> VaultResult<Reply> {
    let raw = |v: Value| Reply::RawJson(StatusCode::OK, v);
    match (req.path.as_str(), req.op) {
        (INIT, Op::Read) => Ok(raw(vault_status(&engine.rekey_status()?))),
        (INIT, Op::Update) => Ok(raw(vault_status(&start(engine, &req.body)?))),
        (INIT, Op::Delete) => {
            engine.cancel_rekey()?;
            Ok(Reply::NoContent)
        }
        (UPDATE, Op::Update) => {
            let (share, nonce) = key_share::parse(&req.body, Wording::Vault)?;
            Ok(raw(
                match engine.provide_rekey_share(&share, &nonce).await? {
                    RekeyStep::Progress(s) => vault_status(&s),
                    done => done_keys(&done, false),
                },
            ))
        }
        (VERIFY, Op::Read) => verify_status(engine.rekey_verify_status()?, NO_REKEY).map(raw),
        (VERIFY, Op::Delete) => verify_status(engine.restart_rekey_verify()?, NO_REKEY).map(raw),
        (VERIFY, Op::Update) => {
            let (share, nonce) = key_share::parse(&req.body, Wording::Vault)?;
            Ok(raw(
                match engine.provide_rekey_verify_share(&share, &nonce).await? {
                    RekeyVerifyStep::Progress(s) => verify_json(&s),
                    RekeyVerifyStep::Done { nonce } => json!({"nonce": nonce, "complete": true}),
                },
            ))
        }
        _ => Err(VaultError::UnsupportedOperation),
    }
}

const NO_REKEY: &str = "no rekey configuration found";
const NO_ROTATION: &str = "no rotation configuration found";
const NO_BACKUP: &str = "no backed-up keys found";

/// OpenBao's `sys/rotate/root/init|update|verify`, and the backup endpoints of both APIs (`rest` is
/// the path after `sys/`).
pub async fn route(engine: &Engine, req: &VaultRequest, rest: &str) -> Option<VaultResult<Reply>> {
    let r = match (rest.trim_end_matches('/'), req.op) {
        ("rotate/root/init", Op::Read) => engine
            .rekey_status()
            .map(|s| Reply::Data(openbao_status(&s)))
            .map_err(Into::into),
        ("rotate/root/init", Op::Update) => {
            start(engine, &req.body).map(|s| Reply::Data(openbao_status(&s)))
        }
        ("rotate/root/init", Op::Delete) => engine
            .cancel_rekey()
            .map(|()| Reply::NoContent)
            .map_err(Into::into),
        ("rotate/root/update", Op::Update) => match key_share::parse(&req.body, Wording::OpenBao) {
            Ok((share, nonce)) => match engine.provide_rekey_share(&share, &nonce).await {
                Ok(RekeyStep::Progress(s)) => Ok(Reply::Data(openbao_status(&s))),
                Ok(done) => Ok(Reply::Data(done_keys(&done, true))),
                Err(e) => Err(e.into()),
            },
            Err(e) => Err(e),
        },
        ("rotate/root/verify", Op::Read) => engine
            .rekey_verify_status()
            .map_err(Into::into)
            .and_then(|s| verify_status(s, NO_ROTATION))
            .map(Reply::Data),
        ("rotate/root/verify", Op::Delete) => engine
            .restart_rekey_verify()
            .map_err(Into::into)
            .and_then(|s| verify_status(s, NO_ROTATION))
            .map(Reply::Data),
        ("rotate/root/verify", Op::Update) => match key_share::parse(&req.body, Wording::OpenBao) {
            Ok((share, nonce)) => match engine.provide_rekey_verify_share(&share, &nonce).await {
                Ok(RekeyVerifyStep::Progress(s)) => Ok(Reply::Data(verify_json(&s))),
                Ok(RekeyVerifyStep::Done { nonce }) => {
                    Ok(Reply::Data(json!({"complete": true, "nonce": nonce})))
                }
                Err(e) => Err(e.into()),
            },
            Err(e) => Err(e),
        },
        // Backups exist only of PGP-encrypted shares, which kvseal never makes.
        ("rekey/backup" | "rotate/root/backup", Op::Read) => Err(VaultError::bad(NO_BACKUP)),
        ("rekey/backup" | "rotate/root/backup", Op::Delete) => Ok(Reply::NoContent),
        (
            "rotate/root/init" | "rotate/root/update" | "rotate/root/verify" | "rekey/backup"
            | "rotate/root/backup",
            _,
        ) => Err(VaultError::UnsupportedOperation),
        _ => return None,
    };
    Some(r)
}

/// Starts a rekey from an init body: `secret_shares`, `secret_threshold`, `require_verification`.
/// `pgp_keys` (null or empty is what clients send when they have none) and `backup` are refused.
fn start(engine: &Engine, body: &Map<String, Value>) -> VaultResult<RekeyStatus> {
    let int = |k: &str| body.get(k).map_or(Ok(0), |v| decode::int(v, k));
    let flag = |k: &str| body.get(k).map_or(Ok(false), |v| decode::bool_(v, k));
    let pgp = match body.get("pgp_keys") {
        None | Some(Value::Null) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    };
    if flag("backup")? && !pgp {
        return Err(VaultError::bad(
            "cannot request a backup of the new keys without providing PGP keys for encryption",
        ));
    }
    if pgp {
        return Err(VaultError::bad(
            "pgp_keys is not supported by kvseal: the new unseal keys are returned in clear \
             (omit pgp_keys and backup)",
        ));
    }
    let (shares, threshold) = (int("secret_shares")?, int("secret_threshold")?);
    Ok(engine.start_rekey(shares, threshold, flag("require_verification")?)?)
}

/// Vault's `RekeyStatusResponse` (`verification_nonce` only when set).
fn vault_status(s: &RekeyStatus) -> Value {
    let mut v = json!({
        "nonce": s.nonce.clone().unwrap_or_default(),
        "started": s.nonce.is_some(),
        "t": s.threshold,
        "n": s.shares,
        "progress": s.progress,
        "required": s.required,
        "pgp_fingerprints": null,
        "backup": false,
        "verification_required": s.verification_required,
    });
    if let Some(n) = &s.verification_nonce {
        v["verification_nonce"] = json!(n);
    }
    v
}

/// OpenBao's `data` for `sys/rotate/root/init`: before a rekey only `n`, `t`, `started` and
/// `required`.
fn openbao_status(s: &RekeyStatus) -> Value {
    match &s.nonce {
        None => json!({"n": 0, "t": 0, "started": false, "required": s.required}),
        Some(nonce) => json!({
            "n": s.shares,
            "t": s.threshold,
            "nonce": nonce,
            "progress": s.progress,
            "required": s.required,
            "started": true,
            "verification_required": s.verification_required,
            "verification_nonce": s.verification_nonce.clone().unwrap_or_default(),
        }),
    }
}

/// The new shares, hex and base64 (Vault's `RekeyUpdateResponse`; OpenBao's `data` always has
/// `verification_nonce`, Vault's only when set).
fn done_keys(step: &RekeyStep, openbao: bool) -> Value {
    let RekeyStep::Done {
        nonce,
        keys,
        verification_nonce,
    } = step
    else {
        return Value::Null;
    };
    let hex: Vec<Zeroizing<String>> = keys
        .iter()
        .map(|k| Zeroizing::new(k.iter().map(|b| format!("{b:02x}")).collect()))
        .collect();
    let b64: Vec<Zeroizing<String>> = keys
        .iter()
        .map(|k| Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(k.as_slice())))
        .collect();
    let mut v = json!({
        "nonce": nonce,
        "complete": true,
        "keys": hex.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        "keys_base64": b64.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        "pgp_fingerprints": null,
        "backup": false,
        "verification_required": verification_nonce.is_some(),
    });
    match verification_nonce {
        Some(n) => v["verification_nonce"] = json!(n),
        None if openbao => v["verification_nonce"] = json!(""),
        None => {}
    }
    v
}

fn verify_status(s: Option<RekeyVerifyStatus>, none: &str) -> VaultResult<Value> {
    s.map(|s| verify_json(&s))
        .ok_or_else(|| VaultError::bad(none))
}

fn verify_json(s: &RekeyVerifyStatus) -> Value {
    json!({
        "nonce": s.nonce,
        "started": s.started,
        "t": s.threshold,
        "n": s.shares,
        "progress": s.progress,
    })
}
