//! The admin console: static files embedded in the binary, served at `/ui/`
//! on the API's port (`/` redirects there).
//!
//! The files are `host/console/…` (plain HTML, CSS and ES modules, no build
//! step), embedded by [`ASSETS`]; a file not in that table is a 404 with the
//! API's JSON error body. The static files need no token: every data call
//! the console makes is a `fetch` of the `/v1` API with the admin bearer
//! token, kept in the tab's `sessionStorage`.
//!
//! Every answer of these routes, errors and redirects included, carries
//! [`SECURITY_HEADERS`]: a strict Content-Security-Policy (scripts, styles
//! and requests of this origin only, no inline script or style attribute,
//! no framing, no form posts), `X-Frame-Options: DENY`,
//! `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer` and
//! `Cache-Control: no-cache` (revalidated, so an upgraded binary's console
//! is what the next load shows).
//!
//! Developer aid: in a debug build only (`cfg(debug_assertions)`), when the
//! environment variable `PREFSYNC_CONSOLE_DIR` names a directory (e.g.
//! `host/console`), the console's files are read from there at each request
//! instead of the embedded copies: edit, reload, no rebuild. Only the names
//! of [`ASSETS`] are served (same content types, same headers); a new file
//! still needs its line in the table. Release builds ignore the variable.

use std::borrow::Cow;

use axum::Router;
use axum::extract::Path;
use axum::http::header::{CONTENT_TYPE, HeaderName};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::api::error::ApiError;

/// The Content-Security-Policy of every console answer.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                       img-src 'self' data:; connect-src 'self'; font-src 'self'; \
                       form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// The headers every console answer carries.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("content-security-policy", CSP),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-cache"),
];

/// One embedded file: its name under `host/console/`, its content type and
/// its bytes.
macro_rules! asset {
    ($name:literal) => {
        (
            $name,
            content_type($name),
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/console/", $name)),
        )
    };
}

/// The console's files: name (the path under `/ui/`), content type, bytes.
/// A new file needs its line here.
pub const ASSETS: &[(&str, &str, &[u8])] = &[
    asset!("index.html"),
    asset!("console.css"),
    asset!("console.js"),
    asset!("ui.js"),
    asset!("pages/overview.js"),
    asset!("pages/users.js"),
    asset!("pages/dead-letters.js"),
    asset!("pages/integrations.js"),
    asset!("pages/connectors.js"),
    asset!("pages/activations.js"),
];

/// The content type of a console file, by its extension.
pub const fn content_type(name: &str) -> &'static str {
    const TYPES: &[(&str, &str)] = &[
        (".html", "text/html; charset=utf-8"),
        (".js", "text/javascript; charset=utf-8"),
        (".css", "text/css; charset=utf-8"),
        (".svg", "image/svg+xml"),
        (".png", "image/png"),
        (".ico", "image/x-icon"),
        (".json", "application/json"),
        (".txt", "text/plain; charset=utf-8"),
    ];
    let mut i = 0;
    while i < TYPES.len() {
        if ends_with(name.as_bytes(), TYPES[i].0.as_bytes()) {
            return TYPES[i].1;
        }
        i += 1;
    }
    "application/octet-stream"
}

const fn ends_with(text: &[u8], suffix: &[u8]) -> bool {
    if suffix.len() > text.len() {
        return false;
    }
    let start = text.len() - suffix.len();
    let mut i = 0;
    while i < suffix.len() {
        if text[start + i] != suffix[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The console's routes (no token: the files hold no data).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(|| async { file("index.html") }))
        .route(
            "/ui/{*name}",
            get(|Path(name): Path<String>| async move { file(&name) }),
        )
        .layer(axum::middleware::map_response(secured))
}

/// Adds [`SECURITY_HEADERS`] to an answer.
async fn secured(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

/// The answer for one file of the console, or a 404 naming it.
fn file(name: &str) -> Response {
    let Some((name, content_type, bytes)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return ApiError::not_found(format!(
            "no console file `{name}`; the console starts at /ui/"
        ))
        .into_response();
    };
    let body = match from_dev_dir(name) {
        Some(Ok(read)) => Cow::Owned(read),
        Some(Err(error)) => {
            return ApiError::internal(anyhow::Error::new(error).context(format!(
                "reading console file `{name}` from PREFSYNC_CONSOLE_DIR"
            )))
            .into_response();
        }
        None => Cow::Borrowed(*bytes),
    };
    (
        StatusCode::OK,
        [(CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

/// Debug builds: the file from `PREFSYNC_CONSOLE_DIR`, when that is set.
#[cfg(debug_assertions)]
fn from_dev_dir(name: &str) -> Option<std::io::Result<Vec<u8>>> {
    let dir = std::env::var_os("PREFSYNC_CONSOLE_DIR").filter(|d| !d.is_empty())?;
    Some(std::fs::read(std::path::Path::new(&dir).join(name)))
}

/// Release builds always serve the embedded copies.
#[cfg(not(debug_assertions))]
fn from_dev_dir(_name: &str) -> Option<std::io::Result<Vec<u8>>> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_by_extension() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(
            content_type("pages/users.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("console.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("logo.svg"), "image/svg+xml");
        assert_eq!(content_type("README"), "application/octet-stream");
        assert_eq!(content_type("js"), "application/octet-stream");
    }

    #[test]
    fn every_asset_is_named_once_with_a_known_type() {
        let mut names: Vec<&str> = ASSETS.iter().map(|(n, _, _)| *n).collect();
        names.sort_unstable();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count, "an asset is listed twice");
        for (name, content_type, bytes) in ASSETS {
            assert_ne!(*content_type, "application/octet-stream", "{name}");
            assert!(!bytes.is_empty(), "{name} is empty");
            assert!(!name.contains(".."), "{name}");
        }
        assert!(names.contains(&"index.html"));
    }

    #[test]
    fn the_index_loads_only_files_of_the_table() {
        let index = std::str::from_utf8(file_bytes("index.html")).unwrap();
        for referenced in ["console.js", "console.css"] {
            assert!(index.contains(referenced), "{referenced}");
            assert!(ASSETS.iter().any(|(n, _, _)| *n == referenced));
        }
        // No inline script or style: the CSP would block it.
        assert!(!index.contains("<style"));
        assert!(!index.contains("style="));
        for script in index.split("<script").skip(1) {
            assert!(script.contains("src="), "an inline script: {script}");
        }
    }

    #[test]
    fn every_imported_module_is_embedded() {
        for (name, _, bytes) in ASSETS.iter().filter(|(n, _, _)| n.ends_with(".js")) {
            let text = std::str::from_utf8(bytes).unwrap();
            let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
            for import in imports(text) {
                let resolved = resolve(dir, import);
                assert!(
                    ASSETS.iter().any(|(n, _, _)| *n == resolved),
                    "{name} imports `{import}` ({resolved}), which is not in ASSETS"
                );
            }
        }
    }

    fn file_bytes(name: &str) -> &'static [u8] {
        ASSETS.iter().find(|(n, _, _)| *n == name).unwrap().2
    }

    /// The relative specifiers of `import … from "./x.js"` and `import("./x.js")`.
    fn imports(text: &str) -> Vec<&str> {
        let mut found = Vec::new();
        for quote in ['"', '\''] {
            for piece in text.split(quote).collect::<Vec<_>>().windows(2) {
                let (before, spec) = (piece[0].trim_end(), piece[1]);
                let from = before.ends_with(" from") || before.ends_with("import(");
                if from && (spec.starts_with("./") || spec.starts_with("../")) {
                    found.push(spec);
                }
            }
        }
        found
    }

    fn resolve(dir: &str, spec: &str) -> String {
        let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
        for piece in spec.split('/') {
            match piece {
                "." => {}
                ".." => {
                    parts.pop();
                }
                other => parts.push(other),
            }
        }
        parts.join("/")
    }
}
