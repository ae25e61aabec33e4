//! Crash test: real `prefsync serve` processes killed with SIGKILL at random
//! moments under load and restarted on the same data directory. Every event
//! that got a 202 must be reflected at the destination; duplicate
//! deliveries are counted and reported (at-least-once allows them).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use prefsync_tests::guests;
use prefsync_tests::mocks::dotdigital::{Dotdigital, FieldType};
use prefsync_tests::support::ServeProcess;
use serde_json::{Value, json};

const TOKEN: &str = "crash-admin-token-0123456789";
const USERS: usize = 20;
const EVENTS: usize = 400;
const RESTARTS: usize = 3;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_hosts_lose_no_accepted_event() {
    let mock = Dotdigital::start(
        "apiuser-1@apiconnector.com",
        "pw-0123456789",
        &[("NEWSLETTER", FieldType::Boolean)],
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(guests::DOTDIGITAL, plugins.join("dotdigital.wasm")).unwrap();
    // Short leases so work of a killed host is taken over within seconds.
    std::fs::write(
        dir.path().join("prefsync.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_token = \"{TOKEN}\"\n[storage]\ndata_dir = {:?}\n[plugins]\ndir = {:?}\n\
             [egress]\nallow_loopback = true\nallow_http = true\n[limits]\nwall_ms = 2000\n[dispatch]\nlease_ms = 2500\npoll_ms = 50\n",
            dir.path().join("data"),
            plugins
        ),
    )
    .unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    let (mut child, mut url) = start(dir.path());
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

    let mut rng = Lcg(0x5eed);
    // user → (created_at second, value) of the newest event that got a 202.
    let mut accepted: BTreeMap<String, (u64, bool)> = BTreeMap::new();
    let kill_points: Vec<usize> = (1..=RESTARTS)
        .map(|i| i * EVENTS / (RESTARTS + 1) + rng.next(40) as usize)
        .collect();
    let mut rejected_by_crash = 0;
    for n in 0..EVENTS {
        if kill_points.contains(&n) {
            // Let some deliveries get under way, then kill without warning.
            tokio::time::sleep(Duration::from_millis(rng.next(200))).await;
            child.kill();
            (child, url) = start(dir.path());
        }
        let user = format!("user{}@example.com", rng.next(USERS as u64));
        let value = rng.next(2) == 1;
        let second = n as u64;
        let body = json!({
            "id": format!("ev-{n}"),
            "created_at": format!("2026-11-23T{:02}:{:02}:{:02}Z", second / 3600, (second / 60) % 60, second % 60),
            "user": {"organization_user_id": user},
            "consents": {"purposes": [{"id": "newsletter", "enabled": value}]}
        });
        match client
            .post(format!("{url}/v1/events"))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
        {
            Ok(r) if r.status().as_u16() == 202 => {
                accepted.insert(user, (second, value));
            }
            _ => rejected_by_crash += 1,
        }
    }

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

    for (user, (_, value)) in &accepted {
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
        "crash test: {EVENTS} events, {} accepted users, {rejected_by_crash} refused while a host was down, \
         {RESTARTS} SIGKILLs, {} deliveries, {duplicates} duplicate deliveries",
        accepted.len(),
        patches.len()
    );
}
