use super::*;
use crate::plugin::fixtures::{assert_golden, fleet};

#[test]
fn status_lists_policies_active_runs_and_windows_as_the_golden_files_say() {
    let f = fleet();
    let view = status_view(&f.policies, &f.runs, &f.windows);
    assert_eq!(
        view.runs
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["plugin-web-scan-2"],
        "finished runs are not active"
    );
    assert_eq!((view.runs[0].done, view.runs[0].total), (1, 2));
    assert!(
        view.windows
            .iter()
            .any(|w| w.open && w.closes == "2026-01-10T17:00:00Z")
    );
    assert_golden(
        "status.txt",
        &render_status(&view, StatusFormat::Table).expect("renders"),
    );
    assert_golden(
        "status-wide.txt",
        &render_status(&view, StatusFormat::Wide).expect("renders"),
    );
    assert_golden(
        "status.json",
        &render_status(&view, StatusFormat::Json).expect("renders"),
    );
}

#[test]
fn an_empty_cluster_says_none_for_each_section() {
    let text = render_status(&status_view(&[], &[], &[]), StatusFormat::Table).expect("renders");
    assert_eq!(
        text,
        "Policies: none\n\nActive runs: none\n\nMaintenance windows: none\n"
    );
}
