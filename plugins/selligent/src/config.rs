//! The integration config: Didomi's Selligent shape for the Gate (SOAP
//! Individual) API, or the Engage REST API, chosen by `properties.api`
//! (default `gate`, so the seed's configs stay valid unchanged).

use prefsync_sdk::{Mapping, Problems};
use serde::Deserialize;
use serde_json::json;

/// Rows per `data/load` when `properties.batch_size` is not set.
pub const DEFAULT_BATCH_SIZE: u32 = 500;
/// The most rows per `data/load` this connector sends.
pub const MAX_BATCH_SIZE: u32 = 5000;

/// A Selligent integration, through one of the two APIs.
#[derive(Debug, Clone)]
pub enum SelligentConfig {
    /// The SOAP Individual API (`TriggerCampaign` through a gate).
    Gate(GateConfig),
    /// The Engage REST API (lists of an organization).
    Engage(EngageConfig),
}

impl<'de> Deserialize<'de> for SelligentConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = serde_json::Value::deserialize(deserializer)?;
        let api = json
            .pointer("/properties/api")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("gate");
        let config = match api {
            "engage" => serde_json::from_value(json).map(SelligentConfig::Engage),
            _ => serde_json::from_value(json).map(SelligentConfig::Gate),
        };
        config.map_err(serde::de::Error::custom)
    }
}

/// A Gate (SOAP Individual API) integration: the seed's shape.
#[derive(Debug, Clone, Deserialize)]
pub struct GateConfig {
    /// The API user and its encryption key.
    pub authentication: GateAuthentication,
    /// The installation and the gate.
    pub properties: GateProperties,
    /// Selligent field (`id`, e.g. `MAIL`) ← Didomi property (`value`).
    pub mappings: Vec<Mapping>,
}

/// Individual API credentials.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateAuthentication {
    /// The API user (`Login` of the `AutomationAuthHeader`).
    pub username: String,
    /// The API user's encryption key (`Password` of the header).
    pub password: String,
}

/// Where to trigger.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateProperties {
    /// `gate` when present.
    #[serde(default)]
    pub api: Option<String>,
    /// The installation, e.g. `https://acme.slgnt.eu` (a bare host means https).
    pub url: String,
    /// The gate whose campaign creates or updates the profile.
    pub gate: String,
}

/// An Engage (REST API) integration.
#[derive(Debug, Clone, Deserialize)]
pub struct EngageConfig {
    pub authentication: EngageAuthentication,
    pub properties: EngageProperties,
    /// Selligent field (`id`) ← Didomi property (`value`), for consent
    /// deliveries; may be empty when the integration only runs activations
    /// (they bring their own attribute names).
    #[serde(default)]
    pub mappings: Vec<Mapping>,
}

/// Engage API key: sent as `X-ApiKey: <api_key>:<api_secret>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngageAuthentication {
    pub api_key: String,
    pub api_secret: String,
}

/// The organization and list rows are written to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngageProperties {
    /// Always `engage` here.
    pub api: String,
    /// The API base, e.g. `https://acme.slgnt.eu/Portal/Api`.
    pub url: String,
    pub organization: String,
    /// The list (e.g. `USERS`) whose records are written.
    pub list: String,
    /// Rows per `data/load` (and per activation call); default 500, at most 5000.
    #[serde(default)]
    pub batch_size: Option<u32>,
}

/// `https://` prepended to a bare host, trailing slashes removed.
fn base(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.contains("://") {
        url.to_string()
    } else {
        format!("https://{url}")
    }
}

impl GateConfig {
    /// The Individual API endpoint of the installation.
    pub fn endpoint(&self) -> String {
        format!("{}/automation/individual.asmx", base(&self.properties.url))
    }
}

impl EngageConfig {
    /// The list's base URL: `{url}/organizations/{org}/lists/{list}`.
    pub fn list_url(&self) -> String {
        use prefsync_sdk::http::encode_component;
        format!(
            "{}/organizations/{}/lists/{}",
            base(&self.properties.url),
            encode_component(&self.properties.organization),
            encode_component(&self.properties.list)
        )
    }

    /// The `X-ApiKey` header's value.
    pub fn api_key_header(&self) -> String {
        format!(
            "{}:{}",
            self.authentication.api_key, self.authentication.api_secret
        )
    }

    pub fn batch_size(&self) -> u32 {
        self.properties
            .batch_size
            .unwrap_or(DEFAULT_BATCH_SIZE)
            .clamp(1, MAX_BATCH_SIZE)
    }
}

pub fn check(p: &mut Problems<'_>) {
    let api = match p.optional_string("properties.api") {
        None => Some("gate"),
        Some(api @ ("gate" | "engage")) => Some(api),
        Some(other) => {
            p.push(
                "properties.api",
                format!("must be `gate` (the SOAP Individual API) or `engage` (the REST API), not `{other}`"),
            );
            None
        }
    };
    match api {
        Some("engage") => check_engage(p),
        Some(_) => check_gate(p),
        // Which fields belong depends on the API: only what both share.
        None => {
            p.require_url("properties.url", true);
        }
    }
    if p.optional_bool("upsert_mode") == Some(false) {
        p.push(
            "upsert_mode",
            "Selligent always upserts (the campaign behind the gate, or the Engage upsert, creates or updates the profile): remove it or set it to true",
        );
    }
}

fn check_gate(p: &mut Problems<'_>) {
    p.require_string("authentication.username");
    p.require_string("authentication.password");
    p.only_keys("authentication", &["username", "password"]);
    p.require_url("properties.url", true);
    p.require_string("properties.gate");
    p.only_keys("properties", &["api", "url", "gate"]);
    p.mappings("mappings", true);
}

fn check_engage(p: &mut Problems<'_>) {
    p.require_string("authentication.api_key");
    p.require_string("authentication.api_secret");
    p.only_keys("authentication", &["api_key", "api_secret"]);
    p.require_url("properties.url", true);
    p.require_string("properties.organization");
    p.require_string("properties.list");
    match p.get("properties.batch_size") {
        None | Some(serde_json::Value::Null) => {}
        Some(n)
            if n.as_u64()
                .is_some_and(|n| (1..=MAX_BATCH_SIZE as u64).contains(&n)) => {}
        Some(_) => p.push(
            "properties.batch_size",
            format!("must be a whole number from 1 to {MAX_BATCH_SIZE}"),
        ),
    }
    p.only_keys(
        "properties",
        &["api", "url", "organization", "list", "batch_size"],
    );
    p.mappings("mappings", false);
    // Consent deliveries match the profile on the field the user's key maps to.
    if let Some(mappings) = p.get("mappings").and_then(serde_json::Value::as_array)
        && !mappings.is_empty()
        && mappings
            .iter()
            .all(|m| m.get("value").is_some_and(serde_json::Value::is_string))
        && !mappings
            .iter()
            .any(|m| m.get("value").and_then(serde_json::Value::as_str) == Some(KEY_PROPERTY))
    {
        p.push(
            "mappings",
            format!("must map `{KEY_PROPERTY}` to the list's key field (e.g. {{\"id\": \"MAIL\", \"value\": \"{KEY_PROPERTY}\"}}): Engage upserts match on it"),
        );
    }
}

/// The Didomi property that identifies a user; on Engage its mapping names
/// the list's key field.
pub const KEY_PROPERTY: &str = "organization_user_id";

/// The JSON schema. Every field sits in the top-level `properties` (the host
/// finds the `"format": "uri"` fields there, for the egress allowlist); the
/// two shapes are told apart by `properties.api` with `if`/`then`/`else`.
pub fn schema() -> serde_json::Value {
    let closed = |keys: &[&str]| {
        let names: serde_json::Map<String, serde_json::Value> =
            keys.iter().map(|k| (k.to_string(), json!(true))).collect();
        json!({"required": keys, "properties": names, "additionalProperties": false})
    };
    let gate_properties = {
        let mut p = closed(&["url", "gate"]);
        p["properties"]["api"] = json!(true);
        p
    };
    let engage_properties = {
        let mut p = closed(&["api", "url", "organization", "list"]);
        p["properties"]["batch_size"] = json!(true);
        p
    };
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "description": "Selligent through the Gate (SOAP Individual) API, the default, or the Engage REST API (`properties.api: engage`, which also runs activations)",
        "required": ["authentication", "properties"],
        "properties": {
            "authentication": {
                "type": "object",
                "properties": {
                    "username": {"type": "string", "writeOnly": true, "description": "Gate: Individual API user"},
                    "password": {"type": "string", "writeOnly": true, "description": "Gate: the API user's encryption key"},
                    "api_key": {"type": "string", "writeOnly": true, "description": "Engage: API key"},
                    "api_secret": {"type": "string", "writeOnly": true, "description": "Engage: API secret"}
                }
            },
            "properties": {
                "type": "object",
                "properties": {
                    "api": {"enum": ["gate", "engage"], "default": "gate",
                            "description": "gate: the SOAP Individual API (TriggerCampaign); engage: the REST API"},
                    "url": {"type": "string", "format": "uri",
                            "description": "Gate: the installation, e.g. https://acme.slgnt.eu; Engage: the API base, e.g. https://acme.slgnt.eu/Portal/Api"},
                    "gate": {"type": "string", "description": "Gate: the gate whose campaign creates or updates the profile"},
                    "organization": {"type": "string", "description": "Engage: the organization"},
                    "list": {"type": "string", "description": "Engage: the list whose records are written, e.g. USERS"},
                    "batch_size": {"type": "integer", "minimum": 1, "maximum": MAX_BATCH_SIZE,
                                   "default": DEFAULT_BATCH_SIZE,
                                   "description": "Engage: rows per data/load request and per activation call"}
                }
            },
            "mappings": {
                "type": "array",
                "items": {"type": "object", "required": ["id", "value"], "additionalProperties": false,
                          "properties": {"id": {"type": "string", "description": "Selligent field, e.g. MAIL"},
                                         "value": {"type": "string", "description": "Didomi property"}}}
            },
            "upsert_mode": {"const": true, "default": true,
                            "description": "Always on: Selligent creates or updates the profile"}
        },
        "if": {"properties": {"properties": {"required": ["api"], "properties": {"api": {"const": "engage"}}}}},
        "then": {
            "title": "Engage (REST API)",
            "properties": {
                "authentication": closed(&["api_key", "api_secret"]),
                "properties": engage_properties
            }
        },
        "else": {
            "title": "Gate (SOAP Individual API)",
            "required": ["mappings"],
            "properties": {
                "authentication": closed(&["username", "password"]),
                "properties": gate_properties,
                "mappings": {"minItems": 1}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use prefsync_sdk::connector::validate;
    use serde_json::json;

    use super::*;
    use crate::Selligent;

    fn problems(config: serde_json::Value) -> Vec<(String, String)> {
        validate::<Selligent>(&config.to_string())
            .into_iter()
            .map(|p| (p.path, p.message))
            .collect()
    }

    fn paths(config: serde_json::Value) -> Vec<String> {
        problems(config).into_iter().map(|(path, _)| path).collect()
    }

    #[test]
    fn the_seed_shape_is_valid_and_upsert_cannot_be_turned_off() {
        let mut seed = json!({
            "type_id": "selligent",
            "authentication": {"username": "API_USER", "password": "ENCRYPTION_KEY"},
            "properties": {"url": "acme.slgnt.eu", "gate": "DIDOMI_GATE"},
            "mappings": [{"id": "MAIL", "value": "organization_user_id"}],
            "upsert_mode": true
        });
        assert!(problems(seed.clone()).is_empty());
        seed["properties"]["api"] = json!("gate");
        assert!(problems(seed.clone()).is_empty());
        seed["upsert_mode"] = json!(false);
        let found = problems(seed);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "upsert_mode");
        assert!(found[0].1.contains("always upserts"));
        assert_eq!(
            paths(json!({"authentication": {"user": "x"}, "properties": {"url": "ftp://x"}})),
            [
                "authentication.username",
                "authentication.password",
                "authentication.user",
                "properties.url",
                "properties.gate",
                "mappings"
            ]
        );
    }

    fn engage() -> serde_json::Value {
        json!({
            "type_id": "selligent",
            "authentication": {"api_key": "KEY", "api_secret": "SECRET"},
            "properties": {"api": "engage", "url": "https://acme.slgnt.eu/Portal/Api",
                           "organization": "ACME", "list": "USERS", "batch_size": 500},
            "mappings": []
        })
    }

    #[test]
    fn engage_configs_are_checked_field_by_field() {
        assert!(problems(engage()).is_empty());
        let mut config = engage();
        config.as_object_mut().unwrap().remove("mappings");
        config["properties"]
            .as_object_mut()
            .unwrap()
            .remove("batch_size");
        assert!(problems(config).is_empty());

        let found = paths(json!({
            "authentication": {"api_key": "", "username": "u"},
            "properties": {"api": "engage", "url": "ftp://x", "list": 3, "gate": "G", "batch_size": 5001},
            "mappings": [{"id": "MAIL"}],
            "upsert_mode": false
        }));
        assert_eq!(
            found,
            [
                "authentication.api_key",
                "authentication.api_secret",
                "authentication.username",
                "properties.url",
                "properties.organization",
                "properties.list",
                "properties.batch_size",
                "properties.gate",
                "mappings[0].value",
                "upsert_mode"
            ]
        );
        for bad in [json!(0), json!(2.5), json!("500"), json!(-1)] {
            let mut config = engage();
            config["properties"]["batch_size"] = bad.clone();
            assert_eq!(paths(config), ["properties.batch_size"], "{bad}");
        }
        // Mappings for consent deliveries must say which field is the key.
        let mut config = engage();
        config["mappings"] =
            json!([{"id": "OPTIN", "value": "consents_purposes_newsletter_enabled"}]);
        let found = problems(config);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "mappings");
        assert!(
            found[0].1.contains("organization_user_id"),
            "{}",
            found[0].1
        );

        let mut config = engage();
        config["properties"]["api"] = json!("rest");
        let found = problems(config);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "properties.api");
        assert!(found[0].1.contains("`rest`"));
    }

    #[test]
    fn engage_urls_headers_and_batch_sizes() {
        let mut config = engage();
        config["properties"]["url"] = json!("acme.slgnt.eu/Portal/Api/");
        config["properties"]["organization"] = json!("AC ME");
        let SelligentConfig::Engage(engage) = serde_json::from_value(config).unwrap() else {
            panic!("not engage")
        };
        assert_eq!(
            engage.list_url(),
            "https://acme.slgnt.eu/Portal/Api/organizations/AC%20ME/lists/USERS"
        );
        assert_eq!(engage.api_key_header(), "KEY:SECRET");
        assert_eq!(engage.batch_size(), 500);
        let mut config = engage.clone();
        config.properties.batch_size = None;
        assert_eq!(config.batch_size(), DEFAULT_BATCH_SIZE);
        let gate: SelligentConfig = serde_json::from_value(json!({
            "authentication": {"username": "u", "password": "p"},
            "properties": {"url": "acme.slgnt.eu", "gate": "G"},
            "mappings": [{"id": "MAIL", "value": "organization_user_id"}]
        }))
        .unwrap();
        assert!(matches!(gate, SelligentConfig::Gate(_)));
    }

    #[test]
    fn the_schema_describes_both_apis_and_hides_secrets() {
        let schema = schema();
        for secret in ["username", "password", "api_key", "api_secret"] {
            assert_eq!(
                schema["properties"]["authentication"]["properties"][secret]["writeOnly"], true,
                "{secret}"
            );
        }
        assert_eq!(
            schema["properties"]["properties"]["properties"]["url"]["format"],
            "uri"
        );
        assert_eq!(
            schema["then"]["properties"]["authentication"]["required"],
            json!(["api_key", "api_secret"])
        );
        assert_eq!(
            schema["else"]["properties"]["properties"]["required"],
            json!(["url", "gate"])
        );
    }
}
