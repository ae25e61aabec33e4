//! `POST /v1/webhooks/{integration}`: a destination telling us about a
//! consent change on its side (the bidirectional flow).
//!
//! The integration must set `enable_webhooks: true` and use a connector that
//! exports `inbound`; otherwise the endpoint answers 404 for it. Destinations
//! such as Actito sign nothing, so the request must carry the integration's
//! shared secret (`authentication.webhook_secret`) in the header it names
//! (`properties.webhook_header`, default `X-Authorization`); without it →
//! 401 and nothing is read. The connector turns the request into updates;
//! each is applied as an event whose origin is the integration, so every
//! other integration gets the change and the origin does not get it back,
//! and a value equal to the current state changes and sends nothing (which
//! is what ends the echo of our own write).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use crate::ingest::Ingest;
use crate::ingest::inbound::Webhook;
use crate::integrations::webhook::{self, WebhookSettings};
use crate::log_safe::escaped;
use crate::now_ms;
use crate::runtime::{Destination, InboundRequest, ReceiveError};
use crate::secrets::same_secret;
use crate::serve::App;
use crate::store::IntegrationRecord;

pub fn routes() -> Router<Arc<App>> {
    Router::new().route("/v1/webhooks/{id}", post(receive))
}

/// What a webhook changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAnswer {
    /// Updates applied as events.
    pub applied: u64,
    /// Of those, updates equal to the current state: nothing to deliver.
    pub without_deliveries: u64,
    /// Updates already received.
    pub duplicates: u64,
    /// Why parts of the webhook were ignored (users Didomi never sent …).
    pub ignored: Vec<String>,
}

/// Receives one webhook: the integration's shared secret checked, the
/// connector's reading of the request, its updates applied as events.
#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}",
    operation_id = "webhooks_receive",
    tag = "webhooks",
    params(("id" = String, Path, description = "The integration (with `enable_webhooks: true`).")),
    request_body(
        description = "The destination's notification, as it sends it; its connector reads it.",
        content((Object = "application/json"), (String = "application/x-www-form-urlencoded"), (String = "text/plain"))
    ),
    responses(
        (status = 200, description = "Read and applied.", body = WebhookAnswer),
        (status = 400, description = "The connector refused the request, or an update is not usable.", body = ErrorBody),
        (status = 401, description = "Missing or wrong shared secret.", body = ErrorBody),
        (status = 404, description = "The integration does not receive webhooks.", body = ErrorBody),
        (status = 413, description = "The body is over `server.max_body_bytes`.", body = ErrorBody),
        (status = 500, description = "The connector or the store failed.", body = ErrorBody),
        (status = 503, description = "The connector failed in a way worth retrying.", body = ErrorBody),
    ),
    security(("webhook_secret" = []))
)]
async fn receive(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<WebhookAnswer>), ApiError> {
    let (integration, connector, settings) = receiver(&app, &id).await?;
    check_secret(&id, &settings, &headers)?;
    let context = connector.integration(&id, &integration.config);
    let receipt = match connector
        .receive(&context, inbound_request(&headers, &settings, &body))
        .await
    {
        Ok(receipt) => receipt,
        Err(error) => return Err(receive_failed(&id, error)),
    };
    for reason in &receipt.ignored {
        tracing::info!(integration = %id, reason = %escaped(reason), "part of a webhook ignored");
    }
    let received_ms = now_ms();
    let webhook = Webhook {
        integration_id: &id,
        body: &body,
        received_ms,
        latest_ms: app.config.ingest.latest_accepted_ms(received_ms),
        redactor: context.redactor(),
    };
    let events = webhook
        .events(&receipt.updates)
        .map_err(|refused| ApiError::bad_request(refused.to_string()))?;
    let span = crate::telemetry::ingest_span(events.iter().map(|e| e.id.as_str()), Some(&id));
    let summary = tracing::Instrument::instrument(
        async {
            Ingest::start(app.store.as_ref())
                .await?
                .record_webhook(&webhook, &events, receipt.ignored.clone())
                .await
        },
        span,
    )
    .await?;
    app.metrics.events(summary.applied, summary.duplicates, 0);
    if summary.applied > summary.without_deliveries {
        app.work.notify_one();
    }
    tracing::info!(integration = %id, applied = summary.applied, unchanged = summary.without_deliveries, duplicates = summary.duplicates, ignored = summary.ignored.len(), "webhook received");
    Ok((
        StatusCode::OK,
        Json(WebhookAnswer {
            applied: summary.applied,
            without_deliveries: summary.without_deliveries,
            duplicates: summary.duplicates,
            ignored: summary.ignored,
        }),
    ))
}

/// The integration, its connector and its webhook settings, when it
/// receives webhooks; 404 otherwise (the same answer whatever is missing).
async fn receiver(
    app: &App,
    id: &str,
) -> Result<(IntegrationRecord, Arc<dyn Destination>, WebhookSettings), ApiError> {
    let not_receiving =
        || ApiError::not_found(format!("integration `{id}` does not receive webhooks"));
    let integration = app
        .store
        .integration(id)
        .await?
        .filter(|i| i.enabled)
        .ok_or_else(not_receiving)?;
    let settings = webhook::receiving(&integration.config).ok_or_else(not_receiving)?;
    let connector = app
        .connectors
        .get(&integration.type_id)
        .filter(|c| c.info().inbound_webhooks)
        .ok_or_else(not_receiving)?;
    Ok((integration, connector, settings))
}

/// 401 unless the request carries the shared secret in its header; nothing
/// of the request is read before.
fn check_secret(id: &str, settings: &WebhookSettings, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get(settings.header.as_str())
        .and_then(|v| v.to_str().ok());
    if presented.is_some_and(|given| same_secret(given, &settings.secret)) {
        return Ok(());
    }
    tracing::warn!(integration = %id, header = %settings.header, present = presented.is_some(), "webhook refused: wrong or missing shared secret");
    Err(ApiError::new(
        StatusCode::UNAUTHORIZED,
        format!("missing or wrong `{}` header", settings.header),
    ))
}

/// The request as the connector sees it: without the secret's header.
fn inbound_request(
    headers: &HeaderMap,
    settings: &WebhookSettings,
    body: &Bytes,
) -> InboundRequest {
    InboundRequest {
        headers: headers
            .iter()
            .filter(|(name, _)| !name.as_str().eq_ignore_ascii_case(&settings.header))
            .filter_map(|(name, value)| {
                Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))
            })
            .collect(),
        body: body.to_vec(),
    }
}

/// The answer when the connector did not read the webhook.
fn receive_failed(id: &str, error: ReceiveError) -> ApiError {
    match error {
        ReceiveError::Refused(why) => {
            tracing::info!(integration = %id, reason = %escaped(&why), "webhook refused by the connector");
            ApiError::bad_request(why)
        }
        ReceiveError::Unsupported(_) => {
            ApiError::not_found(format!("integration `{id}` does not receive webhooks"))
        }
        ReceiveError::Call(error) => {
            // The runtime has redacted the call's error (a panic message is
            // the guest's text), as on the delivery path.
            tracing::warn!(integration = %id, error = %escaped(&error.to_string()), "the connector failed on a webhook");
            let status = if error.retryable() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            ApiError::new(status, format!("the connector failed: {error}"))
        }
    }
}
