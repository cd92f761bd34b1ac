//! The Vault API's errors, rendered in one place as `{"errors":[...]}` with the status Vault uses.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;

use crate::engine::error::EngineError;

#[derive(Debug)]
pub enum VaultError {
    /// 400 with a message (`logical.ErrorResponse`).
    BadRequest(String),
    /// 403 `permission denied`.
    PermissionDenied,
    /// 403 with Vault's message for the case (e.g. "bad token" from a lookup).
    Denied(String),
    /// 403 from the `sys/internal/ui/mounts` preflight.
    PreflightDenied(String),
    /// 404 `{"errors":[]}`: a read or list of something that is not there.
    NotFound,
    /// 404 for a path no handler serves.
    NoHandler(String),
    /// 404 `namespace not found`: `X-Vault-Namespace` names a namespace other than the root one
    /// (kvseal has no namespaces; OpenBao answers a missing namespace this way).
    NamespaceNotFound,
    /// 405.
    UnsupportedOperation,
    /// 413.
    TooLarge,
    /// 408: the body did not arrive within `http_read_timeout`; the connection is closed.
    RequestTimeout,
    /// 429 for the path, with `Retry-After` in seconds.
    TooManyRequests(String, u64),
    /// 415 for PATCH without `application/merge-patch+json`.
    UnsupportedMediaType(String),
    /// 503 while sealed or uninitialised.
    Sealed,
    /// 503 while storage cannot take writes (disk full, read-only).
    Unavailable(String),
    /// 500. The message is safe to show (it never holds secret data).
    Internal(String),
}

impl From<EngineError> for VaultError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::NotFound => Self::NotFound,
            EngineError::CasMismatch | EngineError::CasRequired | EngineError::Invalid(_) => {
                Self::BadRequest(e.to_string())
            }
            EngineError::AlreadyInitialized | EngineError::AlreadyExists => {
                Self::BadRequest(e.to_string())
            }
            EngineError::Sealed => Self::Sealed,
            EngineError::Unavailable(m) => {
                tracing::error!(error = %m, "storage unavailable");
                Self::Unavailable(format!("storage unavailable: {m}"))
            }
            EngineError::KeyringBehind => Self::Unavailable(e.to_string()),
            EngineError::PermissionDenied => Self::PermissionDenied,
            EngineError::Crypto | EngineError::Corrupt(_) | EngineError::Storage(_) => {
                tracing::error!(error = %e, "internal error");
                Self::Internal(e.to_string())
            }
        }
    }
}

impl VaultError {
    pub fn bad(msg: impl Into<String>) -> Self {
        Self::BadRequest(msg.into())
    }

    fn status_and_messages(&self) -> (StatusCode, Vec<String>) {
        match self {
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, vec![m.clone()]),
            Self::PermissionDenied => (StatusCode::FORBIDDEN, vec!["permission denied".into()]),
            Self::Denied(m) => (StatusCode::FORBIDDEN, vec![m.clone()]),
            Self::PreflightDenied(path) => (
                StatusCode::FORBIDDEN,
                vec![format!(
                    "preflight capability check returned 403, please ensure client's policies grant access to path \"{path}\""
                )],
            ),
            Self::NotFound => (StatusCode::NOT_FOUND, vec![]),
            Self::NoHandler(path) => (
                StatusCode::NOT_FOUND,
                vec![format!("no handler for route \"{path}\". route entry not found.")],
            ),
            Self::NamespaceNotFound => {
                (StatusCode::NOT_FOUND, vec!["namespace not found".into()])
            }
            Self::UnsupportedOperation => (
                StatusCode::METHOD_NOT_ALLOWED,
                vec!["unsupported operation".into()],
            ),
            Self::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                vec!["http: request body too large".into()],
            ),
            Self::RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                vec!["timed out reading the request body".into()],
            ),
            Self::UnsupportedMediaType(ct) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                vec![format!(
                    "PATCH requires Content-Type of application/merge-patch+json, provided {ct}"
                )],
            ),
            Self::Sealed => (StatusCode::SERVICE_UNAVAILABLE, vec!["Vault is sealed".into()]),
            Self::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, vec![m.clone()]),
            Self::TooManyRequests(path, _) => (
                StatusCode::TOO_MANY_REQUESTS,
                vec![format!("request path {path:?}: rate limit quota exceeded")],
            ),
            Self::Internal(m) => (StatusCode::INTERNAL_SERVER_ERROR, vec![m.clone()]),
        }
    }

    /// The one function that turns an error into Vault's wire shape. `Content-Type` is exactly
    /// `application/json`: hvac parses error bodies only on that exact string.
    pub fn render(&self) -> HttpResponse {
        let (status, errors) = self.status_and_messages();
        let body = serde_json::json!({ "errors": errors });
        let mut resp = HttpResponse::build(status);
        match self {
            // The rest of a late body may still come: the connection cannot be reused.
            Self::RequestTimeout => {
                resp.force_close();
            }
            // As Vault's rate limit quotas: when the client may try again.
            Self::TooManyRequests(_, secs) => {
                resp.insert_header(("Retry-After", secs.to_string()));
            }
            _ => {}
        }
        resp.insert_header(("Content-Type", "application/json"))
            .body(body.to_string())
    }
}

pub type VaultResult<T> = Result<T, VaultError>;
