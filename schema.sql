-- kvseal storage schema, version 1.
-- Applied at start-up (embedded with include_str!) when PRAGMA user_version is 0; later versions add
-- migrations in src/storage/schema.rs keyed on user_version.
-- Secret values are never stored in plaintext: versions.ciphertext is XChaCha20-Poly1305 under a keyring
-- key (key_id) with the associated data binding (mount id, path, version).

-- Key/value facts about this store: the sealed keyring, initialisation state.
CREATE TABLE IF NOT EXISTS kvseal_meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;

-- Secret engine mounts. `path` always ends with '/' and may contain '/' and any UTF-8.
-- Ids are never reused (AUTOINCREMENT) because they are bound into every ciphertext's associated data.
CREATE TABLE IF NOT EXISTS mounts (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    path                 TEXT    NOT NULL UNIQUE,
    type                 TEXT    NOT NULL,
    kv_version           INTEGER NOT NULL,
    description          TEXT    NOT NULL DEFAULT '',
    uuid                 TEXT    NOT NULL,
    accessor             TEXT    NOT NULL,
    options              TEXT    NOT NULL DEFAULT '{}',
    default_lease_ttl    INTEGER NOT NULL DEFAULT 0,
    max_lease_ttl        INTEGER NOT NULL DEFAULT 0,
    force_no_cache       INTEGER NOT NULL DEFAULT 0,
    max_versions         INTEGER NOT NULL DEFAULT 0,
    cas_required         INTEGER NOT NULL DEFAULT 0,
    delete_version_after INTEGER NOT NULL DEFAULT 0,
    -- The duration exactly as an OKMS client wrote it ("1d"); OKMS echoes it back unchanged.
    delete_version_after_text TEXT,
    created_ns           INTEGER NOT NULL
);

-- Key-level metadata. A row can exist with no versions (metadata written first).
CREATE TABLE IF NOT EXISTS secrets (
    mount_id             INTEGER NOT NULL,
    path                 TEXT    NOT NULL,
    created_ns           INTEGER NOT NULL,
    updated_ns           INTEGER NOT NULL,
    current_version      INTEGER NOT NULL,
    oldest_version       INTEGER NOT NULL,
    max_versions         INTEGER NOT NULL,
    cas_required         INTEGER NOT NULL,
    delete_version_after INTEGER NOT NULL,
    delete_version_after_text TEXT,
    custom_metadata      TEXT,
    PRIMARY KEY (mount_id, path)
) WITHOUT ROWID;

-- One row per kept version. deletion_ns set = soft-deleted (or scheduled); destroyed = data wiped.
CREATE TABLE IF NOT EXISTS versions (
    mount_id    INTEGER NOT NULL,
    path        TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    created_ns  INTEGER NOT NULL,
    deletion_ns INTEGER,
    destroyed   INTEGER NOT NULL DEFAULT 0,
    key_id      INTEGER,
    nonce       BLOB,
    ciphertext  BLOB,
    PRIMARY KEY (mount_id, path, version)
) WITHOUT ROWID;

-- Tokens, stored only as a keyed hash (HMAC-SHA256 under the keyring's token key); never in plaintext.
-- parent_hash links a child to its parent: revoking a token revokes its whole subtree.
CREATE TABLE IF NOT EXISTS tokens (
    hash             BLOB    PRIMARY KEY,
    accessor         TEXT    NOT NULL UNIQUE,
    parent_hash      BLOB,
    policies         TEXT    NOT NULL,
    path             TEXT    NOT NULL,
    display_name     TEXT    NOT NULL,
    meta             TEXT,
    creation_ns      INTEGER NOT NULL,
    creation_ttl     INTEGER NOT NULL DEFAULT 0,
    expire_ns        INTEGER,
    explicit_max_ttl INTEGER NOT NULL DEFAULT 0,
    period           INTEGER NOT NULL DEFAULT 0,
    renewable        INTEGER NOT NULL DEFAULT 0,
    num_uses         INTEGER NOT NULL DEFAULT 0,
    orphan           INTEGER NOT NULL DEFAULT 1,
    role             TEXT,
    last_renewal_ns  INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tokens_by_parent ON tokens (parent_hash);

-- ACL policies (HCL text as written, parsed at load).
CREATE TABLE IF NOT EXISTS policies (
    name TEXT PRIMARY KEY,
    text TEXT NOT NULL
) WITHOUT ROWID;

-- Token roles (auth/token/roles/<name>), their settings as JSON.
CREATE TABLE IF NOT EXISTS token_roles (
    name   TEXT PRIMARY KEY,
    config TEXT NOT NULL
) WITHOUT ROWID;

-- Audit devices. The HMAC salt is sealed under the keyring (it is what makes the hashes in the log
-- unguessable), so the log is searchable only through sys/audit-hash.
CREATE TABLE IF NOT EXISTS audit_devices (
    name        TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    options     TEXT NOT NULL,
    salt        BLOB NOT NULL
) WITHOUT ROWID;
