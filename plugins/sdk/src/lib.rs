//! Guest SDK for prefsync destination connectors.
//!
//! An author implements [`Connector`] and calls [`export!`]; the SDK hides the
//! generated WebAssembly bindings. Everything but the export glue is plain Rust,
//! so a connector's logic is unit-testable natively against [`testing::MockHost`].
//!
//! A whole connector: its config type (from which the JSON Schema the host
//! checks is derived), the rule the schema cannot say, and one request per
//! record, classified; then a unit test against the mock host.
//!
//! ```
//! use prefsync_sdk::http::failure_from_response;
//! use prefsync_sdk::mapping::mapped_json;
//! use prefsync_sdk::{
//!     Capabilities, Connector, ConsentRecord, Context, DeliveredKind, Description, Mapping,
//!     Outcome, Problems, Request, http::encode_component,
//! };
//! use schemars::JsonSchema;
//! use serde::Deserialize;
//!
//! /// One integration.
//! #[derive(Deserialize, JsonSchema)]
//! pub struct AcmeConfig {
//!     /// Where and as whom to call the API.
//!     pub authentication: Authentication,
//!     /// API attribute (`id`) ← Didomi property (`value`).
//!     #[schemars(length(min = 1))]
//!     pub mappings: Vec<Mapping>,
//! }
//!
//! /// The `authentication` block.
//! #[derive(Deserialize, JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! pub struct Authentication {
//!     /// The API's base URL.
//!     #[schemars(url, length(min = 1))]
//!     pub url: String,
//!     /// API key.
//!     #[schemars(extend("writeOnly" = true), length(min = 1))]
//!     pub api_key: String,
//! }
//!
//! pub struct Acme;
//!
//! impl Connector for Acme {
//!     type Config = AcmeConfig;
//!
//!     fn describe() -> Description {
//!         Description {
//!             type_id: "acme".into(),
//!             version: "0.1.0".into(),
//!             display_name: "Acme".into(),
//!             default_hosts: Vec::new(),
//!             max_concurrency: 4,
//!             max_batch_size: 1,
//!             capabilities: Capabilities::default(),
//!         }
//!     }
//!
//!     fn check(config: &AcmeConfig, p: &mut Problems) {
//!         p.url("authentication.url", &config.authentication.url, false);
//!         p.mappings("mappings", &config.mappings);
//!     }
//!
//!     fn deliver(ctx: &Context<'_>, config: &AcmeConfig, record: &ConsentRecord) -> Outcome {
//!         let url = format!("{}/contacts/{}", config.authentication.url, encode_component(&record.key));
//!         let request = Request::new(prefsync_sdk::Method::Put, url)
//!             .header("authorization", format!("Bearer {}", config.authentication.api_key))
//!             .json(&serde_json::json!({"attributes": mapped_json(&config.mappings, record)}));
//!         match ctx.send(request) {
//!             Ok(r) if r.status == 201 => Outcome::Delivered(DeliveredKind::Created),
//!             Ok(r) if (200..300).contains(&r.status) => Outcome::Delivered(DeliveredKind::Updated),
//!             Ok(r) => failure_from_response(&r, "acme refused the contact"),
//!             Err(e) => e.into_outcome("acme"),
//!         }
//!     }
//! }
//!
//! prefsync_sdk::export!(Acme);
//!
//! // A unit test: the mock host answers by method and URL, and the same
//! // schema check the host runs finds every problem of a config.
//! use prefsync_sdk::testing::MockHost;
//! use prefsync_sdk::{Method, Value, connector};
//!
//! let config = r#"{"authentication": {"url": "https://api.acme.test", "api_key": "k"},
//!                  "mappings": [{"id": "news", "value": "consents_purposes_news_enabled"}]}"#;
//! let host = MockHost::new();
//! host.respond_to(Method::Put, "https://api.acme.test/contacts/u%401", 201, &[], "{}");
//! let record = ConsentRecord::new(
//!     "email",
//!     "u@1",
//!     &[("consents_purposes_news_enabled", Value::Boolean(true))],
//! );
//! let outcomes = connector::deliver::<Acme>(&host, config, &[record]);
//! assert_eq!(outcomes, [Outcome::Delivered(DeliveredKind::Created)]);
//!
//! let problems = connector::validate::<Acme>(r#"{"authentication": {"url": 3}, "mappings": []}"#);
//! let shown: Vec<String> = problems.iter().map(|p| format!("{}: {}", p.path, p.message)).collect();
//! assert_eq!(shown, [
//!     "authentication.api_key: is required",
//!     "authentication.url: must be a string",
//!     "mappings: must not be empty",
//! ]);
//! ```
//!
//! The reference for each part: [`Connector`] (the trait), [`Problems`]
//! (checks), [`Request`] and [`http`] (requests and classifying answers),
//! [`mapping`] (mapped values), [`testing::MockHost`] (unit tests),
//! [`Inbound`] and [`Activation`] (the optional exports), [`schema`] (the
//! derived JSON Schema).

#![warn(missing_docs)]

pub mod activation;
pub mod config;
pub mod connection;
pub mod connector;
pub mod context;
pub mod http;
pub mod inbound;
pub mod mapping;
pub mod schema;
pub mod testing;
pub mod types;

pub use activation::{Activation, RowFailure, RowOutcome, SyncBatch, SyncMode, SyncRow};
pub use config::Problems;
pub use connection::ConnectionCheck;
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
/// Optional interfaces follow the connector's type, in any order, each
/// implemented by the connector and each needing its companion crate as a
/// dependency (which carries the bindings of a world with just that
/// export, so connectors without it never declare that interface):
///
/// | word | the connector implements | companion crate | WIT |
/// |---|---|---|---|
/// | `inbound` | [`Inbound`] (reads the destination's webhooks) | `prefsync-sdk-inbound` | 0.1.1 |
/// | `activation` | [`Activation`] (syncs user models) | `prefsync-sdk-activation` | 0.1.2 |
/// | `connection` | [`ConnectionCheck`] (checks credentials) | `prefsync-sdk-connection` | 0.1.3 |
///
/// `export!(MyConnector, activation, connection)` exports both.
#[macro_export]
macro_rules! export {
    ($connector:ty $(, $optional:ident)+ $(,)?) => {
        $crate::export!($connector);
        $( $crate::__export_optional!($optional, $connector); )+
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

/// One optional interface of [`export!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __export_optional {
    (inbound, $connector:ty) => {
        ::prefsync_sdk_inbound::export_inbound!($connector);
    };
    (activation, $connector:ty) => {
        ::prefsync_sdk_activation::export_activation!($connector);
    };
    (connection, $connector:ty) => {
        ::prefsync_sdk_connection::export_connection!($connector);
    };
}
