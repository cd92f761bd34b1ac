//! The v2 Secret API: `/v2/secret`, `/v2/secret/{path}`, `/v2/secret/{path}/version[/{version}]`.
//! Each handler: parse and check, one engine call, render.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::{json, Map, Value};

use super::body::{self, State};
use super::error::{json_response, OkmsError, OkmsResult};
use super::pagination::{self, encode_cursor};
use super::path;
use super::routes::Route;
use super::{render, OkmsCtx};
use crate::engine::model::{PutSecret, VersionState};
use crate::engine::path::SecretPath;
use crate::policy::Capabilities as Cap;

fn ok(body: Value) -> HttpResponse {
    json_response(StatusCode::OK, &body)
}

/// A 200 list response; `X-Pagination-Cursor-Next` is set only when there is a next page (the SDK's
/// iterator stops on an absent or empty header).
fn page(items: Vec<Value>, next: Option<String>) -> HttpResponse {
    let mut r = ok(Value::Array(items));
    if let Some(n) = next {
        if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&n) {
            r.headers_mut().insert(
                actix_web::http::header::HeaderName::from_static("x-pagination-cursor-next"),
                v,
            );
        }
    }
    r
}

fn query_param<'a>(ctx: &'a OkmsCtx<'_>, name: &str) -> Option<&'a str> {
    ctx.query.get(name).map(String::as_str)
}

/// Serves a v2 secret route (the pipeline has admitted the caller for it).
pub async fn handle(ctx: &OkmsCtx<'_>, route: Route) -> OkmsResult<HttpResponse> {
    match route {
        Route::List => list(ctx),
        Route::Create => create(ctx).await,
        Route::Get { path, include_data } => get(ctx, &path, include_data),
        Route::Update(p) => update(ctx, &p).await,
        Route::Delete(p) => delete(ctx, &p).await,
        Route::ListVersions(p) => list_versions(ctx, &p),
        Route::CreateVersion(p) => create_version(ctx, &p).await,
        Route::GetVersion {
            path,
            version,
            include_data,
        } => get_version(ctx, &path, version, include_data),
        Route::SetState(p, n) => set_state(ctx, &p, n).await,
        Route::ConfigGet | Route::ConfigPut => super::secret_config::handle(ctx, &route).await,
    }
}

/// `GET /v2/secret`: every secret of the domain, flat, in path order, paginated.
///
/// Only the entries the caller could reach through the Vault API are listed: `list` on every
/// folder above the entry (`metadata/`, `metadata/a/`, …) and `read` on its metadata, each decided
/// by the same ACL (a `deny` on a subtree hides the subtree here as it does there). A page may
/// then hold fewer than `pageSize` entries; the cursor still moves past what was hidden.
fn list(ctx: &OkmsCtx<'_>) -> OkmsResult<HttpResponse> {
    let pg = pagination::from_request(ctx.http)?;
    let rows = ctx
        .engine
        .list_secrets_flat(&ctx.mount, pg.after.as_deref(), pg.size + 1)?;
    let more = rows.len() > pg.size;
    let mut rows: Vec<_> = rows.into_iter().take(pg.size).collect();
    let next = if more {
        rows.last().map(|r| encode_cursor(&r.path))
    } else {
        None
    };
    let visible = Visibility::new(ctx);
    rows.retain(|r| visible.allows(&r.path));
    let now = ctx.engine.clock().now();
    let items = rows
        .iter()
        .map(|r| {
            let mut item = json!({
                "metadata": render::metadata(&ctx.okms_id, &r.path, &r.meta),
                "path": r.path,
            });
            // A key with metadata but no version yet (written through the Vault API) has no
            // `version`; SecretV2Version requires an id >= 1.
            if let Some(v) = &r.current {
                item["version"] = render::version(v, None, now);
            }
            item
        })
        .collect();
    Ok(page(items, next))
}

/// `POST /v2/secret`: creates a secret with its first version (and metadata) at once. An existing
/// path is refused. Answers exactly 200: okms-sdk-go reads the body only on 200.
async fn create(ctx: &OkmsCtx<'_>) -> OkmsResult<HttpResponse> {
    let req: body::PostSecret = body::parse(ctx.body)?;
    let p: SecretPath = path::check(&req.path)?;
    let meta = req.metadata.as_ref().map(body::meta_update).transpose()?;
    let data = body::data(req.version.data)?;
    let out = ctx
        .engine
        .put_secret(
            &ctx.mount,
            &p,
            PutSecret {
                meta,
                data: Some(data),
                cas: None, // CAS does not apply to a create (the OKMS Terraform provider relies on it).
                create_only: true,
                update_only: false,
            },
        )
        .await?;
    Ok(ok(secret_body(ctx, &p, &out.meta)))
}

/// `PostSecretV2Response` / `PutSecretV2Response`: the metadata and the path (no version).
fn secret_body(
    ctx: &OkmsCtx<'_>,
    p: &SecretPath,
    meta: &crate::engine::model::SecretMeta,
) -> Value {
    json!({
        "metadata": render::metadata(&ctx.okms_id, p.as_str(), meta),
        "path": p.as_str(),
    })
}

/// `GET /v2/secret/{path}?version=&includeData=`.
fn get(ctx: &OkmsCtx<'_>, p: &SecretPath, include: bool) -> OkmsResult<HttpResponse> {
    let version = query_param(ctx, "version")
        .map(body::version_number)
        .transpose()?;
    let view = ctx
        .engine
        .read_secret_view(&ctx.mount, p, version, include)?;
    let now = ctx.engine.clock().now();
    Ok(ok(json!({
        "metadata": render::metadata(&ctx.okms_id, p.as_str(), &view.meta),
        "path": p.as_str(),
        "version": render::version(&view.version, view.data, now),
    })))
}

/// `PUT /v2/secret/{path}?cas=`: changes metadata and, when `version.data` is given, writes a new
/// version, in one step. The secret must exist.
async fn update(ctx: &OkmsCtx<'_>, p: &SecretPath) -> OkmsResult<HttpResponse> {
    let cas = query_param(ctx, "cas").map(body::cas).transpose()?;
    let req: body::PutSecret = body::parse(ctx.body)?;
    let meta = req.metadata.as_ref().map(body::meta_update).transpose()?;
    let data = match req.version {
        Some(v) => Some(body::data(v.data)?),
        None => None,
    };
    let out = ctx
        .engine
        .put_secret(
            &ctx.mount,
            p,
            PutSecret {
                meta,
                data,
                cas,
                create_only: false,
                update_only: true,
            },
        )
        .await?;
    Ok(ok(secret_body(ctx, p, &out.meta)))
}

/// `DELETE /v2/secret/{path}`: the secret and every version, permanently. 404 when missing.
async fn delete(ctx: &OkmsCtx<'_>, p: &SecretPath) -> OkmsResult<HttpResponse> {
    if !ctx.engine.secret_exists(&ctx.mount, p)? {
        return Err(OkmsError::NotFound(format!("secret {p} not found")));
    }
    ctx.engine.delete_metadata(&ctx.mount, p).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET /v2/secret/{path}/version`: the kept versions, oldest first, paginated.
fn list_versions(ctx: &OkmsCtx<'_>, p: &SecretPath) -> OkmsResult<HttpResponse> {
    let pg = pagination::from_request(ctx.http)?;
    let after = match pg.after.as_deref() {
        None => 0,
        Some(c) => c.parse::<u64>().map_err(|_| {
            OkmsError::bad("X-Pagination-Cursor is not a cursor this server issued")
        })?,
    };
    let (_, mut versions) = ctx
        .engine
        .list_versions_page(&ctx.mount, p, after, pg.size + 1)?;
    let more = versions.len() > pg.size;
    versions.truncate(pg.size);
    let next = if more {
        versions
            .last()
            .map(|v| encode_cursor(&v.version.to_string()))
    } else {
        None
    };
    let now = ctx.engine.clock().now();
    let items = versions
        .iter()
        .map(|v| render::version(v, None, now))
        .collect();
    Ok(page(items, next))
}

/// `POST /v2/secret/{path}/version?cas=`: a new version of an existing secret.
async fn create_version(ctx: &OkmsCtx<'_>, p: &SecretPath) -> OkmsResult<HttpResponse> {
    let cas = query_param(ctx, "cas").map(body::cas).transpose()?;
    let req: body::PostVersion = body::parse(ctx.body)?;
    let data = body::data(req.data)?;
    let out = ctx
        .engine
        .put_secret(
            &ctx.mount,
            p,
            PutSecret {
                meta: None,
                data: Some(data),
                cas,
                create_only: false,
                update_only: true,
            },
        )
        .await?;
    let v = out
        .version
        .ok_or_else(|| OkmsError::Internal("the write produced no version".into()))?;
    Ok(ok(render::version(&v, None, ctx.engine.clock().now())))
}

/// `GET /v2/secret/{path}/version/{version}?includeData=`.
fn get_version(
    ctx: &OkmsCtx<'_>,
    p: &SecretPath,
    n: u64,
    include: bool,
) -> OkmsResult<HttpResponse> {
    let view = ctx
        .engine
        .read_secret_view(&ctx.mount, p, Some(n), include)?;
    Ok(ok(render::version(
        &view.version,
        view.data,
        ctx.engine.clock().now(),
    )))
}

/// `PUT /v2/secret/{path}/version/{version}` `{"state": ...}`.
async fn set_state(ctx: &OkmsCtx<'_>, p: &SecretPath, n: u64) -> OkmsResult<HttpResponse> {
    let req: body::PutVersion = body::parse(ctx.body)?;
    let target = match req.state {
        State::Active => VersionState::Active,
        State::Deactivated => VersionState::Deactivated,
        State::Deleted => VersionState::Destroyed,
    };
    let v = ctx
        .engine
        .set_version_state(&ctx.mount, p, n, target)
        .await?;
    Ok(ok(render::version(
        &v,
        None::<Map<String, Value>>,
        ctx.engine.clock().now(),
    )))
}

/// Whether an entry of the flat list is one the caller could reach through the Vault API. Folder
/// decisions are remembered for the page: a page of entries in a few folders costs a few lookups.
struct Visibility<'a> {
    ctx: &'a OkmsCtx<'a>,
    folders: std::cell::RefCell<std::collections::HashMap<String, bool>>,
}

impl<'a> Visibility<'a> {
    fn new(ctx: &'a OkmsCtx<'a>) -> Self {
        Self {
            ctx,
            folders: Default::default(),
        }
    }

    fn allows(&self, path: &str) -> bool {
        let acl = &self.ctx.acl;
        if acl.is_root() {
            return true;
        }
        let mount = self.ctx.mount.path.as_str();
        let folder_ok = |folder: &str| {
            let full = format!("{mount}metadata/{folder}");
            *self
                .folders
                .borrow_mut()
                .entry(full.clone())
                .or_insert_with(|| acl.allows_for(&full, Cap::LIST, true))
        };
        // `metadata/`, then `metadata/a/`, `metadata/a/b/` for `a/b/c`.
        let mut folders = vec![""];
        folders.extend(path.match_indices('/').map(|(i, _)| &path[..=i]));
        folders.into_iter().all(folder_ok)
            && acl.allows_for(&format!("{mount}metadata/{path}"), Cap::READ, false)
    }
}
