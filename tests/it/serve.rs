//! `prefsync serve`, as a real process on loopback with a real SQLite file.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use prefsync_tests::guests;
use prefsync_tests::support::prefsync_bin;
use serde_json::{Value, json};

const TOKEN: &str = "test-admin-token-0123456789";
const PASSWORD: &str = "Sup3r-Secret-Pw";

/// A running `prefsync serve`; killed when dropped.
struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        std::fs::create_dir_all(&plugins).unwrap();
        std::fs::copy(guests::DOTDIGITAL, plugins.join("dotdigital.wasm")).unwrap();
        // Not a connector: the host must skip it and keep going.
        std::fs::write(plugins.join("broken.wasm"), b"not wasm").unwrap();
        let config = dir.path().join("prefsync.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:0\"\nadmin_token = \"{TOKEN}\"\n\
                 [storage]\ndata_dir = {:?}\n[plugins]\ndir = {:?}\n\
                 [egress]\nallow_loopback = true\nallow_http = true\n",
                dir.path().join("data"),
                plugins
            ),
        )
        .unwrap();
        let mut child = Command::new(prefsync_bin())
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("prefsync listening on ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("prefsync serve started");
        Server {
            child,
            url,
            _dir: dir,
        }
    }

    fn client(&self) -> reqwest::Client {
        reqwest::Client::new()
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<&str>) -> (u16, Value) {
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

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dotdigital(id: Option<&str>) -> Value {
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

    let invalid = json!({"type_id": "dotdigital", "authentication": {"url": "ftp://x", "username": "u"}, "mappings": []});
    let (status, body) = server
        .send(
            reqwest::Method::POST,
            "/v1/integrations",
            Some(&invalid.to_string()),
        )
        .await;
    assert_eq!(status, 400);
    let paths: Vec<&str> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["authentication.url", "authentication.password", "mappings"],
        "{body}"
    );

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
