//! The process's log: `PREFSYNC_LOG` sets the level (an `EnvFilter`), `[log]
//! format` / `PREFSYNC_LOG_FORMAT` the shape — text for people, colour only
//! when stderr is a terminal, or one JSON object per line with every field
//! a field of its own, a connector's own log fields included (as the object
//! `fields`).

use std::io::IsTerminal as _;

use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, JsonFields, Writer};
use tracing_subscriber::layer::{Layer, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Registry};

use crate::config::LogFormat;
use crate::runtime::GUEST_LOG_TARGET;

/// Installs the global subscriber, writing to stderr. `default_level` holds
/// when `PREFSYNC_LOG` is unset. With `traces` (`[telemetry]` on), prefsync's
/// `info` spans go to it too, whatever the log level; without, no
/// OpenTelemetry layer is installed at all. The log shows events only: the
/// spans are for traces, log lines keep their shape.
pub fn init(format: LogFormat, default_level: &str, traces: Option<SdkTracerProvider>) {
    let filter = EnvFilter::try_from_env("PREFSYNC_LOG")
        .unwrap_or_else(|_| EnvFilter::new(default_level))
        // tokio-postgres logs every statement's parameters at debug level,
        // integration configs (secrets) among them: never below info.
        .add_directive("tokio_postgres=info".parse().expect("a valid directive"));
    let events_only = tracing_subscriber::filter::filter_fn(|metadata| metadata.is_event());
    let log = log_layer(format).with_filter(tracing_subscriber::filter::FilterExt::and(
        filter,
        events_only,
    ));
    let registry = tracing_subscriber::registry().with(log);
    match traces {
        None => registry.init(),
        Some(provider) => registry
            .with(
                tracing_opentelemetry::layer()
                    .with_tracer(crate::telemetry::tracer(&provider))
                    .with_filter(tracing_subscriber::filter::FilterExt::and(
                        traced_spans(),
                        tracing_subscriber::filter::filter_fn(|metadata| metadata.is_span()),
                    )),
            )
            .init(),
    }
}

/// What becomes a span in traces: prefsync's own `info` spans (the host's
/// and the runtime's), never a library's — the exporter's own HTTP must not
/// trace itself. Log events stay out of traces (no span events): their
/// fields name users, and a connector's lines are its own words.
fn traced_spans() -> tracing_subscriber::filter::Targets {
    tracing_subscriber::filter::Targets::new()
        .with_target("prefsync", Level::INFO)
        .with_target("prefsync_runtime", Level::INFO)
}

/// The log's formatting layer: text (colour only on a terminal) or JSON lines.
fn log_layer(format: LogFormat) -> Box<dyn Layer<Registry> + Send + Sync> {
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match format {
        LogFormat::Text => layer.with_ansi(std::io::stderr().is_terminal()).boxed(),
        LogFormat::Json => layer
            .fmt_fields(JsonFields::new())
            .event_format(json_lines())
            .boxed(),
    }
}

/// One JSON object per line, the event's fields at the top level.
fn json_lines() -> GuestFieldsAsObject {
    GuestFieldsAsObject(
        format::format()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false),
    )
}

/// The JSON event format, but a connector's log line (target
/// [`GUEST_LOG_TARGET`]) has its `fields` — the JSON text the runtime made
/// of the guest's key/value pairs — as an object, so `fields.status` can be
/// queried like any other key. tracing's fields are named at compile time,
/// a guest's are not: hence the text, and this rewrite of its lines only.
struct GuestFieldsAsObject(format::Format<format::Json>);

impl<S, N> FormatEvent<S, N> for GuestFieldsAsObject
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        if event.metadata().target() != GUEST_LOG_TARGET {
            return self.0.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        let Ok(mut object) =
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(line.trim_end())
        else {
            return writer.write_str(&line);
        };
        let parsed = match object.get("fields") {
            Some(serde_json::Value::String(text)) => serde_json::from_str(text).ok(),
            _ => None,
        };
        if let Some(fields @ serde_json::Value::Object(_)) = parsed {
            object.insert("fields".to_string(), fields);
        }
        writeln!(writer, "{}", serde_json::Value::Object(object))
    }
}

/// A subscriber writing [`json_lines`] to `writer`, for tests.
#[cfg(test)]
fn json_subscriber<W>(writer: W) -> impl Subscriber + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_writer(writer)
        .fmt_fields(JsonFields::new())
        .event_format(json_lines())
        .finish()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Buffer {
            self.clone()
        }
    }

    #[test]
    fn a_connectors_fields_are_an_object_and_other_lines_are_untouched() {
        let buffer = Buffer::default();
        tracing::subscriber::with_default(json_subscriber(buffer.clone()), || {
            tracing::warn!(
                target: GUEST_LOG_TARGET,
                connector = "dotdigital",
                fields = %r#"{"status":"429","retry_after":"30"}"#,
                "rate limited"
            );
            tracing::info!(fields = "a=1", "not a connector's");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["message"], "rate limited");
        assert_eq!(lines[0]["connector"], "dotdigital");
        assert_eq!(lines[0]["fields"]["status"], "429");
        assert_eq!(lines[0]["fields"]["retry_after"], "30");
        assert_eq!(lines[1]["fields"], "a=1");
    }
}
