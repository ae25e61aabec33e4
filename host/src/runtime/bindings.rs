//! Host-side bindings of the `prefsync:connector` WIT package (the only copy
//! of the contract lives in the workspace's `wit/`).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "destination",
    imports: { default: async | trappable },
    exports: { default: async },
    additional_derives: [PartialEq],
});

pub use self::prefsync::connector::http::{HttpError, Method, Request, Response};
pub use self::prefsync::connector::log::Level;
pub use self::prefsync::connector::types::{ConsentRecord, Property, RecordMetadata, Value};
pub use exports::prefsync::connector::connector::{
    Capabilities, DeliveredKind, Description, Failure, Outcome, ValidationProblem,
};

impl std::fmt::Display for ValidationProblem {
    /// `path: message`, with `(config)` for a problem of the whole document.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = if self.path.is_empty() {
            "(config)"
        } else {
            &self.path
        };
        write!(f, "{path}: {}", self.message)
    }
}
