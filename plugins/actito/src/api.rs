//! Requests to Actito's API v4, the access token, and how answers are
//! classified.
//!
//! The token: `GET /auth/token` with the raw API key in `Authorization`
//! gives a bearer token that lives 15 minutes. It is kept in the host cache
//! for less than that; a 401 on a call means it expired early (or was
//! revoked), so the token is fetched again once and the call repeated.

use prefsync_sdk::connection::probe;
use prefsync_sdk::http::{encode_component, failure_from_response};
use prefsync_sdk::mapping::map_record;
use prefsync_sdk::{
    ConsentRecord, Context, DeliveredKind, Failure, Method, Outcome, Request, Response,
    ValidationProblem, Value,
};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use crate::config::ActitoConfig;

/// Where the token is kept in the (per-integration) host cache.
const TOKEN_CACHE_KEY: &str = "actito-access-token";
/// Kept at most this long, well inside the token's 15-minute life.
const TOKEN_TTL_SECONDS: u32 = 14 * 60;
const REQUEST_TIMEOUT_MS: u32 = 30_000;

pub fn deliver(ctx: &Context<'_>, config: &ActitoConfig, record: &ConsentRecord) -> Outcome {
    let mut token = match cached_or_new_token(ctx, config) {
        Ok(token) => token,
        Err(outcome) => return outcome,
    };
    let table = format!(
        "{}/v4/entity/{}/table/{}",
        config.base_url(),
        encode_component(&config.properties.entity_id),
        encode_component(&config.properties.table_name)
    );

    let mut existed = None;
    if !config.upsert_mode {
        let lookup = format!(
            "{table}/profile/{}={}",
            encode_component(&config.properties.user_unique_key),
            encode_component(&record.key)
        );
        match send(ctx, config, &mut token, || {
            Request::new(Method::Get, lookup.clone())
        }) {
            Err(outcome) => return outcome,
            Ok(r) if r.status == 404 => {
                ctx.debug("profile not found; upsert_mode is off", &[]);
                return Outcome::Skipped("profile not found".into());
            }
            Ok(r) if !(200..300).contains(&r.status) => {
                return failure_from_response(&r, &error_detail(&r));
            }
            Ok(_) => existed = Some(true),
        }
    }

    let body = profile_body(config, record);
    let url = format!("{table}/profile?allowUpdate=true");
    match send(ctx, config, &mut token, || {
        Request::new(Method::Post, url.clone()).json(&body)
    }) {
        Err(outcome) => outcome,
        Ok(r) if (200..300).contains(&r.status) => {
            // A profile we looked up was updated; otherwise Actito's 201 says created.
            if existed == Some(true) || r.status != 201 {
                Outcome::Delivered(DeliveredKind::Updated)
            } else {
                Outcome::Delivered(DeliveredKind::Created)
            }
        }
        Ok(r) => failure_from_response(&r, &error_detail(&r)),
    }
}

/// The profile write: the unique key, every metadata key as an attribute,
/// and each mapped choice as a subscription. A choice that is null or
/// absent (none made) changes no subscription.
pub fn profile_body(config: &ActitoConfig, record: &ConsentRecord) -> Json {
    let mut attributes =
        vec![json!({"name": config.properties.user_unique_key, "value": record.key})];
    for property in &record.properties {
        let Some(key) = property.name.strip_prefix("metadata_") else {
            continue;
        };
        if key.is_empty() || key == config.properties.user_unique_key {
            continue;
        }
        let value = match &property.value {
            Value::Null => continue,
            other => other.to_json(),
        };
        attributes.push(json!({"name": key, "value": value}));
    }
    let subscriptions: Vec<Json> = map_record(&config.mappings, record)
        .into_iter()
        .filter_map(|field| match field.value {
            Value::Boolean(subscribe) => Some(json!({"name": field.field, "subscribe": subscribe})),
            _ => None,
        })
        .collect();
    json!({
        "attributes": attributes,
        "subscriptions": subscriptions,
        "dataCollectionInformation": {
            "date": record.metadata.updated_at,
            "source": "prefsync",
            "way": "consent synchronisation"
        }
    })
}

/// Sends with the bearer token; on a 401, fetches a new token once and sends again.
fn send(
    ctx: &Context<'_>,
    config: &ActitoConfig,
    token: &mut String,
    build: impl Fn() -> Request,
) -> Result<Response, Outcome> {
    let call = |token: &str| {
        ctx.send(
            build()
                .header("Authorization", format!("Bearer {token}"))
                .header("Accept", "application/json")
                .timeout_ms(REQUEST_TIMEOUT_MS),
        )
        .map_err(|e| e.into_outcome("Actito request"))
    };
    let response = call(token)?;
    if response.status != 401 {
        return Ok(response);
    }
    ctx.debug("token refused; fetching a new one", &[]);
    *token = new_token(ctx, config)?;
    call(token)
}

fn cached_or_new_token(ctx: &Context<'_>, config: &ActitoConfig) -> Result<String, Outcome> {
    match ctx.cache_get(TOKEN_CACHE_KEY) {
        Some(token) => Ok(token),
        None => new_token(ctx, config),
    }
}

fn new_token(ctx: &Context<'_>, config: &ActitoConfig) -> Result<String, Outcome> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Token {
        access_token: String,
        #[serde(default)]
        expires_in: Option<String>,
    }
    let response = ctx
        .send(token_request(config))
        .map_err(|e| e.into_outcome("Actito token request"))?;
    match response.status {
        200..=299 => {}
        401 | 403 => {
            return Err(Outcome::Failed(Failure {
                retryable: false,
                retry_after_ms: None,
                message: format!(
                    "Actito refused the API key (HTTP {}): check authentication.private_api_key",
                    response.status
                ),
            }));
        }
        _ => return Err(failure_from_response(&response, "Actito token request")),
    }
    let token: Token = response.json().map_err(|e| {
        Outcome::Failed(Failure {
            retryable: true,
            retry_after_ms: None,
            message: format!("Actito token answer unreadable: {e}"),
        })
    })?;
    // `expiresIn` reads "900s"; keep the token a minute less than it lives.
    let ttl = token
        .expires_in
        .as_deref()
        .and_then(|s| s.trim_end_matches('s').parse::<u32>().ok())
        .map_or(TOKEN_TTL_SECONDS, |life| {
            life.saturating_sub(60).clamp(1, TOKEN_TTL_SECONDS)
        });
    ctx.cache_set(TOKEN_CACHE_KEY, &token.access_token, ttl);
    Ok(token.access_token)
}

/// The connection check: the token exchange, `GET {base}/auth/token` with
/// the raw key, which writes nothing. 2xx: the key was accepted; 401/403:
/// `authentication.private_api_key` refused; 408, 425, 429, 5xx or no
/// answer: the check could not be made. The token is not kept: the config
/// checked may not be the one stored (a `?check=true` on a replacement).
///
/// Nothing more is read with the token: the one documented read of the
/// table (a profile lookup by unique key) answers 404 both for a profile
/// that does not exist and for an entity or table Actito does not know, so
/// it could not tell `properties.entity_id` or `table_name` wrong.
pub fn check_connection(
    ctx: &Context<'_>,
    config: &ActitoConfig,
) -> Result<Vec<ValidationProblem>, String> {
    probe(ctx, token_request(config), "authentication.private_api_key")
}

/// `GET {base}/auth/token` with the raw key (Actito takes no scheme word).
fn token_request(config: &ActitoConfig) -> Request {
    Request::get(format!("{}/auth/token", config.base_url()))
        .header(
            "Authorization",
            config.authentication.private_api_key.clone(),
        )
        .header("Accept", "application/json")
        .timeout_ms(REQUEST_TIMEOUT_MS)
}

/// Actito's error text (`message` or `error`), or the start of the body.
fn error_detail(response: &Response) -> String {
    #[derive(Deserialize)]
    struct ApiError {
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        error: Option<String>,
    }
    match response.json::<ApiError>() {
        Ok(ApiError {
            message: Some(m), ..
        })
        | Ok(ApiError { error: Some(m), .. }) => m,
        _ => response.text_snippet(200),
    }
}

#[cfg(test)]
mod tests {
    use prefsync_sdk::testing::MockHost;
    use prefsync_sdk::{HttpError, connector};

    use super::*;
    use crate::Actito;

    const TOKEN_OK: &str =
        r#"{"accessToken": "tok-1", "tokenType": "bearer", "expiresIn": "900s"}"#;

    fn config(upsert: bool) -> String {
        json!({
            "type_id": "actito",
            "authentication": {"private_api_key": "KEY-0123456789"},
            "properties": {"entity_id": "ACME", "table_name": "Profiles", "user_unique_key": "email"},
            "mappings": [
                {"id": "Newsletter", "value": "consents_purposes_newsletter_enabled"},
                {"id": "Promo", "value": "consents_channels_sms_enabled"},
                {"id": "Partners", "value": "consents_purposes_partners_enabled"}
            ],
            "upsert_mode": upsert
        })
        .to_string()
    }

    fn record() -> ConsentRecord {
        ConsentRecord::new(
            "organization_user_id",
            "ann@example.com",
            &[
                (
                    "organization_user_id",
                    Value::Text("ann@example.com".into()),
                ),
                ("consents_purposes_newsletter_enabled", Value::Boolean(true)),
                ("consents_channels_sms_enabled", Value::Null),
                ("metadata_tier", Value::Text("gold".into())),
                ("metadata_age", Value::Number(42.0)),
                ("metadata_gone", Value::Null),
            ],
        )
    }

    fn run(host: &MockHost, upsert: bool) -> Outcome {
        connector::deliver::<Actito>(host, &config(upsert), &[record()]).remove(0)
    }

    fn body(host: &MockHost, index: usize) -> Json {
        serde_json::from_slice(host.requests.borrow()[index].body.as_ref().unwrap()).unwrap()
    }

    #[test]
    fn upsert_gets_a_token_then_writes_the_profile() {
        let host = MockHost::new();
        host.respond(200, &[], TOKEN_OK)
            .respond(201, &[], r#"{"profileId": 7}"#);
        assert_eq!(run(&host, true), Outcome::Delivered(DeliveredKind::Created));
        let requests = host.requests.borrow().clone();
        assert_eq!(requests[0].url, "https://api.actito.com/auth/token");
        assert!(
            requests[0]
                .headers
                .contains(&("Authorization".into(), "KEY-0123456789".into()))
        );
        assert_eq!(requests[1].method, Method::Post);
        assert_eq!(
            requests[1].url,
            "https://api.actito.com/v4/entity/ACME/table/Profiles/profile?allowUpdate=true"
        );
        assert!(
            requests[1]
                .headers
                .contains(&("Authorization".into(), "Bearer tok-1".into()))
        );
        let sent = body(&host, 1);
        assert_eq!(
            sent["attributes"],
            json!([{"name": "email", "value": "ann@example.com"}, {"name": "tier", "value": "gold"}, {"name": "age", "value": 42}])
        );
        // The null choice (Promo) and the absent one (Partners) change nothing.
        assert_eq!(
            sent["subscriptions"],
            json!([{"name": "Newsletter", "subscribe": true}])
        );
        // The token is reused from the cache.
        host.respond(200, &[], r#"{"profileId": 7}"#);
        assert_eq!(run(&host, true), Outcome::Delivered(DeliveredKind::Updated));
        assert_eq!(host.requests.borrow().len(), 3);
    }

    #[test]
    fn without_upsert_an_unknown_profile_is_skipped_and_a_known_one_updated() {
        let host = MockHost::new();
        host.respond(200, &[], TOKEN_OK).respond(404, &[], "");
        assert_eq!(
            run(&host, false),
            Outcome::Skipped("profile not found".into())
        );
        assert_eq!(
            host.requests.borrow()[1].url,
            "https://api.actito.com/v4/entity/ACME/table/Profiles/profile/email=ann%40example.com"
        );
        assert_eq!(host.requests.borrow().len(), 2, "nothing created");
        host.respond(200, &[], "{}")
            .respond(200, &[], r#"{"profileId": 7}"#);
        assert_eq!(
            run(&host, false),
            Outcome::Delivered(DeliveredKind::Updated)
        );
    }

    #[test]
    fn an_expired_token_is_renewed_once_and_the_call_repeated() {
        let host = MockHost::new();
        host.respond(200, &[], TOKEN_OK)
            .respond(401, &[], "")
            .respond(200, &[], r#"{"accessToken": "tok-2", "expiresIn": "900s"}"#)
            .respond(201, &[], r#"{"profileId": 7}"#);
        assert_eq!(run(&host, true), Outcome::Delivered(DeliveredKind::Created));
        let requests = host.requests.borrow().clone();
        assert!(
            requests[3]
                .headers
                .contains(&("Authorization".into(), "Bearer tok-2".into()))
        );
        // A second 401 in a row is not retried again here: the host schedules it.
        let host = MockHost::new();
        host.respond(200, &[], TOKEN_OK)
            .respond(401, &[], "")
            .respond(200, &[], TOKEN_OK)
            .respond(401, &[], r#"{"message": "token revoked"}"#);
        assert_eq!(
            run(&host, true),
            Outcome::Failed(Failure {
                retryable: false,
                retry_after_ms: None,
                message: "HTTP 401: token revoked".into()
            })
        );
    }

    // -- connection check --

    fn check(host: &MockHost) -> Result<Vec<ValidationProblem>, String> {
        prefsync_sdk::connection::check::<Actito>(host, &config(true))
    }

    #[test]
    fn connection_check_gets_a_token_with_the_raw_key_and_keeps_nothing() {
        let host = MockHost::new();
        host.respond_to(
            Method::Get,
            "https://api.actito.com/auth/token",
            200,
            &[],
            TOKEN_OK,
        );
        assert_eq!(check(&host), Ok(Vec::new()));
        let requests = host.requests.borrow().clone();
        assert_eq!(requests.len(), 1, "one request: the token exchange");
        assert_eq!(requests[0].method, Method::Get);
        assert!(requests[0].body.is_none());
        assert!(
            requests[0]
                .headers
                .contains(&("Authorization".into(), "KEY-0123456789".into())),
            "{:?}",
            requests[0].headers
        );
        // The token is not cached: a delivery gets its own.
        host.respond(200, &[], TOKEN_OK)
            .respond(201, &[], r#"{"profileId": 7}"#);
        assert_eq!(run(&host, true), Outcome::Delivered(DeliveredKind::Created));
        assert_eq!(
            host.requests.borrow()[1].url,
            "https://api.actito.com/auth/token"
        );
    }

    #[test]
    fn connection_check_refused_key_is_at_its_path_without_the_key() {
        for status in [401, 403] {
            let host = MockHost::new();
            host.respond(
                status,
                &[],
                r#"{"message": "invalid API key KEY-0123456789"}"#,
            );
            let problems = check(&host).unwrap();
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert_eq!(problems[0].path, "authentication.private_api_key");
            assert!(!problems[0].message.contains("KEY-0123456789"));
        }
        // Another 4xx (a wrong api_base, say) is the whole config's.
        let host = MockHost::new();
        host.respond(404, &[], "<html>not here</html>");
        assert_eq!(check(&host).unwrap()[0].path, "");
    }

    #[test]
    fn connection_check_cannot_be_made_on_5xx_429_or_timeout() {
        let host = MockHost::new();
        host.respond(503, &[], "");
        assert!(check(&host).is_err());
        host.respond(429, &[("Retry-After", "1")], "");
        assert!(check(&host).is_err());
        host.fail(HttpError::Timeout);
        let Err(reason) = check(&host) else { panic!() };
        assert!(reason.contains("could not be reached"), "{reason}");
        host.fail(HttpError::Denied("api.actito.com is not allowed".into()));
        assert_eq!(check(&host).unwrap()[0].path, "");
    }

    #[test]
    fn connection_check_uses_the_configured_api_base() {
        let host = MockHost::new();
        host.respond(200, &[], TOKEN_OK);
        let mut config: Json = serde_json::from_str(&config(true)).unwrap();
        config["properties"]["api_base"] = json!("api-pre1.actito.com/");
        assert_eq!(
            prefsync_sdk::connection::check::<Actito>(&host, &config.to_string()),
            Ok(Vec::new())
        );
        assert_eq!(
            host.requests.borrow()[0].url,
            "https://api-pre1.actito.com/auth/token"
        );
    }

    #[test]
    fn failures_are_classified() {
        let refused_key = MockHost::new();
        refused_key.respond(401, &[], "");
        let Outcome::Failed(f) = run(&refused_key, true) else {
            panic!()
        };
        assert!(
            !f.retryable && f.message.contains("refused the API key"),
            "{f:?}"
        );
        assert!(!f.message.contains("KEY-0123456789"));

        let busy = MockHost::new();
        busy.respond(200, &[], TOKEN_OK)
            .respond(429, &[("Retry-After", "2")], "");
        assert_eq!(
            run(&busy, true),
            Outcome::Failed(Failure {
                retryable: true,
                retry_after_ms: Some(2000),
                message: "HTTP 429".into()
            })
        );
        let down = MockHost::new();
        down.respond(200, &[], TOKEN_OK).respond(503, &[], "");
        assert!(matches!(
            run(&down, true),
            Outcome::Failed(Failure {
                retryable: true,
                ..
            })
        ));
        let bad = MockHost::new();
        bad.respond(200, &[], TOKEN_OK).respond(
            400,
            &[],
            r#"{"message": "unknown subscription Promo"}"#,
        );
        assert_eq!(
            run(&bad, true),
            Outcome::Failed(Failure {
                retryable: false,
                retry_after_ms: None,
                message: "HTTP 400: unknown subscription Promo".into()
            })
        );
        let timeout = MockHost::new();
        timeout.fail(HttpError::Timeout);
        assert!(matches!(
            run(&timeout, true),
            Outcome::Failed(Failure {
                retryable: true,
                ..
            })
        ));
    }
}
