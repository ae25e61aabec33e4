//! prefsync: consent events in, destinations updated through sandboxed
//! WebAssembly connectors. See `ARCHITECTURE.md` for the map.

pub mod activation;
pub mod admin_token;
pub mod cli;
pub mod config;
pub mod ingest;
pub mod integrations;
pub mod logging;
pub mod metrics;
pub mod pipeline;
pub mod serve;
pub mod telemetry;

// The layers below, each a crate of its own (ARCHITECTURE.md), under the
// names the binary and the tests use for them.
pub use prefsync_base::{ids, log_safe, secrets};
pub use prefsync_consent as consent;
pub use prefsync_runtime as runtime;
pub use prefsync_runtime::{egress, outbound_http};
pub use prefsync_store as store;

/// Milliseconds since the Unix epoch: the one clock of leases, schedules
/// and timestamps.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `bytes` random bytes from the OS generator, as hex: generated ids and
/// tokens.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // The OS generator does not fail on supported platforms; zeros would still be a valid id.
    let _ = getrandom::fill(&mut buf);
    hex::encode(buf)
}
