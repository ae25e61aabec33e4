//! Error answers of the HTTP API: a status and a JSON body whose `error`
//! says what is wrong, naming the field, line or column where it can.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value as Json_, json};

use crate::serve::App;

/// The body of every error answer: `error`, and the extras of some errors.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorBody {
    /// What is wrong, naming the field, line or column where it can.
    pub error: String,
    /// Structured extras (`problems`, `line`, `column`, `at`, `field`, …).
    #[serde(flatten)]
    pub details: serde_json::Map<String, Json_>,
}

impl utoipa::PartialSchema for ErrorBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ArrayBuilder, ObjectBuilder, Type};
        let integer = |description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0))
                .description(Some(description))
        };
        let text = |description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(description))
        };
        let problem = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "path",
                text("Where, as a JSON path (`authentication.password`)."),
            )
            .required("path")
            .property("message", text("What is wrong there."))
            .required("message");
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "An error answer. `error` says what is wrong; some errors add extras: \
                 `problems` (a refused integration or activation, every problem at once), \
                 `line` and `column` (a JSON syntax error), `at` and `field` (an invalid event), \
                 `accepted` (415: the media types taken), `integrations` (an upgrade that \
                 would break integrations).",
            ))
            .property(
                "error",
                text("What is wrong, naming the field, line or column where it can."),
            )
            .required("error")
            .property(
                "problems",
                ArrayBuilder::new()
                    .items(problem)
                    .description(Some("Every problem of a refused document.")),
            )
            .property("line", integer("Line of a JSON syntax error (1-based)."))
            .property(
                "column",
                integer("Column of a JSON syntax error (1-based)."),
            )
            .property(
                "at",
                text("Which item of an events body: `body`, `[2]`, `line 3`, `line 3[1]`."),
            )
            .property(
                "field",
                text(
                    "Path of the wrong field inside the item; empty when the item itself is wrong.",
                ),
            )
            .property(
                "accepted",
                ArrayBuilder::new()
                    .items(ObjectBuilder::new().schema_type(Type::String))
                    .description(Some("The media types the endpoint takes (415).")),
            )
            .property(
                "integrations",
                ArrayBuilder::new()
                    .items(
                        ObjectBuilder::new()
                            .schema_type(Type::Object)
                            .property("id", text("The integration."))
                            .required("id")
                            .property(
                                "problems",
                                ArrayBuilder::new()
                                    .items(ObjectBuilder::new().schema_type(Type::String)),
                            )
                            .required("problems"),
                    )
                    .description(Some(
                        "Integrations the uploaded version would break, with their problems.",
                    )),
            )
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .examples([json!({"error": "no integration `crm`"})])
            .into()
    }
}

impl utoipa::ToSchema for ErrorBody {}

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
        tracing::error!(error = %crate::log_safe::escaped(&format!("{error:#}")), "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error (see the server log)",
        )
    }
}

impl From<crate::ids::IdError> for ApiError {
    /// An id outside the rule, named as the field `id`.
    fn from(error: crate::ids::IdError) -> Self {
        ApiError::bad_request(format!("id: {error}"))
    }
}

impl From<crate::integrations::IntegrationError> for ApiError {
    /// A refused integration: 400 naming the field (with every problem
    /// listed), 502 when its connector could not run `validate`.
    fn from(error: crate::integrations::IntegrationError) -> Self {
        use crate::integrations::IntegrationError as E;
        match error {
            E::Syntax(e) => ApiError::json_syntax(&e),
            E::Invalid { message, problems } => {
                let listed: Vec<Json_> = problems
                    .iter()
                    .map(|p| json!({"path": p.path, "message": p.message}))
                    .collect();
                ApiError::bad_request(message).with_details(json!({"problems": listed}))
            }
            E::ValidatorFailed { .. } | E::CheckFailed { .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, error.to_string())
            }
            E::Field(_) | E::Id(_) => ApiError::bad_request(error.to_string()),
        }
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
        let mut body = ErrorBody {
            error: self.message,
            details: serde_json::Map::new(),
        };
        if let Some(Json_::Object(extra)) = self.details {
            // `error` stays the message, as when the extras were merged in.
            body.details = extra.into_iter().filter(|(k, _)| k != "error").collect();
        }
        (self.status, Json(body)).into_response()
    }
}

/// The answer for a path no route matches.
pub async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route for {method} {}; see the API table in the README",
        uri.path()
    ))
}

/// The largest plain-text error body [`json_errors`] carries over as the
/// message; a longer one is replaced by the status's reason.
const PLAIN_ERROR_MAX: usize = 1024;

/// Gives every error answer the JSON body of [`ApiError`]. The handlers'
/// own errors are JSON already; axum's are plain text: 405 from a route
/// without the method, 413 from the body limit, 400 from a path parameter
/// that does not decode. Headers are kept.
pub async fn json_errors(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let upload = method == Method::POST && request.uri().path() == "/v1/connectors";
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let message = match status {
        // axum adds `Allow` above this layer, so it is named, not copied.
        StatusCode::METHOD_NOT_ALLOWED => format!(
            "method {method} is not allowed on this path; the `Allow` header lists those that are"
        ),
        StatusCode::PAYLOAD_TOO_LARGE => {
            let (key, limit) = if upload {
                (
                    "connectors.max_upload_bytes",
                    app.config.connectors.max_upload_bytes,
                )
            } else {
                ("server.max_body_bytes", app.config.server.max_body_bytes)
            };
            format!("the body is larger than {limit} bytes (the limit set by `{key}`)")
        }
        _ => match axum::body::to_bytes(body, PLAIN_ERROR_MAX).await {
            Ok(text) if !text.trim_ascii().is_empty() => {
                String::from_utf8_lossy(text.trim_ascii()).into_owned()
            }
            _ => status
                .canonical_reason()
                .unwrap_or("request failed")
                .to_string(),
        },
    };
    parts.headers.remove(CONTENT_TYPE);
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let (answer_parts, answer_body) = ApiError::new(status, message).into_response().into_parts();
    parts.headers.extend(answer_parts.headers);
    Response::from_parts(parts, answer_body)
}
