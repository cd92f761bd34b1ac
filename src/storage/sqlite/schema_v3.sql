-- Version 3 = version 2 + the cubbyhole table (its comment is in schema.sql, which has it too).
CREATE TABLE IF NOT EXISTS cubbyhole (
    token  BLOB    NOT NULL,
    path   TEXT    NOT NULL,
    key_id INTEGER NOT NULL,
    sealed BLOB    NOT NULL,
    PRIMARY KEY (token, path)
) WITHOUT ROWID;
