//! Parsing what arrives at `POST /v1/events` into [`ConsentEvent`]s.
//!
//! A body is one of: a Didomi consent event, a Didomi webhook envelope
//! (`{type, parameters, regulation?}`), a JSON list of either, or NDJSON (one
//! of those per line). Parsing is all-or-nothing: the first problem rejects the
//! whole body, and the error says where it is (line and column for syntax,
//! item and field path for content), so the sender can fix it and resend.
//!
//! Values are read from a parsed `serde_json::Value` by hand rather than with
//! derived deserializers, because a derived error cannot name the item and the
//! field path, and because "absent" and "null" mean different things here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::time::parse_rfc3339;

/// The content types `POST /v1/events` accepts. A missing one means JSON.
pub const ACCEPTED_CONTENT_TYPES: [&str; 3] = [
    "application/json",
    "application/x-ndjson",
    "application/jsonl",
];

/// Envelope types that carry a consent event in `parameters`.
const ENVELOPE_TYPES: [&str; 6] = [
    "event.created",
    "event.updated",
    "event.deleted",
    "user.created",
    "user.updated",
    "user.deleted",
];

/// Why a body was rejected. Callers branch on the variant to pick the HTTP
/// status (415 for the content type, 400 for the rest).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The `Content-Type` is not one of [`ACCEPTED_CONTENT_TYPES`] (or names a
    /// charset other than UTF-8).
    #[error(
        "unsupported content type `{received}` (accepted: {}, UTF-8)",
        ACCEPTED_CONTENT_TYPES.join(", ")
    )]
    UnsupportedContentType {
        /// The header as received.
        received: String,
    },
    /// The body (or one NDJSON line) is not JSON.
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line in the body.
        line: usize,
        /// 1-based column within that line.
        column: usize,
        /// What the JSON parser expected, without its own position suffix.
        message: String,
    },
    /// The JSON is well-formed but an item is not an acceptable event.
    #[error("{}", describe_invalid(at, field, message))]
    Invalid {
        /// Which item: `body`, `[2]` (list index), `line 3` (NDJSON), `line 3[1]`.
        at: String,
        /// Path of the field inside the item, e.g. `user.organization_user_id`
        /// or `consents.purposes[0].enabled`; empty when the item itself is wrong.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

fn describe_invalid(at: &str, field: &str, message: &str) -> String {
    if field.is_empty() {
        format!("{at}: {message}")
    } else {
        format!("{at}: `{field}` {message}")
    }
}

/// Whether the partial event carries a field at all. `Present(None)` for a
/// choice is Didomi's explicit `null` ("no choice"), which overwrites a stored
/// value; `Absent` leaves it alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Field<T> {
    /// Not in the event.
    #[default]
    Absent,
    /// In the event, with this value (which may itself be "nothing").
    Present(T),
}

impl<T> Field<T> {
    /// The value, if the event carries the field.
    pub fn present(&self) -> Option<&T> {
        match self {
            Field::Absent => None,
            Field::Present(value) => Some(value),
        }
    }
}

/// Whether an event is final. Only confirmed events change a user's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// The default when `status` is absent.
    Confirmed,
    /// Waiting for the user to confirm (double opt-in); merges nothing.
    PendingApproval,
}

impl EventStatus {
    /// The name Didomi gives it (and the event log stores).
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Confirmed => "confirmed",
            EventStatus::PendingApproval => "pending_approval",
        }
    }

    pub fn parse(name: &str) -> Option<EventStatus> {
        [EventStatus::Confirmed, EventStatus::PendingApproval]
            .into_iter()
            .find(|status| status.as_str() == name)
    }
}

/// A stored event status outside the set; the text is not repeated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a known event status (expected one of: confirmed, pending_approval)")]
pub struct UnknownEventStatus;

impl std::str::FromStr for EventStatus {
    type Err = UnknownEventStatus;

    fn from_str(name: &str) -> Result<EventStatus, UnknownEventStatus> {
        EventStatus::parse(name).ok_or(UnknownEventStatus)
    }
}

/// One consent event, whatever form it arrived in.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentEvent {
    /// Didomi's event id; for events made from a user entity,
    /// `user:<user id or organization_user_id>:<updated_at>`.
    pub id: String,
    /// Didomi organization, when given.
    pub organization_id: Option<String>,
    /// `created_at` exactly as received.
    pub created_at: String,
    /// `created_at` as milliseconds since the Unix epoch, UTC; the order of
    /// last-write-wins.
    pub created_at_ms: i64,
    /// Confirmed or pending approval.
    pub status: EventStatus,
    /// The event's regulation, else the envelope's; `None` when neither says
    /// (Didomi's default is GDPR).
    pub regulation: Option<String>,
    /// Who the event is about.
    pub user: EventUser,
    /// The consents this event sets; everything else is untouched.
    pub consents: PartialConsents,
    /// Ids of the proofs attached to the event.
    pub proofs_id: Vec<String>,
    /// `delegate.id`: who made the change on the user's behalf (for an
    /// `*.updated` envelope without one, its source event's). prefsync's own
    /// write-backs to Didomi carry theirs, which tells their echo apart.
    pub delegate_id: Option<String>,
    /// The id of the event that caused an `*.updated` envelope
    /// (`parameters.source.id`), e.g. prefsync's own write coming back.
    pub cause_id: Option<String>,
    /// The event (or, for `user.*` envelopes, the user entity) as received.
    pub raw: Value,
}

/// The user part of an event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventUser {
    /// Didomi's user id, when given.
    pub id: Option<String>,
    /// The organization's own id for the user; the key of all state. Never empty.
    pub organization_user_id: String,
    /// Free-form metadata keys this event sets.
    pub metadata: Map<String, Value>,
    /// Country, when given.
    pub country: Option<String>,
}

/// The consents an event carries: only what it changes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PartialConsents {
    /// Purposes, each at most once.
    pub purposes: Vec<PurposeChange>,
    /// Channels, each at most once.
    pub channels: Vec<ChannelChange>,
    /// Vendor lists, replaced as a whole when present.
    pub vendors: Option<Vendors>,
    /// The TCF consent string, when present.
    pub tcfcs: Option<String>,
}

/// What an event says about one purpose.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PurposeChange {
    /// Purpose id (may contain `_`).
    pub id: String,
    /// Consent: absent, or true/false/null (no choice).
    pub enabled: Field<Option<bool>>,
    /// Legitimate interest: absent, or true/false/null.
    pub enabled_li: Field<Option<bool>>,
    /// Purpose metadata keys this event sets.
    pub metadata: Map<String, Value>,
    /// Preference id → its value (Didomi's `values.<id>.value`, e.g. `"a,b"`).
    pub values: BTreeMap<String, String>,
}

/// What an event says about one channel.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChannelChange {
    /// Channel id (may contain `_`).
    pub id: String,
    /// Absent, or true/false/null (no choice).
    pub enabled: Field<Option<bool>>,
    /// Channel metadata keys this event sets.
    pub metadata: Map<String, Value>,
}

/// Didomi's vendor lists; a missing list reads as empty.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Vendors {
    /// Vendors with consent.
    pub enabled: Vec<String>,
    /// Vendors refused.
    pub disabled: Vec<String>,
    /// Vendors allowed on legitimate interest.
    pub enabled_li: Vec<String>,
    /// Vendors objected to on legitimate interest.
    pub disabled_li: Vec<String>,
}

/// Everything one body carried.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    /// The events, in body order.
    pub events: Vec<ConsentEvent>,
    /// `event.deleted` and `user.deleted` envelopes: accepted (so Didomi does
    /// not retry them) but not turned into events, since deleting a record in
    /// Didomi is not a consent change to propagate.
    pub deletions_skipped: usize,
}

/// Parses a `POST /v1/events` body into its events; deletion envelopes are
/// skipped (see [`parse_batch`] to count them).
pub fn parse_body(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Vec<ConsentEvent>, EventError> {
    parse_batch(content_type, body).map(|batch| batch.events)
}

/// Parses a `POST /v1/events` body: JSON (an event, an envelope, or a list of
/// them) or NDJSON (one of those per line, blank lines ignored). Any date
/// is accepted; ingest uses [`parse_batch_until`].
pub fn parse_batch(content_type: Option<&str>, body: &[u8]) -> Result<Batch, EventError> {
    parse_batch_until(content_type, body, i64::MAX)
}

/// Like [`parse_batch`], and refuses (naming the item and the field) an
/// event whose `created_at` — a user entity's `updated_at` — is after
/// `latest_ms`: a stamp from the future would win over every later change.
pub fn parse_batch_until(
    content_type: Option<&str>,
    body: &[u8],
    latest_ms: i64,
) -> Result<Batch, EventError> {
    let format = body_format(content_type)?;
    // Some editors save a byte-order mark; it is not JSON but carries no meaning.
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let mut batch = Batch::default();
    match format {
        BodyFormat::Json => {
            let value: Value = serde_json::from_slice(body).map_err(|e| syntax_error(&e, 0))?;
            parse_top_level(&value, None, latest_ms, &mut batch)?;
        }
        BodyFormat::Ndjson => {
            for (index, line) in body.split(|&b| b == b'\n').enumerate() {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let value: Value =
                    serde_json::from_slice(line).map_err(|e| syntax_error(&e, index))?;
                parse_top_level(&value, Some(index + 1), latest_ms, &mut batch)?;
            }
        }
    }
    Ok(batch)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Ndjson,
}

/// The body's format by its `Content-Type` (media type, UTF-8 charset
/// only); also the check of every other JSON endpoint.
pub fn body_format(content_type: Option<&str>) -> Result<BodyFormat, EventError> {
    // A blank header is treated like a missing one: nothing was declared.
    let Some(header) = content_type.filter(|h| !h.trim().is_empty()) else {
        return Ok(BodyFormat::Json);
    };
    let unsupported = || EventError::UnsupportedContentType {
        received: header.to_string(),
    };
    let mut parts = header.split(';');
    let media_type = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let format = match media_type.as_str() {
        "application/json" => BodyFormat::Json,
        "application/x-ndjson" | "application/jsonl" => BodyFormat::Ndjson,
        _ => return Err(unsupported()),
    };
    for parameter in parts {
        let Some((name, value)) = parameter.split_once('=') else {
            continue;
        };
        let charset = value.trim().trim_matches('"');
        if name.trim().eq_ignore_ascii_case("charset")
            && !charset.eq_ignore_ascii_case("utf-8")
            && !charset.eq_ignore_ascii_case("utf8")
        {
            return Err(unsupported());
        }
    }
    Ok(format)
}

/// `line_index` is 0 for a whole JSON body, else the 0-based NDJSON line
/// (which holds no newline, so the parser's line is always 1 there). Also
/// used for every other JSON body the host reads, so all say it alike.
pub fn syntax_error(error: &serde_json::Error, line_index: usize) -> EventError {
    EventError::Syntax {
        line: error.line() + line_index,
        column: error.column(),
        message: json_error_message(error),
    }
}

/// What serde_json says is wrong, without its own ` at line L column C`
/// suffix (callers report the position themselves), and without the value
/// it could not use: serde quotes it (`invalid type: string "…"`,
/// `unknown variant `…``), and a value put in the wrong field may be a
/// password. The kind of value and what was expected stay.
pub fn json_error_message(error: &serde_json::Error) -> String {
    let full = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    without_quoted_value(full.strip_suffix(&suffix).unwrap_or(&full))
}

/// `invalid type: string "x", expected u64` → `invalid type: string,
/// expected u64`; `unknown variant `x`, expected one of …` → `unknown
/// variant, expected one of …`. The expected part comes from our own types,
/// so the last `, expected` is where the quoted value ends, whatever it holds.
fn without_quoted_value(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: ", "unknown variant "] {
        let Some(rest) = message.strip_prefix(prefix) else {
            continue;
        };
        let (unexpected, expected) = match rest.rfind(", expected") {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        let kind = unexpected
            .split(['"', '`'])
            .next()
            .unwrap_or_default()
            .trim_end();
        return format!("{}{expected}", format!("{prefix}{kind}").trim_end());
    }
    message.to_string()
}

/// One top-level value: a list of items or a single item. `line` is the
/// NDJSON line it came from.
fn parse_top_level(
    value: &Value,
    line: Option<usize>,
    latest_ms: i64,
    batch: &mut Batch,
) -> Result<(), EventError> {
    match value {
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let at = match line {
                    Some(line) => format!("line {line}[{index}]"),
                    None => format!("[{index}]"),
                };
                parse_item(item, at, latest_ms, batch)?;
            }
            Ok(())
        }
        _ => {
            let at = match line {
                Some(line) => format!("line {line}"),
                None => "body".to_string(),
            };
            parse_item(value, at, latest_ms, batch)
        }
    }
}

fn parse_item(
    value: &Value,
    at: String,
    latest_ms: i64,
    batch: &mut Batch,
) -> Result<(), EventError> {
    let Some(map) = value.as_object() else {
        return Err(EventError::Invalid {
            message: format!(
                "must be a consent event or a webhook envelope (an object), not {}",
                kind(value)
            ),
            at,
            field: String::new(),
        });
    };
    let item = Obj {
        map,
        path: String::new(),
        at: &at,
        latest_ms,
    };
    // An envelope has `parameters`; a `type` without `user` is a broken
    // envelope rather than an event, so it gets the envelope's error.
    let is_envelope =
        map.contains_key("parameters") || (map.contains_key("type") && !map.contains_key("user"));
    if is_envelope {
        if let Some(event) = parse_envelope(&item, &mut batch.deletions_skipped)? {
            batch.events.push(event);
        }
    } else {
        batch.events.push(parse_event(&item, value, None)?);
    }
    Ok(())
}

/// `None` for a deletion envelope.
fn parse_envelope(
    envelope: &Obj<'_>,
    deletions: &mut usize,
) -> Result<Option<ConsentEvent>, EventError> {
    let kind = envelope.required_str("type")?;
    if !ENVELOPE_TYPES.contains(&kind.as_str()) {
        return Err(envelope.invalid(
            "type",
            format!(
                "`{kind}` is not a known envelope type (expected one of: {})",
                ENVELOPE_TYPES.join(", ")
            ),
        ));
    }
    let parameters = envelope.required_object("parameters")?;
    if kind.ends_with(".deleted") {
        *deletions += 1;
        return Ok(None);
    }
    let entity_key = if kind.ends_with(".updated") {
        "new_entity"
    } else {
        "entity"
    };
    let entity = parameters.required_object(entity_key)?;
    let entity_value = parameters.map.get(entity_key).unwrap_or(&Value::Null);
    let regulation = envelope.optional_str("regulation")?;
    let mut event = if kind.starts_with("event.") {
        parse_event(&entity, entity_value, regulation)?
    } else {
        parse_user(&entity, entity_value, regulation)?
    };
    // Who caused an update is context, not consent: read leniently.
    if let Some(source) = parameters.map.get("source") {
        event.cause_id = source.get("id").and_then(Value::as_str).map(str::to_string);
        if event.delegate_id.is_none() {
            event.delegate_id = delegate_id(source);
        }
    }
    Ok(Some(event))
}

fn parse_event(
    event: &Obj<'_>,
    raw: &Value,
    envelope_regulation: Option<String>,
) -> Result<ConsentEvent, EventError> {
    let id = event.required_str("id")?;
    let organization_id = event.optional_str("organization_id")?;
    let created_at = event.required_str("created_at")?;
    let created_at_ms = event.timestamp("created_at", &created_at)?;
    let status = match event.optional_str("status")?.as_deref() {
        None | Some("confirmed") => EventStatus::Confirmed,
        Some("pending_approval") => EventStatus::PendingApproval,
        Some(other) => {
            return Err(event.invalid(
                "status",
                format!("must be `confirmed` or `pending_approval`, not `{other}`"),
            ));
        }
    };
    let regulation = event.optional_str("regulation")?.or(envelope_regulation);
    let user = event.required_object("user")?;
    let user = EventUser {
        id: user.optional_str("id")?,
        organization_user_id: user.required_str("organization_user_id")?,
        metadata: user.metadata("metadata")?,
        country: user.optional_str("country")?,
    };
    let consents = parse_consents(event.optional_object("consents")?)?;
    let proofs_id = event.string_list("proofs_id")?;
    let delegate_id = delegate_id(raw);
    Ok(ConsentEvent {
        id,
        organization_id,
        created_at,
        created_at_ms,
        status,
        regulation,
        user,
        consents,
        proofs_id,
        delegate_id,
        cause_id: None,
        raw: raw.clone(),
    })
}

/// `delegate.id` of an event, if it names one.
fn delegate_id(event: &Value) -> Option<String> {
    event
        .get("delegate")
        .and_then(|d| d.get("id"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// A Didomi user entity (from `user.*` envelopes) read as a confirmed event
/// that sets everything the user has, stamped with the user's `updated_at`.
fn parse_user(
    user: &Obj<'_>,
    raw: &Value,
    regulation: Option<String>,
) -> Result<ConsentEvent, EventError> {
    let organization_user_id = user.required_str("organization_user_id")?;
    let user_id = user.optional_str("id")?;
    let (stamp_field, created_at) = match user.optional_str("updated_at")? {
        Some(updated_at) => ("updated_at", updated_at),
        None => match user.optional_str("created_at")? {
            Some(created_at) => ("created_at", created_at),
            None => {
                return Err(user.invalid("updated_at", "is required (or at least `created_at`)"));
            }
        },
    };
    let created_at_ms = user.timestamp(stamp_field, &created_at)?;
    let subject = user_id.as_deref().unwrap_or(&organization_user_id);
    Ok(ConsentEvent {
        id: format!("user:{subject}:{created_at}"),
        organization_id: user.optional_str("organization_id")?,
        created_at,
        created_at_ms,
        status: EventStatus::Confirmed,
        regulation,
        user: EventUser {
            id: user_id,
            metadata: user.metadata("metadata")?,
            country: user.optional_str("country")?,
            organization_user_id,
        },
        consents: parse_consents(user.optional_object("consents")?)?,
        proofs_id: Vec::new(),
        delegate_id: None,
        cause_id: None,
        raw: raw.clone(),
    })
}

fn parse_consents(consents: Option<Obj<'_>>) -> Result<PartialConsents, EventError> {
    let Some(consents) = consents else {
        return Ok(PartialConsents::default());
    };
    let mut purposes: Vec<PurposeChange> = Vec::new();
    for purpose in consents.object_list("purposes")? {
        let id = purpose.required_str("id")?;
        if purposes.iter().any(|p| p.id == id) {
            return Err(purpose.invalid("id", format!("`{id}` appears twice in the list")));
        }
        let mut values = BTreeMap::new();
        if let Some(preferences) = purpose.optional_object("values")? {
            for preference_id in preferences.map.keys() {
                let preference = preferences.required_object(preference_id)?;
                values.insert(preference_id.clone(), preference.required_text("value")?);
            }
        }
        purposes.push(PurposeChange {
            enabled: purpose.choice("enabled")?,
            enabled_li: purpose.choice("enabled_li")?,
            metadata: purpose.metadata("metadata")?,
            values,
            id,
        });
    }
    let mut channels: Vec<ChannelChange> = Vec::new();
    for channel in consents.object_list("channels")? {
        let id = channel.required_str("id")?;
        if channels.iter().any(|c| c.id == id) {
            return Err(channel.invalid("id", format!("`{id}` appears twice in the list")));
        }
        channels.push(ChannelChange {
            enabled: channel.choice("enabled")?,
            metadata: channel.metadata("metadata")?,
            id,
        });
    }
    let vendors = match consents.optional_object("vendors")? {
        Some(vendors) => Some(Vendors {
            enabled: vendors.string_list("enabled")?,
            disabled: vendors.string_list("disabled")?,
            enabled_li: vendors.string_list("enabled_li")?,
            disabled_li: vendors.string_list("disabled_li")?,
        }),
        None => None,
    };
    Ok(PartialConsents {
        purposes,
        channels,
        vendors,
        tcfcs: consents.optional_str("tcfcs")?,
    })
}

/// An object being read, with where it is, so every error names its place.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    /// Path of this object inside the item; empty for the item itself.
    path: String,
    /// The item, as [`EventError::Invalid::at`] names it.
    at: &'a str,
    /// Latest timestamp an event may carry (now plus the allowed skew).
    latest_ms: i64,
}

impl<'a> Obj<'a> {
    fn field_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn invalid(&self, key: &str, message: impl Into<String>) -> EventError {
        EventError::Invalid {
            at: self.at.to_string(),
            field: self.field_path(key),
            message: message.into(),
        }
    }

    fn wrong_type(&self, key: &str, expected: &str, found: &Value) -> EventError {
        self.invalid(key, format!("must be {expected}, not {}", kind(found)))
    }

    /// The value, with `null` read as absent.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn optional_str(&self, key: &str) -> Result<Option<String>, EventError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.wrong_type(key, "a string", other)),
        }
    }

    /// A string that may be empty.
    fn required_text(&self, key: &str) -> Result<String, EventError> {
        self.optional_str(key)?
            .ok_or_else(|| self.invalid(key, "is required"))
    }

    /// A non-empty string (ids and timestamps).
    fn required_str(&self, key: &str) -> Result<String, EventError> {
        let text = self.required_text(key)?;
        if text.trim().is_empty() {
            return Err(self.invalid(key, "must not be empty"));
        }
        // Ids are store keys, and PostgreSQL text cannot hold NUL.
        if text.contains('\0') {
            return Err(self.invalid(key, "must not contain a NUL character (U+0000)"));
        }
        Ok(text)
    }

    fn timestamp(&self, key: &str, text: &str) -> Result<i64, EventError> {
        let ms = parse_rfc3339(text).map_err(|e| {
            self.invalid(
                key,
                format!(
                    "must be an RFC 3339 timestamp such as 2026-11-23T10:00:00Z, not `{}` ({})",
                    e.text, e.reason
                ),
            )
        })?;
        if ms > self.latest_ms {
            return Err(self.invalid(
                key,
                format!(
                    "is in the future: later than {} (this host's clock plus the allowed skew, \
                     ingest.max_future_skew_ms); an event from the future would override \
                     every later change, so it is refused — check the sender's clock",
                    crate::time::millis_to_rfc3339(self.latest_ms)
                ),
            ));
        }
        Ok(ms)
    }

    fn child(&self, key: &str, map: &'a Map<String, Value>) -> Obj<'a> {
        Obj {
            map,
            path: self.field_path(key),
            at: self.at,
            latest_ms: self.latest_ms,
        }
    }

    fn optional_object(&self, key: &str) -> Result<Option<Obj<'a>>, EventError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(self.child(key, map))),
            Some(other) => Err(self.wrong_type(key, "an object", other)),
        }
    }

    fn required_object(&self, key: &str) -> Result<Obj<'a>, EventError> {
        self.optional_object(key)?
            .ok_or_else(|| self.invalid(key, "is required"))
    }

    /// Free-form metadata; absent or null reads as none.
    fn metadata(&self, key: &str) -> Result<Map<String, Value>, EventError> {
        Ok(self
            .optional_object(key)?
            .map(|obj| obj.map.clone())
            .unwrap_or_default())
    }

    fn list(&self, key: &str) -> Result<&'a [Value], EventError> {
        match self.get(key) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(self.wrong_type(key, "a list", other)),
        }
    }

    fn object_list(&self, key: &str) -> Result<Vec<Obj<'a>>, EventError> {
        let mut objects = Vec::new();
        for (index, item) in self.list(key)?.iter().enumerate() {
            let key = format!("{key}[{index}]");
            match item {
                Value::Object(map) => objects.push(self.child(&key, map)),
                other => return Err(self.wrong_type(&key, "an object", other)),
            }
        }
        Ok(objects)
    }

    fn string_list(&self, key: &str) -> Result<Vec<String>, EventError> {
        self.list(key)?
            .iter()
            .enumerate()
            .map(|(index, item)| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(self.wrong_type(&format!("{key}[{index}]"), "a string", other)),
            })
            .collect()
    }

    /// A consent choice: absent, or true/false/null, where null is a value.
    fn choice(&self, key: &str) -> Result<Field<Option<bool>>, EventError> {
        match self.map.get(key) {
            None => Ok(Field::Absent),
            Some(Value::Null) => Ok(Field::Present(None)),
            Some(Value::Bool(b)) => Ok(Field::Present(Some(*b))),
            Some(other) => Err(self.wrong_type(key, "true, false or null", other)),
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn json_errors_never_quote_the_value_they_could_not_use() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        enum Mode {
            Upsert,
            Insert,
        }
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Doc {
            n: Option<u64>,
            mode: Option<Mode>,
        }
        let message =
            |text: &str| super::json_error_message(&serde_json::from_str::<Doc>(text).unwrap_err());
        assert_eq!(
            message(r#"{"n": "s://:pw-secret, expected x@m"}"#),
            "invalid type: string, expected u64"
        );
        assert_eq!(
            message(r#"{"n": -7}"#),
            "invalid value: integer, expected u64"
        );
        assert_eq!(
            message(r#"{"mode": "p://?password=pw-secret"}"#),
            "unknown variant, expected `Upsert` or `Insert`"
        );
        assert_eq!(
            message(r#"{"other": 1}"#),
            "unknown field `other`, expected `n` or `mode`"
        );
        assert_eq!(message(r#"{"n": 1,}"#), "trailing comma");
    }

    use super::*;

    #[test]
    fn event_status_names_are_didomis_everywhere() {
        for status in [EventStatus::Confirmed, EventStatus::PendingApproval] {
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
            assert_eq!(status.as_str().parse::<EventStatus>(), Ok(status));
        }
        assert_eq!("CONFIRMED".parse::<EventStatus>(), Err(UnknownEventStatus));
    }
    use serde_json::json;

    const EVENT: &str = r#"{
        "id": "evt-1",
        "organization_id": "acme",
        "created_at": "2026-11-23T10:00:00Z",
        "status": "confirmed",
        "regulation": "gdpr",
        "user": {
            "id": "didomi-user-1",
            "organization_user_id": "ada@example.com",
            "metadata": {"first_name": "Ada", "age": 36},
            "country": "FR"
        },
        "consents": {
            "purposes": [
                {"id": "email_marketing", "enabled": true, "enabled_li": null,
                 "metadata": {"source": "form"},
                 "values": {"topics": {"value": "news,offers"}}},
                {"id": "analytics"}
            ],
            "channels": [{"id": "email", "enabled": false}],
            "vendors": {"enabled": ["google"], "disabled_li": ["x"]},
            "tcfcs": "CPc..."
        },
        "proofs_id": ["proof-1"]
    }"#;

    fn json_body(value: &Value) -> Vec<u8> {
        serde_json::to_vec(value).expect("serializable")
    }

    fn invalid(err: EventError) -> (String, String) {
        match err {
            EventError::Invalid { at, field, .. } => (at, field),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    fn minimal(id: &str, user: &str) -> Value {
        json!({
            "id": id,
            "created_at": "2026-11-23T10:00:00Z",
            "user": {"organization_user_id": user}
        })
    }

    #[test]
    fn parses_a_single_event() {
        let events = parse_body(Some("application/json"), EVENT.as_bytes()).unwrap();
        assert_eq!(events.len(), 1);
        let event = &events[0];
        assert_eq!(event.id, "evt-1");
        assert_eq!(event.organization_id.as_deref(), Some("acme"));
        assert_eq!(event.created_at, "2026-11-23T10:00:00Z");
        assert_eq!(event.created_at_ms, 1_795_428_000_000);
        assert_eq!(event.status, EventStatus::Confirmed);
        assert_eq!(event.regulation.as_deref(), Some("gdpr"));
        assert_eq!(event.user.id.as_deref(), Some("didomi-user-1"));
        assert_eq!(event.user.organization_user_id, "ada@example.com");
        assert_eq!(event.user.metadata["age"], json!(36));
        assert_eq!(event.user.country.as_deref(), Some("FR"));
        let purposes = &event.consents.purposes;
        assert_eq!(purposes[0].id, "email_marketing");
        assert_eq!(purposes[0].enabled, Field::Present(Some(true)));
        assert_eq!(purposes[0].enabled_li, Field::Present(None));
        assert_eq!(purposes[0].metadata["source"], json!("form"));
        assert_eq!(purposes[0].values["topics"], "news,offers");
        assert_eq!(purposes[1].enabled, Field::Absent);
        assert_eq!(purposes[1].enabled_li, Field::Absent);
        assert_eq!(
            event.consents.channels[0].enabled,
            Field::Present(Some(false))
        );
        let vendors = event.consents.vendors.as_ref().unwrap();
        assert_eq!(vendors.enabled, vec!["google"]);
        assert!(vendors.disabled.is_empty());
        assert_eq!(vendors.disabled_li, vec!["x"]);
        assert_eq!(event.consents.tcfcs.as_deref(), Some("CPc..."));
        assert_eq!(event.proofs_id, vec!["proof-1"]);
        assert_eq!(event.raw["id"], json!("evt-1"));
    }

    #[test]
    fn field_present_tells_absent_from_null() {
        assert_eq!(Field::<Option<bool>>::Absent.present(), None);
        assert_eq!(Field::Present(None::<bool>).present(), Some(&None));
        assert_eq!(Field::Present(Some(false)).present(), Some(&Some(false)));
    }

    #[test]
    fn status_defaults_to_confirmed_and_reads_pending_approval() {
        let events = parse_body(None, &json_body(&minimal("e", "u"))).unwrap();
        assert_eq!(events[0].status, EventStatus::Confirmed);
        let mut pending = minimal("e", "u");
        pending["status"] = json!("pending_approval");
        let events = parse_body(None, &json_body(&pending)).unwrap();
        assert_eq!(events[0].status, EventStatus::PendingApproval);
    }

    #[test]
    fn envelope_event_created_uses_entity_and_envelope_regulation() {
        let body = json!({
            "type": "event.created",
            "regulation": "ccpa",
            "parameters": {"entity": minimal("e1", "u1")}
        });
        let events = parse_body(None, &json_body(&body)).unwrap();
        assert_eq!(events[0].id, "e1");
        assert_eq!(events[0].regulation.as_deref(), Some("ccpa"));
        assert_eq!(events[0].raw, minimal("e1", "u1"));
    }

    #[test]
    fn envelope_event_updated_uses_new_entity() {
        let body = json!({
            "type": "event.updated",
            "parameters": {
                "source": {"type": "api"},
                "old_entity": minimal("old", "u1"),
                "new_entity": minimal("new", "u1")
            }
        });
        let events = parse_body(None, &json_body(&body)).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].id, "new");
    }

    #[test]
    fn envelope_user_updated_becomes_a_confirmed_event() {
        let body = json!({
            "type": "user.updated",
            "parameters": {
                "old_entity": {},
                "new_entity": {
                    "id": "didomi-7",
                    "organization_id": "acme",
                    "organization_user_id": "ada@example.com",
                    "created_at": "2026-01-01T00:00:00Z",
                    "updated_at": "2026-11-23T12:00:00+02:00",
                    "metadata": {"plan": "pro"},
                    "country": "DE",
                    "consents": {
                        "purposes": [{"id": "newsletter", "enabled": true}],
                        "channels": [{"id": "sms", "enabled": null}]
                    }
                }
            }
        });
        let events = parse_body(None, &json_body(&body)).unwrap();
        let event = &events[0];
        assert_eq!(event.id, "user:didomi-7:2026-11-23T12:00:00+02:00");
        assert_eq!(event.created_at_ms, 1_795_428_000_000);
        assert_eq!(event.status, EventStatus::Confirmed);
        assert_eq!(event.organization_id.as_deref(), Some("acme"));
        assert_eq!(event.user.id.as_deref(), Some("didomi-7"));
        assert_eq!(event.user.organization_user_id, "ada@example.com");
        assert_eq!(event.user.country.as_deref(), Some("DE"));
        assert_eq!(event.user.metadata["plan"], json!("pro"));
        assert_eq!(
            event.consents.purposes[0].enabled,
            Field::Present(Some(true))
        );
        assert_eq!(event.consents.channels[0].enabled, Field::Present(None));
    }

    #[test]
    fn envelope_user_created_falls_back_to_created_at_and_organization_user_id() {
        let body = json!({
            "type": "user.created",
            "parameters": {"entity": {
                "organization_user_id": "u9",
                "created_at": "2026-01-01T00:00:00Z"
            }}
        });
        let events = parse_body(None, &json_body(&body)).unwrap();
        assert_eq!(events[0].id, "user:u9:2026-01-01T00:00:00Z");
        assert_eq!(events[0].created_at, "2026-01-01T00:00:00Z");
    }

    #[test]
    fn deletions_are_accepted_and_counted_not_returned() {
        let body = json!([
            {"type": "event.deleted", "parameters": {"entity": {"id": "e"}}},
            {"type": "user.deleted", "parameters": {"entity": {"id": "u"}}},
            minimal("e2", "u2")
        ]);
        let batch = parse_batch(None, &json_body(&body)).unwrap();
        assert_eq!(batch.deletions_skipped, 2);
        assert_eq!(batch.events.len(), 1);
        assert_eq!(parse_body(None, &json_body(&body)).unwrap().len(), 1);
    }

    #[test]
    fn parses_a_list_of_events_and_envelopes() {
        let body = json!([
            minimal("a", "u1"),
            {"type": "event.created", "parameters": {"entity": minimal("b", "u2")}},
        ]);
        let ids: Vec<String> = parse_body(Some("application/json"), &json_body(&body))
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, vec!["a", "b"]);
        assert!(parse_body(None, b"[]").unwrap().is_empty());
    }

    #[test]
    fn parses_ndjson_skipping_blank_lines() {
        let body = format!(
            "{}\r\n\n   \n{}\n",
            serde_json::to_string(&minimal("a", "u")).unwrap(),
            serde_json::to_string(&json!([minimal("b", "u"), minimal("c", "u")])).unwrap()
        );
        for content_type in ["application/x-ndjson", "application/jsonl; charset=utf-8"] {
            let ids: Vec<String> = parse_body(Some(content_type), body.as_bytes())
                .unwrap()
                .into_iter()
                .map(|e| e.id)
                .collect();
            assert_eq!(ids, vec!["a", "b", "c"]);
        }
        assert!(
            parse_body(Some("application/x-ndjson"), b"")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn ndjson_syntax_error_names_the_body_line() {
        let good = serde_json::to_string(&minimal("a", "u")).unwrap();
        let body = format!("{good}\n{good}\n{{\"id\": \"c\",}}\n{good}\n");
        let err = parse_body(Some("application/x-ndjson"), body.as_bytes()).unwrap_err();
        assert_eq!(
            err,
            EventError::Syntax {
                line: 3,
                column: 12,
                message: "trailing comma".to_string()
            }
        );
        assert_eq!(
            err.to_string(),
            "invalid JSON at line 3, column 12: trailing comma"
        );
    }

    #[test]
    fn seed_like_syntax_errors_name_line_and_column() {
        // The seeds' trailing comma before `}`.
        let trailing = b"{\n    \"id\": \"e1\",\n    \"created_at\": \"2026-11-23T10:00:00Z\",\n}";
        let err = parse_body(None, trailing).unwrap_err();
        assert!(
            matches!(
                err,
                EventError::Syntax {
                    line: 4,
                    column: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        // The Actito seed's `"private_api_key:" "…"`: a missing colon.
        let missing_colon = b"{\n  \"user\": {\n    \"organization_user_id:\" \"x\"\n  }\n}";
        let err = parse_body(None, missing_colon).unwrap_err();
        assert!(
            matches!(
                err,
                EventError::Syntax {
                    line: 3,
                    column: 29,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("invalid JSON at line 3, column 29: expected `:`")
        );
        // Trailing comma inside a list, and a truncated body.
        let err = parse_body(None, b"[\n  {\"id\": 1},\n]").unwrap_err();
        assert!(
            matches!(
                err,
                EventError::Syntax {
                    line: 3,
                    column: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = parse_body(None, b"").unwrap_err();
        assert!(matches!(err, EventError::Syntax { line: 1, .. }), "{err:?}");
    }

    #[test]
    fn missing_organization_user_id_names_item_and_field() {
        let mut no_user_id = minimal("c", "x");
        no_user_id["user"] = json!({"id": "didomi-1"});
        let body = json!([minimal("a", "u"), minimal("b", "u"), no_user_id]);
        let err = parse_body(None, &json_body(&body)).unwrap_err();
        assert_eq!(
            invalid(err.clone()),
            ("[2]".to_string(), "user.organization_user_id".to_string())
        );
        assert_eq!(
            err.to_string(),
            "[2]: `user.organization_user_id` is required"
        );

        let err = parse_body(None, &json_body(&minimal("a", ""))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "body: `user.organization_user_id` must not be empty"
        );

        let good = serde_json::to_string(&minimal("a", "u")).unwrap();
        let bad = serde_json::to_string(&minimal("b", " ")).unwrap();
        let body = format!("{good}\n\n{bad}\n");
        let err = parse_body(Some("application/x-ndjson"), body.as_bytes()).unwrap_err();
        assert_eq!(
            invalid(err),
            (
                "line 3".to_string(),
                "user.organization_user_id".to_string()
            )
        );

        let envelope = json!({"type": "user.updated", "parameters": {"new_entity": {
            "updated_at": "2026-11-23T10:00:00Z"
        }}});
        let err = parse_body(None, &json_body(&envelope)).unwrap_err();
        assert_eq!(
            invalid(err),
            (
                "body".to_string(),
                "parameters.new_entity.organization_user_id".to_string()
            )
        );
    }

    #[test]
    fn content_errors_name_their_field() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (
                json!({"created_at": "2026-11-23T10:00:00Z", "user": {"organization_user_id": "u"}}),
                "id",
                "is required",
            ),
            (
                json!({"id": "e", "user": {"organization_user_id": "u"}}),
                "created_at",
                "is required",
            ),
            (
                json!({"id": "e", "created_at": "23/11/2026", "user": {"organization_user_id": "u"}}),
                "created_at",
                "must be an RFC 3339 timestamp such as 2026-11-23T10:00:00Z, not `23/11/2026` \
                 (the date must be YYYY-MM-DD)",
            ),
            (
                json!({"id": "e", "created_at": "2026-11-23T10:00:00Z", "status": "approved",
                       "user": {"organization_user_id": "u"}}),
                "status",
                "must be `confirmed` or `pending_approval`, not `approved`",
            ),
            (
                json!({"id": "e", "created_at": "2026-11-23T10:00:00Z"}),
                "user",
                "is required",
            ),
            (
                json!({"id": "e", "created_at": "2026-11-23T10:00:00Z",
                       "user": {"organization_user_id": "u"},
                       "consents": {"purposes": [{"id": "p"}, {"id": "q", "enabled": "yes"}]}}),
                "consents.purposes[1].enabled",
                "must be true, false or null, not a string",
            ),
            (
                json!({"id": "e", "created_at": "2026-11-23T10:00:00Z",
                       "user": {"organization_user_id": "u"},
                       "consents": {"channels": [{"id": "c", "enabled": 1}]}}),
                "consents.channels[0].enabled",
                "must be true, false or null, not a number",
            ),
            (
                json!({"id": "e", "created_at": "2026-11-23T10:00:00Z",
                       "user": {"organization_user_id": "u"},
                       "consents": {"purposes": [{"id": "p", "values": {"topics": {"value": 3}}}]}}),
                "consents.purposes[0].values.topics.value",
                "must be a string, not a number",
            ),
            (
                json!({"id": "e", "created_at": "2026-11-23T10:00:00Z",
                       "user": {"organization_user_id": "u"},
                       "consents": {"purposes": [{"id": "p"}, {"id": "p"}]}}),
                "consents.purposes[1].id",
                "`p` appears twice in the list",
            ),
            (
                json!({"id": "e", "created_at": "2026-11-23T10:00:00Z",
                       "user": {"organization_user_id": "u"},
                       "consents": {"vendors": {"enabled": ["a", 2]}}}),
                "consents.vendors.enabled[1]",
                "must be a string, not a number",
            ),
            (
                json!({"id": "e", "created_at": "2026-11-23T10:00:00Z",
                       "user": {"organization_user_id": "u", "metadata": []}}),
                "user.metadata",
                "must be an object, not a list",
            ),
            (
                json!({"id": 7, "created_at": "2026-11-23T10:00:00Z",
                       "user": {"organization_user_id": "u"}}),
                "id",
                "must be a string, not a number",
            ),
            (
                json!({"type": "event.exploded", "parameters": {}}),
                "type",
                "`event.exploded` is not a known envelope type",
            ),
            (
                json!({"type": "event.created"}),
                "parameters",
                "is required",
            ),
            (
                json!({"type": "event.created", "parameters": {"old_entity": {}}}),
                "parameters.entity",
                "is required",
            ),
            (
                json!({"type": "event.updated", "parameters": {"new_entity": {
                    "id": "e", "created_at": "2026-11-23T10:00:00Z",
                    "user": {"organization_user_id": "u"},
                    "consents": {"purposes": [{"id": "p", "enabled_li": []}]}}}}),
                "parameters.new_entity.consents.purposes[0].enabled_li",
                "must be true, false or null, not a list",
            ),
            (
                json!({"type": "user.created", "parameters": {"entity": {
                    "organization_user_id": "u"}}}),
                "parameters.entity.updated_at",
                "is required",
            ),
        ];
        for (body, field, message) in cases {
            let err = parse_body(None, &json_body(&json!([minimal("ok", "u"), body]))).unwrap_err();
            match &err {
                EventError::Invalid {
                    at,
                    field: f,
                    message: m,
                } => {
                    assert_eq!(at, "[1]", "{err}");
                    assert_eq!(f, field, "{err}");
                    assert!(m.starts_with(message), "{err}");
                }
                other => panic!("expected Invalid for {field}, got {other:?}"),
            }
        }
    }

    #[test]
    fn items_must_be_objects() {
        let err = parse_body(None, b"[1]").unwrap_err();
        assert_eq!(
            err.to_string(),
            "[0]: must be a consent event or a webhook envelope (an object), not a number"
        );
        let err = parse_body(None, b"\"x\"").unwrap_err();
        assert_eq!(invalid(err), ("body".to_string(), String::new()));
    }

    #[test]
    fn one_bad_item_rejects_the_whole_body() {
        let body = json!([minimal("a", "u"), minimal("b", "")]);
        assert!(parse_body(None, &json_body(&body)).is_err());
        assert!(parse_batch(None, &json_body(&body)).is_err());
    }

    #[test]
    fn content_type_is_checked() {
        let body = json_body(&minimal("a", "u"));
        for accepted in [
            None,
            Some(""),
            Some("application/json"),
            Some("Application/JSON; charset=UTF-8"),
            Some("application/json;charset=\"utf-8\""),
        ] {
            assert!(parse_body(accepted, &body).is_ok(), "{accepted:?}");
        }
        for refused in [
            "text/plain",
            "application/xml",
            "application/json; charset=latin1",
        ] {
            let err = parse_body(Some(refused), &body).unwrap_err();
            assert_eq!(
                err,
                EventError::UnsupportedContentType {
                    received: refused.to_string()
                }
            );
            assert_eq!(
                err.to_string(),
                format!(
                    "unsupported content type `{refused}` (accepted: application/json, \
                     application/x-ndjson, application/jsonl, UTF-8)"
                )
            );
        }
    }

    #[test]
    fn a_byte_order_mark_is_ignored() {
        let mut body = b"\xEF\xBB\xBF".to_vec();
        body.extend(json_body(&minimal("a", "u")));
        assert_eq!(parse_body(None, &body).unwrap().len(), 1);
    }

    /// 2026-11-23T10:05:00Z: five minutes after `minimal`'s events.
    const LATEST: i64 = 1_795_428_300_000;

    fn dated(id: &str, at: &str) -> Value {
        json!({"id": id, "created_at": at, "user": {"organization_user_id": "u"}})
    }

    #[test]
    fn events_from_the_future_are_refused_by_item_and_field() {
        let future = dated("f", "9999-12-31T23:59:59Z");
        let err = parse_batch_until(None, &json_body(&future), LATEST).unwrap_err();
        assert_eq!(invalid(err.clone()), ("body".into(), "created_at".into()));
        let message = err.to_string();
        assert!(
            message.starts_with("body: `created_at` is in the future"),
            "{message}"
        );
        assert!(message.contains("2026-11-23T10:05:00.000Z"), "{message}");
        assert!(message.contains("ingest.max_future_skew_ms"), "{message}");
        assert!(!message.contains("9999"), "{message}");

        // The edge is accepted; one millisecond past it is not.
        let edge = json!([
            dated("a", "2026-11-23T10:05:00Z"),
            dated("b", "2026-11-23T10:05:00.001Z")
        ]);
        let err = parse_batch_until(None, &json_body(&edge), LATEST).unwrap_err();
        assert_eq!(invalid(err), ("[1]".into(), "created_at".into()));
        let err = parse_batch_until(None, &json_body(&edge), LATEST + 1);
        assert_eq!(err.unwrap().events.len(), 2);

        let ndjson = format!("{}\n{}\n", minimal("ok", "u"), future);
        let err =
            parse_batch_until(Some("application/x-ndjson"), ndjson.as_bytes(), LATEST).unwrap_err();
        assert_eq!(invalid(err), ("line 2".into(), "created_at".into()));

        // An offset that lands past the limit counts, whatever the text says.
        let offset = dated("o", "2026-11-23T09:06:00-01:00");
        let err = parse_batch_until(None, &json_body(&offset), LATEST).unwrap_err();
        assert_eq!(invalid(err).1, "created_at");

        // A user entity is stamped by `updated_at`, and named so.
        let user = json!({"type": "user.updated", "parameters": {"new_entity": {
            "organization_user_id": "u", "updated_at": "2030-01-01T00:00:00Z"
        }}});
        let err = parse_batch_until(None, &json_body(&user), LATEST).unwrap_err();
        assert_eq!(
            invalid(err),
            ("body".into(), "parameters.new_entity.updated_at".into())
        );
        let event = json!({"type": "event.created", "parameters": {"entity": future}});
        let err = parse_batch_until(None, &json_body(&event), LATEST).unwrap_err();
        assert_eq!(
            invalid(err),
            ("body".into(), "parameters.entity.created_at".into())
        );

        // Without a limit (other callers), any date parses.
        assert_eq!(parse_body(None, &json_body(&future)).unwrap().len(), 1);
    }
}
