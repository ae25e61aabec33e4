//! Keeping an integration's secrets out of every log line, error message and
//! API answer.
//!
//! Secrets are the string values of the config's `authentication` block (but
//! its `url`) and of any field whose name says it is one (`password`,
//! `secret`, `token`, `key`). Their base64 (`user:password` for Basic auth)
//! and percent-encoded forms count too, since connectors send them that way.

use std::borrow::Cow;

use base64::Engine as _;
use serde_json::Value as Json;

/// What replaces a secret.
pub const REDACTED: &str = "[REDACTED]";

/// Shorter values would blank out ordinary words; they are still replaced in
/// API answers (see [`redact_config`]), only not searched for in free text.
const MIN_SECRET_LEN: usize = 4;

/// Scrubs one integration's secrets from text.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so a secret that contains another is replaced whole.
    needles: Vec<String>,
}

impl Redactor {
    pub fn from_config(config: &Json) -> Self {
        let secrets = secret_values(config);
        let mut needles: Vec<String> = Vec::new();
        let b64 = &base64::engine::general_purpose::STANDARD;
        for s in &secrets {
            needles.push(s.clone());
            needles.push(b64.encode(s));
            needles.push(url::form_urlencoded::byte_serialize(s.as_bytes()).collect());
        }
        for a in &secrets {
            for b in &secrets {
                needles.push(b64.encode(format!("{a}:{b}")));
            }
        }
        needles.retain(|n| n.len() >= MIN_SECRET_LEN);
        needles.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        needles.dedup();
        Redactor { needles }
    }

    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if !self.needles.iter().any(|n| text.contains(n.as_str())) {
            return Cow::Borrowed(text);
        }
        let mut out = text.to_string();
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), REDACTED);
            }
        }
        Cow::Owned(out)
    }
}

/// The config with every secret value replaced, for API answers.
pub fn redact_config(config: &Json) -> Json {
    fn walk(node: &Json, in_auth: bool) -> Json {
        match node {
            Json::Object(obj) => Json::Object(
                obj.iter()
                    .map(|(k, v)| {
                        let value = match v {
                            Json::String(_) if (in_auth && k != "url") || is_secret_name(k) => {
                                Json::String(REDACTED.to_string())
                            }
                            _ => walk(v, in_auth || k == "authentication"),
                        };
                        (k.clone(), value)
                    })
                    .collect(),
            ),
            Json::Array(items) => Json::Array(items.iter().map(|i| walk(i, in_auth)).collect()),
            other => other.clone(),
        }
    }
    walk(config, false)
}

fn secret_values(config: &Json) -> Vec<String> {
    fn walk(node: &Json, in_auth: bool, out: &mut Vec<String>) {
        match node {
            Json::Object(obj) => {
                for (k, v) in obj {
                    match v {
                        Json::String(s) if (in_auth && k != "url") || is_secret_name(k) => {
                            out.push(s.clone())
                        }
                        _ => walk(v, in_auth || k == "authentication", out),
                    }
                }
            }
            Json::Array(items) => items.iter().for_each(|i| walk(i, in_auth, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(config, false, &mut out);
    out.retain(|s| !s.is_empty());
    out
}

/// Whether a field or header name says its value is a secret.
pub fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "api_key",
        "apikey",
        "private_key",
        "key_secret",
    ]
    .iter()
    .any(|word| name.contains(word))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn config() -> Json {
        json!({
            "type_id": "dotdigital",
            "authentication": {"url": "https://r1-api.dotdigital.com", "username": "apiuser-7@apiconnector.com", "password": "hunter2!x"},
            "properties": {"webhook_secret": "whsec-123456"},
            "mappings": [{"id": "A", "value": "organization_user_id"}]
        })
    }

    #[test]
    fn scrubs_raw_base64_and_encoded_forms() {
        let r = Redactor::from_config(&config());
        let basic = base64::engine::general_purpose::STANDARD
            .encode("apiuser-7@apiconnector.com:hunter2!x");
        let text = format!(
            "pw=hunter2!x auth=Basic {basic} q=hunter2%21x hook=whsec-123456 url=https://r1-api.dotdigital.com"
        );
        let clean = r.redact(&text);
        for leak in ["hunter2", "whsec-123456", basic.as_str(), "apiuser-7"] {
            assert!(!clean.contains(leak), "{leak} in {clean}");
        }
        assert!(clean.contains("https://r1-api.dotdigital.com"));
        assert!(matches!(r.redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn api_answers_hide_secret_fields() {
        let shown = redact_config(&config());
        assert_eq!(shown["authentication"]["password"], REDACTED);
        assert_eq!(shown["authentication"]["username"], REDACTED);
        assert_eq!(
            shown["authentication"]["url"],
            "https://r1-api.dotdigital.com"
        );
        assert_eq!(shown["properties"]["webhook_secret"], REDACTED);
        assert_eq!(shown["mappings"][0]["value"], "organization_user_id");
    }
}
