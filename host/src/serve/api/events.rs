//! `POST /v1/events` (Didomi events in) and `GET /v1/users/{id}` (a user's
//! merged state). An event is answered 202 only once it is committed: the
//! event, the user's new state and the outbox rows it raises are one
//! transaction, so a 202 is never lost and never half-applied.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value as Json_, json};

use super::error::ApiError;
use crate::consent::{ConsentEvent, EventError, UserState, flatten, parse_batch_until};
use crate::now_ms;
use crate::pipeline::{change_matters, mapped_properties};
use crate::serve::App;
use crate::store::{IngestOutcome, IngestPlan, IntegrationRecord, StoredEvent, UserRecord};

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
    let targets = Targets::load(&app).await?;
    let mut answers = Vec::with_capacity(batch.events.len());
    let (mut recorded, mut duplicates) = (0, 0);
    for event in &batch.events {
        let outcome = app
            .store
            .ingest(&stored_event(event, None), &|current: Option<
                &UserRecord,
            >| {
                Ok(targets.plan(event, current))
            })
            .await?;
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

/// The event as stored; `origin` names the integration of an inbound webhook.
pub fn stored_event(event: &ConsentEvent, origin: Option<&str>) -> StoredEvent {
    StoredEvent {
        event_id: event.id.clone(),
        organization_user_id: event.user.organization_user_id.clone(),
        origin: origin.map(str::to_string),
        status: match event.status {
            crate::consent::EventStatus::Confirmed => "confirmed".into(),
            crate::consent::EventStatus::PendingApproval => "pending_approval".into(),
        },
        created_at_ms: event.created_at_ms,
        received_at_ms: now_ms(),
        payload: event.raw.clone(),
    }
}

/// The enabled integrations and the properties each one maps, read once per request.
pub struct Targets {
    integrations: Vec<(IntegrationRecord, BTreeSet<String>)>,
}

impl Targets {
    pub async fn load(app: &App) -> Result<Targets, ApiError> {
        let integrations = app
            .store
            .integrations()
            .await?
            .into_iter()
            .filter(|i| i.enabled)
            .map(|i| {
                let mapped = mapped_properties(&i.config);
                (i, mapped)
            })
            .collect();
        Ok(Targets { integrations })
    }

    /// Merges `event` into the current state; the integrations whose mapped
    /// properties changed get a delivery (never the event's own origin).
    pub fn plan(&self, event: &ConsentEvent, current: Option<&UserRecord>) -> IngestPlan {
        self.plan_from(event, current, None)
    }

    pub fn plan_from(
        &self,
        event: &ConsentEvent,
        current: Option<&UserRecord>,
        origin: Option<&str>,
    ) -> IngestPlan {
        let mut state = current
            .map(|u| u.state.clone())
            .unwrap_or_else(|| UserState::new(event.user.organization_user_id.clone()));
        let result = state.apply(event);
        if !result.state_modified() {
            return IngestPlan::default();
        }
        // A user no destination has seen is news to every integration.
        let new_user = current.is_none() && result.changed;
        let enqueue = self
            .integrations
            .iter()
            .filter(|(i, mapped)| {
                Some(i.id.as_str()) != origin
                    && (new_user || change_matters(mapped, &result.changed_fields))
            })
            .map(|(i, _)| i.id.clone())
            .collect();
        IngestPlan {
            state: Some(state),
            enqueue,
        }
    }
}
