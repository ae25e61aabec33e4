//! The console's static files as `prefsync serve` serves them: `/` redirects
//! to `/ui/`, every file carries the console's security headers and its
//! content type, an unknown file is the API's JSON 404, and the files need
//! no token while the API still does.

use crate::serve::{Server, TOKEN};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; font-src 'self'; form-action 'none'; frame-ancestors 'none'; \
                   base-uri 'none'";

/// A client that shows redirects instead of following them.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn assert_secured(response: &reqwest::Response, what: &str) {
    let headers = response.headers();
    let header = |name: &str| {
        headers
            .get(name)
            .unwrap_or_else(|| panic!("{what}: no {name} header in {headers:?}"))
            .to_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(header("content-security-policy"), CSP, "{what}");
    assert_eq!(header("x-frame-options"), "DENY", "{what}");
    assert_eq!(header("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(header("referrer-policy"), "no-referrer", "{what}");
    assert_eq!(header("cache-control"), "no-cache", "{what}");
}

#[tokio::test]
async fn the_console_is_served_with_its_security_headers_and_no_token() {
    let server = Server::start();
    let client = client();

    for path in ["/", "/ui"] {
        let response = client
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_redirection(), "{path}: {response:?}");
        assert_eq!(response.headers()["location"], "/ui/", "{path}");
        assert_secured(&response, path);
    }

    let files = [
        ("/ui/", "text/html; charset=utf-8", "<main id=\"page\""),
        ("/ui/console.js", "text/javascript; charset=utf-8", "import"),
        (
            "/ui/ui.js",
            "text/javascript; charset=utf-8",
            "export async function api(",
        ),
        (
            "/ui/console.css",
            "text/css; charset=utf-8",
            ":focus-visible",
        ),
        (
            "/ui/pages/overview.js",
            "text/javascript; charset=utf-8",
            "export async function render(",
        ),
        (
            "/ui/pages/users.js",
            "text/javascript; charset=utf-8",
            "export async function render(",
        ),
        (
            "/ui/pages/dead-letters.js",
            "text/javascript; charset=utf-8",
            "export async function render(",
        ),
    ];
    for (path, content_type, contains) in files {
        // No Authorization header: the files hold no data.
        let response = client
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["content-type"], content_type, "{path}");
        assert_secured(&response, path);
        let text = response.text().await.unwrap();
        assert!(text.contains(contains), "{path} lacks {contains:?}");
    }

    // The index loads only same-origin files, with no inline script or style.
    let index = client
        .get(format!("{}/ui/", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(index.contains(r#"<script type="module" src="console.js"></script>"#));
    assert!(index.contains(r#"<link rel="stylesheet" href="console.css">"#));
    assert!(!index.contains("style=") && !index.contains("<style"));
    assert!(!index.contains("http://") && !index.contains("https://"));
}

#[tokio::test]
async fn an_unknown_console_file_is_a_json_404_with_the_headers() {
    let server = Server::start();
    let client = client();
    for path in [
        "/ui/nope.js",
        "/ui/pages/nope.js",
        "/ui/../Cargo.toml",
        "/ui/%2e%2e/Cargo.toml",
        "/ui/pages/../../../etc/passwd",
        "/ui/index.html/",
    ] {
        let response = client
            .get(format!("{}{path}", server.url))
            .send()
            .await
            .unwrap();
        // `..` segments may be resolved by the client first: then the path
        // is outside /ui/ and the API's own 404 answers.
        assert_eq!(response.status(), 404, "{path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{path}"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body["error"].as_str().is_some(), "{path}: {body}");
    }
    let response = client
        .get(format!("{}/ui/nope.css", server.url))
        .send()
        .await
        .unwrap();
    assert_secured(&response, "/ui/nope.css");
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("nope.css"),
        "{body}"
    );

    // A method the console does not take: a JSON error too.
    let response = client
        .post(format!("{}/ui/", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
}

#[tokio::test]
async fn the_api_still_needs_the_token_beside_the_console() {
    let server = Server::start();
    let client = client();
    let response = client
        .get(format!("{}/v1/integrations", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = client
        .get(format!("{}/v1/integrations", server.url))
        .header("authorization", "Bearer not-the-token-at-all")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = client
        .get(format!("{}/v1/integrations", server.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The API's answers are not the console's: no console CSP on them.
    assert!(response.headers().get("content-security-policy").is_none());
    // A HEAD of the index answers too (what some health checks send).
    let response = client
        .head(format!("{}/ui/", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_secured(&response, "HEAD /ui/");
}
