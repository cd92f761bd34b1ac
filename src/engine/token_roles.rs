//! Token roles (`auth/token/roles/<name>`) and the policy rules of token creation, as Vault's token
//! store applies them (`handleCreateCommon`): a role with allowed or disallowed policies (exact or
//! glob) decides on its own; anything else may only hand out a subset of the caller's policies
//! unless the caller has root or sudo on the create path.

use serde::{Deserialize, Serialize};

use super::barrier;
use super::error::{EngineError, EngineResult};
use super::Engine;
use crate::crypto::Keyring;
use crate::storage::ReadTx;

/// The name of the sealed token-role table: every role's settings (JSON) by name, one record.
pub(super) const ROLES_DOC: &str = "token_roles";

type RoleTexts = std::collections::BTreeMap<String, String>;

fn read_roles(tx: &dyn ReadTx, keyring: &Keyring) -> EngineResult<(Vec<u8>, RoleTexts)> {
    barrier::require_doc(tx, keyring, ROLES_DOC)
}

/// A token role as stored (JSON). Fields missing from older stored roles take their defaults.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct TokenRole {
    pub allowed_policies: Vec<String>,
    pub disallowed_policies: Vec<String>,
    pub allowed_policies_glob: Vec<String>,
    pub disallowed_policies_glob: Vec<String>,
    pub orphan: bool,
    pub renewable: bool,
    /// Appended to the path of the role's tokens (`auth/token/create/<role>/<suffix>`).
    pub path_suffix: String,
    /// The deprecated `period` and `explicit_max_ttl` as last written: Vault reads them back as
    /// given (0 once the `token_` field is written), while the `token_` fields are what applies.
    pub period: i64,
    pub explicit_max_ttl: i64,
    /// Seconds; 0 = not periodic.
    pub token_period: i64,
    /// Seconds; 0 = none.
    pub token_explicit_max_ttl: i64,
    /// `service` or `default-service` (empty in roles stored before this field: read as the latter).
    pub token_type: String,
    pub token_no_default_policy: bool,
    /// Most uses a token from this role may have; 0 = unlimited.
    pub token_num_uses: i64,
}

impl TokenRole {
    /// Whether the role decides the policies itself (Vault: any of the four lists is set).
    fn has_policy_lists(&self) -> bool {
        !(self.allowed_policies.is_empty()
            && self.disallowed_policies.is_empty()
            && self.allowed_policies_glob.is_empty()
            && self.disallowed_policies_glob.is_empty())
    }
}

/// Policies that only Vault itself assigns (`nonAssignablePolicies`).
const NON_ASSIGNABLE: [&str; 2] = ["response-wrapping", "control-group"];

/// `strutil.RemoveDuplicates(items, lowercase=true)`: trimmed, lower-cased, without empties,
/// deduplicated and sorted.
pub(super) fn remove_duplicates(items: &[String]) -> Vec<String> {
    let mut v: Vec<String> = items
        .iter()
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// `policyutil.SanitizePolicies`: `root` alone when present, else deduplicated (plus `default`
/// when asked).
pub(super) fn sanitize(policies: &[String], add_default: bool) -> Vec<String> {
    let mut v = remove_duplicates(policies);
    if v.iter().any(|p| p == "root") {
        return vec!["root".into()];
    }
    if add_default && !v.iter().any(|p| p == "default") {
        v.push("default".into());
        v.sort();
    }
    v
}

/// `glob.Glob` (ryanuber/go-glob), which Vault's `*_glob` role lists use: `*` matches any run of
/// characters, nothing else is special.
pub(super) fn glob_match(pattern: &str, subject: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == subject;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    let Some(mut rest) = subject.strip_prefix(first) else {
        return false;
    };
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

fn any_glob(patterns: &[String], subject: &str) -> bool {
    patterns.iter().any(|p| glob_match(p, subject))
}

/// A list as Go's `%q` prints a `[]string` (Vault's error messages quote lists this way).
fn go_quoted(list: &[String]) -> String {
    let items: Vec<String> = list.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", items.join(" "))
}

/// What the policy rules need to know about one creation request.
pub(super) struct PolicyRequest<'a> {
    /// The caller's policies.
    pub parent: &'a [String],
    pub role: Option<&'a TokenRole>,
    /// `policies` as given (empty = not given, as in Vault).
    pub requested: &'a [String],
    pub no_default_policy: bool,
    /// Root, or `sudo` on the create path.
    pub sudo: bool,
}

/// The new token's policies, or Vault's 400 for a request the rules refuse.
pub(super) fn resolve_policies(r: &PolicyRequest<'_>) -> EngineResult<Vec<String>> {
    let mut add_default = false;
    let chosen: Vec<String> = match r.role {
        Some(role) if role.has_policy_lists() => {
            // The role decides, independently of the caller's policies (Vault lets roles grant
            // what their creator does not hold: that is what they are for).
            let disallowed = remove_duplicates(&role.disallowed_policies);
            let disallowed_glob = remove_duplicates(&role.disallowed_policies_glob);
            let local_default = !r.no_default_policy
                && !role.token_no_default_policy
                && !disallowed.iter().any(|p| p == "default")
                && !any_glob(&disallowed_glob, "default");
            let mut fin = if r.requested.is_empty() {
                Vec::new()
            } else {
                sanitize(r.requested, local_default)
            };
            if !role.allowed_policies.is_empty() || !role.allowed_policies_glob.is_empty() {
                let allowed = sanitize(&role.allowed_policies, local_default);
                if fin.is_empty() {
                    fin = allowed;
                } else {
                    let allowed_glob = sanitize(&role.allowed_policies_glob, false);
                    if fin
                        .iter()
                        .any(|p| !allowed.contains(p) && !any_glob(&allowed_glob, p))
                    {
                        return Err(EngineError::invalid(format!(
                            "token policies ({}) must be subset of the role's allowed policies ({}) or glob policies ({})",
                            go_quoted(&fin),
                            go_quoted(&allowed),
                            go_quoted(&allowed_glob)
                        )));
                    }
                }
            } else if fin.is_empty() {
                fin = sanitize(r.parent, local_default);
            }
            if let Some(p) = fin
                .iter()
                .find(|p| disallowed.contains(p) || any_glob(&disallowed_glob, p))
            {
                return Err(EngineError::invalid(format!(
                    "token policy {p:?} is disallowed by this role"
                )));
            }
            fin
        }
        // No policies asked for: the caller's own (with `default` only if the caller has it).
        _ if r.requested.is_empty() => sanitize(r.parent, false),
        _ if !r.sudo => {
            let parent = sanitize(r.parent, false);
            if sanitize(r.requested, false)
                .iter()
                .any(|p| !parent.contains(p))
            {
                return Err(EngineError::invalid(
                    "child policies must be subset of parent",
                ));
            }
            add_default = !r.no_default_policy && r.parent.iter().any(|p| p == "default");
            r.requested.to_vec()
        }
        _ => {
            add_default = !r.no_default_policy;
            r.requested.to_vec()
        }
    };
    let mut policies = sanitize(&chosen, add_default);
    if r.no_default_policy {
        policies.retain(|p| p != "default");
    }
    if let Some(p) = policies
        .iter()
        .find(|p| NON_ASSIGNABLE.contains(&p.as_str()))
    {
        return Err(EngineError::invalid(format!("cannot assign policy {p:?}")));
    }
    // Only root makes root: sudo on the create path is not enough (Vault's guard against
    // privilege escalation through sudo).
    if policies.iter().any(|p| p == "root") && !r.parent.iter().any(|p| p == "root") {
        return Err(EngineError::invalid(
            "root tokens may not be created without parent token being root",
        ));
    }
    Ok(policies)
}

impl Engine {
    pub fn token_role(&self, name: &str) -> EngineResult<Option<TokenRole>> {
        let keyring = self.keyring()?;
        let text = self
            .store
            .read(|tx| Ok::<_, EngineError>(read_roles(tx, &keyring)?.1.remove(name)))?;
        match text {
            None => Ok(None),
            Some(t) => serde_json::from_str(&t)
                .map(Some)
                .map_err(|e| EngineError::Storage(format!("token role {name:?}: {e}"))),
        }
    }

    /// Stores a role with its lists as Vault keeps them: allowed lists sanitised (`root` alone
    /// when present), disallowed lists deduplicated; all lower-cased and sorted.
    pub async fn put_token_role(&self, name: &str, role: &TokenRole) -> EngineResult<()> {
        let keyring = self.keyring()?;
        let role = TokenRole {
            allowed_policies: sanitize(&role.allowed_policies, false),
            allowed_policies_glob: sanitize(&role.allowed_policies_glob, false),
            disallowed_policies: remove_duplicates(&role.disallowed_policies),
            disallowed_policies_glob: remove_duplicates(&role.disallowed_policies_glob),
            ..role.clone()
        };
        let (name, text) = (
            name.to_string(),
            serde_json::to_string(&role).map_err(|e| EngineError::Storage(e.to_string()))?,
        );
        self.store
            .write(move |tx| {
                let (old, mut roles) = read_roles(tx, &keyring)?;
                roles.insert(name.clone(), text.clone());
                barrier::write_doc(tx, &keyring, ROLES_DOC, Some(&old), &roles)
            })
            .await
    }

    pub async fn delete_token_role(&self, name: &str) -> EngineResult<()> {
        let keyring = self.keyring()?;
        let name = name.to_string();
        self.store
            .write(move |tx| {
                let (old, mut roles) = read_roles(tx, &keyring)?;
                if roles.remove(&name).is_none() {
                    return Ok(());
                }
                barrier::write_doc(tx, &keyring, ROLES_DOC, Some(&old), &roles)
            })
            .await
    }

    pub fn token_role_names(&self) -> EngineResult<Vec<String>> {
        let keyring = self.keyring()?;
        Ok(self
            .store
            .read(|tx| read_roles(tx, &keyring))?
            .1
            .into_keys()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn globs_as_go_glob() {
        for (pattern, subject, want) in [
            ("app-*", "app-x", true),
            ("app-*", "app-", true),
            ("app-*", "xapp-1", false),
            ("*-ro", "db-ro", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXcYb", false),
            ("*", "anything", true),
            ("exact", "exact", true),
            ("exact", "exactly", false),
        ] {
            assert_eq!(glob_match(pattern, subject), want, "{pattern} {subject}");
        }
    }

    #[test]
    fn old_stored_roles_still_load() {
        let old = r#"{"allowed_policies":["app"],"disallowed_policies":[],"orphan":true,"renewable":true,"token_period":3600,"token_explicit_max_ttl":0,"token_type":"service"}"#;
        let r: TokenRole = serde_json::from_str(old).expect("old role");
        assert_eq!(r.allowed_policies, ["app"]);
        assert_eq!(r.token_period, 3600);
        assert!(r.allowed_policies_glob.is_empty() && r.path_suffix.is_empty());
    }

    /// (parent, role lists (allowed, disallowed, allowed_glob, disallowed_glob), requested, sudo)
    /// → the policies or the start of Vault's error.
    #[test]
    fn policy_rules_match_vault() {
        type Lists<'a> = Option<(&'a [&'a str], &'a [&'a str], &'a [&'a str], &'a [&'a str])>;
        type Want<'a> = Result<&'a [&'a str], &'a str>;
        type Case<'a> = (&'a [&'a str], Lists<'a>, &'a [&'a str], bool, Want<'a>);
        let none: &[&str] = &[];
        let cases: Vec<Case> = vec![
            // No role: a subset of the caller's policies, default only if the caller has it.
            (&["app", "default"], None, &[], false, Ok(&["app", "default"])),
            (&["app"], None, &[], false, Ok(&["app"])),
            (&["app", "default"], None, &["app"], false, Ok(&["app", "default"])),
            (&["app", "default"], None, &["admin"], false, Err("child policies must be subset of parent")),
            (&["app"], None, &["default"], false, Err("child policies must be subset of parent")),
            // Sudo (or root) may hand out any policy but root.
            (&["creator"], None, &["admin"], true, Ok(&["admin", "default"])),
            (&["creator"], None, &["root"], true, Err("root tokens may not be created")),
            (&["root"], None, &["root"], true, Ok(&["root"])),
            (&["root"], None, &[], true, Ok(&["root"])),
            (&["root"], None, &["response-wrapping"], true, Err("cannot assign policy")),
            // A role without lists is no way around the subset rule (finding 2).
            (&["creator", "default"], Some((none, none, none, none)), &["admin"], false, Err("child policies must be subset of parent")),
            // A role with lists decides alone.
            (&["creator"], Some((&["p1"], none, &["app-*"], &["app-secret*"])), &[], false, Ok(&["default", "p1"])),
            (&["creator"], Some((&["p1"], none, &["app-*"], &["app-secret*"])), &["app-x"], false, Ok(&["app-x", "default"])),
            (&["creator"], Some((&["p1"], none, &["app-*"], &["app-secret*"])), &["app-secret-1"], false, Err("token policy \"app-secret-1\" is disallowed by this role")),
            (&["creator"], Some((&["p1"], none, &["app-*"], none)), &["admin"], false, Err("token policies ([\"admin\" \"default\"]) must be subset of the role's allowed policies ([\"default\" \"p1\"]) or glob policies ([\"app-*\"])")),
            (&["creator"], Some((&["p1"], none, none, none)), &["root"], false, Err("token policies ([\"root\"]) must be subset")),
            // Only disallowed: anything else, or the caller's policies when none are asked for.
            (&["creator"], Some((none, &["admin"], none, none)), &["ops"], false, Ok(&["default", "ops"])),
            (&["creator"], Some((none, &["admin"], none, none)), &[], false, Ok(&["creator", "default"])),
            (&["creator"], Some((none, &["default"], none, none)), &["ops"], false, Ok(&["ops"])),
            (&["creator"], Some((none, &["admin"], none, none)), &["admin"], false, Err("token policy \"admin\" is disallowed by this role")),
        ];
        for (parent, lists, requested, sudo, want) in cases {
            let role = lists.map(|(a, d, ag, dg)| TokenRole {
                allowed_policies: v(a),
                disallowed_policies: v(d),
                allowed_policies_glob: v(ag),
                disallowed_policies_glob: v(dg),
                ..Default::default()
            });
            let got = resolve_policies(&PolicyRequest {
                parent: &v(parent),
                role: role.as_ref(),
                requested: &v(requested),
                no_default_policy: false,
                sudo,
            })
            .map_err(|e| e.to_string());
            let ctx = format!("{parent:?} {lists:?} {requested:?} sudo={sudo}: {got:?}");
            match want {
                Ok(w) => assert_eq!(got.as_deref(), Ok(&v(w)[..]), "{ctx}"),
                Err(m) => assert!(got.as_ref().is_err_and(|e| e.starts_with(m)), "{ctx}"),
            }
        }
    }
}
