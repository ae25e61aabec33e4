//! Mock Braze, answering `POST /users/track` as Braze's REST API documents:
//! `Authorization: Bearer <REST API key>` (401 otherwise), up to 75 objects
//! per request (400 beyond), each attribute object identified by
//! `external_id` or `email`, with `email_subscribe` / `push_subscribe`
//! (`opted_in`, `subscribed`, `unsubscribed`), `subscription_groups` of the
//! workspace's groups, and any other field as an attribute (null removes
//! it). A request whose objects are partly refused is still a 201
//! `{"message": "success", "attributes_processed": n, "errors": [{"type",
//! "input_array": "attributes", "index"}]}`: the other objects are applied.
//! It can be told to fail: a status with Braze's error body, or a 429 with
//! `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`
//! (a Unix time in seconds, the only wait hint Braze gives).
//!
//! It also answers the user lookup, `POST /users/export/ids` (what a
//! connection check calls): the same key (401 otherwise), `external_ids`
//! and/or `email_address`, and a 201 `{"users": [...], "invalid_user_ids":
//! [...], "message": "success"}` (users found, with `fields_to_export` when
//! given; external ids that match no one listed apart). It writes nothing.
//!
//! Unconfirmed, and configurable: what Braze answers for an object with
//! `_update_existing_only: true` whose user does not exist. By default the
//! user is not created and the object is reported in `errors[]`
//! ([`UNKNOWN_USER_ERROR`]); [`UpdateOnlyReport::Silent`] drops it without a
//! word instead. Also unconfirmed: the status when every object is refused
//! (the mock answers 201 with `errors[]`), and Braze's exact error texts.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json, json};

use super::{MockServer, RecordedRequest, serve};

/// Braze's limit on objects (attributes, events and purchases together) per request.
pub const MAX_OBJECTS: usize = 75;

/// The error `type` the mock gives an update-only object whose user does not exist.
pub const UNKNOWN_USER_ERROR: &str =
    "user does not exist ('_update_existing_only' is true): not created";

/// A user as stored by the mock.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct User {
    pub external_id: Option<String>,
    pub email: Option<String>,
    pub email_subscribe: Option<String>,
    pub push_subscribe: Option<String>,
    /// Subscription group id → `subscribed` / `unsubscribed`.
    pub subscription_groups: BTreeMap<String, String>,
    /// Every other field written (standard or custom attributes).
    pub attributes: Map<String, Json>,
    /// How many objects were applied to this user.
    pub writes: usize,
}

/// What the next `/users/track` requests get instead of a normal answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// This status with Braze's error body `{"message", "errors": []}`.
    Status(u16),
    /// A 429 whose `X-RateLimit-Reset` is this long from now (rounded up
    /// to the next whole second, as the header is in seconds).
    RateLimited(Duration),
}

/// How an `_update_existing_only` object for an unknown user is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateOnlyReport {
    /// Not created, reported in `errors[]` with [`UNKNOWN_USER_ERROR`].
    Error,
    /// Not created, not reported (only `attributes_processed` is lower).
    Silent,
}

/// One `/users/track` request: when it arrived, how many attribute objects
/// it carried, and the status it got.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackCall {
    pub at: SystemTime,
    pub objects: usize,
    pub status: u16,
}

#[derive(Debug)]
struct Inner {
    api_key: String,
    groups: Vec<String>,
    users: Vec<User>,
    faults: VecDeque<Fault>,
    refused: BTreeMap<String, String>,
    update_only_report: UpdateOnlyReport,
    requests: Vec<RecordedRequest>,
    track_calls: Vec<TrackCall>,
}

/// Handle on a running mock.
#[derive(Clone, Debug)]
pub struct Braze {
    inner: Arc<Mutex<Inner>>,
}

impl Braze {
    /// Starts a mock workspace with this REST API key and these subscription groups.
    pub async fn start(api_key: &str, groups: &[&str]) -> std::io::Result<MockServer<Braze>> {
        let handle = Braze {
            inner: Arc::new(Mutex::new(Inner {
                api_key: api_key.into(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
                users: Vec::new(),
                faults: VecDeque::new(),
                refused: BTreeMap::new(),
                update_only_report: UpdateOnlyReport::Error,
                requests: Vec::new(),
                track_calls: Vec::new(),
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

    /// Queues faults for the next `/users/track` requests, in order.
    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.lock().faults.extend(faults);
    }

    /// Every object for the user `key` (external id or email) is refused
    /// with this error `type`, as Braze refuses an invalid object.
    pub fn refuse_user(&self, key: &str, error_type: &str) {
        self.lock()
            .refused
            .insert(key.to_string(), error_type.to_string());
    }

    pub fn set_update_only_report(&self, report: UpdateOnlyReport) {
        self.lock().update_only_report = report;
    }

    /// Adds a user, as if created in Braze's dashboard.
    pub fn insert_user(&self, external_id: &str) {
        self.lock().users.push(User {
            external_id: Some(external_id.to_string()),
            ..User::default()
        });
    }

    /// The user whose external id (or else email) is `key`.
    pub fn user(&self, key: &str) -> Option<User> {
        let inner = self.lock();
        find(&inner.users, key).map(|i| inner.users[i].clone())
    }

    pub fn users(&self) -> Vec<User> {
        self.lock().users.clone()
    }

    /// Every request, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// Every `/users/track` request, in order.
    pub fn track_calls(&self) -> Vec<TrackCall> {
        self.lock().track_calls.clone()
    }
}

/// The index of the user identified by `key`: external id first, then email.
fn find(users: &[User], key: &str) -> Option<usize> {
    users
        .iter()
        .position(|u| u.external_id.as_deref() == Some(key))
        .or_else(|| users.iter().position(|u| u.email.as_deref() == Some(key)))
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"message": message, "errors": []})),
    )
        .into_response()
}

fn fault_response(fault: Fault) -> Response {
    match fault {
        Fault::Status(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let message = match status.as_u16() {
                400 => "Invalid request: injected failure",
                401 => "Invalid API key",
                403 => "The API key does not have the users.track permission",
                404 => "Not found",
                429 => "Rate limit exceeded",
                _ => "Internal server error",
            };
            error(status, message)
        }
        Fault::RateLimited(wait) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let reset = (now + wait).as_secs_f64().ceil() as u64;
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, "Rate limit exceeded");
            let headers = response.headers_mut();
            headers.insert("x-ratelimit-limit", "3000".parse().unwrap());
            headers.insert("x-ratelimit-remaining", "0".parse().unwrap());
            headers.insert("x-ratelimit-reset", reset.to_string().parse().unwrap());
            response
        }
    }
}

async fn handle_request(
    State(mock): State<Braze>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body_json: Json = serde_json::from_slice(&body).unwrap_or(Json::Null);
    let at = SystemTime::now();
    let mut inner = mock.lock();
    inner.requests.push(RecordedRequest::new(
        &method,
        &uri,
        &headers,
        body_json.clone(),
    ));
    if method == Method::POST && uri.path() == "/users/export/ids" {
        return export_ids(&inner, &headers, &body_json);
    }
    if method != Method::POST || uri.path() != "/users/track" {
        return error(StatusCode::NOT_FOUND, "Not found");
    }
    let objects = body_json["attributes"].as_array().map_or(0, Vec::len);
    let response = track(&mut inner, &headers, &body_json);
    inner.track_calls.push(TrackCall {
        at,
        objects,
        status: response.status().as_u16(),
    });
    response
}

fn authorized(inner: &Inner, headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|key| key == inner.api_key)
}

/// `POST /users/export/ids`: the users these ids name; reads only.
fn export_ids(inner: &Inner, headers: &HeaderMap, body: &Json) -> Response {
    if !authorized(inner, headers) {
        return error(StatusCode::UNAUTHORIZED, "Invalid API key");
    }
    let Some(object) = body.as_object() else {
        return error(StatusCode::BAD_REQUEST, "Invalid JSON in the request body");
    };
    let external_ids: Vec<&str> = object
        .get("external_ids")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .collect();
    let email = object.get("email_address").and_then(Json::as_str);
    if external_ids.is_empty() && email.is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "A user identifier (external_ids, email_address, ...) must be provided",
        );
    }
    let fields: Option<Vec<&str>> = object
        .get("fields_to_export")
        .and_then(Json::as_array)
        .map(|f| f.iter().filter_map(Json::as_str).collect());
    let export = |user: &User| {
        let mut all = user.attributes.clone();
        if let Some(id) = &user.external_id {
            all.insert("external_id".into(), json!(id));
        }
        if let Some(email) = &user.email {
            all.insert("email".into(), json!(email));
        }
        if let Some(fields) = &fields {
            all.retain(|name, _| fields.contains(&name.as_str()));
        }
        Json::Object(all)
    };
    let mut users = Vec::new();
    let mut invalid = Vec::new();
    for id in &external_ids {
        match inner
            .users
            .iter()
            .find(|u| u.external_id.as_deref() == Some(*id))
        {
            Some(user) => users.push(export(user)),
            None => invalid.push(json!(id)),
        }
    }
    if let Some(email) = email {
        users.extend(
            inner
                .users
                .iter()
                .filter(|u| u.email.as_deref() == Some(email))
                .map(export),
        );
    }
    let mut answer = json!({"users": users, "message": "success"});
    if !invalid.is_empty() {
        answer["invalid_user_ids"] = Json::Array(invalid);
    }
    (StatusCode::CREATED, axum::Json(answer)).into_response()
}

fn track(inner: &mut Inner, headers: &HeaderMap, body: &Json) -> Response {
    if let Some(fault) = inner.faults.pop_front() {
        return fault_response(fault);
    }
    if !authorized(inner, headers) {
        return error(StatusCode::UNAUTHORIZED, "Invalid API key");
    }
    if !body.is_object() {
        return error(StatusCode::BAD_REQUEST, "Invalid JSON in the request body");
    }
    let count = |array: &str| body[array].as_array().map_or(0, Vec::len);
    let total = count("attributes") + count("events") + count("purchases");
    if total == 0 {
        return error(
            StatusCode::BAD_REQUEST,
            "Valid data must be provided in the 'attributes', 'events', or 'purchases' fields.",
        );
    }
    if total > MAX_OBJECTS {
        return error(
            StatusCode::BAD_REQUEST,
            &format!(
                "Too many objects: at most {MAX_OBJECTS} attributes, events and purchases in total per request, not {total}"
            ),
        );
    }
    let mut processed = 0;
    let mut errors = Vec::new();
    for (index, object) in body["attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        match apply(inner, object) {
            Ok(true) => processed += 1,
            Ok(false) => {}
            Err(kind) => {
                errors.push(json!({"type": kind, "input_array": "attributes", "index": index}))
            }
        }
    }
    let mut answer = json!({"message": "success", "attributes_processed": processed});
    if !errors.is_empty() {
        answer["errors"] = Json::Array(errors);
    }
    (StatusCode::CREATED, axum::Json(answer)).into_response()
}

/// Applies one attribute object, all or nothing: `Ok(false)` when an
/// update-only object for an unknown user is dropped silently, `Err` with
/// the error `type` when it is refused.
fn apply(inner: &mut Inner, object: &Json) -> Result<bool, String> {
    let Some(fields) = object.as_object() else {
        return Err("an attribute object must be a JSON object".into());
    };
    let external_id = fields.get("external_id").and_then(Json::as_str);
    let email = fields.get("email").and_then(Json::as_str);
    let Some(key) = external_id.or(email) else {
        return Err(
            "'external_id', 'braze_id', 'user_alias', 'email' or 'phone' is required".into(),
        );
    };
    if let Some(kind) = inner.refused.get(key) {
        return Err(kind.clone());
    }
    let mut channels = Vec::new();
    for channel in ["email_subscribe", "push_subscribe"] {
        match fields.get(channel) {
            None => {}
            Some(Json::String(s))
                if ["opted_in", "subscribed", "unsubscribed"].contains(&s.as_str()) =>
            {
                channels.push((channel, s.clone()))
            }
            Some(_) => {
                return Err(format!(
                    "'{channel}' must be one of 'opted_in', 'subscribed' or 'unsubscribed'"
                ));
            }
        }
    }
    let mut groups = Vec::new();
    for entry in fields
        .get("subscription_groups")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        let id = entry["subscription_group_id"].as_str().unwrap_or_default();
        if !inner.groups.iter().any(|g| g == id) {
            return Err(format!(
                "'subscription_group_id' {id} is not a valid subscription group"
            ));
        }
        match entry["subscription_state"].as_str() {
            Some(state @ ("subscribed" | "unsubscribed")) => {
                groups.push((id.to_string(), state.to_string()))
            }
            _ => return Err("'subscription_state' must be 'subscribed' or 'unsubscribed'".into()),
        }
    }
    let update_only = fields.get("_update_existing_only") == Some(&Json::Bool(true));
    let at = match find(&inner.users, key) {
        Some(at) => at,
        None if update_only => {
            return match inner.update_only_report {
                UpdateOnlyReport::Error => Err(UNKNOWN_USER_ERROR.into()),
                UpdateOnlyReport::Silent => Ok(false),
            };
        }
        None => {
            inner.users.push(User {
                external_id: external_id.map(str::to_string),
                email: email.map(str::to_string),
                ..User::default()
            });
            inner.users.len() - 1
        }
    };
    let user = &mut inner.users[at];
    for (channel, state) in channels {
        match channel {
            "email_subscribe" => user.email_subscribe = Some(state),
            _ => user.push_subscribe = Some(state),
        }
    }
    user.subscription_groups.extend(groups);
    for (name, value) in fields {
        match name.as_str() {
            "external_id"
            | "_update_existing_only"
            | "email_subscribe"
            | "push_subscribe"
            | "subscription_groups" => {}
            "email" => user.email = value.as_str().map(str::to_string),
            _ if value.is_null() => {
                user.attributes.remove(name);
            }
            _ => {
                user.attributes.insert(name.clone(), value.clone());
            }
        }
    }
    user.writes += 1;
    Ok(true)
}
