//! Requests to Klaviyo's JSON:API and how answers are classified.
//!
//! A batch is delivered in two steps, so every record's outcome is its own:
//!
//! 1. per record, `POST /api/profile-import` (Klaviyo has no synchronous
//!    bulk upsert; its bulk import is an asynchronous job that cannot clear
//!    fields). With `upsert_mode: false` a lookup
//!    (`GET /api/profiles/?filter=equals(…)`) comes first and a profile that
//!    is not there is skipped. A refusal of this record alone (400, 409, …)
//!    fails it; a refusal any record would get (401/403, 429, 5xx, a
//!    transport error) fails it and every record after it, unsent;
//! 2. for the records imported, one subscribe job
//!    (`profile-subscription-bulk-create-jobs`, every channel whose consent
//!    is true) and one unsubscribe job (`…-bulk-delete-jobs`, every channel
//!    whose consent is false), up to 1,000 profiles each. A job refused for
//!    one profile (a 400 whose `source.pointer` names
//!    `/data/attributes/profiles/data/<n>`) fails that record and is sent
//!    again without it; any other refusal fails every record of the job.

use prefsync_sdk::http::{encode_component, failure_from_response};
use prefsync_sdk::mapping::map_record;
use prefsync_sdk::{
    ConsentRecord, Context, DeliveredKind, Failure, HttpError, Method, Outcome, Request, Response,
    RowFailure, RowOutcome, SyncBatch, SyncMode, SyncRow, Value,
};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use crate::config::{Channel, KlaviyoConfig, Target};

const REQUEST_TIMEOUT_MS: u32 = 30_000;

/// Most profiles Klaviyo takes in one subscription job.
pub const MAX_JOB_PROFILES: usize = 1000;

/// Delivers a batch: each record imported, then one job per consent direction.
pub fn deliver_batch(
    ctx: &Context<'_>,
    config: &KlaviyoConfig,
    batch: &[ConsentRecord],
) -> Vec<Outcome> {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];
    // Imported records: (index, how the profile changed, its consent entry).
    let mut imported: Vec<(usize, DeliveredKind)> = Vec::new();
    for (i, record) in batch.iter().enumerate() {
        let ctx = ctx.for_record(&record.key);
        match import(&ctx, config, record) {
            Step::Imported(kind) => imported.push((i, kind)),
            Step::Done(outcome) => outcomes[i] = Some(outcome),
            Step::Wholesale(outcome) => {
                for slot in &mut outcomes[i..] {
                    *slot = Some(outcome.clone());
                }
                if i + 1 < batch.len() {
                    ctx.debug(
                        "the rest of the batch is not sent",
                        &[("records", &(batch.len() - i - 1).to_string())],
                    );
                }
                break;
            }
        }
    }

    for consent in [true, false] {
        let entries: Vec<JobEntry> = imported
            .iter()
            .filter(|(i, _)| outcomes[*i].is_none())
            .filter_map(|(i, _)| job_entry(config, &batch[*i], consent).map(|p| (*i, p)))
            .collect();
        for chunk in entries.chunks(MAX_JOB_PROFILES) {
            for (i, failure) in run_job(ctx, config, consent, chunk.to_vec()) {
                outcomes[i] = Some(failure);
            }
        }
    }

    for (i, kind) in imported {
        if outcomes[i].is_none() {
            outcomes[i] = Some(Outcome::Delivered(kind));
        }
    }
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Outcome::permanent("no outcome (connector bug)")))
        .collect()
}

/// What became of one record's import.
enum Step {
    Imported(DeliveredKind),
    /// Final for this record (skipped, or refused for itself).
    Done(Outcome),
    /// Refused in a way every record would be: this one and the rest fail.
    Wholesale(Outcome),
}

fn import(ctx: &Context<'_>, config: &KlaviyoConfig, record: &ConsentRecord) -> Step {
    let mut existed = false;
    if !config.upsert_mode {
        match lookup(ctx, config, record) {
            Ok(true) => existed = true,
            Ok(false) => {
                ctx.debug("profile not found; upsert_mode is off", &[]);
                return Step::Done(Outcome::Skipped("profile not found".into()));
            }
            Err(step) => return step,
        }
    }
    let body = profile_body(config, record);
    let url = format!("{}/api/profile-import", config.base_url());
    match ctx.send(request(config, Method::Post, &url).json(&body)) {
        Err(e) => Step::Wholesale(transport(e, "Klaviyo profile import")),
        Ok(r) if r.status == 201 && !existed => Step::Imported(DeliveredKind::Created),
        Ok(r) if (200..300).contains(&r.status) => Step::Imported(DeliveredKind::Updated),
        Ok(r) => refusal(&r),
    }
}

/// Whether the profile exists: `GET /api/profiles/?filter=equals(<identifier>,"<key>")`.
fn lookup(ctx: &Context<'_>, config: &KlaviyoConfig, record: &ConsentRecord) -> Result<bool, Step> {
    #[derive(Deserialize)]
    struct Found {
        data: Vec<Json>,
    }
    // Klaviyo's filter quotes the value; a quote inside it cannot be written.
    if record.key.contains('"') {
        return Err(Step::Done(Outcome::permanent(
            "the organization_user_id contains a double quote, which a Klaviyo filter cannot express",
        )));
    }
    let filter = format!("equals({},\"{}\")", config.identifier(), record.key);
    let url = format!(
        "{}/api/profiles/?filter={}",
        config.base_url(),
        encode_component(&filter)
    );
    match ctx.send(request(config, Method::Get, &url)) {
        Err(e) => Err(Step::Wholesale(transport(e, "Klaviyo profile lookup"))),
        Ok(r) if (200..300).contains(&r.status) => match r.json::<Found>() {
            Ok(found) => Ok(!found.data.is_empty()),
            Err(e) => Err(Step::Done(Outcome::retryable(format!(
                "Klaviyo profile lookup: unreadable answer ({e})"
            )))),
        },
        Ok(r) => Err(refusal(&r)),
    }
}

/// The profile-import body: the identifier from the `organization_user_id`,
/// and every mapped attribute and custom property whose value is not null
/// (null is "no value": it changes nothing). Consents go to the jobs.
pub fn profile_body(config: &KlaviyoConfig, record: &ConsentRecord) -> Json {
    let mut attributes = Map::new();
    attributes.insert(config.identifier().into(), json!(record.key));
    let mut properties = Map::new();
    for field in map_record(&config.mappings, record) {
        if *field.value == Value::Null {
            continue;
        }
        match crate::config::target(field.field) {
            Ok(Target::Attribute(name)) => {
                attributes.insert(name.into(), attribute_value(field.value));
            }
            Ok(Target::Property(name)) => {
                properties.insert(name.into(), field.value.to_json());
            }
            Ok(Target::Consent(_)) | Err(_) => {}
        }
    }
    if !properties.is_empty() {
        attributes.insert("properties".into(), Json::Object(properties));
    }
    json!({"data": {"type": "profile", "attributes": attributes}})
}

/// Standard attributes are strings in Klaviyo.
fn attribute_value(value: &Value) -> Json {
    value.to_text().map_or(Json::Null, Json::String)
}

/// One profile of a subscription job, for the record at `.0`.
type JobEntry = (usize, Json);

/// The record's profile for the job of `consent` (true: subscribe, false:
/// unsubscribe): its address on each channel whose mapped consent has that
/// value. `None` when no channel has it. A channel the profile has no
/// address for is left out (there is nothing to subscribe), with a log line.
fn job_entry(config: &KlaviyoConfig, record: &ConsentRecord, consent: bool) -> Option<Json> {
    let mut attributes = Map::new();
    let mut subscriptions = Map::new();
    let state = if consent {
        "SUBSCRIBED"
    } else {
        "UNSUBSCRIBED"
    };
    for field in map_record(&config.mappings, record) {
        let Ok(Target::Consent(channel)) = crate::config::target(field.field) else {
            continue;
        };
        if *field.value != Value::Boolean(consent) {
            continue;
        }
        let Some(address) = address(config, record, channel) else {
            continue;
        };
        attributes.insert(channel.address().into(), json!(address));
        subscriptions.insert(
            channel.key().into(),
            json!({"marketing": {"consent": state}}),
        );
    }
    if subscriptions.is_empty() {
        return None;
    }
    attributes.insert("subscriptions".into(), Json::Object(subscriptions));
    Some(json!({"type": "profile", "attributes": attributes}))
}

/// The record's address on `channel`: the key when it is the identifier,
/// else the mapped attribute's value.
fn address(config: &KlaviyoConfig, record: &ConsentRecord, channel: Channel) -> Option<String> {
    if config.identifier() == channel.address() {
        return Some(record.key.clone());
    }
    map_record(&config.mappings, record)
        .into_iter()
        .find(|f| f.field == channel.address())
        .and_then(|f| f.value.to_text())
        .filter(|a| !a.trim().is_empty())
}

/// Sends one subscription job for `entries`; returns the failures, by
/// record index. A profile Klaviyo refuses by pointer is failed and the job
/// sent again without it (each round removes one at least, so this ends).
fn run_job(
    ctx: &Context<'_>,
    config: &KlaviyoConfig,
    consent: bool,
    mut entries: Vec<JobEntry>,
) -> Vec<(usize, Outcome)> {
    let (path, kind, what) = if consent {
        (
            "profile-subscription-bulk-create-jobs",
            "profile-subscription-bulk-create-job",
            "Klaviyo subscribe job",
        )
    } else {
        (
            "profile-subscription-bulk-delete-jobs",
            "profile-subscription-bulk-delete-job",
            "Klaviyo unsubscribe job",
        )
    };
    let url = format!("{}/api/{path}", config.base_url());
    let list_id = config.properties.list_id.clone().unwrap_or_default();
    let mut failed = Vec::new();
    while !entries.is_empty() {
        let profiles: Vec<&Json> = entries.iter().map(|(_, p)| p).collect();
        let mut attributes = json!({"profiles": {"data": profiles}});
        if consent {
            attributes["custom_source"] = json!(config.custom_source());
            attributes["historical_import"] = json!(false);
        }
        let body = json!({"data": {
            "type": kind,
            "attributes": attributes,
            "relationships": {"list": {"data": {"type": "list", "id": list_id}}}
        }});
        ctx.debug(what, &[("profiles", &entries.len().to_string())]);
        let response = match ctx.send(request(config, Method::Post, &url).json(&body)) {
            Ok(r) => r,
            Err(e) => {
                let outcome = transport(e, what);
                failed.extend(entries.iter().map(|(i, _)| (*i, outcome.clone())));
                return failed;
            }
        };
        if (200..300).contains(&response.status) {
            return failed;
        }
        let refused = refused_profiles(&response, entries.len());
        if refused.is_empty() || response.status != 400 {
            let outcome = match refusal(&response) {
                Step::Done(o) | Step::Wholesale(o) => o,
                Step::Imported(_) => Outcome::permanent("unreachable"),
            };
            let outcome = match outcome {
                Outcome::Failed(f) => Outcome::Failed(Failure {
                    message: format!("{what}: {}", f.message),
                    ..f
                }),
                other => other,
            };
            failed.extend(entries.iter().map(|(i, _)| (*i, outcome.clone())));
            return failed;
        }
        // Highest position first, so the lower ones stay where they are.
        for (position, detail) in refused.into_iter().rev() {
            let (i, _) = entries.remove(position);
            failed.push((i, Outcome::permanent(format!("{what}: HTTP 400: {detail}"))));
        }
    }
    failed
}

/// The job's profiles a 400 blames, by position (sorted, distinct), each
/// with Klaviyo's words: errors whose `source.pointer` is under
/// `/data/attributes/profiles/data/<n>`.
fn refused_profiles(response: &Response, count: usize) -> Vec<(usize, String)> {
    let Ok(body) = response.json::<ErrorBody>() else {
        return Vec::new();
    };
    let mut refused: Vec<(usize, String)> = Vec::new();
    for error in &body.errors {
        let Some(position) = error
            .source
            .as_ref()
            .and_then(|s| s.pointer.as_deref())
            .and_then(|p| p.strip_prefix("/data/attributes/profiles/data/"))
            .and_then(|rest| rest.split('/').next())
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n < count)
        else {
            // One error the pointer does not pin on a profile: the job as a whole.
            return Vec::new();
        };
        if !refused.iter().any(|(p, _)| *p == position) {
            refused.push((position, error.describe()));
        }
    }
    refused.sort_by_key(|(p, _)| *p);
    refused
}

/// The address the connection check looks up when no list is configured:
/// no profile has it (`.invalid` is reserved), and a lookup writes nothing.
pub const CHECK_EMAIL: &str = "connection-check@prefsync.invalid";

/// The connection check, one read that writes nothing. With
/// `properties.list_id`: `GET /api/lists/{list_id}` (the key and the list in
/// one call; a 404 `not_found` is a problem at `properties.list_id`).
/// Without: the documented profile lookup
/// `GET /api/profiles/?filter=equals(email,"<CHECK_EMAIL>")`, which finds
/// nobody. 401/403 refuse `authentication.private_api_key`; 429 and 5xx
/// mean the check could not be made.
pub fn check_connection(
    ctx: &Context<'_>,
    config: &KlaviyoConfig,
) -> Result<Vec<prefsync_sdk::ValidationProblem>, String> {
    use prefsync_sdk::ValidationProblem;
    use prefsync_sdk::connection::{unreachable, verdict};
    const KEY: &str = "authentication.private_api_key";
    let list_id = config
        .properties
        .list_id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty());
    let url = match list_id {
        Some(id) => format!("{}/api/lists/{}", config.base_url(), encode_component(id)),
        None => format!(
            "{}/api/profiles/?filter={}",
            config.base_url(),
            encode_component(&format!("equals(email,\"{CHECK_EMAIL}\")"))
        ),
    };
    match ctx.send(request(config, Method::Get, &url)) {
        Ok(r) if r.status == 404 && list_id.is_some() && json_api_not_found(&r) => {
            Ok(vec![ValidationProblem {
                path: "properties.list_id".into(),
                message: "Klaviyo has no list with this id in the account".into(),
            }])
        }
        Ok(r) => verdict(&r, KEY),
        Err(e) => unreachable(&e),
    }
}

/// Whether a 404 is Klaviyo's JSON:API `not_found` (and not a path the API
/// base does not serve).
fn json_api_not_found(response: &Response) -> bool {
    response
        .json::<Json>()
        .is_ok_and(|body| body["errors"][0]["code"] == "not_found")
}

/// A request with Klaviyo's headers: the key, the pinned revision, JSON.
fn request(config: &KlaviyoConfig, method: Method, url: &str) -> Request {
    Request::new(method, url)
        .header(
            "Authorization",
            format!("Klaviyo-API-Key {}", config.authentication.private_api_key),
        )
        .header("revision", config.revision())
        .header("Accept", "application/json")
        .timeout_ms(REQUEST_TIMEOUT_MS)
}

/// A transport error: every later request would likely meet it too.
fn transport(error: HttpError, context: &str) -> Outcome {
    error.into_outcome(context)
}

/// A non-2xx answer: the key refused (401/403) and every retryable status
/// concern every record; anything else (400, 404, 409, 422, …) is this
/// record's own, permanent, with Klaviyo's error code and detail.
fn refusal(response: &Response) -> Step {
    let detail = error_detail(response);
    match response.status {
        401 | 403 => Step::Wholesale(Outcome::Failed(Failure {
            retryable: false,
            retry_after_ms: None,
            message: format!(
                "HTTP {}: Klaviyo refused the API key ({detail}): check authentication.private_api_key and its scopes",
                response.status
            ),
        })),
        _ => {
            let outcome = failure_from_response(response, &detail);
            match outcome {
                Outcome::Failed(Failure {
                    retryable: true, ..
                }) => Step::Wholesale(outcome),
                other => Step::Done(other),
            }
        }
    }
}

/// A JSON:API error document.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<ApiError>,
}

#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    source: Option<ErrorSource>,
    #[serde(default)]
    meta: Option<Map<String, Json>>,
}

#[derive(Debug, Deserialize)]
struct ErrorSource {
    #[serde(default)]
    pointer: Option<String>,
}

impl ApiError {
    /// `code: detail (at pointer)`, with a duplicate profile's id when given.
    fn describe(&self) -> String {
        let mut text = self.code.clone().unwrap_or_else(|| "error".into());
        if let Some(words) = self.detail.as_ref().or(self.title.as_ref()) {
            text.push_str(": ");
            text.push_str(words);
        }
        if let Some(pointer) = self.source.as_ref().and_then(|s| s.pointer.as_ref()) {
            text.push_str(&format!(" (at {pointer})"));
        }
        if let Some(id) = self
            .meta
            .as_ref()
            .and_then(|m| m.get("duplicate_profile_id"))
            .and_then(Json::as_str)
        {
            text.push_str(&format!(" (duplicate of profile {id})"));
        }
        text
    }
}

/// Klaviyo's errors, `; `-joined, or the start of the body.
fn error_detail(response: &Response) -> String {
    match response.json::<ErrorBody>() {
        Ok(body) if !body.errors.is_empty() => body
            .errors
            .iter()
            .map(ApiError::describe)
            .collect::<Vec<_>>()
            .join("; "),
        _ => response.text_snippet(200),
    }
}

// ---------------------------------------------------------------------------
// Activations: model rows as profile attributes and custom properties
// ---------------------------------------------------------------------------

/// Rows per `sync` call: every row is one or two requests.
pub const MAX_ROWS: u32 = 50;

/// Writes model rows with `profile-import`: the key field names the
/// identifier (`email`, `phone_number` or `external_id`); an attribute named
/// as a standard profile attribute is one, anything else a custom property
/// (`properties.<name>` too). Only the attributes a row carries are sent,
/// null included (it clears the value in Klaviyo). Insert and update look
/// the profile up first: insert skips one that exists, update one that
/// does not.
pub fn sync(
    ctx: &Context<'_>,
    config: &KlaviyoConfig,
    batch: &SyncBatch,
) -> Result<Vec<RowOutcome>, RowFailure> {
    let Some(identifier) = crate::config::IDENTIFIERS
        .iter()
        .find(|id| id.eq_ignore_ascii_case(&batch.key_field))
        .copied()
    else {
        return Err(RowFailure::permanent(format!(
            "Klaviyo matches profiles on email, phone_number or external_id, not `{}`",
            batch.key_field
        )));
    };
    let mut outcomes = Vec::with_capacity(batch.rows.len());
    for (i, row) in batch.rows.iter().enumerate() {
        let ctx = ctx.for_record(&row.key);
        match sync_row(&ctx, config, identifier, batch.mode, row) {
            Ok(outcome) => outcomes.push(outcome),
            // Nothing written yet: the batch as a whole was refused.
            Err(failure) if i == 0 => return Err(failure),
            // The rows left would get the same answer: not sent.
            Err(failure) => {
                outcomes.extend((i..batch.rows.len()).map(|_| RowOutcome::Failed(failure.clone())));
                break;
            }
        }
    }
    Ok(outcomes)
}

/// One row; `Err` is a refusal every row would get (credentials, rate
/// limit, outage, transport).
fn sync_row(
    ctx: &Context<'_>,
    config: &KlaviyoConfig,
    identifier: &str,
    mode: SyncMode,
    row: &SyncRow,
) -> Result<RowOutcome, RowFailure> {
    let mut attributes = Map::new();
    attributes.insert(identifier.into(), json!(row.key));
    let mut properties = Map::new();
    for attribute in &row.attributes {
        if attribute.name.eq_ignore_ascii_case(identifier) {
            continue;
        }
        match crate::config::target(&attribute.name) {
            Ok(Target::Attribute(name)) => {
                attributes.insert(name.into(), attribute_value(&attribute.value));
            }
            Ok(Target::Property(name)) => {
                properties.insert(name.into(), attribute.value.to_json());
            }
            Ok(Target::Consent(_)) | Err(_) => {
                return Ok(RowOutcome::Failed(
                    RowFailure::permanent(format!(
                        "`{}` is a consent, not a profile attribute: activations write attributes only",
                        attribute.name
                    ))
                    .with_field(attribute.name.clone()),
                ));
            }
        }
    }
    if !properties.is_empty() {
        attributes.insert("properties".into(), Json::Object(properties));
    }
    let exists = match mode {
        SyncMode::Upsert => None,
        SyncMode::Insert | SyncMode::Update => Some(row_exists(ctx, config, identifier, &row.key)?),
    };
    match (mode, exists) {
        (SyncMode::Insert, Some(true)) => {
            return Ok(RowOutcome::Skipped("already in Klaviyo".into()));
        }
        (SyncMode::Update, Some(false)) => return Ok(RowOutcome::Skipped("not in Klaviyo".into())),
        _ => {}
    }
    let body = json!({"data": {"type": "profile", "attributes": attributes}});
    let url = format!("{}/api/profile-import", config.base_url());
    let response = ctx
        .send(request(config, Method::Post, &url).json(&body))
        .map_err(|e| RowFailure::from_http(&e, "Klaviyo profile import"))?;
    match response.status {
        201 if mode != SyncMode::Update => Ok(RowOutcome::Inserted),
        200..=299 => Ok(RowOutcome::Updated),
        _ => row_refusal(&response),
    }
}

fn row_exists(
    ctx: &Context<'_>,
    config: &KlaviyoConfig,
    identifier: &str,
    key: &str,
) -> Result<bool, RowFailure> {
    #[derive(Deserialize)]
    struct Found {
        data: Vec<Json>,
    }
    if key.contains('"') {
        return Err(RowFailure::permanent(
            "a key holding a double quote cannot be looked up in Klaviyo",
        ));
    }
    let filter = format!("equals({identifier},\"{key}\")");
    let url = format!(
        "{}/api/profiles/?filter={}",
        config.base_url(),
        encode_component(&filter)
    );
    let response = ctx
        .send(request(config, Method::Get, &url))
        .map_err(|e| RowFailure::from_http(&e, "Klaviyo profile lookup"))?;
    if !(200..300).contains(&response.status) {
        return match row_refusal(&response) {
            Ok(RowOutcome::Failed(failure)) => Err(failure),
            other => other.map(|_| false),
        };
    }
    response
        .json::<Found>()
        .map(|found| !found.data.is_empty())
        .map_err(|e| {
            RowFailure::retryable(format!("Klaviyo profile lookup: unreadable answer ({e})"))
        })
}

/// A row's own refusal (`Ok(Failed)`, naming the field a pointer
/// `/data/attributes/<field>` or `/data/attributes/properties/<name>`
/// blames) or the batch's (`Err`: 401/403, 429, 5xx, …).
fn row_refusal(response: &Response) -> Result<RowOutcome, RowFailure> {
    let detail = error_detail(response);
    if matches!(response.status, 401 | 403) {
        return Err(RowFailure::permanent(format!(
            "HTTP {}: Klaviyo refused the API key ({detail}): check authentication.private_api_key and its scopes",
            response.status
        )));
    }
    let failure = RowFailure::from_response(response, &detail);
    if failure.retryable {
        return Err(failure);
    }
    let field = response.json::<ErrorBody>().ok().and_then(|body| {
        body.errors.into_iter().find_map(|e| {
            let pointer = e.source?.pointer?;
            let rest = pointer.strip_prefix("/data/attributes/")?;
            let field = rest.strip_prefix("properties/").unwrap_or(rest);
            (!field.is_empty()).then(|| field.split('/').next().unwrap_or(field).to_string())
        })
    });
    Ok(RowOutcome::Failed(match field {
        Some(field) => failure.with_field(field),
        None => failure,
    }))
}

#[cfg(test)]
mod tests {
    use prefsync_sdk::connector;
    use prefsync_sdk::testing::MockHost;

    use super::*;
    use crate::Klaviyo;

    const KEY: &str = "pk_test_0123456789abcdef";

    fn config(upsert: bool) -> String {
        json!({
            "type_id": "klaviyo",
            "authentication": {"private_api_key": KEY},
            "properties": {"list_id": "Xy12Ab"},
            "mappings": [
                {"id": "subscriptions.email.marketing", "value": "consents_purposes_newsletter_enabled"},
                {"id": "phone_number", "value": "metadata_phone"},
                {"id": "subscriptions.sms.marketing", "value": "consents_channels_sms_enabled"},
                {"id": "first_name", "value": "metadata_first_name"},
                {"id": "consent_newsletter", "value": "consents_purposes_newsletter_enabled"},
                {"id": "properties.age", "value": "metadata_age"}
            ],
            "upsert_mode": upsert
        })
        .to_string()
    }

    fn record(email: &str, newsletter: Value, sms: Value) -> ConsentRecord {
        ConsentRecord::new(
            "organization_user_id",
            email,
            &[
                ("organization_user_id", Value::Text(email.into())),
                ("consents_purposes_newsletter_enabled", newsletter),
                ("consents_channels_sms_enabled", sms),
                ("metadata_phone", Value::Text("+33612345678".into())),
                ("metadata_first_name", Value::Text("Ann".into())),
                ("metadata_age", Value::Number(42.0)),
            ],
        )
    }

    fn ann() -> ConsentRecord {
        record(
            "ann@example.com",
            Value::Boolean(true),
            Value::Boolean(false),
        )
    }

    fn body(host: &MockHost, index: usize) -> Json {
        serde_json::from_slice(host.requests.borrow()[index].body.as_ref().unwrap()).unwrap()
    }

    fn url(host: &MockHost, index: usize) -> String {
        host.requests.borrow()[index].url.clone()
    }

    fn failure(outcome: &Outcome) -> &Failure {
        match outcome {
            Outcome::Failed(f) => f,
            other => panic!("not a failure: {other:?}"),
        }
    }

    #[test]
    fn a_record_is_imported_then_subscribed_and_unsubscribed_by_channel() {
        let host = MockHost::new();
        host.respond(201, &[], r#"{"data": {"type": "profile", "id": "01P"}}"#)
            .respond(202, &[], "")
            .respond(202, &[], "");
        let outcomes = connector::deliver::<Klaviyo>(&host, &config(true), &[ann()]);
        assert_eq!(outcomes, [Outcome::Delivered(DeliveredKind::Created)]);

        let requests = host.requests.borrow().clone();
        assert_eq!(requests.len(), 3);
        assert_eq!(requests[0].method, Method::Post);
        assert_eq!(url(&host, 0), "https://a.klaviyo.com/api/profile-import");
        for request in &requests {
            assert!(
                request
                    .headers
                    .contains(&("Authorization".into(), format!("Klaviyo-API-Key {KEY}")))
            );
            assert!(
                request
                    .headers
                    .contains(&("revision".into(), "2025-01-15".into()))
            );
        }
        assert_eq!(
            body(&host, 0),
            json!({"data": {"type": "profile", "attributes": {
                "email": "ann@example.com", "phone_number": "+33612345678", "first_name": "Ann",
                "properties": {"consent_newsletter": true, "age": 42}}}})
        );
        assert_eq!(
            url(&host, 1),
            "https://a.klaviyo.com/api/profile-subscription-bulk-create-jobs"
        );
        assert_eq!(
            body(&host, 1),
            json!({"data": {"type": "profile-subscription-bulk-create-job",
                "attributes": {"custom_source": "prefsync consent sync", "historical_import": false,
                    "profiles": {"data": [{"type": "profile", "attributes": {
                        "email": "ann@example.com",
                        "subscriptions": {"email": {"marketing": {"consent": "SUBSCRIBED"}}}}}]}},
                "relationships": {"list": {"data": {"type": "list", "id": "Xy12Ab"}}}}})
        );
        assert_eq!(
            url(&host, 2),
            "https://a.klaviyo.com/api/profile-subscription-bulk-delete-jobs"
        );
        assert_eq!(
            body(&host, 2),
            json!({"data": {"type": "profile-subscription-bulk-delete-job",
                "attributes": {"profiles": {"data": [{"type": "profile", "attributes": {
                    "phone_number": "+33612345678",
                    "subscriptions": {"sms": {"marketing": {"consent": "UNSUBSCRIBED"}}}}}]}},
                "relationships": {"list": {"data": {"type": "list", "id": "Xy12Ab"}}}}})
        );
    }

    #[test]
    fn no_choice_sends_no_job_and_a_200_is_an_update() {
        let host = MockHost::new();
        host.respond(200, &[], r#"{"data": {"type": "profile", "id": "01P"}}"#);
        let outcomes = connector::deliver::<Klaviyo>(
            &host,
            &config(true),
            &[record("ann@example.com", Value::Null, Value::Null)],
        );
        assert_eq!(outcomes, [Outcome::Delivered(DeliveredKind::Updated)]);
        assert_eq!(host.requests.borrow().len(), 1, "no job for null choices");
        assert_eq!(
            body(&host, 0)["data"]["attributes"]["properties"],
            json!({"age": 42})
        );
    }

    #[test]
    fn without_upsert_a_missing_profile_is_skipped_and_a_found_one_updated() {
        let host = MockHost::new();
        host.respond(200, &[], r#"{"data": [], "links": {}}"#)
            .respond(200, &[], r#"{"data": [{"type": "profile", "id": "01P"}]}"#)
            .respond(201, &[], "{}")
            .respond(202, &[], "")
            .respond(202, &[], "");
        let outcomes = connector::deliver::<Klaviyo>(
            &host,
            &config(false),
            &[
                record("bob@example.com", Value::Boolean(true), Value::Null),
                ann(),
            ],
        );
        assert_eq!(
            outcomes,
            [
                Outcome::Skipped("profile not found".into()),
                // Found by the lookup: an update, whatever the import says.
                Outcome::Delivered(DeliveredKind::Updated)
            ]
        );
        assert_eq!(
            url(&host, 0),
            "https://a.klaviyo.com/api/profiles/?filter=equals%28email%2C%22bob%40example.com%22%29"
        );
        assert_eq!(host.requests.borrow()[0].method, Method::Get);
        // The skipped record is in no job.
        let job = body(&host, 3);
        assert_eq!(
            job["data"]["attributes"]["profiles"]["data"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            job["data"]["attributes"]["profiles"]["data"][0]["attributes"]["email"],
            "ann@example.com"
        );
    }

    #[test]
    fn failures_are_classified_with_klaviyos_words() {
        let run = |status: u16, headers: &[(&str, &str)], answer: &str| {
            let host = MockHost::new();
            host.respond(status, headers, answer);
            connector::deliver::<Klaviyo>(&host, &config(true), &[ann()]).remove(0)
        };
        let throttled = run(
            429,
            &[("Retry-After", "3")],
            r#"{"errors": [{"id": "e1", "status": 429, "code": "throttled", "title": "Request was throttled.", "detail": "Request was throttled. Expected available in 3 seconds."}]}"#,
        );
        assert_eq!(
            failure(&throttled),
            &Failure {
                retryable: true,
                retry_after_ms: Some(3000),
                message:
                    "HTTP 429: throttled: Request was throttled. Expected available in 3 seconds."
                        .into()
            }
        );
        assert!(failure(&run(503, &[], "upstream down")).retryable);
        let invalid = run(
            400,
            &[],
            r#"{"errors": [{"id": "e2", "status": 400, "code": "invalid", "title": "Invalid input.", "detail": "Invalid email address", "source": {"pointer": "/data/attributes/email"}}]}"#,
        );
        assert_eq!(
            failure(&invalid),
            &Failure {
                retryable: false,
                retry_after_ms: None,
                message: "HTTP 400: invalid: Invalid email address (at /data/attributes/email)"
                    .into()
            }
        );
        let duplicate = run(
            409,
            &[],
            r#"{"errors": [{"id": "e3", "status": 409, "code": "duplicate_profile", "title": "Conflict.", "detail": "A profile already exists with one of these identifiers.", "meta": {"duplicate_profile_id": "01DUP"}}]}"#,
        );
        let duplicate = failure(&duplicate);
        assert!(!duplicate.retryable);
        assert!(
            duplicate.message.contains("duplicate of profile 01DUP"),
            "{duplicate:?}"
        );
        let refused = run(
            401,
            &[],
            r#"{"errors": [{"id": "e4", "status": 401, "code": "not_authenticated", "title": "Authentication credentials were not provided."}]}"#,
        );
        let refused = failure(&refused);
        assert!(!refused.retryable && refused.message.contains("refused the API key"));
        assert!(!refused.message.contains(KEY));

        let host = MockHost::new();
        host.fail(HttpError::Timeout);
        let timeout = connector::deliver::<Klaviyo>(&host, &config(true), &[ann()]).remove(0);
        assert!(failure(&timeout).retryable);
    }

    #[test]
    fn a_wholesale_refusal_fails_the_rest_of_the_batch_unsent() {
        let host = MockHost::new();
        host.respond(201, &[], "{}")
            .respond(
                400,
                &[],
                r#"{"errors": [{"status": 400, "code": "invalid", "detail": "bad phone"}]}"#,
            )
            .respond(
                429,
                &[("Retry-After", "2")],
                r#"{"errors": [{"status": 429, "code": "throttled"}]}"#,
            )
            .respond(202, &[], "")
            .respond(202, &[], "");
        let batch: Vec<ConsentRecord> = (0..5)
            .map(|n| {
                record(
                    &format!("u{n}@example.com"),
                    Value::Boolean(true),
                    Value::Null,
                )
            })
            .collect();
        let outcomes = connector::deliver::<Klaviyo>(&host, &config(true), &batch);
        assert_eq!(outcomes[0], Outcome::Delivered(DeliveredKind::Created));
        assert!(!failure(&outcomes[1]).retryable);
        for throttled in &outcomes[2..] {
            assert_eq!(failure(throttled).retry_after_ms, Some(2000));
        }
        // Three imports, then one subscribe job for the one imported record.
        let requests = host.requests.borrow().clone();
        assert_eq!(requests.len(), 4);
        assert_eq!(
            body(&host, 3)["data"]["attributes"]["profiles"]["data"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn one_job_per_direction_and_a_refused_profile_fails_alone() {
        let host = MockHost::new();
        for _ in 0..4 {
            host.respond(201, &[], "{}");
        }
        // The subscribe job: profile 1 refused by pointer, then accepted without it.
        host.respond(
            400,
            &[],
            r#"{"errors": [{"id": "e", "status": 400, "code": "invalid", "title": "Invalid input.", "detail": "Profile is suppressed", "source": {"pointer": "/data/attributes/profiles/data/1/attributes/email"}}]}"#,
        )
        .respond(202, &[], "")
        // The unsubscribe job fails as a whole: retryable for its records only.
        .respond(503, &[("Retry-After", "5")], "");
        let batch = [
            record("a@example.com", Value::Boolean(true), Value::Null),
            record("b@example.com", Value::Boolean(true), Value::Null),
            record("c@example.com", Value::Boolean(false), Value::Null),
            record("d@example.com", Value::Boolean(true), Value::Null),
        ];
        let outcomes = connector::deliver::<Klaviyo>(&host, &config(true), &batch);
        assert_eq!(outcomes[0], Outcome::Delivered(DeliveredKind::Created));
        let refused = failure(&outcomes[1]);
        assert!(!refused.retryable);
        assert_eq!(
            refused.message,
            "Klaviyo subscribe job: HTTP 400: invalid: Profile is suppressed (at /data/attributes/profiles/data/1/attributes/email)"
        );
        let down = failure(&outcomes[2]);
        assert!(
            down.retryable && down.retry_after_ms == Some(5000),
            "{down:?}"
        );
        assert!(
            down.message
                .starts_with("Klaviyo unsubscribe job: HTTP 503"),
            "{down:?}"
        );
        assert_eq!(outcomes[3], Outcome::Delivered(DeliveredKind::Created));

        let emails = |index: usize| -> Vec<String> {
            body(&host, index)["data"]["attributes"]["profiles"]["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["attributes"]["email"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            emails(4),
            ["a@example.com", "b@example.com", "d@example.com"]
        );
        assert_eq!(emails(5), ["a@example.com", "d@example.com"]);
        assert_eq!(emails(6), ["c@example.com"]);
        assert_eq!(host.requests.borrow().len(), 7);
    }

    #[test]
    fn the_revision_and_base_come_from_the_config_and_the_key_is_never_logged() {
        let mut raw: Json = serde_json::from_str(&config(true)).unwrap();
        raw["properties"]["revision"] = json!("2026-04-15");
        raw["properties"]["api_base"] = json!("http://127.0.0.1:9999/");
        let host = MockHost::new();
        host.respond(201, &[], "{}")
            .respond(202, &[], "")
            .respond(202, &[], "");
        connector::deliver::<Klaviyo>(&host, &raw.to_string(), &[ann()]);
        assert_eq!(url(&host, 0), "http://127.0.0.1:9999/api/profile-import");
        assert!(
            host.requests.borrow()[0]
                .headers
                .contains(&("revision".into(), "2026-04-15".into()))
        );
        let logs = format!("{:?}", host.logs.borrow());
        assert!(!logs.contains(KEY), "{logs}");
    }

    fn rows(mode: SyncMode, rows: Vec<SyncRow>) -> SyncBatch {
        SyncBatch {
            key_field: "email".into(),
            mode,
            rows,
        }
    }

    #[test]
    fn activation_rows_are_imported_in_every_mode() {
        use prefsync_sdk::activation;
        let ann = || {
            SyncRow::new(
                "ann@example.com",
                &[
                    ("first_name", Value::Text("Ann".into())),
                    ("plan", Value::Text("gold".into())),
                    ("properties.age", Value::Null),
                ],
                false,
            )
        };
        let host = MockHost::new();
        host.respond(201, &[], "{}");
        let outcomes =
            activation::sync::<Klaviyo>(&host, &config(true), &rows(SyncMode::Upsert, vec![ann()]));
        assert_eq!(outcomes, Ok(vec![RowOutcome::Inserted]));
        assert_eq!(
            body(&host, 0),
            json!({"data": {"type": "profile", "attributes": {
                "email": "ann@example.com", "first_name": "Ann",
                "properties": {"plan": "gold", "age": null}}}})
        );

        // Insert skips a profile that exists; update skips one that does not.
        let host = MockHost::new();
        host.respond(200, &[], r#"{"data": [{"id": "01P"}]}"#)
            .respond(200, &[], r#"{"data": []}"#)
            .respond(201, &[], "{}");
        let outcomes = activation::sync::<Klaviyo>(
            &host,
            &config(true),
            &rows(
                SyncMode::Insert,
                vec![ann(), SyncRow::new("bob@example.com", &[], false)],
            ),
        );
        assert_eq!(
            outcomes,
            Ok(vec![
                RowOutcome::Skipped("already in Klaviyo".into()),
                RowOutcome::Inserted
            ])
        );
        let host = MockHost::new();
        host.respond(200, &[], r#"{"data": []}"#)
            .respond(200, &[], r#"{"data": [{"id": "01P"}]}"#)
            .respond(200, &[], "{}");
        let outcomes = activation::sync::<Klaviyo>(
            &host,
            &config(true),
            &rows(
                SyncMode::Update,
                vec![ann(), SyncRow::new("bob@example.com", &[], true)],
            ),
        );
        assert_eq!(
            outcomes,
            Ok(vec![
                RowOutcome::Skipped("not in Klaviyo".into()),
                RowOutcome::Updated
            ])
        );
    }

    #[test]
    fn activation_failures_go_on_their_row_or_refuse_the_batch() {
        use prefsync_sdk::activation;
        let batch = rows(
            SyncMode::Upsert,
            vec![
                SyncRow::new(
                    "a@example.com",
                    &[("phone_number", Value::Text("12".into()))],
                    false,
                ),
                SyncRow::new(
                    "b@example.com",
                    &[("subscriptions.email.marketing", Value::Boolean(true))],
                    false,
                ),
                SyncRow::new("c@example.com", &[], false),
                SyncRow::new("d@example.com", &[], false),
            ],
        );
        let host = MockHost::new();
        host.respond(
            400,
            &[],
            r#"{"errors": [{"status": 400, "code": "invalid", "detail": "Invalid phone number", "source": {"pointer": "/data/attributes/phone_number"}}]}"#,
        )
        .respond(503, &[], "");
        let outcomes = activation::sync::<Klaviyo>(&host, &config(true), &batch).unwrap();
        let RowOutcome::Failed(phone) = &outcomes[0] else {
            panic!("{outcomes:?}")
        };
        assert_eq!(phone.field.as_deref(), Some("phone_number"));
        assert!(!phone.retryable);
        let RowOutcome::Failed(consent) = &outcomes[1] else {
            panic!("{outcomes:?}")
        };
        assert_eq!(
            consent.field.as_deref(),
            Some("subscriptions.email.marketing")
        );
        // The outage after a write: that row and the rest, unsent, retryable.
        assert!(matches!(&outcomes[2], RowOutcome::Failed(f) if f.retryable));
        assert!(matches!(&outcomes[3], RowOutcome::Failed(f) if f.retryable));
        assert_eq!(host.requests.borrow().len(), 2);

        let host = MockHost::new();
        host.respond(
            401,
            &[],
            r#"{"errors": [{"status": 401, "code": "not_authenticated"}]}"#,
        );
        let refused = activation::sync::<Klaviyo>(&host, &config(true), &batch).unwrap_err();
        assert!(!refused.retryable && refused.message.contains("refused the API key"));
        let mut other_key = batch.clone();
        other_key.key_field = "MAIL".into();
        assert!(activation::sync::<Klaviyo>(&MockHost::new(), &config(true), &other_key).is_err());
    }

    // -- connection check --

    const LIST_URL: &str = "https://a.klaviyo.com/api/lists/Xy12Ab";
    const LIST: &str =
        r#"{"data":{"type":"list","id":"Xy12Ab","attributes":{"name":"Newsletter"}}}"#;

    fn check(
        config: &str,
    ) -> impl Fn(&MockHost) -> Result<Vec<prefsync_sdk::ValidationProblem>, String> + '_ {
        move |host| prefsync_sdk::connection::check::<Klaviyo>(host, config)
    }

    #[test]
    fn connection_check_reads_the_list_with_the_key_and_revision() {
        let raw = config(true);
        let host = MockHost::new();
        host.respond_to(Method::Get, LIST_URL, 200, &[], LIST);
        assert_eq!(check(&raw)(&host), Ok(Vec::new()));
        let requests = host.requests.borrow();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].method, Method::Get);
        assert!(requests[0].body.is_none());
        assert!(
            requests[0]
                .headers
                .contains(&("Authorization".into(), format!("Klaviyo-API-Key {KEY}")))
        );
        assert!(
            requests[0]
                .headers
                .contains(&("revision".into(), "2025-01-15".into()))
        );
    }

    #[test]
    fn connection_check_without_a_list_looks_up_a_profile_nobody_has() {
        let mut raw: Json = serde_json::from_str(&config(true)).unwrap();
        raw["properties"] = json!({});
        raw["mappings"] = json!([{"id": "first_name", "value": "metadata_first_name"}]);
        let raw = raw.to_string();
        let host = MockHost::new();
        host.respond_to(
            Method::Get,
            "https://a.klaviyo.com/api/profiles/?filter=equals%28email%2C%22connection-check%40prefsync.invalid%22%29",
            200,
            &[],
            r#"{"data":[],"links":{"self":"/api/profiles/","next":null,"prev":null}}"#,
        );
        assert_eq!(check(&raw)(&host), Ok(Vec::new()));
        assert_eq!(host.requests.borrow()[0].method, Method::Get);
    }

    #[test]
    fn connection_check_refusals_are_at_the_key_or_the_list() {
        let raw = config(true);
        let host = MockHost::new();
        host.respond(401, &[], r#"{"errors":[{"status":401,"code":"authentication_failed","title":"Incorrect authentication credentials.","detail":"The private API key is not valid."}]}"#);
        let problems = check(&raw)(&host).unwrap();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "authentication.private_api_key");
        assert!(!problems[0].message.contains(KEY));
        host.respond(
            403,
            &[],
            r#"{"errors":[{"status":403,"code":"permission_denied"}]}"#,
        );
        assert_eq!(
            check(&raw)(&host).unwrap()[0].path,
            "authentication.private_api_key"
        );
        host.respond(404, &[], r#"{"errors":[{"status":404,"code":"not_found","title":"Not found.","detail":"A list with id Xy12Ab does not exist."}]}"#);
        let problems = check(&raw)(&host).unwrap();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "properties.list_id");
        // A 404 that is not Klaviyo's: a wrong API base.
        host.respond(404, &[], "<html>no</html>");
        assert_eq!(check(&raw)(&host).unwrap()[0].path, "");
    }

    #[test]
    fn connection_check_cannot_be_made_on_5xx_429_or_timeout() {
        let raw = config(true);
        let host = MockHost::new();
        host.respond(503, &[], r#"{"errors":[{"status":503,"code":"error"}]}"#);
        assert!(check(&raw)(&host).is_err());
        host.respond(
            429,
            &[("Retry-After", "3")],
            r#"{"errors":[{"status":429,"code":"throttled"}]}"#,
        );
        assert!(check(&raw)(&host).is_err());
        host.fail(HttpError::Timeout);
        assert!(check(&raw)(&host).is_err());
    }
}
