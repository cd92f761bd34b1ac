//! The request and response entries both APIs write, built from what an HTTP exchange carries.
//! Entries follow Vault's file audit format (`time`, `type`, `auth`, `request`, `response`), with
//! every string in request and response bodies and every token and accessor hashed.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::AuditDevice;
use crate::engine::clock::rfc3339_nano;
use crate::engine::{Engine, Identity};

/// What the entries of one exchange share.
pub struct Exchange {
    devices: Arc<Vec<Arc<AuditDevice>>>,
    request_id: String,
    operation: String,
    path: String,
    remote: String,
    token: Option<String>,
    accessor: Option<String>,
    display_name: String,
    policies: Vec<String>,
    body: Value,
}

/// Why an entry could not be written: the caller refuses the request.
#[derive(Debug)]
pub struct AuditFailed;

impl Exchange {
    /// `None` when no device is enabled (the common case costs one atomic load). `operation` is
    /// Vault's logical operation name (`read`, `update`, `list`, …: tools filter on it); the body
    /// is added with [`Exchange::set_body`] once the pipeline has read it (a request refused
    /// before that is recorded without one: its body is never read, so it cannot inflate the log).
    pub fn begin(
        engine: &Engine,
        req: &HttpRequest,
        request_id: &str,
        operation: &str,
        path: &str,
        caller: Option<&Identity>,
    ) -> Option<Self> {
        let devices = engine.audit_devices();
        if devices.is_empty() {
            return None;
        }
        let token = crate::app::token_of(req).filter(|t| !t.is_empty());
        let entry = caller.map(|c| &c.entry);
        Some(Self {
            devices,
            request_id: request_id.to_string(),
            operation: operation.to_string(),
            path: path.to_string(),
            remote: crate::app::client_ip(req)
                .map(|ip| ip.to_string())
                .unwrap_or_default(),
            token,
            accessor: entry.map(|e| e.accessor.clone()),
            display_name: entry.map(|e| e.display_name.clone()).unwrap_or_default(),
            policies: entry.map(|e| e.policies.clone()).unwrap_or_default(),
            body: Value::Null,
        })
    }

    /// The request body, once read and checked against the limits.
    pub fn set_body(&mut self, body: &[u8]) {
        self.body = serde_json::from_slice(body).unwrap_or(Value::Null);
    }

    fn entry(&self, dev: &AuditDevice, kind: &str, response: Option<(u16, &Value)>) -> Value {
        let hash_opt = |s: &Option<String>| s.as_deref().map(|v| dev.hash(v)).unwrap_or_default();
        let mut e = json!({
            "time": rfc3339_nano(time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64),
            "type": kind,
            "auth": {
                "client_token": hash_opt(&self.token),
                "accessor": hash_opt(&self.accessor),
                "display_name": self.display_name,
                "policies": self.policies,
                "token_policies": self.policies,
                "entity_id": "",
                "token_type": "service",
            },
            "request": {
                "id": self.request_id,
                "operation": self.operation,
                "client_token": hash_opt(&self.token),
                "client_token_accessor": hash_opt(&self.accessor),
                "namespace": {"id": "root"},
                "path": self.path,
                "data": dev.hash_strings(&self.body),
                "remote_address": self.remote,
            },
        });
        if let Some((status, body)) = response {
            e["response"] = json!({
                "status": status,
                "data": dev.hash_strings(body),
            });
            if status >= 400 {
                e["error"] = body.get("errors").cloned().unwrap_or(Value::Null);
            }
        }
        e
    }

    fn write_all(&self, kind: &str, response: Option<(u16, &Value)>) -> Result<(), AuditFailed> {
        for dev in self.devices.iter() {
            if let Err(e) = dev.write(&self.entry(dev, kind, response)) {
                tracing::error!(device = %dev.name, error = %e, "audit device failed; refusing the request");
                return Err(AuditFailed);
            }
        }
        Ok(())
    }

    /// Records the request before it is served.
    pub fn request(&self) -> Result<(), AuditFailed> {
        self.write_all("request", None)
    }

    /// Records the response (reading its body), then gives the response back unchanged.
    pub async fn response(&self, resp: HttpResponse) -> Result<HttpResponse, AuditFailed> {
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = actix_web::body::to_bytes(resp.into_body())
            .await
            .map_err(|_| AuditFailed)?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        self.write_all("response", Some((status.as_u16(), &body)))?;
        let mut rebuilt = HttpResponse::build(status);
        for (k, v) in headers.iter() {
            rebuilt.append_header((k.clone(), v.clone()));
        }
        Ok(rebuilt.body(bytes))
    }
}

/// The status and message both APIs use when an entry cannot be written.
pub const FAILED_STATUS: StatusCode = StatusCode::INTERNAL_SERVER_ERROR;
pub const FAILED_MESSAGE: &str =
    "internal error: the request could not be written to the audit log";
