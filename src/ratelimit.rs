//! Per-client rate limits on what anyone may call without a token and on failed authentications:
//! governor's keyed GCRA limiter (a token bucket in effect: `per_second` refill, `burst` capacity),
//! keyed by the client address `client_addr` resolved (so behind a trusted proxy, by the forwarded
//! client).
//!
//! Memory stays bounded without sweeping on the request path: a background task (`sweep`, every
//! `SWEEP_INTERVAL`) drops the keys whose bucket is full again, and while the map holds `MAX_KEYS`
//! keys, every client shares one overflow bucket (a flood of addresses then slows the flood's own
//! endpoints, not token-authenticated traffic, which is never limited here).

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota};

/// Most clients tracked at once (each key costs well under 100 bytes).
const MAX_KEYS: usize = 100_000;

/// How often keys whose bucket has refilled are forgotten.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// The key shared by every client while the map is full.
const OVERFLOW: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

pub struct RateLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    /// Seconds until one more request is admitted after a refusal, at most (`Retry-After`).
    retry_after: u64,
    max_keys: usize,
}

impl RateLimiter {
    /// `per_second` > 0 and `burst` >= 1 (checked at config load; out-of-range values are clamped).
    pub fn new(per_second: f64, burst: f64) -> Self {
        Self::with_max_keys(per_second, burst, MAX_KEYS)
    }

    fn with_max_keys(per_second: f64, burst: f64, max_keys: usize) -> Self {
        let period = Duration::try_from_secs_f64(1.0 / per_second).unwrap_or(Duration::MAX);
        let burst = NonZeroU32::new(burst.clamp(1.0, f64::from(u32::MAX)) as u32)
            .unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(burst);
        Self {
            limiter: DefaultKeyedRateLimiter::dashmap(quota),
            retry_after: period.as_secs_f64().ceil().clamp(1.0, u64::MAX as f64) as u64,
            max_keys,
        }
    }

    /// Takes one request from the client's budget; `false` when it is spent (answer 429 with
    /// `Retry-After: retry_after_secs()`). Without an address (in-process tests) nothing is limited.
    pub fn take(&self, ip: Option<IpAddr>) -> bool {
        let Some(ip) = ip else { return true };
        let key = if self.limiter.len() >= self.max_keys {
            OVERFLOW
        } else {
            bucket_key(ip)
        };
        self.limiter.check_key(&key).is_ok()
    }

    /// The `Retry-After` value of a refusal: the time one request's worth of budget takes to refill,
    /// in whole seconds (at least 1), so a client that waits that long is admitted.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after
    }

    /// Forgets the clients whose budget is full again (called by a background task).
    pub fn sweep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// The key of a client: its IPv4 address, or its IPv6 /64 (one host usually holds a whole /64, so
/// keying by full address would give it 2^64 budgets). IPv4-mapped IPv6 addresses are IPv4.
fn bucket_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn each_client_has_its_own_burst() {
        let l = RateLimiter::new(0.5, 3.0);
        // (client, admitted) in order
        let steps = [
            ("10.0.0.1", true),
            ("10.0.0.1", true),
            ("10.0.0.1", true),
            ("10.0.0.1", false),
            ("10.0.0.2", true),
            ("::ffff:10.0.0.1", false),
            ("2001:db8::1", true),
            ("2001:db8::2", true),
            ("2001:db8::3", true),
            ("2001:db8::4", false),
            ("2001:db8:0:1::1", true),
        ];
        for (i, (client, admitted)) in steps.into_iter().enumerate() {
            assert_eq!(l.take(ip(client)), admitted, "step {i}: {client}");
        }
        assert!(l.take(None), "no address, no limit");
        assert_eq!(
            l.retry_after_secs(),
            2,
            "one request refills in 2 s at 0.5/s"
        );
        assert_eq!(RateLimiter::new(50.0, 200.0).retry_after_secs(), 1);
    }

    #[test]
    fn a_full_map_shares_one_overflow_bucket_until_swept() {
        let l = RateLimiter::with_max_keys(1000.0, 1.0, 2);
        assert!(l.take(ip("10.0.0.1")) && l.take(ip("10.0.0.2")));
        // Full: new clients share the overflow bucket (burst 1).
        assert!(l.take(ip("10.0.0.3")));
        assert!(!l.take(ip("10.0.0.4")), "the overflow bucket is shared");
        assert_eq!(l.limiter.len(), 3, "the map stopped growing");
        std::thread::sleep(Duration::from_millis(20));
        l.sweep();
        assert_eq!(l.limiter.len(), 0, "refilled buckets are forgotten");
        assert!(l.take(ip("10.0.0.4")));
    }
}
