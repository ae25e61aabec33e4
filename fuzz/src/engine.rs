//! The engine: a seeded, corpus-driven mutation loop that runs every input
//! under `catch_unwind`, keeps inputs that reach a new outcome class, and
//! saves what breaks (a panic, a broken oracle, a slow or hung input).
//!
//! Deterministic: the same seed, corpus and run count give the same inputs
//! (timing-based findings aside), so a report can be reproduced.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::mutate::{Mutator, Rng};
use crate::targets::Target;

/// How one target is fuzzed.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Mutated inputs to run (the corpus replay comes on top).
    pub runs: u64,
    /// Seed of the mutation generator.
    pub seed: u64,
    /// `<corpus>/<target>/*`: the starting inputs.
    pub corpus_dir: PathBuf,
    /// `<findings>/<target>/<kind>-<hash>`: where findings are written.
    pub findings_dir: PathBuf,
    /// An input that takes longer than this (twice in a row) is a finding.
    pub slow: Duration,
    /// An input still running after this is a hang: saved, and the process exits.
    pub hang: Duration,
    /// Longest input generated; mutations past it are cut.
    pub max_len: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            runs: 10_000,
            seed: 1,
            corpus_dir: PathBuf::from("fuzz/corpus"),
            findings_dir: PathBuf::from("fuzz/findings"),
            slow: Duration::from_millis(1_000),
            hang: Duration::from_secs(10),
            max_len: 64 * 1024,
        }
    }
}

/// Why an input failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The code under test panicked (message and location).
    Panic(String),
    /// The target's oracle saw a property broken (e.g. a planted secret in an error).
    Oracle(String),
    /// The input took longer than [`Settings::slow`], twice.
    Slow(Duration),
}

impl Failure {
    fn kind(&self) -> &'static str {
        match self {
            Failure::Panic(_) => "panic",
            Failure::Oracle(_) => "oracle",
            Failure::Slow(_) => "slow",
        }
    }

    /// What identifies "the same bug" across inputs: the message with its
    /// variable parts (digits, quoted text) blanked.
    pub fn signature(&self) -> String {
        match self {
            Failure::Panic(message) | Failure::Oracle(message) => {
                format!("{}:{}", self.kind(), normalise(message))
            }
            Failure::Slow(_) => "slow".to_string(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Panic(message) => write!(f, "panic: {message}"),
            Failure::Oracle(message) => write!(f, "oracle: {message}"),
            Failure::Slow(took) => write!(f, "slow: {} ms", took.as_millis()),
        }
    }
}

/// One saved finding.
#[derive(Debug, Clone)]
pub struct Finding {
    pub failure: Failure,
    /// The (minimised) input, as saved.
    pub path: PathBuf,
}

/// What a run of one target did.
#[derive(Debug, Clone)]
pub struct Report {
    pub target: &'static str,
    /// Inputs run: the corpus replay, the mutations, the minimisation tries.
    pub execs: u64,
    pub elapsed: Duration,
    /// Distinct outcome classes the target reported (its rough "paths"),
    /// with how many inputs ended in each, most frequent first.
    pub classes: Vec<(String, u64)>,
    /// Corpus size at the end (starting entries plus kept inputs).
    pub corpus: usize,
    pub findings: Vec<Finding>,
}

thread_local! {
    /// Set while a target runs, so the panic hook records instead of printing.
    static IN_TARGET: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Chains a panic hook that keeps a target's panic message (with its
/// location) for the report, and stays quiet about it.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_TARGET.with(Cell::get) {
                let payload = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(non-string panic payload)".into());
                let location = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{payload} at {location}")));
            } else {
                default(info);
            }
        }));
    });
}

/// Runs one input through a target: its outcome class, or why it failed.
/// Never panics itself.
pub fn execute(target: &Target, input: &[u8]) -> Result<String, Failure> {
    install_panic_hook();
    IN_TARGET.with(|f| f.set(true));
    let result = catch_unwind(AssertUnwindSafe(|| (target.run)(input)));
    IN_TARGET.with(|f| f.set(false));
    match result {
        Ok(Ok(class)) => Ok(class),
        Ok(Err(oracle)) => Err(Failure::Oracle(oracle)),
        Err(_) => Err(Failure::Panic(
            LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| "(panic without message)".into()),
        )),
    }
}

/// The input being run, watched for hangs by another thread.
struct Watch {
    current: Mutex<Option<(Instant, Vec<u8>)>>,
    done: std::sync::atomic::AtomicBool,
}

/// Fuzzes one target for `settings.runs` mutated inputs.
pub fn fuzz(target: &Target, settings: &Settings) -> anyhow::Result<Report> {
    let started = Instant::now();
    let findings_dir = settings.findings_dir.join(target.name);
    let mut corpus = load_dir(&settings.corpus_dir.join(target.name))?;
    // Earlier findings are regressions: run them first, and mutate them too.
    corpus.extend(load_dir(&findings_dir)?);
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    let starting = corpus.len();

    let watch = Arc::new(Watch {
        current: Mutex::new(None),
        done: std::sync::atomic::AtomicBool::new(false),
    });
    let watchdog = spawn_watchdog(target.name, &findings_dir, settings.hang, watch.clone());

    let mut rng = Rng::new(settings.seed ^ fnv(target.name.as_bytes()));
    let mutator = Mutator::new(target.dictionary, target.json, settings.max_len);
    let mut classes: HashMap<String, u64> = HashMap::new();
    let mut signatures: HashSet<String> = HashSet::new();
    let mut findings = Vec::new();
    let mut execs = 0u64;

    let total = starting as u64 + settings.runs;
    for i in 0..total {
        let input = if (i as usize) < starting {
            corpus[i as usize].clone()
        } else {
            let base = rng.below(corpus.len());
            mutator.mutate(&mut rng, &corpus[base], &corpus)
        };
        let (outcome, took) = timed(&watch, target, &input);
        execs += 1;
        let outcome = match outcome {
            Ok(class) if took > settings.slow => {
                // Once may be the machine; twice is the input.
                let (_, again) = timed(&watch, target, &input);
                execs += 1;
                if again > settings.slow {
                    Err(Failure::Slow(took.min(again)))
                } else {
                    Ok(class)
                }
            }
            other => other,
        };
        match outcome {
            Ok(outcome) => {
                // One input may report several classes, one per line.
                let mut new = false;
                for class in outcome.lines() {
                    let seen = classes.entry(class.to_string()).or_insert(0);
                    *seen += 1;
                    new |= *seen == 1;
                }
                if new && (i as usize) >= starting && corpus.len() < 4_096 {
                    corpus.push(input);
                }
            }
            Err(failure) => {
                if !signatures.insert(failure.signature()) {
                    continue;
                }
                let (small, tries) = minimise(target, &input, &failure.signature());
                execs += tries;
                let path = save(&findings_dir, &failure, &small)?;
                println!(
                    "  {} FINDING {} -> {}",
                    target.name,
                    failure,
                    path.display()
                );
                findings.push(Finding { failure, path });
            }
        }
    }
    watch.done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = watchdog.join();
    let mut classes: Vec<(String, u64)> = classes.into_iter().collect();
    classes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(Report {
        target: target.name,
        execs,
        elapsed: started.elapsed(),
        classes,
        corpus: corpus.len(),
        findings,
    })
}

fn timed(watch: &Watch, target: &Target, input: &[u8]) -> (Result<String, Failure>, Duration) {
    let start = Instant::now();
    *watch.current.lock().unwrap_or_else(|e| e.into_inner()) = Some((start, input.to_vec()));
    let outcome = execute(target, input);
    *watch.current.lock().unwrap_or_else(|e| e.into_inner()) = None;
    (outcome, start.elapsed())
}

/// Saves the input of a hang and ends the process: a hung call cannot be
/// taken back from its thread.
fn spawn_watchdog(
    name: &'static str,
    findings_dir: &Path,
    hang: Duration,
    watch: Arc<Watch>,
) -> std::thread::JoinHandle<()> {
    let findings_dir = findings_dir.to_path_buf();
    std::thread::spawn(move || {
        while !watch.done.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
            let guard = watch.current.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((start, input)) = guard.as_ref()
                && start.elapsed() > hang
            {
                let failure = Failure::Slow(start.elapsed());
                let path = save(&findings_dir, &failure, input)
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|e| format!("(not saved: {e})"));
                eprintln!(
                    "  {name} FINDING hang: an input ran over {} s -> {path}",
                    hang.as_secs()
                );
                let _ = std::io::stderr().flush();
                std::process::exit(3);
            }
        }
    })
}

/// Shrinks an input while it still fails the same way: removes chunks of
/// halving sizes, greedily (at most 2,000 tries). Returns it and the tries.
fn minimise(target: &Target, input: &[u8], signature: &str) -> (Vec<u8>, u64) {
    if signature == "slow" {
        return (input.to_vec(), 0);
    }
    let mut best = input.to_vec();
    let mut tries = 0u64;
    let mut chunk = best.len().div_ceil(2).max(1);
    while chunk >= 1 && tries < 2_000 {
        let mut at = 0;
        while at < best.len() && tries < 2_000 {
            let mut candidate = best[..at].to_vec();
            candidate.extend_from_slice(&best[(at + chunk).min(best.len())..]);
            tries += 1;
            match execute(target, &candidate) {
                Err(f) if f.signature() == signature => best = candidate,
                _ => at += chunk,
            }
        }
        if chunk == 1 {
            break;
        }
        chunk /= 2;
    }
    (best, tries)
}

/// Writes `<dir>/<kind>-<hash>` (the input) and `<…>.txt` (what failed).
fn save(dir: &Path, failure: &Failure, input: &[u8]) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let hash = hex::encode(&Sha256::digest(input)[..8]);
    let path = dir.join(format!("{}-{hash}", failure.kind()));
    std::fs::write(&path, input)?;
    std::fs::write(path.with_extension("txt"), format!("{failure}\n"))?;
    Ok(path)
}

/// Every file of a directory (but the `.txt` notes and dot files), sorted
/// by name; none when it does not exist.
pub fn load_dir(dir: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            !name.starts_with('.') && !name.ends_with(".txt")
        })
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display())))
        .collect()
}

/// Digits become `#`, text in quotes or backticks becomes `…`, and the
/// result is cut to 120 characters: an outcome's shape, not its data.
pub fn normalise(message: &str) -> String {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in message.chars() {
        match quote {
            // An escaped quote does not end the quoted text.
            Some(_) if escaped => escaped = false,
            Some(_) if c == '\\' => escaped = true,
            Some(q) if c == q => {
                quote = None;
                out.push('…');
                out.push(c);
            }
            Some(_) => {}
            None if c == '`' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c.is_ascii_digit() => {
                if !out.ends_with('#') {
                    out.push('#');
                }
            }
            None => out.push(c),
        }
        if out.chars().count() >= 120 {
            break;
        }
    }
    out
}

/// FNV-1a, to derive each target's stream from the one seed.
pub fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_hide_digits_and_quoted_text() {
        assert_eq!(
            normalise("line 12 column 3: unknown field `shedule`"),
            "line # column #: unknown field `…`"
        );
        assert_eq!(
            normalise("expected \"a\", got 1.5"),
            "expected \"…\", got #.#"
        );
    }
}
