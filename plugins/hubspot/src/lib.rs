//! HubSpot destination: writes each user's mapped choices to contact
//! properties (the CRM v3 batch upsert by email, or update-only when upserts
//! are off) and sets the status of the mapped subscription types through the
//! communication-preferences v4 API, so that a withdrawal unsubscribes the
//! contact the way HubSpot models it — with a legal basis — rather than only
//! flipping a property.
//!
//! Activations (the optional `activation` export) write model rows as
//! contact properties with the same batch upsert.
//!
//! Files, as in every connector: `config.rs` (the integration config: its
//! types, from which the schema is derived, and the checks a schema cannot
//! say), `api.rs` (requests, rate limits, and how answers are classified),
//! `activation.rs` (model rows), this file (the [`Connector`] and
//! [`Activation`] implementations).

mod activation;
mod api;
mod config;

pub use config::HubSpotConfig;

use prefsync_sdk::connection::ConnectionCheck;
use prefsync_sdk::{
    Activation, Capabilities, Connector, ConsentRecord, Context, Description, Outcome, Problems,
    RowFailure, RowOutcome, SyncBatch,
};

/// The HubSpot connector.
pub struct HubSpot;

impl Connector for HubSpot {
    type Config = HubSpotConfig;

    fn describe() -> Description {
        Description {
            type_id: "hubspot".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            display_name: "HubSpot".into(),
            default_hosts: vec![config::DEFAULT_HOST.into()],
            // The burst limit (100–190 requests per rolling 10 s) is shared
            // by every app of the account: a few calls at once, each a batch
            // of up to 100 contacts, stay well inside it.
            max_concurrency: 4,
            max_batch_size: api::MAX_BATCH_SIZE as u32,
            capabilities: Capabilities {
                batching: true,
                inbound_webhooks: false,
            },
        }
    }

    fn check(config: &HubSpotConfig, problems: &mut Problems) {
        config::check(config, problems)
    }

    fn deliver(ctx: &Context<'_>, config: &HubSpotConfig, record: &ConsentRecord) -> Outcome {
        let mut outcomes = api::deliver_batch(ctx, config, std::slice::from_ref(record));
        outcomes
            .pop()
            .unwrap_or_else(|| Outcome::retryable("HubSpot: no outcome was reached"))
    }

    fn deliver_batch(
        ctx: &Context<'_>,
        config: &HubSpotConfig,
        batch: &[ConsentRecord],
    ) -> Vec<Outcome> {
        api::deliver_batch(ctx, config, batch)
    }
}

/// Activations: model rows become contact properties, matched on the
/// batch's key field (`email`, or another unique property).
impl Activation for HubSpot {
    fn max_rows(_config: &HubSpotConfig) -> u32 {
        activation::MAX_ROWS
    }

    fn sync(
        ctx: &Context<'_>,
        config: &HubSpotConfig,
        batch: &SyncBatch,
    ) -> Result<Vec<RowOutcome>, RowFailure> {
        activation::sync(ctx, config, batch)
    }
}

/// The connection check: one contact read by email that finds nobody
/// (see `api::check_connection`).
impl ConnectionCheck for HubSpot {
    fn check_connection(
        ctx: &Context<'_>,
        config: &HubSpotConfig,
    ) -> Result<Vec<prefsync_sdk::ValidationProblem>, String> {
        api::check_connection(ctx, config)
    }
}

prefsync_sdk::export!(HubSpot, activation, connection);
