//! Prometheus metrics (`GET /metrics`, text format 0.0.4). Counters live in
//! memory and start at zero with the process, as Prometheus expects; gauges
//! (queue depth) are read from the store when scraped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::store::AuditOutcome;

/// Upper bounds of the connector call latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

#[derive(Default)]
struct Histogram {
    /// One count per bucket (not cumulative; summed when rendered).
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The host's counters.
#[derive(Default)]
pub struct Metrics {
    events_recorded: AtomicU64,
    events_duplicate: AtomicU64,
    events_rejected: AtomicU64,
    /// (integration, outcome) → deliveries.
    deliveries: Mutex<BTreeMap<(String, String), u64>>,
    /// connector type → call latency.
    latency: Mutex<BTreeMap<String, Histogram>>,
    /// (connector type, status) → responses.
    http: Mutex<BTreeMap<(String, u16), u64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    pub fn events(&self, recorded: u64, duplicates: u64) {
        self.events_recorded.fetch_add(recorded, Ordering::Relaxed);
        self.events_duplicate
            .fetch_add(duplicates, Ordering::Relaxed);
    }

    pub fn event_rejected(&self) {
        self.events_rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// One connector call: its latency and the HTTP statuses it saw.
    pub fn call(&self, connector: &str, duration: Duration, statuses: &[u16]) {
        let seconds = duration.as_secs_f64();
        {
            let mut latency = lock(&self.latency);
            let histogram = latency.entry(connector.to_string()).or_default();
            if let Some(i) = LATENCY_BUCKETS.iter().position(|bound| seconds <= *bound) {
                histogram.buckets[i] += 1;
            }
            histogram.count += 1;
            histogram.sum += seconds;
        }
        let mut http = lock(&self.http);
        for status in statuses {
            *http.entry((connector.to_string(), *status)).or_default() += 1;
        }
    }

    /// One delivery outcome.
    pub fn delivery(&self, integration: &str, outcome: AuditOutcome) {
        *lock(&self.deliveries)
            .entry((integration.to_string(), outcome.as_str().to_string()))
            .or_default() += 1;
    }

    /// The text exposition, with the store's gauges.
    pub fn render(&self, queue_depth: u64, dead_letters: u64) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP prefsync_events_total Consent events received, by result.\n# TYPE prefsync_events_total counter"
        );
        for (result, counter) in [
            ("recorded", &self.events_recorded),
            ("duplicate", &self.events_duplicate),
            ("rejected", &self.events_rejected),
        ] {
            let _ = writeln!(
                out,
                "prefsync_events_total{{result=\"{result}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }

        let _ = writeln!(
            out,
            "# HELP prefsync_deliveries_total Delivery attempts, by integration and outcome.\n# TYPE prefsync_deliveries_total counter"
        );
        for ((integration, outcome), count) in lock(&self.deliveries).iter() {
            let _ = writeln!(
                out,
                "prefsync_deliveries_total{{integration=\"{}\",outcome=\"{}\"}} {count}",
                escape(integration),
                escape(outcome)
            );
        }
        let retries: u64 = lock(&self.deliveries)
            .iter()
            .filter(|((_, outcome), _)| outcome == AuditOutcome::FailedRetryable.as_str())
            .map(|(_, count)| count)
            .sum();
        let _ = writeln!(
            out,
            "# HELP prefsync_retries_total Deliveries scheduled for another attempt.\n# TYPE prefsync_retries_total counter\nprefsync_retries_total {retries}"
        );
        let _ = writeln!(
            out,
            "# HELP prefsync_queue_depth Outbox rows with work left.\n# TYPE prefsync_queue_depth gauge\nprefsync_queue_depth {queue_depth}"
        );
        let _ = writeln!(
            out,
            "# HELP prefsync_dead_letters Dead letters not replayed yet.\n# TYPE prefsync_dead_letters gauge\nprefsync_dead_letters {dead_letters}"
        );

        let _ = writeln!(
            out,
            "# HELP prefsync_connector_call_seconds Connector deliver calls, sandbox and HTTP included.\n# TYPE prefsync_connector_call_seconds histogram"
        );
        for (connector, histogram) in lock(&self.latency).iter() {
            let connector = escape(connector);
            let mut cumulative = 0;
            for (bound, count) in LATENCY_BUCKETS.iter().zip(histogram.buckets) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "prefsync_connector_call_seconds_bucket{{connector=\"{connector}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "prefsync_connector_call_seconds_bucket{{connector=\"{connector}\",le=\"+Inf\"}} {}\n\
                 prefsync_connector_call_seconds_sum{{connector=\"{connector}\"}} {}\n\
                 prefsync_connector_call_seconds_count{{connector=\"{connector}\"}} {}",
                histogram.count, histogram.sum, histogram.count
            );
        }

        let _ = writeln!(
            out,
            "# HELP prefsync_outbound_http_responses_total Responses connectors received, by status.\n# TYPE prefsync_outbound_http_responses_total counter"
        );
        for ((connector, status), count) in lock(&self.http).iter() {
            let _ = writeln!(
                out,
                "prefsync_outbound_http_responses_total{{connector=\"{}\",status=\"{status}\"}} {count}",
                escape(connector)
            );
        }
        out
    }
}

/// Label values escape backslash, quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The connector versions in service, as an info metric: one series per
/// (connector, role) with the version and content hash as labels.
pub fn render_connectors(registry: &super::Registry) -> String {
    let mut out = String::from(
        "# HELP prefsync_connector_info Connector versions in service, by role (active, standby, canary).\n# TYPE prefsync_connector_info gauge\n",
    );
    for type_id in registry.type_ids() {
        let Some(view) = registry.view(&type_id) else {
            continue;
        };
        let canary = view.canary.as_ref().map(|run| run.candidate.clone());
        for (role, destination) in [
            ("active", Some(view.active.clone())),
            ("standby", view.standby.clone()),
            ("canary", canary),
        ] {
            if let Some(destination) = destination {
                let info = destination.info();
                let _ = writeln!(
                    out,
                    "prefsync_connector_info{{connector=\"{}\",role=\"{role}\",version=\"{}\",hash=\"{}\"}} 1",
                    escape(&type_id),
                    escape(&info.version),
                    escape(&info.content_hash)
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histogram_and_gauges() {
        let m = Metrics::default();
        m.events(3, 1);
        m.event_rejected();
        m.call("dotdigital", Duration::from_millis(30), &[201, 429]);
        m.delivery("dd", AuditOutcome::DeliveredCreated);
        m.delivery("dd", AuditOutcome::FailedRetryable);
        let text = m.render(4, 2);
        for line in [
            "prefsync_events_total{result=\"recorded\"} 3",
            "prefsync_events_total{result=\"duplicate\"} 1",
            "prefsync_events_total{result=\"rejected\"} 1",
            "prefsync_deliveries_total{integration=\"dd\",outcome=\"delivered:created\"} 1",
            "prefsync_retries_total 1",
            "prefsync_queue_depth 4",
            "prefsync_dead_letters 2",
            "prefsync_connector_call_seconds_bucket{connector=\"dotdigital\",le=\"0.025\"} 0",
            "prefsync_connector_call_seconds_bucket{connector=\"dotdigital\",le=\"0.05\"} 1",
            "prefsync_connector_call_seconds_bucket{connector=\"dotdigital\",le=\"+Inf\"} 1",
            "prefsync_connector_call_seconds_count{connector=\"dotdigital\"} 1",
            "prefsync_outbound_http_responses_total{connector=\"dotdigital\",status=\"429\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
        assert_eq!(escape("a\"b\\c"), "a\\\"b\\\\c");
    }
}
