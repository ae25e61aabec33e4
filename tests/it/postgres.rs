//! `prefsync serve` on PostgreSQL (`[storage] url`): the same pipeline as
//! on SQLite — integrations, merged state with late events, deliveries with
//! retries, the connector registry — kept in the shared database across a
//! restart, with no SQLite file written.

use prefsync_tests::guests;
use prefsync_tests::mocks::dotdigital::Fault;
use prefsync_tests::support::postgres_database;
use reqwest::Method;
use serde_json::json;

use super::serve::{Server, dotdigital, event, eventually, mock_dotdigital};

fn newsletter(id: &str, at: &str, user: &str, on: bool) -> String {
    event(
        id,
        at,
        user,
        json!({"purposes": [{"id": "newsletter", "enabled": on}]}),
        json!({}),
    )
}

#[tokio::test]
async fn the_pipeline_runs_on_postgres_and_survives_a_restart() {
    let url = postgres_database().await;
    let mock = mock_dotdigital().await;
    let server = Server::try_start_on(&format!("url = {url:?}"), "", |_| String::new()).unwrap();
    let mut integration = dotdigital(Some("dd"));
    integration["authentication"]["url"] = json!(mock.url());
    integration["retry"] = json!({"max_retries": 3, "initial_backoff_ms": 50, "multiplier": 1.0, "max_backoff_ms": 50, "jitter": 0.0});
    server.create_integration(&integration).await;

    // A late, older event does not overwrite the newer value.
    server
        .post_events(&newsletter(
            "e2",
            "2026-11-23T10:00:00Z",
            "ann@example.com",
            true,
        ))
        .await;
    server
        .post_events(&newsletter(
            "e1",
            "2026-11-23T09:00:00Z",
            "ann@example.com",
            false,
        ))
        .await;
    // Ann's one delivery is done before the fault is queued, so the 503 is bob's.
    server
        .wait_outcomes("ann@example.com", Some("dd"), |o| !o.is_empty())
        .await;
    // One 503 first: retried, then delivered.
    mock.state.push_faults([Fault::Status(503)]);
    server
        .post_events(&newsletter(
            "e3",
            "2026-11-23T10:00:00Z",
            "bob@example.com",
            true,
        ))
        .await;
    for user in ["ann@example.com", "bob@example.com"] {
        eventually(&format!("{user} at the mock"), || {
            mock.state
                .contact(user)
                .is_some_and(|c| c.data_fields.get("NEWSLETTER") == Some(&json!(true)))
        })
        .await;
    }
    let (_, ann) = server
        .send(Method::GET, "/v1/users/ann@example.com", None)
        .await;
    assert_eq!(
        ann["properties"]["consents_purposes_newsletter_enabled"],
        true
    );

    // An upgrade kept in the database.
    let (status, report) = server
        .post_bytes(
            "/v1/connectors",
            std::fs::read(guests::DOTDIGITAL_V2).unwrap(),
        )
        .await;
    assert_eq!(status, 201, "{report}");

    let server = server.restart();
    let (_, state) = server
        .send(Method::GET, "/v1/connectors/dotdigital", None)
        .await;
    assert_eq!(state["active"]["version"], "0.2.0");
    assert_eq!(state["standby"]["version"], "0.1.0");
    let (status, list) = server.send(Method::GET, "/v1/integrations", None).await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["id"], "dd");
    server
        .post_events(&newsletter(
            "e4",
            "2026-11-23T11:00:00Z",
            "ann@example.com",
            false,
        ))
        .await;
    let outcomes = server
        .wait_outcomes("ann@example.com", Some("dd"), |o| o.len() >= 2)
        .await;
    assert!(
        outcomes.iter().all(|o| o.starts_with("delivered")),
        "{outcomes:?}"
    );
    let attempts = server.attempts("ann@example.com", Some("dd")).await;
    assert_eq!(attempts.last().unwrap()["connector_version"], "0.2.0");
    let bob = server.outcomes("bob@example.com", Some("dd")).await;
    assert_eq!(bob, ["failed:retryable", "delivered:created"]);
    assert!(
        !server.data_dir().join("prefsync.db").exists(),
        "no SQLite file on PostgreSQL"
    );
}
