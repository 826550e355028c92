//! `nodepatch agent`: the node agent in cluster mode. It runs one operation for its node and
//! writes the result into the node's NodePatchReport status, then idles until its pod is
//! removed (the run DaemonSet is the job; see docs/architecture.md).
//!
//! The kube code is thin: read the Node (for the owner reference) and the PatchRun (for the
//! baseline snapshot of the node's OS, the reboot option and the install hooks), server-side
//! apply the status with field manager `nodepatch-agent` (a Preview's result with
//! `nodepatch-agent-preview`, into `status.preview` only). Everything else is [`run_operation`], which does not know about the
//! cluster.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};

use super::backend::apt::install::AptCommands;
use super::backend::contract::NodeAgent;
use super::backend::{Backend, BackendSettings};
use super::hook::Hooks;
use super::host::HostRoot;
use super::host::command::{HostCommand, HostExecutor, StoppingExecutor};
use super::host::exec::HostExec;
use super::operation::{
    BaselineChoice, OperationRequest, bound_message, run_operation, run_preview, with_report_health,
};
use super::os::{boot_id, detect_os};
use super::resume::{Resume, interrupted_install, interrupted_install_failed, resume};
use super::state::{INSTALL_STARTED_PATH, LastOperation, REBOOT_REQUESTED_PATH, RunMarker};
use crate::api::conditions::{ConditionStatus, READY, new_condition, set_condition};
use crate::api::{
    AGENT_MANAGER, AGENT_PREVIEW_MANAGER, Compliance, NodePatchReport, NodePatchReportSpec,
    NodePatchReportStatus, OperatingSystem, Operation, OperationPhase, OperationStatus, PatchRun,
    PreviewResult, TargetState,
};
use crate::baseline::ResolvedBaseline;
use crate::baseline::preview::preview_failure;
use crate::rollout::baseline::{BaselineChoice as Chosen, choose_baseline};

/// The operation the agent was started for.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentOperation {
    /// Read-only scan.
    #[value(name = "Scan")]
    Scan,
    /// Install the approved patches.
    #[value(name = "Install")]
    Install,
    /// Evaluate the run's draft baseline next to the current one; writes only the report's
    /// `status.preview`.
    #[value(name = "Preview")]
    Preview,
}

impl From<AgentOperation> for Operation {
    fn from(value: AgentOperation) -> Operation {
        match value {
            AgentOperation::Scan => Operation::Scan,
            AgentOperation::Install => Operation::Install,
            AgentOperation::Preview => Operation::Preview,
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
    /// The host command that reboots the node, one argv element per flag, in order (run
    /// through --host-exec, never a shell): `--reboot-command=shutdown --reboot-command=-r
    /// --reboot-command=now`. An element may start with `-`. The agent runs it only when the
    /// PatchRun says so: its node's target is `Rebooting` (cordoned and drained) for the boot the
    /// node is on.
    #[arg(
        long,
        value_name = "ARG",
        num_args = 1,
        action = clap::ArgAction::Append,
        allow_hyphen_values = true,
        default_values = ["systemctl", "reboot"]
    )]
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
    /// Seconds between looks at the PatchRun while waiting to be told to reboot.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub poll_seconds: u64,
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
    // Every write carries the kstatus conditions of what it writes.
    let status = with_report_health(status.clone(), Timestamp::now());
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

/// Server-side apply a Preview result as the report's `status.preview` under its own field
/// manager ([`AGENT_PREVIEW_MANAGER`]): the verdict the agent's other applies own is untouched,
/// and the previous preview (owned by the same manager) is replaced.
pub async fn apply_report_preview(
    api: &Api<NodePatchReport>,
    node_name: &str,
    preview: &PreviewResult,
) -> anyhow::Result<()> {
    let body = serde_json::json!({
        "apiVersion": format!("{}/{}", crate::api::GROUP, crate::api::VERSION),
        "kind": "NodePatchReport",
        "metadata": {"name": node_name},
        "status": {"preview": preview},
    });
    api.patch_status(
        node_name,
        &PatchParams::apply(AGENT_PREVIEW_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .with_context(|| format!("writing NodePatchReport {node_name} status.preview"))?;
    Ok(())
}

/// A Preview run on this node: the run's draft and the node's current baseline (its snapshot),
/// evaluated against one read of the node; the result goes to `status.preview` only.
async fn preview(
    client: &Client,
    reports: &Api<NodePatchReport>,
    args: &AgentArgs,
    agent: NodeAgent,
    request: OperationRequest,
) -> anyhow::Result<()> {
    let run = request.run.clone();
    let now = Timestamp::now();
    let patch_run = Api::<PatchRun>::all(client.clone()).get(&run).await;
    let prepared = match patch_run {
        Err(e) => Err(format!("reading PatchRun {run}: {e}")),
        Ok(patch_run) => preview_baselines(&patch_run, &agent.root),
    };
    let result = match prepared {
        Err(message) => preview_failure(&run, Compliance::Unknown, message, now),
        Ok((current, draft)) => {
            let agent = Arc::new(agent);
            tokio::task::spawn_blocking(move || {
                run_preview(&agent, &request, &current, &draft, &Timestamp::now)
            })
            .await
            .context("agent preview panicked")?
        }
    };
    apply_report_preview(reports, &args.node_name, &result).await?;
    tracing::info!(
        compliance = result.compliance.as_str(),
        current = result.current_compliance.as_str(),
        newly_missing = result.newly_missing_count,
        no_longer_missing = result.no_longer_missing_count,
        "preview written"
    );
    idle(args.exit_after_report).await
}

/// The current baseline (the run's snapshot for the node's OS) and the run's draft, resolved.
fn preview_baselines(
    patch_run: &PatchRun,
    root: &HostRoot,
) -> Result<(BaselineChoice, ResolvedBaseline), String> {
    let run = patch_run.name_any();
    let Some(preview) = &patch_run.spec.preview else {
        return Err(format!("PatchRun {run} has no spec.preview"));
    };
    let draft = ResolvedBaseline::resolve(format!("preview:{run}"), &preview.baseline)
        .map_err(|e| format!("PatchRun {run} spec.preview.baseline: {e}"))?;
    let os = detect_os(root).ok().and_then(|d| d.operating_system);
    let (current, _) = baseline_for(Some(patch_run), os)?;
    Ok((current, draft))
}

/// The baseline for this node: the run's snapshot for the node's OS, else predefined (also
/// without a run).
fn baseline_for(
    patch_run: Option<&PatchRun>,
    os: Option<OperatingSystem>,
) -> Result<(BaselineChoice, Option<String>), String> {
    let Some(patch_run) = patch_run else {
        return Ok((BaselineChoice::PredefinedForNode, None));
    };
    let run = patch_run.name_any();
    let snapshots = patch_run
        .status
        .as_ref()
        .map(|s| s.baseline_snapshots.as_slice())
        .unwrap_or_default();
    // The same rule as the controller's at run start; a run's snapshot is the default of its OS.
    let chosen = match os {
        Some(os) => choose_baseline(os, &[], snapshots.iter())
            .map_err(|e| format!("PatchRun {run}: {e}"))?,
        None => Chosen::Predefined,
    };
    let Chosen::Candidate(snapshot) = chosen else {
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

/// True when `op` (the report's operation before this agent's) is the install of `run` that a
/// confirming scan (`now`) follows.
fn earlier_install_done(op: &OperationStatus, run: &str, now: Operation) -> bool {
    now == Operation::Scan
        && !run.is_empty()
        && op.run == run
        && matches!(op.type_, Some(Operation::Install) | Some(Operation::Scan))
        && !op.changes.is_empty()
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
            start_time: Some(Time(now)),
            end_time: Some(Time(now)),
            message: Some(message.clone()),
            ..OperationStatus::default()
        }),
        ..NodePatchReportStatus::default()
    };
    set_condition(
        &mut status.conditions,
        new_condition(READY, ConditionStatus::False, reason, message, None, now),
    );
    status
}

/// The node's last finished operation; `None` when there is none or it is unreadable.
fn load_last_operation(root: &HostRoot) -> Option<LastOperation> {
    LastOperation::load(root).unwrap_or_else(|e| {
        tracing::warn!("{e}; treating the node as not yet operated on");
        None
    })
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

    // The boot ID as the node sees it; the Node's status when the host's file is unreadable.
    let node_boot_id = node
        .status
        .as_ref()
        .and_then(|s| s.node_info.as_ref())
        .map(|i| i.boot_id.clone())
        .unwrap_or_default();
    let current_boot = {
        let root = root.clone();
        move || {
            Some(boot_id(&root))
                .filter(|b| !b.is_empty())
                .unwrap_or_else(|| node_boot_id.clone())
        }
    };
    let executor = args.host_exec.executor(root.path());
    let backends = BackendSettings {
        apt: AptCommands {
            lock_timeout_secs: args.lock_timeout,
            ..AptCommands::default()
        },
    };

    // What the node remembers of earlier agents decides whether the operation runs as asked
    // (see resume.rs): an install is never repeated.
    let requested = Operation::from(args.operation);
    if requested == Operation::Preview {
        let mut request = OperationRequest::new(Operation::Preview, run.clone());
        request.refresh = !args.no_refresh;
        request.backends = backends;
        let agent = NodeAgent { executor, root };
        return preview(&client, &reports, &args, agent, request).await;
    }
    let install_run = requested == Operation::Install && !run.is_empty();
    let install_started = if install_run {
        RunMarker::load(&root, INSTALL_STARTED_PATH).unwrap_or_else(|e| {
            tracing::warn!("{e}; ignoring the install marker");
            None
        })
    } else {
        None
    };
    let mut interrupted_note = None;
    let mut resumed = resume(
        requested,
        &run,
        load_last_operation(&root).as_ref(),
        install_started.as_ref(),
    );
    if let Resume::ReportInterrupted { started_at } = resumed {
        tracing::warn!(started = %started_at, "the install of this run was interrupted; repairing and reporting Failed");
        let repair = recover_interrupted_install(&root, executor.clone(), &backends);
        interrupted_note = Some(format!(
            "the install started at {started_at} was interrupted (agent restarted mid-install); {repair}"
        ));
        let record = interrupted_install(&run, current_boot(), Timestamp::now());
        if let Err(e) = record.save(&root) {
            tracing::warn!("cannot record the interrupted install: {e}");
        }
        // The record just saved (if it could be) now says the install finished, failed.
        resumed = resume(requested, &run, load_last_operation(&root).as_ref(), None);
    }
    if install_run && let Err(e) = RunMarker::clear(&root, INSTALL_STARTED_PATH) {
        tracing::warn!("cannot clear the install marker: {e}");
    }
    let mut request = OperationRequest::new(requested, run.clone());
    request.refresh = !args.no_refresh;
    request.backends = backends;
    let mut earlier_install_failed = false;
    if let Resume::ConfirmingScan {
        previous_failures,
        install_failed,
    } = resumed
    {
        tracing::info!(current_boot_id = %current_boot(), "install of this run already done; re-scanning");
        request.operation = Operation::Scan;
        request.previous_failures = previous_failures;
        earlier_install_failed = install_failed;
    }

    // The run, read once: its baseline snapshot, the reboot option in force (zypper leaves
    // reboot-needing patches out under NoReboot) and its install hooks.
    let patch_run = if run.is_empty() {
        Ok(None)
    } else {
        Api::<PatchRun>::all(client.clone())
            .get(&run)
            .await
            .map(Some)
            .map_err(|e| format!("reading PatchRun {run}: {e}"))
    };
    if let Ok(Some(patch_run)) = &patch_run {
        request.reboot_option = patch_run
            .status
            .as_ref()
            .and_then(|s| s.reboot_option)
            .or(patch_run.spec.reboot_option)
            .unwrap_or_default();
        // The install hooks fixed in the run at start (never the live policy's); a confirming
        // scan runs none.
        if request.operation == Operation::Install {
            let hooks = patch_run.status.as_ref().and_then(|s| s.hooks.as_ref());
            match Hooks::from_run(hooks) {
                Ok(hooks) => request.hooks = hooks,
                Err(e) => {
                    let status = setup_failure(
                        &run,
                        request.operation,
                        e.category(),
                        e.to_string(),
                        Timestamp::now(),
                    );
                    apply_report_status(&reports, &args.node_name, &status).await?;
                    return idle(args.exit_after_report).await;
                }
            }
        }
    }
    let os = detect_os(&root).ok().and_then(|d| d.operating_system);
    let chosen = patch_run.and_then(|patch_run| baseline_for(patch_run.as_ref(), os));
    let (baseline, baseline_note) = match chosen {
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
    // A confirming scan keeps the package changes of this run's install, so the report's last
    // operation still says what the install changed once the node is back from its reboot.
    let install_changes = in_progress
        .operation
        .as_ref()
        .filter(|op| earlier_install_done(op, &run, request.operation))
        .map(|op| (op.changes.clone(), op.changes_omitted));
    in_progress.operation = Some(OperationStatus {
        run: run.clone(),
        type_: Some(request.operation),
        phase: match request.operation {
            Operation::Scan | Operation::Preview => OperationPhase::Scanning,
            Operation::Install => OperationPhase::Installing,
        },
        boot_id: Some(current_boot()).filter(|b| !b.is_empty()),
        start_time: Some(Time(Timestamp::now())),
        ..OperationStatus::default()
    });
    apply_report_status(&reports, &args.node_name, &in_progress).await?;

    let installing = request.operation == Operation::Install;
    if installing {
        let marker = RunMarker {
            run: run.clone(),
            boot_id: current_boot(),
            at: Timestamp::now(),
        };
        if let Err(e) = marker.save(&root, INSTALL_STARTED_PATH) {
            tracing::warn!("cannot record the install start: {e}");
        }
    }
    let agent = NodeAgent {
        executor: executor.clone(),
        root: root.clone(),
    };
    let (mut status, terminated) = run_operation_through_sigterm(agent, request, baseline).await?;
    if installing && let Err(e) = RunMarker::clear(&root, INSTALL_STARTED_PATH) {
        tracing::warn!("cannot clear the install marker: {e}");
    }
    if let Some(op) = status.operation.as_mut() {
        if let Some((changes, omitted)) = install_changes {
            op.changes = changes;
            op.changes_omitted = omitted;
        }
        if op.boot_id.is_none() {
            op.boot_id = Some(current_boot()).filter(|b| !b.is_empty());
            status.boot_id = op.boot_id.clone();
        }
        for note in [baseline_note, interrupted_note.clone()]
            .into_iter()
            .flatten()
        {
            let message = match op.message.take() {
                Some(m) => format!("{note}; {m}"),
                None => note,
            };
            op.message = Some(bound_message(message));
        }
    }
    // An interrupted install whose transaction completed anyway (it runs outside the agent's
    // pod) and left the node Compliant is what was asked for: recorded and reported as done.
    let scan_succeeded = status
        .operation
        .as_ref()
        .is_some_and(|op| op.phase == OperationPhase::Succeeded);
    if interrupted_note.is_some() && !interrupted_install_failed(status.compliance, scan_succeeded)
    {
        earlier_install_failed = false;
        let mut record = interrupted_install(&run, current_boot(), Timestamp::now());
        record.succeeded = true;
        if let Err(e) = record.save(&root) {
            tracing::warn!("cannot record the completed install: {e}");
        }
    }
    // The confirming scan of an install that failed (or was interrupted and left the node short
    // of its baseline) keeps the run's verdict for this node: Failed.
    if earlier_install_failed && let Some(op) = status.operation.as_mut() {
        let reason = if interrupted_note.is_some() {
            "InstallInterrupted"
        } else {
            "InstallFailed"
        };
        op.phase = OperationPhase::Failed;
        let message = op.message.clone().unwrap_or_else(|| reason.to_string());
        set_condition(
            &mut status.conditions,
            new_condition(
                READY,
                ConditionStatus::False,
                reason,
                message,
                None,
                Timestamp::now(),
            ),
        );
    }
    apply_report_status(&reports, &args.node_name, &status).await?;
    tracing::info!(
        compliance = status.compliance.as_str(),
        phase = ?status.operation.as_ref().map(|o| o.phase),
        "report written"
    );
    if args.exit_after_report {
        return Ok(());
    }
    if terminated {
        tracing::info!(
            "stopping after SIGTERM: the transaction finished and the report is written"
        );
        return Ok(());
    }
    if install_run {
        let waiter = RebootWaiter {
            client: client.clone(),
            run,
            node: args.node_name.clone(),
            root,
            executor,
            command: args.reboot_command.clone(),
            poll: std::time::Duration::from_secs(args.poll_seconds.max(1)),
            current_boot: Box::new(current_boot),
        };
        return waiter.serve().await;
    }
    idle(false).await
}

/// The package managers' locks an interrupted install's transaction may still hold (dpkg's,
/// and rpm's under both of its database locations).
pub const TRANSACTION_LOCKS: [&str; 4] = [
    "/var/lib/dpkg/lock-frontend",
    "/var/lib/dpkg/lock",
    "/var/lib/rpm/.rpm.lock",
    "/usr/lib/sysimage/rpm/.rpm.lock",
];

/// Run one operation on a blocking thread, through SIGTERM: a SIGTERM (or SIGINT) meanwhile,
/// the pod being deleted, lets the package transaction under way finish, starts no new one
/// ([`StoppingExecutor`]: the rest of the install fails with "the agent is stopping"), and
/// returns the report once the operation is done, with `true` to say the agent was told to
/// stop (the caller writes the report and exits). The pod's terminationGracePeriodSeconds must
/// cover one transaction (docs/agent.md); one that outlasts it survives the pod anyway (it runs
/// outside the pod's cgroup) and the next agent waits for it.
pub async fn run_operation_through_sigterm(
    agent: NodeAgent,
    request: OperationRequest,
    baseline: BaselineChoice,
) -> anyhow::Result<(NodePatchReportStatus, bool)> {
    use tokio::signal::unix::{SignalKind, signal};
    let stop = Arc::new(AtomicBool::new(false));
    let agent = NodeAgent {
        executor: Arc::new(StoppingExecutor::new(agent.executor, stop.clone())),
        root: agent.root,
    };
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut operation = tokio::task::spawn_blocking(move || {
        run_operation(&agent, &request, &baseline, &Timestamp::now)
    });
    loop {
        tokio::select! {
            result = &mut operation => {
                let status = result.context("agent operation panicked")?;
                return Ok((status, stop.load(Ordering::SeqCst)));
            }
            _ = term.recv() => {
                tracing::warn!("SIGTERM: finishing the package transaction under way, starting no other");
                stop.store(true, Ordering::SeqCst);
            }
            _ = interrupt.recv() => {
                tracing::warn!("SIGINT: finishing the package transaction under way, starting no other");
                stop.store(true, Ordering::SeqCst);
            }
        }
    }
}

/// After an agent died mid-install: wait (at most the apt install timeout) for the transaction
/// it started, which outlives it, to release the package manager's lock, then repair what is
/// left half-done through the node's backend ([`repair_package_database`]); returns what
/// happened, for the report.
pub fn recover_interrupted_install(
    root: &HostRoot,
    executor: Arc<dyn HostExecutor>,
    backends: &BackendSettings,
) -> String {
    let wait = backends.apt.install_timeout;
    let waited = match root.wait_until_unlocked(&TRANSACTION_LOCKS, wait) {
        Ok(true) => String::new(),
        Ok(false) => format!(
            "the package manager was still locked after {}s; ",
            wait.as_secs()
        ),
        Err(e) => format!("cannot check the package manager's lock: {e}; "),
    };
    format!(
        "{waited}{}",
        repair_package_database(root, executor, backends)
    )
}

/// Repair what an interrupted install left behind (apt: `dpkg --configure -a`), through the
/// node's backend; returns what happened, for the report.
pub fn repair_package_database(
    root: &HostRoot,
    executor: Arc<dyn HostExecutor>,
    backends: &BackendSettings,
) -> String {
    let family = match detect_os(root) {
        Ok(os) => os.info.family,
        Err(e) => return format!("cannot detect the OS to repair it: {e}"),
    };
    let Some(family) = family else {
        return "no package manager to repair on this OS".to_string();
    };
    let backend = Backend::for_family(family, backends);
    let agent = NodeAgent {
        root: root.clone(),
        executor,
    };
    match backend.prepare_install(&agent) {
        Ok(Some(note)) => note,
        Ok(None) => format!("{} had nothing to repair", backend.name()),
        Err(e) => format!("{} repair failed: {e}", backend.name()),
    }
}

/// After an install, the agent waits for the controller to say "reboot": its target in the
/// PatchRun's status turns `Rebooting` (after the node was cordoned and drained), with the
/// boot ID the node is to leave. The agent then reboots the host with the reboot command,
/// once per boot (again after [`REBOOT_RETRY`] if the node is still on that boot).
struct RebootWaiter {
    client: Client,
    run: String,
    node: String,
    root: HostRoot,
    executor: Arc<dyn HostExecutor>,
    command: Vec<String>,
    poll: std::time::Duration,
    current_boot: Box<dyn Fn() -> String + Send + Sync>,
}

/// How long after asking for a reboot the agent asks again if the node is still on that boot.
pub const REBOOT_RETRY: jiff::SignedDuration = jiff::SignedDuration::from_mins(10);

impl RebootWaiter {
    async fn serve(self) -> anyhow::Result<()> {
        tracing::info!(poll = ?self.poll, "install done; waiting for the run to ask for a reboot");
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing SIGTERM handler")?;
        loop {
            tokio::select! {
                _ = term.recv() => return Ok(()),
                _ = tokio::signal::ctrl_c() => return Ok(()),
                _ = tokio::time::sleep(self.poll) => {}
            }
            if let Err(e) = self.check().await {
                tracing::warn!("reboot check: {e:#}");
            }
        }
    }

    async fn check(&self) -> anyhow::Result<()> {
        let Some(run) = Api::<PatchRun>::all(self.client.clone())
            .get_opt(&self.run)
            .await
            .with_context(|| format!("reading PatchRun {}", self.run))?
        else {
            return Ok(());
        };
        let target = run
            .status
            .iter()
            .flat_map(|s| s.targets.iter())
            .find(|t| t.node == self.node);
        let Some(target) = target.filter(|t| t.state == TargetState::Rebooting) else {
            return Ok(());
        };
        let boot = (self.current_boot)();
        if target.boot_id.as_deref() != Some(boot.as_str()) {
            // This boot is already the new one; the controller will notice.
            return Ok(());
        }
        let now = Timestamp::now();
        if let Ok(Some(asked)) = RunMarker::load(&self.root, REBOOT_REQUESTED_PATH)
            && asked.run == self.run
            && asked.boot_id == boot
            && now.duration_since(asked.at) < REBOOT_RETRY
        {
            return Ok(());
        }
        let marker = RunMarker {
            run: self.run.clone(),
            boot_id: boot.clone(),
            at: now,
        };
        marker
            .save(&self.root, REBOOT_REQUESTED_PATH)
            .context("recording the reboot request")?;
        let reports: Api<NodePatchReport> = Api::all(self.client.clone());
        let mut status = reports
            .get_status(&self.node)
            .await?
            .status
            .unwrap_or_default();
        if let Some(op) = status.operation.as_mut() {
            op.phase = OperationPhase::Rebooting;
            op.message = Some(bound_message(format!(
                "rebooting (boot {boot}) as PatchRun {} asked; {}",
                self.run,
                op.message.clone().unwrap_or_default()
            )));
        }
        apply_report_status(&reports, &self.node, &status).await?;
        tracing::warn!(command = ?self.command, boot_id = %boot, "rebooting the host");
        let executor = self.executor.clone();
        let mut command = HostCommand::new(self.command.clone());
        command.timeout = std::time::Duration::from_secs(120);
        let output = tokio::task::spawn_blocking(move || executor.run(&command))
            .await
            .context("reboot command panicked")?;
        match output {
            Ok(out) if out.exit_code == Some(0) => {
                tracing::info!("reboot command accepted; waiting to be stopped")
            }
            Ok(out) => {
                tracing::error!(exit = ?out.exit_code, stderr = %out.stderr, "reboot command failed; retrying later")
            }
            Err(e) => tracing::error!("reboot command could not run: {e}; retrying later"),
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ChangeResult, PackageChange};

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        agent: AgentArgs,
    }

    fn parse(args: &[&str]) -> Result<AgentArgs, clap::Error> {
        use clap::Parser;
        let base = ["agent", "--operation", "Install", "--node-name", "n1"];
        Cli::try_parse_from(base.iter().chain(args).copied()).map(|c| c.agent)
    }

    #[test]
    fn reboot_commands_with_options_parse_one_argv_element_per_flag() {
        assert_eq!(
            parse(&[]).expect("defaults").reboot_command,
            ["systemctl", "reboot"]
        );
        for argv in [
            &["systemctl", "reboot", "--check-inhibitors=yes"][..],
            &["shutdown", "-r", "now"],
            &[
                "/usr/local/sbin/safe-reboot",
                "--reason",
                "nodepatch, kernel",
                "-v",
            ],
        ] {
            let flags: Vec<String> = argv
                .iter()
                .map(|a| format!("--reboot-command={a}"))
                .collect();
            let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
            // Flags after it are still the agent's own.
            args.extend(["--run", "r1", "--poll-seconds", "2"]);
            let parsed = parse(&args).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
            assert_eq!(parsed.reboot_command, argv);
            assert_eq!(parsed.run.as_deref(), Some("r1"));
            assert_eq!(parsed.poll_seconds, 2);
        }
        // The separate-value form takes exactly one element, even one starting with '-'.
        let parsed = parse(&["--reboot-command", "shutdown", "--reboot-command", "-r"])
            .expect("separate values");
        assert_eq!(parsed.reboot_command, ["shutdown", "-r"]);
    }

    #[test]
    fn a_confirming_scan_keeps_only_its_own_runs_install_changes() {
        let op = |run: &str, type_: Operation, changes: usize| OperationStatus {
            run: run.into(),
            type_: Some(type_),
            changes: (0..changes)
                .map(|i| PackageChange {
                    name: format!("p{i}"),
                    arch: None,
                    from_version: Some("1".into()),
                    to_version: Some("2".into()),
                    result: ChangeResult::Installed,
                })
                .collect(),
            ..OperationStatus::default()
        };
        assert!(earlier_install_done(
            &op("r1", Operation::Install, 1),
            "r1",
            Operation::Scan
        ));
        // A second confirming scan (another reboot) keeps them too.
        assert!(earlier_install_done(
            &op("r1", Operation::Scan, 1),
            "r1",
            Operation::Scan
        ));
        assert!(!earlier_install_done(
            &op("r0", Operation::Install, 1),
            "r1",
            Operation::Scan
        ));
        assert!(!earlier_install_done(
            &op("r1", Operation::Install, 0),
            "r1",
            Operation::Scan
        ));
        assert!(!earlier_install_done(
            &op("r1", Operation::Install, 1),
            "r1",
            Operation::Install
        ));
        assert!(!earlier_install_done(
            &op("", Operation::Install, 1),
            "",
            Operation::Scan
        ));
    }
}
