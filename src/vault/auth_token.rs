//! The token store, `auth/token/...`: create (plain, orphan, from a role), lookup, renew, revoke (each
//! by token, for self, or by accessor), the accessor list, and token roles.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::decode;
use super::error::{VaultError, VaultResult};
use super::request::Op;
use super::response::Reply;
use super::Ctx;
use crate::engine::clock::{rfc3339_nano, NANOS_PER_SEC};
use crate::engine::tokens::TokenRow;
use crate::engine::tokens::{TokenRef, TokenRequest};
use crate::engine::Identity;

mod roles;
#[cfg(test)]
mod tests;

pub async fn route(ctx: &Ctx<'_>, rest: &str) -> VaultResult<Reply> {
    let rest = rest.trim_end_matches('/');
    let op = ctx.req.op;
    let me = ctx.identity.as_ref().ok_or(VaultError::PermissionDenied)?;
    let engine = ctx.engine;
    let body = &ctx.req.body;
    match (rest, op) {
        ("create", Op::Update) => create(ctx, me, rest, None, false).await,
        ("create-orphan", Op::Update) => create(ctx, me, rest, None, true).await,
        (r, Op::Update) if r.starts_with("create/") => {
            create(ctx, me, rest, Some(r["create/".len()..].to_string()), false).await
        }
        ("lookup-self", Op::Read | Op::Update) => Ok(Reply::Data(lookup_data(
            &me.entry,
            Some(me.token.expose()),
            engine.clock().now(),
        ))),
        ("lookup", Op::Update) => {
            let t = required(body, "token")?;
            let row = engine
                .lookup_token(TokenRef::Token(&t))
                .map_err(bad_token)?;
            Ok(Reply::Data(lookup_data(
                &row,
                Some(&t),
                engine.clock().now(),
            )))
        }
        ("lookup-accessor", Op::Update) => {
            let a = required(body, "accessor")?;
            let row = engine
                .lookup_token(TokenRef::Accessor(&a))
                .map_err(bad_accessor)?;
            Ok(Reply::Data(lookup_data(&row, None, engine.clock().now())))
        }
        ("renew-self", Op::Update) => {
            let (row, warning) = engine
                .renew_token(TokenRef::Token(me.token.expose()), increment(body)?)
                .await?;
            Ok(renewed(
                auth_block(&row, me.token.expose(), engine.clock().now()),
                warning,
            ))
        }
        ("renew", Op::Update) => {
            let t = required(body, "token")?;
            let (row, warning) = engine
                .renew_token(TokenRef::Token(&t), increment(body)?)
                .await
                .map_err(bad_token)?;
            Ok(renewed(auth_block(&row, &t, engine.clock().now()), warning))
        }
        ("renew-accessor", Op::Update) => {
            let a = required(body, "accessor")?;
            let (row, warning) = engine
                .renew_token(TokenRef::Accessor(&a), increment(body)?)
                .await
                .map_err(bad_accessor)?;
            Ok(renewed(auth_block(&row, "", engine.clock().now()), warning))
        }
        ("revoke-self", Op::Update) => {
            engine
                .revoke_token(TokenRef::Token(me.token.expose()), false)
                .await?;
            Ok(Reply::NoContent)
        }
        ("revoke", Op::Update) => {
            let t = required(body, "token")?;
            engine.revoke_token(TokenRef::Token(&t), false).await?;
            Ok(Reply::NoContent)
        }
        ("revoke-orphan", Op::Update) => {
            let t = required(body, "token")?;
            engine.revoke_token(TokenRef::Token(&t), true).await?;
            Ok(Reply::NoContent)
        }
        ("revoke-accessor", Op::Update) => {
            let a = required(body, "accessor")?;
            engine.revoke_token(TokenRef::Accessor(&a), false).await?;
            Ok(Reply::NoContent)
        }
        ("accessors", Op::List) => keys(engine.token_accessors()?),
        ("roles", Op::List) => keys(engine.token_role_names()?),
        (r, _) if r.starts_with("roles/") => roles::route(ctx, &r["roles/".len()..]).await,
        _ => Err(VaultError::NoHandler(format!("auth/token/{rest}"))),
    }
}

/// An unknown, expired or revoked token in a lookup or renew by value: Vault answers 403 "bad token"
/// (`handleLookup` returns ErrPermissionDenied; hvac raises Forbidden on it).
fn bad_token(e: crate::engine::error::EngineError) -> VaultError {
    match e {
        crate::engine::error::EngineError::PermissionDenied => {
            VaultError::Denied("bad token".into())
        }
        other => other.into(),
    }
}

/// An unknown accessor: 400 "invalid accessor", as Vault answers (unlike a bad token's 403).
fn bad_accessor(e: crate::engine::error::EngineError) -> VaultError {
    match e {
        crate::engine::error::EngineError::PermissionDenied => VaultError::bad("invalid accessor"),
        other => other.into(),
    }
}

fn renewed(auth: Value, warnings: Vec<String>) -> Reply {
    if warnings.is_empty() {
        Reply::Auth(auth)
    } else {
        Reply::AuthWarn(auth, warnings)
    }
}

fn required(body: &serde_json::Map<String, Value>, name: &str) -> VaultResult<String> {
    match body
        .get(name)
        .map(|v| decode::string(v, name))
        .transpose()?
    {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(VaultError::bad(format!("missing {name}"))),
    }
}

fn increment(body: &serde_json::Map<String, Value>) -> VaultResult<Option<i64>> {
    body.get("increment")
        .map(|v| decode::duration(v, "increment"))
        .transpose()
}

fn keys(mut k: Vec<String>) -> VaultResult<Reply> {
    if k.is_empty() {
        return Err(VaultError::NotFound);
    }
    k.sort();
    Ok(Reply::Data(json!({ "keys": k })))
}

/// A list of strings given as an array or a comma-separated string.
fn string_list(v: &Value, name: &str) -> VaultResult<Vec<String>> {
    match v {
        Value::Null => Ok(vec![]),
        Value::String(s) => Ok(s
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect()),
        Value::Array(items) => items.iter().map(|i| decode::string(i, name)).collect(),
        _ => Err(VaultError::bad(format!("error parsing {name}: not a list"))),
    }
}

async fn create(
    ctx: &Ctx<'_>,
    me: &Identity,
    path: &str,
    role: Option<String>,
    orphan_endpoint: bool,
) -> VaultResult<Reply> {
    let b = &ctx.req.body;
    let get = |k: &str| b.get(k).filter(|v| !v.is_null());
    if let Some(t) = get("type") {
        let t = decode::string(t, "type")?;
        if !t.is_empty() && t != "service" && t != "default" {
            return Err(VaultError::bad(format!(
                "token type {t:?} is not supported: kvseal issues service tokens only"
            )));
        }
    }
    if get("id").is_some() {
        return Err(VaultError::bad(
            "choosing the token value (id) is not supported",
        ));
    }
    let meta: Option<BTreeMap<String, String>> = get("meta")
        .map(|v| decode::string_map(v, "meta"))
        .transpose()?;
    let string = |k: &str| get(k).map(|v| decode::string(v, k)).transpose();
    let dur = |k: &str| get(k).map(|v| decode::duration(v, k)).transpose();
    let flag = |k: &str| get(k).map(|v| decode::bool_(v, k)).transpose();
    let req = TokenRequest {
        policies: get("policies")
            .map(|v| string_list(v, "policies"))
            .transpose()?,
        ttl: dur("ttl")?,
        explicit_max_ttl: dur("explicit_max_ttl")?,
        period: dur("period")?,
        renewable: flag("renewable")?,
        num_uses: get("num_uses")
            .map(|v| decode::int(v, "num_uses"))
            .transpose()?
            .unwrap_or(0),
        display_name: string("display_name")?,
        meta,
        no_default_policy: flag("no_default_policy")?.unwrap_or(false),
        no_parent: flag("no_parent")?.unwrap_or(false),
        orphan_endpoint,
        role,
        entity_alias: string("entity_alias")?,
        // Vault's isSudo: root, or sudo on the path being called (`auth/token/create/<role>` for a
        // role, so a sudo grant on `create` alone does not cover roles).
        sudo: me.is_root() || ctx.has_sudo(&format!("auth/token/{path}")),
    };
    let (token, row, warnings) = ctx.engine.create_token(me, req).await?;
    Ok(renewed(
        auth_block(&row, token.expose(), ctx.engine.clock().now()),
        warnings,
    ))
}

/// The `auth` block of a create or renew. vaultrs' `AuthInfo` needs every field here but `metadata`.
fn auth_block(row: &TokenRow, client_token: &str, now: i64) -> Value {
    let token_policies = row.policies.clone();
    // The lease duration is the time left until expiry (0 = never expires).
    let lease = row
        .expire
        .map(|e| ((e - now + NANOS_PER_SEC - 1) / NANOS_PER_SEC).max(0))
        .unwrap_or(0);
    json!({
        "client_token": client_token,
        "accessor": row.accessor,
        "policies": row.policies,
        "token_policies": token_policies,
        "metadata": row.meta,
        "lease_duration": lease,
        "renewable": row.renewable,
        "entity_id": "",
        "token_type": "service",
        "orphan": row.orphan,
        "mfa_requirement": null,
        "num_uses": row.num_uses,
    })
}

/// The lookup `data` block. `policies` is always an array: `vault login` dereferences it and panics
/// when it is missing. `id` is the token for lookups by token, `""` for lookups by accessor.
fn lookup_data(row: &TokenRow, token: Option<&str>, now: i64) -> Value {
    let ttl = row
        .expire
        .map(|e| ((e - now) / NANOS_PER_SEC).max(0))
        .unwrap_or(0);
    let mut d = json!({
        "accessor": row.accessor,
        "creation_time": row.creation / NANOS_PER_SEC,
        "creation_ttl": row.creation_ttl,
        "display_name": row.display_name,
        "entity_id": "",
        "expire_time": row.expire.map(rfc3339_nano),
        "explicit_max_ttl": row.explicit_max_ttl,
        "id": token.unwrap_or(""),
        "meta": row.meta,
        "num_uses": row.num_uses,
        "orphan": row.orphan,
        "path": row.path,
        "policies": row.policies,
        "ttl": ttl,
        "type": "service",
    });
    if row.expire.is_some() {
        d["issue_time"] = json!(rfc3339_nano(row.creation));
        d["renewable"] = json!(row.renewable);
        if let Some(r) = row.last_renewal {
            d["last_renewal_time"] = json!(r / NANOS_PER_SEC);
            d["last_renewal"] = json!(rfc3339_nano(r));
        }
    }
    if row.period > 0 {
        d["period"] = json!(row.period);
    }
    if let Some(r) = &row.role {
        d["role"] = json!(r);
    }
    d
}
