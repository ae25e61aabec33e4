//! Requests to the contacts v3 API and how its answers are classified.

use std::collections::BTreeMap;

use prefsync_sdk::http::{encode_component, failure_from_response};
use prefsync_sdk::mapping::mapped_json;
use prefsync_sdk::{
    ConsentRecord, Context, DeliveredKind, Method, Outcome, Request, Response, RowFailure,
    RowOutcome, SyncBatch, SyncMode, SyncRow, ValidationProblem, Value,
};
use serde_json::json;

use crate::config::DotdigitalConfig;

/// Dotdigital asks clients to allow long timeouts.
const REQUEST_TIMEOUT_MS: u32 = 121_000;

pub fn deliver(ctx: &Context<'_>, config: &DotdigitalConfig, record: &ConsentRecord) -> Outcome {
    let identifier = config.identifier();
    let contact_url = format!(
        "{}/contacts/v3/{identifier}/{}",
        config.base_url(),
        encode_component(&record.key)
    );

    if !config.upsert_mode {
        let lookup = request(config, Method::Get, &contact_url);
        match ctx.send(lookup) {
            Err(e) => return e.into_outcome("Dotdigital contact lookup"),
            Ok(r) if r.status == 404 => {
                ctx.debug("contact not found; upsert_mode is off", &[]);
                return Outcome::Skipped("contact not found".into());
            }
            Ok(r) if !(200..300).contains(&r.status) => {
                return failure_from_response(&r, &error_detail(&r));
            }
            Ok(_) => {}
        }
    }

    let body = json!({
        "identifiers": { identifier: record.key },
        "dataFields": mapped_json(&config.mappings, record),
    });
    let upsert = request(
        config,
        Method::Patch,
        &format!("{contact_url}?merge-option=overwrite"),
    )
    .json(&body);
    match ctx.send(upsert) {
        Err(e) => e.into_outcome("Dotdigital upsert"),
        Ok(r) if r.status == 201 => Outcome::Delivered(DeliveredKind::Created),
        Ok(r) if (200..300).contains(&r.status) => Outcome::Delivered(DeliveredKind::Updated),
        Ok(r) => failure_from_response(&r, &error_detail(&r)),
    }
}

fn request(config: &DotdigitalConfig, method: Method, url: &str) -> Request {
    Request::new(method, url)
        .basic_auth(
            &config.authentication.username,
            &config.authentication.password,
        )
        .header("Accept", "application/json")
        .timeout_ms(REQUEST_TIMEOUT_MS)
}

/// A v3 error body: `{"errorCode", "description", "details": [{"item", "description"}]}`.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiError {
    error_code: Option<String>,
    description: Option<String>,
    #[serde(default)]
    details: Vec<ErrorDetail>,
}

#[derive(serde::Deserialize)]
struct ErrorDetail {
    item: Option<String>,
}

fn api_error(response: &Response) -> Option<ApiError> {
    response.json::<ApiError>().ok()
}

/// `errorCode (description)` from a v3 error body, or the start of the body.
fn error_detail(response: &Response) -> String {
    match api_error(response) {
        Some(ApiError {
            error_code: Some(code),
            description,
            ..
        }) => match description {
            Some(d) => format!("{code} ({d})"),
            None => code,
        },
        _ => response.text_snippet(200),
    }
}

// ---------------------------------------------------------------------------
// Connection check
// ---------------------------------------------------------------------------

/// The connection check: `GET /v2/data-fields`, a read that writes nothing,
/// authenticated like every call, and naming the account's data fields so
/// that the mapped ones are checked in the same call. 2xx: accepted, but
/// every mapping whose `id` is not one of the account's data fields (names
/// matched without regard to case) is a problem at `mappings[i].id`. 401
/// (bad API user or password): a problem at `authentication.password`; 403
/// (the documented answer of the wrong region): a problem at
/// `authentication.url`. 429 and 5xx: the check could not be made.
pub fn check_connection(
    ctx: &Context<'_>,
    config: &DotdigitalConfig,
) -> Result<Vec<ValidationProblem>, String> {
    use prefsync_sdk::connection::{unreachable, verdict};
    #[derive(serde::Deserialize)]
    struct DataField {
        name: String,
    }
    let problem = |path: &str, message: String| ValidationProblem {
        path: path.to_string(),
        message,
    };
    let url = format!("{}/v2/data-fields", config.base_url());
    let response = match ctx.send(request(config, Method::Get, &url)) {
        Ok(response) => response,
        Err(error) => return unreachable(&error),
    };
    match response.status {
        401 => {
            return Ok(vec![problem(
                "authentication.password",
                "Dotdigital refused the API user and password (HTTP 401)".into(),
            )]);
        }
        403 => {
            return Ok(vec![problem(
                "authentication.url",
                "Dotdigital refused the API user at this endpoint (HTTP 403): is it the account's region?"
                    .into(),
            )]);
        }
        200..=299 => {}
        _ => return verdict(&response, "authentication.password"),
    }
    let Ok(fields) = response.json::<Vec<DataField>>() else {
        return Ok(vec![problem(
            "authentication.url",
            "the endpoint did not answer as Dotdigital's API does (no data-field list)".into(),
        )]);
    };
    Ok(config
        .mappings
        .iter()
        .enumerate()
        .filter(|(_, m)| {
            !fields
                .iter()
                .any(|f| f.name.eq_ignore_ascii_case(m.id.trim()))
        })
        .map(|(i, m)| {
            problem(
                &format!("mappings[{i}].id"),
                format!("the Dotdigital account has no data field `{}`", m.id.trim()),
            )
        })
        .collect())
}

// ---------------------------------------------------------------------------
// Activations: model rows as contacts' data fields
// ---------------------------------------------------------------------------

/// Rows per `sync` call: every row is one or two requests.
pub const MAX_ROWS: u32 = 100;

/// What one row's requests came to.
enum RowResult {
    Done(RowOutcome),
    /// The request as a whole was refused (credentials, region, outage):
    /// every row would get the same answer.
    Wholesale(RowFailure),
}

/// Writes model rows: attributes are data fields, the key field is the
/// contact identifier (`email`, or `mobileNumber`). Upsert is the v3
/// `PATCH …?merge-option=overwrite`; insert is `POST /contacts/v3`, whose
/// 409 `contacts:idAlreadyExists` leaves the contact alone (skipped);
/// update looks the contact up first (`GET`, 404 → skipped) and never
/// creates one.
pub fn sync(
    ctx: &Context<'_>,
    config: &DotdigitalConfig,
    batch: &SyncBatch,
) -> Result<Vec<RowOutcome>, RowFailure> {
    let Some(identifier) = ROW_IDENTIFIERS
        .iter()
        .find(|id| id.eq_ignore_ascii_case(&batch.key_field))
        .copied()
    else {
        return Err(RowFailure::permanent(format!(
            "Dotdigital matches contacts on `email` or `mobileNumber`, not `{}`",
            batch.key_field
        )));
    };
    let mut fields = data_fields(ctx, config, false)?;
    // A field the cached list lacks may be new in the account: ask again once.
    if batch
        .rows
        .iter()
        .flat_map(SyncRow::attribute_names)
        .any(|name| !name.eq_ignore_ascii_case(identifier) && field_type(&fields, name).is_none())
    {
        fields = data_fields(ctx, config, true)?;
    }
    let mut outcomes = Vec::with_capacity(batch.rows.len());
    for (i, row) in batch.rows.iter().enumerate() {
        let ctx = ctx.for_record(&row.key);
        match sync_row(&ctx, config, &fields, identifier, batch.mode, row) {
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

/// Identifiers a model row can be matched on (a `contactId` cannot create).
const ROW_IDENTIFIERS: [&str; 2] = ["email", "mobileNumber"];

/// The account's data fields: name → type (`String`, `Numeric`, `Date`,
/// `Boolean`), from `GET /v2/data-fields`, kept 5 minutes in the cache.
fn data_fields(
    ctx: &Context<'_>,
    config: &DotdigitalConfig,
    fresh: bool,
) -> Result<BTreeMap<String, String>, RowFailure> {
    const KEY: &str = "dotdigital:data-fields";
    if !fresh
        && let Some(cached) = ctx.cache_get(KEY)
        && let Ok(fields) = serde_json::from_str(&cached)
    {
        return Ok(fields);
    }
    #[derive(serde::Deserialize)]
    struct DataField {
        name: String,
        #[serde(rename = "type")]
        kind: String,
    }
    let url = format!("{}/v2/data-fields", config.base_url());
    let response = ctx
        .send(request(config, Method::Get, &url))
        .map_err(|e| RowFailure::from_http(&e, "Dotdigital data fields"))?;
    if !(200..300).contains(&response.status) {
        return Err(match classify_row(&response) {
            RowResult::Wholesale(failure) => failure,
            RowResult::Done(_) => RowFailure::from_response(&response, &error_detail(&response)),
        });
    }
    let list: Vec<DataField> = response.json().map_err(|e| {
        RowFailure::retryable(format!("Dotdigital data fields: unreadable answer ({e})"))
    })?;
    let fields: BTreeMap<String, String> = list.into_iter().map(|f| (f.name, f.kind)).collect();
    if let Ok(text) = serde_json::to_string(&fields) {
        ctx.cache_set(KEY, &text, 300);
    }
    Ok(fields)
}

/// The account's name and type of data field `name` (names are matched
/// without regard to case, as Dotdigital stores them upper case).
fn field_type<'a>(fields: &'a BTreeMap<String, String>, name: &str) -> Option<(&'a str, &'a str)> {
    fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(n, t)| (n.as_str(), t.as_str()))
}

/// A model value as the data field's type takes it: models read from text
/// (CSV) carry `"41"` for a number, so text that reads as the field's type
/// is converted; anything else is sent as it is (Dotdigital refuses it).
pub fn data_field_value(kind: &str, value: &Value) -> serde_json::Value {
    match (kind, value) {
        ("Numeric", Value::Text(t)) => match t.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => Value::Number(n).to_json(),
            _ => value.to_json(),
        },
        ("Boolean", Value::Text(t)) => match t.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => serde_json::Value::Bool(true),
            "false" | "0" | "no" => serde_json::Value::Bool(false),
            _ => value.to_json(),
        },
        ("Boolean", Value::Number(n)) if *n == 0.0 || *n == 1.0 => {
            serde_json::Value::Bool(*n == 1.0)
        }
        ("String", Value::Number(_) | Value::Boolean(_)) => value
            .to_text()
            .map(serde_json::Value::String)
            .unwrap_or(serde_json::Value::Null),
        _ => value.to_json(),
    }
}

fn sync_row(
    ctx: &Context<'_>,
    config: &DotdigitalConfig,
    fields: &BTreeMap<String, String>,
    identifier: &str,
    mode: SyncMode,
    row: &SyncRow,
) -> RowResult {
    let contact_url = format!(
        "{}/contacts/v3/{identifier}/{}",
        config.base_url(),
        encode_component(&row.key)
    );
    let mut data_fields = serde_json::Map::new();
    for attribute in &row.attributes {
        if attribute.name.eq_ignore_ascii_case(identifier) {
            continue;
        }
        let Some((name, kind)) = field_type(fields, &attribute.name) else {
            return RowResult::Done(RowOutcome::Failed(
                RowFailure::permanent(format!(
                    "data field `{}` does not exist in the Dotdigital account",
                    attribute.name
                ))
                .with_field(attribute.name.clone()),
            ));
        };
        data_fields.insert(name.to_string(), data_field_value(kind, &attribute.value));
    }
    let body = json!({"identifiers": {identifier: row.key}, "dataFields": data_fields});
    let request = match mode {
        SyncMode::Upsert => request(
            config,
            Method::Patch,
            &format!("{contact_url}?merge-option=overwrite"),
        ),
        SyncMode::Insert => request(
            config,
            Method::Post,
            &format!("{}/contacts/v3", config.base_url()),
        ),
        SyncMode::Update => {
            match ctx.send(request(config, Method::Get, &contact_url)) {
                Err(e) => {
                    return RowResult::Wholesale(RowFailure::from_http(
                        &e,
                        "Dotdigital contact lookup",
                    ));
                }
                Ok(r) if r.status == 404 => {
                    return RowResult::Done(RowOutcome::Skipped("not in Dotdigital".into()));
                }
                Ok(r) if !(200..300).contains(&r.status) => return classify_row(&r),
                Ok(_) => {}
            }
            request(
                config,
                Method::Patch,
                &format!("{contact_url}?merge-option=overwrite"),
            )
        }
    };
    match ctx.send(request.json(&body)) {
        Err(e) => RowResult::Wholesale(RowFailure::from_http(&e, "Dotdigital contact write")),
        Ok(r) if r.status == 201 => RowResult::Done(RowOutcome::Inserted),
        Ok(r) if (200..300).contains(&r.status) => RowResult::Done(RowOutcome::Updated),
        Ok(r) if r.status == 409 && mode == SyncMode::Insert => {
            RowResult::Done(RowOutcome::Skipped("already in Dotdigital".into()))
        }
        Ok(r) => classify_row(&r),
    }
}

/// A refusal: the row's own (a data field the account lacks, a value of
/// the wrong type, an invalid identifier: permanent, naming the field) or
/// the request's (credentials, region, rate limit, outage).
fn classify_row(response: &Response) -> RowResult {
    let detail = error_detail(response);
    if response.status == 400 {
        let field = api_error(response).and_then(|e| {
            let code = e.error_code.unwrap_or_default();
            let code = code.to_ascii_lowercase();
            (code.contains("datafield") || code.contains("identifier"))
                .then(|| e.details.into_iter().find_map(|d| d.item))
                .flatten()
                .filter(|item| !item.is_empty())
        });
        return RowResult::Done(RowOutcome::Failed(RowFailure {
            retryable: false,
            field,
            message: format!("HTTP 400: {detail}"),
        }));
    }
    let detail = match response.status {
        401 => format!("credentials refused ({detail})"),
        403 => format!(
            "access refused, or the wrong regional endpoint in authentication.url ({detail})"
        ),
        _ => detail,
    };
    let failure = RowFailure::from_response(response, &detail);
    if failure.retryable || matches!(response.status, 401 | 403) {
        RowResult::Wholesale(failure)
    } else {
        RowResult::Done(RowOutcome::Failed(failure))
    }
}

#[cfg(test)]
mod tests {
    use prefsync_sdk::testing::MockHost;
    use prefsync_sdk::{Connector, HttpError, Value, connector};

    use super::*;
    use crate::Dotdigital;

    fn config(upsert: bool) -> String {
        json!({
            "type_id": "dotdigital",
            "authentication": {"url": "https://r1-api.dotdigital.com/", "username": "apiuser-1@apiconnector.com", "password": "s3cret"},
            "properties": {},
            "mappings": [{"id": "NEWSLETTER", "value": "consents_purposes_newsletter_enabled"}],
            "upsert_mode": upsert
        })
        .to_string()
    }

    fn record() -> ConsentRecord {
        ConsentRecord::new(
            "organization_user_id",
            "ann+1@example.com",
            &[
                (
                    "organization_user_id",
                    Value::Text("ann+1@example.com".into()),
                ),
                ("consents_purposes_newsletter_enabled", Value::Boolean(true)),
            ],
        )
    }

    fn run(host: &MockHost, upsert: bool) -> Outcome {
        connector::deliver::<Dotdigital>(host, &config(upsert), &[record()]).remove(0)
    }

    #[test]
    fn upsert_sends_mapped_data_fields() {
        let host = MockHost::new();
        host.respond(201, &[], r#"{"contactId": 1}"#);
        assert_eq!(run(&host, true), Outcome::Delivered(DeliveredKind::Created));
        let req = host.requests.borrow()[0].clone();
        assert_eq!(host.requests.borrow().len(), 1);
        assert_eq!(req.method, Method::Patch);
        assert_eq!(
            req.url,
            "https://r1-api.dotdigital.com/contacts/v3/email/ann%2B1%40example.com?merge-option=overwrite"
        );
        let body: serde_json::Value = serde_json::from_slice(req.body.as_ref().unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"identifiers": {"email": "ann+1@example.com"}, "dataFields": {"NEWSLETTER": true}})
        );
        host.respond(200, &[], "{}");
        assert_eq!(run(&host, true), Outcome::Delivered(DeliveredKind::Updated));
    }

    #[test]
    fn without_upsert_an_unknown_contact_is_skipped_and_not_created() {
        let host = MockHost::new();
        host.respond(
            404,
            &[],
            r#"{"errorCode":"contacts:contactNotFound","description":"no"}"#,
        );
        assert_eq!(
            run(&host, false),
            Outcome::Skipped("contact not found".into())
        );
        assert_eq!(host.requests.borrow().len(), 1);
        assert_eq!(host.requests.borrow()[0].method, Method::Get);

        host.respond(200, &[], "{}").respond(200, &[], "{}");
        assert_eq!(
            run(&host, false),
            Outcome::Delivered(DeliveredKind::Updated)
        );
    }

    #[test]
    fn failures_are_classified() {
        let host = MockHost::new();
        host.respond(
            429,
            &[("Retry-After", "12"), ("X-RateLimit-Limit", "100")],
            "",
        );
        let Outcome::Failed(f) = run(&host, true) else {
            panic!()
        };
        assert!(f.retryable);
        assert_eq!(f.retry_after_ms, Some(12_000));

        host.respond(503, &[], "unavailable");
        let Outcome::Failed(f) = run(&host, true) else {
            panic!()
        };
        assert!(f.retryable);

        host.respond(
            401,
            &[],
            r#"{"errorCode":"authorization:unauthorized","description":"bad credentials"}"#,
        );
        let Outcome::Failed(f) = run(&host, true) else {
            panic!()
        };
        assert!(!f.retryable);
        assert_eq!(
            f.message,
            "HTTP 401: authorization:unauthorized (bad credentials)"
        );

        host.fail(HttpError::Timeout);
        let Outcome::Failed(f) = run(&host, true) else {
            panic!()
        };
        assert!(f.retryable);

        host.fail(HttpError::Denied("host not allowed".into()));
        let Outcome::Failed(f) = run(&host, true) else {
            panic!()
        };
        assert!(!f.retryable);
    }

    #[test]
    fn validation_names_every_field() {
        let problems = connector::validate::<Dotdigital>(
            r#"{"authentication": {"url": "", "username": "u"}, "mappings": [], "upsert_mode": "yes"}"#,
        );
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "authentication.password",
                "authentication.url",
                "mappings",
                "upsert_mode"
            ]
        );
        assert!(connector::validate::<Dotdigital>(&config(true)).is_empty());
        assert_eq!(Dotdigital::describe().type_id, "dotdigital");
    }

    // --- Activations --------------------------------------------------------

    use prefsync_sdk::activation;
    use prefsync_sdk::{RowFailure, RowOutcome, SyncBatch, SyncMode, SyncRow};

    fn rows_batch(mode: SyncMode, rows: Vec<SyncRow>) -> SyncBatch {
        SyncBatch {
            key_field: "email".into(),
            mode,
            rows,
        }
    }

    fn sync_with(host: &MockHost, batch: &SyncBatch) -> Result<Vec<RowOutcome>, RowFailure> {
        activation::sync::<Dotdigital>(host, &config(false), batch)
    }

    const FIELDS: &str = r#"[{"name":"FIRSTNAME","type":"String"},{"name":"AGE","type":"Numeric"},{"name":"OPTIN","type":"Boolean"}]"#;

    /// A host whose first answer is the account's data fields.
    fn fields_host() -> MockHost {
        let host = MockHost::new();
        host.respond(200, &[], FIELDS);
        host
    }

    fn ann(known: bool) -> SyncRow {
        SyncRow::new(
            "ann@example.com",
            &[
                ("FIRSTNAME", Value::Text("Ann".into())),
                ("AGE", Value::Number(41.0)),
            ],
            known,
        )
    }

    #[test]
    fn rows_upsert_insert_and_update_contacts() {
        let host = fields_host();
        host.respond(201, &[], "{}").respond(200, &[], "{}");
        assert_eq!(
            sync_with(
                &host,
                &rows_batch(SyncMode::Upsert, vec![ann(false), ann(true)])
            ),
            Ok(vec![RowOutcome::Inserted, RowOutcome::Updated])
        );
        let requests = host.requests.borrow().clone();
        assert_eq!(
            requests[0].url,
            "https://r1-api.dotdigital.com/v2/data-fields"
        );
        assert_eq!(requests[1].method, Method::Patch);
        assert_eq!(
            requests[1].url,
            "https://r1-api.dotdigital.com/contacts/v3/email/ann%40example.com?merge-option=overwrite"
        );
        let body: serde_json::Value =
            serde_json::from_slice(requests[1].body.as_ref().unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"identifiers": {"email": "ann@example.com"}, "dataFields": {"FIRSTNAME": "Ann", "AGE": 41}})
        );

        // Insert: a create, and a 409 leaves the contact alone.
        let host = fields_host();
        host.respond(201, &[], "{}").respond(
            409,
            &[],
            r#"{"errorCode":"contacts:idAlreadyExists","description":"exists"}"#,
        );
        assert_eq!(
            sync_with(
                &host,
                &rows_batch(SyncMode::Insert, vec![ann(false), ann(false)])
            ),
            Ok(vec![
                RowOutcome::Inserted,
                RowOutcome::Skipped("already in Dotdigital".into())
            ])
        );
        assert_eq!(host.requests.borrow()[1].method, Method::Post);
        assert_eq!(
            host.requests.borrow()[1].url,
            "https://r1-api.dotdigital.com/contacts/v3"
        );

        // Update: looked up first; an unknown contact is skipped, not created.
        let host = fields_host();
        host.respond(404, &[], r#"{"errorCode":"contacts:contactNotFound"}"#)
            .respond(200, &[], "{}")
            .respond(200, &[], "{}");
        assert_eq!(
            sync_with(
                &host,
                &rows_batch(SyncMode::Update, vec![ann(false), ann(true)])
            ),
            Ok(vec![
                RowOutcome::Skipped("not in Dotdigital".into()),
                RowOutcome::Updated
            ])
        );
        let methods: Vec<Method> = host.requests.borrow().iter().map(|r| r.method).collect();
        assert_eq!(
            methods,
            [Method::Get, Method::Get, Method::Get, Method::Patch]
        );
        // The data fields came from the cache the second time.
        let again = sync_with(&host, &rows_batch(SyncMode::Upsert, vec![]));
        assert_eq!(again, Ok(vec![]));
    }

    #[test]
    fn an_unknown_data_field_fails_its_row_naming_the_field() {
        let host = fields_host();
        host.respond(
            400,
            &[],
            r#"{"errorCode":"contacts:dataFieldNotFound","description":"The data field does not exist","details":[{"item":"AGE","description":"The data field does not exist"}]}"#,
        )
        .respond(200, &[], "{}");
        let outcomes = sync_with(
            &host,
            &rows_batch(SyncMode::Upsert, vec![ann(true), ann(true)]),
        )
        .unwrap();
        assert_eq!(
            outcomes[0],
            RowOutcome::Failed(RowFailure {
                retryable: false,
                field: Some("AGE".into()),
                message: "HTTP 400: contacts:dataFieldNotFound (The data field does not exist)"
                    .into()
            })
        );
        assert_eq!(outcomes[1], RowOutcome::Updated);

        // A field the account lacks (after asking again): failed, unsent.
        let host = fields_host();
        host.respond(200, &[], FIELDS).respond(200, &[], "{}");
        let outcomes = sync_with(
            &host,
            &rows_batch(
                SyncMode::Upsert,
                vec![
                    SyncRow::new(
                        "ann@example.com",
                        &[("NICKNAME", Value::Text("A".into()))],
                        true,
                    ),
                    SyncRow::new(
                        "bob@example.com",
                        &[
                            ("age", Value::Text(" 41 ".into())),
                            ("OPTIN", Value::Text("yes".into())),
                            ("FIRSTNAME", Value::Number(7.0)),
                        ],
                        true,
                    ),
                ],
            ),
        )
        .unwrap();
        assert_eq!(
            outcomes[0],
            RowOutcome::Failed(RowFailure {
                retryable: false,
                field: Some("NICKNAME".into()),
                message: "data field `NICKNAME` does not exist in the Dotdigital account".into()
            })
        );
        assert_eq!(outcomes[1], RowOutcome::Updated);
        let requests = host.requests.borrow();
        assert_eq!(requests.len(), 3);
        let body: serde_json::Value =
            serde_json::from_slice(requests[2].body.as_ref().unwrap()).unwrap();
        // Text that reads as the field's type is converted; names as the account has them.
        assert_eq!(
            body["dataFields"],
            json!({"AGE": 41, "OPTIN": true, "FIRSTNAME": "7"})
        );
    }

    #[test]
    fn wholesale_refusals_stop_the_batch() {
        let host = MockHost::new();
        host.respond(401, &[], r#"{"errorCode":"authorization:unauthorized"}"#);
        let err = sync_with(
            &host,
            &rows_batch(SyncMode::Upsert, vec![ann(false), ann(false)]),
        )
        .unwrap_err();
        assert!(!err.retryable);
        assert!(err.message.contains("credentials refused"), "{err:?}");
        assert_eq!(host.requests.borrow().len(), 1);

        let host = fields_host();
        host.respond(200, &[], "{}")
            .respond(429, &[("Retry-After", "3")], "");
        let outcomes = sync_with(
            &host,
            &rows_batch(SyncMode::Upsert, vec![ann(true), ann(true), ann(true)]),
        )
        .unwrap();
        assert_eq!(outcomes[0], RowOutcome::Updated);
        for o in &outcomes[1..] {
            assert!(matches!(o, RowOutcome::Failed(f) if f.retryable), "{o:?}");
        }
        assert_eq!(host.requests.borrow().len(), 3);

        let host = MockHost::new();
        host.fail(HttpError::Timeout);
        assert!(
            sync_with(&host, &rows_batch(SyncMode::Update, vec![ann(true)]))
                .unwrap_err()
                .retryable
        );

        let mut by_id = rows_batch(SyncMode::Upsert, vec![ann(true)]);
        by_id.key_field = "MAIL".into();
        let err = sync_with(&MockHost::new(), &by_id).unwrap_err();
        assert!(!err.retryable && err.message.contains("`MAIL`"), "{err:?}");
        assert_eq!(activation::max_rows::<Dotdigital>(&config(true)), MAX_ROWS);
    }

    // -- connection check --

    const FIELDS_URL: &str = "https://r1-api.dotdigital.com/v2/data-fields";

    fn check(host: &MockHost) -> Result<Vec<ValidationProblem>, String> {
        prefsync_sdk::connection::check::<Dotdigital>(host, &config(true))
    }

    #[test]
    fn connection_check_reads_the_data_fields_with_basic_auth() {
        let host = MockHost::new();
        host.respond_to(
            Method::Get,
            FIELDS_URL,
            200,
            &[],
            r#"[{"name":"FIRSTNAME","type":"String","visibility":"Private","defaultValue":null},{"name":"Newsletter","type":"Boolean","visibility":"Private","defaultValue":null}]"#,
        );
        assert_eq!(check(&host), Ok(Vec::new()));
        let requests = host.requests.borrow();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].method, Method::Get);
        assert!(requests[0].body.is_none());
        // HTTP Basic: base64("apiuser-1@apiconnector.com:s3cret").
        assert!(
            requests[0]
                .headers
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case("authorization")
                    && v == "Basic YXBpdXNlci0xQGFwaWNvbm5lY3Rvci5jb206czNjcmV0"),
            "{:?}",
            requests[0].headers
        );
    }

    #[test]
    fn connection_check_names_a_mapped_field_the_account_lacks() {
        let host = MockHost::new();
        host.respond_to(
            Method::Get,
            FIELDS_URL,
            200,
            &[],
            r#"[{"name":"FIRSTNAME","type":"String"}]"#,
        );
        let problems = check(&host).unwrap();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "mappings[0].id");
        assert!(problems[0].message.contains("NEWSLETTER"), "{problems:?}");
        // A 200 that is not a data-field list: not Dotdigital's API.
        host.respond(200, &[], "<html>welcome</html>");
        assert_eq!(check(&host).unwrap()[0].path, "authentication.url");
    }

    #[test]
    fn connection_check_refusals_are_at_the_password_or_the_region() {
        let host = MockHost::new();
        host.respond(401, &[], r#"{"errorCode":"authorization:unauthorized","description":"Authorization has been denied for this request."}"#);
        let problems = check(&host).unwrap();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "authentication.password");
        assert!(!problems[0].message.contains("s3cret"));
        host.respond(403, &[], r#"{"errorCode":"authorization:forbidden"}"#);
        assert_eq!(check(&host).unwrap()[0].path, "authentication.url");
        host.respond(404, &[], "{}");
        assert_eq!(check(&host).unwrap()[0].path, "");
    }

    #[test]
    fn connection_check_cannot_be_made_on_5xx_429_or_timeout() {
        let host = MockHost::new();
        host.respond(503, &[], r#"{"errorCode":"server:unavailable"}"#);
        assert!(check(&host).is_err());
        host.respond(
            429,
            &[("Retry-After", "5")],
            r#"{"errorCode":"rateLimit:exceeded"}"#,
        );
        assert!(check(&host).is_err());
        host.fail(HttpError::Timeout);
        assert!(check(&host).is_err());
        host.fail(HttpError::Connection("refused".into()));
        assert!(check(&host).is_err());
    }
}
