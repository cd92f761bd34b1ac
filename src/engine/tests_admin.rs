//! Administrative changes whose caller gives up while the write waits in the writer's queue (the
//! request deadline, a closed connection): the write commits anyway, so memory must follow it.
//! Security review, finding 1. The real binary's concurrent storm is `tests/admin_changes.rs`.

use std::time::Duration;

use serde_json::json;

use super::path::{MountPath, SecretPath};
use super::{Engine, SealMode, SealStatus};
use crate::crypto::Key32;
use crate::engine::clock::Clock;
use crate::engine::model::VersionRead;
use crate::policy::Capabilities;
use crate::storage::{Durability, Store};

/// The writer is held this long, so that a change queued behind it is still waiting when its caller
/// gives up after [`GIVE_UP`].
const STALL_MS: u64 = 300;
const GIVE_UP: Duration = Duration::from_millis(50);

fn open(dir: &std::path::Path, key: &Key32) -> Engine {
    let store = Store::open(dir, Durability::Normal).expect("open store");
    Engine::open(store, SealMode::File(key.clone()), Clock::default()).expect("open engine")
}

async fn initialised(dir: &std::path::Path, key: &Key32) -> Engine {
    let engine = open(dir, key);
    engine
        .init(Some("root".into()), 1, 1)
        .await
        .expect("sys/init");
    engine
}

/// Runs `change` behind a stalled writer and drops it after [`GIVE_UP`], as a request deadline does.
async fn abandon<F: std::future::Future>(engine: &Engine, change: F) {
    engine.stall_writer(STALL_MS);
    std::thread::sleep(Duration::from_millis(20));
    let gave_up = tokio::time::timeout(GIVE_UP, change).await.is_err();
    assert!(gave_up, "the change finished before its caller gave up");
}

#[actix_web::test]
async fn an_abandoned_root_rotation_does_not_strand_the_next_key_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = Key32::random();
    let engine = initialised(dir.path(), &key).await;
    abandon(&engine, engine.rotate_root_key()).await;
    // The next key change, then data sealed with the keyring it leaves in memory.
    let (term, _) = engine.rotate_keyring().await.expect("sys/rotate");
    assert_eq!(term, 2);
    let secret = engine.mount_by_path(&MountPath::parse("secret").expect("path"));
    let secret = secret.expect("secret/ mount");
    let path = SecretPath::parse("after").expect("path");
    let data = json!({"v": "after the rotations"});
    let data = data.as_object().expect("object").clone();
    engine
        .write_secret(&secret, &path, data.clone(), None)
        .await
        .expect("write");
    drop(engine);

    // Restart: the key file opens the stored root key, which opens the stored keyring.
    let engine = open(dir.path(), &key);
    assert_eq!(engine.seal_status(), SealStatus::Unsealed);
    assert_eq!(engine.key_status().expect("key-status").0, 2);
    match engine.read_version(&secret, &path, None).expect("read") {
        VersionRead::Data { data: got, .. } => assert_eq!(got, data),
        other => panic!("expected data, got {other:?}"),
    }
}

#[actix_web::test]
async fn an_abandoned_policy_write_is_enforced_as_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = Key32::random();
    let engine = initialised(dir.path(), &key).await;
    let text = r#"path "secret/data/app" { capabilities = ["read"] }"#;
    abandon(&engine, engine.put_policy("app", text)).await;
    // Once the write has committed, the stored text is the enforced one.
    std::thread::sleep(Duration::from_millis(STALL_MS + 100));
    assert_eq!(
        engine.policy_text("app").expect("read policy").as_deref(),
        Some(text)
    );
    let acl = engine.acl_of(&["app".to_string()]);
    assert!(acl.allows("secret/data/app", Capabilities::READ));
}

#[actix_web::test]
async fn an_abandoned_mount_enable_is_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = Key32::random();
    let engine = initialised(dir.path(), &key).await;
    let spec = crate::engine::model::MountSpec {
        kind: "kv-v2".into(),
        ..Default::default()
    };
    let path = MountPath::parse("late").expect("path");
    abandon(&engine, engine.enable_mount(path.clone(), spec)).await;
    std::thread::sleep(Duration::from_millis(STALL_MS + 100));
    assert!(
        engine.mount_by_path(&path).is_some(),
        "the committed mount is not in the mount table"
    );
}
