//! Routing inside a KV v2 mount (`vault-plugin-secrets-kv`'s path table).

use actix_web::http::StatusCode;
use serde_json::{json, Value};

use super::decode;
use super::error::{VaultError, VaultResult};
use super::request::Op;
use super::response::Reply;
use super::{kv_data, kv_metadata, kv_versions, Ctx};
use crate::engine::duration::go_duration_string;
use crate::engine::model::{KvConfigUpdate, Mount, VersionOp};

const ROOTS: [&str; 5] = ["data", "metadata", "delete", "undelete", "destroy"];

/// The KV engine's catch-all: 404 carrying a warning and no error (`pathInvalid`).
fn invalid_path(rest: &str, op: Op) -> Reply {
    let root = rest.trim_end_matches('/');
    let warning = if ROOTS.contains(&root) && op != Op::List {
        "Non-listing operations on the root of a K/V v2 mount are not supported.".to_string()
    } else {
        let verb = match op {
            Op::Update => "put",
            Op::Patch => "patch",
            Op::List => "list",
            Op::Delete => "delete",
            _ => "get",
        };
        format!(
            "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the Vault CLI, use 'vault kv {verb}' for this operation."
        )
    };
    Reply::RawEnvelope(StatusCode::NOT_FOUND, Value::Null, Some(vec![warning]))
}

pub async fn route(ctx: &Ctx<'_>, mount: &Mount, rest: &str) -> VaultResult<Reply> {
    // The Vault API routes a KV v1 mount to `vault::kv1`, and no OKMS domain serves one.
    if mount.kv_version != 2 {
        return Err(VaultError::bad(format!(
            "{:?} is a KV version 1 mount: it has no versions or metadata",
            mount.path.as_str()
        )));
    }
    let op = ctx.req.op;
    if rest == "config" {
        return config(ctx, mount).await;
    }
    if let Some(p) = rest.strip_prefix("data/") {
        if p.is_empty() || p.ends_with('/') || op == Op::List {
            return Ok(invalid_path(rest, op));
        }
        return kv_data::route(ctx, mount, p).await;
    }
    if let Some(p) = rest.strip_prefix("metadata/") {
        return kv_metadata::route(ctx, mount, p).await;
    }
    if rest == "metadata" && op == Op::List {
        return kv_metadata::route(ctx, mount, "").await;
    }
    for (prefix, vop) in [
        ("delete/", VersionOp::Delete),
        ("undelete/", VersionOp::Undelete),
        ("destroy/", VersionOp::Destroy),
    ] {
        if let Some(p) = rest.strip_prefix(prefix) {
            if p.is_empty() {
                return Ok(invalid_path(rest, op));
            }
            return kv_versions::route(ctx, mount, p, vop).await;
        }
    }
    if let Some(p) = rest.strip_prefix("subkeys/") {
        if !p.is_empty() && !p.ends_with('/') {
            return kv_data::subkeys(ctx, mount, p);
        }
    }
    Ok(invalid_path(rest, op))
}

/// `<mount>/config`: read, or update only the fields present.
async fn config(ctx: &Ctx<'_>, mount: &Mount) -> VaultResult<Reply> {
    match ctx.req.op {
        Op::Read => {
            let c = ctx.engine.kv_config(mount);
            Ok(Reply::Data(json!({
                "cas_required": c.cas_required,
                "delete_version_after": go_duration_string(c.delete_version_after),
                "max_versions": c.max_versions,
            })))
        }
        Op::Update => {
            let b = &ctx.req.body;
            let dva = b
                .get("delete_version_after")
                .map(|v| decode::duration_with_text(v, "delete_version_after"))
                .transpose()?;
            let update = KvConfigUpdate {
                max_versions: b
                    .get("max_versions")
                    .map(|v| decode::uint32(v, "max_versions"))
                    .transpose()?,
                cas_required: b
                    .get("cas_required")
                    .map(|v| decode::bool_(v, "cas_required"))
                    .transpose()?,
                delete_version_after: dva.as_ref().map(|d| d.0),
                delete_version_after_text: dva.and_then(|d| d.1),
            };
            ctx.engine.set_kv_config(mount, update).await?;
            Ok(Reply::NoContent)
        }
        _ => Err(VaultError::UnsupportedOperation),
    }
}
