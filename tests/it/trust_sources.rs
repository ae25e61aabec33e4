//! Issue 14, items 1 and 2, through a real `prefsync serve`: activation
//! sources read only files under `[activations] source_dir` and never the
//! store's own database; errors about a source never echo what it holds;
//! the warnings webhook and PostgreSQL sources obey `[egress]` like
//! connector traffic. Every listener is on loopback; refused addresses are
//! decisions, no packet leaves.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::serve::Server;

/// In the header of files activations must not echo.
const HEADER_TOKEN: &str = "HEADER-TOKEN-7f3a";
/// A PostgreSQL source's password.
const PG_PASSWORD: &str = "Pg-Source-Pw-91c2";

/// A server whose file sources may read `<temp dir>/<sub>` (the temp dir
/// itself for `""`, which also holds the store's data directory), with the
/// Dotdigital integration `dd` activations write to.
async fn server_reading(sub: &str, egress: Option<&str>) -> Server {
    let sub = sub.to_string();
    let egress = egress.map(str::to_string);
    let server = Server::try_start("", move |dir| {
        let models = dir.join(&sub);
        std::fs::create_dir_all(&models).unwrap();
        let mut extra = format!("[activations]\npoll_ms = 100\nsource_dir = {models:?}\n");
        if let Some(egress) = egress {
            extra.push_str(&format!("[egress]\n{egress}\n"));
        }
        extra
    })
    .expect("prefsync serve started");
    server
        .create_integration(&crate::serve::dotdigital(Some("dd")))
        .await;
    server
}

fn root(server: &Server) -> std::path::PathBuf {
    server.data_dir().parent().unwrap().to_path_buf()
}

/// An activation of `source` into `dd`, mapping columns a test CSV lacks
/// only when it says so.
fn activation(id: &str, source: Value) -> Value {
    json!({
        "id": id,
        "integration": "dd",
        "source": source,
        "key": {"column": "email", "field": "EMAIL"},
        "mappings": [{"id": "FIRSTNAME", "value": "first_name"}]
    })
}

async fn post(server: &Server, config: &Value) -> (u16, Value) {
    server
        .send(
            reqwest::Method::POST,
            "/v1/activations",
            Some(&config.to_string()),
        )
        .await
}

async fn listed(server: &Server) -> Value {
    server
        .send(reqwest::Method::GET, "/v1/activations", None)
        .await
        .1
}

/// Asserts a 422 naming `field`, and returns its message.
fn refused(status: u16, body: &Value, field: &str) -> String {
    assert_eq!(status, 422, "{body}");
    assert_eq!(crate::serve::problem_paths(body), [field], "{body}");
    body["error"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn file_sources_outside_the_source_dir_or_in_the_store_are_refused() {
    // source_dir is the whole temp dir: it holds the data directory too.
    let server = server_reading("", None).await;
    let root = root(&server);
    std::fs::write(root.join("outside.csv"), format!("email,{HEADER_TOKEN}\n")).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let secret = elsewhere.path().join("secret.csv");
    std::fs::write(&secret, format!("email,{HEADER_TOKEN}\n")).unwrap();
    std::os::unix::fs::symlink(&secret, root.join("link.csv")).unwrap();
    std::os::unix::fs::symlink(server.data_dir(), root.join("store")).unwrap();
    let database = server.data_dir().join("prefsync.db");
    // Refused whether the file is there (SQLite store) or not (PostgreSQL).
    assert!(server.data_dir().is_dir());

    let csv = |path: &str| json!({"type": "csv", "path": path});
    let sqlite = |url: String| json!({"type": "sql", "url": url, "query": "SELECT id AS email, config AS first_name FROM integrations"});
    let cases = [
        (csv("/etc/passwd"), "source.path", "outside"),
        (csv("../../../../etc/passwd"), "source.path", "outside"),
        (csv("/proc/self/environ"), "source.path", "outside"),
        (csv("link.csv"), "source.path", "outside"),
        (csv("data/prefsync.db"), "source.path", "data directory"),
        (
            csv("store/prefsync.db-wal"),
            "source.path",
            "data directory",
        ),
        (
            sqlite(format!("sqlite://{}", database.display())),
            "source.url",
            "data directory",
        ),
        (
            sqlite("sqlite:data/prefsync.db".into()),
            "source.url",
            "data directory",
        ),
        (
            sqlite("sqlite:store/prefsync.db".into()),
            "source.url",
            "data directory",
        ),
    ];
    for (index, (source, field, why)) in cases.iter().enumerate() {
        let config = activation(&format!("a{index}"), source.clone());
        let (status, body) = post(&server, &config).await;
        let message = refused(status, &body, field);
        assert!(message.contains(why), "{source}: {message}");
        assert!(!body.to_string().contains(HEADER_TOKEN), "{body}");
        // PUT checks the same way.
        let (status, body) = server
            .send(
                reqwest::Method::PUT,
                &format!("/v1/activations/a{index}"),
                Some(&config.to_string()),
            )
            .await;
        refused(status, &body, field);
    }
    assert_eq!(listed(&server).await, json!([]), "nothing stored");

    // The rule refuses what it must, not everything.
    let (status, body) = post(&server, &activation("ok", csv("outside.csv"))).await;
    assert_eq!(status, 201, "{body}");
    let (_, log) = server.terminate();
    assert!(!log.contains(HEADER_TOKEN), "{log}");
}

#[tokio::test]
async fn without_a_source_dir_file_sources_are_disabled_saying_how_to_enable_them() {
    let server = Server::start();
    server
        .create_integration(&crate::serve::dotdigital(Some("dd")))
        .await;
    let (status, body) = post(
        &server,
        &activation("users", json!({"type": "csv", "path": "users.csv"})),
    )
    .await;
    let message = refused(status, &body, "source.path");
    assert!(
        message.contains("file sources are disabled")
            && message.contains("source_dir")
            && message.contains("[activations]"),
        "{message}"
    );
    let (status, body) = post(
        &server,
        &activation(
            "db",
            json!({"type": "sql", "url": "sqlite:model.db", "query": "SELECT 1 AS email"}),
        ),
    )
    .await;
    refused(status, &body, "source.url");
    assert_eq!(listed(&server).await, json!([]));
}

#[tokio::test]
async fn activation_files_with_a_refused_source_stop_the_start() {
    let error = Server::try_start("", |dir| {
        let activations = dir.join("activations");
        std::fs::create_dir_all(&activations).unwrap();
        std::fs::write(
            activations.join("passwd.json"),
            activation("passwd", json!({"type": "csv", "path": "/etc/passwd"})).to_string(),
        )
        .unwrap();
        let integrations = dir.join("integrations");
        std::fs::create_dir_all(&integrations).unwrap();
        std::fs::write(
            integrations.join("dd.json"),
            crate::serve::dotdigital(Some("dd")).to_string(),
        )
        .unwrap();
        format!(
            "[integrations]\ndir = {integrations:?}\n[activations]\ndir = {activations:?}\nsource_dir = {:?}\n",
            dir.join("connectors")
        )
    })
    .err()
    .expect("the start fails");
    assert!(
        error.contains("passwd.json") && error.contains("source.path") && error.contains("outside"),
        "{error}"
    );
}

#[tokio::test]
async fn a_file_swapped_for_a_symlink_after_it_was_stored_fails_the_run_unread() {
    let server = server_reading("models", None).await;
    let models = root(&server).join("models");
    let csv = models.join("users.csv");
    std::fs::write(&csv, "email,first_name\nann@example.com,Ann\n").unwrap();
    let (status, body) = post(
        &server,
        &activation("users", json!({"type": "csv", "path": "users.csv"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let elsewhere = tempfile::tempdir().unwrap();
    let secret = elsewhere.path().join("secret.csv");
    std::fs::write(
        &secret,
        format!("email,first_name\n{HEADER_TOKEN}@example.com,{HEADER_TOKEN}\n"),
    )
    .unwrap();
    std::fs::remove_file(&csv).unwrap();
    std::os::unix::fs::symlink(&secret, &csv).unwrap();

    let run = server.run_activation("users", "").await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["summary"]["rows_read"], 0, "{run}");
    let error = run["summary"]["error"].as_str().unwrap();
    assert!(
        error.starts_with("source.path: `users.csv` is outside the source directory"),
        "{error}"
    );
    let (_, runs) = server
        .send(reqwest::Method::GET, "/v1/activations/users/runs", None)
        .await;
    assert!(!runs.to_string().contains(HEADER_TOKEN), "{runs}");
    let (_, log) = server.terminate();
    assert!(!log.contains(HEADER_TOKEN), "{log}");
}

#[tokio::test]
async fn a_missing_column_is_named_without_the_header_values() {
    let server = server_reading("models", None).await;
    let models = root(&server).join("models");
    std::fs::write(
        models.join("users.csv"),
        format!("email,{HEADER_TOKEN},city\nann@example.com,x,Lyon\n"),
    )
    .unwrap();
    let (status, body) = post(
        &server,
        &activation("users", json!({"type": "csv", "path": "users.csv"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let run = server.run_activation("users", "").await;
    assert_eq!(run["status"], "failed", "{run}");
    let error = run["summary"]["error"].as_str().unwrap();
    assert_eq!(
        error,
        "column `first_name` (mappings[0].value) is not in the source (it has 3 columns)"
    );
    let mut answers = vec![run.clone()];
    for path in [
        "/v1/activations",
        "/v1/activations/users",
        "/v1/activations/users/runs",
    ] {
        answers.push(server.send(reqwest::Method::GET, path, None).await.1);
    }
    for answer in &answers {
        assert!(!answer.to_string().contains(HEADER_TOKEN), "{answer}");
    }
    let (_, log) = server.terminate();
    assert!(!log.contains(HEADER_TOKEN), "{log}");
}

/// A loopback HTTP listener that counts the connections it gets and
/// answers each request with `response`.
struct Listener {
    url: String,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    async fn start(response: String) -> Listener {
        let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", socket.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = socket.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let response = response.clone();
                tokio::spawn(async move {
                    // Read the head and the body it announces, then answer.
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 4096];
                    while request.len() < 1 << 20 {
                        let Ok(read) = stream.read(&mut buffer).await else {
                            return;
                        };
                        if read == 0 {
                            return;
                        }
                        request.extend_from_slice(&buffer[..read]);
                        let text = String::from_utf8_lossy(&request);
                        if let Some(end) = text.find("\r\n\r\n") {
                            let length = text[..end]
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length:")
                                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                                })
                                .unwrap_or(0);
                            if request.len() >= end + 4 + length {
                                break;
                            }
                        }
                    }
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Listener {
            url,
            connections,
            task,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An activation whose runs fail (its CSV lacks a mapped column), so every
/// run posts a warning to `webhook`.
async fn failing_with_webhook(server: &Server, id: &str, webhook: &str) {
    std::fs::write(
        root(server).join("models").join("users.csv"),
        "email,city\nann@example.com,Lyon\n",
    )
    .unwrap();
    let mut config = activation(id, json!({"type": "csv", "path": "users.csv"}));
    config["warnings"] = json!({"webhook_url": webhook});
    let (status, body) = post(server, &config).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn the_warnings_webhook_is_not_posted_to_where_egress_forbids() {
    let hook = Listener::start("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n".into()).await;
    let server = server_reading("models", Some("allow_http = true")).await;
    // An address checked before DNS, and a name checked after it.
    let by_name = hook.url.replace("127.0.0.1", "localhost");
    for (id, url, host) in [
        ("literal", &hook.url, "host 127.0.0.1"),
        ("named", &by_name, "host localhost"),
    ] {
        failing_with_webhook(&server, id, url).await;
        let run = server.run_activation(id, "").await;
        assert_eq!(run["status"], "failed", "{run}");
        let notice = &run["summary"]["notice"];
        assert_eq!(notice["posted"], false, "{run}");
        let error = notice["error"].as_str().unwrap();
        assert!(
            error.contains(host) && error.contains("egress.allow_loopback is off"),
            "{error}"
        );
        assert_eq!(hook.connections(), 0, "the listener was reached");
    }
    let (_, log) = server.terminate();
    assert!(
        log.contains("the warnings webhook could not be reached"),
        "{log}"
    );
    assert_eq!(hook.connections(), 0);
}

#[tokio::test]
async fn a_redirect_from_the_warnings_webhook_is_not_followed() {
    let target =
        Listener::start("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n".into()).await;
    let hook = Listener::start(format!(
        "HTTP/1.1 307 Temporary Redirect\r\nLocation: {}\r\nContent-Length: 0\r\n\r\n",
        target.url
    ))
    .await;
    let server = server_reading("models", None).await;
    failing_with_webhook(&server, "users", &hook.url).await;
    let run = server.run_activation("users", "").await;
    let notice = &run["summary"]["notice"];
    assert_eq!(notice["posted"], false, "{run}");
    assert!(
        notice["error"]
            .as_str()
            .unwrap()
            .contains("307 Temporary Redirect (redirects are not followed)"),
        "{run}"
    );
    assert_eq!(hook.connections(), 1);
    assert_eq!(target.connections(), 0, "the redirect was followed");
}

#[tokio::test]
async fn webhook_urls_are_checked_when_stored() {
    let server = server_reading("models", None).await;
    for url in [
        "ftp://hooks.example.com/x",
        "hooks.example.com/x",
        "https://user:Hunter2-hook@hooks.example.com/x",
    ] {
        let mut config = activation("users", json!({"type": "csv", "path": "users.csv"}));
        config["warnings"] = json!({"webhook_url": url});
        let (status, body) = post(&server, &config).await;
        refused(status, &body, "warnings.webhook_url");
        assert!(!body.to_string().contains("Hunter2-hook"), "{body}");
    }
}

/// The test PostgreSQL database with a password in its URL (the test
/// server trusts loopback, so it is never asked for).
async fn pg_model() -> String {
    let url = prefsync_tests::support::postgres_database().await;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute("CREATE TABLE people (mail TEXT PRIMARY KEY, given TEXT)")
        .await
        .unwrap();
    let mut with_password = reqwest::Url::parse(&url).unwrap();
    with_password.set_password(Some(PG_PASSWORD)).unwrap();
    with_password.to_string()
}

fn pg_source(url: &str) -> Value {
    json!({
        "type": "sql",
        "url": url,
        "query": "SELECT mail AS email, given AS first_name FROM people"
    })
}

#[tokio::test]
async fn a_postgres_source_on_loopback_needs_allow_loopback() {
    let model = pg_model().await;
    let by_name = model.replace("127.0.0.1", "localhost");
    assert_ne!(by_name, model, "the test server is on 127.0.0.1");

    let server = server_reading("models", Some("allow_http = true")).await;
    for (id, url) in [("literal", &model), ("named", &by_name)] {
        let (status, body) = post(&server, &activation(id, pg_source(url))).await;
        assert_eq!(status, 201, "{body}");
        let run = server.run_activation(id, "").await;
        assert_eq!(run["status"], "failed", "{run}");
        let error = run["summary"]["error"].as_str().unwrap();
        assert!(
            error.starts_with("source.url: PostgreSQL postgres://postgres:")
                && error.contains("egress.allow_loopback is off"),
            "{id}: {error}"
        );
        assert!(
            error.contains("host 127.0.0.1") || error.contains("host localhost"),
            "{error}"
        );
    }
    let listed = listed(&server).await;
    assert!(!listed.to_string().contains(PG_PASSWORD), "{listed}");
    let (_, runs) = server
        .send(reqwest::Method::GET, "/v1/activations/literal/runs", None)
        .await;
    assert!(!runs.to_string().contains(PG_PASSWORD), "{runs}");
    let (_, log) = server.terminate();
    assert!(!log.contains(PG_PASSWORD), "{log}");

    // Allowed, the same source is read (an empty model: a run that succeeds).
    let server = server_reading("models", None).await;
    for (id, url) in [("literal", &model), ("named", &by_name)] {
        let (status, body) = post(&server, &activation(id, pg_source(url))).await;
        assert_eq!(status, 201, "{body}");
        let run = server.run_activation(id, "").await;
        assert_eq!(run["status"], "succeeded", "{id}: {run}");
        assert!(!run.to_string().contains(PG_PASSWORD), "{run}");
    }
    let (_, log) = server.terminate();
    assert!(!log.contains(PG_PASSWORD), "{log}");
}
