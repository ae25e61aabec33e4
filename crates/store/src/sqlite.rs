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
//!   updated_at_ms, origin, pending_since_ms, trace_context)`, primary key `(integration_id, organization_user_id)`: one
//!   row per pair, work is left while `wanted_version > acked_version`; the
//!   waiting rows alone are indexed on `(integration_id, next_attempt_at_ms,
//!   organization_user_id)`, the order they are claimed in. Rows reference
//!   `integrations` (`ON DELETE CASCADE`).
//! - `dead_letters(id PK AUTOINCREMENT, integration_id, organization_user_id,
//!   version, attempts, last_error, created_at_ms, replayed_at_ms)`.
//! - `audit(id PK AUTOINCREMENT, at_ms, integration_id, organization_user_id,
//!   state_version, connector_type, connector_version, connector_hash, outcome,
//!   detail, http_statuses, duration_ms, attempt, origin)`: append-only;
//!   `http_statuses` is a JSON array as text; indexed on `(organization_user_id, id)`
//!   and on `at_ms`.
//!
//! - `connector_versions` and `connector_switches`: the connector registry (`sqlite/connectors.rs`).
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
//! Two connections. Writes go to the writer thread (`sqlite/writer.rs`),
//! which commits whatever writes are waiting in one transaction (group
//! commit: one fsync for many callers), each write in its own savepoint and
//! answered only after the commit. Reads run on tokio's blocking pool on a
//! second connection behind a mutex; in WAL mode they see every committed
//! write and never wait for the writer's fsync. The writer starts with
//! `BEGIN IMMEDIATE`, so a second process sharing the file waits for the
//! write lock up front instead of failing to upgrade a read halfway.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use async_trait::async_trait;
use rusqlite::config::DbConfig;
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    AuditRow, Claim, Completed, Completion, DELIVERY_COUNTS, DeadLetter, DeliveryCount,
    DeliveryFilter, DeliveryStatus, IngestOutcome, IngestPlanner, IntegrationRecord, OutboxEntry,
    QUEUE_STATS, QueueStats, Result, Store, StoredEvent, UserRecord, check_bucket,
    latest_failures_query,
};
use prefsync_consent::UserState;

mod activations;
mod connectors;
mod writer;

use writer::Durability;

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
    // 3: the connector registry (see `connectors.rs`).
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
    // 4: activations (see `activations.rs`).
    r#"
    CREATE TABLE activations (
        id             TEXT    NOT NULL PRIMARY KEY,
        integration_id TEXT    NOT NULL,
        config         TEXT    NOT NULL,
        created_at_ms  INTEGER NOT NULL,
        updated_at_ms  INTEGER NOT NULL,
        next_run_at_ms INTEGER,
        lease_run_id   INTEGER,
        lease_until_ms INTEGER
    ) STRICT;

    CREATE TABLE activation_runs (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        activation_id  TEXT    NOT NULL,
        trigger_name   TEXT    NOT NULL,
        host           TEXT    NOT NULL,
        full_resync    INTEGER NOT NULL,
        started_at_ms  INTEGER NOT NULL,
        finished_at_ms INTEGER,
        status         TEXT    NOT NULL,
        summary        TEXT    NOT NULL
    ) STRICT;
    CREATE INDEX activation_runs_by_activation ON activation_runs (activation_id, id);

    CREATE TABLE activation_snapshot (
        activation_id TEXT    NOT NULL,
        key           TEXT    NOT NULL,
        accepted      BLOB,
        seen_run      INTEGER NOT NULL,
        PRIMARY KEY (activation_id, key)
    ) STRICT, WITHOUT ROWID;
    "#,
    // 5: one name for the thing users install: "connector" (the tables were
    // named "plugin" before).
    r#"
    ALTER TABLE plugin_versions RENAME TO connector_versions;
    ALTER TABLE plugin_switches RENAME TO connector_switches;
    DROP INDEX plugin_switches_by_type;
    CREATE INDEX connector_switches_by_type ON connector_switches (type_id, id);
    "#,
    // 6: what on-call watches, cheap to read: when each row's oldest waiting
    // change arrived, and partial indexes over just the waiting rows and the
    // unreplayed dead letters.
    r#"
    ALTER TABLE outbox ADD COLUMN pending_since_ms INTEGER NOT NULL DEFAULT 0;
    UPDATE outbox SET pending_since_ms = updated_at_ms;
    CREATE INDEX outbox_pending ON outbox (integration_id, pending_since_ms)
        WHERE wanted_version > acked_version;
    CREATE INDEX dead_letters_unreplayed ON dead_letters (integration_id)
        WHERE replayed_at_ms IS NULL;
    "#,
    // 7: the trace context (a W3C `traceparent`) of the ingest that raised a
    // row's newest change, so its delivery's span can link to it.
    r#"
    ALTER TABLE outbox ADD COLUMN trace_context TEXT;
    "#,
    // 8: the snapshot numbers its keys per activation, so a run marks the
    // keys it has seen in memory instead of rewriting each one's row
    // (`seen_run` goes); `last_key_number` is the last number handed out.
    r#"
    CREATE TABLE activation_snapshot_numbered (
        activation_id TEXT    NOT NULL,
        key           TEXT    NOT NULL,
        key_number    INTEGER NOT NULL,
        accepted      BLOB,
        PRIMARY KEY (activation_id, key)
    ) STRICT, WITHOUT ROWID;
    INSERT INTO activation_snapshot_numbered (activation_id, key, key_number, accepted)
        SELECT activation_id, key,
               row_number() OVER (PARTITION BY activation_id ORDER BY key), accepted
        FROM activation_snapshot
        WHERE activation_id IN (SELECT id FROM activations);
    DROP TABLE activation_snapshot;
    ALTER TABLE activation_snapshot_numbered RENAME TO activation_snapshot;
    ALTER TABLE activations ADD COLUMN last_key_number INTEGER NOT NULL DEFAULT 0;
    UPDATE activations SET last_key_number =
        (SELECT count(*) FROM activation_snapshot WHERE activation_id = activations.id);
    "#,
    // 9: the audit by time, for the overview's counts over the last hour or
    // day (`delivery_counts`, `latest_failures`).
    r#"
    CREATE INDEX audit_by_time ON audit (at_ms);
    "#,
    // 10: claims read only the waiting rows, already in claim order. The old
    // index also held every acknowledged row, which a claim stepped over
    // (and sorted by user) before reaching the first due one: its cost grew
    // with everything ever delivered.
    r#"
    CREATE INDEX outbox_waiting ON outbox (integration_id, next_attempt_at_ms, organization_user_id)
        WHERE wanted_version > acked_version;
    DROP INDEX outbox_due;
    "#,
];

/// `deliveries` answers this many rows when the filter's limit is 0.
const DEFAULT_DELIVERIES_LIMIT: u32 = 100;

/// Most users whose states `users` reads on the calling thread (see
/// `short_read`); a few microseconds each from the page cache.
const SHORT_READ_USERS: usize = 16;

/// The SQLite [`Store`]. Cheap to clone: clones share the connections.
#[derive(Clone)]
pub struct SqliteStore {
    writer: Arc<writer::Writer>,
    reader: Arc<Mutex<Connection>>,
    /// See [`Store::integrations_written`].
    integrations_written: Arc<AtomicU64>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating it and its parent directories if missing) the database
    /// at `path` and brings its schema up to date. The database holds
    /// integrations' credentials: it, its `-wal` and `-shm` are the owner's
    /// alone (0600, whatever the umask; wider files are tightened), and a
    /// directory created here is 0700.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            crate::private_files::create_private_dir(parent)
                .with_context(|| format!("creating the directory {}", parent.display()))?;
        }
        // SQLite gives the -wal and -shm it creates the database file's mode.
        crate::private_files::create_private_file(path)
            .with_context(|| format!("creating the database {}", path.display()))?;
        restrict_database_files(path)?;
        let open = || -> anyhow::Result<Connection> {
            let conn = Connection::open(path)
                .with_context(|| format!("opening the database {}", path.display()))?;
            configure(&conn)
                .with_context(|| format!("configuring the database {}", path.display()))?;
            Ok(conn)
        };
        let mut conn = open()?;
        migrate(&mut conn).with_context(|| format!("migrating the database {}", path.display()))?;
        let reader = open()?;
        restrict_database_files(path)?;
        Ok(SqliteStore {
            writer: Arc::new(writer::Writer::start(conn)?),
            reader: Arc::new(Mutex::new(reader)),
            integrations_written: Arc::default(),
        })
    }

    /// Runs `body` as one transaction: a write (`write`) in the writer's next
    /// group, answered once that group committed; a read on the blocking
    /// pool. An `Err` (or a panic) undoes the body's writes.
    async fn transaction<T, F>(&self, op: &'static str, write: bool, body: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        if write {
            return self.writer.write(op, Durability::Synced, body).await;
        }
        let conn = Arc::clone(&self.reader);
        tokio::task::spawn_blocking(move || -> Result<T> {
            let mut conn = lock(&conn)?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            let value = body(&tx)?;
            tx.commit()?;
            Ok(value)
        })
        .await
        .with_context(|| format!("sqlite store: {op}: task failed"))?
        .with_context(|| format!("sqlite store: {op}"))
    }

    /// Runs `body`, a short read (a few rows by key), on the calling thread
    /// when the read connection is free, and as [`Self::transaction`] does
    /// otherwise. The hop to the blocking pool (two thread wake-ups) costs
    /// more than such a read from the page cache; a read that would wait
    /// for the connection takes the hop, so the async runtime never blocks
    /// on the lock.
    async fn short_read<T, F>(&self, op: &'static str, body: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let Ok(mut conn) = self.reader.try_lock() else {
            return self.transaction(op, false, body).await;
        };
        // A panic fails this read alone, as on the blocking pool; the
        // transaction rolls back as it unwinds.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<T> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            let value = body(&tx)?;
            tx.commit()?;
            Ok(value)
        }))
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the read panicked")))
        .with_context(|| format!("sqlite store: {op}"))
    }

    /// Write transactions committed since the store was opened: one fsync
    /// each, however many writes each one carried.
    pub fn commits(&self) -> u64 {
        self.writer.commits()
    }
}

/// Restricts the database file, its `-wal` and its `-shm` to their owner
/// when others may read them, saying so once per file changed.
fn restrict_database_files(path: &Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = std::path::PathBuf::from(name);
        let previous = crate::private_files::restrict_to_owner(&file)
            .with_context(|| format!("restricting {} to its owner", file.display()))?;
        if let Some(mode) = previous {
            tracing::warn!(file = %file.display(), previous_mode = %format!("{mode:o}"), "database file was readable by others; restricted it to its owner (0600)");
        }
    }
    Ok(())
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

/// The rows of one integration due for delivery (`?1` integration, `?2`
/// now, `?3` how many), oldest first.
const CLAIM_DUE: &str =
    "SELECT organization_user_id, wanted_version, attempts, origin, trace_context
     FROM outbox
     WHERE integration_id = ?1
       AND wanted_version > acked_version
       AND next_attempt_at_ms <= ?2
       AND (lease_until_ms IS NULL OR lease_until_ms <= ?2)
     ORDER BY next_attempt_at_ms, organization_user_id
     LIMIT ?3";

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
    // The query planner stability guarantee: a statement's plan does not
    // depend on the values bound to it. Without it (STAT4 is compiled in),
    // binding a new `now_ms` or `LIMIT` marks a cached statement expired,
    // and the claim query was parsed and planned again at every dispatch
    // tick (profiled: about 7 % of the server's CPU when paced).
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
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
        status: named_column(row, 3)?,
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

/// A closed-set name read from a text column (`prefsync_base::named_enum!`);
/// a name outside the set fails the row without repeating the text.
pub(crate) fn named_column<T>(row: &Row<'_>, index: usize) -> rusqlite::Result<T>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let name: String = row.get(index)?;
    name.parse()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(e)))
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
        outcome: named_column(row, 8)?,
        detail: row.get(9)?,
        http_statuses: json_column(row, 10)?,
        duration_ms: u64_column(row, 11)?,
        attempt: row.get(12)?,
        origin: row.get(13)?,
    })
}

// --- Statements shared by several operations ---------------------------------

fn load_user(tx: &Connection, organization_user_id: &str) -> Result<Option<UserRecord>> {
    let mut stmt = tx
        .prepare_cached("SELECT state, updated_at_ms FROM users WHERE organization_user_id = ?1")?;
    Ok(stmt
        .query_row([organization_user_id], user_from_row)
        .optional()?)
}

fn save_user(tx: &Connection, state: &UserState, updated_at_ms: i64) -> Result<()> {
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

fn integration_exists(tx: &Connection, id: &str) -> Result<bool> {
    let mut stmt = tx.prepare_cached("SELECT 1 FROM integrations WHERE id = ?1")?;
    Ok(stmt.exists([id])?)
}

/// Raises the outbox row's `wanted_version` to `version` (creating the row).
/// A row that had no work left gets a clean slate, due at `now_ms`; a row with
/// pending work keeps its attempts and schedule (a retry already scheduled
/// stays scheduled, and will carry the newest state). A version that is not
/// newer than the row's changes nothing.
fn enqueue(
    tx: &Connection,
    integration_id: &str,
    organization_user_id: &str,
    version: u64,
    now_ms: i64,
    origin: Option<&str>,
    trace_context: Option<&str>,
) -> Result<()> {
    // In SET, every column reference reads the row as it was before the update.
    tx.prepare_cached(
        "INSERT INTO outbox (integration_id, organization_user_id, wanted_version,
             acked_version, attempts, next_attempt_at_ms, updated_at_ms, origin,
             pending_since_ms, trace_context)
         VALUES (?1, ?2, ?3, 0, 0, ?4, ?4, ?5, ?4, ?6)
         ON CONFLICT (integration_id, organization_user_id) DO UPDATE SET
             wanted_version = excluded.wanted_version,
             origin = excluded.origin,
             trace_context = excluded.trace_context,
             pending_since_ms = CASE WHEN acked_version >= wanted_version
                 THEN excluded.pending_since_ms ELSE pending_since_ms END,
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
        origin,
        trace_context
    ])?;
    Ok(())
}

fn insert_audit(tx: &Connection, row: &AuditRow) -> Result<()> {
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
        row.outcome.as_str(),
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
fn replay(tx: &Connection, id: i64, now_ms: i64) -> Result<bool> {
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
             acked_version, attempts, next_attempt_at_ms, updated_at_ms, pending_since_ms)
         VALUES (?1, ?2, ?3, ?4, 0, ?5, ?5, ?5)
         ON CONFLICT (integration_id, organization_user_id) DO UPDATE SET
             pending_since_ms = CASE WHEN acked_version >= wanted_version
                 THEN excluded.pending_since_ms ELSE pending_since_ms END,
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

/// One event of an ingest transaction: stored unless its id is known, and
/// what `plan` makes of it applied.
fn ingest_event(
    tx: &Connection,
    index: usize,
    event: &StoredEvent,
    plan: &IngestPlanner,
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
        event.status.as_str(),
        event.created_at_ms,
        event.received_at_ms,
        to_json(&event.payload)?,
    ])?;

    let current = load_user(tx, &event.organization_user_id)?;
    let current_version = current.as_ref().map_or(0, |user| user.state.version);
    let plan = plan(index, event, current.as_ref())?;

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
            plan.trace_context.as_deref(),
        )?;
        enqueued.push(integration_id.clone());
    }
    Ok(IngestOutcome::Recorded { version, enqueued })
}

/// Ends one claim (see [`Store::complete_all`]); false when its lease is
/// no longer held.
fn complete_one(tx: &Connection, done: &Completed, now_ms: i64) -> Result<bool> {
    let Completed {
        claim,
        completion,
        audit,
    } = done;
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
                     next_attempt_at_ms = ?6, updated_at_ms = ?6,
                     pending_since_ms = ?6 {HELD}"
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
                         updated_at_ms = ?7, pending_since_ms = ?7 {HELD}"
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
    insert_audit(tx, audit)?;
    Ok(true)
}

/// What writing an existing integration id does in `put_integration`.
const REPLACE_INTEGRATION: &str = "DO UPDATE SET type_id = excluded.type_id,
     enabled = excluded.enabled, config = excluded.config, updated_at_ms = excluded.updated_at_ms";

impl SqliteStore {
    /// Writes `integration`; `on_conflict` says what an existing id does
    /// (replace, or `DO NOTHING` for a create). Whether a row was written.
    async fn write_integration(
        &self,
        label: &'static str,
        integration: &IntegrationRecord,
        on_conflict: &'static str,
    ) -> Result<bool> {
        let _counted = crate::CountOnDrop(&self.integrations_written);
        let integration = integration.clone();
        self.transaction(label, true, move |tx| {
            let written = tx
                .prepare_cached(&format!(
                    "INSERT INTO integrations ({INTEGRATION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (id) {on_conflict}"
                ))?
                .execute(params![
                    integration.id,
                    integration.type_id,
                    integration.enabled,
                    to_json(&integration.config)?,
                    integration.created_at_ms,
                    integration.updated_at_ms,
                ])?;
            Ok(written == 1)
        })
        .await
    }
}

// --- The trait -----------------------------------------------------------------

#[async_trait]
impl Store for SqliteStore {
    async fn put_integration(&self, integration: &IntegrationRecord) -> Result<()> {
        self.write_integration("put_integration", integration, REPLACE_INTEGRATION)
            .await
            .map(|_| ())
    }

    async fn insert_integration(&self, integration: &IntegrationRecord) -> Result<bool> {
        self.write_integration("insert_integration", integration, "DO NOTHING")
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

    fn integrations_written(&self) -> u64 {
        self.integrations_written.load(Ordering::SeqCst)
    }

    async fn integrations(&self) -> Result<Vec<IntegrationRecord>> {
        self.short_read("integrations", move |tx| {
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
        let _counted = crate::CountOnDrop(&self.integrations_written);
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
        events: Vec<StoredEvent>,
        plan: Arc<IngestPlanner>,
    ) -> Result<Vec<IngestOutcome>> {
        self.transaction("ingest", true, move |tx| {
            events
                .iter()
                .enumerate()
                .map(|(index, event)| ingest_event(tx, index, event, plan.as_ref()))
                .collect()
        })
        .await
    }

    async fn user(&self, organization_user_id: &str) -> Result<Option<UserRecord>> {
        let organization_user_id = organization_user_id.to_owned();
        self.transaction("user", false, move |tx| {
            load_user(tx, &organization_user_id)
        })
        .await
    }

    async fn users(&self, organization_user_ids: &[String]) -> Result<Vec<Option<UserRecord>>> {
        let ids = organization_user_ids.to_vec();
        let read = move |tx: &Connection| ids.iter().map(|id| load_user(tx, id)).collect();
        // A large batch's states are read on the blocking pool: the async
        // runtime is not held for hundreds of lookups.
        if organization_user_ids.len() <= SHORT_READ_USERS {
            self.short_read("users", read).await
        } else {
            self.transaction("users", false, read).await
        }
    }

    async fn clamp_future_stamps(&self, limit_ms: i64, now_ms: i64) -> Result<u64> {
        self.transaction("clamp_future_stamps", true, move |tx| {
            // A state's `updated_at_ms` is the greatest of its stamps, so
            // only states beyond the limit need reading.
            let states: Vec<UserState> = tx
                .prepare(
                    "SELECT state FROM users
                     WHERE json_extract(state, '$.updated_at_ms') > ?1",
                )?
                .query_map([limit_ms], |row| json_column(row, 0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut repaired = 0;
            for mut state in states {
                state.clamp_stamps_after(limit_ms, now_ms);
                tx.prepare_cached("UPDATE users SET state = ?2 WHERE organization_user_id = ?1")?
                    .execute(params![state.organization_user_id, to_json(&state)?])?;
                repaired += 1;
            }
            Ok(repaired)
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
        // A lease need not survive a crash of the machine, which ends the
        // host holding it: the claim is answered before any fsync.
        self.writer
            .write("claim_due", Durability::Deferred, move |tx| {
                let lease_until_ms = now_ms.saturating_add(lease_ms);
                type Due = (String, u64, u32, Option<String>, Option<String>);
                let due: Vec<Due> = tx
                    .prepare_cached(CLAIM_DUE)?
                    .query_map(params![integration_id, now_ms, limit], |row| {
                        Ok((
                            row.get(0)?,
                            u64_column(row, 1)?,
                            row.get(2)?,
                            row.get(3)?,
                            row.get(4)?,
                        ))
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                let mut lease = tx.prepare_cached(
                    "UPDATE outbox SET lease_owner = ?3, lease_until_ms = ?4, updated_at_ms = ?5
                 WHERE integration_id = ?1 AND organization_user_id = ?2",
                )?;
                let mut claims = Vec::with_capacity(due.len());
                for (organization_user_id, version, attempts, origin, trace_context) in due {
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
                        trace_context,
                    });
                }
                Ok(claims)
            })
            .await
    }

    async fn complete_all(&self, completed: Vec<Completed>, now_ms: i64) -> Result<Vec<bool>> {
        self.transaction("complete", true, move |tx| {
            completed
                .iter()
                .map(|done| complete_one(tx, done, now_ms))
                .collect()
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
                    filter.status.map(DeliveryStatus::as_str),
                    limit
                ],
                |row| Ok((outbox_from_row(row)?, named_column(row, 10)?)),
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

    async fn queue_stats(&self) -> Result<Vec<QueueStats>> {
        self.transaction("queue_stats", false, move |tx| {
            let mut stmt = tx.prepare_cached(QUEUE_STATS)?;
            let rows = stmt.query_map([], |row| {
                Ok(QueueStats {
                    integration_id: row.get(0)?,
                    pending: u64_column(row, 1)?,
                    oldest_pending_since_ms: row.get(2)?,
                    dead_letters: u64_column(row, 3)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
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

    async fn delivery_counts(&self, since_ms: i64, bucket_ms: i64) -> Result<Vec<DeliveryCount>> {
        check_bucket(bucket_ms)?;
        self.transaction("delivery_counts", false, move |tx| {
            let mut stmt = tx.prepare_cached(DELIVERY_COUNTS)?;
            let rows = stmt.query_map(params![since_ms, bucket_ms], |row| {
                Ok(DeliveryCount {
                    integration_id: row.get(0)?,
                    bucket: row.get(1)?,
                    outcome: named_column(row, 2)?,
                    count: u64_column(row, 3)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn latest_failures(&self, since_ms: i64) -> Result<Vec<AuditRow>> {
        self.transaction("latest_failures", false, move |tx| {
            let mut stmt = tx.prepare_cached(&latest_failures_query(AUDIT_COLUMNS))?;
            let rows = stmt.query_map(params![since_ms], audit_from_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The claim query runs at every dispatch tick with a new `now_ms`: it
    /// must not be parsed and planned again each time (see `configure`).
    #[test]
    fn the_claim_query_is_planned_once_whatever_is_bound() {
        use rusqlite::StatementStatus;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("claims.db");
        drop(SqliteStore::open(&path).expect("open"));
        let reprepares = |configured: bool| {
            let conn = Connection::open(&path).expect("raw open");
            if configured {
                configure(&conn).expect("configure");
            }
            let mut statement = conn.prepare(CLAIM_DUE).expect("prepare");
            for now_ms in 0..5_i64 {
                statement
                    .query_map(params!["crm", now_ms * 1000, 8 - now_ms], |_| Ok(()))
                    .expect("query")
                    .for_each(drop);
            }
            statement.get_status(StatementStatus::RePrepare)
        };
        // The premise: without the guarantee a new bound value re-prepares.
        assert!(reprepares(false) > 0);
        assert_eq!(reprepares(true), 0);
    }

    /// A claim reads the waiting rows only: acknowledged rows, however
    /// many and however old, cost it nothing (they used to be stepped over
    /// and sorted, so a claim's cost grew with everything delivered).
    #[test]
    fn a_claim_steps_over_no_acknowledged_row() {
        use rusqlite::StatementStatus;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("claims.db");
        drop(SqliteStore::open(&path).expect("open"));
        // Rows without an integration row: foreign keys off.
        let conn = Connection::open(&path).expect("raw open");
        conn.pragma_update(None, "foreign_keys", "OFF")
            .expect("foreign keys off");
        let mut insert = conn
            .prepare(
                "INSERT INTO outbox (integration_id, organization_user_id, wanted_version,
                     acked_version, attempts, next_attempt_at_ms, updated_at_ms)
                 VALUES ('crm', ?1, 1, ?2, 0, ?3, ?3)",
            )
            .expect("prepare insert");
        for n in 0..2_000_i64 {
            insert
                .execute(params![format!("acked-{n:04}"), 1, n])
                .expect("acked row");
        }
        insert.execute(params!["due", 0, 5_000]).expect("due row");
        drop(insert);
        let steps = |conn: &Connection| {
            let mut statement = conn.prepare(CLAIM_DUE).expect("prepare");
            let users: Vec<String> = statement
                .query_map(params!["crm", 10_000, 8], |row| row.get(0))
                .expect("query")
                .collect::<rusqlite::Result<_>>()
                .expect("rows");
            assert_eq!(users, ["due"]);
            statement.get_status(StatementStatus::VmStep)
        };
        assert!(steps(&conn) < 200, "{} steps", steps(&conn));
        // The premise: the index migration 10 replaced steps over them all.
        conn.execute_batch(
            "DROP INDEX outbox_waiting;
             CREATE INDEX outbox_due ON outbox (integration_id, next_attempt_at_ms);",
        )
        .expect("old index");
        assert!(steps(&conn) > 2_000 * 5, "{} steps", steps(&conn));
    }

    async fn open_sqlite() -> (Box<dyn std::any::Any + Send>, Arc<dyn Store>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("nested/dir/prefsync.db")).expect("open");
        (Box::new(dir), Arc::new(store))
    }

    crate::conformance::store_conformance_tests!(open_sqlite);

    #[cfg(unix)]
    #[tokio::test]
    async fn database_files_are_the_owners_alone() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        let path = dir.path().join("new/prefsync.db");
        let files = |path: &Path| {
            ["", "-wal", "-shm"].map(|suffix| {
                let mut name = path.as_os_str().to_owned();
                name.push(suffix);
                std::path::PathBuf::from(name)
            })
        };
        {
            let store = SqliteStore::open(&path).expect("open");
            store
                .put_integration(&integration("crm", 1))
                .await
                .expect("put");
            assert_eq!(mode(&dir.path().join("new")), 0o700);
            for file in files(&path) {
                assert_eq!(mode(&file), 0o600, "{}", file.display());
            }
        }
        // Files left readable by others (an older version, a copy) are tightened.
        for file in files(&path).iter().filter(|f| f.exists()) {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }
        let _store = SqliteStore::open(&path).expect("reopen");
        for file in files(&path) {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
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

    /// Before 0.2 the registry's tables were `plugin_*`: a database made
    /// then keeps its versions and switches (ids included) through the
    /// migration that renames them.
    #[tokio::test]
    async fn a_database_from_before_the_rename_keeps_its_registry() {
        use crate::connectors::{
            ConnectorAction, ConnectorSource, ConnectorStatus, ConnectorStore,
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("prefsync.db");
        {
            let conn = Connection::open(&path).expect("raw open");
            for (index, sql) in MIGRATIONS[..4].iter().enumerate() {
                conn.execute_batch(sql).expect("an old migration");
                conn.pragma_update(None, "user_version", index as i64 + 1)
                    .expect("version");
            }
            conn.execute_batch(
                "INSERT INTO plugin_versions (type_id, content_hash, version, wit_version,
                     description, source, loaded_at_ms, status, status_reason, status_at_ms, wasm)
                 VALUES ('dotdigital', 'aa', '0.1.0', '0.1.1', '{}', 'directory', 10,
                         'active', NULL, 10, x'0061736d');
                 INSERT INTO plugin_switches (id, at_ms, type_id, action, from_version,
                     from_hash, to_version, to_hash, detail)
                 VALUES (7, 10, 'dotdigital', 'install', NULL, NULL, '0.1.0', 'aa', 'from the directory');",
            )
            .expect("rows of the old tables");
        }
        let store = SqliteStore::open(&path).expect("migrates");
        let versions = store.connector_versions(None).await.expect("versions");
        assert_eq!(versions.len(), 1);
        assert_eq!(
            (versions[0].source, versions[0].status),
            (ConnectorSource::Directory, ConnectorStatus::Active)
        );
        assert_eq!(
            store
                .connector_wasm("dotdigital", "aa")
                .await
                .expect("wasm"),
            Some(b"\0asm".to_vec())
        );
        let switches = store
            .connector_switches("dotdigital", 10)
            .await
            .expect("switches");
        assert_eq!(
            switches
                .iter()
                .map(|s| (s.id, s.action))
                .collect::<Vec<_>>(),
            [(7, ConnectorAction::Install)]
        );
        assert_eq!(store.latest_connector_switch_id().await.expect("latest"), 7);
        store
            .record_connector_switch(&crate::connectors::tests_support::switch("0.2.0"), &[])
            .await
            .expect("a new switch");
        assert_eq!(store.latest_connector_switch_id().await.expect("latest"), 8);
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
}
