//! A loaded connector: its `describe`, and every call into it (`validate`,
//! `deliver`, `receive`, `max-rows`, `sync`), each in a fresh store under
//! every limit and the connector's concurrency caps.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;
use serde_json::Value as Json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::Instance;
use wasmtime::{Store, UpdateDeadline};

use crate::bindings::bidirectional::exports::prefsync::connector::inbound::GuestIndices as InboundIndices;
use crate::bindings::connection_check::exports::prefsync::connector::connection::GuestIndices as ConnectionIndices;
use crate::bindings::model_sync::exports::prefsync::connector::activation::GuestIndices as ActivationIndices;
use crate::bindings::{
    self, ConsentRecord, Destination as DestinationWorld, DestinationIndices, DestinationPre,
    Failure, InboundRequest, Outcome, Receipt, RowFailure, RowOutcome, SyncBatch,
    ValidationProblem,
};
use prefsync_sdk_schema::ConfigSchema;

use crate::call::{CallState, CallStats, CallTags};
use crate::engine::Shared;
use crate::{CallError, CheckError, IntegrationContext, ReceiveError, Source, SyncError};

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
    /// Whether it exports `connection` (can check an integration's
    /// credentials against its destination).
    pub connection_check: bool,
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
    /// Where the call's time went, so the sandbox's overhead can be
    /// measured step by step (`benches/runtime.rs`).
    pub phases: CallPhases,
}

/// The steps of one sandboxed call, each timed. They add up to
/// [`CallReport::duration`], which starts once the call holds its permits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallPhases {
    /// A new store and its data (WASI context, limiter, epoch deadline).
    pub store: Duration,
    /// Instantiating the pre-instantiated component in that store.
    pub instantiate: Duration,
    /// The export itself: arguments in, guest code, results out.
    pub call: Duration,
    /// Guest output to the log, and the store dropped (the instance's
    /// memory is reset and its slot handed back to the pool).
    pub teardown: Duration,
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

/// A loaded connector component, ready to be called.
pub struct Connector {
    pub(crate) shared: Arc<Shared>,
    pub(crate) pre: DestinationPre<CallState>,
    pub(crate) world: DestinationIndices,
    /// Set when the component exports the optional `inbound` interface.
    pub(crate) inbound: Option<InboundIndices>,
    /// Set when the component exports the optional `activation` interface.
    pub(crate) activation: Option<ActivationIndices>,
    /// Set when the component exports the optional `connection` interface.
    pub(crate) connection: Option<ConnectionIndices>,
    pub(crate) info: ConnectorInfo,
    /// `info.config_schema` compiled at load; every config is checked
    /// against it before the connector's own `validate` sees it.
    pub(crate) config_schema: Option<Arc<ConfigSchema>>,
    pub(crate) source: Source,
    /// Calls in flight for this connector across integrations.
    pub(crate) calls: Arc<Semaphore>,
    /// Calls in flight per integration, capped at the connector's `max_concurrency`.
    pub(crate) per_integration: Mutex<HashMap<String, Arc<Semaphore>>>,
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

    pub(crate) async fn describe(&self) -> Result<bindings::Description, CallError> {
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

    /// Every problem of `config`: first against the connector's JSON Schema
    /// (checked here, by the host, so every connector gets the same checks
    /// and messages); only a config that fits goes to the connector's own
    /// `validate`, whose answer is redacted: a message may quote the value
    /// it found wrong, and that value may be a secret.
    pub async fn validate(&self, config: &Json) -> Result<Vec<ValidationProblem>, CallError> {
        if let Some(schema) = &self.config_schema {
            let problems = schema.problems(config);
            if !problems.is_empty() {
                return Ok(problems
                    .into_iter()
                    .map(|p| ValidationProblem {
                        path: p.path,
                        message: p.message,
                    })
                    .collect());
            }
        }
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

    /// Checks the integration's connection: the connector reaches its
    /// destination with the config (one that passed `validate`) and says
    /// what the destination refused, each problem at its field's path.
    /// Messages come back redacted.
    pub async fn check_connection(
        &self,
        integration: &Arc<IntegrationContext>,
    ) -> Result<Vec<ValidationProblem>, CheckError> {
        let Some(indices) = self.connection.clone() else {
            return Err(CheckError::Unsupported(self.info.type_id.clone()));
        };
        let text = integration.config_text().to_string();
        let _permit = self.integration_permit(integration.id()).await;
        let (result, _) = self
            .run(
                integration.clone(),
                Vec::new(),
                move |_, instance, store| {
                    Box::pin(async move {
                        let connection = indices.load(&mut *store, instance)?;
                        connection.call_check(store, &text).await
                    })
                },
            )
            .await;
        let redactor = integration.redactor();
        match result? {
            Ok(problems) => Ok(problems
                .into_iter()
                .map(|p| ValidationProblem {
                    path: redactor.redact(&p.path).into_owned(),
                    message: redactor.redact(&p.message).into_owned(),
                })
                .collect()),
            Err(reason) => Err(CheckError::Unreachable(
                redactor.redact(&reason).into_owned(),
            )),
        }
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
                    error = %prefsync_base::log_safe::escaped(&failure.message),
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

        let created = Instant::now();
        let mut instantiated = None;
        let outcome = tokio::time::timeout(limits.wall(), async {
            let instance = self
                .pre
                .instance_pre()
                .instantiate_async(&mut store)
                .await?;
            let world = self.world.load(&mut store, &instance)?;
            instantiated = Some(Instant::now());
            call(&world, &instance, &mut store).await
        })
        .await;
        let returned = Instant::now();

        let state = store.data();
        state.flush_output();
        let stats = state.stats.clone();
        let peak_memory_bytes = state.limiter.peak as u64;
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
        // Dropping the store frees the instance: its slot's memory is reset
        // to the component's initial image before anyone else gets it.
        drop(store);
        let finished = Instant::now();
        let instantiated = instantiated.unwrap_or(returned);
        let report = CallReport {
            duration: finished - started,
            stats,
            peak_memory_bytes,
            phases: CallPhases {
                store: created - started,
                instantiate: instantiated - created,
                call: returned - instantiated,
                teardown: finished - returned,
            },
        };
        (result, report)
    }
}

/// A trap in one line: the guest's panic message and where in its source it
/// panicked (`file:line:column`) when it printed one, otherwise the trap
/// code, without wasmtime's multi-line backtrace.
fn describe_trap(trap: &wasmtime::Error, stderr: &str) -> String {
    let mut lines = stderr.lines();
    // `thread '<unnamed>' panicked at src/lib.rs:12:5:`, then the message.
    if let Some(header) = lines.find(|l| l.contains("panicked at")) {
        let location = header
            .split_once("panicked at ")
            .map(|(_, at)| at.trim().trim_end_matches(':'))
            .filter(|at| !at.is_empty());
        let message: Vec<&str> = lines.take_while(|l| !l.starts_with("note:")).collect();
        let message = message.join(" ");
        return match location {
            Some(at) => format!("connector panicked at {at}: {}", message.trim()),
            None => format!("connector panicked: {}", message.trim()),
        };
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
