//! Requests to Salesforce Marketing Cloud's REST API, the access token, and
//! how answers are classified.
//!
//! The token: `POST {auth base}/v2/token` with the installed package's client
//! credentials gives a bearer token that lives 20 minutes and names the
//! tenant's REST base (`rest_instance_url`). Both are kept in the host cache
//! for a minute less than the token lives; a 401 on a call means the token
//! expired early (or was revoked), so a new one is fetched once and the call
//! repeated once. Never a token per record.
//!
//! Rows: `POST {rest}/hub/v1/dataevents/key:{external key}/rowset` with at
//! most 50 `{keys, values}` rows, an upsert on the data extension's primary
//! key. Salesforce does not document what happens to the good rows of a call
//! with one bad row; the connector treats the call as all-or-nothing and, when
//! SFMC refuses rows (a 400 with `additionalErrors`), writes the rows of that
//! call one at a time, so only the rows at fault fail (upserts are idempotent,
//! so rows written twice are harmless).

use std::hash::{DefaultHasher, Hash, Hasher};

use prefsync_sdk::connection::{unreachable, verdict};
use prefsync_sdk::http::{StatusClass, classify_status, encode_component, retry_after_ms};
use prefsync_sdk::mapping::map_record;
use prefsync_sdk::{
    ConsentRecord, Context, DeliveredKind, Failure, HttpError, Method, Outcome, Request, Response,
    RowFailure, RowOutcome, SyncBatch, SyncMode, ValidationProblem,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};

use crate::config::SfmcConfig;

/// Most rows per rowset call, as Salesforce advises.
pub const MAX_ROWS: usize = 50;
/// The token lives 20 minutes; it is never kept longer than this.
const TOKEN_TTL_MAX_SECONDS: u32 = 19 * 60;
/// Kept this much less than the `expires_in` the token answer gives.
const TOKEN_TTL_MARGIN_SECONDS: u32 = 60;
const REQUEST_TIMEOUT_MS: u32 = 30_000;

/// Why a call failed, and whether trying again later may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFailure {
    pub retryable: bool,
    /// SFMC's own wait, in milliseconds.
    pub retry_after_ms: Option<u64>,
    pub message: String,
}

impl CallFailure {
    fn permanent(message: impl Into<String>) -> Self {
        CallFailure {
            retryable: false,
            retry_after_ms: None,
            message: message.into(),
        }
    }

    fn retryable(message: impl Into<String>, retry_after_ms: Option<u64>) -> Self {
        CallFailure {
            retryable: true,
            retry_after_ms,
            message: message.into(),
        }
    }

    /// A request that got no answer: timeouts and connection errors are
    /// retryable; an egress denial or a malformed request is not.
    fn from_http(error: &HttpError, context: &str) -> Self {
        let retryable = matches!(error, HttpError::Timeout | HttpError::Connection(_));
        let hint = match error {
            // The tenant's hosts come from the subdomain or the base URLs: say so.
            HttpError::Denied(_) => {
                " (the integration's allowlist holds {properties.subdomain}.auth/.rest.marketingcloudapis.com and the hosts of properties.auth_base_url and properties.rest_base_url)"
            }
            _ => "",
        };
        CallFailure {
            retryable,
            retry_after_ms: None,
            message: format!("{context}: {error}{hint}"),
        }
    }

    pub fn to_outcome(&self) -> Outcome {
        Outcome::Failed(Failure {
            retryable: self.retryable,
            retry_after_ms: self.retry_after_ms,
            message: self.message.clone(),
        })
    }

    pub fn to_row_failure(&self) -> RowFailure {
        RowFailure {
            retryable: self.retryable,
            field: None,
            message: self.message.clone(),
        }
    }
}

/// How SFMC refused a rowset call.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    /// The call as a whole (credentials, throttling, outage, unknown data
    /// extension): every row would get the same answer.
    Call(CallFailure),
    /// Some rows' contents (a 400 with `additionalErrors`: unknown column,
    /// wrong type, missing primary key); which ones SFMC does not say.
    Rows(CallFailure),
}

/// SFMC's error body: `{"message", "errorcode", "documentation",
/// "additionalErrors": [{"message", "errorcode"}]}`, and `retryAfter` on a
/// 429 of errorcode 50100.
#[derive(Debug, Default, Deserialize)]
struct ApiError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    errorcode: Option<i64>,
    #[serde(default, rename = "additionalErrors")]
    additional_errors: Vec<AdditionalError>,
    #[serde(default, rename = "retryAfter")]
    retry_after: Option<Json>,
}

#[derive(Debug, Default, Deserialize)]
struct AdditionalError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    errorcode: Option<i64>,
}

impl ApiError {
    /// `errorcode 10006: Unable to save rows…; 10000: Field X not found`.
    fn detail(&self) -> Option<String> {
        let mut text = match (self.errorcode, &self.message) {
            (Some(code), Some(message)) => format!("errorcode {code}: {message}"),
            (Some(code), None) => format!("errorcode {code}"),
            (None, Some(message)) => message.clone(),
            (None, None) => return None,
        };
        for extra in &self.additional_errors {
            text.push_str("; ");
            if let Some(code) = extra.errorcode {
                text.push_str(&format!("{code}: "));
            }
            text.push_str(extra.message.as_deref().unwrap_or("(no message)"));
        }
        Some(text)
    }

    /// `retryAfter` of the body, in seconds, as number or text.
    fn retry_after_ms(&self) -> Option<u64> {
        let seconds = match self.retry_after.as_ref()? {
            Json::Number(n) => n.as_f64()?,
            Json::String(s) => s.trim().parse().ok()?,
            _ => return None,
        };
        (seconds.is_finite() && seconds >= 0.0).then_some((seconds * 1000.0) as u64)
    }
}

/// Classifies a non-2xx answer of the REST API.
fn refusal(response: &Response) -> Refusal {
    let error: ApiError = response.json().unwrap_or_default();
    let detail = error.detail().unwrap_or_else(|| response.text_snippet(200));
    let message = if detail.is_empty() {
        format!("HTTP {}", response.status)
    } else {
        format!("HTTP {}: {detail}", response.status)
    };
    match response.status {
        // "Unable to save rows" with nothing more: SFMC's own hiccup, which
        // passes (Segment retries it too).
        400 if error.errorcode == Some(10006) && error.additional_errors.is_empty() => {
            Refusal::Call(CallFailure::retryable(message, None))
        }
        400 if !error.additional_errors.is_empty() => {
            Refusal::Rows(CallFailure::permanent(message))
        }
        // 50100 says how long (header and body); 50200 ("temporarily
        // blocked") gives no hint, and the host's backoff applies.
        429 => Refusal::Call(CallFailure::retryable(
            message,
            retry_after_ms(&response.headers).or_else(|| error.retry_after_ms()),
        )),
        status => match classify_status(status, &response.headers) {
            StatusClass::Retryable { retry_after_ms } => {
                Refusal::Call(CallFailure::retryable(message, retry_after_ms))
            }
            StatusClass::Success | StatusClass::Permanent => {
                Refusal::Call(CallFailure::permanent(message))
            }
        },
    }
}

/// `POST {auth base}/v2/token` with the client credentials (and the
/// business unit, when set), as JSON.
fn token_request(config: &SfmcConfig) -> Request {
    let auth = &config.authentication;
    let mut body = json!({
        "grant_type": "client_credentials",
        "client_id": auth.client_id,
        "client_secret": auth.client_secret,
    });
    if let Some(account_id) = &auth.account_id {
        body["account_id"] = json!(account_id);
    }
    Request::new(Method::Post, format!("{}/v2/token", config.auth_base())).json(&body)
}

/// Where refused client credentials are reported.
pub const SECRET_PATH: &str = "authentication.client_secret";
/// Where a business unit the package is not installed in is reported.
pub const ACCOUNT_PATH: &str = "authentication.account_id";
/// Where an unknown data extension is reported.
pub const DATA_EXTENSION_PATH: &str = "properties.data_extension_key";
/// Where a primary key the data extension cannot be read by is reported.
pub const PRIMARY_KEY_PATH: &str = "properties.primary_key";
/// Where a token answer's foreign REST base is reported.
pub const REST_BASE_PATH: &str = "properties.rest_base_url";
/// Each of the check's two requests.
const CHECK_TIMEOUT_MS: u32 = 15_000;

fn problem(path: &str, message: impl Into<String>) -> Vec<ValidationProblem> {
    vec![ValidationProblem {
        path: path.to_string(),
        message: message.into(),
    }]
}

/// The connection check: a new token (never the cached one: the cache is
/// keyed without the secret), then one read of the data extension with it.
///
/// 1. `POST {auth base}/v2/token`: 401/403 → the client credentials refused,
///    at `authentication.client_secret` — or at `authentication.account_id`
///    when the OAuth error names the account (the business unit); other
///    answers by [`verdict`] (400 → the whole config, 429/5xx → `Err`).
/// 2. `GET {rest}/data/v1/customobjectdata/key/{key}/rowset?$filter={primary
///    key} eq ''` (the connector's own row lookup, for a key no row has):
///    2xx accepted; 404 → `properties.data_extension_key`; 400 → the lookup
///    on `properties.primary_key` refused; 401/403 with the new token → the
///    installed package may not read data extensions
///    (`authentication.client_id`); 429/5xx → `Err`.
///
/// Nothing is written, nothing cached; no answer's body is quoted.
pub fn check_connection(
    ctx: &Context<'_>,
    config: &SfmcConfig,
) -> Result<Vec<ValidationProblem>, String> {
    #[derive(Deserialize)]
    struct Token {
        access_token: String,
        #[serde(default)]
        rest_instance_url: Option<String>,
    }
    #[derive(Default, Deserialize)]
    struct TokenError {
        #[serde(default)]
        error: Option<String>,
        #[serde(default)]
        error_description: Option<String>,
    }
    let response = match ctx.send(token_request(config).timeout_ms(CHECK_TIMEOUT_MS)) {
        Ok(response) => response,
        Err(error) => return unreachable(&error),
    };
    if matches!(response.status, 401 | 403) {
        let error: TokenError = response.json().unwrap_or_default();
        let names_account = config.authentication.account_id.is_some()
            && [error.error, error.error_description]
                .iter()
                .flatten()
                .any(|text| text.to_ascii_lowercase().contains("account"));
        return Ok(if names_account {
            problem(
                ACCOUNT_PATH,
                format!(
                    "SFMC refused the token for this business unit (HTTP {}): the package is not installed in it",
                    response.status
                ),
            )
        } else {
            problem(
                SECRET_PATH,
                format!(
                    "SFMC refused the client credentials (HTTP {}): check authentication.client_id and client_secret",
                    response.status
                ),
            )
        });
    }
    let refused = verdict(&response, SECRET_PATH)?;
    if !refused.is_empty() {
        return Ok(refused);
    }
    let token: Token = response
        .json()
        .map_err(|_| "SFMC's token answer has no access_token; try again later".to_string())?;
    let client = Client::new(ctx, config);
    let rest = match client.rest_base(token.rest_instance_url.as_deref()) {
        Ok(rest) => rest,
        Err(failure) => return Ok(problem(REST_BASE_PATH, failure.message)),
    };
    let filter = format!("{} eq ''", config.properties.primary_key);
    let url = format!(
        "{rest}/data/v1/customobjectdata/key/{}/rowset?$filter={}",
        client.data_extension(),
        encode_component(&filter)
    );
    let read = Request::get(url)
        .header("Authorization", format!("Bearer {}", token.access_token))
        .header("Accept", "application/json")
        .timeout_ms(CHECK_TIMEOUT_MS);
    let response = match ctx.send(read) {
        Ok(response) => response,
        Err(error) => return unreachable(&error),
    };
    let key = &config.properties.data_extension_key;
    Ok(match response.status {
        404 => problem(
            DATA_EXTENSION_PATH,
            format!("SFMC knows no data extension with external key `{key}` (HTTP 404)"),
        ),
        400 => problem(
            PRIMARY_KEY_PATH,
            format!(
                "SFMC refused a lookup on column `{}` of data extension `{key}` (HTTP 400)",
                config.properties.primary_key
            ),
        ),
        401 | 403 => problem(
            "authentication.client_id",
            format!(
                "SFMC gave a token but refused the data extension read with it (HTTP {}): the installed package needs Data Extensions Read",
                response.status
            ),
        ),
        _ => verdict(&response, SECRET_PATH)?,
    })
}

/// An access token and the REST base it was issued for.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Session {
    access_token: String,
    rest_base: String,
}

/// The REST API of one integration during one call: the session is fetched
/// (from the cache or SFMC) at the first request and renewed at most once.
pub struct Client<'c, 'h> {
    ctx: &'c Context<'h>,
    config: &'c SfmcConfig,
    session: Option<Session>,
    renewed: bool,
}

impl<'c, 'h> Client<'c, 'h> {
    pub fn new(ctx: &'c Context<'h>, config: &'c SfmcConfig) -> Self {
        Client {
            ctx,
            config,
            session: None,
            renewed: false,
        }
    }

    /// The cache key: one session per set of credentials and hosts, so an
    /// edited integration never reuses the token of its former credentials.
    fn cache_key(&self) -> String {
        let mut hasher = DefaultHasher::new();
        self.config.authentication.client_id.hash(&mut hasher);
        self.config.authentication.account_id.hash(&mut hasher);
        self.config.auth_base().hash(&mut hasher);
        self.config.rest_base_override().hash(&mut hasher);
        format!("sfmc-session:{:016x}", hasher.finish())
    }

    fn session(&mut self) -> Result<Session, CallFailure> {
        if let Some(session) = &self.session {
            return Ok(session.clone());
        }
        let cached = self
            .ctx
            .cache_get(&self.cache_key())
            .and_then(|text| serde_json::from_str::<Session>(&text).ok());
        let session = match cached {
            Some(session) => session,
            None => self.new_session()?,
        };
        self.session = Some(session.clone());
        Ok(session)
    }

    /// `POST {auth base}/v2/token` (client credentials), cached.
    fn new_session(&self) -> Result<Session, CallFailure> {
        #[derive(Deserialize)]
        struct Token {
            access_token: String,
            #[serde(default)]
            expires_in: Option<u64>,
            #[serde(default)]
            rest_instance_url: Option<String>,
        }
        #[derive(Default, Deserialize)]
        struct TokenError {
            #[serde(default)]
            error: Option<String>,
            #[serde(default)]
            error_description: Option<String>,
        }
        let response = self
            .ctx
            .send(token_request(self.config).timeout_ms(REQUEST_TIMEOUT_MS))
            .map_err(|e| CallFailure::from_http(&e, "SFMC token request"))?;
        match response.status {
            200..=299 => {}
            400 | 401 | 403 => {
                let error: TokenError = response.json().unwrap_or_default();
                let said = [error.error, error.error_description]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(": ");
                return Err(CallFailure::permanent(format!(
                    "SFMC refused the client credentials (HTTP {}{}{said}): check authentication.client_id, client_secret and account_id",
                    response.status,
                    if said.is_empty() { "" } else { ": " },
                )));
            }
            _ => {
                return Err(match refusal(&response) {
                    Refusal::Call(f) | Refusal::Rows(f) => CallFailure {
                        message: format!("SFMC token request: {}", f.message),
                        ..f
                    },
                });
            }
        }
        let token: Token = response.json().map_err(|e| {
            CallFailure::retryable(format!("SFMC token answer unreadable: {e}"), None)
        })?;
        let session = Session {
            rest_base: self.rest_base(token.rest_instance_url.as_deref())?,
            access_token: token.access_token,
        };
        let ttl = token.expires_in.map_or(TOKEN_TTL_MAX_SECONDS, |life| {
            u32::try_from(life)
                .unwrap_or(u32::MAX)
                .saturating_sub(TOKEN_TTL_MARGIN_SECONDS)
                .clamp(1, TOKEN_TTL_MAX_SECONDS)
        });
        if let Ok(text) = serde_json::to_string(&session) {
            self.ctx.cache_set(&self.cache_key(), &text, ttl);
        }
        Ok(session)
    }

    /// The REST base: the config's override, else the token answer's
    /// `rest_instance_url` if it is the tenant's own REST host (an answer
    /// naming any other host is refused, whatever the allowlist says), else
    /// the tenant's REST host.
    fn rest_base(&self, from_token: Option<&str>) -> Result<String, CallFailure> {
        if let Some(base) = self.config.rest_base_override() {
            return Ok(base);
        }
        let expected = self.config.tenant_rest_host();
        let Some(url) = from_token.map(|u| u.trim().trim_end_matches('/')) else {
            return Ok(format!("https://{expected}"));
        };
        let host = url
            .strip_prefix("https://")
            .and_then(|rest| rest.split(['/', '?', '#']).next())
            .unwrap_or_default();
        if host.eq_ignore_ascii_case(&expected) {
            Ok(url.to_string())
        } else {
            Err(CallFailure::permanent(format!(
                "the token answer names the REST base `{url}`, which is not this tenant's https://{expected}; set properties.rest_base_url to use another"
            )))
        }
    }

    /// Sends with the bearer token; on a 401, fetches a new token once (per
    /// call of the connector) and sends again.
    fn send(&mut self, build: impl Fn(&str) -> Request) -> Result<Response, CallFailure> {
        let session = self.session()?;
        let call = |session: &Session| {
            self.ctx
                .send(
                    build(&session.rest_base)
                        .header("Authorization", format!("Bearer {}", session.access_token))
                        .header("Accept", "application/json")
                        .timeout_ms(REQUEST_TIMEOUT_MS),
                )
                .map_err(|e| CallFailure::from_http(&e, "SFMC request"))
        };
        let response = call(&session)?;
        if response.status != 401 || self.renewed {
            return Ok(response);
        }
        self.ctx.debug("token refused; fetching a new one", &[]);
        self.renewed = true;
        let session = self.new_session()?;
        self.session = Some(session.clone());
        call(&session)
    }

    fn data_extension(&self) -> String {
        encode_component(&self.config.properties.data_extension_key)
    }

    /// One rowset call.
    fn write(&mut self, rows: &[Json]) -> Result<(), Refusal> {
        let path = format!("/hub/v1/dataevents/key:{}/rowset", self.data_extension());
        let response = self
            .send(|base| Request::new(Method::Post, format!("{base}{path}")).json(rows))
            .map_err(Refusal::Call)?;
        if (200..300).contains(&response.status) {
            Ok(())
        } else {
            Err(refusal(&response))
        }
    }

    /// Writes `rows` in calls of at most [`MAX_ROWS`]; see [`WriteReport`].
    pub fn write_rows(&mut self, rows: &[Json]) -> WriteReport {
        let mut report = WriteReport::default();
        // Once the call as a whole is refused, the rows left are not sent.
        let mut stop: Option<CallFailure> = None;
        for chunk in rows.chunks(MAX_ROWS) {
            if let Some(failure) = &stop {
                report
                    .results
                    .extend(chunk.iter().map(|_| Err(failure.clone())));
                continue;
            }
            match self.write(chunk) {
                Ok(()) => report.results.extend(chunk.iter().map(|_| Ok(()))),
                Err(Refusal::Rows(_)) if chunk.len() > 1 => {
                    self.ctx.debug(
                        "SFMC refused rows of the call; writing them one at a time",
                        &[("rows", &chunk.len().to_string())],
                    );
                    for row in chunk {
                        if let Some(failure) = &stop {
                            report.results.push(Err(failure.clone()));
                            continue;
                        }
                        match self.write(std::slice::from_ref(row)) {
                            Ok(()) => report.results.push(Ok(())),
                            Err(Refusal::Rows(failure)) => report.results.push(Err(failure)),
                            Err(Refusal::Call(failure)) => {
                                stop = Some(failure.clone());
                                report.results.push(Err(failure));
                            }
                        }
                    }
                }
                Err(Refusal::Rows(failure)) => report.results.push(Err(failure)),
                Err(Refusal::Call(failure)) => {
                    if report.results.is_empty() {
                        report.refused_whole = Some(failure.clone());
                    }
                    report
                        .results
                        .extend(chunk.iter().map(|_| Err(failure.clone())));
                    stop = Some(failure);
                }
            }
        }
        report
    }

    /// Whether the data extension has a row whose `column` is `value`:
    /// `GET /data/v1/customobjectdata/key/{key}/rowset?$filter={column} eq '{value}'`.
    pub fn row_exists(&mut self, column: &str, value: &str) -> Result<bool, CallFailure> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            count: Option<u64>,
            #[serde(default)]
            items: Vec<Json>,
        }
        // The filter's string literal doubles its quotes.
        let filter = format!("{column} eq '{}'", value.replace('\'', "''"));
        let path = format!(
            "/data/v1/customobjectdata/key/{}/rowset?$filter={}",
            self.data_extension(),
            encode_component(&filter)
        );
        let response = self.send(|base| Request::get(format!("{base}{path}")))?;
        if !(200..300).contains(&response.status) {
            return Err(match refusal(&response) {
                Refusal::Call(f) | Refusal::Rows(f) => f,
            });
        }
        let page: Page = response.json().map_err(|e| {
            CallFailure::retryable(format!("SFMC row lookup: unreadable answer ({e})"), None)
        })?;
        Ok(page.count.unwrap_or(page.items.len() as u64) > 0 || !page.items.is_empty())
    }
}

/// What became of rows written with [`Client::write_rows`].
#[derive(Debug, Default)]
pub struct WriteReport {
    /// One result per row, in order.
    pub results: Vec<Result<(), CallFailure>>,
    /// Set when the first call was refused as a whole: nothing was written.
    pub refused_whole: Option<CallFailure>,
}

/// A record's row: the primary key, every mapped property that has a value
/// (as text, as SFMC's examples send them: `"true"`, `"42"`), and the consent
/// date column. `None` when there is nothing to write.
pub fn row_for(config: &SfmcConfig, record: &ConsentRecord) -> Option<Json> {
    let mut values = Map::new();
    for field in map_record(&config.mappings, record) {
        // A choice not made (null) leaves the column as it is.
        if let Some(text) = field.value.to_text() {
            values.insert(field.field.to_string(), Json::String(text));
        }
    }
    if values.is_empty() {
        return None;
    }
    if let Some(column) = &config.properties.consent_date_column
        && !record.metadata.updated_at.is_empty()
    {
        values.insert(column.clone(), json!(record.metadata.updated_at));
    }
    Some(json!({
        "keys": {config.properties.primary_key.as_str(): record.key},
        "values": values,
    }))
}

/// Delivers a batch: with `upsert_mode` off, each user's row is looked up
/// first and a missing one skipped; the rest go in one rowset call.
pub fn deliver_batch(
    ctx: &Context<'_>,
    config: &SfmcConfig,
    records: &[ConsentRecord],
) -> Vec<Outcome> {
    let mut client = Client::new(ctx, config);
    let mut outcomes: Vec<Option<Outcome>> = vec![None; records.len()];
    let mut pending: Vec<(usize, Json)> = Vec::new();
    for (i, record) in records.iter().enumerate() {
        match row_for(config, record) {
            Some(row) => pending.push((i, row)),
            None => {
                outcomes[i] = Some(Outcome::Skipped(
                    "nothing to write: no mapped property has a value".into(),
                ))
            }
        }
    }
    if !config.upsert_mode {
        let mut existing = Vec::with_capacity(pending.len());
        // A lookup refused as a whole would be refused for every user.
        let mut stop: Option<CallFailure> = None;
        for (i, row) in pending {
            if let Some(failure) = &stop {
                outcomes[i] = Some(failure.to_outcome());
                continue;
            }
            let key = &records[i].key;
            match client.row_exists(&config.properties.primary_key, key) {
                Ok(true) => existing.push((i, row)),
                Ok(false) => {
                    ctx.for_record(key)
                        .debug("no row for this user; upsert_mode is off", &[]);
                    outcomes[i] = Some(Outcome::Skipped(format!(
                        "no row in data extension `{}` (upsert_mode is off)",
                        config.properties.data_extension_key
                    )));
                }
                Err(failure) => {
                    outcomes[i] = Some(failure.to_outcome());
                    stop = Some(failure);
                }
            }
        }
        pending = existing;
    }
    let rows: Vec<Json> = pending.iter().map(|(_, row)| row.clone()).collect();
    let report = client.write_rows(&rows);
    ctx.debug(
        "SFMC rowset written",
        &[
            ("rows", &rows.len().to_string()),
            (
                "refused",
                &report
                    .results
                    .iter()
                    .filter(|r| r.is_err())
                    .count()
                    .to_string(),
            ),
        ],
    );
    for ((i, _), result) in pending.iter().zip(report.results) {
        outcomes[*i] = Some(match result {
            // SFMC's rowset answer does not say whether a row was new.
            Ok(()) => Outcome::Delivered(DeliveredKind::Updated),
            Err(failure) => failure.to_outcome(),
        });
    }
    outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Outcome::permanent("internal: record left without outcome")))
        .collect()
}

/// Writes an activation batch: rows keyed on the batch's key column, with the
/// attributes as they are named in the data extension. `Insert` and `Update`
/// look each row up first.
pub fn sync(
    ctx: &Context<'_>,
    config: &SfmcConfig,
    batch: &SyncBatch,
) -> Result<Vec<RowOutcome>, RowFailure> {
    let mut client = Client::new(ctx, config);
    let mut outcomes: Vec<Option<RowOutcome>> = vec![None; batch.rows.len()];
    let mut pending: Vec<(usize, Json)> = Vec::new();
    for (i, row) in batch.rows.iter().enumerate() {
        if batch.mode != SyncMode::Upsert {
            // Nothing is written before the lookups end, so any failure here
            // refuses the batch as a whole.
            let exists = client
                .row_exists(&batch.key_field, &row.key)
                .map_err(|f| f.to_row_failure())?;
            match (batch.mode, exists) {
                (SyncMode::Insert, true) => {
                    outcomes[i] = Some(RowOutcome::Skipped(
                        "already in the data extension (insert mode)".into(),
                    ));
                    continue;
                }
                (SyncMode::Update, false) => {
                    outcomes[i] = Some(RowOutcome::Skipped(
                        "not in the data extension (update mode)".into(),
                    ));
                    continue;
                }
                _ => {}
            }
        }
        let values: Map<String, Json> = row
            .attributes
            .iter()
            .filter(|a| a.name != batch.key_field)
            .map(|a| {
                // A value that became null clears the column.
                let text = a.value.to_text().unwrap_or_default();
                (a.name.clone(), Json::String(text))
            })
            .collect();
        pending.push((
            i,
            json!({"keys": {batch.key_field.as_str(): row.key}, "values": values}),
        ));
    }
    let rows: Vec<Json> = pending.iter().map(|(_, row)| row.clone()).collect();
    let report = client.write_rows(&rows);
    // Refused before any row was written: the batch as a whole.
    if let Some(failure) = report.refused_whole {
        return Err(failure.to_row_failure());
    }
    for ((i, _), result) in pending.iter().zip(report.results) {
        let row = &batch.rows[*i];
        outcomes[*i] = Some(match result {
            Ok(()) if batch.mode == SyncMode::Update || row.known => RowOutcome::Updated,
            Ok(()) => RowOutcome::Inserted,
            Err(failure) => RowOutcome::Failed(failure.to_row_failure()),
        });
    }
    Ok(outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or_else(|| {
                RowOutcome::Failed(RowFailure::permanent("internal: row left without outcome"))
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use prefsync_sdk::testing::MockHost;
    use prefsync_sdk::{SyncRow, Value, activation, connector};

    use super::*;
    use crate::Sfmc;

    const SECRET: &str = "client-secret-0123456789";
    const TOKEN_OK: &str = r#"{"access_token": "tok-1", "token_type": "Bearer", "expires_in": 1079,
        "scope": "data_extensions_read data_extensions_write",
        "soap_instance_url": "https://mc123.soap.marketingcloudapis.com/",
        "rest_instance_url": "https://mc123.rest.marketingcloudapis.com/"}"#;
    const REST: &str = "https://mc123.rest.marketingcloudapis.com";

    fn config(upsert: bool) -> String {
        json!({
            "type_id": "sfmc",
            "authentication": {"client_id": "client-1", "client_secret": SECRET, "account_id": "514000123"},
            "properties": {"subdomain": "mc123", "data_extension_key": "Consents",
                           "primary_key": "SubscriberKey", "consent_date_column": "OptIn_Date"},
            "mappings": [
                {"id": "Newsletter_OptIn", "value": "consents_purposes_newsletter_enabled"},
                {"id": "Sms_OptIn", "value": "consents_channels_sms_enabled"},
                {"id": "Partners_OptIn", "value": "consents_purposes_partners_enabled"},
                {"id": "Age", "value": "metadata_age"}
            ],
            "upsert_mode": upsert
        })
        .to_string()
    }

    fn record(key: &str, newsletter: bool) -> ConsentRecord {
        let mut record = ConsentRecord::new(
            "organization_user_id",
            key,
            &[
                ("organization_user_id", Value::Text(key.into())),
                (
                    "consents_purposes_newsletter_enabled",
                    Value::Boolean(newsletter),
                ),
                ("consents_channels_sms_enabled", Value::Null),
                ("metadata_age", Value::Number(42.0)),
            ],
        );
        record.metadata.updated_at = "2026-11-23T10:00:00Z".into();
        record
    }

    fn run(host: &MockHost, upsert: bool, records: &[ConsentRecord]) -> Vec<Outcome> {
        connector::deliver::<Sfmc>(host, &config(upsert), records)
    }

    fn body(host: &MockHost, index: usize) -> Json {
        serde_json::from_slice(host.requests.borrow()[index].body.as_ref().unwrap()).unwrap()
    }

    fn failure(outcome: &Outcome) -> &Failure {
        match outcome {
            Outcome::Failed(f) => f,
            other => panic!("not a failure: {other:?}"),
        }
    }

    const UPDATED: Outcome = Outcome::Delivered(DeliveredKind::Updated);

    #[test]
    fn one_token_then_one_rowset_call_for_the_batch() {
        let host = MockHost::new();
        host.respond(200, &[], TOKEN_OK).respond(200, &[], "[]");
        let records = [record("C-1", true), record("C-2", false)];
        assert_eq!(run(&host, true, &records), [UPDATED, UPDATED]);
        let requests = host.requests.borrow().clone();
        assert_eq!(
            requests[0].url,
            "https://mc123.auth.marketingcloudapis.com/v2/token"
        );
        assert_eq!(
            body(&host, 0),
            json!({"grant_type": "client_credentials", "client_id": "client-1",
                   "client_secret": SECRET, "account_id": "514000123"})
        );
        assert_eq!(requests[1].method, Method::Post);
        assert_eq!(
            requests[1].url,
            format!("{REST}/hub/v1/dataevents/key:Consents/rowset")
        );
        assert!(
            requests[1]
                .headers
                .contains(&("Authorization".into(), "Bearer tok-1".into()))
        );
        // Text values, no column for the null choice nor the absent one, the date column.
        assert_eq!(
            body(&host, 1),
            json!([
                {"keys": {"SubscriberKey": "C-1"},
                 "values": {"Newsletter_OptIn": "true", "Age": "42", "OptIn_Date": "2026-11-23T10:00:00Z"}},
                {"keys": {"SubscriberKey": "C-2"},
                 "values": {"Newsletter_OptIn": "false", "Age": "42", "OptIn_Date": "2026-11-23T10:00:00Z"}}
            ])
        );
        // The token is reused from the cache: never a token per record.
        host.respond(200, &[], "[]");
        assert_eq!(run(&host, true, &records[..1]), [UPDATED]);
        assert_eq!(host.requests.borrow().len(), 3);
        assert!(
            host.logs
                .borrow()
                .iter()
                .all(|(_, m, f)| !format!("{m}{f:?}").contains("tok-1")
                    && !format!("{m}{f:?}").contains(SECRET))
        );
    }

    #[test]
    fn without_upsert_rows_are_looked_up_and_missing_ones_skipped() {
        let host = MockHost::new();
        host.respond(200, &[], TOKEN_OK)
            .respond(200, &[], r#"{"count": 0, "items": []}"#)
            .respond(
                200,
                &[],
                r#"{"count": 1, "items": [{"keys": {"subscriberkey": "O'Neil"}}]}"#,
            )
            .respond(200, &[], "[]");
        let outcomes = run(&host, false, &[record("C-1", true), record("O'Neil", true)]);
        assert_eq!(
            outcomes,
            [
                Outcome::Skipped("no row in data extension `Consents` (upsert_mode is off)".into()),
                UPDATED
            ]
        );
        let requests = host.requests.borrow().clone();
        assert_eq!(
            requests[2].url,
            format!(
                "{REST}/data/v1/customobjectdata/key/Consents/rowset?$filter=SubscriberKey%20eq%20%27O%27%27Neil%27"
            )
        );
        assert_eq!(
            body(&host, 3).as_array().unwrap().len(),
            1,
            "only the existing row"
        );
    }

    #[test]
    fn an_expired_token_is_renewed_once_and_the_call_repeated() {
        let host = MockHost::new();
        host.respond(200, &[], TOKEN_OK)
            .respond(401, &[], r#"{"message": "Not Authorized", "errorcode": 0}"#)
            .respond(200, &[], &TOKEN_OK.replace("tok-1", "tok-2"))
            .respond(200, &[], "[]");
        assert_eq!(run(&host, true, &[record("C-1", true)]), [UPDATED]);
        assert!(
            host.requests.borrow()[3]
                .headers
                .contains(&("Authorization".into(), "Bearer tok-2".into()))
        );
        // A second 401 after a fresh token is not retried again here.
        let host = MockHost::new();
        host.respond(200, &[], TOKEN_OK)
            .respond(401, &[], "")
            .respond(200, &[], TOKEN_OK)
            .respond(401, &[], r#"{"message": "Not Authorized", "errorcode": 0}"#);
        let outcomes = run(&host, true, &[record("C-1", true)]);
        assert_eq!(
            failure(&outcomes[0]),
            &Failure {
                retryable: false,
                retry_after_ms: None,
                message: "HTTP 401: errorcode 0: Not Authorized".into()
            }
        );
        assert_eq!(host.requests.borrow().len(), 4);
    }

    #[test]
    fn refused_credentials_and_foreign_rest_hosts_are_permanent() {
        let host = MockHost::new();
        host.respond(
            401,
            &[],
            r#"{"error": "invalid_client", "error_description": "Invalid client ID."}"#,
        );
        let outcomes = run(&host, true, &[record("C-1", true), record("C-2", true)]);
        let f = failure(&outcomes[1]);
        assert!(!f.retryable);
        assert!(
            f.message.starts_with(
                "SFMC refused the client credentials (HTTP 401: invalid_client: Invalid client ID.)"
            ),
            "{f:?}"
        );
        assert!(!f.message.contains(SECRET));
        assert_eq!(
            host.requests.borrow().len(),
            1,
            "one token request per call"
        );

        let host = MockHost::new();
        host.respond(
            200,
            &[],
            &TOKEN_OK.replace("mc123.rest.marketingcloudapis.com", "evil.example.com"),
        );
        let f = failure(&run(&host, true, &[record("C-1", true)])[0]).clone();
        assert!(!f.retryable);
        assert!(f.message.contains("evil.example.com"), "{f:?}");
        assert_eq!(host.requests.borrow().len(), 1, "nothing sent there");

        let host = MockHost::new();
        host.respond(503, &[], "");
        assert!(failure(&run(&host, true, &[record("C-1", true)])[0]).retryable);
        let host = MockHost::new();
        host.fail(HttpError::Denied(
            "host x is not in this integration's allowlist".into(),
        ));
        let f = failure(&run(&host, true, &[record("C-1", true)])[0]).clone();
        assert!(
            !f.retryable && f.message.contains("properties.auth_base_url"),
            "{f:?}"
        );
    }

    #[test]
    fn errors_are_classified_as_sfmc_documents_them() {
        let classify = |status: u16, headers: &[(&str, &str)], body: &str| {
            let host = MockHost::new();
            host.respond(200, &[], TOKEN_OK)
                .respond(status, headers, body);
            failure(&run(&host, true, &[record("C-1", true)])[0]).clone()
        };
        // 10006 alone: retryable, no hint.
        assert_eq!(
            classify(
                400,
                &[],
                r#"{"message": "Unable to save rows for data extension ID 1a2b", "errorcode": 10006, "documentation": ""}"#
            ),
            Failure {
                retryable: true,
                retry_after_ms: None,
                message:
                    "HTTP 400: errorcode 10006: Unable to save rows for data extension ID 1a2b"
                        .into()
            }
        );
        // With additionalErrors: permanent, and they are named.
        let f = classify(
            400,
            &[],
            r#"{"message": "Unable to save rows for data extension ID 1a2b", "errorcode": 10006,
                "additionalErrors": [{"message": "The field Colour was not found", "errorcode": 10000}]}"#,
        );
        assert!(!f.retryable);
        assert!(
            f.message
                .ends_with("; 10000: The field Colour was not found"),
            "{f:?}"
        );
        // 429 50100: the wait from the header, else from the body.
        assert_eq!(
            classify(
                429,
                &[("Retry-After", "5")],
                r#"{"message": "Too many requests", "errorcode": 50100, "retryAfter": 5}"#
            )
            .retry_after_ms,
            Some(5000)
        );
        assert_eq!(
            classify(429, &[], r#"{"errorcode": 50100, "retryAfter": "7"}"#).retry_after_ms,
            Some(7000)
        );
        // 50200: retryable, no hint.
        let f = classify(
            429,
            &[],
            r#"{"message": "Requests temporarily blocked", "errorcode": 50200}"#,
        );
        assert!(f.retryable && f.retry_after_ms.is_none(), "{f:?}");
        assert!(classify(500, &[], "<soap:Fault/>").retryable);
        let f = classify(404, &[], r#"{"message": "Not found", "errorcode": 10000}"#);
        assert!(!f.retryable, "{f:?}");
        let host = MockHost::new();
        host.respond(200, &[], TOKEN_OK).fail(HttpError::Timeout);
        assert!(failure(&run(&host, true, &[record("C-1", true)])[0]).retryable);
    }

    #[test]
    fn a_refused_row_fails_alone_and_the_others_are_written() {
        let bad_rows = r#"{"message": "Unable to save rows", "errorcode": 10006,
            "additionalErrors": [{"message": "Age: invalid number", "errorcode": 10000}]}"#;
        let host = MockHost::new();
        host.respond(200, &[], TOKEN_OK)
            .respond(400, &[], bad_rows)
            .respond(200, &[], "[]")
            .respond(400, &[], bad_rows)
            .respond(200, &[], "[]");
        let outcomes = run(
            &host,
            true,
            &[
                record("C-1", true),
                record("C-2", true),
                record("C-3", true),
            ],
        );
        assert_eq!(outcomes[0], UPDATED);
        assert!(
            failure(&outcomes[1])
                .message
                .contains("Age: invalid number")
        );
        assert!(!failure(&outcomes[1]).retryable);
        assert_eq!(outcomes[2], UPDATED);
        let sizes: Vec<usize> = (1..5)
            .map(|i| body(&host, i).as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, [3, 1, 1, 1]);

        // A throttled call while writing one at a time stops the rest.
        let host = MockHost::new();
        host.respond(200, &[], TOKEN_OK)
            .respond(400, &[], bad_rows)
            .respond(429, &[], r#"{"errorcode": 50200}"#);
        let outcomes = run(&host, true, &[record("C-1", true), record("C-2", true)]);
        assert!(
            outcomes.iter().all(|o| failure(o).retryable),
            "{outcomes:?}"
        );
        assert_eq!(host.requests.borrow().len(), 3);
    }

    #[test]
    fn a_record_with_nothing_mapped_is_skipped_without_a_call() {
        let host = MockHost::new();
        let empty = ConsentRecord::new("organization_user_id", "C-9", &[]);
        assert_eq!(
            run(&host, true, &[empty]),
            [Outcome::Skipped(
                "nothing to write: no mapped property has a value".into()
            )]
        );
        assert!(host.requests.borrow().is_empty());
    }

    #[test]
    fn activations_write_rows_and_respect_the_mode() {
        let batch = |mode| SyncBatch {
            key_field: "Email".into(),
            mode,
            rows: vec![
                SyncRow::new(
                    "a@example.com",
                    &[("Tier", Value::Text("gold".into())), ("Score", Value::Null)],
                    false,
                ),
                SyncRow::new(
                    "b@example.com",
                    &[("Tier", Value::Text("silver".into()))],
                    true,
                ),
            ],
        };
        let host = MockHost::new();
        host.respond(200, &[], TOKEN_OK).respond(200, &[], "[]");
        let outcomes = activation::sync::<Sfmc>(&host, &config(true), &batch(SyncMode::Upsert));
        assert_eq!(
            outcomes.unwrap(),
            [RowOutcome::Inserted, RowOutcome::Updated]
        );
        assert_eq!(
            body(&host, 1),
            json!([
                {"keys": {"Email": "a@example.com"}, "values": {"Tier": "gold", "Score": ""}},
                {"keys": {"Email": "b@example.com"}, "values": {"Tier": "silver"}}
            ])
        );

        let host = MockHost::new();
        host.respond(200, &[], TOKEN_OK)
            .respond(200, &[], r#"{"count": 0, "items": []}"#)
            .respond(200, &[], r#"{"count": 1, "items": [{}]}"#)
            .respond(200, &[], "[]");
        let outcomes = activation::sync::<Sfmc>(&host, &config(true), &batch(SyncMode::Update));
        assert_eq!(
            outcomes.unwrap(),
            [
                RowOutcome::Skipped("not in the data extension (update mode)".into()),
                RowOutcome::Updated
            ]
        );
        assert_eq!(body(&host, 3).as_array().unwrap().len(), 1);

        // Refused as a whole before anything was written: the batch fails.
        let host = MockHost::new();
        host.respond(200, &[], TOKEN_OK)
            .respond(503, &[("Retry-After", "3")], "");
        let refused =
            activation::sync::<Sfmc>(&host, &config(true), &batch(SyncMode::Upsert)).unwrap_err();
        assert!(refused.retryable, "{refused:?}");
    }

    fn check(host: &MockHost, config: &str) -> Result<Vec<(String, String)>, String> {
        prefsync_sdk::connection::check::<Sfmc>(host, config)
            .map(|problems| problems.into_iter().map(|p| (p.path, p.message)).collect())
    }

    const CHECK_READ: &str =
        "/data/v1/customobjectdata/key/Consents/rowset?$filter=SubscriberKey%20eq%20%27%27";

    #[test]
    fn the_check_gets_a_new_token_then_reads_the_data_extension_and_writes_nothing() {
        let host = MockHost::new();
        // A delivery caches a token: the check gets its own all the same.
        host.respond(200, &[], TOKEN_OK).respond(200, &[], "[]");
        assert_eq!(run(&host, true, &[record("C-1", true)]), [UPDATED]);
        host.respond(200, &[], &TOKEN_OK.replace("tok-1", "tok-2"))
            .respond(200, &[], r#"{"count": 0, "items": []}"#);
        assert_eq!(check(&host, &config(true)), Ok(vec![]));
        let requests = host.requests.borrow()[2..].to_vec();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].method, Method::Post);
        assert_eq!(
            requests[0].url,
            "https://mc123.auth.marketingcloudapis.com/v2/token"
        );
        assert_eq!(
            serde_json::from_slice::<Json>(requests[0].body.as_ref().unwrap()).unwrap(),
            json!({"grant_type": "client_credentials", "client_id": "client-1",
                   "client_secret": SECRET, "account_id": "514000123"})
        );
        assert_eq!(requests[0].timeout_ms, Some(CHECK_TIMEOUT_MS));
        assert_eq!(requests[1].method, Method::Get);
        assert_eq!(requests[1].url, format!("{REST}{CHECK_READ}"));
        assert!(requests[1].body.is_none());
        assert!(
            requests[1]
                .headers
                .contains(&("Authorization".into(), "Bearer tok-2".into()))
        );
    }

    #[test]
    fn refused_credentials_are_a_problem_at_the_secret_or_the_business_unit() {
        let refused = |description: &str| {
            json!({"error": "invalid_client", "error_description": description,
                   "error_uri": "https://developer.salesforce.com"})
            .to_string()
        };
        let host = MockHost::new();
        host.respond(401, &[], &refused(&format!("Invalid client ID {SECRET}")));
        let problems = check(&host, &config(true)).unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, SECRET_PATH);
        assert!(!problems[0].1.contains(SECRET), "{problems:?}");
        assert!(!problems[0].1.contains("Invalid client"), "{problems:?}");
        assert_eq!(host.requests.borrow().len(), 1, "no read without a token");

        let host = MockHost::new();
        host.respond(
            401,
            &[],
            &refused("Invalid account_id: the package is not installed in this business unit."),
        );
        assert_eq!(check(&host, &config(true)).unwrap()[0].0, ACCOUNT_PATH);

        // A 400 of the token call is the whole config's.
        let host = MockHost::new();
        host.respond(400, &[], r#"{"error": "invalid_request"}"#);
        assert_eq!(check(&host, &config(true)).unwrap()[0].0, "");
    }

    #[test]
    fn an_unknown_data_extension_or_key_column_is_a_problem_at_its_field() {
        let host = MockHost::new();
        host.respond(200, &[], TOKEN_OK).respond(
            404,
            &[],
            r#"{"message": "Data extension with external key Consents not found", "errorcode": 10000}"#,
        );
        assert_eq!(
            check(&host, &config(true)),
            Ok(vec![(
                DATA_EXTENSION_PATH.to_string(),
                "SFMC knows no data extension with external key `Consents` (HTTP 404)".to_string()
            )])
        );
        let host = MockHost::new();
        host.respond(200, &[], TOKEN_OK).respond(
            400,
            &[],
            r#"{"message": "Invalid column name: SubscriberKey", "errorcode": 10000}"#,
        );
        assert_eq!(check(&host, &config(true)).unwrap()[0].0, PRIMARY_KEY_PATH);
        // A new token the REST API refuses: the package's permissions.
        let host = MockHost::new();
        host.respond(200, &[], TOKEN_OK).respond(403, &[], "{}");
        assert_eq!(
            check(&host, &config(true)).unwrap()[0].0,
            "authentication.client_id"
        );
        // A token answer naming another tenant's REST host.
        let host = MockHost::new();
        host.respond(200, &[], &TOKEN_OK.replace("mc123.rest", "evil.rest"));
        assert_eq!(check(&host, &config(true)).unwrap()[0].0, REST_BASE_PATH);
        assert_eq!(host.requests.borrow().len(), 1);
    }

    #[test]
    fn a_check_that_cannot_be_made_is_an_error() {
        for status in [429, 500, 503] {
            let host = MockHost::new();
            host.respond(status, &[], "{}");
            assert!(check(&host, &config(true)).is_err(), "token {status}");
            let host = MockHost::new();
            host.respond(200, &[], TOKEN_OK).respond(status, &[], "{}");
            assert!(check(&host, &config(true)).is_err(), "read {status}");
        }
        let host = MockHost::new();
        host.fail(HttpError::Timeout);
        assert!(check(&host, &config(true)).is_err());
        let host = MockHost::new();
        host.respond(200, &[], TOKEN_OK).fail(HttpError::Timeout);
        assert!(check(&host, &config(true)).is_err());
        // A 2xx without a token.
        let host = MockHost::new();
        host.respond(200, &[], "{}");
        assert!(check(&host, &config(true)).is_err());
    }
}
