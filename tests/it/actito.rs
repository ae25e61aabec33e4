//! The Actito connector end to end through `prefsync serve` and the mock
//! Actito: profiles and subscriptions, both upsert modes, every failure
//! class, the token expiring mid-run, the 5-request limit under a burst, and
//! the bidirectional flow with Dotdigital without loops.

use std::time::Duration;

use prefsync_tests::guests;
use prefsync_tests::mocks::MockServer;
use prefsync_tests::mocks::actito::{Actito, CONCURRENCY_LIMIT, Fault};
use reqwest::Method;
use serde_json::{Value, json};

use crate::serve::{Server, dotdigital, event, eventually, mock_dotdigital};

const API_KEY: &str = "actito-private-key-0123456789";
const SECRET: &str = "actito-webhook-secret-0123456789";

async fn mock() -> MockServer<Actito> {
    Actito::start(
        API_KEY,
        "ACME",
        "Profiles",
        "email",
        &["Newsletter", "Promo"],
    )
    .await
    .unwrap()
}

fn start_server() -> Server {
    Server::try_start("", |dir| {
        std::fs::copy(guests::ACTITO, dir.join("connectors").join("actito.wasm")).unwrap();
        String::new()
    })
    .unwrap()
}

/// The seed's shape, pointed at the mock, with a fast retry policy.
fn integration(mock: &MockServer<Actito>, upsert: bool) -> Value {
    json!({
        "id": "act",
        "type_id": "actito",
        "authentication": {"private_api_key": API_KEY},
        "properties": {"entity_id": "ACME", "table_name": "Profiles", "user_unique_key": "email", "api_base": mock.url()},
        "mappings": [
            {"id": "Newsletter", "value": "consents_purposes_newsletter_enabled"},
            {"id": "Promo", "value": "consents_channels_sms_enabled"}
        ],
        "upsert_mode": upsert,
        "enable_webhooks": false,
        "enable_emailing": false,
        "retry": {"max_retries": 3, "initial_backoff_ms": 50, "multiplier": 1.0, "max_backoff_ms": 50, "jitter": 0.0}
    })
}

impl Server {
    async fn create(&self, integration: &Value) {
        let (status, body) = self
            .send(
                Method::POST,
                "/v1/integrations",
                Some(&integration.to_string()),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    async fn post_event(&self, id: &str, at: &str, user: &str, consents: Value, metadata: Value) {
        let (status, body) = self
            .send(
                Method::POST,
                "/v1/events",
                Some(&event(id, at, user, consents, metadata)),
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }

    /// Polls until `user`'s attempts at `integration` end with `outcome`.
    async fn wait_outcome(&self, user: &str, integration: &str, outcome: &str) -> Vec<String> {
        self.wait_outcomes(user, Some(integration), |o| {
            o.last().is_some_and(|last| last == outcome)
        })
        .await
    }
}

fn newsletter(on: Option<bool>) -> Value {
    json!({"purposes": [{"id": "newsletter", "enabled": on}]})
}

#[tokio::test]
async fn profiles_are_created_and_updated_with_subscriptions_and_metadata() {
    let mock = mock().await;
    let server = start_server();
    server.create(&integration(&mock, true)).await;

    server
        .post_event(
            "e1",
            "2026-11-23T10:00:00Z",
            "ann@example.com",
            json!({"purposes": [{"id": "newsletter", "enabled": true}], "channels": [{"id": "sms", "enabled": null}]}),
            json!({"tier": "gold"}),
        )
        .await;
    server
        .wait_outcome("ann@example.com", "act", "delivered:created")
        .await;
    let profile = mock.state.profile("ann@example.com").unwrap();
    assert_eq!(profile.subscriptions.get("Newsletter"), Some(&true));
    // No choice made on SMS: no subscription change sent for Promo.
    assert_eq!(profile.subscriptions.get("Promo"), None);
    assert_eq!(profile.attributes["tier"], "gold");
    assert_eq!(profile.attributes["email"], "ann@example.com");

    server
        .post_event(
            "e2",
            "2026-11-23T10:01:00Z",
            "ann@example.com",
            newsletter(Some(false)),
            json!({}),
        )
        .await;
    server
        .wait_outcome("ann@example.com", "act", "delivered:updated")
        .await;
    assert_eq!(
        mock.state
            .profile("ann@example.com")
            .unwrap()
            .subscriptions
            .get("Newsletter"),
        Some(&false)
    );
    assert_eq!(mock.state.profile_writes().len(), 2);
    assert_eq!(mock.state.tokens_issued(), 1, "the token is cached");

    // Without upsert: an unknown profile is skipped and never created; a known one is updated.
    let mut strict = integration(&mock, false);
    strict["mappings"] =
        json!([{"id": "Newsletter", "value": "consents_purposes_newsletter_enabled"}]);
    let (status, body) = server
        .send(
            Method::PUT,
            "/v1/integrations/act",
            Some(&strict.to_string()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    mock.state
        .insert_profile("carol@example.com", &[("Newsletter", false)]);
    for (id, user) in [("e3", "bob@example.com"), ("e4", "carol@example.com")] {
        server
            .post_event(
                id,
                "2026-11-23T10:02:00Z",
                user,
                newsletter(Some(true)),
                json!({}),
            )
            .await;
    }
    server
        .wait_outcome("bob@example.com", "act", "skipped")
        .await;
    server
        .wait_outcome("carol@example.com", "act", "delivered:updated")
        .await;
    assert!(mock.state.profile("bob@example.com").is_none());
    assert_eq!(
        mock.state
            .profile("carol@example.com")
            .unwrap()
            .subscriptions
            .get("Newsletter"),
        Some(&true)
    );

    // The key and the token never show.
    let (_, shown) = server.send(Method::GET, "/v1/integrations/act", None).await;
    assert!(!shown.to_string().contains(API_KEY), "{shown}");
    let (clean, log) = server.terminate();
    assert!(clean);
    assert!(!log.contains(API_KEY));
    assert!(
        !log.contains("token-1"),
        "the access token stays out of the log"
    );
}

#[tokio::test]
async fn failures_end_as_retries_or_dead_letters_and_an_expired_token_is_survived() {
    let mock = mock().await;
    let server = start_server();
    server.create(&integration(&mock, true)).await;

    // 503, then 429: retried, then delivered.
    mock.state
        .push_faults([Fault::Status(503), Fault::Status(429)]);
    server
        .post_event(
            "e1",
            "2026-11-23T10:00:00Z",
            "flaky@example.com",
            newsletter(Some(true)),
            json!({}),
        )
        .await;
    let outcomes = server
        .wait_outcome("flaky@example.com", "act", "delivered:created")
        .await;
    assert_eq!(
        outcomes,
        ["failed:retryable", "failed:retryable", "delivered:created"]
    );

    // The token expires mid-run: renewed once, nothing lost.
    mock.state.expire_tokens();
    server
        .post_event(
            "e2",
            "2026-11-23T10:01:00Z",
            "flaky@example.com",
            newsletter(Some(false)),
            json!({}),
        )
        .await;
    let outcomes = server
        .wait_outcome("flaky@example.com", "act", "delivered:updated")
        .await;
    assert_eq!(outcomes.len(), 4, "no failed attempt: {outcomes:?}");
    assert_eq!(mock.state.tokens_issued(), 2);

    // A 400 (unknown subscription) is permanent: a dead letter at once.
    mock.state.push_faults([Fault::Status(400)]);
    server
        .post_event(
            "e3",
            "2026-11-23T10:02:00Z",
            "bad@example.com",
            newsletter(Some(true)),
            json!({}),
        )
        .await;
    let dead = server
        .wait_for_list("/v1/dead-letters?integration=act", 1)
        .await;
    assert_eq!(dead[0]["organization_user_id"], "bad@example.com");
    assert!(
        dead[0]["last_error"].as_str().unwrap().contains("HTTP 400"),
        "{dead}"
    );
    assert_eq!(
        server.outcomes("bad@example.com", Some("act")).await,
        ["failed:permanent"]
    );

    // A refused API key is permanent too, and says what to fix.
    let mut wrong_key = integration(&mock, true);
    wrong_key["authentication"]["private_api_key"] = json!("not-the-key-0123456789");
    let (status, _) = server
        .send(
            Method::PUT,
            "/v1/integrations/act",
            Some(&wrong_key.to_string()),
        )
        .await;
    assert_eq!(status, 200);
    mock.state.expire_tokens();
    server
        .post_event(
            "e4",
            "2026-11-23T10:03:00Z",
            "dan@example.com",
            newsletter(Some(true)),
            json!({}),
        )
        .await;
    let dead = server
        .wait_for_list("/v1/dead-letters?integration=act", 2)
        .await;
    let last_error = dead
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["organization_user_id"] == "dan@example.com")
        .unwrap()["last_error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(last_error.contains("refused the API key"), "{last_error}");
    assert!(!last_error.contains("not-the-key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_a_thousand_users_stays_within_five_requests_at_once() {
    let mock = mock().await;
    // Each request takes a while, so the host's limit is what keeps them at five.
    mock.state.set_delay(Some(Duration::from_millis(15)));
    let server = start_server();
    server.create(&integration(&mock, true)).await;
    let body: String = (0..1000)
        .map(|i| {
            event(
                &format!("burst-{i}"),
                "2026-11-23T10:00:00Z",
                &format!("user{i:04}@example.com"),
                newsletter(Some(i % 2 == 0)),
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
    for _ in 0..1200 {
        if mock.state.profiles().len() == 1000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(mock.state.profiles().len(), 1000);
    assert!(
        mock.state.peak_concurrency() <= CONCURRENCY_LIMIT,
        "peak {}",
        mock.state.peak_concurrency()
    );
    assert_eq!(mock.state.busy_refusals(), 0);
    println!(
        "actito burst: 1000 users, peak {} concurrent requests, {} profile writes",
        mock.state.peak_concurrency(),
        mock.state.profile_writes().len()
    );
}

#[tokio::test]
async fn webhooks_reach_dotdigital_not_actito_and_the_echo_stops() {
    let actito = mock().await;
    let dd_mock = mock_dotdigital().await;
    let server = start_server();
    let mut act = integration(&actito, true);
    act["enable_webhooks"] = json!(true);
    act["authentication"]["webhook_secret"] = json!(SECRET);
    server.create(&act).await;
    let mut dd = dotdigital(Some("dd"));
    dd["authentication"]["url"] = json!(dd_mock.url());
    server.create(&dd).await;
    // Actito's webhook subscription points at prefsync, with the shared secret.
    actito.state.subscribe_webhooks(
        &format!("{}/v1/webhooks/act", server.url),
        "X-Authorization",
        SECRET,
    );
    let user = "ann@example.com";
    let settle = || async {
        // Long enough for any further delivery or webhook to happen.
        tokio::time::sleep(Duration::from_millis(600)).await;
    };

    // A Didomi event reaches both; Actito echoes what we wrote, and that
    // changes nothing and is sent nowhere.
    server
        .post_event(
            "e1",
            "2026-11-23T10:00:00Z",
            user,
            newsletter(Some(true)),
            json!({}),
        )
        .await;
    eventually("ann at Dotdigital", || {
        dd_mock
            .state
            .contact(user)
            .is_some_and(|c| c.data_fields.get("NEWSLETTER") == Some(&json!(true)))
    })
    .await;
    eventually("the echo", || actito.state.webhooks_sent().len() == 1).await;
    settle().await;
    assert_eq!(actito.state.profile_writes().len(), 1);
    assert_eq!(dd_mock.state.requests_with("PATCH").len(), 1);

    // A marketer unsubscribes in Actito: Dotdigital follows, Actito is not written back.
    let (status, body) = actito
        .state
        .change_subscription(user, "Newsletter", false)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["applied"], 1);
    eventually("the unsubscription at Dotdigital", || {
        dd_mock
            .state
            .contact(user)
            .is_some_and(|c| c.data_fields.get("NEWSLETTER") == Some(&json!(false)))
    })
    .await;
    settle().await;
    assert_eq!(
        actito.state.profile_writes().len(),
        1,
        "nothing sent back to Actito"
    );
    assert_eq!(dd_mock.state.requests_with("PATCH").len(), 2);
    // An unmapped subscription changed in Actito: answered, nothing applied.
    let (status, body) = actito
        .state
        .change_subscription(user, "Partners", true)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["applied"], 0, "{body}");
    assert_eq!(
        body["ignored"],
        json!(["`Partners` is not a mapped subscription"])
    );

    // The audit shows each hop's origin.
    let (_, history) = server
        .send(Method::GET, &format!("/v1/users/{user}/history"), None)
        .await;
    let mut hops: Vec<(String, String)> = history["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["integration_id"].as_str().unwrap().to_string(),
                a["origin"].to_string(),
            )
        })
        .collect();
    hops.sort();
    assert_eq!(
        hops,
        [("act", "null"), ("dd", "\"act\""), ("dd", "null")]
            .map(|(i, o)| (i.to_string(), o.to_string()))
    );
    let origins: Vec<&Value> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["origin"])
        .collect();
    assert_eq!(
        origins.iter().filter(|o| **o == "act").count(),
        2,
        "echo and unsubscription"
    );
    // The wrong secret gets nothing in.
    let response = server
        .client()
        .post(format!("{}/v1/webhooks/act", server.url))
        .header("X-Authorization", "wrong")
        .json(&actito.state.webhooks_sent()[0])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // Malformed JSON: refused, nothing applied; a profile prefsync does not know: ignored.
    let post = |body: String| {
        server
            .client()
            .post(format!("{}/v1/webhooks/act", server.url))
            .header("X-Authorization", SECRET)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let response = post("{\"eventType\": \"UPDATE\", \"data\": {".into())
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .starts_with("the body is not the JSON expected"),
        "{error}"
    );
    let stranger = json!({"id": "wh-x", "eventType": "UPDATED_SUBSCRIPTION",
        "data": {"email": "stranger@example.com", "subscriptions": [{"name": "Newsletter", "subscribe": "true"}]}});
    let response = post(stranger.to_string()).await.unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["applied"], 0);
    assert_eq!(
        answer["ignored"],
        json!(["user `stranger@example.com` is not known"])
    );
    settle().await;
    assert_eq!(
        dd_mock.state.requests_with("PATCH").len(),
        2,
        "nothing more reached Dotdigital"
    );
}

#[test]
fn inspect_shows_the_schema_and_default_host() {
    prefsync_tests::support::assert_inspect_shows(
        guests::ACTITO,
        &[
            "type id:          actito",
            "default hosts:    api.actito.com",
            "max concurrency:  5 per integration",
            "capabilities:     inbound webhooks",
            "\"user_unique_key\"",
            "\"api_base\"",
        ],
    );
}

/// This connector's connection check case (tests/it/connection_check.rs).
pub(crate) async fn connection_check_case() -> crate::connection_check::CheckCase {
    let mock = mock().await;
    let mut good = integration(&mock, true);
    // An id no other case uses: the table test shares one server.
    good["id"] = json!("actito-check");
    let mut bad = good.clone();
    bad["authentication"]["private_api_key"] = json!("wrong-key-7f3a");
    crate::connection_check::CheckCase {
        type_id: "actito",
        wasm: guests::ACTITO,
        good,
        bad,
        refused_path: "authentication.private_api_key",
        secret: "wrong-key-7f3a",
        mock: Box::new(mock),
    }
}
