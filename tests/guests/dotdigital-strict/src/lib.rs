//! Type id `dotdigital`, version 0.4.0, and a config field earlier versions
//! never asked for: an upgrade that would break every existing integration,
//! which the host must refuse with their list.

use prefsync_sdk::{
    Capabilities, Connector, ConsentRecord, Context, Description, Outcome, Problems,
};

pub struct StrictDotdigital;

impl Connector for StrictDotdigital {
    type Config = serde_json::Value;

    fn describe() -> Description {
        Description {
            type_id: "dotdigital".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            display_name: "Dotdigital (stricter config)".into(),
            config_schema: serde_json::json!({"type": "object", "required": ["properties"]}),
            default_hosts: Vec::new(),
            max_concurrency: 8,
            max_batch_size: 1,
            capabilities: Capabilities::default(),
        }
    }

    fn check(problems: &mut Problems<'_>) {
        problems.require_string("properties.account_region");
    }

    fn deliver(_: &Context<'_>, _: &serde_json::Value, _: &ConsentRecord) -> Outcome {
        Outcome::Skipped("never delivers".into())
    }
}

prefsync_sdk::export!(StrictDotdigital);
