//! Engine tests of cubbyholes and wrapping tokens: isolation between tokens, entries sealed to
//! their token and path, the cubbyhole going with its token (revoked, expired), and the wrapping
//! operations each being one write.

use serde_json::{json, Map, Value};

use super::tokens::{TokenRef, TokenRequest};
use super::wrapping::{WrappedResponse, INVALID_WRAPPING_TOKEN};
use super::{Engine, Identity, SealMode};
use crate::crypto::Key32;
use crate::engine::clock::Clock;
use crate::storage::{Durability, RawRow, Store, Table};

async fn engine(dir: &std::path::Path) -> Engine {
    let store = Store::open(dir, Durability::Normal).expect("open store");
    let e = Engine::open(store, SealMode::File(Key32::random()), Clock::default()).unwrap();
    e.init(Some("root".into()), 1, 1).await.unwrap();
    e
}

async fn child(e: &Engine, parent: &Identity, ttl: Option<i64>) -> Identity {
    let req = TokenRequest {
        policies: Some(vec!["default".into()]),
        ttl,
        // What the Vault API sets for root (or sudo on the create path).
        sudo: parent.is_root(),
        ..Default::default()
    };
    let (token, _, _) = e.create_token(parent, req).await.unwrap();
    e.authenticate(token.expose()).await.unwrap()
}

fn map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

fn cubby_rows(e: &Engine) -> Vec<RawRow> {
    e.store
        .read(|tx| tx.export_rows(Table::Cubbyhole, None, 1000))
        .unwrap()
}

#[tokio::test]
async fn each_token_has_its_own_cubbyhole() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path()).await;
    let root = e.authenticate("root").await.unwrap();
    let (a, b) = (child(&e, &root, None).await, child(&e, &root, None).await);
    e.cubby_write(&a, "k", map(json!({"owner": "a"})))
        .await
        .unwrap();
    e.cubby_write(&b, "k", map(json!({"owner": "b"})))
        .await
        .unwrap();
    e.cubby_write(&a, "dir/x", map(json!({"n": 1})))
        .await
        .unwrap();
    assert_eq!(
        e.cubby_read(&a, "k").unwrap(),
        Some(map(json!({"owner": "a"})))
    );
    assert_eq!(
        e.cubby_read(&b, "k").unwrap(),
        Some(map(json!({"owner": "b"})))
    );
    assert_eq!(e.cubby_read(&b, "dir/x").unwrap(), None);
    assert_eq!(e.cubby_read(&root, "k").unwrap(), None);
    assert_eq!(e.cubby_list(&a, "").unwrap(), ["dir/", "k"]);
    assert_eq!(e.cubby_list(&b, "").unwrap(), ["k"]);
    assert!(e.cubby_list(&root, "").unwrap().is_empty());
    e.cubby_delete(&b, "k").await.unwrap();
    assert_eq!(
        e.cubby_read(&a, "k").unwrap(),
        Some(map(json!({"owner": "a"})))
    );
}

#[tokio::test]
async fn an_entry_opens_only_for_its_token_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path()).await;
    let root = e.authenticate("root").await.unwrap();
    let (a, b) = (child(&e, &root, None).await, child(&e, &root, None).await);
    e.cubby_write(&a, "k", map(json!({"v": "a's"})))
        .await
        .unwrap();
    e.cubby_write(&a, "other", map(json!({"v": "x"})))
        .await
        .unwrap();
    let Some(RawRow::Cubby { row, .. }) = cubby_rows(&e)
        .into_iter()
        .find(|r| matches!(r, RawRow::Cubby { path, .. } if path == "k"))
    else {
        panic!("no row");
    };
    // Moved to b's cubbyhole, or to another path of a's: fails authentication, never served.
    let (ha, hb) = (a.entry.hash.clone(), b.entry.hash.clone());
    let moved = row.clone();
    e.store
        .write_blocking(move |tx| {
            tx.put_cubby(&hb, "k", &moved)?;
            tx.put_cubby(&ha, "other", &moved)
        })
        .unwrap();
    assert!(e.cubby_read(&b, "k").is_err());
    assert!(e.cubby_read(&a, "other").is_err());
    assert!(
        e.cubby_list(&b, "").is_err(),
        "a list never names a row that does not open"
    );
    assert_eq!(
        e.cubby_read(&a, "k").unwrap(),
        Some(map(json!({"v": "a's"})))
    );
}

#[tokio::test]
async fn revoking_a_token_deletes_its_cubbyhole_and_its_childrens() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path()).await;
    let root = e.authenticate("root").await.unwrap();
    let parent = child(&e, &root, None).await;
    let kid = child(&e, &parent, None).await;
    let other = child(&e, &root, None).await;
    for id in [&parent, &kid, &other] {
        e.cubby_write(id, "k", map(json!({"a": "b"})))
            .await
            .unwrap();
    }
    assert_eq!(cubby_rows(&e).len(), 3);
    e.revoke_token(TokenRef::Token(parent.token.expose()), false)
        .await
        .unwrap();
    let left = cubby_rows(&e);
    assert_eq!(left.len(), 1);
    assert!(matches!(&left[0], RawRow::Cubby { token, .. } if *token == other.entry.hash));
    // A write by a token revoked meanwhile leaves nothing behind.
    assert!(e
        .cubby_write(&kid, "late", map(json!({"a": "b"})))
        .await
        .is_err());
    assert_eq!(cubby_rows(&e).len(), 1);
}

#[tokio::test]
async fn expired_tokens_cubbyholes_are_purged_and_live_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path()).await;
    let root = e.authenticate("root").await.unwrap();
    let short = child(&e, &root, Some(60)).await;
    let under_short = child(&e, &short, None).await;
    let long = child(&e, &root, Some(3600)).await;
    for id in [&short, &under_short, &long] {
        e.cubby_write(id, "k", map(json!({"a": "b"})))
            .await
            .unwrap();
    }
    assert_eq!(e.purge_cubbyholes().unwrap(), 0, "nothing expired yet");
    e.clock().advance(61);
    // Unreachable at once: the token no longer authenticates.
    assert!(e.authenticate(short.token.expose()).await.is_err());
    assert_eq!(
        e.purge_cubbyholes().unwrap(),
        2,
        "the expired token and its child"
    );
    let left = cubby_rows(&e);
    assert_eq!(left.len(), 1);
    assert!(matches!(&left[0], RawRow::Cubby { token, .. } if *token == long.entry.hash));
    assert_eq!(e.purge_cubbyholes().unwrap(), 0);
}

#[tokio::test]
async fn a_wrapping_token_unwraps_once_in_one_write() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path()).await;
    let reply = WrappedResponse {
        status: 200,
        body: r#"{"data":{"a":"b"}}"#.into(),
    };
    let info = e
        .wrap(60_000_000_000, "secret/data/x", reply.clone(), None)
        .await
        .unwrap();
    let t = info.token.expose().to_string();
    assert!(e.is_wrapping_token(&t).unwrap());
    assert!(!e.is_wrapping_token("root").unwrap());
    assert_eq!(e.wrapping_lookup(&t).unwrap(), info.meta);
    let rows = cubby_rows(&e);
    assert_eq!(rows.len(), 2, "response and wrapinfo");
    let (a, b) = tokio::join!(e.unwrap(&t), e.unwrap(&t));
    let (won, lost) = if a.is_ok() { (a, b) } else { (b, a) };
    assert_eq!(won.unwrap().body, reply.body);
    assert_eq!(lost.unwrap_err().to_string(), INVALID_WRAPPING_TOKEN);
    assert!(cubby_rows(&e).is_empty());
    assert!(e.lookup_token(TokenRef::Token(&t)).is_err());
}

#[tokio::test]
async fn a_rewrap_replaces_the_token_and_keeps_the_reply() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path()).await;
    let reply = WrappedResponse {
        status: 404,
        body: "{}".into(),
    };
    let old = e.wrap(120_000_000_000, "p", reply, None).await.unwrap();
    let new = e.rewrap(old.token.expose(), None).await.unwrap();
    assert_eq!(new.meta.creation_ttl, old.meta.creation_ttl);
    assert_eq!(new.meta.creation_path, "p");
    assert!(!e.is_wrapping_token(old.token.expose()).unwrap());
    assert_eq!(cubby_rows(&e).len(), 2);
    let capped = e
        .rewrap(new.token.expose(), Some(30_000_000_000))
        .await
        .unwrap();
    assert_eq!(capped.meta.creation_ttl, 30_000_000_000);
    let back = e.unwrap(capped.token.expose()).await.unwrap();
    assert_eq!((back.status, back.body.as_str()), (404, "{}"));
}

#[tokio::test]
async fn a_wrapping_token_used_as_a_token_is_burnt() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path()).await;
    let reply = WrappedResponse {
        status: 200,
        body: "{}".into(),
    };
    let info = e.wrap(60_000_000_000, "p", reply, None).await.unwrap();
    let id = e.authenticate(info.token.expose()).await.unwrap();
    assert_eq!(id.entry.policies, ["response-wrapping"]);
    assert!(!e
        .acl(&id)
        .allows("secret/data/x", crate::policy::Capabilities::READ));
    // Its one use is spent: the token is gone with its cubbyhole.
    assert!(e.authenticate(info.token.expose()).await.is_err());
    assert!(cubby_rows(&e).is_empty());
}

#[tokio::test]
async fn a_rewrap_reseals_cubbyhole_entries_under_the_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path()).await;
    let root = e.authenticate("root").await.unwrap();
    let a = child(&e, &root, None).await;
    e.cubby_write(&a, "k", map(json!({"v": 1}))).await.unwrap();
    let (term, _) = e.rotate_keyring().await.unwrap();
    let key_ids = |e: &Engine| -> Vec<u32> {
        cubby_rows(e)
            .into_iter()
            .map(|r| match r {
                RawRow::Cubby { row, .. } => row.key_id,
                _ => unreachable!(),
            })
            .collect()
    };
    assert_ne!(key_ids(&e), [term]);
    while e.rewrap_batch().unwrap() > 0 {}
    assert_eq!(key_ids(&e), [term]);
    assert_eq!(e.rewrap_status().unwrap().remaining, 0);
    assert_eq!(e.cubby_read(&a, "k").unwrap(), Some(map(json!({"v": 1}))));
}
