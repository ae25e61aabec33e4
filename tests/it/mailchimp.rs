//! The Mailchimp connector end to end through `prefsync serve` and the mock
//! Mailchimp: members created, updated and unsubscribed through the list
//! batch, a re-consent Mailchimp keeps out turned into `pending`, the
//! update-only mode, every failure class (with Mailchimp's long waits capped
//! by the integration's retry policy), a burst within the 10-connection
//! limit, secrets kept out of answers and logs, and `connector inspect`.

use std::time::Duration;

use prefsync_tests::guests;
use prefsync_tests::mocks::MockServer;
use prefsync_tests::mocks::mailchimp::{CONCURRENCY_LIMIT, Fault, Mailchimp};
use reqwest::Method;
use serde_json::{Value, json};

use crate::serve::{Server, event};

const API_KEY: &str = "0123456789abcdef0123456789abcdef-us14";
const LIST: &str = "a1b2c3d4e5";
/// The longest wait the tests' retry policy honours: Mailchimp's 30 s and
/// 120 s hints are cut to it.
const MAX_RETRY_AFTER_MS: u64 = 400;

async fn mock() -> MockServer<Mailchimp> {
    Mailchimp::start(API_KEY, LIST, &["TIER"], &["f00d"])
        .await
        .unwrap()
}

fn start_server() -> Server {
    Server::try_start("", |dir| {
        std::fs::copy(
            guests::MAILCHIMP,
            dir.join("connectors").join("mailchimp.wasm"),
        )
        .unwrap();
        String::new()
    })
    .unwrap()
}

/// Didomi's integration shape, pointed at the mock, with a fast retry policy.
fn integration(mock: &MockServer<Mailchimp>, upsert: bool) -> Value {
    json!({
        "id": "mc",
        "type_id": "mailchimp",
        "authentication": {"api_key": API_KEY},
        "properties": {"list_id": LIST, "api_base": format!("{}/3.0", mock.url())},
        "mappings": [
            {"id": "status", "value": "consents_channels_email_enabled"},
            {"id": "permission:f00d", "value": "consents_purposes_newsletter_enabled"},
            {"id": "TIER", "value": "metadata_tier"}
        ],
        "upsert_mode": upsert,
        "enable_webhooks": false,
        "enable_emailing": false,
        "retry": {"max_retries": 3, "initial_backoff_ms": 50, "multiplier": 1.0, "max_backoff_ms": 50,
                  "jitter": 0.0, "max_retry_after_ms": MAX_RETRY_AFTER_MS}
    })
}

async fn save(server: &Server, integration: &Value) {
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/integrations",
            Some(&integration.to_string()),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

async fn replace(server: &Server, integration: &Value) {
    let (status, body) = server
        .send(
            Method::PUT,
            "/v1/integrations/mc",
            Some(&integration.to_string()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn post(server: &Server, id: &str, user: &str, consents: Value, metadata: Value) {
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/events",
            Some(&event(id, "2026-12-04T10:00:00Z", user, consents, metadata)),
        )
        .await;
    assert_eq!(status, 202, "{body}");
}

/// Polls until `user`'s attempts at `mc` end with `outcome`; all of them.
async fn outcome(server: &Server, user: &str, outcome: &str) -> Vec<String> {
    server
        .wait_outcomes(user, Some("mc"), |o| o.last().is_some_and(|l| l == outcome))
        .await
}

/// The email channel (the member's status) and the newsletter purpose (a
/// marketing permission).
fn email(on: Option<bool>) -> Value {
    json!({"channels": [{"id": "email", "enabled": on}], "purposes": [{"id": "newsletter", "enabled": on}]})
}

#[tokio::test]
async fn members_are_created_updated_withdrawn_and_re_consent_is_pending_when_mailchimp_keeps_them_out()
 {
    let mock = mock().await;
    let server = start_server();
    save(&server, &integration(&mock, true)).await;
    let ann = "Ann@Example.com";

    post(
        &server,
        "e1",
        ann,
        email(Some(true)),
        json!({"tier": "gold"}),
    )
    .await;
    outcome(&server, ann, "delivered:created").await;
    let member = mock.member(ann).unwrap();
    assert_eq!(member.status, "subscribed");
    assert_eq!(member.permissions.get("f00d"), Some(&true));
    assert_eq!(member.merge_fields["TIER"], "gold");
    let batch = mock.requests_with("POST");
    assert_eq!(batch[0].path, format!("/3.0/lists/{LIST}"));
    assert_eq!(batch[0].body["update_existing"], true);

    // Withdrawal: unsubscribed, and the permission off.
    post(&server, "e2", ann, email(Some(false)), json!({})).await;
    outcome(&server, ann, "delivered:updated").await;
    let member = mock.member(ann).unwrap();
    assert_eq!(member.status, "unsubscribed");
    assert_eq!(member.permissions.get("f00d"), Some(&false));
    assert_eq!(member.merge_fields["TIER"], "gold", "kept");

    // Re-consent after our own unsubscription: subscribed again.
    post(&server, "e3", ann, email(Some(true)), json!({})).await;
    server
        .wait_outcomes(ann, Some("mc"), |o| o.len() == 3)
        .await;
    assert_eq!(mock.member(ann).unwrap().status, "subscribed");

    // Ann unsubscribes from an email: Mailchimp will not let the API
    // subscribe her again; her next consent becomes a confirmation email.
    mock.member_unsubscribes(ann);
    post(&server, "e4", ann, email(Some(false)), json!({})).await;
    server
        .wait_outcomes(ann, Some("mc"), |o| o.len() == 4)
        .await;
    post(&server, "e5", ann, email(Some(true)), json!({})).await;
    let outcomes = server
        .wait_outcomes(ann, Some("mc"), |o| o.len() == 5)
        .await;
    assert_eq!(
        outcomes,
        [
            "delivered:created",
            "delivered:updated",
            "delivered:updated",
            "delivered:updated",
            "delivered:updated"
        ]
    );
    assert_eq!(mock.member(ann).unwrap().status, "pending");
    assert_eq!(mock.confirmations_sent(), [ann]);
    let puts = mock.requests_with("PUT");
    let statuses: Vec<&Value> = puts.iter().map(|r| &r.body["status"]).collect();
    assert_eq!(statuses, ["subscribed", "pending"], "refused, then pending");

    // No choice made yet: created `transactional`, never subscribed.
    post(
        &server,
        "e6",
        "bob@example.com",
        json!({}),
        json!({"tier": "silver"}),
    )
    .await;
    outcome(&server, "bob@example.com", "delivered:updated").await;
    assert_eq!(
        mock.member("bob@example.com").unwrap().status,
        "transactional"
    );

    // The key never shows, in answers or in the log (nor as Basic credentials).
    let (_, shown) = server.send(Method::GET, "/v1/integrations/mc", None).await;
    assert!(!shown.to_string().contains(API_KEY), "{shown}");
    let authorization = mock.requests()[0]
        .headers
        .iter()
        .find(|(name, _)| name == "authorization")
        .unwrap()
        .1
        .clone();
    let (clean, log) = server.terminate();
    assert!(clean);
    assert!(!log.contains(API_KEY));
    assert!(!log.contains(authorization.trim_start_matches("Basic ")));
}

#[tokio::test]
async fn without_upsert_a_missing_member_is_skipped_and_a_known_one_updated() {
    let mock = mock().await;
    let server = start_server();
    save(&server, &integration(&mock, false)).await;
    mock.insert_member("carol@example.com", "subscribed");
    post(
        &server,
        "e1",
        "bob@example.com",
        email(Some(true)),
        json!({}),
    )
    .await;
    post(
        &server,
        "e2",
        "carol@example.com",
        email(Some(false)),
        json!({"tier": "gold"}),
    )
    .await;
    outcome(&server, "bob@example.com", "skipped").await;
    outcome(&server, "carol@example.com", "delivered:updated").await;
    assert!(mock.member("bob@example.com").is_none(), "never created");
    let carol = mock.member("carol@example.com").unwrap();
    assert_eq!(carol.status, "unsubscribed");
    assert_eq!(carol.merge_fields["TIER"], "gold");
    assert!(mock.requests_with("PUT").is_empty() && mock.requests_with("POST").is_empty());
    assert_eq!(mock.requests_with("PATCH").len(), 2);

    // Upserts on again: bob is added.
    replace(&server, &integration(&mock, true)).await;
    post(
        &server,
        "e3",
        "bob@example.com",
        email(Some(false)),
        json!({}),
    )
    .await;
    outcome(&server, "bob@example.com", "delivered:created").await;
    assert_eq!(
        mock.member("bob@example.com").unwrap().status,
        "unsubscribed"
    );
}

#[tokio::test]
async fn failures_are_retried_after_mailchimps_waits_or_dead_lettered() {
    let mock = mock().await;
    let server = start_server();
    save(&server, &integration(&mock, true)).await;

    // 503 Request Blocked, then 429: retried after the (capped) long waits, then delivered.
    mock.push_faults([Fault::Blocked, Fault::Status(429)]);
    post(
        &server,
        "e1",
        "flaky@example.com",
        email(Some(true)),
        json!({}),
    )
    .await;
    let outcomes = outcome(&server, "flaky@example.com", "delivered:created").await;
    assert_eq!(
        outcomes,
        ["failed:retryable", "failed:retryable", "delivered:created"]
    );
    let times: Vec<_> = mock.timed_requests().iter().map(|(at, _)| *at).collect();
    assert_eq!(times.len(), 3);
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        // The policy's own backoff is 50 ms: a longer gap is Mailchimp's wait.
        assert!(
            gap >= Duration::from_millis(MAX_RETRY_AFTER_MS - 20),
            "retried after {gap:?}"
        );
    }

    // A member the batch refuses is written alone: its 400 is permanent, a dead letter.
    post(&server, "e2", "bad@example", email(Some(true)), json!({})).await;
    let dead = server
        .wait_for_list("/v1/dead-letters?integration=mc", 1)
        .await;
    assert_eq!(dead[0]["organization_user_id"], "bad@example");
    let error = dead[0]["last_error"].as_str().unwrap();
    assert!(
        error.contains("HTTP 400: Invalid Resource: Please provide a valid email address."),
        "{error}"
    );
    assert_eq!(
        server.outcomes("bad@example", Some("mc")).await,
        ["failed:permanent"]
    );

    // A refusal of the whole batch (400) is permanent too.
    mock.push_faults([Fault::Status(400)]);
    post(
        &server,
        "e3",
        "dan@example.com",
        email(Some(true)),
        json!({}),
    )
    .await;
    outcome(&server, "dan@example.com", "failed:permanent").await;

    // Errors that never clear: retried, then parked.
    mock.push_faults([
        Fault::Status(500),
        Fault::Status(500),
        Fault::Status(500),
        Fault::Status(500),
    ]);
    post(
        &server,
        "e4",
        "eve@example.com",
        email(Some(true)),
        json!({}),
    )
    .await;
    let outcomes = server
        .wait_outcomes("eve@example.com", Some("mc"), |o| o.len() == 4)
        .await;
    assert_eq!(
        outcomes,
        [
            "failed:retryable",
            "failed:retryable",
            "failed:retryable",
            "dead_letter"
        ]
    );
    server
        .wait_for_list("/v1/dead-letters?integration=mc", 3)
        .await;

    // A refused key is permanent and says what to fix, without the key.
    let mut wrong_key = integration(&mock, true);
    wrong_key["authentication"]["api_key"] = json!("ffffffffffffffffffffffffffffffff-us14");
    replace(&server, &wrong_key).await;
    post(
        &server,
        "e5",
        "fay@example.com",
        email(Some(true)),
        json!({}),
    )
    .await;
    let dead = server
        .wait_for_list("/v1/dead-letters?integration=mc", 4)
        .await;
    let fay = dead
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["organization_user_id"] == "fay@example.com")
        .unwrap();
    let error = fay["last_error"].as_str().unwrap();
    assert!(
        error.contains("Mailchimp refused the API key (HTTP 401: API Key Invalid"),
        "{error}"
    );
    assert!(!error.contains("ffffffff"));
    let (clean, log) = server.terminate();
    assert!(clean);
    assert!(!log.contains(API_KEY) && !log.contains("ffffffffffffffffffffffffffffffff"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_goes_in_list_batches_within_ten_connections() {
    let mock = mock().await;
    mock.set_delay(Some(Duration::from_millis(20)));
    let server = start_server();
    save(&server, &integration(&mock, true)).await;
    const USERS: usize = 200;
    let body: String = (0..USERS)
        .map(|i| {
            event(
                &format!("burst-{i}"),
                "2026-12-04T10:00:00Z",
                &format!("user{i:04}@example.com"),
                email(Some(i % 2 == 0)),
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
    for _ in 0..400 {
        if mock.members().len() == USERS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(mock.members().len(), USERS);
    assert!(
        mock.peak_concurrency() <= CONCURRENCY_LIMIT,
        "peak {}",
        mock.peak_concurrency()
    );
    assert_eq!(mock.busy_refusals(), 0);
    let batches = mock.requests_with("POST");
    assert!(
        batches.len() < USERS / 2,
        "{} list batches for {USERS} users",
        batches.len()
    );
    assert!(
        batches
            .iter()
            .all(|b| b.body["members"].as_array().unwrap().len() <= 500)
    );
    assert!(
        mock.requests_with("PUT").is_empty(),
        "no member written alone"
    );
}

#[test]
fn inspect_shows_the_type_version_and_batch_size() {
    prefsync_tests::support::assert_inspect_shows(
        guests::MAILCHIMP,
        &[
            "type id:          mailchimp",
            "version:          0.1.0",
            "us14.api.mailchimp.com",
            "max concurrency:  10 per integration",
            "max batch size:   500",
            "capabilities:     batching",
            "\"list_id\"",
            "\"api_base\"",
            "\"writeOnly\": true",
        ],
    );
}

mod activation {
    //! Activations through the component, in the runtime, against the mock:
    //! model rows become members' merge fields in every mode.

    use prefsync::runtime::{
        Limits, RowFailure, RowOutcome, SyncBatch, SyncError, SyncMode, SyncRow, Value as RowValue,
    };
    use prefsync_tests::guests;
    use prefsync_tests::mocks::mailchimp::Fault;
    use prefsync_tests::support::{loopback_egress, runtime};
    use serde_json::json;

    use super::{API_KEY, LIST, mock};

    use prefsync_tests::support::model_row as row;

    fn batch(mode: SyncMode, rows: Vec<SyncRow>) -> SyncBatch {
        prefsync_tests::support::model_batch("EMAIL", mode, rows)
    }

    fn tier(value: &str) -> (&'static str, RowValue) {
        ("TIER", RowValue::Text(value.into()))
    }

    #[tokio::test]
    async fn model_rows_become_merge_fields_in_every_mode() {
        let mock = mock().await;
        let rt = runtime(loopback_egress(), Limits::default());
        let connector = rt.load_file(guests::MAILCHIMP.as_ref()).await.unwrap();
        assert!(connector.info().activations);
        let config = json!({
            "type_id": "mailchimp",
            "authentication": {"api_key": API_KEY},
            "properties": {"list_id": LIST, "api_base": format!("{}/3.0", mock.url())},
            "mappings": [{"id": "status", "value": "consents_channels_email_enabled"}]
        });
        let integration = connector.integration("mc", &config);
        assert_eq!(connector.max_rows(&integration).await.unwrap(), 500);
        mock.insert_member("sub@example.com", "subscribed");

        // Upsert: a new row is inserted `transactional`; an existing member
        // (unknown to the snapshot) is updated and keeps its status.
        let outcomes = connector
            .sync(
                &integration,
                batch(
                    SyncMode::Upsert,
                    vec![
                        row("ann@example.com", &[tier("gold")], false),
                        row("sub@example.com", &[tier("silver")], false),
                    ],
                ),
            )
            .await
            .unwrap();
        assert_eq!(outcomes, [RowOutcome::Inserted, RowOutcome::Updated]);
        let ann = mock.member("ann@example.com").unwrap();
        assert_eq!(
            (ann.status.as_str(), &ann.merge_fields["TIER"]),
            ("transactional", &json!("gold"))
        );
        let sub = mock.member("sub@example.com").unwrap();
        assert_eq!(
            (sub.status.as_str(), &sub.merge_fields["TIER"]),
            ("subscribed", &json!("silver"))
        );

        // Insert leaves an existing member alone; update never creates.
        let outcomes = connector
            .sync(
                &integration,
                batch(
                    SyncMode::Insert,
                    vec![row("ann@example.com", &[tier("bronze")], true)],
                ),
            )
            .await
            .unwrap();
        assert_eq!(
            outcomes,
            [RowOutcome::Skipped("already in the audience".into())]
        );
        let outcomes = connector
            .sync(
                &integration,
                batch(
                    SyncMode::Update,
                    vec![
                        row("ann@example.com", &[tier("platinum")], true),
                        row("cat@example.com", &[tier("gold")], false),
                    ],
                ),
            )
            .await
            .unwrap();
        assert_eq!(
            outcomes,
            [
                RowOutcome::Updated,
                RowOutcome::Skipped("not in the audience".into())
            ]
        );
        assert!(mock.member("cat@example.com").is_none());
        assert_eq!(
            mock.member("ann@example.com").unwrap().merge_fields["TIER"],
            "platinum"
        );

        // A merge field the audience lacks fails that row, naming it.
        let outcomes = connector
            .sync(
                &integration,
                batch(
                    SyncMode::Upsert,
                    vec![
                        row(
                            "dan@example.com",
                            &[("NICK", RowValue::Text("D".into()))],
                            false,
                        ),
                        row("eve@example.com", &[tier("gold")], false),
                    ],
                ),
            )
            .await
            .unwrap();
        match &outcomes[0] {
            RowOutcome::Failed(RowFailure {
                retryable: false,
                field,
                ..
            }) => {
                assert_eq!(field.as_deref(), Some("NICK"))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(outcomes[1], RowOutcome::Inserted);

        // A refused key refuses the batch; an outage is retryable.
        let mut wrong = config.clone();
        wrong["authentication"]["api_key"] = json!("ffffffffffffffffffffffffffffffff-us14");
        let wrong = connector.integration("wrong", &wrong);
        match connector
            .sync(
                &wrong,
                batch(
                    SyncMode::Upsert,
                    vec![row("ann@example.com", &[tier("x")], true)],
                ),
            )
            .await
        {
            Err(SyncError::Refused(f)) => {
                assert!(
                    !f.retryable && f.message.contains("API Key Invalid"),
                    "{f:?}"
                );
                assert!(!f.message.contains("ffffffff"));
            }
            other => panic!("{other:?}"),
        }
        mock.push_faults([Fault::Status(503)]);
        match connector
            .sync(
                &integration,
                batch(
                    SyncMode::Upsert,
                    vec![row("ann@example.com", &[tier("x")], true)],
                ),
            )
            .await
        {
            Err(SyncError::Refused(f)) => assert!(f.retryable, "{f:?}"),
            other => panic!("{other:?}"),
        }
    }
}

/// This connector's connection check case (tests/it/connection_check.rs).
pub(crate) async fn connection_check_case() -> crate::connection_check::CheckCase {
    let mock = mock().await;
    let good = integration(&mock, true);
    let mut bad = good.clone();
    bad["authentication"]["api_key"] = json!("wrong-key-7f3a");
    crate::connection_check::CheckCase {
        type_id: "mailchimp",
        wasm: guests::MAILCHIMP,
        good,
        bad,
        refused_path: "authentication.api_key",
        secret: "wrong-key-7f3a",
        mock: Box::new(mock),
    }
}
