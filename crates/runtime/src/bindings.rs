//! Host-side bindings of the `prefsync:connector` WIT package (the only copy
//! of the contract lives in the workspace's `wit/`).

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "destination",
    imports: { default: async | trappable },
    exports: { default: async },
    additional_derives: [PartialEq],
});

/// The optional `inbound` export (world `bidirectional`), reusing the types
/// above; a component's `inbound` is looked up on its own at load.
pub mod bidirectional {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "bidirectional",
        imports: { default: async | trappable },
        exports: { default: async },
        additional_derives: [PartialEq],
        with: {
            "prefsync:connector/types": super::prefsync::connector::types,
            "prefsync:connector/http": super::prefsync::connector::http,
            "prefsync:connector/log": super::prefsync::connector::log,
            "prefsync:connector/cache": super::prefsync::connector::cache,
            "prefsync:connector/connector": super::exports::prefsync::connector::connector,
        },
    });
}

/// The optional `activation` export (world `model-sync`), reusing the types
/// above; looked up on its own at load, like `inbound`.
pub mod model_sync {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "model-sync",
        imports: { default: async | trappable },
        exports: { default: async },
        additional_derives: [PartialEq],
        with: {
            "prefsync:connector/types": super::prefsync::connector::types,
        },
    });
}

/// The optional `connection` export (world `connection-check`, WIT 0.1.3):
/// a check of an integration's credentials against its destination.
pub mod connection_check {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "connection-check",
        exports: { default: async },
        additional_derives: [PartialEq],
    });
}

pub use self::prefsync::connector::http::{HttpError, Method, Request, Response};
pub use self::prefsync::connector::log::Level;
pub use self::prefsync::connector::types::{ConsentRecord, Property, RecordMetadata, Value};
pub use bidirectional::exports::prefsync::connector::inbound::{
    ConsentUpdate, InboundRequest, Receipt,
};
pub use connection_check::exports::prefsync::connector::connection::ConfigProblem;
pub use exports::prefsync::connector::connector::{
    Capabilities, DeliveredKind, Description, Failure, Outcome, ValidationProblem,
};
pub use model_sync::exports::prefsync::connector::activation::{
    RowFailure, RowOutcome, SyncBatch, SyncMode, SyncRow,
};

impl Method {
    /// The method as HTTP spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
        }
    }
}

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
