//! Install hooks end to end on the real control plane: kwok nodes, the scheduler placing run
//! DaemonSet pods, the pod runner starting the real `nodepatch agent` for each pod on that
//! node's debootstrapped root (hooks and apt run through `chroot` into it), and the real
//! `nodepatch controller`.
//!
//! - a failing preInstall fails its node with HookFailed (the hook's output in the run), counts
//!   toward maxErrors (the run halts, the next node is never started) and nothing is installed
//!   (the root's dpkg log is unchanged);
//! - a preInstall that runs past its timeout fails the node with HookTimeout;
//! - a preInstall/postInstall pair writes its markers into the root in order, with the install
//!   between them (the pre-hook sees the old version, the post-hook the new one);
//! - a failing postInstall fails the node, the package stays installed, and the node is not
//!   rebooted although its update asked for a reboot;
//! - admission rejects a hook without a command and a timeout past 1h.
//!
//! One test function because the scenarios share one controller process.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, PostParams};
use nodepatch::api::{
    MaintenanceWindow, OperationPhase, PatchBaseline, PatchPolicy, PatchRun, RunPhase, TargetState,
};
use serde_json::json;
use support::fleet::{Env, debian_baseline, report, wait_run};

/// What the pair's hooks append to the root's marker file: the stage and np-sec's version.
const MARK: &str = "echo \"$NODEPATCH_HOOK $NODEPATCH_RUN $(dpkg-query -W -f='${Version}' np-sec)\" >> /var/log/np-hooks.log";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn install_hooks_run_around_the_install_and_fail_their_node() {
    let Some((mut env, controller_kubeconfig)) = Env::start("e2e_hooks", "h").await else {
        return;
    };
    let client = env.client.clone();
    let run_id = env.run_id.clone();
    let _controller = env.start_controller("controller-e2e-hooks", &controller_kubeconfig);
    let pp = PostParams::default();
    let baselines: Api<PatchBaseline> = Api::all(client.clone());
    let policies: Api<PatchPolicy> = Api::all(client.clone());
    let windows: Api<MaintenanceWindow> = Api::all(client.clone());
    let runs: Api<PatchRun> = Api::all(client.clone());
    let raw_policies: Api<DynamicObject> =
        Api::all_with(client.clone(), &ApiResource::erase::<PatchPolicy>(&()));

    // Security updates only (np-sec, np-arch); a second baseline also lets np-reboot (its
    // postinst asks for a reboot) in.
    let security = format!("e2e-hooks-sec-{run_id}");
    let with_reboot = format!("e2e-hooks-reboot-{run_id}");
    baselines
        .create(&pp, &debian_baseline(&security, json!({})))
        .await
        .expect("create baseline");
    baselines
        .create(
            &pp,
            &debian_baseline(&with_reboot, json!({"rejectedPatches": []})),
        )
        .await
        .expect("create reboot baseline");
    // Runs are started by hand ("patch now"); the window only makes the policies valid.
    let later = format!("e2e-hooks-later-{run_id}");
    let mw: MaintenanceWindow = serde_json::from_value(json!({"metadata": {"name": later}, "spec": {"schedule": "cron(0 3 1 1 ? 2099)", "duration": "2h"}})).expect("mw");
    windows.create(&pp, &mw).await.expect("create window");

    // Admission: a hook needs a command, and its timeout is bounded.
    for (hook, why) in [
        (json!({"command": []}), "empty command"),
        (json!({"args": ["x"]}), "no command"),
        (
            json!({"command": ["true"], "timeout": "2h"}),
            "timeout past 1h",
        ),
        (
            json!({"command": ["true"], "timeout": "500ms"}),
            "timeout under 1s",
        ),
    ] {
        // Raw JSON: the typed PatchPolicy cannot even express some of these.
        let bad: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "nodepatch.dev/v1alpha1", "kind": "PatchPolicy",
            "metadata": {"name": format!("e2e-hooks-bad-{run_id}")},
            "spec": {"nodeSelector": {}, "install": {"maintenanceWindowRefs": [later], "preInstall": hook}},
        }))
        .expect("object");
        match raw_policies.create(&pp, &bad).await {
            Err(kube::Error::Api(e)) => assert_eq!(e.code, 422, "{why}: {e:?}"),
            other => panic!("{why}: admitted: {other:?}"),
        }
    }

    let groups = ["prefail", "timeout", "pair", "postfail"];
    let mut nodes = std::collections::BTreeMap::new();
    for (group, count) in [("prefail", 2), ("timeout", 1), ("pair", 1), ("postfail", 1)] {
        nodes.insert(group, env.nodes(group, count, true).await);
    }
    let dpkg_log = |node: &str| {
        std::fs::read_to_string(env.root_of(node).path().join("var/log/dpkg.log"))
            .unwrap_or_default()
    };
    let prefail_logs: Vec<String> = nodes["prefail"].iter().map(|n| dpkg_log(n)).collect();

    let install = |extra: serde_json::Value| {
        let mut install =
            json!({"maintenanceWindowRefs": [later], "rebootOption": "RebootIfNeeded"});
        support::fleet::merge(&mut install, extra);
        install
    };
    let specs = [
        (
            "prefail",
            &security,
            install(json!({"preInstall": {
                "command": ["sh", "-c", "echo checking the app; echo 'app not ready to patch' >&2; exit 7"],
            }})),
        ),
        (
            "timeout",
            &security,
            install(
                json!({"preInstall": {"command": ["sleep"], "args": ["300"], "timeout": "2s"}}),
            ),
        ),
        (
            "pair",
            &security,
            install(json!({
                "preInstall": {"command": ["sh", "-c", MARK]},
                "postInstall": {"command": ["sh", "-c"], "args": [MARK], "timeout": "30s"},
            })),
        ),
        (
            "postfail",
            &with_reboot,
            install(json!({"postInstall": {
                "command": ["sh", "-c", "echo 'cannot restart the app' >&2; exit 1"],
            }})),
        ),
    ];
    for (group, baseline, install) in &specs {
        let policy = format!("e2e-hooks-{group}-{run_id}");
        policies
            .create(
                &pp,
                &env.policy(
                    &policy,
                    group,
                    json!({"baselineRefs": [baseline], "install": install}),
                ),
            )
            .await
            .expect("create policy");
        let run: PatchRun = serde_json::from_value(json!({"metadata": {"name": format!("e2e-hooks-{group}-now-{run_id}")}, "spec": {"policyRef": policy, "operation": "Install"}})).expect("run");
        runs.create(&pp, &run).await.expect("create run");
    }
    let finished = |group: &str| {
        let policy = format!("e2e-hooks-{group}-{run_id}");
        let client = client.clone();
        let what = format!("{group} run finished");
        async move { wait_run(&client, &policy, "Install", &what, None).await }
    };

    // A failing pre-hook: HookFailed with its output, nothing installed, the run halted
    // (maxErrors 0) before the second node.
    let run = finished("prefail").await;
    let status = run.status.expect("status");
    assert_eq!(status.phase, RunPhase::Halted, "{status:?}");
    assert_eq!(
        (status.nodes.failed, status.nodes.pending),
        (1, 1),
        "{status:?}"
    );
    let hooks = status.hooks.as_ref().expect("hooks fixed in the run");
    assert_eq!(
        hooks.pre_install.as_ref().map(|h| h.timeout.as_str()),
        Some("10m"),
        "the default timeout"
    );
    let failed = &status.failed_nodes[0];
    assert_eq!(failed.reason, "HookFailed", "{failed:?}");
    assert!(
        failed
            .message
            .starts_with("nothing was installed: preInstall hook")
            && failed.message.contains("(exit code 7)")
            && failed
                .message
                .ends_with("last output:\nchecking the app\napp not ready to patch"),
        "{}",
        failed.message
    );
    let target = status
        .targets
        .iter()
        .find(|t| t.node == failed.node)
        .expect("target");
    assert_eq!(
        (target.state, target.reason.as_deref()),
        (TargetState::Failed, Some("HookFailed"))
    );
    assert_eq!(target.message.as_deref(), Some(failed.message.as_str()));
    for (node, before) in nodes["prefail"].iter().zip(&prefail_logs) {
        assert_eq!(&dpkg_log(node), before, "{node}: dpkg did nothing");
        assert_eq!(
            env.root_of(node).installed_version("np-sec").as_deref(),
            Some("1.0-1")
        );
    }
    let r = report(&client, &failed.node)
        .await
        .and_then(|r| r.status)
        .expect("report");
    let op = r.operation.as_ref().expect("operation");
    assert_eq!(op.phase, OperationPhase::Failed);
    let ready = nodepatch::api::conditions::find(&r.conditions, "Ready").expect("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "HookFailed")
    );

    // A pre-hook past its timeout: HookTimeout, nothing installed.
    let run = finished("timeout").await;
    let status = run.status.expect("status");
    let failed = status.failed_nodes.first().expect("failed node");
    assert_eq!(failed.reason, "HookTimeout", "{failed:?}");
    assert!(
        failed.message.contains("timed out after 2s"),
        "{}",
        failed.message
    );
    assert_eq!(
        env.root_of(&nodes["timeout"][0])
            .installed_version("np-sec")
            .as_deref(),
        Some("1.0-1")
    );

    // A succeeding pair: markers in order, the install between them.
    let run = finished("pair").await;
    let status = run.status.expect("status");
    assert_eq!(status.phase, RunPhase::Succeeded, "{status:?}");
    let pair = &nodes["pair"][0];
    let run_name = format!("e2e-hooks-pair-now-{run_id}");
    assert_eq!(
        std::fs::read_to_string(env.root_of(pair).path().join("var/log/np-hooks.log"))
            .expect("hook markers"),
        format!("preInstall {run_name} 1.0-1\npostInstall {run_name} 1.0-1+deb12u1\n")
    );
    assert_eq!(
        env.root_of(pair).installed_version("np-sec").as_deref(),
        Some("1.0-1+deb12u1")
    );

    // A failing post-hook: the node fails, the install stands, and no reboot follows although
    // np-reboot asked for one.
    let run = finished("postfail").await;
    let status = run.status.expect("status");
    let post = &nodes["postfail"][0];
    let failed = status.failed_nodes.first().expect("failed node");
    assert_eq!(
        (failed.node.as_str(), failed.reason.as_str()),
        (post.as_str(), "HookFailed"),
        "{status:?}"
    );
    assert!(
        failed.message.starts_with("postInstall hook")
            && failed.message.contains("cannot restart the app")
            && failed
                .message
                .contains("the install is not undone: installed"),
        "{}",
        failed.message
    );
    let root = env.root_of(post);
    assert_eq!(
        root.installed_version("np-sec").as_deref(),
        Some("1.0-1+deb12u1")
    );
    assert_eq!(
        root.installed_version("np-reboot").as_deref(),
        Some("1.0-1+deb12u1")
    );
    let r = report(&client, post)
        .await
        .and_then(|r| r.status)
        .expect("report");
    assert!(r.reboot_required, "the update asked for a reboot");
    let target = status
        .targets
        .iter()
        .find(|t| &t.node == post)
        .expect("target");
    assert!(!target.cordoned && target.boot_id.is_none(), "{target:?}");
    // Give a (wrong) reboot request time to show.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        env.runner.reboots().iter().all(|r| &r.node != post),
        "no reboot after a failed post-hook"
    );
    assert!(
        !root.path().join(support::podrunner::REBOOT_MARKER).exists(),
        "the agent never ran its reboot command"
    );
    let node = Api::<Node>::all(client.clone())
        .get(post)
        .await
        .expect("node");
    assert_ne!(
        node.spec.and_then(|s| s.unschedulable),
        Some(true),
        "never cordoned"
    );

    // Clean up this test's cluster objects (the runs while the controller, which holds their
    // finalizer, still runs).
    for group in groups {
        let _ = runs
            .delete(
                &format!("e2e-hooks-{group}-now-{run_id}"),
                &DeleteParams::default(),
            )
            .await;
    }
    support::eventually_true(
        Duration::from_secs(60),
        "the manual runs deleted",
        || async {
            runs.list(&ListParams::default()).await.is_ok_and(|l| {
                !l.items.iter().any(|r| {
                    r.metadata.name.as_deref().is_some_and(|n| {
                        n.starts_with("e2e-hooks-") && n.ends_with(run_id.as_str())
                    })
                })
            })
        },
    )
    .await;
    for group in groups {
        let _ = policies
            .delete(
                &format!("e2e-hooks-{group}-{run_id}"),
                &DeleteParams::default(),
            )
            .await;
    }
    let _ = Api::<Node>::all(client.clone())
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels(&format!("e2e.nodepatch.dev/run={run_id}")),
        )
        .await;
    for b in [&security, &with_reboot] {
        let _ = baselines.delete(b, &DeleteParams::default()).await;
    }
    let _ = windows.delete(&later, &DeleteParams::default()).await;
}
