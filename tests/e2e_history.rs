//! Previews, node subsets and run history end to end on the real control plane: kwok nodes, the
//! pod runner starting the real `nodepatch agent` on each node's debootstrapped root (apt runs
//! through `chroot` into it), the real `nodepatch controller`, and the chart's admission
//! policies.
//!
//! - a scheduled run says it was requested by `system:nodepatch`; a manual run names the user
//!   who created it (a forged `nodepatch.dev/requested-by` on create is overwritten, a change
//!   later refused);
//! - `kubectl nodepatch preview` (the real plugin binary) of a stricter draft baseline reports, per node, the flip from Compliant to
//!   NonCompliant and the newly missing updates, and the fleet totals in the run; it installs
//!   nothing (dpkg logs unchanged) and leaves every report's verdict as it was;
//! - `kubectl nodepatch patch-now --nodes` (a manual Install run with `spec.nodes`) patches
//!   exactly those nodes (the others' dpkg logs
//!   untouched); one naming a node outside the policy fails `NodesNotMembers`, touching none;
//! - the install's package changes (from → to) are in the node's report, through the
//!   confirming scan, and in the run's status; the finished run is logged as a JSON audit line
//!   and published as a `RunRecord` Event.
//!
//! One test function because the scenarios share one controller process.

mod support;

use std::time::Duration;

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use nodepatch::api::{
    ChangeResult, Compliance, MaintenanceWindow, PatchBaseline, PatchPolicy, PatchRun,
    REQUESTED_BY_ANNOTATION, RunPhase, RunPreviewSummary, SCHEDULE_REQUESTER,
};
use serde_json::json;
use support::fleet::{Env, debian_baseline, report, wait_run};

/// A baseline that approves nothing yet (every version is younger than 100 days here), so
/// every node is Compliant under it.
fn nothing_yet(name: &str) -> PatchBaseline {
    debian_baseline(
        name,
        json!({"approvalRules": [{"filters": [{"key": "Priority", "values": ["*"]}], "approveAfterDays": 100, "complianceLevel": "High"}]}),
    )
}

fn requested_by(run: &PatchRun) -> Option<String> {
    run.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REQUESTED_BY_ANNOTATION))
        .cloned()
}

/// A report's status without its preview, as JSON: what a preview must leave unchanged.
fn verdict_of(status: &nodepatch::api::NodePatchReportStatus) -> serde_json::Value {
    let mut value = serde_json::to_value(status).expect("status JSON");
    value.as_object_mut().expect("object").remove("preview");
    value
}

/// Run the real `kubectl-nodepatch` with the admin kubeconfig (not `$KUBECONFIG`).
fn plugin(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-nodepatch"))
        .arg("--kubeconfig")
        .arg(support::kubeconfig_path())
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run kubectl-nodepatch")
}

async fn wait_named(client: &kube::Client, name: &str, what: &str) -> PatchRun {
    let api: Api<PatchRun> = Api::all(client.clone());
    support::eventually(Duration::from_secs(180), what, || {
        let api = api.clone();
        async move {
            let run = api.get(name).await.ok()?;
            run.status
                .as_ref()
                .is_some_and(|s| s.phase.is_finished())
                .then_some(run)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn previews_node_subsets_and_history() {
    let Some((mut env, controller_kubeconfig)) = Env::start("e2e_history", "hi").await else {
        return;
    };
    let client = env.client.clone();
    let run_id = env.run_id.clone();
    let _controller = env.start_controller("controller-e2e-history", &controller_kubeconfig);
    let pp = PostParams::default();
    let baselines: Api<PatchBaseline> = Api::all(client.clone());
    let policies: Api<PatchPolicy> = Api::all(client.clone());
    let windows: Api<MaintenanceWindow> = Api::all(client.clone());
    let runs: Api<PatchRun> = Api::all(client.clone());
    let me = Api::<SelfSubjectReview>::all(client.clone())
        .create(&pp, &SelfSubjectReview::default())
        .await
        .expect("SelfSubjectReview")
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .expect("this test's username");

    let today = format!("e2e-history-today-{run_id}");
    let strict = format!("e2e-history-strict-{run_id}");
    baselines
        .create(&pp, &nothing_yet(&today))
        .await
        .expect("create baseline");
    let draft = debian_baseline(&strict, json!({}));
    baselines
        .create(&pp, &draft)
        .await
        .expect("create strict baseline");
    let later = format!("e2e-history-later-{run_id}");
    let mw: MaintenanceWindow = serde_json::from_value(json!({"metadata": {"name": later}, "spec": {"schedule": "cron(0 3 1 1 ? 2099)", "duration": "2h"}})).expect("mw");
    windows.create(&pp, &mw).await.expect("create window");

    let nodes = env.nodes("fleet", 3, true).await;
    let dpkg_log = |node: &str| {
        std::fs::read_to_string(env.root_of(node).path().join("var/log/dpkg.log"))
            .unwrap_or_default()
    };
    let policy = format!("e2e-history-{run_id}");
    policies
        .create(
            &pp,
            &env.policy(
                &policy,
                "fleet",
                json!({"baselineRefs": [today], "install": {"maintenanceWindowRefs": [later], "rebootOption": "NoReboot"}, "rollout": {"maxConcurrency": 3}}),
            ),
        )
        .await
        .expect("create policy");

    // The policy's first scan, started by the controller: requested by system:nodepatch.
    let scan = wait_run(
        &client,
        &policy,
        "Scan",
        "first scan",
        Some(RunPhase::Succeeded),
    )
    .await;
    assert_eq!(
        requested_by(&scan).as_deref(),
        Some(SCHEDULE_REQUESTER),
        "{:?}",
        scan.metadata.annotations
    );
    let mut before = Vec::new();
    for node in &nodes {
        let status = report(&client, node)
            .await
            .and_then(|r| r.status)
            .expect("report");
        assert_eq!(
            status.compliance,
            Compliance::Compliant,
            "{node}: {status:?}"
        );
        before.push(status);
    }
    let logs_before: Vec<String> = nodes.iter().map(|n| dpkg_log(n)).collect();

    // 1. Preview the strict baseline with `kubectl nodepatch preview` (the real plugin binary):
    //    every node would flip to NonCompliant, np-sec newly missing; nothing installed,
    //    verdicts untouched; the run's requester is this test's user.
    let draft_file =
        support::repo_root().join(format!(".local/log/e2e-{run_id}/draft-baseline.yaml"));
    std::fs::write(
        &draft_file,
        serde_json::to_string(&draft).expect("draft JSON"),
    )
    .expect("write the draft");
    let out = plugin(&[
        "preview",
        "-f",
        draft_file.to_str().expect("path"),
        "--policy",
        &policy,
        "-o",
        "json",
        "--timeout",
        "3m",
        "--fail-on-noncompliant",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "--fail-on-noncompliant: the draft leaves nodes non-compliant; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "preview -o json: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let preview_name = printed["runs"][0]["name"]
        .as_str()
        .expect("the preview run's name")
        .to_string();
    assert_eq!(printed["runs"][0]["phase"], "Succeeded", "{printed}");
    for node in &nodes {
        let row = printed["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|r| r["node"] == node.as_str())
            .unwrap_or_else(|| panic!("{node} in {printed}"));
        assert_eq!(
            (row["today"].as_str(), row["draft"].as_str()),
            (Some("Compliant"), Some("NonCompliant")),
            "{row}"
        );
        assert!(
            printed["newlyMissing"]
                .as_array()
                .expect("newlyMissing")
                .iter()
                .any(|p| p["node"] == node.as_str() && p["name"] == "np-sec"),
            "{node}: np-sec newly missing in {printed}"
        );
    }
    let created = runs.get(&preview_name).await.expect("the preview run");
    assert_eq!(
        requested_by(&created).as_deref(),
        Some(me.as_str()),
        "the admission policy stamps the requester"
    );
    let forged = runs
        .patch(
            &preview_name,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {REQUESTED_BY_ANNOTATION: "mallory"}}}),
            ),
        )
        .await;
    assert!(
        matches!(&forged, Err(kube::Error::Api(s)) if s.code == 403),
        "the requester cannot be changed: {forged:?}"
    );
    let done = wait_named(&client, &preview_name, "preview finished").await;
    let status = done.status.clone().expect("status");
    assert_eq!(status.phase, RunPhase::Succeeded, "{status:?}");
    let summary = status.preview.clone().expect("preview totals");
    assert_eq!(
        RunPreviewSummary {
            newly_missing: 0,
            ..summary.clone()
        },
        RunPreviewSummary {
            nodes: 3,
            compliant: 0,
            non_compliant: 3,
            would_become_non_compliant: 3,
            would_become_compliant: 0,
            newly_missing: 0,
            no_longer_missing: 0,
        },
        "{summary:?}"
    );
    let mut per_node_newly = 0;
    for (node, before) in nodes.iter().zip(&before) {
        let after = report(&client, node)
            .await
            .and_then(|r| r.status)
            .expect("report");
        let result = after.preview.clone().expect("preview result");
        assert_eq!(result.run, preview_name);
        assert_eq!(
            (result.current_compliance, result.compliance),
            (Compliance::Compliant, Compliance::NonCompliant),
            "{node}: {result:?}"
        );
        assert!(
            result.newly_missing.iter().any(|p| p.name == "np-sec"
                && p.installed_version.as_deref() == Some("1.0-1")
                && p.available_version.as_deref() == Some("1.0-1+deb12u1")),
            "{node}: {:?}",
            result.newly_missing
        );
        assert!(result.no_longer_missing.is_empty());
        per_node_newly += result.newly_missing_count;
        assert_eq!(
            verdict_of(&after),
            verdict_of(before),
            "{node}: the preview left the verdict as it was"
        );
    }
    assert_eq!(summary.newly_missing, per_node_newly);
    for (node, log) in nodes.iter().zip(&logs_before) {
        assert_eq!(&dpkg_log(node), log, "{node}: a preview installs nothing");
    }

    // 2. Apply the draft, then patch one node now. A subset naming a stranger fails first,
    //    touching nothing.
    policies
        .patch(
            &policy,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"baselineRefs": [strict]}})),
        )
        .await
        .expect("apply the draft");
    let scheduled: PatchRun = serde_json::from_value(json!({
        "metadata": {"name": format!("e2e-history-scheduled-subset-{run_id}")},
        "spec": {"policyRef": policy, "operation": "Install", "trigger": "Schedule", "nodes": [nodes[1]]},
    }))
    .expect("run");
    let refused = runs.create(&pp, &scheduled).await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(s)) if s.code == 422 && s.message.contains("spec.nodes")),
        "a scheduled run cannot carry a node subset: {refused:?}"
    );
    let stranger = format!("e2e-history-stranger-{run_id}");
    // Created directly (the plugin refuses a non-member before creating anything), with a
    // forged requester that the admission policy overwrites.
    let bad: PatchRun = serde_json::from_value(json!({
        "metadata": {"name": stranger, "annotations": {REQUESTED_BY_ANNOTATION: "mallory"}},
        "spec": {"policyRef": policy, "operation": "Install", "nodes": [nodes[1], "e2e-not-a-member"]},
    }))
    .expect("run");
    let created = runs.create(&pp, &bad).await.expect("create run");
    assert_eq!(
        requested_by(&created).as_deref(),
        Some(me.as_str()),
        "forgery overwritten"
    );
    let failed = wait_named(&client, &stranger, "subset with a stranger finished").await;
    let status = failed.status.clone().expect("status");
    assert_eq!(status.phase, RunPhase::Failed, "{status:?}");
    let ready = nodepatch::api::conditions::find(&status.conditions, "Ready").expect("Ready");
    assert_eq!(ready.reason, "NodesNotMembers", "{ready:?}");
    assert!(
        ready.message.contains("e2e-not-a-member"),
        "{}",
        ready.message
    );
    assert!(status.targets.is_empty());

    // `kubectl nodepatch patch-now POLICY --nodes N --wait` patches exactly that node.
    let out = plugin(&[
        "patch-now",
        &policy,
        "--nodes",
        &nodes[1],
        "--wait",
        "--timeout",
        "3m",
    ]);
    assert!(
        out.status.success(),
        "patch-now: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let now_name = runs
        .list(&ListParams::default())
        .await
        .expect("runs")
        .items
        .into_iter()
        .find(|r| {
            r.spec.policy_ref == policy
                && r.spec.operation.as_str() == "Install"
                && r.spec.nodes == [nodes[1].clone()]
                && r.status
                    .as_ref()
                    .is_some_and(|s| s.phase == RunPhase::Succeeded)
        })
        .map(|r| r.metadata.name.expect("name"))
        .expect("the patch-now run");
    let done = wait_named(&client, &now_name, "patch-now finished").await;
    let status = done.status.clone().expect("status");
    assert_eq!(status.phase, RunPhase::Succeeded, "{status:?}");
    assert_eq!(
        status
            .targets
            .iter()
            .map(|t| t.node.as_str())
            .collect::<Vec<_>>(),
        [nodes[1].as_str()]
    );
    assert_eq!(requested_by(&done).as_deref(), Some(me.as_str()));
    for (i, (node, log)) in nodes.iter().zip(&logs_before).enumerate() {
        if i == 1 {
            assert_ne!(&dpkg_log(node), log, "{node} was patched");
            assert_eq!(
                env.root_of(node).installed_version("np-sec").as_deref(),
                Some("1.0-1+deb12u1")
            );
        } else {
            assert_eq!(&dpkg_log(node), log, "{node}: not in the subset, untouched");
        }
    }

    // 3. History: the package changes in the report and the run, the audit line, the Event.
    let np_sec = |changes: &[nodepatch::api::PackageChange]| {
        changes
            .iter()
            .find(|c| c.name == "np-sec")
            .map(|c| (c.from_version.clone(), c.to_version.clone(), c.result))
    };
    let expected = Some((
        Some("1.0-1".to_string()),
        Some("1.0-1+deb12u1".to_string()),
        ChangeResult::Installed,
    ));
    let op = report(&client, &nodes[1])
        .await
        .and_then(|r| r.status)
        .and_then(|s| s.operation)
        .expect("operation");
    assert_eq!(op.run, now_name);
    assert_eq!(np_sec(&op.changes), expected, "{:?}", op.changes);
    assert_eq!(status.changes.len(), 1, "{:?}", status.changes);
    assert_eq!(status.changes[0].node, nodes[1]);
    assert_eq!(np_sec(&status.changes[0].changes), expected);

    let log_path = support::repo_root().join(".local/log/controller-e2e-history.log");
    support::eventually_true(Duration::from_secs(30), "audit line logged", || {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let needle = format!("\"run\":\"{now_name}\"");
        async move {
            text.lines()
                .any(|l| l.contains("nodepatch::audit") && l.contains(&needle))
        }
    })
    .await;
    let events: Api<Event> = Api::all(client.clone());
    let record = support::eventually(Duration::from_secs(30), "RunRecord Event", || {
        let events = events.clone();
        let now_name = now_name.clone();
        async move {
            let list = events
                .list(&ListParams::default().fields(&format!("regarding.name={now_name}")))
                .await
                .ok()?;
            list.items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("RunRecord"))
        }
    })
    .await;
    let note: serde_json::Value =
        serde_json::from_str(record.note.as_deref().unwrap_or("")).expect("JSON note");
    assert_eq!(note["run"], now_name.as_str());
    assert_eq!(note["requestedBy"], me.as_str());
    assert_eq!(note["phase"], "Succeeded");
    assert_eq!(note["changes"][0]["node"], nodes[1].as_str());
}
