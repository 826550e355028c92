//! `make bench-scale`: the controller at fleet scale against the real local control plane.
//!
//! Creates N kwok nodes (Debian in nodeInfo) with a NodePatchReport each (as agents would have
//! written: a scanned node with 20 patches), starts `nodepatch controller` (release build), and
//! measures:
//! - time from start to ready (caches synced) and resident memory then;
//! - a scan run over all N nodes with maxConcurrency 100%: agents are simulated by this program,
//!   which answers every node the controller labels with a finished Scan in its report; time
//!   from the PatchRun's creation to Succeeded;
//! - the controller's peak resident memory (VmHWM), CPU time, and its status writes;
//! - idle: status writes and CPU in the 30 s after the run (should be ~0).
//!
//! `NODES` (default 500) sets N. Nodes and objects are prefixed `scale-` and deleted at the end.
//! Run it on a cluster without other PatchPolicies (a policy selecting every node would make the
//! scale nodes conflicts): `make cluster-down cluster-up bench-scale`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use nodepatch::api::{
    Compliance, ComplianceLevel, NodePatchReport, NodePatchReportStatus, Operation, OperationPhase,
    OperationStatus, OsInfo, PackageFamily, PatchPolicy, PatchRun, PatchState, PatchStateCounts,
    PatchStatus, RUN_LABEL, RunPhase,
};
use serde_json::json;

const GROUP: &str = "nodepatch.dev/scale";

/// Resident memory now and at peak (kB) and CPU seconds of a process, from /proc.
fn process_stats(pid: u32) -> (u64, u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name: utime and stime are the 14th and 15th of the line.
    let after = stat.rsplit_once(") ").map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let hz = 100.0; // sysconf(_SC_CLK_TCK) on Linux
    (kb("VmRSS:"), kb("VmHWM:"), (ticks(11) + ticks(12)) / hz)
}

fn report_status(run: &str, operation: Operation, node: &str) -> serde_json::Value {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let patches: Vec<PatchStatus> = (0..20)
        .map(|i| PatchStatus {
            name: format!("pkg-{i:02}"),
            arch: None,
            installed_version: Some("1.0-1".into()),
            available_version: Some("1.0-2".into()),
            state: PatchState::Missing,
            classification: Some("Security".into()),
            severity: Some("Important".into()),
            compliance_level: Some(ComplianceLevel::High),
            release_date: None,
            cves: vec![format!("CVE-2026-{i:04}")],
            advisory: None,
        })
        .collect();
    let status = NodePatchReportStatus {
        os: Some(OsInfo {
            family: Some(PackageFamily::Deb),
            id: "debian".into(),
            version_id: "12".into(),
            pretty_name: "Debian GNU/Linux 12 (bookworm)".into(),
            kernel: "6.1.0-28-amd64".into(),
        }),
        compliance: Compliance::NonCompliant,
        compliance_level: Some(ComplianceLevel::High),
        counts: PatchStateCounts {
            installed: 300,
            missing: 20,
            ..Default::default()
        },
        patches,
        boot_id: Some(format!("boot-{node}")),
        last_scan_time: Some(now.clone()),
        operation: Some(OperationStatus {
            run: run.to_string(),
            type_: Some(operation),
            phase: OperationPhase::Succeeded,
            boot_id: Some(format!("boot-{node}")),
            start_time: Some(now.clone()),
            end_time: Some(now),
            ..OperationStatus::default()
        }),
        ..Default::default()
    };
    json!({
        "apiVersion": "nodepatch.dev/v1alpha1", "kind": "NodePatchReport",
        "metadata": {"name": node},
        "status": status,
    })
}

async fn write_report(
    client: &Client,
    node: &str,
    status: &serde_json::Value,
) -> anyhow::Result<()> {
    Api::<NodePatchReport>::all(client.clone())
        .patch_status(
            node,
            &PatchParams::apply("nodepatch-agent").force(),
            &Patch::Apply(status),
        )
        .await?;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let client = support::cluster()
        .await
        .context("no local control plane (make cluster-up)")?;
    support::ensure_crds(&client).await;
    let nodes: Api<Node> = Api::all(client.clone());
    let reports: Api<NodePatchReport> = Api::all(client.clone());
    let pp = PostParams::default();

    println!("creating {n} nodes with reports…");
    let t = Instant::now();
    // Names unique to this invocation: a previous one's nodes may still be going away.
    let names: Vec<String> = (0..n)
        .map(|i| format!("scale-{}-{i:05}", std::process::id()))
        .collect();
    let creates = futures::stream::iter(names.clone())
        .map(|name| {
            let (nodes, reports, client) = (nodes.clone(), reports.clone(), client.clone());
            async move {
                let node: Node = serde_json::from_value(json!({
                    "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"},
                        "labels": {"type": "kwok", GROUP: "true", "kubernetes.io/hostname": name,
                                   "topology.kubernetes.io/zone": format!("zone-{}", name.len() % 3)}},
                    "status": {"nodeInfo": {"architecture": "amd64", "bootID": format!("boot-{name}"),
                        "containerRuntimeVersion": "", "kernelVersion": "6.1.0", "kubeProxyVersion": "",
                        "kubeletVersion": "v1.37.2", "machineID": "m", "operatingSystem": "linux",
                        "osImage": "Debian GNU/Linux 12 (bookworm)", "systemUUID": "u"}}
                }))?;
                let node = match nodes.create(&PostParams::default(), &node).await {
                    Ok(n) => n,
                    Err(kube::Error::Api(s)) if s.code == 409 => nodes.get(&name).await?,
                    Err(e) => return Err(anyhow::Error::from(e)),
                };
                let report: NodePatchReport = serde_json::from_value(json!({
                    "metadata": {"name": name, "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": node.uid()}]},
                    "spec": {}
                }))?;
                match reports.create(&PostParams::default(), &report).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
                write_report(&client, &name, &report_status("", Operation::Scan, &name)).await
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    for r in creates {
        r?;
    }
    println!("  {n} nodes and reports in {:.1?}", t.elapsed());

    // The controller, release build, admin credentials (RBAC is not what is measured here).
    let bin = support::repo_root().join("target/release/nodepatch");
    anyhow::ensure!(bin.exists(), "build it first: cargo build --release");
    let started = Instant::now();
    let mut controller = support::ControllerProcess::spawn(
        &bin,
        "scale-controller",
        &support::kubeconfig_path(),
        &["--agent-namespace", "default"],
        "warn",
    );
    let pid = controller.pid();
    let http = |path: &str| controller.http_get(path);
    let metric = |text: &str, prefix: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    while http("/readyz").is_none() {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "controller not ready in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ready_after = started.elapsed();
    let (rss_ready, _, _) = process_stats(pid);

    // Simulated agents: every node labelled into a run gets a finished Scan of that run.
    let answered = std::sync::Arc::new(std::sync::Mutex::new(BTreeSet::<String>::new()));
    let agents = {
        let (client, answered) = (client.clone(), answered.clone());
        tokio::spawn(async move {
            let cfg = watcher::Config::default().labels(&format!("{GROUP}=true,{RUN_LABEL}"));
            let metas: Api<kube::core::PartialObjectMeta<Node>> = Api::all(client.clone());
            let mut stream = watcher::watcher(metas, cfg).boxed();
            while let Some(Ok(event)) = stream.next().await {
                let metas = match event {
                    Event::Apply(m) | Event::InitApply(m) => vec![m],
                    _ => continue,
                };
                for m in metas {
                    let node = m.name_any();
                    let Some(run) = m.labels().get(RUN_LABEL).cloned() else {
                        continue;
                    };
                    if !answered
                        .lock()
                        .expect("answered")
                        .insert(format!("{run}/{node}"))
                    {
                        continue;
                    }
                    let client = client.clone();
                    tokio::spawn(async move {
                        let _ = write_report(
                            &client,
                            &node,
                            &report_status(&run, Operation::Scan, &node),
                        )
                        .await;
                    });
                }
            }
        })
    };

    let policy_name = "scale-scan";
    let policy: PatchPolicy = serde_json::from_value(json!({
        "metadata": {"name": policy_name},
        "spec": {"nodeSelector": {"matchLabels": {GROUP: "true"}}, "rollout": {"maxConcurrency": "100%", "maxErrors": "100%"}}
    }))?;
    let t_run = Instant::now();
    let policy_uid = Api::<PatchPolicy>::all(client.clone())
        .create(&pp, &policy)
        .await?
        .uid()
        .unwrap_or_default();
    let runs: Api<PatchRun> = Api::all(client.clone());
    let run = loop {
        anyhow::ensure!(
            t_run.elapsed() < Duration::from_secs(600),
            "scan run not finished in 10 min"
        );
        let list = runs.list(&ListParams::default()).await?;
        if let Some(r) = list.items.into_iter().find(|r| {
            let ours = r.owner_references().iter().any(|o| o.uid == policy_uid);
            ours && r.status.as_ref().is_some_and(|s| s.phase.is_finished())
        }) {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let run_time = t_run.elapsed();
    println!(
        "  run {}: created {:?}, started {:?}, completed {:?}",
        run.name_any(),
        run.metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string()),
        run.status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0.to_string()),
        run.status
            .as_ref()
            .and_then(|s| s.completion_time.as_ref())
            .map(|t| t.0.to_string()),
    );
    let status = run.status.clone().unwrap_or_default();
    let metrics = http("/metrics").unwrap_or_default();
    let writes = metric(&metrics, "nodepatch_status_writes_total");
    let (rss_run, hwm, cpu_run) = process_stats(pid);

    // Idle: nothing changes for 30 s.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let metrics = http("/metrics").unwrap_or_default();
    let idle_writes = metric(&metrics, "nodepatch_status_writes_total") - writes;
    let (_, _, cpu_idle) = process_stats(pid);

    println!(
        "\n| N nodes | ready (caches synced) | RSS at ready | scan run over N nodes | phase | controller CPU during setup+run | peak RSS (VmHWM) | RSS after run | status writes (run) | status writes in 30 s idle | CPU in 30 s idle |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {n} | {:.2} s | {:.1} MiB | {:.1} s | {} ({} succeeded) | {:.2} s | {:.1} MiB | {:.1} MiB | {writes} | {idle_writes} | {:.2} s |",
        ready_after.as_secs_f64(),
        rss_ready as f64 / 1024.0,
        run_time.as_secs_f64(),
        status.phase.as_str(),
        status.nodes.succeeded,
        cpu_run,
        hwm as f64 / 1024.0,
        rss_run as f64 / 1024.0,
        cpu_idle - cpu_run,
    );
    anyhow::ensure!(
        status.phase == RunPhase::Succeeded && status.nodes.succeeded as usize == n,
        "run ended {:?} with {:?}: {:?}",
        status.phase,
        status.nodes,
        status.message
    );

    agents.abort();
    controller.kill();
    // Clean up: the policy (its runs go with it) and the nodes (their reports go with them).
    let _ = Api::<PatchPolicy>::all(client.clone())
        .delete(policy_name, &DeleteParams::default())
        .await;
    let _ = nodes
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels(&format!("{GROUP}=true")),
        )
        .await;
    Ok(())
}
