//! The integration config, in Didomi's integration shape: a private-app
//! token, contact properties in `mappings`, and the subscription types whose
//! status follows a consent choice in `properties.subscriptions`.

use prefsync_sdk::{Mapping, Problems};
use serde::Deserialize;
use serde_json::{Value as Json, json};

/// A HubSpot integration.
#[derive(Debug, Clone, Deserialize)]
pub struct HubSpotConfig {
    /// The private app's access token.
    pub authentication: Authentication,
    /// Where, who, and which subscriptions.
    #[serde(default)]
    pub properties: Properties,
    /// Contact property (`id`) ← Didomi property (`value`).
    #[serde(default)]
    pub mappings: Vec<Mapping>,
    /// Create contacts that do not exist yet; when false they are skipped.
    #[serde(default)]
    pub upsert_mode: bool,
}

/// Credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    /// A private app's access token (`pat-…`), sent as `Authorization: Bearer`.
    pub access_token: String,
}

/// Optional settings under `properties`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Properties {
    /// API base, `https://api.hubapi.com` unless set (tests point it at a mock).
    #[serde(default)]
    pub api_base: Option<String>,
    /// The Didomi property holding the contact's email; the user's
    /// `organization_user_id` when unset.
    #[serde(default)]
    pub email_property: Option<String>,
    /// Subscription type (`id`, HubSpot's numeric `subscriptionId`) ← Didomi
    /// consent choice (`value`): its status follows the choice.
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionMapping>,
    /// The legal basis sent with every subscription status change.
    #[serde(default)]
    pub legal_basis: Option<String>,
    /// Why that basis applies, as HubSpot records it.
    #[serde(default)]
    pub legal_basis_explanation: Option<String>,
    /// The HubSpot account's time zone (IANA name), whose midnight resets
    /// the daily API limit; UTC when unset.
    #[serde(default)]
    pub time_zone: Option<String>,
}

/// One subscription type and the consent choice it follows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionMapping {
    /// HubSpot's `subscriptionId`, as a number or a string of digits.
    #[serde(deserialize_with = "subscription_id")]
    pub id: u64,
    /// The Didomi property, e.g. `consents_purposes_newsletter_enabled`.
    pub value: String,
}

fn subscription_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match Json::deserialize(d)? {
        Json::Number(n) => n
            .as_u64()
            .ok_or_else(|| serde::de::Error::custom("a subscription id is a whole number")),
        Json::String(s) => s
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom("a subscription id is a whole number")),
        _ => Err(serde::de::Error::custom(
            "a subscription id is a whole number",
        )),
    }
}

/// HubSpot's one API host, for every region.
pub const DEFAULT_HOST: &str = "api.hubapi.com";
/// The basis Didomi's consent collection gives: consent, with a notice shown.
pub const DEFAULT_LEGAL_BASIS: &str = "CONSENT_WITH_NOTICE";
pub const DEFAULT_LEGAL_BASIS_EXPLANATION: &str =
    "Consent collected with Didomi and synchronised by prefsync";
/// Legal bases HubSpot documents; it may accept more (its list is not
/// published in full), so any upper-case name is accepted and these are
/// only shown in the schema.
pub const KNOWN_LEGAL_BASES: [&str; 8] = [
    "CONSENT_WITH_NOTICE",
    "CONSENT_WITHOUT_NOTICE",
    "LEGITIMATE_INTEREST_PQL",
    "LEGITIMATE_INTEREST_CLIENT",
    "LEGITIMATE_INTEREST_OTHER",
    "PERFORMANCE_OF_CONTRACT",
    "PROCESS_AND_STORE",
    "NON_GDPR",
];

impl HubSpotConfig {
    /// The API base without a trailing slash, https when no scheme was given.
    pub fn base_url(&self) -> String {
        let base = self
            .properties
            .api_base
            .as_deref()
            .unwrap_or(DEFAULT_HOST)
            .trim()
            .trim_end_matches('/');
        if base.contains("://") {
            base.to_string()
        } else {
            format!("https://{base}")
        }
    }

    pub fn legal_basis(&self) -> &str {
        self.properties
            .legal_basis
            .as_deref()
            .unwrap_or(DEFAULT_LEGAL_BASIS)
    }

    pub fn legal_basis_explanation(&self) -> &str {
        self.properties
            .legal_basis_explanation
            .as_deref()
            .unwrap_or(DEFAULT_LEGAL_BASIS_EXPLANATION)
    }

    /// The account's time zone; `check` made sure it is known.
    pub fn time_zone(&self) -> jiff::tz::TimeZone {
        match self.properties.time_zone.as_deref() {
            Some(name) => jiff::tz::TimeZone::get(name).unwrap_or(jiff::tz::TimeZone::UTC),
            None => jiff::tz::TimeZone::UTC,
        }
    }

    /// The name of that time zone, for messages.
    pub fn time_zone_name(&self) -> &str {
        self.properties.time_zone.as_deref().unwrap_or("UTC")
    }
}

pub fn check(p: &mut Problems<'_>) {
    p.require_string("authentication.access_token");
    p.only_keys("authentication", &["access_token"]);
    if p.get("properties.api_base").is_some() {
        p.require_url("properties.api_base", true);
    }
    p.optional_string("properties.email_property");
    check_subscriptions(p);
    if let Some(basis) = p.optional_string("properties.legal_basis")
        && (basis.is_empty() || !basis.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
    {
        p.push(
            "properties.legal_basis",
            format!(
                "must be one of HubSpot's legal bases in upper case, such as {}",
                KNOWN_LEGAL_BASES.join(", ")
            ),
        );
    }
    p.optional_string("properties.legal_basis_explanation");
    if let Some(zone) = p.optional_string("properties.time_zone")
        && jiff::tz::TimeZone::get(zone).is_err()
    {
        p.push(
            "properties.time_zone",
            format!(
                "`{zone}` is not a known time zone (an IANA name such as Europe/Paris, or UTC)"
            ),
        );
    }
    p.only_keys(
        "properties",
        &[
            "api_base",
            "email_property",
            "subscriptions",
            "legal_basis",
            "legal_basis_explanation",
            "time_zone",
        ],
    );
    p.mappings("mappings", false);
    let maps_nothing = |p: &Problems<'_>, path: &str| {
        p.get(path)
            .and_then(Json::as_array)
            .is_none_or(|entries| entries.is_empty())
    };
    if maps_nothing(p, "mappings") && maps_nothing(p, "properties.subscriptions") {
        p.push(
            "mappings",
            "map at least one contact property here or one subscription in properties.subscriptions",
        );
    }
    p.optional_bool("upsert_mode");
}

/// `properties.subscriptions`: `{id, value}` entries, `id` a subscription id
/// (a whole number, as a number or a string), each id once.
fn check_subscriptions(p: &mut Problems<'_>) {
    const PATH: &str = "properties.subscriptions";
    let entries = match p.get(PATH) {
        None | Some(Json::Null) => return,
        Some(Json::Array(entries)) => entries,
        Some(_) => {
            p.push(PATH, "must be a list of {\"id\", \"value\"}");
            return;
        }
    };
    // `mappings` checks the shape of `{id, value}` entries; ids are numbers here.
    let mut seen = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("{PATH}[{i}]");
        let Some(obj) = entry.as_object() else {
            p.push(&at, "must be an object {\"id\", \"value\"}");
            continue;
        };
        for key in obj.keys().filter(|k| *k != "id" && *k != "value") {
            p.push(
                &format!("{at}.{key}"),
                "unknown field (expected `id` and `value`)",
            );
        }
        let id = match obj.get("id") {
            Some(Json::Number(n)) => n.as_u64(),
            Some(Json::String(s)) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        match id {
            None => p.push(
                &format!("{at}.id"),
                "must be HubSpot's subscription id, a whole number",
            ),
            Some(id) if seen.contains(&id) => p.push(
                &format!("{at}.id"),
                format!("subscription {id} is mapped twice"),
            ),
            Some(id) => seen.push(id),
        }
        match obj.get("value") {
            Some(Json::String(s)) if !s.trim().is_empty() => {}
            _ => p.push(
                &format!("{at}.value"),
                "must name the Didomi consent choice, e.g. consents_purposes_newsletter_enabled",
            ),
        }
    }
}

pub fn schema() -> serde_json::Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["authentication"],
        "properties": {
            "authentication": {
                "type": "object",
                "required": ["access_token"],
                "additionalProperties": false,
                "properties": {
                    "access_token": {"type": "string", "writeOnly": true,
                                     "description": "Private app access token (scopes crm.objects.contacts.write, communication_preferences.write)"}
                }
            },
            "properties": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "api_base": {"type": "string", "format": "uri", "default": "https://api.hubapi.com",
                                 "description": "API base; HubSpot has one host for every region"},
                    "email_property": {"type": "string",
                                       "description": "Didomi property holding the contact's email (default: the organization_user_id)"},
                    "subscriptions": {
                        "type": "array",
                        "items": {"type": "object", "required": ["id", "value"], "additionalProperties": false,
                                  "properties": {"id": {"type": ["integer", "string"], "description": "HubSpot subscription id"},
                                                 "value": {"type": "string", "description": "Didomi consent choice it follows"}}}
                    },
                    "legal_basis": {"type": "string", "default": DEFAULT_LEGAL_BASIS, "examples": KNOWN_LEGAL_BASES,
                                    "description": "Legal basis sent with each subscription status change"},
                    "legal_basis_explanation": {"type": "string", "default": DEFAULT_LEGAL_BASIS_EXPLANATION},
                    "time_zone": {"type": "string", "default": "UTC",
                                  "description": "The HubSpot account's time zone (IANA name): its midnight resets the daily API limit"}
                }
            },
            "mappings": {
                "type": "array",
                "items": {"type": "object", "required": ["id", "value"], "additionalProperties": false,
                          "properties": {"id": {"type": "string", "description": "HubSpot contact property (internal name)"},
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

    use crate::HubSpot;

    fn paths(config: serde_json::Value) -> Vec<String> {
        validate::<HubSpot>(&config.to_string())
            .into_iter()
            .map(|p| p.path)
            .collect()
    }

    #[test]
    fn a_full_config_is_valid_and_every_problem_is_named() {
        let good = json!({
            "type_id": "hubspot",
            "authentication": {"access_token": "pat-eu1-0123"},
            "properties": {
                "subscriptions": [{"id": "123", "value": "consents_purposes_newsletter_enabled"}, {"id": 7, "value": "consents_channels_email_enabled"}],
                "legal_basis": "LEGITIMATE_INTEREST_OTHER",
                "time_zone": "America/New_York",
                "email_property": "metadata_email"
            },
            "mappings": [{"id": "didomi_newsletter", "value": "consents_purposes_newsletter_enabled"}],
            "upsert_mode": true
        });
        assert!(paths(good).is_empty());
        // Subscriptions alone are enough; so are mappings alone.
        assert!(paths(json!({"authentication": {"access_token": "t"}, "properties": {"subscriptions": [{"id": 1, "value": "x"}]}})).is_empty());
        assert_eq!(
            paths(json!({
                "authentication": {"token": "x"},
                "properties": {
                    "api_base": "ftp://x",
                    "subscriptions": [{"id": "abc", "value": ""}, {"id": 5, "value": "a"}, {"id": "5", "value": "b", "x": 1}],
                    "legal_basis": "consent",
                    "time_zone": "Mars/Olympus",
                    "region": "eu"
                },
                "mappings": [{"id": "a"}],
                "upsert_mode": "yes"
            })),
            [
                "authentication.access_token",
                "authentication.token",
                "properties.api_base",
                "properties.subscriptions[0].id",
                "properties.subscriptions[0].value",
                "properties.subscriptions[2].x",
                "properties.subscriptions[2].id",
                "properties.legal_basis",
                "properties.time_zone",
                "properties.region",
                "mappings[0].value",
                "upsert_mode"
            ]
        );
        assert_eq!(
            paths(json!({"authentication": {"access_token": "t"}, "mappings": []})),
            ["mappings"]
        );
    }
}
