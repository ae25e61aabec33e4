//! From a user's merged state to what a connector receives, and whether a
//! change matters to an integration at all.

use std::collections::BTreeSet;

use serde_json::Value as Json;

use crate::consent::{PropertyValue, UserState, flatten, millis_to_rfc3339};
use crate::runtime::{ConsentRecord, Property, RecordMetadata, Value};

/// The property that identifies a user to every destination.
pub const KEY_PROPERTY: &str = "organization_user_id";

/// The record a connector gets for `state`: every flattened property, keyed
/// by `organization_user_id`, with the state's version.
pub fn record_for(state: &UserState, extra: Vec<(String, String)>) -> ConsentRecord {
    let properties = flatten(state)
        .into_iter()
        .map(|(name, value)| Property {
            name,
            value: match value {
                PropertyValue::Null => Value::Null,
                PropertyValue::Bool(b) => Value::Boolean(b),
                PropertyValue::Number(n) => Value::Number(n),
                PropertyValue::Text(t) => Value::Text(t),
            },
        })
        .collect();
    ConsentRecord {
        key_name: KEY_PROPERTY.to_string(),
        key: state.organization_user_id.clone(),
        properties,
        metadata: RecordMetadata {
            state_version: state.version,
            updated_at: millis_to_rfc3339(state.updated_at_ms),
            extra,
        },
    }
}

/// The Didomi properties an integration's `mappings` read (`mappings[].value`).
pub fn mapped_properties(config: &Json) -> BTreeSet<String> {
    config
        .get("mappings")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("value").and_then(Json::as_str))
        .map(str::to_string)
        .collect()
}

/// Whether a change to `changed` properties alters what this integration
/// sends: no change in a mapped property, no delivery.
pub fn change_matters(mapped: &BTreeSet<String>, changed: &[String]) -> bool {
    changed.iter().any(|name| mapped.contains(name))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::consent::parse_body;

    fn state_after(events: &str) -> UserState {
        let events = parse_body(Some("application/json"), events.as_bytes()).unwrap();
        let mut state = UserState::new(events[0].user.organization_user_id.clone());
        for event in &events {
            state.apply(event);
        }
        state
    }

    #[test]
    fn a_record_carries_the_flattened_state_and_its_version() {
        let state = state_after(
            r#"[{"id": "e1", "created_at": "2026-11-23T10:00:00Z", "user": {"organization_user_id": "ann@example.com", "metadata": {"firstname": "Ann"}},
                "consents": {"purposes": [{"id": "newsletter", "enabled": true}], "channels": [{"id": "email", "enabled": null}]}}]"#,
        );
        let record = record_for(&state, vec![("delivery".into(), "7".into())]);
        assert_eq!(record.key, "ann@example.com");
        assert_eq!(record.key_name, "organization_user_id");
        assert_eq!(record.metadata.state_version, state.version);
        assert_eq!(record.metadata.updated_at, "2026-11-23T10:00:00.000Z");
        let find = |name: &str| {
            record
                .properties
                .iter()
                .find(|p| p.name == name)
                .map(|p| p.value.clone())
        };
        assert_eq!(
            find("consents_purposes_newsletter_enabled"),
            Some(Value::Boolean(true))
        );
        assert_eq!(find("consents_channels_email_enabled"), Some(Value::Null));
        assert_eq!(find("metadata_firstname"), Some(Value::Text("Ann".into())));
        assert_eq!(
            find("organization_user_id"),
            Some(Value::Text("ann@example.com".into()))
        );
    }

    #[test]
    fn only_mapped_changes_matter() {
        let mapped = mapped_properties(&json!({"mappings": [
            {"id": "NEWSLETTER", "value": "consents_purposes_newsletter_enabled"},
            {"id": "MAIL", "value": "organization_user_id"}
        ]}));
        assert!(change_matters(
            &mapped,
            &["consents_purposes_newsletter_enabled".into()]
        ));
        assert!(!change_matters(&mapped, &["metadata_firstname".into()]));
        assert!(!change_matters(&mapped, &[]));
        assert!(mapped_properties(&json!({})).is_empty());
    }
}
