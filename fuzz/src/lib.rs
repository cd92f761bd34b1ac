//! Shared harness of the HTTP-level fuzz targets: the real actix app (both APIs) over a real engine
//! on a temporary SQLite store, called in-process with `actix_web::test` (no socket). The request
//! body decoders of both APIs and the OKMS pagination cursor are private to the crate, so the
//! targets reach them through the routes that use them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use actix_web::{test, web, App};
use kvseal::app::AppState;
use kvseal::engine::clock::Clock;
use kvseal::engine::path::MountPath;
use kvseal::engine::{Engine, SealMode};
use kvseal::storage::{Durability, Store};

pub const TOKEN: &str = "root";
pub const OKMS_ID: &str = "11111111-2222-3333-4444-555555555555";

struct Harness {
    sys: actix_rt::SystemRunner,
    state: web::Data<AppState>,
    _dir: tempfile::TempDir,
}

thread_local! {
    static H: RefCell<Option<Harness>> = const { RefCell::new(None) };
}

fn setup() -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), Durability::Normal).expect("store");
    let engine = Engine::open(
        store,
        SealMode::File(kvseal::crypto::Key32::random()),
        Clock::default(),
    )
    .expect("engine");
    let sys = actix_rt::System::new();
    sys.block_on(engine.init(Some(TOKEN.into()), 1, 1))
        .expect("init");
    let mut okms_domains = HashMap::new();
    okms_domains.insert(
        uuid::Uuid::parse_str(OKMS_ID).expect("uuid"),
        MountPath::parse("secret").expect("mount"),
    );
    let state = web::Data::new(AppState::new(Arc::new(engine), 1 << 20, okms_domains));
    let h = Harness {
        sys,
        state,
        _dir: dir,
    };
    // Something to patch, read, list and page through.
    for i in 0..25 {
        let body = format!(r#"{{"data":{{"k":"v{i}","n":{{"x":{i}}}}}}}"#);
        request(
            &h,
            "POST",
            &format!("/v1/secret/data/seed/s{i:02}"),
            &[],
            body.as_bytes(),
        );
    }
    h
}

fn request(
    h: &Harness,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let state = h.state.clone();
    h.sys.block_on(async move {
        let app = test::init_service(
            App::new()
                .app_data(state)
                .app_data(web::PayloadConfig::new(usize::MAX))
                .configure(kvseal::vault::configure)
                .configure(kvseal::okms::configure),
        )
        .await;
        let mut req = test::TestRequest::default()
            .method(actix_web::http::Method::from_bytes(method.as_bytes()).expect("method"))
            .uri(uri)
            .insert_header(("X-Vault-Token", TOKEN));
        for (k, v) in headers {
            req = req.insert_header((*k, *v));
        }
        let resp = test::call_service(&app, req.set_payload(body.to_vec()).to_request()).await;
        let status = resp.status().as_u16();
        let body = test::read_body(resp).await.to_vec();
        (status, body)
    })
}

/// Sends one request to the in-process server; returns (status, body).
pub fn call(method: &str, uri: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Vec<u8>) {
    H.with(|cell| {
        let mut cell = cell.borrow_mut();
        let h = cell.get_or_insert_with(setup);
        request(h, method, uri, headers, body)
    })
}

/// A malformed request must be refused with a 4xx, never a 5xx (which would mean the decoder let
/// bad input reach a place that fails).
pub fn assert_not_5xx(what: &str, status: u16, body: &[u8]) {
    if std::env::var_os("KVSEAL_FUZZ_DEBUG").is_some() {
        eprintln!(
            "{what} -> {status} {}",
            String::from_utf8_lossy(&body[..body.len().min(160)])
        );
    }
    assert!(
        status < 500,
        "{what}: status {status}: {}",
        String::from_utf8_lossy(body)
    );
}
