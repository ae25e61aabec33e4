//! Traces over OTLP/HTTP: an event posted with a `traceparent` is followed
//! from the request through the store and the outbox to the delivery, the
//! connector call and its HTTP requests, exported to a receiver on loopback
//! through the egress policy, flushed at a graceful stop, with no secret in
//! any span.

use prefsync_tests::otlp::ReceivedSpan;
use serde_json::json;

use crate::serve::{PASSWORD, Server, TOKEN, dotdigital, event, eventually, mock_dotdigital};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

fn one<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    let found: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one span `{name}` in {spans:#?}");
    found[0]
}

#[tokio::test]
async fn an_events_path_is_one_trace_from_request_to_the_destinations_http() {
    let receiver = prefsync_tests::otlp::start().await.unwrap();
    let mock = mock_dotdigital().await;
    let endpoint = receiver.url();
    let server = Server::try_start("shutdown_grace_ms = 10000", |_| {
        format!("[telemetry]\notlp_endpoint = {endpoint:?}\nservice_name = \"prefsync-it\"\n")
    })
    .expect("prefsync serve started");
    let mut integration = dotdigital(Some("dd"));
    integration["authentication"]["url"] = json!(mock.url());
    server.create_integration(&integration).await;

    let body = event(
        "ev-traced-1",
        "2026-11-23T10:00:00Z",
        "ann@example.com",
        json!({"purposes": [{"id": "newsletter", "enabled": true}]}),
        json!({}),
    );
    let answer = server
        .client()
        .post(format!("{}/v1/events", server.url))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 202);
    eventually("the delivery to Dotdigital", || {
        mock.state
            .contact("ann@example.com")
            .is_some_and(|c| c.data_fields.get("NEWSLETTER") == Some(&json!(true)))
    })
    .await;
    // Recorded before the stop, so the delivery span has ended.
    server
        .wait_for_list("/v1/deliveries?integration=dd&status=done", 1)
        .await;
    let (clean, log) = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(clean, "{log}");

    let spans = receiver.state.spans();
    let requests = receiver.state.requests();
    assert!(!requests.is_empty(), "nothing exported:\n{log}");
    for request in &requests {
        assert_eq!(request.content_type, "application/x-protobuf");
        // Sent through the host's own client (`EgressClient` over HostHttp).
        assert!(
            request.user_agent.starts_with("prefsync/")
                && request.user_agent.contains("OTel-OTLP-Exporter-Rust"),
            "{request:?}"
        );
    }
    assert!(spans.iter().all(|s| s.service_name == "prefsync-it"));

    // The request span continues the caller's trace.
    let request = spans
        .iter()
        .find(|s| s.name == "POST /v1/events")
        .unwrap_or_else(|| panic!("no request span in {spans:#?}"));
    assert_eq!(request.trace_id, TRACE_ID);
    assert_eq!(request.parent_span_id, PARENT_ID);
    assert_eq!(request.kind, 2, "server");
    assert_eq!(request.attribute("http.route"), Some("/v1/events"));
    assert_eq!(request.attribute("http.request.method"), Some("POST"));
    assert_eq!(request.attribute("http.response.status_code"), Some("202"));

    // Ingest is its child, and names the event.
    let ingest = one(&spans, "ingest");
    assert_eq!(ingest.trace_id, TRACE_ID);
    assert_eq!(ingest.parent_span_id, request.span_id);
    assert_eq!(ingest.attribute("prefsync.event_count"), Some("1"));
    assert_eq!(
        ingest.attribute("prefsync.event_ids"),
        Some(r#"["ev-traced-1"]"#)
    );

    // The delivery waited in the outbox: its own trace, linked to the ingest.
    let delivery = one(&spans, "deliver dd");
    assert_eq!(delivery.parent_span_id, "", "a root span");
    assert_eq!(
        delivery.links,
        vec![(TRACE_ID.to_string(), ingest.span_id.clone())]
    );
    assert_eq!(delivery.attribute("prefsync.integration"), Some("dd"));
    assert_eq!(delivery.attribute("prefsync.deliveries"), Some("1"));

    // The connector call is the delivery's child.
    let call = one(&spans, "dotdigital deliver");
    assert_eq!(call.trace_id, delivery.trace_id);
    assert_eq!(call.parent_span_id, delivery.span_id);
    assert_eq!(
        call.attribute("prefsync.connector.type"),
        Some("dotdigital")
    );
    assert!(
        call.attribute("prefsync.connector.version")
            .is_some_and(|v| v.split('.').count() == 3),
        "{call:?}"
    );

    // Each request the connector sent is the call's child: method, host,
    // status, and never the path (it holds the user's email).
    let http: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.parent_span_id == call.span_id)
        .collect();
    assert!(!http.is_empty(), "no HTTP span under the call: {spans:#?}");
    assert_eq!(http.len(), mock.state.requests().len(), "{http:#?}");
    for span in &http {
        assert_eq!(span.kind, 3, "client");
        assert_eq!(span.attribute("server.address"), Some("127.0.0.1"));
        let method = span.attribute("http.request.method").unwrap();
        assert!(
            ["GET", "PUT", "POST", "PATCH"].contains(&method),
            "{span:?}"
        );
        assert_eq!(span.name, format!("{method} 127.0.0.1"));
        let status: u16 = span
            .attribute("http.response.status_code")
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status: {span:?}"));
        assert!((200..500).contains(&status), "{span:?}");
    }

    // No secret, user id or URL path anywhere in a name or an attribute.
    let credentials = base64_credentials("apiuser-1@apiconnector.com", PASSWORD);
    for span in &spans {
        let text = format!("{} {:?}", span.name, span.attributes);
        for secret in [
            PASSWORD,
            TOKEN,
            credentials.as_str(),
            "ann@example.com",
            "ann%40example.com",
            "/contacts/v3",
            "data-fields",
        ] {
            assert!(!text.contains(secret), "{secret} in {span:#?}");
        }
    }
}

fn base64_credentials(user: &str, password: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}

#[tokio::test]
async fn an_endpoint_the_egress_policy_refuses_stops_the_start() {
    // Loopback is not allowed: the collector on 127.0.0.1 cannot be reached.
    let refused = Server::try_start("", |_| {
        "[egress]\nallow_http = true\n[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\n"
            .to_string()
    });
    let log = refused.err().expect("the start is refused");
    assert!(
        log.contains("telemetry.otlp_endpoint http://127.0.0.1:4318") && log.contains("loopback"),
        "{log}"
    );
}
