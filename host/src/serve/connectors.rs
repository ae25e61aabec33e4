//! Connector versions under management: install, upgrade, roll back and
//! canary, with the registry (what serves) and the store (what is kept)
//! moved together.
//!
//! An upgrade runs entirely off the delivery path: compile (through the
//! precompiled cache) and pre-instantiate, `describe`, the version rules,
//! every existing integration of the type validated by the new version —
//! and only then the switch, which is a few pointer moves in the registry.
//! One change at a time: upgrades, rollbacks and canary verdicts share a lock.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::sync::watch;

use super::canary::{CanaryPolicy, CanaryRun, Verdict};
use super::registry::{Registry, RollbackError, SlotView, version_order};
use crate::now_ms;
use crate::runtime::{ConnectorInfo, Destination, LoadError, Runtime, content_hash};
use crate::store::{
    ConnectorAction, ConnectorSource, ConnectorStatus, ConnectorStatusChange, ConnectorSwitch,
    ConnectorVersion, Store,
};

/// How an upgrade is asked for.
#[derive(Debug, Clone, Default)]
pub struct UpgradeOptions {
    /// Refuse the component unless it is this connector type.
    pub expect_type: Option<String>,
    /// Allow a version that is not greater than the active one.
    pub force: bool,
    /// Run the new version as a canary first.
    pub canary: Option<CanaryPolicy>,
    /// Where the component came from, for the registry.
    pub source: ConnectorSource,
}

/// An integration the new version would refuse.
#[derive(Debug, Clone, Serialize)]
pub struct BrokenIntegration {
    pub id: String,
    pub problems: Vec<String>,
}

/// Why an upgrade was refused; the running version is untouched.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("not a usable connector: {0}")]
    Load(#[from] LoadError),
    #[error("the component is connector `{found}`, not `{expected}`")]
    TypeMismatch { expected: String, found: String },
    #[error(
        "`{type_id}` {offered} is not newer than the active {active}; upload a greater version, or pass force=true to go back to an older one"
    )]
    NotNewer {
        type_id: String,
        offered: String,
        active: String,
    },
    #[error("`{type_id}` {version} (sha256:{hash}) is already the active version")]
    AlreadyActive {
        type_id: String,
        version: String,
        hash: String,
    },
    #[error("`{type_id}` {version} would break {} integration(s): {}", broken.len(), list_broken(broken))]
    BreaksIntegrations {
        type_id: String,
        version: String,
        broken: Vec<BrokenIntegration>,
    },
    #[error("a canary of `{0}` is running; wait for its verdict or roll it back first")]
    CanaryRunning(String),
    #[error("a canary needs a version of `{0}` in service to compare with; install it first")]
    NothingToCompare(String),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

fn list_broken(broken: &[BrokenIntegration]) -> String {
    broken
        .iter()
        .map(|b| format!("{} ({})", b.id, b.problems.join("; ")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a rollback was refused.
#[derive(Debug, thiserror::Error)]
pub enum RollbackFailure {
    #[error(transparent)]
    Refused(#[from] RollbackError),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// A version as reports name it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VersionRef {
    pub version: String,
    pub content_hash: String,
}

impl VersionRef {
    fn of(info: &ConnectorInfo) -> Self {
        VersionRef {
            version: info.version.clone(),
            content_hash: info.content_hash.clone(),
        }
    }
}

/// What an upgrade or rollback did.
#[derive(Debug, Clone, Serialize)]
pub struct SwitchReport {
    pub type_id: String,
    pub action: ConnectorAction,
    pub from: Option<VersionRef>,
    pub to: VersionRef,
    /// When deliveries started going to `to` (for a canary: its share).
    pub switched_at_ms: i64,
    /// From receiving the component to the switch.
    pub took_ms: u64,
    /// Integrations of the type the new version validated.
    pub integrations_validated: usize,
}

/// The registry and the store, changed together.
pub struct ConnectorManager {
    runtime: Runtime,
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    changes: tokio::sync::Mutex<()>,
    /// The newest switch in the store this host has followed.
    followed_switch: std::sync::atomic::AtomicI64,
    metrics: crate::metrics::Metrics,
}

impl ConnectorManager {
    pub fn new(runtime: Runtime, store: Arc<dyn Store>, registry: Arc<Registry>) -> Self {
        ConnectorManager {
            runtime,
            store,
            registry,
            changes: tokio::sync::Mutex::new(()),
            followed_switch: std::sync::atomic::AtomicI64::new(0),
            metrics: crate::metrics::Metrics::default(),
        }
    }

    /// Counts this manager's switches in `metrics` (a server's registry).
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// At start: the versions the store says were in service, then any
    /// `.wasm` of `dir` the store does not know, through the upgrade rules
    /// (the first of a type is installed; a refused file is logged and
    /// skipped, so one bad file does not keep the host down).
    pub async fn bootstrap(&self, dir: &Path) -> anyhow::Result<()> {
        let latest = self.store.latest_connector_switch_id().await?;
        let versions = self.store.connector_versions(None).await?;
        for (type_id, in_service) in in_service_by_type(&versions) {
            let Some(active) = in_service.active else {
                continue;
            };
            let active = match self.load_stored(active).await {
                Ok(connector) => connector,
                Err(error) => {
                    tracing::error!(connector = %type_id, version = %active.version, error = %format!("{error:#}"), "the stored active version does not load");
                    continue;
                }
            };
            let standby = match in_service.standby {
                Some(v) => self.load_stored(v).await.ok(),
                None => None,
            };
            if let Some(canary) = in_service.canary {
                // A canary's verdict needs its window; a restart ends it.
                self.record(
                    ConnectorAction::AutoRollback,
                    type_id,
                    Some(canary.version.clone()),
                    Some(canary.content_hash.clone()),
                    active.info(),
                    "the host restarted before the canary's verdict",
                    vec![status(
                        &canary.content_hash,
                        ConnectorStatus::RolledBack,
                        Some("the host restarted before the canary's verdict"),
                    )],
                )
                .await?;
            }
            tracing::info!(connector = %type_id, version = %active.info().version, "restored the active version");
            self.registry.restore(active, standby);
        }
        let known: std::collections::HashSet<&str> =
            versions.iter().map(|v| v.content_hash.as_str()).collect();
        for path in wasm_files(dir).await? {
            let bytes = match tokio::fs::read(&path).await {
                Ok(bytes) => bytes,
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "cannot read a connector file");
                    continue;
                }
            };
            if known.contains(content_hash(&bytes).as_str()) {
                continue;
            }
            let options = UpgradeOptions {
                source: ConnectorSource::Directory,
                ..UpgradeOptions::default()
            };
            match self.upgrade(bytes, options).await {
                Ok(report) => {
                    tracing::info!(path = %path.display(), connector = %report.type_id, version = %report.to.version, action = %report.action, "connector loaded from the connector directory")
                }
                Err(UpgradeError::Store(error)) => return Err(error),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "skipping a connector file")
                }
            }
        }
        // What the store held when we read it is in service; anything newer
        // (another host's switch meanwhile, or ours) is followed next.
        self.followed_switch
            .store(latest, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Follows switches other hosts sharing the store made: every type's
    /// active and standby versions as the store says (loaded from its bytes
    /// when this host does not have them). A canary runs on the host that
    /// started it; the others keep the active version until its verdict.
    pub async fn follow_store(&self) -> anyhow::Result<()> {
        use std::sync::atomic::Ordering;
        let latest = self.store.latest_connector_switch_id().await?;
        if latest <= self.followed_switch.load(Ordering::SeqCst) {
            return Ok(());
        }
        let _change = self.changes.lock().await;
        let versions = self.store.connector_versions(None).await?;
        for (type_id, in_service) in in_service_by_type(&versions) {
            let Some(active) = in_service.active else {
                continue;
            };
            let standby = in_service.standby;
            let local = self.registry.view(type_id);
            if let Some(local) = &local {
                let same_active = local.active.info().content_hash == active.content_hash;
                let same_standby = local
                    .standby
                    .as_ref()
                    .map(|s| s.info().content_hash.as_str())
                    == standby.map(|s| s.content_hash.as_str());
                if (same_active && same_standby) || local.canary.is_some() {
                    continue;
                }
            }
            // Versions this host already runs are reused, not reloaded.
            let have = |hash: &str| -> Option<Arc<dyn Destination>> {
                let local = local.as_ref()?;
                [Some(&local.active), local.standby.as_ref()]
                    .into_iter()
                    .flatten()
                    .find(|d| d.info().content_hash == hash)
                    .cloned()
            };
            let active_connector = match have(&active.content_hash) {
                Some(connector) => connector,
                None => self.load_stored(active).await?,
            };
            let standby_connector = match standby {
                Some(v) => match have(&v.content_hash) {
                    Some(connector) => Some(connector),
                    None => self.load_stored(v).await.ok(),
                },
                None => None,
            };
            tracing::info!(connector = %type_id, version = %active.version, hash = %active.content_hash, "followed a version switch made by another host");
            self.registry.restore(active_connector, standby_connector);
        }
        self.followed_switch.store(latest, Ordering::SeqCst);
        Ok(())
    }

    async fn load_stored(
        &self,
        version: &ConnectorVersion,
    ) -> anyhow::Result<Arc<dyn Destination>> {
        let bytes = self
            .store
            .connector_wasm(&version.type_id, &version.content_hash)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the store lost the component's bytes"))?;
        Ok(self.runtime.load(bytes).await?)
    }

    /// The upgrade flow; on any refusal nothing changed.
    pub async fn upgrade(
        &self,
        bytes: Vec<u8>,
        options: UpgradeOptions,
    ) -> Result<SwitchReport, UpgradeError> {
        let span = tracing::info_span!(
            "connector upgrade",
            prefsync.connector.type = tracing::field::Empty,
            prefsync.connector.version = tracing::field::Empty,
            prefsync.action = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let upgraded =
            tracing::Instrument::instrument(self.upgrade_in_span(bytes, options), span.clone())
                .await;
        match &upgraded {
            Ok(report) => span.record("prefsync.action", report.action.as_str()),
            Err(_) => span.record("otel.status_code", "ERROR"),
        };
        upgraded
    }

    async fn upgrade_in_span(
        &self,
        bytes: Vec<u8>,
        options: UpgradeOptions,
    ) -> Result<SwitchReport, UpgradeError> {
        let received = Instant::now();
        // Compiling and describing need no lock: only the checks and the switch do.
        let connector: Arc<dyn Destination> = self.runtime.load(bytes.clone()).await?;
        let info = connector.info().clone();
        tracing::Span::current()
            .record("prefsync.connector.type", info.type_id.as_str())
            .record("prefsync.connector.version", info.version.as_str());
        if let Some(expected) = &options.expect_type
            && expected != &info.type_id
        {
            return Err(UpgradeError::TypeMismatch {
                expected: expected.clone(),
                found: info.type_id.clone(),
            });
        }
        let _change = self.changes.lock().await;
        let current = self.registry.view(&info.type_id);
        let action = planned_action(current.as_ref(), &info, &options)?;
        let validated = self.validate_integrations(connector.as_ref()).await?;
        self.keep_version(&info, &bytes, options.source).await?;
        let from = current
            .as_ref()
            .map(|view| VersionRef::of(view.active.info()));
        let (detail, statuses) = switch_plan(current.as_ref(), &info, &options);
        // Kept first, then switched: a store failure leaves the old version serving.
        self.record(
            action,
            &info.type_id,
            from.as_ref().map(|f| f.version.clone()),
            from.as_ref().map(|f| f.content_hash.clone()),
            &info,
            &detail,
            statuses,
        )
        .await?;
        let switched_at_ms = now_ms();
        match &options.canary {
            Some(policy) if current.is_some() => {
                self.registry
                    .start_canary(connector, policy.clone(), switched_at_ms)
                    .map_err(|e| UpgradeError::Store(e.into()))?;
            }
            _ => {
                self.registry.activate(connector);
            }
        }
        tracing::info!(
            connector = %info.type_id,
            %action,
            from = ?from.as_ref().map(|f| &f.version),
            to = %info.version,
            hash = %info.content_hash,
            %detail,
            "connector version switched"
        );
        Ok(SwitchReport {
            type_id: info.type_id.clone(),
            action,
            from,
            to: VersionRef::of(&info),
            switched_at_ms,
            took_ms: received.elapsed().as_millis() as u64,
            integrations_validated: validated,
        })
    }

    /// Every integration of the new version's type, validated by it; how
    /// many there were, or the refusal naming each one it would break.
    async fn validate_integrations(
        &self,
        connector: &dyn Destination,
    ) -> Result<usize, UpgradeError> {
        let info = connector.info();
        let mut broken = Vec::new();
        let mut validated = 0;
        for integration in self.store.integrations().await? {
            if integration.type_id != info.type_id {
                continue;
            }
            validated += 1;
            let problems = match connector.validate(&integration.config).await {
                Ok(problems) => problems.iter().map(|p| p.to_string()).collect(),
                Err(error) => vec![format!("validation failed: {error}")],
            };
            if !problems.is_empty() {
                broken.push(BrokenIntegration {
                    id: integration.id.clone(),
                    problems,
                });
            }
        }
        if !broken.is_empty() {
            return Err(UpgradeError::BreaksIntegrations {
                type_id: info.type_id.clone(),
                version: info.version.clone(),
                broken,
            });
        }
        Ok(validated)
    }

    /// Keeps the version and its bytes in the store, not yet in service.
    async fn keep_version(
        &self,
        info: &ConnectorInfo,
        bytes: &[u8],
        source: ConnectorSource,
    ) -> anyhow::Result<()> {
        let now = now_ms();
        self.store
            .add_connector_version(
                &ConnectorVersion {
                    type_id: info.type_id.clone(),
                    version: info.version.clone(),
                    content_hash: info.content_hash.clone(),
                    wit_version: info.wit_version.clone(),
                    description: serde_json::to_value(info).unwrap_or_default(),
                    source,
                    loaded_at_ms: now,
                    status: ConnectorStatus::Inactive,
                    status_reason: None,
                    status_at_ms: now,
                },
                bytes,
            )
            .await?;
        Ok(())
    }

    /// Back to the previous version (or the canary dropped), the same way.
    pub async fn rollback(&self, type_id: &str) -> Result<SwitchReport, RollbackFailure> {
        let started = Instant::now();
        let _change = self.changes.lock().await;
        let view = self
            .registry
            .view(type_id)
            .ok_or_else(|| RollbackError::UnknownType(type_id.to_string()))?;
        let (from, to, statuses) = match (&view.canary, &view.standby) {
            (Some(run), _) => (
                run.candidate.info().clone(),
                view.active.info().clone(),
                vec![status(
                    &run.candidate.info().content_hash,
                    ConnectorStatus::RolledBack,
                    Some("rolled back by the operator during its canary"),
                )],
            ),
            (None, Some(standby)) => (
                view.active.info().clone(),
                standby.info().clone(),
                vec![
                    status(
                        &view.active.info().content_hash,
                        ConnectorStatus::Standby,
                        None,
                    ),
                    status(&standby.info().content_hash, ConnectorStatus::Active, None),
                ],
            ),
            (None, None) => return Err(RollbackError::NoPrevious(type_id.to_string()).into()),
        };
        self.record(
            ConnectorAction::Rollback,
            type_id,
            Some(from.version.clone()),
            Some(from.content_hash.clone()),
            &to,
            "by the operator",
            statuses,
        )
        .await?;
        self.registry.rollback(type_id)?;
        let switched_at_ms = now_ms();
        tracing::info!(connector = %type_id, from = %from.version, to = %to.version, "connector rolled back");
        Ok(SwitchReport {
            type_id: type_id.to_string(),
            action: ConnectorAction::Rollback,
            from: Some(VersionRef::of(&from)),
            to: VersionRef::of(&to),
            switched_at_ms,
            took_ms: started.elapsed().as_millis() as u64,
            integrations_validated: 0,
        })
    }

    /// Acts on every canary's verdict: rolls back a worse candidate, promotes
    /// one whose window passed.
    pub async fn judge_canaries(&self) -> anyhow::Result<()> {
        for (type_id, run) in self.registry.canaries() {
            let verdict = run.verdict();
            if verdict == Verdict::Wait {
                continue;
            }
            let _change = self.changes.lock().await;
            self.conclude(&type_id, &run, verdict).await?;
        }
        Ok(())
    }

    async fn conclude(
        &self,
        type_id: &str,
        run: &Arc<CanaryRun>,
        verdict: Verdict,
    ) -> anyhow::Result<()> {
        let Some(view) = self.registry.view(type_id) else {
            return Ok(());
        };
        if !view.canary.as_ref().is_some_and(|c| Arc::ptr_eq(c, run)) {
            return Ok(()); // Ended meanwhile (an operator's rollback).
        }
        let candidate = run.candidate.info().clone();
        let active = view.active.info().clone();
        match verdict {
            Verdict::Wait => {}
            Verdict::RollBack(reason) => {
                self.record(
                    ConnectorAction::AutoRollback,
                    type_id,
                    Some(candidate.version.clone()),
                    Some(candidate.content_hash.clone()),
                    &active,
                    &reason,
                    vec![status(
                        &candidate.content_hash,
                        ConnectorStatus::RolledBack,
                        Some(&reason),
                    )],
                )
                .await?;
                self.registry.end_canary(type_id, run, false);
                tracing::warn!(connector = %type_id, version = %candidate.version, back_to = %active.version, %reason, "canary rolled back automatically");
            }
            Verdict::Promote(reason) => {
                let mut statuses = Vec::new();
                if let Some(standby) = &view.standby {
                    statuses.push(status(
                        &standby.info().content_hash,
                        ConnectorStatus::Inactive,
                        None,
                    ));
                }
                statuses.push(status(&active.content_hash, ConnectorStatus::Standby, None));
                statuses.push(status(
                    &candidate.content_hash,
                    ConnectorStatus::Active,
                    Some(&reason),
                ));
                self.record(
                    ConnectorAction::Promote,
                    type_id,
                    Some(active.version.clone()),
                    Some(active.content_hash.clone()),
                    &candidate,
                    &reason,
                    statuses,
                )
                .await?;
                self.registry.end_canary(type_id, run, true);
                tracing::info!(connector = %type_id, version = %candidate.version, %reason, "canary promoted");
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn record(
        &self,
        action: ConnectorAction,
        type_id: &str,
        from_version: Option<String>,
        from_hash: Option<String>,
        to: &ConnectorInfo,
        detail: &str,
        statuses: Vec<ConnectorStatusChange>,
    ) -> anyhow::Result<()> {
        let switch = ConnectorSwitch {
            id: 0,
            at_ms: now_ms(),
            type_id: type_id.to_string(),
            action,
            from_version,
            from_hash,
            to_version: to.version.clone(),
            to_hash: to.content_hash.clone(),
            detail: detail.to_string(),
        };
        self.store
            .record_connector_switch(&switch, &statuses)
            .await?;
        self.metrics.connector_switch(type_id, action);
        Ok(())
    }

    /// Until `stop`: judges canaries and follows the store's versions every
    /// `tick`, and, with a connector
    /// directory to watch, upgrades from every `.wasm` file that appears or
    /// changes there (once its size and time stay put for one tick, so a
    /// file still being copied is not read half-written).
    pub async fn supervise(
        self: Arc<Self>,
        watch_dir: Option<PathBuf>,
        tick: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut watcher = match &watch_dir {
            Some(dir) => Some(DirWatcher::start(dir.clone()).await),
            None => None,
        };
        while !*stop.borrow() {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = stop.changed() => break,
            }
            if let Err(error) = self.judge_canaries().await {
                tracing::error!(error = %format!("{error:#}"), "judging canaries failed");
            }
            if let Err(error) = self.follow_store().await {
                tracing::error!(error = %format!("{error:#}"), "following the store's connector versions failed");
            }
            if let Some(watcher) = &mut watcher {
                for (path, bytes) in watcher.changed_files().await {
                    let options = UpgradeOptions {
                        source: ConnectorSource::Watcher,
                        ..UpgradeOptions::default()
                    };
                    match self.upgrade(bytes, options).await {
                        Ok(report) => {
                            tracing::info!(path = %path.display(), connector = %report.type_id, from = ?report.from.map(|f| f.version), to = %report.to.version, "connector upgraded from the connector directory")
                        }
                        Err(UpgradeError::AlreadyActive { .. }) => {}
                        Err(error) => {
                            tracing::warn!(path = %path.display(), %error, "connector file refused; the running version stays")
                        }
                    }
                }
            }
        }
    }
}

/// A type's versions in service, as the store records them.
#[derive(Default)]
struct InService<'a> {
    active: Option<&'a ConnectorVersion>,
    standby: Option<&'a ConnectorVersion>,
    canary: Option<&'a ConnectorVersion>,
}

fn in_service_by_type(versions: &[ConnectorVersion]) -> BTreeMap<&str, InService<'_>> {
    let mut by_type: BTreeMap<&str, InService<'_>> = BTreeMap::new();
    for version in versions {
        let entry = by_type.entry(&version.type_id).or_default();
        match version.status {
            ConnectorStatus::Active => entry.active = Some(version),
            ConnectorStatus::Standby => entry.standby = Some(version),
            ConnectorStatus::Canary => entry.canary = Some(version),
            ConnectorStatus::RolledBack | ConnectorStatus::Inactive => {}
        }
    }
    by_type
}

/// What offering `info` does, given the version in service: the version
/// rules (newer, or forced; never the active one again; no upgrade during
/// a canary; a canary needs a version to compare with).
fn planned_action(
    current: Option<&SlotView>,
    info: &ConnectorInfo,
    options: &UpgradeOptions,
) -> Result<ConnectorAction, UpgradeError> {
    let Some(view) = current else {
        if options.canary.is_some() {
            return Err(UpgradeError::NothingToCompare(info.type_id.clone()));
        }
        return Ok(ConnectorAction::Install);
    };
    if view.canary.is_some() {
        return Err(UpgradeError::CanaryRunning(info.type_id.clone()));
    }
    let active = view.active.info();
    if active.content_hash == info.content_hash {
        return Err(UpgradeError::AlreadyActive {
            type_id: info.type_id.clone(),
            version: info.version.clone(),
            hash: info.content_hash.clone(),
        });
    }
    let action = match version_order(&info.version, &active.version) {
        std::cmp::Ordering::Greater => ConnectorAction::Upgrade,
        _ if options.force => ConnectorAction::Downgrade,
        _ => {
            return Err(UpgradeError::NotNewer {
                type_id: info.type_id.clone(),
                offered: info.version.clone(),
                active: active.version.clone(),
            });
        }
    };
    Ok(if options.canary.is_some() {
        ConnectorAction::Canary
    } else {
        action
    })
}

/// The switch's detail line and the statuses it sets: a canary beside the
/// active version, or the new version active with the old one on standby
/// (and the standby before it out of service).
fn switch_plan(
    current: Option<&SlotView>,
    info: &ConnectorInfo,
    options: &UpgradeOptions,
) -> (String, Vec<ConnectorStatusChange>) {
    let mut statuses = Vec::new();
    let detail = match (current, &options.canary) {
        (Some(_), Some(policy)) => {
            statuses.push(status(&info.content_hash, ConnectorStatus::Canary, None));
            format!(
                "{} % of first attempts for {} s, rolled back above +{:.1} points of permanent failures",
                policy.percent,
                policy.window.as_secs(),
                policy.max_failure_increase * 100.0
            )
        }
        (Some(view), None) => {
            if let Some(old_standby) = &view.standby
                && old_standby.info().content_hash != info.content_hash
            {
                statuses.push(status(
                    &old_standby.info().content_hash,
                    ConnectorStatus::Inactive,
                    None,
                ));
            }
            statuses.push(status(
                &view.active.info().content_hash,
                ConnectorStatus::Standby,
                None,
            ));
            statuses.push(status(&info.content_hash, ConnectorStatus::Active, None));
            format!("from the {}", options.source)
        }
        (None, _) => {
            statuses.push(status(&info.content_hash, ConnectorStatus::Active, None));
            format!("from the {}", options.source)
        }
    };
    (detail, statuses)
}

fn status(hash: &str, status: ConnectorStatus, reason: Option<&str>) -> ConnectorStatusChange {
    ConnectorStatusChange {
        content_hash: hash.to_string(),
        status,
        reason: reason.map(str::to_string),
    }
}

async fn wasm_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    use anyhow::Context as _;
    let mut entries = tokio::fs::read_dir(dir)
        .await
        .with_context(|| format!("reading the connector directory {}", dir.display()))?;
    let mut paths = Vec::new();
    while let Some(entry) = entries.next_entry().await? {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "wasm") {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// Size and modification time: what says a file changed.
type Stamp = (u64, Option<SystemTime>);

/// Polls a directory for `.wasm` files that appear or change.
struct DirWatcher {
    dir: PathBuf,
    /// What each file looked like when last handled.
    handled: HashMap<PathBuf, Stamp>,
    /// Changed files, with how they looked at the last poll.
    settling: HashMap<PathBuf, Stamp>,
}

impl DirWatcher {
    /// Starts from the files present now (the bootstrap handled them).
    async fn start(dir: PathBuf) -> DirWatcher {
        let handled = stamps(&dir).await;
        DirWatcher {
            dir,
            handled,
            settling: HashMap::new(),
        }
    }

    /// Files that changed and then stayed unchanged for one poll, with their bytes.
    async fn changed_files(&mut self) -> Vec<(PathBuf, Vec<u8>)> {
        let now = stamps(&self.dir).await;
        let mut ready = Vec::new();
        for (path, stamp) in &now {
            if self.handled.get(path) == Some(stamp) {
                self.settling.remove(path);
                continue;
            }
            if self.settling.get(path) == Some(stamp) {
                self.settling.remove(path);
                self.handled.insert(path.clone(), *stamp);
                match tokio::fs::read(path).await {
                    Ok(bytes) => ready.push((path.clone(), bytes)),
                    Err(error) => {
                        tracing::warn!(path = %path.display(), %error, "cannot read a connector file")
                    }
                }
            } else {
                self.settling.insert(path.clone(), *stamp);
            }
        }
        self.handled.retain(|path, _| now.contains_key(path));
        ready
    }
}

async fn stamps(dir: &Path) -> HashMap<PathBuf, Stamp> {
    let mut out = HashMap::new();
    let Ok(paths) = wasm_files(dir).await else {
        return out;
    };
    for path in paths {
        if let Ok(meta) = tokio::fs::metadata(&path).await {
            out.insert(path, (meta.len(), meta.modified().ok()));
        }
    }
    out
}
