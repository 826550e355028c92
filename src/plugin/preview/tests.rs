use super::*;
use crate::plugin::fixtures::{assert_golden, fleet};

/// The Preview run and the fleet's reports with the agents' results of `preview.yaml`.
fn previewed_fleet() -> (Vec<PatchRun>, Vec<NodePatchReport>) {
    let f = fleet();
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plugin/preview.yaml"),
    )
    .expect("preview.yaml");
    let doc: serde_json::Value = crate::cli::yaml::from_str(&text).expect("preview.yaml parses");
    let name = doc["run"].as_str().expect("run").to_string();
    let run: PatchRun = serde_json::from_value(json!({
        "apiVersion": "nodepatch.dev/v1alpha1", "kind": "PatchRun",
        "metadata": {"name": name},
        "spec": {"policyRef": "plugin-web", "operation": "Preview", "trigger": "Manual",
                 "preview": {"baseline": {"operatingSystem": "Debian"}}},
        "status": doc["status"],
    }))
    .expect("run");
    let mut reports = f.reports.clone();
    for r in &mut reports {
        let Some(result) = doc["previews"].get(r.name_any()) else {
            continue;
        };
        let mut result = result.clone();
        if result["run"] == "this" {
            result["run"] = json!(name);
        }
        r.status.get_or_insert_with(Default::default).preview =
            Some(serde_json::from_value(result).expect("preview result"));
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
        &render_preview(&view, DocumentFormat::Table).expect("renders"),
    );
    assert_golden(
        "preview.json",
        &render_preview(&view, DocumentFormat::Json).expect("renders"),
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
