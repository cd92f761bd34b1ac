//! ACL policies: Vault's HCL/JSON policy language and its path matcher.
//!
//! The behaviour follows HashiCorp Vault's `vault/policy.go` (parsing, capability bits, legacy
//! `policy =` shorthand) and `vault/acl.go` (rule merging and the matching order), with OpenBao's
//! `internal/vault/policy/{policy,acl}.go` as a second reading of the same code. See
//! `../shared/spec/vault-kv2-wire.md` §3 "ACL policies" for the contract.
//!
//! - [`parse`] turns policy text into a [`Policy`] (a list of path rules);
//! - [`Acl::new`] compiles the policies of one token into a matcher;
//! - [`Acl::capabilities`] / [`Acl::allows`] answer the per-request question;
//! - [`Acl::has_any_under`] answers the `sys/internal/ui/mounts` preflight question.
//!
//! kvseal deliberately refuses the policy features it cannot enforce (parameter constraints,
//! control groups, MFA, templating) instead of ignoring them: a policy author who wrote
//! `denied_parameters` expects it to restrict something. Wrapping TTLs (`min_wrapping_ttl`,
//! `max_wrapping_ttl`) are enforced, as Vault does.

mod acl;
mod default;
mod parse;

pub use acl::Acl;
pub use default::{DEFAULT_POLICY, PREVIOUS_DEFAULT_POLICY};
pub use parse::parse;

/// A set of Vault capabilities, one bit each.
///
/// Vault's names: `create read update patch delete list sudo deny`. A `deny` in a matched rule
/// overrides everything else on it, so a denied set is stored as `DENY` alone (as Vault does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct Capabilities(u16);

impl Capabilities {
    /// No capability at all (what an unmatched path gets).
    pub const NONE: Capabilities = Capabilities(0);
    pub const CREATE: Capabilities = Capabilities(1 << 0);
    pub const READ: Capabilities = Capabilities(1 << 1);
    pub const UPDATE: Capabilities = Capabilities(1 << 2);
    pub const PATCH: Capabilities = Capabilities(1 << 3);
    pub const DELETE: Capabilities = Capabilities(1 << 4);
    pub const LIST: Capabilities = Capabilities(1 << 5);
    pub const SUDO: Capabilities = Capabilities(1 << 6);
    pub const DENY: Capabilities = Capabilities(1 << 7);
    /// Every grantable capability (everything but `DENY`): what root has.
    pub const ALL: Capabilities = Capabilities(0x7F);
    /// Marker carried only by [`Acl::root`]'s answers so that [`Capabilities::names`] renders
    /// `["root"]` as Vault does, without confusing root with a policy that happens to grant all
    /// seven capabilities on a path. It is not a capability a policy can name.
    pub const ROOT: Capabilities = Capabilities(1 << 8);

    /// Vault's capability names in the order `sys/capabilities` prints them (Vault sorts them:
    /// `vault/capabilities.go` calls `sort.Strings`).
    const SORTED_NAMES: [(&'static str, Capabilities); 7] = [
        ("create", Capabilities::CREATE),
        ("delete", Capabilities::DELETE),
        ("list", Capabilities::LIST),
        ("patch", Capabilities::PATCH),
        ("read", Capabilities::READ),
        ("sudo", Capabilities::SUDO),
        ("update", Capabilities::UPDATE),
    ];

    /// True when every bit of `other` is in `self` (so `contains(NONE)` is true).
    pub const fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn union(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The capability a policy names, e.g. `"patch"` → `PATCH` (`policy.go` `cap2Int`).
    pub fn from_name(name: &str) -> Option<Capabilities> {
        match name {
            "deny" => Some(Capabilities::DENY),
            "create" => Some(Capabilities::CREATE),
            "read" => Some(Capabilities::READ),
            "update" => Some(Capabilities::UPDATE),
            "patch" => Some(Capabilities::PATCH),
            "delete" => Some(Capabilities::DELETE),
            "list" => Some(Capabilities::LIST),
            "sudo" => Some(Capabilities::SUDO),
            _ => None,
        }
    }

    /// Vault's rendering for `sys/capabilities` and `sys/capabilities-self`: the sorted names;
    /// `["deny"]` when denied or when nothing is granted; `["root"]` for a root token
    /// (`acl.go` `Capabilities`).
    pub fn names(self) -> Vec<&'static str> {
        if self.contains(Capabilities::ROOT) {
            return vec!["root"];
        }
        if self.contains(Capabilities::DENY) {
            return vec!["deny"];
        }
        let names: Vec<&'static str> = Self::SORTED_NAMES
            .iter()
            .filter(|(_, cap)| self.contains(*cap))
            .map(|(name, _)| *name)
            .collect();
        if names.is_empty() {
            vec!["deny"]
        } else {
            names
        }
    }
}

impl std::ops::BitOr for Capabilities {
    type Output = Capabilities;
    fn bitor(self, rhs: Capabilities) -> Capabilities {
        self.union(rhs)
    }
}

/// Why a policy text was refused. Every message starts with `failed to parse policy:` as Vault's
/// do (`policy.go` wraps all of them), so the API layer can return it as is in a 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Blank policy text (Vault: "'policy' parameter not supplied or empty").
    #[error("failed to parse policy: policy is empty")]
    Empty,
    /// HCL or JSON syntax error, or a document that is not a set of `path` blocks.
    #[error("failed to parse policy: {0}")]
    Syntax(String),
    /// An attribute or block other than `name` and `path` at the top level.
    #[error("failed to parse policy: invalid key {key:?}")]
    UnknownTopLevelKey { key: String },
    /// A key inside a `path` block that Vault does not know either.
    #[error("failed to parse policy: path {path:?}: invalid key {key:?}")]
    UnknownKey { path: String, key: String },
    /// A key Vault knows but kvseal cannot enforce (parameter constraints, wrapping TTLs, ...).
    #[error(
        "failed to parse policy: path {path:?}: {key:?} is not supported by kvseal \
         (refused rather than silently not enforced)"
    )]
    Unsupported { path: String, key: String },
    /// A known key with a value of the wrong shape, e.g. `capabilities = "read"`.
    #[error("failed to parse policy: path {path:?}: {key:?} must be {expected}")]
    InvalidValue {
        path: String,
        key: String,
        expected: &'static str,
    },
    #[error("failed to parse policy: path {path:?}: invalid capability {capability:?}")]
    InvalidCapability { path: String, capability: String },
    /// A legacy `policy = "..."` value other than read, write, sudo, deny.
    #[error("failed to parse policy: path {path:?}: invalid policy {policy:?}")]
    InvalidLegacyPolicy { path: String, policy: String },
    /// A `path` block that grants nothing because it has neither key.
    #[error(
        "failed to parse policy: path {path:?}: missing \"capabilities\" (or legacy \"policy\")"
    )]
    MissingCapabilities { path: String },
    #[error("failed to parse policy: path {path:?}: invalid use of wildcards ('+*' is forbidden)")]
    PlusGlob { path: String },
    /// Vault would take `a/*/b` as a literal path, which is never what the author meant.
    #[error(
        "failed to parse policy: path {path:?}: invalid use of wildcards ('*' is only allowed at the end)"
    )]
    GlobNotAtEnd { path: String },
    /// `{{identity.entity.id}}` and friends: kvseal has no identity store to fill them from.
    #[error(
        "failed to parse policy: path {path:?}: templated policy paths are not supported by kvseal"
    )]
    Templated { path: String },
    /// A `path` block without exactly one label.
    #[error("failed to parse policy: a path block needs exactly one label, the path")]
    PathLabel,
    /// A wrapping TTL that is not a duration, is negative, or a maximum below the minimum
    /// (Vault's messages: `error parsing min_wrapping_ttl: time: invalid duration "abc"`,
    /// `max_wrapping_ttl cannot be less than min_wrapping_ttl`).
    #[error("failed to parse policy: path {path:?}: {message}")]
    WrappingTtl { path: String, message: String },
}

/// One `path "..." { ... }` block, validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathRule {
    /// The path as written, minus one leading `/` (Vault strips it too). Globs are kept:
    /// `secret/data/*`, `secret/+/x`.
    pub path: String,
    /// The capabilities the block grants; `DENY` alone when it denies.
    pub capabilities: Capabilities,
    /// `min_wrapping_ttl` / `max_wrapping_ttl` in whole seconds, 0 when not set: a request the
    /// rule decides must ask for response wrapping with a TTL within them (Vault's
    /// `MinWrappingTTL` / `MaxWrappingTTL`).
    pub min_wrapping_ttl: i64,
    pub max_wrapping_ttl: i64,
}

/// A parsed policy: its name and its path rules in the order written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    rules: Vec<PathRule>,
}

impl Policy {
    /// The rules in the order written (the same path may appear more than once; [`Acl::new`]
    /// merges them the way it merges rules from different policies).
    pub fn rules(&self) -> &[PathRule] {
        &self.rules
    }
}

#[cfg(test)]
mod tests {
    use super::Capabilities as C;

    #[test]
    fn names_are_sorted_like_vault() {
        let caps = C::UPDATE | C::READ | C::LIST | C::PATCH | C::SUDO;
        assert_eq!(
            caps.names(),
            vec!["list", "patch", "read", "sudo", "update"]
        );
        assert_eq!(C::ALL.names().len(), 7);
        assert_eq!(C::ALL.names()[0], "create");
    }

    #[test]
    fn names_deny_and_root() {
        assert_eq!(C::NONE.names(), vec!["deny"]);
        assert_eq!(C::DENY.names(), vec!["deny"]);
        assert_eq!((C::DENY | C::READ).names(), vec!["deny"]);
        assert_eq!((C::ALL | C::ROOT).names(), vec!["root"]);
    }

    #[test]
    fn set_operations() {
        let rw = C::READ.union(C::UPDATE);
        assert!(rw.contains(C::READ));
        assert!(rw.contains(C::READ | C::UPDATE));
        assert!(!rw.contains(C::READ | C::LIST));
        assert!(rw.contains(C::NONE));
        assert!(C::default().is_empty());
        assert!(!C::ALL.contains(C::DENY));
        assert!(C::ALL.contains(C::SUDO | C::PATCH | C::CREATE | C::DELETE | C::LIST));
    }

    #[test]
    fn from_name_knows_exactly_vaults_eight() {
        for (name, cap) in [
            ("create", C::CREATE),
            ("read", C::READ),
            ("update", C::UPDATE),
            ("patch", C::PATCH),
            ("delete", C::DELETE),
            ("list", C::LIST),
            ("sudo", C::SUDO),
            ("deny", C::DENY),
        ] {
            assert_eq!(C::from_name(name), Some(cap), "{name}");
        }
        assert_eq!(C::from_name("root"), None);
        assert_eq!(C::from_name("scan"), None);
        assert_eq!(C::from_name("READ"), None);
    }
}
