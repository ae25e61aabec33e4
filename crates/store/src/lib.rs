//! Durable state behind one interface: integrations, the event log, each
//! user's merged consent state, the outbox, dead letters and the audit.
//!
//! SQLite (`sqlite.rs`) is the embedded default; PostgreSQL (`postgres.rs`)
//! is the store several hosts share. Nothing here assumes one
//! process owns the queue: work is *claimed* with a lease (owner + expiry),
//! a completion only counts while its lease is still held, and an expired
//! lease lets any host take the work over.
//!
//! The outbox keeps ONE row per (integration, user). A change to the user
//! raises the row's `wanted_version`; a successful delivery acknowledges the
//! version it carried. Several changes while a delivery is pending or in
//! flight therefore coalesce, and two deliveries for the same (integration,
//! user) can never be in flight at once. A delivery always sends the user's
//! *latest* state, so per-user order holds by construction.

pub mod activations;
#[cfg(test)]
mod conformance;
pub mod connectors;
pub mod postgres;
pub mod postgres_tls;
pub mod private_files;
pub mod sqlite;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value as Json;

use prefsync_consent::{EventStatus, UserState};

pub use activations::{
    ActivationRecord, ActivationStore, RunRecord, RunStart, RunStatus, RunTrigger, SnapshotEntry,
};
pub use connectors::{
    ConnectorAction, ConnectorSource, ConnectorStatus, ConnectorStatusChange, ConnectorStore,
    ConnectorSwitch, ConnectorVersion,
};
pub use postgres::PostgresStore;
pub use prefsync_base::names::UnknownName;
pub use sqlite::SqliteStore;

/// Store errors are infrastructure failures (I/O, corruption); callers map
/// them to HTTP 500 / retries, they do not branch on them.
pub type Result<T> = anyhow::Result<T>;

/// An integration as stored: the seed-shaped config and our own columns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntegrationRecord {
    pub id: String,
    pub type_id: String,
    pub enabled: bool,
    /// The whole integration JSON as the user gave it (secrets included;
    /// redact before showing it).
    pub config: Json,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// One accepted event, kept for history and idempotency.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StoredEvent {
    /// Didomi's event id; the primary key (a second copy is a duplicate).
    pub event_id: String,
    pub organization_user_id: String,
    /// The integration an inbound webhook came from; `None` for Didomi events.
    pub origin: Option<String>,
    #[schema(schema_with = event_status_schema)]
    pub status: EventStatus,
    pub created_at_ms: i64,
    pub received_at_ms: i64,
    pub payload: Json,
}

/// The schema of [`EventStatus`] (the consent crate knows no OpenAPI).
fn event_status_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some([
            EventStatus::Confirmed.as_str(),
            EventStatus::PendingApproval.as_str(),
        ]))
        .description(Some(
            "Whether the event is final: `confirmed` (the default) or `pending_approval` (merges nothing).",
        ))
        .build()
}

/// A user's merged state.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub state: UserState,
    pub updated_at_ms: i64,
}

/// What the ingest callback decided, inside the ingest transaction.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IngestPlan {
    /// The user's new state, when it changed (its `version` must have grown).
    pub state: Option<UserState>,
    /// Integrations that must receive the new state.
    pub enqueue: Vec<String>,
    /// The ingest's trace context (a W3C `traceparent`), kept with the
    /// outbox rows it raises so the delivery can link back to it.
    pub trace_context: Option<String>,
}

/// Decides, inside the ingest transaction, what one event changes: given
/// the event's index in the batch, the event and its user's current state
/// (None for a new user), the plan to apply. Owned (`Arc`, `'static`) because the store may run it on its own
/// writer thread, beside other callers' work.
pub type IngestPlanner =
    dyn Fn(usize, &StoredEvent, Option<&UserRecord>) -> Result<IngestPlan> + Send + Sync + 'static;

/// What happened to an ingested event.
#[derive(Debug, Clone, PartialEq)]
pub enum IngestOutcome {
    /// The event id was already stored: nothing changed.
    Duplicate,
    /// Stored; `plan` was applied.
    Recorded { version: u64, enqueued: Vec<String> },
}

/// One (integration, user) row of the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct OutboxEntry {
    pub integration_id: String,
    pub organization_user_id: String,
    /// Latest user state version that must reach the destination.
    pub wanted_version: u64,
    /// Version the destination last acknowledged (delivered, skipped or dead-lettered).
    pub acked_version: u64,
    /// Failed attempts since the last acknowledgement.
    pub attempts: u32,
    pub next_attempt_at_ms: i64,
    pub lease_owner: Option<String>,
    pub lease_until_ms: Option<i64>,
    pub last_error: Option<String>,
    pub updated_at_ms: i64,
}

prefsync_base::named_enum! {
    /// Where a delivery stands; stores compute the name in SQL.
    #[derive(utoipa::ToSchema)]
    pub enum DeliveryStatus("delivery status") {
        /// Due, or waiting for a retry.
        Pending = "pending",
        /// Leased by a dispatcher.
        InFlight = "in_flight",
        Done = "done",
    }
}

prefsync_base::named_enum! {
    /// What one attempt of a delivery came to, as the audit keeps it.
    #[derive(utoipa::ToSchema)]
    pub enum AuditOutcome("audit outcome") {
        /// The destination created the contact.
        DeliveredCreated = "delivered:created",
        /// The destination updated the contact.
        DeliveredUpdated = "delivered:updated",
        /// The destination had the values already.
        DeliveredUnchanged = "delivered:unchanged",
        /// The connector chose not to send (nothing it maps changed).
        Skipped = "skipped",
        /// Failed; tried again later.
        FailedRetryable = "failed:retryable",
        /// The canary's candidate failed; retried on the active version.
        FailedCanary = "failed:canary",
        /// Failed for good.
        FailedPermanent = "failed:permanent",
        /// Given up: moved to the dead letters.
        DeadLetter = "dead_letter",
    }
}

impl AuditOutcome {
    /// Whether the attempt failed (to be retried, or given up on): neither
    /// delivered nor skipped.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            AuditOutcome::FailedRetryable
                | AuditOutcome::FailedCanary
                | AuditOutcome::FailedPermanent
                | AuditOutcome::DeadLetter
        )
    }
}

/// Audit rows of one integration, time bucket and outcome:
/// [`Store::delivery_counts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryCount {
    pub integration_id: String,
    /// `(at_ms - since_ms) / bucket_ms`: 0 for the bucket that starts at `since_ms`.
    pub bucket: i64,
    pub outcome: AuditOutcome,
    /// Audit rows (attempts) with that outcome.
    pub count: u64,
}

/// [`Store::delivery_counts`] in SQL both stores speak (SQLite numbers `$1`
/// and `$2` in order of first appearance, as PostgreSQL does). The
/// numerator is never negative, so integer division is the floor on both.
const DELIVERY_COUNTS: &str = "
    SELECT integration_id, (at_ms - $1) / $2, outcome, COUNT(*)
    FROM audit WHERE at_ms >= $1
    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3";

/// [`Store::latest_failures`] in SQL both stores speak: the newest (largest
/// id) failed audit row of each integration at or after `$1`. `columns`
/// are the store's audit columns.
fn latest_failures_query(columns: &str) -> String {
    let failures: Vec<String> = AuditOutcome::ALL
        .iter()
        .filter(|o| o.is_failure())
        .map(|o| format!("'{}'", o.as_str()))
        .collect();
    format!(
        "SELECT {columns} FROM audit WHERE id IN (
             SELECT MAX(id) FROM audit
             WHERE at_ms >= $1 AND outcome IN ({})
             GROUP BY integration_id)
         ORDER BY integration_id",
        failures.join(", ")
    )
}

/// Refuses a bucket width that would divide by zero or count backwards.
fn check_bucket(bucket_ms: i64) -> Result<()> {
    if bucket_ms <= 0 {
        anyhow::bail!("delivery_counts: bucket_ms must be above 0, not {bucket_ms}");
    }
    Ok(())
}

/// Filters of `GET /v1/deliveries`.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub integration_id: Option<String>,
    pub organization_user_id: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub limit: u32,
}

/// A leased piece of work: deliver `version` of this user to this integration.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub integration_id: String,
    pub organization_user_id: String,
    /// `wanted_version` when claimed.
    pub version: u64,
    /// Failed attempts before this one.
    pub attempts: u32,
    pub lease_owner: String,
    pub lease_until_ms: i64,
    /// The integration the newest change came from (an inbound webhook), if any.
    pub origin: Option<String>,
    /// The trace context (a W3C `traceparent`) of the ingest that raised the
    /// newest change, if it was traced.
    pub trace_context: Option<String>,
}

/// How a claimed delivery ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    /// Delivered or deliberately skipped: acknowledge `claim.version`.
    Acked,
    /// Try again at `next_attempt_at_ms`.
    Retry {
        next_attempt_at_ms: i64,
        error: String,
    },
    /// Give up on this version: record a dead letter and acknowledge it.
    DeadLetter { error: String },
}

/// One claim's end, as [`Store::complete_all`] records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Completed {
    /// The claim, with the version actually sent.
    pub claim: Claim,
    pub completion: Completion,
    /// The attempt's audit row, appended when the lease was still held.
    pub audit: AuditRow,
}

/// A delivery that was given up on; replay puts it back in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeadLetter {
    pub id: i64,
    pub integration_id: String,
    pub organization_user_id: String,
    pub version: u64,
    pub attempts: u32,
    pub last_error: String,
    pub created_at_ms: i64,
    pub replayed_at_ms: Option<i64>,
}

/// One integration's waiting work, as an on-call person watches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    pub integration_id: String,
    /// Outbox rows with work left (wanted > acked).
    pub pending: u64,
    /// When the oldest of those started waiting; `None` when none waits.
    /// Exact to within one connector call: a change that arrives during a
    /// call counts from the call's end.
    pub oldest_pending_since_ms: Option<i64>,
    /// Dead letters not replayed yet.
    pub dead_letters: u64,
}

/// [`Store::queue_stats`] in SQL both stores speak. The `WHERE` clauses are
/// those of the partial indexes `outbox_pending` and
/// `dead_letters_unreplayed`, word for word, so the planners use them.
const QUEUE_STATS: &str = "
    SELECT i.id, COALESCE(q.pending, 0), q.oldest, COALESCE(d.dead, 0)
    FROM integrations i
    LEFT JOIN (SELECT integration_id, COUNT(*) AS pending, MIN(pending_since_ms) AS oldest
               FROM outbox WHERE wanted_version > acked_version
               GROUP BY integration_id) q ON q.integration_id = i.id
    LEFT JOIN (SELECT integration_id, COUNT(*) AS dead
               FROM dead_letters WHERE replayed_at_ms IS NULL
               GROUP BY integration_id) d ON d.integration_id = i.id
    ORDER BY i.id";

/// One delivery attempt: the proof that a consent reached a destination.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditRow {
    /// Assigned by the store; ignored on append.
    pub id: i64,
    pub at_ms: i64,
    pub integration_id: String,
    pub organization_user_id: String,
    pub state_version: u64,
    pub connector_type: String,
    pub connector_version: String,
    pub connector_hash: String,
    pub outcome: AuditOutcome,
    /// Reason or error message (already redacted).
    pub detail: String,
    pub http_statuses: Vec<u16>,
    pub duration_ms: u64,
    /// 1 for the first attempt of this version.
    pub attempt: u32,
    /// Integration the change came from (inbound webhook), if any.
    pub origin: Option<String>,
}

/// Adds one to its counter when dropped: a write counted once it is over,
/// however it ended, so a reader that saw the old count cannot keep what it
/// read before the write as current (see [`Store::integrations_written`]).
pub(crate) struct CountOnDrop<'a>(pub(crate) &'a std::sync::atomic::AtomicU64);

impl Drop for CountOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The storage interface. Every method is one transaction.
#[async_trait]
pub trait Store: ConnectorStore + ActivationStore + Send + Sync + 'static {
    async fn put_integration(&self, integration: &IntegrationRecord) -> Result<()>;
    /// Stores a new integration only if its id is free, in one statement:
    /// true when it was inserted, false (nothing written) when the id exists.
    async fn insert_integration(&self, integration: &IntegrationRecord) -> Result<bool>;
    async fn integration(&self, id: &str) -> Result<Option<IntegrationRecord>>;
    async fn integrations(&self) -> Result<Vec<IntegrationRecord>>;
    /// Deletes the integration and its outbox rows; true when it existed.
    async fn delete_integration(&self, id: &str) -> Result<bool>;
    /// How many integration writes (put, insert, delete) this store and its
    /// clones attempted since it was opened. A copy of [`Store::integrations`]
    /// is current while this number stays the same, for writes made by this
    /// process; another process's (another host on PostgreSQL, the CLI on
    /// the same file) are not counted, so such a copy must also expire.
    fn integrations_written(&self) -> u64;

    /// Stores `events`, in order and all in one transaction: each one unless
    /// its id is known (then it is a [`IngestOutcome::Duplicate`]); for each
    /// one stored, runs `plan` on its user's current state (as the events
    /// before it in the batch left it), saves the state it returns and raises
    /// `wanted_version` of the outbox rows of the integrations it names (due
    /// now unless a retry is already scheduled). One outcome per event, in
    /// order; an error (of the store or of `plan`) stores none of them.
    async fn ingest(
        &self,
        events: Vec<StoredEvent>,
        plan: std::sync::Arc<IngestPlanner>,
    ) -> Result<Vec<IngestOutcome>>;
    async fn user(&self, organization_user_id: &str) -> Result<Option<UserRecord>>;
    /// The states of several users in one read, in the order asked (None
    /// for a user with no state).
    async fn users(&self, organization_user_ids: &[String]) -> Result<Vec<Option<UserRecord>>>;
    /// Clamps every user state's field stamps later than `limit_ms` to
    /// `now_ms` ([`UserState::clamp_stamps_after`]), one user at a time
    /// under the same serialisation as ingest; returns how many users
    /// changed. Values and versions stay: nothing is delivered.
    async fn clamp_future_stamps(&self, limit_ms: i64, now_ms: i64) -> Result<u64>;
    /// Newest first.
    async fn events_for_user(
        &self,
        organization_user_id: &str,
        limit: u32,
    ) -> Result<Vec<StoredEvent>>;

    /// Leases up to `limit` due rows of one integration (wanted > acked,
    /// next attempt due, no live lease), oldest due first.
    async fn claim_due(
        &self,
        integration_id: &str,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Claim>>;
    /// Ends a claim and appends its audit row, atomically; false (and no
    /// change) when the lease is no longer held by `claim.lease_owner`.
    async fn complete(
        &self,
        claim: &Claim,
        completion: &Completion,
        audit: &AuditRow,
        now_ms: i64,
    ) -> Result<bool> {
        let done = self
            .complete_all(
                vec![Completed {
                    claim: claim.clone(),
                    completion: completion.clone(),
                    audit: audit.clone(),
                }],
                now_ms,
            )
            .await?;
        Ok(done.first().copied().unwrap_or(false))
    }
    /// Ends several claims (a batch's outcomes) and appends their audit rows
    /// in one transaction, each as [`Store::complete`] would: one answer per
    /// item, in order, false for a lease no longer held.
    async fn complete_all(&self, completed: Vec<Completed>, now_ms: i64) -> Result<Vec<bool>>;
    /// Gives leases back (graceful shutdown): the rows are due again at once.
    async fn release(&self, claims: &[Claim]) -> Result<()>;
    /// When the integration next has due work (for the dispatcher's sleep).
    async fn next_due_at(&self, integration_id: &str) -> Result<Option<i64>>;
    async fn deliveries(
        &self,
        filter: &DeliveryFilter,
        now_ms: i64,
    ) -> Result<Vec<(OutboxEntry, DeliveryStatus)>>;
    /// Rows with work left (wanted > acked).
    async fn queue_depth(&self) -> Result<u64>;
    /// Every integration's pending work and unreplayed dead letters, ordered
    /// by id; integrations with nothing waiting are listed with zeros. Reads
    /// partial indexes, so its cost follows the waiting work, not the table.
    async fn queue_stats(&self) -> Result<Vec<QueueStats>>;

    async fn dead_letters(&self, integration_id: Option<&str>) -> Result<Vec<DeadLetter>>;
    /// Puts a dead letter's (integration, user) back in the outbox, due now;
    /// false when unknown or already replayed.
    async fn replay_dead_letter(&self, id: i64, now_ms: i64) -> Result<bool>;
    /// Replays every dead letter of an integration; returns how many.
    async fn replay_integration(&self, integration_id: &str, now_ms: i64) -> Result<u64>;

    async fn append_audit(&self, row: &AuditRow) -> Result<()>;
    /// Audit rows at or after `since_ms`, counted per integration, time
    /// bucket (`(at_ms - since_ms) / bucket_ms`, from 0; rows dated later
    /// than the caller's window fall in buckets past it) and outcome,
    /// ordered by those three. `bucket_ms` must be above 0. Reads the index
    /// on `audit(at_ms)`, so its cost follows the window, not the history.
    async fn delivery_counts(&self, since_ms: i64, bucket_ms: i64) -> Result<Vec<DeliveryCount>>;
    /// Each integration's newest failed attempt (an outcome
    /// [`AuditOutcome::is_failure`]: not delivered, not skipped) at or after
    /// `since_ms`, ordered by integration id; integrations without one are
    /// left out.
    async fn latest_failures(&self, since_ms: i64) -> Result<Vec<AuditRow>>;
    /// Oldest first.
    async fn audit_for_user(&self, organization_user_id: &str, limit: u32)
    -> Result<Vec<AuditRow>>;
}
