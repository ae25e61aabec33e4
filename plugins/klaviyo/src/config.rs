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
//!
//! The types are the one description of the config: serde reads them and
//! the JSON Schema the host checks and the console draws is derived from
//! them; `check` holds the rules a schema cannot say.

use prefsync_sdk::{Mapping, Problems};
use schemars::JsonSchema;
use serde::Deserialize;

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
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct KlaviyoConfig {
    /// The private API key.
    pub authentication: Authentication,
    /// Where consent goes and how profiles are matched.
    #[serde(default)]
    pub properties: Properties,
    /// Klaviyo destination (`id`) ← Didomi property (`value`). A destination is
    /// a profile attribute (email, phone_number, external_id, first_name, …),
    /// `subscriptions.email.marketing`, `subscriptions.sms.marketing`, or a
    /// custom property (`properties.<name>` or any other name).
    #[schemars(length(min = 1))]
    pub mappings: Vec<Mapping>,
    /// Create profiles that do not exist yet; when false they are skipped.
    #[serde(default)]
    #[schemars(extend("default" = false))]
    pub upsert_mode: bool,
}

/// Credentials.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    /// Klaviyo private API key (`pk_…`) with the profiles, lists and
    /// subscriptions write scopes.
    #[schemars(extend("writeOnly" = true), length(min = 1))]
    pub private_api_key: String,
}

/// Where and how.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Properties {
    /// The list the subscription jobs subscribe profiles to (required when a
    /// consent is mapped).
    #[serde(default)]
    // No `default` in the schema: unset means "not used".
    #[schemars(
        skip_serializing_if = "Option::is_none",
        with = "String",
        length(min = 1)
    )]
    pub list_id: Option<String>,
    /// The profile attribute the `organization_user_id` fills, and lookups
    /// use (`email` when not set).
    #[serde(default)]
    #[schemars(with = "Identifier", extend("default" = "email"))]
    pub identifier: Option<Identifier>,
    /// The Klaviyo API revision header (`YYYY-MM-DD`, `.pre` for a beta).
    #[serde(default)]
    #[schemars(
        with = "String",
        regex(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}(\.pre)?$"),
        extend("default" = DEFAULT_REVISION)
    )]
    pub revision: Option<String>,
    /// The API base URL, `https://a.klaviyo.com` unless set (a bare host means
    /// https; tests point it at a mock).
    #[serde(default)]
    #[schemars(with = "String", url, extend("default" = "https://a.klaviyo.com"))]
    pub api_base: Option<String>,
    /// The subscription jobs' `custom_source`, shown in Klaviyo's consent history.
    #[serde(default)]
    #[schemars(with = "String", extend("default" = DEFAULT_CUSTOM_SOURCE))]
    pub custom_source: Option<String>,
}

/// What the `organization_user_id` is in Klaviyo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Identifier {
    /// The profile's email address.
    Email,
    /// The profile's phone number (E.164).
    PhoneNumber,
    /// The profile's id in the customer's own systems.
    ExternalId,
}

impl Identifier {
    /// The profile attribute's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Identifier::Email => "email",
            Identifier::PhoneNumber => "phone_number",
            Identifier::ExternalId => "external_id",
        }
    }
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
    pub fn identifier(&self) -> &'static str {
        self.properties
            .identifier
            .unwrap_or(Identifier::Email)
            .as_str()
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

/// The rules the schema cannot say.
pub fn check(config: &KlaviyoConfig, p: &mut Problems) {
    if config.authentication.private_api_key.trim().is_empty() {
        p.push("authentication.private_api_key", "must not be empty");
    }
    let list_id = config.properties.list_id.as_deref();
    if list_id.is_some_and(|l| l.trim().is_empty()) {
        p.push("properties.list_id", "must not be empty");
    }
    if let Some(base) = &config.properties.api_base {
        p.url("properties.api_base", base, true);
    }
    p.mappings("mappings", &config.mappings);
    check_targets(p, &config.mappings, config.identifier(), list_id.is_some());
}

/// Every mapping `id` must be usable, and each mapped consent must have what
/// it needs: a list to subscribe to, and an address on its channel.
fn check_targets(p: &mut Problems, mappings: &[Mapping], identifier: &str, has_list: bool) {
    let ids: Vec<&str> = mappings.iter().map(|m| m.id.as_str()).collect();
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

#[cfg(test)]
mod tests {
    use prefsync_sdk::connector::validate;
    use serde_json::json;

    use super::*;
    use crate::Klaviyo;

    fn problems(config: serde_json::Value) -> Vec<String> {
        validate::<Klaviyo>(&config.to_string())
            .into_iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    fn with_properties(properties: serde_json::Value) -> serde_json::Value {
        json!({
            "authentication": {"private_api_key": "pk_0123"},
            "properties": properties,
            "mappings": [{"id": "first_name", "value": "metadata_first_name"}]
        })
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
        let all_properties = with_properties(json!({
            "list_id": "L",
            "identifier": "phone_number",
            "revision": "2024-10-15.pre",
            "api_base": "http://127.0.0.1:9999/",
            "custom_source": ""
        }));
        assert_eq!(problems(all_properties), Vec::<String>::new());
        assert_eq!(
            problems(with_properties(json!({"api_base": "a.klaviyo.com"}))),
            Vec::<String>::new()
        );
    }

    #[test]
    fn every_schema_problem_is_named_with_its_field() {
        let config = json!({
            "authentication": {"api_key": "x"},
            "properties": {"identifier": "id", "revision": "latest", "api_base": 5, "list": "L", "list_id": "", "custom_source": null},
            "mappings": [{"id": "a", "value": ""}, {"id": 1, "value": "b"}, {"id": "c"}],
            "upsert_mode": "no"
        });
        assert_eq!(
            problems(config),
            [
                "authentication.api_key: unknown field (expected one of: private_api_key)",
                "authentication.private_api_key: is required",
                "mappings[0].value: must not be empty",
                "mappings[1].id: must be a string",
                "mappings[2].value: is required",
                "properties.api_base: must be a string",
                "properties.custom_source: must be a string",
                "properties.identifier: must be one of: email, phone_number, external_id",
                "properties.list: unknown field (expected one of: api_base, custom_source, identifier, list_id, revision)",
                "properties.list_id: must not be empty",
                r"properties.revision: does not have the expected form (pattern `^[0-9]{4}-[0-9]{2}-[0-9]{2}(\.pre)?$`)",
                "upsert_mode: must be true or false",
            ]
        );
        let no_mappings = json!({"authentication": {"private_api_key": "pk"}});
        assert_eq!(problems(no_mappings), ["mappings: is required"]);
        let empty =
            json!({"authentication": {"private_api_key": ""}, "mappings": [], "properties": "x"});
        assert_eq!(
            problems(empty),
            [
                "authentication.private_api_key: must not be empty",
                "mappings: must not be empty",
                "properties: must be an object",
            ]
        );
        for revision in ["2024-1-15", "2024-10-15.beta", "x2024-10-15"] {
            assert_eq!(
                problems(with_properties(json!({"revision": revision}))).len(),
                1,
                "{revision}"
            );
        }
    }

    #[test]
    fn every_rule_the_schema_cannot_say_is_checked() {
        let config = json!({
            "authentication": {"private_api_key": "  "},
            "properties": {"api_base": "ftp://x"},
            "mappings": [
                {"id": "subscriptions.push.marketing", "value": "a"},
                {"id": "subscriptions.sms.marketing", "value": "b"},
                {"id": "properties.", "value": "c"},
                {"id": "email", "value": "d"},
                {"id": "properties.", "value": " "}
            ]
        });
        let found = problems(config);
        let paths: Vec<&str> = found.iter().map(|p| p.split(':').next().unwrap()).collect();
        assert_eq!(
            paths,
            [
                "authentication.private_api_key",
                "properties.api_base",
                "mappings[4].value",
                "mappings[4].id",
                "mappings[0].id",
                "properties.list_id",
                "mappings[1].id",
                "mappings[2].id",
                "mappings[3].id",
                "mappings[4].id",
            ],
            "{found:#?}"
        );
        assert!(found[6].contains("map `phone_number`"), "{}", found[6]);
        assert!(found[8].contains("do not map it"), "{}", found[8]);
        assert_eq!(
            problems(with_properties(json!({"list_id": " "}))),
            ["properties.list_id: must not be empty"]
        );
        for bad in ["javascript:alert(1)", "https://user:pw@a.klaviyo.com", ""] {
            let found = problems(with_properties(json!({"api_base": bad})));
            assert_eq!(found.len(), 1, "{bad}: {found:?}");
            assert!(found[0].starts_with("properties.api_base: "), "{found:?}");
            assert!(!found[0].contains("user:pw"), "{found:?}");
        }
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
    }

    #[test]
    fn the_key_is_write_only_and_the_api_base_a_uri_in_the_schema() {
        use prefsync_sdk::Connector;
        let schema = Klaviyo::config_schema();
        let key = &schema["properties"]["authentication"]["properties"]["private_api_key"];
        assert_eq!(key["writeOnly"], true);
        let properties = &schema["properties"]["properties"]["properties"];
        assert_eq!(properties["api_base"]["format"], "uri");
        assert!(properties["api_base"].get("writeOnly").is_none());
        // The only secret and the only URL.
        let text = schema.to_string();
        assert_eq!(text.matches("\"writeOnly\"").count(), 1, "{schema:#}");
        assert_eq!(text.matches("\"format\":\"uri\"").count(), 1, "{schema:#}");
        assert_eq!(schema["required"], json!(["authentication", "mappings"]));
    }
}
