//! The HashiCorp Vault API (`/v1/...`): a thin translation over the engine, served through the
//! request pipeline (`crate::pipeline`). `routes` classifies a request from its head and declares
//! its access; `dispatch` routes it by path (mount paths may contain `/`, so routing is by the mount
//! table, not by actix patterns) and each resource's module renders the reply.

mod auth_cert;
pub(crate) mod auth_token;
mod cubbyhole;
mod key_share;
mod kv1;
pub(crate) mod routes;
mod sys_audit;
mod sys_auth;
mod sys_generate_root;
mod sys_health;
pub(crate) mod sys_mounts;
mod sys_policy;
mod sys_rekey;
mod sys_remount;
mod sys_seal;
mod sys_storage;
mod sys_wrapping;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_acl;
#[cfg(test)]
mod tests_audit;
#[cfg(test)]
mod tests_generate_root;
#[cfg(test)]
mod tests_kv1;
#[cfg(test)]
mod tests_rekey;
#[cfg(test)]
mod tests_remount;
#[cfg(test)]
mod tests_restore;
#[cfg(test)]
mod tests_seal;
#[cfg(test)]
mod tests_wrapping;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::audit::http as audit_http;
use crate::pipeline::headers::HeaderRefusal;
use crate::pipeline::{self, Api, Call, Caller, Check, Refusal, Routed};
use error::{VaultError, VaultResult};
use request::VaultRequest;
use response::Reply;

pub use crate::app::AppState;
// The KV v2 protocol and what every Vault handler shares (request, reply, errors) live in `kv2`,
// beside this module, because OKMS's Vault-compatible v1 API speaks the same protocol.
pub(crate) use crate::kv2::{decode, error, kv, render, request, response, Ctx};

pub fn configure(cfg: &mut web::ServiceConfig) {
    // A prefix scope, not a `{tail:.*}` pattern: actix matches static prefixes without a regex (a
    // regex match per request showed at ~3% in the read profile).
    cfg.service(web::scope("/v1").default_service(web::to(pipeline::serve::<VaultApi>)));
}

/// The Vault API as the request pipeline serves it.
pub struct VaultApi;

/// A routed Vault request: the logical request parsed from the head (its body is added once the
/// pipeline has read and bounded it) and which handler family serves it.
pub struct VaultRoute {
    req: VaultRequest,
    kind: routes::Kind,
}

impl From<Refusal> for VaultError {
    fn from(r: Refusal) -> Self {
        match r {
            // Vault answers a missing or bad token exactly like a missing capability, so nothing
            // tells which paths exist.
            Refusal::Unauthenticated | Refusal::Forbidden => Self::PermissionDenied,
            Refusal::TooManyRequests(path, secs) => Self::TooManyRequests(path, secs),
            Refusal::TooLarge => Self::TooLarge,
            Refusal::BodyRead(m) => Self::bad(format!("error reading request body: {m}")),
            Refusal::BodyTimeout => Self::RequestTimeout,
            Refusal::Json(m) => Self::bad(format!("failed to parse JSON input: {m}")),
            Refusal::BadBody(m) => Self::bad(m),
            Refusal::Sealed => Self::Sealed,
            Refusal::Deadline => Self::Unavailable("context deadline exceeded".into()),
            Refusal::AuditFailed => Self::Internal(audit_http::FAILED_MESSAGE.into()),
            Refusal::Header(h) => match h {
                HeaderRefusal::NamespaceNotFound => Self::NamespaceNotFound,
                _ => Self::bad(h.message()),
            },
            Refusal::InvalidEscape(e) => Self::bad(format!("invalid URL escape \"{e}\"")),
            Refusal::Engine(e) => e.into(),
        }
    }
}

impl Api for VaultApi {
    type Route = VaultRoute;
    type Error = VaultError;

    fn render(err: VaultError, _rid: &str) -> HttpResponse {
        err.render()
    }

    fn route(state: &AppState, http: &HttpRequest) -> VaultResult<Routed<VaultRoute>> {
        let raw = http.uri().path();
        let rest = raw
            .strip_prefix("/v1/")
            .ok_or_else(|| VaultError::NoHandler(raw.to_string()))?;
        let mut req = request::parse_head(http, rest, request::PatchTypes::MergePatchOnly)?;
        let header = |h| VaultError::from(Refusal::Header(h));
        pipeline::headers::check_namespace(http, &req.path).map_err(header)?;
        req.wrap_ttl_ns = pipeline::headers::wrap_ttl(http).map_err(header)?;
        let (kind, access) = routes::classify(&state.engine, &req);
        Ok(Routed {
            audit_path: req.path.clone(),
            audit_op: req.op.name(),
            body: routes::body(&req),
            route: VaultRoute { req, kind },
            access,
        })
    }

    fn checks_after_body(
        _state: &AppState,
        _route: &VaultRoute,
        _body: &[u8],
    ) -> VaultResult<Vec<Check>> {
        // Every Vault route's checks are known from its head.
        Err(VaultError::PermissionDenied)
    }

    fn wrap_ttl(route: &VaultRoute) -> Option<i64> {
        route.req.wrap_ttl_ns
    }

    fn wrapping_token_in_body(route: &VaultRoute, body: &[u8]) -> VaultResult<Option<String>> {
        sys_wrapping::token_in_body(&route.req, body)
    }

    async fn handle(call: Call<'_, VaultRoute>) -> VaultResult<HttpResponse> {
        let VaultRoute { mut req, kind } = call.route;
        if let Some(upload) = call.upload {
            // A snapshot restore (the only route whose body is a file): see `routes::body`.
            let reply = sys_storage::restore(call.state, &req, upload).await?;
            return Ok(reply.render(call.rid, "system"));
        }
        if matches!(req.op, request::Op::Update | request::Op::Patch) {
            req.body = request::parse_body(call.http, &call.body)?;
        }
        let (reply, mount_type) = dispatch(call.state, call.http, &req, kind, call.caller).await?;
        // `sys/wrapping/rewrap` answers a wrapping token of its own, the header's TTL its cap.
        match req.wrap_ttl_ns {
            Some(ttl) if req.path.trim_end_matches('/') != "sys/wrapping/rewrap" => {
                let engine = &call.state.engine;
                sys_wrapping::render_wrapped(engine, &req, reply, ttl, call.rid, mount_type).await
            }
            _ => Ok(reply.render(call.rid, mount_type)),
        }
    }
}

async fn dispatch(
    state: &AppState,
    http: &HttpRequest,
    req: &VaultRequest,
    kind: routes::Kind,
    caller: Option<Caller>,
) -> VaultResult<(Reply, &'static str)> {
    let engine = &state.engine;
    let path = req.path.as_str();
    let caller = match (kind, caller) {
        (routes::Kind::Public, _) => return Ok((public_route(engine, req).await?, "system")),
        (routes::Kind::CertLogin, _) => {
            return Ok((auth_cert::login(state, http, req).await?, "cert"))
        }
        (routes::Kind::WrappingLookup, _) => {
            return Ok((sys_wrapping::lookup(engine, req)?, "system"))
        }
        (_, Some(c)) => c,
        // The pipeline authenticates every other route.
        (_, None) => return Err(VaultError::PermissionDenied),
    };
    let ctx = Ctx {
        engine,
        req,
        identity: Some(caller.identity),
        acl: caller.acl,
    };
    if let Some(rest) = path.strip_prefix("sys/") {
        if let Some(r) = sys_policy::route(&ctx, rest).await {
            return Ok((r?, "system"));
        }
        if let Some(r) = sys_seal::route(&ctx, rest).await {
            return Ok((r?, "system"));
        }
        if let Some(r) = sys_generate_root::route(engine, req, rest).await {
            return Ok((r?, "system"));
        }
        if let Some(r) = sys_rekey::route(engine, req, rest).await {
            return Ok((r?, "system"));
        }
        if let Some(r) = sys_storage::route(&ctx, rest).await {
            return Ok((r?, "system"));
        }
        if let Some(r) = sys_audit::route(&ctx, rest).await {
            return Ok((r?, "system"));
        }
        if let Some(r) = sys_auth::route(state, &ctx, rest).await {
            return Ok((r?, "system"));
        }
        if let Some(r) = sys_remount::route(state, &ctx, rest).await {
            return Ok((r?, "system"));
        }
        if let Some(r) = sys_wrapping::route(&ctx, rest).await {
            return Ok((r?, "system"));
        }
        return Ok((sys_mounts::route(state, &ctx, rest).await?, "system"));
    }
    if let Some(rest) = path.strip_prefix("auth/token/") {
        return Ok((auth_token::route(&ctx, rest).await?, "token"));
    }
    if let Some(rest) = path
        .strip_prefix(cubbyhole::MOUNT)
        .or_else(|| (path == "cubbyhole").then_some(""))
    {
        return Ok((cubbyhole::route(&ctx, rest).await?, "cubbyhole"));
    }
    let Some((mount, rest)) = engine.resolve(path) else {
        return Err(VaultError::NoHandler(path.to_string()));
    };
    // Vault names the mount's type in the envelope (`generic` mounts are listed as such).
    let mount_type = if mount.kind == "generic" {
        "generic"
    } else {
        "kv"
    };
    let reply = if mount.kv_version == 2 {
        kv::route(&ctx, &mount, rest).await?
    } else {
        kv1::route(&ctx, &mount, rest).await?
    };
    Ok((reply, mount_type))
}

/// The unauthenticated routes (`routes::UNAUTHENTICATED`), by family.
async fn public_route(engine: &crate::engine::Engine, req: &VaultRequest) -> VaultResult<Reply> {
    let path = req.path.as_str();
    if path.starts_with("sys/generate-root/") {
        sys_generate_root::public_route(engine, req).await
    } else if path.starts_with("sys/rekey/") {
        sys_rekey::public_route(engine, req).await
    } else {
        sys_health::route(engine, req).await
    }
}
