//! Egress policy: the one place that decides whether a connector's request
//! may leave the machine.
//!
//! A request passes when (1) its scheme is https (or http where the operator
//! allows it), (2) its host and port are in the integration's allowlist — the
//! hosts of the config's URL fields plus the connector's declared defaults —
//! and (3) every address the host resolves to is public, unless the operator
//! allows loopback or private ranges. (1) and (2) are checked before any DNS
//! lookup, so a denied host is never even resolved.
//!
//! Connections the host opens by itself (an activation's warnings webhook, a
//! PostgreSQL model source) have no allowlist but pass (1) and (3) the same
//! way: [`host`].

pub mod address;
pub mod host;
mod resolver;
pub mod roots;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use url::Url;

pub use address::{AddressClass, classify};
pub use host::{Unreachable, check_host_url, check_local_socket, resolve_allowed};
pub use resolver::PolicyResolver;

/// The operator's egress options (`[egress]` in the host config). The
/// defaults are what production wants: https to public addresses only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EgressOptions {
    /// Let connectors reach loopback addresses (127.0.0.0/8, ::1), e.g. local mock servers.
    #[serde(default)]
    pub allow_loopback: bool,
    /// Let connectors reach private, CGNAT, unique-local and link-local addresses.
    #[serde(default)]
    pub allow_private: bool,
    /// Let connectors use plain `http://` URLs.
    #[serde(default)]
    pub allow_http: bool,
    /// PEM files of certificate authorities that HTTPS connections trust
    /// beside the system's roots: a private CA in front of a self-hosted
    /// destination, a TLS-inspecting proxy's. Relative paths are read from
    /// the working directory; a file that cannot be used stops the start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_root_certificates: Vec<PathBuf>,
    /// How a denial names the option that would allow the request; not
    /// configurable (the host config's names unless a command sets its own).
    #[serde(skip)]
    pub named_by: OptionNames,
}

/// Who sets the egress options, so that a denial names the switch the
/// person reading it can turn: the host config's `[egress]` settings, or
/// `prefsync connector test`'s flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OptionNames {
    #[default]
    HostConfig,
    CommandLine,
}

impl OptionNames {
    /// How to allow plain http.
    fn allow_http(self) -> &'static str {
        match self {
            OptionNames::HostConfig => "set egress.allow_http",
            OptionNames::CommandLine => "pass --allow-http",
        }
    }

    /// Why an address class is refused, and how to allow it.
    fn address_hint(self, class: AddressClass) -> &'static str {
        match (self, class) {
            (_, AddressClass::Public | AddressClass::Reserved) => "",
            (OptionNames::HostConfig, AddressClass::Loopback) => " (egress.allow_loopback is off)",
            (OptionNames::CommandLine, AddressClass::Loopback) => " (pass --allow-loopback)",
            (OptionNames::HostConfig, AddressClass::Private | AddressClass::LinkLocal) => {
                " (egress.allow_private is off)"
            }
            (OptionNames::CommandLine, AddressClass::Private | AddressClass::LinkLocal) => {
                " (set egress.allow_private in a --host-config file)"
            }
        }
    }
}

/// Why a request was refused. The text names the host and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The URL as shown: without its password (`user:password@`, `?password=`).
    #[error("`{0}` is not a valid absolute URL")]
    InvalidUrl(String),
    #[error("scheme `{scheme}` is not allowed for {host} (only https)")]
    Scheme { scheme: String, host: String },
    #[error("plain http to {host} is not allowed (use https, or {allow} for local testing)")]
    PlainHttp { host: String, allow: &'static str },
    #[error("host {host}:{port} is not in this integration's allowlist ({allowed})")]
    NotAllowed {
        host: String,
        port: u16,
        allowed: String,
    },
    #[error("host {host} resolves to {address}, {class}, which is not allowed{hint}", class = class.describe())]
    Address {
        host: String,
        address: IpAddr,
        class: AddressClass,
        hint: &'static str,
    },
    /// A URL the host requests by itself may not carry a user name or password.
    #[error("the URL for {host} carries a user name or password, which the host never sends")]
    Credentials { host: String },
    /// A Unix socket is local: it needs `egress.allow_loopback`.
    #[error("socket {path} is local, which is not allowed (egress.allow_loopback is off)")]
    LocalSocket { path: String },
    /// More than one reason, all told at once so that one run shows every
    /// option to change.
    #[error("{}", join_reasons(.0))]
    Several(Vec<Denied>),
}

fn join_reasons(reasons: &[Denied]) -> String {
    let shown: Vec<String> = reasons.iter().map(Denied::to_string).collect();
    shown.join("; and ")
}

/// The hosts one integration may reach, as (lower-case host, port).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    entries: BTreeSet<(String, u16)>,
}

impl Allowlist {
    /// The connector's default hosts (https) plus the host of every config
    /// field whose schema says `"format": "uri"`. A bare host means https.
    /// A default host may name a config field in braces,
    /// `{properties.subdomain}.rest.example.com`, for vendors with a host per
    /// tenant: it is filled with that field's value when the value is one
    /// DNS label, and left out otherwise.
    pub fn for_integration(config: &Json, schema: &Json, default_hosts: &[String]) -> Self {
        let mut list = Allowlist::default();
        for host in default_hosts {
            if let Some(host) = fill_host_template(host, config) {
                list.add_url_or_host(&host);
            }
        }
        for (_, value) in uri_fields(schema, config) {
            list.add_url_or_host(value);
        }
        list
    }

    /// Adds `https://host`, `http://host:port/path` or a bare `host[:port]`.
    pub fn add_url_or_host(&mut self, raw: &str) {
        let raw = raw.trim();
        let with_scheme = if raw.contains("://") {
            raw.to_string()
        } else {
            format!("https://{raw}")
        };
        if let Ok(url) = Url::parse(&with_scheme)
            && let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default())
        {
            self.entries.insert((host.to_ascii_lowercase(), port));
        }
    }

    pub fn allows(&self, host: &str, port: u16) -> bool {
        self.entries.contains(&(host.to_ascii_lowercase(), port))
    }

    /// `host:port` entries, for messages and `connector inspect`.
    pub fn entries(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|(h, p)| format!("{h}:{p}"))
            .collect()
    }
}

/// `template` with each `{path}` replaced by the config's string at that
/// dotted path; `None` when a path is missing or its value is not one DNS
/// label (letters, digits, `-`; so a value can never add a dot, a port or
/// a path to the host).
fn fill_host_template(template: &str, config: &Json) -> Option<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let end = start + rest[start..].find('}')?;
        out.push_str(&rest[..start]);
        let value = rest[start + 1..end]
            .split('.')
            .try_fold(config, |node, key| node.get(key))?
            .as_str()?;
        let label = !value.is_empty()
            && value.len() <= 63
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !label {
            return None;
        }
        out.push_str(value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// Walks `schema` and `config` together: every string value whose schema
/// node is `"format": "uri"`, with its path (`authentication.url`,
/// `endpoints[1].url`) as config problems name fields.
pub fn uri_fields<'c>(schema: &Json, config: &'c Json) -> Vec<(String, &'c str)> {
    fn walk<'c>(schema: &Json, config: &'c Json, path: &str, found: &mut Vec<(String, &'c str)>) {
        if schema.get("format").and_then(Json::as_str) == Some("uri")
            && let Some(value) = config.as_str()
        {
            found.push((path.to_string(), value));
        }
        if let (Some(props), Some(obj)) = (
            schema.get("properties").and_then(Json::as_object),
            config.as_object(),
        ) {
            for (name, sub_schema) in props {
                if let Some(sub_config) = obj.get(name) {
                    let sub_path = if path.is_empty() {
                        name.clone()
                    } else {
                        format!("{path}.{name}")
                    };
                    walk(sub_schema, sub_config, &sub_path, found);
                }
            }
        }
        if let (Some(items), Some(array)) = (schema.get("items"), config.as_array()) {
            for (index, item) in array.iter().enumerate() {
                walk(items, item, &format!("{path}[{index}]"), found);
            }
        }
    }
    let mut found = Vec::new();
    walk(schema, config, "", &mut found);
    found
}

/// Checks a request's URL before any DNS lookup: scheme, allowlist, and the
/// address itself when the host is an IP literal.
pub fn check_url(raw: &str, allowlist: &Allowlist, options: &EgressOptions) -> Result<Url, Denied> {
    let url =
        Url::parse(raw).map_err(|_| Denied::InvalidUrl(prefsync_base::secrets::redact_url(raw)))?;
    let host = url
        .host_str()
        .ok_or_else(|| Denied::InvalidUrl(prefsync_base::secrets::redact_url(raw)))?
        .to_string();
    // Every reason at once: plain http, an allowlist and an address problem
    // are independent, and each needs its own change. Another scheme is
    // refused whatever the rest says.
    let mut reasons = Vec::new();
    match check_scheme(&url, &host, options) {
        Err(denied @ Denied::Scheme { .. }) => return Err(denied),
        Err(denied) => reasons.push(denied),
        Ok(()) => {}
    }
    let port = url
        .port_or_known_default()
        .ok_or_else(|| Denied::InvalidUrl(prefsync_base::secrets::redact_url(raw)))?;
    if !allowlist.allows(&host, port) {
        reasons.push(Denied::NotAllowed {
            host: host.clone(),
            port,
            allowed: allowlist.entries().join(", "),
        });
    }
    if let Err(denied) = check_literal_address(&host, options) {
        reasons.push(denied);
    }
    match reasons.len() {
        0 => Ok(url),
        1 => Err(reasons.remove(0)),
        _ => Err(Denied::Several(reasons)),
    }
}

/// https, or http where the operator allows it; nothing else.
fn check_scheme(url: &Url, host: &str, options: &EgressOptions) -> Result<(), Denied> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if options.allow_http => Ok(()),
        "http" => Err(Denied::PlainHttp {
            host: host.to_string(),
            allow: options.named_by.allow_http(),
        }),
        other => Err(Denied::Scheme {
            scheme: other.to_string(),
            host: host.to_string(),
        }),
    }
}

/// When `host` is an IP literal (`[::1]` included), the address check,
/// before any DNS lookup; a name passes here and is checked once resolved.
fn check_literal_address(host: &str, options: &EgressOptions) -> Result<(), Denied> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => check_address(bare, ip, options),
        Err(_) => Ok(()),
    }
}

/// Checks one resolved (or literal) address against the operator's options.
pub fn check_address(host: &str, address: IpAddr, options: &EgressOptions) -> Result<(), Denied> {
    let class = classify(address);
    let allowed = match class {
        AddressClass::Public => true,
        AddressClass::Loopback => options.allow_loopback,
        AddressClass::Private | AddressClass::LinkLocal => options.allow_private,
        AddressClass::Reserved => false,
    };
    let hint = options.named_by.address_hint(class);
    if allowed {
        Ok(())
    } else {
        Err(Denied::Address {
            host: host.to_string(),
            address,
            class,
            hint,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn dotdigital_like() -> (Json, Json) {
        let schema = json!({"properties": {
            "authentication": {"properties": {"url": {"type": "string", "format": "uri"},
                                              "password": {"type": "string"}}},
            "properties": {"properties": {"url": {"format": "uri"}}}
        }});
        let config = json!({
            "authentication": {"url": "https://r1-api.dotdigital.com/", "password": "https://not.a.host"},
            "properties": {"url": "my-selligent-installation.com"}
        });
        (schema, config)
    }

    #[test]
    fn a_default_host_can_name_a_config_field_holding_one_label() {
        let defaults = ["{properties.subdomain}.rest.example.com".to_string()];
        let schema = json!({});
        let list = Allowlist::for_integration(
            &json!({"properties": {"subdomain": "mc-Tenant1"}}),
            &schema,
            &defaults,
        );
        assert_eq!(list.entries(), ["mc-tenant1.rest.example.com:443"]);
        for bad in [
            json!({"properties": {"subdomain": "evil.com/x"}}),
            json!({"properties": {"subdomain": "a.b"}}),
            json!({"properties": {"subdomain": ""}}),
            json!({"properties": {"subdomain": 7}}),
            json!({"properties": {}}),
        ] {
            let list = Allowlist::for_integration(&bad, &schema, &defaults);
            assert!(list.entries().is_empty(), "{bad}: {:?}", list.entries());
        }
    }

    #[test]
    fn allowlist_takes_uri_fields_and_defaults_only() {
        let (schema, config) = dotdigital_like();
        let list = Allowlist::for_integration(&config, &schema, &["api.example.com".into()]);
        assert_eq!(
            list.entries(),
            [
                "api.example.com:443",
                "my-selligent-installation.com:443",
                "r1-api.dotdigital.com:443"
            ]
        );
    }

    #[test]
    fn decisions() {
        let (schema, config) = dotdigital_like();
        let list = Allowlist::for_integration(&config, &schema, &[]);
        let strict = EgressOptions::default();
        assert!(
            check_url(
                "https://r1-api.dotdigital.com/contacts/v3/email/x",
                &list,
                &strict
            )
            .is_ok()
        );
        assert!(check_url("https://R1-API.dotdigital.com/", &list, &strict).is_ok());
        assert!(matches!(
            check_url("https://r2-api.dotdigital.com/", &list, &strict),
            Err(Denied::NotAllowed { .. })
        ));
        assert!(matches!(
            check_url("https://r1-api.dotdigital.com:8443/", &list, &strict),
            Err(Denied::NotAllowed { .. })
        ));
        // Plain http, and port 80 is not the allowlisted 443: both are said.
        assert!(matches!(
            check_url("http://r1-api.dotdigital.com/", &list, &strict),
            Err(Denied::Several(reasons)) if matches!(
                reasons.as_slice(),
                [Denied::PlainHttp { .. }, Denied::NotAllowed { port: 80, .. }]
            )
        ));
        assert!(matches!(
            check_url("ftp://r1-api.dotdigital.com/", &list, &strict),
            Err(Denied::Scheme { .. })
        ));
        assert!(matches!(
            check_url("not a url", &list, &strict),
            Err(Denied::InvalidUrl(_))
        ));
    }

    #[test]
    fn every_reason_is_told_at_once_in_the_words_of_who_sets_the_options() {
        let mut list = Allowlist::default();
        list.add_url_or_host("http://127.0.0.1:9000");
        let config_file = EgressOptions::default();
        let denied = check_url("http://127.0.0.1:9000/x", &list, &config_file).unwrap_err();
        assert!(matches!(&denied, Denied::Several(reasons) if reasons.len() == 2));
        assert_eq!(
            denied.to_string(),
            "plain http to 127.0.0.1 is not allowed (use https, or set egress.allow_http for \
             local testing); and host 127.0.0.1 resolves to 127.0.0.1, a loopback address, \
             which is not allowed (egress.allow_loopback is off)"
        );
        let flags = EgressOptions {
            named_by: OptionNames::CommandLine,
            ..Default::default()
        };
        let denied = check_url("http://127.0.0.1:9001/x", &list, &flags)
            .unwrap_err()
            .to_string();
        for told in ["pass --allow-http", "(pass --allow-loopback)", "allowlist"] {
            assert!(denied.contains(told), "{told} in {denied}");
        }
        assert!(!denied.contains("egress.allow"), "{denied}");
        let private = check_address("db", "10.0.0.5".parse().unwrap(), &flags).unwrap_err();
        assert!(
            private
                .to_string()
                .ends_with("(set egress.allow_private in a --host-config file)")
        );
    }

    #[test]
    fn literal_addresses_are_checked_even_when_allowlisted() {
        let mut list = Allowlist::default();
        for host in [
            "https://127.0.0.1:9000",
            "https://169.254.169.254",
            "https://[::1]:9000",
            "https://10.0.0.8",
        ] {
            list.add_url_or_host(host);
        }
        let strict = EgressOptions::default();
        for url in [
            "https://127.0.0.1:9000/",
            "https://169.254.169.254/latest",
            "https://[::1]:9000/",
            "https://10.0.0.8/",
        ] {
            let err = check_url(url, &list, &strict).unwrap_err();
            assert!(matches!(err, Denied::Address { .. }), "{url}: {err}");
        }
        let loopback_ok = EgressOptions {
            allow_loopback: true,
            ..Default::default()
        };
        assert!(check_url("https://127.0.0.1:9000/", &list, &loopback_ok).is_ok());
        assert!(check_url("https://[::1]:9000/", &list, &loopback_ok).is_ok());
        assert!(check_url("https://169.254.169.254/", &list, &loopback_ok).is_err());
        let message = check_url("https://169.254.169.254/", &list, &strict)
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "host 169.254.169.254 resolves to 169.254.169.254, a link-local address, which is not allowed (egress.allow_private is off)"
        );
    }

    #[test]
    fn reserved_addresses_are_never_allowed() {
        let everything = EgressOptions {
            allow_loopback: true,
            allow_private: true,
            allow_http: true,
            ..Default::default()
        };
        assert!(check_address("x", "0.0.0.0".parse().unwrap(), &everything).is_err());
        assert!(check_address("x", "224.0.0.1".parse().unwrap(), &everything).is_err());
        assert!(check_address("x", "10.0.0.1".parse().unwrap(), &everything).is_ok());
    }

    #[test]
    fn a_refused_url_is_named_without_its_password() {
        use crate::egress::{Allowlist, Denied, EgressOptions, check_url};
        let list = Allowlist::default();
        for raw in [
            "http://user:hunter2-pw@/x",
            "http://user:hunter2-pw@[::1/x",
            "unix:/tmp/sock?password=hunter2-pw",
        ] {
            let denied = check_url(raw, &list, &EgressOptions::default()).unwrap_err();
            assert!(matches!(denied, Denied::InvalidUrl(_)), "{denied}");
            assert!(!denied.to_string().contains("hunter2-pw"), "{denied}");
        }
    }
}
