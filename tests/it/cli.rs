//! `prefsync connector inspect` and `prefsync connector test`, run as the real binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use prefsync_tests::guests;
use prefsync_tests::support::{prefsync_bin, prefsync_command};

fn inspect(file: &str) -> (bool, String, String) {
    let out = prefsync_command()
        .args(["connector", "inspect", file])
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
        "WIT:              prefsync:connector@0.1.3",
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

#[test]
fn inspect_runs_without_a_cache_it_cannot_create_and_says_so_once() {
    // Under a regular file: the directory cannot be created.
    let blocker = scratch("cache-blocker", b"");
    let out = prefsync_command()
        .args(["connector", "inspect", guests::DOTDIGITAL])
        .env("PREFSYNC_CACHE_DIR", blocker.join("artifacts"))
        .output()
        .expect("running prefsync");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("type id:          dotdigital"), "{stdout}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected:\n{stderr}");
    assert!(
        lines[0].starts_with("warning: not caching compiled components: cannot create"),
        "{stderr}"
    );
}

pub(crate) fn scratch(name: &str, bytes: &[u8]) -> PathBuf {
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

/// Runs `prefsync connector test <args>` off the async threads: (success, stdout, stderr).
pub(crate) async fn connector_test(args: Vec<String>) -> (bool, String, String) {
    run_connector_test(prefsync_command(), args).await
}

/// [`connector_test`] with its compiled components cached in `cache`
/// (`PREFSYNC_CACHE_DIR`) instead of the tests' shared cache.
pub(crate) async fn connector_test_caching_in(
    cache: &Path,
    args: Vec<String>,
) -> (bool, String, String) {
    let mut command = prefsync_command();
    command.env("PREFSYNC_CACHE_DIR", cache);
    run_connector_test(command, args).await
}

async fn run_connector_test(mut command: Command, args: Vec<String>) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = command
            .args(["connector", "test"])
            .args(&args)
            .output()
            .expect("running prefsync");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

pub(crate) fn path_arg(path: PathBuf) -> String {
    path.to_string_lossy().into_owned()
}

#[tokio::test]
async fn connector_test_delivers_records_and_reports_each_outcome() {
    use prefsync_tests::mocks::dotdigital::{Dotdigital, FieldType};
    let mock = Dotdigital::start(
        "cli-user",
        "cli-Secret-pw",
        &[("NEWSLETTER", FieldType::Boolean)],
    )
    .await
    .unwrap();
    let config = scratch(
        "cli-dotdigital.json",
        serde_json::json!({
            "type_id": "dotdigital",
            "authentication": {"url": mock.url(), "username": "cli-user", "password": "cli-Secret-pw"},
            "mappings": [{"id": "NEWSLETTER", "value": "consents_purposes_newsletter_enabled"}],
            "upsert_mode": true
        })
        .to_string()
        .as_bytes(),
    );
    let record = scratch(
        "cli-record.json",
        br#"{"organization_user_id": "cli@example.com", "consents_purposes_newsletter_enabled": true}"#,
    );
    let args = |extra: &[&str]| -> Vec<String> {
        let mut args = vec![
            guests::DOTDIGITAL.to_string(),
            "--config".into(),
            path_arg(config.clone()),
            "--record".into(),
            path_arg(record.clone()),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    // Without the flags the loopback mock is out of reach: the run fails,
    // and the one denial names both flags to pass, in this command's words.
    let (ok, stdout, stderr) = connector_test(args(&[])).await;
    assert!(!ok, "{stdout}");
    for expected in [
        "cli@example.com: failed (permanent)",
        "pass --allow-http",
        "(pass --allow-loopback)",
        "FAIL the record was not delivered",
    ] {
        assert!(stdout.contains(expected), "{expected} missing:\n{stdout}");
    }
    assert!(!stdout.contains("egress.allow"), "{stdout}");
    assert!(stderr.contains("1 of 1 record(s) failed"), "{stderr}");
    // Recording then makes no cassette of the denial, and says why.
    let cassettes = tempfile::tempdir().unwrap();
    let (ok, stdout, _) = connector_test(args(&[
        "--live",
        "--cassette",
        &cassettes.path().to_string_lossy(),
    ]))
    .await;
    assert!(!ok, "{stdout}");
    assert!(
        stdout.contains("FAIL not recording") && stdout.contains("no request got an answer"),
        "{stdout}"
    );
    assert_eq!(std::fs::read_dir(cassettes.path()).unwrap().count(), 0);
    assert!(mock.state.requests().is_empty());

    let (ok, stdout, stderr) = connector_test(args(&["--allow-loopback", "--allow-http"])).await;
    assert!(ok, "{stderr}");
    for expected in [
        "cli@example.com: delivered (created)",
        "  <- 201",
        "of 64.00 MiB limit",
        "ms of 2000 ms limit",
    ] {
        assert!(stdout.contains(expected), "{expected} missing:\n{stdout}");
    }
    assert!(!stdout.contains("cli-Secret-pw") && !stderr.contains("cli-Secret-pw"));
    assert_eq!(
        mock.state.contact("cli@example.com").unwrap().data_fields["NEWSLETTER"],
        serde_json::json!(true)
    );

    // A config the connector refuses: every problem listed, non-zero exit.
    let bad = scratch(
        "cli-bad.json",
        br#"{"type_id": "dotdigital", "authentication": {"url": "ftp://x"}, "mappings": []}"#,
    );
    let (ok, _, stderr) = connector_test(vec![
        guests::DOTDIGITAL.to_string(),
        "--config".into(),
        path_arg(bad),
        "--record".into(),
        path_arg(record.clone()),
    ])
    .await;
    assert!(!ok);
    assert!(stderr.contains("is not a valid config"), "{stderr}");
    assert!(stderr.contains("authentication.username"), "{stderr}");
}

#[tokio::test]
async fn connector_test_reads_webhooks_with_a_connector_that_can() {
    let config = scratch("cli-probe.json", br#"{"mode": "noop"}"#);
    let good = scratch(
        "cli-webhook.json",
        br#"{"updates": [{"user": "ann", "set": {"consents_purposes_newsletter_enabled": false}}], "ignored": ["`Promo` is not mapped"]}"#,
    );
    let refused = scratch("cli-webhook-refused.json", br#"{"refuse": "no eventType"}"#);
    let (ok, stdout, stderr) = connector_test(vec![
        guests::PROBE.to_string(),
        "--config".into(),
        path_arg(config.clone()),
        "--webhook".into(),
        path_arg(good.clone()),
        "--webhook".into(),
        path_arg(refused),
    ])
    .await;
    assert!(ok, "{stderr}");
    for expected in [
        "cli-webhook.json: 1 update(s)",
        "  ann: consents_purposes_newsletter_enabled = false",
        "  ignored: `Promo` is not mapped",
        "cli-webhook-refused.json: refused (400): no eventType",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected} missing from:\n{stdout}"
        );
    }
    // Dotdigital does not read webhooks: said plainly.
    let (ok, _, stderr) = connector_test(vec![
        guests::DOTDIGITAL.to_string(),
        "--config".into(),
        path_arg(scratch(
            "cli-dd-minimal.json",
            br#"{"type_id": "dotdigital", "authentication": {"url": "https://r1-api.dotdigital.com", "username": "u", "password": "p"}, "mappings": [{"id": "NEWSLETTER", "value": "consents_purposes_newsletter_enabled"}]}"#,
        )),
        "--webhook".into(),
        path_arg(good),
    ])
    .await;
    assert!(!ok);
    assert!(
        stderr.contains("connector `dotdigital` does not read webhooks"),
        "{stderr}"
    );
}

#[test]
fn version_names_the_connector_contract_and_errors_say_each_cause_once() {
    let out = Command::new(prefsync_bin())
        .arg("--version")
        .output()
        .expect("running prefsync");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(stdout.contains("prefsync:connector@0.1.x"), "{stdout}");

    let missing = std::env::temp_dir().join("prefsync-no-such-dir/missing.toml");
    let out = Command::new(prefsync_bin())
        .args(["serve", "--config"])
        .arg(&missing)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("running prefsync");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.matches("os error 2").count(), 1, "{stderr}");
    assert!(stderr.contains("missing.toml"), "{stderr}");
    assert!(!stderr.contains("stack backtrace"), "{stderr}");
}

/// Writes a config whose directories hold what `files` lists; returns it.
fn config_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["connectors", "integrations", "activations", "sources"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    std::fs::copy(
        guests::DOTDIGITAL,
        dir.path().join("connectors/dotdigital.wasm"),
    )
    .unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let at = |sub: &str| dir.path().join(sub);
    std::fs::write(
        dir.path().join("prefsync.toml"),
        format!(
            "[storage]\ndata_dir = {:?}\n[connectors]\ndir = {:?}\n[integrations]\ndir = {:?}\n\
             [activations]\ndir = {:?}\nsource_dir = {:?}\n[egress]\nallow_loopback = true\nallow_http = true\n",
            at("data"),
            at("connectors"),
            at("integrations"),
            at("activations"),
            at("sources"),
        ),
    )
    .unwrap();
    dir
}

fn config_check(dir: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(prefsync_bin())
        .args(["config", "check", "--config"])
        .arg(dir.join("prefsync.toml"))
        .output()
        .expect("running prefsync");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const GOOD_INTEGRATION: &str = r#"{
    "type_id": "dotdigital",
    "authentication": {
        "url": "http://127.0.0.1:18081",
        "username": "demo-apiuser@apiconnector.com",
        "password": "demo-password"
    },
    "mappings": [{ "id": "NEWSLETTER", "value": "consents_purposes_newsletter_enabled" }],
    "upsert_mode": true
}"#;

#[test]
fn config_check_passes_a_good_config_and_names_file_line_and_field_of_each_problem() {
    let good = config_dir(&[
        ("integrations/dd.json", GOOD_INTEGRATION),
        (
            "sources/users.csv",
            "email,first_name\nann@example.com,Ann\n",
        ),
        (
            "activations/users.json",
            r#"{"integration": "dd", "source": {"type": "csv", "path": "users.csv"},
                "key": {"column": "email", "field": "email"},
                "mappings": [{"id": "FIRSTNAME", "value": "first_name"}]}"#,
        ),
    ]);
    let (ok, stdout, stderr) = config_check(good.path());
    assert!(ok, "{stdout}{stderr}");
    assert!(
        stdout.contains("ok: ")
            && stdout
                .contains("1 connector type(s) (dotdigital), 1 integration(s), 1 activation(s)"),
        "{stdout}"
    );
    assert!(
        !good.path().join("data").exists(),
        "a check wrote the data dir"
    );

    let bad_url = GOOD_INTEGRATION.replace("http://127.0.0.1:18081", "javascript:alert(1)");
    let unknown_type = GOOD_INTEGRATION.replace("\"dotdigital\"", "\"nope\"");
    let bad = config_dir(&[
        ("integrations/bad-url.json", &bad_url),
        (
            "integrations/broken.json",
            "{\n  \"type_id\": \"dotdigital\",\n  \"mappings\": [,]\n}",
        ),
        ("integrations/unknown.json", &unknown_type),
        (
            "activations/users.json",
            "{\n  \"integration\": \"dd\",\n  \"source\": {\"type\": \"csv\", \"path\": \"users.csv\"},\n  \"key\": {\"column\": \"email\", \"field\": \"email\"},\n  \"mappings\": [],\n  \"schedule\": {\"every\": \"soon\"}\n}",
        ),
    ]);
    let (ok, stdout, stderr) = config_check(bad.path());
    assert!(!ok, "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    let has = |file: &str, line: usize, text: &str| {
        lines
            .iter()
            .any(|l| l.contains(&format!("{file}:{line}: ")) && l.contains(text))
    };
    assert!(has("bad-url.json", 4, "authentication.url"), "{stdout}");
    assert!(
        has("broken.json", 3, "column 16: expected value"),
        "{stdout}"
    );
    assert!(!stdout.contains("at line"), "{stdout}");
    assert!(
        has("unknown.json", 2, "type_id: unknown connector type `nope`"),
        "{stdout}"
    );
    assert!(has("users.json", 6, "schedule"), "{stdout}");
    assert!(
        !stdout.contains("alert(1)"),
        "a problem quoted the value: {stdout}"
    );
    assert!(stderr.contains("problem(s) found"), "{stderr}");
}
