//! Snapshots: `sys/storage/raft/snapshot` (`bao operator raft snapshot save` and `restore`),
//! `sys/storage/raft/snapshot-force` (`restore -force`), and `sys/backup`, kvseal's own name for
//! the snapshot read.
//!
//! The restore routes take their body as a file (`routes::body`): the pipeline has written the
//! archive to the engine's private upload directory before [`restore`] runs.

use super::error::{VaultError, VaultResult};
use super::request::{Op, VaultRequest};
use super::response::Reply;
use super::{AppState, Ctx};
use crate::engine::SnapshotUpload;

/// The paths whose writes are snapshot restores (`true`: forced).
pub const RESTORE_PATHS: [(&str, bool); 2] = [
    ("sys/storage/raft/snapshot", false),
    ("sys/storage/raft/snapshot-force", true),
];

/// Whether a write to `path` (after `/v1/`, trailing `/` ignored as the `sys/` handlers do) is a
/// snapshot restore, and whether it is forced.
pub fn restore_path(path: &str) -> Option<bool> {
    let path = path.trim_end_matches('/');
    RESTORE_PATHS
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, force)| *force)
}

pub async fn route(ctx: &Ctx<'_>, rest: &str) -> Option<VaultResult<Reply>> {
    let r = match (rest.trim_end_matches('/'), ctx.req.op) {
        ("storage/raft/snapshot" | "backup", Op::Read) => ctx
            .engine
            .snapshot_archive()
            .map(|bytes| Reply::Binary(bytes, "application/gzip"))
            .map_err(Into::into),
        // A restore is served by `restore` (the body is a file): any other operation here.
        ("storage/raft/snapshot" | "storage/raft/snapshot-force" | "backup", _) => {
            Err(VaultError::UnsupportedOperation)
        }
        _ => return None,
    };
    Some(r)
}

/// `POST/PUT sys/storage/raft/snapshot[-force]`: replaces the store with the uploaded archive
/// (see `engine::restore`). 204 once the restored store is what the server serves (or, forced
/// with a snapshot of another store under the Shamir seal, once the server has sealed itself).
pub async fn restore(
    state: &AppState,
    req: &VaultRequest,
    upload: SnapshotUpload,
) -> VaultResult<Reply> {
    let force = match (restore_path(&req.path), req.op) {
        (Some(force), Op::Update) => force,
        // The pipeline uploads a file for these routes only.
        _ => return Err(VaultError::UnsupportedOperation),
    };
    state
        .engine
        .restore_snapshot(upload, force, state.max_snapshot_size)
        .await?;
    Ok(Reply::NoContent)
}
