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
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::openapi::{free_object, schema_as};
use crate::serve::App;
use crate::serve::ConnectorManager;
use crate::serve::canary::{CanaryPolicy, Counts};
use crate::serve::connectors::{
    RollbackFailure, SwitchReport, UpgradeError, UpgradeOptions, VersionRef,
};
use crate::serve::registry::RollbackError;
use crate::store::{ConnectorAction, ConnectorSwitch, ConnectorVersion};

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
#[allow(deprecated)] // the handlers are deprecated for the document, still served
pub fn renamed_routes() -> Router<Arc<App>> {
    Router::new()
        .route(OLD_PREFIX, any(redirect_prefix))
        .route(&format!("{OLD_PREFIX}/{{*rest}}"), any(redirect_rest))
}

/// `/v1/plugins`: renamed `/v1/connectors`.
#[utoipa::path(
    method(get, post, put, delete, patch),
    path = "/v1/plugins",
    operation_id = "connectors_redirect_prefix",
    tag = "connectors",
    responses(
        (status = 308, description = "Permanent redirect to the same path under `/v1/connectors`, query kept; repeat the request there.",
            headers(("Location" = String, description = "The new path.")), body = ErrorBody),
    )
)]
#[deprecated = "renamed /v1/connectors; kept for one minor version"]
async fn redirect_prefix(uri: Uri) -> Response {
    redirect_renamed(uri).await
}

/// `/v1/plugins/{rest}`: renamed `/v1/connectors/{rest}`.
#[utoipa::path(
    method(get, post, put, delete, patch),
    path = "/v1/plugins/{rest}",
    operation_id = "connectors_redirect_rest",
    tag = "connectors",
    params(("rest" = String, Path, description = "The rest of the path (may hold `/`).")),
    responses(
        (status = 308, description = "Permanent redirect to the same path under `/v1/connectors`, query kept; repeat the request there.",
            headers(("Location" = String, description = "The new path.")), body = ErrorBody),
    )
)]
#[deprecated = "renamed /v1/connectors/{rest}; kept for one minor version"]
async fn redirect_rest(uri: Uri) -> Response {
    redirect_renamed(uri).await
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
        Json(ErrorBody {
            error: message,
            details: Default::default(),
        }),
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

/// The connector registry: every type loaded.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectorList {
    /// One entry per connector type.
    pub connectors: Vec<ConnectorType>,
}

/// One connector type: what serves, every version kept and (shown alone) its switches.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectorType {
    /// The connector type.
    pub type_id: String,
    /// The active version's name for people (`Dotdigital`).
    pub display_name: String,
    /// What the active version can do.
    pub capabilities: Capabilities,
    /// The active version's JSON Schema of an integration's config, as the
    /// connector describes it (secret fields marked `writeOnly`).
    #[schema(schema_with = config_schema_schema)]
    pub config_schema: serde_json::Value,
    /// Hosts the active version may reach besides its integrations' URL fields
    /// (a `{config.path}` is filled from each integration).
    pub default_hosts: Vec<String>,
    /// Most records the active version takes per delivery call.
    pub max_batch_size: u32,
    /// Most calls of the active version at once, per integration.
    pub max_concurrency: u32,
    /// The version making the deliveries.
    pub active: LoadedVersion,
    /// The previous version, kept loaded for a rollback.
    pub standby: Option<LoadedVersion>,
    /// A running canary, if any.
    pub canary: Option<CanaryView>,
    /// Every version the registry keeps (none on a server with a fixed set of destinations).
    pub versions: Vec<ConnectorVersion>,
    /// The type's switches, newest first (`GET /v1/connectors/{type_id}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switches: Option<Vec<ConnectorSwitch>>,
}

/// What a connector version can do: its exports (and, for batching, its claim).
#[derive(Debug, Serialize, ToSchema)]
pub struct Capabilities {
    /// It delivers consent changes (`deliver`): every loaded connector does.
    pub deliver: bool,
    /// Its `deliver` takes more than one record per call.
    pub batching: bool,
    /// It reads webhooks (exports `inbound`): integrations may set `enable_webhooks`.
    pub inbound_webhooks: bool,
    /// It syncs user models (exports `activation`): activations may target it.
    pub activations: bool,
    /// It checks an integration's credentials against its destination
    /// (exports `connection`): `POST /v1/integrations/{id}/check` and
    /// `?check=true` on a save work for its integrations.
    pub connection_check: bool,
}

fn config_schema_schema() -> utoipa::openapi::schema::Object {
    free_object(
        "The active version's JSON Schema of an integration's config, as the connector describes it.",
    )
}

/// A loaded version.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoadedVersion {
    /// The connector's semver version.
    pub version: String,
    /// SHA-256 of the component, hex.
    pub content_hash: String,
    /// The WIT package version it was built against.
    pub wit_version: String,
}

/// A running canary and its tallies.
#[derive(Debug, Serialize, ToSchema)]
pub struct CanaryView {
    /// The version on trial.
    pub candidate: LoadedVersion,
    /// Share of first attempts it takes, 1–99.
    pub percent: u8,
    /// How long it runs before it is promoted, in seconds.
    pub window_s: u64,
    /// Rolled back above this increase of the permanent-failure rate (0–1).
    pub max_failure_increase: f64,
    /// Deliveries it must make before its rate counts.
    pub min_deliveries: u64,
    /// When it started (ms since the Unix epoch).
    pub started_at_ms: i64,
    /// The active version's tallies since.
    pub old: CountsView,
    /// The candidate's tallies.
    pub new: CountsView,
}

/// Deliveries and permanent failures of one version during a canary.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct CountsView(pub Counts);

/// Deliveries and permanent failures of one version during a canary.
// Documents [`Counts`].
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only
pub struct CountsDoc {
    /// Deliveries made.
    deliveries: u64,
    /// Of which failed for good.
    permanent_failures: u64,
}
schema_as!(CountsView => CountsDoc);

/// What an upload or a rollback switched.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct SwitchAnswer(pub SwitchReport);

/// What an upload or a rollback switched.
// Documents [`SwitchReport`].
#[derive(ToSchema)]
#[allow(dead_code)] // documentation only
pub struct SwitchReportDoc {
    /// The connector type.
    type_id: String,
    /// What the switch did.
    action: ConnectorAction,
    /// The version before, if any.
    from: Option<VersionRefDoc>,
    /// The version after.
    to: VersionRefDoc,
    /// When deliveries started going to `to` (for a canary: its share).
    switched_at_ms: i64,
    /// From receiving the component to the switch.
    took_ms: u64,
    /// Integrations of the type the new version validated.
    integrations_validated: u64,
}
schema_as!(SwitchAnswer => SwitchReportDoc);

/// A version as a switch names it.
#[derive(ToSchema)]
#[schema(as = VersionRef)]
#[allow(dead_code)] // documentation only: [`VersionRef`]
pub struct VersionRefDoc {
    /// The connector's semver version.
    version: String,
    /// SHA-256 of the component, hex.
    content_hash: String,
}

/// Keeps [`VersionRefDoc`] in step with the type it documents.
const _: fn(VersionRef) -> VersionRefDoc = |v| VersionRefDoc {
    version: v.version,
    content_hash: v.content_hash,
};

/// A `.wasm` connector component.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // documentation only
pub struct WasmComponent(Vec<u8>);

/// The connector registry.
#[utoipa::path(
    get,
    path = "/v1/connectors",
    operation_id = "connectors_list",
    tag = "connectors",
    responses(
        (status = 200, description = "Every connector type loaded.", body = ConnectorList),
        (status = 401, description = "Missing or wrong bearer token.", body = ErrorBody),
        (status = 500, description = "The store failed.", body = ErrorBody),
    ),
    security(("admin" = []))
)]
async fn list(State(app): State<Arc<App>>) -> Result<Json<ConnectorList>, ApiError> {
    let mut connectors = Vec::new();
    for type_id in app.connectors.type_ids() {
        connectors.extend(describe_type(&app, &type_id, false).await?);
    }
    Ok(Json(ConnectorList { connectors }))
}

/// One connector type, with its switches.
#[utoipa::path(
    get,
    path = "/v1/connectors/{type_id}",
    operation_id = "connectors_show",
    tag = "connectors",
    params(("type_id" = String, Path, description = "The connector type.")),
    responses(
        (status = 200, description = "The type.", body = ConnectorType),
        (status = 401, description = "Missing or wrong bearer token.", body = ErrorBody),
        (status = 404, description = "No such type is loaded (the loaded ones are listed).", body = ErrorBody),
        (status = 500, description = "The store failed.", body = ErrorBody),
    ),
    security(("admin" = []))
)]
async fn show(
    State(app): State<Arc<App>>,
    Path(type_id): Path<String>,
) -> Result<Json<ConnectorType>, ApiError> {
    match describe_type(&app, &type_id, true).await? {
        Some(described) => Ok(Json(described)),
        None => Err(unknown_type(&app, &type_id)),
    }
}

fn unknown_type(app: &App, type_id: &str) -> ApiError {
    ApiError::not_found(format!(
        "no connector `{type_id}` is loaded (loaded: {})",
        app.connectors.type_ids().join(", ")
    ))
}

/// One type: what serves, every version the registry keeps, and (with
/// `history`) its switches.
/// `None` when the type is not loaded.
async fn describe_type(
    app: &App,
    type_id: &str,
    history: bool,
) -> Result<Option<ConnectorType>, ApiError> {
    let Some(view) = app.connectors.view(type_id) else {
        return Ok(None);
    };
    let version = |d: &Arc<dyn crate::runtime::Destination>| {
        let info = d.info();
        LoadedVersion {
            version: info.version.clone(),
            content_hash: info.content_hash.clone(),
            wit_version: info.wit_version.clone(),
        }
    };
    let canary = view.canary.as_ref().map(|run| CanaryView {
        candidate: version(&run.candidate),
        percent: run.policy.percent,
        window_s: run.policy.window.as_secs(),
        max_failure_increase: run.policy.max_failure_increase,
        min_deliveries: run.policy.min_deliveries,
        started_at_ms: run.started_at_ms,
        old: CountsView(run.old.counts()),
        new: CountsView(run.new.counts()),
    });
    let versions = match &app.manager {
        Some(_) => app.store.connector_versions(Some(type_id)).await?,
        None => Vec::new(),
    };
    let switches = if history && app.manager.is_some() {
        Some(
            app.store
                .connector_switches(type_id, SWITCHES_SHOWN)
                .await?,
        )
    } else {
        None
    };
    let info = view.active.info();
    Ok(Some(ConnectorType {
        type_id: type_id.to_string(),
        display_name: info.display_name.clone(),
        capabilities: Capabilities {
            // Loading refuses a component without the `connector` export.
            deliver: true,
            batching: info.batching,
            inbound_webhooks: info.inbound_webhooks,
            activations: info.activations,
            connection_check: info.connection_check,
        },
        config_schema: info.config_schema.clone(),
        default_hosts: info.default_hosts.clone(),
        max_batch_size: info.max_batch_size,
        max_concurrency: info.max_concurrency,
        active: version(&view.active),
        standby: view.standby.as_ref().map(version),
        canary,
        versions,
        switches,
    }))
}

/// Query of `POST /v1/connectors`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
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

/// Installs a connector type or upgrades one (optionally through a canary).
#[utoipa::path(
    post,
    path = "/v1/connectors",
    operation_id = "connectors_upload",
    tag = "connectors",
    params(UploadQuery),
    request_body(
        description = "The connector component (`.wasm`), at most `connectors.max_upload_bytes`.",
        content((WasmComponent = "application/wasm"), (WasmComponent = "application/octet-stream"))
    ),
    responses(
        (status = 201, description = "Installed or switched (or a canary started).", body = SwitchAnswer),
        (status = 400, description = "An empty body or a bad query parameter.", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token.", body = ErrorBody),
        (status = 409, description = "Not newer than the active version (without `force`), already active, a canary running, or a server with a fixed set of destinations.", body = ErrorBody),
        (status = 413, description = "The body is over `connectors.max_upload_bytes`.", body = ErrorBody),
        (status = 422, description = "Not a usable connector, another type than `type_id`, or it would break integrations (`integrations`).", body = ErrorBody),
        (status = 500, description = "The store failed.", body = ErrorBody),
    ),
    security(("admin" = []))
)]
async fn upload(
    State(app): State<Arc<App>>,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    body: Bytes,
) -> Result<(StatusCode, Json<SwitchAnswer>), ApiError> {
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
        Ok(report) => Ok((StatusCode::CREATED, Json(SwitchAnswer(report)))),
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

/// Back to the previous version, or the end of a running canary.
#[utoipa::path(
    post,
    path = "/v1/connectors/{type_id}/rollback",
    operation_id = "connectors_rollback",
    tag = "connectors",
    params(("type_id" = String, Path, description = "The connector type.")),
    responses(
        (status = 200, description = "Rolled back.", body = SwitchAnswer),
        (status = 401, description = "Missing or wrong bearer token.", body = ErrorBody),
        (status = 404, description = "No such type is loaded.", body = ErrorBody),
        (status = 409, description = "No previous version to go back to, or a server with a fixed set of destinations.", body = ErrorBody),
        (status = 500, description = "The store failed.", body = ErrorBody),
    ),
    security(("admin" = []))
)]
async fn rollback(
    State(app): State<Arc<App>>,
    Path(type_id): Path<String>,
) -> Result<Json<SwitchAnswer>, ApiError> {
    let manager = manager(&app)?;
    match manager.rollback(&type_id).await {
        Ok(report) => Ok(Json(SwitchAnswer(report))),
        Err(RollbackFailure::Refused(RollbackError::UnknownType(_))) => {
            Err(unknown_type(&app, &type_id))
        }
        Err(RollbackFailure::Refused(error @ RollbackError::NoPrevious(_))) => {
            Err(ApiError::new(StatusCode::CONFLICT, error.to_string()))
        }
        Err(RollbackFailure::Store(error)) => Err(ApiError::internal(error)),
    }
}
