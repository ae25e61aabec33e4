//! Mock Dotdigital, answering as the contacts v3 API does: HTTP Basic auth,
//! `PATCH /contacts/v3/{identifier}/{value}` (201 created, 200 updated; only
//! the data fields sent change, `null` clears one), `POST /contacts/v3`
//! (creates; 409 `contacts:idAlreadyExists` when the contact exists), `GET`
//! lookups with a 404 `contacts:contactNotFound`, typed data fields (an
//! unknown one or a wrong type is a 400 naming it in `details[].item`),
//! and switchable faults: 429 with `X-RateLimit-*` headers, 5xx, slowness.
//!
//! Error codes other than `contacts:contactNotFound` are not documented
//! publicly; the ones used here follow the documented `contacts:…` pattern.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Map, Value as Json, json};

use super::{ConcurrencyGauge, InFlight, MockServer, RecordedRequest, percent_decode, serve};

/// A data field's type, as `GET /v2/data-fields` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    String,
    Numeric,
    Date,
    Boolean,
}

/// A contact as stored by the mock.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    pub contact_id: u64,
    pub identifier: String,
    pub value: String,
    pub data_fields: Map<String, Json>,
    /// When the last write through the API (or `insert_contact`) landed;
    /// the pipeline benchmark measures latency up to it.
    pub written_at: std::time::Instant,
}

/// What the next contact requests get instead of a normal answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// This status with a v3 error body.
    Status(u16),
    /// 429 with `X-RateLimit-Limit/Reset/Scope`, and `Retry-After` when given.
    RateLimited {
        retry_after_secs: Option<u64>,
        reset_secs: u64,
    },
    /// Answer normally after this delay.
    Slow(Duration),
}

#[derive(Debug, Default)]
struct Inner {
    username: String,
    password: String,
    fields: BTreeMap<String, FieldType>,
    contacts: BTreeMap<(String, String), Contact>,
    next_id: u64,
    /// Consumed one per contact request.
    faults: VecDeque<Fault>,
    /// Applied to every contact request while set.
    outage: Option<Fault>,
    requests: Vec<RecordedRequest>,
}

/// Handle on a running mock.
#[derive(Clone, Debug)]
pub struct Dotdigital {
    inner: Arc<Mutex<Inner>>,
    concurrency: Arc<ConcurrencyGauge>,
}

impl Dotdigital {
    /// Starts a mock whose API user is `username`/`password` and whose
    /// account has the given data fields.
    pub async fn start(
        username: &str,
        password: &str,
        fields: &[(&str, FieldType)],
    ) -> std::io::Result<MockServer<Dotdigital>> {
        Self::start_on(0, username, password, fields).await
    }

    /// Like [`Dotdigital::start`], on a chosen loopback port (0: any free one).
    pub async fn start_on(
        port: u16,
        username: &str,
        password: &str,
        fields: &[(&str, FieldType)],
    ) -> std::io::Result<MockServer<Dotdigital>> {
        let handle = Dotdigital {
            inner: Arc::new(Mutex::new(Inner {
                username: username.into(),
                password: password.into(),
                fields: fields.iter().map(|(n, t)| (n.to_string(), *t)).collect(),
                next_id: 1,
                ..Default::default()
            })),
            concurrency: Arc::default(),
        };
        let router = Router::new()
            .fallback(handle_request)
            .with_state(handle.clone());
        serve(port, router, handle).await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues faults for the next contact requests, in order.
    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.lock().faults.extend(faults);
    }

    /// Every contact request gets `fault` until cleared with `None`.
    pub fn set_outage(&self, fault: Option<Fault>) {
        self.lock().outage = fault;
    }

    /// Adds a contact directly, as if created in Dotdigital's UI.
    pub fn insert_contact(&self, email: &str, fields: Map<String, Json>) {
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        inner.contacts.insert(
            ("email".into(), email.to_lowercase()),
            Contact {
                contact_id: id,
                identifier: "email".into(),
                value: email.into(),
                data_fields: fields,
                written_at: std::time::Instant::now(),
            },
        );
    }

    /// Sets a data field on an existing contact, as a marketer editing it would.
    pub fn set_field(&self, email: &str, field: &str, value: Json) {
        if let Some(contact) = self
            .lock()
            .contacts
            .get_mut(&("email".to_string(), email.to_lowercase()))
        {
            contact.data_fields.insert(field.to_string(), value);
        }
    }

    pub fn contact(&self, email: &str) -> Option<Contact> {
        self.lock()
            .contacts
            .get(&("email".to_string(), email.to_lowercase()))
            .cloned()
    }

    pub fn contacts(&self) -> Vec<Contact> {
        self.lock().contacts.values().cloned().collect()
    }

    /// How many contacts exist: cheap enough to poll (no clone).
    pub fn contact_count(&self) -> usize {
        self.lock().contacts.len()
    }

    /// The most requests the mock was answering at the same time.
    pub fn peak_concurrency(&self) -> usize {
        self.concurrency.peak()
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// Requests with this method, in order.
    pub fn requests_with(&self, method: &str) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method)
            .collect()
    }
}

fn error(status: StatusCode, code: &str, description: &str, item: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "errorCode": code,
            "description": description,
            "details": [{"item": item, "description": description}]
        })),
    )
        .into_response()
}

fn fault_response(fault: &Fault) -> Option<Response> {
    match fault {
        Fault::Status(status) => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Some(error(
                status,
                "server:unavailable",
                "The service is unavailable",
                "",
            ))
        }
        Fault::RateLimited {
            retry_after_secs,
            reset_secs,
        } => {
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "rateLimit:exceeded",
                "Too many requests",
                "",
            );
            let headers = response.headers_mut();
            headers.insert("X-RateLimit-Limit", "2000".parse().unwrap());
            headers.insert("X-RateLimit-Reset", reset_secs.to_string().parse().unwrap());
            headers.insert("X-RateLimit-Scope", "contacts".parse().unwrap());
            if let Some(secs) = retry_after_secs {
                headers.insert("Retry-After", secs.to_string().parse().unwrap());
            }
            Some(response)
        }
        Fault::Slow(_) => None,
    }
}

async fn handle_request(
    State(mock): State<Dotdigital>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let gauge = mock.concurrency.clone();
    let _in_flight = InFlight::enter(&gauge);
    let body_json: Json = serde_json::from_slice(&body).unwrap_or(Json::Null);
    let fault = {
        let mut inner = mock.lock();
        inner.requests.push(RecordedRequest::new(
            &method,
            &uri,
            &headers,
            body_json.clone(),
        ));
        if uri.path().starts_with("/contacts/") {
            inner.outage.clone().or_else(|| inner.faults.pop_front())
        } else {
            None
        }
    };
    // A struggling server fails before it looks at credentials.
    if let Some(fault) = &fault {
        if let Fault::Slow(delay) = fault {
            tokio::time::sleep(*delay).await;
        }
        if let Some(response) = fault_response(fault) {
            return response;
        }
    }
    if !authorized(&mock.lock(), &headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "authorization:unauthorized",
            "Authorization has been denied for this request.",
            "",
        );
    }

    let segments: Vec<String> = uri
        .path()
        .trim_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["v2", "data-fields"]) => {
            let inner = mock.lock();
            let list: Vec<Json> = inner
                .fields
                .iter()
                .map(|(name, ty)| json!({"name": name, "type": format!("{ty:?}"), "visibility": "Private", "defaultValue": null}))
                .collect();
            axum::Json(Json::Array(list)).into_response()
        }
        ("GET" | "PATCH", ["contacts", "v3", identifier, _])
            if !IDENTIFIERS.contains(identifier) =>
        {
            error(
                StatusCode::BAD_REQUEST,
                "contacts:invalidIdentifier",
                "Unknown identifier",
                identifier,
            )
        }
        ("GET", ["contacts", "v3", identifier, value]) => lookup(&mock, identifier, value),
        ("POST", ["contacts", "v3"]) => create(&mock, body_json),
        ("PATCH", ["contacts", "v3", identifier, value]) => {
            upsert(&mock, identifier, value, uri.query(), body_json)
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "resource:notFound",
            "No such resource",
            uri.path(),
        ),
    }
}

fn authorized(inner: &Inner, headers: &HeaderMap) -> bool {
    let expected = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", inner.username, inner.password));
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        == Some(expected.as_str())
}

const IDENTIFIERS: [&str; 3] = ["email", "mobileNumber", "contactId"];

fn lookup(mock: &Dotdigital, identifier: &str, value: &str) -> Response {
    match mock
        .lock()
        .contacts
        .get(&(identifier.to_string(), value.to_lowercase()))
    {
        Some(contact) => axum::Json(contact_json(contact)).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "contacts:contactNotFound",
            "Contact not found",
            value,
        ),
    }
}

fn upsert(
    mock: &Dotdigital,
    identifier: &str,
    value: &str,
    query: Option<&str>,
    body: Json,
) -> Response {
    let merge = query
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("merge-option="))
        .unwrap_or("overwrite");
    if merge != "overwrite" && merge != "overwriteIfBlank" {
        return error(
            StatusCode::BAD_REQUEST,
            "contacts:invalidMergeOption",
            "Invalid merge option",
            merge,
        );
    }
    let Some(obj) = body.as_object() else {
        return error(
            StatusCode::BAD_REQUEST,
            "contacts:invalidBody",
            "The request body is not a JSON object",
            "",
        );
    };
    let empty = Map::new();
    let fields = match obj.get("dataFields") {
        None => &empty,
        Some(Json::Object(fields)) => fields,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "contacts:invalidDataFields",
                "dataFields must be an object",
                "dataFields",
            );
        }
    };
    let mut inner = mock.lock();
    if let Some(refusal) = check_data_fields(&inner, fields) {
        return refusal;
    }
    let key = (identifier.to_string(), value.to_lowercase());
    let created = !inner.contacts.contains_key(&key);
    if created {
        let id = inner.next_id;
        inner.next_id += 1;
        inner.contacts.insert(
            key.clone(),
            Contact {
                contact_id: id,
                identifier: identifier.to_string(),
                value: value.to_string(),
                data_fields: Map::new(),
                written_at: std::time::Instant::now(),
            },
        );
    }
    let contact = inner.contacts.get_mut(&key).expect("inserted above");
    contact.written_at = std::time::Instant::now();
    for (name, value) in fields {
        if value.is_null() {
            contact.data_fields.remove(name);
        } else if merge == "overwrite" || !contact.data_fields.contains_key(name) {
            contact.data_fields.insert(name.clone(), value.clone());
        }
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, axum::Json(contact_json(contact))).into_response()
}

/// Every data field must exist in the account and take its value's type;
/// the refusal when one does not.
fn check_data_fields(inner: &Inner, fields: &Map<String, Json>) -> Option<Response> {
    for (name, value) in fields {
        let Some(ty) = inner.fields.get(name) else {
            return Some(error(
                StatusCode::BAD_REQUEST,
                "contacts:dataFieldNotFound",
                "The data field does not exist",
                name,
            ));
        };
        let fits = matches!(
            (ty, value),
            (_, Json::Null)
                | (FieldType::Boolean, Json::Bool(_))
                | (FieldType::Numeric, Json::Number(_))
                | (FieldType::String | FieldType::Date, Json::String(_))
        );
        if !fits {
            return Some(error(
                StatusCode::BAD_REQUEST,
                "contacts:invalidDataFieldValue",
                &format!("The value of data field {name} is not a valid {ty:?}"),
                name,
            ));
        }
    }
    None
}

/// `POST /contacts/v3`: creates a contact from `{"identifiers", "dataFields"}`;
/// 409 `contacts:idAlreadyExists` when one of its identifiers is taken.
fn create(mock: &Dotdigital, body: Json) -> Response {
    let identifiers = body.get("identifiers").and_then(Json::as_object);
    let Some((identifier, value)) = identifiers.and_then(|ids| {
        ids.iter()
            .find(|(k, v)| IDENTIFIERS.contains(&k.as_str()) && v.is_string())
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
    }) else {
        return error(
            StatusCode::BAD_REQUEST,
            "contacts:invalidIdentifier",
            "The contact needs an identifier",
            "identifiers",
        );
    };
    let empty = Map::new();
    let fields = match body.get("dataFields") {
        None | Some(Json::Null) => &empty,
        Some(Json::Object(fields)) => fields,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "contacts:invalidDataFields",
                "dataFields must be an object",
                "dataFields",
            );
        }
    };
    let mut inner = mock.lock();
    let key = (identifier.clone(), value.to_lowercase());
    if inner.contacts.contains_key(&key) {
        return error(
            StatusCode::CONFLICT,
            "contacts:idAlreadyExists",
            "A contact with this identifier already exists",
            &value,
        );
    }
    if let Some(refusal) = check_data_fields(&inner, fields) {
        return refusal;
    }
    let id = inner.next_id;
    inner.next_id += 1;
    let contact = Contact {
        contact_id: id,
        identifier,
        value,
        data_fields: fields
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        written_at: std::time::Instant::now(),
    };
    let answer = contact_json(&contact);
    inner.contacts.insert(key, contact);
    (StatusCode::CREATED, axum::Json(answer)).into_response()
}

fn contact_json(contact: &Contact) -> Json {
    json!({
        "contactId": contact.contact_id,
        "identifiers": { contact.identifier.clone(): contact.value },
        "dataFields": contact.data_fields,
        "channelProperties": {"email": {"status": "subscribed"}},
    })
}
