//! The body of an endpoint that takes a JSON document: its `Content-Type`
//! must say `application/json` (UTF-8 if a charset is given), or the
//! answer is 415 before the body is read. The media-type rule is the one
//! `POST /v1/events` applies ([`body_format`]), which also takes NDJSON;
//! these endpoints take one document, so only JSON.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::consent::event::{BodyFormat, body_format};

/// The media type the JSON endpoints take.
pub const JSON_MEDIA_TYPE: &str = "application/json";

/// A request body whose `Content-Type` was checked to be JSON.
pub struct JsonBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    /// 415 as an [`ApiError`]; a body that cannot be read (over the size
    /// limit: 413) as axum answers it, made JSON by the error layer.
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        check_json_content_type(request.headers()).map_err(IntoResponse::into_response)?;
        let body = Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(JsonBody(body))
    }
}

/// 415 unless the request declares a JSON body.
pub fn check_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let unsupported = |what: String| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("{what}; send `Content-Type: {JSON_MEDIA_TYPE}` (UTF-8)"),
        )
        .with_details(serde_json::json!({"accepted": [JSON_MEDIA_TYPE]}))
    };
    let Some(header) = headers.get(CONTENT_TYPE) else {
        return Err(unsupported("missing content type".into()));
    };
    let Some(text) = header.to_str().ok().filter(|t| !t.trim().is_empty()) else {
        return Err(unsupported("unreadable or empty content type".into()));
    };
    match body_format(Some(text)) {
        Ok(BodyFormat::Json) => Ok(()),
        // `to_str` took visible ASCII only, so the header is safe to show.
        Ok(BodyFormat::Ndjson) | Err(_) => {
            Err(unsupported(format!("unsupported content type `{text}`")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(content_type: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = content_type {
            headers.insert(CONTENT_TYPE, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn only_json_in_utf8_is_taken() {
        for accepted in [
            "application/json",
            "Application/JSON; charset=UTF-8",
            "application/json;charset=\"utf-8\"",
        ] {
            assert!(
                check_json_content_type(&with(Some(accepted))).is_ok(),
                "{accepted}"
            );
        }
        for refused in [
            None,
            Some(""),
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("application/x-ndjson"),
            Some("application/json; charset=latin1"),
        ] {
            let error = check_json_content_type(&with(refused)).unwrap_err();
            assert_eq!(
                error.status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{refused:?}"
            );
            assert!(
                error.message.contains("application/json"),
                "{}",
                error.message
            );
        }
    }
}
