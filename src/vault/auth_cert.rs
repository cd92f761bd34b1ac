//! `auth/cert/login`: a verified client certificate that matches an `[[auth.cert]]` identity gets a
//! token with that identity's policies (so `vault login -method=cert` works), for the identity's `ttl`
//! within its `max_ttl` (the engine applies both, at login and at every renewal).

use serde_json::json;

use super::decode;
use super::error::{VaultError, VaultResult};
use super::request::{Op, VaultRequest};
use super::response::Reply;
use crate::app::AppState;

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
    let (token, row, warnings) = state.engine.issue_cert_token(&cert.name).await?;
    let auth = json!({
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
    });
    Ok(if warnings.is_empty() {
        Reply::Auth(auth)
    } else {
        Reply::AuthWarn(auth, warnings)
    })
}
