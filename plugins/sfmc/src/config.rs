//! The integration config, in Didomi's integration shape, for a Salesforce
//! Marketing Cloud (Engagement) data extension. The types are the one
//! description of it: serde reads them and the JSON Schema the host checks
//! and the console draws is derived from them.

use prefsync_sdk::{Mapping, Problems};
use schemars::JsonSchema;
use serde::Deserialize;

/// Salesforce advises at most this many columns per rowset call.
pub const MAX_COLUMNS: usize = 50;

/// An SFMC integration.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct SfmcConfig {
    /// The installed package's API integration (server-to-server).
    pub authentication: Authentication,
    /// The tenant, the data extension and how users are matched.
    pub properties: Properties,
    /// Data-extension column (`id`, e.g. Newsletter_OptIn) ← Didomi property (`value`).
    // With the primary key, at most MAX_COLUMNS columns (the date column
    // counts too, which `check` says).
    #[schemars(length(min = 1, max = 49))]
    pub mappings: Vec<Mapping>,
    /// Create rows that do not exist yet; when false, a user without a row is skipped.
    #[serde(default)]
    pub upsert_mode: bool,
}

/// Credentials of the installed package (client credentials grant).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    /// Client id of the installed package's API integration (server-to-server).
    #[schemars(extend("writeOnly" = true), length(min = 1))]
    pub client_id: String,
    /// Its client secret.
    #[schemars(extend("writeOnly" = true), length(min = 1))]
    pub client_secret: String,
    /// MID of the business unit (the package's default one when absent).
    #[serde(default)]
    #[schemars(extend("writeOnly" = true))]
    pub account_id: Option<String>,
}

/// Where rows go and how users are matched.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Properties {
    /// Tenant subdomain (mc…), as in https://{subdomain}.auth.marketingcloudapis.com.
    // A DNS label: letters, digits and `-`, not at either end, at most 63
    // characters; it goes into host names.
    #[schemars(regex(pattern = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"))]
    pub subdomain: String,
    /// External key of the data extension rows are written to.
    #[schemars(length(min = 1))]
    pub data_extension_key: String,
    /// Primary-key column holding the organization_user_id (e.g. SubscriberKey).
    #[schemars(length(min = 1))]
    pub primary_key: String,
    /// Date column set to the time of the user's consent state on every write (e.g. OptIn_Date), so an opt-out reads "flag false since <date>".
    #[serde(default)]
    pub consent_date_column: Option<String>,
    /// Authentication base; https://{subdomain}.auth.marketingcloudapis.com unless set.
    #[serde(default)]
    #[schemars(url)]
    pub auth_base_url: Option<String>,
    /// REST base; the token answer's rest_instance_url (https://{subdomain}.rest.marketingcloudapis.com) unless set.
    #[serde(default)]
    #[schemars(url)]
    pub rest_base_url: Option<String>,
}

impl SfmcConfig {
    /// The authentication base without a trailing slash.
    pub fn auth_base(&self) -> String {
        match &self.properties.auth_base_url {
            Some(url) => with_scheme(url),
            None => format!(
                "https://{}.auth.marketingcloudapis.com",
                self.properties.subdomain
            ),
        }
    }

    /// The REST base set in the config, without a trailing slash.
    pub fn rest_base_override(&self) -> Option<String> {
        self.properties.rest_base_url.as_deref().map(with_scheme)
    }

    /// The tenant's own REST host: the only one a token answer may send us to.
    pub fn tenant_rest_host(&self) -> String {
        format!(
            "{}.rest.marketingcloudapis.com",
            self.properties.subdomain.to_ascii_lowercase()
        )
    }
}

/// `url` without a trailing slash, https when no scheme was given.
fn with_scheme(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.contains("://") {
        url.to_string()
    } else {
        format!("https://{url}")
    }
}

/// The rules the schema cannot say.
pub fn check(config: &SfmcConfig, p: &mut Problems) {
    let auth = &config.authentication;
    let props = &config.properties;
    for (path, value) in [
        ("authentication.client_id", &auth.client_id),
        ("authentication.client_secret", &auth.client_secret),
        ("properties.data_extension_key", &props.data_extension_key),
        ("properties.primary_key", &props.primary_key),
    ] {
        if value.trim().is_empty() {
            p.push(path, "must not be empty");
        }
    }
    for (path, url) in [
        ("properties.auth_base_url", &props.auth_base_url),
        ("properties.rest_base_url", &props.rest_base_url),
    ] {
        if let Some(url) = url {
            p.url(path, url, false);
        }
    }
    p.mappings("mappings", &config.mappings);
    let primary_key = Some(props.primary_key.as_str()).filter(|k| !k.trim().is_empty());
    let date_column = props.consent_date_column.as_deref();
    for (i, mapping) in config.mappings.iter().enumerate() {
        let column = mapping.id.as_str();
        if Some(column) == primary_key {
            p.push(
                &format!("mappings[{i}].id"),
                format!(
                    "`{column}` is the primary key, which always holds the organization_user_id"
                ),
            );
        }
        if Some(column) == date_column {
            p.push(
                &format!("mappings[{i}].id"),
                format!("`{column}` is the consent_date_column, which the connector fills"),
            );
        }
    }
    let total = config.mappings.len() + 1 + usize::from(date_column.is_some());
    if total > MAX_COLUMNS {
        p.push(
            "mappings",
            format!(
                "{total} columns with the primary key (and date column); SFMC takes at most {MAX_COLUMNS} per call"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use prefsync_sdk::connector::validate;
    use serde_json::json;

    use crate::Sfmc;

    fn problems(config: &serde_json::Value) -> Vec<String> {
        validate::<Sfmc>(&config.to_string())
            .into_iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    fn paths(config: serde_json::Value) -> Vec<String> {
        validate::<Sfmc>(&config.to_string())
            .into_iter()
            .map(|p| p.path)
            .collect()
    }

    fn good() -> serde_json::Value {
        json!({
            "type_id": "sfmc",
            "authentication": {"client_id": "ID", "client_secret": "SECRET", "account_id": "514000123"},
            "properties": {"subdomain": "mc563885gzs27c5t9-63k636ttgm", "data_extension_key": "Consents",
                           "primary_key": "SubscriberKey", "consent_date_column": "OptIn_Date"},
            "mappings": [{"id": "Newsletter_OptIn", "value": "consents_purposes_newsletter_enabled"}],
            "upsert_mode": true
        })
    }

    #[test]
    fn a_full_config_is_valid() {
        assert!(paths(good()).is_empty(), "{:?}", problems(&good()));
        // Optional fields may be null, as before.
        let mut nulls = good();
        nulls["authentication"]["account_id"] = json!(null);
        for field in ["consent_date_column", "auth_base_url", "rest_base_url"] {
            nulls["properties"][field] = json!(null);
        }
        assert!(paths(nulls).is_empty());
        let mut bases = good();
        bases["properties"]["auth_base_url"] = json!("https://mc1.auth.marketingcloudapis.com/");
        bases["properties"]["rest_base_url"] = json!("http://127.0.0.1:9");
        assert!(paths(bases).is_empty());
    }

    #[test]
    fn every_problem_is_found_from_the_derived_schema() {
        assert_eq!(
            problems(&json!({
                "authentication": {"client_id": "", "secret": "x", "account_id": 514},
                "properties": {"subdomain": "evil.com/x?", "primary_key": "SubscriberKey",
                               "auth_base_url": 7, "colour": "red"},
                "mappings": [{"id": "A"}, {"id": "B", "value": "b", "extra": 1}],
                "upsert_mode": "yes"
            })),
            [
                "authentication.account_id: must be a string",
                "authentication.client_id: must not be empty",
                "authentication.client_secret: is required",
                "authentication.secret: unknown field (expected one of: account_id, client_id, client_secret)",
                "mappings[0].value: is required",
                "mappings[1].extra: unknown field (expected one of: id, value)",
                "properties.auth_base_url: must be a string",
                "properties.colour: unknown field (expected one of: auth_base_url, consent_date_column, data_extension_key, primary_key, rest_base_url, subdomain)",
                "properties.data_extension_key: is required",
                "properties.subdomain: does not have the expected form (pattern `^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)",
                "upsert_mode: must be true or false",
            ]
        );
        assert_eq!(
            paths(json!({"mappings": []})),
            ["authentication", "mappings", "properties"]
        );
    }

    #[test]
    fn the_subdomain_is_one_dns_label() {
        let with = |subdomain: &str| {
            let mut config = good();
            config["properties"]["subdomain"] = json!(subdomain);
            paths(config)
        };
        for ok in ["mc1", "MC563885gzs27c5t9-63k636ttgm", &"a".repeat(63)] {
            assert!(with(ok).is_empty(), "{ok}");
        }
        for bad in [
            "",
            " ",
            "-mc1",
            "mc1-",
            "mc.evil.com",
            "mc1/x",
            "mc_1",
            &"a".repeat(64),
        ] {
            assert_eq!(with(bad), ["properties.subdomain"], "{bad}");
        }
    }

    #[test]
    fn every_rule_the_schema_cannot_say_is_checked() {
        let mut config = good();
        config["authentication"]["client_secret"] = json!("  ");
        config["properties"]["data_extension_key"] = json!(" ");
        config["properties"]["auth_base_url"] = json!("ftp://x");
        config["properties"]["rest_base_url"] =
            json!("https://user:pw@mc1.rest.marketingcloudapis.com");
        config["mappings"] = json!([
            {"id": "SubscriberKey", "value": "organization_user_id"},
            {"id": "OptIn_Date", "value": "metadata_date"},
            {"id": "Age", "value": " "},
            {"id": "Age", "value": "metadata_age"}
        ]);
        assert_eq!(
            paths(config),
            [
                "authentication.client_secret",
                "properties.data_extension_key",
                "properties.auth_base_url",
                "properties.rest_base_url",
                "mappings[2].value",
                "mappings[3].id",
                "mappings[0].id",
                "mappings[1].id",
            ]
        );
    }

    #[test]
    fn too_many_columns_are_refused() {
        let config = |n: usize, date_column: bool| {
            let mappings: Vec<_> = (0..n)
                .map(|i| json!({"id": format!("C{i}"), "value": "metadata_x"}))
                .collect();
            let mut config = json!({
                "authentication": {"client_id": "ID", "client_secret": "SECRET"},
                "properties": {"subdomain": "mc1", "data_extension_key": "K", "primary_key": "SubscriberKey"},
                "mappings": mappings
            });
            if date_column {
                config["properties"]["consent_date_column"] = json!("OptIn_Date");
            }
            config
        };
        assert!(paths(config(49, false)).is_empty());
        assert!(paths(config(48, true)).is_empty());
        assert_eq!(
            problems(&config(50, false)),
            ["mappings: must have at most 49 entries"]
        );
        let problems = problems(&config(49, true));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("mappings: 51 columns") && problems[0].contains("at most 50"),
            "{problems:?}"
        );
    }

    #[test]
    fn the_schema_marks_the_secrets_and_the_urls() {
        use prefsync_sdk::Connector;
        let schema = Sfmc::config_schema();
        let auth = &schema["properties"]["authentication"]["properties"];
        for secret in ["client_id", "client_secret", "account_id"] {
            assert_eq!(auth[secret]["writeOnly"], true, "{secret}");
        }
        let properties = &schema["properties"]["properties"]["properties"];
        for url in ["auth_base_url", "rest_base_url"] {
            assert_eq!(properties[url]["format"], "uri", "{url}");
        }
        assert_eq!(schema["properties"]["mappings"]["maxItems"], 49);
        // Those and no other.
        let text = schema.to_string();
        assert_eq!(text.matches("\"format\"").count(), 2, "{text}");
        assert_eq!(text.matches("\"writeOnly\"").count(), 3, "{text}");
    }
}
