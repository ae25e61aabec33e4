//! Plain Rust mirrors of the WIT contract's types, so connector logic never
//! touches generated bindings and runs natively in unit tests.

use std::collections::BTreeMap;

/// One property value of a user.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// No explicit value ("no choice made" for a consent).
    Null,
    /// A true/false value, e.g. a consent choice.
    Boolean(bool),
    /// A number; whole numbers serialize as JSON integers.
    Number(f64),
    /// A string value.
    Text(String),
}

impl Value {
    /// The value as JSON (numbers that are whole stay integers).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Boolean(b) => serde_json::Value::Bool(*b),
            Value::Number(n) => {
                if n.fract() == 0.0 && n.abs() < 9.0e15 {
                    serde_json::Value::from(*n as i64)
                } else {
                    serde_json::Number::from_f64(*n)
                        .map(serde_json::Value::Number)
                        .unwrap_or(serde_json::Value::Null)
                }
            }
            Value::Text(t) => serde_json::Value::String(t.clone()),
        }
    }

    /// The value as text, as form-like APIs expect it (`true`, `42`, ...); `None` for null.
    pub fn to_text(&self) -> Option<String> {
        match self {
            Value::Null => None,
            Value::Boolean(b) => Some(b.to_string()),
            Value::Number(_) => Some(self.to_json().to_string()),
            Value::Text(t) => Some(t.clone()),
        }
    }
}

/// A named property of a user.
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    /// The flattened property name, e.g. `consents_purposes_<id>_enabled`.
    pub name: String,
    /// The property's value.
    pub value: Value,
}

/// Where a record comes from and which state it carries.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RecordMetadata {
    /// The user's state version; increases per user.
    pub state_version: u64,
    /// When that state last changed, RFC 3339.
    pub updated_at: String,
    /// Free-form host facts.
    pub extra: Vec<(String, String)>,
}

/// One user to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentRecord {
    /// Name of the identifying property, e.g. `organization_user_id`.
    pub key_name: String,
    /// Its value.
    pub key: String,
    /// The user's flattened properties.
    pub properties: Vec<Property>,
    /// State version and other facts the host attaches.
    pub metadata: RecordMetadata,
}

impl ConsentRecord {
    /// A record with the given key and properties, as tests build them.
    pub fn new(key_name: &str, key: &str, properties: &[(&str, Value)]) -> Self {
        ConsentRecord {
            key_name: key_name.to_string(),
            key: key.to_string(),
            properties: properties
                .iter()
                .map(|(name, value)| Property {
                    name: name.to_string(),
                    value: value.clone(),
                })
                .collect(),
            metadata: RecordMetadata::default(),
        }
    }

    /// The property called `name`, if the user's state has it.
    pub fn property(&self, name: &str) -> Option<&Value> {
        self.properties
            .iter()
            .find(|p| p.name == name)
            .map(|p| &p.value)
    }

    /// Properties as a map, for lookups in bulk.
    pub fn property_map(&self) -> BTreeMap<&str, &Value> {
        self.properties
            .iter()
            .map(|p| (p.name.as_str(), &p.value))
            .collect()
    }
}

/// Optional abilities a connector declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// `deliver` accepts more than one record per call.
    pub batching: bool,
    /// The connector turns inbound webhook requests into consent updates.
    pub inbound_webhooks: bool,
}

/// What a connector says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Description {
    /// Matches an integration's `type_id`.
    pub type_id: String,
    /// The connector's semver version.
    pub version: String,
    /// Human-readable name of the connector.
    pub display_name: String,
    /// Hosts reached unless the config names others.
    pub default_hosts: Vec<String>,
    /// Most concurrent requests the destination tolerates per integration.
    pub max_concurrency: u32,
    /// Most records per `deliver` call.
    pub max_batch_size: u32,
    /// Optional abilities the connector supports.
    pub capabilities: Capabilities,
}

/// A problem in an integration config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationProblem {
    /// JSON path of the field, e.g. `authentication.url`; empty for the whole document.
    pub path: String,
    /// What is wrong, for the person editing the config.
    pub message: String,
}

/// How a delivered record changed the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveredKind {
    /// The destination had no such user; one was created.
    Created,
    /// An existing user was changed.
    Updated,
    /// The destination already held these values.
    Unchanged,
}

/// Why a record failed, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// True when the host may try the record again later.
    pub retryable: bool,
    /// The destination's own hint, in milliseconds.
    pub retry_after_ms: Option<u64>,
    /// What went wrong, for logs and the operator.
    pub message: String,
}

/// The result for one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Written to the destination, with how it changed it.
    Delivered(DeliveredKind),
    /// Deliberately not sent, with the reason.
    Skipped(String),
    /// Not written; see [`Failure`] for whether to retry.
    Failed(Failure),
}

impl Outcome {
    /// A failure that may succeed later.
    pub fn retryable(message: impl Into<String>) -> Self {
        Outcome::Failed(Failure {
            retryable: true,
            retry_after_ms: None,
            message: message.into(),
        })
    }

    /// A failure that will fail the same way again.
    pub fn permanent(message: impl Into<String>) -> Self {
        Outcome::Failed(Failure {
            retryable: false,
            retry_after_ms: None,
            message: message.into(),
        })
    }
}
