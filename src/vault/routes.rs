//! What each Vault route is and what it declares to the pipeline: who may call it, and the one
//! capability check (on the canonical path) that admits a caller. Every request gets a `Kind` and
//! an `Access` here, from its head alone; handlers never check capabilities themselves.

use super::request::{Op, VaultRequest};
use crate::engine::Engine;
use crate::kv2::access::{acl_path, check_for};
use crate::pipeline::{Access, Body, Check, Need};

/// Which handler family serves a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `sys/health`, `sys/seal-status`, `sys/leader`, `sys/init`, `sys/unseal`, and Vault's
    /// generate-root and rekey routes.
    Public,
    /// `auth/cert/login`: authenticates by the connection's client certificate.
    CertLogin,
    /// `sys/wrapping/lookup`: the wrapping token it names is the only credential, and the
    /// lookup does not use it.
    WrappingLookup,
    /// Everything else: `sys/`, `auth/token/`, and the mounts.
    Authenticated,
}

/// The paths Vault serves without a token, and whether they spend the client's rate budget.
/// Documented in README.md's security section; `tests/routes_access.rs` holds every other route
/// to a token. Generate-root and rekey are authorised by the unseal key shares they are given, as
/// in Vault; anyone may start or cancel them, so every call spends the budget.
pub const UNAUTHENTICATED: [(&str, bool); 10] = [
    ("sys/health", false),
    ("sys/seal-status", false),
    ("sys/leader", false),
    ("sys/init", false),
    ("sys/unseal", true),
    (super::sys_generate_root::ATTEMPT, true),
    (super::sys_generate_root::UPDATE, true),
    (super::sys_rekey::INIT, true),
    (super::sys_rekey::UPDATE, true),
    (super::sys_rekey::VERIFY, true),
];

/// The kind and the declared access of a Vault request.
pub fn classify(engine: &Engine, req: &VaultRequest) -> (Kind, Access) {
    let path = req.path.as_str();
    if let Some((_, limited)) = UNAUTHENTICATED.iter().find(|(p, _)| *p == path) {
        // `PUT sys/init` creates the root token: it spends the budget like `sys/unseal`.
        let limited = *limited || (path == "sys/init" && req.op == Op::Update);
        let access = if limited {
            Access::PublicRateLimited
        } else {
            Access::Public
        };
        return (Kind::Public, access);
    }
    if path == "auth/cert/login" {
        return (Kind::CertLogin, Access::PublicRateLimited);
    }
    // Response wrapping: the wrapping token named must be valid before anything else (see
    // `Access::WrappingToken`). Unauthenticated in Vault, `lookup` spends the rate budget.
    match path.trim_end_matches('/') {
        "sys/wrapping/lookup" => return (Kind::WrappingLookup, Access::WrappingToken(None)),
        "sys/wrapping/unwrap" | "sys/wrapping/rewrap" => {
            let checks = vec![check_for(engine, req.op, path)];
            return (Kind::Authenticated, Access::WrappingToken(Some(checks)));
        }
        _ => {}
    }
    // A write to the caller's cubbyhole creates or updates by existence, as Vault's cubbyhole
    // backend decides it.
    if let Some(rest) = path.strip_prefix("cubbyhole/") {
        if req.op == Op::Update {
            let check = Check {
                path: acl_path(req.op, path),
                need: Need::CubbyWrite(rest.to_string()),
                list: false,
            };
            return (Kind::Authenticated, Access::Checks(vec![check]));
        }
    }
    // The kv preflight is an unauthenticated path in Vault that checks mount access itself (see
    // sys_mounts::preflight); here it needs a token, and shows only what the token may reach.
    if path.starts_with("sys/internal/ui/mounts") || path.starts_with("sys/mounts-all/") {
        return (Kind::Authenticated, Access::Filtered);
    }
    (
        Kind::Authenticated,
        Access::Checks(vec![check_for(engine, req.op, path)]),
    )
}

/// How a Vault request takes its body: a snapshot restore's archive goes to a file (any size up
/// to `limits.max_snapshot_size`, as `bao operator raft snapshot restore` streams it); every
/// other body is JSON read into memory.
pub fn body(req: &VaultRequest) -> Body {
    match (req.op, super::sys_storage::restore_path(&req.path)) {
        (Op::Update, Some(_)) => Body::Snapshot,
        _ => Body::Json,
    }
}
