//! A connector of an unknown major version of the contract is refused with
//! the versions this host supports — by the runtime, by `connector inspect`,
//! and as an upgrade, which leaves the running version serving.

use prefsync::runtime::{Limits, LoadError};
use prefsync_tests::guests;
use prefsync_tests::support::{loopback_egress, runtime};
use reqwest::Method;

use super::serve::Server;

const REFUSAL: &str =
    "the component is built against prefsync:connector/connector@1.0.0; this host supports 0.1.x";

#[tokio::test]
async fn an_unknown_major_version_is_refused_by_name() {
    let error = runtime(loopback_egress(), Limits::default())
        .load_file(guests::WIT_NEXT_MAJOR.as_ref())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, LoadError::UnsupportedVersion { found } if found == "1.0.0"),
        "{error}"
    );
    assert_eq!(error.to_string(), REFUSAL);

    let out = prefsync_tests::support::prefsync_command()
        .args(["connector", "inspect", guests::WIT_NEXT_MAJOR])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(REFUSAL));
}

#[tokio::test]
async fn as_an_upgrade_it_leaves_the_running_version() {
    let server = Server::start();
    let (status, answer) = server
        .post_bytes(
            "/v1/connectors",
            std::fs::read(guests::WIT_NEXT_MAJOR).unwrap(),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains(REFUSAL),
        "{answer}"
    );
    let (_, state) = server
        .send(Method::GET, "/v1/connectors/dotdigital", None)
        .await;
    assert_eq!(state["active"]["version"], "0.1.0");
    assert_eq!(state["versions"].as_array().unwrap().len(), 1);
}
