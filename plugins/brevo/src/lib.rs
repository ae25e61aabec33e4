//! Brevo (ex-Sendinblue) destination: creates or updates a contact through
//! the contacts API v3 with the user's mapped attributes, and models consent
//! as Brevo does: the email and SMS blacklists (`emailBlacklisted`,
//! `smsBlacklisted`) and list membership (`listIds`, `unlinkListIds`).
//!
//! It also writes user-model rows (activations) as contacts' attributes, and
//! checks an integration's connection (the key and its lists) on demand.
//!
//! Files, as in every connector: `config.rs` (the integration config: its
//! types, from which the schema is derived, and the checks a schema cannot
//! say), `api.rs` (requests and how answers are classified),
//! `activation.rs` (model rows → contacts), this file (the [`Connector`] and
//! [`Activation`] implementations).

mod activation;
mod api;
mod config;

pub use api::ContactChange;
pub use config::{BrevoConfig, ListMapping};

use prefsync_sdk::{
    Activation, Capabilities, ConnectionCheck, Connector, ConsentRecord, Context, Description,
    Outcome, Problems, RowFailure, RowOutcome, SyncBatch, ValidationProblem,
};

/// The Brevo connector.
pub struct Brevo;

/// Brevo's one API host (no regions); `properties.api_base` overrides it.
pub const DEFAULT_HOST: &str = "api.brevo.com";

impl Connector for Brevo {
    type Config = BrevoConfig;

    fn describe() -> Description {
        Description {
            type_id: "brevo".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            display_name: "Brevo".into(),
            default_hosts: vec![DEFAULT_HOST.into()],
            // Brevo allows 10 contacts requests a second on its general
            // tier; two calls in flight at a few hundred milliseconds each
            // stay near that, and a 429 past it waits for the window's reset.
            max_concurrency: 2,
            // One contact per request: the batch update call is update-only
            // and deprecated from 30 October 2026.
            max_batch_size: 1,
            capabilities: Capabilities {
                batching: false,
                inbound_webhooks: false,
            },
        }
    }

    fn check(config: &BrevoConfig, problems: &mut Problems) {
        config::check(config, problems)
    }

    fn deliver(ctx: &Context<'_>, config: &BrevoConfig, record: &ConsentRecord) -> Outcome {
        api::deliver(ctx, config, record)
    }
}

/// Activations: model rows become contacts' attributes (the batch's key
/// field is the email), one contact per request.
impl Activation for Brevo {
    fn max_rows(_config: &BrevoConfig) -> u32 {
        activation::MAX_ROWS
    }

    fn sync(
        ctx: &Context<'_>,
        config: &BrevoConfig,
        batch: &SyncBatch,
    ) -> Result<Vec<RowOutcome>, RowFailure> {
        activation::sync(ctx, config, batch)
    }
}

/// The connection check: the key (`GET /v3/account`) and each configured
/// list (`GET /v3/contacts/lists/{id}`), reading only.
impl ConnectionCheck for Brevo {
    fn check_connection(
        ctx: &Context<'_>,
        config: &BrevoConfig,
    ) -> Result<Vec<ValidationProblem>, String> {
        api::check_connection(ctx, config)
    }
}

prefsync_sdk::export!(Brevo, activation, connection);
