//! The integration config, in Didomi's integration shape, for a Salesforce
//! Marketing Cloud (Engagement) data extension.

use prefsync_sdk::{Mapping, Problems};
use serde::Deserialize;
use serde_json::{Value as Json, json};

/// Salesforce advises at most this many columns per rowset call.
pub const MAX_COLUMNS: usize = 50;

/// An SFMC integration.
#[derive(Debug, Clone, Deserialize)]
pub struct SfmcConfig {
    /// The installed package's API integration (server-to-server).
    pub authentication: Authentication,
    /// The tenant, the data extension and how users are matched.
    pub properties: Properties,
    /// Data-extension column (`id`) ← Didomi property (`value`).
    pub mappings: Vec<Mapping>,
    /// Create rows that do not exist yet; when false they are skipped.
    #[serde(default)]
    pub upsert_mode: bool,
}

/// Credentials of the installed package (client credentials grant).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    pub client_id: String,
    pub client_secret: String,
    /// The business unit's MID; the package's default one when absent.
    #[serde(default)]
    pub account_id: Option<String>,
}

/// Where rows go and how users are matched.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Properties {
    /// The tenant subdomain (`mc…`, 28 characters), as in
    /// `https://{subdomain}.auth.marketingcloudapis.com`.
    pub subdomain: String,
    /// The data extension's external key.
    pub data_extension_key: String,
    /// The data extension's primary-key column holding the `organization_user_id`.
    pub primary_key: String,
    /// A date column set to the time of the user's consent state on every
    /// write, so an opt-out reads "flag false since <date>".
    #[serde(default)]
    pub consent_date_column: Option<String>,
    /// Overrides `https://{subdomain}.auth.marketingcloudapis.com`.
    #[serde(default)]
    pub auth_base_url: Option<String>,
    /// Overrides the REST base the token answer names (`rest_instance_url`).
    #[serde(default)]
    pub rest_base_url: Option<String>,
}

impl SfmcConfig {
    /// The authentication base without a trailing slash.
    pub fn auth_base(&self) -> String {
        match &self.properties.auth_base_url {
            Some(url) => with_scheme(url),
            None => format!(
                "https://{}.auth.marketingcloudapis.com",
                self.properties.subdomain
            ),
        }
    }

    /// The REST base set in the config, without a trailing slash.
    pub fn rest_base_override(&self) -> Option<String> {
        self.properties.rest_base_url.as_deref().map(with_scheme)
    }

    /// The tenant's own REST host: the only one a token answer may send us to.
    pub fn tenant_rest_host(&self) -> String {
        format!(
            "{}.rest.marketingcloudapis.com",
            self.properties.subdomain.to_ascii_lowercase()
        )
    }
}

/// `url` without a trailing slash, https when no scheme was given.
fn with_scheme(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.contains("://") {
        url.to_string()
    } else {
        format!("https://{url}")
    }
}

/// A DNS label: what may go in front of `.auth.marketingcloudapis.com`.
fn is_subdomain(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= 63
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !raw.starts_with('-')
        && !raw.ends_with('-')
}

pub fn check(p: &mut Problems<'_>) {
    p.require_string("authentication.client_id");
    p.require_string("authentication.client_secret");
    p.optional_string("authentication.account_id");
    p.only_keys(
        "authentication",
        &["client_id", "client_secret", "account_id"],
    );
    if let Some(subdomain) = p.require_string("properties.subdomain")
        && !is_subdomain(subdomain)
    {
        // The value is a host name part, never a secret: quoting it helps.
        p.push(
            "properties.subdomain",
            format!(
                "`{subdomain}` is not a tenant subdomain (letters, digits and `-` only, as in mc563885gzs27c5t9-63k636ttgm)"
            ),
        );
    }
    p.require_string("properties.data_extension_key");
    let primary_key = p.require_string("properties.primary_key");
    let date_column = p.optional_string("properties.consent_date_column");
    for url in ["properties.auth_base_url", "properties.rest_base_url"] {
        if p.get(url).is_some_and(|v| !v.is_null()) {
            p.require_url(url, false);
        }
    }
    p.only_keys(
        "properties",
        &[
            "subdomain",
            "data_extension_key",
            "primary_key",
            "consent_date_column",
            "auth_base_url",
            "rest_base_url",
        ],
    );
    p.mappings("mappings", true);
    let columns: Vec<&str> = p
        .get("mappings")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("id").and_then(Json::as_str))
        .collect();
    for (i, column) in columns.iter().enumerate() {
        if Some(*column) == primary_key {
            p.push(
                &format!("mappings[{i}].id"),
                format!(
                    "`{column}` is the primary key, which always holds the organization_user_id"
                ),
            );
        }
        if Some(*column) == date_column {
            p.push(
                &format!("mappings[{i}].id"),
                format!("`{column}` is the consent_date_column, which the connector fills"),
            );
        }
    }
    let total = columns.len() + 1 + usize::from(date_column.is_some());
    if total > MAX_COLUMNS {
        p.push(
            "mappings",
            format!(
                "{total} columns with the primary key (and date column); SFMC takes at most {MAX_COLUMNS} per call"
            ),
        );
    }
    p.optional_bool("upsert_mode");
}

pub fn schema() -> Json {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["authentication", "properties", "mappings"],
        "properties": {
            "authentication": {
                "type": "object",
                "required": ["client_id", "client_secret"],
                "additionalProperties": false,
                "properties": {
                    "client_id": {"type": "string", "writeOnly": true,
                                  "description": "Client id of the installed package's API integration (server-to-server)"},
                    "client_secret": {"type": "string", "writeOnly": true,
                                      "description": "Its client secret"},
                    "account_id": {"type": "string", "writeOnly": true,
                                   "description": "MID of the business unit (the package's default one when absent)"}
                }
            },
            "properties": {
                "type": "object",
                "required": ["subdomain", "data_extension_key", "primary_key"],
                "additionalProperties": false,
                "properties": {
                    "subdomain": {"type": "string", "pattern": "^[A-Za-z0-9-]+$",
                                  "description": "Tenant subdomain (mc…), as in https://{subdomain}.auth.marketingcloudapis.com"},
                    "data_extension_key": {"type": "string",
                                           "description": "External key of the data extension rows are written to"},
                    "primary_key": {"type": "string",
                                    "description": "Primary-key column holding the organization_user_id (e.g. SubscriberKey)"},
                    "consent_date_column": {"type": "string",
                                            "description": "Date column set to the time of the user's consent state on every write (e.g. OptIn_Date)"},
                    "auth_base_url": {"type": "string", "format": "uri",
                                      "description": "Authentication base; https://{subdomain}.auth.marketingcloudapis.com unless set"},
                    "rest_base_url": {"type": "string", "format": "uri",
                                      "description": "REST base; the token answer's rest_instance_url (https://{subdomain}.rest.marketingcloudapis.com) unless set"}
                }
            },
            "mappings": {
                "type": "array", "minItems": 1, "maxItems": MAX_COLUMNS - 1,
                "items": {"type": "object", "required": ["id", "value"], "additionalProperties": false,
                          "properties": {"id": {"type": "string", "description": "Data-extension column (e.g. Newsletter_OptIn)"},
                                         "value": {"type": "string", "description": "Didomi property (e.g. consents_purposes_newsletter_enabled)"}}}
            },
            "upsert_mode": {"type": "boolean", "default": false,
                            "description": "Create rows that do not exist yet; when false, a user without a row is skipped"}
        }
    })
}

#[cfg(test)]
mod tests {
    use prefsync_sdk::connector::validate;

    use crate::Sfmc;

    fn paths(config: serde_json::Value) -> Vec<String> {
        validate::<Sfmc>(&config.to_string())
            .into_iter()
            .map(|p| p.path)
            .collect()
    }

    #[test]
    fn a_full_config_is_valid_and_every_problem_is_named() {
        let good = serde_json::json!({
            "type_id": "sfmc",
            "authentication": {"client_id": "ID", "client_secret": "SECRET", "account_id": "514000123"},
            "properties": {"subdomain": "mc563885gzs27c5t9-63k636ttgm", "data_extension_key": "Consents",
                           "primary_key": "SubscriberKey", "consent_date_column": "OptIn_Date"},
            "mappings": [{"id": "Newsletter_OptIn", "value": "consents_purposes_newsletter_enabled"}],
            "upsert_mode": true
        });
        assert!(paths(good).is_empty());
        assert_eq!(
            paths(serde_json::json!({
                "authentication": {"client_id": "", "secret": "x"},
                "properties": {"subdomain": "evil.com/x?", "primary_key": "SubscriberKey",
                               "consent_date_column": "OptIn_Date", "auth_base_url": "ftp://x", "colour": "red"},
                "mappings": [{"id": "SubscriberKey", "value": "organization_user_id"},
                             {"id": "OptIn_Date", "value": "metadata_date"}],
                "upsert_mode": "yes"
            })),
            [
                "authentication.client_id",
                "authentication.client_secret",
                "authentication.secret",
                "properties.subdomain",
                "properties.data_extension_key",
                "properties.auth_base_url",
                "properties.colour",
                "mappings[0].id",
                "mappings[1].id",
                "upsert_mode"
            ]
        );
    }

    #[test]
    fn too_many_columns_are_refused() {
        let mappings: Vec<_> = (0..50)
            .map(|i| serde_json::json!({"id": format!("C{i}"), "value": "metadata_x"}))
            .collect();
        let config = serde_json::json!({
            "authentication": {"client_id": "ID", "client_secret": "SECRET"},
            "properties": {"subdomain": "mc1", "data_extension_key": "K", "primary_key": "SubscriberKey"},
            "mappings": mappings
        });
        let problems = validate::<Sfmc>(&config.to_string());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, "mappings");
        assert!(problems[0].message.contains("at most 50"));
    }
}
