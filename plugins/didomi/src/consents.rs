//! Mappings ↔ Didomi's consent structure: which Didomi consent a mapping
//! writes, what of it Didomi already holds, and the `consents` of the event
//! that writes the rest.

use std::collections::BTreeMap;

use prefsync_sdk::{ConsentRecord, Mapping, Value};
use serde_json::{Map, Value as Json, json};

/// The host fact naming where a property's value came from (see
/// `host/src/pipeline/write_back.rs`): absent, it came from Didomi.
const SOURCE_PREFIX: &str = "source:";

/// One Didomi consent a mapping writes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// `purposes.<id>.enabled`: a choice (true, false, or null = none made).
    PurposeEnabled(String),
    /// `purposes.<id>.enabled_li`: a legitimate-interest choice.
    PurposeEnabledLi(String),
    /// `purposes.<id>.values.<preference>`: a preference value (text).
    PurposeValue(String, String),
    /// `channels.<id>.enabled`: a choice.
    ChannelEnabled(String),
}

impl Target {
    /// Reads a mapping's `id`; the error says what is accepted.
    pub fn parse(id: &str) -> Result<Target, String> {
        let bad = || {
            format!(
                "`{id}` is not a Didomi consent this connector writes (expected purposes.<id>.enabled, \
                 purposes.<id>.enabled_li, purposes.<id>.values.<preference> or channels.<id>.enabled)"
            )
        };
        let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        if let Some(rest) = id.strip_prefix("purposes.") {
            if let Some((purpose, preference)) = rest.split_once(".values.") {
                return Ok(Target::PurposeValue(
                    nonempty(purpose).ok_or_else(bad)?,
                    nonempty(preference).ok_or_else(bad)?,
                ));
            }
            if let Some(purpose) = rest.strip_suffix(".enabled_li") {
                return Ok(Target::PurposeEnabledLi(nonempty(purpose).ok_or_else(bad)?));
            }
            if let Some(purpose) = rest.strip_suffix(".enabled") {
                return Ok(Target::PurposeEnabled(nonempty(purpose).ok_or_else(bad)?));
            }
        } else if let Some(channel) = id
            .strip_prefix("channels.")
            .and_then(|rest| rest.strip_suffix(".enabled"))
        {
            return Ok(Target::ChannelEnabled(nonempty(channel).ok_or_else(bad)?));
        }
        Err(bad())
    }

    /// The value as Didomi takes it: a choice is a boolean or null, a
    /// preference value text. `None` when the property's value does not fit.
    fn didomi_value(&self, value: &Value) -> Option<Json> {
        match (self, value) {
            (Target::PurposeValue(..), Value::Text(text)) => Some(json!(text)),
            (Target::PurposeValue(..), _) => None,
            (_, Value::Boolean(choice)) => Some(json!(choice)),
            (_, Value::Null) => Some(Json::Null),
            _ => None,
        }
    }

    /// What Didomi's user holds for this consent (`None` when nothing).
    fn held_by(&self, user: &Json) -> Option<Json> {
        let find = |list: &str, id: &str| -> Option<Json> {
            user.pointer(&format!("/consents/{list}"))?
                .as_array()?
                .iter()
                .find(|entry| entry.get("id").and_then(Json::as_str) == Some(id))
                .cloned()
        };
        match self {
            Target::PurposeEnabled(p) => find("purposes", p)?.get("enabled").cloned(),
            Target::PurposeEnabledLi(p) => find("purposes", p)?.get("enabled_li").cloned(),
            Target::PurposeValue(p, pref) => find("purposes", p)?
                .get("values")?
                .get(pref)?
                .get("value")
                .cloned(),
            Target::ChannelEnabled(c) => find("channels", c)?.get("enabled").cloned(),
        }
    }
}

/// One consent to write and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    pub target: Target,
    pub value: Json,
}

/// What a record has to write back: every mapped property whose value came
/// from outside Didomi (an integration's webhook), as Didomi takes it.
/// Properties that came from Didomi itself are never written back.
pub fn writes_from_elsewhere(mappings: &[Mapping], record: &ConsentRecord) -> Vec<Write> {
    let sources: BTreeMap<&str, &str> = record
        .metadata
        .extra
        .iter()
        .filter_map(|(key, value)| Some((key.strip_prefix(SOURCE_PREFIX)?, value.as_str())))
        .collect();
    let mut writes: Vec<Write> = mappings
        .iter()
        .filter(|m| sources.contains_key(m.value.as_str()))
        .filter_map(|m| {
            let target = Target::parse(&m.id).ok()?;
            let value = target.didomi_value(record.property(&m.value)?)?;
            Some(Write { target, value })
        })
        .collect();
    writes.sort_by(|a, b| a.target.cmp(&b.target));
    writes.dedup_by(|a, b| a.target == b.target);
    writes
}

/// The writes whose value Didomi's user (`None`: no such user) does not hold.
pub fn not_held(writes: Vec<Write>, user: Option<&Json>) -> Vec<Write> {
    writes
        .into_iter()
        .filter(|w| user.and_then(|u| w.target.held_by(u)).as_ref() != Some(&w.value))
        .collect()
}

/// The event's `consents`: only the written purposes, channels and values.
pub fn consents_body(writes: &[Write]) -> Json {
    let mut purposes: BTreeMap<&str, Map<String, Json>> = BTreeMap::new();
    let mut channels: BTreeMap<&str, Map<String, Json>> = BTreeMap::new();
    for write in writes {
        match &write.target {
            Target::PurposeEnabled(p) => {
                purposes
                    .entry(p)
                    .or_default()
                    .insert("enabled".into(), write.value.clone());
            }
            Target::PurposeEnabledLi(p) => {
                purposes
                    .entry(p)
                    .or_default()
                    .insert("enabled_li".into(), write.value.clone());
            }
            Target::PurposeValue(p, pref) => {
                let purpose = purposes.entry(p).or_default();
                let values = purpose
                    .entry("values")
                    .or_insert_with(|| Json::Object(Map::new()));
                if let Some(values) = values.as_object_mut() {
                    values.insert(pref.clone(), json!({"value": write.value}));
                }
            }
            Target::ChannelEnabled(c) => {
                channels
                    .entry(c)
                    .or_default()
                    .insert("enabled".into(), write.value.clone());
            }
        }
    }
    let with_id = |(id, mut fields): (&str, Map<String, Json>)| {
        fields.insert("id".into(), json!(id));
        Json::Object(fields)
    };
    let mut consents = Map::new();
    if !purposes.is_empty() {
        consents.insert(
            "purposes".into(),
            Json::Array(purposes.into_iter().map(with_id).collect()),
        );
    }
    if !channels.is_empty() {
        consents.insert(
            "channels".into(),
            Json::Array(channels.into_iter().map(with_id).collect()),
        );
    }
    Json::Object(consents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(id: &str, value: &str) -> Mapping {
        serde_json::from_value(json!({"id": id, "value": value})).unwrap()
    }

    #[test]
    fn mapping_ids_name_didomi_consents() {
        assert_eq!(
            Target::parse("purposes.news_letter.enabled"),
            Ok(Target::PurposeEnabled("news_letter".into()))
        );
        assert_eq!(
            Target::parse("purposes.ads.enabled_li"),
            Ok(Target::PurposeEnabledLi("ads".into()))
        );
        assert_eq!(
            Target::parse("purposes.newsletter.values.topics"),
            Ok(Target::PurposeValue("newsletter".into(), "topics".into()))
        );
        assert_eq!(
            Target::parse("channels.email.enabled"),
            Ok(Target::ChannelEnabled("email".into()))
        );
        for bad in [
            "vendors.google",
            "purposes..enabled",
            "channels.email",
            "purposes.x.values.",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_values_from_elsewhere_that_didomi_lacks_are_written() {
        let mappings = [
            mapping(
                "purposes.newsletter.enabled",
                "consents_purposes_newsletter_enabled",
            ),
            mapping(
                "purposes.newsletter.values.topics",
                "consents_purposes_newsletter_values_topics_value",
            ),
            mapping("channels.email.enabled", "consents_channels_email_enabled"),
            mapping("channels.sms.enabled", "consents_channels_sms_enabled"),
        ];
        let mut record = ConsentRecord::new(
            "organization_user_id",
            "ann@example.com",
            &[
                (
                    "consents_purposes_newsletter_enabled",
                    Value::Boolean(false),
                ),
                (
                    "consents_purposes_newsletter_values_topics_value",
                    Value::Text("news".into()),
                ),
                ("consents_channels_email_enabled", Value::Boolean(false)),
                ("consents_channels_sms_enabled", Value::Boolean(true)),
            ],
        );
        // The SMS choice came from Didomi: no source fact.
        record.metadata.extra = vec![
            ("write-id".into(), "x".into()),
            (
                "source:consents_purposes_newsletter_enabled".into(),
                "actito".into(),
            ),
            (
                "source:consents_purposes_newsletter_values_topics_value".into(),
                "actito".into(),
            ),
            (
                "source:consents_channels_email_enabled".into(),
                "actito".into(),
            ),
        ];
        let writes = writes_from_elsewhere(&mappings, &record);
        assert_eq!(writes.len(), 3);
        let didomi_user = json!({"consents": {
            "purposes": [{"id": "newsletter", "enabled": true, "values": {"topics": {"value": "news"}}}],
            "channels": [{"id": "email", "enabled": false}]
        }});
        let left = not_held(writes.clone(), Some(&didomi_user));
        assert_eq!(
            consents_body(&left),
            json!({"purposes": [{"id": "newsletter", "enabled": false}]})
        );
        assert_eq!(
            consents_body(&not_held(writes, None)),
            json!({
                "purposes": [{"id": "newsletter", "enabled": false, "values": {"topics": {"value": "news"}}}],
                "channels": [{"id": "email", "enabled": false}]
            })
        );
    }
}
