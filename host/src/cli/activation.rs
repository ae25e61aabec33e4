//! `prefsync activation`: run an activation in the foreground, read its history.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;

use crate::activation::{Activations, Progress, RunSummary, read_file};
use crate::config::HostConfig;
use crate::consent::millis_to_rfc3339;
use crate::store::{RunRecord, RunStatus, RunTrigger};

#[derive(Debug, Subcommand)]
pub enum ActivationCommand {
    /// Run one activation now, in the foreground, with a progress bar and a
    /// summary table. TARGET is a stored activation's id, or a JSON file
    /// (stored first, so its snapshot carries over to the next run).
    Run {
        target: String,
        /// The host configuration (the store and connectors `serve` uses).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Ignore the snapshot once: send every row with every attribute.
        #[arg(long)]
        full_resync: bool,
    },
    /// Print an activation's run history, newest first.
    Runs {
        id: String,
        #[arg(long)]
        config: Option<PathBuf>,
        /// How many runs.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print the runs as JSON (what `GET /v1/activations/{id}/runs` answers).
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(command: ActivationCommand) -> Result<()> {
    match command {
        ActivationCommand::Run {
            target,
            config,
            full_resync,
        } => run_once(&target, config, full_resync).await,
        ActivationCommand::Runs {
            id,
            config,
            limit,
            json,
        } => {
            let config = HostConfig::load(config.as_deref())?;
            let (store, _) = crate::serve::open_offline(&config).await?;
            if store.activation(&id).await?.is_none() {
                bail!("no activation `{id}`; `GET /v1/activations` lists them");
            }
            let runs = store.runs(&id, limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
            } else {
                print!("{}", history_table(&runs));
            }
            Ok(())
        }
    }
}

async fn run_once(target: &str, config: Option<PathBuf>, full_resync: bool) -> Result<()> {
    let host_config = HostConfig::load(config.as_deref())?;
    let (store, registry) = crate::serve::open_offline(&host_config).await?;
    let host = host_config
        .dispatch
        .host_id
        .clone()
        .unwrap_or_else(|| format!("prefsync-cli-{}", std::process::id()));
    // The same source rules and egress options as `serve`.
    let activations = Activations::new(
        store.clone(),
        Arc::new(move |type_id: &str| registry.get(type_id)),
        host,
        &host_config,
    )?;
    let path = PathBuf::from(target);
    let id = if target.ends_with(".json") || path.is_file() {
        let config = read_file(&path)?;
        activations
            .put(&config)
            .await
            .with_context(|| format!("{}", path.display()))?;
        config.id
    } else {
        target.to_string()
    };
    let bar = ProgressBar::new();
    let record = activations
        .run_now(&id, RunTrigger::Cli, full_resync, &|p: &Progress| {
            bar.show(p)
        })
        .await?;
    bar.finish();
    let activation = store.activation(&id).await?;
    let summary: RunSummary = serde_json::from_value(record.summary.clone()).unwrap_or_default();
    print!(
        "{}",
        summary_table(
            &id,
            activation.as_ref().map(|a| a.integration_id.as_str()),
            &record,
            &summary
        )
    );
    if record.status == RunStatus::Failed {
        bail!(
            "run {} of `{id}` failed: {}",
            record.id,
            summary.error.unwrap_or_default()
        );
    }
    Ok(())
}

/// A one-line bar on a terminal's stderr; elsewhere a line every few seconds.
struct ProgressBar {
    terminal: bool,
    started: Instant,
    last: Mutex<Option<Instant>>,
}

impl ProgressBar {
    fn new() -> Self {
        ProgressBar {
            terminal: std::io::stderr().is_terminal(),
            started: Instant::now(),
            last: Mutex::new(None),
        }
    }

    fn show(&self, progress: &Progress) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let every = if self.terminal {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(5)
        };
        if last.is_some_and(|at| at.elapsed() < every) {
            return;
        }
        *last = Some(Instant::now());
        let counts = format!(
            "{} rows read, {} sent, {} rejected, {:.1} s",
            progress.rows_read,
            progress.sent,
            progress.failed,
            self.started.elapsed().as_secs_f64()
        );
        let line = match progress.fraction {
            Some(fraction) => {
                let filled = (fraction * 30.0).round() as usize;
                format!(
                    "[{}{}] {:>3.0}%  {counts}",
                    "#".repeat(filled),
                    "-".repeat(30 - filled.min(30)),
                    fraction * 100.0
                )
            }
            None => counts,
        };
        let mut stderr = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(stderr, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(stderr, "{line}");
        }
        let _ = stderr.flush();
    }

    fn finish(&self) {
        if self.terminal && self.last.lock().map(|l| l.is_some()).unwrap_or(false) {
            eprintln!();
        }
    }
}

fn summary_table(
    id: &str,
    integration: Option<&str>,
    record: &RunRecord,
    summary: &RunSummary,
) -> String {
    let mut out = format!(
        "activation {id} → integration {}: run {} {} in {:.1} s{}\n\n",
        integration.unwrap_or("?"),
        record.id,
        record.status.as_str(),
        summary.duration_ms as f64 / 1000.0,
        if record.full_resync {
            " (full resync)"
        } else {
            ""
        }
    );
    for (label, value) in [
        ("rows read", summary.rows_read),
        ("inserted", summary.inserted),
        ("updated", summary.updated),
        ("unchanged", summary.unchanged),
        ("failed", summary.failed),
        ("skipped", summary.skipped),
        ("batches sent", summary.batches),
    ] {
        out.push_str(&format!("  {label:<13}{value:>12}\n"));
    }
    if !summary.warnings.is_empty() {
        out.push_str("\nwarnings:\n");
        for warning in &summary.warnings {
            out.push_str(&format!("  - {warning}\n"));
        }
    }
    if !summary.errors.is_empty() {
        out.push_str(&format!(
            "\nfirst rejected rows{}:\n  {:<28} {:>8}  {:<12} {:<16} MESSAGE\n",
            if summary.errors_truncated {
                " (more in the run's summary count)"
            } else {
                ""
            },
            "KEY",
            "ROW",
            "STAGE",
            "FIELD"
        ));
        for error in &summary.errors {
            out.push_str(&format!(
                "  {:<28} {:>8}  {:<12} {:<16} {}\n",
                error.key.as_deref().unwrap_or("-"),
                error.row,
                error.stage,
                error.field.as_deref().unwrap_or("-"),
                error.message
            ));
        }
    }
    out
}

fn history_table(runs: &[RunRecord]) -> String {
    let mut out = format!(
        "{:>5}  {:<24} {:<10} {:<9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>9}\n",
        "RUN",
        "STARTED",
        "STATUS",
        "TRIGGER",
        "READ",
        "INSERTED",
        "UPDATED",
        "UNCHANGED",
        "FAILED",
        "SKIPPED",
        "SECONDS"
    );
    for run in runs {
        let summary: RunSummary = serde_json::from_value(run.summary.clone()).unwrap_or_default();
        out.push_str(&format!(
            "{:>5}  {:<24} {:<10} {:<9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>9.1}\n",
            run.id,
            millis_to_rfc3339(run.started_at_ms),
            run.status.as_str(),
            run.trigger,
            summary.rows_read,
            summary.inserted,
            summary.updated,
            summary.unchanged,
            summary.failed,
            summary.skipped,
            summary.duration_ms as f64 / 1000.0
        ));
        if let Some(error) = &summary.error {
            out.push_str(&format!("       error: {error}\n"));
        }
    }
    out
}
