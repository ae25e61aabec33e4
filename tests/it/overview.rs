//! What the admin console reads, through the real binary: `GET /v1/overview`
//! (deliveries, retries and dead letters counted from the audit, per
//! integration and over time), what `GET /v1/connectors` says of a type, a
//! `"[REDACTED]"` secret in a replacement keeping the stored one, and a
//! running activation run's progress.

use std::time::Duration;

use prefsync_tests::mocks::dotdigital::Fault;
use serde_json::{Value, json};

use crate::serve::{PASSWORD, Server, dotdigital, event, eventually, mock_dotdigital};

fn newsletter(id: &str, user: &str) -> String {
    event(
        id,
        "2026-11-23T10:00:00Z",
        user,
        json!({"purposes": [{"id": "newsletter", "enabled": true}]}),
        json!({}),
    )
}

/// The four counts of a window or bucket.
fn counts(window: &Value) -> [u64; 4] {
    ["delivered", "skipped", "retrying", "dead_lettered"].map(|k| {
        window[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {window}"))
    })
}

#[tokio::test]
async fn the_overview_counts_deliveries_retries_and_dead_letters() {
    let mock = mock_dotdigital().await;
    let server = Server::start();
    let mut integration = dotdigital(Some("dd"));
    integration["authentication"]["url"] = json!(mock.url());
    // One retry, 50 ms later; then the dead letters.
    integration["retry"] = json!({"max_retries": 1, "initial_backoff_ms": 50, "multiplier": 1.0, "max_backoff_ms": 50, "jitter": 0.0});
    server.create_integration(&integration).await;
    let mut idle = dotdigital(Some("idle"));
    idle["enabled"] = json!(false);
    server.create_integration(&idle).await;

    // Ann: a 503, then delivered. Bob: 503 twice, then given up on.
    mock.state.push_faults([Fault::Status(503)]);
    server
        .post_events(&newsletter("e1", "ann@example.com"))
        .await;
    server
        .wait_outcomes("ann@example.com", None, |o| o.len() == 2)
        .await;
    mock.state.set_outage(Some(Fault::Status(503)));
    server
        .post_events(&newsletter("e2", "bob@example.com"))
        .await;
    let bob = server
        .wait_outcomes("bob@example.com", None, |o| o.len() == 2)
        .await;
    assert_eq!(bob, ["failed:retryable", "dead_letter"]);

    let (status, overview) = server
        .send(reqwest::Method::GET, "/v1/overview", None)
        .await;
    assert_eq!(status, 200, "{overview}");
    assert_eq!(overview["range"], "day");
    let now = overview["now_ms"].as_i64().unwrap();
    let shown = overview["integrations"].as_array().unwrap();
    let ids: Vec<&str> = shown.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["dd", "idle"]);
    let (_, connector) = server
        .send(reqwest::Method::GET, "/v1/connectors/dotdigital", None)
        .await;
    let dd = &shown[0];
    assert_eq!(
        (&dd["type_id"], &dd["enabled"], &dd["connector_version"]),
        (
            &json!("dotdigital"),
            &json!(true),
            &connector["active"]["version"]
        )
    );
    assert_eq!(counts(&dd["last_hour"]), [1, 0, 2, 1], "{dd}");
    assert_eq!(counts(&dd["last_day"]), [1, 0, 2, 1], "{dd}");
    assert_eq!(
        (
            &dd["pending"],
            &dd["oldest_pending_age_s"],
            &dd["dead_letters"]
        ),
        (&json!(0), &Value::Null, &json!(1))
    );
    let error = &dd["last_error"];
    assert_eq!(error["outcome"], "dead_letter", "{error}");
    assert_eq!(error["http_statuses"], json!([503]));
    assert!(error["detail"].as_str().unwrap().contains("503"), "{error}");
    assert!(!overview.to_string().contains(PASSWORD));
    let idle = &shown[1];
    assert_eq!(idle["enabled"], false);
    assert_eq!(counts(&idle["last_day"]), [0; 4]);
    assert_eq!(idle["last_error"], Value::Null);

    // The series: 24 buckets of an hour, the last holding now, summing to the day.
    let series = &overview["series"];
    assert_eq!(series["bucket_ms"], 3_600_000);
    let buckets = series["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 24);
    let last = buckets[23]["start_ms"].as_i64().unwrap();
    assert!(last <= now && now < last + 3_600_000, "{series}");
    assert_eq!(series["start_ms"], buckets[0]["start_ms"]);
    let total = buckets.iter().fold([0; 4], |sum, b| {
        let c = counts(b);
        [0, 1, 2, 3].map(|i| sum[i] + c[i])
    });
    assert_eq!(total, [1, 0, 2, 1]);

    let (status, hour) = server
        .send(reqwest::Method::GET, "/v1/overview?range=hour", None)
        .await;
    assert_eq!(status, 200, "{hour}");
    assert_eq!(
        (&hour["range"], &hour["series"]["bucket_ms"]),
        (&json!("hour"), &json!(300_000))
    );
    assert_eq!(hour["series"]["buckets"].as_array().unwrap().len(), 12);
    let (status, only_idle) = server
        .send(
            reqwest::Method::GET,
            "/v1/overview?range=hour&integration=idle",
            None,
        )
        .await;
    assert_eq!(status, 200, "{only_idle}");
    assert!(
        only_idle["series"]["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| counts(b) == [0; 4]),
        "{only_idle}"
    );
    // The filter is the series': the integrations are all there.
    assert_eq!(only_idle["integrations"].as_array().unwrap().len(), 2);

    for (query, status, named) in [
        ("range=week", 400, "range"),
        ("range=", 400, "range"),
        ("ranges=day", 400, "ranges"),
        ("integration=ghost", 404, "ghost"),
    ] {
        let (got, body) = server
            .send(reqwest::Method::GET, &format!("/v1/overview?{query}"), None)
            .await;
        assert_eq!(got, status, "{query}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(named),
            "{query}: {body}"
        );
    }
    let anonymous = reqwest::get(format!("{}/v1/overview", server.url))
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);

    // The answers are what the OpenAPI document says, key for key.
    let document: Value = reqwest::get(format!("{}/v1/openapi.json", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let operation = &document["paths"]["/v1/overview"]["get"];
    assert_eq!(operation["security"], json!([{"admin": []}]));
    let params: Vec<&str> = operation["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(params, ["range", "integration"]);
    let schema = &operation["responses"]["200"]["content"]["application/json"]["schema"];
    for answer in [&overview, &hour, &only_idle] {
        documented(&document, schema, answer, "$");
    }
}

/// Panics unless every key of `value` is a property its `schema` (in
/// `document`, `$ref`s followed) documents, at every depth, with the JSON
/// type it says.
fn documented(document: &Value, schema: &Value, value: &Value, at: &str) {
    if let Some(name) = schema["$ref"].as_str() {
        let target = document
            .pointer(name.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("{at}: {name} is not in the document"));
        return documented(document, target, value, at);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(members) = schema[key].as_array() {
            let fits =
                |m: &Value| std::panic::catch_unwind(|| documented(document, m, value, at)).is_ok();
            assert!(
                members.iter().any(fits),
                "{at}: {value} fits no member of {schema}"
            );
            return;
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    assert!(
        types.is_empty()
            || types.contains(&kind)
            || (kind == "integer" && types.contains(&"number")),
        "{at}: a {kind}, documented as {types:?}"
    );
    match value {
        Value::Object(fields) => {
            if let Some(properties) = schema["properties"].as_object() {
                for (key, field) in fields {
                    let property = properties
                        .get(key)
                        .unwrap_or_else(|| panic!("{at}.{key} is not documented"));
                    documented(document, property, field, &format!("{at}.{key}"));
                }
                for required in schema["required"].as_array().into_iter().flatten() {
                    let required = required.as_str().unwrap();
                    assert!(fields.contains_key(required), "{at}.{required} is missing");
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                documented(document, &schema["items"], item, &format!("{at}[{i}]"));
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn the_overview_connectors_show_what_the_active_version_describes() {
    let server = Server::start();
    let (status, list) = server
        .send(reqwest::Method::GET, "/v1/connectors", None)
        .await;
    assert_eq!(status, 200, "{list}");
    let dd = list["connectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type_id"] == "dotdigital")
        .unwrap_or_else(|| panic!("dotdigital in {list}"));
    assert_eq!(dd["display_name"], "Dotdigital", "{dd}");
    assert_eq!(
        dd["capabilities"],
        json!({"deliver": true, "batching": false, "inbound_webhooks": false, "activations": true, "connection_check": true}),
        "{dd}"
    );
    assert_eq!(
        (&dd["max_batch_size"], &dd["max_concurrency"]),
        (&json!(1), &json!(8)),
        "{dd}"
    );
    assert!(dd["default_hosts"].is_array(), "{dd}");
    let schema = &dd["config_schema"];
    assert_eq!(
        schema["properties"]["authentication"]["properties"]["password"]["writeOnly"], true,
        "{schema}"
    );
    // The existing fields are still there, and the type alone says the same.
    assert!(dd["active"]["version"].is_string() && dd["versions"].is_array());
    let (status, one) = server
        .send(reqwest::Method::GET, "/v1/connectors/dotdigital", None)
        .await;
    assert_eq!(status, 200, "{one}");
    for key in [
        "display_name",
        "capabilities",
        "config_schema",
        "default_hosts",
        "max_batch_size",
        "max_concurrency",
    ] {
        assert_eq!(one[key], dd[key], "{key}");
    }
    assert!(one["switches"].is_array());
}

#[tokio::test]
async fn the_overview_edit_keeps_a_redacted_password() {
    let mock = mock_dotdigital().await;
    let server = Server::start();
    let mut integration = dotdigital(Some("dd"));
    integration["authentication"]["url"] = json!(mock.url());
    server.create_integration(&integration).await;
    server
        .post_events(&newsletter("e1", "ann@example.com"))
        .await;
    eventually("Ann delivered", || {
        mock.state.contact("ann@example.com").is_some()
    })
    .await;

    // What an edit form sends: the integration as shown, one field changed.
    let (_, mut shown) = server
        .send(reqwest::Method::GET, "/v1/integrations/dd", None)
        .await;
    assert_eq!(shown["authentication"]["password"], "[REDACTED]");
    let shown_map = shown.as_object_mut().unwrap();
    shown_map.remove("created_at_ms");
    shown_map.remove("updated_at_ms");
    shown["upsert_mode"] = json!(true);
    shown["mappings"] = json!([
        {"id": "NEWSLETTER", "value": "consents_purposes_newsletter_enabled"}
    ]);
    let (status, replaced) = server
        .send(
            reqwest::Method::PUT,
            "/v1/integrations/dd",
            Some(&shown.to_string()),
        )
        .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["authentication"]["password"], "[REDACTED]");
    // The mock refuses any other credentials: Bob reaches it only with the
    // stored password (and user name, shown redacted too).
    server
        .post_events(&newsletter("e2", "bob@example.com"))
        .await;
    let bob = server
        .wait_outcomes("bob@example.com", Some("dd"), |o| !o.is_empty())
        .await;
    assert_eq!(bob, ["delivered:created"]);
    let (_, again) = server
        .send(reqwest::Method::GET, "/v1/integrations/dd", None)
        .await;
    assert_eq!(again["authentication"]["password"], "[REDACTED]");
    assert!(!again.to_string().contains(PASSWORD));

    // Nothing to keep on create: refused, naming the field.
    let mut fresh = dotdigital(Some("dd-new"));
    fresh["authentication"]["password"] = json!("[REDACTED]");
    let (status, refused) = server
        .send(
            reqwest::Method::POST,
            "/v1/integrations",
            Some(&fresh.to_string()),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("authentication.password"),
        "{refused}"
    );
    assert_eq!(
        crate::serve::problem_paths(&refused),
        ["authentication.password"]
    );
    let (status, _) = server
        .send(reqwest::Method::GET, "/v1/integrations/dd-new", None)
        .await;
    assert_eq!(status, 404, "nothing half-written");
}

#[tokio::test]
async fn the_overview_of_a_running_activation_run_shows_its_progress() {
    let (mock, server, csv) = crate::activations::dotdigital_and_models(&[]).await;
    server
        .create_activation(&crate::activations::dd_users(&csv))
        .await;
    // Every request to Dotdigital takes a while: the run lasts seconds.
    mock.state
        .set_outage(Some(Fault::Slow(Duration::from_millis(600))));
    let (status, started) = server
        .send(reqwest::Method::POST, "/v1/activations/dd-users/run", None)
        .await;
    assert_eq!(status, 202, "{started}");
    let run_id = started["run_id"].clone();
    let run = || async {
        let (status, runs) = server
            .send(reqwest::Method::GET, "/v1/activations/dd-users/runs", None)
            .await;
        assert_eq!(status, 200, "{runs}");
        runs.as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == run_id)
            .cloned()
            .unwrap_or_else(|| panic!("run {run_id} in {runs}"))
    };
    // (progress, how old it was when it arrived), while the run runs.
    let mut seen: Vec<(Value, i64)> = Vec::new();
    for _ in 0..400 {
        let now = run().await;
        if now["status"] != "running" {
            break;
        }
        let progress = now["summary"]["progress"].clone();
        if let Some(at) = progress["updated_at_ms"].as_i64() {
            seen.push((progress, prefsync::now_ms() - at));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!seen.is_empty(), "no progress while running");
    for (progress, _) in &seen {
        assert!(progress["rows_read"].as_u64().unwrap() <= 4, "{progress}");
        assert!(progress["rows_sent"].as_u64().unwrap() <= 4, "{progress}");
    }
    assert!(
        seen.iter().any(|(p, _)| p["rows_read"] == 4),
        "the rows read show while sending: {seen:?}"
    );
    // Refreshed at least every second (plus the answer's own time).
    assert!(seen.iter().all(|&(_, age)| age < 2_000), "{seen:?}");
    mock.state.set_outage(None);
    let mut finished = run().await;
    for _ in 0..400 {
        if finished["status"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        finished = run().await;
    }
    assert_eq!(finished["status"], "succeeded", "{finished}");
    assert_eq!(finished["summary"]["rows_read"], 4, "{finished}");
    assert!(finished["summary"].get("progress").is_none(), "{finished}");
}
