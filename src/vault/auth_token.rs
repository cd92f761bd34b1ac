//! `auth/token/...`: for now `lookup-self` (used by `vault login` and every client's token check).

use serde_json::{json, Value};

use super::error::{VaultError, VaultResult};
use super::request::Op;
use super::response::Reply;
use super::Ctx;
use crate::engine::clock::{rfc3339_nano, NANOS_PER_SEC};
use crate::engine::Identity;

pub fn route(ctx: &Ctx<'_>, rest: &str) -> VaultResult<Reply> {
    match (rest.trim_end_matches('/'), ctx.req.op) {
        ("lookup-self", Op::Read | Op::Update) => {
            let id = ctx.identity.as_ref().ok_or(VaultError::PermissionDenied)?;
            Ok(Reply::Data(lookup_data(id, ctx.engine.clock().now())))
        }
        _ => Err(VaultError::NoHandler(format!("auth/token/{rest}"))),
    }
}

/// The lookup `data` block. `policies` is always an array: `vault login` dereferences it and panics
/// when it is missing.
fn lookup_data(id: &Identity, now: i64) -> Value {
    let ttl = id
        .expire
        .map(|e| ((e - now) / NANOS_PER_SEC).max(0))
        .unwrap_or(0);
    json!({
        "accessor": id.accessor,
        "creation_time": id.creation / NANOS_PER_SEC,
        "creation_ttl": id.ttl,
        "display_name": id.display_name,
        "entity_id": "",
        "expire_time": id.expire.map(rfc3339_nano),
        "explicit_max_ttl": 0,
        "id": id.token.expose(),
        "meta": id.meta,
        "num_uses": id.num_uses,
        "orphan": id.orphan,
        "path": id.path,
        "policies": id.policies,
        "ttl": ttl,
        "type": "service",
    })
}
