//! PatchPolicy reconciler, the I/O around the pure decisions of [`crate::policy`]: it turns the
//! caches (membership, runs, baselines, reports) and the referenced MaintenanceWindows into a
//! [`PolicyView`], asks [`plan_policy`], then creates the due run, prunes history, writes status
//! (when changed) and publishes the Events.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::context::Context;
use super::error::{Error, Result};
use super::harness;
use super::metrics::{PolicySignals, level_label};
use crate::api::conditions;
use crate::api::{MaintenanceWindow, NodePatchReport, PatchPolicy, PatchRun};
use crate::policy::rollup::{fleet_signals, missing_since};
use crate::policy::{
    MemberReport, NewRun, PolicyPlan, PolicyView, RunRecord, WindowRef, plan_policy,
};
use crate::rollout::cordons::{RunCordons, left_cordoned};

const KIND: &str = "PatchPolicy";

/// Reconcile one policy.
pub async fn reconcile(policy: Arc<PatchPolicy>, ctx: Arc<Context>) -> Result<Action> {
    harness::instrumented(KIND, policy.as_ref(), &ctx, reconcile_inner(&policy, &ctx)).await
}

/// Observe → plan → act.
async fn reconcile_inner(policy: &PatchPolicy, ctx: &Context) -> Result<Action> {
    let name = policy.metadata.name.clone().ok_or(Error::MissingName)?;
    let now = Timestamp::now();
    let windows = observe_windows(policy, ctx, now).await?;
    let view = observe(policy, &name, windows, ctx);
    let plan = plan_policy(&view, now);
    act(policy, &name, &plan, ctx).await?;
    ctx.metrics.set_policy_signals(&name, policy_signals(&view));
    refresh_metrics(ctx);
    refresh_left_cordoned(ctx).await?;
    let wait: Duration = plan
        .requeue_at
        .duration_since(now)
        .try_into()
        .unwrap_or(Duration::from_secs(1));
    Ok(Action::requeue(wait + Duration::from_millis(20)))
}

/// The referenced MaintenanceWindows, read from the API, as the planner sees them.
async fn observe_windows(
    policy: &PatchPolicy,
    ctx: &Context,
    now: Timestamp,
) -> Result<Vec<(String, WindowRef)>> {
    let api: Api<MaintenanceWindow> = Api::all(ctx.client.clone());
    let mut windows = vec![];
    for w in policy
        .spec
        .install
        .iter()
        .flat_map(|i| i.maintenance_window_refs.iter())
    {
        let found = match api.get_opt(w).await? {
            None => WindowRef::Missing,
            Some(mw) => match super::maintenancewindow::definition_of(&mw, now) {
                Ok(d) => WindowRef::Defined(Box::new(d)),
                Err(e) => WindowRef::Invalid {
                    reason: e.reason,
                    message: e.message,
                },
            },
        };
        windows.push((w.clone(), found));
    }
    Ok(windows)
}

/// The planner's view of `policy` from the caches.
fn observe<'a>(
    policy: &'a PatchPolicy,
    name: &str,
    windows: Vec<(String, WindowRef)>,
    ctx: &Context,
) -> PolicyView<'a> {
    let node_labels: BTreeMap<String, BTreeMap<String, String>> = ctx
        .stores
        .nodes
        .state()
        .iter()
        .map(|n| (n.name_any(), n.metadata.labels.clone().unwrap_or_default()))
        .collect();
    let policies = ctx.stores.policies.state();
    let mut m = crate::rollout::targeting::membership(
        policies.iter().map(|p| {
            (
                p.metadata.name.as_deref().unwrap_or(""),
                &p.spec.node_selector,
            )
        }),
        &node_labels,
    );
    let members = m.members.remove(name).unwrap_or_default();
    // Only members' reports count: look them up by name instead of copying every report.
    let reports = members
        .iter()
        .filter_map(|node| {
            let r = ctx.stores.reports.get(&ObjectRef::new(node))?;
            let s = r.status.as_ref()?;
            let created = r.metadata.creation_timestamp.as_ref().map(|t| t.0);
            Some(MemberReport {
                node: node.clone(),
                compliance: s.compliance,
                missing: s.non_compliant_by_severity.clone(),
                reboot_required: s.reboot_required,
                last_scan: s.last_scan_time.as_ref().map(|t| t.0),
                missing_since: missing_since(s, created),
            })
        })
        .collect();
    PolicyView {
        policy,
        runs: ctx
            .stores
            .runs
            .state()
            .iter()
            .filter(|r| r.spec.policy_ref == name)
            .map(|r| RunRecord::from(r.as_ref()))
            .collect(),
        windows,
        baselines: ctx
            .stores
            .baselines
            .state()
            .iter()
            .map(|b| (b.name_any(), b.spec.operating_system))
            .collect(),
        members,
        conflicts: m.conflicts.get(name).cloned().unwrap_or_default(),
        selector_error: m.invalid.get(name).map(|e| e.to_string()),
        reports,
    }
}

/// Create the due run, prune history, write status (when changed), publish the Events.
async fn act(policy: &PatchPolicy, name: &str, plan: &PolicyPlan, ctx: &Context) -> Result<()> {
    let runs_api: Api<PatchRun> = Api::all(ctx.client.clone());
    if let Some(new) = &plan.create {
        let run = scheduled_run(policy, name, new)?;
        match runs_api.create(&PostParams::default(), &run).await {
            Ok(_) => {}
            // Created by an earlier reconcile whose cache had not caught up yet.
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    for old in &plan.prune {
        match runs_api.delete(old, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    harness::apply_status_if_changed(ctx, KIND, policy, policy.status.as_ref(), &plan.status)
        .await?;
    for event in &plan.events {
        let ev = Event {
            type_: if event.is_warning() {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: event.reason().into(),
            note: Some(event.note()),
            action: "Schedule".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&ev, &policy.object_ref(&())).await {
            tracing::warn!(policy = %name, error = %e, "publishing event failed");
        }
    }
    Ok(())
}

/// The PatchRun a schedule creates: owned by the policy, labelled with it.
fn scheduled_run(policy: &PatchPolicy, name: &str, new: &NewRun) -> Result<PatchRun> {
    let run = json!({
        "apiVersion": PatchRun::api_version(&()),
        "kind": "PatchRun",
        "metadata": {
            "name": new.name,
            "labels": {"nodepatch.dev/policy": name},
            // Also stamped by the chart's MutatingAdmissionPolicy (which overwrites what a
            // request says); set here for clusters installed without the admission policies.
            "annotations": {crate::api::REQUESTED_BY_ANNOTATION: crate::api::SCHEDULE_REQUESTER},
            "ownerReferences": policy.controller_owner_ref(&()).into_iter().collect::<Vec<_>>(),
        },
        "spec": {"policyRef": name, "operation": new.operation.as_str(), "trigger": "Schedule"},
    });
    serde_json::from_value(run).map_err(|source| Error::Serialize {
        what: "PatchRun",
        source,
    })
}

/// The metrics' signals of the policy `view` shows, from its members' reports.
fn policy_signals(view: &PolicyView<'_>) -> PolicySignals {
    let f = fleet_signals(&view.members, &view.reports);
    PolicySignals {
        reboot_required: f.reboot_required,
        last_scan: f.oldest_last_scan,
        noncompliant_since: f
            .missing_since
            .into_iter()
            .map(|(level, t)| (level_label(level), t))
            .collect(),
    }
}

/// Rebuild the per-policy and per-phase gauges from the caches (deleted policies drop out).
fn refresh_metrics(ctx: &Context) {
    use super::metrics::{
        PhaseLabels, PolicyComplianceLabels, PolicyLabels, PolicyLevelLabels, StateLabels,
        target_state_label,
    };
    use crate::api::{RunPhase, TargetState};
    const TARGET_STATES: [TargetState; 9] = [
        TargetState::Pending,
        TargetState::InProgress,
        TargetState::Draining,
        TargetState::Rebooting,
        TargetState::Verifying,
        TargetState::Succeeded,
        TargetState::SucceededRebootRequired,
        TargetState::Failed,
        TargetState::Skipped,
    ];
    let m = &ctx.metrics;
    let policies = ctx.stores.policies.state();
    m.refresh_policy_signals(policies.iter().filter_map(|p| p.metadata.name.as_deref()));
    m.policy_nodes.clear();
    m.policy_missing.clear();
    m.policy_last_run_halted.clear();
    for p in &policies {
        let Some(s) = &p.status else { continue };
        let policy = p.name_any();
        let nodes = [
            ("compliant", s.nodes.compliant),
            ("noncompliant", s.nodes.non_compliant),
            ("unknown", s.nodes.unknown),
            ("notapplicable", s.nodes.not_applicable),
            ("conflicting", s.nodes.conflicting.unwrap_or(0)),
        ];
        for (compliance, n) in nodes {
            m.policy_nodes
                .get_or_create(&PolicyComplianceLabels {
                    policy: policy.clone(),
                    compliance,
                })
                .set(i64::from(n));
        }
        let sev = &s.missing_by_severity;
        let levels = [
            ("critical", sev.critical),
            ("high", sev.high),
            ("medium", sev.medium),
            ("low", sev.low),
            ("informational", sev.informational),
            ("unspecified", sev.unspecified),
        ];
        for (compliance_level, n) in levels {
            m.policy_missing
                .get_or_create(&PolicyLevelLabels {
                    policy: policy.clone(),
                    compliance_level,
                })
                .set(i64::from(n));
        }
        let halted = conditions::find(&s.conditions, conditions::DEGRADED)
            .is_some_and(|c| c.status == "True" && c.reason == "LastRunFailed");
        m.policy_last_run_halted
            .get_or_create(&PolicyLabels { policy })
            .set(i64::from(halted));
    }
    m.runs.clear();
    m.run_nodes.clear();
    // Every state is exposed, at 0 when no running run has a node in it, so per-state queries
    // answer on an idle fleet too.
    for state in TARGET_STATES {
        m.run_nodes
            .get_or_create(&StateLabels {
                state: target_state_label(state),
            })
            .set(0);
    }
    for r in ctx.stores.runs.state() {
        let phase = r.status.as_ref().map(|s| s.phase).unwrap_or_default();
        m.runs
            .get_or_create(&PhaseLabels {
                phase: phase.as_str(),
            })
            .inc();
        if phase != RunPhase::Running {
            continue;
        }
        for t in r.status.iter().flat_map(|s| s.targets.iter()) {
            m.run_nodes
                .get_or_create(&StateLabels {
                    state: target_state_label(t.state),
                })
                .inc();
        }
    }
}

/// How often unchanged candidates are checked again (each costs a GET).
const CORDON_CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Set `nodes_cordoned`: nodes a run left cordoned ([`left_cordoned`]) that are still
/// unschedulable. The candidates come from the run cache on every policy reconcile; they are
/// checked (one GET each, normally none) when they changed, else at most every
/// [`CORDON_CHECK_EVERY`], so a node uncordoned by hand drops out at a later reconcile.
async fn refresh_left_cordoned(ctx: &Context) -> Result<()> {
    let runs = ctx.stores.runs.state();
    let candidates = left_cordoned(runs.iter().filter_map(|r| {
        let s = r.status.as_ref()?;
        Some(RunCordons {
            started: s.start_time.as_ref().map(|t| t.0),
            name: r.metadata.name.as_deref().unwrap_or(""),
            targets: &s.targets,
        })
    }));
    {
        let mut last = ctx.cordon_check.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, seen)) = &*last
            && *seen == candidates
            && at.elapsed() < CORDON_CHECK_EVERY
        {
            return Ok(());
        }
        *last = Some((std::time::Instant::now(), candidates.clone()));
    }
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    let mut still = 0i64;
    for node in candidates {
        let cordoned = nodes
            .get_opt(&node)
            .await?
            .and_then(|n| n.spec.and_then(|s| s.unschedulable))
            .unwrap_or(false);
        still += i64::from(cordoned);
    }
    ctx.metrics.nodes_cordoned.set(still);
    Ok(())
}

/// Run the PatchPolicy controller. Its runs wake it (they are owned by it), and so do report
/// changes (roll-ups), through the run that produced them.
pub async fn run(ctx: Arc<Context>) {
    let (policies, trigger) = ctx
        .stores
        .controller_watch::<PatchPolicy>(&ctx.client, "PatchPolicy/patchpolicy");
    // Owned runs are watched as metadata only, which always decodes.
    let runs: Api<PatchRun> = Api::all(ctx.client.clone());
    let store = ctx.stores.runs.clone();
    let reports = ctx
        .stores
        .watch_objects::<NodePatchReport>(&ctx.client, "NodePatchReport/patchpolicy");
    let controller = Controller::for_stream(trigger, policies)
        .owns(runs, watcher::Config::default().any_semantic())
        .watches_stream(reports, move |r: NodePatchReport| {
            let run = r
                .status
                .and_then(|s| s.operation)
                .map(|o| o.run)
                .filter(|r| !r.is_empty())?;
            let run = store.get(&kube::runtime::reflector::ObjectRef::new(&run))?;
            Some(kube::runtime::reflector::ObjectRef::<PatchPolicy>::new(
                &run.spec.policy_ref,
            ))
        });
    harness::drive(KIND, controller.run(reconcile, harness::error_policy, ctx)).await;
}
