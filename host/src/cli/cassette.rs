//! HTTP cassettes for `prefsync connector test`: every exchange a connector has
//! with its API, recorded once against the real thing (`--live --cassette`)
//! with secrets scrubbed, then replayed without a network (`--cassette`).
//!
//! One cassette file per record file (`<DIR>/<record stem>.json`) holds the
//! exchanges in order and the outcome the record had. Replay answers each
//! request with the first unused recorded exchange of the same method, URL
//! and body; a request with none fails the run and is shown, and so do a
//! recorded request never made and a different outcome.
//!
//! Secrets never reach a cassette: the integration's (its `authentication`
//! block and secret-named fields, also base64- and URL-encoded), header
//! values whose name says secret (`Authorization`, `X-ApiKey`, cookies,
//! signatures …), and secret-named fields of JSON bodies — values learned from
//! a response (an access token) are scrubbed from every later exchange too.
//! Live requests are scrubbed the same way before they are matched, so a
//! cassette replays with the real config.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::outbound_http::{Network, Transport};
use crate::runtime::bindings::{HttpError, Request, Response};
use crate::secrets::{REDACTED, Redactor, is_secret_name};

/// What one record's cassette file holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cassette {
    /// The connector that recorded it (`type_id version`), for the reader.
    pub connector: String,
    /// The record's outcome when it was recorded; a replay must match it.
    pub outcome: String,
    /// The exchanges, in the order the connector made them.
    pub interactions: Vec<Interaction>,
}

/// One request and what answered it: a response or a transport error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interaction {
    /// The request, scrubbed.
    pub request: RecordedRequest,
    /// The response, scrubbed; absent when the request failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<RecordedResponse>,
    /// The transport error; absent when a response came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RecordedError>,
}

/// A request as written to a cassette.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedRequest {
    /// `GET`, `POST`, `PUT`, `PATCH`, `DELETE` or `HEAD`.
    pub method: String,
    pub url: String,
    /// Header names and values, in order; not used for matching.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Body>,
}

/// A response as written to a cassette.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedResponse {
    pub status: u16,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Body>,
}

/// A transport error as written to a cassette.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "kebab-case",
    tag = "kind",
    content = "detail"
)]
pub enum RecordedError {
    Timeout,
    Connection(String),
    TooLarge(u64),
    InvalidRequest(String),
    Denied(String),
}

/// A body: JSON when it parses as JSON (so a cassette reads and diffs
/// well), else text, else base64.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Body {
    Json(Json),
    Text(String),
    Base64(String),
}

impl Body {
    fn from_bytes(bytes: &[u8]) -> Option<Body> {
        if bytes.is_empty() {
            return None;
        }
        if let Ok(json) = serde_json::from_slice::<Json>(bytes) {
            return Some(Body::Json(json));
        }
        Some(match std::str::from_utf8(bytes) {
            Ok(text) => Body::Text(text.to_string()),
            Err(_) => Body::Base64(base64::engine::general_purpose::STANDARD.encode(bytes)),
        })
    }

    fn to_bytes(&self) -> Vec<u8> {
        match self {
            Body::Json(json) => json.to_string().into_bytes(),
            Body::Text(text) => text.clone().into_bytes(),
            Body::Base64(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap_or_default(),
        }
    }

    /// One line for the terminal, at most `max` characters.
    pub fn excerpt(&self, max: usize) -> String {
        let text = match self {
            Body::Json(json) => json.to_string(),
            Body::Text(text) => text.split_whitespace().collect::<Vec<_>>().join(" "),
            Body::Base64(b64) => format!("(binary, base64) {b64}"),
        };
        if text.chars().count() <= max {
            text
        } else {
            let cut: String = text.chars().take(max).collect();
            format!("{cut}…")
        }
    }
}

impl RecordedRequest {
    /// `POST https://…` and the body, for error messages.
    pub fn describe(&self) -> String {
        match &self.body {
            Some(body) => format!(
                "{} {}\n      body: {}",
                self.method,
                self.url,
                body.excerpt(400)
            ),
            None => format!("{} {} (no body)", self.method, self.url),
        }
    }

    fn same_as(&self, other: &RecordedRequest) -> bool {
        self.method == other.method && self.url == other.url && self.body == other.body
    }
}

/// Where a sent body differs from a recorded one, a line each: JSON bodies
/// by path (`contacts[0].email: recorded "a", sent "b"`), other bodies at
/// the first differing character. At most [`MAX_DIFF_LINES`] lines.
fn body_diff(recorded: Option<&Body>, sent: Option<&Body>) -> Vec<String> {
    match (recorded, sent) {
        (Some(Body::Json(recorded)), Some(Body::Json(sent))) => {
            let mut lines = Vec::new();
            json_diff("", recorded, sent, &mut lines);
            if lines.len() > MAX_DIFF_LINES {
                let more = lines.len() - MAX_DIFF_LINES;
                lines.truncate(MAX_DIFF_LINES);
                lines.push(format!("… and {more} more difference(s)"));
            }
            lines
        }
        (None, None) => Vec::new(),
        (None, Some(sent)) => vec![format!("recorded no body, sent {}", sent.excerpt(120))],
        (Some(recorded), None) => vec![format!("recorded {}, sent no body", recorded.excerpt(120))],
        (Some(recorded), Some(sent)) => {
            let (a, b) = (recorded.excerpt(usize::MAX), sent.excerpt(usize::MAX));
            let at = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
            let around = |text: &str| -> String {
                text.chars().skip(at.saturating_sub(20)).take(60).collect()
            };
            vec![format!(
                "from character {at}: recorded …{}…, sent …{}…",
                around(&a),
                around(&b)
            )]
        }
    }
}

/// Most lines [`body_diff`] shows.
const MAX_DIFF_LINES: usize = 12;

fn json_diff(path: &str, recorded: &Json, sent: &Json, lines: &mut Vec<String>) {
    let shown = |value: Option<&Json>| -> String {
        match value {
            None => "nothing".into(),
            Some(value) => {
                let text = value.to_string();
                if text.chars().count() > 80 {
                    format!("{}…", text.chars().take(80).collect::<String>())
                } else {
                    text
                }
            }
        }
    };
    let at = |key: &str| -> String {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match (recorded, sent) {
        (Json::Object(a), Json::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => json_diff(&at(key), x, y, lines),
                    (x, y) => lines.push(format!(
                        "{}: recorded {}, sent {}",
                        at(key),
                        shown(x),
                        shown(y)
                    )),
                }
            }
        }
        (Json::Array(a), Json::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                json_diff(&format!("{path}[{i}]"), x, y, lines);
            }
        }
        (a, b) if a != b => lines.push(format!(
            "{}: recorded {}, sent {}",
            if path.is_empty() { "(the body)" } else { path },
            shown(Some(a)),
            shown(Some(b))
        )),
        _ => {}
    }
}

impl Cassette {
    /// Where the cassette of `record` lives in `dir`.
    pub fn path_for(dir: &Path, record: &Path) -> PathBuf {
        let stem = record
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "record".into());
        dir.join(format!("{stem}.json"))
    }

    pub fn read(path: &Path) -> Result<Cassette> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "no cassette at {} (record one with `--live --cassette {}`)",
                path.display(),
                path.parent().unwrap_or(Path::new(".")).display()
            )
        })?;
        Cassette::parse(&text, path)
    }

    /// Reads a cassette's text (`path` only names it in errors); public so
    /// the fuzzer (`fuzz/`) can feed it without files.
    pub fn parse(text: &str, path: &Path) -> Result<Cassette> {
        let cassette: Cassette = serde_json::from_str(text).map_err(|e| {
            anyhow::anyhow!(
                "{}: not a cassette, at line {}, column {}: {}",
                path.display(),
                e.line(),
                e.column(),
                crate::consent::event::json_error_message(&e)
            )
        })?;
        for (i, interaction) in cassette.interactions.iter().enumerate() {
            if interaction.response.is_some() == interaction.error.is_some() {
                bail!(
                    "{}: interactions[{i}] needs exactly one of `response` and `error`",
                    path.display()
                );
            }
        }
        Ok(cassette)
    }

    /// Writes the cassette whole or not at all.
    pub fn write(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let temp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self)? + "\n";
        std::fs::write(&temp, text).with_context(|| format!("cannot write {}", temp.display()))?;
        std::fs::rename(&temp, path).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// Keeps secrets out of what is recorded and printed.
struct Scrubber {
    config: Redactor,
    /// Secret values seen in responses (access tokens), longest first.
    learned: Vec<String>,
}

impl Scrubber {
    fn text(&self, text: &str) -> String {
        let mut out = self.config.redact(text).into_owned();
        for secret in &self.learned {
            out = out.replace(secret.as_str(), REDACTED);
        }
        out
    }

    fn headers(&self, headers: &[(String, String)]) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(name, value)| {
                let value = if secret_header(name) {
                    REDACTED.to_string()
                } else {
                    self.text(value)
                };
                (name.to_ascii_lowercase(), value)
            })
            .collect()
    }

    /// Scrubs a body; with `learn`, secret-named JSON fields teach their values.
    fn body(&mut self, bytes: &[u8], learn: bool) -> Option<Body> {
        match Body::from_bytes(bytes)? {
            Body::Json(json) => {
                if learn {
                    collect_secret_fields(&json, &mut self.learned);
                    self.learned.retain(|s| s.len() >= 4 && s != REDACTED);
                    self.learned
                        .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
                    self.learned.dedup();
                }
                Some(Body::Json(self.json(json)))
            }
            Body::Text(text) => Some(Body::Text(self.text(&text))),
            binary => Some(binary),
        }
    }

    fn json(&self, json: Json) -> Json {
        match json {
            Json::Object(fields) => Json::Object(
                fields
                    .into_iter()
                    .map(|(k, v)| {
                        let v = match v {
                            Json::String(_) if is_secret_name(&k) => Json::String(REDACTED.into()),
                            other => self.json(other),
                        };
                        (k, v)
                    })
                    .collect(),
            ),
            Json::Array(items) => Json::Array(items.into_iter().map(|i| self.json(i)).collect()),
            Json::String(s) => Json::String(self.text(&s)),
            other => other,
        }
    }

    fn request(&mut self, request: &Request, url: &url::Url) -> RecordedRequest {
        let mut url = url.clone();
        if url.password().is_some() {
            let _ = url.set_password(Some(REDACTED));
        }
        if url.query().is_some() {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if is_secret_name(&k) {
                        REDACTED.to_string()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        RecordedRequest {
            method: request.method.as_str().to_string(),
            url: self.text(url.as_str()),
            headers: self.headers(&request.headers),
            body: request.body.as_deref().and_then(|b| self.body(b, false)),
        }
    }

    fn response(&mut self, response: &Response) -> RecordedResponse {
        let body = self.body(&response.body, true);
        RecordedResponse {
            status: response.status,
            headers: self.headers(&response.headers),
            body,
        }
    }

    fn error(&self, error: &HttpError) -> RecordedError {
        match error {
            HttpError::Timeout => RecordedError::Timeout,
            HttpError::Connection(why) => RecordedError::Connection(self.text(why)),
            HttpError::TooLarge(n) => RecordedError::TooLarge(*n),
            HttpError::InvalidRequest(why) => RecordedError::InvalidRequest(self.text(why)),
            HttpError::Denied(why) => RecordedError::Denied(self.text(why)),
        }
    }
}

fn collect_secret_fields(json: &Json, out: &mut Vec<String>) {
    match json {
        Json::Object(fields) => {
            for (k, v) in fields {
                match v {
                    Json::String(s) if is_secret_name(k) => out.push(s.clone()),
                    other => collect_secret_fields(other, out),
                }
            }
        }
        Json::Array(items) => items.iter().for_each(|i| collect_secret_fields(i, out)),
        _ => {}
    }
}

/// Headers whose value is a credential, whatever the integration's config says.
fn secret_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    is_secret_name(&name)
        || [
            "authorization",
            "cookie",
            "key",
            "signature",
            "auth",
            "credential",
        ]
        .iter()
        .any(|word| name.contains(word))
}

/// What the tape does with requests.
enum Mode {
    /// Send to the network; keep the exchanges (to print, or to record).
    Live(Network),
    /// Answer from a cassette; never touch the network.
    Replay,
}

/// The transport `connector test` lends the runtime: the network or a
/// cassette, keeping every exchange of the current record (scrubbed).
pub struct Tape {
    mode: Mode,
    state: Mutex<TapeState>,
}

struct TapeState {
    scrubber: Scrubber,
    /// What happened during the current record.
    exchanges: Vec<Interaction>,
    /// The current record's cassette and which of its interactions were used.
    replay: Vec<(Interaction, bool)>,
    /// Requests the cassette had no answer for, described.
    unrecorded: Vec<String>,
}

/// The exchanges of one record and, in replay, what did not match.
#[derive(Debug, Default)]
pub struct TapeReport {
    pub exchanges: Vec<Interaction>,
    pub unrecorded: Vec<String>,
    /// Recorded requests the connector did not make.
    pub unused: Vec<RecordedRequest>,
}

impl Tape {
    /// A tape over the network (`--live`, or no cassette at all).
    pub fn live(network: Network, config: &Json) -> Tape {
        Tape::new(Mode::Live(network), config)
    }

    /// A tape that answers only from cassettes.
    pub fn replay(config: &Json) -> Tape {
        Tape::new(Mode::Replay, config)
    }

    fn new(mode: Mode, config: &Json) -> Tape {
        Tape {
            mode,
            state: Mutex::new(TapeState {
                scrubber: Scrubber {
                    config: Redactor::from_config(config, &Json::Null),
                    learned: Vec::new(),
                },
                exchanges: Vec::new(),
                replay: Vec::new(),
                unrecorded: Vec::new(),
            }),
        }
    }

    /// Starts a record; in replay, with its cassette's interactions.
    pub fn begin(&self, cassette: Option<&Cassette>) {
        let mut state = self.lock();
        state.exchanges.clear();
        state.unrecorded.clear();
        state.replay = cassette
            .map(|c| c.interactions.iter().cloned().map(|i| (i, false)).collect())
            .unwrap_or_default();
    }

    /// Ends a record: what it exchanged and what did not match.
    pub fn finish(&self) -> TapeReport {
        let mut state = self.lock();
        TapeReport {
            exchanges: std::mem::take(&mut state.exchanges),
            unrecorded: std::mem::take(&mut state.unrecorded),
            unused: std::mem::take(&mut state.replay)
                .into_iter()
                .filter(|(_, used)| !used)
                .map(|(i, _)| i.request)
                .collect(),
        }
    }

    /// Scrubs with `redactor` from now on: the integration's, built with its
    /// connector's schema (`writeOnly` fields), which the tape cannot know
    /// before the connector is loaded.
    pub fn use_redactor(&self, redactor: Redactor) {
        self.lock().scrubber.config = redactor;
    }

    /// Scrubs `text` of every secret the tape knows (config and learned).
    pub fn scrub(&self, text: &str) -> String {
        self.lock().scrubber.text(text)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TapeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn answer_from_cassette(&self, seen: RecordedRequest) -> Result<Response, HttpError> {
        let mut state = self.lock();
        let found = state
            .replay
            .iter_mut()
            .find(|(recorded, used)| !*used && recorded.request.same_as(&seen));
        let Some((recorded, used)) = found else {
            let nearest = state
                .replay
                .iter()
                .filter(|(_, used)| !used)
                .map(|(i, _)| &i.request)
                .find(|r| r.method == seen.method && r.url == seen.url)
                .or_else(|| {
                    state
                        .replay
                        .iter()
                        .find(|(_, used)| !used)
                        .map(|(i, _)| &i.request)
                });
            let message = match nearest {
                // Same method and URL: only the bodies differ, so show where.
                Some(recorded) if recorded.method == seen.method && recorded.url == seen.url => {
                    format!(
                        "unrecorded request: {} {}\n    the cassette's closest unused request \
                         has the same method and URL; its body differs:{}",
                        seen.method,
                        seen.url,
                        body_diff(recorded.body.as_ref(), seen.body.as_ref())
                            .iter()
                            .map(|line| format!("\n      {line}"))
                            .collect::<String>()
                    )
                }
                Some(recorded) => format!(
                    "unrecorded request: {}\n    the cassette's closest unused request: {}",
                    seen.describe(),
                    recorded.describe()
                ),
                None => format!(
                    "unrecorded request: {}\n    the cassette has no unused request left",
                    seen.describe()
                ),
            };
            state.unrecorded.push(message);
            state.exchanges.push(Interaction {
                request: seen,
                response: None,
                error: Some(RecordedError::Connection("not in the cassette".into())),
            });
            return Err(HttpError::Connection(
                "request not in the cassette (prefsync connector test)".into(),
            ));
        };
        *used = true;
        let interaction = recorded.clone();
        state.exchanges.push(Interaction {
            request: seen,
            ..interaction.clone()
        });
        match (interaction.response, interaction.error) {
            (Some(response), _) => Ok(Response {
                status: response.status,
                headers: response.headers,
                body: response.body.map(|b| b.to_bytes()).unwrap_or_default(),
            }),
            (None, Some(error)) => Err(match error {
                RecordedError::Timeout => HttpError::Timeout,
                RecordedError::Connection(why) => HttpError::Connection(why),
                RecordedError::TooLarge(n) => HttpError::TooLarge(n),
                RecordedError::InvalidRequest(why) => HttpError::InvalidRequest(why),
                RecordedError::Denied(why) => HttpError::Denied(why),
            }),
            (None, None) => Err(HttpError::Connection("empty cassette entry".into())),
        }
    }
}

#[async_trait::async_trait]
impl Transport for Tape {
    async fn send(
        &self,
        request: Request,
        url: url::Url,
        timeout: Duration,
    ) -> Result<Response, HttpError> {
        let seen = self.lock().scrubber.request(&request, &url);
        match &self.mode {
            Mode::Replay => self.answer_from_cassette(seen),
            Mode::Live(network) => {
                let result = network.send(request, url, timeout).await;
                let mut state = self.lock();
                let interaction = match &result {
                    Ok(response) => Interaction {
                        request: seen,
                        response: Some(state.scrubber.response(response)),
                        error: None,
                    },
                    Err(error) => Interaction {
                        request: seen,
                        response: None,
                        error: Some(state.scrubber.error(error)),
                    },
                };
                // A token learned from this response is scrubbed from the
                // requests already kept too.
                let scrubber = &state.scrubber;
                let rescrubbed: Vec<Interaction> = state
                    .exchanges
                    .iter()
                    .map(|i| rescrub(scrubber, i))
                    .collect();
                state.exchanges = rescrubbed;
                state.exchanges.push(interaction);
                result
            }
        }
    }
}

/// Applies the scrubber's current knowledge to an already kept exchange.
fn rescrub(scrubber: &Scrubber, interaction: &Interaction) -> Interaction {
    let body = |b: &Option<Body>| match b {
        Some(Body::Json(json)) => Some(Body::Json(scrubber.json(json.clone()))),
        Some(Body::Text(text)) => Some(Body::Text(scrubber.text(text))),
        other => other.clone(),
    };
    let headers = |h: &[(String, String)]| -> Vec<(String, String)> {
        h.iter()
            .map(|(k, v)| (k.clone(), scrubber.text(v)))
            .collect()
    };
    Interaction {
        request: RecordedRequest {
            method: interaction.request.method.clone(),
            url: scrubber.text(&interaction.request.url),
            headers: headers(&interaction.request.headers),
            body: body(&interaction.request.body),
        },
        response: interaction.response.as_ref().map(|r| RecordedResponse {
            status: r.status,
            headers: headers(&r.headers),
            body: body(&r.body),
        }),
        error: interaction.error.clone(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_body_diff_names_each_differing_path_and_only_those() {
        let recorded = Body::Json(serde_json::json!({
            "attributes": {"newsletter": true, "email": "ann@example.com"},
            "lists": [1, 2], "dropped": "x"
        }));
        let sent = Body::Json(serde_json::json!({
            "attributes": {"newsletter": false, "email": "ann@example.com"},
            "lists": [1, 3], "added": null
        }));
        assert_eq!(
            body_diff(Some(&recorded), Some(&sent)),
            [
                "added: recorded nothing, sent null",
                "attributes.newsletter: recorded true, sent false",
                "dropped: recorded \"x\", sent nothing",
                "lists[1]: recorded 2, sent 3",
            ]
        );
        let text = |t: &str| Body::Text(t.into());
        assert_eq!(
            body_diff(Some(&text("a=1&b=2")), Some(&text("a=1&b=3"))),
            ["from character 6: recorded …a=1&b=2…, sent …a=1&b=3…"]
        );
    }

    use serde_json::json;

    use super::*;
    use crate::runtime::bindings::Method;

    fn scrubber() -> Scrubber {
        Scrubber {
            config: Redactor::from_config(
                &json!({
                    "authentication": {"url": "https://api.example.com", "api_key": "k-123456789"},
                    "properties": {"region_pin": "pin-5551234"}
                }),
                &json!({"properties": {"properties": {"properties": {"region_pin": {"writeOnly": true}}}}}),
            ),
            learned: Vec::new(),
        }
    }

    #[test]
    fn requests_lose_config_secrets_and_credential_headers() {
        let mut s = scrubber();
        let request = Request {
            method: Method::Post,
            url: "https://api.example.com/v1/x?apikey=k-123456789&page=2".into(),
            headers: vec![
                ("Authorization".into(), "Bearer whatever".into()),
                ("X-Trace".into(), "k-123456789".into()),
                ("Content-Type".into(), "application/json".into()),
            ],
            body: Some(br#"{"password": "hunter22", "note": "key k-123456789", "n": 1}"#.to_vec()),
            timeout_ms: None,
        };
        let url = url::Url::parse(&request.url).unwrap();
        let recorded = s.request(&request, &url);
        let text = serde_json::to_string(&recorded).unwrap();
        assert!(!text.contains("k-123456789"), "{text}");
        assert!(!text.contains("hunter22"), "{text}");
        assert!(!text.contains("whatever"), "{text}");
        assert!(recorded.url.contains("page=2"), "{}", recorded.url);
        assert_eq!(
            recorded.body,
            Some(Body::Json(
                json!({"password": REDACTED, "note": format!("key {REDACTED}"), "n": 1})
            ))
        );
        assert!(
            recorded
                .headers
                .contains(&("content-type".into(), "application/json".into()))
        );
    }

    #[test]
    fn write_only_fields_and_url_passwords_never_reach_a_cassette() {
        let mut s = scrubber();
        let request = Request {
            method: Method::Get,
            url: "https://ops:pw-in-url-77@api.example.com/v1/x?region=pin-5551234".into(),
            headers: vec![("X-Region".into(), "pin-5551234".into())],
            body: Some(b"pin=pin-5551234".to_vec()),
            timeout_ms: None,
        };
        let url = url::Url::parse(&request.url).unwrap();
        let text = serde_json::to_string(&s.request(&request, &url)).unwrap();
        assert!(!text.contains("pin-5551234"), "{text}");
        assert!(!text.contains("pw-in-url-77"), "{text}");
    }

    #[test]
    fn a_token_from_a_response_is_scrubbed_from_then_on() {
        let mut s = scrubber();
        let response = Response {
            status: 200,
            headers: vec![("set-cookie".into(), "session=abc".into())],
            body: br#"{"accessToken": "tok-abcdef", "expiresIn": 900}"#.to_vec(),
        };
        let recorded = s.response(&response);
        assert_eq!(
            recorded.body,
            Some(Body::Json(
                json!({"accessToken": REDACTED, "expiresIn": 900})
            ))
        );
        assert_eq!(recorded.headers[0].1, REDACTED);
        assert_eq!(
            s.text("GET /x?t=tok-abcdef"),
            format!("GET /x?t={REDACTED}")
        );
    }

    #[test]
    fn bodies_round_trip_as_json_text_or_base64() {
        for bytes in [
            br#"{"a":[1,true,null]}"#.to_vec(),
            b"<soap:Envelope/>".to_vec(),
            vec![0xff, 0x00, 0x10],
        ] {
            let body = Body::from_bytes(&bytes).unwrap();
            assert_eq!(Body::from_bytes(&body.to_bytes()), Some(body));
        }
        assert_eq!(Body::from_bytes(b""), None);
    }

    #[test]
    fn a_cassette_needs_one_answer_per_interaction() {
        let dir = std::env::temp_dir().join(format!("prefsync-cassette-{}", std::process::id()));
        let path = dir.join("r.json");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            &path,
            r#"{"connector": "x 1", "outcome": "skipped: x", "interactions": [{"request": {"method": "GET", "url": "https://a/"}}]}"#,
        )
        .unwrap();
        let error = Cassette::read(&path).unwrap_err().to_string();
        assert!(
            error.contains("interactions[0] needs exactly one"),
            "{error}"
        );
        std::fs::write(&path, r#"{"connector": "x 1", "outcome": 3}"#).unwrap();
        let error = Cassette::read(&path).unwrap_err().to_string();
        assert!(error.contains("line 1, column"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
