//! The `prefsync` command line.

mod activation;
mod artifact_cache;
pub mod cassette; // pub for the fuzzer (fuzz/)
mod config_check;
mod connector;
mod json_lines;
mod scaffold;

use clap::{Parser, Subcommand};

/// `prefsync --version`: the release and the connector contract it loads.
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\nconnector contract (WIT): prefsync:connector@0.1.x"
);

/// prefsync: consent-sync engine with sandboxed WebAssembly connectors.
#[derive(Debug, Parser)]
#[command(name = "prefsync", version, long_version = LONG_VERSION, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API (with no config file: SQLite under ./data, connectors
    /// from target/wasm32-wasip2/release, listening on 127.0.0.1:8080).
    Serve {
        /// The host configuration (see prefsync.example.toml).
        #[arg(long)]
        config: Option<std::path::PathBuf>,
    },
    /// Work with connector components (`plugin`, the command's name before
    /// 0.2, still works).
    #[command(subcommand, alias = "plugin")]
    Connector(connector::ConnectorCommand),
    /// Run activations (scheduled reverse-ETL syncs) and read their history.
    #[command(subcommand)]
    Activation(activation::ActivationCommand),
    /// Check the configuration without serving.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check what `serve` would read at start: the host config, every
    /// connector of the connector directory, every integration file
    /// (against its connector) and every activation file. Prints each
    /// problem as `FILE:LINE: FIELD: message`; exits 0 when there is none,
    /// 1 otherwise. Writes nothing.
    Check {
        /// The host configuration (see prefsync.example.toml).
        #[arg(long)]
        config: Option<std::path::PathBuf>,
    },
}

/// What to tell a user who typed a command by its old name, from the
/// arguments as given (the program name first).
pub fn renamed_command(args: &[std::ffi::OsString]) -> Option<&'static str> {
    (args.get(1).and_then(|arg| arg.to_str()) == Some("plugin"))
        .then_some("`prefsync plugin` is now `prefsync connector`; the old name works for now")
}

impl Cli {
    /// The host config, for the commands that export traces (`serve`),
    /// when it loads; before the log is installed, so its warnings are
    /// repeated by the command's own load.
    pub fn traces_config(&self) -> Option<crate::config::HostConfig> {
        match &self.command {
            Command::Serve { config } => crate::config::HostConfig::load(config.as_deref()).ok(),
            _ => None,
        }
    }

    /// The config file the command reads (its `[log] format` applies from
    /// the first line) and the log level when `PREFSYNC_LOG` is unset:
    /// `info` for `serve` (start-up lines, one line per request), `warn`
    /// for commands that print their own output.
    pub fn log_defaults(&self) -> (Option<&std::path::Path>, &'static str) {
        match &self.command {
            Command::Serve { config } => (config.as_deref(), "info"),
            Command::Config(ConfigCommand::Check { config }) => (config.as_deref(), "warn"),
            Command::Connector(_) | Command::Activation(_) => (None, "warn"),
        }
    }
}

/// An error as the command line shows it: the message and each cause once.
/// A cause whose text the messages before it already hold (an error that
/// prints its source, then the source itself) is left out.
pub fn error_text(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => {
            let config = crate::config::HostConfig::load(config.as_deref())?;
            crate::serve::run(config).await
        }
        Command::Connector(command) => connector::run(command).await,
        Command::Activation(command) => activation::run(command).await,
        Command::Config(ConfigCommand::Check { config }) => config_check::run(config).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read {path}: {source}")]
    struct ReadError {
        path: String,
        source: std::io::Error,
    }

    #[test]
    fn an_error_says_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let error = anyhow::Error::new(ReadError {
            path: "/missing.toml".into(),
            source: io,
        })
        .context("loading the config");
        assert_eq!(
            error_text(&error),
            "loading the config: cannot read /missing.toml: No such file or directory"
        );
        let plain = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_text(&plain), "outer: inner");
    }

    #[test]
    fn the_long_version_names_every_supported_contract() {
        for line in crate::runtime::SUPPORTED_WIT {
            assert!(
                LONG_VERSION.contains(&format!("prefsync:connector@{line}.x")),
                "{line}"
            );
        }
        assert!(LONG_VERSION.starts_with(env!("CARGO_PKG_VERSION")));
    }
}
