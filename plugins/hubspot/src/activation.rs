//! Activations (reverse ETL): model rows become contact properties through
//! the same batch upsert as consent deliveries, matched on the batch's key
//! field (HubSpot's `idProperty`: `email`, or another unique property).
//! Insert and update modes first read which contacts exist
//! (`POST /crm/v3/objects/contacts/batch/read`), so that an insert never
//! touches an existing contact and an update never creates one.

use std::collections::BTreeSet;

use prefsync_sdk::{
    Context, DeliveredKind, Failure, Method, Outcome, RowFailure, RowOutcome, SyncBatch, SyncMode,
};
use serde_json::{Map, Value as Json, json};

use crate::api::{self, BatchAnswer, UpsertInput};
use crate::config::HubSpotConfig;

/// Rows per `sync` call: HubSpot's batch limit.
pub const MAX_ROWS: u32 = api::MAX_BATCH_SIZE as u32;

pub fn sync(
    ctx: &Context<'_>,
    config: &HubSpotConfig,
    batch: &SyncBatch,
) -> Result<Vec<RowOutcome>, RowFailure> {
    if let Some(Outcome::Failed(parked)) = api::parked_by_daily_limit(ctx, config) {
        return Err(row_failure(parked));
    }
    let by_email = batch.key_field.trim().eq_ignore_ascii_case("email");
    let id_property = if by_email {
        "email".to_string()
    } else {
        batch.key_field.trim().to_string()
    };
    let mut outcomes: Vec<Option<RowOutcome>> = vec![None; batch.rows.len()];
    // (row index, id, properties) of the rows that can be written.
    let mut candidates: Vec<(usize, String, Map<String, Json>)> = Vec::new();
    for (i, row) in batch.rows.iter().enumerate() {
        let id = if by_email {
            row.key.trim().to_lowercase()
        } else {
            row.key.trim().to_string()
        };
        if id.is_empty() {
            outcomes[i] = Some(RowOutcome::Failed(
                RowFailure::permanent(format!("empty `{id_property}`")).with_field(&id_property),
            ));
        } else if candidates.iter().any(|(_, other, _)| *other == id) {
            outcomes[i] = Some(RowOutcome::Failed(RowFailure::permanent(format!(
                "`{id}` appears twice in the batch (HubSpot refuses duplicate ids)"
            ))));
        } else {
            let properties = row
                .attributes
                .iter()
                // A null clears the property (HubSpot reads "" so); a
                // known row carries only what changed, so nothing else is touched.
                .map(|p| {
                    (
                        p.name.clone(),
                        Json::String(p.value.to_text().unwrap_or_default()),
                    )
                })
                .filter(|(name, _)| *name != id_property)
                .collect();
            candidates.push((i, id, properties));
        }
    }
    if batch.mode != SyncMode::Upsert && !candidates.is_empty() {
        let ids: Vec<&str> = candidates.iter().map(|(_, id, _)| id.as_str()).collect();
        let existing = existing_ids(ctx, config, &id_property, &ids)?;
        candidates.retain(|(i, id, _)| {
            let exists = existing.contains(&id.to_lowercase());
            let skip = match batch.mode {
                SyncMode::Insert if exists => Some("already in HubSpot"),
                SyncMode::Update if !exists => Some("not in HubSpot"),
                _ => None,
            };
            if let Some(reason) = skip {
                outcomes[*i] = Some(RowOutcome::Skipped(reason.into()));
            }
            skip.is_none()
        });
    }
    if !candidates.is_empty() {
        let inputs: Vec<UpsertInput<'_>> = candidates
            .iter()
            .map(|(_, id, properties)| UpsertInput { id, properties })
            .collect();
        // The only write: refused as a whole, nothing was written.
        let results = api::upsert_round(ctx, config, &id_property, &inputs).map_err(row_failure)?;
        for ((i, _, _), result) in candidates.iter().zip(results) {
            outcomes[*i] = Some(match result {
                Ok(DeliveredKind::Created) => RowOutcome::Inserted,
                Ok(_) => RowOutcome::Updated,
                Err(Outcome::Failed(failure)) => RowOutcome::Failed(row_failure(failure)),
                Err(Outcome::Skipped(reason)) => RowOutcome::Skipped(reason),
                Err(Outcome::Delivered(_)) => RowOutcome::Updated,
            });
        }
    }
    Ok(outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or_else(|| {
                RowOutcome::Failed(RowFailure::retryable("HubSpot: row not written"))
            })
        })
        .collect())
}

/// The ids (lower case) of the contacts HubSpot has among `ids`: a batch
/// read asking for the id property only. Missing ones come back as
/// `OBJECT_NOT_FOUND` errors (207), or as a 404 when none exists.
fn existing_ids(
    ctx: &Context<'_>,
    config: &HubSpotConfig,
    id_property: &str,
    ids: &[&str],
) -> Result<BTreeSet<String>, RowFailure> {
    let url = format!("{}/crm/v3/objects/contacts/batch/read", config.base_url());
    let body = json!({
        "idProperty": id_property,
        "inputs": ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>(),
        "properties": [id_property],
    });
    let response = ctx
        .send(api::request(config, Method::Post, url).json(&body))
        .map_err(|e| RowFailure::from_http(&e, "HubSpot contact read"))?;
    if response.status == 404 {
        return Ok(BTreeSet::new());
    }
    if !(200..300).contains(&response.status) {
        return Err(row_failure(api::classify(ctx, config, &response)));
    }
    let answer: BatchAnswer = response.json().map_err(|e| {
        RowFailure::retryable(format!("HubSpot contact read: unreadable answer ({e})"))
    })?;
    Ok(answer
        .results
        .iter()
        .filter_map(|r| r.properties.get(id_property).and_then(Json::as_str))
        .map(str::to_lowercase)
        .collect())
}

fn row_failure(failure: Failure) -> RowFailure {
    RowFailure {
        retryable: failure.retryable,
        field: None,
        message: failure.message,
    }
}

#[cfg(test)]
mod tests {
    use prefsync_sdk::activation;
    use prefsync_sdk::testing::MockHost;
    use prefsync_sdk::{SyncRow, Value};

    use super::*;
    use crate::HubSpot;

    fn config() -> String {
        json!({
            "type_id": "hubspot",
            "authentication": {"access_token": "pat-na1-0123"},
            "mappings": [{"id": "didomi_newsletter", "value": "consents_purposes_newsletter_enabled"}]
        })
        .to_string()
    }

    fn rows(mode: SyncMode, rows: Vec<SyncRow>) -> SyncBatch {
        SyncBatch {
            key_field: "email".into(),
            mode,
            rows,
        }
    }

    fn row(key: &str, known: bool) -> SyncRow {
        SyncRow::new(
            key,
            &[
                ("firstname", Value::Text("Ann".into())),
                ("age", Value::Number(41.0)),
                ("city", Value::Null),
            ],
            known,
        )
    }

    fn body(host: &MockHost, index: usize) -> Json {
        serde_json::from_slice(host.requests.borrow()[index].body.as_ref().unwrap()).unwrap()
    }

    #[test]
    fn upsert_writes_every_row_in_one_call() {
        let host = MockHost::new();
        host.respond(
            200,
            &[],
            r#"{"results":[{"new":false,"properties":{"email":"bob@example.com"}},{"new":true,"properties":{"email":"ann@example.com"}}]}"#,
        );
        let outcomes = activation::sync::<HubSpot>(
            &host,
            &config(),
            &rows(
                SyncMode::Upsert,
                vec![
                    row("Ann@example.com", false),
                    row("bob@example.com", true),
                    row("ann@example.com", false),
                    row(" ", false),
                ],
            ),
        )
        .unwrap();
        assert_eq!(outcomes[0], RowOutcome::Inserted);
        assert_eq!(outcomes[1], RowOutcome::Updated);
        assert!(
            matches!(&outcomes[2], RowOutcome::Failed(f) if !f.retryable && f.message.contains("twice"))
        );
        assert!(
            matches!(&outcomes[3], RowOutcome::Failed(f) if f.field.as_deref() == Some("email"))
        );
        assert_eq!(host.requests.borrow().len(), 1);
        assert_eq!(
            body(&host, 0)["inputs"][0],
            json!({"idProperty": "email", "id": "ann@example.com",
                   "properties": {"firstname": "Ann", "age": "41", "city": "", "email": "ann@example.com"}})
        );
        assert_eq!(activation::max_rows::<HubSpot>(&config()), 100);
    }

    #[test]
    fn insert_and_update_read_first_and_skip_what_they_must_not_touch() {
        let host = MockHost::new();
        host.respond(
            207,
            &[],
            r#"{"status":"COMPLETE","results":[{"id":"7","properties":{"email":"bob@example.com"}}],
                "errors":[{"status":"error","category":"OBJECT_NOT_FOUND","message":"Could not get some CONTACT objects","context":{"ids":["ann@example.com"]}}]}"#,
        )
        .respond(200, &[], r#"{"results":[{"new":true,"properties":{"email":"ann@example.com"}}]}"#);
        let outcomes = activation::sync::<HubSpot>(
            &host,
            &config(),
            &rows(
                SyncMode::Insert,
                vec![row("ann@example.com", false), row("bob@example.com", false)],
            ),
        )
        .unwrap();
        assert_eq!(
            outcomes,
            [
                RowOutcome::Inserted,
                RowOutcome::Skipped("already in HubSpot".into())
            ]
        );
        assert!(
            host.requests.borrow()[0]
                .url
                .ends_with("/crm/v3/objects/contacts/batch/read")
        );
        assert_eq!(
            body(&host, 0),
            json!({"idProperty": "email", "inputs": [{"id": "ann@example.com"}, {"id": "bob@example.com"}], "properties": ["email"]})
        );
        assert_eq!(body(&host, 1)["inputs"].as_array().unwrap().len(), 1);

        let host = MockHost::new();
        host.respond(
            404,
            &[],
            r#"{"status":"error","category":"OBJECT_NOT_FOUND","message":"not found"}"#,
        );
        let outcomes = activation::sync::<HubSpot>(
            &host,
            &config(),
            &rows(SyncMode::Update, vec![row("ann@example.com", true)]),
        )
        .unwrap();
        assert_eq!(outcomes, [RowOutcome::Skipped("not in HubSpot".into())]);
        assert_eq!(host.requests.borrow().len(), 1, "nothing created");
    }

    #[test]
    fn whole_batch_refusals_are_errors() {
        let host = MockHost::new();
        host.respond(
            401,
            &[],
            r#"{"status":"error","category":"INVALID_AUTHENTICATION","message":"bad token"}"#,
        );
        let err = activation::sync::<HubSpot>(
            &host,
            &config(),
            &rows(SyncMode::Upsert, vec![row("ann@example.com", false)]),
        )
        .unwrap_err();
        assert!(
            !err.retryable && err.message.contains("refused the access token"),
            "{err:?}"
        );
        host.respond(
            429,
            &[],
            r#"{"policyName":"TEN_SECONDLY_ROLLING","message":"slow"}"#,
        );
        let err = activation::sync::<HubSpot>(
            &host,
            &config(),
            &rows(SyncMode::Update, vec![row("ann@example.com", true)]),
        )
        .unwrap_err();
        assert!(err.retryable, "{err:?}");
        // A row HubSpot refuses inside a 207 fails alone.
        host.respond(
            207,
            &[],
            r#"{"results":[{"new":true,"properties":{"email":"ann@example.com"}}],
                "errors":[{"category":"VALIDATION_ERROR","message":"Email address nope is invalid","context":{"ids":["nope"]}}]}"#,
        );
        let outcomes = activation::sync::<HubSpot>(
            &host,
            &config(),
            &rows(
                SyncMode::Upsert,
                vec![row("nope", false), row("ann@example.com", false)],
            ),
        )
        .unwrap();
        assert!(
            matches!(&outcomes[0], RowOutcome::Failed(f) if !f.retryable && f.message.contains("nope is invalid"))
        );
        assert_eq!(outcomes[1], RowOutcome::Inserted);
    }
}
