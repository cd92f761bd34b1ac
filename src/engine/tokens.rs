//! Tokens: creation (with parents, roles, TTLs, use counts), lookup, renewal, revocation, and the
//! identity a token carries. Tokens are stored only as a keyed hash (HMAC-SHA256 under the keyring's
//! token key); lookups go by that hash and the final comparison is constant-time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rand::RngCore;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::clock::{Nanos, NANOS_PER_SEC};
use super::error::{EngineError, EngineResult};
use super::token_entry::{accessor_hash, open_token, seal_token};
use super::token_roles::{remove_duplicates, resolve_policies, PolicyRequest};
use super::ttl::{calculate_ttl, TtlTerms};
use super::Engine;
use crate::crypto::Keyring;
use crate::storage::{ReadTx, TokenRecord};

pub use super::token_entry::TokenRow;

/// Reads and opens the entry of `hash`: `None` when there is none, and when it fails to open (a
/// token whose entry fails is no token; the log names the row).
fn load_token(
    tx: &dyn ReadTx,
    keyring: &Keyring,
    hash: &[u8],
) -> EngineResult<Option<(TokenRecord, TokenRow)>> {
    let Some(rec) = tx.get_token(hash)? else {
        return Ok(None);
    };
    match open_token(keyring, &rec) {
        Ok(row) => Ok(Some((rec, row))),
        Err(EngineError::Corrupt(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

pub use super::token_roles::TokenRole;
pub use super::ttl::SYSTEM_MAX_TTL;

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
        Self::generate_of_length(TOKEN_LENGTH)
    }

    /// `kvs.` followed by `len - 4` base62 characters: a root token made by `sys/generate-root` has
    /// the length of the one-time password it is encoded with (see `generate_root`).
    pub(super) fn generate_of_length(len: usize) -> Self {
        let mut out = String::with_capacity(len);
        out.push_str("kvs.");
        out.push_str(&random_base62(len.saturating_sub(4)));
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

/// The length of the tokens kvseal makes (`kvs.` and 32 characters).
pub const TOKEN_LENGTH: usize = 36;

/// `n` random base62 characters, wiped from memory when dropped. Each character takes a random byte
/// modulo 62, drawn again when >= 248 (4 * 62) so that every character is uniform.
pub(super) fn random_base62(n: usize) -> zeroize::Zeroizing<String> {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = zeroize::Zeroizing::new(String::with_capacity(n));
    let mut rng = rand::rngs::OsRng;
    while out.len() < n {
        let mut b = [0u8; 1];
        rng.fill_bytes(&mut b);
        if b[0] < 248 {
            out.push(ALPHABET[(b[0] % 62) as usize] as char);
        }
    }
    out
}

/// Who is calling, once their token has been checked: the token and its stored entry.
#[derive(Clone, Debug)]
pub struct Identity {
    pub token: Token,
    pub entry: TokenRow,
    /// The token has a use limit (`num_uses`), so it may not create tokens: a child would escape
    /// the limit (Vault: "restricted use token cannot generate child tokens").
    pub use_limited: bool,
}

impl Identity {
    pub fn is_root(&self) -> bool {
        self.entry.policies.iter().any(|p| p == "root")
    }

    /// An identity that is not a stored token: a verified client certificate on an OKMS route. It
    /// has the certificate identity's policies (and `default`), and nothing to look up or revoke.
    pub fn transient(display_name: &str, policies: &[String]) -> Self {
        let mut p = remove_duplicates(policies);
        p.retain(|x| x != "root");
        if !p.iter().any(|x| x == "default") {
            p.push("default".into());
            p.sort();
        }
        Self {
            token: Token::new(String::new()),
            entry: bare_row(p, "auth/cert/login", display_name),
            use_limited: false,
        }
    }
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
    /// `no_parent` (needs root or sudo; ignored with a role, whose `orphan` decides, as in Vault).
    pub no_parent: bool,
    /// Asked on `auth/token/create-orphan`, which its own ACL rule governs.
    pub orphan_endpoint: bool,
    pub role: Option<String>,
    pub entity_alias: Option<String>,
    /// The caller is root or holds `sudo` on the create path: what Vault's `isSudo` unlocks
    /// (any policy but root, `no_parent`, `period`).
    pub sudo: bool,
}

/// A certificate identity's token settings (`[[auth.cert]]`), as Vault's cert role holds them
/// (`token_policies`, `token_ttl`, `token_max_ttl`). Seconds; 0 = not set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CertRole {
    pub name: String,
    pub policies: Vec<String>,
    pub ttl: i64,
    pub max_ttl: i64,
}

/// The certificate identities the server was started with, by name.
pub(super) type CertRoles = std::sync::RwLock<Arc<HashMap<String, CertRole>>>;

/// The token path for a cert login: renewals of these tokens ask the certificate identity.
const CERT_LOGIN_PATH: &str = "auth/cert/login";

/// Vault's "the lesser of both when both are set" (role and request values of a TTL limit).
fn lesser_set(a: i64, b: i64) -> i64 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (x, y) => x.min(y),
    }
}

/// A duration field of a create request: Vault refuses negative values ("ttl must be positive").
fn non_negative(v: Option<i64>, name: &str) -> EngineResult<i64> {
    match v {
        Some(d) if d < 0 => Err(EngineError::invalid(format!("{name} must be positive"))),
        Some(d) => Ok(d),
        None => Ok(0),
    }
}

pub(super) fn random_accessor() -> String {
    let mut b = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
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
            TokenRef::Accessor(a) => {
                let rec = self
                    .store
                    .read(|tx| tx.get_token_by_accessor(&accessor_hash(&keyring, a)))?
                    .ok_or(EngineError::PermissionDenied)?;
                open_token(&keyring, &rec).map_err(|_| EngineError::PermissionDenied)?
            }
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
        let row = self
            .with_current_keys(|keyring| self.store.read(|tx| load_token(tx, keyring, hash)))?
            .map(|(_, row)| row);
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
        if self.holds_broken_policy(&entry.policies) {
            return Err(EngineError::Corrupt(
                "a policy this token holds could not be loaded".into(),
            ));
        }
        let use_limited = entry.num_uses > 0;
        if use_limited {
            let hash = entry.hash.clone();
            let keyring = self.keyring()?;
            // The count is read and spent in one transaction, with a conditional replace: two
            // requests never both spend the last use, whatever backend runs them.
            entry.num_uses = self
                .store
                .write(move |tx| {
                    let (old, mut row) =
                        load_token(tx, &keyring, &hash)?.ok_or(EngineError::PermissionDenied)?;
                    match row.num_uses {
                        0 => Ok::<_, EngineError>(0),
                        1 => {
                            tx.delete_token_tree(&hash)?;
                            Ok(0)
                        }
                        n => {
                            row.num_uses = n - 1;
                            tx.replace_token(&old, &seal_token(&keyring, &row)?)?;
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
            use_limited,
        })
    }

    /// Looks a token up (without spending a use).
    pub fn lookup_token(&self, r: TokenRef<'_>) -> EngineResult<TokenRow> {
        self.find_token(&r)
    }

    /// Creates a token as a child of `parent` (or an orphan) by Vault's rules (`handleCreateCommon`):
    /// the policies a role or the caller may hand out, `period` and `no_parent` only with sudo, TTLs
    /// capped by the explicit and system maximums. Returns Vault's warnings with the token.
    pub async fn create_token(
        &self,
        parent: &Identity,
        req: TokenRequest,
    ) -> EngineResult<(Token, TokenRow, Vec<String>)> {
        let keyring = self.keyring()?;
        let now = self.clock.now();
        if parent.use_limited {
            return Err(EngineError::invalid(
                "restricted use token cannot generate child tokens",
            ));
        }
        let role = match &req.role {
            Some(name) => Some(
                self.token_role(name)?
                    .ok_or_else(|| EngineError::invalid(format!("unknown role {name}")))?,
            ),
            None => None,
        };
        if req.num_uses < 0 {
            return Err(EngineError::invalid("number of uses cannot be negative"));
        }
        // kvseal has no identity store: no role allows an entity alias (refused at role write).
        if req.entity_alias.as_deref().is_some_and(|a| !a.is_empty()) {
            return Err(EngineError::invalid(if role.is_some() {
                "invalid 'entity_alias' value"
            } else {
                "'entity_alias' is only allowed in combination with token role"
            }));
        }
        let mut renewable = req.renewable.unwrap_or(true);
        let mut num_uses = req.num_uses;
        let mut path = match (&req.role, req.orphan_endpoint) {
            (Some(r), _) => format!("auth/token/create/{r}"),
            (None, true) => "auth/token/create-orphan".into(),
            (None, false) => "auth/token/create".into(),
        };
        if let Some(r) = &role {
            renewable &= r.renewable;
            // 0 is unlimited, so any role limit is lower than none.
            if r.token_num_uses > 0 && (num_uses == 0 || r.token_num_uses < num_uses) {
                num_uses = r.token_num_uses;
            }
            if !r.path_suffix.is_empty() {
                path = format!("{path}/{}", r.path_suffix);
            }
        }
        let policies = resolve_policies(&PolicyRequest {
            parent: &parent.entry.policies,
            role: role.as_ref(),
            requested: req.policies.as_deref().unwrap_or_default(),
            no_default_policy: req.no_default_policy,
            sudo: req.sudo,
        })?;
        let orphan = match &role {
            Some(r) => r.orphan,
            None if req.no_parent => {
                if !req.sudo {
                    return Err(EngineError::invalid(
                        "root or sudo privileges required to create orphan token",
                    ));
                }
                true
            }
            None => req.orphan_endpoint,
        };
        // The token keeps the explicit maximum and period it was asked for (what lookup shows);
        // a role's are merged in here and again, from the role as it is then, at each renewal.
        let explicit_max_ttl = non_negative(req.explicit_max_ttl, "explicit_max_ttl")?;
        let period = non_negative(req.period, "period")?;
        if period > 0 && !req.sudo {
            return Err(EngineError::invalid(
                "root or sudo privileges required to create periodic token",
            ));
        }
        let requested_ttl = non_negative(req.ttl, "ttl")?;
        let mut warnings = Vec::new();
        let (mut explicit_to_use, mut period_to_use) = (explicit_max_ttl, period);
        if let Some(r) = &role {
            if r.token_explicit_max_ttl != 0 {
                explicit_to_use = lesser_set(explicit_to_use, r.token_explicit_max_ttl);
                if explicit_max_ttl != 0 {
                    warnings.push(format!("Explicit max TTL specified both during creation call and in role; using the lesser value of {explicit_to_use} seconds"));
                }
            }
            if r.token_period != 0 {
                period_to_use = lesser_set(period_to_use, r.token_period);
                if period != 0 {
                    warnings.push(format!("Period specified both during creation call and in role; using the lesser value of {period_to_use} seconds"));
                }
            }
        }
        let is_root_token = policies.iter().any(|p| p == "root");
        let mut ttl = requested_ttl;
        // Only a root token asked for without any TTL is left without expiry.
        if period_to_use > 0 || ttl > 0 || !is_root_token {
            let start = now / NANOS_PER_SEC;
            let terms = TtlTerms {
                ttl,
                max_ttl: 0,
                period: period_to_use,
                explicit_max_ttl: explicit_to_use,
            };
            let (t, w) = calculate_ttl(0, terms, start, start)?;
            ttl = t;
            warnings.extend(w);
        }
        if ttl == 0 && explicit_to_use > 0 {
            ttl = explicit_to_use;
        }
        if ttl == 0 {
            if parent.entry.expire.is_some() {
                return Err(EngineError::invalid(
                    "expiring root tokens cannot create non-expiring root tokens",
                ));
            }
            renewable = false;
        }
        let mut expire = (ttl > 0).then(|| now + secs(ttl));
        // kvseal also never lets a child outlive an expiring parent (it would die with it anyway).
        if !orphan {
            if let Some(pe) = parent.entry.expire {
                if expire.is_none_or(|e| e > pe) {
                    expire = Some(pe);
                    ttl = ((pe - now) / NANOS_PER_SEC).max(0);
                }
            }
        }
        for p in policies.iter().filter(|p| *p != "root") {
            if self.policy_text(p)?.is_none() {
                warnings.push(format!("Policy {p:?} does not exist"));
            }
        }
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
            explicit_max_ttl,
            period,
            renewable,
            num_uses,
            orphan,
            role: req.role.clone(),
            last_renewal: None,
        };
        let record = seal_token(&keyring, &row)?;
        self.store
            .write(move |tx| {
                tx.insert_token(&record)?;
                Ok::<_, EngineError>(())
            })
            .await?;
        Ok((token, row, warnings))
    }

    /// What bounds a renewal of this token: the method that issued it decides, as the expiration
    /// manager asks Vault's auth backend. A cert token follows its certificate identity as
    /// configured now; a role token its role as it is now; any other token its own limits.
    fn renew_terms(&self, row: &TokenRow) -> EngineResult<TtlTerms> {
        if row.path == CERT_LOGIN_PATH {
            let name = row
                .meta
                .as_ref()
                .and_then(|m| m.get("cert_name"))
                .cloned()
                .unwrap_or_default();
            let cert = self.cert_role(&name).ok_or_else(|| {
                EngineError::invalid(format!(
                    "certificate identity {name:?} no longer exists, not renewing"
                ))
            })?;
            // Vault's cert backend refuses when the identity's policies changed since login
            // (`policyutil.EquivalentPolicies`: `default` aside).
            let without_default = |p: &[String]| {
                let mut v = remove_duplicates(p);
                v.retain(|x| x != "default" && x != "root");
                v
            };
            if without_default(&cert.policies) != without_default(&row.policies) {
                return Err(EngineError::invalid("policies have changed, not renewing"));
            }
            return Ok(TtlTerms {
                ttl: cert.ttl,
                max_ttl: cert.max_ttl,
                period: 0,
                explicit_max_ttl: row.explicit_max_ttl,
            });
        }
        if let Some(name) = &row.role {
            let role = self.token_role(name)?.ok_or_else(|| {
                EngineError::invalid(format!(
                    "original token role {name:?} could not be found, not renewing"
                ))
            })?;
            // Vault takes the role's period and explicit maximum; kvseal keeps the token's own
            // explicit maximum too (the lesser applies), so no renewal passes what creation set.
            return Ok(TtlTerms {
                ttl: row.creation_ttl,
                max_ttl: 0,
                period: role.token_period,
                explicit_max_ttl: lesser_set(row.explicit_max_ttl, role.token_explicit_max_ttl),
            });
        }
        Ok(TtlTerms {
            ttl: row.creation_ttl,
            max_ttl: 0,
            period: row.period,
            explicit_max_ttl: row.explicit_max_ttl,
        })
    }

    /// Renews a token as Vault's expiration manager does (`RenewToken` + `CalculateTTL`): a periodic
    /// token gets a new period; others `increment` seconds (default: the method's TTL), never past
    /// the method's maximum, the explicit maximum or the system maximum from issue time.
    pub async fn renew_token(
        &self,
        r: TokenRef<'_>,
        increment: Option<i64>,
    ) -> EngineResult<(TokenRow, Vec<String>)> {
        let row = self.find_token(&r)?;
        if !row.renewable || row.expire.is_none() {
            return Err(EngineError::invalid("token is not renewable"));
        }
        let terms = self.renew_terms(&row)?;
        let now = self.clock.now();
        let (ttl, warnings) = calculate_ttl(
            increment.unwrap_or(0).max(0),
            terms,
            row.creation / NANOS_PER_SEC,
            now / NANOS_PER_SEC,
        )?;
        let expire = now + secs(ttl);
        let hash = row.hash.clone();
        let keyring = self.keyring()?;
        self.store
            .write(move |tx| {
                let (old, mut row) =
                    load_token(tx, &keyring, &hash)?.ok_or(EngineError::PermissionDenied)?;
                row.expire = Some(expire);
                row.last_renewal = Some(now);
                tx.replace_token(&old, &seal_token(&keyring, &row)?)?;
                Ok::<_, EngineError>(())
            })
            .await?;
        self.token_cache.invalidate();
        Ok((self.find_token(&r)?, warnings))
    }

    /// The certificate identities the server serves (`[[auth.cert]]`), replacing any before.
    pub fn set_cert_roles(&self, roles: impl IntoIterator<Item = CertRole>) {
        let map = roles.into_iter().map(|r| (r.name.clone(), r)).collect();
        *self.cert_roles.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(map);
    }

    fn cert_role(&self, name: &str) -> Option<CertRole> {
        self.cert_roles
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Issues an orphan token for `auth/cert/login`: the certificate has already proven who the
    /// caller is, so there is no parent to check against. `root` is never granted this way. The
    /// TTL is the identity's `ttl` (default 768h) capped by its `max_ttl`, as Vault's login does.
    pub async fn issue_cert_token(
        &self,
        cert_name: &str,
    ) -> EngineResult<(Token, TokenRow, Vec<String>)> {
        let keyring = self.keyring()?;
        let cert = self.cert_role(cert_name).ok_or_else(|| {
            EngineError::invalid(format!(
                "certificate identity {cert_name:?} is not configured"
            ))
        })?;
        let now = self.clock.now();
        let start = now / NANOS_PER_SEC;
        let terms = TtlTerms {
            ttl: cert.ttl,
            max_ttl: cert.max_ttl,
            period: 0,
            explicit_max_ttl: 0,
        };
        let (ttl, warnings) = calculate_ttl(0, terms, start, start)?;
        let mut identity = Identity::transient(&format!("cert-{}", cert.name), &cert.policies);
        let token = Token::generate();
        let entry = &mut identity.entry;
        entry.hash = keyring.token_hash(token.expose());
        entry.accessor = random_accessor();
        entry.path = CERT_LOGIN_PATH.to_string();
        // Vault keeps the identity's name on the token: renewals look the identity up by it.
        entry.meta = Some(BTreeMap::from([(
            "cert_name".to_string(),
            cert.name.clone(),
        )]));
        entry.creation = now;
        entry.creation_ttl = ttl;
        entry.expire = Some(now + secs(ttl));
        entry.renewable = true;
        let row = entry.clone();
        let record = seal_token(&keyring, &row)?;
        self.store
            .write(move |tx| {
                tx.insert_token(&record)?;
                Ok::<_, EngineError>(())
            })
            .await?;
        Ok((token, row, warnings))
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
        let keyring = self.keyring()?;
        self.store
            .write(move |tx| {
                if keep_children {
                    // The children become orphans: each entry is re-sealed without its parent.
                    for old in tx.token_children(&hash)? {
                        let Ok(mut child) = open_token(&keyring, &old) else {
                            continue;
                        };
                        child.parent = None;
                        child.orphan = true;
                        tx.replace_token(&old, &seal_token(&keyring, &child)?)?;
                    }
                    tx.delete_token(&hash)?;
                } else {
                    tx.delete_token_tree(&hash)?;
                }
                Ok::<_, EngineError>(())
            })
            .await?;
        self.token_cache.invalidate();
        Ok(())
    }

    /// Every token's accessor, sorted. Entries that fail to open are no tokens: left out (logged).
    pub fn token_accessors(&self) -> EngineResult<Vec<String>> {
        let keyring = self.keyring()?;
        let records = self.store.read(|tx| tx.all_tokens())?;
        let mut out: Vec<String> = records
            .iter()
            .filter_map(|r| open_token(&keyring, r).ok())
            .map(|r| r.accessor)
            .collect();
        out.sort();
        Ok(out)
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
            remove_duplicates(&["b".into(), "A".into(), "b".into(), " ".into()]),
            ["a", "b"]
        );
        let t = Token::generate();
        assert!(t.expose().starts_with("kvs.") && t.expose().len() == 36);
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
    }
}
