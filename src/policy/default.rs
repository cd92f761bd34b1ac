//! Vault's built-in `default` policy, cut down to the endpoints kvseal serves.
//!
//! Taken from Vault's `vault/policy_store.go` `defaultPolicy` (same text in OpenBao's
//! `internal/vault/policy/policy_store.go`). Kept verbatim: the token self-service paths, the
//! capabilities-self lookup, the resultant-ACL read, the token's own cubbyhole and the response
//! wrapping endpoints. Dropped, because kvseal has no such endpoint or feature: the templated
//! `identity/entity/...` paths (no identity store, and kvseal refuses templated paths), lease
//! renew/lookup, `sys/tools/hash`, control groups and the OIDC provider. Added:
//! `sys/internal/ui/mounts`, which Vault serves unauthenticated (its handler runs the ACL itself via
//! `hasMountAccess`); granting `read` here lets kvseal's router check it like any other path.

/// The `default` policy text; every non-root token gets it unless created with
/// `no_default_policy`. Parseable by [`super::parse`].
pub const DEFAULT_POLICY: &str = r#"
# Allow tokens to look up their own properties
path "auth/token/lookup-self" {
    capabilities = ["read"]
}

# Allow tokens to renew themselves
path "auth/token/renew-self" {
    capabilities = ["update"]
}

# Allow tokens to revoke themselves
path "auth/token/revoke-self" {
    capabilities = ["update"]
}

# Allow a token to look up its own capabilities on a path
path "sys/capabilities-self" {
    capabilities = ["update"]
}

# Allow a token to look up its resultant ACL from all policies. This is useful
# for UIs. It is an internal path because the format may change at any time
# based on how the internal ACL features and capabilities change.
path "sys/internal/ui/resultant-acl" {
    capabilities = ["read"]
}

# kvseal: the `vault kv` preflight. Vault serves this path unauthenticated and
# filters by the token's access to the mount; the mount check still applies.
path "sys/internal/ui/mounts" {
    capabilities = ["read"]
}
path "sys/internal/ui/mounts/*" {
    capabilities = ["read"]
}

# Allow a token to manage its own cubbyhole
path "cubbyhole/*" {
    capabilities = ["create", "read", "update", "delete", "list"]
}

# Allow a token to wrap arbitrary values in a response-wrapping token
path "sys/wrapping/wrap" {
    capabilities = ["update"]
}

# Allow a token to look up the creation time and TTL of a given
# response-wrapping token
path "sys/wrapping/lookup" {
    capabilities = ["update"]
}

# Allow a token to unwrap a response-wrapping token. This is a convenience to
# avoid client token swapping since this is also part of the response wrapping
# policy.
path "sys/wrapping/unwrap" {
    capabilities = ["update"]
}
"#;

/// The `default` policy kvseal stored before cubbyholes and response wrapping: a store whose
/// `default` is still exactly this text gets [`DEFAULT_POLICY`] at start (one its operator changed
/// is left alone, as Vault never rewrites a stored `default`).
pub const PREVIOUS_DEFAULT_POLICY: &str = r#"
# Allow tokens to look up their own properties
path "auth/token/lookup-self" {
    capabilities = ["read"]
}

# Allow tokens to renew themselves
path "auth/token/renew-self" {
    capabilities = ["update"]
}

# Allow tokens to revoke themselves
path "auth/token/revoke-self" {
    capabilities = ["update"]
}

# Allow a token to look up its own capabilities on a path
path "sys/capabilities-self" {
    capabilities = ["update"]
}

# Allow a token to look up its resultant ACL from all policies. This is useful
# for UIs. It is an internal path because the format may change at any time
# based on how the internal ACL features and capabilities change.
path "sys/internal/ui/resultant-acl" {
    capabilities = ["read"]
}

# kvseal: the `vault kv` preflight. Vault serves this path unauthenticated and
# filters by the token's access to the mount; the mount check still applies.
path "sys/internal/ui/mounts" {
    capabilities = ["read"]
}
path "sys/internal/ui/mounts/*" {
    capabilities = ["read"]
}
"#;

#[cfg(test)]
mod tests {
    use super::super::{parse, Acl, Capabilities as C};
    use super::DEFAULT_POLICY;

    #[test]
    fn default_policy_parses_and_grants_the_self_service_paths() {
        let policy = parse("default", DEFAULT_POLICY).expect("default policy parses");
        assert_eq!(policy.rules().len(), 11);
        let acl = Acl::new(&[policy]);
        assert!(acl.allows("auth/token/lookup-self", C::READ));
        assert!(acl.allows("auth/token/renew-self", C::UPDATE));
        assert!(acl.allows("auth/token/revoke-self", C::UPDATE));
        assert!(acl.allows("sys/capabilities-self", C::UPDATE));
        assert!(acl.allows("sys/internal/ui/mounts/secret/foo", C::READ));
        assert!(!acl.allows("auth/token/lookup-self", C::UPDATE));
        assert!(!acl.allows("auth/token/create", C::UPDATE));
        assert!(!acl.allows("secret/data/foo", C::READ));
        assert!(!acl.has_any_under("secret/"));
        assert!(acl.has_any_under("auth/token/"));
    }

    #[test]
    fn default_policy_grants_the_own_cubbyhole_and_wrapping_as_vaults_does() {
        let acl = Acl::new(&[parse("default", DEFAULT_POLICY).unwrap()]);
        for cap in [C::CREATE, C::READ, C::UPDATE, C::DELETE, C::LIST] {
            assert!(acl.allows("cubbyhole/x/y", cap), "{cap:?}");
        }
        assert!(!acl.allows("cubbyhole/x", C::SUDO));
        for p in [
            "sys/wrapping/wrap",
            "sys/wrapping/lookup",
            "sys/wrapping/unwrap",
        ] {
            assert!(acl.allows(p, C::UPDATE), "{p}");
        }
        assert!(!acl.allows("sys/wrapping/rewrap", C::UPDATE));
        assert!(acl.has_any_under("cubbyhole/"));
    }

    #[test]
    fn previous_default_policy_is_the_text_kvseal_stored_before() {
        let old = parse("default", super::PREVIOUS_DEFAULT_POLICY).unwrap();
        assert_eq!(old.rules().len(), 7);
        assert!(!Acl::new(&[old]).allows("cubbyhole/x", C::READ));
    }
}
