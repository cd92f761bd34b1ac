//! Version states as the OKMS API changes them, and the flat, keyset-paginated listings it serves.
//!
//! OKMS `active`/`deactivated`/`deleted` are the engine's Active/Deactivated/Destroyed: activating
//! is Vault's undelete (which re-applies `delete_version_after` from now), deactivating is Vault's
//! soft delete, deleting is Vault's destroy (terminal: data wiped).

use super::error::{EngineError, EngineResult};
use super::kv::{decrypt, load_secret, open_secret, read_secret, save_secret};
use super::model::{Mount, SecretMeta, VersionMeta, VersionState};
use super::mounts::mount_in;
use super::path::SecretPath;
use super::Engine;

/// One entry of a flat listing: a key's path, metadata and current version (if it has one).
#[derive(Debug)]
pub struct SecretSummary {
    pub path: String,
    pub meta: SecretMeta,
    pub current: Option<VersionMeta>,
}

/// A key's metadata, one of its versions, and that version's data when it was asked for.
#[derive(Debug)]
pub struct SecretView {
    pub meta: SecretMeta,
    pub version: VersionMeta,
    pub data: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Engine {
    /// Moves a version to `target`. A destroyed version is terminal: any other target is refused.
    /// Returns the version as it is afterwards.
    pub async fn set_version_state(
        &self,
        mount: &Mount,
        path: &SecretPath,
        version: u64,
        target: VersionState,
    ) -> EngineResult<VersionMeta> {
        let keyring = self.keyring()?;
        let (mount_id, path, now) = (mount.id, path.clone(), self.clock.now());
        let cache = std::sync::Arc::clone(&self.mount_cache);
        self.store
            .write(move |tx| {
                let mount = mount_in(tx, &keyring, &cache, mount_id)?;
                let (old, mut rec) = load_secret(tx, &keyring, mount_id, path.as_str())?
                    .ok_or(EngineError::NotFound)?;
                let key_dva = rec.meta.delete_version_after;
                let v = rec
                    .versions
                    .iter_mut()
                    .find(|v| v.version == version)
                    .ok_or(EngineError::NotFound)?;
                let changed = match (v.state(now), target) {
                    (VersionState::Destroyed, VersionState::Destroyed) => false,
                    (VersionState::Destroyed, _) => {
                        return Err(EngineError::invalid(
                            "the version is deleted: its data is gone and its state cannot change",
                        ))
                    }
                    (_, VersionState::Destroyed) => {
                        v.destroyed = true;
                        tx.delete_version(mount_id, path.as_str(), version)?;
                        true
                    }
                    (VersionState::Active, VersionState::Deactivated) => {
                        v.deletion_time = Some(now);
                        true
                    }
                    (VersionState::Deactivated, VersionState::Active) => {
                        v.deletion_time =
                            super::kv::deletion_time(now, mount.kv.delete_version_after, key_dva);
                        true
                    }
                    _ => false,
                };
                let after = v.clone();
                if changed {
                    save_secret(tx, &keyring, mount_id, path.as_str(), Some(&old), &rec)?;
                }
                Ok(after)
            })
            .await
    }

    /// Every key of a mount in path order, after `after` (exclusive), at most `limit`. Keyset
    /// pagination: each page is an index range scan, and a key that exists across the whole walk is
    /// returned exactly once however the store changes between pages.
    pub fn list_secrets_flat(
        &self,
        mount: &Mount,
        after: Option<&str>,
        limit: usize,
    ) -> EngineResult<Vec<SecretSummary>> {
        let keyring = self.keyring()?;
        self.store.read(|tx| {
            let page = tx.secrets_after(mount.id, after.unwrap_or(""), limit)?;
            let mut out = Vec::with_capacity(page.len());
            for (path, row) in page {
                let rec = open_secret(&keyring, mount.id, &path, &row)?;
                let current = rec.version(rec.meta.current_version).cloned();
                out.push(SecretSummary {
                    path,
                    meta: rec.meta,
                    current,
                });
            }
            Ok(out)
        })
    }

    /// A key's metadata with one version (`None` = current) and, when asked and the version is
    /// active, its data. A missing key or version is `NotFound`.
    pub fn read_secret_view(
        &self,
        mount: &Mount,
        path: &SecretPath,
        version: Option<u64>,
        include_data: bool,
    ) -> EngineResult<SecretView> {
        let keyring = self.keyring()?;
        let now = self.clock.now();
        self.store.read(|tx| {
            let rec = read_secret(tx, &keyring, &self.record_cache, mount.id, path.as_str())?
                .ok_or(EngineError::NotFound)?;
            let n = version.unwrap_or(rec.meta.current_version);
            let v = rec.version(n).cloned().ok_or(EngineError::NotFound)?;
            let data = if include_data && v.state(now) == VersionState::Active {
                Some(decrypt(&keyring, tx, mount.id, path.as_str(), n)?)
            } else {
                None
            };
            Ok(SecretView {
                meta: rec.meta.clone(),
                version: v,
                data,
            })
        })
    }

    /// A key's versions numbered above `after`, at most `limit`, with its metadata.
    pub fn list_versions_page(
        &self,
        mount: &Mount,
        path: &SecretPath,
        after: u64,
        limit: usize,
    ) -> EngineResult<(SecretMeta, Vec<VersionMeta>)> {
        let keyring = self.keyring()?;
        self.store.read(|tx| {
            let (_, rec) =
                load_secret(tx, &keyring, mount.id, path.as_str())?.ok_or(EngineError::NotFound)?;
            let versions = rec
                .versions
                .into_iter()
                .filter(|v| v.version > after)
                .take(limit)
                .collect();
            Ok((rec.meta, versions))
        })
    }
}
