//! `/v1/activations`: scheduled reverse-ETL syncs, their manual runs and
//! their run history. The SQL source's password never comes back out.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value as Json_, json};

use super::error::ApiError;
use super::json_body::JsonBody;
use crate::activation::{ActivationConfig, ActivationError, ConfigError, present};
use crate::serve::App;
use crate::store::RunTrigger;

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

async fn list(State(app): State<Arc<App>>) -> Result<Json<Json_>, ApiError> {
    let all = app.store.activations().await?;
    Ok(Json(Json_::Array(all.iter().map(present).collect())))
}

async fn show(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Json_>, ApiError> {
    let Some(record) = app.store.activation(&id).await? else {
        return Err(ActivationError::NotFound(id).into());
    };
    let mut shown = present(&record);
    shown["last_run"] = app
        .store
        .runs(&id, 1)
        .await?
        .first()
        .map_or(Json_::Null, |run| json!(run));
    shown["snapshot_keys"] = json!(app.store.snapshot_size(&id).await?);
    Ok(Json(shown))
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

async fn create(
    State(app): State<Arc<App>>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Json_>), ApiError> {
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
    Ok((StatusCode::CREATED, Json(present(&record))))
}

async fn replace(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Json_>, ApiError> {
    crate::ids::check_id(&id)?;
    let config = parse(&body, Some(&id))?;
    let record = app.activations.put(&config).await?;
    Ok(Json(present(&record)))
}

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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunQuery {
    #[serde(default)]
    full_resync: bool,
}

/// Starts a run now; it goes on after the answer (202 with its id).
async fn run(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    query: Result<Query<RunQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<(StatusCode, Json<Json_>), ApiError> {
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
        Json(json!({
            "activation": id,
            "run_id": run_id,
            "full_resync": query.full_resync,
            "runs": format!("/v1/activations/{id}/runs"),
        })),
    ))
}

/// `?limit=N` (default 50, at most 1000).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunsQuery {
    #[serde(default)]
    limit: Option<u32>,
}

async fn runs(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    query: Result<Query<RunsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Json_>, ApiError> {
    let Query(query) = query?;
    if app.store.activation(&id).await?.is_none() {
        return Err(ActivationError::NotFound(id).into());
    }
    let limit = query.limit.unwrap_or(50).clamp(1, 1_000);
    Ok(Json(json!(app.store.runs(&id, limit).await?)))
}
