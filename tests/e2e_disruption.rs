//! Safe disruption end to end on the real control plane (kwok nodes, the scheduler, the
//! disruption controller computing PodDisruptionBudgets, the pod runner starting real agents
//! on debootstrapped roots and simulating reboots, the real controller as the chart's
//! ServiceAccount):
//!
//! 1. a node whose update needs a reboot is cordoned, its workload pod evicted under a PDB,
//!    rebooted (new boot ID), uncordoned and Compliant; a node without reboot need is never
//!    cordoned;
//! 2. a PDB that blocks eviction: drain timeout, node Failed and uncordoned, run Halted;
//! 3. the controller killed at 4 points of a 4-node run (maxConcurrency 1): the run completes,
//!    never 2 nodes cordoned or in flight, every node patched once (dpkg logs);
//! 4. two replicas with leader election: only the leader writes; killing it hands over within
//!    15 s and the run continues.
//!
//! One test function, scenarios in sequence: controllers act cluster-wide.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::events::v1::Event as KubeEvent;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use nodepatch::api::{
    MaintenanceWindow, PatchBaseline, PatchPolicy, PatchRun, RunPhase, TargetState,
};
use serde_json::json;
use support::ControllerProcess;
use support::fleet::{Env, debian_baseline, wait_run};

/// What a sampler saw over a scenario: the most nodes cordoned at once among a group, the most
/// targets in flight at once, and every node ever cordoned.
#[derive(Default, Debug)]
struct Watch {
    max_cordoned: usize,
    max_in_flight: usize,
    ever_cordoned: BTreeSet<String>,
}

/// Sample cordons of `nodes` and the in-flight targets of every run of `policy` every 100 ms.
fn sample(
    client: &Client,
    nodes: Vec<String>,
    policy: String,
) -> (Arc<Mutex<Watch>>, tokio::task::JoinHandle<()>) {
    let watch: Arc<Mutex<Watch>> = Arc::default();
    let w = watch.clone();
    let client = client.clone();
    let task = tokio::spawn(async move {
        let node_api: Api<Node> = Api::all(client.clone());
        let runs: Api<PatchRun> = Api::all(client.clone());
        loop {
            let mut cordoned = vec![];
            for n in &nodes {
                if let Ok(node) = node_api.get(n).await
                    && node.spec.and_then(|s| s.unschedulable).unwrap_or(false)
                {
                    cordoned.push(n.clone());
                }
            }
            let in_flight = runs
                .list(&ListParams::default())
                .await
                .map(|l| {
                    l.items
                        .iter()
                        .filter(|r| r.spec.policy_ref == policy)
                        .flat_map(|r| r.status.iter().flat_map(|s| s.targets.iter()))
                        .filter(|t| {
                            matches!(
                                t.state,
                                TargetState::InProgress
                                    | TargetState::Draining
                                    | TargetState::Rebooting
                                    | TargetState::Verifying
                            )
                        })
                        .count()
                })
                .unwrap_or(0);
            {
                let mut w = w.lock().expect("watch");
                w.max_cordoned = w.max_cordoned.max(cordoned.len());
                w.max_in_flight = w.max_in_flight.max(in_flight);
                w.ever_cordoned.extend(cordoned);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    (watch, task)
}

/// Wait until `node`'s cordon is `cordoned`: the controller writes a target's state before it
/// cordons or uncordons, so the effect is asserted with a deadline, not read once.
async fn wait_cordon(client: &Client, node: &str, cordoned: bool, what: &str) {
    support::eventually_true(Duration::from_secs(30), what, || async move {
        unschedulable(client, node).await == cordoned
    })
    .await;
}

async fn unschedulable(client: &Client, node: &str) -> bool {
    Api::<Node>::all(client.clone())
        .get(node)
        .await
        .expect("node")
        .spec
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
}

/// The run of `policy` doing `operation` (the newest).
async fn current_run(client: &Client, policy: &str, operation: &str) -> Option<PatchRun> {
    let runs = Api::<PatchRun>::all(client.clone())
        .list(&ListParams::default())
        .await
        .ok()?;
    runs.items
        .into_iter()
        .filter(|r| r.spec.policy_ref == policy && r.spec.operation.as_str() == operation)
        .max_by_key(|r| r.metadata.creation_timestamp.clone())
}

/// Wait until the install run of `policy` has a target `node` in `state`.
async fn wait_target(client: &Client, policy: &str, node: &str, state: TargetState) {
    let what = format!("{node} {state:?}");
    support::eventually(Duration::from_secs(120), &what, || async {
        let run = current_run(client, policy, "Install").await?;
        run.status?
            .targets
            .iter()
            .any(|t| t.node == node && t.state == state)
            .then_some(())
    })
    .await
}

/// The reporting instances of the Events about `run`.
async fn events_by(client: &Client, run: &str) -> BTreeSet<String> {
    Api::<KubeEvent>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(run))
        .map(|e| e.reporting_instance.unwrap_or_default())
        .collect()
}

/// The value of `nodepatch_leader` a controller serves.
fn leader_gauge(controller: &ControllerProcess) -> Option<i64> {
    let metrics = controller.http_get("/metrics")?;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("nodepatch_leader ")?.trim().parse().ok())
}

/// The reasons of the Events regarding the Node `node`, published by nodepatch.
async fn node_event_reasons(client: &Client, node: &str) -> BTreeSet<String> {
    Api::<KubeEvent>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().is_some_and(|r| {
                r.kind.as_deref() == Some("Node") && r.name.as_deref() == Some(node)
            })
        })
        .filter(|e| e.reporting_controller.as_deref() == Some(nodepatch::api::CONTROLLER_MANAGER))
        .filter_map(|e| e.reason)
        .collect()
}

/// How many times dpkg upgraded `package` in `root` (its log).
fn upgrades_in_dpkg_log(root: &std::path::Path, package: &str) -> usize {
    let log = std::fs::read_to_string(root.join("var/log/dpkg.log")).unwrap_or_default();
    log.lines()
        .filter(|l| l.contains(" upgrade ") && l.contains(&format!(" {package}:")))
        .count()
}

fn deployment(
    name: &str,
    namespace: &str,
    replicas: i32,
    node_labels: serde_json::Value,
) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": node_labels,
                    // One replica per node, so the node being patched holds exactly one.
                    "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                        {"labelSelector": {"matchLabels": {"app": name}}, "topologyKey": "kubernetes.io/hostname"}
                    ]}},
                    // The local control plane runs no node lifecycle controller, so nodes keep
                    // the not-ready taint they are created with (DaemonSet pods tolerate it).
                    // Nothing else is tolerated: cordoned nodes stay off limits.
                    "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [{"name": "app", "image": "registry.example/app:1"}]
                }
            }
        }
    })
}

fn pdb(name: &str, namespace: &str, app: &str, min_available: i32) -> serde_json::Value {
    json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"minAvailable": min_available, "selector": {"matchLabels": {"app": app}}}
    })
}

/// Pods of `app` in `namespace` by name → node, only running (not terminating) ones.
async fn pods_of(
    client: &Client,
    namespace: &str,
    app: &str,
) -> BTreeMap<String, (String, String)> {
    Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .expect("pods")
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| {
            let node = p.spec.as_ref()?.node_name.clone()?;
            let uid = p.metadata.uid.clone()?;
            Some((p.name_any(), (node, uid)))
        })
        .collect()
}

async fn wait_pods_ready(client: &Client, namespace: &str, app: &str, n: usize) {
    let what = format!("{n} {app} pods Ready");
    support::eventually(Duration::from_secs(60), &what, || async {
        let pods = Api::<Pod>::namespaced(client.clone(), namespace)
            .list(&ListParams::default().labels(&format!("app={app}")))
            .await
            .ok()?;
        let ready = pods
            .items
            .iter()
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count();
        (ready >= n).then_some(())
    })
    .await
}

async fn wait_pdb_allows(client: &Client, namespace: &str, name: &str, allowed: i32) {
    let what = format!("PDB {name} allows {allowed} disruptions");
    support::eventually(Duration::from_secs(60), &what, || async {
        let pdb = Api::<k8s_openapi::api::policy::v1::PodDisruptionBudget>::namespaced(
            client.clone(),
            namespace,
        )
        .get(name)
        .await
        .ok()?;
        (pdb.status?.disruptions_allowed == Some(allowed)).then_some(())
    })
    .await
}

struct Controllers {
    kubeconfig: PathBuf,
    args: Vec<String>,
    started: usize,
}

impl Controllers {
    fn start(&mut self, extra: &[&str]) -> ControllerProcess {
        self.started += 1;
        let mut args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        args.extend_from_slice(extra);
        ControllerProcess::start_with_kubeconfig(
            &format!(
                "controller-disruption-{}-{}",
                std::process::id(),
                self.started
            ),
            &self.kubeconfig,
            &args,
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drains_reboots_survives_crashes_and_elects_a_leader() {
    let Some((mut env, kubeconfig)) = Env::start("e2e_disruption", "d").await else {
        return;
    };
    let client = env.client.clone();
    let run_id = env.run_id.clone();
    let mut controllers = Controllers {
        kubeconfig,
        args: env.controller_args(),
        started: 0,
    };
    let pp = PostParams::default();
    let work = support::TestNamespace::create(&client, "disruption").await;
    let later = format!("e2e-later-{run_id}");
    let mw: MaintenanceWindow = serde_json::from_value(json!({"metadata": {"name": later}, "spec": {"schedule": "cron(0 3 1 1 ? 2099)", "duration": "2h"}})).expect("mw");
    Api::<MaintenanceWindow>::all(client.clone())
        .create(&pp, &mw)
        .await
        .expect("create window");
    // np-reboot (a security update whose postinst writes /run/reboot-required) is approved.
    let baseline = format!("e2e-reboot-{run_id}");
    Api::<PatchBaseline>::all(client.clone())
        .create(
            &pp,
            &debian_baseline(&baseline, json!({"rejectedPatches": []})),
        )
        .await
        .expect("create baseline");
    let policies: Api<PatchPolicy> = Api::all(client.clone());
    let runs: Api<PatchRun> = Api::all(client.clone());
    let patch_now = |name: &str, policy: &str| -> PatchRun {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"policyRef": policy, "operation": "Install"}}))
            .expect("run")
    };

    // ---- 1. Reboot with a PDB-protected workload; a node without reboot need stays schedulable.
    let mut controller = controllers.start(&[]);
    let nodes = env.nodes("reboot", 2, true).await;
    let (needs, clean) = (nodes[0].clone(), nodes[1].clone());
    env.root_of(&clean).hold("np-reboot");
    let group = json!({"e2e.nodepatch.dev/run": run_id, "e2e.nodepatch.dev/group": "reboot"});
    support::apply_json(&client, deployment("web", &work.name, 2, group)).await;
    support::apply_json(&client, pdb("web", &work.name, "web", 1)).await;
    wait_pods_ready(&client, &work.name, "web", 2).await;
    wait_pdb_allows(&client, &work.name, "web", 1).await;
    let before = pods_of(&client, &work.name, "web").await;
    let on_needs: Vec<String> = before
        .iter()
        .filter(|(_, (n, _))| *n == needs)
        .map(|(p, _)| p.clone())
        .collect();
    let on_clean: Vec<(String, String)> = before
        .iter()
        .filter(|(_, (n, _))| *n == clean)
        .map(|(p, (_, uid))| (p.clone(), uid.clone()))
        .collect();
    assert_eq!(
        (on_needs.len(), on_clean.len()),
        (1, 1),
        "one web pod per node: {before:?}"
    );
    let policy = format!("e2e-reboot-{run_id}");
    policies
        .create(&pp, &env.policy(&policy, "reboot", json!({"baselineRefs": [baseline], "install": {"maintenanceWindowRefs": [later], "rebootOption": "RebootIfNeeded"}, "drain": {"timeout": "2m"}})))
        .await
        .expect("create reboot policy");
    let (watch, sampler) = sample(&client, nodes.clone(), policy.clone());
    runs.create(&pp, &patch_now(&format!("{policy}-now"), &policy))
        .await
        .expect("create patch-now run");
    let run = wait_run(
        &client,
        &policy,
        "Install",
        "reboot run Succeeded",
        Some(RunPhase::Succeeded),
    )
    .await;
    sampler.abort();
    let status = run.status.expect("status");
    let target = |n: &str| {
        status
            .targets
            .iter()
            .find(|t| t.node == n)
            .expect("target")
            .clone()
    };
    assert_eq!(
        target(&needs).state,
        TargetState::Succeeded,
        "{:?}",
        target(&needs)
    );
    assert_eq!(
        target(&clean).state,
        TargetState::Succeeded,
        "{:?}",
        target(&clean)
    );
    let w = std::mem::take(&mut *watch.lock().expect("watch"));
    assert!(w.ever_cordoned.contains(&needs), "{w:?}");
    assert!(
        !w.ever_cordoned.contains(&clean),
        "a node without reboot need is never cordoned: {w:?}"
    );
    wait_cordon(&client, &needs, false, "uncordoned after the reboot").await;
    let reboots: Vec<_> = env
        .runner
        .reboots()
        .into_iter()
        .filter(|r| r.node == needs)
        .collect();
    assert_eq!(reboots.len(), 1, "one reboot of {needs}");
    let node = Api::<Node>::all(client.clone())
        .get(&needs)
        .await
        .expect("node");
    assert_eq!(
        node.status.and_then(|s| s.node_info).map(|i| i.boot_id),
        Some(reboots[0].boot_id.clone()),
        "the node runs the new boot"
    );
    let report = Api::<nodepatch::api::NodePatchReport>::all(client.clone())
        .get(&needs)
        .await
        .expect("report");
    let rs = report.status.expect("report status");
    assert_eq!(
        rs.compliance,
        nodepatch::api::Compliance::Compliant,
        "{rs:?}"
    );
    assert!(!rs.reboot_required, "the reboot cleared the flag");
    assert_eq!(
        rs.boot_id.as_deref(),
        Some(reboots[0].boot_id.as_str()),
        "scanned on the new boot"
    );
    // The pod on the rebooted node was evicted; the other node's pod was never touched.
    let after = pods_of(&client, &work.name, "web").await;
    assert!(!after.contains_key(&on_needs[0]), "{} evicted", on_needs[0]);
    assert_eq!(
        after.get(&on_clean[0].0).map(|(_, uid)| uid.clone()),
        Some(on_clean[0].1.clone()),
        "the other replica kept running"
    );
    assert_eq!(
        upgrades_in_dpkg_log(env.root_of(&needs).path(), "np-reboot"),
        1
    );
    assert_eq!(
        upgrades_in_dpkg_log(env.root_of(&clean).path(), "np-reboot"),
        0,
        "held"
    );

    // ---- 2. A PDB that never allows eviction: drain timeout, Failed, uncordoned, Halted.
    let nodes = env.nodes("blocked", 1, true).await;
    let blocked = nodes[0].clone();
    let group = json!({"e2e.nodepatch.dev/run": run_id, "e2e.nodepatch.dev/group": "blocked"});
    support::apply_json(&client, deployment("db", &work.name, 1, group)).await;
    support::apply_json(&client, pdb("db", &work.name, "db", 1)).await;
    wait_pods_ready(&client, &work.name, "db", 1).await;
    wait_pdb_allows(&client, &work.name, "db", 0).await;
    let policy = format!("e2e-blocked-{run_id}");
    policies
        .create(&pp, &env.policy(&policy, "blocked", json!({"baselineRefs": [baseline], "install": {"maintenanceWindowRefs": [later], "rebootOption": "RebootIfNeeded"}, "drain": {"timeout": "8s"}, "rollout": {"maxErrors": 0}})))
        .await
        .expect("create blocked policy");
    runs.create(&pp, &patch_now(&format!("{policy}-now"), &policy))
        .await
        .expect("create patch-now run");
    wait_target(&client, &policy, &blocked, TargetState::Draining).await;
    wait_cordon(&client, &blocked, true, "cordoned while draining").await;
    let run = wait_run(
        &client,
        &policy,
        "Install",
        "blocked run Halted",
        Some(RunPhase::Halted),
    )
    .await;
    let status = run.status.expect("status");
    let t = &status.targets[0];
    assert_eq!(
        (t.state, t.reason.as_deref()),
        (TargetState::Failed, Some("DrainTimeout")),
        "{t:?}"
    );
    assert!(
        t.message.as_deref().is_some_and(|m| m.contains("db-")),
        "names the pod: {t:?}"
    );
    wait_cordon(
        &client,
        &blocked,
        false,
        "uncordoned after the drain timeout",
    )
    .await;
    assert!(
        env.runner.reboots().iter().all(|r| r.node != blocked),
        "never rebooted"
    );
    assert_eq!(
        pods_of(&client, &work.name, "db").await.len(),
        1,
        "the protected pod still runs"
    );
    // The per-node Events are also on the Nodes (what `kubectl describe node` lists).
    for (node, reasons) in [
        (
            &needs,
            &["Draining", "RebootRequested", "Rebooted", "Uncordoned"][..],
        ),
        (&blocked, &["Draining", "NodeFailed"][..]),
    ] {
        support::eventually_true(Duration::from_secs(30), "run Events on the Node", || {
            let client = client.clone();
            async move {
                let on_node = node_event_reasons(&client, node).await;
                reasons.iter().all(|r| on_node.contains(*r))
            }
        })
        .await;
    }
    // What a user sees: `kubectl describe node` lists them (it matches the Node's UID).
    let describe = std::process::Command::new(support::tool("kubectl"))
        .arg("--kubeconfig")
        .arg(support::kubeconfig_path())
        .args(["describe", "node", needs.as_str()])
        .output()
        .expect("kubectl describe node");
    let describe = String::from_utf8_lossy(&describe.stdout);
    for reason in ["RebootRequested", "Rebooted", "Uncordoned"] {
        assert!(
            describe.contains(reason),
            "kubectl describe node {needs} shows no {reason}:\n{describe}"
        );
    }
    // The drains and the reboot are counted: one eviction, refusals by the db PDB until the
    // drain timed out, one reboot.
    let metrics = controller.http_get("/metrics").expect("GET /metrics");
    let counter = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
    };
    assert!(counter(r#"nodepatch_evictions_total{result="evicted"}"#) >= 1.0);
    assert!(counter(r#"nodepatch_evictions_total{result="refused"}"#) >= 1.0);
    assert_eq!(
        counter(r#"nodepatch_drain_failures_total{reason="DrainTimeout"}"#),
        1.0
    );
    assert_eq!(counter("nodepatch_node_reboots_total"), 1.0);
    drop(controller);

    // ---- 3. Kill the controller at 4 points of a 4-node run, maxConcurrency 1.
    // The reboot takes 3 s to bring the node back and 3 s more to restart the agent, so the
    // Rebooting and Verifying states last long enough to kill the controller in them.
    env.runner
        .set_reboot_delays(Duration::from_secs(3), Duration::from_secs(3));
    let nodes = env.nodes("crash", 4, true).await;
    // A bare pod on the second node, protected by a PDB: its drain waits until the test lifts
    // the PDB (drain.force lets the controller evict unmanaged pods).
    support::apply_json(&client, json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "hold", "namespace": work.name, "labels": {"app": "hold"}},
        "spec": {"nodeName": nodes[1], "containers": [{"name": "app", "image": "registry.example/app:1"}],
            "tolerations": [{"operator": "Exists"}]}
    })).await;
    support::apply_json(&client, pdb("hold", &work.name, "hold", 1)).await;
    wait_pods_ready(&client, &work.name, "hold", 1).await;
    wait_pdb_allows(&client, &work.name, "hold", 0).await;
    let policy = format!("e2e-crash-{run_id}");
    controller = controllers.start(&[]);
    policies
        .create(&pp, &env.policy(&policy, "crash", json!({"baselineRefs": [baseline], "install": {"maintenanceWindowRefs": [later], "rebootOption": "RebootIfNeeded"}, "drain": {"timeout": "5m", "force": true}, "rollout": {"maxConcurrency": 1, "maxErrors": 0}})))
        .await
        .expect("create crash policy");
    wait_run(&client, &policy, "Scan", "initial scan done", None).await;
    let (watch, sampler) = sample(&client, nodes.clone(), policy.clone());
    let crash_run = format!("{policy}-now");
    runs.create(&pp, &patch_now(&crash_run, &policy))
        .await
        .expect("create patch-now run");
    // Kill 1: the run's targets are in status, before (or just as) the first node is labelled.
    support::eventually(Duration::from_secs(60), "crash run started", || async {
        let run = runs.get(&crash_run).await.ok()?;
        (!run.status?.targets.is_empty()).then_some(())
    })
    .await;
    controller.kill();
    controller = controllers.start(&[]);
    // Kill 2: mid-drain (the PDB holds the bare pod on nodes[1]).
    wait_target(&client, &policy, &nodes[1], TargetState::Draining).await;
    // Kill once the cordon is in place (status is written first), mid-drain.
    wait_cordon(&client, &nodes[1], true, "cordoned while draining").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    controller.kill();
    assert!(
        unschedulable(&client, &nodes[1]).await,
        "still cordoned after the kill"
    );
    Api::<k8s_openapi::api::policy::v1::PodDisruptionBudget>::namespaced(
        client.clone(),
        &work.name,
    )
    .delete("hold", &DeleteParams::default())
    .await
    .expect("lift the PDB");
    controller = controllers.start(&[]);
    // Kill 3: waiting for the reboot.
    wait_target(&client, &policy, &nodes[2], TargetState::Rebooting).await;
    controller.kill();
    controller = controllers.start(&[]);
    // Kill 4: rebooted, before the uncordon (waiting for the agent's scan).
    wait_target(&client, &policy, &nodes[3], TargetState::Verifying).await;
    assert!(
        unschedulable(&client, &nodes[3]).await,
        "still cordoned before the uncordon"
    );
    controller.kill();
    controller = controllers.start(&[]);
    let run = wait_run(
        &client,
        &policy,
        "Install",
        "crash run Succeeded",
        Some(RunPhase::Succeeded),
    )
    .await;
    sampler.abort();
    let w = std::mem::take(&mut *watch.lock().expect("watch"));
    assert!(
        w.max_cordoned <= 1,
        "at most one node cordoned at a time: {w:?}"
    );
    assert!(w.max_in_flight <= 1, "at most one node in flight: {w:?}");
    assert_eq!(w.ever_cordoned.len(), 4, "{w:?}");
    let status = run.status.expect("status");
    assert_eq!(status.nodes.succeeded, 4, "{:?}", status.targets);
    for n in &nodes {
        wait_cordon(&client, n, false, &format!("{n} uncordoned")).await;
        assert_eq!(
            upgrades_in_dpkg_log(env.root_of(n).path(), "np-reboot"),
            1,
            "{n} patched once"
        );
        assert_eq!(
            env.runner.reboots().iter().filter(|r| &r.node == n).count(),
            1,
            "{n} rebooted once"
        );
    }
    drop(controller);
    env.runner
        .set_reboot_delays(Duration::from_millis(500), Duration::ZERO);

    // ---- 4. Two replicas with leader election: only the leader writes; handover within 15 s.
    let lease_name = format!("nodepatch-e2e-{run_id}");
    let leader_args = [
        "--leader-elect",
        "--leader-elect-namespace",
        "nodepatch-system",
        "--leader-elect-lease-name",
        &lease_name,
    ];
    let mut a = {
        let mut args = leader_args.to_vec();
        args.extend(["--instance", "replica-a"]);
        controllers.start(&args)
    };
    let mut b = {
        let mut args = leader_args.to_vec();
        args.extend(["--instance", "replica-b"]);
        controllers.start(&args)
    };
    let leases: Api<Lease> = Api::namespaced(client.clone(), "nodepatch-system");
    let holder = || async {
        leases
            .get(&lease_name)
            .await
            .ok()
            .and_then(|l| l.spec?.holder_identity)
    };
    let first = support::eventually(Duration::from_secs(30), "a leader", || async {
        holder().await
    })
    .await;
    let leader_instance = first.split('_').next().expect("instance").to_string();
    let nodes = env.nodes("ha", 2, true).await;
    let policy = format!("e2e-ha-{run_id}");
    env.runner
        .set_reboot_delays(Duration::from_secs(2), Duration::from_secs(1));
    policies
        .create(&pp, &env.policy(&policy, "ha", json!({"baselineRefs": [baseline], "install": {"maintenanceWindowRefs": [later], "rebootOption": "RebootIfNeeded"}})))
        .await
        .expect("create ha policy");
    wait_run(&client, &policy, "Scan", "ha scan done", None).await;
    let ha_run = format!("{policy}-now");
    runs.create(&pp, &patch_now(&ha_run, &policy))
        .await
        .expect("create ha run");
    wait_target(&client, &policy, &nodes[0], TargetState::Rebooting).await;
    assert_eq!(
        events_by(&client, &ha_run).await,
        BTreeSet::from([leader_instance.clone()]),
        "only the leader writes"
    );
    // `nodepatch_leader` says which replica runs the reconcilers.
    let (leader_proc, follower_proc) = if leader_instance == "replica-a" {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert_eq!(
        leader_gauge(leader_proc),
        Some(1),
        "the leader's nodepatch_leader"
    );
    assert_eq!(
        leader_gauge(follower_proc),
        Some(0),
        "the follower's nodepatch_leader"
    );
    // Kill the leader (no release: it just dies).
    let killed_at = Instant::now();
    if leader_instance == "replica-a" {
        a.kill()
    } else {
        b.kill()
    }
    let second = support::eventually(Duration::from_secs(30), "a new leader", || async {
        holder().await.filter(|h| *h != first)
    })
    .await;
    let handover = killed_at.elapsed();
    assert!(
        handover <= Duration::from_secs(15),
        "handover took {handover:?}"
    );
    let new_instance = second.split('_').next().expect("instance").to_string();
    assert_ne!(new_instance, leader_instance);
    let survivor = if new_instance == "replica-a" { &a } else { &b };
    support::eventually_true(Duration::from_secs(15), "the new leader's gauge", || {
        let up = leader_gauge(survivor) == Some(1);
        async move { up }
    })
    .await;
    let run = wait_run(
        &client,
        &policy,
        "Install",
        "ha run Succeeded",
        Some(RunPhase::Succeeded),
    )
    .await;
    assert_eq!(run.status.expect("status").nodes.succeeded, 2);
    let reporters = events_by(&client, &ha_run).await;
    assert!(
        reporters.contains(&new_instance),
        "the new leader continued the run: {reporters:?}"
    );
    eprintln!("leader handover took {handover:?}");
    drop(a);
    drop(b);
    work.delete().await;
}
