//! `nodepatch agent` in cluster mode against the local control plane, authenticated with a real
//! ServiceAccount token (TokenRequest) whose RBAC allows only what the agent needs: it creates
//! its node's NodePatchReport (owned by the Node), takes the baseline from the PatchRun's
//! snapshot, installs on a real Debian root (through chroot), writes the status by server-side
//! apply as `nodepatch-agent`, idles, and after a restart re-scans instead of installing again.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use nodepatch::api::{NodePatchReport, Operation, OperationPhase, PatchRun, PatchState};
use nodepatch::baseline::ResolvedBaseline;
use serde_json::json;
use support::roots::DebianRoot;

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_agent(
    kubeconfig: &std::path::Path,
    node: &str,
    root: &std::path::Path,
    args: &[&str],
    log: &std::path::Path,
) -> Agent {
    let log = std::fs::File::create(log).expect("agent log");
    let child = Command::new(env!("CARGO_BIN_EXE_nodepatch"))
        .arg("agent")
        .args(args)
        .arg("--host-root")
        .arg(root)
        .args(["--host-exec", "chroot"])
        .env("NODE_NAME", node)
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start nodepatch agent");
    Agent(child)
}

async fn finished_report(
    client: &Client,
    node: &str,
    operation: Operation,
    what: &str,
) -> NodePatchReport {
    let api: Api<NodePatchReport> = Api::all(client.clone());
    support::eventually(Duration::from_secs(180), what, || {
        let api = api.clone();
        async move {
            let report = api.get_opt(node).await.ok()??;
            let op = report.status.as_ref()?.operation.as_ref()?;
            (op.type_ == Some(operation) && op.phase.is_finished()).then_some(report)
        }
    })
    .await
}

async fn agent_service_account(client: &Client, namespace: &str, name: &str) -> String {
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("sa");
    Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &sa)
        .await
        .expect("create sa");
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": name},
        "rules": [
            {"apiGroups": ["nodepatch.dev"], "resources": ["nodepatchreports"], "verbs": ["get", "create"]},
            {"apiGroups": ["nodepatch.dev"], "resources": ["nodepatchreports/status"], "verbs": ["get", "patch"]},
            {"apiGroups": ["nodepatch.dev"], "resources": ["patchruns"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]},
        ]
    }))
    .expect("role");
    Api::<ClusterRole>::all(client.clone())
        .create(&PostParams::default(), &role)
        .await
        .expect("create role");
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
    }))
    .expect("binding");
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .expect("create binding");
    let request =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}}))
            .expect("token request");
    let status = Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .expect("TokenRequest")
        .status
        .expect("token status");
    status.token.expect("token")
}

/// A node, an agent ServiceAccount token for it, a Debian root with the standard repository
/// and an Install PatchRun whose Debian snapshot approves np-sec and np-bugfix.
struct Fixture {
    root: DebianRoot,
    ns: support::TestNamespace,
    name: String,
    node: Node,
    kubeconfig: std::path::PathBuf,
    work: tempfile::TempDir,
    runs: Api<PatchRun>,
    resolved: ResolvedBaseline,
}

async fn fixture(client: &Client, test: &'static str) -> Option<Fixture> {
    let root = tokio::task::spawn_blocking(move || {
        DebianRoot::with_standard_repo(test, &["bookworm", "bookworm-security", "bookworm-updates"])
    })
    .await
    .expect("root")?;
    support::ensure_crds(client).await;
    let ns = support::TestNamespace::create(client, "agent").await;
    let name = support::unique_name("np-agent");
    let node: Node = serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"nodepatch.dev/test": "true"}}}),
    )
    .expect("node");
    let node = Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &node)
        .await
        .expect("create node");
    let token = agent_service_account(client, &ns.name, &name).await;
    let work = tempfile::tempdir().expect("tempdir");
    let kubeconfig = support::podrunner::token_kubeconfig(work.path(), &name, &token);
    let spec: nodepatch::api::PatchBaselineSpec = serde_json::from_value(json!({
        "operatingSystem": "Debian",
        "approvedPatches": ["np-sec", "np-bugfix"],
        // np-bugfix is in bookworm-updates (issue #20: the flag is honoured on apt).
        "approvedPatchesEnableNonSecurity": true,
    }))
    .expect("baseline spec");
    let resolved = ResolvedBaseline::resolve("agent-test-baseline", &spec).expect("valid");
    let runs: Api<PatchRun> = Api::all(client.clone());
    let run: PatchRun = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"policyRef": "agent-test", "operation": "Install"},
    }))
    .expect("run");
    runs.create(&PostParams::default(), &run)
        .await
        .expect("create run");
    runs.patch_status(
        &name,
        &PatchParams::apply("nodepatch-tests").force(),
        &Patch::Apply(json!({
            "apiVersion": "nodepatch.dev/v1alpha1",
            "kind": "PatchRun",
            "status": {"phase": "Running", "baselineSnapshots": [{
                "operatingSystem": "Debian", "name": "agent-test-baseline", "hash": resolved.hash(), "baseline": spec,
            }]},
        })),
    )
    .await
    .expect("run status");
    Some(Fixture {
        root,
        ns,
        name,
        node,
        kubeconfig,
        work,
        runs,
        resolved,
    })
}

impl Fixture {
    async fn cleanup(self, client: &Client) {
        // The report goes with its Node (garbage collector).
        let _ = Api::<Node>::all(client.clone())
            .delete(&self.name, &DeleteParams::default())
            .await;
        let _ = self.runs.delete(&self.name, &DeleteParams::default()).await;
        let _ = Api::<ClusterRoleBinding>::all(client.clone())
            .delete(&self.name, &DeleteParams::default())
            .await;
        let _ = Api::<ClusterRole>::all(client.clone())
            .delete(&self.name, &DeleteParams::default())
            .await;
        self.ns.delete().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_installs_from_the_run_snapshot_and_rescans_after_restart() {
    let Some(client) = support::cluster().await else {
        return;
    };
    let Some(f) = fixture(
        &client,
        "agent_installs_from_the_run_snapshot_and_rescans_after_restart",
    )
    .await
    else {
        return;
    };
    let Fixture {
        root,
        name,
        node,
        kubeconfig,
        work,
        resolved,
        ..
    } = &f;
    let name = name.clone();

    let mut agent = start_agent(
        kubeconfig,
        &name,
        root.path(),
        &["--operation", "Install", "--run", &name],
        &work.path().join("agent-1.log"),
    );
    let report = finished_report(
        &client,
        &name,
        Operation::Install,
        "the agent's install report",
    )
    .await;
    let log = || std::fs::read_to_string(work.path().join("agent-1.log")).unwrap_or_default();
    let status = report.status.clone().expect("status");
    let op = status.operation.clone().expect("operation");
    assert_eq!(op.phase, OperationPhase::Succeeded, "{op:?}\n{}", log());
    assert_eq!(op.run, name);
    assert_eq!(
        status
            .baseline
            .as_ref()
            .map(|b| (b.name.as_str(), b.hash.as_str())),
        Some(("agent-test-baseline", resolved.hash()))
    );
    assert_eq!(status.os.as_ref().map(|o| o.id.as_str()), Some("debian"));
    assert_eq!(status.counts.installed, 2, "{:?}", status.counts);
    assert!(status.last_install_time.is_some());
    assert_eq!(
        root.installed_version("np-sec").as_deref(),
        Some("1.0-1+deb12u1")
    );
    assert_eq!(
        root.installed_version("np-bugfix").as_deref(),
        Some("1.0-2")
    );
    assert_eq!(
        root.installed_version("np-reboot").as_deref(),
        Some("1.0-1"),
        "not in the snapshot's baseline"
    );
    let owner = report.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owner.len(), 1);
    assert_eq!(
        (owner[0].kind.as_str(), owner[0].uid.as_str()),
        ("Node", node.uid().unwrap_or_default().as_str())
    );
    let managers: Vec<(String, Option<String>)> = report
        .metadata
        .managed_fields
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.manager.unwrap_or_default(), m.subresource))
        .collect();
    assert!(
        managers.contains(&("nodepatch-agent".to_string(), Some("status".to_string()))),
        "{managers:?}"
    );
    // It idles after reporting, until terminated.
    assert!(
        agent.0.try_wait().expect("agent state").is_none(),
        "the agent idles after its operation\n{}",
        log()
    );
    drop(agent);

    // Restarted (as after the reboot it would have asked for): re-scans, never re-installs.
    agent = start_agent(
        kubeconfig,
        &name,
        root.path(),
        &[
            "--operation",
            "Install",
            "--run",
            &name,
            "--exit-after-report",
        ],
        &work.path().join("agent-2.log"),
    );
    let rescan = finished_report(&client, &name, Operation::Scan, "the confirming scan").await;
    let status = rescan.status.expect("status");
    let op = status.operation.expect("operation");
    assert_eq!(
        (op.run.as_str(), op.phase),
        (name.as_str(), OperationPhase::Succeeded)
    );
    assert_eq!(status.counts.installed, 2);
    assert!(
        status
            .patches
            .iter()
            .all(|p| p.state != PatchState::Missing),
        "{:?}",
        status.patches
    );
    let exit = tokio::task::spawn_blocking(move || agent.0.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(exit.success(), "--exit-after-report exits 0");

    f.cleanup(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_without_rbac_fails_naming_what_it_could_not_read() {
    // A token without RBAC cannot even read its Node: the agent exits with an error naming it
    // instead of reporting (it has nowhere to write).
    let Some(client) = support::cluster().await else {
        return;
    };
    support::ensure_crds(&client).await;
    let ns = support::TestNamespace::create(&client, "agent-norbac").await;
    let name = support::unique_name("np-agent-norbac");
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": name}})).expect("sa");
    Api::<ServiceAccount>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &sa)
        .await
        .expect("sa");
    let request =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}}))
            .expect("request");
    let token = Api::<ServiceAccount>::namespaced(client.clone(), &ns.name)
        .create_token_request(&name, &PostParams::default(), &request)
        .await
        .expect("token")
        .status
        .expect("status")
        .token
        .expect("token");
    let work = tempfile::tempdir().expect("tempdir");
    let kubeconfig = support::podrunner::token_kubeconfig(work.path(), &name, &token);
    let out = Command::new(env!("CARGO_BIN_EXE_nodepatch"))
        .args([
            "agent",
            "--operation",
            "Scan",
            "--exit-after-report",
            "--host-root",
        ])
        .arg(work.path())
        .env("NODE_NAME", "some-node")
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .expect("run agent");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("reading Node some-node"), "{stderr}");
    assert!(stderr.contains("forbidden"), "{stderr}");
    ns.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_interrupted_mid_way_is_repaired_and_reported_failed_not_repeated() {
    let Some(client) = support::cluster().await else {
        return;
    };
    let Some(f) = fixture(
        &client,
        "an_install_interrupted_mid_way_is_repaired_and_reported_failed_not_repeated",
    )
    .await
    else {
        return;
    };
    // What an agent killed in the middle of `apt-get install` leaves: its install mark, and
    // a package unpacked but not configured.
    f.root.apt_get(&["update"]);
    f.root.chroot(&[
        "sh",
        "-c",
        "cd /tmp && apt-get download np-sec=1.0-1+deb12u1 && dpkg --unpack /tmp/np-sec_*.deb",
    ]);
    assert!(
        f.root.dpkg_status("np-sec").contains("unpacked"),
        "{}",
        f.root.dpkg_status("np-sec")
    );
    let mark = f.root.path().join("var/lib/nodepatch/install-started.json");
    std::fs::create_dir_all(mark.parent().expect("dir")).expect("state dir");
    std::fs::write(
        &mark,
        json!({"run": f.name, "bootID": "b0", "at": "2026-11-26T00:00:00Z"}).to_string(),
    )
    .expect("write mark");

    let agent = start_agent(
        &f.kubeconfig,
        &f.name,
        f.root.path(),
        &[
            "--operation",
            "Install",
            "--run",
            &f.name,
            "--exit-after-report",
        ],
        &f.work.path().join("agent.log"),
    );
    let exit = tokio::task::spawn_blocking(move || {
        let mut agent = agent;
        agent.0.wait()
    })
    .await
    .expect("join")
    .expect("wait");
    let log = std::fs::read_to_string(f.work.path().join("agent.log")).unwrap_or_default();
    assert!(exit.success(), "{log}");
    let report = Api::<NodePatchReport>::all(client.clone())
        .get(&f.name)
        .await
        .expect("report");
    let status = report.status.expect("status");
    let op = status.operation.clone().expect("operation");
    assert_eq!(
        (op.run.as_str(), op.type_, op.phase),
        (
            f.name.as_str(),
            Some(Operation::Scan),
            OperationPhase::Failed
        ),
        "a confirming scan that keeps the run Failed: {op:?}\n{log}"
    );
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert_eq!(ready.reason, "InstallInterrupted", "{ready:?}");
    assert!(
        op.message
            .as_deref()
            .is_some_and(|m| m.contains("interrupted")),
        "{op:?}"
    );
    assert!(
        f.root
            .dpkg_status("np-sec")
            .contains("install ok installed"),
        "dpkg repaired: {}",
        f.root.dpkg_status("np-sec")
    );
    assert_eq!(
        f.root.installed_version("np-bugfix").as_deref(),
        Some("1.0-1"),
        "the install is not run again"
    );
    assert!(!mark.exists(), "the mark is cleared");
    f.cleanup(&client).await;
}
