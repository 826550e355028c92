//! The plain values the policy planners read and return: the view, the plan, runs, windows,
//! reports, Events, and the wake-up bookkeeping they share.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::api::conditions::new_condition;
use crate::api::{
    Compliance, ComplianceLevel, OperatingSystem, Operation, PatchPolicy, PatchPolicyStatus,
    PatchRun, PolicyConflict, RunPhase, RunTrigger, SeverityCounts,
};
use crate::schedule::window::WindowDefinition;

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
    /// Missing patches by compliance level.
    pub missing: SeverityCounts,
    /// A reboot is needed to activate installed updates.
    pub reboot_required: bool,
    /// The node's last successful scan.
    pub last_scan: Option<Timestamp>,
    /// Per compliance level with non-compliant patches, since when the oldest of them has been
    /// missing ([`super::rollup::missing_since`]).
    pub missing_since: BTreeMap<ComplianceLevel, Timestamp>,
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
    pub(super) at: Timestamp,
}

impl Wake {
    pub(super) fn new(now: Timestamp) -> Wake {
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
