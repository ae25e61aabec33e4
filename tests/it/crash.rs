//! Crash test: real `prefsync serve` processes killed with SIGKILL at random
//! moments under load — concurrent clients posting, a slow destination so
//! deliveries are in flight — and restarted on the same data directory.
//! Clients retry an event until it gets its 202, as real ones do. Every
//! event must be reflected at the destination; duplicate deliveries are
//! counted and reported (at-least-once allows them).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use prefsync_tests::guests;
use prefsync_tests::mocks::MockServer;
use prefsync_tests::mocks::dotdigital::{Dotdigital, Fault, FieldType};
use prefsync_tests::support::ServeProcess;
use serde_json::{Value, json};

const TOKEN: &str = "crash-admin-token-0123456789";
const USERS: usize = 20;
const EVENTS: usize = 400;
const RESTARTS: usize = 3;
const POSTERS: usize = 4;

/// Event `n`'s user and newsletter choice (deterministic, so a failing run
/// can be repeated).
fn event_of(n: usize) -> (String, bool) {
    let mut rng = Lcg(n as u64 * 7919 + 1);
    (
        format!("user{}@example.com", rng.next(USERS as u64)),
        rng.next(2) == 1,
    )
}

fn start(dir: &Path) -> (ServeProcess, String) {
    let process = ServeProcess::start(&dir.join("prefsync.toml")).expect("prefsync serve started");
    let url = process.url.clone();
    (process, url)
}

/// A tiny deterministic generator, so a failing run can be repeated.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

/// A Dotdigital mock, and a directory whose `prefsync.toml` serves the
/// Dotdigital connector with `server` added to `[server]` and `tail` (the
/// `[limits]` and `[dispatch]` of the test) at the end.
async fn dotdigital_host(server: &str, tail: &str) -> (MockServer<Dotdigital>, tempfile::TempDir) {
    let mock = Dotdigital::start(
        "apiuser-1@apiconnector.com",
        "pw-0123456789",
        &[("NEWSLETTER", FieldType::Boolean)],
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let connector_dir = dir.path().join("connectors");
    std::fs::create_dir_all(&connector_dir).unwrap();
    std::fs::copy(guests::DOTDIGITAL, connector_dir.join("dotdigital.wasm")).unwrap();
    std::fs::write(
        dir.path().join("prefsync.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_token = \"{TOKEN}\"\n{server}[storage]\ndata_dir = {:?}\n\
             [connectors]\ndir = {:?}\n[egress]\nallow_loopback = true\nallow_http = true\n{tail}",
            dir.path().join("data"),
            connector_dir
        ),
    )
    .unwrap();
    (mock, dir)
}

/// Creates the integration `dd` against the mock.
async fn create_integration(client: &reqwest::Client, url: &str, mock: &MockServer<Dotdigital>) {
    let integration = json!({
        "id": "dd", "type_id": "dotdigital",
        "authentication": {"url": mock.url(), "username": "apiuser-1@apiconnector.com", "password": "pw-0123456789"},
        "mappings": [{"id": "NEWSLETTER", "value": "consents_purposes_newsletter_enabled"}],
        "upsert_mode": true
    });
    let created = client
        .post(format!("{url}/v1/integrations"))
        .bearer_auth(TOKEN)
        .json(&integration)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_hosts_lose_no_accepted_event() {
    // Short leases so work of a killed host is taken over within seconds.
    let (mock, dir) = dotdigital_host(
        "",
        "[limits]\nwall_ms = 2000\n[dispatch]\nlease_ms = 2500\npoll_ms = 50\n",
    )
    .await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    let (mut child, url) = start(dir.path());
    create_integration(&client, &url, &mock).await;

    // Every delivery takes a while, so kills land while some are in flight
    // and their leases must be taken over after the restart.
    mock.state
        .set_outage(Some(Fault::Slow(Duration::from_millis(40))));

    // Posters run concurrently, as clients would, and retry an event (same
    // id) until it gets its 202: across a crash the retry must be harmless.
    let url = Arc::new(RwLock::new(url));
    let retried = Arc::new(AtomicUsize::new(0));
    let mut posters = tokio::task::JoinSet::new();
    for poster in 0..POSTERS {
        let (client, url, retried) = (client.clone(), url.clone(), retried.clone());
        posters.spawn(async move {
            for n in (poster..EVENTS).step_by(POSTERS) {
                // Spread the posts over the kills (about 3 s in all).
                tokio::time::sleep(Duration::from_millis(30)).await;
                let (user, value) = event_of(n);
                let body = json!({
                    "id": format!("ev-{n}"),
                    "created_at": format!("2026-11-23T{:02}:{:02}:{:02}Z", n / 3600, (n / 60) % 60, n % 60),
                    "user": {"organization_user_id": user},
                    "consents": {"purposes": [{"id": "newsletter", "enabled": value}]}
                });
                let mut accepted = false;
                for attempt in 0..400 {
                    if attempt > 0 {
                        retried.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(25)).await;
                    }
                    let target = format!("{}/v1/events", url.read().unwrap());
                    let sent = client.post(target).bearer_auth(TOKEN).json(&body).send().await;
                    if sent.is_ok_and(|r| r.status().as_u16() == 202) {
                        accepted = true;
                        break;
                    }
                }
                assert!(accepted, "event {n} was never accepted");
            }
        });
    }

    // Meanwhile, kill the host without warning at random moments.
    let mut rng = Lcg(0x5eed);
    for _ in 0..RESTARTS {
        tokio::time::sleep(Duration::from_millis(300 + rng.next(700))).await;
        child.kill();
        let config = dir.path().join("prefsync.toml");
        child = tokio::task::spawn_blocking(move || ServeProcess::start(&config))
            .await
            .unwrap()
            .expect("prefsync serve restarted");
        *url.write().unwrap() = child.url.clone();
    }
    while let Some(joined) = posters.join_next().await {
        joined.expect("a poster failed");
    }
    let url = url.read().unwrap().clone();
    // user → value of the newest event: all were accepted in the end, and
    // last-write-wins on created_at makes the newest one the final state.
    let expected: BTreeMap<String, bool> = (0..EVENTS).map(event_of).collect();

    // Everything accepted must arrive: wait for the queue to drain.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready: Value = client
            .get(format!("{url}/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ready["queue_depth"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "queue did not drain: {ready}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill();

    for (user, value) in &expected {
        let contact = mock
            .state
            .contact(user)
            .unwrap_or_else(|| panic!("{user} never arrived"));
        assert_eq!(
            contact.data_fields.get("NEWSLETTER"),
            Some(&json!(value)),
            "{user}"
        );
    }
    // A duplicate: a PATCH that repeats the previous one for the same user.
    let mut last: BTreeMap<String, Value> = BTreeMap::new();
    let patches = mock.state.requests_with("PATCH");
    let duplicates = patches
        .iter()
        .filter(|p| last.insert(p.path.clone(), p.body.clone()).as_ref() == Some(&p.body))
        .count();
    println!(
        "crash test: {EVENTS} events from {POSTERS} concurrent clients for {} users, {RESTARTS} SIGKILLs, \
         {} posts retried across a crash, {} deliveries, {duplicates} duplicate deliveries",
        expected.len(),
        retried.load(Ordering::SeqCst),
        patches.len()
    );
}

/// A stop waits at most `[server] shutdown_grace_ms` for a destination that
/// answers slowly, exits 0, and the delivery it cut short is still owed
/// (leased, neither done nor dead-lettered) when the host comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_keeps_its_grace_and_loses_no_delivery() {
    let (mock, dir) = dotdigital_host(
        "shutdown_grace_ms = 500\n",
        "[limits]\nwall_ms = 60000\nrequest_timeout_ms = 60000\n[dispatch]\nlease_ms = 120000\npoll_ms = 50\n",
    )
    .await;
    // Slower than the grace (and than the 5 s the stop is given below), well
    // within the call's own limits.
    mock.state
        .set_outage(Some(Fault::Slow(Duration::from_secs(8))));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let (server, url) = start(dir.path());
    create_integration(&client, &url, &mock).await;
    let event = json!({
        "id": "ev-grace", "created_at": "2026-11-23T10:00:00Z",
        "user": {"organization_user_id": "ann@example.com"},
        "consents": {"purposes": [{"id": "newsletter", "enabled": true}]}
    });
    let posted = client
        .post(format!("{url}/v1/events"))
        .bearer_auth(TOKEN)
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status().as_u16(), 202);
    let deliveries = |url: String| {
        let client = client.clone();
        async move {
            client
                .get(format!("{url}/v1/deliveries?integration=dd"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    // The delivery is in flight: the destination has the request.
    let deadline = Instant::now() + Duration::from_secs(20);
    while mock.state.requests().is_empty() {
        assert!(Instant::now() < deadline, "the delivery never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(deliveries(url.clone()).await[0]["status"], "in_flight");

    let asked = Instant::now();
    let (clean, log) = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    let took = asked.elapsed();
    assert!(clean, "the stop did not exit 0:\n{log}");
    assert!(
        took < Duration::from_secs(5),
        "the stop took {took:?}, past its 500 ms grace:\n{log}"
    );
    assert!(log.contains("shutdown grace elapsed"), "{log}");

    // Back up: the delivery is still owed, under the lease the stopped host
    // took (it is delivered again when that ends), and nothing is dead.
    let (server, url) = start(dir.path());
    let rows = deliveries(url.clone()).await;
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    assert_eq!(rows[0]["status"], "in_flight", "{rows}");
    assert_eq!(rows[0]["acked_version"], 0, "{rows}");
    let dead: Value = client
        .get(format!("{url}/v1/dead-letters"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(dead, json!([]));
    server.kill();
}
