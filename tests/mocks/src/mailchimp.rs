//! Mock Mailchimp Marketing API v3, answering as its documentation and
//! clients describe: HTTP Basic with the API key as password (any user
//! name); audience members addressed by the MD5 of the lower-cased email
//! under `/3.0/lists/{list_id}/members/{hash}` (`PUT` upserts with
//! `status_if_new`, `PATCH` and `GET` answer 404 for an unknown member);
//! the list batch `POST /3.0/lists/{list_id}` with `update_existing`, which
//! answers 200 with `new_members`, `updated_members` and `errors[]` even
//! when some members fail; "Get list info" `GET /3.0/lists/{list_id}`
//! (honouring `fields`; 404 `Resource Not Found` for another list, as every
//! path under an unknown list); a wrong key gets 401 `API Key Invalid`;
//! errors as `application/problem+json`; more than 10 requests at once get
//! a 429 without any rate-limit header.
//!
//! Where the docs say "unconfirmed" the mock picks the plausible answer and
//! can be told otherwise: a member who unsubscribed themselves (or was
//! cleaned) cannot be set `subscribed` (400 "Member In Compliance State",
//! `pending` works); one the API unsubscribed can, unless
//! [`Mailchimp::set_compliance_after_api_unsubscribe`]; the batch's
//! `error_code` is `ERROR_GENERIC`.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Map, Value as Json, json};

use super::{ConcurrencyGauge, InFlight, MockServer, RecordedRequest, percent_decode, serve};

/// Mailchimp answers 429 beyond this many simultaneous connections per account.
pub const CONCURRENCY_LIMIT: usize = 10;
/// Mailchimp's limit on members per list batch.
pub const MAX_BATCH_MEMBERS: usize = 500;

/// An audience member as stored by the mock.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub email: String,
    /// `subscribed`, `unsubscribed`, `cleaned`, `pending`, `transactional`.
    pub status: String,
    /// The member unsubscribed themselves, or was cleaned: the API may not
    /// subscribe them again (only `pending`).
    pub in_compliance_state: bool,
    pub merge_fields: Map<String, Json>,
    /// Marketing permission id → enabled.
    pub permissions: BTreeMap<String, bool>,
}

/// What the next member or batch requests get instead of a normal answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// This status with Mailchimp's problem body (429 without any header).
    Status(u16),
    /// 503 "Request Blocked", an HTML page, as Mailchimp's edge answers
    /// traffic it finds suspicious.
    Blocked,
}

#[derive(Debug)]
struct Inner {
    api_key: String,
    list_id: String,
    merge_fields: Vec<String>,
    permissions: Vec<String>,
    members: BTreeMap<String, Member>,
    faults: VecDeque<Fault>,
    /// Emails the next list batches refuse in `errors[]`, with the text.
    batch_refusals: BTreeMap<String, String>,
    compliance_after_api_unsubscribe: bool,
    requests: Vec<(Instant, RecordedRequest)>,
    busy_refusals: usize,
    confirmations_sent: Vec<String>,
    delay: Option<Duration>,
}

/// Handle on a running mock.
#[derive(Clone, Debug)]
pub struct Mailchimp {
    inner: Arc<Mutex<Inner>>,
    concurrency: Arc<ConcurrencyGauge>,
}

impl Mailchimp {
    /// Starts a mock account with `api_key` and one audience `list_id` that
    /// has these merge field tags and marketing permission ids.
    pub async fn start(
        api_key: &str,
        list_id: &str,
        merge_fields: &[&str],
        permissions: &[&str],
    ) -> std::io::Result<MockServer<Mailchimp>> {
        let handle = Mailchimp {
            inner: Arc::new(Mutex::new(Inner {
                api_key: api_key.into(),
                list_id: list_id.into(),
                merge_fields: merge_fields.iter().map(|s| s.to_string()).collect(),
                permissions: permissions.iter().map(|s| s.to_string()).collect(),
                members: BTreeMap::new(),
                faults: VecDeque::new(),
                batch_refusals: BTreeMap::new(),
                compliance_after_api_unsubscribe: false,
                requests: Vec::new(),
                busy_refusals: 0,
                confirmations_sent: Vec::new(),
                delay: None,
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

    /// Queues faults for the next requests, in order.
    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.lock().faults.extend(faults);
    }

    /// The next list batches refuse `email` in `errors[]` with `error`
    /// (a write of that member on its own is answered normally).
    pub fn refuse_in_batch(&self, email: &str, error: &str) {
        self.lock()
            .batch_refusals
            .insert(email.to_lowercase(), error.into());
    }

    /// Whether a member the API unsubscribed is kept from being subscribed
    /// again by the API, as one who unsubscribed themselves is (unconfirmed;
    /// off by default).
    pub fn set_compliance_after_api_unsubscribe(&self, on: bool) {
        self.lock().compliance_after_api_unsubscribe = on;
    }

    /// Every request takes this long (so requests overlap).
    pub fn set_delay(&self, delay: Option<Duration>) {
        self.lock().delay = delay;
    }

    /// Adds a member directly, as an import in Mailchimp's UI would.
    pub fn insert_member(&self, email: &str, status: &str) {
        self.lock().members.insert(
            subscriber_hash(email),
            Member {
                email: email.into(),
                status: status.into(),
                in_compliance_state: status == "cleaned",
                merge_fields: Map::new(),
                permissions: BTreeMap::new(),
            },
        );
    }

    /// The member clicks "unsubscribe" in an email: from now on the API
    /// cannot subscribe them again.
    pub fn member_unsubscribes(&self, email: &str) {
        if let Some(member) = self.lock().members.get_mut(&subscriber_hash(email)) {
            member.status = "unsubscribed".into();
            member.in_compliance_state = true;
        }
    }

    pub fn member(&self, email: &str) -> Option<Member> {
        self.lock().members.get(&subscriber_hash(email)).cloned()
    }

    pub fn members(&self) -> Vec<Member> {
        self.lock().members.values().cloned().collect()
    }

    /// Every request, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock()
            .requests
            .iter()
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Every request with when it arrived, in order.
    pub fn timed_requests(&self) -> Vec<(Instant, RecordedRequest)> {
        self.lock().requests.clone()
    }

    /// Requests with this method.
    pub fn requests_with(&self, method: &str) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method)
            .collect()
    }

    /// Emails Mailchimp sent a double opt-in confirmation to (members set `pending`).
    pub fn confirmations_sent(&self) -> Vec<String> {
        self.lock().confirmations_sent.clone()
    }

    /// The most requests answered at once.
    pub fn peak_concurrency(&self) -> usize {
        self.concurrency.peak()
    }

    /// Requests refused with 429 for passing the concurrency limit.
    pub fn busy_refusals(&self) -> usize {
        self.lock().busy_refusals
    }
}

/// Mailchimp's subscriber hash: MD5 hex of the lower-cased email.
pub fn subscriber_hash(email: &str) -> String {
    md5(email.to_lowercase().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// MD5 (RFC 1321), written out so the mock checks the connector's hashes
/// with an implementation of its own.
fn md5(input: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    let k: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32)
        .collect();
    let mut message = input.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((input.len() as u64).wrapping_mul(8)).to_le_bytes());
    let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    for chunk in message.chunks(64) {
        let words: Vec<u32> = chunk
            .chunks(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let [mut a, mut b, mut c, mut d] = state;
        for (i, (&shift, &constant)) in S.iter().zip(&k).enumerate() {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let rotated = a
                .wrapping_add(f)
                .wrapping_add(constant)
                .wrapping_add(words[g])
                .rotate_left(shift);
            (a, d, c) = (d, c, b);
            b = b.wrapping_add(rotated);
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d]) {
            *s = s.wrapping_add(v);
        }
    }
    let mut out = [0u8; 16];
    for (i, word) in state.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&word.to_le_bytes());
    }
    out
}

/// The title Mailchimp gives each status.
fn title(status: u16) -> &'static str {
    match status {
        400 => "Invalid Resource",
        401 => "API Key Invalid",
        403 => "Forbidden",
        404 => "Resource Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

/// An `application/problem+json` answer.
fn problem(status: u16, title: &str, detail: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        [(header::CONTENT_TYPE, "application/problem+json")],
        json!({
            "type": "https://mailchimp.com/developer/marketing/docs/errors/",
            "title": title,
            "status": status,
            "detail": detail,
            "instance": "7e1c4a52-0d6b-4c2b-a1c5-3f7f5f8a9b10"
        })
        .to_string(),
    )
        .into_response()
}

/// A plausible email: something, `@`, a domain with a dot.
fn valid_email(email: &str) -> bool {
    email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !domain.ends_with('.')
    })
}

async fn handle_request(
    State(mock): State<Mailchimp>,
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
        inner.requests.push((
            Instant::now(),
            RecordedRequest::new(&method, &uri, &headers, body_json.clone()),
        ));
        if over_limit {
            inner.busy_refusals += 1;
        }
        (inner.faults.pop_front(), inner.delay)
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if over_limit {
        return problem(
            429,
            "Too Many Requests",
            "You have exceeded the limit of 10 simultaneous connections.",
        );
    }
    match fault {
        Some(Fault::Blocked) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONTENT_TYPE, "text/html")],
                "<html><body><h1>Request Blocked</h1></body></html>",
            )
                .into_response();
        }
        Some(Fault::Status(status)) => {
            return problem(status, title(status), "injected failure");
        }
        None => {}
    }

    // Basic auth: any user name, the key as password.
    let password = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| pair.split_once(':').map(|(_, p)| p.to_string()));
    if password.as_deref() != Some(mock.lock().api_key.as_str()) {
        return problem(
            401,
            "API Key Invalid",
            "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
        );
    }

    let segments: Vec<String> = uri
        .path()
        .trim_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let (list, rest) = match segments.as_slice() {
        ["3.0", "lists", list, rest @ ..] => (*list, rest),
        _ => {
            return problem(
                404,
                "Resource Not Found",
                "The requested resource could not be found.",
            );
        }
    };
    if list != mock.lock().list_id {
        return problem(
            404,
            "Resource Not Found",
            "The requested resource could not be found.",
        );
    }
    match (method.as_str(), rest) {
        ("POST", []) => list_batch(&mock, &body_json),
        ("GET", []) => list_info(&mock, list, &uri),
        ("GET", ["members", hash]) => match mock.lock().members.get(*hash) {
            Some(member) => axum::Json(member_json(list, hash, member)).into_response(),
            None => problem(
                404,
                "Resource Not Found",
                "The requested resource could not be found.",
            ),
        },
        ("PUT" | "PATCH", ["members", hash]) => {
            write_member(&mock, list, hash, &body_json, method == Method::PUT)
        }
        _ => problem(
            405,
            "Method Not Allowed",
            "The requested method and resource are not compatible.",
        ),
    }
}

/// "Get list info": the audience, with only the top-level `fields` asked
/// for (a comma-separated list) when the query names some.
fn list_info(mock: &Mailchimp, list: &str, uri: &Uri) -> Response {
    let member_count = mock.lock().members.len();
    let info = json!({
        "id": list,
        "web_id": 123456,
        "name": "prefsync mock audience",
        "double_optin": false,
        "marketing_permissions": true,
        "stats": {"member_count": member_count}
    });
    let fields: Option<Vec<String>> = uri.query().and_then(|query| {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(name, _)| *name == "fields")
            .map(|(_, value)| {
                percent_decode(value)
                    .split(',')
                    .map(str::to_string)
                    .collect()
            })
    });
    match (fields, info) {
        (Some(fields), Json::Object(all)) => axum::Json(Json::Object(
            all.into_iter()
                .filter(|(name, _)| fields.iter().any(|f| f == name))
                .collect(),
        ))
        .into_response(),
        (_, info) => axum::Json(info).into_response(),
    }
}

fn member_json(list: &str, hash: &str, member: &Member) -> Json {
    json!({
        "id": hash,
        "email_address": member.email,
        "unique_email_id": &hash[..10],
        "status": member.status,
        "merge_fields": member.merge_fields,
        "marketing_permissions": member.permissions.iter().map(|(id, on)| json!({
            "marketing_permission_id": id, "text": format!("Permission {id}"), "enabled": on
        })).collect::<Vec<_>>(),
        "list_id": list,
        "last_changed": "2026-12-04T10:00:00+00:00"
    })
}

/// Why a write of `body` to a member is refused, as `(title, detail)`.
enum Refusal {
    Invalid(String),
    Compliance(String),
}

/// Applies the fields of `body` to `member` (status last), or refuses.
fn apply(
    inner: &mut Inner,
    member: &mut Member,
    body: &Json,
    status: Option<&str>,
) -> Result<(), Refusal> {
    for (tag, value) in body["merge_fields"].as_object().into_iter().flatten() {
        if !inner.merge_fields.iter().any(|t| t == tag) {
            return Err(Refusal::Invalid(format!(
                "Your merge fields were invalid: `{tag}` is not a merge field of this audience."
            )));
        }
        member.merge_fields.insert(tag.clone(), value.clone());
    }
    for permission in body["marketing_permissions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let (Some(id), Some(enabled)) = (
            permission["marketing_permission_id"].as_str(),
            permission["enabled"].as_bool(),
        ) else {
            return Err(Refusal::Invalid(
                "A marketing permission needs `marketing_permission_id` and a boolean `enabled`."
                    .into(),
            ));
        };
        if !inner.permissions.iter().any(|p| p == id) {
            return Err(Refusal::Invalid(format!(
                "Invalid marketing permission id `{id}`."
            )));
        }
        member.permissions.insert(id.to_string(), enabled);
    }
    if let Some(status) = status {
        if ![
            "subscribed",
            "unsubscribed",
            "pending",
            "transactional",
            "cleaned",
        ]
        .contains(&status)
        {
            return Err(Refusal::Invalid(format!("Invalid status `{status}`.")));
        }
        let kept_out = member.in_compliance_state
            || (inner.compliance_after_api_unsubscribe && member.status == "unsubscribed");
        if status == "subscribed" && member.status != "subscribed" && kept_out {
            return Err(Refusal::Compliance(format!(
                "{} is in a compliance state due to unsubscribe, bounce, or compliance review and cannot be subscribed.",
                member.email
            )));
        }
        if status == "pending" && member.status != "pending" {
            inner.confirmations_sent.push(member.email.clone());
        }
        if status == "subscribed" {
            member.in_compliance_state = false;
        }
        member.status = status.to_string();
    }
    Ok(())
}

/// `PUT` (upsert, `status_if_new` for a new member) or `PATCH` (404 for an
/// unknown one) of `/lists/{list}/members/{hash}`.
fn write_member(mock: &Mailchimp, list: &str, hash: &str, body: &Json, upsert: bool) -> Response {
    let mut inner = mock.lock();
    let existing = inner.members.get(hash).cloned();
    let email = body["email_address"].as_str().map(str::to_string);
    if existing.is_none() && !upsert {
        return problem(
            404,
            "Resource Not Found",
            "The requested resource could not be found.",
        );
    }
    let email = match (email, &existing) {
        (Some(email), _) => email,
        (None, Some(member)) => member.email.clone(),
        (None, None) => {
            return problem(
                400,
                "Invalid Resource",
                "The resource submitted could not be validated: email_address is required.",
            );
        }
    };
    if !valid_email(&email) {
        return problem(
            400,
            "Invalid Resource",
            "Please provide a valid email address.",
        );
    }
    if subscriber_hash(&email) != hash {
        return problem(
            400,
            "Invalid Resource",
            "The subscriber hash does not match the email address.",
        );
    }
    let (mut member, status) = match existing {
        Some(member) => (member, body["status"].as_str().map(str::to_string)),
        None => {
            let Some(status) = body["status_if_new"].as_str().or(body["status"].as_str()) else {
                return problem(
                    400,
                    "Invalid Resource",
                    "The resource submitted could not be validated: status_if_new is required for a new member.",
                );
            };
            let member = Member {
                email: email.clone(),
                status: String::new(),
                in_compliance_state: false,
                merge_fields: Map::new(),
                permissions: BTreeMap::new(),
            };
            (member, Some(status.to_string()))
        }
    };
    match apply(&mut inner, &mut member, body, status.as_deref()) {
        Err(Refusal::Invalid(detail)) => problem(400, "Invalid Resource", &detail),
        Err(Refusal::Compliance(detail)) => problem(400, "Member In Compliance State", &detail),
        Ok(()) => {
            let json = member_json(list, hash, &member);
            inner.members.insert(hash.to_string(), member);
            axum::Json(json).into_response()
        }
    }
}

/// `POST /lists/{list}`: 200 with each member's fate, refusals in `errors[]`.
fn list_batch(mock: &Mailchimp, body: &Json) -> Response {
    let Some(members) = body["members"].as_array() else {
        return problem(
            400,
            "Invalid Resource",
            "The resource submitted could not be validated: members is required.",
        );
    };
    if members.len() > MAX_BATCH_MEMBERS {
        return problem(
            400,
            "Invalid Resource",
            "You may not submit more than 500 members in one request.",
        );
    }
    let update_existing = body["update_existing"].as_bool().unwrap_or(false);
    let mut inner = mock.lock();
    let (mut created, mut updated, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    let mut seen = HashSet::new();
    for entry in members {
        let email = entry["email_address"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut refuse = |error: String, code: &str| {
            errors.push(json!({"email_address": email, "error": error, "error_code": code}));
        };
        if !valid_email(&email) {
            refuse(
                format!("{email} looks fake or invalid, please enter a real email address."),
                "ERROR_GENERIC",
            );
            continue;
        }
        if let Some(error) = inner.batch_refusals.get(&email.to_lowercase()) {
            refuse(error.clone(), "ERROR_GENERIC");
            continue;
        }
        let hash = subscriber_hash(&email);
        if !seen.insert(hash.clone()) {
            refuse(format!("{email} is in the batch twice."), "ERROR_GENERIC");
            continue;
        }
        let existing = inner.members.get(&hash).cloned();
        if existing.is_some() && !update_existing {
            refuse(
                format!(
                    "{email} is already a list member. Use PUT to insert or update list members."
                ),
                "ERROR_CONTACT_EXISTS",
            );
            continue;
        }
        let Some(status) = entry["status"].as_str() else {
            refuse("status is required".into(), "ERROR_GENERIC");
            continue;
        };
        let is_new = existing.is_none();
        let mut member = existing.unwrap_or(Member {
            email: email.clone(),
            status: String::new(),
            in_compliance_state: false,
            merge_fields: Map::new(),
            permissions: BTreeMap::new(),
        });
        match apply(&mut inner, &mut member, entry, Some(status)) {
            Err(Refusal::Invalid(error) | Refusal::Compliance(error)) => {
                refuse(error, "ERROR_GENERIC")
            }
            Ok(()) => {
                let json = member_json(&inner.list_id, &hash, &member);
                inner.members.insert(hash, member);
                if is_new {
                    created.push(json)
                } else {
                    updated.push(json)
                }
            }
        }
    }
    axum::Json(json!({
        "total_created": created.len(),
        "total_updated": updated.len(),
        "error_count": errors.len(),
        "new_members": created,
        "updated_members": updated,
        "errors": errors,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::subscriber_hash;

    #[test]
    fn the_hash_is_md5_of_the_lower_cased_email() {
        assert_eq!(
            subscriber_hash("Ann@Example.com"),
            "257c57037d384ae37ea27a07e8a01665"
        );
        assert_eq!(subscriber_hash(""), "d41d8cd98f00b204e9800998ecf8427e");
    }
}
