//! The compiled rules of a token's policies and Vault's matching algorithm.
//!
//! Source followed: HashiCorp Vault `vault/acl.go` (current main, the version with
//! `resolveACLPermsForListOp`): `NewACL` for merging, `AllowOperation` for the order of lookups,
//! `CheckAllowedFromNonExactPaths` / `wildcardPathDescriptorComparePriority` for choosing among
//! glob and `+` rules, and `vault/logical_system.go` `hasMountAccess` for [`Acl::has_any_under`].
//! OpenBao's `internal/vault/policy/acl.go` is the same algorithm before the list fix below.
//!
//! Rules are kept in three tables, as Vault keeps them:
//! - exact rules (`secret/data/app`), keyed by path;
//! - prefix rules (`secret/data/*`), keyed by the path without its `*`; only the *longest*
//!   matching prefix is ever a candidate (Vault's radix tree `LongestPrefix`);
//! - segment-wildcard rules (anything with a `+` segment), keyed by the full rule text; every
//!   matching one is a candidate.
//!
//! Lookup order for a request path: exact rule; for a list (path ending in `/`) the exact rule
//! without the `/`; else the most specific glob/`+` candidate, ranked by [`priority`] (for a
//! list, candidates for both `a/b` and `a/b/`, chosen by [`resolve_list`]). The first step that
//! finds something decides, even if what it found grants nothing: an exact rule with
//! `capabilities = []` hides every glob, as in Vault.

use std::cmp::Ordering;
use std::collections::HashMap;

use super::{Capabilities, Policy};

/// A token's compiled policies. Cheap to query; build once per token (or cache).
#[derive(Clone, Debug, Default)]
pub struct Acl {
    root: bool,
    exact: HashMap<String, Perms>,
    prefix: HashMap<String, Perms>,
    /// Iteration order does not matter: [`priority`] is a total order on distinct rules.
    segment: HashMap<String, Perms>,
}

/// What the rules of one key grant, merged (Vault's `ACLPermissions`, the parts kvseal enforces).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Perms {
    caps: Capabilities,
    /// Whole seconds, 0 when no rule set one.
    min_wrapping_ttl: i64,
    max_wrapping_ttl: i64,
}

/// One glob or `+` rule that matched, described the way Vault's `wcPathDescr` does.
#[derive(Clone, Copy, Debug)]
struct Candidate<'a> {
    /// Byte offset of the first `+` (segment rules) or of the `*` (prefix rules).
    first_wildcard: usize,
    /// Ends with `*`.
    is_prefix: bool,
    /// Number of `+` segments.
    wildcards: usize,
    /// The rule without its trailing `*`.
    wc_path: &'a str,
    perms: Perms,
}

/// Whether `caps` (a path's) grant every bit of `cap`: never an empty `cap` (a caller bug: failing
/// closed is safer), never with `DENY` on either side.
fn grants(caps: Capabilities, cap: Capabilities) -> bool {
    !cap.is_empty()
        && !cap.contains(Capabilities::DENY)
        && !caps.contains(Capabilities::DENY)
        && caps.contains(cap)
}

/// Vault's `wildcardPathDescriptorComparePriority`, as an ordering where `Greater` means `a`
/// is the more specific rule. In order:
/// 1. the later first wildcard/glob wins (`foo/a*` over `foo/+`, `foo/bar/+/baz` over `foo/+/bar/baz`);
/// 2. non-prefix beats prefix (`foo/+/bar` over `foo/+/ba*`, `foo/+` over `foo/*`);
/// 3. fewer `+` wins (`foo/bar/+/baz` over `foo/+/+/baz`);
/// 4. longer wins (`foo/+/bar/ba*` over `foo/+/bar/b*`);
/// 5. lexicographically larger wins (never reached in practice).
fn priority(a: &Candidate<'_>, b: &Candidate<'_>) -> Ordering {
    a.first_wildcard
        .cmp(&b.first_wildcard)
        .then((!a.is_prefix).cmp(&!b.is_prefix))
        .then(b.wildcards.cmp(&a.wildcards))
        .then(a.wc_path.len().cmp(&b.wc_path.len()))
        .then(a.wc_path.cmp(b.wc_path))
}

/// Where a rule goes, by Vault's own classification (`policy.go` `parsePaths`): a rule "has
/// segment wildcards" when it is `+`, starts with `+/` or contains `/+`.
enum Kind<'a> {
    Exact(&'a str),
    Prefix(&'a str),
    Segment(&'a str),
}

fn classify(path: &str) -> Kind<'_> {
    if path == "+" || path.starts_with("+/") || path.contains("/+") {
        Kind::Segment(path)
    } else if let Some(prefix) = path.strip_suffix('*') {
        Kind::Prefix(prefix)
    } else {
        Kind::Exact(path)
    }
}

/// Rules for the same key, from the same or different policies (`acl.go` `NewACL`): an existing
/// deny stays; a new deny replaces everything; otherwise the capabilities are unioned, and of two
/// wrapping TTL bounds (minimum or maximum) set, the lesser is kept (Vault prefers short-lived
/// wrapping tokens).
fn merge(existing: &mut Perms, new: Perms) {
    if existing.caps.contains(Capabilities::DENY) {
        return;
    }
    if new.caps.contains(Capabilities::DENY) {
        existing.caps = Capabilities::DENY;
        return;
    }
    existing.caps = existing.caps.union(new.caps);
    let lesser = |old: i64, new: i64| {
        if new > 0 && (old == 0 || new < old) {
            new
        } else {
            old
        }
    };
    existing.max_wrapping_ttl = lesser(existing.max_wrapping_ttl, new.max_wrapping_ttl);
    existing.min_wrapping_ttl = lesser(existing.min_wrapping_ttl, new.min_wrapping_ttl);
}

impl Acl {
    /// Compiles a token's policies. A policy *named* `root` gets no special treatment here:
    /// the caller gives a root token [`Acl::root`] (so no stored policy can ever become root).
    pub fn new(policies: &[Policy]) -> Acl {
        let mut acl = Acl::default();
        for rule in policies.iter().flat_map(|p| p.rules()) {
            let caps = Perms {
                caps: rule.capabilities,
                min_wrapping_ttl: rule.min_wrapping_ttl,
                max_wrapping_ttl: rule.max_wrapping_ttl,
            };
            let (table, key) = match classify(&rule.path) {
                Kind::Exact(key) => (&mut acl.exact, key),
                Kind::Prefix(key) => (&mut acl.prefix, key),
                Kind::Segment(key) => (&mut acl.segment, key),
            };
            table
                .entry(key.to_string())
                .and_modify(|existing| merge(existing, caps))
                .or_insert(caps);
        }
        acl
    }

    /// The root token's ACL: everything is allowed, on every path.
    pub fn root() -> Acl {
        Acl {
            root: true,
            ..Acl::default()
        }
    }

    pub fn is_root(&self) -> bool {
        self.root
    }

    /// Capabilities on a request path as Vault computes them (`acl.go` `AllowOperation`).
    ///
    /// `path` has no leading slash (one is tolerated). A path ending in `/` is treated as a
    /// list request, which is how Vault's `Capabilities` (used by `sys/capabilities`) evaluates
    /// every path: the exact rule without the `/` applies, and glob/`+` rules are looked up for
    /// both forms (see `resolve_list`). Root gets [`Capabilities::ALL`] plus the `ROOT` marker.
    /// Nothing matched → empty (which [`Capabilities::names`] renders as `["deny"]`).
    pub fn capabilities(&self, path: &str) -> Capabilities {
        self.capabilities_for(path, path.ends_with('/'))
    }

    /// Capabilities on `path` for one request: the list resolution (exact rule without the `/`,
    /// candidates of both forms) applies only to a list request, as in Vault's `AllowOperation`
    /// (`if op == logical.ListOperation`). A `DELETE sys/mounts/x/` is an ordinary request on
    /// `sys/mounts/x/`, not a list: letting its trailing `/` pick the list resolution let it reach
    /// an allow on `sys/mounts/x` that an exact deny was meant to hide.
    pub fn capabilities_for(&self, path: &str, list: bool) -> Capabilities {
        if self.root {
            return Capabilities::ALL.union(Capabilities::ROOT);
        }
        self.perms_for(path, list).caps
    }

    /// The merged rule that decides a request on `path` (see [`Acl::capabilities_for`]).
    fn perms_for(&self, path: &str, list: bool) -> Perms {
        let path = path.trim_start_matches('/');
        if let Some(perms) = self.exact.get(path) {
            return *perms;
        }
        match path.strip_suffix('/').filter(|_| list) {
            Some(trimmed) => {
                if let Some(perms) = self.exact.get(trimmed) {
                    return *perms;
                }
                let mut candidates = self.candidates(trimmed);
                candidates.extend(self.candidates(path));
                resolve_list(&candidates)
            }
            None => self
                .candidates(path)
                .iter()
                .max_by(|a, b| priority(a, b))
                .map_or(Perms::default(), |c| c.perms),
        }
    }

    /// [`Acl::allows_for`] for a request that asked for response wrapping with a TTL of `wrap_ns`
    /// nanoseconds (`None`: no wrapping). The rule that decides the request may require wrapping
    /// (`min_wrapping_ttl`, `max_wrapping_ttl`): without it, or with a TTL outside its bounds, the
    /// request is refused like a missing capability (Vault's `AllowOperation`). Root has no bounds.
    pub fn allows_request(
        &self,
        path: &str,
        cap: Capabilities,
        list: bool,
        wrap_ns: Option<i64>,
    ) -> bool {
        if self.root {
            return self.allows_for(path, cap, list);
        }
        // One lookup of the deciding rule for both questions (this is every request's check).
        let p = self.perms_for(path, list);
        if !grants(p.caps, cap) {
            return false;
        }
        const NS: i64 = 1_000_000_000;
        let wrap = wrap_ns.unwrap_or(0);
        if p.max_wrapping_ttl > 0 && (wrap == 0 || wrap > p.max_wrapping_ttl.saturating_mul(NS)) {
            return false;
        }
        if p.min_wrapping_ttl > 0 && (wrap == 0 || wrap < p.min_wrapping_ttl.saturating_mul(NS)) {
            return false;
        }
        // Merging can leave a maximum below the minimum; nothing satisfies both.
        !(p.min_wrapping_ttl > 0
            && p.max_wrapping_ttl > 0
            && p.max_wrapping_ttl < p.min_wrapping_ttl)
    }

    /// True when every bit of `cap` is granted on `path` and `DENY` is not (deny wins).
    /// An empty `cap` is never "allowed" (it is a caller bug, and failing closed is safer).
    pub fn allows(&self, path: &str, cap: Capabilities) -> bool {
        self.allows_for(path, cap, path.ends_with('/'))
    }

    /// [`Acl::allows`] for one request whose operation is (`list`) or is not a list.
    pub fn allows_for(&self, path: &str, cap: Capabilities, list: bool) -> bool {
        grants(self.capabilities_for(path, list), cap)
    }

    /// Whether the token has some non-deny capability on some path under `prefix` (a mount
    /// path such as `secret/`): Vault's `hasMountAccess`, which decides the
    /// `sys/internal/ui/mounts/<path>` preflight. In Vault's order:
    /// 1. the capabilities on the prefix itself (this catches globs such as `sec*` or `*`);
    /// 2. any exact or prefix rule whose path starts with the prefix and grants something;
    /// 3. any `+` rule that could match a path under the prefix (`+/data/x` vs `secret/`).
    ///
    /// Like Vault this is generous: a deny on a more specific rule does not hide a grant on
    /// another path under the same mount.
    pub fn has_any_under(&self, prefix: &str) -> bool {
        if self.root {
            return true;
        }
        let mut prefix = prefix.trim_start_matches('/').to_string();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        let grants = |c: &Capabilities| !c.contains(Capabilities::DENY) && !c.is_empty();
        if grants(&self.capabilities(&prefix)) {
            return true;
        }
        let walk = |table: &HashMap<String, Perms>| {
            table
                .iter()
                .any(|(key, p)| key.starts_with(prefix.as_str()) && grants(&p.caps))
        };
        if walk(&self.exact) || walk(&self.prefix) {
            return true;
        }
        self.segment
            .iter()
            .any(|(rule, p)| grants(&p.caps) && segment_rule_reaches_under(rule, &prefix))
    }

    /// Every glob and `+` candidate for `path` (Vault's `prefixAndWCCandidatesForPath`): the
    /// longest matching prefix rule, and each matching segment rule.
    fn candidates<'a>(&'a self, path: &str) -> Vec<Candidate<'a>> {
        let mut out = Vec::new();
        // Longest prefix first: walk the char boundaries of `path` from the end.
        let longest = (0..=path.len())
            .rev()
            .filter(|&end| path.is_char_boundary(end))
            .find_map(|end| self.prefix.get_key_value(&path[..end]));
        if let Some((key, perms)) = longest {
            out.push(Candidate {
                first_wildcard: key.len(),
                is_prefix: true,
                wildcards: 0,
                wc_path: key,
                perms: *perms,
            });
        }
        if !self.segment.is_empty() {
            let parts: Vec<&str> = path.split('/').collect();
            out.extend(
                self.segment
                    .iter()
                    .filter_map(|(rule, perms)| match_segment_rule(rule, *perms, &parts)),
            );
        }
        out
    }
}

/// Matches one segment-wildcard rule against the request path's segments (Vault's
/// `tryMatchWildcardPath`). A non-prefix rule needs the same number of segments; a prefix rule
/// (`a/+/b*`) needs at least as many and its last segment is a string prefix.
///
/// `+` matches exactly one segment, the empty one included, as in Vault: `secret/+/x` matches
/// `secret//x`, and `secret/metadata/+` matches the list path `secret/metadata/` (whose last
/// segment is empty), so a policy written for Vault allows here what it allows there.
fn match_segment_rule<'a>(rule: &'a str, perms: Perms, parts: &[&str]) -> Option<Candidate<'a>> {
    let first_wildcard = rule.find('+')?;
    let (wc_path, is_prefix) = match rule.strip_suffix('*') {
        Some(stripped) => (stripped, true),
        None => (rule, false),
    };
    let rule_parts: Vec<&str> = wc_path.split('/').collect();
    if parts.len() < rule_parts.len() || (!is_prefix && parts.len() != rule_parts.len()) {
        return None;
    }
    let last = rule_parts.len() - 1;
    let mut wildcards = 0;
    for (i, (want, got)) in rule_parts.iter().zip(parts).enumerate() {
        if *want == "+" {
            wildcards += 1;
        } else if want != got && !(is_prefix && i == last && got.starts_with(want)) {
            return None;
        }
    }
    Some(Candidate {
        first_wildcard,
        is_prefix,
        wildcards,
        wc_path,
        perms,
    })
}

/// The list-request choice among candidates from both `a/b` and `a/b/` (Vault's
/// `resolveACLPermsForListOp`, the fix that made a deny on `a/b/*` hold against a list
/// granted by a broader rule reached through the trimmed path `a/b`):
/// 1. the most specific deny wins if it outranks the most specific list-granting rule;
/// 2. else the most specific list-granting rule;
/// 3. else the most specific rule overall (so its other capabilities are reported).
fn resolve_list(candidates: &[Candidate<'_>]) -> Perms {
    let best_of = |want: Capabilities| {
        candidates
            .iter()
            .filter(|c| c.perms.caps.contains(want))
            .max_by(|a, b| priority(a, b))
    };
    let best_deny = best_of(Capabilities::DENY);
    let best_list = best_of(Capabilities::LIST);
    if let Some(deny) = best_deny {
        if best_list.is_none_or(|list| priority(list, deny) == Ordering::Less) {
            return deny.perms;
        }
    }
    if let Some(list) = best_list {
        return list.perms;
    }
    candidates
        .iter()
        .max_by(|a, b| priority(a, b))
        .map_or(Perms::default(), |c| c.perms)
}

/// Could segment rule `rule` match some path under `prefix` (which ends with `/`)? Vault's
/// `CheckAllowedFromNonExactPaths(path, bareMount=true)`: walk the rule's segments along the
/// prefix's; once the prefix's segments are used up, the rule reaches under the prefix if what
/// it matched so far, joined, starts with the prefix.
fn segment_rule_reaches_under(rule: &str, prefix: &str) -> bool {
    let (wc_path, is_prefix) = match rule.strip_suffix('*') {
        Some(stripped) => (stripped, true),
        None => (rule, false),
    };
    // `prefix` ends with '/', so its last part is "" and the real segments are all but it.
    let parts: Vec<&str> = prefix.split('/').collect();
    let Some(stop) = parts.len().checked_sub(2) else {
        return false;
    };
    let rule_parts: Vec<&str> = wc_path.split('/').collect();
    let last = rule_parts.len() - 1;
    let mut matched: Vec<&str> = Vec::new();
    for (i, want) in rule_parts.iter().enumerate() {
        let Some(got) = parts.get(i) else {
            return false;
        };
        if *want == "+" || want == got {
            matched.push(got);
        } else if is_prefix && i == last && got.starts_with(want) {
            matched.extend(&parts[i..]);
        } else {
            return false;
        }
        if i == stop {
            let mut joined = matched.join("/");
            joined.push('/');
            return joined.starts_with(prefix);
        }
    }
    false
}

#[cfg(test)]
#[path = "acl_tests.rs"]
mod tests;
