//! The Dotdigital connector's own `api.rs` and `config.rs`, compiled under
//! version 0.2.0: what an operator upgrades to in the hot-swap tests. Only
//! `describe` is this crate's, and it differs in the version alone.

#[path = "../../../../plugins/dotdigital/src/api.rs"]
mod api;
#[path = "../../../../plugins/dotdigital/src/config.rs"]
mod config;

use prefsync_sdk::{
    Activation, Capabilities, Connector, ConsentRecord, Context, Description, Outcome, Problems,
    RowFailure, RowOutcome, SyncBatch,
};

/// Named as in the plugin, whose included test modules refer to it.
pub struct Dotdigital;

impl Connector for Dotdigital {
    type Config = config::DotdigitalConfig;

    fn describe() -> Description {
        Description {
            type_id: "dotdigital".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            display_name: "Dotdigital".into(),
            default_hosts: [
                "r1-api.dotdigital.com",
                "r2-api.dotdigital.com",
                "r3-api.dotdigital.com",
            ]
            .iter()
            .map(|h| h.to_string())
            .collect(),
            max_concurrency: 8,
            max_batch_size: 1,
            capabilities: Capabilities::default(),
        }
    }

    fn check(config: &config::DotdigitalConfig, problems: &mut Problems) {
        config::check(config, problems)
    }

    fn deliver(
        ctx: &Context<'_>,
        config: &config::DotdigitalConfig,
        record: &ConsentRecord,
    ) -> Outcome {
        api::deliver(ctx, config, record)
    }
}

impl Activation for Dotdigital {
    fn max_rows(_config: &config::DotdigitalConfig) -> u32 {
        api::MAX_ROWS
    }

    fn sync(
        ctx: &Context<'_>,
        config: &config::DotdigitalConfig,
        batch: &SyncBatch,
    ) -> Result<Vec<RowOutcome>, RowFailure> {
        api::sync(ctx, config, batch)
    }
}

impl prefsync_sdk::ConnectionCheck for Dotdigital {
    fn check_connection(
        ctx: &Context<'_>,
        config: &config::DotdigitalConfig,
    ) -> Result<Vec<prefsync_sdk::ValidationProblem>, String> {
        api::check_connection(ctx, config)
    }
}

prefsync_sdk::export!(Dotdigital, activation, connection);
