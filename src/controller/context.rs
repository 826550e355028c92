//! What the reconcilers share: the controller's settings and the [`Context`] of every reconcile.

use std::net::SocketAddr;
use std::sync::Arc;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use super::backoffs::Backoffs;
use super::metrics::Metrics;
use super::patchrun::daemonset::AgentSettings;
use super::stores;

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
    pub agent: AgentSettings,
    /// Leader election between replicas.
    #[command(flatten)]
    pub leader: LeaderElection,
    /// Seconds a watch may fail without progress, or a reconcile run, before /healthz fails
    /// (so the kubelet restarts a stalled controller).
    #[arg(
        long,
        env = "NODEPATCH_HEALTH_STALL_SECONDS",
        default_value_t = 300,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub health_stall_seconds: u64,
}

/// Leader election with a coordination.k8s.io Lease (`controller::leader`): every replica keeps
/// its caches warm, only the lease holder runs the reconcilers, every write passes a fence that
/// closes when the Lease was not renewed within the renew deadline, and a replica that loses the
/// lease exits (its pod restarts as a follower), so writes only ever come from the holder.
#[derive(Clone, Debug, clap::Args)]
pub struct LeaderElection {
    /// Run the reconcilers only while holding the Lease (needed with more than one replica).
    #[arg(long = "leader-elect", env = "NODEPATCH_LEADER_ELECT")]
    pub enabled: bool,
    /// Name of the Lease.
    #[arg(
        long = "leader-elect-lease-name",
        env = "NODEPATCH_LEADER_ELECT_LEASE_NAME",
        default_value = "nodepatch-controller"
    )]
    pub lease_name: String,
    /// Namespace of the Lease (the controller's own).
    #[arg(
        long = "leader-elect-namespace",
        env = "POD_NAMESPACE",
        default_value = "nodepatch-system"
    )]
    pub lease_namespace: String,
    /// Seconds a lease lasts without renewal: a dead leader is replaced after at most this long
    /// (plus the followers' retry).
    #[arg(
        long = "leader-elect-lease-seconds",
        env = "NODEPATCH_LEADER_ELECT_LEASE_SECONDS",
        default_value_t = 10
    )]
    pub lease_seconds: u64,
    /// Seconds after a renewal was sent during which the leader may still write; past them
    /// every write is refused and the process exits. Shorter than the lease (default: two
    /// thirds of it): the difference keeps a frozen leader's writes apart from the new one's.
    #[arg(
        long = "leader-elect-renew-deadline-seconds",
        env = "NODEPATCH_LEADER_ELECT_RENEW_DEADLINE_SECONDS"
    )]
    pub renew_deadline_seconds: Option<u64>,
}

/// Shared state of the reconcilers.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Client without kube's retry of 429 answers, for the Eviction API: a 429 there means "a
    /// PodDisruptionBudget forbids it now" and the drain retries on its next step instead of
    /// blocking the reconciler in backoff.
    pub eviction_client: Client,
    /// Event recorder.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Shared caches.
    pub stores: stores::Stores,
    /// Run DaemonSet settings.
    pub agent: AgentSettings,
    /// Serialises PatchRun starts (one active run per policy, decided against the API).
    pub run_starts: tokio::sync::Mutex<()>,
    /// Consecutive reconcile failures per object, for the error policy's backoff.
    pub backoffs: Backoffs,
    /// Per draining node, the evictions the Eviction API refused on the last step
    /// (`namespace/name: message`): they name the blocker when the drain times out. Only message
    /// detail lives here (lost on restart, rebuilt on the next step); the run's state is in its
    /// status. Bounded by the number of nodes.
    pub eviction_refusals: std::sync::Mutex<std::collections::HashMap<String, Vec<String>>>,
    /// When the nodes runs left cordoned were last checked, and which they were (the check GETs
    /// each candidate).
    pub cordon_check: std::sync::Mutex<Option<(std::time::Instant, Vec<String>)>>,
}

impl Context {
    /// Build the context for `client`.
    pub fn new(
        client: Client,
        eviction_client: Client,
        instance: &str,
        metrics: Arc<Metrics>,
        stores: stores::Stores,
        agent: AgentSettings,
    ) -> Context {
        let reporter = Reporter {
            controller: crate::api::CONTROLLER_MANAGER.into(),
            instance: Some(instance.into()),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            eviction_client,
            metrics,
            stores,
            agent,
            run_starts: tokio::sync::Mutex::new(()),
            backoffs: Backoffs::default(),
            eviction_refusals: Default::default(),
            cordon_check: Default::default(),
        }
    }
}
