//! What a run records for audit: its nodes' package changes (bounded), a Preview run's fleet
//! totals, and the one record per finished run that the controller logs as a JSON line and
//! publishes as a `RunRecord` Event (so history outlives `historyLimit` pruning). Pure.

use serde::Serialize;

use crate::api::{
    Compliance, MAX_RUN_CHANGES, MAX_RUN_CHANGES_PER_NODE, NodeChanges, PackageChange, PatchRun,
    PatchRunStatus, PreviewResult, REQUESTED_BY_ANNOTATION, RunNodeCounts, RunPreviewSummary,
};

/// Add `node`'s package changes (from its report, `report_omitted` more left out there) to the
/// run's status, once: a node already recorded is left as it is. At most
/// [`MAX_RUN_CHANGES_PER_NODE`] per node and [`MAX_RUN_CHANGES`] in all; what does not fit is
/// counted in `changesOmitted`. A node without changes is not listed.
pub fn record_node_changes(
    status: &mut PatchRunStatus,
    node: &str,
    changes: &[PackageChange],
    report_omitted: u32,
) {
    if changes.is_empty() || status.changes.iter().any(|c| c.node == node) {
        return;
    }
    let listed: usize = status.changes.iter().map(|c| c.changes.len()).sum();
    let room = MAX_RUN_CHANGES
        .saturating_sub(listed)
        .min(MAX_RUN_CHANGES_PER_NODE);
    let kept = changes.len().min(room);
    let left = u32::try_from(changes.len() - kept).unwrap_or(u32::MAX);
    status.changes_omitted = status
        .changes_omitted
        .saturating_add(left)
        .saturating_add(report_omitted);
    if kept > 0 {
        status.changes.push(NodeChanges {
            node: node.to_string(),
            changes: changes[..kept].to_vec(),
        });
    }
}

/// The fleet totals of a Preview run from its nodes' results (those naming the run).
pub fn preview_summary<'a>(
    run: &str,
    results: impl IntoIterator<Item = &'a PreviewResult>,
) -> RunPreviewSummary {
    let mut s = RunPreviewSummary::default();
    for r in results.into_iter().filter(|r| r.run == run) {
        s.nodes += 1;
        match r.compliance {
            Compliance::Compliant => s.compliant += 1,
            Compliance::NonCompliant => s.non_compliant += 1,
            _ => {}
        }
        match (r.current_compliance, r.compliance) {
            (Compliance::Compliant, Compliance::NonCompliant) => s.would_become_non_compliant += 1,
            (Compliance::NonCompliant, Compliance::Compliant) => s.would_become_compliant += 1,
            _ => {}
        }
        s.newly_missing = s.newly_missing.saturating_add(r.newly_missing_count);
        s.no_longer_missing = s
            .no_longer_missing
            .saturating_add(r.no_longer_missing_count);
    }
    s
}

/// The audit record of a finished run: the `nodepatch::audit` log line (JSON) and the note of
/// its `RunRecord` Event. Field names are part of the documented log format
/// (docs/controller.md, "Run history").
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// PatchRun name.
    pub run: String,
    /// Its policy.
    pub policy: String,
    /// Scan, Install or Preview.
    pub operation: String,
    /// Schedule or Manual.
    pub trigger: String,
    /// Who created the run (the `nodepatch.dev/requested-by` annotation), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// Final phase.
    pub phase: String,
    /// RFC 3339 start, when it started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// RFC 3339 end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
    /// Node counts by outcome.
    pub nodes: RunNodeCounts,
    /// Package changes listed in the run's status, per node.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<NodeChanges>,
    /// Package changes left out by the bounds.
    pub changes_omitted: u32,
    /// Preview totals (Preview runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<RunPreviewSummary>,
}

/// The record of `run` with its final `status`.
pub fn run_record(run: &PatchRun, status: &PatchRunStatus) -> RunRecord {
    RunRecord {
        run: run.metadata.name.clone().unwrap_or_default(),
        policy: run.spec.policy_ref.clone(),
        operation: run.spec.operation.as_str().to_string(),
        trigger: format!("{:?}", run.spec.trigger),
        requested_by: run
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REQUESTED_BY_ANNOTATION))
            .cloned(),
        phase: status.phase.as_str().to_string(),
        start_time: status.start_time.as_ref().map(|t| t.0.to_string()),
        completion_time: status.completion_time.as_ref().map(|t| t.0.to_string()),
        nodes: status.nodes.clone(),
        changes: status.changes.clone(),
        changes_omitted: status.changes_omitted,
        preview: status.preview.clone(),
    }
}

/// The record as one JSON object of at most `max` bytes (an Event note's limit): when the whole
/// record is longer, node changes are dropped from the end (counted in `changesOmitted`) until
/// it fits.
pub fn record_json(record: &RunRecord, max: usize) -> String {
    let mut record = record.clone();
    loop {
        let text = serde_json::to_string(&record).unwrap_or_default();
        if text.len() <= max {
            return text;
        }
        match record.changes.pop() {
            Some(dropped) => {
                let n = u32::try_from(dropped.changes.len()).unwrap_or(u32::MAX);
                record.changes_omitted = record.changes_omitted.saturating_add(n);
            }
            None => return text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ChangeResult;

    fn change(name: &str) -> PackageChange {
        PackageChange {
            name: name.into(),
            arch: None,
            from_version: Some("1".into()),
            to_version: Some("2".into()),
            result: ChangeResult::Installed,
        }
    }

    #[test]
    fn node_changes_are_recorded_once_and_bounded() {
        let mut status = PatchRunStatus::default();
        let many: Vec<PackageChange> = (0..40).map(|i| change(&format!("p{i}"))).collect();
        record_node_changes(&mut status, "a", &many, 3);
        assert_eq!(status.changes.len(), 1);
        assert_eq!(status.changes[0].changes.len(), MAX_RUN_CHANGES_PER_NODE);
        assert_eq!(status.changes_omitted, 8 + 3);
        record_node_changes(&mut status, "a", &many, 3);
        assert_eq!(status.changes.len(), 1, "recorded once");
        assert_eq!(status.changes_omitted, 11);
        record_node_changes(&mut status, "b", &[], 0);
        assert_eq!(
            status.changes.len(),
            1,
            "a node without changes is not listed"
        );
    }

    #[test]
    fn the_run_total_is_bounded() {
        let mut status = PatchRunStatus::default();
        let full: Vec<PackageChange> = (0..MAX_RUN_CHANGES_PER_NODE)
            .map(|i| change(&format!("p{i}")))
            .collect();
        let nodes = MAX_RUN_CHANGES / MAX_RUN_CHANGES_PER_NODE + 2;
        for n in 0..nodes {
            record_node_changes(&mut status, &format!("n{n}"), &full, 0);
        }
        let listed: usize = status.changes.iter().map(|c| c.changes.len()).sum();
        assert_eq!(listed, MAX_RUN_CHANGES);
        assert_eq!(
            listed + status.changes_omitted as usize,
            nodes * MAX_RUN_CHANGES_PER_NODE
        );
    }

    #[test]
    fn preview_totals_count_flips_of_this_run_only() {
        let result = |run: &str, current, draft, newly| PreviewResult {
            run: run.into(),
            compliance: draft,
            current_compliance: current,
            newly_missing_count: newly,
            ..PreviewResult::default()
        };
        let results = [
            result("p", Compliance::Compliant, Compliance::NonCompliant, 2),
            result("p", Compliance::NonCompliant, Compliance::NonCompliant, 1),
            result("p", Compliance::NonCompliant, Compliance::Compliant, 0),
            result("p", Compliance::Unknown, Compliance::Unknown, 0),
            result("other", Compliance::Compliant, Compliance::NonCompliant, 5),
        ];
        let s = preview_summary("p", &results);
        assert_eq!(
            s,
            RunPreviewSummary {
                nodes: 4,
                compliant: 1,
                non_compliant: 2,
                would_become_non_compliant: 1,
                would_become_compliant: 1,
                newly_missing: 3,
                no_longer_missing: 0,
            }
        );
    }

    #[test]
    fn the_record_fits_its_bound_by_dropping_node_changes() {
        let mut status = PatchRunStatus::default();
        for n in 0..20 {
            let changes: Vec<PackageChange> = (0..10).map(|i| change(&format!("pkg{i}"))).collect();
            record_node_changes(&mut status, &format!("node-{n}"), &changes, 0);
        }
        let run: PatchRun = serde_json::from_value(serde_json::json!({
            "apiVersion": "nodepatch.dev/v1alpha1", "kind": "PatchRun",
            "metadata": {"name": "r", "annotations": {REQUESTED_BY_ANNOTATION: "alice"}},
            "spec": {"policyRef": "p", "operation": "Install"}
        }))
        .expect("run");
        let record = run_record(&run, &status);
        assert_eq!(record.requested_by.as_deref(), Some("alice"));
        let text = record_json(&record, 1024);
        assert!(text.len() <= 1024, "{}", text.len());
        let back: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let listed = back["changes"].as_array().map_or(0, |c| c.len()) * 10;
        assert_eq!(
            listed as u64 + back["changesOmitted"].as_u64().unwrap(),
            200
        );
    }
}
