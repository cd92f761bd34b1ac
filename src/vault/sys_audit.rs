//! `sys/audit` (list), `sys/audit/<name>` (enable, disable) and `sys/audit-hash/<name>`.

use serde_json::{json, Map, Value};

use super::decode;
use super::error::{VaultError, VaultResult};
use super::request::Op;
use super::response::Reply;
use super::Ctx;

pub async fn route(ctx: &Ctx<'_>, rest: &str) -> Option<VaultResult<Reply>> {
    let rest = rest.trim_end_matches('/');
    if rest == "audit" {
        return Some(list(ctx));
    }
    if let Some(name) = rest.strip_prefix("audit/") {
        return Some(device(ctx, name).await);
    }
    if let Some(name) = rest.strip_prefix("audit-hash/") {
        return Some(hash(ctx, name));
    }
    None
}

fn list(ctx: &Ctx<'_>) -> VaultResult<Reply> {
    if ctx.req.op != Op::Read {
        return Err(VaultError::UnsupportedOperation);
    }
    let mut data = Map::new();
    for d in ctx.engine.audit_devices().iter() {
        data.insert(
            format!("{}/", d.name),
            json!({
                "type": d.kind,
                "description": d.description,
                "options": d.options,
                "path": format!("{}/", d.name),
                "local": false,
            }),
        );
    }
    Ok(Reply::SysInjected(Value::Object(data)))
}

async fn device(ctx: &Ctx<'_>, name: &str) -> VaultResult<Reply> {
    let engine = ctx.engine;
    match ctx.req.op {
        Op::Update => {
            let b = &ctx.req.body;
            let kind = b
                .get("type")
                .map(|v| decode::string(v, "type"))
                .transpose()?
                .unwrap_or_default();
            if kind.is_empty() {
                return Err(VaultError::bad("type is required"));
            }
            let description = b
                .get("description")
                .map(|v| decode::string(v, "description"))
                .transpose()?
                .unwrap_or_default();
            let options = match b.get("options") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(o)) => o.clone(),
                Some(_) => return Err(VaultError::bad("error parsing options: not a map")),
            };
            engine
                .enable_audit(name, &kind, &description, options)
                .await?;
            Ok(Reply::NoContent)
        }
        Op::Delete => {
            engine.disable_audit(name).await?;
            Ok(Reply::NoContent)
        }
        _ => Err(VaultError::UnsupportedOperation),
    }
}

/// The hash a device writes for `input`, so an operator can search the log for a known value.
fn hash(ctx: &Ctx<'_>, name: &str) -> VaultResult<Reply> {
    if ctx.req.op != Op::Update {
        return Err(VaultError::UnsupportedOperation);
    }
    let input = ctx
        .req
        .body
        .get("input")
        .map(|v| decode::string(v, "input"))
        .transpose()?
        .ok_or_else(|| VaultError::bad("input is required"))?;
    let devices = ctx.engine.audit_devices();
    let dev = devices
        .iter()
        .find(|d| d.name == name)
        .ok_or_else(|| VaultError::bad(format!("unknown audit backend {name}")))?;
    Ok(Reply::Data(json!({ "hash": dev.hash(&input) })))
}
