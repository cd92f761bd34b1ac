//! Response wrapping (Vault's `wrapping.go`): a reply is kept in the cubbyhole of a new,
//! single-use token, and the client gets that token instead of the reply.
//!
//! A wrapping token is an orphan token with the one policy [`RESPONSE_WRAPPING_POLICY`], one use,
//! and the wrap TTL as both its TTL and its explicit maximum. Its cubbyhole holds two entries, as
//! Vault's does: `response` (the reply, exactly as the client would have got it) and `wrapinfo`
//! (what `sys/wrapping/lookup` answers). Each operation is one write transaction: wrapping creates
//! the token and both entries together; unwrapping reads the reply and deletes the token with its
//! cubbyhole together (two unwraps of one token: one gets the reply, the other
//! [`INVALID_WRAPPING_TOKEN`]); rewrapping replaces the old token by a new one holding the same
//! reply.
//!
//! Used anywhere else, a wrapping token spends its one use on authentication like any token with a
//! use limit, which deletes it with its cubbyhole: it is burnt, and the request is refused by its
//! ACL (which grants `sys/wrapping/unwrap` only).

use serde::{Deserialize, Serialize};

use super::clock::{Nanos, NANOS_PER_SEC};
use super::cubbyhole::{is_dead, read_entry, seal_entry};
use super::error::{EngineError, EngineResult};
use super::token_entry::{open_token, seal_token, TokenRow};
use super::tokens::random_accessor;
use super::{Engine, Identity, Token};
use crate::crypto::Keyring;
use crate::storage::WriteTx;

/// The built-in policy of wrapping tokens (Vault's `response-wrapping`): it cannot be written,
/// deleted or given to a token.
pub const RESPONSE_WRAPPING_POLICY: &str = "response-wrapping";

/// Its text. Vault's also grants `cubbyhole/response` (create, read), the deprecated way to unwrap;
/// kvseal leaves it out, so a wrapping token is good for `sys/wrapping/unwrap` alone (and for
/// revoking itself, as OpenBao 2.7's has it).
pub const RESPONSE_WRAPPING_POLICY_TEXT: &str = r#"
path "sys/wrapping/unwrap" {
    capabilities = ["update"]
}

path "auth/token/revoke-self" {
    capabilities = ["update"]
}
"#;

/// Vault's `consts.ErrInvalidWrappingToken`, answered 400 for a wrapping token that is used,
/// unknown, expired, rewrapped away, or not a wrapping token at all.
pub const INVALID_WRAPPING_TOKEN: &str = "wrapping token is not valid or does not exist";

/// The cubbyhole entries of a wrapping token.
const RESPONSE: &str = "response";
const WRAPINFO: &str = "wrapinfo";

/// A wrapped reply: what unwrapping answers, byte for byte.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WrappedResponse {
    /// The reply's HTTP status (200, or a raw reply's own, such as KV v2's 404 with data).
    pub status: u16,
    /// The reply's JSON body as it would have been sent, its request id included.
    pub body: String,
}

/// What `sys/wrapping/lookup` tells about a wrapping token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrapMeta {
    /// The wrap TTL, in nanoseconds (Vault keeps a `time.Duration`: `500ms` is a TTL).
    pub creation_ttl: i64,
    pub creation_time: Nanos,
    /// The path of the request whose reply is wrapped (a rewrap keeps it).
    pub creation_path: String,
}

/// What a wrapped reply is replaced by (`wrap_info`).
#[derive(Clone, Debug)]
pub struct WrapInfo {
    pub token: Token,
    pub accessor: String,
    pub meta: WrapMeta,
    /// The accessor of the token inside, when the wrapped reply carries one (`auth`).
    pub wrapped_accessor: Option<String>,
}

fn invalid() -> EngineError {
    EngineError::invalid(INVALID_WRAPPING_TOKEN)
}

/// The entry of the live wrapping token `hash` as `tx` sees it; [`INVALID_WRAPPING_TOKEN`] when
/// there is none (gone, expired, or a token of another kind).
fn live_wrapping_token(
    tx: &dyn crate::storage::ReadTx,
    keyring: &Keyring,
    hash: &[u8],
    now: Nanos,
) -> EngineResult<TokenRow> {
    let rec = tx.get_token(hash)?.ok_or_else(invalid)?;
    let row = match open_token(keyring, &rec) {
        Ok(row) => row,
        Err(EngineError::Corrupt(_)) => return Err(invalid()),
        Err(e) => return Err(e),
    };
    if row.policies != [RESPONSE_WRAPPING_POLICY] || is_dead(tx, keyring, hash, now)? {
        return Err(invalid());
    }
    Ok(row)
}

/// Creates, in `tx`, a wrapping token holding `response` (see the module comment).
fn create_in(
    tx: &dyn WriteTx,
    keyring: &Keyring,
    token: &Token,
    row: &TokenRow,
    response: &WrappedResponse,
    meta: &WrapMeta,
) -> EngineResult<()> {
    tx.insert_token(&seal_token(keyring, row)?)?;
    tx.put_cubby(
        &row.hash,
        RESPONSE,
        &seal_entry(keyring, &row.hash, RESPONSE, response)?,
    )?;
    tx.put_cubby(
        &row.hash,
        WRAPINFO,
        &seal_entry(keyring, &row.hash, WRAPINFO, meta)?,
    )?;
    // The token itself is never stored; only its keyed hash is.
    debug_assert_eq!(keyring.token_hash(token.expose()), row.hash);
    Ok(())
}

/// A new wrapping token's entry: orphan, one use, the wrap TTL as TTL and explicit maximum.
fn new_row(keyring: &Keyring, token: &Token, meta: &WrapMeta) -> TokenRow {
    let secs = meta.creation_ttl / NANOS_PER_SEC;
    TokenRow {
        hash: keyring.token_hash(token.expose()),
        accessor: random_accessor(),
        parent: None,
        policies: vec![RESPONSE_WRAPPING_POLICY.into()],
        path: meta.creation_path.clone(),
        display_name: "token".into(),
        meta: None,
        creation: meta.creation_time,
        creation_ttl: secs,
        expire: Some(meta.creation_time.saturating_add(meta.creation_ttl)),
        explicit_max_ttl: secs,
        period: 0,
        renewable: false,
        num_uses: 1,
        orphan: true,
        role: None,
        last_renewal: None,
    }
}

impl Engine {
    /// Wraps `response`, the reply to a request on `creation_path`, for `ttl_ns` nanoseconds (> 0):
    /// the token, its cubbyhole and both entries are created in one write.
    pub async fn wrap(
        &self,
        ttl_ns: i64,
        creation_path: &str,
        response: WrappedResponse,
        wrapped_accessor: Option<String>,
    ) -> EngineResult<WrapInfo> {
        if ttl_ns <= 0 {
            return Err(EngineError::invalid("the wrap TTL must be positive"));
        }
        let keyring = self.keyring()?;
        let token = Token::generate();
        let meta = WrapMeta {
            creation_ttl: ttl_ns,
            creation_time: self.clock.now(),
            creation_path: creation_path.to_string(),
        };
        let row = new_row(&keyring, &token, &meta);
        let (t, r, m) = (token.clone(), row.clone(), meta.clone());
        self.store
            .write(move |tx| create_in(tx, &keyring, &t, &r, &response, &m))
            .await?;
        Ok(WrapInfo {
            token,
            accessor: row.accessor,
            meta,
            wrapped_accessor,
        })
    }

    /// Whether `token` is a live wrapping token (checked before a request naming one is admitted).
    pub fn is_wrapping_token(&self, token: &str) -> EngineResult<bool> {
        let keyring = self.keyring()?;
        let hash = keyring.token_hash(token);
        let now = self.clock.now();
        match self
            .store
            .read(|tx| live_wrapping_token(tx, &keyring, &hash, now))
        {
            Ok(_) => Ok(true),
            Err(EngineError::Invalid(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The identity of a live wrapping token presented as its own credential, without spending
    /// its use (unwrapping spends it); [`INVALID_WRAPPING_TOKEN`] if it is none.
    pub fn wrapping_identity(&self, token: &str) -> EngineResult<Identity> {
        let keyring = self.keyring()?;
        let hash = keyring.token_hash(token);
        let now = self.clock.now();
        let entry = self
            .store
            .read(|tx| live_wrapping_token(tx, &keyring, &hash, now))?;
        Ok(Identity {
            token: Token::new(token.to_string()),
            entry,
            use_limited: true,
        })
    }

    /// What `sys/wrapping/lookup` answers; does not use the token.
    pub fn wrapping_lookup(&self, token: &str) -> EngineResult<WrapMeta> {
        let keyring = self.keyring()?;
        let hash = keyring.token_hash(token);
        let now = self.clock.now();
        self.store.read(|tx| {
            live_wrapping_token(tx, &keyring, &hash, now)?;
            read_entry(tx, &keyring, &hash, WRAPINFO)?.ok_or_else(invalid)
        })
    }

    /// Unwraps: the wrapped reply, and the token deleted with its cubbyhole, in one write.
    pub async fn unwrap(&self, token: &str) -> EngineResult<WrappedResponse> {
        let keyring = self.keyring()?;
        let hash = keyring.token_hash(token);
        let now = self.clock.now();
        let response = self
            .store
            .write(move |tx| {
                live_wrapping_token(tx, &keyring, &hash, now)?;
                let response: WrappedResponse =
                    read_entry(tx, &keyring, &hash, RESPONSE)?.ok_or_else(invalid)?;
                tx.delete_token_tree(&hash)?;
                Ok::<_, EngineError>(response)
            })
            .await?;
        self.token_cache.invalidate();
        Ok(response)
    }

    /// Rewraps: a new wrapping token with the same reply, wrap TTL (or `max_ttl_ns`, when shorter:
    /// Vault takes the shorter of the two) and creation path; the old token is deleted with its
    /// cubbyhole in the same write.
    pub async fn rewrap(&self, token: &str, max_ttl_ns: Option<i64>) -> EngineResult<WrapInfo> {
        let keyring = self.keyring()?;
        let old = keyring.token_hash(token);
        let now = self.clock.now();
        let new_token = Token::generate();
        let k = keyring.clone();
        let nt = new_token.clone();
        let clock = self.clock.clone();
        let (row, meta) = self
            .store
            .write(move |tx| {
                live_wrapping_token(tx, &k, &old, now)?;
                let response: WrappedResponse =
                    read_entry(tx, &k, &old, RESPONSE)?.ok_or_else(invalid)?;
                let was: WrapMeta = read_entry(tx, &k, &old, WRAPINFO)?.ok_or_else(invalid)?;
                tx.delete_token_tree(&old)?;
                let meta = WrapMeta {
                    creation_ttl: match max_ttl_ns {
                        Some(m) if m > 0 && m < was.creation_ttl => m,
                        _ => was.creation_ttl,
                    },
                    creation_time: clock.now(),
                    creation_path: was.creation_path,
                };
                let row = new_row(&k, &nt, &meta);
                create_in(tx, &k, &nt, &row, &response, &meta)?;
                Ok::<_, EngineError>((row, meta))
            })
            .await?;
        self.token_cache.invalidate();
        Ok(WrapInfo {
            token: new_token,
            accessor: row.accessor,
            meta,
            wrapped_accessor: None,
        })
    }
}
