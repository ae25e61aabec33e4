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

use prefsync_sdk::{Mapping, Problems};
use serde::Deserialize;
use serde_json::json;

/// A Braze integration.
#[derive(Debug, Clone, Deserialize)]
pub struct BrazeConfig {
    /// The workspace's REST API key.
    pub authentication: Authentication,
    /// Where the workspace lives and how users are matched.
    #[serde(default)]
    pub properties: Properties,
    /// Braze field (`id`) ← Didomi property (`value`).
    pub mappings: Vec<Mapping>,
    /// Create users that do not exist yet; when false they are skipped.
    #[serde(default)]
    pub upsert_mode: bool,
}

/// Credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    /// A REST API key with the `users.track` permission, sent as a bearer token.
    pub api_key: String,
}

/// Where and how.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Properties {
    /// The workspace's instance (`US-01` … `US-10`, `EU-01`, `EU-02`,
    /// `AU-01`, `ID-01`, `JP-01`); the dashboard URL tells which.
    #[serde(default)]
    pub instance: Option<String>,
    /// The REST endpoint itself, overriding `instance` (a bare host means https).
    #[serde(default)]
    pub rest_endpoint: Option<String>,
    /// The Braze field the user's `organization_user_id` goes in.
    #[serde(default)]
    pub identifier: Identifier,
}

/// The Braze field a user is matched on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
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

pub fn check(p: &mut Problems<'_>) {
    p.require_string("authentication.api_key");
    p.only_keys("authentication", &["api_key"]);

    let instance = p.optional_string("properties.instance");
    if let Some(instance) = instance
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
    let has_endpoint = p.get("properties.rest_endpoint").is_some();
    if has_endpoint {
        p.require_url("properties.rest_endpoint", true);
    } else if instance.is_none() {
        p.push(
            "properties.instance",
            "is required unless properties.rest_endpoint is set (the dashboard URL tells the instance, e.g. US-01 or EU-01)",
        );
    }
    let identifier = match p.optional_string("properties.identifier") {
        None => Some(Identifier::ExternalId),
        Some("external_id") => Some(Identifier::ExternalId),
        Some("email") => Some(Identifier::Email),
        Some(other) => {
            p.push(
                "properties.identifier",
                format!("must be `external_id` or `email`, not `{other}`"),
            );
            None
        }
    };
    p.only_keys("properties", &["instance", "rest_endpoint", "identifier"]);

    p.mappings("mappings", true);
    check_mapping_ids(p, identifier);
    p.optional_bool("upsert_mode");
    p.optional_bool("enable_emailing");
}

/// What each mapping's `id` may be in Braze; `mappings` itself checked the shape.
fn check_mapping_ids(p: &mut Problems<'_>, identifier: Option<Identifier>) {
    let Some(entries) = p.get("mappings").and_then(|m| m.as_array()) else {
        return;
    };
    for (i, entry) in entries.iter().enumerate() {
        let Some(id) = entry.get("id").and_then(|id| id.as_str()) else {
            continue;
        };
        let at = format!("mappings[{i}].id");
        if let Some(group) = id.strip_prefix(SUBSCRIPTION_GROUP_PREFIX) {
            if group.trim().is_empty() {
                p.push(
                    &at,
                    "names no subscription group (expected `subscription_group:<group id>`)",
                );
            }
        } else if RESERVED_FIELDS.contains(&id) || identifier.is_some_and(|i| i.field() == id) {
            p.push(
                &at,
                format!(
                    "`{id}` is set by the connector (it identifies the user or drives the update); map another field"
                ),
            );
        }
    }
}

pub fn schema() -> serde_json::Value {
    let instances: Vec<&str> = INSTANCES.iter().map(|(name, _)| *name).collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["authentication", "properties", "mappings"],
        "properties": {
            "authentication": {
                "type": "object",
                "required": ["api_key"],
                "additionalProperties": false,
                "properties": {
                    "api_key": {"type": "string", "writeOnly": true,
                                "description": "Braze REST API key with the users.track permission"}
                }
            },
            "properties": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "instance": {"type": "string", "enum": instances,
                                 "description": "The workspace's instance (the dashboard URL tells which); required unless rest_endpoint is set"},
                    "rest_endpoint": {"type": "string", "format": "uri",
                                      "description": "The REST endpoint itself, e.g. https://rest.fra-01.braze.eu; overrides instance"},
                    "identifier": {"type": "string", "enum": ["external_id", "email"], "default": "external_id",
                                   "description": "The Braze field the organization_user_id goes in"}
                }
            },
            "mappings": {
                "type": "array", "minItems": 1,
                "items": {"type": "object", "required": ["id", "value"], "additionalProperties": false,
                          "properties": {"id": {"type": "string",
                                                "description": "email_subscribe, push_subscribe, subscription_group:<group id>, or a user attribute"},
                                         "value": {"type": "string", "description": "Didomi property"}}}
            },
            "upsert_mode": {"type": "boolean", "default": false,
                            "description": "Create users that do not exist yet (false: _update_existing_only, missing users skipped)"},
            "enable_emailing": {"type": "boolean", "default": false,
                                "description": "Accepted for Didomi compatibility; prefsync sends no email"}
        }
    })
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn a_didomi_shaped_config_is_valid_and_every_problem_is_named() {
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

        assert_eq!(
            paths(json!({
                "authentication": {"key": "x"},
                "properties": {"instance": "EU-09", "rest_endpoint": "ftp://x", "identifier": "phone", "region": "eu"},
                "mappings": [{"id": "external_id", "value": "organization_user_id"},
                             {"id": "subscription_group: ", "value": "consents_purposes_news_enabled"}],
                "upsert_mode": "yes"
            })),
            [
                "authentication.api_key",
                "authentication.key",
                "properties.instance",
                "properties.rest_endpoint",
                "properties.identifier",
                "properties.region",
                "mappings[0].id",
                "mappings[1].id",
                "upsert_mode"
            ]
        );
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

        let raw = json!({
            "authentication": {"api_key": "KEY"},
            "properties": {"instance": "US-01", "rest_endpoint": "http://127.0.0.1:4000/", "identifier": "email"},
            "mappings": [{"id": "email_subscribe", "value": "consents_channels_email_enabled"}]
        });
        let config = parse_config::<Braze>(&raw.to_string()).unwrap();
        assert_eq!(config.base_url(), "http://127.0.0.1:4000");
        assert_eq!(config.properties.identifier, Identifier::Email);
        // With email as the identifier, a mapping may not write `email`.
        let mut clash = raw.clone();
        clash["mappings"] = json!([{"id": "email", "value": "metadata_email"}]);
        assert_eq!(paths(clash), ["mappings[0].id"]);
        assert_eq!(instance_host("jp-01"), Some("rest.jp-01.braze.com"));
    }
}
