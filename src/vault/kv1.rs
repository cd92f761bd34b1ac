//! KV version 1 mounts (`kv` without `version: 2`, and `generic`), answered as Vault's passthrough
//! backend answers: `GET` reads (with the TTL hint as `lease_duration`), `PUT`/`POST` replace the
//! value (204), `DELETE` removes it (204), `LIST` lists a folder. The whole rest of the path is the
//! secret's name: `<mount>/data/x` is a secret named `data/x`, no versions, no metadata. The vault
//! CLI finds a v1 mount through the preflight (no `options.version`, or `"1"`) and sends these
//! paths itself; its `kv metadata`, `undelete`, `destroy`, `patch` and `rollback` refuse a v1 mount
//! before sending anything.

use serde_json::{json, Value};

use super::error::{VaultError, VaultResult};
use super::request::Op;
use super::response::Reply;
use super::sys_mounts::SYSTEM_DEFAULT_TTL;
use super::Ctx;
use crate::engine::duration::{parse_go_duration, MAX_SECS};
use crate::engine::model::Mount;
use crate::engine::path::{FolderPath, SecretPath};

pub async fn route(ctx: &Ctx<'_>, mount: &Mount, rest: &str) -> VaultResult<Reply> {
    match ctx.req.op {
        Op::Read => read(ctx, mount, rest),
        Op::List => list(ctx, mount, rest),
        Op::Update => write(ctx, mount, rest).await,
        Op::Delete => {
            // `""` and `x/` name nothing a write can create: nothing to remove (Vault: 204).
            if let Ok(path) = SecretPath::parse(rest) {
                ctx.engine.kv1_delete(mount, &path).await?;
            }
            Ok(Reply::NoContent)
        }
        // The passthrough backend has no patch (the CLI's `kv patch` needs a v2 mount) and no
        // existence-only read.
        Op::Patch | Op::Head => Err(VaultError::UnsupportedOperation),
    }
}

fn read(ctx: &Ctx<'_>, mount: &Mount, rest: &str) -> VaultResult<Reply> {
    // The mount itself and `x/` hold no value (Vault reads its storage there and finds none).
    let Ok(path) = SecretPath::parse(rest) else {
        return Err(VaultError::NotFound);
    };
    let data = ctx
        .engine
        .kv1_read(mount, &path)?
        .ok_or(VaultError::NotFound)?;
    let ttl = data
        .get("ttl")
        .or_else(|| data.get("lease"))
        .and_then(parse_duration_second)
        .unwrap_or_else(|| default_ttl(mount));
    Ok(Reply::Lease(Value::Object(data), ttl, param_warnings(ctx)))
}

async fn write(ctx: &Ctx<'_>, mount: &Mount, rest: &str) -> VaultResult<Reply> {
    // Vault's request handling refuses this for every path, before the backend sees it.
    if ctx.req.path.ends_with('/') {
        return Err(VaultError::bad("cannot write to a path ending in '/'"));
    }
    if rest.is_empty() {
        return Err(VaultError::bad("missing path"));
    }
    let path = SecretPath::parse(rest).map_err(|e| VaultError::bad(e.to_string()))?;
    // The whole body is the value (no `data` wrapper, unlike v2).
    if ctx.req.body.is_empty() {
        return Err(VaultError::bad("missing data fields"));
    }
    ctx.engine
        .kv1_write(mount, &path, ctx.req.body.clone())
        .await?;
    Ok(Reply::NoContent)
}

/// A folder's keys, sub-folders with a trailing `/`; an empty or missing folder is 404
/// `{"errors":[]}`. No pagination: Vault's v1 list takes no `after` or `limit` (it warns that
/// it ignored them, as here).
fn list(ctx: &Ctx<'_>, mount: &Mount, rest: &str) -> VaultResult<Reply> {
    let folder = FolderPath::parse(rest).map_err(|e| VaultError::bad(e.to_string()))?;
    let page = ctx.engine.list(mount, &folder, None, None)?;
    if page.keys.is_empty() {
        return Err(VaultError::NotFound);
    }
    let data = json!({ "keys": page.keys });
    Ok(match param_warnings(ctx) {
        Some(w) => Reply::DataWarn(data, w),
        None => Reply::Data(data),
    })
}

/// The mount's default lease TTL as Vault's system view gives it to the backend: the mount's own,
/// else the system's.
fn default_ttl(mount: &Mount) -> i64 {
    if mount.default_lease_ttl != 0 {
        mount.default_lease_ttl
    } else {
        SYSTEM_DEFAULT_TTL
    }
}

/// The warnings Vault's framework adds to a read or list that carried query parameters: the
/// passthrough path knows only `path`, which the path itself replaces. Never silent: the caller
/// learns that `?version=1` (the kv CLI sends it on a v1 mount) or `?after=` did nothing.
fn param_warnings(ctx: &Ctx<'_>) -> Option<Vec<String>> {
    let mut ignored: Vec<&str> = ctx
        .req
        .body
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "path")
        .collect();
    ignored.sort_unstable();
    let mut warnings = Vec::new();
    if !ignored.is_empty() {
        warnings.push(format!(
            "Endpoint ignored these unrecognized parameters: [{}]",
            ignored.join(" ")
        ));
    }
    if ctx.req.body.contains_key("path") {
        warnings.push(
            "Endpoint replaced the value of these parameters with the values captured from the endpoint's path: [path]"
                .to_string(),
        );
    }
    (!warnings.is_empty()).then_some(warnings)
}

/// A stored `ttl` (or `lease`) as Vault's `parseutil.ParseDurationSecond` reads it, in whole
/// seconds: `null` and `""` are 0; an integer, or its text, is seconds; `"<n>d"` is days;
/// anything else must be a Go duration (`"1h30m"`, `"-5s"`; no days, no spaces). Numbers are read
/// from their text as Go's `json.Number` is, so `1.5` is not a duration. `None` (the mount's
/// default applies) where Vault's parse fails.
pub fn parse_duration_second(v: &Value) -> Option<i64> {
    let text = match v {
        Value::Null => return Some(0),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let in_range = |secs: i64| (secs.unsigned_abs() <= MAX_SECS as u64).then_some(secs);
    if text.is_empty() {
        return Some(0);
    }
    if let Ok(secs) = text.parse::<i64>() {
        return in_range(secs);
    }
    if let Some(days) = text.strip_suffix('d') {
        return in_range(days.parse::<i64>().ok()?.checked_mul(86_400)?);
    }
    if text.contains('d') || text.trim() != text {
        return None;
    }
    parse_go_duration(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_values_parse_as_vaults_parse_duration_second() {
        // Each case was checked against `bao server -dev` (lease_duration of a read), or follows
        // from go-secure-stdlib's ParseDurationSecond where noted.
        let cases: [(Value, Option<i64>); 19] = [
            (json!("1h"), Some(3600)),
            (json!(30), Some(30)),
            (json!("30"), Some(30)),
            (json!("2m"), Some(120)),
            (json!(-5), Some(-5)),
            (json!("100000h"), Some(360_000_000)),
            (json!(null), Some(0)),
            (json!(""), Some(0)),
            (json!("abc"), None),
            (json!(1.5), None),
            (json!(true), None),
            (json!({"a": 1}), None),
            (json!("2d"), Some(172_800)),
            // Go's time.ParseDuration knows no days, and ParseDurationSecond takes only "<int>d".
            (json!("1d12h"), None),
            (json!("1.5d"), None),
            (json!("1500ms"), Some(1)),
            (json!("+5"), Some(5)),
            (json!(" 5s"), None),
            (json!("9223372036854775807"), None),
        ];
        for (v, want) in cases {
            assert_eq!(parse_duration_second(&v), want, "{v}");
        }
    }
}
