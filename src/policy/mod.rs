//! Pure policy decisions: given a PatchPolicy, what is observed of its runs, windows, baselines,
//! member nodes and their reports, and `now`, decide the policy's status, the run to start, the
//! runs to prune and the Events to emit. No I/O and no kube objects beyond the policy itself:
//! the PatchPolicy reconciler (`controller::patchpolicy`) turns the caches into these values and
//! applies the [`PolicyPlan`].
//!
//! - [`references`]: baselineRefs, selector, scan schedule and maintenance windows → `Ready`;
//! - [`schedule`]: which run is due (an install per open window, scans on schedule), deferred
//!   while another run is active;
//! - [`history`]: finished runs beyond `historyLimit`;
//! - [`rollup`]: node compliance counts, conflicts, `Progressing` and `Degraded`.

pub mod history;
pub mod references;
pub mod rollup;
pub mod schedule;

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::api::conditions::{new_condition, set_condition};
use crate::api::{
    Compliance, OperatingSystem, Operation, PatchPolicy, PatchPolicyStatus, PatchRun,
    PolicyConflict, RunPhase, RunTrigger, SeverityCounts,
};
use crate::schedule::window::WindowDefinition;

pub use schedule::scheduled_run_name;

/// Longest time between two looks at a policy (membership and report roll-ups).
pub const RESYNC: SignedDuration = SignedDuration::from_mins(5);

/// A run the planner wants created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRun {
    /// Run name (≤ 63 characters: it is a label value).
    pub name: String,
    /// Scan or Install.
    pub operation: Operation,
}

/// Something worth an Event on the policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyEvent {
    /// A run is due while another is active: it starts when that one ends.
    RunDeferred {
        /// The due run's operation.
        operation: Operation,
        /// The active run.
        active: String,
    },
    /// Nodes newly selected by this and another policy.
    NodeConflict {
        /// How many.
        nodes: usize,
    },
}

impl PolicyEvent {
    /// Event reason.
    pub fn reason(&self) -> &'static str {
        match self {
            PolicyEvent::RunDeferred { .. } => "RunDeferred",
            PolicyEvent::NodeConflict { .. } => "NodeConflict",
        }
    }

    /// Whether it is a Warning (else Normal).
    pub fn is_warning(&self) -> bool {
        matches!(self, PolicyEvent::NodeConflict { .. })
    }

    /// Event note.
    pub fn note(&self) -> String {
        match self {
            PolicyEvent::RunDeferred { operation, active } => format!(
                "{} due while run {active} is active: it starts when that run ends",
                operation.as_str()
            ),
            PolicyEvent::NodeConflict { nodes } => {
                format!("{nodes} nodes are selected by this and another policy; both skip them")
            }
        }
    }
}

/// Decisions for one policy.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyPlan {
    /// Desired status.
    pub status: PatchPolicyStatus,
    /// Run to create now.
    pub create: Option<NewRun>,
    /// Finished runs beyond historyLimit to delete.
    pub prune: Vec<String>,
    /// Events to emit.
    pub events: Vec<PolicyEvent>,
    /// Look again at this instant.
    pub requeue_at: Timestamp,
}

/// What the planner needs of one of the policy's runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRecord {
    /// Run name.
    pub name: String,
    /// Scan or Install.
    pub operation: Operation,
    /// Schedule or Manual.
    pub trigger: RunTrigger,
    /// Creation time (the epoch when unknown).
    pub created: Timestamp,
    /// Phase.
    pub phase: RunPhase,
    /// When it finished.
    pub completion_time: Option<Time>,
}

impl From<&PatchRun> for RunRecord {
    fn from(run: &PatchRun) -> Self {
        let status = run.status.as_ref();
        RunRecord {
            name: run.metadata.name.clone().unwrap_or_default(),
            operation: run.spec.operation,
            trigger: run.spec.trigger,
            created: run
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0)
                .unwrap_or(Timestamp::UNIX_EPOCH),
            phase: status.map(|s| s.phase).unwrap_or_default(),
            completion_time: status.and_then(|s| s.completion_time.clone()),
        }
    }
}

/// A referenced MaintenanceWindow as the reconciler found it.
#[derive(Clone, Debug)]
pub enum WindowRef {
    /// It does not exist.
    Missing,
    /// It exists but cannot be used (condition reason, message).
    Invalid {
        /// `InvalidSchedule`, `InvalidTimeZone`, `InvalidDuration` or `InvalidWindow`.
        reason: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Its schedule.
    Defined(Box<WindowDefinition>),
}

/// A member node's latest report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberReport {
    /// Node name.
    pub node: String,
    /// Its compliance.
    pub compliance: Compliance,
    /// Missing patches by severity.
    pub missing: SeverityCounts,
}

/// What the planner sees.
pub struct PolicyView<'a> {
    /// The policy.
    pub policy: &'a PatchPolicy,
    /// Its runs (any phase).
    pub runs: Vec<RunRecord>,
    /// Referenced windows by name.
    pub windows: Vec<(String, WindowRef)>,
    /// Every PatchBaseline: name and OS.
    pub baselines: Vec<(String, OperatingSystem)>,
    /// Nodes the policy may act on (conflicts removed).
    pub members: BTreeSet<String>,
    /// Its conflicts.
    pub conflicts: Vec<PolicyConflict>,
    /// Selector error, if any.
    pub selector_error: Option<String>,
    /// Reports of nodes (those of non-members are ignored).
    pub reports: Vec<MemberReport>,
}

/// The earliest instant worth a look, capped at the resync.
pub(crate) struct Wake {
    now: Timestamp,
    at: Timestamp,
}

impl Wake {
    fn new(now: Timestamp) -> Wake {
        Wake {
            now,
            at: now + RESYNC,
        }
    }

    /// Look again at `t` if that is sooner (and in the future).
    pub(crate) fn at(&mut self, t: Timestamp) {
        if t > self.now && t < self.at {
            self.at = t;
        }
    }
}

/// Decide a policy's status and the run to start. Pure.
pub fn plan_policy(view: &PolicyView<'_>, now: Timestamp) -> PolicyPlan {
    let policy = view.policy;
    let generation = policy.metadata.generation;
    let old = policy.status.clone().unwrap_or_default();
    let mut conditions = old.conditions.clone();
    let mut wake = Wake::new(now);

    let refs = references::check(view, now);
    set_condition(&mut conditions, refs.ready_condition(generation, now));
    for d in &refs.windows {
        if let Some(b) = d.next_boundary(now) {
            wake.at(b);
        }
    }

    let mut runs: Vec<&RunRecord> = view.runs.iter().collect();
    runs.sort_by_key(|r| std::cmp::Reverse(r.created));
    let active = runs.iter().copied().find(|r| !r.phase.is_finished());
    let mut events = vec![];
    let create = if refs.ready() && !policy.spec.suspend {
        schedule::due_run(policy, &refs, &runs, active, now, &mut wake, &mut events)
    } else {
        None
    };
    let prune = history::prune(&runs, policy.spec.history_limit);

    let rollup = rollup::roll_up(view, &runs, active, create.as_ref(), generation, now);
    for c in rollup.conditions {
        set_condition(&mut conditions, c);
    }
    let status = PatchPolicyStatus {
        observed_generation: generation,
        nodes: rollup.nodes,
        missing_by_severity: rollup.missing,
        last_scan_time: rollup::last_time(&runs, Operation::Scan),
        last_install_time: rollup::last_time(&runs, Operation::Install),
        next_install_window: policy
            .spec
            .install
            .as_ref()
            .and_then(|_| schedule::next_install_window(&refs.windows, now))
            .map(Time),
        active_run: rollup.active_run,
        active_run_phase: rollup.active_run_phase,
        conflicts: rollup.conflicts,
        conditions,
    };
    let newly_conflicting = status
        .conflicts
        .iter()
        .filter(|c| !old.conflicts.contains(c))
        .count();
    if newly_conflicting > 0 {
        events.push(PolicyEvent::NodeConflict {
            nodes: newly_conflicting,
        });
    }
    PolicyPlan {
        status,
        create,
        prune,
        events,
        requeue_at: wake.at,
    }
}

/// A condition of the policy, for the planners' modules.
pub(crate) fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    new_condition(type_, status.into(), reason, message, generation, now)
}

#[cfg(test)]
mod tests;
