//! A baseline's alternative patch sources end to end on the real control plane: a PatchBaseline
//! whose `sources` point at a mirror the node's root has not configured (its apt sources offer
//! only `bookworm`), a scan run whose real agent reports the mirror's versions, a manual install
//! run that installs from the mirror, and the node's own apt sources and lists unchanged.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use kube::api::{Api, DeleteParams, PostParams};
use nodepatch::api::{
    Compliance, MaintenanceWindow, PatchBaseline, PatchPolicy, PatchRun, PatchState, RunPhase,
};
use serde_json::json;
use support::fleet::{Env, debian_baseline, report, wait_run};
use support::roots::{run, standard_repo};

const MIRROR: &str = "deb [trusted=yes] file:/srv/mirror bookworm-security main\ndeb [trusted=yes] file:/srv/mirror bookworm-updates main\n";

/// Every file (path → bytes) under the root's apt sources and lists.
fn apt_state(root: &Path) -> BTreeMap<String, Vec<u8>> {
    support::files_under(
        root,
        &[
            "etc/apt/sources.list",
            "etc/apt/sources.list.d",
            "var/lib/apt/lists",
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runs_scan_and_install_from_the_baseline_sources_not_the_node_repositories() {
    let Some((mut env, controller_kubeconfig)) = Env::start("e2e_sources", "src").await else {
        return;
    };
    let client = env.client.clone();
    let run_id = env.run_id.clone();
    let _controller = env.start_controller("controller-sources", &controller_kubeconfig);
    let pp = PostParams::default();
    let baselines: Api<PatchBaseline> = Api::all(client.clone());
    let policies: Api<PatchPolicy> = Api::all(client.clone());
    let windows: Api<MaintenanceWindow> = Api::all(client.clone());
    let runs: Api<PatchRun> = Api::all(client.clone());

    // The node's root: only `bookworm` configured (v1 of everything), the mirror copied to
    // /srv/mirror but not configured.
    let nodes = env.nodes("sources", 1, true).await;
    let node = nodes[0].clone();
    let root = env.root_of(&node);
    root.set_sources(&["bookworm"]);
    root.apt_get(&["update"]);
    run(std::process::Command::new("cp")
        .arg("-a")
        .arg(standard_repo())
        .arg(root.path().join("srv/mirror")));
    let before = apt_state(root.path());

    let baseline = format!("src-debian-{run_id}");
    baselines
        .create(
            &pp,
            &debian_baseline(
                &baseline,
                json!({"sources": [{"name": "mirror", "products": ["Debian12"], "configuration": MIRROR}]}),
            ),
        )
        .await
        .expect("create baseline with sources");
    let later = format!("src-later-{run_id}");
    let mw: MaintenanceWindow = serde_json::from_value(json!({"metadata": {"name": later}, "spec": {"schedule": "cron(0 3 1 1 ? 2099)", "duration": "2h"}})).expect("mw");
    windows.create(&pp, &mw).await.expect("create window");
    let policy = format!("src-policy-{run_id}");
    policies
        .create(
            &pp,
            &env.policy(
                &policy,
                "sources",
                json!({"baselineRefs": [baseline], "install": {"maintenanceWindowRefs": [later], "rebootOption": "NoReboot"}}),
            ),
        )
        .await
        .expect("create policy");

    // The policy's first scan: the agent reads the mirror, not the node's repositories.
    wait_run(
        &client,
        &policy,
        "Scan",
        "scan run Succeeded",
        Some(RunPhase::Succeeded),
    )
    .await;
    let scanned = report(&client, &node).await.expect("report");
    let status = scanned.status.expect("report status");
    let message = status
        .operation
        .as_ref()
        .and_then(|o| o.message.clone())
        .unwrap_or_default();
    assert_eq!(status.compliance, Compliance::NonCompliant, "{message}");
    assert!(
        message.contains("used the baseline's patch sources mirror"),
        "{message}"
    );
    let sec = status
        .patches
        .iter()
        .find(|p| p.name == "np-sec")
        .expect("np-sec reported");
    assert_eq!(sec.state, PatchState::Missing);
    assert_eq!(sec.available_version.as_deref(), Some("1.0-1+deb12u1"));

    // "Patch now": the install takes the mirror's version.
    let now_run = format!("src-patch-now-{run_id}");
    let manual: PatchRun = serde_json::from_value(
        json!({"metadata": {"name": now_run}, "spec": {"policyRef": policy, "operation": "Install"}}),
    )
    .expect("run");
    runs.create(&pp, &manual).await.expect("create install run");
    wait_run(
        &client,
        &policy,
        "Install",
        "install run Succeeded",
        Some(RunPhase::Succeeded),
    )
    .await;
    let root = env.root_of(&node);
    assert_eq!(
        root.installed_version("np-sec").as_deref(),
        Some("1.0-1+deb12u1")
    );
    assert_eq!(
        apt_state(root.path()),
        before,
        "the node's apt sources and lists are untouched"
    );
    policies
        .delete(&policy, &DeleteParams::default())
        .await
        .expect("delete policy");
}
