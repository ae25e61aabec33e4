//! Braze destination: writes each user's mapped consent choices to Braze with
//! `POST /users/track` — the email and push channels' global subscription
//! states, subscription groups, and user attributes — up to 75 users per
//! request. It also writes user-model rows as user attributes (activations),
//! and checks an integration's connection on demand.
//!
//! Files, as in every connector: `config.rs` (the integration config: its
//! types, from which the schema is derived, and the checks a schema cannot
//! say), `api.rs` (the requests and how answers are
//! classified), this file (the [`Connector`] implementation).

mod api;
mod config;

pub use config::{BrazeConfig, INSTANCES};

use prefsync_sdk::{
    Activation, Capabilities, ConnectionCheck, Connector, ConsentRecord, Context, Description,
    Outcome, Problems, RowFailure, RowOutcome, SyncBatch, ValidationProblem,
};

/// The Braze connector.
pub struct Braze;

impl Connector for Braze {
    type Config = BrazeConfig;

    fn describe() -> Description {
        Description {
            type_id: "braze".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            display_name: "Braze".into(),
            // Every instance's REST endpoint: the integration reaches the one
            // its `instance` names (or its `rest_endpoint`).
            default_hosts: INSTANCES.iter().map(|(_, host)| host.to_string()).collect(),
            // `/users/track` allows 3,000 requests per 3 s per workspace;
            // a few batches at once stay far below it.
            max_concurrency: 4,
            // Braze takes at most 75 attribute objects per request.
            max_batch_size: api::MAX_OBJECTS_PER_REQUEST as u32,
            capabilities: Capabilities {
                batching: true,
                inbound_webhooks: false,
            },
        }
    }

    fn check(config: &BrazeConfig, problems: &mut Problems) {
        config::check(config, problems)
    }

    fn deliver(ctx: &Context<'_>, config: &BrazeConfig, record: &ConsentRecord) -> Outcome {
        api::deliver_batch(ctx, config, std::slice::from_ref(record))
            .pop()
            .unwrap_or_else(|| Outcome::permanent("no outcome"))
    }

    fn deliver_batch(
        ctx: &Context<'_>,
        config: &BrazeConfig,
        batch: &[ConsentRecord],
    ) -> Vec<Outcome> {
        api::deliver_batch(ctx, config, batch)
    }
}

impl Activation for Braze {
    /// One `/users/track` request per call: Braze's 75 objects.
    fn max_rows(_config: &BrazeConfig) -> u32 {
        api::MAX_ROWS
    }

    fn sync(
        ctx: &Context<'_>,
        config: &BrazeConfig,
        batch: &SyncBatch,
    ) -> Result<Vec<RowOutcome>, RowFailure> {
        api::sync(ctx, config, batch)
    }
}

/// The connection check: Braze's user lookup for an id no one has (reads,
/// writes nothing).
impl ConnectionCheck for Braze {
    fn check_connection(
        ctx: &Context<'_>,
        config: &BrazeConfig,
    ) -> Result<Vec<ValidationProblem>, String> {
        api::check_connection(ctx, config)
    }
}

prefsync_sdk::export!(Braze, activation, connection);
