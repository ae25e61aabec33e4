//! Prometheus metrics (`GET /metrics`, text format 0.0.4), through
//! `prometheus-client`: one registry per server, so servers in one process
//! (the tests') never share counters.
//!
//! Counters and histograms live in memory and start at zero with the
//! process, as Prometheus expects; the store's gauges (pending work, its age,
//! dead letters) and the connector versions in service are read when scraped
//! ([`Metrics::render`]). Names follow Prometheus' conventions: the unit in
//! the name, `_total` on counters, one concept per label. Every name is
//! listed in `deploy/` (dashboard, alert rules) only if a test has seen it in
//! a scrape (`tests/it/deploy.rs`).

mod process;

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::store::{AuditOutcome, QueueStats, RunStatus};

/// Upper bounds of the connector call latency histogram, in seconds.
const CALL_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

/// Upper bounds of the activation run duration histogram, in seconds.
const RUN_BUCKETS: [f64; 10] = [
    0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    integration: String,
    /// delivered, skipped, retry, canary_retry, failed, dead_letter.
    outcome: &'static str,
    /// What a delivery did to the contact (created, updated, unchanged);
    /// `none` for the other outcomes.
    change: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectorLabels {
    connector: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResponseLabels {
    connector: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IntegrationLabels {
    integration: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    activation: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RowLabels {
    activation: String,
    /// inserted, updated, unchanged, failed, skipped.
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActivationLabels {
    activation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SwitchLabels {
    connector: String,
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    connector: String,
    role: &'static str,
    version: String,
    hash: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    /// The connector contract lines this build loads, comma-separated.
    wit: String,
}

type Gauges<L> = Family<L, Gauge>;
type SecondsGauges<L> = Family<L, Gauge<f64, AtomicU64>>;

fn call_histogram() -> Histogram {
    Histogram::new(CALL_BUCKETS)
}

fn run_histogram() -> Histogram {
    Histogram::new(RUN_BUCKETS)
}

/// A name and help text about to be registered with the metric they
/// describe; the registry keeps a clone, the caller the handle.
struct Registration<'r> {
    registry: &'r mut Registry,
    name: String,
    help: String,
}

impl<'r> Registration<'r> {
    fn new(registry: &'r mut Registry, name: &str, help: &str) -> Self {
        Registration {
            registry,
            name: name.to_string(),
            help: help.to_string(),
        }
    }

    fn metric<M: prometheus_client::registry::Metric + Clone>(self, metric: M) -> M {
        self.registry.register(self.name, self.help, metric.clone());
        metric
    }

    fn family<L, M>(self) -> Family<L, M>
    where
        Family<L, M>: prometheus_client::registry::Metric + Clone + Default,
    {
        self.metric(Family::default())
    }
}

/// What one activation run came to, for [`Metrics::activation_run`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RunRows {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub failed: u64,
    pub skipped: u64,
}

/// The host's metrics. Cheap to clone: clones share the registry.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    events: Family<EventLabels, Counter>,
    deliveries: Family<DeliveryLabels, Counter>,
    call_seconds: Family<ConnectorLabels, Histogram, fn() -> Histogram>,
    responses: Family<ResponseLabels, Counter>,
    pending: Gauges<IntegrationLabels>,
    oldest_pending: SecondsGauges<IntegrationLabels>,
    dead_letters: Gauges<IntegrationLabels>,
    runs: Family<RunLabels, Counter>,
    run_seconds: Family<ActivationLabels, Histogram, fn() -> Histogram>,
    rows: Family<RowLabels, Counter>,
    switches: Family<SwitchLabels, Counter>,
    versions: Gauges<VersionLabels>,
    /// Scrapes refresh the store's gauges then encode; one at a time, so
    /// two concurrent scrapes never interleave a clear and a set.
    scrape: tokio::sync::Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let events = Registration::new(
            &mut registry,
            "prefsync_events",
            "Consent events received, by result (recorded, duplicate, rejected)",
        )
        .family();
        let deliveries = Registration::new(
            &mut registry,
            "prefsync_deliveries",
            "Delivery attempts, by integration, outcome (delivered, skipped, retry, canary_retry, failed, dead_letter) and change made to the contact",
        )
        .family();
        let call_seconds = Registration::new(
            &mut registry,
            "prefsync_connector_call_duration_seconds",
            "Connector deliver calls, sandbox and HTTP included, by connector",
        )
        .metric(Family::new_with_constructor(call_histogram as fn() -> _));
        let responses = Registration::new(
            &mut registry,
            "prefsync_connector_http_responses",
            "HTTP responses connectors received, by connector and status",
        )
        .family();
        let pending = Registration::new(
            &mut registry,
            "prefsync_queue_pending_deliveries",
            "Users with a change not yet delivered, by integration",
        )
        .family();
        let oldest_pending = Registration::new(
            &mut registry,
            "prefsync_queue_oldest_pending_age_seconds",
            "How long the oldest undelivered change has waited, by integration (0 when none waits)",
        )
        .family();
        let dead_letters = Registration::new(
            &mut registry,
            "prefsync_dead_letters",
            "Dead letters not replayed yet, by integration",
        )
        .family();
        let runs = Registration::new(
            &mut registry,
            "prefsync_activation_runs",
            "Activation runs finished, by activation and status (succeeded, warning, failed)",
        )
        .family();
        let run_seconds = Registration::new(
            &mut registry,
            "prefsync_activation_run_duration_seconds",
            "Activation run durations, by activation",
        )
        .metric(Family::new_with_constructor(run_histogram as fn() -> _));
        let rows = Registration::new(
            &mut registry,
            "prefsync_activation_rows",
            "Rows activation runs sent or held back, by activation and outcome (inserted, updated, unchanged, failed, skipped)",
        )
        .family();
        let switches = Registration::new(
            &mut registry,
            "prefsync_connector_switches",
            "Connector version changes this host made, by connector and action (install, upgrade, downgrade, canary, promote, rollback, auto_rollback)",
        )
        .family();
        let versions = Registration::new(
            &mut registry,
            "prefsync_connector_info",
            "Connector versions in service, by role (active, standby, canary); always 1",
        )
        .family();
        let build: Gauges<BuildLabels> = Registration::new(
            &mut registry,
            "prefsync_build_info",
            "The prefsync release and the connector contract lines it loads; always 1",
        )
        .family();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
                wit: crate::runtime::SUPPORTED_WIT.join(","),
            })
            .set(1);
        registry.register_collector(Box::new(process::ProcessCollector));
        Metrics {
            inner: Arc::new(Inner {
                registry,
                events,
                deliveries,
                call_seconds,
                responses,
                pending,
                oldest_pending,
                dead_letters,
                runs,
                run_seconds,
                rows,
                switches,
                versions,
                scrape: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Events taken in: new ones and duplicates.
    /// Events taken in: recorded, already seen, and our own write-backs
    /// coming back (`echo`, applied nowhere).
    pub fn events(&self, recorded: u64, duplicates: u64, echoes: u64) {
        let events = &self.inner.events;
        events
            .get_or_create(&EventLabels { result: "echo" })
            .inc_by(echoes);
        events
            .get_or_create(&EventLabels { result: "recorded" })
            .inc_by(recorded);
        events
            .get_or_create(&EventLabels {
                result: "duplicate",
            })
            .inc_by(duplicates);
    }

    pub fn event_rejected(&self) {
        self.inner
            .events
            .get_or_create(&EventLabels { result: "rejected" })
            .inc();
    }

    /// One connector call: its latency and the HTTP statuses it saw.
    pub fn call(&self, connector: &str, duration: Duration, statuses: &[u16]) {
        self.inner
            .call_seconds
            .get_or_create(&ConnectorLabels {
                connector: connector.to_string(),
            })
            .observe(duration.as_secs_f64());
        for status in statuses {
            self.inner
                .responses
                .get_or_create(&ResponseLabels {
                    connector: connector.to_string(),
                    status: *status,
                })
                .inc();
        }
    }

    /// One delivery attempt's outcome.
    pub fn delivery(&self, integration: &str, outcome: AuditOutcome) {
        let (outcome, change) = match outcome {
            AuditOutcome::DeliveredCreated => ("delivered", "created"),
            AuditOutcome::DeliveredUpdated => ("delivered", "updated"),
            AuditOutcome::DeliveredUnchanged => ("delivered", "unchanged"),
            AuditOutcome::Skipped => ("skipped", "none"),
            AuditOutcome::FailedRetryable => ("retry", "none"),
            AuditOutcome::FailedCanary => ("canary_retry", "none"),
            AuditOutcome::FailedPermanent => ("failed", "none"),
            AuditOutcome::DeadLetter => ("dead_letter", "none"),
        };
        self.inner
            .deliveries
            .get_or_create(&DeliveryLabels {
                integration: integration.to_string(),
                outcome,
                change,
            })
            .inc();
    }

    /// One finished activation run.
    pub fn activation_run(
        &self,
        activation: &str,
        status: RunStatus,
        duration: Duration,
        rows: RunRows,
    ) {
        self.inner
            .runs
            .get_or_create(&RunLabels {
                activation: activation.to_string(),
                status: status.as_str(),
            })
            .inc();
        self.inner
            .run_seconds
            .get_or_create(&ActivationLabels {
                activation: activation.to_string(),
            })
            .observe(duration.as_secs_f64());
        for (outcome, count) in [
            ("inserted", rows.inserted),
            ("updated", rows.updated),
            ("unchanged", rows.unchanged),
            ("failed", rows.failed),
            ("skipped", rows.skipped),
        ] {
            self.inner
                .rows
                .get_or_create(&RowLabels {
                    activation: activation.to_string(),
                    outcome,
                })
                .inc_by(count);
        }
    }

    /// One connector version change made by this host.
    pub fn connector_switch(&self, connector: &str, action: crate::store::ConnectorAction) {
        self.inner
            .switches
            .get_or_create(&SwitchLabels {
                connector: connector.to_string(),
                action: action.as_str(),
            })
            .inc();
    }

    /// The text exposition, with the store's gauges and the versions in
    /// service as of now.
    pub async fn render(
        &self,
        queues: &[QueueStats],
        versions: &[VersionInService],
        now_ms: i64,
    ) -> String {
        let inner = &self.inner;
        let _one_scrape = inner.scrape.lock().await;
        // Integrations deleted since the last scrape disappear.
        inner.pending.clear();
        inner.oldest_pending.clear();
        inner.dead_letters.clear();
        for queue in queues {
            let labels = IntegrationLabels {
                integration: queue.integration_id.clone(),
            };
            inner
                .pending
                .get_or_create(&labels)
                .set(i64::try_from(queue.pending).unwrap_or(i64::MAX));
            let waited_ms = queue
                .oldest_pending_since_ms
                .map_or(0, |since| (now_ms - since).max(0));
            inner
                .oldest_pending
                .get_or_create(&labels)
                .set(waited_ms as f64 / 1000.0);
            inner
                .dead_letters
                .get_or_create(&labels)
                .set(i64::try_from(queue.dead_letters).unwrap_or(i64::MAX));
        }
        inner.versions.clear();
        for version in versions {
            inner
                .versions
                .get_or_create(&VersionLabels {
                    connector: version.connector.clone(),
                    role: version.role,
                    version: version.version.clone(),
                    hash: version.hash.clone(),
                })
                .set(1);
        }
        let mut out = String::new();
        // Writing to a String does not fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &inner.registry);
        out
    }
}

/// A connector version in service, for `prefsync_connector_info`.
#[derive(Debug, Clone)]
pub struct VersionInService {
    pub connector: String,
    /// active, standby or canary.
    pub role: &'static str,
    pub version: String,
    pub hash: String,
}

/// The Content-Type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn renders_counters_histograms_and_gauges_under_prometheus_names() {
        let m = Metrics::new();
        m.events(3, 1, 2);
        m.event_rejected();
        m.call("dotdigital", Duration::from_millis(30), &[201, 429]);
        m.delivery("dd", AuditOutcome::DeliveredCreated);
        m.delivery("dd", AuditOutcome::FailedRetryable);
        m.activation_run(
            "weekly",
            RunStatus::Warning,
            Duration::from_secs(2),
            RunRows {
                inserted: 5,
                failed: 1,
                ..RunRows::default()
            },
        );
        m.connector_switch("dotdigital", crate::store::ConnectorAction::Upgrade);
        let queues = [QueueStats {
            integration_id: "dd".to_string(),
            pending: 4,
            oldest_pending_since_ms: Some(1_000),
            dead_letters: 2,
        }];
        let versions = [VersionInService {
            connector: "dotdigital".to_string(),
            role: "active",
            version: "0.2.0".to_string(),
            hash: "ab\"c".to_string(),
        }];
        let text = m.render(&queues, &versions, 13_500).await;
        for line in [
            "prefsync_events_total{result=\"recorded\"} 3",
            "prefsync_events_total{result=\"duplicate\"} 1",
            "prefsync_events_total{result=\"echo\"} 2",
            "prefsync_events_total{result=\"rejected\"} 1",
            "prefsync_deliveries_total{integration=\"dd\",outcome=\"delivered\",change=\"created\"} 1",
            "prefsync_deliveries_total{integration=\"dd\",outcome=\"retry\",change=\"none\"} 1",
            "prefsync_queue_pending_deliveries{integration=\"dd\"} 4",
            "prefsync_queue_oldest_pending_age_seconds{integration=\"dd\"} 12.5",
            "prefsync_dead_letters{integration=\"dd\"} 2",
            "prefsync_connector_call_duration_seconds_bucket{connector=\"dotdigital\",le=\"0.025\"} 0",
            "prefsync_connector_call_duration_seconds_bucket{connector=\"dotdigital\",le=\"0.05\"} 1",
            "prefsync_connector_call_duration_seconds_bucket{connector=\"dotdigital\",le=\"+Inf\"} 1",
            "prefsync_connector_call_duration_seconds_count{connector=\"dotdigital\"} 1",
            "prefsync_connector_http_responses_total{connector=\"dotdigital\",status=\"429\"} 1",
            "prefsync_activation_runs_total{activation=\"weekly\",status=\"warning\"} 1",
            "prefsync_activation_rows_total{activation=\"weekly\",outcome=\"inserted\"} 5",
            "prefsync_activation_rows_total{activation=\"weekly\",outcome=\"failed\"} 1",
            "prefsync_activation_run_duration_seconds_count{activation=\"weekly\"} 1",
            "prefsync_connector_switches_total{connector=\"dotdigital\",action=\"upgrade\"} 1",
            "prefsync_connector_info{connector=\"dotdigital\",role=\"active\",version=\"0.2.0\",hash=\"ab\\\"c\"} 1",
            &format!(
                "prefsync_build_info{{version=\"{}\",wit=\"0.1\"}} 1",
                env!("CARGO_PKG_VERSION")
            ),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
        for family in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{family} missing from:\n{text}"
            );
        }

        // The store's gauges follow the store: a deleted integration goes.
        let text = m.render(&[], &[], 13_500).await;
        assert!(
            !text.contains("prefsync_queue_pending_deliveries{"),
            "{text}"
        );
        assert!(!text.contains("prefsync_connector_info{"), "{text}");
    }
}
