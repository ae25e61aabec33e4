//! The server's log as an operator reads it: JSON lines with real fields
//! (`[log] format = "json"`), one line per request with its route, status,
//! duration and request id, start-up lines at the default level, no colour
//! codes when stderr is not a terminal, and no secret.

use prefsync_tests::support::ServeProcess;
use serde_json::Value;

const TOKEN: &str = "logs-admin-token-0123456789";

fn config(dir: &std::path::Path, log: &str) -> std::path::PathBuf {
    let connectors = dir.join("connectors");
    std::fs::create_dir_all(&connectors).unwrap();
    let path = dir.join("prefsync.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_token = \"{TOKEN}\"\n[storage]\ndata_dir = {:?}\n\
             [connectors]\ndir = {connectors:?}\n{log}",
            dir.join("data"),
        ),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn json_lines_carry_one_line_per_request_with_its_id_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        ServeProcess::start_logging(&config(dir.path(), "[log]\nformat = \"json\"\n"), "info")
            .expect("prefsync serve started");
    let client = reqwest::Client::new();
    let given = client
        .get(format!("{}/healthz", server.url))
        .header("X-Request-Id", "probe-1")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "probe-1");
    let made = client
        .get(format!("{}/v1/users/ann%0Aforged", server.url))
        .bearer_auth(TOKEN)
        .header("X-Request-Id", "a\tforged id")
        .send()
        .await
        .unwrap();
    assert_eq!(made.status().as_u16(), 404);
    let made_id = made.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(
        made_id.len() == 16 && made_id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{made_id}"
    );
    drop(client);
    let (clean, log) = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(clean, "{log}");

    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let requests: Vec<&Value> = lines.iter().filter(|l| l["message"] == "request").collect();
    assert_eq!(requests.len(), 2, "one line per request: {log}");
    let health = requests
        .iter()
        .find(|l| l["route"] == "/healthz")
        .expect("the health check's line");
    assert_eq!(health["level"], "INFO");
    assert_eq!(health["method"], "GET");
    assert_eq!(health["status"], 200);
    assert_eq!(health["request_id"], "probe-1");
    assert!(
        health["duration_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{health}"
    );
    let user = requests
        .iter()
        .find(|l| l["route"] == "/v1/users/{id}")
        .expect("the user's line");
    assert_eq!(user["status"], 404);
    assert_eq!(user["request_id"], made_id.as_str());
    // Start-up says what serves; the path's user id and the forged request
    // id stay out; so does every secret.
    assert!(
        lines.iter().any(|l| l["message"] == "connectors loaded"),
        "{log}"
    );
    assert!(!log.contains("forged"), "{log}");
    assert!(!log.contains(TOKEN), "{log}");
}

#[tokio::test]
async fn text_lines_have_no_colour_codes_off_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServeProcess::start_logging(&config(dir.path(), ""), "info").expect("started");
    reqwest::get(format!("{}/healthz", server.url))
        .await
        .unwrap();
    let (clean, log) = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(clean, "{log}");
    assert!(log.contains(" INFO "), "{log}");
    assert!(log.contains("request"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a piped log: {log:?}"
    );
}
