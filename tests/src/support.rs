//! Helpers shared by the integration tests and benchmarks.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use prefsync::egress::EgressOptions;
use prefsync::runtime::{
    ConsentRecord, Limits, Property, RecordMetadata, Runtime, RuntimeOptions, SyncBatch, SyncMode,
    SyncRow, Value,
};

/// Precompiled artifacts shared by every test run, so each guest is compiled
/// once per build (the cache is keyed by content and engine, so it is safe).
pub fn artifact_dir() -> PathBuf {
    PathBuf::from(env!("OUT_DIR")).join("artifacts")
}

/// The `prefsync` binary as a command whose compiled components are cached
/// in [`artifact_dir`] (`PREFSYNC_CACHE_DIR`), never in the user's
/// `~/.cache`: what every test that runs `connector test` or `connector
/// inspect` starts from.
pub fn prefsync_command() -> std::process::Command {
    let mut command = std::process::Command::new(prefsync_bin());
    command.env("PREFSYNC_CACHE_DIR", artifact_dir());
    command
}

/// Egress options that let connectors reach the loopback mocks over http.
pub fn loopback_egress() -> EgressOptions {
    EgressOptions {
        allow_loopback: true,
        allow_private: false,
        allow_http: true,
        ..Default::default()
    }
}

/// A runtime with the given egress options and limits, sharing the artifact cache.
pub fn runtime(egress: EgressOptions, limits: Limits) -> Runtime {
    Runtime::new(RuntimeOptions {
        limits,
        egress,
        artifact_dir: Some(artifact_dir()),
        transport: None,
    })
    .expect("runtime starts")
}

/// A record keyed by `organization_user_id`.
pub fn record(key: &str, properties: &[(&str, Value)]) -> ConsentRecord {
    let mut all = vec![Property {
        name: "organization_user_id".into(),
        value: Value::Text(key.into()),
    }];
    all.extend(properties.iter().map(|(name, value)| Property {
        name: name.to_string(),
        value: value.clone(),
    }));
    ConsentRecord {
        key_name: "organization_user_id".into(),
        key: key.into(),
        properties: all,
        metadata: RecordMetadata {
            state_version: 1,
            updated_at: "2026-11-23T00:00:00Z".into(),
            extra: Vec::new(),
        },
    }
}

/// A model row for activation tests: `key` and its attributes; `known`
/// when the host has sent the key before.
pub fn model_row(key: &str, attributes: &[(&str, Value)], known: bool) -> SyncRow {
    SyncRow {
        key: key.into(),
        attributes: attributes
            .iter()
            .map(|(name, value)| Property {
                name: name.to_string(),
                value: value.clone(),
            })
            .collect(),
        known,
    }
}

/// A batch of model rows keyed on the destination field `key_field`.
pub fn model_batch(key_field: &str, mode: SyncMode, rows: Vec<SyncRow>) -> SyncBatch {
    SyncBatch {
        key_field: key_field.into(),
        mode,
        rows,
    }
}

/// Runs `prefsync connector inspect` on a component and checks that it
/// succeeds and shows each of `expected`.
pub fn assert_inspect_shows(wasm: &str, expected: &[&str]) {
    let out = prefsync_command()
        .args(["connector", "inspect", wasm])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for expected in expected {
        assert!(
            stdout.contains(expected),
            "{expected} missing from:\n{stdout}"
        );
    }
}

/// Everything `tracing` writes while the guard lives, for assertions on logs.
#[derive(Clone, Default)]
pub struct LogCapture {
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl LogCapture {
    /// Captures this thread's events at every level until the guard drops
    /// (use a current-thread tokio runtime).
    pub fn start() -> (LogCapture, tracing::subscriber::DefaultGuard) {
        let capture = LogCapture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        (capture, guard)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap()).into_owned()
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The `prefsync` binary of this workspace, built (incrementally) on first use.
///
/// Built with the workspace's test-time feature resolution (`--workspace
/// --tests`), so its dependencies are the ones `cargo test --workspace`
/// already compiled and only the binary itself may need linking.
/// `PREFSYNC_BIN` names another build to use (a release build for benchmarks).
pub fn prefsync_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        // A prebuilt binary (a release build, for the figures in BENCHMARKS.md).
        if let Some(bin) = std::env::var_os("PREFSYNC_BIN") {
            return PathBuf::from(bin);
        }
        build_bin("prefsync", "prefsync", false)
    })
    .clone()
}

/// The `prefsync-mocks` binary (crate `prefsync-mocks`), built on first use.
///
/// Another package's binary has no `CARGO_BIN_EXE_*`, so it is built here:
/// optimised when the caller is (a benchmark), so the mock is not what a
/// benchmark measures.
pub fn mocks_bin() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| build_bin("prefsync-mocks", "prefsync-mocks", !cfg!(debug_assertions)))
        .clone()
}

/// Builds `bin` of `package` with the cargo running these tests, and returns
/// the executable cargo reports.
fn build_bin(package: &str, bin: &str, release: bool) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = std::process::Command::new(env!("CARGO"));
    cmd.current_dir(&root)
        .args(["build", "--bin", bin, "--message-format=json"]);
    if release {
        cmd.args(["--release", "-p", package]);
    } else {
        // The feature resolution of `cargo test --workspace` (dev-dependencies
        // included), whose dependency builds are then reused: with `-p`
        // alone, wasmtime and much else would be compiled a second time.
        cmd.args(["--workspace", "--tests"]);
    }
    let out = cmd
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running cargo build for the {bin} binary: {e}"));
    assert!(out.status.success(), "building the {bin} binary failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        // The binary itself, not the unit tests of its `main.rs` (same target name).
        .filter(|msg| {
            msg["reason"] == "compiler-artifact"
                && msg["target"]["name"] == bin
                && msg["profile"]["test"] == false
        })
        .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo reported no {bin} executable"))
}

/// A running `prefsync serve` process; killed (SIGKILL) when dropped.
pub struct ServeProcess {
    child: std::process::Child,
    /// `http://127.0.0.1:PORT`, as the server printed it.
    pub url: String,
    /// Collects everything the server writes to stderr (its log).
    log: Option<std::thread::JoinHandle<String>>,
}

impl ServeProcess {
    /// Runs `prefsync serve --config <config>` with the debug log on, and
    /// waits for its "listening" line. When it does not come up, the error
    /// is what it logged.
    pub fn start(config: &std::path::Path) -> Result<ServeProcess, String> {
        Self::start_logging(config, "debug")
    }

    /// Like [`ServeProcess::start`], with `PREFSYNC_LOG` set to `log_filter`
    /// (`trace` to see every line the server can write).
    pub fn start_logging(
        config: &std::path::Path,
        log_filter: &str,
    ) -> Result<ServeProcess, String> {
        Self::start_binary(&prefsync_bin(), config, log_filter)
    }

    /// Like [`ServeProcess::start_logging`], running the binary `bin` (a
    /// benchmark comparing two builds).
    pub fn start_binary(
        bin: &std::path::Path,
        config: &std::path::Path,
        log_filter: &str,
    ) -> Result<ServeProcess, String> {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new(bin)
            .args(["serve", "--config"])
            .arg(config)
            .env("PREFSYNC_LOG", log_filter)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawning prefsync serve");
        let stderr = child.stderr.take().expect("piped");
        let log = std::thread::spawn(move || {
            let mut text = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                text.push_str(&line);
                text.push('\n');
            }
            text
        });
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("prefsync listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        match rx.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(url) => Ok(ServeProcess {
                child,
                url,
                log: Some(log),
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(log.join().unwrap_or_default())
            }
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process without warning, as a crash would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the process with SIGTERM; returns whether it exited cleanly
    /// within 30 s (a loaded CI machine may take a while to schedule it),
    /// and its log.
    pub fn terminate(mut self) -> (bool, String) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let mut clean = false;
        for _ in 0..600 {
            if let Ok(Some(status)) = self.child.try_wait() {
                clean = status.success();
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let log = self
            .log
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        (clean, log)
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The user + system CPU time process `pid` has used so far, from
/// `/proc/<pid>/stat` (its 14th and 15th fields, in USER_HZ = 100 ticks);
/// `None` once the process is gone.
pub fn process_cpu(pid: u32) -> Option<std::time::Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: count after it.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(std::time::Duration::from_millis(ticks * 10))
}

/// A fresh, empty database on the PostgreSQL server of `PREFSYNC_TEST_POSTGRES`
/// (`./scripts/test.sh` starts one); its connection string.
pub async fn postgres_database() -> String {
    let admin = std::env::var("PREFSYNC_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!(
            "PREFSYNC_TEST_POSTGRES is not set: the PostgreSQL tests need a server \
             (./scripts/test.sh starts one with scripts/postgres.sh)"
        )
    });
    let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .expect("connecting to the test PostgreSQL server");
    tokio::spawn(connection);
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!(
        "prefsync_it_{}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("creating a test database");
    match admin.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("PREFSYNC_TEST_POSTGRES must end with /database"),
    }
}
