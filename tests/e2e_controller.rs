//! End to end on the real control plane: kwok nodes, the scheduler placing run DaemonSet pods,
//! the pod runner starting the real `nodepatch agent` for each pod on that node's
//! debootstrapped root, and the real `nodepatch controller`.
//!
//! One test function runs the scenarios in sequence because they share one controller process
//! (two controllers would both act on every object).

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::{Timestamp, tz::TimeZone};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use nodepatch::api::{
    Compliance, MaintenanceWindow, PatchBaseline, PatchPolicy, PatchRun, RunPhase,
};
use serde_json::json;
use support::fleet::{Env, debian_baseline, labelled_nodes, report, wait_run};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn controller_scans_patches_halts_resolves_conflicts_and_cleans_up() {
    let Some((mut env, controller_kubeconfig)) = Env::start("e2e_controller", "").await else {
        return;
    };
    let client = env.client.clone();
    let run_id = env.run_id.clone();
    let kubeconfig_text =
        std::fs::read_to_string(&controller_kubeconfig).expect("controller kubeconfig");
    assert!(
        !kubeconfig_text.contains(
            &std::fs::read_to_string(support::kubeconfig_path())
                .expect("admin")
                .lines()
                .find_map(|l| l.trim().strip_prefix("token: "))
                .expect("admin token")
                .to_string()
        ),
        "no admin token in the controller's kubeconfig"
    );
    let _controller = env.start_controller("controller-e2e", &controller_kubeconfig);
    let pp = PostParams::default();
    let baselines: Api<PatchBaseline> = Api::all(client.clone());
    let policies: Api<PatchPolicy> = Api::all(client.clone());
    let windows: Api<MaintenanceWindow> = Api::all(client.clone());
    let runs: Api<PatchRun> = Api::all(client.clone());
    let baseline_name = format!("e2e-debian-{run_id}");
    baselines
        .create(&pp, &debian_baseline(&baseline_name, json!({})))
        .await
        .expect("create baseline");

    // 1. A scan-only policy over 3 nodes: 3 reports, counts right, run Succeeded.
    let scan_nodes = env.nodes("scan", 3, true).await;
    let scan_policy = format!("e2e-scan-{run_id}");
    policies
        .create(
            &pp,
            &env.policy(
                &scan_policy,
                "scan",
                json!({"baselineRefs": [baseline_name], "rollout": {"maxConcurrency": "100%"}}),
            ),
        )
        .await
        .expect("create scan policy");
    let run = wait_run(
        &client,
        &scan_policy,
        "Scan",
        "scan run Succeeded",
        Some(RunPhase::Succeeded),
    )
    .await;
    let status = run.status.expect("run status");
    assert_eq!((status.nodes.total, status.nodes.succeeded), (3, 3));
    for node in &scan_nodes {
        let r = report(&client, node)
            .await
            .expect("report")
            .status
            .expect("report status");
        assert_eq!(
            r.compliance,
            Compliance::NonCompliant,
            "{node}: security updates are missing"
        );
        assert_eq!(
            r.baseline.as_ref().map(|b| b.name.as_str()),
            Some(baseline_name.as_str())
        );
    }
    let pol = support::eventually(Duration::from_secs(30), "scan policy roll-up", || {
        let policies = policies.clone();
        let name = scan_policy.clone();
        async move {
            let s = policies.get(&name).await.ok()?.status?;
            (s.nodes.total == 3 && s.nodes.non_compliant == 3 && s.active_run.is_none())
                .then_some(s)
        }
    })
    .await;
    assert!(
        pol.missing_by_severity.high >= 3,
        "missing patches rolled up: {:?}",
        pol.missing_by_severity
    );
    assert!(pol.last_scan_time.is_some());
    // The run's clean-up (unlabel, delete the DaemonSet) follows its Succeeded status.
    support::eventually_true(Duration::from_secs(30), "no node left labelled", || async {
        labelled_nodes(&client, &run_id).await.is_empty()
    })
    .await;
    let ds: Api<DaemonSet> = Api::namespaced(client.clone(), &env.namespace);
    support::eventually_true(Duration::from_secs(30), "run DaemonSet deleted", || async {
        ds.list(&ListParams::default())
            .await
            .is_ok_and(|l| l.items.is_empty())
    })
    .await;
    policies
        .delete(&scan_policy, &DeleteParams::default())
        .await
        .expect("delete scan policy");

    // 2. Install in a window opening during the test, one node at a time, all Compliant after.
    let install_nodes = env.nodes("install", 3, true).await;
    let window = format!("e2e-window-{run_id}");
    let start = Timestamp::from_second(Timestamp::now().as_second() + 15).expect("start");
    let at = format!(
        "at({})",
        start.to_zoned(TimeZone::UTC).strftime("%Y-%m-%dT%H:%M:%S")
    );
    let mw: MaintenanceWindow = serde_json::from_value(
        json!({"metadata": {"name": window}, "spec": {"schedule": at, "duration": "1h"}}),
    )
    .expect("mw");
    windows.create(&pp, &mw).await.expect("create window");
    let install_policy = format!("e2e-install-{run_id}");
    policies
        .create(
            &pp,
            &env.policy(&install_policy, "install", json!({"baselineRefs": [baseline_name], "install": {"maintenanceWindowRefs": [window], "rebootOption": "NoReboot"}})),
        )
        .await
        .expect("create install policy");
    let run = wait_run(
        &client,
        &install_policy,
        "Install",
        "install run Succeeded",
        Some(RunPhase::Succeeded),
    )
    .await;
    let run_status = run.status.clone().expect("status");
    assert!(
        run_status.start_time.as_ref().is_some_and(|t| t.0 >= start),
        "the install waited for the window"
    );
    assert_eq!(run_status.nodes.succeeded, 3);
    let install_spans: Vec<_> = env
        .runner
        .spans()
        .into_iter()
        .filter(|s| s.args.contains(&"Install".to_string()) && install_nodes.contains(&s.node))
        .collect();
    assert_eq!(
        install_spans.len(),
        3,
        "one agent per node: {install_spans:?}"
    );
    for (i, a) in install_spans.iter().enumerate() {
        for b in install_spans.iter().skip(i + 1) {
            let a_end = a.stopped.expect("agent stopped");
            assert!(
                a_end <= b.started || b.stopped.expect("agent stopped") <= a.started,
                "{} and {} overlapped",
                a.node,
                b.node
            );
        }
    }
    for node in &install_nodes {
        let r = report(&client, node)
            .await
            .expect("report")
            .status
            .expect("status");
        assert_eq!(
            r.compliance,
            Compliance::Compliant,
            "{node} after install: {:?}",
            r.patches
        );
        let root = env.root_of(node);
        assert_eq!(
            root.installed_version("np-sec").as_deref(),
            Some("1.0-1+deb12u1"),
            "security update installed"
        );
        assert_eq!(
            root.installed_version("np-reboot").as_deref(),
            Some("1.0-1"),
            "rejected package untouched"
        );
        assert_eq!(
            root.installed_version("np-bugfix").as_deref(),
            Some("1.0-1"),
            "non-security update not approved"
        );
    }
    policies
        .delete(&install_policy, &DeleteParams::default())
        .await
        .expect("delete install policy");

    // A window far in the future: policies that must only run when told to.
    let later = format!("e2e-later-{run_id}");
    let mw: MaintenanceWindow = serde_json::from_value(json!({"metadata": {"name": later}, "spec": {"schedule": "cron(0 3 1 1 ? 2099)", "duration": "2h"}})).expect("mw");
    windows.create(&pp, &mw).await.expect("create later window");

    // 3. maxErrors 0 and a failing install: Halted, remaining nodes untouched.
    let halt_nodes = env.nodes("halt", 3, true).await;
    let failing = format!("e2e-debian-fail-{run_id}");
    baselines
        .create(
            &pp,
            &debian_baseline(
                &failing,
                json!({"approvedPatches": ["np-fail"], "approvedPatchesEnableNonSecurity": true}),
            ),
        )
        .await
        .expect("create failing baseline");
    let halt_policy = format!("e2e-halt-{run_id}");
    policies
        .create(&pp, &env.policy(&halt_policy, "halt", json!({"baselineRefs": [failing], "install": {"maintenanceWindowRefs": [later], "rebootOption": "NoReboot"}})))
        .await
        .expect("create halt policy");
    let manual = format!("e2e-halt-now-{run_id}");
    let manual_run: PatchRun = serde_json::from_value(json!({"metadata": {"name": manual}, "spec": {"policyRef": halt_policy, "operation": "Install", "trigger": "Manual"}})).expect("run");
    runs.create(&pp, &manual_run)
        .await
        .expect("create manual run");
    let halted = wait_run(
        &client,
        &halt_policy,
        "Install",
        "install run Halted",
        Some(RunPhase::Halted),
    )
    .await;
    let hs = halted.status.expect("status");
    assert_eq!(
        (hs.nodes.failed, hs.nodes.pending, hs.nodes.succeeded),
        (1, 2, 0),
        "{hs:?}"
    );
    let failed_node = &hs.failed_nodes[0].node;
    for node in halt_nodes.iter().filter(|n| *n != failed_node) {
        assert_eq!(
            env.root_of(node).installed_version("np-sec").as_deref(),
            Some("1.0-1"),
            "{node} untouched"
        );
    }
    policies
        .delete(&halt_policy, &DeleteParams::default())
        .await
        .expect("delete halt policy");

    // 4. Two policies selecting one node: a conflict on both, the node untouched.
    let conflict_nodes = env.nodes("conflict", 1, false).await;
    let (pa, pb) = (
        format!("e2e-conflict-a-{run_id}"),
        format!("e2e-conflict-b-{run_id}"),
    );
    policies
        .create(&pp, &env.policy(&pa, "conflict", json!({})))
        .await
        .expect("policy a");
    policies
        .create(&pp, &env.policy(&pb, "conflict", json!({})))
        .await
        .expect("policy b");
    for (me, other) in [(&pa, &pb), (&pb, &pa)] {
        let s = support::eventually(Duration::from_secs(30), "conflict reported", || {
            let policies = policies.clone();
            let me = me.clone();
            async move {
                policies
                    .get(&me)
                    .await
                    .ok()?
                    .status
                    .filter(|s| !s.conflicts.is_empty())
            }
        })
        .await;
        assert_eq!(s.conflicts[0].node, conflict_nodes[0]);
        assert_eq!(&s.conflicts[0].other_policy, other);
        assert_eq!(s.nodes.total, 0, "the conflicting node is not a member");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        report(&client, &conflict_nodes[0]).await.is_none(),
        "conflicting node never scanned"
    );
    assert!(
        !labelled_nodes(&client, &run_id)
            .await
            .contains(&conflict_nodes[0])
    );
    for p in [&pa, &pb] {
        policies
            .delete(p, &DeleteParams::default())
            .await
            .expect("delete conflict policy");
    }

    // 5. A manual PatchRun installs outside any window.
    let manual_nodes = env.nodes("manual", 1, true).await;
    let manual_policy = format!("e2e-manual-{run_id}");
    policies
        .create(&pp, &env.policy(&manual_policy, "manual", json!({"baselineRefs": [baseline_name], "install": {"maintenanceWindowRefs": [later], "rebootOption": "NoReboot"}})))
        .await
        .expect("create manual policy");
    let now_run = format!("e2e-patch-now-{run_id}");
    let run: PatchRun = serde_json::from_value(json!({"metadata": {"name": now_run}, "spec": {"policyRef": manual_policy, "operation": "Install"}})).expect("run");
    runs.create(&pp, &run).await.expect("create patch-now run");
    wait_run(
        &client,
        &manual_policy,
        "Install",
        "manual run Succeeded",
        Some(RunPhase::Succeeded),
    )
    .await;
    assert_eq!(
        env.root_of(&manual_nodes[0])
            .installed_version("np-sec")
            .as_deref(),
        Some("1.0-1+deb12u1")
    );
    policies
        .delete(&manual_policy, &DeleteParams::default())
        .await
        .expect("delete manual policy");

    // 6. Deleting a policy mid-run: labels and DaemonSet gone, no node left labelled.
    let stuck_nodes = env.nodes("delete", 2, false).await;
    let delete_policy = format!("e2e-delete-{run_id}");
    policies
        .create(
            &pp,
            &env.policy(
                &delete_policy,
                "delete",
                json!({"baselineRefs": [baseline_name]}),
            ),
        )
        .await
        .expect("create delete policy");
    support::eventually(
        Duration::from_secs(60),
        "a node labelled into the stuck run",
        || {
            let client = client.clone();
            let run_id = run_id.clone();
            let stuck = stuck_nodes.clone();
            async move {
                labelled_nodes(&client, &run_id)
                    .await
                    .iter()
                    .any(|n| stuck.contains(n))
                    .then_some(())
            }
        },
    )
    .await;
    support::eventually_true(
        Duration::from_secs(30),
        "run DaemonSet exists mid-run",
        || async {
            ds.list(&ListParams::default())
                .await
                .is_ok_and(|l| !l.items.is_empty())
        },
    )
    .await;
    policies
        .delete(&delete_policy, &DeleteParams::default())
        .await
        .expect("delete policy mid-run");
    support::eventually(
        Duration::from_secs(60),
        "labels and DaemonSets gone",
        || {
            let client = client.clone();
            let run_id = run_id.clone();
            let ds = ds.clone();
            async move {
                let labelled = labelled_nodes(&client, &run_id).await;
                let sets = ds.list(&ListParams::default()).await.ok()?.items;
                (labelled.is_empty() && sets.is_empty()).then_some(())
            }
        },
    )
    .await;

    // Clean up this test's cluster objects.
    let nodes: Api<Node> = Api::all(client.clone());
    let _ = nodes
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels(&format!("e2e.nodepatch.dev/run={run_id}")),
        )
        .await;
    for b in [&baseline_name, &failing] {
        let _ = baselines.delete(b, &DeleteParams::default()).await;
    }
    for w in [&window, &later] {
        let _ = windows.delete(w, &DeleteParams::default()).await;
    }
}
