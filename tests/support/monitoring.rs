//! The chart's monitoring as tests read it: the PrometheusRule's groups rendered by the real
//! helm, the Grafana dashboard's PromQL expressions, and the Prometheus binaries (Debian's
//! `prometheus` package, installed by scripts/install-deps.sh). A missing binary skips the test
//! outside CI and fails it with `CI=true`.

use std::path::PathBuf;
use std::process::Command;

use super::{repo_root, tool};

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// `program` on PATH (or helm under .local/bin), or `None` with the skip printed (outside CI);
/// panics in CI.
pub fn require_program(test: &str, program: &str) -> Option<PathBuf> {
    let found = if program == "helm" {
        Some(tool("helm")).filter(|p| p.exists())
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(program))
                .find(|p| p.is_file())
        })
    };
    if found.is_none() {
        let why = match program {
            "helm" => "helm is missing from .local/bin: run e2e/tools/build.sh (make tools)",
            _ => "run scripts/install-deps.sh (Debian's prometheus package)",
        };
        let msg = format!("{test}: `{program}` not found; {why}");
        if in_ci() {
            panic!("{msg} (CI=true makes this a failure)");
        }
        eprintln!("SKIPPED (not CI): {msg}");
    }
    found
}

/// The chart's PrometheusRule (prometheusRule.enabled=true plus `sets`) as rendered by helm.
pub fn rendered_rule(helm: &PathBuf, sets: &[&str]) -> serde_json::Value {
    let mut cmd = Command::new(helm);
    cmd.current_dir(repo_root()).args([
        "template",
        "nodepatch",
        "charts/nodepatch",
        "--namespace",
        "nodepatch-system",
        "--kube-version",
        "1.37.2",
        "-s",
        "templates/prometheusrule.yaml",
        "--set",
        "prometheusRule.enabled=true",
    ]);
    for s in sets {
        cmd.args(["--set", s]);
    }
    let out = cmd.output().expect("run helm");
    assert!(
        out.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_saphyr::from_str(&String::from_utf8_lossy(&out.stdout)).expect("PrometheusRule YAML")
}

/// A Prometheus rules file (`{"groups": …}`, JSON being YAML) from a rendered PrometheusRule.
pub fn rules_file(rule: &serde_json::Value) -> String {
    serde_json::json!({"groups": rule["spec"]["groups"]}).to_string()
}

/// Every rule of a rendered PrometheusRule: (alert name, expression).
pub fn rule_exprs(rule: &serde_json::Value) -> Vec<(String, String)> {
    rule["spec"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().into_iter().flatten())
        .map(|r| {
            (
                r["alert"].as_str().unwrap_or_default().to_string(),
                r["expr"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Every PromQL expression of the chart's Grafana dashboard: (panel title, expression).
pub fn dashboard_exprs() -> Vec<(String, String)> {
    let path = repo_root().join("charts/nodepatch/dashboards/nodepatch.json");
    let text = std::fs::read_to_string(&path).expect("read the dashboard");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
    let mut out = vec![];
    for p in dash["panels"].as_array().into_iter().flatten() {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = t["expr"].as_str() {
                out.push((
                    p["title"].as_str().unwrap_or_default().to_string(),
                    expr.to_string(),
                ));
            }
        }
    }
    out
}
