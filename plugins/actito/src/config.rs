//! The integration config, in the shape of Didomi's Actito integration.
//! The types are the one description of it: serde reads them and the JSON
//! Schema the host checks and the console draws is derived from them.

use prefsync_sdk::{Mapping, Problems};
use schemars::JsonSchema;
use serde::Deserialize;

/// An Actito integration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct ActitoConfig {
    /// The licence's API key, and the webhooks' shared secret.
    pub authentication: Authentication,
    /// Where profiles live and how users are matched.
    pub properties: Properties,
    /// Actito subscription (`id`) ← Didomi property holding a consent choice (`value`).
    #[schemars(length(min = 1))]
    pub mappings: Vec<Mapping>,
    /// Create profiles that do not exist yet; when false they are skipped.
    #[serde(default)]
    #[schemars(extend("default" = false))]
    pub upsert_mode: bool,
    /// Read Actito's webhooks back (`POST /v1/webhooks/{integration}`); read by the host.
    #[serde(default)]
    #[schemars(extend("default" = false))]
    pub enable_webhooks: Option<bool>,
    /// Accepted for Didomi compatibility; prefsync sends no email.
    #[serde(default)]
    #[schemars(extend("default" = false))]
    pub enable_emailing: Option<bool>,
}

/// Credentials.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    /// Actito's private API key, exchanged for a 15-minute token.
    #[schemars(extend("writeOnly" = true), length(min = 1))]
    pub private_api_key: String,
    /// The shared secret Actito's webhooks carry (with `enable_webhooks`; read by the host).
    #[serde(default)]
    #[schemars(extend("writeOnly" = true), length(min = 16))]
    pub webhook_secret: Option<String>,
}

/// Where and how.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Properties {
    /// The Actito entity of the account.
    #[schemars(length(min = 1))]
    pub entity_id: String,
    /// The profile table.
    #[schemars(length(min = 1))]
    pub table_name: String,
    /// The table attribute that holds the user's `organization_user_id`.
    #[schemars(length(min = 1))]
    pub user_unique_key: String,
    /// API base: `api.actito.com` (the default), `api1.actito.com`, `api3.actito.com` or
    /// `api-pre1.actito.com` (a bare host means https).
    // Left out or a string: `null` is refused, as before.
    #[serde(default)]
    #[schemars(with = "String", url, length(min = 1), extend("default" = "https://api.actito.com"))]
    pub api_base: Option<String>,
    /// The header Actito's webhook subscription sends the shared secret in (read by the host).
    #[serde(default)]
    #[schemars(extend("default" = "X-Authorization"))]
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

/// The rules the schema cannot say.
pub fn check(config: &ActitoConfig, p: &mut Problems) {
    let auth = &config.authentication;
    let props = &config.properties;
    // The schema refuses an empty string; a blank one is as empty.
    for (path, value) in [
        ("authentication.private_api_key", &auth.private_api_key),
        ("properties.entity_id", &props.entity_id),
        ("properties.table_name", &props.table_name),
        ("properties.user_unique_key", &props.user_unique_key),
    ] {
        if value.trim().is_empty() {
            p.push(path, "must not be empty");
        }
    }
    // An http(s) URL or a bare host: the API key is sent there.
    if let Some(api_base) = &props.api_base {
        p.url("properties.api_base", api_base, true);
    }
    p.mappings("mappings", &config.mappings);
}

#[cfg(test)]
mod tests {
    use prefsync_sdk::Connector;
    use prefsync_sdk::connector::validate;
    use serde_json::{Value, json};

    use crate::Actito;

    fn problems(config: &Value) -> Vec<String> {
        validate::<Actito>(&config.to_string())
            .into_iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    fn paths(config: &Value) -> Vec<String> {
        validate::<Actito>(&config.to_string())
            .into_iter()
            .map(|p| p.path)
            .collect()
    }

    fn seed() -> Value {
        json!({
            "type_id": "actito",
            "authentication": {"private_api_key": "KEY"},
            "properties": {"entity_id": "ACME", "table_name": "Profiles", "user_unique_key": "email"},
            "mappings": [{"id": "Newsletter", "value": "consents_purposes_newsletter_enabled"}],
            "upsert_mode": true,
            "enable_webhooks": false,
            "enable_emailing": false
        })
    }

    #[test]
    fn the_seed_shape_is_valid() {
        assert!(problems(&seed()).is_empty());
        let mut full = seed();
        full["authentication"]["webhook_secret"] = json!("actito-webhook-secret-0123456789");
        full["properties"]["api_base"] = json!("api1.actito.com");
        full["properties"]["webhook_header"] = json!("X-Authorization");
        full["enable_webhooks"] = json!(true);
        assert!(problems(&full).is_empty());
        // Optional strings and flags may be null, as before.
        let mut nulls = seed();
        nulls["authentication"]["webhook_secret"] = Value::Null;
        nulls["properties"]["webhook_header"] = Value::Null;
        nulls["enable_webhooks"] = Value::Null;
        nulls["enable_emailing"] = Value::Null;
        assert!(problems(&nulls).is_empty());
    }

    #[test]
    fn every_problem_is_named_from_the_derived_schema() {
        let config = json!({
            "authentication": {"api_key": "x", "webhook_secret": "short"},
            "properties": {"api_base": null, "webhook_header": 3},
            "mappings": [],
            "upsert_mode": "yes",
            "enable_webhooks": "no",
            "enable_emailing": 1
        });
        assert_eq!(
            problems(&config),
            [
                "authentication.api_key: unknown field (expected one of: private_api_key, webhook_secret)",
                "authentication.private_api_key: is required",
                "authentication.webhook_secret: must be at least 16 characters long",
                "enable_emailing: must be true or false",
                "enable_webhooks: must be true or false",
                "mappings: must not be empty",
                "properties.api_base: must be a string",
                "properties.entity_id: is required",
                "properties.table_name: is required",
                "properties.user_unique_key: is required",
                "properties.webhook_header: must be a string",
                "upsert_mode: must be true or false",
            ]
        );
        let mut empty = seed();
        empty["authentication"]["private_api_key"] = json!("");
        empty["properties"]["entity_id"] = json!("");
        empty["mappings"] = json!([{"id": "A"}]);
        assert_eq!(
            paths(&empty),
            [
                "authentication.private_api_key",
                "mappings[0].value",
                "properties.entity_id"
            ]
        );
        let mut missing = seed();
        missing.as_object_mut().unwrap().remove("properties");
        assert_eq!(problems(&missing), ["properties: is required"]);
    }

    #[test]
    fn the_checks_a_schema_cannot_say() {
        let mut config = seed();
        config["authentication"]["private_api_key"] = json!("  ");
        config["properties"]["table_name"] = json!(" ");
        config["properties"]["api_base"] = json!("ftp://api.actito.com");
        config["mappings"] = json!([
            {"id": "Newsletter", "value": "consents_purposes_newsletter_enabled"},
            {"id": "Newsletter", "value": " "}
        ]);
        assert_eq!(
            paths(&config),
            [
                "authentication.private_api_key",
                "properties.table_name",
                "properties.api_base",
                "mappings[1].value",
                "mappings[1].id"
            ]
        );
        for (api_base, ok) in [
            ("https://api3.actito.com", true),
            ("api-pre1.actito.com", true),
            ("javascript:alert(1)", false),
            ("https://user:pw@api.actito.com", false),
            ("", false),
        ] {
            let mut config = seed();
            config["properties"]["api_base"] = json!(api_base);
            let found = paths(&config);
            assert_eq!(found.is_empty(), ok, "{api_base}: {found:?}");
            if !ok {
                assert_eq!(found, ["properties.api_base"], "{api_base}");
            }
        }
    }

    #[test]
    fn secrets_are_write_only_and_the_api_base_is_a_uri() {
        let schema = Actito::config_schema();
        let auth = &schema["properties"]["authentication"]["properties"];
        assert_eq!(auth["private_api_key"]["writeOnly"], true);
        assert_eq!(auth["webhook_secret"]["writeOnly"], true);
        let props = &schema["properties"]["properties"]["properties"];
        assert_eq!(props["api_base"]["format"], "uri");
        assert!(props["api_base"].get("writeOnly").is_none());
        // The one URL the integration may reach besides the default host.
        let text = schema.to_string();
        assert_eq!(text.matches("\"format\":\"uri\"").count(), 1, "{text}");
        assert_eq!(text.matches("\"writeOnly\":true").count(), 2, "{text}");
        assert!(schema.get("additionalProperties").is_none());
        assert!(!text.contains("$ref"));
    }
}
