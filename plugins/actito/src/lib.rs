//! Actito destination: creates or updates a profile of an Actito table with
//! the user's mapped subscriptions and metadata attributes (API v4), and reads
//! Actito's webhooks back into consent updates (the bidirectional flow), and
//! checks an integration's key on demand (the `connection` export).
//!
//! Files, as in every connector: `config.rs` (the integration config: its
//! types, from which the schema is derived, and the checks a schema cannot
//! say), `api.rs` (requests, the token, and how answers are classified),
//! `inbound.rs` (Actito's webhook envelope → consent updates),
//! this file (the [`Connector`] and [`Inbound`] implementations).

mod api;
mod config;
mod inbound;

pub use config::ActitoConfig;

use prefsync_sdk::{
    Capabilities, ConnectionCheck, Connector, ConsentRecord, Context, Description, Inbound,
    InboundRequest, Outcome, Problems, Receipt, ValidationProblem,
};

/// The Actito connector.
pub struct Actito;

/// Actito's production API; `api1`, `api3` and `api-pre1` are set in
/// `properties.api_base`.
pub const DEFAULT_HOST: &str = "api.actito.com";

impl Connector for Actito {
    type Config = ActitoConfig;

    fn describe() -> Description {
        Description {
            type_id: "actito".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            display_name: "Actito".into(),
            default_hosts: vec![DEFAULT_HOST.into()],
            // Actito allows 5 concurrent requests per licence and answers
            // 429 beyond; each call makes its requests one after the other.
            max_concurrency: 5,
            // One profile per request.
            max_batch_size: 1,
            capabilities: Capabilities {
                batching: false,
                inbound_webhooks: true,
            },
        }
    }

    fn check(config: &ActitoConfig, problems: &mut Problems) {
        config::check(config, problems)
    }

    fn deliver(ctx: &Context<'_>, config: &ActitoConfig, record: &ConsentRecord) -> Outcome {
        api::deliver(ctx, config, record)
    }
}

impl Inbound for Actito {
    fn receive(config: &ActitoConfig, request: &InboundRequest) -> Result<Receipt, String> {
        inbound::receive(config, request)
    }
}

/// The connection check: the token exchange (see `api::check_connection`).
impl ConnectionCheck for Actito {
    fn check_connection(
        ctx: &Context<'_>,
        config: &ActitoConfig,
    ) -> Result<Vec<ValidationProblem>, String> {
        api::check_connection(ctx, config)
    }
}

prefsync_sdk::export!(Actito, inbound, connection);
