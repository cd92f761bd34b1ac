//! The rows storage keeps. Storage knows keys and opaque sealed blobs, nothing of what they hold:
//! sealing and opening is the engine's barrier (`engine::barrier`), as Vault's barrier sits above its
//! physical backends.

/// A sealed record: the keyring key id that sealed it, and nonce followed by ciphertext.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedRow {
    pub key_id: u32,
    pub blob: Vec<u8>,
}

/// A secret version's sealed data (key id, nonce, ciphertext).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionBlob {
    pub key_id: u32,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// A token's row. `hash` is the token's keyed hash, `accessor` the accessor's keyed hash and `parent`
/// the parent token's hash: the columns that find rows, all bound into the sealed entry's associated
/// data by the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    pub hash: Vec<u8>,
    pub accessor: Vec<u8>,
    pub parent: Option<Vec<u8>>,
    pub sealed: SealedRow,
}

/// A version sealed under an older key (for rewrapping).
pub struct StaleVersion {
    pub mount_id: i64,
    pub path: String,
    pub version: u64,
    pub blob: VersionBlob,
}

/// A schema-1 store's records, in clear, as the migration to the sealed schema reads them. The
/// version data itself is not here: its ciphertexts move to the new table unchanged.
#[derive(Debug, Default)]
pub struct V1Dump {
    pub mounts: Vec<V1Mount>,
    /// The next mount id (ids are never reused).
    pub next_mount_id: i64,
    pub secrets: Vec<V1Secret>,
    pub tokens: Vec<V1Token>,
    pub policies: Vec<(String, String)>,
    pub token_roles: Vec<(String, String)>,
    pub audit_devices: Vec<V1Audit>,
}

#[derive(Debug)]
pub struct V1Mount {
    pub id: i64,
    pub path: String,
    pub kind: String,
    pub kv_version: i64,
    pub description: String,
    pub uuid: String,
    pub accessor: String,
    pub options: String,
    pub default_lease_ttl: i64,
    pub max_lease_ttl: i64,
    pub force_no_cache: bool,
    pub max_versions: i64,
    pub cas_required: bool,
    pub delete_version_after: i64,
    pub delete_version_after_text: Option<String>,
    pub created_ns: i64,
}

#[derive(Debug)]
pub struct V1Secret {
    pub mount_id: i64,
    pub path: String,
    pub created_ns: i64,
    pub updated_ns: i64,
    pub current_version: i64,
    pub oldest_version: i64,
    pub max_versions: i64,
    pub cas_required: bool,
    pub delete_version_after: i64,
    pub delete_version_after_text: Option<String>,
    pub custom_metadata: Option<String>,
    pub versions: Vec<V1Version>,
}

#[derive(Debug)]
pub struct V1Version {
    pub version: i64,
    pub created_ns: i64,
    pub deletion_ns: Option<i64>,
    pub destroyed: bool,
}

#[derive(Debug)]
pub struct V1Token {
    pub hash: Vec<u8>,
    pub accessor: String,
    pub parent_hash: Option<Vec<u8>>,
    pub policies: String,
    pub path: String,
    pub display_name: String,
    pub meta: Option<String>,
    pub creation_ns: i64,
    pub creation_ttl: i64,
    pub expire_ns: Option<i64>,
    pub explicit_max_ttl: i64,
    pub period: i64,
    pub renewable: bool,
    pub num_uses: i64,
    pub orphan: bool,
    pub role: Option<String>,
    pub last_renewal_ns: Option<i64>,
}

#[derive(Debug)]
pub struct V1Audit {
    pub name: String,
    pub kind: String,
    pub description: String,
    pub options: String,
    /// Sealed under the keyring already in schema 1.
    pub salt: Vec<u8>,
}
