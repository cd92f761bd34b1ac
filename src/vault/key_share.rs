//! The `key` and `nonce` fields of a generate-root or rekey update: an unseal key share in hex or
//! base64 (as `sys/unseal` takes it), and the operation's nonce.

use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::decode;
use super::error::{VaultError, VaultResult};

/// How a route words a missing field: Vault's raw handlers and OpenBao's framework paths differ.
#[derive(Clone, Copy)]
pub enum Wording {
    /// Vault's unauthenticated routes: `'key' must be specified in request body as JSON`; a
    /// missing nonce is the empty nonce, refused as incorrect.
    Vault,
    /// OpenBao's authenticated routes: `missing required field 'key'` (and `'nonce'`).
    OpenBao,
}

/// The share and the nonce of an update body.
pub fn parse(
    body: &Map<String, Value>,
    wording: Wording,
) -> VaultResult<(Zeroizing<Vec<u8>>, String)> {
    let text = |k: &str| -> VaultResult<String> {
        match body.get(k) {
            Some(v) => decode::string(v, k),
            None => Ok(String::new()),
        }
    };
    let nonce = text("nonce")?;
    if nonce.is_empty() && matches!(wording, Wording::OpenBao) {
        return Err(VaultError::bad("missing required field 'nonce'"));
    }
    let key = Zeroizing::new(text("key")?);
    if key.trim().is_empty() {
        return Err(VaultError::bad(match wording {
            Wording::Vault => "'key' must be specified in request body as JSON",
            Wording::OpenBao => "missing required field 'key'",
        }));
    }
    let share = crate::crypto::decode_key_text(key.trim())
        .ok_or_else(|| VaultError::bad("'key' must be a valid hex or base64 string"))?;
    Ok((share, nonce))
}
