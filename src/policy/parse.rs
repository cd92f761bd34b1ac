//! Policy text → [`Policy`]: HCL (with hcl-rs) or JSON, as Vault accepts both.
//!
//! Follows `vault/policy.go` `parseACLPolicyWithTemplating` / `parsePaths` (HashiCorp Vault; the
//! same code is OpenBao's `internal/vault/policy/policy.go`): top-level keys `name` and `path`
//! only; in a `path` block the keys Vault knows; legacy `policy =` expansion; `deny` wipes the
//! other capabilities; one leading `/` stripped; `+*` rejected. Stricter than Vault on purpose:
//! unsupported restrictions, a `*` that is not last, templated paths and blocks that grant nothing
//! are errors instead of being ignored or taken literally.
//!
//! Both syntaxes are first lowered to the same `(path, [(key, Field)])` shape, so the validation
//! in [`build_rule`] is shared.

use super::{Capabilities, PathRule, Policy, PolicyError};

/// A value inside a `path` block, reduced to the shapes the policy language uses.
enum Field {
    Str(String),
    List(Vec<Field>),
    /// A nested block (HCL `control_group { ... }`) or a JSON object.
    Block,
    /// A whole number (`min_wrapping_ttl = 60`).
    Int(i64),
    /// A number, bool, template with interpolation, function call, ...
    Other,
}

/// Keys Vault accepts in a `path` block (`policy.go` `parsePaths`, plus OpenBao's additions)
/// that express restrictions kvseal does not enforce. They are refused, not ignored.
const UNSUPPORTED_KEYS: &[&str] = &[
    "allowed_parameters",
    "denied_parameters",
    "required_parameters",
    "mfa_methods",
    "control_group",
    "subscribe_event_types",
    "pagination_limit",
    "list_scan_response_keys_filter_path",
    "expiration",
];

/// Parses HCL or JSON policy text, as Vault accepts both:
///
/// ```hcl
/// path "secret/data/*" { capabilities = ["read", "list"] }
/// path "secret" { policy = "write" }   # legacy shorthand
/// ```
///
/// Text whose first non-blank character is `{` is JSON (`{"path": {"secret/*": {...}}}`);
/// HCL cannot start that way.
pub fn parse(name: &str, text: &str) -> Result<Policy, PolicyError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(PolicyError::Empty);
    }
    let blocks = if trimmed.starts_with('{') {
        lower_json(trimmed)?
    } else {
        lower_hcl(text)?
    };
    let rules = blocks
        .into_iter()
        .map(|(path, fields)| build_rule(&path, fields))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Policy {
        name: name.to_string(),
        rules,
    })
}

type RawBlock = (String, Vec<(String, Field)>);

/// Puts every `{` and `}` outside strings and comments on a line of its own.
///
/// Vault parses policies with HCL1, which takes `path "a" { capabilities = ["read"]` followed by a
/// newline and `}`, or two blocks on one line; hcl-rs implements HCL2, which wants a block's
/// attributes on lines of their own. Policies written for Vault use both layouts (the vault CLI
/// sends whatever file it is given), so the text is re-laid before parsing. Line breaks around braces
/// change nothing else: strings and comments keep their meaning. (Errors are reported from the
/// original text, so their positions are the author's.)
fn relayout(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut chars = text.chars().peekable();
    let (mut in_string, mut escaped) = (false, false);
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '#' => copy_line(c, &mut chars, &mut out),
            '/' if chars.peek() == Some(&'/') => copy_line(c, &mut chars, &mut out),
            '/' if chars.peek() == Some(&'*') => {
                out.push(c);
                let mut prev = ' ';
                for d in chars.by_ref() {
                    out.push(d);
                    if prev == '*' && d == '/' {
                        break;
                    }
                    prev = d;
                }
            }
            '{' => out.push_str("{\n"),
            '}' => out.push_str("\n}\n"),
            _ => out.push(c),
        }
    }
    out
}

/// Copies a line comment up to (not including) its end of line.
fn copy_line(first: char, chars: &mut std::iter::Peekable<std::str::Chars<'_>>, out: &mut String) {
    out.push(first);
    while let Some(&d) = chars.peek() {
        if d == '\n' {
            break;
        }
        out.push(d);
        chars.next();
    }
}

/// Refuses, before the HCL parser sees it, anything outside strings and comments that a policy never
/// holds: operators, parentheses, template and heredoc markers, and braces nested more than a few
/// deep. A policy is `path "..." { key = "..." | [...] }` blocks; hcl-rs, a full HCL2 expression
/// parser, can backtrack for seconds on a few hundred bytes of unquoted operators and object
/// constructors (found by the policy fuzz target), which would let one policy write stall a worker.
fn precheck(text: &str) -> Result<(), PolicyError> {
    const MAX_DEPTH: usize = 8;
    let (mut in_string, mut escaped, mut depth) = (false, false, 0usize);
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(c) = chars.next() {
        if c == '\n' {
            line += 1;
        }
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            } else if c == '\n' {
                return Err(PolicyError::Syntax(format!(
                    "line {line}: unterminated string"
                )));
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '#' => skip_line(&mut chars),
            '/' if chars.peek() == Some(&'/') => skip_line(&mut chars),
            '/' if chars.peek() == Some(&'*') => {
                let mut prev = ' ';
                for d in chars.by_ref() {
                    if d == '\n' {
                        line += 1;
                    }
                    if prev == '*' && d == '/' {
                        break;
                    }
                    prev = d;
                }
            }
            '{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(PolicyError::Syntax(format!(
                        "line {line}: blocks nested more than {MAX_DEPTH} deep"
                    )));
                }
            }
            '}' => depth = depth.saturating_sub(1),
            c if c.is_alphanumeric() || c == '_' || c.is_whitespace() => {}
            '=' | '[' | ']' | ',' => {}
            other => {
                return Err(PolicyError::Syntax(format!(
                    "line {line}: unexpected character {other:?} (a policy holds path blocks of quoted strings and lists)"
                )))
            }
        }
    }
    Ok(())
}

fn skip_line(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(&d) = chars.peek() {
        if d == '\n' {
            break;
        }
        chars.next();
    }
}

fn lower_hcl(text: &str) -> Result<Vec<RawBlock>, PolicyError> {
    precheck(text)?;
    let body = match hcl::parse(&relayout(text)) {
        Ok(b) => b,
        // Report the error as the original text has it, so its line and column are the author's.
        Err(e) => return Err(hcl_error(hcl::parse(text).err().unwrap_or(e))),
    };
    let mut blocks = Vec::new();
    for structure in body.into_inner() {
        match structure {
            hcl::Structure::Attribute(attr) => {
                let is_string = matches!(attr.expr(), hcl::Expression::String(_));
                check_top_attribute(attr.key(), is_string)?
            }
            hcl::Structure::Block(block) => {
                if block.identifier() != "path" {
                    return Err(PolicyError::UnknownTopLevelKey {
                        key: block.identifier().to_string(),
                    });
                }
                let [label] = block.labels() else {
                    return Err(PolicyError::PathLabel);
                };
                let fields = block
                    .body()
                    .iter()
                    .map(|s| match s {
                        hcl::Structure::Attribute(a) => (a.key().to_string(), hcl_field(a.expr())),
                        hcl::Structure::Block(b) => (b.identifier().to_string(), Field::Block),
                    })
                    .collect();
                blocks.push((label.as_str().to_string(), fields));
            }
        }
    }
    Ok(blocks)
}

/// One line, Vault-like (`At 3:5: ...`), instead of hcl-rs's multi-line caret diagram, so the
/// message reads well inside a JSON `errors` array.
fn hcl_error(err: hcl::Error) -> PolicyError {
    PolicyError::Syntax(match &err {
        hcl::Error::Parse(e) => format!(
            "At {}:{}: {}",
            e.location().line(),
            e.location().column(),
            e.message()
        ),
        other => other.to_string(),
    })
}

/// The top-level `name` attribute is valid in Vault (a string, ignored there too: the name
/// comes from the API path); any other top-level attribute is an error.
fn check_top_attribute(key: &str, is_string: bool) -> Result<(), PolicyError> {
    if key != "name" {
        return Err(PolicyError::UnknownTopLevelKey {
            key: key.to_string(),
        });
    }
    if !is_string {
        return Err(PolicyError::Syntax("\"name\" must be a string".into()));
    }
    Ok(())
}

fn hcl_field(expr: &hcl::Expression) -> Field {
    match expr {
        hcl::Expression::String(s) => Field::Str(s.clone()),
        hcl::Expression::Array(items) => Field::List(items.iter().map(hcl_field).collect()),
        hcl::Expression::Object(_) => Field::Block,
        hcl::Expression::Number(n) => n.as_i64().map_or(Field::Other, Field::Int),
        _ => Field::Other,
    }
}

/// Vault's JSON form (HCL1 JSON): `{"name": "...", "path": {"<path>": {<keys>}, ...}}`; `path`
/// may also be a list of such objects.
fn lower_json(text: &str) -> Result<Vec<RawBlock>, PolicyError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| PolicyError::Syntax(e.to_string()))?;
    let serde_json::Value::Object(top) = value else {
        return Err(PolicyError::Syntax("does not contain a root object".into()));
    };
    let mut blocks = Vec::new();
    for (key, value) in top {
        match key.as_str() {
            "name" => check_top_attribute(&key, value.is_string())?,
            "path" => {
                let objects = match value {
                    serde_json::Value::Object(map) => vec![map],
                    serde_json::Value::Array(items) => items
                        .into_iter()
                        .map(|item| match item {
                            serde_json::Value::Object(map) => Ok(map),
                            _ => Err(json_path_shape()),
                        })
                        .collect::<Result<_, _>>()?,
                    _ => return Err(json_path_shape()),
                };
                for map in objects {
                    for (path, body) in map {
                        let serde_json::Value::Object(body) = body else {
                            return Err(PolicyError::Syntax(format!(
                                "path {path:?}: the rule must be an object"
                            )));
                        };
                        let fields = body.into_iter().map(|(k, v)| (k, json_field(v))).collect();
                        blocks.push((path, fields));
                    }
                }
            }
            _ => return Err(PolicyError::UnknownTopLevelKey { key }),
        }
    }
    Ok(blocks)
}

fn json_path_shape() -> PolicyError {
    PolicyError::Syntax("\"path\" must be an object mapping paths to rules".into())
}

fn json_field(value: serde_json::Value) -> Field {
    match value {
        serde_json::Value::String(s) => Field::Str(s),
        serde_json::Value::Array(items) => Field::List(items.into_iter().map(json_field).collect()),
        serde_json::Value::Object(_) => Field::Block,
        serde_json::Value::Number(n) => n.as_i64().map_or(Field::Other, Field::Int),
        _ => Field::Other,
    }
}

/// Validates one `path` block (`policy.go` `parsePaths`) and computes its capabilities.
fn build_rule(label: &str, fields: Vec<(String, Field)>) -> Result<PathRule, PolicyError> {
    let path = label.strip_prefix('/').unwrap_or(label).to_string();
    check_path(label, &path)?;

    let err_path = || label.to_string();
    let mut legacy: Option<String> = None;
    let mut listed: Option<Vec<String>> = None;
    let (mut min_wrapping_ttl, mut max_wrapping_ttl) = (0, 0);
    // Duplicate keys never get here: hcl-rs rejects a redefined attribute, and a JSON object
    // keeps the last value of a repeated key.
    for (key, field) in fields {
        match key.as_str() {
            "capabilities" => listed = Some(string_list(label, &key, field)?),
            "policy" => match field {
                Field::Str(s) => legacy = Some(s),
                _ => {
                    return Err(PolicyError::InvalidValue {
                        path: err_path(),
                        key,
                        expected: "a string",
                    })
                }
            },
            "min_wrapping_ttl" => min_wrapping_ttl = wrapping_ttl(label, &key, field)?,
            "max_wrapping_ttl" => max_wrapping_ttl = wrapping_ttl(label, &key, field)?,
            // Free text Vault accepts and ignores.
            "comment" => {}
            k if UNSUPPORTED_KEYS.contains(&k) => {
                return Err(PolicyError::Unsupported {
                    path: err_path(),
                    key,
                })
            }
            _ => {
                return Err(PolicyError::UnknownKey {
                    path: err_path(),
                    key,
                })
            }
        }
    }

    if legacy.is_none() && listed.is_none() {
        return Err(PolicyError::MissingCapabilities { path: err_path() });
    }
    if min_wrapping_ttl != 0 && max_wrapping_ttl != 0 && max_wrapping_ttl < min_wrapping_ttl {
        return Err(PolicyError::WrappingTtl {
            path: err_path(),
            message: "max_wrapping_ttl cannot be less than min_wrapping_ttl".into(),
        });
    }
    let mut caps = Capabilities::NONE;
    if let Some(policy) = legacy {
        caps = caps.union(legacy_expansion(&policy).ok_or_else(|| {
            PolicyError::InvalidLegacyPolicy {
                path: err_path(),
                policy: policy.clone(),
            }
        })?);
    }
    for name in listed.unwrap_or_default() {
        let cap = Capabilities::from_name(&name).ok_or_else(|| PolicyError::InvalidCapability {
            path: err_path(),
            capability: name.clone(),
        })?;
        caps = caps.union(cap);
    }
    // "If it's deny, don't include any other capability" (policy.go).
    if caps.contains(Capabilities::DENY) {
        caps = Capabilities::DENY;
    }
    Ok(PathRule {
        path,
        capabilities: caps,
        min_wrapping_ttl,
        max_wrapping_ttl,
    })
}

/// A wrapping TTL as Vault's `parseutil.ParseDurationSecond` reads it: whole seconds as a number or
/// numeric string, or a Go duration (`"90s"`, `"1h"`); kvseal also refuses a negative one, which
/// Vault takes and can never satisfy.
fn wrapping_ttl(label: &str, key: &str, field: Field) -> Result<i64, PolicyError> {
    let fail = |message: String| PolicyError::WrappingTtl {
        path: label.to_string(),
        message,
    };
    let secs = match field {
        Field::Int(n) => Some(n),
        Field::Str(s) => {
            crate::engine::duration::parse_duration_value(&serde_json::Value::String(s.clone()))
                .ok_or_else(|| fail(format!("error parsing {key}: time: invalid duration {s:?}")))
                .map(Some)?
        }
        _ => None,
    };
    match secs {
        Some(n) if n >= 0 => Ok(n),
        Some(_) => Err(fail(format!("error parsing {key}: must not be negative"))),
        None => Err(PolicyError::InvalidValue {
            path: label.to_string(),
            key: key.to_string(),
            expected: "a duration (a number of seconds or a string such as \"90s\")",
        }),
    }
}

/// The legacy `policy = "..."` values (`policy.go` `OldReadPathPolicy` etc.). Note that
/// `write` predates `patch` and does not include it.
fn legacy_expansion(policy: &str) -> Option<Capabilities> {
    use Capabilities as C;
    let write = C::CREATE | C::READ | C::UPDATE | C::DELETE | C::LIST;
    match policy {
        "deny" => Some(C::DENY),
        "read" => Some(C::READ | C::LIST),
        "write" => Some(write),
        "sudo" => Some(write | C::SUDO),
        _ => None,
    }
}

fn string_list(label: &str, key: &str, field: Field) -> Result<Vec<String>, PolicyError> {
    let invalid = || PolicyError::InvalidValue {
        path: label.to_string(),
        key: key.to_string(),
        expected: "a list of strings",
    };
    let Field::List(items) = field else {
        return Err(invalid());
    };
    items
        .into_iter()
        .map(|item| match item {
            Field::Str(s) => Ok(s),
            _ => Err(invalid()),
        })
        .collect()
}

/// Wildcard rules: `+` is a whole segment, `*` only last, never `+*` (`policy.go` checks the
/// last one; kvseal also refuses a `*` elsewhere, which Vault would silently take literally).
fn check_path(label: &str, path: &str) -> Result<(), PolicyError> {
    let err_path = || label.to_string();
    if path.contains("{{") {
        return Err(PolicyError::Templated { path: err_path() });
    }
    if path.contains("+*") {
        return Err(PolicyError::PlusGlob { path: err_path() });
    }
    if let Some(pos) = path.find('*') {
        if pos != path.len() - 1 {
            return Err(PolicyError::GlobNotAtEnd { path: err_path() });
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
