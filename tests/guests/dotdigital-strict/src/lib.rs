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
            default_hosts: Vec::new(),
            max_concurrency: 8,
            max_batch_size: 1,
            capabilities: Capabilities::default(),
        }
    }

    /// `properties` only, as before: the new field's rule is `check`'s.
    fn config_schema() -> serde_json::Value {
        serde_json::json!({"type": "object", "required": ["properties"]})
    }

    fn check(config: &serde_json::Value, problems: &mut Problems) {
        require_string(config, "properties", "account_region", problems);
    }

    fn deliver(_: &Context<'_>, _: &serde_json::Value, _: &ConsentRecord) -> Outcome {
        Outcome::Skipped("never delivers".into())
    }
}

/// `config.<object>.<field>` must be a non-empty string (the schema does
/// not say so: the rule stays the connector's, as in the release before).
fn require_string(config: &serde_json::Value, object: &str, field: &str, p: &mut Problems) {
    let path = format!("{object}.{field}");
    match config.get(object).and_then(|o| o.get(field)) {
        None | Some(serde_json::Value::Null) => p.push(&path, "is required"),
        Some(serde_json::Value::String(s)) if s.trim().is_empty() => {
            p.push(&path, "must not be empty")
        }
        Some(serde_json::Value::String(_)) => {}
        Some(other) => p.push(&path, format!("must be a string, not {}", kind(other))),
    }
}

fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

prefsync_sdk::export!(StrictDotdigital);
