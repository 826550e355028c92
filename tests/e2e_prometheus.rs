//! Every PromQL expression of the chart's alerts and Grafana dashboard, queried on a real
//! Prometheus (Debian's `prometheus` server on 127.0.0.1, a free port, a temp dir, scraping the
//! controller's /metrics every second) after a small fleet reconciled: two kwok nodes on
//! debootstrapped roots scanned by the real agent under a baseline that rates every update
//! Critical, a MaintenanceWindow, the controller authenticated as the chart's ServiceAccount.
//! Each expression must parse and return data. An alert expression is healthy by design (it
//! returns nothing while nothing is wrong), so its inner expression is queried for data: the
//! threshold comparison cut off (`A > 7 * 86400` → `A`, `A == 1` → `A`) and `absent(X)` → `X`;
//! the whole expression is still queried and must parse.

mod support;

use std::process::{Child, Command};
use std::time::Duration;

use kube::api::{Api, PostParams};
use nodepatch::api::{MaintenanceWindow, PatchBaseline, PatchPolicy, RunPhase};
use serde_json::json;
use support::fleet::{Env, debian_baseline, wait_run};
use support::monitoring::{dashboard_exprs, rendered_rule, require_program, rule_exprs};

/// The Prometheus server, killed when dropped.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(bin: &std::path::Path, target_port: u16) -> Prometheus {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = json!({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{
                "job_name": "nodepatch-controller",
                "static_configs": [{"targets": [format!("127.0.0.1:{target_port}")]}],
            }],
        });
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config.to_string()).expect("write prometheus.yml");
        let port = support::free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
        let child = support::die_with_parent(Command::new(bin))
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        Prometheus {
            child,
            port,
            _dir: dir,
        }
    }

    /// `/api/v1/query` for `expr` (curl with the expression as one argv entry): the JSON
    /// answer, or the error Prometheus gave.
    fn query(&self, expr: &str) -> Result<serde_json::Value, String> {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--get", "--data-urlencode"])
            .arg(format!("query={expr}"))
            .arg(format!("http://127.0.0.1:{}/api/v1/query", self.port))
            .output()
            .map_err(|e| format!("curl: {e}"))?;
        let body: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
            format!(
                "no JSON from Prometheus ({e}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })?;
        if body["status"] != "success" {
            return Err(format!("{}: {}", body["errorType"], body["error"]));
        }
        Ok(body["data"].clone())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True when a query answer holds data (a non-empty vector or matrix, or a scalar).
fn has_data(data: &serde_json::Value) -> bool {
    match data["resultType"].as_str() {
        Some("vector" | "matrix") => data["result"].as_array().is_some_and(|r| !r.is_empty()),
        Some("scalar" | "string") => true,
        _ => false,
    }
}

/// The part of an alert expression that returns data while all is well: `absent(X)` → `X`,
/// else the expression before its last top-level comparison with a constant (` > `, ` == `).
fn inner_expression(expr: &str) -> String {
    let e = expr.trim();
    if let Some(x) = e.strip_prefix("absent(").and_then(|x| x.strip_suffix(')')) {
        return x.to_string();
    }
    for op in [" > ", " == "] {
        if let Some((inner, _threshold)) = e.rsplit_once(op) {
            return inner.to_string();
        }
    }
    e.to_string()
}

#[test]
fn inner_expressions_cut_thresholds_and_absent() {
    assert_eq!(
        inner_expression(r#"time() - m{l=~"a|b"} > 7 * 86400"#),
        r#"time() - m{l=~"a|b"}"#
    );
    assert_eq!(
        inner_expression("absent(nodepatch_build_info)"),
        "nodepatch_build_info"
    );
    assert_eq!(inner_expression("x == 1"), "x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_rule_and_dashboard_expression_returns_data_from_a_real_prometheus() {
    let test = "e2e_prometheus";
    let (Some(prometheus_bin), Some(helm)) = (
        require_program(test, "prometheus"),
        require_program(test, "helm"),
    ) else {
        return;
    };
    let Some((mut env, kubeconfig)) = Env::start(test, "prom").await else {
        return;
    };
    let client = env.client.clone();
    let run_id = env.run_id.clone();
    let pp = PostParams::default();
    let controller = env.start_controller(&format!("controller-prom-{run_id}"), &kubeconfig);
    let prometheus = Prometheus::start(&prometheus_bin, controller.metrics_port);

    // A fleet that has something to show: every update rated Critical, so the default
    // compliance alert's level has missing patches; a window for window_open.
    let window = format!("e2e-prom-{run_id}");
    let mw: MaintenanceWindow = serde_json::from_value(json!({
        "metadata": {"name": window},
        "spec": {"schedule": "cron(0 3 1 1 ? 2099)", "duration": "2h"},
    }))
    .expect("window");
    Api::<MaintenanceWindow>::all(client.clone())
        .create(&pp, &mw)
        .await
        .expect("create window");
    let baseline = format!("e2e-prom-{run_id}");
    Api::<PatchBaseline>::all(client.clone())
        .create(
            &pp,
            &debian_baseline(
                &baseline,
                json!({"approvalRules": [{"filters": [{"key": "Priority", "values": ["*"]}],
                        "approveAfterDays": 0, "complianceLevel": "Critical"}]}),
            ),
        )
        .await
        .expect("create baseline");
    env.nodes("prom", 2, true).await;
    let policy = format!("e2e-prom-{run_id}");
    Api::<PatchPolicy>::all(client.clone())
        .create(
            &pp,
            &env.policy(
                &policy,
                "prom",
                json!({"baselineRefs": [baseline], "rollout": {"maxConcurrency": "100%"}}),
            ),
        )
        .await
        .expect("create policy");
    wait_run(
        &client,
        &policy,
        "Scan",
        "scan run Succeeded",
        Some(RunPhase::Succeeded),
    )
    .await;

    // The policy's signals reach Prometheus once the roll-up saw the reports.
    let since = format!(
        r#"nodepatch_policy_noncompliant_since_timestamp_seconds{{policy="{policy}",compliance_level="critical"}}"#
    );
    support::eventually(Duration::from_secs(90), "first-seen metric scraped", || {
        let answer = prometheus.query(&since);
        async move { answer.ok().filter(has_data).map(|_| ()) }
    })
    .await;
    // Enough samples for the rate() windows.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let mut failures = vec![];
    let rule = rendered_rule(&helm, &[]);
    let alerts = rule_exprs(&rule);
    assert!(alerts.len() >= 6, "the rendered rules: {alerts:?}");
    for (alert, expr) in &alerts {
        if let Err(e) = prometheus.query(expr) {
            failures.push(format!("{alert}: `{expr}` does not evaluate: {e}"));
            continue;
        }
        let inner = inner_expression(expr);
        match prometheus.query(&inner) {
            Ok(d) if has_data(&d) => {}
            Ok(d) => failures.push(format!("{alert}: inner `{inner}` returned no data: {d}")),
            Err(e) => failures.push(format!("{alert}: inner `{inner}`: {e}")),
        }
    }
    let panels = dashboard_exprs();
    assert!(
        panels.len() >= 20,
        "the dashboard's expressions: {panels:?}"
    );
    for (panel, expr) in &panels {
        match prometheus.query(expr) {
            Ok(d) if has_data(&d) => {}
            Ok(d) => failures.push(format!("panel {panel:?}: `{expr}` returned no data: {d}")),
            Err(e) => failures.push(format!("panel {panel:?}: `{expr}`: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} expressions failed:\n{}\n--- prometheus log tail:\n{}",
        failures.len(),
        alerts.len() + panels.len(),
        failures.join("\n"),
        prometheus
            .log()
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );

    // The values themselves: the first-seen date is the nodes' (durable) first sighting, in
    // the past; both nodes were scanned; the window is closed; this replica leads.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let value = |expr: &str| -> f64 {
        let d = prometheus.query(expr).expect("query");
        d["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no value for {expr}: {d}"))
    };
    let first_seen = value(&since);
    assert!(
        first_seen > now - 86400.0 && first_seen <= now,
        "first seen {first_seen} (now {now})"
    );
    let scanned = value(&format!(
        r#"nodepatch_policy_last_scan_timestamp_seconds{{policy="{policy}"}}"#
    ));
    assert!(scanned > now - 600.0 && scanned <= now + 1.0, "{scanned}");
    assert_eq!(
        value(&format!(r#"nodepatch_window_open{{window="{window}"}}"#)),
        0.0
    );
    assert_eq!(value("sum(nodepatch_leader)"), 1.0);
    drop(controller);
}
