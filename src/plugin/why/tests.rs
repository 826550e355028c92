use super::*;
use crate::plugin::fixtures::{assert_golden, fleet};

fn now() -> Timestamp {
    "2026-01-10T00:00:00Z".parse().expect("time")
}

fn report(f: &crate::plugin::fixtures::Fleet, node: &str) -> NodePatchReport {
    f.reports
        .iter()
        .find(|r| r.name_any() == node)
        .cloned()
        .expect("report")
}

#[test]
fn the_trace_of_a_missing_package_names_the_rule_that_approves_it() {
    let f = fleet();
    let spec = &f.baselines[0].spec;
    let baseline = ResolvedBaseline::resolve("plugin-debian", spec).expect("valid");
    let report = report(&f, "plugin-web-1");
    let (input, evaluation) = trace(&report, &baseline, "np-sec", now()).expect("traced");
    assert_eq!(input.installed.len(), 1);
    assert_eq!(input.candidates[0].version, "1.1-1");
    let verdict = &evaluation.candidates[0];
    assert!(verdict.approved && verdict.to_install, "{verdict:?}");
    assert_eq!(
        verdict.approved_by.map(|a| a.to_string()).as_deref(),
        Some("approvalRules[0]")
    );
    let used = report
        .status
        .as_ref()
        .and_then(|s| s.baseline.clone())
        .expect("ref");
    let text = preamble("plugin-web-1", "np-sec", &used, &baseline, &input)
        + &crate::cli::evaluate::table(&evaluation, now());
    assert!(
        text.contains("Only the versions the report records are traced"),
        "{text}"
    );
    assert!(!text.contains("Note: the baseline changed"), "{text}");
    assert_golden("why-web-1-np-sec.txt", &text);
    assert_golden(
        "why-web-1-np-sec.json",
        &(serde_json::to_string_pretty(&evaluation).expect("json") + "\n"),
    );
    let stale = BaselineRef {
        hash: "0".repeat(64),
        ..used
    };
    let text = preamble("plugin-web-1", "np-sec", &stale, &baseline, &input);
    assert!(
        text.contains(&format!(
            "Note: the baseline changed since that scan (its hash is now {})",
            baseline.hash()
        )),
        "{text}"
    );
}

#[test]
fn a_predefined_baseline_traces_its_approval_delay() {
    let f = fleet();
    let predefined = predefined_baseline("nodepatch-predefined-rocky").expect("predefined");
    let baseline = ResolvedBaseline::resolve(predefined.name, &predefined.spec).expect("valid");
    let report = report(&f, "plugin-db-1");
    let early: Timestamp = "2025-12-22T00:00:00Z".parse().expect("time");
    let (_, evaluation) = trace(&report, &baseline, "openssl", early).expect("traced");
    assert_eq!(
        evaluation.candidates[0].reason,
        crate::baseline::VerdictReason::ApprovalPending
    );
    let (_, evaluation) = trace(&report, &baseline, "openssl", now()).expect("traced");
    assert!(evaluation.candidates[0].approved);
}

#[test]
fn a_package_the_report_does_not_list_names_node_and_package() {
    let f = fleet();
    let baseline = ResolvedBaseline::resolve("plugin-debian", &f.baselines[0].spec).expect("valid");
    let err = trace(&report(&f, "plugin-web-2"), &baseline, "np-sec", now()).expect_err("absent");
    assert_eq!(
        err.to_string(),
        "package \"np-sec\" not in the report of node \"plugin-web-2\" (reports list only non-compliant patches)"
    );
    assert_eq!(err.category(), "PackageNotInReport");
}
