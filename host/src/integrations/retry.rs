//! An integration's own `retry` policy: the keys and ranges of the host's
//! `[retry]`, every wrong field named as `retry.<field>`.

use serde_json::Value as Json;

use super::IntegrationError;
use crate::pipeline::RetryPolicy;
use crate::runtime::ValidationProblem;

/// Reads and checks the `retry` object of an integration.
pub fn retry_policy(value: &Json) -> Result<RetryPolicy, IntegrationError> {
    let refused = |problems: Vec<(String, String)>| {
        let problems = problems
            .into_iter()
            .map(|(path, message)| ValidationProblem { path, message })
            .collect();
        IntegrationError::problems("", problems)
    };
    let policy: RetryPolicy = match serde_json::from_value(value.clone()) {
        Ok(policy) => policy,
        // serde names neither the field nor its place; try each key alone.
        Err(whole) => {
            let Some(fields) = value.as_object() else {
                return Err(refused(vec![(
                    "retry".into(),
                    "must be an object with max_retries, initial_backoff_ms, multiplier, max_backoff_ms, jitter or max_retry_after_ms".into(),
                )]));
            };
            let problems: Vec<(String, String)> = fields
                .iter()
                .filter_map(|(key, field)| {
                    let alone = Json::Object([(key.clone(), field.clone())].into_iter().collect());
                    serde_json::from_value::<RetryPolicy>(alone)
                        .err()
                        .map(|e| (format!("retry.{key}"), field_error(&e)))
                })
                .collect();
            return Err(refused(if problems.is_empty() {
                vec![("retry".into(), field_error(&whole))]
            } else {
                problems
            }));
        }
    };
    let problems = policy.problems();
    if !problems.is_empty() {
        return Err(refused(
            problems
                .into_iter()
                .map(|p| (format!("retry.{}", p.field), p.message))
                .collect(),
        ));
    }
    Ok(policy)
}

/// serde's complaint about one value, without its position suffix.
fn field_error(error: &serde_json::Error) -> String {
    crate::consent::event::json_error_message(error)
}
