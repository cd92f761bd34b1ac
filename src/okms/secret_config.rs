//! `GET/PUT /v2/secretConfig`: the domain-wide defaults. It is the same store as the Vault API's
//! `<mount>/config` (okms-cli writes it through `POST /v1/secret/config` and reads it here).

use actix_web::http::StatusCode;
use actix_web::HttpResponse;

use super::body;
use super::error::{json_response, OkmsResult};
use super::routes::Route;
use super::{render, OkmsCtx};

/// Serves `GET` / `PUT /v2/secretConfig` (admitted by the pipeline: `read` / `update` on
/// `<mount>/config`).
pub async fn handle(ctx: &OkmsCtx<'_>, route: &Route) -> OkmsResult<HttpResponse> {
    if matches!(route, Route::ConfigPut) {
        let req: body::PutConfig = body::parse(ctx.body)?;
        let update = body::config_update(&req)?;
        ctx.engine.set_kv_config(&ctx.mount, update).await?;
    }
    Ok(json_response(
        StatusCode::OK,
        &render::config(&ctx.engine.kv_config(&ctx.mount)),
    ))
}
