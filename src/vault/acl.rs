//! Which capability a Vault request needs, on which path, and the check itself. One function for
//! every route, so no handler can forget it.

use super::error::{VaultError, VaultResult};
use super::request::{Op, VaultRequest};
use crate::engine::model::Mount;
use crate::engine::path::SecretPath;
use crate::engine::Engine;
use crate::policy::{Acl, Capabilities};

/// Paths that need `sudo` on top of the operation's capability (Vault's "root paths" that kvseal
/// serves: the token store's `accessors` and `revoke-orphan`, seal, rotation, audit devices, and
/// snapshots; `sys/rewrap` is kvseal's own and is protected the same way).
fn needs_sudo(path: &str) -> bool {
    const SUDO: [&str; 8] = [
        "auth/token/accessors",
        "auth/token/revoke-orphan",
        "sys/seal",
        "sys/rotate",
        "sys/rewrap",
        "sys/audit",
        "sys/storage/raft/snapshot",
        "sys/backup",
    ];
    SUDO.iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

/// Whether an update on this path creates something new. KV v2 `data/` and `metadata/` have an
/// existence check in Vault: a write to a key that does not exist needs `create`, to one that does,
/// `update`. Every other path needs `update`.
fn is_create(engine: &Engine, path: &str) -> VaultResult<bool> {
    let Some((mount, rest)) = engine.resolve(path) else {
        return Ok(false);
    };
    existence_create(engine, &mount, rest)
}

/// The same, for a path relative to a known mount (the OKMS v1 routes call it with their mount).
pub fn existence_create(engine: &Engine, mount: &Mount, rest: &str) -> VaultResult<bool> {
    let key = rest
        .strip_prefix("data/")
        .or_else(|| rest.strip_prefix("metadata/"));
    match key.map(SecretPath::parse) {
        Some(Ok(p)) => Ok(!engine.secret_exists(mount, &p)?),
        _ => Ok(false),
    }
}

/// The capability a request needs on its own path.
pub fn required(op: Op, create: bool) -> Capabilities {
    match op {
        Op::Read | Op::Head => Capabilities::READ,
        Op::List => Capabilities::LIST,
        Op::Update if create => Capabilities::CREATE,
        Op::Update => Capabilities::UPDATE,
        Op::Patch => Capabilities::PATCH,
        Op::Delete => Capabilities::DELETE,
    }
}

/// Checks the caller's ACL for this request: 403 `permission denied` when it falls short, the same
/// answer as for a bad token, so nothing tells which paths exist.
pub fn check(engine: &Engine, acl: &Acl, req: &VaultRequest) -> VaultResult<()> {
    if acl.is_root() {
        return Ok(());
    }
    let path = req.path.as_str();
    let create = req.op == Op::Update && is_create(engine, path)?;
    check_path(acl, path, required(req.op, create))
}

/// Checks one capability (and `sudo` where the path needs it) on one path.
pub fn check_path(acl: &Acl, path: &str, cap: Capabilities) -> VaultResult<()> {
    if !acl.allows(path, cap) {
        return Err(VaultError::PermissionDenied);
    }
    if needs_sudo(path) && !acl.allows(path, Capabilities::SUDO) {
        return Err(VaultError::PermissionDenied);
    }
    Ok(())
}
