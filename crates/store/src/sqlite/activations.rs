//! [`ActivationStore`] on SQLite: tables `activations` (with the run lease in
//! `lease_run_id`/`lease_until_ms`), `activation_runs` and
//! `activation_snapshot` (primary key `(activation_id, key)`, without rowid).

use async_trait::async_trait;
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde_json::Value as Json;

use super::{SqliteStore, named_column, to_json};
use crate::Result;
use crate::activations::{
    ActivationRecord, ActivationStore, RunRecord, RunStart, RunStatus, SnapshotEntry,
};

const ACTIVATION_COLUMNS: &str =
    "id, integration_id, config, created_at_ms, updated_at_ms, next_run_at_ms";

fn json_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Json> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(e)))
}

fn activation_from_row(row: &Row<'_>) -> rusqlite::Result<ActivationRecord> {
    Ok(ActivationRecord {
        id: row.get(0)?,
        integration_id: row.get(1)?,
        config: json_at(row, 2)?,
        created_at_ms: row.get(3)?,
        updated_at_ms: row.get(4)?,
        next_run_at_ms: row.get(5)?,
    })
}

const RUN_COLUMNS: &str = "id, activation_id, trigger_name, host, full_resync, started_at_ms, \
     finished_at_ms, status, summary";

fn run_from_row(row: &Row<'_>) -> rusqlite::Result<RunRecord> {
    Ok(RunRecord {
        id: row.get(0)?,
        activation_id: row.get(1)?,
        trigger: named_column(row, 2)?,
        host: row.get(3)?,
        full_resync: row.get(4)?,
        started_at_ms: row.get(5)?,
        finished_at_ms: row.get(6)?,
        status: named_column(row, 7)?,
        summary: json_at(row, 8)?,
    })
}

/// Takes `id`'s lease for a new run if it is free or lapsed; the run a
/// lapsed lease belonged to is marked abandoned.
fn begin_run_in(tx: &Connection, id: &str, start: &RunStart) -> Result<Option<i64>> {
    let lease: Option<(Option<i64>, Option<i64>)> = tx
        .prepare_cached("SELECT lease_run_id, lease_until_ms FROM activations WHERE id = ?1")?
        .query_row(params![id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let Some((lease_run, lease_until)) = lease else {
        return Ok(None);
    };
    if let (Some(run), Some(until)) = (lease_run, lease_until) {
        if until > start.now_ms {
            return Ok(None);
        }
        tx.prepare_cached(
            "UPDATE activation_runs SET status = 'abandoned', finished_at_ms = ?2
             WHERE id = ?1 AND status = 'running'",
        )?
        .execute(params![run, start.now_ms])?;
    }
    tx.prepare_cached(
        "INSERT INTO activation_runs (activation_id, trigger_name, host, full_resync,
             started_at_ms, status, summary)
         VALUES (?1, ?2, ?3, ?4, ?5, 'running', '{}')",
    )?
    .execute(params![
        id,
        start.trigger.as_str(),
        start.host,
        start.full_resync,
        start.now_ms
    ])?;
    let run_id = tx.last_insert_rowid();
    tx.prepare_cached(
        "UPDATE activations SET lease_run_id = ?2, lease_until_ms = ?3 WHERE id = ?1",
    )?
    .execute(params![
        id,
        run_id,
        start.now_ms.saturating_add(start.lease_ms)
    ])?;
    Ok(Some(run_id))
}

/// What writing an existing activation id does in `put_activation`.
const REPLACE_ACTIVATION: &str = "DO UPDATE SET integration_id = excluded.integration_id,
     config = excluded.config, updated_at_ms = excluded.updated_at_ms,
     next_run_at_ms = excluded.next_run_at_ms";

impl SqliteStore {
    /// Writes `record`; `on_conflict` says what an existing id does
    /// (replace, or `DO NOTHING` for a create). Whether a row was written.
    async fn write_activation(
        &self,
        label: &'static str,
        record: &ActivationRecord,
        on_conflict: &'static str,
    ) -> Result<bool> {
        let record = record.clone();
        self.transaction(label, true, move |tx| {
            let written = tx
                .prepare_cached(&format!(
                    "INSERT INTO activations ({ACTIVATION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (id) {on_conflict}"
                ))?
                .execute(params![
                    record.id,
                    record.integration_id,
                    to_json(&record.config)?,
                    record.created_at_ms,
                    record.updated_at_ms,
                    record.next_run_at_ms
                ])?;
            Ok(written == 1)
        })
        .await
    }
}

#[async_trait]
impl ActivationStore for SqliteStore {
    async fn put_activation(&self, record: &ActivationRecord) -> Result<()> {
        self.write_activation("put_activation", record, REPLACE_ACTIVATION)
            .await
            .map(|_| ())
    }

    async fn insert_activation(&self, record: &ActivationRecord) -> Result<bool> {
        self.write_activation("insert_activation", record, "DO NOTHING")
            .await
    }

    async fn activation(&self, id: &str) -> Result<Option<ActivationRecord>> {
        let id = id.to_string();
        self.transaction("activation", false, move |tx| {
            Ok(tx
                .prepare_cached(&format!(
                    "SELECT {ACTIVATION_COLUMNS} FROM activations WHERE id = ?1"
                ))?
                .query_row(params![id], activation_from_row)
                .optional()?)
        })
        .await
    }

    async fn activations(&self) -> Result<Vec<ActivationRecord>> {
        self.transaction("activations", false, move |tx| {
            let mut statement = tx.prepare_cached(&format!(
                "SELECT {ACTIVATION_COLUMNS} FROM activations ORDER BY id"
            ))?;
            let rows = statement.query_map([], activation_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn delete_activation(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.transaction("delete_activation", true, move |tx| {
            let deleted = tx
                .prepare_cached("DELETE FROM activations WHERE id = ?1")?
                .execute(params![id])?;
            tx.prepare_cached("DELETE FROM activation_runs WHERE activation_id = ?1")?
                .execute(params![id])?;
            tx.prepare_cached("DELETE FROM activation_snapshot WHERE activation_id = ?1")?
                .execute(params![id])?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn begin_run(&self, id: &str, start: &RunStart) -> Result<Option<i64>> {
        let id = id.to_string();
        let start = start.clone();
        self.transaction("begin_run", true, move |tx| begin_run_in(tx, &id, &start))
            .await
    }

    async fn begin_due_run(&self, start: &RunStart) -> Result<Option<(ActivationRecord, i64)>> {
        let start = start.clone();
        self.transaction("begin_due_run", true, move |tx| {
            let due = tx
                .prepare_cached(&format!(
                    "SELECT {ACTIVATION_COLUMNS} FROM activations
                     WHERE next_run_at_ms <= ?1
                       AND (lease_until_ms IS NULL OR lease_until_ms <= ?1)
                     ORDER BY next_run_at_ms LIMIT 1"
                ))?
                .query_row(params![start.now_ms], activation_from_row)
                .optional()?;
            let Some(activation) = due else {
                return Ok(None);
            };
            Ok(begin_run_in(tx, &activation.id, &start)?.map(|run| (activation, run)))
        })
        .await
    }

    async fn renew_run(&self, id: &str, run_id: i64, until_ms: i64) -> Result<bool> {
        let id = id.to_string();
        self.transaction("renew_run", true, move |tx| {
            Ok(tx
                .prepare_cached(
                    "UPDATE activations SET lease_until_ms = ?3
                     WHERE id = ?1 AND lease_run_id = ?2",
                )?
                .execute(params![id, run_id, until_ms])?
                > 0)
        })
        .await
    }

    async fn finish_run(
        &self,
        id: &str,
        run_id: i64,
        status: RunStatus,
        summary: &Json,
        finished_at_ms: i64,
        next_run_at_ms: Option<i64>,
    ) -> Result<()> {
        let id = id.to_string();
        let summary = to_json(summary)?;
        self.transaction("finish_run", true, move |tx| {
            tx.prepare_cached(
                "UPDATE activation_runs SET status = ?2, summary = ?3, finished_at_ms = ?4
                 WHERE id = ?1",
            )?
            .execute(params![run_id, status.as_str(), summary, finished_at_ms])?;
            tx.prepare_cached(
                "UPDATE activations SET lease_run_id = NULL, lease_until_ms = NULL,
                     next_run_at_ms = ?3
                 WHERE id = ?1 AND lease_run_id = ?2",
            )?
            .execute(params![id, run_id, next_run_at_ms])?;
            Ok(())
        })
        .await
    }

    async fn runs(&self, id: &str, limit: u32) -> Result<Vec<RunRecord>> {
        let id = id.to_string();
        self.transaction("runs", false, move |tx| {
            let mut statement = tx.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM activation_runs WHERE activation_id = ?1
                 ORDER BY id DESC LIMIT ?2"
            ))?;
            let rows = statement.query_map(params![id, limit], run_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn snapshot_lookup(
        &self,
        id: &str,
        run_id: i64,
        keys: Vec<String>,
    ) -> Result<Vec<SnapshotEntry>> {
        let id = id.to_string();
        self.transaction("snapshot_lookup", true, move |tx| {
            let mut select = tx.prepare_cached(
                "SELECT accepted, seen_run FROM activation_snapshot
                 WHERE activation_id = ?1 AND key = ?2",
            )?;
            let mut mark = tx.prepare_cached(
                "INSERT INTO activation_snapshot (activation_id, key, accepted, seen_run)
                 VALUES (?1, ?2, NULL, ?3)
                 ON CONFLICT (activation_id, key) DO UPDATE SET seen_run = excluded.seen_run",
            )?;
            let mut entries = Vec::with_capacity(keys.len());
            for key in keys {
                let found: Option<(Option<Vec<u8>>, i64)> = select
                    .query_row(params![id, key], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()?;
                mark.execute(params![id, key, run_id])?;
                let (accepted, seen_run) = found.unwrap_or((None, 0));
                entries.push(SnapshotEntry {
                    key,
                    accepted,
                    seen_in_run: seen_run == run_id,
                });
            }
            Ok(entries)
        })
        .await
    }

    async fn snapshot_accept(&self, id: &str, accepted: Vec<(String, Vec<u8>)>) -> Result<()> {
        let id = id.to_string();
        self.transaction("snapshot_accept", true, move |tx| {
            let mut update = tx.prepare_cached(
                "UPDATE activation_snapshot SET accepted = ?3
                 WHERE activation_id = ?1 AND key = ?2",
            )?;
            for (key, hashes) in accepted {
                update.execute(params![id, key, hashes])?;
            }
            Ok(())
        })
        .await
    }

    async fn snapshot_size(&self, id: &str) -> Result<u64> {
        let id = id.to_string();
        self.transaction("snapshot_size", false, move |tx| {
            let count: i64 = tx
                .prepare_cached(
                    "SELECT count(*) FROM activation_snapshot
                     WHERE activation_id = ?1 AND accepted IS NOT NULL",
                )?
                .query_row(params![id], |row| row.get(0))?;
            Ok(count as u64)
        })
        .await
    }
}
