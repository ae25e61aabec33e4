//! Error answers of the HTTP API: a status and a JSON body whose `error`
//! says what is wrong, naming the field, line or column where it can.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json_, json};

/// An API error; `details` carries structured extras (problem lists, positions).
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub details: Option<Json_>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            details: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn with_details(mut self, details: Json_) -> Self {
        self.details = Some(details);
        self
    }

    /// A JSON syntax error, with its line and column.
    pub fn json_syntax(error: &serde_json::Error) -> Self {
        Self::bad_request(crate::consent::event::syntax_error(error, 0).to_string())
            .with_details(json!({"line": error.line(), "column": error.column()}))
    }

    /// An infrastructure failure: logged in full, answered without detail.
    pub fn internal(error: anyhow::Error) -> Self {
        tracing::error!(error = %format!("{error:#}"), "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error (see the server log)",
        )
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> Self {
        ApiError::internal(error)
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    /// A bad query string names the parameter (serde's message does).
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::bad_request(format!("query: {}", rejection.body_text()))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.message});
        if let (Some(Json_::Object(extra)), Some(obj)) = (self.details, body.as_object_mut()) {
            obj.extend(extra);
        }
        (self.status, Json(body)).into_response()
    }
}
