//! Embeds the guest SDKs (`plugins/sdk/**` for Rust, `plugins/sdk-js/**` for
//! TypeScript) and the WIT contract (`wit/**`),
//! so `prefsync connector new` can vendor them beside a scaffold and an
//! author needs no prefsync checkout (`src/cli/scaffold/vendor.rs`).
//!
//! Every file is embedded as it is, by its path in the repository, except
//! each `Cargo.toml`: it is made standalone, its `workspace = true` keys
//! resolved from the root manifest's `[workspace.package]` and
//! `[workspace.dependencies]` (a path dependency between SDK crates becomes a
//! path relative to the crate, which the vendored copy keeps since it mirrors
//! the repository's layout). A form this script cannot resolve fails the
//! build, naming the file, rather than vendoring a manifest that would not
//! build on its own. The directories are walked, so a file added to the SDK
//! is embedded without being listed anywhere.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The trees vendored, relative to the repository root.
const TREES: &[&str] = &["plugins/sdk", "plugins/sdk-js", "wit"];

fn main() {
    let host = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let repo = host.parent().expect("host/ sits in the repository root");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());

    let root_manifest = repo.join("Cargo.toml");
    println!("cargo:rerun-if-changed={}", root_manifest.display());
    let root: toml::Table = read(&root_manifest)
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", root_manifest.display()));
    let workspace = root
        .get("workspace")
        .and_then(|w| w.as_table())
        .expect("the root Cargo.toml has a [workspace]");

    let mut files = Vec::new();
    for tree in TREES {
        walk(repo, tree, &mut files);
    }
    files.sort();

    let mut table = String::new();
    let mut wit_package: Option<String> = None;
    for rel in &files {
        let source = repo.join(rel);
        println!("cargo:rerun-if-changed={}", source.display());
        let embedded = if rel.ends_with("/Cargo.toml") {
            let dir = rel.trim_end_matches("/Cargo.toml");
            let text = resolve_manifest(rel, &read(&source), dir, workspace);
            let target = out.join("vendored").join(rel);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::write(&target, text).unwrap();
            target
        } else {
            source.clone()
        };
        let top_level_wit = rel
            .strip_prefix("wit/")
            .is_some_and(|name| name.ends_with(".wit") && !name.contains('/'));
        if top_level_wit && let Some(package) = declared_package(&read(&source)) {
            if let Some(other) = wit_package.as_ref().filter(|p| **p != package) {
                panic!("wit/ declares two packages: {other} and {package}");
            }
            wit_package = Some(package);
        }
        let embedded = embedded.to_str().expect("UTF-8 paths").to_string();
        writeln!(table, "    ({rel:?}, include_bytes!({embedded:?})),").unwrap();
    }
    let wit_package = wit_package.expect("a `package …;` line in wit/*.wit");

    let generated = format!(
        "/// Every file of the guest SDK and the WIT contract, by its path in the\n\
         /// repository (so under `vendor/prefsync`); manifests made standalone.\n\
         pub const FILES: &[(&str, &[u8])] = &[\n{table}];\n\n\
         /// The WIT package the vendored contract declares.\n\
         pub const WIT_PACKAGE: &str = {wit_package:?};\n"
    );
    std::fs::write(out.join("vendored_sdk.rs"), generated).unwrap();
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every file under `repo/rel`, as `/`-separated paths relative to `repo`;
/// build outputs, lock files, hidden and backup files left out.
fn walk(repo: &Path, rel: &str, files: &mut Vec<String>) {
    let dir = repo.join(rel);
    // A directory's entry makes cargo rerun when a file is added or removed.
    println!("cargo:rerun-if-changed={}", dir.display());
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().expect("UTF-8 file names");
        if name.starts_with('.')
            || name.ends_with('~')
            || ["target", "node_modules", "Cargo.lock", "package-lock.json"]
                .contains(&name.as_str())
        {
            continue;
        }
        let child = format!("{rel}/{name}");
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            walk(repo, &child, files);
        } else if kind.is_file() {
            files.push(child);
        }
    }
}

/// `package prefsync:connector@0.1.2;` → `prefsync:connector@0.1.2`.
fn declared_package(wit: &str) -> Option<String> {
    wit.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("package ")?;
        Some(rest.trim_end_matches(';').trim().to_string())
    })
}

/// The manifest `text` (of the crate in `dir`, relative to the repository)
/// with every `workspace = true` resolved, line by line so comments stay.
/// Handles `key.workspace = true` and `key = { workspace = true, … }` in
/// `[package]` and in dependency tables; anything else fails the build.
fn resolve_manifest(rel: &str, text: &str, dir: &str, workspace: &toml::Table) -> String {
    let empty = toml::Table::new();
    let package = table(workspace, "package").unwrap_or(&empty);
    let dependencies = table(workspace, "dependencies").unwrap_or(&empty);
    let mut section = String::new();
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            section = trimmed
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap()
                .trim()
                .to_string();
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let Some((key, value)) = inherited(trimmed) else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let key_text = key.clone();
        let resolved = if section == "package" {
            let value = package.get(&key).unwrap_or_else(|| {
                panic!("{rel}: `{key}` inherits from [workspace.package], which lacks it")
            });
            format_value(value)
        } else if section == "dependencies"
            || section.ends_with(".dependencies")
            || section.ends_with("-dependencies")
        {
            let inherited = dependencies.get(&key).unwrap_or_else(|| {
                panic!("{rel}: `{key}` inherits from [workspace.dependencies], which lacks it")
            });
            format_value(&dependency(rel, dir, inherited, value))
        } else {
            panic!(
                "{rel}: `workspace = true` in [{section}]: host/build.rs cannot make that standalone for vendoring"
            );
        };
        writeln!(out, "{} = {resolved}", format_key(&key_text)).unwrap();
    }
    check_standalone(rel, &out, dir);
    out
}

fn table<'a>(parent: &'a toml::Table, key: &str) -> Option<&'a toml::Table> {
    parent.get(key).and_then(|v| v.as_table())
}

/// A line that inherits from the workspace: its key and the keys it adds
/// (`features`, `optional`, …). `None` for any other line.
fn inherited(line: &str) -> Option<(String, toml::Table)> {
    if line.starts_with('#') || !line.contains("workspace") {
        return None;
    }
    // Parse the line on its own: `a.workspace = true` is `{a = {workspace = true}}`.
    let parsed: toml::Table = line.parse().ok()?;
    let (key, value) = parsed.into_iter().next()?;
    let mut fields = value.as_table()?.clone();
    match fields.remove("workspace") {
        Some(toml::Value::Boolean(true)) => Some((key, fields)),
        _ => None,
    }
}

/// A workspace dependency with the member's own keys added, its path made
/// relative to the member's directory.
fn dependency(rel: &str, dir: &str, inherited: &toml::Value, own: toml::Table) -> toml::Value {
    let mut spec = match inherited {
        toml::Value::String(version) => {
            let mut t = toml::Table::new();
            t.insert("version".into(), toml::Value::String(version.clone()));
            t
        }
        toml::Value::Table(t) => t.clone(),
        other => panic!("{rel}: a workspace dependency cannot be {other}"),
    };
    for (key, value) in own {
        if let (Some(toml::Value::Array(features)), toml::Value::Array(more)) =
            (spec.get_mut("features"), &value)
            && key == "features"
        {
            for feature in more {
                if !features.contains(feature) {
                    features.push(feature.clone());
                }
            }
            continue;
        }
        spec.insert(key, value);
    }
    if let Some(toml::Value::String(path)) = spec.get("path") {
        let relative = relative_path(dir, path);
        spec.insert("path".into(), toml::Value::String(relative));
    }
    if spec.len() == 1
        && let Some(version) = spec.get("version")
    {
        return version.clone();
    }
    toml::Value::Table(spec)
}

/// The path from `from` to `to`, both relative to the repository root.
fn relative_path(from: &str, to: &str) -> String {
    let from: Vec<&str> = from
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let to: Vec<&str> = to
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<&str> = vec![".."; from.len() - common];
    parts.extend(&to[common..]);
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

/// `dir` joined with a relative `path`, normalised; `None` if it leaves the root.
fn join(dir: &str, path: &str) -> Option<String> {
    let mut parts: Vec<&str> = dir.split('/').filter(|c| !c.is_empty()).collect();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

/// Fails the build unless the resolved manifest parses, inherits nothing,
/// and every path dependency stays inside the vendored SDK.
fn check_standalone(rel: &str, text: &str, dir: &str) {
    let manifest: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("{rel}, made standalone, is not TOML: {e}\n{text}"));
    fn visit(rel: &str, dir: &str, at: &str, value: &toml::Value) {
        let toml::Value::Table(t) = value else { return };
        for (key, value) in t {
            let here = if at.is_empty() {
                key.clone()
            } else {
                format!("{at}.{key}")
            };
            if key == "workspace" && value.is_bool() {
                panic!("{rel}: `{here}` is left; host/build.rs cannot resolve that form");
            }
            if key == "path" && at.contains("dependencies") {
                let path = value.as_str().unwrap_or_default();
                let target = join(dir, path);
                let inside = target.as_deref().is_some_and(|t| {
                    TREES
                        .iter()
                        .any(|tree| t == *tree || t.starts_with(&format!("{tree}/")))
                });
                if !inside {
                    panic!(
                        "{rel}: `{here} = {path:?}` leaves the vendored trees {TREES:?}; vendor that crate too"
                    );
                }
            }
            visit(rel, dir, &here, value);
        }
    }
    visit(rel, dir, "", &toml::Value::Table(manifest));
}

fn format_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        key.to_string()
    } else {
        format_string(key)
    }
}

fn format_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => write!(out, "\\u{:04X}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML value on one line (tables inline).
fn format_value(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => format_string(s),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(items) => {
            let items: Vec<String> = items.iter().map(format_value).collect();
            format!("[{}]", items.join(", "))
        }
        toml::Value::Table(t) => {
            let items: Vec<String> = t
                .iter()
                .map(|(k, v)| format!("{} = {}", format_key(k), format_value(v)))
                .collect();
            format!("{{ {} }}", items.join(", "))
        }
    }
}
