//! The committed `crds/` (and the Helm chart's copy) must equal `nodepatch crd`.

use std::path::Path;

fn concatenated(dir: &Path) -> String {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("readable CRD file"))
        .collect()
}

#[test]
fn committed_crds_match_generated_output() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let committed = concatenated(&dir);
    assert!(
        committed == nodepatch::api::crds_yaml(),
        "crds/ drifted from the Rust types: run `make crds` (cargo run -- crd --output-dir crds) and commit"
    );
}

#[test]
fn every_kind_has_a_crd_file() {
    let names: Vec<String> = nodepatch::api::crds()
        .iter()
        .map(nodepatch::api::crd_file_name)
        .collect();
    assert_eq!(
        names,
        [
            "maintenancewindows.nodepatch.dev.yaml",
            "nodepatchreports.nodepatch.dev.yaml",
            "patchbaselines.nodepatch.dev.yaml",
            "patchpolicies.nodepatch.dev.yaml",
            "patchruns.nodepatch.dev.yaml",
        ]
    );
}
