//! The durable half of activations (scheduled reverse-ETL syncs): the
//! activations themselves, their run history, the lease that keeps runs of
//! one activation from overlapping (on one host or several sharing a
//! store), and the per-key snapshot of what the destination last accepted.

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value as Json;

use super::Result;

/// An activation as stored: its config document and its schedule state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActivationRecord {
    pub id: String,
    /// The destination integration (also inside `config`, kept apart to query).
    pub integration_id: String,
    /// The activation's JSON document, as accepted.
    pub config: Json,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// When the scheduler next starts a run; `None`: manual only.
    pub next_run_at_ms: Option<i64>,
}

prefsync_base::named_enum! {
    /// Where a run stands.
    #[derive(utoipa::ToSchema)]
    pub enum RunStatus("activation run status") {
        Running = "running",
        /// Finished, every row written or unchanged, under the warning threshold.
        Succeeded = "succeeded",
        /// Finished, but it raised a warning (rejected share above the threshold).
        Warning = "warning",
        /// Could not finish (source unreadable, destination refused the batch).
        Failed = "failed",
        /// Its host stopped holding the lease (crash) before it finished.
        Abandoned = "abandoned",
    }
}

prefsync_base::named_enum! {
    /// What started a run.
    #[derive(utoipa::ToSchema)]
    pub enum RunTrigger("activation run trigger") {
        /// The activation's schedule.
        Schedule = "schedule",
        /// `POST /v1/activations/{id}/run`.
        Api = "api",
        /// `prefsync activation run`.
        Cli = "cli",
    }
}

impl RunStatus {
    /// Whether a run that ended this way raised a warning.
    pub fn is_unhealthy(self) -> bool {
        matches!(self, RunStatus::Warning | RunStatus::Failed)
    }
}

/// One run of an activation, as the history shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RunRecord {
    pub id: i64,
    pub activation_id: String,
    pub trigger: RunTrigger,
    /// The host that ran it.
    pub host: String,
    /// Whether it ignored the snapshot and sent every row in full.
    pub full_resync: bool,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    pub status: RunStatus,
    /// Once finished: the counts, warnings and first errors
    /// (`activation::RunSummary`). While running: its progress,
    /// `{"progress": {"rows_read", "rows_sent", "updated_at_ms"}}`, refreshed
    /// at least every second.
    pub summary: Json,
}

/// How a run is started.
#[derive(Debug, Clone)]
pub struct RunStart {
    pub trigger: RunTrigger,
    pub host: String,
    pub full_resync: bool,
    pub now_ms: i64,
    /// The lease lasts until `now_ms + lease_ms` unless renewed.
    pub lease_ms: i64,
}

/// What the snapshot knows of one key.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotEntry {
    pub key: String,
    /// The key's number in its activation's snapshot: from 1, one per key,
    /// never reused. A run marks the keys it has seen in a bitmap of these
    /// numbers (a repeated key is the same number), so looking a known key up
    /// never writes.
    pub key_number: u64,
    /// The hashes of the values the destination last accepted; `None`: never accepted.
    pub accepted: Option<Vec<u8>>,
}
#[async_trait]
pub trait ActivationStore: Send + Sync {
    /// Creates or replaces an activation (keeping its creation time); the
    /// snapshot and history stay.
    async fn put_activation(&self, record: &ActivationRecord) -> Result<()>;
    /// Stores a new activation only if its id is free, in one statement:
    /// true when it was inserted, false (nothing written) when the id exists.
    async fn insert_activation(&self, record: &ActivationRecord) -> Result<bool>;
    async fn activation(&self, id: &str) -> Result<Option<ActivationRecord>>;
    async fn activations(&self) -> Result<Vec<ActivationRecord>>;
    /// Removes an activation with its snapshot and history; false if unknown.
    async fn delete_activation(&self, id: &str) -> Result<bool>;

    /// Starts a run of `id` and takes its lease, unless a live lease is held
    /// (then `None`). A run whose lease lapsed is marked abandoned.
    async fn begin_run(&self, id: &str, start: &RunStart) -> Result<Option<i64>>;
    /// Starts a run of one activation whose `next_run_at_ms` has come and
    /// whose lease is free: each due run is taken by exactly one caller.
    async fn begin_due_run(&self, start: &RunStart) -> Result<Option<(ActivationRecord, i64)>>;
    /// Extends the lease of a running run; false when it was lost.
    async fn renew_run(&self, id: &str, run_id: i64, until_ms: i64) -> Result<bool>;
    /// Replaces the summary of run `run_id` of `id` while it is running
    /// (its progress, `{"progress": {…}}`); false, and nothing written, once
    /// it has ended (finished or abandoned), so a late report never
    /// overwrites the finished summary.
    async fn record_run_progress(&self, id: &str, run_id: i64, summary: &Json) -> Result<bool>;
    /// Records the end of a run, frees the lease and sets the next scheduled time.
    async fn finish_run(
        &self,
        id: &str,
        run_id: i64,
        status: RunStatus,
        summary: &Json,
        finished_at_ms: i64,
        next_run_at_ms: Option<i64>,
    ) -> Result<()>;
    /// The newest `limit` runs of `id`, newest first.
    async fn runs(&self, id: &str, limit: u32) -> Result<Vec<RunRecord>>;

    /// Looks `keys` (distinct) up in the snapshot: one entry per key, in
    /// order. A key it lacks is added (nothing accepted) under the next key
    /// number; a known key is only read. An error when the activation does
    /// not exist and a key is new.
    async fn snapshot_lookup(&self, id: &str, keys: Vec<String>) -> Result<Vec<SnapshotEntry>>;
    /// Records what the destination accepted: key (looked up before) →
    /// hashes of the values.
    async fn snapshot_accept(&self, id: &str, accepted: Vec<(String, Vec<u8>)>) -> Result<()>;
    /// How many keys the destination has accepted so far.
    async fn snapshot_size(&self, id: &str) -> Result<u64>;
}

/// Values the stores' tests share.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::ActivationRecord;

    /// An activation `id` syncing to the integration `engage`.
    pub fn record(id: &str) -> ActivationRecord {
        ActivationRecord {
            id: id.to_string(),
            integration_id: "engage".to_string(),
            config: serde_json::json!({ "id": id }),
            created_at_ms: 10,
            updated_at_ms: 10,
            next_run_at_ms: None,
        }
    }

    /// Snapshot keys `user{i}@example.com` for `i` in `range`.
    pub fn keys(range: std::ops::Range<u32>) -> Vec<String> {
        range.map(|i| format!("user{i}@example.com")).collect()
    }
}
