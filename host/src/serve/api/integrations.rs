//! `/v1/integrations`: integrations in Didomi's integration format, checked
//! by `crate::integrations` (the host's rules and the connector's own
//! `validate`) before they are stored; secrets never come back out.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::Value as Json_;

use super::error::ApiError;
use super::json_body::JsonBody;
use crate::integrations::{checked, present};
use crate::serve::App;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/integrations", get(list).post(create))
        .route(
            "/v1/integrations/{id}",
            get(show).put(replace).delete(remove),
        )
}

async fn list(State(app): State<Arc<App>>) -> Result<Json<Json_>, ApiError> {
    let all = app.store.integrations().await?;
    Ok(Json(Json_::Array(
        all.iter()
            .map(|r| present(app.connectors.as_ref(), r))
            .collect(),
    )))
}

async fn show(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Json_>, ApiError> {
    match app.store.integration(&id).await? {
        Some(record) => Ok(Json(present(app.connectors.as_ref(), &record))),
        None => Err(ApiError::not_found(format!("no integration `{id}`"))),
    }
}

async fn create(
    State(app): State<Arc<App>>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Json_>), ApiError> {
    let record = checked(app.connectors.as_ref(), None, &body).await?;
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
        Json(present(app.connectors.as_ref(), &record)),
    ))
}

async fn replace(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Json_>, ApiError> {
    crate::ids::check_id(&id)?;
    if app.store.integration(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("no integration `{id}`")));
    }
    let record = checked(app.connectors.as_ref(), Some(&id), &body).await?;
    app.store.put_integration(&record).await?;
    let stored = app.store.integration(&id).await?.unwrap_or(record);
    Ok(Json(present(app.connectors.as_ref(), &stored)))
}

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
