//! The HashiCorp Vault API (`/v1/...`): a thin translation over the engine. One dispatcher parses the
//! request, authenticates, routes by path (mount paths may contain `/`, so routing is by the mount
//! table, not by actix patterns) and renders the reply or the error.

pub(crate) mod acl;
mod auth_cert;
pub(crate) mod auth_token;
mod decode;
pub mod error;
pub(crate) mod kv;
mod kv_data;
mod kv_metadata;
mod kv_versions;
pub(crate) mod render;
pub mod request;
pub mod response;
mod sys_audit;
mod sys_health;
pub(crate) mod sys_mounts;
mod sys_policy;
mod sys_seal;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_acl;
#[cfg(test)]
mod tests_audit;
#[cfg(test)]
mod tests_seal;

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::audit::http::{self as audit_http, Exchange};
use crate::engine::{Engine, Identity, SealStatus};
use error::{VaultError, VaultResult};
use request::VaultRequest;
use response::Reply;

pub use crate::app::AppState;

impl Ctx<'_> {
    /// Whether the caller holds `sudo` on `path` (root always does).
    pub fn has_sudo(&self, path: &str) -> bool {
        self.acl.allows(path, crate::policy::Capabilities::SUDO)
    }
}

/// A request being served: the engine, the parsed request and, once authenticated, the caller.
pub struct Ctx<'a> {
    pub engine: &'a Arc<Engine>,
    pub req: &'a VaultRequest,
    pub identity: Option<Identity>,
    /// The caller's ACL (root's allows everything).
    pub acl: Arc<crate::policy::Acl>,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    // A prefix scope, not a `{tail:.*}` pattern: actix matches static prefixes without a regex (a
    // regex match per request showed at ~3% in the read profile).
    cfg.service(web::scope("/v1").default_service(web::to(dispatch)));
}

async fn dispatch(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let rid = crate::app::request_id(&req);
    let body = match crate::app::read_body(&req, payload, state.max_request_size).await {
        Ok(b) => b,
        Err(crate::app::BodyError::TooLarge) => return VaultError::TooLarge.render(),
        Err(crate::app::BodyError::TimedOut) => return VaultError::RequestTimeout.render(),
        Err(crate::app::BodyError::Read(m)) => {
            return VaultError::bad(format!("error reading request body: {m}")).render()
        }
    };
    let raw = req.uri().path();
    let audit = Exchange::begin(
        &state.engine,
        &req,
        &rid,
        &req.method().as_str().to_lowercase(),
        raw.strip_prefix("/v1/").unwrap_or(raw),
        &body,
    );
    if let Some(a) = &audit {
        if a.request().is_err() {
            return VaultError::Internal(audit_http::FAILED_MESSAGE.into()).render();
        }
    }
    let work = async {
        let rest = raw
            .strip_prefix("/v1/")
            .ok_or_else(|| VaultError::NoHandler(raw.to_string()))?;
        let vreq = request::parse(&req, rest, &body, request::PatchTypes::MergePatchOnly)?;
        route(&state, &req, &vreq).await
    };
    // Vault's max_request_duration: a request still running at the deadline is answered 503 (a
    // write already queued may still commit, as in Vault).
    let result = match actix_web::rt::time::timeout(state.request_timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(VaultError::Unavailable("context deadline exceeded".into())),
    };
    let resp = match result {
        Ok((reply, mount_type)) => reply.render(&rid, mount_type),
        Err(e) => e.render(),
    };
    match audit {
        None => resp,
        Some(a) => match a.response(resp).await {
            Ok(r) => r,
            Err(_) => VaultError::Internal(audit_http::FAILED_MESSAGE.into()).render(),
        },
    }
}

/// Paths served without a token (as Vault's unauthenticated paths).
fn is_unauthenticated(path: &str) -> bool {
    matches!(
        path,
        "sys/health" | "sys/seal-status" | "sys/leader" | "sys/init" | "sys/unseal"
    )
}

async fn route(
    state: &AppState,
    http: &HttpRequest,
    req: &VaultRequest,
) -> VaultResult<(Reply, &'static str)> {
    let engine = &state.engine;
    let path = req.path.as_str();
    let ip = crate::app::client_ip(http);
    // Endpoints anyone may call, and failed token checks, spend a per-client budget (429 beyond).
    let rate_limited = matches!(path, "sys/unseal" | "auth/cert/login")
        || (path == "sys/init" && req.op == request::Op::Update);
    if rate_limited && !state.limiter.take(ip) {
        return Err(VaultError::TooManyRequests(
            path.to_string(),
            state.limiter.retry_after_secs(),
        ));
    }
    if is_unauthenticated(path) {
        return Ok((sys_health::route(engine, req).await?, "system"));
    }
    if engine.seal_status() != SealStatus::Unsealed {
        return Err(VaultError::Sealed);
    }
    if path == "auth/cert/login" {
        return Ok((auth_cert::login(state, http, req).await?, "cert"));
    }
    // A failed authentication spends the client's budget; once it is spent, failures are 429
    // (valid tokens from the same address keep working).
    let refuse = |e: VaultError| {
        if state.limiter.take(ip) {
            e
        } else {
            VaultError::TooManyRequests(path.to_string(), state.limiter.retry_after_secs())
        }
    };
    let identity = match req.token.as_deref() {
        Some(t) if !t.is_empty() => match engine.authenticate(t).await {
            Ok(id) => id,
            Err(e) => return Err(refuse(e.into())),
        },
        _ => return Err(refuse(VaultError::PermissionDenied)),
    };
    let acl = engine.acl(&identity);
    // The kv preflight is an unauthenticated path in Vault that checks mount access itself (see
    // sys_mounts::preflight); every other route checks the capability for its operation here.
    let preflight =
        path.starts_with("sys/internal/ui/mounts") || path.starts_with("sys/mounts-all/");
    if !preflight {
        acl::check(engine, &acl, req)?;
    }
    let ctx = Ctx {
        engine,
        req,
        identity: Some(identity),
        acl,
    };
    if let Some(rest) = path.strip_prefix("sys/") {
        if let Some(r) = sys_policy::route(&ctx, rest).await {
            return Ok((r?, "system"));
        }
        if let Some(r) = sys_seal::route(&ctx, rest).await {
            return Ok((r?, "system"));
        }
        if let Some(r) = sys_audit::route(&ctx, rest).await {
            return Ok((r?, "system"));
        }
        return Ok((sys_mounts::route(&ctx, rest).await?, "system"));
    }
    if let Some(rest) = path.strip_prefix("auth/token/") {
        return Ok((auth_token::route(&ctx, rest).await?, "token"));
    }
    match engine.resolve(path) {
        Some((mount, rest)) => Ok((kv::route(&ctx, &mount, rest).await?, "kv")),
        None => Err(VaultError::NoHandler(path.to_string())),
    }
}
