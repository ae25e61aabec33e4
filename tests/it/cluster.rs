//! Three `prefsync serve` hosts on loopback sharing one PostgreSQL: events
//! posted round-robin to all three, one host SIGKILLed mid-load and started
//! again later. Every accepted event reaches the receiver (the generic
//! webhook connector), each user's state versions only go up at the
//! receiver, and duplicate deliveries are counted and bounded by what the
//! dead host can have had in flight. A version switch made on one host
//! reaches the others through the store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use prefsync_tests::guests;
use prefsync_tests::mocks::receiver::Receiver;
use prefsync_tests::support::{ServeProcess, postgres_database};
use serde_json::{Value, json};

const TOKEN: &str = "cluster-admin-token-0123456789";
const HOSTS: usize = 3;
const USERS: usize = 40;
const EVENTS: usize = 2400;
const POSTERS: usize = 4;
/// The webhook connector's `max_concurrency` × its batch size: the most
/// deliveries one host can have in flight for the integration.
const IN_FLIGHT_PER_HOST: usize = 4;

/// One host's directory and config: its own data and connector directories,
/// the shared database, short leases so a dead host's work moves on soon.
fn host_config(root: &Path, index: usize, database: &str) -> PathBuf {
    let dir = root.join(format!("host-{index}"));
    let connector_dir = dir.join("connectors");
    std::fs::create_dir_all(&connector_dir).unwrap();
    std::fs::copy(guests::WEBHOOK, connector_dir.join("webhook.wasm")).unwrap();
    std::fs::copy(guests::DOTDIGITAL, connector_dir.join("dotdigital.wasm")).unwrap();
    let config = dir.join("prefsync.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_token = \"{TOKEN}\"\n\
             [storage]\ndata_dir = {:?}\nurl = {database:?}\n\
             [connectors]\ndir = {connector_dir:?}\nwatch_interval_ms = 100\n\
             [egress]\nallow_loopback = true\nallow_http = true\n\
             [limits]\nwall_ms = 2000\n[dispatch]\nlease_ms = 2500\npoll_ms = 50\n\
             host_id = \"host-{index}\"\n",
            dir.join("data"),
        ),
    )
    .unwrap();
    config
}

fn start(config: &Path) -> ServeProcess {
    ServeProcess::start(config).expect("prefsync serve started")
}

/// Event `n`: its user and newsletter choice; later `n`, later `created_at`.
fn event_of(n: usize) -> (String, bool, Value) {
    let user = format!("member-{}@example.com", n % USERS);
    let value = !(n / USERS + n).is_multiple_of(3);
    let body = json!({
        "id": format!("cl-{n}"),
        "created_at": format!("2026-11-23T{:02}:{:02}:{:02}Z", n / 3600, (n / 60) % 60, n % 60),
        "user": {"organization_user_id": user},
        "consents": {"purposes": [{"id": "newsletter", "enabled": value}]}
    });
    (user, value, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_share_the_work_and_a_dead_one_loses_nothing() {
    let database = postgres_database().await;
    let receiver = Receiver::start(None).await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let configs: Vec<PathBuf> = (0..HOSTS)
        .map(|i| host_config(root.path(), i, &database))
        .collect();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();

    let mut hosts: Vec<Option<ServeProcess>> = Vec::new();
    for config in &configs {
        let config = config.clone();
        let process = tokio::task::spawn_blocking(move || start(&config))
            .await
            .unwrap();
        hosts.push(Some(process));
    }
    let urls: Arc<RwLock<Vec<Option<String>>>> = Arc::new(RwLock::new(
        hosts
            .iter()
            .map(|h| h.as_ref().map(|p| p.url.clone()))
            .collect(),
    ));
    let first = urls.read().unwrap()[0].clone().unwrap();
    let integration = json!({
        "id": "hook", "type_id": "webhook",
        "properties": {"url": receiver.url()},
        "mappings": [{"id": "newsletter", "value": "consents_purposes_newsletter_enabled"}],
        "retry": {"max_retries": 8, "initial_backoff_ms": 100, "multiplier": 1.0, "max_backoff_ms": 100, "jitter": 0.0}
    });
    let created = client
        .post(format!("{first}/v1/integrations"))
        .bearer_auth(TOKEN)
        .json(&integration)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);

    // Posters spread events over the live hosts and retry an event (same
    // id) on the next host until it gets its 202, as real clients would.
    let posted = Arc::new(AtomicUsize::new(0));
    let retried = Arc::new(AtomicUsize::new(0));
    let mut posters = tokio::task::JoinSet::new();
    let started = Instant::now();
    for poster in 0..POSTERS {
        let (client, urls, posted, retried) = (
            client.clone(),
            urls.clone(),
            posted.clone(),
            retried.clone(),
        );
        posters.spawn(async move {
            let mut accepted_by = [0usize; HOSTS];
            for n in (poster..EVENTS).step_by(POSTERS) {
                let (_, _, body) = event_of(n);
                let mut accepted = false;
                for attempt in 0..400 {
                    if attempt > 0 {
                        retried.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    let host = (n + attempt) % HOSTS;
                    let Some(url) = urls.read().unwrap()[host].clone() else {
                        continue;
                    };
                    let sent = client
                        .post(format!("{url}/v1/events"))
                        .bearer_auth(TOKEN)
                        .json(&body)
                        .send()
                        .await;
                    if sent.is_ok_and(|r| r.status().as_u16() == 202) {
                        accepted = true;
                        accepted_by[host] += 1;
                        break;
                    }
                }
                assert!(accepted, "event {n} was never accepted");
                posted.fetch_add(1, Ordering::SeqCst);
            }
            accepted_by
        });
    }

    // Host 1 dies a third of the way in and comes back two thirds in.
    while posted.load(Ordering::SeqCst) < EVENTS / 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    urls.write().unwrap()[1] = None;
    hosts[1].take().unwrap().kill();
    let killed_at = started.elapsed();
    while posted.load(Ordering::SeqCst) < 2 * EVENTS / 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let config = configs[1].clone();
    let restarted = tokio::task::spawn_blocking(move || start(&config))
        .await
        .unwrap();
    urls.write().unwrap()[1] = Some(restarted.url.clone());
    hosts[1] = Some(restarted);

    let mut accepted_by = [0usize; HOSTS];
    while let Some(joined) = posters.join_next().await {
        for (host, count) in joined.expect("a poster failed").iter().enumerate() {
            accepted_by[host] += count;
        }
    }
    let posting = started.elapsed();
    assert!(
        accepted_by.iter().all(|n| *n > 0),
        "every host took events: {accepted_by:?}"
    );

    // user → value of the newest event: all were accepted in the end, and
    // last-write-wins on created_at makes the newest the final state.
    let mut expected: BTreeMap<String, bool> = BTreeMap::new();
    for n in 0..EVENTS {
        let (user, value, _) = event_of(n);
        expected.insert(user, value);
    }
    let last_values = || -> BTreeMap<String, (bool, u64)> {
        receiver
            .state
            .accepted()
            .iter()
            .map(|body| {
                (
                    body["organization_user_id"].as_str().unwrap().to_string(),
                    (
                        body["properties"]["newsletter"].as_bool().unwrap(),
                        body["state_version"].as_u64().unwrap(),
                    ),
                )
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let arrived = last_values();
        let done = expected
            .iter()
            .all(|(user, value)| arrived.get(user).is_some_and(|(v, _)| v == value));
        let ready: Value = client
            .get(format!("{first}/readyz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if done && ready["queue_depth"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not everything arrived: {} of {} users, {ready}",
            expected
                .iter()
                .filter(|(u, v)| arrived.get(*u).is_some_and(|(x, _)| x == *v))
                .count(),
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drained = started.elapsed();

    // Per user, the versions the receiver got only go up; a repeat is a
    // duplicate delivery.
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    let mut duplicates = 0;
    let accepted = receiver.state.accepted();
    for body in &accepted {
        let user = body["organization_user_id"].as_str().unwrap().to_string();
        let version = body["state_version"].as_u64().unwrap();
        match last.insert(user.clone(), version) {
            Some(previous) if version < previous => {
                panic!("{user}: version {version} arrived after {previous}")
            }
            Some(previous) if version == previous => duplicates += 1,
            _ => {}
        }
    }
    // The final version each user holds in the store is the one delivered last.
    for (user, version) in &last {
        let state: Value = client
            .get(format!("{first}/v1/users/{user}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(state["version"].as_u64(), Some(*version), "{user}");
    }
    assert!(
        duplicates <= IN_FLIGHT_PER_HOST,
        "{duplicates} duplicates: more than the dead host could have had in flight"
    );
    println!(
        "cluster test: {EVENTS} events to {HOSTS} hosts on one PostgreSQL (accepted per host {accepted_by:?}, \
         {} posts retried on another host), host 1 SIGKILLed at {:.1} s and restarted; posting took {:.1} s, \
         everything delivered after {:.1} s: {} deliveries for {} users, versions only increasing per user, \
         {duplicates} duplicate deliveries (at most {IN_FLIGHT_PER_HOST} can be in flight on the dead host)",
        retried.load(Ordering::SeqCst),
        killed_at.as_secs_f64(),
        posting.as_secs_f64(),
        drained.as_secs_f64(),
        accepted.len(),
        last.len(),
    );

    // A switch made on one host reaches the others through the store.
    let upgraded = client
        .post(format!("{first}/v1/connectors"))
        .bearer_auth(TOKEN)
        .body(std::fs::read(guests::DOTDIGITAL_V2).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(upgraded.status().as_u16(), 201);
    let others: Vec<String> = urls.read().unwrap()[1..]
        .iter()
        .map(|u| u.clone().unwrap())
        .collect();
    for url in others {
        let mut followed = false;
        for _ in 0..100 {
            let state: Value = client
                .get(format!("{url}/v1/connectors/dotdigital"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if state["active"]["version"] == "0.2.0" {
                followed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(followed, "{url} did not follow the upgrade");
    }
    for host in hosts.into_iter().flatten() {
        host.kill();
    }
}
