//! Token TTLs as Vault computes them (`framework.CalculateTTL`): at creation, at login and at every
//! renewal, with the same caps and the same warnings (scripts grep for them).

use super::duration::go_duration_string;
use super::error::{EngineError, EngineResult};

/// Vault's system-wide default and maximum TTL (768h), in seconds.
pub const SYSTEM_MAX_TTL: i64 = 768 * 3600;

/// What bounds one TTL computation, in seconds (0 = not set). These are the fields Vault's
/// expiration manager gets back from the token's auth method before it calls `CalculateTTL`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TtlTerms {
    /// The method's default TTL (`token_ttl`; a token's creation TTL).
    pub ttl: i64,
    /// The method's maximum lifetime (`token_max_ttl`, cert `max_ttl`).
    pub max_ttl: i64,
    /// A periodic token gets `period` at every renewal, with no maximum but `explicit_max_ttl`.
    pub period: i64,
    /// A hard limit from issue time that no renewal passes.
    pub explicit_max_ttl: i64,
}

/// `framework.CalculateTTL`: the TTL (seconds) a token gets now, and Vault's warnings when a cap
/// applied. `increment` is what the caller asked for (0 = the method's default); `start` and `now`
/// are Unix seconds (Vault truncates both to the second). Past the maximum it is an error, as in
/// Vault: "past the max TTL, cannot renew".
pub fn calculate_ttl(
    increment: i64,
    terms: TtlTerms,
    start: i64,
    now: i64,
) -> EngineResult<(i64, Vec<String>)> {
    let mut max = SYSTEM_MAX_TTL;
    if terms.max_ttl > 0 && terms.max_ttl < max {
        max = terms.max_ttl;
    }
    if terms.explicit_max_ttl > 0 && terms.explicit_max_ttl < max {
        max = terms.explicit_max_ttl;
    }
    let mut warnings = Vec::new();
    let (mut ttl, max_valid) = if terms.period > 0 {
        let mut period = terms.period;
        if period > max {
            warnings.push(format!(
                "period of {:?} exceeded the effective max_ttl of {:?}; period value is capped accordingly",
                human_duration(period),
                human_duration(max)
            ));
            period = max;
        }
        let max_valid =
            (terms.explicit_max_ttl > 0).then(|| start.saturating_add(terms.explicit_max_ttl));
        (period, max_valid)
    } else {
        let ttl = if increment > 0 {
            increment
        } else if terms.ttl > 0 {
            terms.ttl
        } else {
            SYSTEM_MAX_TTL
        };
        (ttl, Some(start.saturating_add(max)))
    };
    if let Some(limit) = max_valid {
        let left = limit - now;
        if left <= 0 {
            return Err(EngineError::invalid("past the max TTL, cannot renew"));
        }
        if ttl > left {
            warnings.push(format!(
                "TTL of {:?} exceeded the effective max_ttl of {:?}; TTL value is capped accordingly",
                human_duration(ttl),
                human_duration(left)
            ));
            ttl = left;
        }
    }
    Ok((ttl, warnings))
}

/// Vault's `humanDuration`: Go's duration string without a zero trailing unit ("2h", "1h30m",
/// "1h5s", "30m").
pub fn human_duration(secs: i64) -> String {
    let mut s = go_duration_string(secs);
    if s.ends_with("m0s") {
        s.truncate(s.len() - 2);
    }
    if let Some(i) = s.find("h0m") {
        s.replace_range(i + 1..i + 3, "");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3600;

    #[test]
    fn human_durations_as_vault_prints_them() {
        for (secs, want) in [
            (0, "0s"),
            (45, "45s"),
            (1800, "30m"),
            (H, "1h"),
            (H + 1800, "1h30m"),
            (H + 5, "1h5s"),
            (768 * H, "768h"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    /// (increment, terms, seconds since issue) → (ttl, warning count) or the error.
    #[test]
    fn calculate_ttl_matches_vault() {
        let t = |ttl, max_ttl, period, explicit_max_ttl| TtlTerms {
            ttl,
            max_ttl,
            period,
            explicit_max_ttl,
        };
        type Case<'a> = (i64, TtlTerms, i64, Result<(i64, usize), &'a str>);
        let cases: &[Case] = &[
            // No TTL at all: the system default.
            (0, t(0, 0, 0, 0), 0, Ok((768 * H, 0))),
            // The method's TTL is the default increment; an increment wins over it.
            (0, t(H, 0, 0, 0), 0, Ok((H, 0))),
            (700 * H, t(H, 0, 0, 0), 0, Ok((700 * H, 0))),
            // max_ttl caps the lifetime from issue, with a warning.
            (700 * H, t(H, 2 * H, 0, 0), 0, Ok((2 * H, 1))),
            (0, t(H, 2 * H, 0, 0), 90 * 60, Ok((30 * 60, 1))),
            (
                0,
                t(H, 2 * H, 0, 0),
                2 * H,
                Err("past the max TTL, cannot renew"),
            ),
            // The system maximum applies to everything that is not periodic.
            (1000 * H, t(0, 0, 0, 0), 0, Ok((768 * H, 1))),
            // Explicit max wins over a longer max_ttl.
            (0, t(3 * H, 4 * H, 0, 2 * H), 0, Ok((2 * H, 1))),
            // Periodic: the period, however long the token has lived, unless an explicit max.
            (5 * H, t(0, 0, H, 0), 2000 * H, Ok((H, 0))),
            (0, t(0, 0, 2 * H, 3 * H), 2 * H, Ok((H, 1))),
            (0, t(0, 0, 1000 * H, 0), 0, Ok((768 * H, 1))),
        ];
        for (increment, terms, age, want) in cases {
            let got = calculate_ttl(*increment, *terms, 1_000, 1_000 + age)
                .map(|(ttl, w)| (ttl, w.len()))
                .map_err(|e| e.to_string());
            match want {
                Ok(w) => assert_eq!(got, Ok(*w), "{increment} {terms:?} {age}"),
                Err(m) => assert!(
                    got.as_ref().is_err_and(|e| e.contains(m)),
                    "{increment} {terms:?} {age}: {got:?}"
                ),
            }
        }
    }
}
