//! The OKMS API's error body, built in one place:
//! `{"error_id", "error_code", "errors": [...], "request_id"}` (snake_case even in v2).
//!
//! `error_code` follows the bit layout okms-sdk-go decodes (`errors.go`): bits 24–31 major (3 = REST),
//! bits 16–23 minor (4 = SecretsApi), bits 12–15 category, bits 0–11 an application code. Clients only
//! display it, but it is stable: each `OkmsError` kind has its own code.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::{json, Value};

use crate::engine::error::EngineError;

const MAJOR_REST: u32 = 3;
const MINOR_SECRETS_API: u32 = 4;

/// The category nibble of `error_code`.
#[derive(Clone, Copy, Debug)]
#[repr(u32)]
pub enum Category {
    Internal = 1,
    Argument = 2,
    Authentication = 3,
    Authorization = 4,
    NotFound = 5,
    Unavailable = 7,
    TooManyRequests = 9,
    Conflict = 10,
}

#[derive(Debug)]
pub enum OkmsError {
    /// 400: malformed or out-of-range input.
    BadRequest(String),
    /// 400: check-and-set failed, or the secret already exists.
    Conflict(String),
    /// 401: no token, or not a valid one.
    Unauthorized,
    /// 403: the token may not do this.
    Forbidden,
    /// 404.
    NotFound(String),
    /// 404 for a path no handler serves.
    NoRoute(String),
    /// 405, with the methods the route accepts (the `Allow` header, RFC 9110 §15.5.6).
    MethodNotAllowed(&'static str),
    /// 413.
    TooLarge,
    /// 408: the body did not arrive within `http_read_timeout`; the connection is closed.
    RequestTimeout,
    /// 429: too many unauthenticated or failed requests from this client; `Retry-After` in seconds.
    TooManyRequests(u64),
    /// 503 while sealed or uninitialised.
    Sealed,
    /// 503 while storage cannot take writes.
    Unavailable(String),
    /// 500 (the message never holds secret data).
    Internal(String),
}

impl From<EngineError> for OkmsError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::NotFound => Self::NotFound("secret or version not found".into()),
            EngineError::CasMismatch | EngineError::CasRequired | EngineError::AlreadyExists => {
                Self::Conflict(e.to_string())
            }
            EngineError::Invalid(m) => Self::BadRequest(m),
            EngineError::AlreadyInitialized => Self::BadRequest(e.to_string()),
            EngineError::Sealed => Self::Sealed,
            EngineError::Unavailable(m) => Self::Unavailable(format!("storage unavailable: {m}")),
            EngineError::KeyringBehind => Self::Unavailable(e.to_string()),
            EngineError::PermissionDenied => Self::Unauthorized,
            EngineError::Crypto | EngineError::Corrupt(_) | EngineError::Storage(_) => {
                tracing::error!(error = %e, "internal error");
                Self::Internal(e.to_string())
            }
        }
    }
}

impl OkmsError {
    pub fn bad(msg: impl Into<String>) -> Self {
        Self::BadRequest(msg.into())
    }

    /// Status, category, application code and message of each kind.
    fn parts(&self) -> (StatusCode, Category, u32, String) {
        match self {
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, Category::Argument, 1, m.clone()),
            Self::Conflict(m) => (StatusCode::BAD_REQUEST, Category::Conflict, 2, m.clone()),
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                Category::Authentication,
                3,
                "missing or invalid token".into(),
            ),
            Self::Forbidden => (
                StatusCode::FORBIDDEN,
                Category::Authorization,
                4,
                "permission denied".into(),
            ),
            Self::NotFound(m) => (StatusCode::NOT_FOUND, Category::NotFound, 5, m.clone()),
            Self::NoRoute(p) => (
                StatusCode::NOT_FOUND,
                Category::NotFound,
                6,
                format!("no route for {p}"),
            ),
            Self::MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                Category::Argument,
                7,
                "method not allowed on this path".into(),
            ),
            Self::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                Category::Argument,
                8,
                "request body too large".into(),
            ),
            Self::RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                Category::Argument,
                13,
                "timed out reading the request body".into(),
            ),
            Self::TooManyRequests(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                Category::TooManyRequests,
                11,
                "too many requests; slow down".into(),
            ),
            Self::Sealed => (
                StatusCode::SERVICE_UNAVAILABLE,
                Category::Unavailable,
                9,
                "the server is sealed".into(),
            ),
            Self::Unavailable(m) => (
                StatusCode::SERVICE_UNAVAILABLE,
                Category::Unavailable,
                12,
                m.clone(),
            ),
            Self::Internal(m) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Category::Internal,
                10,
                m.clone(),
            ),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    pub fn code(&self) -> u32 {
        let (_, cat, app, _) = self.parts();
        (MAJOR_REST << 24) | (MINOR_SECRETS_API << 16) | ((cat as u32) << 12) | app
    }

    /// The error body as JSON (the v1 API adds `data` to it for deleted versions).
    pub fn body(&self, request_id: &str) -> Value {
        let (_, _, _, message) = self.parts();
        json!({
            "error_id": uuid::Uuid::new_v4().to_string(),
            "error_code": self.code(),
            "errors": [message],
            "request_id": request_id,
        })
    }

    /// The one function that renders an OKMS error.
    pub fn render(&self, request_id: &str) -> HttpResponse {
        let mut resp = json_response(self.status(), &self.body(request_id));
        match self {
            // The rest of a late body may still come: the connection cannot be reused.
            Self::RequestTimeout => resp
                .head_mut()
                .set_connection_type(actix_web::http::ConnectionType::Close),
            // As Vault's rate limit quotas: when the client may try again.
            Self::TooManyRequests(secs) => {
                resp.headers_mut().insert(
                    actix_web::http::header::RETRY_AFTER,
                    actix_web::http::header::HeaderValue::from(*secs),
                );
            }
            Self::MethodNotAllowed(allow) => {
                resp.headers_mut().insert(
                    actix_web::http::header::ALLOW,
                    actix_web::http::header::HeaderValue::from_static(allow),
                );
            }
            _ => {}
        }
        resp
    }
}

pub fn json_response(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(("Content-Type", "application/json"))
        .body(body.to_string())
}

pub type OkmsResult<T> = Result<T, OkmsError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_sdk_bit_layout() {
        let nf = OkmsError::NotFound("x".into());
        assert_eq!(nf.code() >> 24, 3);
        assert_eq!((nf.code() >> 16) & 0xff, 4);
        assert_eq!((nf.code() >> 12) & 0xf, 5);
        assert_eq!(OkmsError::Conflict("x".into()).code() >> 12 & 0xf, 10);
        assert_eq!(OkmsError::Unauthorized.status(), StatusCode::UNAUTHORIZED);
        let b = nf.body("rid");
        assert_eq!(b["request_id"], "rid");
        assert_eq!(b["errors"][0], "x");
    }
}
