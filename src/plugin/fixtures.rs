//! The golden fleet of the plugin's tests (`tests/fixtures/plugin/fleet.yaml`, also written to a
//! real API server by `tests/cluster_plugin.rs`) and the golden-file comparison
//! (`NODEPATCH_BLESS=1` rewrites the files).

use std::collections::BTreeMap;
use std::path::PathBuf;

use kube::ResourceExt;

use crate::api::{MaintenanceWindow, NodePatchReport, PatchBaseline, PatchPolicy, PatchRun};

/// The fleet's objects by kind.
pub struct Fleet {
    /// Node name → labels.
    pub nodes: BTreeMap<String, BTreeMap<String, String>>,
    /// PatchBaselines.
    pub baselines: Vec<PatchBaseline>,
    /// MaintenanceWindows.
    pub windows: Vec<MaintenanceWindow>,
    /// PatchPolicies.
    pub policies: Vec<PatchPolicy>,
    /// PatchRuns.
    pub runs: Vec<PatchRun>,
    /// NodePatchReports.
    pub reports: Vec<NodePatchReport>,
    /// RunRecord Events (namespace default).
    pub events: Vec<k8s_openapi::api::events::v1::Event>,
}

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plugin")
}

fn typed<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("fixture object")
}

/// Parse `fleet.yaml`.
pub fn fleet() -> Fleet {
    let text = std::fs::read_to_string(fixtures_dir().join("fleet.yaml")).expect("fleet.yaml");
    let docs = crate::cli::yaml::documents(&text).expect("fleet.yaml parses");
    let mut fleet = Fleet {
        nodes: BTreeMap::new(),
        baselines: vec![],
        windows: vec![],
        policies: vec![],
        runs: vec![],
        reports: vec![],
        events: vec![],
    };
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        match doc["kind"].as_str().expect("kind") {
            "Node" => {
                let node: k8s_openapi::api::core::v1::Node = typed(doc);
                fleet.nodes.insert(node.name_any(), node.labels().clone());
            }
            "PatchBaseline" => fleet.baselines.push(typed(doc)),
            "MaintenanceWindow" => fleet.windows.push(typed(doc)),
            "PatchPolicy" => fleet.policies.push(typed(doc)),
            "PatchRun" => fleet.runs.push(typed(doc)),
            "NodePatchReport" => fleet.reports.push(typed(doc)),
            "Event" => fleet.events.push(typed(doc)),
            other => panic!("fleet.yaml: unexpected kind {other}"),
        }
    }
    fleet
}

/// Compare `actual` with the golden file `name`; with `NODEPATCH_BLESS=1`, write it instead.
pub fn assert_golden(name: &str, actual: &str) {
    let path = fixtures_dir().join(name);
    if std::env::var("NODEPATCH_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with NODEPATCH_BLESS=1 to create it)",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs (NODEPATCH_BLESS=1 rewrites it)\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}
