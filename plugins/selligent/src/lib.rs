//! Selligent destination: triggers the campaign behind a gate with the
//! user's mapped properties, through the SOAP Individual API
//! (`TriggerCampaign` at `{url}/automation/individual.asmx`). The campaign
//! creates or updates the profile, so upsert is always on.
//!
//! Files, as in every connector: `config.rs` (the integration config, its
//! checks and schema), `api.rs` (the SOAP request, value formats, and how
//! result codes are classified), this file (the [`Connector`] implementation).

mod api;
mod config;

pub use config::SelligentConfig;

use prefsync_sdk::{
    Capabilities, Connector, ConsentRecord, Context, Description, Outcome, Problems,
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
            config_schema: config::schema(),
            // Every installation has its own host: the config's `properties.url`.
            default_hosts: Vec::new(),
            // Selligent publishes no limit for the Individual API; stay polite.
            max_concurrency: 4,
            // One TriggerCampaign per user.
            max_batch_size: 1,
            capabilities: Capabilities::default(),
        }
    }

    fn check(problems: &mut Problems<'_>) {
        config::check(problems)
    }

    fn deliver(ctx: &Context<'_>, config: &SelligentConfig, record: &ConsentRecord) -> Outcome {
        api::deliver(ctx, config, record)
    }
}

prefsync_sdk::export!(Selligent);
