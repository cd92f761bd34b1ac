//! Turning an HTTP request into a Vault logical request: operation, decoded path, query, body, token.

use std::collections::BTreeMap;

use actix_web::HttpRequest;
use serde_json::{Map, Value};

use super::error::{VaultError, VaultResult};
use crate::engine::path::check_request_path;

/// Vault's logical operations (`buildLogicalRequestNoAuth`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Read,
    List,
    /// POST and PUT are the same operation in Vault.
    Update,
    Patch,
    Delete,
    Head,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::List => "list",
            Op::Update => "update",
            Op::Patch => "patch",
            Op::Delete => "delete",
            Op::Head => "header",
        }
    }
}

#[derive(Debug)]
pub struct VaultRequest {
    pub op: Op,
    /// The path after `/v1/`, percent-decoded and checked for `..`, `//` and NUL. A list operation
    /// always ends with `/` (the Go client strips it; Vault re-adds it).
    pub path: String,
    pub query: BTreeMap<String, String>,
    /// The JSON body (an object), or the query parameters for reads, lists and deletes.
    pub body: Map<String, Value>,
    pub token: Option<String>,
    /// The response-wrapping TTL asked for (`X-Vault-Wrap-TTL`), in nanoseconds; set by the Vault
    /// API, never by OKMS's (which does not wrap).
    pub wrap_ttl_ns: Option<i64>,
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Which content types a PATCH may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchTypes {
    /// Vault: only `application/merge-patch+json` (anything else is 415).
    MergePatchOnly,
    /// OKMS's Vault-compatible API: also `application/json` (okms-sdk-go sends it).
    MergePatchOrJson,
}

/// Parses the head of a request whose logical path (after `/v1/`, still percent-encoded) is
/// `rest`. The body of a write is added by [`parse_body`] once the pipeline has admitted the caller
/// and read the body within its limits; reads, lists and deletes take their parameters from the
/// query.
pub fn parse_head(
    req: &HttpRequest,
    rest: &str,
    patch_types: PatchTypes,
) -> VaultResult<VaultRequest> {
    let path = percent_encoding::percent_decode_str(rest)
        .decode_utf8()
        .map_err(|_| VaultError::bad("path is not valid UTF-8"))?
        .into_owned();
    check_request_path(&path).map_err(|e| VaultError::bad(e.to_string()))?;

    let query: BTreeMap<String, String> = match req.uri().query() {
        Some(q) => serde_urlencoded::from_str::<Vec<(String, String)>>(q)
            .map_err(|e| VaultError::bad(format!("invalid query string: {e}")))?
            .into_iter()
            .collect(),
        None => BTreeMap::new(),
    };

    let mut op = match req.method().as_str() {
        "GET" => Op::Read,
        "LIST" => Op::List,
        "POST" | "PUT" => Op::Update,
        "PATCH" => Op::Patch,
        "DELETE" => Op::Delete,
        "HEAD" => Op::Head,
        _ => return Err(VaultError::UnsupportedOperation),
    };
    if op == Op::Read {
        if let Some(l) = query.get("list") {
            let list = parse_bool(l).ok_or_else(|| {
                VaultError::bad(format!("invalid value for \"list\" parameter: {l:?}"))
            })?;
            if list {
                op = Op::List;
            }
        }
    }

    if op == Op::Patch {
        let ct = req
            .headers()
            .get("Content-Type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim();
        let json_ok = patch_types == PatchTypes::MergePatchOrJson
            && mime.eq_ignore_ascii_case("application/json");
        if !json_ok && !mime.eq_ignore_ascii_case("application/merge-patch+json") {
            return Err(VaultError::UnsupportedMediaType(ct.to_string()));
        }
    }

    let body = match op {
        Op::Update | Op::Patch => Map::new(),
        _ => query
            .iter()
            .filter(|(k, _)| k.as_str() != "list")
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    };

    let path = if op == Op::List && !path.ends_with('/') {
        format!("{path}/")
    } else {
        path
    };

    Ok(VaultRequest {
        op,
        path,
        query,
        body,
        token: crate::app::token_of(req),
        wrap_ttl_ns: None,
    })
}

/// The body of a write: JSON (an object), or a form when the client says so. The pipeline has
/// already held it to the size and JSON limits.
pub fn parse_body(req: &HttpRequest, body: &[u8]) -> VaultResult<Map<String, Value>> {
    let trimmed = body.iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = trimmed else {
        return Ok(Map::new()); // An empty body is allowed.
    };
    let ct = req
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // Vault takes a form body only when it says so and does not look like JSON.
    if ct.starts_with("application/x-www-form-urlencoded") && !matches!(body[start], b'{' | b'[') {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|e| VaultError::bad(format!("failed to parse form input: {e}")))?;
        return Ok(pairs
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(_) => Err(VaultError::bad(
            "failed to parse JSON input: the request body must be a JSON object",
        )),
        Err(e) => Err(VaultError::bad(format!("failed to parse JSON input: {e}"))),
    }
}
