//! Checking an integration config before it is used: every problem at once,
//! each with the JSON path of its field.

use serde_json::Value as Json;

use crate::types::ValidationProblem;

/// Collects a config's problems while a connector walks it.
pub struct Problems<'a> {
    root: &'a Json,
    found: Vec<ValidationProblem>,
}

impl<'a> Problems<'a> {
    pub fn new(root: &'a Json) -> Self {
        Problems {
            root,
            found: Vec::new(),
        }
    }

    /// Records a problem at `path`.
    pub fn push(&mut self, path: &str, message: impl Into<String>) {
        self.found.push(ValidationProblem {
            path: path.to_string(),
            message: message.into(),
        });
    }

    pub fn into_vec(self) -> Vec<ValidationProblem> {
        self.found
    }

    /// The value at a dotted `path` (`authentication.url`), if present.
    pub fn get(&self, path: &str) -> Option<&'a Json> {
        path.split('.')
            .try_fold(self.root, |node, part| node.as_object()?.get(part))
    }

    /// A required, non-empty string.
    pub fn require_string(&mut self, path: &str) -> Option<&'a str> {
        match self.get(path) {
            None | Some(Json::Null) => {
                self.push(path, "is required");
                None
            }
            Some(Json::String(s)) if s.trim().is_empty() => {
                self.push(path, "must not be empty");
                None
            }
            Some(Json::String(s)) => Some(s),
            Some(other) => {
                self.push(path, format!("must be a string, not {}", kind(other)));
                None
            }
        }
    }

    /// An optional string; wrong types are problems.
    pub fn optional_string(&mut self, path: &str) -> Option<&'a str> {
        match self.get(path) {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) => Some(s),
            Some(other) => {
                self.push(path, format!("must be a string, not {}", kind(other)));
                None
            }
        }
    }

    /// An optional boolean; wrong types are problems.
    pub fn optional_bool(&mut self, path: &str) -> Option<bool> {
        match self.get(path) {
            None | Some(Json::Null) => None,
            Some(Json::Bool(b)) => Some(*b),
            Some(other) => {
                self.push(path, format!("must be true or false, not {}", kind(other)));
                None
            }
        }
    }

    /// A required URL: `https://host[:port][/path]`, `http://…`, or a bare
    /// host when `bare_host_ok` (it then means https).
    pub fn require_url(&mut self, path: &str, bare_host_ok: bool) -> Option<&'a str> {
        let raw = self.require_string(path)?;
        let rest = match raw.split_once("://") {
            Some(("https" | "http", rest)) => rest,
            Some((scheme, _)) => {
                self.push(path, format!("must be an https URL, not a `{scheme}` URL"));
                return None;
            }
            None if bare_host_ok => raw,
            None => {
                self.push(path, "must be an absolute URL such as https://host/");
                return None;
            }
        };
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if host.is_empty() || host.contains(char::is_whitespace) || host.contains('@') {
            self.push(path, format!("`{raw}` has no valid host"));
            return None;
        }
        Some(raw)
    }

    /// The `mappings` array of `{id, value}`: present, non-empty when
    /// `required`, every entry two non-empty strings, no destination field twice.
    pub fn mappings(&mut self, path: &str, required: bool) {
        let entries = match self.get(path) {
            None | Some(Json::Null) => {
                if required {
                    self.push(path, "is required (a list of {\"id\", \"value\"})");
                }
                return;
            }
            Some(Json::Array(entries)) => entries,
            Some(other) => {
                self.push(path, format!("must be a list, not {}", kind(other)));
                return;
            }
        };
        if required && entries.is_empty() {
            self.push(path, "must map at least one property");
        }
        let mut seen = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let at = format!("{path}[{i}]");
            let Some(obj) = entry.as_object() else {
                self.push(&at, "must be an object {\"id\", \"value\"}");
                continue;
            };
            for key in obj.keys().filter(|k| *k != "id" && *k != "value") {
                self.push(
                    &format!("{at}.{key}"),
                    "unknown field (expected `id` and `value`)",
                );
            }
            for field in ["id", "value"] {
                match obj.get(field) {
                    Some(Json::String(s)) if !s.trim().is_empty() => {}
                    Some(Json::String(_)) => {
                        self.push(&format!("{at}.{field}"), "must not be empty")
                    }
                    None | Some(Json::Null) => self.push(&format!("{at}.{field}"), "is required"),
                    Some(other) => self.push(
                        &format!("{at}.{field}"),
                        format!("must be a string, not {}", kind(other)),
                    ),
                }
            }
            if let Some(id) = obj.get("id").and_then(Json::as_str) {
                if seen.contains(&id) {
                    self.push(&format!("{at}.id"), format!("`{id}` is mapped twice"));
                }
                seen.push(id);
            }
        }
    }

    /// Flags keys of the object at `path` that are not in `allowed`.
    pub fn only_keys(&mut self, path: &str, allowed: &[&str]) {
        let Some(obj) = self.get(path).and_then(Json::as_object) else {
            return;
        };
        let unknown: Vec<String> = obj
            .keys()
            .filter(|k| !allowed.contains(&k.as_str()))
            .cloned()
            .collect();
        for key in unknown {
            self.push(
                &format!("{path}.{key}"),
                format!("unknown field (expected one of: {})", allowed.join(", ")),
            );
        }
    }
}

/// Parses config text, turning a syntax error into a problem that names the line and column.
pub fn parse_json(raw: &str) -> Result<Json, ValidationProblem> {
    serde_json::from_str(raw).map_err(|e| ValidationProblem {
        path: String::new(),
        message: format!(
            "invalid JSON at line {}, column {}: {e}",
            e.line(),
            e.column()
        ),
    })
}

fn kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_every_problem_with_its_path() {
        let config = serde_json::json!({
            "authentication": {"url": "ftp://x", "username": 3, "pasword": "p"},
            "mappings": [{"id": "A", "value": ""}, {"id": "A", "value": "b"}, 7]
        });
        let mut p = Problems::new(&config);
        p.require_url("authentication.url", false);
        p.require_string("authentication.username");
        p.require_string("authentication.password");
        p.only_keys("authentication", &["url", "username", "password"]);
        p.mappings("mappings", true);
        let found: Vec<String> = p
            .into_vec()
            .into_iter()
            .map(|v| format!("{}: {}", v.path, v.message))
            .collect();
        assert_eq!(
            found,
            vec![
                "authentication.url: must be an https URL, not a `ftp` URL",
                "authentication.username: must be a string, not a number",
                "authentication.password: is required",
                "authentication.pasword: unknown field (expected one of: url, username, password)",
                "mappings[0].value: must not be empty",
                "mappings[1].id: `A` is mapped twice",
                "mappings[2]: must be an object {\"id\", \"value\"}",
            ]
        );
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let err = parse_json("{\n  \"a\": 1,\n}").unwrap_err();
        assert!(
            err.message.starts_with("invalid JSON at line 3, column 1"),
            "{}",
            err.message
        );
    }
}
