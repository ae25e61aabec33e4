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
use serde_json::{Value as Json_, json};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::events::{Targets, stored_event};
use crate::consent::event_for_update;
use crate::consent::millis_to_rfc3339;
use crate::log_safe::escaped;
use crate::now_ms;
use crate::runtime::{
    ConnectorInfo, ConsentUpdate, InboundRequest, ReceiveError, ValidationProblem, Value,
};
use crate::serve::App;
use crate::serve::auth::same_secret;
use crate::store::IngestOutcome;

/// Where an integration's shared secret lives in its config.
pub const SECRET_FIELD: &str = "webhook_secret";
/// Where the name of the header that carries it lives (under `properties`).
pub const HEADER_FIELD: &str = "webhook_header";
/// The header Actito's webhook subscriptions use unless told otherwise.
pub const DEFAULT_HEADER: &str = "X-Authorization";
/// A shorter shared secret is too easy to guess.
const MIN_SECRET_LEN: usize = 16;

pub fn routes() -> Router<Arc<App>> {
    Router::new().route("/v1/webhooks/{id}", post(receive))
}

/// How an integration receives webhooks, when it does.
struct WebhookSettings {
    secret: String,
    header: String,
}

fn enabled(config: &Json_) -> bool {
    config.get("enable_webhooks") == Some(&Json_::Bool(true))
}

fn settings(config: &Json_) -> Option<WebhookSettings> {
    let secret = config["authentication"][SECRET_FIELD].as_str()?;
    let header = config["properties"][HEADER_FIELD]
        .as_str()
        .unwrap_or(DEFAULT_HEADER);
    Some(WebhookSettings {
        secret: secret.to_string(),
        header: header.to_string(),
    })
}

/// The host's own rules for an integration's webhook settings, checked with
/// the connector's `validate` when the integration is saved.
pub fn problems(config: &Json_, connector: &ConnectorInfo) -> Vec<ValidationProblem> {
    let mut problems = Vec::new();
    let problem = |path: &str, message: String| ValidationProblem {
        path: path.to_string(),
        message,
    };
    match config.get("enable_webhooks") {
        None | Some(Json_::Null | Json_::Bool(false)) => return problems,
        Some(Json_::Bool(true)) => {}
        Some(_) => {
            problems.push(problem("enable_webhooks", "must be true or false".into()));
            return problems;
        }
    }
    if !connector.inbound_webhooks {
        problems.push(problem(
            "enable_webhooks",
            format!("the {} connector does not read webhooks", connector.type_id),
        ));
    }
    match config["authentication"].get(SECRET_FIELD) {
        Some(Json_::String(s)) if s.len() >= MIN_SECRET_LEN => {}
        Some(Json_::String(_)) => problems.push(problem(
            &format!("authentication.{SECRET_FIELD}"),
            format!("must be at least {MIN_SECRET_LEN} characters"),
        )),
        _ => problems.push(problem(
            &format!("authentication.{SECRET_FIELD}"),
            "is required with enable_webhooks: the shared secret the destination sends".into(),
        )),
    }
    match config["properties"].get(HEADER_FIELD) {
        None | Some(Json_::Null) => {}
        Some(Json_::String(h)) if axum::http::HeaderName::try_from(h.as_str()).is_ok() => {}
        Some(_) => problems.push(problem(
            &format!("properties.{HEADER_FIELD}"),
            "must be an HTTP header name".into(),
        )),
    }
    problems
}

async fn receive(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Json_>), ApiError> {
    let not_receiving =
        || ApiError::not_found(format!("integration `{id}` does not receive webhooks"));
    let integration = app
        .store
        .integration(&id)
        .await?
        .ok_or_else(not_receiving)?;
    if !integration.enabled || !enabled(&integration.config) {
        return Err(not_receiving());
    }
    let connector = app
        .connectors
        .get(&integration.type_id)
        .filter(|c| c.info().inbound_webhooks)
        .ok_or_else(not_receiving)?;
    let Some(settings) = settings(&integration.config) else {
        return Err(not_receiving());
    };
    let presented = headers
        .get(settings.header.as_str())
        .and_then(|v| v.to_str().ok());
    if !presented.is_some_and(|given| same_secret(given, &settings.secret)) {
        tracing::warn!(integration = %id, header = %settings.header, present = presented.is_some(), "webhook refused: wrong or missing shared secret");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            format!("missing or wrong `{}` header", settings.header),
        ));
    }

    let request = InboundRequest {
        headers: headers
            .iter()
            .filter(|(name, _)| !name.as_str().eq_ignore_ascii_case(&settings.header))
            .filter_map(|(name, value)| {
                Some((name.as_str().to_string(), value.to_str().ok()?.to_string()))
            })
            .collect(),
        body: body.to_vec(),
    };
    let context = connector.integration(&id, &integration.config);
    let receipt = match connector.receive(&context, request).await {
        Ok(receipt) => receipt,
        Err(ReceiveError::Refused(why)) => {
            tracing::info!(integration = %id, reason = %escaped(&why), "webhook refused by the connector");
            return Err(ApiError::bad_request(why));
        }
        Err(ReceiveError::Unsupported(_)) => return Err(not_receiving()),
        Err(ReceiveError::Call(error)) => {
            // The runtime has redacted the call's error (a panic message is
            // the guest's text), as on the delivery path.
            tracing::warn!(integration = %id, error = %escaped(&error.to_string()), "the connector failed on a webhook");
            let status = if error.retryable() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            return Err(ApiError::new(
                status,
                format!("the connector failed: {error}"),
            ));
        }
    };
    for reason in &receipt.ignored {
        tracing::info!(integration = %id, reason = %escaped(reason), "part of a webhook ignored");
    }

    // Every update is checked before any is applied: a bad one refuses the
    // whole request, nothing half-written.
    let body_hash = hex::encode(Sha256::digest(&body));
    let received_ms = now_ms();
    let received_at = millis_to_rfc3339(received_ms);
    let latest_ms = app.config.ingest.latest_accepted_ms(received_ms);
    let mut events = Vec::with_capacity(receipt.updates.len());
    for (index, update) in receipt.updates.iter().enumerate() {
        let event_id = match &update.notification_id {
            Some(notification) => format!("webhook:{id}:{notification}:{index}"),
            None => format!("webhook:{id}:{body_hash}:{index}"),
        };
        // A vendor's clock ahead of ours (beyond the allowed skew) would pin
        // the change against every later one: such a stamp becomes the time
        // the webhook was received.
        let created_at = match update.occurred_at.as_deref() {
            Some(at) if crate::consent::parse_rfc3339(at).is_ok_and(|ms| ms > latest_ms) => {
                tracing::warn!(integration = %id, update = index, "webhook update dated in the future; stamped with the time received");
                &received_at
            }
            Some(at) => at,
            None => &received_at,
        };
        let event = event_for_update(
            &event_id,
            created_at,
            &update.organization_user_id,
            &properties(update),
        )
        .map_err(|e| {
            // The update is the connector's text: it may quote the config.
            let why = context.redactor().redact(&e.to_string()).into_owned();
            ApiError::bad_request(format!("update {index} from the connector: {why}"))
        })?;
        events.push(event);
    }

    let targets = Targets::load(&app).await?;
    let mut ignored = receipt.ignored.clone();
    let (mut applied, mut unchanged, mut duplicates) = (0, 0, 0);
    for event in &events {
        let user = &event.user.organization_user_id;
        // Users come from Didomi; a destination cannot invent one.
        if app.store.user(user).await?.is_none() {
            let reason = context
                .redactor()
                .redact(&format!("user `{user}` is not known"))
                .into_owned();
            tracing::info!(integration = %id, reason = %escaped(&reason), "part of a webhook ignored");
            ignored.push(reason);
            continue;
        }
        let outcome = app
            .store
            .ingest(&stored_event(event, Some(&id)), &|current| {
                Ok(targets.plan_from(event, current, Some(&id)))
            })
            .await?;
        match outcome {
            IngestOutcome::Duplicate => duplicates += 1,
            IngestOutcome::Recorded { enqueued, .. } => {
                applied += 1;
                if enqueued.is_empty() {
                    unchanged += 1;
                }
            }
        }
    }
    app.metrics.events(applied, duplicates);
    if applied > unchanged {
        app.work.notify_one();
    }
    tracing::info!(integration = %id, applied, unchanged, duplicates, ignored = ignored.len(), "webhook received");
    Ok((
        StatusCode::OK,
        Json(json!({
            "applied": applied,
            "without_deliveries": unchanged,
            "duplicates": duplicates,
            "ignored": ignored,
        })),
    ))
}

fn properties(update: &ConsentUpdate) -> Vec<(String, Json_)> {
    update
        .properties
        .iter()
        .map(|p| {
            let value = match &p.value {
                Value::Null => Json_::Null,
                Value::Boolean(b) => json!(b),
                Value::Number(n) => json!(n),
                Value::Text(t) => json!(t),
            };
            (p.name.clone(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(inbound: bool) -> ConnectorInfo {
        ConnectorInfo {
            type_id: "actito".into(),
            version: "0.1.0".into(),
            display_name: "Actito".into(),
            config_schema: json!({}),
            default_hosts: vec![],
            max_concurrency: 5,
            max_batch_size: 1,
            batching: false,
            inbound_webhooks: inbound,
            activations: false,
            wit_version: "0.1.1".into(),
            content_hash: String::new(),
        }
    }

    #[test]
    fn webhook_settings_are_checked_only_when_enabled() {
        let paths = |config: Json_, inbound: bool| -> Vec<String> {
            problems(&config, &info(inbound))
                .into_iter()
                .map(|p| p.path)
                .collect()
        };
        assert!(paths(json!({"enable_webhooks": false}), false).is_empty());
        assert!(paths(json!({}), false).is_empty());
        assert_eq!(
            paths(json!({"enable_webhooks": true}), false),
            ["enable_webhooks", "authentication.webhook_secret"]
        );
        assert_eq!(
            paths(
                json!({"enable_webhooks": true, "authentication": {"webhook_secret": "short"}, "properties": {"webhook_header": "bad header"}}),
                true
            ),
            ["authentication.webhook_secret", "properties.webhook_header"]
        );
        assert!(
            paths(
                json!({"enable_webhooks": true, "authentication": {"webhook_secret": "0123456789abcdef"}}),
                true
            )
            .is_empty()
        );
        assert_eq!(
            paths(json!({"enable_webhooks": "yes"}), true),
            ["enable_webhooks"]
        );
    }
}
