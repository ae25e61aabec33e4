//! [`ConnectorStore`] on PostgreSQL: the same tables as SQLite's
//! (`connector_versions` with the component's bytes, `connector_switches`).

use async_trait::async_trait;
use tokio_postgres::Row;

use super::{PostgresStore, json, named, to_json};
use crate::Result;
use crate::connectors::{ConnectorStatusChange, ConnectorStore, ConnectorSwitch, ConnectorVersion};

const VERSION_COLUMNS: &str = "type_id, version, content_hash, wit_version, description, source, \
     loaded_at_ms, status, status_reason, status_at_ms";

fn version_from_row(row: &Row) -> Result<ConnectorVersion> {
    Ok(ConnectorVersion {
        type_id: row.try_get(0)?,
        version: row.try_get(1)?,
        content_hash: row.try_get(2)?,
        wit_version: row.try_get(3)?,
        description: json(row, 4)?,
        source: named(row, 5)?,
        loaded_at_ms: row.try_get(6)?,
        status: named(row, 7)?,
        status_reason: row.try_get(8)?,
        status_at_ms: row.try_get(9)?,
    })
}

const SWITCH_COLUMNS: &str =
    "id, at_ms, type_id, action, from_version, from_hash, to_version, to_hash, detail";

fn switch_from_row(row: &Row) -> Result<ConnectorSwitch> {
    Ok(ConnectorSwitch {
        id: row.try_get(0)?,
        at_ms: row.try_get(1)?,
        type_id: row.try_get(2)?,
        action: named(row, 3)?,
        from_version: row.try_get(4)?,
        from_hash: row.try_get(5)?,
        to_version: row.try_get(6)?,
        to_hash: row.try_get(7)?,
        detail: row.try_get(8)?,
    })
}

#[async_trait]
impl ConnectorStore for PostgresStore {
    async fn add_connector_version(&self, version: &ConnectorVersion, wasm: &[u8]) -> Result<bool> {
        let client = self.client().await?;
        let added = client
            .execute(
                &format!(
                    "INSERT INTO connector_versions ({VERSION_COLUMNS}, wasm)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                     ON CONFLICT (type_id, content_hash) DO NOTHING"
                ),
                &[
                    &version.type_id,
                    &version.version,
                    &version.content_hash,
                    &version.wit_version,
                    &to_json(&version.description)?,
                    &version.source.as_str(),
                    &version.loaded_at_ms,
                    &version.status.as_str(),
                    &version.status_reason,
                    &version.status_at_ms,
                    &wasm,
                ],
            )
            .await?;
        Ok(added == 1)
    }

    async fn record_connector_switch(
        &self,
        switch: &ConnectorSwitch,
        statuses: &[ConnectorStatusChange],
    ) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "INSERT INTO connector_switches
                 (at_ms, type_id, action, from_version, from_hash, to_version, to_hash, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &switch.at_ms,
                &switch.type_id,
                &switch.action.as_str(),
                &switch.from_version,
                &switch.from_hash,
                &switch.to_version,
                &switch.to_hash,
                &switch.detail,
            ],
        )
        .await?;
        for change in statuses {
            let updated = tx
                .execute(
                    "UPDATE connector_versions SET status = $3, status_reason = $4, status_at_ms = $5
                     WHERE type_id = $1 AND content_hash = $2",
                    &[
                        &switch.type_id,
                        &change.content_hash,
                        &change.status.as_str(),
                        &change.reason,
                        &switch.at_ms,
                    ],
                )
                .await?;
            if updated != 1 {
                anyhow::bail!(
                    "no version {} of `{}` to mark {}",
                    change.content_hash,
                    switch.type_id,
                    change.status.as_str()
                );
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn connector_versions(&self, type_id: Option<&str>) -> Result<Vec<ConnectorVersion>> {
        let client = self.client().await?;
        client
            .query(
                &format!(
                    "SELECT {VERSION_COLUMNS} FROM connector_versions
                     WHERE $1::TEXT IS NULL OR type_id = $1
                     ORDER BY type_id, loaded_at_ms, seq"
                ),
                &[&type_id],
            )
            .await?
            .iter()
            .map(version_from_row)
            .collect()
    }

    async fn connector_wasm(&self, type_id: &str, content_hash: &str) -> Result<Option<Vec<u8>>> {
        let client = self.client().await?;
        Ok(client
            .query_opt(
                "SELECT wasm FROM connector_versions WHERE type_id = $1 AND content_hash = $2",
                &[&type_id, &content_hash],
            )
            .await?
            .map(|row| row.try_get(0))
            .transpose()?)
    }

    async fn latest_connector_switch_id(&self) -> Result<i64> {
        let client = self.client().await?;
        Ok(client
            .query_one("SELECT COALESCE(MAX(id), 0) FROM connector_switches", &[])
            .await?
            .try_get(0)?)
    }

    async fn connector_switches(&self, type_id: &str, limit: u32) -> Result<Vec<ConnectorSwitch>> {
        let client = self.client().await?;
        client
            .query(
                &format!(
                    "SELECT {SWITCH_COLUMNS} FROM (
                         SELECT {SWITCH_COLUMNS} FROM connector_switches WHERE type_id = $1
                         ORDER BY id DESC LIMIT $2
                     ) AS newest ORDER BY id"
                ),
                &[&type_id, &i64::from(limit)],
            )
            .await?
            .iter()
            .map(switch_from_row)
            .collect()
    }
}
