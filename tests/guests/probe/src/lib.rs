//! A connector that does what its config's `mode` says, so the tests can
//! show the sandbox containing it:
//!
//! - `noop`: maps the record through `mappings` and reports it unchanged
//!   (the benchmark's per-call baseline);
//! - `loop`: spins forever; `memory-bomb`: allocates until refused;
//! - `http`: requests `target` (not necessarily `url`) and reports what happened;
//! - `sandbox`: tries files, directories and environment variables;
//! - `panic`: panics; `leak`: logs, prints and returns its own secrets
//!   (`authentication` and `properties`); `panic-leak`: panics quoting them;
//! - `leak-validate`: its validation refuses the config, quoting them;
//! - `cache`: counts its calls in the host cache.
//!
//! It also reads webhooks (the optional `inbound` interface), doing what the
//! body says: `{"updates": [{"user", "set": {property: value}, "at"?, "id"?}],
//! "ignored": [..]}` becomes a receipt; `{"refuse": text}` refuses the
//! request; `{"refuse_with_secrets": true}` refuses it quoting the config's
//! authentication; `{"panic": text}` panics; `{"panic_with_secrets": true}`
//! panics quoting the config's secrets; `{"spin": true}` loops forever.
//!
//! Its schema marks `properties.signing_material` `"writeOnly"`: a secret
//! only the schema names.

use prefsync_sdk::mapping::mapped_json;
use prefsync_sdk::{
    Capabilities, Connector, ConsentRecord, ConsentUpdate, Context, DeliveredKind, Description,
    Inbound, InboundRequest, Outcome, Problems, Receipt, Request, Value,
};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct ProbeConfig {
    mode: String,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    authentication: serde_json::Value,
    #[serde(default)]
    properties: serde_json::Value,
    #[serde(default)]
    mappings: Vec<prefsync_sdk::Mapping>,
}

/// The probe connector (public so the benchmark can link it natively).
pub struct Probe;

impl Connector for Probe {
    type Config = ProbeConfig;

    fn describe() -> Description {
        Description {
            type_id: "probe".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            display_name: "Probe (test guest)".into(),
            config_schema: serde_json::json!({
                "type": "object",
                "required": ["mode"],
                "properties": {
                    "mode": {"type": "string"},
                    "url": {"type": "string", "format": "uri"},
                    "target": {"type": "string"},
                    "properties": {
                        "type": "object",
                        "properties": {"signing_material": {"type": "string", "writeOnly": true}}
                    }
                }
            }),
            default_hosts: vec![],
            max_concurrency: 2,
            max_batch_size: 10,
            capabilities: Capabilities {
                batching: true,
                inbound_webhooks: true,
            },
        }
    }

    fn check(problems: &mut Problems<'_>) {
        problems.require_string("mode");
        if problems.get("url").is_some() {
            problems.require_url("url", false);
        }
        problems.mappings("mappings", false);
        if problems.get("mode").and_then(|m| m.as_str()) == Some("leak-validate") {
            let quoted = format!(
                "{} {}",
                problems.get("authentication").cloned().unwrap_or_default(),
                problems.get("properties").cloned().unwrap_or_default()
            );
            problems.push("mode", format!("refused; the config holds {quoted}"));
        }
    }

    fn deliver(ctx: &Context<'_>, config: &ProbeConfig, record: &ConsentRecord) -> Outcome {
        match config.mode.as_str() {
            "noop" => {
                let fields = mapped_json(&config.mappings, record);
                std::hint::black_box(fields);
                Outcome::Delivered(DeliveredKind::Unchanged)
            }
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "memory-bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1024 * 1024]);
                    std::hint::black_box(&hoard);
                }
            }
            "http" => {
                let target = config.target.clone().unwrap_or_default();
                match ctx.send(Request::get(target)) {
                    Ok(r) => Outcome::Skipped(format!("status {}", r.status)),
                    Err(e) => e.into_outcome("probe request"),
                }
            }
            "sandbox" => {
                let file = std::fs::read_to_string("/etc/passwd").map(|s| s.len());
                let dir = std::fs::read_dir("/").map(|d| d.count());
                let cwd = std::fs::read_dir(".").map(|d| d.count());
                let env: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
                let home = std::env::var("HOME").ok();
                Outcome::Skipped(format!(
                    "file={} root={} cwd={} env={} home={}",
                    file.is_ok(),
                    dir.is_ok(),
                    cwd.is_ok(),
                    env.len(),
                    home.is_some()
                ))
            }
            "panic" => panic!("probe panicked on purpose for {}", record.key),
            "panic-leak" => panic!(
                "probe panicked holding {} {}",
                config.authentication, config.properties
            ),
            "leak" => {
                let secrets = format!("{} {}", config.authentication, config.properties);
                ctx.info(
                    &format!("my config is {secrets}"),
                    &[("auth", secrets.as_str())],
                );
                println!("stdout: {secrets}");
                eprintln!("stderr: {secrets}");
                Outcome::permanent(format!("failed with {secrets}"))
            }
            "cache" => {
                let calls: u32 = ctx
                    .cache_get("calls")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
                    + 1;
                ctx.cache_set("calls", &calls.to_string(), 60);
                Outcome::Skipped(format!("call {calls}"))
            }
            other => Outcome::permanent(format!("unknown mode {other}")),
        }
    }
}

impl Inbound for Probe {
    fn receive(config: &ProbeConfig, request: &InboundRequest) -> Result<Receipt, String> {
        let body: serde_json::Value = request.json()?;
        if let Some(text) = body.get("refuse").and_then(|t| t.as_str()) {
            return Err(text.to_string());
        }
        if body.get("refuse_with_secrets").is_some() {
            return Err(format!(
                "refused; my credentials are {}",
                config.authentication
            ));
        }
        if let Some(text) = body.get("panic").and_then(|t| t.as_str()) {
            panic!("{text}");
        }
        if body.get("panic_with_secrets").is_some() {
            panic!(
                "webhook panic holding {} {}",
                config.authentication, config.properties
            );
        }
        if body.get("spin").is_some() {
            #[allow(clippy::empty_loop)]
            loop {}
        }
        let mut receipt = Receipt::default();
        for update in body["updates"].as_array().into_iter().flatten() {
            let user = update["user"].as_str().ok_or("an update without `user`")?;
            let mut out = ConsentUpdate::new(user);
            for (name, value) in update["set"].as_object().into_iter().flatten() {
                let value = match value {
                    serde_json::Value::Bool(b) => Value::Boolean(*b),
                    serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or_default()),
                    serde_json::Value::String(t) => Value::Text(t.clone()),
                    _ => Value::Null,
                };
                out = out.set(name.clone(), value);
            }
            out.occurred_at = update["at"].as_str().map(str::to_string);
            out.notification_id = update["id"].as_str().map(str::to_string);
            receipt.updates.push(out);
        }
        for why in body["ignored"].as_array().into_iter().flatten() {
            receipt
                .ignored
                .push(why.as_str().unwrap_or_default().to_string());
        }
        Ok(receipt)
    }
}

prefsync_sdk::export!(Probe, inbound);
