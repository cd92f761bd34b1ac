//! Token roles, `auth/token/roles/<name>`: written and read back exactly as Vault's token store does
//! (the deprecated `period` / `explicit_max_ttl` kept beside their `token_` fields, lists
//! normalised), with the options kvseal cannot enforce refused rather than ignored.

use serde_json::{json, Map, Value};

use super::super::decode;
use super::super::error::{VaultError, VaultResult};
use super::super::request::Op;
use super::super::response::Reply;
use super::super::Ctx;
use super::string_list;
use crate::engine::tokens::{TokenRole, SYSTEM_MAX_TTL};

pub(super) async fn route(ctx: &Ctx<'_>, name: &str) -> VaultResult<Reply> {
    if name.is_empty() || name.contains('/') {
        return Err(VaultError::bad("invalid role name"));
    }
    let engine = ctx.engine;
    match ctx.req.op {
        Op::Read => {
            let r = engine.token_role(name)?.ok_or(VaultError::NotFound)?;
            Ok(Reply::Data(read_data(name, &r)))
        }
        Op::Update => {
            let existing = engine.token_role(name)?;
            // A new role is renewable and not an orphan, as Vault's field defaults.
            let mut r = existing.unwrap_or(TokenRole {
                renewable: true,
                token_type: "default-service".into(),
                ..Default::default()
            });
            let warnings = apply(&mut r, &ctx.req.body)?;
            engine.put_token_role(name, &r).await?;
            Ok(if warnings.is_empty() {
                Reply::NoContent
            } else {
                Reply::DataWarn(Value::Null, warnings)
            })
        }
        Op::Delete => {
            engine.delete_token_role(name).await?;
            Ok(Reply::NoContent)
        }
        _ => Err(VaultError::UnsupportedOperation),
    }
}

/// `tokenStoreRoleRead`: every key Vault returns, `token_num_uses` only when set.
fn read_data(name: &str, r: &TokenRole) -> Value {
    let token_type = if r.token_type.is_empty() {
        "default-service"
    } else {
        r.token_type.as_str()
    };
    let mut d = json!({
        "allowed_entity_aliases": null,
        "allowed_policies": r.allowed_policies,
        "allowed_policies_glob": r.allowed_policies_glob,
        "disallowed_policies": r.disallowed_policies,
        "disallowed_policies_glob": r.disallowed_policies_glob,
        "explicit_max_ttl": r.explicit_max_ttl,
        "name": name,
        "orphan": r.orphan,
        "path_suffix": r.path_suffix,
        "period": r.period,
        "renewable": r.renewable,
        "token_explicit_max_ttl": r.token_explicit_max_ttl,
        "token_no_default_policy": r.token_no_default_policy,
        "token_period": r.token_period,
        "token_type": token_type,
    });
    if r.token_num_uses > 0 {
        d["token_num_uses"] = json!(r.token_num_uses);
    }
    d
}

/// A duration field of a role: Vault's `TypeDurationSecond` refuses negative values.
fn role_duration(v: &Value, name: &str) -> VaultResult<i64> {
    let d = decode::duration(v, name)?;
    if d < 0 {
        return Err(VaultError::bad(format!(
            "error converting input for field {name:?}: cannot provide negative value '{d}'"
        )));
    }
    Ok(d)
}

/// Vault's `\w[\w-.]+\w` for a path suffix, matched against the whole suffix (Vault only looks for
/// it somewhere inside, which lets `/` and other characters through; kvseal is stricter).
fn valid_path_suffix(s: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    s.len() >= 3
        && s.starts_with(word)
        && s.ends_with(word)
        && s.chars().all(|c| word(c) || c == '-' || c == '.')
}

/// Applies a role write (`tokenStoreRoleCreateUpdate`) and returns Vault's warnings.
fn apply(r: &mut TokenRole, b: &Map<String, Value>) -> VaultResult<Vec<String>> {
    let get = |k: &str| b.get(k).filter(|v| !v.is_null());
    let list = |k: &str| get(k).map(|v| string_list(v, k)).transpose();
    let mut warnings = Vec::new();
    if let Some(v) = get("orphan") {
        r.orphan = decode::bool_(v, "orphan")?;
    }
    if let Some(v) = get("renewable") {
        r.renewable = decode::bool_(v, "renewable")?;
    }
    if let Some(v) = get("path_suffix") {
        let s = decode::string(v, "path_suffix")?;
        if s.contains("..") {
            return Err(VaultError::bad(
                "error registering path suffix: path cannot contain parent references",
            ));
        }
        if !s.is_empty() && !valid_path_suffix(&s) {
            return Err(VaultError::bad(
                "given role path suffix contains invalid characters; must match \\w[\\w-.]+\\w",
            ));
        }
        r.path_suffix = s;
    }
    // The engine normalises the lists (lower-cased, sorted, deduplicated) when it stores them.
    if let Some(v) = list("allowed_policies")? {
        r.allowed_policies = v;
    }
    if let Some(v) = list("disallowed_policies")? {
        r.disallowed_policies = v;
    }
    if let Some(v) = list("allowed_policies_glob")? {
        r.allowed_policies_glob = v;
    }
    if let Some(v) = list("disallowed_policies_glob")? {
        r.disallowed_policies_glob = v;
    }
    // Options Vault has and kvseal cannot enforce: refused, so nobody relies on them silently.
    for (k, why) in [
        (
            "token_bound_cidrs",
            "kvseal does not bind tokens to client addresses",
        ),
        (
            "bound_cidrs",
            "kvseal does not bind tokens to client addresses",
        ),
        ("allowed_entity_aliases", "kvseal has no identity store"),
    ] {
        if list(k)?.is_some_and(|l| !l.is_empty()) {
            return Err(VaultError::bad(format!("{k} is not supported: {why}")));
        }
    }
    if let Some(v) = get("token_type") {
        let t = decode::string(v, "token_type")?;
        match t.as_str() {
            "service" | "default-service" => r.token_type = t,
            "batch" | "default-batch" => {
                return Err(VaultError::bad(format!(
                    "token_type {t:?} is not supported: kvseal issues service tokens only"
                )))
            }
            _ => return Err(VaultError::bad(format!("invalid 'token_type' value {t:?}"))),
        }
    }
    if let Some(v) = get("token_no_default_policy") {
        r.token_no_default_policy = decode::bool_(v, "token_no_default_policy")?;
    }
    if let Some(v) = get("token_num_uses") {
        let n = decode::int(v, "token_num_uses")?;
        if n < 0 {
            return Err(VaultError::bad(
                "error parsing role fields: 'token_num_uses' cannot be negative",
            ));
        }
        r.token_num_uses = n;
    }
    // The token_ field wins over its deprecated twin; the twin is read back as last written
    // (0 once the token_ field is written), as Vault keeps both for old clients.
    let mut twin = |new: &str, old: &str, field: &mut i64, legacy: &mut i64| -> VaultResult<()> {
        match (get(new), get(old)) {
            (Some(v), old_value) => {
                *field = role_duration(v, new)?;
                *legacy = 0;
                if old_value.is_some() {
                    warnings.push(format!(
                        "Both '{new}' and deprecated '{old}' value supplied, ignoring the deprecated value"
                    ));
                }
            }
            (None, Some(v)) => {
                *field = role_duration(v, old)?;
                *legacy = *field;
            }
            (None, None) => {}
        }
        Ok(())
    };
    twin("token_period", "period", &mut r.token_period, &mut r.period)?;
    twin(
        "token_explicit_max_ttl",
        "explicit_max_ttl",
        &mut r.token_explicit_max_ttl,
        &mut r.explicit_max_ttl,
    )?;
    // Vault accepts it with a warning that creating tokens will fail; kvseal refuses it up front.
    if r.token_explicit_max_ttl > SYSTEM_MAX_TTL {
        return Err(VaultError::bad(format!(
            "explicit max TTL of {} is greater than the system maximum of {SYSTEM_MAX_TTL} seconds",
            r.token_explicit_max_ttl
        )));
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_suffixes() {
        for (s, ok) in [
            ("v1x", true),
            ("v1", false),
            ("a.b-c_d", true),
            ("-ab", false),
            ("a/bc", false),
            ("x$yyy$", false),
        ] {
            assert_eq!(valid_path_suffix(s), ok, "{s}");
        }
    }
}
