//! The integration config, in the shape of Didomi's Dotdigital integration.

use prefsync_sdk::{Mapping, Problems};
use serde::Deserialize;
use serde_json::json;

/// A Dotdigital integration.
#[derive(Debug, Clone, Deserialize)]
pub struct DotdigitalConfig {
    /// API user credentials and the regional endpoint.
    pub authentication: Authentication,
    /// Optional settings.
    #[serde(default)]
    pub properties: Properties,
    /// Data field (`id`) ← Didomi property (`value`).
    pub mappings: Vec<Mapping>,
    /// Create contacts that do not exist yet; when false they are skipped.
    #[serde(default)]
    pub upsert_mode: bool,
}

/// API user and endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    /// Regional API endpoint, e.g. `https://r1-api.dotdigital.com`.
    pub url: String,
    /// API user, `apiuser-…@apiconnector.com`.
    pub username: String,
    /// API user's password.
    pub password: String,
}

/// Optional settings under `properties`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Properties {
    /// How the record's key identifies the contact: `email` (default),
    /// `mobileNumber` or `contactId`.
    #[serde(default)]
    pub identifier: Option<String>,
}

pub const IDENTIFIERS: [&str; 3] = ["email", "mobileNumber", "contactId"];

impl DotdigitalConfig {
    /// The endpoint without a trailing slash, https when no scheme was given.
    pub fn base_url(&self) -> String {
        let url = self.authentication.url.trim().trim_end_matches('/');
        if url.contains("://") {
            url.to_string()
        } else {
            format!("https://{url}")
        }
    }

    pub fn identifier(&self) -> &str {
        self.properties.identifier.as_deref().unwrap_or("email")
    }
}

pub fn check(p: &mut Problems<'_>) {
    // An absolute http(s) URL: the endpoint is where the credentials go.
    p.require_url("authentication.url", false);
    p.require_string("authentication.username");
    p.require_string("authentication.password");
    p.only_keys("authentication", &["url", "username", "password"]);
    p.mappings("mappings", true);
    p.optional_bool("upsert_mode");
    p.only_keys("properties", &["identifier"]);
    if let Some(identifier) = p.optional_string("properties.identifier")
        && !IDENTIFIERS.contains(&identifier)
    {
        p.push(
            "properties.identifier",
            format!("must be one of {}", IDENTIFIERS.join(", ")),
        );
    }
}

pub fn schema() -> serde_json::Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["authentication", "mappings"],
        "properties": {
            "authentication": {
                "type": "object",
                "required": ["url", "username", "password"],
                "additionalProperties": false,
                "properties": {
                    "url": {"type": "string", "format": "uri",
                            "description": "Regional API endpoint, e.g. https://r1-api.dotdigital.com"},
                    "username": {"type": "string", "writeOnly": true, "description": "API user"},
                    "password": {"type": "string", "writeOnly": true, "description": "API user's password"}
                }
            },
            "properties": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "identifier": {"enum": IDENTIFIERS, "default": "email",
                                   "description": "How the user's key identifies the contact"}
                }
            },
            "mappings": {
                "type": "array", "minItems": 1,
                "items": {"type": "object", "required": ["id", "value"], "additionalProperties": false,
                          "properties": {"id": {"type": "string", "description": "Dotdigital data field"},
                                         "value": {"type": "string", "description": "Didomi property"}}}
            },
            "upsert_mode": {"type": "boolean", "default": false,
                            "description": "Create contacts that do not exist yet"}
        }
    })
}

#[cfg(test)]
mod tests {
    use prefsync_sdk::connector::validate;
    use serde_json::json;

    use crate::Dotdigital;

    fn paths(url: &str) -> Vec<String> {
        let config = json!({
            "authentication": {"url": url, "username": "apiuser-1@apiconnector.com", "password": "pw"},
            "mappings": [{"id": "NEWSLETTER", "value": "consents_purposes_newsletter_enabled"}]
        });
        validate::<Dotdigital>(&config.to_string())
            .into_iter()
            .map(|p| p.path)
            .collect()
    }

    #[test]
    fn the_endpoint_must_be_an_absolute_http_url() {
        assert!(paths("https://r1-api.dotdigital.com").is_empty());
        for bad in [
            "javascript:alert(1)",
            "r1-api.dotdigital.com",
            "ftp://r1-api.dotdigital.com",
            "https://user:pw@r1-api.dotdigital.com",
        ] {
            assert_eq!(paths(bad), ["authentication.url"], "{bad}");
        }
    }
}
