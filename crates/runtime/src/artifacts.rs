//! On-disk cache of precompiled components, so a restart loads connectors in
//! well under a millisecond instead of compiling them again.
//!
//! An artifact is keyed by the component's SHA-256 and the engine's
//! compatibility hash (wasmtime version, target, compiler settings); an entry
//! for another engine is never found, so it is never deserialized.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Hex SHA-256 of a component's bytes: its identity in the cache, the
/// registry and the audit.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Where precompiled artifacts live; `None` compiles every time.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: Option<PathBuf>,
    engine_key: String,
}

/// How a component was obtained, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Compiled,
    Cached,
}

impl ArtifactCache {
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        ArtifactCache {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    fn path_for(&self, dir: &Path, hash: &str) -> PathBuf {
        dir.join(format!("{hash}-{}.cwasm", self.engine_key))
    }

    /// The component for `bytes`, from the cache when this engine already
    /// compiled it, otherwise compiled now and stored.
    pub fn load(&self, engine: &Engine, bytes: &[u8], hash: &str) -> Result<(Component, Source)> {
        let Some(dir) = &self.dir else {
            return Ok((Component::new(engine, bytes)?, Source::Compiled));
        };
        let path = self.path_for(dir, hash);
        if path.exists() {
            // SAFETY: the file name carries this engine's compatibility key
            // and only this cache writes such files (atomically, below), so
            // the artifact was produced by a compatible engine from `bytes`.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, Source::Cached)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding unreadable precompiled artifact");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let artifact = engine.precompile_component(bytes)?;
        // The cache only saves time: failing to write it is not failing to load.
        if let Err(error) = store_atomically(dir, &path, &artifact) {
            tracing::warn!(path = %path.display(), error = %format!("{error:#}"), "could not cache a precompiled artifact");
        }
        // SAFETY: produced just above by this engine.
        let component = unsafe { Component::deserialize(engine, &artifact)? };
        Ok((component, Source::Compiled))
    }
}

/// Writes `artifact` to a file of its own, then renames it into place, so a
/// reader never sees half a file. Loads of one component may run at once
/// (in this process or another): each writes its own temporary file.
fn store_atomically(dir: &Path, path: &Path, artifact: &[u8]) -> Result<()> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating artifact cache {}", dir.display()))?;
    let tmp = path.with_extension(format!(
        "tmp{}-{}",
        std::process::id(),
        WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::write(&tmp, artifact).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| {
        let _ = std::fs::remove_file(&tmp);
        format!("renaming {}", tmp.display())
    })
}
