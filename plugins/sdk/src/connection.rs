//! Checking an integration's connection before anything is delivered: the
//! optional `connection` export (WIT 0.1.3), Segment's `testAuthentication`.
//! A connector that can reach its destination with a config's credentials
//! in a way that writes nothing implements [`ConnectionCheck`] besides
//! [`Connector`] and is exported with `export!(MyConnector, connection)`
//! (which needs the companion crate `prefsync-sdk-connection`).
//!
//! The host calls it only when an operator asks (`POST
//! /v1/integrations/{id}/check`, `?check=true` on a save, `prefsync
//! connector test --check`). What the destination refused comes back as
//! problems on the config's fields, beside the schema's and `check`'s.

use crate::connector::{Connector, parse_config};
use crate::context::{Context, Host};
use crate::http::{HttpError, Request, Response, StatusClass};
use crate::types::ValidationProblem;

/// A connector that can check an integration's connection.
///
/// ```
/// # use prefsync_sdk::{Connector, ConsentRecord, Context, Description, Outcome, Capabilities};
/// use prefsync_sdk::connection::{ConnectionCheck, probe};
/// use prefsync_sdk::{Request, ValidationProblem};
/// # #[derive(serde::Deserialize, schemars::JsonSchema)]
/// # pub struct AcmeConfig { api_key: String }
/// # pub struct Acme;
/// # impl Connector for Acme {
/// #     type Config = AcmeConfig;
/// #     fn describe() -> Description { unimplemented!() }
/// #     fn deliver(_: &Context<'_>, _: &AcmeConfig, _: &ConsentRecord) -> Outcome { unimplemented!() }
/// # }
///
/// impl ConnectionCheck for Acme {
///     fn check_connection(ctx: &Context<'_>, config: &AcmeConfig) -> Result<Vec<ValidationProblem>, String> {
///         // The cheapest authenticated read the vendor offers.
///         let request = Request::get("https://api.acme.test/v1/account")
///             .header("authorization", format!("Bearer {}", config.api_key));
///         probe(ctx, request, "api_key")
///     }
/// }
///
/// use prefsync_sdk::testing::MockHost;
/// let host = MockHost::new();
/// host.respond(401, &[], r#"{"error": "invalid key"}"#);
/// let problems = prefsync_sdk::connection::check::<Acme>(&host, r#"{"api_key": "wrong"}"#).unwrap();
/// assert_eq!(problems[0].path, "api_key");
/// assert_eq!(problems[0].message, "the destination refused it (HTTP 401)");
/// ```
pub trait ConnectionCheck: Connector {
    /// Reaches the destination with `config` (one that passed the schema
    /// and `check`) the cheapest authenticated way that writes nothing, and
    /// returns what it refused: a credential (at its path, e.g.
    /// `authentication.api_key`), a list or account it does not know (at
    /// the field naming it). Empty when it accepted everything it was
    /// shown. `Err` when the check itself could not be made (unreachable,
    /// timeout, 5xx): the config may be right; the text says why.
    fn check_connection(
        ctx: &Context<'_>,
        config: &Self::Config,
    ) -> Result<Vec<ValidationProblem>, String>;
}

/// Checks with a raw config: an invalid config's problems come back as the
/// answer (nothing is sent).
pub fn check<C: ConnectionCheck>(
    host: &dyn Host,
    raw: &str,
) -> Result<Vec<ValidationProblem>, String> {
    match parse_config::<C>(raw) {
        Ok(config) => C::check_connection(&Context::new(host), &config),
        Err(problems) => Ok(problems),
    }
}

/// Sends `request` and reads its answer as a check's verdict ([`verdict`]);
/// a transport error is [`unreachable()`]'s.
pub fn probe(
    ctx: &Context<'_>,
    request: Request,
    credential_path: &str,
) -> Result<Vec<ValidationProblem>, String> {
    match ctx.send(request) {
        Ok(response) => verdict(&response, credential_path),
        Err(error) => unreachable(&error),
    }
}

/// A check request's answer: 2xx accepted (no problem); 401 or 403 the
/// credential at `credential_path` refused; 408, 425, 429 or 5xx the check
/// could not be made (`Err`); another 4xx a problem of the whole config
/// with its status. Never quotes the answer's body (it could echo a
/// secret).
pub fn verdict(
    response: &Response,
    credential_path: &str,
) -> Result<Vec<ValidationProblem>, String> {
    let problem = |path: &str, message: String| {
        Ok(vec![ValidationProblem {
            path: path.to_string(),
            message,
        }])
    };
    match (response.status, response.class()) {
        (_, StatusClass::Success) => Ok(Vec::new()),
        (401 | 403, _) => problem(
            credential_path,
            format!("the destination refused it (HTTP {})", response.status),
        ),
        (status, StatusClass::Retryable { .. }) => Err(format!(
            "the destination answered HTTP {status}; try again later"
        )),
        (status, StatusClass::Permanent) => problem(
            "",
            format!("the destination refused the check (HTTP {status})"),
        ),
    }
}

/// A transport error during a check: a request the egress policy refused
/// is a problem of the config (it names a host the integration may not
/// reach); a timeout or connection failure means the check could not be
/// made.
pub fn unreachable(error: &HttpError) -> Result<Vec<ValidationProblem>, String> {
    match error {
        HttpError::Denied(why) => Ok(vec![ValidationProblem {
            path: String::new(),
            message: format!("the host may not reach the destination: {why}"),
        }]),
        other => Err(format!("the destination could not be reached: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: b"{\"message\": \"key sk-live-123 is wrong\"}".to_vec(),
        }
    }

    #[test]
    fn answers_become_verdicts_without_quoting_the_body() {
        assert_eq!(verdict(&answer(200), "authentication.key"), Ok(Vec::new()));
        let refused = verdict(&answer(401), "authentication.key").unwrap();
        assert_eq!(refused[0].path, "authentication.key");
        assert!(!refused[0].message.contains("sk-live"), "{refused:?}");
        assert_eq!(verdict(&answer(403), "k").unwrap()[0].path, "k");
        assert!(verdict(&answer(503), "k").is_err());
        assert!(verdict(&answer(429), "k").is_err());
        let other = verdict(&answer(404), "k").unwrap();
        assert_eq!(other[0].path, "");
        assert_eq!(
            other[0].message,
            "the destination refused the check (HTTP 404)"
        );
    }

    #[test]
    fn transport_errors_are_config_problems_only_when_denied() {
        assert_eq!(
            unreachable(&HttpError::Denied("host not allowed".into())).unwrap()[0].path,
            ""
        );
        assert!(unreachable(&HttpError::Timeout).is_err());
    }
}
