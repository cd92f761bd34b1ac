//! `kvseal operator backup`, `restore` and `migrate`: tools on a configured store.

use std::io::Read;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::config::{Config, SealType, StorageType};
use crate::crypto::{decode_key_text, read_key_file, read_secret_into};
use crate::engine::backup::{self, RestoreKey, SNAPSHOT_DB_NAME};
use crate::engine::error::EngineError;
use crate::storage::{copy, create_private_dir, lock_dir, snapshot, Durability, Store};

/// The connections a tool opens to a PostgreSQL store (it reads or writes one transaction at a time).
const TOOL_CONNECTIONS: usize = 2;

/// Copies the configured store to `out` (a new SQLite database file, mode 0600, whichever the
/// backend). Safe while the server runs: the copy is one consistent read snapshot. The copy is as
/// encrypted as the store.
pub fn backup(config: &Path, out: &Path) -> Result<(), String> {
    let cfg = Config::load(config)?;
    match cfg.storage.kind {
        StorageType::Sqlite => {
            let db = cfg.storage.path.join("kvseal.db");
            if !db.exists() {
                return Err(format!("{}: no database to back up", db.display()));
            }
            snapshot::vacuum_into(&db, out).map_err(|e| e.to_string())?;
        }
        StorageType::Postgresql => {
            let store = open_store(&cfg)?;
            let shown = store.describe();
            if store.is_empty().map_err(|e| format!("{shown}: {e}"))? {
                return Err(format!(
                    "{shown}: no store to back up (the database is empty)"
                ));
            }
            store.copy_to(out).map_err(|e| format!("{shown}: {e}"))?;
        }
    }
    snapshot::verify(out).map_err(|e| e.to_string())?;
    println!("Backup written to {}", out.display());
    Ok(())
}

/// Replaces the configured store with a backup (from `operator backup`) or a snapshot archive
/// (from `GET sys/storage/raft/snapshot`), taken from either backend. The backup is checked before
/// anything changes: integrity and schema version, then with the seal key (the configured key
/// file, or with the Shamir seal the unseal keys read from `unseal_keys`, one per line): the key
/// must open the backup's root key and keyring, and an archive's database must match its
/// `SHA256SUMS.sealed`.
///
/// SQLite: the server must be stopped (the store's lock is taken first); the database file is
/// replaced. PostgreSQL: every row is replaced in one transaction, which nodes serving the database
/// see whole once it commits (they reload their state then, as after any change of another node).
pub fn restore(
    config: &Path,
    input: &Path,
    unseal_keys: Option<&mut dyn Read>,
) -> Result<(), String> {
    let cfg = Config::load(config)?;
    let key = restore_key(&cfg, unseal_keys)?;
    match cfg.storage.kind {
        StorageType::Sqlite => restore_sqlite(&cfg, input, &key),
        StorageType::Postgresql => restore_postgres(&cfg, input, &key),
    }
}

/// Writes the database inside `input` to `staged` (mode 0600) and verifies it (see [`restore`]).
/// The staging is the engine's, as the online restore (`POST sys/storage/raft/snapshot`) does it.
fn stage_verified(input: &Path, staged: &Path, key: &RestoreKey) -> Result<(), String> {
    let shown = input.display();
    let sealed_sums = backup::stage(input, staged, u64::MAX, false).map_err(|e| match e {
        EngineError::Invalid(m) => format!("{shown}: refused: {m}"),
        other => format!("{shown}: {other}"),
    })?;
    snapshot::verify(staged).map_err(|e| e.to_string())?;
    backup::verify_backup(staged, key, sealed_sums.as_deref())
        .map_err(|e| format!("{}: refused: {e}", input.display()))
}

fn restore_sqlite(cfg: &Config, input: &Path, key: &RestoreKey) -> Result<(), String> {
    let dir = cfg.storage.path.clone();
    create_private_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let _lock = lock_dir(&dir).map_err(|e| format!("{e} (stop the server before restoring)"))?;
    let staged: PathBuf = dir.join(format!("kvseal.db.restore-{}", uuid::Uuid::new_v4()));
    let result = (|| -> Result<(), String> {
        stage_verified(input, &staged, key)?;
        let db = dir.join("kvseal.db");
        for suffix in ["-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{suffix}", db.display()));
            if p.exists() {
                std::fs::remove_file(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            }
        }
        std::fs::rename(&staged, &db).map_err(|e| format!("{}: {e}", db.display()))?;
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&staged);
    }
    result?;
    println!("Restored {} into {}", input.display(), dir.display());
    Ok(())
}

/// Stages and verifies the backup in a private temporary directory, then replaces every row of the
/// PostgreSQL store with its rows in one transaction.
fn restore_postgres(cfg: &Config, input: &Path, key: &RestoreKey) -> Result<(), String> {
    let scratch = std::env::temp_dir().join(format!("kvseal-restore-{}", uuid::Uuid::new_v4()));
    create_private_dir(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let staged = scratch.join(SNAPSHOT_DB_NAME);
    let result = (|| -> Result<String, String> {
        stage_verified(input, &staged, key)?;
        if snapshot::schema_version(&staged).map_err(|e| e.to_string())? == 1 {
            return Err(format!(
                "{}: refused: a schema-1 backup restores into a SQLite store only (its records are \
                 sealed at the first unseal there); restore it into SQLite, start kvseal on it \
                 once, then copy it with `kvseal operator migrate`",
                input.display()
            ));
        }
        let store = open_store(cfg)?;
        let shown = store.describe();
        store
            .replace_from(&staged)
            .map_err(|e| format!("{shown}: {e} (nothing was changed)"))?;
        Ok(shown)
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    let shown = result?;
    println!("Restored {} into {shown}", input.display());
    println!("Nodes serving this database reload the restored state within a second.");
    Ok(())
}

/// Copies every row of the store `from_config` names into the empty store `to_config` names
/// (`vault operator migrate`), SQLite or PostgreSQL either way, with progress on standard output,
/// then verifies the copy against the source. The rows are copied sealed as they are: the target
/// is opened by the same seal key, which the operator carries over (the key file, or the unseal
/// keys); the hint printed at the end says how.
///
/// A SQLite source must not be in use (its lock refuses a running server); a PostgreSQL source may
/// keep serving, and the copy is the store as it was when the copy began (one read transaction).
pub fn migrate(from_config: &Path, to_config: &Path) -> Result<(), String> {
    let from = Config::load(from_config)?;
    let to = Config::load(to_config)?;
    if same_store(&from, &to) {
        return Err("the two configurations name the same store".into());
    }
    if from.seal.kind != to.seal.kind {
        return Err(format!(
            "the source configuration has the {} seal and the target's the {} seal: the rows are \
             copied sealed as they are, so the target must have the same seal",
            seal_name(from.seal.kind),
            seal_name(to.seal.kind)
        ));
    }
    if from.storage.kind == StorageType::Sqlite {
        // Opening a SQLite store creates it (a mistyped path must not become an empty store), and
        // opening a schema-1 one copies it aside: both are looked at first.
        let db = from.storage.path.join("kvseal.db");
        if !db.exists() {
            return Err(format!(
                "source: {}: no kvseal database here",
                from.storage.path.display()
            ));
        }
        if snapshot::schema_version(&db).map_err(|e| format!("source: {e}"))? == 1 {
            return Err(format!(
                "source: {}: a schema-1 store; start kvseal on it once (its records are sealed at \
                 the first unseal), then migrate it",
                from.storage.path.display()
            ));
        }
    }
    let source = open_store(&from).map_err(|e| format!("source: {e}"))?;
    let target = open_store(&to).map_err(|e| format!("target: {e}"))?;
    let (src, dst) = (source.describe(), target.describe());
    println!("Copying {src} into {dst}");
    let sums = copy::migrate(&source, &target, &mut |table, done, total| {
        println!("{}: {done}/{total}", table.name())
    })
    .map_err(|e| format!("copying {src} into {dst}: {e}"))?;
    let counts: Vec<String> = sums
        .iter()
        .map(|s| format!("{} {}", s.table.name(), s.rows))
        .collect();
    println!(
        "Verified: the target holds every row of the source, byte for byte ({}).",
        counts.join(", ")
    );
    for line in seal_hint(&from, &to) {
        println!("{line}");
    }
    Ok(())
}

/// Opens the store a configuration names, for a tool: SQLite takes the directory's lock (refused
/// while a server holds it), and writes with full durability whatever the configuration says.
fn open_store(cfg: &Config) -> Result<Store, String> {
    match cfg.storage.kind {
        StorageType::Sqlite => Store::open(&cfg.storage.path, Durability::Full).map_err(|e| {
            let e = e.to_string();
            if e.contains("in use") {
                format!("{e} (stop the server first: a SQLite store is copied offline)")
            } else {
                e
            }
        }),
        StorageType::Postgresql => {
            let url = cfg
                .storage
                .connection_url
                .as_deref()
                .ok_or("storage.connection_url is required with type = \"postgresql\"")?;
            Store::open_postgres(url, TOOL_CONNECTIONS).map_err(|e| e.to_string())
        }
    }
}

/// Whether two configurations name the same store (the same directory, or the same URL).
fn same_store(a: &Config, b: &Config) -> bool {
    let dir = |c: &Config| {
        std::fs::canonicalize(&c.storage.path).unwrap_or_else(|_| c.storage.path.clone())
    };
    match (a.storage.kind, b.storage.kind) {
        (StorageType::Sqlite, StorageType::Sqlite) => dir(a) == dir(b),
        (StorageType::Postgresql, StorageType::Postgresql) => {
            a.storage.connection_url == b.storage.connection_url
        }
        _ => false,
    }
}

fn seal_name(kind: SealType) -> &'static str {
    match kind {
        SealType::File => "file",
        SealType::Shamir => "shamir",
    }
}

/// What the operator does next about the seal key, which a migration does not change.
fn seal_hint(from: &Config, to: &Config) -> Vec<String> {
    let mut lines = Vec::new();
    match (&from.seal.key_file, &to.seal.key_file) {
        (Some(a), Some(b)) if a == b => lines.push(format!(
            "The seal key is unchanged: both configurations use the key file {}.",
            a.display()
        )),
        (Some(a), Some(b)) => {
            let read = |p: &Path| std::fs::read(p).ok().map(Zeroizing::new);
            lines.push(match (read(a), read(b)) {
                (Some(ka), Some(kb)) if ka == kb => format!(
                    "The seal key is unchanged: the target's key file {} holds the same key as {}.",
                    b.display(),
                    a.display()
                ),
                (_, Some(_)) => format!(
                    "Warning: the target's key file {} holds another key than {}, which sealed \
                     the copied rows: replace it with {} before starting kvseal on the target.",
                    b.display(),
                    a.display(),
                    a.display()
                ),
                _ => format!(
                    "The seal key is unchanged: copy the key file {} to {} (mode 0600) before \
                     starting kvseal on the target; a new key would open nothing.",
                    a.display(),
                    b.display()
                ),
            });
        }
        _ => lines.push(
            "The seal is unchanged: unseal the target with the source store's unseal keys.".into(),
        ),
    }
    if to.storage.kind == StorageType::Postgresql {
        lines.push(
            "Nodes on the target database see the copied store within a second (the copy moved \
             its change generation); each node needs the same seal key."
                .into(),
        );
    }
    lines
}

/// The key a backup is verified with: the configured key file (file seal), or the unseal keys
/// (Shamir seal), which must then be given.
fn restore_key(cfg: &Config, unseal_keys: Option<&mut dyn Read>) -> Result<RestoreKey, String> {
    match (cfg.seal.kind, &cfg.seal.key_file, unseal_keys) {
        (SealType::File, Some(_), Some(_)) => Err(
            "--unseal-keys-stdin is for the shamir seal; with the file seal the backup is verified \
             with the configured key file"
                .into(),
        ),
        (SealType::File, Some(path), None) => match read_key_file(path)? {
            Some(key) => Ok(RestoreKey::File(key)),
            None => Err(format!(
                "{}: the seal key file is missing; a restore verifies the backup with the seal key, \
                 so put the store's key file there first",
                path.display()
            )),
        },
        (SealType::File, None, _) => Err("seal.key_file is required with type = \"file\"".into()),
        (SealType::Shamir, _, None) => Err(
            "this store has the shamir seal: a restore verifies the backup with the unseal keys \
             before anything is replaced; give at least the threshold of them on standard input, \
             one per line (hex or base64, as `vault operator unseal` takes them), with \
             --unseal-keys-stdin"
                .into(),
        ),
        (SealType::Shamir, _, Some(r)) => read_unseal_keys(r).map(RestoreKey::Shares),
    }
}

/// The most read from standard input for unseal keys: 255 shares of 33 bytes in hex, with room.
const UNSEAL_KEYS_MAX: usize = 32 * 1024;

/// Reads unseal keys, one per line (hex or base64; blank lines and repeats skipped), into buffers wiped when
/// dropped ([`read_secret_into`]: one buffer of fixed size). A line that is not a key is named by its
/// number, never shown.
fn read_unseal_keys(r: &mut dyn Read) -> Result<Vec<Zeroizing<Vec<u8>>>, String> {
    let mut buf = Zeroizing::new(vec![0u8; UNSEAL_KEYS_MAX + 1]);
    let len = read_secret_into(r, &mut buf)
        .map_err(|e| format!("reading the unseal keys from standard input: {e}"))?;
    if len > UNSEAL_KEYS_MAX {
        return Err(format!(
            "more than {UNSEAL_KEYS_MAX} bytes on standard input: give the unseal keys only, one per line"
        ));
    }
    let mut keys = Vec::new();
    for (i, line) in buf[..len].split(|&b| b == b'\n').enumerate() {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let key = std::str::from_utf8(line)
            .ok()
            .and_then(decode_key_text)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                format!(
                    "line {} of standard input is not an unseal key in hex or base64",
                    i + 1
                )
            })?;
        // As `sys/unseal`, a key given twice counts once.
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    if keys.is_empty() {
        return Err("no unseal key on standard input (one per line, hex or base64)".into());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unseal_keys_are_read_one_per_line() {
        let too_long = "00".repeat(UNSEAL_KEYS_MAX);
        // (standard input, keys read or the error's words)
        let cases: [(&str, Result<usize, &str>); 8] = [
            ("00ff10\n", Ok(1)),
            ("  00ff10  \r\n\n\nAP8Q\n", Ok(1)), // the same key in hex and base64
            ("00ff10\n00ff11", Ok(2)),
            ("", Err("no unseal key on standard input")),
            ("\n \n", Err("no unseal key on standard input")),
            (
                "00ff10\nsecret-ish!\n",
                Err("line 2 of standard input is not"),
            ),
            ("00ff1\n", Err("line 1 of standard input is not")),
            (&too_long, Err("more than 32768 bytes on standard input")),
        ];
        for (input, want) in cases {
            let got = read_unseal_keys(&mut input.as_bytes()).map(|k| k.len());
            match (got, want) {
                (Ok(n), Ok(w)) => assert_eq!(n, w, "{input:?}"),
                (Err(e), Err(w)) => {
                    assert!(e.contains(w), "{input:?}: {e}");
                    assert!(!e.contains("secret-ish"), "a key line is never shown: {e}");
                }
                (got, want) => panic!("{input:?}: {got:?}, want {want:?}"),
            }
        }
    }
}
