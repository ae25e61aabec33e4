//! Traffic the host itself originates — an activation's warnings webhook, a
//! PostgreSQL model source — has no integration allowlist, but it passes the
//! same operator options as a connector's: the scheme rule and a literal
//! address are checked before any DNS lookup, every resolved address after
//! it, and the connection goes to an address that was checked.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use url::Url;

use super::{Denied, EgressOptions, check_address, check_literal_address, check_scheme};

/// Checks a URL the host will request by itself, before any DNS lookup:
/// absolute http(s) with a host, no credentials in it, `egress.allow_http`
/// for plain http, and the address itself when the host is an IP literal.
pub fn check_host_url(raw: &str, options: &EgressOptions) -> Result<Url, Denied> {
    let url = Url::parse(raw).map_err(|_| Denied::InvalidUrl(shown_url(raw)))?;
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err(Denied::InvalidUrl(shown_url(raw)));
    };
    let host = host.to_string();
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Denied::Credentials { host });
    }
    check_scheme(&url, &host, options)?;
    check_literal_address(&host, options)?;
    Ok(url)
}

/// The part of a URL a refusal may show: scheme and host, never userinfo,
/// path or query (either may carry a credential).
fn shown_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(url) => match url.host_str() {
            Some(host) if !host.is_empty() => format!("{}://{host}/…", url.scheme()),
            _ => format!("a {}: URL without a host", url.scheme()),
        },
        Err(_) => "a text that does not parse as a URL".into(),
    }
}

/// Keeps the answers the options allow; refused when some were given and
/// none is allowed (the first refusal says why).
pub fn allowed_answers(
    host: &str,
    answers: impl IntoIterator<Item = SocketAddr>,
    options: &EgressOptions,
) -> Result<Vec<SocketAddr>, Denied> {
    let mut allowed = Vec::new();
    let mut denied: Option<Denied> = None;
    for answer in answers {
        match check_address(host, answer.ip(), options) {
            Ok(()) => allowed.push(answer),
            Err(why) => {
                denied.get_or_insert(why);
            }
        }
    }
    match (allowed.is_empty(), denied) {
        (true, Some(why)) => Err(why),
        _ => Ok(allowed),
    }
}

/// A Unix socket is a local connection: it counts as loopback.
pub fn check_local_socket(path: &str, options: &EgressOptions) -> Result<(), Denied> {
    check_address(path, IpAddr::V4(Ipv4Addr::LOCALHOST), options).map_err(|_| Denied::LocalSocket {
        path: path.to_string(),
    })
}

/// Why a host could not be reached: a refusal by the policy, or a name
/// that does not resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreachable {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error("host {host} does not resolve: {reason}")]
    Unresolved { host: String, reason: String },
}

/// Resolves `host` (a name or an IP literal) and keeps the addresses the
/// options allow, for a connection made to exactly those.
pub async fn resolve_allowed(
    host: &str,
    port: u16,
    options: &EgressOptions,
) -> Result<Vec<IpAddr>, Unreachable> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        check_address(bare, ip, options)?;
        return Ok(vec![ip]);
    }
    let answers: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|e| Unreachable::Unresolved {
            host: host.to_string(),
            reason: e.kind().to_string(),
        })?
        .collect();
    let allowed = allowed_answers(bare, answers, options)?;
    if allowed.is_empty() {
        return Err(Unreachable::Unresolved {
            host: host.to_string(),
            reason: "no address".into(),
        });
    }
    Ok(allowed.into_iter().map(|a| a.ip()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> EgressOptions {
        EgressOptions::default()
    }

    #[test]
    fn host_urls_follow_the_scheme_rule_and_literal_addresses_are_judged() {
        assert!(check_host_url("https://hooks.example.com/x", &strict()).is_ok());
        assert!(matches!(
            check_host_url("http://hooks.example.com/x", &strict()),
            Err(Denied::PlainHttp { .. })
        ));
        let http = EgressOptions {
            allow_http: true,
            ..Default::default()
        };
        assert!(check_host_url("http://hooks.example.com/x", &http).is_ok());
        assert!(matches!(
            check_host_url("ftp://hooks.example.com/x", &http),
            Err(Denied::Scheme { .. })
        ));
        for url in [
            "http://127.0.0.1:9/hook",
            "http://[::1]:9/hook",
            "http://10.0.0.5/hook",
            "http://169.254.169.254/latest",
            "http://[::ffff:10.0.0.5]/hook",
        ] {
            let error = check_host_url(url, &http).unwrap_err();
            assert!(matches!(error, Denied::Address { .. }), "{url}: {error}");
        }
        let loopback = EgressOptions {
            allow_http: true,
            allow_loopback: true,
            ..Default::default()
        };
        assert!(check_host_url("http://127.0.0.1:9/hook", &loopback).is_ok());
        assert!(check_host_url("http://10.0.0.5/hook", &loopback).is_err());
    }

    #[test]
    fn credentials_in_a_url_are_refused_without_being_shown() {
        let error = check_host_url("https://alice:Hunter2-pw@hooks.example.com/x", &strict())
            .unwrap_err()
            .to_string();
        assert!(error.contains("hooks.example.com"), "{error}");
        assert!(
            !error.contains("Hunter2-pw") && !error.contains("alice"),
            "{error}"
        );
        for raw in [
            "not a url Hunter2-pw",
            "https://:Hunter2-pw@/x",
            "mailto:Hunter2-pw@x",
        ] {
            let error = check_host_url(raw, &strict()).unwrap_err().to_string();
            assert!(!error.contains("Hunter2-pw"), "{raw}: {error}");
        }
    }

    #[test]
    fn answers_the_policy_refuses_are_dropped() {
        let answers: Vec<SocketAddr> = vec![
            "10.0.0.5:5432".parse().unwrap(),
            "93.184.216.34:5432".parse().unwrap(),
        ];
        let kept = allowed_answers("db.example.com", answers.clone(), &strict()).unwrap();
        assert_eq!(kept, [answers[1]]);
        let error = allowed_answers("db.example.com", answers[..1].to_vec(), &strict())
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "host db.example.com resolves to 10.0.0.5, a private address, which is not allowed (egress.allow_private is off)"
        );
        assert!(
            allowed_answers("db.example.com", Vec::new(), &strict())
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn literal_addresses_are_decided_without_a_lookup() {
        let error = resolve_allowed("10.0.0.5", 5432, &strict())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("10.0.0.5") && error.contains("private"),
            "{error}"
        );
        let private = EgressOptions {
            allow_private: true,
            ..Default::default()
        };
        assert_eq!(
            resolve_allowed("10.0.0.5", 5432, &private).await.unwrap(),
            ["10.0.0.5".parse::<IpAddr>().unwrap()]
        );
        assert!(resolve_allowed("[::1]", 5432, &strict()).await.is_err());
    }

    #[test]
    fn local_sockets_count_as_loopback() {
        let error = check_local_socket("/run/postgresql", &strict())
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("/run/postgresql") && error.contains("allow_loopback"),
            "{error}"
        );
        let loopback = EgressOptions {
            allow_loopback: true,
            ..Default::default()
        };
        assert!(check_local_socket("/run/postgresql", &loopback).is_ok());
    }
}
