//! What can go wrong loading or calling a connector. Each error says
//! whether trying again may help: the connector classifies, the host
//! schedules.

use crate::bindings::RowFailure;
use crate::{CONNECTOR_INTERFACE, SUPPORTED_WIT};

/// Why a component could not be loaded. Each text says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("not a WebAssembly file (it does not start with the `\\0asm` magic bytes)")]
    NotWasm,
    #[error(
        "this is a core WebAssembly module, not a component: build the connector with `cargo build --target wasm32-wasip2`"
    )]
    CoreModule,
    #[error("invalid WebAssembly component: {0}")]
    Invalid(String),
    #[error(
        "the component does not export `{CONNECTOR_INTERFACE}` (its exports: {exports}); build it against prefsync's WIT world `destination`"
    )]
    WrongWorld { exports: String },
    #[error(
        "the component is built against {CONNECTOR_INTERFACE}@{found}; this host supports {}",
        SUPPORTED_WIT.iter().map(|v| format!("{v}.x")).collect::<Vec<_>>().join(", ")
    )]
    UnsupportedVersion { found: String },
    #[error("the component needs imports this host does not provide: {0}")]
    Link(String),
    #[error("the component's `describe` failed: {0}")]
    Describe(String),
    #[error("compiling the component failed: {0}")]
    Compile(String),
}

/// Why a call did not return normally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("connector used more than its CPU budget of {limit_ms} ms")]
    CpuLimit { limit_ms: u64 },
    #[error(
        "connector tried to grow its memory to {} when its limit is {}",
        mib(*requested_bytes),
        mib(*limit_bytes)
    )]
    MemoryLimit {
        limit_bytes: u64,
        /// The total the refused growth asked for.
        requested_bytes: u64,
    },
    #[error("connector call took longer than {limit_ms} ms")]
    WallTimeout { limit_ms: u64 },
    #[error("connector trapped: {0}")]
    Trap(String),
    #[error("connector returned {got} outcomes for {expected} records")]
    OutcomeCount { got: usize, expected: usize },
}

/// Why a webhook was not turned into consent updates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiveError {
    #[error("connector `{0}` does not read webhooks")]
    Unsupported(String),
    /// The connector found the request itself wrong; the text says why.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Call(#[from] CallError),
}

/// Why a `sync` call (activations) wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("the {0} connector has no connection check (it does not export `connection`)")]
    Unsupported(String),
    /// The check itself could not be made (unreachable, timeout, 5xx): the
    /// config may be right.
    #[error("could not check the connection: {0}")]
    Unreachable(String),
    #[error(transparent)]
    Call(#[from] CallError),
}

/// Why a `sync` call wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("connector `{0}` cannot sync models (it does not export `activation`)")]
    Unsupported(String),
    /// The destination refused the batch as a whole (credentials, outage).
    #[error("{}", .0.message)]
    Refused(RowFailure),
    #[error(transparent)]
    Call(#[from] CallError),
}

impl SyncError {
    /// Whether the same batch may go through later.
    pub fn retryable(&self) -> bool {
        match self {
            SyncError::Unsupported(_) => false,
            SyncError::Refused(failure) => failure.retryable,
            SyncError::Call(error) => error.retryable(),
        }
    }
}

/// Bytes as MiB with two decimals, as the limits are read.
pub fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

impl CallError {
    /// A timeout may pass; a trap or a limit breach will happen again.
    pub fn retryable(&self) -> bool {
        matches!(self, CallError::WallTimeout { .. })
    }
}
