//! The reference deployment's monitoring (`deploy/`): the Grafana dashboard
//! and the Prometheus alert rules name only metrics a live `/metrics`
//! scrape shows, so a renamed metric breaks this test, not an on-call
//! person's night.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::json;

fn deploy_file(path: &str) -> String {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// Every series name a scrape can hold: the families' `# TYPE` names (an
/// empty family still has one), their samples, and a histogram's
/// `_bucket`, `_sum` and `_count`.
fn scraped_names(scrape: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in scrape.lines() {
        if let Some(typed) = line.strip_prefix("# TYPE ") {
            let mut parts = typed.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                panic!("malformed TYPE line: {line}");
            };
            names.insert(name.to_string());
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}

/// The prefsync and process metric names a text mentions.
fn mentioned_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    for prefix in ["prefsync_", "process_"] {
        for (start, _) in text.match_indices(prefix) {
            let word_before =
                start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
            if word_before {
                continue;
            }
            let end = text[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(text.len(), |n| start + n);
            names.insert(text[start..end].to_string());
        }
    }
    names
}

/// A server that has taken events (one refused), delivered one to a
/// Dotdigital mock (whose account lacks the mapped field, so the delivery is
/// dead-lettered) and run one activation: every family has a series.
async fn scrape_after_traffic() -> String {
    // The mock answers as long as it is held.
    let (_mock, server, csv) = crate::activations::dotdigital_and_models(&[]).await;
    server
        .create_activation(&crate::activations::dd_users(&csv))
        .await;
    let run = server.run_activation("dd-users", "").await;
    assert_eq!(run["status"], "succeeded", "{run}");

    server
        .post_events(&crate::serve::event(
            "e1",
            "2026-11-23T10:00:00Z",
            "ann@example.com",
            json!({"purposes": [{"id": "newsletter", "enabled": true}]}),
            json!({}),
        ))
        .await;
    let (status, _) = server
        .send(reqwest::Method::POST, "/v1/events", Some("{"))
        .await;
    assert_eq!(status, 400);
    for _ in 0..400 {
        let scrape = server.metrics().await;
        if scrape.contains("prefsync_dead_letters{integration=\"dd\"} 1") {
            return scrape;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "the delivery was not dead-lettered:\n{}",
        server.metrics().await
    );
}

#[tokio::test]
async fn the_dashboard_and_the_alert_rules_use_only_metrics_a_scrape_shows() {
    let scrape = scrape_after_traffic().await;
    let known = scraped_names(&scrape);
    assert!(known.contains("prefsync_build_info"), "{scrape}");

    let dashboard = deploy_file("grafana/prefsync-dashboard.json");
    let rules = deploy_file("prometheus/alerts.yml");
    for (file, text, at_least) in [("dashboard", &dashboard, 15), ("alert rules", &rules, 10)] {
        let used = mentioned_names(text);
        assert!(used.len() >= at_least, "{file} names only {used:?}");
        let unknown: Vec<_> = used.difference(&known).collect();
        assert!(
            unknown.is_empty(),
            "the {file} use metrics no scrape shows: {unknown:?}\nscrape:\n{scrape}"
        );
    }

    // The dashboard is Grafana JSON whose every panel queries something.
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let queried: Vec<_> = panels
        .iter()
        .filter(|p| p["type"] != "row")
        .map(|p| {
            let exprs: Vec<&str> = p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["expr"].as_str())
                .collect();
            assert!(!exprs.is_empty(), "panel {} queries nothing", p["title"]);
            exprs
        })
        .collect();
    assert!(queried.len() >= 10, "{} panels", queried.len());

    // Each alert rule has an expression, a severity routing knows, and a
    // summary (the YAML itself is checked by promtool in deploy/check.sh).
    let alerts = rules.matches("- alert: ").count();
    assert!(alerts >= 8, "{alerts} alerts");
    for key in ["expr: ", "summary: "] {
        assert_eq!(rules.matches(key).count(), alerts, "one {key} per alert");
    }
    let severities =
        rules.matches("severity: page").count() + rules.matches("severity: ticket").count();
    assert_eq!(severities, alerts, "every alert is a page or a ticket");
}

#[test]
fn names_are_read_from_scrapes_and_texts() {
    let scrape = "# HELP a_seconds x\n# TYPE a_seconds histogram\n# TYPE b_total counter\nb_total{x=\"1\"} 2\nprocess_open_fds 3\n";
    let names = scraped_names(scrape);
    for name in [
        "a_seconds_bucket",
        "a_seconds_count",
        "b_total",
        "process_open_fds",
    ] {
        assert!(names.contains(name), "{name}: {names:?}");
    }
    let text = "rate(prefsync_events_total{a=\"b\"}[5m]) / my_prefsync_x + process_open_fds";
    assert_eq!(
        mentioned_names(text).into_iter().collect::<Vec<_>>(),
        ["prefsync_events_total", "process_open_fds"]
    );
}
