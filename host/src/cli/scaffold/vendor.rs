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

/// The TypeScript SDK package inside the vendored tree, as the scaffold's
/// package.json names it.
pub const SDK_JS_PATH: &str = "vendor/prefsync/plugins/sdk-js";

/// The language a connector is written in: which SDK it vendors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust, with the `prefsync-sdk` crates (`plugins/sdk`).
    Rust,
    /// TypeScript, with the `@prefsync/sdk` package (`plugins/sdk-js`).
    Ts,
}

impl Lang {
    /// The vendored tree's top directory holding this language's SDK.
    fn sdk_tree(self) -> &'static str {
        match self {
            Lang::Rust => "plugins/sdk/",
            Lang::Ts => "plugins/sdk-js/",
        }
    }

    /// Whether the embedded file at `path` goes to a connector in this language.
    fn wants(self, path: &str) -> bool {
        path.starts_with("wit/") || path.starts_with(self.sdk_tree())
    }
}

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
pub fn readme(lang: Lang) -> String {
    if lang == Lang::Ts {
        return format!(
            "# The prefsync TypeScript SDK, vendored\n\
             \n\
             - prefsync version: {VERSION}\n\
             - WIT package: {WIT_PACKAGE}\n\
             \n\
             Written by `prefsync connector new --lang ts` (or `prefsync connector vendor-sdk`) of\n\
             prefsync {VERSION}: the TypeScript SDK (`plugins/sdk-js`, the npm package\n\
             `@prefsync/sdk` with its `prefsync-js` build and test tool) and the WIT contract it\n\
             is built against (`wit/`; the SDK's types in `plugins/sdk-js/generated` are jco's\n\
             from it), laid out as in the prefsync repository so the SDK finds the contract where\n\
             it expects it. Your `package.json` depends on it by path.\n\
             \n\
             Commit this directory with your connector, and do not edit it: `prefsync connector\n\
             vendor-sdk` (in the connector's directory, or with `--dir PATH`) replaces it with the\n\
             SDK of the prefsync binary that runs it; then `npm install`. The host keeps loading\n\
             components built against any `prefsync:connector@0.1.x`.\n"
        );
    }
    let crates: Vec<String> = FILES
        .iter()
        .filter(|(path, _)| lang.wants(path) && path.ends_with("/Cargo.toml"))
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

/// Writes the vendored tree for a connector in `lang` at `root` (which
/// becomes `…/vendor/prefsync`): that language's SDK and the WIT.
pub fn write(root: &Path, lang: Lang) -> Result<()> {
    for (path, contents) in FILES.iter().filter(|(path, _)| lang.wants(path)) {
        let target = root.join(path);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(&target, contents)
            .with_context(|| format!("cannot write {}", target.display()))?;
    }
    let readme_path = root.join("README.md");
    std::fs::write(&readme_path, readme(lang))
        .with_context(|| format!("cannot write {}", readme_path.display()))
}

/// `prefsync connector vendor-sdk`: replaces a connector's `vendor/prefsync`
/// with this binary's SDK for its language (a `Cargo.toml` means Rust, a
/// `package.json` TypeScript), whole or not at all.
pub fn refresh(args: &VendorArgs) -> Result<()> {
    let (lang, manifest) = if args.dir.join("Cargo.toml").is_file() {
        (Lang::Rust, args.dir.join("Cargo.toml"))
    } else if args.dir.join("package.json").is_file() {
        (Lang::Ts, args.dir.join("package.json"))
    } else {
        bail!(
            "no Cargo.toml or package.json in {}: run in a connector's directory, or pass --dir PATH",
            args.dir.display()
        );
    };
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("cannot read {}", manifest.display()))?;
    let vendor = args.dir.join("vendor");
    std::fs::create_dir_all(&vendor)
        .with_context(|| format!("cannot create {}", vendor.display()))?;
    let target = args.dir.join(DIR);
    let id = std::process::id();
    let staging = vendor.join(format!(".prefsync-new-{id}"));
    let old = vendor.join(format!(".prefsync-old-{id}"));
    if let Err(error) = write(&staging, lang) {
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
    match lang {
        Lang::Rust if !text.contains(SDK_PATH) => println!(
            "note: {} does not depend on it; to build against it, use\n  prefsync-sdk = {{ path = \"{SDK_PATH}\" }}",
            manifest.display()
        ),
        Lang::Ts if !text.contains(SDK_JS_PATH) => println!(
            "note: {} does not depend on it; to build against it, use\n  \"@prefsync/sdk\": \"file:{SDK_JS_PATH}\"",
            manifest.display()
        ),
        Lang::Ts => println!("run `npm install` to use it"),
        Lang::Rust => {}
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
                || ["target", "node_modules", "Cargo.lock", "package-lock.json"]
                    .contains(&name.as_str())
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
        walk(&repo, "plugins/sdk-js", &mut on_disk);
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
            "plugins/sdk-js/package.json",
            "plugins/sdk-js/src/index.ts",
            "plugins/sdk-js/tools/prefsync-js.mjs",
            "plugins/sdk-js/generated/destination.d.ts",
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
        // A Rust connector gets the Rust SDK only.
        assert!(!root.join("plugins/sdk-js").exists());
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

    #[test]
    fn a_typescript_connector_gets_the_typescript_sdk_and_the_wit() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("package.json"),
            format!(r#"{{"devDependencies": {{"@prefsync/sdk": "file:{SDK_JS_PATH}"}}}}"#),
        )
        .unwrap();
        refresh(&VendorArgs {
            dir: dir.path().to_path_buf(),
        })
        .unwrap();
        let root = dir.path().join(DIR);
        for file in [
            "plugins/sdk-js/package.json",
            "plugins/sdk-js/src/component.ts",
            "plugins/sdk-js/tools/prefsync-js.mjs",
            "wit/connector.wit",
        ] {
            assert!(root.join(file).is_file(), "{file}");
        }
        assert!(!root.join("plugins/sdk").exists());
        assert!(!root.join("plugins/sdk-js/node_modules").exists());
        // The tool finds the WIT at the same relative path as in the repository.
        assert!(
            root.join("plugins/sdk-js")
                .join("../../wit/connector.wit")
                .is_file()
        );
        let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
        assert!(readme.contains("@prefsync/sdk"), "{readme}");
    }
}
