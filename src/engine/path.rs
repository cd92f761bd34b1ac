//! Canonical paths. A request path is checked once, before any ACL check or storage access, and the
//! newtypes below carry the proof that it was.

use std::fmt;

use super::error::EngineError;

/// Why a raw path is not canonical.
fn check_segments(raw: &str, allow_trailing_slash: bool) -> Result<(), EngineError> {
    if raw.contains('\0') {
        return Err(EngineError::invalid("path contains a NUL character"));
    }
    if raw.chars().any(|c| c.is_control()) {
        return Err(EngineError::invalid("path contains a control character"));
    }
    let body = if allow_trailing_slash {
        raw.strip_suffix('/').unwrap_or(raw)
    } else {
        raw
    };
    if body.is_empty() {
        return Ok(());
    }
    for seg in body.split('/') {
        match seg {
            "" => {
                return Err(EngineError::invalid(
                    "path contains an empty segment (\"//\")",
                ))
            }
            "." | ".." => {
                return Err(EngineError::invalid(
                    "path contains a \".\" or \"..\" segment",
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// A secret's path inside a mount: no leading or trailing `/`, no empty, `.` or `..` segments, no NUL
/// or control characters. Any other UTF-8 is allowed (vaultrs sends names with spaces).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretPath(String);

impl SecretPath {
    pub fn parse(raw: &str) -> Result<Self, EngineError> {
        if raw.is_empty() {
            return Err(EngineError::invalid("missing path"));
        }
        if raw.starts_with('/') {
            return Err(EngineError::invalid("path must not start with \"/\""));
        }
        if raw.ends_with('/') {
            return Err(EngineError::invalid("path must not end with \"/\""));
        }
        check_segments(raw, false)?;
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretPath({:?})", self.0)
    }
}

impl fmt::Display for SecretPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A folder to list inside a mount: `""` (the root) or a prefix ending with `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderPath(String);

impl FolderPath {
    pub fn parse(raw: &str) -> Result<Self, EngineError> {
        let trimmed = raw.trim_end_matches('/');
        if trimmed.is_empty() {
            return Ok(Self(String::new()));
        }
        if trimmed.starts_with('/') {
            return Err(EngineError::invalid("path must not start with \"/\""));
        }
        check_segments(trimmed, false)?;
        Ok(Self(format!("{trimmed}/")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A mount path: non-empty, canonical, always stored and shown with one trailing `/` (`"secret/"`,
/// `"path/to/secret engine/"`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MountPath(String);

impl MountPath {
    pub fn parse(raw: &str) -> Result<Self, EngineError> {
        let trimmed = raw.trim_start_matches('/').trim_end_matches('/');
        if trimmed.is_empty() {
            return Err(EngineError::invalid("missing mount path"));
        }
        check_segments(trimmed, false)?;
        Ok(Self(format!("{trimmed}/")))
    }

    /// The path with its trailing slash, as Vault shows mount paths.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path without the trailing slash.
    pub fn bare(&self) -> &str {
        self.0.trim_end_matches('/')
    }
}

/// Stored as its text; read back through [`MountPath::parse`], so a stored path is held to the rules of
/// a new one.
impl serde::Serialize for MountPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for MountPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        MountPath::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for MountPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MountPath({:?})", self.0)
    }
}

/// Checks a raw request path (already percent-decoded) for non-canonical forms: `..`, `.`, `//`, NUL.
/// A single trailing `/` is allowed (list operations use it).
pub fn check_request_path(raw: &str) -> Result<(), EngineError> {
    check_segments(raw, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_paths() {
        assert!(SecretPath::parse("a/b c/d").is_ok());
        assert!(SecretPath::parse("ünïcode/☃").is_ok());
        for bad in [
            "", "/a", "a/", "a//b", "a/../b", "..", ".", "a/./b", "a\0b", "a\nb",
        ] {
            assert!(SecretPath::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn folders_and_mounts() {
        assert_eq!(FolderPath::parse("").unwrap().as_str(), "");
        assert_eq!(FolderPath::parse("a/b").unwrap().as_str(), "a/b/");
        assert_eq!(FolderPath::parse("a/b/").unwrap().as_str(), "a/b/");
        assert!(FolderPath::parse("a//b/").is_err());
        assert_eq!(MountPath::parse("secret").unwrap().as_str(), "secret/");
        assert_eq!(
            MountPath::parse("path/to/secret engine/").unwrap().bare(),
            "path/to/secret engine"
        );
        assert!(MountPath::parse("").is_err());
        assert!(MountPath::parse("a/../b").is_err());
        assert!(check_request_path("secret/metadata/").is_ok());
        assert!(check_request_path("secret//data").is_err());
    }
}
