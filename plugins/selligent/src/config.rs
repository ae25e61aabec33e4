//! The integration config: Didomi's Selligent shape for the Gate (SOAP
//! Individual) API, or the Engage REST API, chosen by `properties.api`
//! (default `gate`, so the seed's configs stay valid unchanged).
//!
//! The types are the one description of it: serde reads them, and the JSON
//! Schema the host checks and the console draws is derived from them. The
//! two shapes become one schema (see [`SelligentConfig`]'s `JsonSchema`):
//! every field of both in the top-level `properties` (where the host finds
//! the `"format": "uri"` field for the egress allowlist and the `writeOnly`
//! secrets), and `properties.api` choosing, with `if`/`then`/`else`, which
//! fields are required and which are unknown.

use std::borrow::Cow;

use prefsync_sdk::{Mapping, Problems};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

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
        let json = Json::deserialize(deserializer)?;
        let api = json
            .pointer("/properties/api")
            .and_then(Json::as_str)
            .unwrap_or("gate");
        let config = match api {
            "engage" => serde_json::from_value(json).map(SelligentConfig::Engage),
            _ => serde_json::from_value(json).map(SelligentConfig::Gate),
        };
        config.map_err(serde::de::Error::custom)
    }
}

/// Which of Selligent's APIs an integration writes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// The SOAP Individual API (`TriggerCampaign` through a gate).
    Gate,
    /// The Engage REST API (lists of an organization; also runs activations).
    Engage,
}

/// Always on: the campaign behind the gate, or the Engage upsert, creates
/// or updates the profile.
fn always_upsert() -> bool {
    true
}

/// A Gate (SOAP Individual API) integration: the seed's shape.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct GateConfig {
    /// Gate: the Individual API user and its encryption key.
    pub authentication: GateAuthentication,
    /// Gate: the installation and the gate.
    pub properties: GateProperties,
    /// Gate: Selligent field (`id`, e.g. `MAIL`) ← Didomi property (`value`); at least one.
    #[schemars(length(min = 1))]
    pub mappings: Vec<Mapping>,
    /// Always on: Selligent creates or updates the profile (`false` is refused).
    #[serde(default = "always_upsert")]
    #[schemars(extend("const" = true, "default" = true))]
    pub upsert_mode: bool,
}

/// Individual API credentials.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GateAuthentication {
    /// Gate: the Individual API user (`Login` of the `AutomationAuthHeader`).
    #[schemars(extend("writeOnly" = true), length(min = 1))]
    pub username: String,
    /// Gate: the API user's encryption key (`Password` of the header).
    #[schemars(extend("writeOnly" = true), length(min = 1))]
    pub password: String,
}

/// Where to trigger.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GateProperties {
    /// `gate`: the SOAP Individual API (`TriggerCampaign`), the default; `engage`: the REST API.
    #[serde(default)]
    #[schemars(extend("default" = "gate"))]
    pub api: Option<Api>,
    /// Gate: the installation, e.g. `https://acme.slgnt.eu` (a bare host means https).
    #[schemars(url, length(min = 1))]
    pub url: String,
    /// Gate: the gate whose campaign creates or updates the profile.
    #[schemars(length(min = 1))]
    pub gate: String,
}

/// An Engage (REST API) integration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct EngageConfig {
    /// Engage: the API key and secret.
    pub authentication: EngageAuthentication,
    /// Engage: the API base, the organization and the list.
    pub properties: EngageProperties,
    /// Engage: Selligent field (`id`) ← Didomi property (`value`), for consent
    /// deliveries; may be empty when the integration only runs activations
    /// (they bring their own attribute names).
    #[serde(default)]
    pub mappings: Vec<Mapping>,
    /// Always on: Selligent creates or updates the profile (`false` is refused).
    #[serde(default = "always_upsert")]
    #[schemars(extend("const" = true, "default" = true))]
    pub upsert_mode: bool,
}

/// Engage API key: sent as `X-ApiKey: <api_key>:<api_secret>`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EngageAuthentication {
    /// Engage: the API key.
    #[schemars(extend("writeOnly" = true), length(min = 1))]
    pub api_key: String,
    /// Engage: the API secret.
    #[schemars(extend("writeOnly" = true), length(min = 1))]
    pub api_secret: String,
}

/// The organization and list rows are written to.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EngageProperties {
    /// `gate`: the SOAP Individual API (`TriggerCampaign`), the default; `engage`: the REST API.
    // Always `engage` here.
    pub api: Api,
    /// Engage: the API base, e.g. `https://acme.slgnt.eu/Portal/Api` (a bare host means https).
    #[schemars(url, length(min = 1))]
    pub url: String,
    /// Engage: the organization.
    #[schemars(length(min = 1))]
    pub organization: String,
    /// Engage: the list whose records are written, e.g. `USERS`.
    #[schemars(length(min = 1))]
    pub list: String,
    /// Engage: rows per `data/load` request and per activation call.
    #[serde(default)]
    #[schemars(range(min = 1, max = MAX_BATCH_SIZE), extend("default" = DEFAULT_BATCH_SIZE))]
    pub batch_size: Option<u32>,
}

/// What the console shows for the whole config.
const DESCRIPTION: &str = "Selligent through the Gate (SOAP Individual) API, the default, or the Engage REST API (`properties.api: engage`, which also runs activations)";

/// One schema for both shapes, built from the two derived ones:
///
/// - `properties`: every field of either shape, typed and described (a
///   field both have once, with both descriptions), none required but
///   `authentication` and `properties`, nothing closed;
/// - `if` `properties.api` is `engage`, `then` the Engage shape's required
///   fields, and its objects closed to its own fields; `else` the Gate
///   shape's (the console reads this `if`/`then`/`else` to show the fields
///   of the shape chosen, so it keeps the form of the old hand-written one:
///   an `if` on one field's `const`, each branch's objects closed).
impl JsonSchema for SelligentConfig {
    fn schema_name() -> Cow<'static, str> {
        "SelligentConfig".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let gate = GateConfig::json_schema(generator).to_value();
        let engage = EngageConfig::json_schema(generator).to_value();
        let required = |schema: &Json| -> Vec<Json> {
            schema["required"].as_array().cloned().unwrap_or_default()
        };
        let shared: Vec<Json> = required(&gate)
            .into_iter()
            .filter(|name| required(&engage).contains(name))
            .collect();
        let only = |schema: &Json| -> Vec<Json> {
            required(schema)
                .into_iter()
                .filter(|name| !shared.contains(name))
                .collect()
        };

        let mut fields = props(&gate);
        for (name, from_engage) in props(&engage) {
            let Some(field) = fields.get_mut(&name) else {
                fields.insert(name, from_engage);
                continue;
            };
            let from_gate = field.clone();
            describe(field, &from_gate, &from_engage);
            // An object of both shapes: every field of either, the Gate's first.
            if let Some(inner) = field.get_mut("properties").and_then(Json::as_object_mut) {
                for (inner_name, schema) in props(&from_engage) {
                    match inner.get_mut(&inner_name) {
                        Some(slot) => {
                            let first = slot.clone();
                            describe(slot, &first, &schema);
                        }
                        None => {
                            inner.insert(inner_name, schema);
                        }
                    }
                }
                if let Some(object) = field.as_object_mut() {
                    object.remove("required");
                    object.remove("additionalProperties");
                }
            }
        }
        // How many mappings (at least one for the Gate) is the branches' to say.
        let mut at_least = Map::new();
        for (name, field) in fields.iter_mut() {
            if let Some(min) = field.as_object_mut().and_then(|f| f.remove("minItems")) {
                at_least.insert(name.clone(), json!({"minItems": min}));
            }
        }

        let branch = |title: &str, shape: &Json, extra: Map<String, Json>| -> Json {
            let mut properties = extra;
            for (name, field) in props(shape) {
                if field.get("properties").is_some() {
                    properties.insert(name, closed(&field));
                }
            }
            let mut branch = json!({"title": title, "properties": properties});
            let required = only(shape);
            if !required.is_empty() {
                branch["required"] = json!(required);
            }
            branch
        };
        let engage_branch = branch("Engage (REST API)", &engage, Map::new());
        let gate_branch = branch("Gate (SOAP Individual API)", &gate, at_least);

        let schema = json!({
            "type": "object",
            "description": DESCRIPTION,
            "required": shared,
            "properties": fields,
            "if": {
                "required": ["properties"],
                "properties": {"properties": {
                    "type": "object",
                    "required": ["api"],
                    "properties": {"api": {"const": "engage"}}
                }}
            },
            "then": engage_branch,
            "else": gate_branch
        });
        Schema::try_from(schema).expect("an object is a schema")
    }
}

/// The `properties` of an object schema.
fn props(schema: &Json) -> Map<String, Json> {
    schema["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

/// `target` described as `first` and, when it says something else, `second`.
fn describe(target: &mut Json, first: &Json, second: &Json) {
    let text = |s: &Json| s["description"].as_str().map(str::to_string);
    let description = match (text(first), text(second)) {
        (Some(a), Some(b)) if a != b => format!("{a} {b}"),
        (Some(a), _) => a,
        (None, Some(b)) => b,
        (None, None) => return,
    };
    target["description"] = json!(description);
}

/// An object schema reduced to its shape: its required fields, and no
/// field but its own (their types are the top-level schema's).
fn closed(object: &Json) -> Json {
    let names: Map<String, Json> = props(object)
        .keys()
        .map(|name| (name.clone(), json!(true)))
        .collect();
    json!({
        "required": object["required"].as_array().cloned().unwrap_or_default(),
        "properties": names,
        "additionalProperties": false
    })
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

    /// Rows per `data/load` (and per activation call).
    pub fn batch_size(&self) -> u32 {
        self.properties
            .batch_size
            .unwrap_or(DEFAULT_BATCH_SIZE)
            .clamp(1, MAX_BATCH_SIZE)
    }
}

/// The rules the schema cannot say.
pub fn check(config: &SelligentConfig, p: &mut Problems) {
    match config {
        SelligentConfig::Gate(gate) => {
            not_blank(
                p,
                &[
                    ("authentication.username", &gate.authentication.username),
                    ("authentication.password", &gate.authentication.password),
                    ("properties.gate", &gate.properties.gate),
                ],
            );
            // An http(s) URL or a bare host: the credentials go there.
            p.url("properties.url", &gate.properties.url, true);
            p.mappings("mappings", &gate.mappings);
        }
        SelligentConfig::Engage(engage) => {
            not_blank(
                p,
                &[
                    ("authentication.api_key", &engage.authentication.api_key),
                    (
                        "authentication.api_secret",
                        &engage.authentication.api_secret,
                    ),
                    ("properties.organization", &engage.properties.organization),
                    ("properties.list", &engage.properties.list),
                ],
            );
            p.url("properties.url", &engage.properties.url, true);
            p.mappings("mappings", &engage.mappings);
            // Consent deliveries match the profile on the field the user's key maps to.
            if !engage.mappings.is_empty()
                && !engage.mappings.iter().any(|m| m.value == KEY_PROPERTY)
            {
                p.push(
                    "mappings",
                    format!("must map `{KEY_PROPERTY}` to the list's key field (e.g. {{\"id\": \"MAIL\", \"value\": \"{KEY_PROPERTY}\"}}): Engage upserts match on it"),
                );
            }
        }
    }
}

/// The schema refuses an empty string; a blank one is as empty.
fn not_blank(p: &mut Problems, fields: &[(&str, &String)]) {
    for (path, value) in fields {
        if value.trim().is_empty() {
            p.push(path, "must not be empty");
        }
    }
}

/// The Didomi property that identifies a user; on Engage its mapping names
/// the list's key field.
pub const KEY_PROPERTY: &str = "organization_user_id";

#[cfg(test)]
mod tests {
    use prefsync_sdk::Connector;
    use prefsync_sdk::connector::validate;
    use serde_json::json;

    use super::*;
    use crate::Selligent;

    fn problems(config: &Json) -> Vec<String> {
        validate::<Selligent>(&config.to_string())
            .into_iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    fn paths(config: &Json) -> Vec<String> {
        validate::<Selligent>(&config.to_string())
            .into_iter()
            .map(|p| p.path)
            .collect()
    }

    fn seed() -> Json {
        json!({
            "type_id": "selligent",
            "authentication": {"username": "API_USER", "password": "ENCRYPTION_KEY"},
            "properties": {"url": "acme.slgnt.eu", "gate": "DIDOMI_GATE"},
            "mappings": [{"id": "MAIL", "value": "organization_user_id"}],
            "upsert_mode": true
        })
    }

    #[test]
    fn the_seed_shape_is_valid_and_upsert_cannot_be_turned_off() {
        let mut seed = seed();
        assert!(problems(&seed).is_empty());
        seed["properties"]["api"] = json!("gate");
        assert!(problems(&seed).is_empty());
        seed["properties"]["api"] = Json::Null;
        assert!(problems(&seed).is_empty());
        seed.as_object_mut().unwrap().remove("upsert_mode");
        assert!(problems(&seed).is_empty());
        seed["upsert_mode"] = json!(false);
        assert_eq!(problems(&seed), ["upsert_mode: must be true"]);

        assert_eq!(
            problems(&json!({"authentication": {"user": "x"}, "properties": {"url": 3}})),
            [
                "authentication.password: is required",
                "authentication.user: unknown field (expected one of: password, username)",
                "authentication.username: is required",
                "mappings: is required",
                "properties.gate: is required",
                "properties.url: must be a string",
            ]
        );
        let mut empty = self::seed();
        empty["mappings"] = json!([]);
        empty["properties"]["organization"] = json!("ACME");
        assert_eq!(
            problems(&empty),
            [
                "mappings: must not be empty",
                "properties.organization: unknown field (expected one of: api, gate, url)",
            ]
        );
    }

    #[test]
    fn gate_rules_the_schema_cannot_say() {
        let mut config = seed();
        config["authentication"]["password"] = json!("  ");
        config["properties"]["url"] = json!("ftp://acme.slgnt.eu");
        config["properties"]["gate"] = json!(" ");
        config["mappings"] = json!([
            {"id": "MAIL", "value": "organization_user_id"},
            {"id": "MAIL", "value": "consents_purposes_newsletter_enabled"}
        ]);
        assert_eq!(
            problems(&config),
            [
                "authentication.password: must not be empty",
                "properties.gate: must not be empty",
                "properties.url: must be an https URL, not a `ftp` URL",
                "mappings[1].id: `MAIL` is mapped twice",
            ]
        );
        let mut config = seed();
        config["properties"]["url"] = json!("https://u:pw@acme.slgnt.eu");
        assert_eq!(paths(&config), ["properties.url"]);
    }

    fn engage() -> Json {
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
        assert!(problems(&engage()).is_empty());
        let mut config = engage();
        config.as_object_mut().unwrap().remove("mappings");
        config["properties"]
            .as_object_mut()
            .unwrap()
            .remove("batch_size");
        assert!(problems(&config).is_empty());
        let mut config = engage();
        config["properties"]["batch_size"] = Json::Null;
        config["upsert_mode"] = json!(true);
        assert!(problems(&config).is_empty());

        // Every field of the Engage shape, named at once (the Gate's are unknown).
        assert_eq!(
            problems(&json!({
                "authentication": {"api_key": "", "username": "u"},
                "properties": {"api": "engage", "url": "https://acme.slgnt.eu/Portal/Api", "list": 3,
                               "gate": "G", "batch_size": 5001},
                "mappings": [{"id": "MAIL"}],
                "upsert_mode": false
            })),
            [
                "authentication.api_key: must not be empty",
                "authentication.api_secret: is required",
                "authentication.username: unknown field (expected one of: api_key, api_secret)",
                "mappings[0].value: is required",
                "properties.batch_size: must be at most 5000",
                "properties.gate: unknown field (expected one of: api, batch_size, list, organization, url)",
                "properties.list: must be a string",
                "properties.organization: is required",
                "upsert_mode: must be true",
            ]
        );
        for (bad, message) in [
            (json!(0), "must be at least 1"),
            (json!(2.5), "must be a whole number"),
            (json!("500"), "must be a whole number"),
            (json!(-1), "must be at least 1"),
        ] {
            let mut config = engage();
            config["properties"]["batch_size"] = bad.clone();
            assert_eq!(
                problems(&config),
                [format!("properties.batch_size: {message}")],
                "{bad}"
            );
        }

        // An unknown API is refused; the shape checked is the default's,
        // the Gate's (the schema's `else`, as in the hand-written one).
        let mut config = engage();
        config["properties"]["api"] = json!("rest");
        let found = problems(&config);
        assert!(
            found.contains(&"properties.api: must be one of: gate, engage".to_string()),
            "{found:?}"
        );
        assert!(
            found.contains(&"properties.gate: is required".to_string()),
            "{found:?}"
        );
    }

    #[test]
    fn engage_rules_the_schema_cannot_say() {
        // Mappings for consent deliveries must say which field is the key.
        let mut config = engage();
        config["mappings"] =
            json!([{"id": "OPTIN", "value": "consents_purposes_newsletter_enabled"}]);
        let found = problems(&config);
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("mappings: must map `organization_user_id`"));
        config["mappings"] = json!([
            {"id": "MAIL", "value": "organization_user_id"},
            {"id": "OPTIN", "value": "consents_purposes_newsletter_enabled"}
        ]);
        assert!(problems(&config).is_empty());

        let mut config = engage();
        config["authentication"]["api_secret"] = json!(" ");
        config["properties"]["organization"] = json!(" ");
        config["properties"]["list"] = json!(" ");
        config["properties"]["url"] = json!("ftp://acme");
        assert_eq!(
            paths(&config),
            [
                "authentication.api_secret",
                "properties.organization",
                "properties.list",
                "properties.url"
            ]
        );
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
        let schema = Selligent::config_schema();
        let auth = &schema["properties"]["authentication"]["properties"];
        for secret in ["username", "password", "api_key", "api_secret"] {
            assert_eq!(auth[secret]["writeOnly"], true, "{secret}");
        }
        let props = &schema["properties"]["properties"]["properties"];
        assert_eq!(props["url"]["format"], "uri");
        assert!(props["url"].get("writeOnly").is_none());
        let text = schema.to_string();
        assert_eq!(text.matches("\"format\":\"uri\"").count(), 1, "{text}");
        assert_eq!(text.matches("\"writeOnly\":true").count(), 4, "{text}");
        assert!(!text.contains("$ref"));
        // The shapes: `api: engage` then Engage's, else (gate or none) the Gate's.
        assert_eq!(
            schema["if"]["properties"]["properties"]["properties"]["api"]["const"],
            "engage"
        );
        assert_eq!(
            schema["then"]["properties"]["authentication"]["required"],
            json!(["api_key", "api_secret"])
        );
        let gate = &schema["else"];
        assert_eq!(
            gate["properties"]["properties"]["required"],
            json!(["url", "gate"])
        );
        assert_eq!(gate["required"], json!(["mappings"]));
        assert_eq!(gate["properties"]["mappings"]["minItems"], 1);
        assert!(schema["properties"]["mappings"].get("minItems").is_none());
        assert_eq!(schema["required"], json!(["authentication", "properties"]));
        assert!(schema.get("additionalProperties").is_none());
    }
}
