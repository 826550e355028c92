use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn t0() -> Timestamp {
    ts("2026-12-08T02:00:00Z")
}

fn limits(max_concurrency: u32, max_errors: u32) -> RolloutLimits {
    RolloutLimits {
        max_concurrency,
        max_errors,
        topology_key: None,
        soak_time: SignedDuration::ZERO,
        node_timeout: SignedDuration::from_hours(1),
        reboot_if_needed: false,
        drain: true,
        drain_timeout: SignedDuration::from_mins(15),
    }
}

fn run_of(nodes: &[(&str, Option<&str>)]) -> RunState {
    RunState {
        phase: RunPhase::Pending,
        hold: RunHold::Proceed,
        targets: initial_targets(
            nodes
                .iter()
                .map(|(n, z)| (n.to_string(), z.map(str::to_string))),
        ),
        current_wave: 0,
        last_wave_completion: None,
    }
}

fn obs(progress: AgentProgress, labelled: bool) -> NodeObservation {
    NodeObservation {
        exists: true,
        labelled,
        progress,
        ..NodeObservation::default()
    }
}

/// Observations as the cluster would show them after applying `plan`'s label actions, with
/// every labelled node at `progress`.
fn observe(
    run: &RunState,
    progress: &BTreeMap<String, AgentProgress>,
) -> BTreeMap<String, NodeObservation> {
    run.targets
        .iter()
        .map(|t| {
            let labelled = matches!(t.state, TargetState::InProgress);
            let p = progress
                .get(&t.node)
                .copied()
                .unwrap_or(AgentProgress::NotStarted);
            (
                t.node.clone(),
                obs(
                    if labelled {
                        p
                    } else {
                        AgentProgress::NotStarted
                    },
                    labelled,
                ),
            )
        })
        .collect()
}

/// A step of a run no window constrains (scans, manual runs): most tests.
fn unconstrained(
    run: &RunState,
    limits: &RolloutLimits,
    observed: &BTreeMap<String, NodeObservation>,
    now: Timestamp,
) -> RolloutPlan {
    plan_rollout(run, limits, observed, WindowState::Unconstrained, now)
}

/// The durable state a reconciler would write back after `plan`.
fn apply(plan: &RolloutPlan) -> RunState {
    RunState {
        phase: plan.phase,
        hold: RunHold::Proceed,
        targets: plan.targets.clone(),
        current_wave: plan.current_wave,
        last_wave_completion: plan.last_wave_completion,
    }
}

fn labelled(plan: &RolloutPlan) -> Vec<String> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            RolloutAction::Label(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn percent_rounds_down_with_at_least_one_node() {
    let spec = crate::api::RolloutSpec {
        max_concurrency: IntOrString::String("10%".into()),
        ..Default::default()
    };
    assert_eq!(
        RolloutLimits::resolve(&spec, 7)
            .expect("valid")
            .max_concurrency,
        1,
        "10% of 7 nodes = 1"
    );
    assert_eq!(
        RolloutLimits::resolve(&spec, 25)
            .expect("valid")
            .max_concurrency,
        2
    );
    assert_eq!(
        RolloutLimits::resolve(&spec, 100)
            .expect("valid")
            .max_concurrency,
        10
    );
    assert_eq!(
        resolve_int_or_percent(&IntOrString::String("5%".into()), 7, "f"),
        Ok(0),
        "maxErrors 5% of 7 = 0"
    );
    assert_eq!(resolve_int_or_percent(&IntOrString::Int(3), 7, "f"), Ok(3));
    assert!(resolve_int_or_percent(&IntOrString::String("x%".into()), 7, "f").is_err());
}

#[test]
fn first_step_starts_max_concurrency_nodes_in_name_order() {
    let run = run_of(&[("c", None), ("a", None), ("b", None)]);
    let plan = unconstrained(&run, &limits(2, 0), &observe(&run, &BTreeMap::new()), t0());
    assert_eq!(labelled(&plan), ["a", "b"]);
    assert_eq!(plan.phase, RunPhase::Running);
    assert_eq!(plan.current_wave, 1);
    assert_eq!(plan.counts.in_progress, 2);
    assert_eq!(
        plan.events,
        vec![RolloutEvent::WaveStarted {
            wave: 1,
            nodes: vec!["a".into(), "b".into()]
        }]
    );
    assert_eq!(
        plan.requeue_at,
        Some(t0() + SignedDuration::from_hours(1)),
        "wake at the node timeout"
    );
}

#[test]
fn finished_nodes_are_unlabelled_and_slots_refilled() {
    let run = run_of(&[("a", None), ("b", None), ("c", None)]);
    let p1 = unconstrained(&run, &limits(2, 0), &observe(&run, &BTreeMap::new()), t0());
    let run = apply(&p1);
    let progress = BTreeMap::from([(
        "a".to_string(),
        AgentProgress::Succeeded {
            reboot_required: false,
        },
    )]);
    let p2 = unconstrained(&run, &limits(2, 0), &observe(&run, &progress), t0());
    assert!(p2.actions.contains(&RolloutAction::Unlabel("a".into())));
    assert_eq!(labelled(&p2), ["c"]);
    assert_eq!(p2.counts.succeeded, 1);
    assert_eq!(p2.counts.in_progress, 2);
}

#[test]
fn max_errors_exceeded_halts_after_in_flight_nodes_finish() {
    let run = run_of(&[("a", None), ("b", None), ("c", None), ("d", None)]);
    let p1 = unconstrained(&run, &limits(2, 0), &observe(&run, &BTreeMap::new()), t0());
    let run = apply(&p1);
    let progress = BTreeMap::from([("a".to_string(), AgentProgress::Failed)]);
    let p2 = unconstrained(&run, &limits(2, 0), &observe(&run, &progress), t0());
    assert!(
        labelled(&p2).is_empty(),
        "no new node after the error budget is exceeded"
    );
    assert_eq!(p2.phase, RunPhase::Running, "b is still in flight");
    assert!(p2.events.contains(&RolloutEvent::Halted {
        failed: 1,
        max_errors: 0
    }));
    let run = apply(&p2);
    let progress = BTreeMap::from([(
        "b".to_string(),
        AgentProgress::Succeeded {
            reboot_required: false,
        },
    )]);
    let p3 = unconstrained(&run, &limits(2, 0), &observe(&run, &progress), t0());
    assert_eq!(p3.phase, RunPhase::Halted);
    assert_eq!(p3.counts.pending, 2, "remaining nodes untouched");
    assert!(
        p3.events
            .contains(&RolloutEvent::Finished(RunPhase::Halted))
    );
    assert!(
        !p3.events
            .iter()
            .any(|e| matches!(e, RolloutEvent::Halted { .. })),
        "Halted is announced once"
    );
}

#[test]
fn failures_within_the_budget_still_succeed() {
    let run = run_of(&[("a", None), ("b", None)]);
    let p1 = unconstrained(&run, &limits(2, 1), &observe(&run, &BTreeMap::new()), t0());
    let run = apply(&p1);
    let progress = BTreeMap::from([
        ("a".to_string(), AgentProgress::Failed),
        (
            "b".to_string(),
            AgentProgress::Succeeded {
                reboot_required: true,
            },
        ),
    ]);
    let p2 = unconstrained(&run, &limits(2, 1), &observe(&run, &progress), t0());
    assert_eq!(p2.phase, RunPhase::Succeeded);
    assert_eq!(
        (
            p2.counts.failed,
            p2.counts.succeeded,
            p2.counts.succeeded_reboot_required
        ),
        (1, 1, 1)
    );
}

#[test]
fn topology_goes_one_zone_at_a_time_smallest_first() {
    let run = run_of(&[
        ("a1", Some("zone-a")),
        ("a2", Some("zone-a")),
        ("a3", Some("zone-a")),
        ("b1", Some("zone-b")),
        ("b2", Some("zone-b")),
    ]);
    let mut l = limits(5, 0);
    l.topology_key = Some("topology.kubernetes.io/zone".into());
    let p1 = unconstrained(&run, &l, &observe(&run, &BTreeMap::new()), t0());
    assert_eq!(
        labelled(&p1),
        ["b1", "b2"],
        "zone-b has 2 nodes, zone-a 3: smallest first"
    );
    let run = apply(&p1);
    let progress = BTreeMap::from([(
        "b1".to_string(),
        AgentProgress::Succeeded {
            reboot_required: false,
        },
    )]);
    let p2 = unconstrained(&run, &l, &observe(&run, &progress), t0());
    assert!(
        labelled(&p2).is_empty(),
        "zone-a waits until zone-b is done"
    );
    let run = apply(&p2);
    let progress = BTreeMap::from([(
        "b2".to_string(),
        AgentProgress::Succeeded {
            reboot_required: false,
        },
    )]);
    let p3 = unconstrained(&run, &l, &observe(&run, &progress), t0());
    assert_eq!(labelled(&p3), ["a1", "a2", "a3"]);
}

#[test]
fn soak_time_separates_waves() {
    let run = run_of(&[("a", None), ("b", None)]);
    let mut l = limits(1, 0);
    l.soak_time = SignedDuration::from_mins(15);
    let p1 = unconstrained(&run, &l, &observe(&run, &BTreeMap::new()), t0());
    let run = apply(&p1);
    let done = BTreeMap::from([(
        "a".to_string(),
        AgentProgress::Succeeded {
            reboot_required: false,
        },
    )]);
    let t1 = t0() + SignedDuration::from_mins(5);
    let p2 = unconstrained(&run, &l, &observe(&run, &done), t1);
    assert!(labelled(&p2).is_empty(), "soaking");
    assert_eq!(p2.last_wave_completion, Some(t1));
    assert_eq!(p2.requeue_at, Some(t1 + SignedDuration::from_mins(15)));
    let run = apply(&p2);
    let p3 = unconstrained(
        &run,
        &l,
        &observe(&run, &BTreeMap::new()),
        t1 + SignedDuration::from_mins(14),
    );
    assert!(labelled(&p3).is_empty(), "still soaking");
    let p4 = unconstrained(
        &run,
        &l,
        &observe(&run, &BTreeMap::new()),
        t1 + SignedDuration::from_mins(15),
    );
    assert_eq!(labelled(&p4), ["b"]);
    assert_eq!(p4.current_wave, 2);
}

#[test]
fn node_timeout_fails_the_node() {
    let run = run_of(&[("a", None)]);
    let l = limits(1, 0);
    let p1 = unconstrained(&run, &l, &observe(&run, &BTreeMap::new()), t0());
    let run = apply(&p1);
    let installing = BTreeMap::from([("a".to_string(), AgentProgress::Installing)]);
    let p2 = unconstrained(
        &run,
        &l,
        &observe(&run, &installing),
        t0() + SignedDuration::from_mins(59),
    );
    assert_eq!(p2.counts.in_progress, 1);
    let p3 = unconstrained(
        &run,
        &l,
        &observe(&run, &installing),
        t0() + SignedDuration::from_hours(1),
    );
    assert_eq!(p3.targets[0].state, TargetState::Failed);
    assert_eq!(p3.targets[0].reason.as_deref(), Some("NodeTimeout"));
    assert!(p3.actions.contains(&RolloutAction::Unlabel("a".into())));
    assert_eq!(p3.phase, RunPhase::Halted);
}

#[test]
fn a_node_timing_out_mid_transaction_keeps_its_agent_until_the_transaction_ends() {
    let run = run_of(&[("a", None)]);
    let l = limits(1, 0);
    let p1 = unconstrained(&run, &l, &observe(&run, &BTreeMap::new()), t0());
    let run = apply(&p1);
    let mut o = obs(AgentProgress::Installing, true);
    o.installing = true;
    let at = t0() + SignedDuration::from_hours(1);
    let p2 = unconstrained(&run, &l, &one("a", o.clone()), at);
    assert_eq!(p2.targets[0].state, TargetState::Failed);
    assert_eq!(p2.targets[0].reason.as_deref(), Some("NodeTimeout"));
    assert!(
        p2.targets[0]
            .message
            .as_deref()
            .is_some_and(|m| m.contains("still installing")),
        "{:?}",
        p2.targets[0].message
    );
    assert!(
        !p2.actions.contains(&RolloutAction::Unlabel("a".into())),
        "the label (and so the agent) stays while dpkg runs: {:?}",
        p2.actions
    );
    // Still installing a while later: still held.
    let run = apply(&p2);
    let p3 = unconstrained(
        &run,
        &l,
        &one("a", o.clone()),
        at + SignedDuration::from_mins(10),
    );
    assert!(!p3.actions.contains(&RolloutAction::Unlabel("a".into())));
    // The transaction ended: the label goes.
    let done = obs(AgentProgress::Failed, true);
    let p4 = unconstrained(
        &run,
        &l,
        &one("a", done),
        at + SignedDuration::from_mins(11),
    );
    assert!(p4.actions.contains(&RolloutAction::Unlabel("a".into())));
    // An agent that never reports again holds the node at most another nodeTimeout.
    let p5 = unconstrained(&run, &l, &one("a", o), at + SignedDuration::from_hours(1));
    assert!(p5.actions.contains(&RolloutAction::Unlabel("a".into())));
}

#[test]
fn keeps_agent_only_while_installing_and_within_twice_the_node_timeout() {
    let mut t = initial_targets([("a".to_string(), None)]).remove(0);
    let hour = SignedDuration::from_hours(1);
    assert!(keeps_agent(&t, true, hour, t0()), "no start time: held");
    t.start_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t0()));
    assert!(keeps_agent(
        &t,
        true,
        hour,
        t0() + SignedDuration::from_mins(119)
    ));
    assert!(!keeps_agent(
        &t,
        true,
        hour,
        t0() + SignedDuration::from_mins(120)
    ));
    assert!(!keeps_agent(&t, false, hour, t0()));
}

#[test]
fn no_new_nodes_after_cutoff_and_run_times_out_with_the_rest_listed() {
    let run = run_of(&[("a", None), ("b", None), ("c", None)]);
    let cutoff_at = t0() + SignedDuration::from_mins(30);
    let window = WindowState::Open {
        cutoff_at,
        cancel_at_cutoff: false,
    };
    let p1 = plan_rollout(
        &run,
        &limits(1, 0),
        &observe(&run, &BTreeMap::new()),
        window,
        t0(),
    );
    assert_eq!(labelled(&p1), ["a"]);
    let run = apply(&p1);
    let installing = BTreeMap::from([("a".to_string(), AgentProgress::Installing)]);
    let p2 = plan_rollout(
        &run,
        &limits(1, 0),
        &observe(&run, &installing),
        window,
        cutoff_at,
    );
    assert!(labelled(&p2).is_empty());
    assert_eq!(p2.phase, RunPhase::Running, "ContinueTask: a finishes");
    let run = apply(&p2);
    let done = BTreeMap::from([(
        "a".to_string(),
        AgentProgress::Succeeded {
            reboot_required: false,
        },
    )]);
    let p3 = plan_rollout(
        &run,
        &limits(1, 0),
        &observe(&run, &done),
        window,
        cutoff_at + SignedDuration::from_mins(1),
    );
    assert_eq!(p3.phase, RunPhase::TimedOut);
    let skipped: Vec<_> = p3
        .targets
        .iter()
        .filter(|t| t.reason.as_deref() == Some("WindowClosed"))
        .map(|t| t.node.as_str())
        .collect();
    assert_eq!(skipped, ["b", "c"]);
}

#[test]
fn cancel_task_stops_in_flight_nodes_not_yet_installing() {
    let run = run_of(&[("a", None), ("b", None)]);
    let cutoff_at = t0() + SignedDuration::from_mins(30);
    let window = WindowState::Open {
        cutoff_at,
        cancel_at_cutoff: true,
    };
    let p1 = plan_rollout(
        &run,
        &limits(2, 0),
        &observe(&run, &BTreeMap::new()),
        window,
        t0(),
    );
    let run = apply(&p1);
    let progress = BTreeMap::from([
        ("a".to_string(), AgentProgress::Installing),
        ("b".to_string(), AgentProgress::Preparing),
    ]);
    let p2 = plan_rollout(
        &run,
        &limits(2, 0),
        &observe(&run, &progress),
        window,
        cutoff_at,
    );
    let b = p2.targets.iter().find(|t| t.node == "b").expect("b");
    assert_eq!(
        (b.state, b.reason.as_deref()),
        (TargetState::Skipped, Some("CanceledAtCutoff"))
    );
    let a = p2.targets.iter().find(|t| t.node == "a").expect("a");
    assert_eq!(
        a.state,
        TargetState::InProgress,
        "an installing node is never interrupted"
    );
}

#[test]
fn closed_window_starts_nothing() {
    let run = run_of(&[("a", None)]);
    let p = plan_rollout(
        &run,
        &limits(1, 0),
        &observe(&run, &BTreeMap::new()),
        WindowState::Closed,
        t0(),
    );
    assert!(labelled(&p).is_empty());
    assert_eq!(p.phase, RunPhase::TimedOut);
}

#[test]
fn deleted_node_is_skipped() {
    let run = run_of(&[("a", None), ("b", None)]);
    let p1 = unconstrained(&run, &limits(1, 0), &observe(&run, &BTreeMap::new()), t0());
    let run = apply(&p1);
    let mut o = observe(&run, &BTreeMap::new());
    o.remove("a");
    let p2 = unconstrained(&run, &limits(1, 0), &o, t0());
    assert_eq!(p2.targets[0].reason.as_deref(), Some("NodeDeleted"));
    assert_eq!(labelled(&p2), ["b"], "the freed slot is reused");
}

#[test]
fn restarted_planner_resumes_from_status_without_exceeding_concurrency() {
    // The same durable state planned twice (a controller restart between) starts nothing twice.
    let run = run_of(&[("a", None), ("b", None), ("c", None)]);
    let p1 = unconstrained(&run, &limits(1, 0), &observe(&run, &BTreeMap::new()), t0());
    let run = apply(&p1);
    let again = unconstrained(&run, &limits(1, 0), &observe(&run, &BTreeMap::new()), t0());
    assert!(labelled(&again).is_empty());
    assert_eq!(again.counts.in_progress, 1);
}

#[test]
fn in_flight_node_without_its_label_is_relabelled_not_duplicated() {
    // Crash between the status write (node InProgress) and the label: the next step labels it
    // again and starts no other node.
    let run = run_of(&[("a", None), ("b", None)]);
    let p1 = unconstrained(&run, &limits(1, 0), &observe(&run, &BTreeMap::new()), t0());
    let run = apply(&p1);
    let mut o = observe(&run, &BTreeMap::new());
    o.get_mut("a").expect("a").labelled = false;
    let p2 = unconstrained(&run, &limits(1, 0), &o, t0());
    assert_eq!(labelled(&p2), ["a"]);
    assert_eq!(p2.counts.in_progress, 1);
    assert_eq!(p2.current_wave, 1, "no new wave");
}

proptest! {
    /// Whatever the agents report and whenever, never more than maxConcurrency nodes are in
    /// flight, and each node is labelled into the run at most once.
    #[test]
    fn concurrency_is_never_exceeded(
        n in 1usize..25,
        max_concurrency in 1u32..6,
        max_errors in 0u32..4,
        steps in proptest::collection::vec(proptest::collection::vec(0u8..4, 25), 1..40),
    ) {
        let names: Vec<String> = (0..n).map(|i| format!("node-{i:02}")).collect();
        let mut run = RunState {
            phase: RunPhase::Pending,
            hold: RunHold::Proceed,
            targets: initial_targets(names.iter().map(|n| (n.clone(), Some(format!("z{}", n.len() % 2))))),
            current_wave: 0,
            last_wave_completion: None,
        };
        let l = limits(max_concurrency, max_errors);
        let mut labelled_once = std::collections::BTreeSet::new();
        let mut now = t0();
        for step in steps {
            let progress: BTreeMap<String, AgentProgress> = names
                .iter()
                .zip(step.iter())
                .map(|(name, p)| {
                    let p = match p {
                        0 => AgentProgress::Installing,
                        1 => AgentProgress::Succeeded { reboot_required: false },
                        2 => AgentProgress::Failed,
                        _ => AgentProgress::Preparing,
                    };
                    (name.clone(), p)
                })
                .collect();
            let plan = unconstrained(&run, &l, &observe(&run, &progress), now);
            prop_assert!(plan.counts.in_progress <= max_concurrency);
            for node in labelled(&plan) {
                prop_assert!(labelled_once.insert(node.clone()), "{} labelled twice", node);
            }
            if plan.counts.failed > max_errors {
                prop_assert!(labelled(&plan).is_empty() || count(&run.targets).failed <= max_errors);
            }
            run = apply(&plan);
            now += SignedDuration::from_mins(1);
        }
    }
}

// ---- The reboot sequence (RebootIfNeeded) ----

fn reboot_limits() -> RolloutLimits {
    RolloutLimits {
        reboot_if_needed: true,
        drain_timeout: SignedDuration::from_mins(5),
        ..limits(1, 0)
    }
}

fn health(boot_id: &str, ready: bool, unschedulable: bool) -> NodeHealth {
    NodeHealth {
        boot_id: boot_id.into(),
        ready,
        unschedulable,
    }
}

/// Node `a` alone in a run, installed and asking for a reboot, on boot `b1`.
fn installed_needing_reboot(unschedulable: bool) -> (RunState, RolloutPlan) {
    let run = run_of(&[("a", None)]);
    let started = unconstrained(
        &run,
        &reboot_limits(),
        &observe(&run, &BTreeMap::new()),
        t0(),
    );
    let run = apply(&started);
    let mut o = obs(
        AgentProgress::Succeeded {
            reboot_required: true,
        },
        true,
    );
    o.health = health("b1", true, unschedulable);
    let now = t0() + SignedDuration::from_secs(60);
    let plan = unconstrained(
        &run,
        &reboot_limits(),
        &BTreeMap::from([("a".to_string(), o)]),
        now,
    );
    (run, plan)
}

fn one(node: &str, o: NodeObservation) -> BTreeMap<String, NodeObservation> {
    BTreeMap::from([(node.to_string(), o)])
}

#[test]
fn reboot_sequence_cordons_drains_reboots_verifies_and_uncordons() {
    let (_, plan) = installed_needing_reboot(false);
    assert_eq!(plan.targets[0].state, TargetState::Draining);
    assert!(plan.targets[0].cordoned);
    assert_eq!(plan.actions, vec![RolloutAction::Cordon("a".into())]);
    assert_eq!(plan.phase, RunPhase::Running);
    let run = apply(&plan);
    let t1 = t0() + SignedDuration::from_secs(70);

    // Pods still leaving: nothing changes, looked at again soon.
    let mut o = obs(
        AgentProgress::Succeeded {
            reboot_required: true,
        },
        true,
    );
    o.health = health("b1", true, true);
    o.drain = DrainProgress::Pending("eviction refused for ns/web-1".into());
    let plan = unconstrained(&run, &reboot_limits(), &one("a", o.clone()), t1);
    assert_eq!(plan.targets[0].state, TargetState::Draining);
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert_eq!(plan.requeue_at, Some(t1 + REBOOT_POLL));

    // Drained: Rebooting, remembering the boot to leave.
    o.drain = DrainProgress::Done;
    let plan = unconstrained(&run, &reboot_limits(), &one("a", o.clone()), t1);
    assert_eq!(plan.targets[0].state, TargetState::Rebooting);
    assert_eq!(plan.targets[0].boot_id.as_deref(), Some("b1"));
    let run = apply(&plan);

    // Same boot, or a new boot that is not Ready yet: still Rebooting.
    o.drain = DrainProgress::NotAttempted;
    for h in [health("b1", true, true), health("b2", false, true)] {
        o.health = h;
        let plan = unconstrained(&run, &reboot_limits(), &one("a", o.clone()), t1);
        assert_eq!(plan.targets[0].state, TargetState::Rebooting);
    }

    // Back on b2 and Ready, the agent's pre-reboot report still shows b1: Verifying, cordoned.
    o.health = health("b2", true, true);
    o.report_boot_id = Some("b1".into());
    let plan = unconstrained(&run, &reboot_limits(), &one("a", o.clone()), t1);
    assert_eq!(plan.targets[0].state, TargetState::Verifying);
    assert!(plan.actions.is_empty(), "no uncordon before the scan");
    let run = apply(&plan);

    // The confirming scan on b2: uncordoned, Succeeded, run over.
    o.report_boot_id = Some("b2".into());
    o.progress = AgentProgress::Succeeded {
        reboot_required: false,
    };
    let plan = unconstrained(&run, &reboot_limits(), &one("a", o), t1);
    assert_eq!(plan.targets[0].state, TargetState::Succeeded);
    assert!(!plan.targets[0].cordoned);
    assert_eq!(
        plan.actions,
        vec![
            RolloutAction::Uncordon("a".into()),
            RolloutAction::Unlabel("a".into())
        ]
    );
    assert_eq!(plan.phase, RunPhase::Succeeded);
}

#[test]
fn drain_disabled_reboots_without_evicting() {
    let drain: crate::api::DrainSpec =
        serde_json::from_value(serde_json::json!({"enabled": false})).expect("drain spec");
    let limits = limits(1, 0).with_reboot(&drain).expect("limits");
    let pending = run_of(&[("a", None)]);
    let run = apply(&unconstrained(
        &pending,
        &limits,
        &observe(&pending, &BTreeMap::new()),
        t0(),
    ));
    let mut o = obs(
        AgentProgress::Succeeded {
            reboot_required: true,
        },
        true,
    );
    o.health = health("b1", true, false);
    // Pods the drain would evict are on the node: with the drain off they stay.
    o.evict = vec![PodRef {
        namespace: "ns".into(),
        name: "web-1".into(),
    }];
    let plan = unconstrained(
        &run,
        &limits,
        &one("a", o),
        t0() + SignedDuration::from_secs(60),
    );
    assert_eq!(plan.targets[0].state, TargetState::Rebooting);
    assert_eq!(plan.targets[0].boot_id.as_deref(), Some("b1"));
    assert!(plan.targets[0].cordoned, "still cordoned for the reboot");
    assert_eq!(plan.actions, vec![RolloutAction::Cordon("a".into())]);
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, RolloutAction::Evict { .. })),
        "{:?}",
        plan.actions
    );
}

#[test]
fn a_node_cordoned_by_someone_else_is_drained_but_never_uncordoned() {
    let (_, plan) = installed_needing_reboot(true);
    assert_eq!(plan.targets[0].state, TargetState::Draining);
    assert!(!plan.targets[0].cordoned);
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    let run = apply(&plan);
    let mut o = obs(AgentProgress::NotStarted, true);
    o.health = health("b1", true, true);
    o.drain = DrainProgress::Blocked("pod ns/bare is not managed".into());
    let plan = unconstrained(
        &run,
        &reboot_limits(),
        &one("a", o),
        t0() + SignedDuration::from_secs(61),
    );
    assert_eq!(plan.targets[0].state, TargetState::Failed);
    assert_eq!(plan.targets[0].reason.as_deref(), Some("DrainFailed"));
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, RolloutAction::Uncordon(_))),
        "{:?}",
        plan.actions
    );
}

#[test]
fn no_reboot_needed_or_no_reboot_option_never_cordons() {
    let run = run_of(&[("a", None)]);
    let run = apply(&unconstrained(
        &run,
        &reboot_limits(),
        &observe(&run, &BTreeMap::new()),
        t0(),
    ));
    let done = obs(
        AgentProgress::Succeeded {
            reboot_required: false,
        },
        true,
    );
    let plan = unconstrained(&run, &reboot_limits(), &one("a", done), t0());
    assert_eq!(plan.targets[0].state, TargetState::Succeeded);
    assert!(!plan.targets[0].cordoned);
    let needs = obs(
        AgentProgress::Succeeded {
            reboot_required: true,
        },
        true,
    );
    let plan = unconstrained(&run, &limits(1, 0), &one("a", needs), t0());
    assert_eq!(plan.targets[0].state, TargetState::SucceededRebootRequired);
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, RolloutAction::Cordon(_)))
    );
}

#[test]
fn drain_timeout_fails_and_uncordons_and_counts_against_max_errors() {
    let (_, plan) = installed_needing_reboot(false);
    let run = apply(&plan);
    let mut o = obs(AgentProgress::NotStarted, true);
    o.health = health("b1", true, true);
    o.drain = DrainProgress::Pending("eviction refused for ns/web-1: budget".into());
    let late = t0() + SignedDuration::from_secs(60) + SignedDuration::from_mins(5);
    let plan = unconstrained(&run, &reboot_limits(), &one("a", o), late);
    let t = &plan.targets[0];
    assert_eq!(t.state, TargetState::Failed);
    assert_eq!(t.reason.as_deref(), Some("DrainTimeout"));
    assert!(
        t.message.as_deref().is_some_and(|m| m.contains("budget")),
        "{t:?}"
    );
    assert!(!t.cordoned);
    assert_eq!(plan.actions[0], RolloutAction::Uncordon("a".into()));
    assert_eq!(plan.phase, RunPhase::Halted, "maxErrors 0");
}

#[test]
fn a_node_that_does_not_come_back_fails_and_stays_cordoned() {
    let (_, plan) = installed_needing_reboot(false);
    let run = apply(&plan);
    let mut o = obs(AgentProgress::NotStarted, true);
    o.health = health("b1", true, true);
    o.drain = DrainProgress::Done;
    let t1 = t0() + SignedDuration::from_secs(61);
    let run = apply(&unconstrained(
        &run,
        &reboot_limits(),
        &one("a", o.clone()),
        t1,
    ));
    o.drain = DrainProgress::NotAttempted;
    o.health = health("b2", false, true);
    let plan = unconstrained(
        &run,
        &reboot_limits(),
        &one("a", o),
        t1 + SignedDuration::from_hours(1),
    );
    let t = &plan.targets[0];
    assert_eq!(t.state, TargetState::Failed);
    assert_eq!(t.reason.as_deref(), Some("RebootTimeout"));
    assert!(t.cordoned, "left cordoned");
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, RolloutAction::Uncordon(_)))
    );
    assert!(plan.events.iter().any(|e| matches!(
        e,
        RolloutEvent::NodeFailed { reason, message: Some(m), .. } if reason == "RebootTimeout" && m.contains("left cordoned")
    )));
}

#[test]
fn nodes_in_the_reboot_sequence_hold_their_slot() {
    let run = run_of(&[("a", None), ("b", None)]);
    let run = apply(&unconstrained(
        &run,
        &reboot_limits(),
        &observe(&run, &BTreeMap::new()),
        t0(),
    ));
    // Still in flight: nothing else starts while a node is Draining, Rebooting or Verifying.
    for state in [
        TargetState::Draining,
        TargetState::Rebooting,
        TargetState::Verifying,
    ] {
        let mut r = run.clone();
        r.targets[0].state = state;
        r.targets[0].state_time = Some(Time(t0()));
        let mut observed = observe(&r, &BTreeMap::new());
        observed.get_mut("a").expect("a").labelled = true;
        observed.get_mut("a").expect("a").health = health("b1", true, true);
        let plan = unconstrained(&r, &reboot_limits(), &observed, t0());
        assert_eq!(plan.targets[1].state, TargetState::Pending, "{state:?}");
        assert!(labelled(&plan).is_empty(), "{state:?}: {:?}", plan.actions);
    }
}

proptest! {
    /// With reboots, drains and random node health: never more than maxConcurrency nodes in
    /// flight, a node is cordoned at most once, and when the run ends every node the run
    /// cordoned is uncordoned unless it failed to come back from its reboot.
    #[test]
    fn reboot_sequences_keep_concurrency_and_uncordon(
        n in 1usize..10,
        max_concurrency in 1u32..4,
        steps in proptest::collection::vec(proptest::collection::vec((0u8..5, 0u8..4, 0u8..3), 10), 1..60),
    ) {
        let names: Vec<String> = (0..n).map(|i| format!("node-{i:02}")).collect();
        let mut run = RunState {
            phase: RunPhase::Pending,
            hold: RunHold::Proceed,
            targets: initial_targets(names.iter().map(|n| (n.clone(), None))),
            current_wave: 0,
            last_wave_completion: None,
        };
        let l = RolloutLimits { reboot_if_needed: true, drain_timeout: SignedDuration::from_mins(3), node_timeout: SignedDuration::from_mins(10), ..limits(max_concurrency, 100) };
        let mut cordons = BTreeMap::<String, u32>::new();
        let mut uncordoned = std::collections::BTreeSet::new();
        let mut boots: BTreeMap<String, u32> = BTreeMap::new();
        let mut now = t0();
        for step in steps {
            let observed: BTreeMap<String, NodeObservation> = run.targets.iter().zip(step.iter()).map(|(t, (p, d, h))| {
                let boot = boots.entry(t.node.clone()).or_insert(0);
                if *h == 2 && t.state == TargetState::Rebooting { *boot += 1; }
                let progress = match p {
                    0 => AgentProgress::Installing,
                    1 => AgentProgress::Succeeded { reboot_required: false },
                    2 => AgentProgress::Succeeded { reboot_required: true },
                    3 => AgentProgress::Failed,
                    _ => AgentProgress::Preparing,
                };
                let o = NodeObservation {
                    exists: true,
                    labelled: !t.state.is_done() && t.state != TargetState::Pending,
                    progress: if t.state == TargetState::Pending { AgentProgress::NotStarted } else { progress },
                    report_boot_id: Some(format!("b{boot}")),
                    health: NodeHealth { boot_id: format!("b{boot}"), ready: *h != 1, unschedulable: t.cordoned },
                    drain: match d { 0 => DrainProgress::Done, 1 => DrainProgress::Pending("x".into()), 2 => DrainProgress::Blocked("y".into()), _ => DrainProgress::NotAttempted },
                    evict: vec![],
                    ..NodeObservation::default()
                };
                (t.node.clone(), o)
            }).collect();
            let plan = unconstrained(&run, &l, &observed, now);
            prop_assert!(plan.counts.in_progress <= max_concurrency);
            for a in &plan.actions {
                match a {
                    RolloutAction::Cordon(node) => { *cordons.entry(node.clone()).or_default() += 1; }
                    RolloutAction::Uncordon(node) => { prop_assert!(uncordoned.insert(node.clone()), "{} uncordoned twice", node); prop_assert!(cordons.contains_key(node)); }
                    _ => {}
                }
            }
            prop_assert!(cordons.values().all(|c| *c == 1), "{:?}", cordons);
            run = apply(&plan);
            now += SignedDuration::from_mins(1);
        }
        if run.phase.is_finished() {
            for t in &run.targets {
                if cordons.contains_key(&t.node) && t.reason.as_deref() != Some("RebootTimeout") {
                    prop_assert!(uncordoned.contains(&t.node), "{} left cordoned: {:?}", t.node, t);
                }
            }
        }
    }
}

#[test]
fn a_draining_node_gets_its_cordon_back_then_the_evictions_the_planner_asks_for() {
    let (_, plan) = installed_needing_reboot(false);
    let run = apply(&plan);
    let pod = PodRef {
        namespace: "ns".into(),
        name: "web-1".into(),
    };
    let mut o = obs(AgentProgress::NotStarted, true);
    // Someone lifted the run's cordon: it comes back before the evictions.
    o.health = health("b1", true, false);
    o.drain = DrainProgress::Pending("waiting for ns/web-1 to terminate".into());
    o.evict = vec![pod.clone()];
    let t1 = t0() + SignedDuration::from_secs(70);
    let plan = unconstrained(&run, &reboot_limits(), &one("a", o.clone()), t1);
    assert_eq!(plan.targets[0].state, TargetState::Draining);
    assert_eq!(
        plan.actions,
        vec![
            RolloutAction::Cordon("a".into()),
            RolloutAction::Evict {
                node: "a".into(),
                pods: vec![pod.clone()]
            }
        ]
    );
    // Past drain.timeout nothing is evicted any more: the node fails and is uncordoned.
    let late = t0() + SignedDuration::from_secs(60) + SignedDuration::from_mins(5);
    let plan = unconstrained(&run, &reboot_limits(), &one("a", o), late);
    assert_eq!(plan.targets[0].reason.as_deref(), Some("DrainTimeout"));
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, RolloutAction::Evict { .. } | RolloutAction::Cordon(_))),
        "{:?}",
        plan.actions
    );
}

fn states(plan: &RolloutPlan) -> Vec<(String, TargetState, Option<String>)> {
    plan.targets
        .iter()
        .map(|t| (t.node.clone(), t.state, t.reason.clone()))
        .collect()
}

fn all_done(run: &RunState) -> BTreeMap<String, AgentProgress> {
    run.targets
        .iter()
        .map(|t| {
            (
                t.node.clone(),
                AgentProgress::Succeeded {
                    reboot_required: false,
                },
            )
        })
        .collect()
}

#[test]
fn a_suspended_run_starts_no_node_lets_in_flight_ones_finish_and_resumes_where_it_was() {
    let l = limits(2, 0);
    let run0 = run_of(&[("a", None), ("b", None), ("c", None), ("d", None)]);
    let first = unconstrained(&run0, &l, &observe(&run0, &BTreeMap::new()), t0());
    assert_eq!(labelled(&first), ["a", "b"]);
    let mut run = apply(&first);
    run.hold = RunHold::Suspended;
    // Suspended while a and b are in flight: they finish, nothing new starts, the run waits.
    let plan = unconstrained(
        &run,
        &l,
        &observe(&run, &all_done(&run)),
        t0() + SignedDuration::from_secs(10),
    );
    assert!(labelled(&plan).is_empty(), "{:?}", plan.actions);
    assert_eq!(plan.phase, RunPhase::Running);
    assert_eq!((plan.counts.succeeded, plan.counts.pending), (2, 2));
    let mut run = apply(&plan);
    run.hold = RunHold::Suspended;
    let still = unconstrained(
        &run,
        &l,
        &observe(&run, &BTreeMap::new()),
        t0() + SignedDuration::from_hours(3),
    );
    assert!(labelled(&still).is_empty());
    assert_eq!(
        still.phase,
        RunPhase::Running,
        "a suspended run neither ends nor times out its pending nodes"
    );
    assert_eq!(
        still.targets, run.targets,
        "nothing of the run's state is lost while suspended"
    );
    // Resumed: the next wave starts from where it stopped.
    let run = apply(&still);
    let resumed = unconstrained(
        &run,
        &l,
        &observe(&run, &BTreeMap::new()),
        t0() + SignedDuration::from_hours(4),
    );
    assert_eq!(labelled(&resumed), ["c", "d"]);
    assert_eq!(resumed.current_wave, 2);
}

#[test]
fn a_canceled_run_skips_pending_nodes_finishes_in_flight_ones_then_ends_canceled() {
    let l = limits(2, 0);
    let run0 = run_of(&[("a", None), ("b", None), ("c", None)]);
    let first = unconstrained(&run0, &l, &observe(&run0, &BTreeMap::new()), t0());
    let mut run = apply(&first);
    run.hold = RunHold::Canceled;
    // a still installing, b done: c is skipped at once, the run waits for a.
    let mut progress = BTreeMap::new();
    progress.insert("a".to_string(), AgentProgress::Installing);
    progress.insert(
        "b".to_string(),
        AgentProgress::Succeeded {
            reboot_required: false,
        },
    );
    let plan = unconstrained(
        &run,
        &l,
        &observe(&run, &progress),
        t0() + SignedDuration::from_secs(5),
    );
    assert!(labelled(&plan).is_empty());
    assert_eq!(
        plan.phase,
        RunPhase::Running,
        "a is installing: never abandoned half-done"
    );
    assert_eq!(
        states(&plan),
        [
            ("a".into(), TargetState::InProgress, None),
            ("b".into(), TargetState::Succeeded, None),
            ("c".into(), TargetState::Skipped, Some("Canceled".into())),
        ]
    );
    let mut run = apply(&plan);
    run.hold = RunHold::Canceled;
    let end = unconstrained(
        &run,
        &l,
        &observe(&run, &all_done(&run)),
        t0() + SignedDuration::from_secs(9),
    );
    assert_eq!(end.phase, RunPhase::Canceled);
    assert_eq!((end.counts.succeeded, end.counts.skipped), (2, 1));
    assert!(
        end.events
            .contains(&RolloutEvent::Finished(RunPhase::Canceled))
    );
}

#[test]
fn a_pending_node_that_opts_out_or_becomes_contested_mid_run_is_skipped_not_started() {
    let l = limits(1, 0);
    let run0 = run_of(&[("a", None), ("b", None), ("c", None)]);
    let first = unconstrained(&run0, &l, &observe(&run0, &BTreeMap::new()), t0());
    let run = apply(&first);
    let mut observed = observe(&run, &BTreeMap::new());
    // The in-flight node keeps going whatever its labels say; pending ones leave.
    observed.get_mut("a").expect("a").excluded = true;
    observed.get_mut("b").expect("b").excluded = true;
    observed.get_mut("c").expect("c").conflicting = true;
    let plan = unconstrained(&run, &l, &observed, t0() + SignedDuration::from_secs(5));
    assert_eq!(
        states(&plan),
        [
            ("a".into(), TargetState::InProgress, None),
            ("b".into(), TargetState::Skipped, Some("Excluded".into())),
            ("c".into(), TargetState::Skipped, Some("Conflict".into())),
        ]
    );
    assert_eq!(plan.counts.skipped, 2);
    assert!(labelled(&plan).is_empty());
}

proptest! {
    /// Whatever the agents report, a held run never starts a node, and a canceled one ends
    /// Canceled once nothing is in flight.
    #[test]
    fn a_held_run_never_starts_a_node(
        n in 1usize..8,
        in_flight in 0usize..8,
        outcomes in proptest::collection::vec(0u8..4, 8),
        cancel in any::<bool>(),
    ) {
        let names: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
        let l = limits(in_flight.clamp(1, n) as u32, 8);
        let refs: Vec<(&str, Option<&str>)> = names.iter().map(|s| (s.as_str(), None)).collect();
        let run0 = run_of(&refs);
    let first = unconstrained(&run0, &l, &observe(&run0, &BTreeMap::new()), t0());
        let mut run = apply(&first);
        run.hold = if cancel { RunHold::Canceled } else { RunHold::Suspended };
        let mut now = t0();
        for round in 0..4 {
            now += SignedDuration::from_secs(30);
            let progress: BTreeMap<String, AgentProgress> = names
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let p = match outcomes[(i + round) % 8] {
                        0 => AgentProgress::Installing,
                        1 => AgentProgress::Failed,
                        2 => AgentProgress::Preparing,
                        _ => AgentProgress::Succeeded { reboot_required: false },
                    };
                    (name.clone(), p)
                })
                .collect();
            let before: Vec<TargetState> = run.targets.iter().map(|t| t.state).collect();
            let plan = unconstrained(&run, &l, &observe(&run, &progress), now);
            prop_assert!(labelled(&plan).iter().all(|node| {
                run.targets.iter().any(|t| &t.node == node && t.state == TargetState::InProgress)
            }), "only in-flight nodes are (re)labelled: {:?}", plan.actions);
            for (t, was) in plan.targets.iter().zip(before) {
                prop_assert!(!(was == TargetState::Pending && t.state == TargetState::InProgress));
            }
            if cancel && plan.counts.in_progress == 0 {
                prop_assert!(matches!(plan.phase, RunPhase::Canceled | RunPhase::Halted));
            }
            let hold = run.hold;
            run = apply(&plan);
            run.hold = hold;
        }
    }
}

#[test]
fn an_agents_own_failure_reason_fails_the_target_with_it_and_counts_toward_max_errors() {
    let run = run_of(&[("a", None), ("b", None)]);
    let p1 = unconstrained(&run, &limits(1, 0), &observe(&run, &BTreeMap::new()), t0());
    let run = apply(&p1);
    let mut observed = observe(
        &run,
        &BTreeMap::from([("a".to_string(), AgentProgress::Failed)]),
    );
    let hook = AgentFailure {
        reason: "HookFailed".into(),
        message: Some("nothing was installed: preInstall hook failed (exit code 3)".into()),
    };
    observed.get_mut("a").expect("a").agent_failure = Some(hook.clone());
    let p2 = unconstrained(&run, &limits(1, 0), &observed, t0());
    let a = &p2.targets[0];
    assert_eq!(
        (a.state, a.reason.as_deref(), a.message.as_deref()),
        (
            TargetState::Failed,
            Some("HookFailed"),
            hook.message.as_deref()
        )
    );
    assert!(p2.events.contains(&RolloutEvent::NodeFailed {
        node: "a".into(),
        reason: "HookFailed".into(),
        message: hook.message.clone(),
    }));
    assert_eq!(
        p2.phase,
        RunPhase::Halted,
        "a hook failure is a failed node"
    );
    assert!(labelled(&p2).is_empty(), "b is not started");
    // Without the agent's account the reason stays the generic one.
    let p3 = unconstrained(
        &run,
        &limits(1, 0),
        &observe(
            &run,
            &BTreeMap::from([("a".to_string(), AgentProgress::Failed)]),
        ),
        t0(),
    );
    assert_eq!(p3.targets[0].reason.as_deref(), Some("AgentFailed"));
}

#[test]
fn a_cancel_or_a_closed_window_stops_a_drain_and_uncordons_what_the_run_cordoned() {
    for (hold, window, reason) in [
        (RunHold::Canceled, WindowState::Unconstrained, "Canceled"),
        (RunHold::Proceed, WindowState::Closed, "WindowClosed"),
    ] {
        let (_, plan) = installed_needing_reboot(false);
        assert_eq!(plan.targets[0].state, TargetState::Draining);
        assert!(plan.targets[0].cordoned, "the run cordoned it");
        let mut run = apply(&plan);
        run.hold = hold;
        let mut o = obs(AgentProgress::NotStarted, true);
        o.health = health("b1", true, true);
        o.drain = DrainProgress::Pending("waiting for ns/web to terminate".into());
        o.evict = vec![PodRef {
            namespace: "ns".into(),
            name: "web".into(),
        }];
        let plan = plan_rollout(
            &run,
            &reboot_limits(),
            &one("a", o),
            window,
            t0() + SignedDuration::from_secs(70),
        );
        let t = &plan.targets[0];
        assert_eq!(
            (t.state, t.reason.as_deref()),
            (TargetState::Skipped, Some(reason))
        );
        assert!(!t.cordoned);
        assert!(
            plan.actions.contains(&RolloutAction::Uncordon("a".into())),
            "{:?}",
            plan.actions
        );
        assert!(plan.actions.contains(&RolloutAction::Unlabel("a".into())));
        assert!(
            !plan
                .actions
                .iter()
                .any(|a| matches!(a, RolloutAction::Evict { .. })),
            "nothing more is evicted: {:?}",
            plan.actions
        );
        assert!(plan.phase.is_finished(), "{:?}", plan.phase);
    }
}

#[test]
fn a_blocked_drain_evicts_nothing_even_when_other_pods_could_go() {
    let (_, plan) = installed_needing_reboot(false);
    let run = apply(&plan);
    let mut o = obs(AgentProgress::NotStarted, true);
    o.health = health("b1", true, true);
    o.drain = DrainProgress::Blocked("pod ns/bare is not managed by a controller".into());
    o.evict = vec![PodRef {
        namespace: "ns".into(),
        name: "web".into(),
    }];
    let plan = unconstrained(
        &run,
        &reboot_limits(),
        &one("a", o),
        t0() + SignedDuration::from_secs(70),
    );
    assert_eq!(plan.targets[0].reason.as_deref(), Some("DrainFailed"));
    assert!(
        !plan
            .actions
            .iter()
            .any(|a| matches!(a, RolloutAction::Evict { .. })),
        "{:?}",
        plan.actions
    );
    assert!(plan.actions.contains(&RolloutAction::Uncordon("a".into())));
}
