//! The peer benchmark: the same consent events, one per user, delivered to
//! the same loopback mock Dotdigital by four sides, in one run, interleaved
//! round by round:
//!
//! - **prefsync**: a `prefsync serve` process (SQLite, the Dotdigital
//!   component), events posted by 8 clients as NDJSON batches of 20
//!   (saturated) or one per POST (paced);
//! - **segment**: Segment's actions engine (`@segment/actions-core`) running
//!   its Dotdigital destination's "Add or Update Contact" action through
//!   `Destination.onEvent`, 8 events in flight, in a Node process of its own;
//! - **plain**: a keep-alive Node client PATCHing the mock, 8 in flight;
//! - **wrk**: `wrk` PATCHing the mock, 8 connections (the loopback ceiling).
//!
//! ```text
//! ./scripts/bench-peer.sh        # builds, installs the pinned npm packages, runs this
//! ```
//!
//! The Node sides run `tests/benches/peer/side.mjs` with a loopback guard
//! installed first: any connection or lookup to a host that is not a
//! loopback literal is refused before a socket exists, and a refusal aborts
//! the run. Segment's settings must name a real Dotdigital region; its fetch
//! is rewritten to the mock, and the guard is what makes sure of it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use prefsync_tests::mocks::MockServer;
use prefsync_tests::mocks::dotdigital::{Dotdigital, FieldType};
use prefsync_tests::pipeline::{Load, env_usize, measure_process, percentile};
use prefsync_tests::support::process_cpu;
use serde_json::Value as Json;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

/// The credentials `side.mjs` sends (Basic auth, as Dotdigital documents).
const API_USER: &str = "demo-apiuser@apiconnector.com";
const API_PASSWORD: &str = "demo-password";
/// Offered rate of the paced load, below every side's capacity.
const PACED_RATE: f64 = 350.0;
/// Requests in flight for every side.
const IN_FLIGHT: usize = 8;

/// What one side did in one round.
#[derive(Debug, Clone)]
struct Round {
    events: usize,
    /// First event sent → last delivery.
    elapsed: Duration,
    /// CPU time (user + system) of the side's process over the round; `None`
    /// where it is not the side's work (wrk is the load generator).
    cpu: Option<Duration>,
    /// Per event, sorted. prefsync: its POST sent → its contact written at
    /// the mock; the Node sides: the call → its answer; wrk: its own figures.
    p50: Duration,
    p99: Duration,
    /// Requests the mock answered per event.
    requests_per_event: f64,
}

impl Round {
    fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }

    fn cpu_us(&self) -> Option<f64> {
        self.cpu
            .map(|cpu| cpu.as_secs_f64() * 1e6 / self.events as f64)
    }
}

async fn start_mock() -> Result<MockServer<Dotdigital>> {
    let mock = Dotdigital::start(
        API_USER,
        API_PASSWORD,
        &[("NEWSLETTER", FieldType::Boolean)],
    )
    .await
    .context("starting the mock Dotdigital")?;
    ensure!(
        mock.addr.ip().is_loopback(),
        "the mock is not on loopback: {}",
        mock.addr
    );
    Ok(mock)
}

/// Saturated, events go in NDJSON batches of 20 (how a backlog arrives);
/// paced, one event per POST, as a Didomi webhook sends them and as the other
/// sides take them: a batch of 20 would queue its own events behind each other.
async fn prefsync_side(bin: &Path, events: usize, rate: Option<f64>) -> Result<Round> {
    let m = measure_process(
        bin,
        Load {
            users: events,
            events_per_post: if rate.is_some() { 1 } else { 20 },
            posters: IN_FLIGHT,
            rate,
            deadline: Duration::from_secs(300),
        },
    )
    .await?;
    Ok(Round {
        events,
        elapsed: m.end_to_end,
        cpu: m.server_cpu,
        p50: m.percentile(50.0),
        p99: m.percentile(99.0),
        requests_per_event: m.mock_requests as f64 / events as f64,
    })
}

/// Runs `side.mjs MODE` against a fresh mock and checks that every user
/// reached it with the newsletter field set.
async fn node_side(dir: &Path, mode: &str, events: usize, rate: Option<f64>) -> Result<Round> {
    let mock = start_mock().await?;
    let mut command = tokio::process::Command::new("node");
    command
        .arg(dir.join("side.mjs"))
        .arg(mode)
        .current_dir(dir)
        .env("PEER_MOCK_URL", mock.url())
        .env("PEER_EVENTS", events.to_string())
        .env("PEER_IN_FLIGHT", IN_FLIGHT.to_string())
        .env("PEER_MAX_SECONDS", "300")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if let Some(rate) = rate {
        command.env("PEER_RATE", rate.to_string());
    }
    let mut child = command
        .spawn()
        .context("starting node (is Node.js 20+ on the PATH?)")?;
    let pid = child.id().context("the node side exited at once")?;
    let mut stdin = child.stdin.take().expect("piped");
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut next_message = async || -> Result<Json> {
        while let Some(line) = lines.next_line().await? {
            if let Ok(message) = serde_json::from_str::<Json>(&line)
                && message.get("peer").is_some()
            {
                return Ok(message);
            }
        }
        bail!("the {mode} side exited without a word")
    };
    let ready = next_message().await?;
    ensure!(ready["peer"] == "ready", "the {mode} side: {ready}");
    let cpu_before = process_cpu(pid);
    let started = Instant::now();
    stdin.write_all(b"go\n").await?;
    stdin.flush().await?;
    let done = tokio::time::timeout(Duration::from_secs(300), next_message())
        .await
        .with_context(|| format!("the {mode} side took over 300 s"))??;
    let cpu_after = process_cpu(pid);
    let wall = started.elapsed();
    // A side that refused or failed may still be sending: stop it now.
    if done["peer"] == "done" {
        let _ = child.wait().await;
    } else {
        let _ = child.kill().await;
    }
    match done["peer"].as_str() {
        Some("done") => {}
        Some("refused") => bail!(
            "the loopback guard refused {} to {} in the {mode} side: run aborted",
            done["what"],
            done["host"]
        ),
        _ => bail!("the {mode} side failed: {}", done["message"]),
    }
    let result = &done["result"];
    ensure!(
        result["refused"].as_array().is_some_and(Vec::is_empty),
        "the loopback guard refused connections in the {mode} side: {}",
        result["refused"]
    );
    ensure!(
        result["failed"] == 0,
        "the {mode} side failed {} of {events} events: {}",
        result["failed"],
        result["errors"]
    );
    let contacts = mock.state.contacts();
    ensure!(
        contacts.len() == events
            && contacts
                .iter()
                .all(|c| c.data_fields.get("NEWSLETTER") == Some(&Json::Bool(true))),
        "the {mode} side left {} of {events} contacts at the mock, not all with NEWSLETTER true",
        contacts.len()
    );
    let mut latencies: Vec<Duration> = result["latencies_ms"]
        .as_array()
        .context("latencies_ms")?
        .iter()
        .filter_map(Json::as_f64)
        .map(|ms| Duration::from_secs_f64(ms / 1e3))
        .collect();
    latencies.sort();
    ensure!(
        latencies.len() == events,
        "the {mode} side timed {} events",
        latencies.len()
    );
    let elapsed = result["elapsed_ms"]
        .as_f64()
        .map(|ms| Duration::from_secs_f64(ms / 1e3))
        .unwrap_or(wall);
    Ok(Round {
        events,
        elapsed,
        cpu: cpu_before
            .zip(cpu_after)
            .map(|(before, after)| after.saturating_sub(before)),
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
        requests_per_event: mock.state.requests().len() as f64 / events as f64,
    })
}

/// `wrk` PATCHing the mock (a new contact per request, as the other sides
/// write) for `seconds`, 8 connections on one thread. Its rate is requests/s.
async fn wrk_side(dir: &Path, seconds: u64) -> Result<Round> {
    let mock = start_mock().await?;
    let output = tokio::process::Command::new("wrk")
        .args(["-t1", "-c8", "--latency", "-d"])
        .arg(format!("{seconds}s"))
        .arg("-s")
        .arg(dir.join("patch.lua"))
        .arg(mock.url())
        .kill_on_drop(true)
        .output()
        .await
        .context("running wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    ensure!(output.status.success(), "wrk failed: {text}");
    let number = |prefix: &str| -> Option<&str> {
        text.lines()
            .map(str::trim)
            .find_map(|line| line.strip_prefix(prefix))
            .map(str::trim)
    };
    let requests: f64 = number("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's output: {text}"))?;
    ensure!(
        !text.contains("Non-2xx"),
        "the mock refused some of wrk's requests: {text}"
    );
    let duration = |v: &str| -> Option<Duration> {
        let (n, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic())?);
        let n: f64 = n.parse().ok()?;
        let scale = match unit {
            "us" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            _ => return None,
        };
        Some(Duration::from_secs_f64(n * scale))
    };
    let p50 = number("50%").and_then(duration).context("wrk's 50%")?;
    let p99 = number("99%").and_then(duration).context("wrk's 99%")?;
    let events = mock.state.requests().len();
    ensure!(events > 0, "wrk sent nothing");
    Ok(Round {
        events,
        elapsed: Duration::from_secs_f64(events as f64 / requests),
        cpu: None,
        p50,
        p99,
        requests_per_event: 1.0,
    })
}

const SIDES: [&str; 4] = ["prefsync", "segment", "plain", "wrk"];

/// The median round by rate, and the range over all rounds.
fn row(name: &str, rounds: &[Round], does_not: &str) {
    let mut sorted = rounds.to_vec();
    sorted.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
    let m = &sorted[sorted.len() / 2];
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let cpu: Vec<f64> = rounds.iter().filter_map(Round::cpu_us).collect();
    let cpu = match m.cpu_us() {
        Some(median) => format!(
            "{median:.0} [{:.0}–{:.0}]",
            cpu.iter().copied().fold(f64::INFINITY, f64::min),
            cpu.iter().copied().fold(0.0, f64::max)
        ),
        None => "—".into(),
    };
    println!(
        "| {name} | {:.0} [{:.0}–{:.0}] | {cpu} | {:.1} | {:.1} | {:.2} | {does_not} |",
        m.rate(),
        sorted[0].rate(),
        sorted[sorted.len() - 1].rate(),
        ms(m.p50),
        ms(m.p99),
        m.requests_per_event,
    );
}

/// prefsync's rate over each other side's, per round: median [min–max].
fn ratios(rounds: &[[Round; 4]], paced: bool) {
    for (index, other) in SIDES.iter().enumerate().skip(1) {
        if paced && *other == "wrk" {
            continue;
        }
        let mut r: Vec<f64> = rounds
            .iter()
            .map(|round| round[0].rate() / round[index].rate())
            .collect();
        r.sort_by(f64::total_cmp);
        println!(
            "- prefsync / {other}: {:.3} [{:.3}–{:.3}]",
            r[r.len() / 2],
            r[0],
            r[r.len() - 1]
        );
    }
    if paced {
        let mut p: Vec<(f64, f64)> = rounds
            .iter()
            .map(|round| {
                (
                    round[0].p50.as_secs_f64() / round[1].p50.as_secs_f64(),
                    round[0].p99.as_secs_f64() / round[1].p99.as_secs_f64(),
                )
            })
            .collect();
        p.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (p50, p99) = p[p.len() / 2];
        println!("- latency prefsync / segment (median round): p50 {p50:.2}×, p99 {p99:.2}×");
    }
    println!();
}

const DOES_NOT: [&str; 4] = [
    "durable (SQLite, fsync before 202), per-user ordering, retries and dead letters, audit",
    "in memory: no durability, no retries, no ordering; 2 requests per event (data-field check + PATCH)",
    "nothing but the PATCH: no mapping, no durability, no retries",
    "one fixed request shape, the loopback ceiling: no event at all",
];

#[tokio::main]
async fn main() -> Result<()> {
    let bin = PathBuf::from(std::env::var_os("PREFSYNC_BIN").ok_or_else(|| {
        anyhow::anyhow!(
            "set PREFSYNC_BIN to a release build of prefsync (./scripts/bench-peer.sh does)"
        )
    })?);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peer");
    ensure!(
        dir.join("node_modules/@segment/action-destinations")
            .is_dir(),
        "the Segment packages are not installed: run `npm ci` in {} (./scripts/bench-peer.sh does)",
        dir.display()
    );
    let events = env_usize("PREFSYNC_BENCH_USERS", 5_000);
    let rounds = env_usize("PREFSYNC_BENCH_ROUNDS", 5).max(3);
    let wrk_seconds = env_usize("PREFSYNC_BENCH_WRK_SECONDS", 5) as u64;

    // Warm-up: page cache, node's module cache, the artifact cache.
    prefsync_side(&bin, 200, None).await?;
    node_side(&dir, "segment", 200, None).await?;
    node_side(&dir, "plain", 200, None).await?;

    println!(
        "## Peer benchmark: {events} events for {events} users, {IN_FLIGHT} in flight, \
         median of {rounds} interleaved rounds [min–max]\n"
    );
    for (title, rate) in [
        ("Saturated", None),
        ("Paced at 350 events/s", Some(PACED_RATE)),
    ] {
        let mut all: Vec<[Round; 4]> = Vec::new();
        for round in 0..rounds {
            let prefsync = prefsync_side(&bin, events, rate).await?;
            let segment = node_side(&dir, "segment", events, rate).await?;
            let plain = node_side(&dir, "plain", events, rate).await?;
            eprint!(
                "{title} round {}: prefsync {:.0}/s, segment {:.0}/s, plain {:.0}/s",
                round + 1,
                prefsync.rate(),
                segment.rate(),
                plain.rate(),
            );
            // wrk has no pacing: the paced table has no wrk row, and this
            // stand-in is never shown.
            let wrk = if rate.is_none() {
                let wrk = wrk_side(&dir, wrk_seconds).await?;
                eprint!(", wrk {:.0}/s", wrk.rate());
                wrk
            } else {
                plain.clone()
            };
            eprintln!();
            all.push([prefsync, segment, plain, wrk]);
        }
        println!("### {title}\n");
        println!(
            "| side | delivered events/s | CPU µs per event | p50 ms | p99 ms | mock requests per event | what it does not do |"
        );
        println!("|---|---:|---:|---:|---:|---:|---|");
        for (index, name) in SIDES.iter().enumerate() {
            if rate.is_some() && *name == "wrk" {
                continue;
            }
            let side: Vec<Round> = all.iter().map(|r| r[index].clone()).collect();
            row(name, &side, DOES_NOT[index]);
        }
        println!("\nRatios within each round, median [min–max]:\n");
        ratios(&all, rate.is_some());
    }
    Ok(())
}
