//! `GET/PUT /v2/secretConfig`: the domain-wide defaults. It is the same store as the Vault API's
//! `<mount>/config` (okms-cli writes it through `POST /v1/secret/config` and reads it here).

use actix_web::http::StatusCode;
use actix_web::HttpResponse;

use super::body;
use super::error::{json_response, OkmsError, OkmsResult};
use super::{render, OkmsCtx};
use crate::policy::Capabilities;

pub async fn route(ctx: &OkmsCtx<'_>) -> OkmsResult<HttpResponse> {
    match ctx.http.method().as_str() {
        "GET" => {
            ctx.allow("config", Capabilities::READ)?;
            Ok(json_response(
                StatusCode::OK,
                &render::config(&ctx.engine.kv_config(&ctx.mount)),
            ))
        }
        "PUT" => {
            ctx.allow("config", Capabilities::UPDATE)?;
            let req: body::PutConfig = body::parse(ctx.body)?;
            let update = body::config_update(&req)?;
            ctx.engine.set_kv_config(&ctx.mount, update).await?;
            Ok(json_response(
                StatusCode::OK,
                &render::config(&ctx.engine.kv_config(&ctx.mount)),
            ))
        }
        _ => Err(OkmsError::MethodNotAllowed),
    }
}
