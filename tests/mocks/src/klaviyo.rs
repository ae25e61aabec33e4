//! Mock Klaviyo, answering as its JSON:API does (revision 2025-01-15 and
//! later): `Authorization: Klaviyo-API-Key <key>` and a `revision` header on
//! every request (401 / 400 otherwise); `POST /api/profile-import` creates
//! (201) or updates (200) the profile matched by any identifier (409
//! `duplicate_profile` with `meta.duplicate_profile_id` when two profiles
//! match); `GET /api/profiles/?filter=equals(<identifier>,"…")` lists
//! matches (`{"data": []}` when none); subscription jobs
//! (`POST /api/profile-subscription-bulk-{create,delete}-jobs`) answer
//! 202 with an empty body and set each profile's email/SMS marketing
//! consent and list membership; `GET /api/lists/{id}` answers the list
//! (`{"data": {"type": "list", "id", "attributes": {"name", …}}}`) or 404
//! `not_found` for a list the account does not have. Errors are JSON:API `errors[]` with
//! `status`, `code`, `title`, `detail` and `source.pointer`; non-429
//! answers carry `RateLimit-Limit/Remaining/Reset`, 429s `Retry-After`.
//!
//! Configurable where Klaviyo's documentation is silent ("unconfirmed"):
//! whether a job's 202 carries a job id ([`Klaviyo::set_job_answer_with_id`]),
//! and whether jobs apply at once or stay queued until
//! [`Klaviyo::process_jobs`] ("accepted" is not "applied"). A profile can be
//! made one a job refuses ([`Klaviyo::refuse_in_jobs`]: a 400 whose pointer
//! names its position, as Klaviyo refuses a whole job for one bad profile).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value as Json, json};

use super::{MockServer, RecordedRequest, percent_decode, serve};

/// The steady (per-minute) limit the rate-limit headers report.
pub const STEADY_LIMIT: u64 = 700;

/// The endpoints faults can be aimed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /api/profile-import`.
    Import,
    /// `GET /api/profiles/`.
    Lookup,
    /// `POST /api/profile-subscription-bulk-create-jobs`.
    Subscribe,
    /// `POST /api/profile-subscription-bulk-delete-jobs`.
    Unsubscribe,
    /// `GET /api/lists/{id}` (Klaviyo's "Get List").
    List,
}

impl Endpoint {
    fn of(method: &Method, path: &str) -> Option<Endpoint> {
        match (method.as_str(), path.trim_end_matches('/')) {
            ("POST", "/api/profile-import") => Some(Endpoint::Import),
            ("GET", "/api/profiles") => Some(Endpoint::Lookup),
            ("POST", "/api/profile-subscription-bulk-create-jobs") => Some(Endpoint::Subscribe),
            ("POST", "/api/profile-subscription-bulk-delete-jobs") => Some(Endpoint::Unsubscribe),
            ("GET", path) => path
                .strip_prefix("/api/lists/")
                .filter(|id| !id.is_empty() && !id.contains('/'))
                .map(|_| Endpoint::List),
            _ => None,
        }
    }
}

/// What the next request to an endpoint gets instead of a normal answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// This status with a JSON:API error body (500s, 400 `invalid`, 401 …).
    Status(u16),
    /// 429 `throttled` with `Retry-After: <seconds>`, as Klaviyo's rate limiter answers.
    Throttled { retry_after_secs: u64 },
    /// Answer normally after this delay.
    Slow(Duration),
}

/// A marketing consent as Klaviyo reports it.
pub type Consent = Option<&'static str>;

/// A profile as stored by the mock.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Profile {
    pub id: String,
    pub email: Option<String>,
    pub phone_number: Option<String>,
    pub external_id: Option<String>,
    /// Other standard attributes (`first_name`, …).
    pub attributes: Map<String, Json>,
    /// Custom properties.
    pub properties: Map<String, Json>,
    /// `SUBSCRIBED` / `UNSUBSCRIBED`, or `None` when never set.
    pub email_consent: Consent,
    pub sms_consent: Consent,
    /// Lists the profile was subscribed to.
    pub lists: BTreeSet<String>,
}

/// A subscription job as received.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub subscribe: bool,
    pub list_id: String,
    pub custom_source: Option<String>,
    /// The profiles' `attributes`, in order.
    pub profiles: Vec<Json>,
}

#[derive(Debug)]
struct Inner {
    api_key: String,
    lists: Vec<String>,
    profiles: Vec<Profile>,
    next_id: u64,
    faults: HashMap<Endpoint, VecDeque<Fault>>,
    requests: Vec<(Instant, RecordedRequest)>,
    jobs: Vec<Job>,
    pending_jobs: Vec<Job>,
    jobs_wait: bool,
    job_answer_with_id: bool,
    refused_in_jobs: BTreeSet<String>,
    steady_used: u64,
}

/// Handle on a running mock.
#[derive(Clone, Debug)]
pub struct Klaviyo {
    inner: Arc<Mutex<Inner>>,
}

impl Klaviyo {
    /// Starts a mock account with private key `api_key` and these lists.
    pub async fn start(api_key: &str, lists: &[&str]) -> std::io::Result<MockServer<Klaviyo>> {
        let handle = Klaviyo {
            inner: Arc::new(Mutex::new(Inner {
                api_key: api_key.into(),
                lists: lists.iter().map(|l| l.to_string()).collect(),
                profiles: Vec::new(),
                next_id: 1,
                faults: HashMap::new(),
                requests: Vec::new(),
                jobs: Vec::new(),
                pending_jobs: Vec::new(),
                jobs_wait: false,
                job_answer_with_id: false,
                refused_in_jobs: BTreeSet::new(),
                steady_used: 0,
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

    /// Queues faults for the next requests to `endpoint`, in order.
    pub fn push_faults(&self, endpoint: Endpoint, faults: impl IntoIterator<Item = Fault>) {
        self.lock()
            .faults
            .entry(endpoint)
            .or_default()
            .extend(faults);
    }

    /// Adds a profile directly, as if created in Klaviyo's UI.
    pub fn insert_profile(&self, email: &str) -> String {
        let mut inner = self.lock();
        let id = new_id(&mut inner);
        inner.profiles.push(Profile {
            id: id.clone(),
            email: Some(email.into()),
            ..Profile::default()
        });
        id
    }

    /// The profile whose email is `email`.
    pub fn profile(&self, email: &str) -> Option<Profile> {
        self.lock()
            .profiles
            .iter()
            .find(|p| p.email.as_deref() == Some(email))
            .cloned()
    }

    pub fn profiles(&self) -> Vec<Profile> {
        self.lock().profiles.clone()
    }

    /// Every request, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock()
            .requests
            .iter()
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// The requests to `endpoint` with when each arrived, in order.
    pub fn requests_to(&self, endpoint: Endpoint) -> Vec<(Instant, RecordedRequest)> {
        self.lock()
            .requests
            .iter()
            .filter(|(_, r)| {
                Method::from_bytes(r.method.as_bytes())
                    .ok()
                    .and_then(|m| Endpoint::of(&m, &r.path))
                    == Some(endpoint)
            })
            .cloned()
            .collect()
    }

    /// The jobs accepted (202) so far, applied or not.
    pub fn jobs(&self) -> Vec<Job> {
        let inner = self.lock();
        inner
            .jobs
            .iter()
            .chain(&inner.pending_jobs)
            .cloned()
            .collect()
    }

    /// Jobs stay queued after their 202 until [`Klaviyo::process_jobs`].
    pub fn set_jobs_wait(&self, wait: bool) {
        self.lock().jobs_wait = wait;
    }

    /// Applies the queued jobs, as Klaviyo's workers do some time after the 202.
    pub fn process_jobs(&self) {
        let mut inner = self.lock();
        let pending = std::mem::take(&mut inner.pending_jobs);
        for job in pending {
            apply_job(&mut inner, &job);
            inner.jobs.push(job);
        }
    }

    /// A job's 202 carries `{"data": {"type", "id"}}` instead of an empty body.
    pub fn set_job_answer_with_id(&self, with_id: bool) {
        self.lock().job_answer_with_id = with_id;
    }

    /// A job naming `email` is refused with a 400 pointing at its position.
    pub fn refuse_in_jobs(&self, email: &str) {
        self.lock().refused_in_jobs.insert(email.into());
    }
}

fn new_id(inner: &mut Inner) -> String {
    let id = format!("01KPROFILE{:06}", inner.next_id);
    inner.next_id += 1;
    id
}

/// A JSON:API error document with one error.
fn error(status: u16, code: &str, title: &str, detail: &str, pointer: Option<&str>) -> Response {
    let mut error = json!({
        "id": format!("err-{status}-{code}"),
        "status": status,
        "code": code,
        "title": title,
        "detail": detail,
    });
    if let Some(pointer) = pointer {
        error["source"] = json!({"pointer": pointer});
    }
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(json!({"errors": [error]}))).into_response()
}

fn invalid(detail: &str, pointer: &str) -> Response {
    error(400, "invalid", "Invalid input.", detail, Some(pointer))
}

fn fault_response(status: u16) -> Response {
    match status {
        401 => error(
            401,
            "not_authenticated",
            "Authentication credentials were not provided.",
            "Missing or invalid private key.",
            None,
        ),
        403 => error(
            403,
            "permission_denied",
            "You do not have permission to perform this action.",
            "The API key is missing a required scope.",
            None,
        ),
        400 => invalid("Invalid input", "/data/attributes"),
        404 => error(404, "not_found", "Not found.", "Resource not found.", None),
        s if s >= 500 => error(
            s,
            "error",
            "A server error occurred.",
            "A server error occurred.",
            None,
        ),
        s => error(s, "error", "Error.", "Injected failure.", None),
    }
}

async fn handle_request(
    State(mock): State<Klaviyo>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body_json: Json = serde_json::from_slice(&body).unwrap_or(Json::Null);
    let endpoint = Endpoint::of(&method, uri.path());
    let fault = {
        let mut inner = mock.lock();
        inner.requests.push((
            Instant::now(),
            RecordedRequest::new(&method, &uri, &headers, body_json.clone()),
        ));
        endpoint.and_then(|e| inner.faults.get_mut(&e).and_then(VecDeque::pop_front))
    };
    let mut response = match fault {
        Some(Fault::Status(status)) => fault_response(status),
        Some(Fault::Throttled { retry_after_secs }) => {
            let mut response = error(
                429,
                "throttled",
                "Request was throttled.",
                &format!(
                    "Request was throttled. Expected available in {retry_after_secs} seconds."
                ),
                None,
            );
            response.headers_mut().insert(
                "retry-after",
                HeaderValue::from_str(&retry_after_secs.to_string()).expect("digits"),
            );
            return response;
        }
        Some(Fault::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            answer(&mock, endpoint, &uri, &headers, &body_json)
        }
        None => answer(&mock, endpoint, &uri, &headers, &body_json),
    };
    // Every answer but a 429 reports the steady window.
    let used = {
        let mut inner = mock.lock();
        inner.steady_used += 1;
        inner.steady_used
    };
    let rate = [
        ("ratelimit-limit", STEADY_LIMIT),
        ("ratelimit-remaining", STEADY_LIMIT.saturating_sub(used)),
        ("ratelimit-reset", 60),
    ];
    for (name, value) in rate {
        response.headers_mut().insert(
            name,
            HeaderValue::from_str(&value.to_string()).expect("digits"),
        );
    }
    response
}

fn answer(
    mock: &Klaviyo,
    endpoint: Option<Endpoint>,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Json,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let mut inner = mock.lock();
    let authorization = header("authorization");
    let Some(key) = authorization.strip_prefix("Klaviyo-API-Key ") else {
        return fault_response(401);
    };
    if key != inner.api_key {
        return error(
            401,
            "authentication_failed",
            "Incorrect authentication credentials.",
            "The private API key is not valid.",
            None,
        );
    }
    let revision = header("revision");
    if revision.len() < 10 {
        return error(
            400,
            "invalid",
            "Invalid input.",
            "A valid `revision` header is required.",
            Some("/headers/revision"),
        );
    }
    match endpoint {
        Some(Endpoint::Import) => import(&mut inner, body),
        Some(Endpoint::Lookup) => lookup(&inner, uri.query().unwrap_or("")),
        Some(Endpoint::Subscribe) => job(&mut inner, body, true),
        Some(Endpoint::Unsubscribe) => job(&mut inner, body, false),
        Some(Endpoint::List) => list(&inner, uri.path()),
        None => error(404, "not_found", "Not found.", "No such endpoint.", None),
    }
}

fn profile_json(profile: &Profile) -> Json {
    let mut attributes = profile.attributes.clone();
    attributes.insert("email".into(), json!(profile.email));
    attributes.insert("phone_number".into(), json!(profile.phone_number));
    attributes.insert("external_id".into(), json!(profile.external_id));
    attributes.insert(
        "properties".into(),
        Json::Object(profile.properties.clone()),
    );
    json!({"type": "profile", "id": profile.id, "attributes": attributes})
}

const IDENTIFIERS: [&str; 3] = ["email", "phone_number", "external_id"];

fn identifier_of<'p>(profile: &'p Profile, name: &str) -> Option<&'p str> {
    match name {
        "email" => profile.email.as_deref(),
        "phone_number" => profile.phone_number.as_deref(),
        "external_id" => profile.external_id.as_deref(),
        _ => None,
    }
}

/// Klaviyo's checks on the two addressing identifiers.
fn check_address(name: &str, value: &str, pointer: &str) -> Option<Response> {
    let ok = match name {
        "email" => value
            .split_once('@')
            .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.')),
        "phone_number" => {
            value.starts_with('+')
                && value.len() > 8
                && value[1..].chars().all(|c| c.is_ascii_digit())
        }
        _ => true,
    };
    (!ok).then(|| {
        let what = if name == "email" {
            "email address"
        } else {
            "phone number"
        };
        invalid(&format!("Invalid {what} `{value}`."), pointer)
    })
}

fn import(inner: &mut Inner, body: &Json) -> Response {
    if body["data"]["type"] != "profile" {
        return invalid("`data.type` must be `profile`.", "/data/type");
    }
    let Some(attributes) = body["data"]["attributes"].as_object() else {
        return invalid("`data.attributes` is required.", "/data/attributes");
    };
    let mut identifiers = Vec::new();
    for name in IDENTIFIERS {
        match attributes.get(name) {
            None | Some(Json::Null) => {}
            Some(Json::String(value)) => {
                let pointer = format!("/data/attributes/{name}");
                if let Some(refusal) = check_address(name, value, &pointer) {
                    return refusal;
                }
                identifiers.push((name, value.clone()));
            }
            Some(_) => {
                return invalid(
                    &format!("`{name}` must be a string."),
                    &format!("/data/attributes/{name}"),
                );
            }
        }
    }
    if identifiers.is_empty() {
        return invalid(
            "One of email, phone_number or external_id is required.",
            "/data/attributes",
        );
    }
    let matches: BTreeSet<usize> = identifiers
        .iter()
        .filter_map(|(name, value)| {
            inner
                .profiles
                .iter()
                .position(|p| identifier_of(p, name) == Some(value.as_str()))
        })
        .collect();
    if matches.len() > 1 {
        let other = &inner.profiles[*matches.iter().nth(1).expect("two")];
        return (
            StatusCode::CONFLICT,
            axum::Json(json!({"errors": [{
                "id": "err-409", "status": 409, "code": "duplicate_profile",
                "title": "Conflict.",
                "detail": "A profile already exists with one of these identifiers.",
                "source": {"pointer": "/data/attributes"},
                "meta": {"duplicate_profile_id": other.id}
            }]})),
        )
            .into_response();
    }
    let (index, created) = match matches.first() {
        Some(i) => (*i, false),
        None => {
            let id = new_id(inner);
            inner.profiles.push(Profile {
                id,
                ..Profile::default()
            });
            (inner.profiles.len() - 1, true)
        }
    };
    let profile = &mut inner.profiles[index];
    for (name, value) in attributes {
        match name.as_str() {
            "email" => profile.email = value.as_str().map(str::to_string),
            "phone_number" => profile.phone_number = value.as_str().map(str::to_string),
            "external_id" => profile.external_id = value.as_str().map(str::to_string),
            "properties" => {
                if let Some(properties) = value.as_object() {
                    profile.properties.extend(properties.clone());
                }
            }
            _ => {
                profile.attributes.insert(name.clone(), value.clone());
            }
        }
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, axum::Json(json!({"data": profile_json(profile)}))).into_response()
}

/// `filter=equals(<field>,"<value>")`, the one form the connector sends.
/// `GET /api/lists/{id}`: the list, or 404 `not_found`.
fn list(inner: &Inner, path: &str) -> Response {
    let id = percent_decode(
        path.trim_end_matches('/')
            .strip_prefix("/api/lists/")
            .unwrap_or(""),
    );
    if !inner.lists.contains(&id) {
        return error(
            404,
            "not_found",
            "Not found.",
            &format!("A list with id {id} does not exist."),
            None,
        );
    }
    axum::Json(json!({
        "data": {
            "type": "list",
            "id": id,
            "attributes": {
                "name": format!("List {id}"),
                "created": "2026-01-01T00:00:00+00:00",
                "updated": "2026-01-01T00:00:00+00:00",
                "opt_in_process": "single_opt_in"
            },
            "links": {"self": format!("/api/lists/{id}/")}
        }
    }))
    .into_response()
}

fn lookup(inner: &Inner, query: &str) -> Response {
    let filter = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("filter="))
        .map(|raw| percent_decode(&raw.replace('+', " ")));
    let parsed = filter.as_deref().and_then(|f| {
        let inside = f.strip_prefix("equals(")?.strip_suffix(')')?;
        let (field, value) = inside.split_once(',')?;
        let value = value.strip_prefix('"')?.strip_suffix('"')?;
        Some((field.to_string(), value.to_string()))
    });
    let Some((field, value)) = parsed.filter(|(f, _)| IDENTIFIERS.contains(&f.as_str())) else {
        return error(
            400,
            "invalid",
            "Invalid input.",
            "Invalid filter: expected equals(<email|phone_number|external_id>,\"value\").",
            Some("/filter"),
        );
    };
    let data: Vec<Json> = inner
        .profiles
        .iter()
        .filter(|p| identifier_of(p, &field) == Some(value.as_str()))
        .map(profile_json)
        .collect();
    axum::Json(
        json!({"data": data, "links": {"self": "/api/profiles/", "next": null, "prev": null}}),
    )
    .into_response()
}

fn job(inner: &mut Inner, body: &Json, subscribe: bool) -> Response {
    let (kind, consent) = if subscribe {
        ("profile-subscription-bulk-create-job", "SUBSCRIBED")
    } else {
        ("profile-subscription-bulk-delete-job", "UNSUBSCRIBED")
    };
    let data = &body["data"];
    if data["type"] != kind {
        return invalid(&format!("`data.type` must be `{kind}`."), "/data/type");
    }
    let Some(list_id) = data["relationships"]["list"]["data"]["id"].as_str() else {
        return invalid(
            "A list relationship is required.",
            "/data/relationships/list",
        );
    };
    if !inner.lists.iter().any(|l| l == list_id) {
        return error(
            404,
            "not_found",
            "Not found.",
            &format!("List `{list_id}` does not exist."),
            Some("/data/relationships/list/data/id"),
        );
    }
    let attributes = &data["attributes"];
    let Some(profiles) = attributes["profiles"]["data"].as_array() else {
        return invalid(
            "`profiles.data` is required.",
            "/data/attributes/profiles/data",
        );
    };
    // Backdated consent is for backfills only.
    let backdated = profiles.iter().any(|p| {
        p["attributes"]["subscriptions"]
            .to_string()
            .contains("consented_at")
    });
    if backdated && attributes["historical_import"] != true {
        return invalid(
            "`consented_at` is only allowed with historical_import.",
            "/data/attributes/historical_import",
        );
    }
    if profiles.is_empty() || profiles.len() > 1000 {
        return invalid(
            "A job takes 1 to 1000 profiles.",
            "/data/attributes/profiles/data",
        );
    }
    for (i, profile) in profiles.iter().enumerate() {
        let at = format!("/data/attributes/profiles/data/{i}/attributes");
        let attributes = &profile["attributes"];
        let Some(subscriptions) = attributes["subscriptions"].as_object() else {
            return invalid(
                "`subscriptions` is required.",
                &format!("{at}/subscriptions"),
            );
        };
        for (channel, value) in subscriptions {
            let address = match channel.as_str() {
                "email" => "email",
                "sms" => "phone_number",
                other => {
                    return invalid(
                        &format!("Unknown channel `{other}`."),
                        &format!("{at}/subscriptions/{other}"),
                    );
                }
            };
            if value["marketing"]["consent"] != consent {
                return invalid(
                    &format!("`consent` must be `{consent}` in this job."),
                    &format!("{at}/subscriptions/{channel}/marketing/consent"),
                );
            }
            let Some(value) = attributes[address].as_str() else {
                return invalid(
                    &format!("`{address}` is required to change `{channel}` consent."),
                    &format!("{at}/{address}"),
                );
            };
            if let Some(refusal) = check_address(address, value, &format!("{at}/{address}")) {
                return refusal;
            }
        }
        if let Some(email) = attributes["email"].as_str()
            && inner.refused_in_jobs.contains(email)
        {
            return invalid(
                &format!("Profile `{email}` cannot be subscribed."),
                &format!("{at}/email"),
            );
        }
    }
    let job = Job {
        subscribe,
        list_id: list_id.to_string(),
        custom_source: attributes["custom_source"].as_str().map(str::to_string),
        profiles: profiles.iter().map(|p| p["attributes"].clone()).collect(),
    };
    let number = inner.jobs.len() + inner.pending_jobs.len() + 1;
    if inner.jobs_wait {
        inner.pending_jobs.push(job);
    } else {
        apply_job(inner, &job);
        inner.jobs.push(job);
    }
    if inner.job_answer_with_id {
        (
            StatusCode::ACCEPTED,
            axum::Json(json!({"data": {"type": kind, "id": format!("job-{number}")}})),
        )
            .into_response()
    } else {
        StatusCode::ACCEPTED.into_response()
    }
}

/// Sets each profile's consent per channel named, creating profiles that
/// do not exist (Klaviyo does), and the list membership.
fn apply_job(inner: &mut Inner, job: &Job) {
    let consent = if job.subscribe {
        "SUBSCRIBED"
    } else {
        "UNSUBSCRIBED"
    };
    for attributes in &job.profiles {
        let email = attributes["email"].as_str();
        let phone = attributes["phone_number"].as_str();
        let found = inner.profiles.iter().position(|p| {
            (email.is_some() && p.email.as_deref() == email)
                || (phone.is_some() && p.phone_number.as_deref() == phone)
        });
        let index = match found {
            Some(i) => i,
            None => {
                let id = new_id(inner);
                inner.profiles.push(Profile {
                    id,
                    email: email.map(str::to_string),
                    phone_number: phone.map(str::to_string),
                    ..Profile::default()
                });
                inner.profiles.len() - 1
            }
        };
        let profile = &mut inner.profiles[index];
        let subscriptions = &attributes["subscriptions"];
        if subscriptions.get("email").is_some() {
            profile.email_consent = Some(consent);
        }
        if subscriptions.get("sms").is_some() {
            profile.sms_consent = Some(consent);
        }
        if job.subscribe {
            profile.lists.insert(job.list_id.clone());
        } else {
            profile.lists.remove(&job.list_id);
        }
    }
}
