//! A canary of a broken release (the `dotdigital-failing` guest: every
//! delivery fails permanently) is rolled back by the host on its own; the
//! deliveries it failed are retried on the old version and every user
//! arrives, with nothing dead-lettered. A healthy canary is promoted once its
//! window passes.

use std::time::Duration;

use prefsync_tests::guests;
use reqwest::Method;
use serde_json::{Value, json};

use super::serve::{Server, dotdigital, event, mock_dotdigital};

async fn connector_state(server: &Server) -> Value {
    server
        .send(Method::GET, "/v1/connectors/dotdigital", None)
        .await
        .1
}

/// Polls the registry every 100 ms, for at most 30 s, until `done` says so.
async fn wait_connector(server: &Server, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..300 {
        let state = connector_state(server).await;
        if done(&state) {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "timed out waiting for {what}: {}",
        connector_state(server).await
    );
}

#[tokio::test]
async fn a_failing_canary_is_rolled_back_and_its_deliveries_retried_on_the_old_version() {
    let mock = mock_dotdigital().await;
    let server = Server::start();
    let mut integration = dotdigital(Some("dd"));
    integration["authentication"]["url"] = json!(mock.url());
    integration["retry"] = json!({"max_retries": 3, "initial_backoff_ms": 200, "multiplier": 1.0, "max_backoff_ms": 200, "jitter": 0.0});
    server.create_integration(&integration).await;

    let (status, report) = server
        .post_bytes(
            "/v1/connectors?canary_percent=50&canary_window_s=120&canary_max_failure_increase=0.2&canary_min_deliveries=5",
            std::fs::read(guests::DOTDIGITAL_FAILING).unwrap(),
        )
        .await;
    assert_eq!(status, 201, "{report}");
    assert_eq!(report["action"], "canary");
    let state = connector_state(&server).await;
    assert_eq!(state["active"]["version"], "0.1.0");
    assert_eq!(state["canary"]["candidate"]["version"], "0.3.0");
    assert_eq!(state["canary"]["percent"], 50);

    let users: Vec<String> = (0..30).map(|i| format!("user-{i}@example.com")).collect();
    for (i, user) in users.iter().enumerate() {
        server
            .post_events(&event(
                &format!("e-{i}"),
                "2026-01-01T00:00:00Z",
                user,
                json!({"purposes": [{"id": "newsletter", "enabled": i % 2 == 0}]}),
                json!({}),
            ))
            .await;
    }

    let state = wait_connector(&server, "the automatic rollback", |s| s["canary"].is_null()).await;
    assert_eq!(state["active"]["version"], "0.1.0");
    let failing = state["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == "0.3.0")
        .unwrap();
    assert_eq!(failing["status"], "rolled_back");
    let reason = failing["status_reason"].as_str().unwrap();
    assert!(reason.contains("on the new version vs 0.0 %"), "{reason}");
    assert!(reason.contains("more than 20.0 points worse"), "{reason}");
    let switches = state["switches"].as_array().unwrap();
    let last = switches.last().unwrap();
    assert_eq!(last["action"], "auto_rollback");
    assert_eq!(last["to_version"], "0.1.0");

    // Every user arrives, through 0.1.0; the candidate's failures were retried.
    for (i, user) in users.iter().enumerate() {
        super::serve::eventually(&format!("{user} at the mock"), || {
            mock.state
                .contact(user)
                .is_some_and(|c| c.data_fields.get("NEWSLETTER") == Some(&json!(i % 2 == 0)))
        })
        .await;
    }
    let mut failed_on_canary = 0;
    for user in &users {
        let attempts = server.attempts(user, Some("dd")).await;
        let last = attempts.last().unwrap();
        assert_eq!(last["connector_version"], "0.1.0", "{user}: {attempts:?}");
        assert!(
            last["outcome"].as_str().unwrap().starts_with("delivered"),
            "{attempts:?}"
        );
        for attempt in &attempts[..attempts.len() - 1] {
            assert_eq!(attempt["connector_version"], "0.3.0", "{attempts:?}");
            assert_eq!(attempt["outcome"], "failed:canary", "{attempts:?}");
            failed_on_canary += 1;
        }
    }
    assert!(
        failed_on_canary >= 5,
        "the canary made {failed_on_canary} attempts"
    );
    let (_, dead) = server.send(Method::GET, "/v1/dead-letters", None).await;
    assert_eq!(dead, json!([]), "nothing dead-lettered");

    // A healthy canary is promoted once its window has passed.
    let (status, report) = server
        .post_bytes(
            "/v1/connectors?canary_percent=50&canary_window_s=3&canary_min_deliveries=1",
            std::fs::read(guests::DOTDIGITAL_V2).unwrap(),
        )
        .await;
    assert_eq!(status, 201, "{report}");
    // A second upgrade waits for the verdict.
    let (status, answer) = server
        .post_bytes(
            "/v1/connectors",
            std::fs::read(guests::DOTDIGITAL_STRICT).unwrap(),
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("a canary of `dotdigital` is running")
    );
    let state = wait_connector(&server, "the promotion", |s| {
        s["active"]["version"] == "0.2.0"
    })
    .await;
    assert!(state["canary"].is_null());
    assert_eq!(state["standby"]["version"], "0.1.0");
    assert_eq!(
        state["switches"].as_array().unwrap().last().unwrap()["action"],
        "promote"
    );
}
