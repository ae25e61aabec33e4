//! The committed corpus (and any committed findings, as regressions) run
//! through every target, and a short seeded fuzz of each, so that
//! `cargo test --workspace` covers the fuzzers.

use std::path::PathBuf;

use prefsync_fuzz::engine::{self, Failure, Settings, execute, load_dir};
use prefsync_fuzz::targets::{self, Target, Verdict};

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_target_has_a_corpus_that_runs_clean() {
    for target in targets::all() {
        let corpus = load_dir(&fuzz_dir().join("corpus").join(target.name)).unwrap();
        assert!(
            corpus.len() >= 4,
            "{}: a corpus of {} inputs",
            target.name,
            corpus.len()
        );
        let findings = load_dir(&fuzz_dir().join("findings").join(target.name)).unwrap();
        let mut classes = std::collections::HashSet::new();
        for (index, input) in corpus.iter().chain(&findings).enumerate() {
            match execute(&target, input) {
                Ok(class) => {
                    classes.insert(class);
                }
                Err(failure) => panic!("{} input #{index}: {failure}", target.name),
            }
        }
        // A corpus whose inputs all end the same way exercises one path.
        assert!(classes.len() >= 3, "{}: only {classes:?}", target.name);
    }
}

#[test]
fn a_short_seeded_fuzz_of_every_target_finds_nothing() {
    let findings = tempfile::tempdir().unwrap();
    let settings = Settings {
        runs: 300,
        seed: 14,
        corpus_dir: fuzz_dir().join("corpus"),
        findings_dir: findings.path().to_path_buf(),
        ..Settings::default()
    };
    for target in targets::all() {
        let report = engine::fuzz(&target, &settings).unwrap();
        assert!(
            report.execs >= 300,
            "{}: {} execs",
            target.name,
            report.execs
        );
        let found: Vec<String> = report
            .findings
            .iter()
            .map(|f| f.failure.to_string())
            .collect();
        assert!(found.is_empty(), "{}: {found:?}", target.name);
    }
}

fn bomb(input: &[u8]) -> Verdict {
    if input.windows(4).any(|w| w == b"boom") {
        let empty: Vec<u8> = Vec::new();
        // An out-of-bounds index: a real panic, not a `panic!` call.
        return Ok(format!("{}", empty[input.len()]));
    }
    if input.starts_with(b"leak") {
        return Err("planted secret shown".into());
    }
    Ok(format!("len{}", input.len().min(2)))
}

#[test]
fn panics_and_broken_oracles_are_caught_minimised_and_saved() {
    let target = Target {
        name: "bomb",
        about: "panics on `boom`",
        run: bomb,
        dictionary: &["boom", "leak"],
        json: false,
    };
    match execute(&target, b"xx boom xx") {
        Err(Failure::Panic(message)) => {
            assert!(message.contains("index out of bounds"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        execute(&target, b"leak"),
        Err(Failure::Oracle("planted secret shown".into()))
    );
    assert_eq!(execute(&target, b"ok"), Ok("len2".into()));

    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    std::fs::create_dir_all(corpus.join("bomb")).unwrap();
    std::fs::write(corpus.join("bomb").join("seed"), b"a harmless seed, b").unwrap();
    let settings = Settings {
        runs: 3_000,
        seed: 3,
        corpus_dir: corpus,
        findings_dir: dir.path().join("findings"),
        ..Settings::default()
    };
    let report = engine::fuzz(&target, &settings).unwrap();
    let kinds: Vec<&Failure> = report.findings.iter().map(|f| &f.failure).collect();
    assert!(
        kinds.iter().any(|f| matches!(f, Failure::Panic(_))),
        "{kinds:?}"
    );
    assert!(
        kinds.iter().any(|f| matches!(f, Failure::Oracle(_))),
        "{kinds:?}"
    );
    for finding in &report.findings {
        let saved = std::fs::read(&finding.path).unwrap();
        match finding.failure {
            Failure::Panic(_) => assert_eq!(saved, b"boom", "minimised"),
            _ => assert_eq!(saved, b"leak", "minimised"),
        }
        assert!(finding.path.with_extension("txt").exists());
    }
}
