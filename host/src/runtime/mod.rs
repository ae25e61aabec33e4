//! The sandboxed connector runtime: one wasmtime engine with the pooling
//! allocator, a pre-instantiated handle per loaded component, a fresh store
//! per call, and limits on memory, CPU, wall time and concurrency.
//!
//! A connector call never takes the host down: traps, limit breaches and
//! timeouts become a [`CallError`], and `deliver` turns that into a failed
//! outcome for every record of the batch.

pub mod artifacts;
pub mod bindings;
mod call;
mod destination;
mod guest_output;
mod integration;
mod kv;
pub mod limits;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;
use serde_json::Value as Json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, HasSelf, Instance, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, UpdateDeadline,
};

use crate::egress::EgressOptions;
use crate::outbound_http::{OutboundHttp, Transport};

pub use artifacts::{ArtifactCache, Source, content_hash};
pub use bindings::{
    ConsentRecord, ConsentUpdate, DeliveredKind, Failure, InboundRequest, Outcome, Property,
    Receipt, RecordMetadata, RowFailure, RowOutcome, SyncBatch, SyncMode, SyncRow,
    ValidationProblem, Value,
};
pub use call::{CallStats, GuestLogLine};
pub use destination::Destination;
#[cfg(test)]
pub(crate) use destination::testing;
pub use integration::IntegrationContext;
pub use limits::Limits;

// The generated world; `Destination` here is the trait the pipeline uses.
use bindings::bidirectional::exports::prefsync::connector::inbound::GuestIndices as InboundIndices;
use bindings::model_sync::exports::prefsync::connector::activation::GuestIndices as ActivationIndices;
use bindings::{Destination as DestinationWorld, DestinationIndices, DestinationPre};
use call::{CallState, CallTags};

/// The WIT package every connector is built against.
pub const WIT_PACKAGE: &str = "prefsync:connector";
/// The interface a connector exports.
pub const CONNECTOR_INTERFACE: &str = "prefsync:connector/connector";
/// The optional interface a connector exports to read its destination's webhooks.
pub const INBOUND_INTERFACE: &str = "prefsync:connector/inbound";
/// The optional interface a connector exports to sync a user model (activations).
pub const ACTIVATION_INTERFACE: &str = "prefsync:connector/activation";
/// Contract versions this host runs: any `0.1.x` (a minor version of a
/// `0.x` package is its compatibility line).
pub const SUPPORTED_WIT: &[&str] = &["0.1"];

/// How the runtime is set up.
#[derive(Clone, Default)]
pub struct RuntimeOptions {
    pub limits: Limits,
    pub egress: EgressOptions,
    /// Directory of precompiled artifacts; `None` compiles on every load.
    pub artifact_dir: Option<PathBuf>,
    /// Where requests the egress policy allows go; `None` is the network.
    /// `prefsync plugin test --cassette` replays or records here.
    pub transport: Option<Arc<dyn Transport>>,
}

impl std::fmt::Debug for RuntimeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeOptions")
            .field("limits", &self.limits)
            .field("egress", &self.egress)
            .field("artifact_dir", &self.artifact_dir)
            .field("transport", &self.transport.as_ref().map(|_| "custom"))
            .finish()
    }
}

/// State shared by the runtime, its connectors and their calls.
pub(crate) struct Shared {
    engine: Engine,
    linker: Linker<CallState>,
    artifacts: ArtifactCache,
    pub(crate) limits: Limits,
    pub(crate) http: OutboundHttp,
    pub(crate) kv: kv::KvCache,
    instances: Arc<Semaphore>,
    _ticker: EpochTicker,
}

/// Loads components and hands out [`Connector`]s.
#[derive(Clone)]
pub struct Runtime {
    shared: Arc<Shared>,
}

/// Why a component could not be loaded. Each text says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("not a WebAssembly file (it does not start with the `\\0asm` magic bytes)")]
    NotWasm,
    #[error(
        "this is a core WebAssembly module, not a component: build the connector with `cargo build --target wasm32-wasip2`"
    )]
    CoreModule,
    #[error("invalid WebAssembly component: {0}")]
    Invalid(String),
    #[error(
        "the component does not export `{CONNECTOR_INTERFACE}` (its exports: {exports}); build it against prefsync's WIT world `destination`"
    )]
    WrongWorld { exports: String },
    #[error(
        "the component is built against {CONNECTOR_INTERFACE}@{found}; this host supports {}",
        SUPPORTED_WIT.iter().map(|v| format!("{v}.x")).collect::<Vec<_>>().join(", ")
    )]
    UnsupportedVersion { found: String },
    #[error("the component needs imports this host does not provide: {0}")]
    Link(String),
    #[error("the component's `describe` failed: {0}")]
    Describe(String),
    #[error("compiling the component failed: {0}")]
    Compile(String),
}

/// Why a call did not return normally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("connector used more than its CPU budget of {limit_ms} ms")]
    CpuLimit { limit_ms: u64 },
    #[error(
        "connector tried to grow its memory to {} when its limit is {}",
        mib(*requested_bytes),
        mib(*limit_bytes)
    )]
    MemoryLimit {
        limit_bytes: u64,
        /// The total the refused growth asked for.
        requested_bytes: u64,
    },
    #[error("connector call took longer than {limit_ms} ms")]
    WallTimeout { limit_ms: u64 },
    #[error("connector trapped: {0}")]
    Trap(String),
    #[error("connector returned {got} outcomes for {expected} records")]
    OutcomeCount { got: usize, expected: usize },
}

/// Why a webhook was not turned into consent updates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiveError {
    #[error("connector `{0}` does not read webhooks")]
    Unsupported(String),
    /// The connector found the request itself wrong; the text says why.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Call(#[from] CallError),
}

/// Why a `sync` call (activations) wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("connector `{0}` cannot sync models (it does not export `activation`)")]
    Unsupported(String),
    /// The destination refused the batch as a whole (credentials, outage).
    #[error("{}", .0.message)]
    Refused(RowFailure),
    #[error(transparent)]
    Call(#[from] CallError),
}

impl SyncError {
    /// Whether the same batch may go through later.
    pub fn retryable(&self) -> bool {
        match self {
            SyncError::Unsupported(_) => false,
            SyncError::Refused(failure) => failure.retryable,
            SyncError::Call(error) => error.retryable(),
        }
    }
}

/// Bytes as MiB with two decimals, as the limits are read.
pub fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

impl CallError {
    /// A timeout may pass; a trap or a limit breach will happen again.
    pub fn retryable(&self) -> bool {
        matches!(self, CallError::WallTimeout { .. })
    }
}

/// What a connector says about itself, as the host keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectorInfo {
    pub type_id: String,
    pub version: String,
    pub display_name: String,
    pub config_schema: Json,
    pub default_hosts: Vec<String>,
    pub max_concurrency: u32,
    pub max_batch_size: u32,
    pub batching: bool,
    pub inbound_webhooks: bool,
    /// Whether it exports `activation` (can sync a user model).
    pub activations: bool,
    /// Version of the WIT package the component was built against.
    pub wit_version: String,
    /// SHA-256 of the component's bytes.
    pub content_hash: String,
}

/// Facts about one call, for the audit and the test harness.
#[derive(Debug, Clone)]
pub struct CallReport {
    pub duration: Duration,
    pub stats: CallStats,
    /// Largest total of the instance's memories during the call.
    pub peak_memory_bytes: u64,
}

/// The outcomes of one `deliver` call.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// One per record, in the batch's order.
    pub outcomes: Vec<Outcome>,
    /// Set when the call failed as a whole (every outcome then says so).
    pub error: Option<CallError>,
    pub report: CallReport,
}

impl Runtime {
    pub fn new(options: RuntimeOptions) -> Result<Self> {
        let limits = options.limits;
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(limits.max_instances)
            .total_core_instances(limits.max_instances * 4)
            .total_memories(limits.max_instances * 2)
            .total_tables(limits.max_instances * 4)
            .total_stacks(limits.max_instances)
            .max_memory_size(usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX));
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(anyhow::Error::from)?;

        let mut linker: Linker<CallState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
        DestinationWorld::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)
            .map_err(anyhow::Error::from)?;

        let artifacts = ArtifactCache::new(&engine, options.artifact_dir);
        let max_timeout = Duration::from_millis(limits.request_timeout_ms);
        let http = match options.transport {
            Some(transport) => OutboundHttp::with_transport(options.egress, max_timeout, transport),
            None => OutboundHttp::new(options.egress, limits.response_bytes, max_timeout)?,
        };
        let ticker =
            EpochTicker::start(&engine, Duration::from_millis(limits.epoch_tick_ms.max(1)));
        Ok(Runtime {
            shared: Arc::new(Shared {
                instances: Arc::new(Semaphore::new(limits.max_instances as usize)),
                engine,
                linker,
                artifacts,
                limits,
                http,
                kv: kv::KvCache::default(),
                _ticker: ticker,
            }),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    /// Loads a component from a file.
    pub async fn load_file(&self, path: &Path) -> Result<Arc<Connector>, LoadError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|source| LoadError::Read {
                path: path.display().to_string(),
                source,
            })?;
        self.load(bytes).await
    }

    /// Loads a component: checks it is a component of the right world and
    /// version, compiles it (or takes it from the artifact cache) off the
    /// async threads, pre-instantiates it and asks it to `describe` itself.
    pub async fn load(&self, bytes: Vec<u8>) -> Result<Arc<Connector>, LoadError> {
        check_header(&bytes)?;
        let shared = self.shared.clone();
        let hash = content_hash(&bytes);
        let (component, source) = {
            let hash = hash.clone();
            tokio::task::spawn_blocking(move || {
                shared.artifacts.load(&shared.engine, &bytes, &hash)
            })
            .await
            .map_err(|e| LoadError::Compile(e.to_string()))?
            .map_err(|e| LoadError::Invalid(format!("{e:#}")))?
        };
        let wit_version = connector_version_of(&self.shared.engine, &component)?;
        let pre = self
            .shared
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let pre = DestinationPre::new(pre).map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let world = DestinationIndices::new(pre.instance_pre())
            .map_err(|e| LoadError::Link(format!("{e:#}")))?;
        // The optional capability: present → it must be complete.
        let inbound = if exports_interface(&self.shared.engine, &component, INBOUND_INTERFACE) {
            Some(
                InboundIndices::new(pre.instance_pre())
                    .map_err(|e| LoadError::Link(format!("{e:#}")))?,
            )
        } else {
            None
        };
        let activation = if exports_interface(&self.shared.engine, &component, ACTIVATION_INTERFACE)
        {
            Some(
                ActivationIndices::new(pre.instance_pre())
                    .map_err(|e| LoadError::Link(format!("{e:#}")))?,
            )
        } else {
            None
        };
        let mut connector = Connector {
            shared: self.shared.clone(),
            pre,
            world,
            inbound,
            activation,
            info: ConnectorInfo {
                type_id: String::new(),
                version: String::new(),
                display_name: String::new(),
                config_schema: Json::Null,
                default_hosts: Vec::new(),
                max_concurrency: 1,
                max_batch_size: 1,
                batching: false,
                inbound_webhooks: false,
                activations: false,
                wit_version,
                content_hash: hash,
            },
            source,
            calls: Arc::new(Semaphore::new(
                self.shared.limits.connector_concurrency as usize,
            )),
            per_integration: Mutex::new(HashMap::new()),
        };
        let description = connector
            .describe()
            .await
            .map_err(|e| LoadError::Describe(e.to_string()))?;
        // A type id keys the registry and the store and is a URL segment.
        crate::ids::check_id(&description.type_id)
            .map_err(|e| LoadError::Describe(format!("type id {e}")))?;
        let config_schema = serde_json::from_str(&description.config_schema)
            .map_err(|e| LoadError::Describe(format!("config schema is not JSON: {e}")))?;
        let claims_inbound = description
            .capabilities
            .contains(bindings::Capabilities::INBOUND_WEBHOOKS);
        if claims_inbound != connector.inbound.is_some() {
            tracing::warn!(
                connector = %description.type_id,
                claims_inbound,
                exports_inbound = connector.inbound.is_some(),
                "the `inbound-webhooks` capability disagrees with the component's exports; the exports decide"
            );
        }
        connector.info = ConnectorInfo {
            type_id: description.type_id,
            version: description.version,
            display_name: description.display_name,
            config_schema,
            default_hosts: description.default_hosts,
            max_concurrency: description.max_concurrency.max(1),
            max_batch_size: description.max_batch_size.max(1),
            batching: description
                .capabilities
                .contains(bindings::Capabilities::BATCHING),
            // What the component exports decides; the flag is its claim.
            inbound_webhooks: connector.inbound.is_some(),
            activations: connector.activation.is_some(),
            ..connector.info
        };
        tracing::info!(
            connector = %connector.info.type_id,
            connector_version = %connector.info.version,
            wit = %connector.info.wit_version,
            hash = %connector.info.content_hash,
            source = ?source,
            "connector loaded"
        );
        Ok(Arc::new(connector))
    }
}

/// Core module and component binaries differ in the header's version field.
fn check_header(bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm);
    }
    match bytes[4..8] {
        [0x01, 0x00, 0x00, 0x00] => Err(LoadError::CoreModule),
        [_, _, 0x01, 0x00] => Ok(()),
        _ => Err(LoadError::Invalid(
            "unknown WebAssembly binary version".into(),
        )),
    }
}

/// The version of `prefsync:connector/connector` the component exports.
/// Whether `component` exports the optional `interface` (any 0.1.x).
fn exports_interface(engine: &Engine, component: &Component, interface: &str) -> bool {
    component
        .component_type()
        .exports(engine)
        .any(|(name, item)| {
            matches!(item.ty, ComponentItem::ComponentInstance(_))
                && name.split('@').next() == Some(interface)
        })
}

fn connector_version_of(engine: &Engine, component: &Component) -> Result<String, LoadError> {
    let ty = component.component_type();
    let exports: Vec<(String, bool)> = ty
        .exports(engine)
        .map(|(name, item)| {
            (
                name.to_string(),
                matches!(item.ty, ComponentItem::ComponentInstance(_)),
            )
        })
        .collect();
    let Some((name, _)) = exports
        .iter()
        .find(|(n, instance)| *instance && n.split('@').next() == Some(CONNECTOR_INTERFACE))
    else {
        let exports: Vec<&str> = exports.iter().map(|(n, _)| n.as_str()).collect();
        return Err(LoadError::WrongWorld {
            exports: if exports.is_empty() {
                "none".into()
            } else {
                exports.join(", ")
            },
        });
    };
    let version = name
        .split_once('@')
        .map(|(_, v)| v)
        .unwrap_or("")
        .to_string();
    let supported = SUPPORTED_WIT.iter().any(|line| {
        version
            .strip_prefix(line)
            .is_some_and(|rest| rest.starts_with('.') && !rest.contains('-'))
    });
    if supported {
        Ok(version)
    } else {
        Err(LoadError::UnsupportedVersion {
            found: if version.is_empty() {
                "(unversioned)".into()
            } else {
                version
            },
        })
    }
}

/// A loaded connector component, ready to be called.
pub struct Connector {
    shared: Arc<Shared>,
    pre: DestinationPre<CallState>,
    world: DestinationIndices,
    /// Set when the component exports the optional `inbound` interface.
    inbound: Option<InboundIndices>,
    /// Set when the component exports the optional `activation` interface.
    activation: Option<ActivationIndices>,
    info: ConnectorInfo,
    source: Source,
    /// Calls in flight for this connector across integrations.
    calls: Arc<Semaphore>,
    /// Calls in flight per integration, capped at the connector's `max_concurrency`.
    per_integration: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Connector {
    pub fn info(&self) -> &ConnectorInfo {
        &self.info
    }

    /// Whether the component was compiled now or loaded precompiled.
    pub fn source(&self) -> Source {
        self.source
    }

    /// Builds the runtime view of an integration of this connector.
    pub fn integration(&self, id: &str, config: &Json) -> Arc<IntegrationContext> {
        Arc::new(IntegrationContext::new(id, config, &self.info))
    }

    async fn describe(&self) -> Result<bindings::Description, CallError> {
        let integration = Arc::new(IntegrationContext::new(
            "(describe)",
            &Json::Null,
            &self.info,
        ));
        let (result, _) = self
            .run(integration, Vec::new(), |instance, _, store| {
                Box::pin(async move {
                    instance
                        .prefsync_connector_connector()
                        .call_describe(store)
                        .await
                })
            })
            .await;
        result
    }

    /// Every problem the connector finds in `config`, redacted: a message
    /// may quote the value it found wrong, and that value may be a secret.
    pub async fn validate(&self, config: &Json) -> Result<Vec<ValidationProblem>, CallError> {
        let integration = self.integration("(validate)", config);
        let text = integration.config_text().to_string();
        let (result, _) = self
            .run(
                integration.clone(),
                Vec::new(),
                move |instance, _, store| {
                    Box::pin(async move {
                        instance
                            .prefsync_connector_connector()
                            .call_validate(store, &text)
                            .await
                    })
                },
            )
            .await;
        let redactor = integration.redactor();
        Ok(result?
            .into_iter()
            .map(|problem| ValidationProblem {
                path: redactor.redact(&problem.path).into_owned(),
                message: redactor.redact(&problem.message).into_owned(),
            })
            .collect())
    }

    /// Delivers a batch. Never fails as a whole: a trap, limit breach or
    /// timeout becomes a failed outcome for every record.
    pub async fn deliver(
        &self,
        integration: &Arc<IntegrationContext>,
        batch: Vec<ConsentRecord>,
    ) -> Delivery {
        let expected = batch.len();
        let keys = batch.iter().map(|r| r.key.clone()).collect();
        let text = integration.config_text().to_string();
        let _permit = self.integration_permit(integration.id()).await;
        let (result, report) = self
            .run(integration.clone(), keys, move |instance, _, store| {
                Box::pin(async move {
                    instance
                        .prefsync_connector_connector()
                        .call_deliver(store, &text, &batch)
                        .await
                })
            })
            .await;
        let redactor = integration.redactor();
        let result = result.and_then(|outcomes| {
            if outcomes.len() == expected {
                Ok(outcomes)
            } else {
                Err(CallError::OutcomeCount {
                    got: outcomes.len(),
                    expected,
                })
            }
        });
        match result {
            Ok(outcomes) => Delivery {
                outcomes: outcomes
                    .into_iter()
                    .map(|o| match o {
                        Outcome::Failed(f) => Outcome::Failed(Failure {
                            message: redactor.redact(&f.message).into_owned(),
                            ..f
                        }),
                        Outcome::Skipped(why) => {
                            Outcome::Skipped(redactor.redact(&why).into_owned())
                        }
                        delivered => delivered,
                    })
                    .collect(),
                error: None,
                report,
            },
            Err(error) => {
                let failure = Failure {
                    retryable: error.retryable(),
                    retry_after_ms: None,
                    message: redactor.redact(&error.to_string()).into_owned(),
                };
                tracing::warn!(
                    connector = %self.info.type_id,
                    connector_version = %self.info.version,
                    integration = %integration.id(),
                    records = expected,
                    error = %crate::log_safe::escaped(&failure.message),
                    "connector call failed"
                );
                Delivery {
                    outcomes: (0..expected)
                        .map(|_| Outcome::Failed(failure.clone()))
                        .collect(),
                    error: Some(error),
                    report,
                }
            }
        }
    }

    /// Reads a webhook sent to one of this connector's integrations. The
    /// call runs under the same limits as a delivery; refusal texts and
    /// ignored reasons come back redacted.
    pub async fn receive(
        &self,
        integration: &Arc<IntegrationContext>,
        request: InboundRequest,
    ) -> Result<Receipt, ReceiveError> {
        let Some(indices) = self.inbound.clone() else {
            return Err(ReceiveError::Unsupported(self.info.type_id.clone()));
        };
        let text = integration.config_text().to_string();
        let (result, _) = self
            .run(
                integration.clone(),
                Vec::new(),
                move |_, instance, store| {
                    Box::pin(async move {
                        let inbound = indices.load(&mut *store, instance)?;
                        inbound.call_receive(store, &text, &request).await
                    })
                },
            )
            .await;
        let redactor = integration.redactor();
        match result? {
            Ok(receipt) => Ok(Receipt {
                ignored: receipt
                    .ignored
                    .iter()
                    .map(|why| redactor.redact(why).into_owned())
                    .collect(),
                ..receipt
            }),
            Err(message) => Err(ReceiveError::Refused(
                redactor.redact(&message).into_owned(),
            )),
        }
    }

    /// Most rows per `sync` call for `integration` (activations).
    pub async fn max_rows(&self, integration: &Arc<IntegrationContext>) -> Result<u32, SyncError> {
        let Some(indices) = self.activation.clone() else {
            return Err(SyncError::Unsupported(self.info.type_id.clone()));
        };
        let text = integration.config_text().to_string();
        let (result, _) = self
            .run(
                integration.clone(),
                Vec::new(),
                move |_, instance, store| {
                    Box::pin(async move {
                        let activation = indices.load(&mut *store, instance)?;
                        activation.call_max_rows(store, &text).await
                    })
                },
            )
            .await;
        Ok(result?.max(1))
    }

    /// Writes a batch of model rows (activations). `Ok` holds one outcome
    /// per row; a batch the destination refused as a whole, or a call that
    /// failed (trap, limit, timeout), is an error. Messages come back redacted.
    pub async fn sync(
        &self,
        integration: &Arc<IntegrationContext>,
        batch: SyncBatch,
    ) -> Result<Vec<RowOutcome>, SyncError> {
        let Some(indices) = self.activation.clone() else {
            return Err(SyncError::Unsupported(self.info.type_id.clone()));
        };
        let expected = batch.rows.len();
        let keys = batch.rows.iter().map(|r| r.key.clone()).collect();
        let text = integration.config_text().to_string();
        let _permit = self.integration_permit(integration.id()).await;
        let (result, _) = self
            .run(integration.clone(), keys, move |_, instance, store| {
                Box::pin(async move {
                    let activation = indices.load(&mut *store, instance)?;
                    activation.call_sync(store, &text, &batch).await
                })
            })
            .await;
        let redactor = integration.redactor();
        match result? {
            Ok(outcomes) if outcomes.len() == expected => Ok(outcomes
                .into_iter()
                .map(|o| match o {
                    RowOutcome::Failed(f) => RowOutcome::Failed(RowFailure {
                        message: redactor.redact(&f.message).into_owned(),
                        ..f
                    }),
                    RowOutcome::Skipped(why) => {
                        RowOutcome::Skipped(redactor.redact(&why).into_owned())
                    }
                    written => written,
                })
                .collect()),
            Ok(outcomes) => Err(SyncError::Call(CallError::OutcomeCount {
                got: outcomes.len(),
                expected,
            })),
            Err(failure) => Err(SyncError::Refused(RowFailure {
                message: redactor.redact(&failure.message).into_owned(),
                ..failure
            })),
        }
    }

    async fn integration_permit(&self, integration: &str) -> OwnedSemaphorePermit {
        let semaphore = {
            let mut map = self
                .per_integration
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            map.entry(integration.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(self.info.max_concurrency as usize)))
                .clone()
        };
        semaphore
            .acquire_owned()
            .await
            .expect("semaphore never closed")
    }

    /// Runs one export in a fresh store under every limit.
    async fn run<R, F>(
        &self,
        integration: Arc<IntegrationContext>,
        record_keys: Vec<String>,
        call: F,
    ) -> (Result<R, CallError>, CallReport)
    where
        F: for<'a> FnOnce(
            &'a DestinationWorld,
            &'a Instance,
            &'a mut Store<CallState>,
        ) -> std::pin::Pin<
            Box<dyn Future<Output = wasmtime::Result<R>> + Send + 'a>,
        >,
    {
        let limits = &self.shared.limits;
        let _connector_permit = self.calls.acquire().await.expect("semaphore never closed");
        let _instance_permit = self
            .shared
            .instances
            .acquire()
            .await
            .expect("semaphore never closed");
        let started = Instant::now();
        let tags = CallTags {
            connector: self.info.type_id.clone(),
            connector_version: self.info.version.clone(),
            record_keys,
        };
        let mut store = Store::new(
            &self.shared.engine,
            CallState::new(self.shared.clone(), integration.clone(), tags),
        );
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(1);
        // Called each epoch tick that finds guest code running: count it
        // against the CPU budget, and yield so the wall-clock timeout and
        // other tasks get their turn.
        store.epoch_deadline_callback(|mut ctx| {
            let state = ctx.data_mut();
            state.stats.cpu_ticks += 1;
            if state.stats.cpu_ticks > state.cpu_budget_ticks {
                state.cpu_exceeded = true;
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });

        let outcome = tokio::time::timeout(limits.wall(), async {
            let instance = self
                .pre
                .instance_pre()
                .instantiate_async(&mut store)
                .await?;
            let world = self.world.load(&mut store, &instance)?;
            call(&world, &instance, &mut store).await
        })
        .await;

        let state = store.data();
        state.flush_output();
        let report = CallReport {
            duration: started.elapsed(),
            stats: state.stats.clone(),
            peak_memory_bytes: state.limiter.peak as u64,
        };
        let result = match outcome {
            Err(_elapsed) => Err(CallError::WallTimeout {
                limit_ms: limits.wall_ms,
            }),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) if state.cpu_exceeded => Err(CallError::CpuLimit {
                limit_ms: limits.cpu_ms,
            }),
            Ok(Err(_)) if state.limiter.refused => Err(CallError::MemoryLimit {
                limit_bytes: limits.memory_bytes,
                requested_bytes: state.limiter.refused_total as u64,
            }),
            // A panic message is the guest's own text: it may quote the config.
            Ok(Err(trap)) => Err(CallError::Trap(
                integration
                    .redactor()
                    .redact(&describe_trap(&trap, &state.stderr.contents()))
                    .into_owned(),
            )),
        };
        (result, report)
    }
}

/// A trap in one line: the guest's panic message when it printed one,
/// otherwise the trap code, without wasmtime's multi-line backtrace.
fn describe_trap(trap: &wasmtime::Error, stderr: &str) -> String {
    let mut lines = stderr.lines();
    if lines.any(|l| l.contains("panicked at")) {
        let message: Vec<&str> = lines.take_while(|l| !l.starts_with("note:")).collect();
        return format!("connector panicked: {}", message.join(" ").trim());
    }
    match trap.downcast_ref::<wasmtime::Trap>() {
        Some(code) => code.to_string(),
        None => trap
            .to_string()
            .lines()
            .next()
            .unwrap_or("unknown trap")
            .to_string(),
    }
}

/// Advances the engine's epoch from a plain thread (not a tokio task, which
/// a busy runtime could starve); stops when the runtime is dropped.
struct EpochTicker {
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl EpochTicker {
    fn start(engine: &Engine, tick: Duration) -> Self {
        let weak = engine.weak();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("prefsync-epoch".into())
            .spawn(move || {
                while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .expect("spawning the epoch thread");
        EpochTicker { stop }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
