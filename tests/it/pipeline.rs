//! The benchmark's pipeline driver and the native adapter, kept honest at a
//! small size: the same load through the component and through the natively
//! linked logic reaches the mock completely, once per user.

use std::sync::Arc;
use std::time::Duration;

use prefsync::runtime::{Destination, Limits};
use prefsync_tests::guests;
use prefsync_tests::native::NativeConnector;
use prefsync_tests::pipeline::{Load, measure, measure_process};
use prefsync_tests::support::{loopback_egress, prefsync_bin, runtime};

const LOAD: Load = Load {
    users: 60,
    events_per_post: 7,
    posters: 3,
    rate: Some(500.0),
    deadline: Duration::from_secs(60),
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_component_and_the_native_logic_deliver_the_same_load() {
    let component: Arc<dyn Destination> = runtime(loopback_egress(), Limits::default())
        .load_file(guests::DOTDIGITAL.as_ref())
        .await
        .unwrap();
    let native: Arc<dyn Destination> = Arc::new(
        NativeConnector::<prefsync_dotdigital::Dotdigital>::new(loopback_egress()).unwrap(),
    );
    assert_eq!(component.info().type_id, native.info().type_id);
    assert_eq!(component.info().config_schema, native.info().config_schema);
    for destination in [component, native] {
        let run = measure(destination, LOAD).await.unwrap();
        assert_eq!(run.latencies.len(), LOAD.users);
        // No faults injected: exactly one request per user.
        assert_eq!(run.mock_requests, LOAD.users);
        assert!(run.percentile(50.0) <= run.percentile(99.0));
        assert!(run.end_to_end >= run.percentile(100.0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serve_process_delivers_the_load_and_its_cpu_time_is_read() {
    let run = measure_process(&prefsync_bin(), LOAD).await.unwrap();
    assert_eq!(run.latencies.len(), LOAD.users);
    assert_eq!(run.mock_requests, LOAD.users);
    let per_event = run
        .cpu_per_event_us()
        .expect("the server's CPU time was read");
    // A debug build on a busy machine: generous, but a server that did not
    // run (or a reading of the wrong process) fails it.
    assert!(per_event < 1_000_000.0, "{per_event} µs per event");
}
