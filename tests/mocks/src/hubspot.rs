//! Mock HubSpot, answering as its CRM v3 and communication-preferences v4
//! APIs do for a private app's bearer token:
//!
//! - `POST /crm/v3/objects/contacts/batch/upsert` (`idProperty: email`, at
//!   most 100 inputs): 200 `{"status": "COMPLETE", "results": [{…, "new"}]}`;
//!   inputs HubSpot refuses one by one (an id that is not an email) go to
//!   `errors[]` with `numErrors`, under a 207 (configurable: whether HubSpot
//!   says 207 or 200 there is not pinned down); a property the account lacks
//!   refuses the whole batch (400 `VALIDATION_ERROR`), as does an id given
//!   twice. Results come back in another order than the inputs (HubSpot does
//!   not promise theirs).
//! - `PATCH` / `GET /crm/v3/objects/contacts/{email}?idProperty=email`: 200,
//!   or 404 `OBJECT_NOT_FOUND`; never creates.
//! - `POST /crm/v3/objects/contacts/batch/read` by email: the contacts found,
//!   and the missing ids in one `OBJECT_NOT_FOUND` error (207).
//! - `POST /communication-preferences/v4/statuses/{email}` with `channel`,
//!   `statusState`, `subscriptionId`, `legalBasis`, `legalBasisExplanation`:
//!   200 with `setStatusSuccessReason`; an unknown subscription is a 400.
//! - every answer carries `X-HubSpot-RateLimit-*` headers; a wrong token is a
//!   401 `INVALID_AUTHENTICATION`; error bodies are HubSpot's
//!   `{"status": "error", "message", "correlationId", "category"}`; the 429s
//!   carry `errorType: RATE_LIMIT` and `policyName` (`TEN_SECONDLY_ROLLING`
//!   or `DAILY`) and, like HubSpot as far as its docs say, no `Retry-After`
//!   unless told to.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json, json};

use super::{MockServer, RecordedRequest, percent_decode, serve};

/// Most inputs a batch call takes.
pub const MAX_BATCH_INPUTS: usize = 100;
/// The burst limit the headers announce (Professional and Enterprise).
pub const BURST_LIMIT: u64 = 190;
pub const DAILY_LIMIT: u64 = 650_000;

/// A contact as stored by the mock; emails are kept in lower case.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    pub id: u64,
    pub properties: BTreeMap<String, String>,
}

/// A subscription status the v4 API set.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionStatus {
    pub state: String,
    pub legal_basis: Option<String>,
    pub legal_basis_explanation: Option<String>,
}

/// Which rate limit a 429 reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimit {
    /// The rolling 10-second burst window.
    TenSecondly,
    /// The daily cap.
    Daily,
}

/// What the next API requests get instead of a normal answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// This status with HubSpot's error body (`INTERNAL_ERROR` for 5xx,
    /// `INVALID_AUTHENTICATION` for 401, `VALIDATION_ERROR` otherwise).
    Status(u16),
    /// A 429 of this policy.
    RateLimited(RateLimit),
    /// Answer normally after this delay.
    Slow(Duration),
}

#[derive(Debug)]
struct Inner {
    token: String,
    /// Contact properties the account has; `None` takes any.
    known_properties: Option<BTreeSet<String>>,
    known_subscriptions: BTreeSet<u64>,
    contacts: BTreeMap<String, Contact>,
    statuses: BTreeMap<(String, u64), SubscriptionStatus>,
    next_id: u64,
    faults: VecDeque<Fault>,
    partial_status: u16,
    /// `Retry-After` seconds on a 429, when HubSpot is told to send one.
    retry_after: Option<u64>,
    requests: Vec<RecordedRequest>,
    correlation: u64,
}

/// Handle on a running mock.
#[derive(Clone, Debug)]
pub struct HubSpot {
    inner: Arc<Mutex<Inner>>,
}

impl HubSpot {
    /// Starts a mock account whose private app has `token`, with these
    /// subscription types (ids).
    pub async fn start(token: &str, subscriptions: &[u64]) -> std::io::Result<MockServer<HubSpot>> {
        let handle = HubSpot {
            inner: Arc::new(Mutex::new(Inner {
                token: token.into(),
                known_properties: None,
                known_subscriptions: subscriptions.iter().copied().collect(),
                contacts: BTreeMap::new(),
                statuses: BTreeMap::new(),
                next_id: 1001,
                faults: VecDeque::new(),
                partial_status: 207,
                retry_after: None,
                requests: Vec::new(),
                correlation: 0,
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

    /// Only these contact properties exist (besides `email`); others refuse the write.
    pub fn set_known_properties(&self, names: &[&str]) {
        self.lock().known_properties = Some(names.iter().map(|n| n.to_string()).collect());
    }

    /// The status of a batch answer with errors in it (207 by default; 200 is the other reading).
    pub fn set_partial_status(&self, status: u16) {
        self.lock().partial_status = status;
    }

    /// Makes 429s carry `Retry-After: seconds` (HubSpot documents none).
    pub fn set_retry_after(&self, seconds: Option<u64>) {
        self.lock().retry_after = seconds;
    }

    /// Queues faults for the next API requests, in order.
    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.lock().faults.extend(faults);
    }

    /// Adds a contact directly, as if created in HubSpot's UI.
    pub fn insert_contact(&self, email: &str, properties: &[(&str, &str)]) {
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        let mut stored: BTreeMap<String, String> = properties
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        stored.insert("email".into(), email.to_lowercase());
        inner.contacts.insert(
            email.to_lowercase(),
            Contact {
                id,
                properties: stored,
            },
        );
    }

    pub fn contact(&self, email: &str) -> Option<Contact> {
        self.lock().contacts.get(&email.to_lowercase()).cloned()
    }

    pub fn contacts(&self) -> Vec<Contact> {
        self.lock().contacts.values().cloned().collect()
    }

    /// The status of `email` for subscription `id`, if one was set.
    pub fn subscription(&self, email: &str, id: u64) -> Option<SubscriptionStatus> {
        self.lock()
            .statuses
            .get(&(email.to_lowercase(), id))
            .cloned()
    }

    /// Every request, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// The batch upsert calls, in order.
    pub fn batch_upserts(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == "/crm/v3/objects/contacts/batch/upsert")
            .collect()
    }

    /// The v4 subscription status calls, in order.
    pub fn status_writes(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| {
                r.path
                    .starts_with("/communication-preferences/v4/statuses/")
            })
            .collect()
    }
}

impl Inner {
    fn correlation_id(&mut self) -> String {
        self.correlation += 1;
        format!("00000000-0000-4000-8000-{:012}", self.correlation)
    }

    fn error(&mut self, status: StatusCode, category: &str, message: &str) -> Response {
        let body = json!({
            "status": "error",
            "message": message,
            "correlationId": self.correlation_id(),
            "category": category,
        });
        with_limits(
            (status, axum::Json(body)).into_response(),
            BURST_LIMIT - 1,
            DAILY_LIMIT - 1,
        )
    }

    fn rate_limited(&mut self, policy: RateLimit) -> Response {
        let (message, name) = match policy {
            RateLimit::TenSecondly => (
                "You have reached your ten_secondly_rolling limit.",
                "TEN_SECONDLY_ROLLING",
            ),
            RateLimit::Daily => ("You have reached your daily limit.", "DAILY"),
        };
        let body = json!({
            "status": "error",
            "message": message,
            "errorType": "RATE_LIMIT",
            "correlationId": self.correlation_id(),
            "policyName": name,
            "groupName": "cos_api_policy",
        });
        let (burst_left, daily_left) = match policy {
            RateLimit::TenSecondly => (0, DAILY_LIMIT - 1),
            RateLimit::Daily => (BURST_LIMIT - 1, 0),
        };
        let mut response = with_limits(
            (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response(),
            burst_left,
            daily_left,
        );
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(seconds));
        }
        response
    }
}

/// HubSpot's rate-limit headers.
fn with_limits(mut response: Response, burst_left: u64, daily_left: u64) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-hubspot-ratelimit-daily", DAILY_LIMIT),
        ("x-hubspot-ratelimit-daily-remaining", daily_left),
        ("x-hubspot-ratelimit-max", BURST_LIMIT),
        ("x-hubspot-ratelimit-remaining", burst_left),
        ("x-hubspot-ratelimit-interval-milliseconds", 10_000),
    ] {
        headers.insert(name, HeaderValue::from(value));
    }
    response
}

fn ok(status: StatusCode, body: Json) -> Response {
    with_limits(
        (status, axum::Json(body)).into_response(),
        BURST_LIMIT - 1,
        DAILY_LIMIT - 1,
    )
}

fn now_text() -> String {
    // A fixed instant: nothing in the tests reads it.
    "2026-12-04T12:00:00.000Z".into()
}

async fn handle_request(
    State(mock): State<HubSpot>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body_json: Json = serde_json::from_slice(&body).unwrap_or(Json::Null);
    let fault = {
        let mut inner = mock.lock();
        inner.requests.push(RecordedRequest::new(
            &method,
            &uri,
            &headers,
            body_json.clone(),
        ));
        inner.faults.pop_front()
    };
    match fault {
        Some(Fault::Slow(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::RateLimited(policy)) => return mock.lock().rate_limited(policy),
        Some(Fault::Status(status)) => {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let (category, message) = match status {
                500..=599 => ("INTERNAL_ERROR", "internal error, please try again"),
                401 => (
                    "INVALID_AUTHENTICATION",
                    "Authentication credentials not found.",
                ),
                403 => (
                    "MISSING_SCOPES",
                    "This app hasn't been granted all required scopes to make this call.",
                ),
                _ => ("VALIDATION_ERROR", "injected failure"),
            };
            return mock.lock().error(code, category, message);
        }
        None => {}
    }
    let mut inner = mock.lock();
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(inner.token.as_str()) {
        return inner.error(
            StatusCode::UNAUTHORIZED,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        );
    }
    let segments: Vec<String> = uri
        .path()
        .trim_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let by_email = uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "idProperty=email"));
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["crm", "v3", "objects", "contacts", "batch", "upsert"]) => {
            batch_upsert(&mut inner, &body_json)
        }
        ("POST", ["crm", "v3", "objects", "contacts", "batch", "read"]) => {
            batch_read(&mut inner, &body_json)
        }
        ("PATCH", ["crm", "v3", "objects", "contacts", id]) => {
            update_contact(&mut inner, id, by_email, &body_json)
        }
        ("GET", ["crm", "v3", "objects", "contacts", id]) => match find(&inner, id, by_email) {
            Some(email) => {
                let contact = inner.contacts[&email].clone();
                ok(StatusCode::OK, contact_json(&contact, None))
            }
            None => inner.error(
                StatusCode::NOT_FOUND,
                "OBJECT_NOT_FOUND",
                "resource not found",
            ),
        },
        ("POST", ["communication-preferences", "v4", "statuses", subscriber]) => {
            set_status(&mut inner, subscriber, &body_json)
        }
        _ => inner.error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            "resource not found",
        ),
    }
}

/// The email of the contact `id` names: an email with `idProperty=email`,
/// else HubSpot's numeric id.
fn find(inner: &Inner, id: &str, by_email: bool) -> Option<String> {
    if by_email {
        let email = id.to_lowercase();
        return inner.contacts.contains_key(&email).then_some(email);
    }
    inner
        .contacts
        .iter()
        .find(|(_, c)| c.id.to_string() == id)
        .map(|(email, _)| email.clone())
}

fn contact_json(contact: &Contact, new: Option<bool>) -> Json {
    let mut properties: Map<String, Json> = contact
        .properties
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    properties.insert("hs_object_id".into(), json!(contact.id.to_string()));
    properties.insert("lastmodifieddate".into(), json!(now_text()));
    let mut body = json!({
        "id": contact.id.to_string(),
        "properties": properties,
        "createdAt": now_text(),
        "updatedAt": now_text(),
        "archived": false,
    });
    if let Some(new) = new {
        body["new"] = json!(new);
    }
    body
}

/// A property object's values as text, or the first property the account
/// lacks (HubSpot's whole-request refusal).
fn property_values(
    inner: &Inner,
    properties: &Json,
) -> Result<BTreeMap<String, String>, (String, String)> {
    let mut values = BTreeMap::new();
    for (name, value) in properties.as_object().into_iter().flatten() {
        if name != "email"
            && inner
                .known_properties
                .as_ref()
                .is_some_and(|known| !known.contains(name))
        {
            return Err((name.clone(), format!("Property \"{name}\" does not exist")));
        }
        let text = match value {
            Json::String(s) => s.clone(),
            Json::Null => String::new(),
            other => other.to_string(),
        };
        values.insert(name.clone(), text);
    }
    Ok(values)
}

fn invalid_properties(inner: &mut Inner, name: &str, message: &str) -> Response {
    let detail = json!([{"isValid": false, "message": message, "error": "PROPERTY_DOESNT_EXIST", "name": name}]);
    inner.error(
        StatusCode::BAD_REQUEST,
        "VALIDATION_ERROR",
        &format!("Property values were not valid: {detail}"),
    )
}

fn batch_upsert(inner: &mut Inner, body: &Json) -> Response {
    let Some(inputs) = body["inputs"].as_array() else {
        return inner.error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "`inputs` is required",
        );
    };
    if inputs.len() > MAX_BATCH_INPUTS {
        return inner.error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            &format!(
                "Batch input size must be at most {MAX_BATCH_INPUTS}, got {}",
                inputs.len()
            ),
        );
    }
    let mut ids = BTreeSet::new();
    let mut parsed = Vec::new();
    for input in inputs {
        if input["idProperty"] != "email" {
            return inner.error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                "idProperty must be a unique property such as email",
            );
        }
        let Some(id) = input["id"].as_str() else {
            return inner.error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                "every input needs an `id`",
            );
        };
        let id = id.to_lowercase();
        if !ids.insert(id.clone()) {
            return inner.error(
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
                &format!("Duplicate IDs found in batch input: [{id}]. IDs must be unique"),
            );
        }
        match property_values(inner, &input["properties"]) {
            Ok(values) => parsed.push((id, values)),
            Err((name, message)) => return invalid_properties(inner, &name, &message),
        }
    }
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for (id, values) in parsed {
        let valid_email = id
            .split_once('@')
            .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.'));
        if !valid_email {
            errors.push(json!({
                "status": "error",
                "category": "VALIDATION_ERROR",
                "message": format!("Email address {id} is invalid"),
                "context": {"ids": [id]},
                "errors": [{"message": "INVALID_EMAIL", "code": "INVALID_EMAIL"}],
            }));
            continue;
        }
        let new = !inner.contacts.contains_key(&id);
        if new {
            let contact_id = inner.next_id;
            inner.next_id += 1;
            inner.contacts.insert(
                id.clone(),
                Contact {
                    id: contact_id,
                    properties: BTreeMap::from([("email".to_string(), id.clone())]),
                },
            );
        }
        let contact = inner.contacts.get_mut(&id).expect("inserted above");
        contact.properties.extend(values);
        results.push(contact_json(contact, Some(new)));
    }
    // HubSpot does not return results in the inputs' order.
    results.reverse();
    let mut answer = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": now_text(),
        "completedAt": now_text(),
    });
    if errors.is_empty() {
        return ok(StatusCode::OK, answer);
    }
    answer["numErrors"] = json!(errors.len());
    answer["errors"] = json!(errors);
    let status = StatusCode::from_u16(inner.partial_status).unwrap_or(StatusCode::MULTI_STATUS);
    ok(status, answer)
}

/// `POST …/contacts/batch/read` by email: the contacts found, and one
/// `OBJECT_NOT_FOUND` error naming the missing ids (207).
fn batch_read(inner: &mut Inner, body: &Json) -> Response {
    if body["idProperty"] != "email" {
        return inner.error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "this account reads contacts by email only",
        );
    }
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for input in body["inputs"].as_array().into_iter().flatten() {
        let id = input["id"].as_str().unwrap_or_default().to_lowercase();
        match inner.contacts.get(&id) {
            Some(contact) => results.push(contact_json(contact, None)),
            None => missing.push(id),
        }
    }
    let mut answer = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": now_text(),
        "completedAt": now_text(),
    });
    if missing.is_empty() {
        return ok(StatusCode::OK, answer);
    }
    answer["numErrors"] = json!(1);
    answer["errors"] = json!([{
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "message": "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid.",
        "context": {"ids": missing},
    }]);
    let status = StatusCode::from_u16(inner.partial_status).unwrap_or(StatusCode::MULTI_STATUS);
    ok(status, answer)
}

fn update_contact(inner: &mut Inner, id: &str, by_email: bool, body: &Json) -> Response {
    let Some(email) = find(inner, id, by_email) else {
        return inner.error(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            "resource not found",
        );
    };
    let values = match property_values(inner, &body["properties"]) {
        Ok(values) => values,
        Err((name, message)) => return invalid_properties(inner, &name, &message),
    };
    let contact = inner.contacts.get_mut(&email).expect("found above");
    contact.properties.extend(values);
    let contact = contact.clone();
    ok(StatusCode::OK, contact_json(&contact, None))
}

fn set_status(inner: &mut Inner, subscriber: &str, body: &Json) -> Response {
    if body["channel"] != "EMAIL" {
        return inner.error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "channel must be EMAIL, SMS or WHATSAPP; only EMAIL is set up on this account",
        );
    }
    let state = body["statusState"].as_str().unwrap_or_default().to_string();
    if !["SUBSCRIBED", "UNSUBSCRIBED", "NOT_SPECIFIED"].contains(&state.as_str()) {
        return inner.error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "statusState must be SUBSCRIBED, UNSUBSCRIBED or NOT_SPECIFIED",
        );
    }
    let Some(subscription_id) = body["subscriptionId"].as_u64() else {
        return inner.error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "subscriptionId must be a number",
        );
    };
    if !inner.known_subscriptions.contains(&subscription_id) {
        return inner.error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            &format!("Subscription {subscription_id} does not exist for this portal"),
        );
    }
    let legal_basis = body["legalBasis"].as_str().map(str::to_string);
    if state != "NOT_SPECIFIED" && legal_basis.is_none() {
        return inner.error(
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
            "legalBasis is required on a GDPR-enabled portal",
        );
    }
    let key = (subscriber.to_lowercase(), subscription_id);
    let before = inner.statuses.get(&key).map(|s| s.state.clone());
    let reason = match (before.as_deref(), state.as_str()) {
        (Some(b), s) if b == s => "NO_STATUS_CHANGE",
        (Some("UNSUBSCRIBED"), "SUBSCRIBED") => "RESUBSCRIBE_OCCURRED",
        (_, "SUBSCRIBED") => "SUBSCRIBE_OCCURRED",
        (_, "UNSUBSCRIBED") => "UNSUBSCRIBE_OCCURRED",
        _ => "STATUS_CHANGED",
    };
    inner.statuses.insert(
        key,
        SubscriptionStatus {
            state: state.clone(),
            legal_basis: legal_basis.clone(),
            legal_basis_explanation: body["legalBasisExplanation"].as_str().map(str::to_string),
        },
    );
    ok(
        StatusCode::OK,
        json!({
            "status": "COMPLETE",
            "results": [{
                "subscriberIdString": subscriber,
                "subscriptionId": subscription_id,
                "channel": "EMAIL",
                "statusState": state,
                "legalBasis": legal_basis,
                "legalBasisExplanation": body["legalBasisExplanation"],
                "source": "Public API",
                "timestamp": now_text(),
                "setStatusSuccessReason": reason,
            }],
            "errors": [],
            "startedAt": now_text(),
            "completedAt": now_text(),
        }),
    )
}
