//! What a connector may ask of the host while it runs: HTTP, logging, a cache.

use crate::http::{HttpError, Request, Response};

/// Log level of a connector's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// The host's services. In a component they are the WIT imports; natively,
/// tests supply [`crate::testing::MockHost`] or the host links its own.
pub trait Host {
    fn send(&self, request: Request) -> Result<Response, HttpError>;
    fn log(&self, level: LogLevel, message: &str, fields: &[(String, String)]);
    fn cache_get(&self, key: &str) -> Option<String>;
    fn cache_set(&self, key: &str, value: &str, ttl_seconds: u32);
}

/// A connector's handle on the host during one call; it tags log lines with
/// the record being delivered so the host can attribute them.
pub struct Context<'a> {
    host: &'a dyn Host,
    record_key: Option<String>,
}

impl<'a> Context<'a> {
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

    pub fn send(&self, request: Request) -> Result<Response, HttpError> {
        self.host.send(request)
    }

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

    pub fn debug(&self, message: &str, fields: &[(&str, &str)]) {
        self.log(LogLevel::Debug, message, fields)
    }

    pub fn info(&self, message: &str, fields: &[(&str, &str)]) {
        self.log(LogLevel::Info, message, fields)
    }

    pub fn warn(&self, message: &str, fields: &[(&str, &str)]) {
        self.log(LogLevel::Warn, message, fields)
    }

    pub fn cache_get(&self, key: &str) -> Option<String> {
        self.host.cache_get(key)
    }

    pub fn cache_set(&self, key: &str, value: &str, ttl_seconds: u32) {
        self.host.cache_set(key, value, ttl_seconds)
    }
}
