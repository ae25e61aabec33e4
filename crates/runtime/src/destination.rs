//! What the pipeline delivers through. In the product every destination is
//! a loaded component ([`Connector`]); the trait exists so the benchmark and
//! tests can run the *same* pipeline over the same connector logic linked
//! natively, and measure what the sandbox costs.

use std::sync::Arc;

use serde_json::Value as Json;

use super::bindings::ValidationProblem;
use super::{
    CallError, CheckError, Connector, ConnectorInfo, ConsentRecord, Delivery, InboundRequest,
    IntegrationContext, Receipt, ReceiveError, RowOutcome, SyncBatch, SyncError,
};

/// A destination the host can validate configs for and deliver batches to.
#[async_trait::async_trait]
pub trait Destination: Send + Sync + 'static {
    /// What the connector says about itself.
    fn info(&self) -> &ConnectorInfo;

    /// Every problem the connector finds in an integration's config.
    async fn validate(&self, config: &Json) -> Result<Vec<ValidationProblem>, CallError>;

    /// Delivers a batch: one outcome per record, never an error as a whole.
    async fn deliver(
        &self,
        integration: &Arc<IntegrationContext>,
        batch: Vec<ConsentRecord>,
    ) -> Delivery;

    /// Reads a webhook sent to an integration of this connector
    /// (`info().inbound_webhooks` says whether it can).
    async fn receive(
        &self,
        integration: &Arc<IntegrationContext>,
        request: InboundRequest,
    ) -> Result<Receipt, ReceiveError> {
        let _ = (integration, request);
        Err(ReceiveError::Unsupported(self.info().type_id.clone()))
    }

    /// Most rows per `sync` call (`info().activations` says whether it can sync).
    async fn max_rows(&self, integration: &Arc<IntegrationContext>) -> Result<u32, SyncError> {
        let _ = integration;
        Err(SyncError::Unsupported(self.info().type_id.clone()))
    }

    /// Writes a batch of model rows (activations).
    async fn sync(
        &self,
        integration: &Arc<IntegrationContext>,
        batch: SyncBatch,
    ) -> Result<Vec<RowOutcome>, SyncError> {
        let _ = (integration, batch);
        Err(SyncError::Unsupported(self.info().type_id.clone()))
    }

    /// Checks an integration's connection against the destination
    /// (`info().connection_check` says whether it can).
    async fn check_connection(
        &self,
        integration: &Arc<IntegrationContext>,
    ) -> Result<Vec<ValidationProblem>, CheckError> {
        let _ = integration;
        Err(CheckError::Unsupported(self.info().type_id.clone()))
    }

    /// The runtime view of an integration of this connector: its allowlist
    /// and the secrets to redact. Build it once per config change.
    fn integration(&self, id: &str, config: &Json) -> Arc<IntegrationContext> {
        Arc::new(IntegrationContext::new(id, config, self.info()))
    }
}

#[async_trait::async_trait]
impl Destination for Connector {
    fn info(&self) -> &ConnectorInfo {
        Connector::info(self)
    }

    async fn validate(&self, config: &Json) -> Result<Vec<ValidationProblem>, CallError> {
        Connector::validate(self, config).await
    }

    async fn deliver(
        &self,
        integration: &Arc<IntegrationContext>,
        batch: Vec<ConsentRecord>,
    ) -> Delivery {
        Connector::deliver(self, integration, batch).await
    }

    async fn receive(
        &self,
        integration: &Arc<IntegrationContext>,
        request: InboundRequest,
    ) -> Result<Receipt, ReceiveError> {
        Connector::receive(self, integration, request).await
    }

    async fn max_rows(&self, integration: &Arc<IntegrationContext>) -> Result<u32, SyncError> {
        Connector::max_rows(self, integration).await
    }

    async fn sync(
        &self,
        integration: &Arc<IntegrationContext>,
        batch: SyncBatch,
    ) -> Result<Vec<RowOutcome>, SyncError> {
        Connector::sync(self, integration, batch).await
    }

    async fn check_connection(
        &self,
        integration: &Arc<IntegrationContext>,
    ) -> Result<Vec<ValidationProblem>, CheckError> {
        Connector::check_connection(self, integration).await
    }
}

/// A destination that accepts every config and skips every record, for the
/// host's own unit tests of what routes between destinations. Compiled
/// always (it is a few lines): behind a feature, the test build and the
/// plain build would each compile the runtime and everything above it.
#[doc(hidden)]
pub mod testing {
    use super::*;
    use crate::{CallReport, Outcome};

    pub struct NullDestination {
        info: ConnectorInfo,
    }

    impl NullDestination {
        pub fn new(type_id: &str, version: &str) -> Self {
            NullDestination {
                info: ConnectorInfo {
                    type_id: type_id.into(),
                    version: version.into(),
                    display_name: type_id.into(),
                    config_schema: Json::Null,
                    default_hosts: Vec::new(),
                    max_concurrency: 1,
                    max_batch_size: 1,
                    batching: false,
                    inbound_webhooks: false,
                    activations: false,
                    connection_check: false,
                    wit_version: "0.1.1".into(),
                    content_hash: format!("{type_id}-{version}"),
                },
            }
        }
    }

    #[async_trait::async_trait]
    impl Destination for NullDestination {
        fn info(&self) -> &ConnectorInfo {
            &self.info
        }

        async fn validate(&self, _: &Json) -> Result<Vec<ValidationProblem>, CallError> {
            Ok(Vec::new())
        }

        async fn deliver(
            &self,
            _: &Arc<IntegrationContext>,
            batch: Vec<ConsentRecord>,
        ) -> Delivery {
            Delivery {
                outcomes: batch
                    .iter()
                    .map(|_| Outcome::Skipped("null".into()))
                    .collect(),
                error: None,
                report: CallReport {
                    duration: std::time::Duration::ZERO,
                    stats: Default::default(),
                    peak_memory_bytes: 0,
                    phases: Default::default(),
                },
            }
        }
    }
}
