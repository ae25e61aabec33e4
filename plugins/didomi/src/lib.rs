//! Didomi as a destination: a user's consents changed *outside* Didomi (an
//! Actito unsubscribe read from Actito's webhook, say) are written back to
//! Didomi as one consent event, so the consent platform, the privacy center
//! and Didomi's proofs keep up with the marketing tools.
//!
//! What keeps this from looping (see `host/src/pipeline/write_back.rs`): the
//! host never hands this connector a change that came from Didomi (the events
//! API), marks each mapped property with where its value came from
//! (`source:<property>`), and gives every record a `write-id`, which becomes
//! the Didomi event's id; Didomi's webhook echo of that event is recognised
//! by it and applied nowhere.
//!
//! Files, as in every connector: `config.rs` (the integration config: its
//! types, from which the schema is derived, and the checks a schema cannot
//! say), `api.rs` (the session token, requests, and how answers
//! are classified), `consents.rs` (mappings ↔ Didomi's consent structure and
//! the difference with what Didomi holds), this file (the [`Connector`]).

mod api;
mod config;
mod consents;

pub use config::DidomiConfig;

use prefsync_sdk::{
    Capabilities, ConnectionCheck, Connector, ConsentRecord, Context, Description, Outcome,
    Problems, ValidationProblem,
};

/// The Didomi connector.
pub struct Didomi;

/// Didomi's back-end API (sessions and consents).
pub const DEFAULT_HOST: &str = "api.didomi.io";

impl Connector for Didomi {
    type Config = DidomiConfig;

    fn describe() -> Description {
        Description {
            type_id: "didomi".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            display_name: "Didomi (write-back)".into(),
            default_hosts: vec![DEFAULT_HOST.into()],
            // `/consents/*` routes are not throttled; sessions are (100 per
            // 15 s per organization), which the cached token keeps us far from.
            max_concurrency: 4,
            // One event per user: Didomi takes no batch of events.
            max_batch_size: 1,
            capabilities: Capabilities {
                batching: false,
                inbound_webhooks: false,
            },
        }
    }

    fn check(config: &DidomiConfig, problems: &mut Problems) {
        config::check(config, problems)
    }

    fn deliver(ctx: &Context<'_>, config: &DidomiConfig, record: &ConsentRecord) -> Outcome {
        api::deliver(ctx, config, record)
    }
}

/// The connection check: a session from the key and secret, then one read
/// with its token (the organization).
impl ConnectionCheck for Didomi {
    fn check_connection(
        ctx: &Context<'_>,
        config: &DidomiConfig,
    ) -> Result<Vec<ValidationProblem>, String> {
        api::check_connection(ctx, config)
    }
}

prefsync_sdk::export!(Didomi, connection);
