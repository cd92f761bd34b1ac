//! OKMS secret paths: the rules of the OpenAPI file, and the two encodings clients use.
//!
//! okms-sdk-go escapes the path into one URL segment (`foo%2Fbar`, `url.PathEscape`); Vault-style
//! clients send raw slashes (`foo/bar`). Both name the same secret. On the v2 routes, the
//! `/version` and `/version/{n}` suffixes are found in the raw (still encoded) URL, so with the `%2F`
//! form a secret can never be confused with its versions; with raw slashes, a secret literally named
//! `x/version` is ambiguous, as the spec notes.

use super::error::{OkmsError, OkmsResult};
use crate::engine::path::SecretPath;

pub const MAX_PATH_LEN: usize = 255;

/// What a raw v2 URL after `/v2/secret/` addresses.
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    Secret(String),
    Versions(String),
    Version(String, String),
}

/// Splits the raw (percent-encoded) remainder after `/v2/secret/`.
pub fn split_target(raw: &str) -> Target {
    let raw = raw.strip_suffix('/').unwrap_or(raw);
    if let Some(i) = raw.rfind("/version/") {
        let (secret, n) = (&raw[..i], &raw[i + "/version/".len()..]);
        if !secret.is_empty() && !n.is_empty() && !n.contains('/') {
            return Target::Version(secret.to_string(), n.to_string());
        }
    }
    if let Some(secret) = raw.strip_suffix("/version") {
        if !secret.is_empty() {
            return Target::Versions(secret.to_string());
        }
    }
    Target::Secret(raw.to_string())
}

/// Decodes and checks a secret path: at most 255 characters of `[a-zA-Z0-9_.:/=@-]`, no empty,
/// `.` or `..` segment.
pub fn secret_path(raw: &str) -> OkmsResult<SecretPath> {
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| OkmsError::bad("the secret path is not valid UTF-8"))?;
    check(&decoded)
}

pub fn check(path: &str) -> OkmsResult<SecretPath> {
    if path.is_empty() {
        return Err(OkmsError::bad("the secret path is empty"));
    }
    if path.len() > MAX_PATH_LEN {
        return Err(OkmsError::bad(format!(
            "the secret path is longer than {MAX_PATH_LEN} characters"
        )));
    }
    if let Some(c) = path
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.:/=@-".contains(*c)))
    {
        return Err(OkmsError::bad(format!(
            "the secret path contains {c:?}; allowed: letters, digits and _ . : / = @ -"
        )));
    }
    SecretPath::parse(path).map_err(|e| OkmsError::bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_encodings_and_suffixes() {
        assert_eq!(
            split_target("foo%2Fbar"),
            Target::Secret("foo%2Fbar".into())
        );
        assert_eq!(split_target("foo/bar"), Target::Secret("foo/bar".into()));
        assert_eq!(
            split_target("foo%2Fbar/version"),
            Target::Versions("foo%2Fbar".into())
        );
        assert_eq!(
            split_target("foo/bar/version/3"),
            Target::Version("foo/bar".into(), "3".into())
        );
        assert_eq!(
            secret_path("foo%2Fbar").unwrap(),
            secret_path("foo/bar").unwrap()
        );
        for bad in [
            "",
            "a b",
            "a%20b",
            "a//b",
            "../a",
            "a/",
            "ü",
            &"x".repeat(256),
        ] {
            assert!(secret_path(bad).is_err(), "{bad:?}");
        }
        assert!(secret_path("prod/db:1/user=x@y_z.-").is_ok());
    }
}
