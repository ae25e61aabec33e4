//! A small OTLP/HTTP trace receiver on loopback: `POST /v1/traces` with a
//! protobuf `ExportTraceServiceRequest`, as prefsync's exporter sends it.
//! It keeps what it decoded (at most [`MAX_SPANS`] spans, bodies up to
//! 4 MiB) for tests to read as [`ReceivedSpan`]s.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use prost::Message as _;

use crate::mocks::MockServer;

/// Spans kept; beyond, requests are answered but their spans dropped.
pub const MAX_SPANS: usize = 10_000;

/// One span as received, ids in lower-case hex.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// OTLP's `SpanKind` (2 server, 3 client …).
    pub kind: i32,
    /// Every attribute, its value as text (an array as a JSON array).
    pub attributes: BTreeMap<String, String>,
    /// Linked spans, as (trace id, span id).
    pub links: Vec<(String, String)>,
    /// OTLP's status code (2: error).
    pub status_code: i32,
    /// The resource's `service.name`.
    pub service_name: String,
}

impl ReceivedSpan {
    /// The attribute `key`, when the span has it.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// What the receiver got.
#[derive(Clone, Default)]
pub struct Received {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    requests: Arc<Mutex<Vec<RequestSeen>>>,
}

/// The parts of an export request a test may check.
#[derive(Debug, Clone)]
pub struct RequestSeen {
    pub content_type: String,
    pub user_agent: String,
}

impl Received {
    /// The spans received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The export requests received so far.
    pub fn requests(&self) -> Vec<RequestSeen> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Starts a receiver on a free loopback port; its [`MockServer::url`] is
/// the endpoint to configure (`otlp_endpoint`).
pub async fn start() -> std::io::Result<MockServer<Received>> {
    let received = Received::default();
    let router = axum::Router::new()
        .route("/v1/traces", post(export))
        .layer(DefaultBodyLimit::max(4 * 1024 * 1024))
        .with_state(received.clone());
    crate::mocks::serve(0, router, received).await
}

async fn export(
    State(received): State<Received>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, [(header::HeaderName, &'static str); 1], Vec<u8>) {
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    received
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(RequestSeen {
            content_type: text(header::CONTENT_TYPE),
            user_agent: text(header::USER_AGENT),
        });
    let protobuf = [(header::CONTENT_TYPE, "application/x-protobuf")];
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, protobuf, Vec::new());
    };
    let mut spans = received.spans.lock().unwrap_or_else(|e| e.into_inner());
    for resource_spans in request.resource_spans {
        let service_name = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .map(|kv| value_text(kv.value.as_ref()))
            .unwrap_or_default();
        for span in resource_spans
            .scope_spans
            .into_iter()
            .flat_map(|scope| scope.spans)
        {
            if spans.len() >= MAX_SPANS {
                break;
            }
            spans.push(ReceivedSpan {
                name: span.name,
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_span_id: hex(&span.parent_span_id),
                kind: span.kind,
                attributes: span
                    .attributes
                    .iter()
                    .map(|kv| (kv.key.clone(), value_text(kv.value.as_ref())))
                    .collect(),
                links: span
                    .links
                    .iter()
                    .map(|link| (hex(&link.trace_id), hex(&link.span_id)))
                    .collect(),
                status_code: span.status.map_or(0, |status| status.code),
                service_name: service_name.clone(),
            });
        }
    }
    let answer = ExportTraceServiceResponse::default().encode_to_vec();
    (StatusCode::OK, protobuf, answer)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An attribute's value as text; arrays as JSON arrays of their texts.
fn value_text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::ArrayValue(array)) => serde_json::Value::Array(
            array
                .values
                .iter()
                .map(|v| serde_json::Value::String(value_text(Some(v))))
                .collect(),
        )
        .to_string(),
        Some(other) => format!("{other:?}"),
    }
}
