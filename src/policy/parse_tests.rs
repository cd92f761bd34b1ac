//! Parser tests for `parse.rs`: both syntaxes, the legacy shorthand, every refusal.

use super::super::{parse, Capabilities, PathRule};
use Capabilities as C;

fn one_rule(text: &str) -> PathRule {
    let policy = parse("p", text).expect("policy parses");
    assert_eq!(policy.rules().len(), 1, "{text}");
    policy.rules()[0].clone()
}

fn err(text: &str) -> String {
    parse("p", text)
        .expect_err("policy must be refused")
        .to_string()
}

#[test]
fn hcl_form() {
    let p = parse(
        "app",
        r#"
        # comment
        name = "ignored"
        path "secret/data/*" {
          capabilities = ["read", "list",]
        }
        // another comment
        path "/secret/metadata/app" { capabilities = ["create", "patch", "sudo"] }
        path "secret/+/x" {
          capabilities = []
          comment = "explicitly nothing"
        }
        "#,
    )
    .expect("parses");
    assert_eq!(p.name, "app");
    assert_eq!(
        p.rules(),
        &[
            PathRule {
                path: "secret/data/*".into(),
                capabilities: C::READ | C::LIST,
                ..PathRule::default()
            },
            PathRule {
                path: "secret/metadata/app".into(),
                capabilities: C::CREATE | C::PATCH | C::SUDO,
                ..PathRule::default()
            },
            PathRule {
                path: "secret/+/x".into(),
                capabilities: C::NONE,
                ..PathRule::default()
            },
        ]
    );
}

#[test]
fn json_form() {
    let p = parse(
        "j",
        r#"{"name": "j", "path": {
            "secret/data/*": {"capabilities": ["read", "update"]},
            "secret/old": {"policy": "read"}
        }}"#,
    )
    .expect("parses");
    let mut rules = p.rules().to_vec();
    rules.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(rules[0].path, "secret/data/*");
    assert_eq!(rules[0].capabilities, C::READ | C::UPDATE);
    assert_eq!(rules[1].path, "secret/old");
    assert_eq!(rules[1].capabilities, C::READ | C::LIST);

    let listed = parse(
        "j",
        r#"{"path": [{"a": {"capabilities": ["list"]}}, {"b": {"capabilities": ["deny"]}}]}"#,
    )
    .expect("parses");
    assert_eq!(listed.rules()[0].capabilities, C::LIST);
    assert_eq!(listed.rules()[1].capabilities, C::DENY);
}

#[test]
fn legacy_shorthand_expansions() {
    let write = C::CREATE | C::READ | C::UPDATE | C::DELETE | C::LIST;
    for (legacy, want) in [
        ("read", C::READ | C::LIST),
        ("write", write),
        ("sudo", write | C::SUDO),
        ("deny", C::DENY),
    ] {
        let rule = one_rule(&format!("path \"secret\" {{ policy = \"{legacy}\" }}"));
        assert_eq!(rule.capabilities, want, "{legacy}");
    }
    // hvac's prep_policy form; write predates patch and does not grant it.
    let rule = one_rule(r#"path "secret" { policy = "write" }"#);
    assert!(!rule.capabilities.contains(C::PATCH));
    // policy and capabilities together: the union, as Vault appends them.
    let both = one_rule("path \"s\" {\n policy = \"read\"\n capabilities = [\"patch\"]\n}");
    assert_eq!(both.capabilities, C::READ | C::LIST | C::PATCH);
}

#[test]
fn deny_wipes_the_rest_of_the_block() {
    let rule = one_rule(r#"path "s/*" { capabilities = ["read", "deny", "update"] }"#);
    assert_eq!(rule.capabilities, C::DENY);
    let rule = one_rule("path \"s/*\" {\n policy = \"deny\"\n capabilities = [\"read\"]\n}");
    assert_eq!(rule.capabilities, C::DENY);
}

#[test]
fn errors_have_clear_messages() {
    assert_eq!(err(""), "failed to parse policy: policy is empty");
    assert_eq!(err("  \n\t "), "failed to parse policy: policy is empty");
    assert_eq!(
        err("path \"x\" {\n capabilities = [\"read\"]"),
        "failed to parse policy: At 2:25: invalid block body; expected `}`, newline or identifier"
    );
    assert!(err("{not json").starts_with("failed to parse policy: "));
    assert_eq!(
        err(r#"path "x" { capabilities = ["read", "foo"] }"#),
        r#"failed to parse policy: path "x": invalid capability "foo""#
    );
    assert_eq!(
        err(r#"path "x" { policy = "admin" }"#),
        r#"failed to parse policy: path "x": invalid policy "admin""#
    );
    assert_eq!(
        err(r#"path "a/+*" { capabilities = ["read"] }"#),
        r#"failed to parse policy: path "a/+*": invalid use of wildcards ('+*' is forbidden)"#
    );
    assert_eq!(
        err(r#"path "a/*/b" { capabilities = ["read"] }"#),
        r#"failed to parse policy: path "a/*/b": invalid use of wildcards ('*' is only allowed at the end)"#
    );
    assert!(err(r#"path "a/**" { capabilities = ["read"] }"#).contains("only allowed at the end"));
    assert_eq!(
        err(r#"path "x" { comment = "grants nothing" }"#),
        r#"failed to parse policy: path "x": missing "capabilities" (or legacy "policy")"#
    );
    assert_eq!(
        err(r#"path "x" { capabilities = "read" }"#),
        r#"failed to parse policy: path "x": "capabilities" must be a list of strings"#
    );
    assert!(err(r#"path "x" { capabilities = ["read", 3] }"#).contains("list of strings"));
    assert!(err(r#"path "x" { policy = ["read"] }"#).contains("\"policy\" must be a string"));
    assert!(err(r#"path "x" {
        capabilities = ["read"]
        capabilities = ["list"]
    }"#)
    .contains("redefined attribute"));
    assert_eq!(
        err(r#"path "identity/entity/id/{{identity.entity.id}}" { capabilities = ["read"] }"#),
        "failed to parse policy: path \"identity/entity/id/{{identity.entity.id}}\": \
         templated policy paths are not supported by kvseal"
    );
}

#[test]
fn unsupported_restrictions_are_refused() {
    for (key, value) in [
        ("allowed_parameters", r#"{ "ttl" = [] }"#),
        ("denied_parameters", r#"{ "*" = [] }"#),
        ("required_parameters", r#"["ttl"]"#),
        ("mfa_methods", r#"["duo"]"#),
    ] {
        let text =
            format!("path \"secret/*\" {{\n capabilities = [\"read\"]\n {key} = {value}\n}}");
        assert_eq!(
            err(&text),
            format!(
                "failed to parse policy: path \"secret/*\": \"{key}\" is not supported by kvseal \
                 (refused rather than silently not enforced)"
            ),
            "{key}"
        );
    }
    // control_group is a nested block in HCL.
    let text = r#"path "secret/*" {
        capabilities = ["read"]
        control_group {
            factor "ops" {
                identity {
                    group_names = ["ops"]
                    approvals = 1
                }
            }
        }
    }"#;
    assert!(err(text).contains("\"control_group\" is not supported by kvseal"));
    let json = r#"{"path": {"s/*": {"capabilities": ["read"], "allowed_parameters": {"a": []}}}}"#;
    assert!(err(json).contains("\"allowed_parameters\" is not supported by kvseal"));
}

#[test]
fn unknown_keys_are_refused() {
    assert_eq!(
        err("path \"x\" {\n capabilities = [\"read\"]\n capabilites = [\"list\"]\n}"),
        r#"failed to parse policy: path "x": invalid key "capabilites""#
    );
    assert_eq!(
        err(r#"paths "x" { capabilities = ["read"] }"#),
        r#"failed to parse policy: invalid key "paths""#
    );
    assert_eq!(
        err("version = 2\npath \"x\" { capabilities = [\"read\"] }"),
        r#"failed to parse policy: invalid key "version""#
    );
    assert_eq!(
        err(r#"{"paths": {"x": {"capabilities": ["read"]}}}"#),
        r#"failed to parse policy: invalid key "paths""#
    );
    assert_eq!(
        err(r#"path { capabilities = ["read"] }"#),
        "failed to parse policy: a path block needs exactly one label, the path"
    );
    assert!(err(r#"{"path": "x"}"#).contains("\"path\" must be an object"));
}

#[test]
fn vault_hcl1_layouts_are_accepted() {
    // An attribute on the brace line with the closing brace on the next line, and two blocks on
    // one line: both parse in Vault (HCL1) and must here.
    for text in [
        "path \"secret/data/a/*\" { capabilities = [\"read\", \"list\"]\n}\n",
        "path \"a/*\" { capabilities = [\"read\"] } path \"b/*\" { capabilities = [\"list\"] }",
        "path \"a/*\" { # a comment with } and {\n capabilities = [\"read\"] }",
        "path \"a/{x}\" {\n capabilities = [\"read\"]\n}",
    ] {
        let p = super::parse("t", text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert!(!p.rules().is_empty(), "{text:?}");
    }
    let two = super::parse(
        "t",
        "path \"a/*\" { capabilities = [\"read\"] } path \"b/*\" { capabilities = [\"list\"] }",
    )
    .unwrap();
    assert_eq!(two.rules().len(), 2);
    let braces = super::parse("t", "path \"a/{x}\" {\n capabilities = [\"read\"]\n}").unwrap();
    assert_eq!(braces.rules()[0].path, "a/{x}");
}

#[test]
fn operator_soup_is_refused_quickly() {
    // Found by the policy fuzz target: hcl-rs backtracks for seconds on unquoted expressions with
    // operators and object constructors; a policy never needs them, so they are refused up front.
    let mut text = String::new();
    for _ in 0..12 {
        text.push_str("nam=authBtoken/lookup-sf/t/t/d/{{en/lolf/t/d/{{en/lolf/t/okut/e ");
    }
    let t = std::time::Instant::now();
    let e = super::parse("x", &text).unwrap_err().to_string();
    assert!(
        t.elapsed() < std::time::Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
    assert!(e.contains("unexpected character '/'"), "{e}");
    // What policies do contain is still fine, including those characters inside strings and comments.
    let ok = "# a/b * c\npath \"secret/data/+/x*\" {\n  capabilities = [\"read\"] // c/d\n}\n/* {x/y} */";
    assert!(super::parse("x", ok).is_ok());
}

#[test]
fn wrapping_ttls_parse_as_vault_reads_them() {
    // (min, max) as written → (min, max) in seconds.
    let cases: &[(&str, &str, (i64, i64))] = &[
        (r#""30s""#, r#""2m""#, (30, 120)),
        ("60", r#""1h""#, (60, 3600)),
        (r#""90""#, r#""1.5h""#, (90, 5400)),
        (r#""1d""#, r#""1d""#, (86400, 86400)),
        (r#""0""#, r#""10s""#, (0, 10)),
    ];
    for (min, max, want) in cases {
        let rule = one_rule(&format!(
            "path \"secret/data/x\" {{\n capabilities = [\"read\"]\n min_wrapping_ttl = {min}\n max_wrapping_ttl = {max}\n}}"
        ));
        assert_eq!(
            (rule.min_wrapping_ttl, rule.max_wrapping_ttl),
            *want,
            "{min} {max}"
        );
        assert_eq!(rule.capabilities, C::READ);
    }
    let json = one_rule(
        r#"{"path": {"a": {"capabilities": ["read"], "min_wrapping_ttl": 5, "max_wrapping_ttl": "1m"}}}"#,
    );
    assert_eq!((json.min_wrapping_ttl, json.max_wrapping_ttl), (5, 60));
    assert_eq!(
        one_rule(r#"path "a" { capabilities = ["read"] }"#).min_wrapping_ttl,
        0
    );
}

#[test]
fn wrapping_ttls_that_cannot_hold_are_refused() {
    let rule = |min: &str, max: &str| {
        let mut t = String::from("path \"a\" {\n capabilities = [\"read\"]\n");
        if !min.is_empty() {
            t += &format!(" min_wrapping_ttl = {min}\n");
        }
        if !max.is_empty() {
            t += &format!(" max_wrapping_ttl = {max}\n");
        }
        t + "}"
    };
    let cases: &[(&str, &str, &str)] = &[
        (
            r#""2m""#,
            r#""1m""#,
            "failed to parse policy: path \"a\": max_wrapping_ttl cannot be less than min_wrapping_ttl",
        ),
        (
            r#""abc""#,
            "",
            "failed to parse policy: path \"a\": error parsing min_wrapping_ttl: time: invalid duration \"abc\"",
        ),
        (
            "",
            r#""-5s""#,
            "failed to parse policy: path \"a\": error parsing max_wrapping_ttl: must not be negative",
        ),
        (
            "[\"1m\"]",
            "",
            "failed to parse policy: path \"a\": \"min_wrapping_ttl\" must be a duration (a number of seconds or a string such as \"90s\")",
        ),
    ];
    for (min, max, want) in cases {
        assert_eq!(err(&rule(min, max)), *want, "{min} {max}");
    }
}
