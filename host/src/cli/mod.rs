//! The `prefsync` command line.

mod activation;
pub mod cassette; // pub for the fuzzer (fuzz/)
mod connector;
mod scaffold;

use clap::{Parser, Subcommand};

/// prefsync: consent-sync engine with sandboxed WebAssembly connectors.
#[derive(Debug, Parser)]
#[command(name = "prefsync", version, about)]
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
}

/// What to tell a user who typed a command by its old name, from the
/// arguments as given (the program name first).
pub fn renamed_command(args: &[std::ffi::OsString]) -> Option<&'static str> {
    (args.get(1).and_then(|arg| arg.to_str()) == Some("plugin"))
        .then_some("`prefsync plugin` is now `prefsync connector`; the old name works for now")
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
    }
}
