//! Keeping an integration's secrets out of every log line, error message,
//! API answer and cassette. (Files only their owner reads: `prefsync_store::private_files`.)
//!
//! A config value is a secret when any of these says so:
//! - the connector's config schema: its node is `"writeOnly": true` (looked up
//!   through `properties`, `additionalProperties`, `patternProperties`,
//!   `items`, `allOf`/`anyOf`/`oneOf`, `if`'s `then`/`else` and local `$ref`s);
//! - it is under `authentication` (but its `url`);
//! - its field name does (`password`, `secret`, `token`, `api_key` …): a
//!   safety net for connectors whose schema forgets to say.
//!
//! Everything below a secret is secret too: strings, numbers, the items of
//! arrays, the fields of objects (booleans and nulls say nothing and stay).
//! The password of any URL in the config (`user:password@`, or a query
//! parameter such as `?password=`) is a secret wherever the URL is. In free
//! text the base64 (`user:password` for Basic auth), percent-encoded and
//! JSON-escaped forms of every secret are replaced as well, since connectors
//! send them that way.

use std::borrow::Cow;

use base64::Engine as _;
use serde_json::Value as Json;

/// What replaces a secret.
pub const REDACTED: &str = "[REDACTED]";

/// Shorter values would blank out ordinary words; they are still replaced in
/// API answers (see [`redact_config`]), only not searched for in free text.
const MIN_SECRET_LEN: usize = 4;

/// Pairs `a:b` are encoded for Basic auth; past this many secrets only the
/// single values are, so a config full of secrets stays cheap to scrub.
const MAX_PAIRED_SECRETS: usize = 32;

/// How deep schema combinators and `$ref`s are followed (a `$ref` may loop).
const MAX_SCHEMA_DEPTH: u8 = 16;

/// Scrubs one integration's secrets from text.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so a secret that contains another is replaced whole.
    needles: Vec<String>,
}

impl Redactor {
    /// The secrets of `config` as its connector's `schema` (JSON Schema; `null`
    /// when unknown) and the rules of this module decide.
    pub fn from_config(config: &Json, schema: &Json) -> Self {
        Redactor::from_secrets(&secret_values(config, schema))
    }

    /// A redactor for the given secret values (and their encoded forms).
    pub fn from_secrets(secrets: &[String]) -> Self {
        let b64 = &base64::engine::general_purpose::STANDARD;
        let b64_url = &base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut needles: Vec<String> = Vec::new();
        for s in secrets {
            needles.push(s.clone());
            needles.push(b64.encode(s));
            needles.push(b64_url.encode(s));
            needles.push(url::form_urlencoded::byte_serialize(s.as_bytes()).collect());
            needles.push(percent_encode(s));
            // As a JSON string or a `{:?}` shows it (quotes and backslashes escaped).
            let quoted = Json::String(s.clone()).to_string();
            needles.push(quoted[1..quoted.len() - 1].to_string());
            needles.push(format!("{s:?}").trim_matches('"').to_string());
        }
        let paired = &secrets[..secrets.len().min(MAX_PAIRED_SECRETS)];
        for a in paired {
            for b in paired {
                needles.push(b64.encode(format!("{a}:{b}")));
            }
        }
        needles.retain(|n| n.len() >= MIN_SECRET_LEN && n != REDACTED);
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

/// The config with every secret value replaced, for API answers. URLs keep
/// everything but their passwords.
pub fn redact_config(config: &Json, schema: &Json) -> Json {
    Scan::new(schema).run(config).0
}

/// Every secret value of `config`, as text (numbers in their JSON form).
pub fn secret_values(config: &Json, schema: &Json) -> Vec<String> {
    let mut values = Scan::new(schema).run(config).1;
    values.retain(|s| !s.is_empty());
    values.sort();
    values.dedup();
    values
}

/// Whether a field, header or query parameter name says its value is a secret.
pub fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "passphrase",
        "secret",
        "token",
        "api_key",
        "apikey",
        "private_key",
        "access_key",
        "key_secret",
        "credential",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// `raw` with the password of its userinfo and the values of secret-named
/// query parameters replaced: what a message may show of a URL.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some(REDACTED));
            }
            if let Some(clean) = url.query().and_then(redact_query) {
                url.set_query(Some(&clean));
            }
            url.to_string()
        }
        Err(_) => {
            let shown = url_without_userinfo(raw);
            match shown.split_once('?') {
                Some((base, rest)) => {
                    let (query, fragment) = match rest.split_once('#') {
                        Some((q, f)) => (q, Some(f)),
                        None => (rest, None),
                    };
                    let query = redact_query(query).unwrap_or_else(|| query.to_string());
                    match fragment {
                        Some(f) => format!("{base}?{query}#{f}"),
                        None => format!("{base}?{query}"),
                    }
                }
                None => shown,
            }
        }
    }
}

/// `raw` without its userinfo (`user:password@`), for messages about a URL
/// that may not even parse. Without a parse, every `@` before the query
/// counts, so a password holding `/` is cut too.
pub fn url_without_userinfo(raw: &str) -> String {
    let Some(start) = raw.find("://").map(|i| i + 3) else {
        return raw.to_string();
    };
    let rest = &raw[start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = match rest[..authority_end].rfind('@') {
        Some(at) => Some(at),
        None if url::Url::parse(raw).is_err() => {
            let before_query = rest.find(['?', '#']).unwrap_or(rest.len());
            rest[..before_query].rfind('@')
        }
        None => None,
    };
    match at {
        Some(at) => format!("{}{}", &raw[..start], &rest[at + 1..]),
        None => raw.to_string(),
    }
}

/// The credentials a URL carries: its userinfo password and the values of
/// secret-named query parameters, raw and percent-decoded.
fn url_secrets(raw: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Some(start) = raw.find("://").map(|i| i + 3) else {
        return found;
    };
    let rest = &raw[start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if let Some(at) = rest[..authority_end].rfind('@')
        && let Some((_, password)) = rest[..at].split_once(':')
    {
        push_raw_and_decoded(&mut found, password);
    }
    if let Some(query_start) = rest.find('?') {
        let query = &rest[query_start + 1..];
        let query = query.split('#').next().unwrap_or_default();
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name: String = url::form_urlencoded::parse(name.as_bytes())
                .next()
                .map(|(k, v)| format!("{k}{v}"))
                .unwrap_or_default();
            if is_secret_name(&name) {
                push_raw_and_decoded(&mut found, value);
            }
        }
    }
    found
}

fn push_raw_and_decoded(found: &mut Vec<String>, raw: &str) {
    if raw.is_empty() {
        return;
    }
    found.push(raw.to_string());
    let decoded: String = url::form_urlencoded::parse(format!("x={raw}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    if !decoded.is_empty() && decoded != raw {
        found.push(decoded);
    }
}

/// A query with the values of secret-named parameters replaced; `None` when
/// it has none.
fn redact_query(query: &str) -> Option<String> {
    let mut changed = false;
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| {
            let (name, _) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded: String = url::form_urlencoded::parse(name.as_bytes())
                .next()
                .map(|(k, v)| format!("{k}{v}"))
                .unwrap_or_default();
            if is_secret_name(&decoded) && pair.contains('=') {
                changed = true;
                format!("{name}={REDACTED}")
            } else {
                pair.to_string()
            }
        })
        .collect();
    changed.then(|| pairs.join("&"))
}

/// Every byte but the unreserved ones (`A-Z a-z 0-9 - . _ ~`) as `%XX`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// One walk over a config and its schema: the redacted copy and the secrets.
struct Scan<'s> {
    root: &'s Json,
    secrets: Vec<String>,
}

impl<'s> Scan<'s> {
    fn new(schema: &'s Json) -> Self {
        Scan {
            root: schema,
            secrets: Vec::new(),
        }
    }

    fn run(mut self, config: &Json) -> (Json, Vec<String>) {
        let schemas = self.expand(self.root);
        let shown = self.node(config, &schemas, false, false);
        (shown, self.secrets)
    }

    /// `secret`: an ancestor (or the field itself) is secret; `in_auth`: under
    /// `authentication`, where every field but `url` is.
    fn node(&mut self, value: &Json, schemas: &[&'s Json], secret: bool, in_auth: bool) -> Json {
        let secret = secret
            || schemas
                .iter()
                .any(|s| s.get("writeOnly") == Some(&Json::Bool(true)));
        match value {
            Json::Object(fields) => Json::Object(
                fields
                    .iter()
                    .map(|(name, child)| {
                        let child_schemas = self.property(schemas, name);
                        let child_secret = secret
                            || is_secret_name(name)
                            || (in_auth && name != "url")
                            || (name == "authentication" && !child.is_object());
                        let child_in_auth = in_auth || name == "authentication";
                        let shown = self.node(child, &child_schemas, child_secret, child_in_auth);
                        (name.clone(), shown)
                    })
                    .collect(),
            ),
            Json::Array(items) => {
                let item_schemas = self.items(schemas);
                Json::Array(
                    items
                        .iter()
                        .map(|item| self.node(item, &item_schemas, secret, in_auth))
                        .collect(),
                )
            }
            Json::String(text) => {
                let in_url = url_secrets(text);
                let has_url_secrets = !in_url.is_empty();
                self.secrets.extend(in_url);
                if secret {
                    self.secrets.push(text.clone());
                    Json::String(REDACTED.into())
                } else if has_url_secrets {
                    Json::String(redact_url(text))
                } else {
                    value.clone()
                }
            }
            Json::Number(number) if secret => {
                self.secrets.push(number.to_string());
                Json::String(REDACTED.into())
            }
            other => other.clone(),
        }
    }

    /// `node` and every schema it combines with (`allOf`, `anyOf`, `oneOf`,
    /// `then`, `else`, a local `$ref`): a value may be described by any.
    fn expand(&self, node: &'s Json) -> Vec<&'s Json> {
        let mut out = Vec::new();
        self.expand_into(node, &mut out, 0);
        out
    }

    fn expand_into(&self, node: &'s Json, out: &mut Vec<&'s Json>, depth: u8) {
        if depth > MAX_SCHEMA_DEPTH || !node.is_object() {
            return;
        }
        out.push(node);
        if let Some(target) = node
            .get("$ref")
            .and_then(Json::as_str)
            .and_then(|r| r.strip_prefix('#'))
            .and_then(|pointer| self.root.pointer(pointer))
        {
            self.expand_into(target, out, depth + 1);
        }
        for combinator in ["allOf", "anyOf", "oneOf"] {
            for member in node
                .get(combinator)
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                self.expand_into(member, out, depth + 1);
            }
        }
        for branch in ["then", "else"] {
            if let Some(member) = node.get(branch) {
                self.expand_into(member, out, depth + 1);
            }
        }
    }

    /// The schemas of field `name` of an object described by `schemas`.
    fn property(&self, schemas: &[&'s Json], name: &str) -> Vec<&'s Json> {
        let mut out = Vec::new();
        for schema in schemas {
            match schema.get("properties").and_then(|p| p.get(name)) {
                Some(own) => self.expand_into(own, &mut out, 0),
                None => {
                    if let Some(rest) = schema.get("additionalProperties") {
                        self.expand_into(rest, &mut out, 0);
                    }
                }
            }
            // No regex here: every pattern counts, which can only hide more.
            for pattern in schema
                .get("patternProperties")
                .and_then(Json::as_object)
                .into_iter()
                .flat_map(|p| p.values())
            {
                self.expand_into(pattern, &mut out, 0);
            }
        }
        out
    }

    /// The schemas of the items of an array described by `schemas`.
    fn items(&self, schemas: &[&'s Json]) -> Vec<&'s Json> {
        let mut out = Vec::new();
        for schema in schemas {
            match schema.get("items") {
                Some(Json::Array(tuple)) => {
                    tuple.iter().for_each(|s| self.expand_into(s, &mut out, 0))
                }
                Some(items) => self.expand_into(items, &mut out, 0),
                None => {}
            }
            for s in schema
                .get("prefixItems")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                self.expand_into(s, &mut out, 0);
            }
        }
        out
    }
}

/// Compares a presented secret (a bearer token, a webhook's shared secret)
/// in time independent of where the first difference is (`subtle`; only
/// the length may show).
pub fn same_secret(given: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
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
        let r = Redactor::from_config(&config(), &Json::Null);
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
        let shown = redact_config(&config(), &Json::Null);
        assert_eq!(shown["authentication"]["password"], REDACTED);
        assert_eq!(shown["authentication"]["username"], REDACTED);
        assert_eq!(
            shown["authentication"]["url"],
            "https://r1-api.dotdigital.com"
        );
        assert_eq!(shown["properties"]["webhook_secret"], REDACTED);
        assert_eq!(shown["mappings"][0]["value"], "organization_user_id");
    }

    #[test]
    fn write_only_fields_of_the_schema_are_secrets_at_any_depth() {
        let schema = json!({
            "type": "object",
            "properties": {
                "properties": {
                    "type": "object",
                    "properties": {
                        "signing_material": {"type": "string", "writeOnly": true},
                        "pin": {"type": "integer", "writeOnly": true},
                        "nested": {"type": "object", "properties": {
                            "deep": {"$ref": "#/$defs/hidden"}
                        }},
                        "extra": {"type": "object", "additionalProperties": {"type": "string", "writeOnly": true}},
                        "list": {"type": "array", "items": {"type": "string", "writeOnly": true}},
                        "region": {"type": "string"}
                    }
                }
            },
            "$defs": {"hidden": {"type": "string", "writeOnly": true}}
        });
        let config = json!({"properties": {
            "signing_material": "plain-looking-value",
            "pin": 8675309,
            "nested": {"deep": "deep-down-value"},
            "extra": {"X-Custom": "custom-header-value"},
            "list": ["first-item-value", "second-item-value"],
            "region": "eu-west"
        }});
        let shown = redact_config(&config, &schema);
        let p = &shown["properties"];
        assert_eq!(p["signing_material"], REDACTED);
        assert_eq!(p["pin"], REDACTED);
        assert_eq!(p["nested"]["deep"], REDACTED);
        assert_eq!(p["extra"]["X-Custom"], REDACTED);
        assert_eq!(p["list"], json!([REDACTED, REDACTED]));
        assert_eq!(p["region"], "eu-west");

        let r = Redactor::from_config(&config, &schema);
        let text = "plain-looking-value 8675309 deep-down-value custom-header-value \
                    first-item-value second-item-value eu-west";
        assert_eq!(
            r.redact(text),
            "[REDACTED] [REDACTED] [REDACTED] [REDACTED] [REDACTED] [REDACTED] eu-west"
        );
        // Without the schema, these names say nothing: the schema decided.
        assert!(
            !Redactor::from_config(&config, &Json::Null)
                .redact(text)
                .contains(REDACTED)
        );
    }

    #[test]
    fn combinators_and_branches_of_the_schema_count() {
        let schema = json!({
            "properties": {"properties": {"type": "object"}},
            "if": {"properties": {"kind": {"const": "a"}}},
            "then": {"properties": {"properties": {"properties": {"code": {"writeOnly": true}}}}},
            "else": {"allOf": [{"properties": {"properties": {"properties": {"phrase": {"writeOnly": true}}}}}]}
        });
        let config = json!({"properties": {"code": "code-value-1", "phrase": "phrase-value-2", "open": "visible"}});
        let shown = redact_config(&config, &schema);
        assert_eq!(shown["properties"]["code"], REDACTED);
        assert_eq!(shown["properties"]["phrase"], REDACTED);
        assert_eq!(shown["properties"]["open"], "visible");
    }

    #[test]
    fn numbers_arrays_and_objects_under_authentication_are_secrets() {
        let config = json!({
            "authentication": {
                "url": "https://api.example.com",
                "account_pin": 31415926,
                "scopes": ["scope-secret-a", "scope-secret-b"],
                "oauth": {"client": "client-id-value", "ttl": 86400},
                "sandbox": true
            },
            "properties": {"count": 31415926}
        });
        let shown = redact_config(&config, &Json::Null);
        let auth = &shown["authentication"];
        assert_eq!(auth["url"], "https://api.example.com");
        assert_eq!(auth["account_pin"], REDACTED);
        assert_eq!(auth["scopes"], json!([REDACTED, REDACTED]));
        assert_eq!(auth["oauth"], json!({"client": REDACTED, "ttl": REDACTED}));
        assert_eq!(auth["sandbox"], true);
        let secrets = secret_values(&config, &Json::Null);
        for s in [
            "31415926",
            "scope-secret-a",
            "scope-secret-b",
            "client-id-value",
            "86400",
        ] {
            assert!(secrets.contains(&s.to_string()), "{s} not in {secrets:?}");
        }
        // A whole `authentication` that is not an object is a secret too.
        let flat = redact_config(&json!({"authentication": ["tok-1234", 99999]}), &Json::Null);
        assert_eq!(flat["authentication"], json!([REDACTED, REDACTED]));
    }

    #[test]
    fn url_passwords_are_secrets_in_userinfo_and_query() {
        let config = json!({"source": {
            "url": "postgres://reader:pw-in-userinfo@db.example/app?sslmode=disable&PassWord=pw%2Fin%2Fquery"
        }});
        let shown = redact_config(&config, &Json::Null).to_string();
        assert!(!shown.contains("pw-in-userinfo"), "{shown}");
        assert!(!shown.contains("pw%2Fin%2Fquery"), "{shown}");
        assert!(
            shown.contains("reader:") && shown.contains("sslmode=disable"),
            "{shown}"
        );
        let r = Redactor::from_config(&config, &Json::Null);
        assert_eq!(
            r.redact("a pw-in-userinfo b pw/in/query c pw%2Fin%2Fquery"),
            "a [REDACTED] b [REDACTED] c [REDACTED]"
        );
    }

    #[test]
    fn urls_are_shown_without_their_credentials() {
        assert_eq!(
            redact_url("https://u:p4ss@host.example:8443/x?a=1&api_key=k3y&b=2"),
            "https://u:%5BREDACTED%5D@host.example:8443/x?a=1&api_key=[REDACTED]&b=2"
        );
        assert_eq!(
            redact_url("https://host.example/x"),
            "https://host.example/x"
        );
        // Not a URL the parser takes: userinfo cut, query still scrubbed.
        let broken = redact_url("http://u:p/ss@[bad/x?token=t0k3n");
        assert!(
            !broken.contains("p/ss") && !broken.contains("t0k3n"),
            "{broken}"
        );
        assert_eq!(
            url_without_userinfo("https://user:hunter2@/nohost"),
            "https:///nohost"
        );
        assert_eq!(
            url_without_userinfo("https://example.com/a@b"),
            "https://example.com/a@b"
        );
    }

    #[test]
    fn encoded_forms_are_scrubbed() {
        let r = Redactor::from_secrets(&["s3cr\"et/+ x".to_string()]);
        for form in [
            "s3cr\"et/+ x".to_string(),
            base64::engine::general_purpose::STANDARD.encode("s3cr\"et/+ x"),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("s3cr\"et/+ x"),
            url::form_urlencoded::byte_serialize(b"s3cr\"et/+ x").collect(),
            percent_encode("s3cr\"et/+ x"),
            r#"s3cr\"et/+ x"#.to_string(),
        ] {
            assert_eq!(r.redact(&format!("<{form}>")), "<[REDACTED]>", "{form}");
        }
    }

    #[test]
    fn secrets_match_only_when_every_byte_and_the_length_do() {
        assert!(same_secret("token-123", "token-123"));
        assert!(!same_secret("token-124", "token-123"));
        assert!(!same_secret("token-12", "token-123"));
        assert!(!same_secret("token-1234", "token-123"));
        assert!(!same_secret("", "token-123"));
        assert!(same_secret("", ""));
    }
}
