//! [`ConnectorStore`] on SQLite: tables `connector_versions` (primary key
//! `(type_id, content_hash)`, the component's bytes in `wasm`) and
//! `connector_switches` (append-only, indexed on `(type_id, id)`).

use async_trait::async_trait;
use rusqlite::types::Type;
use rusqlite::{OptionalExtension, Row, params};

use super::{SqliteStore, named_column, to_json};
use crate::Result;
use crate::connectors::{ConnectorStatusChange, ConnectorStore, ConnectorSwitch, ConnectorVersion};

const VERSION_COLUMNS: &str = "type_id, version, content_hash, wit_version, description, source, \
     loaded_at_ms, status, status_reason, status_at_ms";

fn version_from_row(row: &Row<'_>) -> rusqlite::Result<ConnectorVersion> {
    let description: String = row.get(4)?;
    Ok(ConnectorVersion {
        type_id: row.get(0)?,
        version: row.get(1)?,
        content_hash: row.get(2)?,
        wit_version: row.get(3)?,
        description: serde_json::from_str(&description)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(4, Type::Text, Box::new(e)))?,
        source: named_column(row, 5)?,
        loaded_at_ms: row.get(6)?,
        status: named_column(row, 7)?,
        status_reason: row.get(8)?,
        status_at_ms: row.get(9)?,
    })
}

const SWITCH_COLUMNS: &str =
    "id, at_ms, type_id, action, from_version, from_hash, to_version, to_hash, detail";

fn switch_from_row(row: &Row<'_>) -> rusqlite::Result<ConnectorSwitch> {
    Ok(ConnectorSwitch {
        id: row.get(0)?,
        at_ms: row.get(1)?,
        type_id: row.get(2)?,
        action: named_column(row, 3)?,
        from_version: row.get(4)?,
        from_hash: row.get(5)?,
        to_version: row.get(6)?,
        to_hash: row.get(7)?,
        detail: row.get(8)?,
    })
}

#[async_trait]
impl ConnectorStore for SqliteStore {
    async fn add_connector_version(&self, version: &ConnectorVersion, wasm: &[u8]) -> Result<bool> {
        let version = version.clone();
        let wasm = wasm.to_vec();
        self.transaction("add_connector_version", true, move |tx| {
            let added = tx
                .prepare_cached(&format!(
                    "INSERT INTO connector_versions ({VERSION_COLUMNS}, wasm)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                     ON CONFLICT (type_id, content_hash) DO NOTHING"
                ))?
                .execute(params![
                    version.type_id,
                    version.version,
                    version.content_hash,
                    version.wit_version,
                    to_json(&version.description)?,
                    version.source.as_str(),
                    version.loaded_at_ms,
                    version.status.as_str(),
                    version.status_reason,
                    version.status_at_ms,
                    wasm,
                ])?;
            Ok(added == 1)
        })
        .await
    }

    async fn record_connector_switch(
        &self,
        switch: &ConnectorSwitch,
        statuses: &[ConnectorStatusChange],
    ) -> Result<()> {
        let switch = switch.clone();
        let statuses = statuses.to_vec();
        self.transaction("record_connector_switch", true, move |tx| {
            tx.prepare_cached(
                "INSERT INTO connector_switches
                     (at_ms, type_id, action, from_version, from_hash, to_version, to_hash, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                switch.at_ms,
                switch.type_id,
                switch.action.as_str(),
                switch.from_version,
                switch.from_hash,
                switch.to_version,
                switch.to_hash,
                switch.detail,
            ])?;
            let mut update = tx.prepare_cached(
                "UPDATE connector_versions SET status = ?3, status_reason = ?4, status_at_ms = ?5
                 WHERE type_id = ?1 AND content_hash = ?2",
            )?;
            for change in &statuses {
                let updated = update.execute(params![
                    switch.type_id,
                    change.content_hash,
                    change.status.as_str(),
                    change.reason,
                    switch.at_ms,
                ])?;
                if updated != 1 {
                    anyhow::bail!(
                        "no version {} of `{}` to mark {}",
                        change.content_hash,
                        switch.type_id,
                        change.status.as_str()
                    );
                }
            }
            Ok(())
        })
        .await
    }

    async fn connector_versions(&self, type_id: Option<&str>) -> Result<Vec<ConnectorVersion>> {
        let type_id = type_id.map(str::to_owned);
        self.transaction("connector_versions", false, move |tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {VERSION_COLUMNS} FROM connector_versions
                 WHERE ?1 IS NULL OR type_id = ?1
                 ORDER BY type_id, loaded_at_ms, rowid"
            ))?;
            let rows = stmt.query_map(params![type_id], version_from_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn connector_wasm(&self, type_id: &str, content_hash: &str) -> Result<Option<Vec<u8>>> {
        let (type_id, content_hash) = (type_id.to_owned(), content_hash.to_owned());
        self.transaction("connector_wasm", false, move |tx| {
            Ok(tx
                .prepare_cached(
                    "SELECT wasm FROM connector_versions WHERE type_id = ?1 AND content_hash = ?2",
                )?
                .query_row(params![type_id, content_hash], |row| row.get(0))
                .optional()?)
        })
        .await
    }

    async fn latest_connector_switch_id(&self) -> Result<i64> {
        self.transaction("latest_connector_switch_id", false, move |tx| {
            Ok(tx
                .prepare_cached("SELECT COALESCE(MAX(id), 0) FROM connector_switches")?
                .query_row([], |row| row.get(0))?)
        })
        .await
    }

    async fn connector_switches(&self, type_id: &str, limit: u32) -> Result<Vec<ConnectorSwitch>> {
        let type_id = type_id.to_owned();
        self.transaction("connector_switches", false, move |tx| {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {SWITCH_COLUMNS} FROM (
                     SELECT {SWITCH_COLUMNS} FROM connector_switches WHERE type_id = ?1
                     ORDER BY id DESC LIMIT ?2
                 ) ORDER BY id"
            ))?;
            let rows = stmt.query_map(params![type_id, limit], switch_from_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::connectors::{ConnectorSource, ConnectorStatus};

    fn version(hash: &str, version: &str, status: ConnectorStatus) -> ConnectorVersion {
        ConnectorVersion {
            type_id: "dotdigital".into(),
            version: version.into(),
            content_hash: hash.into(),
            wit_version: "0.1.1".into(),
            description: json!({"type_id": "dotdigital", "version": version}),
            source: ConnectorSource::Upload,
            loaded_at_ms: 10,
            status,
            status_reason: None,
            status_at_ms: 10,
        }
    }

    #[tokio::test]
    async fn versions_switches_and_bytes_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("p.db")).unwrap();
        let v1 = version("aa", "0.1.0", ConnectorStatus::Active);
        assert!(
            store
                .add_connector_version(&v1, b"\0asm-one")
                .await
                .unwrap()
        );
        assert!(!store.add_connector_version(&v1, b"ignored").await.unwrap());
        let v2 = version("bb", "0.2.0", ConnectorStatus::Inactive);
        assert!(
            store
                .add_connector_version(&v2, b"\0asm-two")
                .await
                .unwrap()
        );
        let switch = crate::connectors::tests_support::switch("0.2.0");
        let statuses = [
            ConnectorStatusChange {
                content_hash: "aa".into(),
                status: ConnectorStatus::Standby,
                reason: None,
            },
            ConnectorStatusChange {
                content_hash: "bb".into(),
                status: ConnectorStatus::Active,
                reason: Some("uploaded".into()),
            },
        ];
        store
            .record_connector_switch(&switch, &statuses)
            .await
            .unwrap();
        let versions = store.connector_versions(Some("dotdigital")).await.unwrap();
        assert_eq!(versions.len(), 2);
        assert_eq!(versions[0].status, ConnectorStatus::Standby);
        assert_eq!(versions[1].status, ConnectorStatus::Active);
        assert_eq!(versions[1].status_reason.as_deref(), Some("uploaded"));
        assert_eq!(versions[1].status_at_ms, 20);
        assert_eq!(
            store
                .connector_wasm("dotdigital", "aa")
                .await
                .unwrap()
                .unwrap(),
            b"\0asm-one"
        );
        assert!(
            store
                .connector_wasm("dotdigital", "cc")
                .await
                .unwrap()
                .is_none()
        );
        let switches = store.connector_switches("dotdigital", 10).await.unwrap();
        assert_eq!(switches.len(), 1);
        assert_eq!(
            store.latest_connector_switch_id().await.unwrap(),
            switches[0].id
        );
        assert_eq!(switches[0].to_hash, "bb");
        assert!(switches[0].id > 0);

        // A switch naming an unknown version changes nothing.
        let bad = ConnectorStatusChange {
            content_hash: "zz".into(),
            status: ConnectorStatus::Active,
            reason: None,
        };
        assert!(
            store
                .record_connector_switch(&switch, &[bad])
                .await
                .is_err()
        );
        assert_eq!(
            store
                .connector_switches("dotdigital", 10)
                .await
                .unwrap()
                .len(),
            1
        );
    }
}
