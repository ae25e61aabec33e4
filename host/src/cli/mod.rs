//! The `prefsync` command line.

mod plugin;

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
    /// Work with connector components.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Plugin(command) => plugin::run(command).await,
    }
}
