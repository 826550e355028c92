//! The controller: one process running a reconciler per kind, serving `/metrics`, `/healthz`
//! and `/readyz`. Reconcilers are thin: read state, call a pure planner, apply its actions.

pub mod backoffs;
pub mod context;
pub mod drain;
pub mod error;
pub mod harness;
pub mod health;
pub mod leader;
pub mod maintenancewindow;
pub mod metrics;
pub mod patchbaseline;
pub mod patchpolicy;
pub mod patchrun;
pub mod stores;
pub mod watch;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kube::Client;

pub use context::{Context, ControllerArgs, LeaderElection};
pub use error::{Error, Result};
pub use metrics::Metrics;

/// Run the controller until SIGTERM/SIGINT.
pub async fn run(args: ControllerArgs) -> anyhow::Result<()> {
    let config = kube::Config::infer().await?;
    let timing = match args.leader.enabled {
        true => Some(
            leader::LeaseTiming::from_flags(
                args.leader.lease_seconds,
                args.leader.renew_deadline_seconds,
            )
            .map_err(anyhow::Error::msg)?,
        ),
        false => None,
    };
    // Every write of the reconcilers passes the fence; only the Lease's own requests do not.
    let fence = match timing {
        Some(_) => leader::Fence::closed(),
        None => leader::Fence::open(),
    };
    let lease_client = Client::try_from(config.clone())?;
    let client = leader::fenced_client(config.clone(), &fence, timing.as_ref())?;
    let mut eviction_config = config;
    eviction_config.default_retry = false;
    let eviction_client = leader::fenced_client(eviction_config, &fence, timing.as_ref())?;
    // Fail fast, with a clear message, when the CRDs are not installed.
    let version = client.apiserver_version().await?;
    tracing::info!(apiserver = %version.git_version, "connected");
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let health = Arc::new(health::Health::new(std::time::Duration::from_secs(
        args.health_stall_seconds,
    )));
    let undecodable = Arc::new(watch::Undecodable::new(
        metrics.clone(),
        kube::runtime::events::Recorder::new(
            client.clone(),
            kube::runtime::events::Reporter {
                controller: crate::api::CONTROLLER_MANAGER.into(),
                instance: Some(args.instance.clone()),
            },
        ),
    ));
    let (stores, drive_stores) = stores::Stores::start(&client, health.clone(), undecodable);
    let ctx = Arc::new(Context::new(
        client.clone(),
        eviction_client,
        &args.instance,
        metrics.clone(),
        stores.clone(),
        args.agent,
    ));

    let http = tokio::spawn(serve_http(
        args.metrics_addr,
        metrics.clone(),
        ready.clone(),
        health,
    ));
    let stores_task = tokio::spawn(drive_stores);
    // Planners read the caches: act only once they hold the whole cluster.
    stores.ready().await;
    ready.store(true, Ordering::Relaxed);
    // With leader election, followers keep their caches warm and wait here.
    let mut elector = None;
    if let Some(timing) = timing {
        let identity = format!("{}_{}", args.instance, std::process::id());
        let leases = kube::Api::namespaced(lease_client, &args.leader.lease_namespace);
        let candidate = leader::Elector::new(
            leases,
            &args.leader.lease_name,
            &identity,
            timing,
            fence.clone(),
        );
        tracing::info!(%identity, lease = %args.leader.lease_name, namespace = %args.leader.lease_namespace, "waiting to be elected leader");
        let elected = tokio::select! {
            _ = candidate.acquire() => true,
            _ = shutdown_signal() => false,
        };
        if !elected {
            return Ok(());
        }
        tracing::info!(%identity, "elected leader");
        elector = Some(candidate);
    }
    // Without election this replica is the only one and always runs the reconcilers.
    metrics.leader.set(1);
    tracing::info!("caches synced; starting reconcilers");
    let controllers = async {
        tokio::join!(
            maintenancewindow::run(ctx.clone()),
            patchbaseline::run(ctx.clone()),
            patchpolicy::run(ctx.clone()),
            patchrun::run(ctx.clone()),
        )
    };
    let lost = async {
        match &elector {
            Some(elector) => elector.hold().await,
            None => std::future::pending().await,
        }
    };
    let mut lost_lease = false;
    tokio::select! {
        res = stores_task => tracing::error!(?res, "caches stopped"),
        _ = controllers => tracing::warn!("controllers stopped"),
        res = http => tracing::error!(?res, "http server stopped"),
        why = lost => {
            // The fence is closed already: nothing this process still has queued is sent.
            tracing::error!(reason = %why, "leader election lost: writes fenced, exiting so that only the new leader writes");
            metrics.leader.set(0);
            lost_lease = true;
        }
        _ = shutdown_signal() => tracing::info!("shutting down"),
    }
    if let Some(elector) = &elector {
        // Releasing the Lease lets a follower take over at once (only while still fresh).
        elector.release().await;
    }
    anyhow::ensure!(!lost_lease, "leader election lost");
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
    health: Arc<health::Health>,
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
        // Live while every watch and reconcile makes progress (see `health`); the kubelet
        // restarts the process otherwise.
        .route(
            "/healthz",
            get(move || {
                let health = health.clone();
                async move {
                    match health.check(std::time::Instant::now()) {
                        Ok(()) => (StatusCode::OK, "ok".to_string()),
                        Err(stall) => {
                            tracing::error!(%stall, "liveness failing");
                            (StatusCode::SERVICE_UNAVAILABLE, format!("stalled: {stall}"))
                        }
                    }
                }
            }),
        )
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
