//! PatchPolicy reconciler: validates references, decides when a scan or install run is due,
//! prunes run history and rolls node reports up into the policy's status. Decisions come from
//! [`plan_policy`], a pure function of the observed objects and `now`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp, tz::TimeZone};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use sha2::Digest;

use super::{Context, Error, Result};
use crate::api::conditions::{self, new_condition, set_condition};
use crate::api::{
    CONTROLLER_MANAGER, Compliance, MaintenanceWindow, NodeComplianceCounts, NodePatchReport,
    Operation, PatchBaseline, PatchPolicy, PatchPolicyStatus, PatchRun, PolicyConflict, RunPhase,
    RunTrigger, SeverityCounts,
};
use crate::schedule::Schedule;
use crate::schedule::window::{WindowDefinition, parse_time_zone};

const KIND: &str = "PatchPolicy";
/// Longest time between two looks at a policy (membership and report roll-ups).
const RESYNC: SignedDuration = SignedDuration::from_mins(5);

/// A run the planner wants created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRun {
    /// Run name (≤ 63 characters: it is a label value).
    pub name: String,
    /// Scan or Install.
    pub operation: Operation,
}

/// Decisions for one policy.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyPlan {
    /// Desired status.
    pub status: PatchPolicyStatus,
    /// Run to create now.
    pub create: Option<NewRun>,
    /// Finished runs beyond historyLimit to delete.
    pub prune: Vec<String>,
    /// Events (type, reason, note).
    pub events: Vec<(EventType, &'static str, String)>,
    /// Look again at this instant.
    pub requeue_at: Timestamp,
}

/// What the planner sees.
pub struct PolicyView<'a> {
    /// The policy.
    pub policy: &'a PatchPolicy,
    /// Its runs (any phase).
    pub runs: Vec<&'a PatchRun>,
    /// Referenced windows by name (None: missing).
    pub windows: Vec<(String, Option<&'a MaintenanceWindow>)>,
    /// Every PatchBaseline.
    pub baselines: Vec<&'a PatchBaseline>,
    /// Nodes the policy may act on (conflicts removed).
    pub members: BTreeSet<String>,
    /// Its conflicts.
    pub conflicts: Vec<PolicyConflict>,
    /// Selector error, if any.
    pub selector_error: Option<String>,
    /// Reports of member nodes.
    pub reports: Vec<&'a NodePatchReport>,
}

/// Name of a scheduled run: `<policy>-<scan|install>-<yyyymmdd-hhmm>`, shortened with a hash
/// when the policy name is long (run names are label values: ≤ 63 characters).
pub fn scheduled_run_name(policy: &str, operation: Operation, at: Timestamp) -> String {
    let stamp = at
        .to_zoned(TimeZone::UTC)
        .strftime("%Y%m%d-%H%M%S")
        .to_string();
    let op = match operation {
        Operation::Scan => "scan",
        Operation::Install => "install",
    };
    let full = format!("{policy}-{op}-{stamp}");
    if full.len() <= 63 {
        return full;
    }
    let digest = sha2::Sha256::digest(policy.as_bytes());
    let hash: String = digest.iter().take(3).map(|b| format!("{b:02x}")).collect();
    let keep = 63 - (op.len() + stamp.len() + hash.len() + 3);
    let prefix: String = policy
        .chars()
        .take(keep)
        .collect::<String>()
        .trim_end_matches(['-', '.'])
        .to_string();
    format!("{prefix}-{hash}-{op}-{stamp}")
}

fn created(run: &PatchRun) -> Timestamp {
    run.metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

fn phase(run: &PatchRun) -> RunPhase {
    run.status.as_ref().map(|s| s.phase).unwrap_or_default()
}

/// Decide a policy's status and the run to start. Pure.
pub fn plan_policy(view: &PolicyView<'_>, now: Timestamp) -> PolicyPlan {
    let policy = view.policy;
    let name = policy.name_any();
    let generation = policy.metadata.generation;
    let old = policy.status.clone().unwrap_or_default();
    let mut conditions = old.conditions.clone();
    let mut events = vec![];
    let mut requeue_at = now + RESYNC;
    let mut wake = |t: Timestamp| {
        if t > now && t < requeue_at {
            requeue_at = t;
        }
    };

    // References and schedules.
    let mut problems: Vec<(&'static str, String)> = vec![];
    if let Some(e) = &view.selector_error {
        problems.push(("InvalidSelector", format!("spec.{e}")));
    }
    let mut seen_os = BTreeMap::new();
    for r in &policy.spec.baseline_refs {
        match view.baselines.iter().find(|b| b.name_any() == *r) {
            None => problems.push((
                "BaselineNotFound",
                format!("spec.baselineRefs: PatchBaseline {r} does not exist"),
            )),
            Some(b) => {
                if let Some(other) = seen_os.insert(b.spec.operating_system, r.clone()) {
                    problems.push((
                        "DuplicateBaselineOS",
                        format!(
                            "spec.baselineRefs: {other} and {r} are both for {}",
                            b.spec.operating_system
                        ),
                    ));
                }
            }
        }
    }
    let anchor = policy
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    let scan = policy.spec.scan.clone().unwrap_or_default();
    let scan_def = Schedule::parse(&scan.schedule)
        .map_err(|e| format!("spec.scan.schedule: {e}"))
        .and_then(|s| {
            let tz = parse_time_zone(scan.time_zone.as_deref().unwrap_or("UTC"))
                .map_err(|e| format!("spec.scan.{e}"))?;
            Ok(WindowDefinition::new(
                s,
                tz,
                SignedDuration::from_hours(1),
                anchor,
            ))
        });
    if let Err(e) = &scan_def {
        problems.push(("InvalidSchedule", e.clone()));
    }
    let mut window_defs = vec![];
    for (wname, w) in &view.windows {
        match w {
            None => problems.push((
                "WindowNotFound",
                format!(
                    "spec.install.maintenanceWindowRefs: MaintenanceWindow {wname} does not exist"
                ),
            )),
            Some(mw) => {
                let a = mw
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0)
                    .unwrap_or(now);
                match super::maintenancewindow::window_definition(&mw.spec, a) {
                    Ok(d) => window_defs.push(d),
                    Err(e) => problems.push((
                        e.reason,
                        format!("MaintenanceWindow {wname}: {}", e.message),
                    )),
                }
            }
        }
    }
    let ready = problems.is_empty();
    let (reason, message) = match problems.first() {
        None => ("Valid", "references and schedules are valid".to_string()),
        Some((r, _)) => (
            *r,
            problems
                .iter()
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
    };
    set_condition(
        &mut conditions,
        new_condition(
            conditions::READY,
            ready.into(),
            reason,
            message,
            generation,
            now,
        ),
    );

    // Runs.
    let mut runs = view.runs.clone();
    runs.sort_by_key(|r| std::cmp::Reverse(created(r)));
    let active = runs.iter().find(|r| !phase(r).is_finished());
    let mut create = None;
    let open_window = window_defs
        .iter()
        .filter_map(|d| d.window_at(now))
        .find(|w| w.accepts_new_work(now));
    let next_window = window_defs
        .iter()
        .filter_map(|d| d.next_windows(now, 1).into_iter().next())
        .map(|w| w.start)
        .min();
    for d in &window_defs {
        if let Some(b) = d.next_boundary(now) {
            wake(b);
        }
    }
    if ready && !policy.spec.suspend {
        let install_due = policy.spec.install.as_ref().and(open_window).filter(|w| {
            !runs.iter().any(|r| {
                r.spec.operation == Operation::Install
                    && r.spec.trigger == RunTrigger::Schedule
                    && created(r) >= w.start
            })
        });
        let scan_due = match &scan_def {
            Ok(def) => {
                let last = runs
                    .iter()
                    .filter(|r| {
                        r.spec.operation == Operation::Scan
                            && r.spec.trigger == RunTrigger::Schedule
                    })
                    .map(|r| created(r))
                    .max();
                match last {
                    // A new policy scans at once, so compliance is known without waiting a day.
                    None => true,
                    Some(last) => match def.next_windows(last, 1).first() {
                        Some(w) if w.start <= now => true,
                        Some(w) => {
                            wake(w.start);
                            false
                        }
                        None => false,
                    },
                }
            }
            Err(_) => false,
        };
        let due = if install_due.is_some() {
            Some(Operation::Install)
        } else if scan_due {
            Some(Operation::Scan)
        } else {
            None
        };
        match (due, active) {
            (Some(op), None) => {
                create = Some(NewRun {
                    name: scheduled_run_name(&name, op, now),
                    operation: op,
                })
            }
            (Some(op), Some(a)) => {
                events.push((
                    EventType::Normal,
                    "RunDeferred",
                    format!(
                        "{} due while run {} is active: it starts when that run ends",
                        op.as_str(),
                        a.name_any()
                    ),
                ));
                wake(now + SignedDuration::from_secs(30));
            }
            (None, _) => {}
        }
    }

    // History: finished runs beyond historyLimit, oldest first.
    let finished: Vec<&&PatchRun> = runs.iter().filter(|r| phase(r).is_finished()).collect();
    let prune: Vec<String> = finished
        .iter()
        .skip(policy.spec.history_limit.max(1) as usize)
        .map(|r| r.name_any())
        .collect();

    // Roll-up.
    let mut nodes = NodeComplianceCounts {
        total: view.members.len() as u32,
        ..Default::default()
    };
    let mut missing = SeverityCounts::default();
    let mut reported = 0;
    for r in &view.reports {
        let Some(s) = &r.status else { continue };
        if !view.members.contains(&r.name_any()) {
            continue;
        }
        reported += 1;
        match s.compliance {
            Compliance::Compliant => nodes.compliant += 1,
            Compliance::NonCompliant => nodes.non_compliant += 1,
            _ => nodes.unknown += 1,
        }
        missing.merge(&s.non_compliant_by_severity);
    }
    nodes.unknown += nodes.total.saturating_sub(reported);
    let conflicting: BTreeSet<&str> = view.conflicts.iter().map(|c| c.node.as_str()).collect();
    nodes.conflicting = Some(conflicting.len() as u32);
    let last_time = |op: Operation| {
        runs.iter()
            .filter(|r| r.spec.operation == op && phase(r).is_finished())
            .filter_map(|r| r.status.as_ref().and_then(|s| s.completion_time.clone()))
            .max_by_key(|t| t.0)
    };
    let mut conflicts = view.conflicts.clone();
    conflicts.sort();
    conflicts.truncate(100);
    let active_name = active
        .map(|r| r.name_any())
        .or_else(|| create.as_ref().map(|c| c.name.clone()));
    let active_phase = active
        .map(|r| phase(r).as_str().to_string())
        .or_else(|| create.as_ref().map(|_| "Pending".to_string()));
    set_condition(
        &mut conditions,
        new_condition(
            conditions::PROGRESSING,
            active_name.is_some().into(),
            if active_name.is_some() {
                "RunActive"
            } else {
                "Idle"
            },
            active_name
                .as_ref()
                .map(|n| format!("run {n} is active"))
                .unwrap_or_else(|| "no active run".into()),
            generation,
            now,
        ),
    );
    let last_finished = finished.first().map(|r| phase(r));
    let (degraded, d_reason, d_message) = if !conflicts.is_empty() {
        (
            true,
            "NodeConflicts",
            format!(
                "{} nodes are also selected by another policy and are skipped",
                conflicting.len()
            ),
        )
    } else if matches!(last_finished, Some(RunPhase::Halted | RunPhase::Failed)) {
        (
            true,
            "LastRunFailed",
            format!(
                "the last run ended {}",
                last_finished.map(|p| p.as_str()).unwrap_or_default()
            ),
        )
    } else {
        (
            false,
            "Healthy",
            "no conflicts; the last run did not fail".to_string(),
        )
    };
    set_condition(
        &mut conditions,
        new_condition(
            conditions::DEGRADED,
            degraded.into(),
            d_reason,
            d_message,
            generation,
            now,
        ),
    );
    let status = PatchPolicyStatus {
        observed_generation: generation,
        nodes,
        missing_by_severity: missing,
        last_scan_time: last_time(Operation::Scan),
        last_install_time: last_time(Operation::Install),
        next_install_window: policy.spec.install.as_ref().and_then(|_| {
            window_defs
                .iter()
                .filter_map(|d| d.window_at(now))
                .map(|w| w.start)
                .min()
                .or(next_window)
                .map(Time)
        }),
        active_run: active_name,
        active_run_phase: active_phase,
        conflicts,
        conditions,
    };
    let newly_conflicting = status
        .conflicts
        .iter()
        .filter(|c| !old.conflicts.contains(c))
        .count();
    if newly_conflicting > 0 {
        events.push((
            EventType::Warning,
            "NodeConflict",
            format!(
                "{newly_conflicting} nodes are selected by this and another policy; both skip them"
            ),
        ));
    }
    PolicyPlan {
        status,
        create,
        prune,
        events,
        requeue_at,
    }
}

/// Reconcile one policy.
pub async fn reconcile(policy: Arc<PatchPolicy>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let result = reconcile_inner(&policy, &ctx).await;
    ctx.metrics.observe(
        KIND,
        started.elapsed(),
        result.as_ref().err().map(Error::category),
    );
    result
}

async fn reconcile_inner(policy: &PatchPolicy, ctx: &Context) -> Result<Action> {
    let name = policy.metadata.name.clone().ok_or(Error::MissingName)?;
    let now = Timestamp::now();
    let node_labels: BTreeMap<String, BTreeMap<String, String>> = ctx
        .stores
        .nodes
        .state()
        .iter()
        .map(|n| (n.name_any(), n.metadata.labels.clone().unwrap_or_default()))
        .collect();
    let policies = ctx.stores.policies.state();
    let m = crate::rollout::targeting::membership(
        policies.iter().map(|p| {
            (
                p.metadata.name.as_deref().unwrap_or(""),
                &p.spec.node_selector,
            )
        }),
        &node_labels,
    );
    let all_runs = ctx.stores.runs.state();
    let baselines = ctx.stores.baselines.state();
    let reports = ctx.stores.reports.state();
    let mw_api: Api<MaintenanceWindow> = Api::all(ctx.client.clone());
    let mut windows = vec![];
    for w in policy
        .spec
        .install
        .iter()
        .flat_map(|i| i.maintenance_window_refs.iter())
    {
        windows.push((w.clone(), mw_api.get_opt(w).await?));
    }
    let view = PolicyView {
        policy,
        runs: all_runs
            .iter()
            .filter(|r| r.spec.policy_ref == name)
            .map(|r| r.as_ref())
            .collect(),
        windows: windows
            .iter()
            .map(|(n, w)| (n.clone(), w.as_ref()))
            .collect(),
        baselines: baselines.iter().map(|b| b.as_ref()).collect(),
        members: m.members.get(&name).cloned().unwrap_or_default(),
        conflicts: m.conflicts.get(&name).cloned().unwrap_or_default(),
        selector_error: m.invalid.get(&name).map(|e| e.to_string()),
        reports: reports.iter().map(|r| r.as_ref()).collect(),
    };
    let plan = plan_policy(&view, now);

    let runs_api: Api<PatchRun> = Api::all(ctx.client.clone());
    if let Some(new) = &plan.create {
        let run = json!({
            "apiVersion": PatchRun::api_version(&()),
            "kind": "PatchRun",
            "metadata": {
                "name": new.name,
                "labels": {"nodepatch.dev/policy": name},
                "ownerReferences": policy.controller_owner_ref(&()).into_iter().collect::<Vec<_>>(),
            },
            "spec": {"policyRef": name, "operation": new.operation.as_str(), "trigger": "Schedule"},
        });
        let run: PatchRun = serde_json::from_value(run).map_err(|source| Error::Serialize {
            what: "PatchRun",
            source,
        })?;
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
    if policy
        .status
        .as_ref()
        .is_none_or(|old| !conditions::same_status(old, &plan.status))
    {
        let api: Api<PatchPolicy> = Api::all(ctx.client.clone());
        let patch = json!({"apiVersion": PatchPolicy::api_version(&()), "kind": KIND, "status": plan.status});
        api.patch_status(
            &name,
            &PatchParams::apply(CONTROLLER_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        ctx.metrics
            .status_writes
            .get_or_create(&super::metrics::KindLabels { kind: KIND })
            .inc();
    }
    for (type_, reason, note) in plan.events {
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "Schedule".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&ev, &policy.object_ref(&())).await {
            tracing::warn!(policy = %name, error = %e, "publishing event failed");
        }
    }
    refresh_metrics(ctx);
    let wait: Duration = plan
        .requeue_at
        .duration_since(now)
        .try_into()
        .unwrap_or(Duration::from_secs(1));
    Ok(Action::requeue(wait + Duration::from_millis(20)))
}

/// Rebuild the per-policy and per-phase gauges from the caches (deleted policies drop out).
fn refresh_metrics(ctx: &Context) {
    use super::metrics::{PhaseLabels, PolicyComplianceLabels, PolicyLabels, PolicySeverityLabels};
    let m = &ctx.metrics;
    m.policy_nodes.clear();
    m.policy_missing.clear();
    m.policy_last_run_halted.clear();
    for p in ctx.stores.policies.state() {
        let Some(s) = &p.status else { continue };
        let policy = p.name_any();
        let nodes = [
            ("compliant", s.nodes.compliant),
            ("noncompliant", s.nodes.non_compliant),
            ("unknown", s.nodes.unknown),
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
        for (severity, n) in levels {
            m.policy_missing
                .get_or_create(&PolicySeverityLabels {
                    policy: policy.clone(),
                    severity,
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
    let mut cordoned = 0i64;
    for r in ctx.stores.runs.state() {
        let phase = r.status.as_ref().map(|s| s.phase).unwrap_or_default();
        m.runs
            .get_or_create(&PhaseLabels {
                phase: phase.as_str(),
            })
            .inc();
        if !phase.is_finished() {
            cordoned += r.status.as_ref().map_or(0, |s| {
                s.targets.iter().filter(|t| t.cordoned).count() as i64
            });
        }
    }
    m.nodes_cordoned.set(cordoned);
}

fn error_policy(p: Arc<PatchPolicy>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(policy = %p.name_any(), category = error.category(), %error, "reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

/// Run the PatchPolicy controller. Its runs wake it (they are owned by it), and so do report
/// changes (roll-ups), through the run that produced them.
pub async fn run(ctx: Arc<Context>) {
    let api: Api<PatchPolicy> = Api::all(ctx.client.clone());
    let runs: Api<PatchRun> = Api::all(ctx.client.clone());
    let store = ctx.stores.runs.clone();
    let reports: Api<NodePatchReport> = Api::all(ctx.client.clone());
    Controller::new(api, watcher::Config::default().any_semantic())
        .owns(runs, watcher::Config::default().any_semantic())
        .watches(
            reports,
            watcher::Config::default().any_semantic(),
            move |r: NodePatchReport| {
                let run = r
                    .status
                    .and_then(|s| s.operation)
                    .map(|o| o.run)
                    .filter(|r| !r.is_empty())?;
                let run = store.get(&kube::runtime::reflector::ObjectRef::new(&run))?;
                Some(kube::runtime::reflector::ObjectRef::<PatchPolicy>::new(
                    &run.spec.policy_ref,
                ))
            },
        )
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "patchpolicy controller");
            }
        })
        .await;
}

#[cfg(test)]
mod tests;
