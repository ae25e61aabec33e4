//! `prefsync connector new`: a connector of its own, in Rust (a crate
//! outside any Cargo workspace that builds into a component with `cargo
//! build --release --target wasm32-wasip2`) or in TypeScript (`--lang ts`:
//! an npm package whose `npm run build` makes the component), with the files
//! every connector has, unit tests, an example config and record,
//! cassettes, and the author's README.
//!
//! The templates are the files under `scaffold/` (`*.tmpl`), embedded in the
//! binary; `{{name}}`-style placeholders are filled from the connector's name.
//! The guest SDK and the WIT contract are embedded too (`vendor.rs`) and
//! written beside the crate as `vendor/prefsync/`, so an author needs nothing
//! but this binary and a Rust toolchain; `--sdk PATH` or `PREFSYNC_SDK` points
//! the crate at a checkout's SDK instead (for work on the SDK itself).

mod vendor;

pub use vendor::{Lang, VendorArgs, refresh as vendor_sdk};

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::Args;

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The connector's name: lowercase letters, digits and hyphens
    /// (`acme-crm`); the crate is named after it and the type id is it with
    /// underscores (`acme_crm`).
    name: String,
    /// Where to create the crate; `./<name>` by default. Must not exist or be empty.
    #[arg(long, value_name = "PATH")]
    dir: Option<PathBuf>,
    /// The language to write the connector in.
    #[arg(long, value_enum, default_value = "rust")]
    lang: Lang,
    /// Depend on the guest SDK of a prefsync checkout (its `plugins/sdk`,
    /// or `plugins/sdk-js` with `--lang ts`) by path, instead of the copy
    /// this binary vendors into `vendor/prefsync`; `PREFSYNC_SDK` does the same.
    #[arg(long, value_name = "PATH")]
    sdk: Option<PathBuf>,
}

/// Template files of a Rust connector: (path in the new crate, contents).
const TEMPLATES: &[(&str, &str)] = &[
    ("Cargo.toml", include_str!("scaffold/Cargo.toml.tmpl")),
    (".gitignore", include_str!("scaffold/gitignore.tmpl")),
    ("README.md", include_str!("scaffold/README.md.tmpl")),
    ("src/lib.rs", include_str!("scaffold/src/lib.rs.tmpl")),
    ("src/config.rs", include_str!("scaffold/src/config.rs.tmpl")),
    ("src/api.rs", include_str!("scaffold/src/api.rs.tmpl")),
    (
        "examples/integration.json",
        include_str!("scaffold/examples/integration.json.tmpl"),
    ),
    (
        "examples/record.json",
        include_str!("scaffold/examples/record.json.tmpl"),
    ),
    (
        "cassettes/record.json",
        include_str!("scaffold/cassettes/record.json.tmpl"),
    ),
    (
        "cassettes/check.json",
        include_str!("scaffold/cassettes/check.json.tmpl"),
    ),
];

/// Template files of a TypeScript connector. The examples and cassettes are
/// the Rust scaffold's: both connectors make the same requests.
const TS_TEMPLATES: &[(&str, &str)] = &[
    (
        "package.json",
        include_str!("scaffold/ts/package.json.tmpl"),
    ),
    (
        "tsconfig.json",
        include_str!("scaffold/ts/tsconfig.json.tmpl"),
    ),
    (".gitignore", include_str!("scaffold/ts/gitignore.tmpl")),
    ("README.md", include_str!("scaffold/ts/README.md.tmpl")),
    (
        "src/index.ts",
        include_str!("scaffold/ts/src/index.ts.tmpl"),
    ),
    (
        "src/connector.ts",
        include_str!("scaffold/ts/src/connector.ts.tmpl"),
    ),
    (
        "src/config.ts",
        include_str!("scaffold/ts/src/config.ts.tmpl"),
    ),
    ("src/api.ts", include_str!("scaffold/ts/src/api.ts.tmpl")),
    (
        "test/connector.test.ts",
        include_str!("scaffold/ts/test/connector.test.ts.tmpl"),
    ),
    (
        "examples/integration.json",
        include_str!("scaffold/examples/integration.json.tmpl"),
    ),
    (
        "examples/record.json",
        include_str!("scaffold/examples/record.json.tmpl"),
    ),
    (
        "cassettes/record.json",
        include_str!("scaffold/cassettes/record.json.tmpl"),
    ),
    (
        "cassettes/check.json",
        include_str!("scaffold/cassettes/check.json.tmpl"),
    ),
];

fn templates(lang: Lang) -> &'static [(&'static str, &'static str)] {
    match lang {
        Lang::Rust => TEMPLATES,
        Lang::Ts => TS_TEMPLATES,
    }
}

/// The files every connector has in `src/`, whoever wrote it.
#[cfg(test)]
const CONNECTOR_FILES: &[&str] = &["src/lib.rs", "src/config.rs", "src/api.rs"];

/// The names a connector goes by, derived from the one the author gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// `acme-crm`: the crate.
    pub crate_name: String,
    /// `acme_crm`: the library, so the component is `acme_crm.wasm`.
    pub lib_name: String,
    /// `acme_crm`: what integrations put in `type_id`.
    pub type_id: String,
    /// `AcmeCrm`: the connector type.
    pub struct_name: String,
    /// `acmeCrm`: the TypeScript connector's constant.
    pub camel_name: String,
    /// `Acme Crm`: what `describe` shows people.
    pub display_name: String,
}

impl Names {
    pub fn parse(name: &str) -> Result<Names> {
        let valid = name.len() <= 48
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !name.ends_with('-')
            && !name.contains("--");
        if !valid {
            bail!(
                "`{name}` is not a connector name: use lowercase letters, digits and single hyphens, starting with a letter, at most 48 characters (e.g. `acme-crm`)"
            );
        }
        if name.starts_with("prefsync") {
            bail!("`{name}`: names starting with `prefsync` are taken by prefsync's own crates");
        }
        let words: Vec<String> = name
            .split('-')
            .map(|w| {
                let mut chars = w.chars();
                chars
                    .next()
                    .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            })
            .collect();
        let snake = name.replace('-', "_");
        let struct_name = words.concat();
        let mut camel_name = struct_name.clone();
        camel_name[..1].make_ascii_lowercase();
        Ok(Names {
            crate_name: name.to_string(),
            lib_name: snake.clone(),
            type_id: snake,
            struct_name,
            camel_name,
            display_name: words.join(" "),
        })
    }
}

/// Where the new crate takes the guest SDK from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sdk {
    /// The copy embedded in this binary, written to `vendor/prefsync`.
    Vendored,
    /// A checkout's `plugins/sdk` (`--sdk` or `PREFSYNC_SDK`, canonical).
    Path(PathBuf),
}

impl Sdk {
    /// The `path` of the `prefsync-sdk` dependency.
    fn path(&self) -> String {
        match self {
            Sdk::Vendored => vendor::SDK_PATH.to_string(),
            Sdk::Path(path) => path.display().to_string(),
        }
    }

    /// The `@prefsync/sdk` dependency's npm spec, as JSON string content.
    fn npm_spec(&self) -> String {
        let path = match self {
            Sdk::Vendored => vendor::SDK_JS_PATH.to_string(),
            Sdk::Path(path) => path.display().to_string(),
        };
        let spec = serde_json::to_string(&format!("file:{path}")).expect("a string");
        spec[1..spec.len() - 1].to_string()
    }

    /// The comment above that dependency.
    fn note(&self) -> &'static str {
        match self {
            Sdk::Vendored => {
                "# The guest SDK, vendored with the WIT contract under vendor/prefsync by\n\
                 # `prefsync connector new`; `prefsync connector vendor-sdk` refreshes it\n\
                 # (vendor/prefsync/README.md says which version it is). A connector that\n\
                 # reads webhooks or syncs models adds its companion from there too:\n\
                 # prefsync-sdk-inbound = { path = \"vendor/prefsync/plugins/sdk/inbound\" }"
            }
            Sdk::Path(_) => {
                "# The guest SDK of a prefsync checkout (`prefsync connector new --sdk PATH`\n\
                 # or PREFSYNC_SDK chose it), for work on the SDK itself."
            }
        }
    }
}

/// Fills a template's placeholders.
pub fn render(template: &str, names: &Names, sdk: &Sdk) -> String {
    template
        .replace("{{crate_name}}", &names.crate_name)
        .replace("{{lib_name}}", &names.lib_name)
        .replace("{{type_id}}", &names.type_id)
        .replace("{{struct_name}}", &names.struct_name)
        .replace("{{camel_name}}", &names.camel_name)
        .replace("{{sdk_spec}}", &sdk.npm_spec())
        .replace("{{display_name}}", &names.display_name)
        .replace("{{sdk_note}}", sdk.note())
        // A TOML basic string: backslashes (Windows paths) must be doubled.
        .replace("{{sdk_path}}", &sdk.path().replace('\\', "\\\\"))
}

/// Where the guest SDK comes from: `--sdk`, `PREFSYNC_SDK`, or vendored.
fn find_sdk(given: Option<&Path>, lang: Lang) -> Result<Sdk> {
    let from_env = std::env::var_os("PREFSYNC_SDK").filter(|v| !v.is_empty());
    let (candidate, how) = match (given, from_env) {
        (Some(path), _) => (path.to_path_buf(), "--sdk"),
        (None, Some(env)) => (PathBuf::from(env), "PREFSYNC_SDK"),
        (None, None) => return Ok(Sdk::Vendored),
    };
    let (manifest, marker, folder) = match lang {
        Lang::Rust => ("Cargo.toml", "name = \"prefsync-sdk\"", "plugins/sdk"),
        Lang::Ts => (
            "package.json",
            "\"name\": \"@prefsync/sdk\"",
            "plugins/sdk-js",
        ),
    };
    let is_sdk = std::fs::read_to_string(candidate.join(manifest))
        .map(|text| text.contains(marker))
        .unwrap_or(false);
    if !is_sdk {
        bail!(
            "no prefsync guest SDK at {} (from {how}); give the {folder} folder of a prefsync checkout, or neither --sdk nor PREFSYNC_SDK to vendor the SDK this binary carries",
            candidate.display()
        );
    }
    candidate
        .canonicalize()
        .map(Sdk::Path)
        .with_context(|| format!("cannot resolve {}", candidate.display()))
}

/// Creates the crate: every file or none.
pub fn create(args: &NewArgs) -> Result<()> {
    let names = Names::parse(&args.name)?;
    let sdk = find_sdk(args.sdk.as_deref(), args.lang)?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&names.crate_name));
    if dir.exists() {
        let empty = std::fs::read_dir(&dir)
            .with_context(|| format!("{} exists and cannot be read", dir.display()))?
            .next()
            .is_none();
        if !empty {
            bail!(
                "{} already exists and is not empty; choose another --dir",
                dir.display()
            );
        }
    }
    // Written beside the target, then renamed into place, so a failure
    // leaves nothing half-written.
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let staging = parent.join(format!(
        ".{}.prefsync-new-{}",
        names.crate_name,
        std::process::id()
    ));
    let written = write_all(&staging, &names, &sdk, args.lang).and_then(|()| {
        std::fs::rename(&staging, &dir)
            .with_context(|| format!("cannot move the new crate to {}", dir.display()))
    });
    if let Err(error) = written {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(error);
    }
    match &sdk {
        Sdk::Vendored => println!(
            "vendored the guest SDK of prefsync {} (WIT {}) into {}",
            vendor::VERSION,
            vendor::WIT_PACKAGE,
            dir.join(vendor::DIR).display()
        ),
        Sdk::Path(path) => println!("using the guest SDK at {}", path.display()),
    }
    let (test, build, wasm) = match args.lang {
        Lang::Rust => (
            "cargo test",
            "cargo build --release --target wasm32-wasip2",
            format!("target/wasm32-wasip2/release/{}.wasm", names.lib_name),
        ),
        Lang::Ts => (
            "npm install && npm test",
            "npm run build",
            format!("target/{}.wasm", names.lib_name),
        ),
    };
    println!(
        "created connector `{}` (type id `{}`) in {}\n\nnext:\n  cd {}\n  {test}\n  {build}\n  prefsync connector test {wasm} --config examples/integration.json --record examples/record.json --cassette cassettes",
        names.crate_name,
        names.type_id,
        dir.display(),
        dir.display(),
    );
    Ok(())
}

fn write_all(root: &Path, names: &Names, sdk: &Sdk, lang: Lang) -> Result<()> {
    for (path, template) in templates(lang) {
        let target = root.join(path);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(&target, render(template, names, sdk))
            .with_context(|| format!("cannot write {}", target.display()))?;
    }
    if *sdk == Sdk::Vendored {
        vendor::write(&root.join(vendor::DIR), lang)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_from_the_one_given() {
        let names = Names::parse("acme-crm2").unwrap();
        assert_eq!(names.lib_name, "acme_crm2");
        assert_eq!(names.type_id, "acme_crm2");
        assert_eq!(names.struct_name, "AcmeCrm2");
        assert_eq!(names.camel_name, "acmeCrm2");
        assert_eq!(names.display_name, "Acme Crm2");
        for bad in [
            "Acme",
            "1acme",
            "acme-",
            "ac--me",
            "acme_crm",
            "",
            "prefsync-x",
        ] {
            let error = Names::parse(bad).unwrap_err().to_string();
            assert!(error.contains(&format!("`{bad}`")), "{error}");
        }
    }

    #[test]
    fn every_placeholder_is_filled() {
        let names = Names::parse("acme").unwrap();
        for sdk in [Sdk::Vendored, Sdk::Path(PathBuf::from("/sdk"))] {
            for (path, template) in TEMPLATES.iter().chain(TS_TEMPLATES) {
                let text = render(template, &names, &sdk);
                assert!(!text.contains("{{"), "{path} keeps a placeholder");
            }
        }
    }

    #[test]
    fn the_manifest_depends_on_the_vendored_sdk_unless_told_otherwise() {
        let names = Names::parse("acme").unwrap();
        let cargo = TEMPLATES[0].1;
        let vendored: toml::Table = render(cargo, &names, &Sdk::Vendored).parse().unwrap();
        assert_eq!(
            vendored["dependencies"]["prefsync-sdk"]["path"].as_str(),
            Some("vendor/prefsync/plugins/sdk")
        );
        assert!(vendored["workspace"].is_table());
        let given = Sdk::Path(PathBuf::from(r"C:\sdk"));
        let checkout: toml::Table = render(cargo, &names, &given).parse().unwrap();
        assert_eq!(
            checkout["dependencies"]["prefsync-sdk"]["path"].as_str(),
            Some(r"C:\sdk")
        );
    }

    #[test]
    fn the_package_depends_on_the_vendored_typescript_sdk_unless_told_otherwise() {
        let names = Names::parse("acme").unwrap();
        let package = TS_TEMPLATES[0].1;
        let vendored: serde_json::Value =
            serde_json::from_str(&render(package, &names, &Sdk::Vendored)).unwrap();
        assert_eq!(
            vendored["devDependencies"]["@prefsync/sdk"],
            "file:vendor/prefsync/plugins/sdk-js"
        );
        assert_eq!(vendored["scripts"]["build"], "prefsync-js build");
        let given = Sdk::Path(PathBuf::from(r"C:\sdk-js"));
        let checkout: serde_json::Value =
            serde_json::from_str(&render(package, &names, &given)).unwrap();
        assert_eq!(
            checkout["devDependencies"]["@prefsync/sdk"],
            r"file:C:\sdk-js"
        );
    }

    #[test]
    fn a_new_crate_carries_the_sdk_and_the_wit() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("acme");
        let names = Names::parse("acme").unwrap();
        write_all(&dir, &names, &Sdk::Vendored, Lang::Rust).unwrap();
        let vendored = dir.join(vendor::DIR);
        assert!(vendored.join("README.md").is_file());
        assert!(vendored.join("plugins/sdk/Cargo.toml").is_file());
        assert!(vendored.join("wit/connector.wit").is_file());
        assert!(dir.join(vendor::SDK_PATH).join("Cargo.toml").is_file());
        let other = parent.path().join("other");
        write_all(
            &other,
            &names,
            &Sdk::Path(PathBuf::from("/sdk")),
            Lang::Rust,
        )
        .unwrap();
        assert!(!other.join("vendor").exists());
        let ts = parent.path().join("acme-ts");
        write_all(&ts, &names, &Sdk::Vendored, Lang::Ts).unwrap();
        assert!(ts.join("src/connector.ts").is_file());
        assert!(ts.join(vendor::SDK_JS_PATH).join("package.json").is_file());
        assert!(!ts.join(vendor::SDK_PATH).exists());
    }

    #[test]
    fn the_scaffold_and_every_shipped_connector_share_one_layout() {
        for file in CONNECTOR_FILES {
            assert!(TEMPLATES.iter().any(|(path, _)| path == file), "{file}");
        }
        let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
        // Every Rust connector shipped (the SDK aside), so a new one is held
        // to the layout without being listed here.
        let mut connectors: Vec<String> = std::fs::read_dir(&plugins)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|dir| dir.join("Cargo.toml").is_file() && !dir.ends_with("sdk"))
            .map(|dir| dir.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        connectors.sort();
        assert!(connectors.len() >= 4, "{connectors:?}");
        for connector in connectors {
            let root = plugins.join(&connector);
            for file in CONNECTOR_FILES.iter().chain(&["README.md"]) {
                assert!(
                    root.join(file).is_file(),
                    "plugins/{connector}/{file} missing"
                );
            }
            let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
            assert!(
                manifest.contains(r#"crate-type = ["cdylib", "rlib"]"#),
                "plugins/{connector}/Cargo.toml"
            );
        }
    }
}
