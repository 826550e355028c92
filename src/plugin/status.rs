//! `kubectl nodepatch status`: policies with their node counts by compliance, active runs with
//! their progress, and maintenance windows (open now, next opening). Pure rows from API objects
//! (what the controller wrote in their status); [`run`] only reads the API.

use kube::{Client, ResourceExt};
use serde::Serialize;

use super::args::{StatusArgs, StatusFormat};
use super::connection::list_all;
use super::error::PluginError;
use super::output::{Column, Row, Shown, col, opt, table, time_text, yaml};
use crate::api::{MaintenanceWindow, PatchPolicy, PatchRun, RunNodeCounts, RunTrigger};

/// One policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRow {
    /// Policy name.
    pub name: String,
    /// Nodes it covers.
    pub nodes: u32,
    /// … Compliant.
    pub compliant: u32,
    /// … NonCompliant.
    pub non_compliant: u32,
    /// … Unknown (no report yet, or its last scan failed).
    pub unknown: u32,
    /// … NotApplicable.
    pub not_applicable: u32,
    /// `spec.suspend`.
    pub suspended: bool,
    /// The run in progress.
    pub active_run: String,
    /// Start of the next install window (RFC 3339).
    pub next_install_window: String,
    /// Last completed scan (RFC 3339).
    pub last_scan_time: String,
}

impl Row for PolicyRow {
    fn columns() -> &'static [Column<PolicyRow>] {
        const COLUMNS: &[Column<PolicyRow>] = &[
            col("POLICY", "name", Shown::Always, |r| r.name.clone()),
            col("NODES", "nodes", Shown::Always, |r| r.nodes.to_string()),
            col("COMPLIANT", "compliant", Shown::Always, |r| {
                r.compliant.to_string()
            }),
            col("NONCOMPLIANT", "nonCompliant", Shown::Always, |r| {
                r.non_compliant.to_string()
            }),
            col("UNKNOWN", "unknown", Shown::Always, |r| {
                r.unknown.to_string()
            }),
            col("N/A", "notApplicable", Shown::Wide, |r| {
                r.not_applicable.to_string()
            }),
            col("SUSPENDED", "suspended", Shown::Always, |r| {
                r.suspended.to_string()
            }),
            col("ACTIVE RUN", "activeRun", Shown::Wide, |r| {
                r.active_run.clone()
            }),
            col("NEXT WINDOW", "nextInstallWindow", Shown::Wide, |r| {
                r.next_install_window.clone()
            }),
            col("LAST SCAN", "lastScanTime", Shown::Wide, |r| {
                r.last_scan_time.clone()
            }),
        ];
        COLUMNS
    }
}

/// One run that has not finished.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRow {
    /// Run name.
    pub name: String,
    /// Its policy.
    pub policy: String,
    /// Scan or Install.
    pub operation: String,
    /// Pending or Running.
    pub phase: String,
    /// Nodes done (succeeded, failed or skipped).
    pub done: u32,
    /// Target nodes.
    pub total: u32,
    /// Nodes failed so far.
    pub failed: u32,
    /// Wave in progress (0 before the first).
    pub wave: u32,
    /// Schedule or Manual.
    pub trigger: String,
    /// When it started (RFC 3339).
    pub start_time: String,
}

impl Row for RunRow {
    fn columns() -> &'static [Column<RunRow>] {
        const COLUMNS: &[Column<RunRow>] = &[
            col("RUN", "name", Shown::Always, |r| r.name.clone()),
            col("POLICY", "policy", Shown::Always, |r| r.policy.clone()),
            col("OPERATION", "operation", Shown::Always, |r| {
                r.operation.clone()
            }),
            col("PHASE", "phase", Shown::Always, |r| r.phase.clone()),
            col("PROGRESS", "", Shown::TableOnly, |r| {
                format!("{}/{}", r.done, r.total)
            }),
            col("DONE", "done", Shown::DataOnly, |r| r.done.to_string()),
            col("TOTAL", "total", Shown::DataOnly, |r| r.total.to_string()),
            col("FAILED", "failed", Shown::Wide, |r| r.failed.to_string()),
            col("WAVE", "wave", Shown::Always, |r| r.wave.to_string()),
            col("TRIGGER", "trigger", Shown::Wide, |r| r.trigger.clone()),
            col("STARTED", "startTime", Shown::Wide, |r| {
                r.start_time.clone()
            }),
        ];
        COLUMNS
    }
}

/// One maintenance window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WindowRow {
    /// Window name.
    pub name: String,
    /// Open now (as the controller last saw it).
    pub open: bool,
    /// When the open window closes (RFC 3339; empty when closed).
    pub closes: String,
    /// When the next window opens (RFC 3339).
    pub next_open: String,
    /// The schedule expression.
    pub schedule: String,
    /// `spec.suspend`.
    pub suspended: bool,
}

impl Row for WindowRow {
    fn columns() -> &'static [Column<WindowRow>] {
        const COLUMNS: &[Column<WindowRow>] = &[
            col("WINDOW", "name", Shown::Always, |r| r.name.clone()),
            col("OPEN", "open", Shown::Always, |r| r.open.to_string()),
            col("CLOSES", "closes", Shown::Always, |r| r.closes.clone()),
            col("NEXT OPEN", "nextOpen", Shown::Always, |r| {
                r.next_open.clone()
            }),
            col("SCHEDULE", "schedule", Shown::Wide, |r| r.schedule.clone()),
            col("SUSPENDED", "suspended", Shown::Wide, |r| {
                r.suspended.to_string()
            }),
        ];
        COLUMNS
    }
}

/// The whole status: what `-o json|yaml` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatusView {
    /// Every policy, by name.
    pub policies: Vec<PolicyRow>,
    /// Runs not finished, by policy then name.
    pub runs: Vec<RunRow>,
    /// Every window, by name.
    pub windows: Vec<WindowRow>,
}

/// Nodes of a run that are done.
pub fn done(c: &RunNodeCounts) -> u32 {
    c.succeeded + c.succeeded_reboot_required + c.failed + c.skipped
}

/// The status of `policies`, `runs` and `windows` as the controller recorded it.
pub fn status_view(
    policies: &[PatchPolicy],
    runs: &[PatchRun],
    windows: &[MaintenanceWindow],
) -> StatusView {
    let mut policies: Vec<PolicyRow> = policies
        .iter()
        .map(|p| {
            let status = p.status.clone().unwrap_or_default();
            PolicyRow {
                name: p.name_any(),
                nodes: status.nodes.total,
                compliant: status.nodes.compliant,
                non_compliant: status.nodes.non_compliant,
                unknown: status.nodes.unknown,
                not_applicable: status.nodes.not_applicable,
                suspended: p.spec.suspend,
                active_run: opt(status.active_run.as_deref()),
                next_install_window: time_text(status.next_install_window.as_ref()),
                last_scan_time: time_text(status.last_scan_time.as_ref()),
            }
        })
        .collect();
    policies.sort_by(|a, b| a.name.cmp(&b.name));
    let mut runs: Vec<RunRow> = runs
        .iter()
        .filter(|r| !r.status.as_ref().is_some_and(|s| s.phase.is_finished()))
        .map(|r| {
            let status = r.status.clone().unwrap_or_default();
            RunRow {
                name: r.name_any(),
                policy: r.spec.policy_ref.clone(),
                operation: r.spec.operation.as_str().into(),
                phase: status.phase.as_str().into(),
                done: done(&status.nodes),
                total: status.nodes.total,
                failed: status.nodes.failed,
                wave: status.current_wave,
                trigger: trigger_name(r.spec.trigger).into(),
                start_time: time_text(status.start_time.as_ref()),
            }
        })
        .collect();
    runs.sort_by(|a, b| (&a.policy, &a.name).cmp(&(&b.policy, &b.name)));
    let mut windows: Vec<WindowRow> = windows
        .iter()
        .map(|w| {
            let status = w.status.clone().unwrap_or_default();
            WindowRow {
                name: w.name_any(),
                open: status.open,
                closes: if status.open {
                    time_text(status.current_window.as_ref().map(|c| &c.end))
                } else {
                    String::new()
                },
                next_open: time_text(status.next_windows.first().map(|n| &n.start)),
                schedule: w.spec.schedule.clone(),
                suspended: w.spec.suspend,
            }
        })
        .collect();
    windows.sort_by(|a, b| a.name.cmp(&b.name));
    StatusView {
        policies,
        runs,
        windows,
    }
}

/// `Schedule` / `Manual`.
pub fn trigger_name(t: RunTrigger) -> &'static str {
    match t {
        RunTrigger::Schedule => "Schedule",
        RunTrigger::Manual => "Manual",
    }
}

/// The three tables, each under its title, or the view as JSON or YAML.
pub fn render_status(view: &StatusView, format: StatusFormat) -> Result<String, serde_json::Error> {
    let wide = format == StatusFormat::Wide;
    Ok(match format {
        StatusFormat::Json => serde_json::to_string_pretty(view)? + "\n",
        StatusFormat::Yaml => yaml(view)?,
        StatusFormat::Table | StatusFormat::Wide => {
            let section = |title: &str, empty: bool, body: String| {
                if empty {
                    format!("{title}: none\n")
                } else {
                    format!("{title}:\n{body}")
                }
            };
            [
                section(
                    "Policies",
                    view.policies.is_empty(),
                    table(&view.policies, wide),
                ),
                section("Active runs", view.runs.is_empty(), table(&view.runs, wide)),
                section(
                    "Maintenance windows",
                    view.windows.is_empty(),
                    table(&view.windows, wide),
                ),
            ]
            .join("\n")
        }
    })
}

/// Runs `status`: the output text.
pub async fn run(client: &Client, args: &StatusArgs) -> Result<String, PluginError> {
    let selector = args.selector.as_deref();
    let policies: Vec<PatchPolicy> = list_all(client, "PatchPolicies", selector).await?;
    let runs: Vec<PatchRun> = list_all(client, "PatchRuns", selector).await?;
    let windows: Vec<MaintenanceWindow> = list_all(client, "MaintenanceWindows", selector).await?;
    render_status(&status_view(&policies, &runs, &windows), args.output)
        .map_err(|e| PluginError::Output(e.to_string()))
}

#[cfg(test)]
mod tests;
