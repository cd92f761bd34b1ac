-- kvseal storage schema, version 3: every record sealed (3 = 2 + the cubbyhole table).
-- Applied at start-up (embedded with include_str!) when PRAGMA user_version is 0; a version-2 store gets
-- the cubbyhole table (src/storage/sqlite/schema.rs). A version-1 store is migrated at its first unseal
-- (src/storage/sqlite/v1.rs; the keys are needed to seal its records).
--
-- Storage is untrusted. Columns in clear are only those that find rows: a secret's mount id and path
-- (ordered, paginated listing is an index scan), a token's keyed hash, its accessor's keyed hash and
-- its parent's hash. Every other byte is sealed by the engine's barrier (XChaCha20-Poly1305 under the
-- keyring key `key_id`), with associated data binding table, key columns and key id: an edited, moved or
-- swapped row fails authentication. Small administrative tables (mounts, policies, token roles, audit
-- devices) are each one sealed record in kvseal_meta, as Vault keeps `core/mounts` and `core/audit`.

-- Facts: the seal configuration, the sealed root key and keyring, the sealed administrative tables.
CREATE TABLE IF NOT EXISTS kvseal_meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;

-- Key-level metadata and the version timeline (which versions exist, their times and states), sealed.
CREATE TABLE IF NOT EXISTS secrets (
    mount_id INTEGER NOT NULL,
    path     TEXT    NOT NULL,
    key_id   INTEGER NOT NULL,
    sealed   BLOB    NOT NULL,
    PRIMARY KEY (mount_id, path)
) WITHOUT ROWID;

-- One row per kept, undestroyed version: its data, sealed with associated data (mount id, path, version).
CREATE TABLE IF NOT EXISTS versions (
    mount_id   INTEGER NOT NULL,
    path       TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    key_id     INTEGER NOT NULL,
    nonce      BLOB    NOT NULL,
    ciphertext BLOB    NOT NULL,
    PRIMARY KEY (mount_id, path, version)
) WITHOUT ROWID;

-- Tokens: found by the token's keyed hash (HMAC-SHA256 under the keyring's token key) or the accessor's;
-- `parent` links a child to its parent so that revoking a token revokes its subtree. The entry (policies,
-- TTLs, uses, display name, meta, accessor) is sealed.
CREATE TABLE IF NOT EXISTS tokens (
    hash     BLOB    PRIMARY KEY,
    accessor BLOB    NOT NULL UNIQUE,
    parent   BLOB,
    key_id   INTEGER NOT NULL,
    sealed   BLOB    NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tokens_by_parent ON tokens (parent);

-- Cubbyholes: each token's private storage (Vault's `cubbyhole/` mount, and the wrapped responses of
-- response-wrapping tokens), found by the owning token's keyed hash (`tokens.hash`) and the path in
-- it. The entry is sealed with associated data binding both, so a row moved to another token or path
-- fails authentication. Rows go with their token: revoking a token deletes its cubbyhole in the same
-- transaction; the cubbyholes of expired tokens are purged in the background.
CREATE TABLE IF NOT EXISTS cubbyhole (
    token  BLOB    NOT NULL,
    path   TEXT    NOT NULL,
    key_id INTEGER NOT NULL,
    sealed BLOB    NOT NULL,
    PRIMARY KEY (token, path)
) WITHOUT ROWID;
