//! What a connector may ask of the host while it runs: HTTP, logging, a cache.

use crate::http::{HttpError, Request, Response};

/// Log level of a connector's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Finest detail, normally filtered out.
    Trace,
    /// Detail useful when investigating a connector.
    Debug,
    /// Normal progress worth recording.
    Info,
    /// Something unexpected that did not stop the call.
    Warn,
    /// A failure the operator should see.
    Error,
}

/// The host's services. In a component they are the WIT imports; natively,
/// tests supply [`crate::testing::MockHost`] or the host links its own.
pub trait Host {
    /// Sends `request` through the host's egress policy; `Err` when no response
    /// came back (denied, timed out, connection failed, too large, invalid).
    fn send(&self, request: Request) -> Result<Response, HttpError>;
    /// Writes one log line with structured key/value `fields`.
    fn log(&self, level: LogLevel, message: &str, fields: &[(String, String)]);
    /// The cached value for `key`, or `None` if there is none.
    fn cache_get(&self, key: &str) -> Option<String>;
    /// Caches `value` under `key` for `ttl_seconds` seconds, in a small cache
    /// scoped to the integration (e.g. for access tokens).
    fn cache_set(&self, key: &str, value: &str, ttl_seconds: u32);
}

/// A connector's handle on the host during one call; it tags log lines with
/// the record being delivered so the host can attribute them.
pub struct Context<'a> {
    host: &'a dyn Host,
    record_key: Option<String>,
}

impl<'a> Context<'a> {
    /// A context on `host` whose log lines carry no record key.
    pub fn new(host: &'a dyn Host) -> Self {
        Context {
            host,
            record_key: None,
        }
    }

    /// The same host, with log lines tagged with `key`.
    pub fn for_record(&self, key: &str) -> Context<'a> {
        Context {
            host: self.host,
            record_key: Some(key.to_string()),
        }
    }

    /// Sends `request` through the host; see [`Host::send`].
    pub fn send(&self, request: Request) -> Result<Response, HttpError> {
        self.host.send(request)
    }

    /// Logs `message` with `fields`, adding a `record_key` field when this
    /// context was made by [`Context::for_record`].
    pub fn log(&self, level: LogLevel, message: &str, fields: &[(&str, &str)]) {
        let mut owned: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some(key) = &self.record_key {
            owned.push(("record_key".to_string(), key.clone()));
        }
        self.host.log(level, message, &owned);
    }

    /// Logs at [`LogLevel::Debug`].
    pub fn debug(&self, message: &str, fields: &[(&str, &str)]) {
        self.log(LogLevel::Debug, message, fields)
    }

    /// Logs at [`LogLevel::Info`].
    pub fn info(&self, message: &str, fields: &[(&str, &str)]) {
        self.log(LogLevel::Info, message, fields)
    }

    /// Logs at [`LogLevel::Warn`].
    pub fn warn(&self, message: &str, fields: &[(&str, &str)]) {
        self.log(LogLevel::Warn, message, fields)
    }

    /// The host's cached value for `key`, if still there; see [`Host::cache_get`].
    pub fn cache_get(&self, key: &str) -> Option<String> {
        self.host.cache_get(key)
    }

    /// Caches `value` under `key` for `ttl_seconds` seconds; see [`Host::cache_set`].
    pub fn cache_set(&self, key: &str, value: &str, ttl_seconds: u32) {
        self.host.cache_set(key, value, ttl_seconds)
    }
}
