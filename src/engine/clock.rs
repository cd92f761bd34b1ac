//! Time as the engine sees it: nanoseconds since the Unix epoch, plus Vault's wire formats for it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Nanoseconds since the Unix epoch (UTC).
pub type Nanos = i64;

pub const NANOS_PER_SEC: i64 = 1_000_000_000;

/// The engine's clock. Tests move it forward to exercise `delete_version_after` without sleeping.
#[derive(Clone, Default)]
pub struct Clock {
    offset: Arc<AtomicI64>,
}

impl Clock {
    pub fn now(&self) -> Nanos {
        let real = time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64;
        real + self.offset.load(Ordering::Relaxed)
    }

    /// Moves this clock forward (tests only, but harmless elsewhere).
    pub fn advance(&self, secs: i64) {
        self.offset
            .fetch_add(secs * NANOS_PER_SEC, Ordering::Relaxed);
    }
}

/// Go's `time.RFC3339Nano` in UTC: trailing zeros of the fraction trimmed, no fraction at all when the
/// nanoseconds are 0, always a `Z` suffix. hvac and vaultrs parse these; the vault CLI prints them.
pub fn rfc3339_nano(ns: Nanos) -> String {
    let dt = time::OffsetDateTime::from_unix_timestamp_nanos(ns as i128)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    );
    let frac = dt.nanosecond();
    if frac > 0 {
        let digits = format!("{frac:09}");
        s.push('.');
        s.push_str(digits.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// An optional timestamp renders as `""` when absent, never `null`: vaultrs deserialises
/// `deletion_time` into a `String`.
pub fn rfc3339_or_empty(ns: Option<Nanos>) -> String {
    ns.map(rfc3339_nano).unwrap_or_default()
}

/// `YYYY-MM-DDTHH:MM:SSZ` (second precision), the OKMS API's timestamp format.
pub fn rfc3339_seconds(ns: Nanos) -> String {
    rfc3339_nano(ns - ns.rem_euclid(NANOS_PER_SEC))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go_rfc3339nano() {
        assert_eq!(rfc3339_nano(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_nano(1_521_685_446_945_319_214),
            "2018-03-22T02:24:06.945319214Z"
        );
        assert_eq!(
            rfc3339_nano(1_521_685_446_900_000_000),
            "2018-03-22T02:24:06.9Z"
        );
        assert_eq!(
            rfc3339_seconds(1_521_685_446_900_000_000),
            "2018-03-22T02:24:06Z"
        );
        assert_eq!(rfc3339_or_empty(None), "");
    }
}
