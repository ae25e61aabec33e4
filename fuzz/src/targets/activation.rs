//! An activation document: `ActivationConfig::parse` (serde, then every
//! check: id, source, key, mappings, schedule, warnings), then what the
//! scheduler computes from it.
//!
//! Oracles: a document that parses serialises to one that parses back the
//! same; the next run of a schedule is computed without a panic (overflow
//! included); with passwords planted in the URLs (source, webhook), no
//! error shows one.

use prefsync::activation::config::{ActivationConfig, ConfigError};
use serde_json::Value;

use super::{Target, Verdict, class};
use crate::mutate::split_meta;
use crate::secrets::{leaks, plant};

pub const TARGET: Target = Target {
    name: "activation",
    about: "activation config parse and checks, and its schedule",
    run,
    dictionary: &[
        "\"id\"",
        "\"name\"",
        "\"integration\"",
        "\"source\"",
        "\"type\"",
        "\"csv\"",
        "\"sql\"",
        "\"path\"",
        "\"delimiter\"",
        "\"url\"",
        "\"query\"",
        "\"key\"",
        "\"column\"",
        "\"field\"",
        "\"mappings\"",
        "\"value\"",
        "\"mode\"",
        "\"upsert\"",
        "\"insert\"",
        "\"update\"",
        "\"schedule\"",
        "\"every\"",
        "\"cron\"",
        "\"timezone\"",
        "\"Europe/Paris\"",
        "\"UTC\"",
        "\"../../etc/passwd\"",
        "\"@daily\"",
        "\"@yearly\"",
        "\"0 0 L * *\"",
        "\"0 0 * * FRI#5\"",
        "\"0 0 29 2 +MON\"",
        "\"warnings\"",
        "\"rejected_share\"",
        "\"webhook_url\"",
        "\"log\"",
        "\"15m\"",
        "\"18446744073709551615d\"",
        "\"0s\"",
        "\"1s\"",
        "\"9223372036854775807ms\"",
        "\"*/0 * * * *\"",
        "\"59 23 31 12 *\"",
        "\"0 0 30 2 *\"",
        "\"* * * * 7\"",
        "\"1-60/7 */25 1,15 * MON-FRI\"",
        "\"postgres://user:pw@127.0.0.1:5432/db?password=x\"",
        "\"sqlite:///var/lib/prefsync/prefsync.db\"",
        "\"sqlite:relative.db\"",
        "\"../../../../etc/passwd\"",
        "\"/proc/self/environ\"",
        "\"http://user:pw@127.0.0.1:1/hook\"",
        "\"SELECT id, email FROM users\"",
        "\"MAIL\"",
    ],
    json: true,
};

/// A fixed "now" (2027-01-15), so runs are reproducible.
const NOW_MS: i64 = 1_800_000_000_000;

fn run(input: &[u8]) -> Verdict {
    let (_, body) = split_meta(input);
    let shape = check(body, false)?;
    if let Ok(mut document) = serde_json::from_slice::<Value>(body)
        && !plant(&mut document).is_empty()
    {
        let planted = serde_json::to_vec(&document).map_err(|e| e.to_string())?;
        check(&planted, true)?;
    }
    Ok(shape)
}

fn check(body: &[u8], planted: bool) -> Result<String, String> {
    let config = match ActivationConfig::parse(body, Some("from-file")) {
        Ok(config) => config,
        Err(error) => {
            let message = error.to_string();
            if planted && leaks(&message) {
                return Err("a planted URL password shows in a config error".into());
            }
            return Ok(match error {
                // One class per problem: lists of them would make a class
                // per combination.
                ConfigError::Invalid(problems) => problems
                    .iter()
                    .map(|p| class("invalid", &p.to_string()))
                    .collect::<Vec<_>>()
                    .join("\n"),
                ConfigError::Syntax { message, .. } => class("syntax", &message),
            });
        }
    };
    let again = serde_json::to_vec(&config).map_err(|e| format!("cannot serialise: {e}"))?;
    match ActivationConfig::parse(&again, None) {
        Ok(same) if same == config => {}
        Ok(_) => return Err("a parsed config serialises to a different one".into()),
        Err(error) => {
            return Err(format!(
                "a parsed config serialises to one that does not parse: {}",
                crate::engine::normalise(&error.to_string())
            ));
        }
    }
    let columns = config.columns().count();
    let schedule = match config.schedule() {
        Ok(schedule) => schedule,
        Err((path, _)) => return Err(format!("parse accepted a schedule that {path} refuses")),
    };
    let mut shape = format!("ok:{:?}", std::mem::discriminant(&config.source));
    shape.push_str(&format!(",columns{}", columns.min(4)));
    for (now, last) in [
        (NOW_MS, None),
        (NOW_MS, Some(NOW_MS - 1_000)),
        (NOW_MS, Some(NOW_MS - 86_400_000 * 400)),
    ] {
        match schedule.next_after(now, last) {
            Some(next) if next < now => {
                return Err(format!(
                    "the next run is scheduled in the past ({next} < {now})"
                ));
            }
            Some(_) => shape.push_str(",next"),
            None => shape.push_str(",manual"),
        }
    }
    Ok(shape)
}
