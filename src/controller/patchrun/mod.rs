//! PatchRun reconciler: fixes a run's targets and baseline snapshots at start, drives it wave by
//! wave through the run DaemonSet (nodes enter by getting the `nodepatch.dev/run` label), and
//! cleans up (DaemonSet, labels) when it ends or is deleted. All decisions come from the pure
//! planner in `crate::rollout`; every bit of state lives in the run's status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::drain::{DrainOptions, drain_step};
use super::{Context, Error, Result};
use crate::api::conditions::{self, ConditionStatus, new_condition, set_condition};
use crate::api::{
    BaselineSnapshot, CONTROLLER_MANAGER, FailedNode, NodePatchReport, OperatingSystem, Operation,
    OperationPhase, PatchBaseline, PatchBaselineSpec, PatchPolicy, PatchRun, PatchRunStatus,
    RUN_LABEL, RebootOption, RunPhase, RunTarget, RunTrigger, TargetState,
};
use crate::baseline::ResolvedBaseline;
use crate::baseline::predefined::predefined_for;
use crate::rollout::targeting::{membership, operating_system_of};
use crate::rollout::{
    AgentProgress, NodeHealth, NodeObservation, RolloutAction, RolloutEvent, RolloutLimits,
    RunState, WindowState, count, initial_targets, plan_rollout,
};

const KIND: &str = "PatchRun";
/// Finalizer that removes run labels and the DaemonSet before a run goes away.
pub const RUN_FINALIZER: &str = "nodepatch.dev/run-cleanup";
/// Prefix of run DaemonSet names.
pub const DAEMONSET_PREFIX: &str = "nodepatch-run-";
/// Longest Event note the Events API accepts (1 kB).
const MAX_EVENT_NOTE: usize = 1024;
/// How often a run with nodes in flight is looked at even without events.
const IN_FLIGHT_POLL: Duration = Duration::from_secs(5);
/// Most failed nodes listed in status.
const MAX_FAILED_LISTED: usize = 100;

/// How run DaemonSets are built (from the controller's flags).
#[derive(Clone, Debug, clap::Args)]
pub struct AgentSettings {
    /// Namespace of run DaemonSets (labelled for Pod Security `privileged`).
    #[arg(
        long = "agent-namespace",
        env = "NODEPATCH_AGENT_NAMESPACE",
        default_value = "nodepatch-system"
    )]
    pub namespace: String,
    /// Agent image (the nodepatch image: the same binary runs controller and agent).
    #[arg(
        long = "agent-image",
        env = "NODEPATCH_AGENT_IMAGE",
        default_value = "ghcr.io/nodepatch/nodepatch:0.1.0"
    )]
    pub image: String,
    /// Image pull policy of the agent container.
    #[arg(
        long = "agent-image-pull-policy",
        env = "NODEPATCH_AGENT_IMAGE_PULL_POLICY",
        default_value = "IfNotPresent"
    )]
    pub image_pull_policy: String,
    /// ServiceAccount of agent pods.
    #[arg(
        long = "agent-service-account",
        env = "NODEPATCH_AGENT_SERVICE_ACCOUNT",
        default_value = "nodepatch-agent"
    )]
    pub service_account: String,
    /// CPU request of the agent container.
    #[arg(
        long = "agent-cpu-request",
        env = "NODEPATCH_AGENT_CPU_REQUEST",
        default_value = "50m"
    )]
    pub cpu_request: String,
    /// Memory request of the agent container.
    #[arg(
        long = "agent-memory-request",
        env = "NODEPATCH_AGENT_MEMORY_REQUEST",
        default_value = "64Mi"
    )]
    pub memory_request: String,
    /// Memory limit of the agent container (package managers run as host units, outside it).
    #[arg(
        long = "agent-memory-limit",
        env = "NODEPATCH_AGENT_MEMORY_LIMIT",
        default_value = "512Mi"
    )]
    pub memory_limit: String,
    /// Priority class of agent pods (empty: none).
    #[arg(
        long = "agent-priority-class",
        env = "NODEPATCH_AGENT_PRIORITY_CLASS",
        default_value = ""
    )]
    pub priority_class: String,
    /// The host command agents reboot with, comma-separated argv (empty: the agent's default,
    /// `systemctl reboot`). Each element is one argv entry; nothing goes through a shell.
    #[arg(
        long = "agent-reboot-command",
        env = "NODEPATCH_AGENT_REBOOT_COMMAND",
        value_delimiter = ','
    )]
    pub reboot_command: Vec<String>,
}

/// Name of a run's DaemonSet.
pub fn daemonset_name(run: &str) -> String {
    format!("{DAEMONSET_PREFIX}{run}")
}

/// The run DaemonSet: privileged, hostPID, host `/` at `/host`, tolerates every taint, selects
/// nodes carrying the run label, owned by the run (garbage-collected with it).
pub fn run_daemonset(run: &PatchRun, settings: &AgentSettings) -> serde_json::Value {
    let name = run.name_any();
    let owner = run.controller_owner_ref(&());
    let mut args = vec![
        "agent".to_string(),
        "--operation".into(),
        run.spec.operation.as_str().into(),
        "--run".into(),
        name.clone(),
        "--host-root".into(),
        "/host".into(),
    ];
    let reboot: Vec<&String> = settings
        .reboot_command
        .iter()
        .filter(|a| !a.is_empty())
        .collect();
    if !reboot.is_empty() {
        // Last: it takes the rest of the line.
        args.push("--reboot-command".into());
        args.extend(reboot.into_iter().cloned());
    }
    let mut pod_spec = json!({
        "nodeSelector": {RUN_LABEL: name},
        "tolerations": [{"operator": "Exists"}],
        "hostPID": true,
        "serviceAccountName": settings.service_account,
        "terminationGracePeriodSeconds": 60,
        "containers": [{
            "name": "agent",
            "image": settings.image,
            "imagePullPolicy": settings.image_pull_policy,
            "args": args,
            "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
            // The image's user is non-root (for the controller); the agent must be root to
            // enter the host's namespaces.
            "securityContext": {"privileged": true, "runAsUser": 0, "runAsNonRoot": false},
            "resources": {
                "requests": {"cpu": settings.cpu_request, "memory": settings.memory_request},
                "limits": {"memory": settings.memory_limit}
            },
            "volumeMounts": [{"name": "host", "mountPath": "/host"}]
        }],
        "volumes": [{"name": "host", "hostPath": {"path": "/"}}]
    });
    if !settings.priority_class.is_empty() {
        pod_spec["priorityClassName"] = json!(settings.priority_class);
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {
            "name": daemonset_name(&name),
            "namespace": settings.namespace,
            "labels": {"app.kubernetes.io/name": "nodepatch-agent", "app.kubernetes.io/managed-by": "nodepatch", RUN_LABEL: name},
            "ownerReferences": owner.into_iter().collect::<Vec<_>>(),
        },
        "spec": {
            "selector": {"matchLabels": {RUN_LABEL: name}},
            "updateStrategy": {"type": "OnDelete"},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "nodepatch-agent", RUN_LABEL: name}},
                "spec": pod_spec
            }
        }
    })
}

/// What a node's report says about this run.
pub fn progress_of(
    report: Option<&NodePatchReport>,
    run: &str,
    operation: Operation,
) -> AgentProgress {
    let Some(op) = report
        .and_then(|r| r.status.as_ref())
        .and_then(|s| s.operation.as_ref())
    else {
        return AgentProgress::NotStarted;
    };
    // An install run's agent that restarts after finishing (the reboot it asked for, a pod
    // restart) confirms with a Scan of the same run instead of installing again.
    let confirming = operation == Operation::Install && op.type_ == Some(Operation::Scan);
    if op.run != run || (op.type_ != Some(operation) && !confirming) {
        return AgentProgress::NotStarted;
    }
    let status = report.and_then(|r| r.status.as_ref());
    let reboot_required = status.is_some_and(|s| s.reboot_required);
    // An install that left approved patches Failed counts against the error budget even when
    // the other patches went in.
    let failed_patches = status.is_some_and(|s| s.counts.failed > 0);
    match op.phase {
        OperationPhase::Succeeded if operation == Operation::Install && failed_patches => {
            AgentProgress::Failed
        }
        OperationPhase::Succeeded => AgentProgress::Succeeded {
            reboot_required: operation == Operation::Install && reboot_required,
        },
        OperationPhase::Failed => AgentProgress::Failed,
        OperationPhase::Installing
        | OperationPhase::WaitingForReboot
        | OperationPhase::Rebooting => AgentProgress::Installing,
        OperationPhase::Pending | OperationPhase::Scanning => AgentProgress::Preparing,
    }
}

/// Pick the baseline of `os` for a policy: its ref for that OS, else the OS's single default
/// PatchBaseline, else the predefined one. Errors name what is wrong.
pub fn baseline_for_os<'a>(
    os: OperatingSystem,
    refs: &[String],
    baselines: impl IntoIterator<Item = &'a PatchBaseline> + Clone,
) -> std::result::Result<(String, PatchBaselineSpec), String> {
    let mut referenced = baselines
        .clone()
        .into_iter()
        .filter(|b| refs.contains(&b.name_any()) && b.spec.operating_system == os);
    if let Some(b) = referenced.next() {
        if let Some(other) = referenced.next() {
            return Err(format!(
                "baselineRefs name two baselines for {os}: {} and {}",
                b.name_any(),
                other.name_any()
            ));
        }
        return Ok((b.name_any(), b.spec.clone()));
    }
    let defaults: Vec<&PatchBaseline> = baselines
        .into_iter()
        .filter(|b| b.spec.default && b.spec.operating_system == os)
        .collect();
    match defaults.as_slice() {
        [] => {
            let p = predefined_for(os);
            Ok((p.name, p.spec))
        }
        [one] => Ok((one.name_any(), one.spec.clone())),
        many => Err(format!(
            "{} PatchBaselines are the default for {os} ({}): mark only one default",
            many.len(),
            many.iter()
                .map(|b| b.name_any())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Reconcile one run (wrapped in the cleanup finalizer).
pub async fn reconcile(run: Arc<PatchRun>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let api: Api<PatchRun> = Api::all(ctx.client.clone());
    let result = finalizer(&api, RUN_FINALIZER, run, |event| async {
        match event {
            FinalizerEvent::Apply(run) => apply(&run, &ctx).await,
            FinalizerEvent::Cleanup(run) => {
                cleanup(&run, &ctx).await?;
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|e| match e {
        kube::runtime::finalizer::Error::ApplyFailed(e)
        | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
        kube::runtime::finalizer::Error::AddFinalizer(e)
        | kube::runtime::finalizer::Error::RemoveFinalizer(e) => Error::Kube(e),
        kube::runtime::finalizer::Error::UnnamedObject => Error::MissingName,
        kube::runtime::finalizer::Error::InvalidFinalizer => Error::MissingName,
    });
    ctx.metrics.observe(
        KIND,
        started.elapsed(),
        result.as_ref().err().map(Error::category),
    );
    result
}

/// Remove the run label from every node carrying it and delete the run DaemonSet.
async fn cleanup(run: &PatchRun, ctx: &Context) -> Result<()> {
    let name = run.name_any();
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let labelled = nodes
        .list_metadata(&ListParams::default().labels(&format!("{RUN_LABEL}={name}")))
        .await?;
    for node in labelled.items {
        set_run_label(ctx, &node.name_any(), None).await?;
    }
    let ds: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ctx.agent.namespace);
    match ds
        .delete(&daemonset_name(&name), &DeleteParams::background())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

async fn set_run_label(ctx: &Context, node: &str, run: Option<&str>) -> Result<()> {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let patch = json!({"metadata": {"labels": {RUN_LABEL: run}}});
    match nodes
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        // A deleted node has no label to remove.
        Err(kube::Error::Api(s)) if s.code == 404 && run.is_none() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn publish(ctx: &Context, run: &PatchRun, type_: EventType, reason: &str, note: String) {
    publish_about(ctx, run, None, type_, reason, note).await;
}

/// Publish an Event about `run`, related to `node` when it concerns one: Events are merged into a
/// series by (reason, regarding, related), so per-node Events need the node to stay distinct.
async fn publish_about(
    ctx: &Context,
    run: &PatchRun,
    node: Option<&str>,
    type_: EventType,
    reason: &str,
    note: String,
) {
    // The Events API refuses notes over 1 kB (a wave of hundreds of nodes names them all).
    let note = if note.len() > MAX_EVENT_NOTE {
        let mut cut = MAX_EVENT_NOTE - 3;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}…", &note[..cut])
    } else {
        note
    };
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Rollout".into(),
        secondary: node.map(|n| k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(n.to_string()),
            ..Default::default()
        }),
    };
    if let Err(e) = ctx.recorder.publish(&ev, &run.object_ref(&())).await {
        tracing::warn!(run = %run.name_any(), error = %e, "publishing event failed");
    }
}

async fn write_status(ctx: &Context, run: &PatchRun, status: &PatchRunStatus) -> Result<()> {
    let api: Api<PatchRun> = Api::all(ctx.client.clone());
    let patch = json!({"apiVersion": PatchRun::api_version(&()), "kind": KIND, "status": status});
    api.patch_status(
        &run.name_any(),
        &PatchParams::apply(CONTROLLER_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    ctx.metrics
        .status_writes
        .get_or_create(&super::metrics::KindLabels { kind: KIND })
        .inc();
    Ok(())
}

/// Finish a run that cannot proceed.
async fn fail_run(ctx: &Context, run: &PatchRun, reason: &str, message: String) -> Result<Action> {
    let now = Timestamp::now();
    let mut status = run.status.clone().unwrap_or_default();
    status.phase = RunPhase::Failed;
    status.completion_time = Some(Time(now));
    status.message = Some(message.clone());
    status.observed_generation = run.metadata.generation;
    set_condition(
        &mut status.conditions,
        new_condition(
            conditions::READY,
            ConditionStatus::False,
            reason,
            message.clone(),
            run.metadata.generation,
            now,
        ),
    );
    set_condition(
        &mut status.conditions,
        new_condition(
            conditions::PROGRESSING,
            ConditionStatus::False,
            reason,
            "run ended",
            run.metadata.generation,
            now,
        ),
    );
    write_status(ctx, run, &status).await?;
    publish(ctx, run, EventType::Warning, reason, message).await;
    cleanup(run, ctx).await?;
    Ok(Action::await_change())
}

async fn apply(cached: &PatchRun, ctx: &Context) -> Result<Action> {
    let name = cached.metadata.name.clone().ok_or(Error::MissingName)?;
    // Plan from the run as it is now, not as the cache last saw it: a step requeued right after
    // a status write could otherwise plan twice from the same old status (duplicate Events, and
    // a node we just cordoned would look cordoned by someone else).
    let Some(fresh) = Api::<PatchRun>::all(ctx.client.clone())
        .get_opt(&name)
        .await?
    else {
        return Ok(Action::await_change());
    };
    let run = &fresh;
    let status = run.status.clone().unwrap_or_default();
    if status.phase.is_finished() {
        // Idempotent: a controller that died between ending a run and cleaning up finishes here.
        cleanup(run, ctx).await?;
        return Ok(Action::await_change());
    }
    // A run created right after its policy may reach us before the policy reaches the cache:
    // ask the API before declaring the policy missing.
    let policy = match ctx
        .stores
        .policies
        .get(&ObjectRef::new(&run.spec.policy_ref))
    {
        Some(p) => p,
        None => match Api::<PatchPolicy>::all(ctx.client.clone())
            .get_opt(&run.spec.policy_ref)
            .await?
        {
            Some(p) => Arc::new(p),
            None => {
                let message = format!("PatchPolicy {} does not exist", run.spec.policy_ref);
                return fail_run(ctx, run, "PolicyNotFound", message).await;
            }
        },
    };
    if status.targets.is_empty() && status.start_time.is_none() {
        return start(run, &policy, ctx).await;
    }
    step(run, &name, &policy, status, ctx).await
}

/// Fix targets and baseline snapshots, create the DaemonSet. Waits while another run of the
/// policy is active (one active run per policy).
async fn start(run: &PatchRun, policy: &PatchPolicy, ctx: &Context) -> Result<Action> {
    let now = Timestamp::now();
    let name = run.name_any();
    // One active run per policy: a run starts only when no other run of its policy has started
    // and not finished, and no older one waits (creation time, then name: timestamps have
    // one-second resolution). Starts are serialised in this process and read the API, not the
    // cache, so a run that started a moment ago (its status just written) is always seen: a
    // user's "patch now" created in the same second as the policy's scan must not run beside it.
    let _start = ctx.run_starts.lock().await;
    let created = |r: &PatchRun| {
        (
            r.metadata.creation_timestamp.as_ref().map(|t| t.0),
            r.name_any(),
        )
    };
    let mine = created(run);
    let older_active = Api::<PatchRun>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .any(|other| {
            let status = other.status.as_ref();
            let started = status.is_some_and(|s| s.start_time.is_some() || !s.targets.is_empty());
            other.spec.policy_ref == run.spec.policy_ref
                && other.name_any() != name
                && !status.is_some_and(|s| s.phase.is_finished())
                && (started || created(other) < mine)
        });
    if older_active {
        let mut status = run.status.clone().unwrap_or_default();
        status.observed_generation = run.metadata.generation;
        status.message = Some("waiting for the policy's active run to finish".into());
        set_condition(
            &mut status.conditions,
            new_condition(
                conditions::PROGRESSING,
                ConditionStatus::False,
                "WaitingForActiveRun",
                "another run of the policy is active",
                run.metadata.generation,
                now,
            ),
        );
        if run
            .status
            .as_ref()
            .is_none_or(|old| !conditions::same_status(old, &status))
        {
            write_status(ctx, run, &status).await?;
        }
        return Ok(Action::requeue(Duration::from_secs(10)));
    }

    // Membership over every policy, so a node claimed by two is skipped by both.
    let node_labels: BTreeMap<String, BTreeMap<String, String>> = ctx
        .stores
        .nodes
        .state()
        .iter()
        .map(|n| (n.name_any(), n.metadata.labels.clone().unwrap_or_default()))
        .collect();
    let policies = ctx.stores.policies.state();
    let m = membership(
        policies.iter().map(|p| {
            (
                p.metadata.name.as_deref().unwrap_or(""),
                &p.spec.node_selector,
            )
        }),
        &node_labels,
    );
    if let Some(err) = m.invalid.get(&policy.name_any()) {
        return fail_run(ctx, run, "InvalidSelector", format!("spec.{err}")).await;
    }
    let members = m
        .members
        .get(&policy.name_any())
        .cloned()
        .unwrap_or_default();

    let nodes_api: Api<Node> = Api::all(ctx.client.clone());
    let baselines = ctx.stores.baselines.state();
    let mut snapshots: BTreeMap<OperatingSystem, BaselineSnapshot> = BTreeMap::new();
    let mut targets = vec![];
    let mut skipped = vec![];
    for node in &members {
        // The OS is in status.nodeInfo, which the metadata cache does not hold: one GET per
        // target node, once per run.
        let os_image = match nodes_api.get_opt(node).await? {
            Some(n) => n
                .status
                .and_then(|s| s.node_info)
                .map(|i| i.os_image)
                .unwrap_or_default(),
            None => continue,
        };
        let Some(os) = operating_system_of(&os_image) else {
            skipped.push(RunTarget {
                node: node.clone(),
                state: TargetState::Skipped,
                reason: Some(format!("UnsupportedOS: {os_image}")),
                end_time: Some(Time(now)),
                ..Default::default()
            });
            continue;
        };
        if let std::collections::btree_map::Entry::Vacant(slot) = snapshots.entry(os) {
            let baseline_refs = &policy.spec.baseline_refs;
            let (baseline_name, spec) =
                match baseline_for_os(os, baseline_refs, baselines.iter().map(|b| b.as_ref())) {
                    Ok(found) => found,
                    Err(message) => return fail_run(ctx, run, "InvalidBaseline", message).await,
                };
            let resolved = match ResolvedBaseline::resolve(baseline_name.clone(), &spec) {
                Ok(r) => r,
                Err(e) => {
                    return fail_run(
                        ctx,
                        run,
                        "InvalidBaseline",
                        format!("PatchBaseline {baseline_name}: {e}"),
                    )
                    .await;
                }
            };
            slot.insert(BaselineSnapshot {
                operating_system: os,
                name: baseline_name,
                hash: resolved.hash().to_string(),
                baseline: spec,
            });
        }
        let topology = policy
            .spec
            .rollout
            .topology_key
            .as_ref()
            .and_then(|k| node_labels.get(node).and_then(|l| l.get(k)).cloned());
        targets.push((node.clone(), topology));
    }
    let mut all_targets = initial_targets(targets);
    all_targets.extend(skipped);
    let reboot_option =
        (run.spec.operation == Operation::Install).then(|| reboot_option_of(run, policy));
    let mut status = PatchRunStatus {
        observed_generation: run.metadata.generation,
        phase: RunPhase::Running,
        baseline_snapshots: snapshots.into_values().collect(),
        reboot_option,
        nodes: count(&all_targets),
        targets: all_targets,
        start_time: Some(Time(now)),
        message: Some(format!(
            "{} {} nodes",
            run.spec.operation.as_str(),
            members.len()
        )),
        ..Default::default()
    };
    set_condition(
        &mut status.conditions,
        new_condition(
            conditions::READY,
            ConditionStatus::True,
            "Started",
            "run started",
            run.metadata.generation,
            now,
        ),
    );
    set_condition(
        &mut status.conditions,
        new_condition(
            conditions::PROGRESSING,
            ConditionStatus::True,
            "Rollout",
            "patching nodes",
            run.metadata.generation,
            now,
        ),
    );
    write_status(ctx, run, &status).await?;

    let ds: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ctx.agent.namespace);
    ds.patch(
        &daemonset_name(&name),
        &PatchParams::apply(CONTROLLER_MANAGER).force(),
        &Patch::Apply(&run_daemonset(run, &ctx.agent)),
    )
    .await?;
    publish(
        ctx,
        run,
        EventType::Normal,
        "RunStarted",
        format!(
            "{} run of policy {} started on {} nodes",
            run.spec.operation.as_str(),
            run.spec.policy_ref,
            status.nodes.total
        ),
    )
    .await;
    Ok(Action::requeue(Duration::from_millis(200)))
}

/// The reboot option in force for a run: its own, else its policy's install setting.
fn reboot_option_of(run: &PatchRun, policy: &PatchPolicy) -> RebootOption {
    run.spec
        .reboot_option
        .or(policy.spec.install.as_ref().map(|i| i.reboot_option))
        .unwrap_or_default()
}

/// The window constraint of a run: only scheduled installs are bound to windows.
async fn window_state(
    run: &PatchRun,
    policy: &PatchPolicy,
    ctx: &Context,
    now: Timestamp,
) -> Result<WindowState> {
    if run.spec.operation == Operation::Scan || run.spec.trigger == RunTrigger::Manual {
        return Ok(WindowState::Unconstrained);
    }
    let Some(install) = &policy.spec.install else {
        return Ok(WindowState::Closed);
    };
    let api: Api<crate::api::MaintenanceWindow> = Api::all(ctx.client.clone());
    for name in &install.maintenance_window_refs {
        let Some(mw) = api.get_opt(name).await? else {
            continue;
        };
        let anchor = mw
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(now);
        let Ok(def) = super::maintenancewindow::window_definition(&mw.spec, anchor) else {
            continue;
        };
        if let Some(w) = def.window_at(now) {
            let cancel = mw.spec.cutoff_behavior == crate::api::CutoffBehavior::CancelTask;
            return Ok(WindowState::Open {
                cutoff_at: w.cutoff_at,
                cancel_at_cutoff: cancel,
            });
        }
    }
    Ok(WindowState::Closed)
}

async fn step(
    run: &PatchRun,
    name: &str,
    policy: &PatchPolicy,
    old: PatchRunStatus,
    ctx: &Context,
) -> Result<Action> {
    let now = Timestamp::now();
    let reboot_option = reboot_option_of(run, policy);
    let reboots =
        run.spec.operation == Operation::Install && reboot_option == RebootOption::RebootIfNeeded;
    let limits =
        RolloutLimits::resolve(&policy.spec.rollout, old.targets.len() as u32).and_then(|l| {
            if reboots {
                l.with_reboot(&policy.spec.drain)
            } else {
                Ok(l)
            }
        });
    let limits = match limits {
        Ok(l) => l,
        Err(e) => return fail_run(ctx, run, "InvalidRollout", e.to_string()).await,
    };
    let drain_options = match DrainOptions::from_spec(&policy.spec.drain) {
        Ok(o) => o,
        Err(e) if reboots => return fail_run(ctx, run, "InvalidDrain", e).await,
        Err(_) => DrainOptions::default(),
    };
    let window = window_state(run, policy, ctx, now).await?;
    let mut observed: BTreeMap<String, NodeObservation> = BTreeMap::new();
    for t in &old.targets {
        let Some(node) = ctx.stores.nodes.get(&ObjectRef::new(&t.node)) else {
            continue;
        };
        let labelled = node.labels().get(RUN_LABEL).is_some_and(|v| v == name);
        let report = ctx.stores.reports.get(&ObjectRef::new(&t.node));
        let progress = progress_of(report.as_deref(), name, run.spec.operation);
        let mut obs = NodeObservation {
            exists: true,
            labelled,
            progress,
            report_boot_id: finished_boot_id(report.as_deref(), name),
            ..NodeObservation::default()
        };
        // The Node's spec and status are read only for nodes in (or entering) the reboot
        // sequence: the cache holds metadata only.
        let entering = t.state == TargetState::InProgress
            && matches!(
                progress,
                AgentProgress::Succeeded {
                    reboot_required: true
                }
            );
        let disrupting = matches!(
            t.state,
            TargetState::Draining | TargetState::Rebooting | TargetState::Verifying
        );
        if reboots && (entering || disrupting) {
            match Api::<Node>::all(ctx.client.clone())
                .get_opt(&t.node)
                .await?
            {
                Some(n) => obs.health = node_health(&n),
                None => obs.exists = false,
            }
        }
        if obs.exists && t.state == TargetState::Draining {
            // The cordon comes first: evicted pods must not land on the node again.
            if t.cordoned && !obs.health.unschedulable {
                set_unschedulable(ctx, &t.node, true).await?;
            }
            obs.drain =
                drain_step(&ctx.client, &ctx.eviction_client, &t.node, &drain_options).await?;
        }
        observed.insert(t.node.clone(), obs);
    }
    let state = RunState {
        phase: old.phase,
        targets: old.targets.clone(),
        current_wave: old.current_wave,
        last_wave_completion: old.last_wave_completion_time.as_ref().map(|t| t.0),
    };
    let plan = plan_rollout(&state, &limits, &observed, window, now);

    let mut status = old.clone();
    status.observed_generation = run.metadata.generation;
    status.phase = plan.phase;
    status.targets = plan.targets.clone();
    status.nodes = plan.counts.clone();
    status.current_wave = plan.current_wave;
    status.last_wave_completion_time = plan.last_wave_completion.map(Time);
    status.failed_nodes = plan
        .targets
        .iter()
        .filter(|t| t.state == TargetState::Failed)
        .take(MAX_FAILED_LISTED)
        .map(|t| FailedNode {
            node: t.node.clone(),
            reason: t.reason.clone().unwrap_or_else(|| "Failed".into()),
            message: t
                .message
                .clone()
                .unwrap_or_else(|| failure_message(ctx, &t.node, name)),
        })
        .collect();
    let generation = run.metadata.generation;
    if plan.phase.is_finished() {
        status.completion_time = Some(Time(now));
        status.message = Some(summary(&plan.counts, plan.phase, reboot_option));
        set_condition(
            &mut status.conditions,
            new_condition(
                conditions::PROGRESSING,
                ConditionStatus::False,
                plan.phase.as_str(),
                "run ended",
                generation,
                now,
            ),
        );
    }
    let degraded = plan.counts.failed > 0 || plan.phase == RunPhase::Halted;
    set_condition(
        &mut status.conditions,
        new_condition(
            conditions::DEGRADED,
            degraded.into(),
            if plan.phase == RunPhase::Halted {
                "ErrorBudgetExceeded"
            } else if degraded {
                "NodesFailed"
            } else {
                "NoFailures"
            },
            degraded_message(&plan.targets, &plan.counts, limits.max_errors),
            generation,
            now,
        ),
    );
    // Status first, labels second: status is the durable intent. If the controller dies in
    // between, the next step sees an in-flight node without its label and labels it again; it
    // never starts extra nodes, because in-flight nodes are counted from status.
    // Uncordons go before the status write: if the controller dies in between, the node is
    // still recorded as cordoned by the run and the next step uncordons it again.
    for action in &plan.actions {
        if let RolloutAction::Uncordon(node) = action {
            set_unschedulable(ctx, node, false).await?;
        }
    }
    if !conditions::same_status(&old, &status) {
        write_status(ctx, run, &status).await?;
    }
    for action in &plan.actions {
        match action {
            RolloutAction::Uncordon(_) => {}
            RolloutAction::Cordon(node) => set_unschedulable(ctx, node, true).await?,
            RolloutAction::Label(node) => {
                // Never take a node from another run; the planner's timeout fails it instead.
                let current = ctx
                    .stores
                    .nodes
                    .get(&ObjectRef::new(node))
                    .and_then(|n| n.labels().get(RUN_LABEL).cloned());
                match current {
                    Some(other) if other != name => {
                        tracing::warn!(run = name, node, other_run = %other, "node is in another run; not labelling it")
                    }
                    _ => set_run_label(ctx, node, Some(name)).await?,
                }
            }
            RolloutAction::Unlabel(node) => set_run_label(ctx, node, None).await?,
        }
    }
    for event in &plan.events {
        let (type_, reason, note) = match event {
            RolloutEvent::WaveStarted { wave, nodes } => (
                EventType::Normal,
                "WaveStarted",
                if nodes.len() > 10 {
                    format!(
                        "wave {wave}: {} nodes ({}, …)",
                        nodes.len(),
                        nodes[..10].join(", ")
                    )
                } else {
                    format!("wave {wave}: {}", nodes.join(", "))
                },
            ),
            RolloutEvent::NodeFailed {
                node,
                reason,
                message,
            } => (
                EventType::Warning,
                "NodeFailed",
                match message {
                    Some(m) => format!("node {node} failed: {reason}: {m}"),
                    None => format!("node {node} failed: {reason}"),
                },
            ),
            RolloutEvent::DrainStarted { node, cordoned } => (
                EventType::Normal,
                "Draining",
                if *cordoned {
                    format!("node {node} needs a reboot: cordoned, draining")
                } else {
                    format!(
                        "node {node} needs a reboot: draining (it was already cordoned; it stays so)"
                    )
                },
            ),
            RolloutEvent::RebootRequested { node } => (
                EventType::Normal,
                "RebootRequested",
                format!("node {node} drained; the agent reboots it"),
            ),
            RolloutEvent::Rebooted { node, boot_id } => (
                EventType::Normal,
                "Rebooted",
                format!("node {node} is back with boot ID {boot_id}; waiting for the agent's scan"),
            ),
            RolloutEvent::Uncordoned { node } => (
                EventType::Normal,
                "Uncordoned",
                format!("node {node} uncordoned"),
            ),
            RolloutEvent::Halted { failed, max_errors } => (
                EventType::Warning,
                "Halted",
                format!(
                    "{failed} nodes failed, more than maxErrors {max_errors}: no new nodes start"
                ),
            ),
            RolloutEvent::Finished(phase) => (
                if *phase == RunPhase::Succeeded {
                    EventType::Normal
                } else {
                    EventType::Warning
                },
                "RunFinished",
                summary(&plan.counts, *phase, reboot_option),
            ),
        };
        let node = match event {
            RolloutEvent::WaveStarted { nodes, .. } => nodes.first().map(String::as_str),
            RolloutEvent::NodeFailed { node, .. }
            | RolloutEvent::DrainStarted { node, .. }
            | RolloutEvent::RebootRequested { node }
            | RolloutEvent::Rebooted { node, .. }
            | RolloutEvent::Uncordoned { node } => Some(node.as_str()),
            RolloutEvent::Halted { .. } | RolloutEvent::Finished(_) => None,
        };
        publish_about(ctx, run, node, type_, reason, note).await;
    }
    if plan.phase.is_finished() {
        cleanup(run, ctx).await?;
        return Ok(Action::await_change());
    }
    // Report changes wake the run through their own watch, which can deliver an event before
    // the report cache (another watch) has it: the step then sees the old report and nothing
    // else would wake it. While nodes are in flight, look again every few seconds.
    let safety = if plan.counts.in_progress > 0 {
        IN_FLIGHT_POLL
    } else {
        Duration::from_secs(300)
    };
    Ok(match plan.requeue_at {
        Some(at) => Action::requeue(until(now, at).min(safety) + Duration::from_millis(20)),
        None => Action::requeue(safety),
    })
}

/// The Degraded condition's message: how many failed, and which nodes with their reasons (a
/// node left cordoned says so).
fn degraded_message(
    targets: &[RunTarget],
    counts: &crate::api::RunNodeCounts,
    max_errors: u32,
) -> String {
    let mut message = format!(
        "{} of {} nodes failed (maxErrors {max_errors})",
        counts.failed, counts.total
    );
    let failed: Vec<String> = targets
        .iter()
        .filter(|t| t.state == TargetState::Failed)
        .take(5)
        .map(|t| {
            let reason = t.reason.as_deref().unwrap_or("Failed");
            if t.cordoned {
                format!("{} {reason} (left cordoned)", t.node)
            } else {
                format!("{} {reason}", t.node)
            }
        })
        .collect();
    if !failed.is_empty() {
        message.push_str(": ");
        message.push_str(&failed.join(", "));
        if counts.failed as usize > failed.len() {
            message.push_str(", …");
        }
    }
    message
}

/// Boot ID under which the agent finished its latest operation for `run`.
pub fn finished_boot_id(report: Option<&NodePatchReport>, run: &str) -> Option<String> {
    let op = report?.status.as_ref()?.operation.as_ref()?;
    let finished = matches!(op.phase, OperationPhase::Succeeded | OperationPhase::Failed);
    (op.run == run && finished)
        .then(|| op.boot_id.clone())
        .flatten()
}

/// Boot ID, readiness and cordon of a Node.
pub fn node_health(node: &Node) -> NodeHealth {
    let status = node.status.as_ref();
    NodeHealth {
        boot_id: status
            .and_then(|s| s.node_info.as_ref())
            .map(|i| i.boot_id.clone())
            .unwrap_or_default(),
        ready: status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
        unschedulable: node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false),
    }
}

/// Cordon or uncordon a node (a deleted node needs neither).
async fn set_unschedulable(ctx: &Context, node: &str, unschedulable: bool) -> Result<()> {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let patch = json!({"spec": {"unschedulable": unschedulable}});
    match nodes
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            tracing::info!(node, unschedulable, "node cordon changed");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn failure_message(ctx: &Context, node: &str, run: &str) -> String {
    ctx.stores
        .reports
        .get(&ObjectRef::new(node))
        .and_then(|r| r.status.clone())
        .and_then(|s| s.operation)
        .filter(|op| op.run == run)
        .and_then(|op| op.message)
        .map(|m| m.chars().take(1000).collect())
        .unwrap_or_default()
}

fn summary(c: &crate::api::RunNodeCounts, phase: RunPhase, reboot: RebootOption) -> String {
    let mut s = format!(
        "{}: {} of {} nodes succeeded, {} failed, {} skipped",
        phase.as_str(),
        c.succeeded,
        c.total,
        c.failed,
        c.skipped
    );
    if c.succeeded_reboot_required > 0 {
        s.push_str(&format!(
            ", {} need a reboot{}",
            c.succeeded_reboot_required,
            if reboot == RebootOption::NoReboot {
                " (NoReboot)"
            } else {
                ""
            }
        ));
    }
    s
}

fn until(now: Timestamp, at: Timestamp) -> Duration {
    at.duration_since(now).try_into().unwrap_or(Duration::ZERO)
}

fn error_policy(run: Arc<PatchRun>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(run = %run.name_any(), category = error.category(), %error, "reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

/// Run the PatchRun controller. Agent progress (NodePatchReport changes) and DaemonSet changes
/// wake the run they belong to.
pub async fn run(ctx: Arc<Context>) {
    let runs: Api<PatchRun> = Api::all(ctx.client.clone());
    let reports: Api<NodePatchReport> = Api::all(ctx.client.clone());
    let daemonsets: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ctx.agent.namespace);
    Controller::new(runs, watcher::Config::default().any_semantic())
        // Not `owns`: that keys the (cluster-scoped) run by the DaemonSet's namespace, a second
        // key for the same run, which kube-runtime reconciles concurrently with the first.
        .watches(
            daemonsets,
            watcher::Config::default().labels("app.kubernetes.io/managed-by=nodepatch"),
            |ds: DaemonSet| {
                ds.labels()
                    .get(RUN_LABEL)
                    .map(|run| ObjectRef::<PatchRun>::new(run))
            },
        )
        .watches(
            reports,
            watcher::Config::default().any_semantic(),
            |report: NodePatchReport| {
                let run = report
                    .status
                    .and_then(|s| s.operation)
                    .map(|o| o.run)
                    .filter(|r| !r.is_empty());
                run.map(|r| ObjectRef::<PatchRun>::new(&r))
            },
        )
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "patchrun controller");
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{NodePatchReportStatus, OperationStatus, PatchBaselineSpec};

    fn baseline(name: &str, os: OperatingSystem, default: bool) -> PatchBaseline {
        let mut spec: PatchBaselineSpec =
            serde_json::from_value(json!({"operatingSystem": os.as_str()})).expect("spec");
        spec.default = default;
        PatchBaseline::new(name, spec)
    }

    #[test]
    fn baseline_resolution_prefers_ref_then_default_then_predefined() {
        let bs = [
            baseline("u-ref", OperatingSystem::Ubuntu, false),
            baseline("u-def", OperatingSystem::Ubuntu, true),
        ];
        let refs = vec!["u-ref".to_string()];
        assert_eq!(
            baseline_for_os(OperatingSystem::Ubuntu, &refs, bs.iter())
                .expect("ok")
                .0,
            "u-ref"
        );
        assert_eq!(
            baseline_for_os(OperatingSystem::Ubuntu, &[], bs.iter())
                .expect("ok")
                .0,
            "u-def"
        );
        assert_eq!(
            baseline_for_os(OperatingSystem::Debian, &[], bs.iter())
                .expect("ok")
                .0,
            "nodepatch-predefined-debian"
        );
    }

    #[test]
    fn two_defaults_for_one_os_is_an_error_naming_both() {
        let bs = [
            baseline("a", OperatingSystem::Debian, true),
            baseline("b", OperatingSystem::Debian, true),
        ];
        let err = baseline_for_os(OperatingSystem::Debian, &[], bs.iter()).expect_err("ambiguous");
        assert!(err.contains("a, b"), "{err}");
    }

    #[test]
    fn degraded_message_names_failed_nodes_and_those_left_cordoned() {
        let targets = vec![
            RunTarget {
                node: "a".into(),
                state: TargetState::Failed,
                reason: Some("RebootTimeout".into()),
                cordoned: true,
                ..Default::default()
            },
            RunTarget {
                node: "b".into(),
                state: TargetState::Failed,
                reason: Some("DrainTimeout".into()),
                ..Default::default()
            },
            RunTarget {
                node: "c".into(),
                state: TargetState::Succeeded,
                ..Default::default()
            },
        ];
        let counts = count(&targets);
        assert_eq!(
            degraded_message(&targets, &counts, 0),
            "2 of 3 nodes failed (maxErrors 0): a RebootTimeout (left cordoned), b DrainTimeout"
        );
    }

    #[test]
    fn progress_reads_only_this_runs_operation() {
        let mut report = NodePatchReport::new("n1", Default::default());
        assert_eq!(
            progress_of(Some(&report), "r1", Operation::Install),
            AgentProgress::NotStarted
        );
        report.status = Some(NodePatchReportStatus {
            reboot_required: true,
            operation: Some(OperationStatus {
                run: "r1".into(),
                type_: Some(Operation::Install),
                phase: OperationPhase::Succeeded,
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(
            progress_of(Some(&report), "r1", Operation::Install),
            AgentProgress::Succeeded {
                reboot_required: true
            }
        );
        assert_eq!(
            progress_of(Some(&report), "r0", Operation::Install),
            AgentProgress::NotStarted,
            "another run's result"
        );
        assert_eq!(
            progress_of(Some(&report), "r1", Operation::Scan),
            AgentProgress::NotStarted
        );
    }

    #[test]
    fn daemonset_selects_the_run_label_and_runs_the_agent_privileged() {
        let run = PatchRun::new(
            "r1",
            serde_json::from_value(json!({"policyRef": "p", "operation": "Install"}))
                .expect("spec"),
        );
        let settings = AgentSettings {
            namespace: "nodepatch-system".into(),
            image: "img:1".into(),
            image_pull_policy: "IfNotPresent".into(),
            service_account: "nodepatch-agent".into(),
            cpu_request: "50m".into(),
            memory_request: "64Mi".into(),
            memory_limit: "512Mi".into(),
            priority_class: String::new(),
            reboot_command: vec![],
        };
        let ds = run_daemonset(&run, &settings);
        assert_eq!(ds["metadata"]["name"], "nodepatch-run-r1");
        assert_eq!(
            ds["spec"]["template"]["spec"]["nodeSelector"][RUN_LABEL],
            "r1"
        );
        assert_eq!(ds["spec"]["template"]["spec"]["hostPID"], true);
        let c = &ds["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["securityContext"]["privileged"], true);
        assert_eq!(
            c["args"],
            json!([
                "agent",
                "--operation",
                "Install",
                "--run",
                "r1",
                "--host-root",
                "/host"
            ])
        );
        assert_eq!(
            ds["spec"]["template"]["spec"]["volumes"][0]["hostPath"]["path"],
            "/"
        );
        let custom = AgentSettings {
            reboot_command: vec!["/usr/local/sbin/safe-reboot".into(), "--now".into()],
            ..settings
        };
        let ds = run_daemonset(&run, &custom);
        let args = &ds["spec"]["template"]["spec"]["containers"][0]["args"];
        assert_eq!(
            args.as_array().expect("args")[7..],
            [
                json!("--reboot-command"),
                json!("/usr/local/sbin/safe-reboot"),
                json!("--now")
            ]
        );
    }
}
