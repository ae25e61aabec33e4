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
            default_hosts: Vec::new(),
            max_concurrency: 8,
            max_batch_size: 1,
            capabilities: Capabilities::default(),
        }
    }

    /// Any object, as before: the one rule (`authentication.username`) is `check`'s.
    fn config_schema() -> serde_json::Value {
        serde_json::json!({"type": "object"})
    }

    fn check(config: &serde_json::Value, problems: &mut Problems) {
        require_string(config, "authentication", "username", problems);
    }

    fn deliver(_: &Context<'_>, _: &serde_json::Value, record: &ConsentRecord) -> Outcome {
        Outcome::permanent(format!(
            "contacts:brokenRelease: {} refused by the broken release",
            record.key
        ))
    }
}

/// `config.<object>.<field>` must be a non-empty string (the schema does
/// not say so: the rule stays the connector's, as in the releases before).
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

prefsync_sdk::export!(FailingDotdigital);
