//! The OVHcloud OKMS Secret Manager API under `/api/{okmsId}/`: the REST v2 Secret API and its
//! Vault-compatible v1 API, both over the same engine as the Vault API. An OKMS domain is one kv-v2
//! mount, so a secret written through either API is the same object in the other.

mod body;
pub mod error;
mod pagination;
mod path;
mod render;
mod secret_config;
mod secrets;
mod v1;

use std::collections::BTreeMap;

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::app::{self, AppState, BodyError};
use crate::audit::http::{self as audit_http, Exchange};
use crate::engine::model::Mount;
use crate::engine::{Engine, SealStatus};
use crate::policy::{Acl, Capabilities};
use error::{OkmsError, OkmsResult};

impl OkmsCtx<'_> {
    /// Requires `cap` on `<mount>/<sub>` (e.g. `sub` = `data/prod/db`); 403 with the OKMS error body
    /// otherwise.
    pub fn allow(&self, sub: &str, cap: Capabilities) -> OkmsResult<()> {
        let path = format!("{}{sub}", self.mount.path.as_str());
        if self.acl.allows(&path, cap) {
            Ok(())
        } else {
            Err(OkmsError::Forbidden)
        }
    }
}

/// A request being served on one domain.
pub struct OkmsCtx<'a> {
    pub engine: &'a Arc<Engine>,
    /// The caller's ACL: the OKMS API is governed by the same policies as the Vault API, each
    /// operation checked on the Vault path it touches (see `secrets.rs` and the README's table).
    pub acl: Arc<Acl>,
    pub mount: Mount,
    pub okms_id: uuid::Uuid,
    pub http: &'a HttpRequest,
    pub body: &'a [u8],
    pub query: BTreeMap<String, String>,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    // A prefix scope rather than a `{tail:.*}` pattern: no regex per request.
    cfg.service(web::scope("/api").default_service(web::to(dispatch)));
}

async fn dispatch(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let rid = app::request_id(&req);
    let body = match app::read_body(&req, payload, state.max_request_size).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return OkmsError::TooLarge.render(&rid),
        Err(BodyError::TimedOut) => return OkmsError::RequestTimeout.render(&rid),
        Err(BodyError::Read(m)) => {
            return OkmsError::bad(format!("error reading the request body: {m}")).render(&rid)
        }
    };
    let audit = Exchange::begin(
        &state.engine,
        &req,
        &rid,
        &req.method().as_str().to_lowercase(),
        req.uri().path(),
        &body,
    );
    if let Some(a) = &audit {
        if a.request().is_err() {
            return OkmsError::Internal(audit_http::FAILED_MESSAGE.into()).render(&rid);
        }
    }
    let resp =
        match actix_web::rt::time::timeout(state.request_timeout, serve(&req, &body, &state, &rid))
            .await
        {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => e.render(&rid),
            Err(_) => OkmsError::Unavailable("request deadline exceeded".into()).render(&rid),
        };
    match audit {
        None => resp,
        Some(a) => match a.response(resp).await {
            Ok(r) => r,
            Err(_) => OkmsError::Internal(audit_http::FAILED_MESSAGE.into()).render(&rid),
        },
    }
}

async fn serve(
    req: &HttpRequest,
    body: &[u8],
    state: &AppState,
    rid: &str,
) -> OkmsResult<HttpResponse> {
    let raw = req.uri().path();
    let rest = raw
        .strip_prefix("/api/")
        .ok_or_else(|| OkmsError::NoRoute(raw.to_string()))?;
    let (id, rest) = rest.split_once('/').unwrap_or((rest, ""));
    let unknown = || OkmsError::NotFound(format!("unknown OKMS domain {id:?}"));
    let okms_id = uuid::Uuid::parse_str(id).map_err(|_| unknown())?;
    let mount_path = state.okms_domains.get(&okms_id).ok_or_else(unknown)?;

    let engine = &state.engine;
    if engine.seal_status() != SealStatus::Unsealed {
        return Err(OkmsError::Sealed);
    }
    // A token (okms-cli's `auth.type: token`, External Secrets' `X-Vault-Token`) or, failing that, a
    // verified client certificate mapped by `[[auth.cert]]` (okms-cli's default `mtls`). Failed
    // attempts spend the client's unauthenticated rate budget.
    let ip = app::client_ip(req);
    // A failed attempt spends the client's budget; once it is spent, failures are 429 (valid
    // credentials from the same address keep working).
    let refuse = || {
        if state.limiter.take(ip) {
            OkmsError::Unauthorized
        } else {
            OkmsError::TooManyRequests(state.limiter.retry_after_secs())
        }
    };
    let identity = match app::token_of(req) {
        Some(t) if !t.is_empty() => match engine.authenticate(&t).await {
            Ok(id) => id,
            Err(_) => return Err(refuse()),
        },
        _ => match state.cert_identity(req, None) {
            Some((peer, cert)) => {
                // An OKMS access certificate names its domain in a UPN otherName
                // (`okms.domain:<uuid>`); it is valid on that domain only.
                if !peer.allows_okms_domain(&okms_id) {
                    return Err(OkmsError::Forbidden);
                }
                crate::engine::Identity::transient(&format!("cert-{}", cert.name), &cert.policies)
            }
            None => return Err(refuse()),
        },
    };
    let mount = engine.mount_by_path(mount_path).ok_or_else(|| {
        OkmsError::NotFound(format!(
            "OKMS domain {okms_id} is backed by the mount {:?}, which does not exist; enable it as kv-v2",
            mount_path.as_str()
        ))
    })?;
    if mount.kv_version != 2 {
        return Err(OkmsError::bad(format!(
            "the mount {:?} backing this domain is KV version 1; upgrade it to version 2",
            mount.path.as_str()
        )));
    }
    let query: BTreeMap<String, String> = match req.uri().query() {
        Some(q) => serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .map_err(|e| OkmsError::bad(format!("invalid query string: {e}")))?
            .into_iter()
            .collect(),
        None => BTreeMap::new(),
    };
    let acl = engine.acl(&identity);
    let ctx = OkmsCtx {
        engine,
        acl,
        mount,
        okms_id,
        http: req,
        body,
        query,
    };
    if rest == "v2/secretConfig" || rest == "v2/secretConfig/" {
        return secret_config::route(&ctx).await;
    }
    if let Some(r) = rest.strip_prefix("v2/secret") {
        if r.is_empty() || r.starts_with('/') {
            return secrets::route(&ctx, r).await;
        }
    }
    if let Some(r) = rest.strip_prefix("v1/") {
        return v1::route(&ctx, r, rid).await;
    }
    Err(OkmsError::NoRoute(raw.to_string()))
}

#[cfg(test)]
mod tests;
