//! The Klaviyo connector end to end through `prefsync serve` and the mock
//! Klaviyo: profiles imported (created, then updated), consent sent as
//! Klaviyo models it (subscription jobs: SUBSCRIBED, then UNSUBSCRIBED on
//! withdrawal), `upsert_mode: false`, every failure class with Klaviyo's
//! own answers, a batch sharing its jobs while failures stay with their
//! records, the key kept secret, activations (model rows as profile
//! attributes) and `connector inspect`.

use std::time::Duration;

use prefsync::runtime::{
    Limits, RowFailure, RowOutcome, SyncBatch, SyncError, SyncMode, Value as Field,
};
use prefsync_tests::guests;
use prefsync_tests::mocks::MockServer;
use prefsync_tests::mocks::klaviyo::{Endpoint, Fault, Klaviyo};
use reqwest::Method;
use serde_json::{Value, json};

use crate::serve::{Server, event};
use prefsync_tests::support::model_row as row;

const API_KEY: &str = "pk_klaviyo_private_key_0123456789";
const LIST: &str = "Xy12Ab";
const INTEGRATION: &str = "kl";

async fn mock() -> MockServer<Klaviyo> {
    Klaviyo::start(API_KEY, &[LIST]).await.unwrap()
}

fn start_server() -> Server {
    Server::try_start("", |dir| {
        std::fs::copy(guests::KLAVIYO, dir.join("connectors").join("klaviyo.wasm")).unwrap();
        String::new()
    })
    .unwrap()
}

/// A Didomi-shaped integration pointed at the mock, with a fast retry policy.
fn integration(mock: &MockServer<Klaviyo>, upsert: bool) -> Value {
    json!({
        "id": INTEGRATION,
        "type_id": "klaviyo",
        "authentication": {"private_api_key": API_KEY},
        "properties": {"list_id": LIST, "api_base": mock.url()},
        "mappings": [
            {"id": "subscriptions.email.marketing", "value": "consents_purposes_newsletter_enabled"},
            {"id": "phone_number", "value": "metadata_phone"},
            {"id": "subscriptions.sms.marketing", "value": "consents_channels_sms_enabled"},
            {"id": "first_name", "value": "metadata_first_name"},
            {"id": "consent_newsletter", "value": "consents_purposes_newsletter_enabled"}
        ],
        "upsert_mode": upsert,
        "retry": {"max_retries": 3, "initial_backoff_ms": 50, "multiplier": 1.0, "max_backoff_ms": 50, "jitter": 0.0}
    })
}

async fn save(server: &Server, method: Method, integration: &Value) {
    let path = if method == Method::POST {
        "/v1/integrations".to_string()
    } else {
        format!("/v1/integrations/{INTEGRATION}")
    };
    let (status, body) = server
        .send(method, &path, Some(&integration.to_string()))
        .await;
    assert!(status == 200 || status == 201, "{status}: {body}");
}

async fn post(server: &Server, id: &str, at: &str, user: &str, consents: Value, metadata: Value) {
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/events",
            Some(&event(id, at, user, consents, metadata)),
        )
        .await;
    assert_eq!(status, 202, "{body}");
}

/// Polls until `user`'s attempts end with `outcome`; returns them all.
async fn outcome(server: &Server, user: &str, outcome: &str) -> Vec<String> {
    server
        .wait_outcomes(user, Some(INTEGRATION), |o| {
            o.last().is_some_and(|last| last == outcome)
        })
        .await
}

fn newsletter(on: Option<bool>) -> Value {
    json!({"purposes": [{"id": "newsletter", "enabled": on}]})
}

/// The dead letter of `user`'s delivery, once there are `count` in all.
async fn dead_letter(server: &Server, count: usize, user: &str) -> String {
    let dead = server
        .wait_for_list(
            &format!("/v1/dead-letters?integration={INTEGRATION}"),
            count,
        )
        .await;
    dead.as_array()
        .unwrap()
        .iter()
        .find(|d| d["organization_user_id"] == user)
        .unwrap_or_else(|| panic!("no dead letter for {user}: {dead}"))["last_error"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn profiles_are_created_and_updated_and_consent_becomes_klaviyo_subscriptions() {
    let mock = mock().await;
    let server = start_server();
    save(&server, Method::POST, &integration(&mock, true)).await;
    let ann = "ann@example.com";

    post(
        &server,
        "e1",
        "2026-11-23T10:00:00Z",
        ann,
        json!({"purposes": [{"id": "newsletter", "enabled": true}], "channels": [{"id": "sms", "enabled": true}]}),
        json!({"first_name": "Ann", "phone": "+33612345678"}),
    )
    .await;
    outcome(&server, ann, "delivered:created").await;
    let profile = mock.profile(ann).unwrap();
    assert_eq!(profile.attributes["first_name"], "Ann");
    assert_eq!(profile.phone_number.as_deref(), Some("+33612345678"));
    assert_eq!(profile.properties["consent_newsletter"], true);
    assert_eq!(profile.email_consent, Some("SUBSCRIBED"));
    assert_eq!(profile.sms_consent, Some("SUBSCRIBED"));
    assert!(profile.lists.contains(LIST));
    let imports = mock.requests_to(Endpoint::Import);
    let import = &imports[0].1;
    let header = |name: &str| {
        import
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("revision").as_deref(), Some("2025-01-15"));
    assert_eq!(
        header("authorization"),
        Some(format!("Klaviyo-API-Key {API_KEY}"))
    );
    let jobs = mock.jobs();
    assert_eq!(jobs.len(), 1, "one subscribe job, both channels: {jobs:?}");
    assert_eq!(
        jobs[0].custom_source.as_deref(),
        Some("prefsync consent sync")
    );

    // Withdrawal: the newsletter consent goes to an unsubscribe job, the
    // SMS consent (unchanged, still true) stays subscribed.
    post(
        &server,
        "e2",
        "2026-11-23T10:01:00Z",
        ann,
        newsletter(Some(false)),
        json!({}),
    )
    .await;
    outcome(&server, ann, "delivered:updated").await;
    let profile = mock.profile(ann).unwrap();
    assert_eq!(profile.email_consent, Some("UNSUBSCRIBED"));
    assert_eq!(profile.sms_consent, Some("SUBSCRIBED"));
    assert_eq!(profile.properties["consent_newsletter"], false);
    let withdrawal = mock
        .jobs()
        .into_iter()
        .find(|j| !j.subscribe)
        .expect("an unsubscribe job");
    assert_eq!(
        withdrawal.profiles,
        [
            json!({"email": ann, "subscriptions": {"email": {"marketing": {"consent": "UNSUBSCRIBED"}}}})
        ]
    );
    assert_eq!(mock.profiles().len(), 1);

    // Without upsert: an unknown profile is skipped and never created; a known one is updated.
    save(&server, Method::PUT, &integration(&mock, false)).await;
    mock.insert_profile("carol@example.com");
    for (id, user) in [("e3", "bob@example.com"), ("e4", "carol@example.com")] {
        post(
            &server,
            id,
            "2026-11-23T10:02:00Z",
            user,
            newsletter(Some(true)),
            json!({}),
        )
        .await;
    }
    assert_eq!(
        outcome(&server, "bob@example.com", "skipped").await,
        ["skipped"]
    );
    outcome(&server, "carol@example.com", "delivered:updated").await;
    assert!(mock.profile("bob@example.com").is_none());
    assert!(
        mock.requests_to(Endpoint::Import)
            .iter()
            .all(|(_, r)| r.body["data"]["attributes"]["email"] != "bob@example.com"),
        "nothing sent for bob"
    );
    assert_eq!(
        mock.profile("carol@example.com").unwrap().email_consent,
        Some("SUBSCRIBED")
    );
    let attempts = server.attempts("bob@example.com", Some(INTEGRATION)).await;
    assert!(
        attempts[0].to_string().contains("profile not found"),
        "{attempts:?}"
    );

    // The key never shows, in answers or in the log.
    let (_, shown) = server
        .send(
            Method::GET,
            &format!("/v1/integrations/{INTEGRATION}"),
            None,
        )
        .await;
    assert!(!shown.to_string().contains(API_KEY), "{shown}");
    let (_, listed) = server.send(Method::GET, "/v1/integrations", None).await;
    assert!(!listed.to_string().contains(API_KEY));
    let (clean, log) = server.terminate();
    assert!(clean);
    assert!(!log.contains(API_KEY), "the key is in the log");
}

#[tokio::test]
async fn failures_are_retried_with_klaviyos_wait_or_dead_lettered_with_its_words() {
    let mock = mock().await;
    let server = start_server();
    save(&server, Method::POST, &integration(&mock, true)).await;

    // 503, then 429 with Retry-After: 1 — retried, the second wait honoured.
    mock.push_faults(
        Endpoint::Import,
        [
            Fault::Status(503),
            Fault::Throttled {
                retry_after_secs: 1,
            },
        ],
    );
    post(
        &server,
        "e1",
        "2026-11-23T10:00:00Z",
        "flaky@example.com",
        newsletter(Some(true)),
        json!({}),
    )
    .await;
    let outcomes = outcome(&server, "flaky@example.com", "delivered:created").await;
    assert_eq!(
        outcomes,
        ["failed:retryable", "failed:retryable", "delivered:created"]
    );
    let imports = mock.requests_to(Endpoint::Import);
    assert_eq!(imports.len(), 3);
    let waited = imports[2].0 - imports[1].0;
    assert!(
        waited >= Duration::from_millis(950),
        "Retry-After: 1 not honoured, retried after {waited:?}"
    );

    // The subscribe job down once: the record is retried as a whole.
    mock.push_faults(Endpoint::Subscribe, [Fault::Status(500)]);
    post(
        &server,
        "e2",
        "2026-11-23T10:00:00Z",
        "jobs-down@example.com",
        newsletter(Some(true)),
        json!({}),
    )
    .await;
    let outcomes = outcome(&server, "jobs-down@example.com", "delivered:updated").await;
    assert_eq!(outcomes, ["failed:retryable", "delivered:updated"]);
    assert_eq!(
        mock.profile("jobs-down@example.com").unwrap().email_consent,
        Some("SUBSCRIBED")
    );

    // Klaviyo's 400 for an invalid email: permanent, a dead letter at once, in its words.
    post(
        &server,
        "e3",
        "2026-11-23T10:00:00Z",
        "not-an-email",
        newsletter(Some(true)),
        json!({}),
    )
    .await;
    let error = dead_letter(&server, 1, "not-an-email").await;
    assert_eq!(
        error,
        "HTTP 400: invalid: Invalid email address `not-an-email`. (at /data/attributes/email)"
    );
    assert_eq!(
        server.outcomes("not-an-email", Some(INTEGRATION)).await,
        ["failed:permanent"]
    );

    // A profile the job refuses: dead-lettered with the job's answer.
    mock.refuse_in_jobs("suppressed@example.com");
    post(
        &server,
        "e4",
        "2026-11-23T10:00:00Z",
        "suppressed@example.com",
        newsletter(Some(true)),
        json!({}),
    )
    .await;
    let error = dead_letter(&server, 2, "suppressed@example.com").await;
    assert!(
        error.starts_with("Klaviyo subscribe job: HTTP 400: invalid: Profile `suppressed@example.com` cannot be subscribed."),
        "{error}"
    );

    // A refused key: permanent, says what to fix, never quotes a key.
    let mut wrong_key = integration(&mock, true);
    wrong_key["authentication"]["private_api_key"] = json!("pk_not_the_key_0123456789");
    save(&server, Method::PUT, &wrong_key).await;
    post(
        &server,
        "e5",
        "2026-11-23T10:00:00Z",
        "dan@example.com",
        newsletter(Some(true)),
        json!({}),
    )
    .await;
    let error = dead_letter(&server, 3, "dan@example.com").await;
    assert!(
        error.starts_with("HTTP 401: Klaviyo refused the API key"),
        "{error}"
    );
    assert!(error.contains("authentication.private_api_key"));
    assert!(!error.contains("pk_not_the_key") && !error.contains(API_KEY));
    let (_, log) = server.terminate();
    assert!(!log.contains("pk_not_the_key_0123456789") && !log.contains(API_KEY));
}

#[tokio::test]
async fn a_batch_shares_its_jobs_and_failures_stay_with_their_records() {
    let mock = mock().await;
    // Whether a job's 202 carries an id is unconfirmed: the connector takes either.
    mock.set_job_answer_with_id(true);
    mock.refuse_in_jobs("user07@example.com");
    let server = start_server();
    save(&server, Method::POST, &integration(&mock, true)).await;
    let user = |i: usize| match i {
        13 => "user13-at-example.com".to_string(),
        i => format!("user{i:02}@example.com"),
    };
    let body: String = (0..30)
        .map(|i| {
            event(
                &format!("b{i}"),
                "2026-11-23T10:00:00Z",
                &user(i),
                newsletter(Some(i % 3 != 0)),
                json!({}),
            ) + "\n"
        })
        .collect();
    let response = server
        .client()
        .post(format!("{}/v1/events", server.url))
        .bearer_auth(crate::serve::TOKEN)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);

    for i in (0..30).filter(|i| *i != 7 && *i != 13) {
        outcome(&server, &user(i), "delivered:created").await;
    }
    // Each failure is its own record's: the invalid email at its import, the
    // refused profile in the subscribe job (which went out again without it).
    let error = dead_letter(&server, 2, &user(13)).await;
    assert!(error.contains("Invalid email address"), "{error}");
    let error = dead_letter(&server, 2, &user(7)).await;
    assert!(
        error.starts_with("Klaviyo subscribe job: HTTP 400"),
        "{error}"
    );
    for i in (0..30).filter(|i| *i != 7 && *i != 13) {
        let expected = if i % 3 != 0 {
            "SUBSCRIBED"
        } else {
            "UNSUBSCRIBED"
        };
        assert_eq!(
            mock.profile(&user(i)).unwrap().email_consent,
            Some(expected),
            "{}",
            user(i)
        );
    }
    assert_eq!(mock.profile(&user(7)).unwrap().email_consent, None);

    // One import per record, but jobs per batch, not per record.
    assert_eq!(mock.requests_to(Endpoint::Import).len(), 30);
    let jobs =
        mock.requests_to(Endpoint::Subscribe).len() + mock.requests_to(Endpoint::Unsubscribe).len();
    println!("klaviyo batch: 30 records, {jobs} job requests");
    assert!(jobs <= 10, "{jobs} job requests for 30 records");
}

#[test]
fn inspect_shows_the_type_version_and_batch_size() {
    let version = format!("version:          {}", env!("CARGO_PKG_VERSION"));
    prefsync_tests::support::assert_inspect_shows(
        guests::KLAVIYO,
        &[
            "type id:          klaviyo",
            version.as_str(),
            "default hosts:    a.klaviyo.com",
            "max batch size:   50",
            "capabilities:     batching, activations",
            "\"list_id\"",
            "\"writeOnly\": true",
        ],
    );
}

#[tokio::test]
async fn activation_rows_become_profile_attributes_in_every_mode() {
    let mock = mock().await;
    let rt = prefsync_tests::support::runtime(
        prefsync_tests::support::loopback_egress(),
        Limits::default(),
    );
    let connector = rt.load_file(guests::KLAVIYO.as_ref()).await.unwrap();
    assert!(connector.info().activations);
    let config = integration(&mock, true);
    let integration = connector.integration(INTEGRATION, &config);
    assert_eq!(connector.max_rows(&integration).await.unwrap(), 50);
    let batch = |mode, rows| SyncBatch {
        key_field: "email".into(),
        mode,
        rows,
    };

    // Upsert: created, then only the changed attribute sent.
    let ann = || {
        row(
            "ann@example.com",
            &[
                ("first_name", Field::Text("Ann".into())),
                ("plan", Field::Text("gold".into())),
            ],
            false,
        )
    };
    let outcomes = connector
        .sync(&integration, batch(SyncMode::Upsert, vec![ann()]))
        .await
        .unwrap();
    assert_eq!(outcomes, [RowOutcome::Inserted]);
    let changed = row(
        "ann@example.com",
        &[("plan", Field::Text("platinum".into()))],
        true,
    );
    let outcomes = connector
        .sync(&integration, batch(SyncMode::Upsert, vec![changed]))
        .await
        .unwrap();
    assert_eq!(outcomes, [RowOutcome::Updated]);
    let profile = mock.profile("ann@example.com").unwrap();
    assert_eq!(profile.attributes["first_name"], "Ann");
    assert_eq!(profile.properties["plan"], "platinum");

    // Insert leaves an existing profile alone; update never creates one.
    let bob = || {
        row(
            "bob@example.com",
            &[("plan", Field::Text("free".into()))],
            false,
        )
    };
    let outcomes = connector
        .sync(&integration, batch(SyncMode::Insert, vec![ann(), bob()]))
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            RowOutcome::Skipped("already in Klaviyo".into()),
            RowOutcome::Inserted
        ]
    );
    assert_eq!(
        mock.profile("ann@example.com").unwrap().properties["plan"],
        "platinum"
    );
    let cat = row(
        "cat@example.com",
        &[("plan", Field::Text("free".into()))],
        false,
    );
    let outcomes = connector
        .sync(&integration, batch(SyncMode::Update, vec![cat, bob()]))
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            RowOutcome::Skipped("not in Klaviyo".into()),
            RowOutcome::Updated
        ]
    );
    assert!(mock.profile("cat@example.com").is_none());

    // A row Klaviyo refuses fails alone, naming the field.
    let outcomes = connector
        .sync(
            &integration,
            batch(
                SyncMode::Upsert,
                vec![
                    row(
                        "dan@example.com",
                        &[("phone_number", Field::Text("12".into()))],
                        false,
                    ),
                    row("eve@example.com", &[], false),
                ],
            ),
        )
        .await
        .unwrap();
    match &outcomes[0] {
        RowOutcome::Failed(RowFailure {
            retryable: false,
            field,
            message,
        }) => {
            assert_eq!(field.as_deref(), Some("phone_number"));
            assert!(message.contains("Invalid phone number"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(outcomes[1], RowOutcome::Inserted);

    // A refused key refuses the batch; a 429 too, retryable.
    let mut wrong = config.clone();
    wrong["authentication"]["private_api_key"] = json!("pk_wrong_key_0123456789");
    let wrong = connector.integration("wrong", &wrong);
    match connector
        .sync(&wrong, batch(SyncMode::Upsert, vec![ann()]))
        .await
    {
        Err(SyncError::Refused(f)) => {
            assert!(
                !f.retryable && f.message.contains("refused the API key"),
                "{f:?}"
            );
            assert!(!f.message.contains("pk_wrong_key"));
        }
        other => panic!("{other:?}"),
    }
    mock.push_faults(
        Endpoint::Import,
        [Fault::Throttled {
            retry_after_secs: 2,
        }],
    );
    match connector
        .sync(&integration, batch(SyncMode::Upsert, vec![ann()]))
        .await
    {
        Err(SyncError::Refused(f)) => assert!(f.retryable, "{f:?}"),
        other => panic!("{other:?}"),
    }
}

/// This connector's connection check case (tests/it/connection_check.rs).
pub(crate) async fn connection_check_case() -> crate::connection_check::CheckCase {
    let mock = mock().await;
    let good = integration(&mock, true);
    let mut bad = good.clone();
    bad["authentication"]["private_api_key"] = json!("pk_wrong_key_7f3a");
    crate::connection_check::CheckCase {
        type_id: "klaviyo",
        wasm: guests::KLAVIYO,
        good,
        bad,
        refused_path: "authentication.private_api_key",
        secret: "pk_wrong_key_7f3a",
        mock: Box::new(mock),
    }
}
