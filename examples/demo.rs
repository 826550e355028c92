//! `make demo`: nodepatch end to end on the local control plane.
//!
//! 1. the local control plane (etcd, kube-apiserver, kcm, scheduler, kwok) is started or reused;
//! 2. the Helm chart is installed with `helm upgrade --install` (controller replicas 0: there is
//!    no kubelet to run it, so the controller runs here as a local process authenticated as the
//!    chart's ServiceAccount);
//! 3. three demo nodes are created, each backed by a real debootstrapped Debian root with a local
//!    apt repository; nodes without a root are opted out with `nodepatch.dev/exclude=true`;
//! 4. the pod runner starts the real `nodepatch agent` for every run DaemonSet pod;
//! 5. the samples are applied (policies scan at once) and the "patch now" PatchRun installs;
//! 6. `kubectl get npbl,npmw,nppol,nprun,npr` and a compliance table are printed.
//!
//! Running it again works: objects are applied, the patch-now run is recreated, roots are fresh.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::{Node, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use nodepatch::api::{NodePatchReport, PatchRun};
use serde_json::json;

const DEMO_NODES: [(&str, bool); 3] = [
    ("demo-prod-1", true),
    ("demo-prod-2", true),
    ("demo-staging-1", false),
];

fn sh(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn kubectl() -> Command {
    let mut c = Command::new(support::tool("kubectl"));
    c.arg("--kubeconfig")
        .arg(support::kubeconfig_path())
        .current_dir(support::repo_root());
    c
}

fn step(text: &str) {
    println!("\n==> {text}");
}

async fn ensure_demo_nodes(client: &Client) -> anyhow::Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    for (i, (name, production)) in DEMO_NODES.iter().enumerate() {
        let mut labels = json!({
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok",
            "topology.kubernetes.io/zone": if i % 2 == 0 { "zone-a" } else { "zone-b" },
            "nodepatch.dev/demo": "true",
        });
        if *production {
            labels["node-role.kubernetes.io/production"] = json!("");
        }
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"}, "labels": labels},
            "status": {
                "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                "nodeInfo": {
                    "architecture": "amd64", "bootID": format!("boot-{name}"), "containerRuntimeVersion": "containerd://2.0.0",
                    "kernelVersion": "6.1.0-28-amd64", "kubeProxyVersion": "", "kubeletVersion": "v1.37.2",
                    "machineID": "demo", "operatingSystem": "linux", "osImage": "Debian GNU/Linux 12 (bookworm)", "systemUUID": "demo"
                }
            }
        }))?;
        match api.create(&PostParams::default(), &node).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    // Nodes without a node root here (the cluster's other kwok nodes) opt out, the way a platform
    // team excludes nodes it patches otherwise.
    for node in api.list_metadata(&ListParams::default()).await?.items {
        let name = node.name_any();
        if !DEMO_NODES.iter().any(|(n, _)| *n == name) {
            let patch = json!({"metadata": {"labels": {"nodepatch.dev/exclude": "true"}}});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            println!("    {name}: no node root in this demo, labelled nodepatch.dev/exclude=true");
        }
    }
    Ok(())
}

async fn controller_kubeconfig(client: &Client, dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    let request: k8s_openapi::api::authentication::v1::TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 7200}}))?;
    let token = Api::<ServiceAccount>::namespaced(client.clone(), "nodepatch-system")
        .create_token_request("nodepatch-controller", &PostParams::default(), &request)
        .await?
        .status
        .and_then(|s| s.token)
        .context("TokenRequest returned no token")?;
    Ok(support::podrunner::token_kubeconfig(
        dir,
        "nodepatch-controller",
        &token,
    ))
}

async fn wait_for_runs(client: &Client, expected: &[(&str, &str)]) -> anyhow::Result<()> {
    let api: Api<PatchRun> = Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let runs = api.list(&ListParams::default()).await?.items;
        let done = expected.iter().all(|(policy, op)| {
            runs.iter().any(|r| {
                r.spec.policy_ref == *policy
                    && r.spec.operation.as_str() == *op
                    && r.status.as_ref().is_some_and(|s| s.phase.is_finished())
            })
        });
        if done {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("runs did not finish within 5 minutes; see .local/log/demo-controller.log");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let root = support::repo_root();
    step("a fresh local control plane (e2e/cluster.sh down && up)");
    // A clean slate every time makes the demo repeatable, whatever tests left in the cluster.
    let _ = Command::new(root.join("e2e/cluster.sh"))
        .arg("down")
        .status();
    let client = support::cluster()
        .await
        .context("the local control plane is not available")?;
    println!("    kubeconfig: {}", support::kubeconfig_path().display());

    step("helm upgrade --install nodepatch charts/nodepatch");
    sh(Command::new(support::tool("helm"))
        .current_dir(&root)
        .args(["--kubeconfig"])
        .arg(support::kubeconfig_path())
        .args([
            "upgrade",
            "--install",
            "nodepatch",
            "charts/nodepatch",
            "--namespace",
            "nodepatch-system",
            "--create-namespace",
            // The chart templates the CRDs; on a cluster where tests applied them already,
            // the release adopts them instead of failing.
            "--take-ownership",
        ])
        .args(["--set", "controller.replicas=0"])
        // The image the demo's controller gives its agents: the chart's DaemonSet admission
        // policy pins the controller to it.
        .args([
            "--set",
            "image.repository=nodepatch",
            "--set",
            "image.tag=demo",
        ]))?;
    println!(
        "{}",
        sh(Command::new(support::tool("helm"))
            .arg("--kubeconfig")
            .arg(support::kubeconfig_path())
            .args(["list", "-n", "nodepatch-system"]))?
    );

    step("demo nodes with real Debian roots");
    ensure_demo_nodes(&client).await?;
    if let Some(reason) = support::roots::missing_prerequisite() {
        bail!("cannot build node roots: {reason}");
    }
    let mut kept = vec![];
    let roots: Arc<Mutex<BTreeMap<String, PathBuf>>> = Arc::default();
    for (name, _) in DEMO_NODES {
        let r = support::roots::DebianRoot::with_standard_repo(
            &format!("demo-{name}"),
            &["bookworm", "bookworm-security", "bookworm-updates"],
        )
        .context("building a Debian root")?;
        // The root's boot ID is what its Node reports; the pod runner changes both when it
        // simulates the reboot an agent asks for.
        support::podrunner::write_boot_id(r.path(), &format!("boot-{name}"));
        roots
            .lock()
            .expect("roots")
            .insert(name.to_string(), r.path().to_path_buf());
        println!("    {name}: {}", r.path().display());
        kept.push(r);
    }

    step("pod runner and controller (as the chart's ServiceAccount)");
    let log_dir = root.join(".local/log/demo");
    std::fs::create_dir_all(&log_dir)?;
    let _runner = support::podrunner::PodRunner::start(
        client.clone(),
        "nodepatch-agents",
        roots.clone(),
        &log_dir,
    );
    let kubeconfig = controller_kubeconfig(&client, &log_dir).await?;
    let _controller = support::ControllerProcess::start_with_kubeconfig(
        "demo-controller",
        &kubeconfig,
        &[
            "--agent-namespace",
            "nodepatch-agents",
            "--agent-image",
            "nodepatch:demo",
        ],
    );
    println!("    controller log: .local/log/demo-controller.log, agent logs: .local/log/demo/");

    step("apply the samples (policies scan at once) and a \"patch now\" run");
    let runs: Api<PatchRun> = Api::all(client.clone());
    let _ = runs
        .delete("production-patch-now", &DeleteParams::default())
        .await;
    let _ = runs
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("nodepatch.dev/policy"),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let samples = root.join("config/samples");
    for file in [
        "patchbaseline-ubuntu.yaml",
        "patchbaseline-debian.yaml",
        "patchbaseline-rhel.yaml",
        "patchbaseline-amazonlinux2023.yaml",
        "maintenancewindow-patch-tuesday.yaml",
        "maintenancewindow-nightly.yaml",
        "patchpolicy-daily-scan.yaml",
        "patchpolicy-production.yaml",
        "patchrun-patch-now.yaml",
    ] {
        print!(
            "    {}",
            sh(kubectl().arg("apply").arg("-f").arg(samples.join(file)))?
        );
    }
    // The production sample soaks 15 minutes between zones; the demo has no time for that.
    print!(
        "    {}",
        sh(kubectl().args([
            "patch",
            "patchpolicy",
            "production",
            "--type=merge",
            "-p",
            r#"{"spec":{"rollout":{"soakTime":"5s"}}}"#
        ]))?
    );
    println!("    (production's soakTime shortened from 15m to 5s for the demo)");
    wait_for_runs(
        &client,
        &[
            ("fleet-scan", "Scan"),
            ("production", "Scan"),
            ("production", "Install"),
        ],
    )
    .await?;
    // Let the policies roll the reports up.
    tokio::time::sleep(Duration::from_secs(3)).await;

    step("kubectl get npbl,npmw,nppol,nprun,npr");
    println!(
        "{}",
        sh(kubectl().args(["get", "npbl,npmw,nppol,nprun,npr"]))?
    );

    step("what the patch-now run did (its Events)");
    println!(
        "{}",
        sh(kubectl().args([
            "get",
            "events.events.k8s.io",
            "-n",
            "default",
            "--field-selector",
            "regarding.name=production-patch-now",
            "--sort-by=.metadata.creationTimestamp",
            "-o",
            "custom-columns=REASON:.reason,NOTE:.note",
        ]))?
    );

    step("compliance");
    let reports: Api<NodePatchReport> = Api::all(client.clone());
    println!(
        "{:<16} {:<10} {:<13} {:<8} {:>7} {:>9} {:>7}  BASELINE",
        "NODE", "OS", "COMPLIANCE", "LEVEL", "MISSING", "INSTALLED", "REBOOT"
    );
    for (name, _) in DEMO_NODES {
        let Some(status) = reports.get_opt(name).await?.and_then(|r| r.status) else {
            println!("{name:<16} (no report)");
            continue;
        };
        println!(
            "{:<16} {:<10} {:<13} {:<8} {:>7} {:>9} {:>7}  {}",
            name,
            status
                .os
                .as_ref()
                .map(|o| format!("{} {}", o.id, o.version_id))
                .unwrap_or_default(),
            status.compliance.as_str(),
            status.compliance_level.map(|l| l.as_str()).unwrap_or("-"),
            status.counts.missing,
            status.counts.installed,
            if status.reboot_required { "yes" } else { "no" },
            status.baseline.map(|b| b.name).unwrap_or_default(),
        );
    }
    println!(
        "\nmake demo finished in {:.0?}; the cluster stays up (make demo-down stops it).",
        started.elapsed()
    );
    Ok(())
}
