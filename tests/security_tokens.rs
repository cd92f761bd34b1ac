//! Security review, issue 10, finding 14, against the real binary: a token from a client
//! certificate (`auth/cert/login`) lives within its identity's `max_ttl`, renewals included, as
//! Vault's cert role `token_max_ttl` bounds it; renewals follow the identity as configured now.
//! (The token-store side of findings 2 and 14 is checked against OpenBao in
//! compat-tests/test_security_tokens.py; cert auth needs kvseal's own TLS config, hence here.)

mod common;

use common::pki;
use common::{Http, Server, TlsConfig};
use serde_json::{json, Value};

/// Identities: `capped` (1h, at most 2h), `uncapped` (1h, no max_ttl: Vault's 768h ceiling),
/// `maxonly` (no ttl, at most 2h). One client certificate each, CN = the identity's name.
const IDENTITIES: &str = "\
[[auth.cert]]\nname = \"capped\"\nsubject = \"CN=capped\"\npolicies = [\"app\"]\nttl = \"1h\"\nmax_ttl = \"2h\"\n\n\
[[auth.cert]]\nname = \"uncapped\"\nsubject = \"CN=uncapped\"\npolicies = [\"app\"]\nttl = \"1h\"\n\n\
[[auth.cert]]\nname = \"maxonly\"\nsubject = \"CN=maxonly\"\npolicies = [\"app\"]\nmax_ttl = \"2h\"\n";

fn server(tables: &str) -> (Server, std::path::PathBuf) {
    let tmp = tempfile::Builder::new()
        .prefix("kvseal-certttl-")
        .tempdir()
        .expect("tempdir");
    let dir = tmp.path().to_path_buf();
    pki::make_ca_and_server(&dir);
    for (i, name) in ["capped", "uncapped", "maxonly"].iter().enumerate() {
        pki::make_client(&dir, name, &format!("0x20{i:02}"));
    }
    let tls = TlsConfig {
        listener: pki::listener_lines(&dir),
        tables: tables.to_string(),
        client: pki::tls_client(&dir, None),
    };
    let mut s = Server::config_mode_tls(tmp, tls);
    s.init();
    (s, dir)
}

/// `auth/cert/login` with the identity's certificate; checks the call and returns the auth block
/// and the warnings.
fn login(s: &Server, dir: &std::path::Path, identity: &str) -> (Value, Value) {
    let http = Http::with_client(pki::tls_client(dir, Some(identity)), &s.addr, "");
    let r = http.post("auth/cert/login", &json!({}));
    assert_eq!(r.status, 200, "login {identity}: {}", r.text);
    (r.json["auth"].clone(), r.json["warnings"].clone())
}

fn renew(s: &Server, dir: &std::path::Path, token: &str, body: &Value) -> common::Resp {
    Http::with_client(pki::tls_client(dir, None), &s.addr, token)
        .post("auth/token/renew-self", body)
}

fn lease(v: &Value) -> i64 {
    v["auth"]["lease_duration"]
        .as_i64()
        .expect("lease_duration")
}

fn close_to(got: i64, want: i64) -> bool {
    (want - 2..=want).contains(&got)
}

#[test]
fn cert_login_ttl_is_capped_by_max_ttl() {
    let (s, dir) = server(IDENTITIES);
    // (identity, lease at login, Vault's warning when the TTL was capped)
    let cases = [
        ("capped", 3600, None),
        ("uncapped", 3600, None),
        (
            "maxonly",
            7200,
            Some("TTL of \"768h\" exceeded the effective max_ttl of \"2h\"; TTL value is capped accordingly"),
        ),
    ];
    for (identity, want, warning) in cases {
        let (auth, warnings) = login(&s, &dir, identity);
        assert_eq!(auth["lease_duration"], want, "{identity}: {auth}");
        match warning {
            Some(w) => assert_eq!(warnings, json!([w]), "{identity}"),
            None => assert!(warnings.is_null(), "{identity}: {warnings}"),
        }
        // Vault keeps the identity's name on the token (renewals look the identity up by it).
        let token = auth["client_token"].as_str().expect("token");
        let look = Http::with_client(pki::tls_client(&dir, None), &s.addr, token)
            .get("auth/token/lookup-self");
        assert_eq!(look.status, 200, "{}", look.text);
        assert_eq!(look.json["data"]["meta"], json!({"cert_name": identity}));
    }
}

#[test]
fn cert_token_renewal_stops_at_max_ttl() {
    let (s, dir) = server(IDENTITIES);
    // (identity, renew-self body, lease after it, capped with Vault's warning)
    let cases = [
        // The attack: a 1h certificate token asked to live 700h more. max_ttl holds.
        ("capped", json!({"increment": "700h"}), 7200, true),
        ("capped", json!({}), 3600, false),
        ("capped", json!({"increment": "90m"}), 5400, false),
        ("maxonly", json!({"increment": "700h"}), 7200, true),
        // Without max_ttl, `ttl` is no limit, as in Vault: the system maximum is.
        ("uncapped", json!({"increment": "700h"}), 700 * 3600, false),
        ("uncapped", json!({"increment": "1000h"}), 768 * 3600, true),
    ];
    for (identity, body, want, capped) in cases {
        let (auth, _) = login(&s, &dir, identity);
        let token = auth["client_token"].as_str().expect("token");
        let r = renew(&s, &dir, token, &body);
        assert_eq!(r.status, 200, "{identity} {body}: {}", r.text);
        assert!(
            close_to(lease(&r.json), want),
            "{identity} {body}: {}",
            r.text
        );
        let warned = r.json["warnings"].as_array().is_some_and(|w| {
            w.iter().any(|x| {
                x.as_str()
                    .is_some_and(|x| x.contains("exceeded the effective max_ttl"))
            })
        });
        assert_eq!(warned, capped, "{identity} {body}: {}", r.text);
        // The lookup agrees with the renewal.
        let look = Http::with_client(pki::tls_client(&dir, None), &s.addr, token)
            .get("auth/token/lookup-self");
        assert!(
            close_to(look.json["data"]["ttl"].as_i64().unwrap_or(-1), want),
            "{identity} {body}: {}",
            look.text
        );
    }
}

#[test]
fn cert_token_renewal_follows_the_identity_as_configured_now() {
    let (mut s, dir) = server(IDENTITIES);
    let (auth, _) = login(&s, &dir, "capped");
    let token = auth["client_token"].as_str().expect("token").to_string();
    let capped = |extra: &str| {
        format!(
            "[[auth.cert]]\nname = \"capped\"\nsubject = \"CN=capped\"\nttl = \"1h\"\n{extra}\n"
        )
    };
    // (config after a restart, renewal status, lease or error)
    let steps: [(String, u16, Result<i64, &str>); 3] = [
        (
            capped("policies = [\"app\"]\nmax_ttl = \"90m\""),
            200,
            Ok(5400),
        ),
        (
            capped("policies = [\"app\", \"admin\"]\nmax_ttl = \"2h\""),
            400,
            Err("policies have changed, not renewing"),
        ),
        (
            String::new(),
            400,
            Err("certificate identity \"capped\" no longer exists, not renewing"),
        ),
    ];
    for (tables, status, want) in steps {
        s.set_config_tables(&tables);
        s.restart();
        let r = renew(&s, &dir, &token, &json!({"increment": "700h"}));
        assert_eq!(r.status, status, "{tables}: {}", r.text);
        match want {
            // Counted from login, a few restarts ago.
            Ok(l) => assert!(
                (l - 60..=l).contains(&lease(&r.json)),
                "{tables}: {}",
                r.text
            ),
            Err(e) => assert_eq!(r.json, json!({"errors": [e]}), "{tables}"),
        }
    }
}
