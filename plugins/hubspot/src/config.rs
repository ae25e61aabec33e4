//! The integration config, in Didomi's integration shape: a private-app
//! token, contact properties in `mappings`, and the subscription types whose
//! status follows a consent choice in `properties.subscriptions`. The types
//! are the one description of it: serde reads them and the JSON Schema the
//! host checks and the console draws is derived from them; `check` holds
//! the rules a schema cannot say.

use prefsync_sdk::{Mapping, Problems};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value as Json;

/// A HubSpot integration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct HubSpotConfig {
    /// The private app's access token.
    pub authentication: Authentication,
    /// Where, who, and which subscriptions.
    #[serde(default)]
    pub properties: Properties,
    /// HubSpot contact property, internal name (`id`) ← Didomi property
    /// (`value`); may be empty when `properties.subscriptions` maps something.
    #[serde(default)]
    pub mappings: Vec<Mapping>,
    /// Create contacts that do not exist yet; when false they are skipped.
    #[serde(default)]
    #[schemars(extend("default" = false))]
    pub upsert_mode: bool,
}

/// Credentials.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    /// Private app access token (`pat-…`, scopes crm.objects.contacts.write and
    /// communication_preferences.write), sent as `Authorization: Bearer`.
    #[schemars(extend("writeOnly" = true), length(min = 1))]
    pub access_token: String,
}

/// Optional settings under `properties`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Properties {
    /// API base; HubSpot has one host for every region (a bare host means
    /// https). Tests point it at a mock.
    #[serde(default)]
    #[schemars(with = "String", url, extend("default" = "https://api.hubapi.com"))]
    pub api_base: Option<String>,
    /// The Didomi property holding the contact's email; the user's
    /// `organization_user_id` when unset.
    #[serde(default)]
    // No `default` in the schema: unset means "not used".
    #[schemars(skip_serializing_if = "Option::is_none", with = "String")]
    pub email_property: Option<String>,
    /// Subscription type (`id`, HubSpot's numeric `subscriptionId`) ← Didomi
    /// consent choice (`value`): its status follows the choice.
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionMapping>,
    /// The legal basis sent with every subscription status change: one of
    /// HubSpot's legal bases, in upper case (HubSpot does not publish its
    /// full list, so any upper-case name is accepted).
    #[serde(default)]
    #[schemars(
        with = "String",
        regex(pattern = r"^[A-Z_]+$"),
        extend("default" = DEFAULT_LEGAL_BASIS, "examples" = KNOWN_LEGAL_BASES)
    )]
    pub legal_basis: Option<String>,
    /// Why that basis applies, as HubSpot records it.
    #[serde(default)]
    #[schemars(with = "String", extend("default" = DEFAULT_LEGAL_BASIS_EXPLANATION))]
    pub legal_basis_explanation: Option<String>,
    /// The HubSpot account's time zone (IANA name, e.g. `Europe/Paris`),
    /// whose midnight resets the daily API limit; UTC when unset.
    #[serde(default)]
    #[schemars(with = "String", extend("default" = "UTC"))]
    pub time_zone: Option<String>,
}

/// One subscription type and the consent choice it follows.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionMapping {
    /// HubSpot's `subscriptionId`, as a number or a string of digits.
    #[schemars(extend("type" = ["integer", "string"]))]
    pub id: Json,
    /// The Didomi consent choice it follows, e.g.
    /// `consents_purposes_newsletter_enabled`.
    #[schemars(length(min = 1))]
    pub value: String,
}

impl SubscriptionMapping {
    /// The subscription id, a whole number; `check` made sure there is one.
    pub fn subscription_id(&self) -> Option<u64> {
        match &self.id {
            Json::Number(n) => n.as_u64(),
            Json::String(s) => s.trim().parse().ok(),
            _ => None,
        }
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

/// The rules the schema cannot say.
pub fn check(config: &HubSpotConfig, p: &mut Problems) {
    if config.authentication.access_token.trim().is_empty() {
        p.push("authentication.access_token", "must not be empty");
    }
    if let Some(base) = &config.properties.api_base {
        p.url("properties.api_base", base, true);
    }
    check_subscriptions(&config.properties.subscriptions, p);
    if let Some(zone) = &config.properties.time_zone
        && jiff::tz::TimeZone::get(zone).is_err()
    {
        p.push(
            "properties.time_zone",
            format!(
                "`{zone}` is not a known time zone (an IANA name such as Europe/Paris, or UTC)"
            ),
        );
    }
    p.mappings("mappings", &config.mappings);
    if config.mappings.is_empty() && config.properties.subscriptions.is_empty() {
        p.push(
            "mappings",
            "map at least one contact property here or one subscription in properties.subscriptions",
        );
    }
}

/// `properties.subscriptions`: each `id` a subscription id (a whole number,
/// as a number or a string of digits) mapped once, each `value` named.
fn check_subscriptions(subscriptions: &[SubscriptionMapping], p: &mut Problems) {
    const PATH: &str = "properties.subscriptions";
    let mut seen = Vec::new();
    for (i, subscription) in subscriptions.iter().enumerate() {
        let at = format!("{PATH}[{i}]");
        match subscription.subscription_id() {
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
        if subscription.value.trim().is_empty() {
            p.push(
                &format!("{at}.value"),
                "must name the Didomi consent choice, e.g. consents_purposes_newsletter_enabled",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use prefsync_sdk::connector::validate;
    use serde_json::json;

    use crate::HubSpot;

    fn problems(config: serde_json::Value) -> Vec<String> {
        validate::<HubSpot>(&config.to_string())
            .into_iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    fn paths(config: serde_json::Value) -> Vec<String> {
        validate::<HubSpot>(&config.to_string())
            .into_iter()
            .map(|p| p.path)
            .collect()
    }

    #[test]
    fn a_full_config_is_valid() {
        let good = json!({
            "type_id": "hubspot",
            "id": "hs",
            "enabled": true,
            "authentication": {"access_token": "pat-eu1-0123"},
            "properties": {
                "api_base": "api.hubapi.com",
                "subscriptions": [{"id": "123", "value": "consents_purposes_newsletter_enabled"}, {"id": 7, "value": "consents_channels_email_enabled"}, {"id": " 8 ", "value": "x"}],
                "legal_basis": "LEGITIMATE_INTEREST_OTHER",
                "legal_basis_explanation": "",
                "time_zone": "America/New_York",
                "email_property": "metadata_email"
            },
            "mappings": [{"id": "didomi_newsletter", "value": "consents_purposes_newsletter_enabled"}],
            "upsert_mode": true
        });
        assert_eq!(problems(good), Vec::<String>::new());
        // Subscriptions alone are enough; so are mappings alone.
        assert!(paths(json!({"authentication": {"access_token": "t"}, "properties": {"subscriptions": [{"id": 1, "value": "x"}]}})).is_empty());
        assert!(paths(json!({"authentication": {"access_token": "t"}, "mappings": [{"id": "a", "value": "b"}]})).is_empty());
        assert!(paths(json!({"authentication": {"access_token": "t"}, "properties": {"api_base": "http://127.0.0.1:9999/"}, "mappings": [{"id": "a", "value": "b"}]})).is_empty());
    }

    #[test]
    fn every_schema_problem_is_named_with_its_path() {
        let found = problems(json!({
            "authentication": {"token": "x"},
            "properties": {
                "api_base": 5,
                "email_property": null,
                "subscriptions": [{"id": true, "value": ""}, {"id": 1.5, "value": "a"}, {"id": "5", "value": "b", "x": 1}],
                "legal_basis": "consent",
                "time_zone": 3,
                "region": "eu"
            },
            "mappings": [{"id": "a"}, {"id": "", "value": "b"}],
            "upsert_mode": "yes"
        }));
        assert_eq!(
            found,
            [
                "authentication.access_token: is required",
                "authentication.token: unknown field (expected one of: access_token)",
                "mappings[0].value: is required",
                "mappings[1].id: must not be empty",
                "properties.api_base: must be a string",
                "properties.email_property: must be a string",
                "properties.legal_basis: does not have the expected form (pattern `^[A-Z_]+$`)",
                "properties.region: unknown field (expected one of: api_base, email_property, legal_basis, legal_basis_explanation, subscriptions, time_zone)",
                "properties.subscriptions[0].id: must be a whole number or a string",
                "properties.subscriptions[0].value: must not be empty",
                "properties.subscriptions[1].id: must be a whole number or a string",
                "properties.subscriptions[2].x: unknown field (expected one of: id, value)",
                "properties.time_zone: must be a string",
                "upsert_mode: must be true or false",
            ]
        );
        assert_eq!(
            paths(
                json!({"authentication": {"access_token": ""}, "properties": [], "mappings": {}})
            ),
            ["authentication.access_token", "mappings", "properties"]
        );
        assert_eq!(paths(json!({"mappings": []})), ["authentication"]);
    }

    #[test]
    fn every_rule_the_schema_cannot_say_is_checked() {
        let found = problems(json!({
            "authentication": {"access_token": "  "},
            "properties": {
                "api_base": "ftp://x",
                "subscriptions": [{"id": "abc", "value": " "}, {"id": 5, "value": "a"}, {"id": "5", "value": "b"}, {"id": -1, "value": "c"}],
                "time_zone": "Mars/Olympus"
            },
            "mappings": [{"id": "a", "value": " "}, {"id": "a", "value": "b"}]
        }));
        assert_eq!(
            found,
            [
                "authentication.access_token: must not be empty",
                "properties.api_base: must be an https URL, not a `ftp` URL",
                "properties.subscriptions[0].id: must be HubSpot's subscription id, a whole number",
                "properties.subscriptions[0].value: must name the Didomi consent choice, e.g. consents_purposes_newsletter_enabled",
                "properties.subscriptions[2].id: subscription 5 is mapped twice",
                "properties.subscriptions[3].id: must be HubSpot's subscription id, a whole number",
                "properties.time_zone: `Mars/Olympus` is not a known time zone (an IANA name such as Europe/Paris, or UTC)",
                "mappings[0].value: must not be empty",
                "mappings[1].id: `a` is mapped twice",
            ]
        );
        for nothing in [
            json!({"authentication": {"access_token": "t"}, "mappings": []}),
            json!({"authentication": {"access_token": "t"}}),
            json!({"authentication": {"access_token": "t"}, "properties": {"subscriptions": []}}),
        ] {
            assert_eq!(paths(nothing), ["mappings"]);
        }
        for bad in ["javascript:alert(1)", "https://user:pw@api.hubapi.com", ""] {
            assert_eq!(
                paths(
                    json!({"authentication": {"access_token": "t"}, "properties": {"api_base": bad}, "mappings": [{"id": "a", "value": "b"}]})
                ),
                ["properties.api_base"],
                "{bad}"
            );
        }
    }

    #[test]
    fn the_token_is_write_only_and_the_api_base_a_uri_in_the_schema() {
        use prefsync_sdk::Connector;
        let schema = HubSpot::config_schema();
        let token = &schema["properties"]["authentication"]["properties"]["access_token"];
        assert_eq!(token["writeOnly"], true);
        let properties = &schema["properties"]["properties"]["properties"];
        assert_eq!(properties["api_base"]["format"], "uri");
        assert!(properties["api_base"].get("writeOnly").is_none());
        // The only secret and the only URL.
        let text = schema.to_string();
        assert_eq!(text.matches("\"writeOnly\"").count(), 1, "{schema:#}");
        assert_eq!(text.matches("\"format\":\"uri\"").count(), 1, "{schema:#}");
        assert_eq!(
            properties["legal_basis"]["examples"],
            json!(super::KNOWN_LEGAL_BASES)
        );
    }
}
