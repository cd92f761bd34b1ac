//! Vault's built-in `default` policy, cut down to the endpoints kvseal serves.
//!
//! Taken from Vault's `vault/policy_store.go` `defaultPolicy` (same text in OpenBao's
//! `internal/vault/policy/policy_store.go`). Kept verbatim: the token self-service paths, the
//! capabilities-self lookup and the resultant-ACL read. Dropped, because kvseal has no such
//! endpoint or feature: the templated `identity/entity/...` paths (no identity store, and
//! kvseal refuses templated paths), lease renew/lookup, `cubbyhole/*`, response wrapping,
//! `sys/tools/hash`, control groups and the OIDC provider. Added: `sys/internal/ui/mounts`,
//! which Vault serves unauthenticated (its handler runs the ACL itself via `hasMountAccess`);
//! granting `read` here lets kvseal's router check it like any other path.

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
"#;

#[cfg(test)]
mod tests {
    use super::super::{parse, Acl, Capabilities as C};
    use super::DEFAULT_POLICY;

    #[test]
    fn default_policy_parses_and_grants_the_self_service_paths() {
        let policy = parse("default", DEFAULT_POLICY).expect("default policy parses");
        assert_eq!(policy.rules().len(), 7);
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
}
