//! `prefsync connector …`: inspect connector components and try them on records.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use serde_json::Value as Json;

use std::sync::Arc;

use super::artifact_cache;
use super::cassette::{Cassette, Interaction, RecordedError, Tape, TapeReport};
use super::scaffold;
use crate::config::HostConfig;
use crate::egress::{EgressOptions, OptionNames};
use crate::outbound_http::Network;
use crate::runtime::bindings::Level;
use crate::runtime::{
    CallError, CallReport, Connector, ConnectorInfo, ConsentRecord, DeliveredKind, InboundRequest,
    IntegrationContext, Limits, Outcome, Property, ReceiveError, RecordMetadata, Runtime,
    RuntimeOptions, Value, mib,
};

#[derive(Debug, Subcommand)]
pub enum ConnectorCommand {
    /// Show what a connector component says about itself (`describe`) and
    /// the WIT version it was built against.
    Inspect {
        /// The component, e.g. target/wasm32-wasip2/release/prefsync_dotdigital.wasm.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Compile the component in memory and write nothing, instead of
        /// reusing (or filling) the per-user cache of compiled components.
        #[arg(long)]
        no_cache: bool,
    },
    /// Validate an integration config with a connector, then deliver records
    /// through it in the real sandbox and print each outcome; or hand it
    /// webhook bodies and print the consent updates it reads from them.
    Test(TestArgs),
    /// Create a new connector crate (outside any workspace) that builds
    /// into a component with `cargo build --release --target wasm32-wasip2`.
    New(scaffold::NewArgs),
    /// Re-write a connector crate's `vendor/prefsync` (the guest SDK and the
    /// WIT contract `connector new` vendored) with this binary's: the upgrade
    /// path after installing a newer prefsync.
    VendorSdk(scaffold::VendorArgs),
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The connector component.
    file: PathBuf,
    /// The integration config, in the seed's JSON shape.
    #[arg(long)]
    config: PathBuf,
    /// A record: a JSON object of flattened properties, keyed by
    /// `organization_user_id` (repeat for several records).
    #[arg(long = "record", required_unless_present_any = ["webhooks", "check"])]
    records: Vec<PathBuf>,
    /// Check the connection first (the connector's optional `connection`
    /// export: its credentials and names against the destination, writing
    /// nothing); with `--cassette`, its exchange is `<DIR>/check.json`.
    /// Fails when the destination refuses or the check cannot be made.
    #[arg(long)]
    check: bool,
    /// A webhook body the destination would send, for a connector that reads
    /// webhooks (repeat for several).
    #[arg(long = "webhook")]
    webhooks: Vec<PathBuf>,
    /// A directory of HTTP cassettes, one per record file
    /// (`<DIR>/<record stem>.json`): replay them instead of the network,
    /// failing on any request, outcome or missing request that differs; with
    /// `--live`, record them (secrets scrubbed).
    #[arg(long, value_name = "DIR")]
    cassette: Option<PathBuf>,
    /// Use the network even with `--cassette`, and record into it.
    #[arg(long)]
    live: bool,
    /// Take limits and egress options from a host config (prefsync.toml);
    /// without it, the production defaults. Compiled components are then
    /// cached where that config's server caches them (`[storage] data_dir`).
    #[arg(long, value_name = "FILE")]
    host_config: Option<PathBuf>,
    /// Compile the component in memory and write nothing, instead of
    /// reusing (or filling) the cache of compiled components (per user,
    /// `$PREFSYNC_CACHE_DIR` or `~/.cache/prefsync/artifacts`).
    #[arg(long)]
    no_cache: bool,
    /// Override the memory limit, in MiB (1 to 4096, the host config's range).
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=4096))]
    memory_mib: Option<u64>,
    /// Override the CPU limit per call, in milliseconds (1 to 3600000).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    cpu_ms: Option<u64>,
    /// Let the connector reach loopback addresses (local mocks).
    #[arg(long)]
    allow_loopback: bool,
    /// Let the connector use plain http:// (local mocks).
    #[arg(long)]
    allow_http: bool,
}

pub async fn run(command: ConnectorCommand) -> Result<()> {
    match command {
        ConnectorCommand::Inspect {
            file,
            json,
            no_cache,
        } => {
            let runtime = Runtime::new(RuntimeOptions {
                artifact_dir: artifact_dir(no_cache, None),
                ..RuntimeOptions::default()
            })?;
            let connector = runtime
                .load_file(&file)
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let info = connector.info();
            if json {
                println!("{}", serde_json::to_string_pretty(info)?);
            } else {
                print!("{}", render(info));
            }
            Ok(())
        }
        ConnectorCommand::Test(args) => test(args).await,
        ConnectorCommand::New(args) => scaffold::create(&args),
        ConnectorCommand::VendorSdk(args) => scaffold::vendor_sdk(&args),
    }
}

/// Runs `connector test`: the connector in the production sandbox, each record
/// delivered through a [`Tape`] that shows (and records or replays) its HTTP.
async fn test(args: TestArgs) -> Result<()> {
    let host = match &args.host_config {
        Some(path) => Some(HostConfig::load(Some(path))?),
        None => None,
    };
    let (limits, egress) = sandbox_options(&args, host.as_ref());
    let config = read_json(&args.config)?;
    let replaying = args.cassette.is_some() && !args.live;
    let tape = Arc::new(if replaying {
        Tape::replay(&config)
    } else {
        Tape::live(
            Network::new(egress.clone(), limits.response_bytes)?,
            &config,
        )
    });
    let runtime = Runtime::new(RuntimeOptions {
        limits,
        egress,
        artifact_dir: artifact_dir(args.no_cache, host.as_ref()),
        transport: Some(tape.clone()),
    })?;
    let connector = runtime
        .load_file(&args.file)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    ensure_valid_config(&connector, &config, &args.config).await?;
    let integration = connector.integration("cli-test", &config);
    // Now that the connector's schema is known, its `writeOnly` fields are secrets too.
    tape.use_redactor(integration.redactor().clone());
    let limits = runtime.limits().clone();
    let cassette = args.cassette.as_deref();
    print_setup(connector.info(), &limits, cassette, replaying);
    let bench = TestBench {
        connector: &connector,
        integration: &integration,
        tape: &tape,
        limits: &limits,
        cassette,
        replaying,
    };
    let mut differing = Vec::new();
    let mut failed = Vec::new();
    if args.check {
        match bench.check_connection().await? {
            Verdict::Passed => {}
            Verdict::DiffersFromCassette => differing.push("the connection check".into()),
            Verdict::Failed => failed.push("the connection check".into()),
        }
    }
    for path in &args.records {
        match bench.deliver_record(path).await? {
            Verdict::Passed => {}
            Verdict::DiffersFromCassette => differing.push(path.display().to_string()),
            Verdict::Failed => failed.push(path.display().to_string()),
        }
    }
    for path in &args.webhooks {
        bench.receive_webhook(path).await?;
    }
    let mut reasons = Vec::new();
    if !differing.is_empty() {
        reasons.push(format!(
            "{} of {} record(s) differ from their cassette: {}",
            differing.len(),
            args.records.len(),
            differing.join(", ")
        ));
    }
    if !failed.is_empty() {
        reasons.push(format!(
            "{} of {} record(s) failed (see FAIL above): {}",
            failed.len(),
            args.records.len(),
            failed.join(", ")
        ));
    }
    if !reasons.is_empty() {
        bail!("{}", reasons.join("; "));
    }
    Ok(())
}

/// How one record's test ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Delivered or skipped live, or replayed as its cassette says.
    Passed,
    /// Replayed, and a request or the outcome differs from the cassette.
    DiffersFromCassette,
    /// Failed live (a failure outcome, or a cassette that could not be recorded).
    Failed,
}

/// Where compiled components are cached: nowhere with `--no-cache`, the
/// server's cache with a host config, else the per-user one (see
/// [`artifact_cache`]); `None` (compile in memory) when it cannot be created.
fn artifact_dir(no_cache: bool, host: Option<&HostConfig>) -> Option<PathBuf> {
    if no_cache {
        return None;
    }
    let dir = match host {
        Some(host) => host.storage.artifact_dir(),
        None => artifact_cache::user_cache_dir()?,
    };
    artifact_cache::prepare(dir)
}

/// The sandbox's limits and egress options: the host config's (else the
/// production defaults), with the command line's overrides.
fn sandbox_options(args: &TestArgs, host: Option<&HostConfig>) -> (Limits, EgressOptions) {
    let (mut limits, mut egress) = match host {
        Some(host) => (host.limits.clone(), host.egress.clone()),
        None => (Limits::default(), EgressOptions::default()),
    };
    if let Some(mib) = args.memory_mib {
        limits.memory_bytes = mib * 1024 * 1024;
    }
    if let Some(ms) = args.cpu_ms {
        limits.cpu_ms = ms;
    }
    egress.allow_loopback |= args.allow_loopback;
    egress.allow_http |= args.allow_http;
    // A denial should name this command's flags, not the server's settings.
    egress.named_by = OptionNames::CommandLine;
    (limits, egress)
}

/// Fails with every problem the connector finds in the config at `path`.
async fn ensure_valid_config(connector: &Connector, config: &Json, path: &Path) -> Result<()> {
    let problems = connector.validate(config).await?;
    if !problems.is_empty() {
        let listed: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
        bail!(
            "{} is not a valid config:\n{}",
            path.display(),
            listed.join("\n")
        );
    }
    Ok(())
}

/// The connector, its limits, and whether cassettes are replayed or recorded.
fn print_setup(info: &ConnectorInfo, limits: &Limits, cassette: Option<&Path>, replaying: bool) {
    println!(
        "{} {} (WIT {}), limits: {} memory, {} ms CPU, {} ms wall{}",
        info.type_id,
        info.version,
        info.wit_version,
        mib(limits.memory_bytes),
        limits.cpu_ms,
        limits.wall_ms,
        match (cassette, replaying) {
            (Some(dir), true) => format!(", replaying cassettes from {}", dir.display()),
            (Some(dir), false) => format!(", recording cassettes into {}", dir.display()),
            (None, _) => String::new(),
        }
    );
}

/// What `connector test` tries each record and webhook body against.
struct TestBench<'a> {
    connector: &'a Connector,
    integration: &'a Arc<IntegrationContext>,
    tape: &'a Tape,
    limits: &'a Limits,
    /// The cassette directory, if any.
    cassette: Option<&'a Path>,
    /// Cassettes are replayed rather than recorded.
    replaying: bool,
}

impl TestBench<'_> {
    /// Checks the connection and prints what the destination said.
    async fn check_connection(&self) -> Result<Verdict> {
        let file = self.cassette.map(|dir| dir.join("check.json"));
        let recorded = match (&file, self.replaying) {
            (Some(file), true) => Some(Cassette::read(file)?),
            _ => None,
        };
        self.tape.begin(recorded.as_ref());
        let result = self.connector.check_connection(self.integration).await;
        let tape_report = self.tape.finish();
        let (outcome, failed) = match &result {
            Ok(problems) if problems.is_empty() => ("connection accepted".to_string(), false),
            Ok(problems) => (
                format!(
                    "connection refused: {}",
                    problems
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                true,
            ),
            Err(error) => (error.to_string(), true),
        };
        let outcome = self.tape.scrub(&outcome);
        println!("check: {outcome}");
        print_exchanges(&tape_report.exchanges);
        self.settle(file, recorded, tape_report, outcome, failed, "the check")
    }

    /// Delivers one record file and prints what happened and how it ended.
    async fn deliver_record(&self, path: &Path) -> Result<Verdict> {
        let record = read_record(path)?;
        let key = record.key.clone();
        let file = self.cassette.map(|dir| Cassette::path_for(dir, path));
        let recorded = match (&file, self.replaying) {
            (Some(file), true) => Some(Cassette::read(file)?),
            _ => None,
        };
        self.tape.begin(recorded.as_ref());
        let delivery = self.connector.deliver(self.integration, vec![record]).await;
        let tape_report = self.tape.finish();
        let failed = matches!(delivery.outcomes[0], Outcome::Failed(_));
        let outcome = self.tape.scrub(&describe_outcome(&delivery.outcomes[0]));
        println!("{key}: {outcome}");
        print_exchanges(&tape_report.exchanges);
        print_call(&delivery.report, self.limits, delivery.error.as_ref());
        self.settle(
            file,
            recorded,
            tape_report,
            outcome,
            failed,
            "the record was not delivered",
        )
    }

    /// How one call ends: replayed against its cassette, recorded into
    /// it, or (without cassettes) by its own outcome.
    fn settle(
        &self,
        file: Option<PathBuf>,
        recorded: Option<Cassette>,
        tape_report: TapeReport,
        outcome: String,
        failed: bool,
        failure: &str,
    ) -> Result<Verdict> {
        match (file, recorded) {
            (Some(_), Some(recorded)) => {
                let problems = replay_problems(&recorded, &tape_report, &outcome);
                if problems.is_empty() {
                    println!(
                        "  cassette: {} exchange(s) replayed, outcome as recorded",
                        tape_report.exchanges.len()
                    );
                } else {
                    for problem in &problems {
                        println!("  FAIL {problem}");
                    }
                    return Ok(Verdict::DiffersFromCassette);
                }
                // As recorded, a recorded failure included: replaying it is
                // how a connector's failure handling is tested.
                return Ok(Verdict::Passed);
            }
            (Some(file), None) => {
                if let Some(why) = unrecordable(&tape_report.exchanges) {
                    println!("  FAIL not recording {}: {why}", file.display());
                    return Ok(Verdict::Failed);
                }
                let info = self.connector.info();
                Cassette {
                    connector: format!("{} {}", info.type_id, info.version),
                    outcome,
                    interactions: tape_report.exchanges,
                }
                .write(&file)?;
                println!("  recorded into {}", file.display());
            }
            (None, _) => {}
        }
        if failed {
            println!("  FAIL {failure}");
            return Ok(Verdict::Failed);
        }
        Ok(Verdict::Passed)
    }

    /// Hands one webhook body to the connector and prints the consent
    /// updates it reads from it.
    async fn receive_webhook(&self, path: &Path) -> Result<()> {
        let body = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let request = InboundRequest {
            headers: vec![("content-type".into(), "application/json".into())],
            body,
        };
        let name = path.display();
        self.tape.begin(None);
        let received = self.connector.receive(self.integration, request).await;
        print_exchanges(&self.tape.finish().exchanges);
        match received {
            Ok(receipt) => {
                println!("{name}: {} update(s)", receipt.updates.len());
                for update in &receipt.updates {
                    let set: Vec<String> = update
                        .properties
                        .iter()
                        .map(|p| format!("{} = {}", p.name, describe_value(&p.value)))
                        .collect();
                    println!("  {}: {}", update.organization_user_id, set.join(", "));
                }
                for why in &receipt.ignored {
                    println!("  ignored: {why}");
                }
            }
            Err(ReceiveError::Refused(why)) => println!("{name}: refused (400): {why}"),
            Err(error) => bail!("{name}: {error}"),
        }
        Ok(())
    }
}

/// Why a live delivery's exchanges make no cassette: a cassette replays the
/// vendor's answers, so it needs at least one, and a request the egress
/// policy refused says something about this machine's flags, not the vendor.
fn unrecordable(exchanges: &[Interaction]) -> Option<String> {
    if let Some(denied) = exchanges.iter().find_map(|e| match &e.error {
        Some(RecordedError::Denied(why)) => Some(why),
        _ => None,
    }) {
        return Some(format!("a request was refused before it left ({denied})"));
    }
    if !exchanges.iter().any(|e| e.response.is_some()) {
        // A request the egress policy refuses never reaches the tape: the
        // outcome above says why.
        return Some("no request got an answer (see the outcome above)".to_string());
    }
    None
}

/// How a replayed delivery differs from its cassette: requests it made that
/// were not recorded, recorded ones it never made, and a different outcome.
fn replay_problems(recorded: &Cassette, tape_report: &TapeReport, outcome: &str) -> Vec<String> {
    let mut problems = tape_report.unrecorded.clone();
    for request in &tape_report.unused {
        problems.push(format!(
            "recorded request never made: {}",
            request.describe()
        ));
    }
    if outcome != recorded.outcome {
        problems.push(format!(
            "outcome differs from the cassette: recorded `{}`, got `{outcome}`",
            recorded.outcome
        ));
    }
    problems
}

/// Every request and its answer, one line each plus body excerpts.
fn print_exchanges(exchanges: &[Interaction]) {
    for exchange in exchanges {
        let request = &exchange.request;
        println!("  -> {} {}", request.method, request.url);
        if let Some(body) = &request.body {
            println!("       {}", body.excerpt(300));
        }
        match (&exchange.response, &exchange.error) {
            (Some(response), _) => {
                println!("  <- {}", response.status);
                if let Some(body) = &response.body {
                    println!("       {}", body.excerpt(300));
                }
            }
            (None, Some(error)) => println!(
                "  <- error: {}",
                serde_json::to_string(error).unwrap_or_default()
            ),
            (None, None) => {}
        }
    }
}

/// The guest's log lines, then its CPU time and peak memory against the limits.
fn print_call(report: &CallReport, limits: &Limits, error: Option<&CallError>) {
    for line in &report.stats.log {
        let fields = if line.fields.is_empty() {
            String::new()
        } else {
            format!("  {}", line.fields)
        };
        let level = match line.level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        println!("  log {level}: {}{fields}", line.message);
    }
    if report.stats.log_lines_dropped > 0 {
        println!(
            "  log: {} more line(s) not shown",
            report.stats.log_lines_dropped
        );
    }
    // CPU is counted in epoch ticks seen while guest code ran.
    let cpu_ms = report.stats.cpu_ticks * limits.epoch_tick_ms;
    let cpu = match error {
        Some(CallError::CpuLimit { .. }) => format!(
            "CPU over its limit: {cpu_ms} ms used, limit {} ms",
            limits.cpu_ms
        ),
        _ => format!(
            "CPU < {} ms of {} ms limit",
            cpu_ms + limits.epoch_tick_ms,
            limits.cpu_ms
        ),
    };
    let memory = match error {
        Some(CallError::MemoryLimit {
            requested_bytes, ..
        }) => format!(
            "memory over its limit: asked for {}, limit {} (peak held {})",
            mib(*requested_bytes),
            mib(limits.memory_bytes),
            mib(report.peak_memory_bytes)
        ),
        _ => format!(
            "peak memory {} of {} limit",
            mib(report.peak_memory_bytes),
            mib(limits.memory_bytes)
        ),
    };
    println!("  {cpu}, {memory}, {} ms wall", report.duration.as_millis());
}

fn describe_value(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Boolean(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Text(t) => format!("{t:?}"),
    }
}

fn describe_outcome(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Delivered(DeliveredKind::Created) => "delivered (created)".into(),
        Outcome::Delivered(DeliveredKind::Updated) => "delivered (updated)".into(),
        Outcome::Delivered(DeliveredKind::Unchanged) => "delivered (unchanged)".into(),
        Outcome::Skipped(why) => format!("skipped: {why}"),
        Outcome::Failed(f) => format!(
            "failed ({}{}): {}",
            if f.retryable {
                "retryable"
            } else {
                "permanent"
            },
            f.retry_after_ms
                .map(|ms| format!(", retry after {ms} ms"))
                .unwrap_or_default(),
            f.message
        ),
    }
}

fn read_json(path: &Path) -> Result<Json> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}: invalid JSON at line {}, column {}: {}",
            path.display(),
            e.line(),
            e.column(),
            crate::consent::event::json_error_message(&e)
        )
    })
}

/// A record file: a flat JSON object of properties with `organization_user_id`.
fn read_record(path: &Path) -> Result<ConsentRecord> {
    let Json::Object(fields) = read_json(path)? else {
        bail!(
            "{}: a record must be a JSON object of properties",
            path.display()
        );
    };
    let key = match fields.get("organization_user_id") {
        Some(Json::String(key)) if !key.is_empty() => key.clone(),
        _ => bail!(
            "{}: `organization_user_id` (a non-empty string) is required",
            path.display()
        ),
    };
    let mut properties = Vec::new();
    for (name, value) in fields {
        let value = match value {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Boolean(b),
            Json::Number(n) => Value::Number(n.as_f64().unwrap_or_default()),
            Json::String(s) => Value::Text(s),
            _ => bail!(
                "{}: property `{name}` must be null, a boolean, a number or a string",
                path.display()
            ),
        };
        properties.push(Property { name, value });
    }
    Ok(ConsentRecord {
        key_name: "organization_user_id".into(),
        properties,
        metadata: RecordMetadata {
            state_version: 1,
            updated_at: String::new(),
            // As `prefsync serve` gives every record (see `pipeline::write_back`).
            extra: vec![(
                crate::pipeline::write_back::WRITE_ID.to_string(),
                crate::pipeline::write_back::write_id("connector-test", &key, 1),
            )],
        },
        key,
    })
}

/// The human-readable form of `describe`.
pub fn render(info: &ConnectorInfo) -> String {
    let mut abilities = Vec::new();
    if info.batching {
        abilities.push("batching");
    }
    if info.inbound_webhooks {
        abilities.push("inbound webhooks");
    }
    if info.activations {
        abilities.push("activations");
    }
    if info.connection_check {
        abilities.push("connection check");
    }
    let schema = serde_json::to_string_pretty(&info.config_schema).unwrap_or_default();
    format!(
        "type id:          {}\n\
         version:          {}\n\
         display name:     {}\n\
         WIT:              prefsync:connector@{}\n\
         content hash:     sha256:{}\n\
         default hosts:    {}\n\
         max concurrency:  {} per integration\n\
         max batch size:   {}\n\
         capabilities:     {}\n\
         config schema:\n{}\n",
        info.type_id,
        info.version,
        info.display_name,
        info.wit_version,
        info.content_hash,
        if info.default_hosts.is_empty() {
            "(none)".into()
        } else {
            info.default_hosts.join(", ")
        },
        info.max_concurrency,
        info.max_batch_size,
        if abilities.is_empty() {
            "none".into()
        } else {
            abilities.join(", ")
        },
        schema
    )
}
