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
    digest_line(&Sha256::digest(db))
}

/// What a restore verifies a backup with: the seal of the configuration it restores into.
pub enum RestoreKey {
    /// The file seal's key (the configured key file).
    File(Key32),
    /// Unseal key shares of the Shamir seal, decoded.
    Shares(Vec<Zeroizing<Vec<u8>>>),
    /// The seal key of the running, unsealed server (an online restore), and whether its seal is
    /// the Shamir seal (else the file seal).
    Current { key: Key32, shamir: bool },
}

/// Why a backup is refused: the online restore answers differently by cause (Vault's "different
/// set of unseal keys" error, and what `snapshot-force` may bypass).
#[derive(Debug)]
pub enum Refused {
    /// The seal key does not open the backup's root key: a backup of another store, or of this
    /// one before its seal key changed.
    OtherKeys(String),
    /// `SHA256SUMS.sealed` does not open with the backup's keyring: edited, or of another store.
    SumsSealed(String),
    /// Damaged, edited, not a backup, or of a store with the other seal type.
    Invalid(String),
    /// Reading the backup failed (not a verdict on it).
    Failed(EngineError),
}

impl From<Refused> for EngineError {
    fn from(r: Refused) -> Self {
        match r {
            Refused::OtherKeys(m) | Refused::SumsSealed(m) | Refused::Invalid(m) => {
                EngineError::Invalid(m)
            }
            Refused::Failed(e) => e,
        }
    }
}

impl From<EngineError> for Refused {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Invalid(m) => Refused::Invalid(m),
            other => Refused::Failed(other),
        }
    }
}

impl From<crate::storage::StorageError> for Refused {
    fn from(e: crate::storage::StorageError) -> Self {
        Refused::Failed(e.into())
    }
}

/// Verifies the database file `db` with the seal key before a restore installs it: the key opens
/// the database's own root key (it belongs to this seal), the root key opens its keyring (the
/// keyring is not forged), and with `sealed_sums` (the archive's `SHA256SUMS.sealed`) the keyring
/// opens the sealed checksums and the file's SHA-256 is the one they hold (nothing was edited).
/// A raw backup has no sealed checksums: it is verified by its keys only, and each record is
/// authenticated when it is read.
pub fn verify_backup(db: &Path, key: &RestoreKey, sealed_sums: Option<&[u8]>) -> EngineResult<()> {
    let keyring = open_backup_keyring(db, key)?;
    match sealed_sums {
        Some(sealed) => check_sealed_sums(db, &keyring, sealed)?,
        None => {
            verify_records(db, &keyring)?;
        }
    }
    Ok(())
}

/// The keyring of the backup `db`, opened with `key` through the backup's own root key (the first
/// steps of [`verify_backup`]).
pub fn open_backup_keyring(db: &Path, key: &RestoreKey) -> Result<Keyring, Refused> {
    let mut facts =
        snapshot::read_facts(db, &[SEAL_CONFIG_FACT, ROOT_KEY_FACT, KEYRING_FACT])?.into_iter();
    let mut next = || facts.next().flatten();
    let (config, root_blob, ring_blob) = (next(), next(), next());
    let (Some(root_blob), Some(ring_blob)) = (root_blob, ring_blob) else {
        return Err(Refused::Invalid(
            "the backup holds no root key or keyring: it is not of an initialised store, or they were removed".into(),
        ));
    };
    let recorded = config.as_deref().and_then(parse_seal_config);
    let file_seal = |k: &Key32, this: &str| {
        if let Some(("shamir", _)) = recorded {
            return Err(Refused::Invalid(format!(
                "the backup is of a store with the shamir seal, but {this} has the file seal"
            )));
        }
        Ok(k.clone())
    };
    let shamir_seal = |this: &str| match recorded {
        Some(("file", _)) => Err(Refused::Invalid(format!(
            "the backup is of a store with the file seal, but {this} has the shamir seal"
        ))),
        Some((_, t)) => Ok(t),
        None => Ok(1),
    };
    let (seal_key, wrong_key) = match key {
        RestoreKey::File(k) => (
            file_seal(k, "this configuration")?,
            "the seal key (the configured key file) does not open the backup's root key",
        ),
        RestoreKey::Current { key, shamir: false } => (
            file_seal(key, "this server")?,
            "the seal key (the configured key file) does not open the backup's root key",
        ),
        RestoreKey::Current { key, shamir: true } => {
            shamir_seal("this server")?;
            (
                key.clone(),
                "the unseal keys of this server do not open the backup's root key",
            )
        }
        RestoreKey::Shares(shares) => {
            let threshold = shamir_seal("this configuration")?;
            if shares.len() < threshold {
                return Err(Refused::Invalid(format!(
                    "the backup's seal needs {threshold} unseal keys and {} were given",
                    shares.len()
                )));
            }
            let k = shamir::combine(shares)
                .ok()
                .and_then(|k| Key32::from_slice(&k))
                .ok_or_else(|| {
                    Refused::Invalid("the unseal keys given are not valid shares of one key".into())
                })?;
            (k, "the unseal keys given do not open the backup's root key")
        }
    };
    let root = open_root_key(&seal_key, &root_blob).map_err(|_| {
        Refused::OtherKeys(format!(
            "{wrong_key}: the backup is of another store (or the keys are wrong)"
        ))
    })?;
    Keyring::open_under(&root, &ring_blob).map_err(|_| {
        Refused::Invalid(
            "the backup's keyring does not open with its root key: the keyring was edited or replaced".into(),
        )
    })
}

/// Checks the database file `db` against the archive's `SHA256SUMS.sealed` (`sealed`), opened
/// with the backup's `keyring`: what proves that no byte of the database changed since the
/// snapshot was taken.
pub fn check_sealed_sums(db: &Path, keyring: &Keyring, sealed: &[u8]) -> Result<(), Refused> {
    let opened = open_sums(keyring, sealed).ok_or_else(|| {
        Refused::SumsSealed(
            "SHA256SUMS.sealed does not open with the snapshot's keyring: it was edited, or is not this store's".into(),
        )
    })?;
    if opened.as_slice() != file_sums_line(db)?.as_bytes() {
        return Err(Refused::Invalid(format!(
            "{SNAPSHOT_DB_NAME} does not match SHA256SUMS.sealed: the database was changed after the snapshot was taken (or the sealed checksums are of another snapshot)"
        )));
    }
    Ok(())
}

/// Authenticates every sealed record of the backup `db` with its `keyring` (see
/// [`verify_records`]): how a backup without usable sealed checksums is verified.
pub fn check_records(db: &Path, keyring: &Keyring) -> Result<(), Refused> {
    verify_records(db, keyring)?;
    Ok(())
}

/// [`sums_line`] of the file at `path`, read in pieces (a database is never held in memory whole).
fn file_sums_line(path: &Path) -> EngineResult<String> {
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(io)?;
    Ok(digest_line(&hasher.finalize()))
}

fn digest_line(digest: &[u8]) -> String {
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}  {SNAPSHOT_DB_NAME}\n")
}

/// The most an archive's `SHA256SUMS` or `SHA256SUMS.sealed` may hold (OpenBao reads at most
/// 8 KiB of each): one line, or its sealed form.
const SUMS_MAX: u64 = 8192;

/// How much may follow the last entry inside an archive's compressed stream (tar's end-of-archive
/// blocks and its padding to the 10 KiB record), read through so that gzip's checksum is checked.
const TRAILER_MAX: u64 = 1024 * 1024;

/// Writes the database inside `input` to `staged` (created here, mode 0600), reading `input` in
/// pieces: neither it nor the database is ever held in memory whole. `input` is a snapshot
/// archive (gzip tar, as `GET sys/storage/raft/snapshot` writes it), or with `archive_only` false
/// also a raw backup (a SQLite file, as `kvseal operator backup` writes it). Of an archive, the
/// database must be the one its `SHA256SUMS` names (an accident check; the keyed check is
/// [`verify_backup`]'s), and it may hold nothing else. A database larger than `limit` bytes is
/// refused as soon as it is.
///
/// Returns the archive's `SHA256SUMS.sealed` (`None` for a raw backup). Refusals are
/// `EngineError::Invalid`; failures to read or write the files are `EngineError::Storage`.
pub fn stage(
    input: &Path,
    staged: &Path,
    limit: u64,
    archive_only: bool,
) -> EngineResult<Option<Vec<u8>>> {
    use std::io::{Read, Seek};
    let mut file = std::fs::File::open(input).map_err(io)?;
    let mut magic = [0u8; 2];
    let got = file.read(&mut magic).map_err(io)?;
    file.rewind().map_err(io)?;
    let out = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(staged)
            .map_err(io)?
    };
    let mut out = std::io::BufWriter::new(out);
    if got < 2 || magic != [0x1f, 0x8b] {
        if archive_only {
            return Err(EngineError::invalid(
                "not a snapshot archive (a gzip tar, as `GET sys/storage/raft/snapshot` writes it)",
            ));
        }
        copy_bounded(&mut file, &mut out, limit, "the backup", io)?;
        out.into_inner()
            .map_err(|e| io(e.into_error()))?
            .sync_all()
            .map_err(io)?;
        return Ok(None);
    }
    let damaged = |e: std::io::Error| {
        EngineError::invalid(format!(
            "not a snapshot archive, or a truncated or damaged one: {e}"
        ))
    };
    let mut archive =
        tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)));
    let (mut digest, mut sums, mut sealed) = (None, None, None);
    for entry in archive.entries().map_err(damaged)? {
        let mut entry = entry.map_err(damaged)?;
        let name = entry.path().map_err(damaged)?.to_string_lossy().to_string();
        let twice = || EngineError::invalid(format!("the archive holds {name} twice"));
        match name.as_str() {
            SNAPSHOT_DB_NAME => {
                if digest.is_some() {
                    return Err(twice());
                }
                digest = Some(copy_bounded(
                    &mut entry,
                    &mut out,
                    limit,
                    "the archive's database",
                    damaged,
                )?);
            }
            "SHA256SUMS" | "SHA256SUMS.sealed" => {
                let slot = if name == "SHA256SUMS" {
                    &mut sums
                } else {
                    &mut sealed
                };
                if slot.is_some() {
                    return Err(twice());
                }
                let mut data = Vec::new();
                (&mut entry)
                    .take(SUMS_MAX + 1)
                    .read_to_end(&mut data)
                    .map_err(damaged)?;
                if data.len() as u64 > SUMS_MAX {
                    return Err(EngineError::invalid(format!(
                        "the archive's {name} is larger than {SUMS_MAX} bytes"
                    )));
                }
                *slot = Some(data);
            }
            // As OpenBao: an archive holds these three files and nothing else (an entry skipped
            // would still be decompressed, whatever its size).
            other => {
                return Err(EngineError::invalid(format!(
                    "unexpected file {other:?} in the snapshot"
                )))
            }
        }
    }
    // Through to the end of the compressed stream, so that a damaged or cut one is noticed.
    let mut rest = archive.into_inner().take(TRAILER_MAX + 1);
    let trailing = std::io::copy(&mut rest, &mut std::io::sink()).map_err(damaged)?;
    if trailing > TRAILER_MAX {
        return Err(EngineError::invalid(
            "the archive holds more data after its last entry than a snapshot does",
        ));
    }
    let digest = digest
        .ok_or_else(|| EngineError::invalid(format!("the archive has no {SNAPSHOT_DB_NAME}")))?;
    let sums = sums.ok_or_else(|| EngineError::invalid("the archive has no SHA256SUMS"))?;
    let sealed = sealed.ok_or_else(|| {
        EngineError::invalid(
            "the archive has no SHA256SUMS.sealed, so it cannot be verified with the seal key",
        )
    })?;
    if sums != digest_line(&digest).as_bytes() {
        return Err(EngineError::invalid(format!(
            "checksum mismatch ({SNAPSHOT_DB_NAME} against SHA256SUMS); the archive is damaged"
        )));
    }
    out.into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)?;
    Ok(Some(sealed))
}

/// Copies `from` into `to`, refusing more than `limit` bytes; returns the SHA-256 of what was
/// copied. `read_error` says what a failure to read `from` means (a damaged archive, or an I/O
/// error); a failure to write `to` is an I/O error.
fn copy_bounded(
    from: &mut dyn std::io::Read,
    to: &mut dyn Write,
    limit: u64,
    what: &str,
    read_error: impl Fn(std::io::Error) -> EngineError,
) -> EngineResult<Vec<u8>> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = from.read(&mut buf).map_err(&read_error)?;
        if n == 0 {
            return Ok(hasher.finalize().to_vec());
        }
        total += n as u64;
        if total > limit {
            return Err(EngineError::invalid(format!(
                "{what} is larger than {limit} bytes, the most a restore takes"
            )));
        }
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n]).map_err(io)?;
    }
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
