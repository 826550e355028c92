//! The compliance roll-up of a policy: member nodes by compliance (a member without a report is
//! unknown), missing patches by severity, conflicts (nodes also selected by another policy),
//! the active run, and the `Progressing` and `Degraded` conditions; and the fleet signals the
//! metrics carry (reboot-required nodes, oldest last scan, since when each compliance level has
//! been missing).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use super::model::{MemberReport, NewRun, PolicyView, RunRecord, condition};
use crate::api::conditions::{self, Health};
use crate::api::{
    Compliance, ComplianceLevel, NodeComplianceCounts, NodePatchReportStatus, Operation,
    PolicyConflict, RunPhase, SeverityCounts,
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

/// Since when each compliance level of one node's report has had non-compliant patches: per
/// level, the oldest `releaseDate` among its listed patches (the vendor's release date, else
/// the day this node's agent first saw that version offered, kept in its state file on the
/// node). Both are durable, so the answer is the same after a controller restart or failover.
/// A level whose count is above zero but none of whose patches carries a date (the list is cut
/// at 500, lowest levels first, or a backend knows no date) falls back to `reported_since`, the
/// report's creation: the oldest the gap can be, so an alert on it fires early rather than
/// never (fail closed). Pure.
pub fn missing_since(
    status: &NodePatchReportStatus,
    reported_since: Option<Timestamp>,
) -> BTreeMap<ComplianceLevel, Timestamp> {
    let mut since: BTreeMap<ComplianceLevel, Timestamp> = BTreeMap::new();
    for p in status.patches.iter().filter(|p| p.state.is_non_compliant()) {
        let (Some(level), Some(date)) = (p.compliance_level, p.release_date.as_ref()) else {
            continue;
        };
        since
            .entry(level)
            .and_modify(|t| *t = (*t).min(date.0))
            .or_insert(date.0);
    }
    let by = &status.non_compliant_by_severity;
    let counts = [
        (ComplianceLevel::Critical, by.critical),
        (ComplianceLevel::High, by.high),
        (ComplianceLevel::Medium, by.medium),
        (ComplianceLevel::Low, by.low),
        (ComplianceLevel::Informational, by.informational),
        (ComplianceLevel::Unspecified, by.unspecified),
    ];
    for (level, n) in counts {
        if n == 0 {
            // The counts are the verdict; a listed patch without a count is stale.
            since.remove(&level);
        } else if let Some(t) = reported_since {
            since.entry(level).or_insert(t);
        }
    }
    since
}

/// What the metrics say about a policy's members beyond the status counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FleetSignals {
    /// Members whose report says a reboot is needed.
    pub reboot_required: u32,
    /// The oldest last successful scan among the members that have one: every member with a
    /// report was scanned at least this recently.
    pub oldest_last_scan: Option<Timestamp>,
    /// Per compliance level with missing patches on some member, the oldest
    /// [`missing_since`] over the members.
    pub missing_since: BTreeMap<ComplianceLevel, Timestamp>,
}

/// Fold the members' reports into [`FleetSignals`] (reports of non-members are ignored). Pure.
pub fn fleet_signals(members: &BTreeSet<String>, reports: &[MemberReport]) -> FleetSignals {
    let mut out = FleetSignals::default();
    for r in reports.iter().filter(|r| members.contains(&r.node)) {
        out.reboot_required += u32::from(r.reboot_required);
        if let Some(t) = r.last_scan {
            out.oldest_last_scan = Some(out.oldest_last_scan.map_or(t, |o| o.min(t)));
        }
        for (level, t) in &r.missing_since {
            out.missing_since
                .entry(*level)
                .and_modify(|o| *o = (*o).min(*t))
                .or_insert(*t);
        }
    }
    out
}

#[cfg(test)]
mod signal_tests {
    use super::*;
    use serde_json::json;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn report(v: serde_json::Value) -> NodePatchReportStatus {
        serde_json::from_value(v).expect("status")
    }

    #[test]
    fn missing_since_is_the_oldest_release_date_per_level() {
        let s = report(json!({
            "nonCompliantBySeverity": {"critical": 2, "low": 1},
            "patches": [
                {"name": "a", "state": "Missing", "complianceLevel": "Critical",
                 "releaseDate": "2026-03-05T00:00:00Z"},
                {"name": "b", "state": "Failed", "complianceLevel": "Critical",
                 "releaseDate": "2026-03-01T00:00:00Z"},
                {"name": "c", "state": "Missing", "complianceLevel": "Low",
                 "releaseDate": "2026-03-07T00:00:00Z"},
            ],
        }));
        let since = missing_since(&s, Some(ts("2026-01-01T00:00:00Z")));
        assert_eq!(
            since,
            BTreeMap::from([
                (ComplianceLevel::Critical, ts("2026-03-01T00:00:00Z")),
                (ComplianceLevel::Low, ts("2026-03-07T00:00:00Z")),
            ])
        );
    }

    #[test]
    fn an_undated_or_unlisted_level_counts_from_the_report_creation() {
        // High has a count but no listed patch (the list was cut): fail closed, count it from
        // the report's creation; Medium's patch has no date.
        let s = report(json!({
            "nonCompliantBySeverity": {"high": 3, "medium": 1},
            "truncated": true,
            "patches": [{"name": "m", "state": "Missing", "complianceLevel": "Medium"}],
        }));
        let created = ts("2026-01-01T00:00:00Z");
        let since = missing_since(&s, Some(created));
        assert_eq!(
            since,
            BTreeMap::from([
                (ComplianceLevel::High, created),
                (ComplianceLevel::Medium, created)
            ])
        );
    }

    #[test]
    fn a_compliant_report_has_no_missing_since() {
        let s = report(json!({
            "compliance": "Compliant",
            "patches": [{"name": "x", "state": "Missing", "complianceLevel": "Critical",
                         "releaseDate": "2026-03-01T00:00:00Z"}],
        }));
        assert!(missing_since(&s, Some(ts("2026-01-01T00:00:00Z"))).is_empty());
    }

    #[test]
    fn fleet_signals_take_the_oldest_over_members_only() {
        let member = |node: &str, scan: &str, crit: Option<&str>, reboot: bool| MemberReport {
            node: node.into(),
            compliance: Compliance::NonCompliant,
            missing: SeverityCounts::default(),
            reboot_required: reboot,
            last_scan: Some(ts(scan)),
            missing_since: crit
                .map(|c| BTreeMap::from([(ComplianceLevel::Critical, ts(c))]))
                .unwrap_or_default(),
        };
        let reports = vec![
            member(
                "a",
                "2026-03-10T00:00:00Z",
                Some("2026-03-04T00:00:00Z"),
                true,
            ),
            member(
                "b",
                "2026-03-09T00:00:00Z",
                Some("2026-03-02T00:00:00Z"),
                false,
            ),
            member("c", "2026-03-11T00:00:00Z", None, true),
            // Not a member any more: ignored.
            member(
                "z",
                "2020-01-01T00:00:00Z",
                Some("2020-01-01T00:00:00Z"),
                true,
            ),
        ];
        let members = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let f = fleet_signals(&members, &reports);
        assert_eq!(f.reboot_required, 2);
        assert_eq!(f.oldest_last_scan, Some(ts("2026-03-09T00:00:00Z")));
        assert_eq!(
            f.missing_since,
            BTreeMap::from([(ComplianceLevel::Critical, ts("2026-03-02T00:00:00Z"))])
        );
    }
}
