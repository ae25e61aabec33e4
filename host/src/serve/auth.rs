//! Bearer-token checks of the API's routes (the tokens themselves:
//! `crate::admin_token` and `[server]` in the config).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::App;
use super::api::error::ApiError;
use crate::secrets::same_secret;

/// Lets a request through only with `Authorization: Bearer <admin token>`.
pub async fn require_admin(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if bearer_matches(&request, &app.admin_token) {
        next.run(request).await
    } else {
        ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <admin token>)",
        )
        .into_response()
    }
}

/// Lets a request through with the ingest token, or the admin token.
pub async fn require_ingest(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let ingest_ok = app
        .ingest_token
        .as_deref()
        .is_some_and(|token| bearer_matches(&request, token));
    if ingest_ok || bearer_matches(&request, &app.admin_token) {
        next.run(request).await
    } else {
        ApiError::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <ingest or admin token>)",
        )
        .into_response()
    }
}

fn bearer_matches(request: &Request, expected: &str) -> bool {
    let Some(given) = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    same_secret(given, expected)
}
