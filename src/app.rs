//! What both HTTP APIs share: the application state, the request id, the body reader and token
//! extraction. Each API renders its own wire shapes; nothing here knows them.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::{web, HttpMessage, HttpRequest};
use futures_util::StreamExt;

use crate::engine::path::MountPath;
use crate::engine::Engine;

/// What every handler can reach.
pub struct AppState {
    pub engine: Arc<Engine>,
    pub max_request_size: usize,
    /// OKMS domain id → the kv-v2 mount that backs it.
    pub okms_domains: HashMap<uuid::Uuid, MountPath>,
}

/// The id of one request: in the log line, in Vault envelopes and in OKMS error bodies.
#[derive(Clone)]
pub struct RequestId(pub String);

/// The request id set by the logging middleware (a fresh one when called without it, in tests).
pub fn request_id(req: &HttpRequest) -> String {
    req.extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Why a body could not be read.
pub enum BodyError {
    TooLarge,
    Read(String),
}

/// Reads the body up to `limit` bytes (checking `Content-Length` first).
pub async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    if let Some(len) = req
        .headers()
        .get("Content-Length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > limit {
            return Err(BodyError::TooLarge);
        }
    }
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| BodyError::Read(e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The token: `X-Vault-Token` first, then the first `Authorization: Bearer …` (Vault's
/// `getTokenFromReq`; okms-cli's token auth and External Secrets use one or the other).
pub fn token_of(req: &HttpRequest) -> Option<String> {
    if let Some(t) = req
        .headers()
        .get("X-Vault-Token")
        .and_then(|v| v.to_str().ok())
    {
        return Some(t.trim().to_string());
    }
    req.headers()
        .get_all("Authorization")
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("Bearer ").map(|t| t.trim().to_string()))
}
