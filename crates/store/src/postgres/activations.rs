//! [`ActivationStore`] on PostgreSQL: the same tables as SQLite's. A run's
//! lease is taken under the activation row's lock (`FOR UPDATE`), and the
//! scheduler skips rows another host holds (`SKIP LOCKED`), so each due run
//! is started by one host.

use async_trait::async_trait;
use serde_json::Value as Json;
use tokio_postgres::{Row, Transaction};

use super::{PostgresStore, json, named, to_json, uint};
use crate::Result;
use crate::activations::{
    ActivationRecord, ActivationStore, RunRecord, RunStart, RunStatus, SnapshotEntry,
};

const ACTIVATION_COLUMNS: &str =
    "id, integration_id, config, created_at_ms, updated_at_ms, next_run_at_ms";

fn activation_from_row(row: &Row) -> Result<ActivationRecord> {
    Ok(ActivationRecord {
        id: row.try_get(0)?,
        integration_id: row.try_get(1)?,
        config: json(row, 2)?,
        created_at_ms: row.try_get(3)?,
        updated_at_ms: row.try_get(4)?,
        next_run_at_ms: row.try_get(5)?,
    })
}

const RUN_COLUMNS: &str = "id, activation_id, trigger_name, host, full_resync, started_at_ms, \
     finished_at_ms, status, summary";

fn run_from_row(row: &Row) -> Result<RunRecord> {
    Ok(RunRecord {
        id: row.try_get(0)?,
        activation_id: row.try_get(1)?,
        trigger: named(row, 2)?,
        host: row.try_get(3)?,
        full_resync: row.try_get(4)?,
        started_at_ms: row.try_get(5)?,
        finished_at_ms: row.try_get(6)?,
        status: named(row, 7)?,
        summary: json(row, 8)?,
    })
}

/// Takes `id`'s lease for a new run if it is free or lapsed (see SQLite's twin).
async fn begin_run_in(tx: &Transaction<'_>, id: &str, start: &RunStart) -> Result<Option<i64>> {
    let Some(lease) = tx
        .query_opt(
            "SELECT lease_run_id, lease_until_ms FROM activations WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?
    else {
        return Ok(None);
    };
    let lease_run: Option<i64> = lease.try_get(0)?;
    let lease_until: Option<i64> = lease.try_get(1)?;
    if let (Some(run), Some(until)) = (lease_run, lease_until) {
        if until > start.now_ms {
            return Ok(None);
        }
        tx.execute(
            "UPDATE activation_runs SET status = 'abandoned', finished_at_ms = $2
             WHERE id = $1 AND status = 'running'",
            &[&run, &start.now_ms],
        )
        .await?;
    }
    let run_id: i64 = tx
        .query_one(
            "INSERT INTO activation_runs (activation_id, trigger_name, host, full_resync,
                 started_at_ms, status, summary)
             VALUES ($1, $2, $3, $4, $5, 'running', '{}') RETURNING id",
            &[
                &id,
                &start.trigger.as_str(),
                &start.host,
                &start.full_resync,
                &start.now_ms,
            ],
        )
        .await?
        .try_get(0)?;
    tx.execute(
        "UPDATE activations SET lease_run_id = $2, lease_until_ms = $3 WHERE id = $1",
        &[&id, &run_id, &start.now_ms.saturating_add(start.lease_ms)],
    )
    .await?;
    Ok(Some(run_id))
}

/// What writing an existing activation id does in `put_activation`.
const REPLACE_ACTIVATION: &str = "DO UPDATE SET integration_id = excluded.integration_id,
     config = excluded.config, updated_at_ms = excluded.updated_at_ms,
     next_run_at_ms = excluded.next_run_at_ms";

impl PostgresStore {
    /// Writes `record`; `on_conflict` says what an existing id does
    /// (replace, or `DO NOTHING` for a create). Whether a row was written.
    async fn write_activation(
        &self,
        record: &ActivationRecord,
        on_conflict: &'static str,
    ) -> Result<bool> {
        let written = self
            .client()
            .await?
            .execute(
                &format!(
                    "INSERT INTO activations ({ACTIVATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (id) {on_conflict}"
                ),
                &[
                    &record.id,
                    &record.integration_id,
                    &to_json(&record.config)?,
                    &record.created_at_ms,
                    &record.updated_at_ms,
                    &record.next_run_at_ms,
                ],
            )
            .await?;
        Ok(written == 1)
    }
}

#[async_trait]
impl ActivationStore for PostgresStore {
    async fn put_activation(&self, record: &ActivationRecord) -> Result<()> {
        self.write_activation(record, REPLACE_ACTIVATION)
            .await
            .map(|_| ())
    }

    async fn insert_activation(&self, record: &ActivationRecord) -> Result<bool> {
        self.write_activation(record, "DO NOTHING").await
    }

    async fn activation(&self, id: &str) -> Result<Option<ActivationRecord>> {
        self.client()
            .await?
            .query_opt(
                &format!("SELECT {ACTIVATION_COLUMNS} FROM activations WHERE id = $1"),
                &[&id],
            )
            .await?
            .as_ref()
            .map(activation_from_row)
            .transpose()
    }

    async fn activations(&self) -> Result<Vec<ActivationRecord>> {
        self.client()
            .await?
            .query(
                &format!("SELECT {ACTIVATION_COLUMNS} FROM activations ORDER BY id"),
                &[],
            )
            .await?
            .iter()
            .map(activation_from_row)
            .collect()
    }

    async fn delete_activation(&self, id: &str) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let deleted = tx
            .execute("DELETE FROM activations WHERE id = $1", &[&id])
            .await?;
        tx.execute(
            "DELETE FROM activation_runs WHERE activation_id = $1",
            &[&id],
        )
        .await?;
        tx.execute(
            "DELETE FROM activation_snapshot WHERE activation_id = $1",
            &[&id],
        )
        .await?;
        tx.commit().await?;
        Ok(deleted > 0)
    }

    async fn begin_run(&self, id: &str, start: &RunStart) -> Result<Option<i64>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let run = begin_run_in(&tx, id, start).await?;
        tx.commit().await?;
        Ok(run)
    }

    async fn begin_due_run(&self, start: &RunStart) -> Result<Option<(ActivationRecord, i64)>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let due = tx
            .query_opt(
                &format!(
                    "SELECT {ACTIVATION_COLUMNS} FROM activations
                     WHERE next_run_at_ms <= $1
                       AND (lease_until_ms IS NULL OR lease_until_ms <= $1)
                     ORDER BY next_run_at_ms LIMIT 1
                     FOR UPDATE SKIP LOCKED"
                ),
                &[&start.now_ms],
            )
            .await?;
        let Some(row) = due else {
            return Ok(None);
        };
        let activation = activation_from_row(&row)?;
        let run = begin_run_in(&tx, &activation.id, start).await?;
        tx.commit().await?;
        Ok(run.map(|run| (activation, run)))
    }

    async fn renew_run(&self, id: &str, run_id: i64, until_ms: i64) -> Result<bool> {
        let renewed = self
            .client()
            .await?
            .execute(
                "UPDATE activations SET lease_until_ms = $3 WHERE id = $1 AND lease_run_id = $2",
                &[&id, &run_id, &until_ms],
            )
            .await?;
        Ok(renewed > 0)
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
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "UPDATE activation_runs SET status = $2, summary = $3, finished_at_ms = $4
             WHERE id = $1",
            &[
                &run_id,
                &status.as_str(),
                &to_json(summary)?,
                &finished_at_ms,
            ],
        )
        .await?;
        tx.execute(
            "UPDATE activations SET lease_run_id = NULL, lease_until_ms = NULL,
                 next_run_at_ms = $3
             WHERE id = $1 AND lease_run_id = $2",
            &[&id, &run_id, &next_run_at_ms],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn runs(&self, id: &str, limit: u32) -> Result<Vec<RunRecord>> {
        self.client()
            .await?
            .query(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM activation_runs WHERE activation_id = $1
                     ORDER BY id DESC LIMIT $2"
                ),
                &[&id, &i64::from(limit)],
            )
            .await?
            .iter()
            .map(run_from_row)
            .collect()
    }

    async fn snapshot_lookup(
        &self,
        id: &str,
        run_id: i64,
        keys: Vec<String>,
    ) -> Result<Vec<SnapshotEntry>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // The CTE's SELECT sees the rows as they were before the upsert marks them.
        let rows = tx
            .query(
                "WITH before AS (
                     SELECT key, accepted, seen_run FROM activation_snapshot
                     WHERE activation_id = $1 AND key = ANY($2) FOR UPDATE
                 ), marked AS (
                     INSERT INTO activation_snapshot (activation_id, key, accepted, seen_run)
                     SELECT $1, k, NULL, $3 FROM unnest($2::text[]) AS k
                     ON CONFLICT (activation_id, key) DO UPDATE SET seen_run = excluded.seen_run
                 )
                 SELECT key, accepted, seen_run FROM before",
                &[&id, &keys, &run_id],
            )
            .await?;
        tx.commit().await?;
        let mut found = std::collections::HashMap::with_capacity(rows.len());
        for row in rows {
            let key: String = row.try_get(0)?;
            let accepted: Option<Vec<u8>> = row.try_get(1)?;
            let seen_run: i64 = row.try_get(2)?;
            found.insert(key, (accepted, seen_run));
        }
        Ok(keys
            .into_iter()
            .map(|key| {
                let (accepted, seen_run) = found.remove(&key).unwrap_or((None, 0));
                SnapshotEntry {
                    key,
                    accepted,
                    seen_in_run: seen_run == run_id,
                }
            })
            .collect())
    }

    async fn snapshot_accept(&self, id: &str, accepted: Vec<(String, Vec<u8>)>) -> Result<()> {
        let (keys, hashes): (Vec<String>, Vec<Vec<u8>>) = accepted.into_iter().unzip();
        self.client()
            .await?
            .execute(
                "UPDATE activation_snapshot AS s SET accepted = a.hashes
                 FROM unnest($2::text[], $3::bytea[]) AS a(key, hashes)
                 WHERE s.activation_id = $1 AND s.key = a.key",
                &[&id, &keys, &hashes],
            )
            .await?;
        Ok(())
    }

    async fn snapshot_size(&self, id: &str) -> Result<u64> {
        let count: i64 = self
            .client()
            .await?
            .query_one(
                "SELECT count(*) FROM activation_snapshot
                 WHERE activation_id = $1 AND accepted IS NOT NULL",
                &[&id],
            )
            .await?
            .try_get(0)?;
        Ok(uint(count))
    }
}
