//! The integration's `mappings`: destination field `id` ← Didomi property `value`.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::types::{ConsentRecord, Value};

/// One entry of an integration's `mappings`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The destination's field (attribute, data field, column) to write.
    #[schemars(length(min = 1))]
    pub id: String,
    /// The Didomi property it is taken from (e.g. `consents_purposes_newsletter_enabled`).
    #[schemars(length(min = 1))]
    pub value: String,
}

/// A destination field with the value the record holds for it.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedField<'a> {
    /// The destination field name (the mapping's `id`).
    pub field: &'a str,
    /// The record's value for the mapped property.
    pub value: &'a Value,
}

/// The record's values for each mapping, in mapping order. A property the
/// user's state does not have at all is left out (the destination's field is
/// not touched); a property that is present but null is kept as
/// [`Value::Null`].
pub fn map_record<'a>(mappings: &'a [Mapping], record: &'a ConsentRecord) -> Vec<MappedField<'a>> {
    mappings
        .iter()
        .filter_map(|m| {
            record.property(&m.value).map(|value| MappedField {
                field: &m.id,
                value,
            })
        })
        .collect()
}

/// The mapped values as a JSON object, field → value.
pub fn mapped_json(
    mappings: &[Mapping],
    record: &ConsentRecord,
) -> serde_json::Map<String, serde_json::Value> {
    map_record(mappings, record)
        .into_iter()
        .map(|f| (f.field.to_string(), f.value.to_json()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(id: &str, value: &str) -> Mapping {
        Mapping {
            id: id.into(),
            value: value.into(),
        }
    }

    #[test]
    fn maps_present_properties_and_keeps_nulls() {
        let record = ConsentRecord::new(
            "organization_user_id",
            "a@example.com",
            &[
                ("organization_user_id", Value::Text("a@example.com".into())),
                ("consents_purposes_newsletter_enabled", Value::Boolean(true)),
                ("consents_channels_email_enabled", Value::Null),
            ],
        );
        let mappings = vec![
            mapping("NEWSLETTER", "consents_purposes_newsletter_enabled"),
            mapping("EMAIL_OK", "consents_channels_email_enabled"),
            mapping("SMS_OK", "consents_channels_sms_enabled"),
            mapping("MAIL", "organization_user_id"),
        ];
        let json = mapped_json(&mappings, &record);
        assert_eq!(
            serde_json::Value::Object(json),
            serde_json::json!({"NEWSLETTER": true, "EMAIL_OK": null, "MAIL": "a@example.com"})
        );
    }
}
