//! `prefsync plugin …`: inspect connector components.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

use crate::runtime::{ConnectorInfo, Runtime, RuntimeOptions};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Show what a connector component says about itself (`describe`) and
    /// the WIT version it was built against.
    Inspect {
        /// The component, e.g. target/wasm32-wasip2/release/prefsync_dotdigital.wasm.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(command: PluginCommand) -> Result<()> {
    match command {
        PluginCommand::Inspect { file, json } => {
            let runtime = Runtime::new(RuntimeOptions::default())?;
            let connector = runtime
                .load_file(&file)
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let info = connector.info();
            if json {
                println!("{}", serde_json::to_string_pretty(info)?);
            } else {
                print!("{}", render(info));
            }
            Ok(())
        }
    }
}

/// The human-readable form of `describe`.
pub fn render(info: &ConnectorInfo) -> String {
    let mut abilities = Vec::new();
    if info.batching {
        abilities.push("batching");
    }
    if info.inbound_webhooks {
        abilities.push("inbound webhooks");
    }
    let schema = serde_json::to_string_pretty(&info.config_schema).unwrap_or_default();
    format!(
        "type id:          {}\n\
         version:          {}\n\
         display name:     {}\n\
         WIT:              prefsync:connector@{}\n\
         content hash:     sha256:{}\n\
         default hosts:    {}\n\
         max concurrency:  {} per integration\n\
         max batch size:   {}\n\
         capabilities:     {}\n\
         config schema:\n{}\n",
        info.type_id,
        info.version,
        info.display_name,
        info.wit_version,
        info.content_hash,
        if info.default_hosts.is_empty() {
            "(none)".into()
        } else {
            info.default_hosts.join(", ")
        },
        info.max_concurrency,
        info.max_batch_size,
        if abilities.is_empty() {
            "none".into()
        } else {
            abilities.join(", ")
        },
        schema
    )
}
