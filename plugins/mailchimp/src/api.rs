//! Requests to Mailchimp's Marketing API v3 and how its answers are
//! classified.
//!
//! A member is addressed by its subscriber hash, the MD5 of the lower-cased
//! email. With `upsert_mode`, records whose subscription status is known go
//! through the list batch (`POST /lists/{list_id}`, `update_existing: true`),
//! which says per member whether it was created, updated or refused; the
//! others (no status choice, a refused member, an email twice in the batch)
//! are written alone with `PUT /lists/{list_id}/members/{hash}`. Without
//! `upsert_mode` every record is a `PATCH` of the same path, which never
//! creates (404 → skipped).
//!
//! Mailchimp's errors are `application/problem+json`
//! (`{type, title, status, detail, instance}`); they are classified by HTTP
//! status, the title and detail go in the message.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use prefsync_sdk::connection::{unreachable, verdict};
use prefsync_sdk::http::{encode_component, failure_from_response};
use prefsync_sdk::{
    ConsentRecord, Context, DeliveredKind, Failure, HttpError, Method, Outcome, Request, Response,
    ValidationProblem, Value,
};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use crate::config::{MailchimpConfig, Target};

/// Most members in one list batch (Mailchimp's limit).
pub const MAX_BATCH_MEMBERS: usize = 500;
/// One member request.
const MEMBER_TIMEOUT_MS: u32 = 30_000;
/// The list batch writes up to 500 members: give it longer.
const BATCH_TIMEOUT_MS: u32 = 45_000;
/// No member request starts after this much of a call: with the request
/// timeout it stays inside the host's 150 s per call, and the records not
/// sent are retried by the host rather than lost to a call timeout.
const CALL_BUDGET: Duration = Duration::from_secs(100);
/// The wait hinted after a 429: Mailchimp gives no `Retry-After`; its limit
/// is on simultaneous connections, so a wait frees it, and its guidance is
/// to back off well.
pub const THROTTLED_WAIT_MS: u64 = 30_000;
/// The wait hinted after a 503 without `Retry-After`: Mailchimp answers 503
/// "Request Blocked" to traffic it finds suspicious, which takes a while to
/// lift.
pub const BLOCKED_WAIT_MS: u64 = 120_000;
/// The title of Mailchimp's refusal to set an unsubscribed or cleaned
/// member `subscribed` through the API.
pub const COMPLIANCE_TITLE: &str = "Member In Compliance State";

/// A member's subscription status, as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Subscribed,
    Unsubscribed,
    /// Mailchimp emails a confirmation; the member is subscribed once they confirm.
    Pending,
    /// Known to the audience, not opted in to marketing: a new member whose
    /// user made no choice yet.
    Transactional,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Subscribed => "subscribed",
            Status::Unsubscribed => "unsubscribed",
            Status::Pending => "pending",
            Status::Transactional => "transactional",
        }
    }
}

/// What a record becomes at Mailchimp.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub email: String,
    /// MD5 hex of the lower-cased email: the member's id in URLs.
    pub hash: String,
    /// From the `status` mapping; `None` when the user made no choice.
    pub status: Option<Status>,
    pub merge_fields: Map<String, Json>,
    /// `{marketing_permission_id, enabled}` for each permission chosen.
    pub permissions: Vec<Json>,
}

/// The subscriber hash of an email.
pub fn subscriber_hash(email: &str) -> String {
    Md5::digest(email.to_lowercase().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Member {
    /// The member a record describes; `Err` is the record's outcome when it
    /// cannot be one (no email, a value of the wrong type).
    pub fn from_record(
        config: &MailchimpConfig,
        record: &ConsentRecord,
    ) -> Result<Member, Outcome> {
        let email = match &config.properties.email_property {
            None => Some(record.key.trim().to_string()),
            Some(name) => match record.property(name) {
                Some(Value::Text(email)) => Some(email.trim().to_string()),
                _ => None,
            },
        }
        .filter(|email| !email.is_empty());
        let Some(email) = email else {
            let source = config
                .properties
                .email_property
                .as_deref()
                .unwrap_or("the user key");
            return Err(Outcome::Skipped(format!("no email in {source}")));
        };
        let mut member = Member {
            hash: subscriber_hash(&email),
            email,
            status: None,
            merge_fields: Map::new(),
            permissions: Vec::new(),
        };
        let wrong_type = |property: &str, target: &str| {
            Outcome::permanent(format!(
                "`{property}` must be true, false or null to set {target}"
            ))
        };
        for (mapping, field) in config
            .mappings
            .iter()
            .filter_map(|m| record.property(&m.value).map(|v| (m, v)))
        {
            // A null choice (none made) changes nothing.
            if *field == Value::Null {
                continue;
            }
            match Target::of(&mapping.id) {
                Target::Status => match field {
                    Value::Boolean(true) => member.status = Some(Status::Subscribed),
                    Value::Boolean(false) => member.status = Some(Status::Unsubscribed),
                    _ => return Err(wrong_type(&mapping.value, "the member's status")),
                },
                Target::Permission(id) => match field {
                    Value::Boolean(enabled) => member
                        .permissions
                        .push(json!({"marketing_permission_id": id, "enabled": enabled})),
                    _ => return Err(wrong_type(&mapping.value, "a marketing permission")),
                },
                // Merge fields are text, numbers or dates: a boolean is sent as its word.
                Target::MergeField(tag) => {
                    let value = match field {
                        Value::Boolean(b) => Json::String(b.to_string()),
                        other => other.to_json(),
                    };
                    member.merge_fields.insert(tag.to_string(), value);
                }
            }
        }
        Ok(member)
    }

    /// The fields every write carries; an empty merge field or permission
    /// list is left out so Mailchimp keeps what it has.
    fn common_fields(&self) -> Map<String, Json> {
        let mut body = Map::new();
        body.insert("email_address".into(), json!(self.email));
        if !self.merge_fields.is_empty() {
            body.insert(
                "merge_fields".into(),
                Json::Object(self.merge_fields.clone()),
            );
        }
        if !self.permissions.is_empty() {
            body.insert("marketing_permissions".into(), json!(self.permissions));
        }
        body
    }

    /// `PUT` body: `status_if_new` creates with the chosen status, or as
    /// `transactional` when no choice was made (never subscribed without
    /// consent); `status` changes an existing member only when chosen.
    pub fn put_body(&self, status: Option<Status>) -> Json {
        let mut body = self.common_fields();
        body.insert(
            "status_if_new".into(),
            json!(status.unwrap_or(Status::Transactional).as_str()),
        );
        if let Some(status) = status {
            body.insert("status".into(), json!(status.as_str()));
        }
        Json::Object(body)
    }

    /// `PATCH` body: an existing member's fields, and its status when chosen.
    pub fn patch_body(&self, status: Option<Status>) -> Json {
        let mut body = self.common_fields();
        if let Some(status) = status {
            body.insert("status".into(), json!(status.as_str()));
        }
        Json::Object(body)
    }

    /// One entry of a list batch (only members with a status go there).
    fn batch_entry(&self, status: Status) -> Json {
        let mut body = self.common_fields();
        body.insert("status".into(), json!(status.as_str()));
        Json::Object(body)
    }
}

/// Stops sending member requests once a call has run [`CALL_BUDGET`].
struct Deadline(Instant);

impl Deadline {
    fn start() -> Self {
        Deadline(Instant::now())
    }

    fn passed(&self) -> bool {
        self.0.elapsed() >= CALL_BUDGET
    }
}

/// One record.
pub fn deliver(ctx: &Context<'_>, config: &MailchimpConfig, record: &ConsentRecord) -> Outcome {
    deliver_batch(ctx, config, std::slice::from_ref(record))
        .pop()
        .unwrap_or_else(|| Outcome::permanent("no outcome"))
}

/// A batch of records: one outcome per record, in order.
pub fn deliver_batch(
    ctx: &Context<'_>,
    config: &MailchimpConfig,
    batch: &[ConsentRecord],
) -> Vec<Outcome> {
    let base = match config.base_url() {
        Ok(base) => base,
        Err(e) => {
            let outcome = Outcome::permanent(format!("authentication.api_key: {e}"));
            return batch.iter().map(|_| outcome.clone()).collect();
        }
    };
    let list_url = format!(
        "{base}/lists/{}",
        encode_component(&config.properties.list_id)
    );
    let deadline = Deadline::start();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];
    // Records written on their own, by index.
    let mut alone: Vec<(usize, Member)> = Vec::new();
    let mut batched: Vec<(usize, Member, Status)> = Vec::new();
    let mut batched_hashes = std::collections::HashSet::new();
    for (i, record) in batch.iter().enumerate() {
        match Member::from_record(config, record) {
            Err(outcome) => outcomes[i] = Some(outcome),
            Ok(member) => match member.status {
                // The list batch needs a status and holds one entry per email.
                Some(status)
                    if config.upsert_mode && batched_hashes.insert(member.hash.clone()) =>
                {
                    batched.push((i, member, status))
                }
                _ => alone.push((i, member)),
            },
        }
    }

    for chunk in batched.chunks(MAX_BATCH_MEMBERS) {
        list_batch(
            ctx,
            config,
            &list_url,
            batch,
            chunk,
            &mut outcomes,
            &mut alone,
        );
    }

    alone.sort_by_key(|(i, _)| *i);
    for (i, member) in alone {
        let ctx = ctx.for_record(&batch[i].key);
        outcomes[i] = Some(if deadline.passed() {
            Outcome::Failed(Failure {
                retryable: true,
                retry_after_ms: Some(0),
                message: "not sent: this call ran out of time for one request per member".into(),
            })
        } else {
            write_member(&ctx, config, &list_url, &member)
        });
    }
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Outcome::permanent("no outcome")))
        .collect()
}

/// `POST /lists/{list_id}` with `update_existing: true`: each member's fate
/// goes on its record. A member Mailchimp refused, or did not mention, is
/// queued in `alone` to be written on its own, whose answer has a status to
/// classify (the batch's `errors[]` has none).
fn list_batch(
    ctx: &Context<'_>,
    config: &MailchimpConfig,
    list_url: &str,
    records: &[ConsentRecord],
    chunk: &[(usize, Member, Status)],
    outcomes: &mut [Option<Outcome>],
    alone: &mut Vec<(usize, Member)>,
) {
    let body = json!({
        "members": chunk.iter().map(|(_, m, status)| m.batch_entry(*status)).collect::<Vec<_>>(),
        "update_existing": true,
    });
    let answer = match send_list_batch(ctx, config, list_url, &body) {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(response)) => Err(failure(&response)),
        Err(e) => Err(e.into_outcome("Mailchimp list batch")),
    };
    let answer = match answer {
        Ok(answer) => answer,
        Err(outcome) => {
            for (i, _, _) in chunk {
                outcomes[*i] = Some(outcome.clone());
            }
            return;
        }
    };
    let mut fate: HashMap<String, Fate> = HashMap::new();
    for member in &answer.new_members {
        fate.insert(member.email_address.to_lowercase(), Fate::Created);
    }
    for member in &answer.updated_members {
        fate.insert(member.email_address.to_lowercase(), Fate::Updated);
    }
    for error in answer.errors {
        if let Some(email) = &error.email_address {
            fate.insert(email.to_lowercase(), Fate::Refused(error));
        }
    }
    for (i, member, _) in chunk {
        let ctx = ctx.for_record(&records[*i].key);
        match fate.remove(&member.email.to_lowercase()) {
            Some(Fate::Created) => outcomes[*i] = Some(Outcome::Delivered(DeliveredKind::Created)),
            Some(Fate::Updated) => outcomes[*i] = Some(Outcome::Delivered(DeliveredKind::Updated)),
            Some(Fate::Refused(error)) => {
                ctx.info(
                    "Mailchimp's list batch refused the member; writing it on its own",
                    &[
                        ("error_code", error.error_code.as_deref().unwrap_or("")),
                        ("error", error.error.as_deref().unwrap_or("")),
                    ],
                );
                alone.push((*i, member.clone()));
            }
            None => {
                ctx.warn(
                    "Mailchimp's list batch did not mention the member; writing it on its own",
                    &[],
                );
                alone.push((*i, member.clone()));
            }
        }
    }
}

/// Sends a list batch: its answer on a 2xx (an unreadable one reads as
/// empty, so every member counts as not mentioned), the response otherwise.
pub(crate) fn send_list_batch(
    ctx: &Context<'_>,
    config: &MailchimpConfig,
    list_url: &str,
    body: &Json,
) -> Result<Result<BatchAnswer, Response>, HttpError> {
    let response = ctx.send(
        request(config, Method::Post, list_url)
            .json(body)
            .timeout_ms(BATCH_TIMEOUT_MS),
    )?;
    if !(200..300).contains(&response.status) {
        return Ok(Err(response));
    }
    Ok(Ok(response.json::<BatchAnswer>().unwrap_or_else(|e| {
        ctx.warn(
            "Mailchimp's list batch answer is unreadable",
            &[("error", &e.to_string())],
        );
        BatchAnswer::default()
    })))
}

/// Sends one member request with a JSON body.
pub(crate) fn send_member(
    ctx: &Context<'_>,
    config: &MailchimpConfig,
    method: Method,
    url: &str,
    body: &Json,
) -> Result<Response, HttpError> {
    ctx.send(request(config, method, url).json(body))
}

/// What the list batch says of one member.
enum Fate {
    Created,
    Updated,
    Refused(BatchError),
}

/// The list batch's answer (200 even when some members fail).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct BatchAnswer {
    #[serde(default)]
    pub new_members: Vec<BatchMember>,
    #[serde(default)]
    pub updated_members: Vec<BatchMember>,
    #[serde(default)]
    pub errors: Vec<BatchError>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct BatchMember {
    pub email_address: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct BatchError {
    #[serde(default)]
    pub email_address: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub error_code: Option<String>,
}

/// One member on its own: `PUT` (upsert) or `PATCH` (update only; 404 →
/// skipped). A re-consent Mailchimp refuses as "Member In Compliance State"
/// is sent again as `pending` when the config allows.
fn write_member(
    ctx: &Context<'_>,
    config: &MailchimpConfig,
    list_url: &str,
    member: &Member,
) -> Outcome {
    let url = format!("{list_url}/members/{}", member.hash);
    let write = |status: Option<Status>| {
        let (method, body) = if config.upsert_mode {
            (Method::Put, member.put_body(status))
        } else {
            (Method::Patch, member.patch_body(status))
        };
        ctx.send(request(config, method, &url).json(&body))
    };
    let mut response = match write(member.status) {
        Ok(r) => r,
        Err(e) => return e.into_outcome("Mailchimp member write"),
    };
    if member.status == Some(Status::Subscribed)
        && response.status == 400
        && problem(&response).is_some_and(|p| p.title.as_deref() == Some(COMPLIANCE_TITLE))
    {
        if !config.resubscribe_with_pending() {
            return Outcome::permanent(format!(
                "HTTP 400: {}: the member unsubscribed or was cleaned; Mailchimp only re-subscribes through a confirmation email (properties.resubscribe_with_pending is off)",
                COMPLIANCE_TITLE
            ));
        }
        ctx.info(
            "member in compliance state: set pending; Mailchimp emails a confirmation",
            &[],
        );
        response = match write(Some(Status::Pending)) {
            Ok(r) => r,
            Err(e) => return e.into_outcome("Mailchimp member write (pending)"),
        };
    }
    match response.status {
        // Mailchimp's PUT answers 200 whether it created or updated.
        200..=299 => Outcome::Delivered(DeliveredKind::Updated),
        404 if !config.upsert_mode => {
            ctx.debug("member not in the audience; upsert_mode is off", &[]);
            Outcome::Skipped("member not in the audience".into())
        }
        _ => failure(&response),
    }
}

/// Where a refused key is reported.
pub const KEY_PATH: &str = "authentication.api_key";
/// Where an audience Mailchimp does not know is reported.
pub const LIST_PATH: &str = "properties.list_id";
/// A check is one small read: it need not wait as long as a write.
const CHECK_TIMEOUT_MS: u32 = 15_000;

/// The connection check: one `GET /lists/{list_id}?fields=id` ("Get list
/// info", asking only for the id), which needs the key and the audience and
/// writes nothing. 2xx accepted; 401/403 the key refused (at
/// `authentication.api_key`); 404 the audience unknown to this key's
/// account (at `properties.list_id`); 408/425/429/5xx or a transport error
/// → the check could not be made; another 4xx a problem of the whole config.
pub fn check_connection(
    ctx: &Context<'_>,
    config: &MailchimpConfig,
) -> Result<Vec<ValidationProblem>, String> {
    let base = match config.base_url() {
        Ok(base) => base,
        Err(e) => {
            return Ok(vec![ValidationProblem {
                path: KEY_PATH.into(),
                message: e.to_string(),
            }]);
        }
    };
    let url = format!(
        "{base}/lists/{}?fields=id",
        encode_component(&config.properties.list_id)
    );
    let request = request(config, Method::Get, &url).timeout_ms(CHECK_TIMEOUT_MS);
    let response = match ctx.send(request) {
        Ok(response) => response,
        Err(error) => return unreachable(&error),
    };
    if response.status == 404 {
        return Ok(vec![ValidationProblem {
            path: LIST_PATH.into(),
            message: format!(
                "Mailchimp knows no audience `{}` for this key (HTTP 404)",
                config.properties.list_id
            ),
        }]);
    }
    verdict(&response, KEY_PATH)
}

/// Basic auth with the key as password (Mailchimp ignores the user name).
fn request(config: &MailchimpConfig, method: Method, url: &str) -> Request {
    Request::new(method, url)
        .basic_auth("prefsync", &config.authentication.api_key)
        .header("Accept", "application/json")
        .timeout_ms(MEMBER_TIMEOUT_MS)
}

/// Mailchimp's `application/problem+json` error body.
#[derive(Debug, Deserialize)]
struct Problem {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    detail: Option<String>,
}

fn problem(response: &Response) -> Option<Problem> {
    response.json::<Problem>().ok()
}

/// `title: detail` of a problem body, or the start of the body.
pub(crate) fn error_detail(response: &Response) -> String {
    match problem(response) {
        Some(Problem {
            title: Some(title),
            detail: Some(detail),
        }) if !detail.is_empty() => format!("{title}: {detail}"),
        Some(Problem {
            title: Some(title), ..
        }) => title,
        _ => response.text_snippet(200),
    }
}

/// A non-2xx answer as a failure, by HTTP status: 401 says to check the
/// key; 429 and 503 are retried after a long wait (Mailchimp sends no
/// `Retry-After`; one it sends anyway wins); other 5xx retryable; other 4xx
/// permanent.
fn failure(response: &Response) -> Outcome {
    let detail = error_detail(response);
    if response.status == 401 {
        return Outcome::permanent(format!(
            "Mailchimp refused the API key (HTTP 401: {detail}): check authentication.api_key"
        ));
    }
    match failure_from_response(response, &detail) {
        Outcome::Failed(Failure {
            retryable: true,
            retry_after_ms: None,
            message,
        }) if matches!(response.status, 429 | 503) => Outcome::Failed(Failure {
            retryable: true,
            retry_after_ms: Some(if response.status == 429 {
                THROTTLED_WAIT_MS
            } else {
                BLOCKED_WAIT_MS
            }),
            message,
        }),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use prefsync_sdk::testing::MockHost;
    use prefsync_sdk::{HttpError, connector};

    use super::*;
    use crate::Mailchimp;

    const KEY: &str = "0123456789abcdef0123456789abcdef-us14";
    const BASE: &str = "https://us14.api.mailchimp.com/3.0";
    /// md5("ann@example.com")
    const ANN: &str = "257c57037d384ae37ea27a07e8a01665";

    fn config(upsert: bool) -> Json {
        json!({
            "type_id": "mailchimp",
            "authentication": {"api_key": KEY},
            "properties": {"list_id": "a1b2c3d4e5"},
            "mappings": [
                {"id": "status", "value": "consents_channels_email_enabled"},
                {"id": "permission:f00d", "value": "consents_purposes_newsletter_enabled"},
                {"id": "permission:beef", "value": "consents_purposes_partners_enabled"},
                {"id": "TIER", "value": "metadata_tier"},
                {"id": "AGE", "value": "metadata_age"},
                {"id": "VIP", "value": "metadata_vip"}
            ],
            "upsert_mode": upsert
        })
    }

    fn record(email: &str, channel: Value) -> ConsentRecord {
        ConsentRecord::new(
            "organization_user_id",
            email,
            &[
                ("organization_user_id", Value::Text(email.into())),
                ("consents_channels_email_enabled", channel),
                ("consents_purposes_newsletter_enabled", Value::Boolean(true)),
                ("consents_purposes_partners_enabled", Value::Null),
                ("metadata_tier", Value::Text("gold".into())),
                ("metadata_age", Value::Number(42.0)),
                ("metadata_vip", Value::Boolean(true)),
            ],
        )
    }

    fn ann(channel: Value) -> ConsentRecord {
        record("Ann@Example.com", channel)
    }

    fn run(host: &MockHost, config: &Json, records: &[ConsentRecord]) -> Vec<Outcome> {
        connector::deliver::<Mailchimp>(host, &config.to_string(), records)
    }

    fn body(host: &MockHost, index: usize) -> Json {
        serde_json::from_slice(host.requests.borrow()[index].body.as_ref().unwrap()).unwrap()
    }

    fn problem_body(status: u16, title: &str, detail: &str) -> String {
        json!({"type": "https://mailchimp.com/developer/marketing/docs/errors/",
               "title": title, "status": status, "detail": detail, "instance": "0f1e2d"})
        .to_string()
    }

    fn batch_answer(new: &[&str], updated: &[&str], errors: &[(&str, &str)]) -> String {
        let members = |emails: &[&str]| -> Vec<Json> {
            emails
                .iter()
                .map(|e| json!({"email_address": e, "status": "subscribed"}))
                .collect()
        };
        json!({
            "new_members": members(new),
            "updated_members": members(updated),
            "errors": errors.iter().map(|(e, why)| json!({"email_address": e, "error": why, "error_code": "ERROR_GENERIC"})).collect::<Vec<_>>(),
            "total_created": new.len(), "total_updated": updated.len(), "error_count": errors.len()
        })
        .to_string()
    }

    #[test]
    fn the_subscriber_hash_is_the_md5_of_the_lower_cased_email() {
        assert_eq!(subscriber_hash("Ann@Example.com"), ANN);
        assert_eq!(
            subscriber_hash("bob@example.com"),
            "4b9bb80620f03eb3719e0a061c14283d"
        );
    }

    #[test]
    fn a_chosen_status_goes_through_the_list_batch_with_basic_auth() {
        let host = MockHost::new();
        host.respond(200, &[], &batch_answer(&["ann@example.com"], &[], &[]));
        assert_eq!(
            run(&host, &config(true), &[ann(Value::Boolean(true))]),
            [Outcome::Delivered(DeliveredKind::Created)]
        );
        let request = host.requests.borrow()[0].clone();
        assert_eq!(request.method, Method::Post);
        assert_eq!(request.url, format!("{BASE}/lists/a1b2c3d4e5"));
        let expected_auth = Request::get("x").basic_auth("prefsync", KEY).headers[0]
            .1
            .clone();
        assert!(
            request
                .headers
                .contains(&("Authorization".into(), expected_auth))
        );
        assert_eq!(
            body(&host, 0),
            json!({
                "members": [{
                    "email_address": "Ann@Example.com",
                    "status": "subscribed",
                    "merge_fields": {"TIER": "gold", "AGE": 42, "VIP": "true"},
                    // The null choice (partners) changes no permission.
                    "marketing_permissions": [{"marketing_permission_id": "f00d", "enabled": true}]
                }],
                "update_existing": true
            })
        );
        host.respond(200, &[], &batch_answer(&[], &["ann@example.com"], &[]));
        assert_eq!(
            run(&host, &config(true), &[ann(Value::Boolean(false))]),
            [Outcome::Delivered(DeliveredKind::Updated)]
        );
        // Withdrawal: the member is unsubscribed.
        assert_eq!(body(&host, 1)["members"][0]["status"], "unsubscribed");
    }

    #[test]
    fn no_status_choice_is_a_put_that_creates_transactional_and_keeps_an_existing_status() {
        let host = MockHost::new();
        host.respond(
            200,
            &[],
            r#"{"id": "257c57037d384ae37ea27a07e8a01665", "status": "transactional"}"#,
        );
        assert_eq!(
            run(&host, &config(true), &[ann(Value::Null)]),
            [Outcome::Delivered(DeliveredKind::Updated)]
        );
        let request = host.requests.borrow()[0].clone();
        assert_eq!(request.method, Method::Put);
        assert_eq!(
            request.url,
            format!("{BASE}/lists/a1b2c3d4e5/members/{ANN}")
        );
        let sent = body(&host, 0);
        assert_eq!(sent["status_if_new"], "transactional");
        assert!(sent.get("status").is_none(), "{sent}");
    }

    #[test]
    fn without_upsert_a_patch_skips_a_missing_member_and_updates_a_known_one() {
        let host = MockHost::new();
        host.respond(
            404,
            &[],
            &problem_body(
                404,
                "Resource Not Found",
                "The requested resource could not be found.",
            ),
        )
        .respond(200, &[], r#"{"status": "unsubscribed"}"#);
        let outcomes = run(
            &host,
            &config(false),
            &[
                record("bob@example.com", Value::Boolean(true)),
                ann(Value::Boolean(false)),
            ],
        );
        assert_eq!(
            outcomes,
            [
                Outcome::Skipped("member not in the audience".into()),
                Outcome::Delivered(DeliveredKind::Updated)
            ]
        );
        let requests = host.requests.borrow().clone();
        assert_eq!(requests[0].method, Method::Patch);
        assert_eq!(
            requests[0].url,
            format!("{BASE}/lists/a1b2c3d4e5/members/4b9bb80620f03eb3719e0a061c14283d")
        );
        let sent = body(&host, 1);
        assert_eq!(sent["status"], "unsubscribed");
        assert!(
            sent.get("status_if_new").is_none(),
            "PATCH never creates: {sent}"
        );
    }

    #[test]
    fn partial_batch_failures_go_on_their_records_after_a_write_on_their_own() {
        let host = MockHost::new();
        let records = [
            record("a@example.com", Value::Boolean(true)),
            record("bad@example", Value::Boolean(true)),
            record("c@example.com", Value::Boolean(false)),
            record("gone@example.com", Value::Boolean(true)),
            record("quiet@example.com", Value::Boolean(true)),
        ];
        host.respond(
            200,
            &[],
            &batch_answer(
                &["a@example.com"],
                &["c@example.com"],
                &[
                    ("bad@example", "Please provide a valid email address."),
                    (
                        "gone@example.com",
                        "gone@example.com is in a compliance state",
                    ),
                ],
            ),
        )
        // bad@example alone: a permanent 400.
        .respond(
            400,
            &[("Content-Type", "application/problem+json")],
            &problem_body(
                400,
                "Invalid Resource",
                "Please provide a valid email address.",
            ),
        )
        // gone@example.com alone: compliance state, then pending.
        .respond(
            400,
            &[],
            &problem_body(
                400,
                COMPLIANCE_TITLE,
                "gone@example.com is in a compliance state due to unsubscribe",
            ),
        )
        .respond(200, &[], r#"{"status": "pending"}"#)
        // quiet@example.com, which the answer did not mention, alone.
        .respond(200, &[], r#"{"status": "subscribed"}"#);
        let outcomes = run(&host, &config(true), &records);
        assert_eq!(
            outcomes,
            [
                Outcome::Delivered(DeliveredKind::Created),
                Outcome::permanent(
                    "HTTP 400: Invalid Resource: Please provide a valid email address."
                ),
                Outcome::Delivered(DeliveredKind::Updated),
                Outcome::Delivered(DeliveredKind::Updated),
                Outcome::Delivered(DeliveredKind::Updated),
            ]
        );
        let requests = host.requests.borrow().clone();
        assert_eq!(requests.len(), 5);
        assert!(requests[1].url.ends_with(&subscriber_hash("bad@example")));
        assert_eq!(body(&host, 2)["status"], "subscribed");
        assert_eq!(body(&host, 3)["status"], "pending");
        assert!(
            requests[4]
                .url
                .ends_with(&subscriber_hash("quiet@example.com"))
        );
    }

    #[test]
    fn re_consent_in_compliance_state_fails_when_pending_is_off() {
        let host = MockHost::new();
        host.respond(
            400,
            &[],
            &problem_body(400, COMPLIANCE_TITLE, "in a compliance state"),
        );
        let mut strict = config(false);
        strict["properties"]["resubscribe_with_pending"] = json!(false);
        let Outcome::Failed(f) = run(&host, &strict, &[ann(Value::Boolean(true))]).remove(0) else {
            panic!()
        };
        assert!(
            !f.retryable && f.message.contains(COMPLIANCE_TITLE),
            "{f:?}"
        );
        assert_eq!(host.requests.borrow().len(), 1, "no pending sent");
    }

    #[test]
    fn an_email_twice_in_a_batch_is_written_in_order_and_a_missing_email_is_skipped() {
        let host = MockHost::new();
        let mut config = config(true);
        config["properties"]["email_property"] = json!("metadata_email");
        let with_email = |key: &str, email: Option<&str>, on: bool| {
            let mut r = record(key, Value::Boolean(on));
            if let Some(email) = email {
                r.properties.push(prefsync_sdk::Property {
                    name: "metadata_email".into(),
                    value: Value::Text(email.into()),
                });
            }
            r
        };
        host.respond(200, &[], &batch_answer(&["ann@example.com"], &[], &[]))
            .respond(200, &[], "{}");
        let outcomes = run(
            &host,
            &config,
            &[
                with_email("u1", Some("ann@example.com"), true),
                with_email("u2", None, true),
                with_email("u3", Some("ANN@example.com"), false),
            ],
        );
        assert_eq!(
            outcomes,
            [
                Outcome::Delivered(DeliveredKind::Created),
                Outcome::Skipped("no email in metadata_email".into()),
                Outcome::Delivered(DeliveredKind::Updated),
            ]
        );
        assert_eq!(body(&host, 0)["members"].as_array().unwrap().len(), 1);
        assert_eq!(body(&host, 1)["status"], "unsubscribed");
    }

    #[test]
    fn failures_are_classified_by_status() {
        let one = |status: u16, headers: &[(&str, &str)], body: &str| {
            let host = MockHost::new();
            host.respond(status, headers, body);
            run(&host, &config(true), &[ann(Value::Boolean(true))]).remove(0)
        };
        let Outcome::Failed(refused) = one(
            401,
            &[],
            &problem_body(401, "API Key Invalid", "Your API key may be invalid."),
        ) else {
            panic!()
        };
        assert!(
            !refused.retryable && refused.message.contains("refused the API key"),
            "{refused:?}"
        );
        assert!(!refused.message.contains(KEY));
        assert_eq!(
            one(429, &[], &problem_body(429, "Too Many Requests", "You have exceeded the limit of 10 simultaneous connections.")),
            Outcome::Failed(Failure {
                retryable: true,
                retry_after_ms: Some(THROTTLED_WAIT_MS),
                message: "HTTP 429: Too Many Requests: You have exceeded the limit of 10 simultaneous connections.".into()
            })
        );
        let Outcome::Failed(blocked) = one(503, &[], "<html>Request Blocked</html>") else {
            panic!()
        };
        assert_eq!(
            (blocked.retryable, blocked.retry_after_ms),
            (true, Some(BLOCKED_WAIT_MS))
        );
        let Outcome::Failed(hinted) = one(503, &[("Retry-After", "3")], "") else {
            panic!()
        };
        assert_eq!(
            hinted.retry_after_ms,
            Some(3000),
            "a header the vendor sends wins"
        );
        let Outcome::Failed(down) = one(500, &[], "") else {
            panic!()
        };
        assert_eq!((down.retryable, down.retry_after_ms), (true, None));
        assert_eq!(
            one(
                400,
                &[],
                &problem_body(400, "Invalid Resource", "Your merge fields were invalid.")
            ),
            Outcome::permanent("HTTP 400: Invalid Resource: Your merge fields were invalid.")
        );
        let host = MockHost::new();
        host.fail(HttpError::Timeout);
        let outcomes = run(
            &host,
            &config(true),
            &[
                ann(Value::Boolean(true)),
                record("b@example.com", Value::Boolean(false)),
            ],
        );
        assert!(
            outcomes.iter().all(|o| matches!(
                o,
                Outcome::Failed(Failure {
                    retryable: true,
                    ..
                })
            )),
            "{outcomes:?}"
        );
        assert_eq!(host.requests.borrow().len(), 1, "one batch request");
    }

    #[test]
    fn a_wrongly_typed_choice_fails_its_record_only() {
        let host = MockHost::new();
        host.respond(200, &[], &batch_answer(&["b@example.com"], &[], &[]));
        let outcomes = run(
            &host,
            &config(true),
            &[
                ann(Value::Text("yes".into())),
                record("b@example.com", Value::Boolean(true)),
            ],
        );
        assert_eq!(
            outcomes,
            [
                Outcome::permanent(
                    "`consents_channels_email_enabled` must be true, false or null to set the member's status"
                ),
                Outcome::Delivered(DeliveredKind::Created)
            ]
        );
    }

    fn check(host: &MockHost, config: &Json) -> Result<Vec<(String, String)>, String> {
        prefsync_sdk::connection::check::<Mailchimp>(host, &config.to_string())
            .map(|problems| problems.into_iter().map(|p| (p.path, p.message)).collect())
    }

    #[test]
    fn the_check_reads_the_audience_with_basic_auth_and_writes_nothing() {
        let host = MockHost::new();
        host.respond(200, &[], r#"{"id": "a1b2c3d4e5"}"#);
        assert_eq!(check(&host, &config(true)), Ok(vec![]));
        let requests = host.requests.borrow();
        assert_eq!(requests.len(), 1);
        let request = &requests[0];
        assert_eq!(request.method, Method::Get);
        assert_eq!(request.url, format!("{BASE}/lists/a1b2c3d4e5?fields=id"));
        assert!(request.body.is_none());
        let expected_auth = Request::get("x").basic_auth("prefsync", KEY).headers[0]
            .1
            .clone();
        assert!(
            request
                .headers
                .contains(&("Authorization".into(), expected_auth))
        );
        assert_eq!(request.timeout_ms, Some(CHECK_TIMEOUT_MS));
    }

    #[test]
    fn a_refused_key_is_a_problem_at_the_key_without_the_body() {
        for status in [401, 403] {
            let host = MockHost::new();
            host.respond(
                status,
                &[],
                &problem_body(status, "API Key Invalid", &format!("key {KEY} is wrong")),
            );
            let problems = check(&host, &config(true)).unwrap();
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!(problems[0].0, KEY_PATH);
            assert!(!problems[0].1.contains(KEY), "{problems:?}");
            assert!(!problems[0].1.contains("is wrong"), "{problems:?}");
        }
    }

    #[test]
    fn an_unknown_audience_is_a_problem_at_the_list_id() {
        let host = MockHost::new();
        host.respond(
            404,
            &[],
            &problem_body(
                404,
                "Resource Not Found",
                "The requested resource could not be found.",
            ),
        );
        assert_eq!(
            check(&host, &config(true)),
            Ok(vec![(
                LIST_PATH.to_string(),
                "Mailchimp knows no audience `a1b2c3d4e5` for this key (HTTP 404)".to_string()
            )])
        );
    }

    #[test]
    fn a_check_that_cannot_be_made_is_an_error() {
        for status in [429, 500, 503] {
            let host = MockHost::new();
            host.respond(status, &[], &problem_body(status, "Oops", "later"));
            assert!(check(&host, &config(true)).is_err(), "{status}");
        }
        let host = MockHost::new();
        host.fail(HttpError::Timeout);
        let error = check(&host, &config(true)).unwrap_err();
        assert!(error.contains("could not be reached"), "{error}");
        // Another 4xx is the whole config's problem.
        let host = MockHost::new();
        host.respond(400, &[], &problem_body(400, "Invalid Resource", "x"));
        assert_eq!(check(&host, &config(true)).unwrap()[0].0, "");
    }

    #[test]
    fn an_invalid_config_is_answered_without_a_request() {
        let host = MockHost::new();
        let mut config = config(true);
        config["properties"]["list_id"] = json!(" ");
        let problems = check(&host, &config).unwrap();
        assert_eq!(problems[0].0, LIST_PATH);
        assert!(host.requests.borrow().is_empty());
    }
}
