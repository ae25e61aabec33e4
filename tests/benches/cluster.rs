//! Scale-out benchmark: 1, 2 and 3 `prefsync serve` processes sharing one
//! PostgreSQL, in one run. Each round: a fresh database, the hosts, a
//! webhook integration to a receiver on loopback, `EVENTS` Didomi events for
//! as many users (one each, so nothing coalesces) posted round-robin to the
//! hosts by 8 clients in NDJSON batches of 20; measured: events accepted per
//! second, and deliveries per second until the last one arrived.
//!
//! ```text
//! cargo build --release -p prefsync
//! dir=$(mktemp -d /tmp/prefsync-pg.XXXXXX)
//! export PREFSYNC_TEST_POSTGRES=$(PREFSYNC_PG_FSYNC=on ./scripts/postgres.sh start "$dir")
//! PREFSYNC_BIN=target/release/prefsync cargo bench -p prefsync-tests --bench cluster
//! ./scripts/postgres.sh stop "$dir"
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use prefsync_tests::guests;
use prefsync_tests::mocks::receiver::Receiver;
use prefsync_tests::support::{ServeProcess, postgres_database};
use serde_json::json;

const TOKEN: &str = "bench-admin-token-0123456789";
const EVENTS: usize = 6_000;
const BATCH: usize = 20;
const CLIENTS: usize = 8;

fn host_config(root: &Path, index: usize, database: &str) -> PathBuf {
    let dir = root.join(format!("host-{index}"));
    let connector_dir = dir.join("connectors");
    std::fs::create_dir_all(&connector_dir).unwrap();
    std::fs::copy(guests::WEBHOOK, connector_dir.join("webhook.wasm")).unwrap();
    let config = dir.join("prefsync.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_token = \"{TOKEN}\"\n\
             [storage]\ndata_dir = {:?}\nurl = {database:?}\n[connectors]\ndir = {connector_dir:?}\n\
             [egress]\nallow_loopback = true\nallow_http = true\n[dispatch]\npoll_ms = 20\n\
             host_id = \"bench-{index}\"\n",
            dir.join("data"),
        ),
    )
    .unwrap();
    config
}

struct Round {
    hosts: usize,
    ingest_per_s: f64,
    delivered_per_s: f64,
    deliveries: usize,
}

async fn round(hosts: usize) -> Round {
    let database = postgres_database().await;
    let receiver = Receiver::start(None).await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut processes = Vec::new();
    for index in 0..hosts {
        let config = host_config(root.path(), index, &database);
        processes.push(
            tokio::task::spawn_blocking(move || ServeProcess::start(&config))
                .await
                .unwrap()
                .expect("prefsync serve started"),
        );
    }
    let urls: Arc<Vec<String>> = Arc::new(processes.iter().map(|p| p.url.clone()).collect());
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{}/v1/integrations", urls[0]))
        .bearer_auth(TOKEN)
        .json(&json!({
            "id": "hook", "type_id": "webhook",
            "properties": {"url": receiver.url()},
            "mappings": [{"id": "newsletter", "value": "consents_purposes_newsletter_enabled"}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);

    let next_batch = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..CLIENTS {
        let (client, urls, next_batch) = (client.clone(), urls.clone(), next_batch.clone());
        clients.spawn(async move {
            loop {
                let batch = next_batch.fetch_add(1, Ordering::SeqCst);
                if batch * BATCH >= EVENTS {
                    break;
                }
                let body: Vec<String> = (batch * BATCH..(batch + 1) * BATCH)
                    .map(|n| {
                        json!({
                            "id": format!("b-{n}"),
                            "created_at": "2026-11-23T10:00:00Z",
                            "user": {"organization_user_id": format!("u{n}@example.com")},
                            "consents": {"purposes": [{"id": "newsletter", "enabled": n % 2 == 0}]}
                        })
                        .to_string()
                    })
                    .collect();
                let response = client
                    .post(format!("{}/v1/events", urls[batch % urls.len()]))
                    .bearer_auth(TOKEN)
                    .header("content-type", "application/x-ndjson")
                    .body(body.join("\n"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status().as_u16(), 202);
            }
        });
    }
    while let Some(done) = clients.join_next().await {
        done.unwrap();
    }
    let ingested = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    while receiver.state.accepted().len() < EVENTS {
        assert!(Instant::now() < deadline, "deliveries did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered = started.elapsed();
    for process in processes {
        process.kill();
    }
    Round {
        hosts,
        ingest_per_s: EVENTS as f64 / ingested.as_secs_f64(),
        delivered_per_s: EVENTS as f64 / delivered.as_secs_f64(),
        deliveries: receiver.state.accepted().len(),
    }
}

#[tokio::main]
async fn main() {
    println!("| hosts | events accepted/s | delivered/s (until the last) | deliveries |");
    println!("|---|---|---|---|");
    for hosts in 1..=3 {
        let r = round(hosts).await;
        println!(
            "| {} | {:.0} | {:.0} | {} |",
            r.hosts, r.ingest_per_s, r.delivered_per_s, r.deliveries
        );
    }
}
