//! The connector registry over `prefsync serve`: refused upgrades (a broken
//! file, a core module, another world, another type, a version that is not
//! newer, one that rejects an existing integration's config — the
//! `dotdigital-strict` guest) leave the running version serving; upgrades,
//! forced downgrades and rollbacks switch it; a restart comes back on the
//! versions that were in service.

use prefsync_tests::guests;
use reqwest::Method;
use serde_json::{Value, json};

use super::serve::{Server, dotdigital, event, mock_dotdigital};

fn bytes(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// (version, content hash) of the active version of `dotdigital`.
async fn active(server: &Server) -> (String, String) {
    let (status, body) = server
        .send(Method::GET, "/v1/connectors/dotdigital", None)
        .await;
    assert_eq!(status, 200, "{body}");
    (
        body["active"]["version"].as_str().unwrap().to_string(),
        body["active"]["content_hash"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn refused_upgrades_leave_the_running_version_and_rollbacks_trade_places() {
    let mock = mock_dotdigital().await;
    let server = Server::start();
    let mut integration = dotdigital(Some("dd"));
    integration["authentication"]["url"] = json!(mock.url());
    server.create_integration(&integration).await;

    let (status, list) = server.send(Method::GET, "/v1/connectors", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["connectors"][0]["type_id"], "dotdigital");
    // The paths' old name answers 308 to the new one, query kept, without
    // a token; a client that follows it gets the same answer, method kept.
    let no_follow = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = no_follow
        .post(format!("{}/v1/plugins/dotdigital/rollback?x=1", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 308);
    assert_eq!(
        response.headers()["location"],
        "/v1/connectors/dotdigital/rollback?x=1"
    );
    let (status, old_list) = server.send(Method::GET, "/v1/plugins", None).await;
    assert_eq!((status, &old_list), (200, &list));
    let (status, missing) = server
        .send(Method::POST, "/v1/plugins/nope/rollback", None)
        .await;
    assert_eq!(status, 404, "{missing}");
    let v1 = active(&server).await;
    assert_eq!(v1.0, "0.1.0");
    let (_, detail) = server
        .send(Method::GET, "/v1/connectors/dotdigital", None)
        .await;
    assert_eq!(detail["versions"][0]["status"], "active");
    assert_eq!(detail["versions"][0]["source"], "directory");
    assert_eq!(detail["versions"][0]["wit_version"], "0.1.3");
    assert_eq!(detail["switches"][0]["action"], "install");

    // Each refusal names what is wrong; the active version never moves.
    let refusals: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "",
            b"not wasm at all".to_vec(),
            422,
            "not a WebAssembly file",
        ),
        (
            "",
            b"\0asm\x01\0\0\0".to_vec(),
            422,
            "core WebAssembly module, not a component",
        ),
        (
            "",
            bytes(guests::OTHER_WORLD),
            422,
            "does not export `prefsync:connector/connector`",
        ),
        (
            "?type_id=dotdigital",
            bytes(guests::WEBHOOK),
            422,
            "the component is connector `webhook`, not `dotdigital`",
        ),
        (
            "",
            bytes(guests::DOTDIGITAL),
            409,
            "is already the active version",
        ),
        (
            "",
            bytes(guests::DOTDIGITAL_STRICT),
            422,
            "`dotdigital` 0.4.0 would break 1 integration(s): dd (properties.account_region",
        ),
        (
            "?canary_percent=0",
            bytes(guests::DOTDIGITAL_V2),
            400,
            "canary_percent must be between 1 and 99",
        ),
        (
            "?canary_window_s=5",
            bytes(guests::DOTDIGITAL_V2),
            400,
            "canary_* settings need canary_percent",
        ),
        ("?surprise=1", bytes(guests::DOTDIGITAL_V2), 400, "surprise"),
    ];
    for (query, body, expected_status, expected) in refusals {
        let (status, answer) = server
            .post_bytes(&format!("/v1/connectors{query}"), body)
            .await;
        assert_eq!(status, expected_status, "{expected}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(expected), "{expected} missing from {error}");
        assert_eq!(active(&server).await, v1, "after: {expected}");
    }
    let (_, strict) = server
        .post_bytes("/v1/connectors", bytes(guests::DOTDIGITAL_STRICT))
        .await;
    assert_eq!(strict["integrations"][0]["id"], "dd");

    // An upgrade: newer, validated against `dd`, switched.
    let (status, report) = server
        .post_bytes(
            "/v1/connectors?type_id=dotdigital",
            bytes(guests::DOTDIGITAL_V2),
        )
        .await;
    assert_eq!(status, 201, "{report}");
    assert_eq!(report["action"], "upgrade");
    assert_eq!(report["from"]["version"], "0.1.0");
    assert_eq!(report["to"]["version"], "0.2.0");
    assert_eq!(report["integrations_validated"], 1);
    let v2 = active(&server).await;
    assert_eq!(v2.0, "0.2.0");
    let metrics = server.metrics().await;
    for (role, version) in [("active", &v2), ("standby", &v1)] {
        let line = format!(
            "prefsync_connector_info{{connector=\"dotdigital\",role=\"{role}\",version=\"{}\",hash=\"{}\"}} 1",
            version.0, version.1
        );
        assert!(metrics.contains(&line), "{line} missing from:\n{metrics}");
    }
    // The old version is no longer newer: refused unless forced.
    let (status, answer) = server
        .post_bytes("/v1/connectors", bytes(guests::DOTDIGITAL))
        .await;
    assert_eq!(status, 409);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("`dotdigital` 0.1.0 is not newer than the active 0.2.0"),
        "{answer}"
    );
    assert_eq!(active(&server).await, v2);

    // The new version delivers, and the audit says which version did.
    server
        .post_events(&event(
            "e-1",
            "2026-01-01T00:00:00Z",
            "ann@example.com",
            json!({"purposes": [{"id": "newsletter", "enabled": true}]}),
            json!({}),
        ))
        .await;
    let attempts = wait_attempts(&server, "ann@example.com", 1).await;
    assert_eq!(attempts[0]["connector_version"], "0.2.0");
    assert_eq!(attempts[0]["connector_hash"], v2.1.as_str());

    // Rollback: back to 0.1.0; again: the two trade places.
    let (status, back) = server
        .send(Method::POST, "/v1/connectors/dotdigital/rollback", None)
        .await;
    assert_eq!(status, 200, "{back}");
    assert_eq!(
        (
            back["from"]["version"].clone(),
            back["to"]["version"].clone()
        ),
        (json!("0.2.0"), json!("0.1.0"))
    );
    assert_eq!(active(&server).await, v1);
    server
        .send(Method::POST, "/v1/connectors/dotdigital/rollback", None)
        .await;
    assert_eq!(active(&server).await, v2);
    // A forced downgrade is a switch like another.
    let (status, report) = server
        .post_bytes("/v1/connectors?force=true", bytes(guests::DOTDIGITAL))
        .await;
    assert_eq!(status, 201, "{report}");
    assert_eq!(report["action"], "downgrade");
    assert_eq!(active(&server).await, v1);
    let (status, answer) = server
        .send(Method::POST, "/v1/connectors/nope/rollback", None)
        .await;
    assert_eq!(status, 404);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("no connector `nope`")
    );

    let (_, detail) = server
        .send(Method::GET, "/v1/connectors/dotdigital", None)
        .await;
    let actions: Vec<&str> = detail["switches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["install", "upgrade", "rollback", "rollback", "downgrade"]
    );
    let statuses: Vec<(String, String)> = detail["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_str().unwrap().into(),
                v["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("0.1.0".into(), "active".into()),
            ("0.2.0".into(), "standby".into())
        ],
        "refused versions are not kept"
    );

    // A restart comes back on the versions in service, not on the directory's.
    let server = server.restart();
    assert_eq!(active(&server).await, v1);
    let (_, detail) = server
        .send(Method::GET, "/v1/connectors/dotdigital", None)
        .await;
    assert_eq!(detail["standby"]["version"], "0.2.0");
    let (status, _) = server
        .send(Method::POST, "/v1/connectors/dotdigital/rollback", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(active(&server).await, v2);
}

/// Polls `user`'s attempts until there are `count`, for at most 20 s.
async fn wait_attempts(server: &Server, user: &str, count: usize) -> Vec<Value> {
    for _ in 0..400 {
        let attempts = server.attempts(user, None).await;
        if attempts.len() >= count {
            return attempts;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {count} attempts of {user}");
}
