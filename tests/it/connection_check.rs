//! The connection check (#16, WIT 0.1.3 `connection`) of every shipped
//! connector, through `prefsync serve` and each vendor's mock: a save with
//! `?check=true` checks without storing, the destination's refusal comes
//! back at the credential's path and never with the secret, a stored
//! integration is checked on `POST /v1/integrations/{id}/check`, an
//! unreachable destination is a 502 that says so, and a connector without
//! the export answers `unsupported`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::serve::Server;

/// One connector's connection check, as its own test module sets it up.
pub(crate) struct CheckCase {
    /// The connector's type id.
    pub type_id: &'static str,
    /// Its component.
    pub wasm: &'static str,
    /// An integration (with its `id`) the mock accepts.
    pub good: Value,
    /// The same with a credential (or name) the mock refuses.
    pub bad: Value,
    /// Where the refusal must be reported.
    pub refused_path: &'static str,
    /// The refused secret: never in an answer.
    pub secret: &'static str,
    /// The mock, kept alive for the test.
    #[allow(dead_code)]
    pub mock: Box<dyn std::any::Any + Send>,
}

async fn cases() -> Vec<CheckCase> {
    vec![
        crate::dotdigital::connection_check_case().await,
        crate::actito::connection_check_case().await,
        crate::selligent::connection_check_case().await,
        crate::didomi::connection_check_case().await,
        crate::brevo::connection_check_case().await,
        crate::mailchimp::connection_check_case().await,
        crate::hubspot::connection_check_case().await,
        crate::klaviyo::connection_check_case().await,
        crate::braze::connection_check_case().await,
        crate::sfmc::connection_check_case().await,
    ]
}

fn start(cases: &[CheckCase]) -> Server {
    let wasm: Vec<(&str, &str)> = cases.iter().map(|c| (c.type_id, c.wasm)).collect();
    Server::try_start("", move |dir| {
        let connectors = dir.join("connectors");
        for (type_id, path) in wasm {
            std::fs::copy(path, connectors.join(format!("{type_id}.wasm"))).unwrap();
        }
        std::fs::copy(
            prefsync_tests::guests::WEBHOOK,
            connectors.join("webhook.wasm"),
        )
        .unwrap();
        String::new()
    })
    .unwrap()
}

fn paths(report: &Value) -> Vec<&str> {
    report["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("no problems in {report}"))
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn every_connector_checks_its_connection_without_storing_or_leaking() {
    let cases = cases().await;
    let server = start(&cases);
    for case in &cases {
        let who = case.type_id;
        let id = case.good["id"].as_str().expect("the good config has an id");

        let (status, report) = server
            .send(
                Method::POST,
                "/v1/integrations?check=true",
                Some(&case.good.to_string()),
            )
            .await;
        assert_eq!(status, 200, "{who}: {report}");
        assert_eq!(report["result"], "accepted", "{who}: {report}");

        let (status, report) = server
            .send(
                Method::POST,
                "/v1/integrations?check=true",
                Some(&case.bad.to_string()),
            )
            .await;
        assert_eq!(status, 200, "{who}: {report}");
        assert_eq!(report["result"], "refused", "{who}: {report}");
        assert_eq!(paths(&report), [case.refused_path], "{who}: {report}");
        assert!(
            !report.to_string().contains(case.secret),
            "{who}: the refused secret came back: {report}"
        );

        let (status, stored) = server
            .send(Method::GET, &format!("/v1/integrations/{id}"), None)
            .await;
        assert_eq!(status, 404, "{who}: a check stored something: {stored}");

        let (status, created) = server
            .send(
                Method::POST,
                "/v1/integrations",
                Some(&case.good.to_string()),
            )
            .await;
        assert_eq!(status, 201, "{who}: {created}");
        let (status, report) = server
            .send(Method::POST, &format!("/v1/integrations/{id}/check"), None)
            .await;
        assert_eq!(
            (status, &report["result"]),
            (200, &json!("accepted")),
            "{who}: {report}"
        );

        // A replacement checked with the refused credential: refused, and
        // the stored integration is left as it was.
        let (status, report) = server
            .send(
                Method::PUT,
                &format!("/v1/integrations/{id}?check=true"),
                Some(&case.bad.to_string()),
            )
            .await;
        assert_eq!(
            (status, &report["result"]),
            (200, &json!("refused")),
            "{who}: {report}"
        );
        let (status, report) = server
            .send(Method::POST, &format!("/v1/integrations/{id}/check"), None)
            .await;
        assert_eq!(
            (status, &report["result"]),
            (200, &json!("accepted")),
            "{who}: {report}"
        );
    }
    let (clean, log) = server.terminate();
    assert!(clean);
    for case in &cases {
        assert!(!log.contains(case.secret), "{} secret logged", case.type_id);
    }
}

#[tokio::test]
async fn an_unreachable_destination_or_a_connector_without_a_check_says_so() {
    let cases = vec![crate::dotdigital::connection_check_case().await];
    let server = start(&cases);

    // Nothing listens on port 1 of loopback: the check could not be made.
    let mut unreachable = cases[0].good.clone();
    unreachable["authentication"]["url"] = json!("http://127.0.0.1:1");
    let (status, body) = server
        .send(
            Method::POST,
            "/v1/integrations?check=true",
            Some(&unreachable.to_string()),
        )
        .await;
    assert_eq!(status, 502, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.starts_with("the dotdigital connector could not check the connection: the destination could not be reached"),
        "{message}"
    );

    // The webhook connector exports no `connection`: the config is valid,
    // and the answer says no check was made.
    let webhook = json!({
        "id": "hook", "type_id": "webhook",
        "properties": {"url": "http://127.0.0.1:1/hook"},
        "mappings": [{"id": "newsletter", "value": "consents_purposes_newsletter_enabled"}]
    });
    let (status, report) = server
        .send(
            Method::POST,
            "/v1/integrations?check=true",
            Some(&webhook.to_string()),
        )
        .await;
    assert_eq!(
        (status, &report["result"]),
        (200, &json!("unsupported")),
        "{report}"
    );
    assert_eq!(
        report["message"],
        "the webhook connector has no connection check; the config is valid"
    );
    // The catalogue says which connectors can.
    let (_, catalogue) = server.send(Method::GET, "/v1/connectors", None).await;
    for c in catalogue["connectors"].as_array().unwrap() {
        let can = c["capabilities"]["connection_check"].as_bool().unwrap();
        assert_eq!(can, c["type_id"] != "webhook", "{c}");
    }
    // A check on an integration that does not exist.
    let (status, _) = server
        .send(Method::POST, "/v1/integrations/nope/check", None)
        .await;
    assert_eq!(status, 404);
}
