//! The Brevo connector end to end through `prefsync serve` and the mock
//! Brevo: contacts created and updated, consent withdrawn as Brevo models it
//! (blacklists and lists), both upsert modes, every failure class with
//! Brevo's own wait honoured, Brevo's real rate limit under a burst, the key
//! kept secret, activations (model rows as attributes), and what
//! `connector inspect` says of the component.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use prefsync::runtime::{
    Limits, Outcome, RowFailure, RowOutcome, SyncBatch, SyncError, SyncMode, SyncRow,
    Value as RecordValue,
};
use prefsync_tests::guests;
use prefsync_tests::mocks::MockServer;
use prefsync_tests::mocks::brevo::{AttributeType, Brevo, Fault};
use prefsync_tests::support::{loopback_egress, record, runtime};
use reqwest::Method;
use serde_json::{Value, json};

use crate::serve::{Server, event};
use prefsync_tests::support::model_row as row;

const API_KEY: &str = "xkeysib-brevo-test-key-0123456789abcdef";
const NEWSLETTER_LIST: u64 = 12;
const OFFERS_LIST: u64 = 13;

async fn mock() -> MockServer<Brevo> {
    Brevo::start(
        API_KEY,
        &[
            ("NEWSLETTER_OPTIN", AttributeType::Boolean),
            ("FIRSTNAME", AttributeType::Text),
        ],
        &[NEWSLETTER_LIST, OFFERS_LIST],
    )
    .await
    .unwrap()
}

fn start_server() -> Server {
    Server::try_start("", |dir| {
        std::fs::copy(guests::BREVO, dir.join("connectors").join("brevo.wasm")).unwrap();
        String::new()
    })
    .unwrap()
}

/// An integration in Didomi's shape, pointed at the mock, with a fast retry policy.
fn integration(mock: &MockServer<Brevo>, upsert: bool) -> Value {
    json!({
        "id": "brv",
        "type_id": "brevo",
        "authentication": {"api_key": API_KEY},
        "properties": {
            "api_base": mock.url(),
            "email_consent": "consents_channels_email_enabled",
            "lists": [
                {"list_id": NEWSLETTER_LIST, "value": "consents_purposes_newsletter_enabled"},
                {"list_id": OFFERS_LIST, "value": "consents_purposes_offers_enabled"}
            ]
        },
        "mappings": [
            {"id": "NEWSLETTER_OPTIN", "value": "consents_purposes_newsletter_enabled"},
            {"id": "FIRSTNAME", "value": "metadata_firstname"}
        ],
        "upsert_mode": upsert,
        "enable_webhooks": false,
        "enable_emailing": false,
        "retry": {"max_retries": 3, "initial_backoff_ms": 50, "multiplier": 1.0, "max_backoff_ms": 50, "jitter": 0.0}
    })
}

async fn replace(server: &Server, integration: &Value) {
    let (status, body) = server
        .send(
            Method::PUT,
            "/v1/integrations/brv",
            Some(&integration.to_string()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn post_event(server: &Server, id: &str, at: &str, user: &str, consents: Value) {
    server
        .post_events(&event(id, at, user, consents, json!({"firstname": "Ann"})))
        .await;
}

/// Polls until `user`'s attempts at Brevo end with `outcome`.
async fn wait_outcome(server: &Server, user: &str, outcome: &str) -> Vec<String> {
    server
        .wait_outcomes(user, Some("brv"), |o| {
            o.last().is_some_and(|last| last == outcome)
        })
        .await
}

fn choices(newsletter: Option<bool>, email: Option<bool>) -> Value {
    json!({
        "purposes": [{"id": "newsletter", "enabled": newsletter}],
        "channels": [{"id": "email", "enabled": email}]
    })
}

#[tokio::test]
async fn contacts_are_created_updated_and_withdrawn_as_brevo_models_consent() {
    let mock = mock().await;
    let server = start_server();
    server.create_integration(&integration(&mock, true)).await;
    let ann = "ann+news@example.com";

    post_event(
        &server,
        "e1",
        "2026-11-23T10:00:00Z",
        ann,
        choices(Some(true), Some(true)),
    )
    .await;
    wait_outcome(&server, ann, "delivered:created").await;
    let contact = mock.contact(ann).unwrap();
    assert_eq!(contact.attributes["NEWSLETTER_OPTIN"], true);
    assert_eq!(contact.attributes["FIRSTNAME"], "Ann");
    assert!(!contact.email_blacklisted);
    assert_eq!(contact.list_ids, BTreeSet::from([NEWSLETTER_LIST]));
    let post = mock.requests_with("POST").remove(0);
    assert_eq!(post.path, "/v3/contacts");
    assert_eq!(post.body["updateEnabled"], true);
    assert!(post.headers.contains(&("api-key".into(), API_KEY.into())));

    // The user withdraws: blacklisted for all email and out of the list,
    // in one update call (the create call cannot unlink).
    post_event(
        &server,
        "e2",
        "2026-11-23T10:01:00Z",
        ann,
        choices(Some(false), Some(false)),
    )
    .await;
    wait_outcome(&server, ann, "delivered:updated").await;
    let contact = mock.contact(ann).unwrap();
    assert!(contact.email_blacklisted, "{contact:?}");
    assert!(contact.list_ids.is_empty(), "{contact:?}");
    assert_eq!(contact.attributes["NEWSLETTER_OPTIN"], false);
    let put = mock.requests_with("PUT").pop().unwrap();
    assert_eq!(put.path, "/v3/contacts/ann%2Bnews%40example.com");
    assert_eq!(put.query.as_deref(), Some("identifierType=email_id"));
    assert_eq!(put.body["unlinkListIds"], json!([NEWSLETTER_LIST]));
    assert_eq!(put.body["emailBlacklisted"], true);

    // Consent given again lifts the blacklist and rejoins the list.
    post_event(
        &server,
        "e3",
        "2026-11-23T10:02:00Z",
        ann,
        choices(Some(true), Some(true)),
    )
    .await;
    server
        .wait_outcomes(ann, Some("brv"), |o| o.len() == 3)
        .await;
    let contact = mock.contact(ann).unwrap();
    assert!(!contact.email_blacklisted);
    assert_eq!(contact.list_ids, BTreeSet::from([NEWSLETTER_LIST]));

    // A stranger who withdraws at once: the update finds no one, so the
    // contact is created already blacklisted.
    post_event(
        &server,
        "e4",
        "2026-11-23T10:03:00Z",
        "zoe@example.com",
        choices(Some(false), Some(false)),
    )
    .await;
    wait_outcome(&server, "zoe@example.com", "delivered:created").await;
    let zoe = mock.contact("zoe@example.com").unwrap();
    assert!(zoe.email_blacklisted && zoe.list_ids.is_empty(), "{zoe:?}");

    // Without upsert: an unknown contact is skipped and never created; a known one is updated.
    replace(&server, &integration(&mock, false)).await;
    mock.insert_contact("carol@example.com", &[OFFERS_LIST]);
    for (id, user) in [("e5", "bob@example.com"), ("e6", "carol@example.com")] {
        post_event(
            &server,
            id,
            "2026-11-23T10:04:00Z",
            user,
            choices(Some(true), Some(false)),
        )
        .await;
    }
    wait_outcome(&server, "bob@example.com", "skipped").await;
    wait_outcome(&server, "carol@example.com", "delivered:updated").await;
    assert!(mock.contact("bob@example.com").is_none());
    let attempts = server.attempts("bob@example.com", Some("brv")).await;
    assert_eq!(attempts[0]["detail"], "contact not found", "{attempts:?}");
    let carol = mock.contact("carol@example.com").unwrap();
    assert!(carol.email_blacklisted);
    assert_eq!(
        carol.list_ids,
        BTreeSet::from([NEWSLETTER_LIST, OFFERS_LIST])
    );
    assert_eq!(mock.contacts().len(), 3, "ann, zoe, carol");

    // The key shows in no API answer and not in the log.
    for path in ["/v1/integrations/brv", "/v1/integrations"] {
        let (status, shown) = server.send(Method::GET, path, None).await;
        assert_eq!(status, 200);
        assert!(!shown.to_string().contains(API_KEY), "{shown}");
    }
    let (clean, log) = server.terminate();
    assert!(clean);
    assert!(log.contains("brevo"), "the log is the server's");
    assert!(!log.contains(API_KEY));
}

#[tokio::test]
async fn failures_are_retried_after_brevos_wait_or_dead_lettered() {
    let mock = mock().await;
    let server = start_server();
    server.create_integration(&integration(&mock, true)).await;

    // 503, then a 429 whose window resets in a second: retried, the second
    // retry not before Brevo's reset, then delivered.
    mock.push_faults([Fault::Status(503), Fault::RateLimited { reset_secs: 1 }]);
    post_event(
        &server,
        "e1",
        "2026-11-23T10:00:00Z",
        "flaky@example.com",
        choices(Some(true), None),
    )
    .await;
    let outcomes = wait_outcome(&server, "flaky@example.com", "delivered:created").await;
    assert_eq!(
        outcomes,
        ["failed:retryable", "failed:retryable", "delivered:created"]
    );
    let times: Vec<Instant> = mock.requests_timed().iter().map(|(at, _)| *at).collect();
    assert_eq!(times.len(), 3);
    let waited = times[2] - times[1];
    assert!(
        waited >= Duration::from_millis(950),
        "retried {waited:?} after the 429"
    );
    assert!(
        times[1] - times[0] < Duration::from_millis(900),
        "503: backoff only"
    );

    // Permanent refusals: dead letters at once, with Brevo's code and message.
    let cases = [
        (
            "bad@example.com",
            Fault::Error {
                status: 400,
                code: "invalid_parameter".into(),
                message: "Invalid value for attribute NEWSLETTER_OPTIN".into(),
            },
            "HTTP 400: invalid_parameter: Invalid value for attribute NEWSLETTER_OPTIN",
        ),
        (
            "broke@example.com",
            Fault::Status(402),
            "the Brevo account has not enough credit",
        ),
    ];
    for (i, (user, fault, expected)) in cases.into_iter().enumerate() {
        mock.push_faults([fault]);
        post_event(
            &server,
            &format!("p{i}"),
            "2026-11-23T10:01:00Z",
            user,
            choices(Some(true), None),
        )
        .await;
        let dead = server
            .wait_for_list("/v1/dead-letters?integration=brv", i + 1)
            .await;
        let letter = dead
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["organization_user_id"] == user)
            .unwrap_or_else(|| panic!("no dead letter for {user}: {dead}"));
        let message = letter["last_error"].as_str().unwrap();
        assert!(message.contains(expected), "{message}");
        assert_eq!(
            server.outcomes(user, Some("brv")).await,
            ["failed:permanent"]
        );
    }

    // A refused key is permanent, says what to fix, and never shows the key.
    let mut wrong_key = integration(&mock, true);
    wrong_key["authentication"]["api_key"] = json!("xkeysib-not-the-key-0123456789");
    replace(&server, &wrong_key).await;
    post_event(
        &server,
        "e4",
        "2026-11-23T10:03:00Z",
        "dan@example.com",
        choices(Some(true), None),
    )
    .await;
    let dead = server
        .wait_for_list("/v1/dead-letters?integration=brv", 3)
        .await;
    let text = dead.to_string();
    assert!(
        text.contains(
            "Brevo refused the API key: check authentication.api_key (HTTP 401: unauthorized: Key not found)"
        ),
        "{text}"
    );
    assert!(!text.contains("not-the-key") && !text.contains(API_KEY));
    assert!(mock.contact("dan@example.com").is_none());
    let (clean, log) = server.terminate();
    assert!(clean);
    assert!(!log.contains("not-the-key") && !log.contains(API_KEY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_past_brevos_rate_limit_is_paced_by_its_reset_header() {
    let mock = mock().await;
    // Brevo's general tier: 10 requests a second.
    mock.set_rate_limit(10, Duration::from_secs(1));
    let server = start_server();
    let mut config = integration(&mock, true);
    config["retry"]["max_retries"] = json!(10);
    server.create_integration(&config).await;
    const USERS: usize = 25;
    let body: String = (0..USERS)
        .map(|i| {
            event(
                &format!("burst-{i}"),
                "2026-11-23T10:00:00Z",
                &format!("user{i:02}@example.com"),
                choices(Some(i % 2 == 0), None),
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
    for _ in 0..300 {
        if mock.contacts().len() == USERS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(mock.contacts().len(), USERS);
    let (_, dead) = server
        .send(Method::GET, "/v1/dead-letters?integration=brv", None)
        .await;
    assert_eq!(dead, json!([]));
    let times: Vec<Instant> = mock.requests_timed().iter().map(|(at, _)| *at).collect();
    let start = times[0];
    let mut per_window = std::collections::BTreeMap::<u128, usize>::new();
    for at in &times {
        *per_window
            .entry((*at - start).as_millis() / 1000)
            .or_default() += 1;
    }
    println!(
        "brevo burst: {USERS} users, {} requests over {:?}, per second {per_window:?}",
        times.len(),
        *times.last().unwrap() - start
    );
    assert!(
        *times.last().unwrap() - start >= Duration::from_secs(2),
        "{USERS} contacts at 10 a second take at least two resets"
    );
}

#[tokio::test]
async fn brevos_wait_travels_out_of_the_sandbox() {
    let mock = mock().await;
    let rt = runtime(loopback_egress(), Limits::default());
    let connector = rt.load_file(guests::BREVO.as_ref()).await.unwrap();
    let brv = connector.integration("brv", &integration(&mock, true));
    let user = || {
        vec![record(
            "c@example.com",
            &[(
                "consents_purposes_newsletter_enabled",
                RecordValue::Boolean(true),
            )],
        )]
    };
    mock.push_faults([Fault::RateLimited { reset_secs: 30 }]);
    let delivery = connector.deliver(&brv, user()).await;
    let Outcome::Failed(f) = &delivery.outcomes[0] else {
        panic!("{:?}", delivery.outcomes)
    };
    assert!(f.retryable);
    assert_eq!(f.retry_after_ms, Some(30_000));
    assert_eq!(
        f.message,
        "HTTP 429: too_many_requests: The expected rate limit is exceeded."
    );
    // Should Brevo ever send Retry-After, it wins.
    mock.set_retry_after(true);
    mock.push_faults([Fault::RateLimited { reset_secs: 5 }]);
    let delivery = connector.deliver(&brv, user()).await;
    let Outcome::Failed(f) = &delivery.outcomes[0] else {
        panic!("{:?}", delivery.outcomes)
    };
    assert_eq!(f.retry_after_ms, Some(5_000));
    assert!(mock.contacts().is_empty());
}

fn batch(mode: SyncMode, rows: Vec<SyncRow>) -> SyncBatch {
    prefsync_tests::support::model_batch("email", mode, rows)
}

#[tokio::test]
async fn activations_write_model_rows_as_attributes_in_every_mode() {
    let mock = mock().await;
    let rt = runtime(loopback_egress(), Limits::default());
    let connector = rt.load_file(guests::BREVO.as_ref()).await.unwrap();
    assert!(connector.info().activations);
    let brv = connector.integration("brv", &integration(&mock, true));
    assert_eq!(connector.max_rows(&brv).await.unwrap(), 20);

    // Upsert: text from a CSV model becomes the attribute's type; created, then updated.
    let ann = |optin: &str, known| {
        row(
            "ann@example.com",
            &[
                ("FIRSTNAME", RecordValue::Text("Ann".into())),
                ("NEWSLETTER_OPTIN", RecordValue::Text(optin.into())),
            ],
            known,
        )
    };
    let outcomes = connector
        .sync(&brv, batch(SyncMode::Upsert, vec![ann("true", false)]))
        .await
        .unwrap();
    assert_eq!(outcomes, [RowOutcome::Inserted]);
    let contact = mock.contact("ann@example.com").unwrap();
    assert_eq!(contact.attributes["NEWSLETTER_OPTIN"], true);
    assert_eq!(contact.attributes["FIRSTNAME"], "Ann");
    let outcomes = connector
        .sync(&brv, batch(SyncMode::Upsert, vec![ann("false", true)]))
        .await
        .unwrap();
    assert_eq!(outcomes, [RowOutcome::Updated]);
    assert_eq!(
        mock.contact("ann@example.com").unwrap().attributes["NEWSLETTER_OPTIN"],
        false
    );

    // Insert leaves an existing contact alone; update never creates one.
    let outcomes = connector
        .sync(&brv, batch(SyncMode::Insert, vec![ann("true", false)]))
        .await
        .unwrap();
    assert_eq!(outcomes, [RowOutcome::Skipped("already in Brevo".into())]);
    let outcomes = connector
        .sync(
            &brv,
            batch(
                SyncMode::Update,
                vec![row(
                    "nobody@example.com",
                    &[("FIRSTNAME", RecordValue::Text("N".into()))],
                    false,
                )],
            ),
        )
        .await
        .unwrap();
    assert_eq!(outcomes, [RowOutcome::Skipped("not in Brevo".into())]);
    assert!(mock.contact("nobody@example.com").is_none());

    // A row's own refusal names its field; the other rows go on.
    let outcomes = connector
        .sync(
            &brv,
            batch(
                SyncMode::Upsert,
                vec![
                    row(
                        "x@example.com",
                        &[("NICKNAME", RecordValue::Text("x".into()))],
                        false,
                    ),
                    row(
                        "y@example.com",
                        &[("NEWSLETTER_OPTIN", RecordValue::Text("maybe".into()))],
                        false,
                    ),
                    row(
                        "z@example.com",
                        &[("FIRSTNAME", RecordValue::Text("Zed".into()))],
                        false,
                    ),
                ],
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            RowOutcome::Failed(RowFailure {
                retryable: false,
                field: Some("NICKNAME".into()),
                message: "attribute `NICKNAME` does not exist in the Brevo account".into()
            }),
            RowOutcome::Failed(RowFailure {
                retryable: false,
                field: Some("NEWSLETTER_OPTIN".into()),
                message:
                    "HTTP 400: invalid_parameter: Invalid value for attribute NEWSLETTER_OPTIN"
                        .into()
            }),
            RowOutcome::Inserted,
        ]
    );

    // A refused key refuses the batch before anything is written; so does an outage.
    let mut wrong_key = integration(&mock, true);
    wrong_key["authentication"]["api_key"] = json!("xkeysib-not-the-key-0123456789");
    let wrong = connector.integration("brv-wrong", &wrong_key);
    match connector
        .sync(&wrong, batch(SyncMode::Upsert, vec![ann("true", true)]))
        .await
    {
        Err(SyncError::Refused(f)) => {
            assert!(!f.retryable);
            assert!(f.message.contains("Brevo refused the API key"), "{f:?}");
            assert!(!f.message.contains("not-the-key"));
        }
        other => panic!("{other:?}"),
    }
    mock.push_faults([Fault::Status(503)]);
    match connector
        .sync(&brv, batch(SyncMode::Upsert, vec![ann("true", true)]))
        .await
    {
        Err(SyncError::Refused(f)) => assert!(f.retryable, "{f:?}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn inspect_shows_type_version_and_batch_size() {
    let version = format!("version:          {}", env!("CARGO_PKG_VERSION"));
    prefsync_tests::support::assert_inspect_shows(
        guests::BREVO,
        &[
            "type id:          brevo",
            version.as_str(),
            "display name:     Brevo",
            "default hosts:    api.brevo.com",
            "max concurrency:  2 per integration",
            "max batch size:   1",
            "capabilities:     activations",
            "\"api_key\"",
            "\"writeOnly\": true",
            "\"email_consent\"",
            "\"api_base\"",
        ],
    );
}

/// This connector's connection check case (tests/it/connection_check.rs).
pub(crate) async fn connection_check_case() -> crate::connection_check::CheckCase {
    let mock = mock().await;
    // A check is three reads (the account, two lists) and the table test
    // makes five in a row: past the mock's 10 a second, Brevo would answer
    // 429, which a check rightly reports as "could not be made".
    mock.state.set_rate_limit(1000, Duration::from_secs(1));
    let good = integration(&mock, true);
    let mut bad = good.clone();
    bad["authentication"]["api_key"] = json!("wrong-key-7f3a");
    crate::connection_check::CheckCase {
        type_id: "brevo",
        wasm: guests::BREVO,
        good,
        bad,
        refused_path: "authentication.api_key",
        secret: "wrong-key-7f3a",
        mock: Box::new(mock),
    }
}
