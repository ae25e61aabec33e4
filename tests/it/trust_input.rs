//! Input hygiene, through a real `prefsync serve` (issue 14, item 6): ids
//! follow one rule, every JSON endpoint wants `application/json`, 404, 405
//! and 413 answer with the JSON error body, creating an id is atomic,
//! config URLs are http(s) only, and request text cannot forge log lines.

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::serve::{PASSWORD, Server, TOKEN, dotdigital, event, mock_dotdigital};

/// An activation into integration `dd` whose source is never read by these
/// tests (nothing runs them).
fn activation(id: Option<&str>) -> Value {
    let mut config = json!({
        "integration": "dd",
        "source": {"type": "sql", "url": "postgres://model@127.0.0.1:9/model",
                   "query": "SELECT email, first_name FROM users"},
        "key": {"column": "email", "field": "email"},
        "mappings": [{"id": "FIRSTNAME", "value": "first_name"}]
    });
    if let Some(id) = id {
        config["id"] = json!(id);
    }
    config
}

/// A server with the Dotdigital integration `dd`.
async fn server_with_dd() -> Server {
    let server = Server::start();
    server.create_integration(&dotdigital(Some("dd"))).await;
    server
}

/// One HTTP/1.1 request written by hand, so the path reaches the server
/// exactly as given (an HTTP client resolves `.` and `..` segments).
async fn raw(server: &Server, method: &str, path: &str, body: &str) -> (u16, Value) {
    let address = server.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("an answer within 20 s")
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(json!(body)))
}

/// Whether an error answer names the field `id`: in its message or as the
/// path of one of its problems.
fn names_id(answer: &Value) -> bool {
    answer["error"]
        .as_str()
        .is_some_and(|e| e.starts_with("id:"))
        || answer["problems"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["path"] == "id"))
}

async fn ids_of(server: &Server, path: &str) -> Vec<String> {
    let (status, list) = server.send(Method::GET, path, None).await;
    assert_eq!(status, 200, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_string())
        .collect()
}

const BAD_IDS: [&str; 6] = [".", "..", ".hidden", "a/b", "a\nb", ""];

#[tokio::test]
async fn ids_outside_the_rule_are_refused_naming_id_and_nothing_is_stored() {
    let server = server_with_dd().await;
    let too_long = "a".repeat(65);
    for bad in BAD_IDS.into_iter().chain([too_long.as_str()]) {
        let (status, answer) = server
            .send(
                Method::POST,
                "/v1/integrations",
                Some(&dotdigital(Some(bad)).to_string()),
            )
            .await;
        assert_eq!(status, 400, "integration {bad:?}: {answer}");
        assert!(names_id(&answer), "integration {bad:?}: {answer}");

        let (status, answer) = server
            .send(
                Method::POST,
                "/v1/activations",
                Some(&activation(Some(bad)).to_string()),
            )
            .await;
        assert!(matches!(status, 400 | 422), "activation {bad:?}: {answer}");
        assert!(names_id(&answer), "activation {bad:?}: {answer}");

        // The same ids in the path of a PUT (an empty one is no route: 405).
        if bad.is_empty() {
            continue;
        }
        let in_path = bad.replace('/', "%2F").replace('\n', "%0A");
        for (collection, body) in [
            ("integrations", dotdigital(None)),
            ("activations", activation(None)),
        ] {
            let (status, answer) = raw(
                &server,
                "PUT",
                &format!("/v1/{collection}/{in_path}"),
                &body.to_string(),
            )
            .await;
            assert!(
                matches!(status, 400 | 422),
                "PUT {collection} {bad:?}: {status} {answer}"
            );
            assert!(names_id(&answer), "PUT {collection} {bad:?}: {answer}");
        }
    }
    assert_eq!(ids_of(&server, "/v1/integrations").await, ["dd"]);
    assert!(ids_of(&server, "/v1/activations").await.is_empty());

    // Ids in use stay valid, the generated ones too.
    server
        .create_integration(&dotdigital(Some("dd-2.v1_x")))
        .await;
    server.create_integration(&dotdigital(None)).await;
    server.create_activation(&activation(Some("users-1"))).await;
    assert_eq!(ids_of(&server, "/v1/integrations").await.len(), 3);
}

#[tokio::test]
async fn an_integration_file_named_outside_the_rule_stops_the_start() {
    let error = Server::try_start("", |dir| {
        let integrations = dir.join("integrations");
        std::fs::create_dir_all(&integrations).unwrap();
        // The id comes from the file name: `.`.
        std::fs::write(integrations.join("..json"), dotdigital(None).to_string()).unwrap();
        format!("[integrations]\ndir = {integrations:?}\n")
    })
    .err()
    .expect("the server refuses to start");
    assert!(error.contains("..json"), "{error}");
    assert!(
        error.contains("id (from the file name) starts with `.`"),
        "{error}"
    );
}

/// `(method, path, body)` of every endpoint that takes a JSON document.
fn json_endpoints() -> Vec<(Method, &'static str, String)> {
    vec![
        (
            Method::POST,
            "/v1/integrations",
            dotdigital(Some("new")).to_string(),
        ),
        (
            Method::PUT,
            "/v1/integrations/dd",
            dotdigital(None).to_string(),
        ),
        (
            Method::POST,
            "/v1/activations",
            activation(Some("new")).to_string(),
        ),
        (
            Method::PUT,
            "/v1/activations/new",
            activation(None).to_string(),
        ),
    ]
}

#[tokio::test]
async fn json_endpoints_answer_415_for_a_wrong_or_missing_content_type() {
    let server = server_with_dd().await;
    for (method, path, body) in json_endpoints() {
        for content_type in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("application/x-ndjson"),
            Some("application/json; charset=latin1"),
        ] {
            let mut request = server
                .client()
                .request(method.clone(), format!("{}{path}", server.url))
                .bearer_auth(TOKEN)
                .body(body.clone());
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status().as_u16(),
                415,
                "{method} {path} {content_type:?}"
            );
            let answer: Value = response.json().await.unwrap();
            let error = answer["error"].as_str().unwrap();
            assert!(error.contains("application/json"), "{answer}");
        }
        // The same body with the right type is taken.
        let (status, answer) = server.send(method.clone(), path, Some(&body)).await;
        assert!(matches!(status, 200 | 201), "{method} {path}: {answer}");
    }
    // Events keep their own rule (JSON and NDJSON); a text body is 415 there too.
    let response = server
        .client()
        .post(format!("{}/v1/events", server.url))
        .bearer_auth(TOKEN)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
}

#[tokio::test]
async fn refused_content_types_store_nothing() {
    let server = server_with_dd().await;
    let (_, before) = server.send(Method::GET, "/v1/integrations/dd", None).await;
    let mut changed = dotdigital(None);
    changed["enabled"] = json!(false);
    for (method, path, body) in [
        (
            Method::POST,
            "/v1/integrations",
            dotdigital(Some("other")).to_string(),
        ),
        (Method::PUT, "/v1/integrations/dd", changed.to_string()),
        (
            Method::POST,
            "/v1/activations",
            activation(Some("a1")).to_string(),
        ),
        (
            Method::PUT,
            "/v1/activations/a2",
            activation(None).to_string(),
        ),
    ] {
        let response = server
            .client()
            .request(method.clone(), format!("{}{path}", server.url))
            .bearer_auth(TOKEN)
            .header("content-type", "text/plain")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 415, "{method} {path}");
    }
    assert_eq!(ids_of(&server, "/v1/integrations").await, ["dd"]);
    let (_, after) = server.send(Method::GET, "/v1/integrations/dd", None).await;
    assert_eq!(after, before);
    assert!(ids_of(&server, "/v1/activations").await.is_empty());
}

/// Sends a request; (status, `Content-Type`, `Allow`, body as JSON).
async fn answer_of(request: reqwest::RequestBuilder) -> (u16, String, String, Value) {
    let response = request.send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (status, content_type, allow) = (
        response.status().as_u16(),
        header("content-type"),
        header("allow"),
    );
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, content_type, allow, body)
}

#[tokio::test]
async fn unknown_routes_wrong_methods_and_big_bodies_get_json_errors() {
    let server =
        Server::try_start("max_body_bytes = 4096", |_| String::new()).expect("server started");
    let client = server.client();
    let url = |path: &str| format!("{}{path}", server.url);

    // (`/` is the console: tests/it/console_assets.rs.)
    for path in ["/v1/nope", "/nope", "/v1/integrations/dd/nope"] {
        let (status, content_type, _, body) =
            answer_of(client.get(url(path)).bearer_auth(TOKEN)).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(content_type.starts_with("application/json"), "{path}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains(&format!("no route for GET {path}")),
            "{body}"
        );
    }

    for (method, path, allowed) in [
        (Method::DELETE, "/v1/events", "POST"),
        (Method::PATCH, "/v1/integrations/dd", "GET"),
        (Method::PUT, "/v1/integrations", "POST"),
    ] {
        let (status, content_type, allow, body) =
            answer_of(client.request(method.clone(), url(path)).bearer_auth(TOKEN)).await;
        assert_eq!(status, 405, "{method} {path}: {body}");
        assert!(
            content_type.starts_with("application/json"),
            "{method} {path}"
        );
        assert!(allow.contains(allowed), "the Allow header stays: {allow}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains(&format!("method {method} is not allowed")),
            "{body}"
        );
    }

    let big = format!("{{\"id\": \"big\", \"pad\": \"{}\"}}", "x".repeat(8192));
    for path in ["/v1/integrations", "/v1/activations", "/v1/events"] {
        let (status, content_type, _, body) = answer_of(
            client
                .post(url(path))
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .body(big.clone()),
        )
        .await;
        assert_eq!(status, 413, "{path}: {body}");
        assert!(content_type.starts_with("application/json"), "{path}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("server.max_body_bytes"),
            "{body}"
        );
    }
    assert!(ids_of(&server, "/v1/integrations").await.is_empty());
}

#[tokio::test]
async fn concurrent_creates_of_one_id_have_one_winner() {
    let server = server_with_dd().await;
    for (path, body) in [
        ("/v1/integrations", dotdigital(Some("race"))),
        ("/v1/activations", activation(Some("race"))),
    ] {
        let body = body.to_string();
        let attempts = (0..12).map(|_| {
            let request = server
                .client()
                .post(format!("{}{path}", server.url))
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .body(body.clone());
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.unwrap())
            })
        });
        let mut statuses = Vec::new();
        for attempt in attempts {
            let (status, answer) = attempt.await.unwrap();
            if status == 409 {
                assert!(
                    answer["error"].as_str().unwrap().contains("`race`"),
                    "{answer}"
                );
            }
            statuses.push(status);
        }
        statuses.sort_unstable();
        let mut expected = vec![201];
        expected.extend([409; 11]);
        assert_eq!(statuses, expected, "{path}");
    }
    assert_eq!(ids_of(&server, "/v1/integrations").await, ["dd", "race"]);
    assert_eq!(ids_of(&server, "/v1/activations").await, ["race"]);
}

#[tokio::test]
async fn config_urls_must_be_http_or_https_without_credentials() {
    let server = Server::start();
    // Dotdigital: refused and named, whoever of host and connector finds it.
    for url in [
        "javascript:alert(1)",
        "file:///etc/passwd",
        "http://apiuser:Url-Held-Pw@127.0.0.1:9",
    ] {
        let mut integration = dotdigital(Some("dd"));
        integration["authentication"]["url"] = json!(url);
        let (status, answer) = server
            .send(
                Method::POST,
                "/v1/integrations",
                Some(&integration.to_string()),
            )
            .await;
        assert_eq!(status, 400, "{url}: {answer}");
        let paths: Vec<&str> = crate::serve::problem_paths(&answer)
            .into_iter()
            .filter(|p| *p == "authentication.url")
            .collect();
        assert_eq!(paths, ["authentication.url"], "{url}: named once: {answer}");
        assert!(!answer.to_string().contains("Url-Held-Pw"), "{answer}");
    }

    // The JavaScript webhook connector checks only `^https?://`: the host's
    // rule refuses what it lets through.
    let (status, report) = server
        .post_bytes(
            "/v1/connectors",
            std::fs::read(prefsync_tests::guests::WEBHOOK_JS).unwrap(),
        )
        .await;
    assert_eq!(status, 201, "{report}");
    let js = |url: &str| {
        json!({
            "id": "js", "type_id": "webhook_js", "properties": {"url": url},
            "mappings": [{"id": "newsletter", "value": "consents_purposes_newsletter_enabled"}]
        })
        .to_string()
    };
    let (status, answer) = server
        .send(
            Method::POST,
            "/v1/integrations",
            Some(&js("http://apiuser:Url-Held-Pw@127.0.0.1:9/hook")),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(
        answer["problems"],
        json!([{"path": "properties.url",
                "message": "must not hold a user name or password; give credentials in their own fields"}]),
    );
    assert!(!answer.to_string().contains("Url-Held-Pw"), "{answer}");
    assert!(ids_of(&server, "/v1/integrations").await.is_empty());
    server
        .create_integration(&serde_json::from_str(&js("http://127.0.0.1:9/hook")).unwrap())
        .await;
}

#[tokio::test]
async fn user_ids_cannot_forge_log_lines() {
    let mock = mock_dotdigital().await;
    let server = Server::start();
    let mut integration = dotdigital(Some("dd"));
    integration["authentication"]["url"] = json!(mock.url());
    server.create_integration(&integration).await;
    let consents = || json!({"purposes": [{"id": "newsletter", "enabled": true}]});

    // A NUL cannot be a key (PostgreSQL text cannot hold one): refused, named.
    let (status, answer) = server
        .send(
            Method::POST,
            "/v1/events",
            Some(&event(
                "forge-0",
                "2026-11-23T10:00:00Z",
                "evil\nINFO forged line\u{0}",
                consents(),
                json!({}),
            )),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("user.organization_user_id"),
        "{answer}"
    );

    // Newline, CR and ESC are taken, and logged escaped.
    let user = "evil\nINFO forged line\r\u{1b}[31m";
    server
        .post_events(&event(
            "forge-1",
            "2026-11-23T10:00:00Z",
            user,
            consents(),
            json!({}),
        ))
        .await;
    // The delivery is attempted and recorded (whatever the destination says).
    server
        .wait_outcomes("evil%0AINFO%20forged%20line%0D%1B%5B31m", Some("dd"), |o| {
            !o.is_empty()
        })
        .await;
    let (clean, log) = server.terminate();
    assert!(clean, "{log}");
    let raw: Vec<&str> = log
        .lines()
        // (ESC is not looked for: the log's own colours use it.)
        .filter(|line| line.contains(['\0', '\r']))
        .collect();
    assert!(raw.is_empty(), "raw control characters in: {raw:?}");
    let forged: Vec<&str> = log
        .lines()
        .filter(|line| line.trim_start().starts_with("INFO forged line"))
        .collect();
    assert!(forged.is_empty(), "forged lines: {forged:?}");
    // The user was logged, escaped (the debug line of the recorded delivery).
    assert!(log.contains(r"evil\nINFO forged line\r\u{1b}[31m"), "{log}");
    assert!(!log.contains(PASSWORD));
}
