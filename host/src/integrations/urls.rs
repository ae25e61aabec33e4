//! The host's URL rule for config fields the connector's schema marks
//! `"format": "uri"`: the host sends to them, and their hosts join the
//! egress allowlist.

use serde_json::Value as Json_;

use crate::egress::uri_fields;
use crate::runtime::ValidationProblem;

/// Every config field the connector's schema marks `"format": "uri"` must
/// be an `http`/`https` URL with a host and no user name or password: the
/// host sends to it, and its host joins the egress allowlist. A value
/// without `://` is a bare host meaning `https://` (the seed's shape, read
/// so by the connectors and the allowlist alike). The messages never repeat
/// the value (it may hold a password).
pub fn url_problems(config: &Json_, schema: &Json_) -> Vec<ValidationProblem> {
    uri_fields(schema, config)
        .into_iter()
        .filter_map(|(path, raw)| {
            config_url_problem(raw).map(|message| ValidationProblem {
                path,
                message: message.to_string(),
            })
        })
        .collect()
}

/// Why `raw` is not a usable URL in a config, if it is not.
pub fn config_url_problem(raw: &str) -> Option<&'static str> {
    const EXPECTED: &str = "must be an http:// or https:// URL (or a bare host, meaning https)";
    let raw = raw.trim();
    let parsed = if raw.contains("://") {
        url::Url::parse(raw)
    } else {
        url::Url::parse(&format!("https://{raw}"))
    };
    let Ok(url) = parsed else {
        return Some(EXPECTED);
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Some(EXPECTED);
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Some("must name a host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Some("must not hold a user name or password; give credentials in their own fields");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_urls_must_be_plain_http_or_https() {
        for good in [
            "https://r1-api.dotdigital.com",
            "http://127.0.0.1:9",
            "https://[::1]:8443/path?q=1",
            " https://example.com/ ",
            "my-selligent-installation.com",
            "hooks.example.com/consent",
        ] {
            assert_eq!(config_url_problem(good), None, "{good}");
        }
        for bad in [
            "javascript:alert(1)",
            "data:text/html,hi",
            "file:///etc/passwd",
            "ftp://example.com",
            "mailto:someone@example.com",
            "",
            "https://user:Sup3r-Secret@example.com",
            "https://user@example.com",
        ] {
            let problem = config_url_problem(bad);
            assert!(problem.is_some(), "{bad}");
            assert!(!problem.unwrap().contains("Secret"));
        }
    }

    #[test]
    fn url_problems_name_the_field_by_schema() {
        let schema = json!({"properties": {
            "authentication": {"properties": {"url": {"type": "string", "format": "uri"}}},
            "hooks": {"items": {"properties": {"url": {"format": "uri"}}}},
            "name": {"type": "string"}
        }});
        let config = json!({
            "authentication": {"url": "javascript:alert(1)"},
            "hooks": [{"url": "https://ok.example"}, {"url": "https://u:p@x.example"}],
            "name": "javascript:not-a-uri-field"
        });
        let problems: Vec<(String, String)> = url_problems(&config, &schema)
            .into_iter()
            .map(|p| (p.path, p.message))
            .collect();
        let paths: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["authentication.url", "hooks[1].url"]);
        assert!(problems.iter().all(|(_, m)| !m.contains("u:p")));
    }
}
