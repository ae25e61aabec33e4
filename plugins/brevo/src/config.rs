//! The integration config, in the shape of Didomi's integrations.
//!
//! Besides the usual `mappings` (Brevo contact attribute ← Didomi property),
//! the consent side of a Brevo contact has its own fields: the email and SMS
//! blacklists and list membership. `properties` says which Didomi choice
//! drives each of them.

use prefsync_sdk::{Mapping, Problems};
use serde::Deserialize;
use serde_json::{Value as Json, json};

/// A Brevo integration.
#[derive(Debug, Clone, Deserialize)]
pub struct BrevoConfig {
    /// The account's API key.
    pub authentication: Authentication,
    /// Where the contact's email comes from and which choices drive the
    /// blacklists and lists.
    #[serde(default)]
    pub properties: Properties,
    /// Contact attribute (`id`, in Brevo's capitals) ← Didomi property (`value`).
    pub mappings: Vec<Mapping>,
    /// Create contacts that do not exist yet; when false they are skipped.
    #[serde(default)]
    pub upsert_mode: bool,
}

/// Credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    /// A Brevo v3 API key (`xkeysib-…`), sent in the `api-key` header.
    pub api_key: String,
}

/// Optional settings under `properties`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Properties {
    /// API root, `https://api.brevo.com` unless set (the connector adds `/v3/…`).
    #[serde(default)]
    pub api_base: Option<String>,
    /// The Didomi property holding the contact's email; the record's key
    /// (`organization_user_id`) when unset.
    #[serde(default)]
    pub email_property: Option<String>,
    /// The Didomi choice whose `false` blacklists the contact for all email
    /// (`emailBlacklisted: true`) and whose `true` lifts it.
    #[serde(default)]
    pub email_consent: Option<String>,
    /// The same for SMS (`smsBlacklisted`).
    #[serde(default)]
    pub sms_consent: Option<String>,
    /// Brevo lists whose membership follows a Didomi choice.
    #[serde(default)]
    pub lists: Vec<ListMapping>,
}

/// A Brevo list (`list_id`) whose membership follows a Didomi choice
/// (`value`): true adds the contact (`listIds`), false removes it
/// (`unlinkListIds`), no choice leaves it alone.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListMapping {
    pub list_id: u64,
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

const PROPERTY_KEYS: [&str; 5] = [
    "api_base",
    "email_property",
    "email_consent",
    "sms_consent",
    "lists",
];

pub fn check(p: &mut Problems<'_>) {
    p.require_string("authentication.api_key");
    p.only_keys("authentication", &["api_key"]);
    match p.get("properties") {
        None | Some(Json::Null) | Some(Json::Object(_)) => {}
        Some(_) => p.push("properties", "must be an object"),
    }
    if p.get("properties.api_base").is_some() {
        p.require_url("properties.api_base", true);
    }
    for key in ["email_property", "email_consent", "sms_consent"] {
        let path = format!("properties.{key}");
        if let Some(s) = p.optional_string(&path)
            && s.trim().is_empty()
        {
            p.push(&path, "must not be empty (leave it out instead)");
        }
    }
    check_lists(p);
    p.only_keys("properties", &PROPERTY_KEYS);
    p.mappings("mappings", true);
    check_attribute_names(p);
    p.optional_bool("upsert_mode");
    p.optional_bool("enable_webhooks");
    p.optional_bool("enable_emailing");
}

/// `properties.lists`: `[{"list_id": 12, "value": "<Didomi property>"}]`,
/// each list once (a list both added and removed would be ambiguous).
fn check_lists(p: &mut Problems<'_>) {
    let entries = match p.get("properties.lists") {
        None | Some(Json::Null) => return,
        Some(Json::Array(entries)) => entries,
        Some(_) => {
            p.push(
                "properties.lists",
                "must be a list of {\"list_id\", \"value\"}",
            );
            return;
        }
    };
    let mut seen = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("properties.lists[{i}]");
        let Some(obj) = entry.as_object() else {
            p.push(&at, "must be an object {\"list_id\", \"value\"}");
            continue;
        };
        for key in obj.keys().filter(|k| *k != "list_id" && *k != "value") {
            p.push(
                &format!("{at}.{key}"),
                "unknown field (expected `list_id` and `value`)",
            );
        }
        match obj.get("list_id") {
            Some(Json::Number(n)) if n.as_u64().is_some_and(|id| id > 0) => {
                let id = n.as_u64().unwrap_or_default();
                if seen.contains(&id) {
                    p.push(
                        &format!("{at}.list_id"),
                        format!("list {id} is mapped twice"),
                    );
                }
                seen.push(id);
            }
            None | Some(Json::Null) => p.push(&format!("{at}.list_id"), "is required"),
            Some(_) => p.push(
                &format!("{at}.list_id"),
                "must be a Brevo list id (a whole number above 0)",
            ),
        }
        match obj.get("value") {
            Some(Json::String(s)) if !s.trim().is_empty() => {}
            None | Some(Json::Null) => p.push(&format!("{at}.value"), "is required"),
            Some(_) => p.push(
                &format!("{at}.value"),
                "must be a Didomi property such as consents_purposes_newsletter_enabled",
            ),
        }
    }
}

/// Brevo's attribute names are upper case (`FIRSTNAME`); a lower-case
/// mapping id is almost certainly a mistake Brevo would refuse on every
/// delivery, so it is caught when the integration is saved.
fn check_attribute_names(p: &mut Problems<'_>) {
    let Some(Json::Array(entries)) = p.get("mappings") else {
        return;
    };
    for (i, entry) in entries.iter().enumerate() {
        if let Some(id) = entry.get("id").and_then(Json::as_str)
            && id.chars().any(|c| c.is_lowercase())
        {
            p.push(
                &format!("mappings[{i}].id"),
                format!(
                    "Brevo attribute names are in capitals: write `{}`",
                    id.to_uppercase()
                ),
            );
        }
    }
}

pub fn schema() -> Json {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["authentication", "mappings"],
        "properties": {
            "authentication": {
                "type": "object",
                "required": ["api_key"],
                "additionalProperties": false,
                "properties": {
                    "api_key": {"type": "string", "writeOnly": true,
                                "description": "Brevo v3 API key (xkeysib-…), sent in the api-key header"}
                }
            },
            "properties": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "api_base": {"type": "string", "format": "uri", "default": DEFAULT_BASE,
                                 "description": "API root; the connector adds /v3/contacts"},
                    "email_property": {"type": "string",
                                       "description": "Didomi property holding the contact's email (default: the record's key, organization_user_id)"},
                    "email_consent": {"type": "string",
                                      "description": "Didomi choice whose false sets emailBlacklisted (unsubscribed from all email) and whose true lifts it"},
                    "sms_consent": {"type": "string",
                                    "description": "Didomi choice whose false sets smsBlacklisted and whose true lifts it"},
                    "lists": {
                        "type": "array",
                        "description": "Brevo lists whose membership follows a Didomi choice: true adds, false removes",
                        "items": {"type": "object", "required": ["list_id", "value"], "additionalProperties": false,
                                  "properties": {"list_id": {"type": "integer", "minimum": 1, "description": "Brevo list id"},
                                                 "value": {"type": "string", "description": "Didomi property (a consent choice)"}}}
                    }
                }
            },
            "mappings": {
                "type": "array", "minItems": 1,
                "items": {"type": "object", "required": ["id", "value"], "additionalProperties": false,
                          "properties": {"id": {"type": "string", "description": "Brevo contact attribute, in capitals (NEWSLETTER_OPTIN)"},
                                         "value": {"type": "string", "description": "Didomi property"}}}
            },
            "upsert_mode": {"type": "boolean", "default": false,
                            "description": "Create contacts that do not exist yet; when false they are skipped"},
            "enable_webhooks": {"type": "boolean", "default": false,
                                "description": "Accepted for Didomi compatibility; this connector reads no webhooks"},
            "enable_emailing": {"type": "boolean", "default": false,
                                "description": "Accepted for Didomi compatibility; prefsync sends no email"}
        }
    })
}

#[cfg(test)]
mod tests {
    use prefsync_sdk::connector::{parse_config, validate};

    use crate::Brevo;

    fn paths(config: serde_json::Value) -> Vec<String> {
        validate::<Brevo>(&config.to_string())
            .into_iter()
            .map(|p| p.path)
            .collect()
    }

    #[test]
    fn a_full_config_is_valid_and_read() {
        let config = serde_json::json!({
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
        let minimal = serde_json::json!({
            "authentication": {"api_key": "k"},
            "mappings": [{"id": "OPTIN", "value": "consents_purposes_newsletter_enabled"}]
        });
        assert!(paths(minimal.clone()).is_empty());
        let parsed = parse_config::<Brevo>(&minimal.to_string()).unwrap();
        assert_eq!(parsed.base_url(), "https://api.brevo.com");
        assert!(!parsed.upsert_mode);
    }

    #[test]
    fn every_problem_is_named_by_its_path() {
        assert_eq!(
            paths(serde_json::json!({
                "authentication": {"apikey": "x"},
                "properties": {
                    "api_base": "ftp://x",
                    "email_consent": "",
                    "lists": [{"list_id": 0, "value": "a"}, {"list_id": 3}, {"list_id": 3, "value": 1, "name": "x"}],
                    "colour": "blue"
                },
                "mappings": [{"id": "newsletter", "value": "consents_purposes_newsletter_enabled"}],
                "upsert_mode": "yes"
            })),
            [
                "authentication.api_key",
                "authentication.apikey",
                "properties.api_base",
                "properties.email_consent",
                "properties.lists[0].list_id",
                "properties.lists[1].value",
                "properties.lists[2].name",
                "properties.lists[2].list_id",
                "properties.lists[2].value",
                "properties.colour",
                "mappings[0].id",
                "upsert_mode"
            ]
        );
        let problems = validate::<Brevo>(
            &serde_json::json!({"authentication": {"api_key": "k"},
                "mappings": [{"id": "optin", "value": "x"}]})
            .to_string(),
        );
        assert_eq!(
            problems[0].message,
            "Brevo attribute names are in capitals: write `OPTIN`"
        );
    }
}
