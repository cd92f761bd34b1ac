//! `sys/auth`: the auth methods kvseal serves, listed in Vault's shape (`bao auth list`, hvac's
//! `sys.list_auth_methods`). They are fixed: `token/`, and `cert/` when `[[auth.cert]]` identities
//! are configured. Enabling, disabling and tuning them is refused with a 400 that says why.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::error::{VaultError, VaultResult};
use super::request::Op;
use super::response::Reply;
use super::Ctx;
use crate::app::AppState;

/// Vault's system-wide default and maximum lease TTL (768h), in seconds: what a tune read shows
/// for an auth method without TTLs of its own.
const SYSTEM_DEFAULT_TTL: i64 = 768 * 3600;

/// The auth methods kvseal serves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Token,
    Cert,
}

impl Method {
    fn path(self) -> &'static str {
        match self {
            Method::Token => "token/",
            Method::Cert => "cert/",
        }
    }

    fn kind(self) -> &'static str {
        self.path().trim_end_matches('/')
    }

    fn description(self) -> &'static str {
        match self {
            // Vault's own description of its token method.
            Method::Token => "token based credentials",
            Method::Cert => {
                "TLS client certificates: the [[auth.cert]] identities of the configuration file"
            }
        }
    }

    /// The accessor and uuid: fixed (the methods are not stored), in Vault's formats
    /// (`auth_token_` and 8 hex digits; a UUID).
    fn ids(self) -> (String, String) {
        let h = Sha256::digest(format!("kvseal auth method {}", self.path()).as_bytes());
        let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
        let accessor = format!("auth_{}_{}", self.kind(), &hex[..8]);
        let uuid = format!(
            "{}-{}-{}-{}-{}",
            &hex[8..16],
            &hex[16..20],
            &hex[20..24],
            &hex[24..28],
            &hex[28..40]
        );
        (accessor, uuid)
    }

    /// The method as `sys/auth` lists it, field by field as OpenBao 2.7 (`bao server -dev`).
    fn info(self) -> Value {
        let (accessor, uuid) = self.ids();
        let mut v = json!({
            "accessor": accessor,
            "config": {
                "default_lease_ttl": 0,
                "force_no_cache": false,
                "max_lease_ttl": 0,
                "token_type": "default-service",
            },
            "description": self.description(),
            "external_entropy_access": false,
            "local": false,
            "options": null,
            "plugin_version": "",
            "running_plugin_version": concat!("v", env!("CARGO_PKG_VERSION"), "+kvseal"),
            "running_sha256": "",
            "seal_wrap": false,
            "type": self.kind(),
            "uuid": uuid,
        });
        // The token method is built in: Vault shows no deprecation status and null options for it,
        // and both for every other method.
        if self == Method::Cert {
            v["deprecation_status"] = json!("supported");
            v["options"] = json!({});
        }
        v
    }
}

fn methods(state: &AppState) -> Vec<Method> {
    let mut m = vec![Method::Token];
    if !state.cert_identities.is_empty() {
        m.push(Method::Cert);
    }
    m
}

pub async fn route(state: &AppState, ctx: &Ctx<'_>, rest: &str) -> Option<VaultResult<Reply>> {
    let op = ctx.req.op;
    let trimmed = rest.trim_end_matches('/');
    if trimmed == "auth" {
        return Some(match op {
            Op::Read => {
                let data: Map<String, Value> = methods(state)
                    .into_iter()
                    .map(|m| (m.path().to_string(), m.info()))
                    .collect();
                Ok(Reply::SysInjected(Value::Object(data)))
            }
            _ => Err(VaultError::UnsupportedOperation),
        });
    }
    let name = trimmed.strip_prefix("auth/")?;
    Some(match name.strip_suffix("/tune") {
        Some(m) => tune(state, op, m),
        None => method(state, op, name),
    })
}

fn find(state: &AppState, name: &str) -> Option<Method> {
    let path = format!("{}/", name.trim_matches('/'));
    methods(state).into_iter().find(|m| m.path() == path)
}

fn method(state: &AppState, op: Op, name: &str) -> VaultResult<Reply> {
    let path = format!("{}/", name.trim_matches('/'));
    match op {
        Op::Read => find(state, name)
            .map(|m| Reply::SysInjected(m.info()))
            .ok_or_else(|| VaultError::bad(format!("No auth engine at {path}"))),
        Op::Update => Err(VaultError::bad(format!(
            "cannot enable an auth method at {path}: kvseal's auth methods are fixed (token/, \
             and cert/ when [[auth.cert]] identities are configured in its configuration file)"
        ))),
        Op::Delete => match find(state, name) {
            // Vault's own answer.
            Some(Method::Token) => Err(VaultError::bad(
                "token credential backend cannot be disabled",
            )),
            Some(Method::Cert) => Err(VaultError::bad(
                "cannot disable cert/: it serves the [[auth.cert]] identities of kvseal's \
                 configuration file; remove them there to disable it",
            )),
            // Nothing there: nothing to disable (Vault answers 204 too).
            None => Ok(Reply::NoContent),
        },
        _ => Err(VaultError::UnsupportedOperation),
    }
}

fn tune(state: &AppState, op: Op, name: &str) -> VaultResult<Reply> {
    let path = format!("{}/", name.trim_matches('/'));
    let m = find(state, name)
        .ok_or_else(|| VaultError::bad(format!("cannot fetch sysview for path {path:?}")))?;
    match op {
        Op::Read => Ok(Reply::SysInjected(json!({
            "default_lease_ttl": SYSTEM_DEFAULT_TTL,
            "description": m.description(),
            "force_no_cache": false,
            "max_lease_ttl": SYSTEM_DEFAULT_TTL,
            "token_type": "default-service",
        }))),
        Op::Update => Err(VaultError::bad(format!(
            "cannot tune {path}: kvseal's auth methods are not tunable (token TTLs are set per \
             token, and per identity in [[auth.cert]])"
        ))),
        _ => Err(VaultError::UnsupportedOperation),
    }
}
