//! The TLS listener (openssl): server certificate with reload on SIGHUP, optional client
//! certificates, and what a verified client certificate says about its holder.

mod devcert;
pub mod listener;
mod peer;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use openssl::ssl::{
    ClientHelloResponse, SslAcceptor, SslAcceptorBuilder, SslContext, SslFiletype, SslMethod,
    SslVerifyMode, SslVersion,
};

pub use devcert::{generate_dev_certs, DevCerts};
pub use peer::{parse_dn, PeerCertificate};

/// The listener's TLS settings.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca_file: Option<PathBuf>,
    pub require_client_cert: bool,
    pub min_version: SslVersion,
}

fn err(file: &std::path::Path, e: impl std::fmt::Display) -> String {
    format!("{}: {e}", file.display())
}

/// Builds an acceptor configuration: Mozilla's "intermediate" profile (TLS 1.2+, modern AEAD
/// ciphers), the certificate chain and key, and client-certificate verification when a CA is given.
fn builder(s: &TlsSettings) -> Result<SslAcceptorBuilder, String> {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
        .map_err(|e| format!("TLS: {e}"))?;
    b.set_min_proto_version(Some(s.min_version))
        .map_err(|e| format!("TLS: {e}"))?;
    b.set_certificate_chain_file(&s.cert_file)
        .map_err(|e| err(&s.cert_file, e))?;
    b.set_private_key_file(&s.key_file, SslFiletype::PEM)
        .map_err(|e| err(&s.key_file, e))?;
    b.check_private_key()
        .map_err(|e| err(&s.key_file, format!("does not match the certificate: {e}")))?;
    if let Some(ca) = &s.client_ca_file {
        b.set_ca_file(ca).map_err(|e| err(ca, e))?;
        // Tell clients which CAs we accept (okms-cli picks its certificate from this list).
        let pem = std::fs::read(ca).map_err(|e| err(ca, e))?;
        let certs = openssl::x509::X509::stack_from_pem(&pem).map_err(|e| err(ca, e))?;
        let mut names = openssl::stack::Stack::new().map_err(|e| format!("TLS: {e}"))?;
        for c in certs {
            let n = c.subject_name().to_owned().map_err(|e| err(ca, e))?;
            names.push(n).map_err(|e| format!("TLS: {e}"))?;
        }
        b.set_client_ca_list(names);
        let mut mode = SslVerifyMode::PEER;
        if s.require_client_cert {
            mode |= SslVerifyMode::FAIL_IF_NO_PEER_CERT;
        }
        b.set_verify(mode);
    }
    Ok(b)
}

/// A certificate context that can be swapped while the server runs (SIGHUP): each new handshake
/// picks up the current one in its ClientHello callback; connections already open keep theirs.
#[derive(Clone)]
pub struct ReloadableTls {
    settings: TlsSettings,
    current: Arc<RwLock<SslContext>>,
}

impl ReloadableTls {
    pub fn new(settings: TlsSettings) -> Result<Self, String> {
        let ctx = builder(&settings)?.build().into_context();
        Ok(Self {
            settings,
            current: Arc::new(RwLock::new(ctx)),
        })
    }

    /// The acceptor to bind with.
    pub fn acceptor(&self) -> Result<SslAcceptorBuilder, String> {
        let mut b = builder(&self.settings)?;
        let current = Arc::clone(&self.current);
        b.set_client_hello_callback(move |ssl, _alert| {
            let ctx = current.read().unwrap_or_else(|p| p.into_inner());
            ssl.set_ssl_context(&ctx)?;
            Ok(ClientHelloResponse::SUCCESS)
        });
        Ok(b)
    }

    /// Re-reads the certificate, key and client CA files. On error the old ones stay in use.
    pub fn reload(&self) -> Result<(), String> {
        let ctx = builder(&self.settings)?.build().into_context();
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = ctx;
        Ok(())
    }
}

/// Offers HTTP/2 and HTTP/1.1 by ALPN, as actix-web's `bind_openssl` does.
pub fn with_alpn(mut b: SslAcceptorBuilder) -> Result<SslAcceptor, String> {
    b.set_alpn_select_callback(|_, protocols| {
        const H2: &[u8] = b"\x02h2";
        const H11: &[u8] = b"\x08http/1.1";
        if protocols.windows(3).any(|w| w == H2) {
            Ok(b"h2")
        } else if protocols.windows(9).any(|w| w == H11) {
            Ok(b"http/1.1")
        } else {
            Err(openssl::ssl::AlpnError::NOACK)
        }
    });
    b.set_alpn_protos(b"\x08http/1.1\x02h2")
        .map_err(|e| format!("TLS: {e}"))?;
    Ok(b.build())
}
