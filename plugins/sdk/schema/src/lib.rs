//! An integration config checked against its connector's JSON Schema.
//!
//! The schema is the single description of a config (the SDK derives it
//! from the connector's config type). Every problem comes back at once as a
//! dotted path (`authentication.url`, `mappings[0].id`) and a message in the
//! same words the connectors use. A message never quotes the value it found
//! wrong: that value may be a secret.

#![warn(missing_docs)]

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::paths::{Location, LocationSegment};
use jsonschema::{JsonType, Validator};
use serde_json::Value as Json;

/// A connector's config schema, compiled once and used for every check.
pub struct ConfigSchema {
    schema: Json,
    validator: Validator,
}

/// The connector's schema is not a JSON Schema this checker can use.
#[derive(Debug, thiserror::Error)]
#[error("the config schema is not a valid JSON Schema: {0}")]
pub struct InvalidSchema(String);

/// One problem of a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the field, e.g. `authentication.url`; empty for the
    /// whole document.
    pub path: String,
    /// What is wrong, for the person editing the config.
    pub message: String,
}

impl std::fmt::Debug for ConfigSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigSchema").finish_non_exhaustive()
    }
}

impl ConfigSchema {
    /// Compiles `schema` (draft 2020-12 unless it names another). Formats
    /// are not asserted: the host's URL rule checks `format: uri` fields in
    /// its own words, and other formats are annotations.
    pub fn compile(schema: &Json) -> Result<Self, InvalidSchema> {
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(false)
            .build(schema)
            .map_err(|e| InvalidSchema(e.to_string()))?;
        Ok(ConfigSchema {
            schema: schema.clone(),
            validator,
        })
    }

    /// Every problem of `config`, at most one per path (the first found),
    /// sorted by path; empty when it fits.
    pub fn problems(&self, config: &Json) -> Vec<Problem> {
        let mut found: Vec<Problem> = Vec::new();
        for error in self.validator.iter_errors(config) {
            let at = dotted(error.instance_path());
            for problem in self.describe(&at, error.kind(), error.schema_path()) {
                if !found.iter().any(|p| p.path == problem.path) {
                    found.push(problem);
                }
            }
        }
        found.sort_by(|a, b| a.path.cmp(&b.path));
        found
    }

    fn describe(&self, at: &str, kind: &ValidationErrorKind, schema_at: &Location) -> Vec<Problem> {
        let one = |message: String| {
            vec![Problem {
                path: at.to_string(),
                message,
            }]
        };
        match kind {
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                vec![Problem {
                    path: join(at, name),
                    message: "is required".into(),
                }]
            }
            ValidationErrorKind::AdditionalProperties { unexpected }
            | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
                let known = self.known_properties(schema_at);
                unexpected
                    .iter()
                    .map(|name| Problem {
                        path: join(at, name),
                        message: if known.is_empty() {
                            "unknown field".into()
                        } else {
                            format!("unknown field (expected one of: {})", known.join(", "))
                        },
                    })
                    .collect()
            }
            ValidationErrorKind::Type { kind } => one(format!("must be {}", expected(kind))),
            ValidationErrorKind::Enum { options } => {
                one(format!("must be one of: {}", listed(options)))
            }
            ValidationErrorKind::Constant { expected_value } => {
                one(format!("must be {}", shown(expected_value)))
            }
            ValidationErrorKind::MinItems { limit: 1 } => one("must not be empty".into()),
            ValidationErrorKind::MinItems { limit } => {
                one(format!("must have at least {limit} entries"))
            }
            ValidationErrorKind::MaxItems { limit } => {
                one(format!("must have at most {limit} entries"))
            }
            ValidationErrorKind::MinLength { limit: 1 } => one("must not be empty".into()),
            ValidationErrorKind::MinLength { limit } => {
                one(format!("must be at least {limit} characters long"))
            }
            ValidationErrorKind::MaxLength { limit } => {
                one(format!("must be at most {limit} characters long"))
            }
            ValidationErrorKind::Minimum { limit } => one(format!("must be at least {limit}")),
            ValidationErrorKind::Maximum { limit } => one(format!("must be at most {limit}")),
            ValidationErrorKind::ExclusiveMinimum { limit } => {
                one(format!("must be more than {limit}"))
            }
            ValidationErrorKind::ExclusiveMaximum { limit } => {
                one(format!("must be less than {limit}"))
            }
            ValidationErrorKind::MultipleOf { multiple_of } => {
                one(format!("must be a multiple of {multiple_of}"))
            }
            ValidationErrorKind::Pattern { pattern } => one(format!(
                "does not have the expected form (pattern `{pattern}`)"
            )),
            ValidationErrorKind::Format { format } => one(format!("must be a valid `{format}`")),
            ValidationErrorKind::UniqueItems => one("must not list the same entry twice".into()),
            ValidationErrorKind::MinProperties { limit } => {
                one(format!("must have at least {limit} fields"))
            }
            ValidationErrorKind::MaxProperties { limit } => {
                one(format!("must have at most {limit} fields"))
            }
            ValidationErrorKind::FalseSchema => one("is not allowed here".into()),
            ValidationErrorKind::AnyOf { .. } | ValidationErrorKind::OneOfNotValid { .. } => {
                match self.constant_choices(schema_at) {
                    Some(choices) => one(format!("must be one of: {choices}")),
                    None => one("matches none of the allowed forms".into()),
                }
            }
            ValidationErrorKind::OneOfMultipleValid { .. } => {
                one("matches more than one of the allowed forms".into())
            }
            ValidationErrorKind::Not { .. } => one("has a form that is not allowed here".into()),
            other => one(format!("is not valid (`{}`)", other.keyword())),
        }
    }

    /// `a, b, c` when every branch of the failed `anyOf`/`oneOf` at
    /// `schema_at` is a constant or an enum (how a documented Rust enum
    /// comes out), so the message can list the choices.
    fn constant_choices(&self, schema_at: &Location) -> Option<String> {
        let branches = self.schema.pointer(schema_at.as_str())?;
        let choices = constants(&Json::Object(
            [("anyOf".to_string(), branches.clone())]
                .into_iter()
                .collect(),
        ))?;
        (!choices.is_empty()).then(|| listed(&Json::Array(choices)))
    }

    /// The property names the schema object holding the failed
    /// `additionalProperties` (or `unevaluatedProperties`) declares.
    fn known_properties(&self, schema_at: &Location) -> Vec<String> {
        let mut pointer = schema_at.as_str().to_string();
        if let Some(cut) = pointer.rfind('/') {
            pointer.truncate(cut);
        }
        self.schema
            .pointer(&pointer)
            .and_then(|node| node.get("properties"))
            .and_then(Json::as_object)
            .map(|props| props.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// The values `node` allows when it allows only constants: a `const`, an
/// `enum`, `null`, or any mix of them under `anyOf`/`oneOf`.
fn constants(node: &Json) -> Option<Vec<Json>> {
    if let Some(value) = node.get("const") {
        return Some(vec![value.clone()]);
    }
    if let Some(Json::Array(values)) = node.get("enum") {
        return Some(values.clone());
    }
    if node.get("type") == Some(&Json::String("null".into())) {
        return Some(Vec::new());
    }
    let branches = node
        .get("anyOf")
        .or_else(|| node.get("oneOf"))?
        .as_array()?;
    let mut all = Vec::new();
    for branch in branches {
        all.extend(constants(branch)?);
    }
    Some(all)
}

/// `/authentication/url` → `authentication.url`; `/mappings/0/id` → `mappings[0].id`.
fn dotted(location: &Location) -> String {
    let mut out = String::new();
    for segment in location.segments() {
        match segment {
            LocationSegment::Property(name) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&name);
            }
            LocationSegment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

/// What a `type` keyword asks for, in words; `null` alone is left out of a
/// list (an optional field is simply left out).
fn expected(kind: &TypeKind) -> String {
    let types: Vec<JsonType> = match kind {
        TypeKind::Single(t) => vec![*t],
        TypeKind::Multiple(set) => set.iter().collect(),
    };
    let named: Vec<&str> = types
        .iter()
        .filter(|t| types.len() == 1 || **t != JsonType::Null)
        .map(|t| match t {
            JsonType::Null => "null",
            JsonType::Boolean => "true or false",
            JsonType::Integer => "a whole number",
            JsonType::Number => "a number",
            JsonType::String => "a string",
            JsonType::Array => "a list",
            JsonType::Object => "an object",
        })
        .collect();
    named.join(" or ")
}

/// Values the schema itself lists (never the config's), for a message.
fn listed(options: &Json) -> String {
    match options {
        Json::Array(items) => items
            .iter()
            .filter(|v| !v.is_null())
            .map(shown)
            .collect::<Vec<_>>()
            .join(", "),
        other => shown(other),
    }
}

fn shown(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> ConfigSchema {
        ConfigSchema::compile(&json!({
            "type": "object",
            "required": ["authentication", "mappings"],
            "additionalProperties": false,
            "properties": {
                "authentication": {
                    "type": "object",
                    "required": ["url", "password"],
                    "additionalProperties": false,
                    "properties": {
                        "url": {"type": "string", "format": "uri"},
                        "password": {"type": "string", "minLength": 1, "writeOnly": true}
                    }
                },
                "mode": {"type": ["string", "null"], "enum": ["email", "sms", null]},
                "region": {"anyOf": [{"oneOf": [{"const": "eu", "description": "Europe"},
                                                 {"const": "us", "description": "America"}]},
                                     {"type": "null"}]},
                "mappings": {
                    "type": "array", "minItems": 1,
                    "items": {"type": "object", "required": ["id", "value"],
                              "properties": {"id": {"type": "string"}, "value": {"type": "string"}}}
                },
                "upsert_mode": {"type": "boolean"}
            }
        }))
        .unwrap()
    }

    fn shown(config: Json) -> Vec<String> {
        schema()
            .problems(&config)
            .into_iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    #[test]
    fn a_fitting_config_has_no_problem() {
        let config = json!({
            "authentication": {"url": "https://x.example", "password": "pw"},
            "mappings": [{"id": "A", "value": "b"}],
            "mode": null
        });
        assert_eq!(shown(config), Vec::<String>::new());
    }

    #[test]
    fn every_problem_is_named_by_its_path_at_once() {
        let config = json!({
            "authentication": {"url": 5, "colour": "red"},
            "mappings": [{"id": "A"}, {"id": true, "value": "v"}],
            "mode": "fax",
            "region": "mars",
            "upsert_mode": "yes",
            "extra": 1
        });
        let mut got = shown(config);
        got.sort();
        assert_eq!(
            got,
            [
                "authentication.colour: unknown field (expected one of: password, url)",
                "authentication.password: is required",
                "authentication.url: must be a string",
                "extra: unknown field (expected one of: authentication, mappings, mode, region, upsert_mode)",
                "mappings[0].value: is required",
                "mappings[1].id: must be a string",
                "mode: must be one of: email, sms",
                "region: must be one of: eu, us",
                "upsert_mode: must be true or false",
            ]
        );
    }

    #[test]
    fn empty_lists_and_strings_say_so() {
        let config = json!({"authentication": {"url": "u", "password": ""}, "mappings": []});
        let mut got = shown(config);
        got.sort();
        assert_eq!(
            got,
            [
                "authentication.password: must not be empty",
                "mappings: must not be empty",
            ]
        );
    }

    #[test]
    fn a_message_never_quotes_the_value() {
        let secret = "s3cr3t-Value-9";
        let configs = [
            json!({"authentication": {"url": secret, "password": 7}, "mappings": [], "mode": secret}),
            json!({"authentication": {"url": "u", "password": secret}, "mappings": secret}),
            json!(secret),
        ];
        for config in configs {
            for problem in schema().problems(&config) {
                assert!(!problem.message.contains(secret), "{problem:?}");
                assert!(!problem.path.contains(secret), "{problem:?}");
            }
        }
    }

    #[test]
    fn a_schema_that_is_not_one_is_refused() {
        let error = ConfigSchema::compile(&json!({"type": "no-such-type"})).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("the config schema is not a valid JSON Schema")
        );
    }
}
