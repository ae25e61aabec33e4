//! The integration config, in Didomi's integration shape: the organization's
//! private API key and secret, the organization, and which prefsync property
//! writes which Didomi consent.

use prefsync_sdk::{Mapping, Problems};
use serde::Deserialize;
use serde_json::json;

use crate::consents::Target;

/// A Didomi write-back integration.
#[derive(Debug, Clone, Deserialize)]
pub struct DidomiConfig {
    /// The organization's private API key and its secret.
    pub authentication: Authentication,
    /// The organization, and where its API is.
    pub properties: Properties,
    /// Didomi consent (`id`, e.g. `purposes.newsletter.enabled`) ← prefsync
    /// property (`value`, e.g. `consents_purposes_newsletter_enabled`).
    pub mappings: Vec<Mapping>,
    /// Write to users Didomi does not know yet (Didomi creates them); when
    /// false, such a user is skipped.
    #[serde(default)]
    pub upsert_mode: bool,
}

/// Credentials, exchanged for a session token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    /// The private API key's id.
    pub key: String,
    /// The private API key's secret.
    pub secret: String,
}

/// The organization.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Properties {
    /// Didomi organization id (`organization_id` of every call).
    pub organization_id: String,
    /// API base, `https://api.didomi.io/v1` unless set (tests point it at a mock).
    #[serde(default)]
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

pub fn check(p: &mut Problems<'_>) {
    p.require_string("authentication.key");
    p.require_string("authentication.secret");
    p.only_keys("authentication", &["key", "secret"]);
    p.require_string("properties.organization_id");
    if p.get("properties.api_base").is_some() {
        p.require_url("properties.api_base", true);
    }
    p.optional_string("properties.regulation");
    p.only_keys("properties", &["organization_id", "api_base", "regulation"]);
    p.mappings("mappings", true);
    // Each `id` must name a Didomi consent this connector can write.
    let targets: Vec<(usize, String)> = p
        .get("mappings")
        .and_then(|m| m.as_array())
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, m)| Some((i, m.get("id")?.as_str()?.to_string())))
        .collect();
    for (index, id) in targets {
        if let Err(why) = Target::parse(&id) {
            p.push(&format!("mappings[{index}].id"), why);
        }
    }
    p.optional_bool("upsert_mode");
}

pub fn schema() -> serde_json::Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["authentication", "properties", "mappings"],
        "properties": {
            "authentication": {
                "type": "object",
                "required": ["key", "secret"],
                "additionalProperties": false,
                "properties": {
                    "key": {"type": "string", "writeOnly": true,
                            "description": "Private API key id (Didomi console → API keys)"},
                    "secret": {"type": "string", "writeOnly": true,
                               "description": "Private API key secret"}
                }
            },
            "properties": {
                "type": "object",
                "required": ["organization_id"],
                "additionalProperties": false,
                "properties": {
                    "organization_id": {"type": "string", "description": "Didomi organization id"},
                    "api_base": {"type": "string", "format": "uri", "default": DEFAULT_BASE,
                                 "description": "Didomi API base"},
                    "regulation": {"type": "string",
                                   "description": "Regulation of the written events (Didomi's default, GDPR, when unset)"}
                }
            },
            "mappings": {
                "type": "array", "minItems": 1,
                "items": {"type": "object", "required": ["id", "value"], "additionalProperties": false,
                          "properties": {
                              "id": {"type": "string",
                                     "description": "Didomi consent: purposes.<id>.enabled, purposes.<id>.enabled_li, purposes.<id>.values.<preference>, channels.<id>.enabled"},
                              "value": {"type": "string", "description": "prefsync property"}}}
            },
            "upsert_mode": {"type": "boolean", "default": false,
                            "description": "Write to users Didomi does not know yet"}
        }
    })
}

#[cfg(test)]
mod tests {
    use prefsync_sdk::connector::validate;

    use crate::Didomi;

    fn paths(config: serde_json::Value) -> Vec<String> {
        validate::<Didomi>(&config.to_string())
            .into_iter()
            .map(|p| p.path)
            .collect()
    }

    #[test]
    fn the_didomi_shape_is_valid_and_every_problem_is_named() {
        let config = serde_json::json!({
            "type_id": "didomi",
            "authentication": {"key": "KEY", "secret": "SECRET"},
            "properties": {"organization_id": "acme"},
            "mappings": [
                {"id": "purposes.newsletter.enabled", "value": "consents_purposes_newsletter_enabled"},
                {"id": "purposes.newsletter.values.topics", "value": "consents_purposes_newsletter_values_topics_value"},
                {"id": "channels.email.enabled", "value": "consents_channels_email_enabled"}
            ],
            "upsert_mode": true
        });
        assert!(paths(config).is_empty());
        assert_eq!(
            paths(serde_json::json!({
                "authentication": {"key": "k", "token": "x"},
                "properties": {"api_base": "ftp://x"},
                "mappings": [{"id": "vendors.google", "value": "x"}, {"id": "channels.email.enabled", "value": "y"}],
                "upsert_mode": "yes"
            })),
            [
                "authentication.secret",
                "authentication.token",
                "properties.organization_id",
                "properties.api_base",
                "mappings[0].id",
                "upsert_mode"
            ]
        );
    }
}
