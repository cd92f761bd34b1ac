//! Authenticated seal and key endpoints: `sys/seal`, `sys/rotate` (and `sys/rotate/keyring`),
//! `sys/rotate/root`, `sys/key-status`, and `sys/rewrap` (kvseal's: re-encrypt old versions under the
//! newest key in the background).

use serde_json::json;

use super::error::{VaultError, VaultResult};
use super::request::Op;
use super::response::Reply;
use super::Ctx;
use crate::engine::clock::rfc3339_nano;

pub async fn route(ctx: &Ctx<'_>, rest: &str) -> Option<VaultResult<Reply>> {
    let engine = ctx.engine;
    let op = ctx.req.op;
    let r = match (rest.trim_end_matches('/'), op) {
        ("seal", Op::Update) => match engine.seal().await {
            Ok(()) => Ok(Reply::NoContent),
            Err(e) => Err(e.into()),
        },
        ("rotate" | "rotate/keyring", Op::Update) => match engine.rotate_keyring().await {
            Ok(_) => Ok(Reply::NoContent),
            Err(e) => Err(e.into()),
        },
        ("rotate/root", Op::Update) => match engine.rotate_root_key().await {
            Ok(()) => Ok(Reply::NoContent),
            Err(e) => Err(e.into()),
        },
        ("key-status", Op::Read) => engine
            .key_status()
            .map(|(term, installed)| {
                Reply::SysInjected(json!({
                    "term": term,
                    "install_time": rfc3339_nano(installed),
                }))
            })
            .map_err(Into::into),
        ("rewrap", Op::Update) => engine
            .start_rewrap()
            .and_then(|started| {
                let s = engine.rewrap_status()?;
                Ok(Reply::Data(json!({
                    "started": started,
                    "running": s.running,
                    "rewrapped": s.rewrapped,
                    "remaining": s.remaining,
                })))
            })
            .map_err(Into::into),
        ("rewrap", Op::Read) => engine
            .rewrap_status()
            .map(|s| {
                Reply::Data(json!({
                    "running": s.running,
                    "rewrapped": s.rewrapped,
                    "remaining": s.remaining,
                }))
            })
            .map_err(Into::into),
        ("seal" | "rotate" | "rotate/keyring" | "rotate/root" | "key-status" | "rewrap", _) => {
            Err(VaultError::UnsupportedOperation)
        }
        _ => return None,
    };
    Some(r)
}
