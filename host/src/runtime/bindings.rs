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
