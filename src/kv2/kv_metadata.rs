//! `<mount>/metadata/<path>`: read, write, merge-patch, delete, and folder listing.

use actix_web::http::StatusCode;
use serde_json::{json, Map, Value};

use super::decode;
use super::error::{VaultError, VaultResult};
use super::render::secret_metadata;
use super::request::Op;
use super::response::Reply;
use super::Ctx;
use crate::engine::error::EngineError;
use crate::engine::model::{MetaUpdate, Mount};
use crate::engine::path::{FolderPath, SecretPath};

fn secret_path(p: &str) -> VaultResult<SecretPath> {
    SecretPath::parse(p).map_err(|e| VaultError::bad(e.to_string()))
}

/// The scalar metadata fields present in a body.
fn scalar_update(b: &Map<String, Value>) -> VaultResult<MetaUpdate> {
    let present = |k: &str| b.get(k).filter(|v| !v.is_null());
    let dva = present("delete_version_after")
        .map(|v| decode::duration_with_text(v, "delete_version_after"))
        .transpose()?;
    Ok(MetaUpdate {
        max_versions: present("max_versions")
            .map(|v| decode::uint32(v, "max_versions"))
            .transpose()?,
        cas_required: present("cas_required")
            .map(|v| decode::bool_(v, "cas_required"))
            .transpose()?,
        delete_version_after: dva.as_ref().map(|d| d.0),
        delete_version_after_text: dva.and_then(|d| d.1),
        custom_metadata: None,
    })
}

pub async fn route(ctx: &Ctx<'_>, mount: &Mount, p: &str) -> VaultResult<Reply> {
    let engine = ctx.engine;
    let body = &ctx.req.body;
    match ctx.req.op {
        Op::List => list(ctx, mount, p),
        Op::Read => {
            let path = secret_path(p)?;
            match engine.read_metadata(mount, &path) {
                Ok(r) => Ok(Reply::Data(secret_metadata(&r))),
                Err(EngineError::NotFound) => Err(VaultError::NotFound),
                Err(e) => Err(e.into()),
            }
        }
        Op::Update => {
            let path = secret_path(p)?;
            let known = [
                "max_versions",
                "cas_required",
                "delete_version_after",
                "custom_metadata",
            ];
            // No known field at all is a no-op (Vault returns before creating anything).
            if !known.iter().any(|k| body.contains_key(*k)) {
                return Ok(Reply::NoContent);
            }
            let mut update = scalar_update(body)?;
            if let Some(cm) = body.get("custom_metadata") {
                update.custom_metadata = Some(decode::string_map(cm, "custom_metadata").map_err(
                    |e| match e {
                        VaultError::BadRequest(m) => {
                            VaultError::bad(format!("custom_metadata validation failed: {m}"))
                        }
                        other => other,
                    },
                )?);
            }
            let warn = engine.write_metadata(mount, &path, update).await?;
            if warn {
                return Ok(Reply::DataWarn(
                    Value::Null,
                    vec!["\"cas_required\" set to false, but is mandated by backend config. This value will be ignored.".into()],
                ));
            }
            Ok(Reply::NoContent)
        }
        Op::Patch => {
            let path = secret_path(p)?;
            let update = scalar_update(body)?;
            let custom_patch = match body.get("custom_metadata") {
                None | Some(Value::Null) => None,
                Some(Value::Object(m)) => Some(m.clone()),
                Some(_) => {
                    return Err(VaultError::bad(
                        "custom_metadata validation failed: not a map",
                    ))
                }
            };
            match engine
                .patch_metadata(mount, &path, update, custom_patch)
                .await
            {
                Ok(()) => Ok(Reply::NoContent),
                // A missing key: 404 with an empty body, as Vault's patch handler answers.
                Err(EngineError::NotFound) => Ok(Reply::Empty(StatusCode::NOT_FOUND)),
                Err(e) => Err(e.into()),
            }
        }
        Op::Delete => {
            let path = secret_path(p)?;
            engine.delete_metadata(mount, &path).await?;
            Ok(Reply::NoContent)
        }
        Op::Head => Err(VaultError::UnsupportedOperation),
    }
}

/// Lists a folder. Unpaginated as Vault does it, or paginated with `after` (exclusive) and `limit` as
/// OpenBao added. An empty or missing folder is 404 `{"errors":[]}`; `data` holds exactly `keys`
/// (hvac's tests compare `data` to `{"keys": [...]}`).
fn list(ctx: &Ctx<'_>, mount: &Mount, p: &str) -> VaultResult<Reply> {
    let folder = FolderPath::parse(p).map_err(|e| VaultError::bad(e.to_string()))?;
    let q = &ctx.req.body;
    let after = q
        .get("after")
        .map(|v| decode::string(v, "after"))
        .transpose()?
        .filter(|s| !s.is_empty());
    let limit = match q.get("limit") {
        None => None,
        Some(v) => match decode::int(v, "limit")? {
            n if n < 0 => return Err(VaultError::bad("limit must be a non-negative integer")),
            0 => None,
            n => Some(n as usize),
        },
    };
    let page = ctx.engine.list(mount, &folder, after.as_deref(), limit)?;
    if page.keys.is_empty() {
        return Err(VaultError::NotFound);
    }
    Ok(Reply::Data(json!({ "keys": page.keys })))
}
