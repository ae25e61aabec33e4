//! `/v1/integrations`: integrations in Didomi's integration format, checked
//! by `crate::integrations` (the host's rules and the connector's own
//! `validate`) before they are stored; secrets never come back out.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json_;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::json_body::JsonBody;
use super::openapi::schema_as;
use crate::integrations::{ConnectionVerdict, check_connection, checked, present};
use crate::serve::App;
use crate::store::IntegrationRecord;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/integrations", get(list).post(create))
        .route(
            "/v1/integrations/{id}",
            get(show).put(replace).delete(remove),
        )
        .route("/v1/integrations/{id}/check", post(check_stored))
}

/// `?check=true`: check the body and its connection, store nothing.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SaveQuery {
    /// Check only: validate the integration as a save would, then check its
    /// connection with the destination (the connector reaches it with these
    /// credentials, writing nothing); store nothing, answer a
    /// `ConnectionReport`.
    #[serde(default)]
    check: bool,
}

/// What a connection check found.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionReport {
    /// `accepted`: the destination took every credential and name it was
    /// shown; `refused`: it refused what `problems` lists; `unsupported`:
    /// the connector has no connection check (the config itself is valid).
    pub result: String,
    /// What the destination refused, each at its field's path.
    pub problems: Vec<ReportedProblem>,
    /// One sentence for people.
    pub message: String,
}

/// One refused field.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportedProblem {
    /// Dotted path of the field (`authentication.api_key`); empty for the
    /// whole config.
    pub path: String,
    /// What the destination said, secrets redacted.
    pub message: String,
}

impl ConnectionReport {
    fn of(verdict: ConnectionVerdict, type_id: &str) -> Self {
        match verdict {
            ConnectionVerdict::Accepted => ConnectionReport {
                result: "accepted".into(),
                problems: Vec::new(),
                message: format!("the {type_id} destination accepted the connection"),
            },
            ConnectionVerdict::Refused(problems) => ConnectionReport {
                result: "refused".into(),
                message: format!(
                    "the {type_id} destination refused the connection: {}",
                    problems
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                problems: problems
                    .into_iter()
                    .map(|p| ReportedProblem {
                        path: p.path,
                        message: p.message,
                    })
                    .collect(),
            },
            ConnectionVerdict::Unsupported => ConnectionReport {
                result: "unsupported".into(),
                problems: Vec::new(),
                message: format!(
                    "the {type_id} connector has no connection check; the config is valid"
                ),
            },
        }
    }
}

/// Checks a body (validation, then connection) without storing it.
async fn dry_run(app: &App, record: &IntegrationRecord) -> Result<Response, ApiError> {
    let verdict = check_connection(app.connectors.as_ref(), record).await?;
    Ok(Json(ConnectionReport::of(verdict, &record.type_id)).into_response())
}

/// An integration in Didomi's integration format. The host checks `type_id`,
/// `id`, `enabled` and `retry`; the connector's `validate` checks the rest
/// (`authentication`, `properties`, `mappings` …) and names every problem.
#[derive(ToSchema)]
#[schema(example = json!({
    "id": "dotdigital-main",
    "type_id": "dotdigital",
    "enabled": true,
    "authentication": {
        "url": "https://r1-api.dotdigital.com",
        "username": "API_USER@apiconnector.com",
        "password": "API_PASSWORD"
    },
    "properties": {},
    "mappings": [
        {"id": "NEWSLETTER", "value": "consents_purposes_newsletter_enabled"},
        {"id": "EMAIL_OPTIN", "value": "consents_channels_email_enabled"}
    ],
    "upsert_mode": true,
    "retry": {"max_retries": 6}
}))]
#[allow(dead_code)] // documentation only: the body is checked by `crate::integrations`
pub struct IntegrationDocument {
    /// The connector type (a loaded connector's `type_id`).
    type_id: String,
    /// 1 to 64 letters, digits, `-`, `_` or `.`; generated when left out on create,
    /// must agree with the path on replace.
    id: Option<String>,
    /// Whether it receives deliveries (default true).
    enabled: Option<bool>,
    /// Its retry policy (every field optional, range-checked).
    #[schema(value_type = Option<Object>)]
    retry: Option<Json_>,
    /// Credentials, as the connector's schema names them; secrets never come back out.
    #[schema(value_type = Option<Object>)]
    authentication: Option<Json_>,
    /// The connector's settings.
    #[schema(value_type = Option<Object>)]
    properties: Option<Json_>,
    /// Destination field (`id`) ← prefsync property (`value`).
    mappings: Option<Vec<Mapping>>,
    /// Whether the destination may create contacts.
    upsert_mode: Option<bool>,
    /// Whether the integration receives webhooks (`POST /v1/webhooks/{id}`).
    enable_webhooks: Option<bool>,
    /// Anything else the connector's schema takes.
    #[serde(flatten)]
    other: std::collections::HashMap<String, Json_>,
}

/// One mapping of Didomi's integration format.
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only
pub struct Mapping {
    /// The destination's field, exactly as the destination names it.
    id: String,
    /// The prefsync property (or model column) its value comes from.
    value: String,
}

/// An integration as shown: its document with secrets redacted, and its times.
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only: the value is `integrations::present`'s
pub struct IntegrationViewDoc {
    #[serde(flatten)]
    document: IntegrationDocument,
    /// When it was created (ms since the Unix epoch).
    created_at_ms: i64,
    /// When it last changed (ms since the Unix epoch).
    updated_at_ms: i64,
}

/// An integration as shown (`integrations::present`: secrets redacted).
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct IntegrationView(pub Json_);
schema_as!(IntegrationView => IntegrationViewDoc);

/// Every integration.
#[utoipa::path(
    get,
    path = "/v1/integrations",
    operation_id = "integrations_list",
    tag = "integrations",
    responses(
        (status = 200, description = "Every integration, secrets redacted.", body = Vec<IntegrationView>),
        (status = 401, description = "Missing or wrong bearer token.", body = ErrorBody),
        (status = 500, description = "The store failed.", body = ErrorBody),
    ),
    security(("admin" = []))
)]
async fn list(State(app): State<Arc<App>>) -> Result<Json<Vec<IntegrationView>>, ApiError> {
    let all = app.store.integrations().await?;
    Ok(Json(
        all.iter()
            .map(|r| IntegrationView(present(app.connectors.as_ref(), r)))
            .collect(),
    ))
}

/// One integration.
#[utoipa::path(
    get,
    path = "/v1/integrations/{id}",
    operation_id = "integrations_show",
    tag = "integrations",
    params(("id" = String, Path, description = "The integration's id.")),
    responses(
        (status = 200, description = "The integration, secrets redacted.", body = IntegrationView),
        (status = 401, description = "Missing or wrong bearer token.", body = ErrorBody),
        (status = 404, description = "No such integration.", body = ErrorBody),
        (status = 500, description = "The store failed.", body = ErrorBody),
    ),
    security(("admin" = []))
)]
async fn show(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<IntegrationView>, ApiError> {
    match app.store.integration(&id).await? {
        Some(record) => Ok(Json(IntegrationView(present(
            app.connectors.as_ref(),
            &record,
        )))),
        None => Err(ApiError::not_found(format!("no integration `{id}`"))),
    }
}

/// Creates an integration, checked by the host and its connector.
#[utoipa::path(
    post,
    path = "/v1/integrations",
    operation_id = "integrations_create",
    tag = "integrations",
    request_body(content((IntegrationDocument = "application/json", example = json!({
        "id": "dotdigital-main",
        "type_id": "dotdigital",
        "authentication": {
            "url": "https://r1-api.dotdigital.com",
            "username": "API_USER@apiconnector.com",
            "password": "API_PASSWORD"
        },
        "properties": {},
        "mappings": [{"id": "NEWSLETTER", "value": "consents_purposes_newsletter_enabled"}],
        "upsert_mode": true
    })))),
    responses(
        (status = 200, description = "With `?check=true`: valid, nothing stored; what the connection check found.", body = ConnectionReport),
        (status = 201, description = "Created; secrets redacted.", body = IntegrationView),
        (status = 400, description = "Refused: a syntax error (`line`, `column`), a bad field, every problem the connector found (`problems`), or a secret given as `[REDACTED]` (nothing is stored to keep).", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token.", body = ErrorBody),
        (status = 409, description = "The id exists already.", body = ErrorBody),
        (status = 413, description = "The body is over `server.max_body_bytes`.", body = ErrorBody),
        (status = 415, description = "Not `application/json`.", body = ErrorBody),
        (status = 500, description = "The store failed.", body = ErrorBody),
        (status = 502, description = "The connector could not run `validate`; with `?check=true`, the connection could not be checked (the destination unreachable or failing).", body = ErrorBody),
    ),
    params(SaveQuery),
    security(("admin" = []))
)]
async fn create(
    State(app): State<Arc<App>>,
    query: Result<Query<SaveQuery>, axum::extract::rejection::QueryRejection>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let record = checked(app.connectors.as_ref(), None, None, &body).await?;
    if query.check {
        return dry_run(&app, &record).await;
    }
    // One conditional insert: of concurrent creates of one id, one wins.
    if !app.store.insert_integration(&record).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "integration `{}` exists already; use PUT /v1/integrations/{} to change it",
                record.id, record.id
            ),
        ));
    }
    Ok((
        StatusCode::CREATED,
        Json(IntegrationView(present(app.connectors.as_ref(), &record))),
    )
        .into_response())
}

/// Replaces an integration, checked as a create is. A secret field (one the
/// answers show as `"[REDACTED]"`) sent as exactly `"[REDACTED]"` keeps its
/// stored value.
#[utoipa::path(
    put,
    path = "/v1/integrations/{id}",
    operation_id = "integrations_replace",
    tag = "integrations",
    params(("id" = String, Path, description = "The integration's id.")),
    request_body(content((IntegrationDocument = "application/json", example = json!({
        "type_id": "dotdigital",
        "enabled": false,
        "authentication": {
            "url": "https://r1-api.dotdigital.com",
            "username": "API_USER@apiconnector.com",
            "password": "API_PASSWORD"
        },
        "properties": {},
        "mappings": [{"id": "NEWSLETTER", "value": "consents_purposes_newsletter_enabled"}]
    })))),
    responses(
        (status = 200, description = "Replaced; secrets redacted. With `?check=true`: valid, nothing stored, a `ConnectionReport`.", body = IntegrationView),
        (status = 400, description = "Refused (see create); or the body's id is not the path's; or a secret is `[REDACTED]` where none is stored (`problems` names it).", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token.", body = ErrorBody),
        (status = 404, description = "No such integration.", body = ErrorBody),
        (status = 413, description = "The body is over `server.max_body_bytes`.", body = ErrorBody),
        (status = 415, description = "Not `application/json`.", body = ErrorBody),
        (status = 500, description = "The store failed.", body = ErrorBody),
        (status = 502, description = "The connector could not run `validate`; with `?check=true`, the connection could not be checked.", body = ErrorBody),
    ),
    params(SaveQuery),
    security(("admin" = []))
)]
async fn replace(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    query: Result<Query<SaveQuery>, axum::extract::rejection::QueryRejection>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    crate::ids::check_id(&id)?;
    let Some(stored) = app.store.integration(&id).await? else {
        return Err(ApiError::not_found(format!("no integration `{id}`")));
    };
    // A secret sent back as "[REDACTED]" keeps its stored value.
    let record = checked(app.connectors.as_ref(), Some(&id), Some(&stored), &body).await?;
    if query.check {
        return dry_run(&app, &record).await;
    }
    app.store.put_integration(&record).await?;
    let stored = app.store.integration(&id).await?.unwrap_or(record);
    Ok(Json(IntegrationView(present(app.connectors.as_ref(), &stored))).into_response())
}

/// Checks a stored integration's connection: its connector reaches the
/// destination with the stored credentials and names, writing nothing,
/// and says what the destination refused.
#[utoipa::path(
    post,
    path = "/v1/integrations/{id}/check",
    operation_id = "integrations_check",
    tag = "integrations",
    params(("id" = String, Path, description = "The integration's id.")),
    responses(
        (status = 200, description = "What the check found (`accepted`, `refused` with the problems, or `unsupported`).", body = ConnectionReport),
        (status = 401, description = "Missing or wrong bearer token.", body = ErrorBody),
        (status = 404, description = "No such integration.", body = ErrorBody),
        (status = 500, description = "The store failed.", body = ErrorBody),
        (status = 502, description = "The connection could not be checked (the destination unreachable or failing, the connector failed).", body = ErrorBody),
    ),
    security(("admin" = []))
)]
async fn check_stored(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<ConnectionReport>, ApiError> {
    crate::ids::check_id(&id)?;
    let Some(record) = app.store.integration(&id).await? else {
        return Err(ApiError::not_found(format!("no integration `{id}`")));
    };
    let verdict = check_connection(app.connectors.as_ref(), &record).await?;
    Ok(Json(ConnectionReport::of(verdict, &record.type_id)))
}

/// Deletes an integration.
#[utoipa::path(
    delete,
    path = "/v1/integrations/{id}",
    operation_id = "integrations_remove",
    tag = "integrations",
    params(("id" = String, Path, description = "The integration's id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, description = "Missing or wrong bearer token.", body = ErrorBody),
        (status = 404, description = "No such integration.", body = ErrorBody),
        (status = 500, description = "The store failed.", body = ErrorBody),
    ),
    security(("admin" = []))
)]
async fn remove(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if app.store.delete_integration(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no integration `{id}`")))
    }
}
