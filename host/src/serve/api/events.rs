//! `POST /v1/events` (Didomi events in) and `GET /v1/users/{id}` (a user's
//! merged state). An event is answered 202 only once it is committed: the
//! event, the user's new state and the outbox rows it raises are one
//! transaction, so a 202 is never lost and never half-applied.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value as Json_, json};

use super::error::ApiError;
use crate::consent::{EventError, flatten, parse_batch_until};
use crate::ingest::Ingest;
use crate::now_ms;
use crate::serve::App;
use crate::store::IngestOutcome;

pub async fn ingest(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Json_>), ApiError> {
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
    let latest_ms = app.config.ingest.latest_accepted_ms(now_ms());
    // Parsing is all-or-nothing: one item dated in the future refuses the
    // whole body before anything is stored.
    let batch = parse_batch_until(content_type, &body, latest_ms).map_err(|e| {
        app.metrics.event_rejected();
        match e {
            EventError::UnsupportedContentType { .. } => {
                ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, e.to_string())
            }
            EventError::Syntax { line, column, .. } => ApiError::bad_request(e.to_string())
                .with_details(json!({"line": line, "column": column})),
            EventError::Invalid {
                ref at, ref field, ..
            } => {
                ApiError::bad_request(e.to_string()).with_details(json!({"at": at, "field": field}))
            }
        }
    })?;
    let ingest = Ingest::start(app.store.as_ref()).await?;
    let mut answers = Vec::with_capacity(batch.events.len());
    let (mut recorded, mut duplicates) = (0, 0);
    for event in &batch.events {
        let outcome = ingest.record(event, None).await?;
        answers.push(match outcome {
            IngestOutcome::Duplicate => {
                duplicates += 1;
                json!({"id": event.id, "status": "duplicate"})
            }
            IngestOutcome::Recorded { version, enqueued } => {
                recorded += 1;
                json!({"id": event.id, "status": "recorded", "user_version": version, "deliveries": enqueued})
            }
        });
    }
    app.metrics.events(recorded, duplicates);
    if recorded > 0 {
        app.work.notify_one();
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "recorded": recorded,
            "duplicates": duplicates,
            "deletions_skipped": batch.deletions_skipped,
            "events": answers,
        })),
    ))
}

pub async fn user(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Json_>, ApiError> {
    let Some(user) = app.store.user(&id).await? else {
        return Err(ApiError::not_found(format!("no user `{id}`")));
    };
    let properties: serde_json::Map<String, Json_> = flatten(&user.state)
        .into_iter()
        .map(|(name, value)| (name, property_json(value)))
        .collect();
    Ok(Json(json!({
        "organization_user_id": user.state.organization_user_id,
        "version": user.state.version,
        "updated_at_ms": user.updated_at_ms,
        "properties": properties,
        "state": user.state,
    })))
}

fn property_json(value: crate::consent::PropertyValue) -> Json_ {
    use crate::consent::PropertyValue as P;
    match value {
        P::Null => Json_::Null,
        P::Bool(b) => json!(b),
        P::Number(n) => json!(n),
        P::Text(t) => json!(t),
    }
}
