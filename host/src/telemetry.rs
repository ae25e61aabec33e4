//! Traces over OTLP/HTTP (`[telemetry]`). With an `otlp_endpoint`,
//! [`provider`] builds the tracer provider the log's subscriber bridges
//! tracing spans into (`tracing-opentelemetry`); without one nothing is
//! built and no layer is installed. Spans are batched on the SDK's thread
//! and sent as protobuf through [`EgressClient`]: the host's own
//! egress-checked client ([`HostHttp`]), never a client of the exporter's.
//!
//! The spans: `POST /v1/events` (or a webhook) → `ingest` (event count and
//! ids) → `delivery` (a root span per batch, linked to each ingest whose
//! change it carries: the ingest's `traceparent` is kept with the outbox
//! row) → `connector call` → `http request` (method, host, status; never a
//! path, query or header). Activation runs and connector upgrades have
//! their own. A `traceparent` header on ingest routes is the request span's
//! parent (W3C Trace Context).

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context as _, Result};
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::config::TelemetryConfig;
use crate::egress::EgressOptions;
use crate::outbound_http::HostHttp;

/// The provider in service, once [`provider`] built one: what the spans'
/// helpers look at, and what [`shutdown`] flushes.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// The name of the instrumentation scope of every span.
const SCOPE: &str = "prefsync";

/// The W3C Trace Context header.
pub const TRACEPARENT: &str = "traceparent";

/// The tracer provider for `config`, or `None` when no endpoint is set.
/// Must run inside the tokio runtime: exports are sent on it. The first
/// provider built is the one the helpers below use.
pub fn provider(
    config: &TelemetryConfig,
    egress: &EgressOptions,
) -> Result<Option<SdkTracerProvider>> {
    let Some(endpoint) = &config.otlp_endpoint else {
        return Ok(None);
    };
    let timeout = Duration::from_millis(config.export_timeout_ms);
    let client = EgressClient {
        http: HostHttp::new(egress.clone(), timeout)?,
        runtime: tokio::runtime::Handle::try_current()
            .context("traces are exported on the tokio runtime")?,
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces_url(endpoint))
        .with_timeout(timeout)
        .build()
        .context("building the OTLP trace exporter")?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(config.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sample_ratio,
        ))))
        .with_resource(resource)
        .build();
    let _ = PROVIDER.set(provider.clone());
    Ok(Some(provider))
}

/// The tracer the log's subscriber bridges spans to.
pub fn tracer(provider: &SdkTracerProvider) -> SdkTracer {
    provider.tracer(SCOPE)
}

/// Where spans are sent: the collector's `/v1/traces`.
fn traces_url(endpoint: &str) -> String {
    format!("{}/v1/traces", endpoint.trim_end_matches('/'))
}

/// Whether traces are on (a provider was built).
pub fn enabled() -> bool {
    PROVIDER.get().is_some()
}

/// Sends the spans still batched and stops the exporter, waiting at most
/// `timeout`; nothing when traces are off.
pub async fn shutdown(timeout: Duration) {
    let Some(provider) = PROVIDER.get().cloned() else {
        return;
    };
    // The SDK blocks while its thread exports, and the export itself runs
    // on this runtime: off the runtime's threads, and bounded here too.
    let flush = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(timeout));
    match tokio::time::timeout(timeout, flush).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(error))) => {
            tracing::warn!(error = %error, "flushing traces at shutdown failed")
        }
        Ok(Err(_)) | Err(_) => tracing::warn!(
            timeout_ms = timeout.as_millis() as u64,
            "flushing traces at shutdown did not finish in time; the last spans may be lost"
        ),
    }
}

/// The parent a request's span takes from its `traceparent` header, when
/// traces are on and the header is valid.
pub fn remote_parent(headers: &http::HeaderMap) -> Option<opentelemetry::Context> {
    if !enabled() {
        return None;
    }
    let context =
        TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers));
    context.span().span_context().is_valid().then_some(context)
}

/// `span`'s context as a `traceparent`, to keep with what it raised; `None`
/// when traces are off or the span is not traced.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    if !enabled() {
        return None;
    }
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Links `span` to the span a stored `traceparent` names (an ingest whose
/// change `span` delivers).
pub fn link(span: &tracing::Span, traceparent: &str) {
    if !enabled() {
        return;
    }
    let carrier = HashMap::from([(TRACEPARENT.to_string(), traceparent.to_string())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    let linked = context.span().span_context().clone();
    if linked.is_valid() {
        span.add_link(linked);
    }
}

/// Event ids an `ingest` span names (the count is always there).
const MAX_EVENT_IDS: usize = 100;

/// The span of one request's ingest: how many events, their ids (the
/// first [`MAX_EVENT_IDS`]) and, for a webhook, its integration.
pub fn ingest_span<'a>(
    event_ids: impl ExactSizeIterator<Item = &'a str>,
    integration: Option<&str>,
) -> tracing::Span {
    let span = tracing::info_span!(
        "ingest",
        prefsync.event_count = event_ids.len(),
        prefsync.integration = integration,
    );
    if enabled() && !span.is_disabled() {
        let ids = event_ids
            .take(MAX_EVENT_IDS)
            .map(|id| opentelemetry::StringValue::from(id.to_string()))
            .collect();
        span.set_attribute(
            "prefsync.event_ids",
            opentelemetry::Value::Array(opentelemetry::Array::String(ids)),
        );
    }
    span
}

/// The span of one HTTP request the API answers; on the ingest routes
/// (`POST /v1/events`, `POST /v1/webhooks/{integration}`) a `traceparent`
/// header is its parent. Health probes and scrapes get none.
pub fn request_span(method: &http::Method, path: &str, headers: &http::HeaderMap) -> tracing::Span {
    if !enabled() || matches!(path, "/healthz" | "/readyz" | "/metrics") {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "request",
        otel.name = %method,
        otel.kind = "server",
        http.request.method = %method,
        http.route = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        prefsync.request_id = tracing::field::Empty,
    );
    let ingest = *method == http::Method::POST
        && (path == "/v1/events" || path.starts_with("/v1/webhooks/"));
    if ingest && let Some(parent) = remote_parent(headers) {
        let _ = span.set_parent(parent);
    }
    span
}

/// What a request's span learns once it is answered.
pub fn answered(
    span: &tracing::Span,
    method: &http::Method,
    route: &str,
    status: u16,
    request_id: &str,
) {
    if !enabled() || span.is_disabled() {
        return;
    }
    // Started when entered: its name changes through its context.
    span.context()
        .span()
        .update_name(format!("{method} {route}"));
    span.record("http.route", route)
        .record("http.response.status_code", status)
        .record("prefsync.request_id", request_id);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
}

/// The exporter's HTTP: the host's egress-checked client. The SDK exports
/// from its own thread, outside any runtime; each request runs on the
/// server's tokio runtime, where the client's connections live.
#[derive(Debug, Clone)]
pub struct EgressClient {
    http: HostHttp,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for EgressClient {
    async fn send_bytes(
        &self,
        mut request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        // Who sends: prefsync, through its exporter.
        let agent = match request
            .headers()
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
        {
            Some(exporter) => format!("prefsync/{} {exporter}", env!("CARGO_PKG_VERSION")),
            None => format!("prefsync/{}", env!("CARGO_PKG_VERSION")),
        };
        request
            .headers_mut()
            .insert(http::header::USER_AGENT, agent.parse()?);
        let http = self.http.clone();
        let answer = self
            .runtime
            .spawn(async move { http.send(request).await })
            .await?;
        Ok(answer?)
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_http::HttpClient as _;

    use super::*;

    #[test]
    fn without_an_endpoint_nothing_is_built_or_traced() {
        let built = provider(&TelemetryConfig::default(), &EgressOptions::default()).unwrap();
        assert!(built.is_none());
        assert!(!enabled());
        let span = tracing::info_span!("ingest");
        assert_eq!(traceparent(&span), None);
        let mut headers = http::HeaderMap::new();
        headers.insert(
            TRACEPARENT,
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
                .parse()
                .unwrap(),
        );
        assert!(remote_parent(&headers).is_none());
    }

    #[test]
    fn spans_go_to_the_collectors_traces_path() {
        assert_eq!(
            traces_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://collector.example/"),
            "https://collector.example/v1/traces"
        );
    }

    #[tokio::test]
    async fn the_exporters_requests_pass_the_egress_policy() {
        // Loopback and plain http are refused by default: nothing is sent.
        let client = EgressClient {
            http: HostHttp::new(EgressOptions::default(), Duration::from_secs(1)).unwrap(),
            runtime: tokio::runtime::Handle::current(),
        };
        let request = http::Request::post("http://127.0.0.1:4318/v1/traces")
            .body(bytes::Bytes::from_static(b"spans"))
            .unwrap();
        let error = client.send_bytes(request).await.unwrap_err();
        assert!(
            error.to_string().contains("refused by the egress policy"),
            "{error}"
        );
    }
}
