//! Matcher tests for `acl.rs`: one table row per rule of Vault's matching order.

use super::super::{parse, Acl, Capabilities as C};

/// Builds an ACL from policy texts (one policy per text).
fn acl(texts: &[&str]) -> Acl {
    let policies: Vec<_> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| parse(&format!("p{i}"), t).expect("test policy parses"))
        .collect();
    Acl::new(&policies)
}

/// `rule("a/*", "read, list")` → `path "a/*" { capabilities = ["read","list"] }`.
fn rule(path: &str, caps: &str) -> String {
    let caps: Vec<String> = caps
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| format!("{c:?}"))
        .collect();
    format!("path {path:?} {{ capabilities = [{}] }}\n", caps.join(", "))
}

struct Case {
    why: &'static str,
    /// Each inner slice is one policy: (rule path, capabilities).
    policies: &'static [&'static [(&'static str, &'static str)]],
    path: &'static str,
    want: C,
}

const fn case(
    why: &'static str,
    policies: &'static [&'static [(&'static str, &'static str)]],
    path: &'static str,
    want: C,
) -> Case {
    Case {
        why,
        policies,
        path,
        want,
    }
}

const R: C = C::READ;
const L: C = C::LIST;
const U: C = C::UPDATE;
const DENY: C = C::DENY;
const NONE: C = C::NONE;
const RL: C = C::READ.union(C::LIST);
const RU: C = C::READ.union(C::UPDATE);
const UD: C = C::UPDATE.union(C::DELETE);
const RP: C = C::READ.union(C::PATCH);

#[rustfmt::skip]
const CASES: &[Case] = &[
    // 1. An exact rule beats every glob and `+` rule.
    case("exact beats glob", &[&[("secret/data/*", "update, delete"), ("secret/data/app", "read")]], "secret/data/app", R),
    case("glob applies to other paths", &[&[("secret/data/*", "update, delete"), ("secret/data/app", "read")]], "secret/data/other", UD),
    case("exact beats +", &[&[("secret/+/app", "update"), ("secret/data/app", "read")]], "secret/data/app", R),
    case("exact deny beats glob grant", &[&[("secret/*", "read"), ("secret/data/app", "deny")]], "secret/data/app", DENY),
    case("an exact rule granting nothing hides the glob", &[&[("secret/*", "read"), ("secret/data/app", "")]], "secret/data/app", NONE),
    case("leading slash in request is ignored", &[&[("secret/data/app", "read")]], "/secret/data/app", R),
    // 2. A list request on `foo/` is matched by an exact rule `foo` (before any glob).
    case("list foo/ by exact foo", &[&[("secret/metadata/app", "list")]], "secret/metadata/app/", L),
    case("exact foo beats glob for list foo/", &[&[("secret/metadata/*", "deny"), ("secret/metadata/app", "list")]], "secret/metadata/app/", L),
    case("exact foo/ beats exact foo", &[&[("secret/metadata/app", "list"), ("secret/metadata/app/", "read, list")]], "secret/metadata/app/", RL),
    case("exact foo/ does not cover non-list foo", &[&[("secret/metadata/app/", "list")]], "secret/metadata/app", NONE),
    // 3a. Among globs and `+`: the later first wildcard position wins.
    case("prefix at 12 beats + at 7", &[&[("secret/+/x", "read"), ("secret/data/*", "update")]], "secret/data/x", U),
    case("foo/a* beats foo/+", &[&[("foo/+", "update"), ("foo/a*", "read")]], "foo/ab", R),
    case("foo/bar/+/baz beats foo/+/bar/baz", &[&[("foo/+/bar/baz", "update"), ("foo/bar/+/baz", "read")]], "foo/bar/bar/baz", R),
    // 3b. Same position: non-prefix (no `*`) beats prefix.
    case("foo/+ beats foo/*", &[&[("foo/*", "update"), ("foo/+", "read")]], "foo/x", R),
    case("foo/+/bar beats foo/+/ba*", &[&[("foo/+/ba*", "update"), ("foo/+/bar", "read")]], "foo/x/bar", R),
    case("only foo/+/ba* matches baz", &[&[("foo/+/ba*", "update"), ("foo/+/bar", "read")]], "foo/x/baz", U),
    case("foo/* still covers deeper paths", &[&[("foo/*", "update"), ("foo/+", "read")]], "foo/x/y", U),
    // 3c. Then fewer `+` wins.
    case("foo/+/bar/baz beats foo/+/+/baz", &[&[("foo/+/+/baz", "update"), ("foo/+/bar/baz", "read")]], "foo/x/bar/baz", R),
    // 3d. Then longer wins.
    case("foo/+/bar/ba* beats foo/+/bar/b*", &[&[("foo/+/bar/b*", "update"), ("foo/+/bar/ba*", "read")]], "foo/x/bar/bat", R),
    case("only foo/+/bar/b* matches bo", &[&[("foo/+/bar/b*", "update"), ("foo/+/bar/ba*", "read")]], "foo/x/bar/bo", U),
    // Prefix globs are greedy string prefixes, and the longest prefix rule is the candidate.
    case("secret/foo* matches secret/foo/bar", &[&[("secret/foo*", "read")]], "secret/foo/bar", R),
    case("secret/foo* matches secret/foobar", &[&[("secret/foo*", "read")]], "secret/foobar", R),
    case("secret/foo* matches secret/foo", &[&[("secret/foo*", "read")]], "secret/foo", R),
    case("secret/foo* does not match secret/fo", &[&[("secret/foo*", "read")]], "secret/fo", NONE),
    case("secret/foo/* does not match secret/foo", &[&[("secret/foo/*", "read")]], "secret/foo", NONE),
    case("secret/foo/* matches list secret/foo/", &[&[("secret/foo/*", "read")]], "secret/foo/", R),
    case("secret/foo/* matches deep paths", &[&[("secret/foo/*", "read")]], "secret/foo/a/b/c", R),
    case("longest prefix wins", &[&[("secret/*", "read"), ("secret/foo/*", "deny")]], "secret/foo/x", DENY),
    case("shorter prefix elsewhere", &[&[("secret/*", "read"), ("secret/foo/*", "deny")]], "secret/bar", R),
    case("* matches everything", &[&[("*", "read")]], "anything/at/all", R),
    // `+` is exactly one segment, the empty one included (Vault's `tryMatchWildcardPath`).
    case("+ matches one segment", &[&[("secret/+/x", "read")]], "secret/a/x", R),
    case("+ does not match two segments", &[&[("secret/+/x", "read")]], "secret/a/b/x", NONE),
    case("+ matches an empty segment", &[&[("secret/+/x", "read")]], "secret//x", R),
    case("a/+/c matches a//c", &[&[("a/+/c", "read")]], "a//c", R),
    case("+ matches an empty last segment", &[&[("a/+", "read")]], "a/", R),
    case("a/+ does not match a", &[&[("a/+", "read")]], "a", NONE),
    case("+/x does not match x", &[&[("+/x", "read")]], "x", NONE),
    case("+ alone matches one segment", &[&[("+", "read")]], "kv", R),
    case("+ alone does not match two segments", &[&[("+", "read")]], "kv/x", NONE),
    case("+ matches an empty segment before a prefix tail", &[&[("a/+/b*", "read")]], "a//bc", R),
    case("non-prefix + rule needs the same length", &[&[("secret/+/x", "read")]], "secret/a/x/y", NONE),
    case("+ at the start", &[&[("+/data/*", "read")]], "kv/data/a/b", R),
    case("+ rule with prefix tail", &[&[("secret/+/ap*", "read")]], "secret/data/app/deep", R),
    case("+ rule with glob tail needs the segment", &[&[("secret/+/*", "read")]], "secret/data", NONE),
    // Deny wins within one policy, and across policies for the same rule path.
    case("deny in the same policy", &[&[("secret/data/*", "read"), ("secret/data/*", "deny")]], "secret/data/x", DENY),
    case("deny then grant in the same policy", &[&[("secret/data/x", "deny"), ("secret/data/x", "read")]], "secret/data/x", DENY),
    case("deny across policies", &[&[("secret/data/*", "read, list")], &[("secret/data/*", "deny")]], "secret/data/x", DENY),
    case("deny across policies, other order", &[&[("secret/data/*", "deny")], &[("secret/data/*", "read, list")]], "secret/data/x", DENY),
    case("deny across policies on a + rule", &[&[("secret/+/x", "read")], &[("secret/+/x", "deny")]], "secret/a/x", DENY),
    case("a broader deny does not beat a more specific grant", &[&[("secret/*", "deny")], &[("secret/data/app", "read")]], "secret/data/app", R),
    // Rules for the same path from several policies: union of capabilities.
    case("union across policies", &[&[("secret/data/app", "read")], &[("secret/data/app", "update")]], "secret/data/app", RU),
    case("union across policies on a + rule", &[&[("secret/+/app", "read")], &[("secret/+/app", "patch")]], "secret/kv/app", RP),
    case("no union between different rules", &[&[("secret/data/*", "update")], &[("secret/data/app", "read")]], "secret/data/app", R),
    // List requests (trailing `/`): candidates from `a/b` and `a/b/` (Vault's resolveACLPermsForListOp).
    case("deny on a/b/* holds against a broader list", &[&[("secret/metadata/*", "list"), ("secret/metadata/private/*", "deny")]], "secret/metadata/private/", DENY),
    case("broader list beats a narrower non-deny", &[&[("secret/metadata/*", "list"), ("secret/metadata/app/*", "read")]], "secret/metadata/app/", L),
    case("+ rule without slash grants list", &[&[("secret/+/app", "list")]], "secret/metadata/app/", L),
    case("+ matches the empty list segment", &[&[("secret/metadata/+", "list")]], "secret/metadata/", L),
    case("team/+ allows LIST team/", &[&[("secret/metadata/team/+", "list")]], "secret/metadata/team/", L),
    case("team/+ does not allow LIST of its parent", &[&[("secret/metadata/team/+", "list")]], "secret/metadata/", NONE),
    case("a/+/+ allows LIST a/x/", &[&[("a/+/+", "list")]], "a/x/", L),
    // No match at all.
    case("no match is empty", &[&[("secret/data/app", "read")]], "secret/data/ap", NONE),
    case("no policies at all", &[], "secret/data/app", NONE),
];

#[test]
fn matching_order_table() {
    let mut failures = Vec::new();
    for c in CASES {
        let texts: Vec<String> = c
            .policies
            .iter()
            .map(|rules| rules.iter().map(|(p, caps)| rule(p, caps)).collect())
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let got = acl(&refs).capabilities(c.path);
        if got != c.want {
            failures.push(format!(
                "{}: {} → {:?}, want {:?}",
                c.why,
                c.path,
                got.names(),
                c.want.names()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn allows_needs_every_bit_and_no_deny() {
    let a = acl(&[&(rule("secret/data/*", "read, list") + &rule("secret/data/x", "deny"))]);
    assert!(a.allows("secret/data/app", C::READ));
    assert!(a.allows("secret/data/app", C::READ | C::LIST));
    assert!(!a.allows("secret/data/app", C::READ | C::UPDATE));
    assert!(!a.allows("secret/data/app", C::PATCH));
    assert!(!a.allows("secret/data/x", C::READ));
    assert!(!a.allows("secret/data/app", C::DENY));
    assert!(!a.allows("secret/data/app", C::NONE));
    assert!(!a.allows("other", C::READ));
    assert_eq!(a.capabilities("secret/data/x").names(), vec!["deny"]);
    assert_eq!(a.capabilities("other").names(), vec!["deny"]);
    assert_eq!(
        a.capabilities("secret/data/app").names(),
        vec!["list", "read"]
    );
}

#[test]
fn legacy_write_has_no_patch_in_the_acl() {
    let a = acl(&[r#"path "secret/data/*" { policy = "write" }"#]);
    assert!(a.allows(
        "secret/data/x",
        C::CREATE | C::READ | C::UPDATE | C::DELETE | C::LIST
    ));
    assert!(!a.allows("secret/data/x", C::PATCH));
    assert!(!a.allows("secret/data/x", C::SUDO));
}

#[test]
fn root_allows_everything() {
    let root = Acl::root();
    assert!(root.is_root());
    assert!(!acl(&[&rule("*", "read")]).is_root());
    let caps = root.capabilities("any/path/at/all");
    assert!(caps.contains(C::ALL));
    assert_eq!(caps.names(), vec!["root"]);
    for cap in [
        C::CREATE,
        C::READ,
        C::UPDATE,
        C::PATCH,
        C::DELETE,
        C::LIST,
        C::SUDO,
        C::ALL,
    ] {
        assert!(root.allows("sys/policies/acl/x", cap));
    }
    assert!(!root.allows("x", C::DENY));
    assert!(root.has_any_under("nothing-mounted-here/"));
}

#[test]
fn a_policy_named_root_is_not_root() {
    let policy = parse("root", &rule("secret/*", "read")).expect("parses");
    let a = Acl::new(&[policy]);
    assert!(!a.is_root());
    assert!(!a.allows("sys/mounts", C::READ));
}

#[test]
fn has_any_under_cases() {
    let cases: &[(&str, &str, bool)] = &[
        // (policy text, mount prefix, expected)
        ("secret/data/app|read", "secret/", true),
        ("secret/data/app|read", "secret", true),
        ("secret/data/app|read", "/secret/", true),
        ("secret/data/app|read", "other/", false),
        ("secretary/*|read", "secret/", false),
        ("sec*|read", "secret/", true),
        ("*|read", "kv/", true),
        ("secret/data/*|list", "secret/", true),
        ("secret/|list", "secret/", true),
        ("secret|list", "secret/", true),
        ("+/data/x|read", "secret/", true),
        ("+/data/x|read", "kv/", true),
        ("secret/+/x|read", "secret/", true),
        ("secret/+/x|read", "other/", false),
        ("+/+/x|read", "path/to/", true),
        ("+/*|read", "a/b/", true),
        ("+/sec*|read", "x/secret/", true),
        ("+/secretary*|read", "x/secret/", false),
        (
            "path/to/secret engine/data/*|read",
            "path/to/secret engine/",
            true,
        ),
        ("secret/data/*|deny", "secret/", false),
        ("+/data/x|deny", "secret/", false),
        ("sec*|deny", "secret/", false),
        ("secret/|", "secret/", false),
        ("secret/data/app|deny;secret/data/ok|read", "secret/", true),
        ("sec*|deny;secret/x|read", "secret/", true),
        ("secret/*|deny;secret/data/app|patch", "secret/", true),
    ];
    for (spec, prefix, want) in cases {
        let text: String = spec
            .split(';')
            .map(|r| {
                let (path, caps) = r.split_once('|').unwrap_or((r, ""));
                rule(path, &caps.replace(' ', ","))
            })
            .collect();
        let got = acl(&[&text]).has_any_under(prefix);
        assert_eq!(got, *want, "{spec} under {prefix}");
    }
    assert!(!Acl::new(&[]).has_any_under("secret/"));
}

/// A rule with wrapping TTL bounds: `path "<path>" { capabilities = [<caps>] min/max_wrapping_ttl }`.
fn wrapped_rule(path: &str, caps: &str, min: &str, max: &str) -> String {
    let mut r = rule(path, caps);
    r.truncate(r.trim_end().len() - 1);
    if !min.is_empty() {
        r += &format!("\n min_wrapping_ttl = {min:?}");
    }
    if !max.is_empty() {
        r += &format!("\n max_wrapping_ttl = {max:?}");
    }
    r + "\n}\n"
}

#[test]
fn wrapping_ttl_bounds_decide_like_vaults_allow_operation() {
    const S: i64 = 1_000_000_000;
    // (why, policies as (path, caps, min, max), request path, wrap TTL asked, allowed)
    #[allow(clippy::type_complexity)]
    let cases: &[(
        &str,
        &[&[(&str, &str, &str, &str)]],
        &str,
        Option<i64>,
        bool,
    )] = &[
        (
            "no bounds, no wrapping",
            &[&[("a", "read", "", "")]],
            "a",
            None,
            true,
        ),
        (
            "no bounds, wrapped",
            &[&[("a", "read", "", "")]],
            "a",
            Some(60 * S),
            true,
        ),
        (
            "min: not wrapped",
            &[&[("a", "read", "30s", "")]],
            "a",
            None,
            false,
        ),
        (
            "min: too short",
            &[&[("a", "read", "30s", "")]],
            "a",
            Some(10 * S),
            false,
        ),
        (
            "min: exactly",
            &[&[("a", "read", "30s", "")]],
            "a",
            Some(30 * S),
            true,
        ),
        (
            "min: longer",
            &[&[("a", "read", "30s", "")]],
            "a",
            Some(3600 * S),
            true,
        ),
        (
            "max: not wrapped",
            &[&[("a", "read", "", "1m")]],
            "a",
            None,
            false,
        ),
        (
            "max: too long",
            &[&[("a", "read", "", "1m")]],
            "a",
            Some(61 * S),
            false,
        ),
        (
            "max: exactly",
            &[&[("a", "read", "", "1m")]],
            "a",
            Some(60 * S),
            true,
        ),
        (
            "max: sub-second",
            &[&[("a", "read", "", "1m")]],
            "a",
            Some(S / 2),
            true,
        ),
        (
            "both: inside",
            &[&[("a", "read", "30s", "2m")]],
            "a",
            Some(60 * S),
            true,
        ),
        (
            "both: below",
            &[&[("a", "read", "30s", "2m")]],
            "a",
            Some(29 * S),
            false,
        ),
        (
            "both: above",
            &[&[("a", "read", "30s", "2m")]],
            "a",
            Some(121 * S),
            false,
        ),
        (
            "glob rule carries its bounds",
            &[&[("a/*", "read", "30s", "")]],
            "a/b",
            None,
            false,
        ),
        (
            "the more specific rule decides: exact without bounds",
            &[&[("a/*", "read", "30s", ""), ("a/b", "read", "", "")]],
            "a/b",
            None,
            true,
        ),
        (
            "merged over policies: the lesser minimum holds",
            &[&[("a", "read", "60s", "")], &[("a", "read", "30s", "")]],
            "a",
            Some(40 * S),
            true,
        ),
        (
            "merged over policies: the lesser maximum holds",
            &[&[("a", "read", "", "2m")], &[("a", "read", "", "1m")]],
            "a",
            Some(90 * S),
            false,
        ),
        (
            "merged: a maximum below the minimum allows nothing",
            &[&[("a", "read", "", "1m")], &[("a", "read", "2m", "")]],
            "a",
            Some(90 * S),
            false,
        ),
        (
            "bounds on a rule without the capability do not matter",
            &[&[("a", "list", "30s", "")]],
            "a",
            Some(60 * S),
            false,
        ),
    ];
    for (why, policies, path, wrap, want) in cases {
        let texts: Vec<String> = policies
            .iter()
            .map(|p| {
                p.iter()
                    .map(|(path, caps, min, max)| wrapped_rule(path, caps, min, max))
                    .collect()
            })
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let got = acl(&refs).allows_request(path, C::READ, false, *wrap);
        assert_eq!(got, *want, "{why}");
    }
    // Root has no bounds; the plain capability answers ignore them (sys/capabilities shows
    // `read` for a rule that needs wrapping, as Vault does).
    assert!(Acl::root().allows_request("a", C::READ, false, None));
    let bounded = acl(&[&wrapped_rule("a", "read", "30s", "")]);
    assert_eq!(bounded.capabilities("a"), C::READ);
}
