//! The connectors this host has loaded, by type id.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use anyhow::{Context as _, Result};

use crate::runtime::{Destination, Runtime};

/// Loaded connectors, one per type id.
#[derive(Default)]
pub struct Registry {
    connectors: RwLock<BTreeMap<String, Arc<dyn Destination>>>,
}

impl Registry {
    /// Loads every `.wasm` file of `dir`. A file that is not a connector is
    /// logged and skipped, so one bad file does not keep the host down; two
    /// files of one type id keep the higher version.
    pub async fn load_dir(runtime: &Runtime, dir: &Path) -> Result<Registry> {
        let registry = Registry::default();
        let mut entries = tokio::fs::read_dir(dir)
            .await
            .with_context(|| format!("reading the plugin directory {}", dir.display()))?;
        let mut paths = Vec::new();
        while let Some(entry) = entries.next_entry().await? {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "wasm") {
                paths.push(path);
            }
        }
        paths.sort();
        for path in paths {
            match runtime.load_file(&path).await {
                Ok(connector) => registry.insert(connector),
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "skipping a file that is not a usable connector")
                }
            }
        }
        Ok(registry)
    }

    /// Adds a connector; of two with one type id, the higher version stays.
    pub fn insert(&self, connector: Arc<dyn Destination>) {
        let mut map = self.connectors.write().unwrap_or_else(|e| e.into_inner());
        let type_id = connector.info().type_id.clone();
        let keep_existing = map.get(&type_id).is_some_and(|existing| {
            version_key(&existing.info().version) >= version_key(&connector.info().version)
        });
        if !keep_existing {
            map.insert(type_id, connector);
        }
    }

    pub fn get(&self, type_id: &str) -> Option<Arc<dyn Destination>> {
        let map = self.connectors.read().unwrap_or_else(|e| e.into_inner());
        map.get(type_id).cloned()
    }

    pub fn type_ids(&self) -> Vec<String> {
        let map = self.connectors.read().unwrap_or_else(|e| e.into_inner());
        map.keys().cloned().collect()
    }
}

/// `1.10.0` sorts after `1.9.0`; pre-release and build tags are ignored.
fn version_key(version: &str) -> Vec<u64> {
    version
        .split(['-', '+'])
        .next()
        .unwrap_or_default()
        .split('.')
        .map(|part| part.parse().unwrap_or(0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::version_key;

    #[test]
    fn versions_compare_numerically() {
        assert!(version_key("1.10.0") > version_key("1.9.3"));
        assert!(version_key("0.2.0-rc1") > version_key("0.1.9"));
    }
}
