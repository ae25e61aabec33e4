//! `prefsync serve`: the HTTP API over the store and the loaded connectors.
//!
//! [`run`] is the command: managed connectors (the registry's versions and
//! the connector directory's), until a signal. [`Server`] is the same server
//! started in-process, also with a fixed [`Registry`] of destinations,
//! which the pipeline benchmark uses.

pub mod api;
mod auth;
pub mod canary;
pub mod connectors;
mod console;
mod dispatch;
pub mod registry;
mod request_log;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde::Serialize;

use crate::config::HostConfig;
use crate::metrics::{Metrics, VersionInService};
use crate::runtime::{Runtime, RuntimeOptions};
use crate::store::{PostgresStore, SqliteStore, Store};

pub use connectors::ConnectorManager;
pub use registry::Registry;

/// Everything a request handler may need.
pub struct App {
    pub store: Arc<dyn Store>,
    pub connectors: Arc<Registry>,
    /// Upgrades and rollbacks; `None` when the server was started with a
    /// fixed set of destinations (the pipeline benchmark).
    pub manager: Option<Arc<ConnectorManager>>,
    pub config: Arc<HostConfig>,
    pub metrics: Metrics,
    /// Activations: their runs and scheduler.
    pub activations: Arc<crate::activation::Activations>,
    /// Woken when new work is committed, so the dispatcher need not wait for its poll.
    pub work: tokio::sync::Notify,
    admin_token: String,
    /// `POST /v1/events` takes this token, or the admin token.
    ingest_token: Option<String>,
}

/// Runs the server until Ctrl-C or SIGTERM, with the connector versions the
/// registry keeps and those of the connector directory.
pub async fn run(config: HostConfig) -> Result<()> {
    let runtime = Runtime::new(RuntimeOptions {
        limits: config.limits.clone(),
        egress: config.egress.clone(),
        artifact_dir: Some(config.storage.artifact_dir()),
        transport: None,
    })?;
    let grace = std::time::Duration::from_millis(config.server.shutdown_grace_ms);
    let server = Server::start(config, Connectors::Managed(runtime)).await?;
    // Scripts and tests read this line to find the port (listen may be :0).
    println!("prefsync listening on http://{}", server.addr());
    let stop_began = Arc::new(std::sync::OnceLock::new());
    let signal = {
        let stop_began = stop_began.clone();
        async move {
            shutdown_signal().await;
            let _ = stop_began.set(std::time::Instant::now());
        }
    };
    let served = server.run_until(signal).await;
    // The last spans are sent within what is left of the grace.
    let began = stop_began
        .get()
        .copied()
        .unwrap_or_else(std::time::Instant::now);
    crate::telemetry::shutdown(grace.saturating_sub(began.elapsed())).await;
    served
}

/// A running server: the API, and the dispatcher delivering what it takes in.
pub struct Server {
    addr: SocketAddr,
    app: Arc<App>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<()>>,
}

/// What a server delivers through.
pub enum Connectors {
    /// Versions managed by the registry: restored from the store, loaded
    /// from the connector directory, upgraded while serving.
    Managed(Runtime),
    /// A fixed set (the pipeline benchmark's native destinations).
    Fixed(Arc<Registry>),
}

impl Server {
    /// Opens the store, loads the connectors and the integrations of the
    /// configured directories, binds the listener and starts serving and
    /// dispatching.
    pub async fn start(config: HostConfig, connectors: Connectors) -> Result<Server> {
        let store = open_store(&config).await?;
        clamp_future_stamps(store.as_ref(), &config).await?;
        let metrics = Metrics::new();
        let (connectors, manager) = match connectors {
            Connectors::Managed(runtime) => {
                let registry = Arc::new(Registry::default());
                let manager = Arc::new(
                    ConnectorManager::new(runtime, store.clone(), registry.clone())
                        .with_metrics(metrics.clone()),
                );
                manager.bootstrap(&config.connectors.dir).await?;
                tracing::info!(connectors = ?registry.type_ids(), dir = %config.connectors.dir.display(), "connectors loaded");
                (registry, Some(manager))
            }
            Connectors::Fixed(registry) => (registry, None),
        };
        let admin_token = crate::admin_token::admin_token(&config, &config.storage.data_dir)?;
        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("listening on {}", config.server.listen))?;
        let addr = listener.local_addr()?;
        let owner =
            config.dispatch.host_id.clone().unwrap_or_else(|| {
                format!("prefsync-{}-{}", std::process::id(), crate::random_hex(3))
            });
        let lookup = connectors.clone();
        let activations = Arc::new(
            crate::activation::Activations::new(
                store.clone(),
                Arc::new(move |type_id: &str| lookup.get(type_id)),
                owner.clone(),
                &config,
            )?
            .with_metrics(metrics.clone()),
        );
        let app = Arc::new(App {
            store,
            activations,
            connectors,
            manager,
            ingest_token: config.server.ingest_token.clone(),
            config: Arc::new(config),
            work: tokio::sync::Notify::new(),
            metrics,
            admin_token,
        });
        load_config_dirs(&app).await?;
        let (stop_dispatch, stopped) = tokio::sync::watch::channel(false);
        let background = Background::spawn(&app, owner, stopped);
        let (stop, stop_requested) = tokio::sync::oneshot::channel::<()>();
        let router = router(app.clone());
        let grace = std::time::Duration::from_millis(app.config.server.shutdown_grace_ms);
        let task = tokio::spawn(serve_then_drain(
            listener,
            router,
            stop_requested,
            (stop_dispatch, background),
            grace,
        ));
        Ok(Server {
            addr,
            app,
            stop: Some(stop),
            task,
        })
    }

    /// Where the API listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin bearer token (configured, from the environment, or generated).
    pub fn admin_token(&self) -> &str {
        &self.app.admin_token
    }

    /// Serves until `signal` resolves, then stops as [`Server::stop`] does.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) -> Result<()> {
        tokio::select! {
            _ = signal => {}
            // The server ending by itself (a listener error) ends the wait too.
            ended = &mut self.task => return ended.context("the server task panicked")?,
        }
        self.stop().await
    }

    /// Stops accepting requests, lets the deliveries in flight finish and be
    /// recorded, and returns once everything has stopped.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.context("the server task panicked")?
    }
}

/// The store and the connectors in service, as `serve` opens them, with the
/// integration files loaded; for commands that work without serving
/// (`prefsync activation run`).
pub async fn open_offline(config: &HostConfig) -> Result<(Arc<dyn Store>, Arc<Registry>)> {
    let store = open_store(config).await?;
    let runtime = Runtime::new(RuntimeOptions {
        limits: config.limits.clone(),
        egress: config.egress.clone(),
        artifact_dir: Some(config.storage.artifact_dir()),
        transport: None,
    })?;
    let registry = Arc::new(Registry::default());
    ConnectorManager::new(runtime, store.clone(), registry.clone())
        .bootstrap(&config.connectors.dir)
        .await?;
    if let Some(dir) = &config.integrations.dir {
        crate::integrations::load_dir(store.as_ref(), registry.as_ref(), dir).await?;
    }
    Ok((store, registry))
}

/// The configured store (PostgreSQL, or the SQLite file in the data dir),
/// the data dir created owner-only (0700) if missing: it holds the database
/// and the admin token.
async fn open_store(config: &HostConfig) -> Result<Arc<dyn Store>> {
    let data_dir = &config.storage.data_dir;
    crate::store::private_files::create_private_dir(data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    Ok(match &config.storage.url {
        Some(url) => Arc::new(PostgresStore::connect_pooled(url, config.storage.pool_size).await?),
        None => Arc::new(SqliteStore::open(&config.storage.sqlite_path())?),
    })
}

/// States written before future-dated events were refused may hold stamps
/// that would beat every later change: they are moved back to now.
async fn clamp_future_stamps(store: &dyn Store, config: &HostConfig) -> Result<()> {
    let repair_at = crate::now_ms();
    let repaired = store
        .clamp_future_stamps(config.ingest.latest_accepted_ms(repair_at), repair_at)
        .await
        .context("clamping consent stamps dated in the future")?;
    if repaired > 0 {
        tracing::info!(
            users = repaired,
            "consent stamps dated in the future moved back to the start time, so later changes win"
        );
    }
    Ok(())
}

/// Config as code: the integrations and activations of their directories.
async fn load_config_dirs(app: &App) -> Result<()> {
    if let Some(dir) = &app.config.integrations.dir {
        let count =
            crate::integrations::load_dir(app.store.as_ref(), app.connectors.as_ref(), dir).await?;
        tracing::info!(count, dir = %dir.display(), "integrations loaded from files");
    }
    if let Some(dir) = &app.config.activations.dir {
        let count = app.activations.load_dir(dir).await?;
        tracing::info!(count, dir = %dir.display(), "activations loaded from files");
    }
    Ok(())
}

/// The server's background work: the dispatcher, the activation scheduler
/// and (with managed connectors) the connector supervisor, all stopped by
/// one signal.
struct Background {
    dispatcher: tokio::task::JoinHandle<()>,
    scheduler: tokio::task::JoinHandle<()>,
    supervisor: Option<tokio::task::JoinHandle<()>>,
}

impl Background {
    fn spawn(app: &Arc<App>, owner: String, stopped: tokio::sync::watch::Receiver<bool>) -> Self {
        let dispatcher = tokio::spawn(dispatch::run(app.clone(), owner, stopped.clone()));
        let scheduler = tokio::spawn(app.activations.clone().schedule(
            std::time::Duration::from_millis(app.config.activations.poll_ms),
            stopped.clone(),
        ));
        let supervisor = app.manager.clone().map(|manager| {
            let watch_dir = app
                .config
                .connectors
                .watch
                .then(|| app.config.connectors.dir.clone());
            let tick = std::time::Duration::from_millis(app.config.connectors.watch_interval_ms);
            tokio::spawn(manager.supervise(watch_dir, tick, stopped))
        });
        Background {
            dispatcher,
            scheduler,
            supervisor,
        }
    }

    /// Waits for each to end (after the stop signal).
    async fn finish(&mut self) {
        let _ = (&mut self.dispatcher).await;
        let _ = (&mut self.scheduler).await;
        if let Some(supervisor) = &mut self.supervisor {
            let _ = supervisor.await;
        }
    }

    /// Ends each now; the dispatcher's deliveries in flight end with it.
    fn abort(&self) {
        self.dispatcher.abort();
        self.scheduler.abort();
        if let Some(supervisor) = &self.supervisor {
            supervisor.abort();
        }
    }
}

/// Serves until the stop signal, then drains within `grace` of it: first
/// the HTTP requests in flight, then the background work (the dispatcher
/// stops claiming and lets its deliveries finish and be recorded). Past
/// the grace, what still runs is dropped and the stop goes on: a delivery
/// cut short stays claimed under its lease, so it is delivered again (by
/// another host, or this one restarted) once the lease ends; nothing is
/// lost, and an orchestrator's own grace period (Kubernetes: 30 s) is kept.
async fn serve_then_drain(
    listener: tokio::net::TcpListener,
    router: Router,
    stop_requested: tokio::sync::oneshot::Receiver<()>,
    (stop_background, mut background): (tokio::sync::watch::Sender<bool>, Background),
    grace: std::time::Duration,
) -> Result<()> {
    let stopping = Arc::new(tokio::sync::Notify::new());
    let signal = {
        let stopping = stopping.clone();
        async move {
            let _ = stop_requested.await;
            stopping.notify_one();
        }
    };
    let serve = axum::serve(listener, router)
        .with_graceful_shutdown(signal)
        .into_future();
    tokio::pin!(serve);
    tokio::select! {
        // The stop first: it ends `serve` too (at once when no request is
        // open), and then both are ready; the stop's deadline must be kept.
        // `notify_one` happens before the signal ends, so its permit is
        // there whenever a stop is what ended `serve`.
        biased;
        () = stopping.notified() => {}
        // Ended without a stop (the listener failed): no deadline to keep.
        served = &mut serve => {
            let _ = stop_background.send(true);
            background.finish().await;
            return served.context("serving HTTP");
        }
    }
    let deadline = tokio::time::Instant::now() + grace;
    let served = tokio::time::timeout_at(deadline, &mut serve).await;
    let _ = stop_background.send(true);
    let drained = served.is_ok()
        && tokio::time::timeout_at(deadline, background.finish())
            .await
            .is_ok();
    if !drained {
        background.abort();
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "shutdown grace elapsed: requests and deliveries still in flight were cut short; \
             their deliveries stay leased and are delivered again when the lease ends"
        );
    }
    match served {
        Ok(served) => served.context("serving HTTP"),
        Err(_) => Ok(()),
    }
}

/// The API's routes; admin routes require the admin bearer token.
pub fn router(app: Arc<App>) -> Router {
    let admin = api::integrations::routes()
        .merge(api::deliveries::routes())
        .merge(api::activations::routes())
        .merge(api::overview::routes())
        .merge(api::connectors::routes(
            app.config.connectors.max_upload_bytes,
        ))
        .route("/v1/users/{id}", get(api::events::user))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::require_admin,
        ));
    let ingest = Router::new()
        .route("/v1/events", axum::routing::post(api::events::ingest))
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::require_ingest,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(ready))
        .route("/metrics", get(prometheus))
        .route("/v1/openapi.json", get(api::openapi::document))
        .merge(admin)
        .merge(ingest)
        // Authenticated by each integration's shared secret, not a bearer token.
        .merge(api::webhooks::routes())
        .merge(api::connectors::renamed_routes())
        .merge(console::routes())
        .route_layer(axum::middleware::from_fn(request_log::keep_route))
        .fallback(api::error::no_route)
        .layer(DefaultBodyLimit::max(app.config.server.max_body_bytes))
        // Outermost, so axum's own plain-text errors (405, 413) become JSON too.
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            api::error::json_errors,
        ))
        // Outside everything, so the line has the status the client gets.
        .layer(axum::middleware::from_fn(request_log::log_request))
        .with_state(app)
}

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "health",
    responses((status = 200, description = "Alive.", content_type = "text/plain", body = String, example = "ok"))
)]
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// The answer of `GET /readyz`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// Whether the store answers.
    pub ready: bool,
    /// The connector types loaded (when ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connectors: Option<Vec<String>>,
    /// Deliveries waiting (when ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_depth: Option<u64>,
}

/// Readiness: the store reachable, the connectors loaded.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "ready",
    tag = "health",
    responses(
        (status = 200, description = "Ready.", body = Readiness),
        (status = 503, description = "The store does not answer: `{\"ready\": false}`.", body = Readiness),
    )
)]
pub(crate) async fn ready(State(app): State<Arc<App>>) -> (StatusCode, axum::Json<Readiness>) {
    match app.store.queue_depth().await {
        Ok(depth) => (
            StatusCode::OK,
            axum::Json(Readiness {
                ready: true,
                connectors: Some(app.connectors.type_ids()),
                queue_depth: Some(depth),
            }),
        ),
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "store not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(Readiness {
                    ready: false,
                    connectors: None,
                    queue_depth: None,
                }),
            )
        }
    }
}

/// Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "prometheus",
    tag = "health",
    responses(
        (status = 200, description = "The Prometheus text exposition format (0.0.4).", content_type = "text/plain", body = String),
        (status = 500, description = "The store failed.", body = api::error::ErrorBody),
    )
)]
pub(crate) async fn prometheus(
    State(app): State<Arc<App>>,
) -> Result<impl axum::response::IntoResponse, api::error::ApiError> {
    let queues = app.store.queue_stats().await?;
    let text = app
        .metrics
        .render(
            &queues,
            &versions_in_service(&app.connectors),
            crate::now_ms(),
        )
        .await;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            crate::metrics::CONTENT_TYPE,
        )],
        text,
    ))
}

/// The connector versions in service, by role, for `prefsync_connector_info`.
fn versions_in_service(registry: &Registry) -> Vec<VersionInService> {
    let mut versions = Vec::new();
    for type_id in registry.type_ids() {
        let Some(view) = registry.view(&type_id) else {
            continue;
        };
        let canary = view.canary.as_ref().map(|run| run.candidate.clone());
        for (role, destination) in [
            ("active", Some(view.active.clone())),
            ("standby", view.standby.clone()),
            ("canary", canary),
        ] {
            if let Some(destination) = destination {
                let info = destination.info();
                versions.push(VersionInService {
                    connector: type_id.clone(),
                    role,
                    version: info.version.clone(),
                    hash: info.content_hash.clone(),
                });
            }
        }
    }
    versions
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}
