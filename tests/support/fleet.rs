//! A fleet for end-to-end tests: kwok nodes each backed by a debootstrapped root, the pod
//! runner starting real agents for run DaemonSet pods, the chart's RBAC, and helpers to wait
//! for runs. Shared by the e2e test binaries.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node, ServiceAccount};
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use nodepatch::api::{NodePatchReport, PatchBaseline, PatchPolicy, PatchRun, RUN_LABEL, RunPhase};
use serde_json::json;

use super::podrunner::PodRunner;
use super::roots::DebianRoot;

/// The suites of the standard test repository the fleet's roots use.
pub const DISTS: [&str; 3] = ["bookworm", "bookworm-security", "bookworm-updates"];

pub struct Env {
    pub client: Client,
    pub run_id: String,
    pub roots: Arc<Mutex<BTreeMap<String, PathBuf>>>,
    pub kept_roots: Vec<DebianRoot>,
    pub runner: PodRunner,
    pub namespace: String,
}

impl Env {
    /// What every e2e test needs before its controller: the cluster, the chart's RBAC, the pod
    /// runner and an empty fleet; returns it with a kubeconfig for the controller's
    /// ServiceAccount. `None` when the test is skipped (no cluster or roots outside CI).
    pub async fn start(test: &str, prefix: &str) -> Option<(Env, PathBuf)> {
        if !super::roots::require_roots(test) {
            return None;
        }
        let client = super::cluster().await?;
        let run_id = format!("{prefix}{}", std::process::id());
        let log_dir = super::repo_root().join(format!(".local/log/e2e-{run_id}"));
        let (namespace, kubeconfig) = setup(&client, &log_dir).await;
        let roots: Arc<Mutex<BTreeMap<String, PathBuf>>> = Arc::default();
        let runner = PodRunner::start(client.clone(), &namespace, roots.clone(), &log_dir);
        let env = Env {
            client,
            run_id,
            roots,
            kept_roots: vec![],
            runner,
            namespace,
        };
        Some((env, kubeconfig))
    }

    /// Start `nodepatch controller` for this fleet as the chart's ServiceAccount
    /// (`kubeconfig` from [`Env::start`]), its log named `name`.
    pub fn start_controller(
        &self,
        name: &str,
        kubeconfig: &std::path::Path,
    ) -> super::ControllerProcess {
        let args = self.controller_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        super::ControllerProcess::start_with_kubeconfig(name, kubeconfig, &args)
    }

    /// Arguments of `nodepatch controller` for this fleet's agent namespace. The agent image
    /// is the generated tree's (the pod runner runs the local binary whatever the image): the
    /// admission policy `nodepatch-agent-daemonset` applied by [`setup`] refuses any other.
    pub fn controller_args(&self) -> Vec<String> {
        let image = config_agent_image();
        [
            "--agent-namespace",
            &self.namespace,
            "--agent-image",
            &image,
            "--agent-service-account",
            "nodepatch-agent",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// Create `n` kwok nodes (Debian 12 in nodeInfo, so the controller picks the Debian
    /// baseline, like the roots' os-release), each with a fresh root unless `with_roots` is
    /// false (a node whose pods never run).
    pub async fn nodes(&mut self, group: &str, n: usize, with_roots: bool) -> Vec<String> {
        let api: Api<Node> = Api::all(self.client.clone());
        let mut names = vec![];
        for i in 0..n {
            let name = format!("e2e-{}-{group}-{i}", self.run_id);
            let zone = if i % 2 == 0 { "zone-a" } else { "zone-b" };
            let node = node_object(
                &name,
                &self.run_id,
                group,
                zone,
                "Debian GNU/Linux 12 (bookworm)",
                "linux",
            );
            api.create(&PostParams::default(), &node)
                .await
                .expect("create node");
            if with_roots {
                let root = DebianRoot::with_standard_repo(&name, &DISTS).expect("debian root");
                // The root's kernel boot ID, as the Node reports it (a real node's kubelet
                // reads the same file).
                super::podrunner::write_boot_id(root.path(), &format!("boot-{name}"));
                self.roots
                    .lock()
                    .expect("roots")
                    .insert(name.clone(), root.path().to_path_buf());
                self.kept_roots.push(root);
            }
            names.push(name);
        }
        super::eventually(Duration::from_secs(60), "e2e nodes Ready", || {
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

    /// Create one kwok node (no root: no agent can run there) reporting `os_image` and the
    /// `kubernetes.io/os` label `os`, for nodes nodepatch must leave alone.
    pub async fn foreign_node(
        &self,
        group: &str,
        suffix: &str,
        os_image: &str,
        os: &str,
    ) -> String {
        let name = format!("e2e-{}-{group}-{suffix}", self.run_id);
        let node = node_object(&name, &self.run_id, group, "zone-a", os_image, os);
        Api::<Node>::all(self.client.clone())
            .create(&PostParams::default(), &node)
            .await
            .expect("create node");
        name
    }

    pub fn root_of(&self, node: &str) -> &DebianRoot {
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

    pub fn policy(&self, name: &str, group: &str, extra: serde_json::Value) -> PatchPolicy {
        let mut spec = json!({
            "nodeSelector": {"matchLabels": {"e2e.nodepatch.dev/run": self.run_id, "e2e.nodepatch.dev/group": group}},
            "rollout": {"maxConcurrency": 1, "maxErrors": 0}
        });
        merge(&mut spec, extra);
        serde_json::from_value(json!({"apiVersion": "nodepatch.dev/v1alpha1", "kind": "PatchPolicy", "metadata": {"name": name}, "spec": spec}))
            .expect("policy literal")
    }
}

/// A kwok Node of the e2e fleet.
fn node_object(
    name: &str,
    run_id: &str,
    group: &str,
    zone: &str,
    os_image: &str,
    os: &str,
) -> Node {
    serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake"},
            "labels": {
                "kubernetes.io/hostname": name, "kubernetes.io/os": os, "type": "kwok",
                "topology.kubernetes.io/zone": zone,
                "e2e.nodepatch.dev/run": run_id, "e2e.nodepatch.dev/group": group,
            }
        },
        "status": {
            "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "nodeInfo": {
                "architecture": "amd64", "bootID": format!("boot-{name}"), "containerRuntimeVersion": "containerd://2.0.0",
                "kernelVersion": "6.1.0-28-amd64", "kubeProxyVersion": "", "kubeletVersion": "v1.37.2",
                "machineID": "m", "operatingSystem": os, "osImage": os_image, "systemUUID": "u"
            }
        }
    }))
    .expect("node literal")
}

pub fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

pub async fn wait_run(
    client: &Client,
    policy: &str,
    operation: &str,
    what: &str,
    finished_phase: Option<RunPhase>,
) -> PatchRun {
    let api: Api<PatchRun> = Api::all(client.clone());
    let policy = policy.to_string();
    let operation = operation.to_string();
    super::eventually(Duration::from_secs(180), what, || {
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

pub async fn report(client: &Client, node: &str) -> Option<NodePatchReport> {
    Api::<NodePatchReport>::all(client.clone())
        .get_opt(node)
        .await
        .ok()
        .flatten()
}

pub async fn labelled_nodes(client: &Client, run_id: &str) -> Vec<String> {
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

pub fn debian_baseline(name: &str, extra: serde_json::Value) -> PatchBaseline {
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
/// The agent image of the generated controller Deployment (`config/manager/manager.yaml`).
pub fn config_agent_image() -> String {
    let text = std::fs::read_to_string(super::repo_root().join("config/manager/manager.yaml"))
        .expect("config/manager/manager.yaml");
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).expect("YAML");
    docs.iter()
        .filter(|d| d["kind"] == "Deployment")
        .flat_map(|d| {
            d["spec"]["template"]["spec"]["containers"][0]["env"]
                .as_array()
                .cloned()
        })
        .flatten()
        .find(|e| e["name"] == "NODEPATCH_AGENT_IMAGE")
        .and_then(|e| e["value"].as_str().map(str::to_string))
        .expect("NODEPATCH_AGENT_IMAGE in the controller Deployment")
}

/// namespaces, ServiceAccounts, least-privilege roles and the agent admission policy. Returns
/// the agent namespace and a kubeconfig for the controller's ServiceAccount (a TokenRequest
/// token: no admin credentials in the controller's kubeconfig).
pub async fn setup(client: &Client, log_dir: &std::path::Path) -> (String, PathBuf) {
    super::ensure_crds(client).await;
    let pp = PostParams::default();
    let agent_namespace = super::config_agent_namespace();
    for ns in ["nodepatch-system", agent_namespace.as_str()] {
        let namespace: Namespace =
            serde_json::from_value(json!({"metadata": {"name": ns}})).expect("ns");
        let _ = Api::<Namespace>::all(client.clone())
            .create(&pp, &namespace)
            .await;
    }
    let text = std::fs::read_to_string(super::repo_root().join("config/rbac/rbac.yaml"))
        .expect("config/rbac/rbac.yaml");
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).expect("YAML");
    for value in docs {
        super::apply_json(client, value).await;
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
    let kubeconfig = super::podrunner::token_kubeconfig(log_dir, "nodepatch-controller", &token);
    (agent_namespace, kubeconfig)
}
