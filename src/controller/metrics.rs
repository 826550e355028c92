//! Prometheus metrics of the controller. Label values are bounded: kinds, results and error
//! categories are fixed sets, never object names or error strings.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of reconcile counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// Kind reconciled.
    pub kind: &'static str,
    /// `ok` or `error`.
    pub result: &'static str,
}

/// Labels of error counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Kind reconciled.
    pub kind: &'static str,
    /// `Error::category()`.
    pub category: &'static str,
}

/// Labels carrying only the kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// Kind reconciled.
    pub kind: &'static str,
}

/// Labels of per-policy node gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyComplianceLabels {
    /// Policy name (bounded by the number of policies users create).
    pub policy: String,
    /// compliant, noncompliant, unknown or conflicting.
    pub compliance: &'static str,
}

/// Labels of per-policy missing-patch gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicySeverityLabels {
    /// Policy name.
    pub policy: String,
    /// critical, high, medium, low, informational or unspecified.
    pub severity: &'static str,
}

/// Labels carrying only the policy.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    /// Policy name.
    pub policy: String,
}

/// Labels carrying a run phase.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// Run phase.
    pub phase: &'static str,
}

/// The controller's metrics and their registry.
pub struct Metrics {
    /// Reconciles by kind and result.
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// Reconcile errors by kind and category.
    pub errors: Family<ErrorLabels, Counter>,
    /// Reconcile duration by kind.
    pub duration: Family<KindLabels, Histogram>,
    /// Status writes by kind (writes are skipped when nothing changed).
    pub status_writes: Family<KindLabels, Counter>,
    /// Nodes by policy and compliance.
    pub policy_nodes: Family<PolicyComplianceLabels, Gauge>,
    /// Missing (non-compliant) patches by policy and compliance level.
    pub policy_missing: Family<PolicySeverityLabels, Gauge>,
    /// 1 when the policy's last finished run Halted or Failed.
    pub policy_last_run_halted: Family<PolicyLabels, Gauge>,
    /// PatchRuns by phase.
    pub runs: Family<PhaseLabels, Gauge>,
    /// Nodes a run is done with but left cordoned (failed in the reboot sequence), still
    /// unschedulable: what `NodepatchNodeStuckCordoned` alerts on.
    pub nodes_cordoned: Gauge,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("nodepatch");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration = Family::<KindLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 14))
        });
        let status_writes = Family::<KindLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles by kind and result",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconcile errors by kind and category",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration by kind",
            duration.clone(),
        );
        registry.register(
            "status_writes",
            "Status writes by kind",
            status_writes.clone(),
        );
        let policy_nodes = Family::<PolicyComplianceLabels, Gauge>::default();
        let policy_missing = Family::<PolicySeverityLabels, Gauge>::default();
        let policy_last_run_halted = Family::<PolicyLabels, Gauge>::default();
        let runs = Family::<PhaseLabels, Gauge>::default();
        let nodes_cordoned = Gauge::default();
        registry.register(
            "policy_nodes",
            "Nodes by policy and compliance",
            policy_nodes.clone(),
        );
        registry.register(
            "policy_missing_patches",
            "Non-compliant patches by policy and compliance level",
            policy_missing.clone(),
        );
        registry.register(
            "policy_last_run_halted",
            "1 when the policy's last finished run Halted or Failed",
            policy_last_run_halted.clone(),
        );
        registry.register("runs", "PatchRuns by phase", runs.clone());
        registry.register(
            "nodes_cordoned",
            "Nodes a nodepatch run is done with but left cordoned (still unschedulable)",
            nodes_cordoned.clone(),
        );
        Metrics {
            reconciles,
            errors,
            duration,
            status_writes,
            policy_nodes,
            policy_missing,
            policy_last_run_halted,
            runs,
            nodes_cordoned,
            registry,
        }
    }
}

impl Metrics {
    /// Record one reconcile.
    pub fn observe(
        &self,
        kind: &'static str,
        elapsed: Duration,
        error_category: Option<&'static str>,
    ) {
        let result = if error_category.is_some() {
            "error"
        } else {
            "ok"
        };
        self.reconciles
            .get_or_create(&ReconcileLabels { kind, result })
            .inc();
        self.duration
            .get_or_create(&KindLabels { kind })
            .observe(elapsed.as_secs_f64());
        if let Some(category) = error_category {
            self.errors
                .get_or_create(&ErrorLabels { kind, category })
                .inc();
        }
    }

    /// Text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Shared handle.
pub type SharedMetrics = Arc<Metrics>;
