//! The request, its signature, and how answers are classified.
//!
//! Body: `{"organization_user_id", "state_version", "updated_at",
//! "properties": {field: value}}`; `state_version` grows with every change
//! of the user, so a receiver can drop a repeat or an older delivery.
//! Signature: `sha256=<hex of HMAC-SHA256(secret, body bytes)>` in the
//! signature header.

use hmac::{Hmac, Mac};
use prefsync_sdk::http::{StatusClass, classify_status, retry_after_ms};
use prefsync_sdk::mapping::mapped_json;
use prefsync_sdk::{ConsentRecord, Context, DeliveredKind, Failure, Method, Outcome, Request};
use serde_json::json;
use sha2::Sha256;

use crate::config::WebhookConfig;

const DEFAULT_TIMEOUT_MS: u32 = 10_000;

pub fn deliver(ctx: &Context<'_>, config: &WebhookConfig, record: &ConsentRecord) -> Outcome {
    let body = json!({
        "organization_user_id": record.key,
        "state_version": record.metadata.state_version,
        "updated_at": record.metadata.updated_at,
        "properties": mapped_json(&config.mappings, record),
    })
    .to_string()
    .into_bytes();
    let mut request = Request::new(Method::Post, config.url())
        .timeout_ms(config.properties.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS));
    for (name, value) in &config.properties.headers {
        request = request.header(name, value.clone());
    }
    if let Some(secret) = &config.authentication.signing_secret {
        request = request.header(config.signature_header(), signature(secret, &body));
    }
    let request = request.body("application/json", body);
    let response = match ctx.send(request) {
        Ok(response) => response,
        Err(e) => return e.into_outcome("webhook"),
    };
    if (200..300).contains(&response.status) {
        return Outcome::Delivered(DeliveredKind::Updated);
    }
    let retryable = match &config.properties.retry_on {
        Some(statuses) => statuses.contains(&response.status),
        None => matches!(
            classify_status(response.status, &response.headers),
            StatusClass::Retryable { .. }
        ),
    };
    Outcome::Failed(Failure {
        retryable,
        retry_after_ms: retryable
            .then(|| retry_after_ms(&response.headers))
            .flatten(),
        message: format!("HTTP {}: {}", response.status, response.text_snippet(200)),
    })
}

/// The signature header's value for `body`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(hmac_sha256(secret.as_bytes(), body))
    )
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length (a longer one is hashed first), so this
    // constructor cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use prefsync_sdk::testing::MockHost;
    use prefsync_sdk::{HttpError, Value, connector};

    use super::*;
    use crate::Webhook;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test cases 2 and 6 (a key longer than the block).
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    fn config(extra: serde_json::Value) -> String {
        let mut config = json!({
            "type_id": "webhook",
            "authentication": {"signing_secret": "whsec-0123456789abcdef"},
            "properties": {"url": "hooks.example.com/consent", "headers": {"X-Tenant": "acme"}},
            "mappings": [{"id": "newsletter", "value": "consents_purposes_newsletter_enabled"}]
        });
        for (k, v) in extra.as_object().unwrap() {
            config["properties"][k] = v.clone();
        }
        config.to_string()
    }

    fn run(host: &MockHost, extra: serde_json::Value) -> Outcome {
        let record = ConsentRecord::new(
            "organization_user_id",
            "ann@example.com",
            &[("consents_purposes_newsletter_enabled", Value::Boolean(true))],
        );
        connector::deliver::<Webhook>(host, &config(extra), &[record]).remove(0)
    }

    #[test]
    fn posts_the_mapped_properties_signed() {
        let host = MockHost::new();
        host.respond(204, &[], "");
        assert_eq!(
            run(&host, json!({})),
            Outcome::Delivered(DeliveredKind::Updated)
        );
        let request = host.requests.borrow()[0].clone();
        assert_eq!(request.url, "https://hooks.example.com/consent");
        let body = request.body.clone().unwrap();
        let sent: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(sent["organization_user_id"], "ann@example.com");
        assert_eq!(sent["properties"], json!({"newsletter": true}));
        assert!(
            request
                .headers
                .contains(&("X-Tenant".into(), "acme".into()))
        );
        let expected = signature("whsec-0123456789abcdef", &body);
        assert!(
            request
                .headers
                .contains(&("X-Prefsync-Signature".into(), expected))
        );
    }

    #[test]
    fn the_retry_classification_is_configurable() {
        let outcome = |status: u16, extra: serde_json::Value| {
            let host = MockHost::new();
            host.respond(status, &[("Retry-After", "3")], "nope");
            run(&host, extra)
        };
        assert_eq!(
            outcome(503, json!({})),
            Outcome::Failed(Failure {
                retryable: true,
                retry_after_ms: Some(3000),
                message: "HTTP 503: nope".into()
            })
        );
        assert!(matches!(
            outcome(400, json!({})),
            Outcome::Failed(Failure {
                retryable: false,
                ..
            })
        ));
        // Only 409 is worth retrying for this receiver; its 503 is final.
        let only_conflict = json!({"retry_on": [409]});
        assert!(matches!(
            outcome(409, only_conflict.clone()),
            Outcome::Failed(Failure {
                retryable: true,
                ..
            })
        ));
        assert!(matches!(
            outcome(503, only_conflict),
            Outcome::Failed(Failure {
                retryable: false,
                ..
            })
        ));
        let host = MockHost::new();
        host.fail(HttpError::Connection("refused".into()));
        assert!(matches!(
            run(&host, json!({})),
            Outcome::Failed(Failure {
                retryable: true,
                ..
            })
        ));
    }

    #[test]
    fn bad_configs_name_their_fields() {
        let found: Vec<String> = connector::validate::<Webhook>(
            &json!({
                "authentication": {"signing_secret": "short", "token": "x"},
                "properties": {"url": 7, "headers": {"A": 1}, "retry_on": [99, 204, 600], "timeout_ms": 0, "extra": 1},
                "mappings": []
            })
            .to_string(),
        )
        .into_iter()
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect();
        assert_eq!(
            found,
            [
                "authentication.signing_secret: must be at least 16 characters long",
                "authentication.token: unknown field (expected one of: signing_secret)",
                "mappings: must not be empty",
                "properties.extra: unknown field (expected one of: headers, retry_on, signature_header, timeout_ms, url)",
                "properties.headers.A: must be a string",
                "properties.retry_on[0]: must be at least 100",
                "properties.retry_on[2]: must be at most 599",
                "properties.timeout_ms: must be at least 1",
                "properties.url: must be a string",
            ]
        );
    }
}
