//! Runtime benchmark: compile vs. load-from-cache time of a component, and
//! instantiate + `deliver` of a no-op batch per call against the same
//! connector logic linked natively, measured in one run.
//!
//! ```text
//! cargo bench -p prefsync-tests --bench runtime
//! ```

use std::time::{Duration, Instant};

use prefsync::runtime::{Limits, Runtime, RuntimeOptions, Value};
use prefsync_sdk::testing::MockHost;
use prefsync_tests::guests;
use prefsync_tests::support::record;
use serde_json::json;

const LOADS: usize = 5;
const CALLS: usize = 5_000;

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

    let rt = Runtime::new(RuntimeOptions {
        limits: Limits::default(),
        artifact_dir: Some(cache.clone()),
        ..Default::default()
    })
    .unwrap();
    let connector = rt.load_file(guests::PROBE.as_ref()).await.unwrap();
    let integration = connector.integration("bench", &config);
    for _ in 0..200 {
        connector
            .deliver(&integration, vec![host_record.clone()])
            .await;
    }
    let mut wasm = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let batch = vec![host_record.clone()];
        let start = Instant::now();
        let delivery = connector.deliver(&integration, batch).await;
        wasm.push(start.elapsed());
        assert!(delivery.error.is_none());
    }

    // The same connector code (config parse + check + mapping), linked natively.
    let sdk_record = prefsync_sdk::ConsentRecord::new(
        "organization_user_id",
        "ann@example.com",
        &std::iter::once((
            "organization_user_id",
            prefsync_sdk::Value::Text("ann@example.com".into()),
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
    );
    let config_text = config.to_string();
    let host = MockHost::new();
    let mut native = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let batch = vec![sdk_record.clone()];
        let start = Instant::now();
        let outcomes =
            prefsync_sdk::connector::deliver::<prefsync_probe::Probe>(&host, &config_text, &batch);
        native.push(start.elapsed());
        std::hint::black_box(outcomes);
    }

    let (w_mean, w_p50, w_p99) = stats(wasm);
    let (n_mean, n_p50, n_p99) = stats(native);
    println!("\n## One no-op `deliver` of a 1-record batch ({CALLS} calls, µs)\n");
    println!("| path | mean | p50 | p99 |");
    println!("|---|---:|---:|---:|");
    println!(
        "| wasm: fresh store + instantiate + deliver | {w_mean:.1} | {w_p50:.1} | {w_p99:.1} |"
    );
    println!("| native: same connector code linked in | {n_mean:.2} | {n_p50:.2} | {n_p99:.2} |");
    println!("\nratio wasm / native (mean): {:.0}×", w_mean / n_mean);
    let _ = std::fs::remove_dir_all(&cache);
}
