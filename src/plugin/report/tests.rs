use std::collections::BTreeSet;

use super::*;
use crate::plugin::fixtures::{assert_golden, fleet};
use crate::plugin::output::OutputFormat;

fn all_nodes() -> BTreeSet<String> {
    fleet().nodes.into_keys().collect()
}

#[test]
fn node_rows_of_the_selected_nodes_match_the_golden_files_in_every_format() {
    let f = fleet();
    let rows = node_rows(&f.reports, Some(&all_nodes()), None);
    assert_eq!(
        rows.iter().map(|r| r.node.as_str()).collect::<Vec<_>>(),
        ["plugin-db-1", "plugin-db-2", "plugin-web-1", "plugin-web-2"]
    );
    for (format, file) in [
        (OutputFormat::Table, "report.txt"),
        (OutputFormat::Wide, "report-wide.txt"),
        (OutputFormat::Csv, "report.csv"),
        (OutputFormat::Json, "report.json"),
        (OutputFormat::Yaml, "report.yaml"),
    ] {
        assert_golden(file, &render(&rows, format).expect("renders"));
    }
}

#[test]
fn a_policy_covers_the_nodes_its_selector_matches_and_a_node_without_report_is_unknown() {
    let f = fleet();
    let db = f
        .policies
        .iter()
        .find(|p| p.name_any() == "plugin-db")
        .expect("policy");
    let covered = policy_nodes(db, &f.nodes).expect("valid selector");
    assert_eq!(
        covered.iter().map(String::as_str).collect::<Vec<_>>(),
        ["plugin-db-1", "plugin-db-2"]
    );
    let rows = node_rows(&f.reports, Some(&covered), None);
    assert_eq!(rows[1].compliance, "Unknown");
    assert_eq!(rows[1].reason, "NoReport");
    assert_golden(
        "report-policy-db.txt",
        &render(&rows, OutputFormat::Table).expect("renders"),
    );
    let unknown = node_rows(&f.reports, Some(&covered), Some(StateFilter::Unknown));
    assert_eq!(unknown.len(), 1);
    assert_eq!(unknown[0].node, "plugin-db-2");
}

#[test]
fn patch_rows_list_non_compliant_patches_and_filter_by_state() {
    let f = fleet();
    let rows = patch_rows(&f.reports, Some(&all_nodes()), None);
    assert_eq!(
        rows.iter()
            .map(|r| format!("{}/{}", r.node, r.name))
            .collect::<Vec<_>>(),
        [
            "plugin-db-1/openssl",
            "plugin-db-1/kernel",
            "plugin-web-1/np-sec",
            "plugin-web-1/np-bugfix"
        ]
    );
    for (format, file) in [
        (OutputFormat::Table, "report-patches.txt"),
        (OutputFormat::Csv, "report-patches.csv"),
        (OutputFormat::Json, "report-patches.json"),
    ] {
        assert_golden(file, &render(&rows, format).expect("renders"));
    }
    let pending = patch_rows(&f.reports, None, Some(StateFilter::InstalledPendingReboot));
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].name, "kernel");
    let compliant_nodes = patch_rows(&f.reports, None, Some(StateFilter::Compliant));
    assert!(compliant_nodes.is_empty());
    let missing_nodes = node_rows(&f.reports, None, Some(StateFilter::Missing));
    assert_eq!(
        missing_nodes
            .iter()
            .map(|r| r.node.as_str())
            .collect::<Vec<_>>(),
        ["plugin-db-1", "plugin-web-1"]
    );
}

/// The CSV header is the JSON keys, in order: a spreadsheet and jq see the same fields.
#[test]
fn csv_headers_are_the_json_keys_in_order() {
    fn keys<R: Row>(row: &R) -> (Vec<String>, Vec<String>) {
        let csv: Vec<String> = R::columns()
            .iter()
            .filter(|c| c.shown != Shown::TableOnly)
            .map(|c| c.key.to_string())
            .collect();
        let json = crate::api::yaml::to_yaml_string(row).expect("yaml");
        let json: Vec<String> = json
            .lines()
            .filter(|l| !l.starts_with(' ') && !l.starts_with('-'))
            .filter_map(|l| l.split(':').next().map(str::to_owned))
            .collect();
        (csv, json)
    }
    let f = fleet();
    let (csv, json) = keys(&node_rows(&f.reports, None, None)[0]);
    assert_eq!(csv, json);
    let (csv, json) = keys(&patch_rows(&f.reports, None, None)[0]);
    assert_eq!(csv, json);
}
