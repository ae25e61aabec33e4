//! `/v1/connectors`: the connector registry — every version of every type,
//! which one serves — and its changes: upload (upgrade, with an optional
//! canary) and rollback.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use serde::Deserialize;
use serde_json::{Value as Json_, json};

use super::error::ApiError;
use crate::serve::App;
use crate::serve::ConnectorManager;
use crate::serve::canary::CanaryPolicy;
use crate::serve::connectors::{RollbackFailure, UpgradeError, UpgradeOptions};
use crate::serve::registry::RollbackError;

/// Switches a type's history shows.
const SWITCHES_SHOWN: u32 = 200;

pub fn routes(max_upload_bytes: usize) -> Router<Arc<App>> {
    Router::new()
        .route(
            PREFIX,
            get(list)
                .post(upload)
                .layer(DefaultBodyLimit::max(max_upload_bytes)),
        )
        .route("/v1/connectors/{type_id}", get(show))
        .route("/v1/connectors/{type_id}/rollback", post(rollback))
}

/// The path prefix of these routes before 0.2.
const OLD_PREFIX: &str = "/v1/plugins";
/// Their path prefix now.
const PREFIX: &str = "/v1/connectors";

/// The old paths (`/v1/plugins…`): every method answers 308 Permanent
/// Redirect to the same path under `/v1/connectors`, query kept, so clients
/// repeat the request, body and all. Kept for one minor version; needs no
/// token, as it reveals nothing but the new path.
pub fn renamed_routes() -> Router<Arc<App>> {
    Router::new()
        .route(OLD_PREFIX, any(redirect_renamed))
        .route(&format!("{OLD_PREFIX}/{{*rest}}"), any(redirect_renamed))
}

async fn redirect_renamed(uri: Uri) -> Response {
    let rest = uri.path().strip_prefix(OLD_PREFIX).unwrap_or_default();
    let location = match uri.query() {
        Some(query) => format!("{PREFIX}{rest}?{query}"),
        None => format!("{PREFIX}{rest}"),
    };
    let message = format!("{OLD_PREFIX} is now {PREFIX}: repeat the request at {location}");
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, location)],
        Json(json!({ "error": message })),
    )
        .into_response()
}

fn manager(app: &App) -> Result<&Arc<ConnectorManager>, ApiError> {
    app.manager.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "this server runs a fixed set of destinations; connector versions cannot change",
        )
    })
}

async fn list(State(app): State<Arc<App>>) -> Result<Json<Json_>, ApiError> {
    let mut connectors = Vec::new();
    for type_id in app.connectors.type_ids() {
        connectors.push(describe_type(&app, &type_id, false).await?);
    }
    Ok(Json(json!({ "connectors": connectors })))
}

async fn show(
    State(app): State<Arc<App>>,
    Path(type_id): Path<String>,
) -> Result<Json<Json_>, ApiError> {
    if app.connectors.view(&type_id).is_none() {
        return Err(unknown_type(&app, &type_id));
    }
    Ok(Json(describe_type(&app, &type_id, true).await?))
}

fn unknown_type(app: &App, type_id: &str) -> ApiError {
    ApiError::not_found(format!(
        "no connector `{type_id}` is loaded (loaded: {})",
        app.connectors.type_ids().join(", ")
    ))
}

/// One type: what serves, every version the registry keeps, and (with
/// `history`) its switches.
async fn describe_type(app: &App, type_id: &str, history: bool) -> Result<Json_, ApiError> {
    let Some(view) = app.connectors.view(type_id) else {
        return Ok(Json_::Null);
    };
    let version = |d: &Arc<dyn crate::runtime::Destination>| {
        let info = d.info();
        json!({"version": info.version, "content_hash": info.content_hash, "wit_version": info.wit_version})
    };
    let canary = view.canary.as_ref().map(|run| {
        json!({
            "candidate": version(&run.candidate),
            "percent": run.policy.percent,
            "window_s": run.policy.window.as_secs(),
            "max_failure_increase": run.policy.max_failure_increase,
            "min_deliveries": run.policy.min_deliveries,
            "started_at_ms": run.started_at_ms,
            "old": run.old.counts(),
            "new": run.new.counts(),
        })
    });
    let versions = match &app.manager {
        Some(_) => app.store.connector_versions(Some(type_id)).await?,
        None => Vec::new(),
    };
    let mut out = json!({
        "type_id": type_id,
        "active": version(&view.active),
        "standby": view.standby.as_ref().map(version),
        "canary": canary,
        "versions": versions,
    });
    if history && app.manager.is_some() {
        out["switches"] = json!(
            app.store
                .connector_switches(type_id, SWITCHES_SHOWN)
                .await?
        );
    }
    Ok(out)
}

/// Query of `POST /v1/connectors`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    /// Refuse the component unless it is this connector type.
    type_id: Option<String>,
    /// Allow a version not greater than the active one.
    #[serde(default)]
    force: bool,
    /// Run a canary: this share (1–99) of first attempts goes to the new version.
    canary_percent: Option<u8>,
    /// The canary's window, in seconds (default 300).
    canary_window_s: Option<u64>,
    /// Roll back above this increase of the permanent-failure rate (0–1, default 0.10).
    canary_max_failure_increase: Option<f64>,
    /// Deliveries the new version must make before its rate counts (default 20).
    canary_min_deliveries: Option<u64>,
}

impl UploadQuery {
    fn canary(&self) -> Result<Option<CanaryPolicy>, ApiError> {
        let Some(percent) = self.canary_percent else {
            if self.canary_window_s.is_some()
                || self.canary_max_failure_increase.is_some()
                || self.canary_min_deliveries.is_some()
            {
                return Err(ApiError::bad_request(
                    "query: canary_* settings need canary_percent (1–99)",
                ));
            }
            return Ok(None);
        };
        if !(1..=99).contains(&percent) {
            return Err(ApiError::bad_request(
                "query: canary_percent must be between 1 and 99",
            ));
        }
        let defaults = CanaryPolicy::default();
        let increase = self
            .canary_max_failure_increase
            .unwrap_or(defaults.max_failure_increase);
        if !(0.0..=1.0).contains(&increase) {
            return Err(ApiError::bad_request(
                "query: canary_max_failure_increase must be between 0 and 1",
            ));
        }
        let window = self
            .canary_window_s
            .map(Duration::from_secs)
            .unwrap_or(defaults.window);
        if window.is_zero() {
            return Err(ApiError::bad_request(
                "query: canary_window_s must be above 0",
            ));
        }
        Ok(Some(CanaryPolicy {
            percent,
            window,
            max_failure_increase: increase,
            min_deliveries: self
                .canary_min_deliveries
                .unwrap_or(defaults.min_deliveries),
        }))
    }
}

async fn upload(
    State(app): State<Arc<App>>,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    body: Bytes,
) -> Result<(StatusCode, Json<Json_>), ApiError> {
    let manager = manager(&app)?;
    let Query(query) = query?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "the body must be the connector component (.wasm)",
        ));
    }
    let options = UpgradeOptions {
        expect_type: query.type_id.clone(),
        force: query.force,
        canary: query.canary()?,
        source: crate::store::ConnectorSource::Upload,
    };
    match manager.upgrade(body.to_vec(), options).await {
        Ok(report) => Ok((StatusCode::CREATED, Json(json!(report)))),
        Err(error) => Err(upgrade_error(error)),
    }
}

fn upgrade_error(error: UpgradeError) -> ApiError {
    let message = error.to_string();
    match error {
        UpgradeError::Load(_) | UpgradeError::TypeMismatch { .. } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
        }
        UpgradeError::BreaksIntegrations { broken, .. } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
                .with_details(json!({ "integrations": broken }))
        }
        UpgradeError::NotNewer { .. }
        | UpgradeError::AlreadyActive { .. }
        | UpgradeError::CanaryRunning(_)
        | UpgradeError::NothingToCompare(_) => ApiError::new(StatusCode::CONFLICT, message),
        UpgradeError::Store(error) => ApiError::internal(error),
    }
}

async fn rollback(
    State(app): State<Arc<App>>,
    Path(type_id): Path<String>,
) -> Result<Json<Json_>, ApiError> {
    let manager = manager(&app)?;
    match manager.rollback(&type_id).await {
        Ok(report) => Ok(Json(json!(report))),
        Err(RollbackFailure::Refused(RollbackError::UnknownType(_))) => {
            Err(unknown_type(&app, &type_id))
        }
        Err(RollbackFailure::Refused(error @ RollbackError::NoPrevious(_))) => {
            Err(ApiError::new(StatusCode::CONFLICT, error.to_string()))
        }
        Err(RollbackFailure::Store(error)) => Err(ApiError::internal(error)),
    }
}
