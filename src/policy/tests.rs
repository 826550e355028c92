use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

use super::*;
use crate::api::conditions;
use crate::api::{PatchPolicy, PatchRun, PolicyConflict, RunPhase};
use crate::schedule::Schedule;
use crate::schedule::duration::parse_duration;
use crate::schedule::window::{WindowDefinition, parse_time_zone};

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn policy(spec: serde_json::Value) -> PatchPolicy {
    let mut p = PatchPolicy::new("prod", serde_json::from_value(spec).expect("policy spec"));
    p.metadata.generation = Some(1);
    p.metadata.creation_timestamp = Some(Time(ts("2026-11-01T00:00:00Z")));
    p
}

fn run(name: &str, op: &str, trigger: &str, created_at: &str, phase: Option<RunPhase>) -> PatchRun {
    let mut r = PatchRun::new(
        name,
        serde_json::from_value(json!({"policyRef": "prod", "operation": op, "trigger": trigger}))
            .expect("run spec"),
    );
    r.metadata.creation_timestamp = Some(Time(ts(created_at)));
    r.status = phase.map(|p| crate::api::PatchRunStatus {
        phase: p,
        completion_time: p.is_finished().then(|| Time(ts(created_at))),
        ..Default::default()
    });
    r
}

fn window(schedule: &str) -> WindowRef {
    // As the MaintenanceWindow {"schedule": schedule, "duration": "4h", "cutoff": "1h"} created
    // on 2026-01-01 defines it.
    let mut def = WindowDefinition::new(
        Schedule::parse(schedule).expect("schedule"),
        parse_time_zone("UTC").expect("tz"),
        parse_duration("4h").expect("duration"),
        ts("2026-01-01T00:00:00Z"),
    );
    def.cutoff = parse_duration("1h").expect("cutoff");
    WindowRef::Defined(Box::new(def))
}

fn view<'a>(
    p: &'a PatchPolicy,
    runs: Vec<&PatchRun>,
    windows: Vec<(String, WindowRef)>,
) -> PolicyView<'a> {
    PolicyView {
        policy: p,
        runs: runs.into_iter().map(RunRecord::from).collect(),
        windows,
        baselines: vec![],
        members: BTreeSet::from(["n1".to_string(), "n2".to_string()]),
        conflicts: vec![],
        selector_error: None,
        reports: vec![],
    }
}

#[test]
fn run_names_fit_a_label_value() {
    let at = ts("2026-12-08T02:00:00Z");
    assert_eq!(
        scheduled_run_name("prod", Operation::Install, at),
        "prod-install-20261208-020000"
    );
    let long = "a".repeat(80);
    let name = scheduled_run_name(&long, Operation::Scan, at);
    assert!(name.len() <= 63, "{name}");
    assert!(name.ends_with("-scan-20261208-020000"));
    assert_ne!(
        name,
        scheduled_run_name(&"b".repeat(80), Operation::Scan, at),
        "the hash keeps long names apart"
    );
}

#[test]
fn a_new_policy_scans_at_once_then_on_schedule() {
    let p = policy(json!({"nodeSelector": {}}));
    let now = ts("2026-11-26T10:00:00Z");
    let plan = plan_policy(&view(&p, vec![], vec![]), now);
    assert_eq!(
        plan.create.as_ref().map(|c| c.operation),
        Some(Operation::Scan)
    );
    let done = run(
        "prod-scan-1",
        "Scan",
        "Schedule",
        "2026-11-26T10:00:00Z",
        Some(RunPhase::Succeeded),
    );
    let plan = plan_policy(&view(&p, vec![&done], vec![]), ts("2026-11-26T10:05:00Z"));
    assert_eq!(plan.create, None, "next scan is tomorrow 01:00");
    assert_eq!(
        plan.requeue_at,
        ts("2026-11-26T10:10:00Z"),
        "resync cap of 5 minutes"
    );
    let plan = plan_policy(&view(&p, vec![&done], vec![]), ts("2026-11-27T01:00:00Z"));
    assert_eq!(
        plan.create.as_ref().map(|c| c.operation),
        Some(Operation::Scan)
    );
}

#[test]
fn scan_schedule_is_read_in_its_time_zone() {
    // 01:00 in Berlin is 00:00 UTC in November (CET, UTC+1).
    let p = policy(
        json!({"nodeSelector": {}, "scan": {"schedule": "cron(0 1 * * ? *)", "timeZone": "Europe/Berlin"}}),
    );
    let done = run(
        "prod-scan-1",
        "Scan",
        "Schedule",
        "2026-11-26T10:00:00Z",
        Some(RunPhase::Succeeded),
    );
    let plan = plan_policy(&view(&p, vec![&done], vec![]), ts("2026-11-26T23:59:00Z"));
    assert_eq!(plan.create, None, "not yet 01:00 in Berlin");
    let plan = plan_policy(&view(&p, vec![&done], vec![]), ts("2026-11-27T00:00:00Z"));
    assert_eq!(
        plan.create.as_ref().map(|c| c.operation),
        Some(Operation::Scan),
        "01:00 Europe/Berlin"
    );
}

#[test]
fn install_run_starts_once_per_open_window_and_never_stacks() {
    let p = policy(json!({"nodeSelector": {}, "install": {"maintenanceWindowRefs": ["tue"]}}));
    let w = window("cron(0 2 ? * TUE#2 *)");
    let scanned = run(
        "prod-scan-1",
        "Scan",
        "Schedule",
        "2026-12-08T00:30:00Z",
        Some(RunPhase::Succeeded),
    );
    let in_window = ts("2026-12-08T02:00:30Z");
    let windows = || vec![("tue".to_string(), w.clone())];
    let plan = plan_policy(&view(&p, vec![&scanned], windows()), in_window);
    assert_eq!(
        plan.create.as_ref().map(|c| c.operation),
        Some(Operation::Install)
    );
    assert_eq!(
        plan.status.next_install_window.map(|t| t.0),
        Some(ts("2026-12-08T02:00:00Z"))
    );

    let install = run(
        "prod-install-1",
        "Install",
        "Schedule",
        "2026-12-08T02:00:30Z",
        Some(RunPhase::Running),
    );
    let plan = plan_policy(
        &view(&p, vec![&scanned, &install], windows()),
        ts("2026-12-08T02:10:00Z"),
    );
    assert_eq!(plan.create, None, "one install run per window");
    assert_eq!(plan.status.active_run.as_deref(), Some("prod-install-1"));

    // A scan due while the install is active is deferred, not stacked.
    let plan = plan_policy(
        &view(&p, vec![&scanned, &install], windows()),
        ts("2026-12-09T01:00:00Z"),
    );
    assert_eq!(plan.create, None);
    assert!(plan.events.iter().any(|e| e.reason() == "RunDeferred"));

    // After the cutoff no install starts.
    let plan = plan_policy(
        &view(&p, vec![&scanned], windows()),
        ts("2026-12-08T05:00:00Z"),
    );
    assert_ne!(
        plan.create.as_ref().map(|c| c.operation),
        Some(Operation::Install)
    );
}

#[test]
fn missing_references_make_the_policy_not_ready_and_start_nothing() {
    let p = policy(
        json!({"nodeSelector": {}, "baselineRefs": ["nope"], "install": {"maintenanceWindowRefs": ["gone"]}}),
    );
    let plan = plan_policy(
        &view(&p, vec![], vec![("gone".to_string(), WindowRef::Missing)]),
        ts("2026-11-26T10:00:00Z"),
    );
    let ready = conditions::find(&plan.status.conditions, conditions::READY).expect("ready");
    assert_eq!(ready.status, "False");
    assert!(
        ready.message.contains("PatchBaseline nope does not exist"),
        "{}",
        ready.message
    );
    assert!(
        ready
            .message
            .contains("MaintenanceWindow gone does not exist"),
        "{}",
        ready.message
    );
    assert_eq!(plan.create, None);
}

#[test]
fn a_node_timeout_shorter_than_the_agents_install_makes_the_policy_not_ready() {
    let window = || vec![("w".to_string(), window("cron(0 2 * * ? *)"))];
    let short = policy(json!({
        "nodeSelector": {},
        "rollout": {"nodeTimeout": "30m"},
        "install": {"maintenanceWindowRefs": ["w"]},
    }));
    let plan = plan_policy(&view(&short, vec![], window()), ts("2026-11-26T10:00:00Z"));
    let ready = conditions::find(&plan.status.conditions, conditions::READY).expect("ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "InvalidRollout")
    );
    assert!(
        ready
            .message
            .starts_with("spec.rollout.nodeTimeout: 30m is shorter than the agent's worst case"),
        "{}",
        ready.message
    );
    assert_eq!(plan.create, None);
    // The default covers it; a scan-only policy has no install to cover.
    let default = policy(json!({"nodeSelector": {}, "install": {"maintenanceWindowRefs": ["w"]}}));
    let plan = plan_policy(
        &view(&default, vec![], window()),
        ts("2026-11-26T10:00:00Z"),
    );
    let ready = conditions::find(&plan.status.conditions, conditions::READY).expect("ready");
    assert_eq!(ready.status, "True", "{}", ready.message);
    let scan_only = policy(json!({"nodeSelector": {}, "rollout": {"nodeTimeout": "30m"}}));
    let plan = plan_policy(
        &view(&scan_only, vec![], vec![]),
        ts("2026-11-26T10:00:00Z"),
    );
    let ready = conditions::find(&plan.status.conditions, conditions::READY).expect("ready");
    assert_eq!(ready.status, "True", "{}", ready.message);
}

#[test]
fn history_beyond_the_limit_is_pruned_oldest_first() {
    let p = policy(json!({"nodeSelector": {}, "historyLimit": 2}));
    let r1 = run(
        "r1",
        "Scan",
        "Schedule",
        "2026-11-20T01:00:00Z",
        Some(RunPhase::Succeeded),
    );
    let r2 = run(
        "r2",
        "Scan",
        "Schedule",
        "2026-11-21T01:00:00Z",
        Some(RunPhase::Succeeded),
    );
    let r3 = run(
        "r3",
        "Scan",
        "Schedule",
        "2026-11-22T01:00:00Z",
        Some(RunPhase::Halted),
    );
    let plan = plan_policy(
        &view(&p, vec![&r1, &r2, &r3], vec![]),
        ts("2026-11-22T02:00:00Z"),
    );
    assert_eq!(plan.prune, ["r1"]);
    let degraded =
        conditions::find(&plan.status.conditions, conditions::DEGRADED).expect("degraded");
    assert_eq!(
        (degraded.status.as_str(), degraded.reason.as_str()),
        ("True", "LastRunFailed")
    );
}

#[test]
fn conflicts_are_reported_and_degrade_the_policy() {
    let p = policy(json!({"nodeSelector": {}}));
    let mut v = view(&p, vec![], vec![]);
    v.conflicts = vec![PolicyConflict {
        node: "n3".into(),
        other_policy: "gpu".into(),
    }];
    let plan = plan_policy(&v, ts("2026-11-26T10:00:00Z"));
    assert_eq!(plan.status.conflicts.len(), 1);
    assert_eq!(plan.status.nodes.conflicting, Some(1));
    assert!(conditions::is_true(
        &plan.status.conditions,
        conditions::DEGRADED
    ));
    assert!(plan.events.iter().any(|e| e.reason() == "NodeConflict"));
}

/// The kstatus conditions of a plan: (Reconciling status, Stalled status and reason).
fn kstatus(plan: &PolicyPlan) -> (String, String, String) {
    let of = |t: &str| conditions::find(&plan.status.conditions, t).expect("kstatus condition");
    let (r, s) = (of(conditions::RECONCILING), of(conditions::STALLED));
    assert_eq!(r.observed_generation, plan.status.observed_generation);
    (r.status.clone(), s.status.clone(), s.reason.clone())
}

#[test]
fn a_policy_is_stalled_by_bad_references_and_conflicts_and_current_otherwise() {
    let now = ts("2026-11-26T10:00:00Z");
    let broken = policy(json!({"nodeSelector": {}, "baselineRefs": ["nope"]}));
    let plan = plan_policy(&view(&broken, vec![], vec![]), now);
    assert_eq!(
        kstatus(&plan),
        ("False".into(), "True".into(), "BaselineNotFound".into())
    );

    let p = policy(json!({"nodeSelector": {}}));
    let mut v = view(&p, vec![], vec![]);
    v.conflicts = vec![PolicyConflict {
        node: "n3".into(),
        other_policy: "gpu".into(),
    }];
    assert_eq!(
        kstatus(&plan_policy(&v, now)),
        ("False".into(), "True".into(), "NodeConflicts".into())
    );

    // A failed last run and an active run leave the policy Current: the next run retries on
    // its own, and the run reports its own progress.
    let halted = run(
        "r1",
        "Scan",
        "Schedule",
        "2026-11-25T01:00:00Z",
        Some(RunPhase::Halted),
    );
    let active = run("r2", "Scan", "Schedule", "2026-11-26T09:00:00Z", None);
    let plan = plan_policy(&view(&p, vec![&halted, &active], vec![]), now);
    assert!(conditions::is_true(
        &plan.status.conditions,
        conditions::PROGRESSING
    ));
    assert_eq!(
        kstatus(&plan),
        ("False".into(), "False".into(), "Current".into())
    );
}

#[test]
fn a_suspended_policy_is_ready_with_reason_suspended_and_not_stalled() {
    let p = policy(json!({"nodeSelector": {}, "suspend": true}));
    let plan = plan_policy(&view(&p, vec![], vec![]), ts("2026-11-26T10:00:00Z"));
    let ready = conditions::find(&plan.status.conditions, conditions::READY).expect("ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Suspended")
    );
    assert_eq!(
        kstatus(&plan),
        ("False".into(), "False".into(), "Current".into())
    );
}
