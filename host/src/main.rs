use clap::Parser;

use prefsync::config::LogFormat;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(note) = prefsync::cli::renamed_command(&args) {
        eprintln!("note: {note}");
    }
    let cli = prefsync::cli::Cli::parse_from(args);
    let (config, default_level) = cli.log_defaults();
    match LogFormat::before_load(config) {
        Ok(format) => prefsync::logging::init(format, default_level),
        Err(why) => {
            eprintln!("error: {why}");
            return std::process::ExitCode::FAILURE;
        }
    }
    match prefsync::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", prefsync::cli::error_text(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
