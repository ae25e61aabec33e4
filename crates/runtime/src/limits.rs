//! Per-call limits and the memory limiter that enforces them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Limits applied to every connector call (`[limits]` in the host config).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Most bytes all of one instance's linear memories may hold together.
    pub memory_bytes: u64,
    /// Guest CPU time one call may use, in milliseconds (epoch ticks of
    /// `epoch_tick_ms` while guest code runs; time in host calls not counted).
    pub cpu_ms: u64,
    /// Wall-clock limit of one call, host calls (HTTP) included, in milliseconds.
    pub wall_ms: u64,
    /// Largest response body a connector may receive, in bytes.
    pub response_bytes: u64,
    /// Longest a single outbound request may take, in milliseconds.
    pub request_timeout_ms: u64,
    /// Most calls in flight per connector type across all integrations.
    pub connector_concurrency: u32,
    /// Instances that may exist at once across all connectors (pooling allocator slots).
    pub max_instances: u32,
    /// Granularity of CPU accounting, in milliseconds.
    pub epoch_tick_ms: u64,
    /// Bytes of guest stdout/stderr kept per call for the log.
    pub guest_output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 * 1024 * 1024,
            cpu_ms: 2_000,
            wall_ms: 150_000,
            response_bytes: 4 * 1024 * 1024,
            request_timeout_ms: 125_000,
            connector_concurrency: 32,
            max_instances: 128,
            epoch_tick_ms: 10,
            guest_output_bytes: 16 * 1024,
        }
    }
}

impl Limits {
    pub fn wall(&self) -> Duration {
        Duration::from_millis(self.wall_ms)
    }

    /// Epoch ticks a call may spend in guest code.
    pub fn cpu_ticks(&self) -> u64 {
        self.cpu_ms.div_ceil(self.epoch_tick_ms.max(1)).max(1)
    }
}

/// Caps the sum of an instance's memories (wasmtime's own limits cap each
/// memory separately) and remembers whether the cap was hit.
#[derive(Debug)]
pub struct MemoryLimiter {
    cap: usize,
    /// Bytes currently held, as the sum of each memory's size.
    used: usize,
    /// Largest `used` seen during the call.
    pub peak: usize,
    /// Set when a growth was refused for the cap.
    pub refused: bool,
    /// The total the refused growth asked for.
    pub refused_total: usize,
}

impl MemoryLimiter {
    pub fn new(cap: u64) -> Self {
        MemoryLimiter {
            cap: usize::try_from(cap).unwrap_or(usize::MAX),
            used: 0,
            peak: 0,
            refused: false,
            refused_total: 0,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let grown = self.used - current.min(self.used) + desired;
        if grown > self.cap {
            self.refused = true;
            self.refused_total = self.refused_total.max(grown);
            return Ok(false);
        }
        self.used = grown;
        self.peak = self.peak.max(grown);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; a guest has no reason for millions.
        Ok(desired <= 100_000)
    }
}

#[cfg(test)]
mod tests {
    use wasmtime::ResourceLimiter;

    use super::*;

    #[test]
    fn caps_the_sum_of_all_memories() {
        let mut l = MemoryLimiter::new(100);
        assert!(l.memory_growing(0, 60, None).unwrap());
        // A second memory of 30 fits (90), then growing it to 50 does not (110).
        assert!(l.memory_growing(0, 30, None).unwrap());
        assert!(!l.memory_growing(30, 50, None).unwrap());
        assert!(l.refused);
        assert_eq!(l.refused_total, 110);
        assert_eq!(l.peak, 90);
    }
}
