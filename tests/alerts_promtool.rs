//! The chart's alerts, unit-tested with the real `promtool test rules`: helm renders the
//! PrometheusRule (defaults, prometheusRule.enabled=true), its groups become `rules.yaml` beside
//! tests/fixtures/alerts/nodepatch_test.yaml, which has a firing and a not-firing case for every
//! alert (and shows that a restart delays the compliance alert by its short `for:` only). The
//! chart options (per-rule disable, severity, extra labels, runbook base URL) are checked on the
//! rendered rules.

mod support;

use std::process::Command;

use support::monitoring::{rendered_rule, require_program, rule_exprs, rules_file};

const TEST_FILE: &str = "tests/fixtures/alerts/nodepatch_test.yaml";

#[test]
fn every_alert_fires_and_stays_quiet_as_promtool_expects() {
    let test = "every_alert_fires_and_stays_quiet_as_promtool_expects";
    let (Some(helm), Some(promtool)) = (
        require_program(test, "helm"),
        require_program(test, "promtool"),
    ) else {
        return;
    };
    let rule = rendered_rule(&helm, &[]);
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("rules.yaml"), rules_file(&rule)).expect("write rules");
    let fixture = support::repo_root().join(TEST_FILE);
    std::fs::copy(&fixture, dir.path().join("nodepatch_test.yaml")).expect("copy test file");

    let check = Command::new(&promtool)
        .args(["check", "rules", "rules.yaml"])
        .current_dir(dir.path())
        .output()
        .expect("run promtool check rules");
    assert!(
        check.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let out = Command::new(&promtool)
        .args(["test", "rules", "nodepatch_test.yaml"])
        .current_dir(dir.path())
        .output()
        .expect("run promtool test rules");
    assert!(
        out.status.success(),
        "promtool test rules failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Every rendered alert is exercised by the test file (a new alert needs its cases).
    let cases = std::fs::read_to_string(&fixture).expect("read test file");
    for (alert, _) in rule_exprs(&rule) {
        assert!(
            cases.contains(&format!("alertname: {alert}")),
            "{TEST_FILE} has no case for {alert}"
        );
    }
}

#[test]
fn rule_options_disable_relabel_and_point_runbooks_elsewhere() {
    let test = "rule_options_disable_relabel_and_point_runbooks_elsewhere";
    let Some(helm) = require_program(test, "helm") else {
        return;
    };
    let rule = rendered_rule(
        &helm,
        &[
            "prometheusRule.rules.controllerAbsent.enabled=false",
            "prometheusRule.rules.scanStale.severity=info",
            "prometheusRule.rules.complianceMissing.days=3",
            "prometheusRule.rules.complianceMissing.complianceLevels={critical,high}",
            "prometheusRule.additionalAlertLabels.team=platform",
            "prometheusRule.additionalAlertLabels.severity=ignored",
            "prometheusRule.runbookBaseUrl=https://wiki.example/nodepatch",
        ],
    );
    let rules: Vec<&serde_json::Value> = rule["spec"]["groups"][0]["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .collect();
    let by_name = |name: &str| rules.iter().find(|r| r["alert"] == name).copied();
    assert!(by_name("NodepatchControllerAbsent").is_none(), "disabled");
    let stale = by_name("NodepatchScanStale").expect("scan stale");
    assert_eq!(stale["labels"]["severity"], "info");
    assert_eq!(stale["labels"]["team"], "platform");
    let missing = by_name("NodepatchComplianceMissing").expect("compliance missing");
    assert_eq!(
        missing["labels"]["severity"], "warning",
        "a rule's severity wins over additionalAlertLabels"
    );
    let expr = missing["expr"].as_str().expect("expr");
    assert!(
        expr.contains(r#"compliance_level=~"critical|high""#) && expr.contains("> 3 * 86400"),
        "{expr}"
    );
    for r in &rules {
        let url = r["annotations"]["runbook_url"]
            .as_str()
            .expect("runbook_url");
        let anchor = r["alert"].as_str().expect("alert").to_lowercase();
        assert_eq!(url, format!("https://wiki.example/nodepatch#{anchor}"));
    }
}

#[test]
fn every_runbook_anchor_exists_in_docs_runbooks() {
    let test = "every_runbook_anchor_exists_in_docs_runbooks";
    let Some(helm) = require_program(test, "helm") else {
        return;
    };
    let runbooks = std::fs::read_to_string(support::repo_root().join("docs/runbooks.md"))
        .expect("read docs/runbooks.md");
    for (alert, _) in rule_exprs(&rendered_rule(&helm, &[])) {
        assert!(
            runbooks.lines().any(|l| l == format!("## {alert}")),
            "docs/runbooks.md has no section `## {alert}` (the runbook_url anchor)"
        );
    }
}
