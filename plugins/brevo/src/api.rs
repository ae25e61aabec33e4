//! Requests to Brevo's contacts API v3 and how its answers are classified.
//!
//! One contact per request: Brevo's only multi-contact write,
//! `POST /v3/contacts/batch`, updates existing contacts only and is
//! deprecated from 30 October 2026, so it is not used.
//!
//! - Upsert: `POST /v3/contacts` with `updateEnabled: true` (201 created,
//!   204 updated).
//! - Update only, and any write that must remove the contact from a list
//!   (the create call has no `unlinkListIds`): `PUT /v3/contacts/{email}`
//!   (204; 404 when the contact does not exist).
//! - Connection check: `GET /v3/account` (the key), then
//!   `GET /v3/contacts/lists/{id}` for each list in `properties.lists`
//!   (404: no such list). Both only read.

use prefsync_sdk::connection::{unreachable, verdict};
use prefsync_sdk::http::{encode_component, failure_from_response, retry_after_ms};
use prefsync_sdk::{
    ConsentRecord, Context, DeliveredKind, Failure, HttpError, Method, Outcome, Request, Response,
    ValidationProblem, Value,
};
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use crate::config::BrevoConfig;

const REQUEST_TIMEOUT_MS: u32 = 30_000;

/// Brevo's wait hint on a 429: seconds left in the rate-limit window. Brevo
/// sends no `Retry-After`.
pub const RATE_LIMIT_RESET_HEADER: &str = "x-sib-ratelimit-reset";

/// What one record changes on its Brevo contact.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactChange {
    /// Mapped attributes that have a value (null and absent ones are left out).
    pub attributes: Map<String, Json>,
    /// `Some(true)`: unsubscribed from all email; `Some(false)`: lifted.
    pub email_blacklisted: Option<bool>,
    /// The same for SMS.
    pub sms_blacklisted: Option<bool>,
    /// Lists to add the contact to.
    pub list_ids: Vec<u64>,
    /// Lists to remove the contact from.
    pub unlink_list_ids: Vec<u64>,
}

impl ContactChange {
    /// The change `record` asks for under `config`. A choice that is null
    /// or absent (none made) changes neither a blacklist nor a list.
    pub fn from_record(config: &BrevoConfig, record: &ConsentRecord) -> Self {
        let choice = |property: &Option<String>| match property
            .as_deref()
            .and_then(|name| record.property(name))
        {
            Some(Value::Boolean(given)) => Some(*given),
            _ => None,
        };
        let mut change = ContactChange {
            email_blacklisted: choice(&config.properties.email_consent).map(|given| !given),
            sms_blacklisted: choice(&config.properties.sms_consent).map(|given| !given),
            ..Default::default()
        };
        for mapping in &config.mappings {
            match record.property(&mapping.value) {
                None | Some(Value::Null) => {}
                Some(value) => {
                    change
                        .attributes
                        .insert(mapping.id.clone(), value.to_json());
                }
            }
        }
        for list in &config.properties.lists {
            match record.property(&list.value) {
                Some(Value::Boolean(true)) => change.list_ids.push(list.list_id),
                Some(Value::Boolean(false)) => change.unlink_list_ids.push(list.list_id),
                _ => {}
            }
        }
        change
    }

    pub fn is_empty(&self) -> bool {
        *self == ContactChange::default()
    }

    /// The fields both calls share; `unlink` adds `unlinkListIds` (the
    /// update call only).
    fn fields(&self, unlink: bool) -> Map<String, Json> {
        let mut body = Map::new();
        if !self.attributes.is_empty() {
            body.insert("attributes".into(), Json::Object(self.attributes.clone()));
        }
        if let Some(blacklisted) = self.email_blacklisted {
            body.insert("emailBlacklisted".into(), json!(blacklisted));
        }
        if let Some(blacklisted) = self.sms_blacklisted {
            body.insert("smsBlacklisted".into(), json!(blacklisted));
        }
        if !self.list_ids.is_empty() {
            body.insert("listIds".into(), json!(self.list_ids));
        }
        if unlink && !self.unlink_list_ids.is_empty() {
            body.insert("unlinkListIds".into(), json!(self.unlink_list_ids));
        }
        body
    }

    /// Body of `POST /v3/contacts` (create, or update with `updateEnabled`).
    pub fn create_body(&self, email: &str, update_enabled: bool) -> Json {
        let mut body = Map::new();
        body.insert("email".into(), json!(email));
        if update_enabled {
            body.insert("updateEnabled".into(), json!(true));
        }
        body.extend(self.fields(false));
        Json::Object(body)
    }

    /// Body of `PUT /v3/contacts/{email}`.
    pub fn update_body(&self) -> Json {
        Json::Object(self.fields(true))
    }
}

pub fn deliver(ctx: &Context<'_>, config: &BrevoConfig, record: &ConsentRecord) -> Outcome {
    let email = match contact_email(config, record) {
        Ok(email) => email,
        Err(outcome) => return outcome,
    };
    let change = ContactChange::from_record(config, record);
    if change.is_empty() {
        return Outcome::Skipped("nothing to write: no mapped value or choice is set".into());
    }
    // The create call cannot remove a contact from a list: when a list is
    // to be left, the update goes first and creates only if it finds no one.
    if !config.upsert_mode || !change.unlink_list_ids.is_empty() {
        match update(ctx, config, &email, &change) {
            Err(outcome) => return outcome,
            Ok(Updated::Yes) => return Outcome::Delivered(DeliveredKind::Updated),
            Ok(Updated::NotFound) if !config.upsert_mode => {
                ctx.debug("contact not found; upsert_mode is off", &[]);
                return Outcome::Skipped("contact not found".into());
            }
            // A new contact is on no list: nothing to unlink.
            Ok(Updated::NotFound) => {}
        }
    }
    upsert(ctx, config, &email, &change)
}

/// The contact's email: the record's key, or the property
/// `properties.email_property` names.
pub fn contact_email(config: &BrevoConfig, record: &ConsentRecord) -> Result<String, Outcome> {
    let (source, email) = match config.properties.email_property.as_deref() {
        None => (record.key_name.as_str(), Some(record.key.clone())),
        Some(name) => (
            name,
            match record.property(name) {
                Some(Value::Text(text)) => Some(text.clone()),
                _ => None,
            },
        ),
    };
    let Some(email) = email
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty())
    else {
        return Err(Outcome::Skipped(format!(
            "no email address: the user has no `{source}`"
        )));
    };
    // Brevo reads a path identifier that is not an email as a contact id
    // or an external id: never risk writing another contact.
    if !email.contains('@') {
        return Err(Outcome::permanent(format!(
            "`{source}` is not an email address, and Brevo identifies contacts by email \
             (set properties.email_property to the property that holds it)"
        )));
    }
    Ok(email)
}

/// What the update call found.
enum Updated {
    Yes,
    NotFound,
}

fn update(
    ctx: &Context<'_>,
    config: &BrevoConfig,
    email: &str,
    change: &ContactChange,
) -> Result<Updated, Outcome> {
    let url = format!(
        "{}/v3/contacts/{}?identifierType=email_id",
        config.base_url(),
        encode_component(email)
    );
    let response = send(
        ctx,
        config,
        Request::new(Method::Put, url).json(&change.update_body()),
    )?;
    match response.status {
        200..=299 => Ok(Updated::Yes),
        404 if is_contact_not_found(&response) => Ok(Updated::NotFound),
        _ => Err(failure(&response)),
    }
}

fn upsert(ctx: &Context<'_>, config: &BrevoConfig, email: &str, change: &ContactChange) -> Outcome {
    let url = format!("{}/v3/contacts", config.base_url());
    let request = Request::new(Method::Post, url).json(&change.create_body(email, true));
    match send(ctx, config, request) {
        Err(outcome) => outcome,
        Ok(r) if r.status == 201 => Outcome::Delivered(DeliveredKind::Created),
        // 204: an existing contact was updated.
        Ok(r) if (200..300).contains(&r.status) => Outcome::Delivered(DeliveredKind::Updated),
        Ok(r) => failure(&r),
    }
}

fn send(ctx: &Context<'_>, config: &BrevoConfig, request: Request) -> Result<Response, Outcome> {
    ctx.send(
        request
            .header("api-key", config.authentication.api_key.clone())
            .timeout_ms(REQUEST_TIMEOUT_MS),
    )
    .map_err(|e| e.into_outcome("Brevo request"))
}

/// Where the key sits in the config: a refused key is reported there.
pub const KEY_PATH: &str = "authentication.api_key";

/// Checks the connection: the key with `GET /v3/account` (Brevo's account
/// details, the cheapest authenticated read; it writes nothing), then each
/// list of `properties.lists` with `GET /v3/contacts/lists/{id}` (a 404 is
/// a problem at that list's `list_id`). 401/403 is the key refused; 429 and
/// 5xx, a timeout or no connection mean the check could not be made.
pub fn check_connection(
    ctx: &Context<'_>,
    config: &BrevoConfig,
) -> Result<Vec<ValidationProblem>, String> {
    let base = config.base_url();
    let account = match read(ctx, config, format!("{base}/v3/account")) {
        Ok(response) => response,
        Err(error) => return unreachable(&error),
    };
    let problems = verdict(&account, KEY_PATH)?;
    if !problems.is_empty() {
        return Ok(problems);
    }
    let mut problems = Vec::new();
    for (i, list) in config.properties.lists.iter().enumerate() {
        let url = format!("{base}/v3/contacts/lists/{}", list.list_id);
        let response = match read(ctx, config, url) {
            Ok(response) => response,
            Err(error) => return unreachable(&error),
        };
        if response.status == 404 {
            problems.push(ValidationProblem {
                path: format!("properties.lists[{i}].list_id"),
                message: format!("Brevo has no list {} in this account", list.list_id),
            });
            continue;
        }
        // Anything else that is not a 2xx ends the check with its verdict.
        let refused = verdict(&response, KEY_PATH)?;
        if !refused.is_empty() {
            return Ok(refused);
        }
    }
    Ok(problems)
}

/// A check's `GET`, with the key.
fn read(ctx: &Context<'_>, config: &BrevoConfig, url: String) -> Result<Response, HttpError> {
    ctx.send(
        Request::get(url)
            .header("api-key", config.authentication.api_key.clone())
            .header("accept", "application/json")
            .timeout_ms(REQUEST_TIMEOUT_MS),
    )
}

/// Brevo's error body, `{"code": "invalid_parameter", "message": "…"}`.
#[derive(Debug, Default, Deserialize)]
pub struct ApiError {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// A 404 that means "no such contact": Brevo's `document_not_found`, or no
/// body at all. Any other 404 (a wrong `api_base`, say) is a failure, so a
/// misdirected integration never skips every contact in silence.
fn is_contact_not_found(response: &Response) -> bool {
    if response.body.iter().all(u8::is_ascii_whitespace) {
        return true;
    }
    response
        .json::<ApiError>()
        .is_ok_and(|e| e.code.as_deref() == Some("document_not_found"))
}

/// `code: message` from Brevo's error body, or the start of the body.
pub fn error_detail(response: &Response) -> String {
    match response.json::<ApiError>() {
        Ok(ApiError {
            code: Some(code),
            message: Some(message),
        }) => format!("{code}: {message}"),
        Ok(ApiError {
            code: Some(text), ..
        })
        | Ok(ApiError {
            message: Some(text),
            ..
        }) => text,
        _ => response.text_snippet(200),
    }
}

/// Classifies a non-2xx answer: 408/425/429/5xx retryable (after
/// `x-sib-ratelimit-reset` seconds on a 429), other 4xx permanent with
/// Brevo's code and message, and a hint of what to fix where there is one.
pub fn failure(response: &Response) -> Outcome {
    let detail = error_detail(response);
    let hint = match response.status {
        401 => Some("Brevo refused the API key: check authentication.api_key"),
        402 => Some("the Brevo account has not enough credit"),
        403 => Some("the API key may not do this: check its permissions in Brevo"),
        _ => None,
    };
    match (failure_from_response(response, &detail), hint) {
        (
            Outcome::Failed(Failure {
                retryable: true,
                retry_after_ms: None,
                message,
            }),
            _,
        ) => Outcome::Failed(Failure {
            retryable: true,
            retry_after_ms: rate_limit_wait_ms(response),
            message,
        }),
        (
            Outcome::Failed(Failure {
                retryable: false,
                message,
                ..
            }),
            Some(hint),
        ) => Outcome::permanent(format!("{hint} ({message})")),
        (other, _) => other,
    }
}

/// The wait `x-sib-ratelimit-reset` asks for (seconds; read as a Unix time
/// when that large, as the SDK reads `X-RateLimit-Reset`).
pub fn rate_limit_wait_ms(response: &Response) -> Option<u64> {
    let reset = response.header(RATE_LIMIT_RESET_HEADER)?;
    retry_after_ms(&[("x-ratelimit-reset".to_string(), reset.to_string())])
}

#[cfg(test)]
mod tests {
    use prefsync_sdk::testing::MockHost;
    use prefsync_sdk::{HttpError, connector};

    use super::*;
    use crate::Brevo;

    const KEY: &str = "xkeysib-0123456789abcdef";

    fn config(upsert: bool) -> Json {
        json!({
            "type_id": "brevo",
            "authentication": {"api_key": KEY},
            "properties": {
                "email_consent": "consents_channels_email_enabled",
                "sms_consent": "consents_channels_sms_enabled",
                "lists": [
                    {"list_id": 12, "value": "consents_purposes_newsletter_enabled"},
                    {"list_id": 13, "value": "consents_purposes_offers_enabled"},
                    {"list_id": 14, "value": "consents_purposes_partners_enabled"}
                ]
            },
            "mappings": [
                {"id": "NEWSLETTER_OPTIN", "value": "consents_purposes_newsletter_enabled"},
                {"id": "TIER", "value": "metadata_tier"},
                {"id": "AGE", "value": "metadata_age"},
                {"id": "GONE", "value": "metadata_gone"}
            ],
            "upsert_mode": upsert
        })
    }

    fn record(properties: &[(&str, Value)]) -> ConsentRecord {
        let mut all = vec![(
            "organization_user_id",
            Value::Text("ann+news@example.com".into()),
        )];
        all.extend(properties.iter().cloned());
        ConsentRecord::new("organization_user_id", "ann+news@example.com", &all)
    }

    fn subscribed() -> ConsentRecord {
        record(&[
            ("consents_purposes_newsletter_enabled", Value::Boolean(true)),
            ("consents_channels_email_enabled", Value::Boolean(true)),
            ("consents_channels_sms_enabled", Value::Null),
            ("metadata_tier", Value::Text("gold".into())),
            ("metadata_age", Value::Number(42.0)),
            ("metadata_gone", Value::Null),
        ])
    }

    fn withdrawn() -> ConsentRecord {
        record(&[
            (
                "consents_purposes_newsletter_enabled",
                Value::Boolean(false),
            ),
            ("consents_purposes_offers_enabled", Value::Boolean(true)),
            ("consents_channels_email_enabled", Value::Boolean(false)),
            ("consents_channels_sms_enabled", Value::Boolean(false)),
        ])
    }

    fn run(host: &MockHost, config: &Json, record: ConsentRecord) -> Outcome {
        connector::deliver::<Brevo>(host, &config.to_string(), &[record]).remove(0)
    }

    fn body(host: &MockHost, index: usize) -> Json {
        serde_json::from_slice(host.requests.borrow()[index].body.as_ref().unwrap()).unwrap()
    }

    fn failed(outcome: Outcome) -> Failure {
        match outcome {
            Outcome::Failed(f) => f,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn upsert_posts_the_contact_with_attributes_lists_and_blacklist() {
        let host = MockHost::new();
        host.respond(201, &[], r#"{"id": 123}"#);
        assert_eq!(
            run(&host, &config(true), subscribed()),
            Outcome::Delivered(DeliveredKind::Created)
        );
        let request = host.requests.borrow()[0].clone();
        assert_eq!(request.method, Method::Post);
        assert_eq!(request.url, "https://api.brevo.com/v3/contacts");
        assert!(request.headers.contains(&("api-key".into(), KEY.into())));
        assert!(
            request
                .headers
                .contains(&("Content-Type".into(), "application/json".into()))
        );
        // Null and absent values change nothing: no GONE, no smsBlacklisted,
        // no list 13 or 14.
        assert_eq!(
            body(&host, 0),
            json!({
                "email": "ann+news@example.com",
                "updateEnabled": true,
                "attributes": {"NEWSLETTER_OPTIN": true, "TIER": "gold", "AGE": 42},
                "emailBlacklisted": false,
                "listIds": [12]
            })
        );
        host.respond(204, &[], "");
        assert_eq!(
            run(&host, &config(true), subscribed()),
            Outcome::Delivered(DeliveredKind::Updated)
        );
        assert!(
            host.logs
                .borrow()
                .iter()
                .all(|(_, m, f)| { !m.contains(KEY) && f.iter().all(|(_, v)| !v.contains(KEY)) })
        );
    }

    #[test]
    fn withdrawal_blacklists_and_unlinks_through_the_update_call() {
        let host = MockHost::new();
        host.respond(204, &[], "");
        assert_eq!(
            run(&host, &config(true), withdrawn()),
            Outcome::Delivered(DeliveredKind::Updated)
        );
        let request = host.requests.borrow()[0].clone();
        assert_eq!(request.method, Method::Put);
        assert_eq!(
            request.url,
            "https://api.brevo.com/v3/contacts/ann%2Bnews%40example.com?identifierType=email_id"
        );
        assert_eq!(
            body(&host, 0),
            json!({
                "attributes": {"NEWSLETTER_OPTIN": false},
                "emailBlacklisted": true,
                "smsBlacklisted": true,
                "listIds": [13],
                "unlinkListIds": [12]
            })
        );
        // Unknown to Brevo: created, blacklisted, without the unlink (a new
        // contact is on no list, and the create call has no unlinkListIds).
        let host = MockHost::new();
        host.respond(
            404,
            &[],
            r#"{"code": "document_not_found", "message": "Contact does not exist"}"#,
        )
        .respond(201, &[], r#"{"id": 9}"#);
        assert_eq!(
            run(&host, &config(true), withdrawn()),
            Outcome::Delivered(DeliveredKind::Created)
        );
        assert_eq!(
            body(&host, 1),
            json!({
                "email": "ann+news@example.com",
                "updateEnabled": true,
                "attributes": {"NEWSLETTER_OPTIN": false},
                "emailBlacklisted": true,
                "smsBlacklisted": true,
                "listIds": [13]
            })
        );
    }

    #[test]
    fn without_upsert_a_missing_contact_is_skipped_and_a_known_one_updated() {
        let host = MockHost::new();
        host.respond(
            404,
            &[],
            r#"{"code": "document_not_found", "message": "Contact does not exist"}"#,
        );
        assert_eq!(
            run(&host, &config(false), subscribed()),
            Outcome::Skipped("contact not found".into())
        );
        assert_eq!(host.requests.borrow().len(), 1, "nothing created");
        assert_eq!(host.requests.borrow()[0].method, Method::Put);
        host.respond(204, &[], "");
        assert_eq!(
            run(&host, &config(false), subscribed()),
            Outcome::Delivered(DeliveredKind::Updated)
        );
        assert_eq!(
            body(&host, 1),
            json!({
                "attributes": {"NEWSLETTER_OPTIN": true, "TIER": "gold", "AGE": 42},
                "emailBlacklisted": false,
                "listIds": [12]
            })
        );
        // A 404 that is not Brevo's "no such contact" is not a skip.
        host.respond(404, &[], "<html>Not Found</html>");
        let f = failed(run(&host, &config(false), subscribed()));
        assert!(!f.retryable && f.message.contains("HTTP 404"), "{f:?}");
    }

    #[test]
    fn the_email_comes_from_the_key_or_the_named_property() {
        let mut with_property = config(true);
        with_property["properties"]["email_property"] = json!("metadata_email");
        let host = MockHost::new();
        host.respond(201, &[], r#"{"id": 1}"#);
        let mut user = subscribed();
        user.key = "U-42".into();
        user.properties.push(prefsync_sdk::Property {
            name: "metadata_email".into(),
            value: Value::Text("ann@example.com".into()),
        });
        assert_eq!(
            run(&host, &with_property, user.clone()),
            Outcome::Delivered(DeliveredKind::Created)
        );
        assert_eq!(body(&host, 0)["email"], "ann@example.com");

        user.properties.retain(|p| p.name != "metadata_email");
        assert_eq!(
            run(&host, &with_property, user.clone()),
            Outcome::Skipped("no email address: the user has no `metadata_email`".into())
        );
        // A key that is not an email is never sent (Brevo would read it as a contact id).
        let f = failed(run(&host, &config(false), user));
        assert!(!f.retryable);
        assert!(f.message.contains("is not an email address"), "{f:?}");
        assert_eq!(host.requests.borrow().len(), 1);

        let nothing = record(&[("consents_purposes_newsletter_enabled", Value::Null)]);
        assert_eq!(
            run(&host, &config(true), nothing),
            Outcome::Skipped("nothing to write: no mapped value or choice is set".into())
        );
        assert_eq!(host.requests.borrow().len(), 1);
    }

    #[test]
    fn failures_are_classified() {
        // status, headers, body → retryable, wait, message
        type Case<'a> = (
            u16,
            &'a [(&'a str, &'a str)],
            &'a str,
            bool,
            Option<u64>,
            &'a str,
        );
        let cases: [Case<'_>; 7] = [
            (
                429,
                &[
                    ("x-sib-ratelimit-limit", "10"),
                    ("x-sib-ratelimit-remaining", "0"),
                    ("x-sib-ratelimit-reset", "3"),
                ],
                r#"{"code": "too_many_requests", "message": "rate limited"}"#,
                true,
                Some(3000),
                "HTTP 429: too_many_requests: rate limited",
            ),
            (503, &[], "", true, None, "HTTP 503"),
            (
                400,
                &[],
                r#"{"code": "invalid_parameter", "message": "Invalid attribute TIER"}"#,
                false,
                None,
                "HTTP 400: invalid_parameter: Invalid attribute TIER",
            ),
            (
                401,
                &[],
                r#"{"code": "unauthorized", "message": "Key not found"}"#,
                false,
                None,
                "Brevo refused the API key: check authentication.api_key (HTTP 401: unauthorized: Key not found)",
            ),
            (
                402,
                &[],
                r#"{"code": "not_enough_credits", "message": "Not enough credit"}"#,
                false,
                None,
                "the Brevo account has not enough credit (HTTP 402: not_enough_credits: Not enough credit)",
            ),
            (
                403,
                &[],
                r#"{"code": "permission_denied", "message": "Forbidden"}"#,
                false,
                None,
                "the API key may not do this: check its permissions in Brevo (HTTP 403: permission_denied: Forbidden)",
            ),
            (
                429,
                &[("Retry-After", "7"), ("x-sib-ratelimit-reset", "30")],
                "",
                true,
                Some(7000),
                "HTTP 429",
            ),
        ];
        for (status, headers, answer, retryable, wait, message) in cases {
            let host = MockHost::new();
            host.respond(status, headers, answer);
            assert_eq!(
                run(&host, &config(true), subscribed()),
                Outcome::Failed(Failure {
                    retryable,
                    retry_after_ms: wait,
                    message: message.into()
                }),
                "{status}"
            );
        }
        let timeout = MockHost::new();
        timeout.fail(HttpError::Timeout);
        assert!(failed(run(&timeout, &config(true), subscribed())).retryable);
        let denied = MockHost::new();
        denied.fail(HttpError::Denied("api.brevo.com is not allowed".into()));
        assert!(!failed(run(&denied, &config(true), subscribed())).retryable);
        // A failure on the update call stops there: no create after it.
        let down = MockHost::new();
        down.respond(500, &[], "");
        assert!(failed(run(&down, &config(true), withdrawn())).retryable);
        assert_eq!(down.requests.borrow().len(), 1);
    }

    fn check(host: &MockHost, config: &Json) -> Result<Vec<ValidationProblem>, String> {
        prefsync_sdk::connection::check::<Brevo>(host, &config.to_string())
    }

    const BASE: &str = "https://api.brevo.com";

    fn account_ok(host: &MockHost) {
        host.respond_to(
            Method::Get,
            &format!("{BASE}/v3/account"),
            200,
            &[],
            r#"{"email": "ops@example.com", "companyName": "Acme", "plan": [{"type": "free", "credits": 300}]}"#,
        );
    }

    fn list_ok(host: &MockHost, id: u64) {
        host.respond_to(
            Method::Get,
            &format!("{BASE}/v3/contacts/lists/{id}"),
            200,
            &[],
            &format!(r#"{{"id": {id}, "name": "List {id}", "totalSubscribers": 0}}"#),
        );
    }

    #[test]
    fn the_check_reads_the_account_and_each_list_with_the_key() {
        let host = MockHost::new();
        account_ok(&host);
        for id in [12, 13, 14] {
            list_ok(&host, id);
        }
        assert_eq!(check(&host, &config(true)), Ok(Vec::new()));
        let requests = host.requests.borrow();
        let urls: Vec<&str> = requests.iter().map(|r| r.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "https://api.brevo.com/v3/account",
                "https://api.brevo.com/v3/contacts/lists/12",
                "https://api.brevo.com/v3/contacts/lists/13",
                "https://api.brevo.com/v3/contacts/lists/14",
            ]
        );
        for request in requests.iter() {
            assert_eq!(request.method, Method::Get, "a check only reads");
            assert!(request.body.is_none());
            assert!(
                request
                    .headers
                    .iter()
                    .any(|(name, value)| name.eq_ignore_ascii_case("api-key") && value == KEY)
            );
        }
    }

    #[test]
    fn the_check_names_a_refused_key_at_its_path_without_quoting_brevo() {
        for status in [401, 403] {
            let host = MockHost::new();
            host.respond(
                status,
                &[],
                r#"{"code": "unauthorized", "message": "Key xkeysib-0123456789abcdef not found"}"#,
            );
            let problems = check(&host, &config(true)).unwrap();
            assert_eq!(problems.len(), 1, "{status}");
            assert_eq!(problems[0].path, "authentication.api_key");
            assert!(!problems[0].message.contains(KEY), "{problems:?}");
            // Nothing more is asked once the key is refused.
            assert_eq!(host.requests.borrow().len(), 1);
        }
    }

    #[test]
    fn the_check_names_an_unknown_list_at_its_list_id() {
        let host = MockHost::new();
        account_ok(&host);
        list_ok(&host, 12);
        list_ok(&host, 14);
        host.respond_to(
            Method::Get,
            &format!("{BASE}/v3/contacts/lists/13"),
            404,
            &[],
            r#"{"code": "document_not_found", "message": "List ID does not exist"}"#,
        );
        let problems = check(&host, &config(true)).unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, "properties.lists[1].list_id");
        assert_eq!(problems[0].message, "Brevo has no list 13 in this account");
    }

    #[test]
    fn the_check_cannot_be_made_on_a_5xx_a_429_or_a_timeout() {
        for status in [500, 503, 429] {
            let host = MockHost::new();
            host.respond(status, &[], "");
            assert!(check(&host, &config(true)).is_err(), "{status}");
        }
        let timeout = MockHost::new();
        timeout.fail(HttpError::Timeout);
        assert!(check(&timeout, &config(true)).is_err());
        // A list read that fails the same way ends the check too.
        let list_down = MockHost::new();
        account_ok(&list_down);
        list_down.respond(502, &[], "");
        assert!(check(&list_down, &config(true)).is_err());
        // The egress policy refusing the host is a problem of the config.
        let denied = MockHost::new();
        denied.fail(HttpError::Denied("api.brevo.com is not allowed".into()));
        assert_eq!(check(&denied, &config(true)).unwrap()[0].path, "");
    }

    #[test]
    fn an_invalid_config_is_answered_without_a_request() {
        let host = MockHost::new();
        let problems = check(&host, &json!({"authentication": {}, "mappings": []})).unwrap();
        assert!(!problems.is_empty());
        assert!(host.requests.borrow().is_empty());
    }
}
