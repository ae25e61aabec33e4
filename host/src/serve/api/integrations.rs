//! `/v1/integrations`: integrations in the seed's JSON shape, validated by
//! their connector before they are stored; secrets never come back out.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value as Json_, json};

use super::error::ApiError;
use crate::secrets::redact_config;
use crate::serve::App;
use crate::store::IntegrationRecord;

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
    Ok(Json(Json_::Array(all.iter().map(present).collect())))
}

async fn show(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Json_>, ApiError> {
    match app.store.integration(&id).await? {
        Some(record) => Ok(Json(present(&record))),
        None => Err(ApiError::not_found(format!("no integration `{id}`"))),
    }
}

async fn create(
    State(app): State<Arc<App>>,
    body: Bytes,
) -> Result<(StatusCode, Json<Json_>), ApiError> {
    let record = checked(&app.connectors, None, &body).await?;
    if app.store.integration(&record.id).await?.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "integration `{}` exists already; use PUT /v1/integrations/{} to change it",
                record.id, record.id
            ),
        ));
    }
    app.store.put_integration(&record).await?;
    let stored = app.store.integration(&record.id).await?.unwrap_or(record);
    Ok((StatusCode::CREATED, Json(present(&stored))))
}

async fn replace(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Json_>, ApiError> {
    if app.store.integration(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("no integration `{id}`")));
    }
    let record = checked(&app.connectors, Some(&id), &body).await?;
    app.store.put_integration(&record).await?;
    let stored = app.store.integration(&id).await?.unwrap_or(record);
    Ok(Json(present(&stored)))
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

/// Creates or updates the integrations of `dir` (config as code): every
/// `*.json` file holds one integration in the seed's format; its `id`
/// defaults to the file name. Any invalid file stops the start-up with the
/// file and the problems named, so a typo never runs half-configured.
pub async fn load_dir(
    store: &dyn crate::store::Store,
    connectors: &crate::serve::Registry,
    dir: &std::path::Path,
) -> anyhow::Result<usize> {
    let mut paths: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("reading integrations directory {}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    for path in &paths {
        let body =
            std::fs::read(path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let mut record = checked(connectors, None, &body)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message))?;
        let id_given = serde_json::from_slice::<Json_>(&body)
            .ok()
            .is_some_and(|v| v.get("id").is_some_and(|id| !id.is_null()));
        if !id_given {
            check_id(&stem).map_err(|e| {
                anyhow::anyhow!("{}: {} (from the file name)", path.display(), e.message)
            })?;
            record.id = stem;
            record.config["id"] = json!(record.id);
        }
        store.put_integration(&record).await?;
        tracing::info!(id = %record.id, file = %path.display(), "integration loaded from file");
    }
    Ok(paths.len())
}

/// The integration as shown: its JSON with secrets redacted, plus timestamps.
pub fn present(record: &IntegrationRecord) -> Json_ {
    let mut shown = redact_config(&record.config);
    if let Some(obj) = shown.as_object_mut() {
        obj.insert("created_at_ms".into(), json!(record.created_at_ms));
        obj.insert("updated_at_ms".into(), json!(record.updated_at_ms));
    }
    shown
}

/// Parses and validates an integration body: host fields first (`type_id`,
/// `id`, `enabled`), then the connector's own `validate`, every problem at once.
async fn checked(
    connectors: &crate::serve::Registry,
    path_id: Option<&str>,
    body: &[u8],
) -> Result<IntegrationRecord, ApiError> {
    let config: Json_ = serde_json::from_slice(body).map_err(|e| ApiError::json_syntax(&e))?;
    let (record, config) = host_fields(path_id, config)?;
    let Some(connector) = connectors.get(&record.type_id) else {
        return Err(ApiError::bad_request(format!(
            "type_id: unknown connector type `{}` (loaded: {})",
            record.type_id,
            list_or_none(&connectors.type_ids())
        )));
    };
    let mut problems = connector.validate(&config).await.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!("the {} connector could not validate: {e}", record.type_id),
        )
    })?;
    problems.extend(super::webhooks::problems(&config, connector.info()));
    if !problems.is_empty() {
        let listed: Vec<Json_> = problems
            .iter()
            .map(|p| json!({"path": p.path, "message": p.message}))
            .collect();
        let summary: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return Err(
            ApiError::bad_request(format!("invalid integration: {}", summary.join("; ")))
                .with_details(json!({"problems": listed})),
        );
    }
    Ok(IntegrationRecord { config, ..record })
}

/// The fields the host owns. Returns the record (without config) and the
/// config with `id` and `enabled` filled in.
fn host_fields(
    path_id: Option<&str>,
    mut config: Json_,
) -> Result<(IntegrationRecord, Json_), ApiError> {
    let Some(obj) = config.as_object_mut() else {
        return Err(ApiError::bad_request(
            "an integration must be a JSON object",
        ));
    };
    let type_id = match obj.get("type_id") {
        Some(Json_::String(t)) if !t.trim().is_empty() => t.clone(),
        None | Some(Json_::Null) => return Err(ApiError::bad_request("type_id: is required")),
        Some(_) => return Err(ApiError::bad_request("type_id: must be a non-empty string")),
    };
    let id = match (obj.get("id"), path_id) {
        (None | Some(Json_::Null), Some(path)) => path.to_string(),
        (None | Some(Json_::Null), None) => format!("{type_id}-{}", random_hex(4)),
        (Some(Json_::String(id)), Some(path)) if id != path => {
            return Err(ApiError::bad_request(format!(
                "id: `{id}` does not match the id in the URL (`{path}`)"
            )));
        }
        (Some(Json_::String(id)), _) => id.clone(),
        (Some(_), _) => return Err(ApiError::bad_request("id: must be a string")),
    };
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(ApiError::bad_request(
            "id: use 1 to 64 letters, digits, `-`, `_` or `.`",
        ));
    }
    let enabled = match obj.get("enabled") {
        None | Some(Json_::Null) => true,
        Some(Json_::Bool(b)) => *b,
        Some(_) => return Err(ApiError::bad_request("enabled: must be true or false")),
    };
    if let Some(retry) = obj.get("retry") {
        retry_policy_of(retry)?;
    }
    obj.insert("id".into(), json!(id));
    obj.insert("enabled".into(), json!(enabled));
    let now = now_ms();
    Ok((
        IntegrationRecord {
            id,
            type_id,
            enabled,
            config: Json_::Null,
            created_at_ms: now,
            updated_at_ms: now,
        },
        config,
    ))
}

/// An integration's own `retry` policy (same keys as the host's `[retry]`).
pub fn retry_policy_of(value: &Json_) -> Result<crate::pipeline::RetryPolicy, ApiError> {
    let policy: crate::pipeline::RetryPolicy = serde_json::from_value(value.clone())
        .map_err(|e| ApiError::bad_request(format!("retry: {e}")))?;
    policy
        .check()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(policy)
}

fn check_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(ApiError::bad_request(format!(
            "id: `{id}` is not usable; use 1 to 64 letters, digits, `-`, `_` or `.`"
        )));
    }
    Ok(())
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

pub use crate::now_ms;

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // The OS generator does not fail on supported platforms; zeros would still be a valid id.
    let _ = getrandom::fill(&mut buf);
    hex::encode(buf)
}
