//! End to end on the real control plane: kwok nodes, the scheduler placing run DaemonSet pods,
//! the pod runner starting the real `nodepatch agent` for each pod on that node's
//! debootstrapped root, and the real `nodepatch controller`.
//!
//! One test function runs the scenarios in sequence because they share one controller process
//! (two controllers would both act on every object).

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Namespace, Node, ServiceAccount};
use k8s_openapi::jiff::{Timestamp, tz::TimeZone};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use nodepatch::api::{
    Compliance, MaintenanceWindow, NodePatchReport, PatchBaseline, PatchPolicy, PatchRun,
    RUN_LABEL, RunPhase,
};
use serde_json::json;
use support::podrunner::PodRunner;
use support::roots::DebianRoot;

const DISTS: [&str; 3] = ["bookworm", "bookworm-security", "bookworm-updates"];

struct Env {
    client: Client,
    run_id: String,
    roots: Arc<Mutex<BTreeMap<String, PathBuf>>>,
    kept_roots: Vec<DebianRoot>,
    runner: PodRunner,
    namespace: String,
}

impl Env {
    /// Create `n` kwok nodes (Debian 12 in nodeInfo, so the controller picks the Debian
    /// baseline, like the roots' os-release), each with a fresh root unless `with_roots` is
    /// false (a node whose pods never run).
    async fn nodes(&mut self, group: &str, n: usize, with_roots: bool) -> Vec<String> {
        let api: Api<Node> = Api::all(self.client.clone());
        let mut names = vec![];
        for i in 0..n {
            let name = format!("e2e-{}-{group}-{i}", self.run_id);
            let zone = if i % 2 == 0 { "zone-a" } else { "zone-b" };
            let node: Node = serde_json::from_value(json!({
                "metadata": {
                    "name": name,
                    "annotations": {"kwok.x-k8s.io/node": "fake"},
                    "labels": {
                        "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok",
                        "topology.kubernetes.io/zone": zone,
                        "e2e.nodepatch.dev/run": self.run_id, "e2e.nodepatch.dev/group": group,
                    }
                },
                "status": {
                    "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                    "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                    "nodeInfo": {
                        "architecture": "amd64", "bootID": format!("boot-{name}"), "containerRuntimeVersion": "containerd://2.0.0",
                        "kernelVersion": "6.1.0-28-amd64", "kubeProxyVersion": "", "kubeletVersion": "v1.37.2",
                        "machineID": "m", "operatingSystem": "linux", "osImage": "Debian GNU/Linux 12 (bookworm)", "systemUUID": "u"
                    }
                }
            }))
            .expect("node literal");
            api.create(&PostParams::default(), &node)
                .await
                .expect("create node");
            if with_roots {
                let root = DebianRoot::with_standard_repo(&name, &DISTS).expect("debian root");
                self.roots
                    .lock()
                    .expect("roots")
                    .insert(name.clone(), root.path().to_path_buf());
                self.kept_roots.push(root);
            }
            names.push(name);
        }
        support::eventually(Duration::from_secs(60), "e2e nodes Ready", || {
            let api = api.clone();
            let names = names.clone();
            async move {
                for n in &names {
                    let node = api.get(n).await.ok()?;
                    let ready = node
                        .status?
                        .conditions?
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True");
                    if !ready {
                        return None;
                    }
                }
                Some(())
            }
        })
        .await;
        names
    }

    fn root_of(&self, node: &str) -> &DebianRoot {
        self.kept_roots
            .iter()
            .find(|r| {
                self.roots
                    .lock()
                    .expect("roots")
                    .get(node)
                    .is_some_and(|p| p == r.path())
            })
            .expect("root")
    }

    fn policy(&self, name: &str, group: &str, extra: serde_json::Value) -> PatchPolicy {
        let mut spec = json!({
            "nodeSelector": {"matchLabels": {"e2e.nodepatch.dev/run": self.run_id, "e2e.nodepatch.dev/group": group}},
            "rollout": {"maxConcurrency": 1, "maxErrors": 0}
        });
        merge(&mut spec, extra);
        serde_json::from_value(json!({"apiVersion": "nodepatch.dev/v1alpha1", "kind": "PatchPolicy", "metadata": {"name": name}, "spec": spec}))
            .expect("policy literal")
    }
}

fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

async fn wait_run(
    client: &Client,
    policy: &str,
    operation: &str,
    what: &str,
    finished_phase: Option<RunPhase>,
) -> PatchRun {
    let api: Api<PatchRun> = Api::all(client.clone());
    let policy = policy.to_string();
    let operation = operation.to_string();
    support::eventually(Duration::from_secs(180), what, || {
        let api = api.clone();
        let (policy, operation) = (policy.clone(), operation.clone());
        async move {
            let runs = api.list(&ListParams::default()).await.ok()?;
            runs.items.into_iter().find(|r| {
                r.spec.policy_ref == policy
                    && r.spec.operation.as_str() == operation
                    && r.status.as_ref().is_some_and(|s| match finished_phase {
                        Some(p) => s.phase == p,
                        None => s.phase.is_finished(),
                    })
            })
        }
    })
    .await
}

async fn report(client: &Client, node: &str) -> Option<NodePatchReport> {
    Api::<NodePatchReport>::all(client.clone())
        .get_opt(node)
        .await
        .ok()
        .flatten()
}

async fn labelled_nodes(client: &Client, run_id: &str) -> Vec<String> {
    let api: Api<Node> = Api::all(client.clone());
    api.list_metadata(
        &ListParams::default().labels(&format!("e2e.nodepatch.dev/run={run_id},{RUN_LABEL}")),
    )
    .await
    .expect("list nodes")
    .items
    .iter()
    .map(|n| n.name_any())
    .collect()
}

fn debian_baseline(name: &str, extra: serde_json::Value) -> PatchBaseline {
    let mut spec = json!({
        "operatingSystem": "Debian",
        "approvalRules": [{"filters": [{"key": "Priority", "values": ["*"]}], "approveAfterDays": 0, "complianceLevel": "High"}],
        "rejectedPatches": ["np-reboot"],
    });
    merge(&mut spec, extra);
    serde_json::from_value(json!({"apiVersion": "nodepatch.dev/v1alpha1", "kind": "PatchBaseline", "metadata": {"name": name}, "spec": spec}))
        .expect("baseline literal")
}

/// Install what the chart installs for RBAC (from the kustomize tree generated from it): the
/// namespaces, ServiceAccounts, least-privilege roles and the agent admission policy. Returns
/// the agent namespace and a kubeconfig for the controller's ServiceAccount (a TokenRequest
/// token: no admin credentials in the controller's kubeconfig).
async fn setup(client: &Client, log_dir: &std::path::Path) -> (String, PathBuf) {
    support::ensure_crds(client).await;
    let pp = PostParams::default();
    for ns in ["nodepatch-system", "nodepatch-agents"] {
        let namespace: Namespace =
            serde_json::from_value(json!({"metadata": {"name": ns}})).expect("ns");
        let _ = Api::<Namespace>::all(client.clone())
            .create(&pp, &namespace)
            .await;
    }
    let text = std::fs::read_to_string(support::repo_root().join("config/rbac/rbac.yaml"))
        .expect("config/rbac/rbac.yaml");
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value: serde_json::Value = serde::Deserialize::deserialize(doc).expect("YAML");
        support::apply_json(client, value).await;
    }
    let request: k8s_openapi::api::authentication::v1::TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 7200}}))
            .expect("token request");
    let token = Api::<ServiceAccount>::namespaced(client.clone(), "nodepatch-system")
        .create_token_request("nodepatch-controller", &pp, &request)
        .await
        .expect("controller token")
        .status
        .and_then(|s| s.token)
        .expect("token");
    std::fs::create_dir_all(log_dir).expect("log dir");
    let kubeconfig = support::podrunner::token_kubeconfig(log_dir, "nodepatch-controller", &token);
    ("nodepatch-agents".to_string(), kubeconfig)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn controller_scans_patches_halts_resolves_conflicts_and_cleans_up() {
    if !support::roots::require_roots("e2e_controller") {
        return;
    }
    let Some(client) = support::cluster().await else {
        return;
    };
    let run_id = format!("{}", std::process::id());
    let log_dir = support::repo_root().join(format!(".local/log/e2e-{run_id}"));
    let (namespace, controller_kubeconfig) = setup(&client, &log_dir).await;
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
    let roots: Arc<Mutex<BTreeMap<String, PathBuf>>> = Arc::default();
    let runner = PodRunner::start(client.clone(), &namespace, roots.clone(), &log_dir);
    let _controller = support::ControllerProcess::start_with_kubeconfig(
        "controller-e2e",
        &controller_kubeconfig,
        &[
            "--agent-namespace",
            &namespace,
            "--agent-image",
            "nodepatch:e2e",
            "--agent-service-account",
            "nodepatch-agent",
        ],
    );
    let mut env = Env {
        client: client.clone(),
        run_id: run_id.clone(),
        roots,
        kept_roots: vec![],
        runner,
        namespace,
    };
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
    assert!(
        labelled_nodes(&client, &run_id).await.is_empty(),
        "no node left labelled"
    );
    let ds: Api<DaemonSet> = Api::namespaced(client.clone(), &env.namespace);
    assert!(
        ds.list(&ListParams::default())
            .await
            .expect("list ds")
            .items
            .is_empty(),
        "run DaemonSet deleted"
    );
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
    assert!(
        !ds.list(&ListParams::default())
            .await
            .expect("list ds")
            .items
            .is_empty(),
        "run DaemonSet exists mid-run"
    );
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
