//! The integration config, in the shape of Didomi's integrations.
//!
//! Besides the usual `mappings` (Brevo contact attribute ← Didomi property),
//! the consent side of a Brevo contact has its own fields: the email and SMS
//! blacklists and list membership. `properties` says which Didomi choice
//! drives each of them.
//!
//! The types are the one description of the config: serde reads them, and
//! the JSON Schema the host checks and the console draws is derived from them.

use prefsync_sdk::{Mapping, Problems};
use schemars::JsonSchema;
use serde::Deserialize;

/// A Brevo integration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct BrevoConfig {
    /// The account's API key.
    pub authentication: Authentication,
    /// Where the contact's email comes from and which choices drive the
    /// blacklists and lists.
    #[serde(default)]
    pub properties: Properties,
    /// Contact attribute (`id`, in Brevo's capitals: `NEWSLETTER_OPTIN`) ←
    /// Didomi property (`value`).
    #[schemars(length(min = 1))]
    pub mappings: Vec<Mapping>,
    /// Create contacts that do not exist yet; when false they are skipped.
    #[serde(default)]
    pub upsert_mode: bool,
    /// Accepted for Didomi compatibility; this connector reads no webhooks.
    #[serde(default)]
    pub enable_webhooks: Option<bool>,
    /// Accepted for Didomi compatibility; prefsync sends no email.
    #[serde(default)]
    pub enable_emailing: Option<bool>,
}

/// Credentials.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    /// A Brevo v3 API key (`xkeysib-…`), sent in the `api-key` header.
    #[schemars(extend("writeOnly" = true), length(min = 1))]
    pub api_key: String,
}

/// Optional settings under `properties`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Properties {
    /// API root, `https://api.brevo.com` unless set (the connector adds
    /// `/v3/…`; a bare host means https).
    // Left out when not used: the schema says `string` (null is refused, as
    // the hand-written check did), serde reads it into an `Option`.
    #[serde(default)]
    #[schemars(with = "String", url, length(min = 1), extend("default" = DEFAULT_BASE))]
    pub api_base: Option<String>,
    /// The Didomi property holding the contact's email; the record's key
    /// (`organization_user_id`) when unset.
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub email_property: Option<String>,
    /// The Didomi choice whose `false` blacklists the contact for all email
    /// (`emailBlacklisted: true`) and whose `true` lifts it.
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub email_consent: Option<String>,
    /// The same for SMS (`smsBlacklisted`).
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub sms_consent: Option<String>,
    /// Brevo lists whose membership follows a Didomi choice: true adds,
    /// false removes; each list once.
    #[serde(default)]
    pub lists: Vec<ListMapping>,
}

/// A Brevo list (`list_id`) whose membership follows a Didomi choice
/// (`value`): true adds the contact (`listIds`), false removes it
/// (`unlinkListIds`), no choice leaves it alone.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListMapping {
    /// The Brevo list id.
    #[schemars(range(min = 1))]
    pub list_id: u64,
    /// The Didomi property (a consent choice), e.g.
    /// `consents_purposes_newsletter_enabled`.
    #[schemars(length(min = 1))]
    pub value: String,
}

/// Brevo's one API host.
pub const DEFAULT_BASE: &str = "https://api.brevo.com";

impl BrevoConfig {
    /// The API root without a trailing slash, https when no scheme was given.
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

/// The rules the schema cannot say.
pub fn check(config: &BrevoConfig, p: &mut Problems) {
    // Blank is empty: the schema's `minLength` counts the spaces.
    if config.authentication.api_key.trim().is_empty() {
        p.push("authentication.api_key", "must not be empty");
    }
    let properties = &config.properties;
    if let Some(api_base) = &properties.api_base {
        p.url("properties.api_base", api_base, true);
    }
    for (key, value) in [
        ("email_property", &properties.email_property),
        ("email_consent", &properties.email_consent),
        ("sms_consent", &properties.sms_consent),
    ] {
        if value.as_deref().is_some_and(|s| s.trim().is_empty()) {
            p.push(
                &format!("properties.{key}"),
                "must not be empty (leave it out instead)",
            );
        }
    }
    check_lists(&properties.lists, p);
    p.mappings("mappings", &config.mappings);
    check_attribute_names(&config.mappings, p);
}

/// `properties.lists`: each list once (a list both added and removed would
/// be ambiguous), each with a Didomi property.
fn check_lists(lists: &[ListMapping], p: &mut Problems) {
    let mut seen = Vec::new();
    for (i, list) in lists.iter().enumerate() {
        let at = format!("properties.lists[{i}]");
        if seen.contains(&list.list_id) {
            p.push(
                &format!("{at}.list_id"),
                format!("list {} is mapped twice", list.list_id),
            );
        }
        seen.push(list.list_id);
        if list.value.trim().is_empty() {
            p.push(&format!("{at}.value"), "must not be empty");
        }
    }
}

/// Brevo's attribute names are upper case (`FIRSTNAME`); a lower-case
/// mapping id is almost certainly a mistake Brevo would refuse on every
/// delivery, so it is caught when the integration is saved.
fn check_attribute_names(mappings: &[Mapping], p: &mut Problems) {
    for (i, mapping) in mappings.iter().enumerate() {
        if mapping.id.chars().any(|c| c.is_lowercase()) {
            p.push(
                &format!("mappings[{i}].id"),
                format!(
                    "Brevo attribute names are in capitals: write `{}`",
                    mapping.id.to_uppercase()
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use prefsync_sdk::Connector;
    use prefsync_sdk::connector::{parse_config, validate};
    use serde_json::json;

    use crate::Brevo;

    fn paths(config: serde_json::Value) -> Vec<String> {
        validate::<Brevo>(&config.to_string())
            .into_iter()
            .map(|p| p.path)
            .collect()
    }

    fn shown(config: serde_json::Value) -> Vec<String> {
        validate::<Brevo>(&config.to_string())
            .into_iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    #[test]
    fn a_full_config_is_valid_and_read() {
        let config = json!({
            "type_id": "brevo",
            "authentication": {"api_key": "xkeysib-0123"},
            "properties": {
                "api_base": "api.brevo.com",
                "email_property": "metadata_email",
                "email_consent": "consents_channels_email_enabled",
                "sms_consent": "consents_channels_sms_enabled",
                "lists": [{"list_id": 12, "value": "consents_purposes_newsletter_enabled"}]
            },
            "mappings": [{"id": "NEWSLETTER_OPTIN", "value": "consents_purposes_newsletter_enabled"}],
            "upsert_mode": true,
            "enable_webhooks": false,
            "enable_emailing": false
        });
        assert!(paths(config.clone()).is_empty());
        let parsed = parse_config::<Brevo>(&config.to_string()).unwrap();
        assert_eq!(parsed.base_url(), "https://api.brevo.com");
        assert_eq!(parsed.properties.lists[0].list_id, 12);
        // `properties` may be left out entirely.
        let minimal = json!({
            "authentication": {"api_key": "k"},
            "mappings": [{"id": "OPTIN", "value": "consents_purposes_newsletter_enabled"}]
        });
        assert!(paths(minimal.clone()).is_empty());
        let parsed = parse_config::<Brevo>(&minimal.to_string()).unwrap();
        assert_eq!(parsed.base_url(), "https://api.brevo.com");
        assert!(!parsed.upsert_mode);
        // Optional choices and Didomi's flags may be null, as before.
        let nulls = json!({
            "authentication": {"api_key": "k"},
            "properties": {"email_property": null, "email_consent": null, "sms_consent": null},
            "mappings": [{"id": "OPTIN", "value": "consents_purposes_newsletter_enabled"}],
            "enable_webhooks": null,
            "enable_emailing": null
        });
        assert!(paths(nulls).is_empty());
    }

    #[test]
    fn every_problem_the_schema_says_is_named_at_once() {
        assert_eq!(
            shown(json!({
                "authentication": {"apikey": "x"},
                "properties": {
                    "api_base": null,
                    "email_consent": "",
                    "sms_consent": 3,
                    "lists": [{"list_id": 0, "value": "a"}, {"list_id": 3}, {"list_id": "3", "value": 1, "name": "x"}],
                    "colour": "blue"
                },
                "mappings": [{"id": "NEWSLETTER", "value": ""}],
                "upsert_mode": "yes",
                "enable_webhooks": "no",
                "enable_emailing": 1
            })),
            [
                "authentication.api_key: is required",
                "authentication.apikey: unknown field (expected one of: api_key)",
                "enable_emailing: must be true or false",
                "enable_webhooks: must be true or false",
                "mappings[0].value: must not be empty",
                "properties.api_base: must be a string",
                "properties.colour: unknown field (expected one of: api_base, email_consent, email_property, lists, sms_consent)",
                "properties.email_consent: must not be empty",
                "properties.lists[0].list_id: must be at least 1",
                "properties.lists[1].value: is required",
                "properties.lists[2].list_id: must be a whole number",
                "properties.lists[2].name: unknown field (expected one of: list_id, value)",
                "properties.lists[2].value: must be a string",
                "properties.sms_consent: must be a string",
                "upsert_mode: must be true or false",
            ]
        );
        assert_eq!(
            shown(
                json!({"authentication": {"api_key": ""}, "properties": {"lists": {}}, "mappings": []})
            ),
            [
                "authentication.api_key: must not be empty",
                "mappings: must not be empty",
                "properties.lists: must be a list",
            ]
        );
    }

    #[test]
    fn every_problem_only_check_can_see_is_named_at_once() {
        assert_eq!(
            shown(json!({
                "authentication": {"api_key": " "},
                "properties": {
                    "api_base": "ftp://x",
                    "email_property": "  ",
                    "lists": [{"list_id": 3, "value": "a"}, {"list_id": 3, "value": " "}]
                },
                "mappings": [{"id": "newsletter", "value": "consents_purposes_newsletter_enabled"},
                             {"id": "newsletter", "value": "consents_purposes_offers_enabled"}]
            })),
            [
                "authentication.api_key: must not be empty",
                "properties.api_base: must be an https URL, not a `ftp` URL",
                "properties.email_property: must not be empty (leave it out instead)",
                "properties.lists[1].list_id: list 3 is mapped twice",
                "properties.lists[1].value: must not be empty",
                "mappings[1].id: `newsletter` is mapped twice",
                "mappings[0].id: Brevo attribute names are in capitals: write `NEWSLETTER`",
                "mappings[1].id: Brevo attribute names are in capitals: write `NEWSLETTER`",
            ]
        );
        for bad in ["", "javascript:alert(1)", "https://user:pw@api.brevo.com"] {
            assert_eq!(
                paths(json!({"authentication": {"api_key": "k"},
                    "properties": {"api_base": bad},
                    "mappings": [{"id": "OPTIN", "value": "x"}]})),
                ["properties.api_base"],
                "{bad}"
            );
        }
    }

    #[test]
    fn the_secret_is_write_only_and_the_api_base_a_uri_in_the_schema() {
        let schema = Brevo::config_schema();
        let auth = &schema["properties"]["authentication"]["properties"];
        assert_eq!(auth["api_key"]["writeOnly"], true);
        let properties = &schema["properties"]["properties"]["properties"];
        assert_eq!(properties["api_base"]["format"], "uri");
        assert_eq!(properties["api_base"]["default"], "https://api.brevo.com");
        assert!(properties["api_base"].get("writeOnly").is_none());
        let text = schema.to_string();
        assert_eq!(text.matches("\"format\":\"uri\"").count(), 1, "{text}");
        assert_eq!(text.matches("\"writeOnly\":true").count(), 1, "{text}");
    }
}
