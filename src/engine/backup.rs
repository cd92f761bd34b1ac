//! Online snapshots in the archive format Vault's snapshot clients check: a gzip tar holding the
//! database copy, its SHA256SUMS, and SHA256SUMS.sealed last (`vault operator raft snapshot save`
//! refuses an archive whose last file is not a non-empty SHA256SUMS.sealed). The database stays
//! encrypted as it is: a snapshot is useless without the seal key.
//!
//! A restore verifies a backup with the seal key before anything is replaced ([`verify_backup`]):
//! the seal key must open the backup's own root key and keyring, and for an archive that keyring
//! must open `SHA256SUMS.sealed`, whose digest must be the database's. The unkeyed `SHA256SUMS` only
//! catches accidents: whoever edits the database can recompute it.

use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::error::{EngineError, EngineResult};
use super::seal::{parse_seal_config, KEYRING_FACT, ROOT_KEY_FACT, SEAL_CONFIG_FACT};
use super::Engine;
use crate::crypto::{open_root_key, shamir, Key32, Keyring};
use crate::storage::snapshot;

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
            .scratch_dir()
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
            let sums = sums_line(&bytes);
            let sealed_sums = seal_sums(&keyring, &sums)?;

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

/// The archive's `SHA256SUMS` for a database: one line, `<hex digest>  kvseal.db`.
pub fn sums_line(db: &[u8]) -> String {
    let digest: String = Sha256::digest(db)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{digest}  {SNAPSHOT_DB_NAME}\n")
}

/// What a restore verifies a backup with: the seal of the configuration it restores into.
pub enum RestoreKey {
    /// The file seal's key (the configured key file).
    File(Key32),
    /// Unseal key shares of the Shamir seal, decoded.
    Shares(Vec<Zeroizing<Vec<u8>>>),
}

/// Verifies the database file `db` with the seal key before a restore installs it: the key opens
/// the database's own root key (it belongs to this seal), the root key opens its keyring (the
/// keyring is not forged), and with `sealed_sums` (the archive's `SHA256SUMS.sealed`) the keyring
/// opens the sealed checksums and the file's SHA-256 is the one they hold (nothing was edited).
/// A raw backup has no sealed checksums: it is verified by its keys only, and each record is
/// authenticated when it is read.
pub fn verify_backup(db: &Path, key: &RestoreKey, sealed_sums: Option<&[u8]>) -> EngineResult<()> {
    let mut facts =
        snapshot::read_facts(db, &[SEAL_CONFIG_FACT, ROOT_KEY_FACT, KEYRING_FACT])?.into_iter();
    let mut next = || facts.next().flatten();
    let (config, root_blob, ring_blob) = (next(), next(), next());
    let (Some(root_blob), Some(ring_blob)) = (root_blob, ring_blob) else {
        return Err(EngineError::invalid(
            "the backup holds no root key or keyring: it is not of an initialised store, or they were removed",
        ));
    };
    let recorded = config.as_deref().and_then(parse_seal_config);
    let (seal_key, wrong_key) = match key {
        RestoreKey::File(k) => {
            if let Some(("shamir", _)) = recorded {
                return Err(EngineError::invalid(
                    "the backup is of a store with the shamir seal, but this configuration has the file seal",
                ));
            }
            (
                k.clone(),
                "the seal key (the configured key file) does not open the backup's root key",
            )
        }
        RestoreKey::Shares(shares) => {
            let threshold = match recorded {
                Some(("file", _)) => {
                    return Err(EngineError::invalid(
                        "the backup is of a store with the file seal, but this configuration has the shamir seal",
                    ))
                }
                Some((_, t)) => t,
                None => 1,
            };
            if shares.len() < threshold {
                return Err(EngineError::invalid(format!(
                    "the backup's seal needs {threshold} unseal keys and {} were given",
                    shares.len()
                )));
            }
            let k = shamir::combine(shares)
                .ok()
                .and_then(|k| Key32::from_slice(&k))
                .ok_or_else(|| {
                    EngineError::invalid("the unseal keys given are not valid shares of one key")
                })?;
            (k, "the unseal keys given do not open the backup's root key")
        }
    };
    let root = open_root_key(&seal_key, &root_blob).map_err(|_| {
        EngineError::invalid(format!(
            "{wrong_key}: the backup is of another store (or the keys are wrong)"
        ))
    })?;
    let keyring = Keyring::open_under(&root, &ring_blob).map_err(|_| {
        EngineError::invalid(
            "the backup's keyring does not open with its root key: the keyring was edited or replaced",
        )
    })?;
    let Some(sealed) = sealed_sums else {
        return verify_records(db, &keyring).map(|_| ());
    };
    let opened = open_sums(&keyring, sealed).ok_or_else(|| {
        EngineError::invalid(
            "SHA256SUMS.sealed does not open with the snapshot's keyring: it was edited, or is not this store's",
        )
    })?;
    let bytes = std::fs::read(db).map_err(io)?;
    if opened.as_slice() != sums_line(&bytes).as_bytes() {
        return Err(EngineError::invalid(format!(
            "{SNAPSHOT_DB_NAME} does not match SHA256SUMS.sealed: the database was changed after the snapshot was taken (or the sealed checksums are of another snapshot)"
        )));
    }
    Ok(())
}

/// Opens every sealed record of the database file `db` with `keyring`: the sealed tables, every key
/// record of every mount and every version its timeline keeps, every token entry and every
/// cubbyhole entry (schema 3). A raw backup has
/// no sealed checksums; this is what verifies it record by record. Returns how many were opened. A
/// schema-1 database has no sealed records to check (they are sealed at its first unseal).
fn verify_records(db: &Path, keyring: &Keyring) -> EngineResult<u64> {
    use super::kv::{decrypt, open_secret};
    let version = snapshot::schema_version(db)?;
    if version < 2 {
        return Ok(0);
    }
    let refused = |e: EngineError| match e {
        EngineError::Corrupt(what) => EngineError::invalid(format!(
            "the backup does not authenticate ({what}): it was edited"
        )),
        other => other,
    };
    snapshot::read_file(db, |tx| {
        let (_, table) = super::mounts::read_table(tx, keyring)?;
        super::policies::read_texts(tx, keyring)?;
        for doc in [super::token_roles::ROLES_DOC, super::audit::AUDIT_DOC] {
            super::barrier::require_doc::<serde::de::IgnoredAny>(tx, keyring, doc)?;
        }
        let mut opened = 4u64;
        for m in &table.mounts {
            let mut after = String::new();
            loop {
                let page = tx.secrets_after(m.id, &after, 512)?;
                let Some((last, _)) = page.last() else {
                    break;
                };
                let next = last.clone();
                for (path, row) in &page {
                    let rec = open_secret(keyring, m.id, path, row)?;
                    for v in rec.versions.iter().filter(|v| !v.destroyed) {
                        decrypt(keyring, tx, m.id, path, v.version)?;
                        opened += 1;
                    }
                    opened += 1;
                }
                after = next;
            }
        }
        for t in tx.all_tokens()? {
            super::token_entry::open_token(keyring, &t)?;
            opened += 1;
        }
        if version >= 3 {
            let mut after = None;
            loop {
                let page = tx.export_rows(crate::storage::Table::Cubbyhole, after.as_ref(), 512)?;
                for row in &page {
                    if let crate::storage::RawRow::Cubby { token, path, row } = row {
                        super::cubbyhole::open_entry::<serde::de::IgnoredAny>(
                            keyring, token, path, row,
                        )?;
                        opened += 1;
                    }
                }
                if page.len() < 512 {
                    break;
                }
                after = page.last().cloned();
            }
        }
        Ok::<_, EngineError>(opened)
    })
    .map_err(refused)
}

/// `SHA256SUMS.sealed`: the key id (4 bytes, big-endian), the nonce and the sealed `SHA256SUMS`.
fn seal_sums(keyring: &Keyring, sums: &str) -> EngineResult<Vec<u8>> {
    let (key_id, sealed) = keyring.seal(sums.as_bytes(), SUMS_AAD)?;
    let mut out = key_id.to_be_bytes().to_vec();
    out.extend_from_slice(&sealed.nonce);
    out.extend_from_slice(&sealed.ciphertext);
    Ok(out)
}

/// Opens `SHA256SUMS.sealed` (see [`seal_sums`]) with `keyring`.
fn open_sums(keyring: &Keyring, sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < 4 + 24 {
        return None;
    }
    let (id, rest) = sealed.split_at(4);
    let key_id = u32::from_be_bytes(id.try_into().ok()?);
    let (nonce, ciphertext) = rest.split_at(24);
    keyring.open(key_id, nonce, ciphertext, SUMS_AAD).ok()
}
