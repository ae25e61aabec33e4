//! The integration config: where to POST, how to sign, what to retry.
//! The types are the one description of it: serde reads them and the JSON
//! Schema the host checks and the console draws is derived from them.

use std::collections::BTreeMap;

use prefsync_sdk::{Mapping, Problems};
use schemars::JsonSchema;
use serde::Deserialize;

/// A webhook integration: any HTTP endpoint.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct WebhookConfig {
    /// The signing secret, if any.
    #[serde(default)]
    pub authentication: Authentication,
    /// Where and how to send.
    pub properties: Properties,
    /// JSON field sent (`id`) ← Didomi property (`value`).
    #[schemars(length(min = 1))]
    pub mappings: Vec<Mapping>,
}

/// Signing.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    /// Key of the HMAC-SHA256 signature of each body (16+ characters); unsigned without it.
    #[serde(default)]
    #[schemars(extend("writeOnly" = true), length(min = 16))]
    pub signing_secret: Option<String>,
}

/// Where and how.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Properties {
    /// The endpoint (a bare host means https); the only host the connector may reach.
    #[schemars(url, length(min = 1))]
    pub url: String,
    /// Header that carries `sha256=<hex of HMAC-SHA256(secret, body)>`.
    #[serde(default)]
    #[schemars(extend("default" = DEFAULT_SIGNATURE_HEADER))]
    pub signature_header: Option<String>,
    /// Extra headers sent with every request, header → value (shown by the API: no secrets here).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Statuses worth retrying; by default 408, 425, 429 and every 5xx.
    // Left out or a list: `null` is refused, as before.
    #[serde(default)]
    #[schemars(with = "Vec<Status>")]
    pub retry_on: Option<Vec<u16>>,
    /// Longest wait for an answer, in ms.
    // Left out or a number: `null` is refused, as before.
    #[serde(default)]
    #[schemars(with = "u32", range(min = 1, max = 120_000), extend("default" = 10_000))]
    pub timeout_ms: Option<u32>,
}

/// An HTTP status, for the schema of `retry_on`.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct Status(#[schemars(range(min = 100, max = 599))] u16);

/// The signature header when `properties.signature_header` is not set.
pub const DEFAULT_SIGNATURE_HEADER: &str = "X-Prefsync-Signature";

impl WebhookConfig {
    pub fn url(&self) -> String {
        let url = self.properties.url.trim();
        if url.contains("://") {
            url.to_string()
        } else {
            format!("https://{url}")
        }
    }

    pub fn signature_header(&self) -> &str {
        self.properties
            .signature_header
            .as_deref()
            .unwrap_or(DEFAULT_SIGNATURE_HEADER)
    }
}

/// The rules the schema cannot say.
pub fn check(config: &WebhookConfig, p: &mut Problems) {
    // An http(s) URL or a bare host: where every body goes.
    p.url("properties.url", &config.properties.url, true);
    p.mappings("mappings", &config.mappings);
}

#[cfg(test)]
mod tests {
    use prefsync_sdk::Connector;
    use prefsync_sdk::connector::validate;
    use serde_json::{Value, json};

    use crate::Webhook;

    fn problems(config: &Value) -> Vec<String> {
        validate::<Webhook>(&config.to_string())
            .into_iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    fn good() -> Value {
        json!({
            "type_id": "webhook",
            "authentication": {"signing_secret": "whsec-test-0123456789abcdef"},
            "properties": {"url": "https://hooks.example.com/consent", "headers": {"X-Tenant": "acme"},
                           "signature_header": "X-Sig", "retry_on": [409, 503], "timeout_ms": 120000},
            "mappings": [{"id": "newsletter", "value": "consents_purposes_newsletter_enabled"}]
        })
    }

    #[test]
    fn fitting_configs_are_valid() {
        assert!(problems(&good()).is_empty());
        let minimal = json!({
            "properties": {"url": "hooks.example.com"},
            "mappings": [{"id": "n", "value": "consents_purposes_newsletter_enabled"}]
        });
        assert!(problems(&minimal).is_empty());
        let mut nulls = good();
        nulls["authentication"]["signing_secret"] = Value::Null;
        nulls["properties"]["signature_header"] = Value::Null;
        assert!(problems(&nulls).is_empty());
        let mut empty = good();
        empty["authentication"] = json!({});
        empty["properties"]["retry_on"] = json!([]);
        empty["properties"]["headers"] = json!({});
        assert!(problems(&empty).is_empty());
    }

    #[test]
    fn every_schema_problem_is_named_at_once() {
        let config = json!({
            "authentication": null,
            "properties": {"retry_on": null, "timeout_ms": 120001, "headers": null},
            "mappings": [{"id": "n", "value": "v", "x": 1}]
        });
        assert_eq!(
            problems(&config),
            [
                "authentication: must be an object",
                "mappings[0].x: unknown field (expected one of: id, value)",
                "properties.headers: must be an object",
                "properties.retry_on: must be a list",
                "properties.timeout_ms: must be at most 120000",
                "properties.url: is required",
            ]
        );
        assert_eq!(
            problems(&json!({"mappings": "x"})),
            ["mappings: must be a list", "properties: is required"]
        );
    }

    #[test]
    fn the_url_and_the_mappings_are_checked_by_the_connector() {
        for (url, message) in [
            (
                "ftp://hooks.example.com",
                "must be an https URL, not a `ftp` URL",
            ),
            (
                "javascript:alert(1)",
                "`javascript:alert(1)` has no valid host",
            ),
            ("", "must not be empty"),
            ("  ", "must not be empty"),
        ] {
            let mut config = good();
            config["properties"]["url"] = json!(url);
            assert_eq!(
                problems(&config),
                [format!("properties.url: {message}")],
                "{url}"
            );
        }
        let mut config = good();
        config["properties"]["url"] = json!("https://me:hunter2@hooks.example.com/");
        let found = problems(&config);
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("properties.url: must not carry"));
        assert!(!found[0].contains("hunter2"));

        let mut config = good();
        config["mappings"] = json!([{"id": "n", "value": "a"}, {"id": "n", "value": "b"}]);
        assert_eq!(problems(&config), ["mappings[1].id: `n` is mapped twice"]);
    }

    #[test]
    fn the_secret_is_write_only_and_the_url_a_uri() {
        let schema = Webhook::config_schema();
        assert_eq!(
            schema["properties"]["authentication"]["properties"]["signing_secret"]["writeOnly"],
            true
        );
        let props = &schema["properties"]["properties"]["properties"];
        assert_eq!(props["url"]["format"], "uri");
        assert!(props["url"].get("writeOnly").is_none());
        let text = schema.to_string();
        assert_eq!(text.matches("\"format\":\"uri\"").count(), 1, "{text}");
        assert_eq!(text.matches("\"writeOnly\":true").count(), 1, "{text}");
        assert!(!text.contains("$ref"));
    }
}
