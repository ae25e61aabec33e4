//! Pipeline benchmark: events/s from `POST /v1/events` to the mock
//! Dotdigital, and per-event latency percentiles, through the Dotdigital
//! component and through the same connector logic linked natively, in one
//! run, on loopback, each round with a fresh SQLite file and mock.
//!
//! ```text
//! cargo bench -p prefsync-tests --bench pipeline
//! PREFSYNC_BENCH_USERS=500 cargo bench -p prefsync-tests --bench pipeline   # quicker
//! ```

use std::sync::Arc;
use std::time::Duration;

use prefsync::runtime::{Destination, Limits};
use prefsync_tests::guests;
use prefsync_tests::native::NativeConnector;
use prefsync_tests::pipeline::{Load, Measurement, measure};
use prefsync_tests::support::{loopback_egress, runtime};

const ROUNDS: usize = 3;
/// Well below the saturated delivery rate, so latency is the pipeline's own.
const PACED_RATE: f64 = 400.0;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn row(name: &str, m: &Measurement) {
    println!(
        "| {name} | {} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
        m.users,
        m.ingest_rate(),
        m.delivery_rate(),
        ms(m.percentile(50.0)),
        ms(m.percentile(90.0)),
        ms(m.percentile(99.0)),
        ms(m.percentile(100.0)),
        m.mock_requests
    );
}

/// The round with the median delivery rate.
fn median(mut rounds: Vec<Measurement>) -> Measurement {
    rounds.sort_by(|a, b| a.delivery_rate().total_cmp(&b.delivery_rate()));
    rounds.swap_remove(rounds.len() / 2)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let users = std::env::var("PREFSYNC_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let load = Load {
        users,
        events_per_post: 20,
        posters: 4,
        rate: None,
        deadline: Duration::from_secs(300),
    };
    let component: Arc<dyn Destination> = runtime(loopback_egress(), Limits::default())
        .load_file(guests::DOTDIGITAL.as_ref())
        .await?;
    let native: Arc<dyn Destination> = Arc::new(
        NativeConnector::<prefsync_dotdigital::Dotdigital>::new(loopback_egress())?,
    );

    // Warm both paths (artifact cache, connection pools, SQLite pages).
    let warm = Load { users: 100, ..load };
    measure(component.clone(), warm).await?;
    measure(native.clone(), warm).await?;

    println!("## Pipeline: POST /v1/events → SQLite → dispatcher → connector → mock Dotdigital\n");
    let paced = Load {
        rate: Some(PACED_RATE),
        ..load
    };
    for (title, load) in [
        ("Saturated: events posted as fast as they are taken", load),
        (
            "Paced: events offered at a steady rate below capacity",
            paced,
        ),
    ] {
        let (mut wasm_rounds, mut native_rounds) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            wasm_rounds.push(measure(component.clone(), load).await?);
            native_rounds.push(measure(native.clone(), load).await?);
        }
        let offered = load
            .rate
            .map(|r| format!("offered at {r:.0} events/s"))
            .unwrap_or_else(|| "unpaced".into());
        println!("### {title}\n");
        println!(
            "{} users, one event each, {} events per POST (NDJSON), {} posting clients, {offered}; \
             median of {ROUNDS} interleaved rounds by delivery rate.\n",
            load.users, load.events_per_post, load.posters
        );
        println!(
            "| connector | events | accepted/s | delivered/s | p50 ms | p90 ms | p99 ms | max ms | mock requests |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        let (wasm, native) = (median(wasm_rounds), median(native_rounds));
        row("Wasm component", &wasm);
        row("native (same logic)", &native);
        println!(
            "\nNative / Wasm: delivered/s {:.2}×; p50 latency Wasm / native {:.2}×, p99 {:.2}×.\n",
            native.delivery_rate() / wasm.delivery_rate(),
            wasm.percentile(50.0).as_secs_f64() / native.percentile(50.0).as_secs_f64(),
            wasm.percentile(99.0).as_secs_f64() / native.percentile(99.0).as_secs_f64()
        );
    }
    Ok(())
}
