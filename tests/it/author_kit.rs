//! The connector author kit as an outsider meets it: `prefsync connector new`
//! into a directory outside the repository, the crate tested and built for
//! wasm32-wasip2 on its own, inspected, and replayed against its cassette;
//! cassettes recorded against a mock with the secrets scrubbed and replayed
//! without it; limits reported with their figures.

use std::path::{Path, PathBuf};
use std::process::Command;

use prefsync_tests::guests;
use prefsync_tests::support::{prefsync_bin, prefsync_command};
use serde_json::{Value as Json, json};

use super::cli::{connector_test, path_arg, scratch};

/// Runs a command to completion off the async threads: (success, stdout, stderr).
pub(super) async fn output(mut command: Command) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = command.output().expect("running a command");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

pub(super) fn prefsync(args: &[&str]) -> Command {
    let mut command = prefsync_command();
    command.args(args);
    command
}

/// `cargo` in the author's crate, with nothing of the outer build leaking in.
fn cargo(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO"));
    command.current_dir(dir).args(args);
    for var in [
        "CARGO_TARGET_DIR",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
    ] {
        command.env_remove(var);
    }
    command
}

pub(super) fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub(super) fn str_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// A `PATH` of only what an author without a prefsync checkout has: the
/// `prefsync` binary, cargo and rustc (one toolchain directory), and the
/// system linker rustc calls (`cc`, linked alone into `tools`).
fn author_path(tools: &Path) -> std::ffi::OsString {
    let cc = std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("cc"))
                .find(|cc| cc.is_file())
        })
        .expect("a C linker `cc` on PATH");
    std::fs::create_dir_all(tools).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(&cc, tools.join("cc")).unwrap();
    let dirs = [
        prefsync_bin().parent().unwrap().to_path_buf(),
        Path::new(env!("CARGO")).parent().unwrap().to_path_buf(),
        tools.to_path_buf(),
    ];
    std::env::join_paths(dirs).unwrap()
}

#[tokio::test]
async fn a_scaffolded_connector_builds_on_its_own_and_replays_its_cassette() {
    // Outside the repository (the system temp dir, not target/), from an
    // empty directory, with no way to a checkout: no --sdk, no PREFSYNC_SDK,
    // nothing on PATH but the binary and the toolchain.
    let root = tempfile::tempdir().unwrap();
    let tools = tempfile::tempdir().unwrap();
    let repo = workspace_root().canonicalize().unwrap();
    assert!(!root.path().starts_with(&repo));
    let lock_before = std::fs::read(repo.join("Cargo.lock")).unwrap();
    let crate_dir = root.path().join("acme-crm");
    let path = author_path(&tools.path().join("bin"));
    let as_author = |mut command: Command| {
        command.env("PATH", &path).env_remove("PREFSYNC_SDK");
        command
    };

    let mut new = as_author(prefsync(&["connector", "new", "acme-crm"]));
    new.current_dir(root.path());
    let (ok, stdout, stderr) = output(new).await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("created connector `acme-crm` (type id `acme_crm`)"),
        "{stdout}"
    );
    // The SDK and the WIT, vendored beside the crate, which points nowhere else.
    assert!(
        stdout.contains("vendored the guest SDK of prefsync"),
        "{stdout}"
    );
    let vendored = crate_dir.join("vendor/prefsync");
    for file in [
        "README.md",
        "plugins/sdk/Cargo.toml",
        "plugins/sdk/src/lib.rs",
        "plugins/sdk/schema/Cargo.toml",
        "wit/connector.wit",
    ] {
        assert!(
            vendored.join(file).is_file(),
            "vendor/prefsync/{file} missing"
        );
    }
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains(r#"prefsync-sdk = { path = "vendor/prefsync/plugins/sdk" }"#),
        "{manifest}"
    );
    for line in manifest.lines().filter(|l| l.contains("path =")) {
        assert!(
            !line.contains("..") && !line.contains("path = \"/"),
            "a path outside the crate: {line}"
        );
    }
    assert!(!manifest.contains(&*repo.to_string_lossy()), "{manifest}");
    for file in [
        "Cargo.toml",
        "README.md",
        "src/lib.rs",
        "src/config.rs",
        "src/api.rs",
        "examples/integration.json",
        "examples/record.json",
        "cassettes/record.json",
    ] {
        assert!(crate_dir.join(file).is_file(), "{file} missing");
    }
    // A second time into the same, now full, directory: refused, untouched.
    let (ok, _, stderr) = output(prefsync(&[
        "plugin",
        "new",
        "acme-crm",
        "--dir",
        &str_arg(&crate_dir),
    ]))
    .await;
    assert!(!ok);
    assert!(
        stderr.contains("already exists and is not empty"),
        "{stderr}"
    );
    // (Run by its old name, `plugin`: still works, and says the new one.)
    assert!(
        stderr.contains("`prefsync plugin` is now `prefsync connector`"),
        "{stderr}"
    );
    let (ok, _, stderr) = output(prefsync(&["connector", "new", "Acme_CRM"])).await;
    assert!(!ok);
    assert!(
        stderr.contains("lowercase letters, digits and single hyphens"),
        "{stderr}"
    );

    // The workspace's lock file pins the versions this suite already
    // downloaded, so the build needs no registry; cargo trims it to the crate.
    std::fs::copy(repo.join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();
    let (ok, stdout, stderr) = output(as_author(cargo(&crate_dir, &["test", "--quiet"]))).await;
    assert!(ok, "the scaffold's unit tests fail:\n{stdout}\n{stderr}");
    assert!(stdout.contains("4 passed"), "{stdout}");
    let (ok, _, stderr) = output(as_author(cargo(
        &crate_dir,
        &["build", "--release", "--target", "wasm32-wasip2"],
    )))
    .await;
    assert!(
        ok,
        "the scaffold does not build for wasm32-wasip2:\n{stderr}"
    );
    let wasm = crate_dir.join("target/wasm32-wasip2/release/acme_crm.wasm");
    assert!(wasm.is_file());

    let (ok, stdout, stderr) = output(prefsync(&["connector", "inspect", &str_arg(&wasm)])).await;
    assert!(ok, "{stderr}");
    for expected in [
        "type id:          acme_crm",
        "version:          0.1.0",
        "display name:     Acme Crm",
        "WIT:              prefsync:connector@0.1.3",
        "connection check",
    ] {
        assert!(stdout.contains(expected), "{expected} missing:\n{stdout}");
    }

    let test_args = |record: &Path, cassettes: &Path| -> Vec<String> {
        vec![
            str_arg(&wasm),
            "--config".into(),
            str_arg(&crate_dir.join("examples/integration.json")),
            "--record".into(),
            str_arg(record),
            "--cassette".into(),
            str_arg(cassettes),
        ]
    };
    let record = crate_dir.join("examples/record.json");
    let cassettes = crate_dir.join("cassettes");
    let (ok, stdout, stderr) = connector_test(test_args(&record, &cassettes)).await;
    assert!(ok, "{stdout}\n{stderr}");
    for expected in [
        "ann@example.com: delivered (created)",
        "  -> PUT https://api.example.com/v1/contacts/ann%40example.com",
        r#"{"attributes":{"email_channel":false,"newsletter":true}}"#,
        "  <- 201",
        "cassette: 1 exchange(s) replayed, outcome as recorded",
    ] {
        assert!(stdout.contains(expected), "{expected} missing:\n{stdout}");
    }
    assert!(!stdout.contains("replace-me-with-a-real-key"), "{stdout}");

    // The scaffold's connection check, replayed from its cassette.
    let (ok, stdout, stderr) = connector_test(vec![
        str_arg(&wasm),
        "--config".into(),
        str_arg(&crate_dir.join("examples/integration.json")),
        "--check".into(),
        "--cassette".into(),
        str_arg(&cassettes),
    ])
    .await;
    assert!(ok, "{stdout}\n{stderr}");
    for expected in [
        "check: connection accepted",
        "  -> GET https://api.example.com/v1/account",
        "cassette: 1 exchange(s) replayed, outcome as recorded",
    ] {
        assert!(stdout.contains(expected), "{expected} missing:\n{stdout}");
    }

    // Shipped to a running server while it runs: checked against the
    // customer's API (a receiver on loopback standing in for it), then
    // delivering through it.
    let api = prefsync_tests::mocks::receiver::Receiver::start(None)
        .await
        .unwrap();
    let server = crate::serve::Server::start();
    let (status, shipped) = server
        .post_bytes("/v1/connectors", std::fs::read(&wasm).unwrap())
        .await;
    assert_eq!(status, 201, "{shipped}");
    let integration = json!({
        "id": "acme", "type_id": "acme_crm",
        "authentication": {"url": api.url(), "api_key": "acme-key-0123456789"},
        "mappings": [{"id": "newsletter", "value": "consents_purposes_newsletter_enabled"}]
    });
    let (status, report) = server
        .send(
            reqwest::Method::POST,
            "/v1/integrations?check=true",
            Some(&integration.to_string()),
        )
        .await;
    assert_eq!(
        (status, &report["result"]),
        (200, &json!("accepted")),
        "{report}"
    );
    server.create_integration(&integration).await;
    let event = crate::serve::event(
        "acme-e1",
        "2026-12-04T10:00:00Z",
        "ann@example.com",
        json!({"purposes": [{"id": "newsletter", "enabled": true}]}),
        json!({}),
    );
    server.post_events(&event).await;
    assert_eq!(
        server
            .wait_outcomes("ann@example.com", Some("acme"), |o| !o.is_empty())
            .await,
        ["delivered:updated"]
    );
    let sent: Vec<(String, String)> = api
        .state
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    assert_eq!(
        sent,
        [
            ("GET".to_string(), "/v1/account".to_string()),
            (
                "PUT".to_string(),
                "/v1/contacts/ann%40example.com".to_string()
            )
        ]
    );
    assert_eq!(
        api.state.accepted().last().unwrap(),
        &json!({"attributes": {"newsletter": true}})
    );
    drop(server);

    // The author changes what is sent: the cassette has no such request.
    let changed = root.path().join("record.json");
    let mut fields: Json =
        serde_json::from_str(&std::fs::read_to_string(&record).unwrap()).unwrap();
    fields["consents_purposes_newsletter_enabled"] = json!(false);
    std::fs::write(&changed, fields.to_string()).unwrap();
    let (ok, stdout, stderr) = connector_test(test_args(&changed, &cassettes)).await;
    assert!(!ok, "{stdout}");
    for expected in [
        "FAIL unrecorded request: PUT https://api.example.com/v1/contacts/ann%40example.com",
        "the cassette's closest unused request has the same method and URL; its body differs:",
        "      attributes.newsletter: recorded true, sent false",
        "FAIL recorded request never made",
    ] {
        assert!(stdout.contains(expected), "{expected} missing:\n{stdout}");
    }
    assert!(
        stderr.contains("1 of 1 record(s) differ from their cassette"),
        "{stderr}"
    );

    // The API answers differently from what the cassette was recorded with:
    // the outcome changes, and the harness says which it expected.
    let staged = root.path().join("staged");
    std::fs::create_dir_all(&staged).unwrap();
    let mut cassette: Json =
        serde_json::from_str(&std::fs::read_to_string(cassettes.join("record.json")).unwrap())
            .unwrap();
    cassette["interactions"][0]["response"]["status"] = json!(200);
    std::fs::write(staged.join("record.json"), cassette.to_string()).unwrap();
    let (ok, stdout, _) = connector_test(test_args(&record, &staged)).await;
    assert!(!ok, "{stdout}");
    assert!(
        stdout.contains(
            "FAIL outcome differs from the cassette: recorded `delivered (created)`, got `delivered (updated)`"
        ),
        "{stdout}"
    );

    // A record without a cassette: said, with how to make one.
    let (ok, _, stderr) = connector_test(test_args(&record, &root.path().join("none"))).await;
    assert!(!ok);
    assert!(stderr.contains("no cassette at"), "{stderr}");
    assert!(stderr.contains("--live --cassette"), "{stderr}");

    assert_eq!(
        std::fs::read(repo.join("Cargo.lock")).unwrap(),
        lock_before,
        "the workspace was touched"
    );
}

#[tokio::test]
async fn a_cassette_recorded_live_keeps_no_secret_and_replays_offline() {
    use prefsync_tests::mocks::dotdigital::{Dotdigital, FieldType};
    const USER: &str = "apiuser-kit@apiconnector.com";
    const PASSWORD: &str = "Kit-Secret-pw-81";
    let mock = Dotdigital::start(USER, PASSWORD, &[("NEWSLETTER", FieldType::Boolean)])
        .await
        .unwrap();
    let config = scratch(
        "kit-dotdigital.json",
        json!({
            "type_id": "dotdigital",
            "authentication": {"url": mock.url(), "username": USER, "password": PASSWORD},
            "mappings": [{"id": "NEWSLETTER", "value": "consents_purposes_newsletter_enabled"}],
            "upsert_mode": true
        })
        .to_string()
        .as_bytes(),
    );
    let record = scratch(
        "kit-ann.json",
        br#"{"organization_user_id": "ann@example.com", "consents_purposes_newsletter_enabled": true}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let cassettes = dir.path().join("cassettes");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut args = vec![
            guests::DOTDIGITAL.to_string(),
            "--config".into(),
            path_arg(config.clone()),
            "--record".into(),
            path_arg(record.clone()),
            "--cassette".into(),
            str_arg(&cassettes),
            "--allow-loopback".into(),
            "--allow-http".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };

    let (ok, stdout, stderr) = connector_test(args(&["--live"])).await;
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("ann@example.com: delivered (created)"),
        "{stdout}"
    );
    let file = cassettes.join("kit-ann.json");
    assert!(
        stdout.contains(&format!("recorded into {}", file.display())),
        "{stdout}"
    );
    let live_requests = mock.state.requests().len();
    assert!(live_requests >= 1);

    let text = std::fs::read_to_string(&file).unwrap();
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{USER}:{PASSWORD}"),
    );
    for secret in [PASSWORD, USER, basic.as_str()] {
        assert!(!text.contains(secret), "{secret} in the cassette:\n{text}");
        assert!(!stdout.contains(secret) && !stderr.contains(secret));
    }
    let cassette: Json = serde_json::from_str(&text).unwrap();
    assert_eq!(cassette["outcome"], "delivered (created)");
    assert_eq!(cassette["connector"], "dotdigital 0.1.0");
    let interactions = cassette["interactions"].as_array().unwrap();
    assert_eq!(interactions.len(), live_requests);
    let auth = interactions[0]["request"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == "authorization")
        .expect("the authorization header is kept, redacted");
    assert_eq!(auth[1], "[REDACTED]");

    // Replay: the same outcome, and the mock sees nothing.
    let (ok, stdout, stderr) = connector_test(args(&[])).await;
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("outcome as recorded"), "{stdout}");
    assert_eq!(mock.state.requests().len(), live_requests);
}

#[tokio::test]
async fn limits_breaches_are_reported_with_their_figures() {
    let run = |mode: &str, limit: &[&str]| {
        let config = scratch(
            &format!("kit-probe-{mode}.json"),
            json!({"mode": mode}).to_string().as_bytes(),
        );
        let record = scratch(
            "kit-probe-record.json",
            br#"{"organization_user_id": "u1"}"#,
        );
        let mut args = vec![
            guests::PROBE.to_string(),
            "--config".into(),
            path_arg(config),
            "--record".into(),
            path_arg(record),
        ];
        args.extend(limit.iter().map(|a| a.to_string()));
        connector_test(args)
    };
    let (ok, stdout, stderr) = run("memory-bomb", &["--memory-mib", "16"]).await;
    assert!(
        !ok && stderr.contains("1 of 1 record(s) failed"),
        "{stderr}"
    );
    for expected in [
        "u1: failed (permanent): connector tried to grow its memory to",
        "when its limit is 16.00 MiB",
        "memory over its limit: asked for",
        "limit 16.00 MiB (peak held",
    ] {
        assert!(stdout.contains(expected), "{expected} missing:\n{stdout}");
    }
    let (ok, stdout, stderr) = run("loop", &["--cpu-ms", "200"]).await;
    assert!(
        !ok && stderr.contains("1 of 1 record(s) failed"),
        "{stderr}"
    );
    for expected in [
        "u1: failed (permanent): connector used more than its CPU budget of 200 ms",
        "CPU over its limit:",
        "ms used, limit 200 ms",
    ] {
        assert!(stdout.contains(expected), "{expected} missing:\n{stdout}");
    }
    // Limits outside the host config's ranges are refused, naming the flag,
    // before anything runs (a MiB count that would overflow bytes included).
    for (flag, value) in [("--memory-mib", "17592186044416"), ("--cpu-ms", "0")] {
        let (ok, _, stderr) = run("loop", &[flag, value]).await;
        assert!(!ok && stderr.contains(flag), "{flag} {value}: {stderr}");
    }
    // A connector's log lines are shown with the record.
    // (The probe then fails the record, so the run exits non-zero.)
    let (_, stdout, _) = run("leak", &[]).await;
    assert!(stdout.contains("  log info: my config is"), "{stdout}");
}
