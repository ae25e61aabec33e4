//! A small W3C WebDriver client for the console's browser tests: one
//! headless Chromium per [`Browser`], driven through its own `chromedriver`
//! on a free loopback port, over the `reqwest` client the tests already use.
//!
//! Only what the tests need: navigate, find by CSS, click, type, read values,
//! text and attributes, run a script, screenshots, the window size, bounded
//! waits, and the browser's console log. Every call that fails panics with
//! what it was doing and WebDriver's message; waits panic naming what they
//! awaited, with the page's URL and text. Dropping the [`Browser`] ends the
//! session, kills `chromedriver` and the browser (their process group), and
//! deletes the throwaway profile.
//!
//! Chromium and chromedriver come from the distribution's packages
//! (`chromium`, `chromium-driver`), which `scripts/test.sh` installs when
//! missing (`scripts/chromium.sh`).

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// Where the distribution puts the browser and its WebDriver server.
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long a wait lasts before it fails (a loaded CI machine is slow).
pub const WAIT: Duration = Duration::from_secs(30);

/// The key W3C WebDriver names an element reference by.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A WebDriver error answer: its `error` code and `message`.
#[derive(Debug, Clone, PartialEq)]
pub struct WebDriverError {
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.message)
    }
}

/// The `value` of a WebDriver answer, or its error (HTTP status, body).
fn answer(status: u16, body: &str) -> Result<Value, WebDriverError> {
    let parsed: Value = serde_json::from_str(body).map_err(|_| WebDriverError {
        error: format!("HTTP {status}"),
        message: body.chars().take(500).collect(),
    })?;
    let value = parsed.get("value").cloned().unwrap_or(Value::Null);
    if (200..300).contains(&status) {
        return Ok(value);
    }
    Err(WebDriverError {
        error: value["error"]
            .as_str()
            .map_or_else(|| format!("HTTP {status}"), str::to_string),
        message: value["message"]
            .as_str()
            .map_or_else(|| body.chars().take(500).collect(), str::to_string),
    })
}

/// The element reference in a `find element` answer.
fn element_id(value: &Value) -> Option<String> {
    value[ELEMENT_KEY].as_str().map(str::to_string)
}

/// The `chromedriver` capabilities for a headless Chromium with its profile
/// in `profile` (a fresh one per browser: no state between tests).
pub fn capabilities(profile: &Path) -> Value {
    json!({
        "capabilities": {
            "alwaysMatch": {
                "browserName": "chrome",
                "pageLoadStrategy": "normal",
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": [
                        "--headless=new",
                        "--no-sandbox",
                        "--disable-gpu",
                        "--disable-quic",
                        "--no-first-run",
                        "--disable-background-networking",
                        "--disable-component-update",
                        "--disable-sync",
                        "--disable-dev-shm-usage",
                        "--window-size=1280,800",
                        format!("--user-data-dir={}", profile.display()),
                    ]
                },
                // The console log, read by [`Browser::console_log`] (CSP
                // violations are reported there).
                "goog:loggingPrefs": {"browser": "ALL"}
            }
        }
    })
}

/// The one request a dropped [`Browser`] still sends, without an async
/// runtime: `DELETE path` over HTTP/1.1, as bytes.
fn delete_request(port: u16, path: &str) -> Vec<u8> {
    format!(
        "DELETE {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .into_bytes()
}

/// A WebDriver session's commands (cheap to clone: elements hold one).
#[derive(Clone)]
struct Session {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`
    base: String,
}

impl Session {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.map_err(|e| WebDriverError {
            error: "transport".into(),
            message: format!("{url}: {e}"),
        })?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        answer(status, &text)
    }

    async fn get(&self, path: &str) -> Result<Value, WebDriverError> {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, WebDriverError> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
}

fn must<T>(result: Result<T, WebDriverError>, doing: &str) -> T {
    result.unwrap_or_else(|e| panic!("WebDriver: {doing}: {e}"))
}

/// An element found on the page (its CSS selector kept for messages).
#[derive(Clone)]
pub struct Element {
    session: Session,
    id: String,
    /// The selector it was found by.
    pub css: String,
}

impl std::fmt::Debug for Element {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Element({})", self.css)
    }
}

impl Element {
    fn path(&self, tail: &str) -> String {
        format!("/element/{}{tail}", self.id)
    }

    pub async fn try_click(&self) -> Result<(), WebDriverError> {
        self.session
            .post(&self.path("/click"), json!({}))
            .await
            .map(drop)
    }

    pub async fn click(&self) {
        must(self.try_click().await, &format!("clicking {}", self.css));
    }

    /// Types `text` into the element (WebDriver's "element send keys").
    pub async fn send_keys(&self, text: &str) {
        must(
            self.session
                .post(&self.path("/value"), json!({"text": text}))
                .await,
            &format!("typing into {}", self.css),
        );
    }

    pub async fn clear(&self) {
        must(
            self.session.post(&self.path("/clear"), json!({})).await,
            &format!("clearing {}", self.css),
        );
    }

    /// Clears the field, then types `text`.
    pub async fn fill(&self, text: &str) {
        self.clear().await;
        if !text.is_empty() {
            self.send_keys(text).await;
        }
    }

    /// The element's `value` property (what an input holds now).
    pub async fn value(&self) -> String {
        self.property("value").await.as_str().unwrap_or("").into()
    }

    /// A DOM property (`checked`, `value`, `disabled` …).
    pub async fn property(&self, name: &str) -> Value {
        must(
            self.session
                .get(&self.path(&format!("/property/{name}")))
                .await,
            &format!("reading {name} of {}", self.css),
        )
    }

    /// The element's rendered text.
    pub async fn text(&self) -> String {
        self.try_text()
            .await
            .unwrap_or_else(|e| panic!("WebDriver: reading the text of {}: {e}", self.css))
    }

    async fn try_text(&self) -> Result<String, WebDriverError> {
        Ok(self
            .session
            .get(&self.path("/text"))
            .await?
            .as_str()
            .unwrap_or("")
            .to_string())
    }

    /// An attribute, `None` when the element has none of that name.
    pub async fn attribute(&self, name: &str) -> Option<String> {
        must(
            self.session
                .get(&self.path(&format!("/attribute/{name}")))
                .await,
            &format!("reading attribute {name} of {}", self.css),
        )
        .as_str()
        .map(str::to_string)
    }

    /// Whether the element is shown.
    pub async fn displayed(&self) -> bool {
        must(
            self.session.get(&self.path("/displayed")).await,
            &format!("checking whether {} is shown", self.css),
        )
        .as_bool()
        .unwrap_or(false)
    }

    /// The element as a script argument.
    pub fn as_arg(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }
}

/// One headless Chromium, with its own chromedriver and profile.
pub struct Browser {
    session: Session,
    session_id: String,
    driver: Child,
    port: u16,
    profile: PathBuf,
}

/// A free loopback port, as the kernel picks it.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding a loopback port")
        .port()
}

/// Waits (at most 20 s) for chromedriver on `port` to say it is ready;
/// false when it exits first (its port was taken) or never does.
async fn wait_ready(http: &reqwest::Client, port: u16, driver: &mut Child) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if let Ok(Some(_)) = driver.try_wait() {
            return false;
        }
        if let Ok(response) = http
            .get(format!("http://127.0.0.1:{port}/status"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            && let Ok(text) = response.text().await
            && answer(200, &text).is_ok_and(|v| v["ready"] == true)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Panics, saying how to get them, when the browser or its driver is missing.
pub fn require_chromium() {
    for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
        assert!(
            Path::new(path).exists(),
            "{path} is missing: the console's browser tests need headless Chromium and chromedriver; \
             run ./scripts/test.sh (it installs them as root) or `apt-get install chromium chromium-driver` \
             (package {package})"
        );
    }
}

impl Browser {
    /// Starts chromedriver on a free loopback port and a headless Chromium
    /// session through it (1280×800).
    pub async fn start() -> Browser {
        require_chromium();
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let profile = std::env::temp_dir().join(format!(
            "prefsync-chromium-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("creating the browser profile directory");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        // Another process may take the port between its pick and
        // chromedriver's bind, and a loaded machine may be slow to start
        // the browser: a few tries, each with a fresh port and profile.
        let mut failures = Vec::new();
        for attempt in 0..3 {
            let port = free_port();
            let log_path = profile.join(format!("chromedriver-{attempt}.log"));
            let user_data = profile.join(format!("chromium-{attempt}"));
            let log = std::fs::File::create(&log_path).unwrap();
            let mut driver = Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                // Its own process group: dropping the browser kills the
                // driver and every browser process it started.
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {CHROMEDRIVER}: {e}"));
            let failure = if wait_ready(&http, port, &mut driver).await {
                let session = Session {
                    http: http.clone(),
                    base: format!("http://127.0.0.1:{port}"),
                };
                match session.post("/session", capabilities(&user_data)).await {
                    Ok(created) => {
                        let session_id = created["sessionId"]
                            .as_str()
                            .unwrap_or_else(|| panic!("no sessionId in {created}"))
                            .to_string();
                        return Browser {
                            session: Session {
                                http,
                                base: format!("http://127.0.0.1:{port}/session/{session_id}"),
                            },
                            session_id,
                            driver,
                            port,
                            profile,
                        };
                    }
                    Err(e) => format!("starting Chromium: {e}"),
                }
            } else {
                format!("chromedriver did not come up on port {port}")
            };
            kill_group(&mut driver);
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            failures.push(format!("{failure}\nchromedriver's log:\n{log}"));
        }
        let _ = std::fs::remove_dir_all(&profile);
        panic!(
            "WebDriver: no browser after 3 tries:\n{}",
            failures.join("\n---\n")
        );
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        must(
            self.session.post("/url", json!({"url": url})).await,
            &format!("opening {url}"),
        );
    }

    /// The page's URL now.
    pub async fn url(&self) -> String {
        must(self.session.get("/url").await, "reading the URL")
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Every cookie the browser holds for the page (HttpOnly ones too).
    pub async fn cookies(&self) -> Value {
        must(self.session.get("/cookie").await, "reading the cookies")
    }

    /// The first element matching `css`, if any.
    pub async fn try_find(&self, css: &str) -> Option<Element> {
        let found = self
            .session
            .post("/element", json!({"using": "css selector", "value": css}))
            .await;
        match found {
            Ok(value) => element_id(&value).map(|id| Element {
                session: self.session.clone(),
                id,
                css: css.into(),
            }),
            Err(e) if e.error == "no such element" => None,
            Err(e) => panic!("WebDriver: finding {css}: {e}"),
        }
    }

    /// The first element matching `css`; panics when there is none.
    pub async fn find(&self, css: &str) -> Element {
        match self.try_find(css).await {
            Some(element) => element,
            None => panic!(
                "no element matches {css} on {}\n{}",
                self.url().await,
                self.page_text().await
            ),
        }
    }

    /// Every element matching `css`, in document order.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let found = must(
            self.session
                .post("/elements", json!({"using": "css selector", "value": css}))
                .await,
            &format!("finding every {css}"),
        );
        found
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(element_id)
            .map(|id| Element {
                session: self.session.clone(),
                id,
                css: css.into(),
            })
            .collect()
    }

    /// Runs `script` (a function body: `return …`) with `args`; its result.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        must(self.try_execute(script, args).await, "running a script")
    }

    async fn try_execute(&self, script: &str, args: Vec<Value>) -> Result<Value, WebDriverError> {
        self.session
            .post("/execute/sync", json!({"script": script, "args": args}))
            .await
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        let encoded = must(self.session.get("/screenshot").await, "taking a screenshot");
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap_or(""))
            .expect("a screenshot is base64")
    }

    /// Sets the window's outer size.
    pub async fn set_window_size(&self, width: u32, height: u32) {
        must(
            self.session
                .post("/window/rect", json!({"width": width, "height": height}))
                .await,
            &format!("resizing the window to {width}×{height}"),
        );
    }

    /// Emulates a viewport of exactly `width`×`height` CSS pixels through
    /// the DevTools protocol (a window's outer size includes the browser's
    /// frame, and a desktop window cannot be as narrow as a phone); `mobile`
    /// as a phone would (the viewport meta tag applies).
    pub async fn set_viewport(&self, width: u32, height: u32, mobile: bool) {
        let params = json!({
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile
        });
        must(
            self.session
                .post(
                    "/goog/cdp/execute",
                    json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": params}),
                )
                .await,
            &format!("emulating a {width}×{height} viewport"),
        );
    }

    /// The browser console's entries since the last call (`level`,
    /// `message`): CSP violations and script errors show here.
    pub async fn console_log(&self) -> Vec<Value> {
        must(
            self.session
                .post("/se/log", json!({"type": "browser"}))
                .await,
            "reading the browser's console log",
        )
        .as_array()
        .cloned()
        .unwrap_or_default()
    }

    /// The page's visible text (for failure messages), at most 3000 characters.
    pub async fn page_text(&self) -> String {
        match self
            .try_execute(
                "const main = document.querySelector('main'); \
                 return (main ? main.outerHTML.slice(0, main.outerHTML.indexOf('>') + 1) + '\\n' : '') \
                   + (document.body ? document.body.innerText : '')",
                vec![],
            )
            .await
        {
            Ok(text) => text.as_str().unwrap_or("").chars().take(3000).collect(),
            Err(e) => format!("(page text unavailable: {e})"),
        }
    }

    /// Polls `script` (a function body) every 100 ms until it returns
    /// something truthy, for at most [`WAIT`]; that value. Script errors
    /// (a page between renders) count as not yet.
    pub async fn wait_until(&self, what: &str, script: &str) -> Value {
        let start = Instant::now();
        let mut last_error = None;
        while start.elapsed() < WAIT {
            match self.try_execute(script, vec![]).await {
                Ok(value) if truthy(&value) => return value,
                Ok(_) => last_error = None,
                Err(e) => last_error = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.timed_out(what, last_error).await
    }

    /// Waits for an element matching `css`, for at most [`WAIT`].
    pub async fn wait_for(&self, css: &str) -> Element {
        let start = Instant::now();
        while start.elapsed() < WAIT {
            if let Some(element) = self.try_find(css).await {
                return element;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.timed_out(&format!("an element matching {css}"), None)
            .await
    }

    /// Waits until the first element matching `css` has text containing
    /// `expected`, for at most [`WAIT`]; its whole text.
    pub async fn wait_text(&self, css: &str, expected: &str) -> String {
        let start = Instant::now();
        let mut seen = None;
        while start.elapsed() < WAIT {
            if let Some(element) = self.try_find(css).await
                && let Ok(text) = element.try_text().await
            {
                if text.contains(expected) {
                    return text;
                }
                seen = Some(text);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.timed_out(
            &format!("{css} to show {expected:?} (it showed {seen:?})"),
            None,
        )
        .await
    }

    /// Clicks the first element matching `css` once it is there and
    /// clickable (a page may still be drawing), for at most [`WAIT`].
    pub async fn click(&self, css: &str) {
        let start = Instant::now();
        let mut last = None;
        while start.elapsed() < WAIT {
            if let Some(element) = self.try_find(css).await {
                match element.try_click().await {
                    Ok(()) => return,
                    Err(e) => last = Some(e),
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.timed_out(&format!("{css} to be clickable"), last)
            .await
    }

    async fn timed_out(&self, what: &str, last_error: Option<WebDriverError>) -> ! {
        let error = last_error
            .map(|e| format!("\nlast error: {e}"))
            .unwrap_or_default();
        panic!(
            "timed out after {} s waiting for {what}{error}\nat {}\npage text:\n{}",
            WAIT.as_secs(),
            self.url().await,
            self.page_text().await
        )
    }
}

/// JavaScript's truthiness, for the values a script returns.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// Kills `driver`'s process group (chromedriver and the browser it
/// started) and reaps it.
fn kill_group(driver: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", driver.id())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = driver.kill();
    let _ = driver.wait();
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the session (the browser quits cleanly), bounded; then the
        // process group, whatever is left of it.
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
            let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let request = delete_request(self.port, &format!("/session/{}", self.session_id));
            if stream.write_all(&request).is_ok() {
                let _ = stream.read_to_end(&mut Vec::new());
            }
        }
        kill_group(&mut self.driver);
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_give_their_value_or_webdrivers_error() {
        assert_eq!(answer(200, r#"{"value": 3}"#), Ok(json!(3)));
        assert_eq!(answer(200, r#"{"value": null}"#), Ok(Value::Null));
        assert_eq!(
            answer(
                404,
                r#"{"value": {"error": "no such element", "message": "Unable to locate", "stacktrace": ""}}"#
            ),
            Err(WebDriverError {
                error: "no such element".into(),
                message: "Unable to locate".into()
            })
        );
        let not_json = answer(502, "Bad Gateway").unwrap_err();
        assert_eq!(not_json.error, "HTTP 502");
        assert_eq!(not_json.message, "Bad Gateway");
    }

    #[test]
    fn element_references_use_the_w3c_key() {
        assert_eq!(
            element_id(&json!({ELEMENT_KEY: "abc"})),
            Some("abc".to_string())
        );
        assert_eq!(element_id(&json!({"ELEMENT": "abc"})), None);
        let element = Element {
            session: Session {
                http: reqwest::Client::new(),
                base: String::new(),
            },
            id: "abc".into(),
            css: "#x".into(),
        };
        assert_eq!(element.as_arg(), json!({ELEMENT_KEY: "abc"}));
    }

    #[test]
    fn the_browser_is_headless_sandboxless_and_on_its_own_profile() {
        let caps = capabilities(Path::new("/tmp/profile-1"));
        let options = &caps["capabilities"]["alwaysMatch"]["goog:chromeOptions"];
        assert_eq!(options["binary"], CHROMIUM);
        let args: Vec<&str> = options["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        for expected in [
            "--headless=new",
            "--no-sandbox",
            "--disable-background-networking",
            "--window-size=1280,800",
            "--user-data-dir=/tmp/profile-1",
        ] {
            assert!(args.contains(&expected), "{expected} missing from {args:?}");
        }
    }

    #[test]
    fn the_drop_time_delete_is_a_complete_request() {
        let request = String::from_utf8(delete_request(4444, "/session/s1")).unwrap();
        assert!(request.starts_with("DELETE /session/s1 HTTP/1.1\r\n"));
        assert!(request.contains("Host: 127.0.0.1:4444\r\n"));
        assert!(request.ends_with("\r\n\r\n"));
    }

    #[test]
    fn truthiness_follows_javascript() {
        for falsy in [json!(null), json!(false), json!(0), json!("")] {
            assert!(!truthy(&falsy), "{falsy}");
        }
        for true_ in [json!(true), json!(1), json!("x"), json!([]), json!({})] {
            assert!(truthy(&true_), "{true_}");
        }
    }
}
