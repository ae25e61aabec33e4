//! Mock Brevo (ex-Sendinblue), answering as its contacts API v3 does:
//!
//! - every call needs the account's key in the `api-key` header (401
//!   `{"code": "unauthorized", …}` otherwise);
//! - `POST /v3/contacts` creates a contact (201 `{"id": n}`); with
//!   `updateEnabled: true` it updates an existing one (204, no body), without
//!   it an existing email is a 400 `duplicate_parameter`;
//! - `PUT /v3/contacts/{identifier}` (an email, URL-encoded, or a contact id;
//!   `?identifierType=email_id|contact_id` says which) updates (204) or
//!   answers 404 `document_not_found`;
//! - `GET /v3/contacts/{identifier}` returns the contact or 404, and
//!   `GET /v3/contacts/attributes` the account's attributes and their types
//!   (`text`, `float`, `boolean`);
//! - `GET /v3/account` returns the account's details (what a connection
//!   check reads), and `GET /v3/contacts/lists/{id}` a list's details or 404
//!   `document_not_found` for a list the account does not have;
//! - errors are `{"code", "message"}`; attributes must be the account's (in
//!   capitals) with values of their type, lists must exist (400
//!   `invalid_parameter` otherwise);
//! - each answer carries `x-sib-ratelimit-limit`, `-remaining` and `-reset`
//!   (seconds left in the window); past the limit, 429 and no `Retry-After`.
//!
//! What Brevo's documentation leaves open is configurable: whether a 429
//! also carries `Retry-After` ([`Brevo::set_retry_after`]), the body of a 404
//! for a missing contact ([`NotFoundBody`]), and the rate limit itself
//! ([`Brevo::set_rate_limit`]). The calls the connector makes answer for one
//! contact at a time, so there is no partial failure inside a 2xx to stage
//! (Brevo's batch update answers a bare 204, and its asynchronous import
//! reports per-row failures only later; neither is used).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json, json};

use super::{MockServer, RecordedRequest, percent_decode, serve};

/// Requests a second on the general tier for `/v3/contacts/*`.
pub const DEFAULT_RATE_LIMIT: u32 = 10;

/// A contact attribute's type, as the account defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeType {
    Text,
    Number,
    Boolean,
}

/// A contact as stored by the mock.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    pub id: u64,
    pub email: String,
    pub attributes: Map<String, Json>,
    pub email_blacklisted: bool,
    pub sms_blacklisted: bool,
    pub list_ids: BTreeSet<u64>,
}

/// What the next contact request gets instead of a normal answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// This status with Brevo's error body (a code that fits the status).
    Status(u16),
    /// This status with this error body's code and message.
    Error {
        status: u16,
        code: String,
        message: String,
    },
    /// 429 with the rate-limit headers saying the window resets in this many seconds.
    RateLimited { reset_secs: u64 },
    /// Answer normally after this delay.
    Slow(Duration),
}

/// The body of the 404 for a contact that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotFoundBody {
    /// `{"code": "document_not_found", "message": "Contact does not exist"}` (the default).
    DocumentNotFound,
    /// No body at all.
    Empty,
}

#[derive(Debug)]
struct Inner {
    api_key: String,
    attributes: BTreeMap<String, AttributeType>,
    lists: BTreeSet<u64>,
    contacts: BTreeMap<String, Contact>,
    next_id: u64,
    faults: VecDeque<Fault>,
    requests: Vec<RecordedRequest>,
    /// When each request arrived, in the order of `requests`.
    arrivals: Vec<Instant>,
    rate_limit: u32,
    window: Duration,
    window_start: Instant,
    window_count: u32,
    retry_after: bool,
    not_found_body: NotFoundBody,
}

/// Handle on a running mock.
#[derive(Clone, Debug)]
pub struct Brevo {
    inner: Arc<Mutex<Inner>>,
}

impl Brevo {
    /// Starts a mock account with `api_key`, these contact attributes and these lists.
    pub async fn start(
        api_key: &str,
        attributes: &[(&str, AttributeType)],
        lists: &[u64],
    ) -> std::io::Result<MockServer<Brevo>> {
        let handle = Brevo {
            inner: Arc::new(Mutex::new(Inner {
                api_key: api_key.into(),
                attributes: attributes
                    .iter()
                    .map(|(name, kind)| (name.to_string(), *kind))
                    .collect(),
                lists: lists.iter().copied().collect(),
                contacts: BTreeMap::new(),
                next_id: 1,
                faults: VecDeque::new(),
                requests: Vec::new(),
                arrivals: Vec::new(),
                rate_limit: DEFAULT_RATE_LIMIT,
                window: Duration::from_secs(1),
                window_start: Instant::now(),
                window_count: 0,
                retry_after: false,
                not_found_body: NotFoundBody::DocumentNotFound,
            })),
        };
        let router = Router::new()
            .fallback(handle_request)
            .with_state(handle.clone());
        serve(0, router, handle).await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues faults for the next contact requests, in order.
    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.lock().faults.extend(faults);
    }

    /// At most `limit` requests per `window` (10 a second by default).
    pub fn set_rate_limit(&self, limit: u32, window: Duration) {
        let mut inner = self.lock();
        inner.rate_limit = limit;
        inner.window = window;
        inner.window_start = Instant::now();
        inner.window_count = 0;
    }

    /// Whether a 429 also carries `Retry-After` (Brevo's, per the docs, does not).
    pub fn set_retry_after(&self, send: bool) {
        self.lock().retry_after = send;
    }

    /// What a 404 for a missing contact carries.
    pub fn set_not_found_body(&self, body: NotFoundBody) {
        self.lock().not_found_body = body;
    }

    /// Adds a contact directly, as if imported in Brevo's UI.
    pub fn insert_contact(&self, email: &str, list_ids: &[u64]) -> Contact {
        let mut inner = self.lock();
        let contact = new_contact(&mut inner, email);
        let contact = inner
            .contacts
            .entry(email.to_lowercase())
            .or_insert(contact);
        contact.list_ids.extend(list_ids);
        contact.clone()
    }

    pub fn contact(&self, email: &str) -> Option<Contact> {
        self.lock().contacts.get(&email.to_lowercase()).cloned()
    }

    pub fn contacts(&self) -> Vec<Contact> {
        self.lock().contacts.values().cloned().collect()
    }

    /// Every request, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// Every request with when it arrived, in order.
    pub fn requests_timed(&self) -> Vec<(Instant, RecordedRequest)> {
        let inner = self.lock();
        inner
            .arrivals
            .iter()
            .copied()
            .zip(inner.requests.iter().cloned())
            .collect()
    }

    /// Requests with this method, in order.
    pub fn requests_with(&self, method: &str) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method)
            .collect()
    }
}

fn new_contact(inner: &mut Inner, email: &str) -> Contact {
    let id = inner.next_id;
    inner.next_id += 1;
    Contact {
        id,
        email: email.to_string(),
        attributes: Map::new(),
        email_blacklisted: false,
        sms_blacklisted: false,
        list_ids: BTreeSet::new(),
    }
}

/// An error answer in Brevo's shape, small enough to pass around in a `Result`.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Refusal {
    fn bad(message: String) -> Self {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_parameter",
            message,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.status, self.code, &self.message)
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"code": code, "message": message})),
    )
        .into_response()
}

/// Brevo's error code for a status (the OpenAPI's enum; those for 401-403 are unconfirmed).
fn code_for(status: u16) -> &'static str {
    match status {
        400 => "invalid_parameter",
        401 => "unauthorized",
        402 => "not_enough_credits",
        403 => "permission_denied",
        404 => "document_not_found",
        405 => "method_not_allowed",
        406 => "not_acceptable",
        429 => "too_many_requests",
        _ => "internal_error",
    }
}

/// `x-sib-ratelimit-*` headers for the current window.
fn rate_headers(response: &mut Response, limit: u32, remaining: u32, reset_secs: u64) {
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-sib-ratelimit-limit", limit.to_string()),
        ("x-sib-ratelimit-remaining", remaining.to_string()),
        ("x-sib-ratelimit-reset", reset_secs.to_string()),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
}

fn too_many(reset_secs: u64, limit: u32, retry_after: bool) -> Response {
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
        "The expected rate limit is exceeded.",
    );
    rate_headers(&mut response, limit, 0, reset_secs);
    if retry_after && let Ok(value) = HeaderValue::from_str(&reset_secs.to_string()) {
        response.headers_mut().insert("retry-after", value);
    }
    response
}

async fn handle_request(
    State(mock): State<Brevo>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body_json: Json = serde_json::from_slice(&body).unwrap_or(Json::Null);
    let (fault, window) = {
        let mut inner = mock.lock();
        inner.requests.push(RecordedRequest::new(
            &method,
            &uri,
            &headers,
            body_json.clone(),
        ));
        let now = Instant::now();
        inner.arrivals.push(now);
        // The window and its count, as Brevo keeps them per account.
        if now.duration_since(inner.window_start) >= inner.window {
            inner.window_start = now;
            inner.window_count = 0;
        }
        inner.window_count += 1;
        let left = inner
            .window
            .saturating_sub(now.duration_since(inner.window_start));
        // Whole seconds, rounded up: "0" would invite an immediate retry.
        let reset_secs = left.as_millis().div_ceil(1000).max(1) as u64;
        let window = (
            inner.rate_limit,
            inner.rate_limit.saturating_sub(inner.window_count),
            reset_secs,
            inner.window_count > inner.rate_limit,
            inner.retry_after,
        );
        let fault = if uri.path().starts_with("/v3/contacts") {
            inner.faults.pop_front()
        } else {
            None
        };
        (fault, window)
    };
    let (limit, remaining, reset_secs, over_limit, retry_after) = window;
    if over_limit {
        return too_many(reset_secs, limit, retry_after);
    }
    match fault {
        Some(Fault::Slow(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::RateLimited { reset_secs }) => {
            return too_many(reset_secs, limit, retry_after);
        }
        Some(Fault::Status(status)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return error(status, code_for(status.as_u16()), "injected failure");
        }
        Some(Fault::Error {
            status,
            code,
            message,
        }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return error(status, &code, &message);
        }
        None => {}
    }
    let mut response = answer(&mock, &method, &uri, &headers, &body_json, &body);
    rate_headers(&mut response, limit, remaining, reset_secs);
    response
}

fn answer(
    mock: &Brevo,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Json,
    raw_body: &Bytes,
) -> Response {
    let key = headers
        .get("api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if key != mock.lock().api_key {
        return error(StatusCode::UNAUTHORIZED, "unauthorized", "Key not found");
    }
    if !raw_body.is_empty() && body.is_null() {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "The body is not valid JSON",
        );
    }
    let segments: Vec<String> = uri
        .path()
        .trim_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let identifier_type = uri.query().and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("identifierType="))
            .map(str::to_string)
    });
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["v3", "contacts"]) => create(mock, body),
        ("PUT", ["v3", "contacts", identifier]) => {
            update(mock, identifier, identifier_type.as_deref(), body)
        }
        ("GET", ["v3", "contacts", "attributes"]) => {
            let inner = mock.lock();
            let attributes: Vec<Json> = inner
                .attributes
                .iter()
                .map(|(name, kind)| {
                    let kind = match kind {
                        AttributeType::Text => "text",
                        AttributeType::Number => "float",
                        AttributeType::Boolean => "boolean",
                    };
                    json!({"name": name, "category": "normal", "type": kind})
                })
                .collect();
            axum::Json(json!({"attributes": attributes})).into_response()
        }
        ("GET", ["v3", "account"]) => axum::Json(json!({
            "email": "owner@example.com",
            "firstName": "Mock",
            "lastName": "Owner",
            "companyName": "Mock Brevo account",
            "address": {"street": "", "city": "", "zipCode": "", "country": ""},
            "plan": [{"type": "free", "creditsType": "sendLimit", "credits": 300}],
            "relay": {"enabled": false, "data": {"userName": "", "relay": "", "port": 0}}
        }))
        .into_response(),
        ("GET", ["v3", "contacts", "lists", id]) => {
            let inner = mock.lock();
            match id.parse::<u64>() {
                Ok(id) if inner.lists.contains(&id) => {
                    let subscribers = inner
                        .contacts
                        .values()
                        .filter(|c| c.list_ids.contains(&id))
                        .count();
                    axum::Json(json!({
                        "id": id,
                        "name": format!("List {id}"),
                        "totalBlacklisted": 0,
                        "totalSubscribers": subscribers,
                        "uniqueSubscribers": subscribers,
                        "folderId": 1,
                        "createdAt": "2026-01-01T00:00:00.000+00:00",
                        "dynamicList": false
                    }))
                    .into_response()
                }
                Ok(_) => error(
                    StatusCode::NOT_FOUND,
                    "document_not_found",
                    "List ID does not exist",
                ),
                Err(_) => error(
                    StatusCode::BAD_REQUEST,
                    "invalid_parameter",
                    "Invalid list id",
                ),
            }
        }
        ("GET", ["v3", "contacts", identifier]) => {
            let mut inner = mock.lock();
            match find(&mut inner, identifier, identifier_type.as_deref()) {
                Ok(Some(contact)) => axum::Json(contact_json(contact)).into_response(),
                Ok(None) => not_found(&inner),
                Err(refusal) => refusal.into_response(),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "document_not_found", "Invalid route"),
    }
}

fn not_found(inner: &Inner) -> Response {
    match inner.not_found_body {
        NotFoundBody::DocumentNotFound => error(
            StatusCode::NOT_FOUND,
            "document_not_found",
            "Contact does not exist",
        ),
        NotFoundBody::Empty => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The contact a path identifier names, by `identifierType` or, without
/// one, by its look (an email, else a contact id).
fn find<'a>(
    inner: &'a mut Inner,
    identifier: &str,
    identifier_type: Option<&str>,
) -> Result<Option<&'a mut Contact>, Refusal> {
    let by_email = match identifier_type {
        Some("email_id") => true,
        Some("contact_id") => false,
        None => identifier.contains('@'),
        Some(other) => {
            return Err(Refusal::bad(format!(
                "identifierType {other} is not supported by this mock"
            )));
        }
    };
    if by_email {
        return Ok(inner.contacts.get_mut(&identifier.to_lowercase()));
    }
    let Ok(id) = identifier.parse::<u64>() else {
        return Err(Refusal::bad("Invalid contact identifier".into()));
    };
    Ok(inner.contacts.values_mut().find(|c| c.id == id))
}

fn contact_json(contact: &Contact) -> Json {
    json!({
        "id": contact.id,
        "email": contact.email,
        "emailBlacklisted": contact.email_blacklisted,
        "smsBlacklisted": contact.sms_blacklisted,
        "attributes": contact.attributes,
        "listIds": contact.list_ids,
    })
}

/// The fields a write may carry, checked as Brevo checks them.
struct Write {
    attributes: Map<String, Json>,
    email_blacklisted: Option<bool>,
    sms_blacklisted: Option<bool>,
    list_ids: Vec<u64>,
    unlink_list_ids: Vec<u64>,
}

fn read_write(inner: &Inner, body: &Json, allowed: &[&str]) -> Result<Write, Refusal> {
    let bad = Refusal::bad;
    let Some(object) = body.as_object() else {
        return Err(bad("The body must be a JSON object".into()));
    };
    // Stricter than Brevo may be: a field this call does not take is refused,
    // so a connector that sends one finds out.
    if let Some(unknown) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad(format!("{unknown} is not a valid parameter here")));
    }
    let mut attributes = Map::new();
    match object.get("attributes") {
        None => {}
        Some(Json::Object(given)) => {
            for (name, value) in given {
                let Some(kind) = inner.attributes.get(name) else {
                    return Err(bad(format!("Invalid attribute name {name}")));
                };
                let fits = matches!(
                    (kind, value),
                    (_, Json::Null)
                        | (AttributeType::Text, Json::String(_))
                        | (AttributeType::Number, Json::Number(_))
                        | (AttributeType::Boolean, Json::Bool(_))
                );
                if !fits {
                    return Err(bad(format!("Invalid value for attribute {name}")));
                }
                attributes.insert(name.clone(), value.clone());
            }
        }
        Some(_) => return Err(bad("attributes must be an object".into())),
    }
    let flag = |name: &str| -> Result<Option<bool>, Refusal> {
        match object.get(name) {
            None => Ok(None),
            Some(Json::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(bad(format!("{name} must be a boolean"))),
        }
    };
    let ids = |name: &str| -> Result<Vec<u64>, Refusal> {
        match object.get(name) {
            None => Ok(Vec::new()),
            Some(Json::Array(items)) => items
                .iter()
                .map(|item| match item.as_u64() {
                    Some(id) if inner.lists.contains(&id) => Ok(id),
                    _ => Err(bad(format!("{name}: invalid list id {item}"))),
                })
                .collect(),
            Some(_) => Err(bad(format!("{name} must be a list of ids"))),
        }
    };
    Ok(Write {
        attributes,
        email_blacklisted: flag("emailBlacklisted")?,
        sms_blacklisted: flag("smsBlacklisted")?,
        list_ids: ids("listIds")?,
        unlink_list_ids: ids("unlinkListIds")?,
    })
}

fn apply(contact: &mut Contact, write: Write) {
    for (name, value) in write.attributes {
        if value.is_null() {
            contact.attributes.remove(&name);
        } else {
            contact.attributes.insert(name, value);
        }
    }
    if let Some(b) = write.email_blacklisted {
        contact.email_blacklisted = b;
    }
    if let Some(b) = write.sms_blacklisted {
        contact.sms_blacklisted = b;
    }
    contact.list_ids.extend(write.list_ids);
    for id in write.unlink_list_ids {
        contact.list_ids.remove(&id);
    }
}

fn create(mock: &Brevo, body: &Json) -> Response {
    let mut inner = mock.lock();
    let write = match read_write(
        &inner,
        body,
        &[
            "email",
            "ext_id",
            "attributes",
            "emailBlacklisted",
            "smsBlacklisted",
            "listIds",
            "updateEnabled",
            "smtpBlacklistSender",
        ],
    ) {
        Ok(write) => write,
        Err(refusal) => return refusal.into_response(),
    };
    let email = match body.get("email") {
        None | Some(Json::Null) => {
            return error(
                StatusCode::BAD_REQUEST,
                "missing_parameter",
                "email is missing",
            );
        }
        Some(Json::String(email)) if email.contains('@') => email.clone(),
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
                "Invalid email address",
            );
        }
    };
    let update_enabled = body.get("updateEnabled") == Some(&Json::Bool(true));
    let key = email.to_lowercase();
    if let Some(contact) = inner.contacts.get_mut(&key) {
        if !update_enabled {
            return error(
                StatusCode::BAD_REQUEST,
                "duplicate_parameter",
                "Contact already exist",
            );
        }
        apply(contact, write);
        return StatusCode::NO_CONTENT.into_response();
    }
    let mut contact = new_contact(&mut inner, &email);
    apply(&mut contact, write);
    let id = contact.id;
    inner.contacts.insert(key, contact);
    (StatusCode::CREATED, axum::Json(json!({"id": id}))).into_response()
}

fn update(mock: &Brevo, identifier: &str, identifier_type: Option<&str>, body: &Json) -> Response {
    let mut inner = mock.lock();
    let write = match read_write(
        &inner,
        body,
        &[
            "ext_id",
            "attributes",
            "emailBlacklisted",
            "smsBlacklisted",
            "listIds",
            "unlinkListIds",
            "smtpBlacklistSender",
        ],
    ) {
        Ok(write) => write,
        Err(refusal) => return refusal.into_response(),
    };
    match find(&mut inner, identifier, identifier_type) {
        Ok(Some(contact)) => {
            apply(contact, write);
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(None) => not_found(&inner),
        Err(refusal) => refusal.into_response(),
    }
}
