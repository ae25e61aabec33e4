//! Support for prefsync's integration tests and benchmarks: the guest
//! components built by `build.rs`, mock destination servers, and helpers.

/// The mock destinations live in their own crate (`tests/mocks`), so the demo
/// can build them without this crate's build script (every guest, and npm).
pub use prefsync_mocks as mocks;
pub mod native;
pub mod otlp;
pub mod pipeline;
pub mod support;
pub mod webdriver;

/// Paths of the guest components built from source for these tests.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}
