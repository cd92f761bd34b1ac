//! `cubbyhole/`: the caller's own private storage (Vault's cubbyhole backend). Every token sees
//! only its own entries; they go when the token is revoked or expires. Mounted at `cubbyhole/`
//! always, listed by `sys/mounts`; it cannot be disabled, moved or tuned (see `sys_mounts`).

use serde_json::{json, Value};

use super::error::{VaultError, VaultResult};
use super::request::Op;
use super::response::Reply;
use super::Ctx;
use crate::engine::Identity;

/// The mount path, and what `sys/mounts` shows for it.
pub const MOUNT: &str = "cubbyhole/";

/// `sys/mounts` entry: fixed accessor and uuid (the mount is not stored), in Vault's formats.
pub fn mount_info() -> Value {
    json!({
        "accessor": "cubbyhole_6b767365",
        "config": {"default_lease_ttl": 0, "force_no_cache": false, "max_lease_ttl": 0},
        "description": "per-token private secret storage",
        "external_entropy_access": false,
        "local": true,
        "options": null,
        "plugin_version": "",
        "running_plugin_version": concat!("v", env!("CARGO_PKG_VERSION"), "+kvseal"),
        "running_sha256": "",
        "seal_wrap": false,
        "type": "cubbyhole",
        "uuid": "6b767365-616c-0000-0000-637562627968",
    })
}

/// A request on `cubbyhole/<rest>` (`rest` may be empty).
pub async fn route(ctx: &Ctx<'_>, rest: &str) -> VaultResult<Reply> {
    let id: &Identity = ctx.identity.as_ref().ok_or(VaultError::PermissionDenied)?;
    let engine = ctx.engine;
    match ctx.req.op {
        Op::Read => {
            if rest.is_empty() {
                return Err(VaultError::bad("missing path"));
            }
            match engine.cubby_read(id, rest)? {
                Some(data) => Ok(Reply::Data(Value::Object(data))),
                None => Err(VaultError::NotFound),
            }
        }
        Op::List => {
            let folder = if rest.is_empty() || rest.ends_with('/') {
                rest.to_string()
            } else {
                format!("{rest}/")
            };
            let keys = engine.cubby_list(id, &folder)?;
            if keys.is_empty() {
                return Err(VaultError::NotFound);
            }
            Ok(Reply::Data(json!({ "keys": keys })))
        }
        Op::Update => {
            if rest.is_empty() {
                return Err(VaultError::bad("missing path"));
            }
            if rest.ends_with('/') {
                return Err(VaultError::bad("cannot write to a path ending in '/'"));
            }
            // Vault answers an empty write 500 ("missing data fields"); it is the client's error.
            if ctx.req.body.is_empty() {
                return Err(VaultError::bad("missing data fields"));
            }
            engine.cubby_write(id, rest, ctx.req.body.clone()).await?;
            Ok(Reply::NoContent)
        }
        Op::Delete => {
            if rest.is_empty() {
                return Err(VaultError::bad("missing path"));
            }
            engine.cubby_delete(id, rest).await?;
            Ok(Reply::NoContent)
        }
        Op::Patch | Op::Head => Err(VaultError::UnsupportedOperation),
    }
}
