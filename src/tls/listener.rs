//! The TLS listener's accept path: actix's HTTP service behind OpenSSL, with one step before the
//! handshake. A client that speaks plain HTTP to this port gets Go's `net/http` answer
//! (`HTTP/1.0 400 Bad Request` … `Client sent an HTTP request to an HTTPS server.`) and the
//! connection is closed, as Vault and OpenBao do, instead of a bare reset.
//!
//! The step peeks at the first byte: a TLS handshake record starts with `0x16` and goes on to the
//! handshake untouched (one `peek`, nothing consumed). Anything else can never become a TLS
//! connection; its first five bytes are read and compared with the request starts Go recognises
//! (`crypto/tls` `RecordHeaderError`, `net/http` `tlsRecordHeaderLooksLikeHTTP`). Every wait is
//! bounded ([`SNIFF_TIMEOUT`]).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use actix_http::body::MessageBody;
use actix_http::{HttpService, Request, Response};
use actix_server::Server;
use actix_service::{
    fn_service, map_config, IntoServiceFactory, ServiceFactory, ServiceFactoryExt,
};
use actix_tls::accept::openssl::TlsStream;
use actix_web::dev::AppConfig;
use openssl::ssl::SslAcceptor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use super::PeerCertificate;

/// Go's answer, byte for byte (`net/http` `server.go`).
pub const PLAIN_HTTP_ANSWER: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// The longest wait for a client's first bytes, and for writing the answer: the TLS handshake's
/// own default limit (actix-tls's 3 s), so a silent client holds a connection no longer than a
/// stalled handshake would.
pub const SNIFF_TIMEOUT: Duration = Duration::from_secs(3);

/// The first five bytes of a plain HTTP request, as Go recognises them.
const HTTP_STARTS: [&[u8; 5]; 5] = [b"GET /", b"HEAD ", b"POST ", b"PUT /", b"OPTIO"];

/// A TLS record of type handshake (a ClientHello is the first one a client sends).
const TLS_HANDSHAKE: u8 = 0x16;

/// What the listener needs besides the app and the acceptor.
pub struct Settings {
    pub address: SocketAddr,
    pub workers: usize,
    /// Per worker.
    pub max_connections: usize,
    /// Vault's `http_read_header_timeout`: the first request's head.
    pub read_header: Duration,
    /// Vault's `http_idle_timeout`.
    pub idle: Duration,
}

/// Does a connection that does not start with a TLS record start like an HTTP request?
pub fn looks_like_http(first: &[u8]) -> bool {
    HTTP_STARTS.iter().any(|s| first == &s[..])
}

/// Before the handshake: `Ok` hands the stream to OpenSSL; `Err` means it was answered (plain
/// HTTP) or dropped (silent, closed, or bytes that are neither).
async fn sniff(mut stream: TcpStream) -> Result<TcpStream, ()> {
    let mut first = [0u8; 1];
    match timeout(SNIFF_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == TLS_HANDSHAKE => return Ok(stream),
        Ok(Ok(1)) => {}
        _ => return Err(()),
    }
    let mut head = [0u8; 5];
    if !matches!(
        timeout(SNIFF_TIMEOUT, stream.read_exact(&mut head)).await,
        Ok(Ok(_))
    ) {
        return Err(());
    }
    if !looks_like_http(&head) {
        return Err(());
    }
    let _ = timeout(SNIFF_TIMEOUT, async {
        stream.write_all(PLAIN_HTTP_ANSWER).await?;
        stream.shutdown().await?;
        // Read what is left of the request before closing: closing with unread bytes makes the
        // kernel send a reset, which can destroy the answer before the client reads it.
        let mut sink = [0u8; 4096];
        let mut left: usize = 64 * 1024;
        while left > 0 {
            let n = stream.read(&mut sink).await?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
        }
        Ok::<_, io::Error>(())
    })
    .await;
    Err(())
}

/// Binds `settings.address` and serves `app` over TLS with the plain-HTTP answer in front, with
/// the settings `HttpServer` would apply (workers, connection cap, header and idle timeouts), and
/// the verified client certificate, if any, in each connection's extensions.
pub fn serve<F, I, S, B>(
    app: F,
    acceptor: SslAcceptor,
    settings: Settings,
) -> Result<Server, String>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: std::fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as actix_service::Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let address = settings.address;
    let listener = std::net::TcpListener::bind(address)
        .map_err(|e| format!("cannot listen on {address}: {e}"))?;
    let (read_header, idle) = (settings.read_header, settings.idle);
    let server = Server::build()
        .workers(settings.workers)
        .max_concurrent_connections(settings.max_connections)
        .listen("kvseal-tls", listener, move || {
            let http = HttpService::build()
                .keep_alive(idle)
                .client_request_timeout(read_header)
                .local_addr(address)
                .on_connect_ext(on_connect)
                .finish(map_config(
                    app()
                        .into_factory()
                        .map_err(|e: S::Error| Into::<actix_web::Error>::into(e).error_response()),
                    // The default config (scheme "http", host "localhost:8080") only feeds
                    // `connection_info` and `url_for`, which kvseal does not use.
                    |_| AppConfig::default(),
                ))
                .openssl(acceptor.clone())
                .map_err(|_| ());
            fn_service(sniff).and_then(http)
        })
        .map_err(|e| format!("cannot listen on {address}: {e}"))?
        .run();
    Ok(server)
}

/// A verified client certificate travels with its connection to every request on it.
fn on_connect(tls: &TlsStream<TcpStream>, ext: &mut actix_http::Extensions) {
    let ssl = tls.ssl();
    if ssl.verify_result() == openssl::x509::X509VerifyResult::OK {
        if let Some(peer) = ssl
            .peer_certificate()
            .and_then(|c| PeerCertificate::from_x509(&c))
        {
            ext.insert(peer);
        }
    }
}
