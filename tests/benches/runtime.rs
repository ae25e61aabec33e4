//! Runtime benchmark: compile vs. load-from-cache time of a component, and
//! instantiate + `deliver` of no-op batches of 1, 10 and 100 records
//! against the same connector logic linked natively, measured in one run,
//! with each wasm call's time split into its steps (`CallPhases`).
//!
//! ```text
//! cargo bench -p prefsync-tests --bench runtime
//! ```

use std::time::{Duration, Instant};

use prefsync::runtime::{
    CallPhases, ConsentRecord, Limits, PoolTuning, Runtime, RuntimeOptions, Value,
};
use prefsync_sdk::testing::MockHost;
use prefsync_tests::guests;
use prefsync_tests::support::record;
use serde_json::json;

const LOADS: usize = 5;
/// Records delivered per batch size (20,000 calls of one record, 200 of 100).
const RECORDS: usize = 20_000;
const BATCH_SIZES: &[usize] = &[1, 10, 100];
const WARM_UP: usize = 200;

fn stats(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let mean = samples.iter().map(|d| us(*d)).sum::<f64>() / samples.len() as f64;
    let p50 = us(samples[samples.len() / 2]);
    let p99 = us(samples[samples.len() * 99 / 100]);
    (mean, p50, p99)
}

async fn load_times(path: &str, cache: &std::path::Path) -> (f64, f64) {
    let bytes = std::fs::read(path).unwrap();
    let mut compile = Vec::new();
    for _ in 0..LOADS {
        let rt = Runtime::new(RuntimeOptions::default()).unwrap();
        let start = Instant::now();
        rt.load(bytes.clone()).await.unwrap();
        compile.push(start.elapsed());
    }
    let options = RuntimeOptions {
        artifact_dir: Some(cache.to_path_buf()),
        ..Default::default()
    };
    Runtime::new(options.clone())
        .unwrap()
        .load(bytes.clone())
        .await
        .unwrap();
    let mut cached = Vec::new();
    for _ in 0..LOADS {
        let rt = Runtime::new(options.clone()).unwrap();
        let start = Instant::now();
        let connector = rt.load(bytes.clone()).await.unwrap();
        cached.push(start.elapsed());
        assert_eq!(connector.source(), prefsync::runtime::Source::Cached);
    }
    (stats(compile).0 / 1000.0, stats(cached).0 / 1000.0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cache = std::env::temp_dir().join(format!("prefsync-bench-{}", std::process::id()));
    // `PREFSYNC_BENCH_CALLS_ONLY=1` skips the loads (compiling dominates a
    // profile of the whole run).
    if std::env::var_os("PREFSYNC_BENCH_CALLS_ONLY").is_none() {
        println!("## Component load (mean of {LOADS}, ms)\n");
        println!("| component | size | compile | from cache | ratio |");
        println!("|---|---:|---:|---:|---:|");
        for (name, path) in [("dotdigital", guests::DOTDIGITAL), ("probe", guests::PROBE)] {
            let size = std::fs::metadata(path).unwrap().len();
            let (compile, cached) = load_times(path, &cache).await;
            println!(
                "| {name} | {} KiB | {compile:.1} | {cached:.2} | {:.0}× |",
                size / 1024,
                compile / cached
            );
        }
    }

    // One record with a realistic property set, three mappings.
    let properties: Vec<(String, Value)> = (0..12)
        .map(|i| {
            (
                format!("consents_purposes_p{i}_enabled"),
                Value::Boolean(i % 2 == 0),
            )
        })
        .chain([
            (
                "consents_channels_email_enabled".to_string(),
                Value::Boolean(true),
            ),
            ("metadata_firstname".to_string(), Value::Text("Ann".into())),
        ])
        .collect();
    let borrowed: Vec<(&str, Value)> = properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let host_record = record("ann@example.com", &borrowed);
    let config = json!({
        "mode": "noop",
        "mappings": [
            {"id": "NEWSLETTER", "value": "consents_purposes_p0_enabled"},
            {"id": "EMAIL_OPTIN", "value": "consents_channels_email_enabled"},
            {"id": "FIRSTNAME", "value": "metadata_firstname"}
        ]
    });

    let host_batch = |size: usize| -> Vec<ConsentRecord> {
        (0..size)
            .map(|i| {
                let mut r = host_record.clone();
                r.key = format!("user{i}@example.com");
                r
            })
            .collect()
    };
    // Each pool setting in its own runtime, measured one after the other.
    let mut wasm = Vec::new();
    for (label, tuning) in [
        (
            "wasm, cold slots",
            PoolTuning {
                keep_resident: false,
            },
        ),
        ("wasm, warm slots", PoolTuning::default()),
    ] {
        let options = RuntimeOptions {
            limits: Limits::default(),
            artifact_dir: Some(cache.clone()),
            ..Default::default()
        };
        let rt = Runtime::with_pool_tuning(options, tuning).unwrap();
        let connector = rt.load_file(guests::PROBE.as_ref()).await.unwrap();
        let integration = connector.integration("bench", &config);
        for _ in 0..WARM_UP {
            connector.deliver(&integration, host_batch(1)).await;
        }
        for &size in BATCH_SIZES {
            let calls = RECORDS / size;
            let mut run = Run::new(label, size, calls);
            for _ in 0..calls {
                let batch = host_batch(size);
                let start = Instant::now();
                let delivery = connector.deliver(&integration, batch).await;
                run.totals.push(start.elapsed());
                assert!(delivery.error.is_none(), "{:?}", delivery.error);
                assert_eq!(delivery.outcomes.len(), size);
                run.phases.push(delivery.report.phases);
            }
            wasm.push(run);
        }
    }

    // The same connector code (config parse + check + mapping), linked natively.
    let sdk_record = |key: &str| {
        prefsync_sdk::ConsentRecord::new(
            "organization_user_id",
            key,
            &std::iter::once((
                "organization_user_id",
                prefsync_sdk::Value::Text(key.into()),
            ))
            .chain(properties.iter().map(|(k, v)| {
                let v = match v {
                    Value::Boolean(b) => prefsync_sdk::Value::Boolean(*b),
                    Value::Text(t) => prefsync_sdk::Value::Text(t.clone()),
                    _ => prefsync_sdk::Value::Null,
                };
                (k.as_str(), v)
            }))
            .collect::<Vec<_>>(),
        )
    };
    let config_text = config.to_string();
    let host = MockHost::new();
    let mut native = Vec::new();
    for &size in BATCH_SIZES {
        let calls = RECORDS / size;
        let mut run = Run::new("native", size, calls);
        for _ in 0..calls {
            let batch: Vec<_> = (0..size)
                .map(|i| sdk_record(&format!("user{i}@example.com")))
                .collect();
            let start = Instant::now();
            let outcomes = prefsync_sdk::connector::deliver::<prefsync_probe::Probe>(
                &host,
                &config_text,
                &batch,
            );
            run.totals.push(start.elapsed());
            assert_eq!(std::hint::black_box(outcomes).len(), size);
        }
        native.push(run);
    }

    println!("\n## No-op `deliver` on the probe guest ({RECORDS} records per batch size, µs)\n");
    println!(
        "| path | batch | calls | mean/call | p50/call | p99/call | mean/record | p50/record | p99/record |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for run in wasm.iter().chain(&native) {
        let (mean, p50, p99) = stats(run.totals.clone());
        let n = run.size as f64;
        println!(
            "| {} | {} | {} | {mean:.2} | {p50:.2} | {p99:.2} | {:.2} | {:.2} | {:.2} |",
            run.label,
            run.size,
            run.totals.len(),
            mean / n,
            p50 / n,
            p99 / n
        );
    }

    println!("\n## Where a wasm call's time goes (mean per call, µs)\n");
    println!(
        "| slots | batch | store + WASI ctx | instantiate | call | teardown | sum | measured outside |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for run in &wasm {
        let mean = |f: fn(&CallPhases) -> Duration| {
            run.phases
                .iter()
                .map(|p| f(p).as_secs_f64() * 1e6)
                .sum::<f64>()
                / run.phases.len() as f64
        };
        let (store, instantiate, call, teardown) = (
            mean(|p| p.store),
            mean(|p| p.instantiate),
            mean(|p| p.call),
            mean(|p| p.teardown),
        );
        println!(
            "| {} | {} | {store:.2} | {instantiate:.2} | {call:.2} | {teardown:.2} | {:.2} | {:.2} |",
            run.label,
            run.size,
            store + instantiate + call + teardown,
            stats(run.totals.clone()).0
        );
    }

    println!("\n## Wasm / native, mean per record\n");
    for w in &wasm {
        let n = native.iter().find(|n| n.size == w.size).unwrap();
        println!(
            "- {}, batch of {}: {:.1}×",
            w.label,
            w.size,
            stats(w.totals.clone()).0 / stats(n.totals.clone()).0
        );
    }
    let _ = std::fs::remove_dir_all(&cache);
}

/// The samples of one batch size.
struct Run {
    label: &'static str,
    size: usize,
    totals: Vec<Duration>,
    phases: Vec<CallPhases>,
}

impl Run {
    fn new(label: &'static str, size: usize, calls: usize) -> Self {
        Run {
            label,
            size,
            totals: Vec::with_capacity(calls),
            phases: Vec::with_capacity(calls),
        }
    }
}
