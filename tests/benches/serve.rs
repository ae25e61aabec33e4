//! `prefsync serve` under load, as a process: delivered events/s, the
//! server's CPU time per delivered event (`/proc/<pid>/stat`), and latency
//! when paced, for one binary or two builds side by side (interleaved
//! rounds in one run, so their ratio is measured under the same conditions).
//!
//! ```text
//! cargo build --release -p prefsync && cp target/release/prefsync /tmp/prefsync-after
//! # optional: a second build to compare with, e.g. from an older commit
//! PREFSYNC_BIN=/tmp/prefsync-after PREFSYNC_BIN_BASELINE=/tmp/prefsync-before \
//!   cargo bench -p prefsync-tests --bench serve
//! ```
//!
//! Every round: a fresh data directory and mock Dotdigital; `USERS` Didomi
//! events for as many users (one each, so every event is one delivery and
//! nothing coalesces), NDJSON batches of 20 posted by 8 clients; the release
//! Dotdigital component.

use std::path::PathBuf;
use std::time::Duration;

use prefsync_tests::pipeline::{Load, Measurement, env_usize, measure_process};

/// Rounds per build and load; the median round (by delivery rate) is shown.
const ROUNDS: usize = 5;
/// Offered rate of the paced load, below every build's capacity.
const PACED_RATE: f64 = 350.0;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The round with the median delivery rate, and the range of the rates and
/// CPU figures over all rounds.
struct Summary {
    median: Measurement,
    rates: (f64, f64),
    cpu_us: (f64, f64),
}

fn summarise(mut rounds: Vec<Measurement>) -> Summary {
    rounds.sort_by(|a, b| a.delivery_rate().total_cmp(&b.delivery_rate()));
    let rates = (
        rounds[0].delivery_rate(),
        rounds[rounds.len() - 1].delivery_rate(),
    );
    let cpu: Vec<f64> = rounds
        .iter()
        .filter_map(Measurement::cpu_per_event_us)
        .collect();
    let cpu_us = (
        cpu.iter().copied().fold(f64::INFINITY, f64::min),
        cpu.iter().copied().fold(0.0, f64::max),
    );
    let median = rounds.swap_remove(rounds.len() / 2);
    Summary {
        median,
        rates,
        cpu_us,
    }
}

fn row(name: &str, s: &Summary) {
    let m = &s.median;
    println!(
        "| {name} | {:.0} [{:.0}–{:.0}] | {:.0} [{:.0}–{:.0}] | {:.1} | {:.1} | {:.1} | {} |",
        m.delivery_rate(),
        s.rates.0,
        s.rates.1,
        m.cpu_per_event_us().unwrap_or(f64::NAN),
        s.cpu_us.0,
        s.cpu_us.1,
        ms(m.percentile(50.0)),
        ms(m.percentile(99.0)),
        ms(m.percentile(100.0)),
        m.mock_requests
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let bin = PathBuf::from(std::env::var_os("PREFSYNC_BIN").ok_or_else(|| {
        anyhow::anyhow!("set PREFSYNC_BIN to a release build of prefsync (see the header)")
    })?);
    let mut builds = vec![("PREFSYNC_BIN", bin)];
    if let Some(baseline) = std::env::var_os("PREFSYNC_BIN_BASELINE") {
        builds.push(("PREFSYNC_BIN_BASELINE", PathBuf::from(baseline)));
    }
    let users = env_usize("PREFSYNC_BENCH_USERS", 5_000);
    let rounds = env_usize("PREFSYNC_BENCH_ROUNDS", ROUNDS).max(1);
    let saturated = Load {
        users,
        events_per_post: 20,
        posters: 8,
        rate: None,
        deadline: Duration::from_secs(300),
    };
    let paced = Load {
        rate: Some(PACED_RATE),
        ..saturated
    };
    // Warm the page cache and the artifact cache's directory of each build.
    for (_, bin) in &builds {
        measure_process(
            bin,
            Load {
                users: 200,
                ..saturated
            },
        )
        .await?;
    }
    println!(
        "## prefsync serve: {users} events for {users} users, NDJSON batches of 20, 8 clients\n"
    );
    for (title, load) in [("Saturated", saturated), ("Paced at 350 events/s", paced)] {
        let mut results: Vec<Vec<Measurement>> = vec![Vec::new(); builds.len()];
        for _ in 0..rounds {
            for (index, (_, bin)) in builds.iter().enumerate() {
                results[index].push(measure_process(bin, load).await?);
            }
        }
        println!("### {title}: median of {rounds} interleaved rounds [min–max]\n");
        println!(
            "| build | delivered/s | server CPU µs per event | p50 ms | p99 ms | max ms | mock requests |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        let summaries: Vec<Summary> = results.into_iter().map(summarise).collect();
        for ((name, _), summary) in builds.iter().zip(&summaries) {
            row(name, summary);
        }
        if let [after, before] = summaries.as_slice() {
            let (a, b) = (&after.median, &before.median);
            println!(
                "\nPREFSYNC_BIN / PREFSYNC_BIN_BASELINE: delivered/s {:.2}×; CPU per event {:.2}×; \
                 p50 {:.2}×; p99 {:.2}×.\n",
                a.delivery_rate() / b.delivery_rate(),
                a.cpu_per_event_us().unwrap_or(f64::NAN) / b.cpu_per_event_us().unwrap_or(f64::NAN),
                a.percentile(50.0).as_secs_f64() / b.percentile(50.0).as_secs_f64(),
                a.percentile(99.0).as_secs_f64() / b.percentile(99.0).as_secs_f64(),
            );
        } else {
            println!();
        }
    }
    Ok(())
}
