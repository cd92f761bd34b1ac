//! The client's address, for rate limits and the audit log's `remote_address`: the TCP peer, or,
//! when the peer is a trusted proxy, the address it forwards in `X-Forwarded-For`. The rules are
//! Vault's listener options and its `WrapForwardedForHandler`, in the same order; kvseal is stricter
//! in one place: the chosen entry must be an IP address (Vault would take any string).

use std::net::IpAddr;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest};
use ipnet::IpNet;

/// Vault's `x_forwarded_for_*` listener options.
#[derive(Clone, Debug, Default)]
pub struct ForwardedFor {
    /// Peers whose X-Forwarded-For is trusted; empty: the header is never looked at (as Vault, which
    /// installs its handler only when this is set).
    pub authorized: Vec<IpNet>,
    /// Entries skipped from the end of the chain (proxies of one's own behind the trusted one).
    pub hop_skips: usize,
    pub reject_not_authorized: bool,
    pub reject_not_present: bool,
}

impl ForwardedFor {
    pub fn from_listener(l: &crate::config::Listener) -> Result<Self, (&'static str, String)> {
        Ok(Self {
            authorized: l.xff_networks()?,
            hop_skips: l.x_forwarded_for_hop_skips,
            reject_not_authorized: l.x_forwarded_for_reject_not_authorized,
            reject_not_present: l.x_forwarded_for_reject_not_present,
        })
    }
}

/// The address the pipeline uses for this request, set once by [`middleware`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// Why a request is refused (400 with Vault's messages).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("missing x-forwarded-for header and configured to reject when not present")]
    NotPresent,
    #[error(
        "client address not authorized for x-forwarded-for and configured to reject connection"
    )]
    NotAuthorized,
    #[error("malformed x-forwarded-for configuration or request, hops to skip ({skips}) would skip before earliest chain link (chain length {len})")]
    TooFewHops { skips: usize, len: usize },
    #[error("x-forwarded-for entry {0:?} is not an IP address")]
    NotAnAddress(String),
    /// No TCP peer (not a network connection): nothing to resolve, nothing refused.
    #[error("no peer address")]
    NoPeer,
}

/// The client address of `req` under the listener's X-Forwarded-For options (none configured: the
/// peer's address).
pub fn client_addr(req: &HttpRequest) -> Result<IpAddr, Rejected> {
    let peer = req.peer_addr().map(|a| a.ip());
    let headers: Vec<&[u8]> = req
        .headers()
        .get_all("X-Forwarded-For")
        .map(|v| v.as_bytes())
        .collect();
    match req.app_data::<web::Data<ForwardedFor>>() {
        Some(cfg) => resolve(peer, &headers, cfg),
        None => peer.ok_or(Rejected::NoPeer),
    }
}

/// Vault's `WrapForwardedForHandler`, step by step.
fn resolve(
    peer: Option<IpAddr>,
    headers: &[&[u8]],
    cfg: &ForwardedFor,
) -> Result<IpAddr, Rejected> {
    // An IPv4 peer may reach an IPv6 socket as ::ffff:a.b.c.d; it is the IPv4 address.
    let peer = match peer.ok_or(Rejected::NoPeer)? {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    if cfg.authorized.is_empty() {
        return Ok(peer);
    }
    // Absent (no header line at all): checked before the peer is, so it applies to every peer.
    if headers.is_empty() {
        return if cfg.reject_not_present {
            Err(Rejected::NotPresent)
        } else {
            Ok(peer)
        };
    }
    if !cfg.authorized.iter().any(|n| n.contains(&peer)) {
        // Not a trusted proxy: its header is ignored, or the request refused.
        return if cfg.reject_not_authorized {
            Err(Rejected::NotAuthorized)
        } else {
            Ok(peer)
        };
    }
    // Every header line, split on commas, is one chain; the client is `hop_skips` from its end.
    let chain: Vec<String> = headers
        .iter()
        .flat_map(|h| {
            String::from_utf8_lossy(h)
                .split(',')
                .map(|v| v.trim().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    let index = chain
        .len()
        .checked_sub(1 + cfg.hop_skips)
        .ok_or(Rejected::TooFewHops {
            skips: cfg.hop_skips,
            len: chain.len(),
        })?;
    let entry = &chain[index];
    entry
        .parse::<IpAddr>()
        .map_err(|_| Rejected::NotAnAddress(entry.chars().take(64).collect()))
}

/// Resolves the client address once per request and keeps it in the request's extensions (read by
/// `app::client_ip`); a request the options refuse is answered 400 in Vault's error shape, as Vault
/// answers it before any routing.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    match client_addr(req.request()) {
        Ok(ip) => {
            req.extensions_mut().insert(ClientAddr(ip));
        }
        Err(Rejected::NoPeer) => {}
        Err(e) => {
            let resp = crate::vault::error::VaultError::bad(e.to_string()).render();
            return Ok(req.into_response(resp).map_into_right_body());
        }
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(
        authorized: &[&str],
        hop_skips: usize,
        reject_na: bool,
        reject_np: bool,
    ) -> ForwardedFor {
        ForwardedFor {
            authorized: authorized.iter().map(|a| a.parse().unwrap()).collect(),
            hop_skips,
            reject_not_authorized: reject_na,
            reject_not_present: reject_np,
        }
    }

    #[test]
    fn resolves_like_vaults_forwarded_for_handler() {
        let proxy = "10.0.0.5";
        let other = "192.0.2.9";
        let off = ForwardedFor::default();
        let trusting = cfg(&["10.0.0.0/24"], 0, false, false);
        let strict = cfg(&["10.0.0.0/24"], 0, true, true);
        let skip1 = cfg(&["10.0.0.0/24"], 1, true, true);
        use Rejected::*;
        // (options, peer, X-Forwarded-For header lines, result)
        type Case<'a> = (
            &'a ForwardedFor,
            &'a str,
            Vec<&'a str>,
            Result<&'a str, Rejected>,
        );
        let cases: Vec<Case> = vec![
            (&off, other, vec!["1.2.3.4"], Ok(other)),
            (&trusting, proxy, vec!["1.2.3.4"], Ok("1.2.3.4")),
            (&trusting, proxy, vec![], Ok(proxy)),
            (&trusting, other, vec!["1.2.3.4"], Ok(other)),
            (&trusting, proxy, vec!["6.6.6.6, 1.2.3.4"], Ok("1.2.3.4")),
            (&trusting, proxy, vec!["6.6.6.6", "1.2.3.4"], Ok("1.2.3.4")),
            (&trusting, proxy, vec!["2001:db8::7"], Ok("2001:db8::7")),
            (&trusting, "::ffff:10.0.0.5", vec!["1.2.3.4"], Ok("1.2.3.4")),
            (&strict, proxy, vec!["1.2.3.4"], Ok("1.2.3.4")),
            (&strict, proxy, vec![], Err(NotPresent)),
            (&strict, other, vec![], Err(NotPresent)),
            (&strict, other, vec!["1.2.3.4"], Err(NotAuthorized)),
            (&skip1, proxy, vec!["1.2.3.4, 10.0.0.7"], Ok("1.2.3.4")),
            (
                &skip1,
                proxy,
                vec!["1.2.3.4"],
                Err(TooFewHops { skips: 1, len: 1 }),
            ),
            (
                &strict,
                proxy,
                vec!["evil"],
                Err(NotAnAddress("evil".into())),
            ),
            (&strict, proxy, vec![""], Err(NotAnAddress(String::new()))),
            (
                &strict,
                proxy,
                vec!["1.2.3.4:80"],
                Err(NotAnAddress("1.2.3.4:80".into())),
            ),
        ];
        for (i, (c, peer, headers, want)) in cases.into_iter().enumerate() {
            let headers: Vec<&[u8]> = headers.iter().map(|h| h.as_bytes()).collect();
            let got = resolve(Some(peer.parse().unwrap()), &headers, c);
            assert_eq!(
                got,
                want.map(|w| w.parse().unwrap()),
                "case {i}: {peer} {headers:?}"
            );
        }
        assert_eq!(resolve(None, &[], &strict), Err(NoPeer));
    }
}
