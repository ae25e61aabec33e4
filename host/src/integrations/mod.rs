//! Integration rules, apart from HTTP: what makes an integration valid (the
//! host's fields, the connector's own `validate`, webhook settings, URL
//! fields, the retry policy), loading a directory of them at start-up, and
//! how one is shown with its secrets redacted. `serve::api::integrations`
//! only translates requests to these calls and [`IntegrationError`] to
//! status codes.

mod check;
mod load;
mod redacted;
mod retry;
mod urls;
pub mod webhook;

use std::sync::Arc;

use serde_json::{Value as Json, json};

use crate::runtime::{Destination, ValidationProblem};
use crate::secrets::redact_config;
use crate::store::IntegrationRecord;

pub use check::{ConnectionVerdict, check_connection, checked};
pub use load::{FileError, check_file, json_files, load_dir};
pub use redacted::keep_redacted;
pub use retry::retry_policy;
pub use urls::{config_url_problem, url_problems};

/// The connectors an integration may name, by type id (the registry of
/// loaded connectors; a trait so these rules need nothing of `serve`).
pub trait ConnectorLookup: Send + Sync {
    /// The connector serving `type_id`, when one is loaded.
    fn connector(&self, type_id: &str) -> Option<Arc<dyn Destination>>;
    /// Every loaded type id, for the message that names an unknown one.
    fn type_ids(&self) -> Vec<String>;
}

/// Why an integration was refused. Every variant's message names the field
/// (or the line and column) and never repeats a secret value.
#[derive(Debug, thiserror::Error)]
pub enum IntegrationError {
    /// The body is not JSON.
    #[error("{}", crate::consent::event::syntax_error(.0, 0))]
    Syntax(serde_json::Error),
    /// One host-owned field is wrong; the message starts with its name.
    #[error("{0}")]
    Field(String),
    /// The id breaks the id rule.
    #[error("id: {0}")]
    Id(#[from] crate::ids::IdError),
    /// Problems found by the connector's `validate` and the host's rules,
    /// all at once; `message` sums them up.
    #[error("{message}")]
    Invalid {
        message: String,
        problems: Vec<ValidationProblem>,
    },
    /// The connector could not run its `validate` (a trap, a timeout).
    #[error("the {type_id} connector could not validate: {reason}")]
    ValidatorFailed { type_id: String, reason: String },
    /// A connection check could not be made (the destination unreachable,
    /// a 5xx, a timeout, a trap): the config may be right.
    #[error("the {type_id} connector {reason}")]
    CheckFailed { type_id: String, reason: String },
}

impl IntegrationError {
    /// Problems listed one by one, summed up as `<prefix><path>: <message>; …`.
    fn problems(prefix: &str, problems: Vec<ValidationProblem>) -> Self {
        let summary: Vec<String> = problems.iter().map(ToString::to_string).collect();
        IntegrationError::Invalid {
            message: format!("{prefix}{}", summary.join("; ")),
            problems,
        }
    }
}

/// The integration as shown: its JSON with secrets redacted, plus timestamps.
/// The connector's schema (when loaded) marks secret fields `writeOnly`.
pub fn present(connectors: &dyn ConnectorLookup, record: &IntegrationRecord) -> Json {
    let schema = connectors
        .connector(&record.type_id)
        .map(|c| c.info().config_schema.clone())
        .unwrap_or(Json::Null);
    let mut shown = redact_config(&record.config, &schema);
    if let Some(obj) = shown.as_object_mut() {
        obj.insert("created_at_ms".into(), json!(record.created_at_ms));
        obj.insert("updated_at_ms".into(), json!(record.updated_at_ms));
    }
    shown
}
