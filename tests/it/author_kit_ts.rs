//! The TypeScript half of the author kit, as an outsider meets it:
//! `prefsync connector new --lang ts` into an empty directory outside the
//! repository, with nothing on `PATH` but the `prefsync` binary and Node.js
//! (npm fetches the SDK's tools from the registry, as an author's would);
//! unit-tested under node:test, built into a component, its cassettes
//! replayed, a cassette recorded against a mock, its connection checked,
//! and shipped to a running server that delivers through it.

use std::path::Path;
use std::process::Command;

use prefsync_tests::support::prefsync_bin;
use serde_json::{Value as Json, json};

use super::author_kit::{output, prefsync, str_arg, workspace_root};
use super::cli::connector_test;

/// `npm` (or `node`) in `dir`, with `PATH` holding only the binary's and Node's directories.
fn node_tool(program: &str, dir: &Path, args: &[&str]) -> Command {
    let node_dir = std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .find(|d| d.join("node").is_file() && d.join("npm").exists())
        })
        .expect("Node.js with npm on PATH (scripts/test.sh checks for it)");
    let path =
        std::env::join_paths([prefsync_bin().parent().unwrap().to_path_buf(), node_dir]).unwrap();
    let mut command = Command::new(program);
    command
        .current_dir(dir)
        .args(args)
        .env("PATH", path)
        .env_remove("PREFSYNC_SDK")
        .env("npm_config_audit", "false")
        .env("npm_config_fund", "false")
        .env("npm_config_update_notifier", "false");
    command
}

/// `# pass N` of node's test runner, with `# fail 0`.
fn passed(stdout: &str) -> usize {
    assert!(stdout.contains("# fail 0"), "{stdout}");
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("# pass "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `# pass` line:\n{stdout}"))
}

#[tokio::test]
async fn a_scaffolded_typescript_connector_is_tested_built_checked_and_shipped() {
    let root = tempfile::tempdir().unwrap();
    let repo = workspace_root().canonicalize().unwrap();
    assert!(!root.path().starts_with(&repo));
    let dir = root.path().join("acme-crm");

    let mut new = prefsync(&["connector", "new", "acme-crm", "--lang", "ts"]);
    new.current_dir(root.path()).env_remove("PREFSYNC_SDK");
    let (ok, stdout, stderr) = output(new).await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("created connector `acme-crm` (type id `acme_crm`)"),
        "{stdout}"
    );
    assert!(stdout.contains("npm install && npm test"), "{stdout}");
    for file in [
        "package.json",
        "tsconfig.json",
        "src/index.ts",
        "src/connector.ts",
        "src/config.ts",
        "src/api.ts",
        "test/connector.test.ts",
        "examples/integration.json",
        "cassettes/record.json",
        "cassettes/check.json",
        "vendor/prefsync/plugins/sdk-js/package.json",
        "vendor/prefsync/plugins/sdk-js/generated/destination.d.ts",
        "vendor/prefsync/wit/connector.wit",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    assert!(
        !dir.join("vendor/prefsync/plugins/sdk").exists(),
        "the Rust SDK is not for this one"
    );
    let package = std::fs::read_to_string(dir.join("package.json")).unwrap();
    assert!(!package.contains(&*repo.to_string_lossy()), "{package}");
    let package: Json = serde_json::from_str(&package).unwrap();
    assert_eq!(
        package["devDependencies"]["@prefsync/sdk"],
        "file:vendor/prefsync/plugins/sdk-js"
    );

    // Packages the webhook-js build already put in npm's cache come from there.
    let (ok, stdout, stderr) = output(node_tool(
        "npm",
        &dir,
        &["install", "--prefer-offline", "--loglevel=error"],
    ))
    .await;
    assert!(ok, "npm install failed:\n{stdout}\n{stderr}");

    // The scaffold's unit tests, against the SDK's mock host.
    let (ok, stdout, stderr) = output(node_tool("npm", &dir, &["test"])).await;
    assert!(ok, "the scaffold's unit tests fail:\n{stdout}\n{stderr}");
    assert_eq!(passed(&stdout), 4, "{stdout}");

    // The vendored SDK's own checks, with the author's installed tools: its
    // tests, its types, and its WIT types current with the vendored WIT
    // (the repository's copy is byte for byte the same: `vendor.rs` tests it).
    let sdk = dir.join("vendor/prefsync/plugins/sdk-js");
    let tool = dir.join("node_modules/@prefsync/sdk/tools/prefsync-js.mjs");
    let (ok, stdout, stderr) = output(node_tool("node", &sdk, &[&str_arg(&tool), "test"])).await;
    assert!(ok, "the SDK's tests fail:\n{stdout}\n{stderr}");
    assert!(passed(&stdout) >= 19, "{stdout}");
    let tsc = dir.join("node_modules/typescript/bin/tsc");
    let (ok, stdout, stderr) = output(node_tool(
        "node",
        &sdk,
        &[&str_arg(&tsc), "--noEmit", "-p", "."],
    ))
    .await;
    assert!(ok, "the SDK does not type-check:\n{stdout}\n{stderr}");
    let (ok, stdout, stderr) = output(node_tool(
        "node",
        &sdk,
        &[&str_arg(&tool), "types", "--check"],
    ))
    .await;
    assert!(
        ok,
        "the SDK's generated types are stale:\n{stdout}\n{stderr}"
    );

    // A type error stops the build before any component is made, naming the place.
    let api = dir.join("src/api.ts");
    let source = std::fs::read_to_string(&api).unwrap();
    std::fs::write(
        &api,
        source.replace("return delivered('created');", "return 'created';"),
    )
    .unwrap();
    let (ok, stdout, stderr) = output(node_tool("npm", &dir, &["run", "build"])).await;
    assert!(!ok, "{stdout}");
    assert!(
        stdout.contains("src/api.ts(") && stdout.contains("error TS"),
        "{stdout}\n{stderr}"
    );
    assert!(stderr.contains("the type check failed"), "{stderr}");
    let wasm = dir.join("target/acme_crm.wasm");
    assert!(!wasm.exists());
    std::fs::write(&api, source).unwrap();

    let (ok, stdout, stderr) = output(node_tool("npm", &dir, &["run", "build"])).await;
    assert!(ok, "npm run build failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("exports connector, connection"), "{stdout}");
    assert!(wasm.is_file());

    let (ok, stdout, stderr) = output(prefsync(&["connector", "inspect", &str_arg(&wasm)])).await;
    assert!(ok, "{stderr}");
    for expected in [
        "type id:          acme_crm",
        "version:          0.1.0",
        "display name:     Acme Crm",
        "WIT:              prefsync:connector@0.1.3",
        "capabilities:     connection check",
        "\"writeOnly\": true",
    ] {
        assert!(stdout.contains(expected), "{expected} missing:\n{stdout}");
    }

    // The scaffold's cassettes (the Rust scaffold's too: the same requests), replayed.
    let config = dir.join("examples/integration.json");
    let cassettes = dir.join("cassettes");
    let (ok, stdout, stderr) = connector_test(vec![
        str_arg(&wasm),
        "--config".into(),
        str_arg(&config),
        "--record".into(),
        str_arg(&dir.join("examples/record.json")),
        "--check".into(),
        "--cassette".into(),
        str_arg(&cassettes),
    ])
    .await;
    assert!(ok, "{stdout}\n{stderr}");
    for expected in [
        "check: connection accepted",
        "  -> GET https://api.example.com/v1/account",
        "ann@example.com: delivered (created)",
        r#"{"attributes":{"email_channel":false,"newsletter":true}}"#,
    ] {
        assert!(stdout.contains(expected), "{expected} missing:\n{stdout}");
    }
    assert_eq!(stdout.matches("outcome as recorded").count(), 2, "{stdout}");

    // Recorded live against the customer's API (a receiver on loopback
    // standing in for it), secrets scrubbed, then replayed without it.
    const KEY: &str = "acme-Secret-key-5150";
    let api = prefsync_tests::mocks::receiver::Receiver::start(None)
        .await
        .unwrap();
    let live_config = root.path().join("live.json");
    let mut live: Json = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    live["authentication"] = json!({"url": api.url(), "api_key": KEY});
    std::fs::write(&live_config, live.to_string()).unwrap();
    let recorded = root.path().join("recorded");
    let record_args = |extra: &[&str]| {
        let mut args = vec![
            str_arg(&wasm),
            "--config".into(),
            str_arg(&live_config),
            "--record".into(),
            str_arg(&dir.join("examples/record.json")),
            "--check".into(),
            "--cassette".into(),
            str_arg(&recorded),
            "--allow-loopback".into(),
            "--allow-http".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    let (ok, stdout, stderr) = connector_test(record_args(&["--live"])).await;
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("ann@example.com: delivered (updated)"),
        "{stdout}"
    );
    assert_eq!(api.state.requests().len(), 2);
    for file in ["record.json", "check.json"] {
        let text = std::fs::read_to_string(recorded.join(file)).unwrap();
        assert!(!text.contains(KEY), "the key in {file}:\n{text}");
        assert!(text.contains("[REDACTED]"), "{file}:\n{text}");
    }
    assert!(!stdout.contains(KEY) && !stderr.contains(KEY));
    let (ok, stdout, stderr) = connector_test(record_args(&[])).await;
    assert!(ok, "{stdout}\n{stderr}");
    assert_eq!(stdout.matches("outcome as recorded").count(), 2, "{stdout}");
    assert_eq!(api.state.requests().len(), 2, "a replay reaches nothing");

    // Shipped to a running server while it runs, checked, then delivering.
    let server = crate::serve::Server::start();
    let (status, shipped) = server
        .post_bytes("/v1/connectors", std::fs::read(&wasm).unwrap())
        .await;
    assert_eq!(status, 201, "{shipped}");
    let integration = json!({
        "id": "acme", "type_id": "acme_crm",
        "authentication": {"url": api.url(), "api_key": KEY},
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
    // The destination refuses the key, then cannot answer: the TypeScript
    // check's verdicts reach the API as the Rust connectors' do.
    api.state.push_statuses([401]);
    let (status, report) = server
        .send(reqwest::Method::POST, "/v1/integrations/acme/check", None)
        .await;
    assert_eq!(
        (status, &report["result"]),
        (200, &json!("refused")),
        "{report}"
    );
    assert_eq!(
        report["problems"][0]["path"], "authentication.api_key",
        "{report}"
    );
    api.state.push_statuses([503]);
    let (status, body) = server
        .send(reqwest::Method::POST, "/v1/integrations/acme/check", None)
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("the destination answered HTTP 503; try again later"),
        "{body}"
    );
    let before = api.state.requests().len();
    let event = crate::serve::event(
        "acme-ts-e1",
        "2026-01-05T10:00:00Z",
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
    let sent = &api.state.requests()[before..];
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].method.as_str(), sent[0].path.as_str()),
        ("PUT", "/v1/contacts/ann%40example.com")
    );
    assert_eq!(
        api.state.accepted().last().unwrap(),
        &json!({"attributes": {"newsletter": true}})
    );
    let (clean, log) = server.terminate();
    assert!(clean);
    assert!(!log.contains(KEY), "the key was logged");
}
