//! `<mount>/delete/<path>`, `undelete/<path>`, `destroy/<path>` with `{"versions": [...]}`.

use super::decode;
use super::error::{VaultError, VaultResult};
use super::request::Op;
use super::response::Reply;
use super::Ctx;
use crate::engine::model::{Mount, VersionOp};
use crate::engine::path::SecretPath;

pub async fn route(ctx: &Ctx<'_>, mount: &Mount, p: &str, op: VersionOp) -> VaultResult<Reply> {
    if ctx.req.op != Op::Update {
        return Err(VaultError::UnsupportedOperation);
    }
    let path = SecretPath::parse(p).map_err(|e| VaultError::bad(e.to_string()))?;
    let versions = match ctx.req.body.get("versions") {
        Some(v) => decode::comma_int_slice(v, "versions")?,
        None => vec![],
    };
    if versions.is_empty() {
        // The two spellings are Vault's own (destroy's handler uses lower case).
        return Err(VaultError::bad(match op {
            VersionOp::Destroy => "no version number provided",
            _ => "No version number provided",
        }));
    }
    ctx.engine.version_op(mount, &path, op, versions).await?;
    Ok(Reply::NoContent)
}
