//! The online snapshot restore (`restore.rs`): a good archive replaces the whole store and is what
//! the engine serves at once; every bad, truncated, tampered, oversized or foreign archive is
//! refused and nothing changes; `force` with the Shamir seal installs another store's snapshot and
//! seals; a keyring the restore removes keys from seals nothing afterwards.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::error::EngineError;
use super::path::{MountPath, SecretPath};
use super::restore::{OTHER_AUTOSEAL_KEY, OTHER_UNSEAL_KEYS};
use super::{Engine, Restored, SealMode, SealStatus};
use crate::crypto::{CryptoError, Key32};
use crate::engine::clock::Clock;
use crate::engine::model::{MountSpec, VersionRead};
use crate::storage::{Durability, Store};

/// The bound the tests restore with (a database of a few tests' secrets is far below it).
const LIMIT: u64 = 64 * 1024 * 1024;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().expect("an object").clone()
}

async fn file_sealed(dir: &Path) -> Arc<Engine> {
    let store = Store::open(dir, Durability::Normal).expect("open store");
    let engine = Engine::open(store, SealMode::File(Key32::random()), Clock::default())
        .expect("open engine");
    engine.init(Some("root".into()), 1, 1).await.expect("init");
    Arc::new(engine)
}

/// A Shamir-sealed engine, initialised with one share and unsealed; the share.
async fn shamir_sealed(dir: &Path, root: &str) -> (Arc<Engine>, Vec<u8>) {
    let store = Store::open(dir, Durability::Normal).expect("open store");
    let engine = Engine::open(store, SealMode::Shamir, Clock::default()).expect("open engine");
    let out = engine.init(Some(root.into()), 1, 1).await.expect("init");
    let share = out.shares[0].to_vec();
    engine
        .unseal(Some(share.as_slice()), false)
        .expect("unseal");
    assert_eq!(engine.seal_status(), SealStatus::Unsealed);
    (Arc::new(engine), share)
}

fn secret_mount(engine: &Engine) -> super::model::Mount {
    engine
        .mount_by_path(&MountPath::parse("secret").expect("path"))
        .expect("secret/ mount")
}

async fn put(engine: &Engine, key: &str, v: &str) {
    let path = SecretPath::parse(key).expect("path");
    engine
        .write_secret(&secret_mount(engine), &path, obj(json!({ "v": v })), None)
        .await
        .expect("write");
}

/// `v` of the current version of `secret/<key>`, `None` when there is none.
fn get(engine: &Engine, key: &str) -> Option<String> {
    let path = SecretPath::parse(key).expect("path");
    match engine.read_version(&secret_mount(engine), &path, None) {
        Ok(VersionRead::Data { data, .. }) => Some(data["v"].as_str().expect("v").to_string()),
        Err(EngineError::NotFound) => None,
        other => panic!("secret/{key}: {other:?}"),
    }
}

async fn restore(engine: &Arc<Engine>, archive: &[u8], force: bool) -> Result<Restored, String> {
    restore_within(engine, archive, force, LIMIT).await
}

async fn restore_within(
    engine: &Arc<Engine>,
    archive: &[u8],
    force: bool,
    limit: u64,
) -> Result<Restored, String> {
    let upload = engine.restore_upload().expect("upload directory");
    std::fs::write(upload.archive_path(), archive).expect("write the upload");
    engine
        .restore_snapshot(upload, force, limit)
        .await
        .map_err(|e| match e {
            EngineError::Invalid(m) => m,
            other => panic!("a refusal is Invalid, not {other:?}"),
        })
}

async fn token(engine: &Engine) -> String {
    let root = engine.authenticate("root").await.expect("root token");
    let (created, _, _) = engine
        .create_token(&root, super::tokens::TokenRequest::default())
        .await
        .expect("token create");
    created.expose().to_string()
}

// ---------------------------------------------------------------- archives, tampered

fn entries(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    tar.entries()
        .expect("entries")
        .map(|e| {
            let mut e = e.expect("entry");
            let name = e.path().expect("name").to_string_lossy().into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).expect("read entry");
            (name, data)
        })
        .collect()
}

/// The archive with one compressed byte from the middle on flipped: the first such byte that
/// changes what the stream decompresses to. (Some bits of a deflate stream change nothing, e.g. the
/// padding after a stored block's header: an archive whose flip landed there is the same archive,
/// and restores rightly.)
fn damaged_midway(archive: &[u8]) -> Vec<u8> {
    let gunzip = |bytes: &[u8]| {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .ok()
            .map(|_| out)
    };
    let original = gunzip(archive);
    (archive.len() / 2..archive.len())
        .map(|at| flipped(archive.to_vec(), at))
        .find(|f| gunzip(f) != original)
        .expect("a byte whose flip changes the archive")
}

fn entry(archive: &[u8], name: &str) -> Vec<u8> {
    let found = entries(archive).into_iter().find(|(n, _)| n == name);
    found.unwrap_or_else(|| panic!("no {name}")).1
}

fn build(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_cksum();
        tar.append_data(&mut h, name, data.as_slice())
            .expect("append");
    }
    tar.into_inner().expect("tar").finish().expect("gzip")
}

/// `archive` with entry `name` replaced by `data`, or removed with `None`.
fn with_entry(archive: &[u8], name: &str, data: Option<Vec<u8>>) -> Vec<u8> {
    let mut es = entries(archive);
    match data {
        Some(d) => es
            .iter_mut()
            .filter(|(n, _)| n == name)
            .for_each(|e| e.1 = d.clone()),
        None => es.retain(|(n, _)| n != name),
    }
    build(&es)
}

/// `archive` with its database replaced and SHA256SUMS recomputed, as an attacker would.
fn with_db(archive: &[u8], db: Vec<u8>) -> Vec<u8> {
    let hex: String = Sha256::digest(&db)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let archive = with_entry(archive, "kvseal.db", Some(db));
    with_entry(
        &archive,
        "SHA256SUMS",
        Some(format!("{hex}  kvseal.db\n").into_bytes()),
    )
}

/// `db` after `sql` ran on a copy of it.
fn edit_db(db: &[u8], sql: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("edit.db");
    std::fs::write(&path, db).expect("write");
    {
        let c = rusqlite::Connection::open(&path).expect("open");
        c.pragma_update(None, "journal_mode", "DELETE")
            .expect("journal mode");
        assert!(c.execute(sql, []).expect(sql) > 0, "{sql} changed nothing");
    }
    std::fs::read(&path).expect("read")
}

fn flipped(mut bytes: Vec<u8>, at: usize) -> Vec<u8> {
    bytes[at] ^= 0x01;
    bytes
}

// ---------------------------------------------------------------- a good archive

#[actix_web::test]
async fn a_snapshot_restores_what_it_holds_and_nothing_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = file_sealed(dir.path()).await;
    put(&engine, "changed", "1").await;
    put(&engine, "deleted", "1").await;
    let early = token(&engine).await;
    let archive = engine.snapshot_archive().expect("snapshot");

    put(&engine, "changed", "2").await;
    put(&engine, "added", "1").await;
    let path = SecretPath::parse("deleted").expect("path");
    engine
        .delete_metadata(&secret_mount(&engine), &path)
        .await
        .expect("delete");
    let late = token(&engine).await;
    engine
        .put_policy("late", r#"path "secret/*" { capabilities = ["read"] }"#)
        .await
        .expect("policy");
    engine
        .enable_mount(
            MountPath::parse("late").expect("path"),
            MountSpec {
                kind: "kv".into(),
                options: [("version".to_string(), "2".to_string())].into(),
                ..Default::default()
            },
        )
        .await
        .expect("mount");

    assert_eq!(
        restore(&engine, &archive, false).await,
        Ok(Restored::Serving)
    );

    // (key, what it reads now)
    let want = [
        ("changed", Some("1")),
        ("deleted", Some("1")),
        ("added", None),
    ];
    for (key, v) in want {
        assert_eq!(get(&engine, key).as_deref(), v, "secret/{key}");
    }
    let meta = engine
        .read_metadata(
            &secret_mount(&engine),
            &SecretPath::parse("changed").expect("path"),
        )
        .expect("metadata");
    assert_eq!(
        meta.versions.len(),
        1,
        "versions written after the snapshot are gone"
    );
    // The restored store's tokens are the ones that exist, as in Vault.
    assert!(
        engine.authenticate(&early).await.is_ok(),
        "a token of the snapshot"
    );
    assert!(
        matches!(
            engine.authenticate(&late).await,
            Err(EngineError::PermissionDenied)
        ),
        "a token created after the snapshot no longer exists"
    );
    assert!(engine.authenticate("root").await.is_ok());
    assert!(engine
        .mount_by_path(&MountPath::parse("late").expect("path"))
        .is_none());
    let policies = engine.policy_names().expect("policies");
    assert!(!policies.iter().any(|p| p == "late"), "{policies:?}");
    // And the restored store takes writes.
    put(&engine, "after", "1").await;
    assert_eq!(get(&engine, "after").as_deref(), Some("1"));
}

#[actix_web::test]
async fn a_restored_store_is_what_a_restart_opens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = Key32::random();
    let store = Store::open(dir.path(), Durability::Normal).expect("open store");
    let engine = Arc::new(
        Engine::open(store, SealMode::File(key.clone()), Clock::default()).expect("engine"),
    );
    engine.init(Some("root".into()), 1, 1).await.expect("init");
    put(&engine, "k", "snapshot").await;
    let archive = engine.snapshot_archive().expect("snapshot");
    put(&engine, "k", "later").await;
    assert_eq!(
        restore(&engine, &archive, false).await,
        Ok(Restored::Serving)
    );
    drop(engine);

    let store = Store::open(dir.path(), Durability::Normal).expect("reopen store");
    let engine = Engine::open(store, SealMode::File(key), Clock::default()).expect("engine");
    assert_eq!(engine.seal_status(), SealStatus::Unsealed);
    assert_eq!(get(&engine, "k").as_deref(), Some("snapshot"));
}

// ---------------------------------------------------------------- bad archives

#[actix_web::test]
async fn a_bad_archive_is_refused_and_nothing_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = file_sealed(dir.path()).await;
    put(&engine, "app", "one").await;
    let earlier = engine.snapshot_archive().expect("snapshot");
    put(&engine, "app", "two").await;
    let weak = token(&engine).await;
    let current = engine.snapshot_archive().expect("snapshot");
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other = file_sealed(other_dir.path()).await;
    put(&other, "app", "other store").await;
    let foreign = other.snapshot_archive().expect("snapshot");

    let db = entry(&current, "kvseal.db");
    let sealed = entry(&current, "SHA256SUMS.sealed");
    let last = sealed.len() - 1;
    const INTEGRITY: &str = "failed checking integrity of snapshot: ";
    const NO_MATCH: &str =
        "failed checking integrity of snapshot: kvseal.db does not match SHA256SUMS.sealed";
    const OTHER_KEY_FILE: &str =
        "could not verify hash file: the seal key file of this server does not open";
    // (case, archive, force, the refusal's words)
    let cases: Vec<(&str, Vec<u8>, bool, &str)> = vec![
        ("empty", Vec::new(), false, "not a snapshot archive"),
        (
            "not gzip",
            b"hello world".to_vec(),
            false,
            "not a snapshot archive",
        ),
        (
            "a raw backup (a SQLite file)",
            db.clone(),
            false,
            "not a snapshot archive (a gzip tar",
        ),
        (
            "cut in half",
            current[..current.len() / 2].to_vec(),
            false,
            "truncated or damaged",
        ),
        (
            "gzip of something else",
            {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                std::io::Write::write_all(&mut gz, &[7u8; 4096]).expect("gzip");
                gz.finish().expect("gzip")
            },
            false,
            "not a snapshot archive",
        ),
        (
            "a compressed byte flipped",
            damaged_midway(&current),
            false,
            "truncated or damaged",
        ),
        (
            "database byte flipped, SHA256SUMS left",
            with_entry(&current, "kvseal.db", Some(flipped(db.clone(), 68))),
            false,
            "checksum mismatch (kvseal.db against SHA256SUMS)",
        ),
        (
            "database byte flipped, SHA256SUMS recomputed",
            with_db(&current, flipped(db.clone(), 68)),
            false,
            NO_MATCH,
        ),
        (
            "tokens zeroed with SQLite, SHA256SUMS recomputed",
            with_db(
                &current,
                edit_db(&db, "UPDATE tokens SET sealed = zeroblob(length(sealed))"),
            ),
            false,
            NO_MATCH,
        ),
        (
            "tokens zeroed, SHA256SUMS recomputed, forced",
            with_db(
                &current,
                edit_db(&db, "UPDATE tokens SET sealed = zeroblob(length(sealed))"),
            ),
            true,
            NO_MATCH,
        ),
        (
            "not a SQLite database, SHA256SUMS recomputed",
            with_db(&current, vec![0u8; 8192]),
            false,
            INTEGRITY,
        ),
        (
            "SHA256SUMS removed",
            with_entry(&current, "SHA256SUMS", None),
            false,
            "the archive has no SHA256SUMS",
        ),
        (
            "SHA256SUMS.sealed removed",
            with_entry(&current, "SHA256SUMS.sealed", None),
            false,
            "the archive has no SHA256SUMS.sealed",
        ),
        (
            "the database removed",
            with_entry(&current, "kvseal.db", None),
            false,
            "the archive has no kvseal.db",
        ),
        (
            "a file besides the three",
            {
                let mut es = entries(&current);
                es.insert(1, ("extra".to_string(), vec![0u8; 16]));
                build(&es)
            },
            false,
            "unexpected file \"extra\" in the snapshot",
        ),
        (
            "SHA256SUMS.sealed too large",
            with_entry(&current, "SHA256SUMS.sealed", Some(vec![1u8; 8193])),
            false,
            "SHA256SUMS.sealed is larger than 8192 bytes",
        ),
        (
            "SHA256SUMS.sealed bytes flipped",
            with_entry(
                &current,
                "SHA256SUMS.sealed",
                Some(flipped(sealed.clone(), last)),
            ),
            false,
            OTHER_AUTOSEAL_KEY,
        ),
        (
            "SHA256SUMS.sealed of an earlier snapshot",
            with_entry(
                &current,
                "SHA256SUMS.sealed",
                Some(entry(&earlier, "SHA256SUMS.sealed")),
            ),
            false,
            NO_MATCH,
        ),
        (
            "SHA256SUMS.sealed flipped and a key record zeroed, forced",
            with_db(
                &with_entry(
                    &current,
                    "SHA256SUMS.sealed",
                    Some(flipped(sealed.clone(), last)),
                ),
                edit_db(&db, "UPDATE secrets SET sealed = zeroblob(length(sealed))"),
            ),
            true,
            "failed checking integrity of snapshot: the backup does not authenticate",
        ),
        (
            "another store's snapshot",
            foreign.clone(),
            false,
            OTHER_KEY_FILE,
        ),
        (
            "another store's snapshot, forced",
            foreign,
            true,
            OTHER_KEY_FILE,
        ),
    ];
    for (name, archive, force, want) in &cases {
        let got = restore(&engine, archive, *force).await;
        match got {
            Err(m) => assert!(m.contains(want), "{name}: {m:?}, want {want:?}"),
            Ok(r) => panic!("{name}: restored ({r:?})"),
        }
        // Nothing changed: the current data, its versions, and a token created after the
        // earlier snapshot.
        assert_eq!(get(&engine, "app").as_deref(), Some("two"), "{name}");
        assert!(engine.authenticate(&weak).await.is_ok(), "{name}");
        assert_eq!(engine.seal_status(), SealStatus::Unsealed, "{name}");
    }
    // The upload directories are gone with their uploads.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".restore-"))
        .collect();
    assert!(left.is_empty(), "upload directories left: {left:?}");
}

#[actix_web::test]
async fn a_database_over_the_bound_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = file_sealed(dir.path()).await;
    put(&engine, "app", "one").await;
    let archive = engine.snapshot_archive().expect("snapshot");
    let size = entry(&archive, "kvseal.db").len() as u64;
    put(&engine, "app", "two").await;
    let got = restore_within(&engine, &archive, false, size - 1).await;
    assert_eq!(
        got,
        Err(format!(
            "the archive's database is larger than {} bytes, the most a restore takes",
            size - 1
        ))
    );
    assert_eq!(get(&engine, "app").as_deref(), Some("two"));
    assert_eq!(
        restore_within(&engine, &archive, false, size).await,
        Ok(Restored::Serving),
        "a database of exactly the bound"
    );
    assert_eq!(get(&engine, "app").as_deref(), Some("one"));
}

#[actix_web::test]
async fn forced_with_unusable_sealed_checksums_every_record_is_authenticated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = file_sealed(dir.path()).await;
    put(&engine, "app", "one").await;
    let archive = engine.snapshot_archive().expect("snapshot");
    put(&engine, "app", "two").await;
    let sealed = entry(&archive, "SHA256SUMS.sealed");
    let last = sealed.len() - 1;
    let bad_sums = with_entry(&archive, "SHA256SUMS.sealed", Some(flipped(sealed, last)));
    assert_eq!(
        restore(&engine, &bad_sums, false).await,
        Err(OTHER_AUTOSEAL_KEY.to_string())
    );
    assert_eq!(
        restore(&engine, &bad_sums, true).await,
        Ok(Restored::Serving)
    );
    assert_eq!(get(&engine, "app").as_deref(), Some("one"));
}

// ---------------------------------------------------------------- the Shamir seal and force

#[actix_web::test]
async fn shamir_another_stores_snapshot_is_refused_unless_forced_then_sealed() {
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    let (a, share_a) = shamir_sealed(dir_a.path(), "root-a").await;
    let (b, share_b) = shamir_sealed(dir_b.path(), "root-b").await;
    put(&a, "app", "a").await;
    put(&b, "app", "b").await;
    let from_b = b.snapshot_archive().expect("snapshot of b");
    drop(b);

    assert_eq!(
        restore(&a, &from_b, false).await,
        Err(OTHER_UNSEAL_KEYS.to_string())
    );
    assert_eq!(
        get(&a, "app").as_deref(),
        Some("a"),
        "refused: nothing changed"
    );

    assert_eq!(restore(&a, &from_b, true).await, Ok(Restored::Sealed));
    assert_eq!(a.seal_status(), SealStatus::Sealed);
    // A's own key no longer opens the store; B's does.
    assert!(a.unseal(Some(share_a.as_slice()), false).is_err());
    assert_eq!(a.seal_status(), SealStatus::Sealed);
    a.unseal(Some(share_b.as_slice()), false)
        .expect("unseal with b's key");
    assert_eq!(a.seal_status(), SealStatus::Unsealed);
    assert_eq!(get(&a, "app").as_deref(), Some("b"));
    assert!(a.authenticate("root-b").await.is_ok());
    assert!(matches!(
        a.authenticate("root-a").await,
        Err(EngineError::PermissionDenied)
    ));
}

#[actix_web::test]
async fn shamir_own_snapshot_restores_unsealed_forced_or_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (engine, _) = shamir_sealed(dir.path(), "root").await;
    put(&engine, "app", "one").await;
    let archive = engine.snapshot_archive().expect("snapshot");
    for force in [false, true] {
        put(&engine, "app", "two").await;
        assert_eq!(
            restore(&engine, &archive, force).await,
            Ok(Restored::Serving)
        );
        assert_eq!(engine.seal_status(), SealStatus::Unsealed);
        assert_eq!(get(&engine, "app").as_deref(), Some("one"), "force {force}");
    }
}

#[actix_web::test]
async fn a_file_sealed_snapshot_is_refused_by_a_shamir_server_even_forced() {
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    let (a, _) = shamir_sealed(dir_a.path(), "root").await;
    let b = file_sealed(dir_b.path()).await;
    let archive = b.snapshot_archive().expect("snapshot");
    for force in [false, true] {
        let got = restore(&a, &archive, force).await;
        assert_eq!(
            got,
            Err("failed checking integrity of snapshot: the backup is of a store with the file seal, but this server has the shamir seal".to_string()),
            "force {force}"
        );
        assert_eq!(a.seal_status(), SealStatus::Unsealed);
    }
}

// ---------------------------------------------------------------- the keyring it replaces

#[actix_web::test]
async fn a_keyring_the_restore_removes_keys_from_seals_nothing_more() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = file_sealed(dir.path()).await;
    put(&engine, "app", "one").await;
    let archive = engine.snapshot_archive().expect("snapshot");

    // Restoring the store as it is keeps the keyring usable (nothing to refuse).
    let same = engine.keyring().expect("keyring");
    assert_eq!(
        restore(&engine, &archive, false).await,
        Ok(Restored::Serving)
    );
    assert!(same.seal(b"x", b"aad").is_ok());

    // A rotation after the snapshot: the restored keyring lacks key 2.
    engine.rotate_keyring().await.expect("rotate");
    let rotated = engine.keyring().expect("keyring");
    assert_eq!(
        restore(&engine, &archive, false).await,
        Ok(Restored::Serving)
    );
    assert_eq!(rotated.seal(b"x", b"aad").err(), Some(CryptoError::Retired));
    assert_eq!(engine.key_status().expect("key status").0, 1);
    put(&engine, "app", "after").await;
    assert_eq!(get(&engine, "app").as_deref(), Some("after"));
}
