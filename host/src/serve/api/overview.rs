//! `GET /v1/overview`: what the console's first page shows — per
//! integration, its deliveries over the last hour and day (from the audit),
//! its waiting work and dead letters (`Store::queue_stats`) and its newest
//! failure; and the deliveries over time, bucketed, for a chart.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use crate::now_ms;
use crate::serve::App;
use crate::store::{AuditOutcome, DeliveryCount};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

pub fn routes() -> Router<Arc<App>> {
    Router::new().route("/v1/overview", get(overview))
}

/// The span the series covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OverviewRange {
    /// The last hour: 12 buckets of 5 minutes.
    Hour,
    /// The last day: 24 buckets of 1 hour.
    Day,
}

impl OverviewRange {
    /// `(bucket_ms, buckets)`.
    fn buckets(self) -> (i64, usize) {
        match self {
            OverviewRange::Hour => (5 * 60_000, 12),
            OverviewRange::Day => (HOUR_MS, 24),
        }
    }
}

/// Query of `GET /v1/overview`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct OverviewQuery {
    /// `hour` (12 buckets of 5 minutes) or `day` (24 buckets of 1 hour, the default).
    #[param(inline, value_type = Option<OverviewRange>)]
    range: Option<String>,
    /// Only this integration's deliveries in the series.
    integration: Option<String>,
}

/// Attempts of one window, by what they came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct OutcomeCounts {
    /// Delivered (`delivered:created`, `delivered:updated`, `delivered:unchanged`).
    pub delivered: u64,
    /// Not sent on purpose by the connector (`skipped`).
    pub skipped: u64,
    /// Failed and retried later (`failed:retryable`, `failed:canary`).
    pub retrying: u64,
    /// Given up on and moved to the dead letters (`failed:permanent` or
    /// `dead_letter`: one audit row per dead letter).
    pub dead_lettered: u64,
}

impl OutcomeCounts {
    fn add(&mut self, outcome: AuditOutcome, count: u64) {
        let slot = match outcome {
            AuditOutcome::DeliveredCreated
            | AuditOutcome::DeliveredUpdated
            | AuditOutcome::DeliveredUnchanged => &mut self.delivered,
            AuditOutcome::Skipped => &mut self.skipped,
            AuditOutcome::FailedRetryable | AuditOutcome::FailedCanary => &mut self.retrying,
            AuditOutcome::FailedPermanent | AuditOutcome::DeadLetter => &mut self.dead_lettered,
        };
        *slot = slot.saturating_add(count);
    }
}

/// An integration's newest failed attempt.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LastError {
    /// When it was made (ms since the Unix epoch).
    pub at_ms: i64,
    /// What it came to: `failed:retryable`, `failed:canary`, `failed:permanent` or `dead_letter`.
    pub outcome: AuditOutcome,
    /// The error, secrets redacted.
    pub detail: String,
    /// The HTTP statuses the destination answered during the attempt.
    pub http_statuses: Vec<u16>,
}

/// One integration at a glance.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct IntegrationOverview {
    /// The integration's id.
    pub id: String,
    /// Its connector type.
    pub type_id: String,
    /// The active version of its connector; null when none is loaded.
    pub connector_version: Option<String>,
    /// Whether it receives deliveries.
    pub enabled: bool,
    /// Attempts of the last 60 minutes.
    pub last_hour: OutcomeCounts,
    /// Attempts of the last 24 hours.
    pub last_day: OutcomeCounts,
    /// Users with a change waiting to be delivered.
    pub pending: u64,
    /// How long the oldest waiting change has waited, in seconds; null when none waits.
    pub oldest_pending_age_s: Option<u64>,
    /// Dead letters not replayed yet.
    pub dead_letters: u64,
    /// Its newest failed attempt of the last 24 hours, if any.
    pub last_error: Option<LastError>,
}

/// One bucket of the series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct SeriesBucket {
    /// Where the bucket starts (ms since the Unix epoch); it lasts `bucket_ms`.
    pub start_ms: i64,
    /// Delivered attempts in it.
    pub delivered: u64,
    /// Skipped attempts in it.
    pub skipped: u64,
    /// Attempts to be retried in it.
    pub retrying: u64,
    /// Deliveries given up on in it.
    pub dead_lettered: u64,
}

/// Attempts over time, in buckets aligned to the bucket width (UTC); the last
/// bucket holds `now_ms`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Series {
    /// Each bucket's width: 300000 (`hour`) or 3600000 (`day`).
    pub bucket_ms: i64,
    /// Where the first bucket starts.
    pub start_ms: i64,
    /// 12 (`hour`) or 24 (`day`) buckets, oldest first.
    pub buckets: Vec<SeriesBucket>,
}

/// The answer of `GET /v1/overview`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Overview {
    /// When it was computed (ms since the Unix epoch).
    pub now_ms: i64,
    /// The span of the series.
    pub range: OverviewRange,
    /// Every integration, by id.
    pub integrations: Vec<IntegrationOverview>,
    /// Attempts over `range` (of one integration with `integration=`).
    pub series: Series,
}

/// Deliveries per integration and over time, waiting work and dead letters.
#[utoipa::path(
    get,
    path = "/v1/overview",
    operation_id = "overview",
    tag = "deliveries",
    params(OverviewQuery),
    responses(
        (status = 200, description = "Every integration at a glance, and the series.", body = Overview),
        (status = 400, description = "A bad query parameter, named.", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token.", body = ErrorBody),
        (status = 404, description = "`integration` names no integration.", body = ErrorBody),
        (status = 500, description = "The store failed.", body = ErrorBody),
    ),
    security(("admin" = []))
)]
async fn overview(
    State(app): State<Arc<App>>,
    query: Result<Query<OverviewQuery>, QueryRejection>,
) -> Result<Json<Overview>, ApiError> {
    let Query(query) = query?;
    let range = match query.range.as_deref() {
        None => OverviewRange::Day,
        Some("hour") => OverviewRange::Hour,
        Some("day") => OverviewRange::Day,
        Some(_) => {
            return Err(ApiError::bad_request(
                "range: must be `hour` or `day` (the default)",
            ));
        }
    };
    let now = now_ms();
    let integrations = app.store.integrations().await?;
    if let Some(id) = &query.integration
        && !integrations.iter().any(|i| &i.id == id)
    {
        return Err(ApiError::not_found(format!(
            "integration: no integration `{id}`"
        )));
    }
    let day_start = now.saturating_sub(DAY_MS);
    // Hour buckets from exactly a day ago: the last one is the last hour.
    let per_hour = app.store.delivery_counts(day_start, HOUR_MS).await?;
    let (bucket_ms, count) = range.buckets();
    let series_start = series_start(now, bucket_ms, count);
    let series_counts = app.store.delivery_counts(series_start, bucket_ms).await?;
    let queues: HashMap<String, crate::store::QueueStats> = app
        .store
        .queue_stats()
        .await?
        .into_iter()
        .map(|q| (q.integration_id.clone(), q))
        .collect();
    let mut failures: HashMap<String, LastError> = app
        .store
        .latest_failures(day_start)
        .await?
        .into_iter()
        .map(|row| {
            (
                row.integration_id,
                LastError {
                    at_ms: row.at_ms,
                    outcome: row.outcome,
                    detail: row.detail,
                    http_statuses: row.http_statuses,
                },
            )
        })
        .collect();
    let (last_hour, last_day) = windows(&per_hour);
    let shown = integrations
        .into_iter()
        .map(|record| {
            let queue = queues.get(&record.id);
            IntegrationOverview {
                connector_version: app
                    .connectors
                    .get(&record.type_id)
                    .map(|d| d.info().version.clone()),
                last_hour: last_hour.get(&record.id).copied().unwrap_or_default(),
                last_day: last_day.get(&record.id).copied().unwrap_or_default(),
                pending: queue.map_or(0, |q| q.pending),
                oldest_pending_age_s: queue
                    .and_then(|q| q.oldest_pending_since_ms)
                    .map(|since| u64::try_from(now.saturating_sub(since) / 1000).unwrap_or(0)),
                dead_letters: queue.map_or(0, |q| q.dead_letters),
                last_error: failures.remove(&record.id),
                id: record.id,
                type_id: record.type_id,
                enabled: record.enabled,
            }
        })
        .collect();
    Ok(Json(Overview {
        now_ms: now,
        range,
        integrations: shown,
        series: series(
            &series_counts,
            query.integration.as_deref(),
            series_start,
            bucket_ms,
            count,
        ),
    }))
}

/// Where the first of `count` buckets of `bucket_ms` starts, so that they
/// are aligned to the width and the last one holds `now`.
fn series_start(now: i64, bucket_ms: i64, count: usize) -> i64 {
    let last = now.div_euclid(bucket_ms) * bucket_ms;
    last.saturating_sub(bucket_ms.saturating_mul(count as i64 - 1))
}

/// Per integration, the counts of its last hour and of its last day, from
/// hour buckets starting exactly a day ago (bucket 23 is the last hour;
/// rows dated after now, from a host whose clock runs ahead, count as now).
fn windows(
    per_hour: &[DeliveryCount],
) -> (
    HashMap<String, OutcomeCounts>,
    HashMap<String, OutcomeCounts>,
) {
    let mut hour: HashMap<String, OutcomeCounts> = HashMap::new();
    let mut day: HashMap<String, OutcomeCounts> = HashMap::new();
    for row in per_hour {
        day.entry(row.integration_id.clone())
            .or_default()
            .add(row.outcome, row.count);
        if row.bucket >= 23 {
            hour.entry(row.integration_id.clone())
                .or_default()
                .add(row.outcome, row.count);
        }
    }
    (hour, day)
}

/// The series' buckets from counts made from `start` (of one integration
/// when `only` names it); rows dated past the last bucket count in it.
fn series(
    counts: &[DeliveryCount],
    only: Option<&str>,
    start: i64,
    bucket_ms: i64,
    count: usize,
) -> Series {
    let mut tallies = vec![OutcomeCounts::default(); count];
    for row in counts {
        if only.is_some_and(|id| id != row.integration_id) {
            continue;
        }
        let index = usize::try_from(row.bucket).unwrap_or(0).min(count - 1);
        tallies[index].add(row.outcome, row.count);
    }
    Series {
        bucket_ms,
        start_ms: start,
        buckets: tallies
            .into_iter()
            .enumerate()
            .map(|(i, t)| SeriesBucket {
                start_ms: start + bucket_ms * i as i64,
                delivered: t.delivered,
                skipped: t.skipped,
                retrying: t.retrying,
                dead_lettered: t.dead_lettered,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(id: &str, bucket: i64, outcome: AuditOutcome, n: u64) -> DeliveryCount {
        DeliveryCount {
            integration_id: id.into(),
            bucket,
            outcome,
            count: n,
        }
    }

    #[test]
    fn the_last_bucket_holds_now_and_buckets_are_aligned() {
        let now = 1_800_000_123_456;
        let start = series_start(now, HOUR_MS, 24);
        assert_eq!(start % HOUR_MS, 0);
        let last = start + 23 * HOUR_MS;
        assert!(last <= now && now < last + HOUR_MS);
        let start = series_start(now, 300_000, 12);
        assert_eq!(start + 11 * 300_000, now - now % 300_000);
        // `now` exactly on a boundary opens the last bucket.
        assert_eq!(series_start(3 * HOUR_MS, HOUR_MS, 2), 2 * HOUR_MS);
    }

    #[test]
    fn outcomes_are_grouped_and_windows_split_at_the_last_hour() {
        use AuditOutcome as O;
        let rows = [
            count("dd", 0, O::DeliveredCreated, 2),
            count("dd", 22, O::DeliveredUpdated, 3),
            count("dd", 23, O::DeliveredUnchanged, 1),
            count("dd", 23, O::FailedRetryable, 4),
            count("dd", 23, O::FailedCanary, 1),
            count("dd", 23, O::FailedPermanent, 1),
            count("dd", 24, O::DeadLetter, 1),
            count("crm", 5, O::Skipped, 7),
        ];
        let (hour, day) = windows(&rows);
        assert_eq!(
            hour["dd"],
            OutcomeCounts {
                delivered: 1,
                skipped: 0,
                retrying: 5,
                dead_lettered: 2
            }
        );
        assert_eq!(
            day["dd"],
            OutcomeCounts {
                delivered: 6,
                skipped: 0,
                retrying: 5,
                dead_lettered: 2
            }
        );
        assert!(!hour.contains_key("crm"));
        assert_eq!(day["crm"].skipped, 7);

        let all = series(&rows, None, 1_000, 10, 24);
        assert_eq!(all.buckets.len(), 24);
        assert_eq!(all.buckets[0].delivered, 2);
        assert_eq!(all.buckets[5].skipped, 7);
        assert_eq!(
            (all.buckets[23].start_ms, all.buckets[23].dead_lettered),
            (1_230, 2)
        );
        let one = series(&rows, Some("crm"), 1_000, 10, 24);
        let total: u64 = one
            .buckets
            .iter()
            .map(|b| b.delivered + b.skipped + b.retrying + b.dead_lettered)
            .sum();
        assert_eq!(total, 7);
    }
}
