//! The admin console (`/ui/`) in a real browser: headless Chromium driven
//! over WebDriver (`prefsync_tests::webdriver`) against a real `prefsync
//! serve` on loopback and the mock Dotdigital. Signing in, the generated
//! integration form with the connector's problems beside their fields,
//! delivery counts and a user's history, replaying dead letters, uploading
//! and rolling back a connector, running an activation; and, over every
//! page, that no request leaves the server's origin, that no secret reaches
//! the DOM, and that the Content-Security-Policy blocks nothing the console
//! does.
//!
//! Each page is screenshotted (1280×800, and the overview at a phone's
//! 390 px) into `target/console-screenshots/`, or into
//! `$PREFSYNC_CONSOLE_SCREENSHOTS` (`scripts/console-screenshots.sh` writes
//! the set the README shows, `docs/console/`).
//!
//! Chromium and chromedriver come from the distribution's packages
//! (`scripts/test.sh` installs them); without them these tests fail, saying so.

use std::path::PathBuf;

use prefsync_tests::webdriver::Browser;
use serde_json::{Value, json};

use crate::serve::{Server, TOKEN};

/// The Content-Security-Policy every console answer must carry.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data:; connect-src 'self'; font-src 'self'; \
                   form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// Where screenshots go: `$PREFSYNC_CONSOLE_SCREENSHOTS` (relative to the
/// workspace root) or `target/console-screenshots/`.
fn screenshot_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    match std::env::var_os("PREFSYNC_CONSOLE_SCREENSHOTS").filter(|d| !d.is_empty()) {
        Some(dir) => root.join(dir),
        None => root.join("target").join("console-screenshots"),
    }
}

/// A browser signed in to `server`'s console, and what the tests check on
/// every page it shows.
struct Console {
    browser: Browser,
    /// `http://127.0.0.1:PORT`
    origin: String,
    /// Texts that must never reach the DOM (passwords, the admin token).
    secrets: Vec<String>,
}

impl Console {
    /// A browser on the console's sign-in page.
    async fn open(server: &Server) -> Console {
        let browser = Browser::start().await;
        browser.goto(&format!("{}/", server.url)).await;
        let console = Console {
            browser,
            origin: server.url.clone(),
            secrets: vec![TOKEN.to_string()],
        };
        // Exactly 1280×800 CSS pixels of page, whatever the window's frame.
        console.browser.set_viewport(1280, 800, false).await;
        console.wait_page("signin").await;
        // Every request the tab makes stays listed (the default buffer
        // keeps 250).
        console
            .browser
            .execute("performance.setResourceTimingBufferSize(100000)", vec![])
            .await;
        console
    }

    /// Waits for the page `name` to have drawn its data.
    async fn wait_page(&self, name: &str) {
        self.browser
            .wait_for(&format!(
                "main#page[data-ready=\"true\"][data-page=\"{name}\"]:not([data-test-left])"
            ))
            .await;
    }

    /// Goes to `route` (`#/users/ann`) within the tab (no reload), waits for
    /// page `name` to be ready, and checks the page: every request
    /// same-origin, no secret in the DOM, nothing blocked by the CSP.
    async fn visit(&self, route: &str, name: &str) {
        // Marks the page being left, so a ready mark of the same page
        // before the route changes is not taken for the new one's (on the
        // route already shown, nothing changes: no mark).
        self.browser
            .execute(
                "if (location.hash === arguments[0]) return; \
                 const main = document.getElementById('page'); \
                 if (main) main.setAttribute('data-test-left', ''); \
                 location.hash = arguments[0];",
                vec![json!(route)],
            )
            .await;
        self.wait_page(name).await;
        self.check_page(route).await;
    }

    /// Marks the page for [`Console::wait_page`] after an action that
    /// re-renders it.
    async fn leave_page(&self) {
        self.browser
            .execute(
                "document.getElementById('page').setAttribute('data-test-left', '')",
                vec![],
            )
            .await;
    }

    /// What every page must keep: requests only to the server's origin, no
    /// secret in the DOM or in any field, no CSP violation or script error.
    async fn check_page(&self, route: &str) {
        self.check_requests(route).await;
        self.check_secrets(route).await;
    }

    /// Requests only to the server's origin; no CSP violation or script error.
    async fn check_requests(&self, route: &str) {
        let urls = self
            .browser
            .execute(
                "return performance.getEntriesByType('navigation')\
                   .concat(performance.getEntriesByType('resource'))\
                   .map(e => e.name)",
                vec![],
            )
            .await;
        let urls: Vec<&str> = urls
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_str().unwrap())
            .collect();
        assert!(
            urls.iter()
                .any(|u| u.starts_with(&format!("{}/ui/", self.origin))),
            "no console request listed at {route}: {urls:?}"
        );
        for url in &urls {
            let same = url.starts_with(&format!("{}/", self.origin))
                || url.starts_with(&format!("blob:{}/", self.origin))
                || url.starts_with("data:");
            assert!(same, "{route}: a request left {}: {url}", self.origin);
        }
        self.assert_no_console_errors(route).await;
    }

    /// No secret in the DOM or in any field's value.
    async fn check_secrets(&self, route: &str) {
        let dom = self
            .browser
            .execute(
                "return [document.documentElement.outerHTML].concat(\
                   Array.from(document.querySelectorAll('input, textarea, select'), e => e.value))",
                vec![],
            )
            .await;
        for text in dom.as_array().unwrap() {
            let text = text.as_str().unwrap_or("");
            for secret in &self.secrets {
                assert!(
                    !text.contains(secret.as_str()),
                    "{route}: the secret {secret:?} reached the DOM"
                );
            }
        }
    }

    /// Fails on a CSP violation or a script error in the console log.
    async fn assert_no_console_errors(&self, route: &str) {
        for entry in self.browser.console_log().await {
            let message = entry["message"].as_str().unwrap_or("");
            let level = entry["level"].as_str().unwrap_or("");
            // A 4xx the page asked for on purpose (a refused form) is
            // logged by the browser as a failed resource: not an error of
            // the page.
            let failed_load = message.contains("Failed to load resource");
            assert!(
                failed_load
                    || (level != "SEVERE"
                        && !message.contains("Content Security Policy")
                        && !message.contains("Refused to")),
                "{route}: the browser logged {level}: {message}"
            );
        }
    }

    /// Saves a screenshot of the viewport, scrolled to the top, as `<name>.png`.
    async fn screenshot(&self, name: &str) {
        self.screenshot_at(name, None).await;
    }

    /// Saves a screenshot as `<name>.png`, with the element matching `css`
    /// (if given) a third of the way down the viewport.
    async fn screenshot_at(&self, name: &str, css: Option<&str>) {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        // Nothing blinking in the picture.
        self.browser
            .execute(
                "window.scrollTo(0, 0); \
                 if (document.activeElement) document.activeElement.blur(); \
                 const el = arguments[0] && document.querySelector(arguments[0]); \
                 if (el) window.scrollTo(0, el.getBoundingClientRect().top - innerHeight / 3);",
                vec![json!(css)],
            )
            .await;
        let png = self.browser.screenshot().await;
        assert!(png.starts_with(b"\x89PNG"), "a screenshot is a PNG");
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Signs in with `token` and waits for the page the console lands on.
    async fn sign_in(&self, token: &str, lands_on: &str) {
        let input = self.browser.wait_for("form#signin input#token").await;
        assert_eq!(input.attribute("type").await.as_deref(), Some("password"));
        input.fill(token).await;
        self.leave_page().await;
        self.browser
            .click("form#signin button[type=\"submit\"]")
            .await;
        self.wait_page(lands_on).await;
    }
}

/// GET `path` without a token: (status, headers).
async fn get_plain(url: &str) -> (u16, reqwest::header::HeaderMap) {
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.headers().clone())
}

/// Sign-in keeps the token in the tab's sessionStorage only (never the URL,
/// localStorage or a cookie), shows the API's refusal of a wrong one beside
/// the field, a 401 from any call goes back to sign-in, sign-out forgets
/// it; and every console answer carries the security headers.
#[tokio::test]
async fn signing_in_keeps_the_token_in_the_tab_only() {
    let server = Server::start();

    for path in [
        "/ui/",
        "/ui/console.js",
        "/ui/ui.js",
        "/ui/console.css",
        "/",
    ] {
        let (status, headers) = get_plain(&format!("{}{path}", server.url)).await;
        assert!(
            status == 200 || status == 303 || status == 307,
            "{path}: {status}"
        );
        assert_eq!(headers["content-security-policy"], CSP, "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
    }

    let console = Console::open(&server).await;
    let browser = &console.browser;
    assert!(
        browser.url().await.ends_with("/ui/#/signin"),
        "{}",
        browser.url().await
    );
    let label = browser.find("label[for=\"token\"]").await;
    assert!(
        !label.text().await.is_empty(),
        "the token field is labelled"
    );
    console.check_page("#/signin").await;
    console.screenshot("signin").await;

    // A wrong token: the API's refusal, beside the field; still signed out.
    let wrong = "not-the-admin-token-000";
    browser.find("input#token").await.fill(wrong).await;
    browser.click("form#signin button[type=\"submit\"]").await;
    browser.wait_text("#signin-error", "bearer token").await;
    assert!(browser.url().await.ends_with("#/signin"));
    let stored = browser
        .execute(
            "return Object.values(sessionStorage).concat(Object.values(localStorage)).join(';')",
            vec![],
        )
        .await;
    assert!(
        !stored.as_str().unwrap().contains(wrong),
        "a refused token is kept: {stored}"
    );

    // Signed in from the keyboard: the token typed, then Enter.
    let input = browser.find("input#token").await;
    input.fill(TOKEN).await;
    console.leave_page().await;
    input.send_keys("\u{E007}").await;
    console.wait_page("overview").await;
    console.check_page("#/overview").await;
    let url = browser.url().await;
    assert!(!url.contains(TOKEN), "the token is in the URL: {url}");
    let places = browser
        .execute(
            "return {\
               local: Object.keys(localStorage).map(k => k + '=' + localStorage.getItem(k)).join(';'),\
               session: Object.keys(sessionStorage).map(k => sessionStorage.getItem(k)).join(';'),\
               cookie: document.cookie }",
            vec![],
        )
        .await;
    assert_eq!(
        places["local"], "",
        "localStorage holds {}",
        places["local"]
    );
    assert_eq!(places["cookie"], "", "cookies: {}", places["cookie"]);
    assert!(
        places["session"].as_str().unwrap().contains(TOKEN),
        "the token is kept for the tab: {places}"
    );
    // Cookies the page's script cannot see (HttpOnly) count too.
    let cookies = browser.cookies().await;
    assert_eq!(cookies, json!([]), "the server set cookies");

    // The CSP holds in the browser: an inline script put into the page does
    // not run, and the violation is logged (what every page check looks for).
    let ran = browser
        .execute(
            "const s = document.createElement('script'); \
             s.textContent = 'window.inlineRan = true'; \
             document.head.append(s); \
             return window.inlineRan === true",
            vec![],
        )
        .await;
    assert_eq!(ran, json!(false), "an inline script ran");
    let log = browser.console_log().await;
    assert!(
        log.iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains("Content Security Policy"))),
        "no CSP violation logged: {log:?}"
    );

    // A 401 from any call (the token changed on the server, say) goes back
    // to sign-in, saying why, and forgets the token.
    browser
        .execute(
            "sessionStorage.setItem('prefsync.token', arguments[0])",
            vec![json!(wrong)],
        )
        .await;
    console.visit_expecting("#/integrations", "signin").await;
    browser.wait_text("#signin-reason", "bearer token").await;
    let kept = browser
        .execute("return sessionStorage.getItem('prefsync.token')", vec![])
        .await;
    assert_eq!(kept, Value::Null, "the refused token is forgotten");

    // Signing in again; the nav reaches every page; signing out forgets the token.
    console.sign_in(TOKEN, "overview").await;
    for (route, page) in [
        ("#/overview", "overview"),
        ("#/integrations", "integrations"),
        ("#/users", "users"),
        ("#/dead-letters", "dead-letters"),
        ("#/connectors", "connectors"),
        ("#/activations", "activations"),
    ] {
        browser.find(&format!("nav a[href=\"{route}\"]")).await;
        console.visit(route, page).await;
    }
    console.leave_page().await;
    browser.click("button#signout").await;
    console.wait_page("signin").await;
    let kept = browser
        .execute("return sessionStorage.getItem('prefsync.token')", vec![])
        .await;
    assert_eq!(kept, Value::Null, "signing out forgets the token");
    assert!(
        !browser.find("nav").await.displayed().await,
        "no nav when signed out"
    );
}

impl Console {
    /// Like [`Console::visit`], for a route that ends on another page
    /// (`expected`), without the page checks.
    async fn visit_expecting(&self, route: &str, expected: &str) {
        self.browser
            .execute(
                "document.getElementById('page').setAttribute('data-test-left', ''); \
                 location.hash = arguments[0];",
                vec![json!(route)],
            )
            .await;
        self.wait_page(expected).await;
    }
}

/// The ingest token of the servers below (events are posted with it, as
/// a Didomi webhook would).
const INGEST: &str = "test-ingest-token-0123456789";

/// The Dotdigital API user [`crate::serve::mock_dotdigital`] accepts.
const DD_USER: &str = "apiuser-1@apiconnector.com";

/// Posts events with the ingest token, insisting on the 202.
async fn post_events(server: &Server, events: &[String]) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/events", server.url))
        .bearer_auth(INGEST)
        .header("content-type", "application/x-ndjson")
        .body(events.join("\n"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert_eq!(status, 202, "{}", response.text().await.unwrap());
}

/// A consent event: `user` chose `newsletter` (and `email` as a channel).
fn consent(id: &str, at: &str, user: &str, newsletter: bool) -> String {
    crate::serve::event(
        id,
        at,
        user,
        json!({"purposes": [{"id": "newsletter", "enabled": newsletter}],
               "channels": [{"id": "email", "enabled": true}]}),
        json!({"firstname": user.split('@').next().unwrap()}),
    )
}

impl Console {
    /// Waits until cell `col` of row `id` of the overview's integrations
    /// shows `expected`, pressing Refresh between looks.
    async fn wait_overview(&self, id: &str, col: &str, expected: &str) {
        let css = format!(
            "table[data-table=\"integrations\"] tr[data-id=\"{id}\"] td[data-col=\"{col}\"]"
        );
        let mut seen = None;
        for _ in 0..60 {
            if let Some(cell) = self.browser.try_find(&css).await {
                let text = cell.text().await;
                if text.trim() == expected {
                    return;
                }
                seen = Some(text);
            }
            self.browser
                .click("main#page[data-ready=\"true\"] button[data-action=\"refresh\"]")
                .await;
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        panic!(
            "the overview's {col} of {id} never showed {expected:?} (it showed {seen:?})\n{}",
            self.browser.page_text().await
        );
    }
}

/// The generated form creates a Dotdigital integration (the connector's
/// problem beside the field left empty first); posted events show as
/// delivery counts on the overview and in a user's history; deliveries the
/// failing destination refused are dead letters, replayed from the page
/// once it is fixed, and land. Every page keeps its requests to the
/// server's origin and the integration's secrets out of the DOM.
#[tokio::test]
async fn integrations_deliveries_history_and_dead_letters_from_the_console() {
    let mock = crate::serve::mock_dotdigital().await;
    let server = Server::try_start(&format!("ingest_token = \"{INGEST}\""), |_| String::new())
        .expect("prefsync serve started");
    let mut console = Console::open(&server).await;
    console.secrets.extend([
        crate::serve::PASSWORD.to_string(),
        DD_USER.to_string(),
        INGEST.to_string(),
    ]);
    let browser = &console.browser;
    console.sign_in(TOKEN, "overview").await;

    // The catalogue offers Dotdigital, with what it can do.
    console.visit("#/integrations", "integrations").await;
    browser
        .wait_text(
            "table[data-table=\"catalogue\"] tr[data-id=\"dotdigital\"]",
            "Dotdigital",
        )
        .await;
    let caps = browser
        .find("table[data-table=\"catalogue\"] tr[data-id=\"dotdigital\"] [data-capability=\"activations\"]")
        .await;
    assert_eq!(caps.attribute("data-on").await.as_deref(), Some("true"));

    // The form generated from the connector's schema, the password left empty.
    console
        .visit("#/integrations/new?type=dotdigital", "integrations")
        .await;
    // A pasted Didomi-format document with a syntax error: where it is.
    browser.click("details#paste-json summary").await;
    browser
        .find("textarea#paste-json-text")
        .await
        .send_keys("{\n\"type_id\": \"dotdigital\",\n\"mappings\": [{\"id\": \"A\", \"value\": \"b\",}]\n}")
        .await;
    browser.click("button[data-action=\"paste-json\"]").await;
    browser.wait_text("#problem-paste", "line 3, column").await;
    let field = |path: &str| format!("[id=\"field-{path}\"]");
    for path in [
        "id",
        "authentication.url",
        "authentication.username",
        "authentication.password",
        "upsert_mode",
    ] {
        let label = browser.find(&format!("label[for=\"field-{path}\"]")).await;
        assert!(!label.text().await.is_empty(), "{path} has a label");
    }
    let password = browser.find(&field("authentication.password")).await;
    assert_eq!(
        password.attribute("type").await.as_deref(),
        Some("password")
    );
    browser.find(&field("id")).await.fill("dd-newsletter").await;
    browser
        .find(&field("authentication.url"))
        .await
        .fill(&mock.url())
        .await;
    browser
        .find(&field("authentication.username"))
        .await
        .fill(DD_USER)
        .await;
    let rows = browser.find_all("[data-mapping]").await;
    assert_eq!(rows.len(), 1, "one empty mapping row to start with");
    browser
        .find("[data-mapping] .mapping-id")
        .await
        .fill("NEWSLETTER")
        .await;
    browser
        .find("[data-mapping] .mapping-value")
        .await
        .fill("consents_purposes_newsletter_enabled")
        .await;
    let upsert = browser.find(&field("upsert_mode")).await;
    if upsert.property("checked").await != json!(true) {
        upsert.click().await;
    }
    browser.click("button[data-action=\"save\"]").await;
    let problem = browser
        .wait_for("[id=\"problem-authentication.password\"]")
        .await;
    assert!(!problem.text().await.is_empty());
    let beside = browser
        .execute(
            "const f = document.getElementById('field-authentication.password'); \
             return [f.nextElementSibling && f.nextElementSibling.id, f.getAttribute('aria-invalid')]",
            vec![],
        )
        .await;
    assert_eq!(
        beside,
        json!(["problem-authentication.password", "true"]),
        "the problem is right after its field"
    );
    let (_, list) = server
        .send(reqwest::Method::GET, "/v1/integrations", None)
        .await;
    assert_eq!(list, json!([]), "nothing was saved");
    // (The fields hold what was typed: the secrets are checked once saved.)
    console.check_requests("the refused form").await;
    console
        .screenshot_at(
            "integration-form",
            Some("[id=\"problem-authentication.password\"]"),
        )
        .await;

    // "Check without saving": the connector asks Dotdigital, which refuses
    // a wrong password (shown beside its field) and accepts the right one.
    password.fill("not-the-password-3c1d").await;
    browser.click("button[data-action=\"check\"]").await;
    browser
        .wait_text(
            "[id=\"problem-authentication.password\"]",
            "Dotdigital refused the API user and password (HTTP 401)",
        )
        .await;
    password.fill(crate::serve::PASSWORD).await;
    browser.click("button[data-action=\"check\"]").await;
    browser
        .wait_text("#result", "the destination accepted the connection")
        .await;
    let (_, list) = server
        .send(reqwest::Method::GET, "/v1/integrations", None)
        .await;
    assert_eq!(list, json!([]), "a check saves nothing");

    // Filled in: created.
    password.fill(crate::serve::PASSWORD).await;
    console.leave_page().await;
    browser.click("button[data-action=\"save\"]").await;
    console.wait_page("integrations").await;
    browser
        .wait_text("#result", "Created integration dd-newsletter")
        .await;
    let (status, created) = server
        .send(reqwest::Method::GET, "/v1/integrations/dd-newsletter", None)
        .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["upsert_mode"], true, "{created}");
    assert_eq!(created["authentication"]["url"], mock.url(), "{created}");
    console.check_page("#/integrations after creating").await;

    // Events through the API: delivered, counted on the overview.
    let users = ["ann@example.com", "bob@example.com", "cid@example.com"];
    let events: Vec<String> = users
        .iter()
        .enumerate()
        .map(|(i, u)| consent(&format!("e{i}"), "2026-11-20T10:00:00Z", u, true))
        .collect();
    post_events(&server, &events).await;
    crate::serve::eventually("three contacts in the mock", || {
        mock.state.contacts().len() == 3
    })
    .await;
    console.visit("#/overview", "overview").await;
    console
        .wait_overview("dd-newsletter", "delivered_hour", "3")
        .await;

    // A user's history: the event and the delivery attempt.
    console.visit("#/users/ann@example.com", "users").await;
    browser
        .wait_text(
            "table[data-table=\"attempts\"] td[data-col=\"outcome\"]",
            "delivered",
        )
        .await;
    browser
        .wait_text(
            "table[data-table=\"attempts\"] td[data-col=\"http_statuses\"]",
            "201",
        )
        .await;
    browser
        .wait_text("table[data-table=\"events\"] tr[data-id=\"e0\"]", "e0")
        .await;
    browser
        .wait_text(
            "table[data-table=\"state\"] tr[data-id=\"consents_purposes_newsletter_enabled\"] td[data-col=\"value\"]",
            "true",
        )
        .await;

    // The destination refuses (permanently): dead letters.
    mock.state
        .set_outage(Some(prefsync_tests::mocks::dotdigital::Fault::Status(400)));
    post_events(
        &server,
        &[
            consent("e3", "2026-11-20T11:00:00Z", "ann@example.com", false),
            consent("e4", "2026-11-20T11:00:00Z", "dee@example.com", true),
        ],
    )
    .await;
    server.wait_for_list("/v1/dead-letters", 2).await;
    console.visit("#/dead-letters", "dead-letters").await;
    let waiting = browser
        .wait_text(
            "table[data-table=\"dead-letter-integrations\"] tr[data-id=\"dd-newsletter\"] td[data-col=\"waiting\"]",
            "2",
        )
        .await;
    assert_eq!(waiting.trim(), "2");
    browser
        .wait_text(
            "table[data-table=\"dead-letters\"] td[data-col=\"last_error\"]",
            "HTTP 400",
        )
        .await;
    console.screenshot("dead-letters").await;

    // Fixed, then replayed from the page, one (dee's, from its row), then
    // all the rest: the result shown, the deliveries land.
    mock.state.set_outage(None);
    let dee = browser
        .execute(
            "return Array.from(document.querySelectorAll('table[data-table=\"dead-letters\"] tbody tr[data-id]'))\
               .find(r => r.textContent.includes('dee@example.com')).dataset.id",
            vec![],
        )
        .await;
    let dee = dee.as_str().unwrap().to_string();
    browser
        .click(&format!(
            "table[data-table=\"dead-letters\"] tr[data-id=\"{dee}\"] button[data-action=\"replay\"]"
        ))
        .await;
    browser
        .wait_text(
            "#result",
            &format!("Replayed 1 dead letter (dead letter {dee})"),
        )
        .await;
    browser
        .wait_until(
            "one dead letter left waiting",
            "return document.querySelectorAll('table[data-table=\"dead-letters\"] tbody tr[data-id]').length === 1",
        )
        .await;
    browser
        .click("button[data-action=\"replay-all\"][data-integration=\"dd-newsletter\"]")
        .await;
    browser
        .wait_text("#result", "Replayed 1 dead letter (all of dd-newsletter)")
        .await;
    crate::serve::eventually("the replayed deliveries in the mock", || {
        mock.state.contact("dee@example.com").is_some()
            && mock
                .state
                .contact("ann@example.com")
                .is_some_and(|c| c.data_fields.get("NEWSLETTER") == Some(&json!(false)))
    })
    .await;
    browser
        .wait_text(
            "table[data-table=\"dead-letters\"]",
            "No dead letters here.",
        )
        .await;
    console.check_page("#/dead-letters after the replay").await;

    // The overview, with every outcome; at a phone's width too.
    console.visit("#/overview", "overview").await;
    console
        .wait_overview("dd-newsletter", "delivered_hour", "5")
        .await;
    console
        .wait_overview("dd-newsletter", "dead_lettered_hour", "2")
        .await;
    for col in [
        "delivered_hour",
        "retrying_hour",
        "dead_lettered_hour",
        "delivered_day",
        "pending",
        "oldest_pending",
        "last_error",
    ] {
        browser
            .find(&format!(
                "table[data-table=\"integrations\"] tr[data-id=\"dd-newsletter\"] td[data-col=\"{col}\"]"
            ))
            .await;
    }
    console
        .wait_overview("dd-newsletter", "delivered_day", "5")
        .await;
    browser
        .wait_text(
            "table[data-table=\"integrations\"] tr[data-id=\"dd-newsletter\"] td[data-col=\"last_error\"]",
            "failed:permanent",
        )
        .await;
    let chart = browser.find("svg#chart[role=\"img\"]").await;
    assert!(
        chart
            .attribute("aria-label")
            .await
            .is_some_and(|l| !l.is_empty()),
        "the chart says what it shows"
    );
    console.screenshot("overview").await;
    browser.set_viewport(390, 844, true).await;
    console.leave_page().await;
    browser.click("button[data-action=\"refresh\"]").await;
    browser
        .wait_for("main#page[data-ready=\"true\"][data-page=\"overview\"]")
        .await;
    let overflow = browser
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
            vec![],
        )
        .await;
    assert!(
        overflow.as_i64().unwrap() <= 1,
        "the overview scrolls sideways at 390 px: {overflow}"
    );
    console.screenshot("overview-phone").await;
    browser.set_viewport(1280, 800, false).await;

    // The user's history, after it all.
    console.visit("#/users/ann@example.com", "users").await;
    browser
        .wait_text("table[data-table=\"attempts\"]", "HTTP 400")
        .await;
    console.screenshot("users").await;
    // The history exported (a download made in the page: no request).
    browser.click("button[data-action=\"export-json\"]").await;
    browser.click("button[data-action=\"export-csv\"]").await;
    console
        .check_page("#/users/ann@example.com after the exports")
        .await;
    console
        .screenshot_at("user-history", Some("#attempts-title"))
        .await;

    // Every page: requests to the server's origin only, no secret in the
    // DOM (the edit form never shows the stored password back).
    for (route, page) in [
        ("#/integrations", "integrations"),
        ("#/integrations/dd-newsletter", "integrations"),
        ("#/users", "users"),
        ("#/dead-letters", "dead-letters"),
        ("#/connectors", "connectors"),
        ("#/connectors/dotdigital", "connectors"),
        ("#/activations", "activations"),
        ("#/activations/new", "activations"),
        ("#/overview", "overview"),
    ] {
        console.visit(route, page).await;
        if route == "#/integrations" {
            console.screenshot("integrations").await;
        }
    }

    // Edited with the password left blank: the stored one is kept (the
    // next delivery still authenticates).
    console
        .visit("#/integrations/dd-newsletter", "integrations")
        .await;
    let password = browser.find(&field("authentication.password")).await;
    assert_eq!(
        password.value().await,
        "",
        "a stored password is never shown"
    );
    let upsert = browser.find(&field("upsert_mode")).await;
    assert_eq!(upsert.property("checked").await, json!(true));
    upsert.click().await;
    console.leave_page().await;
    browser.click("button[data-action=\"save\"]").await;
    console.wait_page("integrations").await;
    browser
        .wait_text("#result", "Saved integration dd-newsletter")
        .await;
    let (_, saved) = server
        .send(reqwest::Method::GET, "/v1/integrations/dd-newsletter", None)
        .await;
    assert_eq!(saved["upsert_mode"], false, "{saved}");
    post_events(
        &server,
        &[consent(
            "e5",
            "2026-11-20T12:00:00Z",
            "bob@example.com",
            false,
        )],
    )
    .await;
    crate::serve::eventually("bob's change delivered with the kept password", || {
        mock.state
            .contact("bob@example.com")
            .is_some_and(|c| c.data_fields.get("NEWSLETTER") == Some(&json!(false)))
    })
    .await;

    // Disabled and enabled again from the list.
    let row = "table[data-table=\"integrations\"] tr[data-id=\"dd-newsletter\"]";
    browser
        .click(&format!("{row} button[data-action=\"disable\"]"))
        .await;
    browser
        .wait_text("#result", "Disabled integration dd-newsletter")
        .await;
    let (_, shown) = server
        .send(reqwest::Method::GET, "/v1/integrations/dd-newsletter", None)
        .await;
    assert_eq!(shown["enabled"], false, "{shown}");
    browser
        .click(&format!("{row} button[data-action=\"enable\"]"))
        .await;
    browser
        .wait_text("#result", "Enabled integration dd-newsletter")
        .await;
    let (_, shown) = server
        .send(reqwest::Method::GET, "/v1/integrations/dd-newsletter", None)
        .await;
    assert_eq!(shown["enabled"], true, "{shown}");
    console.check_page("#/integrations after the edits").await;

    // Deleted only after the confirmation: cancelled first, nothing goes.
    browser
        .click(&format!("{row} button[data-action=\"delete\"]"))
        .await;
    browser.click("dialog [data-action=\"cancel\"]").await;
    let (status, _) = server
        .send(reqwest::Method::GET, "/v1/integrations/dd-newsletter", None)
        .await;
    assert_eq!(status, 200, "a cancelled delete deleted");
    browser
        .click(&format!("{row} button[data-action=\"delete\"]"))
        .await;
    browser.click("dialog [data-action=\"confirm\"]").await;
    browser
        .wait_text("#result", "Deleted integration dd-newsletter")
        .await;
    let (status, _) = server
        .send(reqwest::Method::GET, "/v1/integrations/dd-newsletter", None)
        .await;
    assert_eq!(status, 404, "the confirmed delete did not delete");
}

/// From the connectors page: a new Dotdigital version uploaded (with the
/// switch report shown), then rolled back after the confirmation. From an
/// activation's page: a run started, its counts shown, the rows landing.
#[tokio::test]
async fn connectors_upgrade_and_roll_back_and_activations_run_from_the_console() {
    use prefsync_tests::mocks::dotdigital::FieldType;
    // Dotdigital and Selligent loaded; models read from a CSV file.
    let (mock, server, csv) =
        crate::activations::dotdigital_and_models(&[("NEWSLETTER", FieldType::Boolean)]).await;

    let mut console = Console::open(&server).await;
    console
        .secrets
        .extend([crate::serve::PASSWORD.to_string(), DD_USER.to_string()]);
    let browser = &console.browser;
    console.sign_in(TOKEN, "overview").await;

    // The registry.
    console.visit("#/connectors", "connectors").await;
    console
        .wait_cell_text("connectors", "dotdigital", "active", "0.1.0")
        .await;
    browser
        .wait_for("table[data-table=\"connectors\"] tr[data-id=\"selligent\"]")
        .await;
    console.screenshot("connectors").await;

    // Upload 0.2.0: upgraded, the report shown.
    console.visit("#/connectors/dotdigital", "connectors").await;
    browser
        .find("input#upload-file")
        .await
        .send_keys(prefsync_tests::guests::DOTDIGITAL_V2)
        .await;
    console.leave_page().await;
    browser.click("button[data-action=\"upload\"]").await;
    browser.wait_text("#result", "0.2.0").await;
    browser
        .wait_text("dd[data-field=\"active\"]", "0.2.0")
        .await;
    browser
        .wait_text("dd[data-field=\"standby\"]", "0.1.0")
        .await;
    let result = browser.find("#result").await.text().await;
    assert!(result.contains("Upgraded"), "{result}");
    let (_, state) = server
        .send(reqwest::Method::GET, "/v1/connectors/dotdigital", None)
        .await;
    assert_eq!(state["active"]["version"], "0.2.0", "{state}");
    let versions = browser
        .find_all("table[data-table=\"versions\"] tbody tr[data-id]")
        .await;
    assert_eq!(versions.len(), 2, "both versions listed");
    console
        .check_page("#/connectors/dotdigital after the upload")
        .await;
    console.screenshot("connector").await;

    // Roll back, after the confirmation: 0.1.0 again.
    browser.click("button[data-action=\"rollback\"]").await;
    browser.click("dialog [data-action=\"confirm\"]").await;
    browser.wait_text("#result", "Rolled back").await;
    browser
        .wait_text("dd[data-field=\"active\"]", "0.1.0")
        .await;
    let (_, state) = server
        .send(reqwest::Method::GET, "/v1/connectors/dotdigital", None)
        .await;
    assert_eq!(state["active"]["version"], "0.1.0", "{state}");
    console
        .check_page("#/connectors/dotdigital after the rollback")
        .await;

    // An activation created through its form (a CSV model under the
    // source directory, keyed on the email), then run from its page: its
    // counts, the contacts created.
    console.visit("#/activations/new", "activations").await;
    let field = |path: &str| format!("[id=\"field-{path}\"]");
    browser.find(&field("id")).await.fill("dd-users").await;
    browser
        .find(&field("name"))
        .await
        .fill("Customers to Dotdigital")
        .await;
    browser
        .click(&format!("{} option[value=\"dd\"]", field("integration")))
        .await;
    browser
        .find(&field("source.path"))
        .await
        .fill("users.csv")
        .await;
    browser.find(&field("key.column")).await.fill("email").await;
    browser.find(&field("key.field")).await.fill("EMAIL").await;
    for (i, (id, column)) in [
        ("FIRSTNAME", "first_name"),
        ("CITY", "city"),
        ("AGE", "age"),
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            browser.click("button[data-action=\"add-mapping\"]").await;
        }
        browser
            .find(&field(&format!("mappings[{i}].id")))
            .await
            .fill(id)
            .await;
        browser
            .find(&field(&format!("mappings[{i}].value")))
            .await
            .fill(column)
            .await;
    }
    console.leave_page().await;
    browser.click("button[data-action=\"save\"]").await;
    console.wait_page("activations").await;
    browser
        .wait_text("#result", "Created activation dd-users")
        .await;
    let (status, created) = server
        .send(reqwest::Method::GET, "/v1/activations/dd-users", None)
        .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["integration"], "dd", "{created}");
    assert_eq!(created["key"], json!({"column": "email", "field": "EMAIL"}));
    assert_eq!(
        created["mappings"].as_array().unwrap().len(),
        3,
        "{created}"
    );
    browser.click("button[data-action=\"run-now\"]").await;
    let run = "table[data-table=\"runs\"] tbody tr[data-id]";
    browser
        .wait_text(&format!("{run} td[data-col=\"status\"]"), "succeeded")
        .await;
    browser
        .wait_text(&format!("{run} td[data-col=\"rows_read\"]"), "4")
        .await;
    let inserted = browser
        .wait_text(&format!("{run} td[data-col=\"inserted\"]"), "4")
        .await;
    assert_eq!(inserted.trim(), "4");
    browser.wait_text("#result", "4 inserted").await;
    assert_eq!(
        mock.state.contacts().len(),
        4,
        "the rows reached Dotdigital"
    );
    assert_eq!(
        mock.state.contact("bob@example.com").unwrap().data_fields["CITY"],
        "Paris"
    );
    console
        .check_page("#/activations/dd-users after the run")
        .await;

    // A second run after the model changed: the diff's counts.
    std::fs::write(
        &csv,
        format!(
            "{}eve@example.com,Eve,Brest,23\n",
            crate::activations::FIRST
        ),
    )
    .unwrap();
    browser.click("button[data-action=\"run-now\"]").await;
    browser
        .wait_text(
            "table[data-table=\"runs\"] tbody tr[data-id]:first-child td[data-col=\"rows_read\"]",
            "5",
        )
        .await;
    browser
        .wait_text(
            "table[data-table=\"runs\"] tbody tr[data-id]:first-child td[data-col=\"unchanged\"]",
            "4",
        )
        .await;
    browser.wait_text("#result", "1 inserted").await;
    console.screenshot("activation").await;
    console.visit("#/activations", "activations").await;
    browser
        .wait_text(
            "table[data-table=\"activations\"] tr[data-id=\"dd-users\"] td[data-col=\"last_run\"]",
            "succeeded",
        )
        .await;
    console.screenshot("activations").await;
}

impl Console {
    /// The text of cell `col` of row `id` in table `table`, once it shows
    /// `expected`.
    async fn wait_cell_text(&self, table: &str, id: &str, col: &str, expected: &str) -> String {
        self.browser
            .wait_text(
                &format!(
                    "table[data-table=\"{table}\"] tr[data-id=\"{id}\"] td[data-col=\"{col}\"]"
                ),
                expected,
            )
            .await
    }
}
