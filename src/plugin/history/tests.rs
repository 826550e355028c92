use super::*;
use crate::plugin::fixtures::{assert_golden, fleet};
use crate::plugin::output::OutputFormat;

#[test]
fn history_lists_finished_and_pruned_runs_newest_first_as_the_golden_files_say() {
    let f = fleet();
    let records = records_from_events(&f.events);
    assert_eq!(
        records.iter().map(|r| r.run.as_str()).collect::<Vec<_>>(),
        ["plugin-db-install-0", "plugin-db-install-1"],
        "an unknown field in a record is ignored"
    );
    let rows = history_rows(&f.runs, &records, Some("plugin-db"));
    assert_eq!(
        rows.iter()
            .map(|r| (r.name.as_str(), r.pruned))
            .collect::<Vec<_>>(),
        [
            ("plugin-db-install-1", false),
            ("plugin-db-install-0", true)
        ],
        "the live run's own record does not show it twice; the running run is not history"
    );
    assert_eq!(rows[0].requested_by, "nodepatch-admin");
    assert_eq!(rows[1].requested_by, "system:nodepatch");
    assert_eq!((rows[0].changes, rows[1].changes), (3, 4));
    for (format, file) in [
        (OutputFormat::Table, "history.txt"),
        (OutputFormat::Csv, "history.csv"),
        (OutputFormat::Json, "history.json"),
    ] {
        assert_golden(file, &render(&rows, format).expect("renders"));
    }
    assert!(history_rows(&f.runs, &records, Some("plugin-web")).is_empty());
}

#[test]
fn node_history_lists_every_change_of_the_node_from_runs_and_records() {
    let f = fleet();
    let records = records_from_events(&f.events);
    let rows = change_rows(&f.runs, &records, Some("plugin-db"), "plugin-db-1");
    assert_eq!(
        rows.iter()
            .map(|r| format!("{} {} {}", r.run, r.name, r.result))
            .collect::<Vec<_>>(),
        [
            "plugin-db-install-1 kernel Installed",
            "plugin-db-install-1 libfoo Failed",
            "plugin-db-install-1 oldpkg Removed",
            "plugin-db-install-0 openssl Installed",
        ]
    );
    assert_golden(
        "history-node-db-1.txt",
        &render(&rows, OutputFormat::Table).expect("renders"),
    );
    assert_golden(
        "history-node-db-1.csv",
        &render(&rows, OutputFormat::Csv).expect("renders"),
    );
    assert!(change_rows(&f.runs, &records, None, "plugin-web-1").is_empty());
}

#[test]
fn records_that_are_not_run_records_are_ignored_and_the_latest_wins() {
    let event = |reason: &str, kind: &str, note: &str, at: &str| -> Event {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "e", "namespace": "default"},
            "eventTime": at, "reason": reason, "note": note,
            "regarding": {"kind": kind, "name": "r"},
        }))
        .expect("event")
    };
    let events = [
        event(
            "RunRecord",
            "PatchRun",
            r#"{"run":"r","phase":"Running"}"#,
            "2026-01-01T00:00:00.000000Z",
        ),
        event(
            "RunRecord",
            "PatchRun",
            r#"{"run":"r","phase":"Succeeded"}"#,
            "2026-01-02T00:00:00.000000Z",
        ),
        event(
            "RunFinished",
            "PatchRun",
            r#"{"run":"x"}"#,
            "2026-01-01T00:00:00.000000Z",
        ),
        event(
            "RunRecord",
            "Node",
            r#"{"run":"y"}"#,
            "2026-01-01T00:00:00.000000Z",
        ),
        event(
            "RunRecord",
            "PatchRun",
            "not json",
            "2026-01-01T00:00:00.000000Z",
        ),
    ];
    let records = records_from_events(&events);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].phase, "Succeeded");
}
