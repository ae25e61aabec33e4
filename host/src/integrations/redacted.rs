//! `"[REDACTED]"` in a replacement: how an edit leaves a secret unchanged.
//! The API never shows a secret (`redact_config`), so a client editing an
//! integration sends back what it was shown; a secret field whose value is
//! exactly `"[REDACTED]"` keeps the value stored there.

use serde_json::Value as Json;

use super::IntegrationError;
use crate::runtime::ValidationProblem;
use crate::secrets::{REDACTED, redact_config};
use crate::store::IntegrationRecord;

/// Stands in for a `"[REDACTED]"` value while asking `redact_config` whether
/// its place is secret: no URL, no secret-sounding word, so only the place
/// (the schema's `writeOnly`, `authentication`, the field's name) decides.
const PROBE: &str = "prefsync-place-probe";

/// Puts back the stored value of every secret field of `config` (as
/// `redact_config` decides with the connector's `schema`) whose value is
/// exactly `"[REDACTED]"`. `stored` is the integration being replaced
/// (`None` on create); its values count only when it is of the same
/// `type_id` (a secret never moves to another connector). A `"[REDACTED]"`
/// secret with nothing stored at its path is refused, every such field
/// named. A field that is not secret keeps `"[REDACTED]"` as its value.
pub fn keep_redacted(
    config: &mut Json,
    stored: Option<&IntegrationRecord>,
    type_id: &str,
    schema: &Json,
) -> Result<(), IntegrationError> {
    let mut placeholders = Vec::new();
    find_redacted(config, &mut Vec::new(), &mut placeholders);
    if placeholders.is_empty() {
        return Ok(());
    }
    let mut probe = config.clone();
    for path in &placeholders {
        if let Some(value) = probe.pointer_mut(&pointer(path)) {
            *value = Json::String(PROBE.into());
        }
    }
    let shown = redact_config(&probe, schema);
    let previous = stored.filter(|s| s.type_id == type_id).map(|s| &s.config);
    let mut problems = Vec::new();
    for path in placeholders {
        let at = pointer(&path);
        let secret = shown.pointer(&at).and_then(Json::as_str) == Some(REDACTED);
        if !secret {
            continue;
        }
        match previous.and_then(|p| p.pointer(&at)) {
            Some(kept) => {
                if let Some(value) = config.pointer_mut(&at) {
                    *value = kept.clone();
                }
            }
            None => problems.push(ValidationProblem {
                path: dotted(&path),
                message: format!(
                    "is {REDACTED}, which keeps the stored secret, but none is stored here: give the secret itself"
                ),
            }),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(IntegrationError::problems(
            "invalid integration: ",
            problems,
        ))
    }
}

/// One step of a path in a JSON document.
#[derive(Debug, Clone)]
enum Step {
    Field(String),
    Index(usize),
}

/// The paths of every string that is exactly `"[REDACTED]"`.
fn find_redacted(value: &Json, at: &mut Vec<Step>, found: &mut Vec<Vec<Step>>) {
    match value {
        Json::String(text) if text == REDACTED => found.push(at.clone()),
        Json::Object(fields) => {
            for (name, child) in fields {
                at.push(Step::Field(name.clone()));
                find_redacted(child, at, found);
                at.pop();
            }
        }
        Json::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                at.push(Step::Index(index));
                find_redacted(child, at, found);
                at.pop();
            }
        }
        _ => {}
    }
}

/// The path as a JSON pointer (RFC 6901).
fn pointer(path: &[Step]) -> String {
    path.iter()
        .map(|step| match step {
            Step::Field(name) => format!("/{}", name.replace('~', "~0").replace('/', "~1")),
            Step::Index(index) => format!("/{index}"),
        })
        .collect()
}

/// The path as problems name fields: `authentication.password`, `hooks[1].secret`.
fn dotted(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Field(name) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(name);
            }
            Step::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(type_id: &str, config: Json) -> IntegrationRecord {
        IntegrationRecord {
            id: "dd".into(),
            type_id: type_id.into(),
            enabled: true,
            config,
            created_at_ms: 1,
            updated_at_ms: 1,
        }
    }

    fn problem_paths(error: IntegrationError) -> Vec<String> {
        match error {
            IntegrationError::Invalid { problems, .. } => {
                problems.into_iter().map(|p| p.path).collect()
            }
            other => panic!("not a list of problems: {other}"),
        }
    }

    #[test]
    fn a_redacted_secret_keeps_the_stored_value() {
        let schema = json!({"properties": {"properties": {"properties": {
            "signing": {"type": "string", "writeOnly": true},
            "region": {"type": "string"}
        }}}});
        let stored = record(
            "dotdigital",
            json!({
                "authentication": {"url": "https://r1.example", "username": "u", "password": "Old-Secret", "pin": 1234},
                "properties": {"signing": "s3cr3t-key", "region": "r1", "tokens": ["a1b2", "c3d4"]}
            }),
        );
        let mut config = json!({
            "authentication": {"url": "https://r2.example", "username": "new-user", "password": REDACTED, "pin": REDACTED},
            "properties": {"signing": REDACTED, "region": REDACTED, "tokens": [REDACTED, "e5f6"]}
        });
        keep_redacted(&mut config, Some(&stored), "dotdigital", &schema).expect("kept");
        assert_eq!(
            config,
            json!({
                "authentication": {"url": "https://r2.example", "username": "new-user", "password": "Old-Secret", "pin": 1234},
                // `region` is not secret: a literal "[REDACTED]" stays.
                "properties": {"signing": "s3cr3t-key", "region": REDACTED, "tokens": ["a1b2", "e5f6"]}
            })
        );
    }

    #[test]
    fn a_redacted_secret_with_nothing_stored_is_refused_by_path() {
        let mut config = json!({"authentication": {"username": "u", "password": REDACTED}});
        let error = keep_redacted(&mut config, None, "dotdigital", &Json::Null).unwrap_err();
        assert!(
            error.to_string().contains("authentication.password"),
            "{error}"
        );
        assert_eq!(problem_paths(error), ["authentication.password"]);

        // Stored, but not at that path (nor at a new array index).
        let stored = record(
            "dotdigital",
            json!({"authentication": {"username": "u"}, "hooks": [{"secret": "one-secret"}]}),
        );
        let mut config = json!({
            "authentication": {"password": REDACTED},
            "hooks": [{"secret": REDACTED}, {"secret": REDACTED}]
        });
        let error =
            keep_redacted(&mut config, Some(&stored), "dotdigital", &Json::Null).unwrap_err();
        assert_eq!(
            problem_paths(error),
            ["authentication.password", "hooks[1].secret"]
        );
    }

    #[test]
    fn a_secret_never_moves_to_another_connector_type() {
        let stored = record(
            "dotdigital",
            json!({"authentication": {"password": "Old-Secret"}}),
        );
        let mut config = json!({"authentication": {"password": REDACTED}});
        let error = keep_redacted(&mut config, Some(&stored), "brevo", &Json::Null).unwrap_err();
        assert_eq!(problem_paths(error), ["authentication.password"]);
        assert_eq!(config["authentication"]["password"], REDACTED);
    }

    #[test]
    fn without_placeholders_nothing_changes() {
        let mut config = json!({"authentication": {"password": "new"}, "mappings": []});
        let before = config.clone();
        keep_redacted(&mut config, None, "dotdigital", &Json::Null).expect("nothing to do");
        assert_eq!(config, before);
    }
}
