//! The HubSpot connector end to end through `prefsync serve` and the mock
//! HubSpot: contacts created then updated by the batch upsert, a consent
//! withdrawal as an unsubscription (v4 status with its legal basis), the
//! update-only mode, partial batch failures, every failure class (the
//! rolling and the daily rate limits told apart), the secret kept out of
//! answers and logs, what `connector inspect` says, and activations (model
//! rows as contact properties) in every mode.

use prefsync::runtime::{
    Limits, RowOutcome, SyncBatch, SyncError, SyncMode, SyncRow, Value as ActivationValue,
};
use prefsync_tests::guests;
use prefsync_tests::mocks::MockServer;
use prefsync_tests::mocks::hubspot::{Fault, HubSpot, RateLimit};
use prefsync_tests::support::{loopback_egress, runtime};
use reqwest::Method;
use serde_json::{Value, json};

use crate::serve::{Server, TOKEN, event};
use prefsync_tests::support::model_row;

const ACCESS_TOKEN: &str = "pat-eu1-hubspot-private-app-0123456789";
const NEWSLETTER: u64 = 101;

async fn mock() -> MockServer<HubSpot> {
    HubSpot::start(ACCESS_TOKEN, &[NEWSLETTER]).await.unwrap()
}

fn start_server() -> Server {
    Server::try_start("", |dir| {
        std::fs::copy(guests::HUBSPOT, dir.join("connectors").join("hubspot.wasm")).unwrap();
        String::new()
    })
    .unwrap()
}

/// Didomi's integration shape, pointed at the mock, with a fast retry policy.
fn integration(mock: &MockServer<HubSpot>, upsert: bool) -> Value {
    json!({
        "id": "hs",
        "type_id": "hubspot",
        "authentication": {"access_token": ACCESS_TOKEN},
        "properties": {
            "api_base": mock.url(),
            "subscriptions": [{"id": NEWSLETTER.to_string(), "value": "consents_purposes_newsletter_enabled"}],
            "legal_basis": "CONSENT_WITH_NOTICE",
            "legal_basis_explanation": "Newsletter consent collected by Didomi"
        },
        "mappings": [
            {"id": "didomi_newsletter", "value": "consents_purposes_newsletter_enabled"},
            {"id": "tier", "value": "metadata_tier"}
        ],
        "upsert_mode": upsert,
        "retry": {"max_retries": 3, "initial_backoff_ms": 50, "multiplier": 1.0, "max_backoff_ms": 50, "jitter": 0.0}
    })
}

fn newsletter(on: Option<bool>) -> Value {
    json!({"purposes": [{"id": "newsletter", "enabled": on}]})
}

async fn post(server: &Server, id: &str, at: &str, user: &str, on: Option<bool>, metadata: Value) {
    server
        .post_events(&event(id, at, user, newsletter(on), metadata))
        .await;
}

/// Polls until `user`'s attempts at `hs` number `count`; returns their outcomes.
async fn outcomes_after(server: &Server, user: &str, count: usize) -> Vec<String> {
    server
        .wait_outcomes(user, Some("hs"), |o| o.len() >= count)
        .await
}

async fn replace_integration(server: &Server, config: &Value) {
    let (status, body) = server
        .send(
            Method::PUT,
            "/v1/integrations/hs",
            Some(&config.to_string()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// `user`'s dead letter at `hs`, waiting for it.
async fn dead_letter(server: &Server, user: &str, count: usize) -> String {
    let dead = server
        .wait_for_list("/v1/dead-letters?integration=hs", count)
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
async fn contacts_are_created_then_updated_and_a_withdrawal_unsubscribes() {
    let mock = mock().await;
    let server = start_server();
    let (status, created) = server
        .send(
            Method::POST,
            "/v1/integrations",
            Some(&integration(&mock, true).to_string()),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let ann = "Ann@Example.com";

    post(
        &server,
        "e1",
        "2026-11-23T10:00:00Z",
        ann,
        Some(true),
        json!({"tier": "gold"}),
    )
    .await;
    assert_eq!(outcomes_after(&server, ann, 1).await, ["delivered:created"]);
    let contact = mock.contact("ann@example.com").expect("created");
    assert_eq!(contact.properties["didomi_newsletter"], "true");
    assert_eq!(contact.properties["tier"], "gold");
    let status = mock.subscription("ann@example.com", NEWSLETTER).unwrap();
    assert_eq!(status.state, "SUBSCRIBED");
    assert_eq!(status.legal_basis.as_deref(), Some("CONSENT_WITH_NOTICE"));
    assert_eq!(
        status.legal_basis_explanation.as_deref(),
        Some("Newsletter consent collected by Didomi")
    );
    let upsert = &mock.batch_upserts()[0];
    assert_eq!(upsert.body["inputs"][0]["idProperty"], "email");
    assert_eq!(upsert.body["inputs"][0]["id"], "ann@example.com");

    // The withdrawal: the property follows, and HubSpot's subscription is
    // unsubscribed through the v4 status API.
    post(
        &server,
        "e2",
        "2026-11-23T10:01:00Z",
        ann,
        Some(false),
        json!({}),
    )
    .await;
    assert_eq!(
        outcomes_after(&server, ann, 2).await,
        ["delivered:created", "delivered:updated"]
    );
    assert_eq!(
        mock.contact("ann@example.com").unwrap().properties["didomi_newsletter"],
        "false"
    );
    assert_eq!(
        mock.subscription("ann@example.com", NEWSLETTER)
            .unwrap()
            .state,
        "UNSUBSCRIBED"
    );
    let unsubscribe = mock.status_writes().pop().unwrap();
    assert_eq!(
        unsubscribe.path,
        "/communication-preferences/v4/statuses/ann%40example.com"
    );
    assert_eq!(
        unsubscribe.body,
        json!({"channel": "EMAIL", "statusState": "UNSUBSCRIBED", "subscriptionId": NEWSLETTER,
               "legalBasis": "CONSENT_WITH_NOTICE", "legalBasisExplanation": "Newsletter consent collected by Didomi"})
    );
    // Consent given again: resubscribed (v4 can, v3 could not).
    post(
        &server,
        "e3",
        "2026-11-23T10:02:00Z",
        ann,
        Some(true),
        json!({}),
    )
    .await;
    outcomes_after(&server, ann, 3).await;
    assert_eq!(
        mock.subscription("ann@example.com", NEWSLETTER)
            .unwrap()
            .state,
        "SUBSCRIBED"
    );
    assert_eq!(mock.contacts().len(), 1);
    assert!(
        mock.requests().iter().all(|r| r
            .headers
            .contains(&("authorization".into(), format!("Bearer {ACCESS_TOKEN}")))),
        "every request carries the private app's token"
    );

    // The token never shows: not in the API's answers, not in the log.
    let (_, shown) = server.send(Method::GET, "/v1/integrations/hs", None).await;
    let (_, listed) = server.send(Method::GET, "/v1/integrations", None).await;
    let (_, history) = server
        .send(Method::GET, &format!("/v1/users/{ann}/history"), None)
        .await;
    for answer in [&created, &shown, &listed, &history] {
        assert!(!answer.to_string().contains(ACCESS_TOKEN), "{answer}");
    }
    assert_eq!(shown["authentication"]["access_token"], "[REDACTED]");
    let (clean, log) = server.terminate();
    assert!(clean);
    assert!(log.contains("hubspot"), "the log names the connector");
    assert!(!log.contains(ACCESS_TOKEN));
}

#[tokio::test]
async fn without_upsert_a_missing_contact_is_skipped_and_an_existing_one_updated() {
    let mock = mock().await;
    let server = start_server();
    server.create_integration(&integration(&mock, false)).await;
    mock.insert_contact("carol@example.com", &[("didomi_newsletter", "false")]);
    let body: String = [("e1", "bob@example.com"), ("e2", "carol@example.com")]
        .iter()
        .map(|(id, user)| {
            event(
                id,
                "2026-11-23T10:00:00Z",
                user,
                newsletter(Some(true)),
                json!({}),
            ) + "\n"
        })
        .collect();
    post_ndjson(&server, body).await;
    assert_eq!(
        outcomes_after(&server, "bob@example.com", 1).await,
        ["skipped"]
    );
    assert_eq!(
        outcomes_after(&server, "carol@example.com", 1).await,
        ["delivered:updated"]
    );
    let attempts = server.attempts("bob@example.com", Some("hs")).await;
    assert_eq!(
        attempts[0]["detail"],
        "contact not found in HubSpot (upsert_mode is off)"
    );
    assert!(mock.contact("bob@example.com").is_none(), "never created");
    assert_eq!(
        mock.contact("carol@example.com").unwrap().properties["didomi_newsletter"],
        "true"
    );
    assert!(mock.batch_upserts().is_empty());
    let patches: Vec<String> = mock
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| format!("{}?{}", r.path, r.query.unwrap_or_default()))
        .collect();
    assert_eq!(patches.len(), 2, "{patches:?}");
    assert!(
        patches
            .contains(&"/crm/v3/objects/contacts/bob%40example.com?idProperty=email".to_string())
    );
    // Only the contact HubSpot has gets its subscription set.
    assert!(mock.subscription("bob@example.com", NEWSLETTER).is_none());
    assert_eq!(
        mock.subscription("carol@example.com", NEWSLETTER)
            .unwrap()
            .state,
        "SUBSCRIBED"
    );
}

async fn post_ndjson(server: &Server, body: String) {
    let response = server
        .client()
        .post(format!("{}/v1/events", server.url))
        .bearer_auth(TOKEN)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
}

#[tokio::test]
async fn one_batch_carries_many_users_and_fails_only_those_hubspot_refused() {
    let mock = mock().await;
    let server = start_server();
    server.create_integration(&integration(&mock, true)).await;
    mock.insert_contact("bob@example.com", &[]);
    let users = [
        "ann@example.com",
        "bob@example.com",
        "not-an-email",
        "dan@example.com",
    ];
    let body: String = users
        .iter()
        .enumerate()
        .map(|(i, user)| {
            event(
                &format!("b{i}"),
                "2026-11-23T10:00:00Z",
                user,
                newsletter(Some(i % 2 == 0)),
                json!({"tier": "silver"}),
            ) + "\n"
        })
        .collect();
    post_ndjson(&server, body).await;
    let dead = dead_letter(&server, "not-an-email", 1).await;
    assert!(
        dead.contains("VALIDATION_ERROR: Email address not-an-email is invalid"),
        "{dead}"
    );
    assert_eq!(
        outcomes_after(&server, "not-an-email", 1).await,
        ["failed:permanent"]
    );
    for (user, outcome) in [
        ("ann@example.com", "delivered:created"),
        ("bob@example.com", "delivered:updated"),
        ("dan@example.com", "delivered:created"),
    ] {
        assert_eq!(outcomes_after(&server, user, 1).await, [outcome], "{user}");
    }
    // One batch call for all four (HubSpot answered 207 with one error),
    // then one status per written contact.
    let upserts = mock.batch_upserts();
    assert_eq!(upserts.len(), 1, "{upserts:?}");
    assert_eq!(upserts[0].body["inputs"].as_array().unwrap().len(), 4);
    assert_eq!(mock.status_writes().len(), 3);
    assert_eq!(
        mock.subscription("bob@example.com", NEWSLETTER)
            .unwrap()
            .state,
        "UNSUBSCRIBED"
    );
    assert_eq!(
        mock.contact("dan@example.com").unwrap().properties["tier"],
        "silver"
    );
}

#[tokio::test]
async fn failures_are_retried_with_hubspots_wait_or_dead_lettered() {
    let mock = mock().await;
    let server = start_server();
    let mut config = integration(&mock, true);
    // HubSpot's 10 s burst wait, honoured up to this cap to keep the test short.
    config["retry"]["max_retry_after_ms"] = json!(1500);
    server.create_integration(&config).await;

    // A 503, then the burst limit: retried, then delivered.
    mock.push_faults([
        Fault::Status(503),
        Fault::RateLimited(RateLimit::TenSecondly),
    ]);
    post(
        &server,
        "e1",
        "2026-11-23T10:00:00Z",
        "flaky@example.com",
        Some(true),
        json!({}),
    )
    .await;
    assert_eq!(
        outcomes_after(&server, "flaky@example.com", 3).await,
        ["failed:retryable", "failed:retryable", "delivered:created"]
    );
    let attempts = server.attempts("flaky@example.com", Some("hs")).await;
    assert!(
        attempts[1]["detail"]
            .as_str()
            .unwrap()
            .starts_with("HTTP 429 (policy TEN_SECONDLY_ROLLING)"),
        "{}",
        attempts[1]
    );
    let waited = attempts[2]["at_ms"].as_i64().unwrap() - attempts[1]["at_ms"].as_i64().unwrap();
    assert!(
        waited >= 1400,
        "the burst wait was not honoured: {waited} ms"
    );

    // A property the account lacks: HubSpot's 400, a dead letter at once.
    mock.set_known_properties(&["didomi_newsletter"]);
    post(
        &server,
        "e2",
        "2026-11-23T10:01:00Z",
        "bad@example.com",
        Some(true),
        json!({"tier": "gold"}),
    )
    .await;
    let error = dead_letter(&server, "bad@example.com", 1).await;
    assert!(
        error.starts_with("HTTP 400: VALIDATION_ERROR: Property values were not valid")
            && error.contains("PROPERTY_DOESNT_EXIST")
            && error.contains("correlationId"),
        "{error}"
    );
    assert_eq!(
        outcomes_after(&server, "bad@example.com", 1).await,
        ["failed:permanent"]
    );

    // A refused token: permanent, saying what to fix, without the token.
    let mut wrong = config.clone();
    wrong["authentication"]["access_token"] = json!("pat-eu1-not-the-token-0000");
    replace_integration(&server, &wrong).await;
    post(
        &server,
        "e3",
        "2026-11-23T10:02:00Z",
        "dan@example.com",
        Some(true),
        json!({}),
    )
    .await;
    let error = dead_letter(&server, "dan@example.com", 2).await;
    assert!(
        error.contains("HubSpot refused the access token (HTTP 401: INVALID_AUTHENTICATION"),
        "{error}"
    );
    assert!(!error.contains("pat-eu1-not-the-token"));
    let (_, dead) = server
        .send(Method::GET, "/v1/dead-letters?integration=hs", None)
        .await;
    assert!(!dead.to_string().contains("pat-eu1"), "{dead}");
}

#[tokio::test]
async fn the_daily_limit_parks_deliveries_until_the_accounts_midnight() {
    let mock = mock().await;
    let server = start_server();
    let mut config = integration(&mock, true);
    // The account is on UTC+2 (no DST in this zone); the host may honour a
    // wait of up to 7 days (its default cap is 1 h: see the README).
    config["properties"]["time_zone"] = json!("Etc/GMT-2");
    config["retry"]["max_retry_after_ms"] = json!(7 * 24 * 3_600_000u64);
    server.create_integration(&config).await;

    mock.push_faults([Fault::RateLimited(RateLimit::Daily)]);
    post(
        &server,
        "e1",
        "2026-11-23T10:00:00Z",
        "ann@example.com",
        Some(true),
        json!({}),
    )
    .await;
    assert_eq!(
        outcomes_after(&server, "ann@example.com", 1).await,
        ["failed:retryable"]
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    const DAY: i64 = 86_400_000;
    const OFFSET: i64 = 2 * 3_600_000;
    let midnight = ((now_ms + OFFSET) / DAY + 1) * DAY - OFFSET;
    let (_, pending) = server
        .send(
            Method::GET,
            "/v1/deliveries?integration=hs&user=ann@example.com",
            None,
        )
        .await;
    let next = pending[0]["next_attempt_at_ms"].as_i64().unwrap();
    assert!(
        (next - midnight).abs() < 10_000,
        "next attempt {next}, midnight {midnight}: {pending}"
    );
    assert!(
        pending[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("daily limit"),
        "{pending}"
    );

    // Another user meanwhile: parked too, and nothing is sent to HubSpot.
    let sent = mock.requests().len();
    post(
        &server,
        "e2",
        "2026-11-23T10:01:00Z",
        "bob@example.com",
        Some(true),
        json!({}),
    )
    .await;
    assert_eq!(
        outcomes_after(&server, "bob@example.com", 1).await,
        ["failed:retryable"]
    );
    let attempts = server.attempts("bob@example.com", Some("hs")).await;
    assert!(
        attempts[0]["detail"]
            .as_str()
            .unwrap()
            .contains("parked until"),
        "{}",
        attempts[0]
    );
    assert_eq!(mock.requests().len(), sent, "nothing sent while parked");
    let (_, dead) = server
        .send(Method::GET, "/v1/dead-letters?integration=hs", None)
        .await;
    assert_eq!(dead, json!([]));
}

#[test]
fn inspect_shows_type_version_and_batch_size() {
    prefsync_tests::support::assert_inspect_shows(
        guests::HUBSPOT,
        &[
            "type id:          hubspot",
            &format!("version:          {}", env!("CARGO_PKG_VERSION")),
            "default hosts:    api.hubapi.com",
            "max batch size:   100",
            "capabilities:     batching, activations",
            "\"access_token\"",
            "\"writeOnly\": true",
            "\"subscriptions\"",
            "\"time_zone\"",
        ],
    );
}

fn model_batch(mode: SyncMode, rows: Vec<SyncRow>) -> SyncBatch {
    SyncBatch {
        key_field: "email".into(),
        mode,
        rows,
    }
}

#[tokio::test]
async fn model_rows_become_contact_properties_in_every_mode() {
    let mock = mock().await;
    let rt = runtime(loopback_egress(), Limits::default());
    let connector = rt.load_file(guests::HUBSPOT.as_ref()).await.unwrap();
    assert!(connector.info().activations);
    let context = connector.integration("hs", &integration(&mock, true));
    assert_eq!(connector.max_rows(&context).await.unwrap(), 100);
    let text = |s: &str| ActivationValue::Text(s.into());

    // Upsert: one batch call; created, then only the changed attribute sent.
    let outcomes = connector
        .sync(
            &context,
            model_batch(
                SyncMode::Upsert,
                vec![
                    model_row(
                        "ann@example.com",
                        &[("firstname", text("Ann")), ("city", text("Lyon"))],
                        false,
                    ),
                    model_row("bob@example.com", &[("firstname", text("Bob"))], false),
                ],
            ),
        )
        .await
        .unwrap();
    assert_eq!(outcomes, [RowOutcome::Inserted, RowOutcome::Inserted]);
    let outcomes = connector
        .sync(
            &context,
            model_batch(
                SyncMode::Upsert,
                vec![model_row(
                    "ann@example.com",
                    &[("city", text("Paris"))],
                    true,
                )],
            ),
        )
        .await
        .unwrap();
    assert_eq!(outcomes, [RowOutcome::Updated]);
    let ann = mock.contact("ann@example.com").unwrap();
    assert_eq!(
        (
            ann.properties["firstname"].as_str(),
            ann.properties["city"].as_str()
        ),
        ("Ann", "Paris")
    );
    assert_eq!(mock.batch_upserts().len(), 2);

    // Insert leaves an existing contact alone; update never creates one.
    let outcomes = connector
        .sync(
            &context,
            model_batch(
                SyncMode::Insert,
                vec![
                    model_row("ann@example.com", &[("firstname", text("Annie"))], true),
                    model_row("cat@example.com", &[("firstname", text("Cat"))], false),
                ],
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            RowOutcome::Skipped("already in HubSpot".into()),
            RowOutcome::Inserted
        ]
    );
    assert_eq!(
        mock.contact("ann@example.com").unwrap().properties["firstname"],
        "Ann"
    );
    let outcomes = connector
        .sync(
            &context,
            model_batch(
                SyncMode::Update,
                vec![
                    model_row("bob@example.com", &[("city", text("Nantes"))], true),
                    model_row("dan@example.com", &[("city", text("Brest"))], false),
                ],
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            RowOutcome::Updated,
            RowOutcome::Skipped("not in HubSpot".into())
        ]
    );
    assert!(mock.contact("dan@example.com").is_none());

    // A row HubSpot refuses fails alone; a refused token refuses the batch.
    let outcomes = connector
        .sync(
            &context,
            model_batch(
                SyncMode::Upsert,
                vec![
                    model_row("not-an-email", &[("city", text("Lille"))], false),
                    model_row("eve@example.com", &[("city", text("Lille"))], false),
                ],
            ),
        )
        .await
        .unwrap();
    assert!(
        matches!(&outcomes[0], RowOutcome::Failed(f) if !f.retryable && f.message.contains("not-an-email is invalid")),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[1], RowOutcome::Inserted);
    let mut wrong = integration(&mock, true);
    wrong["authentication"]["access_token"] = json!("pat-eu1-wrong-0000");
    let wrong = connector.integration("wrong", &wrong);
    match connector
        .sync(
            &wrong,
            model_batch(
                SyncMode::Upsert,
                vec![model_row("ann@example.com", &[], true)],
            ),
        )
        .await
    {
        Err(SyncError::Refused(f)) => {
            assert!(
                !f.retryable && f.message.contains("refused the access token"),
                "{f:?}"
            );
            assert!(!f.message.contains("pat-eu1-wrong"));
        }
        other => panic!("{other:?}"),
    }
}

/// This connector's connection check case (tests/it/connection_check.rs).
pub(crate) async fn connection_check_case() -> crate::connection_check::CheckCase {
    let mock = mock().await;
    let good = integration(&mock, true);
    let mut bad = good.clone();
    bad["authentication"]["access_token"] = json!("pat-eu1-wrong-token-7f3a");
    crate::connection_check::CheckCase {
        type_id: "hubspot",
        wasm: guests::HUBSPOT,
        good,
        bad,
        refused_path: "authentication.access_token",
        secret: "pat-eu1-wrong-token-7f3a",
        mock: Box::new(mock),
    }
}
