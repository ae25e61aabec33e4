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
    /// Retries after the first attempt before the delivery is dead-lettered.
    pub max_retries: u32,
    /// Wait before the first retry, in milliseconds.
    pub initial_backoff_ms: u64,
    /// Each further wait is the previous one times this.
    pub multiplier: f64,
    /// Longest wait between two attempts, in milliseconds.
    pub max_backoff_ms: u64,
    /// Share of each wait that is randomised, both ways (0.2 = ±20 %).
    pub jitter: f64,
    /// Longest `Retry-After` honoured, in milliseconds; longer hints are cut to this.
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

/// A policy that cannot work, with the field to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("retry.{field}: {message}")]
pub struct PolicyError {
    pub field: &'static str,
    pub message: String,
}

impl RetryPolicy {
    pub fn check(&self) -> Result<(), PolicyError> {
        let fail = |field, message: &str| {
            Err(PolicyError {
                field,
                message: message.to_string(),
            })
        };
        if !(self.multiplier >= 1.0 && self.multiplier.is_finite()) {
            return fail("multiplier", "must be a number of at least 1");
        }
        if !(0.0..1.0).contains(&self.jitter) {
            return fail("jitter", "must be at least 0 and below 1");
        }
        if self.initial_backoff_ms == 0 {
            return fail("initial_backoff_ms", "must be above 0");
        }
        if self.max_backoff_ms < self.initial_backoff_ms {
            return fail("max_backoff_ms", "must be at least initial_backoff_ms");
        }
        Ok(())
    }

    /// The wait before the next attempt after `failures` failed attempts
    /// (1 for the first failure), or `None` when the delivery should be
    /// dead-lettered. `unit` is a random number in [0, 1) for the jitter;
    /// `retry_after_ms` is the destination's hint.
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
        let backoff = (self.initial_backoff_ms as f64 * self.multiplier.powi(exponent))
            .min(self.max_backoff_ms as f64);
        let spread = 1.0 - self.jitter + 2.0 * self.jitter * unit.clamp(0.0, 1.0);
        let jittered = (backoff * spread) as u64;
        let hinted = retry_after_ms.map_or(0, |ms| ms.min(self.max_retry_after_ms));
        Some(Duration::from_millis(jittered.max(hinted)))
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
}
