//! Requests to Braze's REST API and how its answers are classified.
//!
//! Every record becomes one attribute object of a `POST /users/track`, up to
//! 75 per request (Braze's limit on objects per request). Braze answers a
//! request whose objects were partly refused with a 2xx whose `errors[]`
//! name each refused object by its `index`: only that record fails (or, with
//! upserts off, is skipped when the error says the user does not exist).
//!
//! The connection check is Braze's user lookup, `POST /users/export/ids`,
//! for an id no one has: it reads, and writes nothing.

use prefsync_sdk::connection::{unreachable, verdict};
use prefsync_sdk::http::failure_from_response;
use prefsync_sdk::mapping::map_record;
use prefsync_sdk::{
    ConsentRecord, Context, DeliveredKind, Failure, HttpError, Outcome, Request, Response,
    RowFailure, RowOutcome, StatusClass, SyncBatch, SyncMode, SyncRow, ValidationProblem, Value,
};
use serde::Deserialize;
use serde_json::{Map, Value as Json};

use crate::config::{
    BrazeConfig, EMAIL_SUBSCRIBE, Identifier, PUSH_SUBSCRIBE, SUBSCRIPTION_GROUP_PREFIX,
};

/// Most attribute objects Braze takes in one `/users/track` request.
pub const MAX_OBJECTS_PER_REQUEST: usize = 75;
const REQUEST_TIMEOUT_MS: u32 = 30_000;

/// Delivers a batch: one `/users/track` request per 75 records (the host
/// never sends more at once; the loop only guards a larger batch).
pub fn deliver_batch(
    ctx: &Context<'_>,
    config: &BrazeConfig,
    batch: &[ConsentRecord],
) -> Vec<Outcome> {
    batch
        .chunks(MAX_OBJECTS_PER_REQUEST)
        .flat_map(|chunk| deliver_chunk(ctx, config, chunk))
        .collect()
}

/// At most 75 records: builds their objects, sends them together, and
/// gives each record its own outcome.
fn deliver_chunk(ctx: &Context<'_>, config: &BrazeConfig, chunk: &[ConsentRecord]) -> Vec<Outcome> {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; chunk.len()];
    let mut objects = Vec::new();
    // objects[i] is the record at sent[i].
    let mut sent = Vec::new();
    for (at, record) in chunk.iter().enumerate() {
        match user_object(config, record) {
            Ok(Some(object)) => {
                objects.push(Json::Object(object));
                sent.push(at);
            }
            Ok(None) => {
                outcomes[at] = Some(Outcome::Skipped(
                    "nothing to send: no mapped property is set for this user".into(),
                ))
            }
            Err(message) => outcomes[at] = Some(Outcome::permanent(message)),
        }
    }
    if !objects.is_empty() {
        let results = track(ctx, config, objects);
        for (at, outcome) in sent.into_iter().zip(results) {
            if let Outcome::Skipped(reason) = &outcome {
                ctx.for_record(&chunk[at].key).debug(reason, &[]);
            }
            outcomes[at] = Some(outcome);
        }
    }
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Outcome::permanent("no outcome")))
        .collect()
}

/// The `/users/track` attribute object of a record: its identifier, every
/// mapped property, and `_update_existing_only` when upserts are off.
/// `Ok(None)` when no mapped property is present (nothing would change);
/// `Err` when a value cannot be written to its Braze field.
pub fn user_object(
    config: &BrazeConfig,
    record: &ConsentRecord,
) -> Result<Option<Map<String, Json>>, String> {
    let identifier = config.properties.identifier;
    if identifier == Identifier::Email && !looks_like_email(&record.key) {
        return Err(format!(
            "the user's id `{}` is not an email address, and properties.identifier is `email`",
            record.key
        ));
    }
    let mut object = Map::new();
    object.insert(identifier.field().into(), Json::String(record.key.clone()));
    let mut groups = Vec::new();
    let mut mapped = 0;
    for field in map_record(&config.mappings, record) {
        mapped += 1;
        if let Some(group_id) = field.field.strip_prefix(SUBSCRIPTION_GROUP_PREFIX) {
            if let Some(state) =
                group_state(field.value).map_err(|e| mapping_error(field.field, e))?
            {
                groups.push(serde_json::json!({
                    "subscription_group_id": group_id.trim(),
                    "subscription_state": state
                }));
            }
        } else if field.field == EMAIL_SUBSCRIBE || field.field == PUSH_SUBSCRIBE {
            let state = channel_state(field.value).map_err(|e| mapping_error(field.field, e))?;
            object.insert(field.field.into(), Json::String(state.into()));
        } else {
            // Braze removes an attribute set to null: a choice withdrawn to
            // "none" clears it.
            object.insert(field.field.into(), field.value.to_json());
        }
    }
    if mapped == 0 {
        return Ok(None);
    }
    if !groups.is_empty() {
        object.insert("subscription_groups".into(), Json::Array(groups));
    }
    if !config.upsert_mode {
        object.insert("_update_existing_only".into(), Json::Bool(true));
    }
    Ok(Some(object))
}

/// A channel's global state: an explicit yes is `opted_in`, an explicit no
/// `unsubscribed`, and no choice (null) `subscribed` (Braze's "neither").
/// Braze's own words are passed through.
fn channel_state(value: &Value) -> Result<&'static str, String> {
    match value {
        Value::Boolean(true) => Ok("opted_in"),
        Value::Boolean(false) => Ok("unsubscribed"),
        Value::Null => Ok("subscribed"),
        Value::Text(t) => match t.as_str() {
            "opted_in" => Ok("opted_in"),
            "subscribed" => Ok("subscribed"),
            "unsubscribed" => Ok("unsubscribed"),
            other => Err(format!(
                "`{other}` is not opted_in, subscribed or unsubscribed"
            )),
        },
        Value::Number(n) => Err(format!("{n} is not true, false or null")),
    }
}

/// A subscription group's state; a group has no "neither", so no choice
/// (null) changes nothing.
fn group_state(value: &Value) -> Result<Option<&'static str>, String> {
    match value {
        Value::Boolean(true) => Ok(Some("subscribed")),
        Value::Boolean(false) => Ok(Some("unsubscribed")),
        Value::Null => Ok(None),
        Value::Text(t) => match t.as_str() {
            "subscribed" => Ok(Some("subscribed")),
            "unsubscribed" => Ok(Some("unsubscribed")),
            other => Err(format!("`{other}` is not subscribed or unsubscribed")),
        },
        Value::Number(n) => Err(format!("{n} is not true, false or null")),
    }
}

fn mapping_error(field: &str, problem: String) -> String {
    format!("mapping `{field}`: {problem}")
}

fn looks_like_email(key: &str) -> bool {
    key.split_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
}

/// One `POST /users/track` with these objects: one outcome per object, in order.
pub fn track(ctx: &Context<'_>, config: &BrazeConfig, objects: Vec<Json>) -> Vec<Outcome> {
    let count = objects.len();
    match post_track(ctx, config, objects) {
        Err(error) => vec![transport_failure(error); count],
        Ok(response) => classify_track(ctx, config, &response, count),
    }
}

/// `POST {endpoint}/users/track` with these attribute objects.
fn post_track(
    ctx: &Context<'_>,
    config: &BrazeConfig,
    objects: Vec<Json>,
) -> Result<Response, HttpError> {
    let body = serde_json::json!({ "attributes": objects });
    let request = Request::new(
        prefsync_sdk::Method::Post,
        format!("{}/users/track", config.base_url()),
    )
    .json(&body)
    .header(
        "Authorization",
        format!("Bearer {}", config.authentication.api_key),
    )
    .timeout_ms(REQUEST_TIMEOUT_MS);
    ctx.send(request)
}

/// Where the key sits in the config: a refused key is reported there.
pub const KEY_PATH: &str = "authentication.api_key";

/// The external id the connection check looks up: no user has it, and
/// looking it up creates nothing.
pub const CHECK_EXTERNAL_ID: &str = "prefsync-connection-check";

/// Checks the connection with Braze's user lookup, `POST /users/export/ids`
/// for [`CHECK_EXTERNAL_ID`] and only that field: a read (Braze's lookup is
/// a `POST` with the ids in its body) that writes nothing. 2xx: the key and
/// the endpoint are right. 401: the key is refused; 403: the key lacks the
/// `users.export.ids` permission (both at `authentication.api_key`). 404: no
/// such route there, i.e. the wrong instance or REST endpoint (at the field
/// that chose it). 429, 5xx, a timeout: the check could not be made.
pub fn check_connection(
    ctx: &Context<'_>,
    config: &BrazeConfig,
) -> Result<Vec<ValidationProblem>, String> {
    let body = serde_json::json!({
        "external_ids": [CHECK_EXTERNAL_ID],
        "fields_to_export": ["external_id"],
    });
    let request = Request::new(
        prefsync_sdk::Method::Post,
        format!("{}/users/export/ids", config.base_url()),
    )
    .json(&body)
    .header(
        "Authorization",
        format!("Bearer {}", config.authentication.api_key),
    )
    .timeout_ms(REQUEST_TIMEOUT_MS);
    let response = match ctx.send(request) {
        Ok(response) => response,
        Err(error) => return unreachable(&error),
    };
    let problem = |path: &str, message: &str| {
        Ok(vec![ValidationProblem {
            path: path.into(),
            message: message.into(),
        }])
    };
    match response.status {
        403 => problem(
            KEY_PATH,
            "Braze refused it (HTTP 403): the key lacks the users.export.ids permission \
             the check needs",
        ),
        404 => {
            let at = if config.properties.rest_endpoint.is_some() {
                "properties.rest_endpoint"
            } else {
                "properties.instance"
            };
            problem(
                at,
                "Braze has no REST API there (HTTP 404): check the workspace's instance",
            )
        }
        _ => verdict(&response, KEY_PATH),
    }
}

fn transport_failure(error: HttpError) -> Outcome {
    error.into_outcome("Braze request")
}

/// Braze's answer to `/users/track`: `message`, and `errors[]` naming
/// refused objects by `index` [Braze "API errors and responses"].
#[derive(Debug, Default, Deserialize)]
pub struct TrackAnswer {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub errors: Vec<ObjectError>,
}

/// One refused object.
#[derive(Debug, Deserialize)]
pub struct ObjectError {
    /// What is wrong, in Braze's words.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Which array the object was in (`attributes` for this connector).
    #[serde(default)]
    pub input_array: Option<String>,
    #[serde(default)]
    pub index: Option<usize>,
}

/// Gives each of the `count` objects sent its outcome.
pub fn classify_track(
    ctx: &Context<'_>,
    config: &BrazeConfig,
    response: &Response,
    count: usize,
) -> Vec<Outcome> {
    let answer: TrackAnswer = response.json().unwrap_or_default();
    let success = (200..300).contains(&response.status);
    let mut outcomes: Vec<Outcome> = if success {
        // Braze does not say whether it created the user or updated it.
        vec![Outcome::Delivered(DeliveredKind::Updated); count]
    } else {
        vec![request_failure(response, &answer); count]
    };
    // A refused object fails the same way again: tie it to its record. An
    // answer that asks for a retry (429, 5xx) stands for every object.
    if matches!(response.class(), StatusClass::Retryable { .. }) {
        return outcomes;
    }
    for error in &answer.errors {
        let in_attributes = error
            .input_array
            .as_deref()
            .is_none_or(|array| array == "attributes");
        let kind = error.kind.as_deref().unwrap_or("refused by Braze");
        match error.index.filter(|i| *i < count) {
            Some(index) if in_attributes => {
                outcomes[index] = if !config.upsert_mode && says_user_is_missing(kind) {
                    Outcome::Skipped("user not found in Braze (upsert_mode is off)".into())
                } else {
                    Outcome::permanent(format!(
                        "Braze refused this user's object (HTTP {}): {kind}",
                        response.status
                    ))
                };
            }
            _ if success => ctx.warn(
                "Braze reported a problem it did not tie to an object",
                &[("type", kind)],
            ),
            _ => {}
        }
    }
    outcomes
}

/// The failure of a whole request, with what to fix for the statuses that
/// mean a wrong config.
fn request_failure(response: &Response, answer: &TrackAnswer) -> Outcome {
    let detail = answer
        .message
        .clone()
        .unwrap_or_else(|| response.text_snippet(200));
    let hint = match response.status {
        401 => Some("Braze refused the REST API key: check authentication.api_key"),
        403 => Some(
            "the REST API key lacks a permission (users.track): grant it in Braze's API keys settings",
        ),
        404 => Some(
            "Braze does not know this endpoint: check properties.instance or properties.rest_endpoint",
        ),
        _ => None,
    };
    match hint {
        Some(hint) => Outcome::Failed(Failure {
            retryable: false,
            retry_after_ms: None,
            message: if detail.is_empty() {
                format!("HTTP {}: {hint}", response.status)
            } else {
                format!("HTTP {}: {hint} ({detail})", response.status)
            },
        }),
        // 429 waits for `X-RateLimit-Reset` (a Unix time in seconds).
        None => failure_from_response(response, &detail),
    }
}

/// Whether an object's error says its user does not exist, as Braze answers
/// an `_update_existing_only` object for an unknown user. Braze does not
/// document that text; these are the phrasings it could take.
pub fn says_user_is_missing(kind: &str) -> bool {
    let kind = kind.to_ascii_lowercase();
    [
        "not exist",
        "not found",
        "non-existent",
        "nonexistent",
        "no such user",
        "unknown user",
    ]
    .iter()
    .any(|phrase| kind.contains(phrase))
}

// ---------------------------------------------------------------------------
// Activations: model rows as user attributes
// ---------------------------------------------------------------------------

/// Rows per `sync` call: one `/users/track` request.
pub const MAX_ROWS: u32 = MAX_OBJECTS_PER_REQUEST as u32;

/// Writes model rows as user attributes, one `/users/track` request for the
/// batch: the key field (`external_id` or `email`) identifies the user,
/// every attribute is written as it is named (null removes it).
///
/// Braze has no insert-only write: in `Insert` mode a row the host already
/// knows is skipped unsent, and a new one is upserted (a user Braze has but
/// the snapshot lacks is updated). `Update` mode sends
/// `_update_existing_only: true`; a user Braze says does not exist is skipped.
pub fn sync(
    ctx: &Context<'_>,
    config: &BrazeConfig,
    batch: &SyncBatch,
) -> Result<Vec<RowOutcome>, RowFailure> {
    let Some(key_field) = ["external_id", "email"]
        .into_iter()
        .find(|field| field.eq_ignore_ascii_case(&batch.key_field))
    else {
        return Err(RowFailure::permanent(format!(
            "Braze matches users on `external_id` or `email`, not `{}`",
            batch.key_field
        )));
    };
    let mut outcomes: Vec<Option<RowOutcome>> = vec![None; batch.rows.len()];
    let mut objects = Vec::new();
    let mut sent = Vec::new();
    for (at, row) in batch.rows.iter().enumerate() {
        if batch.mode == SyncMode::Insert && row.known {
            outcomes[at] = Some(RowOutcome::Skipped("already in Braze".into()));
            continue;
        }
        match row_object(key_field, batch.mode, row) {
            Ok(object) => {
                objects.push(Json::Object(object));
                sent.push(at);
            }
            Err(failure) => outcomes[at] = Some(RowOutcome::Failed(failure)),
        }
    }
    if !objects.is_empty() {
        let count = objects.len();
        let response = post_track(ctx, config, objects)
            .map_err(|e| RowFailure::from_http(&e, "Braze request"))?;
        // One request: a refusal of it means no row was written.
        if !(200..300).contains(&response.status) {
            let answer: TrackAnswer = response.json().unwrap_or_default();
            return Err(match request_failure(&response, &answer) {
                Outcome::Failed(f) => RowFailure {
                    retryable: f.retryable,
                    field: None,
                    message: f.message,
                },
                _ => RowFailure::from_response(&response, ""),
            });
        }
        let mut results: Vec<Option<RowOutcome>> = vec![None; count];
        let answer: TrackAnswer = response.json().unwrap_or_default();
        for error in &answer.errors {
            let in_attributes = error
                .input_array
                .as_deref()
                .is_none_or(|array| array == "attributes");
            let Some(index) = error.index.filter(|i| *i < count && in_attributes) else {
                continue;
            };
            let kind = error.kind.as_deref().unwrap_or("refused by Braze");
            results[index] = Some(
                if batch.mode == SyncMode::Update && says_user_is_missing(kind) {
                    RowOutcome::Skipped("not in Braze".into())
                } else {
                    RowOutcome::Failed(RowFailure::permanent(format!(
                        "Braze refused the row: {kind}"
                    )))
                },
            );
        }
        for (index, at) in sent.into_iter().enumerate() {
            outcomes[at] = Some(results[index].take().unwrap_or(if batch.rows[at].known {
                RowOutcome::Updated
            } else {
                RowOutcome::Inserted
            }));
        }
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| RowOutcome::Failed(RowFailure::permanent("no outcome"))))
        .collect())
}

/// A model row's attribute object.
fn row_object(
    key_field: &str,
    mode: SyncMode,
    row: &SyncRow,
) -> Result<Map<String, Json>, RowFailure> {
    let mut object = Map::new();
    object.insert(key_field.into(), Json::String(row.key.clone()));
    for attribute in &row.attributes {
        let name = attribute.name.as_str();
        if name == key_field {
            continue;
        }
        if [
            "external_id",
            "braze_id",
            "user_alias",
            "_update_existing_only",
        ]
        .contains(&name)
        {
            return Err(RowFailure::permanent(format!(
                "`{name}` identifies a user or drives the update: it cannot be written as an attribute"
            ))
            .with_field(name));
        }
        object.insert(name.into(), attribute.value.to_json());
    }
    if mode == SyncMode::Update {
        object.insert("_update_existing_only".into(), Json::Bool(true));
    }
    Ok(object)
}

#[cfg(test)]
mod tests {
    use prefsync_sdk::testing::MockHost;
    use prefsync_sdk::{Method, connector};
    use serde_json::json;

    use super::*;
    use crate::Braze;

    const KEY: &str = "braze-rest-key-0123456789";

    fn config(upsert: bool) -> Json {
        json!({
            "type_id": "braze",
            "authentication": {"api_key": KEY},
            "properties": {"instance": "EU-01"},
            "mappings": [
                {"id": "email_subscribe", "value": "consents_channels_email_enabled"},
                {"id": "subscription_group:grp-news", "value": "consents_purposes_newsletter_enabled"},
                {"id": "tier", "value": "metadata_tier"},
                {"id": "push_subscribe", "value": "consents_channels_push_enabled"}
            ],
            "upsert_mode": upsert
        })
    }

    fn record(key: &str, email: Value, newsletter: Value) -> ConsentRecord {
        ConsentRecord::new(
            "organization_user_id",
            key,
            &[
                ("organization_user_id", Value::Text(key.into())),
                ("consents_channels_email_enabled", email),
                ("consents_purposes_newsletter_enabled", newsletter),
                ("metadata_tier", Value::Text("gold".into())),
            ],
        )
    }

    fn run(host: &MockHost, config: &Json, records: &[ConsentRecord]) -> Vec<Outcome> {
        connector::deliver::<Braze>(host, &config.to_string(), records)
    }

    fn body(host: &MockHost, index: usize) -> Json {
        serde_json::from_slice(host.requests.borrow()[index].body.as_ref().unwrap()).unwrap()
    }

    const SUCCESS: &str = r#"{"message": "success", "attributes_processed": 1}"#;

    #[test]
    fn a_user_is_tracked_with_channel_state_groups_and_attributes() {
        let host = MockHost::new();
        host.respond(201, &[], SUCCESS);
        let outcomes = run(
            &host,
            &config(true),
            &[record("C-42", Value::Boolean(true), Value::Boolean(true))],
        );
        assert_eq!(outcomes, [Outcome::Delivered(DeliveredKind::Updated)]);
        let requests = host.requests.borrow().clone();
        assert_eq!(requests[0].method, Method::Post);
        assert_eq!(requests[0].url, "https://rest.fra-01.braze.eu/users/track");
        assert!(
            requests[0]
                .headers
                .contains(&("Authorization".into(), format!("Bearer {KEY}")))
        );
        // The absent push choice is not sent; upserts on: no update-only flag.
        assert_eq!(
            body(&host, 0),
            json!({"attributes": [{
                "external_id": "C-42",
                "email_subscribe": "opted_in",
                "tier": "gold",
                "subscription_groups": [{"subscription_group_id": "grp-news", "subscription_state": "subscribed"}]
            }]})
        );
        assert!(
            host.logs
                .borrow()
                .iter()
                .all(|(_, m, f)| !m.contains(KEY) && f.iter().all(|(_, v)| !v.contains(KEY)))
        );
    }

    #[test]
    fn a_withdrawal_unsubscribes_the_channel_and_the_group_and_no_choice_is_neither() {
        let host = MockHost::new();
        host.respond(201, &[], SUCCESS).respond(201, &[], SUCCESS);
        run(
            &host,
            &config(true),
            &[record("C-42", Value::Boolean(false), Value::Boolean(false))],
        );
        let sent = &body(&host, 0)["attributes"][0];
        assert_eq!(sent["email_subscribe"], "unsubscribed");
        assert_eq!(
            sent["subscription_groups"],
            json!([{"subscription_group_id": "grp-news", "subscription_state": "unsubscribed"}])
        );
        // No choice: the channel is "subscribed" (neither in nor out), the group untouched.
        run(
            &host,
            &config(true),
            &[record("C-42", Value::Null, Value::Null)],
        );
        let sent = &body(&host, 1)["attributes"][0];
        assert_eq!(sent["email_subscribe"], "subscribed");
        assert!(sent.get("subscription_groups").is_none(), "{sent}");
    }

    #[test]
    fn a_batch_is_one_request_and_a_refused_object_fails_alone() {
        let host = MockHost::new();
        host.respond(
            201,
            &[],
            r#"{"message": "success", "attributes_processed": 2,
                "errors": [{"type": "'subscription_group_id' is not valid", "input_array": "attributes", "index": 1}]}"#,
        );
        let records: Vec<ConsentRecord> = ["a", "b", "c"]
            .iter()
            .map(|k| record(k, Value::Boolean(true), Value::Boolean(true)))
            .collect();
        let outcomes = run(&host, &config(true), &records);
        assert_eq!(host.requests.borrow().len(), 1);
        assert_eq!(body(&host, 0)["attributes"].as_array().unwrap().len(), 3);
        assert_eq!(outcomes[0], Outcome::Delivered(DeliveredKind::Updated));
        assert_eq!(
            outcomes[1],
            Outcome::permanent(
                "Braze refused this user's object (HTTP 201): 'subscription_group_id' is not valid"
            )
        );
        assert_eq!(outcomes[2], Outcome::Delivered(DeliveredKind::Updated));
    }

    #[test]
    fn records_that_cannot_be_sent_keep_their_place_in_the_batch() {
        let host = MockHost::new();
        host.respond(
            201,
            &[],
            r#"{"message": "success", "errors": [{"type": "bad", "input_array": "attributes", "index": 1}]}"#,
        );
        let bad_value = record("b", Value::Number(3.0), Value::Boolean(true));
        let nothing = ConsentRecord::new(
            "organization_user_id",
            "n",
            &[("organization_user_id", Value::Text("n".into()))],
        );
        let outcomes = run(
            &host,
            &config(true),
            &[
                record("a", Value::Boolean(true), Value::Null),
                bad_value,
                nothing,
                record("d", Value::Boolean(false), Value::Null),
            ],
        );
        let sent = body(&host, 0);
        let ids: Vec<&str> = sent["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["external_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["a", "d"]);
        assert_eq!(outcomes[0], Outcome::Delivered(DeliveredKind::Updated));
        assert_eq!(
            outcomes[1],
            Outcome::permanent("mapping `email_subscribe`: 3 is not true, false or null")
        );
        assert!(matches!(&outcomes[2], Outcome::Skipped(r) if r.starts_with("nothing to send")));
        // Braze's index 1 is the second object sent: "d".
        assert!(
            matches!(&outcomes[3], Outcome::Failed(f) if !f.retryable && f.message.ends_with(": bad"))
        );
    }

    #[test]
    fn without_upsert_objects_are_update_only_and_a_missing_user_is_skipped() {
        let host = MockHost::new();
        host.respond(
            201,
            &[],
            r#"{"message": "success", "attributes_processed": 1,
                "errors": [{"type": "'external_id' does not exist and '_update_existing_only' is true", "input_array": "attributes", "index": 0}]}"#,
        );
        let outcomes = run(
            &host,
            &config(false),
            &[
                record("ghost", Value::Boolean(true), Value::Null),
                record("known", Value::Boolean(true), Value::Null),
            ],
        );
        for object in body(&host, 0)["attributes"].as_array().unwrap() {
            assert_eq!(object["_update_existing_only"], true);
        }
        assert_eq!(
            outcomes,
            [
                Outcome::Skipped("user not found in Braze (upsert_mode is off)".into()),
                Outcome::Delivered(DeliveredKind::Updated)
            ]
        );
        // With upserts on, the same text is a failure: a user was expected to be created.
        assert!(says_user_is_missing("User Not Found"));
        assert!(!says_user_is_missing("'email_subscribe' is not valid"));
    }

    #[test]
    fn email_as_identifier() {
        let host = MockHost::new();
        host.respond(201, &[], SUCCESS);
        let mut config = config(true);
        config["properties"]["identifier"] = json!("email");
        let outcomes = run(
            &host,
            &config,
            &[
                record("jane@example.com", Value::Boolean(true), Value::Null),
                record("C-42", Value::Boolean(true), Value::Null),
            ],
        );
        assert_eq!(body(&host, 0)["attributes"][0]["email"], "jane@example.com");
        assert!(body(&host, 0)["attributes"][0].get("external_id").is_none());
        assert_eq!(outcomes[0], Outcome::Delivered(DeliveredKind::Updated));
        assert!(
            matches!(&outcomes[1], Outcome::Failed(f) if !f.retryable && f.message.contains("not an email address"))
        );
    }

    #[test]
    fn failures_are_classified() {
        let one = || [record("C-42", Value::Boolean(true), Value::Null)];
        let outcome = |status: u16, headers: &[(&str, &str)], body: &str| {
            let host = MockHost::new();
            host.respond(status, headers, body);
            run(&host, &config(true), &one()).remove(0)
        };
        let Outcome::Failed(f) = outcome(401, &[], r#"{"message": "Invalid API key"}"#) else {
            panic!()
        };
        assert!(!f.retryable, "{f:?}");
        assert!(f.message.contains("check authentication.api_key"), "{f:?}");
        assert!(!f.message.contains(KEY));
        let Outcome::Failed(f) = outcome(403, &[], "") else {
            panic!()
        };
        assert!(!f.retryable && f.message.contains("users.track"), "{f:?}");
        let Outcome::Failed(f) = outcome(404, &[], "") else {
            panic!()
        };
        assert!(
            !f.retryable && f.message.contains("properties.instance"),
            "{f:?}"
        );

        // 429: wait until X-RateLimit-Reset, a Unix time in seconds.
        let reset = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 30;
        let Outcome::Failed(f) = outcome(
            429,
            &[
                ("X-RateLimit-Limit", "3000"),
                ("X-RateLimit-Remaining", "0"),
                ("X-RateLimit-Reset", &reset.to_string()),
            ],
            r#"{"message": "Rate limit exceeded"}"#,
        ) else {
            panic!()
        };
        assert!(f.retryable);
        let wait = f.retry_after_ms.unwrap();
        assert!((28_000..=30_000).contains(&wait), "{wait}");

        assert!(matches!(
            outcome(503, &[], ""),
            Outcome::Failed(Failure {
                retryable: true,
                ..
            })
        ));
        assert_eq!(
            outcome(
                400,
                &[],
                r#"{"message": "Missing attributes", "errors": []}"#
            ),
            Outcome::Failed(Failure {
                retryable: false,
                retry_after_ms: None,
                message: "HTTP 400: Missing attributes".into()
            })
        );
        let host = MockHost::new();
        host.fail(HttpError::Timeout);
        assert!(matches!(
            run(&host, &config(true), &one()).remove(0),
            Outcome::Failed(Failure {
                retryable: true,
                ..
            })
        ));
    }

    #[test]
    fn more_than_75_records_go_in_several_requests() {
        let host = MockHost::new();
        host.respond(201, &[], SUCCESS).respond(
            201,
            &[],
            r#"{"message": "success", "errors": [{"type": "bad", "input_array": "attributes", "index": 4}]}"#,
        );
        let records: Vec<ConsentRecord> = (0..80)
            .map(|i| record(&format!("u{i}"), Value::Boolean(true), Value::Null))
            .collect();
        let outcomes = run(&host, &config(true), &records);
        assert_eq!(host.requests.borrow().len(), 2);
        assert_eq!(body(&host, 0)["attributes"].as_array().unwrap().len(), 75);
        assert_eq!(body(&host, 1)["attributes"].as_array().unwrap().len(), 5);
        let failed: Vec<usize> = outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(failed, [79]);
    }

    // --- Activations --------------------------------------------------------

    use prefsync_sdk::{RowFailure, RowOutcome, SyncBatch, SyncMode, SyncRow};

    fn rows(mode: SyncMode, rows: Vec<SyncRow>) -> SyncBatch {
        SyncBatch {
            key_field: "external_id".into(),
            mode,
            rows,
        }
    }

    fn sync_with(host: &MockHost, batch: &SyncBatch) -> Result<Vec<RowOutcome>, RowFailure> {
        prefsync_sdk::activation::sync::<Braze>(host, &config(true).to_string(), batch)
    }

    #[test]
    fn model_rows_are_one_request_with_their_attributes() {
        let host = MockHost::new();
        host.respond(
            201,
            &[],
            r#"{"message": "success", "errors": [{"type": "'plan' is not valid", "input_array": "attributes", "index": 1}]}"#,
        );
        let batch = rows(
            SyncMode::Upsert,
            vec![
                SyncRow::new(
                    "C-1",
                    &[
                        ("first_name", Value::Text("Ann".into())),
                        ("age", Value::Number(41.0)),
                    ],
                    false,
                ),
                SyncRow::new("C-2", &[("plan", Value::Null)], true),
                SyncRow::new("C-3", &[("age", Value::Number(7.0))], true),
            ],
        );
        let outcomes = sync_with(&host, &batch).unwrap();
        assert_eq!(
            body(&host, 0),
            json!({"attributes": [
                {"external_id": "C-1", "first_name": "Ann", "age": 41},
                {"external_id": "C-2", "plan": null},
                {"external_id": "C-3", "age": 7}
            ]})
        );
        assert_eq!(outcomes[0], RowOutcome::Inserted);
        assert_eq!(
            outcomes[1],
            RowOutcome::Failed(RowFailure::permanent(
                "Braze refused the row: 'plan' is not valid"
            ))
        );
        assert_eq!(outcomes[2], RowOutcome::Updated);
    }

    #[test]
    fn insert_skips_known_rows_and_update_never_creates() {
        let host = MockHost::new();
        host.respond(201, &[], SUCCESS);
        let outcomes = sync_with(
            &host,
            &rows(
                SyncMode::Insert,
                vec![
                    SyncRow::new("C-1", &[("age", Value::Number(1.0))], true),
                    SyncRow::new("C-2", &[("age", Value::Number(2.0))], false),
                ],
            ),
        )
        .unwrap();
        assert_eq!(
            outcomes,
            [
                RowOutcome::Skipped("already in Braze".into()),
                RowOutcome::Inserted
            ]
        );
        assert_eq!(body(&host, 0)["attributes"].as_array().unwrap().len(), 1);

        host.respond(
            201,
            &[],
            r#"{"message": "success", "errors": [{"type": "user does not exist", "input_array": "attributes", "index": 0}]}"#,
        );
        let outcomes = sync_with(
            &host,
            &rows(
                SyncMode::Update,
                vec![
                    SyncRow::new("C-9", &[("age", Value::Number(9.0))], false),
                    SyncRow::new("C-2", &[("age", Value::Number(3.0))], true),
                ],
            ),
        )
        .unwrap();
        assert_eq!(
            outcomes,
            [
                RowOutcome::Skipped("not in Braze".into()),
                RowOutcome::Updated
            ]
        );
        for object in body(&host, 1)["attributes"].as_array().unwrap() {
            assert_eq!(object["_update_existing_only"], true);
        }
    }

    #[test]
    fn a_refused_request_refuses_the_batch_and_bad_rows_fail_alone() {
        let host = MockHost::new();
        host.respond(401, &[], r#"{"message": "Invalid API key"}"#);
        let batch = rows(
            SyncMode::Upsert,
            vec![SyncRow::new("C-1", &[("age", Value::Number(1.0))], false)],
        );
        let refused = sync_with(&host, &batch).unwrap_err();
        assert!(
            !refused.retryable && refused.message.contains("authentication.api_key"),
            "{refused:?}"
        );
        host.respond(503, &[], "");
        assert!(sync_with(&host, &batch).unwrap_err().retryable);

        let mut by_email = rows(
            SyncMode::Upsert,
            vec![SyncRow::new(
                "a@example.com",
                &[("braze_id", Value::Text("x".into()))],
                false,
            )],
        );
        by_email.key_field = "EMAIL".into();
        let outcomes = sync_with(&host, &by_email).unwrap();
        assert!(
            matches!(&outcomes[0], RowOutcome::Failed(f) if f.field.as_deref() == Some("braze_id"))
        );
        assert_eq!(
            host.requests.borrow().len(),
            2,
            "nothing sent for a row that cannot be written"
        );
        by_email.key_field = "phone".into();
        assert!(
            sync_with(&host, &by_email)
                .unwrap_err()
                .message
                .contains("`external_id` or `email`")
        );
    }

    fn check(host: &MockHost, config: &Json) -> Result<Vec<ValidationProblem>, String> {
        prefsync_sdk::connection::check::<Braze>(host, &config.to_string())
    }

    #[test]
    fn the_check_looks_up_an_unknown_user_with_the_key_and_writes_nothing() {
        let host = MockHost::new();
        host.respond_to(
            Method::Post,
            "https://rest.fra-01.braze.eu/users/export/ids",
            201,
            &[],
            r#"{"users": [], "invalid_user_ids": ["prefsync-connection-check"], "message": "success"}"#,
        );
        assert_eq!(check(&host, &config(true)), Ok(Vec::new()));
        let requests = host.requests.borrow();
        assert_eq!(requests.len(), 1);
        let request = &requests[0];
        // Braze's lookup is a POST that reads; never the write endpoint.
        assert_eq!(request.method, Method::Post);
        assert!(!request.url.contains("/users/track"));
        assert!(
            request
                .headers
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case("authorization")
                    && *v == format!("Bearer {KEY}"))
        );
        assert_eq!(
            body(&host, 0),
            json!({"external_ids": ["prefsync-connection-check"], "fields_to_export": ["external_id"]})
        );
    }

    #[test]
    fn the_check_names_a_refused_key_at_its_path_without_quoting_braze() {
        for status in [401, 403] {
            let host = MockHost::new();
            host.respond(
                status,
                &[],
                r#"{"message": "Invalid API key: braze-rest-key-0123456789"}"#,
            );
            let problems = check(&host, &config(true)).unwrap();
            assert_eq!(problems.len(), 1, "{status}");
            assert_eq!(problems[0].path, "authentication.api_key", "{status}");
            assert!(!problems[0].message.contains(KEY), "{problems:?}");
        }
    }

    #[test]
    fn the_check_names_the_wrong_instance_or_endpoint() {
        let host = MockHost::new();
        host.respond(404, &[], r#"{"message": "Not found"}"#);
        assert_eq!(
            check(&host, &config(true)).unwrap()[0].path,
            "properties.instance"
        );
        let mut endpoint = config(true);
        endpoint["properties"] = json!({"rest_endpoint": "https://rest.iad-01.braze.com"});
        let host = MockHost::new();
        host.respond(404, &[], "");
        assert_eq!(
            check(&host, &endpoint).unwrap()[0].path,
            "properties.rest_endpoint"
        );
        assert_eq!(
            host.requests.borrow()[0].url,
            "https://rest.iad-01.braze.com/users/export/ids"
        );
    }

    #[test]
    fn the_check_cannot_be_made_on_a_5xx_a_429_or_a_timeout() {
        for status in [500, 503, 429] {
            let host = MockHost::new();
            host.respond(status, &[], r#"{"message": "busy"}"#);
            assert!(check(&host, &config(true)).is_err(), "{status}");
        }
        let timeout = MockHost::new();
        timeout.fail(HttpError::Timeout);
        assert!(check(&timeout, &config(true)).is_err());
        let denied = MockHost::new();
        denied.fail(HttpError::Denied(
            "rest.fra-01.braze.eu is not allowed".into(),
        ));
        assert_eq!(check(&denied, &config(true)).unwrap()[0].path, "");
    }
}
