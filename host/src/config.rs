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

/// The whole host configuration.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostConfig {
    /// The HTTP API.
    pub server: ServerConfig,
    /// Where durable state lives.
    pub storage: StorageConfig,
    /// Where connector components are loaded from.
    pub plugins: PluginsConfig,
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
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_token: None,
            ingest_token: None,
            max_body_bytes: 1024 * 1024,
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
    /// in `data_dir`.
    pub url: Option<String>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("data"),
            url: None,
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

/// `[plugins]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Directory of `.wasm` connector components; the default is where
    /// `cargo build --release --target wasm32-wasip2` puts the workspace's.
    pub dir: PathBuf,
    /// Upgrade from files that appear or change in `dir` while serving.
    pub watch: bool,
    /// How often `dir` is looked at, and canaries judged, in milliseconds.
    pub watch_interval_ms: u64,
    /// Largest component `POST /v1/plugins` accepts, in bytes.
    pub max_upload_bytes: usize,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
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
                (HostConfig::parse(&text, &shown)?, shown)
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
        config.check().map_err(|message| ConfigError::Invalid {
            path: shown,
            message,
        })?;
        Ok(config)
    }

    /// Parses TOML text; `shown` names the source in errors.
    pub fn parse(text: &str, shown: &str) -> Result<HostConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: shown.to_string(),
            // toml's message names the key (and line/column) already.
            message: e.to_string().trim_end().to_string(),
        })
    }

    /// Cross-field rules the types cannot express.
    pub fn check(&self) -> Result<(), String> {
        self.retry.check().map_err(|e| e.to_string())?;
        if self.dispatch.lease_ms <= self.limits.wall_ms {
            return Err(format!(
                "dispatch.lease_ms ({}) must be longer than limits.wall_ms ({}), or a slow call could be delivered twice",
                self.dispatch.lease_ms, self.limits.wall_ms
            ));
        }
        if self.activations.lease_ms <= 2 * self.limits.wall_ms {
            return Err(format!(
                "activations.lease_ms ({}) must be more than twice limits.wall_ms ({}): a run renews its lease between connector calls",
                self.activations.lease_ms, self.limits.wall_ms
            ));
        }
        if self.activations.poll_ms == 0 {
            return Err("activations.poll_ms must be above 0".into());
        }
        if self.server.max_body_bytes == 0 {
            return Err("server.max_body_bytes must be above 0".into());
        }
        if let Some(url) = &self.storage.url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(format!(
                "storage.url must be a PostgreSQL connection string (postgres://user:password@host/database), not {}",
                crate::store::postgres::redacted_url(url)
            ));
        }
        if self.plugins.watch_interval_ms < 10 {
            return Err("plugins.watch_interval_ms must be at least 10".into());
        }
        if self.plugins.max_upload_bytes == 0 {
            return Err("plugins.max_upload_bytes must be above 0".into());
        }
        for (name, token) in [
            ("server.admin_token", &self.server.admin_token),
            ("server.ingest_token", &self.server.ingest_token),
        ] {
            if token.as_deref().is_some_and(|t| t.len() < 16) {
                return Err(format!("{name} must be at least 16 characters"));
            }
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
    fn the_example_config_parses_and_passes_its_checks() {
        let text = include_str!("../../prefsync.example.toml");
        let config = HostConfig::parse(text, "prefsync.example.toml").unwrap();
        config.check().unwrap();
        assert!(config.egress.allow_loopback);
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
    fn cross_field_rules_say_what_to_fix() {
        let mut config = HostConfig::default();
        config.dispatch.lease_ms = 1_000;
        assert!(config.check().unwrap_err().contains("dispatch.lease_ms"));
        let mut config = HostConfig::default();
        config.server.admin_token = Some("short".into());
        assert!(config.check().unwrap_err().contains("server.admin_token"));
    }
}
