//! What an activation's model may read and reach. File sources (CSV,
//! SQLite) only read files under `[activations] source_dir`, resolved with
//! every symlink and `..` followed, and never the store's own data
//! directory; PostgreSQL sources reach only what `[egress]` allows. Checked
//! when an activation is stored and again when a run opens its source.

use std::fs::File;
use std::path::{Component, Path, PathBuf};

use crate::config::HostConfig;
use crate::egress::EgressOptions;

/// The operator's rules for sources (from the host config).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceAccess {
    /// `[activations] source_dir`: the only directory file sources read;
    /// none: file sources are disabled.
    pub source_dir: Option<PathBuf>,
    /// `[storage] data_dir`: the store's database and artifacts, never a source.
    pub data_dir: PathBuf,
    /// `[egress]`: what a PostgreSQL source may connect to.
    pub egress: EgressOptions,
}

/// Why a file may not be a source. The text names the path as the
/// activation gave it and what to change, never anything read from a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(
        "file sources are disabled on this host; set `source_dir` under `[activations]` in the host config to the directory CSV and SQLite models may be read from"
    )]
    Disabled,
    #[error("`{path}` is outside the source directory ({dir}); a file source must be in it")]
    Outside { path: String, dir: String },
    #[error("`{path}` is in the store's data directory, which is never a source")]
    DataDir { path: String },
    #[error("`{path}` climbs with `..` through a directory that does not exist")]
    Climbs { path: String },
    #[error("`{path}` cannot be resolved ({reason})")]
    Unresolvable { path: String, reason: String },
    #[error("the source directory {dir} cannot be resolved ({reason})")]
    SourceDir { dir: String, reason: String },
    #[error("`{path}` is not a regular file")]
    NotAFile { path: String },
    #[error("`{path}` changed while it was opened; it was not read")]
    Swapped { path: String },
}

impl SourceAccess {
    pub fn from_config(config: &HostConfig) -> Self {
        SourceAccess {
            source_dir: config.activations.source_dir.clone(),
            data_dir: config.storage.data_dir.clone(),
            egress: config.egress.clone(),
        }
    }

    /// The canonical path a file source reads, if it may read it. A file
    /// that does not exist yet passes when `must_exist` is false and the
    /// place it would be created is allowed (a model exported later).
    pub fn confine(&self, requested: &Path, must_exist: bool) -> Result<PathBuf, Refused> {
        let shown = requested.display().to_string();
        let dir = self.source_dir.as_deref().ok_or(Refused::Disabled)?;
        let canonical_dir = dir.canonicalize().map_err(|e| Refused::SourceDir {
            dir: dir.display().to_string(),
            reason: e.kind().to_string(),
        })?;
        let joined = dir.join(requested);
        let canonical = if must_exist {
            joined.canonicalize().map_err(|e| Refused::Unresolvable {
                path: shown.clone(),
                reason: e.kind().to_string(),
            })?
        } else {
            canonical_lenient(&joined).map_err(|e| match e {
                Lenient::Climbs => Refused::Climbs {
                    path: shown.clone(),
                },
                Lenient::Io(kind) => Refused::Unresolvable {
                    path: shown.clone(),
                    reason: kind.to_string(),
                },
            })?
        };
        let data_dir = canonical_lenient(&self.data_dir).ok();
        judge(&canonical, &canonical_dir, data_dir.as_deref()).map_err(
            |verdict| match verdict {
                Verdict::Outside => Refused::Outside {
                    path: shown,
                    dir: dir.display().to_string(),
                },
                Verdict::DataDir => Refused::DataDir { path: shown },
            },
        )?;
        Ok(canonical)
    }

    /// Opens a file source for reading: confined, a regular file, and still
    /// the file that was checked once open (a symlink swapped in between
    /// check and open is caught), and not the store's database under
    /// another name (a hard link).
    pub fn open(&self, requested: &Path) -> Result<(File, PathBuf), Refused> {
        let shown = requested.display().to_string();
        let canonical = self.confine(requested, true)?;
        // Before opening: opening a FIFO or a device could block or never end.
        if !std::fs::metadata(&canonical).is_ok_and(|m| m.is_file()) {
            return Err(Refused::NotAFile { path: shown });
        }
        let file = File::open(&canonical).map_err(|e| Refused::Unresolvable {
            path: shown.clone(),
            reason: e.kind().to_string(),
        })?;
        let metadata = file.metadata().map_err(|e| Refused::Unresolvable {
            path: shown.clone(),
            reason: e.kind().to_string(),
        })?;
        if !metadata.is_file() {
            return Err(Refused::NotAFile { path: shown });
        }
        // What was opened, whatever the path says now.
        if let Some(opened) = opened_path(&file) {
            let again = self.confine(&opened, true)?;
            if again != canonical {
                return Err(Refused::Swapped { path: shown });
            }
        } else if !same_file(&metadata, &canonical) {
            return Err(Refused::Swapped { path: shown });
        }
        if self.is_store_file(&metadata) {
            return Err(Refused::DataDir { path: shown });
        }
        Ok((file, canonical))
    }

    /// Whether `metadata` is one of the store's own files (its SQLite
    /// database, journal, WAL or shared memory), by device and inode.
    fn is_store_file(&self, metadata: &std::fs::Metadata) -> bool {
        let database = self.data_dir.join("prefsync.db");
        ["", "-wal", "-shm", "-journal"].iter().any(|suffix| {
            let mut name = database.clone().into_os_string();
            name.push(suffix);
            std::fs::metadata(PathBuf::from(name))
                .is_ok_and(|store| same_identity(metadata, &store))
        })
    }
}

/// Where a canonical path stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Outside,
    DataDir,
}

/// The decision itself, on canonical paths: inside the source directory,
/// and not inside the data directory (even when the source directory
/// holds it). Component-wise, so `/srv/models2` is not inside `/srv/models`.
pub fn judge(canonical: &Path, source_dir: &Path, data_dir: Option<&Path>) -> Result<(), Verdict> {
    if data_dir.is_some_and(|data| canonical.starts_with(data)) {
        return Err(Verdict::DataDir);
    }
    if !canonical.starts_with(source_dir) {
        return Err(Verdict::Outside);
    }
    Ok(())
}

enum Lenient {
    Climbs,
    Io(std::io::ErrorKind),
}

/// `path` canonicalised; for a path that does not exist (yet), its deepest
/// existing ancestor canonicalised plus the rest, which may not climb
/// (`..` through a directory that does not exist could later be a symlink).
fn canonical_lenient(path: &Path) -> Result<PathBuf, Lenient> {
    match path.canonicalize() {
        Ok(canonical) => return Ok(canonical),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Lenient::Io(e.kind())),
        Err(_) => {}
    }
    let mut missing = Vec::new();
    let mut existing = path;
    loop {
        let Some(parent) = existing.parent() else {
            return Err(Lenient::Io(std::io::ErrorKind::NotFound));
        };
        match existing.file_name() {
            Some(name) => missing.push(name.to_os_string()),
            None => return Err(Lenient::Climbs),
        }
        existing = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        match existing.canonicalize() {
            Ok(mut canonical) => {
                for name in missing.iter().rev() {
                    canonical.push(name);
                }
                return Ok(canonical);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Lenient::Io(e.kind())),
        }
        if existing
            .components()
            .next_back()
            .is_some_and(|c| matches!(c, Component::ParentDir))
        {
            return Err(Lenient::Climbs);
        }
    }
}

/// The path an open file really has (Linux: `/proc/self/fd`).
fn opened_path(file: &File) -> Option<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        None
    }
}

/// Whether `held`, a file opened and checked, is still what `path` names
/// (after another opener, SQLite, opened `path` by name).
pub(crate) fn same_open_file(held: &File, path: &Path) -> bool {
    held.metadata().is_ok_and(|m| same_file(&m, path))
}

/// Whether the opened file is the one `path` names now, not a symlink.
fn same_file(opened: &std::fs::Metadata, path: &Path) -> bool {
    std::fs::symlink_metadata(path)
        .is_ok_and(|now| !now.file_type().is_symlink() && same_identity(opened, &now))
}

#[cfg(unix)]
fn same_identity(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_identity(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    a.len() == b.len() && a.modified().ok() == b.modified().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decision_is_component_wise_and_the_data_dir_always_loses() {
        let models = Path::new("/srv/models");
        let data = Path::new("/srv/models/data");
        assert_eq!(
            judge(Path::new("/srv/models/users.csv"), models, None),
            Ok(())
        );
        assert_eq!(
            judge(Path::new("/srv/models/a/b/users.csv"), models, Some(data)),
            Ok(())
        );
        assert_eq!(
            judge(Path::new("/srv/models2/users.csv"), models, None),
            Err(Verdict::Outside)
        );
        assert_eq!(
            judge(Path::new("/etc/passwd"), models, None),
            Err(Verdict::Outside)
        );
        assert_eq!(
            judge(
                Path::new("/srv/models/data/prefsync.db"),
                models,
                Some(data)
            ),
            Err(Verdict::DataDir)
        );
        assert_eq!(
            judge(
                Path::new("/srv/models/data/prefsync.db-wal"),
                models,
                Some(data)
            ),
            Err(Verdict::DataDir)
        );
        assert_eq!(
            judge(Path::new("/srv/models/database.csv"), models, Some(data)),
            Ok(())
        );
    }

    struct Tree {
        _root: tempfile::TempDir,
        access: SourceAccess,
        models: PathBuf,
    }

    fn tree() -> Tree {
        let root = tempfile::tempdir().unwrap();
        let models = root.path().join("models");
        let data = models.join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(models.join("users.csv"), "email\n").unwrap();
        std::fs::write(data.join("prefsync.db"), "not really").unwrap();
        std::fs::write(root.path().join("secret.txt"), "root:x:0:0\n").unwrap();
        Tree {
            access: SourceAccess {
                source_dir: Some(models.clone()),
                data_dir: data,
                egress: EgressOptions::default(),
            },
            models,
            _root: root,
        }
    }

    #[test]
    fn files_resolve_under_the_source_dir_and_nothing_escapes() {
        let t = tree();
        let inside = t.access.confine(Path::new("users.csv"), true).unwrap();
        assert_eq!(inside, t.models.canonicalize().unwrap().join("users.csv"));
        let absolute = t.models.join("users.csv");
        assert!(t.access.confine(&absolute, true).is_ok());
        for escape in [
            "/etc/passwd",
            "../secret.txt",
            "../../../../etc/passwd",
            "/proc/self/environ",
        ] {
            let error = t.access.confine(Path::new(escape), true).unwrap_err();
            assert!(
                matches!(error, Refused::Outside { .. }),
                "{escape}: {error}"
            );
            assert!(error.to_string().contains(escape), "{error}");
        }
        for store in [
            "data/prefsync.db",
            "data/prefsync.db-wal",
            "data/../data/prefsync.db",
        ] {
            let error = t.access.confine(Path::new(store), false).unwrap_err();
            assert!(matches!(error, Refused::DataDir { .. }), "{store}: {error}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_judged_by_their_target() {
        let t = tree();
        let outside = t.models.parent().unwrap().join("secret.txt");
        std::os::unix::fs::symlink(&outside, t.models.join("link.csv")).unwrap();
        std::os::unix::fs::symlink(t.models.join("data"), t.models.join("store")).unwrap();
        std::os::unix::fs::symlink("users.csv", t.models.join("alias.csv")).unwrap();
        assert!(matches!(
            t.access.confine(Path::new("link.csv"), true),
            Err(Refused::Outside { .. })
        ));
        assert!(matches!(
            t.access.confine(Path::new("store/prefsync.db"), true),
            Err(Refused::DataDir { .. })
        ));
        assert!(t.access.confine(Path::new("alias.csv"), true).is_ok());
        // A hard link to the store's database is the database.
        std::fs::hard_link(t.models.join("data/prefsync.db"), t.models.join("copy.db")).unwrap();
        assert!(matches!(
            t.access.open(Path::new("copy.db")),
            Err(Refused::DataDir { .. })
        ));
        let (_, opened) = t.access.open(Path::new("alias.csv")).unwrap();
        assert!(opened.ends_with("users.csv"));
        // A directory (or a FIFO, a device) is never opened as a model.
        std::fs::create_dir(t.models.join("dir.csv")).unwrap();
        assert!(matches!(
            t.access.open(Path::new("dir.csv")),
            Err(Refused::NotAFile { .. })
        ));
    }

    #[test]
    fn files_not_there_yet_pass_where_they_would_be_allowed() {
        let t = tree();
        assert!(t.access.confine(Path::new("later.csv"), false).is_ok());
        assert!(
            t.access
                .confine(Path::new("exports/later.csv"), false)
                .is_ok()
        );
        assert!(matches!(
            t.access.confine(Path::new("later.csv"), true),
            Err(Refused::Unresolvable { .. })
        ));
        assert!(matches!(
            t.access
                .confine(Path::new("nowhere/../../secret.txt"), false),
            Err(Refused::Climbs { .. })
        ));
        assert!(matches!(
            t.access.confine(Path::new("../elsewhere/later.csv"), false),
            Err(Refused::Outside { .. }) | Err(Refused::Climbs { .. })
        ));
    }

    #[test]
    fn without_a_source_dir_file_sources_are_disabled() {
        let access = SourceAccess::default();
        let error = access.confine(Path::new("users.csv"), false).unwrap_err();
        assert_eq!(error, Refused::Disabled);
        assert!(error.to_string().contains("source_dir"), "{error}");
        assert!(error.to_string().contains("[activations]"), "{error}");
    }
}
