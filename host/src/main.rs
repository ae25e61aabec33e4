use clap::Parser;

use prefsync::config::LogFormat;

/// Tasks allocate on one runtime thread and free on another (a request's
/// buffers, a batch's records); mimalloc's per-thread free lists take that
/// with less CPU than glibc's arenas (measured in BENCHMARKS.md, serve).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(note) = prefsync::cli::renamed_command(&args) {
        eprintln!("note: {note}");
    }
    let cli = prefsync::cli::Cli::parse_from(args);
    let (config, default_level) = cli.log_defaults();
    // `serve` traces when `[telemetry]` says so; a config that does not load
    // is reported by the command's own load, just after.
    let traces = match cli.traces_config() {
        Some(config) => match prefsync::telemetry::provider(&config.telemetry, &config.egress) {
            Ok(traces) => traces,
            Err(e) => {
                eprintln!("error: {}", prefsync::cli::error_text(&e));
                return std::process::ExitCode::FAILURE;
            }
        },
        None => None,
    };
    match LogFormat::before_load(config) {
        Ok(format) => prefsync::logging::init(format, default_level, traces),
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
