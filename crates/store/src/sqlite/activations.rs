//! [`ActivationStore`] on SQLite: tables `activations` (with the run lease in
//! `lease_run_id`/`lease_until_ms`), `activation_runs` and
//! `activation_snapshot` (primary key `(activation_id, key)`, without rowid;
//! each key numbered per activation, the last number in
//! `activations.last_key_number`).

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

/// The last key number `id`'s snapshot handed out; an error when the
/// activation does not exist (a snapshot never outlives its activation).
fn last_key_number(tx: &Connection, id: &str) -> Result<i64> {
    tx.prepare_cached("SELECT last_key_number FROM activations WHERE id = ?1")?
        .query_row(params![id], |row| row.get(0))
        .optional()?
        .ok_or_else(|| anyhow::anyhow!("activation `{id}` does not exist"))
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

    async fn record_run_progress(&self, id: &str, run_id: i64, summary: &Json) -> Result<bool> {
        let id = id.to_string();
        let summary = to_json(summary)?;
        self.transaction("record_run_progress", true, move |tx| {
            Ok(tx
                .prepare_cached(
                    "UPDATE activation_runs SET summary = ?3
                     WHERE id = ?2 AND activation_id = ?1 AND status = 'running'",
                )?
                .execute(params![id, run_id, summary])?
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

    async fn snapshot_lookup(&self, id: &str, keys: Vec<String>) -> Result<Vec<SnapshotEntry>> {
        let id = id.to_string();
        // Immediate, for the new keys it may add; a chunk of known keys
        // only reads, so its commit writes nothing.
        self.transaction("snapshot_lookup", true, move |tx| {
            let mut select = tx.prepare_cached(
                "SELECT key_number, accepted FROM activation_snapshot
                 WHERE activation_id = ?1 AND key = ?2",
            )?;
            let mut entries = Vec::with_capacity(keys.len());
            // The activation's last key number, read at the first new key.
            let mut last_number: Option<i64> = None;
            for key in keys {
                let found: Option<(i64, Option<Vec<u8>>)> = select
                    .query_row(params![id, key], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()?;
                let (key_number, accepted) = match found {
                    Some(found) => found,
                    None => {
                        let last = match last_number {
                            Some(last) => last,
                            None => last_key_number(tx, &id)?,
                        };
                        tx.prepare_cached(
                            "INSERT INTO activation_snapshot (activation_id, key, key_number)
                             VALUES (?1, ?2, ?3)",
                        )?
                        .execute(params![id, key, last + 1])?;
                        last_number = Some(last + 1);
                        (last + 1, None)
                    }
                };
                entries.push(SnapshotEntry {
                    key,
                    key_number: u64::try_from(key_number)?,
                    accepted,
                });
            }
            if let Some(last) = last_number {
                tx.prepare_cached("UPDATE activations SET last_key_number = ?2 WHERE id = ?1")?
                    .execute(params![id, last])?;
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

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;
    use crate::activations::tests_support::{keys, record};

    /// Rows inserted, updated or deleted through the store's write
    /// connection so far (asked on the writer thread, which owns it).
    async fn rows_changed(store: &SqliteStore) -> u64 {
        store
            .transaction("total_changes", true, |conn| Ok(conn.total_changes()))
            .await
            .expect("total_changes")
    }

    #[tokio::test]
    async fn looking_known_keys_up_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("prefsync.db")).expect("open");
        store.put_activation(&record("users")).await.expect("put");
        let before_first = rows_changed(&store).await;
        store
            .snapshot_lookup("users", keys(0..2_000))
            .await
            .expect("lookup");
        // One row per new key, and the activation's last key number.
        assert_eq!(rows_changed(&store).await - before_first, 2_001);
        let accepted = keys(0..1_000)
            .into_iter()
            .map(|k| (k, vec![7; 16]))
            .collect();
        store
            .snapshot_accept("users", accepted)
            .await
            .expect("accept");

        let before_rerun = rows_changed(&store).await;
        for _ in 0..2 {
            let entries = store
                .snapshot_lookup("users", keys(0..2_000))
                .await
                .expect("lookup");
            assert_eq!(entries.len(), 2_000);
            assert_eq!(entries[999].accepted, Some(vec![7; 16]));
            assert_eq!(entries[1_000].accepted, None);
        }
        assert_eq!(
            rows_changed(&store).await,
            before_rerun,
            "known keys were written"
        );

        let mut with_one_new = keys(1_990..2_001);
        with_one_new.reverse();
        let entries = store
            .snapshot_lookup("users", with_one_new)
            .await
            .expect("lookup");
        assert_eq!(entries[0].key_number, 2_001);
        assert_eq!(rows_changed(&store).await - before_rerun, 2);
    }

    /// A snapshot made before keys were numbered keeps what was accepted,
    /// each key gets its own number, and new keys come after them.
    #[tokio::test]
    async fn migration_8_numbers_an_existing_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("prefsync.db");
        {
            let conn = Connection::open(&path).expect("raw open");
            for (index, sql) in super::super::MIGRATIONS[..7].iter().enumerate() {
                conn.execute_batch(sql).expect("an old migration");
                conn.pragma_update(None, "user_version", index as i64 + 1)
                    .expect("version");
            }
            conn.execute_batch(
                "INSERT INTO activations (id, integration_id, config, created_at_ms,
                     updated_at_ms) VALUES ('users', 'engage', '{}', 1, 1);
                 INSERT INTO activation_snapshot (activation_id, key, accepted, seen_run)
                 VALUES ('users', 'b', x'0102', 7), ('users', 'a', NULL, 7),
                        ('users', 'c', x'03', 6), ('deleted', 'a', x'04', 2);",
            )
            .expect("an old snapshot");
        }
        let store = SqliteStore::open(&path).expect("migrate");
        let keys = |ks: &[&str]| ks.iter().map(|k| k.to_string()).collect::<Vec<_>>();
        let entries = store
            .snapshot_lookup("users", keys(&["c", "a", "b", "d"]))
            .await
            .expect("lookup");
        let mut numbers: Vec<u64> = entries.iter().map(|e| e.key_number).collect();
        assert_eq!(numbers[3], 4, "a new key comes after the numbered ones");
        numbers.sort_unstable();
        assert_eq!(numbers, [1, 2, 3, 4]);
        let accepted: Vec<Option<Vec<u8>>> = entries.iter().map(|e| e.accepted.clone()).collect();
        assert_eq!(accepted, [Some(vec![3]), None, Some(vec![1, 2]), None]);
        assert_eq!(store.snapshot_size("users").await.expect("size"), 2);
        // The rows of an activation deleted while its run went on are gone.
        store.put_activation(&record("deleted")).await.expect("put");
        let entries = store
            .snapshot_lookup("deleted", keys(&["a"]))
            .await
            .expect("lookup");
        assert_eq!(
            (entries[0].key_number, entries[0].accepted.clone()),
            (1, None)
        );
    }
}
