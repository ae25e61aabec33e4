//! The process's log: `PREFSYNC_LOG` sets the level (an `EnvFilter`), `[log]
//! format` / `PREFSYNC_LOG_FORMAT` the shape — text for people, colour only
//! when stderr is a terminal, or one JSON object per line with every field
//! a field of its own.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber, writing to stderr. `default_level` holds
/// when `PREFSYNC_LOG` is unset.
pub fn init(format: LogFormat, default_level: &str) {
    let filter = EnvFilter::try_from_env("PREFSYNC_LOG")
        .unwrap_or_else(|_| EnvFilter::new(default_level))
        // tokio-postgres logs every statement's parameters at debug level,
        // integration configs (secrets) among them: never below info.
        .add_directive("tokio_postgres=info".parse().expect("a valid directive"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}
