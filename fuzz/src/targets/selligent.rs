//! Selligent's answers, read by the connector linked natively: the Gate
//! SOAP reader (the `quick-xml` lookups of `TriggerCampaignResult`,
//! `ErrorStr`, `faultstring`) and, with
//! `#api: engage`, the Engage REST answer. The fuzzed bytes are the HTTP
//! body a scripted host answers with (`#status: N`, default 200).
//!
//! Oracles: one request and one outcome per record; a failure never shows
//! the integration's password.

use std::cell::RefCell;

use prefsync_sdk::{
    ConsentRecord, Host, HttpError, LogLevel, Outcome, Request, Response, Value, connector,
};
use prefsync_selligent::Selligent;

use super::{Target, Verdict};
use crate::mutate::{meta, split_meta};

pub const TARGET: Target = Target {
    name: "selligent",
    about: "Selligent Gate SOAP reader and Engage answers",
    run,
    dictionary: &[
        "<TriggerCampaignResult>",
        "</TriggerCampaignResult>",
        "<ErrorStr>",
        "</ErrorStr>",
        "<faultstring>",
        "</faultstring>",
        "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">",
        "<soap:Body>",
        "</soap:Body>",
        "<TriggerCampaignResponse xmlns=\"http://tempuri.org/\">",
        "<a:TriggerCampaignResult/>",
        "<TriggerCampaignResult ",
        "<!--",
        "-->",
        "<![CDATA[",
        "]]>",
        "&lt;",
        "&amp;",
        "&amp;lt;",
        "&#x0;",
        "&#39;",
        "&#x41;",
        "&nbsp;",
        "<!DOCTYPE x [<!ENTITY e \"boom\">]>",
        "&e;",
        "<",
        ">",
        "/>",
        "</",
        "10001",
        "10013",
        "-0",
        " 0 ",
        "\"result_code\"",
        "\"message\"",
        "\"Succeeded\"",
        "\"NotFound\"",
        "\"ValidationFailed\"",
        "\"errors\"",
        "#status: 500\n",
        "#status: 200\n",
        "#api: engage\n",
    ],
    json: false,
};

/// The password every config carries; an outcome must not show it.
const PASSWORD: &str = "PLANTEDSECRET-selligent-pw";

fn gate_config() -> String {
    serde_json::json!({
        "type_id": "selligent",
        "authentication": {"username": "api-user", "password": PASSWORD},
        "properties": {"url": "acme.slgnt.eu", "gate": "DIDOMI"},
        "mappings": [
            {"id": "MAIL", "value": "organization_user_id"},
            {"id": "OPTIN_NEWS", "value": "consents_purposes_newsletter_enabled"}
        ]
    })
    .to_string()
}

fn engage_config() -> String {
    serde_json::json!({
        "type_id": "selligent",
        "authentication": {"api_key": "key-id", "api_secret": PASSWORD},
        "properties": {"api": "engage", "url": "https://acme.slgnt.eu/api",
                       "organization": "acme", "list": "USERS"},
        "mappings": [
            {"id": "MAIL", "value": "organization_user_id"},
            {"id": "OPTIN_NEWS", "value": "consents_purposes_newsletter_enabled"}
        ]
    })
    .to_string()
}

/// A host that answers every request with the fuzzed body.
struct Answer {
    status: u16,
    body: Vec<u8>,
    sent: RefCell<usize>,
}

impl Host for Answer {
    fn send(&self, _request: Request) -> Result<Response, HttpError> {
        *self.sent.borrow_mut() += 1;
        Ok(Response {
            status: self.status,
            headers: vec![("content-type".into(), "text/xml; charset=utf-8".into())],
            body: self.body.clone(),
        })
    }

    fn log(&self, _level: LogLevel, _message: &str, _fields: &[(String, String)]) {}

    fn cache_get(&self, _key: &str) -> Option<String> {
        None
    }

    fn cache_set(&self, _key: &str, _value: &str, _ttl_seconds: u32) {}
}

fn run(input: &[u8]) -> Verdict {
    let status = meta(input, "status")
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or(200);
    let engage = meta(input, "api") == Some("engage");
    let (_, body) = split_meta(input);
    let host = Answer {
        status,
        body: body.to_vec(),
        sent: RefCell::new(0),
    };
    let record = ConsentRecord::new(
        "organization_user_id",
        "ann@example.com",
        &[
            (
                "organization_user_id",
                Value::Text("ann@example.com".into()),
            ),
            ("consents_purposes_newsletter_enabled", Value::Boolean(true)),
        ],
    );
    let config = if engage {
        engage_config()
    } else {
        gate_config()
    };
    let outcomes = connector::deliver::<Selligent>(&host, &config, &[record]);
    let [outcome] = outcomes.as_slice() else {
        return Err(format!("{} outcomes for one record", outcomes.len()));
    };
    let api = if engage { "engage" } else { "gate" };
    let sent = *host.sent.borrow();
    if sent != 1 {
        return Err(format!("{sent} requests for one record"));
    }
    Ok(match outcome {
        Outcome::Failed(failure) => {
            if failure.message.starts_with("invalid integration config") {
                return Err(format!(
                    "the harness's config is refused: {}",
                    failure.message
                ));
            }
            if failure.message.contains(PASSWORD) {
                return Err("the integration's password shows in a failure".into());
            }
            format!(
                "{api}:failed:{}:{}",
                if failure.retryable {
                    "retry"
                } else {
                    "permanent"
                },
                failure_kind(&failure.message)
            )
        }
        other => format!("{api}:{other:?}:{}", status / 100),
    })
}

/// The message's first words, before any quoted answer: which of the
/// connector's answers it is.
fn failure_kind(message: &str) -> String {
    let head = message.split(':').next().unwrap_or_default();
    let shape = crate::engine::normalise(head);
    let words: Vec<&str> = shape
        .split_whitespace()
        .filter(|w| {
            w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "#()".contains(c))
        })
        .take(6)
        .collect();
    // Engage's result code follows, as Engage wrote it: data, not shape.
    let keep = if words.starts_with(&["Selligent", "Engage", "result"]) {
        3
    } else {
        words.len()
    };
    words[..keep].join(" ")
}
