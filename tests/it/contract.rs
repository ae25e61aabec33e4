//! The contract's versions and optional parts: a component built against
//! WIT 0.1.0 still loads and delivers; the optional `inbound` interface is
//! detected from what a component exports, and its calls run in the same
//! sandbox, under the same limits, with secrets redacted.

use std::sync::Arc;

use prefsync::runtime::{
    CallError, Connector, DeliveredKind, InboundRequest, Limits, Outcome, ReceiveError, Value,
};
use prefsync_tests::guests;
use prefsync_tests::mocks::dotdigital::{Dotdigital, FieldType};
use prefsync_tests::support::{loopback_egress, record, runtime};
use serde_json::{Value as Json, json};

/// The Dotdigital connector as built against `prefsync:connector@0.1.0`,
/// before `inbound` existed (committed, so it never gets rebuilt).
const DOTDIGITAL_WIT_0_1_0: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/dotdigital-wit-0.1.0.wasm"
);

async fn load(path: &str, limits: Limits) -> Arc<Connector> {
    runtime(loopback_egress(), limits)
        .load_file(path.as_ref())
        .await
        .unwrap()
}

fn webhook(body: Json) -> InboundRequest {
    InboundRequest {
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_string().into_bytes(),
    }
}

/// `schema` without its `writeOnly` marks.
/// A config schema's shape: the fields at every level, which are
/// required, and which name hosts (`format: uri`). Descriptions, length
/// rules and secret marks may change between builds; the shape may not.
fn shape(schema: &Json) -> Json {
    let Some(node) = schema.as_object() else {
        return Json::Null;
    };
    let mut out = serde_json::Map::new();
    if let Some(Json::Array(required)) = node.get("required") {
        let mut names: Vec<&str> = required.iter().filter_map(Json::as_str).collect();
        names.sort();
        out.insert("required".into(), json!(names));
    }
    if let Some(format) = node.get("format") {
        out.insert("format".into(), format.clone());
    }
    if let Some(Json::Object(properties)) = node.get("properties") {
        let fields: serde_json::Map<String, Json> = properties
            .iter()
            .map(|(k, v)| (k.clone(), shape(v)))
            .collect();
        out.insert("properties".into(), Json::Object(fields));
    }
    if let Some(items) = node.get("items") {
        out.insert("items".into(), shape(items));
    }
    Json::Object(out)
}

#[tokio::test]
async fn a_component_built_against_0_1_0_loads_and_delivers() {
    let old = load(DOTDIGITAL_WIT_0_1_0, Limits::default()).await;
    assert_eq!(old.info().wit_version, "0.1.0");
    assert!(!old.info().inbound_webhooks);
    let current = load(guests::DOTDIGITAL, Limits::default()).await;
    assert_eq!(current.info().wit_version, "0.1.3");
    // The same config shape. Since that build the schema is derived from
    // the config type (descriptions and length rules changed) and marks more
    // of its secrets `writeOnly` (what the host redacts by): no field moved.
    let current_schema = &current.info().config_schema;
    assert_eq!(
        current_schema["properties"]["authentication"]["properties"]["username"]["writeOnly"],
        json!(true)
    );
    assert_eq!(shape(&old.info().config_schema), shape(current_schema));

    let mock = Dotdigital::start(
        "api-user",
        "pw-0123456789",
        &[("NEWSLETTER", FieldType::Boolean)],
    )
    .await
    .unwrap();
    let config = json!({
        "type_id": "dotdigital",
        "authentication": {"url": mock.url(), "username": "api-user", "password": "pw-0123456789"},
        "mappings": [{"id": "NEWSLETTER", "value": "consents_purposes_newsletter_enabled"}],
        "upsert_mode": true
    });
    assert_eq!(old.validate(&config).await.unwrap(), []);
    let integration = old.integration("dd-old", &config);
    let delivery = old
        .deliver(
            &integration,
            vec![record(
                "ann@example.com",
                &[("consents_purposes_newsletter_enabled", Value::Boolean(true))],
            )],
        )
        .await;
    assert_eq!(
        delivery.outcomes,
        [Outcome::Delivered(DeliveredKind::Created)]
    );
    assert_eq!(
        mock.state.contact("ann@example.com").unwrap().data_fields["NEWSLETTER"],
        json!(true)
    );
}

#[tokio::test]
async fn inbound_is_detected_from_the_exports() {
    let probe = load(guests::PROBE, Limits::default()).await;
    assert!(probe.info().inbound_webhooks);
    let dotdigital = load(guests::DOTDIGITAL, Limits::default()).await;
    assert!(!dotdigital.info().inbound_webhooks);
    let integration = dotdigital.integration("dd", &json!({}));
    assert_eq!(
        dotdigital
            .receive(&integration, webhook(json!({})))
            .await
            .unwrap_err(),
        ReceiveError::Unsupported("dotdigital".into())
    );
}

#[tokio::test]
async fn a_webhook_becomes_updates_or_a_refusal() {
    let probe = load(guests::PROBE, Limits::default()).await;
    let integration = probe.integration("probe-in", &json!({"mode": "noop"}));
    let receipt = probe
        .receive(
            &integration,
            webhook(json!({
                "updates": [{"user": "ann", "set": {"consents_purposes_newsletter_enabled": false, "metadata_tier": "gold"}, "at": "2026-11-23T10:00:00Z", "id": "n-1"}],
                "ignored": ["field `Promo` is not mapped"]
            })),
        )
        .await
        .unwrap();
    assert_eq!(receipt.updates.len(), 1);
    let update = &receipt.updates[0];
    assert_eq!(update.organization_user_id, "ann");
    assert_eq!(update.notification_id.as_deref(), Some("n-1"));
    assert_eq!(update.occurred_at.as_deref(), Some("2026-11-23T10:00:00Z"));
    assert_eq!(update.properties.len(), 2);
    assert_eq!(receipt.ignored, ["field `Promo` is not mapped"]);

    let refused = probe
        .receive(&integration, webhook(json!({"refuse": "no `eventType`"})))
        .await
        .unwrap_err();
    assert_eq!(refused, ReceiveError::Refused("no `eventType`".into()));
}

#[tokio::test]
async fn inbound_calls_are_contained_and_redacted() {
    let limits = Limits {
        cpu_ms: 200,
        ..Limits::default()
    };
    let probe = load(guests::PROBE, limits).await;
    let secret = "inbound-secret-0123456789";
    let integration = probe.integration(
        "probe-in",
        &json!({"mode": "noop", "authentication": {"private_api_key": secret}}),
    );
    let refused = probe
        .receive(&integration, webhook(json!({"refuse_with_secrets": true})))
        .await
        .unwrap_err();
    let text = refused.to_string();
    assert!(
        text.contains("[REDACTED]") && !text.contains(secret),
        "{text}"
    );

    let panicked = probe
        .receive(&integration, webhook(json!({"panic": "bad webhook"})))
        .await
        .unwrap_err();
    assert!(
        matches!(&panicked, ReceiveError::Call(CallError::Trap(m)) if m.contains("bad webhook")),
        "{panicked:?}"
    );
    let spun = probe
        .receive(&integration, webhook(json!({"spin": true})))
        .await
        .unwrap_err();
    assert_eq!(
        spun,
        ReceiveError::Call(CallError::CpuLimit { limit_ms: 200 })
    );
    // And the connector still serves.
    let receipt = probe
        .receive(&integration, webhook(json!({"updates": []})))
        .await
        .unwrap();
    assert!(receipt.updates.is_empty());
}
