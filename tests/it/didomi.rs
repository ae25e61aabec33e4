//! The Didomi write-back connector end to end through `prefsync serve`:
//! the full circle (a marketer's unsubscribe in Actito reaches Dotdigital and
//! Didomi once, Didomi's webhook echo of our write is applied nowhere and
//! sends nothing), Didomi's own changes never written back, upsert off,
//! every failure class, and the key and secret never shown.

use std::time::Duration;

use prefsync_tests::guests;
use prefsync_tests::mocks::MockServer;
use prefsync_tests::mocks::actito::Actito;
use prefsync_tests::mocks::didomi::{Didomi, Fault};
use reqwest::Method;
use serde_json::{Value, json};

use crate::serve::{Server, TOKEN, dotdigital, eventually, mock_dotdigital};

const KEY: &str = "didomi-key-0123456789";
const SECRET: &str = "didomi-secret-0123456789abcdef";
const ACTITO_KEY: &str = "actito-private-key-0123456789";
const ACTITO_SECRET: &str = "actito-webhook-secret-0123456789";
const USER: &str = "ann@example.com";

async fn mock_didomi() -> MockServer<Didomi> {
    Didomi::start(KEY, SECRET, "acme", &["newsletter", "partners"], &["email"])
        .await
        .unwrap()
}

async fn mock_actito() -> MockServer<Actito> {
    Actito::start(
        ACTITO_KEY,
        "ACME",
        "Profiles",
        "email",
        &["Newsletter", "Partners"],
    )
    .await
    .unwrap()
}

fn start_server() -> Server {
    Server::try_start("", |dir| {
        let connectors = dir.join("connectors");
        std::fs::copy(guests::DIDOMI, connectors.join("didomi.wasm")).unwrap();
        std::fs::copy(guests::ACTITO, connectors.join("actito.wasm")).unwrap();
        String::new()
    })
    .unwrap()
}

/// Fast retries, so failure classes show within the test.
fn fast_retry() -> Value {
    json!({"max_retries": 2, "initial_backoff_ms": 50, "multiplier": 1.0, "max_backoff_ms": 50, "jitter": 0.0})
}

fn didomi_integration(mock: &MockServer<Didomi>, secret: &str, upsert: bool) -> Value {
    json!({
        "id": "didomi",
        "type_id": "didomi",
        "authentication": {"key": KEY, "secret": secret},
        "properties": {"organization_id": "acme", "api_base": Didomi::api_base(mock)},
        "mappings": [
            {"id": "purposes.newsletter.enabled", "value": "consents_purposes_newsletter_enabled"},
            {"id": "purposes.partners.enabled", "value": "consents_purposes_partners_enabled"}
        ],
        "upsert_mode": upsert,
        "retry": fast_retry()
    })
}

fn actito_integration(mock: &MockServer<Actito>) -> Value {
    json!({
        "id": "act",
        "type_id": "actito",
        "authentication": {"private_api_key": ACTITO_KEY, "webhook_secret": ACTITO_SECRET},
        "properties": {"entity_id": "ACME", "table_name": "Profiles", "user_unique_key": "email", "api_base": mock.url()},
        "mappings": [
            {"id": "Newsletter", "value": "consents_purposes_newsletter_enabled"},
            {"id": "Partners", "value": "consents_purposes_partners_enabled"}
        ],
        "upsert_mode": true,
        "enable_webhooks": true,
        "retry": fast_retry()
    })
}

async fn create(server: &Server, integration: &Value) {
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/integrations",
            Some(&integration.to_string()),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// Long enough for any further delivery or webhook to happen.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(600)).await;
}

/// The user's attempts at `integration`, as `outcome` strings.
async fn wait_last_outcome(server: &Server, integration: &str, outcome: &str) -> Vec<String> {
    server
        .wait_outcomes(USER, Some(integration), |o| {
            o.last().is_some_and(|last| last == outcome)
        })
        .await
}

/// Didomi, Actito and Dotdigital on one server; Didomi's and Actito's
/// webhooks point at it. Ann consented in Didomi's privacy center; both
/// marketing tools have her.
async fn circle() -> (
    Server,
    MockServer<Didomi>,
    MockServer<Actito>,
    MockServer<prefsync_tests::mocks::dotdigital::Dotdigital>,
) {
    let didomi = mock_didomi().await;
    let actito = mock_actito().await;
    let dd_mock = mock_dotdigital().await;
    let server = start_server();
    create(&server, &didomi_integration(&didomi, SECRET, true)).await;
    create(&server, &actito_integration(&actito)).await;
    let mut dd = dotdigital(Some("dd"));
    dd["authentication"]["url"] = json!(dd_mock.url());
    create(&server, &dd).await;
    didomi
        .state
        .subscribe_webhooks(&format!("{}/v1/events", server.url), TOKEN);
    actito.state.subscribe_webhooks(
        &format!("{}/v1/webhooks/act", server.url),
        "X-Authorization",
        ACTITO_SECRET,
    );
    didomi
        .state
        .user_changes(
            USER,
            json!({"purposes": [{"id": "newsletter", "enabled": true}]}),
        )
        .await;
    for (status, body) in didomi.state.webhook_answers() {
        assert_eq!(status, 202, "{body}");
    }
    eventually("Ann at Actito and Dotdigital", || {
        actito.state.profile(USER).is_some() && dd_mock.state.contact(USER).is_some()
    })
    .await;
    settle().await;
    (server, didomi, actito, dd_mock)
}

#[tokio::test]
async fn an_unsubscribe_in_actito_reaches_didomi_once_and_its_echo_goes_nowhere() {
    let (server, didomi, actito, dd_mock) = circle().await;
    // Didomi's own change was not written back to it.
    assert_eq!(
        didomi.state.events().len(),
        1,
        "{:?}",
        didomi.state.events()
    );
    assert_eq!(didomi.state.sessions(), 0, "Didomi was not called at all");
    let dd_writes = dd_mock.state.requests_with("PATCH").len();

    // The marketer unsubscribes Ann in Actito.
    let (status, body) = actito
        .state
        .change_subscription(USER, "Newsletter", false)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["applied"], 1, "{body}");
    wait_last_outcome(&server, "didomi", "delivered:updated").await;
    eventually("the echo answered", || {
        didomi.state.webhook_answers().len() == 4
    })
    .await;
    settle().await;

    // Didomi got exactly one event: only the changed purpose, our id, our delegate.
    let events = didomi.state.events();
    assert_eq!(events.len(), 2, "{events:?}");
    let written = &events[1];
    assert_eq!(
        written["consents"],
        json!({"purposes": [{"id": "newsletter", "enabled": false}]})
    );
    assert_eq!(written["delegate"]["id"], "prefsync");
    let write_id = written["id"].as_str().unwrap();
    assert_eq!(write_id.len(), 36, "a UUID: {write_id}");
    assert_eq!(
        didomi.state.user(USER).unwrap()["consents"]["purposes"][0]["enabled"],
        false
    );
    // Didomi's webhooks (event.created, user.updated) came back: both echoes.
    let answers = didomi.state.webhook_answers();
    for (status, answer) in &answers[2..] {
        assert_eq!(*status, 202, "{answer}");
        assert_eq!(answer["echoes"], 1, "{answer}");
        assert_eq!(answer["recorded"], 0, "{answer}");
        assert_eq!(answer["events"][0]["status"], "echo", "{answer}");
    }
    // Nothing more was sent anywhere: Dotdigital got the change once,
    // Actito was not written back, Didomi got no second event.
    assert_eq!(dd_mock.state.requests_with("PATCH").len(), dd_writes + 1);
    assert_eq!(
        dd_mock
            .state
            .contact(USER)
            .unwrap()
            .data_fields
            .get("NEWSLETTER"),
        Some(&json!(false))
    );
    assert_eq!(actito.state.profile_writes().len(), 1);
    assert_eq!(didomi.state.events().len(), 2);
    // The echo was not stored: the user's history has Didomi's event and
    // its user.updated, Actito's echo of our first write and the marketer's
    // change, nothing of ours.
    let (_, history) = server
        .send(Method::GET, &format!("/v1/users/{USER}/history"), None)
        .await;
    let event_ids: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap_or(""))
        .collect();
    assert!(!event_ids.contains(&write_id), "{event_ids:?}");
    assert_eq!(history["events"].as_array().unwrap().len(), 4, "{history}");

    // The user changes their mind in Didomi: Actito and Dotdigital follow,
    // Didomi is not written to.
    didomi
        .state
        .user_changes(
            USER,
            json!({"purposes": [{"id": "newsletter", "enabled": true}]}),
        )
        .await;
    eventually("Actito follows Didomi", || {
        actito
            .state
            .profile(USER)
            .unwrap()
            .subscriptions
            .get("Newsletter")
            == Some(&true)
    })
    .await;
    settle().await;
    assert_eq!(didomi.state.events().len(), 3, "only the user's own event");
    assert_eq!(didomi.state.sessions(), 1, "one session for everything");
}

#[tokio::test]
async fn failures_are_retried_or_dead_lettered_and_secrets_never_show() {
    let (server, didomi, actito, _dd) = circle().await;

    // 503 then 429 on the lookup: retried, then written.
    didomi
        .state
        .push_faults([Fault::Status(503), Fault::Status(429)]);
    actito
        .state
        .change_subscription(USER, "Newsletter", false)
        .await;
    let outcomes = wait_last_outcome(&server, "didomi", "delivered:updated").await;
    assert!(
        outcomes.ends_with(&[
            "failed:retryable".into(),
            "failed:retryable".into(),
            "delivered:updated".into()
        ]),
        "{outcomes:?}"
    );
    assert_eq!(didomi.state.events().len(), 2);

    // The session ends early: renewed once, the write goes through.
    didomi.state.expire_tokens();
    actito
        .state
        .change_subscription(USER, "Newsletter", true)
        .await;
    eventually("the second write", || didomi.state.events().len() == 3).await;
    assert_eq!(didomi.state.sessions(), 2);

    // A purpose the organization does not have: a permanent 400, dead-lettered.
    let mut unknown = didomi_integration(&didomi, SECRET, true);
    unknown["mappings"] =
        json!([{"id": "purposes.ghost.enabled", "value": "consents_purposes_partners_enabled"}]);
    let (status, body) = server
        .send(
            Method::PUT,
            "/v1/integrations/didomi",
            Some(&unknown.to_string()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    actito
        .state
        .change_subscription(USER, "Partners", true)
        .await;
    wait_last_outcome(&server, "didomi", "failed:permanent").await;
    let dead = server
        .wait_for_list("/v1/dead-letters?integration=didomi", 1)
        .await;
    assert!(dead.to_string().contains("ghost"), "{dead}");

    // A wrong secret: the session is refused, permanently, and said so.
    let wrong = didomi_integration(&didomi, "wrong-secret-0123456789", true);
    let (status, body) = server
        .send(
            Method::PUT,
            "/v1/integrations/didomi",
            Some(&wrong.to_string()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    didomi.state.expire_tokens();
    actito
        .state
        .change_subscription(USER, "Partners", false)
        .await;
    server
        .wait_outcomes(USER, Some("didomi"), |o| {
            o.iter().filter(|o| *o == "failed:permanent").count() == 2
        })
        .await;
    let (_, dead) = server
        .send(Method::GET, "/v1/dead-letters?integration=didomi", None)
        .await;
    assert!(dead.to_string().contains("refused the API key"), "{dead}");

    // The key and secret never show, nor does a session token.
    let (_, shown) = server
        .send(Method::GET, "/v1/integrations/didomi", None)
        .await;
    let shown = shown.to_string();
    assert!(!shown.contains(KEY) && !shown.contains(SECRET), "{shown}");
    assert!(!dead.to_string().contains("wrong-secret"));
    let (clean, log) = server.terminate();
    assert!(clean);
    for secret in [KEY, SECRET, "wrong-secret-0123456789", "sig1"] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
}

#[tokio::test]
async fn without_upsert_a_user_didomi_does_not_know_is_skipped() {
    let didomi = mock_didomi().await;
    let actito = mock_actito().await;
    let server = start_server();
    create(&server, &didomi_integration(&didomi, SECRET, false)).await;
    create(&server, &actito_integration(&actito)).await;
    actito.state.subscribe_webhooks(
        &format!("{}/v1/webhooks/act", server.url),
        "X-Authorization",
        ACTITO_SECRET,
    );
    // Ann came in through the events API, not from Didomi's store (the
    // mock does not know her).
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/events",
            Some(&crate::serve::event(
                "e1",
                "2026-11-23T10:00:00Z",
                USER,
                json!({"purposes": [{"id": "newsletter", "enabled": true}]}),
                json!({}),
            )),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    eventually("Ann at Actito", || actito.state.profile(USER).is_some()).await;
    actito
        .state
        .change_subscription(USER, "Newsletter", false)
        .await;
    wait_last_outcome(&server, "didomi", "skipped").await;
    assert!(didomi.state.events().is_empty());
    assert!(didomi.state.user(USER).is_none());
}

#[test]
fn inspect_shows_the_connector() {
    prefsync_tests::support::assert_inspect_shows(
        guests::DIDOMI,
        &[
            "type id:          didomi",
            "default hosts:    api.didomi.io",
            "max batch size:   1",
            "\"organization_id\"",
            "\"writeOnly\"",
        ],
    );
}

/// This connector's connection check case (tests/it/connection_check.rs).
/// Didomi's credential is a key and secret pair (no `api_key`): the bad
/// config has a wrong secret, refused at `authentication.secret`.
pub(crate) async fn connection_check_case() -> crate::connection_check::CheckCase {
    let mock = mock_didomi().await;
    let good = didomi_integration(&mock, SECRET, true);
    let mut bad = good.clone();
    bad["authentication"]["secret"] = json!("wrong-key-7f3a");
    crate::connection_check::CheckCase {
        type_id: "didomi",
        wasm: guests::DIDOMI,
        good,
        bad,
        refused_path: "authentication.secret",
        secret: "wrong-key-7f3a",
        mock: Box::new(mock),
    }
}
