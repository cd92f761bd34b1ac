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
use crate::engine::tokens::{TokenRef, TokenRequest, TokenRole};
use crate::engine::Identity;
use crate::storage::token_rows::TokenRow;

pub async fn route(ctx: &Ctx<'_>, rest: &str) -> VaultResult<Reply> {
    let rest = rest.trim_end_matches('/');
    let op = ctx.req.op;
    let me = ctx.identity.as_ref().ok_or(VaultError::PermissionDenied)?;
    let engine = ctx.engine;
    let body = &ctx.req.body;
    match (rest, op) {
        ("create", Op::Update) => create(ctx, me, None, false).await,
        ("create-orphan", Op::Update) => create(ctx, me, None, true).await,
        (r, Op::Update) if r.starts_with("create/") => {
            create(ctx, me, Some(r["create/".len()..].to_string()), false).await
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
        (r, _) if r.starts_with("roles/") => role(ctx, &r["roles/".len()..]).await,
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

fn renewed(auth: Value, warning: Option<String>) -> Reply {
    match warning {
        Some(w) => Reply::AuthWarn(auth, vec![w]),
        None => Reply::Auth(auth),
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
    let no_parent = get("no_parent")
        .map(|v| decode::bool_(v, "no_parent"))
        .transpose()?
        .unwrap_or(false);
    // Vault: only root (or sudo on the create path) may create an orphan through `no_parent`.
    if no_parent && !me.is_root() && !ctx.has_sudo("auth/token/create") {
        return Err(VaultError::bad(
            "root or sudo privileges required to create orphan token",
        ));
    }
    let meta: Option<BTreeMap<String, String>> = get("meta")
        .map(|v| decode::string_map(v, "meta"))
        .transpose()?;
    let req = TokenRequest {
        policies: get("policies")
            .map(|v| string_list(v, "policies"))
            .transpose()?,
        ttl: get("ttl").map(|v| decode::duration(v, "ttl")).transpose()?,
        explicit_max_ttl: get("explicit_max_ttl")
            .map(|v| decode::duration(v, "explicit_max_ttl"))
            .transpose()?,
        period: get("period")
            .map(|v| decode::duration(v, "period"))
            .transpose()?,
        renewable: get("renewable")
            .map(|v| decode::bool_(v, "renewable"))
            .transpose()?,
        num_uses: get("num_uses")
            .map(|v| decode::int(v, "num_uses"))
            .transpose()?
            .unwrap_or(0),
        display_name: get("display_name")
            .map(|v| decode::string(v, "display_name"))
            .transpose()?,
        meta,
        no_default_policy: get("no_default_policy")
            .map(|v| decode::bool_(v, "no_default_policy"))
            .transpose()?
            .unwrap_or(false),
        orphan: no_parent || orphan_endpoint,
        role,
    };
    if req.num_uses < 0 {
        return Err(VaultError::bad("number of uses cannot be negative"));
    }
    let (token, row) = ctx.engine.create_token(me, req).await?;
    Ok(Reply::Auth(auth_block(
        &row,
        token.expose(),
        ctx.engine.clock().now(),
    )))
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

async fn role(ctx: &Ctx<'_>, name: &str) -> VaultResult<Reply> {
    if name.is_empty() || name.contains('/') {
        return Err(VaultError::bad("invalid role name"));
    }
    let engine = ctx.engine;
    match ctx.req.op {
        Op::Read => {
            let r = engine.token_role(name)?.ok_or(VaultError::NotFound)?;
            Ok(Reply::Data(json!({
                "allowed_policies": r.allowed_policies,
                "disallowed_policies": r.disallowed_policies,
                "explicit_max_ttl": r.token_explicit_max_ttl,
                "name": name,
                "orphan": r.orphan,
                "path_suffix": "",
                "period": r.token_period,
                "renewable": r.renewable,
                "token_explicit_max_ttl": r.token_explicit_max_ttl,
                "token_period": r.token_period,
                "token_type": "service",
            })))
        }
        Op::Update => {
            let b = &ctx.req.body;
            let mut r = engine.token_role(name)?.unwrap_or(TokenRole {
                renewable: true,
                token_type: "service".into(),
                ..Default::default()
            });
            let get = |k: &str| b.get(k).filter(|v| !v.is_null());
            if let Some(v) = get("allowed_policies") {
                r.allowed_policies = string_list(v, "allowed_policies")?;
            }
            if let Some(v) = get("disallowed_policies") {
                r.disallowed_policies = string_list(v, "disallowed_policies")?;
            }
            if let Some(v) = get("orphan") {
                r.orphan = decode::bool_(v, "orphan")?;
            }
            if let Some(v) = get("renewable") {
                r.renewable = decode::bool_(v, "renewable")?;
            }
            if let Some(v) = get("token_period").or_else(|| get("period")) {
                r.token_period = decode::duration(v, "token_period")?.max(0);
            }
            if let Some(v) = get("token_explicit_max_ttl").or_else(|| get("explicit_max_ttl")) {
                r.token_explicit_max_ttl = decode::duration(v, "token_explicit_max_ttl")?.max(0);
            }
            if let Some(v) = get("token_type") {
                let t = decode::string(v, "token_type")?;
                if !t.is_empty() && t != "service" && t != "default" && t != "default-service" {
                    return Err(VaultError::bad(format!(
                        "token type {t:?} is not supported: kvseal issues service tokens only"
                    )));
                }
            }
            engine.put_token_role(name, &r).await?;
            Ok(Reply::NoContent)
        }
        Op::Delete => {
            engine.delete_token_role(name).await?;
            Ok(Reply::NoContent)
        }
        _ => Err(VaultError::UnsupportedOperation),
    }
}
