//! Scale-out benchmark: 1, 2 and 3 `prefsync serve` processes sharing one
//! PostgreSQL, in one run. Each round: a fresh database, the hosts, a
//! webhook integration to a receiver on loopback, `EVENTS` Didomi events for
//! as many users (one each, so nothing coalesces) posted round-robin to the
//! hosts by 8 clients in NDJSON batches of 20; measured: events accepted per
//! second, deliveries per second until the last one arrived, and the hosts'
//! CPU time per delivered event (`/proc/<pid>/stat`, all hosts together).
//! With `PREFSYNC_BIN_BASELINE` set, the two builds run in interleaved
//! rounds, so their ratio is measured under the same conditions.
//!
//! ```text
//! cargo build --release -p prefsync
//! dir=$(mktemp -d /tmp/prefsync-pg.XXXXXX)
//! export PREFSYNC_TEST_POSTGRES=$(PREFSYNC_PG_FSYNC=on ./scripts/postgres.sh start "$dir")
//! PREFSYNC_BIN=$PWD/target/release/prefsync [PREFSYNC_BIN_BASELINE=/tmp/prefsync-before] \
//!   cargo bench -p prefsync-tests --bench cluster
//! ./scripts/postgres.sh stop "$dir"
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use prefsync_tests::guests;
use prefsync_tests::mocks::receiver::Receiver;
use prefsync_tests::pipeline::env_usize;
use prefsync_tests::support::{ServeProcess, postgres_database, process_cpu};
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

#[derive(Clone)]
struct Round {
    ingest_per_s: f64,
    delivered_per_s: f64,
    deliveries: usize,
    /// The hosts' CPU time (user + system, all hosts) per delivered event.
    cpu_per_event_us: Option<f64>,
}

/// CPU time so far of every process in `pids`.
fn hosts_cpu(pids: &[u32]) -> Option<Duration> {
    pids.iter().map(|pid| process_cpu(*pid)).sum()
}

async fn round(bin: &Path, hosts: usize) -> Round {
    let database = postgres_database().await;
    let receiver = Receiver::start(None).await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let mut processes = Vec::new();
    for index in 0..hosts {
        let config = host_config(root.path(), index, &database);
        let bin = bin.to_path_buf();
        processes.push(
            tokio::task::spawn_blocking(move || ServeProcess::start_binary(&bin, &config, "info"))
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

    let pids: Vec<u32> = processes.iter().map(ServeProcess::pid).collect();
    let cpu_before = hosts_cpu(&pids);
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
    let cpu = hosts_cpu(&pids)
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    for process in processes {
        process.kill();
    }
    Round {
        cpu_per_event_us: cpu.map(|cpu| cpu.as_secs_f64() * 1e6 / EVENTS as f64),
        ingest_per_s: EVENTS as f64 / ingested.as_secs_f64(),
        delivered_per_s: EVENTS as f64 / delivered.as_secs_f64(),
        deliveries: receiver.state.accepted().len(),
    }
}

fn median(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    (
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
    )
}

#[tokio::main]
async fn main() {
    let mut builds = vec![(
        "PREFSYNC_BIN",
        std::env::var_os("PREFSYNC_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(prefsync_tests::support::prefsync_bin),
    )];
    if let Some(baseline) = std::env::var_os("PREFSYNC_BIN_BASELINE") {
        builds.push(("PREFSYNC_BIN_BASELINE", PathBuf::from(baseline)));
    }
    let rounds = env_usize("PREFSYNC_BENCH_ROUNDS", 3).max(1);
    println!(
        "Median of {rounds} interleaved rounds [min–max]; CPU is the hosts' (all of them), per delivered event.\n"
    );
    println!(
        "| build | hosts | events accepted/s | delivered/s (until the last) | host CPU µs per event | deliveries |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for hosts in 1..=3 {
        let mut results: Vec<Vec<Round>> = vec![Vec::new(); builds.len()];
        for _ in 0..rounds {
            for (index, (_, bin)) in builds.iter().enumerate() {
                results[index].push(round(bin, hosts).await);
            }
        }
        // Per build: the medians of accepted/s, delivered/s and CPU per event.
        let mut medians = Vec::new();
        for ((name, _), rs) in builds.iter().zip(&results) {
            let ingest = median(rs.iter().map(|r| r.ingest_per_s).collect());
            let delivered = median(rs.iter().map(|r| r.delivered_per_s).collect());
            let cpu = median(rs.iter().filter_map(|r| r.cpu_per_event_us).collect());
            medians.push((ingest.0, delivered.0, cpu.0));
            println!(
                "| {name} | {hosts} | {:.0} [{:.0}–{:.0}] | {:.0} [{:.0}–{:.0}] | {:.0} [{:.0}–{:.0}] | {} |",
                ingest.0,
                ingest.1,
                ingest.2,
                delivered.0,
                delivered.1,
                delivered.2,
                cpu.0,
                cpu.1,
                cpu.2,
                rs.iter().map(|r| r.deliveries).min().unwrap_or(0),
            );
        }
        if let [after, before] = medians.as_slice() {
            println!(
                "| PREFSYNC_BIN / PREFSYNC_BIN_BASELINE | {hosts} | {:.2}× | {:.2}× | {:.2}× | |",
                after.0 / before.0,
                after.1 / before.1,
                after.2 / before.2
            );
        }
    }
}
