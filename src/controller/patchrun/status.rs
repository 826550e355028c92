//! A run's status and Event text from the planners' decisions, pure: the status a start, a wait,
//! a step or a failure writes, the summary and Degraded message, and what each
//! [`RolloutEvent`] says. The reconciler only writes what these return.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;

use crate::api::conditions::{
    self, ConditionStatus, Health, new_condition, set_condition, set_health,
};
use crate::api::{
    FailedNode, NodePatchReport, Operation, OperationPhase, PatchRunStatus, RebootOption,
    RunNodeCounts, RunPhase, RunTarget, TargetState,
};
use crate::rollout::start::StartPlan;
use crate::rollout::{AgentFailure, RolloutEvent, RolloutPlan, count};

/// Longest Event note the Events API accepts (1 kB).
pub const MAX_EVENT_NOTE: usize = 1024;
/// Most failed nodes listed in status.
pub const MAX_FAILED_LISTED: usize = 100;

/// The status of a run that cannot proceed: Failed with `reason`, Ready and Progressing False.
pub fn failed_status(
    old: Option<&PatchRunStatus>,
    generation: Option<i64>,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> PatchRunStatus {
    let mut status = old.cloned().unwrap_or_default();
    status.phase = RunPhase::Failed;
    status.completion_time = Some(Time(now));
    status.message = Some(message.to_string());
    status.observed_generation = generation;
    set_condition(
        &mut status.conditions,
        new_condition(
            conditions::READY,
            ConditionStatus::False,
            reason,
            message,
            generation,
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
            generation,
            now,
        ),
    );
    with_health(status, now)
}

/// The status of a run waiting for its policy's active run to finish.
pub fn waiting_status(
    old: Option<&PatchRunStatus>,
    generation: Option<i64>,
    now: Timestamp,
) -> PatchRunStatus {
    let mut status = old.cloned().unwrap_or_default();
    status.observed_generation = generation;
    status.message = Some("waiting for the policy's active run to finish".into());
    set_condition(
        &mut status.conditions,
        new_condition(
            conditions::PROGRESSING,
            ConditionStatus::False,
            "WaitingForActiveRun",
            "another run of the policy is active",
            generation,
            now,
        ),
    );
    with_health(status, now)
}

/// The status of a run that has not started while its policy is suspended.
pub fn suspended_status(
    old: Option<&PatchRunStatus>,
    policy: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> PatchRunStatus {
    let mut status = old.cloned().unwrap_or_default();
    status.observed_generation = generation;
    status.message = Some(format!("waiting: PatchPolicy {policy} is suspended"));
    set_condition(
        &mut status.conditions,
        new_condition(
            conditions::PROGRESSING,
            ConditionStatus::False,
            "Suspended",
            format!("PatchPolicy {policy} is suspended: the run starts once it is resumed"),
            generation,
            now,
        ),
    );
    with_health(status, now)
}

/// The status of a run canceled before it started: `Canceled`, no node touched.
pub fn canceled_before_start_status(
    old: Option<&PatchRunStatus>,
    generation: Option<i64>,
    note: &str,
    now: Timestamp,
) -> PatchRunStatus {
    let mut status = old.cloned().unwrap_or_default();
    status.observed_generation = generation;
    status.phase = RunPhase::Canceled;
    status.completion_time = Some(Time(now));
    status.message = Some(format!("{note} before it started"));
    // Ready stays True: a canceled run is what its spec asks for (kstatus falls back to Ready
    // when neither Reconciling nor Stalled is True, and would wait forever on a False one).
    for (type_, state) in [
        (conditions::READY, ConditionStatus::True),
        (conditions::PROGRESSING, ConditionStatus::False),
    ] {
        set_condition(
            &mut status.conditions,
            new_condition(type_, state, "Canceled", note, generation, now),
        );
    }
    with_health(status, now)
}

/// The status of a run that starts: Running over the planned targets and snapshots.
pub fn started_status(
    plan: StartPlan,
    operation: Operation,
    members: usize,
    reboot_option: Option<RebootOption>,
    generation: Option<i64>,
    now: Timestamp,
) -> PatchRunStatus {
    let mut status = PatchRunStatus {
        observed_generation: generation,
        phase: RunPhase::Running,
        baseline_snapshots: plan.snapshots,
        reboot_option,
        nodes: count(&plan.targets),
        targets: plan.targets,
        start_time: Some(Time(now)),
        message: Some(format!("{} {members} nodes", operation.as_str())),
        ..Default::default()
    };
    set_condition(
        &mut status.conditions,
        new_condition(
            conditions::READY,
            ConditionStatus::True,
            "Started",
            "run started",
            generation,
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
            generation,
            now,
        ),
    );
    with_health(status, now)
}

/// The kstatus health of a run (docs/gitops.md): Pending and Running runs are Reconciling (the
/// reason is Progressing's: `Rollout`, `WaitingForActiveRun`, `Suspended`, `Canceling`, or
/// `Pending` before the controller decided); Halted, Failed and TimedOut runs are Stalled (they
/// never continue; TimedOut leaves nodes for the next window's run); Succeeded and Canceled runs
/// are Current (done as asked; failed nodes within the error budget stay in `Degraded`).
pub fn run_health(status: &PatchRunStatus) -> Health {
    let of = |type_: &str| conditions::find(&status.conditions, type_);
    let message = || status.message.clone().unwrap_or_default();
    match status.phase {
        RunPhase::Pending | RunPhase::Running => match of(conditions::PROGRESSING) {
            Some(p) => Health::reconciling(&p.reason, p.message.clone()),
            None => Health::reconciling("Pending", "the controller has not started the run yet"),
        },
        RunPhase::Halted => Health::stalled(
            "ErrorBudgetExceeded",
            of(conditions::DEGRADED)
                .map(|d| d.message.clone())
                .unwrap_or_else(message),
        ),
        RunPhase::Failed => match of(conditions::READY) {
            Some(r) if r.status == "False" => Health::stalled(&r.reason, r.message.clone()),
            _ => Health::stalled("Failed", message()),
        },
        RunPhase::TimedOut => Health::stalled("TimedOut", message()),
        RunPhase::Succeeded | RunPhase::Canceled => Health::Current,
    }
}

/// `status` with its `Reconciling` and `Stalled` conditions set from [`run_health`].
fn with_health(mut status: PatchRunStatus, now: Timestamp) -> PatchRunStatus {
    let health = run_health(&status);
    set_health(
        &mut status.conditions,
        &health,
        status.observed_generation,
        now,
    );
    status
}

/// The `RunStarted` Event's note.
pub fn started_note(operation: Operation, policy: &str, total: u32) -> String {
    format!(
        "{} run of policy {policy} started on {total} nodes",
        operation.as_str()
    )
}

/// The status after a step: `old` with the plan's targets, counts, wave and phase, the failed
/// nodes (a target without its own message takes the agent's from `agent_messages`), and the
/// Progressing (once finished) and Degraded conditions.
pub fn stepped_status(
    old: &PatchRunStatus,
    plan: &RolloutPlan,
    agent_messages: &BTreeMap<String, String>,
    limits: &StatusLimits<'_>,
    generation: Option<i64>,
    now: Timestamp,
) -> PatchRunStatus {
    let StatusLimits {
        max_errors,
        reboot_option,
        hold,
    } = *limits;
    let mut status = old.clone();
    status.observed_generation = generation;
    status.phase = plan.phase;
    status.targets = plan.targets.clone();
    status.nodes = plan.counts.clone();
    status.current_wave = plan.current_wave;
    status.last_wave_completion_time = plan.last_wave_completion.map(Time);
    status.failed_nodes = failed_nodes(&plan.targets, agent_messages);
    if plan.phase.is_finished() {
        status.completion_time = Some(Time(now));
        status.message = Some(summary(&plan.counts, plan.phase, reboot_option));
        let message = match hold {
            Hold::Canceled(note) if plan.phase == RunPhase::Canceled => note.clone(),
            _ => "run ended".to_string(),
        };
        set_condition(
            &mut status.conditions,
            new_condition(
                conditions::PROGRESSING,
                ConditionStatus::False,
                plan.phase.as_str(),
                message,
                generation,
                now,
            ),
        );
    } else {
        let in_flight = plan.counts.in_progress;
        let (state, reason, message) = match hold {
            Hold::Proceed => (
                ConditionStatus::True,
                "Rollout",
                "patching nodes".to_string(),
            ),
            Hold::Suspended(policy) => (
                ConditionStatus::False,
                "Suspended",
                format!(
                    "PatchPolicy {policy} is suspended: {in_flight} nodes in flight finish, {} pending wait",
                    plan.counts.pending
                ),
            ),
            Hold::Canceled(note) => (
                ConditionStatus::True,
                "Canceling",
                format!("{note}; waiting for {in_flight} nodes in flight to finish"),
            ),
        };
        set_condition(
            &mut status.conditions,
            new_condition(
                conditions::PROGRESSING,
                state,
                reason,
                message,
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
            degraded_message(&plan.targets, &plan.counts, max_errors),
            generation,
            now,
        ),
    );
    with_health(status, now)
}

/// The settings a step's status reports against.
#[derive(Clone, Copy, Debug)]
pub struct StatusLimits<'a> {
    /// The run's error budget.
    pub max_errors: u32,
    /// The reboot option in force.
    pub reboot_option: RebootOption,
    /// What users asked of the run.
    pub hold: &'a Hold,
}

/// What users asked of a running run, as its status tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hold {
    /// Nothing: the run proceeds.
    Proceed,
    /// Its policy (named) is suspended.
    Suspended(String),
    /// Canceled; who and why (`canceled by alice: bad kernel`).
    Canceled(String),
}

/// The note of a cancel: who (`by`, when known) and why.
pub fn cancel_note(by: Option<&str>, reason: Option<&str>) -> String {
    let mut note = match by {
        Some(by) => format!("canceled by {by}"),
        None => "canceled".to_string(),
    };
    if let Some(reason) = reason.filter(|r| !r.trim().is_empty()) {
        note.push_str(": ");
        note.extend(reason.chars().take(1024));
    }
    note
}

/// The first [`MAX_FAILED_LISTED`] failed targets, with their message or the agent's.
pub fn failed_nodes(
    targets: &[RunTarget],
    agent_messages: &BTreeMap<String, String>,
) -> Vec<FailedNode> {
    targets
        .iter()
        .filter(|t| t.state == TargetState::Failed)
        .take(MAX_FAILED_LISTED)
        .map(|t| FailedNode {
            node: t.node.clone(),
            reason: t.reason.clone().unwrap_or_else(|| "Failed".into()),
            message: t
                .message
                .clone()
                .or_else(|| agent_messages.get(&t.node).cloned())
                .unwrap_or_default(),
        })
        .collect()
}

/// The agent's failure message as status lists it (at most 1000 characters).
pub fn agent_message(message: &str) -> String {
    message.chars().take(1000).collect()
}

/// The agent's own account of its failed operation of `run` on a node: the report's `Ready`
/// reason (when it is a CamelCase word of at most 64 characters, else `AgentFailed`) and its
/// operation message (at most 1000 characters). `None` unless the report's latest operation is
/// this run's and Failed.
pub fn agent_failure_of(report: Option<&NodePatchReport>, run: &str) -> Option<AgentFailure> {
    let status = report?.status.as_ref()?;
    let op = status.operation.as_ref()?;
    if op.run != run || op.phase != OperationPhase::Failed {
        return None;
    }
    let reason = conditions::find(&status.conditions, conditions::READY)
        .map(|c| c.reason.as_str())
        .filter(|r| {
            r.len() <= 64
                && r.starts_with(|c: char| c.is_ascii_uppercase())
                && r.chars().all(|c| c.is_ascii_alphanumeric())
        })
        .unwrap_or("AgentFailed");
    Some(AgentFailure {
        reason: reason.to_string(),
        message: op.message.as_deref().map(agent_message),
    })
}

/// The Degraded condition's message: how many failed, and which nodes with their reasons (a
/// node left cordoned says so).
pub fn degraded_message(targets: &[RunTarget], counts: &RunNodeCounts, max_errors: u32) -> String {
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

/// A finished run's summary (its status message and `RunFinished` note).
pub fn summary(c: &RunNodeCounts, phase: RunPhase, reboot: RebootOption) -> String {
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

/// What one Event says: type, reason, note, and the node it is about (Events are merged into a
/// series by reason, regarding and related object, so per-node Events name their node).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventText {
    /// Normal or Warning.
    pub type_: EventType,
    /// Reason.
    pub reason: &'static str,
    /// Note (cut to what the Events API accepts when published).
    pub note: String,
    /// The node it concerns.
    pub node: Option<String>,
}

/// The Event for one planner event; `counts` and `reboot` feed the `RunFinished` summary.
pub fn event_text(event: &RolloutEvent, counts: &RunNodeCounts, reboot: RebootOption) -> EventText {
    let text = |type_, reason, note: String, node: Option<&String>| EventText {
        type_,
        reason,
        note,
        node: node.cloned(),
    };
    match event {
        RolloutEvent::WaveStarted { wave, nodes } => text(
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
            nodes.first(),
        ),
        RolloutEvent::NodeFailed {
            node,
            reason,
            message,
        } => text(
            EventType::Warning,
            "NodeFailed",
            match message {
                Some(m) => format!("node {node} failed: {reason}: {m}"),
                None => format!("node {node} failed: {reason}"),
            },
            Some(node),
        ),
        RolloutEvent::DrainStarted { node, cordoned } => text(
            EventType::Normal,
            "Draining",
            if *cordoned {
                format!("node {node} needs a reboot: cordoned, draining")
            } else {
                format!(
                    "node {node} needs a reboot: draining (it was already cordoned; it stays so)"
                )
            },
            Some(node),
        ),
        RolloutEvent::RebootRequested { node } => text(
            EventType::Normal,
            "RebootRequested",
            format!("node {node} drained; the agent reboots it"),
            Some(node),
        ),
        RolloutEvent::Rebooted { node, boot_id } => text(
            EventType::Normal,
            "Rebooted",
            format!("node {node} is back with boot ID {boot_id}; waiting for the agent's scan"),
            Some(node),
        ),
        RolloutEvent::Uncordoned { node } => text(
            EventType::Normal,
            "Uncordoned",
            format!("node {node} uncordoned"),
            Some(node),
        ),
        RolloutEvent::Halted { failed, max_errors } => text(
            EventType::Warning,
            "Halted",
            format!("{failed} nodes failed, more than maxErrors {max_errors}: no new nodes start"),
            None,
        ),
        RolloutEvent::Finished(phase) => text(
            if *phase == RunPhase::Succeeded {
                EventType::Normal
            } else {
                EventType::Warning
            },
            "RunFinished",
            summary(counts, *phase, reboot),
            None,
        ),
    }
}

/// Cut a note to [`MAX_EVENT_NOTE`] bytes on a character boundary, marking the cut with `…`
/// (the Events API refuses longer notes; a wave of hundreds of nodes names them all).
pub fn event_note(note: String) -> String {
    if note.len() <= MAX_EVENT_NOTE {
        return note;
    }
    let mut cut = MAX_EVENT_NOTE - 3;
    while !note.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &note[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(node: &str, state: TargetState, reason: Option<&str>, cordoned: bool) -> RunTarget {
        RunTarget {
            node: node.into(),
            state,
            reason: reason.map(str::to_string),
            cordoned,
            ..Default::default()
        }
    }

    #[test]
    fn degraded_message_names_failed_nodes_and_those_left_cordoned() {
        let targets = vec![
            target("a", TargetState::Failed, Some("RebootTimeout"), true),
            target("b", TargetState::Failed, Some("DrainTimeout"), false),
            target("c", TargetState::Succeeded, None, false),
        ];
        let counts = count(&targets);
        assert_eq!(
            degraded_message(&targets, &counts, 0),
            "2 of 3 nodes failed (maxErrors 0): a RebootTimeout (left cordoned), b DrainTimeout"
        );
    }

    #[test]
    fn summary_counts_outcomes_and_says_when_reboots_were_left_out() {
        let targets = vec![
            target("a", TargetState::SucceededRebootRequired, None, false),
            target("b", TargetState::Skipped, None, false),
        ];
        assert_eq!(
            summary(
                &count(&targets),
                RunPhase::Succeeded,
                RebootOption::NoReboot
            ),
            "Succeeded: 1 of 2 nodes succeeded, 0 failed, 1 skipped, 1 need a reboot (NoReboot)"
        );
    }

    #[test]
    fn failed_nodes_take_the_agents_message_when_the_planner_gave_none() {
        let mut timed_out = target("b", TargetState::Failed, Some("DrainTimeout"), false);
        timed_out.message = Some("drain did not finish".into());
        let targets = vec![
            target("a", TargetState::Failed, None, false),
            timed_out,
            target("c", TargetState::Succeeded, None, false),
        ];
        let agent = BTreeMap::from([("a".to_string(), "dpkg failed".to_string())]);
        let listed = failed_nodes(&targets, &agent);
        assert_eq!(listed.len(), 2);
        assert_eq!(
            (listed[0].reason.as_str(), listed[0].message.as_str()),
            ("Failed", "dpkg failed")
        );
        assert_eq!(listed[1].message, "drain did not finish");
        assert_eq!(agent_message(&"x".repeat(2000)).len(), 1000);
    }

    #[test]
    fn the_agents_failure_reason_and_message_come_from_its_report_of_this_run() {
        use crate::api::{NodePatchReportStatus, OperationStatus};
        let report = |run: &str, phase, reason: &str| {
            let mut status = NodePatchReportStatus {
                operation: Some(OperationStatus {
                    run: run.into(),
                    phase,
                    message: Some("preInstall hook failed (exit code 3)".into()),
                    ..Default::default()
                }),
                ..Default::default()
            };
            set_condition(
                &mut status.conditions,
                new_condition(
                    conditions::READY,
                    ConditionStatus::False,
                    reason,
                    "m",
                    None,
                    Timestamp::UNIX_EPOCH,
                ),
            );
            let mut r = NodePatchReport::new("n1", Default::default());
            r.status = Some(status);
            r
        };
        let failed = report("r1", OperationPhase::Failed, "HookFailed");
        assert_eq!(
            agent_failure_of(Some(&failed), "r1"),
            Some(AgentFailure {
                reason: "HookFailed".into(),
                message: Some("preInstall hook failed (exit code 3)".into()),
            })
        );
        assert_eq!(agent_failure_of(Some(&failed), "r0"), None, "another run's");
        let ok = report("r1", OperationPhase::Succeeded, "Installed");
        assert_eq!(agent_failure_of(Some(&ok), "r1"), None);
        let odd = report("r1", OperationPhase::Failed, "not a reason!");
        assert_eq!(
            agent_failure_of(Some(&odd), "r1").map(|f| f.reason),
            Some("AgentFailed".into())
        );
        assert_eq!(agent_failure_of(None, "r1"), None);
    }

    #[test]
    fn events_name_their_node_and_long_waves_are_shortened() {
        let nodes: Vec<String> = (0..12).map(|i| format!("n{i}")).collect();
        let counts = RunNodeCounts::default();
        let wave = event_text(
            &RolloutEvent::WaveStarted { wave: 2, nodes },
            &counts,
            RebootOption::RebootIfNeeded,
        );
        assert_eq!(
            wave.note,
            "wave 2: 12 nodes (n0, n1, n2, n3, n4, n5, n6, n7, n8, n9, …)"
        );
        assert_eq!(wave.node.as_deref(), Some("n0"));
        let failed = event_text(
            &RolloutEvent::NodeFailed {
                node: "a".into(),
                reason: "DrainTimeout".into(),
                message: Some("pods left".into()),
            },
            &counts,
            RebootOption::RebootIfNeeded,
        );
        assert_eq!(
            (failed.type_, failed.reason, failed.note.as_str()),
            (
                EventType::Warning,
                "NodeFailed",
                "node a failed: DrainTimeout: pods left"
            )
        );
        let halted = event_text(
            &RolloutEvent::Halted {
                failed: 2,
                max_errors: 1,
            },
            &counts,
            RebootOption::RebootIfNeeded,
        );
        assert_eq!(halted.node, None);
        let done = event_text(
            &RolloutEvent::Finished(RunPhase::Succeeded),
            &counts,
            RebootOption::RebootIfNeeded,
        );
        assert_eq!(
            (done.type_, done.reason),
            (EventType::Normal, "RunFinished")
        );
    }

    #[test]
    fn long_notes_are_cut_on_a_character_boundary() {
        let note = event_note("é".repeat(1000));
        assert!(note.len() <= MAX_EVENT_NOTE, "{}", note.len());
        assert!(note.ends_with('…'));
        assert_eq!(event_note("short".into()), "short");
    }

    fn plan(phase: RunPhase, counts: RunNodeCounts) -> RolloutPlan {
        RolloutPlan {
            targets: vec![],
            actions: vec![],
            events: vec![],
            phase,
            current_wave: 1,
            last_wave_completion: None,
            counts,
            requeue_at: None,
        }
    }

    #[test]
    fn a_held_run_says_why_in_progressing_and_a_canceled_one_who_canceled_it() {
        let now = Timestamp::UNIX_EPOCH;
        let counts = RunNodeCounts {
            total: 5,
            in_progress: 1,
            pending: 3,
            succeeded: 1,
            ..Default::default()
        };
        let progressing = |s: &PatchRunStatus| {
            let c = conditions::find(&s.conditions, conditions::PROGRESSING).expect("progressing");
            (c.status.clone(), c.reason.clone(), c.message.clone())
        };
        let old = PatchRunStatus::default();
        let suspended = stepped_status(
            &old,
            &plan(RunPhase::Running, counts.clone()),
            &BTreeMap::new(),
            &StatusLimits {
                max_errors: 0,
                reboot_option: RebootOption::NoReboot,
                hold: &Hold::Suspended("prod".into()),
            },
            None,
            now,
        );
        assert_eq!(
            progressing(&suspended),
            (
                "False".into(),
                "Suspended".into(),
                "PatchPolicy prod is suspended: 1 nodes in flight finish, 3 pending wait".into()
            )
        );
        let resumed = stepped_status(
            &suspended,
            &plan(RunPhase::Running, counts.clone()),
            &BTreeMap::new(),
            &StatusLimits {
                max_errors: 0,
                reboot_option: RebootOption::NoReboot,
                hold: &Hold::Proceed,
            },
            None,
            now,
        );
        assert_eq!(progressing(&resumed).1, "Rollout");
        let note = cancel_note(Some("alice"), Some("bad kernel"));
        let canceled = stepped_status(
            &resumed,
            &plan(
                RunPhase::Canceled,
                RunNodeCounts {
                    in_progress: 0,
                    ..counts
                },
            ),
            &BTreeMap::new(),
            &StatusLimits {
                max_errors: 0,
                reboot_option: RebootOption::NoReboot,
                hold: &Hold::Canceled(note),
            },
            None,
            now,
        );
        assert_eq!(
            progressing(&canceled),
            (
                "False".into(),
                "Canceled".into(),
                "canceled by alice: bad kernel".into()
            )
        );
        assert_eq!(cancel_note(None, Some("  ")), "canceled");
    }

    #[test]
    fn a_failed_run_ends_not_ready_and_not_progressing() {
        let now = Timestamp::UNIX_EPOCH;
        let s = failed_status(
            None,
            Some(3),
            "PolicyNotFound",
            "PatchPolicy p does not exist",
            now,
        );
        assert_eq!(s.phase, RunPhase::Failed);
        assert_eq!(s.observed_generation, Some(3));
        let ready = conditions::find(&s.conditions, conditions::READY).expect("ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "PolicyNotFound")
        );
        let waiting = waiting_status(Some(&s), Some(3), now);
        assert_eq!(
            conditions::find(&waiting.conditions, conditions::PROGRESSING)
                .expect("progressing")
                .reason,
            "WaitingForActiveRun"
        );
    }

    #[test]
    fn a_runs_kstatus_health_follows_its_phase() {
        let now = Timestamp::UNIX_EPOCH;
        let health = |s: &PatchRunStatus| {
            let of = |t: &str| {
                let c = conditions::find(&s.conditions, t).expect("kstatus condition");
                assert_eq!(c.observed_generation, s.observed_generation, "{t}");
                (c.status.clone(), c.reason.clone())
            };
            (of(conditions::RECONCILING), of(conditions::STALLED))
        };
        let t = |r: &str| ("True".to_string(), r.to_string());
        let f = |r: &str| ("False".to_string(), r.to_string());

        let waiting = waiting_status(None, Some(1), now);
        assert_eq!(
            health(&waiting),
            (t("WaitingForActiveRun"), f("Reconciling"))
        );
        let held = suspended_status(None, "prod", Some(1), now);
        assert_eq!(health(&held), (t("Suspended"), f("Reconciling")));

        let counts = RunNodeCounts {
            total: 2,
            failed: 2,
            ..Default::default()
        };
        let step = |phase, hold: &Hold| {
            stepped_status(
                &waiting,
                &plan(phase, counts.clone()),
                &BTreeMap::new(),
                &StatusLimits {
                    max_errors: 1,
                    reboot_option: RebootOption::NoReboot,
                    hold,
                },
                Some(2),
                now,
            )
        };
        let running = step(RunPhase::Running, &Hold::Proceed);
        assert_eq!(health(&running), (t("Rollout"), f("Reconciling")));
        let halted = step(RunPhase::Halted, &Hold::Proceed);
        assert_eq!(health(&halted), (f("Stalled"), t("ErrorBudgetExceeded")));
        let stalled = conditions::find(&halted.conditions, conditions::STALLED).expect("set");
        assert!(
            stalled.message.contains("2 of 2 nodes failed"),
            "{}",
            stalled.message
        );
        let timed_out = step(RunPhase::TimedOut, &Hold::Proceed);
        assert_eq!(health(&timed_out), (f("Stalled"), t("TimedOut")));
        let succeeded = step(RunPhase::Succeeded, &Hold::Proceed);
        assert_eq!(health(&succeeded), (f("Current"), f("Current")));

        let failed = failed_status(Some(&running), Some(2), "PolicyNotFound", "gone", now);
        assert_eq!(health(&failed), (f("Stalled"), t("PolicyNotFound")));

        let canceled = canceled_before_start_status(Some(&held), Some(3), "canceled by bob", now);
        assert_eq!(health(&canceled), (f("Current"), f("Current")));
        assert!(
            conditions::is_true(&canceled.conditions, conditions::READY),
            "a canceled run is not left Ready=False (kstatus would wait on it)"
        );
    }
}
