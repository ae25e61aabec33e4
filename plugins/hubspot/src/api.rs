//! Requests to HubSpot's CRM and communication-preferences APIs, and how
//! their answers are classified.
//!
//! A batch of users becomes (1) one contact write for all of them — the
//! batch upsert by email, or, when upserts are off, one update-only `PATCH`
//! per user so that a missing contact is skipped, never created — then (2)
//! one v4 subscription-status call per user and mapped subscription whose
//! consent choice is made. HubSpot's two rate limits are told apart by the
//! 429's `policyName`: the rolling ten-second window is retried in about ten
//! seconds; the daily cap parks every delivery of the integration until the
//! account's next midnight, remembered in the host cache so that nothing is
//! sent to HubSpot before then.

use std::collections::BTreeMap;

use prefsync_sdk::http::{encode_component, failure_from_response};
use prefsync_sdk::mapping::map_record;
use prefsync_sdk::{
    ConsentRecord, Context, DeliveredKind, Failure, HttpError, Method, Outcome, Request, Response,
    Value,
};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use crate::config::HubSpotConfig;

/// Most inputs HubSpot takes in one batch call.
pub const MAX_BATCH_SIZE: usize = 100;
const REQUEST_TIMEOUT_MS: u32 = 30_000;
/// The rolling burst window's length: a `TEN_SECONDLY_ROLLING` 429 without
/// a `Retry-After` is tried again after it.
pub const BURST_WINDOW_MS: u64 = 10_000;
/// Host-cache key holding when the daily limit resets (Unix ms), while it is reached.
const DAILY_RESET_KEY: &str = "hubspot:daily-limit-resets-at-ms";

/// Delivers a batch: the contact write, then the subscription statuses.
pub fn deliver_batch(
    ctx: &Context<'_>,
    config: &HubSpotConfig,
    batch: &[ConsentRecord],
) -> Vec<Outcome> {
    if let Some(parked) = parked_by_daily_limit(ctx, config) {
        ctx.debug(
            "daily API limit reached earlier; nothing sent until it resets",
            &[],
        );
        return batch.iter().map(|_| parked.clone()).collect();
    }
    let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];
    let mut contacts = Vec::new();
    for (i, record) in batch.iter().enumerate() {
        match contact_of(config, record) {
            Ok(contact) => contacts.push((i, contact)),
            Err(reason) => outcomes[i] = Some(Outcome::Skipped(reason)),
        }
    }
    let written = if config.upsert_mode {
        upsert_contacts(ctx, config, &contacts)
    } else {
        update_contacts(ctx, config, &contacts)
    };
    // The contacts HubSpot has now, and how their write went.
    let mut subscribers = Vec::new();
    for ((i, contact), result) in contacts.into_iter().zip(written) {
        match result {
            Ok(kind) => subscribers.push((i, contact, kind)),
            Err(outcome) => outcomes[i] = Some(outcome),
        }
    }
    let mut wholesale: Option<Failure> = None;
    for (i, contact, kind) in subscribers {
        let ctx = ctx.for_record(&batch[i].key);
        let outcome = match &wholesale {
            Some(failure) => Outcome::Failed(failure.clone()),
            None => match set_subscriptions(&ctx, config, &contact) {
                Ok(()) => Outcome::Delivered(kind),
                Err(Refusal::Record(outcome)) => outcome,
                Err(Refusal::Wholesale(failure)) => {
                    wholesale = Some(failure.clone());
                    Outcome::Failed(failure)
                }
            },
        };
        outcomes[i] = Some(outcome);
    }
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Outcome::retryable("HubSpot: no outcome was reached")))
        .collect()
}

/// One user as HubSpot sees it: the email, the contact properties to set,
/// the subscription statuses to set.
#[derive(Debug, Clone, PartialEq)]
pub struct Contact {
    /// Lower case: HubSpot stores emails so, and matches them so.
    pub email: String,
    pub properties: Map<String, Json>,
    /// `(subscriptionId, subscribed)` for every mapped choice that is made.
    pub subscriptions: Vec<(u64, bool)>,
}

/// The user's contact, or why it cannot be one (skipped).
pub fn contact_of(config: &HubSpotConfig, record: &ConsentRecord) -> Result<Contact, String> {
    let email = match &config.properties.email_property {
        None => Some(record.key.clone()),
        Some(name) => record.property(name).and_then(Value::to_text),
    };
    let email = email.map(|e| e.trim().to_lowercase()).unwrap_or_default();
    if email.is_empty() {
        let from = config
            .properties
            .email_property
            .as_deref()
            .unwrap_or("organization_user_id");
        return Err(format!("no email: `{from}` is empty or absent"));
    }
    let mut properties = Map::new();
    for field in map_record(&config.mappings, record) {
        // HubSpot takes property values as text; an empty string clears one,
        // which is what a choice withdrawn to "none made" (null) should do.
        let text = field.value.to_text().unwrap_or_default();
        properties.insert(field.field.to_string(), Json::String(text));
    }
    let subscriptions = config
        .properties
        .subscriptions
        .iter()
        .filter_map(|s| match record.property(&s.value) {
            // A choice that is null or absent (none made) changes no status.
            // (`check` made sure every id is a whole number.)
            Some(Value::Boolean(subscribed)) => Some((s.subscription_id()?, *subscribed)),
            _ => None,
        })
        .collect();
    Ok(Contact {
        email,
        properties,
        subscriptions,
    })
}

/// Why a request did not go through.
enum Refusal {
    /// This record's failure (or skip).
    Record(Outcome),
    /// Every request would get the same answer (credentials, rate limit):
    /// the rest of the batch is not sent.
    Wholesale(Failure),
}

pub(crate) fn request(config: &HubSpotConfig, method: Method, url: String) -> Request {
    Request::new(method, url)
        .header(
            "Authorization",
            format!("Bearer {}", config.authentication.access_token),
        )
        .header("Accept", "application/json")
        .timeout_ms(REQUEST_TIMEOUT_MS)
}

fn send(ctx: &Context<'_>, request: Request, what: &str) -> Result<Response, Refusal> {
    ctx.send(request).map_err(|e| match e {
        // Not reachable now: no other request of this batch would be.
        HttpError::Timeout | HttpError::Connection(_) | HttpError::Denied(_) => {
            match e.into_outcome(what) {
                Outcome::Failed(failure) => Refusal::Wholesale(failure),
                other => Refusal::Record(other),
            }
        }
        other => Refusal::Record(other.into_outcome(what)),
    })
}

// ---------------------------------------------------------------------------
// Connection check
// ---------------------------------------------------------------------------

/// The address the connection check looks up: no contact has it (`.invalid`
/// is reserved), so HubSpot answers 404 `OBJECT_NOT_FOUND` once the token is
/// accepted, and nothing is written.
pub const CHECK_EMAIL: &str = "connection-check@prefsync.invalid";

/// The connection check: one contact read by email (`GET
/// /crm/v3/objects/contacts/{email}?idProperty=email`), the cheapest
/// authenticated read the docs name. 200, or a 404 `OBJECT_NOT_FOUND`, means
/// the token was accepted; 401/403 refuse `authentication.access_token`;
/// 429 and 5xx mean the check could not be made.
pub fn check_connection(
    ctx: &Context<'_>,
    config: &HubSpotConfig,
) -> Result<Vec<prefsync_sdk::ValidationProblem>, String> {
    use prefsync_sdk::connection::{unreachable, verdict};
    let url = format!(
        "{}/crm/v3/objects/contacts/{}?idProperty=email",
        config.base_url(),
        encode_component(CHECK_EMAIL)
    );
    match ctx.send(request(config, Method::Get, url)) {
        Ok(response) if response.status == 404 && not_found(&response) => Ok(Vec::new()),
        Ok(response) => verdict(&response, "authentication.access_token"),
        Err(error) => unreachable(&error),
    }
}

/// Whether a 404 is HubSpot's "no such contact" (and not a path the API
/// base does not serve).
fn not_found(response: &Response) -> bool {
    response
        .json::<Json>()
        .is_ok_and(|body| body["category"] == "OBJECT_NOT_FOUND")
}

// ---------------------------------------------------------------------------
// Contacts
// ---------------------------------------------------------------------------

/// The batch upsert by email, in rounds where each email appears once
/// (HubSpot refuses a batch naming one id twice), at most
/// [`MAX_BATCH_SIZE`] inputs a call. One result per contact, in order.
fn upsert_contacts(
    ctx: &Context<'_>,
    config: &HubSpotConfig,
    contacts: &[(usize, Contact)],
) -> Vec<Result<DeliveredKind, Outcome>> {
    let mut results: Vec<Option<Result<DeliveredKind, Outcome>>> = vec![None; contacts.len()];
    let mut waiting: Vec<usize> = (0..contacts.len()).collect();
    let mut stop: Option<Failure> = None;
    while !waiting.is_empty() {
        let mut round: Vec<usize> = Vec::new();
        let mut later = Vec::new();
        for at in waiting {
            let email = &contacts[at].1.email;
            if round.len() < MAX_BATCH_SIZE && !round.iter().any(|&r| contacts[r].1.email == *email)
            {
                round.push(at);
            } else {
                later.push(at);
            }
        }
        waiting = later;
        if let Some(failure) = &stop {
            for at in round {
                results[at] = Some(Err(Outcome::Failed(failure.clone())));
            }
            continue;
        }
        let inputs: Vec<UpsertInput<'_>> = round
            .iter()
            .map(|&at| UpsertInput {
                id: &contacts[at].1.email,
                properties: &contacts[at].1.properties,
            })
            .collect();
        match upsert_round(ctx, config, "email", &inputs) {
            Ok(per_input) => {
                for (at, result) in round.into_iter().zip(per_input) {
                    results[at] = Some(result);
                }
            }
            Err(failure) => {
                for at in round {
                    results[at] = Some(Err(Outcome::Failed(failure.clone())));
                }
                stop = Some(failure);
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Outcome::retryable("HubSpot: contact not written"))))
        .collect()
}

/// One input of a batch upsert: the contact's value of the id property
/// (its email, for consent deliveries), and the properties to set.
#[derive(Debug, Clone, Copy)]
pub struct UpsertInput<'a> {
    pub id: &'a str,
    pub properties: &'a Map<String, Json>,
}

/// `POST /crm/v3/objects/contacts/batch/upsert` matching contacts on
/// `id_property` (ids given once each): one result per input, or the
/// failure of the whole call.
pub fn upsert_round(
    ctx: &Context<'_>,
    config: &HubSpotConfig,
    id_property: &str,
    inputs: &[UpsertInput<'_>],
) -> Result<Vec<Result<DeliveredKind, Outcome>>, Failure> {
    let body = json!({
        "inputs": inputs.iter().map(|input| {
            let mut properties = input.properties.clone();
            // Sent back in each result: how results are matched to inputs.
            properties.insert(id_property.into(), Json::String(input.id.to_string()));
            json!({"idProperty": id_property, "id": input.id, "properties": properties})
        }).collect::<Vec<_>>()
    });
    let url = format!("{}/crm/v3/objects/contacts/batch/upsert", config.base_url());
    let response = match send(
        ctx,
        request(config, Method::Post, url).json(&body),
        "HubSpot contact upsert",
    ) {
        Ok(response) => response,
        Err(Refusal::Wholesale(failure)) => return Err(failure),
        Err(Refusal::Record(Outcome::Failed(failure))) => return Err(failure),
        Err(Refusal::Record(_)) => {
            return Err(Failure {
                retryable: false,
                retry_after_ms: None,
                message: "HubSpot contact upsert: unexpected answer".into(),
            });
        }
    };
    if !(200..300).contains(&response.status) {
        return Err(classify(ctx, config, &response));
    }
    let answer: BatchAnswer = response.json().map_err(|e| Failure {
        retryable: true,
        retry_after_ms: None,
        message: format!("HubSpot contact upsert: unreadable answer ({e})"),
    })?;
    Ok(match_batch_answer(id_property, inputs, &answer))
}

/// A batch answer: `{"status", "results": [...], "errors": [...], "numErrors"}`.
#[derive(Debug, Default, Deserialize)]
pub struct BatchAnswer {
    #[serde(default)]
    pub results: Vec<BatchResult>,
    #[serde(default)]
    pub errors: Vec<ApiError>,
}

/// One contact the batch wrote.
#[derive(Debug, Deserialize)]
pub struct BatchResult {
    /// True when the upsert created the contact.
    #[serde(default)]
    pub new: Option<bool>,
    #[serde(default)]
    pub properties: Map<String, Json>,
}

/// HubSpot's error body, alone or inside a batch answer's `errors`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiError {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// On a 429: `TEN_SECONDLY_ROLLING` or `DAILY`.
    #[serde(default)]
    pub policy_name: Option<String>,
    /// On a batch error: what it concerns, e.g. `{"ids": ["jane@…"]}`.
    #[serde(default)]
    pub context: Option<Map<String, Json>>,
}

impl ApiError {
    /// `CATEGORY: message (correlationId …)`, what operators read in the dead letters.
    pub fn describe(&self) -> String {
        let mut text = match (&self.category, &self.message) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c.clone(),
            (None, Some(m)) => m.clone(),
            (None, None) => "no detail".into(),
        };
        if let Some(id) = &self.correlation_id {
            text.push_str(&format!(" (correlationId {id})"));
        }
        text
    }

    /// Whether the input it concerns may go through later: rate limits and
    /// HubSpot's own trouble; anything else (validation, a conflict) will
    /// fail the same way.
    fn retryable(&self) -> bool {
        let category = self.category.as_deref().unwrap_or_default();
        ["RATE_LIMIT", "INTERNAL", "TIMEOUT", "UNAVAILABLE"]
            .iter()
            .any(|c| category.contains(c))
    }

    /// Whether the error names input `id` (an email, for consent
    /// deliveries): in its `context` (any string, in any of its lists), or
    /// in its message.
    fn concerns(&self, id: &str) -> bool {
        let in_context = self
            .context
            .iter()
            .flat_map(|c| c.values())
            .any(|v| match v {
                Json::String(s) => s.eq_ignore_ascii_case(id),
                Json::Array(items) => items
                    .iter()
                    .any(|i| i.as_str().is_some_and(|s| s.eq_ignore_ascii_case(id))),
                _ => false,
            });
        in_context
            || self
                .message
                .as_deref()
                .is_some_and(|m| m.to_lowercase().contains(&id.to_lowercase()))
    }

    fn failure(&self, what: &str) -> Outcome {
        Outcome::Failed(Failure {
            retryable: self.retryable(),
            retry_after_ms: None,
            message: format!("{what}: {}", self.describe()),
        })
    }
}

/// One result per input of a 200/207 batch answer: a result with its id
/// property (created or updated), an error naming it, an error naming no
/// input (it may be any of those without a result), or none of those
/// (retryable: HubSpot did not say what became of it).
pub fn match_batch_answer(
    id_property: &str,
    inputs: &[UpsertInput<'_>],
    answer: &BatchAnswer,
) -> Vec<Result<DeliveredKind, Outcome>> {
    let kind = |r: &BatchResult| {
        if r.new == Some(true) {
            DeliveredKind::Created
        } else {
            DeliveredKind::Updated
        }
    };
    let by_id: BTreeMap<String, &BatchResult> = answer
        .results
        .iter()
        .filter_map(|r| {
            r.properties
                .get(id_property)
                .and_then(Json::as_str)
                .map(|e| (e.to_lowercase(), r))
        })
        .collect();
    // Results without emails can only be matched by position, when every input has one.
    let by_position =
        by_id.is_empty() && answer.errors.is_empty() && answer.results.len() == inputs.len();
    let unattributed: Vec<&ApiError> = answer
        .errors
        .iter()
        .filter(|e| !inputs.iter().any(|input| e.concerns(input.id)))
        .collect();
    inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            if let Some(result) = by_id.get(&input.id.to_lowercase()) {
                return Ok(kind(result));
            }
            if by_position {
                return Ok(kind(&answer.results[i]));
            }
            if let Some(error) = answer.errors.iter().find(|e| e.concerns(input.id)) {
                return Err(error.failure("HubSpot refused the contact"));
            }
            match unattributed.first() {
                Some(error) => Err(error.failure("HubSpot refused a contact of the batch")),
                None => Err(Outcome::retryable(
                    "HubSpot's batch answer does not mention this contact",
                )),
            }
        })
        .collect()
}

/// Update-only writes, one `PATCH …/contacts/{email}?idProperty=email` per
/// contact: 404 skips it (never created).
fn update_contacts(
    ctx: &Context<'_>,
    config: &HubSpotConfig,
    contacts: &[(usize, Contact)],
) -> Vec<Result<DeliveredKind, Outcome>> {
    let mut stop: Option<Failure> = None;
    contacts
        .iter()
        .map(|(_, contact)| {
            if let Some(failure) = &stop {
                return Err(Outcome::Failed(failure.clone()));
            }
            let url = format!(
                "{}/crm/v3/objects/contacts/{}?idProperty=email",
                config.base_url(),
                encode_component(&contact.email)
            );
            let update = request(config, Method::Patch, url)
                .json(&json!({"properties": contact.properties}));
            let response = match send(ctx, update, "HubSpot contact update") {
                Ok(response) => response,
                Err(Refusal::Record(outcome)) => return Err(outcome),
                Err(Refusal::Wholesale(failure)) => {
                    stop = Some(failure.clone());
                    return Err(Outcome::Failed(failure));
                }
            };
            match response.status {
                200..=299 => Ok(DeliveredKind::Updated),
                404 => Err(Outcome::Skipped(
                    "contact not found in HubSpot (upsert_mode is off)".into(),
                )),
                _ => {
                    let failure = classify(ctx, config, &response);
                    if stops_the_batch(response.status) {
                        stop = Some(failure.clone());
                    }
                    Err(Outcome::Failed(failure))
                }
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Subscription statuses (communication preferences v4)
// ---------------------------------------------------------------------------

/// `POST /communication-preferences/v4/statuses/{email}` for each mapped
/// subscription whose choice is made: `SUBSCRIBED` or `UNSUBSCRIBED`, with
/// the configured legal basis.
fn set_subscriptions(
    ctx: &Context<'_>,
    config: &HubSpotConfig,
    contact: &Contact,
) -> Result<(), Refusal> {
    for &(subscription_id, subscribed) in &contact.subscriptions {
        let url = format!(
            "{}/communication-preferences/v4/statuses/{}",
            config.base_url(),
            encode_component(&contact.email)
        );
        let body = json!({
            "channel": "EMAIL",
            "statusState": if subscribed { "SUBSCRIBED" } else { "UNSUBSCRIBED" },
            "subscriptionId": subscription_id,
            "legalBasis": config.legal_basis(),
            "legalBasisExplanation": config.legal_basis_explanation(),
        });
        let what = format!("HubSpot subscription {subscription_id} status");
        let response = send(ctx, request(config, Method::Post, url).json(&body), &what)?;
        if !(200..300).contains(&response.status) {
            let failure = classify(ctx, config, &response);
            return Err(if stops_the_batch(response.status) {
                Refusal::Wholesale(failure)
            } else {
                Refusal::Record(Outcome::Failed(failure))
            });
        }
        // A 2xx may still carry `errors` (a multi-status answer).
        let answer: BatchAnswer = response.json().unwrap_or_default();
        if let Some(error) = answer.errors.first() {
            return Err(Refusal::Record(error.failure(&what)));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Classification
// ---------------------------------------------------------------------------

/// Statuses every other request of the batch would meet too.
fn stops_the_batch(status: u16) -> bool {
    matches!(status, 401 | 403 | 429)
}

/// A non-2xx answer as a failure: 401/403 name the token; a 429 waits as its
/// policy says; other statuses follow the SDK's rule with HubSpot's
/// `category: message (correlationId)`.
pub fn classify(ctx: &Context<'_>, config: &HubSpotConfig, response: &Response) -> Failure {
    let error: Option<ApiError> = response.json().ok();
    let detail = match &error {
        Some(e) if e.message.is_some() || e.category.is_some() => e.describe(),
        _ => response.text_snippet(200),
    };
    match response.status {
        401 | 403 => Failure {
            retryable: false,
            retry_after_ms: None,
            message: format!(
                "HubSpot refused the access token (HTTP {}: {detail}): check authentication.access_token and the private app's scopes",
                response.status
            ),
        },
        429 => {
            let policy = error.as_ref().and_then(|e| e.policy_name.as_deref());
            if policy == Some("DAILY") {
                return park_until_reset(ctx, config, &detail);
            }
            let hinted = prefsync_sdk::http::retry_after_ms(&response.headers);
            Failure {
                retryable: true,
                // The rolling window frees up within its length.
                retry_after_ms: Some(hinted.unwrap_or(BURST_WINDOW_MS)),
                message: match policy {
                    Some(policy) => format!("HTTP 429 (policy {policy}): {detail}"),
                    None => format!("HTTP 429: {detail}"),
                },
            }
        }
        _ => match failure_from_response(response, &detail) {
            Outcome::Failed(failure) => failure,
            _ => Failure {
                retryable: false,
                retry_after_ms: None,
                message: format!("HTTP {}: {detail}", response.status),
            },
        },
    }
}

/// The daily limit is reached: every delivery of the integration waits for
/// the account's next midnight, and the host cache remembers it so the
/// batches in between send nothing.
fn park_until_reset(ctx: &Context<'_>, config: &HubSpotConfig, detail: &str) -> Failure {
    let now = jiff::Timestamp::now();
    let reset = next_daily_reset(now, &config.time_zone());
    let wait_ms = millis_between(now, reset);
    let ttl = u32::try_from(wait_ms.div_ceil(1000)).unwrap_or(u32::MAX);
    ctx.cache_set(DAILY_RESET_KEY, &reset.as_millisecond().to_string(), ttl);
    ctx.warn(
        "HubSpot daily API limit reached; deliveries parked until it resets",
        &[
            ("resets_at", &reset.to_string()),
            ("time_zone", config.time_zone_name()),
        ],
    );
    daily_failure(config, reset, wait_ms, detail)
}

fn daily_failure(
    config: &HubSpotConfig,
    reset: jiff::Timestamp,
    wait_ms: u64,
    detail: &str,
) -> Failure {
    Failure {
        retryable: true,
        retry_after_ms: Some(wait_ms),
        message: format!(
            "HubSpot daily API limit reached ({detail}); parked until {reset} (midnight, {})",
            config.time_zone_name()
        ),
    }
}

/// The failure every record gets while the daily limit is known to be
/// reached, or `None` when it is not.
pub(crate) fn parked_by_daily_limit(ctx: &Context<'_>, config: &HubSpotConfig) -> Option<Outcome> {
    let reset_ms: i64 = ctx.cache_get(DAILY_RESET_KEY)?.parse().ok()?;
    let reset = jiff::Timestamp::from_millisecond(reset_ms).ok()?;
    let now = jiff::Timestamp::now();
    if reset <= now {
        return None;
    }
    Some(Outcome::Failed(daily_failure(
        config,
        reset,
        millis_between(now, reset),
        "policy DAILY",
    )))
}

/// The first midnight after `now` in `zone`, when HubSpot resets the daily
/// count (a day that starts in a DST gap starts at its first instant).
pub fn next_daily_reset(now: jiff::Timestamp, zone: &jiff::tz::TimeZone) -> jiff::Timestamp {
    let today = now.to_zoned(zone.clone());
    today
        .date()
        .tomorrow()
        .ok()
        .and_then(|day| day.to_zoned(zone.clone()).ok())
        .map(|midnight| midnight.timestamp())
        // Only at the end of jiff's range; a day from now is as good.
        .unwrap_or_else(|| {
            now.checked_add(jiff::SignedDuration::from_hours(24))
                .unwrap_or(now)
        })
}

fn millis_between(from: jiff::Timestamp, to: jiff::Timestamp) -> u64 {
    u64::try_from(to.as_millisecond() - from.as_millisecond()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use prefsync_sdk::connector;
    use prefsync_sdk::testing::MockHost;

    use super::*;
    use crate::HubSpot;

    const TOKEN: &str = "pat-eu1-secret-0123456789";

    fn config(upsert: bool) -> Json {
        json!({
            "type_id": "hubspot",
            "authentication": {"access_token": TOKEN},
            "properties": {"subscriptions": [{"id": "101", "value": "consents_purposes_newsletter_enabled"}]},
            "mappings": [
                {"id": "didomi_newsletter", "value": "consents_purposes_newsletter_enabled"},
                {"id": "didomi_sms", "value": "consents_channels_sms_enabled"},
                {"id": "tier", "value": "metadata_tier"},
                {"id": "absent", "value": "metadata_absent"}
            ],
            "upsert_mode": upsert
        })
    }

    fn user(email: &str, newsletter: Value) -> ConsentRecord {
        ConsentRecord::new(
            "organization_user_id",
            email,
            &[
                ("organization_user_id", Value::Text(email.into())),
                ("consents_purposes_newsletter_enabled", newsletter),
                ("consents_channels_sms_enabled", Value::Null),
                ("metadata_tier", Value::Text("gold".into())),
            ],
        )
    }

    fn run(host: &MockHost, config: &Json, records: &[ConsentRecord]) -> Vec<Outcome> {
        connector::deliver::<HubSpot>(host, &config.to_string(), records)
    }

    fn body(host: &MockHost, index: usize) -> Json {
        serde_json::from_slice(host.requests.borrow()[index].body.as_ref().unwrap()).unwrap()
    }

    const STATUS_OK: &str = r#"{"status":"COMPLETE","results":[{"subscriptionId":101,"status":"SUBSCRIBED","setStatusSuccessReason":"RESUBSCRIBE_OCCURRED"}],"errors":[]}"#;

    #[test]
    fn a_batch_is_one_upsert_then_a_status_per_made_choice() {
        let host = MockHost::new();
        host.respond(
            200,
            &[],
            r#"{"status":"COMPLETE","results":[
                {"id":"2","new":false,"properties":{"email":"bob@example.com"}},
                {"id":"1","new":true,"properties":{"email":"ann@example.com"}}]}"#,
        )
        .respond(200, &[], STATUS_OK);
        let outcomes = run(
            &host,
            &config(true),
            &[
                user("Ann@Example.com", Value::Boolean(true)),
                user("bob@example.com", Value::Null),
            ],
        );
        assert_eq!(
            outcomes,
            [
                Outcome::Delivered(DeliveredKind::Created),
                Outcome::Delivered(DeliveredKind::Updated)
            ]
        );
        let requests = host.requests.borrow().clone();
        assert_eq!(requests.len(), 2, "bob made no choice: no status call");
        assert_eq!(
            requests[0].url,
            "https://api.hubapi.com/crm/v3/objects/contacts/batch/upsert"
        );
        assert!(
            requests[0]
                .headers
                .contains(&("Authorization".into(), format!("Bearer {TOKEN}")))
        );
        assert_eq!(
            body(&host, 0),
            json!({"inputs": [
                {"idProperty": "email", "id": "ann@example.com", "properties": {
                    "didomi_newsletter": "true", "didomi_sms": "", "tier": "gold", "email": "ann@example.com"}},
                {"idProperty": "email", "id": "bob@example.com", "properties": {
                    "didomi_newsletter": "", "didomi_sms": "", "tier": "gold", "email": "bob@example.com"}}
            ]})
        );
        assert_eq!(requests[1].method, Method::Post);
        assert_eq!(
            requests[1].url,
            "https://api.hubapi.com/communication-preferences/v4/statuses/ann%40example.com"
        );
        assert_eq!(
            body(&host, 1),
            json!({"channel": "EMAIL", "statusState": "SUBSCRIBED", "subscriptionId": 101,
                   "legalBasis": "CONSENT_WITH_NOTICE",
                   "legalBasisExplanation": "Consent collected with Didomi and synchronised by prefsync"})
        );
    }

    #[test]
    fn a_withdrawal_unsubscribes_with_the_configured_legal_basis() {
        let host = MockHost::new();
        host.respond(
            200,
            &[],
            r#"{"results":[{"new":false,"properties":{"email":"ann@example.com"}}]}"#,
        )
        .respond(
            200,
            &[],
            r#"{"status":"COMPLETE","results":[],"errors":[]}"#,
        );
        let mut config = config(true);
        config["properties"]["legal_basis"] = json!("LEGITIMATE_INTEREST_OTHER");
        config["properties"]["legal_basis_explanation"] = json!("Customer");
        let outcomes = run(
            &host,
            &config,
            &[user("ann@example.com", Value::Boolean(false))],
        );
        assert_eq!(outcomes, [Outcome::Delivered(DeliveredKind::Updated)]);
        let sent = body(&host, 1);
        assert_eq!(sent["statusState"], "UNSUBSCRIBED");
        assert_eq!(sent["legalBasis"], "LEGITIMATE_INTEREST_OTHER");
        assert_eq!(sent["legalBasisExplanation"], "Customer");
        assert_eq!(
            body(&host, 0)["inputs"][0]["properties"]["didomi_newsletter"],
            "false"
        );
    }

    #[test]
    fn partial_batch_failures_fail_only_their_records() {
        let host = MockHost::new();
        host.respond(
            207,
            &[],
            r#"{"status":"COMPLETE","numErrors":1,
                "results":[{"id":"1","new":true,"properties":{"email":"ann@example.com"}}],
                "errors":[{"status":"error","category":"VALIDATION_ERROR","message":"Email address not-an-email is invalid",
                           "correlationId":"c-1","context":{"ids":["not-an-email"]}}]}"#,
        )
        .respond(200, &[], STATUS_OK);
        let outcomes = run(
            &host,
            &config(true),
            &[
                user("not-an-email", Value::Boolean(true)),
                user("ann@example.com", Value::Boolean(true)),
                ConsentRecord::new("organization_user_id", " ", &[]),
            ],
        );
        assert_eq!(
            outcomes[0],
            Outcome::Failed(Failure {
                retryable: false,
                retry_after_ms: None,
                message: "HubSpot refused the contact: VALIDATION_ERROR: Email address not-an-email is invalid (correlationId c-1)".into()
            })
        );
        assert_eq!(outcomes[1], Outcome::Delivered(DeliveredKind::Created));
        assert_eq!(
            outcomes[2],
            Outcome::Skipped("no email: `organization_user_id` is empty or absent".into())
        );
        // Only the written contact gets its status set.
        assert_eq!(host.requests.borrow().len(), 2);
        assert!(host.requests.borrow()[1].url.ends_with("ann%40example.com"));
    }

    #[test]
    fn matching_answers_to_inputs() {
        let none = Map::new();
        let ann = UpsertInput {
            id: "ann@example.com",
            properties: &none,
        };
        let bob = UpsertInput {
            id: "bob@example.com",
            properties: &none,
        };
        // Results without emails, one per input: matched in order.
        let answer: BatchAnswer =
            serde_json::from_str(r#"{"results":[{"new":true},{"new":false}]}"#).unwrap();
        assert_eq!(
            match_batch_answer("email", &[ann, bob], &answer),
            [Ok(DeliveredKind::Created), Ok(DeliveredKind::Updated)]
        );
        // An error naming nobody goes to the inputs without a result;
        // an input HubSpot says nothing about is retryable.
        let answer: BatchAnswer = serde_json::from_str(
            r#"{"results":[{"new":true,"properties":{"email":"ann@example.com"}}],
                "errors":[{"category":"RATE_LIMITS","message":"slow down"}]}"#,
        )
        .unwrap();
        let matched = match_batch_answer("email", &[ann, bob], &answer);
        assert_eq!(matched[0], Ok(DeliveredKind::Created));
        assert!(
            matches!(&matched[1], Err(Outcome::Failed(f)) if f.retryable && f.message.contains("slow down"))
        );
        let answer: BatchAnswer = serde_json::from_str(r#"{"results":[]}"#).unwrap();
        assert!(
            matches!(&match_batch_answer("email", &[ann], &answer)[0], Err(Outcome::Failed(f)) if f.retryable)
        );
    }

    #[test]
    fn one_email_twice_goes_in_two_rounds() {
        let host = MockHost::new();
        host.respond(
            200,
            &[],
            r#"{"results":[{"new":true,"properties":{"email":"ann@example.com"}}]}"#,
        )
        .respond(
            200,
            &[],
            r#"{"results":[{"new":false,"properties":{"email":"ann@example.com"}}]}"#,
        );
        let mut config = config(true);
        config["properties"] = json!({"email_property": "metadata_email"});
        let with_email = |key: &str| {
            ConsentRecord::new(
                "organization_user_id",
                key,
                &[("metadata_email", Value::Text("ANN@example.com".into()))],
            )
        };
        let outcomes = run(&host, &config, &[with_email("u1"), with_email("u2")]);
        assert_eq!(
            outcomes,
            [
                Outcome::Delivered(DeliveredKind::Created),
                Outcome::Delivered(DeliveredKind::Updated)
            ]
        );
        assert_eq!(host.requests.borrow().len(), 2);
        assert_eq!(body(&host, 1)["inputs"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn without_upsert_a_missing_contact_is_skipped_and_an_existing_one_patched() {
        let host = MockHost::new();
        host.respond(
            404,
            &[],
            r#"{"status":"error","message":"resource not found","category":"OBJECT_NOT_FOUND"}"#,
        )
        .respond(200, &[], r#"{"id":"9","properties":{}}"#)
        .respond(200, &[], STATUS_OK);
        let outcomes = run(
            &host,
            &config(false),
            &[
                user("bob@example.com", Value::Boolean(true)),
                user("carol@example.com", Value::Boolean(true)),
            ],
        );
        assert_eq!(
            outcomes,
            [
                Outcome::Skipped("contact not found in HubSpot (upsert_mode is off)".into()),
                Outcome::Delivered(DeliveredKind::Updated)
            ]
        );
        let requests = host.requests.borrow().clone();
        assert_eq!(requests[0].method, Method::Patch);
        assert_eq!(
            requests[0].url,
            "https://api.hubapi.com/crm/v3/objects/contacts/bob%40example.com?idProperty=email"
        );
        assert_eq!(
            body(&host, 1),
            json!({"properties": {"didomi_newsletter": "true", "didomi_sms": "", "tier": "gold"}})
        );
        assert_eq!(requests.len(), 3, "no status for the skipped contact");
    }

    fn failure(outcome: &Outcome) -> &Failure {
        match outcome {
            Outcome::Failed(f) => f,
            other => panic!("not a failure: {other:?}"),
        }
    }

    #[test]
    fn rate_limits_are_told_apart_by_policy() {
        let host = MockHost::new();
        host.respond(
            429,
            &[("X-HubSpot-RateLimit-Interval-Milliseconds", "10000"), ("X-HubSpot-RateLimit-Remaining", "0")],
            r#"{"status":"error","message":"You have reached your ten_secondly_rolling limit.","errorType":"RATE_LIMIT","correlationId":"c-2","policyName":"TEN_SECONDLY_ROLLING"}"#,
        );
        let outcomes = run(
            &host,
            &config(true),
            &[
                user("ann@example.com", Value::Boolean(true)),
                user("bob@example.com", Value::Boolean(true)),
            ],
        );
        for outcome in &outcomes {
            let f = failure(outcome);
            assert!(f.retryable);
            assert_eq!(f.retry_after_ms, Some(BURST_WINDOW_MS));
        }
        // A Retry-After, when HubSpot sends one, wins.
        host.respond(
            429,
            &[("Retry-After", "3")],
            r#"{"policyName":"TEN_SECONDLY_ROLLING"}"#,
        );
        assert_eq!(
            failure(
                &run(
                    &host,
                    &config(true),
                    &[user("ann@example.com", Value::Null)]
                )[0]
            )
            .retry_after_ms,
            Some(3000)
        );

        // The daily cap: parked until midnight in the account's zone, and
        // the next batches send nothing until then.
        let mut config = config(true);
        config["properties"]["time_zone"] = json!("UTC");
        host.respond(
            429,
            &[],
            r#"{"status":"error","message":"You have reached your daily limit.","errorType":"RATE_LIMIT","correlationId":"c-3","policyName":"DAILY"}"#,
        );
        let sent_before = host.requests.borrow().len();
        let daily = failure(
            &run(
                &host,
                &config,
                &[user("ann@example.com", Value::Boolean(true))],
            )[0],
        )
        .clone();
        let now = jiff::Timestamp::now();
        let midnight = next_daily_reset(now, &jiff::tz::TimeZone::UTC);
        let expected = millis_between(now, midnight);
        let wait = daily.retry_after_ms.unwrap();
        assert!(daily.retryable);
        assert!(
            wait <= expected && expected - wait < 5_000,
            "{wait} vs {expected}"
        );
        assert!(
            daily.message.contains("daily limit") && daily.message.contains("UTC"),
            "{}",
            daily.message
        );
        let parked = run(
            &host,
            &config,
            &[user("bob@example.com", Value::Boolean(true))],
        );
        assert!(
            failure(&parked[0]).retryable && failure(&parked[0]).message.contains("parked until")
        );
        assert_eq!(
            host.requests.borrow().len(),
            sent_before + 1,
            "nothing sent while parked"
        );
    }

    #[test]
    fn the_daily_reset_is_the_next_midnight_of_the_zone() {
        let at = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        assert_eq!(
            next_daily_reset(at("2026-12-04T15:30:00Z"), &jiff::tz::TimeZone::UTC),
            at("2026-12-05T00:00:00Z")
        );
        let new_york = jiff::tz::TimeZone::get("America/New_York").unwrap();
        // 03:00 UTC is still the 3rd in New York: its midnight is 05:00 UTC on the 4th.
        assert_eq!(
            next_daily_reset(at("2026-12-04T03:00:00Z"), &new_york),
            at("2026-12-04T05:00:00Z")
        );
        // Across the spring DST change, the day still starts at midnight local time.
        assert_eq!(
            next_daily_reset(at("2026-03-08T12:00:00Z"), &new_york),
            at("2026-03-09T04:00:00Z")
        );
    }

    #[test]
    fn other_failures_are_classified() {
        let host = MockHost::new();
        host.respond(
            401,
            &[],
            r#"{"status":"error","message":"Authentication credentials not found.","correlationId":"c-4","category":"INVALID_AUTHENTICATION"}"#,
        );
        let outcomes = run(
            &host,
            &config(false),
            &[
                user("ann@example.com", Value::Boolean(true)),
                user("bob@example.com", Value::Boolean(true)),
            ],
        );
        let f = failure(&outcomes[0]);
        assert!(!f.retryable);
        assert!(
            f.message.contains("refused the access token")
                && f.message.contains("INVALID_AUTHENTICATION"),
            "{}",
            f.message
        );
        assert!(!f.message.contains(TOKEN));
        assert_eq!(
            &outcomes[1], &outcomes[0],
            "the rest of the batch is not sent"
        );
        assert_eq!(host.requests.borrow().len(), 1);

        host.respond(
            400,
            &[],
            r#"{"status":"error","message":"Property values were not valid: [{\"isValid\":false,\"message\":\"Property \\\"didomi_sms\\\" does not exist\",\"error\":\"PROPERTY_DOESNT_EXIST\",\"name\":\"didomi_sms\"}]","correlationId":"c-5","category":"VALIDATION_ERROR"}"#,
        );
        let f = failure(
            &run(
                &host,
                &config(true),
                &[user("ann@example.com", Value::Boolean(true))],
            )[0],
        )
        .clone();
        assert!(!f.retryable);
        assert!(
            f.message
                .starts_with("HTTP 400: VALIDATION_ERROR: Property values were not valid"),
            "{}",
            f.message
        );

        host.respond(502, &[], "<html>bad gateway</html>");
        assert!(
            failure(
                &run(
                    &host,
                    &config(true),
                    &[user("ann@example.com", Value::Null)]
                )[0]
            )
            .retryable
        );

        // The status call fails on its own: the contact was written, the record is retried.
        host.respond(
            200,
            &[],
            r#"{"results":[{"new":true,"properties":{"email":"ann@example.com"}}]}"#,
        )
        .respond(
            503,
            &[],
            r#"{"status":"error","message":"try later","category":"INTERNAL_ERROR"}"#,
        );
        let f = failure(
            &run(
                &host,
                &config(true),
                &[user("ann@example.com", Value::Boolean(true))],
            )[0],
        )
        .clone();
        assert!(f.retryable && f.message.contains("try later"), "{f:?}");
        // … or refuses it inside a 2xx.
        host.respond(200, &[], r#"{"results":[{"new":false,"properties":{"email":"ann@example.com"}}]}"#)
            .respond(207, &[], r#"{"status":"COMPLETE","results":[],"errors":[{"category":"VALIDATION_ERROR","message":"subscription 101 does not exist"}]}"#);
        let f = failure(
            &run(
                &host,
                &config(true),
                &[user("ann@example.com", Value::Boolean(true))],
            )[0],
        )
        .clone();
        assert!(
            !f.retryable
                && f.message
                    == "HubSpot subscription 101 status: VALIDATION_ERROR: subscription 101 does not exist",
            "{f:?}"
        );

        host.fail(HttpError::Timeout);
        assert!(
            failure(
                &run(
                    &host,
                    &config(true),
                    &[user("ann@example.com", Value::Null)]
                )[0]
            )
            .retryable
        );
        host.fail(HttpError::Denied("api.hubapi.com is not allowed".into()));
        assert!(
            !failure(
                &run(
                    &host,
                    &config(true),
                    &[user("ann@example.com", Value::Null)]
                )[0]
            )
            .retryable
        );
    }

    // -- connection check --

    const CHECK_URL: &str = "https://api.hubapi.com/crm/v3/objects/contacts/connection-check%40prefsync.invalid?idProperty=email";
    const NOT_FOUND: &str = r#"{"status":"error","message":"resource not found","correlationId":"c-1","category":"OBJECT_NOT_FOUND"}"#;

    fn check(host: &MockHost) -> Result<Vec<prefsync_sdk::ValidationProblem>, String> {
        prefsync_sdk::connection::check::<HubSpot>(host, &config(true).to_string())
    }

    #[test]
    fn connection_check_is_one_authenticated_contact_read() {
        let host = MockHost::new();
        host.respond_to(Method::Get, CHECK_URL, 404, &[], NOT_FOUND);
        assert_eq!(check(&host), Ok(Vec::new()));
        let requests = host.requests.borrow();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].method, Method::Get);
        assert!(requests[0].body.is_none());
        assert!(
            requests[0]
                .headers
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case("authorization")
                    && *v == format!("Bearer {TOKEN}")),
            "{:?}",
            requests[0].headers
        );
        drop(requests);
        // A contact that happens to exist is as good.
        host.respond_to(
            Method::Get,
            CHECK_URL,
            200,
            &[],
            r#"{"id":"1","properties":{}}"#,
        );
        assert_eq!(check(&host), Ok(Vec::new()));
    }

    #[test]
    fn connection_check_refused_token_is_at_its_path() {
        let host = MockHost::new();
        host.respond(401, &[], r#"{"status":"error","message":"Authentication credentials not found.","category":"INVALID_AUTHENTICATION"}"#);
        let problems = check(&host).unwrap();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "authentication.access_token");
        assert!(!problems[0].message.contains(TOKEN));
        host.respond(
            403,
            &[],
            r#"{"status":"error","message":"missing scopes","category":"MISSING_SCOPES"}"#,
        );
        assert_eq!(check(&host).unwrap()[0].path, "authentication.access_token");
        // A 404 that is not HubSpot's "no such contact": a wrong API base.
        host.respond(404, &[], "<html>not here</html>");
        assert_eq!(check(&host).unwrap()[0].path, "");
    }

    #[test]
    fn connection_check_cannot_be_made_on_5xx_429_or_timeout() {
        let host = MockHost::new();
        host.respond(
            503,
            &[],
            r#"{"status":"error","message":"internal error","category":"INTERNAL_ERROR"}"#,
        );
        assert!(check(&host).is_err());
        host.respond(
            429,
            &[],
            r#"{"status":"error","errorType":"RATE_LIMIT","policyName":"DAILY"}"#,
        );
        assert!(check(&host).is_err());
        host.fail(HttpError::Timeout);
        assert!(check(&host).is_err());
        host.fail(HttpError::Denied("api.hubapi.com is not allowed".into()));
        assert_eq!(check(&host).unwrap()[0].path, "");
    }
}
