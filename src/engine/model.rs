//! The engine's data model: mounts, key metadata and versions.
//!
//! One state model serves both APIs. A version is `Active`, `Deactivated` (Vault's soft delete: a
//! `deletion_time` that has passed; reversible by undelete) or `Destroyed` (data wiped; irreversible).
//! OKMS's `active`/`deactivated`/`deleted` map onto these one to one, and its `deactivateVersionAfter`
//! is Vault's `delete_version_after`, which schedules a `deletion_time` in the future: such a version
//! still reads as active until the time passes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::clock::Nanos;
use super::path::MountPath;

/// The KV engine's per-mount settings (`<mount>/config`, OKMS `secretConfig`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvConfig {
    /// 0 = unset (the effective default is 10).
    pub max_versions: u32,
    pub cas_required: bool,
    /// Seconds. 0 = unset; negative (stored as -1) disables delete-after for every key of the mount.
    pub delete_version_after: i64,
    /// The duration as the client wrote it (`"1d"`), echoed back unchanged by the OKMS API; the Vault
    /// API always renders Go's format from the seconds. `None` when it was given as a number.
    pub delete_version_after_text: Option<String>,
}

/// A secrets engine mount.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Mount {
    pub id: i64,
    pub path: MountPath,
    /// `"kv"` (`kv-v1` and `kv-v2` are stored as `kv` with the version in `options`, as Vault
    /// does) or `"generic"` (Vault's old name for KV v1, still listed under its own type).
    pub kind: String,
    /// 1 (Vault's passthrough API: see `engine::kv1`) or 2 (versioned). Raised from 1 to 2 by
    /// `vault kv enable-versioning`, never lowered.
    pub kv_version: u8,
    pub description: String,
    pub uuid: String,
    pub accessor: String,
    /// Mount options as Vault keeps them: a map of strings (`{"version":"2"}`).
    pub options: BTreeMap<String, String>,
    pub default_lease_ttl: i64,
    pub max_lease_ttl: i64,
    pub force_no_cache: bool,
    pub kv: KvConfig,
    pub created: Nanos,
}

/// What a caller asks for when enabling a mount.
#[derive(Clone, Debug, Default)]
pub struct MountSpec {
    pub kind: String,
    pub description: String,
    pub options: BTreeMap<String, String>,
    pub default_lease_ttl: i64,
    pub max_lease_ttl: i64,
    pub force_no_cache: bool,
}

/// A change to a mount's tunables; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct MountTune {
    pub description: Option<String>,
    pub default_lease_ttl: Option<i64>,
    pub max_lease_ttl: Option<i64>,
    pub force_no_cache: Option<bool>,
    pub options: Option<BTreeMap<String, String>>,
}

/// A tune that raised a mount's KV version (`from` is 0 for a mount enabled without a version),
/// which Vault answers with a warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvUpgrade {
    pub from: i64,
    pub to: i64,
}

/// A change to a mount's KV config; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct KvConfigUpdate {
    pub max_versions: Option<u32>,
    pub cas_required: Option<bool>,
    pub delete_version_after: Option<i64>,
    /// Goes with `delete_version_after`: the text to echo (OKMS), or `None`.
    pub delete_version_after_text: Option<String>,
}

/// Key-level metadata.
///
/// Stored inside the sealed key record with short names and without fields at their default: every
/// byte of it is written at every version (it cost the durable writes about 10% with full names).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SecretMeta {
    #[serde(rename = "c")]
    pub created: Nanos,
    #[serde(rename = "u")]
    pub updated: Nanos,
    #[serde(rename = "n")]
    pub current_version: u64,
    #[serde(rename = "o")]
    pub oldest_version: u64,
    #[serde(rename = "mv", default, skip_serializing_if = "is_zero_u32")]
    pub max_versions: u32,
    #[serde(rename = "cr", default, skip_serializing_if = "is_false")]
    pub cas_required: bool,
    /// Seconds, >= 0.
    #[serde(rename = "d", default, skip_serializing_if = "is_zero_i64")]
    pub delete_version_after: i64,
    #[serde(rename = "dt", default, skip_serializing_if = "Option::is_none")]
    pub delete_version_after_text: Option<String>,
    #[serde(rename = "cm", default, skip_serializing_if = "Option::is_none")]
    pub custom_metadata: Option<BTreeMap<String, String>>,
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl SecretMeta {
    pub fn new(now: Nanos) -> Self {
        Self {
            created: now,
            updated: now,
            current_version: 0,
            oldest_version: 0,
            max_versions: 0,
            cas_required: false,
            delete_version_after: 0,
            delete_version_after_text: None,
            custom_metadata: None,
        }
    }
}

/// One version's metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionMeta {
    #[serde(rename = "n")]
    pub version: u64,
    #[serde(rename = "c")]
    pub created: Nanos,
    #[serde(rename = "d", default, skip_serializing_if = "Option::is_none")]
    pub deletion_time: Option<Nanos>,
    #[serde(rename = "x", default, skip_serializing_if = "is_false")]
    pub destroyed: bool,
}

/// A version's state at a given instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionState {
    Active,
    Deactivated,
    Destroyed,
}

impl VersionMeta {
    pub fn state(&self, now: Nanos) -> VersionState {
        if self.destroyed {
            VersionState::Destroyed
        } else if self.deletion_time.is_some_and(|t| t <= now) {
            VersionState::Deactivated
        } else {
            VersionState::Active
        }
    }
}

/// Key metadata together with its version timeline (ascending): one sealed record in storage, so
/// that a version row deleted, moved or added behind kvseal's back is detected, not dropped or served.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SecretRecord {
    #[serde(rename = "m")]
    pub meta: SecretMeta,
    #[serde(rename = "v")]
    pub versions: Vec<VersionMeta>,
}

impl SecretRecord {
    pub fn version(&self, v: u64) -> Option<&VersionMeta> {
        self.versions.iter().find(|m| m.version == v)
    }
}

/// The result of reading one version.
#[derive(Debug)]
pub enum VersionRead {
    /// Data of an active version.
    Data {
        data: serde_json::Map<String, serde_json::Value>,
        version: VersionMeta,
        custom_metadata: Option<BTreeMap<String, String>>,
    },
    /// The version exists but is deactivated or destroyed: metadata only.
    Gone {
        version: VersionMeta,
        custom_metadata: Option<BTreeMap<String, String>>,
    },
}

/// The result of writing a version.
#[derive(Debug)]
pub struct WriteOutcome {
    pub version: VersionMeta,
    pub custom_metadata: Option<BTreeMap<String, String>>,
}

/// A combined metadata change and version write (OKMS create and update).
#[derive(Debug, Default)]
pub struct PutSecret {
    pub meta: Option<MetaUpdate>,
    pub data: Option<serde_json::Map<String, serde_json::Value>>,
    pub cas: Option<i64>,
    /// Fail with `AlreadyExists` when the key exists.
    pub create_only: bool,
    /// Fail with `NotFound` when the key does not exist.
    pub update_only: bool,
}

/// The key's metadata after a `PutSecret`, and the version it wrote, if any.
#[derive(Debug)]
pub struct PutOutcome {
    pub meta: SecretMeta,
    pub version: Option<VersionMeta>,
}

/// The result of a merge-patch write.
#[derive(Debug)]
pub enum PatchOutcome {
    Written(WriteOutcome),
    /// The key has no metadata or no versions: Vault answers 404 with an empty body.
    Missing,
    /// The current version is deactivated or destroyed.
    Gone {
        version: VersionMeta,
        custom_metadata: Option<BTreeMap<String, String>>,
    },
}

/// A change to key metadata (`metadata/` POST or PATCH after merging).
#[derive(Clone, Debug, Default)]
pub struct MetaUpdate {
    pub max_versions: Option<u32>,
    pub cas_required: Option<bool>,
    pub delete_version_after: Option<i64>,
    /// Goes with `delete_version_after`: the text to echo (OKMS), or `None`.
    pub delete_version_after_text: Option<String>,
    pub custom_metadata: Option<BTreeMap<String, String>>,
}

/// Which bulk version operation to apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionOp {
    Delete,
    Undelete,
    Destroy,
}

/// One page of a folder listing.
#[derive(Debug, Default)]
pub struct ListPage {
    pub keys: Vec<String>,
}
