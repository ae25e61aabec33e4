//! The generated bindings and the glue between them and the SDK's plain
//! types. Used only by the [`crate::export!`] macro's expansion.

use crate::connector::{self, Connector};
use crate::context::{Host, LogLevel};
use crate::http::{HttpError, Method, Request, Response};
use crate::types;

pub mod bindings {
    wit_bindgen::generate!({
        world: "destination",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_connector_impl",
        default_bindings_module: "prefsync_sdk::__wit::bindings",
    });
}

use bindings::exports::prefsync::connector::connector as wit;
use bindings::prefsync::connector::{cache, http, log, types as wit_types};

/// The component's imports, seen through the SDK's [`Host`] trait.
struct WitHost;

static WIT_HOST: WitHost = WitHost;

/// The component's imports as a [`Host`], for the companion crates' glue.
pub fn host() -> &'static dyn Host {
    &WIT_HOST
}

impl Host for WitHost {
    fn send(&self, request: Request) -> Result<Response, HttpError> {
        let request = http::Request {
            method: match request.method {
                Method::Get => http::Method::Get,
                Method::Post => http::Method::Post,
                Method::Put => http::Method::Put,
                Method::Patch => http::Method::Patch,
                Method::Delete => http::Method::Delete,
                Method::Head => http::Method::Head,
            },
            url: request.url,
            headers: request.headers,
            body: request.body,
            timeout_ms: request.timeout_ms,
        };
        match http::send(&request) {
            Ok(r) => Ok(Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }),
            Err(http::HttpError::Denied(why)) => Err(HttpError::Denied(why)),
            Err(http::HttpError::Timeout) => Err(HttpError::Timeout),
            Err(http::HttpError::Connection(why)) => Err(HttpError::Connection(why)),
            Err(http::HttpError::TooLarge(limit)) => Err(HttpError::TooLarge(limit)),
            Err(http::HttpError::InvalidRequest(why)) => Err(HttpError::InvalidRequest(why)),
        }
    }

    fn log(&self, level: LogLevel, message: &str, fields: &[(String, String)]) {
        let level = match level {
            LogLevel::Trace => log::Level::Trace,
            LogLevel::Debug => log::Level::Debug,
            LogLevel::Info => log::Level::Info,
            LogLevel::Warn => log::Level::Warn,
            LogLevel::Error => log::Level::Error,
        };
        log::log(level, message, fields);
    }

    fn cache_get(&self, key: &str) -> Option<String> {
        cache::get(key)
    }

    fn cache_set(&self, key: &str, value: &str, ttl_seconds: u32) {
        cache::set(key, value, ttl_seconds)
    }
}

pub fn describe<C: Connector>() -> wit::Description {
    let d = C::describe();
    let mut capabilities = wit::Capabilities::empty();
    if d.capabilities.batching {
        capabilities |= wit::Capabilities::BATCHING;
    }
    if d.capabilities.inbound_webhooks {
        capabilities |= wit::Capabilities::INBOUND_WEBHOOKS;
    }
    wit::Description {
        type_id: d.type_id,
        version: d.version,
        display_name: d.display_name,
        config_schema: C::config_schema().to_string(),
        default_hosts: d.default_hosts,
        max_concurrency: d.max_concurrency,
        max_batch_size: d.max_batch_size,
        capabilities,
    }
}

pub fn validate<C: Connector>(config: String) -> Vec<wit::ValidationProblem> {
    connector::validate::<C>(&config)
        .into_iter()
        .map(|p| wit::ValidationProblem {
            path: p.path,
            message: p.message,
        })
        .collect()
}

pub fn deliver<C: Connector>(
    config: String,
    batch: Vec<wit_types::ConsentRecord>,
) -> Vec<wit::Outcome> {
    let batch: Vec<types::ConsentRecord> = batch.into_iter().map(record_from_wit).collect();
    connector::deliver::<C>(host(), &config, &batch)
        .into_iter()
        .map(outcome_to_wit)
        .collect()
}

fn record_from_wit(r: wit_types::ConsentRecord) -> types::ConsentRecord {
    types::ConsentRecord {
        key_name: r.key_name,
        key: r.key,
        properties: r
            .properties
            .into_iter()
            .map(|p| types::Property {
                name: p.name,
                value: match p.value {
                    wit_types::Value::Null => types::Value::Null,
                    wit_types::Value::Boolean(b) => types::Value::Boolean(b),
                    wit_types::Value::Number(n) => types::Value::Number(n),
                    wit_types::Value::Text(t) => types::Value::Text(t),
                },
            })
            .collect(),
        metadata: types::RecordMetadata {
            state_version: r.metadata.state_version,
            updated_at: r.metadata.updated_at,
            extra: r.metadata.extra,
        },
    }
}

fn outcome_to_wit(o: types::Outcome) -> wit::Outcome {
    match o {
        types::Outcome::Delivered(kind) => wit::Outcome::Delivered(match kind {
            types::DeliveredKind::Created => wit::DeliveredKind::Created,
            types::DeliveredKind::Updated => wit::DeliveredKind::Updated,
            types::DeliveredKind::Unchanged => wit::DeliveredKind::Unchanged,
        }),
        types::Outcome::Skipped(reason) => wit::Outcome::Skipped(reason),
        types::Outcome::Failed(f) => wit::Outcome::Failed(wit::Failure {
            retryable: f.retryable,
            retry_after_ms: f.retry_after_ms,
            message: f.message,
        }),
    }
}
