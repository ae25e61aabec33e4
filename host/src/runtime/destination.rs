//! What the pipeline delivers through. In the product every destination is
//! a loaded component ([`Connector`]); the trait exists so the benchmark and
//! tests can run the *same* pipeline over the same connector logic linked
//! natively, and measure what the sandbox costs.

use std::sync::Arc;

use serde_json::Value as Json;

use super::bindings::ValidationProblem;
use super::{
    CallError, Connector, ConnectorInfo, ConsentRecord, Delivery, InboundRequest,
    IntegrationContext, Receipt, ReceiveError,
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
}
