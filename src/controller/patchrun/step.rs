//! One step of a running run, in three phases. **Observe**: settings from the policy, the
//! window, and per target node what the caches, the Node and (for a draining node) its pods
//! show. **Plan**: `rollout::plan_rollout` decides target states, actions and Events, and
//! [`super::status::stepped_status`] the status. **Act**: uncordons, the status write, then the
//! planned actions in order (cordons, labels, evictions), the Events, and cleanup once the run
//! ends.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use super::act::{
    KIND, audit, cleanup, fail_run, publish_about, reboot_option_of, set_run_label,
    set_unschedulable,
};
use super::status::{
    Hold, MAX_FAILED_LISTED, StatusLimits, agent_failure_of, agent_message, cancel_note,
    event_text, stepped_status,
};
use crate::api::{
    CANCELED_BY_ANNOTATION, Compliance, NodePatchReport, Operation, OperationPhase, PatchPolicy,
    PatchRun, PatchRunStatus, RUN_LABEL, RebootOption, RunTarget, RunTrigger, TargetState,
};
use crate::controller::context::Context;
use crate::controller::drain::{DrainOptions, drain_progress, evict, pods_on, survey};
use crate::controller::error::Result;
use crate::controller::harness;
use crate::controller::metrics::DRAIN_FAILURE_REASONS;
use crate::rollout::record::{preview_summary, record_node_changes};
use crate::rollout::targeting::{is_excluded, selector_matches};
use crate::rollout::{
    AgentProgress, NodeHealth, NodeObservation, RolloutAction, RolloutLimits, RolloutPlan, RunHold,
    RunState, WindowState, plan_rollout,
};

/// How often a run with nodes in flight is looked at even without events.
const IN_FLIGHT_POLL: Duration = Duration::from_secs(5);
/// How often an idle run is looked at.
const IDLE_POLL: Duration = Duration::from_secs(300);

/// The run's settings as this step applies them.
pub(super) struct StepSettings {
    reboot_option: RebootOption,
    /// Nodes that need a reboot are rebooted (install runs with `RebootIfNeeded`).
    reboots: bool,
    limits: RolloutLimits,
    drain: DrainOptions,
}

/// Resolve the settings of a run of `total` nodes from those its status fixed at start (the
/// policy's, for a run started before they were recorded); an error is the run's failure
/// (reason, message).
pub(super) fn step_settings(
    run: &PatchRun,
    policy: &PatchPolicy,
    status: &PatchRunStatus,
    total: u32,
) -> std::result::Result<StepSettings, (&'static str, String)> {
    let rollout = status.rollout.as_ref().unwrap_or(&policy.spec.rollout);
    let drain_spec = status.drain.as_ref().unwrap_or(&policy.spec.drain);
    let reboot_option = reboot_option_of(run, policy);
    let reboots =
        run.spec.operation == Operation::Install && reboot_option == RebootOption::RebootIfNeeded;
    let limits = RolloutLimits::resolve(rollout, total)
        .and_then(|l| {
            if reboots {
                l.with_reboot(drain_spec)
            } else {
                Ok(l)
            }
        })
        .map_err(|e| ("InvalidRollout", e.to_string()))?;
    let drain = match DrainOptions::from_spec(drain_spec) {
        Ok(o) => o,
        Err(e) if reboots => return Err(("InvalidDrain", e)),
        Err(_) => DrainOptions::default(),
    };
    Ok(StepSettings {
        reboot_option,
        reboots,
        limits,
        drain,
    })
}

/// Drive a running run one step: observe → plan → act.
pub(super) async fn step(
    run: &PatchRun,
    name: &str,
    policy: &PatchPolicy,
    old: PatchRunStatus,
    ctx: &Context,
) -> Result<Action> {
    let now = Timestamp::now();

    // Observe.
    let settings = match step_settings(run, policy, &old, old.targets.len() as u32) {
        Ok(s) => s,
        Err((reason, message)) => return fail_run(ctx, run, reason, message).await,
    };
    let window = window_state(run, policy, ctx, now).await?;
    let others = other_policies(ctx, policy, &old.targets);
    let mut observed = BTreeMap::new();
    for t in &old.targets {
        if let Some(obs) = observe_target(ctx, run, name, t, &settings, &others).await? {
            observed.insert(t.node.clone(), obs);
        }
    }

    // Plan.
    let hold = hold_of(run, policy);
    let state = RunState {
        phase: old.phase,
        hold,
        targets: old.targets.clone(),
        current_wave: old.current_wave,
        last_wave_completion: old.last_wave_completion_time.as_ref().map(|t| t.0),
    };
    let plan = plan_rollout(&state, &settings.limits, &observed, window, now);
    let agent_messages = agent_messages(ctx, &plan.targets, name);
    let mut status = stepped_status(
        &old,
        &plan,
        &agent_messages,
        &StatusLimits {
            max_errors: settings.limits.max_errors,
            reboot_option: settings.reboot_option,
            hold: &hold_note(run, policy, hold),
        },
        run.metadata.generation,
        now,
    );

    record_results(ctx, run, name, &mut status);

    // Act.
    apply_plan(ctx, run, name, &old, &status, &plan, &settings.drain).await?;
    // Counted once the status recording the failure is written (a step that fails before
    // repeats the transition and counts it then).
    for reason in drain_failures(&old.targets, &status.targets) {
        ctx.metrics.count_drain_failure(reason);
    }
    ctx.metrics
        .reboots
        .inc_by(rebooted(&old.targets, &status.targets));
    for event in &plan.events {
        let text = event_text(event, &plan.counts, settings.reboot_option);
        publish_about(
            ctx,
            run,
            text.node.as_deref(),
            text.type_,
            text.reason,
            text.note,
        )
        .await;
    }
    if plan.phase.is_finished() {
        audit(ctx, run, &status).await;
        if !cleanup(run, ctx).await? {
            return Ok(Action::requeue(super::act::CLEANUP_HOLD_POLL));
        }
        return Ok(Action::await_change());
    }
    Ok(next_look(&plan, now))
}

/// The reasons of the drains this step failed: targets Draining before and Failed now with one
/// of [`DRAIN_FAILURE_REASONS`]. Pure.
fn drain_failures(old: &[RunTarget], new: &[RunTarget]) -> Vec<&'static str> {
    new.iter()
        .filter(|t| t.state == TargetState::Failed)
        .filter(|t| {
            old.iter()
                .any(|o| o.node == t.node && o.state == TargetState::Draining)
        })
        .filter_map(|t| {
            DRAIN_FAILURE_REASONS
                .iter()
                .find(|r| t.reason.as_deref() == Some(**r))
                .copied()
        })
        .collect()
}

/// How many targets this step saw back from their reboot: Rebooting before, Verifying now (the
/// `Rebooted` Event). Pure.
fn rebooted(old: &[RunTarget], new: &[RunTarget]) -> u64 {
    new.iter()
        .filter(|t| t.state == TargetState::Verifying)
        .filter(|t| {
            old.iter()
                .any(|o| o.node == t.node && o.state == TargetState::Rebooting)
        })
        .count() as u64
}

/// What the run keeps of its nodes' results, read from their reports in the cache: an install's
/// package changes (once per node, when its report shows the finished install of this run) and
/// a preview's fleet totals.
fn record_results(ctx: &Context, run: &PatchRun, name: &str, status: &mut PatchRunStatus) {
    let report_of = |node: &str| ctx.stores.reports.get(&ObjectRef::new(node));
    match run.spec.operation {
        Operation::Install => {
            // Each node is recorded once: skip those already in the run's status before any
            // cache lookup, so a step stays linear in the targets however many are recorded.
            let recorded: std::collections::HashSet<String> =
                status.changes.iter().map(|c| c.node.clone()).collect();
            let finished: Vec<String> = status
                .targets
                .iter()
                .filter(|t| t.state != TargetState::Pending && !recorded.contains(&t.node))
                .map(|t| t.node.clone())
                .collect();
            for node in finished {
                let Some(report) = report_of(&node) else {
                    continue;
                };
                let Some(op) = report.status.as_ref().and_then(|s| s.operation.as_ref()) else {
                    continue;
                };
                if op.run == name && op.phase.is_finished() {
                    record_node_changes(status, &node, &op.changes, op.changes_omitted);
                }
            }
        }
        Operation::Preview => {
            let reports: Vec<_> = status
                .targets
                .iter()
                .filter(|t| t.state != TargetState::Pending)
                .filter_map(|t| report_of(&t.node))
                .collect();
            let results = reports
                .iter()
                .filter_map(|r| r.status.as_ref().and_then(|s| s.preview.as_ref()));
            status.preview = Some(preview_summary(name, results));
        }
        Operation::Scan => {}
    }
}

/// Suspended (the policy's `suspend`) or canceled (`spec.cancel`); cancel wins.
fn hold_of(run: &PatchRun, policy: &PatchPolicy) -> RunHold {
    if run.spec.cancel.is_some() {
        RunHold::Canceled
    } else if policy.spec.suspend {
        RunHold::Suspended
    } else {
        RunHold::Proceed
    }
}

/// The hold as status tells it: the suspended policy's name, or who canceled and why.
fn hold_note(run: &PatchRun, policy: &PatchPolicy, hold: RunHold) -> Hold {
    match hold {
        RunHold::Proceed => Hold::Proceed,
        RunHold::Suspended => Hold::Suspended(policy.name_any()),
        RunHold::Canceled => Hold::Canceled(cancel_note_of(run)),
    }
}

/// Who canceled `run` and why, as its condition and Event say it.
pub(super) fn cancel_note_of(run: &PatchRun) -> String {
    cancel_note(
        canceled_by(run).as_deref(),
        run.spec.cancel.as_ref().and_then(|c| c.reason.as_deref()),
    )
}

/// Who canceled a run: the user the chart's admission policy stamped into
/// `nodepatch.dev/canceled-by` (the apiserver's own record of the request), else the field
/// manager that set `spec.cancel` (what the client called itself, e.g. `kubectl-patch`).
fn canceled_by(run: &PatchRun) -> Option<String> {
    if let Some(user) = run.annotations().get(CANCELED_BY_ANNOTATION) {
        return Some(user.clone());
    }
    run.metadata
        .managed_fields
        .iter()
        .flatten()
        .find(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer("/f:spec/f:cancel").is_some())
        })
        .and_then(|m| m.manager.as_ref())
        .map(|m| format!("field manager {m}"))
}

/// Every other policy, to see a pending node another policy now claims too; none when no
/// target is pending (the only ones this is read for).
fn other_policies(
    ctx: &Context,
    policy: &PatchPolicy,
    targets: &[RunTarget],
) -> Vec<std::sync::Arc<PatchPolicy>> {
    if !targets.iter().any(|t| t.state == TargetState::Pending) {
        return Vec::new();
    }
    ctx.stores
        .policies
        .state()
        .into_iter()
        .filter(|p| p.metadata.name != policy.metadata.name)
        .collect()
}

/// What is seen of one target node now; None when the Node is gone from the cache.
async fn observe_target(
    ctx: &Context,
    run: &PatchRun,
    name: &str,
    t: &RunTarget,
    settings: &StepSettings,
    others: &[std::sync::Arc<PatchPolicy>],
) -> Result<Option<NodeObservation>> {
    let Some(node) = ctx.stores.nodes.get(&ObjectRef::new(&t.node)) else {
        return Ok(None);
    };
    let labelled = node.labels().get(RUN_LABEL).is_some_and(|v| v == name);
    // Opt-out and contest matter only for nodes that have not started: the labels of pending
    // nodes are read from the metadata cache, the other policies from the cache once per step.
    let pending = t.state == TargetState::Pending;
    let excluded = pending && is_excluded(node.labels());
    let conflicting = pending
        && others
            .iter()
            .any(|p| selector_matches(&p.spec.node_selector, node.labels()).unwrap_or(false));
    let report = ctx.stores.reports.get(&ObjectRef::new(&t.node));
    let progress = progress_of(report.as_deref(), name, run.spec.operation);
    let mut obs = NodeObservation {
        exists: true,
        labelled,
        excluded,
        conflicting,
        progress,
        installing: super::act::installing_for(report.as_deref(), name),
        report_boot_id: finished_boot_id(report.as_deref(), name),
        agent_failure: agent_failure_of(report.as_deref(), name),
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
    if settings.reboots && (entering || disrupting) {
        match Api::<Node>::all(ctx.client.clone())
            .get_opt(&t.node)
            .await?
        {
            Some(n) => obs.health = node_health(&n),
            None => obs.exists = false,
        }
    }
    if obs.exists && t.state == TargetState::Draining {
        let pods = survey(&pods_on(&ctx.client, &t.node).await?, &settings.drain);
        let refused = ctx
            .eviction_refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&t.node)
            .cloned()
            .unwrap_or_default();
        obs.drain = drain_progress(&pods, &refused);
        obs.evict = pods.evict;
    }
    Ok(Some(obs))
}

/// The agents' failure messages for this run, by node, for the failed nodes status lists that
/// carry no message of their own: only those reports are read, and only their message is
/// copied (a step runs every few seconds over up to thousands of targets).
fn agent_messages(ctx: &Context, targets: &[RunTarget], run: &str) -> BTreeMap<String, String> {
    targets
        .iter()
        .filter(|t| t.state == TargetState::Failed)
        .take(MAX_FAILED_LISTED)
        .filter(|t| t.message.is_none())
        .filter_map(|t| {
            let report = ctx.stores.reports.get(&ObjectRef::new(&t.node))?;
            let op = report.status.as_ref()?.operation.as_ref()?;
            let message = op.message.as_deref().filter(|_| op.run == run)?;
            Some((t.node.clone(), agent_message(message)))
        })
        .collect()
}

/// Carry out the plan. Uncordons go before the status write: if the controller dies in between,
/// the node is still recorded as cordoned by the run and the next step uncordons it again. Then
/// status, the durable intent, before labels: a controller that dies in between sees an
/// in-flight node without its label next time and labels it again; it never starts extra
/// nodes, because in-flight nodes are counted from status. The rest in the planner's order
/// (a node's cordon before its evictions).
async fn apply_plan(
    ctx: &Context,
    run: &PatchRun,
    name: &str,
    old: &PatchRunStatus,
    status: &PatchRunStatus,
    plan: &RolloutPlan,
    drain: &DrainOptions,
) -> Result<()> {
    for action in &plan.actions {
        if let RolloutAction::Uncordon(node) = action {
            set_unschedulable(ctx, node, false).await?;
        }
    }
    harness::apply_status_if_changed(ctx, KIND, run, Some(old), status).await?;
    for action in &plan.actions {
        match action {
            RolloutAction::Uncordon(_) => {}
            RolloutAction::Cordon(node) => set_unschedulable(ctx, node, true).await?,
            RolloutAction::Label(node) => label_unless_taken(ctx, node, name).await?,
            RolloutAction::Unlabel(node) => set_run_label(ctx, node, None).await?,
            RolloutAction::Evict { node, pods } => {
                let refused = evict(&ctx.eviction_client, pods, drain, &ctx.metrics).await?;
                let mut refusals = ctx
                    .eviction_refusals
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                if refused.is_empty() {
                    refusals.remove(node);
                } else {
                    refusals.insert(node.clone(), refused);
                }
            }
        }
    }
    // Refusals describe a drain under way: forget a node's once it has left Draining, so they
    // neither linger nor colour the messages of a later drain of that node.
    let mut refusals = ctx
        .eviction_refusals
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if !refusals.is_empty() {
        for t in status
            .targets
            .iter()
            .filter(|t| t.state != TargetState::Draining)
        {
            refusals.remove(&t.node);
        }
    }
    Ok(())
}

/// Label `node` into the run, unless another run holds it: a run never takes a node from
/// another run (the planner's timeout fails it instead).
async fn label_unless_taken(ctx: &Context, node: &str, name: &str) -> Result<()> {
    let current = ctx
        .stores
        .nodes
        .get(&ObjectRef::new(node))
        .and_then(|n| n.labels().get(RUN_LABEL).cloned());
    match current {
        Some(other) if other != name => {
            tracing::warn!(run = name, node, other_run = %other, "node is in another run; not labelling it");
            Ok(())
        }
        _ => set_run_label(ctx, node, Some(name)).await,
    }
}

/// When to look again. Report changes wake the run through their own watch, which can deliver
/// an event before the report cache (another watch) has it: the step then sees the old report
/// and nothing else would wake it. While nodes are in flight, look again every few seconds.
fn next_look(plan: &RolloutPlan, now: Timestamp) -> Action {
    let safety = if plan.counts.in_progress > 0 {
        IN_FLIGHT_POLL
    } else {
        IDLE_POLL
    };
    match plan.requeue_at {
        Some(at) => Action::requeue(until(now, at).min(safety) + Duration::from_millis(20)),
        None => Action::requeue(safety),
    }
}

fn until(now: Timestamp, at: Timestamp) -> Duration {
    at.duration_since(now).try_into().unwrap_or(Duration::ZERO)
}

/// The window constraint of a run: only scheduled installs are bound to windows.
async fn window_state(
    run: &PatchRun,
    policy: &PatchPolicy,
    ctx: &Context,
    now: Timestamp,
) -> Result<WindowState> {
    if run.spec.operation != Operation::Install || run.spec.trigger == RunTrigger::Manual {
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
        let Ok(def) = crate::controller::maintenancewindow::definition_of(&mw, now) else {
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

/// What a node's report says about this run.
pub fn progress_of(
    report: Option<&NodePatchReport>,
    run: &str,
    operation: Operation,
) -> AgentProgress {
    // A preview writes only its own field: done when it names this run, failed when it could
    // not evaluate the node (NotApplicable is a result: the draft is for another OS).
    if operation == Operation::Preview {
        return match report
            .and_then(|r| r.status.as_ref())
            .and_then(|s| s.preview.as_ref())
        {
            Some(p) if p.run == run && p.compliance == Compliance::Unknown => AgentProgress::Failed,
            Some(p) if p.run == run => AgentProgress::Succeeded {
                reboot_required: false,
            },
            _ => AgentProgress::NotStarted,
        };
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{NodePatchReportStatus, OperationStatus};

    fn run_and_policy(run_option: Option<&str>, policy_option: &str) -> (PatchRun, PatchPolicy) {
        let mut run = serde_json::json!({
            "metadata": {"name": "r"},
            "spec": {"policyRef": "p", "operation": "Install"}
        });
        if let Some(o) = run_option {
            run["spec"]["rebootOption"] = o.into();
        }
        let policy = serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"nodeSelector": {}, "install": {"maintenanceWindowRefs": ["w"], "rebootOption": policy_option}}
        });
        (
            serde_json::from_value(run).expect("run"),
            serde_json::from_value(policy).expect("policy"),
        )
    }

    #[test]
    fn only_drains_failing_and_reboots_ending_in_this_step_are_counted() {
        let t = |node: &str, state: TargetState, reason: Option<&str>| RunTarget {
            node: node.into(),
            state,
            reason: reason.map(Into::into),
            ..Default::default()
        };
        let old = vec![
            t("a", TargetState::Draining, None),
            t("b", TargetState::Draining, None),
            t("c", TargetState::Failed, Some("DrainTimeout")),
            t("d", TargetState::Rebooting, None),
        ];
        let new = vec![
            t("a", TargetState::Failed, Some("DrainTimeout")),
            t("b", TargetState::Failed, Some("DrainFailed")),
            // Failed in an earlier step: already counted.
            t("c", TargetState::Failed, Some("DrainTimeout")),
            // Not a drain failure.
            t("d", TargetState::Failed, Some("RebootTimeout")),
        ];
        assert_eq!(
            drain_failures(&old, &new),
            vec!["DrainTimeout", "DrainFailed"]
        );
        let old = vec![
            t("a", TargetState::Rebooting, None),
            t("b", TargetState::Rebooting, None),
            t("c", TargetState::Verifying, None),
        ];
        let new = vec![
            t("a", TargetState::Verifying, None),
            t("b", TargetState::Rebooting, None),
            t("c", TargetState::Verifying, None),
        ];
        assert_eq!(rebooted(&old, &new), 1, "only a came back in this step");
    }

    #[test]
    fn a_runs_reboot_option_overrides_its_policys() {
        // The run says NoReboot under a RebootIfNeeded policy: nothing is rebooted (so never
        // cordoned or drained), and the reverse turns the reboot sequence on.
        let (run, policy) = run_and_policy(Some("NoReboot"), "RebootIfNeeded");
        let s = step_settings(&run, &policy, &PatchRunStatus::default(), 3)
            .unwrap_or_else(|(r, m)| panic!("{r}: {m}"));
        assert_eq!(s.reboot_option, RebootOption::NoReboot);
        assert!(!s.reboots && !s.limits.reboot_if_needed);
        let (run, policy) = run_and_policy(Some("RebootIfNeeded"), "NoReboot");
        let s = step_settings(&run, &policy, &PatchRunStatus::default(), 3)
            .unwrap_or_else(|(r, m)| panic!("{r}: {m}"));
        assert!(s.reboots && s.limits.reboot_if_needed);
        let (run, policy) = run_and_policy(None, "RebootIfNeeded");
        let s = step_settings(&run, &policy, &PatchRunStatus::default(), 3)
            .unwrap_or_else(|(r, m)| panic!("{r}: {m}"));
        assert_eq!(
            s.reboot_option,
            RebootOption::RebootIfNeeded,
            "the policy's when the run sets none"
        );
    }

    #[test]
    fn the_rollout_and_drain_settings_fixed_at_start_win_over_a_policy_edited_since() {
        let (run, mut policy) = run_and_policy(None, "RebootIfNeeded");
        let mut fixed = PatchRunStatus {
            rollout: Some(policy.spec.rollout.clone()),
            drain: Some(policy.spec.drain.clone()),
            ..Default::default()
        };
        fixed.rollout.as_mut().expect("rollout").max_concurrency =
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(2);
        fixed.drain.as_mut().expect("drain").timeout = "7m".into();
        // Edited mid-run: a value the run cannot use, and another drain timeout.
        policy.spec.rollout.max_concurrency =
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("bad".into());
        policy.spec.drain.timeout = "1m".into();
        let s =
            step_settings(&run, &policy, &fixed, 10).unwrap_or_else(|(r, m)| panic!("{r}: {m}"));
        assert_eq!(s.limits.max_concurrency, 2);
        assert_eq!(
            s.limits.drain_timeout,
            k8s_openapi::jiff::SignedDuration::from_mins(7)
        );
        // A run started before the settings were recorded reads the policy (and fails on it).
        let old = step_settings(&run, &policy, &PatchRunStatus::default(), 10);
        assert!(matches!(old, Err(("InvalidRollout", _))));
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
}
