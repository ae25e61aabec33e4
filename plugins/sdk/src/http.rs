//! HTTP requests through the host, and the status classification every
//! connector shares: 408/425/429/5xx retryable (honouring `Retry-After`),
//! other 4xx permanent.

use base64::Engine as _;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::types::{Failure, Outcome};

/// HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
    /// `HEAD`.
    Head,
}

/// An outbound request; build it with [`Request::new`] and the helpers.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The HTTP method.
    pub method: Method,
    /// The absolute URL, query included; its host must pass the egress policy.
    pub url: String,
    /// Headers in sending order; a name may repeat.
    pub headers: Vec<(String, String)>,
    /// The request body; `None` sends none.
    pub body: Option<Vec<u8>>,
    /// Per-request timeout; the host caps it at its own limit.
    pub timeout_ms: Option<u32>,
}

impl Request {
    /// A request with no headers, no body and the host's default timeout.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Request {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: None,
            timeout_ms: None,
        }
    }

    /// A `GET` request to `url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::Get, url)
    }

    /// Sets header `name`, replacing any header of that name (names compare
    /// case-insensitively), so `.json(&body).header("Accept", "text/csv")`
    /// sends one `Accept`. Use [`Request::add_header`] to send a name twice.
    ///
    /// ```
    /// use prefsync_sdk::Request;
    ///
    /// let request = Request::get("https://api.example.com/x")
    ///     .json(&serde_json::json!({"a": 1}))
    ///     .header("accept", "text/csv")
    ///     .add_header("X-Tag", "one")
    ///     .add_header("X-Tag", "two");
    /// let accept: Vec<&str> = request.headers.iter()
    ///     .filter(|(n, _)| n.eq_ignore_ascii_case("accept"))
    ///     .map(|(_, v)| v.as_str())
    ///     .collect();
    /// assert_eq!(accept, ["text/csv"]);
    /// assert_eq!(request.headers.iter().filter(|(n, _)| n == "X-Tag").count(), 2);
    /// ```
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Adds a header even when one of that name is already set.
    pub fn add_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Adds `Authorization: Basic base64(user:password)`.
    pub fn basic_auth(self, user: &str, password: &str) -> Self {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.header("Authorization", format!("Basic {token}"))
    }

    /// Sets a JSON body, `Content-Type: application/json`, and
    /// `Accept: application/json` (the answer is read as JSON too; set
    /// another `Accept` after this call to replace it).
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        // Serializing plain data (maps, strings, numbers) cannot fail.
        self.body = Some(serde_json::to_vec(body).unwrap_or_default());
        self.header("Content-Type", "application/json")
            .header("Accept", "application/json")
    }

    /// Sets a raw body with its content type.
    pub fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self.header("Content-Type", content_type)
    }

    /// Sets the timeout in milliseconds; the host caps it at its own limit.
    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.timeout_ms = Some(ms);
        self
    }
}

/// A response from the destination.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// Response headers; look one up with [`Response::header`].
    pub headers: Vec<(String, String)>,
    /// The raw response body.
    pub body: Vec<u8>,
}

impl Response {
    /// First header called `name`, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The body as text (lossy), shortened for messages.
    pub fn text_snippet(&self, max: usize) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let mut cut: String = text.chars().take(max).collect();
        if text.chars().count() > max {
            cut.push('…');
        }
        cut
    }

    /// How the status should be treated; see [`classify_status`].
    pub fn class(&self) -> StatusClass {
        classify_status(self.status, &self.headers)
    }
}

/// Why the host could not complete a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// Refused by the egress policy; the text says which host and why.
    Denied(String),
    /// No response within the request's timeout.
    Timeout,
    /// DNS, TCP or TLS failure; the text says which.
    Connection(String),
    /// The response body passed the host's cap, in bytes.
    TooLarge(u64),
    /// The request itself is malformed (bad URL, bad header).
    InvalidRequest(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Denied(why) => write!(f, "request denied: {why}"),
            HttpError::Timeout => write!(f, "request timed out"),
            HttpError::Connection(why) => write!(f, "connection failed: {why}"),
            HttpError::TooLarge(limit) => write!(f, "response larger than {limit} bytes"),
            HttpError::InvalidRequest(why) => write!(f, "invalid request: {why}"),
        }
    }
}

impl HttpError {
    /// The outcome a record gets when its request failed this way: network
    /// trouble is retryable; a policy denial or a malformed request is not.
    pub fn into_outcome(self, context: &str) -> Outcome {
        let retryable = matches!(self, HttpError::Timeout | HttpError::Connection(_));
        Outcome::Failed(Failure {
            retryable,
            retry_after_ms: None,
            message: format!("{context}: {self}"),
        })
    }
}

/// How a status code is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// 2xx.
    Success,
    /// 408, 425, 429, 5xx: try again, after the hint when there is one.
    Retryable {
        /// How long the destination asked to wait, in milliseconds, if it said.
        retry_after_ms: Option<u64>,
    },
    /// Any other status: the same request will fail the same way.
    Permanent,
}

/// Classifies a status: 2xx success; 408/425/429/5xx retryable with the
/// `Retry-After` hint (seconds, or `X-RateLimit-Reset` as seconds or an epoch);
/// everything else permanent.
pub fn classify_status(status: u16, headers: &[(String, String)]) -> StatusClass {
    match status {
        200..=299 => StatusClass::Success,
        408 | 425 | 429 | 500..=599 => StatusClass::Retryable {
            retry_after_ms: retry_after_ms(headers),
        },
        _ => StatusClass::Permanent,
    }
}

/// The wait the destination asks for: `Retry-After` in seconds first, then
/// `X-RateLimit-Reset` read as seconds to wait, or as a Unix time when it is
/// that large.
pub fn retry_after_ms(headers: &[(String, String)]) -> Option<u64> {
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    if let Some(secs) = find("retry-after") {
        return Some((secs * 1000.0) as u64);
    }
    let reset = find("x-ratelimit-reset")?;
    const EPOCH_THRESHOLD: f64 = 1.0e9;
    if reset >= EPOCH_THRESHOLD {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs_f64();
        Some(((reset - now).max(0.0) * 1000.0) as u64)
    } else {
        Some((reset * 1000.0) as u64)
    }
}

/// Turns a non-2xx response into a failed outcome, classified by status,
/// with `detail` (e.g. the API's error code) in the message.
///
/// ```
/// use prefsync_sdk::http::{Response, failure_from_response};
/// use prefsync_sdk::{Failure, Outcome};
///
/// let busy = Response { status: 429, headers: vec![("Retry-After".into(), "30".into())], body: vec![] };
/// assert_eq!(
///     failure_from_response(&busy, "rate limited"),
///     Outcome::Failed(Failure { retryable: true, retry_after_ms: Some(30_000), message: "HTTP 429: rate limited".into() })
/// );
/// let refused = Response { status: 400, headers: vec![], body: vec![] };
/// let Outcome::Failed(failure) = failure_from_response(&refused, "invalid_email") else { unreachable!() };
/// assert!(!failure.retryable);
/// ```
pub fn failure_from_response(response: &Response, detail: &str) -> Outcome {
    let message = if detail.is_empty() {
        format!("HTTP {}", response.status)
    } else {
        format!("HTTP {}: {detail}", response.status)
    };
    match response.class() {
        StatusClass::Retryable { retry_after_ms } => Outcome::Failed(Failure {
            retryable: true,
            retry_after_ms,
            message,
        }),
        StatusClass::Success | StatusClass::Permanent => Outcome::Failed(Failure {
            retryable: false,
            retry_after_ms: None,
            message,
        }),
    }
}

/// Percent-encodes one URL path segment or query value.
pub fn encode_component(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_replaces_and_add_header_repeats() {
        let request = Request::get("https://x.test")
            .json(&serde_json::json!({}))
            .header("accept", "text/csv")
            .add_header("X-Tag", "a")
            .add_header("X-Tag", "b");
        assert_eq!(
            request.headers,
            [
                ("Content-Type".to_string(), "application/json".to_string()),
                ("accept".to_string(), "text/csv".to_string()),
                ("X-Tag".to_string(), "a".to_string()),
                ("X-Tag".to_string(), "b".to_string()),
            ]
        );
    }

    use super::*;

    fn h(name: &str, value: &str) -> Vec<(String, String)> {
        vec![(name.to_string(), value.to_string())]
    }

    #[test]
    fn statuses_are_classified() {
        assert_eq!(classify_status(201, &[]), StatusClass::Success);
        for status in [408, 425, 429, 500, 502, 503, 504] {
            assert!(
                matches!(classify_status(status, &[]), StatusClass::Retryable { .. }),
                "{status}"
            );
        }
        for status in [400, 401, 403, 404, 409, 422] {
            assert_eq!(
                classify_status(status, &[]),
                StatusClass::Permanent,
                "{status}"
            );
        }
    }

    #[test]
    fn retry_after_prefers_the_standard_header() {
        let mut headers = h("Retry-After", "7");
        headers.extend(h("X-RateLimit-Reset", "30"));
        assert_eq!(retry_after_ms(&headers), Some(7000));
        assert_eq!(retry_after_ms(&h("x-ratelimit-reset", "30")), Some(30_000));
        assert_eq!(retry_after_ms(&h("Retry-After", "soon")), None);
        let future = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 60;
        let ms = retry_after_ms(&h("X-RateLimit-Reset", &future.to_string())).unwrap();
        assert!((58_000..=60_000).contains(&ms), "{ms}");
    }

    #[test]
    fn basic_auth_and_encoding() {
        let req = Request::get("https://x").basic_auth("user", "pass");
        assert_eq!(req.headers[0].1, "Basic dXNlcjpwYXNz");
        assert_eq!(encode_component("a+b@c.d é"), "a%2Bb%40c.d%20%C3%A9");
    }
}
