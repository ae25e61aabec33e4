//! The Engage REST API: the single-record upsert
//! `POST {url}/organizations/{org}/lists/{list}/data?keyfields=…` (consent
//! deliveries, and one-row activation writes) and the batch
//! `POST …/data/load?keyFields=…&data_import_option=…` (activations), whose
//! answer counts inserted, updated and failed records and lists the
//! `invalid_records`. Authenticated by `X-ApiKey: <key>:<secret>`.

use prefsync_sdk::connection::{unreachable, verdict};
use prefsync_sdk::http::{encode_component, failure_from_response};
use prefsync_sdk::mapping::map_record;
use prefsync_sdk::{
    ConsentRecord, Context, DeliveredKind, Method, Outcome, Request, Response, RowFailure,
    RowOutcome, StatusClass, SyncBatch, SyncMode, SyncRow, ValidationProblem, Value,
};

use crate::config::EngageConfig;

/// Loads of many rows may take a while on Selligent's side.
const ENGAGE_TIMEOUT_MS: u32 = 120_000;

/// How Engage takes a value in JSON: booleans as 1/0 (Selligent's opt-in
/// fields are numeric, as on the Gate API), numbers and text as they are,
/// null as null (which clears the field).
pub fn engage_value(value: &Value) -> serde_json::Value {
    match value {
        Value::Boolean(b) => serde_json::Value::from(u8::from(*b)),
        other => other.to_json(),
    }
}

fn engage_post(config: &EngageConfig, url: String, body: &serde_json::Value) -> Request {
    Request::new(Method::Post, url)
        .json(body)
        .header("X-ApiKey", config.api_key_header())
        .timeout_ms(ENGAGE_TIMEOUT_MS)
}

/// The single-record upsert's URL (`keyfields`, lower case, as documented).
fn single_url(config: &EngageConfig, key_field: &str) -> String {
    format!(
        "{}/data?keyfields={}",
        config.list_url(),
        encode_component(key_field)
    )
}

/// The batch endpoint's URL (`keyFields`, camel case, as documented).
fn load_url(config: &EngageConfig, key_field: &str, mode: SyncMode) -> String {
    format!(
        "{}/data/load?keyFields={}&data_import_option={}",
        config.list_url(),
        encode_component(key_field),
        import_option(mode)
    )
}

pub fn import_option(mode: SyncMode) -> &'static str {
    match mode {
        SyncMode::Upsert => "InsertAndUpdate",
        SyncMode::Insert => "OnlyInsert",
        SyncMode::Update => "OnlyUpdate",
    }
}

/// The answer of the single-record upsert.
#[derive(Debug, Default, serde::Deserialize)]
struct SingleAnswer {
    result_code: Option<String>,
    message: Option<String>,
}

/// The answer of `data/load`.
#[derive(Debug, Default, serde::Deserialize)]
struct LoadAnswer {
    result_code: Option<String>,
    message: Option<String>,
    number_of_inserted_records: Option<u64>,
    number_of_updated_records: Option<u64>,
    number_of_failed_records: Option<u64>,
    #[serde(default)]
    invalid_records: Vec<InvalidRecord>,
    #[serde(default)]
    errors: Vec<serde_json::Value>,
}

/// One refused row of a load. `record_index` is the row's index in the JSON
/// array sent, whose first element is the header: the first data row is 1.
#[derive(Debug, serde::Deserialize)]
struct InvalidRecord {
    record_index: i64,
    field_name: Option<String>,
    message: Option<String>,
    validation_code: Option<String>,
}

/// What one request's answer says about the record it carried.
#[derive(Debug, PartialEq)]
enum SingleVerdict {
    Written,
    /// `NotFound`: the list has no such record.
    NotFound,
    /// The record was refused (`ValidationFailed`, `Failed`, …).
    Refused {
        code: String,
        message: String,
    },
    /// The request as a whole was refused: HTTP status and detail.
    Request {
        detail: String,
    },
}

fn read_single(response: &Response) -> SingleVerdict {
    let answer: Option<SingleAnswer> = response.json().ok();
    let code = answer.as_ref().and_then(|a| a.result_code.clone());
    let message = answer
        .as_ref()
        .and_then(|a| a.message.clone())
        .unwrap_or_default();
    let success = (200..300).contains(&response.status);
    match code.as_deref() {
        _ if matches!(response.status, 401 | 403 | 404 | 405)
            || matches!(response.class(), StatusClass::Retryable { .. }) =>
        {
            SingleVerdict::Request {
                detail: request_detail(response, &message),
            }
        }
        Some("Succeeded") | None if success => SingleVerdict::Written,
        Some("NotFound") => SingleVerdict::NotFound,
        Some(code) if code != "Succeeded" => SingleVerdict::Refused {
            code: code.to_string(),
            message,
        },
        _ => SingleVerdict::Request {
            detail: request_detail(response, &message),
        },
    }
}

/// Why a whole request was refused, for operators: what the status means on
/// Engage, and its own message.
fn request_detail(response: &Response, message: &str) -> String {
    let what = match response.status {
        401 | 403 => {
            "credentials refused: check authentication.api_key and authentication.api_secret and the key's rights"
        }
        404 => "organization or list not found: check properties.organization and properties.list",
        405 => "method not allowed: check properties.url (the API base, …/Portal/Api)",
        408 | 429 | 500..=599 => "Engage is unavailable or busy",
        _ => "request refused",
    };
    let own = if message.is_empty() {
        response.text_snippet(200)
    } else {
        message.to_string()
    };
    if own.trim().is_empty() {
        what.to_string()
    } else {
        format!("{what} ({})", own.trim())
    }
}

/// The connection check: the list's details, `GET
/// {url}/organizations/{org}/lists/{list}` with the same `X-ApiKey` a write
/// carries, which writes nothing (Engage's smc-v1 `listGetList`, in the
/// spec `WPP-Public/wtd-selligent-api` the vendor facts cite). 2xx: the key
/// and the list are known; 401/403: the key and secret (or the key's
/// rights) refused, at `authentication.api_key`; 404: no such list in that
/// organization (or no such organization), at `properties.list`; 408, 429
/// or 5xx: the check could not be made; another status is the whole
/// config's ([`verdict`]).
pub fn check_connection(
    ctx: &Context<'_>,
    config: &EngageConfig,
) -> Result<Vec<ValidationProblem>, String> {
    let request = Request::get(config.list_url())
        .header("X-ApiKey", config.api_key_header())
        .header("Accept", "application/json")
        .timeout_ms(CHECK_TIMEOUT_MS);
    let response = match ctx.send(request) {
        Ok(response) => response,
        Err(error) => return unreachable(&error),
    };
    let problem = |path: &str, message: String| {
        Ok(vec![ValidationProblem {
            path: path.into(),
            message,
        }])
    };
    match response.status {
        401 | 403 => problem(
            "authentication.api_key",
            format!(
                "Selligent refused the API key and secret, or the key has no rights on this list (HTTP {})",
                response.status
            ),
        ),
        404 => problem(
            "properties.list",
            "Selligent knows no such list in this organization, or no such organization (HTTP 404)"
                .into(),
        ),
        _ => verdict(&response, "authentication.api_key"),
    }
}

const CHECK_TIMEOUT_MS: u32 = 30_000;

/// The attribute a refusal message names (the longest that occurs in it).
fn field_named_in<'a>(message: &str, fields: impl Iterator<Item = &'a str>) -> Option<String> {
    fields
        .filter(|f| !f.is_empty() && message.contains(*f))
        .max_by_key(|f| f.len())
        .map(str::to_string)
}

/// A consent record through the single-record upsert, with the
/// integration's mappings; the list's key field is the field the user's key
/// property (`organization_user_id`) is mapped to.
pub fn deliver(ctx: &Context<'_>, config: &EngageConfig, record: &ConsentRecord) -> Outcome {
    if config.mappings.is_empty() {
        return Outcome::Skipped(
            "no mappings: this Engage integration only runs activations".into(),
        );
    }
    let Some(key_field) = config
        .mappings
        .iter()
        .find(|m| m.value == record.key_name)
        .map(|m| m.id.as_str())
    else {
        return Outcome::permanent(format!(
            "no mapping of `{}` names the list's key field",
            record.key_name
        ));
    };
    let mut body: serde_json::Map<String, serde_json::Value> = map_record(&config.mappings, record)
        .into_iter()
        .map(|f| (f.field.to_string(), engage_value(f.value)))
        .collect();
    body.entry(key_field.to_string())
        .or_insert_with(|| serde_json::Value::String(record.key.clone()));
    let request = engage_post(
        config,
        single_url(config, key_field),
        &serde_json::Value::Object(body),
    );
    let response = match ctx.send(request) {
        Ok(response) => response,
        Err(e) => return e.into_outcome("Selligent Engage upsert"),
    };
    match read_single(&response) {
        // Engage does not say whether it created the record.
        SingleVerdict::Written => Outcome::Delivered(DeliveredKind::Updated),
        SingleVerdict::NotFound => {
            Outcome::permanent("Selligent Engage: record not found (NotFound)")
        }
        SingleVerdict::Refused { code, message } => {
            Outcome::permanent(format!("Selligent Engage result {code}: {message}"))
        }
        SingleVerdict::Request { detail } => failure_from_response(&response, &detail),
    }
}

/// Writes model rows (activations). See the README for the rules: one row
/// in upsert mode → the single-record upsert; otherwise `data/load`, one load
/// per set of attribute names (a row only carries the attributes it
/// changes, and a column in a load writes every row's value, so rows with
/// other attributes never share a load).
pub fn sync(
    ctx: &Context<'_>,
    config: &EngageConfig,
    batch: &SyncBatch,
) -> Result<Vec<RowOutcome>, RowFailure> {
    let mut outcomes: Vec<Option<RowOutcome>> = vec![None; batch.rows.len()];
    let mut answered = false;
    let requests = plan(batch, config.batch_size() as usize);
    for (i, rows) in requests.iter().enumerate() {
        let result = if batch.mode == SyncMode::Upsert && rows.len() == 1 {
            sync_single(ctx, config, batch, rows[0])
        } else {
            sync_load(ctx, config, batch, rows)
        };
        match result {
            Ok(written) => {
                answered = true;
                for (&row, outcome) in rows.iter().zip(written) {
                    outcomes[row] = Some(outcome);
                }
            }
            // Nothing written yet: the batch as a whole was refused.
            Err(failure) if !answered => return Err(failure),
            // Some rows are written: the rest fail with the reason, unsent.
            Err(failure) => {
                for &row in requests[i..].iter().flatten() {
                    outcomes[row] = Some(RowOutcome::Failed(failure.clone()));
                }
                break;
            }
        }
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| RowOutcome::Failed(RowFailure::permanent("not sent"))))
        .collect())
}

/// The requests of a batch, as lists of row indexes: rows grouped by their
/// set of attribute names (in order of first appearance), each group cut
/// into loads of at most `max` rows.
fn plan(batch: &SyncBatch, max: usize) -> Vec<Vec<usize>> {
    let mut groups: Vec<(Vec<&str>, Vec<usize>)> = Vec::new();
    for (i, row) in batch.rows.iter().enumerate() {
        let names = attribute_set(row, &batch.key_field);
        match groups.iter_mut().find(|(set, _)| *set == names) {
            Some((_, rows)) => rows.push(i),
            None => groups.push((names, vec![i])),
        }
    }
    groups
        .into_iter()
        .flat_map(|(_, rows)| {
            rows.chunks(max.max(1))
                .map(<[usize]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The row's attribute names, sorted, without the key field.
fn attribute_set<'a>(row: &'a SyncRow, key_field: &str) -> Vec<&'a str> {
    let mut names: Vec<&str> = row.attribute_names().filter(|n| *n != key_field).collect();
    names.sort_unstable();
    names.dedup();
    names
}

fn sync_single(
    ctx: &Context<'_>,
    config: &EngageConfig,
    batch: &SyncBatch,
    index: usize,
) -> Result<Vec<RowOutcome>, RowFailure> {
    let row = &batch.rows[index];
    let mut body = serde_json::Map::new();
    body.insert(
        batch.key_field.clone(),
        serde_json::Value::String(row.key.clone()),
    );
    for attribute in &row.attributes {
        if attribute.name != batch.key_field {
            body.insert(attribute.name.clone(), engage_value(&attribute.value));
        }
    }
    let request = engage_post(
        config,
        single_url(config, &batch.key_field),
        &serde_json::Value::Object(body),
    );
    let response = ctx
        .send(request)
        .map_err(|e| RowFailure::from_http(&e, "Selligent Engage upsert"))?;
    let outcome = match read_single(&response) {
        // The single upsert does not say whether it created the record: the
        // host's snapshot does (a row it never saw accepted is new).
        SingleVerdict::Written if row.known => RowOutcome::Updated,
        SingleVerdict::Written => RowOutcome::Inserted,
        SingleVerdict::NotFound => RowOutcome::Skipped("not in the list".into()),
        SingleVerdict::Refused { code, message } => {
            let field = field_named_in(
                &message,
                row.attribute_names()
                    .chain(std::iter::once(batch.key_field.as_str())),
            );
            RowOutcome::Failed(RowFailure {
                retryable: false,
                field,
                message: format!("Selligent Engage result {code}: {message}"),
            })
        }
        SingleVerdict::Request { detail } => {
            return Err(RowFailure::from_response(&response, &detail));
        }
    };
    Ok(vec![outcome])
}

fn sync_load(
    ctx: &Context<'_>,
    config: &EngageConfig,
    batch: &SyncBatch,
    indexes: &[usize],
) -> Result<Vec<RowOutcome>, RowFailure> {
    let rows: Vec<&SyncRow> = indexes.iter().map(|&i| &batch.rows[i]).collect();
    // The first row's order of attributes; every row of a load has the same set.
    let columns: Vec<&str> = {
        let mut seen = Vec::new();
        for name in rows[0].attribute_names() {
            if name != batch.key_field && !seen.contains(&name) {
                seen.push(name);
            }
        }
        seen
    };
    let mut body = Vec::with_capacity(rows.len() + 1);
    body.push(serde_json::Value::from(
        std::iter::once(batch.key_field.as_str())
            .chain(columns.iter().copied())
            .collect::<Vec<_>>(),
    ));
    for row in &rows {
        let mut values = vec![serde_json::Value::String(row.key.clone())];
        values.extend(columns.iter().map(|c| {
            row.attribute(c)
                .map(engage_value)
                .unwrap_or(serde_json::Value::Null)
        }));
        body.push(serde_json::Value::Array(values));
    }
    let request = engage_post(
        config,
        load_url(config, &batch.key_field, batch.mode),
        &serde_json::Value::Array(body),
    );
    let response = ctx
        .send(request)
        .map_err(|e| RowFailure::from_http(&e, "Selligent Engage data/load"))?;
    let answer: Option<LoadAnswer> = response.json().ok();
    let success = (200..300).contains(&response.status);
    let readable = matches!(response.status, 400 | 422)
        && answer.as_ref().is_some_and(|a| {
            !a.invalid_records.is_empty() || a.number_of_failed_records.unwrap_or(0) > 0
        });
    if !(success || readable) {
        let message = answer
            .as_ref()
            .map(|a| {
                let mut parts: Vec<String> = a.message.iter().cloned().collect();
                parts.extend(a.errors.iter().map(|e| {
                    e.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| e.to_string())
                }));
                parts.join("; ")
            })
            .unwrap_or_default();
        return Err(RowFailure::from_response(
            &response,
            &request_detail(&response, &message),
        ));
    }
    let answer = answer.unwrap_or_default();
    Ok(attribute(ctx, batch.mode, &rows, &answer))
}

/// Turns a load's answer into one outcome per row of the load.
///
/// `invalid_records` name their rows (`record_index` 1 = the first data
/// row): those failed, permanently, with their field; a `NotFound`-like
/// validation code is a skip instead. The others were accepted, and the
/// counts say how many were inserted or updated, not which: when the counts
/// settle it (all one way), they decide; otherwise the row's `known` flag
/// does (the host's snapshot: a row the destination accepted before exists
/// there). A mismatch is logged.
fn attribute(
    ctx: &Context<'_>,
    mode: SyncMode,
    rows: &[&SyncRow],
    answer: &LoadAnswer,
) -> Vec<RowOutcome> {
    let mut outcomes: Vec<Option<RowOutcome>> = vec![None; rows.len()];
    for invalid in &answer.invalid_records {
        let slot = usize::try_from(invalid.record_index)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .filter(|&i| i < rows.len());
        let Some(slot) = slot else {
            ctx.warn(
                "Engage reported an invalid record outside the load",
                &[("record_index", &invalid.record_index.to_string())],
            );
            continue;
        };
        let code = invalid.validation_code.clone().unwrap_or_default();
        if code.to_ascii_lowercase().contains("notfound") {
            outcomes[slot] = Some(RowOutcome::Skipped("not in the list".into()));
            continue;
        }
        let message = invalid.message.clone().unwrap_or_default();
        let text = match (&invalid.field_name, code.is_empty()) {
            (Some(field), false) => format!("{field}: {message} ({code})"),
            (Some(field), true) => format!("{field}: {message}"),
            (None, false) => format!("{message} ({code})"),
            (None, true) => message,
        };
        match &mut outcomes[slot] {
            // A row refused on several fields: every reason, the first field.
            Some(RowOutcome::Failed(failure)) => {
                failure.message.push_str("; ");
                failure.message.push_str(&text);
            }
            other => {
                *other = Some(RowOutcome::Failed(RowFailure {
                    retryable: false,
                    field: invalid.field_name.clone(),
                    message: format!("Selligent Engage refused the row: {text}"),
                }))
            }
        }
    }
    let accepted: Vec<usize> = (0..rows.len()).filter(|&i| outcomes[i].is_none()).collect();
    let total = accepted.len() as u64;
    let inserted = answer.number_of_inserted_records;
    let updated = answer.number_of_updated_records;
    // (outcome for a new row, outcome for a known row, how many of each).
    let not_in_list = || RowOutcome::Skipped("not in the list".into());
    let already = || RowOutcome::Skipped("already in the list".into());
    let (for_new, for_known, counts): (RowOutcome, RowOutcome, Option<(u64, u64)>) = match mode {
        SyncMode::Upsert => (
            RowOutcome::Inserted,
            RowOutcome::Updated,
            inserted.zip(updated),
        ),
        SyncMode::Insert => (
            RowOutcome::Inserted,
            already(),
            inserted.map(|n| (n, total.saturating_sub(n))),
        ),
        SyncMode::Update => (
            not_in_list(),
            RowOutcome::Updated,
            updated.map(|n| (total.saturating_sub(n), n)),
        ),
    };
    let new = accepted.iter().filter(|&&i| !rows[i].known).count() as u64;
    // Counts that add up and go all one way settle every row.
    let settled = match counts {
        Some((a, b)) if a + b == total && b == 0 => Some(for_new.clone()),
        Some((a, b)) if a + b == total && a == 0 => Some(for_known.clone()),
        _ => None,
    };
    if settled.is_none() && total > 0 && counts != Some((new, total - new)) {
        ctx.warn(
            "Engage's counts do not match the rows' known flags; outcomes follow the flags",
            &[
                ("result_code", answer.result_code.as_deref().unwrap_or("")),
                ("inserted", &format!("{inserted:?}")),
                ("updated", &format!("{updated:?}")),
                ("failed", &format!("{:?}", answer.number_of_failed_records)),
                ("accepted_rows", &total.to_string()),
                ("new_rows", &new.to_string()),
            ],
        );
    }
    for i in accepted {
        outcomes[i] = Some(match &settled {
            Some(all) => all.clone(),
            None if rows[i].known => for_known.clone(),
            None => for_new.clone(),
        });
    }
    outcomes
        .into_iter()
        .map(|o| o.expect("every row has an outcome"))
        .collect()
}
#[cfg(test)]
mod tests {
    use prefsync_sdk::testing::MockHost;
    use prefsync_sdk::{HttpError, activation, connector};
    use prefsync_sdk::{Method as M, SyncRow};
    use serde_json::json;

    use super::super::test_fixtures::{gate_config, record};
    use super::*;
    use crate::Selligent;

    const SECRET: &str = "engage-secret-0123";

    fn engage_config(mappings: serde_json::Value) -> String {
        json!({
            "type_id": "selligent",
            "authentication": {"api_key": "key-1", "api_secret": SECRET},
            "properties": {"api": "engage", "url": "https://acme.slgnt.eu/Portal/Api",
                           "organization": "ACME", "list": "USERS", "batch_size": 3},
            "mappings": mappings
        })
        .to_string()
    }

    fn batch(mode: SyncMode, rows: Vec<SyncRow>) -> SyncBatch {
        SyncBatch {
            key_field: "MAIL".into(),
            mode,
            rows,
        }
    }

    fn sync_with(host: &MockHost, batch: &SyncBatch) -> Result<Vec<RowOutcome>, RowFailure> {
        activation::sync::<Selligent>(host, &engage_config(json!([])), batch)
    }

    fn body(request: &Request) -> serde_json::Value {
        serde_json::from_slice(request.body.as_ref().unwrap()).unwrap()
    }

    fn load_answer(inserted: u64, updated: u64, invalid: serde_json::Value) -> String {
        let failed = invalid.as_array().map_or(0, Vec::len);
        json!({
            "result_code": if failed == 0 { "Succeeded" } else { "ValidationFailed" },
            "number_of_inserted_records": inserted,
            "number_of_updated_records": updated,
            "number_of_failed_records": failed,
            "invalid_records": invalid,
            "errors": []
        })
        .to_string()
    }

    #[test]
    fn engage_deliveries_upsert_one_record_with_the_mappings() {
        let host = MockHost::new();
        host.respond(200, &[], r#"{"result_code":"Succeeded","message":""}"#);
        let config = engage_config(json!([
            {"id": "MAIL", "value": "organization_user_id"},
            {"id": "OPTIN_NEWS", "value": "consents_purposes_newsletter_enabled"},
            {"id": "BIRTH", "value": "metadata_birthdate"}
        ]));
        let outcome = connector::deliver::<Selligent>(&host, &config, &[record()]).remove(0);
        assert_eq!(outcome, Outcome::Delivered(DeliveredKind::Updated));
        let request = host.requests.borrow()[0].clone();
        assert_eq!(request.method, M::Post);
        assert_eq!(
            request.url,
            "https://acme.slgnt.eu/Portal/Api/organizations/ACME/lists/USERS/data?keyfields=MAIL"
        );
        assert!(
            request
                .headers
                .contains(&("X-ApiKey".into(), format!("key-1:{SECRET}")))
        );
        assert_eq!(
            body(&request),
            json!({"MAIL": "ann@example.com", "OPTIN_NEWS": 1, "BIRTH": "1990-05-17"})
        );

        // Refusals: the record's own (permanent), and the request's (by status).
        host.respond(
            400,
            &[],
            r#"{"result_code":"ValidationFailed","message":"BIRTH: not a date"}"#,
        );
        let Outcome::Failed(f) =
            connector::deliver::<Selligent>(&host, &config, &[record()]).remove(0)
        else {
            panic!()
        };
        assert!(!f.retryable);
        assert_eq!(
            f.message,
            "Selligent Engage result ValidationFailed: BIRTH: not a date"
        );
        host.respond(503, &[("Retry-After", "7")], "");
        let Outcome::Failed(f) =
            connector::deliver::<Selligent>(&host, &config, &[record()]).remove(0)
        else {
            panic!()
        };
        assert!(f.retryable);
        assert_eq!(f.retry_after_ms, Some(7000));
        host.respond(401, &[], "");
        let Outcome::Failed(f) =
            connector::deliver::<Selligent>(&host, &config, &[record()]).remove(0)
        else {
            panic!()
        };
        assert!(
            !f.retryable && f.message.contains("credentials refused"),
            "{f:?}"
        );
        assert!(!f.message.contains(SECRET));

        // Without mappings (activations only), nothing is sent.
        let before = host.requests.borrow().len();
        let outcome =
            connector::deliver::<Selligent>(&host, &engage_config(json!([])), &[record()])
                .remove(0);
        assert!(matches!(outcome, Outcome::Skipped(_)), "{outcome:?}");
        assert_eq!(host.requests.borrow().len(), before);
    }

    #[test]
    fn one_upsert_row_takes_the_single_record_endpoint() {
        let host = MockHost::new();
        host.respond(200, &[], r#"{"result_code":"Succeeded"}"#)
            .respond(200, &[], r#"{"result_code":"Succeeded"}"#);
        let new = SyncRow::new(
            "ann@example.com",
            &[
                ("FIRSTNAME", Value::Text("Ann".into())),
                ("OPTIN", Value::Boolean(true)),
            ],
            false,
        );
        assert_eq!(
            sync_with(&host, &batch(SyncMode::Upsert, vec![new])),
            Ok(vec![RowOutcome::Inserted])
        );
        let known = SyncRow::new("bob@example.com", &[("AGE", Value::Number(41.0))], true);
        assert_eq!(
            sync_with(&host, &batch(SyncMode::Upsert, vec![known])),
            Ok(vec![RowOutcome::Updated])
        );
        let requests = host.requests.borrow();
        assert!(
            requests[0]
                .url
                .ends_with("/lists/USERS/data?keyfields=MAIL")
        );
        assert_eq!(
            body(&requests[0]),
            json!({"MAIL": "ann@example.com", "FIRSTNAME": "Ann", "OPTIN": 1})
        );
        assert_eq!(
            body(&requests[1]),
            json!({"MAIL": "bob@example.com", "AGE": 41})
        );
        drop(requests);

        host.respond(
            400,
            &[],
            r#"{"result_code":"ValidationFailed","message":"Value 'x' is not valid for field AGE"}"#,
        );
        let bad = SyncRow::new("bob@example.com", &[("AGE", Value::Text("x".into()))], true);
        assert_eq!(
            sync_with(&host, &batch(SyncMode::Upsert, vec![bad])),
            Ok(vec![RowOutcome::Failed(RowFailure {
                retryable: false,
                field: Some("AGE".into()),
                message:
                    "Selligent Engage result ValidationFailed: Value 'x' is not valid for field AGE"
                        .into()
            })])
        );
    }

    #[test]
    fn rows_are_loaded_in_groups_of_the_same_attributes() {
        let host = MockHost::new();
        // Group 1: two new rows with every attribute; group 2: a known row
        // with one changed attribute (a load of one in upsert mode is a
        // single upsert); group 3: known rows with AGE, cut by batch_size 3.
        host.respond(200, &[], &load_answer(2, 0, json!([])))
            .respond(200, &[], r#"{"result_code":"Succeeded"}"#)
            .respond(200, &[], &load_answer(0, 3, json!([])))
            .respond(200, &[], r#"{"result_code":"Succeeded"}"#);
        let full = |key: &str| {
            SyncRow::new(
                key,
                &[
                    ("FIRSTNAME", Value::Text(key.into())),
                    ("AGE", Value::Number(30.0)),
                ],
                false,
            )
        };
        let age = |key: &str| SyncRow::new(key, &[("AGE", Value::Number(31.0))], true);
        let rows = vec![
            full("a@x.test"),
            SyncRow::new("b@x.test", &[("FIRSTNAME", Value::Null)], true),
            age("c@x.test"),
            full("d@x.test"),
            age("e@x.test"),
            age("f@x.test"),
            age("g@x.test"),
        ];
        let outcomes = sync_with(&host, &batch(SyncMode::Upsert, rows)).unwrap();
        use RowOutcome::{Inserted as I, Updated as U};
        assert_eq!(outcomes, [I, U, U, I, U, U, U]);
        let requests = host.requests.borrow();
        assert_eq!(requests.len(), 4);
        assert_eq!(
            requests[0].url,
            "https://acme.slgnt.eu/Portal/Api/organizations/ACME/lists/USERS/data/load?keyFields=MAIL&data_import_option=InsertAndUpdate"
        );
        assert_eq!(
            body(&requests[0]),
            json!([
                ["MAIL", "FIRSTNAME", "AGE"],
                ["a@x.test", "a@x.test", 30],
                ["d@x.test", "d@x.test", 30]
            ])
        );
        assert_eq!(
            body(&requests[1]),
            json!({"MAIL": "b@x.test", "FIRSTNAME": null})
        );
        assert_eq!(
            body(&requests[2]),
            json!([
                ["MAIL", "AGE"],
                ["c@x.test", 31],
                ["e@x.test", 31],
                ["f@x.test", 31]
            ])
        );
        // The last of the AGE rows, alone: a single upsert too.
        assert_eq!(body(&requests[3]), json!({"MAIL": "g@x.test", "AGE": 31}));
    }

    #[test]
    fn invalid_records_fail_their_rows_with_the_field() {
        let host = MockHost::new();
        host.respond(
            200,
            &[],
            &load_answer(
                1,
                0,
                json!([
                    {"record_index": 2, "field_name": "AGE", "message": "'old' is not a number", "validation_code": "InvalidNumeric"},
                    {"record_index": 2, "field_name": "BIRTH", "message": "not a date", "validation_code": "InvalidDate"},
                    {"record_index": 3, "field_name": "MAIL", "message": "not an email", "validation_code": "InvalidEmail"},
                    {"record_index": 9, "field_name": "AGE", "message": "?", "validation_code": "X"}
                ]),
            ),
        );
        let row = |key: &str, age: Value| {
            SyncRow::new(
                key,
                &[("AGE", age), ("BIRTH", Value::Text("2000-01-01".into()))],
                false,
            )
        };
        let outcomes = sync_with(
            &host,
            &batch(
                SyncMode::Insert,
                vec![
                    row("a@x.test", Value::Number(3.0)),
                    row("b@x.test", Value::Text("old".into())),
                    row("not-an-email", Value::Number(3.0)),
                ],
            ),
        )
        .unwrap();
        assert_eq!(outcomes[0], RowOutcome::Inserted);
        assert_eq!(
            outcomes[1],
            RowOutcome::Failed(RowFailure {
                retryable: false,
                field: Some("AGE".into()),
                message: "Selligent Engage refused the row: AGE: 'old' is not a number (InvalidNumeric); BIRTH: not a date (InvalidDate)".into()
            })
        );
        let RowOutcome::Failed(f) = &outcomes[2] else {
            panic!()
        };
        assert_eq!(f.field.as_deref(), Some("MAIL"));
        assert!(
            host.requests.borrow()[0]
                .url
                .ends_with("data_import_option=OnlyInsert")
        );
        assert!(
            host.logs
                .borrow()
                .iter()
                .any(|l| l.1.contains("outside the load"))
        );

        // A 400 that carries the load's answer is read the same way.
        host.respond(
            400,
            &[],
            &load_answer(0, 0, json!([{"record_index": 1, "field_name": "AGE", "message": "bad", "validation_code": "InvalidNumeric"}])),
        );
        assert_eq!(
            sync_with(
                &host,
                &batch(
                    SyncMode::Update,
                    vec![row("a@x.test", Value::Null), row("b@x.test", Value::Null)]
                )
            )
            .unwrap()[0],
            RowOutcome::Failed(RowFailure {
                retryable: false,
                field: Some("AGE".into()),
                message: "Selligent Engage refused the row: AGE: bad (InvalidNumeric)".into()
            })
        );
    }

    #[test]
    fn counts_tell_skips_in_insert_and_update_modes() {
        let rows = || {
            vec![
                SyncRow::new("a@x.test", &[("AGE", Value::Number(1.0))], true),
                SyncRow::new("b@x.test", &[("AGE", Value::Number(2.0))], false),
            ]
        };
        let run = |mode, answer: String| {
            let host = MockHost::new();
            host.respond(200, &[], &answer);
            sync_with(&host, &batch(mode, rows())).unwrap()
        };
        let not_in_list = RowOutcome::Skipped("not in the list".into());
        let already = RowOutcome::Skipped("already in the list".into());
        use RowOutcome::{Inserted as I, Updated as U};
        // Update: the new row is missing from the list.
        assert_eq!(
            run(SyncMode::Update, load_answer(0, 1, json!([]))),
            [U, not_in_list.clone()]
        );
        // …unless both were there, or neither.
        assert_eq!(run(SyncMode::Update, load_answer(0, 2, json!([]))), [U, U]);
        assert_eq!(
            run(SyncMode::Update, load_answer(0, 0, json!([]))),
            [not_in_list.clone(), not_in_list.clone()]
        );
        // Insert: the known row is left alone.
        assert_eq!(
            run(SyncMode::Insert, load_answer(1, 0, json!([]))),
            [already.clone(), I]
        );
        assert_eq!(
            run(SyncMode::Insert, load_answer(0, 0, json!([]))),
            [already.clone(), already]
        );
        assert_eq!(run(SyncMode::Insert, load_answer(2, 0, json!([]))), [I, I]);
        // Upsert: counts all one way settle it; otherwise the known flags.
        assert_eq!(run(SyncMode::Upsert, load_answer(2, 0, json!([]))), [I, I]);
        assert_eq!(run(SyncMode::Upsert, load_answer(0, 2, json!([]))), [U, U]);
        assert_eq!(run(SyncMode::Upsert, load_answer(1, 1, json!([]))), [U, I]);
        // A NotFound validation code is a skip.
        assert_eq!(
            run(
                SyncMode::Update,
                load_answer(
                    0,
                    1,
                    json!([{"record_index": 2, "field_name": "MAIL", "message": "no such record", "validation_code": "RecordNotFound"}])
                )
            ),
            [U, not_in_list]
        );
    }

    #[test]
    fn whole_batch_failures_are_errors_until_rows_are_written() {
        let rows = vec![
            SyncRow::new("a@x.test", &[("AGE", Value::Number(1.0))], false),
            SyncRow::new("b@x.test", &[("AGE", Value::Number(2.0))], false),
            SyncRow::new("c@x.test", &[("NAME", Value::Text("C".into()))], false),
            SyncRow::new("d@x.test", &[("NAME", Value::Text("D".into()))], false),
        ];
        let first = |status: u16, headers: &[(&str, &str)], body: &str| {
            let host = MockHost::new();
            host.respond(status, headers, body);
            let err = sync_with(&host, &batch(SyncMode::Upsert, rows.clone())).unwrap_err();
            assert!(!err.message.contains(SECRET), "{err:?}");
            assert_eq!(host.requests.borrow().len(), 1, "stops at once");
            err
        };
        for status in [401, 403] {
            let err = first(status, &[], "");
            assert!(!err.retryable);
            assert!(
                err.message
                    .starts_with(&format!("HTTP {status}: credentials refused")),
                "{err:?}"
            );
        }
        let err = first(
            404,
            &[],
            r#"{"result_code":"NotFound","message":"List USERS not found"}"#,
        );
        assert!(!err.retryable);
        assert!(
            err.message.contains("organization or list not found")
                && err.message.ends_with("(List USERS not found)"),
            "{err:?}"
        );
        for status in [408, 429, 500, 503] {
            assert!(first(status, &[], "").retryable, "{status}");
        }
        let err = first(
            400,
            &[],
            r#"{"result_code":"Failed","errors":["keyFields MAIL is not a field of the list"]}"#,
        );
        assert!(!err.retryable);
        assert!(
            err.message.contains("keyFields MAIL is not a field"),
            "{err:?}"
        );
        let host = MockHost::new();
        host.fail(HttpError::Timeout);
        assert!(
            sync_with(&host, &batch(SyncMode::Upsert, rows.clone()))
                .unwrap_err()
                .retryable
        );

        // After a first load is written, a failure lands on the rows left.
        let host = MockHost::new();
        host.respond(200, &[], &load_answer(2, 0, json!([])))
            .respond(503, &[], "");
        let outcomes = sync_with(&host, &batch(SyncMode::Upsert, rows.clone())).unwrap();
        assert_eq!(outcomes[..2], [RowOutcome::Inserted, RowOutcome::Inserted]);
        for outcome in &outcomes[2..] {
            assert!(
                matches!(outcome, RowOutcome::Failed(f) if f.retryable),
                "{outcome:?}"
            );
        }

        // A Gate config cannot run activations.
        let gate = activation::sync::<Selligent>(
            &MockHost::new(),
            &gate_config(),
            &batch(SyncMode::Upsert, rows),
        )
        .unwrap_err();
        assert!(
            !gate.retryable && gate.message.contains("Engage"),
            "{gate:?}"
        );
        assert_eq!(activation::max_rows::<Selligent>(&gate_config()), 1);
        assert_eq!(
            activation::max_rows::<Selligent>(&engage_config(json!([]))),
            3
        );
    }

    // -- connection check --

    const LIST_URL: &str = "https://acme.slgnt.eu/Portal/Api/organizations/ACME/lists/USERS";

    fn check(host: &MockHost) -> Result<Vec<ValidationProblem>, String> {
        prefsync_sdk::connection::check::<Selligent>(host, &engage_config(json!([])))
    }

    #[test]
    fn connection_check_reads_the_list_with_the_api_key() {
        let host = MockHost::new();
        host.respond_to(
            M::Get,
            LIST_URL,
            200,
            &[],
            r#"{"api_name": "USERS", "name": "Users", "type": "UserList"}"#,
        );
        assert_eq!(check(&host), Ok(Vec::new()));
        let requests = host.requests.borrow().clone();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].method, M::Get);
        assert!(requests[0].body.is_none());
        assert!(
            requests[0]
                .headers
                .contains(&("X-ApiKey".into(), format!("key-1:{SECRET}"))),
            "{:?}",
            requests[0].headers
        );
    }

    #[test]
    fn connection_check_refusals_are_at_the_key_or_the_list() {
        for status in [401, 403] {
            let host = MockHost::new();
            host.respond(
                status,
                &[],
                &format!(
                    r#"{{"result_code": "Unauthorized", "message": "key-1:{SECRET} refused"}}"#
                ),
            );
            let problems = check(&host).unwrap();
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!(problems[0].path, "authentication.api_key");
            assert!(!problems[0].message.contains(SECRET));
        }
        let host = MockHost::new();
        host.respond(
            404,
            &[],
            r#"{"result_code": "NotFound", "message": "List USERS not found in organization ACME"}"#,
        );
        assert_eq!(check(&host).unwrap()[0].path, "properties.list");
        // Another 4xx is the whole config's.
        host.respond(405, &[], "");
        assert_eq!(check(&host).unwrap()[0].path, "");
    }

    #[test]
    fn connection_check_cannot_be_made_on_5xx_429_or_timeout() {
        let host = MockHost::new();
        host.respond(500, &[], r#"{"result_code": "Failed"}"#);
        assert!(check(&host).is_err());
        host.respond(429, &[("Retry-After", "1")], "");
        assert!(check(&host).is_err());
        host.fail(HttpError::Timeout);
        assert!(check(&host).is_err());
    }
}
