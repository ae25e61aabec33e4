//! Checking an integration body: the host's fields first (`type_id`, `id`,
//! `enabled`, `retry`), then the connector's JSON Schema and (for a config
//! that fits it) the connector's own `validate` — both in
//! `Connector::validate` — the webhook rules and the URL rule, every
//! problem at once, in path order.

use serde_json::{Value as Json, json};

use crate::runtime::{CheckError, ValidationProblem};

use super::{
    ConnectorLookup, IntegrationError, keep_redacted, retry_policy, url_problems, webhook,
};
use crate::store::IntegrationRecord;

/// Parses and validates an integration body. `path_id` is the id the
/// request's URL names, when it names one; `stored` is the integration a
/// replacement replaces (`None` on create), whose secrets a `"[REDACTED]"`
/// keeps ([`keep_redacted`]).
pub async fn checked(
    connectors: &dyn ConnectorLookup,
    path_id: Option<&str>,
    stored: Option<&IntegrationRecord>,
    body: &[u8],
) -> Result<IntegrationRecord, IntegrationError> {
    let config: Json = serde_json::from_slice(body).map_err(IntegrationError::Syntax)?;
    let (record, mut config) = host_fields(path_id, config)?;
    let Some(connector) = connectors.connector(&record.type_id) else {
        return Err(IntegrationError::Field(format!(
            "type_id: unknown connector type `{}` (loaded: {})",
            record.type_id,
            list_or_none(&connectors.type_ids())
        )));
    };
    keep_redacted(
        &mut config,
        stored,
        &record.type_id,
        &connector.info().config_schema,
    )?;
    let mut problems =
        connector
            .validate(&config)
            .await
            .map_err(|e| IntegrationError::ValidatorFailed {
                type_id: record.type_id.clone(),
                reason: e.to_string(),
            })?;
    problems.extend(webhook::problems(&config, connector.info()));
    // The host's URL rule backs up the connector's: a field the connector
    // already found wrong is named once, with the connector's message.
    let url_problems: Vec<_> = url_problems(&config, &connector.info().config_schema)
        .into_iter()
        .filter(|p| !problems.iter().any(|q| q.path == p.path))
        .collect();
    problems.extend(url_problems);
    // One list in path order, whichever rule found what.
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    if !problems.is_empty() {
        return Err(IntegrationError::problems(
            "invalid integration: ",
            problems,
        ));
    }
    Ok(IntegrationRecord { config, ..record })
}

/// What the destination said of an integration's connection.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectionVerdict {
    /// It accepted every credential and name it was shown.
    Accepted,
    /// It refused these, each at its field's path.
    Refused(Vec<ValidationProblem>),
    /// The connector has no connection check (it does not export
    /// `connection`); nothing was sent.
    Unsupported,
}

/// Checks a valid integration's connection through its connector: the
/// connector reaches the destination with the config, through the same
/// egress policy as deliveries. Only an operator's request calls it.
pub async fn check_connection(
    connectors: &dyn ConnectorLookup,
    record: &IntegrationRecord,
) -> Result<ConnectionVerdict, IntegrationError> {
    let Some(connector) = connectors.connector(&record.type_id) else {
        return Err(IntegrationError::Field(format!(
            "type_id: unknown connector type `{}` (loaded: {})",
            record.type_id,
            list_or_none(&connectors.type_ids())
        )));
    };
    let integration = connector.integration(&record.id, &record.config);
    match connector.check_connection(&integration).await {
        Ok(problems) if problems.is_empty() => Ok(ConnectionVerdict::Accepted),
        Ok(mut problems) => {
            problems.sort_by(|a, b| a.path.cmp(&b.path));
            Ok(ConnectionVerdict::Refused(problems))
        }
        Err(CheckError::Unsupported(_)) => Ok(ConnectionVerdict::Unsupported),
        Err(CheckError::Unreachable(reason)) => Err(IntegrationError::CheckFailed {
            type_id: record.type_id.clone(),
            reason: format!("could not check the connection: {reason}"),
        }),
        Err(CheckError::Call(e)) => Err(IntegrationError::CheckFailed {
            type_id: record.type_id.clone(),
            reason: format!("could not run its connection check: {e}"),
        }),
    }
}

/// The fields the host owns. Returns the record (without config) and the
/// config with `id` and `enabled` filled in.
fn host_fields(
    path_id: Option<&str>,
    mut config: Json,
) -> Result<(IntegrationRecord, Json), IntegrationError> {
    let field = |message: &str| IntegrationError::Field(message.to_string());
    let Some(obj) = config.as_object_mut() else {
        return Err(field("an integration must be a JSON object"));
    };
    let type_id = match obj.get("type_id") {
        Some(Json::String(t)) if !t.trim().is_empty() => t.clone(),
        None | Some(Json::Null) => return Err(field("type_id: is required")),
        Some(_) => return Err(field("type_id: must be a non-empty string")),
    };
    let id = match (obj.get("id"), path_id) {
        (None | Some(Json::Null), Some(path)) => path.to_string(),
        (None | Some(Json::Null), None) => format!("{type_id}-{}", crate::random_hex(4)),
        (Some(Json::String(id)), Some(path)) if id != path => {
            return Err(IntegrationError::Field(format!(
                "id: `{id}` does not match the id in the URL (`{path}`)"
            )));
        }
        (Some(Json::String(id)), _) => id.clone(),
        (Some(_), _) => return Err(field("id: must be a string")),
    };
    crate::ids::check_id(&id)?;
    let enabled = match obj.get("enabled") {
        None | Some(Json::Null) => true,
        Some(Json::Bool(b)) => *b,
        Some(_) => return Err(field("enabled: must be true or false")),
    };
    if let Some(retry) = obj.get("retry") {
        retry_policy(retry)?;
    }
    obj.insert("id".into(), json!(id));
    obj.insert("enabled".into(), json!(enabled));
    let now = crate::now_ms();
    Ok((
        IntegrationRecord {
            id,
            type_id,
            enabled,
            config: Json::Null,
            created_at_ms: now,
            updated_at_ms: now,
        },
        config,
    ))
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}
