//! Klaviyo destination: creates or updates a profile per user through
//! `POST /api/profile-import` (mapped attributes and custom properties),
//! and turns mapped consents into Klaviyo's own consent records through
//! subscription jobs to a list (SUBSCRIBED / UNSUBSCRIBED, email and SMS).
//! Activations (the optional `activation` export) write model rows as
//! profile attributes.
//!
//! Files, as in every connector: `config.rs` (the integration config: its
//! types, from which the schema is derived, and the checks a schema cannot
//! say), `api.rs` (requests and how answers are classified), this file
//! (the [`Connector`] and [`Activation`] implementations).

mod api;
mod config;

pub use config::{DEFAULT_REVISION, KlaviyoConfig};

use prefsync_sdk::connection::ConnectionCheck;
use prefsync_sdk::{
    Activation, Capabilities, Connector, ConsentRecord, Context, Description, Outcome, Problems,
    RowFailure, RowOutcome, SyncBatch,
};

/// The Klaviyo connector.
pub struct Klaviyo;

/// Klaviyo's API host; `properties.api_base` overrides it (tests, proxies).
pub const DEFAULT_HOST: &str = "a.klaviyo.com";

/// Records per `deliver` call. Each is one import request (two without
/// upserts) and the batch shares one subscribe and one unsubscribe job, so
/// 50 records stay far inside the call's wall-clock limit even when
/// Klaviyo is slow, while saving 98 % of the job requests.
pub const MAX_BATCH_SIZE: u32 = 50;

impl Connector for Klaviyo {
    type Config = KlaviyoConfig;

    fn describe() -> Description {
        Description {
            type_id: "klaviyo".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            display_name: "Klaviyo".into(),
            default_hosts: vec![DEFAULT_HOST.into()],
            // Klaviyo's limits are per account and per second (profile
            // import: 75/s burst, 700/min steady); a call makes its
            // requests one after the other, so 4 calls stay well under.
            max_concurrency: 4,
            max_batch_size: MAX_BATCH_SIZE,
            capabilities: Capabilities {
                batching: true,
                inbound_webhooks: false,
            },
        }
    }

    fn check(config: &KlaviyoConfig, problems: &mut Problems) {
        config::check(config, problems)
    }

    fn deliver(ctx: &Context<'_>, config: &KlaviyoConfig, record: &ConsentRecord) -> Outcome {
        api::deliver_batch(ctx, config, std::slice::from_ref(record))
            .pop()
            .unwrap_or_else(|| Outcome::permanent("no outcome"))
    }

    fn deliver_batch(
        ctx: &Context<'_>,
        config: &KlaviyoConfig,
        batch: &[ConsentRecord],
    ) -> Vec<Outcome> {
        api::deliver_batch(ctx, config, batch)
    }
}

/// Activations: model rows become profile attributes and custom properties
/// (the batch's key field is the identifier: `email`, `phone_number` or
/// `external_id`).
impl Activation for Klaviyo {
    fn max_rows(_config: &KlaviyoConfig) -> u32 {
        api::MAX_ROWS
    }

    fn sync(
        ctx: &Context<'_>,
        config: &KlaviyoConfig,
        batch: &SyncBatch,
    ) -> Result<Vec<RowOutcome>, RowFailure> {
        api::sync(ctx, config, batch)
    }
}

/// The connection check: one read of the configured list, or a profile
/// lookup that finds nobody (see `api::check_connection`).
impl ConnectionCheck for Klaviyo {
    fn check_connection(
        ctx: &Context<'_>,
        config: &KlaviyoConfig,
    ) -> Result<Vec<prefsync_sdk::ValidationProblem>, String> {
        api::check_connection(ctx, config)
    }
}

prefsync_sdk::export!(Klaviyo, activation, connection);
