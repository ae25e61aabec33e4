//! Dotdigital destination: upserts a contact's data fields through the
//! contacts v3 API (`PATCH /contacts/v3/{identifier}/{value}`), for consent
//! deliveries and for activations (model rows, the optional `activation`
//! export).
//!
//! Files, as in every connector: `config.rs` (the integration config, its
//! checks and schema), `api.rs` (requests and how answers are classified),
//! this file (the [`Connector`] implementation).

mod api;
mod config;

pub use config::DotdigitalConfig;

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
            config_schema: config::schema(),
            default_hosts: DEFAULT_HOSTS.iter().map(|h| h.to_string()).collect(),
            // Dotdigital publishes no concurrency limit; stay polite.
            max_concurrency: 8,
            // The v3 upsert takes one contact per request.
            max_batch_size: 1,
            capabilities: Capabilities::default(),
        }
    }

    fn check(problems: &mut Problems<'_>) {
        config::check(problems)
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

prefsync_sdk::export!(Dotdigital, activation);
