//! `kubectl nodepatch why NODE PACKAGE`: the evaluation trace of one package on one node, from
//! what the node's NodePatchReport records. The report names its baseline (a PatchBaseline, or
//! a predefined one) and lists the package's non-compliant entries with the installed and
//! available version and the advisory metadata; that is rebuilt into an [`EvaluationInput`] and
//! evaluated exactly as `nodepatch evaluate` does, and printed with its table.
//!
//! Only the versions the report records are traced: other versions the node's repositories
//! offer, and metadata the report does not keep (repositories, priority, section, dependencies),
//! are unknown here, which the output says.

use jiff::Timestamp;
use kube::{Client, ResourceExt};

use super::args::{DocumentFormat, WhyArgs};
use super::connection::get_named;
use super::error::PluginError;
use crate::api::{
    BaselineRef, NodePatchReport, NodePatchReportStatus, PatchBaseline, PatchBaselineSpec,
};
use crate::baseline::model::parse_release_time;
use crate::baseline::{
    Candidate, Evaluation, EvaluationInput, InstalledPackage, PREDEFINED_PREFIX, ResolvedBaseline,
    evaluate, predefined_baseline,
};

/// The evaluation input for `package` rebuilt from the report, or `None` when the report does
/// not list it.
pub fn input_from_report(
    status: &NodePatchReportStatus,
    baseline: &ResolvedBaseline,
    package: &str,
) -> Option<EvaluationInput> {
    let entries: Vec<_> = status
        .patches
        .iter()
        .filter(|p| p.name == package)
        .collect();
    if entries.is_empty() {
        return None;
    }
    let mut input = EvaluationInput {
        operating_system: Some(baseline.operating_system()),
        ..EvaluationInput::default()
    };
    for p in entries {
        if let Some(version) = &p.installed_version
            && !input
                .installed
                .iter()
                .any(|i| i.arch == p.arch && &i.version == version)
        {
            input.installed.push(InstalledPackage {
                name: p.name.clone(),
                arch: p.arch.clone(),
                version: version.clone(),
                source: None,
            });
        }
        if let Some(version) = &p.available_version {
            input.candidates.push(Candidate {
                name: p.name.clone(),
                arch: p.arch.clone(),
                version: version.clone(),
                classification: p.classification.clone(),
                severity: p.severity.clone(),
                release_date: p.release_date.as_ref().map(|t| t.0),
                advisory: p.advisory.clone(),
                cves: p.cves.clone(),
                ..Candidate::default()
            });
        }
    }
    Some(input)
}

/// The header `why` prints above the trace: which report and baseline, and what is not known.
pub fn preamble(
    node: &str,
    package: &str,
    used: &BaselineRef,
    baseline: &ResolvedBaseline,
    input: &EvaluationInput,
) -> String {
    let mut out = format!(
        "Node {node}, package {package}: traced from NodePatchReport {node} with baseline {} (the report's verdict used hash {}).\n",
        used.name, used.hash
    );
    if baseline.hash() != used.hash {
        out.push_str(&format!(
            "Note: the baseline changed since that scan (its hash is now {}); the trace uses it as it is now.\n",
            baseline.hash()
        ));
    }
    let versions = |v: Vec<&str>| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    out.push_str(&format!(
        "Only the versions the report records are traced: installed {}; available {}. Other versions the node's repositories offer, and metadata the report does not keep (repositories, priority, section, dependencies), are not known here.\n\n",
        versions(input.installed.iter().map(|i| i.version.as_str()).collect()),
        versions(input.candidates.iter().map(|c| c.version.as_str()).collect()),
    ));
    out
}

/// The trace of `package` on the node of `report` against `baseline`, as of `now`.
pub fn trace(
    report: &NodePatchReport,
    baseline: &ResolvedBaseline,
    package: &str,
    now: Timestamp,
) -> Result<(EvaluationInput, Evaluation), PluginError> {
    let node = report.name_any();
    let not_listed = || PluginError::PackageNotInReport {
        node: node.clone(),
        package: package.to_string(),
    };
    let status = report.status.as_ref().ok_or_else(not_listed)?;
    let input = input_from_report(status, baseline, package).ok_or_else(not_listed)?;
    let evaluation = evaluate(baseline, &input, now)?;
    Ok((input, evaluation))
}

/// The baseline `used` names: the PatchBaseline object, or a predefined baseline.
async fn baseline_of(client: &Client, used: &BaselineRef) -> Result<ResolvedBaseline, PluginError> {
    let spec: PatchBaselineSpec = if used.name.starts_with(PREDEFINED_PREFIX) {
        predefined_baseline(&used.name)
            .ok_or_else(|| PluginError::NotFound {
                kind: "baseline",
                name: used.name.clone(),
            })?
            .spec
    } else {
        get_named::<PatchBaseline>(client, "baseline", &used.name)
            .await?
            .spec
    };
    ResolvedBaseline::resolve(used.name.clone(), &spec)
        .map_err(|e| PluginError::Refused(format!("baseline {:?} is invalid: {e}", used.name)))
}

/// Runs `why`: the output text.
pub async fn run(client: &Client, args: &WhyArgs) -> Result<String, PluginError> {
    let now = match &args.now {
        Some(text) => {
            parse_release_time(text).map_err(|e| PluginError::Refused(format!("--now: {e}")))?
        }
        None => Timestamp::now(),
    };
    let report: NodePatchReport = match get_named(client, "report for node", &args.node).await {
        Ok(r) => r,
        Err(PluginError::NotFound { .. }) => {
            // Say whether the node itself is missing or only its report.
            get_named::<k8s_openapi::api::core::v1::Node>(client, "node", &args.node).await?;
            return Err(PluginError::NotFound {
                kind: "report for node",
                name: args.node.clone(),
            });
        }
        Err(e) => return Err(e),
    };
    let used = report
        .status
        .as_ref()
        .and_then(|s| s.baseline.clone())
        .ok_or_else(|| {
            PluginError::Refused(format!(
                "the report of node {:?} names no baseline (not scanned yet)",
                args.node
            ))
        })?;
    let baseline = baseline_of(client, &used).await?;
    let (input, evaluation) = trace(&report, &baseline, &args.package, now)?;
    let output = |e: serde_json::Error| PluginError::Output(e.to_string());
    Ok(match args.output {
        DocumentFormat::Table => {
            preamble(&args.node, &args.package, &used, &baseline, &input)
                + &crate::cli::evaluate::table(&evaluation, now)
        }
        DocumentFormat::Json => serde_json::to_string_pretty(&evaluation).map_err(output)? + "\n",
        DocumentFormat::Yaml => crate::api::yaml::to_yaml_string(&evaluation).map_err(output)?,
    })
}

#[cfg(test)]
mod tests;
