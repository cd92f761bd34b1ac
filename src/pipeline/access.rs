//! What a route declares about who may call it, and the one place where that is decided.
//!
//! Every route of both APIs returns an [`Access`] from its router together with the parsed route:
//! there is no way to reach a handler without one, and no handler checks capabilities itself (the
//! OKMS flat list and the kv preflight *filter* what they show by the caller's ACL, after the gate
//! their `Access` declares).

use crate::engine::model::Mount;
use crate::engine::path::SecretPath;
use crate::engine::{Engine, Identity};
use crate::policy::{Acl, Capabilities};

/// Who may call a route.
#[derive(Debug)]
pub enum Access {
    /// Anyone, sealed or not (Vault's unauthenticated `sys/health`, `sys/seal-status`,
    /// `sys/leader`, `GET sys/init`).
    Public,
    /// Anyone, but every request spends the client's rate budget (`PUT sys/init`, `sys/unseal`,
    /// `auth/cert/login`: endpoints that guess at secrets or create them).
    PublicRateLimited,
    /// Any authenticated caller; what the handler shows is filtered by the caller's ACL (the kv
    /// preflight `sys/internal/ui/mounts`, as in Vault where it is an unauthenticated path that
    /// checks mount access itself).
    Filtered,
    /// An authenticated caller for whom every check holds; decided before the body is read.
    Checks(Vec<Check>),
    /// An authenticated caller; the checks depend on the body (the OKMS create names its path in
    /// the body; an OKMS update needs what its body asks for). Decided right after the body is read
    /// and bounded, before anything is done.
    AfterBody,
    /// Vault's `sys/wrapping/{unwrap,lookup,rewrap}`: the request names a wrapping token, in the
    /// body's `token` or else as the header's token itself, and that token must be a live wrapping
    /// token before anything else is decided (400 `wrapping token is not valid or does not exist`
    /// otherwise, as Vault validates it first). The body is read first, bounded as on public
    /// routes, and a failed validation spends the client's rate budget like a failed
    /// authentication. Then, with `Some(checks)`, the caller must hold them: the header's token
    /// authenticated as any token when the wrapping token is in the body, or the wrapping token
    /// itself (its use is not spent here: unwrapping spends it, in the same write that reads the
    /// reply; refused by its ACL, it is burnt). `None` (lookup): no caller is authenticated, and
    /// every request spends the rate budget, as on the other unauthenticated routes.
    WrappingToken(Option<Vec<Check>>),
}

/// One capability requirement on one Vault path.
#[derive(Debug)]
pub struct Check {
    /// The Vault path (mount included, no leading `/`).
    pub path: String,
    pub need: Need,
    /// The request is a list: Vault's list resolution of trailing-`/` rules applies.
    pub list: bool,
}

#[derive(Debug)]
pub enum Need {
    /// Every bit of these capabilities (`UPDATE | SUDO` for Vault's root paths).
    Caps(Capabilities),
    /// A write to a KV key: `create` when the key does not exist yet, else `update` (Vault's
    /// existence check on KV v2 `data/` and `metadata/`).
    Write { mount: Box<Mount>, key: SecretPath },
    /// Some capability somewhere under the path (Vault's `hasMountAccess`).
    AnyUnder,
    /// A write to the caller's own cubbyhole at this path (after `cubbyhole/`): `create` when the
    /// entry does not exist yet, else `update` (the cubbyhole backend's existence check).
    CubbyWrite(String),
}

impl Check {
    pub fn caps(path: impl Into<String>, caps: Capabilities) -> Self {
        Self {
            path: path.into(),
            need: Need::Caps(caps),
            list: caps == Capabilities::LIST,
        }
    }
}

/// Why a caller was refused by [`decide`].
#[derive(Debug)]
pub enum Denied {
    /// A capability is missing.
    Forbidden,
    /// The existence check could not run (storage down).
    Engine(crate::engine::error::EngineError),
}

/// The one authorization decision: every check must hold for `caller`, whose request asked for
/// response wrapping with a TTL of `wrap_ns` nanoseconds (`None`: no wrapping; a policy rule may
/// require it, see [`Acl::allows_request`]).
pub fn decide(
    engine: &Engine,
    acl: &Acl,
    checks: &[Check],
    caller: &Identity,
    wrap_ns: Option<i64>,
) -> Result<(), Denied> {
    if acl.is_root() {
        return Ok(());
    }
    let by_existence = |exists: bool| {
        if exists {
            Capabilities::UPDATE
        } else {
            Capabilities::CREATE
        }
    };
    for c in checks {
        let ok = match &c.need {
            Need::Caps(caps) => acl.allows_request(&c.path, *caps, c.list, wrap_ns),
            Need::Write { mount, key } => {
                let exists = engine.secret_exists(mount, key).map_err(Denied::Engine)?;
                acl.allows_request(&c.path, by_existence(exists), false, wrap_ns)
            }
            Need::CubbyWrite(path) => {
                let exists = engine.cubby_exists(caller, path).map_err(Denied::Engine)?;
                acl.allows_request(&c.path, by_existence(exists), false, wrap_ns)
            }
            Need::AnyUnder => acl.has_any_under(&c.path),
        };
        if !ok {
            return Err(Denied::Forbidden);
        }
    }
    Ok(())
}
