//! The Braze connector end to end through `prefsync serve` and the mock
//! Braze: users created then updated, a withdrawal as Braze models it (the
//! channel's global state and the subscription group both `unsubscribed`),
//! update-only mode, every failure class (503 and 429 retried, the 429's
//! `X-RateLimit-Reset` honoured; 400 and 401 dead-lettered), batches of at
//! most 75 users where one refused object fails alone, the secret kept out
//! of answers and log, `connector inspect`, and activations (model rows as
//! user attributes) through the component.

use std::time::{Duration, UNIX_EPOCH};

use prefsync::runtime::{
    Limits, RowFailure, RowOutcome, SyncBatch, SyncError, SyncMode, SyncRow, Value as RowValue,
};
use prefsync_tests::guests;
use prefsync_tests::mocks::MockServer;
use prefsync_tests::mocks::braze::{Braze, Fault, MAX_OBJECTS};
use prefsync_tests::support::{loopback_egress, runtime};
use reqwest::Method;
use serde_json::{Value, json};

use crate::serve::{Server, event};
use prefsync_tests::support::model_row as row;

const API_KEY: &str = "braze-rest-api-key-0123456789";
const GROUP: &str = "3b6c0b6e-newsletter";

async fn mock() -> MockServer<Braze> {
    Braze::start(API_KEY, &[GROUP]).await.unwrap()
}

fn start_server() -> Server {
    Server::try_start("", |dir| {
        std::fs::copy(guests::BRAZE, dir.join("connectors").join("braze.wasm")).unwrap();
        String::new()
    })
    .unwrap()
}

/// A Braze integration in Didomi's shape, its REST endpoint pointed at the
/// mock, with a fast retry policy.
fn integration(mock: &MockServer<Braze>, upsert: bool) -> Value {
    json!({
        "id": "braze",
        "type_id": "braze",
        "authentication": {"api_key": API_KEY},
        "properties": {"instance": "EU-01", "rest_endpoint": mock.url()},
        "mappings": [
            {"id": "email_subscribe", "value": "consents_channels_email_enabled"},
            {"id": format!("subscription_group:{GROUP}"), "value": "consents_purposes_newsletter_enabled"},
            {"id": "tier", "value": "metadata_tier"}
        ],
        "upsert_mode": upsert,
        "retry": {"max_retries": 3, "initial_backoff_ms": 50, "multiplier": 1.0, "max_backoff_ms": 50, "jitter": 0.0}
    })
}

fn choices(email: Option<bool>, newsletter: Option<bool>) -> Value {
    json!({
        "channels": [{"id": "email", "enabled": email}],
        "purposes": [{"id": "newsletter", "enabled": newsletter}]
    })
}

async fn post(server: &Server, id: &str, at: &str, user: &str, consents: Value, metadata: Value) {
    server
        .post_events(&event(id, at, user, consents, metadata))
        .await;
}

/// Polls until `user`'s attempts at the integration end with `outcome`.
async fn wait_outcome(server: &Server, user: &str, outcome: &str) -> Vec<String> {
    server
        .wait_outcomes(user, Some("braze"), |o| {
            o.last().is_some_and(|last| last == outcome)
        })
        .await
}

/// `user`'s dead letter at the integration, once there (polled for up to 20 s).
async fn dead_letter(server: &Server, user: &str) -> Value {
    for _ in 0..400 {
        let (_, dead) = server
            .send(Method::GET, "/v1/dead-letters?integration=braze", None)
            .await;
        if let Some(found) = dead
            .as_array()
            .and_then(|list| list.iter().find(|d| d["organization_user_id"] == user))
        {
            return found.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no dead letter for {user}");
}

/// The attribute objects of every `/users/track` request, in order.
fn objects_sent(mock: &MockServer<Braze>) -> Vec<Value> {
    mock.requests()
        .into_iter()
        .filter(|r| r.path == "/users/track")
        .flat_map(|r| r.body["attributes"].as_array().cloned().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn users_are_created_then_updated_and_a_withdrawal_unsubscribes_them() {
    let mock = mock().await;
    let server = start_server();
    server.create_integration(&integration(&mock, true)).await;

    post(
        &server,
        "e1",
        "2026-11-23T10:00:00Z",
        "C-42",
        choices(Some(true), Some(true)),
        json!({"tier": "gold"}),
    )
    .await;
    // Braze does not say whether it created the user: "updated" either way.
    wait_outcome(&server, "C-42", "delivered:updated").await;
    let user = mock.user("C-42").expect("created");
    assert_eq!(user.email_subscribe.as_deref(), Some("opted_in"));
    assert_eq!(user.subscription_groups[GROUP], "subscribed");
    assert_eq!(user.attributes["tier"], "gold");
    let request = &mock.requests()[0];
    assert!(
        request
            .headers
            .contains(&("authorization".into(), format!("Bearer {API_KEY}")))
    );
    assert!(
        request.body["attributes"][0]
            .get("_update_existing_only")
            .is_none()
    );

    // The user withdraws: Braze's channel state and subscription group both say so.
    post(
        &server,
        "e2",
        "2026-11-23T10:01:00Z",
        "C-42",
        choices(Some(false), Some(false)),
        json!({}),
    )
    .await;
    let outcomes = server
        .wait_outcomes("C-42", Some("braze"), |o| o.len() == 2)
        .await;
    assert_eq!(outcomes, ["delivered:updated", "delivered:updated"]);
    let user = mock.user("C-42").unwrap();
    assert_eq!(user.email_subscribe.as_deref(), Some("unsubscribed"));
    assert_eq!(user.subscription_groups[GROUP], "unsubscribed");
    assert_eq!((user.writes, mock.users().len()), (2, 1));

    // The key never shows, in answers or in the log.
    let (_, shown) = server
        .send(Method::GET, "/v1/integrations/braze", None)
        .await;
    assert!(!shown.to_string().contains(API_KEY), "{shown}");
    let (_, listed) = server.send(Method::GET, "/v1/integrations", None).await;
    assert!(!listed.to_string().contains(API_KEY));
    let (clean, log) = server.terminate();
    assert!(clean);
    assert!(log.contains("braze"), "the log shows the deliveries");
    assert!(!log.contains(API_KEY));
}

#[tokio::test]
async fn without_upsert_a_missing_user_is_skipped_and_an_existing_one_updated() {
    let mock = mock().await;
    mock.insert_user("carol");
    let server = start_server();
    server.create_integration(&integration(&mock, false)).await;
    for (id, user) in [("e1", "bob"), ("e2", "carol")] {
        post(
            &server,
            id,
            "2026-11-23T10:00:00Z",
            user,
            choices(Some(true), Some(true)),
            json!({}),
        )
        .await;
    }
    wait_outcome(&server, "bob", "skipped").await;
    wait_outcome(&server, "carol", "delivered:updated").await;
    assert!(mock.user("bob").is_none(), "never created");
    let carol = mock.user("carol").unwrap();
    assert_eq!(carol.email_subscribe.as_deref(), Some("opted_in"));
    assert_eq!(carol.subscription_groups[GROUP], "subscribed");
    for object in objects_sent(&mock) {
        assert_eq!(object["_update_existing_only"], true, "{object}");
    }
    let attempts = server.attempts("bob", Some("braze")).await;
    assert!(
        attempts[0].to_string().contains("user not found in Braze"),
        "{attempts:?}"
    );
    let (_, dead) = server
        .send(Method::GET, "/v1/dead-letters?integration=braze", None)
        .await;
    assert_eq!(dead, json!([]), "a skipped user is no failure");
}

#[tokio::test]
async fn failures_are_retried_after_braze_s_wait_or_dead_lettered() {
    let mock = mock().await;
    let server = start_server();
    server.create_integration(&integration(&mock, true)).await;

    // 503, then 429 until the next whole second after 1 s: retried, then delivered.
    mock.push_faults([
        Fault::Status(503),
        Fault::RateLimited(Duration::from_secs(1)),
    ]);
    post(
        &server,
        "e1",
        "2026-11-23T10:00:00Z",
        "flaky",
        choices(Some(true), None),
        json!({}),
    )
    .await;
    let outcomes = wait_outcome(&server, "flaky", "delivered:updated").await;
    assert_eq!(
        outcomes,
        ["failed:retryable", "failed:retryable", "delivered:updated"]
    );
    let calls = mock.track_calls();
    assert_eq!(
        calls.iter().map(|c| c.status).collect::<Vec<_>>(),
        [503, 429, 201]
    );
    // X-RateLimit-Reset is the Unix second the 429's wait ends: not before it.
    let limited_at = calls[1].at.duration_since(UNIX_EPOCH).unwrap();
    let reset =
        Duration::from_secs((limited_at + Duration::from_secs(1)).as_secs_f64().ceil() as u64);
    let retried_at = calls[2].at.duration_since(UNIX_EPOCH).unwrap();
    assert!(
        retried_at + Duration::from_millis(20) >= reset,
        "retried {:?} before the reset",
        reset - retried_at
    );
    // The backoff alone (50 ms) would have come back at once.
    assert!(retried_at - limited_at >= Duration::from_millis(900));

    // A 400 is permanent: a dead letter at once, with Braze's message.
    mock.push_faults([Fault::Status(400)]);
    post(
        &server,
        "e2",
        "2026-11-23T10:01:00Z",
        "bad",
        choices(Some(true), None),
        json!({}),
    )
    .await;
    let dead = server
        .wait_for_list("/v1/dead-letters?integration=braze", 1)
        .await;
    assert_eq!(dead[0]["organization_user_id"], "bad");
    let message = dead[0]["last_error"].as_str().unwrap();
    assert!(
        message.contains("HTTP 400") && message.contains("injected failure"),
        "{message}"
    );
    assert_eq!(
        server.outcomes("bad", Some("braze")).await,
        ["failed:permanent"]
    );

    // A refused key (401) is permanent and says what to fix, never the key.
    let wrong_key = "not-the-braze-key-0123456789";
    let mut wrong = integration(&mock, true);
    wrong["authentication"]["api_key"] = json!(wrong_key);
    let (status, body) = server
        .send(
            Method::PUT,
            "/v1/integrations/braze",
            Some(&wrong.to_string()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    post(
        &server,
        "e3",
        "2026-11-23T10:02:00Z",
        "dan",
        choices(Some(true), None),
        json!({}),
    )
    .await;
    let dan = dead_letter(&server, "dan").await;
    let message = dan["last_error"].as_str().unwrap();
    assert!(
        message.contains("HTTP 401") && message.contains("check authentication.api_key"),
        "{message}"
    );
    assert!(!dan.to_string().contains(wrong_key));
    let (clean, log) = server.terminate();
    assert!(clean);
    assert!(!log.contains(wrong_key) && !log.contains(API_KEY));
}

#[tokio::test]
async fn users_go_in_batches_of_at_most_75_and_a_refused_object_fails_alone() {
    let mock = mock().await;
    mock.refuse_user("user042", "'tier' must not be an object");
    let server = start_server();
    server.create_integration(&integration(&mock, true)).await;
    let body: String = (0..160)
        .map(|i| {
            event(
                &format!("batch-{i}"),
                "2026-11-23T10:00:00Z",
                &format!("user{i:03}"),
                choices(Some(i % 2 == 0), Some(true)),
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
    let dead = server
        .wait_for_list("/v1/dead-letters?integration=braze", 1)
        .await;
    crate::serve::eventually("159 users in Braze", || mock.users().len() == 159).await;

    assert_eq!(dead.as_array().unwrap().len(), 1);
    assert_eq!(dead[0]["organization_user_id"], "user042");
    assert!(
        dead[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("'tier' must not be an object"),
        "{dead}"
    );
    let calls = mock.track_calls();
    assert!(
        calls
            .iter()
            .all(|c| c.objects <= MAX_OBJECTS && c.status == 201),
        "{calls:?}"
    );
    assert!(
        calls.len() < 160 && calls.iter().any(|c| c.objects > 1),
        "users were batched: {:?}",
        calls.iter().map(|c| c.objects).collect::<Vec<_>>()
    );
    // Each user sent once: the refused one is not retried, the others not resent.
    assert_eq!(objects_sent(&mock).len(), 160);
    assert_eq!(
        mock.user("user007").unwrap().email_subscribe.as_deref(),
        Some("unsubscribed")
    );
    println!(
        "braze batches: 160 users in {} requests of {:?} objects",
        calls.len(),
        calls.iter().map(|c| c.objects).collect::<Vec<_>>()
    );
}

#[test]
fn inspect_shows_the_type_version_and_batch_size() {
    prefsync_tests::support::assert_inspect_shows(
        guests::BRAZE,
        &[
            "type id:          braze",
            &format!("version:          {}", env!("CARGO_PKG_VERSION")),
            "display name:     Braze",
            "rest.iad-01.braze.com",
            "rest.fra-01.braze.eu",
            "max batch size:   75",
            "capabilities:     batching",
            "\"rest_endpoint\"",
            "\"writeOnly\": true",
        ],
    );
}

fn rows(mode: SyncMode, rows: Vec<SyncRow>) -> SyncBatch {
    prefsync_tests::support::model_batch("external_id", mode, rows)
}

#[tokio::test]
async fn model_rows_become_user_attributes_in_every_mode() {
    let mock = mock().await;
    let rt = runtime(loopback_egress(), Limits::default());
    let connector = rt.load_file(guests::BRAZE.as_ref()).await.unwrap();
    assert!(connector.info().activations);
    let config = integration(&mock, true);
    let activation = connector.integration("braze", &config);
    assert_eq!(connector.max_rows(&activation).await.unwrap(), 75);

    // Upsert: new rows inserted, known ones updated with only what changed.
    let outcomes = connector
        .sync(
            &activation,
            rows(
                SyncMode::Upsert,
                vec![
                    row(
                        "ann",
                        &[
                            ("first_name", RowValue::Text("Ann".into())),
                            ("age", RowValue::Number(41.0)),
                        ],
                        false,
                    ),
                    row("bob", &[("age", RowValue::Number(35.0))], false),
                ],
            ),
        )
        .await
        .unwrap();
    assert_eq!(outcomes, [RowOutcome::Inserted, RowOutcome::Inserted]);
    let outcomes = connector
        .sync(
            &activation,
            rows(
                SyncMode::Upsert,
                vec![row("ann", &[("age", RowValue::Number(42.0))], true)],
            ),
        )
        .await
        .unwrap();
    assert_eq!(outcomes, [RowOutcome::Updated]);
    assert_eq!(
        Value::Object(mock.user("ann").unwrap().attributes),
        json!({"first_name": "Ann", "age": 42})
    );

    // Insert: a known row is left alone; Update: never creates.
    let outcomes = connector
        .sync(
            &activation,
            rows(
                SyncMode::Insert,
                vec![
                    row("ann", &[("age", RowValue::Number(1.0))], true),
                    row("cat", &[("age", RowValue::Number(9.0))], false),
                ],
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            RowOutcome::Skipped("already in Braze".into()),
            RowOutcome::Inserted
        ]
    );
    let outcomes = connector
        .sync(
            &activation,
            rows(
                SyncMode::Update,
                vec![
                    row("bob", &[("age", RowValue::Number(36.0))], true),
                    row("dan", &[("age", RowValue::Number(50.0))], false),
                ],
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            RowOutcome::Updated,
            RowOutcome::Skipped("not in Braze".into())
        ]
    );
    assert!(mock.user("dan").is_none());
    assert_eq!(mock.user("bob").unwrap().attributes["age"], 36);
    assert_eq!(mock.user("ann").unwrap().attributes["age"], 42);

    // A row Braze refuses fails alone; the batch is one request.
    mock.refuse_user("eve", "'age' is not a valid value");
    let outcomes = connector
        .sync(
            &activation,
            rows(
                SyncMode::Upsert,
                vec![
                    row("eve", &[("age", RowValue::Text("old".into()))], false),
                    row("fay", &[("age", RowValue::Number(20.0))], false),
                ],
            ),
        )
        .await
        .unwrap();
    assert!(
        matches!(&outcomes[0], RowOutcome::Failed(RowFailure { retryable: false, message, .. }) if message.contains("'age' is not a valid value")),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[1], RowOutcome::Inserted);

    // A refused key refuses the batch; a rate limit is retryable.
    let mut wrong = config.clone();
    wrong["authentication"]["api_key"] = json!("not-the-braze-key-0123456789");
    let wrong = connector.integration("wrong", &wrong);
    match connector
        .sync(
            &wrong,
            rows(
                SyncMode::Upsert,
                vec![row("ann", &[("age", RowValue::Number(1.0))], true)],
            ),
        )
        .await
    {
        Err(SyncError::Refused(f)) => {
            assert!(
                !f.retryable && f.message.contains("authentication.api_key"),
                "{f:?}"
            );
            assert!(!f.message.contains("not-the-braze-key"));
        }
        other => panic!("{other:?}"),
    }
    mock.push_faults([Fault::RateLimited(Duration::from_secs(1))]);
    match connector
        .sync(
            &activation,
            rows(
                SyncMode::Upsert,
                vec![row("ann", &[("age", RowValue::Number(1.0))], true)],
            ),
        )
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
    bad["authentication"]["api_key"] = json!("wrong-key-7f3a");
    crate::connection_check::CheckCase {
        type_id: "braze",
        wasm: guests::BRAZE,
        good,
        bad,
        refused_path: "authentication.api_key",
        secret: "wrong-key-7f3a",
        mock: Box::new(mock),
    }
}
