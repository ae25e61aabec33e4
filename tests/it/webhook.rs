//! The generic webhook connector end to end through `prefsync serve`: a
//! receiver on loopback checks every signature with an HMAC implementation
//! of its own (the `hmac` crate), the retry classification follows the
//! config, and the signing secret is never shown or logged.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use prefsync_tests::guests;
use prefsync_tests::mocks::MockServer;
use prefsync_tests::mocks::receiver::Receiver;
use prefsync_tests::mocks::tls::TestCa;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::serve::{Server, event, eventually};

const SECRET: &str = "whsec-test-0123456789abcdef";

/// A receiver that accepts only bodies signed with `secret`.
async fn receiver(secret: &'static str) -> MockServer<Receiver> {
    Receiver::start(Some(Arc::new(move |headers, body| {
        let Some(given) = headers
            .get("x-prefsync-signature")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("sha256="))
            .and_then(|hex| hex::decode(hex).ok())
        else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        mac.verify_slice(&given).is_ok()
    })))
    .await
    .unwrap()
}

fn integration(id: &str, url: &str, retry_on: Option<Value>) -> Value {
    let mut config = json!({
        "id": id,
        "type_id": "webhook",
        "authentication": {"signing_secret": SECRET},
        "properties": {"url": url, "headers": {"X-Tenant": "acme"}},
        "mappings": [{"id": "newsletter", "value": "consents_purposes_newsletter_enabled"}],
        "retry": {"max_retries": 3, "initial_backoff_ms": 50, "multiplier": 1.0, "max_backoff_ms": 50, "jitter": 0.0}
    });
    if let Some(retry_on) = retry_on {
        config["properties"]["retry_on"] = retry_on;
    }
    config
}

impl Server {
    async fn post_newsletter(&self, id: &str, user: &str, on: bool) {
        let body = event(
            id,
            "2026-11-23T10:00:00Z",
            user,
            json!({"purposes": [{"id": "newsletter", "enabled": on}]}),
            json!({}),
        );
        let (status, answer) = self.send(Method::POST, "/v1/events", Some(&body)).await;
        assert_eq!(status, 202, "{answer}");
    }
}

#[tokio::test]
async fn signed_deliveries_reach_the_receiver_and_failures_follow_the_config() {
    let good = receiver(SECRET).await;
    let server = Server::try_start("", |dir| {
        std::fs::copy(guests::WEBHOOK, dir.join("connectors").join("webhook.wasm")).unwrap();
        String::new()
    })
    .unwrap();
    // Only 409 is retried by this receiver's contract; anything else non-2xx is final.
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/integrations",
            Some(&integration("hook", &good.url(), Some(json!([409]))).to_string()),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(!body.to_string().contains(SECRET), "{body}");

    server.post_newsletter("e1", "ann@example.com", true).await;
    assert_eq!(
        server
            .wait_outcomes("ann@example.com", None, |o| !o.is_empty())
            .await,
        ["delivered:updated"]
    );
    let accepted = good.state.accepted();
    assert_eq!(accepted[0]["organization_user_id"], "ann@example.com");
    assert_eq!(accepted[0]["properties"], json!({"newsletter": true}));
    assert_eq!(good.state.bad_signatures(), 0);
    let request = &good.state.requests()[0];
    assert!(
        request
            .headers
            .contains(&("x-tenant".into(), "acme".into()))
    );

    // 409 twice, then accepted: retried per the config.
    good.state.push_statuses([409, 409]);
    server.post_newsletter("e2", "bob@example.com", true).await;
    assert_eq!(
        server
            .wait_outcomes("bob@example.com", None, |o| o.len() >= 3)
            .await,
        ["failed:retryable", "failed:retryable", "delivered:updated"]
    );
    // A 503 is not in `retry_on`: a dead letter at once.
    good.state.push_statuses([503]);
    server
        .post_newsletter("e3", "carol@example.com", true)
        .await;
    assert_eq!(
        server
            .wait_outcomes("carol@example.com", None, |o| !o.is_empty())
            .await,
        ["failed:permanent"]
    );
    let dead = server
        .wait_for_list("/v1/dead-letters?integration=hook", 1)
        .await;
    assert!(
        dead[0]["last_error"]
            .as_str()
            .unwrap()
            .starts_with("HTTP 503"),
        "{dead}"
    );

    // A receiver holding another secret refuses the signature.
    let other = receiver("another-secret-0123456789").await;
    let (status, _) = server
        .send(
            Method::PUT,
            "/v1/integrations/hook",
            Some(&integration("hook", &other.url(), None).to_string()),
        )
        .await;
    assert_eq!(status, 200);
    server.post_newsletter("e4", "dan@example.com", true).await;
    assert_eq!(
        server
            .wait_outcomes("dan@example.com", None, |o| !o.is_empty())
            .await,
        ["failed:permanent"]
    );
    assert_eq!(other.state.bad_signatures(), 1);

    let (clean, log) = server.terminate();
    assert!(clean);
    assert!(
        !log.contains(SECRET),
        "the signing secret stays out of the log"
    );
}

/// HTTPS to a destination whose certificate a private CA signed: trusted
/// once the operator names the CA in `egress.extra_root_certificates`,
/// spoken in HTTP/2 (the receiver offers `h2` in the handshake), every
/// delivery multiplexed over one connection. A receiver whose CA nobody
/// named is refused at the handshake and its events dead-lettered with the
/// reason.
#[tokio::test]
async fn https_deliveries_share_one_http2_connection_under_the_operators_root() {
    let operators_ca = TestCa::new();
    let trusted = Receiver::start_tls(None, &operators_ca).await.unwrap();
    let unknown_ca = TestCa::new();
    let untrusted = Receiver::start_tls(None, &unknown_ca).await.unwrap();
    let server = Server::try_start("", |dir| {
        std::fs::copy(guests::WEBHOOK, dir.join("connectors").join("webhook.wasm")).unwrap();
        let ca = dir.join("operators-ca.pem");
        std::fs::write(&ca, operators_ca.pem()).unwrap();
        // No allow_http: https only.
        format!("[egress]\nallow_loopback = true\nextra_root_certificates = [{ca:?}]\n")
    })
    .unwrap();
    for (id, receiver) in [("tls", &trusted), ("untrusted", &untrusted)] {
        let (status, body) = server
            .send(
                Method::POST,
                "/v1/integrations",
                Some(&integration(id, &format!("{}/consent", receiver.url()), None).to_string()),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    // One delivery first, so that the connection exists (and has chosen
    // HTTP/2) before the others start.
    server
        .post_newsletter("t0", "user0@example.com", true)
        .await;
    eventually("the first delivery", || {
        !trusted.state.accepted().is_empty()
    })
    .await;
    for n in 1..30 {
        server
            .post_newsletter(
                &format!("t{n}"),
                &format!("user{n}@example.com"),
                n % 2 == 0,
            )
            .await;
    }
    // Every user, on both integrations; only the trusted receiver gets any.
    eventually("30 users at the trusted receiver", || {
        trusted.state.accepted().len() >= 30
    })
    .await;
    let stats = trusted.tls_stats().unwrap();
    assert_eq!(
        (stats.connections(), stats.http2_connections()),
        (1, 1),
        "one connection, in HTTP/2, carried every delivery"
    );
    let mut users: Vec<String> = trusted
        .state
        .accepted()
        .iter()
        .map(|body| body["organization_user_id"].as_str().unwrap().to_string())
        .collect();
    users.sort();
    users.dedup();
    assert_eq!(users.len(), 30);

    let dead = server
        .wait_for_list("/v1/dead-letters?integration=untrusted", 1)
        .await;
    let reason = dead[0]["last_error"].as_str().unwrap();
    assert!(reason.contains("certificate"), "{reason}");
    assert!(untrusted.state.requests().is_empty());
    assert_eq!(untrusted.tls_stats().unwrap().connections(), 0);
    let (clean, _) = server.terminate();
    assert!(clean);
}

/// A root certificate file the host cannot use stops `serve` before it
/// listens, naming the option and the file, never the file's content.
#[tokio::test]
async fn an_unusable_root_certificate_file_stops_the_start_by_name() {
    let secret_line = "Zm9yLXlvdXItZXllcy1vbmx5";
    for (name, content, problem) in [
        ("absent.pem", None, "could not be read: no such file"),
        (
            "truncated.pem",
            Some(format!("-----BEGIN CERTIFICATE-----\n{secret_line}\n")),
            "has no `-----END` line",
        ),
        ("empty.pem", Some(String::new()), "holds no certificate"),
    ] {
        let mut path = None;
        let error = Server::try_start("", |dir| {
            let file = dir.join(name);
            if let Some(content) = &content {
                std::fs::write(&file, content).unwrap();
            }
            let line = format!("[egress]\nextra_root_certificates = [{file:?}]\n");
            path = Some(file);
            line
        })
        .err()
        .unwrap_or_else(|| panic!("{name}: the server started"));
        let path = path.unwrap().display().to_string();
        assert!(error.contains("egress.extra_root_certificates"), "{error}");
        assert!(error.contains(&path), "{error}");
        assert!(error.contains(problem), "{name}: {error}");
        assert!(!error.contains(secret_line), "{error}");
    }
}
