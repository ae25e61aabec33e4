//! One log line per HTTP request, at `info`: method, route (the template,
//! never the raw path with its ids), status, duration and a request id.
//! A client's `X-Request-Id` is kept when it is a plain token (1–64 of
//! `A-Za-z0-9._-`), otherwise one is made; either way the answer carries it.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The header that carries the request id both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The route a request matched, carried out on its response: routing
/// happens inside [`log_request`], so the log reads it there.
pub async fn keep_route(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(route);
    }
    response
}

/// Logs the request once it is answered, and returns its id.
pub async fn log_request(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| is_plain_token(id))
        .map_or_else(|| crate::random_hex(8), str::to_owned);
    let header = HeaderValue::from_str(&id).expect("a plain token is a header value");
    request.headers_mut().insert(REQUEST_ID, header.clone());
    let method = request.method().clone();
    let span = crate::telemetry::request_span(&method, request.uri().path(), request.headers());
    let mut response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    response.headers_mut().insert(REQUEST_ID, header);
    let route = response
        .extensions()
        .get::<MatchedPath>()
        .map_or("(no route)", MatchedPath::as_str);
    crate::telemetry::answered(&span, &method, route, response.status().as_u16(), &id);
    tracing::info!(
        method = %method,
        route,
        status = response.status().as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        request_id = %id,
        "request"
    );
    response
}

/// Whether a client's request id can be kept (and logged) as it is.
fn is_plain_token(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_tokens_are_kept() {
        assert!(is_plain_token("req-42.a_b"));
        assert!(!is_plain_token(""));
        assert!(!is_plain_token("a\nforged log line"));
        assert!(!is_plain_token(&"x".repeat(65)));
    }
}
