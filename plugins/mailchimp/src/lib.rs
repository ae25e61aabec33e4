//! Mailchimp destination: adds or updates an audience member (Marketing API
//! v3) with the subscription status, GDPR marketing permissions and merge
//! fields mapped from the user's consents and metadata. Batches of records
//! go through Mailchimp's list batch (`POST /lists/{list_id}`, up to 500
//! members), whose per-member errors are mapped back to their records.
//! Activations (model rows as merge fields) use the same calls. An
//! integration's key and audience are checked on demand (the `connection`
//! export).
//!
//! Files, as in every connector: `config.rs` (the integration config: its
//! types, from which the schema is derived, and the checks a schema cannot
//! say), `api.rs` (requests and how answers are classified), `activation.rs`
//! (model rows), this file (the [`Connector`] implementation).

mod activation;
mod api;
mod config;

pub use config::{MailchimpConfig, Target};

use prefsync_sdk::connection::ConnectionCheck;
use prefsync_sdk::{
    Activation, Capabilities, Connector, ConsentRecord, Context, Description, Outcome, Problems,
    RowFailure, RowOutcome, SyncBatch, ValidationProblem,
};

/// The Mailchimp connector.
pub struct Mailchimp;

/// Data centers served from the default allowlist: `us1` … `us30`.
///
/// The API host is `<dc>.api.mailchimp.com`, the data center being the API
/// key's suffix; the host's allowlist matches exact hosts (no wildcard) and
/// default hosts do not depend on the config, so the known data centers are
/// listed. A key of another data center needs `properties.api_base`, which
/// `check` says.
pub const DATA_CENTERS: std::ops::RangeInclusive<u32> = 1..=30;

/// `us1.api.mailchimp.com` … `us30.api.mailchimp.com`.
pub fn default_hosts() -> Vec<String> {
    DATA_CENTERS
        .map(|n| format!("us{n}.api.mailchimp.com"))
        .collect()
}

impl Connector for Mailchimp {
    type Config = MailchimpConfig;

    fn describe() -> Description {
        Description {
            type_id: "mailchimp".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            display_name: "Mailchimp".into(),
            default_hosts: default_hosts(),
            // Mailchimp allows 10 simultaneous connections per account and
            // answers 429 beyond; each call makes its requests one after the other.
            max_concurrency: 10,
            // The list batch takes at most 500 members.
            max_batch_size: api::MAX_BATCH_MEMBERS as u32,
            capabilities: Capabilities {
                batching: true,
                inbound_webhooks: false,
            },
        }
    }

    fn check(config: &MailchimpConfig, problems: &mut Problems) {
        config::check(config, problems)
    }

    fn deliver(ctx: &Context<'_>, config: &MailchimpConfig, record: &ConsentRecord) -> Outcome {
        api::deliver(ctx, config, record)
    }

    fn deliver_batch(
        ctx: &Context<'_>,
        config: &MailchimpConfig,
        batch: &[ConsentRecord],
    ) -> Vec<Outcome> {
        api::deliver_batch(ctx, config, batch)
    }
}

/// Activations: model rows become members' merge fields, matched on the
/// email (see `activation.rs`).
impl Activation for Mailchimp {
    fn max_rows(_config: &MailchimpConfig) -> u32 {
        activation::MAX_ROWS
    }

    fn sync(
        ctx: &Context<'_>,
        config: &MailchimpConfig,
        batch: &SyncBatch,
    ) -> Result<Vec<RowOutcome>, RowFailure> {
        activation::sync(ctx, config, batch)
    }
}

/// The connection check: one read of the audience with the key (see
/// `api::check_connection`).
impl ConnectionCheck for Mailchimp {
    fn check_connection(
        ctx: &Context<'_>,
        config: &MailchimpConfig,
    ) -> Result<Vec<ValidationProblem>, String> {
        api::check_connection(ctx, config)
    }
}

prefsync_sdk::export!(Mailchimp, activation, connection);
