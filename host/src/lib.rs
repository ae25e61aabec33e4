//! prefsync: consent events in, destinations updated through sandboxed
//! WebAssembly connectors. See `ARCHITECTURE.md` for the map.

pub mod activation;
pub mod cli;
pub mod config;
pub mod consent;
pub mod egress;
pub mod ids;
pub mod log_safe;
pub mod outbound_http;
pub mod pipeline;
pub mod runtime;
pub mod secrets;
pub mod serve;
pub mod store;

/// Milliseconds since the Unix epoch: the one clock of leases, schedules
/// and timestamps.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
