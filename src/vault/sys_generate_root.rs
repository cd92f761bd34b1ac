//! Generate-root, on the two routes clients use:
//! - Vault's unauthenticated `sys/generate-root/attempt` (GET status, PUT/POST start, DELETE cancel)
//!   and `sys/generate-root/update`: what the `vault` CLI and hvac send. Raw JSON answers, no
//!   envelope. The unseal key shares are the authorisation; the routes spend the rate budget.
//! - OpenBao's `sys/generate-root-token/attempt` and `update`, behind a token and the ACL: what
//!   `bao operator generate-root` 2.7 sends (OpenBao turned the unauthenticated ones off by
//!   default). Answers inside `data`.
//!
//! Both drive the one attempt the server keeps (see `engine::generate_root`). PGP-encrypted root
//! tokens (`pgp_key`) are not supported: refused, never ignored.

use actix_web::http::StatusCode;
use serde_json::{json, Map, Value};

use super::decode;
use super::error::{VaultError, VaultResult};
use super::key_share::{self, Wording};
use super::request::{Op, VaultRequest};
use super::response::Reply;
use crate::engine::generate_root::{RootGenerationStatus, RootGenerationStep};
use crate::engine::Engine;

/// Vault's unauthenticated paths (what `routes::UNAUTHENTICATED` lists).
pub const ATTEMPT: &str = "sys/generate-root/attempt";
pub const UPDATE: &str = "sys/generate-root/update";

/// `sys/generate-root/attempt` and `sys/generate-root/update` (no token).
pub async fn public_route(engine: &Engine, req: &VaultRequest) -> VaultResult<Reply> {
    let raw = |v: Value| Reply::RawJson(StatusCode::OK, v);
    match (req.path.as_str(), req.op) {
        (ATTEMPT, Op::Read) => Ok(raw(vault_status(&engine.root_generation_status()?, None))),
        (ATTEMPT, Op::Update) => {
            let (status, otp) = engine.start_root_generation(otp_of(&req.body)?.as_deref())?;
            Ok(raw(vault_status(
                &status,
                otp.as_deref().map(String::as_str),
            )))
        }
        (ATTEMPT, Op::Delete) => {
            engine.cancel_root_generation()?;
            Ok(Reply::NoContent)
        }
        (UPDATE, Op::Update) => {
            let (share, nonce) = key_share::parse(&req.body, Wording::Vault)?;
            let step = engine.provide_root_generation_share(&share, &nonce).await?;
            Ok(raw(vault_update(&nonce, &step)))
        }
        _ => Err(VaultError::UnsupportedOperation),
    }
}

/// OpenBao's `sys/generate-root-token/attempt` and `update` (`rest` is the path after `sys/`).
pub async fn route(engine: &Engine, req: &VaultRequest, rest: &str) -> Option<VaultResult<Reply>> {
    let r = match (rest.trim_end_matches('/'), req.op) {
        ("generate-root-token/attempt", Op::Read) => engine
            .root_generation_status()
            .map(|s| Reply::Data(openbao_status(&s, None)))
            .map_err(Into::into),
        ("generate-root-token/attempt", Op::Update) => match otp_of(&req.body) {
            Ok(otp) => engine
                .start_root_generation(otp.as_deref())
                .map(|(s, otp)| Reply::Data(openbao_status(&s, otp.as_deref().map(String::as_str))))
                .map_err(Into::into),
            Err(e) => Err(e),
        },
        ("generate-root-token/attempt", Op::Delete) => engine
            .cancel_root_generation()
            .map(|()| Reply::NoContent)
            .map_err(Into::into),
        ("generate-root-token/update", Op::Update) => {
            match key_share::parse(&req.body, Wording::OpenBao) {
                Ok((share, nonce)) => engine
                    .provide_root_generation_share(&share, &nonce)
                    .await
                    .map(|step| Reply::Data(openbao_update(&nonce, &step)))
                    .map_err(Into::into),
                Err(e) => Err(e),
            }
        }
        ("generate-root-token/attempt" | "generate-root-token/update", _) => {
            Err(VaultError::UnsupportedOperation)
        }
        _ => return None,
    };
    Some(r)
}

/// The client's OTP, if it sent one. A PGP key is refused: kvseal has no PGP, and ignoring it
/// would hand out a token the client believes encrypted.
fn otp_of(body: &Map<String, Value>) -> VaultResult<Option<String>> {
    let field = |k: &str| -> VaultResult<String> {
        body.get(k)
            .map_or(Ok(String::new()), |v| decode::string(v, k))
    };
    if !field("pgp_key")?.is_empty() {
        return Err(VaultError::bad(
            "pgp_key is not supported by kvseal: start the attempt with an otp (or none, and use \
             the one returned)",
        ));
    }
    let otp = field("otp")?;
    Ok((!otp.is_empty()).then_some(otp))
}

/// Vault's `GenerateRootStatusResponse` for a status or a start (`otp` only in the answer that
/// made it).
fn vault_status(s: &RootGenerationStatus, otp: Option<&str>) -> Value {
    json!({
        "nonce": s.nonce.clone().unwrap_or_default(),
        "started": s.nonce.is_some(),
        "progress": s.progress,
        "required": s.required,
        "complete": false,
        "encoded_token": "",
        "encoded_root_token": "",
        "pgp_fingerprint": "",
        "otp": otp.unwrap_or(""),
        "otp_length": s.otp_length,
    })
}

/// Vault's answer to an update: the token in both `encoded_token` and `encoded_root_token` (older
/// clients read the latter, hvac's test among them); `otp_length` is 0 here, as Vault sends it.
fn vault_update(nonce: &str, step: &RootGenerationStep) -> Value {
    let (progress, required, encoded) = progress_of(step);
    json!({
        "nonce": nonce,
        "started": true,
        "progress": progress,
        "required": required,
        "complete": progress == required,
        "encoded_token": encoded,
        "encoded_root_token": encoded,
        "pgp_fingerprint": "",
        "otp": "",
        "otp_length": 0,
    })
}

/// OpenBao's `data` for a status or a start: `nonce` and `pgp_fingerprint` only once started.
fn openbao_status(s: &RootGenerationStatus, otp: Option<&str>) -> Value {
    let mut data = json!({
        "started": s.nonce.is_some(),
        "complete": false,
        "progress": s.progress,
        "required": s.required,
        "otp": otp.unwrap_or(""),
        "otp_length": s.otp_length,
    });
    if let Some(n) = &s.nonce {
        data["nonce"] = json!(n);
        data["pgp_fingerprint"] = json!("");
    }
    data
}

fn openbao_update(nonce: &str, step: &RootGenerationStep) -> Value {
    let (progress, required, encoded) = progress_of(step);
    json!({
        "started": true,
        "complete": progress == required,
        "progress": progress,
        "required": required,
        "nonce": nonce,
        "encoded_token": encoded,
        "pgp_fingerprint": "",
    })
}

fn progress_of(step: &RootGenerationStep) -> (usize, usize, &str) {
    match step {
        RootGenerationStep::Progress { progress, required } => (*progress, *required, ""),
        RootGenerationStep::Done {
            required,
            encoded_token,
        } => (*required, *required, encoded_token.as_str()),
    }
}
