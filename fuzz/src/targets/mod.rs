//! The fuzz targets: each takes raw bytes, runs one piece of prefsync that
//! reads untrusted input, checks what it can cheaply check, and names the
//! outcome's class (its shape: which error, which kind of success).

pub mod activation;
pub mod cassette;
pub mod events;
pub mod integration;
pub mod selligent;

/// `Ok(outcome classes, one per line)`, or `Err(what property broke)`. A
/// panic is caught by the engine.
pub type Verdict = Result<String, String>;

/// One fuzz target.
pub struct Target {
    /// Also its corpus and findings directory name.
    pub name: &'static str,
    /// One line for `--help` and the report.
    pub about: &'static str,
    pub run: fn(&[u8]) -> Verdict,
    /// Tokens the mutator inserts; quoted ones are also keys and strings
    /// for structure-aware mutations.
    pub dictionary: &'static [&'static str],
    /// Whether inputs are JSON (or NDJSON), for structure-aware mutations.
    pub json: bool,
}

/// Every target, in report order.
pub fn all() -> Vec<Target> {
    vec![
        events::TARGET,
        integration::TARGET,
        activation::TARGET,
        cassette::TARGET,
        selligent::TARGET,
    ]
}

/// The target called `name`.
pub fn by_name(name: &str) -> Option<Target> {
    all().into_iter().find(|t| t.name == name)
}

/// An error's class: its kind and its message's shape — at most 14 of its
/// words, up to the first that still carries input after normalising (a
/// value with a stray quote in it), so that classes stay few.
pub fn class(kind: &str, message: &str) -> String {
    let shape = crate::engine::normalise(message);
    let words: Vec<&str> = shape
        .split_whitespace()
        .take_while(|w| {
            let plain = w.len() <= 40
                && w.chars().any(|c| c.is_ascii_alphabetic() || c == '#')
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "#.,:;()[]_-/=".contains(c));
            plain
                || w.trim_end_matches([',', ';', ':', ')']) == "`…`"
                || w.trim_end_matches([',', ';', ':', ')']) == "\"…\""
        })
        .take(14)
        .collect();
    format!("{kind}:{}", words.join(" "))
}
