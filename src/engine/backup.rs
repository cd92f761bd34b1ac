//! Online snapshots in the archive format Vault's snapshot clients check: a gzip tar holding the
//! database copy, its SHA256SUMS, and SHA256SUMS.sealed last (`vault operator raft snapshot save`
//! refuses an archive whose last file is not a non-empty SHA256SUMS.sealed). The database stays
//! encrypted as it is: a snapshot is useless without the seal key.

use std::io::Write;

use sha2::{Digest, Sha256};

use super::error::{EngineError, EngineResult};
use super::Engine;

const SUMS_AAD: &[u8] = b"kvseal/snapshot-sums/v1";
pub const SNAPSHOT_DB_NAME: &str = "kvseal.db";

fn io(e: std::io::Error) -> EngineError {
    EngineError::Storage(format!("snapshot: {e}"))
}

impl Engine {
    /// A consistent snapshot of the whole store, taken while the server keeps serving.
    pub fn snapshot_archive(&self) -> EngineResult<Vec<u8>> {
        let keyring = self.keyring()?;
        let dir = self
            .store
            .dir()
            .join(format!(".snapshot-{}", uuid::Uuid::new_v4()));
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(io)?;
        }
        let result = (|| {
            let db = dir.join(SNAPSHOT_DB_NAME);
            self.store.copy_to(&db)?;
            let bytes = std::fs::read(&db).map_err(io)?;
            let digest: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let sums = format!("{digest}  {SNAPSHOT_DB_NAME}\n");
            let (key_id, sealed) = keyring.seal(sums.as_bytes(), SUMS_AAD)?;
            let mut sealed_sums = key_id.to_be_bytes().to_vec();
            sealed_sums.extend_from_slice(&sealed.nonce);
            sealed_sums.extend_from_slice(&sealed.ciphertext);

            let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            let mut tar = tar::Builder::new(gz);
            for (name, data) in [
                (SNAPSHOT_DB_NAME, bytes.as_slice()),
                ("SHA256SUMS", sums.as_bytes()),
                ("SHA256SUMS.sealed", sealed_sums.as_slice()),
            ] {
                let mut h = tar::Header::new_gnu();
                h.set_size(data.len() as u64);
                h.set_mode(0o600);
                h.set_mtime((self.clock.now() / super::clock::NANOS_PER_SEC).max(0) as u64);
                h.set_cksum();
                tar.append_data(&mut h, name, data).map_err(io)?;
            }
            let mut gz = tar.into_inner().map_err(io)?;
            gz.flush().map_err(io)?;
            gz.finish().map_err(io)
        })();
        let _ = std::fs::remove_dir_all(&dir);
        result
    }
}
