//! Version states as the OKMS API changes them, and the flat, keyset-paginated listings it serves.
//!
//! OKMS `active`/`deactivated`/`deleted` are the engine's Active/Deactivated/Destroyed: activating
//! is Vault's undelete (which re-applies `delete_version_after` from now), deactivating is Vault's
//! soft delete, deleting is Vault's destroy (terminal: data wiped).

use super::error::{EngineError, EngineResult};
use super::model::{Mount, SecretMeta, VersionMeta, VersionState};
use super::path::SecretPath;
use super::Engine;
use crate::storage::rows;

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
        self.keyring()?;
        let (mount_id, path, now) = (mount.id, path.clone(), self.clock.now());
        self.store
            .write(move |c| {
                let mount = rows::get_mount(c, mount_id)?.ok_or(EngineError::NotFound)?;
                let meta =
                    rows::get_meta(c, mount_id, path.as_str())?.ok_or(EngineError::NotFound)?;
                let find = |c| -> EngineResult<VersionMeta> {
                    rows::list_versions(c, mount_id, path.as_str())?
                        .into_iter()
                        .find(|v| v.version == version)
                        .ok_or(EngineError::NotFound)
                };
                let v = find(c)?;
                match (v.state(now), target) {
                    (VersionState::Destroyed, VersionState::Destroyed) => {}
                    (VersionState::Destroyed, _) => {
                        return Err(EngineError::invalid(
                            "the version is deleted: its data is gone and its state cannot change",
                        ))
                    }
                    (_, VersionState::Destroyed) => {
                        rows::destroy_version(c, mount_id, path.as_str(), version)?
                    }
                    (VersionState::Active, VersionState::Deactivated) => {
                        rows::set_deletion(c, mount_id, path.as_str(), version, Some(now))?
                    }
                    (VersionState::Deactivated, VersionState::Active) => {
                        let dt = super::kv::deletion_time(
                            now,
                            mount.kv.delete_version_after,
                            meta.delete_version_after,
                        );
                        rows::set_deletion(c, mount_id, path.as_str(), version, dt)?
                    }
                    _ => {}
                }
                find(c)
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
        self.keyring()?;
        self.store.read(|c| {
            let page = rows::list_metas_after(c, mount.id, after.unwrap_or(""), limit)?;
            let mut out = Vec::with_capacity(page.len());
            for (path, meta) in page {
                let current = rows::get_version_meta(c, mount.id, &path, meta.current_version)?;
                out.push(SecretSummary {
                    path,
                    meta,
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
        self.store.read(|c| {
            let meta = rows::get_meta(c, mount.id, path.as_str())?.ok_or(EngineError::NotFound)?;
            let n = version.unwrap_or(meta.current_version);
            let v = rows::get_version_meta(c, mount.id, path.as_str(), n)?
                .ok_or(EngineError::NotFound)?;
            let data = if include_data && v.state(now) == VersionState::Active {
                Some(super::kv::decrypt(&keyring, c, mount.id, path.as_str(), n)?)
            } else {
                None
            };
            Ok(SecretView {
                meta,
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
        self.keyring()?;
        self.store.read(|c| {
            let meta = rows::get_meta(c, mount.id, path.as_str())?.ok_or(EngineError::NotFound)?;
            let versions = rows::list_versions(c, mount.id, path.as_str())?
                .into_iter()
                .filter(|v| v.version > after)
                .take(limit)
                .collect();
            Ok((meta, versions))
        })
    }
}
