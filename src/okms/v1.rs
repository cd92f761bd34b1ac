//! The Vault-compatible v1 API of OKMS (`/api/{okmsId}/v1/secret/...`): the Vault KV v2 handlers
//! themselves, on the domain's mount (which clients always call `secret`), rendered in OKMS's
//! shapes: `{request_id, data[, warnings]}` on success, the OKMS error body on failure (plus `data`
//! for a deleted version, as `GetErrorResponseWithMetadata`), and pagination headers on lists.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::{json, Value};

use super::error::{json_response, OkmsError, OkmsResult};
use super::pagination::{self, encode_cursor};
use super::OkmsCtx;
use crate::vault::error::VaultError;
use crate::vault::request::{self, Op, PatchTypes};
use crate::vault::response::Reply;
use crate::vault::{self, acl, Ctx};

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
            VaultError::UnsupportedOperation => Self::MethodNotAllowed,
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

pub async fn route(ctx: &OkmsCtx<'_>, raw_rest: &str, rid: &str) -> OkmsResult<HttpResponse> {
    let mut vreq = request::parse(ctx.http, raw_rest, ctx.body, PatchTypes::MergePatchOrJson)?;
    // `GET /v1/secret/metadata` lists the root (OKMS's ListSecretsMetadata).
    if vreq.op == Op::Read && matches!(vreq.path.as_str(), "secret/metadata" | "secret/metadata/") {
        vreq.op = Op::List;
        vreq.path = "secret/metadata/".into();
    }
    let page = if vreq.op == Op::List {
        let pg = pagination::from_request(ctx.http)?;
        vreq.body.insert("limit".into(), json!(pg.size + 1));
        if let Some(a) = &pg.after {
            vreq.body.insert("after".into(), json!(a));
        }
        Some(pg.size)
    } else {
        None
    };
    let vctx = Ctx {
        engine: ctx.engine,
        req: &vreq,
        identity: None,
        acl: ctx.acl.clone(),
    };
    let path = vreq.path.clone();
    let reply = if path == MOUNT_NAME || path.starts_with("secret/") {
        let rest = path.get(MOUNT_NAME.len() + 1..).unwrap_or("");
        // The same check as on the Vault route, on the domain's real mount path.
        let create = vreq.op == Op::Update && acl::existence_create(ctx.engine, &ctx.mount, rest)?;
        acl::check_path(
            &ctx.acl,
            &format!("{}{rest}", ctx.mount.path.as_str()),
            acl::required(vreq.op, create),
        )?;
        vault::kv::route(&vctx, &ctx.mount, rest).await?
    } else if let Some(p) = path.strip_prefix("sys/internal/ui/mounts/") {
        preflight(ctx, p)?
    } else {
        return Err(OkmsError::NoRoute(format!("/v1/{path}")));
    };
    // Only the data endpoint's 404 (GetErrorResponseWithMetadata, PatchErrorResponseWithMetadata)
    // may carry `data`; every other 404 is a plain ErrorResponse (additionalProperties: false).
    let data_in_errors = path.starts_with("secret/data/");
    Ok(render(reply, rid, page, data_in_errors))
}

/// The `vault kv` preflight, so that `VAULT_ADDR=http://host/api/{okmsId} vault kv get -mount=secret x`
/// works: the domain's mount, shown as `secret/`.
fn preflight(ctx: &OkmsCtx<'_>, p: &str) -> OkmsResult<Reply> {
    if p != MOUNT_NAME && !p.starts_with("secret/") {
        return Err(OkmsError::Forbidden);
    }
    if !ctx.acl.has_any_under(ctx.mount.path.as_str()) {
        return Err(OkmsError::Forbidden);
    }
    let mut info = vault::render::mount_info(&ctx.mount);
    info["path"] = json!("secret/");
    Ok(Reply::Data(info))
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
        Reply::Auth(a) | Reply::AuthWarn(a, _) => {
            json_response(StatusCode::OK, &json!({"request_id": rid, "auth": a}))
        }
        Reply::SysInjected(d) => json_response(StatusCode::OK, &envelope(rid, d, None)),
        Reply::NoContent => HttpResponse::NoContent().finish(),
        Reply::RawJson(status, v) => json_response(status, &v),
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
