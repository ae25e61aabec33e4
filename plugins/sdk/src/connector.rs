//! The one trait a connector implements, and the entry points that drive it.

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

use crate::config::{Problems, parse_json};
use crate::context::{Context, Host};
use crate::types::{ConsentRecord, Description, Outcome, ValidationProblem};

/// A destination connector.
///
/// The host calls `describe` once at load, `validate` when an integration is
/// saved, and `deliver` for every batch. A connector *classifies* failures
/// (retryable or permanent); the host schedules the retries.
///
/// The config type is the one description of a config: serde reads it, its
/// JSON Schema is derived from it (`#[derive(JsonSchema)]`; doc comments
/// become descriptions, `#[schemars(url)]` marks a URL the integration may
/// reach, `#[schemars(extend("writeOnly" = true))]` a secret), and the host
/// checks every config against that schema before the connector sees it.
pub trait Connector {
    /// The integration config, deserialized from the integration's JSON once
    /// it fits the schema derived from this type.
    type Config: DeserializeOwned + JsonSchema;

    /// What this connector is.
    fn describe() -> Description;

    /// The JSON Schema of the config, shown to operators and checked by the
    /// host. Derived from [`Connector::Config`]; override it only for a
    /// schema the type cannot say.
    fn config_schema() -> Json {
        crate::schema::of::<Self::Config>()
    }

    /// Records the problems of a config that fits the schema but breaks a
    /// rule the schema cannot say (see [`Problems`]). None by default.
    fn check(config: &Self::Config, problems: &mut Problems) {
        let _ = (config, problems);
    }

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

/// Every problem of `raw`: its syntax, then (natively, as the host does
/// before it calls a component) the schema's, then the connector's
/// [`Connector::check`].
pub fn validate<C: Connector>(raw: &str) -> Vec<ValidationProblem> {
    match parse_config::<C>(raw) {
        Ok(_) => Vec::new(),
        Err(problems) => problems,
    }
}

/// Parses and checks a config into the connector's type.
pub fn parse_config<C: Connector>(raw: &str) -> Result<C::Config, Vec<ValidationProblem>> {
    let json = parse_json(raw).map_err(|p| vec![p])?;
    // In a component the host checked the schema before the call; deriving
    // it again here would cost every delivery a schema generation.
    #[cfg(not(target_arch = "wasm32"))]
    {
        let schema_problems = crate::schema::problems(&C::config_schema(), &json);
        if !schema_problems.is_empty() {
            return Err(schema_problems);
        }
    }
    // The host checked the schema, so serde refusing is rare (a schema
    // overridden by hand). Its message may quote the value: say only where.
    let config: C::Config = serde_json::from_value(json).map_err(|e| {
        vec![ValidationProblem {
            path: String::new(),
            message: format!(
                "config does not fit the connector's type ({})",
                serde_category(&e)
            ),
        }]
    })?;
    let mut problems = Problems::new();
    C::check(&config, &mut problems);
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(problems.into_vec())
    }
}

fn serde_category(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Data => "a field has the wrong type, is missing or is unknown",
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "syntax",
        serde_json::error::Category::Io => "input",
    }
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
