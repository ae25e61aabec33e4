//! An integration's webhook settings (the bidirectional flow): whether it
//! receives webhooks, the shared secret and the header that carries it, and
//! the host's rules for them, checked when the integration is saved.

use serde_json::Value as Json_;

use crate::runtime::{ConnectorInfo, ValidationProblem};

/// Where an integration's shared secret lives in its config.
pub const SECRET_FIELD: &str = "webhook_secret";
/// Where the name of the header that carries it lives (under `properties`).
pub const HEADER_FIELD: &str = "webhook_header";
/// The header Actito's webhook subscriptions use unless told otherwise.
pub const DEFAULT_HEADER: &str = "X-Authorization";
/// A shorter shared secret is too easy to guess.
const MIN_SECRET_LEN: usize = 16;

/// How an integration receives webhooks, when it does.
pub struct WebhookSettings {
    /// The shared secret the destination sends.
    pub secret: String,
    /// The header that carries it.
    pub header: String,
}

/// The settings of an integration that receives webhooks (`enable_webhooks:
/// true` and a secret); `None` for one that does not.
pub fn receiving(config: &Json_) -> Option<WebhookSettings> {
    if config.get("enable_webhooks") != Some(&Json_::Bool(true)) {
        return None;
    }
    let secret = config["authentication"][SECRET_FIELD].as_str()?;
    let header = config["properties"][HEADER_FIELD]
        .as_str()
        .unwrap_or(DEFAULT_HEADER);
    Some(WebhookSettings {
        secret: secret.to_string(),
        header: header.to_string(),
    })
}

/// The host's own rules for an integration's webhook settings, checked with
/// the connector's `validate` when the integration is saved.
pub fn problems(config: &Json_, connector: &ConnectorInfo) -> Vec<ValidationProblem> {
    let mut problems = Vec::new();
    let problem = |path: &str, message: String| ValidationProblem {
        path: path.to_string(),
        message,
    };
    match config.get("enable_webhooks") {
        None | Some(Json_::Null | Json_::Bool(false)) => return problems,
        Some(Json_::Bool(true)) => {}
        Some(_) => {
            problems.push(problem("enable_webhooks", "must be true or false".into()));
            return problems;
        }
    }
    if !connector.inbound_webhooks {
        problems.push(problem(
            "enable_webhooks",
            format!("the {} connector does not read webhooks", connector.type_id),
        ));
    }
    match config["authentication"].get(SECRET_FIELD) {
        Some(Json_::String(s)) if s.len() >= MIN_SECRET_LEN => {}
        Some(Json_::String(_)) => problems.push(problem(
            &format!("authentication.{SECRET_FIELD}"),
            format!("must be at least {MIN_SECRET_LEN} characters"),
        )),
        _ => problems.push(problem(
            &format!("authentication.{SECRET_FIELD}"),
            "is required with enable_webhooks: the shared secret the destination sends".into(),
        )),
    }
    match config["properties"].get(HEADER_FIELD) {
        None | Some(Json_::Null) => {}
        Some(Json_::String(h)) if axum::http::HeaderName::try_from(h.as_str()).is_ok() => {}
        Some(_) => problems.push(problem(
            &format!("properties.{HEADER_FIELD}"),
            "must be an HTTP header name".into(),
        )),
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn info(inbound: bool) -> ConnectorInfo {
        ConnectorInfo {
            type_id: "actito".into(),
            version: "0.1.0".into(),
            display_name: "Actito".into(),
            config_schema: json!({}),
            default_hosts: vec![],
            max_concurrency: 5,
            max_batch_size: 1,
            batching: false,
            inbound_webhooks: inbound,
            activations: false,
            connection_check: false,
            wit_version: "0.1.1".into(),
            content_hash: String::new(),
        }
    }

    #[test]
    fn webhook_settings_are_checked_only_when_enabled() {
        let paths = |config: Json_, inbound: bool| -> Vec<String> {
            problems(&config, &info(inbound))
                .into_iter()
                .map(|p| p.path)
                .collect()
        };
        assert!(paths(json!({"enable_webhooks": false}), false).is_empty());
        assert!(paths(json!({}), false).is_empty());
        assert_eq!(
            paths(json!({"enable_webhooks": true}), false),
            ["enable_webhooks", "authentication.webhook_secret"]
        );
        assert_eq!(
            paths(
                json!({"enable_webhooks": true, "authentication": {"webhook_secret": "short"}, "properties": {"webhook_header": "bad header"}}),
                true
            ),
            ["authentication.webhook_secret", "properties.webhook_header"]
        );
        assert!(
            paths(
                json!({"enable_webhooks": true, "authentication": {"webhook_secret": "0123456789abcdef"}}),
                true
            )
            .is_empty()
        );
        assert_eq!(
            paths(json!({"enable_webhooks": "yes"}), true),
            ["enable_webhooks"]
        );
    }
}
