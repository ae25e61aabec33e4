//! The guest SDK and the WIT contract, embedded in the binary (by
//! `host/build.rs`, manifests made standalone) and written beside a scaffold
//! as `vendor/prefsync/`, in the repository's layout: the SDK finds the WIT
//! at the same relative path (`plugins/sdk/../../wit`) as in a checkout.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::Args;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/vendored_sdk.rs"));
}

pub use embedded::{FILES, WIT_PACKAGE};

/// Where the vendored tree goes, relative to the connector crate.
pub const DIR: &str = "vendor/prefsync";

/// The SDK crate inside the vendored tree, as the scaffold's Cargo.toml names it.
pub const SDK_PATH: &str = "vendor/prefsync/plugins/sdk";

/// The prefsync version whose SDK this binary carries.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Args)]
pub struct VendorArgs {
    /// The connector crate whose `vendor/prefsync` to (re)write; the current
    /// directory by default.
    #[arg(long, value_name = "PATH", default_value = ".")]
    dir: PathBuf,
}

/// `vendor/prefsync/README.md`: what this is, which versions, how to refresh it.
pub fn readme() -> String {
    let crates: Vec<String> = FILES
        .iter()
        .filter(|(path, _)| path.ends_with("/Cargo.toml"))
        .filter_map(|(_, manifest)| {
            let manifest: toml::Table = std::str::from_utf8(manifest).ok()?.parse().ok()?;
            Some(format!(
                "`{}`",
                manifest.get("package")?.get("name")?.as_str()?
            ))
        })
        .collect();
    let crates = crates.join(", ");
    format!(
        "# The prefsync guest SDK, vendored\n\
         \n\
         - prefsync version: {VERSION}\n\
         - WIT package: {WIT_PACKAGE}\n\
         \n\
         Written by `prefsync connector new` (or `prefsync connector vendor-sdk`) of prefsync\n\
         {VERSION}: the guest SDK (`plugins/sdk`: {crates}) and the\n\
         WIT contract it is built against (`wit/`), laid out as in the prefsync repository so\n\
         the SDK finds the contract where it expects it. The crates' manifests are standalone\n\
         (no workspace inheritance); they build as path dependencies of your connector.\n\
         \n\
         Commit this directory with your connector, and do not edit it: `prefsync connector\n\
         vendor-sdk` (in the connector's directory, or with `--dir PATH`) replaces it with the\n\
         SDK of the prefsync binary that runs it. That is how to upgrade after installing a\n\
         newer prefsync: the host keeps loading components built against any\n\
         `prefsync:connector@0.1.x`.\n"
    )
}

/// Writes the vendored tree at `root` (which becomes `…/vendor/prefsync`).
pub fn write(root: &Path) -> Result<()> {
    for (path, contents) in FILES {
        let target = root.join(path);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(&target, contents)
            .with_context(|| format!("cannot write {}", target.display()))?;
    }
    let readme_path = root.join("README.md");
    std::fs::write(&readme_path, readme())
        .with_context(|| format!("cannot write {}", readme_path.display()))
}

/// `prefsync connector vendor-sdk`: replaces a connector crate's
/// `vendor/prefsync` with this binary's SDK, whole or not at all.
pub fn refresh(args: &VendorArgs) -> Result<()> {
    let manifest = args.dir.join("Cargo.toml");
    let Ok(text) = std::fs::read_to_string(&manifest) else {
        bail!(
            "no Cargo.toml in {}: run in a connector crate, or pass --dir PATH",
            args.dir.display()
        );
    };
    let vendor = args.dir.join("vendor");
    std::fs::create_dir_all(&vendor)
        .with_context(|| format!("cannot create {}", vendor.display()))?;
    let target = args.dir.join(DIR);
    let id = std::process::id();
    let staging = vendor.join(format!(".prefsync-new-{id}"));
    let old = vendor.join(format!(".prefsync-old-{id}"));
    if let Err(error) = write(&staging) {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(error);
    }
    let had_one = target.exists();
    if had_one {
        std::fs::rename(&target, &old)
            .with_context(|| format!("cannot move {} aside", target.display()))?;
    }
    if let Err(error) = std::fs::rename(&staging, &target) {
        if had_one {
            let _ = std::fs::rename(&old, &target);
        }
        let _ = std::fs::remove_dir_all(&staging);
        return Err(error).with_context(|| format!("cannot write {}", target.display()));
    }
    if had_one {
        let _ = std::fs::remove_dir_all(&old);
    }
    println!(
        "{} the guest SDK of prefsync {VERSION} (WIT {WIT_PACKAGE}) into {}",
        if had_one { "replaced" } else { "vendored" },
        target.display()
    );
    if !text.contains(SDK_PATH) {
        println!(
            "note: {} does not depend on it; to build against it, use\n  prefsync-sdk = {{ path = \"{SDK_PATH}\" }}",
            manifest.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// Every file of the trees, as build.rs walks them.
    fn walk(repo: &Path, rel: &str, files: &mut Vec<String>) {
        for entry in std::fs::read_dir(repo.join(rel)).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            if name.starts_with('.')
                || name.ends_with('~')
                || name == "target"
                || name == "Cargo.lock"
            {
                continue;
            }
            let child = format!("{rel}/{name}");
            if entry.file_type().unwrap().is_dir() {
                walk(repo, &child, files);
            } else {
                files.push(child);
            }
        }
    }

    #[test]
    fn every_file_of_the_sdk_and_the_wit_is_embedded_as_it_is() {
        let repo = repo();
        let mut on_disk = Vec::new();
        walk(&repo, "plugins/sdk", &mut on_disk);
        walk(&repo, "wit", &mut on_disk);
        on_disk.sort();
        let embedded: Vec<&str> = FILES.iter().map(|(path, _)| *path).collect();
        assert_eq!(embedded, on_disk);
        for required in [
            "plugins/sdk/Cargo.toml",
            "plugins/sdk/src/lib.rs",
            "plugins/sdk/src/__wit.rs",
            "plugins/sdk/inbound/Cargo.toml",
            "plugins/sdk/inbound/src/lib.rs",
            "plugins/sdk/activation/Cargo.toml",
            "plugins/sdk/activation/src/lib.rs",
            "plugins/sdk/schema/Cargo.toml",
            "plugins/sdk/schema/src/lib.rs",
            "wit/connector.wit",
        ] {
            assert!(embedded.contains(&required), "{required} not embedded");
        }
        for (path, contents) in FILES {
            if !path.ends_with("Cargo.toml") {
                assert_eq!(
                    *contents,
                    std::fs::read(repo.join(path)).unwrap(),
                    "{path} differs"
                );
            }
        }
        let wit = std::fs::read_to_string(repo.join("wit/connector.wit")).unwrap();
        assert!(
            wit.contains(&format!("package {WIT_PACKAGE};")),
            "{WIT_PACKAGE}"
        );
    }

    #[test]
    fn vendored_manifests_are_standalone() {
        let root: toml::Table = std::fs::read_to_string(repo().join("Cargo.toml"))
            .unwrap()
            .parse()
            .unwrap();
        let package = root["workspace"]["package"].as_table().unwrap();
        let manifests: Vec<_> = FILES
            .iter()
            .filter(|(path, _)| path.ends_with("Cargo.toml"))
            .collect();
        assert!(manifests.len() >= 4, "{manifests:?}");
        let crates: Vec<&str> = manifests
            .iter()
            .map(|(path, _)| path.trim_end_matches("/Cargo.toml"))
            .collect();
        for (path, contents) in manifests {
            let text = std::str::from_utf8(contents).unwrap();
            assert!(!text.contains("workspace = true"), "{path}:\n{text}");
            assert!(!text.contains(".workspace"), "{path}:\n{text}");
            let manifest: toml::Table = text.parse().unwrap();
            for key in ["edition", "rust-version", "license", "version"] {
                assert_eq!(manifest["package"][key], package[key], "{path}: {key}");
            }
            // Every path dependency is another vendored crate.
            let dir = path.trim_end_matches("/Cargo.toml");
            let mut tables = vec![manifest.get("dependencies")];
            if let Some(targets) = manifest.get("target").and_then(|t| t.as_table()) {
                tables.extend(targets.values().map(|t| t.get("dependencies")));
            }
            for deps in tables.into_iter().flatten() {
                for (name, spec) in deps.as_table().unwrap() {
                    if let Some(rel) = spec.get("path").and_then(|p| p.as_str()) {
                        let target = Path::new(dir).join(rel);
                        let target = normalise(&target);
                        assert!(
                            crates.contains(&target.as_str()),
                            "{path}: {name} at {rel} ({target}) is not vendored"
                        );
                    }
                }
            }
        }
        let sdk = FILES
            .iter()
            .find(|(path, _)| *path == "plugins/sdk/Cargo.toml")
            .unwrap();
        let sdk: toml::Table = std::str::from_utf8(sdk.1).unwrap().parse().unwrap();
        assert_eq!(
            sdk["target"]["cfg(not(target_arch = \"wasm32\"))"]["dependencies"]
                ["prefsync-sdk-schema"]["path"]
                .as_str(),
            Some("schema")
        );
        assert!(sdk["dependencies"]["serde"]["features"].is_array());
    }

    fn normalise(path: &Path) -> String {
        let mut parts: Vec<String> = Vec::new();
        for part in path.components() {
            match part {
                std::path::Component::ParentDir => {
                    parts.pop();
                }
                std::path::Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
                _ => {}
            }
        }
        parts.join("/")
    }

    #[test]
    fn write_lays_out_the_repository_and_refresh_replaces_it() {
        let crate_dir = tempfile::tempdir().unwrap();
        std::fs::write(
            crate_dir.path().join("Cargo.toml"),
            format!("[dependencies]\nprefsync-sdk = {{ path = \"{SDK_PATH}\" }}\n"),
        )
        .unwrap();
        let args = VendorArgs {
            dir: crate_dir.path().to_path_buf(),
        };
        refresh(&args).unwrap();
        let root = crate_dir.path().join(DIR);
        for file in [
            "README.md",
            "plugins/sdk/Cargo.toml",
            "plugins/sdk/src/__wit.rs",
            "plugins/sdk/inbound/src/lib.rs",
            "wit/connector.wit",
        ] {
            assert!(root.join(file).is_file(), "{file}");
        }
        // The WIT is where the SDK's `generate!` looks for it.
        assert!(root.join("plugins/sdk").join("../../wit").is_dir());
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        assert!(readme.contains(&format!("prefsync version: {VERSION}")));
        assert!(readme.contains(&format!("WIT package: {WIT_PACKAGE}")));
        assert!(
            readme.contains("`prefsync-sdk`, `prefsync-sdk-"),
            "{readme}"
        );
        // A stray file of an older SDK goes with it.
        std::fs::write(root.join("plugins/sdk/src/gone.rs"), "").unwrap();
        refresh(&args).unwrap();
        assert!(!root.join("plugins/sdk/src/gone.rs").exists());
        assert!(root.join("plugins/sdk/src/lib.rs").is_file());
        let leftovers: Vec<_> = std::fs::read_dir(crate_dir.path().join("vendor"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["prefsync"]);

        let error = refresh(&VendorArgs {
            dir: crate_dir.path().join("nowhere"),
        })
        .unwrap_err();
        assert!(error.to_string().contains("no Cargo.toml"), "{error}");
    }
}
