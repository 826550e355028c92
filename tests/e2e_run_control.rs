//! What users ask of runs, end to end on the real control plane with real agents on
//! debootstrapped roots: suspending a policy pauses its active run and resuming continues it,
//! canceling a run ends it `Canceled` (who and why recorded by the chart's admission policies),
//! a node that opts out mid-run is skipped, manual runs are owned by their policy (deleting the
//! policy deletes them), and nodes nodepatch does not patch (immutable OS, Windows, end of life)
//! get a NotApplicable report and are never labelled.
//!
//! One test function, one controller process: the scenarios run in sequence.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use nodepatch::api::{
    CANCELED_BY_ANNOTATION, Compliance, PatchBaseline, PatchPolicy, PatchRun, RunPhase,
    TargetState, conditions,
};
use serde_json::json;
use support::fleet::{Env, debian_baseline, labelled_nodes, report};

/// Soak between waves: the gap in which the test acts on a run whose first node is done.
const SOAK: &str = "12s";

fn manual_run(name: &str, policy: &str) -> PatchRun {
    serde_json::from_value(json!({
        "apiVersion": "nodepatch.dev/v1alpha1", "kind": "PatchRun",
        "metadata": {"name": name},
        "spec": {"policyRef": policy, "operation": "Scan"},
    }))
    .expect("run literal")
}

async fn run_now(client: &Client, name: &str) -> PatchRun {
    Api::<PatchRun>::all(client.clone())
        .get(name)
        .await
        .expect("get run")
}

/// Wait until `check` holds for the run, returning it.
async fn wait_for(
    client: &Client,
    name: &str,
    what: &str,
    check: impl Fn(&PatchRun) -> bool,
) -> PatchRun {
    let api: Api<PatchRun> = Api::all(client.clone());
    support::eventually(Duration::from_secs(120), what, || {
        let api = api.clone();
        let check = &check;
        async move { api.get(name).await.ok().filter(|r| check(r)) }
    })
    .await
}

/// The run a new policy starts at once (its first scan), by name.
async fn first_scan(client: &Client, policy: &str) -> String {
    let api: Api<PatchRun> = Api::all(client.clone());
    support::eventually(
        Duration::from_secs(60),
        "the policy's first scan run",
        || {
            let api = api.clone();
            async move {
                let runs = api.list(&ListParams::default()).await.ok()?;
                runs.items
                    .into_iter()
                    .find(|r| r.spec.policy_ref == policy)
                    .and_then(|r| r.metadata.name)
            }
        },
    )
    .await
}

fn succeeded(r: &PatchRun) -> u32 {
    r.status.as_ref().map_or(0, |s| s.nodes.succeeded)
}

fn target_of<'a>(r: &'a PatchRun, node: &str) -> (TargetState, Option<&'a str>) {
    let t = r
        .status
        .as_ref()
        .and_then(|s| s.targets.iter().find(|t| t.node == node))
        .expect("target");
    (t.state, t.reason.as_deref())
}

fn progressing(r: &PatchRun) -> (String, String, String) {
    let c = r
        .status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, conditions::PROGRESSING))
        .expect("Progressing");
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

fn agent_nodes(env: &Env) -> Vec<String> {
    env.runner.spans().into_iter().map(|s| s.node).collect()
}

/// Delete `policy` and wait until its `run` is gone with it (garbage collection through the
/// run's owner reference).
async fn delete_with_its_runs(
    policies: &Api<PatchPolicy>,
    runs: &Api<PatchRun>,
    policy: &str,
    run: &str,
) {
    policies
        .delete(policy, &DeleteParams::default())
        .await
        .expect("delete policy");
    support::eventually_true(
        Duration::from_secs(60),
        "run deleted with its policy",
        || async move { runs.get_opt(run).await.is_ok_and(|r| r.is_none()) },
    )
    .await;
}

async fn suspend(policies: &Api<PatchPolicy>, name: &str, on: bool) {
    policies
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": on}})),
        )
        .await
        .expect("suspend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn users_suspend_cancel_and_opt_out_and_unpatchable_nodes_are_left_alone() {
    let Some((mut env, controller_kubeconfig)) = Env::start("e2e_run_control", "rc").await else {
        return;
    };
    let client = env.client.clone();
    let run_id = env.run_id.clone();
    let controller = env.start_controller("controller-run-control", &controller_kubeconfig);
    let pp = PostParams::default();
    let baselines: Api<PatchBaseline> = Api::all(client.clone());
    let policies: Api<PatchPolicy> = Api::all(client.clone());
    let runs: Api<PatchRun> = Api::all(client.clone());
    let baseline = format!("rc-debian-{run_id}");
    baselines
        .create(&pp, &debian_baseline(&baseline, json!({})))
        .await
        .expect("create baseline");
    let slow_waves =
        json!({"baselineRefs": [baseline], "rollout": {"maxConcurrency": 1, "soakTime": SOAK}});

    // 1. Suspend pauses the active run between waves; resume continues it where it was.
    let nodes = env.nodes("suspend", 3, true).await;
    let policy = format!("rc-suspend-{run_id}");
    policies
        .create(&pp, &env.policy(&policy, "suspend", slow_waves.clone()))
        .await
        .expect("create policy");
    let run = first_scan(&client, &policy).await;
    wait_for(&client, &run, "first node scanned", |r| succeeded(r) == 1).await;
    suspend(&policies, &policy, true).await;
    let held = wait_for(&client, &run, "Progressing says Suspended", |r| {
        progressing(r).1 == "Suspended"
    })
    .await;
    // Well past the soak: a running run would have started its second node by now.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let still = run_now(&client, &run).await;
    let status = still.status.clone().expect("status");
    assert_eq!(status.phase, RunPhase::Running, "{:?}", status.message);
    assert_eq!(
        (status.nodes.succeeded, status.nodes.pending),
        (1, 2),
        "no node starts while the policy is suspended"
    );
    assert_eq!(
        agent_nodes(&env),
        [nodes[0].clone()],
        "only the first node's agent ran"
    );
    assert!(
        progressing(&held).2.contains("is suspended"),
        "{:?}",
        progressing(&held)
    );
    suspend(&policies, &policy, false).await;
    let done = wait_for(&client, &run, "resumed run Succeeded", |r| {
        r.status
            .as_ref()
            .is_some_and(|s| s.phase == RunPhase::Succeeded)
    })
    .await;
    assert_eq!(
        succeeded(&done),
        3,
        "resumed where it was: the other two nodes"
    );
    assert_eq!(done.status.as_ref().expect("status").current_wave, 3);

    // Deleting the policy deletes its run (garbage collection through the owner reference;
    // the run's finalizer cleans up first).
    delete_with_its_runs(&policies, &runs, &policy, &run).await;

    // 2. Cancel: pending nodes are skipped, the run ends Canceled, labels and DaemonSet go;
    //    who canceled comes from the admission policy, and cannot be forged.
    let spans_before = env.runner.spans().len();
    let nodes = env.nodes("cancel", 3, true).await;
    let policy = format!("rc-cancel-{run_id}");
    policies
        .create(&pp, &env.policy(&policy, "cancel", slow_waves.clone()))
        .await
        .expect("create policy");
    let run = first_scan(&client, &policy).await;
    wait_for(&client, &run, "first node scanned", |r| succeeded(r) == 1).await;
    let forged = runs
        .patch(
            &run,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {CANCELED_BY_ANNOTATION: "mallory"}}}),
            ),
        )
        .await;
    assert!(
        matches!(&forged, Err(kube::Error::Api(s)) if s.code == 403),
        "a user cannot write the canceled-by annotation: {forged:?}"
    );
    runs.patch(
        &run,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"cancel": {"reason": "bad kernel in zone a"}}})),
    )
    .await
    .expect("cancel");
    let changed = runs
        .patch(
            &run,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"cancel": null}})),
        )
        .await;
    assert!(
        matches!(&changed, Err(kube::Error::Api(s)) if s.code == 422),
        "a cancel cannot be taken back: {changed:?}"
    );
    let canceled = wait_for(&client, &run, "run Canceled", |r| {
        r.status
            .as_ref()
            .is_some_and(|s| s.phase == RunPhase::Canceled)
    })
    .await;
    let status = canceled.status.clone().expect("status");
    assert_eq!((status.nodes.succeeded, status.nodes.skipped), (1, 2));
    for node in &nodes[1..] {
        assert_eq!(
            target_of(&canceled, node),
            (TargetState::Skipped, Some("Canceled"))
        );
    }
    let user = canceled
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CANCELED_BY_ANNOTATION))
        .cloned()
        .expect("canceled-by stamped by the admission policy");
    assert!(!user.is_empty() && user != "mallory");
    assert_eq!(
        progressing(&canceled),
        (
            "False".into(),
            "Canceled".into(),
            format!("canceled by {user}: bad kernel in zone a")
        )
    );
    assert_eq!(
        env.runner.spans()[spans_before..]
            .iter()
            .map(|s| s.node.clone())
            .collect::<Vec<_>>(),
        [nodes[0].clone()],
        "no agent ran on the skipped nodes"
    );
    support::eventually_true(
        Duration::from_secs(30),
        "labels and DaemonSet removed",
        || async {
            let ds: Api<DaemonSet> = Api::namespaced(client.clone(), &env.namespace);
            labelled_nodes(&client, &run_id).await.is_empty()
                && ds
                    .list(&ListParams::default())
                    .await
                    .is_ok_and(|l| l.items.is_empty())
        },
    )
    .await;
    policies
        .delete(&policy, &DeleteParams::default())
        .await
        .expect("delete policy");

    // 3. A pending node that gets the opt-out label mid-run is skipped, not started.
    let spans_before = env.runner.spans().len();
    let nodes = env.nodes("optout", 2, true).await;
    let policy = format!("rc-optout-{run_id}");
    policies
        .create(&pp, &env.policy(&policy, "optout", slow_waves.clone()))
        .await
        .expect("create policy");
    let run = first_scan(&client, &policy).await;
    wait_for(&client, &run, "first node scanned", |r| succeeded(r) == 1).await;
    Api::<Node>::all(client.clone())
        .patch(
            &nodes[1],
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"nodepatch.dev/exclude": "true"}}})),
        )
        .await
        .expect("opt out");
    let done = wait_for(&client, &run, "run Succeeded", |r| {
        r.status
            .as_ref()
            .is_some_and(|s| s.phase == RunPhase::Succeeded)
    })
    .await;
    assert_eq!(
        target_of(&done, &nodes[1]),
        (TargetState::Skipped, Some("Excluded"))
    );
    assert_eq!(done.status.as_ref().expect("status").nodes.skipped, 1);
    assert!(
        env.runner.spans()[spans_before..]
            .iter()
            .all(|s| s.node != nodes[1]),
        "the opted-out node never ran an agent"
    );
    policies
        .delete(&policy, &DeleteParams::default())
        .await
        .expect("delete policy");

    // 4. Nodes nodepatch does not patch: NotApplicable reports with the reason, counted as
    //    NotApplicable by the policy, never labelled; the Debian node beside them is scanned.
    let spans_before = env.runner.spans().len();
    let debian = env.nodes("na", 1, true).await;
    let foreign = [
        (
            env.foreign_node(
                "na",
                "bottlerocket",
                "Bottlerocket OS 1.26.2 (aws-k8s-1.31)",
                "linux",
            )
            .await,
            "ImmutableOS",
        ),
        (
            env.foreign_node("na", "talos", "Talos (v1.8.3)", "linux")
                .await,
            "ImmutableOS",
        ),
        (
            env.foreign_node("na", "windows", "Windows Server 2022 Datacenter", "windows")
                .await,
            "UnsupportedOS",
        ),
        (
            env.foreign_node("na", "al2", "Amazon Linux 2", "linux")
                .await,
            "EndOfLife",
        ),
    ];
    let policy = format!("rc-na-{run_id}");
    policies
        .create(
            &pp,
            &env.policy(
                &policy,
                "na",
                json!({"baselineRefs": [baseline], "rollout": {"maxConcurrency": "100%"}}),
            ),
        )
        .await
        .expect("create policy");
    let run = first_scan(&client, &policy).await;
    let done = wait_for(&client, &run, "run Succeeded", |r| {
        r.status
            .as_ref()
            .is_some_and(|s| s.phase == RunPhase::Succeeded)
    })
    .await;
    let status = done.status.clone().expect("status");
    assert_eq!((status.nodes.succeeded, status.nodes.skipped), (1, 4));
    for (node, reason) in &foreign {
        assert_eq!(
            target_of(&done, node),
            (TargetState::Skipped, Some(*reason))
        );
        let r = report(&client, node)
            .await
            .and_then(|r| r.status)
            .unwrap_or_else(|| panic!("{node}: a report"));
        assert_eq!(
            (r.compliance, r.compliance_reason.as_deref()),
            (Compliance::NotApplicable, Some(*reason)),
            "{node}"
        );
    }
    assert_eq!(
        env.runner.spans()[spans_before..]
            .iter()
            .map(|s| s.node.clone())
            .collect::<Vec<_>>(),
        debian,
        "agents ran on the Debian node only"
    );
    let rolled = support::eventually(Duration::from_secs(30), "policy roll-up", || {
        let policies = policies.clone();
        let policy = policy.clone();
        async move {
            let s = policies.get(&policy).await.ok()?.status?;
            (s.nodes.total == 5 && s.nodes.not_applicable == 4).then_some(s)
        }
    })
    .await;
    assert_eq!(
        (
            rolled.nodes.unknown,
            rolled.nodes.compliant + rolled.nodes.non_compliant
        ),
        (0, 1),
        "NotApplicable is not Unknown: {:?}",
        rolled.nodes
    );
    policies
        .delete(&policy, &DeleteParams::default())
        .await
        .expect("delete policy");

    // 5. A manual run is adopted by its policy (created while the policy is suspended, it
    //    waits without starting), and deleting the policy deletes it (garbage collection
    //    through the owner reference; the run's finalizer cleans up first).
    env.nodes("manual", 1, true).await;
    let policy = format!("rc-manual-{run_id}");
    policies
        .create(
            &pp,
            &env.policy(
                &policy,
                "manual",
                json!({"baselineRefs": [baseline], "suspend": true}),
            ),
        )
        .await
        .expect("create policy");
    let policy_uid = policies
        .get(&policy)
        .await
        .expect("policy")
        .metadata
        .uid
        .expect("uid");
    let run = format!("rc-manual-now-{run_id}");
    runs.create(&pp, &manual_run(&run, &policy))
        .await
        .expect("create run");
    let waiting = wait_for(&client, &run, "manual run adopted and waiting", |r| {
        r.metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.uid == policy_uid && o.kind == "PatchPolicy")
            && r.status.as_ref().is_some_and(|s| !s.conditions.is_empty())
    })
    .await;
    assert_eq!(progressing(&waiting).1, "Suspended");
    assert_eq!(
        waiting.status.as_ref().expect("status").phase,
        RunPhase::Pending
    );
    assert!(
        runs.list(&ListParams::default())
            .await
            .expect("runs")
            .items
            .iter()
            .all(
                |r| r.spec.policy_ref != policy || r.metadata.name.as_deref() == Some(run.as_str())
            ),
        "a suspended policy creates no run of its own"
    );
    delete_with_its_runs(&policies, &runs, &policy, &run).await;

    // 6. A node a run left cordoned counts in nodepatch_nodes_cordoned after the run ended (the
    //    NodepatchNodeStuckCordoned alert's input), and stops counting once uncordoned by hand.
    let node = env.nodes("cordon", 1, false).await.remove(0);
    let nodes_api: Api<Node> = Api::all(client.clone());
    let cordon = |on: bool| {
        let nodes_api = nodes_api.clone();
        let node = node.clone();
        async move {
            nodes_api
                .patch(
                    &node,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"unschedulable": on}})),
                )
                .await
                .expect("cordon");
        }
    };
    cordon(true).await;
    // An ended run that failed the node in its reboot sequence and left it cordoned, as the
    // controller records it.
    let run = format!("rc-cordon-{run_id}");
    runs.create(&pp, &manual_run(&run, &format!("rc-cordon-{run_id}")))
        .await
        .expect("create run");
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    runs.patch_status(
        &run,
        &PatchParams::apply("e2e-fixture").force(),
        &Patch::Apply(json!({
            "apiVersion": "nodepatch.dev/v1alpha1", "kind": "PatchRun",
            "status": {"phase": "Halted", "startTime": now, "completionTime": now, "targets": [
                {"node": node, "state": "Failed", "cordoned": true, "reason": "NodeTimeout"}
            ]},
        })),
    )
    .await
    .expect("run status");
    // Any policy reconcile refreshes the gauge; a new (suspended) policy reconciles at once.
    let policy = format!("rc-cordon-{run_id}");
    policies
        .create(
            &pp,
            &env.policy(&policy, "cordon", json!({"suspend": true})),
        )
        .await
        .expect("create policy");
    let gauge = |want: &'static str| {
        let controller = &controller;
        move || async move {
            controller.http_get("/metrics").is_some_and(|m| {
                m.lines()
                    .any(|l| l.trim() == format!("nodepatch_nodes_cordoned {want}"))
            })
        }
    };
    support::eventually_true(
        Duration::from_secs(60),
        "the node left cordoned counts",
        gauge("1"),
    )
    .await;
    cordon(false).await;
    // Past the re-check interval, the next policy reconcile sees it schedulable.
    tokio::time::sleep(Duration::from_secs(31)).await;
    suspend(&policies, &policy, false).await;
    support::eventually_true(
        Duration::from_secs(60),
        "uncordoned by hand: not counted",
        gauge("0"),
    )
    .await;
    policies
        .delete(&policy, &DeleteParams::default())
        .await
        .expect("delete policy");

    // 7. Aborts release what the run holds cordoned mid-sequence: a run deleted while its node
    //    reboots, and a run that fails (its policy is gone) while its node reboots.
    let held = env.nodes("abort", 2, false).await;
    let policy = format!("rc-abort-{run_id}");
    policies
        .create(
            &pp,
            &env.policy(
                &policy,
                "abort",
                json!({"suspend": true, "install": {"maintenanceWindowRefs": ["none"], "rebootOption": "RebootIfNeeded"}}),
            ),
        )
        .await
        .expect("create policy");
    for (i, (node, policy_ref)) in [
        (&held[0], policy.clone()),
        (&held[1], format!("rc-gone-{run_id}")),
    ]
    .into_iter()
    .enumerate()
    {
        let node_api = nodes_api.clone();
        node_api
            .patch(
                node,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"unschedulable": true}})),
            )
            .await
            .expect("cordon");
        let run = format!("rc-abort-{i}-{run_id}");
        let mut install = manual_run(&run, &policy_ref);
        install.spec.operation = nodepatch::api::Operation::Install;
        runs.create(&pp, &install).await.expect("create run");
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        runs.patch_status(
            &run,
            &PatchParams::apply("e2e-fixture").force(),
            &Patch::Apply(json!({
                "apiVersion": "nodepatch.dev/v1alpha1", "kind": "PatchRun",
                "status": {"phase": "Running", "startTime": now, "currentWave": 1, "targets": [
                    {"node": node, "state": "Rebooting", "cordoned": true, "wave": 1,
                     "startTime": now, "stateTime": now, "bootId": format!("boot-{node}")}
                ]},
            })),
        )
        .await
        .expect("run status");
        if i == 0 {
            tokio::time::sleep(Duration::from_secs(3)).await;
            assert!(
                node_api
                    .get(node)
                    .await
                    .expect("node")
                    .spec
                    .and_then(|s| s.unschedulable)
                    .unwrap_or(false),
                "while the run waits for the reboot, its node stays cordoned"
            );
            runs.delete(&run, &DeleteParams::default())
                .await
                .expect("delete run");
        } else {
            wait_for(&client, &run, "run Failed (policy gone)", |r| {
                r.status
                    .as_ref()
                    .is_some_and(|s| s.phase == RunPhase::Failed)
            })
            .await;
        }
        support::eventually_true(
            Duration::from_secs(30),
            "the aborted run uncordoned its node",
            || {
                let node_api = node_api.clone();
                let node = node.clone();
                async move {
                    node_api
                        .get(&node)
                        .await
                        .is_ok_and(|n| !n.spec.and_then(|s| s.unschedulable).unwrap_or(false))
                }
            },
        )
        .await;
    }
    policies
        .delete(&policy, &DeleteParams::default())
        .await
        .expect("delete policy");
}
