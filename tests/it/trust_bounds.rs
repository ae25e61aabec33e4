//! Bounds on time and numbers (issue 14, items 3 and 4), through the real
//! `prefsync serve`: events dated in the future are refused by item and
//! field, stamps already stored in the future are clamped at start, and
//! retry policies, activation intervals and host config numbers out of
//! range are refused by name.

use prefsync::consent::millis_to_rfc3339;
use serde_json::{Value, json};

use crate::serve::{Server, dotdigital, event, eventually, mock_dotdigital};

/// The wall clock as RFC 3339, shifted by `offset_ms`.
fn at(offset_ms: i64) -> String {
    millis_to_rfc3339(prefsync::now_ms() + offset_ms)
}

fn newsletter(id: &str, at: &str, user: &str, on: bool) -> Value {
    serde_json::from_str(&event(
        id,
        at,
        user,
        json!({"purposes": [{"id": "newsletter", "enabled": on}]}),
        json!({}),
    ))
    .unwrap()
}

/// A server whose Dotdigital integration `dd` delivers to `mock`.
async fn with_dotdigital(
    server: &Server,
    mock: &prefsync_tests::mocks::MockServer<prefsync_tests::mocks::dotdigital::Dotdigital>,
) {
    let mut integration = dotdigital(Some("dd"));
    integration["authentication"]["url"] = json!(mock.url());
    server.create_integration(&integration).await;
}

async fn post_events(server: &Server, content_type: &str, body: String) -> (u16, Value) {
    let response = server
        .client()
        .post(format!("{}/v1/events", server.url))
        .bearer_auth(crate::serve::TOKEN)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn user_status(server: &Server, user: &str) -> u16 {
    server
        .send(reqwest::Method::GET, &format!("/v1/users/{user}"), None)
        .await
        .0
}

fn newsletter_of(
    mock: &prefsync_tests::mocks::MockServer<prefsync_tests::mocks::dotdigital::Dotdigital>,
    user: &str,
) -> Option<Value> {
    mock.state
        .contact(user)
        .and_then(|c| c.data_fields.get("NEWSLETTER").cloned())
}

/// Posts a subscription dated a minute ago and waits until the mock has it.
async fn subscribe_and_wait(
    server: &Server,
    mock: &prefsync_tests::mocks::MockServer<prefsync_tests::mocks::dotdigital::Dotdigital>,
    user: &str,
) {
    let (status, body) = post_events(
        server,
        "application/json",
        newsletter("subscribe", &at(-60_000), user, true).to_string(),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    eventually("the subscription delivered", || {
        newsletter_of(mock, user) == Some(json!(true))
    })
    .await;
}

#[tokio::test]
async fn a_future_dated_event_is_refused_and_the_withdrawal_is_delivered() {
    let mock = mock_dotdigital().await;
    let server = Server::start();
    with_dotdigital(&server, &mock).await;
    let user = "ann@example.com";

    subscribe_and_wait(&server, &mock, user).await;
    let (_, before) = server
        .send(reqwest::Method::GET, &format!("/v1/users/{user}"), None)
        .await;

    // The reproduction of issue 14: a stamp from year 9999 would pin the
    // subscription against every later withdrawal.
    let pin = newsletter("pin", "9999-12-31T23:59:59Z", user, true);
    let (status, body) = post_events(&server, "application/json", pin.to_string()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        (&body["at"], &body["field"]),
        (&json!("body"), &json!("created_at"))
    );
    let message = body["error"].as_str().unwrap();
    assert!(
        message.starts_with("body: `created_at` is in the future"),
        "{message}"
    );
    assert!(message.contains("ingest.max_future_skew_ms"), "{message}");
    let (_, after) = server
        .send(reqwest::Method::GET, &format!("/v1/users/{user}"), None)
        .await;
    assert_eq!(after, before, "nothing stored");

    // A list is all or nothing: the valid item before the future one is
    // not stored either.
    let list = json!([
        newsletter("bob-1", &at(0), "bob@example.com", true),
        newsletter("bob-2", "2099-01-01T00:00:00Z", "bob@example.com", false),
    ]);
    let (status, body) = post_events(&server, "application/json", list.to_string()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        (&body["at"], &body["field"]),
        (&json!("[1]"), &json!("created_at"))
    );
    assert_eq!(user_status(&server, "bob@example.com").await, 404);

    let withdrawal = newsletter("withdraw", &at(0), user, false);
    let (status, body) = post_events(&server, "application/json", withdrawal.to_string()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["events"][0]["status"], "recorded", "{body}");
    assert_eq!(body["events"][0]["deliveries"], json!(["dd"]), "{body}");
    eventually("the withdrawal delivered", || {
        newsletter_of(&mock, user) == Some(json!(false))
    })
    .await;
}

#[tokio::test]
async fn ndjson_with_one_future_line_is_refused_naming_the_line() {
    let server = Server::start();
    let lines = [
        newsletter("cid-1", &at(-1_000), "cid@example.com", true).to_string(),
        // Within the default five minutes of skew: a sender's clock a
        // little ahead is fine.
        newsletter("cid-2", &at(60_000), "cid@example.com", false).to_string(),
        newsletter("cid-3", &at(3_600_000), "cid@example.com", true).to_string(),
    ];
    let (status, body) = post_events(&server, "application/x-ndjson", lines.join("\n")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        (&body["at"], &body["field"]),
        (&json!("line 3"), &json!("created_at"))
    );
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("line 3: `created_at`"),
        "{body}"
    );
    assert_eq!(
        user_status(&server, "cid@example.com").await,
        404,
        "nothing stored"
    );

    let (status, body) = post_events(&server, "application/x-ndjson", lines[..2].join("\n")).await;
    assert_eq!(
        (status, body["recorded"].as_u64()),
        (202, Some(2)),
        "{body}"
    );

    // A user entity is stamped by its `updated_at`, and that is what is named.
    let envelope = json!({"type": "user.updated", "parameters": {"new_entity": {
        "organization_user_id": "dan@example.com",
        "updated_at": "2100-01-01T00:00:00Z",
        "consents": {"purposes": [{"id": "newsletter", "enabled": true}]}
    }}});
    let (status, body) = post_events(&server, "application/json", envelope.to_string()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "parameters.new_entity.updated_at", "{body}");
    assert_eq!(user_status(&server, "dan@example.com").await, 404);
}

#[tokio::test]
async fn stamps_already_in_the_future_are_clamped_at_start() {
    let mock = mock_dotdigital().await;
    // A day of skew allowed, as an old build effectively did (without a
    // limit at all): an event two hours ahead is stored.
    let server =
        Server::try_start("", |_| "[ingest]\nmax_future_skew_ms = 86400000\n".into()).unwrap();
    with_dotdigital(&server, &mock).await;
    let user = "eve@example.com";
    let ahead = newsletter("ahead", &at(2 * 3_600_000), user, true);
    let (status, body) = post_events(&server, "application/json", ahead.to_string()).await;
    assert_eq!(status, 202, "{body}");
    eventually("the subscription delivered", || {
        newsletter_of(&mock, user) == Some(json!(true))
    })
    .await;
    // Pinned: a withdrawal dated now loses to the stamp from the future.
    let early = newsletter("withdraw-early", &at(0), user, false);
    let (status, body) = post_events(&server, "application/json", early.to_string()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["events"][0]["deliveries"], json!([]), "{body}");

    // Restarted with the default skew: the stored stamp is moved back to
    // the start time, so the next withdrawal wins.
    let (_, server) =
        server.restart_with(|text| text.replace("max_future_skew_ms = 86400000\n", ""));
    let withdrawal = newsletter("withdraw", &at(1_000), user, false);
    let (status, body) = post_events(&server, "application/json", withdrawal.to_string()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["events"][0]["deliveries"], json!(["dd"]), "{body}");
    eventually("the withdrawal delivered", || {
        newsletter_of(&mock, user) == Some(json!(false))
    })
    .await;
    let (clean, log) = server.terminate();
    assert!(clean, "{log}");
    let repair = log
        .lines()
        .find(|line| line.contains("consent stamps dated in the future moved back"))
        .unwrap_or_else(|| panic!("no repair line in {log}"));
    // The log may be coloured: the escape sequences go before matching.
    let mut parts = repair.split('\x1b');
    let mut plain = parts.next().unwrap_or_default().to_string();
    for part in parts {
        plain.push_str(part.split_once('m').map_or(part, |(_, rest)| rest));
    }
    assert!(plain.contains("users=1"), "{repair}");
    assert!(!repair.contains(user), "no user id at info: {repair}");
}

#[tokio::test]
async fn the_retry_storm_is_refused_naming_each_field() {
    let server = Server::start();
    let mut storm = dotdigital(Some("storm"));
    storm["retry"] = serde_json::from_str(
        r#"{"max_retries":4294967295,"initial_backoff_ms":1000,"multiplier":1e300,"max_backoff_ms":18446744073709551615}"#,
    )
    .unwrap();
    let (status, body) = server
        .send(
            reqwest::Method::POST,
            "/v1/integrations",
            Some(&storm.to_string()),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let paths = crate::serve::problem_paths(&body);
    assert_eq!(
        paths,
        [
            "retry.max_retries",
            "retry.multiplier",
            "retry.max_backoff_ms"
        ],
        "{body}"
    );
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("retry.max_retries: must be at most 100"),
        "{message}"
    );

    // Values serde cannot even read are named too.
    for (field, value) in [
        ("max_retries", json!(1e10)),
        ("jitter", json!("lots")),
        ("initial_backoff_ms", json!(-1)),
    ] {
        let mut bad = dotdigital(Some("bad"));
        bad["retry"] = json!({ field: value });
        let (status, body) = server
            .send(
                reqwest::Method::POST,
                "/v1/integrations",
                Some(&bad.to_string()),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(
            body["problems"][0]["path"],
            format!("retry.{field}"),
            "{body}"
        );
    }

    // PUT is held to the same ranges.
    server.create_integration(&dotdigital(Some("dd"))).await;
    let mut quick = dotdigital(None);
    quick["retry"] = json!({"initial_backoff_ms": 1, "max_backoff_ms": 1});
    let (status, body) = server
        .send(
            reqwest::Method::PUT,
            "/v1/integrations/dd",
            Some(&quick.to_string()),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["problems"][0]["path"], "retry.initial_backoff_ms",
        "{body}"
    );

    let (_, list) = server
        .send(reqwest::Method::GET, "/v1/integrations", None)
        .await;
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["dd"], "nothing else stored");
    assert!(list[0].get("retry").is_none(), "{list}");
}

#[tokio::test]
async fn an_interval_that_overflows_is_refused_naming_schedule_every() {
    let server = Server::try_start("", |dir| {
        let models = dir.join("models");
        std::fs::create_dir_all(&models).unwrap();
        std::fs::write(
            models.join("users.csv"),
            "email,first_name\nann@example.com,Ann\n",
        )
        .unwrap();
        format!("[activations]\nsource_dir = {models:?}\n")
    })
    .unwrap();
    server.create_integration(&dotdigital(Some("dd"))).await;
    let csv = server
        .data_dir()
        .parent()
        .unwrap()
        .join("models")
        .join("users.csv");
    let activation = |every: &str| {
        json!({
            "id": "users",
            "integration": "dd",
            "source": {"type": "csv", "path": csv},
            "key": {"column": "email", "field": "email"},
            "mappings": [{"id": "FIRSTNAME", "value": "first_name"}],
            "schedule": {"every": every}
        })
    };
    for every in ["18446744073709551615d", "367d", "0s"] {
        let (status, body) = server
            .send(
                reqwest::Method::POST,
                "/v1/activations",
                Some(&activation(every).to_string()),
            )
            .await;
        assert_eq!(status, 422, "{every}: {body}");
        let paths = crate::serve::problem_paths(&body);
        assert_eq!(paths, ["schedule.every"], "{every}: {body}");
    }
    let (_, list) = server
        .send(reqwest::Method::GET, "/v1/activations", None)
        .await;
    assert_eq!(list, json!([]), "nothing stored");

    // The longest interval is accepted, and runs a year from now.
    let (status, body) = server
        .send(
            reqwest::Method::POST,
            "/v1/activations",
            Some(&activation("366d").to_string()),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let next = body["next_run_at_ms"].as_i64().unwrap();
    let year = 366 * 86_400_000;
    assert!((next - prefsync::now_ms() - year).abs() < 60_000, "{body}");
}

#[tokio::test]
async fn absurd_host_config_numbers_refuse_to_start_naming_the_key() {
    for (extra, key) in [
        ("[dispatch]\npoll_ms = 0\n", "dispatch.poll_ms"),
        (
            "[limits]\nmax_instances = 4000000\n",
            "limits.max_instances",
        ),
        (
            "[ingest]\nmax_future_skew_ms = 9223372036854775807\n",
            "ingest.max_future_skew_ms",
        ),
        ("[retry]\nmultiplier = 1e300\n", "retry.multiplier"),
        (
            "[activations]\nlease_ms = 9223372036854775807\n",
            "activations.lease_ms",
        ),
    ] {
        let log = match Server::try_start("", |_| extra.to_string()) {
            Ok(_) => panic!("started with {extra}"),
            Err(log) => log,
        };
        assert!(log.contains(key), "{extra}: {log}");
    }
}

#[tokio::test]
async fn a_webhook_update_dated_in_the_future_is_stamped_when_received() {
    const SECRET: &str = "webhook-shared-secret-0123456789";
    let mock = mock_dotdigital().await;
    let server = Server::try_start("", |dir| {
        std::fs::copy(
            prefsync_tests::guests::PROBE,
            dir.join("connectors").join("probe.wasm"),
        )
        .unwrap();
        String::new()
    })
    .unwrap();
    with_dotdigital(&server, &mock).await;
    server
        .create_integration(&json!({
            "id": "probe-in",
            "type_id": "probe",
            "mode": "noop",
            "authentication": {"webhook_secret": SECRET},
            "mappings": [{"id": "NEWSLETTER", "value": "consents_purposes_newsletter_enabled"}],
            "enable_webhooks": true
        }))
        .await;
    let user = "fay@example.com";
    subscribe_and_wait(&server, &mock, user).await;

    // The vendor's clock says year 9999: applied, stamped with the receipt time.
    let update = json!({"updates": [{"user": user, "id": "n-1", "at": "9999-12-31T23:59:59Z",
        "set": {"consents_purposes_newsletter_enabled": false}}]});
    let response = server
        .client()
        .post(format!("{}/v1/webhooks/probe-in", server.url))
        .header("content-type", "application/json")
        .header("X-Authorization", SECRET)
        .body(update.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    eventually("the webhook's withdrawal delivered", || {
        newsletter_of(&mock, user) == Some(json!(false))
    })
    .await;
    let (_, shown) = server
        .send(reqwest::Method::GET, &format!("/v1/users/{user}"), None)
        .await;
    let stamp = shown["state"]["purposes"]["newsletter"]["enabled"]["at_ms"]
        .as_i64()
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(stamp <= prefsync::now_ms(), "{shown}");

    // So a later Didomi change still wins.
    let again = newsletter("resubscribe", &at(1_000), user, true);
    let (status, body) = post_events(&server, "application/json", again.to_string()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body["events"][0]["deliveries"],
        json!(["dd", "probe-in"]),
        "{body}"
    );
    eventually("the resubscription delivered", || {
        newsletter_of(&mock, user) == Some(json!(true))
    })
    .await;
}
