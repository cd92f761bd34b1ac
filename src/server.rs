//! Start-up: storage, seal, engine, the HTTP(S) server, request logging.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::Service;
use actix_web::{web, App, HttpMessage, HttpResponse, HttpServer};

use crate::app::{AppState, RequestId};
use crate::client_addr::ForwardedFor;
use crate::config::{
    CertIdentity, Config, Limits, ListenerTimeouts, StorageType, Synchronous,
    DEFAULT_PG_MAX_CONNECTIONS,
};
use crate::crypto::{create_key_file, read_key_file, Key32};
use crate::engine::clock::Clock;
use crate::engine::path::MountPath;
use crate::engine::{Engine, SealMode};
use crate::ratelimit::RateLimiter;
use crate::storage::{Durability, Store};
use crate::tls::{ReloadableTls, TlsSettings};
use crate::vault;

/// How the server was asked to run.
pub enum Mode {
    Dev {
        root_token: Option<String>,
        address: SocketAddr,
        okms_id: Option<uuid::Uuid>,
        /// Serve HTTPS with a throwaway CA (as `vault server -dev-tls`).
        tls: bool,
        /// Keep the dev store in this (empty) PostgreSQL database instead of a temporary directory.
        postgresql_url: Option<String>,
    },
    Config(Box<Config>),
}

/// Everything the listener needs, from either mode.
struct Listen {
    address: SocketAddr,
    max_request_size: usize,
    okms_domains: HashMap<uuid::Uuid, MountPath>,
    tls: Option<TlsSettings>,
    cert_identities: Vec<CertIdentity>,
    limits: Limits,
    timeouts: ListenerTimeouts,
    max_connections: usize,
    forwarded_for: ForwardedFor,
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

/// Where the store is.
enum StoreAt {
    Sqlite(PathBuf, Durability),
    /// Connection URL and pool size.
    Postgres(String, usize),
}

pub fn run(mode: Mode) -> Result<(), String> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (listen, dir, key_file, store_at, dev) = match &mode {
        Mode::Dev {
            address,
            okms_id,
            tls,
            postgresql_url,
            ..
        } => {
            init_logging("info");
            let dir = dev_dir()?;
            let tls = if *tls {
                let certs = crate::tls::generate_dev_certs(&dir)?;
                Some(TlsSettings {
                    cert_file: certs.cert_file,
                    key_file: certs.key_file,
                    client_ca_file: None,
                    require_client_cert: false,
                    min_version: openssl::ssl::SslVersion::TLS1_2,
                })
            } else {
                None
            };
            let listen = Listen {
                address: *address,
                max_request_size: crate::config::DEFAULT_MAX_REQUEST_SIZE,
                okms_domains: okms_id
                    .iter()
                    .filter_map(|id| Some((*id, MountPath::parse("secret").ok()?)))
                    .collect(),
                tls,
                cert_identities: Vec::new(),
                limits: Limits::default(),
                timeouts: ListenerTimeouts::default(),
                max_connections: crate::config::Listener::default().max_connections,
                forwarded_for: ForwardedFor::default(),
            };
            let key = dir.join("root.key");
            let store_at = match postgresql_url {
                Some(url) => StoreAt::Postgres(url.clone(), DEFAULT_PG_MAX_CONNECTIONS),
                None => StoreAt::Sqlite(dir.clone(), Durability::Full),
            };
            (listen, dir, Some(key), store_at, true)
        }
        Mode::Config(cfg) => {
            init_logging(&cfg.log.level);
            let address: SocketAddr = cfg
                .listener
                .address
                .parse()
                .map_err(|e| format!("listener.address: {e}"))?;
            let durability = match cfg.storage.synchronous() {
                Synchronous::Full => Durability::Full,
                Synchronous::Normal => Durability::Normal,
            };
            let store_at = match cfg.storage.kind {
                StorageType::Sqlite => StoreAt::Sqlite(cfg.storage.path.clone(), durability),
                StorageType::Postgresql => StoreAt::Postgres(
                    cfg.storage.connection_url.clone().unwrap_or_default(),
                    cfg.storage
                        .max_connections
                        .unwrap_or(DEFAULT_PG_MAX_CONNECTIONS),
                ),
            };
            let l = &cfg.listener;
            let tls = match (l.tls_disable, &l.tls_cert_file, &l.tls_key_file) {
                (false, Some(cert), Some(key)) => Some(TlsSettings {
                    cert_file: cert.clone(),
                    key_file: key.clone(),
                    client_ca_file: l.tls_client_ca_file.clone(),
                    require_client_cert: l.tls_require_client_cert,
                    min_version: if l.tls_min_version.as_deref() == Some("tls13") {
                        openssl::ssl::SslVersion::TLS1_3
                    } else {
                        openssl::ssl::SslVersion::TLS1_2
                    },
                }),
                _ => None,
            };
            let listen = Listen {
                address,
                max_request_size: l.max_request_size,
                okms_domains: cfg
                    .okms
                    .domains
                    .iter()
                    .filter_map(|d| Some((d.id, MountPath::parse(&d.mount).ok()?)))
                    .collect(),
                tls,
                cert_identities: cfg.auth.cert.clone(),
                limits: cfg.limits.clone(),
                timeouts: l.timeouts().map_err(|(k, e)| format!("{k}: {e}"))?,
                max_connections: l.max_connections,
                forwarded_for: ForwardedFor::from_listener(l)
                    .map_err(|(k, e)| format!("{k}: {e}"))?,
            };
            (
                listen,
                cfg.storage.path.clone(),
                cfg.seal.key_file.clone(),
                store_at,
                false,
            )
        }
    };

    let (store, workers) = match &store_at {
        StoreAt::Sqlite(dir, durability) => (
            Store::open(dir, *durability).map_err(|e| e.to_string())?,
            cores,
        ),
        // A read waits for the database on its worker thread (as SQLite reads wait for the disk):
        // with PostgreSQL that wait is a network round trip, so more workers keep the pool busy.
        StoreAt::Postgres(url, max) => (
            Store::open_postgres(url, *max).map_err(|e| e.to_string())?,
            (*max).clamp(cores, 4 * cores),
        ),
    };
    let seal_mode = match &key_file {
        Some(path) => SealMode::File(file_seal_key(path, &store)?),
        None => SealMode::Shamir,
    };
    let engine =
        Arc::new(Engine::open(store, seal_mode, Clock::default()).map_err(|e| e.to_string())?);
    engine.follow_store();
    engine.start_cubby_purge();
    // Dev mode: no audit files from the API (`file_path=stdout` works, as with `vault server -dev`).
    engine.set_audit_allowed_dir(match &mode {
        Mode::Config(cfg) => cfg.audit.allowed_dir.clone(),
        Mode::Dev { .. } => None,
    });

    let result = actix_web::rt::System::new().block_on(async {
        if engine.seal_status() == crate::engine::SealStatus::Unsealed {
            // Stores initialised before policies existed get the built-in `default` policy.
            engine
                .ensure_default_policy()
                .await
                .map_err(|e| e.to_string())?;
            warn_v1_okms_mounts(&engine, &listen.okms_domains);
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
            let ca = listen.tls.as_ref().map(|_| dir.join("vault-ca.pem"));
            print_dev_banner(
                listen.address,
                out.root_token.expose(),
                okms_id.as_ref(),
                ca.as_deref(),
            );
        }
        serve(engine.clone(), listen, workers).await
    });
    if dev {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// An OKMS domain needs a KV v2 mount; one configured on a KV v1 mount refuses every request
/// (400) until the mount is upgraded: said once at start, where the operator looks.
fn warn_v1_okms_mounts(engine: &Engine, domains: &HashMap<uuid::Uuid, MountPath>) {
    for (id, path) in domains {
        if engine
            .mount_by_path(path)
            .is_some_and(|m| m.kv_version != 2)
        {
            tracing::error!(
                okms_domain = %id,
                mount = path.as_str(),
                "this OKMS domain's mount is KV version 1 and its requests are refused: upgrade \
                 the mount (vault kv enable-versioning {}) or name a KV version 2 mount",
                path.bare()
            );
        }
    }
}

/// The file seal's key: read from `path`, or created there for a store that was never initialised.
/// For an initialised store a missing key file is an error: a new key opens nothing, and the server
/// would stay sealed for good behind a key file that looks fine.
fn file_seal_key(path: &std::path::Path, store: &Store) -> Result<Key32, String> {
    if let Some(key) = read_key_file(path)? {
        return Ok(key);
    }
    if crate::engine::seal::is_initialized(store).map_err(|e| e.to_string())? {
        return Err(format!(
            "{}: the seal key file is missing, but the storage at {} was initialised with a seal \
             key; restore that key file (a new key cannot open the stored data, so none is made)",
            path.display(),
            store.describe()
        ));
    }
    create_key_file(path)
}

fn print_dev_banner(
    address: SocketAddr,
    token: &str,
    okms_id: Option<&uuid::Uuid>,
    ca: Option<&std::path::Path>,
) {
    let scheme = if ca.is_some() { "https" } else { "http" };
    println!("==> kvseal server started in dev mode (storage is temporary; nothing is kept)");
    println!();
    println!("    Api Address: {scheme}://{address}");
    println!("    Root Token: {token}");
    if let Some(id) = okms_id {
        println!("    OKMS domain: {id} (backed by secret/)");
    }
    if let Some(ca) = ca {
        println!("    CA certificate: {}", ca.display());
    }
    println!();
    println!("You may need to set the following environment variables:");
    println!();
    println!("    export VAULT_ADDR='{scheme}://{address}'");
    println!("    export VAULT_TOKEN='{token}'");
    if let Some(ca) = ca {
        println!("    export VAULT_CACERT='{}'", ca.display());
    }
    println!("    export BAO_ADDR='{scheme}://{address}'");
    println!("    export BAO_TOKEN='{token}'");
    if let Some(ca) = ca {
        println!("    export BAO_CACERT='{}'", ca.display());
    }
    println!();
    use std::io::Write;
    let _ = std::io::stdout().flush();
}

async fn serve(engine: Arc<Engine>, listen: Listen, workers: usize) -> Result<(), String> {
    let address = listen.address;
    engine.set_cert_roles(listen.cert_identities.iter().map(CertIdentity::token_role));
    let state = web::Data::new(AppState {
        engine,
        max_request_size: listen.max_request_size,
        max_snapshot_size: listen.limits.max_snapshot_size,
        okms_domains: listen.okms_domains,
        cert_identities: listen.cert_identities,
        limiter: RateLimiter::new(
            listen.limits.unauthenticated_per_second,
            listen.limits.unauthenticated_burst,
        ),
        request_timeout: std::time::Duration::from_secs(listen.limits.request_timeout_secs()),
        http_read_timeout: listen.timeouts.read,
    });
    crate::app::set_json_limits(&listen.limits);
    spawn_rate_limit_sweeper(state.clone());
    let forwarded_for = web::Data::new(listen.forwarded_for);
    let app = move || {
        App::new()
            .app_data(state.clone())
            .app_data(forwarded_for.clone())
            // Bodies are read by the handlers with their own limit (413 in the API's error shape).
            .app_data(web::PayloadConfig::new(usize::MAX))
            // The client address (X-Forwarded-For options), once per request, inside the logging.
            .wrap(actix_web::middleware::from_fn(
                crate::client_addr::middleware,
            ))
            .wrap_fn(|req, srv| {
                let rid = crate::app::new_request_id();
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
            .default_service(web::to(not_found))
    };
    match listen.tls {
        None => {
            let server = HttpServer::new(app)
                // Vault's listener timeouts. actix applies the header timeout to the first request
                // of a connection (later ones are bounded by the idle timeout until they start);
                // the body's timeout is `AppState::http_read_timeout`, applied by `app::read_body`.
                .client_request_timeout(listen.timeouts.read_header)
                .keep_alive(listen.timeouts.idle)
                // actix counts connections per worker.
                .workers(workers)
                .max_connections(listen.max_connections.div_ceil(workers))
                .bind(address)
                .map_err(|e| format!("cannot listen on {address}: {e}"))?;
            tracing::info!(%address, "listening (plain HTTP)");
            server.run().await.map_err(|e| e.to_string())
        }
        Some(settings) => {
            let tls = ReloadableTls::new(settings)?;
            let acceptor = crate::tls::with_alpn(tls.acceptor()?)?;
            spawn_reload_on_sighup(tls);
            let server = crate::tls::listener::serve(
                app,
                acceptor,
                crate::tls::listener::Settings {
                    address,
                    workers,
                    max_connections: listen.max_connections.div_ceil(workers),
                    read_header: listen.timeouts.read_header,
                    idle: listen.timeouts.idle,
                },
            )?;
            tracing::info!(%address, "listening (TLS)");
            server.await.map_err(|e| e.to_string())
        }
    }
}

/// Paths outside both APIs: 404 in Vault's shape, or 400 for an invalid percent-escape (Go's
/// `net/http` refuses it before any handler, whatever the path).
async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    match crate::pipeline::invalid_escape(req.uri().path()) {
        Some(e) => HttpResponse::BadRequest()
            .insert_header(("Content-Type", "application/json"))
            .body(
                serde_json::json!({ "errors": [format!("invalid URL escape \"{e}\"")] })
                    .to_string(),
            ),
        None => HttpResponse::NotFound()
            .insert_header(("Content-Type", "application/json"))
            .body(r#"{"errors":[]}"#),
    }
}

/// Forgets idle rate-limit buckets now and then, off the request path.
fn spawn_rate_limit_sweeper(state: web::Data<AppState>) {
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(crate::ratelimit::SWEEP_INTERVAL);
        loop {
            tick.tick().await;
            state.limiter.sweep();
        }
    });
}

/// SIGHUP re-reads the certificate files; new handshakes use them, open connections are kept.
fn spawn_reload_on_sighup(tls: ReloadableTls) {
    actix_web::rt::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::error!("cannot listen for SIGHUP; certificates will not be reloaded");
            return;
        };
        while hup.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => tracing::info!("TLS certificates reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "TLS reload failed; keeping the old certificates")
                }
            }
        }
    });
}
