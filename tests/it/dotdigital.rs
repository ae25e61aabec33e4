//! The Dotdigital connector, as a component, against the mock Dotdigital.

use std::sync::Arc;
use std::time::Duration;

use prefsync::runtime::{Connector, DeliveredKind, Limits, Outcome, Value};
use prefsync_tests::guests;
use prefsync_tests::mocks::MockServer;
use prefsync_tests::mocks::dotdigital::{Dotdigital, Fault, FieldType};
use prefsync_tests::support::{LogCapture, loopback_egress, record, runtime};
use serde_json::json;

const USER: &str = "apiuser-42@apiconnector.com";
const PASSWORD: &str = "Sup3r-Secret-Pw";

async fn setup(limits: Limits) -> (MockServer<Dotdigital>, Arc<Connector>) {
    let mock = Dotdigital::start(
        USER,
        PASSWORD,
        &[
            ("NEWSLETTER", FieldType::Boolean),
            ("EMAIL_OPTIN", FieldType::Boolean),
            ("FIRSTNAME", FieldType::String),
        ],
    )
    .await
    .unwrap();
    let rt = runtime(loopback_egress(), limits);
    let connector = rt.load_file(guests::DOTDIGITAL.as_ref()).await.unwrap();
    (mock, connector)
}

fn config(mock: &MockServer<Dotdigital>, password: &str, upsert: bool) -> serde_json::Value {
    json!({
        "type_id": "dotdigital",
        "authentication": {"url": mock.url(), "username": USER, "password": password},
        "properties": {},
        "mappings": [
            {"id": "NEWSLETTER", "value": "consents_purposes_newsletter_enabled"},
            {"id": "EMAIL_OPTIN", "value": "consents_channels_email_enabled"}
        ],
        "upsert_mode": upsert
    })
}

fn failure(outcome: &Outcome) -> &prefsync::runtime::Failure {
    match outcome {
        Outcome::Failed(f) => f,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn creates_then_updates_only_the_mapped_fields() {
    let (mock, connector) = setup(Limits::default()).await;
    let integration = connector.integration("dd-1", &config(&mock, PASSWORD, true));

    let first = record(
        "ann@example.com",
        &[
            ("consents_purposes_newsletter_enabled", Value::Boolean(true)),
            ("consents_channels_email_enabled", Value::Boolean(true)),
            ("metadata_firstname", Value::Text("not mapped".into())),
        ],
    );
    let delivery = connector.deliver(&integration, vec![first]).await;
    assert_eq!(
        delivery.outcomes,
        [Outcome::Delivered(DeliveredKind::Created)]
    );
    assert_eq!(delivery.report.stats.http_statuses, [201]);
    let contact = mock.state.contact("ann@example.com").unwrap();
    assert_eq!(
        contact.data_fields,
        json!({"NEWSLETTER": true, "EMAIL_OPTIN": true})
            .as_object()
            .unwrap()
            .clone()
    );

    // A field the marketer set in Dotdigital must survive our update.
    mock.state
        .set_field("ann@example.com", "FIRSTNAME", json!("Ann"));
    let second = record(
        "ann@example.com",
        &[(
            "consents_purposes_newsletter_enabled",
            Value::Boolean(false),
        )],
    );
    let delivery = connector.deliver(&integration, vec![second]).await;
    assert_eq!(
        delivery.outcomes,
        [Outcome::Delivered(DeliveredKind::Updated)]
    );
    assert_eq!(delivery.report.stats.http_statuses, [200]);
    let contact = mock.state.contact("ann@example.com").unwrap();
    assert_eq!(
        serde_json::Value::Object(contact.data_fields),
        json!({"NEWSLETTER": false, "EMAIL_OPTIN": true, "FIRSTNAME": "Ann"})
    );

    let patches = mock.state.requests_with("PATCH");
    assert_eq!(patches.len(), 2);
    assert_eq!(patches[1].path, "/contacts/v3/email/ann%40example.com");
    assert_eq!(patches[1].query.as_deref(), Some("merge-option=overwrite"));
    assert_eq!(
        patches[1].body,
        json!({"identifiers": {"email": "ann@example.com"}, "dataFields": {"NEWSLETTER": false}})
    );
}

#[tokio::test]
async fn a_null_consent_clears_the_field() {
    let (mock, connector) = setup(Limits::default()).await;
    let integration = connector.integration("dd-1", &config(&mock, PASSWORD, true));
    mock.state.insert_contact(
        "bob@example.com",
        json!({"NEWSLETTER": true}).as_object().unwrap().clone(),
    );
    let delivery = connector
        .deliver(
            &integration,
            vec![record(
                "bob@example.com",
                &[("consents_purposes_newsletter_enabled", Value::Null)],
            )],
        )
        .await;
    assert_eq!(
        delivery.outcomes,
        [Outcome::Delivered(DeliveredKind::Updated)]
    );
    assert!(
        mock.state
            .contact("bob@example.com")
            .unwrap()
            .data_fields
            .is_empty()
    );
}

#[tokio::test]
async fn without_upsert_an_unknown_contact_is_skipped_and_never_created() {
    let (mock, connector) = setup(Limits::default()).await;
    let integration = connector.integration("dd-1", &config(&mock, PASSWORD, false));
    let user = record(
        "nobody@example.com",
        &[("consents_purposes_newsletter_enabled", Value::Boolean(true))],
    );
    let delivery = connector.deliver(&integration, vec![user]).await;
    assert_eq!(
        delivery.outcomes,
        [Outcome::Skipped("contact not found".into())]
    );
    assert_eq!(delivery.report.stats.http_statuses, [404]);
    assert!(mock.state.requests_with("PATCH").is_empty());
    assert!(mock.state.contacts().is_empty());

    // An existing contact is updated after the lookup.
    mock.state
        .insert_contact("known@example.com", Default::default());
    let user = record(
        "known@example.com",
        &[("consents_purposes_newsletter_enabled", Value::Boolean(true))],
    );
    let delivery = connector.deliver(&integration, vec![user]).await;
    assert_eq!(
        delivery.outcomes,
        [Outcome::Delivered(DeliveredKind::Updated)]
    );
    assert_eq!(delivery.report.stats.http_statuses, [200, 200]);
}

#[tokio::test]
async fn failures_are_classified_retryable_or_permanent() {
    let (mock, connector) = setup(Limits::default()).await;
    let integration = connector.integration("dd-1", &config(&mock, PASSWORD, true));
    let user = || {
        vec![record(
            "c@example.com",
            &[("consents_purposes_newsletter_enabled", Value::Boolean(true))],
        )]
    };

    mock.state.push_faults([Fault::Status(503)]);
    let f = failure(&connector.deliver(&integration, user()).await.outcomes[0]).clone();
    assert!(f.retryable, "{f:?}");
    assert!(f.message.contains("HTTP 503"), "{}", f.message);

    mock.state.push_faults([Fault::RateLimited {
        retry_after_secs: Some(7),
        reset_secs: 30,
    }]);
    let f = failure(&connector.deliver(&integration, user()).await.outcomes[0]).clone();
    assert!(f.retryable);
    assert_eq!(f.retry_after_ms, Some(7_000));

    // Without Retry-After, X-RateLimit-Reset (seconds) is the hint.
    mock.state.push_faults([Fault::RateLimited {
        retry_after_secs: None,
        reset_secs: 30,
    }]);
    let f = failure(&connector.deliver(&integration, user()).await.outcomes[0]).clone();
    assert_eq!(f.retry_after_ms, Some(30_000));

    let wrong = connector.integration("dd-2", &config(&mock, "wrong-password", true));
    let f = failure(&connector.deliver(&wrong, user()).await.outcomes[0]).clone();
    assert!(!f.retryable);
    assert!(
        f.message.contains("HTTP 401: authorization:unauthorized"),
        "{}",
        f.message
    );

    // A data field of the wrong type is the API's 400, permanent, with its code.
    let bad_type = record(
        "c@example.com",
        &[(
            "consents_purposes_newsletter_enabled",
            Value::Text("yes".into()),
        )],
    );
    let f = failure(
        &connector
            .deliver(&integration, vec![bad_type])
            .await
            .outcomes[0],
    )
    .clone();
    assert!(!f.retryable);
    assert!(
        f.message.contains("contacts:invalidDataFieldValue"),
        "{}",
        f.message
    );
    assert!(
        mock.state.contacts().is_empty(),
        "nothing was written by the failed calls"
    );
}

#[tokio::test]
async fn a_slow_destination_times_out_as_retryable() {
    let limits = Limits {
        request_timeout_ms: 300,
        ..Limits::default()
    };
    let (mock, connector) = setup(limits).await;
    let integration = connector.integration("dd-1", &config(&mock, PASSWORD, true));
    mock.state
        .push_faults([Fault::Slow(Duration::from_secs(3))]);
    let user = record(
        "slow@example.com",
        &[("consents_purposes_newsletter_enabled", Value::Boolean(true))],
    );
    let f = failure(&connector.deliver(&integration, vec![user]).await.outcomes[0]).clone();
    assert!(f.retryable);
    assert!(f.message.contains("timed out"), "{}", f.message);
}

#[tokio::test(flavor = "current_thread")]
async fn credentials_never_reach_logs_or_outcomes() {
    let (capture, _guard) = LogCapture::start();
    let (mock, connector) = setup(Limits::default()).await;
    // The mock refuses this password, so it travels through error paths too.
    let secret = "Wr0ng-But-Still-Secret";
    let integration = connector.integration("dd-secret", &config(&mock, secret, false));
    let user = record(
        "d@example.com",
        &[("consents_purposes_newsletter_enabled", Value::Boolean(true))],
    );
    let delivery = connector.deliver(&integration, vec![user]).await;
    let shown = format!("{:?}", delivery.outcomes);
    assert!(shown.contains("401"), "{shown}");
    // The mock did get the credentials: they were used, just never shown.
    let auth = mock.state.requests()[0]
        .headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| v.clone())
        .unwrap();
    let logs = capture.text();
    for leak in [secret, auth.trim_start_matches("Basic ")] {
        assert!(!shown.contains(leak), "outcome leaks {leak}: {shown}");
        assert!(!logs.contains(leak), "log leaks {leak}: {logs}");
    }
}

/// This connector's connection check case (tests/it/connection_check.rs).
pub(crate) async fn connection_check_case() -> crate::connection_check::CheckCase {
    let mock = Dotdigital::start(
        USER,
        PASSWORD,
        &[
            ("NEWSLETTER", FieldType::Boolean),
            ("EMAIL_OPTIN", FieldType::Boolean),
            ("FIRSTNAME", FieldType::String),
        ],
    )
    .await
    .unwrap();
    let mut good = config(&mock, PASSWORD, true);
    good["id"] = json!("dd-check");
    let mut bad = good.clone();
    bad["authentication"]["password"] = json!("wrong-password-7f3a");
    crate::connection_check::CheckCase {
        type_id: "dotdigital",
        wasm: guests::DOTDIGITAL,
        good,
        bad,
        refused_path: "authentication.password",
        secret: "wrong-password-7f3a",
        mock: Box::new(mock),
    }
}
