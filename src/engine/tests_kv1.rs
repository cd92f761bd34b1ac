//! KV version 1 in the engine: how a v1 secret is stored (one live version, numbered 1), the
//! upgrade racing a v1 write, and a rewrap racing a v1 write. The wire behaviour is tested in
//! `vault::tests_kv1` and compat-tests/test_kv_v1.py.

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::kv::load_secret;
use super::model::{Mount, MountSpec, MountTune};
use super::path::{MountPath, SecretPath};
use super::{Engine, SealMode};
use crate::crypto::Key32;
use crate::engine::clock::Clock;
use crate::engine::error::EngineError;
use crate::storage::{Durability, Store, VersionBlob};

async fn engine(dir: &std::path::Path) -> Engine {
    let store = Store::open(dir, Durability::Normal).expect("open store");
    let engine =
        Engine::open(store, SealMode::File(Key32::random()), Clock::default()).expect("engine");
    engine
        .init(Some("root".into()), 1, 1)
        .await
        .expect("sys/init");
    engine
}

async fn v1_mount(engine: &Engine, path: &str) -> Mount {
    let path = MountPath::parse(path).expect("mount path");
    let spec = MountSpec {
        kind: "kv".into(),
        ..Default::default()
    };
    engine
        .enable_mount(path.clone(), spec)
        .await
        .expect("enable");
    engine.mount_by_path(&path).expect("the mount")
}

fn data(v: Value) -> Map<String, Value> {
    v.as_object().expect("an object").clone()
}

fn key(p: &str) -> SecretPath {
    SecretPath::parse(p).expect("secret path")
}

#[actix_web::test]
async fn a_v1_secret_is_one_live_version_numbered_1_whatever_the_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path()).await;
    let m = v1_mount(&engine, "kv1").await;
    for n in 0..3 {
        engine
            .kv1_write(&m, &key("s"), data(json!({ "n": n })))
            .await
            .expect("write");
    }
    assert_eq!(
        engine.kv1_read(&m, &key("s")).expect("read"),
        Some(data(json!({"n": 2})))
    );
    let keyring = engine.keyring().expect("keyring");
    let (rec, versions) = engine
        .store
        .read(|tx| {
            let (_, rec) = load_secret(tx, &keyring, m.id, "s")?.expect("a record");
            let stored: Vec<bool> = (1..=3)
                .map(|v| tx.get_version(m.id, "s", v).map(|b| b.is_some()))
                .collect::<Result<_, _>>()?;
            Ok::<_, EngineError>((rec, stored))
        })
        .expect("storage");
    assert_eq!((rec.meta.current_version, rec.meta.oldest_version), (1, 1));
    assert_eq!(
        rec.versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [1]
    );
    assert_eq!(versions, [true, false, false]);
    engine.kv1_delete(&m, &key("s")).await.expect("delete");
    assert_eq!(engine.kv1_read(&m, &key("s")).expect("read"), None);
    let gone = engine
        .store
        .read(|tx| Ok::<_, EngineError>((tx.get_secret(m.id, "s")?, tx.get_version(m.id, "s", 1)?)))
        .expect("storage");
    assert!(
        gone.0.is_none() && gone.1.is_none(),
        "a delete leaves nothing"
    );
}

#[actix_web::test]
async fn the_v1_and_v2_apis_refuse_each_others_mounts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path()).await;
    let v1 = v1_mount(&engine, "kv1").await;
    let v2 = engine
        .mount_by_path(&MountPath::parse("secret").expect("path"))
        .expect("secret/");
    let refused = |r: Result<(), EngineError>| matches!(r, Err(EngineError::Invalid(_)));
    assert!(refused(
        engine
            .kv1_write(&v2, &key("s"), data(json!({"a": 1})))
            .await
    ));
    assert!(refused(engine.kv1_read(&v2, &key("s")).map(|_| ())));
    assert!(refused(engine.kv1_delete(&v2, &key("s")).await));
    assert!(refused(
        engine
            .write_secret(&v1, &key("s"), data(json!({"a": 1})), None)
            .await
            .map(|_| ())
    ));
    assert!(refused(engine.read_metadata(&v1, &key("s")).map(|_| ())));
}

#[actix_web::test]
async fn a_v1_write_queued_behind_the_upgrade_is_refused_not_applied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path()).await;
    let m = v1_mount(&engine, "kv1").await;
    engine
        .kv1_write(&m, &key("s"), data(json!({"v": "before"})))
        .await
        .expect("write");
    // The upgrade is queued first; the write, routed while the mount was still v1, after it.
    engine.stall_writer(300);
    std::thread::sleep(Duration::from_millis(20));
    let upgrade = MountTune {
        options: Some([("version".to_string(), "2".to_string())].into()),
        ..Default::default()
    };
    let (tuned, written) = tokio::join!(engine.tune_mount(&m.path, upgrade), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        engine
            .kv1_write(&m, &key("s"), data(json!({"v": "late"})))
            .await
    });
    assert!(tuned.expect("tune").is_some(), "an upgrade");
    match written {
        Err(EngineError::Invalid(msg)) => assert!(msg.contains("upgraded"), "{msg}"),
        other => panic!("the late v1 write was not refused: {other:?}"),
    }
    let upgraded = engine.mount_by_path(&m.path).expect("the mount");
    let rec = engine
        .read_metadata(&upgraded, &key("s"))
        .expect("metadata");
    assert_eq!(rec.meta.current_version, 1, "the history is intact");
    match engine
        .read_version(&upgraded, &key("s"), Some(1))
        .expect("read")
    {
        super::model::VersionRead::Data { data: d, .. } => {
            assert_eq!(d, data(json!({"v": "before"})))
        }
        other => panic!("{other:?}"),
    }
}

#[actix_web::test]
async fn a_rewrap_that_read_a_replaced_v1_value_does_not_bring_it_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let engine = engine(dir.path()).await;
    let m = v1_mount(&engine, "kv1").await;
    engine
        .kv1_write(&m, &key("s"), data(json!({"v": "old"})))
        .await
        .expect("write");
    engine.rotate_keyring().await.expect("sys/rotate");
    // What a rewrap on another node read and re-sealed before the write below committed.
    let keyring = engine.keyring().expect("keyring");
    let (active, _) = keyring.active_term();
    let stale = engine
        .store
        .read(|tx| tx.stale_versions(active, 10))
        .expect("stale versions");
    assert_eq!(stale.len(), 1);
    let s = &stale[0];
    let aad = crate::crypto::version_aad(s.mount_id, &s.path, s.version);
    let plain = keyring
        .open(s.blob.key_id, &s.blob.nonce, &s.blob.ciphertext, &aad)
        .expect("open");
    let (key_id, sealed) = keyring.seal(&plain, &aad).expect("seal");
    engine
        .kv1_write(&m, &key("s"), data(json!({"v": "new"})))
        .await
        .expect("write");
    let (mount_id, path, version) = (s.mount_id, s.path.clone(), s.version);
    let old_nonce = s.blob.nonce.clone();
    engine
        .store
        .write(move |tx| {
            tx.replace_version_blob(
                mount_id,
                &path,
                version,
                &old_nonce,
                &VersionBlob {
                    key_id,
                    nonce: sealed.nonce.clone(),
                    ciphertext: sealed.ciphertext.clone(),
                },
            )?;
            Ok::<_, EngineError>(())
        })
        .await
        .expect("the rewrap's replace");
    assert_eq!(
        engine.kv1_read(&m, &key("s")).expect("read"),
        Some(data(json!({"v": "new"})))
    );
}
