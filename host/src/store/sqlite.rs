//! The embedded default store: one SQLite file (WAL mode).
//!
//! # Tables
//!
//! - `integrations(id PK, type_id, enabled, config, created_at_ms, updated_at_ms)`:
//!   `config` is the integration JSON as text.
//! - `events(event_id PK, organization_user_id, origin, status, created_at_ms,
//!   received_at_ms, payload)`: every accepted event (history and idempotency);
//!   indexed on `(organization_user_id, received_at_ms)`.
//! - `users(organization_user_id PK, state, version, updated_at_ms)`: the merged
//!   [`UserState`] as JSON text; `version` repeats `state.version` for queries.
//! - `outbox(integration_id, organization_user_id, wanted_version, acked_version,
//!   attempts, next_attempt_at_ms, lease_owner, lease_until_ms, last_error,
//!   updated_at_ms, origin)`, primary key `(integration_id, organization_user_id)`: one
//!   row per pair, work is left while `wanted_version > acked_version`; indexed
//!   on `(integration_id, next_attempt_at_ms)` for claiming. Rows reference
//!   `integrations` (`ON DELETE CASCADE`).
//! - `dead_letters(id PK AUTOINCREMENT, integration_id, organization_user_id,
//!   version, attempts, last_error, created_at_ms, replayed_at_ms)`.
//! - `audit(id PK AUTOINCREMENT, at_ms, integration_id, organization_user_id,
//!   state_version, connector_type, connector_version, connector_hash, outcome,
//!   detail, http_statuses, duration_ms, attempt, origin)`: append-only;
//!   `http_statuses` is a JSON array as text; indexed on `(organization_user_id, id)`.
//!
//! - `plugin_versions` and `plugin_switches`: the connector registry (`sqlite/plugins.rs`).
//!
//! Dead letters and audit rows do not reference `integrations`: history
//! outlives the integration it is about.
//!
//! The schema version is `PRAGMA user_version`: migration `n` (1-based) in
//! [`MIGRATIONS`] is applied, together with setting `user_version = n`, in one
//! transaction, so a crash mid-migration leaves the previous version intact.
//!
//! # Concurrency
//!
//! One connection behind a mutex. Every trait method runs as one transaction
//! on tokio's blocking pool (`BEGIN IMMEDIATE` when it writes, so a second
//! process sharing the file waits for the write lock up front instead of
//! failing to upgrade a read transaction halfway).

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use async_trait::async_trait;
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    AuditRow, Claim, Completion, DeadLetter, DeliveryFilter, DeliveryStatus, IngestOutcome,
    IngestPlan, IntegrationRecord, OutboxEntry, Result, Store, StoredEvent, UserRecord,
};
use crate::consent::UserState;

mod plugins;

/// Schema migrations, in order. Never edit a released one: add another.
const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    r#"
    CREATE TABLE integrations (
        id            TEXT    NOT NULL PRIMARY KEY,
        type_id       TEXT    NOT NULL,
        enabled       INTEGER NOT NULL,
        config        TEXT    NOT NULL,
        created_at_ms INTEGER NOT NULL,
        updated_at_ms INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE events (
        event_id             TEXT    NOT NULL PRIMARY KEY,
        organization_user_id TEXT    NOT NULL,
        origin               TEXT,
        status               TEXT    NOT NULL,
        created_at_ms        INTEGER NOT NULL,
        received_at_ms       INTEGER NOT NULL,
        payload              TEXT    NOT NULL
    ) STRICT;
    CREATE INDEX events_by_user ON events (organization_user_id, received_at_ms);

    CREATE TABLE users (
        organization_user_id TEXT    NOT NULL PRIMARY KEY,
        state                TEXT    NOT NULL,
        version              INTEGER NOT NULL,
        updated_at_ms        INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE outbox (
        integration_id       TEXT    NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
        organization_user_id TEXT    NOT NULL,
        wanted_version       INTEGER NOT NULL,
        acked_version        INTEGER NOT NULL,
        attempts             INTEGER NOT NULL,
        next_attempt_at_ms   INTEGER NOT NULL,
        lease_owner          TEXT,
        lease_until_ms       INTEGER,
        last_error           TEXT,
        updated_at_ms        INTEGER NOT NULL,
        PRIMARY KEY (integration_id, organization_user_id)
    ) STRICT;
    CREATE INDEX outbox_due ON outbox (integration_id, next_attempt_at_ms);

    CREATE TABLE dead_letters (
        id                   INTEGER PRIMARY KEY AUTOINCREMENT,
        integration_id       TEXT    NOT NULL,
        organization_user_id TEXT    NOT NULL,
        version              INTEGER NOT NULL,
        attempts             INTEGER NOT NULL,
        last_error           TEXT    NOT NULL,
        created_at_ms        INTEGER NOT NULL,
        replayed_at_ms       INTEGER
    ) STRICT;
    CREATE INDEX dead_letters_by_integration ON dead_letters (integration_id, id);

    CREATE TABLE audit (
        id                   INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms                INTEGER NOT NULL,
        integration_id       TEXT    NOT NULL,
        organization_user_id TEXT    NOT NULL,
        state_version        INTEGER NOT NULL,
        connector_type       TEXT    NOT NULL,
        connector_version    TEXT    NOT NULL,
        connector_hash       TEXT    NOT NULL,
        outcome              TEXT    NOT NULL,
        detail               TEXT    NOT NULL,
        http_statuses        TEXT    NOT NULL,
        duration_ms          INTEGER NOT NULL,
        attempt              INTEGER NOT NULL,
        origin               TEXT
    ) STRICT;
    CREATE INDEX audit_by_user ON audit (organization_user_id, id);
    "#,
    // 2: the integration the newest change of a pending delivery came from
    // (an inbound webhook), copied into the audit row of its attempts.
    r#"
    ALTER TABLE outbox ADD COLUMN origin TEXT;
    "#,
    // 3: the connector registry (see `plugins.rs`).
    r#"
    CREATE TABLE plugin_versions (
        type_id       TEXT    NOT NULL,
        content_hash  TEXT    NOT NULL,
        version       TEXT    NOT NULL,
        wit_version   TEXT    NOT NULL,
        description   TEXT    NOT NULL,
        source        TEXT    NOT NULL,
        loaded_at_ms  INTEGER NOT NULL,
        status        TEXT    NOT NULL,
        status_reason TEXT,
        status_at_ms  INTEGER NOT NULL,
        wasm          BLOB    NOT NULL,
        PRIMARY KEY (type_id, content_hash)
    ) STRICT;

    CREATE TABLE plugin_switches (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms        INTEGER NOT NULL,
        type_id      TEXT    NOT NULL,
        action       TEXT    NOT NULL,
        from_version TEXT,
        from_hash    TEXT,
        to_version   TEXT    NOT NULL,
        to_hash      TEXT    NOT NULL,
        detail       TEXT    NOT NULL
    ) STRICT;
    CREATE INDEX plugin_switches_by_type ON plugin_switches (type_id, id);
    "#,
];

/// `deliveries` answers this many rows when the filter's limit is 0.
const DEFAULT_DELIVERIES_LIMIT: u32 = 100;

/// The SQLite [`Store`]. Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating it and its parent directories if missing) the database
    /// at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating the directory {}", parent.display()))?;
        }
        let mut conn = Connection::open(path)
            .with_context(|| format!("opening the database {}", path.display()))?;
        configure(&conn).with_context(|| format!("configuring the database {}", path.display()))?;
        migrate(&mut conn).with_context(|| format!("migrating the database {}", path.display()))?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `body` as one transaction on the blocking pool and commits it if
    /// it returns `Ok`; an `Err` (or a panic) rolls it back.
    async fn transaction<T, F>(&self, op: &'static str, write: bool, body: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let behavior = if write {
            TransactionBehavior::Immediate
        } else {
            TransactionBehavior::Deferred
        };
        tokio::task::spawn_blocking(move || -> Result<T> {
            let mut conn = lock(&conn)?;
            let tx = conn.transaction_with_behavior(behavior)?;
            let value = body(&tx)?;
            tx.commit()?;
            Ok(value)
        })
        .await
        .with_context(|| format!("sqlite store: {op}: task failed"))?
        .with_context(|| format!("sqlite store: {op}"))
    }
}

/// Locks the connection. A panic while it was held poisons the mutex, but the
/// connection is still usable: the panicking transaction was rolled back when
/// it was dropped during unwinding (and is rolled back here if that failed).
fn lock(conn: &Mutex<Connection>) -> Result<std::sync::MutexGuard<'_, Connection>> {
    let guard = conn.lock().unwrap_or_else(PoisonError::into_inner);
    if !guard.is_autocommit() {
        guard
            .execute_batch("ROLLBACK")
            .context("rolling back a transaction left open by a panic")?;
    }
    Ok(guard)
}

fn configure(conn: &Connection) -> Result<()> {
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        bail!("journal_mode is {mode}, WAL was asked for");
    }
    // FULL: an fsync at every commit, so an acknowledged write survives a power loss.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.busy_timeout(Duration::from_millis(5000))?;
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<()> {
    for (index, sql) in MIGRATIONS.iter().enumerate() {
        let target = i64::try_from(index + 1)?;
        // Immediate: another process opening the same file at the same time
        // waits here and then sees the version already raised.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if current >= target {
            continue;
        }
        tx.execute_batch(sql)
            .with_context(|| format!("applying migration {target}"))?;
        tx.pragma_update(None, "user_version", target)?;
        tx.commit()?;
    }
    let current: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if current > i64::try_from(MIGRATIONS.len())? {
        bail!(
            "schema version {current} is newer than this build knows ({}); upgrade prefsync",
            MIGRATIONS.len()
        );
    }
    Ok(())
}

// --- Row mapping -------------------------------------------------------------

/// Reads a JSON text column.
fn json_column<T: DeserializeOwned>(row: &Row<'_>, index: usize) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text)
        .map_err(|err| rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(err)))
}

/// Reads an unsigned column (rusqlite converts u64 only with a feature this
/// crate does not enable; SQLite integers are i64 anyway).
fn u64_column(row: &Row<'_>, index: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(index)?;
    u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(index, value))
}

/// An unsigned value as an SQLite integer.
fn sql_int(value: u64) -> Result<i64> {
    i64::try_from(value).with_context(|| format!("{value} does not fit an SQLite integer"))
}

fn to_json<T: Serialize>(value: &T) -> Result<String> {
    Ok(serde_json::to_string(value)?)
}

const INTEGRATION_COLUMNS: &str = "id, type_id, enabled, config, created_at_ms, updated_at_ms";

fn integration_from_row(row: &Row<'_>) -> rusqlite::Result<IntegrationRecord> {
    Ok(IntegrationRecord {
        id: row.get(0)?,
        type_id: row.get(1)?,
        enabled: row.get(2)?,
        config: json_column(row, 3)?,
        created_at_ms: row.get(4)?,
        updated_at_ms: row.get(5)?,
    })
}

const EVENT_COLUMNS: &str =
    "event_id, organization_user_id, origin, status, created_at_ms, received_at_ms, payload";

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<StoredEvent> {
    Ok(StoredEvent {
        event_id: row.get(0)?,
        organization_user_id: row.get(1)?,
        origin: row.get(2)?,
        status: row.get(3)?,
        created_at_ms: row.get(4)?,
        received_at_ms: row.get(5)?,
        payload: json_column(row, 6)?,
    })
}

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        state: json_column(row, 0)?,
        updated_at_ms: row.get(1)?,
    })
}

const OUTBOX_COLUMNS: &str = "integration_id, organization_user_id, wanted_version, \
     acked_version, attempts, next_attempt_at_ms, lease_owner, lease_until_ms, last_error, \
     updated_at_ms";

fn outbox_from_row(row: &Row<'_>) -> rusqlite::Result<OutboxEntry> {
    Ok(OutboxEntry {
        integration_id: row.get(0)?,
        organization_user_id: row.get(1)?,
        wanted_version: u64_column(row, 2)?,
        acked_version: u64_column(row, 3)?,
        attempts: row.get(4)?,
        next_attempt_at_ms: row.get(5)?,
        lease_owner: row.get(6)?,
        lease_until_ms: row.get(7)?,
        last_error: row.get(8)?,
        updated_at_ms: row.get(9)?,
    })
}

/// Statuses as `deliveries` computes them in SQL.
fn status_name(status: DeliveryStatus) -> &'static str {
    match status {
        DeliveryStatus::Pending => "pending",
        DeliveryStatus::InFlight => "in_flight",
        DeliveryStatus::Done => "done",
    }
}

fn status_from_row(row: &Row<'_>, index: usize) -> rusqlite::Result<DeliveryStatus> {
    let name: String = row.get(index)?;
    [
        DeliveryStatus::Pending,
        DeliveryStatus::InFlight,
        DeliveryStatus::Done,
    ]
    .into_iter()
    .find(|status| status_name(*status) == name)
    .ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            Type::Text,
            anyhow!("unknown delivery status {name}").into(),
        )
    })
}

const DEAD_LETTER_COLUMNS: &str = "id, integration_id, organization_user_id, version, attempts, \
     last_error, created_at_ms, replayed_at_ms";

fn dead_letter_from_row(row: &Row<'_>) -> rusqlite::Result<DeadLetter> {
    Ok(DeadLetter {
        id: row.get(0)?,
        integration_id: row.get(1)?,
        organization_user_id: row.get(2)?,
        version: u64_column(row, 3)?,
        attempts: row.get(4)?,
        last_error: row.get(5)?,
        created_at_ms: row.get(6)?,
        replayed_at_ms: row.get(7)?,
    })
}

const AUDIT_COLUMNS: &str = "id, at_ms, integration_id, organization_user_id, state_version, \
     connector_type, connector_version, connector_hash, outcome, detail, http_statuses, \
     duration_ms, attempt, origin";

fn audit_from_row(row: &Row<'_>) -> rusqlite::Result<AuditRow> {
    Ok(AuditRow {
        id: row.get(0)?,
        at_ms: row.get(1)?,
        integration_id: row.get(2)?,
        organization_user_id: row.get(3)?,
        state_version: u64_column(row, 4)?,
        connector_type: row.get(5)?,
        connector_version: row.get(6)?,
        connector_hash: row.get(7)?,
        outcome: row.get(8)?,
        detail: row.get(9)?,
        http_statuses: json_column(row, 10)?,
        duration_ms: u64_column(row, 11)?,
        attempt: row.get(12)?,
        origin: row.get(13)?,
    })
}

// --- Statements shared by several operations ---------------------------------

fn load_user(tx: &Transaction<'_>, organization_user_id: &str) -> Result<Option<UserRecord>> {
    let mut stmt = tx
        .prepare_cached("SELECT state, updated_at_ms FROM users WHERE organization_user_id = ?1")?;
    Ok(stmt
        .query_row([organization_user_id], user_from_row)
        .optional()?)
}

fn save_user(tx: &Transaction<'_>, state: &UserState, updated_at_ms: i64) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO users (organization_user_id, state, version, updated_at_ms)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (organization_user_id) DO UPDATE SET
             state = excluded.state,
             version = excluded.version,
             updated_at_ms = excluded.updated_at_ms",
    )?
    .execute(params![
        state.organization_user_id,
        to_json(state)?,
        sql_int(state.version)?,
        updated_at_ms
    ])?;
    Ok(())
}

fn integration_exists(tx: &Transaction<'_>, id: &str) -> Result<bool> {
    let mut stmt = tx.prepare_cached("SELECT 1 FROM integrations WHERE id = ?1")?;
    Ok(stmt.exists([id])?)
}

/// Raises the outbox row's `wanted_version` to `version` (creating the row).
/// A row that had no work left gets a clean slate, due at `now_ms`; a row with
/// pending work keeps its attempts and schedule (a retry already scheduled
/// stays scheduled, and will carry the newest state). A version that is not
/// newer than the row's changes nothing.
fn enqueue(
    tx: &Transaction<'_>,
    integration_id: &str,
    organization_user_id: &str,
    version: u64,
    now_ms: i64,
    origin: Option<&str>,
) -> Result<()> {
    // In SET, every column reference reads the row as it was before the update.
    tx.prepare_cached(
        "INSERT INTO outbox (integration_id, organization_user_id, wanted_version,
             acked_version, attempts, next_attempt_at_ms, updated_at_ms, origin)
         VALUES (?1, ?2, ?3, 0, 0, ?4, ?4, ?5)
         ON CONFLICT (integration_id, organization_user_id) DO UPDATE SET
             wanted_version = excluded.wanted_version,
             origin = excluded.origin,
             attempts = CASE WHEN acked_version >= wanted_version THEN 0 ELSE attempts END,
             last_error = CASE WHEN acked_version >= wanted_version THEN NULL ELSE last_error END,
             next_attempt_at_ms = CASE WHEN acked_version >= wanted_version
                 THEN excluded.next_attempt_at_ms ELSE next_attempt_at_ms END,
             updated_at_ms = excluded.updated_at_ms
         WHERE excluded.wanted_version > outbox.wanted_version",
    )?
    .execute(params![
        integration_id,
        organization_user_id,
        sql_int(version)?,
        now_ms,
        origin
    ])?;
    Ok(())
}

fn insert_audit(tx: &Transaction<'_>, row: &AuditRow) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO audit (at_ms, integration_id, organization_user_id, state_version,
             connector_type, connector_version, connector_hash, outcome, detail,
             http_statuses, duration_ms, attempt, origin)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        row.at_ms,
        row.integration_id,
        row.organization_user_id,
        sql_int(row.state_version)?,
        row.connector_type,
        row.connector_version,
        row.connector_hash,
        row.outcome,
        row.detail,
        to_json(&row.http_statuses)?,
        sql_int(row.duration_ms)?,
        row.attempt,
        row.origin,
    ])?;
    Ok(())
}

/// Marks dead letter `id` replayed and makes its (integration, user) due
/// again; true when work was re-queued, false when the dead letter is unknown,
/// already replayed, or its integration no longer exists.
fn replay(tx: &Transaction<'_>, id: i64, now_ms: i64) -> Result<bool> {
    let found = tx
        .prepare_cached(
            "SELECT integration_id, organization_user_id, version FROM dead_letters
             WHERE id = ?1 AND replayed_at_ms IS NULL",
        )?
        .query_row([id], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                u64_column(row, 2)?,
            ))
        })
        .optional()?;
    let Some((integration_id, organization_user_id, version)) = found else {
        return Ok(false);
    };
    tx.prepare_cached("UPDATE dead_letters SET replayed_at_ms = ?2 WHERE id = ?1")?
        .execute(params![id, now_ms])?;
    if !integration_exists(tx, &integration_id)? {
        return Ok(false);
    }
    // Lowering the acknowledgement below the dead letter's version makes the
    // row's work pending again; `wanted_version` is never lowered, so the
    // replayed delivery carries the latest state. The row may be missing if
    // the integration was deleted and created again: then it is recreated.
    tx.prepare_cached(
        "INSERT INTO outbox (integration_id, organization_user_id, wanted_version,
             acked_version, attempts, next_attempt_at_ms, updated_at_ms)
         VALUES (?1, ?2, ?3, ?4, 0, ?5, ?5)
         ON CONFLICT (integration_id, organization_user_id) DO UPDATE SET
             wanted_version = MAX(wanted_version, excluded.wanted_version),
             acked_version = MIN(acked_version, excluded.acked_version),
             attempts = 0,
             last_error = NULL,
             next_attempt_at_ms = excluded.next_attempt_at_ms,
             updated_at_ms = excluded.updated_at_ms",
    )?
    .execute(params![
        integration_id,
        organization_user_id,
        sql_int(version)?,
        sql_int(version.saturating_sub(1))?,
        now_ms
    ])?;
    Ok(true)
}

// --- Ingest --------------------------------------------------------------------

/// The ingest transaction. `plan` borrows from the caller, so it cannot move
/// to the blocking thread; instead this side sends the user's current state
/// to the caller (`to_plan`), which runs `plan` and sends back its answer
/// (`planned`) while this transaction stays open. If the caller goes away (its
/// future dropped, or `plan` panicked) the channel closes and the transaction
/// rolls back.
fn ingest_transaction(
    tx: &Transaction<'_>,
    event: &StoredEvent,
    to_plan: tokio::sync::oneshot::Sender<Option<UserRecord>>,
    planned: mpsc::Receiver<Result<IngestPlan>>,
) -> Result<IngestOutcome> {
    let duplicate = tx
        .prepare_cached("SELECT 1 FROM events WHERE event_id = ?1")?
        .exists([&event.event_id])?;
    if duplicate {
        return Ok(IngestOutcome::Duplicate);
    }
    tx.prepare_cached(&format!(
        "INSERT INTO events ({EVENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    ))?
    .execute(params![
        event.event_id,
        event.organization_user_id,
        event.origin,
        event.status,
        event.created_at_ms,
        event.received_at_ms,
        to_json(&event.payload)?,
    ])?;

    let current = load_user(tx, &event.organization_user_id)?;
    let current_version = current.as_ref().map_or(0, |user| user.state.version);
    to_plan
        .send(current)
        .map_err(|_| anyhow!("ingest abandoned by its caller"))?;
    let plan = planned
        .recv()
        .map_err(|_| anyhow!("ingest abandoned by its caller"))??;

    let version = match &plan.state {
        Some(state) => {
            if state.organization_user_id != event.organization_user_id {
                bail!(
                    "plan returned the state of {:?} for an event of {:?}",
                    state.organization_user_id,
                    event.organization_user_id
                );
            }
            save_user(tx, state, event.received_at_ms)?;
            state.version
        }
        None => current_version,
    };

    let mut enqueued: Vec<String> = Vec::new();
    for integration_id in &plan.enqueue {
        // An integration deleted since the caller listed it gets nothing (its
        // outbox rows are gone with it); it is left out of `enqueued`.
        if enqueued.contains(integration_id) || !integration_exists(tx, integration_id)? {
            continue;
        }
        enqueue(
            tx,
            integration_id,
            &event.organization_user_id,
            version,
            event.received_at_ms,
            event.origin.as_deref(),
        )?;
        enqueued.push(integration_id.clone());
    }
    Ok(IngestOutcome::Recorded { version, enqueued })
}

// --- The trait -----------------------------------------------------------------

#[async_trait]
impl Store for SqliteStore {
    async fn put_integration(&self, integration: &IntegrationRecord) -> Result<()> {
        let integration = integration.clone();
        self.transaction("put_integration", true, move |tx| {
            tx.prepare_cached(&format!(
                "INSERT INTO integrations ({INTEGRATION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (id) DO UPDATE SET
                     type_id = excluded.type_id,
                     enabled = excluded.enabled,
                     config = excluded.config,
                     updated_at_ms = excluded.updated_at_ms"
            ))?
            .execute(params![
                integration.id,
                integration.type_id,
                integration.enabled,
                to_json(&integration.config)?,
                integration.created_at_ms,
                integration.updated_at_ms,
            ])?;
            Ok(())
        })
        .await
    }

    async fn integration(&self, id: &str) -> Result<Option<IntegrationRecord>> {
        let id = id.to_owned();
        self.transaction("integration", false, move |tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {INTEGRATION_COLUMNS} FROM integrations WHERE id = ?1"
            ))?;
            Ok(stmt.query_row([&id], integration_from_row).optional()?)
        })
        .await
    }

    async fn integrations(&self) -> Result<Vec<IntegrationRecord>> {
        self.transaction("integrations", false, move |tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {INTEGRATION_COLUMNS} FROM integrations ORDER BY id"
            ))?;
            let rows = stmt.query_map([], integration_from_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn delete_integration(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.transaction("delete_integration", true, move |tx| {
            // The foreign key cascades too; deleting explicitly keeps the
            // intent visible. Dead letters and audit rows stay: history.
            tx.execute("DELETE FROM outbox WHERE integration_id = ?1", [&id])?;
            let deleted = tx.execute("DELETE FROM integrations WHERE id = ?1", [&id])?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn ingest(
        &self,
        event: &StoredEvent,
        plan: &(dyn for<'u> Fn(Option<&'u UserRecord>) -> Result<IngestPlan> + Send + Sync),
    ) -> Result<IngestOutcome> {
        let event = event.clone();
        let (to_plan, from_store) = tokio::sync::oneshot::channel::<Option<UserRecord>>();
        let (to_store, planned) = mpsc::sync_channel::<Result<IngestPlan>>(1);
        let transaction = self.transaction("ingest", true, move |tx| {
            ingest_transaction(tx, &event, to_plan, planned)
        });
        let asked = async {
            // Closed without a value: a duplicate or an error, nothing to plan.
            if let Ok(current) = from_store.await {
                // A send error means the transaction already failed; its
                // error is what `transaction` returns.
                let _ = to_store.send(plan(current.as_ref()));
            }
        };
        let (outcome, ()) = tokio::join!(transaction, asked);
        outcome
    }

    async fn user(&self, organization_user_id: &str) -> Result<Option<UserRecord>> {
        let organization_user_id = organization_user_id.to_owned();
        self.transaction("user", false, move |tx| {
            load_user(tx, &organization_user_id)
        })
        .await
    }

    async fn events_for_user(
        &self,
        organization_user_id: &str,
        limit: u32,
    ) -> Result<Vec<StoredEvent>> {
        let organization_user_id = organization_user_id.to_owned();
        self.transaction("events_for_user", false, move |tx| {
            // rowid breaks ties between events received in the same millisecond.
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE organization_user_id = ?1
                 ORDER BY received_at_ms DESC, rowid DESC LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![organization_user_id, limit], event_from_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn claim_due(
        &self,
        integration_id: &str,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Claim>> {
        let integration_id = integration_id.to_owned();
        let owner = owner.to_owned();
        self.transaction("claim_due", true, move |tx| {
            let lease_until_ms = now_ms.saturating_add(lease_ms);
            let due: Vec<(String, u64, u32, Option<String>)> = tx
                .prepare_cached(
                    "SELECT organization_user_id, wanted_version, attempts, origin FROM outbox
                     WHERE integration_id = ?1
                       AND wanted_version > acked_version
                       AND next_attempt_at_ms <= ?2
                       AND (lease_until_ms IS NULL OR lease_until_ms <= ?2)
                     ORDER BY next_attempt_at_ms, organization_user_id
                     LIMIT ?3",
                )?
                .query_map(params![integration_id, now_ms, limit], |row| {
                    Ok((row.get(0)?, u64_column(row, 1)?, row.get(2)?, row.get(3)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut lease = tx.prepare_cached(
                "UPDATE outbox SET lease_owner = ?3, lease_until_ms = ?4, updated_at_ms = ?5
                 WHERE integration_id = ?1 AND organization_user_id = ?2",
            )?;
            let mut claims = Vec::with_capacity(due.len());
            for (organization_user_id, version, attempts, origin) in due {
                lease.execute(params![
                    integration_id,
                    organization_user_id,
                    owner,
                    lease_until_ms,
                    now_ms
                ])?;
                claims.push(Claim {
                    integration_id: integration_id.clone(),
                    organization_user_id,
                    version,
                    attempts,
                    lease_owner: owner.clone(),
                    lease_until_ms,
                    origin,
                });
            }
            Ok(claims)
        })
        .await
    }

    async fn complete(
        &self,
        claim: &Claim,
        completion: &Completion,
        audit: &AuditRow,
        now_ms: i64,
    ) -> Result<bool> {
        let claim = claim.clone();
        let completion = completion.clone();
        let audit = audit.clone();
        self.transaction("complete", true, move |tx| {
            // Every update is conditional on the lease (?1..?4), so a lost
            // lease changes nothing: the check and the change are one statement.
            const HELD: &str = "WHERE integration_id = ?1 AND organization_user_id = ?2
                 AND lease_owner = ?3 AND lease_until_ms = ?4";
            let (integration_id, user, owner, until) = (
                &claim.integration_id,
                &claim.organization_user_id,
                &claim.lease_owner,
                claim.lease_until_ms,
            );
            let version = sql_int(claim.version)?;
            let changed = match &completion {
                Completion::Acked => tx
                    .prepare_cached(&format!(
                        "UPDATE outbox SET acked_version = MAX(acked_version, ?5), attempts = 0,
                             last_error = NULL, lease_owner = NULL, lease_until_ms = NULL,
                             next_attempt_at_ms = ?6, updated_at_ms = ?6 {HELD}"
                    ))?
                    .execute(params![integration_id, user, owner, until, version, now_ms])?,
                Completion::Retry {
                    next_attempt_at_ms,
                    error,
                } => tx
                    .prepare_cached(&format!(
                        "UPDATE outbox SET attempts = attempts + 1, last_error = ?5,
                             lease_owner = NULL, lease_until_ms = NULL,
                             next_attempt_at_ms = ?6, updated_at_ms = ?7 {HELD}"
                    ))?
                    .execute(params![
                        integration_id,
                        user,
                        owner,
                        until,
                        error,
                        next_attempt_at_ms,
                        now_ms
                    ])?,
                Completion::DeadLetter { error } => {
                    let changed = tx
                        .prepare_cached(&format!(
                            "UPDATE outbox SET acked_version = MAX(acked_version, ?5),
                                 attempts = 0, last_error = ?6, lease_owner = NULL,
                                 lease_until_ms = NULL, next_attempt_at_ms = ?7,
                                 updated_at_ms = ?7 {HELD}"
                        ))?
                        .execute(params![
                            integration_id,
                            user,
                            owner,
                            until,
                            version,
                            error,
                            now_ms
                        ])?;
                    if changed > 0 {
                        tx.prepare_cached(
                            "INSERT INTO dead_letters (integration_id, organization_user_id,
                                 version, attempts, last_error, created_at_ms)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        )?
                        .execute(params![
                            integration_id,
                            user,
                            version,
                            claim.attempts.saturating_add(1),
                            error,
                            now_ms
                        ])?;
                    }
                    changed
                }
            };
            if changed == 0 {
                return Ok(false);
            }
            insert_audit(tx, &audit)?;
            Ok(true)
        })
        .await
    }

    async fn release(&self, claims: &[Claim]) -> Result<()> {
        let claims = claims.to_vec();
        self.transaction("release", true, move |tx| {
            // `next_attempt_at_ms` is left alone: the row was due when it was
            // claimed, so it is due again at once. `updated_at_ms` is left
            // alone too: release only undoes the claim, and this method has
            // no clock (the store never reads the wall clock itself).
            let mut stmt = tx.prepare_cached(
                "UPDATE outbox SET lease_owner = NULL, lease_until_ms = NULL
                 WHERE integration_id = ?1 AND organization_user_id = ?2
                   AND lease_owner = ?3 AND lease_until_ms = ?4",
            )?;
            for claim in &claims {
                stmt.execute(params![
                    claim.integration_id,
                    claim.organization_user_id,
                    claim.lease_owner,
                    claim.lease_until_ms
                ])?;
            }
            Ok(())
        })
        .await
    }

    async fn next_due_at(&self, integration_id: &str) -> Result<Option<i64>> {
        let integration_id = integration_id.to_owned();
        self.transaction("next_due_at", false, move |tx| {
            // A leased row can be claimed again only once its lease ran out.
            let mut stmt = tx.prepare_cached(
                "SELECT MIN(MAX(next_attempt_at_ms, COALESCE(lease_until_ms, next_attempt_at_ms)))
                 FROM outbox WHERE integration_id = ?1 AND wanted_version > acked_version",
            )?;
            Ok(stmt.query_row([&integration_id], |row| row.get(0))?)
        })
        .await
    }

    async fn deliveries(
        &self,
        filter: &DeliveryFilter,
        now_ms: i64,
    ) -> Result<Vec<(OutboxEntry, DeliveryStatus)>> {
        let filter = filter.clone();
        self.transaction("deliveries", false, move |tx| {
            let limit = match filter.limit {
                0 => DEFAULT_DELIVERIES_LIMIT,
                limit => limit,
            };
            // The status is computed first and filtered on after, so the
            // limit applies to matching rows.
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT * FROM (
                     SELECT {OUTBOX_COLUMNS},
                         CASE WHEN lease_until_ms > ?3 THEN 'in_flight'
                              WHEN wanted_version > acked_version THEN 'pending'
                              ELSE 'done' END AS status
                     FROM outbox
                     WHERE (?1 IS NULL OR integration_id = ?1)
                       AND (?2 IS NULL OR organization_user_id = ?2))
                 WHERE ?4 IS NULL OR status = ?4
                 ORDER BY updated_at_ms DESC, integration_id, organization_user_id
                 LIMIT ?5"
            ))?;
            let rows = stmt.query_map(
                params![
                    filter.integration_id,
                    filter.organization_user_id,
                    now_ms,
                    filter.status.map(status_name),
                    limit
                ],
                |row| Ok((outbox_from_row(row)?, status_from_row(row, 10)?)),
            )?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn queue_depth(&self) -> Result<u64> {
        self.transaction("queue_depth", false, move |tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT COUNT(*) FROM outbox WHERE wanted_version > acked_version",
            )?;
            Ok(stmt.query_row([], |row| u64_column(row, 0))?)
        })
        .await
    }

    async fn dead_letters(&self, integration_id: Option<&str>) -> Result<Vec<DeadLetter>> {
        let integration_id = integration_id.map(str::to_owned);
        self.transaction("dead_letters", false, move |tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters
                 WHERE ?1 IS NULL OR integration_id = ?1
                 ORDER BY id DESC"
            ))?;
            let rows = stmt.query_map([integration_id], dead_letter_from_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn replay_dead_letter(&self, id: i64, now_ms: i64) -> Result<bool> {
        self.transaction("replay_dead_letter", true, move |tx| replay(tx, id, now_ms))
            .await
    }

    async fn replay_integration(&self, integration_id: &str, now_ms: i64) -> Result<u64> {
        let integration_id = integration_id.to_owned();
        self.transaction("replay_integration", true, move |tx| {
            let ids: Vec<i64> = tx
                .prepare_cached(
                    "SELECT id FROM dead_letters
                     WHERE integration_id = ?1 AND replayed_at_ms IS NULL ORDER BY id",
                )?
                .query_map([&integration_id], |row| row.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut requeued = 0;
            for id in ids {
                if replay(tx, id, now_ms)? {
                    requeued += 1;
                }
            }
            Ok(requeued)
        })
        .await
    }

    async fn append_audit(&self, row: &AuditRow) -> Result<()> {
        let row = row.clone();
        self.transaction("append_audit", true, move |tx| insert_audit(tx, &row))
            .await
    }

    async fn audit_for_user(
        &self,
        organization_user_id: &str,
        limit: u32,
    ) -> Result<Vec<AuditRow>> {
        let organization_user_id = organization_user_id.to_owned();
        self.transaction("audit_for_user", false, move |tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {AUDIT_COLUMNS} FROM audit WHERE organization_user_id = ?1
                 ORDER BY id LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![organization_user_id, limit], audit_from_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::json;
    use tempfile::TempDir;

    use super::*;

    const LEASE: i64 = 1_000;

    fn open() -> (TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("nested/dir/prefsync.db")).expect("open");
        (dir, store)
    }

    fn integration(id: &str, at_ms: i64) -> IntegrationRecord {
        IntegrationRecord {
            id: id.to_string(),
            type_id: "dotdigital".to_string(),
            enabled: true,
            config: json!({ "id": id, "settings": { "region": "r1" } }),
            created_at_ms: at_ms,
            updated_at_ms: at_ms,
        }
    }

    fn event(id: &str, user: &str, received_at_ms: i64) -> StoredEvent {
        StoredEvent {
            event_id: id.to_string(),
            organization_user_id: user.to_string(),
            origin: None,
            status: "confirmed".to_string(),
            created_at_ms: received_at_ms - 10,
            received_at_ms,
            payload: json!({ "id": id }),
        }
    }

    /// A plan that bumps the user's version and enqueues `integrations`.
    fn bump(
        integrations: &[&str],
    ) -> impl for<'u> Fn(Option<&'u UserRecord>) -> Result<IngestPlan> + Send + Sync + use<> {
        let enqueue: Vec<String> = integrations.iter().map(|id| id.to_string()).collect();
        move |current: Option<&UserRecord>| {
            let mut state = match current {
                Some(user) => user.state.clone(),
                None => UserState::new("user"),
            };
            state.version += 1;
            Ok(IngestPlan {
                state: Some(state),
                enqueue: enqueue.clone(),
            })
        }
    }

    /// Ingests a fresh event for "user" that bumps its version.
    async fn change(store: &SqliteStore, event_id: &str, at_ms: i64, integrations: &[&str]) -> u64 {
        match store
            .ingest(&event(event_id, "user", at_ms), &bump(integrations))
            .await
            .expect("ingest")
        {
            IngestOutcome::Recorded { version, .. } => version,
            IngestOutcome::Duplicate => panic!("unexpected duplicate {event_id}"),
        }
    }

    /// Ingests for another user (the plan names the state after it).
    async fn change_user(
        store: &SqliteStore,
        user: &str,
        event_id: &str,
        at_ms: i64,
        integration: &str,
    ) {
        let user_id = user.to_string();
        let enqueue = vec![integration.to_string()];
        let plan = move |current: Option<&UserRecord>| {
            let mut state =
                current.map_or_else(|| UserState::new(user_id.clone()), |u| u.state.clone());
            state.version += 1;
            Ok(IngestPlan {
                state: Some(state),
                enqueue: enqueue.clone(),
            })
        };
        store
            .ingest(&event(event_id, user, at_ms), &plan)
            .await
            .expect("ingest");
    }

    fn audit(claim: &Claim, outcome: &str, at_ms: i64) -> AuditRow {
        AuditRow {
            id: 0,
            at_ms,
            integration_id: claim.integration_id.clone(),
            organization_user_id: claim.organization_user_id.clone(),
            state_version: claim.version,
            connector_type: "dotdigital".to_string(),
            connector_version: "0.1.0".to_string(),
            connector_hash: "abc123".to_string(),
            outcome: outcome.to_string(),
            detail: String::new(),
            http_statuses: vec![200, 201],
            duration_ms: 12,
            attempt: claim.attempts + 1,
            origin: None,
        }
    }

    async fn claim_one(store: &SqliteStore, owner: &str, now_ms: i64) -> Claim {
        let mut claims = store
            .claim_due("crm", owner, now_ms, LEASE, 10)
            .await
            .expect("claim");
        assert_eq!(claims.len(), 1, "{claims:?}");
        claims.remove(0)
    }

    async fn row(store: &SqliteStore, user: &str) -> OutboxEntry {
        let filter = DeliveryFilter {
            integration_id: Some("crm".to_string()),
            organization_user_id: Some(user.to_string()),
            ..DeliveryFilter::default()
        };
        let mut rows = store.deliveries(&filter, 0).await.expect("deliveries");
        assert_eq!(rows.len(), 1, "{rows:?}");
        rows.remove(0).0
    }

    /// A store with integration "crm" and "user" at version 1, due at 100.
    async fn with_one_change() -> (TempDir, SqliteStore) {
        let (dir, store) = open();
        store
            .put_integration(&integration("crm", 1))
            .await
            .expect("put");
        assert_eq!(change(&store, "e1", 100, &["crm"]).await, 1);
        (dir, store)
    }

    #[tokio::test]
    async fn migrations_are_idempotent_and_data_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a/b/prefsync.db");
        {
            let store = SqliteStore::open(&path).expect("open");
            store
                .put_integration(&integration("crm", 1))
                .await
                .expect("put");
            change(&store, "e1", 100, &["crm"]).await;
        }
        for _ in 0..2 {
            let store = SqliteStore::open(&path).expect("reopen");
            assert_eq!(store.integrations().await.expect("list").len(), 1);
            let user = store.user("user").await.expect("user").expect("stored");
            assert_eq!((user.state.version, user.updated_at_ms), (1, 100));
            assert_eq!(store.queue_depth().await.expect("depth"), 1);
        }
        let conn = Connection::open(&path).expect("raw open");
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .expect("user_version");
        assert_eq!(version, MIGRATIONS.len() as i64);
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .expect("journal_mode");
        assert_eq!(mode, "wal");
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("prefsync.db");
        drop(SqliteStore::open(&path).expect("open"));
        let conn = Connection::open(&path).expect("raw open");
        conn.pragma_update(None, "user_version", 99).expect("set");
        drop(conn);
        let err = SqliteStore::open(&path).expect_err("newer schema");
        assert!(format!("{err:#}").contains("newer"), "{err:#}");
    }

    #[tokio::test]
    async fn integration_crud_keeps_created_at() {
        let (_dir, store) = open();
        assert_eq!(store.integration("crm").await.expect("get"), None);
        store
            .put_integration(&integration("crm", 10))
            .await
            .expect("put");
        store
            .put_integration(&integration("ads", 11))
            .await
            .expect("put");

        let mut updated = integration("crm", 50);
        updated.enabled = false;
        updated.config = json!({ "id": "crm", "changed": true });
        store.put_integration(&updated).await.expect("update");
        let stored = store
            .integration("crm")
            .await
            .expect("get")
            .expect("exists");
        assert_eq!(stored.created_at_ms, 10);
        assert_eq!(stored.updated_at_ms, 50);
        assert!(!stored.enabled);
        assert_eq!(stored.config, json!({ "id": "crm", "changed": true }));

        let ids: Vec<String> = store
            .integrations()
            .await
            .expect("list")
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(ids, ["ads", "crm"]);

        assert!(store.delete_integration("crm").await.expect("delete"));
        assert!(!store.delete_integration("crm").await.expect("delete again"));
        assert_eq!(store.integration("crm").await.expect("get"), None);
    }

    #[tokio::test]
    async fn a_duplicate_event_changes_nothing() {
        let (_dir, store) = with_one_change().await;
        let calls = AtomicUsize::new(0);
        let counting = |current: Option<&UserRecord>| {
            calls.fetch_add(1, Ordering::SeqCst);
            bump(&["crm"])(current)
        };
        let again = store
            .ingest(&event("e1", "user", 200), &counting)
            .await
            .expect("ingest");
        assert_eq!(again, IngestOutcome::Duplicate);
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        assert_eq!(
            store
                .user("user")
                .await
                .expect("user")
                .expect("some")
                .state
                .version,
            1
        );
        assert_eq!(
            store
                .events_for_user("user", 10)
                .await
                .expect("events")
                .len(),
            1
        );
        assert_eq!(row(&store, "user").await.updated_at_ms, 100);
    }

    #[tokio::test]
    async fn a_failing_plan_stores_nothing() {
        let (_dir, store) = open();
        store
            .put_integration(&integration("crm", 1))
            .await
            .expect("put");
        let failing =
            |_: Option<&UserRecord>| -> Result<IngestPlan> { Err(anyhow!("merge failed")) };
        let err = store
            .ingest(&event("e1", "user", 100), &failing)
            .await
            .expect_err("plan error");
        assert!(format!("{err:#}").contains("merge failed"), "{err:#}");
        assert!(
            store
                .events_for_user("user", 10)
                .await
                .expect("events")
                .is_empty()
        );
        assert_eq!(store.user("user").await.expect("user"), None);
        assert_eq!(store.queue_depth().await.expect("depth"), 0);
        // Not remembered as seen: the same event goes through once the plan works.
        assert_eq!(change(&store, "e1", 100, &["crm"]).await, 1);
    }

    #[tokio::test]
    async fn a_panicking_plan_rolls_back_and_the_store_keeps_working() {
        let (_dir, store) = with_one_change().await;
        let panicking = store.clone();
        let task = tokio::spawn(async move {
            let plan = |_: Option<&UserRecord>| -> Result<IngestPlan> { panic!("plan bug") };
            panicking.ingest(&event("e2", "user", 200), &plan).await
        });
        assert!(task.await.expect_err("panicked").is_panic());
        assert_eq!(
            store
                .events_for_user("user", 10)
                .await
                .expect("events")
                .len(),
            1
        );
        assert_eq!(change(&store, "e2", 200, &["crm"]).await, 2);
    }

    #[test]
    fn a_poisoned_lock_is_recovered_and_its_transaction_rolled_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = Connection::open(dir.path().join("raw.db")).expect("open");
        let conn = Arc::new(Mutex::new(conn));
        let poisoner = Arc::clone(&conn);
        let result = std::thread::spawn(move || {
            let guard = poisoner.lock().expect("lock");
            guard
                .execute_batch("BEGIN; CREATE TABLE t (x);")
                .expect("begin");
            panic!("while holding the lock");
        })
        .join();
        assert!(result.is_err());
        assert!(conn.is_poisoned());
        let guard = lock(&conn).expect("recovered");
        assert!(guard.is_autocommit());
        let tables: i64 = guard
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 't'",
                [],
                |row| row.get(0),
            )
            .expect("count");
        assert_eq!(tables, 0);
    }

    #[tokio::test]
    async fn ingest_records_the_version_and_skips_unknown_integrations() {
        let (_dir, store) = open();
        store
            .put_integration(&integration("crm", 1))
            .await
            .expect("put");
        let outcome = store
            .ingest(&event("e1", "user", 100), &bump(&["crm", "gone", "crm"]))
            .await
            .expect("ingest");
        assert_eq!(
            outcome,
            IngestOutcome::Recorded {
                version: 1,
                enqueued: vec!["crm".to_string()]
            }
        );
        // A plan that changes nothing reports the stored version.
        let unchanged = |_: Option<&UserRecord>| Ok(IngestPlan::default());
        let outcome = store
            .ingest(&event("e2", "user", 200), &unchanged)
            .await
            .expect("ingest");
        assert_eq!(
            outcome,
            IngestOutcome::Recorded {
                version: 1,
                enqueued: vec![]
            }
        );
        let outcome = store
            .ingest(&event("e3", "new-user", 200), &unchanged)
            .await
            .expect("ingest");
        assert_eq!(
            outcome,
            IngestOutcome::Recorded {
                version: 0,
                enqueued: vec![]
            }
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_ingests_for_one_user_do_not_lose_updates() {
        let (_dir, store) = open();
        store
            .put_integration(&integration("crm", 1))
            .await
            .expect("put");
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(
                    async move { change(&store, &format!("e{i}"), 100 + i, &["crm"]).await },
                )
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        assert_eq!(
            store
                .user("user")
                .await
                .expect("user")
                .expect("some")
                .state
                .version,
            20
        );
        assert_eq!(row(&store, "user").await.wanted_version, 20);
    }

    #[tokio::test]
    async fn changes_before_a_claim_coalesce_into_one_claim_of_the_newest_version() {
        let (_dir, store) = with_one_change().await;
        assert_eq!(change(&store, "e2", 150, &["crm"]).await, 2);
        assert_eq!(store.queue_depth().await.expect("depth"), 1);
        let claim = claim_one(&store, "a", 200).await;
        assert_eq!((claim.version, claim.attempts), (2, 0));
        assert_eq!(
            (claim.lease_owner.as_str(), claim.lease_until_ms),
            ("a", 200 + LEASE)
        );
    }

    #[tokio::test]
    async fn a_leased_row_is_not_claimed_twice() {
        let (_dir, store) = with_one_change().await;
        claim_one(&store, "a", 200).await;
        assert!(
            store
                .claim_due("crm", "b", 300, LEASE, 10)
                .await
                .expect("claim")
                .is_empty()
        );
        assert!(
            store
                .claim_due("crm", "a", 300, LEASE, 10)
                .await
                .expect("claim")
                .is_empty()
        );
        // Not due before its time either, nor for another integration.
        let (_dir2, fresh) = with_one_change().await;
        assert!(
            fresh
                .claim_due("crm", "a", 99, LEASE, 10)
                .await
                .expect("claim")
                .is_empty()
        );
        assert!(
            fresh
                .claim_due("other", "a", 200, LEASE, 10)
                .await
                .expect("claim")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn claims_are_oldest_due_first_and_limited() {
        let (_dir, store) = open();
        store
            .put_integration(&integration("crm", 1))
            .await
            .expect("put");
        change_user(&store, "u3", "e1", 100, "crm").await;
        change_user(&store, "u1", "e2", 300, "crm").await;
        change_user(&store, "u2", "e3", 100, "crm").await;
        let claims = store
            .claim_due("crm", "a", 1_000, LEASE, 2)
            .await
            .expect("claim");
        let users: Vec<&str> = claims
            .iter()
            .map(|c| c.organization_user_id.as_str())
            .collect();
        assert_eq!(users, ["u2", "u3"]);
        let rest = store
            .claim_due("crm", "a", 1_000, LEASE, 2)
            .await
            .expect("claim");
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].organization_user_id, "u1");
    }

    #[tokio::test]
    async fn an_expired_lease_moves_to_another_owner_and_the_old_completion_is_refused() {
        let (_dir, store) = with_one_change().await;
        let old = claim_one(&store, "a", 200).await;
        let new = claim_one(&store, "b", old.lease_until_ms).await;
        assert_eq!(new.version, 1);
        let before = row(&store, "user").await;

        for completion in [
            Completion::Acked,
            Completion::Retry {
                next_attempt_at_ms: 5_000,
                error: "503".to_string(),
            },
            Completion::DeadLetter {
                error: "400".to_string(),
            },
        ] {
            let done = store
                .complete(
                    &old,
                    &completion,
                    &audit(&old, "delivered:updated", 1_300),
                    1_300,
                )
                .await
                .expect("complete");
            assert!(!done, "{completion:?}");
        }
        assert_eq!(row(&store, "user").await, before);
        assert!(
            store
                .audit_for_user("user", 10)
                .await
                .expect("audit")
                .is_empty()
        );
        assert!(store.dead_letters(None).await.expect("dead").is_empty());

        assert!(
            store
                .complete(
                    &new,
                    &Completion::Acked,
                    &audit(&new, "delivered:updated", 1_400),
                    1_400
                )
                .await
                .expect("complete")
        );
        assert_eq!(store.queue_depth().await.expect("depth"), 0);
    }

    #[tokio::test]
    async fn an_ack_while_the_user_changed_leaves_the_row_due_at_once() {
        let (_dir, store) = with_one_change().await;
        let claim = claim_one(&store, "a", 200).await;
        assert_eq!(change(&store, "e2", 250, &["crm"]).await, 2);
        assert!(
            store
                .complete(
                    &claim,
                    &Completion::Acked,
                    &audit(&claim, "delivered:updated", 300),
                    300
                )
                .await
                .expect("complete")
        );
        let entry = row(&store, "user").await;
        assert_eq!((entry.wanted_version, entry.acked_version), (2, 1));
        assert_eq!((entry.lease_owner, entry.lease_until_ms), (None, None));
        assert_eq!((entry.next_attempt_at_ms, entry.updated_at_ms), (300, 300));
        let next = claim_one(&store, "a", 300).await;
        assert_eq!((next.version, next.attempts), (2, 0));
    }

    #[tokio::test]
    async fn a_retry_waits_for_its_time_and_counts_attempts() {
        let (_dir, store) = with_one_change().await;
        let claim = claim_one(&store, "a", 200).await;
        let retry = Completion::Retry {
            next_attempt_at_ms: 5_000,
            error: "503 Service Unavailable".to_string(),
        };
        assert!(
            store
                .complete(&claim, &retry, &audit(&claim, "failed:retryable", 300), 300)
                .await
                .expect("complete")
        );
        let entry = row(&store, "user").await;
        assert_eq!(entry.attempts, 1);
        assert_eq!(entry.last_error.as_deref(), Some("503 Service Unavailable"));
        assert_eq!(entry.next_attempt_at_ms, 5_000);
        assert_eq!(store.queue_depth().await.expect("depth"), 1);
        assert_eq!(store.next_due_at("crm").await.expect("due"), Some(5_000));
        assert!(
            store
                .claim_due("crm", "a", 4_999, LEASE, 10)
                .await
                .expect("claim")
                .is_empty()
        );

        let again = claim_one(&store, "a", 5_000).await;
        assert_eq!((again.version, again.attempts), (1, 1));
        assert!(
            store
                .complete(
                    &again,
                    &Completion::Acked,
                    &audit(&again, "delivered:updated", 5_100),
                    5_100
                )
                .await
                .expect("complete")
        );
        let entry = row(&store, "user").await;
        assert_eq!((entry.attempts, entry.last_error), (0, None));
    }

    #[tokio::test]
    async fn a_change_during_a_scheduled_retry_keeps_the_retry_time() {
        let (_dir, store) = with_one_change().await;
        let claim = claim_one(&store, "a", 200).await;
        let retry = Completion::Retry {
            next_attempt_at_ms: 5_000,
            error: "timeout".to_string(),
        };
        assert!(
            store
                .complete(&claim, &retry, &audit(&claim, "failed:retryable", 300), 300)
                .await
                .expect("complete")
        );
        assert_eq!(change(&store, "e2", 400, &["crm"]).await, 2);
        let entry = row(&store, "user").await;
        assert_eq!(
            (
                entry.wanted_version,
                entry.next_attempt_at_ms,
                entry.attempts
            ),
            (2, 5_000, 1)
        );
        assert_eq!(entry.last_error.as_deref(), Some("timeout"));
        assert!(
            store
                .claim_due("crm", "a", 400, LEASE, 10)
                .await
                .expect("claim")
                .is_empty()
        );
        let again = claim_one(&store, "a", 5_000).await;
        assert_eq!((again.version, again.attempts), (2, 1));
    }

    #[tokio::test]
    async fn a_dead_letter_is_recorded_and_acknowledged() {
        let (_dir, store) = with_one_change().await;
        let claim = claim_one(&store, "a", 200).await;
        let retry = Completion::Retry {
            next_attempt_at_ms: 300,
            error: "503".to_string(),
        };
        assert!(
            store
                .complete(&claim, &retry, &audit(&claim, "failed:retryable", 250), 250)
                .await
                .expect("complete")
        );
        let claim = claim_one(&store, "a", 300).await;
        let dead = Completion::DeadLetter {
            error: "400 bad address".to_string(),
        };
        assert!(
            store
                .complete(&claim, &dead, &audit(&claim, "dead_letter", 400), 400)
                .await
                .expect("complete")
        );

        let letters = store.dead_letters(Some("crm")).await.expect("dead");
        assert_eq!(
            letters,
            [DeadLetter {
                id: letters[0].id,
                integration_id: "crm".to_string(),
                organization_user_id: "user".to_string(),
                version: 1,
                attempts: 2,
                last_error: "400 bad address".to_string(),
                created_at_ms: 400,
                replayed_at_ms: None,
            }]
        );
        let entry = row(&store, "user").await;
        assert_eq!((entry.acked_version, entry.attempts), (1, 0));
        assert_eq!(entry.last_error.as_deref(), Some("400 bad address"));
        assert_eq!(store.queue_depth().await.expect("depth"), 0);
        assert_eq!(store.next_due_at("crm").await.expect("due"), None);
        let outcomes: Vec<String> = store
            .audit_for_user("user", 10)
            .await
            .expect("audit")
            .into_iter()
            .map(|row| row.outcome)
            .collect();
        assert_eq!(outcomes, ["failed:retryable", "dead_letter"]);
    }

    /// Dead-letters the current claim of "user".
    async fn dead_letter(store: &SqliteStore, now_ms: i64) -> Claim {
        let claim = claim_one(store, "a", now_ms).await;
        let dead = Completion::DeadLetter {
            error: "permanent".to_string(),
        };
        assert!(
            store
                .complete(&claim, &dead, &audit(&claim, "dead_letter", now_ms), now_ms)
                .await
                .expect("complete")
        );
        claim
    }

    #[tokio::test]
    async fn a_replay_requeues_once_and_carries_the_latest_version() {
        let (_dir, store) = with_one_change().await;
        dead_letter(&store, 200).await;
        // Version 2 is delivered meanwhile.
        assert_eq!(change(&store, "e2", 300, &["crm"]).await, 2);
        let claim = claim_one(&store, "a", 300).await;
        assert!(
            store
                .complete(
                    &claim,
                    &Completion::Acked,
                    &audit(&claim, "delivered:updated", 350),
                    350
                )
                .await
                .expect("complete")
        );
        assert_eq!(store.queue_depth().await.expect("depth"), 0);

        let id = store.dead_letters(None).await.expect("dead")[0].id;
        assert!(store.replay_dead_letter(id, 400).await.expect("replay"));
        assert!(
            !store
                .replay_dead_letter(id, 500)
                .await
                .expect("replay again")
        );
        assert!(
            !store
                .replay_dead_letter(id + 100, 500)
                .await
                .expect("unknown")
        );
        assert_eq!(
            store.dead_letters(None).await.expect("dead")[0].replayed_at_ms,
            Some(400)
        );

        let entry = row(&store, "user").await;
        assert_eq!((entry.wanted_version, entry.acked_version), (2, 0));
        assert_eq!(
            (entry.next_attempt_at_ms, entry.attempts, entry.last_error),
            (400, 0, None)
        );
        let replayed = claim_one(&store, "a", 400).await;
        assert_eq!((replayed.version, replayed.attempts), (2, 0));
    }

    #[tokio::test]
    async fn replaying_an_integration_counts_its_requeued_dead_letters() {
        let (_dir, store) = open();
        store
            .put_integration(&integration("crm", 1))
            .await
            .expect("put");
        store
            .put_integration(&integration("ads", 1))
            .await
            .expect("put");
        change_user(&store, "u1", "e1", 100, "crm").await;
        change_user(&store, "u2", "e2", 100, "crm").await;
        change_user(&store, "u1", "e3", 100, "ads").await;
        let dead = Completion::DeadLetter {
            error: "no".to_string(),
        };
        for integration_id in ["crm", "ads"] {
            for claim in store
                .claim_due(integration_id, "a", 200, LEASE, 10)
                .await
                .expect("claim")
            {
                assert!(
                    store
                        .complete(&claim, &dead, &audit(&claim, "dead_letter", 200), 200)
                        .await
                        .expect("complete")
                );
            }
        }
        assert_eq!(store.dead_letters(None).await.expect("dead").len(), 3);
        assert_eq!(store.queue_depth().await.expect("depth"), 0);

        assert_eq!(
            store.replay_integration("crm", 300).await.expect("replay"),
            2
        );
        assert_eq!(
            store.replay_integration("crm", 400).await.expect("replay"),
            0
        );
        assert_eq!(store.queue_depth().await.expect("depth"), 2);
        let unreplayed: Vec<String> = store
            .dead_letters(None)
            .await
            .expect("dead")
            .into_iter()
            .filter(|letter| letter.replayed_at_ms.is_none())
            .map(|letter| letter.integration_id)
            .collect();
        assert_eq!(unreplayed, ["ads"]);
    }

    #[tokio::test]
    async fn deleting_an_integration_keeps_its_history() {
        let (_dir, store) = with_one_change().await;
        store
            .put_integration(&integration("ads", 1))
            .await
            .expect("put");
        let claim = dead_letter(&store, 200).await;
        store
            .append_audit(&audit(&claim, "skipped", 210))
            .await
            .expect("audit");
        assert_eq!(change(&store, "e2", 300, &["crm", "ads"]).await, 2);

        assert!(store.delete_integration("crm").await.expect("delete"));
        let rows = store
            .deliveries(&DeliveryFilter::default(), 300)
            .await
            .expect("deliveries");
        let integrations: Vec<&str> = rows
            .iter()
            .map(|(e, _)| e.integration_id.as_str())
            .collect();
        assert_eq!(integrations, ["ads"]);
        assert_eq!(store.queue_depth().await.expect("depth"), 1);
        assert_eq!(
            store.audit_for_user("user", 10).await.expect("audit").len(),
            2
        );
        let letters = store.dead_letters(Some("crm")).await.expect("dead");
        assert_eq!(letters.len(), 1);

        // Nothing to re-queue into: marked replayed, reported as not re-queued.
        assert!(
            !store
                .replay_dead_letter(letters[0].id, 400)
                .await
                .expect("replay")
        );
        assert_eq!(
            store.dead_letters(Some("crm")).await.expect("dead")[0].replayed_at_ms,
            Some(400)
        );
        // Enqueueing for it is skipped.
        let outcome = store
            .ingest(&event("e3", "user", 500), &bump(&["crm", "ads"]))
            .await
            .expect("ingest");
        assert_eq!(
            outcome,
            IngestOutcome::Recorded {
                version: 3,
                enqueued: vec!["ads".to_string()]
            }
        );
    }

    #[tokio::test]
    async fn deliveries_compute_status_filter_order_and_limit() {
        let (_dir, store) = open();
        store
            .put_integration(&integration("crm", 1))
            .await
            .expect("put");
        store
            .put_integration(&integration("ads", 1))
            .await
            .expect("put");
        change_user(&store, "done", "e1", 100, "crm").await;
        change_user(&store, "flying", "e2", 110, "crm").await;
        change_user(&store, "waiting", "e3", 500, "crm").await;
        change_user(&store, "other", "e4", 120, "ads").await;
        // "done" is delivered at 200, "flying" is claimed at 300 (lease to 1300).
        let claim = store
            .claim_due("crm", "a", 100, LEASE, 1)
            .await
            .expect("claim")
            .remove(0);
        assert_eq!(claim.organization_user_id, "done");
        assert!(
            store
                .complete(
                    &claim,
                    &Completion::Acked,
                    &audit(&claim, "delivered:created", 200),
                    200
                )
                .await
                .expect("complete")
        );
        let claim = store
            .claim_due("crm", "a", 300, LEASE, 1)
            .await
            .expect("claim")
            .remove(0);
        assert_eq!(claim.organization_user_id, "flying");

        let list = |filter: DeliveryFilter, now_ms: i64| {
            let store = store.clone();
            async move {
                store
                    .deliveries(&filter, now_ms)
                    .await
                    .expect("deliveries")
                    .into_iter()
                    .map(|(entry, status)| (entry.organization_user_id, status))
                    .collect::<Vec<_>>()
            }
        };
        let s = |user: &str, status| (user.to_string(), status);
        use DeliveryStatus::{Done, InFlight, Pending};

        assert_eq!(
            list(DeliveryFilter::default(), 1_000).await,
            [
                s("waiting", Pending),
                s("flying", InFlight),
                s("done", Done),
                s("other", Pending)
            ]
        );
        // Once the lease ran out the row is pending again.
        let crm = DeliveryFilter {
            integration_id: Some("crm".to_string()),
            ..DeliveryFilter::default()
        };
        assert_eq!(
            list(crm.clone(), 1_300).await,
            [s("waiting", Pending), s("flying", Pending), s("done", Done)]
        );
        let pending = DeliveryFilter {
            status: Some(Pending),
            limit: 1,
            ..crm.clone()
        };
        assert_eq!(list(pending, 1_000).await, [s("waiting", Pending)]);
        let in_flight = DeliveryFilter {
            status: Some(InFlight),
            ..DeliveryFilter::default()
        };
        assert_eq!(list(in_flight, 1_000).await, [s("flying", InFlight)]);
        let one_user = DeliveryFilter {
            organization_user_id: Some("other".to_string()),
            ..DeliveryFilter::default()
        };
        assert_eq!(list(one_user, 1_000).await, [s("other", Pending)]);
        let done_elsewhere = DeliveryFilter {
            integration_id: Some("ads".to_string()),
            status: Some(Done),
            ..DeliveryFilter::default()
        };
        assert!(list(done_elsewhere, 1_000).await.is_empty());

        assert_eq!(store.queue_depth().await.expect("depth"), 3);
    }

    #[tokio::test]
    async fn next_due_at_accounts_for_leases_and_schedules() {
        let (_dir, store) = open();
        store
            .put_integration(&integration("crm", 1))
            .await
            .expect("put");
        assert_eq!(store.next_due_at("crm").await.expect("due"), None);
        change_user(&store, "u1", "e1", 100, "crm").await;
        change_user(&store, "u2", "e2", 700, "crm").await;
        assert_eq!(store.next_due_at("crm").await.expect("due"), Some(100));
        // u1 leased until 1200: u2 (due at 700) is next.
        let claim = store
            .claim_due("crm", "a", 200, LEASE, 1)
            .await
            .expect("claim")
            .remove(0);
        assert_eq!(store.next_due_at("crm").await.expect("due"), Some(700));
        claim_one_of(&store, 800, "u2").await;
        assert_eq!(store.next_due_at("crm").await.expect("due"), Some(1_200));
        store.release(&[claim]).await.expect("release");
        assert_eq!(store.next_due_at("crm").await.expect("due"), Some(100));
        assert_eq!(store.next_due_at("other").await.expect("due"), None);
    }

    async fn claim_one_of(store: &SqliteStore, now_ms: i64, user: &str) -> Claim {
        let claim = claim_one(store, "a", now_ms).await;
        assert_eq!(claim.organization_user_id, user);
        claim
    }

    #[tokio::test]
    async fn release_makes_rows_due_again_but_only_for_the_lease_holder() {
        let (_dir, store) = with_one_change().await;
        let stale = claim_one(&store, "a", 200).await;
        let held = claim_one(&store, "b", stale.lease_until_ms).await;
        // A stale claim does not release the new holder's lease.
        store.release(&[stale]).await.expect("release");
        assert!(
            store
                .claim_due("crm", "c", 1_300, LEASE, 10)
                .await
                .expect("claim")
                .is_empty()
        );
        store
            .release(std::slice::from_ref(&held))
            .await
            .expect("release");
        let entry = row(&store, "user").await;
        assert_eq!((entry.lease_owner, entry.lease_until_ms), (None, None));
        let again = claim_one(&store, "c", 1_300).await;
        assert_eq!((again.version, again.attempts), (1, 0));
        // The released claim can no longer complete.
        assert!(
            !store
                .complete(
                    &held,
                    &Completion::Acked,
                    &audit(&held, "skipped", 1_300),
                    1_300
                )
                .await
                .expect("complete")
        );
    }

    #[tokio::test]
    async fn audit_is_oldest_first_and_events_newest_first() {
        let (_dir, store) = with_one_change().await;
        change(&store, "e2", 300, &["crm"]).await;
        change(&store, "e3", 200, &["crm"]).await;
        change(&store, "e4", 300, &["crm"]).await;
        let events: Vec<String> = store
            .events_for_user("user", 3)
            .await
            .expect("events")
            .into_iter()
            .map(|e| e.event_id)
            .collect();
        assert_eq!(events, ["e4", "e2", "e3"]);
        let stored = &store.events_for_user("user", 10).await.expect("events")[3];
        assert_eq!(stored, &event("e1", "user", 100));
        assert!(
            store
                .events_for_user("nobody", 10)
                .await
                .expect("events")
                .is_empty()
        );

        let claim = claim_one(&store, "a", 400).await;
        let mut first = audit(&claim, "delivered:created", 500);
        first.origin = Some("crm".to_string());
        first.id = 77; // ignored
        store.append_audit(&first).await.expect("audit");
        store
            .append_audit(&audit(&claim, "skipped", 400))
            .await
            .expect("audit");
        store
            .append_audit(&audit(&claim, "delivered:updated", 600))
            .await
            .expect("audit");
        let rows = store.audit_for_user("user", 2).await.expect("audit");
        let outcomes: Vec<&str> = rows.iter().map(|r| r.outcome.as_str()).collect();
        assert_eq!(outcomes, ["delivered:created", "skipped"]);
        assert!(rows[0].id < rows[1].id);
        assert_eq!(
            rows[0],
            AuditRow {
                id: rows[0].id,
                ..first
            }
        );
    }
}
