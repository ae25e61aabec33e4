//! The integration config, in the shape of Didomi's integrations: a REST
//! API key, the workspace's instance (or its REST endpoint), how users are
//! identified, and `mappings` from Braze fields to Didomi properties.
//!
//! A mapping's `id` says what it writes:
//!
//! | `id` | written as |
//! |---|---|
//! | `email_subscribe`, `push_subscribe` | the channel's global state: `opted_in` / `unsubscribed` / `subscribed` |
//! | `subscription_group:<group id>` | a `subscription_groups` entry: `subscribed` / `unsubscribed` |
//! | anything else | a user attribute of that name (standard, such as `first_name`, or custom) |
//!
//! The types are the one description of the config: serde reads them, and
//! the JSON Schema the host checks and the console draws is derived from them.

use prefsync_sdk::{Mapping, Problems};
use schemars::JsonSchema;
use serde::Deserialize;

/// A Braze integration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct BrazeConfig {
    /// The workspace's REST API key.
    pub authentication: Authentication,
    /// Where the workspace lives and how users are matched.
    #[serde(default)]
    pub properties: Properties,
    /// Braze field (`id`) ← Didomi property (`value`). An `id` is
    /// `email_subscribe`, `push_subscribe`, `subscription_group:<group id>`,
    /// or a user attribute (standard, such as `first_name`, or custom).
    #[schemars(length(min = 1))]
    pub mappings: Vec<Mapping>,
    /// Create users that do not exist yet; when false they are skipped
    /// (`_update_existing_only`).
    #[serde(default)]
    pub upsert_mode: bool,
    /// Accepted for Didomi compatibility; prefsync sends no email.
    #[serde(default)]
    pub enable_emailing: Option<bool>,
}

/// Credentials.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    /// A REST API key with the `users.track` permission, sent as a bearer token.
    #[schemars(extend("writeOnly" = true), length(min = 1))]
    pub api_key: String,
}

/// Where and how.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Properties {
    /// The workspace's instance, as the dashboard URL tells (`US-01` …
    /// `US-10`, `EU-01`, `EU-02`, `AU-01`, `ID-01`, `JP-01`, in any case);
    /// required unless `rest_endpoint` is set.
    #[serde(default)]
    #[schemars(extend("examples" = [
        "US-01", "US-02", "US-03", "US-04", "US-05", "US-06", "US-07", "US-08",
        "US-09", "US-10", "EU-01", "EU-02", "AU-01", "ID-01", "JP-01"
    ]))]
    pub instance: Option<String>,
    /// The REST endpoint itself, e.g. `https://rest.fra-01.braze.eu` (a bare
    /// host means https); overrides `instance`.
    // Left out when not used: the schema says `string` (null is refused, as
    // the hand-written check did), serde reads it into an `Option`.
    #[serde(default)]
    #[schemars(with = "String", url, length(min = 1), transform = no_default)]
    pub rest_endpoint: Option<String>,
    /// The Braze field the user's `organization_user_id` goes in.
    #[serde(default)]
    #[schemars(extend("default" = "external_id"))]
    pub identifier: Identifier,
}

/// The Braze field a user is matched on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Identifier {
    /// Braze's `external_id` (the usual choice).
    #[default]
    ExternalId,
    /// The user's `email` (then the `organization_user_id` must be one).
    Email,
}

impl Identifier {
    /// The field's name in a `/users/track` attribute object.
    pub fn field(self) -> &'static str {
        match self {
            Identifier::ExternalId => "external_id",
            Identifier::Email => "email",
        }
    }
}

/// Drops the `"default": null` serde's `default` puts on an optional field
/// whose schema is a plain string (a default the schema itself would refuse).
fn no_default(schema: &mut schemars::Schema) {
    schema.remove("default");
}

/// Braze's instances and their REST endpoints [segmentio/action-destinations: braze/index.ts].
pub const INSTANCES: &[(&str, &str)] = &[
    ("US-01", "rest.iad-01.braze.com"),
    ("US-02", "rest.iad-02.braze.com"),
    ("US-03", "rest.iad-03.braze.com"),
    ("US-04", "rest.iad-04.braze.com"),
    ("US-05", "rest.iad-05.braze.com"),
    ("US-06", "rest.iad-06.braze.com"),
    ("US-07", "rest.iad-07.braze.com"),
    ("US-08", "rest.iad-08.braze.com"),
    ("US-09", "rest.us-09.braze.com"),
    ("US-10", "rest.us-10.braze.com"),
    ("EU-01", "rest.fra-01.braze.eu"),
    ("EU-02", "rest.fra-02.braze.eu"),
    ("AU-01", "rest.au-01.braze.com"),
    ("ID-01", "rest.id-01.braze.com"),
    ("JP-01", "rest.jp-01.braze.com"),
];

/// Mapping ids with a meaning of their own in a `/users/track` object.
pub const EMAIL_SUBSCRIBE: &str = "email_subscribe";
pub const PUSH_SUBSCRIBE: &str = "push_subscribe";
pub const SUBSCRIPTION_GROUP_PREFIX: &str = "subscription_group:";

/// Fields the connector sets itself, or that identify someone else: a
/// mapping may not write them.
const RESERVED_FIELDS: &[&str] = &[
    "external_id",
    "braze_id",
    "user_alias",
    "_update_existing_only",
    "subscription_groups",
];

/// The REST endpoint of `instance` (`us-01` and `US-01` alike).
pub fn instance_host(instance: &str) -> Option<&'static str> {
    INSTANCES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(instance.trim()))
        .map(|(_, host)| *host)
}

impl BrazeConfig {
    /// The REST endpoint without a trailing slash, https when no scheme was given.
    pub fn base_url(&self) -> String {
        let endpoint = match (&self.properties.rest_endpoint, &self.properties.instance) {
            (Some(endpoint), _) => endpoint.trim().trim_end_matches('/').to_string(),
            // `check` guarantees one of the two, and a known instance.
            (None, Some(instance)) => instance_host(instance).unwrap_or_default().to_string(),
            (None, None) => String::new(),
        };
        if endpoint.contains("://") {
            endpoint
        } else {
            format!("https://{endpoint}")
        }
    }
}

/// The rules the schema cannot say.
pub fn check(config: &BrazeConfig, p: &mut Problems) {
    let api_key = &config.authentication.api_key;
    if api_key.trim().is_empty() {
        p.push("authentication.api_key", "must not be empty");
    }

    let properties = &config.properties;
    // Any case, as the dashboard URL writes it: not a schema enum.
    if let Some(instance) = &properties.instance
        && instance_host(instance).is_none()
    {
        let known: Vec<&str> = INSTANCES.iter().map(|(name, _)| *name).collect();
        p.push(
            "properties.instance",
            format!(
                "unknown Braze instance `{instance}` (expected one of: {})",
                known.join(", ")
            ),
        );
    }
    match &properties.rest_endpoint {
        Some(endpoint) => {
            p.url("properties.rest_endpoint", endpoint, true);
        }
        None if properties.instance.is_none() => p.push(
            "properties.instance",
            "is required unless properties.rest_endpoint is set (the dashboard URL tells the instance, e.g. US-01 or EU-01)",
        ),
        None => {}
    }

    p.mappings("mappings", &config.mappings);
    check_mapping_ids(config, p);
}

/// What each mapping's `id` may be in Braze.
fn check_mapping_ids(config: &BrazeConfig, p: &mut Problems) {
    let identifier = config.properties.identifier;
    for (i, mapping) in config.mappings.iter().enumerate() {
        let id = mapping.id.as_str();
        let at = format!("mappings[{i}].id");
        if let Some(group) = id.strip_prefix(SUBSCRIPTION_GROUP_PREFIX) {
            if group.trim().is_empty() {
                p.push(
                    &at,
                    "names no subscription group (expected `subscription_group:<group id>`)",
                );
            }
        } else if RESERVED_FIELDS.contains(&id) || identifier.field() == id {
            p.push(
                &at,
                format!(
                    "`{id}` is set by the connector (it identifies the user or drives the update); map another field"
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

    use super::*;
    use crate::Braze;

    fn problems(config: serde_json::Value) -> Vec<(String, String)> {
        validate::<Braze>(&config.to_string())
            .into_iter()
            .map(|p| (p.path, p.message))
            .collect()
    }

    fn paths(config: serde_json::Value) -> Vec<String> {
        problems(config).into_iter().map(|(path, _)| path).collect()
    }

    fn shown(config: serde_json::Value) -> Vec<String> {
        problems(config)
            .into_iter()
            .map(|(path, message)| format!("{path}: {message}"))
            .collect()
    }

    #[test]
    fn a_didomi_shaped_config_is_valid() {
        let good = json!({
            "type_id": "braze",
            "authentication": {"api_key": "KEY"},
            "properties": {"instance": "eu-01"},
            "mappings": [
                {"id": "email_subscribe", "value": "consents_channels_email_enabled"},
                {"id": "subscription_group:3b6c", "value": "consents_purposes_newsletter_enabled"},
                {"id": "first_name", "value": "metadata_first_name"}
            ],
            "upsert_mode": true,
            "enable_emailing": false
        });
        assert!(paths(good.clone()).is_empty());
        let config = parse_config::<Braze>(&good.to_string()).unwrap();
        assert_eq!(config.base_url(), "https://rest.fra-01.braze.eu");
        assert_eq!(config.properties.identifier, Identifier::ExternalId);
        // Optional fields may be null, as before.
        let mut nulls = good.clone();
        nulls["properties"] = json!({"instance": " US-01 "});
        nulls["enable_emailing"] = json!(null);
        assert!(paths(nulls).is_empty());
    }

    #[test]
    fn every_problem_the_schema_says_is_named_at_once() {
        assert_eq!(
            shown(json!({
                "authentication": {"key": "x"},
                "properties": {"instance": 7, "rest_endpoint": null, "identifier": "phone", "region": "eu"},
                "mappings": [{"id": "first_name"}, {"id": "last_name", "value": "x", "note": 1}],
                "upsert_mode": "yes",
                "enable_emailing": "no"
            })),
            [
                "authentication.api_key: is required",
                "authentication.key: unknown field (expected one of: api_key)",
                "enable_emailing: must be true or false",
                "mappings[0].value: is required",
                "mappings[1].note: unknown field (expected one of: id, value)",
                "properties.identifier: must be one of: external_id, email",
                "properties.instance: must be a string",
                "properties.region: unknown field (expected one of: identifier, instance, rest_endpoint)",
                "properties.rest_endpoint: must be a string",
                "upsert_mode: must be true or false",
            ]
        );
        assert_eq!(
            shown(json!({"authentication": {"api_key": ""}, "mappings": []})),
            [
                "authentication.api_key: must not be empty",
                "mappings: must not be empty",
            ]
        );
    }

    #[test]
    fn every_problem_only_check_can_see_is_named_at_once() {
        assert_eq!(
            paths(json!({
                "authentication": {"api_key": "  "},
                "properties": {"instance": "EU-09", "rest_endpoint": "ftp://x"},
                "mappings": [{"id": "external_id", "value": "organization_user_id"},
                             {"id": "subscription_group: ", "value": "consents_purposes_news_enabled"},
                             {"id": "first_name", "value": " "},
                             {"id": "first_name", "value": "metadata_first_name"}]
            })),
            [
                "authentication.api_key",
                "properties.instance",
                "properties.rest_endpoint",
                "mappings[2].value",
                "mappings[3].id",
                "mappings[0].id",
                "mappings[1].id",
            ]
        );
        let unknown = problems(json!({
            "authentication": {"api_key": "KEY"},
            "properties": {"instance": "EU-09"},
            "mappings": [{"id": "email_subscribe", "value": "consents_channels_email_enabled"}]
        }));
        assert_eq!(unknown.len(), 1);
        assert!(
            unknown[0]
                .1
                .starts_with("unknown Braze instance `EU-09` (expected one of: US-01"),
            "{unknown:?}"
        );
    }

    #[test]
    fn the_secret_is_write_only_and_the_endpoint_a_uri_in_the_schema() {
        let schema = Braze::config_schema();
        let auth = &schema["properties"]["authentication"]["properties"];
        assert_eq!(auth["api_key"]["writeOnly"], true);
        let properties = &schema["properties"]["properties"]["properties"];
        assert_eq!(properties["rest_endpoint"]["format"], "uri");
        assert!(properties["rest_endpoint"].get("writeOnly").is_none());
        assert!(properties["rest_endpoint"].get("default").is_none());
        // The only URL the integration names: the egress allowlist adds its host.
        let text = schema.to_string();
        assert_eq!(text.matches("\"format\":\"uri\"").count(), 1, "{text}");
        assert_eq!(text.matches("\"writeOnly\":true").count(), 1, "{text}");
        assert_eq!(properties["instance"]["examples"][0], "US-01");
    }

    #[test]
    fn the_endpoint_comes_from_the_instance_or_the_override() {
        let missing = problems(json!({
            "authentication": {"api_key": "KEY"},
            "properties": {},
            "mappings": [{"id": "email_subscribe", "value": "consents_channels_email_enabled"}]
        }));
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].0, "properties.instance");
        assert!(missing[0].1.contains("rest_endpoint"), "{missing:?}");
        // No `properties` at all: the same.
        let none = paths(json!({
            "authentication": {"api_key": "KEY"},
            "mappings": [{"id": "email_subscribe", "value": "consents_channels_email_enabled"}]
        }));
        assert_eq!(none, ["properties.instance"]);

        let raw = json!({
            "authentication": {"api_key": "KEY"},
            "properties": {"instance": "US-01", "rest_endpoint": "http://127.0.0.1:4000/", "identifier": "email"},
            "mappings": [{"id": "email_subscribe", "value": "consents_channels_email_enabled"}]
        });
        let config = parse_config::<Braze>(&raw.to_string()).unwrap();
        assert_eq!(config.base_url(), "http://127.0.0.1:4000");
        assert_eq!(config.properties.identifier, Identifier::Email);
        // A bare host means https.
        let mut bare = raw.clone();
        bare["properties"] = json!({"rest_endpoint": "rest.fra-01.braze.eu"});
        let config = parse_config::<Braze>(&bare.to_string()).unwrap();
        assert_eq!(config.base_url(), "https://rest.fra-01.braze.eu");
        for bad in [
            "",
            "javascript:alert(1)",
            "https://user:pw@rest.fra-01.braze.eu",
        ] {
            bare["properties"]["rest_endpoint"] = json!(bad);
            assert_eq!(paths(bare.clone()), ["properties.rest_endpoint"], "{bad}");
        }
        // With email as the identifier, a mapping may not write `email`.
        let mut clash = raw.clone();
        clash["mappings"] = json!([{"id": "email", "value": "metadata_email"}]);
        assert_eq!(paths(clash), ["mappings[0].id"]);
        assert_eq!(instance_host("jp-01"), Some("rest.jp-01.braze.com"));
    }
}
