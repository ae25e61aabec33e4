//! The integration config, in the shape of Didomi's integrations: the API
//! key, the audience (list), and `mappings` whose `id` says what a Didomi
//! property becomes at Mailchimp (see [`Target`]).

use prefsync_sdk::{Mapping, Problems};
use serde::Deserialize;
use serde_json::json;

/// A Mailchimp integration.
#[derive(Debug, Clone, Deserialize)]
pub struct MailchimpConfig {
    pub authentication: Authentication,
    pub properties: Properties,
    /// Target (`id`: `status`, `permission:<id>` or a merge field tag) ←
    /// Didomi property (`value`).
    pub mappings: Vec<Mapping>,
    /// Create members that are not in the audience yet; when false they are skipped.
    #[serde(default)]
    pub upsert_mode: bool,
}

/// Credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    /// A Marketing API key, `<32 hex>-<data center>`; sent as the Basic password.
    pub api_key: String,
}

/// Where and how.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Properties {
    /// The audience (Mailchimp's `list_id`).
    pub list_id: String,
    /// API base; `https://<dc>.api.mailchimp.com/3.0` from the key unless set.
    #[serde(default)]
    pub api_base: Option<String>,
    /// The Didomi property holding the email; the user's key when unset.
    #[serde(default)]
    pub email_property: Option<String>,
    /// A member Mailchimp keeps unsubscribed ("Member In Compliance State")
    /// who consents again is set `pending` (Mailchimp emails a confirmation)
    /// when true (the default); when false the record fails permanently.
    #[serde(default)]
    pub resubscribe_with_pending: Option<bool>,
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

pub fn check(p: &mut Problems<'_>) {
    let api_key = p.require_string("authentication.api_key");
    p.only_keys("authentication", &["api_key"]);
    p.require_string("properties.list_id");
    let api_base = p.get("properties.api_base").is_some();
    if api_base {
        p.require_url("properties.api_base", true);
    }
    // Without an explicit base the key must name a data center we allow.
    // The messages name the data center (it is in the host name anyway),
    // never the key.
    if let (Some(key), false) = (api_key, api_base) {
        match data_center(key) {
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
        }
    }
    p.optional_string("properties.email_property");
    p.optional_bool("properties.resubscribe_with_pending");
    p.only_keys(
        "properties",
        &[
            "list_id",
            "api_base",
            "email_property",
            "resubscribe_with_pending",
        ],
    );
    p.mappings("mappings", true);
    check_targets(p);
    p.optional_bool("upsert_mode");
    p.optional_bool("enable_webhooks");
    p.optional_bool("enable_emailing");
}

/// Each mapping id must name a valid target, and one must be `status`.
fn check_targets(p: &mut Problems<'_>) {
    let Some(entries) = p.get("mappings").and_then(|m| m.as_array()) else {
        return;
    };
    let mut has_status = false;
    for (i, entry) in entries.iter().enumerate() {
        let Some(id) = entry.get("id").and_then(|id| id.as_str()) else {
            continue; // `mappings` already said so
        };
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
    if !entries.is_empty() && !has_status {
        p.push(
            "mappings",
            "one entry must have id `status`: the consent that subscribes or unsubscribes the member",
        );
    }
}

pub fn schema() -> serde_json::Value {
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
                                "description": "Mailchimp Marketing API key (`…-us14`); its suffix names the data center"}
                }
            },
            "properties": {
                "type": "object",
                "required": ["list_id"],
                "additionalProperties": false,
                "properties": {
                    "list_id": {"type": "string", "description": "Audience (list) id"},
                    "api_base": {"type": "string", "format": "uri",
                                 "description": "API base; https://<dc>.api.mailchimp.com/3.0 from the key's suffix unless set"},
                    "email_property": {"type": "string",
                                       "description": "Didomi property holding the email (default: the user's key, organization_user_id)"},
                    "resubscribe_with_pending": {"type": "boolean", "default": true,
                                                 "description": "Re-consent of a member Mailchimp keeps unsubscribed: set `pending` (Mailchimp emails a confirmation) rather than fail"}
                }
            },
            "mappings": {
                "type": "array", "minItems": 1,
                "items": {"type": "object", "required": ["id", "value"], "additionalProperties": false,
                          "properties": {"id": {"type": "string",
                                                "description": "`status` (subscription), `permission:<marketing_permission_id>`, or a merge field tag"},
                                         "value": {"type": "string", "description": "Didomi property"}}}
            },
            "upsert_mode": {"type": "boolean", "default": false,
                            "description": "Add members that are not in the audience yet"},
            "enable_webhooks": {"type": "boolean", "default": false,
                                "description": "Accepted for Didomi compatibility; Mailchimp's webhooks are not read"},
            "enable_emailing": {"type": "boolean", "default": false,
                                "description": "Accepted for Didomi compatibility; prefsync sends no email"}
        }
    })
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
    fn the_seed_shape_is_valid_and_every_problem_is_named() {
        assert!(paths(seed()).is_empty(), "{:?}", problems(seed()));
        assert_eq!(
            paths(json!({
                "authentication": {"key": "x"},
                "properties": {"api_base": "ftp://x", "list": "y"},
                "mappings": [{"id": "permission:", "value": "a"}, {"id": "NOT A TAG", "value": "b"}],
                "upsert_mode": "yes"
            })),
            [
                "authentication.api_key",
                "authentication.key",
                "properties.list_id",
                "properties.api_base",
                "properties.list",
                "mappings[0].id",
                "mappings[1].id",
                "mappings",
                "upsert_mode"
            ]
        );
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
