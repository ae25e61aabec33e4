//! The integration config, in the shape of Didomi's integrations: the API
//! key, the audience (list), and `mappings` whose `id` says what a Didomi
//! property becomes at Mailchimp (see [`Target`]). The types are the one
//! description of it: serde reads them and the JSON Schema the host checks
//! and the console draws is derived from them.

use prefsync_sdk::{Mapping, Problems};
use schemars::JsonSchema;
use serde::Deserialize;

/// A Mailchimp integration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct MailchimpConfig {
    /// The Marketing API key.
    pub authentication: Authentication,
    /// The audience and how members are found.
    pub properties: Properties,
    /// Mailchimp target (`id`: `status`, `permission:<id>` or a merge field tag) ← Didomi property (`value`); one must be `status`.
    #[schemars(length(min = 1))]
    pub mappings: Vec<Mapping>,
    /// Add members that are not in the audience yet; when false they are skipped.
    #[serde(default)]
    pub upsert_mode: bool,
    /// Accepted for Didomi compatibility; Mailchimp's webhooks are not read.
    #[serde(default)]
    #[schemars(extend("default" = false))]
    pub enable_webhooks: Option<bool>,
    /// Accepted for Didomi compatibility; prefsync sends no email.
    #[serde(default)]
    #[schemars(extend("default" = false))]
    pub enable_emailing: Option<bool>,
}

/// Credentials.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    /// Mailchimp Marketing API key (`…-us14`); its suffix names the data center.
    #[schemars(extend("writeOnly" = true), length(min = 1))]
    pub api_key: String,
}

/// Where and how.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Properties {
    /// Audience (list) id: Mailchimp's `list_id`.
    #[schemars(length(min = 1))]
    pub list_id: String,
    /// API base; https://<dc>.api.mailchimp.com/3.0 from the key's suffix unless set.
    // A string when present (null is refused, as before): no `null` in its
    // type, and no `default: null` either.
    #[serde(default)]
    #[schemars(with = "String", url, transform = no_default)]
    pub api_base: Option<String>,
    /// Didomi property holding the email (default: the user's key, organization_user_id).
    #[serde(default)]
    pub email_property: Option<String>,
    /// Re-consent of a member Mailchimp keeps unsubscribed: set `pending` (Mailchimp emails a confirmation) rather than fail.
    #[serde(default)]
    #[schemars(extend("default" = true))]
    pub resubscribe_with_pending: Option<bool>,
}

/// Drops the `default: null` serde's `default` gives an optional field
/// whose schema is a plain string.
fn no_default(schema: &mut schemars::Schema) {
    schema.remove("default");
}

/// What a mapping's `id` names at Mailchimp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// `status`: the member's subscription (true → subscribed, false → unsubscribed).
    Status,
    /// `permission:<marketing_permission_id>`: a GDPR marketing permission.
    Permission(&'a str),
    /// Anything else: a merge field tag (`FNAME`, `OPTIN_SRC`).
    MergeField(&'a str),
}

/// The mapping id that names the subscription status.
pub const STATUS_ID: &str = "status";
/// The prefix of a marketing permission's mapping id.
pub const PERMISSION_PREFIX: &str = "permission:";

impl<'a> Target<'a> {
    pub fn of(id: &'a str) -> Target<'a> {
        if id == STATUS_ID {
            Target::Status
        } else if let Some(permission) = id.strip_prefix(PERMISSION_PREFIX) {
            Target::Permission(permission)
        } else {
            Target::MergeField(id)
        }
    }
}

/// Why no API base could be derived from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseUrlError {
    /// The key has no `-<dc>` suffix.
    NoDataCenter,
    /// The suffix is not a plain data center name (`us14`).
    InvalidDataCenter,
}

impl std::fmt::Display for BaseUrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BaseUrlError::NoDataCenter => f.write_str(
                "must end in `-<data center>` (as `…-us14`), or set properties.api_base",
            ),
            BaseUrlError::InvalidDataCenter => f.write_str(
                "its `-<data center>` suffix must be lower-case letters and digits (as `us14`)",
            ),
        }
    }
}

/// The data center a key names: what follows its last `-`, checked to be
/// `[a-z0-9]+` before it goes into a host name.
pub fn data_center(api_key: &str) -> Result<&str, BaseUrlError> {
    let (_, dc) = api_key
        .trim()
        .rsplit_once('-')
        .ok_or(BaseUrlError::NoDataCenter)?;
    if dc.is_empty()
        || !dc
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(BaseUrlError::InvalidDataCenter);
    }
    Ok(dc)
}

impl MailchimpConfig {
    /// The API base without a trailing slash: `properties.api_base` (https
    /// when it has no scheme), else `https://<dc>.api.mailchimp.com/3.0`.
    pub fn base_url(&self) -> Result<String, BaseUrlError> {
        if let Some(base) = &self.properties.api_base {
            let base = base.trim().trim_end_matches('/');
            return Ok(if base.contains("://") {
                base.to_string()
            } else {
                format!("https://{base}")
            });
        }
        let dc = data_center(&self.authentication.api_key)?;
        Ok(format!("https://{dc}.api.mailchimp.com/3.0"))
    }

    pub fn resubscribe_with_pending(&self) -> bool {
        self.properties.resubscribe_with_pending.unwrap_or(true)
    }
}

/// The rules the schema cannot say.
pub fn check(config: &MailchimpConfig, p: &mut Problems) {
    let key = config.authentication.api_key.trim();
    if key.is_empty() {
        p.push("authentication.api_key", "must not be empty");
    }
    if config.properties.list_id.trim().is_empty() {
        p.push("properties.list_id", "must not be empty");
    }
    match &config.properties.api_base {
        Some(base) => {
            p.url("properties.api_base", base, true);
        }
        // Without an explicit base the key must name a data center we allow.
        // The messages name the data center (it is in the host name anyway),
        // never the key.
        None if !key.is_empty() => match data_center(key) {
            Err(e) => p.push("authentication.api_key", e.to_string()),
            Ok(dc) if !crate::default_hosts().contains(&format!("{dc}.api.mailchimp.com")) => {
                p.push(
                    "authentication.api_key",
                    format!(
                        "data center `{dc}` is not among the default hosts; set properties.api_base to https://{dc}.api.mailchimp.com/3.0"
                    ),
                )
            }
            Ok(_) => {}
        },
        None => {}
    }
    p.mappings("mappings", &config.mappings);
    check_targets(&config.mappings, p);
}

/// Each mapping id must name a valid target, and one must be `status`.
fn check_targets(mappings: &[Mapping], p: &mut Problems) {
    let mut has_status = false;
    for (i, mapping) in mappings.iter().enumerate() {
        let id = mapping.id.as_str();
        let path = format!("mappings[{i}].id");
        match Target::of(id) {
            Target::Status => has_status = true,
            Target::Permission(permission) => {
                if permission.is_empty() || !permission.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    p.push(
                        &path,
                        "a marketing permission is `permission:<marketing_permission_id>` (letters and digits)",
                    );
                }
            }
            Target::MergeField(tag) => {
                // Mailchimp's merge tags: up to 10 letters, digits or `_`.
                if tag.is_empty()
                    || tag.len() > 10
                    || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    p.push(
                        &path,
                        format!(
                            "`{id}` is neither `status`, `permission:<id>` nor a merge field tag (up to 10 letters, digits or `_`)"
                        ),
                    );
                }
            }
        }
    }
    if !mappings.is_empty() && !has_status {
        p.push(
            "mappings",
            "one entry must have id `status`: the consent that subscribes or unsubscribes the member",
        );
    }
}

#[cfg(test)]
mod tests {
    use prefsync_sdk::connector::validate;
    use serde_json::json;

    use super::*;
    use crate::Mailchimp;

    fn problems(config: serde_json::Value) -> Vec<(String, String)> {
        validate::<Mailchimp>(&config.to_string())
            .into_iter()
            .map(|p| (p.path, p.message))
            .collect()
    }

    fn paths(config: serde_json::Value) -> Vec<String> {
        problems(config).into_iter().map(|(path, _)| path).collect()
    }

    fn seed() -> serde_json::Value {
        json!({
            "type_id": "mailchimp",
            "authentication": {"api_key": "0123456789abcdef0123456789abcdef-us14"},
            "properties": {"list_id": "a1b2c3d4e5"},
            "mappings": [
                {"id": "status", "value": "consents_channels_email_enabled"},
                {"id": "permission:f00d", "value": "consents_purposes_newsletter_enabled"},
                {"id": "TIER", "value": "metadata_tier"}
            ],
            "upsert_mode": true,
            "enable_webhooks": false,
            "enable_emailing": false
        })
    }

    #[test]
    fn the_seed_shape_is_valid() {
        assert!(paths(seed()).is_empty(), "{:?}", problems(seed()));
        // Optional fields may be null, as before (but `api_base`, below).
        let mut nulls = seed();
        nulls["properties"]["email_property"] = json!(null);
        nulls["properties"]["resubscribe_with_pending"] = json!(null);
        nulls["enable_webhooks"] = json!(null);
        nulls["enable_emailing"] = json!(null);
        assert!(paths(nulls).is_empty());
    }

    #[test]
    fn every_problem_is_found_from_the_derived_schema() {
        let found: Vec<String> = problems(json!({
            "authentication": {"key": "x"},
            "properties": {"api_base": null, "list": "y", "email_property": 3},
            "mappings": [],
            "upsert_mode": "yes",
            "enable_webhooks": "no"
        }))
        .into_iter()
        .map(|(path, message)| format!("{path}: {message}"))
        .collect();
        assert_eq!(
            found,
            [
                "authentication.api_key: is required",
                "authentication.key: unknown field (expected one of: api_key)",
                "enable_webhooks: must be true or false",
                "mappings: must not be empty",
                "properties.api_base: must be a string",
                "properties.email_property: must be a string",
                "properties.list: unknown field (expected one of: api_base, email_property, list_id, resubscribe_with_pending)",
                "properties.list_id: is required",
                "upsert_mode: must be true or false",
            ]
        );
        assert_eq!(
            paths(json!({"authentication": {"api_key": ""}, "mappings": [{"id": "status"}]})),
            ["authentication.api_key", "mappings[0].value", "properties"]
        );
    }

    #[test]
    fn every_rule_the_schema_cannot_say_is_checked() {
        let mut config = seed();
        config["authentication"]["api_key"] = json!("  ");
        config["properties"] = json!({"list_id": " ", "api_base": "ftp://x"});
        config["mappings"] = json!([
            {"id": "permission:", "value": "a"},
            {"id": "NOT A TAG", "value": "b"},
            {"id": "TIER", "value": " "},
            {"id": "TIER", "value": "c"}
        ]);
        assert_eq!(
            paths(config),
            [
                "authentication.api_key",
                "properties.list_id",
                "properties.api_base",
                "mappings[2].value",
                "mappings[3].id",
                "mappings[0].id",
                "mappings[1].id",
                "mappings"
            ]
        );
        // A bare host is a base (https); credentials in it are not.
        let with_base = |base: &str| {
            let mut config = seed();
            config["properties"]["api_base"] = json!(base);
            paths(config)
        };
        assert!(with_base("us14.api.mailchimp.com/3.0").is_empty());
        assert_eq!(
            with_base("https://user:pw@us14.api.mailchimp.com"),
            ["properties.api_base"]
        );
    }

    #[test]
    fn the_schema_marks_the_secret_and_the_url() {
        use prefsync_sdk::Connector;
        let schema = Mailchimp::config_schema();
        let auth = &schema["properties"]["authentication"]["properties"];
        assert_eq!(auth["api_key"]["writeOnly"], true);
        let properties = &schema["properties"]["properties"]["properties"];
        assert_eq!(properties["api_base"]["format"], "uri");
        assert_eq!(properties["resubscribe_with_pending"]["default"], true);
        // The only URL field and the only secret.
        let text = schema.to_string();
        assert_eq!(text.matches("\"format\"").count(), 1, "{text}");
        assert_eq!(text.matches("\"writeOnly\"").count(), 1, "{text}");
    }

    #[test]
    fn the_key_must_name_an_allowed_data_center_unless_a_base_is_set() {
        let with_key = |key: &str| {
            let mut config = seed();
            config["authentication"]["api_key"] = json!(key);
            config
        };
        let message = |key: &str| problems(with_key(key))[0].1.clone();
        assert!(message("0123abcd").contains("must end in `-<data center>`"));
        assert!(message("0123abcd-US14").contains("lower-case letters and digits"));
        assert!(message("0123abcd-evil.example.com/x").contains("lower-case letters and digits"));
        let far = message("0123abcd-eu99");
        assert!(
            far.contains("`eu99` is not among the default hosts"),
            "{far}"
        );
        assert!(!far.contains("0123abcd"), "the key is never quoted: {far}");
        // With an explicit base the key's suffix does not matter.
        let mut based = with_key("0123abcd");
        based["properties"]["api_base"] = json!("https://eu99.api.mailchimp.com/3.0");
        assert!(paths(based).is_empty());
    }

    #[test]
    fn the_base_url_comes_from_the_key_or_the_override() {
        let config: MailchimpConfig = serde_json::from_value(seed()).unwrap();
        assert_eq!(
            config.base_url().unwrap(),
            "https://us14.api.mailchimp.com/3.0"
        );
        let mut seed = seed();
        seed["properties"]["api_base"] = json!("http://127.0.0.1:9/3.0/");
        let config: MailchimpConfig = serde_json::from_value(seed).unwrap();
        assert_eq!(config.base_url().unwrap(), "http://127.0.0.1:9/3.0");
        assert_eq!(data_center("k-us1"), Ok("us1"));
        assert_eq!(data_center("k-"), Err(BaseUrlError::InvalidDataCenter));
    }
}
