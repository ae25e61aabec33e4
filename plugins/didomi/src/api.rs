//! Requests to Didomi's API, the session token, and how answers are
//! classified.
//!
//! The token: `POST /sessions` with the key and secret gives a JWT. Its life
//! is documented as 1 hour in most copies of Didomi's page and 24 in one, so
//! it is read from the JWT's own `exp` and kept in the host cache until five
//! minutes before; a 401 means it ended early, so a new session is made once
//! and the call repeated. Sessions are throttled (100 per 15 s per
//! organization), so never one per event.
//!
//! The connection check makes a session of its own (the key and secret),
//! then one read with it: the user lookup for an id no one has, which also
//! says whether the key belongs to `organization_id`.

use base64::Engine;
use prefsync_sdk::connection::{unreachable, verdict};
use prefsync_sdk::http::{encode_component, failure_from_response};
use prefsync_sdk::{
    ConsentRecord, Context, DeliveredKind, Failure, Method, Outcome, Request, Response,
    ValidationProblem,
};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use crate::config::DidomiConfig;
use crate::consents::{consents_body, not_held, writes_from_elsewhere};

/// Where the token is kept in the (per-integration) host cache.
const TOKEN_CACHE_KEY: &str = "didomi-session-token";
/// Renewed this long before the JWT says it ends.
const TOKEN_MARGIN_SECONDS: u64 = 5 * 60;
/// Kept at most this long when the JWT's `exp` cannot be read (the shortest
/// documented life, 1 hour, less the margin).
const TOKEN_FALLBACK_TTL_SECONDS: u32 = 55 * 60;
const REQUEST_TIMEOUT_MS: u32 = 30_000;
/// The host fact carrying the record's write id (the event id).
const WRITE_ID: &str = "write-id";
/// The delegate every written event names: who made the change on the
/// user's behalf, for Didomi's audit, and a second sign of our echo.
pub const DELEGATE_ID: &str = "prefsync";

pub fn deliver(ctx: &Context<'_>, config: &DidomiConfig, record: &ConsentRecord) -> Outcome {
    let writes = writes_from_elsewhere(&config.mappings, record);
    if writes.is_empty() {
        // The host does not send Didomi's own changes here; a record can
        // still carry none from elsewhere (e.g. only unmapped ones changed).
        return Outcome::Skipped("no mapped value came from outside Didomi".into());
    }
    let Some(event_id) = record
        .metadata
        .extra
        .iter()
        .find(|(key, _)| key == WRITE_ID)
        .map(|(_, id)| id.clone())
    else {
        return Outcome::permanent(
            "the host gave no write-id for this record (a prefsync host that writes back is needed)",
        );
    };
    let mut token = match cached_or_new_token(ctx, config) {
        Ok(token) => token,
        Err(outcome) => return outcome,
    };
    let base = config.base_url();
    let organization = encode_component(&config.properties.organization_id);

    // What Didomi holds already: nothing it holds is written again (a
    // retry after an unanswered write, or the same change made in both).
    let lookup = format!(
        "{base}/consents/users?organization_id={organization}&organization_user_id={}",
        encode_component(&record.key)
    );
    let user = match send(ctx, config, &mut token, || Request::get(lookup.clone())) {
        Err(outcome) => return outcome,
        Ok(r) if (200..300).contains(&r.status) => match r.json::<Users>() {
            Ok(users) => users.data.into_iter().next(),
            Err(_) => return Outcome::retryable("Didomi's user lookup answer is unreadable"),
        },
        Ok(r) => return failure_from_response(&r, &error_detail(&r)),
    };
    if user.is_none() && !config.upsert_mode {
        ctx.debug("user not found in Didomi; upsert_mode is off", &[]);
        return Outcome::Skipped("user not found in Didomi".into());
    }
    let writes = not_held(writes, user.as_ref());
    if writes.is_empty() {
        return Outcome::Delivered(DeliveredKind::Unchanged);
    }

    let mut event = json!({
        "id": event_id,
        "user": {"organization_user_id": record.key},
        "consents": consents_body(&writes),
        "delegate": {"id": DELEGATE_ID, "name": "prefsync consent sync"},
    });
    if let Some(regulation) = &config.properties.regulation {
        event["regulation"] = json!(regulation);
    }
    let url = format!("{base}/consents/events?organization_id={organization}");
    match send(ctx, config, &mut token, || {
        Request::new(Method::Post, url.clone()).json(&event)
    }) {
        Err(outcome) => outcome,
        Ok(r) if (200..300).contains(&r.status) => Outcome::Delivered(if user.is_none() {
            DeliveredKind::Created
        } else {
            DeliveredKind::Updated
        }),
        // The event id is ours and the same on every retry: a conflict is
        // our earlier write, already stored.
        Ok(r) if r.status == 409 => {
            ctx.debug("event already written (409 on its id)", &[]);
            Outcome::Delivered(DeliveredKind::Unchanged)
        }
        Ok(r) => failure_from_response(&r, &error_detail(&r)),
    }
}

/// `GET /consents/users`: the users found (empty: no such user).
#[derive(Deserialize)]
struct Users {
    #[serde(default)]
    data: Vec<Json>,
}

/// Sends with the bearer token; on a 401, makes a new session once and sends again.
fn send(
    ctx: &Context<'_>,
    config: &DidomiConfig,
    token: &mut String,
    build: impl Fn() -> Request,
) -> Result<Response, Outcome> {
    let call = |token: &str| {
        ctx.send(
            build()
                .header("Authorization", format!("Bearer {token}"))
                .timeout_ms(REQUEST_TIMEOUT_MS),
        )
        .map_err(|e| e.into_outcome("Didomi request"))
    };
    let response = call(token)?;
    if response.status != 401 {
        return Ok(response);
    }
    ctx.debug("token refused; making a new session", &[]);
    *token = new_token(ctx, config)?;
    call(token)
}

fn cached_or_new_token(ctx: &Context<'_>, config: &DidomiConfig) -> Result<String, Outcome> {
    match ctx.cache_get(TOKEN_CACHE_KEY) {
        Some(token) => Ok(token),
        None => new_token(ctx, config),
    }
}

fn new_token(ctx: &Context<'_>, config: &DidomiConfig) -> Result<String, Outcome> {
    #[derive(Deserialize)]
    struct Session {
        access_token: String,
    }
    let request = Request::new(Method::Post, format!("{}/sessions", config.base_url()))
        .json(&json!({
            "type": "api-key",
            "key": config.authentication.key,
            "secret": config.authentication.secret,
        }))
        .timeout_ms(REQUEST_TIMEOUT_MS);
    let response = ctx
        .send(request)
        .map_err(|e| e.into_outcome("Didomi session request"))?;
    match response.status {
        200..=299 => {}
        // Didomi answers 400 to a refused key/secret pair.
        400 | 401 | 403 => {
            return Err(Outcome::Failed(Failure {
                retryable: false,
                retry_after_ms: None,
                message: format!(
                    "Didomi refused the API key (HTTP {}): check authentication.key and authentication.secret",
                    response.status
                ),
            }));
        }
        _ => return Err(failure_from_response(&response, "Didomi session request")),
    }
    let session: Session = response
        .json()
        .map_err(|_| Outcome::retryable("Didomi's session answer is unreadable"))?;
    let ttl = seconds_left(&session.access_token).map_or(TOKEN_FALLBACK_TTL_SECONDS, |left| {
        u32::try_from(left.saturating_sub(TOKEN_MARGIN_SECONDS).max(1)).unwrap_or(u32::MAX)
    });
    ctx.cache_set(TOKEN_CACHE_KEY, &session.access_token, ttl);
    Ok(session.access_token)
}

/// Where a refused key/secret pair is reported: the secret, the half of
/// the pair that is typed in (the key id is copied from Didomi's console);
/// the message names both.
pub const SECRET_PATH: &str = "authentication.secret";

/// The `organization_user_id` the connection check looks up: no user has
/// it, and looking it up creates nothing.
pub const CHECK_USER_ID: &str = "prefsync-connection-check";

/// Checks the connection: a new session (`POST /sessions`, Didomi's token
/// call; the token is not cached), then `GET /consents/users` for
/// [`CHECK_USER_ID`] in `organization_id` with it (a read; `/consents/*` is
/// not throttled). A refused pair (400, 401, 403 on the session) is a
/// problem at [`SECRET_PATH`]; a 403 or 404 on the read, the organization
/// (at `properties.organization_id`). 429, 5xx, a timeout: the check could
/// not be made.
pub fn check_connection(
    ctx: &Context<'_>,
    config: &DidomiConfig,
) -> Result<Vec<ValidationProblem>, String> {
    let problem = |path: &str, message: String| {
        Ok(vec![ValidationProblem {
            path: path.into(),
            message,
        }])
    };
    let base = config.base_url();
    let session = Request::new(Method::Post, format!("{base}/sessions"))
        .json(&json!({
            "type": "api-key",
            "key": config.authentication.key,
            "secret": config.authentication.secret,
        }))
        .timeout_ms(REQUEST_TIMEOUT_MS);
    let response = match ctx.send(session) {
        Ok(response) => response,
        Err(error) => return unreachable(&error),
    };
    match response.status {
        200..=299 => {}
        // Didomi answers 400 to a refused key/secret pair.
        400 | 401 | 403 => {
            return problem(
                SECRET_PATH,
                format!(
                    "Didomi refused the key and secret (HTTP {}): check authentication.key and authentication.secret",
                    response.status
                ),
            );
        }
        _ => return verdict(&response, SECRET_PATH),
    }
    #[derive(Deserialize)]
    struct Session {
        access_token: String,
    }
    let Ok(Session { access_token }) = response.json::<Session>() else {
        return Err("Didomi's session answer is unreadable".into());
    };
    let lookup = format!(
        "{base}/consents/users?organization_id={}&organization_user_id={CHECK_USER_ID}",
        encode_component(&config.properties.organization_id)
    );
    let read = Request::get(lookup)
        .header("Authorization", format!("Bearer {access_token}"))
        .timeout_ms(REQUEST_TIMEOUT_MS);
    let response = match ctx.send(read) {
        Ok(response) => response,
        Err(error) => return unreachable(&error),
    };
    match response.status {
        403 | 404 => problem(
            "properties.organization_id",
            format!(
                "Didomi refused this organization for the key (HTTP {}): check the organization id",
                response.status
            ),
        ),
        _ => verdict(&response, SECRET_PATH),
    }
}

/// Seconds a just-issued JWT lives: `exp - iat` (a sandboxed connector
/// reads no clock). `None` when the token says neither.
fn seconds_left(jwt: &str) -> Option<u64> {
    #[derive(Deserialize)]
    struct Claims {
        exp: u64,
        iat: u64,
    }
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Claims = serde_json::from_slice(&bytes).ok()?;
    Some(claims.exp.saturating_sub(claims.iat))
}

/// Didomi's error text (`message`), or the start of the body.
fn error_detail(response: &Response) -> String {
    #[derive(Deserialize)]
    struct ApiError {
        #[serde(default)]
        message: Option<String>,
    }
    match response.json::<ApiError>() {
        Ok(ApiError { message: Some(m) }) => m,
        _ => response.text_snippet(200),
    }
}

#[cfg(test)]
mod tests {
    use prefsync_sdk::testing::MockHost;
    use prefsync_sdk::{HttpError, Value, connector};

    use super::*;
    use crate::Didomi;

    /// A session answer whose JWT lives an hour (`iat` 1000, `exp` 4600).
    fn session(name: &str) -> String {
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"iat": 1000, "exp": 4600, "sub": "key"}"#);
        format!(r#"{{"access_token": "h.{claims}.{name}"}}"#)
    }

    fn config(upsert: bool) -> String {
        json!({
            "type_id": "didomi",
            "authentication": {"key": "KEY-0123456789", "secret": "SECRET-0123456789"},
            "properties": {"organization_id": "acme org"},
            "mappings": [
                {"id": "purposes.newsletter.enabled", "value": "consents_purposes_newsletter_enabled"},
                {"id": "channels.email.enabled", "value": "consents_channels_email_enabled"}
            ],
            "upsert_mode": upsert
        })
        .to_string()
    }

    /// Ann's record: the newsletter choice came from Actito's webhook, the
    /// email choice from Didomi.
    fn record() -> ConsentRecord {
        let mut record = ConsentRecord::new(
            "organization_user_id",
            "ann@example.com",
            &[
                (
                    "consents_purposes_newsletter_enabled",
                    Value::Boolean(false),
                ),
                ("consents_channels_email_enabled", Value::Boolean(true)),
            ],
        );
        record.metadata.extra = vec![
            (
                "write-id".into(),
                "0b5c3a6e-1d2f-8a4b-8000-000000000007".into(),
            ),
            (
                "source:consents_purposes_newsletter_enabled".into(),
                "actito".into(),
            ),
        ];
        record
    }

    fn run(host: &MockHost, upsert: bool, record: ConsentRecord) -> Outcome {
        connector::deliver::<Didomi>(host, &config(upsert), &[record]).remove(0)
    }

    fn body(host: &MockHost, index: usize) -> Json {
        serde_json::from_slice(host.requests.borrow()[index].body.as_ref().unwrap()).unwrap()
    }

    const ANN_SUBSCRIBED: &str = r#"{"data": [{"id": "u-1", "organization_user_id": "ann@example.com",
        "consents": {"purposes": [{"id": "newsletter", "enabled": true}], "channels": [{"id": "email", "enabled": true}]}}]}"#;

    #[test]
    fn a_change_from_elsewhere_is_written_as_one_event_with_our_id_and_delegate() {
        let host = MockHost::new();
        host.respond(200, &[], &session("t1"))
            .respond(200, &[], ANN_SUBSCRIBED)
            .respond(
                201,
                &[],
                r#"{"id": "0b5c3a6e-1d2f-8a4b-8000-000000000007", "status": "confirmed"}"#,
            );
        assert_eq!(
            run(&host, false, record()),
            Outcome::Delivered(DeliveredKind::Updated)
        );
        let requests = host.requests.borrow().clone();
        assert_eq!(requests[0].url, "https://api.didomi.io/v1/sessions");
        assert_eq!(
            body(&host, 0),
            json!({"type": "api-key", "key": "KEY-0123456789", "secret": "SECRET-0123456789"})
        );
        assert_eq!(
            requests[1].url,
            "https://api.didomi.io/v1/consents/users?organization_id=acme%20org&organization_user_id=ann%40example.com"
        );
        assert!(
            requests[1]
                .headers
                .iter()
                .any(|(k, v)| k == "Authorization" && v.ends_with(".t1"))
        );
        assert_eq!(requests[2].method, Method::Post);
        assert_eq!(
            requests[2].url,
            "https://api.didomi.io/v1/consents/events?organization_id=acme%20org"
        );
        // Only the newsletter choice: the email choice came from Didomi.
        assert_eq!(
            body(&host, 2),
            json!({
                "id": "0b5c3a6e-1d2f-8a4b-8000-000000000007",
                "user": {"organization_user_id": "ann@example.com"},
                "consents": {"purposes": [{"id": "newsletter", "enabled": false}]},
                "delegate": {"id": "prefsync", "name": "prefsync consent sync"}
            })
        );
        // The session is reused.
        host.respond(200, &[], ANN_SUBSCRIBED)
            .respond(201, &[], "{}");
        assert_eq!(
            run(&host, false, record()),
            Outcome::Delivered(DeliveredKind::Updated)
        );
        assert_eq!(host.requests.borrow().len(), 5);
    }

    #[test]
    fn what_didomi_holds_or_already_stored_is_not_written_again() {
        let host = MockHost::new();
        host.respond(200, &[], &session("t1")).respond(
            200,
            &[],
            r#"{"data": [{"consents": {"purposes": [{"id": "newsletter", "enabled": false}]}}]}"#,
        );
        assert_eq!(
            run(&host, false, record()),
            Outcome::Delivered(DeliveredKind::Unchanged)
        );
        assert_eq!(host.requests.borrow().len(), 2, "no event posted");
        // A retry of a write Didomi stored without our hearing: 409 on our id.
        host.respond(200, &[], ANN_SUBSCRIBED).respond(
            409,
            &[],
            r#"{"message": "event already exists"}"#,
        );
        assert_eq!(
            run(&host, false, record()),
            Outcome::Delivered(DeliveredKind::Unchanged)
        );
    }

    #[test]
    fn nothing_from_elsewhere_and_unknown_users_without_upsert_are_skipped() {
        let host = MockHost::new();
        let mut from_didomi = record();
        from_didomi
            .metadata
            .extra
            .retain(|(k, _)| !k.starts_with("source:"));
        assert_eq!(
            run(&host, true, from_didomi),
            Outcome::Skipped("no mapped value came from outside Didomi".into())
        );
        assert!(host.requests.borrow().is_empty(), "no call at all");

        host.respond(200, &[], &session("t1"))
            .respond(200, &[], r#"{"data": []}"#);
        assert_eq!(
            run(&host, false, record()),
            Outcome::Skipped("user not found in Didomi".into())
        );
        host.respond(200, &[], r#"{"data": []}"#)
            .respond(201, &[], "{}");
        assert_eq!(
            run(&host, true, record()),
            Outcome::Delivered(DeliveredKind::Created)
        );
    }

    #[test]
    fn an_expired_session_is_renewed_once() {
        let host = MockHost::new();
        host.respond(200, &[], &session("t1"))
            .respond(401, &[], r#"{"message": "jwt expired"}"#)
            .respond(200, &[], &session("t2"))
            .respond(200, &[], ANN_SUBSCRIBED)
            .respond(201, &[], "{}");
        assert_eq!(
            run(&host, false, record()),
            Outcome::Delivered(DeliveredKind::Updated)
        );
        let requests = host.requests.borrow().clone();
        assert!(
            requests[3]
                .headers
                .iter()
                .any(|(k, v)| k == "Authorization" && v.ends_with(".t2"))
        );
    }

    #[test]
    fn failures_are_classified_and_never_quote_the_secret() {
        let refused = MockHost::new();
        refused.respond(400, &[], r#"{"message": "invalid key SECRET-0123456789"}"#);
        let Outcome::Failed(f) = run(&refused, false, record()) else {
            panic!()
        };
        assert!(
            !f.retryable && f.message.contains("refused the API key"),
            "{f:?}"
        );
        assert!(!f.message.contains("SECRET-0123456789"));

        let busy = MockHost::new();
        busy.respond(200, &[], &session("t1"))
            .respond(429, &[("Retry-After", "3")], "");
        assert_eq!(
            run(&busy, false, record()),
            Outcome::Failed(Failure {
                retryable: true,
                retry_after_ms: Some(3000),
                message: "HTTP 429".into()
            })
        );
        let unknown_purpose = MockHost::new();
        unknown_purpose
            .respond(200, &[], &session("t1"))
            .respond(200, &[], ANN_SUBSCRIBED)
            .respond(
                400,
                &[],
                r#"{"message": "purpose newsletter does not exist"}"#,
            );
        assert_eq!(
            run(&unknown_purpose, false, record()),
            Outcome::permanent("HTTP 400: purpose newsletter does not exist")
        );
        let timeout = MockHost::new();
        timeout.fail(HttpError::Timeout);
        assert!(matches!(
            run(&timeout, false, record()),
            Outcome::Failed(Failure {
                retryable: true,
                ..
            })
        ));
    }

    #[test]
    fn the_token_lives_as_long_as_its_jwt_says() {
        let jwt = |claims: &str| {
            format!(
                "h.{}.s",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims)
            )
        };
        assert_eq!(
            seconds_left(&jwt(r#"{"iat": 10, "exp": 3610}"#)),
            Some(3600)
        );
        assert_eq!(seconds_left(&jwt(r#"{"exp": 3610}"#)), None);
        assert_eq!(seconds_left("not-a-jwt"), None);
    }

    fn check(host: &MockHost) -> Result<Vec<ValidationProblem>, String> {
        prefsync_sdk::connection::check::<Didomi>(host, &config(true))
    }

    const LOOKUP: &str = "https://api.didomi.io/v1/consents/users?organization_id=acme%20org&organization_user_id=prefsync-connection-check";

    #[test]
    fn the_check_makes_a_session_and_reads_one_unknown_user_with_it() {
        let host = MockHost::new();
        host.respond_to(
            Method::Post,
            "https://api.didomi.io/v1/sessions",
            200,
            &[],
            &session("t1"),
        )
        .respond_to(Method::Get, LOOKUP, 200, &[], r#"{"data": [], "total": 0}"#);
        assert_eq!(check(&host), Ok(Vec::new()));
        let requests = host.requests.borrow();
        assert_eq!(requests.len(), 2);
        // The token call, with the pair as Didomi wants it…
        assert_eq!(requests[0].method, Method::Post);
        assert_eq!(
            body(&host, 0),
            json!({"type": "api-key", "key": "KEY-0123456789", "secret": "SECRET-0123456789"})
        );
        // …then a read with its token; no event is ever posted.
        assert_eq!(requests[1].method, Method::Get);
        assert!(requests[1].body.is_none());
        assert!(
            requests[1]
                .headers
                .iter()
                .any(|(k, v)| k == "Authorization" && v.ends_with(".t1"))
        );
        // The check's token is not kept for deliveries.
        assert_eq!(
            prefsync_sdk::context::Host::cache_get(&host, TOKEN_CACHE_KEY),
            None
        );
    }

    #[test]
    fn the_check_names_a_refused_pair_at_the_secret_without_quoting_didomi() {
        for status in [400, 401, 403] {
            let host = MockHost::new();
            host.respond(
                status,
                &[],
                r#"{"message": "invalid key or secret SECRET-0123456789"}"#,
            );
            let problems = check(&host).unwrap();
            assert_eq!(problems.len(), 1, "{status}");
            assert_eq!(problems[0].path, "authentication.secret");
            assert!(!problems[0].message.contains("SECRET-0123456789"));
            assert_eq!(host.requests.borrow().len(), 1, "no read without a token");
        }
    }

    #[test]
    fn the_check_names_an_organization_the_key_does_not_belong_to() {
        for status in [403, 404] {
            let host = MockHost::new();
            host.respond(200, &[], &session("t1")).respond(
                status,
                &[],
                r#"{"message": "not a member of this organization"}"#,
            );
            let problems = check(&host).unwrap();
            assert_eq!(problems.len(), 1, "{status}");
            assert_eq!(problems[0].path, "properties.organization_id");
        }
    }

    #[test]
    fn the_check_cannot_be_made_on_a_5xx_a_429_or_a_timeout() {
        for status in [500, 503, 429] {
            let at_session = MockHost::new();
            at_session.respond(status, &[], "");
            assert!(check(&at_session).is_err(), "{status}");
            let at_read = MockHost::new();
            at_read
                .respond(200, &[], &session("t1"))
                .respond(status, &[], "");
            assert!(check(&at_read).is_err(), "{status}");
        }
        let timeout = MockHost::new();
        timeout.fail(HttpError::Timeout);
        assert!(check(&timeout).is_err());
        let unreadable = MockHost::new();
        unreadable.respond(200, &[], "<html>");
        assert!(check(&unreadable).is_err());
        let denied = MockHost::new();
        denied.fail(HttpError::Denied("api.didomi.io is not allowed".into()));
        assert_eq!(check(&denied).unwrap()[0].path, "");
    }
}
