//! Selligent destination, through either of Selligent's APIs, chosen by the
//! config's `properties.api`:
//!
//! - `gate` (the default, Didomi's shape): triggers the campaign behind a
//!   gate with the user's mapped properties, through the SOAP Individual API
//!   (`TriggerCampaign` at `{url}/automation/individual.asmx`). The campaign
//!   creates or updates the profile, so upsert is always on.
//! - `engage`: the Engage REST API. Consent deliveries upsert the record of
//!   a list with the mapped properties; activations (reverse ETL, the
//!   optional `activation` export) write model rows in batches through
//!   `data/load`.
//!
//! Either way it checks an integration's connection on demand (the optional
//! `connection` export), through the API the config selects.
//!
//! Files: `config.rs` (the integration config: its types, from which the
//! schema is derived, and the checks a schema cannot say),
//! `api.rs` with one module per API, `api/gate.rs` and `api/engage.rs` (the
//! requests, value formats, and how answers are classified), and this file
//! (the [`Connector`] and [`Activation`] implementations).

mod api;
mod config;

use api::{engage, gate};

pub use config::{EngageConfig, GateConfig, SelligentConfig};

use prefsync_sdk::{
    Activation, Capabilities, ConnectionCheck, Connector, ConsentRecord, Context, Description,
    Outcome, Problems, RowFailure, RowOutcome, SyncBatch, ValidationProblem,
};

/// The Selligent connector.
pub struct Selligent;

impl Connector for Selligent {
    type Config = SelligentConfig;

    fn describe() -> Description {
        Description {
            type_id: "selligent".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            display_name: "Selligent".into(),
            // Every installation has its own host: the config's `properties.url`.
            default_hosts: Vec::new(),
            // Selligent publishes no limit for either API; stay polite.
            max_concurrency: 4,
            // One TriggerCampaign (or one Engage upsert) per user.
            max_batch_size: 1,
            capabilities: Capabilities::default(),
        }
    }

    fn check(config: &SelligentConfig, problems: &mut Problems) {
        config::check(config, problems)
    }

    fn deliver(ctx: &Context<'_>, config: &SelligentConfig, record: &ConsentRecord) -> Outcome {
        match config {
            SelligentConfig::Gate(gate) => gate::deliver(ctx, gate, record),
            SelligentConfig::Engage(engage) => engage::deliver(ctx, engage, record),
        }
    }
}

impl Activation for Selligent {
    fn max_rows(config: &SelligentConfig) -> u32 {
        match config {
            SelligentConfig::Engage(engage) => engage.batch_size(),
            // Refused by `sync` anyway.
            SelligentConfig::Gate(_) => 1,
        }
    }

    fn sync(
        ctx: &Context<'_>,
        config: &SelligentConfig,
        batch: &SyncBatch,
    ) -> Result<Vec<RowOutcome>, RowFailure> {
        match config {
            SelligentConfig::Engage(engage) => engage::sync(ctx, engage, batch),
            SelligentConfig::Gate(_) => Err(RowFailure::permanent(
                "activations need Selligent's Engage REST API (properties.api: engage); the Gate API only triggers campaigns",
            )),
        }
    }
}

/// The connection check, through the API the config selects: the Gate's
/// `GetUserByFilter` (the login), or Engage's list details (the key and the
/// list). See `gate::check_connection` and `engage::check_connection`.
impl ConnectionCheck for Selligent {
    fn check_connection(
        ctx: &Context<'_>,
        config: &SelligentConfig,
    ) -> Result<Vec<ValidationProblem>, String> {
        match config {
            SelligentConfig::Gate(gate) => gate::check_connection(ctx, gate),
            SelligentConfig::Engage(engage) => engage::check_connection(ctx, engage),
        }
    }
}

prefsync_sdk::export!(Selligent, activation, connection);
