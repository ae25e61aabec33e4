//! `prefsync plugin …`: inspect connector components and try them on records.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use serde_json::Value as Json;

use crate::egress::EgressOptions;
use crate::runtime::{
    ConnectorInfo, ConsentRecord, DeliveredKind, InboundRequest, Outcome, Property, ReceiveError,
    RecordMetadata, Runtime, RuntimeOptions, Value,
};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Show what a connector component says about itself (`describe`) and
    /// the WIT version it was built against.
    Inspect {
        /// The component, e.g. target/wasm32-wasip2/release/prefsync_dotdigital.wasm.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Validate an integration config with a connector, then deliver records
    /// through it in the real sandbox and print each outcome; or hand it
    /// webhook bodies and print the consent updates it reads from them.
    Test(TestArgs),
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
    #[arg(long = "record", required_unless_present = "webhooks")]
    records: Vec<PathBuf>,
    /// A webhook body the destination would send, for a connector that reads
    /// webhooks (repeat for several).
    #[arg(long = "webhook")]
    webhooks: Vec<PathBuf>,
    /// Let the connector reach loopback addresses (local mocks).
    #[arg(long)]
    allow_loopback: bool,
    /// Let the connector use plain http:// (local mocks).
    #[arg(long)]
    allow_http: bool,
}

pub async fn run(command: PluginCommand) -> Result<()> {
    match command {
        PluginCommand::Inspect { file, json } => {
            let runtime = Runtime::new(RuntimeOptions::default())?;
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
        PluginCommand::Test(args) => test(args).await,
    }
}

async fn test(args: TestArgs) -> Result<()> {
    let runtime = Runtime::new(RuntimeOptions {
        egress: EgressOptions {
            allow_loopback: args.allow_loopback,
            allow_private: false,
            allow_http: args.allow_http,
        },
        ..Default::default()
    })?;
    let connector = runtime
        .load_file(&args.file)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let config = read_json(&args.config)?;
    let problems = connector.validate(&config).await?;
    if !problems.is_empty() {
        let listed: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
        bail!(
            "{} is not a valid config:\n{}",
            args.config.display(),
            listed.join("\n")
        );
    }
    let integration = connector.integration("cli-test", &config);
    let limits = runtime.limits().clone();
    println!(
        "{} {} (WIT {}), limits: {} MiB memory, {} ms CPU, {} ms wall",
        connector.info().type_id,
        connector.info().version,
        connector.info().wit_version,
        limits.memory_bytes / (1024 * 1024),
        limits.cpu_ms,
        limits.wall_ms
    );
    for path in &args.records {
        let record = read_record(path)?;
        let key = record.key.clone();
        let delivery = connector.deliver(&integration, vec![record]).await;
        let report = &delivery.report;
        println!(
            "{key}: {}  [http {:?}, {} ms, CPU < {} ms, peak memory {} KiB]",
            describe_outcome(&delivery.outcomes[0]),
            report.stats.http_statuses,
            report.duration.as_millis(),
            // CPU is counted in epoch ticks seen while guest code ran.
            (report.stats.cpu_ticks + 1) * limits.epoch_tick_ms,
            report.peak_memory_bytes / 1024
        );
    }
    for path in &args.webhooks {
        let body = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let request = InboundRequest {
            headers: vec![("content-type".into(), "application/json".into())],
            body,
        };
        let name = path.display();
        match connector.receive(&integration, request).await {
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
    }
    Ok(())
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
            "{}: invalid JSON at line {}, column {}: {e}",
            path.display(),
            e.line(),
            e.column()
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
        key,
        properties,
        metadata: RecordMetadata {
            state_version: 1,
            updated_at: String::new(),
            extra: Vec::new(),
        },
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
