//! The OVHcloud OKMS Secret Manager API under `/api/{okmsId}/`: the REST v2 Secret API and its
//! Vault-compatible v1 API, both over the same engine as the Vault API, served through the request
//! pipeline (`crate::pipeline`). An OKMS domain is one kv-v2 mount, so a secret written through
//! either API is the same object in the other. `routes` parses each v2 route from the request head
//! and declares its access (the README's operation-to-capability table); `v1` does the same for the
//! Vault-compatible routes.

mod body;
pub mod error;
mod pagination;
mod path;
mod render;
mod routes;
mod secret_config;
mod secrets;
mod v1;

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::app::AppState;
use crate::audit::http as audit_http;
use crate::engine::model::Mount;
use crate::engine::{Engine, Identity, SealStatus};
use crate::pipeline::{self, Api, Call, Check, Refusal, Routed};
use crate::policy::Acl;
use error::{OkmsError, OkmsResult};

/// A request being served on one domain.
pub struct OkmsCtx<'a> {
    pub engine: &'a Arc<Engine>,
    /// The caller's ACL, for the routes that filter what they show (the flat list). Admission was
    /// decided by the pipeline.
    pub acl: Arc<Acl>,
    pub mount: Mount,
    pub okms_id: uuid::Uuid,
    pub http: &'a HttpRequest,
    pub body: &'a [u8],
    pub query: BTreeMap<String, String>,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    // A prefix scope rather than a `{tail:.*}` pattern: no regex per request.
    cfg.service(web::scope("/api").default_service(web::to(pipeline::serve::<OkmsApi>)));
}

/// The OKMS API as the request pipeline serves it.
pub struct OkmsApi;

/// A routed OKMS request: the domain, its mount, and the v2 or v1 operation.
pub struct OkmsRoute {
    okms_id: uuid::Uuid,
    mount: Mount,
    query: BTreeMap<String, String>,
    op: Op,
}

enum Op {
    V2(routes::Route),
    V1(v1::V1Route),
}

impl From<Refusal> for OkmsError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Unauthenticated => Self::Unauthorized,
            Refusal::Forbidden => Self::Forbidden,
            Refusal::TooManyRequests(_, secs) => Self::TooManyRequests(secs),
            Refusal::TooLarge => Self::TooLarge,
            Refusal::BodyRead(m) => Self::bad(format!("error reading the request body: {m}")),
            Refusal::BodyTimeout => Self::RequestTimeout,
            Refusal::Json(m) | Refusal::BadBody(m) => {
                Self::bad(format!("invalid request body: {m}"))
            }
            Refusal::Sealed => Self::Sealed,
            Refusal::Deadline => Self::Unavailable("request deadline exceeded".into()),
            Refusal::AuditFailed => Self::Internal(audit_http::FAILED_MESSAGE.into()),
            Refusal::Header(h) => match h {
                pipeline::headers::HeaderRefusal::NamespaceNotFound => Self::NotFound(h.message()),
                _ => Self::bad(h.message()),
            },
            Refusal::InvalidEscape(e) => Self::bad(format!("invalid URL escape \"{e}\"")),
            Refusal::Engine(e) => e.into(),
        }
    }
}

impl Api for OkmsApi {
    type Route = OkmsRoute;
    type Error = OkmsError;

    fn render(err: OkmsError, rid: &str) -> HttpResponse {
        err.render(rid)
    }

    fn route(state: &AppState, req: &HttpRequest) -> OkmsResult<Routed<OkmsRoute>> {
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
        let (op, access, audit_op) = if let Some(r) = routes::parse_v2(req, rest, &query)? {
            let audit_op = match (&r, req.method().as_str()) {
                (routes::Route::List, _) => "list",
                (_, "GET") => "read",
                (_, "DELETE") => "delete",
                _ => "update",
            };
            let access = routes::access(&mount, &r);
            (Op::V2(r), access, audit_op)
        } else if let Some(r) = rest.strip_prefix("v1/") {
            let (route, access) = v1::parse(state, req, r, &mount)?;
            let audit_op = route.op_name();
            (Op::V1(route), access, audit_op)
        } else {
            return Err(OkmsError::NoRoute(raw.to_string()));
        };
        Ok(Routed {
            route: OkmsRoute {
                okms_id,
                mount,
                query,
                op,
            },
            access,
            body: crate::pipeline::Body::Json,
            audit_path: raw.to_string(),
            audit_op,
        })
    }

    fn checks_after_body(
        _state: &AppState,
        route: &OkmsRoute,
        body: &[u8],
    ) -> OkmsResult<Vec<Check>> {
        match &route.op {
            Op::V2(r) => routes::checks_after_body(&route.mount, r, body),
            Op::V1(_) => Err(OkmsError::Forbidden),
        }
    }

    /// okms-cli's default `mtls` auth: a verified client certificate mapped by `[[auth.cert]]`.
    /// An OKMS access certificate names its domain in a UPN otherName (`okms.domain:<uuid>`); it
    /// is valid on that domain only.
    fn certificate_caller(
        state: &AppState,
        req: &HttpRequest,
        route: &OkmsRoute,
    ) -> Option<OkmsResult<Identity>> {
        let (peer, cert) = state.cert_identity(req, None)?;
        if !peer.allows_okms_domain(&route.okms_id) {
            return Some(Err(OkmsError::Forbidden));
        }
        Some(Ok(Identity::transient(
            &format!("cert-{}", cert.name),
            &cert.policies,
        )))
    }

    async fn handle(call: Call<'_, OkmsRoute>) -> OkmsResult<HttpResponse> {
        let caller = call.caller.ok_or(OkmsError::Unauthorized)?;
        let OkmsRoute {
            okms_id,
            mount,
            query,
            op,
        } = call.route;
        let ctx = OkmsCtx {
            engine: &call.state.engine,
            acl: caller.acl,
            mount,
            okms_id,
            http: call.http,
            body: &call.body,
            query,
        };
        match op {
            Op::V2(r) => secrets::handle(&ctx, r).await,
            Op::V1(r) => v1::handle(&ctx, r, call.rid).await,
        }
    }
}

#[cfg(test)]
mod tests;
