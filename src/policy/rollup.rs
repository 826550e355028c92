//! The compliance roll-up of a policy: member nodes by compliance (a member without a report is
//! unknown), missing patches by severity, conflicts (nodes also selected by another policy),
//! the active run, and the `Progressing` and `Degraded` conditions.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use super::model::{NewRun, PolicyView, RunRecord, condition};
use crate::api::conditions::{self, Health};
use crate::api::{
    Compliance, NodeComplianceCounts, Operation, PolicyConflict, RunPhase, SeverityCounts,
};

/// Most conflicts listed in status.
const MAX_CONFLICTS_LISTED: usize = 100;

/// The roll-up's part of the status.
pub struct RollUp {
    /// Member nodes by compliance.
    pub nodes: NodeComplianceCounts,
    /// Missing patches by severity over the members.
    pub missing: SeverityCounts,
    /// Conflicts, sorted, at most 100.
    pub conflicts: Vec<PolicyConflict>,
    /// The active run (or the one being created).
    pub active_run: Option<String>,
    /// Its phase.
    pub active_run_phase: Option<String>,
    /// `Progressing` and `Degraded`.
    pub conditions: Vec<Condition>,
}

/// Roll the members' reports, the conflicts and the runs (`runs` newest first) up.
pub fn roll_up(
    view: &PolicyView<'_>,
    runs: &[&RunRecord],
    active: Option<&RunRecord>,
    create: Option<&NewRun>,
    generation: Option<i64>,
    now: Timestamp,
) -> RollUp {
    let (nodes, missing) = compliance(view);
    let conflicting: BTreeSet<&str> = view.conflicts.iter().map(|c| c.node.as_str()).collect();
    let nodes = NodeComplianceCounts {
        conflicting: Some(conflicting.len() as u32),
        ..nodes
    };
    let mut conflicts = view.conflicts.clone();
    conflicts.sort();
    conflicts.truncate(MAX_CONFLICTS_LISTED);
    let active_run = active
        .map(|r| r.name.clone())
        .or_else(|| create.map(|c| c.name.clone()));
    let active_run_phase = active
        .map(|r| r.phase.as_str().to_string())
        .or_else(|| create.map(|_| "Pending".to_string()));
    let progressing = condition(
        conditions::PROGRESSING,
        active_run.is_some(),
        if active_run.is_some() {
            "RunActive"
        } else {
            "Idle"
        },
        active_run
            .as_ref()
            .map(|n| format!("run {n} is active"))
            .unwrap_or_else(|| "no active run".into()),
        generation,
        now,
    );
    let last_finished = runs.iter().find(|r| r.phase.is_finished()).map(|r| r.phase);
    let (degraded, reason, message) = degraded(conflicting.len(), last_finished);
    RollUp {
        nodes,
        missing,
        conflicts,
        active_run,
        active_run_phase,
        conditions: vec![
            progressing,
            condition(
                conditions::DEGRADED,
                degraded,
                reason,
                message,
                generation,
                now,
            ),
        ],
    }
}

/// Member nodes by compliance and their missing patches.
fn compliance(view: &PolicyView<'_>) -> (NodeComplianceCounts, SeverityCounts) {
    let mut nodes = NodeComplianceCounts {
        total: view.members.len() as u32,
        ..Default::default()
    };
    let mut missing = SeverityCounts::default();
    let mut reported = 0;
    for r in &view.reports {
        if !view.members.contains(&r.node) {
            continue;
        }
        reported += 1;
        match r.compliance {
            Compliance::Compliant => nodes.compliant += 1,
            Compliance::NonCompliant => nodes.non_compliant += 1,
            Compliance::NotApplicable => nodes.not_applicable += 1,
            Compliance::Unknown => nodes.unknown += 1,
        }
        missing.merge(&r.missing);
    }
    nodes.unknown += nodes.total.saturating_sub(reported);
    (nodes, missing)
}

/// `Degraded`: conflicts first, else a last run that Halted or Failed.
fn degraded(conflicting: usize, last_finished: Option<RunPhase>) -> (bool, &'static str, String) {
    if conflicting > 0 {
        (
            true,
            "NodeConflicts",
            format!("{conflicting} nodes are also selected by another policy and are skipped"),
        )
    } else if let Some(phase @ (RunPhase::Halted | RunPhase::Failed)) = last_finished {
        (
            true,
            "LastRunFailed",
            format!("the last run ended {}", phase.as_str()),
        )
    } else {
        (
            false,
            "Healthy",
            "no conflicts; the last run did not fail".to_string(),
        )
    }
}

/// The kstatus health of a policy from its other conditions (docs/gitops.md): Stalled while it
/// is not Ready (an invalid or missing reference: it starts nothing until one is fixed) or has
/// node conflicts (those nodes are skipped until a selector changes); otherwise Current. An
/// active run does not make the policy Reconciling: every scheduled scan would flap GitOps
/// tools, and the run reports its own progress. A last run that failed stays in `Degraded`:
/// the next run retries without a change.
pub fn health(conditions: &[Condition]) -> Health {
    let find = |t: &str| conditions::find(conditions, t);
    if let Some(ready) = find(conditions::READY).filter(|c| c.status != "True") {
        return Health::stalled(&ready.reason, ready.message.clone());
    }
    match find(conditions::DEGRADED) {
        Some(d) if d.status == "True" && d.reason == "NodeConflicts" => {
            Health::stalled(&d.reason, d.message.clone())
        }
        _ => Health::Current,
    }
}

/// When the latest finished run of `op` completed.
pub fn last_time(runs: &[&RunRecord], op: Operation) -> Option<Time> {
    runs.iter()
        .filter(|r| r.operation == op && r.phase.is_finished())
        .filter_map(|r| r.completion_time.clone())
        .max_by_key(|t| t.0)
}
