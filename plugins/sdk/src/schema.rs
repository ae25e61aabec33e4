//! A config type's JSON Schema, and (natively) a config checked against it
//! the way the host checks it.

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::Value as Json;

use crate::types::ValidationProblem;

/// The JSON Schema (draft 2020-12) of `T`, every subschema inline: the
/// host's walkers (URL fields, secrets) and the console's forms read it
/// without resolving `$ref`s. Two shapes are made plainer for the forms: a
/// documented Rust enum (a `oneOf` of `const`s) becomes an `enum`, and an
/// `Option`'s `"default": null` is left out (leaving a field out already
/// means that).
pub fn of<T: JsonSchema>() -> Json {
    let generator = SchemaSettings::draft2020_12()
        .with(|settings| settings.inline_subschemas = true)
        .into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    plainer(&mut schema);
    schema
}

/// Rewrites, depth first, the shapes [`of`] promises to make plainer.
fn plainer(node: &mut Json) {
    match node {
        Json::Array(items) => items.iter_mut().for_each(plainer),
        Json::Object(map) => {
            map.values_mut().for_each(plainer);
            if map.get("default") == Some(&Json::Null) {
                map.remove("default");
            }
            for keyword in ["oneOf", "anyOf"] {
                let Some(values) = map.get(keyword).and_then(choices) else {
                    continue;
                };
                map.remove(keyword);
                let nullable = values.contains(&Json::Null);
                if values.iter().all(|v| v.is_string() || v.is_null()) {
                    map.insert(
                        "type".into(),
                        if nullable {
                            serde_json::json!(["string", "null"])
                        } else {
                            Json::String("string".into())
                        },
                    );
                }
                map.insert("enum".into(), Json::Array(values));
            }
        }
        _ => {}
    }
}

/// The values a list of branches allows when each is a `const`, an `enum`
/// or `{"type": "null"}` (then `null` is one of them).
fn choices(branches: &Json) -> Option<Vec<Json>> {
    let mut values = Vec::new();
    for branch in branches.as_array()? {
        if let Some(value) = branch.get("const") {
            values.push(value.clone());
        } else if let Some(Json::Array(listed)) = branch.get("enum") {
            values.extend(listed.iter().cloned());
        } else if branch.get("type") == Some(&Json::String("null".into())) {
            values.push(Json::Null);
        } else {
            return None;
        }
    }
    (!values.is_empty()).then_some(values)
}

/// Every problem of `config` against `schema`, as the host reports them.
/// In a component this is empty: the host checked before the call.
pub fn problems(schema: &Json, config: &Json) -> Vec<ValidationProblem> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        match compiled(schema) {
            Ok(compiled) => compiled
                .problems(config)
                .into_iter()
                .map(|p| ValidationProblem {
                    path: p.path,
                    message: p.message,
                })
                .collect(),
            Err(e) => vec![ValidationProblem {
                path: String::new(),
                message: e.to_string(),
            }],
        }
    }
    #[cfg(target_arch = "wasm32")]
    {
        let _ = (schema, config);
        Vec::new()
    }
}

/// `schema` compiled once per process (a native test or fuzz target checks
/// many configs against the same few schemas).
#[cfg(not(target_arch = "wasm32"))]
fn compiled(
    schema: &Json,
) -> Result<std::sync::Arc<prefsync_sdk_schema::ConfigSchema>, prefsync_sdk_schema::InvalidSchema> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex, OnceLock};
    static COMPILED: OnceLock<Mutex<HashMap<String, Arc<prefsync_sdk_schema::ConfigSchema>>>> =
        OnceLock::new();
    let key = schema.to_string();
    let cache = COMPILED.get_or_init(Default::default);
    if let Some(found) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(found.clone());
    }
    let fresh = Arc::new(prefsync_sdk_schema::ConfigSchema::compile(schema)?);
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, fresh.clone());
    Ok(fresh)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;
    use crate::Mapping;

    /// A config.
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        /// Where to send.
        #[schemars(url)]
        url: String,
        /// The key.
        #[schemars(extend("writeOnly" = true), length(min = 1))]
        api_key: String,
        /// Fields.
        #[schemars(length(min = 1))]
        mappings: Vec<Mapping>,
    }

    #[test]
    fn the_schema_is_inline_and_carries_the_marks() {
        let schema = of::<Sample>();
        assert_eq!(schema["properties"]["url"]["format"], "uri");
        assert_eq!(schema["properties"]["api_key"]["writeOnly"], true);
        assert_eq!(schema["properties"]["url"]["description"], "Where to send.");
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(
            schema["properties"]["mappings"]["items"]["required"],
            json!(["id", "value"])
        );
        assert!(!schema.to_string().contains("$ref"), "{schema}");
    }

    /// How a destination names a contact.
    #[derive(Deserialize, JsonSchema)]
    #[serde(rename_all = "snake_case")]
    #[allow(dead_code)]
    enum Identifier {
        /// By email address.
        Email,
        /// By phone number.
        PhoneNumber,
    }

    /// Optional settings.
    #[derive(Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Settings {
        /// How contacts are named.
        #[serde(default)]
        identifier: Option<Identifier>,
        /// Required choice.
        mode: Identifier,
        /// A list id.
        #[serde(default)]
        list: Option<String>,
    }

    #[test]
    fn documented_enums_become_enums_and_null_defaults_go() {
        let schema = of::<Settings>();
        let props = &schema["properties"];
        assert_eq!(props["mode"]["enum"], json!(["email", "phone_number"]));
        assert_eq!(props["mode"]["type"], "string");
        assert_eq!(
            props["identifier"]["enum"],
            json!(["email", "phone_number", null])
        );
        assert_eq!(props["identifier"]["type"], json!(["string", "null"]));
        assert_eq!(
            props["identifier"]["description"],
            "How contacts are named."
        );
        assert!(props["list"].get("default").is_none(), "{schema}");
        assert!(!schema.to_string().contains("oneOf"), "{schema}");
        let found = problems(&schema, &json!({"mode": "fax", "identifier": null}));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].message, "must be one of: email, phone_number");
    }

    #[test]
    fn a_config_is_checked_as_the_host_checks_it() {
        let found: Vec<String> = problems(
            &of::<Sample>(),
            &json!({"url": 3, "mappings": [{"id": "A", "value": ""}], "api_key": ""}),
        )
        .into_iter()
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect();
        assert_eq!(
            found,
            [
                "api_key: must not be empty",
                "mappings[0].value: must not be empty",
                "url: must be a string"
            ]
        );
    }
}
