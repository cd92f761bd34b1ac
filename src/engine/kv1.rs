//! KV version 1 (`vault secrets enable kv` without `version: 2`, and `generic` mounts): one value
//! per path, replaced by every write and removed by a delete; no versions and no metadata on the
//! wire (Vault's passthrough backend).
//!
//! Storage: a KV v1 secret is kept exactly as a KV v2 secret with one live version, numbered 1:
//! the same sealed key record (current and oldest version 1, as Vault's upgrade leaves them) and
//! the same sealed version row. A write replaces both (version 1's row in place, the record by a
//! conditional write), a delete removes both. Why this and not a table of its own:
//! - everything that handles secret rows (backup and restore, `operator migrate`, `sys/remount`,
//!   rewrap, PostgreSQL nodes, the record cache, listing, the ACL's create-or-update existence
//!   check) works on v1 mounts unchanged;
//! - `enable-versioning` (Vault keeps each secret's data as its version 1) is only the mount
//!   table's version changing, in one write: atomic, nothing to convert, and no window where the
//!   mount answers Vault's "Upgrading from non-versioned to versioned data" 400 while it converts.
//!
//! What differs from Vault after an upgrade: version 1's `created_time` is when the value was last
//! written on the v1 mount (Vault's v1 storage keeps no time, so its upgrade stamps the upgrade).
//!
//! Replacing version 1 in place is the one place a version's data changes: rewrap replaces a
//! version's blob only while it is the one it re-sealed (`WriteTx::replace_version_blob`), so it
//! never brings back a value a v1 write replaced. A storage attacker who puts an older version-1
//! blob back gains no more than the per-secret rollback the same access gives on v2 (an older
//! record with its versions).

use std::sync::Arc;

use serde_json::{Map, Value};

use super::error::{EngineError, EngineResult};
use super::kv::{mount_and_secret, save_secret, store_version};
use super::model::{Mount, SecretMeta, SecretRecord, VersionMeta, VersionRead};
use super::path::SecretPath;
use super::Engine;
use crate::crypto::Keyring;

/// The only version number a KV v1 secret has.
const V1: u64 = 1;

/// A v1 request that reached the writer after `enable-versioning` committed: replacing or
/// removing the secret now would throw its version history away.
fn upgraded(mount: &Mount) -> EngineError {
    EngineError::invalid(format!(
        "the mount {:?} was upgraded to KV version 2 while this request waited; use the KV \
         version 2 API",
        mount.path.as_str()
    ))
}

/// The record of a v1 secret written at `now`: one live version, numbered 1.
fn v1_record(now: super::clock::Nanos) -> SecretRecord {
    SecretRecord {
        meta: SecretMeta {
            current_version: V1,
            oldest_version: V1,
            ..SecretMeta::new(now)
        },
        versions: vec![VersionMeta {
            version: V1,
            created: now,
            deletion_time: None,
            destroyed: false,
        }],
    }
}

impl Engine {
    /// The keyring, for an operation of the KV v1 API on `mount`.
    fn kv1_keyring(&self, mount: &Mount) -> EngineResult<Arc<Keyring>> {
        let k = self.keyring()?;
        if mount.kv_version != 1 {
            return Err(EngineError::invalid(format!(
                "{:?} is a KV version 2 mount",
                mount.path.as_str()
            )));
        }
        Ok(k)
    }

    /// Reads a KV v1 secret's data; `None` when there is none.
    pub fn kv1_read(
        &self,
        mount: &Mount,
        path: &SecretPath,
    ) -> EngineResult<Option<Map<String, Value>>> {
        self.kv1_keyring(mount)?;
        let now = self.clock.now();
        match self.with_current_keys(|k| self.read_version_with(k, mount, path, None, now)) {
            Ok(VersionRead::Data { data, .. }) => Ok(Some(data)),
            Err(EngineError::NotFound) => Ok(None),
            // No v1 operation deletes a version: this record was not written by a v1 write.
            Ok(VersionRead::Gone { .. }) => {
                tracing::error!(
                    mount = mount.id,
                    "a KV version 1 secret's only version is marked deleted; not served"
                );
                Err(EngineError::Corrupt(format!(
                    "KV version 1 secret {:?} in mount {}",
                    path.as_str(),
                    mount.id
                )))
            }
            Err(e) => Err(e),
        }
    }

    /// Writes a KV v1 secret, replacing whatever it held (Vault's passthrough `PUT`).
    pub async fn kv1_write(
        &self,
        mount: &Mount,
        path: &SecretPath,
        data: Map<String, Value>,
    ) -> EngineResult<()> {
        let keyring = self.kv1_keyring(mount)?;
        let data = Arc::new(data);
        match self
            .kv1_write_with(keyring, mount, path, Arc::clone(&data))
            .await
        {
            // The mount table or the old record was sealed on another node under a key this node
            // has not loaded yet: load the keyring and write again, once.
            Err(EngineError::KeyringBehind) => {
                self.reload_keyring()?;
                self.kv1_write_with(self.keyring()?, mount, path, data)
                    .await
                    .map_err(super::follow::still_behind)
            }
            other => other,
        }
    }

    async fn kv1_write_with(
        &self,
        keyring: Arc<Keyring>,
        mount: &Mount,
        path: &SecretPath,
        data: Arc<Map<String, Value>>,
    ) -> EngineResult<()> {
        let (mount_id, path, now) = (mount.id, path.clone(), self.clock.now());
        let cache = Arc::clone(&self.mount_cache);
        self.store
            .write(move |tx| {
                let path = path.as_str();
                // The mount as this transaction sees it: an upgrade committed since the request
                // was routed turns this write away.
                let (mount, existing) = mount_and_secret(tx, &keyring, &cache, mount_id, path)?;
                if mount.kv_version != 1 {
                    return Err(upgraded(&mount));
                }
                let old = match existing {
                    Some((row, rec)) => {
                        // Only version 1 exists on a v1 mount; anything above it goes with the
                        // value it replaces.
                        if rec.meta.current_version > V1 {
                            tx.delete_versions_upto(mount_id, path, rec.meta.current_version)?;
                        }
                        Some(row)
                    }
                    None => None,
                };
                store_version(tx, &keyring, mount_id, path, V1, &data)?;
                save_secret(tx, &keyring, mount_id, path, old.as_ref(), &v1_record(now))
            })
            .await
    }

    /// Removes a KV v1 secret (Vault's passthrough `DELETE`); a missing one is not an error.
    pub async fn kv1_delete(&self, mount: &Mount, path: &SecretPath) -> EngineResult<()> {
        let keyring = self.kv1_keyring(mount)?;
        let (mount_id, path) = (mount.id, path.clone());
        let cache = Arc::clone(&self.mount_cache);
        let delete = move |keyring: Arc<Keyring>| {
            let (path, cache) = (path.clone(), Arc::clone(&cache));
            self.store.write(move |tx| {
                let raw = tx.get_fact(super::mounts::MOUNTS_DOC)?;
                let mount = super::mounts::mount_from(raw, &keyring, &cache, mount_id)?;
                if mount.kv_version != 1 {
                    return Err(upgraded(&mount));
                }
                tx.delete_secret(mount_id, path.as_str())?;
                Ok(())
            })
        };
        match delete(keyring).await {
            Err(EngineError::KeyringBehind) => {
                self.reload_keyring()?;
                delete(self.keyring()?)
                    .await
                    .map_err(super::follow::still_behind)
            }
            other => other,
        }
    }
}
