//! The Vault-compatible v1 API of OKMS (`/api/{okmsId}/v1/secret/...`): the Vault KV v2 handlers
//! themselves, on the domain's mount (which clients always call `secret`), rendered in OKMS's
//! shapes: `{request_id, data[, warnings]}` on success, the OKMS error body on failure (plus `data`
//! for a deleted version, as `GetErrorResponseWithMetadata`), and pagination headers on lists.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::{json, Value};

use actix_web::HttpRequest;

use super::error::{json_response, OkmsError, OkmsResult};
use super::pagination::{self, encode_cursor};
use super::OkmsCtx;
use crate::app::AppState;
use crate::engine::model::Mount;
use crate::kv2::error::VaultError;
use crate::kv2::request::{self, Op, PatchTypes, VaultRequest};
use crate::kv2::response::Reply;
use crate::kv2::{self, access, Ctx};
use crate::pipeline::{self, Access, Check, Need, Refusal};

/// What OKMS clients call the domain's mount.
const MOUNT_NAME: &str = "secret";

impl From<VaultError> for OkmsError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::BadRequest(m) => Self::BadRequest(m),
            VaultError::PermissionDenied | VaultError::PreflightDenied(_) | VaultError::Denied(_) => {
                Self::Forbidden
            }
            VaultError::NotFound => Self::NotFound("not found".into()),
            VaultError::NoHandler(p) => Self::NoRoute(p),
            VaultError::NamespaceNotFound => Self::NotFound("namespace not found".into()),
            // Callers that know the path use [`unsupported`] for the exact `Allow`; this is the
            // methods of the Vault-style API as a whole.
            VaultError::UnsupportedOperation => {
                Self::MethodNotAllowed("GET, LIST, POST, PUT, PATCH, DELETE")
            }
            VaultError::TooLarge => Self::TooLarge,
            VaultError::RequestTimeout => Self::RequestTimeout,
            VaultError::TooManyRequests(_, secs) => Self::TooManyRequests(secs),
            VaultError::UnsupportedMediaType(ct) => Self::BadRequest(format!(
                "PATCH requires Content-Type application/merge-patch+json or application/json, provided {ct}"
            )),
            VaultError::Sealed => Self::Sealed,
            VaultError::Unavailable(m) => Self::Unavailable(m),
            VaultError::Internal(m) => Self::Internal(m),
        }
    }
}

/// The methods a v1 path accepts (its `Allow` on a 405), by the kv-v2 endpoint family the path
/// (the logical path, `secret/...` or `sys/internal/ui/mounts/...`) names.
fn allowed_methods(path: &str) -> &'static str {
    let kv = path.strip_prefix("secret/").unwrap_or("");
    let family = kv.split('/').next().unwrap_or("");
    if path.starts_with("sys/internal/ui/mounts/") || family == "subkeys" {
        "GET"
    } else if family == "config" {
        "GET, POST, PUT"
    } else if matches!(family, "delete" | "undelete" | "destroy") {
        "POST, PUT"
    } else if family == "data" {
        "GET, POST, PUT, PATCH, DELETE"
    } else {
        "GET, LIST, POST, PUT, PATCH, DELETE"
    }
}

/// A Vault handler's error on `path`, with the path's `Allow` on a 405.
fn unsupported(path: &str) -> impl Fn(VaultError) -> OkmsError + '_ {
    move |e| match e {
        VaultError::UnsupportedOperation => OkmsError::MethodNotAllowed(allowed_methods(path)),
        e => e.into(),
    }
}

/// A routed v1 request: the Vault logical request (its body added once admitted) and which of the
/// two v1 families serves it.
pub struct V1Route {
    req: VaultRequest,
    kind: V1Kind,
    /// The page size of a paginated list.
    page: Option<usize>,
}

enum V1Kind {
    /// `secret/...` on the domain's mount: the path after `secret/`.
    Kv(String),
    /// `sys/internal/ui/mounts/<p>`: the `vault kv` preflight.
    Preflight,
}

impl V1Route {
    pub fn op_name(&self) -> &'static str {
        self.req.op.name()
    }
}

/// Parses a v1 request's head and declares its access: exactly what the Vault route
/// `/v1/<mount>/<rest>` needs on the domain's real mount path; the preflight needs some access
/// under the mount, as Vault's `hasMountAccess`.
pub fn parse(
    state: &AppState,
    http: &HttpRequest,
    raw_rest: &str,
    mount: &Mount,
) -> OkmsResult<(V1Route, Access)> {
    let mut vreq = request::parse_head(http, raw_rest, PatchTypes::MergePatchOrJson)
        .map_err(unsupported(raw_rest))?;
    pipeline::headers::check(http, &vreq.path).map_err(|h| OkmsError::from(Refusal::Header(h)))?;
    // `GET /v1/secret/metadata` lists the root (OKMS's ListSecretsMetadata).
    if vreq.op == Op::Read && matches!(vreq.path.as_str(), "secret/metadata" | "secret/metadata/") {
        vreq.op = Op::List;
        vreq.path = "secret/metadata/".into();
    }
    let page = if vreq.op == Op::List {
        let pg = pagination::from_request(http)?;
        vreq.body.insert("limit".into(), json!(pg.size + 1));
        if let Some(a) = &pg.after {
            vreq.body.insert("after".into(), json!(a));
        }
        Some(pg.size)
    } else {
        None
    };
    let path = vreq.path.clone();
    let (kind, access) = if path == MOUNT_NAME || path.starts_with("secret/") {
        let rest = path.get(MOUNT_NAME.len() + 1..).unwrap_or("").to_string();
        let full = format!("{}{rest}", mount.path.as_str());
        let check = access::check_for(&state.engine, vreq.op, &full);
        (V1Kind::Kv(rest), Access::Checks(vec![check]))
    } else if let Some(p) = path.strip_prefix("sys/internal/ui/mounts/") {
        if p != MOUNT_NAME && !p.starts_with("secret/") {
            return Err(OkmsError::Forbidden);
        }
        let check = Check {
            path: mount.path.as_str().to_string(),
            need: Need::AnyUnder,
            list: false,
        };
        (V1Kind::Preflight, Access::Checks(vec![check]))
    } else {
        return Err(OkmsError::NoRoute(format!("/v1/{path}")));
    };
    Ok((
        V1Route {
            req: vreq,
            kind,
            page,
        },
        access,
    ))
}

/// Serves an admitted v1 request.
pub async fn handle(ctx: &OkmsCtx<'_>, route: V1Route, rid: &str) -> OkmsResult<HttpResponse> {
    let V1Route {
        mut req,
        kind,
        page,
    } = route;
    if matches!(req.op, Op::Update | Op::Patch) {
        req.body = request::parse_body(ctx.http, ctx.body)?;
    }
    let data_in_errors = req.path.starts_with("secret/data/");
    let reply = match kind {
        V1Kind::Kv(rest) => {
            let vctx = Ctx {
                engine: ctx.engine,
                req: &req,
                identity: None,
                acl: ctx.acl.clone(),
            };
            kv2::kv::route(&vctx, &ctx.mount, &rest)
                .await
                .map_err(unsupported(&req.path))?
        }
        V1Kind::Preflight => preflight(ctx),
    };
    // Only the data endpoint's 404 (GetErrorResponseWithMetadata, PatchErrorResponseWithMetadata)
    // may carry `data`; every other 404 is a plain ErrorResponse (additionalProperties: false).
    Ok(render(reply, rid, page, data_in_errors))
}

/// The `vault kv` preflight, so that `VAULT_ADDR=http://host/api/{okmsId} vault kv get -mount=secret x`
/// works: the domain's mount, shown as `secret/`.
fn preflight(ctx: &OkmsCtx<'_>) -> Reply {
    let mut info = kv2::render::mount_info(&ctx.mount);
    info["path"] = json!("secret/");
    Reply::Data(info)
}

fn envelope(rid: &str, data: Value, warnings: Option<Vec<String>>) -> Value {
    let mut o = json!({ "request_id": rid, "data": data });
    if let Some(w) = warnings {
        o["warnings"] = json!(w);
    }
    o
}

/// Renders a Vault handler's reply in OKMS's shapes.
fn render(reply: Reply, rid: &str, page: Option<usize>, data_in_errors: bool) -> HttpResponse {
    match reply {
        Reply::Data(mut d) => {
            let mut next = None;
            if let (Some(size), Some(keys)) =
                (page, d.get_mut("keys").and_then(Value::as_array_mut))
            {
                if keys.len() > size {
                    keys.truncate(size);
                    next = keys.last().and_then(Value::as_str).map(encode_cursor);
                }
            }
            let mut r = json_response(StatusCode::OK, &envelope(rid, d, None));
            if let Some(n) = next.and_then(|n| n.parse().ok()) {
                r.headers_mut().insert(
                    actix_web::http::header::HeaderName::from_static("x-pagination-cursor-next"),
                    n,
                );
            }
            r
        }
        Reply::DataWarn(d, w) => json_response(StatusCode::OK, &envelope(rid, d, Some(w))),
        // A KV v1 read's lease: never here (a domain's mount is KV v2), shown as its data.
        Reply::Lease(d, _, w) => json_response(StatusCode::OK, &envelope(rid, d, w)),
        Reply::Auth(a) | Reply::AuthWarn(a, _) => {
            json_response(StatusCode::OK, &json!({"request_id": rid, "auth": a}))
        }
        Reply::SysInjected(d) => json_response(StatusCode::OK, &envelope(rid, d, None)),
        Reply::NoContent => HttpResponse::NoContent().finish(),
        Reply::RawJson(status, v) => json_response(status, &v),
        // Only Vault's sys/wrapping/unwrap answers one; nothing on this API does.
        Reply::RawBody(status, body) => HttpResponse::build(status)
            .insert_header(("Content-Type", "application/json"))
            .body(body),
        // A deleted or destroyed version: the OKMS error body with the metadata as `data`.
        Reply::RawEnvelope(status, data, warnings) => {
            let message = warnings
                .and_then(|w| w.into_iter().next())
                .unwrap_or_else(|| "the version is deactivated or deleted".into());
            let err = OkmsError::NotFound(message);
            let mut body = err.body(rid);
            if data_in_errors && !data.is_null() {
                body["data"] = data;
            }
            json_response(status, &body)
        }
        Reply::Empty(status) if status == StatusCode::NOT_FOUND => {
            OkmsError::NotFound("secret not found".into()).render(rid)
        }
        Reply::Empty(status) => HttpResponse::build(status).finish(),
        Reply::Binary(bytes, ct) => HttpResponse::Ok()
            .insert_header(("Content-Type", ct))
            .body(bytes),
    }
}
