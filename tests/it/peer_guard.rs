//! The peer benchmark's loopback guard (`tests/benches/peer/guard.mjs`): its
//! decisions, and that once installed it refuses a vendor host before any
//! socket or name lookup exists (`guard.test.mjs`, under node's test runner;
//! no npm package needed). The benchmark itself is not run here.

use std::path::Path;
use std::process::Command;

#[test]
fn peer_bench_loopback_guard_refuses_every_non_loopback_host() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peer");
    let output = Command::new("node")
        .args(["--test", "guard.test.mjs"])
        .current_dir(&dir)
        .output()
        .expect("node on PATH (scripts/test.sh checks for it)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "guard.test.mjs failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Every test ran: a file that silently defines none would pass.
    assert!(stdout.contains("# pass 3"), "{stdout}");
    assert!(stdout.contains("# fail 0"), "{stdout}");
}
