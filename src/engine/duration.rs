//! Durations as Vault reads and writes them (whole seconds inside the engine).
//!
//! Requests use Vault's `TypeDurationSecond`: an integer number of seconds, a numeric string, or a Go
//! duration string (`"1h"`, `"30m0s"`, `"1.5h"`). Responses use Go's `time.Duration.String()` (`"0s"`,
//! `"30m0s"`, `"768h0m0s"`): hvac's integration tests write `"30m0s"` and assert it reads back unchanged.

use serde_json::Value;

/// The largest duration Go's `time.Duration` holds, in whole seconds (i64::MAX nanoseconds).
pub const MAX_SECS: i64 = i64::MAX / 1_000_000_000;

/// Parses a Go duration string (`"1h30m"`, `"-1s"`, `"300ms"`, `"1.5h"`) into whole seconds
/// (truncated), with exact integer arithmetic as Go's `time.ParseDuration` does, up to Go's limit of
/// i64::MAX nanoseconds. `"d"` (days) is accepted as HashiCorp's parser does.
pub fn parse_go_duration(input: &str) -> Option<i64> {
    parse_go_duration_ns(input).map(|ns| ns / 1_000_000_000)
}

/// [`parse_go_duration`] in nanoseconds, as Go's `time.ParseDuration` gives it (response wrapping
/// takes a sub-second TTL as it is).
pub fn parse_go_duration_ns(input: &str) -> Option<i64> {
    let s = input.trim();
    let (neg, mut rest) = match s.as_bytes().first()? {
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
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int_digits, after) = rest.split_at(int_end);
        let (frac_digits, after) = match after.strip_prefix('.') {
            Some(a) => {
                let e = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                a.split_at(e)
            }
            None => ("", after),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return None;
        }
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            _ => return None,
        };
        // More digits than i64 can hold overflow any duration anyway.
        if int_digits.len() > 20 {
            return None;
        }
        let whole: i128 = if int_digits.is_empty() {
            0
        } else {
            int_digits.parse().ok()?
        };
        total = total.checked_add(whole.checked_mul(scale)?)?;
        if !frac_digits.is_empty() {
            // Only the digits that can matter at nanosecond resolution.
            let f = &frac_digits[..frac_digits.len().min(18)];
            let num: i128 = f.parse().ok()?;
            total = total.checked_add(num * scale / 10i128.pow(f.len() as u32))?;
        }
        if total > i64::MAX as i128 {
            return None;
        }
        rest = next;
    }
    let ns = total as i64;
    Some(if neg { -ns } else { ns })
}

/// Vault's `TypeDurationSecond` / `TypeSignedDurationSecond` decoding of a JSON value.
pub fn parse_duration_value(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .filter(|s| s.unsigned_abs() <= MAX_SECS as u64),
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() {
                return Some(0);
            }
            match t.parse::<i64>() {
                Ok(n) if n.unsigned_abs() <= MAX_SECS as u64 => Some(n),
                Ok(_) => None,
                Err(_) => parse_go_duration(t),
            }
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
    fn exact_at_the_limits() {
        // Found by the duration fuzz target: float accumulation lost a second here.
        assert_eq!(parse_go_duration("1731600h44m49s"), Some(6_233_762_689));
        assert_eq!(
            parse_go_duration(&go_duration_string(MAX_SECS)),
            Some(MAX_SECS)
        );
        assert_eq!(parse_go_duration("2562047h47m17s"), None);
        assert_eq!(parse_go_duration("99999999999999999999999h"), None);
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
        assert_eq!(parse_duration_value(&json!("9223372036854775807")), None);
        assert_eq!(parse_duration_value(&json!(i64::MAX)), None);
        // Found by the fuzzer: i64::MIN (directly or saturated from a float) overflowed abs().
        assert_eq!(parse_duration_value(&json!(i64::MIN)), None);
        assert_eq!(parse_duration_value(&json!(-9.523372036854776e18)), None);
        assert_eq!(parse_duration_value(&json!("-9223372036854775808")), None);
        assert_eq!(parse_go_duration(".5s"), Some(0));
        assert_eq!(parse_go_duration("1.5s"), Some(1));
        assert_eq!(parse_go_duration("s"), None);
        assert_eq!(parse_go_duration("1"), None);
    }
}
