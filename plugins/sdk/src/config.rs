//! Checking an integration config before it is used: every problem at once,
//! each with the JSON path of its field.

use serde_json::Value as Json;

use crate::mapping::Mapping;
use crate::types::ValidationProblem;

/// Collects the problems a connector's [`Connector::check`] finds in a
/// config that already fits its schema: the rules a schema cannot say
/// (a URL without credentials in it, no destination field mapped twice,
/// one field required when another is set, …).
///
/// [`Connector::check`]: crate::Connector::check
#[derive(Debug, Default)]
pub struct Problems {
    found: Vec<ValidationProblem>,
}

impl Problems {
    /// Starts with no problems.
    pub fn new() -> Self {
        Problems::default()
    }

    /// Records a problem at `path` (dotted: `authentication.url`, `mappings[0].id`).
    pub fn push(&mut self, path: &str, message: impl Into<String>) {
        self.found.push(ValidationProblem {
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// True while nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// Every problem recorded, in the order found; empty means the config is valid.
    pub fn into_vec(self) -> Vec<ValidationProblem> {
        self.found
    }

    /// `value`, the field at `path`, must be a URL the host can send to:
    /// `https://host[:port][/path]`, `http://…`, or a bare host when
    /// `bare_host_ok` (it then means https). Never quotes credentials back.
    /// Returns whether it is one.
    ///
    /// ```
    /// let mut p = prefsync_sdk::Problems::new();
    /// assert!(p.url("authentication.url", "https://api.example.com", false));
    /// assert!(!p.url("properties.api_base", "https://me:hunter2@api.example.com", false));
    /// let problems = p.into_vec();
    /// assert_eq!(problems[0].path, "properties.api_base");
    /// assert!(!problems[0].message.contains("hunter2"));
    /// ```
    pub fn url(&mut self, path: &str, value: &str, bare_host_ok: bool) -> bool {
        let raw = value.trim();
        if raw.is_empty() {
            self.push(path, "must not be empty");
            return false;
        }
        let rest = match raw.split_once("://") {
            Some(("https" | "http", rest)) => rest,
            Some((scheme, _)) => {
                self.push(path, format!("must be an https URL, not a `{scheme}` URL"));
                return false;
            }
            None if bare_host_ok => raw,
            None => {
                self.push(path, "must be an absolute URL such as https://host/");
                return false;
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
            return false;
        }
        if !is_host_and_port(host) {
            self.push(
                path,
                format!("`{}` has no valid host", without_userinfo(raw)),
            );
            return false;
        }
        true
    }

    /// The `mappings` at `path`: no entry blank, no destination field twice.
    /// (That the list is there and not empty, and each entry is `{id,
    /// value}`, the schema says.)
    pub fn mappings(&mut self, path: &str, mappings: &[Mapping]) {
        let mut seen: Vec<&str> = Vec::new();
        for (i, mapping) in mappings.iter().enumerate() {
            for (field, text) in [("id", &mapping.id), ("value", &mapping.value)] {
                if text.trim().is_empty() {
                    self.push(&format!("{path}[{i}].{field}"), "must not be empty");
                }
            }
            let id = mapping.id.as_str();
            if seen.contains(&id) {
                self.push(
                    &format!("{path}[{i}].id"),
                    format!("`{id}` is mapped twice"),
                );
            }
            seen.push(id);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_are_checked_for_blanks_and_repeats() {
        let m = |id: &str, value: &str| Mapping {
            id: id.into(),
            value: value.into(),
        };
        let mut p = Problems::new();
        p.mappings("mappings", &[m("A", " "), m("A", "b"), m("B", "c")]);
        let found: Vec<String> = p
            .into_vec()
            .into_iter()
            .map(|v| format!("{}: {}", v.path, v.message))
            .collect();
        assert_eq!(
            found,
            vec![
                "mappings[0].value: must not be empty",
                "mappings[1].id: `A` is mapped twice",
            ]
        );
    }

    #[test]
    fn urls_need_a_host_and_never_echo_credentials() {
        let messages = |url: &str, bare_host_ok: bool| -> Vec<String> {
            let mut p = Problems::new();
            p.url("url", url, bare_host_ok);
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
