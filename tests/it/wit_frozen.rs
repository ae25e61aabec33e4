//! A connector built from source against a frozen copy of the contract as
//! released at 0.1.0 keeps loading and running on this 0.1.x host, in the
//! runtime and through the registry.

use prefsync::runtime::{DeliveredKind, Limits, Outcome, Value};
use prefsync_tests::guests;
use prefsync_tests::support::{loopback_egress, record, runtime};
use reqwest::Method;
use serde_json::json;

use super::serve::Server;

#[tokio::test]
async fn a_guest_of_the_frozen_0_1_0_contract_loads_and_delivers() {
    let connector = runtime(loopback_egress(), Limits::default())
        .load_file(guests::WIT_FROZEN.as_ref())
        .await
        .unwrap();
    let info = connector.info();
    assert_eq!(info.wit_version, "0.1.0");
    assert_eq!(info.type_id, "frozen");
    assert!(info.batching);
    assert!(!info.inbound_webhooks);

    let config = json!({"type_id": "frozen", "mappings": []});
    assert!(connector.validate(&config).await.unwrap().is_empty());
    let problems = connector
        .validate(&json!({"type_id": "frozen"}))
        .await
        .unwrap();
    assert_eq!(problems[0].path, "mappings");

    let integration = connector.integration("frozen-1", &config);
    let delivery = connector
        .deliver(
            &integration,
            vec![
                record(
                    "a",
                    &[("consents_purposes_x_enabled", Value::Boolean(true))],
                ),
                record("b", &[]),
            ],
        )
        .await;
    assert_eq!(delivery.error, None);
    assert_eq!(
        delivery.outcomes,
        vec![
            Outcome::Delivered(DeliveredKind::Unchanged),
            Outcome::Skipped("b: no properties".into())
        ]
    );
    assert_eq!(
        delivery.report.stats.log[0].message,
        "frozen connector called"
    );
    assert_eq!(delivery.report.stats.log[0].fields, "records=2");
}

#[tokio::test]
async fn the_registry_installs_it_as_a_new_type() {
    let server = Server::start();
    let (status, report) = server
        .post_bytes("/v1/connectors", std::fs::read(guests::WIT_FROZEN).unwrap())
        .await;
    assert_eq!(status, 201, "{report}");
    assert_eq!(report["action"], "install");
    let (_, state) = server
        .send(Method::GET, "/v1/connectors/frozen", None)
        .await;
    assert_eq!(state["active"]["wit_version"], "0.1.0");
    assert_eq!(
        state["versions"][0]["description"]["display_name"],
        "Built against WIT 0.1.0"
    );
}
