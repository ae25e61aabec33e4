//! `/v1/integrations`: integrations in the seed's JSON shape, validated by
//! their connector before they are stored; secrets never come back out.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value as Json_, json};

use super::error::ApiError;
use super::json_body::JsonBody;
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
    Ok(Json(Json_::Array(
        all.iter().map(|r| present(&app.connectors, r)).collect(),
    )))
}

async fn show(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Json_>, ApiError> {
    match app.store.integration(&id).await? {
        Some(record) => Ok(Json(present(&app.connectors, &record))),
        None => Err(ApiError::not_found(format!("no integration `{id}`"))),
    }
}

async fn create(
    State(app): State<Arc<App>>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Json_>), ApiError> {
    let record = checked(&app.connectors, None, &body).await?;
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
    Ok((StatusCode::CREATED, Json(present(&app.connectors, &record))))
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
    let record = checked(&app.connectors, Some(&id), &body).await?;
    app.store.put_integration(&record).await?;
    let stored = app.store.integration(&id).await?.unwrap_or(record);
    Ok(Json(present(&app.connectors, &stored)))
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
            crate::ids::check_id(&stem)
                .map_err(|e| anyhow::anyhow!("{}: id (from the file name) {e}", path.display()))?;
            record.id = stem;
            record.config["id"] = json!(record.id);
        }
        store.put_integration(&record).await?;
        tracing::info!(id = %record.id, file = %path.display(), "integration loaded from file");
    }
    Ok(paths.len())
}

/// The integration as shown: its JSON with secrets redacted, plus timestamps.
/// The connector's schema (when loaded) marks secret fields `writeOnly`.
pub fn present(connectors: &crate::serve::Registry, record: &IntegrationRecord) -> Json_ {
    let schema = connectors
        .get(&record.type_id)
        .map(|c| c.info().config_schema.clone())
        .unwrap_or(Json_::Null);
    let mut shown = redact_config(&record.config, &schema);
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
    // The host's URL rule backs up the connector's: a field the connector
    // already found wrong is named once, with the connector's message.
    let url_problems: Vec<_> = url_problems(&config, &connector.info().config_schema)
        .into_iter()
        .filter(|p| !problems.iter().any(|q| q.path == p.path))
        .collect();
    problems.extend(url_problems);
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
        (None | Some(Json_::Null), None) => format!("{type_id}-{}", crate::random_hex(4)),
        (Some(Json_::String(id)), Some(path)) if id != path => {
            return Err(ApiError::bad_request(format!(
                "id: `{id}` does not match the id in the URL (`{path}`)"
            )));
        }
        (Some(Json_::String(id)), _) => id.clone(),
        (Some(_), _) => return Err(ApiError::bad_request("id: must be a string")),
    };
    crate::ids::check_id(&id)?;
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
    let now = crate::now_ms();
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

/// An integration's own `retry` policy (same keys and ranges as the host's
/// `[retry]`); every field that is wrong is named as `retry.<field>`.
pub fn retry_policy_of(value: &Json_) -> Result<crate::pipeline::RetryPolicy, ApiError> {
    let refused = |problems: Vec<(String, String)>| {
        let summary: Vec<String> = problems.iter().map(|(p, m)| format!("{p}: {m}")).collect();
        let listed: Vec<Json_> = problems
            .iter()
            .map(|(path, message)| json!({"path": path, "message": message}))
            .collect();
        ApiError::bad_request(summary.join("; ")).with_details(json!({"problems": listed}))
    };
    let policy: crate::pipeline::RetryPolicy = match serde_json::from_value(value.clone()) {
        Ok(policy) => policy,
        // serde names neither the field nor its place; try each key alone.
        Err(whole) => {
            let Some(fields) = value.as_object() else {
                return Err(refused(vec![(
                    "retry".into(),
                    "must be an object with max_retries, initial_backoff_ms, multiplier, max_backoff_ms, jitter or max_retry_after_ms".into(),
                )]));
            };
            let problems: Vec<(String, String)> = fields
                .iter()
                .filter_map(|(key, field)| {
                    let alone = Json_::Object([(key.clone(), field.clone())].into_iter().collect());
                    serde_json::from_value::<crate::pipeline::RetryPolicy>(alone)
                        .err()
                        .map(|e| (format!("retry.{key}"), field_error(&e)))
                })
                .collect();
            return Err(refused(if problems.is_empty() {
                vec![("retry".into(), field_error(&whole))]
            } else {
                problems
            }));
        }
    };
    let problems = policy.problems();
    if !problems.is_empty() {
        return Err(refused(
            problems
                .into_iter()
                .map(|p| (format!("retry.{}", p.field), p.message))
                .collect(),
        ));
    }
    Ok(policy)
}

/// serde's complaint about one value, without its position suffix.
fn field_error(error: &serde_json::Error) -> String {
    crate::consent::event::json_error_message(error)
}

/// Every config field the connector's schema marks `"format": "uri"` must
/// be an `http`/`https` URL with a host and no user name or password: the
/// host sends to it, and its host joins the egress allowlist. A value
/// without `://` is a bare host meaning `https://` (the seed's shape, read
/// so by the connectors and the allowlist alike). The messages never repeat
/// the value (it may hold a password).
pub fn url_problems(config: &Json_, schema: &Json_) -> Vec<crate::runtime::ValidationProblem> {
    crate::egress::uri_fields(schema, config)
        .into_iter()
        .filter_map(|(path, raw)| {
            config_url_problem(raw).map(|message| crate::runtime::ValidationProblem {
                path,
                message: message.to_string(),
            })
        })
        .collect()
}

/// Why `raw` is not a usable URL in a config, if it is not.
pub fn config_url_problem(raw: &str) -> Option<&'static str> {
    const EXPECTED: &str = "must be an http:// or https:// URL (or a bare host, meaning https)";
    let raw = raw.trim();
    let parsed = if raw.contains("://") {
        url::Url::parse(raw)
    } else {
        url::Url::parse(&format!("https://{raw}"))
    };
    let Ok(url) = parsed else {
        return Some(EXPECTED);
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Some(EXPECTED);
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Some("must name a host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Some("must not hold a user name or password; give credentials in their own fields");
    }
    None
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_urls_must_be_plain_http_or_https() {
        for good in [
            "https://r1-api.dotdigital.com",
            "http://127.0.0.1:9",
            "https://[::1]:8443/path?q=1",
            " https://example.com/ ",
            "my-selligent-installation.com",
            "hooks.example.com/consent",
        ] {
            assert_eq!(config_url_problem(good), None, "{good}");
        }
        for bad in [
            "javascript:alert(1)",
            "data:text/html,hi",
            "file:///etc/passwd",
            "ftp://example.com",
            "mailto:someone@example.com",
            "",
            "https://user:Sup3r-Secret@example.com",
            "https://user@example.com",
        ] {
            let problem = config_url_problem(bad);
            assert!(problem.is_some(), "{bad}");
            assert!(!problem.unwrap().contains("Secret"));
        }
    }

    #[test]
    fn url_problems_name_the_field_by_schema() {
        let schema = json!({"properties": {
            "authentication": {"properties": {"url": {"type": "string", "format": "uri"}}},
            "hooks": {"items": {"properties": {"url": {"format": "uri"}}}},
            "name": {"type": "string"}
        }});
        let config = json!({
            "authentication": {"url": "javascript:alert(1)"},
            "hooks": [{"url": "https://ok.example"}, {"url": "https://u:p@x.example"}],
            "name": "javascript:not-a-uri-field"
        });
        let problems: Vec<(String, String)> = url_problems(&config, &schema)
            .into_iter()
            .map(|p| (p.path, p.message))
            .collect();
        let paths: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["authentication.url", "hooks[1].url"]);
        assert!(problems.iter().all(|(_, m)| !m.contains("u:p")));
    }
}
