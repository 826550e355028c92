use super::*;
use crate::plugin::fixtures::{assert_golden, fleet};

fn previewed_fleet() -> (Vec<PatchRun>, Vec<NodePatchReport>) {
    let f = fleet();
    let run: PatchRun = serde_json::from_value(json!({
        "apiVersion": "nodepatch.dev/v1alpha1", "kind": "PatchRun",
        "metadata": {"name": "plugin-web-preview-x1"},
        "spec": {"policyRef": "plugin-web", "operation": "Preview", "trigger": "Manual",
                 "preview": {"baseline": {"operatingSystem": "Debian"}}},
        "status": {"phase": "Succeeded", "nodes": {"total": 3, "succeeded": 2, "skipped": 1},
                   "targets": [
                       {"node": "plugin-web-2", "state": "Succeeded"},
                       {"node": "plugin-web-1", "state": "Succeeded"},
                       {"node": "plugin-web-3", "state": "Skipped", "reason": "NodeDeleted"}]},
    }))
    .expect("run");
    let mut reports = f.reports.clone();
    let result = |mut value: serde_json::Value| -> PreviewResult {
        value["run"] = json!("plugin-web-preview-x1");
        serde_json::from_value(value).expect("preview result")
    };
    for r in &mut reports {
        let name = r.name_any();
        let status = r.status.get_or_insert_with(Default::default);
        match name.as_str() {
            "plugin-web-1" => {
                status.preview = Some(result(json!({
                    "compliance": "Compliant", "currentCompliance": "NonCompliant",
                    "noLongerMissing": [{"name": "np-bugfix", "arch": "amd64", "installedVersion": "1.0-1",
                        "availableVersion": "1.0-2", "state": "Missing", "classification": "Bugfix"},
                        {"name": "np-sec", "arch": "amd64", "installedVersion": "1.0-1",
                        "availableVersion": "1.1-1", "state": "Missing", "classification": "Security"}],
                    "noLongerMissingCount": 2,
                })))
            }
            "plugin-web-2" => {
                status.preview = Some(result(json!({
                    "compliance": "NonCompliant", "complianceLevel": "Critical", "currentCompliance": "Compliant",
                    "newlyMissing": [{"name": "np-other", "arch": "amd64", "installedVersion": "1.0-1",
                        "availableVersion": "2.0-1", "state": "Missing", "classification": "Security", "severity": "high"}],
                    "newlyMissingCount": 1,
                })))
            }
            // A result of another run is not this preview's.
            "plugin-db-1" => {
                status.preview = Some(
                    serde_json::from_value(json!({"run": "other", "compliance": "NonCompliant"}))
                        .expect("other"),
                )
            }
            _ => {}
        }
    }
    (vec![run], reports)
}

#[test]
fn the_preview_shows_flips_per_node_and_in_total_as_the_golden_files_say() {
    let (runs, reports) = previewed_fleet();
    let view = preview_view(&runs, &reports);
    assert_eq!(
        view.nodes
            .iter()
            .map(|n| (n.node.as_str(), n.change.as_str()))
            .collect::<Vec<_>>(),
        [
            ("plugin-web-1", "NonCompliant → Compliant"),
            ("plugin-web-2", "Compliant → NonCompliant"),
            ("plugin-web-3", ""),
        ]
    );
    assert_eq!(
        view.nodes[2].message,
        "no preview result (Skipped: NodeDeleted)"
    );
    assert_eq!(
        view.totals,
        PreviewTotals {
            nodes: 3,
            previewed: 2,
            non_compliant_under_draft: 1,
            would_become_non_compliant: 1,
            would_become_compliant: 1,
            newly_missing: 1,
            no_longer_missing: 2,
        }
    );
    assert_golden(
        "preview.txt",
        &render_preview(&view, TraceFormat::Table).expect("renders"),
    );
    assert_golden(
        "preview.json",
        &render_preview(&view, TraceFormat::Json).expect("renders"),
    );
}

#[test]
fn previews_go_to_unsuspended_policies_and_a_selector_narrows_them_to_its_nodes() {
    let f = fleet();
    let (planned, suspended) = plan_previews(&f.policies, &f.nodes, None, None).expect("plan");
    assert_eq!(
        planned,
        [PlannedPreview {
            policy: "plugin-web".into(),
            nodes: vec![]
        }]
    );
    assert_eq!(suspended, ["plugin-db"]);
    let selected: BTreeSet<String> = ["plugin-web-2".to_string(), "plugin-db-1".to_string()].into();
    let (planned, _) = plan_previews(&f.policies, &f.nodes, None, Some(&selected)).expect("plan");
    assert_eq!(planned[0].nodes, ["plugin-web-2"]);
    let err = plan_previews(&f.policies, &f.nodes, Some("plugin-db"), None).expect_err("suspended");
    assert_eq!(
        err.to_string(),
        "policy \"plugin-db\" is suspended: its runs wait until it is resumed"
    );
    let db_only: BTreeSet<String> = ["plugin-db-1".to_string()].into();
    let err = plan_previews(&f.policies, &f.nodes, None, Some(&db_only)).expect_err("none");
    assert_eq!(
        err.to_string(),
        "no policy that is not suspended covers the selected nodes"
    );
}

#[test]
fn the_preview_run_carries_the_draft_and_the_node_subset() {
    let draft: PatchBaselineSpec =
        serde_json::from_value(json!({"operatingSystem": "Debian", "approvedPatches": ["np-sec"]}))
            .expect("draft");
    let run = preview_run(
        &PlannedPreview {
            policy: "web".into(),
            nodes: vec!["a".into()],
        },
        &draft,
    );
    assert_eq!(run.spec.operation, crate::api::Operation::Preview);
    assert_eq!(run.spec.nodes, ["a"]);
    assert_eq!(run.spec.preview.as_ref().map(|p| &p.baseline), Some(&draft));
    assert_eq!(run.metadata.generate_name.as_deref(), Some("web-preview-"));
}

#[test]
fn a_bad_draft_names_the_file_and_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("draft.yaml");
    std::fs::write(
        &path,
        "apiVersion: nodepatch.dev/v1alpha1\nkind: PatchBaseline\nmetadata: {name: d}\nspec:\n  operatingSystem: Debian\n  approvalRules:\n    - approveAfterDays: soon\n",
    )
    .expect("write");
    let arg = path.to_string_lossy().into_owned();
    let err = load_draft(&arg).expect_err("bad");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "-f {arg}: at spec.approvalRules[0].approveAfterDays"
        )),
        "{text}"
    );
    assert!(text.contains("line 7"), "{text}");
    let draft = load_draft("nodepatch-predefined-debian").expect("predefined");
    assert_eq!(draft.operating_system, crate::api::OperatingSystem::Debian);
}
