//! The KV v2 rules: versions, check-and-set, pruning, delete-after, soft delete, destroy, metadata.
//! Every rule follows `hashicorp/vault-plugin-secrets-kv` (see `../shared/spec/vault-kv2-wire.md` §1).
//! A key's metadata and version timeline are one sealed record; each write reads it, changes it and
//! stores it back with a conditional write (`WriteTx::put_secret`), so check-and-set and "create
//! only" are decided by the transaction, whatever backend runs it.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::barrier::{self, Place};
use super::clock::Nanos;
use super::error::{EngineError, EngineResult};
use super::model::{
    ListPage, MetaUpdate, Mount, PatchOutcome, PutOutcome, PutSecret, SecretMeta, SecretRecord,
    VersionMeta, VersionOp, VersionRead, VersionState, WriteOutcome,
};
use super::path::{FolderPath, SecretPath};
use super::Engine;
use crate::crypto::{version_aad, Keyring};
use crate::storage::{ReadTx, SealedRow, VersionBlob, WriteTx};

/// The number of versions kept: `max(key, mount)`, or 10 when both are 0. (Vault's docs say the key
/// setting overrides the mount's; its code has used the larger of the two since 2018, and clients see
/// the code.)
pub fn effective_max_versions(key: u32, mount: u32) -> u64 {
    match key.max(mount) {
        0 => 10,
        n => n as u64,
    }
}

/// When a version written (or undeleted) at `now` is scheduled for deletion: the smaller non-zero of
/// the mount's and the key's `delete_version_after`; never when the mount's is negative (disabled).
pub fn deletion_time(now: Nanos, mount_dva: i64, key_dva: i64) -> Option<Nanos> {
    let secs = match (mount_dva, key_dva) {
        (m, _) if m < 0 => return None,
        (0, 0) => return None,
        (0, k) => k,
        (m, 0) => m,
        (m, k) => m.min(k),
    };
    if secs <= 0 {
        return None;
    }
    Some(now.saturating_add(secs.saturating_mul(super::clock::NANOS_PER_SEC)))
}

/// Checks `cas` against the current version, and `cas_required` (from the mount or the key).
fn check_cas(cas: Option<i64>, current: u64, required: bool) -> EngineResult<()> {
    match cas {
        Some(c) if c < 0 || c as u64 != current => Err(EngineError::CasMismatch),
        Some(_) => Ok(()),
        None if required => Err(EngineError::CasRequired),
        None => Ok(()),
    }
}

/// Validates custom metadata as Vault does: at most 64 keys, key length 1..=128, value length
/// 1..=512, printable characters only.
pub fn validate_custom_metadata(m: &BTreeMap<String, String>) -> EngineResult<()> {
    let mut problems = Vec::new();
    if m.len() > 64 {
        problems.push(format!(
            "payload must contain at most 64 keys, provided {}",
            m.len()
        ));
    }
    for (k, v) in m {
        let klen = k.chars().count();
        if klen == 0 || klen > 128 {
            problems.push(format!(
                "length of key {k:?} is {klen} but must be 0 < len(key) <= 128"
            ));
        }
        if k.chars().any(|c| c.is_control()) {
            problems.push(format!(
                "key {k:?} (value {v:?}) contains unprintable characters"
            ));
        }
        let vlen = v.chars().count();
        if vlen == 0 || vlen > 512 {
            problems.push(format!(
                "length of value for key {k:?} is {vlen} but must be 0 < len(value) <= 512"
            ));
        }
        if v.chars().any(|c| c.is_control()) {
            problems.push(format!(
                "value for key {k:?} contains unprintable characters"
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(EngineError::invalid(format!(
            "custom_metadata validation failed: {}",
            problems.join("; ")
        )))
    }
}

/// A key's metadata record as stored: the sealed row (to replace it conditionally) and what it holds.
pub(super) type Stored = (SealedRow, SecretRecord);

/// Runs `f` with the place of a key's record: table `secrets`, keys (mount id, path).
fn with_secret_place<T>(mount_id: i64, path: &str, f: impl FnOnce(&Place<'_>) -> T) -> T {
    let id = mount_id.to_be_bytes();
    let keys: [&[u8]; 2] = [&id, path.as_bytes()];
    f(&Place {
        table: "secrets",
        keys: &keys,
    })
}

/// A key's stored row and record, or a new record (no row yet) created at `now`.
fn stored_or_new(existing: Option<Stored>, now: Nanos) -> (Option<SealedRow>, SecretRecord) {
    match existing {
        Some((row, rec)) => (Some(row), rec),
        None => (
            None,
            SecretRecord {
                meta: SecretMeta::new(now),
                versions: Vec::new(),
            },
        ),
    }
}

/// Reads and opens a key's record.
pub(super) fn load_secret(
    tx: &dyn ReadTx,
    keyring: &Keyring,
    mount_id: i64,
    path: &str,
) -> EngineResult<Option<Stored>> {
    open_stored(keyring, mount_id, path, tx.get_secret(mount_id, path)?)
}

/// Opens a key's record read by the caller.
fn open_stored(
    keyring: &Keyring,
    mount_id: i64,
    path: &str,
    row: Option<SealedRow>,
) -> EngineResult<Option<Stored>> {
    let Some(row) = row else {
        return Ok(None);
    };
    let rec = open_secret(keyring, mount_id, path, &row)?;
    Ok(Some((row, rec)))
}

/// The mount (as the transaction sees it) and the key's stored record: one statement on PostgreSQL.
pub(super) fn mount_and_secret(
    tx: &dyn ReadTx,
    keyring: &Keyring,
    cache: &super::mounts::TableCache,
    mount_id: i64,
    path: &str,
) -> EngineResult<(Mount, Option<Stored>)> {
    let (raw, row) = tx.get_fact_and_secret(super::mounts::MOUNTS_DOC, mount_id, path)?;
    let mount = super::mounts::mount_from(raw, keyring, cache, mount_id)?;
    Ok((mount, open_stored(keyring, mount_id, path, row)?))
}

/// Checks that a key's sealed record opens where it was found, without decoding it.
fn authenticate_secret(
    keyring: &Keyring,
    mount_id: i64,
    path: &str,
    row: &SealedRow,
) -> EngineResult<()> {
    let what = || format!("metadata of {path:?} in mount {mount_id}");
    with_secret_place(mount_id, path, |place| {
        barrier::open::<serde::de::IgnoredAny>(keyring, place, row, &what).map(|_| ())
    })
}

/// Reads a key's record for a read, through the cache of opened records.
pub(super) fn read_secret(
    tx: &dyn ReadTx,
    keyring: &Keyring,
    cache: &super::record_cache::RecordCache,
    mount_id: i64,
    path: &str,
) -> EngineResult<Option<Arc<SecretRecord>>> {
    let Some(row) = tx.get_secret(mount_id, path)? else {
        return Ok(None);
    };
    open_cached(keyring, cache, mount_id, path, &row).map(Some)
}

/// The version a read asks for (`None` or 0: the current one): its number, metadata and the key's
/// custom metadata, or the answer when it is deactivated or destroyed. A missing version is
/// `NotFound`.
#[allow(clippy::type_complexity)]
fn readable_version(
    rec: &SecretRecord,
    version: Option<u64>,
    now: Nanos,
) -> EngineResult<Result<(u64, VersionMeta, Option<BTreeMap<String, String>>), VersionRead>> {
    let v = match version {
        None | Some(0) => rec.meta.current_version,
        Some(v) => v,
    };
    let vm = rec.version(v).cloned().ok_or(EngineError::NotFound)?;
    let custom_metadata = rec.meta.custom_metadata.clone();
    if vm.state(now) != VersionState::Active {
        return Ok(Err(VersionRead::Gone {
            version: vm,
            custom_metadata,
        }));
    }
    Ok(Ok((v, vm, custom_metadata)))
}

/// Opens a key record through the record cache.
fn open_cached(
    keyring: &Keyring,
    cache: &super::record_cache::RecordCache,
    mount_id: i64,
    path: &str,
    row: &SealedRow,
) -> EngineResult<Arc<SecretRecord>> {
    if let Some(rec) = cache.get(mount_id, path, row) {
        return Ok(rec);
    }
    let rec = Arc::new(open_secret(keyring, mount_id, path, row)?);
    cache.insert(mount_id, path, row, Arc::clone(&rec));
    Ok(rec)
}

/// Opens a key's sealed record found at (`mount_id`, `path`).
pub(super) fn open_secret(
    keyring: &Keyring,
    mount_id: i64,
    path: &str,
    row: &SealedRow,
) -> EngineResult<SecretRecord> {
    let what = || format!("metadata of {path:?} in mount {mount_id}");
    with_secret_place(mount_id, path, |place| {
        barrier::open(keyring, place, row, &what)
    })
}

/// Seals and stores a key's record if the stored one is still `old` (`None`: if there is none).
pub(super) fn save_secret(
    tx: &dyn WriteTx,
    keyring: &Keyring,
    mount_id: i64,
    path: &str,
    old: Option<&SealedRow>,
    rec: &SecretRecord,
) -> EngineResult<()> {
    let row = with_secret_place(mount_id, path, |place| barrier::seal(keyring, place, rec))?;
    tx.put_secret(mount_id, path, old, &row)?;
    Ok(())
}

/// Opens the data of a version the timeline says is kept: a missing row is tampering (the timeline
/// is the sealed truth of which versions exist).
pub(super) fn decrypt(
    keyring: &Keyring,
    tx: &dyn ReadTx,
    mount_id: i64,
    path: &str,
    version: u64,
) -> EngineResult<Map<String, Value>> {
    let what = || format!("version {version} of {path:?} in mount {mount_id}");
    let blob = tx.get_version(mount_id, path, version)?.ok_or_else(|| {
        tracing::error!(record = %what(), "a stored version listed by its key's metadata is missing");
        EngineError::Corrupt(format!("{} is missing", what()))
    })?;
    open_version(keyring, mount_id, path, version, &blob)
}

/// Opens a version's sealed data found at (`mount_id`, `path`, `version`).
fn open_version(
    keyring: &Keyring,
    mount_id: i64,
    path: &str,
    version: u64,
    blob: &VersionBlob,
) -> EngineResult<Map<String, Value>> {
    let what = || format!("version {version} of {path:?} in mount {mount_id}");
    let fail = || {
        tracing::error!(record = %what(), "a stored record failed authentication; not served");
        EngineError::Corrupt(what())
    };
    if let Some(e) = barrier::behind(keyring, blob.key_id) {
        return Err(e);
    }
    let plain = keyring
        .open(
            blob.key_id,
            &blob.nonce,
            &blob.ciphertext,
            &version_aad(mount_id, path, version),
        )
        .map_err(|_| fail())?;
    serde_json::from_slice(&plain).map_err(|_| fail())
}

/// Seals a version's data and stores it as version `version` of (`mount_id`, `path`), replacing a
/// stored version of that number (only a KV v1 write ever replaces one: see `kv1`).
pub(super) fn store_version(
    tx: &dyn WriteTx,
    keyring: &Keyring,
    mount_id: i64,
    path: &str,
    version: u64,
    data: &Map<String, Value>,
) -> EngineResult<()> {
    let plain = zeroize::Zeroizing::new(
        serde_json::to_vec(data).map_err(|e| EngineError::invalid(e.to_string()))?,
    );
    let (key_id, sealed) = keyring.seal(&plain, &version_aad(mount_id, path, version))?;
    tx.insert_version(
        mount_id,
        path,
        version,
        &VersionBlob {
            key_id,
            nonce: sealed.nonce,
            ciphertext: sealed.ciphertext,
        },
    )?;
    Ok(())
}

/// Adds a version to `rec` (the shared core of write and patch): seals and stores its data, prunes
/// what `max_versions` no longer keeps. The caller stores `rec`.
fn add_version(
    tx: &dyn WriteTx,
    keyring: &Keyring,
    mount: &Mount,
    path: &str,
    rec: &mut SecretRecord,
    data: &Map<String, Value>,
    now: Nanos,
) -> EngineResult<VersionMeta> {
    let meta = &mut rec.meta;
    meta.current_version += 1;
    meta.updated = now;
    let version = VersionMeta {
        version: meta.current_version,
        created: now,
        deletion_time: deletion_time(
            now,
            mount.kv.delete_version_after,
            meta.delete_version_after,
        ),
        destroyed: false,
    };
    store_version(tx, keyring, mount.id, path, version.version, data)?;
    rec.versions.push(version.clone());
    // Prune on write only (lowering max_versions takes effect at the next write, as in Vault).
    let max = effective_max_versions(meta.max_versions, mount.kv.max_versions);
    if meta.current_version - meta.oldest_version >= max {
        let to_delete = meta.current_version - max;
        tx.delete_versions_upto(mount.id, path, to_delete)?;
        meta.oldest_version = to_delete + 1;
        rec.versions.retain(|v| v.version > to_delete);
    }
    Ok(version)
}

/// Applies an RFC 7396 merge patch to custom metadata (a `null` value removes a key).
fn merge_custom(
    current: Option<BTreeMap<String, String>>,
    patch: &Map<String, Value>,
) -> EngineResult<BTreeMap<String, String>> {
    let mut out = current.unwrap_or_default();
    for (k, v) in patch {
        match v {
            Value::Null => {
                out.remove(k);
            }
            other => {
                out.insert(k.clone(), weak_string(other)?);
            }
        }
    }
    Ok(out)
}

/// Vault decodes `custom_metadata` values weakly into strings.
pub fn weak_string(v: &Value) -> EngineResult<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(if *b { "1" } else { "0" }.to_string()),
        _ => Err(EngineError::invalid(
            "custom_metadata values must be strings",
        )),
    }
}

impl Engine {
    /// The keyring, for an operation of the KV version 2 API on `mount` (a KV v1 mount has no
    /// versions or metadata: see `kv1`).
    fn kv_mount_check(&self, mount: &Mount) -> EngineResult<Arc<Keyring>> {
        let k = self.keyring()?;
        if mount.kv_version != 2 {
            return Err(EngineError::invalid(format!(
                "{:?} is a KV version 1 mount: it has no versions or metadata (`vault kv \
                 enable-versioning` upgrades it)",
                mount.path.as_str()
            )));
        }
        Ok(k)
    }

    /// Reads key metadata and its versions (one snapshot).
    pub fn read_metadata(&self, mount: &Mount, path: &SecretPath) -> EngineResult<SecretRecord> {
        self.kv_mount_check(mount)?;
        self.with_current_keys(|keyring| {
            self.store.read(|tx| {
                read_secret(tx, keyring, &self.record_cache, mount.id, path.as_str())?
                    .map(|rec| (*rec).clone())
                    .ok_or(EngineError::NotFound)
            })
        })
    }

    /// Reads one version (`None` or 0 = current). A missing key or version is `NotFound`; a deactivated
    /// or destroyed one is `Gone` with its metadata.
    pub fn read_version(
        &self,
        mount: &Mount,
        path: &SecretPath,
        version: Option<u64>,
    ) -> EngineResult<VersionRead> {
        self.kv_mount_check(mount)?;
        let now = self.clock.now();
        self.with_current_keys(|keyring| self.read_version_with(keyring, mount, path, version, now))
    }

    /// The read of a version in one statement where the backend allows it: the key record with its
    /// newest stored version, which is the one wanted unless an older one is asked for (or the
    /// newest was destroyed); then the read runs again as a transaction of two statements.
    pub(super) fn read_version_with(
        &self,
        keyring: &Keyring,
        mount: &Mount,
        path: &SecretPath,
        version: Option<u64>,
        now: Nanos,
    ) -> EngineResult<VersionRead> {
        let (row, latest) = self
            .store
            .read_one(|tx| tx.get_secret_and_latest(mount.id, path.as_str()))?
            .ok_or(EngineError::NotFound)?;
        let rec = open_cached(keyring, &self.record_cache, mount.id, path.as_str(), &row)?;
        let (v, vm, custom_metadata) = match readable_version(&rec, version, now)? {
            Ok(found) => found,
            Err(gone) => return Ok(gone),
        };
        match latest {
            Some((n, blob)) if n == v => Ok(VersionRead::Data {
                data: open_version(keyring, mount.id, path.as_str(), v, &blob)?,
                version: vm,
                custom_metadata,
            }),
            _ => self.read_version_tx(keyring, mount, path, version, now),
        }
    }

    fn read_version_tx(
        &self,
        keyring: &Keyring,
        mount: &Mount,
        path: &SecretPath,
        version: Option<u64>,
        now: Nanos,
    ) -> EngineResult<VersionRead> {
        self.store.read(|tx| {
            let rec = read_secret(tx, keyring, &self.record_cache, mount.id, path.as_str())?
                .ok_or(EngineError::NotFound)?;
            let (v, vm, custom_metadata) = match readable_version(&rec, version, now)? {
                Ok(found) => found,
                Err(gone) => return Ok(gone),
            };
            let data = decrypt(keyring, tx, mount.id, path.as_str(), v)?;
            Ok(VersionRead::Data {
                data,
                version: vm,
                custom_metadata,
            })
        })
    }

    /// Writes a new version, enforcing check-and-set (Vault's `POST data/<path>`).
    pub async fn write_secret(
        &self,
        mount: &Mount,
        path: &SecretPath,
        data: Map<String, Value>,
        cas: Option<i64>,
    ) -> EngineResult<WriteOutcome> {
        let out = self
            .put_secret(
                mount,
                path,
                PutSecret {
                    meta: None,
                    data: Some(data),
                    cas,
                    ..Default::default()
                },
            )
            .await?;
        out.version
            .map(|version| WriteOutcome {
                version,
                custom_metadata: out.meta.custom_metadata,
            })
            .ok_or_else(|| EngineError::Storage("a write produced no version".into()))
    }

    /// Changes metadata and/or writes a new version in one atomic step (OKMS creates a secret with its
    /// metadata and first version at once, and its updates change both together). The metadata change
    /// applies first, so a request that turns `cas_required` off can write without `cas` (okms-cli's
    /// test 014 relies on this).
    pub async fn put_secret(
        &self,
        mount: &Mount,
        path: &SecretPath,
        req: PutSecret,
    ) -> EngineResult<PutOutcome> {
        let keyring = self.kv_mount_check(mount)?;
        if let Some(update) = &req.meta {
            validate_meta_update(update)?;
        }
        let req = Arc::new(req);
        match self
            .put_secret_with(keyring, mount, path, Arc::clone(&req))
            .await
        {
            // The key was last written on another node, under a key this node has not loaded
            // (a rotation since the last poll): load the keyring and write again, once.
            Err(EngineError::KeyringBehind) => {
                self.reload_keyring()?;
                self.put_secret_with(self.keyring()?, mount, path, req)
                    .await
                    .map_err(super::follow::still_behind)
            }
            other => other,
        }
    }

    async fn put_secret_with(
        &self,
        keyring: Arc<Keyring>,
        mount: &Mount,
        path: &SecretPath,
        req: Arc<PutSecret>,
    ) -> EngineResult<PutOutcome> {
        let (mount_id, path, now) = (mount.id, path.clone(), self.clock.now());
        let cache = Arc::clone(&self.mount_cache);
        self.store
            .write(move |tx| {
                let (mount, existing) =
                    mount_and_secret(tx, &keyring, &cache, mount_id, path.as_str())?;
                if req.create_only && existing.is_some() {
                    return Err(EngineError::AlreadyExists);
                }
                if req.update_only && existing.is_none() {
                    return Err(EngineError::NotFound);
                }
                let (old, mut rec) = stored_or_new(existing, now);
                if let Some(update) = req.meta.clone() {
                    apply_meta_update(&mut rec.meta, update);
                }
                let version = match &req.data {
                    Some(data) => {
                        // Check-and-set does not apply to a create (OKMS `POST /v2/secret` with
                        // `casRequired: true` in its metadata creates version 1 without `cas`).
                        if !req.create_only {
                            check_cas(
                                req.cas,
                                rec.meta.current_version,
                                mount.kv.cas_required || rec.meta.cas_required,
                            )?;
                        }
                        Some(add_version(
                            tx,
                            &keyring,
                            &mount,
                            path.as_str(),
                            &mut rec,
                            data,
                            now,
                        )?)
                    }
                    None => None,
                };
                save_secret(tx, &keyring, mount_id, path.as_str(), old.as_ref(), &rec)?;
                Ok(PutOutcome {
                    meta: rec.meta,
                    version,
                })
            })
            .await
    }

    /// Applies a JSON merge patch to the current version's data and writes the result as a new version.
    pub async fn patch_secret(
        &self,
        mount: &Mount,
        path: &SecretPath,
        patch: Value,
        cas: Option<i64>,
    ) -> EngineResult<PatchOutcome> {
        let keyring = self.kv_mount_check(mount)?;
        let (mount_id, path, now) = (mount.id, path.clone(), self.clock.now());
        let cache = Arc::clone(&self.mount_cache);
        self.store
            .write(move |tx| {
                let (mount, existing) =
                    mount_and_secret(tx, &keyring, &cache, mount_id, path.as_str())?;
                let Some((old, mut rec)) = existing else {
                    return Ok(PatchOutcome::Missing);
                };
                check_cas(
                    cas,
                    rec.meta.current_version,
                    mount.kv.cas_required || rec.meta.cas_required,
                )?;
                let Some(current) = rec.version(rec.meta.current_version).cloned() else {
                    return Ok(PatchOutcome::Missing);
                };
                if current.state(now) != VersionState::Active {
                    return Ok(PatchOutcome::Gone {
                        version: current,
                        custom_metadata: rec.meta.custom_metadata,
                    });
                }
                let data = decrypt(&keyring, tx, mount_id, path.as_str(), current.version)?;
                let mut doc = Value::Object(data);
                json_patch::merge(&mut doc, &patch);
                let Value::Object(merged) = doc else {
                    return Err(EngineError::invalid(
                        "the patched data is not a JSON object",
                    ));
                };
                let version =
                    add_version(tx, &keyring, &mount, path.as_str(), &mut rec, &merged, now)?;
                save_secret(tx, &keyring, mount_id, path.as_str(), Some(&old), &rec)?;
                Ok(PatchOutcome::Written(WriteOutcome {
                    version,
                    custom_metadata: rec.meta.custom_metadata,
                }))
            })
            .await
    }

    /// Soft-deletes the latest version (`DELETE data/<path>`). A missing key, or a latest version
    /// already deleted or destroyed, is a no-op.
    pub async fn delete_latest(&self, mount: &Mount, path: &SecretPath) -> EngineResult<()> {
        let keyring = self.kv_mount_check(mount)?;
        let (mount_id, path, now) = (mount.id, path.clone(), self.clock.now());
        self.store
            .write(move |tx| {
                let Some((old, mut rec)) = load_secret(tx, &keyring, mount_id, path.as_str())?
                else {
                    return Ok(());
                };
                let current = rec.meta.current_version;
                let Some(v) = rec.versions.iter_mut().find(|v| v.version == current) else {
                    return Ok(());
                };
                if v.state(now) != VersionState::Active {
                    return Ok(());
                }
                v.deletion_time = Some(now);
                save_secret(tx, &keyring, mount_id, path.as_str(), Some(&old), &rec)
            })
            .await
    }

    /// Deletes, undeletes or destroys the listed versions. Unknown versions are skipped; a missing key
    /// is a no-op.
    pub async fn version_op(
        &self,
        mount: &Mount,
        path: &SecretPath,
        op: VersionOp,
        numbers: Vec<u64>,
    ) -> EngineResult<()> {
        let keyring = self.kv_mount_check(mount)?;
        let (mount_id, path, now) = (mount.id, path.clone(), self.clock.now());
        let cache = Arc::clone(&self.mount_cache);
        self.store
            .write(move |tx| {
                let (mount, existing) =
                    mount_and_secret(tx, &keyring, &cache, mount_id, path.as_str())?;
                let Some((old, mut rec)) = existing else {
                    return Ok(());
                };
                let key_dva = rec.meta.delete_version_after;
                let mut changed = false;
                for &n in &numbers {
                    let Some(v) = rec.versions.iter_mut().find(|v| v.version == n) else {
                        continue;
                    };
                    match op {
                        VersionOp::Delete if v.state(now) == VersionState::Active => {
                            v.deletion_time = Some(now);
                        }
                        VersionOp::Undelete if !v.destroyed => {
                            v.deletion_time =
                                deletion_time(now, mount.kv.delete_version_after, key_dva);
                        }
                        VersionOp::Destroy if !v.destroyed => {
                            v.destroyed = true;
                            tx.delete_version(mount_id, path.as_str(), n)?;
                        }
                        _ => continue,
                    }
                    changed = true;
                }
                if changed {
                    save_secret(tx, &keyring, mount_id, path.as_str(), Some(&old), &rec)?;
                }
                Ok(())
            })
            .await
    }

    /// Writes key metadata, creating it (with no versions) if missing. Returns whether `cas_required =
    /// false` was asked for while the mount mandates it (Vault answers with a warning then).
    pub async fn write_metadata(
        &self,
        mount: &Mount,
        path: &SecretPath,
        update: MetaUpdate,
    ) -> EngineResult<bool> {
        let keyring = self.kv_mount_check(mount)?;
        validate_meta_update(&update)?;
        let (mount_id, path, now) = (mount.id, path.clone(), self.clock.now());
        let cache = Arc::clone(&self.mount_cache);
        self.store
            .write(move |tx| {
                let (mount, existing) =
                    mount_and_secret(tx, &keyring, &cache, mount_id, path.as_str())?;
                let (old, mut rec) = stored_or_new(existing, now);
                apply_meta_update(&mut rec.meta, update.clone());
                save_secret(tx, &keyring, mount_id, path.as_str(), old.as_ref(), &rec)?;
                Ok(update.cas_required == Some(false) && mount.kv.cas_required)
            })
            .await
    }

    /// Merge-patches key metadata. `custom_metadata` entries set to `null` are removed. A missing key
    /// is `NotFound` (Vault answers 404 with an empty body).
    pub async fn patch_metadata(
        &self,
        mount: &Mount,
        path: &SecretPath,
        update: MetaUpdate,
        custom_patch: Option<Map<String, Value>>,
    ) -> EngineResult<()> {
        let keyring = self.kv_mount_check(mount)?;
        validate_meta_update(&update)?;
        let (mount_id, path) = (mount.id, path.clone());
        self.store
            .write(move |tx| {
                let (old, mut rec) = load_secret(tx, &keyring, mount_id, path.as_str())?
                    .ok_or(EngineError::NotFound)?;
                let mut update = update.clone();
                if let Some(p) = &custom_patch {
                    let merged = merge_custom(rec.meta.custom_metadata.clone(), p)?;
                    validate_custom_metadata(&merged)?;
                    update.custom_metadata = Some(merged);
                }
                apply_meta_update(&mut rec.meta, update);
                save_secret(tx, &keyring, mount_id, path.as_str(), Some(&old), &rec)
            })
            .await
    }

    /// Deletes a key's metadata and every version. A missing key is a no-op.
    pub async fn delete_metadata(&self, mount: &Mount, path: &SecretPath) -> EngineResult<()> {
        self.kv_mount_check(mount)?;
        let (mount_id, path) = (mount.id, path.clone());
        self.store
            .write(move |tx| {
                tx.delete_secret(mount_id, path.as_str())?;
                Ok(())
            })
            .await
    }

    /// Lists a folder's direct children (keys, and sub-folders with a trailing `/`), optionally only
    /// names after `after` and at most `limit` of them. An empty or missing folder gives no keys.
    /// The same on KV v1 and v2 mounts: both keep one record per key (see `kv1`).
    pub fn list(
        &self,
        mount: &Mount,
        folder: &FolderPath,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> EngineResult<ListPage> {
        self.keyring()?;
        let children = self
            .store
            .read(|tx| tx.list_children(mount.id, folder.as_str(), after, limit))?;
        // Every name served is authenticated: the row it was read from must open where it lies (a
        // path renamed or moved from another mount fails here). A key whose row was deleted behind
        // kvseal's back is simply absent, as after a delete: nothing sealed lists a mount's keys.
        self.with_current_keys(|keyring| {
            let mut keys = Vec::with_capacity(children.len());
            for (name, path, row) in &children {
                authenticate_secret(keyring, mount.id, path, row)?;
                keys.push(name.clone());
            }
            Ok(ListPage { keys })
        })
    }

    /// Whether a key (its metadata) exists: the create-vs-update distinction of Vault's ACLs. Only
    /// the row's presence is read: a record that would fail to open is the handler's to report.
    pub fn secret_exists(&self, mount: &Mount, path: &SecretPath) -> EngineResult<bool> {
        self.store
            .read(|tx| Ok(tx.get_secret(mount.id, path.as_str())?.is_some()))
    }
}

/// Checks a metadata change before any storage work: custom metadata as Vault validates it, and a
/// key's `delete_version_after` is never negative (only the mount's may be: "disabled").
fn validate_meta_update(update: &MetaUpdate) -> EngineResult<()> {
    if let Some(cm) = &update.custom_metadata {
        validate_custom_metadata(cm)?;
    }
    if update.delete_version_after.is_some_and(|d| d < 0) {
        return Err(EngineError::invalid(
            "delete_version_after cannot be negative",
        ));
    }
    Ok(())
}

fn apply_meta_update(meta: &mut SecretMeta, update: MetaUpdate) {
    if let Some(v) = update.max_versions {
        meta.max_versions = v;
    }
    if let Some(v) = update.cas_required {
        meta.cas_required = v;
    }
    if let Some(v) = update.delete_version_after {
        meta.delete_version_after = v;
        meta.delete_version_after_text = update.delete_version_after_text;
    }
    if let Some(v) = update.custom_metadata {
        meta.custom_metadata = if v.is_empty() { None } else { Some(v) };
    }
    // `updated_time` is not touched: it moves only when a version is added (or the key is
    // created), as in Vault, whose metadata write and patch handlers leave it alone (found by
    // tests/model_engine.rs).
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_versions_is_the_larger_or_ten() {
        assert_eq!(effective_max_versions(0, 0), 10);
        assert_eq!(effective_max_versions(3, 0), 3);
        assert_eq!(effective_max_versions(3, 5), 5);
        assert_eq!(effective_max_versions(7, 5), 7);
    }

    #[test]
    fn deletion_time_rules() {
        let s = super::super::clock::NANOS_PER_SEC;
        assert_eq!(deletion_time(0, 0, 0), None);
        assert_eq!(deletion_time(0, -1, 30), None);
        assert_eq!(deletion_time(0, 0, 30), Some(30 * s));
        assert_eq!(deletion_time(0, 60, 0), Some(60 * s));
        assert_eq!(deletion_time(0, 60, 30), Some(30 * s));
        assert_eq!(deletion_time(0, 20, 30), Some(20 * s));
    }

    #[test]
    fn cas_rules() {
        assert!(check_cas(Some(0), 0, false).is_ok());
        assert!(matches!(
            check_cas(Some(0), 1, false),
            Err(EngineError::CasMismatch)
        ));
        assert!(matches!(
            check_cas(Some(-1), 0, false),
            Err(EngineError::CasMismatch)
        ));
        assert!(matches!(
            check_cas(None, 3, true),
            Err(EngineError::CasRequired)
        ));
        assert!(check_cas(None, 3, false).is_ok());
    }

    #[test]
    fn custom_metadata_validation() {
        let ok: BTreeMap<_, _> = [("a".to_string(), "b".to_string())].into();
        assert!(validate_custom_metadata(&ok).is_ok());
        let empty_value: BTreeMap<_, _> = [("a".to_string(), String::new())].into();
        assert!(validate_custom_metadata(&empty_value).is_err());
        let long_key: BTreeMap<_, _> = [("k".repeat(129), "v".to_string())].into();
        assert!(validate_custom_metadata(&long_key).is_err());
        let many: BTreeMap<_, _> = (0..65)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        let err = validate_custom_metadata(&many).unwrap_err().to_string();
        assert!(
            err.starts_with("custom_metadata validation failed: "),
            "{err}"
        );
    }
}
