//! `kvseal operator backup` and `kvseal operator restore`: offline-safe tools on a configured store.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::engine::backup::SNAPSHOT_DB_NAME;
use crate::storage::{create_private_dir, lock_dir, snapshot};

/// Copies the configured database to `out` (a new file, mode 0600). Safe while the server runs: the
/// copy is one consistent read snapshot. The copy is as encrypted as the store.
pub fn backup(config: &Path, out: &Path) -> Result<(), String> {
    let cfg = Config::load(config)?;
    let db = cfg.storage.path.join("kvseal.db");
    if !db.exists() {
        return Err(format!("{}: no database to back up", db.display()));
    }
    snapshot::vacuum_into(&db, out).map_err(|e| e.to_string())?;
    snapshot::verify(out).map_err(|e| e.to_string())?;
    println!("Backup written to {}", out.display());
    Ok(())
}

/// Replaces the configured database with a backup (from `operator backup`) or a snapshot archive
/// (from `GET sys/storage/raft/snapshot`). The server must be stopped: the store's lock is taken
/// first, and the backup is checked (integrity, schema version, checksum) before anything changes.
pub fn restore(config: &Path, input: &Path) -> Result<(), String> {
    let cfg = Config::load(config)?;
    let dir = cfg.storage.path.clone();
    create_private_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let _lock = lock_dir(&dir).map_err(|e| format!("{e} (stop the server before restoring)"))?;
    let staged: PathBuf = dir.join(format!("kvseal.db.restore-{}", uuid::Uuid::new_v4()));
    let result = (|| -> Result<(), String> {
        stage(input, &staged)?;
        snapshot::restrict(&staged).map_err(|e| e.to_string())?;
        snapshot::verify(&staged).map_err(|e| e.to_string())?;
        let db = dir.join("kvseal.db");
        for suffix in ["-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{suffix}", db.display()));
            if p.exists() {
                std::fs::remove_file(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            }
        }
        std::fs::rename(&staged, &db).map_err(|e| format!("{}: {e}", db.display()))?;
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&staged);
    }
    result?;
    println!("Restored {} into {}", input.display(), dir.display());
    Ok(())
}

/// Writes the database inside `input` to `staged`: the file itself, or the database entry of a
/// snapshot archive after checking it against the archive's SHA256SUMS.
fn stage(input: &Path, staged: &Path) -> Result<(), String> {
    let bytes = std::fs::read(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let db = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes.as_slice()));
        let (mut db, mut sums) = (None, None);
        for entry in archive
            .entries()
            .map_err(|e| format!("{}: not a snapshot archive: {e}", input.display()))?
        {
            let mut entry = entry.map_err(|e| format!("{}: {e}", input.display()))?;
            let name = entry
                .path()
                .map_err(|e| format!("{}: {e}", input.display()))?
                .to_string_lossy()
                .to_string();
            let mut data = Vec::new();
            entry
                .read_to_end(&mut data)
                .map_err(|e| format!("{}: {e}", input.display()))?;
            match name.as_str() {
                SNAPSHOT_DB_NAME => db = Some(data),
                "SHA256SUMS" => sums = Some(data),
                _ => {}
            }
        }
        let db = db
            .ok_or_else(|| format!("{}: the archive has no {SNAPSHOT_DB_NAME}", input.display()))?;
        let sums =
            sums.ok_or_else(|| format!("{}: the archive has no SHA256SUMS", input.display()))?;
        let digest: String = Sha256::digest(&db)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if !String::from_utf8_lossy(&sums).starts_with(&digest) {
            return Err(format!(
                "{}: checksum mismatch; the archive is damaged",
                input.display()
            ));
        }
        db
    } else {
        bytes
    };
    std::fs::write(staged, db).map_err(|e| format!("{}: {e}", staged.display()))
}
