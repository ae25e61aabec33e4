//! `POST /v1/events` (Didomi events in) and `GET /v1/users/{id}` (a user's
//! merged state). A body is answered 202 only once it is committed: its
//! events, the users' new states and the outbox rows they raise are one
//! transaction, so a 202 is never lost and a body never half-applied.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use serde_json::{Value as Json_, json};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::openapi::free_object;
use crate::consent::{EventError, flatten, parse_batch_until};
use crate::ingest::Ingest;
use crate::now_ms;
use crate::serve::App;
use crate::store::IngestOutcome;

/// A Didomi consent event (or a webhook envelope `{"type": "event.created", "payload": …}`):
/// checked by the consent model, which names the item and field of any problem.
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only: the body is parsed by `crate::consent`
pub struct DidomiEvent {
    /// Didomi's event id; a known id is a harmless duplicate.
    id: Option<String>,
    /// When the event happened (RFC 3339); the order of last-write-wins.
    created_at: Option<String>,
    /// `confirmed` (the default) or `pending_approval` (merges nothing).
    status: Option<String>,
    /// Who the event is about; `organization_user_id` is required.
    #[schema(value_type = Option<Object>)]
    user: Option<Json_>,
    /// The purposes, channels and vendors the event sets.
    #[schema(value_type = Option<Object>)]
    consents: Option<Json_>,
    /// Anything else Didomi sends.
    #[serde(flatten)]
    other: std::collections::HashMap<String, Json_>,
}

/// One event, an array of them, or a webhook envelope.
#[derive(ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // documentation only
pub enum EventsBody {
    One(DidomiEvent),
    Many(Vec<DidomiEvent>),
}

/// What happened to one event of the body.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventAnswer {
    /// The event's id.
    pub id: String,
    /// `recorded`, `duplicate` (the id was known: nothing changed), or
    /// `echo` (prefsync's own write-back coming back: nothing applied).
    pub status: EventStatusAnswer,
    /// The user's state version after the event (recorded events only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_version: Option<u64>,
    /// The integrations a delivery was raised for (recorded events only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliveries: Option<Vec<String>>,
}

/// What happened to an event.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventStatusAnswer {
    /// Stored, its changes merged and delivered.
    Recorded,
    /// Its id was stored already.
    Duplicate,
    /// prefsync's own write-back to Didomi, posted back by Didomi's webhook:
    /// neither stored nor applied, nothing sent.
    Echo,
}

/// The answer to `POST /v1/events`: every event of the body, committed.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestAnswer {
    /// Events stored.
    pub recorded: u64,
    /// Events whose id was known already.
    pub duplicates: u64,
    /// Events that were prefsync's own write-backs coming back (not applied).
    pub echoes: u64,
    /// `event.deleted` / `user.deleted` envelopes accepted but not turned into events.
    pub deletions_skipped: u64,
    /// Each event, in body order.
    pub events: Vec<EventAnswer>,
}

/// Takes Didomi events; answers 202 once they are committed.
#[utoipa::path(
    post,
    path = "/v1/events",
    operation_id = "events_ingest",
    tag = "events",
    request_body(
        description = "One Didomi event, an array of them, a webhook envelope, or NDJSON (one per line).",
        content(
            (EventsBody = "application/json", example = json!({
                "id": "evt-0001",
                "created_at": "2026-01-15T10:00:00Z",
                "status": "confirmed",
                "user": {"organization_user_id": "alice@example.com", "metadata": {}},
                "consents": {
                    "purposes": [{"id": "newsletter", "enabled": true}],
                    "channels": [{"id": "email", "enabled": true}]
                }
            })),
            (String = "application/x-ndjson", example = json!(
                "{\"id\":\"evt-0002\",\"created_at\":\"2026-01-15T10:00:00Z\",\"user\":{\"organization_user_id\":\"bob@example.com\"},\"consents\":{\"purposes\":[{\"id\":\"newsletter\",\"enabled\":false}]}}\n"
            )),
        )
    ),
    responses(
        (status = 202, description = "Every event committed (or a known duplicate).", body = IngestAnswer),
        (status = 400, description = "A syntax error (`line`, `column`) or an invalid event (`at`, `field`); nothing stored.", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token.", body = ErrorBody),
        (status = 413, description = "The body is over `server.max_body_bytes`.", body = ErrorBody),
        (status = 415, description = "Neither JSON nor NDJSON.", body = ErrorBody),
        (status = 500, description = "The store failed.", body = ErrorBody),
    ),
    security(("ingest" = []), ("admin" = []))
)]
pub async fn ingest(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<IngestAnswer>), ApiError> {
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
    let span = crate::telemetry::ingest_span(batch.events.iter().map(|e| e.id.as_str()), None);
    let ingest =
        tracing::Instrument::instrument(Ingest::start(app.store.as_ref()), span.clone()).await?;
    // Our own write-backs coming back are answered, not applied.
    let echoes = ingest.echoes(&batch.events);
    let (echoed, applied): (Vec<_>, Vec<_>) = batch
        .events
        .into_iter()
        .zip(echoes.iter().copied())
        .partition(|(_, echo)| *echo);
    let echoed: Vec<_> = echoed.into_iter().map(|(event, _)| event).collect();
    let events: Arc<[crate::consent::ConsentEvent]> =
        applied.into_iter().map(|(event, _)| event).collect();
    let outcomes =
        tracing::Instrument::instrument(ingest.record(events.clone(), None), span).await?;
    let (mut recorded, mut duplicates) = (0, 0);
    let mut applied_answers = events
        .iter()
        .zip(outcomes)
        .map(|(event, outcome)| match outcome {
            IngestOutcome::Duplicate => {
                duplicates += 1;
                EventAnswer {
                    id: event.id.clone(),
                    status: EventStatusAnswer::Duplicate,
                    user_version: None,
                    deliveries: None,
                }
            }
            IngestOutcome::Recorded { version, enqueued } => {
                recorded += 1;
                EventAnswer {
                    id: event.id.clone(),
                    status: EventStatusAnswer::Recorded,
                    user_version: Some(version),
                    deliveries: Some(enqueued),
                }
            }
        });
    let mut echo_answers = echoed.iter().map(|event| {
        tracing::info!(event = %crate::log_safe::escaped(&event.id), user = %crate::log_safe::escaped(&event.user.organization_user_id), "own write-back echoed by Didomi: not applied");
        EventAnswer {
            id: event.id.clone(),
            status: EventStatusAnswer::Echo,
            user_version: None,
            deliveries: None,
        }
    });
    // In body order.
    let answers = echoes
        .iter()
        .filter_map(|echo| {
            if *echo {
                echo_answers.next()
            } else {
                applied_answers.next()
            }
        })
        .collect();
    let echoes = echoed.len() as u64;
    app.metrics.events(recorded, duplicates, echoes);
    if recorded > 0 {
        app.work.notify_one();
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(IngestAnswer {
            recorded,
            duplicates,
            echoes,
            deletions_skipped: batch.deletions_skipped as u64,
            events: answers,
        }),
    ))
}

/// A user's merged state, version and flattened properties.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// The organization's own id for the user.
    pub organization_user_id: String,
    /// The state's version: bumped by one each time a value changes.
    pub version: u64,
    /// When the stored state last changed (ms since the Unix epoch).
    pub updated_at_ms: i64,
    /// The flattened properties connectors map (`consents_purposes_newsletter_enabled` …):
    /// a boolean, number, text or null each.
    #[schema(schema_with = property_map_schema)]
    pub properties: serde_json::Map<String, Json_>,
    /// The merged state as stored.
    #[schema(schema_with = user_state_schema)]
    pub state: crate::consent::UserState,
}

fn property_map_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    let scalar =
        ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::Boolean,
            Type::Number,
            Type::String,
            Type::Null,
        ]));
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::RefOr(scalar.into())))
        .description(Some(
            "Property name → value (boolean, number, text or null), as connectors see them.",
        ))
        .build()
}

fn user_state_schema() -> utoipa::openapi::schema::Object {
    free_object(
        "The user's merged state (the consent model's `UserState`): `organization_user_id`, \
         `user_id`, `version`, `purposes` and `channels` by id, `metadata`, `vendors`, \
         `country`, `tcfcs` (each value with the stamp of the event that wrote it) and \
         `updated_at_ms`.",
    )
}

/// A user's merged state.
#[utoipa::path(
    get,
    path = "/v1/users/{id}",
    operation_id = "events_user",
    tag = "events",
    params(("id" = String, Path, description = "The user's `organization_user_id`.")),
    responses(
        (status = 200, description = "The user.", body = UserView),
        (status = 401, description = "Missing or wrong bearer token.", body = ErrorBody),
        (status = 404, description = "No such user.", body = ErrorBody),
        (status = 500, description = "The store failed.", body = ErrorBody),
    ),
    security(("admin" = []))
)]
pub async fn user(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    let Some(user) = app.store.user(&id).await? else {
        return Err(ApiError::not_found(format!("no user `{id}`")));
    };
    let properties: serde_json::Map<String, Json_> = flatten(&user.state)
        .into_iter()
        .map(|(name, value)| (name, property_json(value)))
        .collect();
    Ok(Json(UserView {
        organization_user_id: user.state.organization_user_id.clone(),
        version: user.state.version,
        updated_at_ms: user.updated_at_ms,
        properties,
        state: user.state,
    }))
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
