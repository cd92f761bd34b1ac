//! Durations as Vault reads and writes them (whole seconds inside the engine).
//!
//! Requests use Vault's `TypeDurationSecond`: an integer number of seconds, a numeric string, or a Go
//! duration string (`"1h"`, `"30m0s"`, `"1.5h"`). Responses use Go's `time.Duration.String()` (`"0s"`,
//! `"30m0s"`, `"768h0m0s"`): hvac's integration tests write `"30m0s"` and assert it reads back unchanged.

use serde_json::Value;

/// Parses a Go duration string (`"1h30m"`, `"-1s"`, `"300ms"`) into whole seconds (truncated).
pub fn parse_go_duration(input: &str) -> Option<i64> {
    let s = input.trim();
    if s.is_empty() {
        return None;
    }
    let (neg, mut rest) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let number: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            // Days: HashiCorp's duration format (parseutil) takes them, and okms-cli sends "1d".
            "d" => 86400e9,
            _ => return None,
        };
        total_nanos += number * scale;
    }
    if !total_nanos.is_finite() || total_nanos > 9.2e18 {
        return None;
    }
    let secs = (total_nanos / 1e9).trunc() as i64;
    Some(if neg { -secs } else { secs })
}

/// Vault's `TypeDurationSecond` / `TypeSignedDurationSecond` decoding of a JSON value.
pub fn parse_duration_value(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() {
                return Some(0);
            }
            t.parse::<i64>().ok().or_else(|| parse_go_duration(t))
        }
        _ => None,
    }
}

/// Go's `time.Duration.String()` for a whole number of seconds.
pub fn go_duration_string(secs: i64) -> String {
    if secs == 0 {
        return "0s".to_string();
    }
    let sign = if secs < 0 { "-" } else { "" };
    let a = secs.unsigned_abs();
    let (h, m, s) = (a / 3600, (a % 3600) / 60, a % 60);
    if h > 0 {
        format!("{sign}{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{sign}{m}m{s}s")
    } else {
        format!("{sign}{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_strings_round_trip() {
        assert_eq!(go_duration_string(0), "0s");
        assert_eq!(go_duration_string(30), "30s");
        assert_eq!(go_duration_string(1800), "30m0s");
        assert_eq!(go_duration_string(3600), "1h0m0s");
        assert_eq!(go_duration_string(768 * 3600), "768h0m0s");
        assert_eq!(go_duration_string(-1), "-1s");
        for s in ["0s", "30s", "30m0s", "1h0m0s", "768h0m0s", "-1s", "1h2m3s"] {
            assert_eq!(go_duration_string(parse_go_duration(s).unwrap()), s);
        }
    }

    #[test]
    fn parses_vault_request_forms() {
        assert_eq!(parse_duration_value(&json!(30)), Some(30));
        assert_eq!(parse_duration_value(&json!("45")), Some(45));
        assert_eq!(parse_duration_value(&json!("1h")), Some(3600));
        assert_eq!(parse_duration_value(&json!("1.5h")), Some(5400));
        assert_eq!(parse_duration_value(&json!("1h30m")), Some(5400));
        assert_eq!(parse_duration_value(&json!("-1s")), Some(-1));
        assert_eq!(parse_duration_value(&json!("1d")), Some(86400));
        assert_eq!(parse_duration_value(&json!("")), Some(0));
        assert_eq!(parse_duration_value(&json!("abc")), None);
        assert_eq!(parse_duration_value(&json!("10x")), None);
        assert_eq!(parse_duration_value(&json!(true)), None);
    }
}
