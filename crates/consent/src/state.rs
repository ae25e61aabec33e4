//! A user's merged consent state, built from partial events with
//! field-level last-write-wins.
//!
//! Every field remembers the event that wrote it ([`Stamped`]). An event
//! overwrites a field only when its `(created_at_ms, event id)` is greater than
//! the field's, so events may arrive late, twice, or in any order and the state
//! still ends up as if they had been applied in `created_at` order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::event::{
    ChannelChange, ConsentEvent, EventStatus, EventUser, Field, PurposeChange, Vendors,
};

use crate::property_names as names;

/// A value and the event that wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamped<T> {
    /// The value.
    pub value: T,
    /// The writing event's `created_at`, in milliseconds since the epoch.
    pub at_ms: i64,
    /// The writing event's id; breaks ties between events of the same instant.
    pub event_id: String,
}

impl<T> Stamped<T> {
    /// Whether a write stamped (`at_ms`, `event_id`) comes after this one and
    /// so may replace it.
    pub fn is_older_than(&self, at_ms: i64, event_id: &str) -> bool {
        (self.at_ms, self.event_id.as_str()) < (at_ms, event_id)
    }
}

/// What is known about one purpose.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PurposeState {
    /// Consent; the inner `None` is an explicit "no choice".
    pub enabled: Option<Stamped<Option<bool>>>,
    /// Legitimate interest; the inner `None` is an explicit "no choice".
    pub enabled_li: Option<Stamped<Option<bool>>>,
    /// Preference id → value.
    pub values: BTreeMap<String, Stamped<String>>,
    /// Purpose metadata, key by key.
    pub metadata: BTreeMap<String, Stamped<Value>>,
}

impl PurposeState {
    fn is_empty(&self) -> bool {
        self.enabled.is_none()
            && self.enabled_li.is_none()
            && self.values.is_empty()
            && self.metadata.is_empty()
    }
}

/// What is known about one channel.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ChannelState {
    /// The inner `None` is an explicit "no choice".
    pub enabled: Option<Stamped<Option<bool>>>,
    /// Channel metadata, key by key.
    pub metadata: BTreeMap<String, Stamped<Value>>,
}

impl ChannelState {
    fn is_empty(&self) -> bool {
        self.enabled.is_none() && self.metadata.is_empty()
    }
}

/// Everything known about one user, merged from their confirmed events.
/// Persisted as JSON by the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserState {
    /// The key of the state; events for other users are not merged.
    pub organization_user_id: String,
    /// Didomi's user id, once an event has named it.
    pub user_id: Option<String>,
    /// `(created_at_ms, event id)` of the event that wrote `user_id`, so the
    /// newest naming wins whatever the arrival order. Absent in states saved
    /// before it existed (then the first newer-than-everything event sets it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id_written: Option<(i64, String)>,
    /// Bumped by one each time a value changes; unchanged by no-op events.
    pub version: u64,
    /// By purpose id.
    pub purposes: BTreeMap<String, PurposeState>,
    /// By channel id.
    pub channels: BTreeMap<String, ChannelState>,
    /// User metadata, key by key.
    pub metadata: BTreeMap<String, Stamped<Value>>,
    /// Vendor lists, written as a whole.
    pub vendors: Option<Stamped<Vendors>>,
    /// Country.
    pub country: Option<Stamped<String>>,
    /// TCF consent string.
    pub tcfcs: Option<Stamped<String>>,
    /// Latest `created_at_ms` of an event that wrote anything; 0 before any.
    pub updated_at_ms: i64,
}

/// Why an event was not merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Pending approval: it changes nothing until confirmed (which arrives as
    /// another event).
    PendingApproval,
    /// The event is about another `organization_user_id`.
    OtherUser,
}

/// What merging one event did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApplyResult {
    /// Some value changed (and `version` was bumped).
    pub changed: bool,
    /// Flattened property names whose value changed, sorted.
    pub changed_fields: Vec<String>,
    /// Some field took the event's stamp but kept its value (a newer event
    /// confirming it): nothing to send, but the state must still be saved so
    /// an older event cannot overwrite it later.
    pub restamped: bool,
    /// Set when the event was not merged at all.
    pub skipped: Option<SkipReason>,
}

impl ApplyResult {
    /// Whether the state differs from before and must be persisted.
    pub fn state_modified(&self) -> bool {
        self.changed || self.restamped
    }
}

impl UserState {
    /// An empty state for a user no event has been merged for yet.
    pub fn new(organization_user_id: impl Into<String>) -> Self {
        UserState {
            organization_user_id: organization_user_id.into(),
            user_id: None,
            user_id_written: None,
            version: 0,
            purposes: BTreeMap::new(),
            channels: BTreeMap::new(),
            metadata: BTreeMap::new(),
            vendors: None,
            country: None,
            tcfcs: None,
            updated_at_ms: 0,
        }
    }

    /// Merges a confirmed event, field by field, keeping for each field the
    /// write with the greatest `(created_at_ms, event id)`. Fields the event
    /// leaves out are untouched; an explicit `null` choice is a value.
    pub fn apply(&mut self, event: &ConsentEvent) -> ApplyResult {
        if let Some(reason) = self.skip_reason(event) {
            return ApplyResult {
                skipped: Some(reason),
                ..ApplyResult::default()
            };
        }
        let mut merge = Merge {
            at_ms: event.created_at_ms,
            event_id: &event.id,
            changed_fields: Vec::new(),
            restamped: false,
        };

        self.merge_user_id(event, &mut merge);
        self.merge_user_fields(&event.user, &mut merge);
        for change in &event.consents.purposes {
            self.merge_purpose(change, &mut merge);
        }
        for change in &event.consents.channels {
            self.merge_channel(change, &mut merge);
        }
        if let Some(vendors) = &event.consents.vendors {
            self.merge_vendors(vendors, &mut merge);
        }
        if let Some(tcfcs) = &event.consents.tcfcs
            && merge.write(&mut self.tcfcs, tcfcs.clone())
        {
            merge.changed_fields.push(names::TCFCS.to_string());
        }

        self.finish_merge(merge, event.created_at_ms)
    }

    /// Why `event` must not be merged into this state at all, if so.
    fn skip_reason(&self, event: &ConsentEvent) -> Option<SkipReason> {
        if event.status == EventStatus::PendingApproval {
            return Some(SkipReason::PendingApproval);
        }
        if event.user.organization_user_id != self.organization_user_id {
            return Some(SkipReason::OtherUser);
        }
        None
    }

    /// Didomi's user id (replaced when a user is deleted and recreated in
    /// Didomi) is the one named by the newest event, like any field.
    fn merge_user_id(&mut self, event: &ConsentEvent, merge: &mut Merge<'_>) {
        let Some(user_id) = &event.user.id else {
            return;
        };
        let newer = match &self.user_id_written {
            Some((at_ms, event_id)) => {
                (*at_ms, event_id.as_str()) < (event.created_at_ms, event.id.as_str())
            }
            // A state saved before the stamp existed.
            None => self.user_id.is_none() || event.created_at_ms >= self.updated_at_ms,
        };
        if newer {
            if self.user_id.as_ref() == Some(user_id) {
                merge.restamped = true;
            } else {
                self.user_id = Some(user_id.clone());
                merge.changed_fields.push("user_id".to_string());
            }
            self.user_id_written = Some((event.created_at_ms, event.id.clone()));
        }
    }

    /// The user's country and metadata.
    fn merge_user_fields(&mut self, user: &EventUser, merge: &mut Merge<'_>) {
        if let Some(country) = &user.country
            && merge.write(&mut self.country, country.clone())
        {
            merge.changed_fields.push(names::COUNTRY.to_string());
        }
        for (key, value) in &user.metadata {
            if merge.write_entry(&mut self.metadata, key, value.clone()) {
                merge.changed_fields.push(names::user_metadata(key));
            }
        }
    }

    fn merge_purpose(&mut self, change: &PurposeChange, merge: &mut Merge<'_>) {
        let id = change.id.as_str();
        // Taken out and put back only if non-empty, so an event that
        // writes nothing (too old, or all fields absent) adds no entry.
        let mut purpose = self.purposes.remove(id).unwrap_or_default();
        if let Field::Present(enabled) = change.enabled
            && merge.write(&mut purpose.enabled, enabled)
        {
            merge.changed_fields.push(names::purpose_enabled(id));
        }
        if let Field::Present(enabled_li) = change.enabled_li
            && merge.write(&mut purpose.enabled_li, enabled_li)
        {
            merge.changed_fields.push(names::purpose_enabled_li(id));
        }
        for (preference, value) in &change.values {
            if merge.write_entry(&mut purpose.values, preference, value.clone()) {
                merge
                    .changed_fields
                    .push(names::purpose_value(id, preference));
            }
        }
        for (key, value) in &change.metadata {
            if merge.write_entry(&mut purpose.metadata, key, value.clone()) {
                merge.changed_fields.push(names::purpose_metadata(id, key));
            }
        }
        if !purpose.is_empty() {
            self.purposes.insert(change.id.clone(), purpose);
        }
    }

    /// Like [`Self::merge_purpose`]: an empty channel adds no entry.
    fn merge_channel(&mut self, change: &ChannelChange, merge: &mut Merge<'_>) {
        let id = change.id.as_str();
        let mut channel = self.channels.remove(id).unwrap_or_default();
        if let Field::Present(enabled) = change.enabled
            && merge.write(&mut channel.enabled, enabled)
        {
            merge.changed_fields.push(names::channel_enabled(id));
        }
        for (key, value) in &change.metadata {
            if merge.write_entry(&mut channel.metadata, key, value.clone()) {
                merge.changed_fields.push(names::channel_metadata(id, key));
            }
        }
        if !channel.is_empty() {
            self.channels.insert(change.id.clone(), channel);
        }
    }

    /// The vendor lists are written as a whole, but changes are named list
    /// by list.
    fn merge_vendors(&mut self, vendors: &Vendors, merge: &mut Merge<'_>) {
        let before = self.vendors.as_ref().map(|v| v.value.clone());
        if merge.write(&mut self.vendors, vendors.clone()) {
            // Name only the lists that changed (all four when new).
            let new_lists = names::vendor_lists(vendors);
            match before.as_ref().map(names::vendor_lists) {
                Some(old_lists) => {
                    for ((name, new), (_, old)) in new_lists.into_iter().zip(old_lists) {
                        if new != old {
                            merge.changed_fields.push(name.to_string());
                        }
                    }
                }
                None => merge
                    .changed_fields
                    .extend(new_lists.iter().map(|(name, _)| name.to_string())),
            }
        }
    }

    /// Bumps `version` when a value changed and `updated_at_ms` when anything
    /// was written, and reports what the merge did.
    fn finish_merge(&mut self, merge: Merge<'_>, at_ms: i64) -> ApplyResult {
        let mut changed_fields = merge.changed_fields;
        changed_fields.sort();
        changed_fields.dedup();
        let changed = !changed_fields.is_empty();
        if changed {
            self.version += 1;
        }
        if changed || merge.restamped {
            self.updated_at_ms = self.updated_at_ms.max(at_ms);
        }
        ApplyResult {
            changed,
            changed_fields,
            restamped: merge.restamped,
            skipped: None,
        }
    }
}

impl UserState {
    /// Moves every field stamp later than `limit_ms` back to `to_ms` (and
    /// `updated_at_ms` with them); values and `version` are untouched, so
    /// nothing is delivered. For states written before future-dated events
    /// were refused: such a stamp would otherwise beat every later change.
    /// Returns how many stamps moved.
    pub fn clamp_stamps_after(&mut self, limit_ms: i64, to_ms: i64) -> usize {
        fn clamp<T>(stamp: &mut Stamped<T>, limit_ms: i64, to_ms: i64, moved: &mut usize) {
            if stamp.at_ms > limit_ms {
                stamp.at_ms = to_ms;
                *moved += 1;
            }
        }
        let mut moved = 0;
        for purpose in self.purposes.values_mut() {
            for stamp in [&mut purpose.enabled, &mut purpose.enabled_li]
                .into_iter()
                .flatten()
            {
                clamp(stamp, limit_ms, to_ms, &mut moved);
            }
            for stamp in purpose.values.values_mut() {
                clamp(stamp, limit_ms, to_ms, &mut moved);
            }
            for stamp in purpose.metadata.values_mut() {
                clamp(stamp, limit_ms, to_ms, &mut moved);
            }
        }
        for channel in self.channels.values_mut() {
            if let Some(stamp) = &mut channel.enabled {
                clamp(stamp, limit_ms, to_ms, &mut moved);
            }
            for stamp in channel.metadata.values_mut() {
                clamp(stamp, limit_ms, to_ms, &mut moved);
            }
        }
        for stamp in self.metadata.values_mut() {
            clamp(stamp, limit_ms, to_ms, &mut moved);
        }
        if let Some(stamp) = &mut self.vendors {
            clamp(stamp, limit_ms, to_ms, &mut moved);
        }
        for stamp in [&mut self.country, &mut self.tcfcs].into_iter().flatten() {
            clamp(stamp, limit_ms, to_ms, &mut moved);
        }
        if let Some((at_ms, _)) = &mut self.user_id_written
            && *at_ms > limit_ms
        {
            *at_ms = to_ms;
            moved += 1;
        }
        if self.updated_at_ms > limit_ms {
            self.updated_at_ms = to_ms;
        }
        moved
    }
}

/// One event's writes into a state.
struct Merge<'e> {
    at_ms: i64,
    event_id: &'e str,
    changed_fields: Vec<String>,
    restamped: bool,
}

impl Merge<'_> {
    fn stamp<T>(&self, value: T) -> Stamped<T> {
        Stamped {
            value,
            at_ms: self.at_ms,
            event_id: self.event_id.to_string(),
        }
    }

    /// Writes `value` into an optional field; true when the value changed.
    fn write<T: PartialEq>(&mut self, slot: &mut Option<Stamped<T>>, value: T) -> bool {
        match slot {
            Some(current) => self.overwrite(current, value),
            None => {
                *slot = Some(self.stamp(value));
                true
            }
        }
    }

    /// Writes `value` under `key`; true when the value changed.
    fn write_entry<T: PartialEq>(
        &mut self,
        map: &mut BTreeMap<String, Stamped<T>>,
        key: &str,
        value: T,
    ) -> bool {
        match map.get_mut(key) {
            Some(current) => self.overwrite(current, value),
            None => {
                map.insert(key.to_string(), self.stamp(value));
                true
            }
        }
    }

    fn overwrite<T: PartialEq>(&mut self, current: &mut Stamped<T>, value: T) -> bool {
        if !current.is_older_than(self.at_ms, self.event_id) {
            return false;
        }
        // The stamp moves even when the value is the same: a later event
        // confirming a value must still beat an older one arriving after it.
        current.at_ms = self.at_ms;
        current.event_id = self.event_id.to_string();
        if current.value == value {
            self.restamped = true;
            false
        } else {
            current.value = value;
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::parse_body;
    use serde_json::json;

    const USER: &str = "ada@example.com";

    /// An event for `USER` at `2026-11-23T10:00:<second>Z` with these consents.
    fn event(id: &str, second: u32, consents: Value) -> ConsentEvent {
        event_with_user(id, second, json!({"organization_user_id": USER}), consents)
    }

    fn event_with_user(id: &str, second: u32, user: Value, consents: Value) -> ConsentEvent {
        let body = json!({
            "id": id,
            "created_at": format!("2026-11-23T10:00:{second:02}Z"),
            "user": user,
            "consents": consents,
        });
        let mut events = parse_body(None, body.to_string().as_bytes()).expect("valid event");
        events.remove(0)
    }

    fn purpose(enabled: Value) -> Value {
        json!({"purposes": [{"id": "newsletter", "enabled": enabled}]})
    }

    fn enabled(state: &UserState, purpose: &str) -> Option<Option<bool>> {
        state
            .purposes
            .get(purpose)?
            .enabled
            .as_ref()
            .map(|s| s.value)
    }

    #[test]
    fn new_state_is_empty() {
        let state = UserState::new(USER);
        assert_eq!(state.organization_user_id, USER);
        assert_eq!(state.version, 0);
        assert_eq!(state.updated_at_ms, 0);
        assert!(state.purposes.is_empty() && state.user_id.is_none());
    }

    #[test]
    fn stamps_order_by_time_then_event_id() {
        let stamped = Stamped {
            value: 1,
            at_ms: 100,
            event_id: "b".to_string(),
        };
        assert!(stamped.is_older_than(101, "a"));
        assert!(stamped.is_older_than(100, "c"));
        assert!(!stamped.is_older_than(100, "b"));
        assert!(!stamped.is_older_than(100, "a"));
        assert!(!stamped.is_older_than(99, "z"));
    }

    #[test]
    fn apply_result_says_when_to_save() {
        assert!(!ApplyResult::default().state_modified());
        let restamped = ApplyResult {
            restamped: true,
            ..ApplyResult::default()
        };
        assert!(restamped.state_modified());
        let changed = ApplyResult {
            changed: true,
            ..ApplyResult::default()
        };
        assert!(changed.state_modified());
    }

    #[test]
    fn merges_a_full_event_and_names_what_changed() {
        let mut state = UserState::new(USER);
        let e = event_with_user(
            "e1",
            0,
            json!({"organization_user_id": USER, "id": "d-1", "country": "FR",
                   "metadata": {"plan": "pro"}}),
            json!({
                "purposes": [{"id": "email_marketing", "enabled": true, "enabled_li": false,
                              "values": {"topics": {"value": "a,b"}}, "metadata": {"src": "form"}}],
                "channels": [{"id": "email", "enabled": null, "metadata": {"k": 1}}],
                "vendors": {"enabled": ["v1", "v2"]},
                "tcfcs": "CP"
            }),
        );
        let result = state.apply(&e);
        assert!(result.changed);
        assert_eq!(
            result.changed_fields,
            vec![
                "consents_channels_email_enabled",
                "consents_channels_email_metadata_k",
                "consents_purposes_email_marketing_enabled",
                "consents_purposes_email_marketing_enabled_li",
                "consents_purposes_email_marketing_metadata_src",
                "consents_purposes_email_marketing_values_topics_value",
                "consents_tcfcs",
                "consents_vendors_disabled",
                "consents_vendors_disabled_li",
                "consents_vendors_enabled",
                "consents_vendors_enabled_li",
                "country",
                "metadata_plan",
                "user_id",
            ]
        );
        assert_eq!(state.version, 1);
        assert_eq!(state.updated_at_ms, e.created_at_ms);
        assert_eq!(state.user_id.as_deref(), Some("d-1"));
        assert_eq!(enabled(&state, "email_marketing"), Some(Some(true)));
        let channel = &state.channels["email"];
        assert_eq!(channel.enabled.as_ref().map(|s| s.value), Some(None));
        assert_eq!(channel.metadata["k"].event_id, "e1");
        assert_eq!(
            state.vendors.as_ref().unwrap().value.enabled,
            vec!["v1", "v2"]
        );
    }

    #[test]
    fn applying_the_same_event_twice_is_a_no_op() {
        let mut state = UserState::new(USER);
        let e = event("e1", 0, purpose(json!(true)));
        assert!(state.apply(&e).changed);
        let before = state.clone();
        let again = state.apply(&e);
        assert_eq!(again, ApplyResult::default());
        assert_eq!(state, before);
    }

    #[test]
    fn pending_approval_changes_nothing() {
        let mut state = UserState::new(USER);
        let mut e = event("e1", 0, purpose(json!(true)));
        e.status = EventStatus::PendingApproval;
        let result = state.apply(&e);
        assert_eq!(result.skipped, Some(SkipReason::PendingApproval));
        assert!(!result.changed && !result.state_modified());
        assert_eq!(state, UserState::new(USER));
    }

    #[test]
    fn events_for_another_user_are_not_merged() {
        let mut state = UserState::new("someone-else");
        let result = state.apply(&event("e1", 0, purpose(json!(true))));
        assert_eq!(result.skipped, Some(SkipReason::OtherUser));
        assert_eq!(state, UserState::new("someone-else"));
    }

    #[test]
    fn an_older_event_arriving_late_only_fills_what_the_newer_did_not_set() {
        let mut state = UserState::new(USER);
        let newer = event("e2", 30, purpose(json!(false)));
        let older = event(
            "e1",
            10,
            json!({"purposes": [{"id": "newsletter", "enabled": true, "enabled_li": true},
                                {"id": "analytics", "enabled": true}]}),
        );
        state.apply(&newer);
        let result = state.apply(&older);
        assert_eq!(enabled(&state, "newsletter"), Some(Some(false)));
        assert_eq!(
            state.purposes["newsletter"]
                .enabled
                .as_ref()
                .unwrap()
                .event_id,
            "e2"
        );
        assert_eq!(
            state.purposes["newsletter"]
                .enabled_li
                .as_ref()
                .map(|s| s.value),
            Some(Some(true))
        );
        assert_eq!(enabled(&state, "analytics"), Some(Some(true)));
        assert_eq!(
            result.changed_fields,
            vec![
                "consents_purposes_analytics_enabled",
                "consents_purposes_newsletter_enabled_li"
            ]
        );
        assert_eq!(state.version, 2);
        assert_eq!(state.updated_at_ms, newer.created_at_ms);
    }

    #[test]
    fn a_newer_event_confirming_a_value_still_beats_an_older_one() {
        let mut state = UserState::new(USER);
        state.apply(&event("e1", 10, purpose(json!(true))));
        let confirm = state.apply(&event("e3", 30, purpose(json!(true))));
        assert!(!confirm.changed && confirm.restamped && confirm.state_modified());
        assert_eq!(state.version, 1, "no value changed");
        let late = state.apply(&event("e2", 20, purpose(json!(false))));
        assert!(!late.state_modified());
        assert_eq!(enabled(&state, "newsletter"), Some(Some(true)));
    }

    #[test]
    fn ties_on_created_at_break_on_event_id() {
        let a = event("evt-a", 0, purpose(json!(true)));
        let b = event("evt-b", 0, purpose(json!(false)));
        for order in [[&a, &b], [&b, &a]] {
            let mut state = UserState::new(USER);
            for e in order {
                state.apply(e);
            }
            assert_eq!(enabled(&state, "newsletter"), Some(Some(false)));
            assert_eq!(
                state.purposes["newsletter"]
                    .enabled
                    .as_ref()
                    .unwrap()
                    .event_id,
                "evt-b"
            );
        }
    }

    #[test]
    fn version_bumps_only_when_a_value_changes() {
        let mut state = UserState::new(USER);
        state.apply(&event("e1", 0, purpose(json!(true))));
        state.apply(&event("e2", 1, purpose(json!(true))));
        assert_eq!(state.version, 1);
        state.apply(&event("e3", 2, purpose(json!(false))));
        assert_eq!(state.version, 2);
        state.apply(&event("e4", 3, json!({})));
        assert_eq!(state.version, 2);
        assert_eq!(state.updated_at_ms, event("e3", 2, json!({})).created_at_ms);
    }

    #[test]
    fn explicit_null_overwrites_and_absent_touches_nothing() {
        let mut state = UserState::new(USER);
        state.apply(&event("e1", 0, purpose(json!(true))));
        let absent = state.apply(&event(
            "e2",
            1,
            json!({"purposes": [{"id": "newsletter", "enabled_li": false}]}),
        ));
        assert_eq!(
            absent.changed_fields,
            vec!["consents_purposes_newsletter_enabled_li"]
        );
        assert_eq!(enabled(&state, "newsletter"), Some(Some(true)));
        let null = state.apply(&event("e3", 2, purpose(Value::Null)));
        assert_eq!(
            null.changed_fields,
            vec!["consents_purposes_newsletter_enabled"]
        );
        assert_eq!(enabled(&state, "newsletter"), Some(None));
        // A purpose with nothing present adds no entry.
        state.apply(&event("e4", 3, json!({"purposes": [{"id": "empty"}]})));
        assert!(!state.purposes.contains_key("empty"));
    }

    #[test]
    fn metadata_merges_key_by_key_and_vendors_as_a_whole() {
        let mut state = UserState::new(USER);
        let user = |metadata: Value| json!({"organization_user_id": USER, "metadata": metadata});
        state.apply(&event_with_user(
            "e1",
            0,
            user(json!({"a": 1, "b": 2})),
            json!({"vendors": {"enabled": ["x"], "disabled": ["y"]}}),
        ));
        let result = state.apply(&event_with_user(
            "e2",
            1,
            user(json!({"b": 3, "c": null})),
            json!({"vendors": {"enabled": ["x"]}}),
        ));
        assert_eq!(state.metadata["a"].value, json!(1));
        assert_eq!(state.metadata["b"].value, json!(3));
        assert_eq!(state.metadata["c"].value, Value::Null);
        let vendors = &state.vendors.as_ref().unwrap().value;
        assert_eq!(vendors.enabled, vec!["x"]);
        assert!(
            vendors.disabled.is_empty(),
            "the whole vendor object is replaced"
        );
        assert_eq!(
            result.changed_fields,
            vec!["consents_vendors_disabled", "metadata_b", "metadata_c"]
        );
    }

    #[test]
    fn user_id_is_set_once_and_replaced_only_by_a_newer_event() {
        let mut state = UserState::new(USER);
        let with_id = |id: &str, second: u32, user_id: &str| {
            event_with_user(
                id,
                second,
                json!({"organization_user_id": USER, "id": user_id}),
                purpose(json!(true)),
            )
        };
        state.apply(&with_id("e2", 20, "d-new"));
        state.apply(&with_id("e1", 10, "d-old"));
        assert_eq!(state.user_id.as_deref(), Some("d-new"));
        let result = state.apply(&with_id("e3", 30, "d-newer"));
        assert!(result.changed_fields.contains(&"user_id".to_string()));
        assert_eq!(state.user_id.as_deref(), Some("d-newer"));
    }

    #[test]
    fn the_newest_user_id_wins_in_any_arrival_order() {
        let with_id = |id: &str, second: u32, user_id: Option<&str>| {
            let mut user = json!({"organization_user_id": USER});
            if let Some(user_id) = user_id {
                user["id"] = json!(user_id);
            }
            event_with_user(id, second, user, purpose(json!(true)))
        };
        // What the fuzzer found: e2 (no user id) moved `updated_at` past e3,
        // so e3's id was dropped in one order and kept in the other.
        let events = [
            with_id("e1", 0, Some("d-a")),
            with_id("e2", 20, None),
            with_id("e3", 10, Some("d-b")),
            with_id("e4", 10, Some("d-c")),
        ];
        let mut orders = vec![vec![0, 1, 2, 3], vec![3, 2, 1, 0], vec![1, 3, 0, 2]];
        orders.push(vec![2, 0, 3, 1]);
        for order in orders {
            let mut state = UserState::new(USER);
            for index in &order {
                state.apply(&events[*index]);
            }
            // e4 and e3 share an instant; the greater event id breaks the tie.
            assert_eq!(state.user_id.as_deref(), Some("d-c"), "order {order:?}");
        }
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut state = UserState::new(USER);
        state.apply(&event(
            "e1",
            0,
            json!({"purposes": [{"id": "p", "enabled": null, "values": {"v": {"value": ""}}}],
                   "vendors": {"enabled": ["x"]}}),
        ));
        let text = serde_json::to_string(&state).unwrap();
        let back: UserState = serde_json::from_str(&text).unwrap();
        assert_eq!(back, state);
    }

    #[test]
    fn clamped_future_stamps_let_later_changes_win() {
        let mut future = event_with_user(
            "from-the-future",
            0,
            json!({"organization_user_id": USER, "country": "FR", "metadata": {"tier": "gold"}}),
            json!({
                "purposes": [{"id": "newsletter", "enabled": true, "enabled_li": true,
                              "values": {"topics": {"value": "a"}}, "metadata": {"m": 1}}],
                "channels": [{"id": "email", "enabled": true, "metadata": {"c": 1}}],
                "vendors": {"enabled": ["v"]},
                "tcfcs": "CP"
            }),
        );
        future.created_at_ms = crate::parse_rfc3339("9999-12-31T23:59:59Z").unwrap();
        let mut state = UserState::new(USER);
        state.apply(&future);
        let withdrawal = event("withdrawal", 30, purpose(json!(false)));
        let mut pinned = state.clone();
        assert!(!pinned.apply(&withdrawal).changed, "the future stamp wins");

        let repair_at = withdrawal.created_at_ms - 1_000;
        let before = state.clone();
        // Every stamp of that event: 2 purpose choices, a value, 2 metadata,
        // a channel choice, user metadata, vendors, country, tcfcs.
        assert_eq!(state.clamp_stamps_after(repair_at + 300_000, repair_at), 10);
        assert_eq!(state.version, before.version, "values untouched");
        assert_eq!(enabled(&state, "newsletter"), Some(Some(true)));
        assert_eq!(state.updated_at_ms, repair_at);
        assert_eq!(state.clamp_stamps_after(repair_at + 300_000, repair_at), 0);

        assert!(state.apply(&withdrawal).changed, "a later change wins now");
        assert_eq!(enabled(&state, "newsletter"), Some(Some(false)));
        // Stamps within the limit are left alone.
        assert_eq!(state.clamp_stamps_after(i64::MAX, 0), 0);
    }
}
