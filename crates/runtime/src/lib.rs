//! The sandboxed connector runtime: one wasmtime engine with the pooling
//! allocator, a pre-instantiated handle per loaded component, a fresh store
//! per call, and limits on memory, CPU, wall time and concurrency.
//!
//! A connector call never takes the host down: traps, limit breaches and
//! timeouts become a [`CallError`], and `deliver` turns that into a failed
//! outcome for every record of the batch.
//!
//! Every connection a connector or the host itself opens passes [`egress`],
//! the one policy of where prefsync may connect; [`outbound_http`] is the
//! HTTP client lent to connectors behind it.

pub mod artifacts;
pub mod bindings;
mod call;
mod connector;
mod destination;
pub mod egress;
mod engine;
mod error;
mod guest_output;
mod integration;
mod kv;
pub mod limits;
pub mod outbound_http;

pub use artifacts::{ArtifactCache, Source, content_hash};
pub use bindings::{
    ConsentRecord, ConsentUpdate, DeliveredKind, Failure, InboundRequest, Outcome, Property,
    Receipt, RecordMetadata, RowFailure, RowOutcome, SyncBatch, SyncMode, SyncRow,
    ValidationProblem, Value,
};
pub use call::{CallStats, GUEST_LOG_TARGET, GuestLogLine};
pub use connector::{CallPhases, CallReport, Connector, ConnectorInfo, Delivery};
pub use destination::Destination;
pub use destination::testing;
pub use engine::{PoolTuning, Runtime, RuntimeOptions};
pub use error::{CallError, CheckError, LoadError, ReceiveError, SyncError, mib};
pub use integration::IntegrationContext;
pub use limits::Limits;

/// The WIT package every connector is built against.
pub const WIT_PACKAGE: &str = "prefsync:connector";
/// The interface a connector exports.
pub const CONNECTOR_INTERFACE: &str = "prefsync:connector/connector";
/// The optional interface a connector exports to read its destination's webhooks.
pub const INBOUND_INTERFACE: &str = "prefsync:connector/inbound";
/// The optional interface a connector exports to sync a user model (activations).
pub const ACTIVATION_INTERFACE: &str = "prefsync:connector/activation";
/// The optional interface a connector exports to check an integration's
/// connection (credentials, names) against its destination.
pub const CONNECTION_INTERFACE: &str = "prefsync:connector/connection";
/// Contract versions this host runs: any `0.1.x` (a minor version of a
/// `0.x` package is its compatibility line).
pub const SUPPORTED_WIT: &[&str] = &["0.1"];
