//! The consent pipeline's decisions, kept free of I/O so they are tested on
//! their own: what a connector receives for a user's state, whether a change
//! matters to an integration, when a failed delivery is tried again, and how
//! a change written back to its source never loops. (`prefsync serve` wires
//! them to the store and the runtime.)

pub mod records;
pub mod retry;
pub mod write_back;

pub use records::{change_matters, mapped_properties, record_for};
pub use retry::RetryPolicy;
