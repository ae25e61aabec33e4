//! The whole pipeline under load, on loopback: events posted to
//! `POST /v1/events`, committed to a real SQLite file, claimed by the
//! dispatcher, delivered through a connector to the mock Dotdigital. The
//! server runs in this process ([`measure`]: the `pipeline` benchmark, with
//! the component and with the same logic linked natively) or as a
//! `prefsync serve` process ([`measure_process`]: the `serve` benchmark,
//! which also reads the server's CPU time); a test keeps both working at a
//! small size.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use prefsync::config::HostConfig;
use prefsync::runtime::Destination;
use prefsync::serve::{Connectors, Registry, Server};
use serde_json::json;

use crate::mocks::MockServer;
use crate::mocks::dotdigital::{Dotdigital, FieldType};
use crate::support::{ServeProcess, loopback_egress, process_cpu};

const TOKEN: &str = "pipeline-bench-admin-token";
const API_USER: &str = "apiuser-bench@apiconnector.com";
const API_PASSWORD: &str = "bench-Secret-Pw";

/// How much load to send, and how.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Distinct users, one event each: every event is a delivery.
    pub users: usize,
    /// Events per `POST /v1/events` (NDJSON when more than one).
    pub events_per_post: usize,
    /// Clients posting at once.
    pub posters: usize,
    /// Events per second to offer, spread evenly; `None` posts as fast as
    /// the server takes them (then latency is mostly time in the queue).
    pub rate: Option<f64>,
    /// Longest wait for the mock to hold every user.
    pub deadline: Duration,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Measurement {
    pub users: usize,
    /// From the first POST to the last 202.
    pub ingest: Duration,
    /// From the first POST to the last write at the mock.
    pub end_to_end: Duration,
    /// Per user: its POST sent → its contact written at the mock, sorted.
    pub latencies: Vec<Duration>,
    /// Requests the mock answered (one per delivery attempt).
    pub mock_requests: usize,
    /// CPU time (user + system) the server process used from the first
    /// POST to the last delivery; `None` for a server in this process.
    pub server_cpu: Option<Duration>,
}

impl Measurement {
    /// Events accepted per second.
    pub fn ingest_rate(&self) -> f64 {
        self.users as f64 / self.ingest.as_secs_f64()
    }

    /// Events delivered per second, end to end.
    pub fn delivery_rate(&self) -> f64 {
        self.users as f64 / self.end_to_end.as_secs_f64()
    }

    /// The server's CPU time per delivered event, in µs.
    pub fn cpu_per_event_us(&self) -> Option<f64> {
        self.server_cpu
            .map(|cpu| cpu.as_secs_f64() * 1e6 / self.users as f64)
    }

    /// The `p`-th percentile latency (0 < p ≤ 100).
    pub fn percentile(&self, p: f64) -> Duration {
        percentile(&self.latencies, p)
    }
}

/// The `p`-th percentile (0 < p ≤ 100, nearest rank) of `sorted`, which
/// holds at least one value.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs `load` through a fresh server in this process (its own data
/// directory) and a fresh mock, delivering through `destination`.
pub async fn measure(destination: Arc<dyn Destination>, load: Load) -> Result<Measurement> {
    check(load)?;
    let mock = start_mock().await?;
    let data_dir = fresh_dir();
    let mut config = HostConfig::default();
    config.server.listen = "127.0.0.1:0".parse().expect("a socket address");
    config.server.admin_token = Some(TOKEN.into());
    config.storage.data_dir = data_dir.clone();
    config.egress = loopback_egress();
    let registry = Registry::default();
    registry.insert(destination);
    let server = Server::start(config, Connectors::Fixed(Arc::new(registry))).await?;
    let base = format!("http://{}", server.addr());
    let result = drive(&base, &mock, load, || None).await;
    server.stop().await?;
    let _ = std::fs::remove_dir_all(&data_dir);
    result
}

/// Runs `load` through a fresh `prefsync serve` process of the binary `bin`
/// (its own data directory, the built Dotdigital component, the default
/// log level) and a fresh mock, and reads the process's CPU time.
pub async fn measure_process(bin: &Path, load: Load) -> Result<Measurement> {
    check(load)?;
    let mock = start_mock().await?;
    let dir = fresh_dir();
    let connectors = dir.join("connectors");
    std::fs::create_dir_all(&connectors)?;
    std::fs::copy(
        crate::guests::DOTDIGITAL,
        connectors.join("dotdigital.wasm"),
    )?;
    let config = dir.join("prefsync.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_token = \"{TOKEN}\"\n\
             [storage]\ndata_dir = {:?}\n[connectors]\ndir = {connectors:?}\n\
             [egress]\nallow_loopback = true\nallow_http = true\n",
            dir.join("data"),
        ),
    )?;
    let server = ServeProcess::start_binary(bin, &config, "info")
        .map_err(|log| anyhow::anyhow!("{} serve did not start:\n{log}", bin.display()))?;
    let pid = server.pid();
    let result = drive(&server.url, &mock, load, move || process_cpu(pid)).await;
    let (clean, log) = server.terminate();
    let _ = std::fs::remove_dir_all(&dir);
    ensure!(
        clean,
        "{} serve did not stop cleanly:\n{log}",
        bin.display()
    );
    result
}

/// A benchmark's size setting from the environment (`PREFSYNC_BENCH_USERS`
/// and the like), or `default` when unset or not a number.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn check(load: Load) -> Result<()> {
    ensure!(
        load.users > 0 && load.events_per_post > 0 && load.posters > 0,
        "load needs users, events per post and posters"
    );
    Ok(())
}

async fn start_mock() -> Result<MockServer<Dotdigital>> {
    Dotdigital::start(
        API_USER,
        API_PASSWORD,
        &[("NEWSLETTER", FieldType::Boolean)],
    )
    .await
    .context("starting the mock Dotdigital")
}

fn fresh_dir() -> PathBuf {
    std::env::temp_dir().join(format!(
        "prefsync-pipeline-{}-{}",
        std::process::id(),
        NEXT_RUN.fetch_add(1, Ordering::SeqCst)
    ))
}

/// Creates the integration on the server at `base`, posts `load` and waits
/// for every user at the mock; `server_cpu` reads the server's CPU time.
async fn drive(
    base: &str,
    mock: &MockServer<Dotdigital>,
    load: Load,
    server_cpu: impl Fn() -> Option<Duration>,
) -> Result<Measurement> {
    let client = reqwest::Client::new();
    let integration = json!({
        "type_id": "dotdigital",
        "authentication": {"url": mock.url(), "username": API_USER, "password": API_PASSWORD},
        "properties": {},
        "mappings": [{"id": "NEWSLETTER", "value": "consents_purposes_newsletter_enabled"}],
        "upsert_mode": true
    });
    let created = client
        .post(format!("{base}/v1/integrations"))
        .bearer_auth(TOKEN)
        .json(&integration)
        .send()
        .await?;
    ensure!(
        created.status() == 201,
        "creating the integration: {} {}",
        created.status(),
        created.text().await.unwrap_or_default()
    );

    let cpu_before = server_cpu();
    let (sent, ingest) = post_events(&client, base, load).await?;
    let started = *sent.values().min().expect("at least one user");
    let deadline = Instant::now() + load.deadline;
    // Polls a count, not the contacts: cloning them every 2 ms took CPU
    // from the server on a 2-core machine, more the more users there were.
    loop {
        let written = mock.state.contact_count();
        if written >= load.users {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "only {written} of {} users reached the mock within {:?}",
                load.users,
                load.deadline
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let cpu_after = server_cpu();
    let contacts = mock.state.contacts();
    let mut latencies = Vec::with_capacity(contacts.len());
    let mut last_write = started;
    for contact in &contacts {
        let posted = sent
            .get(&contact.value)
            .with_context(|| format!("the mock holds an unknown user {}", contact.value))?;
        latencies.push(contact.written_at.saturating_duration_since(*posted));
        last_write = last_write.max(contact.written_at);
    }
    latencies.sort();
    Ok(Measurement {
        users: load.users,
        ingest,
        end_to_end: last_write - started,
        latencies,
        mock_requests: mock.state.requests().len(),
        server_cpu: cpu_before
            .zip(cpu_after)
            .map(|(before, after)| after.saturating_sub(before)),
    })
}

static NEXT_RUN: AtomicUsize = AtomicUsize::new(0);

/// Posts one event per user from `load.posters` clients; returns when each
/// user's POST was sent, and how long until the last 202.
async fn post_events(
    client: &reqwest::Client,
    base: &str,
    load: Load,
) -> Result<(HashMap<String, Instant>, Duration)> {
    let users: Vec<String> = (0..load.users)
        .map(|i| format!("user-{i:06}@example.com"))
        .collect();
    let chunks: Arc<Vec<Vec<String>>> = Arc::new(
        users
            .chunks(load.events_per_post)
            .map(|c| c.to_vec())
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let (rate, per_post) = (load.rate, load.events_per_post);
    let started = Instant::now();
    let mut posters = tokio::task::JoinSet::new();
    for _ in 0..load.posters {
        let (chunks, next, client, url) = (
            chunks.clone(),
            next.clone(),
            client.clone(),
            format!("{base}/v1/events"),
        );
        posters.spawn(async move {
            let mut sent = Vec::new();
            // Each poster takes the next chunk until none is left.
            loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(chunk) = chunks.get(index) else {
                    break;
                };
                if let Some(rate) = rate {
                    let due = started + Duration::from_secs_f64((index * per_post) as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let body: String = chunk
                    .iter()
                    .map(|user| {
                        json!({
                            "id": format!("ev-{user}"),
                            "created_at": "2026-11-23T10:00:00Z",
                            "status": "confirmed",
                            "user": {"organization_user_id": user},
                            "consents": {"purposes": [{"id": "newsletter", "enabled": true}]}
                        })
                        .to_string()
                            + "\n"
                    })
                    .collect();
                let at = Instant::now();
                let response = client
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .header("content-type", "application/x-ndjson")
                    .body(body)
                    .send()
                    .await?;
                ensure!(
                    response.status() == 202,
                    "POST /v1/events answered {}: {}",
                    response.status(),
                    response.text().await.unwrap_or_default()
                );
                sent.extend(chunk.iter().map(|user| (user.clone(), at)));
            }
            anyhow::Ok(sent)
        });
    }
    let mut sent = HashMap::with_capacity(load.users);
    while let Some(joined) = posters.join_next().await {
        sent.extend(joined.context("a poster panicked")??);
    }
    Ok((sent, started.elapsed()))
}
