//! Deliveries, dead letters (and their replay) and a user's history.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use crate::now_ms;
use crate::serve::App;
use crate::store::{
    AuditRow, DeadLetter, DeliveryFilter, DeliveryStatus, OutboxEntry, StoredEvent,
};

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
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DeliveryQuery {
    /// Only this integration's rows.
    integration: Option<String>,
    /// `pending`, `in_flight` or `done`.
    #[param(inline, value_type = Option<DeliveryStatus>)]
    status: Option<String>,
    /// Only this user's rows.
    user: Option<String>,
    /// At most this many rows (default 100, at most 1000).
    limit: Option<u32>,
}

/// One outbox row and where it stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    #[serde(flatten)]
    pub entry: OutboxEntry,
    /// Where the delivery stands.
    pub status: DeliveryStatus,
}

/// How many dead letters went back to the outbox.
#[derive(Debug, Serialize, ToSchema)]
pub struct Replayed {
    /// Dead letters put back in the outbox.
    pub replayed: u64,
}

/// A user's events and every delivery attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserHistory {
    /// The user.
    pub organization_user_id: String,
    /// The user's events, newest first (at most 200).
    pub events: Vec<StoredEvent>,
    /// Every delivery attempt for the user (the audit; at most 1000).
    pub attempts: Vec<AuditRow>,
}

/// Outbox rows, filtered.
#[utoipa::path(
    get,
    path = "/v1/deliveries",
    operation_id = "deliveries_deliveries",
    tag = "deliveries",
    params(DeliveryQuery),
    responses(
        (status = 200, description = "The rows.", body = Vec<DeliveryView>),
        (status = 400, description = "A bad query parameter, named.", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token.", body = ErrorBody),
        (status = 500, description = "The store failed.", body = ErrorBody),
    ),
    security(("admin" = []))
)]
async fn deliveries(
    State(app): State<Arc<App>>,
    query: Result<Query<DeliveryQuery>, QueryRejection>,
) -> Result<Json<Vec<DeliveryView>>, ApiError> {
    let Query(query) = query?;
    let status = match query.status.as_deref() {
        None => None,
        Some(name) => Some(DeliveryStatus::parse(name).ok_or_else(|| {
            let names: Vec<&str> = DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::bad_request(format!(
                "status: `{name}` is not one of {}",
                names.join(", ")
            ))
        })?),
    };
    let filter = DeliveryFilter {
        integration_id: query.integration,
        organization_user_id: query.user,
        status,
        limit: query.limit.unwrap_or(100).min(1000),
    };
    let rows = app.store.deliveries(&filter, now_ms()).await?;
    Ok(Json(
        rows.into_iter()
            .map(|(entry, status)| DeliveryView { entry, status })
            .collect(),
    ))
}

/// Query of `GET /v1/dead-letters`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DeadLetterQuery {
    /// Only this integration's dead letters.
    integration: Option<String>,
}

/// Deliveries given up on.
#[utoipa::path(
    get,
    path = "/v1/dead-letters",
    operation_id = "deliveries_dead_letters",
    tag = "deliveries",
    params(DeadLetterQuery),
    responses(
        (status = 200, description = "The dead letters, with their last error.", body = Vec<DeadLetter>),
        (status = 400, description = "A bad query parameter, named.", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token.", body = ErrorBody),
        (status = 500, description = "The store failed.", body = ErrorBody),
    ),
    security(("admin" = []))
)]
async fn dead_letters(
    State(app): State<Arc<App>>,
    query: Result<Query<DeadLetterQuery>, QueryRejection>,
) -> Result<Json<Vec<DeadLetter>>, ApiError> {
    let Query(query) = query?;
    let rows = app.store.dead_letters(query.integration.as_deref()).await?;
    Ok(Json(rows))
}

/// Puts one dead letter back in the outbox.
#[utoipa::path(
    post,
    path = "/v1/dead-letters/{id}/replay",
    operation_id = "deliveries_replay_one",
    tag = "deliveries",
    params(("id" = i64, Path, description = "The dead letter's id.")),
    responses(
        (status = 202, description = "Back in the outbox.", body = Replayed),
        (status = 400, description = "Not a dead-letter id (a number).", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token.", body = ErrorBody),
        (status = 404, description = "Unknown, already replayed, or its integration was deleted.", body = ErrorBody),
        (status = 500, description = "The store failed.", body = ErrorBody),
    ),
    security(("admin" = []))
)]
async fn replay_one(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    let id: i64 = id.parse().map_err(|_| {
        ApiError::bad_request(format!("id: `{id}` is not a dead-letter id (a number)"))
    })?;
    if app.store.replay_dead_letter(id, now_ms()).await? {
        app.work.notify_one();
        Ok((StatusCode::ACCEPTED, Json(Replayed { replayed: 1 })))
    } else {
        Err(ApiError::not_found(format!(
            "no dead letter {id} to replay (unknown, already replayed, or its integration was deleted)"
        )))
    }
}

/// Puts every dead letter of an integration back in the outbox.
#[utoipa::path(
    post,
    path = "/v1/integrations/{id}/dead-letters/replay",
    operation_id = "deliveries_replay_integration",
    tag = "deliveries",
    params(("id" = String, Path, description = "The integration's id.")),
    responses(
        (status = 202, description = "Back in the outbox.", body = Replayed),
        (status = 401, description = "Missing or wrong bearer token.", body = ErrorBody),
        (status = 404, description = "No such integration.", body = ErrorBody),
        (status = 500, description = "The store failed.", body = ErrorBody),
    ),
    security(("admin" = []))
)]
async fn replay_integration(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    if app.store.integration(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("no integration `{id}`")));
    }
    let count = app.store.replay_integration(&id, now_ms()).await?;
    app.work.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(Replayed {
            replayed: count as u64,
        }),
    ))
}

/// A user's events and every delivery attempt (the audit).
#[utoipa::path(
    get,
    path = "/v1/users/{id}/history",
    operation_id = "deliveries_history",
    tag = "deliveries",
    params(("id" = String, Path, description = "The user's `organization_user_id`.")),
    responses(
        (status = 200, description = "The history.", body = UserHistory),
        (status = 401, description = "Missing or wrong bearer token.", body = ErrorBody),
        (status = 404, description = "No events and no attempts for this user.", body = ErrorBody),
        (status = 500, description = "The store failed.", body = ErrorBody),
    ),
    security(("admin" = []))
)]
async fn history(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<UserHistory>, ApiError> {
    let events = app.store.events_for_user(&id, 200).await?;
    let attempts = app.store.audit_for_user(&id, 1000).await?;
    if events.is_empty() && attempts.is_empty() {
        return Err(ApiError::not_found(format!("no user `{id}`")));
    }
    Ok(Json(UserHistory {
        organization_user_id: id,
        events,
        attempts,
    }))
}
