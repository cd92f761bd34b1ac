//! `auth/cert/login`: a verified client certificate that matches an `[[auth.cert]]` identity gets a
//! token with that identity's policies (so `vault login -method=cert` works).

use serde_json::json;

use super::decode;
use super::error::{VaultError, VaultResult};
use super::request::{Op, VaultRequest};
use super::response::Reply;
use crate::app::AppState;
use crate::engine::duration::parse_go_duration;
use crate::engine::tokens::SYSTEM_MAX_TTL;

pub async fn login(
    state: &AppState,
    http: &actix_web::HttpRequest,
    req: &VaultRequest,
) -> VaultResult<Reply> {
    if req.op != Op::Update {
        return Err(VaultError::UnsupportedOperation);
    }
    let name = req
        .body
        .get("name")
        .map(|v| decode::string(v, "name"))
        .transpose()?
        .filter(|n| !n.is_empty());
    let (_, cert) = state
        .cert_identity(http, name.as_deref())
        .ok_or_else(|| VaultError::bad("invalid certificate or no client certificate supplied"))?;
    let ttl = cert
        .ttl
        .as_deref()
        .and_then(parse_go_duration)
        .unwrap_or(SYSTEM_MAX_TTL);
    let (token, row) = state
        .engine
        .issue_token(
            &format!("cert-{}", cert.name),
            &cert.policies,
            ttl,
            "auth/cert/login",
        )
        .await?;
    Ok(Reply::Auth(json!({
        "client_token": token.expose(),
        "accessor": row.accessor,
        "policies": row.policies,
        "token_policies": row.policies,
        "metadata": {"cert_name": cert.name},
        "lease_duration": row.creation_ttl,
        "renewable": row.renewable,
        "entity_id": "",
        "token_type": "service",
        "orphan": true,
        "mfa_requirement": null,
        "num_uses": 0,
    })))
}
