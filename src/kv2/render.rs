//! JSON shapes of engine values as the Vault API shows them (one place, so every endpoint agrees).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::engine::clock::{rfc3339_nano, rfc3339_or_empty};
use crate::engine::duration::go_duration_string;
use crate::engine::model::{Mount, SecretRecord, VersionMeta};

/// `custom_metadata` is `null` when none is set (Vault's nil map).
pub fn custom(c: &Option<BTreeMap<String, String>>) -> Value {
    match c {
        Some(m) if !m.is_empty() => json!(m),
        _ => Value::Null,
    }
}

/// A version's metadata as in `data/` responses: `deletion_time` is `""` when unset, never null
/// (vaultrs deserialises it into a `String`).
pub fn version_meta(v: &VersionMeta, c: &Option<BTreeMap<String, String>>) -> Value {
    json!({
        "created_time": rfc3339_nano(v.created),
        "custom_metadata": custom(c),
        "deletion_time": rfc3339_or_empty(v.deletion_time),
        "destroyed": v.destroyed,
        "version": v.version,
    })
}

/// Key metadata (`metadata/` GET). `versions` is keyed by decimal strings: `vault kv metadata get`
/// runs `strconv.Atoi` on them.
pub fn secret_metadata(r: &SecretRecord) -> Value {
    let versions: Map<String, Value> = r
        .versions
        .iter()
        .map(|v| {
            (
                v.version.to_string(),
                json!({
                    "created_time": rfc3339_nano(v.created),
                    "deletion_time": rfc3339_or_empty(v.deletion_time),
                    "destroyed": v.destroyed,
                }),
            )
        })
        .collect();
    json!({
        "cas_required": r.meta.cas_required,
        "created_time": rfc3339_nano(r.meta.created),
        "current_version": r.meta.current_version,
        "custom_metadata": custom(&r.meta.custom_metadata),
        "delete_version_after": go_duration_string(r.meta.delete_version_after),
        "max_versions": r.meta.max_versions,
        "oldest_version": r.meta.oldest_version,
        "updated_time": rfc3339_nano(r.meta.updated),
        "versions": versions,
    })
}

/// A mount as `sys/mounts` and the preflight show it. `options` values are strings: the vault CLI
/// type-asserts `options.version` to a string and panics on a number.
pub fn mount_info(m: &Mount) -> Value {
    let mut info = json!({
        "accessor": m.accessor,
        "config": {
            "default_lease_ttl": m.default_lease_ttl,
            "force_no_cache": m.force_no_cache,
            "max_lease_ttl": m.max_lease_ttl,
        },
        "deprecation_status": "supported",
        "description": m.description,
        "external_entropy_access": false,
        "local": false,
        "options": m.options,
        "plugin_version": "",
        "running_plugin_version": concat!("v", env!("CARGO_PKG_VERSION"), "+kvseal"),
        "running_sha256": "",
        "seal_wrap": false,
        "type": m.kind,
        "uuid": m.uuid,
    });
    // `generic` is no plugin of the catalog: Vault shows no deprecation status for it.
    if m.kind == "generic" {
        if let Value::Object(o) = &mut info {
            o.remove("deprecation_status");
        }
    }
    info
}

/// The `sys/` mount itself, listed by `sys/mounts` as Vault lists it (kvseal serves `sys/`).
pub fn sys_mount_info() -> Value {
    json!({
        "accessor": "system_kvseal",
        "config": {"default_lease_ttl": 0, "force_no_cache": false, "max_lease_ttl": 0},
        "description": "system endpoints used for control, policy and debugging",
        "external_entropy_access": false,
        "local": false,
        "options": null,
        "plugin_version": "",
        "running_plugin_version": concat!("v", env!("CARGO_PKG_VERSION"), "+kvseal"),
        "running_sha256": "",
        "seal_wrap": true,
        "type": "system",
        "uuid": "00000000-0000-0000-0000-000000000000",
    })
}
