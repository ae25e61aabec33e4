//! A connector's logic linked natively and driven through the host's
//! [`Destination`] trait: the SDK's `Connector` entry points, with the host's
//! own egress-checked HTTP client lent to it. The product only runs
//! components; this exists so the pipeline benchmark can measure what the
//! sandbox costs by running the same pipeline over the same logic without it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prefsync::egress::{Allowlist, EgressOptions};
use prefsync::outbound_http::OutboundHttp;
use prefsync::runtime::bindings::{HttpError, Method, Request, Response};
use prefsync::runtime::{
    CallError, CallReport, CallStats, ConnectorInfo, ConsentRecord, DeliveredKind, Delivery,
    Destination, Failure, IntegrationContext, Limits, Outcome, ValidationProblem, Value,
};
use prefsync_sdk as sdk;
use serde_json::Value as Json;
use tokio::sync::Semaphore;

/// `C`'s logic as a [`Destination`], without a sandbox.
pub struct NativeConnector<C> {
    info: ConnectorInfo,
    http: OutboundHttp,
    /// Calls in flight, capped at the connector's `max_concurrency` as the
    /// runtime caps a component's calls per integration.
    calls: Arc<Semaphore>,
    cache: Arc<Mutex<HashMap<(String, String), String>>>,
    connector: PhantomData<fn() -> C>,
}

impl<C: sdk::Connector + 'static> NativeConnector<C> {
    /// Uses the runtime's defaults for response size and timeout caps.
    pub fn new(egress: EgressOptions) -> anyhow::Result<Self> {
        let description = C::describe();
        let limits = Limits::default();
        let http = OutboundHttp::new(
            egress,
            limits.response_bytes,
            Duration::from_millis(limits.request_timeout_ms),
        )?;
        Ok(NativeConnector {
            calls: Arc::new(Semaphore::new(description.max_concurrency.max(1) as usize)),
            info: ConnectorInfo {
                type_id: description.type_id,
                version: description.version,
                display_name: description.display_name,
                config_schema: C::config_schema(),
                default_hosts: description.default_hosts,
                max_concurrency: description.max_concurrency,
                max_batch_size: description.max_batch_size,
                batching: description.capabilities.batching,
                inbound_webhooks: description.capabilities.inbound_webhooks,
                // The native path benchmarks deliveries only.
                activations: false,
                connection_check: false,
                wit_version: "native".into(),
                content_hash: "native".into(),
            },
            http,
            cache: Arc::default(),
            connector: PhantomData,
        })
    }
}

#[async_trait::async_trait]
impl<C: sdk::Connector + 'static> Destination for NativeConnector<C> {
    fn info(&self) -> &ConnectorInfo {
        &self.info
    }

    async fn validate(&self, config: &Json) -> Result<Vec<ValidationProblem>, CallError> {
        Ok(sdk::connector::validate::<C>(&config.to_string())
            .into_iter()
            .map(|p| ValidationProblem {
                path: p.path,
                message: p.message,
            })
            .collect())
    }

    async fn deliver(
        &self,
        integration: &Arc<IntegrationContext>,
        batch: Vec<ConsentRecord>,
    ) -> Delivery {
        let _permit = self.calls.acquire().await.expect("never closed");
        let started = Instant::now();
        let host = NativeHost {
            http: self.http.clone(),
            allowlist: integration.allowlist().clone(),
            integration: integration.id().to_string(),
            runtime: tokio::runtime::Handle::current(),
            cache: self.cache.clone(),
            statuses: RefCell::default(),
        };
        let config = integration.config_text().to_string();
        let records: Vec<sdk::ConsentRecord> = batch.iter().map(record_to_sdk).collect();
        // The SDK's host calls are blocking, as a component's are.
        let joined = tokio::task::spawn_blocking(move || {
            let outcomes = sdk::connector::deliver::<C>(&host, &config, &records);
            (outcomes, host.statuses.into_inner())
        })
        .await;
        let report = |statuses| CallReport {
            duration: started.elapsed(),
            stats: CallStats {
                http_statuses: statuses,
                ..CallStats::default()
            },
            peak_memory_bytes: 0,
            phases: Default::default(),
        };
        match joined {
            Ok((outcomes, statuses)) => Delivery {
                outcomes: outcomes.into_iter().map(outcome_from_sdk).collect(),
                error: None,
                report: report(statuses),
            },
            Err(panic) => {
                let error = CallError::Trap(format!("native connector panicked: {panic}"));
                Delivery {
                    outcomes: batch
                        .iter()
                        .map(|_| {
                            Outcome::Failed(Failure {
                                retryable: false,
                                retry_after_ms: None,
                                message: error.to_string(),
                            })
                        })
                        .collect(),
                    error: Some(error),
                    report: report(Vec::new()),
                }
            }
        }
    }
}

/// The SDK's view of the host, on a blocking thread.
struct NativeHost {
    http: OutboundHttp,
    allowlist: Allowlist,
    integration: String,
    runtime: tokio::runtime::Handle,
    cache: Arc<Mutex<HashMap<(String, String), String>>>,
    statuses: RefCell<Vec<u16>>,
}

impl sdk::Host for NativeHost {
    fn send(&self, request: sdk::Request) -> Result<sdk::Response, sdk::HttpError> {
        let request = Request {
            method: match request.method {
                sdk::Method::Get => Method::Get,
                sdk::Method::Post => Method::Post,
                sdk::Method::Put => Method::Put,
                sdk::Method::Patch => Method::Patch,
                sdk::Method::Delete => Method::Delete,
                sdk::Method::Head => Method::Head,
            },
            url: request.url,
            headers: request.headers,
            body: request.body,
            timeout_ms: request.timeout_ms,
        };
        let result = self
            .runtime
            .block_on(self.http.send(request, &self.allowlist));
        match result {
            Ok(Response {
                status,
                headers,
                body,
            }) => {
                self.statuses.borrow_mut().push(status);
                Ok(sdk::Response {
                    status,
                    headers,
                    body,
                })
            }
            Err(error) => Err(match error {
                HttpError::Denied(why) => sdk::HttpError::Denied(why),
                HttpError::Timeout => sdk::HttpError::Timeout,
                HttpError::Connection(why) => sdk::HttpError::Connection(why),
                HttpError::TooLarge(limit) => sdk::HttpError::TooLarge(limit),
                HttpError::InvalidRequest(why) => sdk::HttpError::InvalidRequest(why),
            }),
        }
    }

    fn log(&self, level: sdk::LogLevel, message: &str, fields: &[(String, String)]) {
        let fields = format!("{fields:?}");
        match level {
            sdk::LogLevel::Error => {
                tracing::error!(integration = %self.integration, %fields, "{message}")
            }
            sdk::LogLevel::Warn => {
                tracing::warn!(integration = %self.integration, %fields, "{message}")
            }
            _ => tracing::debug!(integration = %self.integration, %fields, "{message}"),
        }
    }

    fn cache_get(&self, key: &str) -> Option<String> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(&(self.integration.clone(), key.to_string()))
            .cloned()
    }

    // Entries never expire here: the benchmark runs for seconds.
    fn cache_set(&self, key: &str, value: &str, _ttl_seconds: u32) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(
            (self.integration.clone(), key.to_string()),
            value.to_string(),
        );
    }
}

fn record_to_sdk(record: &ConsentRecord) -> sdk::ConsentRecord {
    sdk::ConsentRecord {
        key_name: record.key_name.clone(),
        key: record.key.clone(),
        properties: record
            .properties
            .iter()
            .map(|p| sdk::Property {
                name: p.name.clone(),
                value: match &p.value {
                    Value::Null => sdk::Value::Null,
                    Value::Boolean(b) => sdk::Value::Boolean(*b),
                    Value::Number(n) => sdk::Value::Number(*n),
                    Value::Text(t) => sdk::Value::Text(t.clone()),
                },
            })
            .collect(),
        metadata: sdk::RecordMetadata {
            state_version: record.metadata.state_version,
            updated_at: record.metadata.updated_at.clone(),
            extra: record.metadata.extra.clone(),
        },
    }
}

fn outcome_from_sdk(outcome: sdk::Outcome) -> Outcome {
    match outcome {
        sdk::Outcome::Delivered(kind) => Outcome::Delivered(match kind {
            sdk::DeliveredKind::Created => DeliveredKind::Created,
            sdk::DeliveredKind::Updated => DeliveredKind::Updated,
            sdk::DeliveredKind::Unchanged => DeliveredKind::Unchanged,
        }),
        sdk::Outcome::Skipped(why) => Outcome::Skipped(why),
        sdk::Outcome::Failed(failure) => Outcome::Failed(Failure {
            retryable: failure.retryable,
            retry_after_ms: failure.retry_after_ms,
            message: failure.message,
        }),
    }
}
