//! Consent changes a destination reports back (its webhooks), turned into
//! Didomi-shaped events so they merge like any other: field-level
//! last-write-wins, an equal value changes nothing.
//!
//! Only what a user can choose is writable this way: purpose and channel
//! choices (`consents_purposes_<id>_enabled`, `consents_channels_<id>_enabled`)
//! and user metadata (`metadata_<key>`). The longest-id reading of a name is
//! the one [`super::flatten`] uses, so `consents_purposes_a_b_enabled` is
//! purpose `a_b`.

use serde_json::{Map, Value, json};

use super::event::{ConsentEvent, parse_body};
use crate::property_names as names;

/// Why an update cannot be applied; the text names the property.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    #[error(
        "`{0}` cannot be set from a webhook (only consents_purposes_<id>_enabled, consents_channels_<id>_enabled and metadata_<key> can)"
    )]
    NotWritable(String),
    #[error("`{0}` is a consent choice: it takes true, false or null")]
    NotAChoice(String),
    #[error("`{0}`: metadata takes a string, number, boolean or null")]
    NotScalar(String),
    #[error("the update names no user")]
    NoUser,
    #[error("the update is not a valid event: {0}")]
    Event(String),
}

/// The event for one reported update: `id` identifies it (a repeat with the
/// same id is a duplicate), `created_at` (RFC 3339) orders it.
pub fn event_for_update(
    id: &str,
    created_at: &str,
    organization_user_id: &str,
    properties: &[(String, Value)],
) -> Result<ConsentEvent, InboundError> {
    if organization_user_id.trim().is_empty() {
        return Err(InboundError::NoUser);
    }
    let (mut purposes, mut channels, mut metadata) = (Vec::new(), Vec::new(), Map::new());
    for (name, value) in properties {
        let choice = || match value {
            Value::Bool(_) | Value::Null => Ok(value.clone()),
            _ => Err(InboundError::NotAChoice(name.clone())),
        };
        if let Some(id) = enabled_id(name, names::PURPOSES) {
            purposes.push(json!({"id": id, "enabled": choice()?}));
        } else if let Some(id) = enabled_id(name, names::CHANNELS) {
            channels.push(json!({"id": id, "enabled": choice()?}));
        } else if let Some(key) = name.strip_prefix(names::METADATA).filter(|k| !k.is_empty()) {
            if value.is_array() || value.is_object() {
                return Err(InboundError::NotScalar(name.clone()));
            }
            metadata.insert(key.to_string(), value.clone());
        } else {
            return Err(InboundError::NotWritable(name.clone()));
        }
    }
    let event = json!({
        "id": id,
        "created_at": created_at,
        "status": "confirmed",
        "user": {"organization_user_id": organization_user_id, "metadata": metadata},
        "consents": {"purposes": purposes, "channels": channels},
    });
    let mut events = parse_body(Some("application/json"), event.to_string().as_bytes())
        .map_err(|e| InboundError::Event(e.to_string()))?;
    events
        .pop()
        .ok_or_else(|| InboundError::Event("no event".into()))
}

/// `<prefix><id>_enabled` → `id` (never the `_enabled_li` variant).
fn enabled_id<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    name.strip_prefix(prefix)?
        .strip_suffix("_enabled")
        .filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flatten::PropertyValue;
    use crate::{UserState, flatten};

    fn props(list: &[(&str, Value)]) -> Vec<(String, Value)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn choices_and_metadata_become_an_event_that_merges() {
        let event = event_for_update(
            "webhook:actito:n-1",
            "2026-11-23T10:00:00Z",
            "ann",
            &props(&[
                ("consents_purposes_newsletter_enabled", json!(false)),
                ("consents_purposes_email_optin_enabled", json!(null)),
                ("consents_channels_sms_enabled", json!(true)),
                ("metadata_tier", json!("gold")),
            ]),
        )
        .unwrap();
        let mut state = UserState::new("ann");
        assert!(state.apply(&event).changed);
        let flat = flatten(&state);
        assert_eq!(
            flat["consents_purposes_newsletter_enabled"],
            PropertyValue::Bool(false)
        );
        assert_eq!(
            flat["consents_purposes_email_optin_enabled"],
            PropertyValue::Null
        );
        assert_eq!(
            flat["consents_channels_sms_enabled"],
            PropertyValue::Bool(true)
        );
        assert_eq!(flat["metadata_tier"], PropertyValue::Text("gold".into()));
        // The same values again, later: nothing changes.
        let again = event_for_update(
            "webhook:actito:n-2",
            "2026-11-23T10:05:00Z",
            "ann",
            &props(&[("consents_purposes_newsletter_enabled", json!(false))]),
        )
        .unwrap();
        let result = state.apply(&again);
        assert!(!result.changed);
        assert!(result.changed_fields.is_empty());
    }

    #[test]
    fn only_choices_and_metadata_are_writable() {
        let refused = |name: &str, value: Value| {
            event_for_update("x", "2026-11-23T10:00:00Z", "ann", &props(&[(name, value)]))
                .unwrap_err()
        };
        assert_eq!(
            refused("organization_user_id", json!("bob")),
            InboundError::NotWritable("organization_user_id".into())
        );
        assert_eq!(
            refused("consents_purposes_x_enabled_li", json!(true)),
            InboundError::NotWritable("consents_purposes_x_enabled_li".into())
        );
        assert_eq!(
            refused("consents_purposes__enabled", json!(true)),
            InboundError::NotWritable("consents_purposes__enabled".into())
        );
        assert_eq!(
            refused("consents_purposes_x_enabled", json!("yes")),
            InboundError::NotAChoice("consents_purposes_x_enabled".into())
        );
        assert_eq!(
            refused("metadata_list", json!([1])),
            InboundError::NotScalar("metadata_list".into())
        );
        assert_eq!(
            event_for_update("x", "2026-11-23T10:00:00Z", " ", &[]).unwrap_err(),
            InboundError::NoUser
        );
        assert!(matches!(
            event_for_update("x", "yesterday", "ann", &[]).unwrap_err(),
            InboundError::Event(_)
        ));
    }
}
