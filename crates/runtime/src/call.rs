//! The state of one connector call (a fresh store per call) and the host
//! side of the contract's imports: `http`, `log` and `cache`.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::prefsync::connector::{cache, http, log, types};
use super::bindings::{HttpError, Level, Request, Response};
use super::guest_output::CappedOutput;
use super::integration::IntegrationContext;
use super::limits::MemoryLimiter;
use crate::engine::Shared;

/// Who is calling: tags every log line the guest emits.
#[derive(Debug, Clone)]
pub(super) struct CallTags {
    pub connector: String,
    pub connector_version: String,
    /// Keys of the records in the batch; a single key tags every line.
    pub record_keys: Vec<String>,
}

/// Counters of one call, for the audit and the test harness.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallStats {
    /// Status of every HTTP response, in order.
    pub http_statuses: Vec<u16>,
    /// Requests refused by the egress policy.
    pub denied_requests: u32,
    /// Epoch ticks spent in guest code.
    pub cpu_ticks: u64,
    /// The guest's log lines, redacted, the first [`MAX_KEPT_LOG_LINES`].
    pub log: Vec<GuestLogLine>,
    /// Log lines beyond those kept.
    pub log_lines_dropped: u32,
}

/// Log lines a call report keeps; the log itself gets every line.
pub const MAX_KEPT_LOG_LINES: usize = 64;

/// One line the guest logged, as the report keeps it (secrets redacted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestLogLine {
    pub level: Level,
    pub message: String,
    /// `key=value` pairs, space-separated.
    pub fields: String,
}

/// Store data of one call.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) limiter: MemoryLimiter,
    pub(super) cpu_budget_ticks: u64,
    pub(super) cpu_exceeded: bool,
    pub(super) stats: CallStats,
    pub(super) stdout: CappedOutput,
    pub(super) stderr: CappedOutput,
    integration: Arc<IntegrationContext>,
    tags: CallTags,
    shared: Arc<Shared>,
}

impl CallState {
    pub(super) fn new(
        shared: Arc<Shared>,
        integration: Arc<IntegrationContext>,
        tags: CallTags,
    ) -> Self {
        let limits = &shared.limits;
        let stdout = CappedOutput::new(limits.guest_output_bytes);
        let stderr = CappedOutput::new(limits.guest_output_bytes);
        // The builder's defaults grant nothing: no preopened directories, no
        // environment, no arguments, no sockets, no name lookup.
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .build();
        CallState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(limits.memory_bytes),
            cpu_budget_ticks: limits.cpu_ticks(),
            cpu_exceeded: false,
            stats: CallStats::default(),
            stdout,
            stderr,
            integration,
            tags,
            shared,
        }
    }

    /// The record a log line belongs to: the guest's `record_key` field, or
    /// the batch's only key.
    fn record_for<'a>(&'a self, fields: &'a [(String, String)]) -> &'a str {
        fields
            .iter()
            .find(|(k, _)| k == "record_key")
            .map(|(_, v)| v.as_str())
            .or(match self.tags.record_keys.as_slice() {
                [only] => Some(only.as_str()),
                _ => None,
            })
            .unwrap_or("")
    }

    /// Sends what the guest printed to the log, redacted.
    pub(super) fn flush_output(&self) {
        for (stream, output) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let text = output.contents();
            if text.trim().is_empty() {
                continue;
            }
            let text = self.integration.redactor().redact(text.trim_end());
            tracing::info!(
                connector = %self.tags.connector,
                connector_version = %self.tags.connector_version,
                integration = %self.integration.id(),
                stream,
                "guest output: {}",
                prefsync_base::log_safe::escaped(&text)
            );
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for CallState {}

impl http::Host for CallState {
    async fn send(&mut self, request: Request) -> wasmtime::Result<Result<Response, HttpError>> {
        let method = request.method;
        // The method, host and status only: a path or query may carry a
        // user's id or a secret, headers carry credentials.
        let host = url::Url::parse(&request.url)
            .ok()
            .and_then(|url| url.host_str().map(str::to_owned))
            .unwrap_or_default();
        let span = tracing::info_span!(
            "http request",
            otel.name = %format_args!("{} {host}", method.as_str()),
            otel.kind = "client",
            http.request.method = method.as_str(),
            server.address = %host,
            http.response.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let result = tracing::Instrument::instrument(
            self.shared.http.send(request, self.integration.allowlist()),
            span.clone(),
        )
        .await;
        match &result {
            Ok(response) if response.status >= 500 => {
                span.record("http.response.status_code", response.status);
                span.record("otel.status_code", "ERROR");
            }
            Ok(response) => {
                span.record("http.response.status_code", response.status);
            }
            Err(_) => {
                span.record("otel.status_code", "ERROR");
            }
        }
        match &result {
            Ok(response) => self.stats.http_statuses.push(response.status),
            Err(HttpError::Denied(why)) => {
                self.stats.denied_requests += 1;
                tracing::warn!(
                    connector = %self.tags.connector,
                    connector_version = %self.tags.connector_version,
                    integration = %self.integration.id(),
                    method = ?method,
                    reason = %prefsync_base::log_safe::escaped(&self.integration.redactor().redact(why)),
                    "outbound request denied by egress policy"
                );
            }
            Err(_) => {}
        }
        Ok(result.map_err(|e| match e {
            // Transport texts can echo a URL; keep secrets out of what the guest sees too.
            HttpError::Connection(why) => {
                HttpError::Connection(self.integration.redactor().redact(&why).into_owned())
            }
            other => other,
        }))
    }
}

/// The tracing target of connectors' own log lines. The JSON log format
/// writes their `fields` (a JSON object's text here) as a real object.
pub const GUEST_LOG_TARGET: &str = "prefsync_runtime::guest";

/// A connector's log fields as a JSON object's text, `record_key` left out
/// (it is the line's `record`). Keys and values are redacted, then escaped
/// so that the text holds no control character or line separator, raw or
/// decoded: it cannot forge a line in either log format.
fn fields_json(redactor: &prefsync_base::secrets::Redactor, fields: &[(String, String)]) -> String {
    let object: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .filter(|(k, _)| k != "record_key")
        .map(|(k, v)| {
            let safe =
                |text: &str| prefsync_base::log_safe::escaped(&redactor.redact(text)).into_owned();
            (safe(k), serde_json::Value::String(safe(v)))
        })
        .collect();
    serde_json::Value::Object(object).to_string()
}

impl log::Host for CallState {
    async fn log(
        &mut self,
        level: Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        let integration = self.integration.clone();
        let redactor = integration.redactor();
        let message = redactor.redact(&message);
        let record = redactor.redact(self.record_for(&fields)).into_owned();
        if self.stats.log.len() < MAX_KEPT_LOG_LINES {
            let rendered: Vec<String> = fields
                .iter()
                .filter(|(k, _)| k != "record_key")
                .map(|(k, v)| format!("{}={}", redactor.redact(k), redactor.redact(v)))
                .collect();
            self.stats.log.push(GuestLogLine {
                level,
                message: message.clone().into_owned(),
                fields: rendered.join(" "),
            });
        } else {
            self.stats.log_lines_dropped += 1;
        }
        let fields = fields_json(redactor, &fields);
        macro_rules! emit {
            ($level:expr) => {
                tracing::event!(
                    target: GUEST_LOG_TARGET,
                    $level,
                    connector = %self.tags.connector,
                    connector_version = %self.tags.connector_version,
                    integration = %self.integration.id(),
                    // Guest text carries record keys (user ids): escaped, so
                    // it cannot forge a log line.
                    record = %prefsync_base::log_safe::escaped(&record),
                    fields = %fields,
                    "{}",
                    prefsync_base::log_safe::escaped(&message)
                )
            };
        }
        match level {
            Level::Trace => emit!(tracing::Level::TRACE),
            Level::Debug => emit!(tracing::Level::DEBUG),
            Level::Info => emit!(tracing::Level::INFO),
            Level::Warn => emit!(tracing::Level::WARN),
            Level::Error => emit!(tracing::Level::ERROR),
        }
        Ok(())
    }
}

impl cache::Host for CallState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.shared.kv.get(self.integration.id(), &key))
    }

    async fn set(&mut self, key: String, value: String, ttl_seconds: u32) -> wasmtime::Result<()> {
        let stored = self.shared.kv.set(
            self.integration.id(),
            &key,
            &value,
            Duration::from_secs(ttl_seconds.into()),
        );
        if !stored {
            tracing::warn!(
                connector = %self.tags.connector,
                integration = %self.integration.id(),
                key = %prefsync_base::log_safe::escaped(&self.integration.redactor().redact(&key)),
                "cache entry refused (too large or too many entries)"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_fields_become_a_json_object_redacted_and_escaped() {
        let redactor = prefsync_base::secrets::Redactor::from_config(
            &serde_json::json!({"authentication": {"api_key": "k3y-Secret-123"}}),
            &serde_json::Value::Null,
        );
        let fields = [
            ("status".to_string(), "429".to_string()),
            ("record_key".to_string(), "ann".to_string()),
            ("auth".to_string(), "Bearer k3y-Secret-123".to_string()),
            ("body".to_string(), "a\nINFO forged\u{2028}".to_string()),
        ];
        let text = fields_json(&redactor, &fields);
        assert!(!text.contains("k3y-Secret-123"), "{text}");
        assert!(
            !text.chars().any(|c| c.is_control() || c == '\u{2028}'),
            "{text}"
        );
        let object: serde_json::Value = serde_json::from_str(&text).expect("a JSON object");
        assert_eq!(object["status"], "429");
        assert!(object.get("record_key").is_none(), "{object}");
        assert_eq!(object["body"], "a\\nINFO forged\\u{2028}");
    }
}
