//! The property names integration mappings refer to (`value` in a mapping),
//! and their values for a user.
//!
//! A name is the state's path joined with `_`, lists of `{id, …}` keyed by
//! their id: `consents_purposes_<purpose>_enabled`, `metadata_<key>`, … Ids
//! and keys may contain `_`, so two paths can spell the same name (purpose
//! `a` with metadata key `b_enabled`, and purpose `a_metadata_b`'s `enabled`).
//! The rule for that: the longer id wins. [`flatten`] and [`resolve`] both
//! follow it, so they always agree.

use std::collections::BTreeMap;

use serde_json::Value;

use super::state::{ChannelState, PurposeState, Stamped, UserState};
use crate::property_names as names;

/// A property's value, before the host turns it into the runtime's record type.
#[derive(Debug, Clone, PartialEq)]
pub enum PropertyValue {
    /// An explicit "no value" (a `null` choice or metadata value).
    Null,
    /// A consent choice or a boolean metadata value.
    Bool(bool),
    /// A numeric metadata value.
    Number(f64),
    /// Ids, text, joined vendor lists, and metadata lists/objects as compact JSON.
    Text(String),
}

impl PropertyValue {
    /// How a metadata value reads as a property: scalars map directly, lists
    /// and objects become their compact JSON text (destinations take scalars).
    pub fn from_json(value: &Value) -> Self {
        match value {
            Value::Null => PropertyValue::Null,
            Value::Bool(b) => PropertyValue::Bool(*b),
            // Every JSON number has an f64 reading (large integers lose precision).
            Value::Number(n) => n
                .as_f64()
                .map_or(PropertyValue::Null, PropertyValue::Number),
            Value::String(s) => PropertyValue::Text(s.clone()),
            Value::Array(_) | Value::Object(_) => PropertyValue::Text(value.to_string()),
        }
    }

    fn choice(value: Option<bool>) -> Self {
        value.map_or(PropertyValue::Null, PropertyValue::Bool)
    }
}

/// Every property the state has a value for. Fields never written are left
/// out (absent), unlike an explicit `null` choice, which is [`PropertyValue::Null`].
pub fn flatten(state: &UserState) -> BTreeMap<String, PropertyValue> {
    let mut out = BTreeMap::new();
    walk(state, &mut |name, value, _| {
        out.insert(name, value);
    });
    out
}

/// The id of the event that last wrote each property (the ids a user's state
/// was given without an event, `organization_user_id`, have none). Event ids
/// tell where a value came from: an inbound webhook's start `webhook:`.
pub fn writers(state: &UserState) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(state, &mut |name, _, writer| match writer {
        Some(event_id) => {
            out.insert(name, event_id.to_string());
        }
        // A later entry of the same name wins in `flatten`; so here.
        None => {
            out.remove(&name);
        }
    });
    out
}

/// Calls `put` with every property's name, value and writing event, in an
/// order where a later entry of the same name replaces an earlier one.
fn walk(state: &UserState, put: &mut dyn FnMut(String, PropertyValue, Option<&str>)) {
    let mut out = Inserter(put);
    out.insert(
        names::ORGANIZATION_USER_ID.to_string(),
        PropertyValue::Text(state.organization_user_id.clone()),
        None,
    );
    if let Some(user_id) = &state.user_id {
        out.insert(
            names::USER_ID.to_string(),
            PropertyValue::Text(user_id.clone()),
            state.user_id_written.as_ref().map(|(_, id)| id.as_str()),
        );
    }
    if let Some(country) = &state.country {
        out.insert(
            names::COUNTRY.to_string(),
            PropertyValue::Text(country.value.clone()),
            Some(&country.event_id),
        );
    }
    if let Some(tcfcs) = &state.tcfcs {
        out.insert(
            names::TCFCS.to_string(),
            PropertyValue::Text(tcfcs.value.clone()),
            Some(&tcfcs.event_id),
        );
    }
    if let Some(vendors) = &state.vendors {
        for (name, list) in names::vendor_lists(&vendors.value) {
            out.insert(
                name.to_string(),
                PropertyValue::Text(list.join(",")),
                Some(&vendors.event_id),
            );
        }
    }
    for (key, value) in &state.metadata {
        out.insert(
            names::user_metadata(key),
            PropertyValue::from_json(&value.value),
            Some(&value.event_id),
        );
    }

    // Shorter ids first, so that where two ids spell the same name the longer
    // id's entry is inserted last and wins, as in `resolve`.
    let mut purposes: Vec<(&String, &PurposeState)> = state.purposes.iter().collect();
    purposes.sort_by_key(|(id, _)| id.len());
    for (id, purpose) in purposes {
        if let Some(enabled) = &purpose.enabled {
            out.insert(
                names::purpose_enabled(id),
                PropertyValue::choice(enabled.value),
                Some(&enabled.event_id),
            );
        }
        if let Some(enabled_li) = &purpose.enabled_li {
            out.insert(
                names::purpose_enabled_li(id),
                PropertyValue::choice(enabled_li.value),
                Some(&enabled_li.event_id),
            );
        }
        for (preference, value) in &purpose.values {
            out.insert(
                names::purpose_value(id, preference),
                PropertyValue::Text(value.value.clone()),
                Some(&value.event_id),
            );
        }
        for (key, value) in &purpose.metadata {
            out.insert(
                names::purpose_metadata(id, key),
                PropertyValue::from_json(&value.value),
                Some(&value.event_id),
            );
        }
    }
    let mut channels: Vec<(&String, &ChannelState)> = state.channels.iter().collect();
    channels.sort_by_key(|(id, _)| id.len());
    for (id, channel) in channels {
        if let Some(enabled) = &channel.enabled {
            out.insert(
                names::channel_enabled(id),
                PropertyValue::choice(enabled.value),
                Some(&enabled.event_id),
            );
        }
        for (key, value) in &channel.metadata {
            out.insert(
                names::channel_metadata(id, key),
                PropertyValue::from_json(&value.value),
                Some(&value.event_id),
            );
        }
    }
}

/// `put`, called like a map's `insert`.
struct Inserter<'a>(&'a mut dyn FnMut(String, PropertyValue, Option<&str>));

impl Inserter<'_> {
    fn insert(&mut self, name: String, value: PropertyValue, writer: Option<&str>) {
        (self.0)(name, value, writer)
    }
}

/// The value of one property, or `None` if the state has none. Walks the
/// state: for `consents_purposes_<rest>` it tries each purpose whose id is a
/// prefix of `rest` ending at an `_`, longest first, so ids containing `_` are
/// found whole.
pub fn resolve(state: &UserState, property: &str) -> Option<PropertyValue> {
    match property {
        names::ORGANIZATION_USER_ID => {
            return Some(PropertyValue::Text(state.organization_user_id.clone()));
        }
        names::USER_ID => return state.user_id.clone().map(PropertyValue::Text),
        names::COUNTRY => return text(state.country.as_ref()),
        names::TCFCS => return text(state.tcfcs.as_ref()),
        _ => {}
    }
    if property.starts_with(names::VENDORS) {
        let vendors = &state.vendors.as_ref()?.value;
        return names::vendor_lists(vendors)
            .into_iter()
            .find(|(name, _)| *name == property)
            .map(|(_, list)| PropertyValue::Text(list.join(",")));
    }
    if let Some(key) = property.strip_prefix(names::METADATA) {
        return state
            .metadata
            .get(key)
            .map(|value| PropertyValue::from_json(&value.value));
    }
    if let Some(rest) = property.strip_prefix(names::PURPOSES) {
        return owners(&state.purposes, rest)
            .find_map(|(purpose, field)| purpose_property(purpose, field));
    }
    if let Some(rest) = property.strip_prefix(names::CHANNELS) {
        return owners(&state.channels, rest)
            .find_map(|(channel, field)| channel_property(channel, field));
    }
    None
}

fn text(value: Option<&Stamped<String>>) -> Option<PropertyValue> {
    value.map(|stamped| PropertyValue::Text(stamped.value.clone()))
}

/// The entries whose id starts `rest` and is followed by `_`, longest id
/// first, each with the rest of the name after that `_`.
fn owners<'a, T>(
    entries: &'a BTreeMap<String, T>,
    rest: &'a str,
) -> impl Iterator<Item = (&'a T, &'a str)> {
    rest.match_indices('_')
        .rev()
        .filter_map(move |(index, _)| Some((entries.get(&rest[..index])?, &rest[index + 1..])))
}

fn purpose_property(purpose: &PurposeState, field: &str) -> Option<PropertyValue> {
    match field {
        "enabled" => purpose
            .enabled
            .as_ref()
            .map(|s| PropertyValue::choice(s.value)),
        "enabled_li" => purpose
            .enabled_li
            .as_ref()
            .map(|s| PropertyValue::choice(s.value)),
        _ => {
            if let Some(key) = field.strip_prefix("metadata_") {
                purpose
                    .metadata
                    .get(key)
                    .map(|s| PropertyValue::from_json(&s.value))
            } else {
                let preference = field.strip_prefix("values_")?.strip_suffix("_value")?;
                purpose
                    .values
                    .get(preference)
                    .map(|s| PropertyValue::Text(s.value.clone()))
            }
        }
    }
}

fn channel_property(channel: &ChannelState, field: &str) -> Option<PropertyValue> {
    if field == "enabled" {
        return channel
            .enabled
            .as_ref()
            .map(|s| PropertyValue::choice(s.value));
    }
    let key = field.strip_prefix("metadata_")?;
    channel
        .metadata
        .get(key)
        .map(|s| PropertyValue::from_json(&s.value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::parse_body;
    use serde_json::json;

    const USER: &str = "ada@example.com";

    fn state_from(events: Value) -> UserState {
        let mut state = UserState::new(USER);
        let events = parse_body(None, events.to_string().as_bytes()).expect("valid events");
        for event in &events {
            state.apply(event);
        }
        state
    }

    fn full_state() -> UserState {
        state_from(json!([{
            "id": "e1",
            "created_at": "2026-11-23T10:00:00Z",
            "user": {"organization_user_id": USER, "id": "d-1", "country": "FR",
                     "metadata": {"first_name": "Ada", "age": 36, "vip": true, "gone": null,
                                  "tags": ["a", "b"], "address": {"city": "Paris"}}},
            "consents": {
                "purposes": [
                    {"id": "email_marketing", "enabled": true, "enabled_li": null,
                     "values": {"topics": {"value": "news,offers"}, "freq_pref": {"value": "weekly"}},
                     "metadata": {"source": "form"}},
                    {"id": "email", "enabled": false},
                    {"id": "analytics", "enabled_li": true}
                ],
                "channels": [{"id": "email", "enabled": null, "metadata": {"double_opt_in": true}},
                             {"id": "push_web", "enabled": true}],
                "vendors": {"enabled": ["google", "meta"], "disabled": ["x"]},
                "tcfcs": "CPc"
            }
        }]))
    }

    fn text(s: &str) -> PropertyValue {
        PropertyValue::Text(s.to_string())
    }

    #[test]
    fn metadata_values_map_to_properties() {
        assert_eq!(PropertyValue::from_json(&Value::Null), PropertyValue::Null);
        assert_eq!(
            PropertyValue::from_json(&json!(true)),
            PropertyValue::Bool(true)
        );
        assert_eq!(
            PropertyValue::from_json(&json!(2.5)),
            PropertyValue::Number(2.5)
        );
        assert_eq!(
            PropertyValue::from_json(&json!(7)),
            PropertyValue::Number(7.0)
        );
        assert_eq!(PropertyValue::from_json(&json!("x")), text("x"));
        assert_eq!(
            PropertyValue::from_json(&json!([1, "a"])),
            text("[1,\"a\"]")
        );
        assert_eq!(
            PropertyValue::from_json(&json!({"k": [true]})),
            text("{\"k\":[true]}")
        );
    }

    #[test]
    fn flatten_names_every_known_field() {
        let flat = flatten(&full_state());
        let expected: BTreeMap<String, PropertyValue> = [
            ("organization_user_id", text(USER)),
            ("user_id", text("d-1")),
            ("country", text("FR")),
            ("metadata_first_name", text("Ada")),
            ("metadata_age", PropertyValue::Number(36.0)),
            ("metadata_vip", PropertyValue::Bool(true)),
            ("metadata_gone", PropertyValue::Null),
            ("metadata_tags", text("[\"a\",\"b\"]")),
            ("metadata_address", text("{\"city\":\"Paris\"}")),
            (
                "consents_purposes_email_marketing_enabled",
                PropertyValue::Bool(true),
            ),
            (
                "consents_purposes_email_marketing_enabled_li",
                PropertyValue::Null,
            ),
            (
                "consents_purposes_email_marketing_values_topics_value",
                text("news,offers"),
            ),
            (
                "consents_purposes_email_marketing_values_freq_pref_value",
                text("weekly"),
            ),
            (
                "consents_purposes_email_marketing_metadata_source",
                text("form"),
            ),
            (
                "consents_purposes_email_enabled",
                PropertyValue::Bool(false),
            ),
            (
                "consents_purposes_analytics_enabled_li",
                PropertyValue::Bool(true),
            ),
            ("consents_channels_email_enabled", PropertyValue::Null),
            (
                "consents_channels_email_metadata_double_opt_in",
                PropertyValue::Bool(true),
            ),
            (
                "consents_channels_push_web_enabled",
                PropertyValue::Bool(true),
            ),
            ("consents_vendors_enabled", text("google,meta")),
            ("consents_vendors_disabled", text("x")),
            ("consents_vendors_enabled_li", text("")),
            ("consents_vendors_disabled_li", text("")),
            ("consents_tcfcs", text("CPc")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(flat, expected);
    }

    #[test]
    fn absent_fields_are_left_out() {
        let flat = flatten(&UserState::new(USER));
        assert_eq!(flat.len(), 1);
        assert_eq!(flat["organization_user_id"], text(USER));
        let state = full_state();
        for missing in [
            "consents_purposes_email_enabled_li",
            "consents_purposes_analytics_enabled",
            "consents_channels_push_web_metadata_x",
            "metadata_unknown",
            "consents_purposes_unknown_enabled",
        ] {
            assert_eq!(resolve(&state, missing), None, "{missing}");
            assert!(!flatten(&state).contains_key(missing), "{missing}");
        }
        assert_eq!(resolve(&UserState::new(USER), "user_id"), None);
        assert_eq!(
            resolve(&UserState::new(USER), "consents_vendors_enabled"),
            None
        );
    }

    #[test]
    fn resolve_finds_ids_containing_underscores() {
        let state = full_state();
        assert_eq!(
            resolve(&state, "consents_purposes_email_marketing_enabled"),
            Some(PropertyValue::Bool(true))
        );
        assert_eq!(
            resolve(&state, "consents_purposes_email_enabled"),
            Some(PropertyValue::Bool(false))
        );
        assert_eq!(
            resolve(
                &state,
                "consents_purposes_email_marketing_values_freq_pref_value"
            ),
            Some(text("weekly"))
        );
        assert_eq!(
            resolve(&state, "consents_channels_push_web_enabled"),
            Some(PropertyValue::Bool(true))
        );
        assert_eq!(resolve(&state, "metadata_first_name"), Some(text("Ada")));
        assert_eq!(resolve(&state, "consents_purposes_email_marketing"), None);
        assert_eq!(resolve(&state, "consents_purposes_"), None);
        assert_eq!(resolve(&state, "consents_vendors_other"), None);
        assert_eq!(resolve(&state, "nonsense"), None);
    }

    #[test]
    fn when_two_ids_spell_the_same_name_the_longer_id_wins() {
        // Purpose `a` with metadata key `b_enabled`, and purpose `a_metadata_b`
        // with `enabled`, both spell `consents_purposes_a_metadata_b_enabled`.
        let state = state_from(json!([{
            "id": "e1",
            "created_at": "2026-11-23T10:00:00Z",
            "user": {"organization_user_id": USER},
            "consents": {
                "purposes": [
                    {"id": "a", "enabled": true, "metadata": {"b_enabled": "from a"}},
                    {"id": "a_metadata_b", "enabled": false}
                ],
                "channels": [
                    {"id": "sms", "metadata": {"x_enabled": 1}},
                    {"id": "sms_metadata_x", "enabled": true}
                ]
            }
        }]));
        let name = "consents_purposes_a_metadata_b_enabled";
        assert_eq!(resolve(&state, name), Some(PropertyValue::Bool(false)));
        assert_eq!(flatten(&state)[name], PropertyValue::Bool(false));
        let name = "consents_channels_sms_metadata_x_enabled";
        assert_eq!(resolve(&state, name), Some(PropertyValue::Bool(true)));
        assert_eq!(flatten(&state)[name], PropertyValue::Bool(true));
        // The shorter id's other fields are still found.
        assert_eq!(
            resolve(&state, "consents_purposes_a_enabled"),
            Some(PropertyValue::Bool(true))
        );
    }

    #[test]
    fn resolve_agrees_with_flatten_for_every_key() {
        let collisions = state_from(json!([{
            "id": "e1",
            "created_at": "2026-11-23T10:00:00Z",
            "user": {"organization_user_id": USER, "metadata": {"consents_purposes_x": 1}},
            "consents": {"purposes": [
                {"id": "a", "values": {"b_value_values_c": {"value": "short"}}},
                {"id": "a_values_b_value", "values": {"c": {"value": "long"}}},
                {"id": "_", "enabled": true},
                {"id": "x_", "metadata": {"": "empty key"}}
            ]}
        }]));
        for state in [full_state(), collisions, UserState::new(USER)] {
            let flat = flatten(&state);
            for (name, value) in &flat {
                assert_eq!(resolve(&state, name).as_ref(), Some(value), "{name}");
            }
        }
    }
}
