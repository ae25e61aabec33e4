//! [`ActivationStore`] on PostgreSQL: the same tables as SQLite's. A run's
//! lease is taken under the activation row's lock (`FOR UPDATE`), and the
//! scheduler skips rows another host holds (`SKIP LOCKED`), so each due run
//! is started by one host.

use std::collections::HashMap;

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

    async fn record_run_progress(&self, id: &str, run_id: i64, summary: &Json) -> Result<bool> {
        let written = self
            .client()
            .await?
            .execute(
                "UPDATE activation_runs SET summary = $3
                 WHERE id = $2 AND activation_id = $1 AND status = 'running'",
                &[&id, &run_id, &to_json(summary)?],
            )
            .await?;
        Ok(written > 0)
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

    async fn snapshot_lookup(&self, id: &str, keys: Vec<String>) -> Result<Vec<SnapshotEntry>> {
        let mut client = self.client().await?;
        let select = "SELECT key, key_number, accepted FROM activation_snapshot
                      WHERE activation_id = $1 AND key = ANY($2)";
        let mut found: HashMap<String, (i64, Option<Vec<u8>>)> = HashMap::with_capacity(keys.len());
        let read = |rows: Vec<Row>, found: &mut HashMap<_, _>| -> Result<()> {
            for row in rows {
                found.insert(row.try_get(0)?, (row.try_get(1)?, row.try_get(2)?));
            }
            Ok(())
        };
        // Known keys: one read, no transaction, nothing written.
        read(client.query(select, &[&id, &keys]).await?, &mut found)?;
        let new: Vec<&String> = keys.iter().filter(|k| !found.contains_key(*k)).collect();
        if !new.is_empty() {
            let tx = client.transaction().await?;
            // The activation's row lock orders the runs that number keys at
            // once (a lapsed lease's run and its successor).
            let last: i64 = tx
                .query_opt(
                    "UPDATE activations SET last_key_number = last_key_number + $2
                     WHERE id = $1 RETURNING last_key_number",
                    &[&id, &(new.len() as i64)],
                )
                .await?
                .ok_or_else(|| anyhow::anyhow!("activation `{id}` does not exist"))?
                .try_get(0)?;
            let first = last - new.len() as i64;
            // A key another run added meanwhile keeps its number (`DO NOTHING`), read below.
            tx.execute(
                "INSERT INTO activation_snapshot (activation_id, key, key_number)
                 SELECT $1, k, $3 + n FROM unnest($2::text[]) WITH ORDINALITY AS a(k, n)
                 ON CONFLICT (activation_id, key) DO NOTHING",
                &[&id, &new, &first],
            )
            .await?;
            read(tx.query(select, &[&id, &new]).await?, &mut found)?;
            tx.commit().await?;
        }
        keys.into_iter()
            .map(|key| {
                let (key_number, accepted) = found
                    .remove(&key)
                    .ok_or_else(|| anyhow::anyhow!("a snapshot key went missing while numbered"))?;
                Ok(SnapshotEntry {
                    key,
                    key_number: uint(key_number),
                    accepted,
                })
            })
            .collect()
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

#[cfg(test)]
mod tests {
    use tokio_postgres::NoTls;

    use super::*;
    use crate::activations::tests_support::{keys, record};
    use crate::postgres::tests::fresh_database;

    /// Each snapshot row's key and `xmin` (the transaction that wrote its
    /// current version: an update, even to the same values, changes it),
    /// then the activation row's.
    async fn row_versions(store: &PostgresStore) -> Vec<(String, String)> {
        let client = store.client().await.expect("client");
        let mut versions: Vec<(String, String)> = client
            .query(
                "SELECT key, xmin::text FROM activation_snapshot ORDER BY key",
                &[],
            )
            .await
            .expect("snapshot rows")
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        let activation = client
            .query_one("SELECT id, xmin::text FROM activations", &[])
            .await
            .expect("activation row");
        versions.push((activation.get(0), activation.get(1)));
        versions
    }

    #[tokio::test]
    async fn looking_known_keys_up_writes_nothing() {
        let store = PostgresStore::connect(&fresh_database().await)
            .await
            .expect("connect");
        store.put_activation(&record("users")).await.expect("put");
        store
            .snapshot_lookup("users", keys(0..500))
            .await
            .expect("lookup");
        let accepted = keys(0..250).into_iter().map(|k| (k, vec![7; 16])).collect();
        store
            .snapshot_accept("users", accepted)
            .await
            .expect("accept");
        let before = row_versions(&store).await;
        assert_eq!(before.len(), 501);
        for _ in 0..2 {
            let entries = store
                .snapshot_lookup("users", keys(0..500))
                .await
                .expect("lookup");
            assert_eq!(entries[249].accepted, Some(vec![7; 16]));
            assert_eq!(entries[250].accepted, None);
        }
        assert_eq!(
            row_versions(&store).await,
            before,
            "known keys were written"
        );
        let entries = store
            .snapshot_lookup("users", keys(499..501))
            .await
            .expect("lookup");
        assert_eq!((entries[0].key_number, entries[1].key_number), (500, 501));
    }

    /// See SQLite's `migration_8_numbers_an_existing_snapshot`.
    #[tokio::test]
    async fn migration_6_numbers_an_existing_snapshot() {
        let url = fresh_database().await;
        {
            let (mut client, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
            tokio::spawn(connection);
            let tx = client.transaction().await.unwrap();
            tx.batch_execute("CREATE TABLE prefsync_schema (version BIGINT NOT NULL)")
                .await
                .unwrap();
            for (index, sql) in crate::postgres::MIGRATIONS[..5].iter().enumerate() {
                tx.batch_execute(sql).await.expect("an old migration");
                tx.execute(
                    "INSERT INTO prefsync_schema (version) VALUES ($1)",
                    &[&(index as i64 + 1)],
                )
                .await
                .unwrap();
            }
            tx.batch_execute(
                "INSERT INTO activations (id, integration_id, config, created_at_ms,
                     updated_at_ms) VALUES ('users', 'engage', '{}', 1, 1);
                 INSERT INTO activation_snapshot (activation_id, key, accepted, seen_run)
                 VALUES ('users', 'b', '\\x0102', 7), ('users', 'a', NULL, 7),
                        ('users', 'c', '\\x03', 6), ('deleted', 'a', '\\x04', 2);",
            )
            .await
            .expect("an old snapshot");
            tx.commit().await.unwrap();
        }
        let store = PostgresStore::connect(&url).await.expect("migrates");
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
