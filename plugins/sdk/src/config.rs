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
    /// Starts with no problems, checking the config document `root`.
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

    /// Every problem recorded, in the order found; empty means the config is valid.
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
        // Credentials in a URL would be shown wherever the URL is: refuse
        // them, and never quote them back.
        if host.contains('@') {
            self.push(
                path,
                "must not carry a user name or password (`user:password@`); put credentials in their own fields",
            );
            return None;
        }
        if !is_host_and_port(host) {
            self.push(
                path,
                format!("`{}` has no valid host", without_userinfo(raw)),
            );
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
    serde_json::from_str(raw).map_err(|e| {
        // serde_json ends its message with the position too; say it once.
        let full = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        ValidationProblem {
            path: String::new(),
            message: format!(
                "invalid JSON at line {}, column {}: {}",
                e.line(),
                e.column(),
                full.strip_suffix(&suffix).unwrap_or(&full)
            ),
        }
    })
}

/// `name[:port]` or `[v6][:port]`: what a URL's authority may be (so
/// `javascript:alert(1)`, taken as a bare host, is not one).
fn is_host_and_port(authority: &str) -> bool {
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((address, rest)) if !address.is_empty() => (address, rest),
            _ => return false,
        },
        None => match authority.find(':') {
            Some(colon) => authority.split_at(colon),
            None => (authority, ""),
        },
    };
    let host_ok = if authority.starts_with('[') {
        host.chars()
            .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
    } else {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '.' || c == '_')
    };
    let port_ok = match port.strip_prefix(':') {
        None => port.is_empty(),
        Some(digits) => {
            !digits.is_empty() && digits.len() <= 5 && digits.chars().all(|c| c.is_ascii_digit())
        }
    };
    host_ok && port_ok
}

/// `raw` without anything up to the last `@` before its path, query or
/// fragment, and without anything up to the last `@` before its query when
/// that is where one hides (a password holding `/`).
fn without_userinfo(raw: &str) -> String {
    let start = raw.find("://").map_or(0, |i| i + 3);
    let rest = &raw[start..];
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{}{}", &raw[..start], &rest[at + 1..]),
        None => raw.to_string(),
    }
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
    fn urls_need_a_host_and_never_echo_credentials() {
        let messages = |url: &str, bare_host_ok: bool| -> Vec<String> {
            let config = serde_json::json!({"url": url});
            let mut p = Problems::new(&config);
            p.require_url("url", bare_host_ok);
            p.into_vec().into_iter().map(|v| v.message).collect()
        };
        for good in [
            "https://api.example.com",
            "http://127.0.0.1:8080/x?y=1",
            "https://[::1]:443/",
        ] {
            assert!(messages(good, false).is_empty(), "{good}");
        }
        assert!(messages("r1-api.dotdigital.com", true).is_empty());
        for bad in ["javascript:alert(1)", "host:port", "a b", ""] {
            assert_eq!(messages(bad, true).len(), 1, "{bad}");
        }
        for leaky in [
            "https://user:hunter2-pw@api.example.com/",
            "https://user:hunter2-pw@/x",
        ] {
            let found = messages(leaky, false);
            assert_eq!(found.len(), 1, "{leaky}");
            assert!(!found[0].contains("hunter2-pw"), "{found:?}");
        }
        assert_eq!(
            messages("https://a b/x", false),
            ["`https://a b/x` has no valid host"]
        );
        assert!(without_userinfo("https://u:p/w@[bad/x").ends_with("[bad/x"));
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let err = parse_json("{\n  \"a\": 1,\n}").unwrap_err();
        assert_eq!(
            err.message,
            "invalid JSON at line 3, column 1: trailing comma"
        );
    }
}
