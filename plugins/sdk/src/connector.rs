//! The one trait a connector implements, and the entry points that drive it.

use serde::de::DeserializeOwned;

use crate::config::{Problems, parse_json};
use crate::context::{Context, Host};
use crate::types::{ConsentRecord, Description, Outcome, ValidationProblem};

/// A destination connector.
///
/// The host calls `describe` once at load, `validate` when an integration is
/// saved, and `deliver` for every batch. A connector *classifies* failures
/// (retryable or permanent); the host schedules the retries.
pub trait Connector {
    /// The integration config, deserialized from the integration's JSON after
    /// [`Connector::check`] found no problem.
    type Config: DeserializeOwned;

    /// What this connector is; `config_schema` is shown to operators.
    fn describe() -> Description;

    /// Records every problem of the raw config in `problems`.
    fn check(problems: &mut Problems<'_>);

    /// Delivers one record.
    fn deliver(ctx: &Context<'_>, config: &Self::Config, record: &ConsentRecord) -> Outcome;

    /// Delivers a batch; by default one record after the other. Override it
    /// when the destination has a batch API (and declare `batching`).
    fn deliver_batch(
        ctx: &Context<'_>,
        config: &Self::Config,
        batch: &[ConsentRecord],
    ) -> Vec<Outcome> {
        batch
            .iter()
            .map(|record| Self::deliver(&ctx.for_record(&record.key), config, record))
            .collect()
    }
}

/// Every problem of `raw`: syntax, then the connector's checks, then anything
/// the typed config still refuses.
pub fn validate<C: Connector>(raw: &str) -> Vec<ValidationProblem> {
    match parse_config::<C>(raw) {
        Ok(_) => Vec::new(),
        Err(problems) => problems,
    }
}

/// Parses and checks a config into the connector's type.
pub fn parse_config<C: Connector>(raw: &str) -> Result<C::Config, Vec<ValidationProblem>> {
    let json = parse_json(raw).map_err(|p| vec![p])?;
    let mut problems = Problems::new(&json);
    C::check(&mut problems);
    let problems = problems.into_vec();
    if !problems.is_empty() {
        return Err(problems);
    }
    serde_json::from_value(json).map_err(|e| {
        vec![ValidationProblem {
            path: String::new(),
            message: format!("config does not fit: {e}"),
        }]
    })
}

/// Delivers a batch with a raw config; an invalid config fails every record
/// permanently, naming the problems.
pub fn deliver<C: Connector>(host: &dyn Host, raw: &str, batch: &[ConsentRecord]) -> Vec<Outcome> {
    match parse_config::<C>(raw) {
        Ok(config) => C::deliver_batch(&Context::new(host), &config, batch),
        Err(problems) => {
            let summary: Vec<String> = problems
                .iter()
                .map(|p| format!("{}: {}", p.path, p.message))
                .collect();
            let message = format!("invalid integration config: {}", summary.join("; "));
            batch
                .iter()
                .map(|_| Outcome::permanent(message.clone()))
                .collect()
        }
    }
}
