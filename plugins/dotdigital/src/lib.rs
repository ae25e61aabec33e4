//! Dotdigital destination: upserts a contact's data fields through the
//! contacts v3 API (`PATCH /contacts/v3/{identifier}/{value}`), for consent
//! deliveries and for activations (model rows, the optional `activation`
//! export).
//!
//! Files, as in every connector: `config.rs` (the integration config: its
//! types, from which the schema is derived, and the checks a schema cannot say), `api.rs` (requests and how answers are classified),
//! this file (the [`Connector`] implementation).

mod api;
mod config;

pub use config::DotdigitalConfig;

use prefsync_sdk::connection::ConnectionCheck;
use prefsync_sdk::{
    Activation, Capabilities, Connector, ConsentRecord, Context, Description, Outcome, Problems,
    RowFailure, RowOutcome, SyncBatch,
};

/// The Dotdigital connector.
pub struct Dotdigital;

/// Regional API hosts (Europe, North America, Asia Pacific).
pub const DEFAULT_HOSTS: [&str; 3] = [
    "r1-api.dotdigital.com",
    "r2-api.dotdigital.com",
    "r3-api.dotdigital.com",
];

impl Connector for Dotdigital {
    type Config = DotdigitalConfig;

    fn describe() -> Description {
        Description {
            type_id: "dotdigital".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            display_name: "Dotdigital".into(),
            default_hosts: DEFAULT_HOSTS.iter().map(|h| h.to_string()).collect(),
            // Dotdigital publishes no concurrency limit; stay polite.
            max_concurrency: 8,
            // The v3 upsert takes one contact per request.
            max_batch_size: 1,
            capabilities: Capabilities::default(),
        }
    }

    fn check(config: &DotdigitalConfig, problems: &mut Problems) {
        config::check(config, problems)
    }

    fn deliver(ctx: &Context<'_>, config: &DotdigitalConfig, record: &ConsentRecord) -> Outcome {
        api::deliver(ctx, config, record)
    }
}

/// Activations: model rows become contacts' data fields (the batch's key
/// field is the contact identifier, `email` or `mobileNumber`).
impl Activation for Dotdigital {
    fn max_rows(_config: &DotdigitalConfig) -> u32 {
        api::MAX_ROWS
    }

    fn sync(
        ctx: &Context<'_>,
        config: &DotdigitalConfig,
        batch: &SyncBatch,
    ) -> Result<Vec<RowOutcome>, RowFailure> {
        api::sync(ctx, config, batch)
    }
}

/// The connection check: the account's data fields, read with the API user
/// (see `api::check_connection`).
impl ConnectionCheck for Dotdigital {
    fn check_connection(
        ctx: &Context<'_>,
        config: &DotdigitalConfig,
    ) -> Result<Vec<prefsync_sdk::ValidationProblem>, String> {
        api::check_connection(ctx, config)
    }
}

prefsync_sdk::export!(Dotdigital, activation, connection);
