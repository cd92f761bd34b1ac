//! Request headers that ask for something kvseal does not do. Ignoring them would be a silent lie:
//! a caller who asked for a response-wrapping token would get the secret in clear.

use actix_web::HttpRequest;

#[derive(Debug, PartialEq, Eq)]
pub enum HeaderRefusal {
    /// `X-Vault-Wrap-TTL`: response wrapping is not implemented yet.
    WrapUnsupported,
    /// `X-Vault-Namespace` names a namespace other than the root one (OpenBao answers 404
    /// `namespace not found` for a namespace that does not exist).
    NamespaceNotFound,
    /// A namespace header on `sys/health` (OpenBao: 400 `operation unavailable in namespaces`).
    NamespaceOnHealth,
}

impl HeaderRefusal {
    pub fn message(&self) -> &'static str {
        match self {
            Self::WrapUnsupported => {
                "response wrapping (X-Vault-Wrap-TTL) is not supported by this server; the request was not served"
            }
            Self::NamespaceNotFound => "namespace not found",
            Self::NamespaceOnHealth => "operation unavailable in namespaces",
        }
    }
}

/// The root namespace, however a client spells it: absent, empty, `root`, `/` (with or without
/// slashes around `root`).
fn is_root_namespace(v: &str) -> bool {
    matches!(v.trim().trim_matches('/'), "" | "root")
}

/// Checks the Vault request headers of a request on `path` (after `/v1/`).
pub fn check(req: &HttpRequest, path: &str) -> Result<(), HeaderRefusal> {
    let h = req.headers();
    if let Some(ns) = h.get("X-Vault-Namespace") {
        let root = ns.to_str().is_ok_and(is_root_namespace);
        if !root {
            return Err(if path == "sys/health" {
                HeaderRefusal::NamespaceOnHealth
            } else {
                HeaderRefusal::NamespaceNotFound
            });
        }
    }
    if let Some(ttl) = h.get("X-Vault-Wrap-TTL") {
        // `0` asks for no wrapping (OpenBao treats it as absent).
        let none = ttl
            .to_str()
            .is_ok_and(|v| matches!(v.trim(), "0" | "0s" | ""));
        if !none {
            return Err(HeaderRefusal::WrapUnsupported);
        }
    }
    Ok(())
}
