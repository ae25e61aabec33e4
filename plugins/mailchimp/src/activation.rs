//! Activations: a user model's rows as audience members' merge fields.
//!
//! The row key is the email (`batch.key_field` `EMAIL` or `email_address`);
//! attributes are merge field tags, written as they come (the host already
//! named them as Mailchimp does). A model row carries no consent, so a
//! member an activation creates is `transactional` (known to the audience,
//! not opted in to marketing) and an existing member's status is never
//! touched.
//!
//! - Insert: the list batch with `update_existing: false`: a new member is
//!   inserted; one already there (`ERROR_CONTACT_EXISTS`) is skipped.
//! - Upsert: new rows (`known: false`) as in insert mode, those found to
//!   exist, and known rows, by `PATCH` of their merge fields (a known row
//!   whose member was deleted since is created with `PUT`).
//! - Update: `PATCH` of each row; 404 → skipped.

use prefsync_sdk::http::encode_component;
use prefsync_sdk::{
    Context, HttpError, Method, Response, RowFailure, RowOutcome, StatusClass, SyncBatch, SyncMode,
    SyncRow, Value,
};
use serde_json::{Map, Value as Json, json};

use crate::api::{self, Status, subscriber_hash};
use crate::config::MailchimpConfig;

/// Rows per `sync` call: one list batch.
pub const MAX_ROWS: u32 = api::MAX_BATCH_MEMBERS as u32;
/// The key fields a batch may match on: both name the member's email.
const KEY_FIELDS: [&str; 2] = ["EMAIL", "email_address"];
/// The batch's refusal of a member that already exists.
const CONTACT_EXISTS: &str = "ERROR_CONTACT_EXISTS";

/// What one request came to.
enum Answer {
    /// The row's own fate.
    Row(RowOutcome),
    /// Refused as a whole (credentials, throttling, outage): every row
    /// would get the same answer.
    Wholesale(RowFailure),
}

pub fn sync(
    ctx: &Context<'_>,
    config: &MailchimpConfig,
    batch: &SyncBatch,
) -> Result<Vec<RowOutcome>, RowFailure> {
    if !KEY_FIELDS
        .iter()
        .any(|k| k.eq_ignore_ascii_case(&batch.key_field))
    {
        return Err(RowFailure::permanent(format!(
            "Mailchimp matches members on their email (`EMAIL`), not `{}`",
            batch.key_field
        )));
    }
    let base = config
        .base_url()
        .map_err(|e| RowFailure::permanent(format!("authentication.api_key: {e}")))?;
    let list_url = format!(
        "{base}/lists/{}",
        encode_component(&config.properties.list_id)
    );
    let mut outcomes: Vec<Option<RowOutcome>> = vec![None; batch.rows.len()];
    let mut written = false;

    // Rows to insert (never updating a member): through the list batch.
    let inserts: Vec<usize> = (0..batch.rows.len())
        .filter(|&i| match batch.mode {
            SyncMode::Insert => true,
            SyncMode::Upsert => !batch.rows[i].known,
            SyncMode::Update => false,
        })
        .collect();
    let mut patches: Vec<usize> = (0..batch.rows.len())
        .filter(|i| !inserts.contains(i))
        .collect();
    if !inserts.is_empty() {
        let members: Vec<Json> = inserts
            .iter()
            .map(|&i| {
                let mut member = Map::new();
                member.insert("email_address".into(), json!(batch.rows[i].key));
                member.insert("status".into(), json!(Status::Transactional.as_str()));
                member.insert("merge_fields".into(), merge_fields(&batch.rows[i]));
                Json::Object(member)
            })
            .collect();
        let body = json!({"members": members, "update_existing": false});
        let answer = match api::send_list_batch(ctx, config, &list_url, &body) {
            Ok(Ok(answer)) => answer,
            // Nothing was written yet: the batch as a whole is refused.
            Ok(Err(response)) => return Err(row_failure(&response)),
            Err(error) => return Err(RowFailure::from_http(&error, "Mailchimp list batch")),
        };
        let fate = |email: &str| {
            let email = email.to_lowercase();
            if answer
                .new_members
                .iter()
                .any(|m| m.email_address.to_lowercase() == email)
            {
                return Some(Ok(()));
            }
            answer
                .errors
                .iter()
                .find(|e| e.email_address.as_deref().map(str::to_lowercase) == Some(email.clone()))
                .map(Err)
        };
        for &i in &inserts {
            let row = &batch.rows[i];
            outcomes[i] = match fate(&row.key) {
                Some(Ok(())) => {
                    written = true;
                    Some(RowOutcome::Inserted)
                }
                Some(Err(error)) if error.error_code.as_deref() == Some(CONTACT_EXISTS) => {
                    if batch.mode == SyncMode::Insert {
                        Some(RowOutcome::Skipped("already in the audience".into()))
                    } else {
                        patches.push(i);
                        None
                    }
                }
                Some(Err(error)) => {
                    let message = error.error.clone().unwrap_or_else(|| "refused".into());
                    Some(RowOutcome::Failed(blame(
                        RowFailure::permanent(format!("Mailchimp refused the member: {message}")),
                        row,
                        &message,
                    )))
                }
                None => Some(RowOutcome::Failed(RowFailure::retryable(
                    "Mailchimp's list batch answer did not mention the member",
                ))),
            };
        }
    }

    patches.sort_unstable();
    for (n, &i) in patches.iter().enumerate() {
        let row = &batch.rows[i];
        let ctx = ctx.for_record(&row.key);
        match patch_row(&ctx, config, &list_url, batch.mode, row) {
            Answer::Row(outcome) => {
                written |= matches!(outcome, RowOutcome::Inserted | RowOutcome::Updated);
                outcomes[i] = Some(outcome);
            }
            Answer::Wholesale(failure) if !written => return Err(failure),
            // The rows left would get the same answer: not sent.
            Answer::Wholesale(failure) => {
                for &rest in &patches[n..] {
                    outcomes[rest] = Some(RowOutcome::Failed(failure.clone()));
                }
                break;
            }
        }
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| RowOutcome::Failed(RowFailure::permanent("no outcome"))))
        .collect())
}

/// The row's attributes as merge fields; a value that became null is
/// cleared (`""`), as Mailchimp empties a merge field.
fn merge_fields(row: &SyncRow) -> Json {
    row.attributes
        .iter()
        .filter(|p| !KEY_FIELDS.iter().any(|k| k.eq_ignore_ascii_case(&p.name)))
        .map(|p| {
            let value = match &p.value {
                Value::Null => json!(""),
                Value::Boolean(b) => json!(b.to_string()),
                other => other.to_json(),
            };
            (p.name.clone(), value)
        })
        .collect::<Map<String, Json>>()
        .into()
}

/// `PATCH` of one member's merge fields; in upsert mode a member that is
/// gone is created with `PUT` (`transactional`).
fn patch_row(
    ctx: &Context<'_>,
    config: &MailchimpConfig,
    list_url: &str,
    mode: SyncMode,
    row: &SyncRow,
) -> Answer {
    let url = format!("{list_url}/members/{}", subscriber_hash(&row.key));
    let body = json!({"merge_fields": merge_fields(row)});
    let response = match api::send_member(ctx, config, Method::Patch, &url, &body) {
        Ok(r) => r,
        Err(e) => return transport(&e),
    };
    match response.status {
        200..=299 => Answer::Row(RowOutcome::Updated),
        404 if mode == SyncMode::Update => {
            Answer::Row(RowOutcome::Skipped("not in the audience".into()))
        }
        404 => {
            let mut body = body;
            body["email_address"] = json!(row.key);
            body["status_if_new"] = json!(Status::Transactional.as_str());
            match api::send_member(ctx, config, Method::Put, &url, &body) {
                Ok(r) if (200..300).contains(&r.status) => Answer::Row(RowOutcome::Inserted),
                Ok(r) => classify(&r, row),
                Err(e) => transport(&e),
            }
        }
        _ => classify(&response, row),
    }
}

fn transport(error: &HttpError) -> Answer {
    Answer::Wholesale(RowFailure::from_http(error, "Mailchimp member write"))
}

/// A refusal: credentials, throttling and outages concern every row; any
/// other 4xx is the row's own, blamed on the merge field Mailchimp names.
fn classify(response: &Response, row: &SyncRow) -> Answer {
    let failure = row_failure(response);
    if matches!(response.status, 401 | 403)
        || matches!(response.class(), StatusClass::Retryable { .. })
    {
        Answer::Wholesale(failure)
    } else {
        let detail = failure.message.clone();
        Answer::Row(RowOutcome::Failed(blame(failure, row, &detail)))
    }
}

fn row_failure(response: &Response) -> RowFailure {
    RowFailure::from_response(response, &api::error_detail(response))
}

/// Blames the row's merge field that `message` names, if one does.
fn blame(failure: RowFailure, row: &SyncRow, message: &str) -> RowFailure {
    match row.attribute_names().find(|name| {
        message.contains(&format!("`{name}`")) || message.contains(&format!(" {name} "))
    }) {
        Some(name) => failure.with_field(name),
        None => failure,
    }
}

#[cfg(test)]
mod tests {
    use prefsync_sdk::activation::sync;
    use prefsync_sdk::testing::MockHost;

    use super::*;
    use crate::Mailchimp;

    fn config() -> String {
        json!({
            "type_id": "mailchimp",
            "authentication": {"api_key": "0123456789abcdef0123456789abcdef-us14"},
            "properties": {"list_id": "a1b2c3d4e5"},
            "mappings": [{"id": "status", "value": "consents_channels_email_enabled"}]
        })
        .to_string()
    }

    fn batch(mode: SyncMode, rows: Vec<SyncRow>) -> SyncBatch {
        SyncBatch {
            key_field: "EMAIL".into(),
            mode,
            rows,
        }
    }

    fn row(email: &str, known: bool) -> SyncRow {
        SyncRow::new(
            email,
            &[
                ("FNAME", Value::Text("Ann".into())),
                ("AGE", Value::Number(41.0)),
                ("NICK", Value::Null),
            ],
            known,
        )
    }

    fn body(host: &MockHost, index: usize) -> Json {
        serde_json::from_slice(host.requests.borrow()[index].body.as_ref().unwrap()).unwrap()
    }

    #[test]
    fn upsert_inserts_new_rows_in_a_batch_and_patches_known_and_existing_ones() {
        let host = MockHost::new();
        host.respond(
            200,
            &[],
            &json!({
                "new_members": [{"email_address": "new@example.com"}],
                "updated_members": [],
                "errors": [
                    {"email_address": "there@example.com", "error": "there@example.com is already a list member.", "error_code": "ERROR_CONTACT_EXISTS"},
                    {"email_address": "bad@example", "error": "bad@example looks fake or invalid", "error_code": "ERROR_GENERIC"}
                ]
            })
            .to_string(),
        )
        .respond(200, &[], "{}") // there@ PATCH
        .respond(404, &[], r#"{"title": "Resource Not Found", "status": 404}"#) // known@ PATCH: gone
        .respond(200, &[], "{}"); // known@ PUT
        let outcomes = sync::<Mailchimp>(
            &host,
            &config(),
            &batch(
                SyncMode::Upsert,
                vec![
                    row("new@example.com", false),
                    row("there@example.com", false),
                    row("bad@example", false),
                    row("known@example.com", true),
                ],
            ),
        )
        .unwrap();
        assert_eq!(outcomes[0], RowOutcome::Inserted);
        assert_eq!(outcomes[1], RowOutcome::Updated);
        assert!(
            matches!(&outcomes[2], RowOutcome::Failed(f) if !f.retryable && f.message.contains("looks fake"))
        );
        assert_eq!(outcomes[3], RowOutcome::Inserted);
        let sent = body(&host, 0);
        assert_eq!(
            sent["update_existing"], false,
            "an existing member's status is never touched"
        );
        assert_eq!(
            sent["members"][0],
            json!({"email_address": "new@example.com", "status": "transactional",
                   "merge_fields": {"FNAME": "Ann", "AGE": 41, "NICK": ""}})
        );
        let requests = host.requests.borrow().clone();
        assert_eq!(requests[1].method, Method::Patch);
        assert_eq!(
            body(&host, 1),
            json!({"merge_fields": {"FNAME": "Ann", "AGE": 41, "NICK": ""}})
        );
        assert_eq!(requests[3].method, Method::Put);
        assert_eq!(body(&host, 3)["status_if_new"], "transactional");
    }

    #[test]
    fn insert_skips_existing_members_and_update_skips_missing_ones() {
        let host = MockHost::new();
        host.respond(
            200,
            &[],
            &json!({"new_members": [], "errors": [{"email_address": "there@example.com", "error": "exists", "error_code": "ERROR_CONTACT_EXISTS"}]}).to_string(),
        );
        let outcomes = sync::<Mailchimp>(
            &host,
            &config(),
            &batch(SyncMode::Insert, vec![row("there@example.com", false)]),
        )
        .unwrap();
        assert_eq!(
            outcomes,
            [RowOutcome::Skipped("already in the audience".into())]
        );
        let host = MockHost::new();
        host.respond(404, &[], "{}").respond(
            400,
            &[],
            r#"{"title": "Invalid Resource", "status": 400, "detail": "Your merge fields were invalid: `AGE` is not a merge field of this audience."}"#,
        );
        let outcomes = sync::<Mailchimp>(
            &host,
            &config(),
            &batch(
                SyncMode::Update,
                vec![row("gone@example.com", true), row("ann@example.com", true)],
            ),
        )
        .unwrap();
        assert_eq!(
            outcomes[0],
            RowOutcome::Skipped("not in the audience".into())
        );
        let RowOutcome::Failed(failure) = &outcomes[1] else {
            panic!("{outcomes:?}")
        };
        assert_eq!(failure.field.as_deref(), Some("AGE"));
        assert!(!failure.retryable);
    }

    #[test]
    fn a_refused_key_refuses_the_batch_and_a_later_outage_fails_the_rows_left() {
        let host = MockHost::new();
        host.respond(401, &[], r#"{"title": "API Key Invalid", "status": 401}"#);
        let refused = sync::<Mailchimp>(
            &host,
            &config(),
            &batch(SyncMode::Insert, vec![row("a@example.com", false)]),
        )
        .unwrap_err();
        assert!(
            !refused.retryable && refused.message.contains("API Key Invalid"),
            "{refused:?}"
        );

        let host = MockHost::new();
        host.respond(200, &[], "{}").respond(503, &[], "");
        let outcomes = sync::<Mailchimp>(
            &host,
            &config(),
            &batch(
                SyncMode::Update,
                vec![
                    row("a@example.com", true),
                    row("b@example.com", true),
                    row("c@example.com", true),
                ],
            ),
        )
        .unwrap();
        assert_eq!(outcomes[0], RowOutcome::Updated);
        assert!(
            outcomes[1..]
                .iter()
                .all(|o| matches!(o, RowOutcome::Failed(f) if f.retryable)),
            "{outcomes:?}"
        );
        assert_eq!(host.requests.borrow().len(), 2, "c@ not sent");

        let wrong_key = SyncBatch {
            key_field: "organization_user_id".into(),
            mode: SyncMode::Upsert,
            rows: vec![row("a", false)],
        };
        assert!(
            sync::<Mailchimp>(&MockHost::new(), &config(), &wrong_key)
                .unwrap_err()
                .message
                .contains("`EMAIL`")
        );
    }
}
