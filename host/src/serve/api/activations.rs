//! `/v1/activations`: scheduled reverse-ETL syncs, their manual runs and
//! their run history. The SQL source's password never comes back out.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json_, json};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::json_body::JsonBody;
use super::openapi::schema_as;
use crate::activation::config::{
    AttributeMapping, KeyConfig, ScheduleConfig, SourceConfig, SyncMode, WarningsConfig,
};
use crate::activation::{ActivationConfig, ActivationError, ConfigError, present};
use crate::serve::App;
use crate::store::{RunRecord, RunTrigger};

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/activations", get(list).post(create))
        .route(
            "/v1/activations/{id}",
            get(show).put(replace).delete(remove),
        )
        .route("/v1/activations/{id}/run", post(run))
        .route("/v1/activations/{id}/runs", get(runs))
}

impl From<ActivationError> for ApiError {
    fn from(error: ActivationError) -> Self {
        match error {
            ActivationError::NotFound(_) => ApiError::not_found(error.to_string()),
            ActivationError::AlreadyRunning(_) => {
                ApiError::new(StatusCode::CONFLICT, error.to_string())
            }
            ActivationError::Config(ConfigError::Syntax { line, column, .. }) => {
                ApiError::bad_request(error.to_string())
                    .with_details(json!({"line": line, "column": column}))
            }
            ActivationError::Config(ConfigError::Invalid(problems)) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ConfigError::Invalid(problems.clone()).to_string(),
            )
            .with_details(json!({"problems": problems})),
            ActivationError::Destination(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, error.to_string())
            }
            ActivationError::Store(error) => ApiError::internal(error),
        }
    }
}

/// An activation document in a request: [`ActivationConfig`].
const ACTIVATION_EXAMPLE: &str = r#"{
  "id": "users-to-selligent",
  "integration": "selligent-engage",
  "source": {"type": "csv", "path": "users.csv"},
  "key": {"column": "email", "field": "MAIL"},
  "mappings": [{"id": "FIRSTNAME", "value": "first_name"}, {"id": "CITY", "value": "city"}],
  "mode": "upsert",
  "schedule": {"every": "1h"},
  "warnings": {"rejected_share": 0.05, "webhook_url": "https://hooks.example.com/prefsync", "log": true}
}"#;

fn activation_example() -> Json_ {
    serde_json::from_str(ACTIVATION_EXAMPLE).unwrap_or_default()
}

/// An activation as shown (`activation::present`): its document (a SQL
/// source's password redacted) and its schedule state.
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only: the value is `activation::present`'s
pub struct ActivationViewDoc {
    /// The activation's id.
    id: String,
    /// A name for people.
    name: Option<String>,
    /// The destination integration.
    integration: String,
    /// Where the model's rows come from (a SQL source's password redacted).
    source: SourceConfig,
    /// How a model row finds its destination record.
    key: KeyConfig,
    /// Destination attribute (`id`) ← model column (`value`).
    mappings: Vec<AttributeMapping>,
    /// Which rows the destination may create or change.
    mode: SyncMode,
    /// When the scheduler runs it.
    schedule: ScheduleConfig,
    /// When a run raises a warning, and where it goes.
    warnings: WarningsConfig,
    /// When it was created (ms since the Unix epoch).
    created_at_ms: i64,
    /// When it last changed (ms since the Unix epoch).
    updated_at_ms: i64,
    /// When the scheduler next starts a run; null: manual only.
    next_run_at_ms: Option<i64>,
}

/// One activation with its last run and the snapshot's size.
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only
pub struct ActivationDetailDoc {
    #[serde(flatten)]
    activation: ActivationView,
    /// The newest run, if any.
    last_run: Option<RunRecord>,
    /// Keys the snapshot holds (what the destination accepted).
    snapshot_keys: u64,
}

/// An activation as shown.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct ActivationView(pub Json_);
schema_as!(ActivationView => ActivationViewDoc);

/// An activation as `GET /v1/activations/{id}` shows it.
#[derive(Debug, Serialize)]
pub struct ActivationDetail {
    #[serde(flatten)]
    pub activation: ActivationView,
    /// The newest run, if any.
    pub last_run: Option<RunRecord>,
    /// Keys the snapshot holds.
    pub snapshot_keys: u64,
}
schema_as!(ActivationDetail => ActivationDetailDoc);

/// A run started by `POST /v1/activations/{id}/run`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunStarted {
    /// The activation.
    pub activation: String,
    /// The run's id (see its history).
    pub run_id: i64,
    /// Whether it ignores the snapshot and sends every row in full.
    pub full_resync: bool,
    /// Where its history is: `/v1/activations/{id}/runs`.
    pub runs: String,
}

/// Every activation.
#[utoipa::path(
    get,
    path = "/v1/activations",
    operation_id = "activations_list",
    tag = "activations",
    responses(
        (status = 200, description = "Every activation.", body = Vec<ActivationView>),
        (status = 401, description = "Missing or wrong bearer token.", body = ErrorBody),
        (status = 500, description = "The store failed.", body = ErrorBody),
    ),
    security(("admin" = []))
)]
async fn list(State(app): State<Arc<App>>) -> Result<Json<Vec<ActivationView>>, ApiError> {
    let all = app.store.activations().await?;
    Ok(Json(
        all.iter().map(|r| ActivationView(present(r))).collect(),
    ))
}

/// One activation, with its last run and the snapshot's size.
#[utoipa::path(
    get,
    path = "/v1/activations/{id}",
    operation_id = "activations_show",
    tag = "activations",
    params(("id" = String, Path, description = "The activation's id.")),
    responses(
        (status = 200, description = "The activation.", body = ActivationDetail),
        (status = 401, description = "Missing or wrong bearer token.", body = ErrorBody),
        (status = 404, description = "No such activation.", body = ErrorBody),
        (status = 500, description = "The store failed.", body = ErrorBody),
    ),
    security(("admin" = []))
)]
async fn show(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<ActivationDetail>, ApiError> {
    let Some(record) = app.store.activation(&id).await? else {
        return Err(ActivationError::NotFound(id).into());
    };
    let mut shown = present(&record);
    // Carried by the fields below, whatever the stored document holds.
    if let Some(obj) = shown.as_object_mut() {
        obj.remove("last_run");
        obj.remove("snapshot_keys");
    }
    Ok(Json(ActivationDetail {
        activation: ActivationView(shown),
        last_run: app.store.runs(&id, 1).await?.into_iter().next(),
        snapshot_keys: app.store.snapshot_size(&id).await?,
    }))
}

fn parse(body: &[u8], path_id: Option<&str>) -> Result<ActivationConfig, ApiError> {
    let config = ActivationConfig::parse(body, path_id).map_err(ActivationError::from)?;
    if let Some(id) = path_id
        && config.id != id
    {
        return Err(ApiError::bad_request(format!(
            "id: the body says `{}` but the path says `{id}`; they must agree",
            config.id
        )));
    }
    Ok(config)
}

/// Creates an activation.
#[utoipa::path(
    post,
    path = "/v1/activations",
    operation_id = "activations_create",
    tag = "activations",
    request_body(content((ActivationConfig = "application/json", example = activation_example))),
    responses(
        (status = 201, description = "Created.", body = ActivationView),
        (status = 400, description = "A JSON syntax error (`line`, `column`) or a bad id.", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token.", body = ErrorBody),
        (status = 409, description = "The id exists already.", body = ErrorBody),
        (status = 413, description = "The body is over `server.max_body_bytes`.", body = ErrorBody),
        (status = 415, description = "Not `application/json`.", body = ErrorBody),
        (status = 422, description = "Not a usable activation: every problem (`problems`), or its destination cannot sync models.", body = ErrorBody),
        (status = 500, description = "The store failed.", body = ErrorBody),
    ),
    security(("admin" = []))
)]
async fn create(
    State(app): State<Arc<App>>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<ActivationView>), ApiError> {
    let config = parse(&body, None)?;
    // One conditional insert: of concurrent creates of one id, one wins.
    let Some(record) = app.activations.create(&config).await? else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "activation `{}` exists; PUT /v1/activations/{} replaces it",
                config.id, config.id
            ),
        ));
    };
    Ok((StatusCode::CREATED, Json(ActivationView(present(&record)))))
}

/// Creates or replaces an activation.
#[utoipa::path(
    put,
    path = "/v1/activations/{id}",
    operation_id = "activations_replace",
    tag = "activations",
    params(("id" = String, Path, description = "The activation's id (the body's must agree).")),
    request_body(content((ActivationConfig = "application/json", example = activation_example))),
    responses(
        (status = 200, description = "Stored.", body = ActivationView),
        (status = 400, description = "A JSON syntax error (`line`, `column`), a bad id, or the body's id is not the path's.", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token.", body = ErrorBody),
        (status = 413, description = "The body is over `server.max_body_bytes`.", body = ErrorBody),
        (status = 415, description = "Not `application/json`.", body = ErrorBody),
        (status = 422, description = "Not a usable activation: every problem (`problems`), or its destination cannot sync models.", body = ErrorBody),
        (status = 500, description = "The store failed.", body = ErrorBody),
    ),
    security(("admin" = []))
)]
async fn replace(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<ActivationView>, ApiError> {
    crate::ids::check_id(&id)?;
    let config = parse(&body, Some(&id))?;
    let record = app.activations.put(&config).await?;
    Ok(Json(ActivationView(present(&record))))
}

/// Deletes an activation, its snapshot and its history.
#[utoipa::path(
    delete,
    path = "/v1/activations/{id}",
    operation_id = "activations_remove",
    tag = "activations",
    params(("id" = String, Path, description = "The activation's id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, description = "Missing or wrong bearer token.", body = ErrorBody),
        (status = 404, description = "No such activation.", body = ErrorBody),
        (status = 500, description = "The store failed.", body = ErrorBody),
    ),
    security(("admin" = []))
)]
async fn remove(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if app.store.delete_activation(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ActivationError::NotFound(id).into())
    }
}

/// `?full_resync=true` ignores the snapshot for this run.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct RunQuery {
    /// Ignore the snapshot: send every row in full.
    #[serde(default)]
    full_resync: bool,
}

/// Starts a run now; it goes on after the answer (202 with its id).
#[utoipa::path(
    post,
    path = "/v1/activations/{id}/run",
    operation_id = "activations_run",
    tag = "activations",
    params(("id" = String, Path, description = "The activation's id."), RunQuery),
    responses(
        (status = 202, description = "Started.", body = RunStarted),
        (status = 400, description = "A bad query parameter, named.", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token.", body = ErrorBody),
        (status = 404, description = "No such activation.", body = ErrorBody),
        (status = 409, description = "A run of it is going on.", body = ErrorBody),
        (status = 422, description = "Its destination cannot sync models.", body = ErrorBody),
        (status = 500, description = "The store failed.", body = ErrorBody),
    ),
    security(("admin" = []))
)]
async fn run(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    query: Result<Query<RunQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<(StatusCode, Json<RunStarted>), ApiError> {
    let Query(query) = query?;
    let begun = app
        .activations
        .begin(&id, RunTrigger::Api, query.full_resync)
        .await?;
    let run_id = begun.run_id;
    // Awaited when the server stops, like scheduled runs.
    app.activations.spawn(begun).await;
    Ok((
        StatusCode::ACCEPTED,
        Json(RunStarted {
            runs: format!("/v1/activations/{id}/runs"),
            activation: id,
            run_id,
            full_resync: query.full_resync,
        }),
    ))
}

/// `?limit=N` (default 50, at most 1000).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct RunsQuery {
    /// At most this many runs (default 50, at most 1000).
    #[serde(default)]
    limit: Option<u32>,
}

/// The run history, newest first.
#[utoipa::path(
    get,
    path = "/v1/activations/{id}/runs",
    operation_id = "activations_runs",
    tag = "activations",
    params(("id" = String, Path, description = "The activation's id."), RunsQuery),
    responses(
        (status = 200, description = "The runs, newest first.", body = Vec<RunRecord>),
        (status = 400, description = "A bad query parameter, named.", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token.", body = ErrorBody),
        (status = 404, description = "No such activation.", body = ErrorBody),
        (status = 500, description = "The store failed.", body = ErrorBody),
    ),
    security(("admin" = []))
)]
async fn runs(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    query: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<RunRecord>>, ApiError> {
    let Query(query) = query?;
    if app.store.activation(&id).await?.is_none() {
        return Err(ActivationError::NotFound(id).into());
    }
    let limit = query.limit.unwrap_or(50).clamp(1, 1_000);
    Ok(Json(app.store.runs(&id, limit).await?))
}
