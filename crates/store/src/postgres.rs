//! The shared store: PostgreSQL, for several prefsync hosts at once.
//!
//! The same tables as SQLite (see `sqlite.rs`), in one schema migration
//! list of its own. What differs is what sharing needs:
//!
//! - **Migrations** run at start inside one transaction holding a
//!   transaction-scoped advisory lock, so hosts starting together apply them
//!   once; PostgreSQL's DDL is transactional, so a failed migration leaves
//!   nothing behind. The version is kept in `prefsync_schema`.
//! - **Claims** lease due rows with `FOR UPDATE SKIP LOCKED`: two hosts
//!   claiming at once take different rows and never wait on each other.
//! - **Ingest** takes a transaction-scoped advisory lock on the user, so two
//!   hosts merging events of one user do it one after the other.
//! - Every method is one transaction on a pooled connection.
//!
//! The connection string may carry a password: it is never logged or put in
//! an error ([`redacted_url`]). Its `sslmode` and `sslrootcert` say how TLS
//! is used and checked ([`crate::postgres_tls`]).

mod activations;
mod connectors;

use anyhow::{Context as _, anyhow, bail};
use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Transaction};
use futures_util::future::try_join_all;
use tokio_postgres::{Row, Statement};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{
    AuditRow, Claim, Completed, Completion, DELIVERY_COUNTS, DeadLetter, DeliveryCount,
    DeliveryFilter, DeliveryStatus, IngestOutcome, IngestPlanner, IntegrationRecord, OutboxEntry,
    QUEUE_STATS, QueueStats, Result, Store, StoredEvent, UserRecord, check_bucket,
    latest_failures_query,
};
use crate::postgres_tls::{PgConnectionString, error_chain};
use prefsync_consent::UserState;

/// Schema migrations, in order. Never edit a released one: add another.
const MIGRATIONS: &[&str] = &[
    // 1: the schema of SQLite's migrations 1–3 at once.
    r#"
    CREATE TABLE integrations (
        id            TEXT    NOT NULL PRIMARY KEY,
        type_id       TEXT    NOT NULL,
        enabled       BOOLEAN NOT NULL,
        config        TEXT    NOT NULL,
        created_at_ms BIGINT  NOT NULL,
        updated_at_ms BIGINT  NOT NULL
    );

    CREATE TABLE events (
        seq                  BIGSERIAL,
        event_id             TEXT   NOT NULL PRIMARY KEY,
        organization_user_id TEXT   NOT NULL,
        origin               TEXT,
        status               TEXT   NOT NULL,
        created_at_ms        BIGINT NOT NULL,
        received_at_ms       BIGINT NOT NULL,
        payload              TEXT   NOT NULL
    );
    CREATE INDEX events_by_user ON events (organization_user_id, received_at_ms);

    CREATE TABLE users (
        organization_user_id TEXT   NOT NULL PRIMARY KEY,
        state                TEXT   NOT NULL,
        version              BIGINT NOT NULL,
        updated_at_ms        BIGINT NOT NULL
    );

    CREATE TABLE outbox (
        integration_id       TEXT   NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
        organization_user_id TEXT   NOT NULL,
        wanted_version       BIGINT NOT NULL,
        acked_version        BIGINT NOT NULL,
        attempts             BIGINT NOT NULL,
        next_attempt_at_ms   BIGINT NOT NULL,
        lease_owner          TEXT,
        lease_until_ms       BIGINT,
        last_error           TEXT,
        updated_at_ms        BIGINT NOT NULL,
        origin               TEXT,
        PRIMARY KEY (integration_id, organization_user_id)
    );
    CREATE INDEX outbox_due ON outbox (integration_id, next_attempt_at_ms);

    CREATE TABLE dead_letters (
        id                   BIGSERIAL PRIMARY KEY,
        integration_id       TEXT   NOT NULL,
        organization_user_id TEXT   NOT NULL,
        version              BIGINT NOT NULL,
        attempts             BIGINT NOT NULL,
        last_error           TEXT   NOT NULL,
        created_at_ms        BIGINT NOT NULL,
        replayed_at_ms       BIGINT
    );
    CREATE INDEX dead_letters_by_integration ON dead_letters (integration_id, id);

    CREATE TABLE audit (
        id                   BIGSERIAL PRIMARY KEY,
        at_ms                BIGINT NOT NULL,
        integration_id       TEXT   NOT NULL,
        organization_user_id TEXT   NOT NULL,
        state_version        BIGINT NOT NULL,
        connector_type       TEXT   NOT NULL,
        connector_version    TEXT   NOT NULL,
        connector_hash       TEXT   NOT NULL,
        outcome              TEXT   NOT NULL,
        detail               TEXT   NOT NULL,
        http_statuses        TEXT   NOT NULL,
        duration_ms          BIGINT NOT NULL,
        attempt              BIGINT NOT NULL,
        origin               TEXT
    );
    CREATE INDEX audit_by_user ON audit (organization_user_id, id);

    CREATE TABLE plugin_versions (
        type_id       TEXT   NOT NULL,
        content_hash  TEXT   NOT NULL,
        version       TEXT   NOT NULL,
        wit_version   TEXT   NOT NULL,
        description   TEXT   NOT NULL,
        source        TEXT   NOT NULL,
        loaded_at_ms  BIGINT NOT NULL,
        status        TEXT   NOT NULL,
        status_reason TEXT,
        status_at_ms  BIGINT NOT NULL,
        wasm          BYTEA  NOT NULL,
        seq           BIGSERIAL,
        PRIMARY KEY (type_id, content_hash)
    );

    CREATE TABLE plugin_switches (
        id           BIGSERIAL PRIMARY KEY,
        at_ms        BIGINT NOT NULL,
        type_id      TEXT   NOT NULL,
        action       TEXT   NOT NULL,
        from_version TEXT,
        from_hash    TEXT,
        to_version   TEXT   NOT NULL,
        to_hash      TEXT   NOT NULL,
        detail       TEXT   NOT NULL
    );
    CREATE INDEX plugin_switches_by_type ON plugin_switches (type_id, id);
    "#,
    // 2: activations (SQLite's migration 4; see `activations.rs`).
    r#"
    CREATE TABLE activations (
        id             TEXT   NOT NULL PRIMARY KEY,
        integration_id TEXT   NOT NULL,
        config         TEXT   NOT NULL,
        created_at_ms  BIGINT NOT NULL,
        updated_at_ms  BIGINT NOT NULL,
        next_run_at_ms BIGINT,
        lease_run_id   BIGINT,
        lease_until_ms BIGINT
    );

    CREATE TABLE activation_runs (
        id             BIGSERIAL PRIMARY KEY,
        activation_id  TEXT    NOT NULL,
        trigger_name   TEXT    NOT NULL,
        host           TEXT    NOT NULL,
        full_resync    BOOLEAN NOT NULL,
        started_at_ms  BIGINT  NOT NULL,
        finished_at_ms BIGINT,
        status         TEXT    NOT NULL,
        summary        TEXT    NOT NULL
    );
    CREATE INDEX activation_runs_by_activation ON activation_runs (activation_id, id);

    CREATE TABLE activation_snapshot (
        activation_id TEXT   NOT NULL,
        key           TEXT   NOT NULL,
        accepted      BYTEA,
        seen_run      BIGINT NOT NULL,
        PRIMARY KEY (activation_id, key)
    );
    "#,
    // 3: one name for the thing users install: "connector" (the tables were
    // named "plugin" before).
    r#"
    ALTER TABLE plugin_versions RENAME TO connector_versions;
    ALTER TABLE plugin_switches RENAME TO connector_switches;
    ALTER INDEX plugin_switches_by_type RENAME TO connector_switches_by_type;
    "#,
    // 4: what on-call watches, cheap to read: when each row's oldest waiting
    // change arrived, and partial indexes over just the waiting rows and the
    // unreplayed dead letters.
    r#"
    ALTER TABLE outbox ADD COLUMN pending_since_ms BIGINT NOT NULL DEFAULT 0;
    UPDATE outbox SET pending_since_ms = updated_at_ms;
    CREATE INDEX outbox_pending ON outbox (integration_id, pending_since_ms)
        WHERE wanted_version > acked_version;
    CREATE INDEX dead_letters_unreplayed ON dead_letters (integration_id)
        WHERE replayed_at_ms IS NULL;
    "#,
    // 5: the trace context (a W3C `traceparent`) of the ingest that raised a
    // row's newest change (SQLite's migration 7).
    r#"
    ALTER TABLE outbox ADD COLUMN trace_context TEXT;
    "#,
    // 6: the snapshot numbers its keys per activation, so a run marks the
    // keys it has seen in memory instead of rewriting each one's row
    // (SQLite's migration 8).
    r#"
    DELETE FROM activation_snapshot
        WHERE activation_id NOT IN (SELECT id FROM activations);
    ALTER TABLE activation_snapshot ADD COLUMN key_number BIGINT;
    UPDATE activation_snapshot AS s SET key_number = n.key_number
        FROM (SELECT activation_id, key,
                     row_number() OVER (PARTITION BY activation_id ORDER BY key) AS key_number
              FROM activation_snapshot) AS n
        WHERE s.activation_id = n.activation_id AND s.key = n.key;
    ALTER TABLE activation_snapshot ALTER COLUMN key_number SET NOT NULL;
    ALTER TABLE activation_snapshot DROP COLUMN seen_run;
    ALTER TABLE activations ADD COLUMN last_key_number BIGINT NOT NULL DEFAULT 0;
    UPDATE activations SET last_key_number =
        (SELECT count(*) FROM activation_snapshot WHERE activation_id = activations.id);
    "#,
    // 7: the audit by time, for the overview's counts (SQLite's migration 9).
    r#"
    CREATE INDEX audit_by_time ON audit (at_ms);
    "#,
    // 8: claims read only the waiting rows, already in claim order
    // (SQLite's migration 10).
    r#"
    CREATE INDEX outbox_waiting ON outbox (integration_id, next_attempt_at_ms, organization_user_id)
        WHERE wanted_version > acked_version;
    DROP INDEX outbox_due;
    "#,
];

/// Key of the advisory lock migrations hold ("prefsync" in ASCII).
const MIGRATION_LOCK: i64 = 0x7072_6566_7379_6e63;

/// `deliveries` answers this many rows when the filter's limit is 0.
const DEFAULT_DELIVERIES_LIMIT: i64 = 100;

/// Connections a host keeps open, unless told otherwise
/// ([`PostgresStore::connect_pooled`]).
pub const DEFAULT_POOL_SIZE: usize = 16;

/// The PostgreSQL [`Store`]. Cheap to clone: clones share the pool.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    /// See [`Store::integrations_written`].
    integrations_written: Arc<AtomicU64>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

/// `url` with its passwords replaced — the userinfo's and any secret-named
/// query parameter (`?password=`, `sslpassword`, any case): what errors and
/// logs may show. A string that is not a URL (a `key=value` DSN) is not shown.
pub fn redacted_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(_) => prefsync_base::secrets::redact_url(url),
        Err(_) => "(a connection string that does not parse as a URL)".into(),
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`,
    /// with `?sslmode=…&sslrootcert=…` for TLS) with a pool of
    /// [`DEFAULT_POOL_SIZE`] connections, and brings the schema up to date.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        Self::connect_pooled(url, DEFAULT_POOL_SIZE).await
    }

    /// [`Self::connect`], keeping at most `pool_size` connections open.
    pub async fn connect_pooled(url: &str, pool_size: usize) -> anyhow::Result<Self> {
        let shown = redacted_url(url);
        let parsed =
            PgConnectionString::parse(url).map_err(|e| anyhow!("storage.url {shown}: {e}"))?;
        let tls = parsed
            .connector()
            .map_err(|e| anyhow!("storage.url {shown}: {e}"))?;
        let manager = Manager::from_config(
            parsed.config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .build()
            .map_err(|e| anyhow!("building the connection pool for {shown}: {e}"))?;
        let store = PostgresStore {
            pool,
            integrations_written: Arc::default(),
        };
        store
            .migrate()
            .await
            .with_context(|| format!("migrating the database at {shown}"))?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS prefsync_schema (version BIGINT NOT NULL)")
            .await?;
        let current: i64 = tx
            .query_one("SELECT COALESCE(MAX(version), 0) FROM prefsync_schema", &[])
            .await?
            .get(0);
        let known = MIGRATIONS.len() as i64;
        if current > known {
            bail!(
                "the database is at schema version {current}, newer than this prefsync knows ({known}); run a newer prefsync"
            );
        }
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            tx.batch_execute(sql)
                .await
                .with_context(|| format!("migration {}", index + 1))?;
            tx.execute(
                "INSERT INTO prefsync_schema (version) VALUES ($1)",
                &[&(index as i64 + 1)],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| match e {
            // tokio-postgres' own text leaves out the cause (the TLS
            // check that failed, the refused connection).
            deadpool_postgres::PoolError::Backend(e) => {
                anyhow!("postgres store: no connection: {}", error_chain(&e))
            }
            e => anyhow!("postgres store: no connection: {e}"),
        })
    }
}

fn int(value: u64) -> Result<i64> {
    i64::try_from(value).with_context(|| format!("{value} does not fit a BIGINT"))
}

fn uint(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

fn json<T: serde::de::DeserializeOwned>(row: &Row, index: usize) -> Result<T> {
    let text: String = row.try_get(index)?;
    serde_json::from_str(&text).with_context(|| format!("column {index} is not the JSON expected"))
}

/// A closed-set name read from a text column (`prefsync_base::named_enum!`);
/// a name outside the set fails the row without repeating the text.
fn named<T>(row: &Row, index: usize) -> Result<T>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let name: String = row.try_get(index)?;
    name.parse()
        .with_context(|| format!("column {index} holds an unknown name"))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    Ok(serde_json::to_string(value)?)
}

const INTEGRATION_COLUMNS: &str = "id, type_id, enabled, config, created_at_ms, updated_at_ms";

fn integration_from_row(row: &Row) -> Result<IntegrationRecord> {
    Ok(IntegrationRecord {
        id: row.try_get(0)?,
        type_id: row.try_get(1)?,
        enabled: row.try_get(2)?,
        config: json(row, 3)?,
        created_at_ms: row.try_get(4)?,
        updated_at_ms: row.try_get(5)?,
    })
}

const EVENT_COLUMNS: &str =
    "event_id, organization_user_id, origin, status, created_at_ms, received_at_ms, payload";

fn event_from_row(row: &Row) -> Result<StoredEvent> {
    Ok(StoredEvent {
        event_id: row.try_get(0)?,
        organization_user_id: row.try_get(1)?,
        origin: row.try_get(2)?,
        status: named(row, 3)?,
        created_at_ms: row.try_get(4)?,
        received_at_ms: row.try_get(5)?,
        payload: json(row, 6)?,
    })
}

const OUTBOX_COLUMNS: &str = "integration_id, organization_user_id, wanted_version, \
     acked_version, attempts, next_attempt_at_ms, lease_owner, lease_until_ms, last_error, \
     updated_at_ms";

fn outbox_from_row(row: &Row) -> Result<OutboxEntry> {
    Ok(OutboxEntry {
        integration_id: row.try_get(0)?,
        organization_user_id: row.try_get(1)?,
        wanted_version: uint(row.try_get(2)?),
        acked_version: uint(row.try_get(3)?),
        attempts: row.try_get::<_, i64>(4)? as u32,
        next_attempt_at_ms: row.try_get(5)?,
        lease_owner: row.try_get(6)?,
        lease_until_ms: row.try_get(7)?,
        last_error: row.try_get(8)?,
        updated_at_ms: row.try_get(9)?,
    })
}

const DEAD_LETTER_COLUMNS: &str = "id, integration_id, organization_user_id, version, attempts, \
     last_error, created_at_ms, replayed_at_ms";

fn dead_letter_from_row(row: &Row) -> Result<DeadLetter> {
    Ok(DeadLetter {
        id: row.try_get(0)?,
        integration_id: row.try_get(1)?,
        organization_user_id: row.try_get(2)?,
        version: uint(row.try_get(3)?),
        attempts: row.try_get::<_, i64>(4)? as u32,
        last_error: row.try_get(5)?,
        created_at_ms: row.try_get(6)?,
        replayed_at_ms: row.try_get(7)?,
    })
}

const AUDIT_COLUMNS: &str = "id, at_ms, integration_id, organization_user_id, state_version, \
     connector_type, connector_version, connector_hash, outcome, detail, http_statuses, \
     duration_ms, attempt, origin";

fn audit_from_row(row: &Row) -> Result<AuditRow> {
    Ok(AuditRow {
        id: row.try_get(0)?,
        at_ms: row.try_get(1)?,
        integration_id: row.try_get(2)?,
        organization_user_id: row.try_get(3)?,
        state_version: uint(row.try_get(4)?),
        connector_type: row.try_get(5)?,
        connector_version: row.try_get(6)?,
        connector_hash: row.try_get(7)?,
        outcome: named(row, 8)?,
        detail: row.try_get(9)?,
        http_statuses: json(row, 10)?,
        duration_ms: uint(row.try_get(11)?),
        attempt: row.try_get::<_, i64>(12)? as u32,
        origin: row.try_get(13)?,
    })
}

/// `sql` prepared once per pooled connection (deadpool's statement cache):
/// a hot-path statement then costs one round trip, not a prepare and an
/// execute. Only for fixed SQL: the cache keeps every distinct text.
async fn cached(tx: &Transaction<'_>, sql: &str) -> Result<Statement> {
    Ok(tx.prepare_cached(sql).await?)
}

async fn load_user(tx: &Transaction<'_>, user: &str) -> Result<Option<UserRecord>> {
    let statement = cached(
        tx,
        "SELECT state, updated_at_ms FROM users WHERE organization_user_id = $1",
    )
    .await?;
    let row = tx.query_opt(&statement, &[&user]).await?;
    row.map(|row| {
        Ok(UserRecord {
            state: json(&row, 0)?,
            updated_at_ms: row.try_get(1)?,
        })
    })
    .transpose()
}

async fn integration_exists(tx: &Transaction<'_>, id: &str) -> Result<bool> {
    let statement = cached(tx, "SELECT 1 FROM integrations WHERE id = $1").await?;
    Ok(tx.query_opt(&statement, &[&id]).await?.is_some())
}

/// As in SQLite's `enqueue`: raise `wanted_version`, a clean slate for a row
/// that had no work left, pending work keeps its attempts and schedule.
async fn enqueue(
    tx: &Transaction<'_>,
    integration_id: &str,
    user: &str,
    version: u64,
    now_ms: i64,
    origin: Option<&str>,
    trace_context: Option<&str>,
) -> Result<()> {
    let statement = cached(
        tx,
        "INSERT INTO outbox (integration_id, organization_user_id, wanted_version,
             acked_version, attempts, next_attempt_at_ms, updated_at_ms, origin,
             pending_since_ms, trace_context)
         VALUES ($1, $2, $3, 0, 0, $4, $4, $5, $4, $6)
         ON CONFLICT (integration_id, organization_user_id) DO UPDATE SET
             wanted_version = excluded.wanted_version,
             origin = excluded.origin,
             trace_context = excluded.trace_context,
             pending_since_ms = CASE WHEN outbox.acked_version >= outbox.wanted_version
                 THEN excluded.pending_since_ms ELSE outbox.pending_since_ms END,
             attempts = CASE WHEN outbox.acked_version >= outbox.wanted_version
                 THEN 0 ELSE outbox.attempts END,
             last_error = CASE WHEN outbox.acked_version >= outbox.wanted_version
                 THEN NULL ELSE outbox.last_error END,
             next_attempt_at_ms = CASE WHEN outbox.acked_version >= outbox.wanted_version
                 THEN excluded.next_attempt_at_ms ELSE outbox.next_attempt_at_ms END,
             updated_at_ms = excluded.updated_at_ms
         WHERE excluded.wanted_version > outbox.wanted_version",
    )
    .await?;
    tx.execute(
        &statement,
        &[
            &integration_id,
            &user,
            &int(version)?,
            &now_ms,
            &origin,
            &trace_context,
        ],
    )
    .await?;
    Ok(())
}

async fn insert_audit(tx: &Transaction<'_>, row: &AuditRow) -> Result<()> {
    let statement = cached(
        tx,
        "INSERT INTO audit (at_ms, integration_id, organization_user_id, state_version,
             connector_type, connector_version, connector_hash, outcome, detail,
             http_statuses, duration_ms, attempt, origin)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .await?;
    tx.execute(
        &statement,
        &[
            &row.at_ms,
            &row.integration_id,
            &row.organization_user_id,
            &int(row.state_version)?,
            &row.connector_type,
            &row.connector_version,
            &row.connector_hash,
            &row.outcome.as_str(),
            &row.detail,
            &to_json(&row.http_statuses)?,
            &int(row.duration_ms)?,
            &i64::from(row.attempt),
            &row.origin,
        ],
    )
    .await?;
    Ok(())
}

/// As in SQLite's `replay`.
async fn replay(tx: &Transaction<'_>, id: i64, now_ms: i64) -> Result<bool> {
    let Some(found) = tx
        .query_opt(
            "SELECT integration_id, organization_user_id, version FROM dead_letters
             WHERE id = $1 AND replayed_at_ms IS NULL FOR UPDATE",
            &[&id],
        )
        .await?
    else {
        return Ok(false);
    };
    let integration_id: String = found.try_get(0)?;
    let user: String = found.try_get(1)?;
    let version: i64 = found.try_get(2)?;
    tx.execute(
        "UPDATE dead_letters SET replayed_at_ms = $2 WHERE id = $1",
        &[&id, &now_ms],
    )
    .await?;
    if !integration_exists(tx, &integration_id).await? {
        return Ok(false);
    }
    tx.execute(
        "INSERT INTO outbox (integration_id, organization_user_id, wanted_version,
             acked_version, attempts, next_attempt_at_ms, updated_at_ms, pending_since_ms)
         VALUES ($1, $2, $3, $4, 0, $5, $5, $5)
         ON CONFLICT (integration_id, organization_user_id) DO UPDATE SET
             pending_since_ms = CASE WHEN outbox.acked_version >= outbox.wanted_version
                 THEN excluded.pending_since_ms ELSE outbox.pending_since_ms END,
             wanted_version = GREATEST(outbox.wanted_version, excluded.wanted_version),
             acked_version = LEAST(outbox.acked_version, excluded.acked_version),
             attempts = 0,
             last_error = NULL,
             next_attempt_at_ms = excluded.next_attempt_at_ms,
             updated_at_ms = excluded.updated_at_ms",
        &[
            &integration_id,
            &user,
            &version,
            &(version - 1).max(0),
            &now_ms,
        ],
    )
    .await?;
    Ok(true)
}

/// What writing an existing integration id does in `put_integration`.
const REPLACE_INTEGRATION: &str = "DO UPDATE SET type_id = excluded.type_id,
     enabled = excluded.enabled, config = excluded.config, updated_at_ms = excluded.updated_at_ms";

impl PostgresStore {
    /// Writes `integration`; `on_conflict` says what an existing id does
    /// (replace, or `DO NOTHING` for a create). Whether a row was written.
    async fn write_integration(
        &self,
        integration: &IntegrationRecord,
        on_conflict: &'static str,
    ) -> Result<bool> {
        let _counted = crate::CountOnDrop(&self.integrations_written);
        let written = self
            .client()
            .await?
            .execute(
                &format!(
                    "INSERT INTO integrations ({INTEGRATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (id) {on_conflict}"
                ),
                &[
                    &integration.id,
                    &integration.type_id,
                    &integration.enabled,
                    &to_json(&integration.config)?,
                    &integration.created_at_ms,
                    &integration.updated_at_ms,
                ],
            )
            .await?;
        Ok(written == 1)
    }
}

/// One event of an ingest transaction (its user already locked): stored
/// unless its id is known, and what `plan` makes of it applied.
async fn ingest_event(
    tx: &Transaction<'_>,
    index: usize,
    event: &StoredEvent,
    plan: &IngestPlanner,
) -> Result<IngestOutcome> {
    let statement = cached(
        tx,
        &format!(
            "INSERT INTO events ({EVENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (event_id) DO NOTHING"
        ),
    )
    .await?;
    let inserted = tx
        .execute(
            &statement,
            &[
                &event.event_id,
                &event.organization_user_id,
                &event.origin,
                &event.status.as_str(),
                &event.created_at_ms,
                &event.received_at_ms,
                &to_json(&event.payload)?,
            ],
        )
        .await?;
    if inserted == 0 {
        return Ok(IngestOutcome::Duplicate);
    }
    let current = load_user(tx, &event.organization_user_id).await?;
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
            save_user(tx, state, event.received_at_ms).await?;
            state.version
        }
        None => current_version,
    };
    let mut enqueued: Vec<String> = Vec::new();
    for integration_id in &plan.enqueue {
        if enqueued.contains(integration_id) || !integration_exists(tx, integration_id).await? {
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
        )
        .await?;
        enqueued.push(integration_id.clone());
    }
    Ok(IngestOutcome::Recorded { version, enqueued })
}

/// The outbox update that ends one claim (see [`Store::complete_all`]);
/// false when its lease is no longer held.
async fn complete_update(tx: &Transaction<'_>, done: &Completed, now_ms: i64) -> Result<bool> {
    let Completed {
        claim, completion, ..
    } = done;
    const HELD: &str = "WHERE integration_id = $1 AND organization_user_id = $2
         AND lease_owner = $3 AND lease_until_ms = $4";
    let key: [&(dyn tokio_postgres::types::ToSql + Sync); 4] = [
        &claim.integration_id,
        &claim.organization_user_id,
        &claim.lease_owner,
        &claim.lease_until_ms,
    ];
    let version = int(claim.version)?;
    let changed = match completion {
        Completion::Acked => {
            let statement = cached(
                tx,
                &format!(
                    "UPDATE outbox SET acked_version = GREATEST(acked_version, $5),
                         attempts = 0, last_error = NULL, lease_owner = NULL,
                         lease_until_ms = NULL, next_attempt_at_ms = $6,
                         updated_at_ms = $6, pending_since_ms = $6 {HELD}"
                ),
            )
            .await?;
            tx.execute(
                &statement,
                &[key[0], key[1], key[2], key[3], &version, &now_ms],
            )
            .await?
        }
        Completion::Retry {
            next_attempt_at_ms,
            error,
        } => {
            let statement = cached(
                tx,
                &format!(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = $5,
                         lease_owner = NULL, lease_until_ms = NULL,
                         next_attempt_at_ms = $6, updated_at_ms = $7 {HELD}"
                ),
            )
            .await?;
            tx.execute(
                &statement,
                &[
                    key[0],
                    key[1],
                    key[2],
                    key[3],
                    error,
                    next_attempt_at_ms,
                    &now_ms,
                ],
            )
            .await?
        }
        Completion::DeadLetter { error } => {
            let statement = cached(
                tx,
                &format!(
                    "UPDATE outbox SET acked_version = GREATEST(acked_version, $5),
                         attempts = 0, last_error = $6, lease_owner = NULL,
                         lease_until_ms = NULL, next_attempt_at_ms = $7,
                         updated_at_ms = $7, pending_since_ms = $7 {HELD}"
                ),
            )
            .await?;
            tx.execute(
                &statement,
                &[key[0], key[1], key[2], key[3], &version, error, &now_ms],
            )
            .await?
        }
    };
    Ok(changed > 0)
}

/// What a held completion writes besides its outbox row: its dead letter,
/// if it is one, and its audit row.
async fn complete_rows(tx: &Transaction<'_>, done: &Completed, now_ms: i64) -> Result<()> {
    let Completed {
        claim,
        completion,
        audit,
    } = done;
    if let Completion::DeadLetter { error } = completion {
        let statement = cached(
            tx,
            "INSERT INTO dead_letters (integration_id, organization_user_id,
                 version, attempts, last_error, created_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await?;
        tx.execute(
            &statement,
            &[
                &claim.integration_id,
                &claim.organization_user_id,
                &int(claim.version)?,
                &i64::from(claim.attempts.saturating_add(1)),
                error,
                &now_ms,
            ],
        )
        .await?;
    }
    insert_audit(tx, audit).await
}

#[async_trait]
impl Store for PostgresStore {
    async fn put_integration(&self, integration: &IntegrationRecord) -> Result<()> {
        self.write_integration(integration, REPLACE_INTEGRATION)
            .await
            .map(|_| ())
    }

    async fn insert_integration(&self, integration: &IntegrationRecord) -> Result<bool> {
        self.write_integration(integration, "DO NOTHING").await
    }

    async fn integration(&self, id: &str) -> Result<Option<IntegrationRecord>> {
        let client = self.client().await?;
        client
            .query_opt(
                &format!("SELECT {INTEGRATION_COLUMNS} FROM integrations WHERE id = $1"),
                &[&id],
            )
            .await?
            .map(|row| integration_from_row(&row))
            .transpose()
    }

    fn integrations_written(&self) -> u64 {
        self.integrations_written.load(Ordering::SeqCst)
    }

    async fn integrations(&self) -> Result<Vec<IntegrationRecord>> {
        let client = self.client().await?;
        client
            .query(
                &format!("SELECT {INTEGRATION_COLUMNS} FROM integrations ORDER BY id"),
                &[],
            )
            .await?
            .iter()
            .map(integration_from_row)
            .collect()
    }

    async fn delete_integration(&self, id: &str) -> Result<bool> {
        let _counted = crate::CountOnDrop(&self.integrations_written);
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("DELETE FROM outbox WHERE integration_id = $1", &[&id])
            .await?;
        let deleted = tx
            .execute("DELETE FROM integrations WHERE id = $1", &[&id])
            .await?;
        tx.commit().await?;
        Ok(deleted > 0)
    }

    async fn ingest(
        &self,
        events: Vec<StoredEvent>,
        plan: Arc<IngestPlanner>,
    ) -> Result<Vec<IngestOutcome>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // One user's events merge one after the other, whichever host takes
        // them. Every user of the batch is locked up front and in one order,
        // so two hosts' batches sharing users cannot deadlock.
        let mut users: Vec<&str> = events
            .iter()
            .map(|event| event.organization_user_id.as_str())
            .collect();
        users.sort_unstable();
        users.dedup();
        let lock = cached(&tx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))").await?;
        for user in users {
            tx.execute(&lock, &[&user]).await?;
        }
        let mut outcomes = Vec::with_capacity(events.len());
        for (index, event) in events.iter().enumerate() {
            outcomes.push(ingest_event(&tx, index, event, plan.as_ref()).await?);
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn users(&self, organization_user_ids: &[String]) -> Result<Vec<Option<UserRecord>>> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT organization_user_id, state, updated_at_ms FROM users
                 WHERE organization_user_id = ANY($1)",
            )
            .await?;
        let rows = client.query(&statement, &[&organization_user_ids]).await?;
        let mut found = std::collections::HashMap::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get(0)?;
            found.insert(
                id,
                UserRecord {
                    state: json(&row, 1)?,
                    updated_at_ms: row.try_get(2)?,
                },
            );
        }
        Ok(organization_user_ids
            .iter()
            .map(|id| found.get(id).cloned())
            .collect())
    }

    async fn user(&self, organization_user_id: &str) -> Result<Option<UserRecord>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let user = load_user(&tx, organization_user_id).await?;
        tx.commit().await?;
        Ok(user)
    }

    async fn clamp_future_stamps(&self, limit_ms: i64, now_ms: i64) -> Result<u64> {
        let mut client = self.client().await?;
        // A state's `updated_at_ms` is the greatest of its stamps, so only
        // states beyond the limit need reading.
        let users: Vec<String> = client
            .query(
                "SELECT organization_user_id FROM users
                 WHERE (state::json ->> 'updated_at_ms')::bigint > $1",
                &[&limit_ms],
            )
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<std::result::Result<_, _>>()?;
        let mut repaired = 0;
        for user in users {
            let tx = client.transaction().await?;
            // The ingest lock: an event for this user waits for the repair.
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                &[&user],
            )
            .await?;
            let Some(mut record) = load_user(&tx, &user).await? else {
                continue;
            };
            if record.state.updated_at_ms <= limit_ms {
                continue;
            }
            record.state.clamp_stamps_after(limit_ms, now_ms);
            tx.execute(
                "UPDATE users SET state = $2 WHERE organization_user_id = $1",
                &[&user, &to_json(&record.state)?],
            )
            .await?;
            tx.commit().await?;
            repaired += 1;
        }
        Ok(repaired)
    }

    async fn events_for_user(
        &self,
        organization_user_id: &str,
        limit: u32,
    ) -> Result<Vec<StoredEvent>> {
        let client = self.client().await?;
        client
            .query(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE organization_user_id = $1
                     ORDER BY received_at_ms DESC, seq DESC LIMIT $2"
                ),
                &[&organization_user_id, &i64::from(limit)],
            )
            .await?
            .iter()
            .map(event_from_row)
            .collect()
    }

    async fn claim_due(
        &self,
        integration_id: &str,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> Result<Vec<Claim>> {
        let client = self.client().await?;
        let lease_until_ms = now_ms.saturating_add(lease_ms);
        // Rows another host is claiming right now are skipped, not waited for.
        let statement = client
            .prepare_cached(
                "WITH due AS (
                     SELECT integration_id, organization_user_id FROM outbox
                     WHERE integration_id = $1
                       AND wanted_version > acked_version
                       AND next_attempt_at_ms <= $2
                       AND (lease_until_ms IS NULL OR lease_until_ms <= $2)
                     ORDER BY next_attempt_at_ms, organization_user_id
                     LIMIT $3
                     FOR UPDATE SKIP LOCKED)
                 UPDATE outbox SET lease_owner = $4, lease_until_ms = $5, updated_at_ms = $2
                 FROM due
                 WHERE outbox.integration_id = due.integration_id
                   AND outbox.organization_user_id = due.organization_user_id
                 RETURNING outbox.organization_user_id, outbox.wanted_version,
                     outbox.attempts, outbox.origin, outbox.next_attempt_at_ms,
                     outbox.trace_context",
            )
            .await?;
        let rows = client
            .query(
                &statement,
                &[
                    &integration_id,
                    &now_ms,
                    &i64::from(limit),
                    &owner,
                    &lease_until_ms,
                ],
            )
            .await?;
        let mut claims: Vec<(i64, Claim)> = rows
            .iter()
            .map(|row| {
                Ok((
                    row.try_get::<_, i64>(4)?,
                    Claim {
                        integration_id: integration_id.to_string(),
                        organization_user_id: row.try_get(0)?,
                        version: uint(row.try_get(1)?),
                        attempts: row.try_get::<_, i64>(2)? as u32,
                        lease_owner: owner.to_string(),
                        lease_until_ms,
                        origin: row.try_get(3)?,
                        trace_context: row.try_get(5)?,
                    },
                ))
            })
            .collect::<Result<_>>()?;
        // RETURNING keeps no order: oldest due first, as claimed.
        claims.sort_by(|(a, x), (b, y)| {
            a.cmp(b)
                .then_with(|| x.organization_user_id.cmp(&y.organization_user_id))
        });
        Ok(claims.into_iter().map(|(_, claim)| claim).collect())
    }

    async fn complete_all(&self, completed: Vec<Completed>, now_ms: i64) -> Result<Vec<bool>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Every statement of a phase is sent before the first answer is
        // read (tokio-postgres pipelines concurrent queries on one
        // connection): a batch costs two round trips, not two per delivery.
        // The rows that follow an update wait for it: a lease lost in the
        // meantime writes neither audit nor dead letter.
        let held = try_join_all(
            completed
                .iter()
                .map(|done| complete_update(&tx, done, now_ms)),
        )
        .await?;
        try_join_all(
            completed
                .iter()
                .zip(&held)
                .filter(|(_, held)| **held)
                .map(|(done, _)| complete_rows(&tx, done, now_ms)),
        )
        .await?;
        tx.commit().await?;
        Ok(held)
    }

    async fn release(&self, claims: &[Claim]) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        for claim in claims {
            tx.execute(
                "UPDATE outbox SET lease_owner = NULL, lease_until_ms = NULL
                 WHERE integration_id = $1 AND organization_user_id = $2
                   AND lease_owner = $3 AND lease_until_ms = $4",
                &[
                    &claim.integration_id,
                    &claim.organization_user_id,
                    &claim.lease_owner,
                    &claim.lease_until_ms,
                ],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn next_due_at(&self, integration_id: &str) -> Result<Option<i64>> {
        let client = self.client().await?;
        Ok(client
            .query_one(
                "SELECT MIN(GREATEST(next_attempt_at_ms, COALESCE(lease_until_ms, next_attempt_at_ms)))
                 FROM outbox WHERE integration_id = $1 AND wanted_version > acked_version",
                &[&integration_id],
            )
            .await?
            .try_get(0)?)
    }

    async fn deliveries(
        &self,
        filter: &DeliveryFilter,
        now_ms: i64,
    ) -> Result<Vec<(OutboxEntry, DeliveryStatus)>> {
        let client = self.client().await?;
        let limit = match filter.limit {
            0 => DEFAULT_DELIVERIES_LIMIT,
            limit => i64::from(limit),
        };
        let rows = client
            .query(
                &format!(
                    "SELECT * FROM (
                         SELECT {OUTBOX_COLUMNS},
                             CASE WHEN lease_until_ms > $3 THEN 'in_flight'
                                  WHEN wanted_version > acked_version THEN 'pending'
                                  ELSE 'done' END AS status
                         FROM outbox
                         WHERE ($1::TEXT IS NULL OR integration_id = $1)
                           AND ($2::TEXT IS NULL OR organization_user_id = $2)) AS rows
                     WHERE $4::TEXT IS NULL OR status = $4
                     ORDER BY updated_at_ms DESC, integration_id, organization_user_id
                     LIMIT $5"
                ),
                &[
                    &filter.integration_id,
                    &filter.organization_user_id,
                    &now_ms,
                    &filter.status.map(DeliveryStatus::as_str),
                    &limit,
                ],
            )
            .await?;
        rows.iter()
            .map(|row| Ok((outbox_from_row(row)?, named::<DeliveryStatus>(row, 10)?)))
            .collect()
    }

    async fn queue_depth(&self) -> Result<u64> {
        let client = self.client().await?;
        let count: i64 = client
            .query_one(
                "SELECT COUNT(*) FROM outbox WHERE wanted_version > acked_version",
                &[],
            )
            .await?
            .try_get(0)?;
        Ok(uint(count))
    }

    async fn queue_stats(&self) -> Result<Vec<QueueStats>> {
        let client = self.client().await?;
        client
            .query(QUEUE_STATS, &[])
            .await?
            .iter()
            .map(|row| {
                Ok(QueueStats {
                    integration_id: row.try_get(0)?,
                    pending: uint(row.try_get(1)?),
                    oldest_pending_since_ms: row.try_get(2)?,
                    dead_letters: uint(row.try_get(3)?),
                })
            })
            .collect()
    }

    async fn dead_letters(&self, integration_id: Option<&str>) -> Result<Vec<DeadLetter>> {
        let client = self.client().await?;
        client
            .query(
                &format!(
                    "SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters
                     WHERE $1::TEXT IS NULL OR integration_id = $1
                     ORDER BY id DESC"
                ),
                &[&integration_id],
            )
            .await?
            .iter()
            .map(dead_letter_from_row)
            .collect()
    }

    async fn replay_dead_letter(&self, id: i64, now_ms: i64) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let requeued = replay(&tx, id, now_ms).await?;
        tx.commit().await?;
        Ok(requeued)
    }

    async fn replay_integration(&self, integration_id: &str, now_ms: i64) -> Result<u64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let ids: Vec<i64> = tx
            .query(
                "SELECT id FROM dead_letters
                 WHERE integration_id = $1 AND replayed_at_ms IS NULL ORDER BY id",
                &[&integration_id],
            )
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<std::result::Result<_, _>>()?;
        let mut requeued = 0;
        for id in ids {
            if replay(&tx, id, now_ms).await? {
                requeued += 1;
            }
        }
        tx.commit().await?;
        Ok(requeued)
    }

    async fn append_audit(&self, row: &AuditRow) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        insert_audit(&tx, row).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn audit_for_user(
        &self,
        organization_user_id: &str,
        limit: u32,
    ) -> Result<Vec<AuditRow>> {
        let client = self.client().await?;
        client
            .query(
                &format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit WHERE organization_user_id = $1
                     ORDER BY id LIMIT $2"
                ),
                &[&organization_user_id, &i64::from(limit)],
            )
            .await?
            .iter()
            .map(audit_from_row)
            .collect()
    }

    async fn delivery_counts(&self, since_ms: i64, bucket_ms: i64) -> Result<Vec<DeliveryCount>> {
        check_bucket(bucket_ms)?;
        let client = self.client().await?;
        client
            .query(DELIVERY_COUNTS, &[&since_ms, &bucket_ms])
            .await?
            .iter()
            .map(|row| {
                Ok(DeliveryCount {
                    integration_id: row.try_get(0)?,
                    bucket: row.try_get(1)?,
                    outcome: named(row, 2)?,
                    count: uint(row.try_get(3)?),
                })
            })
            .collect()
    }

    async fn latest_failures(&self, since_ms: i64) -> Result<Vec<AuditRow>> {
        let client = self.client().await?;
        client
            .query(&latest_failures_query(AUDIT_COLUMNS), &[&since_ms])
            .await?
            .iter()
            .map(audit_from_row)
            .collect()
    }
}

async fn save_user(tx: &Transaction<'_>, state: &UserState, updated_at_ms: i64) -> Result<()> {
    let statement = cached(
        tx,
        "INSERT INTO users (organization_user_id, state, version, updated_at_ms)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (organization_user_id) DO UPDATE SET
             state = excluded.state,
             version = excluded.version,
             updated_at_ms = excluded.updated_at_ms",
    )
    .await?;
    tx.execute(
        &statement,
        &[
            &state.organization_user_id,
            &to_json(state)?,
            &int(state.version)?,
            &updated_at_ms,
        ],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_postgres::NoTls;

    /// The server the tests use: `PREFSYNC_TEST_POSTGRES`, which
    /// `./scripts/test.sh` sets after starting a throwaway one.
    fn server_url() -> String {
        std::env::var("PREFSYNC_TEST_POSTGRES").unwrap_or_else(|_| {
            panic!(
                "PREFSYNC_TEST_POSTGRES is not set: the PostgreSQL store's tests need a server \
                 (./scripts/test.sh starts one with scripts/postgres.sh)"
            )
        })
    }

    /// A fresh database on the test server; its connection string.
    pub(crate) async fn fresh_database() -> String {
        let admin = server_url();
        let (client, connection) = tokio_postgres::connect(&admin, NoTls)
            .await
            .expect("connecting to the test server");
        tokio::spawn(connection);
        let mut bytes = [0u8; 6];
        getrandom::fill(&mut bytes).expect("random");
        let name = format!("prefsync_test_{}", hex::encode(bytes));
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("creating a test database");
        let mut url = url::Url::parse(&admin).expect("a URL");
        url.set_path(&name);
        url.to_string()
    }

    async fn open_postgres() -> (Box<dyn std::any::Any + Send>, Arc<dyn Store>) {
        let store = PostgresStore::connect(&fresh_database().await)
            .await
            .expect("connect");
        (Box::new(()), Arc::new(store))
    }

    crate::conformance::store_conformance_tests!(open_postgres);

    #[tokio::test]
    async fn hosts_starting_together_migrate_once() {
        let url = fresh_database().await;
        let starts: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { PostgresStore::connect(&url).await })
            })
            .collect();
        for start in starts {
            start.await.unwrap().expect("every host starts");
        }
        let store = PostgresStore::connect(&url).await.expect("connect");
        let client = store.client().await.unwrap();
        let versions: Vec<i64> = client
            .query("SELECT version FROM prefsync_schema ORDER BY version", &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(versions, (1..=MIGRATIONS.len() as i64).collect::<Vec<_>>());
        client
            .execute("INSERT INTO prefsync_schema (version) VALUES (99)", &[])
            .await
            .unwrap();
        let error = PostgresStore::connect(&url)
            .await
            .expect_err("newer schema");
        assert!(
            format!("{error:#}").contains("newer than this prefsync knows"),
            "{error:#}"
        );
    }

    /// Before 0.2 the registry's tables were `plugin_*`: a database made
    /// then keeps its versions and switches, and its switch ids go on.
    #[tokio::test]
    async fn a_database_from_before_the_rename_keeps_its_registry() {
        use crate::connectors::{ConnectorAction, ConnectorSource, ConnectorStore};
        let url = fresh_database().await;
        {
            let (mut client, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
            tokio::spawn(connection);
            let tx = client.transaction().await.unwrap();
            tx.batch_execute("CREATE TABLE prefsync_schema (version BIGINT NOT NULL)")
                .await
                .unwrap();
            for (index, sql) in MIGRATIONS[..2].iter().enumerate() {
                tx.batch_execute(sql).await.expect("an old migration");
                tx.execute(
                    "INSERT INTO prefsync_schema (version) VALUES ($1)",
                    &[&(index as i64 + 1)],
                )
                .await
                .unwrap();
            }
            tx.batch_execute(
                "INSERT INTO plugin_versions (type_id, content_hash, version, wit_version,
                     description, source, loaded_at_ms, status, status_reason, status_at_ms, wasm)
                 VALUES ('dotdigital', 'aa', '0.1.0', '0.1.1', '{}', 'watcher', 10,
                         'active', NULL, 10, '\\x0061736d');
                 INSERT INTO plugin_switches (at_ms, type_id, action, from_version,
                     from_hash, to_version, to_hash, detail)
                 VALUES (10, 'dotdigital', 'install', NULL, NULL, '0.1.0', 'aa', 'from the watcher');",
            )
            .await
            .expect("rows of the old tables");
            tx.commit().await.unwrap();
        }
        let store = PostgresStore::connect(&url).await.expect("migrates");
        let versions = store.connector_versions(None).await.expect("versions");
        assert_eq!(versions.len(), 1);
        assert_eq!(versions[0].source, ConnectorSource::Watcher);
        assert_eq!(
            store
                .connector_wasm("dotdigital", "aa")
                .await
                .expect("wasm"),
            Some(b"\0asm".to_vec())
        );
        store
            .record_connector_switch(&crate::connectors::tests_support::switch("0.2.0"), &[])
            .await
            .expect("a new switch");
        let switches = store
            .connector_switches("dotdigital", 10)
            .await
            .expect("switches");
        assert_eq!(
            switches
                .iter()
                .map(|s| (s.id, s.action))
                .collect::<Vec<_>>(),
            [(1, ConnectorAction::Install), (2, ConnectorAction::Upgrade)]
        );
    }

    #[tokio::test]
    async fn two_hosts_claiming_at_once_never_take_the_same_row() {
        let url = fresh_database().await;
        let hosts = [
            PostgresStore::connect(&url).await.unwrap(),
            PostgresStore::connect(&url).await.unwrap(),
        ];
        hosts[0]
            .put_integration(&integration("crm", 1))
            .await
            .unwrap();
        for i in 0..200 {
            change_user(
                &hosts[i % 2],
                &format!("u{i}"),
                &format!("e{i}"),
                100,
                "crm",
            )
            .await;
        }
        let mut claimers = Vec::new();
        for (h, host) in hosts.iter().enumerate() {
            for round in 0..4 {
                let host = host.clone();
                claimers.push(tokio::spawn(async move {
                    host.claim_due("crm", &format!("host-{h}-{round}"), 1_000, 60_000, 40)
                        .await
                        .unwrap()
                }));
            }
        }
        let mut claimed = std::collections::HashSet::new();
        for claimer in claimers {
            for claim in claimer.await.unwrap() {
                assert!(
                    claimed.insert(claim.organization_user_id.clone()),
                    "{} claimed twice",
                    claim.organization_user_id
                );
            }
        }
        assert_eq!(claimed.len(), 200);
    }

    #[test]
    fn a_connection_string_is_shown_without_its_password() {
        let shown = redacted_url("postgres://prefsync:s3cret-pw@db.internal:5432/prefsync");
        assert!(!shown.contains("s3cret-pw"), "{shown}");
        assert!(
            shown.contains("prefsync:%5BREDACTED%5D@db.internal:5432/prefsync"),
            "{shown}"
        );
        assert!(!redacted_url("not a url s3cret").contains("s3cret"));
        for url in [
            "postgres://prefsync@db.internal/prefsync?password=s3cret-pw",
            "postgresql://db.internal/prefsync?user=u&PASSWORD=s3cret-pw&sslmode=disable",
            "postgres://u:s3cret-pw@db.internal/p?sslpassword=s3cret-pw",
            "host=db.internal password=s3cret-pw",
        ] {
            let shown = redacted_url(url);
            assert!(!shown.contains("s3cret-pw"), "{shown}");
        }
        assert!(
            redacted_url("postgresql://db.internal/prefsync?user=u&PASSWORD=x&sslmode=disable")
                .ends_with("?user=u&PASSWORD=[REDACTED]&sslmode=disable")
        );
    }

    /// TLS against the test server, which `scripts/postgres.sh` starts with
    /// TLS on and a certificate for `localhost` only, signed by `DIR/ca.crt`.
    mod tls {
        use super::*;
        use std::path::{Path, PathBuf};

        const PASSWORD: &str = "s3cret-pw";

        /// The test CA's file. A server without TLS fails the test: these
        /// tests never pass without having tried.
        async fn test_ca() -> PathBuf {
            let (client, connection) = tokio_postgres::connect(&server_url(), NoTls)
                .await
                .expect("connecting to the test server");
            tokio::spawn(connection);
            let show = |name: &'static str| {
                let client = &client;
                async move {
                    let row = client
                        .query_one(&format!("SHOW {name}"), &[])
                        .await
                        .expect("SHOW");
                    row.get::<_, String>(0)
                }
            };
            assert_eq!(
                show("ssl").await,
                "on",
                "the test server has no TLS: start it with scripts/postgres.sh, which turns TLS on"
            );
            let cert = PathBuf::from(show("ssl_cert_file").await);
            let ca = cert.parent().expect("a directory").join("ca.crt");
            assert!(
                ca.is_file(),
                "{} is missing: the test server was not started by scripts/postgres.sh",
                ca.display()
            );
            ca
        }

        /// A fresh database's URL for `user` (with a password the server
        /// ignores, to see that no error shows it), reached at `host` (over
        /// 127.0.0.1 whatever the name), with `params`.
        async fn url(host: &str, user: &str, params: &str) -> String {
            let mut url = url::Url::parse(&fresh_database().await).unwrap();
            url.set_host(Some(host)).unwrap();
            url.set_username(user).unwrap();
            url.set_password(Some(PASSWORD)).unwrap();
            let pin = if host == "localhost" {
                "hostaddr=127.0.0.1&"
            } else {
                ""
            };
            format!("{url}?{pin}{params}")
        }

        /// Percent-encoded: in a connection string `+` is no space.
        fn rootcert(path: &Path) -> String {
            format!(
                "sslrootcert={}",
                url::form_urlencoded::byte_serialize(path.display().to_string().as_bytes())
                    .collect::<String>()
                    .replace('+', "%20")
            )
        }

        /// Whether the store's connections are encrypted.
        async fn encrypted(store: &PostgresStore) -> bool {
            let client = store.client().await.unwrap();
            client
                .query_one(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )
                .await
                .unwrap()
                .get(0)
        }

        async fn refused(url: &str) -> String {
            let error = PostgresStore::connect(url)
                .await
                .expect_err("the connection is refused");
            let text = format!("{error:#}");
            assert!(!text.contains(PASSWORD), "{text}");
            text
        }

        /// A CA of its own named `name`, which signed nothing the server shows.
        fn other_ca(dir: &Path, name: &str) -> PathBuf {
            let ca = dir.join(format!("{name}.crt"));
            let status = std::process::Command::new("openssl")
                .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
                .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
                .arg("-subj")
                .arg(format!("/CN={name}"))
                .arg("-keyout")
                .arg(dir.join(format!("{name}.key")))
                .arg("-out")
                .arg(&ca)
                .args(["-addext", "basicConstraints=critical,CA:TRUE"])
                .stderr(std::process::Stdio::null())
                .status()
                .expect("openssl (scripts/postgres.sh needs it too)");
            assert!(status.success());
            ca
        }

        #[tokio::test]
        async fn verify_full_with_the_right_ca_connects_and_the_store_works() {
            let ca = test_ca().await;
            let url = url(
                "localhost",
                "postgres",
                &format!("sslmode=verify-full&{}", rootcert(&ca)),
            )
            .await;
            let store = PostgresStore::connect_pooled(&url, 2)
                .await
                .expect("verify-full connects");
            assert!(encrypted(&store).await);
            store.put_integration(&integration("crm", 1)).await.unwrap();
            let ids: Vec<String> = store
                .integrations()
                .await
                .unwrap()
                .into_iter()
                .map(|i| i.id)
                .collect();
            assert_eq!(ids, ["crm"]);
        }

        #[tokio::test]
        async fn a_certificate_from_another_ca_is_refused() {
            test_ca().await;
            let dir = tempfile::tempdir().unwrap();
            // Another name, and the test CA's name with another key.
            let others = [
                other_ca(dir.path(), "another CA"),
                other_ca(dir.path(), "prefsync test CA"),
            ];
            for (mode, other) in [
                ("verify-full", &others[0]),
                ("verify-ca", &others[0]),
                ("require", &others[0]),
                ("verify-full", &others[1]),
            ] {
                let url = url(
                    "localhost",
                    "postgres",
                    &format!("sslmode={mode}&{}", rootcert(other)),
                )
                .await;
                let error = refused(&url).await;
                assert!(
                    error.contains(&format!(
                        "TLS: the server's certificate is not signed by a trusted root ({}; sslmode={mode}): check sslrootcert",
                        other.display()
                    )),
                    "{error}"
                );
            }
        }

        #[tokio::test]
        async fn without_sslrootcert_verify_full_checks_against_the_system_s_roots() {
            test_ca().await;
            let url = url("localhost", "postgres", "sslmode=verify-full").await;
            let error = refused(&url).await;
            assert!(
                error.contains(
                    "TLS: the server's certificate is not signed by a trusted root (the system's roots; sslmode=verify-full): check sslrootcert"
                ),
                "{error}"
            );
        }

        #[tokio::test]
        async fn verify_full_checks_the_host_name_and_verify_ca_does_not() {
            let ca = test_ca().await;
            let url_for = |mode: &str| {
                let ca = ca.clone();
                let mode = mode.to_string();
                async move {
                    url(
                        "127.0.0.1",
                        "postgres",
                        &format!("sslmode={mode}&{}", rootcert(&ca)),
                    )
                    .await
                }
            };
            let error = refused(&url_for("verify-full").await).await;
            assert!(
                error.contains(
                    "TLS: the server's certificate is not valid for host name `127.0.0.1` (sslmode=verify-full checks the name"
                ),
                "{error}"
            );
            let store = PostgresStore::connect(&url_for("verify-ca").await)
                .await
                .expect("verify-ca accepts a certificate for another name");
            assert!(encrypted(&store).await);
        }

        #[tokio::test]
        async fn require_and_prefer_encrypt_without_a_root_certificate_and_disable_does_not() {
            test_ca().await;
            for (mode, tls) in [("require", true), ("prefer", true), ("disable", false)] {
                let url = url("127.0.0.1", "postgres", &format!("sslmode={mode}")).await;
                let store = PostgresStore::connect(&url).await.expect(mode);
                assert_eq!(encrypted(&store).await, tls, "sslmode={mode}");
            }
            // No sslmode: prefer, as libpq.
            let store = PostgresStore::connect(&url("127.0.0.1", "postgres", "").await)
                .await
                .unwrap();
            assert!(encrypted(&store).await);
        }

        #[tokio::test]
        async fn disable_is_refused_by_a_server_that_requires_tls() {
            test_ca().await;
            // `scripts/postgres.sh` rejects this role over plain TCP.
            let (client, connection) = tokio_postgres::connect(&server_url(), NoTls).await.unwrap();
            tokio::spawn(connection);
            if let Err(e) = client
                .batch_execute("CREATE ROLE prefsync_tls_only LOGIN SUPERUSER")
                .await
            {
                // Another test run made it already (42710; 23505 when at once).
                let code = e.code().map(|c| c.code().to_string());
                assert!(matches!(code.as_deref(), Some("42710" | "23505")), "{e:?}");
            }
            let error =
                refused(&url("127.0.0.1", "prefsync_tls_only", "sslmode=disable").await).await;
            assert!(
                error.contains("rejects connection") && error.contains("no encryption"),
                "{error}"
            );
            let store = PostgresStore::connect(
                &url("127.0.0.1", "prefsync_tls_only", "sslmode=require").await,
            )
            .await
            .expect("over TLS the role may connect");
            assert!(encrypted(&store).await);
        }

        #[tokio::test]
        async fn a_bad_sslmode_or_root_certificate_is_named_without_the_password() {
            let error = refused(&format!(
                "postgres://u:{PASSWORD}@127.0.0.1:1/db?sslmode=verify_full"
            ))
            .await;
            assert_eq!(
                error,
                "storage.url postgres://u:%5BREDACTED%5D@127.0.0.1:1/db?sslmode=verify_full: sslmode `verify_full` is not one of disable, prefer, require, verify-ca, verify-full"
            );
            let error = refused(&format!(
                "postgres://u:{PASSWORD}@127.0.0.1:1/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"
            ))
            .await;
            assert!(
                error.contains(": sslrootcert /nonexistent/ca.pem: cannot read it"),
                "{error}"
            );
        }
    }
}
