//! An integration's JSON config, through every host-side piece that reads
//! it before a connector does — `secrets::redact_config`,
//! `Redactor::from_config`, `egress::Allowlist::for_integration` and
//! `check_url`, the `retry` policy, the id check — and through the
//! first-party connectors' own config parse and checks, linked natively
//! (Dotdigital, Actito, Selligent, webhook).
//!
//! Oracles, on a copy with a secret planted in every secret place
//! ([`crate::secrets`]): no redacted config, redacted text, validation
//! problem (redacted, as the runtime shows it), egress refusal or retry
//! error shows one. And `check_url` only
//! passes http(s) URLs to an allowlisted host and port.

use prefsync::egress::{Allowlist, EgressOptions, check_url};
use prefsync::secrets::{Redactor, redact_config};
use prefsync_sdk::Connector;
use serde_json::Value;

use super::{Target, Verdict, class};
use crate::mutate::split_meta;
use crate::secrets::{leaks, plant, strings};

pub const TARGET: Target = Target {
    name: "integration",
    about: "integration config: redaction, egress allowlist, retry policy, connectors' checks",
    run,
    dictionary: &[
        "\"id\"",
        "\"type_id\"",
        "\"enabled\"",
        "\"authentication\"",
        "\"url\"",
        "\"username\"",
        "\"password\"",
        "\"api_key\"",
        "\"private_api_key\"",
        "\"secret\"",
        "\"token\"",
        "\"properties\"",
        "\"mappings\"",
        "\"value\"",
        "\"upsert_mode\"",
        "\"retry\"",
        "\"max_retries\"",
        "\"initial_backoff_ms\"",
        "\"multiplier\"",
        "\"max_backoff_ms\"",
        "\"jitter\"",
        "\"max_retry_after_ms\"",
        "\"dotdigital\"",
        "\"actito\"",
        "\"selligent\"",
        "\"webhook\"",
        "\"gate\"",
        "\"engage\"",
        "\"api\"",
        "\"entity_id\"",
        "\"table_name\"",
        "\"user_unique_key\"",
        "\"enable_webhooks\"",
        "\"retry_on\"",
        "\"headers\"",
        "\"signing_secret\"",
        "\"https://r1-api.dotdigital.com\"",
        "\"https://user:pw@127.0.0.1:8443/x?password=y\"",
        "\"http://[::1]:80/\"",
        "\"http://0x7f.1/\"",
        "\"https://169.254.169.254/latest\"",
        "\"javascript:alert(1)\"",
        "\"file:///etc/passwd\"",
        "\"consents_purposes_newsletter_enabled\"",
        "\"organization_user_id\"",
        "\"..\"",
    ],
    json: true,
};

/// Each linked connector: its name, schema and default hosts, and its
/// config check (the SDK's `validate`, as the component runs it).
struct Linked {
    name: &'static str,
    describe: fn() -> prefsync_sdk::Description,
    schema: fn() -> Value,
    validate: fn(&str) -> Vec<prefsync_sdk::ValidationProblem>,
}

const CONNECTORS: [Linked; 4] = [
    Linked {
        name: "dotdigital",
        describe: prefsync_dotdigital::Dotdigital::describe,
        schema: prefsync_dotdigital::Dotdigital::config_schema,
        validate: prefsync_sdk::connector::validate::<prefsync_dotdigital::Dotdigital>,
    },
    Linked {
        name: "actito",
        describe: prefsync_actito::Actito::describe,
        schema: prefsync_actito::Actito::config_schema,
        validate: prefsync_sdk::connector::validate::<prefsync_actito::Actito>,
    },
    Linked {
        name: "selligent",
        describe: prefsync_selligent::Selligent::describe,
        schema: prefsync_selligent::Selligent::config_schema,
        validate: prefsync_sdk::connector::validate::<prefsync_selligent::Selligent>,
    },
    Linked {
        name: "webhook",
        describe: prefsync_webhook::Webhook::describe,
        schema: prefsync_webhook::Webhook::config_schema,
        validate: prefsync_sdk::connector::validate::<prefsync_webhook::Webhook>,
    },
];

fn run(input: &[u8]) -> Verdict {
    let (_, body) = split_meta(input);
    let text = String::from_utf8_lossy(body);
    let config: Value = match serde_json::from_str(&text) {
        Ok(config) => config,
        Err(error) => {
            // The connectors still get the text: they report syntax themselves.
            for connector in &CONNECTORS {
                (connector.validate)(&text);
            }
            return Ok(class("syntax", &error.to_string()));
        }
    };
    let mut planted = config.clone();
    let planted_count = plant(&mut planted).len();
    let shape = check(&config, false)?;
    if planted_count > 0 {
        check(&planted, true)?;
    }
    Ok(if shape.is_empty() {
        "parsed".into()
    } else {
        shape
    })
}

/// Runs every piece on `config`; with `planted`, also the secret oracles.
fn check(config: &Value, planted: bool) -> Result<String, String> {
    let leak = |what: &str, text: &str| -> Result<(), String> {
        if planted && leaks(text) {
            Err(format!("a planted secret shows in {what}"))
        } else {
            Ok(())
        }
    };
    let mut shape = Vec::new();

    if let Some(id) = config.get("id").and_then(Value::as_str) {
        match prefsync::ids::check_id(id) {
            Ok(()) if id.starts_with('.') || id.contains(['/', '\\', '\0']) => {
                return Err("check_id accepted a dot id or a path separator".into());
            }
            Ok(()) => {}
            Err(error) => shape.push(class("id", &error.to_string())),
        }
    }

    if let Some(retry) = config.get("retry") {
        match prefsync::integrations::retry_policy(retry) {
            Ok(policy) => {
                shape.push("retry-ok".into());
                for failures in 1..=policy.max_retries.min(70) {
                    for unit in [0.0, 0.5, 0.999_999] {
                        let _ = policy.next_delay(failures, Some(u64::MAX), unit);
                        let _ = policy.next_delay(failures, None, unit);
                    }
                }
                let _ = policy.minimum_span(policy.max_retries.min(70));
            }
            Err(error) => {
                let message = error.to_string();
                leak("the retry policy's error", &message)?;
                shape.push(class("retry", &message));
            }
        }
    }

    let text = config.to_string();
    let permissive = EgressOptions {
        allow_loopback: true,
        allow_private: true,
        allow_http: true,
        ..Default::default()
    };
    check_redaction(config, &Value::Null, &leak)?;
    for connector in &CONNECTORS {
        let description = (connector.describe)();
        let schema = (connector.schema)();
        check_redaction(config, &schema, &leak)?;
        let allowlist = Allowlist::for_integration(config, &schema, &description.default_hosts);
        for raw in strings(config, 16)
            .into_iter()
            .filter(|s| s.contains(':'))
            .chain(description.default_hosts.iter().map(String::as_str))
        {
            for options in [&EgressOptions::default(), &permissive] {
                match check_url(raw, &allowlist, options) {
                    Ok(url) => {
                        let host = url.host_str().unwrap_or_default();
                        let port = url.port_or_known_default().unwrap_or(0);
                        if !matches!(url.scheme(), "http" | "https")
                            || !allowlist.allows(host, port)
                        {
                            return Err(format!(
                                "check_url passed a {} URL to a host:port the allowlist lacks",
                                url.scheme()
                            ));
                        }
                    }
                    Err(denied) => leak("an egress refusal", &denied.to_string())?,
                }
            }
        }
        let problems = (connector.validate)(&text);
        // As the runtime shows them: through the integration's redactor.
        let redactor = Redactor::from_config(config, &schema);
        for problem in &problems {
            let shown = format!("{}: {}", problem.path, problem.message);
            leak(
                &format!("{}'s validation problems (redacted)", connector.name),
                &redactor.redact(&shown),
            )?;
        }
        if config.get("type_id").and_then(Value::as_str) == Some(connector.name) {
            shape.push(match problems.first() {
                None => format!("{}-valid", connector.name),
                Some(p) => class(connector.name, &format!("{}: {}", p.path, p.message)),
            });
        }
    }
    Ok(shape.join("\n"))
}

/// `redact_config` and a `Redactor`, both from `config` read with `schema`.
fn check_redaction(
    config: &Value,
    schema: &Value,
    leak: &dyn Fn(&str, &str) -> Result<(), String>,
) -> Result<(), String> {
    let redacted = redact_config(config, schema);
    leak("redact_config's answer", &redacted.to_string())?;
    let redactor = Redactor::from_config(config, schema);
    for secret in strings(config, 64) {
        if secret.starts_with(crate::secrets::PLANTED) {
            let encoded = base64_of(secret);
            let said = format!("connector said: {secret} (base64 {encoded})");
            let scrubbed = redactor.redact(&said);
            leak("Redactor::redact of a message", &scrubbed)?;
            if scrubbed.contains(&encoded) {
                return Err("a planted secret's base64 form shows in Redactor::redact".into());
            }
        }
    }
    Ok(())
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}
