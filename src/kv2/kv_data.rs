//! `<mount>/data/<path>` (read, write, merge-patch, soft-delete latest) and `<mount>/subkeys/<path>`.

use actix_web::http::StatusCode;
use serde_json::{json, Map, Value};

use super::decode;
use super::error::{VaultError, VaultResult};
use super::render::version_meta;
use super::request::Op;
use super::response::Reply;
use super::Ctx;
use crate::engine::error::EngineError;
use crate::engine::model::{Mount, PatchOutcome, VersionRead};
use crate::engine::path::SecretPath;

fn secret_path(p: &str) -> VaultResult<SecretPath> {
    SecretPath::parse(p).map_err(|e| VaultError::bad(e.to_string()))
}

/// `?version=N`: missing or 0 means the current version; anything non-numeric is 400.
fn version_param(ctx: &Ctx<'_>) -> VaultResult<Option<u64>> {
    match ctx.req.body.get("version") {
        None => Ok(None),
        Some(v) => {
            let n = decode::int(v, "version")?;
            u64::try_from(n)
                .map(Some)
                .map_err(|_| VaultError::bad("version must be a non-negative integer"))
        }
    }
}

/// `options.cas`, weakly decoded (int or numeric string).
fn cas_option(body: &Map<String, Value>) -> VaultResult<Option<i64>> {
    let options = match body.get("options") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(VaultError::bad("error parsing options: not a map")),
    };
    match options.get("cas") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => decode::int(v, "cas")
            .map(Some)
            .map_err(|_| VaultError::bad("error parsing check-and-set parameter")),
    }
}

/// The `data` field of a write: required, and an object.
fn data_field(body: &Map<String, Value>) -> VaultResult<&Map<String, Value>> {
    match body.get("data") {
        None | Some(Value::Null) => Err(VaultError::bad("no data provided")),
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(VaultError::bad(
            "error parsing data: the data must be a JSON object",
        )),
    }
}

pub async fn route(ctx: &Ctx<'_>, mount: &Mount, p: &str) -> VaultResult<Reply> {
    let path = secret_path(p)?;
    let engine = ctx.engine;
    match ctx.req.op {
        Op::Read => read(ctx, mount, &path),
        Op::Update => {
            let cas = cas_option(&ctx.req.body)?;
            let data = data_field(&ctx.req.body)?.clone();
            let out = engine.write_secret(mount, &path, data, cas).await?;
            Ok(Reply::Data(version_meta(
                &out.version,
                &out.custom_metadata,
            )))
        }
        Op::Patch => {
            let cas = cas_option(&ctx.req.body)?;
            let patch = Value::Object(data_field(&ctx.req.body)?.clone());
            match engine.patch_secret(mount, &path, patch, cas).await? {
                PatchOutcome::Written(out) => Ok(Reply::Data(version_meta(
                    &out.version,
                    &out.custom_metadata,
                ))),
                // Vault answers a patch of a missing key with 404 and an empty body; the Go client
                // then reports no error (vault kv patch relies on this).
                PatchOutcome::Missing => Ok(Reply::Empty(StatusCode::NOT_FOUND)),
                PatchOutcome::Gone {
                    version,
                    custom_metadata,
                } => Ok(Reply::RawEnvelope(
                    StatusCode::NOT_FOUND,
                    version_meta(&version, &custom_metadata),
                    None,
                )),
            }
        }
        Op::Delete => {
            engine.delete_latest(mount, &path).await?;
            Ok(Reply::NoContent)
        }
        _ => Err(VaultError::UnsupportedOperation),
    }
}

fn read(ctx: &Ctx<'_>, mount: &Mount, path: &SecretPath) -> VaultResult<Reply> {
    let version = version_param(ctx)?;
    match ctx.engine.read_version(mount, path, version) {
        Ok(VersionRead::Data {
            data,
            version,
            custom_metadata,
        }) => Ok(Reply::Data(json!({
            "data": data,
            "metadata": version_meta(&version, &custom_metadata),
        }))),
        // A deleted or destroyed version: 404 with a full envelope, `data.data: null` and the
        // metadata, and no `errors` key. hvac's `raise_on_deleted_version=False` returns this body.
        Ok(VersionRead::Gone {
            version,
            custom_metadata,
        }) => Ok(Reply::RawEnvelope(
            StatusCode::NOT_FOUND,
            json!({
                "data": null,
                "metadata": version_meta(&version, &custom_metadata),
            }),
            None,
        )),
        Err(EngineError::NotFound) => Err(VaultError::NotFound),
        Err(e) => Err(e.into()),
    }
}

/// Replaces every leaf with `null`, down to `depth` levels (0 = unlimited). An empty map is `null`.
fn subkeys_of(v: &Map<String, Value>, depth: i64, level: i64) -> Value {
    if v.is_empty() {
        return Value::Null;
    }
    Value::Object(
        v.iter()
            .map(|(k, v)| {
                let sub = match v {
                    Value::Object(m) if depth == 0 || level < depth => {
                        let s = subkeys_of(m, depth, level + 1);
                        if m.is_empty() {
                            Value::Null
                        } else {
                            s
                        }
                    }
                    _ => Value::Null,
                };
                (k.clone(), sub)
            })
            .collect(),
    )
}

pub fn subkeys(ctx: &Ctx<'_>, mount: &Mount, p: &str) -> VaultResult<Reply> {
    if ctx.req.op != Op::Read {
        return Err(VaultError::UnsupportedOperation);
    }
    let path = secret_path(p)?;
    let version = version_param(ctx)?;
    let depth = match ctx.req.body.get("depth") {
        Some(v) => decode::int(v, "depth")?,
        None => 0,
    };
    if depth < 0 {
        return Err(VaultError::bad("depth must be a non-negative integer"));
    }
    match ctx.engine.read_version(mount, &path, version) {
        Ok(VersionRead::Data {
            data,
            version,
            custom_metadata,
        }) => Ok(Reply::Data(json!({
            "metadata": version_meta(&version, &custom_metadata),
            "subkeys": subkeys_of(&data, depth, 1),
        }))),
        Ok(VersionRead::Gone {
            version,
            custom_metadata,
        }) => Ok(Reply::RawEnvelope(
            StatusCode::NOT_FOUND,
            json!({
                "metadata": version_meta(&version, &custom_metadata),
                "subkeys": null,
            }),
            None,
        )),
        Err(EngineError::NotFound) => Err(VaultError::NotFound),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subkeys_tree() {
        let data = json!({"a": 1, "b": {"c": {"d": 2}}, "e": {}});
        let Value::Object(m) = data else {
            unreachable!()
        };
        assert_eq!(
            subkeys_of(&m, 0, 1),
            json!({"a": null, "b": {"c": {"d": null}}, "e": null})
        );
        assert_eq!(
            subkeys_of(&m, 1, 1),
            json!({"a": null, "b": null, "e": null})
        );
        assert_eq!(
            subkeys_of(&m, 2, 1),
            json!({"a": null, "b": {"c": null}, "e": null})
        );
    }
}
