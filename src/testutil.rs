//! Test support: the real app over the real engine, called in-process.

use std::sync::Arc;

use actix_web::http::{Method, StatusCode};
use actix_web::{test, web, App};
use serde_json::Value;

use crate::app::AppState;
use crate::engine::path::MountPath;

/// The OKMS domain the harness serves (backed by `secret/`).
pub const OKMS_ID: uuid::Uuid = uuid::uuid!("2b7c4bd5-0e1c-4f4f-9a7a-4e8f4d4c2a11");
use crate::crypto::Key32;
use crate::engine::clock::Clock;
use crate::engine::{Engine, SealMode};
use crate::storage::{Durability, Store};

/// The real engine on SQLite in a temp directory and the whole app (both APIs), initialised with the
/// root token `root`, and the OKMS domain [`OKMS_ID`] backed by `secret/`.
pub struct Harness {
    pub engine: Arc<Engine>,
    pub dir: std::path::PathBuf,
    pub max: usize,
    /// Overrides the request deadline (tests of the 503 path).
    pub timeout: Option<std::time::Duration>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub struct Resp {
    pub status: StatusCode,
    pub content_type: String,
    pub text: String,
    pub headers: actix_web::http::header::HeaderMap,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }
}

pub async fn harness() -> Harness {
    let dir = std::env::temp_dir().join(format!("kvseal-test-{}", uuid::Uuid::new_v4()));
    let store = Store::open(&dir, Durability::Normal).unwrap();
    let engine =
        Arc::new(Engine::open(store, SealMode::File(Key32::random()), Clock::default()).unwrap());
    engine.init(Some("root".into()), 1, 1).await.unwrap();
    Harness {
        engine,
        dir,
        max: 1024 * 1024,
        timeout: None,
    }
}

/// An uninitialised server with the Shamir seal.
pub fn harness_shamir() -> Harness {
    let dir = std::env::temp_dir().join(format!("kvseal-test-{}", uuid::Uuid::new_v4()));
    let store = Store::open(&dir, Durability::Normal).unwrap();
    let engine = Arc::new(Engine::open(store, SealMode::Shamir, Clock::default()).unwrap());
    Harness {
        engine,
        dir,
        max: 1024 * 1024,
        timeout: None,
    }
}

impl Harness {
    /// Restarts the engine on the same files (the old one is dropped first).
    pub fn reopen(&mut self, mode: SealMode) {
        let placeholder = Store::open(&self.dir.join("scratch"), Durability::Normal).unwrap();
        let old = std::mem::replace(
            &mut self.engine,
            Arc::new(Engine::open(placeholder, SealMode::Shamir, Clock::default()).unwrap()),
        );
        drop(old);
        let store = Store::open(&self.dir, Durability::Normal).unwrap();
        self.engine = Arc::new(Engine::open(store, mode, Clock::default()).unwrap());
    }

    /// A new token whose only policy (besides `default`) is `policy`, stored as `name`.
    pub async fn token_with_policy(&self, name: &str, policy: &str) -> String {
        self.token_with_policy_as("root", name, policy).await
    }

    /// The same, written and issued with the token `issuer` (a Shamir store's root token is not
    /// `root`).
    pub async fn token_with_policy_as(&self, issuer: &str, name: &str, policy: &str) -> String {
        let r = self
            .call_as(
                issuer,
                "PUT",
                &format!("/v1/sys/policies/acl/{name}"),
                Some(serde_json::json!({ "policy": policy })),
            )
            .await;
        assert_eq!(r.status, 204, "{}", r.text);
        self.token_as(issuer, &[name]).await
    }

    /// A new token with `policies` (and `default`), issued with the token `issuer`.
    pub async fn token_as(&self, issuer: &str, policies: &[&str]) -> String {
        let r = self
            .call_as(
                issuer,
                "POST",
                "/v1/auth/token/create",
                Some(serde_json::json!({ "policies": policies })),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()["auth"]["client_token"]
            .as_str()
            .expect("a client token")
            .to_string()
    }

    /// A request with a given token.
    pub async fn call_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Resp {
        let b = body.map(|b| b.to_string());
        let mut headers = vec![("X-Vault-Token", token)];
        if method == "PATCH" {
            headers.push(("Content-Type", "application/merge-patch+json"));
        }
        self.call_with(method, path, b.as_deref(), &headers).await
    }

    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let app = test::init_service(
            App::new()
                .app_data(web::Data::new({
                    let mut state = AppState::new(
                        self.engine.clone(),
                        self.max,
                        [(OKMS_ID, MountPath::parse("secret").unwrap())].into(),
                    );
                    if let Some(t) = self.timeout {
                        state.request_timeout = t;
                    }
                    state
                }))
                .configure(crate::vault::configure)
                .configure(crate::okms::configure),
        )
        .await;
        let mut req = test::TestRequest::default()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(path);
        for (k, v) in headers {
            req = req.insert_header((*k, *v));
        }
        if let Some(b) = body {
            req = req.set_payload(b.to_string());
        }
        let resp = test::call_service(&app, req.to_request()).await;
        let status = resp.status();
        let headers = resp.headers().clone();
        let content_type = resp
            .headers()
            .get("Content-Type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = test::read_body(resp).await;
        Resp {
            status,
            content_type,
            text: String::from_utf8(bytes.to_vec()).unwrap(),
            headers,
        }
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        let b = body.map(|b| b.to_string());
        self.call_with(method, path, b.as_deref(), &[("X-Vault-Token", "root")])
            .await
    }

    pub async fn put(&self, path: &str, data: Value) -> Resp {
        self.call("POST", path, Some(data)).await
    }
}
