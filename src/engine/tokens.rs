//! Tokens and the identity they carry. Tokens are stored only as a keyed hash (HMAC-SHA256 under the
//! keyring's token key); the lookup is by hash and the final comparison is constant-time.

use std::collections::BTreeMap;

use rand::RngCore;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::clock::Nanos;
use super::error::{EngineError, EngineResult};
use super::Engine;
use crate::crypto::Keyring;
use crate::storage::rows::{self, TokenRow};

/// A token as a client holds it. Its `Debug` is redacted and its memory wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Token(String);

impl Token {
    pub fn new(s: String) -> Self {
        Self(s)
    }

    /// `kvs.` followed by 32 base62 characters (about 190 bits of entropy); the prefix makes leaked
    /// kvseal tokens recognisable to secret scanners, as Vault's `hvs.` does.
    pub fn generate() -> Self {
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        // Each character takes a random byte modulo 62, drawn again when >= 248 (4 * 62) so that every
        // character is uniform.
        let mut out = String::from("kvs.");
        let mut rng = rand::rngs::OsRng;
        while out.len() < 36 {
            let mut b = [0u8; 1];
            rng.fill_bytes(&mut b);
            if b[0] < 248 {
                out.push(ALPHABET[(b[0] % 62) as usize] as char);
            }
        }
        Self(out)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Who is calling, once their token has been checked.
#[derive(Clone, Debug)]
pub struct Identity {
    pub token: Token,
    pub accessor: String,
    pub policies: Vec<String>,
    pub path: String,
    pub display_name: String,
    pub meta: Option<BTreeMap<String, String>>,
    pub creation: Nanos,
    pub ttl: i64,
    pub expire: Option<Nanos>,
    pub num_uses: i64,
    pub orphan: bool,
}

impl Identity {
    pub fn is_root(&self) -> bool {
        self.policies.iter().any(|p| p == "root")
    }
}

fn accessor() -> String {
    let mut b = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(super) fn root_token_row(keyring: &Keyring, token: &Token, now: Nanos) -> TokenRow {
    TokenRow {
        hash: keyring.token_hash(token.expose()),
        accessor: accessor(),
        policies: vec!["root".into()],
        path: "auth/token/root".into(),
        display_name: "root".into(),
        meta: None,
        creation: now,
        ttl: 0,
        expire: None,
        num_uses: 0,
        orphan: true,
    }
}

impl Engine {
    /// Checks a token and returns its identity. Unknown or expired tokens are `PermissionDenied`.
    pub fn authenticate(&self, token: &str) -> EngineResult<Identity> {
        let keyring = self.keyring()?;
        if token.is_empty() {
            return Err(EngineError::PermissionDenied);
        }
        let hash = keyring.token_hash(token);
        let row = self
            .store
            .read(|c| rows::get_token(c, &hash))?
            .ok_or(EngineError::PermissionDenied)?;
        // The row was found by its hash; compare in constant time all the same, so no timing of the
        // comparison depends on how much of the hash matched.
        if !bool::from(row.hash.ct_eq(&hash)) {
            return Err(EngineError::PermissionDenied);
        }
        if row.expire.is_some_and(|e| e <= self.clock.now()) {
            return Err(EngineError::PermissionDenied);
        }
        Ok(Identity {
            token: Token::new(token.to_string()),
            accessor: row.accessor,
            policies: row.policies,
            path: row.path,
            display_name: row.display_name,
            meta: row.meta,
            creation: row.creation,
            ttl: row.ttl,
            expire: row.expire,
            num_uses: row.num_uses,
            orphan: row.orphan,
        })
    }
}
