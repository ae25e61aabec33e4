//! `prefsync serve`, as a real process on loopback with a real SQLite file.

use std::time::Duration;

use prefsync_tests::guests;
use prefsync_tests::support::ServeProcess;
use serde_json::{Value, json};

pub(crate) const TOKEN: &str = "test-admin-token-0123456789";
pub(crate) const PASSWORD: &str = "Sup3r-Secret-Pw";

/// The `path` of every problem in a 4xx answer, in order (panics when the
/// answer lists none, showing it).
pub(crate) fn problem_paths(body: &Value) -> Vec<&str> {
    body["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("no problems in {body}"))
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect()
}

/// A `prefsync serve` with its own temporary directory, connectors and config.
pub(crate) struct Server {
    process: ServeProcess,
    pub(crate) url: String,
    config: std::path::PathBuf,
    dir: tempfile::TempDir,
}

impl Server {
    pub(crate) fn start() -> Server {
        Self::try_start("", |_| String::new()).expect("prefsync serve started")
    }

    /// Starts with extra lines in `[server]` and extra config tables
    /// (`extra` may write files into the temporary directory it is given);
    /// the error is what the server logged.
    pub(crate) fn try_start(
        server_lines: &str,
        extra: impl FnOnce(&std::path::Path) -> String,
    ) -> Result<Server, String> {
        Self::try_start_on("", server_lines, extra)
    }

    /// Like [`Server::try_start`], with extra lines in `[storage]` (a
    /// PostgreSQL `url`, say).
    pub(crate) fn try_start_on(
        storage_lines: &str,
        server_lines: &str,
        extra: impl FnOnce(&std::path::Path) -> String,
    ) -> Result<Server, String> {
        Self::try_start_logging(storage_lines, server_lines, "debug", extra)
    }

    /// Like [`Server::try_start_on`], with the server's log filter
    /// (`PREFSYNC_LOG`) chosen: `trace` shows every line it can write.
    pub(crate) fn try_start_logging(
        storage_lines: &str,
        server_lines: &str,
        log_filter: &str,
        extra: impl FnOnce(&std::path::Path) -> String,
    ) -> Result<Server, String> {
        // PREFSYNC_TEST_SERVE_STORE=postgres runs every server of these tests
        // on a fresh PostgreSQL database instead (./scripts/test.sh does, in a
        // second pass over the serve tests).
        let on_postgres;
        let storage_lines = match std::env::var("PREFSYNC_TEST_SERVE_STORE").as_deref() {
            Ok("postgres") if storage_lines.is_empty() => {
                let url = std::thread::spawn(|| {
                    tokio::runtime::Runtime::new()
                        .unwrap()
                        .block_on(prefsync_tests::support::postgres_database())
                })
                .join()
                .unwrap();
                on_postgres = format!("url = {url:?}");
                on_postgres.as_str()
            }
            _ => storage_lines,
        };
        let dir = tempfile::tempdir().unwrap();
        let connector_dir = dir.path().join("connectors");
        std::fs::create_dir_all(&connector_dir).unwrap();
        std::fs::copy(guests::DOTDIGITAL, connector_dir.join("dotdigital.wasm")).unwrap();
        // Not a connector: the host must skip it and keep going.
        std::fs::write(connector_dir.join("broken.wasm"), b"not wasm").unwrap();
        let config = dir.path().join("prefsync.toml");
        let extra = extra(dir.path());
        // An `[egress]` table of the caller's replaces the tests' default.
        let egress = if extra.contains("[egress]") {
            ""
        } else {
            "[egress]\nallow_loopback = true\nallow_http = true\n"
        };
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:0\"\nadmin_token = \"{TOKEN}\"\n{server_lines}\n\
                 [storage]\ndata_dir = {:?}\n{storage_lines}\n[connectors]\ndir = {:?}\nwatch_interval_ms = 100\n\
                 {egress}{extra}",
                dir.path().join("data"),
                connector_dir,
            ),
        )
        .unwrap();
        let process = ServeProcess::start_logging(&config, log_filter)?;
        Ok(Server {
            url: process.url.clone(),
            process,
            config,
            dir,
        })
    }

    /// The data directory.
    pub(crate) fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// The watched connector directory.
    pub(crate) fn connector_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("connectors")
    }

    /// Stops the server with SIGTERM and starts it again on the same data
    /// and connector directories.
    pub(crate) fn restart(self) -> Server {
        self.restart_with(str::to_string).1
    }

    /// Like [`Server::restart`], with the config file rewritten by `edit`
    /// in between.
    pub(crate) fn restart_with(self, edit: impl FnOnce(&str) -> String) -> (String, Server) {
        let Server {
            process,
            config,
            dir,
            ..
        } = self;
        let (clean, log) = process.terminate();
        assert!(clean, "{log}");
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, edit(&text)).unwrap();
        let process = ServeProcess::start(&config).expect("prefsync serve restarted");
        let server = Server {
            url: process.url.clone(),
            process,
            config,
            dir,
        };
        (log, server)
    }

    /// The Prometheus text of `GET /metrics`.
    pub(crate) async fn metrics(&self) -> String {
        self.client()
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// `POST {path}` with raw bytes (a component).
    pub(crate) async fn post_bytes(&self, path: &str, bytes: Vec<u8>) -> (u16, Value) {
        let response = self
            .client()
            .post(format!("{}{path}", self.url))
            .bearer_auth(TOKEN)
            .header("content-type", "application/wasm")
            .body(bytes)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Stops the server with SIGTERM: (exited cleanly, its log).
    pub(crate) fn terminate(self) -> (bool, String) {
        self.process.terminate()
    }

    /// Like [`Server::terminate`], keeping the temporary directory (data,
    /// config) for what runs next on it.
    pub(crate) fn terminate_keeping_dir(self) -> (bool, String, tempfile::TempDir) {
        let (clean, log) = self.process.terminate();
        (clean, log, self.dir)
    }

    pub(crate) fn client(&self) -> reqwest::Client {
        reqwest::Client::new()
    }

    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self
            .client()
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

/// A mock Dotdigital with the API user [`dotdigital`] configures and a
/// boolean `NEWSLETTER` data field.
pub(crate) async fn mock_dotdigital()
-> prefsync_tests::mocks::MockServer<prefsync_tests::mocks::dotdigital::Dotdigital> {
    use prefsync_tests::mocks::dotdigital::{Dotdigital, FieldType};
    Dotdigital::start(
        "apiuser-1@apiconnector.com",
        PASSWORD,
        &[("NEWSLETTER", FieldType::Boolean)],
    )
    .await
    .unwrap()
}

impl Server {
    /// Creates an integration, insisting on the 201.
    pub(crate) async fn create_integration(&self, integration: &Value) {
        let (status, body) = self
            .send(
                reqwest::Method::POST,
                "/v1/integrations",
                Some(&integration.to_string()),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    /// Posts events (one JSON body), insisting on the 202.
    pub(crate) async fn post_events(&self, body: &str) {
        let (status, answer) = self
            .send(reqwest::Method::POST, "/v1/events", Some(body))
            .await;
        assert_eq!(status, 202, "{answer}");
    }
}

pub(crate) fn dotdigital(id: Option<&str>) -> Value {
    let mut config = json!({
        "type_id": "dotdigital",
        "authentication": {"url": "http://127.0.0.1:9", "username": "apiuser-1@apiconnector.com", "password": PASSWORD},
        "properties": {},
        "mappings": [{"id": "NEWSLETTER", "value": "consents_purposes_newsletter_enabled"}],
        "upsert_mode": true
    });
    if let Some(id) = id {
        config["id"] = json!(id);
    }
    config
}

#[tokio::test]
async fn integrations_round_trip_without_ever_showing_secrets() {
    let server = Server::start();
    let (status, created) = server
        .send(
            reqwest::Method::POST,
            "/v1/integrations",
            Some(&dotdigital(Some("dd-main")).to_string()),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["id"], "dd-main");
    assert_eq!(created["enabled"], true);
    assert_eq!(created["authentication"]["password"], "[REDACTED]");
    assert_eq!(created["authentication"]["url"], "http://127.0.0.1:9");

    let (status, again) = server
        .send(
            reqwest::Method::POST,
            "/v1/integrations",
            Some(&dotdigital(Some("dd-main")).to_string()),
        )
        .await;
    assert_eq!(status, 409, "{again}");

    let mut changed = dotdigital(None);
    changed["upsert_mode"] = json!(false);
    let (status, replaced) = server
        .send(
            reqwest::Method::PUT,
            "/v1/integrations/dd-main",
            Some(&changed.to_string()),
        )
        .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["upsert_mode"], false);
    assert_eq!(replaced["created_at_ms"], created["created_at_ms"]);

    let (status, list) = server
        .send(reqwest::Method::GET, "/v1/integrations", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (status, one) = server
        .send(reqwest::Method::GET, "/v1/integrations/dd-main", None)
        .await;
    assert_eq!(status, 200);
    for shown in [&created, &replaced, &list, &one] {
        assert!(!shown.to_string().contains(PASSWORD), "secret in {shown}");
        assert!(
            !shown.to_string().contains("apiuser-1"),
            "username in {shown}"
        );
    }

    let (status, _) = server
        .send(reqwest::Method::DELETE, "/v1/integrations/dd-main", None)
        .await;
    assert_eq!(status, 204);
    let (status, gone) = server
        .send(reqwest::Method::GET, "/v1/integrations/dd-main", None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(gone["error"], "no integration `dd-main`");
}

#[tokio::test]
async fn bad_integrations_get_400s_that_say_what_to_fix() {
    let server = Server::start();
    // Seed-style example with a trailing comma, as users paste them.
    let pasted = "{\n    \"type_id\": \"dotdigital\",\n    \"mappings\": [\n        {\"id\": \"A\", \"value\": \"b\",}\n    ]\n}";
    let (status, body) = server
        .send(reqwest::Method::POST, "/v1/integrations", Some(pasted))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        (body["line"].as_u64(), body["column"].as_u64()),
        (Some(4), Some(34)),
        "{body}"
    );
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON at line 4, column 34: trailing comma"),
        "{body}"
    );

    let mut unknown = dotdigital(None);
    unknown["type_id"] = json!("mailchimp");
    let (status, body) = server
        .send(
            reqwest::Method::POST,
            "/v1/integrations",
            Some(&unknown.to_string()),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"],
        "type_id: unknown connector type `mailchimp` (loaded: dotdigital)"
    );

    // The connector's derived JSON Schema, checked by the host, and the
    // host's URL rule: every problem at once, in path order, and never the
    // value (a password given as a number is not quoted back).
    let invalid = json!({
        "type_id": "dotdigital",
        "authentication": {"url": "ftp://x", "username": "u", "password": 73_519_246, "token": "t"},
        "properties": {"identifier": "fax"},
        "mappings": []
    });
    let (status, body) = server
        .send(
            reqwest::Method::POST,
            "/v1/integrations",
            Some(&invalid.to_string()),
        )
        .await;
    assert_eq!(status, 400);
    let shown: Vec<String> = body["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("no problems in {body}"))
        .iter()
        .map(|p| {
            format!(
                "{}: {}",
                p["path"].as_str().unwrap(),
                p["message"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            "authentication.password: must be a string",
            "authentication.token: unknown field (expected one of: password, url, username)",
            "authentication.url: must be an http:// or https:// URL (or a bare host, meaning https)",
            "mappings: must not be empty",
            "properties.identifier: must be one of: email, mobileNumber, contactId",
        ],
        "{body}"
    );
    assert!(!body.to_string().contains("73519246"), "{body}");

    let (status, body) = server
        .send(
            reqwest::Method::POST,
            "/v1/integrations",
            Some("{\"mappings\": []}"),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("type_id: is required"))
    );
    let (status, body) = server
        .send(reqwest::Method::POST, "/v1/integrations", Some("[1, 2]"))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("an integration must be a JSON object"))
    );

    let (status, list) = server
        .send(reqwest::Method::GET, "/v1/integrations", None)
        .await;
    assert_eq!((status, list), (200, json!([])), "nothing was stored");
}

#[tokio::test]
async fn admin_endpoints_need_the_token_and_health_does_not() {
    let server = Server::start();
    let client = server.client();
    let no_token = client
        .get(format!("{}/v1/integrations", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status().as_u16(), 401);
    let wrong = client
        .get(format!("{}/v1/integrations", server.url))
        .bearer_auth("test-admin-token-9999999999")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let health = client
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let ready: Value = client
        .get(format!("{}/readyz", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["connectors"], json!(["dotdigital"]));
}

pub(crate) fn event(id: &str, at: &str, user: &str, consents: Value, metadata: Value) -> String {
    json!({
        "id": id,
        "created_at": at,
        "status": "confirmed",
        "user": {"organization_user_id": user, "metadata": metadata},
        "consents": consents
    })
    .to_string()
}

impl Server {
    /// Polls `GET {path}` (a list) every 50 ms until it holds `count` items,
    /// for at most 20 s.
    pub(crate) async fn wait_for_list(&self, path: &str, count: usize) -> Value {
        for _ in 0..400 {
            let (_, list) = self.send(reqwest::Method::GET, path, None).await;
            if list.as_array().is_some_and(|l| l.len() >= count) {
                return list;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("timed out waiting for {count} items at {path}");
    }

    /// `user`'s audit rows from its history, of one integration or all.
    pub(crate) async fn attempts(&self, user: &str, integration: Option<&str>) -> Vec<Value> {
        let (_, history) = self
            .send(
                reqwest::Method::GET,
                &format!("/v1/users/{user}/history"),
                None,
            )
            .await;
        history["attempts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| integration.is_none_or(|i| a["integration_id"] == i))
            .cloned()
            .collect()
    }

    /// The outcomes of `user`'s attempts, in order.
    pub(crate) async fn outcomes(&self, user: &str, integration: Option<&str>) -> Vec<String> {
        self.attempts(user, integration)
            .await
            .iter()
            .map(|a| a["outcome"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Polls the outcomes every 50 ms, for at most 20 s, until `done` says so.
    pub(crate) async fn wait_outcomes(
        &self,
        user: &str,
        integration: Option<&str>,
        done: impl Fn(&[String]) -> bool,
    ) -> Vec<String> {
        for _ in 0..400 {
            let outcomes = self.outcomes(user, integration).await;
            if done(&outcomes) {
                return outcomes;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "timed out waiting on {user}'s attempts: {:?}",
            self.outcomes(user, integration).await
        );
    }
}

/// Polls `check` every 50 ms for up to 20 s.
pub(crate) async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..400 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn events_reach_the_destination_once_per_meaningful_change() {
    use prefsync_tests::mocks::dotdigital::{Dotdigital, FieldType};
    let mock = Dotdigital::start(
        "apiuser-1@apiconnector.com",
        PASSWORD,
        &[
            ("NEWSLETTER", FieldType::Boolean),
            ("EMAIL_OPTIN", FieldType::Boolean),
        ],
    )
    .await
    .unwrap();
    let server = Server::start();
    let mut integration = dotdigital(Some("dd"));
    integration["authentication"]["url"] = json!(mock.url());
    integration["mappings"] = json!([
        {"id": "NEWSLETTER", "value": "consents_purposes_newsletter_enabled"},
        {"id": "EMAIL_OPTIN", "value": "consents_channels_email_enabled"}
    ]);
    let (status, body) = server
        .send(
            reqwest::Method::POST,
            "/v1/integrations",
            Some(&integration.to_string()),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let user = "ann@example.com";
    let post = |body: String| {
        let server = &server;
        async move {
            server
                .send(reqwest::Method::POST, "/v1/events", Some(&body))
                .await
        }
    };
    let (status, body) = post(event(
        "e1",
        "2026-11-23T10:00:00Z",
        user,
        json!({"purposes": [{"id": "newsletter", "enabled": true}]}),
        json!({}),
    ))
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["events"][0]["deliveries"], json!(["dd"]));
    eventually("the contact created with NEWSLETTER", || {
        mock.state
            .contact(user)
            .is_some_and(|c| c.data_fields.get("NEWSLETTER") == Some(&json!(true)))
    })
    .await;

    // The same event again: harmless.
    let (status, body) = post(event(
        "e1",
        "2026-11-23T10:00:00Z",
        user,
        json!({"purposes": [{"id": "newsletter", "enabled": true}]}),
        json!({}),
    ))
    .await;
    assert_eq!((status, body["duplicates"].as_u64()), (202, Some(1)));
    // An older event arriving late does not overwrite the newer value.
    let (status, _) = post(event(
        "e0",
        "2026-11-23T09:00:00Z",
        user,
        json!({"purposes": [{"id": "newsletter", "enabled": false}]}),
        json!({}),
    ))
    .await;
    assert_eq!(status, 202);
    // A change to a property no mapping reads sends nothing.
    let (status, body) = post(event(
        "e2",
        "2026-11-23T11:00:00Z",
        user,
        json!({}),
        json!({"firstname": "Ann"}),
    ))
    .await;
    assert_eq!(status, 202);
    assert_eq!(body["events"][0]["deliveries"], json!([]));
    // A mapped change is delivered.
    let (status, _) = post(event(
        "e3",
        "2026-11-23T12:00:00Z",
        user,
        json!({"channels": [{"id": "email", "enabled": false}]}),
        json!({}),
    ))
    .await;
    assert_eq!(status, 202);
    eventually("EMAIL_OPTIN delivered", || {
        mock.state
            .contact(user)
            .is_some_and(|c| c.data_fields.get("EMAIL_OPTIN") == Some(&json!(false)))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        mock.state.requests_with("PATCH").len(),
        2,
        "one delivery per meaningful change"
    );
    assert_eq!(
        serde_json::Value::Object(mock.state.contact(user).unwrap().data_fields),
        json!({"NEWSLETTER": true, "EMAIL_OPTIN": false})
    );

    let (status, shown) = server
        .send(reqwest::Method::GET, &format!("/v1/users/{user}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        shown["properties"]["consents_purposes_newsletter_enabled"],
        true
    );
    assert_eq!(shown["properties"]["metadata_firstname"], "Ann");

    let metrics = server.metrics().await;
    for line in [
        "prefsync_events_total{result=\"recorded\"} 4",
        "prefsync_events_total{result=\"duplicate\"} 1",
        "prefsync_deliveries_total{integration=\"dd\",outcome=\"delivered\",change=\"created\"} 1",
        "prefsync_deliveries_total{integration=\"dd\",outcome=\"delivered\",change=\"updated\"} 1",
        "prefsync_queue_pending_deliveries{integration=\"dd\"} 0",
        "prefsync_queue_oldest_pending_age_seconds{integration=\"dd\"} 0.0",
        "prefsync_dead_letters{integration=\"dd\"} 0",
        "prefsync_connector_http_responses_total{connector=\"dotdigital\",status=\"201\"} 1",
        "prefsync_connector_call_duration_seconds_count{connector=\"dotdigital\"} 2",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing from:\n{metrics}"
        );
    }
}

#[tokio::test]
async fn bad_events_are_refused_and_nothing_is_stored() {
    let server = Server::start();
    let cases: [(&str, Option<&str>, u16, &str); 3] = [
        (
            "{\"id\": \"x\",}",
            Some("application/json"),
            400,
            "invalid JSON at line 1, column 12: trailing comma",
        ),
        (
            &event("e1", "2026-11-23T10:00:00Z", "", json!({}), json!({})),
            Some("application/json"),
            400,
            "user.organization_user_id",
        ),
        (
            "{}",
            Some("text/plain"),
            415,
            "unsupported content type `text/plain`",
        ),
    ];
    for (body, content_type, expected, says) in cases {
        let mut request = server
            .client()
            .post(format!("{}/v1/events", server.url))
            .bearer_auth(TOKEN)
            .body(body.to_string());
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), expected, "{body}");
        let answer: Value = response.json().await.unwrap();
        assert!(answer["error"].as_str().unwrap().contains(says), "{answer}");
    }
    let oversized = server
        .client()
        .post(format!("{}/v1/events", server.url))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(
        oversized.status().as_u16(),
        413,
        "bodies over server.max_body_bytes are refused"
    );
    let unauthorised = server
        .client()
        .post(format!("{}/v1/events", server.url))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorised.status().as_u16(), 401);
    let (status, _) = server
        .send(reqwest::Method::GET, "/v1/users/ann@example.com", None)
        .await;
    assert_eq!(status, 404, "nothing was stored");
}

#[tokio::test]
async fn failures_are_retried_then_dead_lettered_and_replay_delivers() {
    use prefsync_tests::mocks::dotdigital::Fault;
    let mock = mock_dotdigital().await;
    let server = Server::start();
    let mut integration = dotdigital(Some("dd"));
    integration["authentication"]["url"] = json!(mock.url());
    // A fast policy for the test: 5 retries 50 ms apart.
    integration["retry"] = json!({"max_retries": 5, "initial_backoff_ms": 50, "multiplier": 1.0, "max_backoff_ms": 50, "jitter": 0.0});
    let (status, body) = server
        .send(
            reqwest::Method::POST,
            "/v1/integrations",
            Some(&integration.to_string()),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    // Five failures, then the destination answers: delivered on the sixth attempt.
    mock.state.push_faults((0..5).map(|_| Fault::Status(503)));
    let newsletter = |id: &str, at: &str, user: &str, on: bool| {
        event(
            id,
            at,
            user,
            json!({"purposes": [{"id": "newsletter", "enabled": on}]}),
            json!({}),
        )
    };
    let (status, _) = server
        .send(
            reqwest::Method::POST,
            "/v1/events",
            Some(&newsletter(
                "e1",
                "2026-11-23T10:00:00Z",
                "flaky@example.com",
                true,
            )),
        )
        .await;
    assert_eq!(status, 202);
    eventually("delivery after five failures", || {
        mock.state.contact("flaky@example.com").is_some()
    })
    .await;
    let (_, history) = server
        .send(
            reqwest::Method::GET,
            "/v1/users/flaky@example.com/history",
            None,
        )
        .await;
    let outcomes: Vec<&str> = history["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["failed:retryable"; 5]
            .iter()
            .copied()
            .chain(["delivered:created"])
            .collect::<Vec<_>>()
    );
    assert_eq!(history["attempts"][5]["connector_type"], "dotdigital");
    assert_eq!(history["attempts"][5]["http_statuses"], json!([201]));

    // Down for good: after the last retry the delivery is parked, not dropped.
    mock.state.set_outage(Some(Fault::Status(503)));
    let (status, _) = server
        .send(
            reqwest::Method::POST,
            "/v1/events",
            Some(&newsletter(
                "e2",
                "2026-11-23T10:00:00Z",
                "down@example.com",
                true,
            )),
        )
        .await;
    assert_eq!(status, 202);
    let dead = server
        .wait_for_list("/v1/dead-letters?integration=dd", 1)
        .await;
    assert_eq!(dead[0]["organization_user_id"], "down@example.com");
    assert_eq!(dead[0]["attempts"], 6);
    assert!(
        dead[0]["last_error"].as_str().unwrap().contains("HTTP 503"),
        "{dead}"
    );
    assert!(mock.state.contact("down@example.com").is_none());

    // The destination is back: replay delivers.
    mock.state.set_outage(None);
    let id = dead[0]["id"].as_i64().unwrap();
    let (status, body) = server
        .send(
            reqwest::Method::POST,
            &format!("/v1/dead-letters/{id}/replay"),
            None,
        )
        .await;
    assert_eq!(status, 202, "{body}");
    eventually("delivery after replay", || {
        mock.state.contact("down@example.com").is_some()
    })
    .await;
    let (status, _) = server
        .send(
            reqwest::Method::POST,
            &format!("/v1/dead-letters/{id}/replay"),
            None,
        )
        .await;
    assert_eq!(status, 404, "a dead letter is replayed once");
    let (status, body) = server
        .send(
            reqwest::Method::GET,
            "/v1/deliveries?integration=dd&status=done",
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body.as_array().unwrap().len(), 2, "{body}");
    let (status, body) = server
        .send(reqwest::Method::GET, "/v1/deliveries?status=sideways", None)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (
            400,
            Some("status: `sideways` is not one of pending, in_flight, done")
        )
    );

    let mut bad_policy = dotdigital(Some("dd2"));
    bad_policy["retry"] = json!({"jitter": 3});
    let (status, body) = server
        .send(
            reqwest::Method::POST,
            "/v1/integrations",
            Some(&bad_policy.to_string()),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("retry.jitter: must be at least 0 and below 1"))
    );
}

#[tokio::test]
async fn integrations_are_loaded_from_a_directory_and_a_bad_file_stops_the_start() {
    let server = Server::try_start("", |dir| {
        let integrations = dir.join("integrations");
        std::fs::create_dir_all(&integrations).unwrap();
        std::fs::write(
            integrations.join("dd-from-file.json"),
            dotdigital(None).to_string(),
        )
        .unwrap();
        format!("[integrations]\ndir = {integrations:?}\n")
    })
    .unwrap();
    let (status, shown) = server
        .send(reqwest::Method::GET, "/v1/integrations/dd-from-file", None)
        .await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["authentication"]["password"], "[REDACTED]");
    drop(server);

    let error = Server::try_start("", |dir| {
        let integrations = dir.join("integrations");
        std::fs::create_dir_all(&integrations).unwrap();
        std::fs::write(
            integrations.join("broken.json"),
            "{\n  \"type_id\": \"dotdigital\",\n}",
        )
        .unwrap();
        format!("[integrations]\ndir = {integrations:?}\n")
    })
    .err()
    .expect("a broken integration file stops the start");
    assert!(
        error.contains("broken.json: invalid JSON at line 3, column 1: trailing comma"),
        "{error}"
    );
}

#[tokio::test]
async fn secrets_stay_out_of_the_log_and_sigterm_stops_cleanly() {
    use prefsync_tests::mocks::dotdigital::{Dotdigital, FieldType};
    // The mock refuses this password, so it travels through error paths.
    let mock = Dotdigital::start(
        "apiuser-1@apiconnector.com",
        "the-right-one",
        &[("NEWSLETTER", FieldType::Boolean)],
    )
    .await
    .unwrap();
    let server = Server::start();
    let mut integration = dotdigital(Some("dd"));
    integration["authentication"]["url"] = json!(mock.url());
    let (status, _) = server
        .send(
            reqwest::Method::POST,
            "/v1/integrations",
            Some(&integration.to_string()),
        )
        .await;
    assert_eq!(status, 201);
    let body = event(
        "e1",
        "2026-11-23T10:00:00Z",
        "ann@example.com",
        json!({"purposes": [{"id": "newsletter", "enabled": true}]}),
        json!({}),
    );
    let (status, _) = server
        .send(reqwest::Method::POST, "/v1/events", Some(&body))
        .await;
    assert_eq!(status, 202);
    eventually("the refused delivery", || !mock.state.requests().is_empty()).await;
    let dead = server.wait_for_list("/v1/dead-letters", 1).await;
    assert!(
        dead[0]["last_error"].as_str().unwrap().contains("HTTP 401"),
        "{dead}"
    );
    let (clean, log) = server.terminate();
    assert!(clean, "SIGTERM ends the server cleanly:\n{log}");
    assert!(
        log.contains("dotdigital"),
        "the debug log was captured:\n{log}"
    );
    for secret in [PASSWORD, TOKEN, "apiuser-1@apiconnector.com"] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
        assert!(!dead.to_string().contains(secret), "{secret} in {dead}");
    }
}

#[tokio::test]
async fn the_ingest_token_opens_events_only_and_pending_events_change_nothing() {
    const INGEST: &str = "ingest-token-0123456789abc";
    let server =
        Server::try_start(&format!("ingest_token = \"{INGEST}\""), |_| String::new()).unwrap();
    let client = server.client();
    let pending = json!({
        "id": "p1", "created_at": "2026-11-23T10:00:00Z", "status": "pending_approval",
        "user": {"organization_user_id": "pat@example.com"},
        "consents": {"purposes": [{"id": "newsletter", "enabled": true}]}
    });
    let accepted = client
        .post(format!("{}/v1/events", server.url))
        .bearer_auth(INGEST)
        .json(&pending)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status().as_u16(), 202);
    let refused = client
        .get(format!("{}/v1/integrations", server.url))
        .bearer_auth(INGEST)
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.status().as_u16(),
        401,
        "the ingest token is not an admin token"
    );
    // Recorded in the history, but the state did not change.
    let (status, history) = server
        .send(
            reqwest::Method::GET,
            "/v1/users/pat@example.com/history",
            None,
        )
        .await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(history["events"][0]["status"], "pending_approval");
    let (status, _) = server
        .send(reqwest::Method::GET, "/v1/users/pat@example.com", None)
        .await;
    assert_eq!(status, 404, "no state from a pending event");
}

#[tokio::test]
async fn unknown_ids_get_404s_and_replay_all_of_an_integration_works() {
    let server = Server::start();
    let (status, body) = server
        .send(
            reqwest::Method::PUT,
            "/v1/integrations/nope",
            Some(&dotdigital(None).to_string()),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("no integration `nope`"))
    );
    let (status, _) = server
        .send(reqwest::Method::DELETE, "/v1/integrations/nope", None)
        .await;
    assert_eq!(status, 404);
    let (status, body) = server
        .send(
            reqwest::Method::PUT,
            "/v1/integrations/a",
            Some(&dotdigital(Some("b")).to_string()),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = server
        .send(reqwest::Method::POST, "/v1/dead-letters/abc/replay", None)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("id: `abc` is not a dead-letter id (a number)"))
    );
    let (status, _) = server
        .send(reqwest::Method::POST, "/v1/dead-letters/99/replay", None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = server
        .send(
            reqwest::Method::POST,
            "/v1/integrations/nope/dead-letters/replay",
            None,
        )
        .await;
    assert_eq!(status, 404);

    // Replay of every dead letter of an integration.
    use prefsync_tests::mocks::dotdigital::Fault;
    let mock = mock_dotdigital().await;
    mock.state.set_outage(Some(Fault::Status(400)));
    let mut integration = dotdigital(Some("dd"));
    integration["authentication"]["url"] = json!(mock.url());
    let (status, _) = server
        .send(
            reqwest::Method::POST,
            "/v1/integrations",
            Some(&integration.to_string()),
        )
        .await;
    assert_eq!(status, 201);
    for (n, user) in ["a@example.com", "b@example.com"].iter().enumerate() {
        let body = event(
            &format!("e{n}"),
            "2026-11-23T10:00:00Z",
            user,
            json!({"purposes": [{"id": "newsletter", "enabled": true}]}),
            json!({}),
        );
        let (status, _) = server
            .send(reqwest::Method::POST, "/v1/events", Some(&body))
            .await;
        assert_eq!(status, 202);
    }
    server
        .wait_for_list("/v1/dead-letters?integration=dd", 2)
        .await;
    mock.state.set_outage(None);
    let (status, body) = server
        .send(
            reqwest::Method::POST,
            "/v1/integrations/dd/dead-letters/replay",
            None,
        )
        .await;
    assert_eq!((status, body["replayed"].as_u64()), (202, Some(2)));
    eventually("both replayed deliveries", || {
        mock.state.contacts().len() == 2
    })
    .await;
}
