//! The integration config, in the shape of Didomi's Actito integration.

use prefsync_sdk::{Mapping, Problems};
use serde::Deserialize;
use serde_json::json;

/// An Actito integration.
#[derive(Debug, Clone, Deserialize)]
pub struct ActitoConfig {
    /// The licence's API key, and the webhooks' shared secret.
    pub authentication: Authentication,
    /// Where profiles live and how users are matched.
    pub properties: Properties,
    /// Subscription name (`id`) ← boolean Didomi property (`value`).
    pub mappings: Vec<Mapping>,
    /// Create profiles that do not exist yet; when false they are skipped.
    #[serde(default)]
    pub upsert_mode: bool,
}

/// Credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    /// Actito's private API key, exchanged for a 15-minute token.
    pub private_api_key: String,
    /// The secret Actito's webhook subscription sends back (read by the host).
    #[serde(default)]
    pub webhook_secret: Option<String>,
}

/// Where and how.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Properties {
    /// The Actito entity of the account.
    pub entity_id: String,
    /// The profile table.
    pub table_name: String,
    /// The table attribute that holds the user's `organization_user_id`.
    pub user_unique_key: String,
    /// API base, `https://api.actito.com` unless set (`api1`, `api3`, `api-pre1` exist).
    #[serde(default)]
    pub api_base: Option<String>,
    /// The header Actito's webhooks carry the shared secret in (read by the host).
    #[serde(default)]
    pub webhook_header: Option<String>,
}

impl ActitoConfig {
    /// The API base without a trailing slash, https when no scheme was given.
    pub fn base_url(&self) -> String {
        let base = self
            .properties
            .api_base
            .as_deref()
            .unwrap_or(crate::DEFAULT_HOST)
            .trim()
            .trim_end_matches('/');
        if base.contains("://") {
            base.to_string()
        } else {
            format!("https://{base}")
        }
    }
}

pub fn check(p: &mut Problems<'_>) {
    p.require_string("authentication.private_api_key");
    p.optional_string("authentication.webhook_secret");
    p.only_keys("authentication", &["private_api_key", "webhook_secret"]);
    p.require_string("properties.entity_id");
    p.require_string("properties.table_name");
    p.require_string("properties.user_unique_key");
    if p.get("properties.api_base").is_some() {
        p.require_url("properties.api_base", true);
    }
    p.optional_string("properties.webhook_header");
    p.only_keys(
        "properties",
        &[
            "entity_id",
            "table_name",
            "user_unique_key",
            "api_base",
            "webhook_header",
        ],
    );
    p.mappings("mappings", true);
    p.optional_bool("upsert_mode");
    p.optional_bool("enable_webhooks");
    p.optional_bool("enable_emailing");
}

pub fn schema() -> serde_json::Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["authentication", "properties", "mappings"],
        "properties": {
            "authentication": {
                "type": "object",
                "required": ["private_api_key"],
                "additionalProperties": false,
                "properties": {
                    "private_api_key": {"type": "string", "writeOnly": true,
                                        "description": "Actito private API key"},
                    "webhook_secret": {"type": "string", "writeOnly": true, "minLength": 16,
                                       "description": "Shared secret Actito's webhooks carry (with enable_webhooks)"}
                }
            },
            "properties": {
                "type": "object",
                "required": ["entity_id", "table_name", "user_unique_key"],
                "additionalProperties": false,
                "properties": {
                    "entity_id": {"type": "string", "description": "Actito entity"},
                    "table_name": {"type": "string", "description": "Profile table"},
                    "user_unique_key": {"type": "string",
                                        "description": "Table attribute holding the organization_user_id"},
                    "api_base": {"type": "string", "format": "uri", "default": "https://api.actito.com",
                                 "description": "API base: api.actito.com, api1.actito.com, api3.actito.com or api-pre1.actito.com"},
                    "webhook_header": {"type": "string", "default": "X-Authorization",
                                       "description": "Header the webhook subscription sends the shared secret in"}
                }
            },
            "mappings": {
                "type": "array", "minItems": 1,
                "items": {"type": "object", "required": ["id", "value"], "additionalProperties": false,
                          "properties": {"id": {"type": "string", "description": "Actito subscription"},
                                         "value": {"type": "string", "description": "Didomi property (a consent choice)"}}}
            },
            "upsert_mode": {"type": "boolean", "default": false,
                            "description": "Create profiles that do not exist yet"},
            "enable_webhooks": {"type": "boolean", "default": false,
                                "description": "Read Actito's webhooks back (POST /v1/webhooks/{integration})"},
            "enable_emailing": {"type": "boolean", "default": false,
                                "description": "Accepted for Didomi compatibility; prefsync sends no email"}
        }
    })
}

#[cfg(test)]
mod tests {
    use prefsync_sdk::connector::validate;

    use crate::Actito;

    fn paths(config: serde_json::Value) -> Vec<String> {
        validate::<Actito>(&config.to_string())
            .into_iter()
            .map(|p| p.path)
            .collect()
    }

    #[test]
    fn the_seed_shape_is_valid_and_every_problem_is_named() {
        let seed = serde_json::json!({
            "type_id": "actito",
            "authentication": {"private_api_key": "KEY"},
            "properties": {"entity_id": "ACME", "table_name": "Profiles", "user_unique_key": "email"},
            "mappings": [{"id": "Newsletter", "value": "consents_purposes_newsletter_enabled"}],
            "upsert_mode": true,
            "enable_webhooks": false,
            "enable_emailing": false
        });
        assert!(paths(seed.clone()).is_empty());
        assert_eq!(
            paths(
                serde_json::json!({"authentication": {"api_key": "x"}, "properties": {"api_base": "ftp://x"}, "mappings": [], "upsert_mode": "yes"})
            ),
            [
                "authentication.private_api_key",
                "authentication.api_key",
                "properties.entity_id",
                "properties.table_name",
                "properties.user_unique_key",
                "properties.api_base",
                "mappings",
                "upsert_mode"
            ]
        );
    }
}
