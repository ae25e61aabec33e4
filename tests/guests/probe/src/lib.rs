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
//! - `cache`: counts its calls in the host cache;
//! - `leftover`: searches its memory for what an earlier record wrote, then
//!   writes it (so a reused, unreset instance would show).
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
    Inbound, InboundRequest, Mapping, Outcome, Problems, Receipt, Request, Value,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value as Json;

/// The probe's config. Its schema is written by hand ([`Probe::config_schema`]):
/// it says little on purpose, and `check` names the rest as it always did.
#[derive(Deserialize, JsonSchema)]
#[serde(from = "RawProbeConfig")]
pub struct ProbeConfig {
    mode: String,
    url: Option<String>,
    target: Option<String>,
    authentication: Json,
    properties: Json,
    /// `mappings` as given, for `check` to name a malformed entry by its path.
    raw_mappings: Json,
    /// `mappings` read (none when malformed, which `check` refuses).
    mappings: Vec<Mapping>,
}

/// The config as it comes: `mappings` is read leniently so a malformed one
/// reaches `check` (which names the entry) rather than failing serde.
#[derive(Deserialize, JsonSchema)]
struct RawProbeConfig {
    mode: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    authentication: Json,
    #[serde(default)]
    properties: Json,
    #[serde(default)]
    mappings: Json,
}

impl From<RawProbeConfig> for ProbeConfig {
    fn from(raw: RawProbeConfig) -> Self {
        let mappings = serde_json::from_value(raw.mappings.clone()).unwrap_or_default();
        ProbeConfig {
            mode: raw.mode,
            url: raw.url,
            target: raw.target,
            authentication: raw.authentication,
            properties: raw.properties,
            raw_mappings: raw.mappings,
            mappings,
        }
    }
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
            default_hosts: vec![],
            max_concurrency: 2,
            max_batch_size: 10,
            capabilities: Capabilities {
                batching: true,
                inbound_webhooks: true,
            },
        }
    }

    /// Deliberately loose: `mode` and two marked fields (`url` a URL,
    /// `properties.signing_material` a secret only the schema names).
    fn config_schema() -> Json {
        serde_json::json!({
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
        })
    }

    fn check(config: &ProbeConfig, problems: &mut Problems) {
        if config.mode.trim().is_empty() {
            problems.push("mode", "must not be empty");
        }
        if let Some(url) = &config.url {
            problems.url("url", url, false);
        }
        if check_mappings_shape(&config.raw_mappings, problems) {
            problems.mappings("mappings", &config.mappings);
        }
        if config.mode == "leak-validate" {
            let quoted = format!("{} {}", config.authentication, config.properties);
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
            "leftover" => {
                // Looks through all of its linear memory for what an earlier
                // record left, then leaves it: found within a batch (one
                // instance), never across calls (a fresh or reset instance).
                let found = leftover::find();
                leftover::leave();
                Outcome::Skipped(format!("leftover found={found}"))
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

/// A 64-byte pattern computed at run time from a black-boxed seed, so it
/// is in no data segment: only `leave` writes it into memory.
mod leftover {
    const LEN: usize = 64;

    fn byte(seed: u8, i: usize) -> u8 {
        (i as u8).wrapping_mul(37) ^ seed
    }

    fn seed() -> u8 {
        std::hint::black_box(0xA5)
    }

    /// Whether the pattern is anywhere in linear memory (compared byte by
    /// byte, never built, so the search cannot find its own copy).
    pub fn find() -> bool {
        let seed = seed();
        #[cfg(target_arch = "wasm32")]
        let size = core::arch::wasm32::memory_size(0) * 65536;
        #[cfg(not(target_arch = "wasm32"))]
        let size: usize = 0;
        (8..size.saturating_sub(LEN)).any(|at| {
            (0..LEN).all(|i| {
                // SAFETY: in wasm32 every address below the memory's size is
                // readable; the loop never runs elsewhere.
                let b = unsafe { std::ptr::read_volatile((at + i) as *const u8) };
                b == byte(seed, i)
            })
        })
    }

    /// Writes the pattern into a heap buffer that is never freed.
    pub fn leave() {
        let seed = seed();
        let mut buffer = vec![0u8; 64 * 1024];
        for (i, b) in buffer[4096..4096 + LEN].iter_mut().enumerate() {
            *b = byte(seed, i);
        }
        std::mem::forget(std::hint::black_box(buffer));
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

/// `mappings` (optional), entry by entry: a list of `{id, value}` strings.
/// True when it is one (then the SDK's rules for blanks and repeats apply).
fn check_mappings_shape(mappings: &Json, p: &mut Problems) -> bool {
    let entries = match mappings {
        Json::Null => return true,
        Json::Array(entries) => entries,
        other => {
            p.push("mappings", format!("must be a list, not {}", kind(other)));
            return false;
        }
    };
    let mut fits = true;
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("mappings[{i}]");
        let Some(obj) = entry.as_object() else {
            p.push(&at, "must be an object {\"id\", \"value\"}");
            fits = false;
            continue;
        };
        for key in obj.keys().filter(|k| *k != "id" && *k != "value") {
            p.push(
                &format!("{at}.{key}"),
                "unknown field (expected `id` and `value`)",
            );
            fits = false;
        }
        for field in ["id", "value"] {
            match obj.get(field) {
                Some(Json::String(_)) => {}
                None | Some(Json::Null) => {
                    p.push(&format!("{at}.{field}"), "is required");
                    fits = false;
                }
                Some(other) => {
                    p.push(
                        &format!("{at}.{field}"),
                        format!("must be a string, not {}", kind(other)),
                    );
                    fits = false;
                }
            }
        }
    }
    fits
}

fn kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

prefsync_sdk::export!(Probe, inbound);
