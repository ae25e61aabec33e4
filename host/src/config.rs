//! The host configuration (`prefsync.toml`). Every setting has a default, so
//! prefsync runs with no file at all on the embedded default: SQLite under
//! `./data/`, connectors from the workspace's build directory, listening on
//! `127.0.0.1:8080`. Unknown keys are errors that name the key.
//! `prefsync.example.toml` documents every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::egress::EgressOptions;
use crate::pipeline::RetryPolicy;
use crate::runtime::Limits;

/// Environment variable that supplies `server.admin_token`.
pub const ADMIN_TOKEN_ENV: &str = "PREFSYNC_ADMIN_TOKEN";
/// Environment variable that supplies `server.ingest_token`.
pub const INGEST_TOKEN_ENV: &str = "PREFSYNC_INGEST_TOKEN";
/// Environment variable that supplies `storage.url` (it may hold a password).
pub const STORAGE_URL_ENV: &str = "PREFSYNC_STORAGE_URL";
/// Environment variable that supplies `log.format` (it wins over the file).
pub const LOG_FORMAT_ENV: &str = "PREFSYNC_LOG_FORMAT";
/// Environment variable that supplies `telemetry.otlp_endpoint` (it wins
/// over the file).
pub const OTLP_ENDPOINT_ENV: &str = "PREFSYNC_OTLP_ENDPOINT";

/// The whole host configuration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostConfig {
    /// The HTTP API.
    pub server: ServerConfig,
    /// Where durable state lives.
    pub storage: StorageConfig,
    /// Where connector components are loaded from. `[plugins]`, the
    /// section's name before 0.2, is still read (with a warning).
    #[serde(alias = "plugins")]
    pub connectors: ConnectorsConfig,
    /// Integrations loaded from files at start (config as code).
    pub integrations: IntegrationsConfig,
    /// Limits of every connector call.
    pub limits: Limits,
    /// What connectors may reach.
    pub egress: EgressOptions,
    /// Default retry policy (an integration may carry its own).
    pub retry: RetryPolicy,
    /// How deliveries are claimed and dispatched.
    pub dispatch: DispatchConfig,
    /// Scheduled reverse-ETL syncs.
    pub activations: ActivationsConfig,
    /// What `POST /v1/events` accepts.
    pub ingest: IngestConfig,
    /// How the log is written.
    pub log: LogConfig,
    /// Traces exported over OTLP/HTTP (off unless an endpoint is set).
    pub telemetry: TelemetryConfig,
}

/// `[telemetry]`: OpenTelemetry traces, from a request through the store
/// to each delivery and the connector's requests, sent over OTLP/HTTP
/// (protobuf) through the egress policy like every other connection the
/// host opens. Without `otlp_endpoint` nothing is traced or sent.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// The OTLP/HTTP collector, e.g. `http://otel-collector:4318`; spans go
    /// to its `/v1/traces`. `PREFSYNC_OTLP_ENDPOINT` wins over this. It must
    /// pass `[egress]` (`allow_http` for `http://`, `allow_private` or
    /// `allow_loopback` for such addresses). Unset: no tracing at all.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of every span.
    pub service_name: String,
    /// Share of new traces kept, from 0 to 1; a trace begun elsewhere (a
    /// `traceparent` header) keeps its caller's decision.
    pub sample_ratio: f64,
    /// How long one export may take, in milliseconds.
    pub export_timeout_ms: u64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            service_name: "prefsync".to_string(),
            sample_ratio: 1.0,
            export_timeout_ms: 10_000,
        }
    }
}

/// `[log]`. The level is `PREFSYNC_LOG` (an `EnvFilter`: `info`,
/// `prefsync=debug,warn` …): `info` for `serve`, `warn` for the other commands.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (for people; colour only on a terminal) or `json` (one object
    /// per line, for Vector, Loki, Elasticsearch …). `PREFSYNC_LOG_FORMAT`
    /// wins over this.
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogFormat {
    /// The format to log in before the config is loaded: `PREFSYNC_LOG_FORMAT`,
    /// else `[log] format` of the file at `path` (read leniently: a broken
    /// file is reported by the full load, in the format found so far), else
    /// text. The error names what to fix when the variable holds no format.
    pub fn before_load(path: Option<&Path>) -> Result<LogFormat, String> {
        if let Ok(value) = std::env::var(LOG_FORMAT_ENV) {
            return match value.trim() {
                "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                _ => Err(format!("{LOG_FORMAT_ENV} must be `text` or `json`")),
            };
        }
        let format = path
            .and_then(|path| std::fs::read_to_string(path).ok())
            .and_then(|text| text.parse::<toml::Table>().ok())
            .and_then(|table| table.get("log")?.get("format")?.as_str().map(str::to_owned));
        Ok(match format.as_deref() {
            Some("json") => LogFormat::Json,
            _ => LogFormat::Text,
        })
    }
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on; loopback unless you mean to expose it.
    pub listen: SocketAddr,
    /// Bearer token for the admin endpoints (or `PREFSYNC_ADMIN_TOKEN`).
    pub admin_token: Option<String>,
    /// Bearer token for `POST /v1/events` (or `PREFSYNC_INGEST_TOKEN`);
    /// without one, ingest requires the admin token.
    pub ingest_token: Option<String>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How long a stop (SIGTERM, Ctrl-C) waits for the requests and
    /// deliveries in flight, in ms. Past it they are cut short and the
    /// process exits 0: a delivery cut short stays leased and is delivered
    /// again when its lease ends, so nothing is lost. Keep it under the
    /// orchestrator's grace period (Kubernetes: 30 s).
    pub shutdown_grace_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_token: None,
            ingest_token: None,
            max_body_bytes: 1024 * 1024,
            shutdown_grace_ms: 20_000,
        }
    }
}

/// `[storage]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Directory for the SQLite file and the precompiled-connector cache.
    pub data_dir: PathBuf,
    /// A PostgreSQL connection string (`postgres://user:password@host/db`,
    /// or `PREFSYNC_STORAGE_URL`): the store several hosts share. Unset: SQLite
    /// in `data_dir`. TLS as libpq: `?sslmode=verify-full&sslrootcert=/path/ca.pem`
    /// (`sslmode` disable, prefer (the default), require, verify-ca or verify-full).
    pub url: Option<String>,
    /// Most connections to PostgreSQL this host keeps open (with `url` only).
    pub pool_size: usize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("data"),
            url: None,
            pool_size: crate::store::postgres::DEFAULT_POOL_SIZE,
        }
    }
}

impl StorageConfig {
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("prefsync.db")
    }

    pub fn artifact_dir(&self) -> PathBuf {
        self.data_dir.join("artifacts")
    }
}

/// `[connectors]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectorsConfig {
    /// Directory of `.wasm` connector components; the default is where
    /// `cargo build --release --target wasm32-wasip2` puts the workspace's.
    pub dir: PathBuf,
    /// Upgrade from files that appear or change in `dir` while serving.
    pub watch: bool,
    /// How often `dir` is looked at, and canaries judged, in milliseconds.
    pub watch_interval_ms: u64,
    /// Largest component `POST /v1/connectors` accepts, in bytes.
    pub max_upload_bytes: usize,
}

impl Default for ConnectorsConfig {
    fn default() -> Self {
        ConnectorsConfig {
            dir: PathBuf::from("target/wasm32-wasip2/release"),
            watch: true,
            watch_interval_ms: 1_000,
            max_upload_bytes: 64 * 1024 * 1024,
        }
    }
}

/// `[integrations]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntegrationsConfig {
    /// Directory of integration JSON files (seed format, with an `id`) to
    /// create or update at start.
    pub dir: Option<PathBuf>,
}

/// `[activations]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActivationsConfig {
    /// Directory of activation JSON files to create or update at start
    /// (after the integrations they name).
    pub dir: Option<PathBuf>,
    /// The only directory CSV and SQLite models are read from: relative
    /// source paths resolve against it, and a path that leads outside it
    /// (`..`, a symlink) is refused, as is anything under
    /// `storage.data_dir`. Unset: file sources are refused.
    pub source_dir: Option<PathBuf>,
    /// How often the scheduler looks for due runs, in milliseconds.
    pub poll_ms: u64,
    /// How long a run holds its activation without renewing, in
    /// milliseconds; a host that dies mid-run frees it after this.
    pub lease_ms: u64,
}

impl Default for ActivationsConfig {
    fn default() -> Self {
        ActivationsConfig {
            dir: None,
            source_dir: None,
            poll_ms: 1_000,
            lease_ms: 600_000,
        }
    }
}

/// `[dispatch]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DispatchConfig {
    /// How long a claimed delivery stays leased to this host, in
    /// milliseconds; must outlast a connector call (`limits.wall_ms`).
    pub lease_ms: u64,
    /// Longest sleep between looks for due work, in milliseconds.
    pub poll_ms: u64,
    /// This host's name in leases; defaults to hostname and process id.
    pub host_id: Option<String>,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            lease_ms: 300_000,
            poll_ms: 250,
            host_id: None,
        }
    }
}

/// `[ingest]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// How far ahead of this host's clock an event's `created_at` (a user
    /// entity's `updated_at`) may be, in milliseconds; later ones are refused
    /// with 400, since a future stamp would win every later change. At start
    /// the store clamps stamps already beyond it to the start time.
    pub max_future_skew_ms: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_future_skew_ms: 5 * 60_000,
        }
    }
}

impl IngestConfig {
    /// The latest event stamp accepted at `now_ms`.
    pub fn latest_accepted_ms(&self, now_ms: i64) -> i64 {
        now_ms.saturating_add(i64::try_from(self.max_future_skew_ms).unwrap_or(i64::MAX))
    }
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
const SECOND_MS: u64 = 1_000;
const HOUR_MS: u64 = 3_600 * SECOND_MS;
const DAY_MS: u64 = 24 * HOUR_MS;

/// The range of every numeric key, (key, lowest, highest), checked at load:
/// wide enough for any real deployment, narrow enough that no value
/// overflows the arithmetic it feeds. `retry.*` has its own checks
/// ([`RetryPolicy::check`]).
pub const NUMERIC_RANGES: [(&str, u64, u64); 20] = [
    ("server.max_body_bytes", 1, GIB),
    ("server.shutdown_grace_ms", 0, HOUR_MS),
    ("storage.pool_size", 1, 1_000),
    ("connectors.watch_interval_ms", 10, DAY_MS),
    ("connectors.max_upload_bytes", 1, 4 * GIB),
    ("activations.poll_ms", 10, DAY_MS),
    ("activations.lease_ms", SECOND_MS, 7 * DAY_MS),
    ("dispatch.lease_ms", SECOND_MS, 7 * DAY_MS),
    ("dispatch.poll_ms", 1, HOUR_MS),
    ("limits.memory_bytes", MIB, 4 * GIB),
    ("limits.cpu_ms", 1, HOUR_MS),
    ("limits.wall_ms", 1, HOUR_MS),
    ("limits.response_bytes", 1, GIB),
    ("limits.request_timeout_ms", 1, HOUR_MS),
    ("limits.connector_concurrency", 1, 10_000),
    ("limits.max_instances", 1, 1_000),
    ("limits.epoch_tick_ms", 1, SECOND_MS),
    ("limits.guest_output_bytes", 0, 16 * MIB),
    ("ingest.max_future_skew_ms", 0, DAY_MS),
    ("telemetry.export_timeout_ms", 1, 10 * 60 * SECOND_MS),
];

/// A configuration that cannot be used, with what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl HostConfig {
    /// Reads `path`, or the defaults when `None`; then applies the token
    /// environment variables and checks the result.
    pub fn load(path: Option<&Path>) -> Result<HostConfig, ConfigError> {
        let (mut config, shown) = match path {
            None => (HostConfig::default(), "(defaults)".to_string()),
            Some(path) => {
                let shown = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: shown.clone(),
                    source,
                })?;
                let config = HostConfig::parse(&text, &shown)?;
                for (old, new) in HostConfig::renamed_sections(&text) {
                    tracing::warn!(config = %shown, old, new, "config section renamed: `[{old}]` is read for now; call it `[{new}]`");
                }
                (config, shown)
            }
        };
        if let Ok(token) = std::env::var(ADMIN_TOKEN_ENV) {
            config.server.admin_token = Some(token);
        }
        if let Ok(token) = std::env::var(INGEST_TOKEN_ENV) {
            config.server.ingest_token = Some(token);
        }
        if let Ok(url) = std::env::var(STORAGE_URL_ENV) {
            config.storage.url = Some(url);
        }
        if let Ok(endpoint) = std::env::var(OTLP_ENDPOINT_ENV) {
            let endpoint = endpoint.trim();
            config.telemetry.otlp_endpoint = (!endpoint.is_empty()).then(|| endpoint.to_string());
        }
        config.check().map_err(|message| ConfigError::Invalid {
            path: shown,
            message,
        })?;
        Ok(config)
    }

    /// Sections of `text` under a name that was renamed, as `(old, new)`:
    /// still read through a serde alias, and worth a warning.
    fn renamed_sections(text: &str) -> Vec<(&'static str, &'static str)> {
        const RENAMED: [(&str, &str); 1] = [("plugins", "connectors")];
        let Ok(table) = text.parse::<toml::Table>() else {
            return Vec::new();
        };
        RENAMED
            .into_iter()
            .filter(|(old, _)| table.contains_key(*old))
            .collect()
    }

    /// Parses TOML text; `shown` names the source in errors.
    pub fn parse(text: &str, shown: &str) -> Result<HostConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: shown.to_string(),
            // toml's message names the key (and line/column) already.
            message: e.to_string().trim_end().to_string(),
        })
    }

    /// Every numeric key within its documented range (see
    /// [`NUMERIC_RANGES`]); the error names the first key out of range.
    pub fn check_ranges(&self) -> Result<(), String> {
        let wide = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let values: [u64; NUMERIC_RANGES.len()] = [
            wide(self.server.max_body_bytes),
            self.server.shutdown_grace_ms,
            wide(self.storage.pool_size),
            self.connectors.watch_interval_ms,
            wide(self.connectors.max_upload_bytes),
            self.activations.poll_ms,
            self.activations.lease_ms,
            self.dispatch.lease_ms,
            self.dispatch.poll_ms,
            self.limits.memory_bytes,
            self.limits.cpu_ms,
            self.limits.wall_ms,
            self.limits.response_bytes,
            self.limits.request_timeout_ms,
            u64::from(self.limits.connector_concurrency),
            u64::from(self.limits.max_instances),
            self.limits.epoch_tick_ms,
            wide(self.limits.guest_output_bytes),
            self.ingest.max_future_skew_ms,
            self.telemetry.export_timeout_ms,
        ];
        for (&(key, low, high), value) in NUMERIC_RANGES.iter().zip(values) {
            if !(low..=high).contains(&value) {
                return Err(format!("{key} must be from {low} to {high}, not {value}"));
            }
        }
        Ok(())
    }

    /// Cross-field rules the types cannot express.
    pub fn check(&self) -> Result<(), String> {
        self.check_ranges()?;
        self.retry.check().map_err(|e| e.to_string())?;
        if self.dispatch.lease_ms <= self.limits.wall_ms {
            return Err(format!(
                "dispatch.lease_ms ({}) must be longer than limits.wall_ms ({}), or a slow call could be delivered twice",
                self.dispatch.lease_ms, self.limits.wall_ms
            ));
        }
        if self.activations.lease_ms <= self.limits.wall_ms.saturating_mul(2) {
            return Err(format!(
                "activations.lease_ms ({}) must be more than twice limits.wall_ms ({}): a run renews its lease between connector calls",
                self.activations.lease_ms, self.limits.wall_ms
            ));
        }
        if let Some(url) = &self.storage.url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(format!(
                "storage.url must be a PostgreSQL connection string (postgres://user:password@host/database), not {}",
                crate::store::postgres::redacted_url(url)
            ));
        }
        if let Some(url) = &self.storage.url {
            // sslmode, sslrootcert (read here) and the rest, as the store will.
            crate::store::postgres_tls::PgConnectionString::parse(url)
                .and_then(|parsed| parsed.connector().map(drop))
                .map_err(|why| {
                    format!(
                        "storage.url {}: {why}",
                        crate::store::postgres::redacted_url(url)
                    )
                })?;
        }
        for (name, token) in [
            ("server.admin_token", &self.server.admin_token),
            ("server.ingest_token", &self.server.ingest_token),
        ] {
            if token.as_deref().is_some_and(|t| t.len() < 16) {
                return Err(format!("{name} must be at least 16 characters"));
            }
        }
        self.check_telemetry()
    }

    /// `[telemetry]`: a ratio from 0 to 1, a service name, and an endpoint
    /// the egress policy lets the host reach (without a path, query or
    /// credentials: spans go to its `/v1/traces`).
    fn check_telemetry(&self) -> Result<(), String> {
        let telemetry = &self.telemetry;
        if !(0.0..=1.0).contains(&telemetry.sample_ratio) {
            return Err(format!(
                "telemetry.sample_ratio must be from 0 to 1, not {}",
                telemetry.sample_ratio
            ));
        }
        if telemetry.service_name.trim().is_empty() || telemetry.service_name.len() > 255 {
            return Err("telemetry.service_name must be 1 to 255 characters".to_string());
        }
        let Some(endpoint) = &telemetry.otlp_endpoint else {
            return Ok(());
        };
        let shown = crate::secrets::redact_url(endpoint);
        let url = crate::egress::check_host_url(endpoint, &self.egress)
            .map_err(|denied| format!("telemetry.otlp_endpoint {shown}: {denied}"))?;
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "telemetry.otlp_endpoint {shown}: give the collector's base URL (scheme, host, port); spans go to its /v1/traces"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_file_means_the_embedded_default() {
        let config = HostConfig::default();
        config.check().unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            config.storage.sqlite_path(),
            PathBuf::from("data/prefsync.db")
        );
    }

    #[test]
    fn the_store_s_pool_size_and_tls_settings_are_checked() {
        let config = |text: &str| HostConfig::parse(text, "prefsync.toml").unwrap();
        assert_eq!(HostConfig::default().storage.pool_size, 16);
        let sized = config("[storage]\npool_size = 4\nurl = \"postgres://db/p?sslmode=require\"");
        assert_eq!(sized.storage.pool_size, 4);
        sized.check().unwrap();
        assert_eq!(
            config("[storage]\npool_size = 0").check().unwrap_err(),
            "storage.pool_size must be from 1 to 1000, not 0"
        );
        let error = config("[storage]\nurl = \"postgres://u:s3cret-pw@db/p?sslmode=verify_full\"")
            .check()
            .unwrap_err();
        assert_eq!(
            error,
            "storage.url postgres://u:%5BREDACTED%5D@db/p?sslmode=verify_full: sslmode `verify_full` is not one of disable, prefer, require, verify-ca, verify-full"
        );
        let error = config(
            "[storage]\nurl = \"postgres://u:s3cret-pw@db/p?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem\"",
        )
        .check()
        .unwrap_err();
        assert!(
            error.contains(": sslrootcert /nonexistent/ca.pem: cannot read it")
                && !error.contains("s3cret-pw"),
            "{error}"
        );
    }

    #[test]
    fn the_example_config_parses_and_passes_its_checks() {
        let text = include_str!("../../prefsync.example.toml");
        let config = HostConfig::parse(text, "prefsync.example.toml").unwrap();
        config.check().unwrap();
        assert!(config.egress.allow_loopback);
    }

    #[test]
    fn the_otlp_endpoint_must_pass_the_egress_policy() {
        let config = |text: &str| HostConfig::parse(text, "prefsync.toml").unwrap();
        let telemetry = HostConfig::default().telemetry;
        assert_eq!(telemetry.otlp_endpoint, None);
        assert_eq!(telemetry.service_name, "prefsync");
        let open = "[egress]\nallow_loopback = true\nallow_http = true\n[telemetry]\n";
        config(&format!("{open}otlp_endpoint = \"http://127.0.0.1:4318\""))
            .check()
            .unwrap();
        let error = config(
            "[egress]\nallow_http = true\n[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"",
        )
        .check()
        .unwrap_err();
        assert!(
            error.starts_with("telemetry.otlp_endpoint http://127.0.0.1:4318/: ")
                && error.contains("loopback"),
            "{error}"
        );
        let error = config(&format!(
            "{open}otlp_endpoint = \"http://u:s3cret@127.0.0.1:4318\""
        ))
        .check()
        .unwrap_err();
        assert!(
            error.starts_with("telemetry.otlp_endpoint ") && !error.contains("s3cret"),
            "{error}"
        );
        let error = config(&format!(
            "{open}otlp_endpoint = \"http://127.0.0.1:4318/v1/traces\""
        ))
        .check()
        .unwrap_err();
        assert!(error.contains("base URL"), "{error}");
        assert_eq!(
            config(&format!("{open}sample_ratio = 1.5"))
                .check()
                .unwrap_err(),
            "telemetry.sample_ratio must be from 0 to 1, not 1.5"
        );
        assert!(HostConfig::parse("[telemetry]\nendpoint = \"x\"", "p").is_err());
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = HostConfig::parse(
            "[server]\nlisten = \"127.0.0.1:9000\"\nlisen_port = 3\n",
            "x.toml",
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("lisen_port"), "{message}");
        assert!(message.starts_with("x.toml:"), "{message}");
        let err = HostConfig::parse("[egres]\nallow_http = true\n", "x.toml").unwrap_err();
        assert!(err.to_string().contains("egres"), "{err}");
    }

    #[test]
    fn the_old_plugins_section_is_still_read_and_flagged() {
        let old = "[plugins]\ndir = \"old\"\nwatch = false\n";
        let config = HostConfig::parse(old, "x.toml").unwrap();
        assert_eq!(config.connectors.dir, PathBuf::from("old"));
        assert!(!config.connectors.watch);
        assert_eq!(
            HostConfig::renamed_sections(old),
            [("plugins", "connectors")]
        );
        let new = "[connectors]\ndir = \"new\"\n";
        assert_eq!(
            HostConfig::parse(new, "x.toml").unwrap().connectors.dir,
            PathBuf::from("new")
        );
        assert!(HostConfig::renamed_sections(new).is_empty());
        // Both at once is one section twice: an error, not a silent pick.
        let err = HostConfig::parse(&format!("{old}{new}"), "x.toml").unwrap_err();
        assert!(err.to_string().contains("connectors"), "{err}");
    }

    #[test]
    fn cross_field_rules_say_what_to_fix() {
        let mut config = HostConfig::default();
        config.dispatch.lease_ms = 1_000;
        assert!(config.check().unwrap_err().contains("dispatch.lease_ms"));
        let mut config = HostConfig::default();
        config.server.admin_token = Some("short".into());
        assert!(config.check().unwrap_err().contains("server.admin_token"));
    }

    #[test]
    fn every_numeric_key_is_range_checked_by_name() {
        HostConfig::default().check_ranges().unwrap();
        for (key, low, high) in NUMERIC_RANGES {
            let (table, name) = key.split_once('.').unwrap();
            let mut out_of_range = vec![high + 1];
            if low > 0 {
                out_of_range.push(low - 1);
            }
            for value in out_of_range {
                let text = format!("[{table}]\n{name} = {value}\n");
                let message = HostConfig::parse(&text, "x.toml")
                    .unwrap()
                    .check()
                    .unwrap_err();
                assert!(message.contains(key), "{key} = {value}: {message}");
            }
            for value in [low, high] {
                let text = format!("[{table}]\n{name} = {value}\n");
                let config = HostConfig::parse(&text, "x.toml").unwrap();
                config
                    .check_ranges()
                    .unwrap_or_else(|e| panic!("{key} = {value}: {e}"));
            }
        }
        // The largest TOML integer cannot wrap anything either.
        let config =
            HostConfig::parse("[dispatch]\nlease_ms = 9223372036854775807\n", "x.toml").unwrap();
        assert_eq!(
            config.check().unwrap_err(),
            "dispatch.lease_ms must be from 1000 to 604800000, not 9223372036854775807"
        );
        let config =
            HostConfig::parse("[limits]\nwall_ms = 9223372036854775807\n", "x.toml").unwrap();
        assert!(config.check().unwrap_err().contains("limits.wall_ms"));
    }

    #[test]
    fn the_retry_storm_is_refused_in_the_host_config_too() {
        let config = HostConfig::parse(
            "[retry]\nmax_retries = 4294967295\nmultiplier = 1e300\n",
            "x.toml",
        )
        .unwrap();
        assert!(
            config
                .check()
                .unwrap_err()
                .starts_with("retry.max_retries:"),
            "{config:?}"
        );
    }

    #[test]
    fn the_future_skew_defaults_to_five_minutes_and_saturates() {
        let ingest = IngestConfig::default();
        assert_eq!(ingest.latest_accepted_ms(1_000), 301_000);
        assert_eq!(ingest.latest_accepted_ms(i64::MAX - 5), i64::MAX);
    }
}
