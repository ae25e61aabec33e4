//! A valid component of another world is refused by name.

use prefsync::runtime::{Limits, LoadError};
use prefsync_tests::guests;
use prefsync_tests::support::{loopback_egress, runtime};

#[tokio::test]
async fn a_component_of_another_world_is_refused() {
    let rt = runtime(loopback_egress(), Limits::default());
    let err = rt
        .load_file(guests::OTHER_WORLD.as_ref())
        .await
        .unwrap_err();
    assert!(matches!(err, LoadError::WrongWorld { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("does not export `prefsync:connector/connector`"),
        "{message}"
    );
    assert!(message.contains("greet"), "{message}");
}
