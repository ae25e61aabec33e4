//! The secret oracle: a fuzzed document gets a distinctive value planted in
//! every place that holds a secret, and whatever the code under test says
//! about it (errors, redacted copies, refusals) must not contain one.
//!
//! Secret places, as issue 14 defines them: everything under
//! `authentication` but `url` (strings, numbers, inside arrays and objects
//! too), every field whose name says secret (`password`, `token`, `api_key`
//! …), and the password of any URL with userinfo.

use serde_json::Value;

/// The start of every planted string secret.
pub const PLANTED: &str = "PLANTEDSECRET";
/// The start of every planted numeric secret (digits only, to fit a number).
pub const PLANTED_NUMBER: &str = "7310925841";

/// Plants secrets in `config`; returns the planted strings (numbers are
/// found by [`PLANTED_NUMBER`]).
pub fn plant(config: &mut Value) -> Vec<String> {
    let mut planted = Vec::new();
    walk(config, false, &mut planted);
    planted
}

/// Whether `text` carries a planted secret.
pub fn leaks(text: &str) -> bool {
    text.contains(PLANTED) || text.contains(PLANTED_NUMBER)
}

fn walk(node: &mut Value, in_auth: bool, planted: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                let secret = (in_auth && key != "url") || prefsync::secrets::is_secret_name(key);
                if secret {
                    plant_all(value, planted);
                } else if in_auth {
                    // `authentication.url` is no secret, whatever it holds
                    // (but its own URL password or secret-named fields).
                    walk(value, false, planted);
                } else {
                    walk(value, key == "authentication", planted);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                // An array directly under `authentication` holds secrets.
                if in_auth {
                    plant_all(item, planted);
                } else {
                    walk(item, in_auth, planted);
                }
            }
        }
        Value::String(text) => {
            if let Some(with_password) = plant_url_password(text, planted.len()) {
                planted.push(format!("{PLANTED}{}u", planted.len()));
                *text = with_password;
            }
        }
        _ => {}
    }
}

/// Every string and number under `node` becomes a planted secret.
fn plant_all(node: &mut Value, planted: &mut Vec<String>) {
    match node {
        Value::String(_) => {
            let secret = format!("{PLANTED}{}x", planted.len());
            *node = Value::String(secret.clone());
            planted.push(secret);
        }
        Value::Number(_) => {
            *node = Value::from(
                format!("{PLANTED_NUMBER}{}", planted.len())
                    .parse::<u64>()
                    .unwrap_or(0),
            );
            planted.push(String::new());
        }
        Value::Array(items) => items.iter_mut().for_each(|i| plant_all(i, planted)),
        Value::Object(map) => map.values_mut().for_each(|v| plant_all(v, planted)),
        _ => {}
    }
}

/// `scheme://user:pw@host/…` with a planted password (and a planted
/// `password=` query value), or `None` when `text` is no such URL.
fn plant_url_password(text: &str, n: usize) -> Option<String> {
    // As the host reads them: a URL has a `://` (`mailto:?password=` is none).
    if !text.contains("://") {
        return None;
    }
    let mut url = url::Url::parse(text).ok()?;
    let mut changed = false;
    if url.password().is_some() && url.set_password(Some(&format!("{PLANTED}{n}u"))).is_ok() {
        changed = true;
    }
    if url
        .query_pairs()
        .any(|(k, _)| prefsync::secrets::is_secret_name(&k))
    {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if prefsync::secrets::is_secret_name(&k) {
                    format!("{PLANTED}{n}q")
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
        changed = true;
    }
    changed.then(|| url.to_string())
}

/// Every string leaf of `value` (at most `limit`), for targets that try each.
pub fn strings(value: &Value, limit: usize) -> Vec<&str> {
    fn walk<'v>(value: &'v Value, out: &mut Vec<&'v str>, limit: usize) {
        if out.len() >= limit {
            return;
        }
        match value {
            Value::String(s) => out.push(s),
            Value::Array(items) => items.iter().for_each(|i| walk(i, out, limit)),
            Value::Object(map) => map.values().for_each(|v| walk(v, out, limit)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, &mut out, limit);
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secrets_are_planted_where_the_issue_says() {
        let mut config = json!({
            "type_id": "dotdigital",
            "authentication": {"url": "https://r1-api.dotdigital.com", "username": "u",
                               "password": "p", "pin": 1234, "keys": ["a", {"b": "c"}]},
            "properties": {"api_token": "t", "list": "public", "n": 5},
            "hook": "https://user:pw@example.com/x?password=z&page=2"
        });
        let planted = plant(&mut config);
        let text = config.to_string();
        assert_eq!(planted.len(), 7, "{text}");
        for kept in [
            "https://r1-api.dotdigital.com",
            "dotdigital",
            "public",
            "page=2",
            "user:",
        ] {
            assert!(text.contains(kept), "{kept} in {text}");
        }
        for gone in [
            "\"u\"", "\"p\"", "1234", "\"a\"", "\"c\"", "\"t\"", ":pw@", "=z",
        ] {
            assert!(!text.contains(gone), "{gone} in {text}");
        }
        assert!(leaks(&text));
    }
}
