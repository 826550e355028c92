//! `kubectl nodepatch history [POLICY] [--node N]`: finished runs, newest first, with who asked
//! for them (`nodepatch.dev/requested-by`), or one row per package change runs made on a node.
//! Runs deleted by `historyLimit` are still shown, marked pruned, from the `RunRecord` Event the
//! controller publishes when a run finishes (its note is the run's audit record as JSON). Rows
//! are pure functions of runs and Events; [`run`] reads them.

use std::collections::BTreeSet;

use jiff::Timestamp;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde::{Deserialize, Serialize};

use super::args::HistoryArgs;
use super::connection::list_all;
use super::error::PluginError;
use super::output::{Column, Row, Shown, col, opt, render, time_text, version_change};
use crate::api::{NodeChanges, PackageChange, PatchPolicy, PatchRun, REQUESTED_BY_ANNOTATION};

/// Reason of the Event holding a finished run's audit record.
pub const RUN_RECORD_REASON: &str = "RunRecord";

/// The fields of a `RunRecord` Event's note (`nodepatch::rollout::record::RunRecord`) history
/// reads; unknown fields are ignored so the record can grow.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RunRecordView {
    /// PatchRun name.
    pub run: String,
    /// Its policy.
    #[serde(default)]
    pub policy: String,
    /// Scan, Install or Preview.
    #[serde(default)]
    pub operation: String,
    /// Schedule or Manual.
    #[serde(default)]
    pub trigger: String,
    /// Who created the run.
    #[serde(default)]
    pub requested_by: Option<String>,
    /// Final phase.
    #[serde(default)]
    pub phase: String,
    /// RFC 3339 start.
    #[serde(default)]
    pub start_time: Option<String>,
    /// RFC 3339 end.
    #[serde(default)]
    pub completion_time: Option<String>,
    /// Package changes per node.
    #[serde(default)]
    pub changes: Vec<NodeChanges>,
    /// Changes left out by the record's bounds.
    #[serde(default)]
    pub changes_omitted: u32,
}

/// The run records in `events` (reason RunRecord, about a PatchRun, with a parseable note), one
/// per run (the latest Event wins).
pub fn records_from_events(events: &[Event]) -> Vec<RunRecordView> {
    let mut records: Vec<(Option<Timestamp>, RunRecordView)> = events
        .iter()
        .filter(|e| e.reason.as_deref() == Some(RUN_RECORD_REASON))
        .filter(|e| {
            e.regarding
                .as_ref()
                .is_some_and(|r| r.kind.as_deref() == Some("PatchRun"))
        })
        .filter_map(|e| {
            let record: RunRecordView = serde_json::from_str(e.note.as_deref()?).ok()?;
            let at = e
                .event_time
                .as_ref()
                .map(|t| t.0)
                .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0));
            Some((at, record))
        })
        .collect();
    records.sort_by(|a, b| (&a.1.run, a.0).cmp(&(&b.1.run, b.0)));
    let mut out: Vec<RunRecordView> = vec![];
    for (_, record) in records {
        match out.last_mut() {
            Some(last) if last.run == record.run => *last = record,
            _ => out.push(record),
        }
    }
    out
}

/// One finished run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryRow {
    /// Run name.
    pub name: String,
    /// Its policy.
    pub policy: String,
    /// Scan, Install or Preview.
    pub operation: String,
    /// Schedule or Manual.
    pub trigger: String,
    /// Who created it (empty when not recorded).
    pub requested_by: String,
    /// RFC 3339 start.
    pub start_time: String,
    /// RFC 3339 end.
    pub completion_time: String,
    /// Final phase.
    pub phase: String,
    /// Package changes recorded (listed and omitted).
    pub changes: u32,
    /// The PatchRun is gone (pruned by historyLimit); the row is from its RunRecord Event.
    pub pruned: bool,
}

impl Row for HistoryRow {
    fn columns() -> &'static [Column<HistoryRow>] {
        const COLUMNS: &[Column<HistoryRow>] = &[
            col("RUN", "name", Shown::Always, |r| r.name.clone()),
            col("POLICY", "policy", Shown::Always, |r| r.policy.clone()),
            col("OPERATION", "operation", Shown::Always, |r| {
                r.operation.clone()
            }),
            col("TRIGGER", "trigger", Shown::Always, |r| r.trigger.clone()),
            col("REQUESTED BY", "requestedBy", Shown::Always, |r| {
                r.requested_by.clone()
            }),
            col("STARTED", "startTime", Shown::Always, |r| {
                r.start_time.clone()
            }),
            col("FINISHED", "completionTime", Shown::Always, |r| {
                r.completion_time.clone()
            }),
            col("PHASE", "phase", Shown::Always, |r| r.phase.clone()),
            col("CHANGES", "changes", Shown::Wide, |r| r.changes.to_string()),
            col("PRUNED", "pruned", Shown::Always, |r| r.pruned.to_string()),
        ];
        COLUMNS
    }
}

/// One package change a run made on a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeRow {
    /// Run name.
    pub run: String,
    /// Its policy.
    pub policy: String,
    /// When the run finished (RFC 3339).
    pub completion_time: String,
    /// The node.
    pub node: String,
    /// Package name.
    pub name: String,
    /// Architecture.
    pub arch: String,
    /// Version before (empty: newly installed).
    pub from_version: String,
    /// Version after (empty: removed; for a failure, the version not installed).
    pub to_version: String,
    /// Installed, Failed or Removed.
    pub result: String,
    /// The run is gone; the row is from its RunRecord Event.
    pub pruned: bool,
}

impl Row for ChangeRow {
    fn columns() -> &'static [Column<ChangeRow>] {
        const COLUMNS: &[Column<ChangeRow>] = &[
            col("RUN", "run", Shown::Always, |r| r.run.clone()),
            col("POLICY", "policy", Shown::Wide, |r| r.policy.clone()),
            col("FINISHED", "completionTime", Shown::Always, |r| {
                r.completion_time.clone()
            }),
            col("NODE", "node", Shown::Always, |r| r.node.clone()),
            col("PACKAGE", "name", Shown::Always, |r| r.name.clone()),
            col("ARCH", "arch", Shown::Always, |r| r.arch.clone()),
            col("CHANGE", "", Shown::TableOnly, |r| {
                version_change(&r.from_version, &r.to_version)
            }),
            col("FROM", "fromVersion", Shown::DataOnly, |r| {
                r.from_version.clone()
            }),
            col("TO", "toVersion", Shown::DataOnly, |r| r.to_version.clone()),
            col("RESULT", "result", Shown::Always, |r| r.result.clone()),
            col("PRUNED", "pruned", Shown::Always, |r| r.pruned.to_string()),
        ];
        COLUMNS
    }
}

/// A finished run, from the object or from its record.
struct Finished<'a> {
    row: HistoryRow,
    changes: &'a [NodeChanges],
}

fn sort_key(row: &HistoryRow) -> (Option<Timestamp>, String) {
    let at = [&row.completion_time, &row.start_time]
        .into_iter()
        .find_map(|t| t.parse::<Timestamp>().ok());
    (at, row.name.clone())
}

fn finished_runs<'a>(
    runs: &'a [PatchRun],
    records: &'a [RunRecordView],
    policy: Option<&str>,
) -> Vec<Finished<'a>> {
    let live: BTreeSet<String> = runs.iter().map(|r| r.name_any()).collect();
    let mut out: Vec<Finished<'a>> = vec![];
    for run in runs {
        let Some(status) = run.status.as_ref().filter(|s| s.phase.is_finished()) else {
            continue;
        };
        out.push(Finished {
            row: HistoryRow {
                name: run.name_any(),
                policy: run.spec.policy_ref.clone(),
                operation: run.spec.operation.as_str().into(),
                trigger: super::status::trigger_name(run.spec.trigger).into(),
                requested_by: run
                    .annotations()
                    .get(REQUESTED_BY_ANNOTATION)
                    .cloned()
                    .unwrap_or_default(),
                start_time: time_text(status.start_time.as_ref()),
                completion_time: time_text(status.completion_time.as_ref()),
                phase: status.phase.as_str().into(),
                changes: change_count(&status.changes, status.changes_omitted),
                pruned: false,
            },
            changes: &status.changes,
        });
    }
    for record in records.iter().filter(|r| !live.contains(&r.run)) {
        out.push(Finished {
            row: HistoryRow {
                name: record.run.clone(),
                policy: record.policy.clone(),
                operation: record.operation.clone(),
                trigger: record.trigger.clone(),
                requested_by: opt(record.requested_by.as_deref()),
                start_time: opt(record.start_time.as_deref()),
                completion_time: opt(record.completion_time.as_deref()),
                phase: record.phase.clone(),
                changes: change_count(&record.changes, record.changes_omitted),
                pruned: true,
            },
            changes: &record.changes,
        });
    }
    out.retain(|f| policy.is_none_or(|p| f.row.policy == p));
    out.sort_by_key(|f| std::cmp::Reverse(sort_key(&f.row)));
    out
}

fn change_count(changes: &[NodeChanges], omitted: u32) -> u32 {
    let listed: usize = changes.iter().map(|c| c.changes.len()).sum();
    u32::try_from(listed)
        .unwrap_or(u32::MAX)
        .saturating_add(omitted)
}

/// Finished runs (live and pruned), newest first, of `policy` when given.
pub fn history_rows(
    runs: &[PatchRun],
    records: &[RunRecordView],
    policy: Option<&str>,
) -> Vec<HistoryRow> {
    finished_runs(runs, records, policy)
        .into_iter()
        .map(|f| f.row)
        .collect()
}

fn change_row(run: &HistoryRow, node: &str, c: &PackageChange) -> ChangeRow {
    ChangeRow {
        run: run.name.clone(),
        policy: run.policy.clone(),
        completion_time: run.completion_time.clone(),
        node: node.to_string(),
        name: c.name.clone(),
        arch: opt(c.arch.as_deref()),
        from_version: opt(c.from_version.as_deref()),
        to_version: opt(c.to_version.as_deref()),
        result: c.result.as_str().into(),
        pruned: run.pruned,
    }
}

/// The package changes finished runs (newest first) made on `node`.
pub fn change_rows(
    runs: &[PatchRun],
    records: &[RunRecordView],
    policy: Option<&str>,
    node: &str,
) -> Vec<ChangeRow> {
    let mut rows = vec![];
    for f in finished_runs(runs, records, policy) {
        for nc in f.changes.iter().filter(|c| c.node == node) {
            rows.extend(nc.changes.iter().map(|c| change_row(&f.row, node, c)));
        }
    }
    rows
}

/// Runs `history`: the output text.
pub async fn run(
    client: &Client,
    args: &HistoryArgs,
    namespace: &str,
) -> Result<String, PluginError> {
    let runs: Vec<PatchRun> = list_all(client, "PatchRuns", None).await?;
    let events = Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map_err(PluginError::api(format!(
            "listing Events in namespace {namespace:?}"
        )))?
        .items;
    let records = records_from_events(&events);
    let policy = args.policy.as_deref();
    let output = |e: serde_json::Error| PluginError::Output(e.to_string());
    let text = match &args.node {
        Some(node) => {
            let rows = change_rows(&runs, &records, policy, node);
            if rows.is_empty() {
                super::connection::get_named::<k8s_openapi::api::core::v1::Node>(
                    client, "node", node,
                )
                .await?;
            }
            render(&rows, args.output).map_err(output)?
        }
        None => {
            let rows = history_rows(&runs, &records, policy);
            if rows.is_empty()
                && let Some(p) = policy
            {
                super::connection::get_named::<PatchPolicy>(client, "policy", p).await?;
            }
            render(&rows, args.output).map_err(output)?
        }
    };
    Ok(text)
}

#[cfg(test)]
mod tests;
