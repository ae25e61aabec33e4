//! Where `prefsync connector test` and `prefsync connector inspect` keep
//! precompiled components, so that a second run on the same component loads
//! it from disk instead of compiling it again with Cranelift.
//!
//! With `--host-config FILE` the commands share the server's cache
//! (`[storage] data_dir/artifacts`); otherwise a per-user cache, found by
//! [`user_cache_dir`]. `--no-cache` uses neither. The cache only saves time:
//! a directory that cannot be created is reported once on stderr and the
//! command runs without it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The per-user cache directory, from the environment as
/// [`user_cache_dir_from`] reads it.
pub fn user_cache_dir() -> Option<PathBuf> {
    user_cache_dir_from(
        std::env::var_os("PREFSYNC_CACHE_DIR"),
        std::env::var_os("XDG_CACHE_HOME"),
        std::env::var_os("HOME"),
    )
}

/// The per-user cache directory, given the values of `PREFSYNC_CACHE_DIR`,
/// `XDG_CACHE_HOME` and `HOME`, first found wins:
///
/// 1. `$PREFSYNC_CACHE_DIR`, as given;
/// 2. `$XDG_CACHE_HOME/prefsync/artifacts` (ignored unless absolute, as the
///    XDG base directory specification says);
/// 3. `$HOME/.cache/prefsync/artifacts`.
///
/// An empty value counts as unset. `None` when none applies: no cache.
pub fn user_cache_dir_from(
    prefsync_cache_dir: Option<OsString>,
    xdg_cache_home: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    let set = |value: Option<OsString>| value.filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set(prefsync_cache_dir) {
        return Some(dir);
    }
    if let Some(xdg) = set(xdg_cache_home).filter(|dir| dir.is_absolute()) {
        return Some(xdg.join("prefsync").join("artifacts"));
    }
    set(home).map(|home| home.join(".cache").join("prefsync").join("artifacts"))
}

/// `dir`, created (mode 0700 on unix: only its owner may put artifacts
/// there, since they are loaded as native code) if missing; `None`, after
/// one line on stderr, when it cannot be created, or when it exists but
/// others may write in it (a shared `/tmp` directory, say): an artifact
/// planted there would run as this user's code.
pub fn prepare(dir: PathBuf) -> Option<PathBuf> {
    if let Err(error) = create_private_dir(&dir) {
        eprintln!(
            "warning: not caching compiled components: cannot create {}: {error}",
            dir.display()
        );
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&dir).map(|m| m.permissions().mode());
        if let Ok(mode) = mode
            && mode & 0o022 != 0
        {
            eprintln!(
                "warning: not caching compiled components: others may write in {} (mode {:o}); make it private (chmod 700) or choose another PREFSYNC_CACHE_DIR",
                dir.display(),
                mode & 0o777
            );
            return None;
        }
    }
    Some(dir)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(prefsync: Option<&str>, xdg: Option<&str>, home: Option<&str>) -> Option<PathBuf> {
        user_cache_dir_from(
            prefsync.map(OsString::from),
            xdg.map(OsString::from),
            home.map(OsString::from),
        )
    }

    #[test]
    fn prefsync_cache_dir_wins_then_xdg_then_home() {
        let all = dir(Some("/p"), Some("/xdg"), Some("/home/ann"));
        assert_eq!(all, Some(PathBuf::from("/p")));
        let no_prefsync = dir(None, Some("/xdg"), Some("/home/ann"));
        assert_eq!(no_prefsync, Some(PathBuf::from("/xdg/prefsync/artifacts")));
        let home_only = dir(None, None, Some("/home/ann"));
        assert_eq!(
            home_only,
            Some(PathBuf::from("/home/ann/.cache/prefsync/artifacts"))
        );
        assert_eq!(dir(None, None, None), None);
    }

    #[test]
    fn empty_values_count_as_unset_and_a_relative_xdg_is_ignored() {
        assert_eq!(
            dir(Some(""), Some(""), Some("/home/ann")),
            Some(PathBuf::from("/home/ann/.cache/prefsync/artifacts"))
        );
        assert_eq!(
            dir(None, Some("relative/cache"), Some("/home/ann")),
            Some(PathBuf::from("/home/ann/.cache/prefsync/artifacts"))
        );
        assert_eq!(dir(Some(""), Some(""), Some("")), None);
        // PREFSYNC_CACHE_DIR is taken as given, relative or not.
        assert_eq!(dir(Some("cache"), None, None), Some(PathBuf::from("cache")));
    }

    #[cfg(unix)]
    #[test]
    fn a_missing_directory_is_created_private_and_an_impossible_one_is_no_cache() {
        use std::os::unix::fs::PermissionsExt as _;
        let root = tempfile::tempdir().unwrap();
        let cache = root.path().join("a/b/artifacts");
        assert_eq!(prepare(cache.clone()), Some(cache.clone()));
        let mode = std::fs::metadata(&cache).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        // Existing: kept as is.
        assert_eq!(prepare(cache.clone()), Some(cache));

        // Writable by others: refused, so no planted artifact is ever loaded.
        let shared = root.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(prepare(shared), None);

        let file = root.path().join("a-file");
        std::fs::write(&file, b"").unwrap();
        assert_eq!(prepare(file.join("artifacts")), None);
    }
}
