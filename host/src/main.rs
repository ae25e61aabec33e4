use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let filter = EnvFilter::try_from_env("PREFSYNC_LOG")
        .unwrap_or_else(|_| EnvFilter::new("warn"))
        // tokio-postgres logs every statement's parameters at debug level,
        // integration configs (secrets) among them: never below info.
        .add_directive("tokio_postgres=info".parse().expect("a valid directive"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(note) = prefsync::cli::renamed_command(&args) {
        eprintln!("note: {note}");
    }
    let cli = prefsync::cli::Cli::parse_from(args);
    match prefsync::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", prefsync::cli::error_text(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
