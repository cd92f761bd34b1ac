//! Authenticated `sys/` endpoints: the mount table (`sys/mounts`), tuning, and the kv preflight
//! (`sys/internal/ui/mounts/<path>`, also `sys/mounts-all/<path>`).

use serde_json::{json, Map, Value};

use super::cubbyhole;
use super::decode;
use super::error::{VaultError, VaultResult};
use super::render::{mount_info, sys_mount_info};
use super::request::Op;
use super::response::Reply;
use super::Ctx;
use crate::app::AppState;
use crate::engine::model::{KvUpgrade, MountSpec, MountTune};
use crate::engine::path::MountPath;

/// Vault's system-wide default and maximum lease TTL (768h), in seconds.
pub(super) const SYSTEM_DEFAULT_TTL: i64 = 768 * 3600;

pub async fn route(state: &AppState, ctx: &Ctx<'_>, rest: &str) -> VaultResult<Reply> {
    let op = ctx.req.op;
    let rest_trim = rest.trim_end_matches('/');
    if rest_trim == "mounts" {
        return match op {
            Op::Read => Ok(Reply::SysInjected(all_mounts(ctx, false))),
            _ => Err(VaultError::UnsupportedOperation),
        };
    }
    if let Some(p) = rest
        .strip_prefix("internal/ui/mounts/")
        .or_else(|| rest.strip_prefix("mounts-all/"))
    {
        return preflight(ctx, p);
    }
    if rest_trim == "internal/ui/mounts" {
        return Ok(Reply::Data(
            json!({ "secret": all_mounts(ctx, true), "auth": {} }),
        ));
    }
    if let Some(p) = rest.strip_prefix("mounts/") {
        if let Some(m) = p.trim_end_matches('/').strip_suffix("/tune") {
            return tune(ctx, m).await;
        }
        return mount(state, ctx, p).await;
    }
    Err(VaultError::NoHandler(format!("sys/{rest}")))
}

/// The mount table. `visible_only`: only mounts the caller has some access under (the UI listing);
/// `sys/mounts` itself shows every mount to whoever may read it.
fn all_mounts(ctx: &Ctx<'_>, visible_only: bool) -> Value {
    let mut data = Map::new();
    for m in ctx.engine.mounts().iter() {
        if visible_only && !ctx.acl.has_any_under(m.path.as_str()) {
            continue;
        }
        data.insert(m.path.as_str().to_string(), mount_info(m));
    }
    if !visible_only || ctx.acl.has_any_under(cubbyhole::MOUNT) {
        data.insert(cubbyhole::MOUNT.into(), cubbyhole::mount_info());
    }
    data.insert("sys/".into(), sys_mount_info());
    Value::Object(data)
}

fn mount_path(p: &str) -> VaultResult<MountPath> {
    MountPath::parse(p).map_err(|e| VaultError::bad(e.to_string()))
}

/// The preflight every `vault kv` command sends first: `data.path` is the mount path with a trailing
/// slash and `data.options.version` the string `"2"` (the CLI type-asserts both; a 404 here would make
/// it fall back to KV v1 paths).
fn preflight(ctx: &Ctx<'_>, p: &str) -> VaultResult<Reply> {
    let denied = || VaultError::PreflightDenied(format!("{}/", p.trim_end_matches('/')));
    if p == "cubbyhole" || p.starts_with(cubbyhole::MOUNT) {
        if !ctx.acl.has_any_under(cubbyhole::MOUNT) {
            return Err(denied());
        }
        let mut info = cubbyhole::mount_info();
        info["path"] = json!(cubbyhole::MOUNT);
        return Ok(Reply::Data(info));
    }
    let (m, _) = ctx.engine.resolve(p).ok_or_else(denied)?;
    // Vault's `hasMountAccess`: the token must have some capability somewhere under the mount.
    if !ctx.acl.has_any_under(m.path.as_str()) {
        return Err(denied());
    }
    let mut info = mount_info(&m);
    if let Value::Object(o) = &mut info {
        o.insert("path".into(), json!(m.path.as_str()));
    }
    Ok(Reply::Data(info))
}

async fn mount(state: &AppState, ctx: &Ctx<'_>, p: &str) -> VaultResult<Reply> {
    let path = mount_path(p)?;
    let engine = ctx.engine;
    match ctx.req.op {
        Op::Read => {
            if path.as_str() == "sys/" {
                return Ok(Reply::Data(sys_mount_info()));
            }
            if path.as_str() == cubbyhole::MOUNT {
                return Ok(Reply::Data(cubbyhole::mount_info()));
            }
            let m = engine.mount_by_path(&path).ok_or_else(|| {
                VaultError::bad(format!("No secret engine mount at {}", path.as_str()))
            })?;
            // Vault copies a `sys/mounts/` answer's data to the top level too (its
            // `injectDataIntoTopRoutes`), as for the listing.
            Ok(Reply::SysInjected(mount_info(&m)))
        }
        Op::Update => {
            let spec = mount_spec(&ctx.req.body)?;
            // Vault's refusals for its built-in per-token storage.
            if path.as_str().starts_with(cubbyhole::MOUNT) {
                return Err(VaultError::bad(format!("cannot mount {:?}", path.as_str())));
            }
            if spec.kind == "cubbyhole" {
                return Err(VaultError::bad(
                    "mount type of \"cubbyhole\" is not mountable",
                ));
            }
            refuse_v1_under_okms(state, &path, spec.kv_version()?)?;
            engine.enable_mount(path, spec).await?;
            Ok(Reply::NoContent)
        }
        Op::Delete => {
            if matches!(path.as_str(), "sys/" | cubbyhole::MOUNT) {
                return Err(VaultError::bad(format!(
                    "cannot unmount {:?}",
                    path.as_str()
                )));
            }
            engine.disable_mount(&path).await?;
            Ok(Reply::NoContent)
        }
        _ => Err(VaultError::UnsupportedOperation),
    }
}

/// An OKMS domain serves its mount through the KV v2 model (versions, metadata): a KV v1 mount
/// at the path a configured domain names would leave the domain refusing every request.
fn refuse_v1_under_okms(state: &AppState, path: &MountPath, kv_version: u8) -> VaultResult<()> {
    if kv_version == 2 {
        return Ok(());
    }
    let mut named: Vec<String> = state
        .okms_domains
        .iter()
        .filter(|(_, p)| *p == path)
        .map(|(id, _)| id.to_string())
        .collect();
    if named.is_empty() {
        return Ok(());
    }
    named.sort();
    Err(VaultError::bad(format!(
        "cannot enable a KV version 1 mount at {:?}: the OKMS domain {} is backed by this path \
         and needs a KV version 2 mount; enable it with options version=2 (type kv-v2)",
        path.as_str(),
        named.join(", ")
    )))
}

/// The body of `POST sys/mounts/<path>`. `null` is accepted for `description`, `config`, `options`
/// and `plugin_name` (hvac sends nulls).
fn mount_spec(b: &Map<String, Value>) -> VaultResult<MountSpec> {
    let kind = match b.get("type") {
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        _ => return Err(VaultError::bad("missing or empty type")),
    };
    let config = match b.get("config") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(c)) => c.clone(),
        Some(_) => return Err(VaultError::bad("error parsing config: not a map")),
    };
    let ttl = |k: &str| -> VaultResult<i64> {
        config
            .get(k)
            .filter(|v| !v.is_null())
            .map(|v| decode::duration(v, k))
            .transpose()
            .map(|o| o.unwrap_or(0))
    };
    Ok(MountSpec {
        kind,
        description: b
            .get("description")
            .map(|v| decode::string(v, "description"))
            .transpose()?
            .unwrap_or_default(),
        options: b
            .get("options")
            .map(|v| decode::string_map(v, "options"))
            .transpose()?
            .unwrap_or_default(),
        default_lease_ttl: ttl("default_lease_ttl")?,
        max_lease_ttl: ttl("max_lease_ttl")?,
        force_no_cache: config
            .get("force_no_cache")
            .map(|v| decode::bool_(v, "force_no_cache"))
            .transpose()?
            .unwrap_or(false),
    })
}

/// `sys/mounts/<path>/tune`. `vault kv enable-versioning` sends `{"options":{"version":"2"}, ...}`.
async fn tune(ctx: &Ctx<'_>, p: &str) -> VaultResult<Reply> {
    let path = mount_path(p)?;
    let engine = ctx.engine;
    let not_found = || {
        VaultError::bad(format!(
            "cannot fetch sysview for path \"{}\"",
            path.as_str()
        ))
    };
    if path.as_str() == cubbyhole::MOUNT {
        return match ctx.req.op {
            Op::Read => Ok(Reply::SysInjected(json!({
                "default_lease_ttl": SYSTEM_DEFAULT_TTL,
                "description": "per-token private secret storage",
                "force_no_cache": false,
                "max_lease_ttl": SYSTEM_DEFAULT_TTL,
            }))),
            // Vault refuses each parameter of it ("cannot tune parameter description of
            // cubbyhole/"); there is nothing to tune in kvseal's either.
            Op::Update => Err(VaultError::bad("cannot tune cubbyhole/")),
            _ => Err(VaultError::UnsupportedOperation),
        };
    }
    match ctx.req.op {
        Op::Read => {
            let m = engine.mount_by_path(&path).ok_or_else(not_found)?;
            // Tune reads report the effective TTLs: an unset (0) TTL is the system default of 768h,
            // as Vault's sysview answers (hvac's read_mount_configuration shows it).
            let effective = |t: i64| if t == 0 { SYSTEM_DEFAULT_TTL } else { t };
            Ok(Reply::SysInjected(json!({
                "default_lease_ttl": effective(m.default_lease_ttl),
                "description": m.description,
                "force_no_cache": m.force_no_cache,
                "max_lease_ttl": effective(m.max_lease_ttl),
                "options": m.options,
            })))
        }
        Op::Update => {
            engine.mount_by_path(&path).ok_or_else(not_found)?;
            let b = &ctx.req.body;
            // `""` for a TTL means "leave as is" (the CLI sends empty strings for unset flags).
            let ttl = |k: &str| -> VaultResult<Option<i64>> {
                match b.get(k) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) if s.is_empty() => Ok(None),
                    Some(v) => decode::duration(v, k).map(Some),
                }
            };
            let tune = MountTune {
                description: b
                    .get("description")
                    .filter(|v| !v.is_null())
                    .map(|v| decode::string(v, "description"))
                    .transpose()?,
                default_lease_ttl: ttl("default_lease_ttl")?,
                max_lease_ttl: ttl("max_lease_ttl")?,
                force_no_cache: b
                    .get("force_no_cache")
                    .map(|v| decode::bool_(v, "force_no_cache"))
                    .transpose()?,
                options: match b.get("options") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(decode::string_map(v, "options")?),
                },
            };
            Ok(match engine.tune_mount(&path, tune).await? {
                // Vault warns that its upgrade runs in the background; here it is complete.
                Some(KvUpgrade { from, to }) => Reply::DataWarn(
                    Value::Null,
                    vec![format!(
                        "Upgrading mount from version {from} to version {to}. This mount will be \
                         unavailable for a brief period and will resume service shortly."
                    )],
                ),
                None => Reply::NoContent,
            })
        }
        _ => Err(VaultError::UnsupportedOperation),
    }
}
