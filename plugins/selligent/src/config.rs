//! The integration config, in the shape of Didomi's Selligent integration.

use prefsync_sdk::{Mapping, Problems};
use serde::Deserialize;
use serde_json::json;

/// A Selligent integration.
#[derive(Debug, Clone, Deserialize)]
pub struct SelligentConfig {
    /// The API user and its encryption key.
    pub authentication: Authentication,
    /// The installation and the gate.
    pub properties: Properties,
    /// Selligent field (`id`, e.g. `MAIL`) ← Didomi property (`value`).
    pub mappings: Vec<Mapping>,
}

/// Individual API credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    /// The API user (`Login` of the `AutomationAuthHeader`).
    pub username: String,
    /// The API user's encryption key (`Password` of the header).
    pub password: String,
}

/// Where to trigger.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Properties {
    /// The installation, e.g. `https://acme.slgnt.eu` (a bare host means https).
    pub url: String,
    /// The gate whose campaign creates or updates the profile.
    pub gate: String,
}

impl SelligentConfig {
    /// The Individual API endpoint of the installation.
    pub fn endpoint(&self) -> String {
        let url = self.properties.url.trim().trim_end_matches('/');
        let base = if url.contains("://") {
            url.to_string()
        } else {
            format!("https://{url}")
        };
        format!("{base}/automation/individual.asmx")
    }
}

pub fn check(p: &mut Problems<'_>) {
    p.require_string("authentication.username");
    p.require_string("authentication.password");
    p.only_keys("authentication", &["username", "password"]);
    p.require_url("properties.url", true);
    p.require_string("properties.gate");
    p.only_keys("properties", &["url", "gate"]);
    p.mappings("mappings", true);
    if p.optional_bool("upsert_mode") == Some(false) {
        p.push(
            "upsert_mode",
            "Selligent always upserts (the campaign behind the gate creates or updates the profile): remove it or set it to true",
        );
    }
}

pub fn schema() -> serde_json::Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["authentication", "properties", "mappings"],
        "properties": {
            "authentication": {
                "type": "object",
                "required": ["username", "password"],
                "additionalProperties": false,
                "properties": {
                    "username": {"type": "string", "description": "Individual API user"},
                    "password": {"type": "string", "writeOnly": true, "description": "The API user's encryption key"}
                }
            },
            "properties": {
                "type": "object",
                "required": ["url", "gate"],
                "additionalProperties": false,
                "properties": {
                    "url": {"type": "string", "format": "uri",
                            "description": "The installation, e.g. https://acme.slgnt.eu"},
                    "gate": {"type": "string", "description": "Gate whose campaign creates or updates the profile"}
                }
            },
            "mappings": {
                "type": "array", "minItems": 1,
                "items": {"type": "object", "required": ["id", "value"], "additionalProperties": false,
                          "properties": {"id": {"type": "string", "description": "Selligent field, e.g. MAIL"},
                                         "value": {"type": "string", "description": "Didomi property"}}}
            },
            "upsert_mode": {"const": true, "default": true,
                            "description": "Always on: the campaign creates or updates the profile"}
        }
    })
}

#[cfg(test)]
mod tests {
    use prefsync_sdk::connector::validate;

    use crate::Selligent;

    fn problems(config: serde_json::Value) -> Vec<(String, String)> {
        validate::<Selligent>(&config.to_string())
            .into_iter()
            .map(|p| (p.path, p.message))
            .collect()
    }

    #[test]
    fn the_seed_shape_is_valid_and_upsert_cannot_be_turned_off() {
        let mut seed = serde_json::json!({
            "type_id": "selligent",
            "authentication": {"username": "API_USER", "password": "ENCRYPTION_KEY"},
            "properties": {"url": "acme.slgnt.eu", "gate": "DIDOMI_GATE"},
            "mappings": [{"id": "MAIL", "value": "organization_user_id"}],
            "upsert_mode": true
        });
        assert!(problems(seed.clone()).is_empty());
        seed["upsert_mode"] = serde_json::json!(false);
        let found = problems(seed);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "upsert_mode");
        assert!(found[0].1.contains("always upserts"));
        let paths: Vec<String> = problems(
            serde_json::json!({"authentication": {"user": "x"}, "properties": {"url": "ftp://x"}}),
        )
        .into_iter()
        .map(|(path, _)| path)
        .collect();
        assert_eq!(
            paths,
            [
                "authentication.username",
                "authentication.password",
                "authentication.user",
                "properties.url",
                "properties.gate",
                "mappings"
            ]
        );
    }
}
