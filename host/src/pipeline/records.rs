//! From a user's merged state to what a connector receives, and whether a
//! change matters to an integration at all.

use std::collections::BTreeSet;

use serde_json::Value as Json;

use crate::consent::{PropertyValue, UserState, flatten};
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

/// `2026-11-23T10:00:00.000Z` for milliseconds since the Unix epoch.
pub fn millis_to_rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
}

/// The civil date (year, month 1–12, day 1–31) of a day counted from
/// 1970-01-01 (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::consent::{parse_body, parse_rfc3339};

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

    #[test]
    fn timestamps_round_trip() {
        for text in [
            "1970-01-01T00:00:00.000Z",
            "2024-02-29T23:59:59.999Z",
            "2026-11-23T10:00:00.000Z",
        ] {
            assert_eq!(millis_to_rfc3339(parse_rfc3339(text).unwrap()), text);
        }
    }
}
