//! `POST /v1/events` bodies: `prefsync::consent::parse_batch` (events,
//! webhook envelopes, lists, NDJSON), then the merge into user states.
//!
//! Input: an optional `#content-type: …` line, then the body.
//! Oracles: every event has an id and a user key; a one-line JSON body
//! parses to the same batch as NDJSON; merging a body's confirmed events
//! (distinct stamps) forwards and backwards gives the same values, and
//! merging them again changes nothing (ARCHITECTURE.md: "Consent merge is
//! order-independent") — Didomi's user id aside, a known finding.

use std::collections::{BTreeMap, HashSet};

use prefsync::consent::{ConsentEvent, EventError, EventStatus, UserState, parse_batch};

use super::{Target, Verdict, class};
use crate::mutate::{meta, split_meta};

pub const TARGET: Target = Target {
    name: "events",
    about: "event parser (JSON, envelopes, lists, NDJSON) and the consent merge",
    run,
    dictionary: &[
        "\"id\"",
        "\"created_at\"",
        "\"updated_at\"",
        "\"status\"",
        "\"pending_approval\"",
        "\"confirmed\"",
        "\"user\"",
        "\"organization_user_id\"",
        "\"country\"",
        "\"metadata\"",
        "\"consents\"",
        "\"purposes\"",
        "\"channels\"",
        "\"vendors\"",
        "\"enabled\"",
        "\"disabled\"",
        "\"enabled_li\"",
        "\"disabled_li\"",
        "\"values\"",
        "\"value\"",
        "\"tcfcs\"",
        "\"proofs_id\"",
        "\"regulation\"",
        "\"organization_id\"",
        "\"type\"",
        "\"parameters\"",
        "\"event.created\"",
        "\"event.updated\"",
        "\"event.deleted\"",
        "\"user.created\"",
        "\"user.updated\"",
        "\"user.deleted\"",
        "\"gdpr\"",
        "\"newsletter\"",
        "#content-type: application/x-ndjson\n",
        "#content-type: application/json; charset=utf-8\n",
        "#content-type: application/jsonl\n",
        "#content-type: text/plain\n",
    ],
    json: true,
};

fn run(input: &[u8]) -> Verdict {
    let content_type = meta(input, "content-type");
    let (_, body) = split_meta(input);
    let batch = match parse_batch(content_type, body) {
        Ok(batch) => batch,
        Err(error) => return Ok(error_class(&error)),
    };
    for (index, event) in batch.events.iter().enumerate() {
        if event.id.is_empty() || event.user.organization_user_id.is_empty() {
            return Err(format!(
                "event [{index}] parsed with an empty id or organization_user_id"
            ));
        }
    }
    let media_type = content_type
        .and_then(|ct| ct.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let is_json = media_type.is_empty() || media_type == "application/json";
    if is_json && !body.contains(&b'\n') {
        match parse_batch(Some("application/x-ndjson"), body) {
            Ok(same) if same == batch => {}
            Ok(_) => return Err("a one-line JSON body parses differently as NDJSON".into()),
            Err(error) => {
                return Err(format!(
                    "a one-line JSON body parses, not as NDJSON: {}",
                    crate::engine::normalise(&error.to_string())
                ));
            }
        }
    }
    check_merge(&batch.events)?;
    let mut shape = vec![format!("n{}", batch.events.len().min(3))];
    if batch.deletions_skipped > 0 {
        shape.push("deleted".into());
    }
    for event in &batch.events {
        let consents = &event.consents;
        for (present, name) in [
            (!consents.purposes.is_empty(), "purposes"),
            (!consents.channels.is_empty(), "channels"),
            (consents.vendors.is_some(), "vendors"),
            (consents.tcfcs.is_some(), "tcfcs"),
            (!event.user.metadata.is_empty(), "metadata"),
            (event.status == EventStatus::PendingApproval, "pending"),
            (event.regulation.is_some(), "regulation"),
            (event.id.starts_with("user:"), "user-entity"),
        ] {
            if present && !shape.iter().any(|s| s == name) {
                shape.push(name.into());
            }
        }
    }
    Ok(format!("ok:{}", shape.join(",")))
}

/// An error's class: its variant, and for content errors the field path
/// and the message's shape (the header or item it quotes left out).
fn error_class(error: &EventError) -> String {
    match error {
        EventError::UnsupportedContentType { .. } => "error:content-type".into(),
        EventError::Syntax { message, .. } => class("syntax", message),
        EventError::Invalid { field, message, .. } => {
            class("invalid", &format!("{field} {message}"))
        }
    }
}

/// Order independence and idempotence of the merge, per user.
fn check_merge(events: &[ConsentEvent]) -> Result<(), String> {
    let mut by_user: BTreeMap<&str, Vec<&ConsentEvent>> = BTreeMap::new();
    for event in events {
        by_user
            .entry(event.user.organization_user_id.as_str())
            .or_default()
            .push(event);
    }
    for (user, events) in by_user {
        // Two events with one stamp are one event told twice; which wins
        // is not defined (event ids are unique in Didomi).
        let mut stamps = HashSet::new();
        if !events
            .iter()
            .filter(|e| e.status == EventStatus::Confirmed)
            .all(|e| stamps.insert((e.created_at_ms, e.id.as_str())))
        {
            continue;
        }
        let mut forwards = UserState::new(user);
        for event in &events {
            forwards.apply(event);
        }
        let mut backwards = UserState::new(user);
        for event in events.iter().rev() {
            backwards.apply(event);
        }
        let (mut a, mut b) = (forwards.clone(), backwards);
        a.version = 0;
        b.version = 0;
        if a != b {
            let differs = differing_fields(&a, &b);
            return Err(format!(
                "merge is order-dependent: {} events of one user end with different {differs}",
                events.len()
            ));
        }
        for event in &events {
            let again = forwards.apply(event);
            if !again.changed_fields.is_empty() || again.restamped {
                return Err(format!(
                    "merging an event again changed {:?}",
                    again.changed_fields
                ));
            }
        }
    }
    Ok(())
}

fn differing_fields(a: &UserState, b: &UserState) -> String {
    let mut fields = Vec::new();
    if a.purposes != b.purposes {
        fields.push("purposes");
    }
    if a.channels != b.channels {
        fields.push("channels");
    }
    if a.metadata != b.metadata {
        fields.push("metadata");
    }
    if a.vendors != b.vendors {
        fields.push("vendors");
    }
    if a.country != b.country {
        fields.push("country");
    }
    if a.tcfcs != b.tcfcs {
        fields.push("tcfcs");
    }
    if a.updated_at_ms != b.updated_at_ms {
        fields.push("updated_at_ms");
    }
    if (&a.user_id, &a.user_id_written) != (&b.user_id, &b.user_id_written) {
        fields.push("user_id");
    }
    fields.join(", ")
}
