//! Consent: Didomi events in, one merged state per user, flat property names out.
//!
//! - [`event`] parses what `POST /v1/events` receives (events, webhook
//!   envelopes, lists, NDJSON) into [`ConsentEvent`]s. An event is *partial*: it
//!   carries only the purposes, channels, metadata keys, vendors, country and
//!   TCF string it sets; a field it leaves out is [`Field::Absent`], which is
//!   not the same as an explicit `null` ("no choice").
//! - [`state`] merges events into a [`UserState`], keyed by
//!   `organization_user_id`: purposes and channels by id, metadata key by key,
//!   vendors as a whole. Each field keeps the write with the greatest
//!   `(created_at, event id)` (last-write-wins per field, ties broken on the
//!   event id), so late, repeated or reordered events converge on the same
//!   state. Only confirmed events are merged.
//! - [`flatten`] names the state's values the way integration mappings do: the
//!   path joined with `_`, lists keyed by id (`consents_purposes_<id>_enabled`,
//!   `metadata_<key>`, …). Ids may contain `_`, so a single name is resolved by
//!   walking the state, never by splitting it.
//! - [`inbound`] turns a change a destination reports (a webhook) into an
//!   event, so it merges like any other.
//! - [`time`] reads and writes the strict RFC 3339 timestamps all of it uses.
//!
//! The crate is pure: no I/O, no clock, no async. Its dependencies are data
//! libraries only, so that stays true without anyone watching.

pub mod event;
pub mod flatten;
pub mod inbound;
mod property_names;
pub mod state;
pub mod time;

pub use event::{
    Batch, ChannelChange, ConsentEvent, EventError, EventStatus, EventUser, Field, PartialConsents,
    PurposeChange, Vendors, parse_batch, parse_batch_until, parse_body,
};
pub use flatten::{PropertyValue, flatten, resolve, writers};
pub use inbound::{InboundError, event_for_update};
pub use state::{ApplyResult, ChannelState, PurposeState, SkipReason, Stamped, UserState};
pub use time::{TimestampError, millis_to_rfc3339, parse_rfc3339};
