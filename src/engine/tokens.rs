//! Tokens: creation (with parents, roles, TTLs, use counts), lookup, renewal, revocation, and the
//! identity a token carries. Tokens are stored only as a keyed hash (HMAC-SHA256 under the keyring's
//! token key); lookups go by that hash and the final comparison is constant-time.

use std::collections::BTreeMap;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::clock::{Nanos, NANOS_PER_SEC};
use super::error::{EngineError, EngineResult};
use super::Engine;
use crate::crypto::Keyring;
use crate::storage::token_rows::{self as rows, Named, TokenRow};

/// Vault's system-wide default and maximum TTL (768h), in seconds.
pub const SYSTEM_MAX_TTL: i64 = 768 * 3600;

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

/// Who is calling, once their token has been checked: the token and its stored entry.
#[derive(Clone, Debug)]
pub struct Identity {
    pub token: Token,
    pub entry: TokenRow,
}

impl Identity {
    pub fn is_root(&self) -> bool {
        self.entry.policies.iter().any(|p| p == "root")
    }

    /// An identity that is not a stored token: a verified client certificate on an OKMS route. It
    /// has the certificate identity's policies (and `default`), and nothing to look up or revoke.
    pub fn transient(display_name: &str, policies: &[String]) -> Self {
        let mut p = normalize(policies);
        p.retain(|x| x != "root");
        if !p.iter().any(|x| x == "default") {
            p.push("default".into());
            p.sort();
        }
        Self {
            token: Token::new(String::new()),
            entry: bare_row(p, "auth/cert/login", display_name),
        }
    }
}

/// A token role (`auth/token/roles/<name>`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct TokenRole {
    pub allowed_policies: Vec<String>,
    pub disallowed_policies: Vec<String>,
    pub orphan: bool,
    pub renewable: bool,
    /// Seconds; 0 = not periodic.
    pub token_period: i64,
    /// Seconds; 0 = none.
    pub token_explicit_max_ttl: i64,
    pub token_type: String,
}

/// What `auth/token/create` asks for.
#[derive(Clone, Debug, Default)]
pub struct TokenRequest {
    pub policies: Option<Vec<String>>,
    pub ttl: Option<i64>,
    pub explicit_max_ttl: Option<i64>,
    pub period: Option<i64>,
    pub renewable: Option<bool>,
    pub num_uses: i64,
    pub display_name: Option<String>,
    pub meta: Option<BTreeMap<String, String>>,
    pub no_default_policy: bool,
    /// Create without a parent (`no_parent`, `create-orphan`, or a role with `orphan`).
    pub orphan: bool,
    pub role: Option<String>,
}

fn random_accessor() -> String {
    let mut b = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Go's duration string without zero trailing units, as Vault prints TTLs in warnings ("2h",
/// "1h30m").
fn short_duration(secs: i64) -> String {
    let s = super::duration::go_duration_string(secs);
    let s = s.strip_suffix("0s").filter(|r| !r.is_empty()).unwrap_or(&s);
    let s = s.strip_suffix("0m").filter(|r| !r.is_empty()).unwrap_or(s);
    s.to_string()
}

fn secs(n: i64) -> i64 {
    n.saturating_mul(NANOS_PER_SEC)
}

/// Vault's display names: `token`, or `token-<name>` with anything but letters, digits and `-`
/// replaced by `-`.
fn display_name(given: Option<&str>) -> String {
    match given.map(str::trim).filter(|s| !s.is_empty()) {
        None => "token".into(),
        Some(n) => {
            let clean: String = n
                .to_lowercase()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            format!("token-{clean}")
        }
    }
}

/// Sorted, deduplicated, lower-cased policy names (Vault keeps policies sorted).
fn normalize(policies: &[String]) -> Vec<String> {
    let mut p: Vec<String> = policies
        .iter()
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    p.sort();
    p.dedup();
    p
}

/// An orphan, non-expiring, non-renewable entry with these policies: the base of the root token and
/// of certificate identities.
fn bare_row(policies: Vec<String>, path: &str, display_name: &str) -> TokenRow {
    TokenRow {
        hash: Vec::new(),
        accessor: String::new(),
        parent: None,
        policies,
        path: path.into(),
        display_name: display_name.into(),
        meta: None,
        creation: 0,
        creation_ttl: 0,
        expire: None,
        explicit_max_ttl: 0,
        period: 0,
        renewable: false,
        num_uses: 0,
        orphan: true,
        role: None,
        last_renewal: None,
    }
}

pub(super) fn root_token_row(keyring: &Keyring, token: &Token, now: Nanos) -> TokenRow {
    TokenRow {
        hash: keyring.token_hash(token.expose()),
        accessor: random_accessor(),
        creation: now,
        ..bare_row(vec!["root".into()], "auth/token/root", "root")
    }
}

/// How a token is named in a lookup, revoke or renew.
pub enum TokenRef<'a> {
    Token(&'a str),
    Accessor(&'a str),
}

impl Engine {
    fn find_token(&self, r: &TokenRef<'_>) -> EngineResult<TokenRow> {
        let keyring = self.keyring()?;
        let now = self.clock.now();
        let row = match r {
            TokenRef::Token(t) => {
                let hash = keyring.token_hash(t);
                let row = self
                    .token_by_hash(&hash)?
                    .ok_or(EngineError::PermissionDenied)?;
                // Found by its hash; compare in constant time all the same.
                if !bool::from(row.hash.ct_eq(&hash)) {
                    return Err(EngineError::PermissionDenied);
                }
                row
            }
            TokenRef::Accessor(a) => self
                .store
                .read(|c| rows::get_token_by_accessor(c, a))?
                .ok_or(EngineError::PermissionDenied)?,
        };
        self.check_alive(&row, now)?;
        Ok(row)
    }

    /// A token entry by hash, through the cache.
    fn token_by_hash(&self, hash: &[u8]) -> EngineResult<Option<TokenRow>> {
        let key = hash.to_vec();
        if let Some(row) = self.token_cache.get(&key) {
            return Ok(Some(row));
        }
        let generation = self.token_cache.generation();
        let row = self.store.read(|c| rows::get_token(c, hash))?;
        if let Some(r) = &row {
            self.token_cache.insert_if(generation, key, r.clone());
        }
        Ok(row)
    }

    /// A token is alive when it has not expired and neither has any ancestor. Expiry needs no sweep:
    /// it is checked here, at every use.
    fn check_alive(&self, row: &TokenRow, now: Nanos) -> EngineResult<()> {
        if row.expire.is_some_and(|e| e <= now) {
            return Err(EngineError::PermissionDenied);
        }
        let mut parent = row.parent.clone();
        let mut depth = 0;
        while let Some(p) = parent {
            depth += 1;
            if depth > 64 {
                return Err(EngineError::PermissionDenied);
            }
            let prow = self
                .token_by_hash(&p)?
                .ok_or(EngineError::PermissionDenied)?;
            if prow.expire.is_some_and(|e| e <= now) {
                return Err(EngineError::PermissionDenied);
            }
            parent = prow.parent;
        }
        Ok(())
    }

    /// Checks a token and returns its identity. Unknown, expired or revoked tokens (or children of
    /// expired ones) are `PermissionDenied`. A token with a use limit spends one use, atomically; the
    /// last use revokes it.
    pub async fn authenticate(&self, token: &str) -> EngineResult<Identity> {
        if token.is_empty() {
            return Err(EngineError::PermissionDenied);
        }
        let mut entry = self.find_token(&TokenRef::Token(token))?;
        if entry.num_uses > 0 {
            let hash = entry.hash.clone();
            entry.num_uses = self
                .store
                .write(move |c| {
                    let row = rows::get_token(c, &hash)?.ok_or(EngineError::PermissionDenied)?;
                    match row.num_uses {
                        0 => Ok(0),
                        1 => {
                            rows::delete_token_tree(c, &hash)?;
                            Ok(0)
                        }
                        n => {
                            rows::set_num_uses(c, &hash, n - 1)?;
                            Ok(n - 1)
                        }
                    }
                })
                .await?;
            self.token_cache.invalidate();
        }
        Ok(Identity {
            token: Token::new(token.to_string()),
            entry,
        })
    }

    /// Looks a token up (without spending a use).
    pub fn lookup_token(&self, r: TokenRef<'_>) -> EngineResult<TokenRow> {
        self.find_token(&r)
    }

    /// Creates a token as a child of `parent` (or an orphan). Non-root parents can only hand out
    /// policies they hold; a child never outlives a parent that expires.
    pub async fn create_token(
        &self,
        parent: &Identity,
        req: TokenRequest,
    ) -> EngineResult<(Token, TokenRow)> {
        let keyring = self.keyring()?;
        let now = self.clock.now();
        let role = match &req.role {
            Some(name) => Some(
                self.token_role(name)?
                    .ok_or_else(|| EngineError::invalid(format!("unknown role {name}")))?,
            ),
            None => None,
        };
        let parent_is_root = parent.is_root();
        let mut policies = match &req.policies {
            Some(p) => normalize(p),
            None => match &role {
                Some(r) if !r.allowed_policies.is_empty() => normalize(&r.allowed_policies),
                _ => normalize(&parent.entry.policies),
            },
        };
        if let Some(r) = &role {
            let allowed = normalize(&r.allowed_policies);
            if !allowed.is_empty() {
                if let Some(p) = policies
                    .iter()
                    .find(|p| *p != "default" && !allowed.contains(p))
                {
                    return Err(EngineError::invalid(format!(
                        "token policies ({p}) must be subset of the role's allowed policies"
                    )));
                }
            }
            let disallowed = normalize(&r.disallowed_policies);
            if let Some(p) = policies.iter().find(|p| disallowed.contains(p)) {
                return Err(EngineError::invalid(format!(
                    "token policy ({p}) is disallowed by this role"
                )));
            }
        } else if !parent_is_root {
            if let Some(p) = policies
                .iter()
                .find(|p| *p != "default" && !parent.entry.policies.contains(p))
            {
                return Err(EngineError::invalid(format!(
                    "child policies must be subset of parent: {p} is not"
                )));
            }
        }
        let is_root_token = policies.iter().any(|p| p == "root");
        if is_root_token && !parent_is_root {
            return Err(EngineError::invalid(
                "root tokens may only be created by a root token",
            ));
        }
        if !req.no_default_policy && !is_root_token && !policies.iter().any(|p| p == "default") {
            policies.push("default".into());
            policies.sort();
        }
        let orphan = req.orphan || role.as_ref().is_some_and(|r| r.orphan);
        let period = role
            .as_ref()
            .map(|r| r.token_period)
            .filter(|p| *p > 0)
            .or(req.period)
            .unwrap_or(0)
            .max(0);
        let explicit_max = match (
            req.explicit_max_ttl.unwrap_or(0).max(0),
            role.as_ref().map_or(0, |r| r.token_explicit_max_ttl),
        ) {
            (0, r) => r,
            (q, 0) => q,
            (q, r) => q.min(r),
        };
        let renewable = req.renewable.unwrap_or(true) && role.as_ref().is_none_or(|r| r.renewable);
        // TTL: a periodic token lives one period; otherwise the requested TTL or the system default.
        // Only a root token created by root may have no expiry at all.
        let mut ttl = if period > 0 {
            period
        } else {
            match req.ttl.unwrap_or(0) {
                t if t > 0 => t,
                _ if is_root_token && explicit_max == 0 => 0,
                _ => SYSTEM_MAX_TTL,
            }
        };
        if explicit_max > 0 && (ttl == 0 || ttl > explicit_max) {
            ttl = explicit_max;
        }
        if ttl > SYSTEM_MAX_TTL {
            ttl = SYSTEM_MAX_TTL;
        }
        let mut expire = (ttl > 0).then(|| now + secs(ttl));
        if !orphan {
            if let Some(pe) = parent.entry.expire {
                if expire.is_none_or(|e| e > pe) {
                    expire = Some(pe);
                    ttl = ((pe - now) / NANOS_PER_SEC).max(0);
                }
            }
        }
        let path = match (&req.role, req.orphan) {
            (Some(r), _) => format!("auth/token/create/{r}"),
            (None, true) => "auth/token/create-orphan".into(),
            (None, false) => "auth/token/create".into(),
        };
        let token = Token::generate();
        let row = TokenRow {
            hash: keyring.token_hash(token.expose()),
            accessor: random_accessor(),
            parent: (!orphan).then(|| parent.entry.hash.clone()),
            policies,
            path,
            display_name: display_name(req.display_name.as_deref()),
            meta: req.meta.filter(|m| !m.is_empty()),
            creation: now,
            creation_ttl: ttl,
            expire,
            explicit_max_ttl: explicit_max,
            period,
            renewable: renewable && ttl > 0,
            num_uses: req.num_uses.max(0),
            orphan,
            role: req.role.clone(),
            last_renewal: None,
        };
        let stored = row.clone();
        self.store
            .write(move |c| rows::insert_token(c, &stored))
            .await?;
        Ok((token, row))
    }

    /// Renews a token: a periodic token gets a new period; others `increment` seconds (default: the
    /// original TTL), never beyond the explicit maximum or the system maximum from creation.
    pub async fn renew_token(
        &self,
        r: TokenRef<'_>,
        increment: Option<i64>,
    ) -> EngineResult<(TokenRow, Option<String>)> {
        let row = self.find_token(&r)?;
        if !row.renewable || row.expire.is_none() {
            return Err(EngineError::invalid("token is not renewable"));
        }
        let now = self.clock.now();
        let ttl = if row.period > 0 {
            row.period
        } else {
            increment.filter(|i| *i > 0).unwrap_or(row.creation_ttl)
        };
        let mut limit = row.creation + secs(SYSTEM_MAX_TTL);
        if row.explicit_max_ttl > 0 {
            limit = limit.min(row.creation + secs(row.explicit_max_ttl));
        }
        let mut expire = now + secs(ttl);
        let mut warning = None;
        if expire > limit {
            let max_left = ((limit - now) / NANOS_PER_SEC).max(0);
            // Vault's words, which scripts grep for.
            warning = Some(format!(
                "TTL of {:?} exceeded the effective max_ttl of {:?}; TTL value is capped accordingly",
                short_duration(ttl),
                short_duration(max_left)
            ));
            expire = limit;
        }
        let hash = row.hash.clone();
        self.store
            .write(move |c| rows::set_expiry(c, &hash, Some(expire), now))
            .await?;
        self.token_cache.invalidate();
        Ok((self.find_token(&r)?, warning))
    }

    /// Issues an orphan token for an auth method (`auth/cert/login`): the method has already proven who
    /// the caller is, so there is no parent to check against. `root` is never granted this way.
    pub async fn issue_token(
        &self,
        display_name: &str,
        policies: &[String],
        ttl: i64,
        path: &str,
    ) -> EngineResult<(Token, TokenRow)> {
        let keyring = self.keyring()?;
        let now = self.clock.now();
        let mut identity = Identity::transient(display_name, policies);
        let ttl = ttl.clamp(1, SYSTEM_MAX_TTL);
        let token = Token::generate();
        identity.entry.hash = keyring.token_hash(token.expose());
        identity.entry.accessor = random_accessor();
        identity.entry.path = path.to_string();
        identity.entry.creation = now;
        identity.entry.creation_ttl = ttl;
        identity.entry.expire = Some(now + secs(ttl));
        identity.entry.renewable = true;
        let row = identity.entry.clone();
        let stored = row.clone();
        self.store
            .write(move |c| rows::insert_token(c, &stored))
            .await?;
        Ok((token, row))
    }

    /// Revokes a token and, unless `keep_children`, every token descended from it.
    pub async fn revoke_token(&self, r: TokenRef<'_>, keep_children: bool) -> EngineResult<()> {
        let row = match self.find_token(&r) {
            Ok(row) => row,
            // Revoking a token that is already gone (or expired) is not an error in Vault.
            Err(EngineError::PermissionDenied) => return Ok(()),
            Err(e) => return Err(e),
        };
        let hash = row.hash;
        self.store
            .write(move |c| {
                if keep_children {
                    rows::delete_token_keep_children(c, &hash)
                } else {
                    rows::delete_token_tree(c, &hash)
                }
            })
            .await?;
        self.token_cache.invalidate();
        Ok(())
    }

    pub fn token_accessors(&self) -> EngineResult<Vec<String>> {
        self.keyring()?;
        self.store.read(rows::list_accessors)
    }

    pub fn token_role(&self, name: &str) -> EngineResult<Option<TokenRole>> {
        let text = self
            .store
            .read(|c| rows::get_named(c, Named::TokenRoles, name))?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    pub async fn put_token_role(&self, name: &str, role: &TokenRole) -> EngineResult<()> {
        self.keyring()?;
        let (name, text) = (
            name.to_string(),
            serde_json::to_string(role).map_err(|e| EngineError::Storage(e.to_string()))?,
        );
        self.store
            .write(move |c| rows::put_named(c, Named::TokenRoles, &name, &text))
            .await
    }

    pub async fn delete_token_role(&self, name: &str) -> EngineResult<()> {
        self.keyring()?;
        let name = name.to_string();
        self.store
            .write(move |c| rows::delete_named(c, Named::TokenRoles, &name))
            .await
    }

    pub fn token_role_names(&self) -> EngineResult<Vec<String>> {
        self.keyring()?;
        Ok(self
            .store
            .read(|c| rows::list_named(c, Named::TokenRoles))?
            .into_iter()
            .map(|(n, _)| n)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(display_name(None), "token");
        assert_eq!(display_name(Some("My App!")), "token-my-app-");
        assert_eq!(
            normalize(&["b".into(), "A".into(), "b".into(), " ".into()]),
            ["a", "b"]
        );
        let t = Token::generate();
        assert!(t.expose().starts_with("kvs.") && t.expose().len() == 36);
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
    }
}
