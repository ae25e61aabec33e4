//! Config as code: a directory of integration files, loaded at start-up.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use serde_json::{Value as Json, json};

use super::{ConnectorLookup, checked};
use crate::store::Store;

/// Creates or updates the integrations of `dir`: every `*.json` file holds
/// one integration in Didomi's integration format; its `id` defaults to the
/// file name. Any invalid file stops the start-up with the file and the
/// problems named, so a typo never runs half-configured.
pub async fn load_dir(
    store: &dyn Store,
    connectors: &dyn ConnectorLookup,
    dir: &Path,
) -> anyhow::Result<usize> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| anyhow!("reading integrations directory {}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    for path in &paths {
        let body = std::fs::read(path).map_err(|e| anyhow!("reading {}: {e}", path.display()))?;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let mut record = checked(connectors, None, &body)
            .await
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let id_given = serde_json::from_slice::<Json>(&body)
            .ok()
            .is_some_and(|v| v.get("id").is_some_and(|id| !id.is_null()));
        if !id_given {
            crate::ids::check_id(&stem)
                .map_err(|e| anyhow!("{}: id (from the file name) {e}", path.display()))?;
            record.id = stem;
            record.config["id"] = json!(record.id);
        }
        store.put_integration(&record).await?;
        tracing::info!(id = %record.id, file = %path.display(), "integration loaded from file");
    }
    Ok(paths.len())
}
