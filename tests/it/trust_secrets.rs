//! No secret on any path: distinct secrets planted in every place that holds
//! one (an integration's authentication — strings, a number, an array —, a
//! `writeOnly` field only the connector's schema names, a webhook's shared
//! secret, a signing key the destination echoes back, an activation source's
//! PostgreSQL password as userinfo and as `?password=`, URLs with userinfo),
//! then every path exercised through the real `prefsync serve` at trace log
//! level (once with text logs, once with JSON logs and every span exported
//! over OTLP), and every answer, the whole log, the spans' names and
//! attributes, `/metrics` and every file under the
//! data directory (but the database, which must hold the config and be the
//! owner's alone) searched for each secret in its raw, base64 and
//! percent-encoded forms.

use base64::Engine as _;
use prefsync_tests::guests;
use reqwest::Method;
use serde_json::{Value, json};

use crate::serve::{Server, event};

// Distinct secrets, one per place; `!`, `+` and `/` make the encoded forms differ.
const DD_USER: &str = "apiuser-Planted7c41@apiconnector.com";
const DD_PASSWORD: &str = "Dd-Pass!w0rd+7f3a/x";
const PROBE_USER: &str = "Probe-User-Planted-e19a";
const PROBE_PASSWORD: &str = "Probe-Pass!5a2c+q";
const PROBE_PIN: u64 = 918_273_645;
const SCOPE_A: &str = "Scope-Alpha-4d1e";
const SCOPE_B: &str = "Scope-Beta-8b2f";
const WEBHOOK_SECRET: &str = "Webhook-Shared-Secret-6e0b9a";
/// Only the probe's schema (`"writeOnly": true`) says this one is a secret.
const WRITE_ONLY: &str = "Signing-Material-3c9d";
const PANIC_PASSWORD: &str = "Panic-Pass-71f0";
const VALIDATE_PASSWORD: &str = "Validate-Pass-2e6d";
const SIGNING_KEY: &str = "Webhook-Signing-Key-47e1c0";
const PG_USERINFO_PASSWORD: &str = "Pg-Userinfo-Pw-2a7c";
const PG_QUERY_PASSWORD: &str = "Pg-Query-Pw-9d4e";
const URL_USERINFO_PASSWORD: &str = "Url-Userinfo-Pw-1b8f";
const EGRESS_URL_PASSWORD: &str = "Egress-Url-Pw-0c3d";

/// Everything at trace level but the code generator's internals (gigabytes
/// of instruction-level lines about the connectors' code, which never sees a
/// config; they made the start take minutes).
const TRACE_BUT_THE_COMPILER: &str =
    "trace,cranelift=info,wasmtime=info,regalloc2=info,wasmparser=info,pulley=info";

const USER: &str = "ann@example.com";
const NEWSLETTER: &str = "consents_purposes_newsletter_enabled";

/// Every planted secret, named.
fn planted() -> Vec<(&'static str, String)> {
    vec![
        ("dotdigital username", DD_USER.into()),
        ("dotdigital password", DD_PASSWORD.into()),
        ("probe username", PROBE_USER.into()),
        ("probe password", PROBE_PASSWORD.into()),
        ("probe number under authentication", PROBE_PIN.to_string()),
        ("probe array under authentication [0]", SCOPE_A.into()),
        ("probe array under authentication [1]", SCOPE_B.into()),
        ("webhook shared secret", WEBHOOK_SECRET.into()),
        ("writeOnly properties field", WRITE_ONLY.into()),
        ("panicking probe's password", PANIC_PASSWORD.into()),
        ("refused config's password", VALIDATE_PASSWORD.into()),
        ("webhook connector's signing key", SIGNING_KEY.into()),
        ("source password (userinfo)", PG_USERINFO_PASSWORD.into()),
        ("source password (?password=)", PG_QUERY_PASSWORD.into()),
        ("URL userinfo password", URL_USERINFO_PASSWORD.into()),
        ("egress URL userinfo password", EGRESS_URL_PASSWORD.into()),
    ]
}

/// The forms a secret may take on the way out: raw, base64, percent-encoded.
fn forms(secret: &str) -> Vec<(&'static str, String)> {
    let b64 = &base64::engine::general_purpose::STANDARD;
    let mut all = vec![
        ("raw", secret.to_string()),
        ("base64", b64.encode(secret)),
        ("form-urlencoded", encoded(secret, b"*-._", true)),
        ("percent-encoded", encoded(secret, b"-._~", false)),
    ];
    if secret == DD_PASSWORD {
        all.push(("basic auth", b64.encode(format!("{DD_USER}:{DD_PASSWORD}"))));
    }
    all
}

/// `s` percent-encoded, keeping alphanumerics and `kept`; `plus_for_space`
/// as HTML forms do.
fn encoded(s: &str, kept: &[u8], plus_for_space: bool) -> String {
    s.bytes()
        .map(|b| match b {
            b' ' if plus_for_space => "+".to_string(),
            b if b.is_ascii_alphanumeric() || kept.contains(&b) => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// What was searched and what leaked, to report every leak at once.
#[derive(Default)]
struct Search {
    places: usize,
    leaks: Vec<String>,
}

impl Search {
    fn check(&mut self, place: &str, text: &str) {
        self.places += 1;
        for (name, secret) in planted() {
            for (form, needle) in forms(&secret) {
                if let Some(at) = text.find(&needle) {
                    let mut from = at.saturating_sub(80);
                    while !text.is_char_boundary(from) {
                        from -= 1;
                    }
                    let mut to = (at + needle.len() + 80).min(text.len());
                    while !text.is_char_boundary(to) {
                        to += 1;
                    }
                    self.leaks
                        .push(format!("{name} ({form}) in {place}: …{}…", &text[from..to]));
                }
            }
        }
    }
}

/// A loopback "destination" that refuses every request and quotes the signing
/// key in its answer, as a misbehaving API might.
async fn echoing_destination() -> prefsync_tests::mocks::MockServer<()> {
    use axum::http::StatusCode;
    let body = format!(
        "bad key {SIGNING_KEY} / {}",
        base64::engine::general_purpose::STANDARD.encode(SIGNING_KEY)
    );
    let router = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move { (StatusCode::UNAUTHORIZED, body) }
    });
    prefsync_tests::mocks::serve(0, router, ()).await.unwrap()
}

fn probe(id: &str, mode: &str, authentication: Value) -> Value {
    json!({
        "id": id,
        "type_id": "probe",
        "mode": mode,
        "authentication": authentication,
        "mappings": [{"id": "newsletter", "value": NEWSLETTER}]
    })
}

impl Server {
    /// Sends a request; the status and the answer's text, searched.
    async fn searched(
        &self,
        search: &mut Search,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> (u16, String) {
        let mut request = self
            .client()
            .request(method.clone(), format!("{}{path}", self.url))
            .bearer_auth(crate::serve::TOKEN);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        search.check(&format!("the answer to {method} {path} ({status})"), &text);
        (status, text)
    }
}

#[tokio::test]
async fn no_planted_secret_leaves_by_any_path() {
    no_planted_secret_leaves(Observed::TextLog).await;
}

/// The same paths with the log in JSON lines and every span exported to an
/// OTLP receiver, whose spans (names and attributes) are searched too. Two
/// workers: the receiver must answer while the test waits for the stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_planted_secret_leaves_in_json_logs_or_spans() {
    no_planted_secret_leaves(Observed::JsonLogAndSpans).await;
}

/// How the server's output is taken.
#[derive(Clone, Copy, PartialEq)]
enum Observed {
    TextLog,
    JsonLogAndSpans,
}

async fn no_planted_secret_leaves(observed: Observed) {
    let destination = echoing_destination().await;
    let receiver = prefsync_tests::otlp::start().await.unwrap();
    let endpoint = receiver.url();
    let server = Server::try_start_logging("", "", TRACE_BUT_THE_COMPILER, |dir| {
        let connector_dir = dir.join("connectors");
        std::fs::copy(guests::PROBE, connector_dir.join("probe.wasm")).unwrap();
        std::fs::copy(guests::WEBHOOK, connector_dir.join("webhook.wasm")).unwrap();
        let mut extra = "[activations]\npoll_ms = 100\n".to_string();
        if observed == Observed::JsonLogAndSpans {
            extra.push_str(&format!(
                "[log]\nformat = \"json\"\n[telemetry]\notlp_endpoint = {endpoint:?}\n"
            ));
        }
        extra
    })
    .expect("prefsync serve started");
    let on_postgres = std::env::var("PREFSYNC_TEST_SERVE_STORE").as_deref() == Ok("postgres");
    let mut search = Search::default();
    let post = Method::POST;

    // Integrations holding every kind of secret.
    let mut leaky = probe(
        "probe-leak",
        "leak",
        json!({
            "username": PROBE_USER,
            "password": PROBE_PASSWORD,
            "account_pin": PROBE_PIN,
            "scopes": [SCOPE_A, SCOPE_B],
            "webhook_secret": WEBHOOK_SECRET
        }),
    );
    leaky["properties"] = json!({"signing_material": WRITE_ONLY});
    leaky["enable_webhooks"] = json!(true);
    let panicking = probe(
        "probe-panic",
        "panic-leak",
        json!({"password": PANIC_PASSWORD}),
    );
    let mut refused_url = probe("probe-url", "http", json!({}));
    refused_url["target"] = json!(format!("http://probeuser:{EGRESS_URL_PASSWORD}@/x"));
    let hook = json!({
        "id": "hook",
        "type_id": "webhook",
        "authentication": {"signing_secret": SIGNING_KEY},
        "properties": {"url": format!("{}/hook", destination.url())},
        "mappings": [{"id": "newsletter", "value": NEWSLETTER}]
    });
    let dd = json!({
        "id": "dd",
        "type_id": "dotdigital",
        "authentication": {"url": "http://127.0.0.1:9", "username": DD_USER, "password": DD_PASSWORD},
        "mappings": [{"id": "FIRSTNAME", "value": "metadata_first_name"}]
    });
    for integration in [&leaky, &panicking, &refused_url, &hook, &dd] {
        let (status, answer) = server
            .searched(
                &mut search,
                post.clone(),
                "/v1/integrations",
                Some(integration),
                &[],
            )
            .await;
        assert_eq!(status, 201, "{answer}");
    }
    let (status, _) = server
        .searched(
            &mut search,
            Method::PUT,
            "/v1/integrations/probe-leak",
            Some(&leaky),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    for path in [
        "/v1/integrations",
        "/v1/integrations/probe-leak",
        "/v1/integrations/dd",
    ] {
        let (status, _) = server
            .searched(&mut search, Method::GET, path, None, &[])
            .await;
        assert_eq!(status, 200, "{path}");
    }

    // Refused: a connector's validation quoting the config; a URL with userinfo.
    let refused = probe(
        "probe-refused",
        "leak-validate",
        json!({"password": VALIDATE_PASSWORD}),
    );
    let (status, answer) = server
        .searched(
            &mut search,
            post.clone(),
            "/v1/integrations",
            Some(&refused),
            &[],
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    let mut userinfo = dd.clone();
    userinfo["id"] = json!("dd-userinfo");
    userinfo["authentication"]["url"] = json!(format!(
        "http://apiuser:{URL_USERINFO_PASSWORD}@127.0.0.1:9"
    ));
    let (status, answer) = server
        .searched(
            &mut search,
            post.clone(),
            "/v1/integrations",
            Some(&userinfo),
            &[],
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("authentication.url"), "{answer}");

    // Deliveries that fail with secrets in them: logged, printed, returned,
    // panicked, echoed by the destination, in a refused URL.
    let (status, _) = server
        .searched(
            &mut search,
            post.clone(),
            "/v1/events",
            Some(
                &serde_json::from_str(&event(
                    "e1",
                    "2026-01-01T00:00:00Z",
                    USER,
                    json!({"purposes": [{"id": "newsletter", "enabled": true}]}),
                    json!({}),
                ))
                .unwrap(),
            ),
            &[],
        )
        .await;
    assert_eq!(status, 202);
    let dead = server.wait_for_list("/v1/dead-letters", 4).await;
    assert_eq!(dead.as_array().unwrap().len(), 4, "{dead}");
    for path in [
        "/v1/dead-letters".to_string(),
        "/v1/deliveries".to_string(),
        format!("/v1/users/{USER}/history"),
        format!("/v1/users/{USER}"),
    ] {
        server
            .searched(&mut search, Method::GET, &path, None, &[])
            .await;
    }
    let (_, history) = server
        .searched(
            &mut search,
            Method::GET,
            &format!("/v1/users/{USER}/history"),
            None,
            &[],
        )
        .await;
    assert!(
        history.contains("[REDACTED]"),
        "the failures were redacted, not lost: {history}"
    );

    // Webhooks: a panic and a refusal quoting the secrets, a wrong secret.
    let webhook = "/v1/webhooks/probe-leak";
    let auth = [("x-authorization", WEBHOOK_SECRET)];
    let (status, answer) = server
        .searched(
            &mut search,
            post.clone(),
            webhook,
            Some(&json!({"panic_with_secrets": true})),
            &auth,
        )
        .await;
    assert_eq!(status, 500, "{answer}");
    let (status, answer) = server
        .searched(
            &mut search,
            post.clone(),
            webhook,
            Some(&json!({"refuse_with_secrets": true})),
            &auth,
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    let (status, _) = server
        .searched(
            &mut search,
            post.clone(),
            webhook,
            Some(&json!({"updates": []})),
            &[("x-authorization", "not-the-secret-at-all")],
        )
        .await;
    assert_eq!(status, 401);

    // An activation whose PostgreSQL source carries its password twice fails its run.
    let source_url = format!(
        "postgres://model:{PG_USERINFO_PASSWORD}@127.0.0.1:9/model?sslmode=disable&password={PG_QUERY_PASSWORD}"
    );
    let activation = json!({
        "id": "pg-source",
        "integration": "dd",
        "source": {"type": "sql", "url": source_url, "query": "SELECT email, first_name FROM users"},
        "key": {"column": "email", "field": "EMAIL"},
        "mappings": [{"id": "FIRSTNAME", "value": "first_name"}]
    });
    let (status, answer) = server
        .searched(
            &mut search,
            post.clone(),
            "/v1/activations",
            Some(&activation),
            &[],
        )
        .await;
    if status == 201 {
        let run = server.run_activation("pg-source", "").await;
        assert_eq!(run["status"], "failed", "{run}");
        search.check("the run record", &run.to_string());
        for path in [
            "/v1/activations",
            "/v1/activations/pg-source",
            "/v1/activations/pg-source/runs",
        ] {
            server
                .searched(&mut search, Method::GET, path, None, &[])
                .await;
        }
    } else {
        // Refused up front (the source's host under the egress policy): fine, said without the password.
        assert!((400..500).contains(&status), "{status} {answer}");
    }

    // The database files hold the config, and are the owner's alone.
    let data = server.data_dir();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700, "the data directory");
        if !on_postgres {
            for name in ["prefsync.db", "prefsync.db-wal", "prefsync.db-shm"] {
                let path = data.join(name);
                assert!(path.exists(), "{name}");
                assert_eq!(mode(&path), 0o600, "{name}");
            }
        }
    }
    let metrics = server.metrics().await;
    search.check("GET /metrics", &metrics);

    let (clean, log, _dir) = server.terminate_keeping_dir();
    assert!(clean, "the server stopped cleanly");
    assert!(log.contains("TRACE"), "the log is at trace level");
    assert!(
        log.contains("[REDACTED]"),
        "the log saw the secrets, redacted"
    );
    search.check("the server log", &log);
    if observed == Observed::JsonLogAndSpans {
        let first = log
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default();
        assert!(first.starts_with('{'), "the log is JSON lines: {first}");
        // The stop flushed every span.
        let spans = receiver.state.spans();
        assert!(
            spans.len() >= 10,
            "{} spans exported: {:?}",
            spans.len(),
            spans.iter().map(|s| s.name.as_str()).collect::<Vec<_>>()
        );
        assert!(
            spans.iter().any(|s| s.name.ends_with(" deliver")),
            "connector calls were traced"
        );
        for span in &spans {
            search.check(
                &format!("the span {}", span.name),
                &format!("{} {:?} {:?}", span.name, span.attributes, span.links),
            );
        }
    }
    for file in walk(&data) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("prefsync.db") {
            continue;
        }
        let bytes = std::fs::read(&file).unwrap();
        search.check(
            &file.display().to_string(),
            &String::from_utf8_lossy(&bytes),
        );
    }
    assert!(
        search.places >= 30,
        "searched only {} places",
        search.places
    );
    assert!(
        search.leaks.is_empty(),
        "{} leak(s):\n{}",
        search.leaks.len(),
        search.leaks.join("\n")
    );
}

/// Every file under `dir`, recursively.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}
