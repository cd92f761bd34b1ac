//! ACL policies (`sys/policies/acl/<name>`, the legacy `sys/policy/<name>`) and the capability
//! queries (`sys/capabilities-self`, `sys/capabilities`, `sys/capabilities-accessor`).

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::decode;
use super::error::{VaultError, VaultResult};
use super::request::Op;
use super::response::Reply;
use super::Ctx;
use crate::engine::tokens::TokenRef;
use crate::policy::Acl;

/// Routes `sys/policies/acl...`, `sys/policy...` and `sys/capabilities...`; `None` when the path is
/// none of them.
pub async fn route(ctx: &Ctx<'_>, rest: &str) -> Option<VaultResult<Reply>> {
    let rest = rest.trim_end_matches('/');
    if rest == "policies/acl" {
        return Some(list(ctx, false));
    }
    if let Some(name) = rest.strip_prefix("policies/acl/") {
        return Some(one(ctx, name, false).await);
    }
    if rest == "policy" {
        return Some(list(ctx, true));
    }
    if let Some(name) = rest.strip_prefix("policy/") {
        return Some(one(ctx, name, true).await);
    }
    match rest {
        "capabilities-self" | "capabilities" | "capabilities-accessor" => {
            Some(capabilities(ctx, rest))
        }
        _ => None,
    }
}

/// `LIST sys/policies/acl` → `keys`; the legacy `GET sys/policy` → `keys` and `policies`, injected
/// at the top level as Vault's sys routes are.
fn list(ctx: &Ctx<'_>, legacy: bool) -> VaultResult<Reply> {
    let names = ctx.engine.policy_names()?;
    match (legacy, ctx.req.op) {
        (false, Op::List) => Ok(Reply::Data(json!({ "keys": names }))),
        (true, Op::Read | Op::List) => Ok(Reply::SysInjected(json!({
            "keys": names,
            "policies": names,
        }))),
        _ => Err(VaultError::UnsupportedOperation),
    }
}

async fn one(ctx: &Ctx<'_>, raw_name: &str, legacy: bool) -> VaultResult<Reply> {
    if raw_name.is_empty() || raw_name.contains('/') {
        return Err(VaultError::bad("invalid policy name"));
    }
    let name = raw_name.to_lowercase();
    let engine = ctx.engine;
    match ctx.req.op {
        Op::Read => {
            let text = if name == "root" {
                None
            } else {
                engine.policy_text(&name)?
            };
            let text = text.ok_or(VaultError::NotFound)?;
            if legacy {
                Ok(Reply::SysInjected(json!({ "name": name, "rules": text })))
            } else {
                Ok(Reply::Data(json!({ "name": name, "policy": text })))
            }
        }
        Op::Update => {
            let b = &ctx.req.body;
            let field = b
                .get("policy")
                .or_else(|| if legacy { b.get("rules") } else { None });
            let mut text = field
                .map(|v| decode::string(v, "policy"))
                .transpose()?
                .unwrap_or_default();
            if text.trim().is_empty() {
                return Err(VaultError::bad("'policy' parameter not supplied or empty"));
            }
            // Vault takes a base64-encoded policy too (it decodes whatever decodes).
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(text.trim()) {
                if let Ok(decoded) = String::from_utf8(bytes) {
                    text = decoded;
                }
            }
            engine.put_policy(&name, &text).await?;
            if name != raw_name {
                return Ok(Reply::DataWarn(
                    Value::Null,
                    vec![format!("policy name was converted to {name}")],
                ));
            }
            Ok(Reply::NoContent)
        }
        Op::Delete => {
            engine.delete_policy(&name).await?;
            Ok(Reply::NoContent)
        }
        _ => Err(VaultError::UnsupportedOperation),
    }
}

/// `path` (one) or `paths` (a list or comma string).
fn paths_of(b: &Map<String, Value>) -> VaultResult<Vec<String>> {
    let mut out = Vec::new();
    if let Some(p) = b.get("path").filter(|v| !v.is_null()) {
        out.push(decode::string(p, "path")?);
    }
    match b.get("paths") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for i in items {
                out.push(decode::string(i, "paths")?);
            }
        }
        Some(Value::String(s)) => out.extend(s.split(',').map(|p| p.trim().to_string())),
        Some(_) => return Err(VaultError::bad("error parsing paths: not a list")),
    }
    let out: Vec<String> = out
        .into_iter()
        .map(|p| p.trim_start_matches('/').to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if out.is_empty() {
        return Err(VaultError::bad("missing paths"));
    }
    Ok(out)
}

/// What a token may do on each path: `{"<path>": [...], "capabilities": [...]}` (the latter for the
/// single-path form), injected at the top level as Vault's `sys/capabilities*` routes are.
fn capabilities(ctx: &Ctx<'_>, which: &str) -> VaultResult<Reply> {
    if ctx.req.op != Op::Update {
        return Err(VaultError::UnsupportedOperation);
    }
    let b = &ctx.req.body;
    let paths = paths_of(b)?;
    let engine = ctx.engine;
    let acl: std::sync::Arc<Acl> = match which {
        "capabilities-self" => ctx.acl.clone(),
        "capabilities" => {
            let t = b
                .get("token")
                .map(|v| decode::string(v, "token"))
                .transpose()?
                .unwrap_or_default();
            let row = engine
                .lookup_token(TokenRef::Token(&t))
                .map_err(|_| VaultError::bad("invalid token"))?;
            engine.acl_of(&row.policies)
        }
        _ => {
            let a = b
                .get("accessor")
                .map(|v| decode::string(v, "accessor"))
                .transpose()?
                .unwrap_or_default();
            let row = engine
                .lookup_token(TokenRef::Accessor(&a))
                .map_err(|_| VaultError::bad("invalid accessor"))?;
            engine.acl_of(&row.policies)
        }
    };
    let mut data = Map::new();
    let mut last = Vec::new();
    for p in &paths {
        last = acl.capabilities(p).names();
        data.insert(p.clone(), json!(last));
    }
    if paths.len() == 1 {
        data.insert("capabilities".into(), json!(last));
    }
    Ok(Reply::SysInjected(Value::Object(data)))
}
