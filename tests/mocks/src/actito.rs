//! Mock Actito, answering as its API v4 does: `GET /auth/token` with the raw
//! API key gives a bearer token that expires (and can be made to expire at
//! once); profiles are created or updated by
//! `POST /v4/entity/{e}/table/{t}/profile?allowUpdate=true` (201 created,
//! 200 updated, 409 when it exists and updates are not allowed) and looked
//! up by `GET …/profile/{attribute}={value}` (404 when absent); more than 5
//! requests at once get a 429, as Actito's per-licence limit does.
//!
//! Like a real Actito with a webhook subscription, it can post a webhook
//! (`UPDATED_SUBSCRIPTION`, values as strings, the shared secret in a header)
//! after each profile write — the echo of what we wrote — and on a
//! marketer's change made through [`Actito::change_subscription`].
//!
//! The status Actito gives a created profile, and the error bodies, are not
//! pinned down by its public documentation; the mock answers 201 and
//! `{"message": …}`.

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

/// Actito answers 429 beyond this many requests at once per licence.
pub const CONCURRENCY_LIMIT: usize = 5;

/// A profile as stored by the mock.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub profile_id: u64,
    pub attributes: Map<String, Json>,
    pub subscriptions: BTreeMap<String, bool>,
}

/// What the next profile requests get instead of a normal answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// This status with an error body.
    Status(u16),
    /// Answer normally after this delay.
    Slow(Duration),
}

/// Where the mock posts its webhooks.
#[derive(Debug, Clone)]
struct WebhookTarget {
    url: String,
    header: String,
    secret: String,
}

#[derive(Debug)]
struct Inner {
    api_key: String,
    entity: String,
    table: String,
    unique_key: String,
    known_subscriptions: Vec<String>,
    token_life: Duration,
    tokens: HashMap<String, Instant>,
    tokens_issued: usize,
    profiles: BTreeMap<String, Profile>,
    next_id: u64,
    faults: VecDeque<Fault>,
    /// Added to every profile request.
    delay: Option<Duration>,
    requests: Vec<RecordedRequest>,
    busy_refusals: usize,
    webhook: Option<WebhookTarget>,
    webhooks_sent: Vec<Json>,
}

/// Handle on a running mock.
#[derive(Clone, Debug)]
pub struct Actito {
    inner: Arc<Mutex<Inner>>,
    concurrency: Arc<ConcurrencyGauge>,
}

impl Actito {
    /// Starts a mock licence with `api_key`, one entity and profile table
    /// whose unique key attribute is `unique_key`, and these subscriptions.
    pub async fn start(
        api_key: &str,
        entity: &str,
        table: &str,
        unique_key: &str,
        subscriptions: &[&str],
    ) -> std::io::Result<MockServer<Actito>> {
        let handle = Actito {
            inner: Arc::new(Mutex::new(Inner {
                api_key: api_key.into(),
                entity: entity.into(),
                table: table.into(),
                unique_key: unique_key.into(),
                known_subscriptions: subscriptions.iter().map(|s| s.to_string()).collect(),
                token_life: Duration::from_secs(900),
                tokens: HashMap::new(),
                tokens_issued: 0,
                profiles: BTreeMap::new(),
                next_id: 1,
                faults: VecDeque::new(),
                delay: None,
                requests: Vec::new(),
                busy_refusals: 0,
                webhook: None,
                webhooks_sent: Vec::new(),
            })),
            concurrency: Arc::default(),
        };
        let router = Router::new()
            .fallback(handle_request)
            .with_state(handle.clone());
        serve(0, router, handle).await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every token issued so far stops working, as after its 15 minutes.
    pub fn expire_tokens(&self) {
        self.lock().tokens.clear();
    }

    pub fn tokens_issued(&self) -> usize {
        self.lock().tokens_issued
    }

    /// Queues faults for the next profile requests, in order.
    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.lock().faults.extend(faults);
    }

    /// Every profile request takes this long (so requests overlap).
    pub fn set_delay(&self, delay: Option<Duration>) {
        self.lock().delay = delay;
    }

    /// Adds a profile directly, as if created in Actito's UI.
    pub fn insert_profile(&self, key: &str, subscriptions: &[(&str, bool)]) {
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        let mut attributes = Map::new();
        attributes.insert(inner.unique_key.clone(), json!(key));
        inner.profiles.insert(
            key.to_string(),
            Profile {
                profile_id: id,
                attributes,
                subscriptions: subscriptions
                    .iter()
                    .map(|(n, v)| (n.to_string(), *v))
                    .collect(),
            },
        );
    }

    pub fn profile(&self, key: &str) -> Option<Profile> {
        self.lock().profiles.get(key).cloned()
    }

    pub fn profiles(&self) -> Vec<Profile> {
        self.lock().profiles.values().cloned().collect()
    }

    /// Every request, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// Profile writes (`POST …/profile`), in order.
    pub fn profile_writes(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/profile"))
            .collect()
    }

    /// The most requests answered at once.
    pub fn peak_concurrency(&self) -> usize {
        self.concurrency.peak()
    }

    /// Requests refused with 429 for passing the concurrency limit.
    pub fn busy_refusals(&self) -> usize {
        self.lock().busy_refusals
    }

    /// Posts a webhook to `url` after every profile write, with `secret` in `header`.
    pub fn subscribe_webhooks(&self, url: &str, header: &str, secret: &str) {
        self.lock().webhook = Some(WebhookTarget {
            url: url.into(),
            header: header.into(),
            secret: secret.into(),
        });
    }

    /// The webhooks posted so far (their envelopes).
    pub fn webhooks_sent(&self) -> Vec<Json> {
        self.lock().webhooks_sent.clone()
    }

    /// A marketer changes a subscription in Actito: the profile changes and
    /// the webhook goes out; returns prefsync's status and body.
    pub async fn change_subscription(&self, key: &str, name: &str, subscribe: bool) -> (u16, Json) {
        let envelope = {
            let mut inner = self.lock();
            let Some(profile) = inner.profiles.get_mut(key) else {
                panic!("no profile {key}");
            };
            profile.subscriptions.insert(name.to_string(), subscribe);
            let profile = profile.clone();
            envelope(&mut inner, &profile, &[(name.to_string(), subscribe)])
        };
        self.post_webhook(envelope).await.expect("a webhook target")
    }

    async fn post_webhook(&self, envelope: Json) -> Option<(u16, Json)> {
        let target = self.lock().webhook.clone()?;
        let response = reqwest::Client::new()
            .post(&target.url)
            .header(&target.header, &target.secret)
            .json(&envelope)
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Json::Null);
        Some((status, body))
    }
}

/// Actito's webhook envelope for a subscription change; values as strings.
fn envelope(inner: &mut Inner, profile: &Profile, changed: &[(String, bool)]) -> Json {
    let id = format!("wh-{}", inner.webhooks_sent.len() + 1);
    let key = profile.attributes[&inner.unique_key].clone();
    let envelope = json!({
        "id": id,
        "tableType": "PROFILE_TABLE",
        "tableId": inner.table,
        "fields": ["subscriptions"],
        "eventType": "UPDATED_SUBSCRIPTION",
        "data": {
            "profileId": profile.profile_id.to_string(),
            inner.unique_key.clone(): key,
            "subscriptions": changed
                .iter()
                .map(|(name, subscribe)| json!({"name": name, "subscribe": subscribe.to_string()}))
                .collect::<Vec<_>>()
        }
    });
    inner.webhooks_sent.push(envelope.clone());
    envelope
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"message": message}))).into_response()
}

async fn handle_request(
    State(mock): State<Actito>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let gauge = mock.concurrency.clone();
    let in_flight = InFlight::enter(&gauge);
    let body_json: Json = serde_json::from_slice(&body).unwrap_or(Json::Null);
    let over_limit = in_flight.now() > CONCURRENCY_LIMIT;
    let (fault, delay) = {
        let mut inner = mock.lock();
        inner.requests.push(RecordedRequest::new(
            &method,
            &uri,
            &headers,
            body_json.clone(),
        ));
        if over_limit {
            inner.busy_refusals += 1;
        }
        if uri.path().starts_with("/v4/") {
            (inner.faults.pop_front(), inner.delay)
        } else {
            (None, None)
        }
    };
    if over_limit {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many concurrent requests",
        );
    }
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    match fault {
        Some(Fault::Slow(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::Status(status)) => {
            return error(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "injected failure",
            );
        }
        None => {}
    }

    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if method == Method::GET && uri.path() == "/auth/token" {
        let mut inner = mock.lock();
        if authorization != inner.api_key {
            return error(StatusCode::UNAUTHORIZED, "invalid API key");
        }
        inner.tokens_issued += 1;
        let token = format!("token-{}", inner.tokens_issued);
        let expires = Instant::now() + inner.token_life;
        inner.tokens.insert(token.clone(), expires);
        return axum::Json(json!({
            "accessToken": token,
            "tokenType": "bearer",
            "expiresIn": format!("{}s", inner.token_life.as_secs())
        }))
        .into_response();
    }
    let token_ok = {
        let inner = mock.lock();
        authorization
            .strip_prefix("Bearer ")
            .and_then(|t| inner.tokens.get(t))
            .is_some_and(|expires| *expires > Instant::now())
    };
    if !token_ok {
        return error(StatusCode::UNAUTHORIZED, "token expired or invalid");
    }

    let segments: Vec<String> = uri
        .path()
        .trim_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let (entity, table, rest) = match segments.as_slice() {
        ["v4", "entity", entity, "table", table, rest @ ..] => (*entity, *table, rest),
        _ => return error(StatusCode::NOT_FOUND, "no such resource"),
    };
    {
        let inner = mock.lock();
        if entity != inner.entity || table != inner.table {
            return error(StatusCode::NOT_FOUND, "unknown entity or table");
        }
    }
    match (method.as_str(), rest) {
        ("GET", ["profile", selector]) => lookup(&mock, selector),
        ("POST", ["profile"]) => {
            let allow_update = uri
                .query()
                .is_some_and(|q| q.split('&').any(|p| p == "allowUpdate=true"));
            write_profile(&mock, &body_json, allow_update).await
        }
        _ => error(StatusCode::NOT_FOUND, "no such resource"),
    }
}

fn profile_json(profile: &Profile) -> Json {
    json!({
        "profileId": profile.profile_id,
        "attributes": profile.attributes.iter().map(|(n, v)| json!({"name": n, "value": v})).collect::<Vec<_>>(),
        "subscriptions": profile.subscriptions.iter().map(|(n, s)| json!({"name": n, "subscribe": s})).collect::<Vec<_>>(),
    })
}

fn lookup(mock: &Actito, selector: &str) -> Response {
    let inner = mock.lock();
    let Some((attribute, value)) = selector.split_once('=') else {
        return error(StatusCode::BAD_REQUEST, "expected {attribute}={value}");
    };
    if attribute != inner.unique_key {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("`{attribute}` is not a unique key"),
        );
    }
    match inner.profiles.get(value) {
        Some(profile) => axum::Json(profile_json(profile)).into_response(),
        None => error(StatusCode::NOT_FOUND, "profile not found"),
    }
}

async fn write_profile(mock: &Actito, body: &Json, allow_update: bool) -> Response {
    let (response, echo) = {
        let mut inner = mock.lock();
        let mut attributes = Map::new();
        for attribute in body["attributes"].as_array().into_iter().flatten() {
            let Some(name) = attribute["name"].as_str() else {
                return error(StatusCode::BAD_REQUEST, "an attribute without `name`");
            };
            attributes.insert(name.to_string(), attribute["value"].clone());
        }
        let key = match attributes.get(&inner.unique_key) {
            Some(Json::String(key)) => key.clone(),
            _ => {
                let message = format!(
                    "the unique key attribute `{}` is required",
                    inner.unique_key
                );
                return error(StatusCode::BAD_REQUEST, &message);
            }
        };
        let mut changes = Vec::new();
        for subscription in body["subscriptions"].as_array().into_iter().flatten() {
            let (Some(name), Some(subscribe)) = (
                subscription["name"].as_str(),
                subscription["subscribe"].as_bool(),
            ) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "a subscription needs `name` and a boolean `subscribe`",
                );
            };
            if !inner.known_subscriptions.iter().any(|k| k == name) {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("unknown subscription {name}"),
                );
            }
            changes.push((name.to_string(), subscribe));
        }
        let created = !inner.profiles.contains_key(&key);
        if !created && !allow_update {
            return error(
                StatusCode::CONFLICT,
                "the profile exists and allowUpdate is not set",
            );
        }
        if created {
            let id = inner.next_id;
            inner.next_id += 1;
            inner.profiles.insert(
                key.clone(),
                Profile {
                    profile_id: id,
                    attributes: Map::new(),
                    subscriptions: BTreeMap::new(),
                },
            );
        }
        let profile = inner.profiles.get_mut(&key).expect("inserted above");
        profile.attributes.extend(attributes);
        profile.subscriptions.extend(changes.iter().cloned());
        let profile = profile.clone();
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let echo = (inner.webhook.is_some() && !changes.is_empty())
            .then(|| envelope(&mut inner, &profile, &changes));
        (
            (status, axum::Json(json!({"profileId": profile.profile_id}))).into_response(),
            echo,
        )
    };
    // Actito notifies after the write, on its own schedule.
    if let Some(envelope) = echo {
        let mock = mock.clone();
        tokio::spawn(async move { mock.post_webhook(envelope).await });
    }
    response
}
