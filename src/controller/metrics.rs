//! Prometheus metrics of the controller. Label values are bounded: kinds, results and error
//! categories are fixed sets, never object names or error strings (policy and window names are
//! bounded by what users create).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::reflector::Store;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::api::MaintenanceWindow;

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

/// Labels of per-policy, per-compliance-level gauges. The label is `compliance_level`, not
/// `severity`: Alertmanager routes on `severity`, and an alert's own severity must not be
/// overwritten by the level of the patches it counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLevelLabels {
    /// Policy name.
    pub policy: String,
    /// critical, high, medium, low, informational or unspecified.
    pub compliance_level: &'static str,
}

/// Labels of `build_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// The crate version.
    pub version: &'static str,
}

/// Labels carrying only the window.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WindowLabels {
    /// MaintenanceWindow name.
    pub window: String,
}

/// Labels carrying a result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// See the metric.
    pub result: &'static str,
}

/// Labels carrying a run target's state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// Target state (Pending, InProgress, Draining, Rebooting, Verifying, Succeeded, …).
    pub state: &'static str,
}

/// Labels carrying a reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// See the metric.
    pub reason: &'static str,
}

/// Every kind the controller watches and decodes (the five CRDs).
pub const WATCHED_KINDS: [&str; 5] = [
    "MaintenanceWindow",
    "NodePatchReport",
    "PatchBaseline",
    "PatchPolicy",
    "PatchRun",
];

/// Kinds the harness reconciles (their error counters exist from the start).
pub const KINDS: [&str; 4] = [
    "MaintenanceWindow",
    "PatchBaseline",
    "PatchPolicy",
    "PatchRun",
];
/// Results of `evictions_total`.
pub const EVICTION_RESULTS: [&str; 3] = ["evicted", "refused", "gone"];
/// Reasons of `drain_failures_total` (the target reasons the rollout planner fails a drain
/// with).
pub const DRAIN_FAILURE_REASONS: [&str; 2] = ["DrainFailed", "DrainTimeout"];

/// A compliance level as the metrics spell it.
pub fn level_label(level: crate::api::ComplianceLevel) -> &'static str {
    use crate::api::ComplianceLevel as L;
    match level {
        L::Critical => "critical",
        L::High => "high",
        L::Medium => "medium",
        L::Low => "low",
        L::Informational => "informational",
        L::Unspecified => "unspecified",
    }
}

/// A run target's state as `run_nodes` spells it (the API spelling).
pub fn target_state_label(state: crate::api::TargetState) -> &'static str {
    use crate::api::TargetState as T;
    match state {
        T::Pending => "Pending",
        T::InProgress => "InProgress",
        T::Draining => "Draining",
        T::Rebooting => "Rebooting",
        T::Verifying => "Verifying",
        T::Succeeded => "Succeeded",
        T::SucceededRebootRequired => "SucceededRebootRequired",
        T::Failed => "Failed",
        T::Skipped => "Skipped",
    }
}

/// The per-policy signals one policy reconcile computes from its members' reports (kept here
/// so the gauges of every policy can be rebuilt from the policy cache on each reconcile).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicySignals {
    /// Members whose report says a reboot is needed.
    pub reboot_required: u32,
    /// The oldest last successful scan among the members.
    pub last_scan: Option<Timestamp>,
    /// Since when each compliance level has been missing.
    pub noncompliant_since: BTreeMap<&'static str, Timestamp>,
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
    pub policy_missing: Family<PolicyLevelLabels, Gauge>,
    /// Member nodes whose report says a reboot is needed, by policy.
    pub policy_reboot_required: Family<PolicyLabels, Gauge>,
    /// The oldest last successful scan among a policy's members (Unix seconds).
    pub policy_last_scan: Family<PolicyLabels, Gauge>,
    /// Since when a policy's members have had patches missing at a level (Unix seconds).
    pub policy_noncompliant_since: Family<PolicyLevelLabels, Gauge>,
    /// 1, labelled with the version.
    pub build_info: Family<BuildLabels, Gauge>,
    /// 1 while this replica runs the reconcilers (holds the Lease, or runs without election).
    pub leader: Gauge,
    /// 1 while a MaintenanceWindow is open, by window.
    pub window_open: Family<WindowLabels, Gauge>,
    /// Eviction API calls by result.
    pub evictions: Family<ResultLabels, Counter>,
    /// Nodes whose drain failed, by reason.
    pub drain_failures: Family<ReasonLabels, Counter>,
    /// Nodes rebooted by a run (left Rebooting with a new boot ID).
    pub reboots: Counter,
    /// Targets of running runs by target state.
    pub run_nodes: Family<StateLabels, Gauge>,
    /// The latest [`PolicySignals`] by policy.
    signals: Mutex<BTreeMap<String, PolicySignals>>,
    /// The MaintenanceWindow cache `window_open` is read from.
    windows: OnceLock<Store<MaintenanceWindow>>,
    /// 1 when the policy's last finished run Halted or Failed.
    pub policy_last_run_halted: Family<PolicyLabels, Gauge>,
    /// PatchRuns by phase.
    pub runs: Family<PhaseLabels, Gauge>,
    /// Nodes a run is done with but left cordoned (failed in the reboot sequence), still
    /// unschedulable: what `NodepatchNodeStuckCordoned` alerts on.
    pub nodes_cordoned: Gauge,
    /// Objects the controller's watches currently skip because they do not decode, by kind.
    pub undecodable_objects: Family<KindLabels, Gauge>,
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
        let policy_missing = Family::<PolicyLevelLabels, Gauge>::default();
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
        let policy_reboot_required = Family::<PolicyLabels, Gauge>::default();
        let policy_last_scan = Family::<PolicyLabels, Gauge>::default();
        let policy_noncompliant_since = Family::<PolicyLevelLabels, Gauge>::default();
        let build_info = Family::<BuildLabels, Gauge>::default();
        let leader = Gauge::default();
        let window_open = Family::<WindowLabels, Gauge>::default();
        let evictions = Family::<ResultLabels, Counter>::default();
        let drain_failures = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "policy_reboot_required_nodes",
            "Member nodes of the policy whose report says a reboot is needed",
            policy_reboot_required.clone(),
        );
        registry.register(
            "policy_last_scan_timestamp_seconds",
            "The oldest last successful scan among the policy's member nodes",
            policy_last_scan.clone(),
        );
        registry.register(
            "policy_noncompliant_since_timestamp_seconds",
            "Since when the policy's nodes have had patches missing at this compliance level \
             (release or first-seen date of the oldest missing patch)",
            policy_noncompliant_since.clone(),
        );
        registry.register(
            "build_info",
            "1, labelled with the controller's version",
            build_info.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica runs the reconcilers (holds the leader Lease)",
            leader.clone(),
        );
        registry.register(
            "window_open",
            "1 while the MaintenanceWindow is open",
            window_open.clone(),
        );
        registry.register(
            "evictions",
            "Eviction API calls by result (evicted, refused by a PodDisruptionBudget, gone)",
            evictions.clone(),
        );
        registry.register(
            "drain_failures",
            "Node drains that failed, by reason (DrainFailed, DrainTimeout)",
            drain_failures.clone(),
        );
        let reboots = Counter::default();
        let run_nodes = Family::<StateLabels, Gauge>::default();
        registry.register(
            "node_reboots",
            "Nodes rebooted by nodepatch runs (seen back with a new boot ID)",
            reboots.clone(),
        );
        registry.register(
            "run_nodes",
            "Target nodes of running PatchRuns by target state",
            run_nodes.clone(),
        );
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        // Counters exist at 0 from the start, so rate() and increase() answer before the first
        // error, eviction or failed drain.
        for kind in KINDS {
            reconciles
                .get_or_create(&ReconcileLabels {
                    kind,
                    result: "error",
                })
                .inc_by(0);
        }
        for result in EVICTION_RESULTS {
            evictions.get_or_create(&ResultLabels { result }).inc_by(0);
        }
        for reason in DRAIN_FAILURE_REASONS {
            drain_failures
                .get_or_create(&ReasonLabels { reason })
                .inc_by(0);
        }
        registry.register(
            "nodes_cordoned",
            "Nodes a nodepatch run is done with but left cordoned (still unschedulable)",
            nodes_cordoned.clone(),
        );
        let undecodable_objects = Family::<KindLabels, Gauge>::default();
        for kind in WATCHED_KINDS {
            undecodable_objects
                .get_or_create(&KindLabels { kind })
                .set(0);
        }
        registry.register(
            "undecodable_objects",
            "Objects skipped by the controller's watches because they do not decode, by kind",
            undecodable_objects.clone(),
        );
        Metrics {
            undecodable_objects,
            reconciles,
            errors,
            duration,
            status_writes,
            policy_nodes,
            policy_missing,
            policy_last_run_halted,
            runs,
            nodes_cordoned,
            policy_reboot_required,
            policy_last_scan,
            policy_noncompliant_since,
            build_info,
            leader,
            window_open,
            evictions,
            drain_failures,
            reboots,
            run_nodes,
            signals: Mutex::default(),
            windows: OnceLock::new(),
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

    /// Record the signals of `policy` (replacing its earlier ones).
    pub fn set_policy_signals(&self, policy: &str, signals: PolicySignals) {
        self.signals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(policy.to_string(), signals);
    }

    /// Rebuild the per-policy signal gauges for `policies` (the policies that exist now: the
    /// others' signals are dropped).
    pub fn refresh_policy_signals<'a>(&self, policies: impl IntoIterator<Item = &'a str>) {
        let keep: std::collections::BTreeSet<&str> = policies.into_iter().collect();
        let mut signals = self.signals.lock().unwrap_or_else(|e| e.into_inner());
        signals.retain(|p, _| keep.contains(p.as_str()));
        self.policy_reboot_required.clear();
        self.policy_last_scan.clear();
        self.policy_noncompliant_since.clear();
        for (policy, s) in signals.iter() {
            let labels = PolicyLabels {
                policy: policy.clone(),
            };
            self.policy_reboot_required
                .get_or_create(&labels)
                .set(i64::from(s.reboot_required));
            if let Some(t) = s.last_scan {
                self.policy_last_scan
                    .get_or_create(&labels)
                    .set(t.as_second());
            }
            for (compliance_level, t) in &s.noncompliant_since {
                self.policy_noncompliant_since
                    .get_or_create(&PolicyLevelLabels {
                        policy: policy.clone(),
                        compliance_level,
                    })
                    .set(t.as_second());
            }
        }
    }

    /// Serve `window_open` from `windows`, the MaintenanceWindow reconciler's cache: the gauge
    /// is rebuilt from the windows' `status.open` at each scrape, so a deleted window drops out.
    pub fn watch_windows(&self, windows: Store<MaintenanceWindow>) {
        let _ = self.windows.set(windows);
    }

    fn refresh_windows(&self) {
        let Some(store) = self.windows.get() else {
            return;
        };
        self.window_open.clear();
        for mw in store.state() {
            let open = mw.status.as_ref().is_some_and(|s| s.open);
            self.window_open
                .get_or_create(&WindowLabels {
                    window: mw.name_any(),
                })
                .set(i64::from(open));
        }
    }

    /// Count one Eviction API call's `result` (one of [`EVICTION_RESULTS`]).
    pub fn count_eviction(&self, result: &'static str) {
        self.evictions.get_or_create(&ResultLabels { result }).inc();
    }

    /// Count a failed drain (`reason` one of [`DRAIN_FAILURE_REASONS`]).
    pub fn count_drain_failure(&self, reason: &'static str) {
        self.drain_failures
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Text exposition of every metric.
    pub fn encode(&self) -> String {
        self.refresh_windows();
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Shared handle.
pub type SharedMetrics = Arc<Metrics>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_registry_exposes_build_info_and_zeroed_counters() {
        let text = Metrics::default().encode();
        let version = env!("CARGO_PKG_VERSION");
        assert!(
            text.contains(&format!("nodepatch_build_info{{version=\"{version}\"}} 1")),
            "{text}"
        );
        assert!(text.contains("nodepatch_leader 0"), "{text}");
        assert!(text.contains("nodepatch_node_reboots_total 0"), "{text}");
        assert!(
            text.contains("nodepatch_reconciles_total{kind=\"PatchRun\",result=\"error\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("nodepatch_evictions_total{result=\"refused\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("nodepatch_drain_failures_total{reason=\"DrainTimeout\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn policy_signals_follow_the_policies_that_exist() {
        let m = Metrics::default();
        let t: Timestamp = "2026-03-01T00:00:00Z".parse().expect("ts");
        m.set_policy_signals(
            "web",
            PolicySignals {
                reboot_required: 2,
                last_scan: Some(t),
                noncompliant_since: BTreeMap::from([("critical", t)]),
            },
        );
        m.set_policy_signals("gone", PolicySignals::default());
        m.refresh_policy_signals(["web"]);
        let text = m.encode();
        let secs = t.as_second();
        for line in [
            "nodepatch_policy_reboot_required_nodes{policy=\"web\"} 2".to_string(),
            format!("nodepatch_policy_last_scan_timestamp_seconds{{policy=\"web\"}} {secs}"),
            format!(
                "nodepatch_policy_noncompliant_since_timestamp_seconds{{policy=\"web\",compliance_level=\"critical\"}} {secs}"
            ),
        ] {
            assert!(text.contains(&line), "{line} missing from {text}");
        }
        assert!(!text.contains("policy=\"gone\""), "{text}");
    }

    #[test]
    fn window_open_follows_the_window_cache() {
        use kube::runtime::watcher::Event;
        let m = Metrics::default();
        let (store, mut writer) = kube::runtime::reflector::store::<MaintenanceWindow>();
        m.watch_windows(store);
        let mw: MaintenanceWindow = serde_json::from_value(serde_json::json!({
            "apiVersion": "nodepatch.dev/v1alpha1", "kind": "MaintenanceWindow",
            "metadata": {"name": "sat"},
            "spec": {"schedule": "cron(0 2 ? * SAT *)", "duration": "2h"},
            "status": {"open": true},
        }))
        .expect("window");
        writer.apply_watcher_event(&Event::Apply(mw.clone()));
        assert!(
            m.encode()
                .contains("nodepatch_window_open{window=\"sat\"} 1")
        );
        writer.apply_watcher_event(&Event::Delete(mw));
        assert!(!m.encode().contains("window=\"sat\""));
    }
}
