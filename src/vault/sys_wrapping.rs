//! Response wrapping on the Vault API: `sys/wrapping/{wrap,unwrap,lookup,rewrap}`, and the turn
//! of any reply into a wrapping token when the request asked for it (`X-Vault-Wrap-TTL`).
//!
//! Which wrapping token a request names, and whether its caller may use it, is decided by the
//! pipeline before these handlers run (`Access::WrappingToken`); each handler then makes one engine
//! call, which checks the token again in its own transaction.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::{json, Value};

use super::error::{VaultError, VaultResult};
use super::request::{Op, VaultRequest};
use super::response::Reply;
use super::Ctx;
use crate::engine::clock::{rfc3339_nano, NANOS_PER_SEC};
use crate::engine::wrapping::{WrapInfo, WrappedResponse};
use crate::engine::Engine;

/// `sys/wrapping/<rest>` with a caller (wrap, unwrap, rewrap); `None` for other `sys/` paths.
pub async fn route(ctx: &Ctx<'_>, rest: &str) -> Option<VaultResult<Reply>> {
    let op = ctx.req.op;
    let name = rest.strip_prefix("wrapping/")?.trim_end_matches('/');
    Some(match (name, op) {
        ("wrap", Op::Update) => wrap(ctx.req),
        ("unwrap", Op::Update) => unwrap(ctx).await,
        ("rewrap", Op::Update) => rewrap(ctx).await,
        ("wrap" | "unwrap" | "rewrap", _) => Err(VaultError::UnsupportedOperation),
        _ => Err(VaultError::NoHandler(format!("sys/{rest}"))),
    })
}

/// The wrapping token a request names: the body's (or, on a read, the query's) `token`, else the
/// request's own token. What the pipeline validated is found the same way.
pub fn named_token(req: &VaultRequest) -> Option<String> {
    match req.body.get("token") {
        Some(Value::String(t)) if !t.is_empty() => Some(t.clone()),
        _ => req.token.clone().filter(|t| !t.is_empty()),
    }
}

/// The `token` in the body of a `sys/wrapping/{unwrap,lookup,rewrap}` request, for the pipeline
/// (the body is not parsed yet): `None` when there is none. As Vault, a `token` that is empty or
/// not a string is refused (403), not taken for "none".
pub fn token_in_body(req: &VaultRequest, body: &[u8]) -> VaultResult<Option<String>> {
    let from = if req.op == Op::Update {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => m.get("token").cloned(),
            Ok(Value::Null) => None,
            Ok(_) => {
                return Err(VaultError::bad(
                    "failed to parse JSON input: the request body must be a JSON object",
                ))
            }
            Err(e) => return Err(VaultError::bad(format!("failed to parse JSON input: {e}"))),
        }
    } else {
        req.body.get("token").cloned()
    };
    match from {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(t)) if t.is_empty() => Err(VaultError::Denied(
            "error validating wrapping token: empty token in request body".into(),
        )),
        Some(Value::String(t)) => Ok(Some(t)),
        Some(_) => Err(VaultError::Denied(
            "error validating wrapping token: could not decode token in request body".into(),
        )),
    }
}

/// `sys/wrapping/wrap`: the body, to be wrapped (it exists for nothing else).
fn wrap(req: &VaultRequest) -> VaultResult<Reply> {
    if req.wrap_ttl_ns.is_none() {
        return Err(VaultError::bad(
            "endpoint requires response wrapping to be used",
        ));
    }
    Ok(Reply::Data(Value::Object(req.body.clone())))
}

fn target(ctx: &Ctx<'_>) -> VaultResult<String> {
    named_token(ctx.req).ok_or(VaultError::PermissionDenied)
}

/// `sys/wrapping/unwrap`: the wrapped reply, byte for byte, and the token gone.
async fn unwrap(ctx: &Ctx<'_>) -> VaultResult<Reply> {
    let WrappedResponse { status, body } = ctx.engine.unwrap(&target(ctx)?).await?;
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    Ok(Reply::RawBody(status, body))
}

/// `sys/wrapping/rewrap`: the same reply under a new wrapping token.
async fn rewrap(ctx: &Ctx<'_>) -> VaultResult<Reply> {
    let info = ctx
        .engine
        .rewrap(&target(ctx)?, ctx.req.wrap_ttl_ns)
        .await?;
    Ok(Reply::RawBody(StatusCode::OK, wrapped_body(&info)))
}

/// `sys/wrapping/lookup` (no caller: anyone holding the token may look).
pub fn lookup(engine: &Engine, req: &VaultRequest) -> VaultResult<Reply> {
    if !matches!(req.op, Op::Read | Op::Update) {
        return Err(VaultError::UnsupportedOperation);
    }
    let token = named_token(req).ok_or(VaultError::PermissionDenied)?;
    let meta = engine.wrapping_lookup(&token)?;
    Ok(Reply::Data(json!({
        "creation_path": meta.creation_path,
        "creation_time": rfc3339_nano(meta.creation_time),
        "creation_ttl": meta.creation_ttl / NANOS_PER_SEC,
    })))
}

/// The reply that replaces a wrapped one: an envelope with only `wrap_info` (Vault sends no
/// request id with it).
fn wrapped_body(info: &WrapInfo) -> String {
    let mut wrap_info = json!({
        "token": info.token.expose(),
        "accessor": info.accessor,
        "ttl": info.meta.creation_ttl / NANOS_PER_SEC,
        "creation_time": rfc3339_nano(info.meta.creation_time),
        "creation_path": info.meta.creation_path,
    });
    if let Some(a) = &info.wrapped_accessor {
        wrap_info["wrapped_accessor"] = json!(a);
    }
    json!({
        "request_id": "",
        "lease_id": "",
        "renewable": false,
        "lease_duration": 0,
        "data": null,
        "wrap_info": wrap_info,
        "warnings": null,
        "auth": null,
        "mount_type": "",
    })
    .to_string()
}

/// Renders `reply` to a request that asked for wrapping for `ttl_ns`: a reply with a body is kept
/// in a new wrapping token's cubbyhole (one engine call) and the client gets `wrap_info`; a reply
/// without one (204) is sent as it is. Errors never get here: they are never wrapped.
pub async fn render_wrapped(
    engine: &Engine,
    req: &VaultRequest,
    reply: Reply,
    ttl_ns: i64,
    rid: &str,
    mount_type: &str,
) -> VaultResult<HttpResponse> {
    let Some((status, body)) = reply.wrappable(rid, mount_type) else {
        return Ok(reply.render(rid, mount_type));
    };
    // The token inside a wrapped login or token creation (Vault's `wrapped_accessor`).
    let wrapped_accessor = match &reply {
        Reply::Auth(a) | Reply::AuthWarn(a, _) => a
            .get("accessor")
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    };
    let response = WrappedResponse {
        status: status.as_u16(),
        body,
    };
    let info = engine
        .wrap(ttl_ns, &req.path, response, wrapped_accessor)
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Content-Type", "application/json"))
        .body(wrapped_body(&info)))
}
