//! Type id `dotdigital`, version 0.3.0, accepts the configs Dotdigital
//! accepts, and fails every delivery permanently without a request: the
//! bad release a canary must catch and roll back on its own.

use prefsync_sdk::{
    Capabilities, Connector, ConsentRecord, Context, Description, Outcome, Problems,
};

pub struct FailingDotdigital;

impl Connector for FailingDotdigital {
    type Config = serde_json::Value;

    fn describe() -> Description {
        Description {
            type_id: "dotdigital".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            display_name: "Dotdigital (broken release)".into(),
            config_schema: serde_json::json!({"type": "object"}),
            default_hosts: Vec::new(),
            max_concurrency: 8,
            max_batch_size: 1,
            capabilities: Capabilities::default(),
        }
    }

    fn check(problems: &mut Problems<'_>) {
        problems.require_string("authentication.username");
    }

    fn deliver(_: &Context<'_>, _: &serde_json::Value, record: &ConsentRecord) -> Outcome {
        Outcome::permanent(format!(
            "contacts:brokenRelease: {} refused by the broken release",
            record.key
        ))
    }
}

prefsync_sdk::export!(FailingDotdigital);
