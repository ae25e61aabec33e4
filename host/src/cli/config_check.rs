//! `prefsync config check [--config F]`: everything `serve` would read at
//! start, checked without starting — the host config, every connector of
//! the connector directory, every integration file (against its
//! connector's `validate` and the host's rules) and every activation file.
//! Each problem is one line, `FILE:LINE: FIELD: what is wrong`; the exit
//! code is 0 when there is none, 1 otherwise. Nothing is written: no
//! store is opened, no artifact cached.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Result, bail};

use super::json_lines::{line_of, value_lines};
use crate::activation::{ActivationConfig, ConfigError, SourceAccess, source::source_problem};
use crate::config::HostConfig;
use crate::integrations::{ConnectorLookup, FileError, IntegrationError, check_file, json_files};
use crate::runtime::{Destination, Runtime, RuntimeOptions};
use crate::serve::registry::version_order;

/// The connectors of the directory, the newest version of each type (as
/// `serve` would put in service on a fresh store).
#[derive(Default)]
struct Loaded(BTreeMap<String, Arc<dyn Destination>>);

impl ConnectorLookup for Loaded {
    fn connector(&self, type_id: &str) -> Option<Arc<dyn Destination>> {
        self.0.get(type_id).cloned()
    }

    fn type_ids(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }
}

/// What the check found: one line per problem.
#[derive(Default)]
struct Report {
    problems: Vec<String>,
}

impl Report {
    fn problem(&mut self, file: &Path, line: Option<usize>, message: impl std::fmt::Display) {
        let file = file.display();
        self.problems.push(match line {
            Some(line) => format!("{file}:{line}: {message}"),
            None => format!("{file}: {message}"),
        });
    }
}

pub async fn run(config_path: Option<PathBuf>) -> Result<()> {
    let shown = config_path
        .as_deref()
        .map_or("(defaults)".to_string(), |p| p.display().to_string());
    // Nothing else can be checked without the host config.
    let config = HostConfig::load(config_path.as_deref())?;
    let mut report = Report::default();
    let connectors = load_connectors(&config, &mut report).await?;
    let integrations = match &config.integrations.dir {
        Some(dir) => check_integrations(dir, &connectors, &mut report).await?,
        None => BTreeMap::new(),
    };
    let activations = match &config.activations.dir {
        Some(dir) => check_activations(&config, dir, &connectors, &integrations, &mut report)?,
        None => 0,
    };
    for problem in &report.problems {
        println!("{problem}");
    }
    if !report.problems.is_empty() {
        bail!(
            "{} problem(s) found; nothing was changed",
            report.problems.len()
        );
    }
    println!(
        "ok: {shown}; {} connector type(s) ({}), {} integration(s), {activations} activation(s)",
        connectors.0.len(),
        connectors.type_ids().join(", "),
        integrations.len()
    );
    Ok(())
}

/// Every `.wasm` of the connector directory, loaded as `serve` loads it.
async fn load_connectors(config: &HostConfig, report: &mut Report) -> Result<Loaded> {
    let runtime = Runtime::new(RuntimeOptions {
        limits: config.limits.clone(),
        egress: config.egress.clone(),
        // A check writes nothing: no precompiled artifacts either.
        artifact_dir: None,
        transport: None,
    })?;
    let dir = &config.connectors.dir;
    let mut loaded = Loaded::default();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("reading the connector directory {}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "wasm"))
        .collect();
    paths.sort();
    for path in paths {
        let connector: Arc<dyn Destination> = match runtime.load_file(&path).await {
            Ok(connector) => connector,
            Err(error) => {
                report.problem(&path, None, format!("not a usable connector: {error}"));
                continue;
            }
        };
        let type_id = connector.info().type_id.clone();
        let newer = loaded.0.get(&type_id).is_none_or(|known| {
            version_order(&connector.info().version, &known.info().version).is_gt()
        });
        if newer {
            loaded.0.insert(type_id, connector);
        }
    }
    Ok(loaded)
}

/// Every integration file, by the id it gets; its problems reported.
async fn check_integrations(
    dir: &Path,
    connectors: &Loaded,
    report: &mut Report,
) -> Result<BTreeMap<String, String>> {
    let mut integrations = BTreeMap::new();
    for path in json_files(dir)? {
        match check_file(connectors, &path).await {
            Ok(record) => {
                integrations.insert(record.id, record.type_id);
            }
            Err(FileError::Read { source, .. }) => {
                report.problem(&path, None, format!("cannot read: {source}"))
            }
            Err(FileError::Invalid { error, .. }) => {
                report_integration(&path, error, report);
            }
        }
    }
    Ok(integrations)
}

/// An integration's problems, each at the line of its field.
fn report_integration(path: &Path, error: IntegrationError, report: &mut Report) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines = value_lines(&text);
    match error {
        IntegrationError::Syntax(e) => report.problem(
            path,
            Some(e.line()),
            format!(
                "column {}: {}",
                e.column(),
                crate::consent::event::json_error_message(&e)
            ),
        ),
        IntegrationError::Invalid { problems, .. } => {
            for problem in problems {
                report.problem(path, Some(line_of(&lines, &problem.path)), problem);
            }
        }
        IntegrationError::Field(message) => {
            let field = message.split([':', ' ']).next().unwrap_or_default();
            report.problem(path, Some(line_of(&lines, field)), message);
        }
        IntegrationError::Id(e) => {
            report.problem(path, Some(line_of(&lines, "id")), format!("id: {e}"))
        }
        error @ (IntegrationError::ValidatorFailed { .. }
        | IntegrationError::CheckFailed { .. }) => report.problem(path, None, error),
    }
}

/// Every activation file: the document, its source and schedule, and the
/// integration it names when that is one of the files (others may be in
/// the store, which a check does not open). Returns how many there are.
fn check_activations(
    config: &HostConfig,
    dir: &Path,
    connectors: &Loaded,
    integrations: &BTreeMap<String, String>,
    report: &mut Report,
) -> Result<usize> {
    let access = SourceAccess::from_config(config);
    let paths = json_files(dir)?;
    for path in &paths {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) => {
                report.problem(path, None, format!("cannot read: {error}"));
                continue;
            }
        };
        let lines = value_lines(&text);
        let stem = path.file_stem().and_then(|s| s.to_str());
        let activation = match ActivationConfig::parse(text.as_bytes(), stem) {
            Ok(activation) => activation,
            Err(ConfigError::Syntax {
                line,
                column,
                message,
            }) => {
                report.problem(path, Some(line), format!("column {column}: {message}"));
                continue;
            }
            Err(ConfigError::Invalid(problems)) => {
                for problem in problems {
                    report.problem(path, Some(line_of(&lines, &problem.path)), problem);
                }
                continue;
            }
        };
        let mut problems: Vec<(String, String)> = source_problem(&activation.source, &access)
            .map(|p| (p.path, p.message))
            .into_iter()
            .collect();
        if let Err((field, message)) = activation.schedule() {
            problems.push((field.to_string(), message));
        }
        if let Some(type_id) = integrations.get(&activation.integration)
            && connectors
                .connector(type_id)
                .is_some_and(|c| !c.info().activations)
        {
            problems.push((
                "integration".into(),
                format!(
                    "the {type_id} connector cannot sync models (it does not export `activation`)"
                ),
            ));
        }
        for (field, message) in problems {
            report.problem(
                path,
                Some(line_of(&lines, &field)),
                format!("{field}: {message}"),
            );
        }
    }
    Ok(paths.len())
}
