//! A `connector test` cassette: `Cassette::parse` (what `Cassette::read` does
//! with a file's text), then a replay: the `Tape` answers each recorded
//! request, and one with a planted secret, from the cassette.
//!
//! Oracles: a cassette serialises and parses back to the same; nothing the
//! tape keeps or reports (exchanges, unrecorded requests) shows the
//! integration's planted secret, which the replayed request carries in a
//! header, the URL and the body, nor the password of the request's URL.

use std::path::Path;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use base64::Engine as _;
use prefsync::cli::cassette::{Body, Cassette, Tape};
use prefsync::outbound_http::Transport;
use prefsync::runtime::bindings::{Method, Request};
use serde_json::json;

use super::{Target, Verdict, class};
use crate::mutate::split_meta;

pub const TARGET: Target = Target {
    name: "cassette",
    about: "connector test cassette reader and replay",
    run,
    dictionary: &[
        "\"connector\"",
        "\"outcome\"",
        "\"interactions\"",
        "\"request\"",
        "\"response\"",
        "\"error\"",
        "\"method\"",
        "\"url\"",
        "\"headers\"",
        "\"body\"",
        "\"status\"",
        "\"json\"",
        "\"text\"",
        "\"base64\"",
        "\"kind\"",
        "\"detail\"",
        "\"timeout\"",
        "\"connection\"",
        "\"too-large\"",
        "\"invalid-request\"",
        "\"denied\"",
        "\"POST\"",
        "\"GET\"",
        "\"PATCH\"",
        "\"[REDACTED]\"",
        "\"authorization\"",
        "\"delivered\"",
        "\"https://r1-api.dotdigital.com/v2/contacts\"",
        "\"=\"",
        "\"////\"",
    ],
    json: true,
};

/// The integration's secret, in the config the tape scrubs with.
const SECRET: &str = "PLANTEDSECRET-cassette-key";
/// A password the request's URL carries (not in the config).
const URL_PASSWORD: &str = "PLANTEDSECRET-url-password";

fn run(input: &[u8]) -> Verdict {
    let (_, body) = split_meta(input);
    let Ok(text) = std::str::from_utf8(body) else {
        return Ok("not-utf8".into());
    };
    let cassette = match Cassette::parse(text, Path::new("fuzz.json")) {
        Ok(cassette) => cassette,
        // The path and position prefix says nothing about the path taken.
        Err(error) => {
            let message = error.to_string();
            let why = message
                .split_once(": ")
                .map_or(message.as_str(), |(_, why)| why);
            return Ok(class("error", why));
        }
    };
    let written = serde_json::to_string_pretty(&cassette).map_err(|e| e.to_string())?;
    match Cassette::parse(&written, Path::new("fuzz.json")) {
        Ok(same)
            if same.interactions == cassette.interactions
                && same.connector == cassette.connector
                && same.outcome == cassette.outcome => {}
        Ok(_) => return Err("a cassette reads back different after writing".into()),
        Err(error) => {
            return Err(format!(
                "a written cassette does not read back: {}",
                crate::engine::normalise(&error.to_string())
            ));
        }
    }

    let config = json!({
        "type_id": "fuzz",
        "authentication": {"url": "https://api.example.com", "api_key": SECRET}
    });
    let tape = Tape::replay(&config);
    tape.begin(Some(&cassette));
    let mut answered = 0;
    for interaction in cassette.interactions.iter().take(16) {
        let recorded = &interaction.request;
        let Ok(url) = url::Url::parse(&recorded.url) else {
            continue;
        };
        let method = method_of(&recorded.method);
        let body = recorded.body.as_ref().map(body_bytes);
        let as_recorded = Request {
            method,
            url: recorded.url.clone(),
            headers: recorded.headers.clone(),
            body: body.clone(),
            timeout_ms: None,
        };
        if send(&tape, as_recorded, url.clone())?.is_ok() {
            answered += 1;
        }
        let mut planted_url = url.clone();
        planted_url.query_pairs_mut().append_pair("note", SECRET);
        // A URL's password is a secret whatever the config says.
        let _ = planted_url.set_password(Some(URL_PASSWORD));
        let mut planted_body = body.unwrap_or_default();
        planted_body.extend_from_slice(SECRET.as_bytes());
        let planted = Request {
            method,
            url: planted_url.to_string(),
            headers: vec![("X-Note".into(), format!("key {SECRET}"))],
            body: Some(planted_body),
            timeout_ms: None,
        };
        let _ = send(&tape, planted, planted_url)?;
    }
    let report = tape.finish();
    let shown = format!(
        "{}\n{}",
        serde_json::to_string(&report.exchanges).map_err(|e| e.to_string())?,
        report.unrecorded.join("\n")
    );
    if shown.contains(SECRET) {
        return Err("the integration's secret shows in the tape's exchanges or report".into());
    }
    if shown.contains(URL_PASSWORD) {
        return Err("a URL's password shows in the tape's exchanges or report".into());
    }
    Ok(format!(
        "ok:interactions{},answered{},unused{}",
        cassette.interactions.len().min(3),
        answered.min(3),
        report.unused.len().min(3)
    ))
}

/// Sends through the tape; a replay never waits, so one poll answers.
fn send(
    tape: &Tape,
    request: Request,
    url: url::Url,
) -> Result<Result<(), prefsync::runtime::bindings::HttpError>, String> {
    let mut future = tape.send(request, url, Duration::from_secs(1));
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(result) => Ok(result.map(|_| ())),
        Poll::Pending => Err("a replayed request did not answer at once".into()),
    }
}

fn method_of(text: &str) -> Method {
    match text {
        "GET" => Method::Get,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        "HEAD" => Method::Head,
        _ => Method::Post,
    }
}

/// The bytes a recorded body stands for (as the tape's own `to_bytes`).
fn body_bytes(body: &Body) -> Vec<u8> {
    match body {
        Body::Json(json) => json.to_string().into_bytes(),
        Body::Text(text) => text.clone().into_bytes(),
        Body::Base64(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap_or_default(),
    }
}
