//! Mock Selligent Engage REST API, answering as the vendor documents it
//! (`docs/destinations.md`): the `X-ApiKey: <key>:<secret>` header (401
//! otherwise), one organization with one list (404 for others), and on that
//! list the single-record upsert
//! `POST /Portal/Api/organizations/{org}/lists/{list}/data?keyfields=…` (a
//! flat object → `{"result_code", "message"}`) and the batch
//! `POST …/data/load?keyFields=…&data_import_option=InsertAndUpdate|OnlyInsert|OnlyUpdate`
//! (an array of rows, the first the header → counts of inserted, updated and
//! failed records and the `invalid_records`). `GET …/lists/{list}` gives the
//! list's details (the connector's connection check).
//!
//! The API is served under `/Portal/Api` ([`Engage::url`]) and at the
//! mock's root (`MockServer::url`): the base is the installation's.
//!
//! What the documentation leaves open, decided here (and followed by the
//! connector):
//! - `record_index` is the row's index in the JSON array sent: the header is
//!   0, the first data row 1.
//! - A load accepts the valid rows and lists the others: answered 200, with
//!   `result_code` `Succeeded`, `PartiallySucceeded` or (no row accepted)
//!   `ValidationFailed`. A body that is not a load at all (no header, no key
//!   column) is a 400 with `errors`.
//! - `OnlyInsert` leaves a row the list has alone, `OnlyUpdate` ignores a row
//!   it lacks: neither is counted (not inserted, updated nor failed).
//! - The single upsert refuses a record with 400 `ValidationFailed`, its
//!   message naming the field; it says nothing of created vs updated.
//! - `null` clears a field; a field the list does not declare, or a value
//!   its type does not take, makes the row invalid.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json, json};

use super::{MockServer, RecordedRequest, percent_decode, serve};

/// A list field's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// Any text (numbers and booleans are taken as their text).
    Text,
    /// A number, or text that reads as one.
    Numeric,
    /// `yyyy-mm-dd`, optionally followed by `T` and a time.
    Date,
    /// `local@domain.tld`.
    Email,
}

impl FieldType {
    fn takes(self, value: &Json) -> bool {
        match (self, value) {
            (_, Json::Null) => true,
            (FieldType::Text, Json::String(_) | Json::Number(_) | Json::Bool(_)) => true,
            (FieldType::Numeric, Json::Number(_)) => true,
            (FieldType::Numeric, Json::String(s)) => s.trim().parse::<f64>().is_ok(),
            (FieldType::Date, Json::String(s)) => is_date(s),
            (FieldType::Email, Json::String(s)) => is_email(s),
            _ => false,
        }
    }
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 10
        && b[..10].iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
        && (b.len() == 10 || b[10] == b'T')
}

fn is_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.contains(char::is_whitespace)
        }
        None => false,
    }
}

#[derive(Debug, Default)]
struct Inner {
    api_key: String,
    api_secret: String,
    organization: String,
    list: String,
    key_field: String,
    fields: BTreeMap<String, FieldType>,
    /// The list: key → record (every field written, the key field included).
    rows: BTreeMap<String, Map<String, Json>>,
    /// What the next requests get, one each: a status, or `None` for a
    /// normal answer.
    fail_next: VecDeque<Option<u16>>,
    /// Fields whose every non-null value is refused.
    refused: BTreeSet<String>,
    requests: Vec<RecordedRequest>,
    /// Requests are not kept (a mock taking millions of rows).
    forget_requests: bool,
    /// `http://127.0.0.1:PORT/Portal/Api`, once listening.
    base: String,
}

/// Handle on a running mock.
#[derive(Clone, Debug)]
pub struct Engage {
    inner: Arc<Mutex<Inner>>,
}

/// One invalid record of a load, as the answer lists it.
fn invalid(index: usize, field: Option<&str>, message: String, code: &str) -> Json {
    json!({"record_index": index, "field_name": field, "message": message, "validation_code": code})
}

impl Engage {
    /// Starts a mock whose API key is `api_key`/`api_secret`, with one
    /// organization holding one list keyed by `key_field`, whose fields are
    /// `fields` (the key field is declared `Text` unless listed).
    pub async fn start(
        api_key: &str,
        api_secret: &str,
        organization: &str,
        list: &str,
        key_field: &str,
        fields: &[(&str, FieldType)],
    ) -> std::io::Result<MockServer<Engage>> {
        Self::start_on(
            0,
            api_key,
            api_secret,
            organization,
            list,
            key_field,
            fields,
        )
        .await
    }

    /// Like [`Engage::start`], on a chosen loopback port (0: any free one).
    pub async fn start_on(
        port: u16,
        api_key: &str,
        api_secret: &str,
        organization: &str,
        list: &str,
        key_field: &str,
        fields: &[(&str, FieldType)],
    ) -> std::io::Result<MockServer<Engage>> {
        let mut declared: BTreeMap<String, FieldType> =
            fields.iter().map(|(n, t)| (n.to_string(), *t)).collect();
        declared
            .entry(key_field.to_string())
            .or_insert(FieldType::Text);
        let handle = Engage {
            inner: Arc::new(Mutex::new(Inner {
                api_key: api_key.into(),
                api_secret: api_secret.into(),
                organization: organization.into(),
                list: list.into(),
                key_field: key_field.into(),
                fields: declared,
                ..Default::default()
            })),
        };
        let router = Router::new()
            .fallback(handle_request)
            .with_state(handle.clone());
        let server = serve(port, router, handle).await?;
        server.state.lock().base = format!("{}/Portal/Api", server.url());
        Ok(server)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The API base a config's `properties.url` names, as an installation's
    /// looks: `http://127.0.0.1:PORT/Portal/Api`.
    pub fn url(&self) -> String {
        self.lock().base.clone()
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// Whether requests are kept for [`Engage::requests`] (they are by
    /// default); off, a mock taking millions of rows holds only the list.
    pub fn record_requests(&self, on: bool) {
        self.lock().forget_requests = !on;
    }

    /// The list's content: key → record (field → value).
    pub fn rows(&self) -> BTreeMap<String, Json> {
        self.lock()
            .rows
            .iter()
            .map(|(k, v)| (k.clone(), Json::Object(v.clone())))
            .collect()
    }

    /// One record of the list.
    pub fn row(&self, key: &str) -> Option<Json> {
        self.lock().rows.get(key).cloned().map(Json::Object)
    }

    /// Adds a record directly, as if created in Selligent.
    pub fn insert_row(&self, key: &str, fields: Json) {
        let mut inner = self.lock();
        let mut record = fields.as_object().cloned().unwrap_or_default();
        record.insert(inner.key_field.clone(), Json::String(key.to_string()));
        inner.rows.insert(key.to_string(), record);
    }

    /// The next `n` requests are answered `status` (before anything is
    /// checked or written), with a `{"result_code": "Failed", …}` body.
    pub fn fail_next(&self, status: u16, n: usize) {
        self.fail_after(0, status, n);
    }

    /// The next `passing` requests are answered normally, then `n` are
    /// answered `status`: a failure in the middle of a batch.
    pub fn fail_after(&self, passing: usize, status: u16, n: usize) {
        let mut inner = self.lock();
        inner.fail_next.extend(std::iter::repeat_n(None, passing));
        inner.fail_next.extend(std::iter::repeat_n(Some(status), n));
    }

    /// From now on every non-null value of `field` is refused (an invalid
    /// record of a load; a `ValidationFailed` single upsert).
    pub fn refuse_field(&self, field: &str) {
        self.lock().refused.insert(field.to_string());
    }
}

fn answer(status: StatusCode, body: Json) -> Response {
    (status, axum::Json(body)).into_response()
}

fn failed(status: StatusCode, result_code: &str, message: &str) -> Response {
    answer(
        status,
        json!({"result_code": result_code, "message": message, "errors": [message]}),
    )
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| percent_decode(v))
}

async fn handle_request(
    State(mock): State<Engage>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Json = serde_json::from_slice(&body).unwrap_or(Json::Null);
    let mut inner = mock.lock();
    if !inner.forget_requests {
        inner
            .requests
            .push(RecordedRequest::new(&method, &uri, &headers, body.clone()));
    }
    if let Some(Some(status)) = inner.fail_next.pop_front() {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = failed(
            status,
            "Failed",
            status.canonical_reason().unwrap_or("failure"),
        );
        if status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert("Retry-After", "1".parse().unwrap());
        }
        return response;
    }
    let expected_key = format!("{}:{}", inner.api_key, inner.api_secret);
    if headers.get("x-apikey").and_then(|v| v.to_str().ok()) != Some(expected_key.as_str()) {
        return failed(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "The API key is missing, wrong, or lacks rights on this resource",
        );
    }
    let segments: Vec<String> = uri
        .path()
        .trim_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    // The API base is the installation's `…/Portal/Api`; the mock also
    // serves it at its root, so `MockServer::url()` is a base too.
    let api = match segments.as_slice() {
        ["Portal", "Api", rest @ ..] => rest,
        rest => rest,
    };
    if let ["organizations", org, "lists", list] = api {
        return list_details(&inner, &method, org, list);
    }
    let (org, list, load) = match api {
        ["organizations", org, "lists", list, "data"] => (*org, *list, false),
        ["organizations", org, "lists", list, "data", "load"] => (*org, *list, true),
        _ => return failed(StatusCode::NOT_FOUND, "NotFound", "No such resource"),
    };
    if method != Method::POST {
        return failed(
            StatusCode::METHOD_NOT_ALLOWED,
            "Failed",
            "The method is not allowed on this resource",
        );
    }
    if org != inner.organization {
        return failed(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("Organization {org} not found"),
        );
    }
    if list != inner.list {
        return failed(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("List {list} not found in organization {org}"),
        );
    }
    if load {
        load_rows(&mut inner, uri.query(), &body)
    } else {
        upsert_one(&mut inner, uri.query(), &body)
    }
}

/// `GET …/organizations/{org}/lists/{list}` (smc-v1 `listGetList`): the
/// list's details, or 404 for an organization or list the mock lacks.
/// Writes nothing (the connector's connection check).
fn list_details(inner: &Inner, method: &Method, org: &str, list: &str) -> Response {
    if method != Method::GET {
        return failed(
            StatusCode::METHOD_NOT_ALLOWED,
            "Failed",
            "The method is not allowed on this resource",
        );
    }
    if org != inner.organization {
        return failed(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("Organization {org} not found"),
        );
    }
    if list != inner.list {
        return failed(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("List {list} not found in organization {org}"),
        );
    }
    answer(
        StatusCode::OK,
        json!({
            "api_name": list,
            "name": list,
            "type": "UserList",
            "description": "",
            "tags": [],
            "organizations": [org]
        }),
    )
}

/// Why `value` does not fit field `field`, if it does not.
fn field_problem(inner: &Inner, field: &str, value: &Json) -> Option<(String, &'static str)> {
    let Some(ty) = inner.fields.get(field) else {
        return Some((
            format!("Field {field} does not exist in list {}", inner.list),
            "UnknownField",
        ));
    };
    if inner.refused.contains(field) && !value.is_null() {
        return Some((
            format!("Value {value} is refused for field {field}"),
            "Refused",
        ));
    }
    if !ty.takes(value) {
        let code = match ty {
            FieldType::Text => "InvalidText",
            FieldType::Numeric => "InvalidNumeric",
            FieldType::Date => "InvalidDate",
            FieldType::Email => "InvalidEmail",
        };
        return Some((
            format!("Value {value} is not a valid {ty:?} for field {field}"),
            code,
        ));
    }
    None
}

/// Writes `record`'s fields into the list; `null` clears a field.
fn write(inner: &mut Inner, key: &str, record: &Map<String, Json>) -> bool {
    let key_field = inner.key_field.clone();
    let created = !inner.rows.contains_key(key);
    let stored = inner.rows.entry(key.to_string()).or_default();
    stored.insert(key_field, Json::String(key.to_string()));
    for (field, value) in record {
        if value.is_null() {
            stored.remove(field);
        } else {
            stored.insert(field.clone(), value.clone());
        }
    }
    created
}

fn key_text(value: &Json) -> Option<String> {
    match value {
        Json::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn upsert_one(inner: &mut Inner, query: Option<&str>, body: &Json) -> Response {
    match query_param(query, "keyfields") {
        Some(k) if k == inner.key_field => {}
        Some(k) => {
            return failed(
                StatusCode::BAD_REQUEST,
                "Failed",
                &format!(
                    "keyfields {k} is not the key of list {} ({})",
                    inner.list, inner.key_field
                ),
            );
        }
        None => return failed(StatusCode::BAD_REQUEST, "Failed", "keyfields is required"),
    }
    let Some(record) = body.as_object() else {
        return failed(
            StatusCode::BAD_REQUEST,
            "Failed",
            "The body must be a JSON object of field → value",
        );
    };
    let Some(key) = record.get(&inner.key_field).and_then(key_text) else {
        return failed(
            StatusCode::BAD_REQUEST,
            "ValidationFailed",
            &format!("The key field {} is missing", inner.key_field),
        );
    };
    for (field, value) in record {
        if let Some((message, _)) = field_problem(inner, field, value) {
            return failed(StatusCode::BAD_REQUEST, "ValidationFailed", &message);
        }
    }
    write(inner, &key, record);
    answer(
        StatusCode::OK,
        json!({"result_code": "Succeeded", "message": ""}),
    )
}

fn load_rows(inner: &mut Inner, query: Option<&str>, body: &Json) -> Response {
    match query_param(query, "keyFields") {
        Some(k) if k == inner.key_field => {}
        Some(k) => {
            return failed(
                StatusCode::BAD_REQUEST,
                "Failed",
                &format!(
                    "keyFields {k} is not the key of list {} ({})",
                    inner.list, inner.key_field
                ),
            );
        }
        None => return failed(StatusCode::BAD_REQUEST, "Failed", "keyFields is required"),
    }
    let option = query_param(query, "data_import_option");
    let (insert, update) = match option.as_deref() {
        Some("InsertAndUpdate") => (true, true),
        Some("OnlyInsert") => (true, false),
        Some("OnlyUpdate") => (false, true),
        other => {
            return failed(
                StatusCode::BAD_REQUEST,
                "Failed",
                &format!(
                    "data_import_option must be InsertAndUpdate, OnlyInsert or OnlyUpdate, not {other:?}"
                ),
            );
        }
    };
    let Some([header, rows @ ..]) = body.as_array().map(Vec::as_slice) else {
        return failed(
            StatusCode::BAD_REQUEST,
            "Failed",
            "The body must be a JSON array of rows, the first the header",
        );
    };
    let Some(header) = header
        .as_array()
        .and_then(|h| h.iter().map(Json::as_str).collect::<Option<Vec<&str>>>())
    else {
        return failed(
            StatusCode::BAD_REQUEST,
            "Failed",
            "The first row must be the header: a list of field names",
        );
    };
    let Some(key_column) = header.iter().position(|h| *h == inner.key_field) else {
        return failed(
            StatusCode::BAD_REQUEST,
            "Failed",
            &format!("The header lacks the key field {}", inner.key_field),
        );
    };
    let (mut inserted, mut updated) = (0u64, 0u64);
    let mut invalid_records = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let index = i + 1;
        let Some(values) = row.as_array().filter(|v| v.len() == header.len()) else {
            invalid_records.push(invalid(
                index,
                None,
                format!("A row must hold {} values", header.len()),
                "InvalidRecord",
            ));
            continue;
        };
        let mut problems = Vec::new();
        let key = key_text(&values[key_column]);
        if key.is_none() {
            problems.push(invalid(
                index,
                Some(&inner.key_field),
                format!("The key field {} is empty", inner.key_field),
                "KeyMissing",
            ));
        }
        for (field, value) in header.iter().zip(values) {
            if let Some((message, code)) = field_problem(inner, field, value) {
                problems.push(invalid(index, Some(field), message, code));
            }
        }
        if !problems.is_empty() {
            invalid_records.extend(problems);
            continue;
        }
        let key = key.expect("checked above");
        let exists = inner.rows.contains_key(&key);
        if (exists && !update) || (!exists && !insert) {
            continue;
        }
        let record: Map<String, Json> = header
            .iter()
            .zip(values)
            .map(|(f, v)| (f.to_string(), v.clone()))
            .collect();
        if write(inner, &key, &record) {
            inserted += 1;
        } else {
            updated += 1;
        }
    }
    let failed_rows: BTreeSet<u64> = invalid_records
        .iter()
        .filter_map(|r| r["record_index"].as_u64())
        .collect();
    let failed = failed_rows.len();
    let result_code = match failed {
        0 => "Succeeded",
        n if n == rows.len() => "ValidationFailed",
        _ => "PartiallySucceeded",
    };
    answer(
        StatusCode::OK,
        json!({
            "result_code": result_code,
            "number_of_inserted_records": inserted,
            "number_of_updated_records": updated,
            "number_of_failed_records": failed,
            "invalid_records": invalid_records,
            "errors": [],
        }),
    )
}
