//! Activations: model rows become contacts' attributes, one contact per
//! request (Brevo's batch update is update-only and deprecated, its import
//! asynchronous). The batch's key field is the email.
//!
//! Models read from text (CSV) carry `"41"` for a number, so values are
//! converted to the type the account gives each attribute
//! (`GET /v3/contacts/attributes`, kept 5 minutes in the cache).

use std::collections::BTreeMap;

use prefsync_sdk::http::encode_component;
use prefsync_sdk::{
    Context, Method, Request, Response, RowFailure, RowOutcome, SyncBatch, SyncMode, SyncRow, Value,
};
use serde_json::{Map, Value as Json, json};

use crate::api::{self, ApiError};
use crate::config::BrevoConfig;

/// Rows per `sync` call: at Brevo's 10 requests a second, about two seconds
/// of work, far inside the host's per-call time limit.
pub const MAX_ROWS: u32 = 20;

const ATTRIBUTES_CACHE_KEY: &str = "brevo:attributes";
const ATTRIBUTES_TTL_SECONDS: u32 = 300;
const REQUEST_TIMEOUT_MS: u32 = 30_000;

/// What became of a row, or a refusal that would hit every row.
enum RowResult {
    Done(RowOutcome),
    Wholesale(RowFailure),
}

pub fn sync(
    ctx: &Context<'_>,
    config: &BrevoConfig,
    batch: &SyncBatch,
) -> Result<Vec<RowOutcome>, RowFailure> {
    if !batch.key_field.eq_ignore_ascii_case("email") {
        return Err(RowFailure::permanent(format!(
            "Brevo matches contacts on `email`, not `{}`",
            batch.key_field
        )));
    }
    let mut types = attribute_types(ctx, config, false)?;
    // An attribute the cached list lacks may be new in the account: ask again once.
    if batch
        .rows
        .iter()
        .flat_map(SyncRow::attribute_names)
        .any(|name| !is_key(batch, name) && attribute(&types, name).is_none())
    {
        types = attribute_types(ctx, config, true)?;
    }
    let mut outcomes = Vec::with_capacity(batch.rows.len());
    for (i, row) in batch.rows.iter().enumerate() {
        let ctx = ctx.for_record(&row.key);
        match sync_row(&ctx, config, &types, batch, row) {
            RowResult::Done(outcome) => outcomes.push(outcome),
            // Nothing written yet: the batch as a whole was refused.
            RowResult::Wholesale(failure) if i == 0 => return Err(failure),
            // The rows left would get the same answer: not sent.
            RowResult::Wholesale(failure) => {
                outcomes.extend((i..batch.rows.len()).map(|_| RowOutcome::Failed(failure.clone())));
                break;
            }
        }
    }
    Ok(outcomes)
}

fn is_key(batch: &SyncBatch, name: &str) -> bool {
    name.eq_ignore_ascii_case(&batch.key_field)
}

/// The account's attributes: name → type (`text`, `float`, `boolean`,
/// `date`, …).
fn attribute_types(
    ctx: &Context<'_>,
    config: &BrevoConfig,
    fresh: bool,
) -> Result<BTreeMap<String, String>, RowFailure> {
    if !fresh
        && let Some(cached) = ctx.cache_get(ATTRIBUTES_CACHE_KEY)
        && let Ok(types) = serde_json::from_str(&cached)
    {
        return Ok(types);
    }
    #[derive(serde::Deserialize)]
    struct Attributes {
        attributes: Vec<Attribute>,
    }
    #[derive(serde::Deserialize)]
    struct Attribute {
        name: String,
        #[serde(rename = "type", default)]
        kind: Option<String>,
    }
    let response = send(
        ctx,
        config,
        Request::get(format!("{}/v3/contacts/attributes", config.base_url())),
    )
    .map_err(|e| RowFailure::from_http(&e, "Brevo attributes"))?;
    if !(200..300).contains(&response.status) {
        return Err(batch_failure(&response));
    }
    let list: Attributes = response
        .json()
        .map_err(|e| RowFailure::retryable(format!("Brevo attributes: unreadable answer ({e})")))?;
    let types: BTreeMap<String, String> = list
        .attributes
        .into_iter()
        .map(|a| (a.name, a.kind.unwrap_or_else(|| "text".into())))
        .collect();
    if let Ok(text) = serde_json::to_string(&types) {
        ctx.cache_set(ATTRIBUTES_CACHE_KEY, &text, ATTRIBUTES_TTL_SECONDS);
    }
    Ok(types)
}

/// The account's name and type of attribute `name` (matched without regard
/// to case: Brevo's names are upper case, a model's columns may not be).
fn attribute<'a>(types: &'a BTreeMap<String, String>, name: &str) -> Option<(&'a str, &'a str)> {
    types
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(n, t)| (n.as_str(), t.as_str()))
}

/// A model value as an attribute of type `kind` takes it; text that does
/// not read as the type is sent as it is (Brevo refuses it, naming the row).
pub fn attribute_value(kind: &str, value: &Value) -> Json {
    match (kind, value) {
        ("float" | "number", Value::Text(t)) => match t.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => Value::Number(n).to_json(),
            _ => value.to_json(),
        },
        ("boolean", Value::Text(t)) => match t.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Json::Bool(true),
            "false" | "0" | "no" => Json::Bool(false),
            _ => value.to_json(),
        },
        ("boolean", Value::Number(n)) if *n == 0.0 || *n == 1.0 => Json::Bool(*n == 1.0),
        ("text" | "date", Value::Number(_) | Value::Boolean(_)) => {
            value.to_text().map(Json::String).unwrap_or(Json::Null)
        }
        _ => value.to_json(),
    }
}

fn sync_row(
    ctx: &Context<'_>,
    config: &BrevoConfig,
    types: &BTreeMap<String, String>,
    batch: &SyncBatch,
    row: &SyncRow,
) -> RowResult {
    if !row.key.contains('@') {
        return RowResult::Done(RowOutcome::Failed(
            RowFailure::permanent("not an email address: Brevo identifies contacts by email")
                .with_field(batch.key_field.clone()),
        ));
    }
    let mut attributes = Map::new();
    for property in &row.attributes {
        if is_key(batch, &property.name) {
            continue;
        }
        let Some((name, kind)) = attribute(types, &property.name) else {
            return RowResult::Done(RowOutcome::Failed(
                RowFailure::permanent(format!(
                    "attribute `{}` does not exist in the Brevo account",
                    property.name
                ))
                .with_field(property.name.clone()),
            ));
        };
        attributes.insert(name.to_string(), attribute_value(kind, &property.value));
    }
    let base = config.base_url();
    let request = match batch.mode {
        SyncMode::Upsert | SyncMode::Insert => {
            let mut body = json!({"email": row.key, "attributes": attributes});
            if batch.mode == SyncMode::Upsert {
                body["updateEnabled"] = json!(true);
            }
            Request::new(Method::Post, format!("{base}/v3/contacts")).json(&body)
        }
        SyncMode::Update => Request::new(
            Method::Put,
            format!(
                "{base}/v3/contacts/{}?identifierType=email_id",
                encode_component(&row.key)
            ),
        )
        .json(&json!({"attributes": attributes})),
    };
    let response = match send(ctx, config, request) {
        Ok(response) => response,
        Err(e) => return RowResult::Wholesale(RowFailure::from_http(&e, "Brevo contact write")),
    };
    let code = response.json::<ApiError>().ok().and_then(|e| e.code);
    match response.status {
        201 => RowResult::Done(RowOutcome::Inserted),
        200..=299 => RowResult::Done(RowOutcome::Updated),
        400 if batch.mode == SyncMode::Insert && code.as_deref() == Some("duplicate_parameter") => {
            RowResult::Done(RowOutcome::Skipped("already in Brevo".into()))
        }
        404 if batch.mode == SyncMode::Update
            && matches!(code.as_deref(), None | Some("document_not_found")) =>
        {
            RowResult::Done(RowOutcome::Skipped("not in Brevo".into()))
        }
        // The row's own refusal (a value of the wrong type, a bad email):
        // blamed on the attribute Brevo names, when it names one of the row's.
        400 => {
            let detail = api::error_detail(&response);
            let field = attributes
                .keys()
                .find(|name| detail.contains(name.as_str()))
                .cloned();
            let failure = RowFailure::from_response(&response, &detail);
            RowResult::Done(RowOutcome::Failed(match field {
                Some(field) => failure.with_field(field),
                None => failure,
            }))
        }
        _ => RowResult::Wholesale(batch_failure(&response)),
    }
}

/// A refusal of the request rather than the row (credentials, credit,
/// rate limit, outage), classified as deliveries are.
fn batch_failure(response: &Response) -> RowFailure {
    match api::failure(response) {
        prefsync_sdk::Outcome::Failed(f) => RowFailure {
            retryable: f.retryable,
            field: None,
            message: f.message,
        },
        _ => RowFailure::from_response(response, &api::error_detail(response)),
    }
}

fn send(
    ctx: &Context<'_>,
    config: &BrevoConfig,
    request: Request,
) -> Result<Response, prefsync_sdk::HttpError> {
    ctx.send(
        request
            .header("api-key", config.authentication.api_key.clone())
            .timeout_ms(REQUEST_TIMEOUT_MS),
    )
}

#[cfg(test)]
mod tests {
    use prefsync_sdk::activation::sync;
    use prefsync_sdk::testing::MockHost;

    use super::*;
    use crate::Brevo;

    const ATTRIBUTES: &str = r#"{"attributes": [
        {"name": "FIRSTNAME", "category": "normal", "type": "text"},
        {"name": "AGE", "category": "normal", "type": "float"},
        {"name": "VIP", "category": "normal", "type": "boolean"}]}"#;

    fn config() -> String {
        json!({
            "type_id": "brevo",
            "authentication": {"api_key": "xkeysib-1"},
            "mappings": [{"id": "FIRSTNAME", "value": "metadata_firstname"}]
        })
        .to_string()
    }

    fn batch(mode: SyncMode, rows: Vec<SyncRow>) -> SyncBatch {
        SyncBatch {
            key_field: "email".into(),
            mode,
            rows,
        }
    }

    fn body(host: &MockHost, index: usize) -> Json {
        serde_json::from_slice(host.requests.borrow()[index].body.as_ref().unwrap()).unwrap()
    }

    #[test]
    fn rows_are_upserted_with_values_of_the_attributes_types() {
        let host = MockHost::new();
        host.respond(200, &[], ATTRIBUTES)
            .respond(201, &[], r#"{"id": 1}"#)
            .respond(204, &[], "");
        let rows = vec![
            SyncRow::new(
                "ann@example.com",
                &[
                    ("email", Value::Text("ann@example.com".into())),
                    ("firstname", Value::Text("Ann".into())),
                    ("AGE", Value::Text("41".into())),
                    ("VIP", Value::Text("yes".into())),
                ],
                false,
            ),
            SyncRow::new("bob@example.com", &[("AGE", Value::Number(7.0))], true),
        ];
        let outcomes = sync::<Brevo>(&host, &config(), &batch(SyncMode::Upsert, rows)).unwrap();
        assert_eq!(outcomes, [RowOutcome::Inserted, RowOutcome::Updated]);
        assert_eq!(
            host.requests.borrow()[0].url,
            "https://api.brevo.com/v3/contacts/attributes"
        );
        assert_eq!(
            body(&host, 1),
            json!({"email": "ann@example.com", "updateEnabled": true,
                   "attributes": {"FIRSTNAME": "Ann", "AGE": 41, "VIP": true}})
        );
        // Only the changed attribute of a known row.
        assert_eq!(
            body(&host, 2),
            json!({"email": "bob@example.com", "updateEnabled": true, "attributes": {"AGE": 7}})
        );
    }

    #[test]
    fn insert_and_update_modes_skip_what_they_must_not_touch() {
        let host = MockHost::new();
        host.respond(200, &[], ATTRIBUTES).respond(
            400,
            &[],
            r#"{"code": "duplicate_parameter", "message": "Contact already exist"}"#,
        );
        let row = || SyncRow::new("ann@example.com", &[("AGE", Value::Number(1.0))], false);
        assert_eq!(
            sync::<Brevo>(&host, &config(), &batch(SyncMode::Insert, vec![row()])).unwrap(),
            [RowOutcome::Skipped("already in Brevo".into())]
        );
        assert!(body(&host, 1).get("updateEnabled").is_none());
        // The attribute list is cached.
        host.respond(
            404,
            &[],
            r#"{"code": "document_not_found", "message": "Contact does not exist"}"#,
        );
        assert_eq!(
            sync::<Brevo>(&host, &config(), &batch(SyncMode::Update, vec![row()])).unwrap(),
            [RowOutcome::Skipped("not in Brevo".into())]
        );
        let requests = host.requests.borrow().clone();
        assert_eq!(requests.len(), 3);
        assert_eq!(requests[2].method, Method::Put);
        assert_eq!(
            requests[2].url,
            "https://api.brevo.com/v3/contacts/ann%40example.com?identifierType=email_id"
        );
    }

    #[test]
    fn a_rows_refusal_names_its_field_and_a_later_outage_fails_the_rest() {
        let host = MockHost::new();
        // NICKNAME is unknown: the list is fetched again once, still without it.
        host.respond(200, &[], ATTRIBUTES)
            .respond(200, &[], ATTRIBUTES)
            .respond(
                400,
                &[],
                r#"{"code": "invalid_parameter", "message": "Invalid value for attribute AGE"}"#,
            )
            .respond(201, &[], r#"{"id": 2}"#)
            .respond(429, &[("x-sib-ratelimit-reset", "1")], "");
        let rows = vec![
            SyncRow::new(
                "a@example.com",
                &[("AGE", Value::Text("old".into()))],
                false,
            ),
            SyncRow::new(
                "b@example.com",
                &[("NICKNAME", Value::Text("b".into()))],
                false,
            ),
            SyncRow::new("not-an-email", &[("AGE", Value::Number(3.0))], false),
            SyncRow::new("c@example.com", &[("AGE", Value::Number(3.0))], false),
            SyncRow::new("d@example.com", &[("AGE", Value::Number(4.0))], false),
            SyncRow::new("e@example.com", &[("AGE", Value::Number(5.0))], false),
        ];
        let outcomes = sync::<Brevo>(&host, &config(), &batch(SyncMode::Upsert, rows)).unwrap();
        assert_eq!(
            host.requests.borrow().len(),
            5,
            "e@ is not sent after the 429"
        );
        let rate_limited = RowFailure {
            retryable: true,
            field: None,
            message: "HTTP 429".into(),
        };
        assert_eq!(
            outcomes,
            [
                RowOutcome::Failed(RowFailure {
                    retryable: false,
                    field: Some("AGE".into()),
                    message: "HTTP 400: invalid_parameter: Invalid value for attribute AGE".into()
                }),
                RowOutcome::Failed(
                    RowFailure::permanent(
                        "attribute `NICKNAME` does not exist in the Brevo account"
                    )
                    .with_field("NICKNAME")
                ),
                RowOutcome::Failed(
                    RowFailure::permanent(
                        "not an email address: Brevo identifies contacts by email"
                    )
                    .with_field("email")
                ),
                RowOutcome::Inserted,
                RowOutcome::Failed(rate_limited.clone()),
                RowOutcome::Failed(rate_limited),
            ]
        );

        // Refused credentials before anything is written: the batch is refused.
        let refused = MockHost::new();
        refused.respond(
            401,
            &[],
            r#"{"code": "unauthorized", "message": "Key not found"}"#,
        );
        let err = sync::<Brevo>(
            &refused,
            &config(),
            &batch(
                SyncMode::Upsert,
                vec![SyncRow::new("a@example.com", &[], false)],
            ),
        )
        .unwrap_err();
        assert!(!err.retryable);
        assert!(err.message.contains("Brevo refused the API key"), "{err:?}");
        let wrong_key = sync::<Brevo>(
            &MockHost::new(),
            &config(),
            &SyncBatch {
                key_field: "id".into(),
                mode: SyncMode::Upsert,
                rows: vec![SyncRow::new("1", &[], false)],
            },
        )
        .unwrap_err();
        assert_eq!(
            wrong_key.message,
            "Brevo matches contacts on `email`, not `id`"
        );
    }
}
