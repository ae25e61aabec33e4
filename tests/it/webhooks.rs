//! `POST /v1/webhooks/{integration}` through the real `prefsync serve`: the
//! probe guest reads webhooks (the optional `inbound` interface), the mock
//! Dotdigital is the other side. A change reported by one integration
//! reaches the others and not itself; an echo of a value we already hold
//! sends nothing; bad requests change nothing.

use std::time::Duration;

use prefsync_tests::guests;
use reqwest::Method;
use serde_json::{Value, json};

use crate::serve::{Server, dotdigital, event, eventually, mock_dotdigital};

const SECRET: &str = "webhook-shared-secret-0123456789";
const USER: &str = "ann@example.com";

fn probe_integration(enable_webhooks: bool) -> Value {
    json!({
        "id": "probe-in",
        "type_id": "probe",
        "mode": "noop",
        "authentication": {"webhook_secret": SECRET},
        "mappings": [{"id": "NEWSLETTER", "value": "consents_purposes_newsletter_enabled"}],
        "enable_webhooks": enable_webhooks
    })
}

impl Server {
    async fn webhook(&self, integration: &str, secret: Option<&str>, body: &str) -> (u16, Value) {
        let mut request = self
            .client()
            .post(format!("{}/v1/webhooks/{integration}", self.url))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(secret) = secret {
            request = request.header("X-Authorization", secret);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

fn newsletter_update(id: &str, value: bool) -> String {
    json!({"updates": [{"user": USER, "set": {"consents_purposes_newsletter_enabled": value}, "id": id}]})
        .to_string()
}

#[tokio::test]
async fn a_webhook_reaches_the_other_integrations_and_its_echo_sends_nothing() {
    let mock = mock_dotdigital().await;
    let server = Server::try_start("", |dir| {
        std::fs::copy(guests::PROBE, dir.join("connectors").join("probe.wasm")).unwrap();
        String::new()
    })
    .unwrap();
    let mut dd = dotdigital(Some("dd"));
    dd["authentication"]["url"] = json!(mock.url());
    for integration in [&dd, &probe_integration(true)] {
        let (status, body) = server
            .send(
                Method::POST,
                "/v1/integrations",
                Some(&integration.to_string()),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    // A Didomi event reaches both.
    let (status, _) = server
        .send(
            Method::POST,
            "/v1/events",
            Some(&event(
                "ev-1",
                "2026-11-23T10:00:00Z",
                USER,
                json!({"purposes": [{"id": "newsletter", "enabled": true}]}),
                json!({}),
            )),
        )
        .await;
    assert_eq!(status, 202);
    eventually("ann at Dotdigital", || {
        mock.state
            .contact(USER)
            .is_some_and(|c| c.data_fields.get("NEWSLETTER") == Some(&json!(true)))
    })
    .await;
    for _ in 0..100 {
        if server.attempts(USER, Some("probe-in")).await.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.attempts(USER, Some("probe-in")).await.len(), 1);

    // The probe's side reports a change: Dotdigital gets it, the probe does not.
    let (status, body) = server
        .webhook("probe-in", Some(SECRET), &newsletter_update("n-1", false))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["applied"], 1);
    eventually("the webhook's change at Dotdigital", || {
        mock.state
            .contact(USER)
            .is_some_and(|c| c.data_fields.get("NEWSLETTER") == Some(&json!(false)))
    })
    .await;
    let dd_attempts = server.attempts(USER, Some("dd")).await;
    assert_eq!(dd_attempts.len(), 2);
    assert_eq!(dd_attempts.last().unwrap()["origin"], "probe-in");
    assert_eq!(dd_attempts[0]["origin"], Value::Null);

    // The echo of what we hold (a new notification, the same value) and a
    // repeated notification: recorded, nothing sent anywhere.
    let requests_before = mock.state.requests().len();
    let (status, body) = server
        .webhook("probe-in", Some(SECRET), &newsletter_update("n-2", false))
        .await;
    assert_eq!(
        (status, &body["without_deliveries"]),
        (200, &json!(1)),
        "{body}"
    );
    let (status, body) = server
        .webhook("probe-in", Some(SECRET), &newsletter_update("n-1", false))
        .await;
    assert_eq!((status, &body["duplicates"]), (200, &json!(1)), "{body}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mock.state.requests().len(), requests_before);
    assert_eq!(server.attempts(USER, Some("probe-in")).await.len(), 1);
    assert_eq!(server.attempts(USER, Some("dd")).await.len(), 2);

    // The history names each event's origin.
    let (_, history) = server
        .send(Method::GET, &format!("/v1/users/{USER}/history"), None)
        .await;
    let origins: Vec<&Value> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["origin"])
        .collect();
    assert_eq!(origins.iter().filter(|o| **o == "probe-in").count(), 2);
    assert_eq!(origins.iter().filter(|o| o.is_null()).count(), 1);
}

#[tokio::test]
async fn bad_webhooks_are_refused_and_change_nothing() {
    let server = Server::try_start("", |dir| {
        std::fs::copy(guests::PROBE, dir.join("connectors").join("probe.wasm")).unwrap();
        String::new()
    })
    .unwrap();

    // Settings are checked when the integration is saved.
    let mut no_secret = probe_integration(true);
    no_secret["authentication"] = json!({});
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/integrations",
            Some(&no_secret.to_string()),
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("authentication.webhook_secret"),
        "{body}"
    );
    let mut dd = dotdigital(Some("dd"));
    dd["enable_webhooks"] = json!(true);
    dd["authentication"]["webhook_secret"] = json!(SECRET);
    let (status, body) = server
        .send(Method::POST, "/v1/integrations", Some(&dd.to_string()))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("enable_webhooks: the dotdigital connector does not read webhooks"),
        "{body}"
    );
    dd["enable_webhooks"] = json!(false);
    dd["authentication"]
        .as_object_mut()
        .unwrap()
        .remove("webhook_secret");
    for integration in [&dd, &probe_integration(true)] {
        let (status, body) = server
            .send(
                Method::POST,
                "/v1/integrations",
                Some(&integration.to_string()),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, _) = server
        .send(
            Method::POST,
            "/v1/events",
            Some(&event(
                "ev-1",
                "2026-11-23T10:00:00Z",
                USER,
                json!({"purposes": [{"id": "newsletter", "enabled": true}]}),
                json!({"tier": "silver"}),
            )),
        )
        .await;
    assert_eq!(status, 202);
    let state = || async {
        server
            .send(Method::GET, &format!("/v1/users/{USER}"), None)
            .await
            .1["properties"]
            .clone()
    };
    let before = state().await;
    assert_eq!(before["metadata_tier"], "silver");

    let update = newsletter_update("n-1", false);
    // No secret, a wrong one.
    for secret in [None, Some("webhook-shared-secret-0123456780")] {
        let (status, body) = server.webhook("probe-in", secret, &update).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"], "missing or wrong `X-Authorization` header");
    }
    // Not JSON: the connector refuses it.
    let (status, body) = server.webhook("probe-in", Some(SECRET), "{not json").await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("the body is not the JSON expected"),
        "{body}"
    );
    // One good update and one that writes what a webhook may not: neither applies.
    let mixed = json!({"updates": [
        {"user": USER, "set": {"metadata_tier": "gold"}},
        {"user": USER, "set": {"organization_user_id": "mallory"}}
    ]});
    let (status, body) = server
        .webhook("probe-in", Some(SECRET), &mixed.to_string())
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("update 1 from the connector: `organization_user_id` cannot be set"),
        "{body}"
    );
    // A user prefsync does not know, and a part the connector leaves alone:
    // answered, logged, nothing applied.
    let unknown = json!({
        "updates": [{"user": "nobody@example.com", "set": {"consents_purposes_newsletter_enabled": false}}],
        "ignored": ["subscription `Promo` is not mapped"]
    });
    let (status, body) = server
        .webhook("probe-in", Some(SECRET), &unknown.to_string())
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["applied"], 0);
    assert_eq!(
        body["ignored"],
        json!([
            "subscription `Promo` is not mapped",
            "user `nobody@example.com` is not known"
        ])
    );
    assert_eq!(state().await, before);
    let (status, _) = server
        .send(Method::GET, "/v1/users/nobody@example.com", None)
        .await;
    assert_eq!(status, 404);

    // Integrations that do not receive webhooks: 404.
    for integration in ["dd", "no-such-integration"] {
        let (status, _) = server.webhook(integration, Some(SECRET), &update).await;
        assert_eq!(status, 404, "{integration}");
    }
    let (status, _) = server
        .send(
            Method::PUT,
            "/v1/integrations/probe-in",
            Some(&probe_integration(false).to_string()),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = server.webhook("probe-in", Some(SECRET), &update).await;
    assert_eq!(status, 404);
    assert_eq!(
        body["error"],
        "integration `probe-in` does not receive webhooks"
    );

    // The shared secret is never shown or logged.
    let (_, shown) = server
        .send(Method::GET, "/v1/integrations/probe-in", None)
        .await;
    assert!(!shown.to_string().contains(SECRET), "{shown}");
    let (clean, log) = server.terminate();
    assert!(clean);
    assert!(
        log.contains("webhook refused: wrong or missing shared secret"),
        "{log}"
    );
    assert!(!log.contains(SECRET));
}
