//! Vault's success shapes, built in one place: the envelope, raw JSON, 204, and the "raw" responses
//! a plugin builds itself (a full envelope with a status of its choosing, e.g. 404 with data).

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde::Serialize;
use serde_json::Value;

/// What a handler answers.
#[derive(Debug)]
pub enum Reply {
    /// 200 envelope with `data`.
    Data(Value),
    /// 200 envelope with `data` and warnings.
    DataWarn(Value, Vec<String>),
    /// 200 envelope with `data`, a `lease_duration` in seconds and maybe warnings: a KV v1 read,
    /// whose TTL tells the reader when to read again (no lease is registered, as in Vault).
    Lease(Value, i64, Option<Vec<String>>),
    /// 200 envelope with an `auth` block and `data: null`.
    Auth(Value),
    /// The same with warnings (a renewal capped by a maximum TTL).
    AuthWarn(Value, Vec<String>),
    /// 200 envelope whose `data` is also copied to the top level (Vault's `sys/` "injector" routes,
    /// e.g. `sys/mounts`, which older clients read from the top).
    SysInjected(Value),
    /// 204 with no body.
    NoContent,
    /// A JSON body with no envelope (`sys/health`, `sys/seal-status`, `sys/leader`, `sys/init`).
    RawJson(StatusCode, Value),
    /// A full envelope with a chosen status (`logical.RespondWithStatusCode`): the KV engine's 404 for a
    /// deleted version (hvac reads `data.metadata` from it) and its catch-all 404 with a warning.
    RawEnvelope(StatusCode, Value, Option<Vec<String>>),
    /// Bytes of a given content type (a snapshot archive).
    Binary(Vec<u8>, &'static str),
    /// A status with an empty body (PATCH of a missing key: the Go client then treats it as "nothing
    /// there" rather than an error).
    Empty(StatusCode),
    /// A JSON body sent byte for byte with its status: an unwrapped response, as it was wrapped.
    RawBody(StatusCode, String),
}

#[derive(Serialize)]
struct Envelope<'a> {
    request_id: &'a str,
    lease_id: &'static str,
    renewable: bool,
    lease_duration: i64,
    data: &'a Value,
    wrap_info: Option<()>,
    warnings: Option<&'a [String]>,
    auth: Option<&'a Value>,
    /// Vault-only (OpenBao dropped it); no client reads it, but Vault sends it. Raw plugin responses
    /// have `""` here because the plugin builds the envelope itself.
    mount_type: &'a str,
}

/// Vault's envelope as JSON text.
fn envelope_json(
    request_id: &str,
    data: &Value,
    lease_duration: i64,
    warnings: Option<&[String]>,
    auth: Option<&Value>,
    mount_type: &str,
) -> String {
    serde_json::to_string(&Envelope {
        request_id,
        lease_id: "",
        renewable: false,
        lease_duration,
        data,
        wrap_info: None,
        warnings,
        auth,
        mount_type,
    })
    .unwrap_or_default()
}

fn json_response(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(("Content-Type", "application/json"))
        .body(body)
}

impl Reply {
    /// The status and JSON body of a reply that response wrapping keeps (Vault wraps every reply
    /// of its logical layer that has a body: an envelope, a raw envelope, an unwrapped reply).
    /// `None` for a reply without a body (204), and for those Vault serves outside its logical
    /// layer, which it never wraps (`sys/health`, `sys/seal-status`, `sys/init`, a snapshot). A
    /// `sys/` reply is kept as its plain envelope, without the copy of `data` at the top level.
    pub fn wrappable(&self, request_id: &str, mount_type: &str) -> Option<(StatusCode, String)> {
        let envelope =
            |data: &Value, warnings: Option<&[String]>, auth: Option<&Value>, mt: &str| {
                envelope_json(request_id, data, 0, warnings, auth, mt)
            };
        let ok = StatusCode::OK;
        match self {
            Reply::Data(d) | Reply::SysInjected(d) => {
                Some((ok, envelope(d, None, None, mount_type)))
            }
            Reply::DataWarn(d, w) => Some((ok, envelope(d, Some(w), None, mount_type))),
            Reply::Lease(d, ttl, w) => Some((
                ok,
                envelope_json(request_id, d, *ttl, w.as_deref(), None, mount_type),
            )),
            Reply::Auth(a) => Some((ok, envelope(&Value::Null, None, Some(a), mount_type))),
            Reply::AuthWarn(a, w) => {
                Some((ok, envelope(&Value::Null, Some(w), Some(a), mount_type)))
            }
            Reply::RawEnvelope(status, d, w) => {
                Some((*status, envelope(d, w.as_deref(), None, "")))
            }
            Reply::RawBody(status, body) => Some((*status, body.clone())),
            Reply::NoContent | Reply::RawJson(..) | Reply::Binary(..) | Reply::Empty(_) => None,
        }
    }

    pub fn render(self, request_id: &str, mount_type: &str) -> HttpResponse {
        let leased = |data: &Value,
                      lease_duration: i64,
                      warnings: Option<&[String]>,
                      auth: Option<&Value>,
                      mt: &str| {
            envelope_json(request_id, data, lease_duration, warnings, auth, mt)
        };
        let envelope = |data: &Value,
                        warnings: Option<&[String]>,
                        auth: Option<&Value>,
                        mt: &str| { leased(data, 0, warnings, auth, mt) };
        match self {
            Reply::Data(d) => json_response(StatusCode::OK, envelope(&d, None, None, mount_type)),
            Reply::DataWarn(d, w) => {
                json_response(StatusCode::OK, envelope(&d, Some(&w), None, mount_type))
            }
            Reply::Lease(d, ttl, w) => json_response(
                StatusCode::OK,
                leased(&d, ttl, w.as_deref(), None, mount_type),
            ),
            Reply::Auth(a) => json_response(
                StatusCode::OK,
                envelope(&Value::Null, None, Some(&a), mount_type),
            ),
            Reply::AuthWarn(a, w) => json_response(
                StatusCode::OK,
                envelope(&Value::Null, Some(&w), Some(&a), mount_type),
            ),
            Reply::SysInjected(d) => {
                let mut top = match serde_json::to_value(Envelope {
                    request_id,
                    lease_id: "",
                    renewable: false,
                    lease_duration: 0,
                    data: &d,
                    wrap_info: None,
                    warnings: None,
                    auth: None,
                    mount_type,
                }) {
                    Ok(Value::Object(m)) => m,
                    _ => serde_json::Map::new(),
                };
                if let Value::Object(data) = &d {
                    for (k, v) in data {
                        top.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
                json_response(StatusCode::OK, Value::Object(top).to_string())
            }
            // Vault sends its JSON content type on 204s too.
            Reply::NoContent => HttpResponse::NoContent()
                .insert_header(("Content-Type", "application/json"))
                .finish(),
            Reply::RawJson(status, v) => json_response(status, v.to_string()),
            Reply::RawEnvelope(status, d, w) => {
                json_response(status, envelope(&d, w.as_deref(), None, ""))
            }
            Reply::Empty(status) => json_response(status, String::new()),
            Reply::RawBody(status, body) => json_response(status, body),
            Reply::Binary(bytes, ct) => HttpResponse::Ok()
                .insert_header(("Content-Type", ct))
                .body(bytes),
        }
    }
}
