//! The one request pipeline both APIs go through (garage's `ApiServer<A: ApiHandler>`, lldap's
//! access-controlled handler). In order, for every request:
//!
//! 1. the API's router turns the request *head* (method, path, query, headers) into a route and
//!    its declared [`Access`]; nothing of the body has been read;
//! 2. routes that spend a rate budget spend it; a sealed server refuses authenticated routes;
//! 3. the caller is authenticated from the headers (a token, or for OKMS a verified client
//!    certificate); a failure spends the client's rate budget and is refused **before the body is
//!    read** (an unauthenticated 32 MB body costs nothing but the bytes actix has buffered);
//! 4. the ACL decision ([`access::decide`]) for routes whose checks the head determines;
//! 5. the body is read within the size limit and checked against the JSON limits **before** it is
//!    parsed (a snapshot restore's archive is written to a private file instead, within its own
//!    bound: [`Body::Snapshot`]); routes whose checks depend on the body are decided now;
//! 6. the audit request entry; 7. the handler; 8. the audit response entry; 9. one error
//!    rendering per API.
//!
//! Before step 1, a path with an invalid percent-escape (`%zz`, `%4`, a trailing `%`) is refused
//! (400), as Go's `net/http` refuses it before Vault sees the request: nothing is routed or stored.
//!
//! Steps 2–7 run under the request deadline (503 past it, as Vault's `max_request_duration`).

pub mod access;
pub mod headers;
pub mod json_limits;

use std::future::Future;
use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};

use crate::app::{self, AppState, BodyError};
use crate::audit::http::Exchange;
use crate::engine::error::EngineError;
use crate::engine::{Identity, SealStatus};
use crate::policy::Acl;
pub use access::{Access, Check, Need};

/// Largest body a route anyone may call accepts: `sys/init`, `sys/unseal` and `auth/cert/login`
/// take a few hundred bytes; nothing an unauthenticated client sends is worth more.
pub const PUBLIC_BODY_LIMIT: usize = 64 * 1024;

/// What the pipeline refuses, before or around the handler. Each API renders these in its own
/// shape (`From<Refusal>` for its error type).
#[derive(Debug)]
pub enum Refusal {
    /// No credentials, or credentials that do not authenticate.
    Unauthenticated,
    /// Authenticated, but the declared checks do not hold.
    Forbidden,
    /// The client's rate budget is spent: the request path (named in Vault's message) and the
    /// seconds until the budget allows another request (`Retry-After`).
    TooManyRequests(String, u64),
    TooLarge,
    /// The body could not be read (the connection broke).
    BodyRead(String),
    /// The body did not arrive within `http_read_timeout` (408, and the connection is closed).
    BodyTimeout,
    /// The body is over a JSON limit (depth, entries, elements, string length).
    Json(String),
    /// The body is not what the route takes (not JSON, not an object).
    BadBody(String),
    Sealed,
    /// The request deadline passed.
    Deadline,
    /// An enabled audit device could not write: nothing is done.
    AuditFailed,
    /// A header asks for something kvseal does not do (response wrapping, another namespace).
    Header(headers::HeaderRefusal),
    /// The storage under a check failed.
    Engine(EngineError),
    /// The request path holds an invalid percent-escape (the escape, as Go's `url.EscapeError`
    /// quotes it: `%zz`, `%4`, `%`).
    InvalidEscape(String),
}

/// The first invalid percent-escape in a raw (still encoded) request path, as Go's
/// `url.EscapeError` quotes it: the `%` and at most the two bytes after it. `None` when every `%`
/// is followed by two hex digits.
pub fn invalid_escape(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut i = 0;
    while let Some(off) = bytes[i..].iter().position(|&b| b == b'%') {
        let at = i + off;
        let escape = bytes.get(at + 1..at + 3);
        if !escape.is_some_and(|e| e.iter().all(u8::is_ascii_hexdigit)) {
            let end = (at + 3).min(bytes.len());
            return Some(String::from_utf8_lossy(&bytes[at..end]).into_owned());
        }
        i = at + 3;
    }
    None
}

/// The caller of an authenticated route.
pub struct Caller {
    pub identity: Identity,
    pub acl: Arc<Acl>,
}

/// How a route takes its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// Read into memory within `max_request_size` and checked against the JSON limits (every
    /// route but one).
    Json,
    /// A snapshot archive (`POST sys/storage/raft/snapshot`): written as it arrives to a private
    /// file the engine provides, within `limits.max_snapshot_size`, never held in memory, never
    /// parsed as JSON and never written to the audit log (the request entry has no body).
    Snapshot,
}

/// A route and what it declares.
pub struct Routed<R> {
    pub route: R,
    pub access: Access,
    /// How the body is read.
    pub body: Body,
    /// The path written in audit entries.
    pub audit_path: String,
    /// The logical operation written in audit entries (`read`, `update`, `list`, …).
    pub audit_op: &'static str,
}

/// What a handler receives: everything the pipeline established.
pub struct Call<'a, R> {
    pub state: &'a AppState,
    pub http: &'a HttpRequest,
    pub rid: &'a str,
    pub route: R,
    /// The body, read within the limits and checked against the JSON limits (empty for a
    /// [`Body::Snapshot`] route).
    pub body: Vec<u8>,
    /// The uploaded snapshot of a [`Body::Snapshot`] route.
    pub upload: Option<crate::engine::SnapshotUpload>,
    /// `None` on public routes only.
    pub caller: Option<Caller>,
}

/// One API served through the pipeline.
pub trait Api: 'static {
    type Route;
    type Error: From<Refusal>;

    /// The one function that renders this API's errors.
    fn render(err: Self::Error, rid: &str) -> HttpResponse;

    /// The route and its declared access, from the request head alone.
    fn route(state: &AppState, req: &HttpRequest) -> Result<Routed<Self::Route>, Self::Error>;

    /// The checks of an [`Access::AfterBody`] route, from its bounded body.
    fn checks_after_body(
        state: &AppState,
        route: &Self::Route,
        body: &[u8],
    ) -> Result<Vec<Check>, Self::Error>;

    /// The response-wrapping TTL the request asks for, in nanoseconds (`None`: no wrapping): policy
    /// rules may require one (`min_wrapping_ttl`, `max_wrapping_ttl`). Only Vault's API wraps.
    fn wrap_ttl(_route: &Self::Route) -> Option<i64> {
        None
    }

    /// The wrapping token an [`Access::WrappingToken`] request names in its body (`token`), if
    /// any; an error when the body is not what the route takes.
    fn wrapping_token_in_body(
        _route: &Self::Route,
        _body: &[u8],
    ) -> Result<Option<String>, Self::Error> {
        Ok(None)
    }

    /// A caller without a token may be a verified client certificate (OKMS's mTLS). `None`: this
    /// API takes tokens only.
    fn certificate_caller(
        _state: &AppState,
        _req: &HttpRequest,
        _route: &Self::Route,
    ) -> Option<Result<Identity, Self::Error>> {
        None
    }

    fn handle(
        call: Call<'_, Self::Route>,
    ) -> impl Future<Output = Result<HttpResponse, Self::Error>>;
}

/// The actix handler of an API: every request of `A` goes through here.
pub async fn serve<A: Api>(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let rid = app::request_id(&req);
    if let Some(escape) = invalid_escape(req.uri().path()) {
        return A::render(Refusal::InvalidEscape(escape).into(), &rid);
    }
    let routed = match A::route(&state, &req) {
        Ok(r) => r,
        Err(e) => return A::render(e, &rid),
    };
    let mut audit: Option<Exchange> = None;
    let work = admit_and_handle::<A>(&req, payload, &state, &rid, routed, &mut audit);
    let result = match actix_web::rt::time::timeout(state.request_timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(Refusal::Deadline.into()),
    };
    let resp = match result {
        Ok(r) => r,
        Err(e) => A::render(e, &rid),
    };
    match audit {
        None => resp,
        Some(a) => match a.response(resp).await {
            Ok(r) => r,
            Err(_) => A::render(Refusal::AuditFailed.into(), &rid),
        },
    }
}

/// Why a body could not be read, as the pipeline refuses it.
fn body_refusal(e: BodyError) -> Refusal {
    match e {
        BodyError::TooLarge => Refusal::TooLarge,
        BodyError::Read(m) => Refusal::BodyRead(m),
        BodyError::TimedOut => Refusal::BodyTimeout,
        BodyError::Write(m) => Refusal::Engine(EngineError::Unavailable(format!(
            "writing the uploaded snapshot: {m}"
        ))),
    }
}

async fn admit_and_handle<A: Api>(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    rid: &str,
    routed: Routed<A::Route>,
    audit: &mut Option<Exchange>,
) -> Result<HttpResponse, A::Error> {
    let engine = &state.engine;
    let ip = app::client_ip(req);
    let Routed {
        route,
        access,
        body: body_kind,
        audit_path,
        audit_op,
    } = routed;
    let wrap_ns = A::wrap_ttl(&route);
    if let Access::WrappingToken(checks) = access {
        let routed = Routed {
            route,
            access: Access::Filtered,
            body: body_kind,
            audit_path,
            audit_op,
        };
        return admit_wrapping::<A>(req, payload, state, rid, routed, checks, audit).await;
    }
    // A refusal after this point is audited (without the body, which is never read for it).
    let refuse = |audit: &mut Option<Exchange>, caller: Option<&Identity>, r: Refusal| {
        *audit = Exchange::begin(engine, req, rid, audit_op, &audit_path, caller);
        match audit {
            Some(a) if a.request().is_err() => Refusal::AuditFailed.into(),
            _ => A::Error::from(r),
        }
    };

    let public = matches!(access, Access::Public | Access::PublicRateLimited);
    if matches!(access, Access::PublicRateLimited) && !state.limiter.take(ip) {
        return Err(refuse(
            audit,
            None,
            Refusal::TooManyRequests(audit_path.clone(), state.limiter.retry_after_secs()),
        ));
    }
    let caller = if public {
        None
    } else {
        if engine.seal_status() != SealStatus::Unsealed {
            return Err(Refusal::Sealed.into());
        }
        // A failed authentication spends the client's budget; once it is spent, failures are
        // 429 (valid tokens from the same address keep working).
        let failed = |r: Refusal| {
            if state.limiter.take(ip) {
                r
            } else {
                Refusal::TooManyRequests(audit_path.clone(), state.limiter.retry_after_secs())
            }
        };
        let identity = match app::token_of(req).filter(|t| !t.is_empty()) {
            Some(t) => match engine.authenticate(&t).await {
                Ok(id) => id,
                Err(EngineError::PermissionDenied) => {
                    return Err(refuse(audit, None, failed(Refusal::Unauthenticated)))
                }
                Err(e) => return Err(refuse(audit, None, Refusal::Engine(e))),
            },
            None => match A::certificate_caller(state, req, &route) {
                Some(Ok(id)) => id,
                Some(Err(e)) => return Err(e),
                None => return Err(refuse(audit, None, failed(Refusal::Unauthenticated))),
            },
        };
        let acl = engine.acl(&identity);
        if let Access::Checks(checks) = &access {
            if let Err(d) = access::decide(engine, &acl, checks, &identity, wrap_ns) {
                let r = match d {
                    access::Denied::Forbidden => Refusal::Forbidden,
                    access::Denied::Engine(e) => Refusal::Engine(e),
                };
                return Err(refuse(audit, Some(&identity), r));
            }
        }
        Some(Caller { identity, acl })
    };

    let limit = if public {
        state.max_request_size.min(PUBLIC_BODY_LIMIT)
    } else {
        state.max_request_size
    };
    let caller_id = caller.as_ref().map(|c| &c.identity);
    let (body, upload) = match body_kind {
        Body::Json => {
            let body = match app::read_body(req, payload, limit).await {
                Ok(b) => b,
                Err(e) => return Err(refuse(audit, caller_id, body_refusal(e))),
            };
            if let Err(m) = json_limits::check(&body, &app::json_limits()) {
                return Err(refuse(audit, caller_id, Refusal::Json(m)));
            }
            (body, None)
        }
        // Only an authenticated, authorised caller gets this far: the upload's disk space is
        // spent for nobody else.
        Body::Snapshot => {
            let upload = match engine.restore_upload() {
                Ok(u) => u,
                Err(e) => return Err(refuse(audit, caller_id, Refusal::Engine(e))),
            };
            let written = app::write_body_to_file(
                req,
                payload,
                state.max_snapshot_size,
                &upload.archive_path(),
            )
            .await;
            if let Err(e) = written {
                return Err(refuse(audit, caller_id, body_refusal(e)));
            }
            (Vec::new(), Some(upload))
        }
    };
    if let (Access::AfterBody, Some(c)) = (&access, &caller) {
        let checks = match A::checks_after_body(state, &route, &body) {
            Ok(c) => c,
            Err(e) => {
                let _ = refuse(audit, caller_id, Refusal::Forbidden);
                return Err(e);
            }
        };
        if let Err(d) = access::decide(engine, &c.acl, &checks, &c.identity, wrap_ns) {
            let r = match d {
                access::Denied::Forbidden => Refusal::Forbidden,
                access::Denied::Engine(e) => Refusal::Engine(e),
            };
            return Err(refuse(audit, caller_id, r));
        }
    }

    let call = Call {
        state,
        http: req,
        rid,
        route,
        body,
        upload,
        caller,
    };
    audited_handle::<A>(call, audit_op, &audit_path, audit).await
}

/// The audit request entry (with the body), then the handler: the last steps of every admitted
/// request.
async fn audited_handle<A: Api>(
    call: Call<'_, A::Route>,
    audit_op: &'static str,
    audit_path: &str,
    audit: &mut Option<Exchange>,
) -> Result<HttpResponse, A::Error> {
    let caller = call.caller.as_ref().map(|c| &c.identity);
    *audit = Exchange::begin(
        &call.state.engine,
        call.http,
        call.rid,
        audit_op,
        audit_path,
        caller,
    );
    if let Some(a) = audit.as_mut() {
        a.set_body(&call.body);
        if a.request().is_err() {
            return Err(Refusal::AuditFailed.into());
        }
    }
    A::handle(call).await
}

/// Admission of an [`Access::WrappingToken`] route (see there): the wrapping token named by the
/// request is validated first, then the caller, if the route has checks.
async fn admit_wrapping<A: Api>(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    rid: &str,
    routed: Routed<A::Route>,
    checks: Option<Vec<Check>>,
    audit: &mut Option<Exchange>,
) -> Result<HttpResponse, A::Error> {
    let engine = &state.engine;
    let ip = app::client_ip(req);
    let Routed {
        route,
        audit_path,
        audit_op,
        ..
    } = routed;
    let refuse = |audit: &mut Option<Exchange>, caller: Option<&Identity>, r: Refusal| {
        *audit = Exchange::begin(engine, req, rid, audit_op, &audit_path, caller);
        match audit {
            Some(a) if a.request().is_err() => Refusal::AuditFailed.into(),
            _ => A::Error::from(r),
        }
    };
    let too_many =
        || Refusal::TooManyRequests(audit_path.clone(), state.limiter.retry_after_secs());
    // Without checks (lookup) the route is an unauthenticated one: every request spends the
    // budget. With checks, only a failed validation or authentication does.
    let unauthenticated = checks.is_none();
    if unauthenticated && !state.limiter.take(ip) {
        return Err(refuse(audit, None, too_many()));
    }
    let failed = |r: Refusal| {
        if unauthenticated || state.limiter.take(ip) {
            r
        } else {
            too_many()
        }
    };
    if engine.seal_status() != SealStatus::Unsealed {
        return Err(Refusal::Sealed.into());
    }
    let limit = state.max_request_size.min(PUBLIC_BODY_LIMIT);
    let body = match app::read_body(req, payload, limit).await {
        Ok(b) => b,
        Err(e) => return Err(refuse(audit, None, body_refusal(e))),
    };
    if let Err(m) = json_limits::check(&body, &app::json_limits()) {
        return Err(refuse(audit, None, Refusal::Json(m)));
    }
    let in_body = A::wrapping_token_in_body(&route, &body)?;
    let header = app::token_of(req).filter(|t| !t.is_empty());
    // Vault: "error validating wrapping token: token is empty" (403).
    let Some(target) = in_body.clone().or_else(|| header.clone()) else {
        return Err(refuse(audit, None, failed(Refusal::Unauthenticated)));
    };
    match engine.is_wrapping_token(&target) {
        Ok(true) => {}
        Ok(false) => {
            let invalid = EngineError::invalid(crate::engine::wrapping::INVALID_WRAPPING_TOKEN);
            return Err(refuse(audit, None, failed(Refusal::Engine(invalid))));
        }
        Err(e) => return Err(refuse(audit, None, Refusal::Engine(e))),
    }
    let caller = match checks {
        None => None,
        Some(checks) => {
            let authenticated = match (&in_body, &header) {
                // The wrapping token is in the body: the header's token is the caller, any token.
                (Some(_), Some(t)) => engine.authenticate(t).await,
                (Some(_), None) => Err(EngineError::PermissionDenied),
                // The wrapping token is its own credential; unwrapping spends its use.
                (None, _) => engine.wrapping_identity(&target),
            };
            let identity = match authenticated {
                Ok(id) => id,
                Err(EngineError::PermissionDenied) | Err(EngineError::Invalid(_)) => {
                    return Err(refuse(audit, None, failed(Refusal::Unauthenticated)))
                }
                Err(e) => return Err(refuse(audit, None, Refusal::Engine(e))),
            };
            let acl = engine.acl(&identity);
            if let Err(d) = access::decide(engine, &acl, &checks, &identity, None) {
                let r = match d {
                    access::Denied::Forbidden => {
                        if in_body.is_none() {
                            // Used where its policy does not reach: burnt, as a token's use
                            // is spent by any request in Vault.
                            let gone = crate::engine::tokens::TokenRef::Token(&target);
                            if let Err(e) = engine.revoke_token(gone, false).await {
                                return Err(refuse(audit, Some(&identity), Refusal::Engine(e)));
                            }
                        }
                        Refusal::Forbidden
                    }
                    access::Denied::Engine(e) => Refusal::Engine(e),
                };
                return Err(refuse(audit, Some(&identity), r));
            }
            Some(Caller { identity, acl })
        }
    };
    let call = Call {
        state,
        http: req,
        rid,
        route,
        body,
        upload: None,
        caller,
    };
    audited_handle::<A>(call, audit_op, &audit_path, audit).await
}

#[cfg(test)]
mod tests {
    use super::invalid_escape;

    #[test]
    fn invalid_escapes_as_go_quotes_them() {
        let cases: &[(&str, Option<&str>)] = &[
            ("/v1/secret/data/x", None),
            ("/v1/secret/data/a%2Fb", None),
            ("/v1/secret/data/a%2fb%20c", None),
            ("/v1/secret/data/x%zz", Some("%zz")),
            ("/v1/secret/data/x%4", Some("%4")),
            ("/v1/secret/data/x%", Some("%")),
            ("/v1/secret/data/x%4g/y", Some("%4g")),
            ("/v1/secret/data/%%41", Some("%%4")),
            ("/v1/a%41%zz", Some("%zz")),
            ("%", Some("%")),
            ("", None),
        ];
        for (path, want) in cases {
            assert_eq!(invalid_escape(path).as_deref(), *want, "{path}");
        }
    }
}
