//! The integration config, in Didomi's integration shape, and what its
//! `mappings` mean for Klaviyo.
//!
//! A mapping's `id` names where a Didomi property goes in Klaviyo, written
//! as the path in Klaviyo's own JSON:
//!
//! - a standard profile attribute (`email`, `phone_number`, `external_id`,
//!   `first_name`, `last_name`, `organization`, `title`, `locale`, `image`);
//! - `subscriptions.email.marketing` / `subscriptions.sms.marketing`: the
//!   channel's marketing consent (true → SUBSCRIBED, false → UNSUBSCRIBED),
//!   sent as subscription jobs to `properties.list_id`;
//! - anything else (or `properties.<name>`): a custom profile property.

use prefsync_sdk::{Mapping, Problems};
use serde::Deserialize;
use serde_json::json;

/// Klaviyo's API revision sent when `properties.revision` is not set: the
/// one Segment's production client pins.
pub const DEFAULT_REVISION: &str = "2025-01-15";

/// `custom_source` of the subscription jobs when the config does not say.
pub const DEFAULT_CUSTOM_SOURCE: &str = "prefsync consent sync";

/// Identifiers a profile can be found by; the `organization_user_id` fills one.
pub const IDENTIFIERS: [&str; 3] = ["email", "phone_number", "external_id"];

/// Standard profile attributes a mapping may write (besides the identifiers).
pub const ATTRIBUTES: [&str; 9] = [
    "email",
    "phone_number",
    "external_id",
    "first_name",
    "last_name",
    "organization",
    "title",
    "locale",
    "image",
];

const EMAIL_CONSENT: &str = "subscriptions.email.marketing";
const SMS_CONSENT: &str = "subscriptions.sms.marketing";

/// A Klaviyo integration.
#[derive(Debug, Clone, Deserialize)]
pub struct KlaviyoConfig {
    /// The private API key.
    pub authentication: Authentication,
    /// Where consent goes and how profiles are matched.
    #[serde(default)]
    pub properties: Properties,
    /// Klaviyo destination (`id`) ← Didomi property (`value`); see the module doc.
    pub mappings: Vec<Mapping>,
    /// Create profiles that do not exist yet; when false they are skipped.
    #[serde(default)]
    pub upsert_mode: bool,
}

/// Credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    /// A private API key (`pk_…`) with the profiles, lists and subscriptions scopes.
    pub private_api_key: String,
}

/// Where and how.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Properties {
    /// The list subscription jobs subscribe profiles to (required when a
    /// consent is mapped).
    #[serde(default)]
    pub list_id: Option<String>,
    /// What the `organization_user_id` is in Klaviyo: `email` (default),
    /// `phone_number` or `external_id`.
    #[serde(default)]
    pub identifier: Option<String>,
    /// The API revision (`YYYY-MM-DD`), [`DEFAULT_REVISION`] unless set.
    #[serde(default)]
    pub revision: Option<String>,
    /// The API base, `https://a.klaviyo.com` unless set (tests point it at a mock).
    #[serde(default)]
    pub api_base: Option<String>,
    /// The subscription jobs' `custom_source`, shown in Klaviyo's consent history.
    #[serde(default)]
    pub custom_source: Option<String>,
}

/// A marketing channel Klaviyo keeps consent for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Email,
    Sms,
}

impl Channel {
    /// The key in Klaviyo's `subscriptions` object.
    pub fn key(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }

    /// The profile attribute that addresses the channel.
    pub fn address(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "phone_number",
        }
    }
}

/// Where a mapping writes in Klaviyo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    /// A standard profile attribute.
    Attribute(&'a str),
    /// A custom profile property.
    Property(&'a str),
    /// A channel's marketing consent.
    Consent(Channel),
}

/// What a mapping `id` means, or why it cannot be used.
pub fn target(id: &str) -> Result<Target<'_>, String> {
    if id == EMAIL_CONSENT {
        return Ok(Target::Consent(Channel::Email));
    }
    if id == SMS_CONSENT {
        return Ok(Target::Consent(Channel::Sms));
    }
    if id.starts_with("subscriptions.") {
        return Err(format!(
            "`{id}` is not a Klaviyo consent; use `{EMAIL_CONSENT}` or `{SMS_CONSENT}`"
        ));
    }
    if let Some(name) = id.strip_prefix("properties.") {
        if name.trim().is_empty() {
            return Err("`properties.` needs a property name after it".into());
        }
        return Ok(Target::Property(name));
    }
    match ATTRIBUTES.iter().find(|a| **a == id) {
        Some(attribute) => Ok(Target::Attribute(attribute)),
        None => Ok(Target::Property(id)),
    }
}

impl KlaviyoConfig {
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

    /// The profile attribute the `organization_user_id` fills.
    pub fn identifier(&self) -> &str {
        self.properties.identifier.as_deref().unwrap_or("email")
    }

    pub fn revision(&self) -> &str {
        self.properties
            .revision
            .as_deref()
            .unwrap_or(DEFAULT_REVISION)
    }

    pub fn custom_source(&self) -> &str {
        self.properties
            .custom_source
            .as_deref()
            .unwrap_or(DEFAULT_CUSTOM_SOURCE)
    }
}

pub fn check(p: &mut Problems<'_>) {
    p.require_string("authentication.private_api_key");
    p.only_keys("authentication", &["private_api_key"]);
    if let Some(properties) = p.get("properties")
        && !properties.is_object()
    {
        p.push("properties", "must be an object");
    }
    let list_id = p.optional_string("properties.list_id");
    if list_id.is_some_and(|l| l.trim().is_empty()) {
        p.push("properties.list_id", "must not be empty");
    }
    let identifier = p
        .optional_string("properties.identifier")
        .unwrap_or("email");
    if !IDENTIFIERS.contains(&identifier) {
        p.push(
            "properties.identifier",
            format!(
                "must be one of {}, not `{identifier}`",
                IDENTIFIERS.join(", ")
            ),
        );
    }
    if let Some(revision) = p.optional_string("properties.revision")
        && !is_revision(revision)
    {
        p.push(
            "properties.revision",
            format!("must be a Klaviyo API revision such as {DEFAULT_REVISION}"),
        );
    }
    if p.get("properties.api_base").is_some() {
        p.require_url("properties.api_base", true);
    }
    p.optional_string("properties.custom_source");
    p.only_keys(
        "properties",
        &[
            "list_id",
            "identifier",
            "revision",
            "api_base",
            "custom_source",
        ],
    );
    p.mappings("mappings", true);
    check_targets(p, identifier, list_id.is_some());
    p.optional_bool("upsert_mode");
}

/// Every mapping `id` must be usable, and each mapped consent must have what
/// it needs: a list to subscribe to, and an address on its channel.
fn check_targets(p: &mut Problems<'_>, identifier: &str, has_list: bool) {
    let Some(entries) = p.get("mappings").and_then(|m| m.as_array()) else {
        return;
    };
    let ids: Vec<&str> = entries
        .iter()
        .map(|e| e.get("id").and_then(|i| i.as_str()).unwrap_or_default())
        .collect();
    for (i, id) in ids.iter().enumerate() {
        if id.trim().is_empty() {
            continue; // `mappings` already said so.
        }
        let at = format!("mappings[{i}].id");
        match target(id) {
            Err(why) => p.push(&at, why),
            Ok(Target::Attribute(attribute)) if attribute == identifier => p.push(
                &at,
                format!(
                    "`{attribute}` is the profile's identifier (properties.identifier), filled from the organization_user_id; do not map it"
                ),
            ),
            Ok(Target::Consent(channel)) => {
                if !has_list {
                    p.push(
                        "properties.list_id",
                        format!("is required to send `{id}` (the list subscription jobs subscribe to)"),
                    );
                }
                let address = channel.address();
                if address != identifier && !ids.contains(&address) {
                    p.push(
                        &at,
                        format!(
                            "`{id}` needs the profile's `{address}`: map `{address}` or set properties.identifier to `{address}`"
                        ),
                    );
                }
            }
            Ok(_) => {}
        }
    }
}

/// `YYYY-MM-DD`, optionally with Klaviyo's `.pre` suffix for beta revisions.
fn is_revision(raw: &str) -> bool {
    let date = raw.strip_suffix(".pre").unwrap_or(raw);
    let bytes = date.as_bytes();
    bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        })
}

pub fn schema() -> serde_json::Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["authentication", "mappings"],
        "properties": {
            "authentication": {
                "type": "object",
                "required": ["private_api_key"],
                "additionalProperties": false,
                "properties": {
                    "private_api_key": {"type": "string", "writeOnly": true,
                                        "description": "Klaviyo private API key (pk_…) with the profiles, lists and subscriptions write scopes"}
                }
            },
            "properties": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "list_id": {"type": "string",
                                "description": "List the subscription jobs subscribe profiles to (required when a consent is mapped)"},
                    "identifier": {"enum": IDENTIFIERS, "default": "email",
                                   "description": "Profile attribute the organization_user_id fills, and lookups use"},
                    "revision": {"type": "string", "default": DEFAULT_REVISION,
                                 "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}(\\.pre)?$",
                                 "description": "Klaviyo API revision header"},
                    "api_base": {"type": "string", "format": "uri", "default": "https://a.klaviyo.com",
                                 "description": "API base URL (a bare host means https)"},
                    "custom_source": {"type": "string", "default": DEFAULT_CUSTOM_SOURCE,
                                      "description": "custom_source of the subscription jobs, shown in Klaviyo's consent history"}
                }
            },
            "mappings": {
                "type": "array", "minItems": 1,
                "items": {"type": "object", "required": ["id", "value"], "additionalProperties": false,
                          "properties": {"id": {"type": "string",
                                                "description": "Klaviyo destination: a profile attribute (email, phone_number, external_id, first_name, …), subscriptions.email.marketing, subscriptions.sms.marketing, or a custom property (properties.<name> or any other name)"},
                                         "value": {"type": "string", "description": "Didomi property"}}}
            },
            "upsert_mode": {"type": "boolean", "default": false,
                            "description": "Create profiles that do not exist yet; when false they are skipped"}
        }
    })
}

#[cfg(test)]
mod tests {
    use prefsync_sdk::connector::validate;

    use super::*;
    use crate::Klaviyo;

    fn problems(config: serde_json::Value) -> Vec<String> {
        validate::<Klaviyo>(&config.to_string())
            .into_iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    #[test]
    fn a_didomi_shaped_config_is_valid() {
        let config = json!({
            "type_id": "klaviyo",
            "id": "kl",
            "enabled": true,
            "authentication": {"private_api_key": "pk_0123456789"},
            "properties": {"list_id": "Xy12Ab", "revision": "2026-04-15"},
            "mappings": [
                {"id": "subscriptions.email.marketing", "value": "consents_purposes_newsletter_enabled"},
                {"id": "phone_number", "value": "metadata_phone"},
                {"id": "subscriptions.sms.marketing", "value": "consents_channels_sms_enabled"},
                {"id": "first_name", "value": "metadata_first_name"},
                {"id": "consent_newsletter", "value": "consents_purposes_newsletter_enabled"}
            ],
            "upsert_mode": true
        });
        assert_eq!(problems(config), Vec::<String>::new());
    }

    #[test]
    fn every_problem_is_named_with_its_field() {
        let config = json!({
            "authentication": {"api_key": "x"},
            "properties": {"identifier": "id", "revision": "latest", "api_base": "ftp://x", "list": "L"},
            "mappings": [
                {"id": "subscriptions.push.marketing", "value": "a"},
                {"id": "subscriptions.sms.marketing", "value": "b"},
                {"id": "properties.", "value": "c"}
            ],
            "upsert_mode": "no"
        });
        let found = problems(config);
        let paths: Vec<&str> = found.iter().map(|p| p.split(':').next().unwrap()).collect();
        assert_eq!(
            paths,
            [
                "authentication.private_api_key",
                "authentication.api_key",
                "properties.identifier",
                "properties.revision",
                "properties.api_base",
                "properties.list",
                "mappings[0].id",
                "properties.list_id",
                "mappings[1].id",
                "mappings[2].id",
                "upsert_mode"
            ],
            "{found:#?}"
        );
        assert!(found[8].contains("map `phone_number`"), "{}", found[8]);
    }

    #[test]
    fn the_identifier_is_not_mapped_and_targets_are_read() {
        let config = json!({
            "authentication": {"private_api_key": "pk"},
            "properties": {"identifier": "external_id"},
            "mappings": [{"id": "external_id", "value": "metadata_id"}]
        });
        assert_eq!(problems(config).len(), 1);
        assert_eq!(target("email"), Ok(Target::Attribute("email")));
        assert_eq!(target("properties.tier"), Ok(Target::Property("tier")));
        assert_eq!(target("tier"), Ok(Target::Property("tier")));
        assert_eq!(
            target("subscriptions.sms.marketing"),
            Ok(Target::Consent(Channel::Sms))
        );
        assert!(is_revision("2024-10-15.pre") && !is_revision("2024-1-15"));
    }
}
