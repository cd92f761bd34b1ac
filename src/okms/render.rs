//! The v2 API's response shapes (camelCase, OVHcloud's OpenAPI schemas), built in one place.

use serde_json::{json, Map, Value};

use crate::engine::clock::{rfc3339_seconds, Nanos};
use crate::engine::duration::go_duration_string;
use crate::engine::model::{KvConfig, SecretMeta, VersionMeta, VersionState};

/// A duration as OKMS shows it: the text the client wrote (okms-cli writes `"1d"` and expects `"1d"`
/// back), or Go's format when it was set through the Vault API.
fn duration_text(secs: i64, text: &Option<String>) -> String {
    text.clone().unwrap_or_else(|| go_duration_string(secs))
}

pub fn urn(okms_id: &uuid::Uuid, path: &str) -> String {
    format!("urn:v1:kvseal:resource:okms:{okms_id}:secret/{path}")
}

/// `SecretV2Metadata`: the values stored on the secret (not merged with the domain config).
pub fn metadata(okms_id: &uuid::Uuid, path: &str, m: &SecretMeta) -> Value {
    json!({
        "casRequired": m.cas_required,
        "createdAt": rfc3339_seconds(m.created),
        "currentVersion": m.current_version,
        "customMetadata": m.custom_metadata.clone().unwrap_or_default(),
        "deactivateVersionAfter": duration_text(m.delete_version_after, &m.delete_version_after_text),
        "maxVersions": m.max_versions,
        "oldestVersion": m.oldest_version,
        "updatedAt": rfc3339_seconds(m.updated),
        "urn": urn(okms_id, path),
    })
}

pub fn state_name(s: VersionState) -> &'static str {
    match s {
        VersionState::Active => "active",
        VersionState::Deactivated => "deactivated",
        VersionState::Destroyed => "deleted",
    }
}

/// `SecretV2Version`. `data` appears only when it was asked for and the version is active;
/// `deactivatedAt` only once the version is deactivated (or deleted after a deactivation).
pub fn version(v: &VersionMeta, data: Option<Map<String, Value>>, now: Nanos) -> Value {
    let state = v.state(now);
    let mut o = Map::new();
    o.insert("createdAt".into(), json!(rfc3339_seconds(v.created)));
    if let Some(d) = data {
        o.insert("data".into(), Value::Object(d));
    }
    if let Some(t) = v.deletion_time.filter(|t| *t <= now) {
        o.insert("deactivatedAt".into(), json!(rfc3339_seconds(t)));
    }
    o.insert("id".into(), json!(v.version));
    o.insert("state".into(), json!(state_name(state)));
    Value::Object(o)
}

/// `GetSecretConfigV2Response`.
pub fn config(c: &KvConfig) -> Value {
    json!({
        "casRequired": c.cas_required,
        "deactivateVersionAfter": duration_text(c.delete_version_after, &c.delete_version_after_text),
        "maxVersions": c.max_versions,
    })
}
