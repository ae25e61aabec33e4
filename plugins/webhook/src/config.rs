//! The integration config: where to POST, how to sign, what to retry.

use std::collections::BTreeMap;

use prefsync_sdk::{Mapping, Problems};
use serde::Deserialize;
use serde_json::json;

/// A webhook integration.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookConfig {
    /// The signing secret, if any.
    #[serde(default)]
    pub authentication: Authentication,
    /// Where and how to send.
    pub properties: Properties,
    /// JSON field (`id`) ← Didomi property (`value`).
    pub mappings: Vec<Mapping>,
}

/// Signing.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    /// Key of the HMAC-SHA256 signature of each body; unsigned without it.
    #[serde(default)]
    pub signing_secret: Option<String>,
}

/// Where and how.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Properties {
    /// The endpoint (a bare host means https).
    pub url: String,
    /// Header that carries `sha256=<hex>`; `X-Prefsync-Signature` by default.
    #[serde(default)]
    pub signature_header: Option<String>,
    /// Extra headers sent with every request (not secrets: they are shown).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Statuses worth retrying; by default 408, 425, 429 and every 5xx.
    #[serde(default)]
    pub retry_on: Option<Vec<u16>>,
    /// Longest wait for an answer, in ms (default 10 000).
    #[serde(default)]
    pub timeout_ms: Option<u32>,
}

pub const DEFAULT_SIGNATURE_HEADER: &str = "X-Prefsync-Signature";

impl WebhookConfig {
    pub fn url(&self) -> String {
        let url = self.properties.url.trim();
        if url.contains("://") {
            url.to_string()
        } else {
            format!("https://{url}")
        }
    }

    pub fn signature_header(&self) -> &str {
        self.properties
            .signature_header
            .as_deref()
            .unwrap_or(DEFAULT_SIGNATURE_HEADER)
    }
}

pub fn check(p: &mut Problems<'_>) {
    p.only_keys("authentication", &["signing_secret"]);
    if let Some(secret) = p.optional_string("authentication.signing_secret")
        && secret.len() < 16
    {
        p.push(
            "authentication.signing_secret",
            "must be at least 16 characters",
        );
    }
    p.require_url("properties.url", true);
    p.optional_string("properties.signature_header");
    if let Some(headers) = p.get("properties.headers") {
        match headers.as_object() {
            Some(map) => {
                let bad: Vec<String> = map
                    .iter()
                    .filter(|(_, v)| !v.is_string())
                    .map(|(k, _)| k.clone())
                    .collect();
                for name in bad {
                    p.push(&format!("properties.headers.{name}"), "must be a string");
                }
            }
            None => p.push("properties.headers", "must be an object of header → value"),
        }
    }
    if let Some(retry_on) = p.get("properties.retry_on") {
        let valid = retry_on.as_array().is_some_and(|list| {
            list.iter()
                .all(|s| s.as_u64().is_some_and(|s| (100..=599).contains(&s)))
        });
        if !valid {
            p.push(
                "properties.retry_on",
                "must be a list of HTTP statuses (100–599)",
            );
        }
    }
    if let Some(timeout) = p.get("properties.timeout_ms")
        && !timeout.as_u64().is_some_and(|t| (1..=120_000).contains(&t))
    {
        p.push("properties.timeout_ms", "must be between 1 and 120000");
    }
    p.only_keys(
        "properties",
        &[
            "url",
            "signature_header",
            "headers",
            "retry_on",
            "timeout_ms",
        ],
    );
    p.mappings("mappings", true);
}

pub fn schema() -> serde_json::Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["properties", "mappings"],
        "properties": {
            "authentication": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "signing_secret": {"type": "string", "writeOnly": true, "minLength": 16,
                                       "description": "Key of the HMAC-SHA256 signature of each body"}
                }
            },
            "properties": {
                "type": "object",
                "required": ["url"],
                "additionalProperties": false,
                "properties": {
                    "url": {"type": "string", "format": "uri", "description": "The endpoint"},
                    "signature_header": {"type": "string", "default": DEFAULT_SIGNATURE_HEADER,
                                         "description": "Header carrying sha256=<hex of HMAC-SHA256(secret, body)>"},
                    "headers": {"type": "object", "additionalProperties": {"type": "string"},
                                "description": "Extra headers (shown in the API: no secrets here)"},
                    "retry_on": {"type": "array", "items": {"type": "integer", "minimum": 100, "maximum": 599},
                                 "description": "Statuses to retry; default 408, 425, 429 and 5xx"},
                    "timeout_ms": {"type": "integer", "minimum": 1, "maximum": 120000, "default": 10000}
                }
            },
            "mappings": {
                "type": "array", "minItems": 1,
                "items": {"type": "object", "required": ["id", "value"], "additionalProperties": false,
                          "properties": {"id": {"type": "string", "description": "JSON field sent"},
                                         "value": {"type": "string", "description": "Didomi property"}}}
            }
        }
    })
}
