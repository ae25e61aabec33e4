//! `cargo run -p prefsync-fuzz -- <target|all> --runs N [--seed S]`: fuzzes
//! prefsync's readers of untrusted input; exits 1 when anything is found.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use prefsync_fuzz::engine::{self, Settings};
use prefsync_fuzz::targets;

/// Fuzz prefsync's parsers on stable Rust (seeded, corpus-driven mutation).
#[derive(Debug, Parser)]
#[command(name = "prefsync-fuzz")]
struct Args {
    /// A target (events, integration, activation, cassette, selligent) or `all`.
    target: String,
    /// Mutated inputs per target (after the corpus replay).
    #[arg(long, default_value_t = 10_000)]
    runs: u64,
    /// Seed of the mutations; the same seed gives the same inputs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Starting inputs, `<dir>/<target>/*`.
    #[arg(long, default_value = "fuzz/corpus")]
    corpus: PathBuf,
    /// Where findings are saved, `<dir>/<target>/<kind>-<hash>` (+ `.txt`).
    #[arg(long, default_value = "fuzz/findings")]
    findings: PathBuf,
    /// An input slower than this, twice, is a finding.
    #[arg(long, default_value_t = 1_000)]
    slow_ms: u64,
    /// An input running longer than this is a hang: saved, then exit 3.
    #[arg(long, default_value_t = 10)]
    hang_s: u64,
    /// Also list the N most frequent and (up to) N rarest outcome classes of each target.
    #[arg(long, default_value_t = 0)]
    show_classes: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let chosen = if args.target == "all" {
        targets::all()
    } else {
        match targets::by_name(&args.target) {
            Some(target) => vec![target],
            None => {
                let names: Vec<&str> = targets::all().iter().map(|t| t.name).collect();
                eprintln!(
                    "no target `{}`; choose one of: {}, or all",
                    args.target,
                    names.join(", ")
                );
                return ExitCode::from(2);
            }
        }
    };
    let settings = Settings {
        runs: args.runs,
        seed: args.seed,
        corpus_dir: args.corpus,
        findings_dir: args.findings,
        slow: Duration::from_millis(args.slow_ms),
        hang: Duration::from_secs(args.hang_s),
        ..Settings::default()
    };
    println!(
        "{:<12} {:>9} {:>8} {:>9} {:>8} {:>7} {:>8}",
        "target", "execs", "secs", "execs/s", "classes", "corpus", "findings"
    );
    let mut found = 0;
    for target in &chosen {
        let report = match engine::fuzz(target, &settings) {
            Ok(report) => report,
            Err(error) => {
                eprintln!("{}: {error:#}", target.name);
                return ExitCode::from(2);
            }
        };
        let secs = report.elapsed.as_secs_f64();
        println!(
            "{:<12} {:>9} {:>8.1} {:>9.0} {:>8} {:>7} {:>8}",
            report.target,
            report.execs,
            secs,
            report.execs as f64 / secs.max(1e-9),
            report.classes.len(),
            report.corpus,
            report.findings.len()
        );
        let shown = args.show_classes.min(report.classes.len());
        let rare_from = report.classes.len() - shown.min(report.classes.len() - shown);
        for (class, count) in report.classes[..shown]
            .iter()
            .chain(&report.classes[rare_from..])
        {
            println!("    {count:>9}  {class}");
        }
        found += report.findings.len();
    }
    if found > 0 {
        println!("{found} finding(s); inputs and notes under the findings directory");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
