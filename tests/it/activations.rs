//! Activations end to end: the real `prefsync` binary, a real SQLite file
//! (or PostgreSQL in the serve tests' second pass), the real Selligent and
//! Dotdigital components, and mocks of the Engage and Dotdigital APIs.

use std::path::Path;

use prefsync_tests::guests;
use prefsync_tests::mocks::engage::{Engage, FieldType};
use prefsync_tests::mocks::receiver::Receiver;
use serde_json::{Value, json};

use crate::serve::{Server, TOKEN, eventually};

const API_KEY: &str = "engage-key";
const API_SECRET: &str = "Engage-S3cret-value";

/// A server with the Selligent connector next to Dotdigital, whose file
/// sources read [`Server::models_dir`].
pub(crate) fn server() -> Server {
    Server::try_start("", |dir| {
        std::fs::copy(
            guests::SELLIGENT,
            dir.join("connectors").join("selligent.wasm"),
        )
        .unwrap();
        let models = dir.join("models");
        std::fs::create_dir_all(&models).unwrap();
        format!("[activations]\npoll_ms = 100\nsource_dir = {models:?}\n")
    })
    .expect("prefsync serve started")
}

async fn engage() -> prefsync_tests::mocks::MockServer<Engage> {
    Engage::start(
        API_KEY,
        API_SECRET,
        "ACME",
        "USERS",
        "MAIL",
        &[
            ("MAIL", FieldType::Email),
            ("FIRSTNAME", FieldType::Text),
            ("CITY", FieldType::Text),
            ("AGE", FieldType::Numeric),
        ],
    )
    .await
    .unwrap()
}

fn engage_integration(url: &str) -> Value {
    json!({
        "id": "engage",
        "type_id": "selligent",
        "authentication": {"api_key": API_KEY, "api_secret": API_SECRET},
        "properties": {"api": "engage", "url": url, "organization": "ACME", "list": "USERS"},
        "mappings": []
    })
}

pub(crate) fn activation(id: &str, integration: &str, source: Value) -> Value {
    json!({
        "id": id,
        "integration": integration,
        "source": source,
        "key": {"column": "email", "field": "MAIL"},
        "mappings": [
            {"id": "FIRSTNAME", "value": "first_name"},
            {"id": "CITY", "value": "city"},
            {"id": "AGE", "value": "age"}
        ]
    })
}

/// What the Dotdigital model tests share: a mock account (user
/// `apiuser-1@apiconnector.com`) with the model's fields and `extra` ones, a
/// server (this module's, with Selligent) whose integration `dd` points at
/// it, and [`FIRST`] written to `models/users.csv`, whose path is returned.
pub(crate) async fn dotdigital_and_models(
    extra: &[(&str, prefsync_tests::mocks::dotdigital::FieldType)],
) -> (
    prefsync_tests::mocks::MockServer<prefsync_tests::mocks::dotdigital::Dotdigital>,
    Server,
    std::path::PathBuf,
) {
    use prefsync_tests::mocks::dotdigital::{Dotdigital, FieldType as DdType};
    let mut fields = vec![
        ("FIRSTNAME", DdType::String),
        ("CITY", DdType::String),
        ("AGE", DdType::Numeric),
    ];
    fields.extend_from_slice(extra);
    let mock = Dotdigital::start(
        "apiuser-1@apiconnector.com",
        crate::serve::PASSWORD,
        &fields,
    )
    .await
    .unwrap();
    let server = server();
    let mut integration = crate::serve::dotdigital(Some("dd"));
    integration["authentication"]["url"] = json!(mock.url());
    server.create_integration(&integration).await;
    let csv = server.models_dir().join("users.csv");
    std::fs::write(&csv, FIRST).unwrap();
    (mock, server, csv)
}

/// Activation `dd-users`: the CSV at `csv` into integration `dd`, keyed by `EMAIL`.
pub(crate) fn dd_users(csv: &Path) -> Value {
    let mut config = activation("dd-users", "dd", json!({"type": "csv", "path": csv}));
    config["key"]["field"] = json!("EMAIL");
    config
}

pub(crate) const FIRST: &str = "email,first_name,city,age\n\
    ann@example.com,Ann,Lyon,41\n\
    bob@example.com,Bob,Paris,35\n\
    cid@example.com,Cid,Nantes,29\n\
    dee@example.com,Dee,Lille,52\n";

/// Bob: city and age; Cid: first name; and Eve is new.
const SECOND: &str = "email,first_name,city,age\n\
    ann@example.com,Ann,Lyon,41\n\
    bob@example.com,Bob,Rennes,36\n\
    cid@example.com,Cyd,Nantes,29\n\
    dee@example.com,Dee,Lille,52\n\
    eve@example.com,Eve,Brest,23\n";

impl Server {
    /// The `[activations] source_dir` of [`server`]: where models live.
    pub(crate) fn models_dir(&self) -> std::path::PathBuf {
        self.data_dir().parent().unwrap().join("models")
    }

    /// Creates an activation, insisting on the 201.
    pub(crate) async fn create_activation(&self, config: &Value) {
        let (status, body) = self
            .send(
                reqwest::Method::POST,
                "/v1/activations",
                Some(&config.to_string()),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    /// Starts a run through the API and waits for it to finish; its record.
    pub(crate) async fn run_activation(&self, id: &str, query: &str) -> Value {
        let (status, started) = self
            .send(
                reqwest::Method::POST,
                &format!("/v1/activations/{id}/run{query}"),
                None,
            )
            .await;
        assert_eq!(status, 202, "{started}");
        let run_id = started["run_id"].as_i64().unwrap();
        for _ in 0..400 {
            let (_, runs) = self
                .send(
                    reqwest::Method::GET,
                    &format!("/v1/activations/{id}/runs"),
                    None,
                )
                .await;
            if let Some(run) = runs
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["id"] == run_id && r["status"] != "running")
            {
                return run.clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("run {run_id} of {id} did not finish");
    }
}

/// The rows each data/load or single upsert carried since `from`, as
/// (option, key, attributes sent).
fn sent_rows(mock: &Engage, from: usize) -> Vec<(String, String, Vec<String>)> {
    let mut rows = Vec::new();
    for request in &mock.requests()[from..] {
        let query = request.query.clone().unwrap_or_default();
        let option = query
            .split('&')
            .find_map(|p| p.strip_prefix("data_import_option="))
            .unwrap_or("single")
            .to_string();
        if request.path.ends_with("/data/load") {
            let table = request.body.as_array().unwrap();
            let header: Vec<String> = table[0]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h.as_str().unwrap().to_string())
                .collect();
            for row in &table[1..] {
                let row = row.as_array().unwrap();
                let key_at = header.iter().position(|h| h == "MAIL").unwrap();
                let mut attributes: Vec<String> = header
                    .iter()
                    .zip(row)
                    .filter(|(h, _)| *h != "MAIL")
                    .map(|(h, v)| {
                        format!("{h}={}", v.as_str().map_or(v.to_string(), str::to_string))
                    })
                    .collect();
                attributes.sort();
                rows.push((
                    option.clone(),
                    row[key_at].as_str().unwrap().to_string(),
                    attributes,
                ));
            }
        } else if request.path.ends_with("/data") {
            let body = request.body.as_object().unwrap();
            let mut attributes: Vec<String> = body
                .iter()
                .filter(|(k, _)| *k != "MAIL")
                .map(|(k, v)| format!("{k}={}", v.as_str().map_or(v.to_string(), str::to_string)))
                .collect();
            attributes.sort();
            rows.push((
                option.clone(),
                body["MAIL"].as_str().unwrap().to_string(),
                attributes,
            ));
        }
    }
    rows.sort_by(|a, b| a.1.cmp(&b.1));
    rows
}

fn counts(run: &Value) -> [u64; 6] {
    let s = &run["summary"];
    [
        "rows_read",
        "inserted",
        "updated",
        "unchanged",
        "failed",
        "skipped",
    ]
    .map(|k| s[k].as_u64().unwrap_or_else(|| panic!("{k} in {run}")))
}

async fn diff_end_to_end(server: &Server, mock: &Engage, source: Value, rewrite: impl Fn(&str)) {
    server
        .create_integration(&engage_integration(&mock.url()))
        .await;
    server
        .create_activation(&activation("users", "engage", source))
        .await;

    let first = server.run_activation("users", "").await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(counts(&first), [4, 4, 0, 0, 0, 0], "{first}");
    let stored = mock.rows();
    assert_eq!(stored.len(), 4);
    assert_eq!(stored["bob@example.com"]["CITY"], "Paris");

    rewrite(SECOND);
    let before = mock.requests().len();
    let second = server.run_activation("users", "").await;
    assert_eq!(counts(&second), [5, 1, 2, 2, 0, 0], "{second}");
    let sent = sent_rows(mock, before);
    let keys_and_attributes: Vec<(&str, Vec<&str>)> = sent
        .iter()
        .map(|(_, k, a)| (k.as_str(), a.iter().map(String::as_str).collect()))
        .collect();
    assert_eq!(
        keys_and_attributes,
        [
            ("bob@example.com", vec!["AGE=36", "CITY=Rennes"]),
            ("cid@example.com", vec!["FIRSTNAME=Cyd"]),
            (
                "eve@example.com",
                vec!["AGE=23", "CITY=Brest", "FIRSTNAME=Eve"]
            ),
        ],
        "exactly one insert and two updates carrying only the changed attributes"
    );
    assert_eq!(
        mock.rows()["bob@example.com"]["FIRSTNAME"],
        "Bob",
        "untouched attributes stay"
    );
    assert_eq!(mock.rows()["bob@example.com"]["CITY"], "Rennes");

    let before = mock.requests().len();
    let third = server.run_activation("users", "").await;
    assert_eq!(counts(&third), [5, 0, 0, 5, 0, 0], "{third}");
    assert_eq!(
        mock.requests().len(),
        before,
        "an unchanged model sends nothing"
    );

    // A full resync ignores the snapshot once.
    let before = mock.requests().len();
    let resync = server.run_activation("users", "?full_resync=true").await;
    assert_eq!(resync["full_resync"], true);
    assert_eq!(sent_rows(mock, before).len(), 5, "{resync}");
    let after = server.run_activation("users", "").await;
    assert_eq!(counts(&after)[3], 5, "back to sending nothing: {after}");

    // The history lists every run, newest first, and never shows the secret.
    let (_, runs) = server
        .send(reqwest::Method::GET, "/v1/activations/users/runs", None)
        .await;
    assert_eq!(runs.as_array().unwrap().len(), 5);
    assert!(!runs.to_string().contains(API_SECRET));
}

#[tokio::test]
async fn a_csv_model_sends_new_rows_and_changed_attributes_only() {
    let mock = engage().await;
    let server = server();
    let csv = server.models_dir().join("users.csv");
    std::fs::write(&csv, FIRST).unwrap();
    diff_end_to_end(
        &server,
        &mock,
        json!({"type": "csv", "path": csv}),
        |text| std::fs::write(&csv, text).unwrap(),
    )
    .await;
}

fn write_sqlite(path: &Path, csv: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "DROP TABLE IF EXISTS people;
         CREATE TABLE people (mail TEXT, given TEXT, town TEXT, years INTEGER);",
    )
    .unwrap();
    for line in csv.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        conn.execute(
            "INSERT INTO people VALUES (?1, ?2, ?3, ?4)",
            (f[0], f[1], f[2], f[3].parse::<i64>().unwrap()),
        )
        .unwrap();
    }
}

#[tokio::test]
async fn a_sqlite_query_model_is_diffed_the_same_way() {
    let mock = engage().await;
    let server = server();
    let db = server.models_dir().join("model.db");
    write_sqlite(&db, FIRST);
    let source = json!({
        "type": "sql",
        "url": format!("sqlite://{}", db.display()),
        "query": "SELECT mail AS email, given AS first_name, town AS city, years AS age FROM people"
    });
    diff_end_to_end(&server, &mock, source, |text| write_sqlite(&db, text)).await;
}

#[tokio::test]
async fn rejected_rows_are_reported_retried_and_warn_until_recovered() {
    let mock = engage().await;
    let hook = Receiver::start(None).await.unwrap();
    let server = server();
    server
        .create_integration(&engage_integration(&mock.url()))
        .await;
    let csv = server.models_dir().join("users.csv");
    // Two ages the list refuses (AGE is numeric), a row without a key, a repeated key.
    std::fs::write(
        &csv,
        "email,first_name,city,age\n\
         ann@example.com,Ann,Lyon,41\n\
         bob@example.com,Bob,Paris,thirty\n\
         cid@example.com,Cid,Nantes,old\n\
         ,Nobody,Nowhere,1\n\
         ann@example.com,Ann2,Lyon,41\n\
         dee@example.com,Dee,Lille,52\n",
    )
    .unwrap();
    let mut config = activation("users", "engage", json!({"type": "csv", "path": csv}));
    config["warnings"] = json!({"rejected_share": 0.25, "webhook_url": hook.url()});
    server.create_activation(&config).await;

    let first = server.run_activation("users", "").await;
    assert_eq!(first["status"], "warning", "{first}");
    assert_eq!(counts(&first), [6, 2, 0, 0, 4, 0], "{first}");
    let errors = first["summary"]["errors"].as_array().unwrap();
    let by_key: Vec<(Value, &str, Value)> = errors
        .iter()
        .map(|e| {
            (
                e["key"].clone(),
                e["stage"].as_str().unwrap(),
                e["field"].clone(),
            )
        })
        .collect();
    assert!(
        by_key.contains(&(json!("bob@example.com"), "destination", json!("AGE"))),
        "{errors:?}"
    );
    assert!(
        by_key.contains(&(json!("cid@example.com"), "destination", json!("AGE"))),
        "{errors:?}"
    );
    // The row without a key and the repeated key: named by line, never by value.
    let source_rows: Vec<(u64, &str)> = errors
        .iter()
        .filter(|e| e["stage"] == "source")
        .map(|e| {
            assert_eq!(e["key"], Value::Null, "{e}");
            (e["row"].as_u64().unwrap(), e["message"].as_str().unwrap())
        })
        .collect();
    assert_eq!(source_rows.len(), 2, "{errors:?}");
    assert_eq!(source_rows[0].0, 5, "{errors:?}");
    assert_eq!(source_rows[1].0, 6, "{errors:?}");
    assert!(source_rows[1].1.contains("appears earlier"), "{errors:?}");
    assert!(!first["summary"].to_string().contains("Ann2"), "{first}");
    eventually("the warning posted", || hook.accepted().len() == 1).await;
    let warning = &hook.accepted()[0];
    assert_eq!(warning["event"], "activation.warning");
    assert!(
        warning["warnings"][0]
            .as_str()
            .unwrap()
            .contains("4 of 6 rows rejected"),
        "{warning}"
    );
    assert!(!warning.to_string().contains(API_SECRET));

    // Fixed in the model: the rejected rows are tried again (the snapshot
    // did not advance for them), the others are not resent.
    std::fs::write(
        &csv,
        "email,first_name,city,age\n\
         ann@example.com,Ann,Lyon,41\n\
         bob@example.com,Bob,Paris,30\n\
         cid@example.com,Cid,Nantes,70\n\
         dee@example.com,Dee,Lille,52\n",
    )
    .unwrap();
    let before = mock.requests().len();
    let second = server.run_activation("users", "").await;
    assert_eq!(second["status"], "succeeded", "{second}");
    assert_eq!(counts(&second), [4, 2, 0, 2, 0, 0], "{second}");
    let keys: Vec<String> = sent_rows(&mock, before).into_iter().map(|r| r.1).collect();
    assert_eq!(keys, ["bob@example.com", "cid@example.com"]);
    eventually("the recovery posted", || hook.accepted().len() == 2).await;
    assert_eq!(hook.accepted()[1]["event"], "activation.recovered");
    // Healthy again, healthy still: no more notices.
    server.run_activation("users", "").await;
    assert_eq!(hook.accepted().len(), 2);

    // The destination refusing the credentials fails the run and warns.
    let mut wrong = engage_integration(&mock.url());
    wrong["authentication"]["api_secret"] = json!("not-the-secret");
    let (status, body) = server
        .send(
            reqwest::Method::PUT,
            "/v1/integrations/engage",
            Some(&wrong.to_string()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    std::fs::write(
        &csv,
        "email,first_name,city,age\nzed@example.com,Zed,Metz,60\n",
    )
    .unwrap();
    let failed = server.run_activation("users", "").await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let error = failed["summary"]["error"].as_str().unwrap();
    assert!(error.contains("refused"), "{error}");
    assert!(!failed.to_string().contains("not-the-secret"));
    eventually("the failure posted", || hook.accepted().len() == 3).await;
    assert_eq!(hook.accepted()[2]["status"], "failed");
    let (_, log) = server.terminate();
    assert!(log.contains("activation run raised a warning"), "{log}");
    for secret in [API_SECRET, "not-the-secret"] {
        assert!(!log.contains(secret), "the log shows a secret:\n{log}");
    }
}

#[tokio::test]
async fn the_same_activation_works_against_dotdigital() {
    // The mock answers as long as it is held.
    let (_mock, server, csv) = dotdigital_and_models(&[]).await;
    server.create_activation(&dd_users(&csv)).await;
    let first = server.run_activation("dd-users", "").await;
    assert_eq!(counts(&first), [4, 4, 0, 0, 0, 0], "{first}");
    std::fs::write(&csv, SECOND).unwrap();
    let second = server.run_activation("dd-users", "").await;
    assert_eq!(counts(&second), [5, 1, 2, 2, 0, 0], "{second}");
    let third = server.run_activation("dd-users", "").await;
    assert_eq!(counts(&third), [5, 0, 0, 5, 0, 0], "{third}");
}

#[tokio::test]
async fn bad_activations_are_refused_with_what_to_fix() {
    let server = server();
    let mock = engage().await;
    server
        .create_integration(&engage_integration(&mock.url()))
        .await;
    let post = |body: String| {
        let server = &server;
        async move {
            server
                .send(reqwest::Method::POST, "/v1/activations", Some(&body))
                .await
        }
    };
    let good = activation(
        "users",
        "engage",
        json!({"type": "csv", "path": "none.csv"}),
    );

    let mut unknown = good.clone();
    unknown["shedule"] = json!({"every": "1h"});
    let (status, body) = post(unknown.to_string()).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("unknown field `shedule`"),
        "{body}"
    );
    assert!(body["line"].is_number());

    let mut bad = good.clone();
    bad["schedule"] = json!({"cron": "61 * * * *"});
    bad["warnings"] = json!({"rejected_share": 2});
    let (status, body) = post(bad.to_string()).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        crate::serve::problem_paths(&body),
        ["schedule.cron", "warnings.rejected_share"]
    );

    let (status, body) =
        post(activation("x", "missing", json!({"type": "csv", "path": "a.csv"})).to_string()).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no integration `missing`"),
        "{body}"
    );

    // A source column the mappings name but the model lacks fails the run, saying which.
    let csv = server.models_dir().join("model.csv");
    std::fs::write(&csv, "email,first_name,city\na@example.com,A,B\n").unwrap();
    let (status, body) =
        post(activation("users", "engage", json!({"type": "csv", "path": csv})).to_string()).await;
    assert_eq!(status, 201, "{body}");
    let run = server.run_activation("users", "").await;
    assert_eq!(run["status"], "failed");
    let error = run["summary"]["error"].as_str().unwrap();
    assert!(
        error.contains("column `age` (mappings[2].value) is not in the source"),
        "{error}"
    );

    // The SQL source's password never comes back out.
    let mut pg = activation(
        "pg",
        "engage",
        json!({"type": "sql", "url": "postgres://model:Hunter2-pw@127.0.0.1:9/model", "query": "SELECT 1"}),
    );
    pg["schedule"] = json!({"every": "1h"});
    let (status, body) = post(pg.to_string()).await;
    assert_eq!(status, 201, "{body}");
    let (_, shown) = server
        .send(reqwest::Method::GET, "/v1/activations/pg", None)
        .await;
    assert!(!shown.to_string().contains("Hunter2-pw"), "{shown}");
    assert!(shown["next_run_at_ms"].is_number());
    let (status, _) = server
        .send(reqwest::Method::DELETE, "/v1/activations/pg", None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = server
        .send(reqwest::Method::GET, "/v1/activations/pg", None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_scheduled_activation_runs_by_itself_and_the_cli_runs_and_lists() {
    let mock = engage().await;
    let server = server();
    server
        .create_integration(&engage_integration(&mock.url()))
        .await;
    let csv = server.models_dir().join("users.csv");
    std::fs::write(&csv, FIRST).unwrap();
    let mut config = activation("users", "engage", json!({"type": "csv", "path": csv}));
    config["schedule"] = json!({"every": "1s"});
    server.create_activation(&config).await;
    eventually("scheduled runs", || mock.rows().len() == 4).await;
    for _ in 0..100 {
        let (_, runs) = server
            .send(reqwest::Method::GET, "/v1/activations/users/runs", None)
            .await;
        if runs.as_array().unwrap().len() >= 2 {
            assert!(
                runs.as_array()
                    .unwrap()
                    .iter()
                    .all(|r| r["trigger"] == "schedule")
            );
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The CLI, on the same store once the server has stopped.
    let config_path = server.data_dir().parent().unwrap().join("prefsync.toml");
    let (clean, log, _dir) = server.terminate_keeping_dir();
    assert!(clean, "{log}");
    std::fs::write(&csv, SECOND).unwrap();
    // Async: the mocks live on this test's runtime and must keep answering.
    let cli = async |args: &[&str]| {
        let output = tokio::process::Command::new(prefsync_tests::support::prefsync_bin())
            .args(args)
            .arg("--config")
            .arg(&config_path)
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let summary = cli(&["activation", "run", "users"]).await;
    let history = cli(&["activation", "runs", "users"]).await;
    assert!(
        history.contains("STATUS") && history.contains("schedule") && history.contains("cli"),
        "{history}"
    );
    assert!(!history.contains(API_SECRET) && !summary.contains(API_SECRET));
    let _ = TOKEN;
}

/// One of several hosts on one PostgreSQL database, with the Selligent
/// connector and a fast scheduler.
fn pg_host(root: &Path, index: usize, database: &str) -> std::path::PathBuf {
    let dir = root.join(format!("host-{index}"));
    let connector_dir = dir.join("connectors");
    std::fs::create_dir_all(&connector_dir).unwrap();
    std::fs::copy(guests::SELLIGENT, connector_dir.join("selligent.wasm")).unwrap();
    let config = dir.join("prefsync.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_token = \"{TOKEN}\"\n\
             [storage]\ndata_dir = {:?}\nurl = {database:?}\n\
             [connectors]\ndir = {connector_dir:?}\n\
             [egress]\nallow_loopback = true\nallow_http = true\n\
             [limits]\nwall_ms = 2000\n\
             [activations]\npoll_ms = 50\nlease_ms = 5000\n\
             [dispatch]\nhost_id = \"host-{index}\"\n",
            dir.join("data"),
        ),
    )
    .unwrap();
    config
}

async fn admin(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Finished runs, oldest first.
async fn finished_runs(host: &str, id: &str) -> Vec<Value> {
    let (_, runs) = admin(
        reqwest::Method::GET,
        format!("{host}/v1/activations/{id}/runs?limit=1000"),
        None,
    )
    .await;
    let mut runs: Vec<Value> = runs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] != "running")
        .cloned()
        .collect();
    runs.reverse();
    runs
}

#[tokio::test]
async fn on_postgresql_each_scheduled_run_happens_once_on_one_host() {
    use prefsync_tests::support::{ServeProcess, postgres_database};
    let database = postgres_database().await;
    // The model is a query on PostgreSQL too.
    let model = postgres_database().await;
    let (client, connection) = tokio_postgres::connect(&model, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(
            "CREATE TABLE people (mail TEXT PRIMARY KEY, given TEXT, town TEXT, years INT);
             INSERT INTO people VALUES ('ann@example.com', 'Ann', 'Lyon', 41),
               ('bob@example.com', 'Bob', 'Paris', 35), ('cid@example.com', 'Cid', 'Nantes', 29),
               ('dee@example.com', 'Dee', 'Lille', 52);",
        )
        .await
        .unwrap();
    let mock = engage().await;
    let root = tempfile::tempdir().unwrap();
    let hosts: Vec<ServeProcess> = (0..3)
        .map(|i| ServeProcess::start(&pg_host(root.path(), i, &database)).unwrap())
        .collect();
    let urls: Vec<String> = hosts.iter().map(|h| h.url.clone()).collect();
    let (status, body) = admin(
        reqwest::Method::POST,
        format!("{}/v1/integrations", urls[0]),
        Some(engage_integration(&mock.url())),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let mut config = activation(
        "users",
        "engage",
        json!({
            "type": "sql",
            "url": model,
            "query": "SELECT mail AS email, given AS first_name, town AS city, years AS age FROM people"
        }),
    );
    config["schedule"] = json!({"every": "1s"});
    let (status, body) = admin(
        reqwest::Method::POST,
        format!("{}/v1/activations", urls[1]),
        Some(config),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // Three hosts poll every 50 ms for a run due every second.
    let wait_runs = |count: usize| {
        let url = urls[2].clone();
        async move {
            for _ in 0..300 {
                let runs = finished_runs(&url, "users").await;
                if runs.len() >= count {
                    return runs;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("fewer than {count} runs finished");
        }
    };
    wait_runs(3).await;
    assert_eq!(mock.rows().len(), 4);
    client
        .batch_execute(
            "UPDATE people SET town = 'Rennes', years = 36 WHERE mail = 'bob@example.com';
             UPDATE people SET given = 'Cyd' WHERE mail = 'cid@example.com';
             INSERT INTO people VALUES ('eve@example.com', 'Eve', 'Brest', 23);",
        )
        .await
        .unwrap();
    let seen = finished_runs(&urls[0], "users").await.len();
    let runs = wait_runs(seen + 3).await;
    drop(hosts);

    // Never two runs at once, each started by one host once its time came.
    for pair in runs.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        let started = after["started_at_ms"].as_i64().unwrap();
        assert!(
            started >= before["finished_at_ms"].as_i64().unwrap(),
            "overlapping runs: {before} {after}"
        );
        assert!(
            started >= before["started_at_ms"].as_i64().unwrap() + 950,
            "a run started before its time: {before} {after}"
        );
    }
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:?}");
    let totals = runs.iter().fold([0u64; 3], |mut t, r| {
        t[0] += r["summary"]["inserted"].as_u64().unwrap();
        t[1] += r["summary"]["updated"].as_u64().unwrap();
        t[2] += r["summary"]["failed"].as_u64().unwrap();
        t
    });
    assert_eq!(
        totals,
        [5, 2, 0],
        "every change sent exactly once: {runs:?}"
    );
    let hosts_used: std::collections::BTreeSet<&str> =
        runs.iter().map(|r| r["host"].as_str().unwrap()).collect();
    eprintln!("{} runs, started by {hosts_used:?}", runs.len());
    assert_eq!(mock.rows()["bob@example.com"]["CITY"], "Rennes");
    assert_eq!(mock.rows()["eve@example.com"]["FIRSTNAME"], "Eve");
}

#[tokio::test]
async fn activations_load_from_files_at_start() {
    let mock = engage().await;
    let url = mock.url();
    let server = Server::try_start("", |dir| {
        std::fs::copy(
            guests::SELLIGENT,
            dir.join("connectors").join("selligent.wasm"),
        )
        .unwrap();
        let integrations = dir.join("integrations");
        let activations = dir.join("activations");
        std::fs::create_dir_all(&integrations).unwrap();
        std::fs::create_dir_all(&activations).unwrap();
        std::fs::write(
            integrations.join("engage.json"),
            engage_integration(&url).to_string(),
        )
        .unwrap();
        let csv = dir.join("users.csv");
        std::fs::write(&csv, FIRST).unwrap();
        // No `id`: the file name gives it; the model is in `source_dir`.
        let mut config = activation("ignored", "engage", json!({"type": "csv", "path": csv}));
        config.as_object_mut().unwrap().remove("id");
        config["schedule"] = json!({"cron": "0 3 * * *"});
        std::fs::write(activations.join("nightly-users.json"), config.to_string()).unwrap();
        format!(
            "[integrations]\ndir = {integrations:?}\n[activations]\ndir = {activations:?}\nsource_dir = {dir:?}\n"
        )
    })
    .expect("prefsync serve started");
    let (status, shown) = server
        .send(reqwest::Method::GET, "/v1/activations/nightly-users", None)
        .await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["schedule"]["cron"], "0 3 * * *");
    let next = shown["next_run_at_ms"].as_i64().unwrap();
    assert_eq!(
        next % 86_400_000,
        3 * 3_600_000,
        "the next 03:00 UTC: {shown}"
    );
    let run = server.run_activation("nightly-users", "").await;
    assert_eq!(counts(&run), [4, 4, 0, 0, 0, 0], "{run}");
}

#[tokio::test]
async fn an_activation_file_with_a_mistake_stops_the_start_naming_it() {
    let error = Server::try_start("", |dir| {
        let activations = dir.join("activations");
        std::fs::create_dir_all(&activations).unwrap();
        std::fs::write(
            activations.join("users.json"),
            "{\n  \"integration\": \"engage\",\n  \"sauce\": {}\n}",
        )
        .unwrap();
        format!("[activations]\ndir = {activations:?}\n")
    })
    .err()
    .expect("the start fails");
    assert!(
        error.contains("users.json")
            && error.contains("unknown field `sauce`")
            && error.contains("line 3"),
        "{error}"
    );
}
