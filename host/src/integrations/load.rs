//! Config as code: a directory of integration files, loaded at start-up
//! and checked by `prefsync config check`.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use serde_json::{Value as Json, json};

use super::{ConnectorLookup, IntegrationError, checked};
use crate::store::{IntegrationRecord, Store};

/// Why an integration file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {error}")]
    Invalid {
        path: String,
        error: IntegrationError,
    },
}

/// The `*.json` files of `dir`, sorted.
pub fn json_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| anyhow!("reading directory {}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    Ok(paths)
}

/// One integration file, checked as the API checks a body; its `id`
/// defaults to the file name.
pub async fn check_file(
    connectors: &dyn ConnectorLookup,
    path: &Path,
) -> Result<IntegrationRecord, FileError> {
    let shown = path.display().to_string();
    let body = std::fs::read(path).map_err(|source| FileError::Read {
        path: shown.clone(),
        source,
    })?;
    let invalid = |error| FileError::Invalid {
        path: shown.clone(),
        error,
    };
    let mut record = checked(connectors, None, None, &body)
        .await
        .map_err(invalid)?;
    let id_given = serde_json::from_slice::<Json>(&body)
        .ok()
        .is_some_and(|v| v.get("id").is_some_and(|id| !id.is_null()));
    if !id_given {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        crate::ids::check_id(&stem).map_err(|e| {
            invalid(IntegrationError::Field(format!(
                "id (from the file name) {e}"
            )))
        })?;
        record.id = stem;
        record.config["id"] = json!(record.id);
    }
    Ok(record)
}

/// Creates or updates the integrations of `dir`: every `*.json` file holds
/// one integration in Didomi's integration format. Any invalid file stops
/// the start-up with the file and the problems named, so a typo never runs
/// half-configured.
pub async fn load_dir(
    store: &dyn Store,
    connectors: &dyn ConnectorLookup,
    dir: &Path,
) -> anyhow::Result<usize> {
    let paths = json_files(dir).map_err(|e| anyhow!("the integrations directory: {e:#}"))?;
    for path in &paths {
        let record = check_file(connectors, path).await?;
        store.put_integration(&record).await?;
        tracing::info!(id = %record.id, file = %path.display(), "integration loaded from file");
    }
    Ok(paths.len())
}
