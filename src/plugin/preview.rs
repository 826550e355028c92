//! `kubectl nodepatch preview -f DRAFT.yaml`: the fleet-wide what-if. One PatchRun with
//! operation Preview and the draft inline per policy concerned (all policies that are not
//! suspended, `--policy`'s, or those covering the nodes `-l` selects, with that node subset);
//! agents evaluate the draft on their node's real packages and repositories, install nothing and
//! write the result to their report's `status.preview`. The command waits for the runs, then
//! prints per node and in total what the draft changes compared with today's verdict. Which runs
//! to create and what to print are pure functions; [`run`] does the I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;

use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use serde::Serialize;
use serde_json::json;

use super::args::{DocumentFormat, PreviewArgs};
use super::connection::{get_named, list_all, node_labels};
use super::error::PluginError;
use super::output::{Column, Row, Shown, align, col, opt, table, version_change, yaml};
use super::patch_now::{generate_name, wait_for};
use super::report::policy_nodes;
use crate::api::{
    Compliance, NodePatchReport, PatchBaselineSpec, PatchPolicy, PatchRun, PreviewPatch,
    PreviewResult, RunPhase,
};

/// One Preview run to create: its policy and node subset (empty: all its members).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedPreview {
    /// The policy.
    pub policy: String,
    /// The node subset.
    pub nodes: Vec<String>,
}

/// Which Preview runs to create: for `only` (`--policy`), for every policy covering some of
/// `selected` (`-l`, with those nodes), or for every policy. Suspended policies are left out
/// (their runs would wait until resumed) and returned apart; `--policy` naming one is refused.
pub fn plan_previews(
    policies: &[PatchPolicy],
    nodes: &BTreeMap<String, BTreeMap<String, String>>,
    only: Option<&str>,
    selected: Option<&BTreeSet<String>>,
) -> Result<(Vec<PlannedPreview>, Vec<String>), PluginError> {
    let mut planned = vec![];
    let mut suspended = vec![];
    let mut sorted: Vec<&PatchPolicy> = policies.iter().collect();
    sorted.sort_by_key(|p| p.name_any());
    for p in sorted {
        let name = p.name_any();
        if only.is_some_and(|o| o != name) {
            continue;
        }
        if p.spec.suspend {
            if only.is_some() {
                return Err(PluginError::Refused(format!(
                    "policy {name:?} is suspended: its runs wait until it is resumed"
                )));
            }
            suspended.push(name);
            continue;
        }
        let subset = match selected {
            Some(selected) => {
                let covered = policy_nodes(p, nodes)
                    .map_err(|e| PluginError::Refused(format!("policy {name:?}: spec.{e}")))?;
                let subset: Vec<String> = covered.intersection(selected).cloned().collect();
                if subset.is_empty() {
                    continue;
                }
                subset
            }
            None => vec![],
        };
        planned.push(PlannedPreview {
            policy: name,
            nodes: subset,
        });
    }
    if planned.is_empty() {
        return Err(PluginError::Refused(match (only, selected) {
            (Some(p), _) => format!("policy {p:?} not found"),
            (None, Some(_)) => "no policy that is not suspended covers the selected nodes".into(),
            (None, None) => "no policy that is not suspended to preview on".into(),
        }));
    }
    Ok((planned, suspended))
}

/// The Preview PatchRun of `planned` with the `draft` baseline.
pub fn preview_run(planned: &PlannedPreview, draft: &PatchBaselineSpec) -> PatchRun {
    let mut spec = json!({
        "policyRef": planned.policy,
        "operation": "Preview",
        "trigger": "Manual",
        "preview": {"baseline": draft},
    });
    if !planned.nodes.is_empty() {
        spec["nodes"] = json!(planned.nodes);
    }
    serde_json::from_value(json!({
        "apiVersion": "nodepatch.dev/v1alpha1",
        "kind": "PatchRun",
        "metadata": {"generateName": generate_name(&planned.policy, "preview")},
        "spec": spec,
    }))
    .expect("a Preview PatchRun literal deserialises")
}

/// One node's preview.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviewNodeRow {
    /// Node name.
    pub node: String,
    /// The policy whose run previewed it.
    pub policy: String,
    /// Verdict today (the current baseline, from the same read of the node).
    pub today: String,
    /// Verdict under the draft (`Unknown` when the node has no result for the run).
    pub draft: String,
    /// Highest compliance level under the draft.
    pub draft_level: String,
    /// `Compliant → NonCompliant` and the like, empty when the verdict stays.
    pub change: String,
    /// Patches the draft makes non-compliant.
    pub newly_missing: u32,
    /// Patches the draft makes compliant.
    pub no_longer_missing: u32,
    /// Why there is no result, or the agent's note.
    pub message: String,
}

impl Row for PreviewNodeRow {
    fn columns() -> &'static [Column<PreviewNodeRow>] {
        const COLUMNS: &[Column<PreviewNodeRow>] = &[
            col("NODE", "node", Shown::Always, |r| r.node.clone()),
            col("POLICY", "policy", Shown::Always, |r| r.policy.clone()),
            col("TODAY", "today", Shown::Always, |r| r.today.clone()),
            col("DRAFT", "draft", Shown::Always, |r| r.draft.clone()),
            col("LEVEL", "draftLevel", Shown::Always, |r| {
                r.draft_level.clone()
            }),
            col("CHANGE", "change", Shown::Always, |r| r.change.clone()),
            col("NEWLY MISSING", "newlyMissing", Shown::Always, |r| {
                r.newly_missing.to_string()
            }),
            col("NO LONGER MISSING", "noLongerMissing", Shown::Always, |r| {
                r.no_longer_missing.to_string()
            }),
            col("MESSAGE", "message", Shown::Always, |r| r.message.clone()),
        ];
        COLUMNS
    }
}

/// One patch whose verdict the draft changes on one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviewPatchRow {
    /// Node name.
    pub node: String,
    /// Package name.
    pub name: String,
    /// Architecture.
    pub arch: String,
    /// Installed version.
    pub installed_version: String,
    /// The candidate version concerned.
    pub available_version: String,
    /// State under the draft (newly missing) or today (no longer missing).
    pub state: String,
    /// Classification.
    pub classification: String,
    /// Vendor severity.
    pub severity: String,
}

impl Row for PreviewPatchRow {
    fn columns() -> &'static [Column<PreviewPatchRow>] {
        const COLUMNS: &[Column<PreviewPatchRow>] = &[
            col("NODE", "node", Shown::Always, |r| r.node.clone()),
            col("PATCH", "name", Shown::Always, |r| r.name.clone()),
            col("ARCH", "arch", Shown::Always, |r| r.arch.clone()),
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
        ];
        COLUMNS
    }
}

/// The fleet totals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviewTotals {
    /// Target nodes of the runs.
    pub nodes: u32,
    /// Nodes with a result.
    pub previewed: u32,
    /// Nodes non-compliant under the draft.
    pub non_compliant_under_draft: u32,
    /// Nodes compliant today that the draft makes non-compliant.
    pub would_become_non_compliant: u32,
    /// Nodes non-compliant today that the draft makes compliant.
    pub would_become_compliant: u32,
    /// Patches newly non-compliant, over all nodes.
    pub newly_missing: u32,
    /// Patches no longer non-compliant, over all nodes.
    pub no_longer_missing: u32,
}

/// What `preview` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviewView {
    /// The runs created (name, policy, phase).
    pub runs: Vec<PreviewRunRow>,
    /// One row per target node.
    pub nodes: Vec<PreviewNodeRow>,
    /// Patches the draft makes non-compliant (listed up to 100 per node).
    pub newly_missing: Vec<PreviewPatchRow>,
    /// Patches the draft makes compliant (listed up to 100 per node).
    pub no_longer_missing: Vec<PreviewPatchRow>,
    /// Totals.
    pub totals: PreviewTotals,
}

/// A Preview run and how it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviewRunRow {
    /// Run name.
    pub name: String,
    /// Its policy.
    pub policy: String,
    /// Its phase.
    pub phase: String,
}

fn compliance_name(c: Compliance) -> String {
    c.as_str().to_string()
}

fn patch_row(node: &str, p: &PreviewPatch) -> PreviewPatchRow {
    PreviewPatchRow {
        node: node.to_string(),
        name: p.name.clone(),
        arch: opt(p.arch.as_deref()),
        installed_version: opt(p.installed_version.as_deref()),
        available_version: opt(p.available_version.as_deref()),
        state: format!("{:?}", p.state),
        classification: opt(p.classification.as_deref()),
        severity: opt(p.severity.as_deref()),
    }
}

/// The result of `run` on node `node`, if its report has one for that run.
fn result_of<'a>(
    reports: &'a BTreeMap<String, &NodePatchReport>,
    node: &str,
    run: &str,
) -> Option<&'a PreviewResult> {
    reports
        .get(node)?
        .status
        .as_ref()?
        .preview
        .as_ref()
        .filter(|p| p.run == run)
}

/// The preview of finished `runs` from the nodes' `reports`: per target node, today's verdict
/// next to the draft's, the patches that change, and the totals. A target without a result for
/// its run (skipped, failed) shows as Unknown with the reason the run recorded.
pub fn preview_view(runs: &[PatchRun], reports: &[NodePatchReport]) -> PreviewView {
    let by_node: BTreeMap<String, &NodePatchReport> =
        reports.iter().map(|r| (r.name_any(), r)).collect();
    let mut view = PreviewView {
        runs: vec![],
        nodes: vec![],
        newly_missing: vec![],
        no_longer_missing: vec![],
        totals: PreviewTotals::default(),
    };
    for run in runs {
        let name = run.name_any();
        let status = run.status.clone().unwrap_or_default();
        view.runs.push(PreviewRunRow {
            name: name.clone(),
            policy: run.spec.policy_ref.clone(),
            phase: status.phase.as_str().into(),
        });
        let mut targets = status.targets.clone();
        targets.sort_by(|a, b| a.node.cmp(&b.node));
        for target in &targets {
            view.totals.nodes += 1;
            let Some(result) = result_of(&by_node, &target.node, &name) else {
                let reason = [target.reason.as_deref(), target.message.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(": ");
                view.nodes.push(PreviewNodeRow {
                    node: target.node.clone(),
                    policy: run.spec.policy_ref.clone(),
                    today: String::new(),
                    draft: compliance_name(Compliance::Unknown),
                    draft_level: String::new(),
                    change: String::new(),
                    newly_missing: 0,
                    no_longer_missing: 0,
                    message: if reason.is_empty() {
                        format!("no preview result ({:?})", target.state)
                    } else {
                        format!("no preview result ({:?}: {reason})", target.state)
                    },
                });
                continue;
            };
            let t = &mut view.totals;
            t.previewed += 1;
            t.newly_missing += result.newly_missing_count;
            t.no_longer_missing += result.no_longer_missing_count;
            if result.compliance == Compliance::NonCompliant {
                t.non_compliant_under_draft += 1;
            }
            match (result.current_compliance, result.compliance) {
                (Compliance::Compliant, Compliance::NonCompliant) => {
                    t.would_become_non_compliant += 1
                }
                (Compliance::NonCompliant, Compliance::Compliant) => t.would_become_compliant += 1,
                _ => {}
            }
            let change = if result.current_compliance == result.compliance {
                String::new()
            } else {
                format!(
                    "{} → {}",
                    result.current_compliance.as_str(),
                    result.compliance.as_str()
                )
            };
            let mut message = opt(result.message.as_deref());
            if result.truncated {
                message = [message.as_str(), "lists cut at 100 patches"]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join("; ");
            }
            view.nodes.push(PreviewNodeRow {
                node: target.node.clone(),
                policy: run.spec.policy_ref.clone(),
                today: compliance_name(result.current_compliance),
                draft: compliance_name(result.compliance),
                draft_level: opt(result.compliance_level.map(|l| l.as_str())),
                change,
                newly_missing: result.newly_missing_count,
                no_longer_missing: result.no_longer_missing_count,
                message,
            });
            view.newly_missing.extend(
                result
                    .newly_missing
                    .iter()
                    .map(|p| patch_row(&target.node, p)),
            );
            view.no_longer_missing.extend(
                result
                    .no_longer_missing
                    .iter()
                    .map(|p| patch_row(&target.node, p)),
            );
        }
    }
    view
}

/// The preview as tables (runs, nodes, the changing patches, totals) or as JSON or YAML.
pub fn render_preview(
    view: &PreviewView,
    format: DocumentFormat,
) -> Result<String, serde_json::Error> {
    Ok(match format {
        DocumentFormat::Json => serde_json::to_string_pretty(view)? + "\n",
        DocumentFormat::Yaml => yaml(view)?,
        DocumentFormat::Table => {
            let mut runs = vec![vec!["RUN".to_string(), "POLICY".into(), "PHASE".into()]];
            runs.extend(
                view.runs
                    .iter()
                    .map(|r| vec![r.name.clone(), r.policy.clone(), r.phase.clone()]),
            );
            let mut out = format!("Preview runs:\n{}\nNodes:\n", align(&runs));
            out.push_str(&table(&view.nodes, false));
            let patches = |title: &str, rows: &[PreviewPatchRow]| {
                if rows.is_empty() {
                    format!("\n{title}: none\n")
                } else {
                    format!("\n{title}:\n{}", table(rows, false))
                }
            };
            out.push_str(&patches(
                "Newly missing under the draft",
                &view.newly_missing,
            ));
            out.push_str(&patches(
                "No longer missing under the draft",
                &view.no_longer_missing,
            ));
            let t = &view.totals;
            out.push_str(&format!(
                "\nTotal: {} of {} nodes previewed; {} would become non-compliant, {} would become compliant, {} non-compliant under the draft; {} patches newly missing, {} no longer missing.\n",
                t.previewed,
                t.nodes,
                t.would_become_non_compliant,
                t.would_become_compliant,
                t.non_compliant_under_draft,
                t.newly_missing,
                t.no_longer_missing
            ));
            out
        }
    })
}

/// The draft's spec from `-f` (a manifest, a bare spec, `-`, or a predefined name), validated
/// like a PatchBaseline; errors name the file and where in it (field, and line and column for a
/// one-document file).
pub fn load_draft(file: &str) -> Result<PatchBaselineSpec, PluginError> {
    use crate::cli::baseline_arg::{BaselineArgError, load_baseline_arg};
    match load_baseline_arg(file) {
        Ok(resolved) => Ok(resolved.spec().clone()),
        Err(e @ BaselineArgError::Malformed { .. }) => Err(PluginError::Draft(
            located_error(file).unwrap_or_else(|| for_flag(&e)),
        )),
        Err(e) => Err(PluginError::Draft(for_flag(&e))),
    }
}

/// The shared loader words its errors for `--baseline`; this command's flag is `-f`.
fn for_flag(e: &crate::cli::baseline_arg::BaselineArgError) -> String {
    e.to_string().replacen("--baseline ", "-f ", 1)
}

/// A PatchBaseline manifest, read straight from the text so errors keep their line and column.
#[derive(serde::Deserialize)]
struct DraftManifest {
    spec: PatchBaselineSpec,
}

/// Where a one-document draft file is wrong, with line and column: the shared loader reads
/// through JSON values, which keep the field but not the position.
fn located_error(file: &str) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let docs = crate::cli::yaml::documents(&text).ok()?;
    let docs: Vec<&serde_json::Value> = docs.iter().filter(|d| !d.is_null()).collect();
    let [doc] = docs.as_slice() else {
        return None;
    };
    let parsed = if doc.get("kind").is_some() {
        crate::cli::yaml::from_str_with_path::<DraftManifest>(&text).map(|m| m.spec)
    } else {
        crate::cli::yaml::from_str_with_path::<PatchBaselineSpec>(&text)
    };
    parsed
        .err()
        .map(|(field, message)| format!("-f {file}: at {field}: {message}"))
}

/// Runs `preview`: prints the result; an error when a run did not succeed or, with
/// `--fail-on-noncompliant`, when a node would be non-compliant.
pub async fn run(client: &Client, args: &PreviewArgs) -> Result<String, PluginError> {
    let draft = load_draft(&args.file)?;
    let timeout = super::patch_now::parse_timeout(args.timeout.as_deref())?;
    if let Some(p) = &args.policy {
        get_named::<PatchPolicy>(client, "policy", p).await?;
    }
    let policies: Vec<PatchPolicy> = list_all(client, "PatchPolicies", None).await?;
    let (labels, selected) = match &args.selector {
        Some(s) => (
            node_labels(client, None).await?,
            Some(node_labels(client, Some(s)).await?.into_keys().collect()),
        ),
        None => (BTreeMap::new(), None),
    };
    let (planned, suspended) = plan_previews(
        &policies,
        &labels,
        args.policy.as_deref(),
        selected.as_ref(),
    )?;
    let mut err = std::io::stderr().lock();
    if !suspended.is_empty() {
        let _ = writeln!(err, "not previewed (suspended): {}", suspended.join(", "));
    }
    drop(err);
    let api: Api<PatchRun> = Api::all(client.clone());
    let mut names = vec![];
    for p in &planned {
        let created = api
            .create(&PostParams::default(), &preview_run(p, &draft))
            .await
            .map_err(PluginError::api(format!(
                "creating a Preview run of policy {:?}",
                p.policy
            )))?;
        eprintln!("run {:?} created", created.name_any());
        names.push(created.name_any());
    }
    let mut finished = vec![];
    for name in &names {
        finished.push(wait_for(client, name, timeout).await?);
    }
    let reports: Vec<NodePatchReport> = list_all(client, "NodePatchReports", None).await?;
    let view = preview_view(&finished, &reports);
    let text =
        render_preview(&view, args.output).map_err(|e| PluginError::Output(e.to_string()))?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| PluginError::Output(e.to_string()))?;
    if let Some(r) = view
        .runs
        .iter()
        .find(|r| r.phase != RunPhase::Succeeded.as_str())
    {
        return Err(PluginError::Outcome(format!(
            "run {:?} finished {}",
            r.name, r.phase
        )));
    }
    if args.fail_on_noncompliant && view.totals.non_compliant_under_draft > 0 {
        let nodes: Vec<&str> = view
            .nodes
            .iter()
            .filter(|n| n.draft == Compliance::NonCompliant.as_str())
            .map(|n| n.node.as_str())
            .collect();
        return Err(PluginError::Outcome(format!(
            "would be non-compliant under the draft: {} ({} of {} nodes)",
            nodes.join(", "),
            nodes.len(),
            view.totals.nodes
        )));
    }
    Ok(String::new())
}

#[cfg(test)]
mod tests;
