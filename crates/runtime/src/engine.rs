//! The engine: one wasmtime engine with the pooling allocator and epoch
//! interruption, the linker of the host's imports, the artifact cache, and
//! loading a component into a [`Connector`] after checking what it exports.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use prefsync_sdk_schema::ConfigSchema;
use serde_json::Value as Json;
use tokio::sync::Semaphore;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::bidirectional::exports::prefsync::connector::inbound::GuestIndices as InboundIndices;
use crate::bindings::connection_check::exports::prefsync::connector::connection::GuestIndices as ConnectionIndices;
use crate::bindings::model_sync::exports::prefsync::connector::activation::GuestIndices as ActivationIndices;
use crate::bindings::{self, Destination as DestinationWorld, DestinationIndices, DestinationPre};
use crate::call::CallState;
use crate::egress::EgressOptions;
use crate::outbound_http::{OutboundHttp, Transport};
use crate::{
    ACTIVATION_INTERFACE, ArtifactCache, CONNECTION_INTERFACE, CONNECTOR_INTERFACE, Connector,
    ConnectorInfo, INBOUND_INTERFACE, Limits, LoadError, SUPPORTED_WIT, Source, content_hash, kv,
};

/// How the runtime is set up.
#[derive(Clone, Default)]
pub struct RuntimeOptions {
    pub limits: Limits,
    pub egress: EgressOptions,
    /// Directory of precompiled artifacts; `None` compiles on every load.
    pub artifact_dir: Option<PathBuf>,
    /// Where requests the egress policy allows go; `None` is the network.
    /// `prefsync connector test --cassette` replays or records here.
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
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<CallState>,
    pub(crate) artifacts: ArtifactCache,
    pub(crate) limits: Limits,
    pub(crate) http: OutboundHttp,
    pub(crate) kv: kv::KvCache,
    pub(crate) instances: Arc<Semaphore>,
    _ticker: EpochTicker,
}

/// Loads components and hands out [`Connector`]s.
#[derive(Clone)]
pub struct Runtime {
    shared: Arc<Shared>,
}

/// Linear memory a freed pool slot keeps mapped, reset in place (the dirty
/// pages copied back from the component's image or zeroed) instead of being
/// handed back to the kernel: the next instance in the slot then takes no
/// page faults for its stack, data and small heap. Beyond it, pages are
/// released (`madvise`) as before.
const MEMORY_KEEP_RESIDENT: usize = 4 << 20;
/// The same for tables (function references of the component's modules).
const TABLE_KEEP_RESIDENT: usize = 256 << 10;

/// How warm the pooling allocator keeps its freed slots. What serves is
/// [`PoolTuning::default`]; the benchmark builds a runtime with the cold
/// settings too, to measure in one run what keeping slots warm saves.
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct PoolTuning {
    /// Reset freed memories and tables in place, up to
    /// `MEMORY_KEEP_RESIDENT` / `TABLE_KEEP_RESIDENT`, finding the dirty
    /// pages with `PAGEMAP_SCAN`. Only where that exists (Linux 6.7+):
    /// without it wasmtime would rewrite the slot's first bytes up to the
    /// bound on every reset, slower than handing them back.
    pub keep_resident: bool,
}

impl Default for PoolTuning {
    fn default() -> Self {
        PoolTuning {
            keep_resident: true,
        }
    }
}

impl Runtime {
    pub fn new(options: RuntimeOptions) -> Result<Self> {
        Self::with_pool_tuning(options, PoolTuning::default())
    }

    /// [`Runtime::new`] with the pooling allocator tuned otherwise: for the
    /// benchmark, which compares cold and warm slots in one run.
    #[doc(hidden)]
    pub fn with_pool_tuning(options: RuntimeOptions, tuning: PoolTuning) -> Result<Self> {
        let limits = options.limits;
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(limits.max_instances)
            .total_core_instances(limits.max_instances * 4)
            .total_memories(limits.max_instances * 2)
            .total_tables(limits.max_instances * 4)
            .total_stacks(limits.max_instances)
            .max_memory_size(usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX));
        if tuning.keep_resident && PoolingAllocationConfig::is_pagemap_scan_available() {
            // Every byte of a slot is still reset before the slot is reused
            // (copied from the image or zeroed): an instance never sees what
            // the previous one left, only the page faults are saved.
            pool.linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
                .table_keep_resident(TABLE_KEEP_RESIDENT)
                .pagemap_scan(Enabled::Yes);
        }
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            // Copy-on-write memory images (wasmtime's default, set so it
            // stays so): an instance's memory starts as a mapping of the
            // component's initial image, not a copy of its data segments.
            .memory_init_cow(true)
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
        let hash = content_hash(&bytes);
        let (component, source) = self.compile(bytes, hash.clone()).await?;
        let wit_version = connector_version_of(&self.shared.engine, &component)?;
        let linked = self.link(&component)?;
        let mut connector = Connector {
            shared: self.shared.clone(),
            pre: linked.pre,
            world: linked.world,
            inbound: linked.inbound,
            activation: linked.activation,
            connection: linked.connection,
            config_schema: None,
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
                connection_check: false,
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
        connector.info = described_info(description, &connector)?;
        connector.config_schema = compiled_schema(&connector.info.config_schema)?;
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

    /// Compiles the component, or takes it from the artifact cache, on a
    /// blocking thread.
    async fn compile(
        &self,
        bytes: Vec<u8>,
        hash: String,
    ) -> Result<(Component, Source), LoadError> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || shared.artifacts.load(&shared.engine, &bytes, &hash))
            .await
            .map_err(|e| LoadError::Compile(e.to_string()))?
            .map_err(|e| LoadError::Invalid(format!("{e:#}")))
    }

    /// Pre-instantiates the component against the host's imports and finds
    /// its exports; an optional capability that is present must be complete.
    fn link(&self, component: &Component) -> Result<Linked, LoadError> {
        let link_error = |e: wasmtime::Error| LoadError::Link(format!("{e:#}"));
        let pre = self
            .shared
            .linker
            .instantiate_pre(component)
            .map_err(link_error)?;
        let pre = DestinationPre::new(pre).map_err(link_error)?;
        let world = DestinationIndices::new(pre.instance_pre()).map_err(link_error)?;
        let engine = &self.shared.engine;
        let inbound = exports_interface(engine, component, INBOUND_INTERFACE)
            .then(|| InboundIndices::new(pre.instance_pre()).map_err(link_error))
            .transpose()?;
        let activation = exports_interface(engine, component, ACTIVATION_INTERFACE)
            .then(|| ActivationIndices::new(pre.instance_pre()).map_err(link_error))
            .transpose()?;
        let connection = exports_interface(engine, component, CONNECTION_INTERFACE)
            .then(|| ConnectionIndices::new(pre.instance_pre()).map_err(link_error))
            .transpose()?;
        Ok(Linked {
            pre,
            world,
            inbound,
            activation,
            connection,
        })
    }
}

/// A component linked: its pre-instance and the indices of what it exports.
struct Linked {
    pre: DestinationPre<CallState>,
    world: DestinationIndices,
    inbound: Option<InboundIndices>,
    activation: Option<ActivationIndices>,
    connection: Option<ConnectionIndices>,
}

/// The config schema compiled for checking configs; `null` (a connector
/// that describes no schema) checks nothing. A schema that is not a JSON
/// Schema refuses the load: every config would otherwise go unchecked.
fn compiled_schema(schema: &Json) -> Result<Option<Arc<ConfigSchema>>, LoadError> {
    if schema.is_null() {
        return Ok(None);
    }
    ConfigSchema::compile(schema)
        .map(|compiled| Some(Arc::new(compiled)))
        .map_err(|e| LoadError::Describe(e.to_string()))
}

/// The connector's info from its `describe`: the type id checked (it keys
/// the registry and the store and is a URL segment), the schema parsed, and
/// the capabilities decided by what the component exports (the flags are
/// only its claim).
fn described_info(
    description: bindings::Description,
    connector: &Connector,
) -> Result<ConnectorInfo, LoadError> {
    prefsync_base::ids::check_id(&description.type_id)
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
    Ok(ConnectorInfo {
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
        inbound_webhooks: connector.inbound.is_some(),
        activations: connector.activation.is_some(),
        connection_check: connector.connection.is_some(),
        ..connector.info.clone()
    })
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_config_schema_is_compiled_at_load_or_refuses_the_connector() {
        assert!(compiled_schema(&Json::Null).unwrap().is_none());
        assert!(compiled_schema(&json!({})).unwrap().is_some());
        let derived = json!({"type": "object", "required": ["mappings"],
                             "properties": {"mappings": {"type": "array", "minItems": 1}}});
        let compiled = compiled_schema(&derived).unwrap().unwrap();
        assert_eq!(compiled.problems(&json!({"mappings": []})).len(), 1);
        let refused = compiled_schema(&json!({"type": "no-such-type"})).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("the config schema is not a valid JSON Schema"),
            "{refused}"
        );
    }
}
