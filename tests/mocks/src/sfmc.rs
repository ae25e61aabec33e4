//! Mock Salesforce Marketing Cloud (Engagement), answering as its REST API
//! does:
//!
//! - `POST /v2/token` (JSON or form-encoded client credentials, `account_id`
//!   choosing the business unit) gives `{access_token, token_type, expires_in,
//!   scope, soap_instance_url, rest_instance_url}`; a wrong client gets 401
//!   `{"error": "invalid_client", …}`. Tokens expire (and can be made to
//!   expire at once); a call with an unknown or expired token gets 401
//!   `{"message": "Not Authorized", "errorcode": 0, …}`.
//! - `POST /hub/v1/dataevents/key:{key}/rowset` upserts `[{keys, values}]`
//!   rows on the data extension's primary key and answers 200 echoing them.
//!   A row with an unknown column, a value of the wrong type or no primary
//!   key fails the call: 400 `{"message": "Unable to save rows for data
//!   extension ID …", "errorcode": 10006, "additionalErrors": [{"message",
//!   "errorcode"}]}`.
//! - `GET /data/v1/customobjectdata/key/{key}/rowset?$filter={column} eq '{value}'`
//!   answers `{"count", "items": [{"keys", "values"}], …}`.
//! - Faults queued with [`Sfmc::push_faults`] answer the next REST calls: a
//!   5xx, a 429 of errorcode 50100 (`Retry-After` and `retryAfter`) or 50200
//!   (no hint), the transient 400 errorcode 10006 without `additionalErrors`,
//!   or a 401.
//!
//! Unconfirmed by Salesforce's documentation, so configurable or chosen:
//! whether the good rows of a call with a bad row are saved
//! ([`BadRowPolicy`], all-or-nothing by default, as Segment assumes); the
//! exact texts of `additionalErrors`; the answer for an unknown data
//! extension (404 `errorcode 10000` here); the mock refuses more than 50 rows
//! a call (Salesforce only advises the limit) to catch a connector that
//! sends more.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json, json};

use super::{ConcurrencyGauge, InFlight, MockServer, RecordedRequest, percent_decode, serve};

/// Salesforce's advised, and the mock's enforced, most rows per rowset call.
pub const MAX_ROWS: usize = 50;
const DOCUMENTATION: &str =
    "https://developer.salesforce.com/docs/marketing/marketing-cloud/guide/error-handling.html";

/// A data-extension column's type, as far as the mock checks values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    /// `true`/`false`/`1`/`0`, any case.
    Boolean,
    Number,
    /// An ISO 8601 date or date-time.
    Date,
}

/// What a call with some bad rows does to its good rows (unconfirmed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BadRowPolicy {
    /// Nothing is saved (the default).
    #[default]
    AllOrNothing,
    /// The good rows are saved; the answer is the same 400.
    SaveValidRows,
}

/// What the next REST calls get instead of a normal answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// This status (a 5xx) with a SOAP-like fault body.
    Status(u16),
    /// 429, errorcode 50100, `Retry-After` and `retryAfter` of this many seconds.
    RateLimited { retry_after_s: u64 },
    /// 429, errorcode 50200 "requests temporarily blocked", no hint.
    Blocked,
    /// 400, errorcode 10006 without `additionalErrors` (transient).
    UnableToSave,
    /// 401, as for an expired token.
    Unauthorized,
}

/// A data extension as stored by the mock.
#[derive(Debug, Clone)]
struct DataExtension {
    primary_key: String,
    columns: Vec<(String, ColumnType)>,
    /// Primary-key value → the row's values (primary key included).
    rows: BTreeMap<String, Map<String, Json>>,
}

impl DataExtension {
    fn column(&self, name: &str) -> Option<&(String, ColumnType)> {
        self.columns
            .iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(name))
    }
}

#[derive(Debug)]
struct Inner {
    client_id: String,
    client_secret: String,
    account_id: Option<String>,
    url: String,
    rest_instance_url: Option<String>,
    token_life: Duration,
    tokens: HashMap<String, Instant>,
    tokens_issued: usize,
    data_extensions: BTreeMap<String, DataExtension>,
    bad_rows: BadRowPolicy,
    faults: VecDeque<Fault>,
    requests: Vec<(Instant, RecordedRequest)>,
}

/// Handle on a running mock.
#[derive(Clone, Debug)]
pub struct Sfmc {
    inner: Arc<Mutex<Inner>>,
    concurrency: Arc<ConcurrencyGauge>,
}

impl Sfmc {
    /// Starts a mock tenant whose installed package has these client
    /// credentials and (when given) only serves business unit `account_id`.
    /// The token answer names the mock itself as the REST base.
    pub async fn start(
        client_id: &str,
        client_secret: &str,
        account_id: Option<&str>,
    ) -> std::io::Result<MockServer<Sfmc>> {
        let handle = Sfmc {
            inner: Arc::new(Mutex::new(Inner {
                client_id: client_id.into(),
                client_secret: client_secret.into(),
                account_id: account_id.map(str::to_string),
                url: String::new(),
                rest_instance_url: None,
                token_life: Duration::from_secs(1079),
                tokens: HashMap::new(),
                tokens_issued: 0,
                data_extensions: BTreeMap::new(),
                bad_rows: BadRowPolicy::default(),
                faults: VecDeque::new(),
                requests: Vec::new(),
            })),
            concurrency: Arc::default(),
        };
        let router = Router::new()
            .fallback(handle_request)
            .with_state(handle.clone());
        let server = serve(0, router, handle).await?;
        server.state.lock().url = server.url();
        Ok(server)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a data extension with external key `key`, its primary-key column
    /// (a text column) and its other columns.
    pub fn add_data_extension(&self, key: &str, primary_key: &str, columns: &[(&str, ColumnType)]) {
        let mut all = vec![(primary_key.to_string(), ColumnType::Text)];
        all.extend(columns.iter().map(|(c, t)| (c.to_string(), *t)));
        self.lock().data_extensions.insert(
            key.to_string(),
            DataExtension {
                primary_key: primary_key.into(),
                columns: all,
                rows: BTreeMap::new(),
            },
        );
    }

    /// The `rest_instance_url` token answers name (the mock's own URL by default).
    pub fn set_rest_instance_url(&self, url: &str) {
        self.lock().rest_instance_url = Some(url.into());
    }

    /// What a call with bad rows does to its good rows.
    pub fn set_bad_row_policy(&self, policy: BadRowPolicy) {
        self.lock().bad_rows = policy;
    }

    /// Every token issued so far stops working, as after its 20 minutes.
    pub fn expire_tokens(&self) {
        self.lock().tokens.clear();
    }

    pub fn tokens_issued(&self) -> usize {
        self.lock().tokens_issued
    }

    /// Queues faults for the next REST calls (not token requests), in order.
    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.lock().faults.extend(faults);
    }

    /// Adds a row directly, as if imported in Contact Builder.
    pub fn insert_row(&self, data_extension: &str, key: &str, values: &[(&str, &str)]) {
        let mut inner = self.lock();
        let de = inner
            .data_extensions
            .get_mut(data_extension)
            .expect("a data extension added first");
        let mut row = Map::new();
        row.insert(de.primary_key.clone(), json!(key));
        for (column, value) in values {
            row.insert(column.to_string(), json!(value));
        }
        de.rows.insert(key.to_string(), row);
    }

    /// The row whose primary key is `key`.
    pub fn row(&self, data_extension: &str, key: &str) -> Option<Map<String, Json>> {
        self.lock()
            .data_extensions
            .get(data_extension)?
            .rows
            .get(key)
            .cloned()
    }

    /// Every row of a data extension, by primary key.
    pub fn rows(&self, data_extension: &str) -> BTreeMap<String, Map<String, Json>> {
        self.lock()
            .data_extensions
            .get(data_extension)
            .map(|de| de.rows.clone())
            .unwrap_or_default()
    }

    /// Every request, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock()
            .requests
            .iter()
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Every request with the time it arrived, in order.
    pub fn timed_requests(&self) -> Vec<(Instant, RecordedRequest)> {
        self.lock().requests.clone()
    }

    /// Rowset writes (`POST …/rowset`), in order.
    pub fn rowset_writes(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/rowset"))
            .collect()
    }

    /// Row lookups (`GET …/customobjectdata/…`), in order.
    pub fn lookups(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "GET" && r.path.starts_with("/data/v1/customobjectdata/"))
            .collect()
    }

    /// The most requests answered at once.
    pub fn peak_concurrency(&self) -> usize {
        self.concurrency.peak()
    }
}

fn error_body(message: &str, errorcode: i64) -> Json {
    json!({"message": message, "errorcode": errorcode, "documentation": DOCUMENTATION})
}

fn answer(status: u16, body: Json) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response()
}

async fn handle_request(
    State(mock): State<Sfmc>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _in_flight = InFlight::enter(&mock.concurrency);
    let parsed: Json = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Json::String(String::from_utf8_lossy(&body).into_owned()));
    let mut inner = mock.lock();
    inner.requests.push((
        Instant::now(),
        RecordedRequest::new(&method, &uri, &headers, parsed.clone()),
    ));
    if method == Method::POST && uri.path() == "/v2/token" {
        return token(&mut inner, &headers, &parsed);
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let valid = inner
        .tokens
        .get(bearer)
        .is_some_and(|expiry| Instant::now() < *expiry);
    if !valid {
        return answer(401, error_body("Not Authorized", 0));
    }
    if let Some(fault) = inner.faults.pop_front() {
        return match fault {
            Fault::Status(status) => (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "<soap:Fault><faultstring>Server unavailable</faultstring></soap:Fault>",
            )
                .into_response(),
            Fault::RateLimited { retry_after_s } => {
                let mut body = error_body("Too many requests. Retry after the given time.", 50100);
                body["retryAfter"] = json!(retry_after_s);
                let mut response = answer(429, body);
                response.headers_mut().insert(
                    "Retry-After",
                    retry_after_s.to_string().parse().expect("a header value"),
                );
                response
            }
            Fault::Blocked => answer(429, error_body("Requests are temporarily blocked.", 50200)),
            Fault::UnableToSave => answer(
                400,
                error_body(
                    "Unable to save rows for data extension ID 0b1c2d3e-mock",
                    10006,
                ),
            ),
            Fault::Unauthorized => answer(401, error_body("Not Authorized", 0)),
        };
    }
    let path = uri.path().to_string();
    if method == Method::POST
        && let Some(key) = path
            .strip_prefix("/hub/v1/dataevents/key:")
            .and_then(|rest| rest.strip_suffix("/rowset"))
    {
        return upsert_rows(&mut inner, &percent_decode(key), &parsed);
    }
    if method == Method::GET
        && let Some(key) = path
            .strip_prefix("/data/v1/customobjectdata/key/")
            .and_then(|rest| rest.strip_suffix("/rowset"))
    {
        return lookup(
            &inner,
            &percent_decode(key),
            uri.query().unwrap_or_default(),
        );
    }
    answer(
        404,
        error_body(&format!("No route for {method} {path}"), 404),
    )
}

/// `POST /v2/token`: JSON or form-encoded client credentials.
fn token(inner: &mut Inner, headers: &HeaderMap, body: &Json) -> Response {
    let form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let field = |name: &str| -> Option<String> {
        if form {
            body.as_str()?.split('&').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                (k == name).then(|| percent_decode(&v.replace('+', " ")))
            })
        } else {
            body.get(name)?.as_str().map(str::to_string)
        }
    };
    let refused = |description: &str| {
        answer(
            401,
            json!({"error": "invalid_client", "error_description": description,
                   "error_uri": "https://developer.salesforce.com"}),
        )
    };
    if field("grant_type").as_deref() != Some("client_credentials") {
        return answer(
            400,
            json!({"error": "unsupported_grant_type", "error_description": "Use client_credentials.",
                   "error_uri": "https://developer.salesforce.com"}),
        );
    }
    if field("client_id").as_deref() != Some(inner.client_id.as_str())
        || field("client_secret").as_deref() != Some(inner.client_secret.as_str())
    {
        return refused(
            "Invalid client ID. Use the client ID in Marketing Cloud Installed Packages.",
        );
    }
    if let (Some(asked), Some(served)) = (field("account_id"), &inner.account_id)
        && &asked != served
    {
        return refused("Invalid account_id: the package is not installed in this business unit.");
    }
    inner.tokens_issued += 1;
    let token = format!("sfmc-token-{}", inner.tokens_issued);
    inner
        .tokens
        .insert(token.clone(), Instant::now() + inner.token_life);
    let rest = inner
        .rest_instance_url
        .clone()
        .unwrap_or_else(|| format!("{}/", inner.url));
    answer(
        200,
        json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": inner.token_life.as_secs(),
            "scope": "data_extensions_read data_extensions_write",
            "soap_instance_url": format!("{}/", inner.url),
            "rest_instance_url": rest,
        }),
    )
}

/// Why a row cannot be saved, as `additionalErrors` entries.
fn row_errors(de: &DataExtension, row: &Json) -> Vec<Json> {
    let mut errors = Vec::new();
    let empty = Map::new();
    let keys = row.get("keys").and_then(Json::as_object).unwrap_or(&empty);
    let values = row
        .get("values")
        .and_then(Json::as_object)
        .unwrap_or(&empty);
    let has_key = keys.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case(&de.primary_key) && v.as_str().is_some_and(|s| !s.is_empty())
    });
    if !has_key {
        errors.push(json!({"message": format!("The primary key column {} is required.", de.primary_key), "errorcode": 10001}));
    }
    for (column, value) in keys.iter().chain(values) {
        let Some((_, kind)) = de.column(column) else {
            errors.push(
                json!({"message": format!("Invalid column name: {column}"), "errorcode": 10000}),
            );
            continue;
        };
        let text = match value {
            Json::String(s) => s.clone(),
            Json::Null => continue,
            other => other.to_string(),
        };
        let fits = text.is_empty()
            || match kind {
                ColumnType::Text => true,
                ColumnType::Boolean => {
                    ["true", "false", "1", "0"].contains(&text.to_ascii_lowercase().as_str())
                }
                ColumnType::Number => text.parse::<f64>().is_ok(),
                ColumnType::Date => {
                    text.len() >= 10
                        && text.as_bytes()[..4].iter().all(u8::is_ascii_digit)
                        && text.as_bytes()[4] == b'-'
                }
            };
        if !fits {
            errors.push(json!({"message": format!("The value '{text}' is not a valid {kind:?} for column {column}."), "errorcode": 10002}));
        }
    }
    errors
}

fn upsert_rows(inner: &mut Inner, key: &str, body: &Json) -> Response {
    let bad_rows = inner.bad_rows;
    let Some(de) = inner.data_extensions.get_mut(key) else {
        return answer(
            404,
            error_body(
                &format!("Data extension with external key {key} not found"),
                10000,
            ),
        );
    };
    let Some(rows) = body.as_array() else {
        return answer(
            400,
            error_body("The request body must be an array of rows.", 10000),
        );
    };
    if rows.len() > MAX_ROWS {
        return answer(
            400,
            error_body(&format!("At most {MAX_ROWS} rows per request."), 10000),
        );
    }
    let errors: Vec<Vec<Json>> = rows.iter().map(|row| row_errors(de, row)).collect();
    let failed = errors.iter().any(|e| !e.is_empty());
    if !failed || bad_rows == BadRowPolicy::SaveValidRows {
        for (row, errors) in rows.iter().zip(&errors) {
            if !errors.is_empty() {
                continue;
            }
            let keys = row["keys"].as_object().cloned().unwrap_or_default();
            let pk = keys
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&de.primary_key))
                .and_then(|(_, v)| v.as_str())
                .unwrap_or_default()
                .to_string();
            // Stored under the column's own name, as SFMC does.
            let named: Vec<(String, Json)> = keys
                .iter()
                .chain(row["values"].as_object().into_iter().flatten())
                .map(|(column, value)| {
                    let name = de.column(column).map_or(column.clone(), |(c, _)| c.clone());
                    (name, value.clone())
                })
                .collect();
            de.rows.entry(pk).or_default().extend(named);
        }
    }
    if failed {
        let mut body = error_body(
            "Unable to save rows for data extension ID 0b1c2d3e-mock",
            10006,
        );
        body["additionalErrors"] = Json::Array(errors.into_iter().flatten().collect());
        return answer(400, body);
    }
    answer(200, body.clone())
}

/// `$filter={column} eq '{value}'` (quotes doubled inside the value).
fn lookup(inner: &Inner, key: &str, query: &str) -> Response {
    let Some(de) = inner.data_extensions.get(key) else {
        return answer(
            404,
            error_body(
                &format!("Data extension with external key {key} not found"),
                10000,
            ),
        );
    };
    let filter = query
        .split('&')
        .find_map(|pair| {
            pair.strip_prefix("$filter=")
                .or_else(|| pair.strip_prefix("%24filter="))
        })
        .map(percent_decode);
    let parsed = filter.as_deref().and_then(|f| {
        let (column, rest) = f.split_once(" eq ")?;
        let value = rest.trim().strip_prefix('\'')?.strip_suffix('\'')?;
        Some((column.trim().to_string(), value.replace("''", "'")))
    });
    let Some((column, value)) = parsed else {
        return answer(
            400,
            error_body("Invalid $filter: expected `Column eq 'value'`.", 10000),
        );
    };
    if de.column(&column).is_none() {
        return answer(
            400,
            error_body(&format!("Invalid column name: {column}"), 10000),
        );
    }
    let items: Vec<Json> = de
        .rows
        .iter()
        .filter(|(_, row)| {
            row.iter()
                .any(|(c, v)| c.eq_ignore_ascii_case(&column) && v.as_str() == Some(value.as_str()))
        })
        .map(|(pk, row)| {
            let values: Map<String, Json> = row
                .iter()
                .filter(|(c, _)| !c.eq_ignore_ascii_case(&de.primary_key))
                .map(|(c, v)| (c.to_ascii_lowercase(), v.clone()))
                .collect();
            json!({"keys": {de.primary_key.to_ascii_lowercase(): pk}, "values": values})
        })
        .collect();
    answer(
        200,
        json!({"customObjectKey": key, "pageSize": 2500, "page": 1, "count": items.len(), "items": items}),
    )
}
