//! The capability check a request on a Vault path needs: the same on the Vault API
//! (`/v1/<path>`) and on OKMS's Vault-compatible v1 API (the domain's mount path in front of the
//! rest), so it lives beside the KV v2 protocol both speak.

use super::request::Op;
use crate::engine::path::SecretPath;
use crate::engine::Engine;
use crate::pipeline::{Check, Need};
use crate::policy::Capabilities;

/// Paths that need `sudo` on top of the operation's capability (Vault's "root paths" that kvseal
/// serves: the token store's `accessors` and `revoke-orphan`, seal, rotation, audit devices,
/// mount moves and auth methods; `sys/rewrap` is kvseal's own and is protected the same way).
/// Snapshots are not root paths in Vault or OpenBao (`update` on the path is enough there): kvseal
/// asks `sudo` for them on purpose, since a snapshot holds every secret and token of the store and
/// a restore replaces all of them. A policy that grants snapshots in Vault adds `sudo` here.
fn needs_sudo(path: &str) -> bool {
    const SUDO: [&str; 9] = [
        "auth/token/accessors",
        "auth/token/revoke-orphan",
        "sys/seal",
        "sys/rotate",
        "sys/rewrap",
        "sys/audit",
        "sys/storage/raft/snapshot",
        "sys/storage/raft/snapshot-force",
        "sys/backup",
    ];
    // OpenBao's rekey under `sys/rotate/root/` is not a root path there (only `rotate/root`
    // itself is): the current unseal key shares are its authorisation.
    if ["init", "update", "verify", "backup"]
        .iter()
        .any(|s| path.strip_prefix("sys/rotate/root/") == Some(s))
    {
        return false;
    }
    // Vault's root paths `remount` (only itself: its `status/<id>` needs `read`) and `auth/*`
    // (every method's own path; the listing `sys/auth` needs `read`).
    path == "sys/remount"
        || path.starts_with("sys/auth/")
        || SUDO.iter().any(|p| {
            path == *p
                || path
                    .strip_prefix(p)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
}

/// The capability an operation needs on its own path (a KV write's create-or-update is decided
/// by the pipeline's existence check).
pub fn required(op: Op) -> Capabilities {
    match op {
        Op::Read | Op::Head => Capabilities::READ,
        Op::List => Capabilities::LIST,
        Op::Update => Capabilities::UPDATE,
        Op::Patch => Capabilities::PATCH,
        Op::Delete => Capabilities::DELETE,
    }
}

/// The path the ACL is checked on. The handlers of `sys/` and `auth/` take `x` and `x/` alike,
/// so outside a list the trailing `/` goes (else `DELETE sys/mounts/x/` escaped a deny on
/// `sys/mounts/x`); policy names are case-insensitive to their handler, so the ACL sees the
/// lowercase name the handler will use (else `ADMIN` escaped a deny on `admin`).
pub fn acl_path(op: Op, path: &str) -> String {
    let mut p = path.to_string();
    if op != Op::List && (p.starts_with("sys/") || p.starts_with("auth/")) {
        while p.ends_with('/') {
            p.pop();
        }
    }
    for prefix in ["sys/policies/acl/", "sys/policy/"] {
        if let Some(name) = p.strip_prefix(prefix) {
            p = format!("{prefix}{}", name.to_lowercase());
        }
    }
    p
}

/// The check for a request on a path of the Vault namespace `path` (after `/v1/`; on OKMS's v1
/// API, the domain's mount path put in front of the rest). A write to a KV key is create or
/// update by existence, as Vault's existence check decides it: on a KV v2 mount the key under
/// `data/` or `metadata/`, on a KV v1 mount the whole rest of the path (`kv1/data/x` is the key
/// `data/x`). The path checked is the request's own either way: Vault rewrites no KV path for
/// its ACL.
pub fn check_for(engine: &Engine, op: Op, path: &str) -> Check {
    let acl_path = acl_path(op, path);
    if op == Op::Update {
        if let Some((mount, rest)) = engine.resolve(&acl_path) {
            let key = match mount.kv_version {
                2 => rest
                    .strip_prefix("data/")
                    .or_else(|| rest.strip_prefix("metadata/")),
                _ => Some(rest),
            }
            .and_then(|k| SecretPath::parse(k).ok());
            if let Some(key) = key {
                return Check {
                    path: acl_path,
                    need: Need::Write {
                        mount: Box::new(mount),
                        key,
                    },
                    list: false,
                };
            }
        }
    }
    let mut caps = required(op);
    if needs_sudo(&acl_path) {
        caps = caps.union(Capabilities::SUDO);
    }
    Check {
        path: acl_path,
        need: Need::Caps(caps),
        list: op == Op::List,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_paths_are_canonical() {
        let cases = [
            (Op::Delete, "sys/mounts/x/", "sys/mounts/x"),
            (Op::Update, "sys/mounts/x//", "sys/mounts/x"),
            (Op::List, "sys/policies/acl/", "sys/policies/acl/"),
            (
                Op::Update,
                "sys/policies/acl/ADMIN",
                "sys/policies/acl/admin",
            ),
            (Op::Delete, "sys/policy/Admin/", "sys/policy/admin"),
            (
                Op::Read,
                "auth/token/lookup-self/",
                "auth/token/lookup-self",
            ),
            // KV paths keep their slash: the KV handlers answer `data/x/` with their own 404.
            (Op::Read, "secret/data/x/", "secret/data/x/"),
        ];
        for (op, path, want) in cases {
            assert_eq!(acl_path(op, path), want, "{op:?} {path}");
        }
    }

    #[test]
    fn sudo_paths() {
        for (path, sudo) in [
            ("sys/rotate", true),
            ("sys/rotate/root", true),
            ("sys/rotate/root/init", false),
            ("sys/rotate/root/update", false),
            ("sys/rotate/root/verify", false),
            ("sys/rotate/root/backup", false),
            ("sys/rotate/root/other", true),
            ("sys/generate-root-token/attempt", false),
            ("sys/rekey/backup", false),
            ("sys/rotatex", false),
            ("sys/audit/file", true),
            ("sys/audit-hash/file", false),
            ("auth/token/accessors", true),
            ("sys/storage/raft/snapshot", true),
            ("sys/storage/raft/snapshot-force", true),
            ("sys/storage/raft/snapshotx", false),
            ("sys/mounts", false),
            ("sys/remount", true),
            ("sys/remount/status/0b9f", false),
            ("sys/remountx", false),
            ("sys/auth", false),
            ("sys/auth/token", true),
            ("sys/auth/cert/tune", true),
            ("sys/authx", false),
        ] {
            assert_eq!(needs_sudo(path), sudo, "{path}");
        }
    }
}
