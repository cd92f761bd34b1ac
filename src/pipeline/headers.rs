//! Vault request headers that change what a request does: the namespace, and response wrapping
//! (`X-Vault-Wrap-TTL`). What kvseal does not do is refused, never ignored: a caller who asked for a
//! response-wrapping token and got the secret in clear would have been lied to.

use actix_web::HttpRequest;

use crate::engine::duration::parse_go_duration_ns;

#[derive(Debug, PartialEq, Eq)]
pub enum HeaderRefusal {
    /// `X-Vault-Wrap-TTL` on an API that does not wrap (OKMS).
    WrapUnsupported,
    /// `X-Vault-Wrap-TTL` that does not parse, or is negative: Vault's reason, after
    /// `error parsing X-Vault-Wrap-TTL header: `.
    WrapTtl(String),
    /// `X-Vault-Wrap-Format: jwt`: kvseal makes no JWT wrapping tokens.
    WrapFormat,
    /// `X-Vault-Namespace` names a namespace other than the root one (OpenBao answers 404
    /// `namespace not found` for a namespace that does not exist).
    NamespaceNotFound,
    /// A namespace header on `sys/health` (OpenBao: 400 `operation unavailable in namespaces`).
    NamespaceOnHealth,
}

impl HeaderRefusal {
    pub fn message(&self) -> String {
        match self {
            Self::WrapUnsupported => {
                "response wrapping (X-Vault-Wrap-TTL) is not supported by this API; the request was not served".into()
            }
            Self::WrapTtl(why) => format!("error parsing X-Vault-Wrap-TTL header: {why}"),
            Self::WrapFormat => {
                "X-Vault-Wrap-Format \"jwt\" is not supported by this server: wrapping tokens are plain tokens; the request was not served".into()
            }
            Self::NamespaceNotFound => "namespace not found".into(),
            Self::NamespaceOnHealth => "operation unavailable in namespaces".into(),
        }
    }
}

/// The root namespace, however a client spells it: absent, empty, `root`, `/` (with or without
/// slashes around `root`).
fn is_root_namespace(v: &str) -> bool {
    matches!(v.trim().trim_matches('/'), "" | "root")
}

/// Checks the namespace header of a request on `path` (after `/v1/`).
pub fn check_namespace(req: &HttpRequest, path: &str) -> Result<(), HeaderRefusal> {
    if let Some(ns) = req.headers().get("X-Vault-Namespace") {
        let root = ns.to_str().is_ok_and(is_root_namespace);
        if !root {
            return Err(if path == "sys/health" {
                HeaderRefusal::NamespaceOnHealth
            } else {
                HeaderRefusal::NamespaceNotFound
            });
        }
    }
    Ok(())
}

/// Checks the Vault request headers of a request on `path` for an API that does not wrap
/// responses (OKMS's Vault-compatible API): a wrap TTL other than none is refused.
pub fn check(req: &HttpRequest, path: &str) -> Result<(), HeaderRefusal> {
    check_namespace(req, path)?;
    match wrap_ttl(req) {
        Ok(None) => Ok(()),
        _ => Err(HeaderRefusal::WrapUnsupported),
    }
}

/// The wrap TTL a request asks for, in nanoseconds (`None`: no wrapping), as Vault's
/// `requestWrapInfo` reads `X-Vault-Wrap-TTL`: whole seconds (`60`), a Go duration (`60s`, `1m`,
/// `1.5m`, `500ms`) or days (`1d`); `0` and an empty value ask for none.
pub fn wrap_ttl(req: &HttpRequest) -> Result<Option<i64>, HeaderRefusal> {
    let Some(raw) = req.headers().get("X-Vault-Wrap-TTL") else {
        return Ok(None);
    };
    let text = raw
        .to_str()
        .map_err(|_| HeaderRefusal::WrapTtl("the value is not text".into()))?;
    let ns = parse_wrap_ttl(text).map_err(HeaderRefusal::WrapTtl)?;
    if ns == 0 {
        return Ok(None);
    }
    let format = req
        .headers()
        .get("X-Vault-Wrap-Format")
        .and_then(|v| v.to_str().ok());
    // Vault makes a JWT only for `jwt`; any other value is its default format, as here.
    if format == Some("jwt") {
        return Err(HeaderRefusal::WrapFormat);
    }
    Ok(Some(ns))
}

/// `parseutil.ParseDurationSecond` on a header value, in nanoseconds, with Vault's errors.
fn parse_wrap_ttl(text: &str) -> Result<i64, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(0);
    }
    let ns = match t.parse::<i64>() {
        Ok(secs) => secs.checked_mul(1_000_000_000),
        Err(_) => parse_go_duration_ns(t),
    }
    .ok_or_else(|| format!("time: invalid duration {t:?}"))?;
    if ns < 0 {
        return Err("requested wrap ttl cannot be negative".into());
    }
    Ok(ns)
}

#[cfg(test)]
mod tests {
    use super::parse_wrap_ttl;

    #[test]
    fn wrap_ttls_as_vault_reads_them() {
        const S: i64 = 1_000_000_000;
        let cases: &[(&str, Result<i64, &str>)] = &[
            ("60", Ok(60 * S)),
            ("60s", Ok(60 * S)),
            ("1m", Ok(60 * S)),
            ("1.5m", Ok(90 * S)),
            ("1h30m", Ok(5400 * S)),
            ("1d", Ok(86400 * S)),
            ("500ms", Ok(S / 2)),
            (" 30 ", Ok(30 * S)),
            ("0", Ok(0)),
            ("0s", Ok(0)),
            ("", Ok(0)),
            ("abc", Err("time: invalid duration \"abc\"")),
            ("60x", Err("time: invalid duration \"60x\"")),
            ("-5", Err("requested wrap ttl cannot be negative")),
            ("-1m", Err("requested wrap ttl cannot be negative")),
            (
                "99999999999999999999",
                Err("time: invalid duration \"99999999999999999999\""),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(
                parse_wrap_ttl(text),
                want.map_err(str::to_string),
                "{text:?}"
            );
        }
    }
}
