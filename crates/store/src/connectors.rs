//! The connector registry's durable half: every version of every connector
//! type the host has loaded (its bytes, content hash, WIT version,
//! `describe` output, status) and every switch between versions.
//!
//! Kept in the store, not only on disk, so that hosts sharing a store can
//! share versions, and a restarted host comes back on the versions that
//! were active.

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value as Json;

use super::Result;

prefsync_base::named_enum! {
    /// Where a version stands.
    #[derive(utoipa::ToSchema)]
    pub enum ConnectorStatus("connector status") {
        /// Makes the deliveries.
        Active = "active",
        /// The version before the active one, kept loaded for a rollback.
        Standby = "standby",
        /// Takes a share of deliveries until the canary decides.
        Canary = "canary",
        /// Taken out of service by a rollback (the reason says why).
        RolledBack = "rolled_back",
        /// Known, not loaded.
        Inactive = "inactive",
    }
}

prefsync_base::named_enum! {
    /// Where a version came from.
    #[derive(utoipa::ToSchema)]
    #[derive(Default)]
    pub enum ConnectorSource("connector source") {
        /// Found in the connector directory at start.
        Directory = "directory",
        /// Uploaded through `POST /v1/connectors` (the default).
        #[default]
        Upload = "upload",
        /// Dropped into the watched connector directory while running.
        Watcher = "watcher",
    }
}

prefsync_base::named_enum! {
    /// What a switch did.
    #[derive(utoipa::ToSchema)]
    pub enum ConnectorAction("connector switch action") {
        /// The first version of a type.
        Install = "install",
        /// A newer version made active at once.
        Upgrade = "upgrade",
        /// An older version made active at once (`force`).
        Downgrade = "downgrade",
        /// A new version given a share of deliveries.
        Canary = "canary",
        /// The canary's candidate made active.
        Promote = "promote",
        /// Back to the version before, asked for.
        Rollback = "rollback",
        /// Back to the version before, decided by the canary.
        AutoRollback = "auto_rollback",
    }
}

/// One version of a connector, as the registry keeps it (without its bytes).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ConnectorVersion {
    pub type_id: String,
    pub version: String,
    /// SHA-256 of the component, hex: the version's identity.
    pub content_hash: String,
    pub wit_version: String,
    /// What `describe` said (the host's `ConnectorInfo`).
    pub description: Json,
    pub source: ConnectorSource,
    pub loaded_at_ms: i64,
    pub status: ConnectorStatus,
    /// Why the status is what it is (a rollback's reason), if anything to say.
    pub status_reason: Option<String>,
    pub status_at_ms: i64,
}

/// One change of the version in service, for the registry's history.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ConnectorSwitch {
    /// Assigned by the store.
    pub id: i64,
    pub at_ms: i64,
    pub type_id: String,
    pub action: ConnectorAction,
    pub from_version: Option<String>,
    pub from_hash: Option<String>,
    pub to_version: String,
    pub to_hash: String,
    pub detail: String,
}

/// A status to set with a switch.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorStatusChange {
    pub content_hash: String,
    pub status: ConnectorStatus,
    pub reason: Option<String>,
}

/// The registry's storage interface; every method is one transaction.
#[async_trait]
pub trait ConnectorStore: Send + Sync {
    /// Records a version with its bytes unless (type id, hash) is known;
    /// true when it was new.
    async fn add_connector_version(&self, version: &ConnectorVersion, wasm: &[u8]) -> Result<bool>;
    /// Appends `switch` and applies `statuses` (of versions of the same
    /// type), atomically.
    async fn record_connector_switch(
        &self,
        switch: &ConnectorSwitch,
        statuses: &[ConnectorStatusChange],
    ) -> Result<()>;
    /// Every version (of one type), oldest first.
    async fn connector_versions(&self, type_id: Option<&str>) -> Result<Vec<ConnectorVersion>>;
    async fn connector_wasm(&self, type_id: &str, content_hash: &str) -> Result<Option<Vec<u8>>>;
    /// A type's switches, oldest first, at most `limit`, the newest kept.
    async fn connector_switches(&self, type_id: &str, limit: u32) -> Result<Vec<ConnectorSwitch>>;
    /// The id of the newest switch of any type (0 without one): hosts
    /// sharing the store poll it to follow each other's switches.
    async fn latest_connector_switch_id(&self) -> Result<i64>;
}

/// Values the stores' tests share.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::{ConnectorAction, ConnectorSwitch};

    /// An upgrade of `dotdigital` to `version`.
    pub fn switch(version: &str) -> ConnectorSwitch {
        ConnectorSwitch {
            id: 0,
            at_ms: 20,
            type_id: "dotdigital".into(),
            action: ConnectorAction::Upgrade,
            from_version: Some("0.1.0".into()),
            from_hash: Some("aa".into()),
            to_version: version.into(),
            to_hash: "bb".into(),
            detail: "from the upload".into(),
        }
    }
}
