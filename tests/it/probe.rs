//! Hostile and odd guests are contained, and the host keeps serving.

use std::sync::Arc;
use std::time::Duration;

use prefsync::egress::EgressOptions;
use prefsync::runtime::{CallError, Connector, DeliveredKind, Limits, Outcome, Value};
use prefsync_tests::guests;
use prefsync_tests::mocks::dotdigital::{Dotdigital, Fault};
use prefsync_tests::support::{LogCapture, loopback_egress, record, runtime};
use serde_json::{Value as Json, json};

async fn probe(egress: EgressOptions, limits: Limits) -> Arc<Connector> {
    runtime(egress, limits)
        .load_file(guests::PROBE.as_ref())
        .await
        .unwrap()
}

fn user(key: &str) -> prefsync::runtime::ConsentRecord {
    record(
        key,
        &[("consents_purposes_newsletter_enabled", Value::Boolean(true))],
    )
}

async fn run(connector: &Connector, config: Json) -> prefsync::runtime::Delivery {
    let integration = connector.integration("probe-1", &config);
    connector.deliver(&integration, vec![user("u1")]).await
}

fn failure_message(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Failed(f) => f.message.clone(),
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// The host still serves a normal call on the same connector.
async fn still_serves(connector: &Connector) {
    let delivery = run(connector, json!({"mode": "noop"})).await;
    assert_eq!(
        delivery.outcomes,
        [Outcome::Delivered(DeliveredKind::Unchanged)]
    );
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_at_its_cpu_deadline() {
    let limits = Limits {
        cpu_ms: 200,
        ..Limits::default()
    };
    let connector = probe(loopback_egress(), limits).await;
    let delivery = run(&connector, json!({"mode": "loop"})).await;
    assert_eq!(delivery.error, Some(CallError::CpuLimit { limit_ms: 200 }));
    let Outcome::Failed(f) = &delivery.outcomes[0] else {
        panic!()
    };
    assert!(!f.retryable);
    assert!(f.message.contains("CPU budget of 200 ms"), "{}", f.message);
    assert!(
        delivery.report.duration < Duration::from_secs(5),
        "{:?}",
        delivery.report.duration
    );
    still_serves(&connector).await;
}

#[tokio::test]
async fn the_wall_clock_limit_covers_time_spent_in_host_calls() {
    let mock = Dotdigital::start("u", "p", &[]).await.unwrap();
    mock.state
        .set_outage(Some(Fault::Slow(Duration::from_secs(10))));
    let limits = Limits {
        wall_ms: 500,
        ..Limits::default()
    };
    let connector = probe(loopback_egress(), limits).await;
    let target = format!("{}/contacts/v3/email/x", mock.url());
    let delivery = run(
        &connector,
        json!({"mode": "http", "url": mock.url(), "target": target}),
    )
    .await;
    assert_eq!(
        delivery.error,
        Some(CallError::WallTimeout { limit_ms: 500 })
    );
    let Outcome::Failed(f) = &delivery.outcomes[0] else {
        panic!()
    };
    assert!(f.retryable, "a timeout may pass");
    assert!(delivery.report.duration < Duration::from_secs(3));
    still_serves(&connector).await;
}

#[tokio::test]
async fn a_memory_bomb_hits_the_cap() {
    let cap = 32 * 1024 * 1024;
    let limits = Limits {
        memory_bytes: cap,
        ..Limits::default()
    };
    let connector = probe(loopback_egress(), limits).await;
    let delivery = run(&connector, json!({"mode": "memory-bomb"})).await;
    let Some(CallError::MemoryLimit {
        limit_bytes,
        requested_bytes,
    }) = delivery.error
    else {
        panic!("{:?}", delivery.error);
    };
    assert_eq!(limit_bytes, cap);
    assert!(requested_bytes > cap, "{requested_bytes}");
    let message = failure_message(&delivery.outcomes[0]);
    assert!(message.contains("when its limit is 32.00 MiB"), "{message}");
    assert!(delivery.report.peak_memory_bytes <= cap);
    assert!(
        delivery.report.peak_memory_bytes > cap / 2,
        "{}",
        delivery.report.peak_memory_bytes
    );
    still_serves(&connector).await;
}

#[tokio::test]
async fn a_panic_is_a_failed_outcome_not_a_host_crash() {
    let connector = probe(loopback_egress(), Limits::default()).await;
    let delivery = run(&connector, json!({"mode": "panic"})).await;
    assert!(matches!(delivery.error, Some(CallError::Trap(_))));
    let message = failure_message(&delivery.outcomes[0]);
    assert!(
        message.contains("probe panicked on purpose for u1"),
        "{message}"
    );
    // Where in its source it panicked, so the author can go there.
    assert!(
        message.contains("connector panicked at tests/guests/probe/src/lib.rs:"),
        "{message}"
    );
    still_serves(&connector).await;
}

#[tokio::test]
async fn files_and_environment_are_not_there() {
    // SAFETY: set before any thread of this test reads the environment.
    unsafe { std::env::set_var("PREFSYNC_TEST_SECRET_ENV", "should-not-leak") };
    let connector = probe(loopback_egress(), Limits::default()).await;
    let delivery = run(&connector, json!({"mode": "sandbox"})).await;
    assert_eq!(
        delivery.outcomes,
        [Outcome::Skipped(
            "file=false root=false cwd=false env=0 home=false".into()
        )]
    );
}

async fn denied(egress: EgressOptions, config: Json) -> String {
    let (capture, _guard) = LogCapture::start();
    let connector = probe(egress, Limits::default()).await;
    let delivery = run(&connector, config).await;
    let Outcome::Failed(f) = &delivery.outcomes[0] else {
        panic!("expected a denial, got {:?}", delivery.outcomes)
    };
    assert!(!f.retryable, "a denial is permanent: {}", f.message);
    assert_eq!(delivery.report.stats.denied_requests, 1);
    assert!(delivery.report.stats.http_statuses.is_empty());
    let logs = capture.text();
    assert!(
        logs.contains("outbound request denied by egress policy"),
        "{logs}"
    );
    f.message.clone()
}

#[tokio::test(flavor = "current_thread")]
async fn a_host_outside_the_allowlist_is_denied_before_any_lookup() {
    let message = denied(
        loopback_egress(),
        json!({"mode": "http", "url": "http://127.0.0.1:9", "target": "https://collector.example.com/steal"}),
    )
    .await;
    assert!(
        message.contains(
            "host collector.example.com:443 is not in this integration's allowlist (127.0.0.1:9)"
        ),
        "{message}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn loopback_is_denied_without_the_operator_option() {
    let http_only = EgressOptions {
        allow_http: true,
        ..Default::default()
    };
    let message = denied(
        http_only.clone(),
        json!({"mode": "http", "url": "http://127.0.0.1:9", "target": "http://127.0.0.1:9/x"}),
    )
    .await;
    assert!(
        message.contains("127.0.0.1, a loopback address, which is not allowed"),
        "{message}"
    );

    // A name that resolves to loopback is caught after resolution.
    let message = denied(
        http_only,
        json!({"mode": "http", "url": "http://localhost:9", "target": "http://localhost:9/x"}),
    )
    .await;
    assert!(message.contains("host localhost resolves to"), "{message}");
    assert!(message.contains("a loopback address"), "{message}");
}

#[tokio::test(flavor = "current_thread")]
async fn plain_http_is_denied_without_the_operator_option() {
    let no_http = EgressOptions {
        allow_loopback: true,
        ..Default::default()
    };
    let message = denied(
        no_http,
        json!({"mode": "http", "url": "http://127.0.0.1:9", "target": "http://127.0.0.1:9/x"}),
    )
    .await;
    assert!(
        message.contains("plain http to 127.0.0.1 is not allowed"),
        "{message}"
    );
}

#[tokio::test]
async fn an_allowed_loopback_request_goes_through() {
    let mock = Dotdigital::start("u", "p", &[]).await.unwrap();
    let connector = probe(loopback_egress(), Limits::default()).await;
    let target = format!("{}/v2/data-fields", mock.url());
    let delivery = run(
        &connector,
        json!({"mode": "http", "url": mock.url(), "target": target}),
    )
    .await;
    // The mock wants credentials the probe does not send: it answered, that is the point.
    assert_eq!(delivery.outcomes, [Outcome::Skipped("status 401".into())]);
    assert_eq!(delivery.report.stats.http_statuses, [401]);
}

#[tokio::test(flavor = "current_thread")]
async fn secrets_in_guest_logs_output_and_errors_are_redacted() {
    let (capture, _guard) = LogCapture::start();
    let connector = probe(loopback_egress(), Limits::default()).await;
    let secret = "hunter2-very-secret";
    let delivery = run(
        &connector,
        json!({"mode": "leak", "authentication": {"username": "leaky-user", "private_api_key": secret}}),
    )
    .await;
    let message = failure_message(&delivery.outcomes[0]);
    assert!(message.contains("[REDACTED]"), "{message}");
    let logs = capture.text();
    assert!(
        logs.contains("my config is"),
        "the guest's log line arrives: {logs}"
    );
    assert!(
        logs.contains("guest output"),
        "stdout/stderr arrive: {logs}"
    );
    for leak in [secret, "leaky-user"] {
        assert!(!message.contains(leak), "{message}");
        assert!(!logs.contains(leak), "{logs}");
    }
}

#[tokio::test]
async fn guest_logs_carry_connector_integration_and_record() {
    let (capture, _guard) = LogCapture::start();
    let connector = probe(loopback_egress(), Limits::default()).await;
    run(&connector, json!({"mode": "leak", "authentication": {}})).await;
    let logs = capture.text();
    let line = logs
        .lines()
        .find(|l| l.contains("my config is"))
        .expect("guest log line");
    for field in [
        "connector=probe",
        "connector_version=0.1.0",
        "integration=probe-1",
        "record=u1",
    ] {
        assert!(line.contains(field), "{field} missing from {line}");
    }
}

#[tokio::test]
async fn the_cache_is_scoped_to_one_integration() {
    let connector = probe(loopback_egress(), Limits::default()).await;
    let config = json!({"mode": "cache"});
    let a = connector.integration("a", &config);
    let b = connector.integration("b", &config);
    let call = |i| {
        let connector = connector.clone();
        async move { connector.deliver(&i, vec![user("k")]).await.outcomes }
    };
    assert_eq!(call(a.clone()).await, [Outcome::Skipped("call 1".into())]);
    assert_eq!(call(a.clone()).await, [Outcome::Skipped("call 2".into())]);
    assert_eq!(call(b).await, [Outcome::Skipped("call 1".into())]);
}

/// Pool slots are kept warm between calls, but every call still starts from
/// the component's pristine memory: what one call (or integration) leaves in
/// its memory, the next never sees, while a second record of the same batch
/// (same instance) does, which shows the search works.
#[tokio::test]
async fn no_call_sees_what_an_earlier_call_left_in_memory() {
    let connector = probe(loopback_egress(), Limits::default()).await;
    let config = json!({"mode": "leftover"});
    let a = connector.integration("a", &config);
    let b = connector.integration("b", &config);
    let found = |seen: bool| Outcome::Skipped(format!("leftover found={seen}"));
    let batch = connector.deliver(&a, vec![user("k1"), user("k2")]).await;
    assert_eq!(batch.outcomes, [found(false), found(true)]);
    for integration in [&a, &b, &a, &b] {
        let delivery = connector.deliver(integration, vec![user("k")]).await;
        assert_eq!(delivery.outcomes, [found(false)], "{:?}", delivery.error);
    }
}

#[tokio::test]
async fn batches_get_one_outcome_per_record_and_validation_names_fields() {
    let connector = probe(loopback_egress(), Limits::default()).await;
    assert!(connector.info().batching);
    assert_eq!(connector.info().max_batch_size, 10);
    let integration = connector.integration("p", &json!({"mode": "noop"}));
    let delivery = connector
        .deliver(&integration, vec![user("a"), user("b"), user("c")])
        .await;
    assert_eq!(delivery.outcomes.len(), 3);

    let problems = connector
        .validate(&json!({"url": "ftp://x", "mappings": [{"id": "A"}]}))
        .await
        .unwrap();
    let shown: Vec<String> = problems
        .iter()
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect();
    // The host checks the connector's schema first and, while the config
    // does not fit it, stops there …
    assert_eq!(shown, ["mode: is required"]);
    // … then hands a config that fits it to the guest's own `validate`.
    let problems = connector
        .validate(
            &json!({"mode": "noop", "url": "ftp://x", "mappings": [{"id": "A", "value": "b"}]}),
        )
        .await
        .unwrap();
    let shown: Vec<String> = problems
        .iter()
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect();
    assert_eq!(shown, ["url: must be an https URL, not a `ftp` URL"]);
}

#[tokio::test]
async fn compiled_once_then_loaded_from_the_artifact_cache() {
    let dir = tempfile::tempdir().unwrap();
    let make = || {
        prefsync::runtime::Runtime::new(prefsync::runtime::RuntimeOptions {
            artifact_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        })
        .unwrap()
    };
    let first = make().load_file(guests::PROBE.as_ref()).await.unwrap();
    assert_eq!(first.source(), prefsync::runtime::Source::Compiled);
    let again = make().load_file(guests::PROBE.as_ref()).await.unwrap();
    assert_eq!(again.source(), prefsync::runtime::Source::Cached);
    assert_eq!(first.info(), again.info());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_of_one_component_at_once_share_the_cache_safely() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = prefsync::runtime::Runtime::new(prefsync::runtime::RuntimeOptions {
        artifact_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    })
    .unwrap();
    // Nothing cached yet: all four compile and write the same artifact.
    let loads: Vec<_> = (0..4)
        .map(|_| {
            let runtime = runtime.clone();
            tokio::spawn(async move { runtime.load_file(guests::PROBE.as_ref()).await })
        })
        .collect();
    for load in loads {
        load.await.unwrap().expect("every concurrent load succeeds");
    }
    let files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        files.len(),
        1,
        "one artifact, no temporary files left: {files:?}"
    );
    assert!(files[0].ends_with(".cwasm"));
    let cached = runtime.load_file(guests::PROBE.as_ref()).await.unwrap();
    assert_eq!(cached.source(), prefsync::runtime::Source::Cached);
}

#[tokio::test]
async fn calls_per_integration_stay_within_the_declared_concurrency() {
    let mock = Dotdigital::start("u", "p", &[]).await.unwrap();
    mock.state
        .set_outage(Some(Fault::Slow(Duration::from_millis(150))));
    let connector = probe(loopback_egress(), Limits::default()).await;
    assert_eq!(connector.info().max_concurrency, 2);
    let target = format!("{}/contacts/v3/email/x", mock.url());
    let integration = connector.integration(
        "p",
        &json!({"mode": "http", "url": mock.url(), "target": target}),
    );
    let calls: Vec<_> = (0..8)
        .map(|i| {
            let connector = connector.clone();
            let integration = integration.clone();
            tokio::spawn(async move {
                connector
                    .deliver(&integration, vec![user(&format!("u{i}"))])
                    .await
            })
        })
        .collect();
    for call in calls {
        let delivery = call.await.unwrap();
        assert!(delivery.error.is_none(), "{:?}", delivery.error);
    }
    assert_eq!(mock.state.requests().len(), 8);
    assert_eq!(mock.state.peak_concurrency(), 2);
}
