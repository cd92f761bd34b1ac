//! Durations: `parse_go_duration`, `parse_duration_value` and `go_duration_string` never panic, and
//! Go's rendering of a parsed value parses back to the same number of seconds.
#![no_main]

use kvseal::engine::duration::{go_duration_string, parse_duration_value, parse_go_duration};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Go's `time.Duration` holds at most i64::MAX nanoseconds: about 292 years.
const GO_MAX_SECS: i64 = i64::MAX / 1_000_000_000;

/// Found by this target and fixed: the parser once added nanoseconds in an f64 (a second lost above
/// 2^62 ns) and refused values Go accepts. The round trip is now required up to Go's limit.
fn limit() -> u64 {
    GO_MAX_SECS as u64
}

fn round_trip(secs: i64, input: &str) {
    if secs.unsigned_abs() > limit() {
        return;
    }
    let text = go_duration_string(secs);
    assert_eq!(
        parse_go_duration(&text),
        Some(secs),
        "{input:?} parsed to {secs}s, rendered as {text:?}, which does not parse back to {secs}s"
    );
}

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        let _ = parse_duration_value(&v);
    }
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(secs) = parse_go_duration(s) {
        round_trip(secs, s);
    }
    // `parse_duration_value` also takes a plain integer number of seconds, of any size; beyond Go's
    // range no duration string can express it (reported: such values should be refused), so the
    // round trip is only required inside the range (see `limit`).
    if let Some(secs) = parse_duration_value(&Value::String(s.to_string())) {
        round_trip(secs, s);
    }
    // The renderer alone, on the first 8 bytes as an i64.
    if data.len() >= 8 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&data[..8]);
        let _ = go_duration_string(i64::from_le_bytes(b));
    }
});
