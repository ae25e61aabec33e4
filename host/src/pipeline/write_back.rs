//! Writing changes back to the platform the events API is fed from (Didomi),
//! without loops and without echoes.
//!
//! Three rules, each kept in one place here:
//! - **Nothing goes back where it came from.** An event of `POST /v1/events`
//!   is Didomi's own; a Didomi integration is never given a delivery for it
//!   ([`skips_events_api_changes`]). Per property, a record carries where the
//!   property's value came from ([`record_facts`], `source:<property>`), so a
//!   write-back connector sends only what came from elsewhere.
//! - **One write, one id.** Every record carries a `write-id`: the same for
//!   the same integration, user and state version, so a retried delivery can
//!   never create a second event at a destination that takes client ids.
//! - **Our write coming back is an echo.** Didomi posts the event prefsync
//!   wrote back to its webhook, which feeds `POST /v1/events`; such an event
//!   (its id, or the id of the event that caused it, is a write id of this
//!   user, or its delegate is [`OWN_DELEGATE_ID`]) is applied nowhere and
//!   sends nothing ([`is_echo`]).

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

use crate::consent::{ConsentEvent, UserState, writers};

/// The connector type that writes back to the platform the events API
/// carries: it never gets those events' changes.
pub const EVENTS_API_SOURCE_TYPE: &str = "didomi";

/// The `delegate.id` prefsync's write-backs carry (a second sign of an echo
/// beside the event id).
pub const OWN_DELEGATE_ID: &str = "prefsync";

/// `metadata.extra` key of the record's write id.
pub const WRITE_ID: &str = "write-id";

/// `metadata.extra` key prefix naming a mapped property's source:
/// `source:<property>` = the integration whose inbound webhook last wrote it.
/// Without one, the value came in through the events API.
pub const SOURCE_PREFIX: &str = "source:";

/// Whether an integration of this connector type gets no delivery for
/// changes made by events-API events.
pub fn skips_events_api_changes(type_id: &str) -> bool {
    type_id == EVENTS_API_SOURCE_TYPE
}

/// The host facts a record for `integration_id` carries: its write id, and
/// the source of every `mapped` property an inbound webhook last wrote.
pub fn record_facts(
    integration_id: &str,
    state: &UserState,
    mapped: &BTreeSet<String>,
) -> Vec<(String, String)> {
    let mut facts = vec![(
        WRITE_ID.to_string(),
        write_id(integration_id, &state.organization_user_id, state.version),
    )];
    for (property, event_id) in writers(state) {
        if !mapped.contains(&property) {
            continue;
        }
        if let Some(source) = webhook_source(&event_id) {
            facts.push((format!("{SOURCE_PREFIX}{property}"), source.to_string()));
        }
    }
    facts
}

/// The integration whose inbound webhook made the event `event_id`
/// (`webhook:<integration>:…`, see `ingest::inbound`).
fn webhook_source(event_id: &str) -> Option<&str> {
    let rest = event_id.strip_prefix("webhook:")?;
    rest.split(':').next().filter(|id| !id.is_empty())
}

/// The write id of (`integration_id`, `organization_user_id`, `version`): a
/// UUID (version 8) whose first 8 bytes name the integration and user and
/// whose last 8 the state version, so the host can tell its own ids apart
/// without keeping them.
pub fn write_id(integration_id: &str, organization_user_id: &str, version: u64) -> String {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&subject_tag(integration_id, organization_user_id));
    bytes[8..].copy_from_slice(&version.to_be_bytes());
    bytes[6] = 0x80 | (bytes[6] & 0x0f);
    bytes[8] = 0x80 | (bytes[8] & 0x3f);
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Whether `id` is a write id minted for this integration and user.
pub fn is_write_id(id: &str, integration_id: &str, organization_user_id: &str) -> bool {
    let digits: String = id.chars().filter(|c| *c != '-').collect();
    if id.len() != 36 || digits.len() != 32 {
        return false;
    }
    let Ok(bytes) = hex::decode(digits.to_ascii_lowercase()) else {
        return false;
    };
    let mut tag = subject_tag(integration_id, organization_user_id);
    tag[6] = 0x80 | (tag[6] & 0x0f);
    bytes[..8] == tag && bytes[8] & 0xc0 == 0x80
}

fn subject_tag(integration_id: &str, organization_user_id: &str) -> [u8; 8] {
    let digest = Sha256::new()
        .chain_update(b"prefsync write-back\0")
        .chain_update(integration_id.as_bytes())
        .chain_update(b"\0")
        .chain_update(organization_user_id.as_bytes())
        .finalize();
    let mut tag = [0u8; 8];
    tag.copy_from_slice(&digest[..8]);
    tag
}

/// Whether `event` is prefsync's own write coming back, for any of the
/// `integration_ids`.
pub fn is_echo<'a>(event: &ConsentEvent, integration_ids: impl Iterator<Item = &'a str>) -> bool {
    if event.delegate_id.as_deref() == Some(OWN_DELEGATE_ID) {
        return true;
    }
    let user = &event.user.organization_user_id;
    let ids: Vec<&str> = std::iter::once(event.id.as_str())
        .chain(event.cause_id.as_deref())
        .collect();
    integration_ids
        .into_iter()
        .any(|integration| ids.iter().any(|id| is_write_id(id, integration, user)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consent::parse_body;

    fn event(body: &str) -> ConsentEvent {
        parse_body(Some("application/json"), body.as_bytes())
            .unwrap()
            .remove(0)
    }

    #[test]
    fn a_write_id_is_a_uuid_stable_per_integration_user_and_version() {
        let id = write_id("didomi-main", "ann@example.com", 7);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "8", "UUID version 8: {id}");
        assert!(
            matches!(&id[19..20], "8" | "9" | "a" | "b"),
            "variant: {id}"
        );
        assert_eq!(id, write_id("didomi-main", "ann@example.com", 7));
        assert_ne!(id, write_id("didomi-main", "ann@example.com", 8));
        assert_ne!(id, write_id("didomi-main", "bob@example.com", 7));
        assert_ne!(id, write_id("didomi-eu", "ann@example.com", 7));
        assert!(is_write_id(&id, "didomi-main", "ann@example.com"));
        assert!(is_write_id(
            &id.to_ascii_uppercase(),
            "didomi-main",
            "ann@example.com"
        ));
        assert!(!is_write_id(&id, "didomi-main", "bob@example.com"));
        assert!(!is_write_id(&id, "didomi-eu", "ann@example.com"));
        assert!(!is_write_id(
            "9b1c5f0e-2b1d-4c4e-8a8f-0c1d2e3f4a5b",
            "didomi-main",
            "ann@example.com"
        ));
        assert!(!is_write_id("evt-1", "didomi-main", "ann@example.com"));
    }

    #[test]
    fn an_echo_is_known_by_its_id_its_cause_or_its_delegate() {
        let ours = write_id("didomi", "ann@example.com", 3);
        let created = event(&format!(
            r#"{{"type": "event.created", "parameters": {{"entity": {{"id": "{ours}", "created_at": "2026-11-23T10:00:00Z",
                "user": {{"organization_user_id": "ann@example.com"}}, "consents": {{"channels": [{{"id": "email", "enabled": false}}]}}}}}}}}"#
        ));
        assert!(is_echo(&created, ["actito", "didomi"].into_iter()));
        assert!(!is_echo(&created, ["actito"].into_iter()));
        let updated = event(&format!(
            r#"{{"type": "user.updated", "parameters": {{"source": {{"id": "{ours}"}}, "old_entity": {{}},
                "new_entity": {{"organization_user_id": "ann@example.com", "updated_at": "2026-11-23T10:00:01Z"}}}}}}"#
        ));
        assert_eq!(updated.cause_id.as_deref(), Some(ours.as_str()));
        assert!(is_echo(&updated, ["didomi"].into_iter()));
        let delegated = event(
            r#"{"id": "e-9", "created_at": "2026-11-23T10:00:00Z", "delegate": {"id": "prefsync", "name": "prefsync"},
                "user": {"organization_user_id": "ann@example.com"}}"#,
        );
        assert!(is_echo(&delegated, std::iter::empty()));
        let users_own = event(
            r#"{"id": "e-10", "created_at": "2026-11-23T10:00:00Z", "delegate": {"id": "call-center"},
                "user": {"organization_user_id": "ann@example.com"}}"#,
        );
        assert!(!is_echo(&users_own, ["didomi"].into_iter()));
    }

    #[test]
    fn a_record_names_the_webhook_source_of_each_mapped_property() {
        let mut state = UserState::new("ann@example.com");
        state.apply(&event(
            r#"{"id": "e-1", "created_at": "2026-11-23T10:00:00Z", "user": {"organization_user_id": "ann@example.com"},
                "consents": {"purposes": [{"id": "news_letter", "enabled": true}], "channels": [{"id": "email", "enabled": true}]}}"#,
        ));
        let update = crate::consent::event_for_update(
            "webhook:actito-main:n-1:0",
            "2026-11-23T10:00:01Z",
            "ann@example.com",
            &[(
                "consents_channels_email_enabled".to_string(),
                serde_json::json!(false),
            )],
        )
        .unwrap();
        state.apply(&update);
        let mapped: BTreeSet<String> = [
            "consents_purposes_news_letter_enabled",
            "consents_channels_email_enabled",
        ]
        .map(str::to_string)
        .into();
        let facts = record_facts("didomi", &state, &mapped);
        assert_eq!(
            facts,
            vec![
                (
                    WRITE_ID.to_string(),
                    write_id("didomi", "ann@example.com", state.version)
                ),
                (
                    "source:consents_channels_email_enabled".to_string(),
                    "actito-main".to_string()
                ),
            ]
        );
        assert!(skips_events_api_changes("didomi"));
        assert!(!skips_events_api_changes("actito"));
    }
}
