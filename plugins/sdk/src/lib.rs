//! Guest SDK for prefsync destination connectors.
//!
//! An author implements [`Connector`] and calls [`export!`]; the SDK hides the
//! generated WebAssembly bindings. Everything but the export glue is plain Rust,
//! so a connector's logic is unit-testable natively against [`testing::MockHost`].
//!
//! ```text
//! struct MyConnector;
//! impl prefsync_sdk::Connector for MyConnector { /* describe, check, deliver */ }
//! prefsync_sdk::export!(MyConnector);
//! ```

#![warn(missing_docs)]

pub mod activation;
pub mod config;
pub mod connector;
pub mod context;
pub mod http;
pub mod inbound;
pub mod mapping;
pub mod testing;
pub mod types;

pub use activation::{Activation, RowFailure, RowOutcome, SyncBatch, SyncMode, SyncRow};
pub use config::Problems;
pub use connector::Connector;
pub use context::{Context, Host, LogLevel};
pub use http::{HttpError, Method, Request, Response, StatusClass};
pub use inbound::{ConsentUpdate, Inbound, InboundRequest, Receipt};
pub use mapping::Mapping;
pub use types::{
    Capabilities, ConsentRecord, DeliveredKind, Description, Failure, Outcome, Property,
    RecordMetadata, ValidationProblem, Value,
};

#[doc(hidden)]
pub mod __wit;

/// Exports a [`Connector`] implementation as the component's `connector` interface.
///
/// Call it once, at the crate root of a `cdylib` built for `wasm32-wasip2`.
/// On other targets it expands to nothing, so the same crate links natively.
///
/// `export!(MyConnector, inbound)` also exports the optional `inbound`
/// interface (the connector implements [`Inbound`]); that form needs the
/// companion crate `prefsync-sdk-inbound` as a dependency, which carries the
/// bindings of the `webhook-receiver` world (just `inbound`), so connectors
/// without it never declare that interface.
///
/// `export!(MyConnector, activation)` also exports the optional `activation`
/// interface (the connector implements [`Activation`]: activations, WIT
/// 0.1.2); it needs the companion crate `prefsync-sdk-activation` (world
/// `model-sync`) for the same reason. `export!(MyConnector, inbound,
/// activation)` exports both.
#[macro_export]
macro_rules! export {
    ($connector:ty, inbound, activation) => {
        $crate::export!($connector);
        ::prefsync_sdk_inbound::export_inbound!($connector);
        ::prefsync_sdk_activation::export_activation!($connector);
    };
    ($connector:ty, activation) => {
        $crate::export!($connector);
        ::prefsync_sdk_activation::export_activation!($connector);
    };
    ($connector:ty, inbound) => {
        $crate::export!($connector);
        ::prefsync_sdk_inbound::export_inbound!($connector);
    };
    ($connector:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct PrefsyncExport;
            impl $crate::__wit::bindings::exports::prefsync::connector::connector::Guest
                for PrefsyncExport
            {
                fn describe()
                -> $crate::__wit::bindings::exports::prefsync::connector::connector::Description
                {
                    $crate::__wit::describe::<$connector>()
                }
                fn validate(
                    config: ::std::string::String,
                ) -> ::std::vec::Vec<
                    $crate::__wit::bindings::exports::prefsync::connector::connector::ValidationProblem,
                > {
                    $crate::__wit::validate::<$connector>(config)
                }
                fn deliver(
                    config: ::std::string::String,
                    batch: ::std::vec::Vec<
                        $crate::__wit::bindings::prefsync::connector::types::ConsentRecord,
                    >,
                ) -> ::std::vec::Vec<
                    $crate::__wit::bindings::exports::prefsync::connector::connector::Outcome,
                > {
                    $crate::__wit::deliver::<$connector>(config, batch)
                }
            }
            $crate::__wit::bindings::__export_connector_impl!(PrefsyncExport with_types_in $crate::__wit::bindings);
        };
    };
}
