-- kvseal storage schema on PostgreSQL, version 3 (2 + the cubbyhole table): the same tables and the same sealed rows as SQLite's
-- (src/storage/sqlite/schema.sql says what each holds), so that a store copies between the two
-- backends row for row (`kvseal operator migrate`, snapshots). Applied at start-up under an advisory
-- lock, so that nodes starting together on an empty database do not race.
--
-- Paths use the "C" collation: byte order, as SQLite's BINARY, which listing pages (`after`) rely on.

-- Schema version and the change generation (see postgres/mod.rs: what other nodes poll).
CREATE TABLE IF NOT EXISTS kvseal_info (
    key   TEXT   PRIMARY KEY,
    value BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS kvseal_meta (
    key   TEXT  COLLATE "C" PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE IF NOT EXISTS secrets (
    mount_id BIGINT NOT NULL,
    path     TEXT   COLLATE "C" NOT NULL,
    key_id   BIGINT NOT NULL,
    sealed   BYTEA  NOT NULL,
    PRIMARY KEY (mount_id, path)
);

CREATE TABLE IF NOT EXISTS versions (
    mount_id   BIGINT NOT NULL,
    path       TEXT   COLLATE "C" NOT NULL,
    version    BIGINT NOT NULL,
    key_id     BIGINT NOT NULL,
    nonce      BYTEA  NOT NULL,
    ciphertext BYTEA  NOT NULL,
    PRIMARY KEY (mount_id, path, version)
);

CREATE TABLE IF NOT EXISTS tokens (
    hash     BYTEA  PRIMARY KEY,
    accessor BYTEA  NOT NULL UNIQUE,
    parent   BYTEA,
    key_id   BIGINT NOT NULL,
    sealed   BYTEA  NOT NULL
);
CREATE INDEX IF NOT EXISTS tokens_by_parent ON tokens (parent);

CREATE TABLE IF NOT EXISTS cubbyhole (
    token  BYTEA  NOT NULL,
    path   TEXT   COLLATE "C" NOT NULL,
    key_id BIGINT NOT NULL,
    sealed BYTEA  NOT NULL,
    PRIMARY KEY (token, path)
);

INSERT INTO kvseal_info (key, value) VALUES ('generation', 0) ON CONFLICT (key) DO NOTHING;
