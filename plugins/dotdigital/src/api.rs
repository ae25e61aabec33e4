//! Requests to the contacts v3 API and how its answers are classified.

use prefsync_sdk::http::{encode_component, failure_from_response};
use prefsync_sdk::mapping::mapped_json;
use prefsync_sdk::{ConsentRecord, Context, DeliveredKind, Method, Outcome, Request, Response};
use serde_json::json;

use crate::config::DotdigitalConfig;

/// Dotdigital asks clients to allow long timeouts.
const REQUEST_TIMEOUT_MS: u32 = 121_000;

pub fn deliver(ctx: &Context<'_>, config: &DotdigitalConfig, record: &ConsentRecord) -> Outcome {
    let identifier = config.identifier();
    let contact_url = format!(
        "{}/contacts/v3/{identifier}/{}",
        config.base_url(),
        encode_component(&record.key)
    );

    if !config.upsert_mode {
        let lookup = request(config, Method::Get, &contact_url);
        match ctx.send(lookup) {
            Err(e) => return e.into_outcome("Dotdigital contact lookup"),
            Ok(r) if r.status == 404 => {
                ctx.debug("contact not found; upsert_mode is off", &[]);
                return Outcome::Skipped("contact not found".into());
            }
            Ok(r) if !(200..300).contains(&r.status) => {
                return failure_from_response(&r, &error_detail(&r));
            }
            Ok(_) => {}
        }
    }

    let body = json!({
        "identifiers": { identifier: record.key },
        "dataFields": mapped_json(&config.mappings, record),
    });
    let upsert = request(
        config,
        Method::Patch,
        &format!("{contact_url}?merge-option=overwrite"),
    )
    .json(&body);
    match ctx.send(upsert) {
        Err(e) => e.into_outcome("Dotdigital upsert"),
        Ok(r) if r.status == 201 => Outcome::Delivered(DeliveredKind::Created),
        Ok(r) if (200..300).contains(&r.status) => Outcome::Delivered(DeliveredKind::Updated),
        Ok(r) => failure_from_response(&r, &error_detail(&r)),
    }
}

fn request(config: &DotdigitalConfig, method: Method, url: &str) -> Request {
    Request::new(method, url)
        .basic_auth(
            &config.authentication.username,
            &config.authentication.password,
        )
        .header("Accept", "application/json")
        .timeout_ms(REQUEST_TIMEOUT_MS)
}

/// `errorCode (description)` from a v3 error body, or the start of the body.
fn error_detail(response: &Response) -> String {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ApiError {
        error_code: Option<String>,
        description: Option<String>,
    }
    match response.json::<ApiError>() {
        Ok(ApiError {
            error_code: Some(code),
            description,
        }) => match description {
            Some(d) => format!("{code} ({d})"),
            None => code,
        },
        _ => response.text_snippet(200),
    }
}

#[cfg(test)]
mod tests {
    use prefsync_sdk::testing::MockHost;
    use prefsync_sdk::{Connector, HttpError, Value, connector};

    use super::*;
    use crate::Dotdigital;

    fn config(upsert: bool) -> String {
        json!({
            "type_id": "dotdigital",
            "authentication": {"url": "https://r1-api.dotdigital.com/", "username": "apiuser-1@apiconnector.com", "password": "s3cret"},
            "properties": {},
            "mappings": [{"id": "NEWSLETTER", "value": "consents_purposes_newsletter_enabled"}],
            "upsert_mode": upsert
        })
        .to_string()
    }

    fn record() -> ConsentRecord {
        ConsentRecord::new(
            "organization_user_id",
            "ann+1@example.com",
            &[
                (
                    "organization_user_id",
                    Value::Text("ann+1@example.com".into()),
                ),
                ("consents_purposes_newsletter_enabled", Value::Boolean(true)),
            ],
        )
    }

    fn run(host: &MockHost, upsert: bool) -> Outcome {
        connector::deliver::<Dotdigital>(host, &config(upsert), &[record()]).remove(0)
    }

    #[test]
    fn upsert_sends_mapped_data_fields() {
        let host = MockHost::new();
        host.respond(201, &[], r#"{"contactId": 1}"#);
        assert_eq!(run(&host, true), Outcome::Delivered(DeliveredKind::Created));
        let req = host.requests.borrow()[0].clone();
        assert_eq!(host.requests.borrow().len(), 1);
        assert_eq!(req.method, Method::Patch);
        assert_eq!(
            req.url,
            "https://r1-api.dotdigital.com/contacts/v3/email/ann%2B1%40example.com?merge-option=overwrite"
        );
        let body: serde_json::Value = serde_json::from_slice(req.body.as_ref().unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"identifiers": {"email": "ann+1@example.com"}, "dataFields": {"NEWSLETTER": true}})
        );
        host.respond(200, &[], "{}");
        assert_eq!(run(&host, true), Outcome::Delivered(DeliveredKind::Updated));
    }

    #[test]
    fn without_upsert_an_unknown_contact_is_skipped_and_not_created() {
        let host = MockHost::new();
        host.respond(
            404,
            &[],
            r#"{"errorCode":"contacts:contactNotFound","description":"no"}"#,
        );
        assert_eq!(
            run(&host, false),
            Outcome::Skipped("contact not found".into())
        );
        assert_eq!(host.requests.borrow().len(), 1);
        assert_eq!(host.requests.borrow()[0].method, Method::Get);

        host.respond(200, &[], "{}").respond(200, &[], "{}");
        assert_eq!(
            run(&host, false),
            Outcome::Delivered(DeliveredKind::Updated)
        );
    }

    #[test]
    fn failures_are_classified() {
        let host = MockHost::new();
        host.respond(
            429,
            &[("Retry-After", "12"), ("X-RateLimit-Limit", "100")],
            "",
        );
        let Outcome::Failed(f) = run(&host, true) else {
            panic!()
        };
        assert!(f.retryable);
        assert_eq!(f.retry_after_ms, Some(12_000));

        host.respond(503, &[], "unavailable");
        let Outcome::Failed(f) = run(&host, true) else {
            panic!()
        };
        assert!(f.retryable);

        host.respond(
            401,
            &[],
            r#"{"errorCode":"authorization:unauthorized","description":"bad credentials"}"#,
        );
        let Outcome::Failed(f) = run(&host, true) else {
            panic!()
        };
        assert!(!f.retryable);
        assert_eq!(
            f.message,
            "HTTP 401: authorization:unauthorized (bad credentials)"
        );

        host.fail(HttpError::Timeout);
        let Outcome::Failed(f) = run(&host, true) else {
            panic!()
        };
        assert!(f.retryable);

        host.fail(HttpError::Denied("host not allowed".into()));
        let Outcome::Failed(f) = run(&host, true) else {
            panic!()
        };
        assert!(!f.retryable);
    }

    #[test]
    fn validation_names_every_field() {
        let problems = connector::validate::<Dotdigital>(
            r#"{"authentication": {"url": "", "username": "u"}, "mappings": [], "upsert_mode": "yes"}"#,
        );
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "authentication.url",
                "authentication.password",
                "mappings",
                "upsert_mode"
            ]
        );
        assert!(connector::validate::<Dotdigital>(&config(true)).is_empty());
        assert_eq!(Dotdigital::describe().type_id, "dotdigital");
    }
}
