//! `sys/remount` (`bao secrets move`, hvac's `sys.move_backend`) and `sys/remount/status/<id>`.
//!
//! A move is one conditional write of the mount table (`Engine::remount`): it is complete when
//! `sys/remount` answers, so the status of its `migration_id` is `success` at once (the CLI polls
//! the status and sleeps 10 s between polls while it is not). The move is recorded in the mount
//! table, so every node of a shared store answers the status.

use serde_json::{json, Value};

use super::error::{VaultError, VaultResult};
use super::request::Op;
use super::response::Reply;
use super::Ctx;
use crate::app::AppState;
use crate::engine::path::MountPath;

pub async fn route(state: &AppState, ctx: &Ctx<'_>, rest: &str) -> Option<VaultResult<Reply>> {
    if rest.trim_end_matches('/') == "remount" {
        return Some(match ctx.req.op {
            Op::Update => remount(state, ctx).await,
            _ => Err(VaultError::UnsupportedOperation),
        });
    }
    let id = rest.strip_prefix("remount/status/")?.trim_end_matches('/');
    Some(match ctx.req.op {
        Op::Read if !id.is_empty() => status(ctx, id),
        Op::Read => Err(VaultError::NoHandler(format!("sys/{rest}"))),
        _ => Err(VaultError::UnsupportedOperation),
    })
}

async fn remount(state: &AppState, ctx: &Ctx<'_>) -> VaultResult<Reply> {
    let b = &ctx.req.body;
    let field = |k: &str| match b.get(k) {
        Some(Value::String(s)) if !s.trim_matches('/').is_empty() => Some(s.clone()),
        _ => None,
    };
    let (Some(from), Some(to)) = (field("from"), field("to")) else {
        return Err(VaultError::bad(
            "both 'from' and 'to' path must be specified as a string",
        ));
    };
    let parse = |p: &str| MountPath::parse(p).map_err(|e| VaultError::bad(e.to_string()));
    let (from, to) = (parse(&from)?, parse(&to)?);
    // An OKMS domain names its mount by path in the configuration: moving the mount would leave
    // the domain without its data. The configuration changes first (then the domain answers
    // that its mount is missing until the move is done).
    let mut named: Vec<String> = state
        .okms_domains
        .iter()
        .filter(|(_, p)| **p == from)
        .map(|(id, _)| id.to_string())
        .collect();
    if !named.is_empty() {
        named.sort();
        return Err(VaultError::bad(format!(
            "cannot move {:?}: the OKMS domain {} is backed by it; change the mount of that \
             [[okms.domains]] entry in the configuration file to {:?} first",
            from.as_str(),
            named.join(", "),
            to.as_str()
        )));
    }
    // A KV v1 mount cannot back an OKMS domain (its model is KV v2's): moving one to the path a
    // domain names would leave that domain refusing every request.
    let v1 = ctx
        .engine
        .mount_by_path(&from)
        .is_some_and(|m| m.kv_version != 2);
    let mut backed: Vec<String> = state
        .okms_domains
        .iter()
        .filter(|(_, p)| v1 && **p == to)
        .map(|(id, _)| id.to_string())
        .collect();
    if !backed.is_empty() {
        backed.sort();
        return Err(VaultError::bad(format!(
            "cannot move the KV version 1 mount {:?} to {:?}: the OKMS domain {} is backed by \
             that path and needs a KV version 2 mount; upgrade it first (vault kv \
             enable-versioning {})",
            from.as_str(),
            to.as_str(),
            backed.join(", "),
            from.bare()
        )));
    }
    let done = ctx.engine.remount(&from, &to).await?;
    Ok(Reply::SysInjected(json!({ "migration_id": done.id })))
}

fn status(ctx: &Ctx<'_>, id: &str) -> VaultResult<Reply> {
    let m = ctx.engine.mount_move(id)?.ok_or(VaultError::NotFound)?;
    Ok(Reply::Data(json!({
        "migration_id": m.id,
        "migration_info": {
            "source_mount": m.source.as_str(),
            "target_mount": m.target.as_str(),
            "status": "success",
        },
    })))
}
