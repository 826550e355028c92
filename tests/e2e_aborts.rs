//! Every way a run can stop short leaves no node cordoned by it and cuts off no package
//! transaction, end to end against the real control plane and controller:
//! 1. canceled while a node drains: the drain stops, the node is uncordoned, Skipped `Canceled`;
//! 2. halted by its error budget (a drain that times out, with the drain timeout the run fixed
//!    at start, not the policy's): uncordoned, `Halted`;
//! 3. timed out (its window closed) while a node drains: not rebooted outside the window,
//!    uncordoned, `TimedOut`;
//! 4. its policy deleted while a node reboots: the run goes with it, the node is uncordoned;
//! 5. deleted while an agent's report says `Installing`: the run (its finalizer), the node's
//!    label stay until the transaction ends, then both go.
//!
//! The runs' state is seeded in status (as a controller that started them would have written
//! it) on kwok nodes without agents, so each path is reached at once and deterministically. A
//! pod kept terminating by a finalizer holds a drain open.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use nodepatch::api::{NodePatchReport, PatchPolicy, PatchRun, RUN_LABEL, RunPhase, TargetState};
use serde_json::json;
use support::fleet::Env;

const HOLD_FINALIZER: &str = "e2e.nodepatch.dev/hold";

fn install_run(name: &str, policy: &str, trigger: &str) -> PatchRun {
    serde_json::from_value(json!({
        "apiVersion": "nodepatch.dev/v1alpha1", "kind": "PatchRun",
        "metadata": {"name": name},
        "spec": {"policyRef": policy, "operation": "Install", "trigger": trigger},
    }))
    .expect("run literal")
}

/// Write `status` as the controller would have when it started the run and reached `targets`.
async fn seed(
    runs: &Api<PatchRun>,
    run: &str,
    targets: serde_json::Value,
    extra: serde_json::Value,
) {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let mut status = json!({
        "phase": "Running", "startTime": now, "currentWave": 1,
        "rebootOption": "RebootIfNeeded", "targets": targets,
    });
    support::fleet::merge(&mut status, extra);
    runs.patch_status(
        run,
        &PatchParams::apply("e2e-fixture").force(),
        &Patch::Apply(json!({
            "apiVersion": "nodepatch.dev/v1alpha1", "kind": "PatchRun", "status": status,
        })),
    )
    .await
    .expect("seed run status");
}

fn target(node: &str, state: &str) -> serde_json::Value {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let mut t = json!({"node": node, "state": state, "wave": 1, "startTime": now, "stateTime": now,
                       "bootId": format!("boot-{node}")});
    if state != "Pending" && state != "InProgress" {
        t["cordoned"] = json!(true);
    }
    if state == "Pending" {
        t = json!({"node": node, "state": "Pending"});
    }
    t
}

async fn set_cordon(client: &Client, node: &str, on: bool) {
    Api::<Node>::all(client.clone())
        .patch(
            node,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": on}})),
        )
        .await
        .expect("cordon");
}

async fn cordoned(client: &Client, node: &str) -> bool {
    Api::<Node>::all(client.clone())
        .get(node)
        .await
        .expect("node")
        .spec
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
}

async fn wait_uncordoned(client: &Client, node: &str, what: &str) {
    support::eventually_true(Duration::from_secs(60), what, || async move {
        !cordoned(client, node).await
    })
    .await;
}

async fn wait_phase(runs: &Api<PatchRun>, run: &str, phase: RunPhase) -> PatchRun {
    support::eventually(
        Duration::from_secs(60),
        &format!("run {run} {phase:?}"),
        || async move {
            runs.get(run)
                .await
                .ok()
                .filter(|r| r.status.as_ref().is_some_and(|s| s.phase == phase))
        },
    )
    .await
}

fn target_of(run: &PatchRun, node: &str) -> (TargetState, Option<String>) {
    let t = run
        .status
        .as_ref()
        .and_then(|s| s.targets.iter().find(|t| t.node == node))
        .expect("target");
    (t.state, t.reason.clone())
}

/// A pod on `node` that stays terminating (a finalizer holds it): a drain waits for it.
async fn terminating_pod(client: &Client, namespace: &str, node: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let name = format!("hold-{node}");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "finalizers": [HOLD_FINALIZER]},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "e2e/hold"}],
                 "tolerations": [{"operator": "Exists"}]},
    }))
    .expect("pod literal");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    pods.delete(&name, &DeleteParams::default())
        .await
        .expect("delete pod");
    name
}

async fn release_pod(client: &Client, namespace: &str, name: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let _ = pods
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_abort_uncordons_and_no_transaction_is_cut_off() {
    let Some((mut env, controller_kubeconfig)) = Env::start("e2e_aborts", "ab").await else {
        return;
    };
    let client = env.client.clone();
    let id = env.run_id.clone();
    let _controller = env.start_controller("controller-aborts", &controller_kubeconfig);
    let pp = PostParams::default();
    let policies: Api<PatchPolicy> = Api::all(client.clone());
    let runs: Api<PatchRun> = Api::all(client.clone());
    let nodes = env.nodes("abort", 6, false).await;
    // A suspended policy starts nothing of its own; its seeded runs' in-flight nodes go on.
    let policy = format!("ab-{id}");
    policies
        .create(
            &pp,
            &env.policy(
                &policy,
                "none",
                json!({"suspend": true, "install": {"maintenanceWindowRefs": ["none"], "rebootOption": "RebootIfNeeded"}}),
            ),
        )
        .await
        .expect("create policy");
    let namespace = env.namespace.clone();
    let mut held_pods = vec![];

    // 1. Canceled while draining.
    let node = &nodes[0];
    set_cordon(&client, node, true).await;
    held_pods.push(terminating_pod(&client, &namespace, node).await);
    let run = format!("ab-cancel-{id}");
    runs.create(&pp, &install_run(&run, &policy, "Manual"))
        .await
        .expect("create run");
    seed(
        &runs,
        &run,
        json!([target(node, "Draining")]),
        json!({"drain": {"timeout": "10m"}}),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let r = runs.get(&run).await.expect("run");
    assert_eq!(
        target_of(&r, node).0,
        TargetState::Draining,
        "the drain waits for the pod"
    );
    assert!(cordoned(&client, node).await, "cordoned while draining");
    runs.patch(
        &run,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"cancel": {"reason": "e2e"}}})),
    )
    .await
    .expect("cancel");
    wait_uncordoned(
        &client,
        node,
        "the canceled run uncordoned its draining node",
    )
    .await;
    let r = wait_phase(&runs, &run, RunPhase::Canceled).await;
    assert_eq!(
        target_of(&r, node),
        (TargetState::Skipped, Some("Canceled".into()))
    );

    // 2. Halted: the drain times out after the 3s the run fixed at start (the policy says the
    //    default 15m), the node fails, the error budget (0, fixed too) is spent.
    let node = &nodes[1];
    set_cordon(&client, node, true).await;
    held_pods.push(terminating_pod(&client, &namespace, node).await);
    let run = format!("ab-halt-{id}");
    runs.create(&pp, &install_run(&run, &policy, "Manual"))
        .await
        .expect("create run");
    seed(
        &runs,
        &run,
        json!([target(node, "Draining")]),
        json!({"drain": {"timeout": "3s"}, "rollout": {"maxErrors": 0}}),
    )
    .await;
    let r = wait_phase(&runs, &run, RunPhase::Halted).await;
    assert_eq!(
        target_of(&r, node),
        (TargetState::Failed, Some("DrainTimeout".into()))
    );
    wait_uncordoned(&client, node, "the halted run uncordoned its node").await;

    // 3. Timed out: a scheduled run whose window is closed (it names none that exists).
    let (node, pending) = (&nodes[2], &nodes[3]);
    set_cordon(&client, node, true).await;
    held_pods.push(terminating_pod(&client, &namespace, node).await);
    let run = format!("ab-window-{id}");
    runs.create(&pp, &install_run(&run, &policy, "Schedule"))
        .await
        .expect("create run");
    seed(
        &runs,
        &run,
        json!([target(node, "Draining"), target(pending, "Pending")]),
        json!({"drain": {"timeout": "10m"}}),
    )
    .await;
    let r = wait_phase(&runs, &run, RunPhase::TimedOut).await;
    assert_eq!(
        target_of(&r, node),
        (TargetState::Skipped, Some("WindowClosed".into())),
        "not rebooted outside its window"
    );
    assert_eq!(
        target_of(&r, pending),
        (TargetState::Skipped, Some("WindowClosed".into()))
    );
    wait_uncordoned(&client, node, "the timed-out run uncordoned its node").await;

    // 4. Its policy deleted while the node reboots: the run goes with it (owner reference),
    //    and its finalizer uncordons the node.
    let node = &nodes[4];
    let own = format!("ab-own-{id}");
    policies
        .create(
            &pp,
            &env.policy(
                &own,
                "none",
                json!({"suspend": true, "install": {"maintenanceWindowRefs": ["none"], "rebootOption": "RebootIfNeeded"}}),
            ),
        )
        .await
        .expect("create policy");
    set_cordon(&client, node, true).await;
    let run = format!("ab-owned-{id}");
    runs.create(&pp, &install_run(&run, &own, "Manual"))
        .await
        .expect("create run");
    seed(&runs, &run, json!([target(node, "Rebooting")]), json!({})).await;
    support::eventually_true(Duration::from_secs(30), "the policy owns its run", || {
        let runs = runs.clone();
        let run = run.clone();
        async move {
            runs.get(&run)
                .await
                .is_ok_and(|r| r.metadata.owner_references.is_some_and(|o| !o.is_empty()))
        }
    })
    .await;
    assert!(cordoned(&client, node).await);
    policies
        .delete(&own, &DeleteParams::default())
        .await
        .expect("delete policy");
    wait_uncordoned(
        &client,
        node,
        "the run deleted with its policy uncordoned its node",
    )
    .await;
    support::eventually_true(
        Duration::from_secs(60),
        "the run went with its policy",
        || {
            let runs = runs.clone();
            let run = run.clone();
            async move { runs.get_opt(&run).await.is_ok_and(|r| r.is_none()) }
        },
    )
    .await;

    // 5. Deleted while the agent's report says Installing: nothing is taken from the agent
    //    until its transaction ends.
    let node = &nodes[5];
    let run = format!("ab-installing-{id}");
    runs.create(&pp, &install_run(&run, &policy, "Manual"))
        .await
        .expect("create run");
    seed(&runs, &run, json!([target(node, "InProgress")]), json!({})).await;
    let reports: Api<NodePatchReport> = Api::all(client.clone());
    let report: NodePatchReport = serde_json::from_value(json!({
        "apiVersion": "nodepatch.dev/v1alpha1", "kind": "NodePatchReport",
        "metadata": {"name": node}, "spec": {},
    }))
    .expect("report literal");
    reports.create(&pp, &report).await.expect("create report");
    let write_phase = |phase: &'static str| {
        let reports = reports.clone();
        let (node, run) = (node.clone(), run.clone());
        async move {
            reports
                .patch_status(
                    &node,
                    &PatchParams::apply("e2e-agent").force(),
                    &Patch::Apply(json!({
                        "apiVersion": "nodepatch.dev/v1alpha1", "kind": "NodePatchReport",
                        "status": {"operation": {"run": run, "type": "Install", "phase": phase}},
                    })),
                )
                .await
                .expect("report status");
        }
    };
    write_phase("Installing").await;
    let labelled = |client: Client, node: String, run: String| async move {
        Api::<Node>::all(client).get(&node).await.is_ok_and(|n| {
            n.metadata
                .labels
                .is_some_and(|l| l.get(RUN_LABEL) == Some(&run))
        })
    };
    support::eventually_true(
        Duration::from_secs(30),
        "the in-flight node is labelled",
        || labelled(client.clone(), node.clone(), run.clone()),
    )
    .await;
    runs.delete(&run, &DeleteParams::default())
        .await
        .expect("delete run");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let r = runs
        .get_opt(&run)
        .await
        .expect("get run")
        .expect("the deleted run waits for the transaction");
    assert!(r.metadata.deletion_timestamp.is_some());
    assert!(
        labelled(client.clone(), node.clone(), run.clone()).await,
        "the node keeps its label (and so its agent) mid-transaction"
    );
    write_phase("Succeeded").await;
    support::eventually_true(
        Duration::from_secs(60),
        "the run is gone once the transaction ended",
        || {
            let runs = runs.clone();
            let run = run.clone();
            async move { runs.get_opt(&run).await.is_ok_and(|r| r.is_none()) }
        },
    )
    .await;
    assert!(
        !labelled(client.clone(), node.clone(), run.clone()).await,
        "label removed"
    );

    for pod in &held_pods {
        release_pod(&client, &namespace, pod).await;
    }
    let _ = reports.delete(node, &DeleteParams::default()).await;
    let _ = policies.delete(&policy, &DeleteParams::default()).await;
}
