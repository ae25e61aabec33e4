//! When to try a failed delivery again, and when to give up.
//!
//! The default keeps the seeds' promise — "at least five times in the span of
//! five minutes" — with room to spare: six retries, exponential from 15 s
//! (15, 30, 60, 120, 240, 480 s), each jittered by ±20 % so a destination
//! that comes back is not hit by every waiting delivery at once. Even with
//! the most negative jitter the first five retries span 372 s. A destination's
//! own `Retry-After` is honoured when it asks for longer, up to a cap.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Retry policy (`[retry]` in the host config, or per integration).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Retries after the first attempt before the delivery is dead-lettered (0 to 100).
    pub max_retries: u32,
    /// Wait before the first retry, in milliseconds (10 ms to 7 days).
    pub initial_backoff_ms: u64,
    /// Each further wait is the previous one times this (1 to 10).
    pub multiplier: f64,
    /// Longest wait between two attempts, in milliseconds (`initial_backoff_ms` to 7 days).
    pub max_backoff_ms: u64,
    /// Share of each wait that is randomised, both ways (0.2 = ±20 %).
    pub jitter: f64,
    /// Longest `Retry-After` honoured, in milliseconds (0 to 7 days); longer
    /// hints are cut to this.
    pub max_retry_after_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 6,
            initial_backoff_ms: 15_000,
            multiplier: 2.0,
            max_backoff_ms: 15 * 60_000,
            jitter: 0.2,
            max_retry_after_ms: 60 * 60_000,
        }
    }
}

/// `now_ms` plus `delay`, saturating at the ends of `i64` rather than wrapping.
pub fn at_after(now_ms: i64, delay: Duration) -> i64 {
    now_ms.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX))
}

/// A policy that cannot work, with the field to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("retry.{field}: {message}")]
pub struct PolicyError {
    pub field: &'static str,
    pub message: String,
}

/// Longest wait the policy may ask for between two attempts (and longest
/// `Retry-After` it may honour): a week. Beyond that a delivery is stale.
pub const MAX_WAIT_MS: u64 = 7 * 24 * 60 * 60 * 1_000;
/// Shortest first wait: short enough for tests, long enough that a policy
/// cannot turn into a request storm.
pub const MIN_INITIAL_BACKOFF_MS: u64 = 10;
/// Most retries a policy may make before dead-lettering.
pub const MAX_RETRIES: u32 = 100;
/// Largest growth factor between two waits.
pub const MAX_MULTIPLIER: f64 = 10.0;

impl RetryPolicy {
    /// The first field out of its documented range (see [`RetryPolicy::problems`]).
    pub fn check(&self) -> Result<(), PolicyError> {
        match self.problems().into_iter().next() {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }

    /// Every field out of its documented range, each named, so waits are
    /// finite and bounded and a delivery dead-letters in bounded time.
    pub fn problems(&self) -> Vec<PolicyError> {
        let mut problems = Vec::new();
        let mut fail = |field, message: String| problems.push(PolicyError { field, message });
        if self.max_retries > MAX_RETRIES {
            fail(
                "max_retries",
                format!("must be at most {MAX_RETRIES}, not {}", self.max_retries),
            );
        }
        if !(self.initial_backoff_ms >= MIN_INITIAL_BACKOFF_MS
            && self.initial_backoff_ms <= MAX_WAIT_MS)
        {
            fail(
                "initial_backoff_ms",
                format!(
                    "must be from {MIN_INITIAL_BACKOFF_MS} to {MAX_WAIT_MS} (7 days), not {}",
                    self.initial_backoff_ms
                ),
            );
        }
        if !(self.multiplier.is_finite() && (1.0..=MAX_MULTIPLIER).contains(&self.multiplier)) {
            fail(
                "multiplier",
                format!("must be a number from 1 to {MAX_MULTIPLIER}"),
            );
        }
        if self.max_backoff_ms > MAX_WAIT_MS {
            fail(
                "max_backoff_ms",
                format!(
                    "must be at most {MAX_WAIT_MS} (7 days), not {}",
                    self.max_backoff_ms
                ),
            );
        } else if self.max_backoff_ms < self.initial_backoff_ms {
            fail(
                "max_backoff_ms",
                "must be at least initial_backoff_ms".to_string(),
            );
        }
        if !(self.jitter.is_finite() && (0.0..1.0).contains(&self.jitter)) {
            fail("jitter", "must be at least 0 and below 1".to_string());
        }
        if self.max_retry_after_ms > MAX_WAIT_MS {
            fail(
                "max_retry_after_ms",
                format!(
                    "must be at most {MAX_WAIT_MS} (7 days), not {}",
                    self.max_retry_after_ms
                ),
            );
        }
        problems
    }

    /// The wait before the next attempt after `failures` failed attempts
    /// (1 for the first failure), or `None` when the delivery should be
    /// dead-lettered. `unit` is a random number in [0, 1) for the jitter;
    /// `retry_after_ms` is the destination's hint. Never longer than
    /// [`MAX_WAIT_MS`], whatever the policy (even one that skipped `check`).
    pub fn next_delay(
        &self,
        failures: u32,
        retry_after_ms: Option<u64>,
        unit: f64,
    ) -> Option<Duration> {
        if failures == 0 || failures > self.max_retries {
            return None;
        }
        let exponent = (failures - 1).min(64) as i32;
        let cap = self.max_backoff_ms.min(MAX_WAIT_MS) as f64;
        let backoff = (self.initial_backoff_ms as f64 * self.multiplier.powi(exponent)).min(cap);
        // NaN (an unchecked NaN multiplier) reads as the cap: never "now".
        let backoff = if backoff.is_nan() {
            cap
        } else {
            backoff.max(0.0)
        };
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.5
        };
        let spread = 1.0 - jitter + 2.0 * jitter * unit;
        // `as` saturates a float to u64; the min keeps the result in range.
        let jittered = ((backoff * spread) as u64).min(MAX_WAIT_MS);
        let hinted =
            retry_after_ms.map_or(0, |ms| ms.min(self.max_retry_after_ms).min(MAX_WAIT_MS));
        Some(Duration::from_millis(jittered.max(hinted)))
    }

    /// When the next attempt is due, `now_ms` plus [`RetryPolicy::next_delay`],
    /// saturating instead of wrapping; `None` to dead-letter.
    pub fn next_attempt_at(
        &self,
        now_ms: i64,
        failures: u32,
        retry_after_ms: Option<u64>,
        unit: f64,
    ) -> Option<i64> {
        self.next_delay(failures, retry_after_ms, unit)
            .map(|delay| at_after(now_ms, delay))
    }

    /// The shortest total wait across the first `retries` retries (all
    /// jitter at its lowest): what the policy guarantees at least.
    pub fn minimum_span(&self, retries: u32) -> Duration {
        (1..=retries.min(self.max_retries))
            .filter_map(|n| self.next_delay(n, None, 0.0))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_keeps_the_five_retries_in_five_minutes_promise() {
        let policy = RetryPolicy::default();
        policy.check().unwrap();
        assert!(policy.max_retries >= 5);
        assert!(
            policy.minimum_span(5) >= Duration::from_secs(300),
            "{:?}",
            policy.minimum_span(5)
        );
    }

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let policy = RetryPolicy::default();
        let at = |n, unit| policy.next_delay(n, None, unit).unwrap().as_millis();
        assert_eq!(at(1, 0.5), 15_000);
        assert_eq!(at(2, 0.5), 30_000);
        assert_eq!(at(1, 0.0), 12_000);
        assert_eq!(at(1, 0.999_999), 17_999);
        let capped = RetryPolicy {
            max_retries: 20,
            ..RetryPolicy::default()
        };
        assert_eq!(
            capped.next_delay(20, None, 0.5).unwrap(),
            Duration::from_secs(15 * 60)
        );
    }

    #[test]
    fn gives_up_after_the_last_retry() {
        let policy = RetryPolicy::default();
        assert!(policy.next_delay(6, None, 0.5).is_some());
        assert_eq!(policy.next_delay(7, None, 0.5), None);
        assert_eq!(policy.next_delay(0, None, 0.5), None);
    }

    #[test]
    fn retry_after_is_honoured_within_bounds() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.next_delay(1, Some(120_000), 0.5),
            Some(Duration::from_secs(120))
        );
        // A shorter hint never shortens the backoff.
        assert_eq!(
            policy.next_delay(1, Some(1_000), 0.5),
            Some(Duration::from_secs(15))
        );
        // An absurd hint is cut to the cap.
        assert_eq!(
            policy.next_delay(1, Some(u64::MAX), 0.5),
            Some(Duration::from_secs(3600))
        );
    }

    #[test]
    fn bad_policies_name_the_field() {
        let bad = RetryPolicy {
            jitter: 1.5,
            ..RetryPolicy::default()
        };
        assert_eq!(
            bad.check().unwrap_err().to_string(),
            "retry.jitter: must be at least 0 and below 1"
        );
        let bad = RetryPolicy {
            max_backoff_ms: 1,
            ..RetryPolicy::default()
        };
        assert_eq!(bad.check().unwrap_err().field, "max_backoff_ms");
    }

    /// The policy of issue 14: accepted before, it wrapped the next attempt
    /// into the past (a request storm that never dead-lettered).
    fn storm() -> RetryPolicy {
        RetryPolicy {
            max_retries: u32::MAX,
            initial_backoff_ms: 1_000,
            multiplier: 1e300,
            max_backoff_ms: u64::MAX,
            ..RetryPolicy::default()
        }
    }

    #[test]
    fn every_field_out_of_range_is_named() {
        let fields: Vec<&str> = storm().problems().iter().map(|p| p.field).collect();
        assert_eq!(fields, ["max_retries", "multiplier", "max_backoff_ms"]);
        let worst = RetryPolicy {
            max_retries: 101,
            initial_backoff_ms: 0,
            multiplier: f64::NAN,
            max_backoff_ms: MAX_WAIT_MS + 1,
            jitter: f64::INFINITY,
            max_retry_after_ms: u64::MAX,
        };
        let fields: Vec<&str> = worst.problems().iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "max_retries",
                "initial_backoff_ms",
                "multiplier",
                "max_backoff_ms",
                "jitter",
                "max_retry_after_ms"
            ]
        );
        // The edges of each range are accepted.
        let edges = RetryPolicy {
            max_retries: MAX_RETRIES,
            initial_backoff_ms: MIN_INITIAL_BACKOFF_MS,
            multiplier: MAX_MULTIPLIER,
            max_backoff_ms: MAX_WAIT_MS,
            jitter: 0.0,
            max_retry_after_ms: MAX_WAIT_MS,
        };
        assert_eq!(edges.problems(), Vec::new());
        let too_quick = RetryPolicy {
            initial_backoff_ms: MIN_INITIAL_BACKOFF_MS - 1,
            ..RetryPolicy::default()
        };
        assert_eq!(too_quick.check().unwrap_err().field, "initial_backoff_ms");
    }

    #[test]
    fn waits_stay_bounded_even_for_an_unchecked_policy() {
        let storm = storm();
        for failures in [1, 2, 64, 1_000, u32::MAX] {
            let delay = storm.next_delay(failures, Some(u64::MAX), 0.999).unwrap();
            assert!(delay <= Duration::from_millis(MAX_WAIT_MS), "{delay:?}");
            assert!(delay >= Duration::from_secs(1), "{delay:?}");
        }
        let nan = RetryPolicy {
            multiplier: f64::NAN,
            jitter: f64::NAN,
            ..RetryPolicy::default()
        };
        assert_eq!(
            nan.next_delay(3, None, f64::NAN),
            Some(Duration::from_millis(nan.max_backoff_ms))
        );
    }

    #[test]
    fn the_next_attempt_saturates_instead_of_wrapping() {
        let policy = RetryPolicy::default();
        let near_the_end = i64::MAX - 1_000;
        assert_eq!(
            policy.next_attempt_at(near_the_end, 1, None, 0.5),
            Some(i64::MAX)
        );
        assert_eq!(
            storm().next_attempt_at(near_the_end, 7, Some(u64::MAX), 0.5),
            Some(i64::MAX)
        );
        assert_eq!(policy.next_attempt_at(1_000, 1, None, 0.5), Some(16_000));
        assert_eq!(policy.next_attempt_at(1_000, 7, None, 0.5), None);
        assert_eq!(at_after(i64::MAX, Duration::MAX), i64::MAX);
        assert_eq!(at_after(i64::MIN, Duration::from_millis(5)), i64::MIN + 5);
    }
}
