//! `kubectl nodepatch report`: the fleet's compliance from its NodePatchReports, one row per node
//! or (with `--patches`) per node and non-compliant patch. Row building is pure (reports and node
//! labels in, rows out); [`run`] only reads the API.

use std::collections::{BTreeMap, BTreeSet};

use kube::{Client, ResourceExt};
use serde::Serialize;

use super::args::{ReportArgs, StateFilter};
use super::connection::{get_named, list_all, node_labels};
use super::error::PluginError;
use super::output::{Column, Row, Shown, col, opt, render, time_text, version_change};
use crate::api::{Compliance, NodePatchReport, PatchPolicy, PatchState, PatchStatus};
use crate::rollout::targeting::{SelectorError, is_excluded, selector_matches};

/// One node's compliance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRow {
    /// Node (and report) name.
    pub node: String,
    /// os-release ID.
    pub os: String,
    /// os-release VERSION_ID.
    pub os_version: String,
    /// Compliance verdict (`Unknown` for a selected node without a report).
    pub compliance: String,
    /// Highest level among its non-compliant patches.
    pub compliance_level: String,
    /// Non-compliant patches at level Critical.
    pub critical: u32,
    /// … High.
    pub high: u32,
    /// … Medium.
    pub medium: u32,
    /// … Low.
    pub low: u32,
    /// … Informational.
    pub informational: u32,
    /// … without a level.
    pub unspecified: u32,
    /// A reboot is pending.
    pub reboot_required: bool,
    /// Last successful scan (RFC 3339; empty when never).
    pub last_scan_time: String,
    /// Patches approved and missing.
    pub missing: u32,
    /// Patches whose install failed.
    pub failed: u32,
    /// Baseline the verdict used.
    pub baseline: String,
    /// Running kernel.
    pub kernel: String,
    /// Last successful install (RFC 3339; empty when never).
    pub last_install_time: String,
    /// Why the verdict is NotApplicable or Unknown, when the report says (or `NoReport`).
    pub reason: String,
}

impl Row for NodeRow {
    fn columns() -> &'static [Column<NodeRow>] {
        const COLUMNS: &[Column<NodeRow>] = &[
            col("NODE", "node", Shown::Always, |r| r.node.clone()),
            col("OS", "os", Shown::Always, |r| r.os.clone()),
            col("VERSION", "osVersion", Shown::Always, |r| {
                r.os_version.clone()
            }),
            col("COMPLIANCE", "compliance", Shown::Always, |r| {
                r.compliance.clone()
            }),
            col("LEVEL", "complianceLevel", Shown::Always, |r| {
                r.compliance_level.clone()
            }),
            col("CRITICAL", "critical", Shown::Always, |r| {
                r.critical.to_string()
            }),
            col("HIGH", "high", Shown::Always, |r| r.high.to_string()),
            col("MEDIUM", "medium", Shown::Always, |r| r.medium.to_string()),
            col("LOW", "low", Shown::Always, |r| r.low.to_string()),
            col("INFO", "informational", Shown::Always, |r| {
                r.informational.to_string()
            }),
            col("UNSPEC", "unspecified", Shown::Always, |r| {
                r.unspecified.to_string()
            }),
            col("REBOOT", "rebootRequired", Shown::Always, |r| {
                r.reboot_required.to_string()
            }),
            col("LAST SCAN", "lastScanTime", Shown::Always, |r| {
                r.last_scan_time.clone()
            }),
            col("MISSING", "missing", Shown::Wide, |r| r.missing.to_string()),
            col("FAILED", "failed", Shown::Wide, |r| r.failed.to_string()),
            col("BASELINE", "baseline", Shown::Wide, |r| r.baseline.clone()),
            col("KERNEL", "kernel", Shown::Wide, |r| r.kernel.clone()),
            col("LAST INSTALL", "lastInstallTime", Shown::Wide, |r| {
                r.last_install_time.clone()
            }),
            col("REASON", "reason", Shown::Wide, |r| r.reason.clone()),
        ];
        COLUMNS
    }
}

/// One non-compliant patch of one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PatchRow {
    /// Node name.
    pub node: String,
    /// Package (or zypper patch) name.
    pub name: String,
    /// Architecture.
    pub arch: String,
    /// Installed version (empty when not installed).
    pub installed_version: String,
    /// Approved candidate version.
    pub available_version: String,
    /// Patch state (Missing, Failed, InstalledPendingReboot, InstalledRejected).
    pub state: String,
    /// Classification (Security, Bugfix, …).
    pub classification: String,
    /// Vendor severity.
    pub severity: String,
    /// Compliance level the baseline assigns.
    pub compliance_level: String,
    /// CVE ids (CSV and tables: comma-separated).
    pub cves: Vec<String>,
    /// Advisory id.
    pub advisory: String,
    /// Release date (RFC 3339; empty when unknown).
    pub release_date: String,
}

impl Row for PatchRow {
    fn columns() -> &'static [Column<PatchRow>] {
        const COLUMNS: &[Column<PatchRow>] = &[
            col("NODE", "node", Shown::Always, |r| r.node.clone()),
            col("PATCH", "name", Shown::Always, |r| r.name.clone()),
            col("ARCH", "arch", Shown::Wide, |r| r.arch.clone()),
            col("VERSION", "", Shown::TableOnly, |r| {
                version_change(&r.installed_version, &r.available_version)
            }),
            col("INSTALLED", "installedVersion", Shown::DataOnly, |r| {
                r.installed_version.clone()
            }),
            col("AVAILABLE", "availableVersion", Shown::DataOnly, |r| {
                r.available_version.clone()
            }),
            col("STATE", "state", Shown::Always, |r| r.state.clone()),
            col("CLASSIFICATION", "classification", Shown::Always, |r| {
                r.classification.clone()
            }),
            col("SEVERITY", "severity", Shown::Always, |r| {
                r.severity.clone()
            }),
            col("LEVEL", "complianceLevel", Shown::Always, |r| {
                r.compliance_level.clone()
            }),
            col("CVES", "cves", Shown::Always, |r| r.cves.join(",")),
            col("ADVISORY", "advisory", Shown::Wide, |r| r.advisory.clone()),
            col("RELEASED", "releaseDate", Shown::Wide, |r| {
                r.release_date.clone()
            }),
        ];
        COLUMNS
    }
}

/// The nodes `policy`'s node selector covers among `nodes` (name → labels), opted-out nodes
/// left out.
pub fn policy_nodes(
    policy: &PatchPolicy,
    nodes: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<BTreeSet<String>, SelectorError> {
    let mut covered = BTreeSet::new();
    for (name, labels) in nodes {
        if !is_excluded(labels) && selector_matches(&policy.spec.node_selector, labels)? {
            covered.insert(name.clone());
        }
    }
    Ok(covered)
}

fn state_name(state: PatchState) -> &'static str {
    match state {
        PatchState::Installed => "Installed",
        PatchState::InstalledOther => "InstalledOther",
        PatchState::InstalledPendingReboot => "InstalledPendingReboot",
        PatchState::InstalledRejected => "InstalledRejected",
        PatchState::Missing => "Missing",
        PatchState::Failed => "Failed",
        PatchState::NotApplicable => "NotApplicable",
    }
}

/// The patch state a `--state` value names, if it names one.
fn patch_state_of(filter: StateFilter) -> Option<PatchState> {
    match filter {
        StateFilter::Missing => Some(PatchState::Missing),
        StateFilter::Failed => Some(PatchState::Failed),
        StateFilter::InstalledPendingReboot => Some(PatchState::InstalledPendingReboot),
        StateFilter::InstalledRejected => Some(PatchState::InstalledRejected),
        _ => None,
    }
}

fn compliance_of(filter: StateFilter) -> Option<Compliance> {
    match filter {
        StateFilter::Compliant => Some(Compliance::Compliant),
        StateFilter::NonCompliant => Some(Compliance::NonCompliant),
        StateFilter::Unknown => Some(Compliance::Unknown),
        StateFilter::NotApplicable => Some(Compliance::NotApplicable),
        _ => None,
    }
}

/// The reports in scope: those of `nodes` when given (a node without a report is `None`), else
/// every report; sorted by node name.
fn in_scope<'a>(
    reports: &'a [NodePatchReport],
    nodes: Option<&BTreeSet<String>>,
) -> Vec<(String, Option<&'a NodePatchReport>)> {
    let by_name: BTreeMap<String, &NodePatchReport> =
        reports.iter().map(|r| (r.name_any(), r)).collect();
    match nodes {
        Some(nodes) => nodes
            .iter()
            .map(|n| (n.clone(), by_name.get(n).copied()))
            .collect(),
        None => by_name.into_iter().map(|(n, r)| (n, Some(r))).collect(),
    }
}

fn node_passes(report: Option<&NodePatchReport>, filter: Option<StateFilter>) -> bool {
    let status = report.and_then(|r| r.status.as_ref());
    let Some(filter) = filter else { return true };
    if let Some(c) = compliance_of(filter) {
        return status.map_or(Compliance::Unknown, |s| s.compliance) == c;
    }
    let wanted = patch_state_of(filter);
    status.is_some_and(|s| s.patches.iter().any(|p| Some(p.state) == wanted))
}

/// One row per node in scope (`nodes`, else every report) passing `filter`.
pub fn node_rows(
    reports: &[NodePatchReport],
    nodes: Option<&BTreeSet<String>>,
    filter: Option<StateFilter>,
) -> Vec<NodeRow> {
    in_scope(reports, nodes)
        .into_iter()
        .filter(|(_, r)| node_passes(*r, filter))
        .map(|(node, report)| node_row(node, report))
        .collect()
}

fn node_row(node: String, report: Option<&NodePatchReport>) -> NodeRow {
    let Some(status) = report.and_then(|r| r.status.as_ref()) else {
        return NodeRow {
            node,
            os: String::new(),
            os_version: String::new(),
            compliance: Compliance::Unknown.as_str().into(),
            compliance_level: String::new(),
            critical: 0,
            high: 0,
            medium: 0,
            low: 0,
            informational: 0,
            unspecified: 0,
            reboot_required: false,
            last_scan_time: String::new(),
            missing: 0,
            failed: 0,
            baseline: String::new(),
            kernel: String::new(),
            last_install_time: String::new(),
            reason: if report.is_some() {
                "NotScanned"
            } else {
                "NoReport"
            }
            .into(),
        };
    };
    let os = status.os.clone().unwrap_or_default();
    let by = &status.non_compliant_by_severity;
    NodeRow {
        node,
        os: os.id,
        os_version: os.version_id,
        compliance: status.compliance.as_str().into(),
        compliance_level: opt(status.compliance_level.map(|l| l.as_str())),
        critical: by.critical,
        high: by.high,
        medium: by.medium,
        low: by.low,
        informational: by.informational,
        unspecified: by.unspecified,
        reboot_required: status.reboot_required,
        last_scan_time: time_text(status.last_scan_time.as_ref()),
        missing: status.counts.missing,
        failed: status.counts.failed,
        baseline: status
            .baseline
            .as_ref()
            .map(|b| b.name.clone())
            .unwrap_or_default(),
        kernel: os.kernel,
        last_install_time: time_text(status.last_install_time.as_ref()),
        reason: opt(status.compliance_reason.as_deref()),
    }
}

/// One row per non-compliant patch of the nodes in scope, node by node (patches in the
/// report's order): with a compliance `filter` only patches of such nodes, with a patch-state
/// filter only patches in that state.
pub fn patch_rows(
    reports: &[NodePatchReport],
    nodes: Option<&BTreeSet<String>>,
    filter: Option<StateFilter>,
) -> Vec<PatchRow> {
    let wanted_state = filter.and_then(patch_state_of);
    let mut rows = vec![];
    for (node, report) in in_scope(reports, nodes) {
        if filter.and_then(compliance_of).is_some() && !node_passes(report, filter) {
            continue;
        }
        let Some(status) = report.and_then(|r| r.status.as_ref()) else {
            continue;
        };
        for p in &status.patches {
            if !p.state.is_non_compliant() || wanted_state.is_some_and(|w| w != p.state) {
                continue;
            }
            rows.push(patch_row(&node, p));
        }
    }
    rows
}

fn patch_row(node: &str, p: &PatchStatus) -> PatchRow {
    PatchRow {
        node: node.to_string(),
        name: p.name.clone(),
        arch: opt(p.arch.as_deref()),
        installed_version: opt(p.installed_version.as_deref()),
        available_version: opt(p.available_version.as_deref()),
        state: state_name(p.state).into(),
        classification: opt(p.classification.as_deref()),
        severity: opt(p.severity.as_deref()),
        compliance_level: opt(p.compliance_level.map(|l| l.as_str())),
        cves: p.cves.clone(),
        advisory: opt(p.advisory.as_deref()),
        release_date: time_text(p.release_date.as_ref()),
    }
}

/// Runs `report`: the output text.
pub async fn run(client: &Client, args: &ReportArgs) -> Result<String, PluginError> {
    let policy = match &args.policy {
        Some(name) => Some(get_named::<PatchPolicy>(client, "policy", name).await?),
        None => None,
    };
    let nodes = if args.selector.is_some() || policy.is_some() {
        let labels = node_labels(client, args.selector.as_deref()).await?;
        Some(match &policy {
            Some(p) => policy_nodes(p, &labels).map_err(|e| {
                PluginError::Refused(format!("policy {:?}: spec.{e}", p.name_any()))
            })?,
            None => labels.into_keys().collect(),
        })
    } else {
        None
    };
    let reports: Vec<NodePatchReport> = list_all(client, "NodePatchReports", None).await?;
    let text = if args.patches {
        render(
            &patch_rows(&reports, nodes.as_ref(), args.state),
            args.output,
        )
    } else {
        render(
            &node_rows(&reports, nodes.as_ref(), args.state),
            args.output,
        )
    };
    text.map_err(|e| PluginError::Output(e.to_string()))
}

#[cfg(test)]
mod tests;
