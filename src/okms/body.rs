//! Request bodies of the v2 API, mirroring OVHcloud's OpenAPI schemas (camelCase, with the older
//! snake_case names accepted as aliases: OVH's own REST guide still shows them). Unknown fields are
//! refused, as the schemas' `additionalProperties: false` says.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::error::{OkmsError, OkmsResult};
use crate::engine::duration::parse_duration_value;
use crate::engine::model::MetaUpdate;

/// The most data a version may hold, as OKMS documents it (64 KB of JSON).
pub const MAX_DATA_BYTES: usize = 64 * 1024;
pub const MAX_VERSION: u64 = 24000;

/// `Some(None)` for an explicit `null`, `None` for an absent field.
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetadataShort {
    #[serde(default, alias = "cas_required")]
    pub cas_required: Option<bool>,
    #[serde(default, alias = "custom_metadata")]
    pub custom_metadata: Option<BTreeMap<String, String>>,
    #[serde(default, alias = "deactivate_version_after")]
    pub deactivate_version_after: Option<String>,
    #[serde(default, alias = "max_versions")]
    pub max_versions: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionShort {
    #[serde(default, deserialize_with = "nullable")]
    pub data: Option<Option<Map<String, Value>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostSecret {
    #[serde(default)]
    pub metadata: Option<MetadataShort>,
    pub path: String,
    pub version: VersionShort,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutSecret {
    #[serde(default)]
    pub metadata: Option<MetadataShort>,
    #[serde(default)]
    pub version: Option<VersionShort>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostVersion {
    #[serde(default, deserialize_with = "nullable")]
    pub data: Option<Option<Map<String, Value>>>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Active,
    Deactivated,
    Deleted,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutVersion {
    pub state: State,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PutConfig {
    #[serde(default, alias = "cas_required")]
    pub cas_required: Option<bool>,
    #[serde(default, alias = "deactivate_version_after")]
    pub deactivate_version_after: Option<String>,
    #[serde(default, alias = "max_versions")]
    pub max_versions: Option<u32>,
}

/// The fields of the request bodies whose schema is an object (`PostSecret.metadata`,
/// `PostSecret.version`, `PutSecret.metadata`, `PutSecret.version`). Every other object-typed
/// field is a map (`data`, `customMetadata`), which serde already refuses as an array.
const OBJECT_FIELDS: [&str; 2] = ["metadata", "version"];

/// serde's derived structs also accept a JSON array, field by field in declaration order
/// (`{"path": "a", "version": [{"k": "v"}]}` would create a secret); the OpenAPI schemas say
/// object. Refuses an array (or any non-object) where a struct is read.
fn objects_where_structs_are(v: &Value) -> OkmsResult<()> {
    let kind = |v: &Value| match v {
        Value::Array(_) => "an array",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
        Value::Object(_) => "an object",
    };
    let Value::Object(fields) = v else {
        return Err(OkmsError::bad(format!(
            "invalid request body: expected a JSON object, found {}",
            kind(v)
        )));
    };
    for name in OBJECT_FIELDS {
        if let Some(f @ Value::Array(_)) = fields.get(name) {
            return Err(OkmsError::bad(format!(
                "invalid request body: {name}: expected a JSON object, found {}",
                kind(f)
            )));
        }
    }
    Ok(())
}

/// Parses a JSON body into `T`; every failure (syntax, type, unknown field, missing field, an
/// array where an object is expected) is 400.
pub fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> OkmsResult<T> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(OkmsError::bad("a JSON request body is required"));
    }
    // The pipeline has held the body to the JSON limits before this parse.
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| OkmsError::bad(format!("invalid request body: {e}")))?;
    objects_where_structs_are(&value)?;
    serde_json::from_value(value).map_err(|e| OkmsError::bad(format!("invalid request body: {e}")))
}

/// `version.data` / `data`: required; `null` is an empty object; at most 64 KB.
pub fn data(d: Option<Option<Map<String, Value>>>) -> OkmsResult<Map<String, Value>> {
    let data = match d {
        None => return Err(OkmsError::bad("data is required")),
        Some(None) => Map::new(),
        Some(Some(m)) => m,
    };
    let size = serde_json::to_vec(&data)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_DATA_BYTES {
        return Err(OkmsError::bad(format!(
            "the secret data is {size} bytes; the limit is {MAX_DATA_BYTES}"
        )));
    }
    Ok(data)
}

/// A duration as OKMS takes it (`"1d"`, `"10h30m10s"`, `"0s"`): seconds, and the text to echo.
pub fn duration(field: &str, s: &str) -> OkmsResult<(i64, String)> {
    match parse_duration_value(&Value::String(s.to_string())) {
        Some(secs) if secs >= 0 => Ok((secs, s.to_string())),
        _ => Err(OkmsError::bad(format!(
            "{field}: {s:?} is not a duration such as \"24h\", \"1d\" or \"10h30m10s\""
        ))),
    }
}

fn max_versions(n: u32) -> OkmsResult<u32> {
    if u64::from(n) > MAX_VERSION {
        return Err(OkmsError::bad(format!(
            "maxVersions must be from 0 to {MAX_VERSION}"
        )));
    }
    Ok(n)
}

/// Custom metadata as the OpenAPI file constrains it: at most 64 entries, values of 1 to 512
/// characters from `[a-zA-Z0-9_.:/=@%-]`.
fn custom_metadata(m: &BTreeMap<String, String>) -> OkmsResult<()> {
    if m.len() > 64 {
        return Err(OkmsError::bad("customMetadata has more than 64 entries"));
    }
    for (k, v) in m {
        if v.is_empty() || v.chars().count() > 512 {
            return Err(OkmsError::bad(format!(
                "customMetadata[{k:?}] must be 1 to 512 characters long"
            )));
        }
        if let Some(c) = v
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "_.:/=@%-".contains(*c)))
        {
            return Err(OkmsError::bad(format!(
                "customMetadata[{k:?}] contains {c:?}; allowed: letters, digits and _ . : / = @ % -"
            )));
        }
    }
    Ok(())
}

/// Turns a metadata body into an engine update.
///
/// okms-cli always sends `customMetadata`, as `{}` when its `--custom-metadata` flag is not given
/// (on create and on update). An empty map therefore means "leave custom metadata as it is", so that
/// `okms secrets update PATH k=v` does not wipe it; a non-empty map replaces it wholesale.
pub fn meta_update(m: &MetadataShort) -> OkmsResult<MetaUpdate> {
    let mut u = MetaUpdate {
        max_versions: m.max_versions.map(max_versions).transpose()?,
        cas_required: m.cas_required,
        ..Default::default()
    };
    if let Some(d) = &m.deactivate_version_after {
        let (secs, text) = duration("deactivateVersionAfter", d)?;
        u.delete_version_after = Some(secs);
        u.delete_version_after_text = Some(text);
    }
    if let Some(cm) = m.custom_metadata.as_ref().filter(|cm| !cm.is_empty()) {
        custom_metadata(cm)?;
        u.custom_metadata = Some(cm.clone());
    }
    Ok(u)
}

/// The config body as an engine update.
pub fn config_update(c: &PutConfig) -> OkmsResult<crate::engine::model::KvConfigUpdate> {
    let mut u = crate::engine::model::KvConfigUpdate {
        max_versions: c.max_versions.map(max_versions).transpose()?,
        cas_required: c.cas_required,
        ..Default::default()
    };
    if let Some(d) = &c.deactivate_version_after {
        let (secs, text) = duration("deactivateVersionAfter", d)?;
        u.delete_version_after = Some(secs);
        u.delete_version_after_text = Some(text);
    }
    Ok(u)
}

/// A version number from the URL or query: 1 to 24000.
pub fn version_number(s: &str) -> OkmsResult<u64> {
    match s.parse::<u64>() {
        Ok(n) if (1..=MAX_VERSION).contains(&n) => Ok(n),
        _ => Err(OkmsError::bad(format!(
            "version must be an integer from 1 to {MAX_VERSION}, got {s:?}"
        ))),
    }
}

/// `?cas=`: 0 to 24000.
pub fn cas(s: &str) -> OkmsResult<i64> {
    match s.parse::<u64>() {
        Ok(n) if n <= MAX_VERSION => Ok(n as i64),
        _ => Err(OkmsError::bad(format!(
            "cas must be an integer from 0 to {MAX_VERSION}, got {s:?}"
        ))),
    }
}

/// `?includeData=`: a boolean.
pub fn boolean(name: &str, s: &str) -> OkmsResult<bool> {
    match s {
        "true" | "1" | "True" | "TRUE" => Ok(true),
        "false" | "0" | "False" | "FALSE" => Ok(false),
        _ => Err(OkmsError::bad(format!(
            "{name} must be true or false, got {s:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_accept_both_casings_and_refuse_unknown_fields() {
        let p: PostSecret = parse(br#"{"path":"a","version":{"data":{"k":"v"}},"metadata":{"max_versions":3,"casRequired":true}}"#).unwrap();
        assert_eq!(p.metadata.as_ref().unwrap().max_versions, Some(3));
        assert_eq!(p.metadata.as_ref().unwrap().cas_required, Some(true));
        assert!(parse::<PostSecret>(br#"{"path":"a","version":{"data":{}},"extra":1}"#).is_err());
        assert!(parse::<PostSecret>(br#"{"path":"a"}"#).is_err());
        assert!(parse::<PostSecret>(br#"{"path":1,"version":{"data":{}}}"#).is_err());
        assert!(parse::<PutVersion>(br#"{"state":"paused"}"#).is_err());
        assert!(parse::<PostSecret>(b"{oops").is_err());
    }

    #[test]
    fn ranges_and_limits() {
        assert!(version_number("0").is_err());
        assert!(version_number("24001").is_err());
        assert_eq!(version_number("24000").unwrap(), 24000);
        assert!(cas("-1").is_err());
        assert_eq!(cas("0").unwrap(), 0);
        let big: Map<String, Value> =
            [("k".to_string(), Value::String("x".repeat(MAX_DATA_BYTES)))]
                .into_iter()
                .collect();
        assert!(data(Some(Some(big))).is_err());
        assert!(data(None).is_err());
        assert_eq!(data(Some(None)).unwrap(), Map::new());
        assert_eq!(duration("d", "1d").unwrap(), (86400, "1d".to_string()));
        assert!(duration("d", "-1s").is_err());
        assert!(duration("d", "soon").is_err());
    }
}
