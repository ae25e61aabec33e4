//! Activation (reverse ETL) benchmark: `prefsync activation run` diffing and
//! sending a CSV model of `ACTIVATION_BENCH_ROWS` rows (1,000,000 by
//! default) to a mock Selligent Engage, and the same at a tenth of the size,
//! in one run, so the two can be compared.
//!
//! Real processes, as in production: the `prefsync-mocks engage` mock on
//! loopback, and the `prefsync` binary (`PREFSYNC_BIN`, see below) running
//! the activation in the foreground on a fresh SQLite store (WAL,
//! `synchronous=FULL`) with the release Selligent component. Per size, three
//! runs of the same activation:
//!
//! 1. every row new: all inserted;
//! 2. the CSV rewritten with 1% of the rows changed (every 100th row, one
//!    attribute each, the four attributes in turn): exactly those updated;
//! 3. nothing changed: nothing sent.
//!
//! Each run's counts (rows read, inserted, updated, unchanged, failed,
//! skipped, batches) are read from the CLI's summary and checked, so the
//! figures cannot silently measure the wrong thing. Measured per run: wall
//! time from spawn to exit (process start and component load included); peak
//! RSS, the largest `VmHWM` of `/proc/<pid>/status` polled every 20 ms; and,
//! from the same polls (so up to 20 ms short), `prefsync`'s CPU time and the
//! bytes it wrote to storage (`/proc/<pid>/io`), with the mock's CPU time
//! over the run. Each size starts from an empty data directory, so its first
//! run also compiles the component (no precompiled artifact yet), as a new
//! installation's first run does.
//!
//! ```text
//! cargo build --release -p prefsync
//! PREFSYNC_BIN=$PWD/target/release/prefsync cargo bench -p prefsync-tests --bench activation
//! ACTIVATION_BENCH_ROWS=20000 PREFSYNC_BIN=$PWD/target/release/prefsync \
//!     cargo bench -p prefsync-tests --bench activation      # a quick check
//! ```

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prefsync_tests::guests;
use prefsync_tests::support::{mocks_bin, prefsync_bin};
use serde_json::json;

/// Rows per `data/load` (the integration's `batch_size`), and so per `sync` call.
const BATCH_SIZE: u64 = 1_000;
/// One row in this many is changed before the second run.
const CHANGE_EVERY: u64 = 100;
const POLL: Duration = Duration::from_millis(20);

// The `prefsync-mocks engage` list (see `tests/mocks/src/main.rs`).
const API_KEY: &str = "demo-key";
const API_SECRET: &str = "demo-secret";
const ORGANIZATION: &str = "DEMO";
const LIST: &str = "USERS";

const FIRST_NAMES: [&str; 8] = ["Ann", "Bob", "Cid", "Dee", "Eve", "Fay", "Gus", "Hal"];
const CITIES: [&str; 8] = [
    "Lyon", "Paris", "Nantes", "Lille", "Brest", "Rennes", "Nice", "Metz",
];
const PLANS: [&str; 4] = ["free", "basic", "pro", "enterprise"];

/// Row `i` of the model; `changed`: as rewritten for the second run (every
/// `CHANGE_EVERY`th row has one attribute changed, the four in turn).
fn write_row(out: &mut impl Write, i: u64, changed: bool) -> std::io::Result<()> {
    let spread = i.wrapping_mul(2_654_435_761);
    let mut first_name = format!("{}{}", FIRST_NAMES[(spread % 8) as usize], i % 1000);
    let mut city = CITIES[((spread >> 8) % 8) as usize];
    let mut age = 18 + (spread >> 16) % 70;
    let mut plan = PLANS[((spread >> 24) % 4) as usize];
    if changed && i.is_multiple_of(CHANGE_EVERY) {
        match (i / CHANGE_EVERY) % 4 {
            0 => first_name.push_str("-2"),
            1 => city = CITIES[(((spread >> 8) + 1) % 8) as usize],
            2 => age += 1,
            _ => plan = PLANS[(((spread >> 24) + 1) % 4) as usize],
        }
    }
    writeln!(
        out,
        "user{i:07}@example.com,{first_name},{city},{age},{plan}"
    )
}

fn write_csv(path: &Path, rows: u64, changed: bool) {
    let mut out = BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(out, "email,first_name,city,age,plan").unwrap();
    for i in 0..rows {
        write_row(&mut out, i, changed).unwrap();
    }
    out.flush().unwrap();
}

/// Rows the second run must send: those `write_row` changes.
fn changed_rows(rows: u64) -> u64 {
    rows.div_ceil(CHANGE_EVERY)
}

/// What `/proc` tells of a running process.
#[derive(Debug, Default, Clone, Copy)]
struct ProcSample {
    /// `VmHWM`: peak resident set so far, in KiB.
    peak_rss_kib: u64,
    /// User + system CPU time so far.
    cpu: Duration,
    /// Bytes it caused to be written to storage so far (`write_bytes`).
    written: u64,
}

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`, 100 on Linux).
const USER_HZ: u64 = 100;

fn proc_sample(pid: u32) -> Option<ProcSample> {
    let field = |text: &str, name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime is the 14th
    // field of the line, stime the 15th.
    let after_comm: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks =
        after_comm.get(11)?.parse::<u64>().ok()? + after_comm.get(12)?.parse::<u64>().ok()?;
    Some(ProcSample {
        // Gone once the process has exited (a zombie has no memory).
        peak_rss_kib: field(&status, "VmHWM:")?,
        cpu: Duration::from_millis(ticks * 1000 / USER_HZ),
        written: field(&io, "write_bytes:").unwrap_or(0),
    })
}

/// The mock Engage API, its own process; killed (without printing its list) when dropped.
struct Mock {
    child: Child,
    /// `http://127.0.0.1:PORT/Portal/Api`.
    url: String,
}

impl Mock {
    fn start() -> Mock {
        let mut child = Command::new(mocks_bin())
            .args(["engage", "--seconds", "86400", "--no-record"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning prefsync-mocks engage");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("mock engage listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from the mock: {line:?}"))
            .to_string();
        Mock { child, url }
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What `prefsync activation run` printed in its summary table.
#[derive(Debug, Default, PartialEq)]
struct Counts {
    read: u64,
    inserted: u64,
    updated: u64,
    unchanged: u64,
    failed: u64,
    skipped: u64,
    batches: u64,
}

fn parse_summary(stdout: &str) -> Counts {
    let count = |label: &str| -> u64 {
        stdout
            .lines()
            .find_map(|l| l.trim_start().strip_prefix(label))
            .and_then(|rest| rest.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `{label}` count in the summary:\n{stdout}"))
    };
    Counts {
        read: count("rows read"),
        inserted: count("inserted"),
        updated: count("updated"),
        unchanged: count("unchanged"),
        failed: count("failed"),
        skipped: count("skipped"),
        batches: count("batches sent"),
    }
}

struct Measured {
    wall: Duration,
    /// `prefsync`'s last sample before it exited (at most `POLL` old), its
    /// `VmHWM` the largest seen.
    process: ProcSample,
    /// CPU time the mock spent during the run.
    mock_cpu: Duration,
    counts: Counts,
    /// The run's own duration as the host reports it (without process start).
    host_seconds: f64,
}

/// Runs `prefsync activation run <activation> --config <config>` and
/// measures it; panics unless it succeeded.
fn run_activation(activation: &Path, config: &Path, mock: &Mock) -> Measured {
    let mock_before = proc_sample(mock.child.id()).expect("the mock is running");
    let started = Instant::now();
    let mut child = Command::new(prefsync_bin())
        .arg("activation")
        .arg("run")
        .arg(activation)
        .arg("--config")
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning prefsync activation run");
    let pid = child.id();
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped")));
    let mut last = ProcSample::default();
    let status = loop {
        if let Some(sample) = proc_sample(pid) {
            last = ProcSample {
                peak_rss_kib: last.peak_rss_kib.max(sample.peak_rss_kib),
                ..sample
            };
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(POLL);
    };
    let wall = started.elapsed();
    let mock_after = proc_sample(mock.child.id()).expect("the mock is running");
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    assert!(
        status.success(),
        "prefsync activation run failed ({status}):\n{stdout}\n{stderr}"
    );
    let host_seconds = stdout
        .lines()
        .next()
        .and_then(|l| l.split(" succeeded in ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("the run did not succeed:\n{stdout}\n{stderr}"));
    Measured {
        wall,
        process: last,
        mock_cpu: mock_after.cpu.saturating_sub(mock_before.cpu),
        counts: parse_summary(&stdout),
        host_seconds,
    }
}

/// The temp dir's host config, integration and activation; the activation's path and the config's.
fn write_configs(root: &Path, mock_url: &str, csv: &Path) -> (PathBuf, PathBuf) {
    let connector_dir = root.join("connectors");
    let integrations = root.join("integrations");
    std::fs::create_dir_all(&connector_dir).unwrap();
    std::fs::create_dir_all(&integrations).unwrap();
    std::fs::copy(guests::SELLIGENT, connector_dir.join("selligent.wasm")).unwrap();
    std::fs::write(
        integrations.join("engage.json"),
        json!({
            "id": "engage",
            "type_id": "selligent",
            "authentication": {"api_key": API_KEY, "api_secret": API_SECRET},
            "properties": {
                "api": "engage", "url": mock_url, "organization": ORGANIZATION,
                "list": LIST, "batch_size": BATCH_SIZE
            },
            "mappings": []
        })
        .to_string(),
    )
    .unwrap();
    let activation = root.join("activation.json");
    std::fs::write(
        &activation,
        json!({
            "id": "bench",
            "integration": "engage",
            "source": {"type": "csv", "path": csv},
            "key": {"column": "email", "field": "MAIL"},
            "mappings": [
                {"id": "FIRSTNAME", "value": "first_name"},
                {"id": "CITY", "value": "city"},
                {"id": "AGE", "value": "age"},
                {"id": "PLAN", "value": "plan"}
            ]
        })
        .to_string(),
    )
    .unwrap();
    let config = root.join("prefsync.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\ndata_dir = {:?}\n[connectors]\ndir = {connector_dir:?}\nwatch = false\n\
             [integrations]\ndir = {integrations:?}\n\
             [activations]\nsource_dir = {:?}\n\
             [egress]\nallow_loopback = true\nallow_http = true\n",
            root.join("data"),
            csv.parent().unwrap(),
        ),
    )
    .unwrap();
    (activation, config)
}

struct Row {
    rows: u64,
    run: &'static str,
    measured: Measured,
}

/// The three runs on a model of `rows` rows, each checked.
fn bench_size(rows: u64) -> (Vec<Row>, u64) {
    let root = tempfile::tempdir().unwrap();
    let csv = root.path().join("users.csv");
    let mock = Mock::start();
    let (activation, config) = write_configs(root.path(), &mock.url, &csv);
    let changed = changed_rows(rows);
    let batches = |sent: u64| sent.div_ceil(BATCH_SIZE);
    let plan: [(&'static str, bool, Counts); 3] = [
        (
            "1: all new",
            false,
            Counts {
                read: rows,
                inserted: rows,
                batches: batches(rows),
                ..Counts::default()
            },
        ),
        (
            "2: 1% changed",
            true,
            Counts {
                read: rows,
                updated: changed,
                unchanged: rows - changed,
                batches: batches(changed),
                ..Counts::default()
            },
        ),
        (
            "3: unchanged",
            true,
            Counts {
                read: rows,
                unchanged: rows,
                ..Counts::default()
            },
        ),
    ];
    let mut results = Vec::new();
    for (run, changed, expected) in plan {
        let generated = Instant::now();
        write_csv(&csv, rows, changed);
        eprintln!(
            "{rows} rows, run {run}: CSV of {:.1} MiB written in {:.1} s",
            std::fs::metadata(&csv).unwrap().len() as f64 / 1_048_576.0,
            generated.elapsed().as_secs_f64()
        );
        let measured = run_activation(&activation, &config, &mock);
        eprintln!(
            "{rows} rows, run {run}: {:.2} s wall ({:.1} s in the run), {:?}, mock CPU {:.2} s, {:?}",
            measured.wall.as_secs_f64(),
            measured.host_seconds,
            measured.process,
            measured.mock_cpu.as_secs_f64(),
            measured.counts
        );
        assert_eq!(measured.counts, expected, "{rows} rows, run {run}");
        results.push(Row {
            rows,
            run,
            measured,
        });
    }
    let mock_rss = proc_sample(mock.child.id()).map_or(0, |s| s.peak_rss_kib);
    (results, mock_rss)
}

fn main() {
    let rows: u64 = match std::env::var("ACTIVATION_BENCH_ROWS") {
        Ok(n) => n
            .parse()
            .expect("ACTIVATION_BENCH_ROWS is a number of rows"),
        Err(_) => 1_000_000,
    };
    assert!(rows >= 10, "ACTIVATION_BENCH_ROWS must be at least 10");
    if std::env::var_os("PREFSYNC_BIN").is_none() {
        eprintln!(
            "PREFSYNC_BIN is not set: measuring a debug build of prefsync; \
             BENCHMARKS.md's figures use target/release/prefsync"
        );
    }
    eprintln!("prefsync: {}", prefsync_bin().display());
    let mut table = Vec::new();
    let mut mocks = Vec::new();
    for size in [rows / 10, rows] {
        let (results, mock_rss) = bench_size(size);
        table.extend(results);
        mocks.push((size, mock_rss));
    }
    println!();
    println!(
        "| rows | run | wall s | rows/s | peak RSS MiB | rows sent | batches \
         | prefsync CPU s | mock CPU s | MiB written |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in &table {
        let m = &row.measured;
        println!(
            "| {} | {} | {:.2} | {:.0} | {:.1} | {} | {} | {:.2} | {:.2} | {:.0} |",
            row.rows,
            row.run,
            m.wall.as_secs_f64(),
            row.rows as f64 / m.wall.as_secs_f64(),
            m.process.peak_rss_kib as f64 / 1024.0,
            m.counts.inserted + m.counts.updated,
            m.counts.batches,
            m.process.cpu.as_secs_f64(),
            m.mock_cpu.as_secs_f64(),
            m.process.written as f64 / 1_048_576.0
        );
    }
    println!();
    let small = &table[..3];
    let large = &table[3..];
    for (s, l) in small.iter().zip(large) {
        println!(
            "run {}: {}× the rows → {:.2}× the wall time, {:.2}× the peak RSS",
            s.run,
            l.rows / s.rows.max(1),
            l.measured.wall.as_secs_f64() / s.measured.wall.as_secs_f64(),
            l.measured.process.peak_rss_kib as f64 / s.measured.process.peak_rss_kib.max(1) as f64
        );
    }
    for (size, kib) in mocks {
        println!(
            "mock Engage process after the {size}-row runs: peak RSS {:.0} MiB",
            kib as f64 / 1024.0
        );
    }
}
