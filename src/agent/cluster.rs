//! `nodepatch agent`: the node agent in cluster mode. It runs one operation for its node and
//! writes the result into the node's NodePatchReport status, then idles until its pod is
//! removed (the run DaemonSet is the job; see ARCHITECTURE.md).
//!
//! The kube code is thin: read the Node (for the owner reference) and the PatchRun (for the
//! baseline snapshot of the node's OS), server-side apply the status with field manager
//! `nodepatch-agent`. Everything else is [`run_operation`], which does not know about the
//! cluster.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};

use super::apt::install::AptCommands;
use super::host::{HostExec, HostRoot};
use super::operation::{BaselineChoice, NodeAgent, OperationRequest, bound_message, run_operation};
use super::os::{boot_id, detect_os};
use super::state::LastOperation;
use crate::api::conditions::{ConditionStatus, READY, new_condition, set_condition};
use crate::api::{
    AGENT_MANAGER, Compliance, NodePatchReport, NodePatchReportSpec, NodePatchReportStatus,
    OperatingSystem, Operation, OperationPhase, OperationStatus, PatchRun,
};
use crate::baseline::ResolvedBaseline;

/// The operation the agent was started for.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentOperation {
    /// Read-only scan.
    #[value(name = "Scan")]
    Scan,
    /// Install the approved patches.
    #[value(name = "Install")]
    Install,
}

impl From<AgentOperation> for Operation {
    fn from(value: AgentOperation) -> Operation {
        match value {
            AgentOperation::Scan => Operation::Scan,
            AgentOperation::Install => Operation::Install,
        }
    }
}

/// Arguments of `nodepatch agent` (what the run DaemonSet's pod template passes).
#[derive(clap::Args, Debug, Clone)]
#[command(
    after_help = "Example (the run DaemonSet's container):\n  nodepatch agent --operation Install --run ubuntu-prod-20260101-0200 --host-root /host\n\nNeeds: a privileged pod with hostPID: true, the host's / mounted at --host-root, nsenter (util-linux) in the image, NODE_NAME from the downward API (spec.nodeName)."
)]
pub struct AgentArgs {
    /// Scan or Install (ignored in favour of a confirming Scan when this node already finished
    /// the install of --run, e.g. after the reboot it asked for).
    #[arg(long, value_enum, ignore_case = true)]
    pub operation: AgentOperation,
    /// Where the host's `/` is mounted.
    #[arg(long, value_name = "DIR", default_value = "/host")]
    pub host_root: PathBuf,
    /// The PatchRun this operation belongs to; its status `baselineSnapshots` gives the
    /// baseline. Without it, the predefined baseline of the node's OS is used.
    #[arg(long, value_name = "NAME")]
    pub run: Option<String>,
    /// This node's name.
    #[arg(long, env = "NODE_NAME", value_name = "NAME")]
    pub node_name: String,
    /// How host commands run: nsenter into PID 1's namespaces (production) or chroot into
    /// --host-root (test roots).
    #[arg(long, value_enum, default_value_t = HostExec::Nsenter)]
    pub host_exec: HostExec,
    /// The host command that reboots the node, as an argv (run through --host-exec). The agent
    /// never reboots on its own; the reboot flow uses this.
    #[arg(long, value_name = "ARGV", num_args = 1.., default_values = ["systemctl", "reboot"])]
    pub reboot_command: Vec<String>,
    /// Skip `apt-get update` before the operation.
    #[arg(long)]
    pub no_refresh: bool,
    /// Seconds apt waits for the dpkg lock (DPkg::Lock::Timeout).
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub lock_timeout: u32,
    /// Exit after writing the report instead of idling until terminated.
    #[arg(long)]
    pub exit_after_report: bool,
}

/// The owner reference that ties a NodePatchReport to its Node (deleted with it).
pub fn node_owner_reference(node: &Node) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: node.name_any(),
        uid: node.metadata.uid.clone()?,
        controller: None,
        block_owner_deletion: None,
    })
}

/// Create the node's NodePatchReport when it does not exist (an empty spec, owned by the Node).
pub async fn ensure_report(api: &Api<NodePatchReport>, node: &Node) -> anyhow::Result<()> {
    let name = node.name_any();
    if api
        .get_opt(&name)
        .await
        .with_context(|| format!("reading NodePatchReport {name}"))?
        .is_some()
    {
        return Ok(());
    }
    let report = NodePatchReport {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            owner_references: node_owner_reference(node).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        spec: NodePatchReportSpec {},
        status: None,
    };
    match api.create(&PostParams::default(), &report).await {
        Ok(_) => Ok(()),
        // Created concurrently (a restarted agent): fine.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating NodePatchReport {name}")),
    }
}

/// Server-side apply `status` as the node's report status (field manager `nodepatch-agent`).
pub async fn apply_report_status(
    api: &Api<NodePatchReport>,
    node_name: &str,
    status: &NodePatchReportStatus,
) -> anyhow::Result<()> {
    let body = serde_json::json!({
        "apiVersion": format!("{}/{}", crate::api::GROUP, crate::api::VERSION),
        "kind": "NodePatchReport",
        "metadata": {"name": node_name},
        "status": status,
    });
    api.patch_status(
        node_name,
        &PatchParams::apply(AGENT_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .with_context(|| format!("writing NodePatchReport {node_name} status"))?;
    Ok(())
}

/// The baseline for this node: the run's snapshot for the node's OS, else predefined.
async fn baseline_for(
    client: &Client,
    run: &str,
    os: Option<OperatingSystem>,
) -> Result<(BaselineChoice, Option<String>), String> {
    if run.is_empty() {
        return Ok((BaselineChoice::PredefinedForNode, None));
    }
    let patch_run = Api::<PatchRun>::all(client.clone())
        .get(run)
        .await
        .map_err(|e| format!("reading PatchRun {run}: {e}"))?;
    let snapshots = patch_run
        .status
        .map(|s| s.baseline_snapshots)
        .unwrap_or_default();
    let Some(snapshot) = os.and_then(|os| snapshots.into_iter().find(|s| s.operating_system == os))
    else {
        return Ok((
            BaselineChoice::PredefinedForNode,
            Some(format!(
                "PatchRun {run} has no baseline snapshot for this node's OS; used the predefined baseline"
            )),
        ));
    };
    let resolved = ResolvedBaseline::resolve(snapshot.name.clone(), &snapshot.baseline)
        .map_err(|e| format!("PatchRun {run} baseline snapshot {}: {e}", snapshot.name))?;
    let note = (resolved.hash() != snapshot.hash).then(|| {
        format!(
            "baseline snapshot {} hash {} differs from this agent's {} (agent and controller versions differ?)",
            snapshot.name,
            snapshot.hash,
            resolved.hash()
        )
    });
    Ok((BaselineChoice::Resolved(Box::new(resolved)), note))
}

/// A report for a failure before the operation could start (unreadable PatchRun, …).
fn setup_failure(
    run: &str,
    operation: Operation,
    reason: &str,
    message: String,
    now: Timestamp,
) -> NodePatchReportStatus {
    let message = bound_message(message);
    let mut status = NodePatchReportStatus {
        compliance: Compliance::Unknown,
        operation: Some(OperationStatus {
            run: run.to_string(),
            type_: Some(operation),
            phase: OperationPhase::Failed,
            boot_id: None,
            start_time: Some(Time(now)),
            end_time: Some(Time(now)),
            message: Some(message.clone()),
        }),
        ..NodePatchReportStatus::default()
    };
    set_condition(
        &mut status.conditions,
        new_condition(READY, ConditionStatus::False, reason, message, None, now),
    );
    status
}

/// `nodepatch agent`.
pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        !args.reboot_command.is_empty(),
        "--reboot-command needs at least a program"
    );
    let run = args.run.clone().unwrap_or_default();
    let client = Client::try_default()
        .await
        .context("connecting to the API server")?;
    let reports: Api<NodePatchReport> = Api::all(client.clone());
    let node = Api::<Node>::all(client.clone())
        .get(&args.node_name)
        .await
        .with_context(|| format!("reading Node {}", args.node_name))?;
    let root = HostRoot::new(&args.host_root);
    tracing::info!(
        node = %args.node_name, run = %run, host_root = %root.path().display(), exec = ?args.host_exec,
        reboot_command = ?args.reboot_command, "nodepatch agent starting"
    );
    ensure_report(&reports, &node).await?;

    // A finished install of this run (before a reboot, or before the pod restarted) is never
    // repeated: confirm with a scan that keeps its failures.
    let mut request = OperationRequest::new(args.operation.into(), run.clone());
    request.refresh = !args.no_refresh;
    match LastOperation::load(&root) {
        Ok(Some(last)) if last.install_done_for(&run) => {
            tracing::info!(boot_id = %last.boot_id, current_boot_id = %boot_id(&root), "install of this run already done; re-scanning");
            request.operation = Operation::Scan;
            request.previous_failures = last.failed;
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("{e}; treating the node as not yet operated on"),
    }

    let os = detect_os(&root).ok().and_then(|d| d.operating_system);
    let (baseline, baseline_note) = match baseline_for(&client, &run, os).await {
        Ok(choice) => choice,
        Err(message) => {
            let status = setup_failure(
                &run,
                request.operation,
                "BaselineUnavailable",
                message,
                Timestamp::now(),
            );
            apply_report_status(&reports, &args.node_name, &status).await?;
            return idle(args.exit_after_report).await;
        }
    };

    // Show the operation as under way, keeping the previous verdict until the new one is ready.
    let mut in_progress = reports
        .get_status(&args.node_name)
        .await?
        .status
        .unwrap_or_default();
    in_progress.operation = Some(OperationStatus {
        run: run.clone(),
        type_: Some(request.operation),
        phase: match request.operation {
            Operation::Scan => OperationPhase::Scanning,
            Operation::Install => OperationPhase::Installing,
        },
        boot_id: Some(boot_id(&root)).filter(|b| !b.is_empty()),
        start_time: Some(Time(Timestamp::now())),
        end_time: None,
        message: None,
    });
    apply_report_status(&reports, &args.node_name, &in_progress).await?;

    let agent = NodeAgent {
        executor: args.host_exec.executor(root.path()),
        root,
        apt: AptCommands {
            lock_timeout_secs: args.lock_timeout,
            ..AptCommands::default()
        },
    };
    let agent = Arc::new(agent);
    let mut status = tokio::task::spawn_blocking(move || {
        run_operation(&agent, &request, &baseline, &Timestamp::now)
    })
    .await
    .context("agent operation panicked")?;
    if let (Some(note), Some(op)) = (baseline_note, status.operation.as_mut()) {
        let message = match op.message.take() {
            Some(m) => format!("{note}; {m}"),
            None => note,
        };
        op.message = Some(bound_message(message));
    }
    apply_report_status(&reports, &args.node_name, &status).await?;
    tracing::info!(
        compliance = status.compliance.as_str(),
        phase = ?status.operation.as_ref().map(|o| o.phase),
        "report written"
    );
    idle(args.exit_after_report).await
}

/// Wait for SIGTERM or SIGINT (the pod being removed), unless told to exit.
async fn idle(exit_now: bool) -> anyhow::Result<()> {
    if exit_now {
        return Ok(());
    }
    tracing::info!("operation done; idling until terminated");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
