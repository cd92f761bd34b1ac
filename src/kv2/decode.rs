//! Vault's weak decoding of request fields (`mapstructure.WeakDecode` and the framework's field types):
//! clients send numbers as strings and strings as numbers, and Vault takes both.

use std::collections::BTreeMap;

use serde_json::Value;

use super::error::{VaultError, VaultResult};
use crate::engine::duration::parse_duration_value;

/// `TypeInt`: a JSON integer or a numeric string.
pub fn int(v: &Value, name: &str) -> VaultResult<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .ok_or_else(|| VaultError::bad(format!("error parsing {name}: not an integer"))),
        Value::String(s) if s.trim().is_empty() => Ok(0),
        Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| VaultError::bad(format!("error parsing {name}: {s:?} is not an integer"))),
        _ => Err(VaultError::bad(format!(
            "error parsing {name}: not an integer"
        ))),
    }
}

/// A non-negative `TypeInt` that fits in u32 (`max_versions`).
pub fn uint32(v: &Value, name: &str) -> VaultResult<u32> {
    let n = int(v, name)?;
    u32::try_from(n)
        .map_err(|_| VaultError::bad(format!("{name} must be between 0 and {}", u32::MAX)))
}

/// `TypeBool`: a JSON bool or a string Go's `strconv.ParseBool` takes.
pub fn bool_(v: &Value, name: &str) -> VaultResult<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => match s.as_str() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
            "0" | "f" | "F" | "false" | "FALSE" | "False" | "" => Ok(false),
            _ => Err(VaultError::bad(format!(
                "error parsing {name}: {s:?} is not a bool"
            ))),
        },
        Value::Number(n) if n.as_i64() == Some(0) => Ok(false),
        Value::Number(n) if n.as_i64() == Some(1) => Ok(true),
        _ => Err(VaultError::bad(format!("error parsing {name}: not a bool"))),
    }
}

/// `TypeDurationSecond` / `TypeSignedDurationSecond`, in seconds.
pub fn duration(v: &Value, name: &str) -> VaultResult<i64> {
    parse_duration_value(v)
        .ok_or_else(|| VaultError::bad(format!("error parsing {name}: invalid duration {v}")))
}

/// A duration field as the engine keeps it: seconds, and the text when the client sent a string
/// (the OKMS API echoes that text unchanged: okms-cli writes `"1d"` through the Vault-compatible
/// config endpoint and expects `"1d"` back from `/v2/secretConfig`).
pub fn duration_with_text(v: &Value, name: &str) -> VaultResult<(i64, Option<String>)> {
    let secs = duration(v, name)?;
    let text = match v {
        Value::String(s) if secs >= 0 && !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    };
    Ok((secs, text))
}

/// `TypeString` (weakly: numbers and bools become strings; null is empty).
pub fn string(v: &Value, name: &str) -> VaultResult<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(VaultError::bad(format!(
            "error parsing {name}: not a string"
        ))),
    }
}

/// A map of strings with values weakly decoded (`options`, `custom_metadata`): hvac sends
/// `options={"version": 2}` with an integer. `null` is an empty map.
pub fn string_map(v: &Value, name: &str) -> VaultResult<BTreeMap<String, String>> {
    match v {
        Value::Null => Ok(BTreeMap::new()),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                Value::Number(n) => Ok((k.clone(), n.to_string())),
                Value::Bool(b) => Ok((k.clone(), if *b { "1" } else { "0" }.to_string())),
                _ => Err(VaultError::bad(format!(
                    "error parsing {name}: the value of {k:?} must be a string"
                ))),
            })
            .collect(),
        _ => Err(VaultError::bad(format!("error parsing {name}: not a map"))),
    }
}

/// `TypeCommaIntSlice` (`versions`): an array of ints or numeric strings (`vault kv delete
/// -versions=1,2` sends `["1","2"]`), a comma-separated string, or a single int.
pub fn comma_int_slice(v: &Value, name: &str) -> VaultResult<Vec<u64>> {
    let bad = || {
        VaultError::bad(format!(
            "error parsing {name}: expected a list of version numbers"
        ))
    };
    let one = |v: &Value| -> VaultResult<u64> {
        let n = match v {
            Value::String(s) => s.trim().parse::<i64>().map_err(|_| bad())?,
            other => int(other, name)?,
        };
        u64::try_from(n).map_err(|_| bad())
    };
    match v {
        Value::Null => Ok(vec![]),
        Value::Array(items) => items.iter().map(one).collect(),
        Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<u64>().map_err(|_| bad()))
            .collect(),
        Value::Number(_) => Ok(vec![one(v)?]),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_in_every_client_form() {
        assert_eq!(comma_int_slice(&json!([1, 2]), "v").unwrap(), vec![1, 2]);
        assert_eq!(
            comma_int_slice(&json!(["1", "2"]), "v").unwrap(),
            vec![1, 2]
        );
        assert_eq!(comma_int_slice(&json!("1,2"), "v").unwrap(), vec![1, 2]);
        assert_eq!(comma_int_slice(&json!(3), "v").unwrap(), vec![3]);
        assert!(comma_int_slice(&json!(["x"]), "v").is_err());
        assert!(comma_int_slice(&json!([-1]), "v").is_err());
    }

    #[test]
    fn weak_scalars() {
        assert_eq!(int(&json!("7"), "n").unwrap(), 7);
        assert!(int(&json!("x"), "n").is_err());
        assert!(bool_(&json!("true"), "b").unwrap());
        assert_eq!(
            string_map(&json!({"version": 2}), "o").unwrap()["version"],
            "2"
        );
    }
}
