//! The integration config, in Didomi's integration shape: the organization's
//! private API key and secret, the organization, and which prefsync property
//! writes which Didomi consent.
//!
//! The types are the one description of the config: serde reads them, and
//! the JSON Schema the host checks and the console draws is derived from them.

use prefsync_sdk::{Mapping, Problems};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::consents::Target;

/// A Didomi write-back integration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct DidomiConfig {
    /// The organization's private API key and its secret.
    pub authentication: Authentication,
    /// The organization, and where its API is.
    pub properties: Properties,
    /// Didomi consent (`id`: `purposes.<id>.enabled`,
    /// `purposes.<id>.enabled_li`, `purposes.<id>.values.<preference>` or
    /// `channels.<id>.enabled`) ← prefsync property (`value`, e.g.
    /// `consents_purposes_newsletter_enabled`).
    #[schemars(length(min = 1))]
    pub mappings: Vec<Mapping>,
    /// Write to users Didomi does not know yet (Didomi creates them); when
    /// false, such a user is skipped.
    #[serde(default)]
    pub upsert_mode: bool,
}

/// Credentials, exchanged for a session token.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    /// The private API key's id (Didomi console → API keys).
    #[schemars(extend("writeOnly" = true), length(min = 1))]
    pub key: String,
    /// The private API key's secret.
    #[schemars(extend("writeOnly" = true), length(min = 1))]
    pub secret: String,
}

/// The organization.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Properties {
    /// Didomi organization id (`organization_id` of every call).
    #[schemars(length(min = 1))]
    pub organization_id: String,
    /// API base, `https://api.didomi.io/v1` unless set (a bare host means
    /// https; tests point it at a mock).
    // Left out when not used: the schema says `string` (null is refused, as
    // the hand-written check did), serde reads it into an `Option`.
    #[serde(default)]
    #[schemars(with = "String", url, length(min = 1), extend("default" = DEFAULT_BASE))]
    pub api_base: Option<String>,
    /// The events' `regulation`; Didomi's default (GDPR) when unset.
    #[serde(default)]
    pub regulation: Option<String>,
}

impl DidomiConfig {
    /// The API base without a trailing slash, https when no scheme was given.
    pub fn base_url(&self) -> String {
        let base = self
            .properties
            .api_base
            .as_deref()
            .unwrap_or(DEFAULT_BASE)
            .trim()
            .trim_end_matches('/');
        if base.contains("://") {
            base.to_string()
        } else {
            format!("https://{base}")
        }
    }
}

const DEFAULT_BASE: &str = "https://api.didomi.io/v1";

/// The rules the schema cannot say.
pub fn check(config: &DidomiConfig, p: &mut Problems) {
    // Blank is empty: the schema's `minLength` counts the spaces.
    for (path, value) in [
        ("authentication.key", &config.authentication.key),
        ("authentication.secret", &config.authentication.secret),
        (
            "properties.organization_id",
            &config.properties.organization_id,
        ),
    ] {
        if value.trim().is_empty() {
            p.push(path, "must not be empty");
        }
    }
    if let Some(api_base) = &config.properties.api_base {
        p.url("properties.api_base", api_base, true);
    }
    p.mappings("mappings", &config.mappings);
    // Each `id` must name a Didomi consent this connector can write.
    for (index, mapping) in config.mappings.iter().enumerate() {
        if let Err(why) = Target::parse(&mapping.id) {
            p.push(&format!("mappings[{index}].id"), why);
        }
    }
}

#[cfg(test)]
mod tests {
    use prefsync_sdk::Connector;
    use prefsync_sdk::connector::{parse_config, validate};
    use serde_json::json;

    use crate::Didomi;

    fn paths(config: serde_json::Value) -> Vec<String> {
        validate::<Didomi>(&config.to_string())
            .into_iter()
            .map(|p| p.path)
            .collect()
    }

    fn shown(config: serde_json::Value) -> Vec<String> {
        validate::<Didomi>(&config.to_string())
            .into_iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    #[test]
    fn the_didomi_shape_is_valid() {
        let config = json!({
            "type_id": "didomi",
            "authentication": {"key": "KEY", "secret": "SECRET"},
            "properties": {"organization_id": "acme"},
            "mappings": [
                {"id": "purposes.newsletter.enabled", "value": "consents_purposes_newsletter_enabled"},
                {"id": "purposes.newsletter.enabled_li", "value": "consents_purposes_newsletter_enabled_li"},
                {"id": "purposes.newsletter.values.topics", "value": "consents_purposes_newsletter_values_topics_value"},
                {"id": "channels.email.enabled", "value": "consents_channels_email_enabled"}
            ],
            "upsert_mode": true
        });
        assert!(paths(config.clone()).is_empty());
        let parsed = parse_config::<Didomi>(&config.to_string()).unwrap();
        assert_eq!(parsed.base_url(), "https://api.didomi.io/v1");
        let mut set = config.clone();
        set["properties"] = json!({"organization_id": "acme", "api_base": "127.0.0.1:4000/v1/", "regulation": null});
        let parsed = parse_config::<Didomi>(&set.to_string()).unwrap();
        assert_eq!(parsed.base_url(), "https://127.0.0.1:4000/v1");
        assert_eq!(parsed.properties.regulation, None);
        // The example in examples/didomi is valid.
        let example = include_str!("../../../examples/didomi/integration.json");
        assert!(validate::<Didomi>(example).is_empty());
    }

    #[test]
    fn every_problem_the_schema_says_is_named_at_once() {
        assert_eq!(
            shown(json!({
                "authentication": {"key": "", "token": "x"},
                "properties": {"api_base": null, "regulation": 1, "colour": "red"},
                "mappings": [{"id": "channels.email.enabled"}, {"id": "channels.sms.enabled", "value": 2}],
                "upsert_mode": "yes"
            })),
            [
                "authentication.key: must not be empty",
                "authentication.secret: is required",
                "authentication.token: unknown field (expected one of: key, secret)",
                "mappings[0].value: is required",
                "mappings[1].value: must be a string",
                "properties.api_base: must be a string",
                "properties.colour: unknown field (expected one of: api_base, organization_id, regulation)",
                "properties.organization_id: is required",
                "properties.regulation: must be a string",
                "upsert_mode: must be true or false",
            ]
        );
        assert_eq!(
            shown(json!({"authentication": {"key": "k", "secret": "s"}, "mappings": []})),
            ["mappings: must not be empty", "properties: is required",]
        );
    }

    #[test]
    fn every_problem_only_check_can_see_is_named_at_once() {
        assert_eq!(
            paths(json!({
                "authentication": {"key": " ", "secret": "s"},
                "properties": {"organization_id": "  ", "api_base": "ftp://x"},
                "mappings": [{"id": "vendors.google", "value": "x"},
                             {"id": "channels.email.enabled", "value": " "},
                             {"id": "channels.email.enabled", "value": "y"}]
            })),
            [
                "authentication.key",
                "properties.organization_id",
                "properties.api_base",
                "mappings[1].value",
                "mappings[2].id",
                "mappings[0].id",
            ]
        );
        for bad in [
            "",
            "javascript:alert(1)",
            "https://user:pw@api.didomi.io/v1",
        ] {
            assert_eq!(
                paths(json!({"authentication": {"key": "k", "secret": "s"},
                    "properties": {"organization_id": "acme", "api_base": bad},
                    "mappings": [{"id": "channels.email.enabled", "value": "x"}]})),
                ["properties.api_base"],
                "{bad}"
            );
        }
    }

    #[test]
    fn the_secrets_are_write_only_and_the_api_base_a_uri_in_the_schema() {
        let schema = Didomi::config_schema();
        let auth = &schema["properties"]["authentication"]["properties"];
        assert_eq!(auth["key"]["writeOnly"], true);
        assert_eq!(auth["secret"]["writeOnly"], true);
        let properties = &schema["properties"]["properties"]["properties"];
        assert_eq!(properties["api_base"]["format"], "uri");
        assert_eq!(
            properties["api_base"]["default"],
            "https://api.didomi.io/v1"
        );
        assert!(properties["api_base"].get("writeOnly").is_none());
        let text = schema.to_string();
        assert_eq!(text.matches("\"format\":\"uri\"").count(), 1, "{text}");
        assert_eq!(text.matches("\"writeOnly\":true").count(), 2, "{text}");
    }
}
