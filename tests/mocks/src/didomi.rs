//! Mock Didomi, answering as its Consents API does for a back-end client:
//! `POST /v1/sessions` with `{"type": "api-key", key, secret}` gives a JWT
//! (`iat`/`exp`; 400 for a refused pair) that can be made to expire at once;
//! `GET /v1/consents/users?organization_id=…&organization_user_id=…` gives
//! `{"data": [user]}` (empty: no such user); `POST /v1/consents/events
//! ?organization_id=…` stores a partial event, merges it into its user and
//! answers 201 with the event (its `id` kept when the client chose one).
//! Only purposes and channels the organization has are accepted (Didomi's
//! "API v2" validation: 400 otherwise). A token valid for another
//! organization is refused with 403 on every consents call (what the
//! connection check's user lookup reads as a wrong `organization_id`).
//!
//! Like a real organization with a webhook, it posts `event.created` (the
//! stored event) and `user.updated` (`source` = that event) to a URL after
//! every stored event — which is how a write-back comes back to prefsync —
//! and on a change the user makes in Didomi itself ([`Didomi::user_changes`]).
//!
//! Unconfirmed in Didomi's documentation, so configurable here: what a
//! second event with a known id gets ([`DuplicateAnswer`], 409 by default),
//! and the status of a created event (201).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Map, Value as Json, json};

use super::{MockServer, RecordedRequest, percent_decode, serve};

/// What a second event with an id already stored gets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DuplicateAnswer {
    /// 409, the event unchanged.
    Conflict,
    /// 200 with the stored event, nothing changed.
    Existing,
}

/// What the next consents requests get instead of a normal answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// This status with `{"message": …}`.
    Status(u16),
}

/// Where the mock posts its webhooks, and the bearer token it sends.
#[derive(Debug, Clone)]
struct WebhookTarget {
    url: String,
    bearer: String,
}

#[derive(Debug)]
struct Inner {
    key: String,
    secret: String,
    organization_id: String,
    purposes: Vec<String>,
    channels: Vec<String>,
    token_life: Duration,
    tokens: HashMap<String, Instant>,
    sessions: usize,
    users: BTreeMap<String, Json>,
    events: Vec<Json>,
    duplicate_answer: DuplicateAnswer,
    faults: VecDeque<Fault>,
    requests: Vec<RecordedRequest>,
    webhook: Option<WebhookTarget>,
    /// prefsync's answers to the webhooks posted: status and body.
    webhook_answers: Vec<(u16, Json)>,
}

/// Handle on a running mock.
#[derive(Clone, Debug)]
pub struct Didomi {
    inner: Arc<Mutex<Inner>>,
}

impl Didomi {
    /// Starts a mock organization whose private API key is `key`/`secret`,
    /// with these purposes and channels.
    pub async fn start(
        key: &str,
        secret: &str,
        organization_id: &str,
        purposes: &[&str],
        channels: &[&str],
    ) -> std::io::Result<MockServer<Didomi>> {
        let handle = Didomi {
            inner: Arc::new(Mutex::new(Inner {
                key: key.into(),
                secret: secret.into(),
                organization_id: organization_id.into(),
                purposes: purposes.iter().map(|s| s.to_string()).collect(),
                channels: channels.iter().map(|s| s.to_string()).collect(),
                token_life: Duration::from_secs(3600),
                tokens: HashMap::new(),
                sessions: 0,
                users: BTreeMap::new(),
                events: Vec::new(),
                duplicate_answer: DuplicateAnswer::Conflict,
                faults: VecDeque::new(),
                requests: Vec::new(),
                webhook: None,
                webhook_answers: Vec::new(),
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

    /// The API base a connector is configured with: `http://127.0.0.1:PORT/v1`.
    pub fn api_base(server: &MockServer<Didomi>) -> String {
        format!("{}/v1", server.url())
    }

    /// Every session token issued so far stops working.
    pub fn expire_tokens(&self) {
        self.lock().tokens.clear();
    }

    /// Sessions created so far.
    pub fn sessions(&self) -> usize {
        self.lock().sessions
    }

    pub fn set_duplicate_answer(&self, answer: DuplicateAnswer) {
        self.lock().duplicate_answer = answer;
    }

    /// Queues faults for the next `/v1/consents/*` requests, in order.
    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.lock().faults.extend(faults);
    }

    /// Every request, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// Every event stored, in order.
    pub fn events(&self) -> Vec<Json> {
        self.lock().events.clone()
    }

    /// The user Didomi holds, if any.
    pub fn user(&self, organization_user_id: &str) -> Option<Json> {
        self.lock().users.get(organization_user_id).cloned()
    }

    /// Posts `event.created` and `user.updated` to `url` (with `bearer`)
    /// after every stored event.
    pub fn subscribe_webhooks(&self, url: &str, bearer: &str) {
        self.lock().webhook = Some(WebhookTarget {
            url: url.into(),
            bearer: bearer.into(),
        });
    }

    /// prefsync's answers to the webhooks posted so far: status and body.
    pub fn webhook_answers(&self) -> Vec<(u16, Json)> {
        self.lock().webhook_answers.clone()
    }

    /// The user changes their consents in Didomi (the privacy center): an
    /// event is stored and the webhooks go out, and are answered, before
    /// this returns. Returns the event.
    pub async fn user_changes(&self, organization_user_id: &str, consents: Json) -> Json {
        let event = json!({
            "id": format!("didomi-{}", self.lock().events.len() + 1),
            "user": {"organization_user_id": organization_user_id},
            "consents": consents,
        });
        let (stored, webhooks) = store_event(&mut self.lock(), event).expect("a valid event");
        self.post_webhooks(webhooks).await;
        stored
    }

    async fn post_webhooks(&self, envelopes: Vec<Json>) {
        let Some(target) = self.lock().webhook.clone() else {
            return;
        };
        let client = reqwest::Client::new();
        for envelope in envelopes {
            let answer = match client
                .post(&target.url)
                .bearer_auth(&target.bearer)
                .json(&envelope)
                .send()
                .await
            {
                Ok(response) => {
                    let status = response.status().as_u16();
                    (status, response.json().await.unwrap_or(Json::Null))
                }
                Err(e) => (0, json!(e.to_string())),
            };
            self.lock().webhook_answers.push(answer);
        }
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"message": message}))).into_response()
}

/// A JWT as Didomi's: header, claims with `iat`/`exp`, signature.
fn jwt(serial: usize, life: Duration) -> String {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let header = engine.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = engine.encode(
        json!({"iat": now, "exp": now + life.as_secs(), "sub": format!("session-{serial}")})
            .to_string(),
    );
    format!("{header}.{claims}.sig{serial}")
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for now.
fn now_rfc3339() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

fn query_param(uri: &Uri, name: &str) -> Option<String> {
    uri.query()?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| percent_decode(value))
    })
}

async fn handle_request(
    State(mock): State<Didomi>,
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
        if uri.path().starts_with("/v1/consents/") {
            inner.faults.pop_front()
        } else {
            None
        }
    };
    if let Some(Fault::Status(status)) = fault {
        return error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "injected failure",
        );
    }

    if method == Method::POST && uri.path() == "/v1/sessions" {
        let mut inner = mock.lock();
        let pair_ok = body_json["type"] == "api-key"
            && body_json["key"].as_str() == Some(inner.key.as_str())
            && body_json["secret"].as_str() == Some(inner.secret.as_str());
        if !pair_ok {
            return error(StatusCode::BAD_REQUEST, "invalid API key or secret");
        }
        inner.sessions += 1;
        let token = jwt(inner.sessions, inner.token_life);
        let expires = Instant::now() + inner.token_life;
        inner.tokens.insert(token.clone(), expires);
        return axum::Json(json!({"access_token": token})).into_response();
    }
    let token_ok = {
        let inner = mock.lock();
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(|t| inner.tokens.get(t))
            .is_some_and(|expires| *expires > Instant::now())
    };
    if !token_ok {
        return error(StatusCode::UNAUTHORIZED, "missing or invalid token");
    }
    if query_param(&uri, "organization_id").as_deref() != Some(mock.lock().organization_id.as_str())
    {
        return error(StatusCode::FORBIDDEN, "not a member of this organization");
    }
    match (method.as_str(), uri.path()) {
        ("GET", "/v1/consents/users") => {
            let Some(user_id) = query_param(&uri, "organization_user_id") else {
                return error(StatusCode::BAD_REQUEST, "organization_user_id is required");
            };
            let data: Vec<Json> = mock
                .lock()
                .users
                .get(&user_id)
                .cloned()
                .into_iter()
                .collect();
            axum::Json(json!({"data": data, "total": data.len()})).into_response()
        }
        ("POST", "/v1/consents/events") => {
            let outcome = store_event(&mut mock.lock(), body_json);
            match outcome {
                Ok((event, webhooks)) => {
                    // Didomi notifies after the write, on its own schedule.
                    let notifier = mock.clone();
                    tokio::spawn(async move { notifier.post_webhooks(webhooks).await });
                    (StatusCode::CREATED, axum::Json(event)).into_response()
                }
                Err(response) => *response,
            }
        }
        _ => error(StatusCode::NOT_FOUND, "no such route"),
    }
}

/// Stores `event`, merges it into its user; the event as stored and the
/// webhook envelopes to post, or the error answer.
fn store_event(inner: &mut Inner, mut event: Json) -> Result<(Json, Vec<Json>), Box<Response>> {
    let Some(user_id) = event
        .pointer("/user/organization_user_id")
        .and_then(Json::as_str)
        .map(str::to_string)
    else {
        return Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "user.organization_user_id is required",
        )));
    };
    for (list, known) in [("purposes", &inner.purposes), ("channels", &inner.channels)] {
        for entry in event
            .pointer(&format!("/consents/{list}"))
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            let id = entry["id"].as_str().unwrap_or("");
            if !known.iter().any(|k| k == id) {
                return Err(Box::new(error(
                    StatusCode::BAD_REQUEST,
                    &format!("{list}: `{id}` does not exist in the organization"),
                )));
            }
        }
    }
    if let Some(id) = event["id"].as_str() {
        if let Some(stored) = inner.events.iter().find(|e| e["id"] == id) {
            return Err(Box::new(match inner.duplicate_answer {
                DuplicateAnswer::Conflict => error(StatusCode::CONFLICT, "event already exists"),
                DuplicateAnswer::Existing => axum::Json(stored.clone()).into_response(),
            }));
        }
    } else {
        event["id"] = json!(format!("didomi-{}", inner.events.len() + 1));
    }
    let now = now_rfc3339();
    event["created_at"] = json!(now);
    event["status"] = json!("confirmed");
    event["organization_id"] = json!(inner.organization_id);
    let old = inner.users.get(&user_id).cloned().unwrap_or(Json::Null);
    let mut user = if old.is_null() {
        json!({"id": format!("u-{}", inner.users.len() + 1), "organization_user_id": user_id,
               "created_at": now, "consents": {"purposes": [], "channels": []}})
    } else {
        old.clone()
    };
    merge(&mut user, &event);
    user["updated_at"] = json!(now);
    inner.users.insert(user_id, user.clone());
    inner.events.push(event.clone());
    let webhooks = if inner.webhook.is_some() {
        vec![
            json!({"type": "event.created", "parameters": {"entity": event}}),
            json!({"type": "user.updated", "parameters": {"source": event, "old_entity": old, "new_entity": user}}),
        ]
    } else {
        Vec::new()
    };
    Ok((event, webhooks))
}

/// Merges an event's consents into the user: purposes and channels by id,
/// field by field, preference values by id.
fn merge(user: &mut Json, event: &Json) {
    for list in ["purposes", "channels"] {
        for change in event
            .pointer(&format!("/consents/{list}"))
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            let entries = user["consents"][list]
                .as_array_mut()
                .expect("users are made with both lists");
            let position = entries.iter().position(|e| e["id"] == change["id"]);
            let entry = match position {
                Some(i) => &mut entries[i],
                None => {
                    entries.push(json!({"id": change["id"]}));
                    entries.last_mut().expect("just pushed")
                }
            };
            let Some(change) = change.as_object() else {
                continue;
            };
            for (field, value) in change {
                if field == "values" {
                    let values = entry
                        .as_object_mut()
                        .expect("an entry is an object")
                        .entry("values")
                        .or_insert_with(|| Json::Object(Map::new()));
                    if let (Some(values), Some(new)) = (values.as_object_mut(), value.as_object()) {
                        values.extend(new.clone());
                    }
                } else {
                    entry[field] = value.clone();
                }
            }
        }
    }
}
