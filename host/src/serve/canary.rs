//! The canary of an upgrade: a share of first attempts goes to the new
//! version; its permanent-failure rate is compared with the old version's
//! over the same window; the verdict is to roll back, to promote, or to wait.
//!
//! Pure bookkeeping and one decision function: the registry routes, the
//! connector manager acts on the verdict.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::runtime::Destination;

/// How a canary runs and when it fails.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CanaryPolicy {
    /// Share of first attempts routed to the new version, 1–99 %.
    pub percent: u8,
    /// How long the canary runs before the new version is promoted.
    pub window: Duration,
    /// Roll back when the new version's permanent-failure rate exceeds the
    /// old one's by more than this many points (0.10 = 10 %).
    pub max_failure_increase: f64,
    /// Deliveries the new version must have made before its rate counts.
    pub min_deliveries: u64,
}

impl Default for CanaryPolicy {
    fn default() -> Self {
        CanaryPolicy {
            percent: 10,
            window: Duration::from_secs(300),
            max_failure_increase: 0.10,
            min_deliveries: 20,
        }
    }
}

/// Deliveries and permanent failures of one version during the canary.
#[derive(Debug, Default)]
pub struct Tally {
    deliveries: AtomicU64,
    permanent_failures: AtomicU64,
}

/// A snapshot of a [`Tally`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Counts {
    pub deliveries: u64,
    pub permanent_failures: u64,
}

impl Counts {
    pub fn rate(&self) -> f64 {
        if self.deliveries == 0 {
            0.0
        } else {
            self.permanent_failures as f64 / self.deliveries as f64
        }
    }
}

impl Tally {
    fn add(&self, deliveries: u64, permanent_failures: u64) {
        self.deliveries.fetch_add(deliveries, Ordering::Relaxed);
        self.permanent_failures
            .fetch_add(permanent_failures, Ordering::Relaxed);
    }

    pub fn counts(&self) -> Counts {
        Counts {
            deliveries: self.deliveries.load(Ordering::Relaxed),
            permanent_failures: self.permanent_failures.load(Ordering::Relaxed),
        }
    }
}

/// One running canary.
pub struct CanaryRun {
    pub candidate: Arc<dyn Destination>,
    pub policy: CanaryPolicy,
    pub started: Instant,
    /// Wall-clock start, for the API.
    pub started_at_ms: i64,
    routed: AtomicU64,
    pub old: Tally,
    pub new: Tally,
}

/// What to do with a canary now.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Wait,
    /// The text says why, with the figures.
    RollBack(String),
    Promote(String),
}

impl CanaryRun {
    pub fn new(candidate: Arc<dyn Destination>, policy: CanaryPolicy, started_at_ms: i64) -> Self {
        CanaryRun {
            candidate,
            policy,
            started: Instant::now(),
            started_at_ms,
            routed: AtomicU64::new(0),
            old: Tally::default(),
            new: Tally::default(),
        }
    }

    /// Whether the next first attempt goes to the candidate: exactly
    /// `percent` of every hundred, spread out.
    pub fn route_to_candidate(&self) -> bool {
        let n = self.routed.fetch_add(1, Ordering::Relaxed);
        // Bresenham-style: the k-th delivery goes to the candidate when the
        // running share falls short of the target.
        let percent = u64::from(self.policy.percent.min(100));
        (n + 1) * percent / 100 > n * percent / 100
    }

    /// Counts the outcomes of one call.
    pub fn record(&self, candidate: bool, deliveries: u64, permanent_failures: u64) {
        let tally = if candidate { &self.new } else { &self.old };
        tally.add(deliveries, permanent_failures);
    }

    pub fn verdict(&self) -> Verdict {
        decide(
            &self.policy,
            self.old.counts(),
            self.new.counts(),
            self.started.elapsed(),
        )
    }
}

/// The decision: roll back as soon as the new version is clearly worse,
/// promote once the window has passed without that.
pub fn decide(policy: &CanaryPolicy, old: Counts, new: Counts, elapsed: Duration) -> Verdict {
    let figures = format!(
        "permanent failures {:.1} % ({} of {}) on the new version vs {:.1} % ({} of {}) on the old",
        new.rate() * 100.0,
        new.permanent_failures,
        new.deliveries,
        old.rate() * 100.0,
        old.permanent_failures,
        old.deliveries
    );
    if new.deliveries >= policy.min_deliveries.max(1)
        && new.rate() - old.rate() > policy.max_failure_increase
    {
        return Verdict::RollBack(format!(
            "{figures}: more than {:.1} points worse",
            policy.max_failure_increase * 100.0
        ));
    }
    if elapsed >= policy.window {
        return Verdict::Promote(format!(
            "window of {} s passed; {figures}",
            policy.window.as_secs()
        ));
    }
    Verdict::Wait
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(deliveries: u64, permanent_failures: u64) -> Counts {
        Counts {
            deliveries,
            permanent_failures,
        }
    }

    fn policy() -> CanaryPolicy {
        CanaryPolicy {
            percent: 25,
            window: Duration::from_secs(60),
            max_failure_increase: 0.10,
            min_deliveries: 10,
        }
    }

    #[test]
    fn a_clearly_worse_version_is_rolled_back_before_the_window_ends() {
        let verdict = decide(
            &policy(),
            counts(40, 0),
            counts(10, 10),
            Duration::from_secs(1),
        );
        let Verdict::RollBack(why) = verdict else {
            panic!("{verdict:?}")
        };
        assert!(why.contains("100.0 % (10 of 10)"), "{why}");
        assert!(why.contains("0.0 % (0 of 40)"), "{why}");
    }

    #[test]
    fn too_few_deliveries_or_a_small_difference_waits_then_promotes() {
        let p = policy();
        assert_eq!(
            decide(&p, counts(40, 0), counts(9, 9), Duration::from_secs(1)),
            Verdict::Wait
        );
        // 15 % vs 10 %: within 10 points.
        assert_eq!(
            decide(&p, counts(100, 10), counts(20, 3), Duration::from_secs(1)),
            Verdict::Wait
        );
        assert!(matches!(
            decide(&p, counts(100, 10), counts(20, 3), Duration::from_secs(60)),
            Verdict::Promote(_)
        ));
    }

    #[test]
    fn routing_takes_exactly_the_share() {
        let run = CanaryRun::new(
            Arc::new(crate::runtime::testing::NullDestination::new("x", "1")),
            policy(),
            0,
        );
        let routed = (0..1000).filter(|_| run.route_to_candidate()).count();
        assert_eq!(routed, 250);
    }
}
