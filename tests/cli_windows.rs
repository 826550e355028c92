//! End-to-end checks of `nodepatch windows` through the built binary.

use std::process::{Command, Output};

fn nodepatch_windows(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nodepatch"))
        .arg("windows")
        .args(args)
        .output()
        .expect("run nodepatch")
}

#[test]
fn json_output_lists_the_next_windows_in_utc() {
    let output = nodepatch_windows(&[
        "--schedule",
        "cron(0 2 ? * TUE#2 *)",
        "--time-zone",
        "America/New_York",
        "--duration",
        "3h",
        "--cutoff",
        "30m",
        "--offset-days",
        "2",
        "--from",
        "2026-02-01T00:00:00Z",
        "--count",
        "3",
        "--output",
        "json",
    ]);
    assert!(output.status.success(), "{output:?}");
    let windows: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    // Thursdays after the second Tuesday; New York switches to EDT on 2026-03-08.
    assert_eq!(
        windows,
        serde_json::json!([
            {"start": "2026-02-12T07:00:00Z", "cutoffAt": "2026-02-12T09:30:00Z", "end": "2026-02-12T10:00:00Z"},
            {"start": "2026-03-12T06:00:00Z", "cutoffAt": "2026-03-12T08:30:00Z", "end": "2026-03-12T09:00:00Z"},
            {"start": "2026-04-16T06:00:00Z", "cutoffAt": "2026-04-16T08:30:00Z", "end": "2026-04-16T09:00:00Z"},
        ])
    );
}

#[test]
fn manifest_from_stdin_is_read() {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_nodepatch"))
        .args([
            "windows",
            "-f",
            "-",
            "--from",
            "2026-12-14T00:00:00Z",
            "--count",
            "2",
            "--output",
            "json",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn nodepatch");
    let manifest = br#"apiVersion: nodepatch.dev/v1alpha1
kind: MaintenanceWindow
metadata: {name: weekly}
spec:
  schedule: "0 2 * * 2"
  duration: 4h
  exclusions:
    - {name: year-end-freeze, start: "2026-12-20T00:00:00Z", end: "2027-01-04T00:00:00Z"}
"#;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(manifest)
        .expect("write manifest");
    let output = child.wait_with_output().expect("wait");
    assert!(output.status.success(), "{output:?}");
    let windows: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(windows[0]["start"], "2026-12-15T02:00:00Z");
    assert_eq!(windows[1]["start"], "2027-01-05T02:00:00Z");
}

#[test]
fn invalid_schedule_exits_2_with_the_parser_message() {
    let output = nodepatch_windows(&["--schedule", "cron(0 2 1 * TUE *)"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "nodepatch windows: --schedule: dom/dow: one of day-of-month or day-of-week must be '?'\n"
    );
}
