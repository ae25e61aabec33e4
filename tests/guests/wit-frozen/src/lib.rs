//! A connector written straight against `wit/connector.wit` as it was
//! released at 0.1.0 (frozen in this crate's `wit/`, never edited), without
//! the SDK, which follows the current contract. Type `frozen`; it accepts
//! any config with `mappings`, and skips a record that has no property
//! besides its key.

wit_bindgen::generate!({
    world: "destination",
    path: "wit",
});

use exports::prefsync::connector::connector::{
    Capabilities, DeliveredKind, Description, Guest, Outcome, ValidationProblem,
};
use prefsync::connector::types::ConsentRecord;

struct Frozen;

impl Guest for Frozen {
    fn describe() -> Description {
        Description {
            type_id: "frozen".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            display_name: "Built against WIT 0.1.0".into(),
            config_schema: r#"{"type": "object", "required": ["mappings"]}"#.into(),
            default_hosts: Vec::new(),
            max_concurrency: 2,
            max_batch_size: 4,
            capabilities: Capabilities::BATCHING,
        }
    }

    fn validate(config: String) -> Vec<ValidationProblem> {
        if config.contains("\"mappings\"") {
            Vec::new()
        } else {
            vec![ValidationProblem {
                path: "mappings".into(),
                message: "is required".into(),
            }]
        }
    }

    fn deliver(_config: String, batch: Vec<ConsentRecord>) -> Vec<Outcome> {
        prefsync::connector::log::log(
            prefsync::connector::log::Level::Info,
            "frozen connector called",
            &[("records".into(), batch.len().to_string())],
        );
        batch
            .iter()
            .map(|record| {
                if record.properties.iter().all(|p| p.name == record.key_name) {
                    Outcome::Skipped(format!("{}: no properties", record.key))
                } else {
                    Outcome::Delivered(DeliveredKind::Unchanged)
                }
            })
            .collect()
    }
}

export!(Frozen);
