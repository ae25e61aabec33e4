//! The integration config, in the shape of Didomi's Dotdigital integration.
//! The types are the one description of it: serde reads them and the JSON
//! Schema the host checks and the console draws is derived from them.

use prefsync_sdk::{Mapping, Problems};
use schemars::JsonSchema;
use serde::Deserialize;

/// A Dotdigital integration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct DotdigitalConfig {
    /// API user credentials and the regional endpoint.
    pub authentication: Authentication,
    /// Optional settings.
    #[serde(default)]
    pub properties: Properties,
    /// Data field (`id`) ← Didomi property (`value`).
    #[schemars(length(min = 1))]
    pub mappings: Vec<Mapping>,
    /// Create contacts that do not exist yet; when false they are skipped.
    #[serde(default)]
    pub upsert_mode: bool,
}

/// API user and endpoint.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    /// Regional API endpoint, e.g. `https://r1-api.dotdigital.com`.
    #[schemars(url, length(min = 1))]
    pub url: String,
    /// API user, `apiuser-…@apiconnector.com`.
    #[schemars(extend("writeOnly" = true), length(min = 1))]
    pub username: String,
    /// API user's password.
    #[schemars(extend("writeOnly" = true), length(min = 1))]
    pub password: String,
}

/// Optional settings under `properties`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Properties {
    /// How the record's key identifies the contact (`email` when not set).
    #[serde(default)]
    pub identifier: Option<Identifier>,
}

/// How a contact is identified in `/contacts/v3/{identifier}/{value}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Identifier {
    /// The contact's email address.
    Email,
    /// The contact's mobile number.
    MobileNumber,
    /// Dotdigital's own contact id.
    ContactId,
}

impl Identifier {
    /// The identifier's name in Dotdigital's URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Identifier::Email => "email",
            Identifier::MobileNumber => "mobileNumber",
            Identifier::ContactId => "contactId",
        }
    }
}

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

    /// How the record's key identifies the contact.
    pub fn identifier(&self) -> &'static str {
        self.properties
            .identifier
            .unwrap_or(Identifier::Email)
            .as_str()
    }
}

/// The rules the schema cannot say.
pub fn check(config: &DotdigitalConfig, p: &mut Problems) {
    // An absolute http(s) URL: the endpoint is where the credentials go.
    p.url("authentication.url", &config.authentication.url, false);
    p.mappings("mappings", &config.mappings);
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
    fn every_problem_is_found_from_the_derived_schema() {
        let config = json!({
            "authentication": {"url": 7, "password": "", "token": "x"},
            "properties": {"identifier": "fax"},
            "mappings": [],
            "upsert_mode": "yes"
        });
        let mut found: Vec<String> = validate::<Dotdigital>(&config.to_string())
            .into_iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect();
        found.sort();
        assert_eq!(
            found,
            [
                "authentication.password: must not be empty",
                "authentication.token: unknown field (expected one of: password, url, username)",
                "authentication.url: must be a string",
                "authentication.username: is required",
                "mappings: must not be empty",
                "properties.identifier: must be one of: email, mobileNumber, contactId",
                "upsert_mode: must be true or false",
            ]
        );
    }

    #[test]
    fn secrets_are_write_only_in_the_schema() {
        use prefsync_sdk::Connector;
        let schema = Dotdigital::config_schema();
        let auth = &schema["properties"]["authentication"]["properties"];
        assert_eq!(auth["username"]["writeOnly"], true);
        assert_eq!(auth["password"]["writeOnly"], true);
        assert_eq!(auth["url"]["format"], "uri");
        assert!(auth["url"].get("writeOnly").is_none());
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
