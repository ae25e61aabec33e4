//! Generic webhook destination: POSTs each user's mapped properties as JSON
//! to the configured URL, signed with HMAC-SHA256 when a secret is set, and
//! classifies the answer by status with a configurable list of retryable
//! statuses.
//!
//! Files, as in every connector: `config.rs` (the integration config: its
//! types, from which the schema is derived, and the checks a schema cannot
//! say), `api.rs` (the request, the signature, and how answers are
//! classified), this file (the [`Connector`] implementation).

mod api;
mod config;

pub use api::{hmac_sha256, signature};
pub use config::WebhookConfig;

use prefsync_sdk::{
    Capabilities, Connector, ConsentRecord, Context, Description, Outcome, Problems,
};

/// The webhook connector.
pub struct Webhook;

impl Connector for Webhook {
    type Config = WebhookConfig;

    fn describe() -> Description {
        Description {
            type_id: "webhook".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            display_name: "Webhook (any HTTP endpoint)".into(),
            // The only host is the one the config names.
            default_hosts: Vec::new(),
            max_concurrency: 4,
            max_batch_size: 1,
            capabilities: Capabilities::default(),
        }
    }

    fn check(config: &WebhookConfig, problems: &mut Problems) {
        config::check(config, problems)
    }

    fn deliver(ctx: &Context<'_>, config: &WebhookConfig, record: &ConsentRecord) -> Outcome {
        api::deliver(ctx, config, record)
    }
}

prefsync_sdk::export!(Webhook);
