//! Deliveries, dead letters (and their replay) and a user's history.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value as Json_, json};

use super::error::ApiError;
use crate::now_ms;
use crate::serve::App;
use crate::store::{DeliveryFilter, DeliveryStatus};

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/deliveries", get(deliveries))
        .route("/v1/dead-letters", get(dead_letters))
        .route("/v1/dead-letters/{id}/replay", post(replay_one))
        .route(
            "/v1/integrations/{id}/dead-letters/replay",
            post(replay_integration),
        )
        .route("/v1/users/{id}/history", get(history))
}

/// Query of `GET /v1/deliveries`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveryQuery {
    /// Only this integration's rows.
    integration: Option<String>,
    /// `pending`, `in_flight` or `done`.
    status: Option<String>,
    /// Only this user's rows.
    user: Option<String>,
    /// At most this many rows (default 100, at most 1000).
    limit: Option<u32>,
}

async fn deliveries(
    State(app): State<Arc<App>>,
    query: Result<Query<DeliveryQuery>, QueryRejection>,
) -> Result<Json<Json_>, ApiError> {
    let Query(query) = query?;
    let status = match query.status.as_deref() {
        None => None,
        Some("pending") => Some(DeliveryStatus::Pending),
        Some("in_flight") => Some(DeliveryStatus::InFlight),
        Some("done") => Some(DeliveryStatus::Done),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "status: `{other}` is not one of pending, in_flight, done"
            )));
        }
    };
    let filter = DeliveryFilter {
        integration_id: query.integration,
        organization_user_id: query.user,
        status,
        limit: query.limit.unwrap_or(100).min(1000),
    };
    let rows = app.store.deliveries(&filter, now_ms()).await?;
    Ok(Json(Json_::Array(
        rows.into_iter()
            .map(|(entry, status)| {
                let mut shown = serde_json::to_value(&entry).unwrap_or(Json_::Null);
                shown["status"] = json!(status);
                shown
            })
            .collect(),
    )))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadLetterQuery {
    /// Only this integration's dead letters.
    integration: Option<String>,
}

async fn dead_letters(
    State(app): State<Arc<App>>,
    query: Result<Query<DeadLetterQuery>, QueryRejection>,
) -> Result<Json<Json_>, ApiError> {
    let Query(query) = query?;
    let rows = app.store.dead_letters(query.integration.as_deref()).await?;
    Ok(Json(serde_json::to_value(rows).unwrap_or(Json_::Null)))
}

async fn replay_one(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Json_>), ApiError> {
    let id: i64 = id.parse().map_err(|_| {
        ApiError::bad_request(format!("id: `{id}` is not a dead-letter id (a number)"))
    })?;
    if app.store.replay_dead_letter(id, now_ms()).await? {
        app.work.notify_one();
        Ok((StatusCode::ACCEPTED, Json(json!({"replayed": 1}))))
    } else {
        Err(ApiError::not_found(format!(
            "no dead letter {id} to replay (unknown, already replayed, or its integration was deleted)"
        )))
    }
}

async fn replay_integration(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Json_>), ApiError> {
    if app.store.integration(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("no integration `{id}`")));
    }
    let count = app.store.replay_integration(&id, now_ms()).await?;
    app.work.notify_one();
    Ok((StatusCode::ACCEPTED, Json(json!({"replayed": count}))))
}

async fn history(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Json_>, ApiError> {
    let events = app.store.events_for_user(&id, 200).await?;
    let attempts = app.store.audit_for_user(&id, 1000).await?;
    if events.is_empty() && attempts.is_empty() {
        return Err(ApiError::not_found(format!("no user `{id}`")));
    }
    Ok(Json(
        json!({"organization_user_id": id, "events": events, "attempts": attempts}),
    ))
}
