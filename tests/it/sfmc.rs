//! The Salesforce Marketing Cloud connector end to end through `prefsync
//! serve` and the mock SFMC: data-extension rows upserted, withdrawals as
//! the opt-in flag and its date, `upsert_mode: false`, every failure class
//! (with SFMC's wait honoured), the token expiring mid-run, a batch with one
//! bad row, activations, and `connector inspect`.

use std::time::Duration;

use prefsync::runtime::{Limits, RowOutcome, SyncBatch, SyncError, SyncMode, Value as RowValue};
use prefsync_tests::guests;
use prefsync_tests::mocks::MockServer;
use prefsync_tests::mocks::sfmc::{BadRowPolicy, ColumnType, Fault, Sfmc};
use prefsync_tests::support::{loopback_egress, runtime};
use reqwest::Method;
use serde_json::{Value, json};

use crate::serve::{Server, TOKEN, event};
use prefsync_tests::support::model_row as row;

const CLIENT_ID: &str = "sfmc-client-id-4711";
const CLIENT_SECRET: &str = "sfmc-client-secret-0123456789";
const MID: &str = "514000123";
const DE: &str = "Consents";

async fn mock() -> MockServer<Sfmc> {
    let mock = Sfmc::start(CLIENT_ID, CLIENT_SECRET, Some(MID))
        .await
        .unwrap();
    mock.state.add_data_extension(
        DE,
        "SubscriberKey",
        &[
            ("Newsletter_OptIn", ColumnType::Boolean),
            ("Sms_OptIn", ColumnType::Boolean),
            ("Age", ColumnType::Number),
            ("OptIn_Date", ColumnType::Date),
        ],
    );
    mock
}

fn start_server() -> Server {
    Server::try_start("", |dir| {
        std::fs::copy(guests::SFMC, dir.join("connectors").join("sfmc.wasm")).unwrap();
        String::new()
    })
    .unwrap()
}

/// An integration pointed at the mock (its auth and REST bases are the
/// mock's, so they are in the allowlist), with a fast retry policy.
fn integration(mock: &MockServer<Sfmc>, upsert: bool) -> Value {
    json!({
        "id": "sf",
        "type_id": "sfmc",
        "authentication": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "account_id": MID},
        "properties": {
            "subdomain": "mc563885gzs27c5t9-63k636ttgm",
            "data_extension_key": DE,
            "primary_key": "SubscriberKey",
            "consent_date_column": "OptIn_Date",
            "auth_base_url": mock.url(),
            "rest_base_url": mock.url()
        },
        "mappings": [
            {"id": "Newsletter_OptIn", "value": "consents_purposes_newsletter_enabled"},
            {"id": "Sms_OptIn", "value": "consents_channels_sms_enabled"},
            {"id": "Age", "value": "metadata_age"}
        ],
        "upsert_mode": upsert,
        "retry": {"max_retries": 5, "initial_backoff_ms": 50, "multiplier": 1.0, "max_backoff_ms": 50, "jitter": 0.0}
    })
}

async fn put_integration(server: &Server, integration: &Value, method: Method) {
    let path = if method == Method::POST {
        "/v1/integrations".to_string()
    } else {
        format!("/v1/integrations/{}", integration["id"].as_str().unwrap())
    };
    let (status, body) = server
        .send(method.clone(), &path, Some(&integration.to_string()))
        .await;
    assert_eq!(
        status,
        if method == Method::POST { 201 } else { 200 },
        "{body}"
    );
}

async fn post_event(
    server: &Server,
    id: &str,
    at: &str,
    user: &str,
    consents: Value,
    metadata: Value,
) {
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/events",
            Some(&event(id, at, user, consents, metadata)),
        )
        .await;
    assert_eq!(status, 202, "{body}");
}

fn newsletter(on: bool) -> Value {
    json!({"purposes": [{"id": "newsletter", "enabled": on}]})
}

/// Polls until `user` has `count` attempts at `sf`, the last one `last`.
async fn wait_attempts(server: &Server, user: &str, count: usize, last: &str) -> Vec<String> {
    server
        .wait_outcomes(user, Some("sf"), |o| {
            o.len() >= count && o.last().is_some_and(|l| l == last)
        })
        .await
}

fn column<'r>(row: &'r serde_json::Map<String, Value>, name: &str) -> &'r str {
    row.get(name).and_then(Value::as_str).unwrap_or_default()
}

#[tokio::test]
async fn rows_are_upserted_withdrawals_are_dated_and_without_upsert_missing_rows_are_skipped() {
    let mock = mock().await;
    let server = start_server();
    put_integration(&server, &integration(&mock, true), Method::POST).await;

    post_event(
        &server,
        "e1",
        "2026-11-23T10:00:00Z",
        "ann@example.com",
        json!({"purposes": [{"id": "newsletter", "enabled": true}], "channels": [{"id": "sms", "enabled": null}]}),
        json!({"age": 42}),
    )
    .await;
    wait_attempts(&server, "ann@example.com", 1, "delivered:updated").await;
    let row = mock.state.row(DE, "ann@example.com").unwrap();
    assert_eq!(column(&row, "Newsletter_OptIn"), "true");
    assert_eq!(column(&row, "Age"), "42");
    assert!(
        column(&row, "OptIn_Date").starts_with("2026-11-23T10:00:00"),
        "{row:?}"
    );
    // No choice made on SMS: the column is not touched.
    assert!(!row.contains_key("Sms_OptIn"), "{row:?}");

    // The withdrawal: the opt-in flag goes false and its date is the withdrawal's.
    post_event(
        &server,
        "e2",
        "2026-11-23T10:05:00Z",
        "ann@example.com",
        newsletter(false),
        json!({}),
    )
    .await;
    wait_attempts(&server, "ann@example.com", 2, "delivered:updated").await;
    let row = mock.state.row(DE, "ann@example.com").unwrap();
    assert_eq!(column(&row, "Newsletter_OptIn"), "false");
    assert!(
        column(&row, "OptIn_Date").starts_with("2026-11-23T10:05:00"),
        "{row:?}"
    );
    assert_eq!(column(&row, "Age"), "42", "the other columns stay");
    let writes = mock.state.rowset_writes();
    assert_eq!(writes.len(), 2);
    assert_eq!(
        writes[1].path,
        format!("/hub/v1/dataevents/key:{DE}/rowset")
    );
    assert_eq!(mock.state.tokens_issued(), 1, "the token is cached");

    // Without upsert: a user without a row is skipped and never created; one with a row is updated.
    put_integration(&server, &integration(&mock, false), Method::PUT).await;
    mock.state
        .insert_row(DE, "carol@example.com", &[("Newsletter_OptIn", "false")]);
    for (id, user) in [("e3", "bob@example.com"), ("e4", "carol@example.com")] {
        post_event(
            &server,
            id,
            "2026-11-23T10:10:00Z",
            user,
            newsletter(true),
            json!({}),
        )
        .await;
    }
    wait_attempts(&server, "bob@example.com", 1, "skipped").await;
    wait_attempts(&server, "carol@example.com", 1, "delivered:updated").await;
    assert!(mock.state.row(DE, "bob@example.com").is_none());
    assert_eq!(
        column(
            &mock.state.row(DE, "carol@example.com").unwrap(),
            "Newsletter_OptIn"
        ),
        "true"
    );
    assert_eq!(mock.state.lookups().len(), 2);
    let bob = server.attempts("bob@example.com", Some("sf")).await;
    assert!(
        bob[0].to_string().contains("no row in data extension"),
        "the reason is kept: {bob:?}"
    );

    // The credentials and the token never show.
    let (_, shown) = server.send(Method::GET, "/v1/integrations/sf", None).await;
    assert!(!shown.to_string().contains(CLIENT_SECRET), "{shown}");
    assert!(!shown.to_string().contains(CLIENT_ID), "{shown}");
    let (clean, log) = server.terminate();
    assert!(clean);
    assert!(!log.contains(CLIENT_SECRET));
    assert!(
        !log.contains("sfmc-token-1"),
        "the access token stays out of the log"
    );
}

#[tokio::test]
async fn failures_are_retried_with_sfmcs_wait_or_dead_lettered() {
    let mock = mock().await;
    let server = start_server();
    put_integration(&server, &integration(&mock, true), Method::POST).await;

    // A 5xx, a 429 asking for 1 s, the transient 10006, a 429 "blocked":
    // retried, then delivered.
    mock.state.push_faults([
        Fault::Status(503),
        Fault::RateLimited { retry_after_s: 1 },
        Fault::UnableToSave,
        Fault::Blocked,
    ]);
    post_event(
        &server,
        "e1",
        "2026-11-23T10:00:00Z",
        "flaky@example.com",
        newsletter(true),
        json!({}),
    )
    .await;
    let outcomes = wait_attempts(&server, "flaky@example.com", 5, "delivered:updated").await;
    assert_eq!(
        outcomes,
        [
            "failed:retryable",
            "failed:retryable",
            "failed:retryable",
            "failed:retryable",
            "delivered:updated"
        ]
    );
    // SFMC's Retry-After was honoured (the policy's own backoff is 50 ms).
    let writes: Vec<_> = mock
        .state
        .timed_requests()
        .into_iter()
        .filter(|(_, r)| r.path.ends_with("/rowset"))
        .map(|(at, _)| at)
        .collect();
    let waited = writes[2] - writes[1];
    assert!(
        waited >= Duration::from_millis(950),
        "waited {waited:?} after the 429"
    );
    assert!(
        writes[1] - writes[0] < Duration::from_millis(900),
        "no wait invented after the 503"
    );

    // The token expires mid-run: renewed once, the call repeated, no failed attempt.
    mock.state.expire_tokens();
    post_event(
        &server,
        "e2",
        "2026-11-23T10:01:00Z",
        "flaky@example.com",
        newsletter(false),
        json!({}),
    )
    .await;
    let outcomes = wait_attempts(&server, "flaky@example.com", 6, "delivered:updated").await;
    assert_eq!(outcomes.len(), 6, "{outcomes:?}");
    assert_eq!(mock.state.tokens_issued(), 2);

    // A value the column refuses: 400 with additionalErrors, a dead letter at once.
    post_event(
        &server,
        "e3",
        "2026-11-23T10:02:00Z",
        "bad@example.com",
        newsletter(true),
        json!({"age": "old"}),
    )
    .await;
    let dead = server
        .wait_for_list("/v1/dead-letters?integration=sf", 1)
        .await;
    assert_eq!(dead[0]["organization_user_id"], "bad@example.com");
    let error = dead[0]["last_error"].as_str().unwrap();
    assert!(error.contains("HTTP 400: errorcode 10006"), "{error}");
    assert!(
        error.contains("'old' is not a valid Number for column Age"),
        "{error}"
    );
    assert_eq!(
        server.outcomes("bad@example.com", Some("sf")).await,
        ["failed:permanent"]
    );

    // Refused client credentials are permanent too, and say what to fix.
    let mut wrong = integration(&mock, true);
    wrong["authentication"]["client_secret"] = json!("not-the-secret-0123456789");
    put_integration(&server, &wrong, Method::PUT).await;
    mock.state.expire_tokens();
    post_event(
        &server,
        "e4",
        "2026-11-23T10:03:00Z",
        "dan@example.com",
        newsletter(true),
        json!({}),
    )
    .await;
    let dead = server
        .wait_for_list("/v1/dead-letters?integration=sf", 2)
        .await;
    let error = dead
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["organization_user_id"] == "dan@example.com")
        .unwrap()["last_error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        error.contains("SFMC refused the client credentials (HTTP 401: invalid_client"),
        "{error}"
    );
    assert!(!error.contains("not-the-secret"));
}

#[tokio::test]
async fn a_batch_with_one_bad_row_fails_only_that_row() {
    let mock = mock().await;
    let server = start_server();
    put_integration(&server, &integration(&mock, true), Method::POST).await;
    let users: Vec<String> = (0..6).map(|i| format!("user{i}@example.com")).collect();
    let post_all = |round: usize| {
        let body: String = users
            .iter()
            .enumerate()
            .map(|(i, user)| {
                // user3's age does not fit the Number column.
                let age = if i == 3 { json!("old") } else { json!(30 + i) };
                event(
                    &format!("b{round}-{i}"),
                    &format!("2026-11-23T10:0{round}:00Z"),
                    user,
                    newsletter(round == 0),
                    json!({"age": age}),
                ) + "\n"
            })
            .collect();
        server
            .client()
            .post(format!("{}/v1/events", server.url))
            .bearer_auth(TOKEN)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
    };
    assert_eq!(post_all(0).await.unwrap().status(), 202);
    for (i, user) in users.iter().enumerate() {
        let outcome = if i == 3 {
            "failed:permanent"
        } else {
            "delivered:updated"
        };
        wait_attempts(&server, user, 1, outcome).await;
    }
    let writes = mock.state.rowset_writes();
    assert!(
        writes[0].body.as_array().unwrap().len() > 1,
        "the users went in one call: {:?}",
        writes[0].body
    );
    assert_eq!(mock.state.rows(DE).len(), 5);
    assert!(mock.state.row(DE, "user3@example.com").is_none());

    // Where SFMC saves the good rows of a refused call, the outcome is the same.
    mock.state.set_bad_row_policy(BadRowPolicy::SaveValidRows);
    assert_eq!(post_all(1).await.unwrap().status(), 202);
    for (i, user) in users.iter().enumerate() {
        let outcome = if i == 3 {
            "failed:permanent"
        } else {
            "delivered:updated"
        };
        wait_attempts(&server, user, 2, outcome).await;
    }
    assert_eq!(
        column(
            &mock.state.row(DE, "user0@example.com").unwrap(),
            "Newsletter_OptIn"
        ),
        "false"
    );
    assert!(
        mock.state.peak_concurrency() <= 2,
        "peak {}",
        mock.state.peak_concurrency()
    );
}

#[tokio::test]
async fn activations_write_model_rows_in_every_mode() {
    let mock = mock().await;
    let rt = runtime(loopback_egress(), Limits::default());
    let connector = rt.load_file(guests::SFMC.as_ref()).await.unwrap();
    assert!(connector.info().activations);
    let config = integration(&mock, true);
    let integration = connector.integration("sf", &config);
    assert_eq!(connector.max_rows(&integration).await.unwrap(), 50);
    let batch = |mode, rows| SyncBatch {
        key_field: "SubscriberKey".into(),
        mode,
        rows,
    };

    let outcomes = connector
        .sync(
            &integration,
            batch(
                SyncMode::Upsert,
                vec![
                    row("ann@example.com", &[("Age", RowValue::Number(41.0))], false),
                    row(
                        "bob@example.com",
                        &[("Age", RowValue::Text("old".into()))],
                        false,
                    ),
                ],
            ),
        )
        .await
        .unwrap();
    assert_eq!(outcomes[0], RowOutcome::Inserted);
    assert!(
        matches!(&outcomes[1], RowOutcome::Failed(f) if !f.retryable),
        "{outcomes:?}"
    );
    assert_eq!(
        column(&mock.state.row(DE, "ann@example.com").unwrap(), "Age"),
        "41"
    );

    // Update never creates; Insert never touches an existing row.
    let outcomes = connector
        .sync(
            &integration,
            batch(
                SyncMode::Update,
                vec![
                    row("ann@example.com", &[("Age", RowValue::Number(42.0))], true),
                    row("cat@example.com", &[("Age", RowValue::Number(9.0))], false),
                ],
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            RowOutcome::Updated,
            RowOutcome::Skipped("not in the data extension (update mode)".into())
        ]
    );
    let outcomes = connector
        .sync(
            &integration,
            batch(
                SyncMode::Insert,
                vec![row(
                    "ann@example.com",
                    &[("Age", RowValue::Number(1.0))],
                    true,
                )],
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [RowOutcome::Skipped(
            "already in the data extension (insert mode)".into()
        )]
    );
    assert_eq!(
        column(&mock.state.row(DE, "ann@example.com").unwrap(), "Age"),
        "42"
    );
    assert!(mock.state.row(DE, "cat@example.com").is_none());

    // Refused credentials refuse the batch; an outage is retryable.
    let mut wrong = config.clone();
    wrong["authentication"]["client_secret"] = json!("wrong-secret-0123456789");
    let wrong = connector.integration("wrong", &wrong);
    match connector
        .sync(
            &wrong,
            batch(
                SyncMode::Upsert,
                vec![row(
                    "x@example.com",
                    &[("Age", RowValue::Number(1.0))],
                    false,
                )],
            ),
        )
        .await
    {
        Err(SyncError::Refused(f)) => {
            assert!(!f.retryable);
            assert!(
                f.message.contains("refused the client credentials"),
                "{f:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    mock.state.push_faults([Fault::Status(503)]);
    match connector
        .sync(
            &integration,
            batch(
                SyncMode::Upsert,
                vec![row(
                    "x@example.com",
                    &[("Age", RowValue::Number(1.0))],
                    false,
                )],
            ),
        )
        .await
    {
        Err(SyncError::Refused(f)) => assert!(f.retryable, "{f:?}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn inspect_shows_type_version_batch_size_and_activations() {
    let out = prefsync_tests::support::prefsync_command()
        .args(["connector", "inspect", guests::SFMC])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "type id:          sfmc",
        &format!("version:          {}", env!("CARGO_PKG_VERSION")),
        "display name:     Salesforce Marketing Cloud",
        "max concurrency:  2 per integration",
        "max batch size:   50",
        "capabilities:     batching, activations",
        "\"client_secret\"",
        "\"rest_base_url\"",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected} missing from:\n{stdout}"
        );
    }
}

/// This connector's connection check case (tests/it/connection_check.rs).
pub(crate) async fn connection_check_case() -> crate::connection_check::CheckCase {
    let mock = mock().await;
    let good = integration(&mock, true);
    let mut bad = good.clone();
    bad["authentication"]["client_secret"] = json!("wrong-secret-7f3a");
    crate::connection_check::CheckCase {
        type_id: "sfmc",
        wasm: guests::SFMC,
        good,
        bad,
        refused_path: "authentication.client_secret",
        secret: "wrong-secret-7f3a",
        mock: Box::new(mock),
    }
}
