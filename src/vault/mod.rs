//! The HashiCorp Vault API (`/v1/...`): a thin translation over the engine. One dispatcher parses the
//! request, authenticates, routes by path (mount paths may contain `/`, so routing is by the mount
//! table, not by actix patterns) and renders the reply or the error.

mod auth_token;
mod decode;
pub mod error;
mod kv;
mod kv_data;
mod kv_metadata;
mod kv_versions;
mod render;
pub mod request;
pub mod response;
mod sys_health;
mod sys_mounts;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

use crate::engine::{Engine, Identity, SealStatus};
use error::{VaultError, VaultResult};
use request::VaultRequest;
use response::Reply;

/// What every Vault handler can reach.
pub struct AppState {
    pub engine: Arc<Engine>,
    pub max_request_size: usize,
}

/// A request being served: the engine, the parsed request and, once authenticated, the caller.
pub struct Ctx<'a> {
    pub engine: &'a Engine,
    pub req: &'a VaultRequest,
    pub identity: Option<Identity>,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/{tail:.*}", web::route().to(dispatch));
}

/// The request id for this request (set by the logging middleware; echoed in the envelope).
fn request_id(req: &HttpRequest) -> String {
    req.extensions()
        .get::<crate::server::RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

use actix_web::HttpMessage;

/// Reads the body up to the configured limit; beyond it, 413 in Vault's error shape.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> VaultResult<Vec<u8>> {
    if let Some(len) = req
        .headers()
        .get("Content-Length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > limit {
            return Err(VaultError::TooLarge);
        }
    }
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| VaultError::bad(format!("error reading request body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(VaultError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn dispatch(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let rid = request_id(&req);
    let result = async {
        let body = read_body(&req, payload, state.max_request_size).await?;
        let vreq = request::parse(&req, &body)?;
        drop(body);
        route(&state.engine, &vreq).await
    }
    .await;
    match result {
        Ok((reply, mount_type)) => reply.render(&rid, mount_type),
        Err(e) => e.render(),
    }
}

/// Paths served without a token (as Vault's unauthenticated paths).
fn is_unauthenticated(path: &str) -> bool {
    matches!(
        path,
        "sys/health" | "sys/seal-status" | "sys/leader" | "sys/init"
    )
}

async fn route(engine: &Engine, req: &VaultRequest) -> VaultResult<(Reply, &'static str)> {
    let path = req.path.as_str();
    if is_unauthenticated(path) {
        return Ok((sys_health::route(engine, req).await?, "system"));
    }
    if engine.seal_status() != SealStatus::Unsealed {
        return Err(VaultError::Sealed);
    }
    let identity = match req.token.as_deref() {
        Some(t) if !t.is_empty() => engine.authenticate(t)?,
        _ => return Err(VaultError::PermissionDenied),
    };
    let ctx = Ctx {
        engine,
        req,
        identity: Some(identity),
    };
    if let Some(rest) = path.strip_prefix("sys/") {
        return Ok((sys_mounts::route(&ctx, rest).await?, "system"));
    }
    if let Some(rest) = path.strip_prefix("auth/token/") {
        return Ok((auth_token::route(&ctx, rest)?, "token"));
    }
    match engine.resolve(path) {
        Some((mount, rest)) => Ok((kv::route(&ctx, &mount, rest).await?, "kv")),
        None => Err(VaultError::NoHandler(path.to_string())),
    }
}
