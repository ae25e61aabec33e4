//! Salesforce Marketing Cloud (Engagement) destination: writes each user's
//! mapped consent choices as a row of a data extension (the synchronous
//! rowset upsert, up to 50 rows a call), and model rows for activations.
//! An integration's credentials and data extension are checked on demand
//! (the `connection` export).
//!
//! SFMC keeps consent as data-extension columns — an opt-in flag and the
//! date it was set — so a withdrawal is the flag written `false` with the
//! date of the withdrawal (`properties.consent_date_column`).
//!
//! Files, as in every connector: `config.rs` (the integration config: its
//! types, from which the schema is derived, and the checks a schema cannot
//! say), `api.rs` (requests, the token, and how answers are classified),
//! this file (the [`Connector`] and [`Activation`] implementations).

mod api;
mod config;

pub use config::SfmcConfig;

use prefsync_sdk::connection::ConnectionCheck;
use prefsync_sdk::{
    Activation, Capabilities, Connector, ConsentRecord, Context, Description, Outcome, Problems,
    RowFailure, RowOutcome, SyncBatch, ValidationProblem,
};

/// The SFMC connector.
pub struct Sfmc;

impl Connector for Sfmc {
    type Config = SfmcConfig;

    fn describe() -> Description {
        Description {
            type_id: "sfmc".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            display_name: "Salesforce Marketing Cloud".into(),
            // The tenant's hosts: the host fills `{properties.subdomain}`
            // from the config (one DNS label, or the entry is left out).
            default_hosts: vec![
                "{properties.subdomain}.auth.marketingcloudapis.com".into(),
                "{properties.subdomain}.rest.marketingcloudapis.com".into(),
            ],
            // SFMC publishes no quota but throttles accounts that "hurt
            // performance": few calls at once, many rows each.
            max_concurrency: 2,
            max_batch_size: api::MAX_ROWS as u32,
            capabilities: Capabilities {
                batching: true,
                inbound_webhooks: false,
            },
        }
    }

    fn check(config: &SfmcConfig, problems: &mut Problems) {
        config::check(config, problems)
    }

    fn deliver(ctx: &Context<'_>, config: &SfmcConfig, record: &ConsentRecord) -> Outcome {
        api::deliver_batch(ctx, config, std::slice::from_ref(record))
            .pop()
            .unwrap_or_else(|| Outcome::permanent("internal: record left without outcome"))
    }

    fn deliver_batch(
        ctx: &Context<'_>,
        config: &SfmcConfig,
        batch: &[ConsentRecord],
    ) -> Vec<Outcome> {
        api::deliver_batch(ctx, config, batch)
    }
}

/// Activations: model rows become data-extension rows keyed on the batch's
/// key column (attribute names are the data extension's columns).
impl Activation for Sfmc {
    fn max_rows(_config: &SfmcConfig) -> u32 {
        api::MAX_ROWS as u32
    }

    fn sync(
        ctx: &Context<'_>,
        config: &SfmcConfig,
        batch: &SyncBatch,
    ) -> Result<Vec<RowOutcome>, RowFailure> {
        api::sync(ctx, config, batch)
    }
}

/// The connection check: a new token, then one read of the data extension
/// (see `api::check_connection`).
impl ConnectionCheck for Sfmc {
    fn check_connection(
        ctx: &Context<'_>,
        config: &SfmcConfig,
    ) -> Result<Vec<ValidationProblem>, String> {
        api::check_connection(ctx, config)
    }
}

prefsync_sdk::export!(Sfmc, activation, connection);
