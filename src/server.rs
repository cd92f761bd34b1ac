//! Start-up: storage, seal, engine, the HTTP server, request logging.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::Service;
use actix_web::{web, App, HttpMessage, HttpResponse, HttpServer};

use crate::app::{AppState, RequestId};
use crate::config::{Config, Synchronous};
use crate::crypto::load_or_create_key_file;
use crate::engine::clock::Clock;
use crate::engine::path::MountPath;
use crate::engine::{Engine, SealMode};
use crate::storage::{Durability, Store};
use crate::vault;

/// How the server was asked to run.
pub enum Mode {
    Dev {
        root_token: Option<String>,
        address: SocketAddr,
        okms_id: Option<uuid::Uuid>,
    },
    Config(Box<Config>),
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KVSEAL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// A fresh private temporary directory for dev mode.
fn dev_dir() -> Result<PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::temp_dir().join(format!("kvseal-dev-{}", uuid::Uuid::new_v4()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

pub fn run(mode: Mode) -> Result<(), String> {
    let (address, max_request_size, dir, key_file, durability, dev) = match &mode {
        Mode::Dev { address, .. } => {
            init_logging("info");
            let dir = dev_dir()?;
            let key = dir.join("root.key");
            (
                *address,
                crate::config::DEFAULT_MAX_REQUEST_SIZE,
                dir,
                Some(key),
                Durability::Full,
                true,
            )
        }
        Mode::Config(cfg) => {
            init_logging(&cfg.log.level);
            let address: SocketAddr = cfg
                .listener
                .address
                .parse()
                .map_err(|e| format!("listener.address: {e}"))?;
            let durability = match cfg.storage.synchronous {
                Synchronous::Full => Durability::Full,
                Synchronous::Normal => Durability::Normal,
            };
            (
                address,
                cfg.listener.max_request_size,
                cfg.storage.path.clone(),
                cfg.seal.key_file.clone(),
                durability,
                false,
            )
        }
    };

    let okms_domains: HashMap<uuid::Uuid, MountPath> = match &mode {
        Mode::Dev { okms_id, .. } => okms_id
            .iter()
            .filter_map(|id| Some((*id, MountPath::parse("secret").ok()?)))
            .collect(),
        Mode::Config(cfg) => cfg
            .okms
            .domains
            .iter()
            .filter_map(|d| Some((d.id, MountPath::parse(&d.mount).ok()?)))
            .collect(),
    };
    let store = Store::open(&dir, durability).map_err(|e| e.to_string())?;
    let seal_mode = match &key_file {
        Some(path) => SealMode::File(
            load_or_create_key_file(path).map_err(|e| format!("{}: {e}", path.display()))?,
        ),
        None => SealMode::Shamir,
    };
    let engine =
        Arc::new(Engine::open(store, seal_mode, Clock::default()).map_err(|e| e.to_string())?);

    let result = actix_web::rt::System::new().block_on(async {
        if engine.seal_status() == crate::engine::SealStatus::Unsealed {
            // Stores initialised before policies existed get the built-in `default` policy.
            engine
                .ensure_default_policy()
                .await
                .map_err(|e| e.to_string())?;
        }
        if let Mode::Dev {
            root_token,
            okms_id,
            ..
        } = &mode
        {
            let out = engine
                .init(root_token.clone(), 1, 1)
                .await
                .map_err(|e| e.to_string())?;
            print_dev_banner(address, out.root_token.expose(), okms_id.as_ref());
        }
        serve(engine.clone(), address, max_request_size, okms_domains).await
    });
    if dev {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn print_dev_banner(address: SocketAddr, token: &str, okms_id: Option<&uuid::Uuid>) {
    println!("==> kvseal server started in dev mode (storage is temporary; nothing is kept)");
    println!();
    println!("    Api Address: http://{address}");
    println!("    Root Token: {token}");
    if let Some(id) = okms_id {
        println!("    OKMS domain: {id} (backed by secret/)");
    }
    println!();
    println!("You may need to set the following environment variables:");
    println!();
    println!("    export VAULT_ADDR='http://{address}'");
    println!("    export VAULT_TOKEN='{token}'");
    println!("    export BAO_ADDR='http://{address}'");
    println!("    export BAO_TOKEN='{token}'");
    println!();
    use std::io::Write;
    let _ = std::io::stdout().flush();
}

async fn serve(
    engine: Arc<Engine>,
    address: SocketAddr,
    max_request_size: usize,
    okms_domains: HashMap<uuid::Uuid, MountPath>,
) -> Result<(), String> {
    let state = web::Data::new(AppState {
        engine,
        max_request_size,
        okms_domains,
    });
    tracing::info!(%address, "listening (plain HTTP)");
    HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            // Bodies are read by the handlers with their own limit (413 in the API's error shape).
            .app_data(web::PayloadConfig::new(usize::MAX))
            .wrap_fn(|req, srv| {
                let rid = uuid::Uuid::new_v4().to_string();
                req.extensions_mut().insert(RequestId(rid.clone()));
                let method = req.method().to_string();
                // The path only: query strings are not logged. Secret values never appear in paths.
                let path = req.path().to_string();
                let start = Instant::now();
                let fut = srv.call(req);
                async move {
                    let res = fut.await?;
                    tracing::info!(
                        request_id = %rid,
                        method = %method,
                        path = %path,
                        status = res.status().as_u16(),
                        duration_us = start.elapsed().as_micros() as u64,
                        "request"
                    );
                    Ok(res)
                }
            })
            .configure(vault::configure)
            .configure(crate::okms::configure)
            .default_service(web::to(|| async {
                HttpResponse::NotFound()
                    .insert_header(("Content-Type", "application/json"))
                    .body(r#"{"errors":[]}"#)
            }))
    })
    .bind(address)
    .map_err(|e| format!("cannot listen on {address}: {e}"))?
    .run()
    .await
    .map_err(|e| e.to_string())
}
