//! Activations: scheduled reverse-ETL syncs of a user model (a CSV file or
//! a SQL query) into a destination integration, sending only what changed
//! since the destination last accepted it.
//!
//! - [`config`]: the activation document and its checks;
//! - [`confine`]: what a source may read (files under `[activations]
//!   source_dir`, never the store's data) and reach (`[egress]`);
//! - [`source`]: the model, streamed in chunks;
//! - [`diff`]: the per-key snapshot hashes and what changed;
//! - [`run`]: one run (read → look up → send → advance the snapshot);
//! - [`seen`]: the keys a run has seen, a bitmap of snapshot key numbers;
//! - [`schedule`]: intervals and cron;
//! - this module: [`Activations`], which starts runs under the store's
//!   lease (so runs of one activation never overlap, on one host or many),
//!   records them, raises warnings and recoveries, and runs the scheduler.

pub mod config;
pub mod confine;
pub mod diff;
pub mod run;
pub mod schedule;
pub mod seen;
pub mod source;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use crate::config::HostConfig;
use crate::now_ms;
use crate::outbound_http::HostHttp;
use crate::runtime::{Destination, IntegrationContext};
use crate::store::{ActivationRecord, RunRecord, RunStart, RunStatus, RunTrigger, Store};
pub use config::{ActivationConfig, ConfigError, Problem, SourceConfig, SyncMode};
pub use confine::SourceAccess;
pub use run::{Progress, RowError, RunSummary};

/// How long a warnings webhook may take to answer.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// Finds the connector in service for a connector type.
pub type DestinationLookup = Arc<dyn Fn(&str) -> Option<Arc<dyn Destination>> + Send + Sync>;

/// Why an activation could not be stored or started.
#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error("no activation `{0}`")]
    NotFound(String),
    #[error("activation `{0}` is already running; runs of one activation never overlap")]
    AlreadyRunning(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The integration it names is missing or cannot sync models.
    #[error("integration: {0}")]
    Destination(String),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// A run whose lease is taken, ready to execute.
#[derive(Debug)]
pub struct BegunRun {
    pub config: ActivationConfig,
    pub run_id: i64,
    pub trigger: RunTrigger,
    pub full_resync: bool,
    pub started_at_ms: i64,
}

/// Starts, records and schedules runs.
pub struct Activations {
    store: Arc<dyn Store>,
    destinations: DestinationLookup,
    host: String,
    lease_ms: i64,
    /// What sources may read and reach.
    access: SourceAccess,
    /// The warnings webhook's client, under the egress policy.
    http: HostHttp,
    /// Runs started in the background (API, scheduler), awaited at stop.
    background: tokio::sync::Mutex<tokio::task::JoinSet<()>>,
    metrics: crate::metrics::Metrics,
}

impl Activations {
    /// Runs under the host config's lease, source rules (`[activations]
    /// source_dir`, `[storage] data_dir`) and egress options.
    pub fn new(
        store: Arc<dyn Store>,
        destinations: DestinationLookup,
        host: String,
        config: &HostConfig,
    ) -> anyhow::Result<Self> {
        Ok(Activations {
            store,
            destinations,
            host,
            lease_ms: i64::try_from(config.activations.lease_ms).unwrap_or(i64::MAX),
            access: SourceAccess::from_config(config),
            http: HostHttp::new(config.egress.clone(), WEBHOOK_TIMEOUT)?,
            background: tokio::sync::Mutex::new(tokio::task::JoinSet::new()),
            metrics: crate::metrics::Metrics::default(),
        })
    }

    /// Counts runs in `metrics` (a server's registry).
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Executes a begun run in the background; [`Activations::finish_background`]
    /// waits for it.
    pub async fn spawn(self: &Arc<Self>, begun: BegunRun) {
        let activations = self.clone();
        let mut background = self.background.lock().await;
        while background.try_join_next().is_some() {}
        background.spawn(async move {
            if let Err(error) = activations.execute(begun, &|_| {}).await {
                tracing::error!(error = %error, "activation run could not be recorded");
            }
        });
    }

    /// Waits for the runs in the background to finish and be recorded.
    pub async fn finish_background(&self) {
        let mut background = self.background.lock().await;
        while background.join_next().await.is_some() {}
    }

    /// The integration's connector and runtime view, if it can sync models.
    pub async fn destination(
        &self,
        config: &ActivationConfig,
    ) -> Result<(Arc<dyn Destination>, Arc<IntegrationContext>), ActivationError> {
        let Some(integration) = self.store.integration(&config.integration).await? else {
            return Err(ActivationError::Destination(format!(
                "no integration `{}`; create it first",
                config.integration
            )));
        };
        let Some(destination) = (self.destinations)(&integration.type_id) else {
            return Err(ActivationError::Destination(format!(
                "no connector `{}` is loaded for integration `{}`",
                integration.type_id, integration.id
            )));
        };
        if !destination.info().activations {
            return Err(ActivationError::Destination(format!(
                "connector `{}` (integration `{}`) cannot sync models: it does not export `activation`",
                integration.type_id, integration.id
            )));
        }
        if !integration.enabled {
            return Err(ActivationError::Destination(format!(
                "integration `{}` is disabled",
                integration.id
            )));
        }
        let context = destination.integration(&integration.id, &integration.config);
        Ok((destination, context))
    }

    /// Checks and stores an activation (its snapshot and history stay).
    pub async fn put(
        &self,
        config: &ActivationConfig,
    ) -> Result<ActivationRecord, ActivationError> {
        let mut record = self.checked_record(config).await?;
        if let Some(previous) = self.store.activation(&config.id).await? {
            record.created_at_ms = previous.created_at_ms;
        }
        self.store.put_activation(&record).await?;
        Ok(record)
    }

    /// Checks and stores a new activation; `None`, with nothing written,
    /// when its id exists already. One conditional insert, so of concurrent
    /// creates of one id exactly one wins.
    pub async fn create(
        &self,
        config: &ActivationConfig,
    ) -> Result<Option<ActivationRecord>, ActivationError> {
        let record = self.checked_record(config).await?;
        Ok(self
            .store
            .insert_activation(&record)
            .await?
            .then_some(record))
    }

    /// Every check `put` and `create` make, then the record as stored now.
    async fn checked_record(
        &self,
        config: &ActivationConfig,
    ) -> Result<ActivationRecord, ActivationError> {
        let mut problems = config.problems();
        problems.extend(source::source_problem(&config.source, &self.access));
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems).into());
        }
        self.destination(config).await?;
        let now = now_ms();
        let schedule = config.schedule().map_err(|(path, message)| {
            ConfigError::Invalid(vec![Problem {
                path: path.into(),
                message,
            }])
        })?;
        Ok(ActivationRecord {
            id: config.id.clone(),
            integration_id: config.integration.clone(),
            config: serde_json::to_value(config).map_err(anyhow::Error::from)?,
            created_at_ms: now,
            updated_at_ms: now,
            next_run_at_ms: schedule.next_after(now, None),
        })
    }

    /// Creates or updates the activations of `dir/*.json` (the file name is
    /// the id when the document has none).
    pub async fn load_dir(&self, dir: &Path) -> anyhow::Result<usize> {
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| anyhow::anyhow!("reading activations directory {}: {e}", dir.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        paths.sort();
        for path in &paths {
            let config = read_file(path)?;
            self.put(&config)
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            tracing::info!(id = %config.id, file = %path.display(), "activation loaded from file");
        }
        Ok(paths.len())
    }

    /// Takes the activation's lease for a run now.
    pub async fn begin(
        &self,
        id: &str,
        trigger: RunTrigger,
        full_resync: bool,
    ) -> Result<BegunRun, ActivationError> {
        let Some(record) = self.store.activation(id).await? else {
            return Err(ActivationError::NotFound(id.to_string()));
        };
        let config = stored_config(&record)?;
        let start = self.start(trigger, full_resync);
        match self.store.begin_run(id, &start).await? {
            Some(run_id) => Ok(BegunRun {
                config,
                run_id,
                trigger,
                full_resync,
                started_at_ms: start.now_ms,
            }),
            None => Err(ActivationError::AlreadyRunning(id.to_string())),
        }
    }

    fn start(&self, trigger: RunTrigger, full_resync: bool) -> RunStart {
        RunStart {
            trigger,
            host: self.host.clone(),
            full_resync,
            now_ms: now_ms(),
            lease_ms: self.lease_ms,
        }
    }

    /// Runs a begun run to its end and records it; warnings and
    /// recoveries are raised here.
    pub async fn execute(
        &self,
        begun: BegunRun,
        progress: &(dyn Fn(&Progress) + Send + Sync),
    ) -> Result<RunRecord, ActivationError> {
        let span = tracing::info_span!(
            "activation run",
            prefsync.activation = %begun.config.id,
            prefsync.run = begun.run_id,
            prefsync.trigger = %begun.trigger,
            prefsync.full_resync = begun.full_resync,
        );
        tracing::Instrument::instrument(self.execute_in_span(begun, progress), span).await
    }

    async fn execute_in_span(
        &self,
        begun: BegunRun,
        progress: &(dyn Fn(&Progress) + Send + Sync),
    ) -> Result<RunRecord, ActivationError> {
        let config = &begun.config;
        tracing::info!(activation = %config.id, run = begun.run_id, trigger = %begun.trigger, full_resync = begun.full_resync, "activation run started");
        let lease = StoreLease {
            store: self.store.clone(),
            id: config.id.clone(),
            run_id: begun.run_id,
            lease_ms: self.lease_ms,
            renewed: Mutex::new(Instant::now()),
        };
        let mut summary = match self.destination(config).await {
            Ok((destination, integration)) => {
                run::execute(run::RunInputs {
                    config,
                    store: self.store.clone(),
                    destination,
                    integration,
                    access: &self.access,
                    full_resync: begun.full_resync,
                    lease: &lease,
                    progress,
                })
                .await
            }
            Err(error) => RunSummary {
                error: Some(error.to_string()),
                ..RunSummary::default()
            },
        };
        let status = judged(config, &mut summary);
        let summary_json = self.summary_with_notice(&begun, status, &summary).await?;
        let finished = now_ms();
        let next = config
            .schedule()
            .ok()
            .and_then(|s| s.next_after(finished, Some(begun.started_at_ms)));
        self.store
            .finish_run(
                &config.id,
                begun.run_id,
                status,
                &summary_json,
                finished,
                next,
            )
            .await?;
        self.metrics.activation_run(
            &config.id,
            status,
            std::time::Duration::from_millis(summary.duration_ms),
            crate::metrics::RunRows {
                inserted: summary.inserted,
                updated: summary.updated,
                unchanged: summary.unchanged,
                failed: summary.failed,
                skipped: summary.skipped,
            },
        );
        tracing::info!(
            activation = %config.id,
            run = begun.run_id,
            status = status.as_str(),
            rows_read = summary.rows_read,
            inserted = summary.inserted,
            updated = summary.updated,
            unchanged = summary.unchanged,
            failed = summary.failed,
            skipped = summary.skipped,
            duration_ms = summary.duration_ms,
            "activation run finished"
        );
        let run = self
            .store
            .runs(&config.id, 5)
            .await?
            .into_iter()
            .find(|r| r.id == begun.run_id);
        run.ok_or_else(|| ActivationError::NotFound(config.id.clone()))
    }

    /// The summary as stored; an unhealthy run, or the first healthy one
    /// after an unhealthy one, is announced and the notice kept with it.
    async fn summary_with_notice(
        &self,
        begun: &BegunRun,
        status: RunStatus,
        summary: &RunSummary,
    ) -> Result<serde_json::Value, ActivationError> {
        let config = &begun.config;
        let previous = self
            .store
            .runs(&config.id, 2)
            .await?
            .into_iter()
            .find(|r| r.id != begun.run_id && r.status != RunStatus::Running);
        let recovered = status == RunStatus::Succeeded
            && previous.as_ref().is_some_and(|p| p.status.is_unhealthy());
        let mut summary_json = serde_json::to_value(summary).map_err(anyhow::Error::from)?;
        if status.is_unhealthy() || recovered {
            let event = if recovered { "recovered" } else { "warning" };
            let notice = self
                .notify(config, begun.run_id, event, status, summary)
                .await;
            summary_json["notice"] = notice;
        }
        Ok(summary_json)
    }

    /// Begins and executes a run in the caller's task.
    pub async fn run_now(
        &self,
        id: &str,
        trigger: RunTrigger,
        full_resync: bool,
        progress: &(dyn Fn(&Progress) + Send + Sync),
    ) -> Result<RunRecord, ActivationError> {
        let begun = self.begin(id, trigger, full_resync).await?;
        self.execute(begun, progress).await
    }

    /// Logs a warning or recovery and posts it to the activation's webhook;
    /// what happened to the post goes into the run's summary.
    async fn notify(
        &self,
        config: &ActivationConfig,
        run_id: i64,
        event: &str,
        status: RunStatus,
        summary: &RunSummary,
    ) -> Json {
        if config.warnings.log {
            if event == "warning" {
                tracing::warn!(activation = %config.id, run = run_id, warnings = ?summary.warnings, "activation run raised a warning");
            } else {
                tracing::info!(activation = %config.id, run = run_id, "activation recovered");
            }
        }
        let Some(url) = &config.warnings.webhook_url else {
            return json!({"event": event, "posted": false});
        };
        let body = json!({
            "event": format!("activation.{event}"),
            "activation": config.id,
            "run_id": run_id,
            "status": status.as_str(),
            "warnings": summary.warnings,
            "summary": summary,
        });
        // Under the egress policy like connector traffic; a redirect is
        // an answer, never followed.
        match self.http.post_json(url, body.to_string()).await {
            Ok(code) if code.is_success() => json!({"event": event, "posted": true}),
            Ok(code) => {
                let followed = if code.is_redirection() {
                    " (redirects are not followed)"
                } else {
                    ""
                };
                tracing::warn!(activation = %config.id, status = code.as_u16(), "the warnings webhook refused the notice");
                json!({"event": event, "posted": false, "error": format!("the webhook answered {code}{followed}")})
            }
            Err(error) => {
                let error = error.to_string();
                tracing::warn!(activation = %config.id, error = %error, "the warnings webhook could not be reached");
                json!({"event": event, "posted": false, "error": error})
            }
        }
    }

    /// Starts due runs until `stop`: each host polls, and the store hands
    /// each due run to exactly one of them.
    pub async fn schedule(
        self: Arc<Self>,
        poll: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            match self
                .store
                .begin_due_run(&self.start(RunTrigger::Schedule, false))
                .await
            {
                Ok(Some((record, run_id))) => match stored_config(&record) {
                    Ok(config) => {
                        let begun = BegunRun {
                            config,
                            run_id,
                            trigger: RunTrigger::Schedule,
                            full_resync: false,
                            started_at_ms: now_ms(),
                        };
                        self.spawn(begun).await;
                        continue;
                    }
                    Err(error) => {
                        tracing::error!(activation = %record.id, error = %error, "stored activation unreadable")
                    }
                },
                Ok(None) => {}
                Err(error) => {
                    tracing::error!(error = %format!("{error:#}"), "looking for due activations failed")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = stop.changed() => break,
            }
        }
        // Runs in flight (scheduled or started through the API) finish and
        // are recorded before the host stops.
        self.finish_background().await;
    }
}

/// Reads an activation file; errors name the file, line and column.
pub fn read_file(path: &Path) -> anyhow::Result<ActivationConfig> {
    let bytes =
        std::fs::read(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let stem = path.file_stem().and_then(|s| s.to_str());
    ActivationConfig::parse(&bytes, stem).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn stored_config(record: &ActivationRecord) -> Result<ActivationConfig, ActivationError> {
    serde_json::from_value(record.config.clone()).map_err(|e| {
        ActivationError::Store(anyhow::anyhow!("stored activation `{}`: {e}", record.id))
    })
}

/// The activation as shown: the SQL source's password never comes back out.
pub fn present(record: &ActivationRecord) -> Json {
    let mut shown = record.config.clone();
    if let Some(url) = shown.pointer_mut("/source/url")
        && let Some(text) = url.as_str()
    {
        *url = json!(crate::store::postgres::redacted_url(text));
    }
    if let Some(obj) = shown.as_object_mut() {
        obj.insert("created_at_ms".into(), json!(record.created_at_ms));
        obj.insert("updated_at_ms".into(), json!(record.updated_at_ms));
        obj.insert("next_run_at_ms".into(), json!(record.next_run_at_ms));
    }
    shown
}

/// The run's lease in the store, renewed when a third of it has passed.
struct StoreLease {
    store: Arc<dyn Store>,
    id: String,
    run_id: i64,
    lease_ms: i64,
    renewed: Mutex<Instant>,
}

#[async_trait::async_trait]
impl run::Lease for StoreLease {
    async fn renew(&self) -> bool {
        let due = {
            let renewed = self.renewed.lock().unwrap_or_else(|e| e.into_inner());
            renewed.elapsed().as_millis() as i64 > self.lease_ms / 3
        };
        if !due {
            return true;
        }
        match self
            .store
            .renew_run(
                &self.id,
                self.run_id,
                now_ms().saturating_add(self.lease_ms),
            )
            .await
        {
            Ok(held) => {
                *self.renewed.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
                held
            }
            Err(error) => {
                tracing::warn!(activation = %self.id, error = %format!("{error:#}"), "renewing the run's lease failed");
                true
            }
        }
    }

    /// The run's stored summary while it runs, so `GET /v1/activations/{id}/runs` shows it.
    async fn report(&self, progress: &Json) {
        if let Err(error) = self
            .store
            .record_run_progress(&self.id, self.run_id, progress)
            .await
        {
            tracing::warn!(activation = %self.id, error = %format!("{error:#}"), "recording the run's progress failed");
        }
    }
}
/// How a finished run stands: failed, above its rejected-share threshold
/// (a warning), or succeeded; the reason is added to its warnings.
fn judged(config: &ActivationConfig, summary: &mut RunSummary) -> RunStatus {
    let share = summary.rejected_share();
    let threshold = config.warnings.rejected_share;
    if let Some(error) = &summary.error {
        summary.warnings.push(format!("the run failed: {error}"));
        RunStatus::Failed
    } else if summary.rows_read > 0 && share > threshold {
        summary.warnings.push(format!(
            "{} of {} rows rejected ({:.1}%), above the {:.1}% threshold",
            summary.failed,
            summary.rows_read,
            share * 100.0,
            threshold * 100.0
        ));
        RunStatus::Warning
    } else {
        RunStatus::Succeeded
    }
}
