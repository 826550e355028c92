//! The controller: one process running a reconciler per kind, serving `/metrics`, `/healthz`
//! and `/readyz`. Reconcilers are thin: read state, call a pure planner, apply its actions.

pub mod error;
pub mod maintenancewindow;
pub mod metrics;
pub mod patchbaseline;
pub mod patchpolicy;
pub mod patchrun;
pub mod stores;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

pub use error::{Error, Result};
pub use metrics::Metrics;

/// Settings of `nodepatch controller`.
#[derive(Clone, Debug, clap::Args)]
pub struct ControllerArgs {
    /// Address serving /metrics, /healthz and /readyz.
    #[arg(long, env = "NODEPATCH_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Name reported as the Events' reporting controller instance (usually the pod name).
    #[arg(long, env = "POD_NAME", default_value = "nodepatch-controller")]
    pub instance: String,
    /// How run DaemonSets are built.
    #[command(flatten)]
    pub agent: patchrun::AgentSettings,
}

/// Shared state of the reconcilers.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Event recorder.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Shared caches.
    pub stores: stores::Stores,
    /// Run DaemonSet settings.
    pub agent: patchrun::AgentSettings,
}

impl Context {
    /// Build the context for `client`.
    pub fn new(
        client: Client,
        instance: &str,
        metrics: Arc<Metrics>,
        stores: stores::Stores,
        agent: patchrun::AgentSettings,
    ) -> Context {
        let reporter = Reporter {
            controller: crate::api::CONTROLLER_MANAGER.into(),
            instance: Some(instance.into()),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            stores,
            agent,
        }
    }
}

/// Run the controller until SIGTERM/SIGINT.
pub async fn run(args: ControllerArgs) -> anyhow::Result<()> {
    let client = Client::try_default().await?;
    // Fail fast, with a clear message, when the CRDs are not installed.
    let version = client.apiserver_version().await?;
    tracing::info!(apiserver = %version.git_version, "connected");
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let (stores, drive_stores) = stores::Stores::start(&client);
    let ctx = Arc::new(Context::new(
        client.clone(),
        &args.instance,
        metrics.clone(),
        stores.clone(),
        args.agent,
    ));

    let http = tokio::spawn(serve_http(args.metrics_addr, metrics, ready.clone()));
    let stores_task = tokio::spawn(drive_stores);
    // Planners read the caches: act only once they hold the whole cluster.
    stores.ready().await;
    ready.store(true, Ordering::Relaxed);
    tracing::info!("caches synced; starting reconcilers");
    let controllers = async {
        tokio::join!(
            maintenancewindow::run(ctx.clone()),
            patchbaseline::run(ctx.clone()),
            patchpolicy::run(ctx.clone()),
            patchrun::run(ctx.clone()),
        )
    };
    tokio::select! {
        res = stores_task => tracing::error!(?res, "caches stopped"),
        _ = controllers => tracing::warn!("controllers stopped"),
        res = http => tracing::error!(?res, "http server stopped"),
        _ = shutdown_signal() => tracing::info!("shutting down"),
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn serve_http(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    use axum::http::StatusCode;
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            "content-type",
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics.encode(),
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    if ready.load(Ordering::Relaxed) {
                        (StatusCode::OK, "ok")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "starting")
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /metrics /healthz /readyz");
    axum::serve(listener, app).await?;
    Ok(())
}
