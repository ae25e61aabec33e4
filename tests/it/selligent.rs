//! The Selligent connector end to end through `prefsync serve` and the mock
//! Individual API: triggers with the mapped InputData, upsert always on,
//! every result code and transport failure ending as the right retry or
//! dead letter, and the encryption key never shown or logged.

use prefsync_tests::guests;
use prefsync_tests::mocks::MockServer;
use prefsync_tests::mocks::selligent::{Fault, Selligent};
use reqwest::Method;
use serde_json::{Value, json};

use crate::serve::{Server, event};

const LOGIN: &str = "didomi-api-user";
const KEY: &str = "selligent-encryption-key-0123456789";

async fn mock() -> MockServer<Selligent> {
    Selligent::start(
        LOGIN,
        KEY,
        &[("DIDOMI_GATE", true), ("PAUSED_GATE", false)],
        &["MAIL", "OPTIN_NEWS", "BIRTH"],
    )
    .await
    .unwrap()
}

fn start_server() -> Server {
    Server::try_start("", |dir| {
        std::fs::copy(
            guests::SELLIGENT,
            dir.join("connectors").join("selligent.wasm"),
        )
        .unwrap();
        String::new()
    })
    .unwrap()
}

/// The seed's shape, pointed at the mock, with a fast retry policy.
fn integration(mock: &MockServer<Selligent>, id: &str, gate: &str) -> Value {
    json!({
        "id": id,
        "type_id": "selligent",
        "authentication": {"username": LOGIN, "password": KEY},
        "properties": {"url": mock.url(), "gate": gate},
        "mappings": [
            {"id": "MAIL", "value": "organization_user_id"},
            {"id": "OPTIN_NEWS", "value": "consents_purposes_newsletter_enabled"},
            {"id": "BIRTH", "value": "metadata_birthdate"}
        ],
        "upsert_mode": true,
        "retry": {"max_retries": 3, "initial_backoff_ms": 50, "multiplier": 1.0, "max_backoff_ms": 50, "jitter": 0.0}
    })
}

impl Server {
    /// Polls until `user` has `count` attempts; returns their outcomes.
    async fn settled_outcomes(&self, user: &str, count: usize) -> Vec<String> {
        self.wait_outcomes(user, None, |o| o.len() >= count).await
    }

    async fn newsletter(&self, id: &str, at: &str, user: &str, on: bool, metadata: Value) {
        let body = event(
            id,
            at,
            user,
            json!({"purposes": [{"id": "newsletter", "enabled": on}]}),
            metadata,
        );
        let (status, answer) = self.send(Method::POST, "/v1/events", Some(&body)).await;
        assert_eq!(status, 202, "{answer}");
    }
}

#[tokio::test]
async fn consents_trigger_the_gate_with_the_mapped_input_data() {
    let mock = mock().await;
    let server = start_server();

    // upsert_mode false is refused, naming the field.
    let mut no_upsert = integration(&mock, "sg", "DIDOMI_GATE");
    no_upsert["upsert_mode"] = json!(false);
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/integrations",
            Some(&no_upsert.to_string()),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["problems"][0]["path"], "upsert_mode", "{body}");

    let (status, body) = server
        .send(
            Method::POST,
            "/v1/integrations",
            Some(&integration(&mock, "sg", "DIDOMI_GATE").to_string()),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(!body.to_string().contains(KEY), "{body}");

    let user = "ann@example.com";
    server
        .newsletter(
            "e1",
            "2026-11-23T10:00:00Z",
            user,
            true,
            json!({"birthdate": "1990-05-17"}),
        )
        .await;
    assert_eq!(
        server.settled_outcomes(user, 1).await,
        ["delivered:updated"]
    );
    assert_eq!(
        mock.state.triggers()[0].input,
        [
            ("MAIL", "ann@example.com"),
            ("OPTIN_NEWS", "1"),
            ("BIRTH", "19900517")
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
    );
    assert_eq!(mock.state.triggers()[0].gate, "DIDOMI_GATE");

    // A change is a second trigger; the profile follows.
    server
        .newsletter("e2", "2026-11-23T10:01:00Z", user, false, json!({}))
        .await;
    server.settled_outcomes(user, 2).await;
    assert_eq!(mock.state.triggers().len(), 2);
    assert_eq!(mock.state.profile(user).unwrap()["OPTIN_NEWS"], "0");

    let (clean, log) = server.terminate();
    assert!(clean);
    assert!(
        !log.contains(KEY),
        "the encryption key stays out of the log"
    );
}

#[tokio::test]
async fn result_codes_and_transport_failures_end_as_retries_or_dead_letters() {
    let mock = mock().await;
    let server = start_server();
    for (id, gate) in [("sg", "DIDOMI_GATE"), ("paused", "PAUSED_GATE")] {
        let (status, body) = server
            .send(
                Method::POST,
                "/v1/integrations",
                Some(&integration(&mock, id, gate).to_string()),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    // Only `sg` from here on: `paused` is disabled until the gate test.
    let (status, _) = server
        .send(
            Method::PUT,
            "/v1/integrations/paused",
            Some(&{
                let mut paused = integration(&mock, "paused", "PAUSED_GATE");
                paused["enabled"] = json!(false);
                paused.to_string()
            }),
        )
        .await;
    assert_eq!(status, 200);

    // A 5xx SOAP fault and a non-SOAP answer: retried, then delivered.
    mock.state.push_faults([Fault::Status(503), Fault::NotSoap]);
    server
        .newsletter(
            "e1",
            "2026-11-23T10:00:00Z",
            "flaky@example.com",
            true,
            json!({}),
        )
        .await;
    assert_eq!(
        server.settled_outcomes("flaky@example.com", 3).await,
        ["failed:retryable", "failed:retryable", "delivered:updated"]
    );

    // An unknown column (10016): a dead letter at once, code and text kept.
    let mut bad_column = integration(&mock, "sg", "DIDOMI_GATE");
    bad_column["mappings"] = json!([
        {"id": "MAIL", "value": "organization_user_id"},
        {"id": "OPTIN_SPAM", "value": "consents_purposes_newsletter_enabled"}
    ]);
    let (status, _) = server
        .send(
            Method::PUT,
            "/v1/integrations/sg",
            Some(&bad_column.to_string()),
        )
        .await;
    assert_eq!(status, 200);
    server
        .newsletter(
            "e2",
            "2026-11-23T10:01:00Z",
            "col@example.com",
            true,
            json!({}),
        )
        .await;
    assert_eq!(
        server.settled_outcomes("col@example.com", 1).await,
        ["failed:permanent"]
    );
    let dead = server
        .wait_for_list("/v1/dead-letters?integration=sg", 1)
        .await;
    let error = dead[0]["last_error"].as_str().unwrap();
    assert!(
        error.contains("10016") && error.contains("Invalid column name OPTIN_SPAM"),
        "{error}"
    );

    // A wrong key (10001): a dead letter at once, without the key in it.
    let mut wrong_key = integration(&mock, "sg", "DIDOMI_GATE");
    wrong_key["authentication"]["password"] = json!("not-the-encryption-key-000");
    let (status, _) = server
        .send(
            Method::PUT,
            "/v1/integrations/sg",
            Some(&wrong_key.to_string()),
        )
        .await;
    assert_eq!(status, 200);
    server
        .newsletter(
            "e3",
            "2026-11-23T10:02:00Z",
            "login@example.com",
            true,
            json!({}),
        )
        .await;
    assert_eq!(
        server.settled_outcomes("login@example.com", 1).await,
        ["failed:permanent"]
    );
    let dead = server
        .wait_for_list("/v1/dead-letters?integration=sg", 2)
        .await;
    let login_error = dead
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["organization_user_id"] == "login@example.com")
        .unwrap()["last_error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(login_error.contains("10001"), "{login_error}");
    assert!(!login_error.contains("not-the-encryption-key"));

    // A disabled gate (10012).
    let (status, _) = server
        .send(
            Method::PUT,
            "/v1/integrations/sg",
            Some(&{
                let mut sg = integration(&mock, "sg", "DIDOMI_GATE");
                sg["enabled"] = json!(false);
                sg.to_string()
            }),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = server
        .send(
            Method::PUT,
            "/v1/integrations/paused",
            Some(&integration(&mock, "paused", "PAUSED_GATE").to_string()),
        )
        .await;
    assert_eq!(status, 200);
    server
        .newsletter(
            "e4",
            "2026-11-23T10:03:00Z",
            "gate@example.com",
            true,
            json!({}),
        )
        .await;
    assert_eq!(
        server.settled_outcomes("gate@example.com", 1).await,
        ["failed:permanent"]
    );
    let dead = server
        .wait_for_list("/v1/dead-letters?integration=paused", 1)
        .await;
    assert!(
        dead[0]["last_error"].as_str().unwrap().contains("10012"),
        "{dead}"
    );
    // Nothing refused reached the profiles.
    assert!(mock.state.profile("col@example.com").is_none());
    assert!(mock.state.profile("login@example.com").is_none());
    assert!(mock.state.profile("gate@example.com").is_none());
}

#[test]
fn inspect_shows_the_schema() {
    prefsync_tests::support::assert_inspect_shows(
        guests::SELLIGENT,
        &[
            "type id:          selligent",
            "default hosts:    (none)",
            "\"gate\"",
            "\"format\": \"uri\"",
        ],
    );
}

/// This connector's connection check case (tests/it/connection_check.rs).
/// The Gate API (this module's mock): the check is a `GetUserByFilter`, and
/// a wrong encryption key is refused with result 10001.
pub(crate) async fn connection_check_case() -> crate::connection_check::CheckCase {
    let mock = mock().await;
    let good = integration(&mock, "selligent-check", "DIDOMI_GATE");
    let mut bad = good.clone();
    bad["authentication"]["password"] = json!("wrong-key-7f3a");
    crate::connection_check::CheckCase {
        type_id: "selligent",
        wasm: guests::SELLIGENT,
        good,
        bad,
        refused_path: "authentication.password",
        secret: "wrong-key-7f3a",
        mock: Box::new(mock),
    }
}
