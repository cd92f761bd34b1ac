//! Mounts: the mount table, enabling, disabling and tuning, and the KV config of a mount.

use std::sync::Arc;

use rand::Rng;

use super::barrier;
use super::clock::Nanos;
use super::error::{EngineError, EngineResult};
use super::model::{KvConfig, KvConfigUpdate, KvUpgrade, Mount, MountSpec, MountTune};
use super::path::MountPath;
use super::{Engine, Memory};
use crate::crypto::Keyring;
use crate::storage::{ReadTx, WriteTx};

/// Top-level paths that belong to kvseal itself, as in Vault.
const RESERVED: [&str; 4] = ["sys/", "auth/", "cubbyhole/", "identity/"];

fn random_hex(n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
        .collect()
}

/// A new mount's record. `options` are kept as given (Vault's `sys/mounts` shows `{}` for `vault
/// secrets enable kv`, and the kv CLI takes a missing `version` for KV v1).
pub(super) fn new_mount_record(
    spec: MountSpec,
    path: MountPath,
    kv_version: u8,
    now: Nanos,
) -> Mount {
    Mount {
        id: 0,
        path,
        accessor: format!("{}_{}", spec.kind, random_hex(8)),
        kind: spec.kind,
        kv_version,
        description: spec.description,
        uuid: uuid::Uuid::new_v4().to_string(),
        options: spec.options,
        default_lease_ttl: spec.default_lease_ttl,
        max_lease_ttl: spec.max_lease_ttl,
        force_no_cache: spec.force_no_cache,
        kv: KvConfig::default(),
        created: now,
    }
}

impl MountSpec {
    /// The KV version this spec asks for: `kv` by its `options.version`, the aliases `kv-v1` and
    /// `kv-v2` by their name, `generic` (which takes no version) 1. Any other type is refused.
    pub fn kv_version(&self) -> EngineResult<u8> {
        match self.kind.as_str() {
            "kv" => kv_version_of(&self.options),
            "kv-v1" => Ok(1),
            "kv-v2" => Ok(2),
            other => {
                if self.options.contains_key("version") {
                    return Err(EngineError::invalid(format!(
                        "secrets engine {other:?} does not allow setting a version"
                    )));
                }
                if other == "generic" {
                    return Ok(1);
                }
                Err(EngineError::invalid(format!(
                    "plugin not found in the catalog: {other}"
                )))
            }
        }
    }
}

/// Reads the KV version out of mount options: absent or empty is v1, `"1"` or `"2"` as said.
fn kv_version_of(options: &std::collections::BTreeMap<String, String>) -> Result<u8, EngineError> {
    match options.get("version").map(|s| s.trim()) {
        None | Some("") | Some("1") => Ok(1),
        Some("2") => Ok(2),
        Some(other) => Err(EngineError::invalid(format!(
            "invalid KV version {other:?}: must be 1 or 2"
        ))),
    }
}

/// The name of the sealed mount table (one record, as Vault's `core/mounts`).
pub(super) const MOUNTS_DOC: &str = "mounts";

/// The mount table as stored: the mounts, and the next id (ids are never reused: they are bound
/// into every record's associated data).
#[derive(serde::Serialize, serde::Deserialize, Default)]
pub(super) struct MountTable {
    pub next_id: i64,
    pub mounts: Vec<Mount>,
    /// The last [`MOVES_KEPT`] moves (`sys/remount`), so that every node answers
    /// `sys/remount/status/<id>`. Absent from tables that never saw a move.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub moves: Vec<MountMove>,
}

/// How many moves the mount table remembers for `sys/remount/status/<id>`.
const MOVES_KEPT: usize = 32;

/// A committed move of a mount (`sys/remount`): a move is recorded in the same write as the move
/// itself, so a recorded move has succeeded.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct MountMove {
    /// The `migration_id` Vault's API answers (a UUID).
    pub id: String,
    pub source: MountPath,
    pub target: MountPath,
    pub time: Nanos,
}

impl MountTable {
    fn mount_mut(&mut self, id: i64) -> EngineResult<&mut Mount> {
        self.mounts
            .iter_mut()
            .find(|m| m.id == id)
            .ok_or(EngineError::NotFound)
    }
}

/// Reads and opens the mount table; the stored bytes come back for a conditional replace.
pub(super) fn read_table(
    tx: &dyn ReadTx,
    keyring: &Keyring,
) -> EngineResult<(Vec<u8>, MountTable)> {
    barrier::require_doc(tx, keyring, MOUNTS_DOC)
}

/// Changes the mount table with `change` and stores it; returns the mounts as committed.
fn change_table(
    tx: &dyn WriteTx,
    keyring: &Keyring,
    change: impl FnOnce(&mut MountTable) -> EngineResult<()>,
) -> EngineResult<Vec<Mount>> {
    let (old, mut table) = read_table(tx, keyring)?;
    change(&mut table)?;
    table
        .mounts
        .sort_by(|a, b| a.path.as_str().cmp(b.path.as_str()));
    barrier::write_doc(tx, keyring, MOUNTS_DOC, Some(&old), &table)?;
    Ok(table.mounts)
}

/// The last mount table opened by a write, with the bytes it was opened from: a write reads the
/// stored bytes and opens them again only when they differ (every KV write needs its mount's
/// settings as stored; opening the whole table each time cost a store with many mounts dearly).
#[derive(Default)]
pub(super) struct TableCache(std::sync::Mutex<Option<(Vec<u8>, Arc<MountTable>)>>);

/// A mount as stored now, read in the transaction (not from memory, which may be behind a change
/// committed in the same group, or on another node).
pub(super) fn mount_in(
    tx: &dyn ReadTx,
    keyring: &Keyring,
    cache: &TableCache,
    id: i64,
) -> EngineResult<Mount> {
    mount_from(tx.get_fact(MOUNTS_DOC)?, keyring, cache, id)
}

/// [`mount_in`] from the mount table's stored bytes, read by the caller.
pub(super) fn mount_from(
    raw: Option<Vec<u8>>,
    keyring: &Keyring,
    cache: &TableCache,
    id: i64,
) -> EngineResult<Mount> {
    let raw = raw.ok_or_else(|| barrier::missing_doc(MOUNTS_DOC))?;
    let find = |t: &MountTable| {
        t.mounts
            .iter()
            .find(|m| m.id == id)
            .cloned()
            .ok_or(EngineError::NotFound)
    };
    {
        let cached = cache.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((bytes, table)) = cached.as_ref() {
            if *bytes == raw {
                return find(table);
            }
        }
    }
    let table: Arc<MountTable> = Arc::new(barrier::open_doc(keyring, MOUNTS_DOC, &raw)?);
    let found = find(&table);
    *cache.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((raw, table));
    found
}

/// Replaces the mount table in memory with the committed one.
fn install_mounts(mem: &Memory, mounts: Vec<Mount>) -> EngineResult<()> {
    mem.set_mounts(mounts);
    Ok(())
}

/// A version given in mount options, read as Vault's `parseutil.ParseInt` reads it (`""` is 0).
fn option_version(v: Option<&String>) -> Result<i64, std::num::ParseIntError> {
    match v.map(String::as_str) {
        None | Some("") => Ok(0),
        Some(s) => s.parse(),
    }
}

/// Applies `tune` to `m` (the stored record), with Vault's rules for `options` (`handleTuneWrite`):
/// a `version` must be 1 or 2 and never lower than the mount's; a higher one upgrades the mount
/// (`vault kv enable-versioning` sends `{"options":{"version":"2"}}`: see `kv1` for why that is
/// only this change); any other option given empty is removed. Returns the upgrade, if any.
fn apply_tune(m: &mut Mount, tune: MountTune) -> EngineResult<Option<KvUpgrade>> {
    if let Some(d) = tune.description {
        m.description = d;
    }
    if let Some(t) = tune.default_lease_ttl {
        m.default_lease_ttl = t;
    }
    if let Some(t) = tune.max_lease_ttl {
        m.max_lease_ttl = t;
    }
    if let Some(f) = tune.force_no_cache {
        m.force_no_cache = f;
    }
    let mut upgrade = None;
    if let Some(mut options) = tune.options {
        if let Some(given) = options.get("version") {
            // A stored version kvseal wrote is always a number (or absent).
            let from = option_version(m.options.get("version")).unwrap_or(i64::from(m.kv_version));
            let to = option_version(Some(given)).map_err(|_| {
                EngineError::invalid(format!(
                    "unable to parse options: strconv.ParseInt: parsing {given:?}: invalid syntax"
                ))
            })?;
            if !(1..=2).contains(&to) {
                return Err(EngineError::invalid(format!(
                    "invalid version provided: {to}"
                )));
            }
            if from > to {
                return Err(EngineError::invalid(format!(
                    "cannot downgrade mount from version {from}"
                )));
            }
            if from < to {
                upgrade = Some(KvUpgrade { from, to });
            }
            // Kept as the number it is (Vault keeps the text given, `"02"` included).
            options.insert("version".into(), to.to_string());
            m.kv_version = m.kv_version.max(to as u8);
        }
        for (k, v) in options {
            if v.is_empty() {
                m.options.remove(&k);
            } else {
                m.options.insert(k, v);
            }
        }
    }
    Ok(upgrade)
}

impl Engine {
    /// The current mount table (cheap: an `Arc` of a snapshot).
    pub fn mounts(&self) -> Arc<Vec<Mount>> {
        self.mem
            .mounts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Finds the mount that holds `path` (longest mount path that is a prefix of it, on segment
    /// boundaries) and returns it with the rest of the path after the mount.
    pub fn resolve<'p>(&self, path: &'p str) -> Option<(Mount, &'p str)> {
        self.resolve_in(path).or_else(|| {
            // On a shared store a mount enabled on another node since the last poll is read now
            // (`vault secrets enable` through one node, then a write through another).
            self.catch_up_mounts()
                .then(|| self.resolve_in(path))
                .flatten()
        })
    }

    fn resolve_in<'p>(&self, path: &'p str) -> Option<(Mount, &'p str)> {
        let mounts = self.mounts();
        let mut best: Option<&Mount> = None;
        for m in mounts.iter() {
            let matches = path.starts_with(m.path.as_str()) || path == m.path.bare();
            if matches && best.is_none_or(|b| m.path.as_str().len() > b.path.as_str().len()) {
                best = Some(m);
            }
        }
        let m = best?.clone();
        let rest = path.get(m.path.as_str().len()..).unwrap_or("");
        Some((m, rest))
    }

    pub fn mount_by_path(&self, path: &MountPath) -> Option<Mount> {
        self.mounts().iter().find(|m| &m.path == path).cloned()
    }

    /// Enables a secrets engine. Only the KV family exists in kvseal: `kv` (v1, or v2 with
    /// `options.version` 2), the aliases `kv-v1` and `kv-v2`, and `generic` (Vault's old name for
    /// KV v1, listed under its own type).
    pub async fn enable_mount(&self, path: MountPath, mut spec: MountSpec) -> EngineResult<()> {
        let guard = self.admin_lock().await;
        self.keyring()?;
        let kv_version = spec.kv_version()?;
        // Recorded as Vault records the aliases: type `kv` with the version in its options.
        if spec.kind.starts_with("kv-") {
            spec.kind = "kv".into();
            spec.options
                .insert("version".into(), kv_version.to_string());
        }
        for reserved in RESERVED {
            if path.as_str().starts_with(reserved) {
                return Err(EngineError::invalid(format!(
                    "cannot mount under {reserved:?}: it is reserved"
                )));
            }
        }
        for m in self.mounts().iter() {
            if m.path == path {
                return Err(EngineError::invalid(format!(
                    "path is already in use at {}",
                    path.as_str()
                )));
            }
            if path.as_str().starts_with(m.path.as_str())
                || m.path.as_str().starts_with(path.as_str())
            {
                return Err(EngineError::invalid(format!(
                    "path is already in use at {}",
                    m.path.as_str()
                )));
            }
        }
        let record = new_mount_record(spec, path, kv_version, self.clock.now());
        let keyring = self.keyring()?;
        self.admin_write(
            guard,
            move |tx| {
                change_table(tx, &keyring, |table| {
                    // Checked again in the transaction: the table in memory is what was committed
                    // last, and this is what will be.
                    if table.mounts.iter().any(|m| {
                        m.path.as_str().starts_with(record.path.as_str())
                            || record.path.as_str().starts_with(m.path.as_str())
                    }) {
                        return Err(EngineError::invalid(format!(
                            "path is already in use at {}",
                            record.path.as_str()
                        )));
                    }
                    let mut record = record.clone();
                    record.id = table.next_id;
                    table.next_id += 1;
                    table.mounts.push(record);
                    Ok(())
                })
            },
            install_mounts,
        )
        .await
    }

    /// Disables a mount and deletes everything in it. A missing mount is not an error (Vault: 204).
    pub async fn disable_mount(&self, path: &MountPath) -> EngineResult<()> {
        let guard = self.admin_lock().await;
        let keyring = self.keyring()?;
        let Some(m) = self.mount_by_path(path) else {
            return Ok(());
        };
        let id = m.id;
        self.admin_write(
            guard,
            move |tx| {
                let mounts = change_table(tx, &keyring, |table| {
                    table.mounts.retain(|m| m.id != id);
                    Ok(())
                })?;
                tx.delete_mount_data(id)?;
                Ok(mounts)
            },
            install_mounts,
        )
        .await
    }

    /// Tunes a mount. Setting `options.version` to 2 upgrades a KV v1 mount (`vault kv
    /// enable-versioning`) at once and atomically, its data kept as version 1 of each secret (see
    /// `kv1`); going back from 2 to 1 is refused, as in Vault. Returns the upgrade, if any.
    pub async fn tune_mount(
        &self,
        path: &MountPath,
        tune: MountTune,
    ) -> EngineResult<Option<KvUpgrade>> {
        let guard = self.admin_lock().await;
        let keyring = self.keyring()?;
        let id = self.mount_by_path(path).ok_or(EngineError::NotFound)?.id;
        self.admin_write(
            guard,
            move |tx| {
                let mut upgrade = None;
                let mounts = change_table(tx, &keyring, |table| {
                    let m = table.mount_mut(id)?;
                    upgrade = apply_tune(m, tune.clone())?;
                    Ok(())
                })?;
                Ok((mounts, upgrade))
            },
            |mem, (mounts, upgrade)| {
                install_mounts(mem, mounts)?;
                Ok(upgrade)
            },
        )
        .await
    }

    /// Moves the mount at `from` to `to` (`sys/remount`): one conditional write of the mount table
    /// changes the mount's path and nothing else. The mount keeps its id, which every sealed record
    /// of the mount is bound to, so its data, versions and settings are all there at the new path
    /// at once. Policies naming the old path are not rewritten (as Vault). Returns the move as
    /// recorded; its id is the `migration_id` of Vault's API.
    ///
    /// Refused, with Vault's messages: a source or target under a path kvseal keeps for itself, a
    /// source that is not a mount (a path inside a mount is not one), a target that is a mount, is
    /// inside one or holds one.
    pub async fn remount(&self, from: &MountPath, to: &MountPath) -> EngineResult<MountMove> {
        for reserved in RESERVED {
            if from.as_str().starts_with(reserved) {
                return Err(EngineError::invalid(format!(
                    "cannot remount {:?}",
                    from.as_str()
                )));
            }
        }
        for reserved in RESERVED {
            if to.as_str().starts_with(reserved) {
                return Err(EngineError::invalid(format!(
                    "cannot remount to destination {}",
                    to.as_str()
                )));
            }
        }
        let guard = self.admin_lock().await;
        let keyring = self.keyring()?;
        let record = MountMove {
            id: uuid::Uuid::new_v4().to_string(),
            source: from.clone(),
            target: to.clone(),
            time: self.clock.now(),
        };
        let done = record.clone();
        // Checked in the transaction only: on a shared store the table in memory may be behind the
        // one this write replaces.
        self.admin_write(
            guard,
            move |tx| {
                change_table(tx, &keyring, |table| {
                    let (from, to) = (&record.source, &record.target);
                    if !table.mounts.iter().any(|m| &m.path == from) {
                        return Err(EngineError::invalid(format!(
                            "no matching mount at {:?}",
                            from.as_str()
                        )));
                    }
                    if let Some(taken) = table.mounts.iter().find(|m| {
                        to.as_str().starts_with(m.path.as_str())
                            || m.path.as_str().starts_with(to.as_str())
                    }) {
                        return Err(EngineError::invalid(format!(
                            "path already in use at {:?}",
                            taken.path.as_str()
                        )));
                    }
                    for m in table.mounts.iter_mut().filter(|m| &m.path == from) {
                        m.path = to.clone();
                    }
                    table.moves.push(record.clone());
                    let excess = table.moves.len().saturating_sub(MOVES_KEPT);
                    table.moves.drain(..excess);
                    Ok(())
                })
            },
            install_mounts,
        )
        .await?;
        tracing::info!(
            migration_id = %done.id,
            from = done.source.as_str(),
            to = done.target.as_str(),
            "mount moved"
        );
        Ok(done)
    }

    /// A move recorded by [`Engine::remount`] (on any node of the store), by its id.
    pub fn mount_move(&self, id: &str) -> EngineResult<Option<MountMove>> {
        let (_, table) = self.with_current_keys(|k| self.store.read(|tx| read_table(tx, k)))?;
        Ok(table.moves.into_iter().find(|m| m.id == id))
    }

    /// The KV config of a mount (`<mount>/config`).
    pub fn kv_config(&self, mount: &Mount) -> KvConfig {
        self.mounts()
            .iter()
            .find(|m| m.id == mount.id)
            .map(|m| m.kv.clone())
            .unwrap_or_else(|| mount.kv.clone())
    }

    /// Changes fields of a mount's KV config. A negative `delete_version_after` disables delete-after
    /// for the whole mount and is stored as -1 (it reads back as `"-1s"`).
    pub async fn set_kv_config(&self, mount: &Mount, update: KvConfigUpdate) -> EngineResult<()> {
        let guard = self.admin_lock().await;
        let keyring = self.keyring()?;
        let id = mount.id;
        self.admin_write(
            guard,
            move |tx| {
                change_table(tx, &keyring, |table| {
                    let m = table.mount_mut(id)?;
                    if let Some(v) = update.max_versions {
                        m.kv.max_versions = v;
                    }
                    if let Some(v) = update.cas_required {
                        m.kv.cas_required = v;
                    }
                    if let Some(v) = update.delete_version_after {
                        m.kv.delete_version_after = if v < 0 { -1 } else { v };
                        m.kv.delete_version_after_text = update.delete_version_after_text.clone();
                    }
                    Ok(())
                })
            },
            install_mounts,
        )
        .await
    }
}
