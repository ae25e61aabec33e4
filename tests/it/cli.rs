//! `prefsync plugin inspect`, run as the real binary.

use std::path::PathBuf;
use std::process::Command;

use prefsync_tests::guests;
use prefsync_tests::support::prefsync_bin;

fn inspect(file: &str) -> (bool, String, String) {
    let out = Command::new(prefsync_bin())
        .args(["plugin", "inspect", file])
        .output()
        .expect("running prefsync");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn inspect_shows_the_description_and_wit_version() {
    let (ok, stdout, stderr) = inspect(guests::DOTDIGITAL);
    assert!(ok, "{stderr}");
    for expected in [
        "type id:          dotdigital",
        "display name:     Dotdigital",
        "WIT:              prefsync:connector@0.1.1",
        "default hosts:    r1-api.dotdigital.com, r2-api.dotdigital.com, r3-api.dotdigital.com",
        "max batch size:   1",
        "\"upsert_mode\"",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected} missing from:\n{stdout}"
        );
    }
}

fn scratch(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn one_line_error(file: &str) -> String {
    let (ok, stdout, stderr) = inspect(file);
    assert!(!ok, "inspect of {file} should fail: {stdout}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected:\n{stderr}");
    lines[0].to_string()
}

#[test]
fn inspect_refuses_what_is_not_a_connector_in_one_line() {
    let text = scratch("not-wasm.wasm", b"hello, I am text");
    assert!(one_line_error(text.to_str().unwrap()).contains("not a WebAssembly file"));

    // The smallest valid core module: magic and version 1.
    let core = scratch("core-module.wasm", b"\0asm\x01\0\0\0");
    let line = one_line_error(core.to_str().unwrap());
    assert!(
        line.contains("core WebAssembly module, not a component"),
        "{line}"
    );
    assert!(line.contains("wasm32-wasip2"), "{line}");

    let line = one_line_error(guests::OTHER_WORLD);
    assert!(
        line.contains("does not export `prefsync:connector/connector`"),
        "{line}"
    );

    let line = one_line_error("/nonexistent/connector.wasm");
    assert!(
        line.contains("cannot read /nonexistent/connector.wasm"),
        "{line}"
    );
}
