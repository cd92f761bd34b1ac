//! The listener against slow and greedy clients (security review finding 5): Vault's
//! `http_read_header_timeout`, `http_read_timeout` and `http_idle_timeout`, and the cap on open
//! connections, replayed with raw sockets against the real binary.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Server;
use serde_json::{json, Value};

const OKMS_D: &str = "6f1c2b3a-4d5e-4f60-8a7b-9c0d1e2f3a4b";

/// Sends `bytes`, then waits (sending nothing more) until the server closes the connection.
/// Returns what the server sent and how long after the last byte sent it closed; panics if it is
/// still open after `give_up`.
fn send_and_wait_for_close(host_port: &str, bytes: &[u8], give_up: Duration) -> (String, Duration) {
    let mut s = TcpStream::connect(host_port).expect("connect");
    s.set_read_timeout(Some(give_up)).expect("read timeout");
    s.write_all(bytes).expect("send");
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "connection still open {:?} after the last byte ({e}); received {:?}",
                start.elapsed(),
                String::from_utf8_lossy(&got)
            ),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), start.elapsed())
}

/// Status line and JSON body of a raw HTTP/1.1 response.
fn parse_response(raw: &str) -> (u16, Value) {
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP response in {raw:?}"));
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn server(listener: &str) -> Server {
    let mut s = Server::config_mode_with(
        listener,
        &format!("[[okms.domains]]\nid = \"{OKMS_D}\"\nmount = \"secret\"\n"),
    );
    s.init();
    s
}

#[test]
fn a_body_that_stops_arriving_is_answered_408_and_closed_within_http_read_timeout() {
    let s = server("http_read_timeout = \"2s\"");
    let head = |path: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nX-Vault-Token: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n",
            s.host_port, s.token
        )
    };
    let vault_408 = json!({"errors": ["timed out reading the request body"]});
    // (what is sent before the client goes quiet, the error body expected with the 408)
    let cases = [
        (head("/v1/secret/data/slow"), Some(vault_408.clone())),
        (
            format!("{}{{\"data\":{{\"a\":", head("/v1/secret/data/slow")),
            Some(vault_408),
        ),
        (head(&format!("/api/{OKMS_D}/v2/secret")), None),
    ];
    for (sent, want_body) in cases {
        let (raw, waited) =
            send_and_wait_for_close(&s.host_port, sent.as_bytes(), Duration::from_secs(10));
        let (status, body) = parse_response(&raw);
        assert_eq!(status, 408, "{sent:?} → {raw}");
        match want_body {
            Some(b) => assert_eq!(body, b, "{raw}"),
            // The OKMS error body: category Argument, the message, a request id.
            None => {
                assert_eq!(
                    body["errors"],
                    json!(["timed out reading the request body"]),
                    "{raw}"
                );
                assert!(
                    body["request_id"].as_str().is_some_and(|r| !r.is_empty()),
                    "{raw}"
                );
            }
        }
        assert!(
            waited >= Duration::from_millis(1500) && waited < Duration::from_secs(5),
            "closed {waited:?} after the client went quiet (http_read_timeout 2s)"
        );
    }
    // Nothing was written by the refused requests.
    let r = s.http().get("secret/data/slow");
    assert_eq!(r.status, 404, "{}", r.text);
}

#[test]
fn headers_that_stop_arriving_are_closed_within_http_read_header_timeout() {
    let s = server("http_read_header_timeout = \"1s\"");
    let sent = format!(
        "GET /v1/sys/health HTTP/1.1\r\nHost: {}\r\nX-Half: ",
        s.host_port
    );
    let (raw, waited) =
        send_and_wait_for_close(&s.host_port, sent.as_bytes(), Duration::from_secs(10));
    assert!(
        raw.is_empty() || raw.starts_with("HTTP/1.1 408"),
        "only a 408 may be sent: {raw:?}"
    );
    assert!(
        waited < Duration::from_secs(3),
        "closed {waited:?} after the client went quiet (http_read_header_timeout 1s)"
    );
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_http_idle_timeout() {
    let s = server("http_idle_timeout = \"2s\"");
    let sent = format!(
        "GET /v1/sys/health HTTP/1.1\r\nHost: {}\r\n\r\n",
        s.host_port
    );
    let (raw, waited) =
        send_and_wait_for_close(&s.host_port, sent.as_bytes(), Duration::from_secs(10));
    assert_eq!(parse_response(&raw).0, 200, "{raw}");
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(4),
        "closed {waited:?} after the response (http_idle_timeout 2s)"
    );
}

#[test]
fn connections_beyond_max_connections_wait_until_one_closes() {
    let s = server("max_connections = 1\nhttp_read_header_timeout = \"30s\"");
    // max_connections is rounded up to one per worker; workers are the machine's cores, so 16
    // silent connections fill every slot on any machine this runs on.
    let holders: Vec<TcpStream> = (0..16)
        .map(|_| {
            let mut h = TcpStream::connect(&s.host_port).expect("connect");
            h.write_all(b"GET /v1/sys/health HTTP/1.1\r\n")
                .expect("send");
            h
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut waiting = TcpStream::connect(&s.host_port).expect("connect");
    waiting
        .write_all(
            format!(
                "GET /v1/sys/health HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                s.host_port
            )
            .as_bytes(),
        )
        .expect("send");
    waiting
        .set_read_timeout(Some(Duration::from_secs(1)))
        .expect("read timeout");
    let mut buf = [0u8; 256];
    let early = waiting.read(&mut buf);
    assert!(
        early.is_err(),
        "a connection beyond the cap was served: {:?}",
        early.map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
    );
    drop(holders);
    waiting
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let mut raw = Vec::new();
    waiting
        .read_to_end(&mut raw)
        .expect("served once the holders closed");
    assert_eq!(parse_response(&String::from_utf8_lossy(&raw)).0, 200);
}

/// Security review finding 16: behind a trusted proxy each forwarded client has its own budget,
/// and a peer that is not trusted cannot mint fresh budgets by forging X-Forwarded-For. Refusals
/// are 429 with `Retry-After`, on both APIs.
#[test]
fn rate_limits_key_on_the_forwarded_client_only_behind_a_trusted_proxy() {
    let s = Server::config_mode_with(
        "x_forwarded_for_authorized_addrs = \"127.0.0.1/32\"",
        &format!(
            "[limits]\nunauthenticated_per_second = 0.2\nunauthenticated_burst = 2\n\n\
             [[okms.domains]]\nid = \"{OKMS_D}\"\nmount = \"secret\"\n"
        ),
    );
    let mut s = s;
    s.init();
    let port = s.host_port.rsplit(':').next().expect("port").to_string();
    let client = |source: &str| {
        reqwest::blocking::Client::builder()
            .local_address(Some(source.parse().expect("ip")))
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client")
    };
    let (proxy, stranger) = (client("127.0.0.1"), client("127.0.0.2"));
    // (connection, X-Forwarded-For, URL path, expected status) in order: each failed token check
    // spends the budget (burst 2) of the client the server sees.
    let vault = "/v1/secret/data/x";
    let okms = format!("/api/{OKMS_D}/v2/secret");
    let cases: Vec<(&str, &reqwest::blocking::Client, Option<&str>, &str, u16)> = vec![
        ("client A", &proxy, Some("198.51.100.1"), vault, 403),
        ("client A", &proxy, Some("198.51.100.1"), vault, 403),
        ("client A, spent", &proxy, Some("198.51.100.1"), vault, 429),
        ("client A on OKMS", &proxy, Some("198.51.100.1"), &okms, 429),
        (
            "client B, own budget",
            &proxy,
            Some("198.51.100.2"),
            vault,
            403,
        ),
        ("the proxy itself", &proxy, None, vault, 403),
        ("untrusted peer", &stranger, Some("203.0.113.1"), vault, 403),
        (
            "untrusted peer, forged XFF",
            &stranger,
            Some("203.0.113.2"),
            vault,
            403,
        ),
        (
            "untrusted peer, forged XFF",
            &stranger,
            Some("203.0.113.3"),
            vault,
            429,
        ),
    ];
    for (who, c, xff, path, want) in cases {
        let mut rb = c
            .get(format!("http://127.0.0.1:{port}{path}"))
            .header("X-Vault-Token", "not-a-token");
        if let Some(x) = xff {
            rb = rb.header("X-Forwarded-For", x);
        }
        let r = rb.send().expect("request");
        let status = r.status().as_u16();
        let retry_after = r
            .headers()
            .get("Retry-After")
            .map(|v| v.to_str().unwrap_or_default().to_string());
        let text = r.text().unwrap_or_default();
        assert_eq!(status, want, "{who} {xff:?} {path}: {text}");
        if want == 429 {
            assert_eq!(
                retry_after.as_deref(),
                Some("5"),
                "{who}: 0.2/s refills in 5 s"
            );
        }
    }
    // A valid token is never limited.
    let r = proxy
        .get(format!("http://127.0.0.1:{port}/v1/auth/token/lookup-self"))
        .header("X-Vault-Token", &s.token)
        .header("X-Forwarded-For", "198.51.100.1")
        .send()
        .expect("request");
    assert_eq!(r.status().as_u16(), 200);
}
