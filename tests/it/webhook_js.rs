//! The connector written in JavaScript (`plugins/webhook-js`, made into a
//! component with componentize-js) runs under the same contract, sandbox
//! and limits as the Rust ones: validated, delivering to a receiver on
//! loopback with its failures classified, and installed and audited
//! through `prefsync serve`'s registry.

use prefsync::runtime::{DeliveredKind, Limits, Outcome, Value};
use prefsync_tests::guests;
use prefsync_tests::mocks::receiver::Receiver;
use prefsync_tests::support::{loopback_egress, record, runtime};
use serde_json::json;

use super::serve::{Server, event};

#[tokio::test]
async fn the_javascript_connector_validates_delivers_and_classifies() {
    let connector = runtime(loopback_egress(), Limits::default())
        .load_file(guests::WEBHOOK_JS.as_ref())
        .await
        .unwrap();
    let info = connector.info();
    assert_eq!(info.type_id, "webhook_js");
    assert_eq!(info.wit_version, "0.1.3");
    assert_eq!(info.max_concurrency, 2);

    let problems = connector
        .validate(&json!({"type_id": "webhook_js", "properties": {"url": "ftp://x"}, "mappings": [{"id": "a"}]}))
        .await
        .unwrap();
    // The host checks the connector's own JSON Schema first (a mapping
    // without its `value`) …
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["mappings[0].value"]);
    // … and hands a config that fits it to the component's `validate`.
    let problems = connector
        .validate(&json!({"type_id": "webhook_js", "properties": {"url": "ftp://x"}, "mappings": [{"id": "a", "value": "b"}]}))
        .await
        .unwrap();
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, ["properties.url"]);

    let receiver = Receiver::start(None).await.unwrap();
    let config = json!({
        "type_id": "webhook_js",
        "properties": {"url": format!("{}/consent", receiver.url())},
        "mappings": [{"id": "newsletter", "value": "consents_purposes_newsletter_enabled"}]
    });
    assert!(connector.validate(&config).await.unwrap().is_empty());
    let integration = connector.integration("js-1", &config);
    let deliver = |on: bool| {
        let connector = connector.clone();
        let integration = integration.clone();
        async move {
            let batch = vec![record(
                "ann@example.com",
                &[("consents_purposes_newsletter_enabled", Value::Boolean(on))],
            )];
            connector.deliver(&integration, batch).await
        }
    };
    let delivery = deliver(true).await;
    assert_eq!(
        delivery.outcomes,
        [Outcome::Delivered(DeliveredKind::Updated)]
    );
    let accepted = receiver.state.accepted();
    assert_eq!(accepted[0]["organization_user_id"], "ann@example.com");
    assert_eq!(accepted[0]["properties"], json!({"newsletter": true}));
    assert_eq!(delivery.report.stats.http_statuses.len(), 1);
    assert!(delivery.report.peak_memory_bytes < Limits::default().memory_bytes);

    receiver.state.push_statuses([503, 400]);
    let Outcome::Failed(unavailable) = &deliver(false).await.outcomes[0] else {
        panic!("a 503 is a failure")
    };
    assert!(unavailable.retryable, "{unavailable:?}");
    assert!(
        unavailable.message.starts_with("HTTP 503"),
        "{unavailable:?}"
    );
    let Outcome::Failed(bad) = &deliver(false).await.outcomes[0] else {
        panic!("a 400 is a failure")
    };
    assert!(!bad.retryable, "{bad:?}");
}

#[tokio::test]
async fn it_is_installed_and_delivers_through_the_registry() {
    let receiver = Receiver::start(None).await.unwrap();
    let server = Server::start();
    let (status, report) = server
        .post_bytes("/v1/connectors", std::fs::read(guests::WEBHOOK_JS).unwrap())
        .await;
    assert_eq!(status, 201, "{report}");
    assert_eq!(report["action"], "install");
    let integration = json!({
        "id": "js",
        "type_id": "webhook_js",
        "properties": {"url": receiver.url()},
        "mappings": [{"id": "newsletter", "value": "consents_purposes_newsletter_enabled"}]
    });
    server.create_integration(&integration).await;
    server
        .post_events(&event(
            "js-1",
            "2026-11-23T10:00:00Z",
            "ann@example.com",
            json!({"purposes": [{"id": "newsletter", "enabled": true}]}),
            json!({}),
        ))
        .await;
    let outcomes = server
        .wait_outcomes("ann@example.com", Some("js"), |o| !o.is_empty())
        .await;
    assert_eq!(outcomes, ["delivered:updated"]);
    let attempts = server.attempts("ann@example.com", Some("js")).await;
    assert_eq!(attempts[0]["connector_type"], "webhook_js");
    assert_eq!(attempts[0]["connector_version"], "0.1.0");
    assert_eq!(
        receiver.state.accepted()[0]["properties"],
        json!({"newsletter": true})
    );
}

#[tokio::test]
async fn connector_test_compiles_the_component_once_into_the_user_cache() {
    use super::cli::{connector_test_caching_in, path_arg, scratch};
    let receiver = Receiver::start(None).await.unwrap();
    let config = scratch(
        "cache-webhook-js.json",
        json!({
            "type_id": "webhook_js",
            "properties": {"url": format!("{}/consent", receiver.url())},
            "mappings": [{"id": "newsletter", "value": "consents_purposes_newsletter_enabled"}]
        })
        .to_string()
        .as_bytes(),
    );
    let record = scratch(
        "cache-webhook-js-record.json",
        br#"{"organization_user_id": "cache@example.com", "consents_purposes_newsletter_enabled": true}"#,
    );
    let args = |extra: &[&str]| -> Vec<String> {
        let mut args = vec![
            guests::WEBHOOK_JS.to_string(),
            "--config".into(),
            path_arg(config.clone()),
            "--record".into(),
            path_arg(record.clone()),
            "--allow-loopback".into(),
            "--allow-http".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    let artifacts = |dir: &std::path::Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let outcome = |stdout: &str| -> String {
        stdout
            .lines()
            .find(|line| line.starts_with("cache@example.com: "))
            .unwrap_or_else(|| panic!("no outcome in:\n{stdout}"))
            .to_string()
    };

    // Created where PREFSYNC_CACHE_DIR says (missing at first), then filled
    // with the one compiled component.
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("artifacts");
    let (ok, first, stderr) = connector_test_caching_in(&cache, args(&[])).await;
    assert!(ok, "{stderr}");
    assert_eq!(outcome(&first), "cache@example.com: delivered (updated)");
    let cached = artifacts(&cache);
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert!(cached[0].ends_with(".cwasm"), "{cached:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    }

    // The second run loads it from there: the same outcome, nothing added,
    // and nothing said about the cache.
    let (ok, second, stderr) = connector_test_caching_in(&cache, args(&[])).await;
    assert!(ok, "{stderr}");
    assert_eq!(outcome(&second), outcome(&first));
    assert_eq!(artifacts(&cache), cached);
    assert!(!stderr.contains("cach"), "{stderr}");

    // --no-cache compiles in memory and writes nothing.
    let empty = tempfile::tempdir().unwrap();
    let (ok, third, stderr) = connector_test_caching_in(empty.path(), args(&["--no-cache"])).await;
    assert!(ok, "{stderr}");
    assert_eq!(outcome(&third), outcome(&first));
    assert!(artifacts(empty.path()).is_empty());
    assert_eq!(receiver.state.accepted().len(), 3);
}
