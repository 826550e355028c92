//! Pure rollout planner: given a run's durable state (its targets), what is observed of each
//! node now, the window and `now`, decide which nodes enter next, which are done or failed, and
//! the run's phase. No I/O: the PatchRun reconciler applies the decisions (labels, status,
//! Events).
//!
//! Rules:
//! - never more than `maxConcurrency` nodes in progress;
//! - more failures than `maxErrors` → no new nodes; in-flight nodes finish; then phase Halted;
//! - `topologyKey` → one topology value at a time, smallest group first (ties by value);
//! - `soakTime` > 0 → strict waves: the next wave starts `soakTime` after the previous one
//!   finished; with 0 free slots are refilled as nodes finish;
//! - `nodeTimeout` → an in-progress node older than that is Failed;
//! - scheduled installs: no new node after the window's cutoff; CancelTask also cancels
//!   in-flight nodes that have not started installing; a closed window with nodes left ends the
//!   run TimedOut (the next window's run picks them up);
//! - canceled, or the window closed: a node still draining stops there (uncordoned, Skipped,
//!   still needing its reboot); a node already told to reboot finishes its sequence;
//! - `rebootOption: RebootIfNeeded`: a node whose install needs a reboot goes InProgress →
//!   Draining (cordoned, only if it was schedulable; the planner asks the reconciler to evict
//!   the pods it observed, retried every step until none is left) →
//!   Rebooting (the agent reads this state and reboots) → Verifying (a new boot ID and Ready)
//!   → Succeeded once the agent's confirming scan on the new boot is in, uncordoning only what
//!   it cordoned. A drain that times out or is blocked fails the node and uncordons it; a node
//!   that does not come back within `nodeTimeout` fails and stays cordoned. A node that needs
//!   no reboot is never cordoned.

pub mod baseline;
pub mod budget;
pub mod cordons;
pub mod record;
pub mod start;
pub mod targeting;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::api::{RunNodeCounts, RunPhase, RunTarget, TargetState};

/// Limits resolved from a policy's `rollout` section.
#[derive(Clone, Debug, PartialEq)]
pub struct RolloutLimits {
    /// Most nodes in progress at once (≥ 1).
    pub max_concurrency: u32,
    /// Most failed nodes tolerated.
    pub max_errors: u32,
    /// Group nodes by this label, one group at a time.
    pub topology_key: Option<String>,
    /// Wait after a wave before the next.
    pub soak_time: SignedDuration,
    /// A node in progress longer than this fails (also the wait for a reboot and for the
    /// confirming scan after it).
    pub node_timeout: SignedDuration,
    /// Reboot nodes whose install needs it (install runs with `RebootIfNeeded`).
    pub reboot_if_needed: bool,
    /// Evict pods before rebooting (`drain.enabled`).
    pub drain: bool,
    /// Give up draining after this long (`drain.timeout`).
    pub drain_timeout: SignedDuration,
}

/// Why a rollout setting cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// An int-or-percent value is malformed.
    #[error("{field}: '{value}' is not an integer or a percentage")]
    IntOrPercent {
        /// Field path.
        field: &'static str,
        /// Value as written.
        value: String,
    },
    /// A duration is malformed.
    #[error("{field}: {message}")]
    Duration {
        /// Field path.
        field: &'static str,
        /// Parser message.
        message: String,
    },
}

impl LimitError {
    /// Bounded label for metrics and reasons.
    pub fn category(&self) -> &'static str {
        match self {
            LimitError::IntOrPercent { .. } => "int_or_percent",
            LimitError::Duration { .. } => "duration",
        }
    }
}

/// Resolve an int-or-percent against `total` nodes: percentages round down. Negative values
/// are rejected at admission; here they clamp to 0.
pub fn resolve_int_or_percent(
    value: &IntOrString,
    total: u32,
    field: &'static str,
) -> Result<u32, LimitError> {
    match value {
        IntOrString::Int(i) => Ok((*i).max(0) as u32),
        IntOrString::String(s) => {
            let bad = || LimitError::IntOrPercent {
                field,
                value: s.clone(),
            };
            if let Some(p) = s.strip_suffix('%') {
                let pct: u64 = p.parse().map_err(|_| bad())?;
                if pct > 100 {
                    return Err(bad());
                }
                Ok(((u64::from(total) * pct) / 100) as u32)
            } else {
                s.parse::<u32>().map_err(|_| bad())
            }
        }
    }
}

impl RolloutLimits {
    /// Resolve a policy's rollout spec for a run of `total` nodes.
    pub fn resolve(
        spec: &crate::api::RolloutSpec,
        total: u32,
    ) -> Result<RolloutLimits, LimitError> {
        let duration = |field: &'static str, s: &str| {
            crate::schedule::duration::parse_duration(s).map_err(|e| LimitError::Duration {
                field,
                message: e.to_string(),
            })
        };
        Ok(RolloutLimits {
            max_concurrency: resolve_int_or_percent(
                &spec.max_concurrency,
                total,
                "spec.rollout.maxConcurrency",
            )?
            .max(1),
            max_errors: resolve_int_or_percent(&spec.max_errors, total, "spec.rollout.maxErrors")?,
            topology_key: spec.topology_key.clone(),
            soak_time: duration("spec.rollout.soakTime", &spec.soak_time)?,
            node_timeout: duration("spec.rollout.nodeTimeout", &spec.node_timeout)?,
            reboot_if_needed: false,
            drain: true,
            drain_timeout: SignedDuration::from_mins(15),
        })
    }

    /// Reboot nodes that need it after their install, draining them first as `drain` says.
    pub fn with_reboot(
        mut self,
        drain: &crate::api::DrainSpec,
    ) -> Result<RolloutLimits, LimitError> {
        self.reboot_if_needed = true;
        self.drain = drain.enabled;
        self.drain_timeout =
            crate::schedule::duration::parse_duration(&drain.timeout).map_err(|e| {
                LimitError::Duration {
                    field: "spec.drain.timeout",
                    message: e.to_string(),
                }
            })?;
        Ok(self)
    }
}

/// What the agent reported for this run on a node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AgentProgress {
    /// Nothing reported for this run yet.
    #[default]
    NotStarted,
    /// Started, not installing yet (scanning, pending).
    Preparing,
    /// Installing packages: not safe to interrupt.
    Installing,
    /// Finished successfully; `reboot_required` after an install that needs one.
    Succeeded { reboot_required: bool },
    /// Finished with an error.
    Failed,
}

/// What the Node object shows (read for nodes in the reboot sequence only).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeHealth {
    /// `status.nodeInfo.bootID`.
    pub boot_id: String,
    /// The `Ready` condition is True.
    pub ready: bool,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
}

/// How far the drain of a node in Draining is, from the pods observed on it (and the evictions
/// the Eviction API refused on the previous step).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum DrainProgress {
    /// Not looked at this step.
    #[default]
    NotAttempted,
    /// Pods are still leaving (evictions refused by a PDB, pods terminating); why.
    Pending(String),
    /// No pod left to evict.
    Done,
    /// The drain cannot finish with these settings (an unmanaged pod without `force`, …); why.
    Blocked(String),
}

/// What is observed of one target node now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeObservation {
    /// The Node object still exists.
    pub exists: bool,
    /// The node carries this run's label.
    pub labelled: bool,
    /// The node now carries the opt-out label `nodepatch.dev/exclude=true`.
    pub excluded: bool,
    /// Another policy now selects the node too (it is no longer this policy's alone).
    pub conflicting: bool,
    /// The agent's progress for this run.
    pub progress: AgentProgress,
    /// The agent's report says a package transaction of this run is under way (phase
    /// Installing): the node keeps its label, and so its agent, until it ends ([`keeps_agent`]).
    pub installing: bool,
    /// Boot ID under which the agent finished its latest operation for this run.
    pub report_boot_id: Option<String>,
    /// The Node's boot ID, readiness and cordon.
    pub health: NodeHealth,
    /// The drain's progress (nodes in Draining only).
    pub drain: DrainProgress,
    /// Pods on the node the drain evicts (nodes in Draining only): the planner asks for their
    /// eviction with [`RolloutAction::Evict`].
    pub evict: Vec<PodRef>,
    /// The agent's own reason and message when its operation of this run failed (e.g.
    /// `HookFailed` with the hook's output tail): the failed target's reason and message.
    pub agent_failure: Option<AgentFailure>,
}

/// Why the agent says its operation failed: its report's `Ready` reason and operation message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentFailure {
    /// A bounded, CamelCase reason (`InstallFailed`, `HookFailed`, `HookTimeout`, …).
    pub reason: String,
    /// The operation's message.
    pub message: Option<String>,
}

/// A pod, by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodRef {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for PodRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The maintenance window constraint of a scheduled install run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowState {
    /// No constraint (scans, manual runs).
    Unconstrained,
    /// Open: new nodes may start until `cutoff_at`.
    Open {
        cutoff_at: Timestamp,
        cancel_at_cutoff: bool,
    },
    /// Closed.
    Closed,
}

/// One decision for the reconciler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutAction {
    /// Label the node into the run (its DaemonSet pod starts).
    Label(String),
    /// Remove the run label (its pod is removed).
    Unlabel(String),
    /// Mark the node unschedulable.
    Cordon(String),
    /// Make the node schedulable again (only nodes the run cordoned). The reconciler does this
    /// *before* writing status, so a crash in between uncordons again rather than never.
    Uncordon(String),
    /// Evict these pods of a draining node through the Eviction API (PodDisruptionBudgets
    /// apply: a refusal is retried on the next step). Comes after the node's cordon.
    Evict { node: String, pods: Vec<PodRef> },
}

/// Something worth an Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutEvent {
    /// A wave started with these nodes.
    WaveStarted { wave: u32, nodes: Vec<String> },
    /// A node failed.
    NodeFailed {
        node: String,
        reason: String,
        message: Option<String>,
    },
    /// A node needs a reboot: cordoned (when it was schedulable) and being drained.
    DrainStarted { node: String, cordoned: bool },
    /// Drained: the agent is told to reboot the node.
    RebootRequested { node: String },
    /// The node came back with a new boot ID.
    Rebooted { node: String, boot_id: String },
    /// The run uncordoned a node it had cordoned.
    Uncordoned { node: String },
    /// More nodes failed than allowed: no new nodes start.
    Halted { failed: u32, max_errors: u32 },
    /// The run finished in this phase.
    Finished(RunPhase),
}

/// The planner's decision.
#[derive(Clone, Debug, PartialEq)]
pub struct RolloutPlan {
    /// Targets with updated states.
    pub targets: Vec<RunTarget>,
    /// Label changes to make.
    pub actions: Vec<RolloutAction>,
    /// Events to emit.
    pub events: Vec<RolloutEvent>,
    /// Phase of the run after this step.
    pub phase: RunPhase,
    /// Wave in progress.
    pub current_wave: u32,
    /// When the last wave completed.
    pub last_wave_completion: Option<Timestamp>,
    /// Node counts.
    pub counts: RunNodeCounts,
    /// When to look again at the latest (node timeout, soak end, cutoff); None: on change only.
    pub requeue_at: Option<Timestamp>,
}

/// What users asked of a running run, read every step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RunHold {
    /// Nothing: the run proceeds.
    #[default]
    Proceed,
    /// The policy is suspended: no node starts, nodes in flight finish, pending nodes wait, and
    /// the run goes on from where it was once the policy is resumed.
    Suspended,
    /// The run is canceled: no node starts, nodes in flight finish, pending nodes are Skipped
    /// (`Canceled`); then the run ends `Canceled`.
    Canceled,
}

/// The run's durable state the planner starts from.
#[derive(Clone, Debug, PartialEq)]
pub struct RunState {
    /// Phase before this step.
    pub phase: RunPhase,
    /// Suspended or canceled by a user.
    pub hold: RunHold,
    /// Per-node records.
    pub targets: Vec<RunTarget>,
    /// Wave in progress.
    pub current_wave: u32,
    /// When the last wave completed (soak start).
    pub last_wave_completion: Option<Timestamp>,
}

fn in_flight(state: TargetState) -> bool {
    matches!(
        state,
        TargetState::InProgress
            | TargetState::Draining
            | TargetState::Rebooting
            | TargetState::Verifying
    )
}

fn finish(target: &mut RunTarget, state: TargetState, reason: Option<String>, now: Timestamp) {
    target.state = state;
    target.reason = reason;
    target.end_time = Some(Time(now));
    target.state_time = Some(Time(now));
}

/// How often a node in the reboot sequence is looked at (evictions retried, the Node's boot ID
/// read): these changes do not all wake the run.
pub const REBOOT_POLL: SignedDuration = SignedDuration::from_secs(2);
/// How often a node held for its agent's transaction ([`keeps_agent`]) is looked at without
/// an event.
pub const AGENT_HOLD_POLL: SignedDuration = SignedDuration::from_secs(30);

/// Decide the next step of a run. `observed` holds every target node by name (a missing entry
/// means the node is gone).
pub fn plan_rollout(
    run: &RunState,
    limits: &RolloutLimits,
    observed: &BTreeMap<String, NodeObservation>,
    window: WindowState,
    now: Timestamp,
) -> RolloutPlan {
    let mut targets = run.targets.clone();
    let mut actions = vec![];
    let mut events = vec![];
    let mut requeue_at: Option<Timestamp> = None;
    let mut wake = |t: Timestamp| {
        requeue_at = Some(requeue_at.map_or(t, |r: Timestamp| r.min(t)));
    };
    let gone = NodeObservation::default();

    // 1. Fold in what happened to in-flight nodes.
    let mut wave_done_now = false;
    for t in targets.iter_mut() {
        let obs = observed.get(&t.node).unwrap_or(&gone);
        if t.state.is_done() {
            if keeps_agent(t, obs.installing, limits.node_timeout, now) {
                // The report's change wakes the run; this only bounds the hold.
                wake(now + AGENT_HOLD_POLL);
            } else if obs.labelled {
                actions.push(RolloutAction::Unlabel(t.node.clone()));
            }
            continue;
        }
        if !obs.exists {
            // A deleted node is skipped whether it was pending or in flight.
            let was_in_flight = in_flight(t.state);
            finish(t, TargetState::Skipped, Some("NodeDeleted".into()), now);
            wave_done_now |= was_in_flight;
            continue;
        }
        if t.state == TargetState::Pending {
            // Only nodes that have not started leave this way: an install in flight is never
            // abandoned half-done.
            let reason = if run.hold == RunHold::Canceled {
                Some("Canceled")
            } else if obs.excluded {
                Some("Excluded")
            } else if obs.conflicting {
                Some("Conflict")
            } else {
                None
            };
            if let Some(reason) = reason {
                finish(t, TargetState::Skipped, Some(reason.into()), now);
            }
            continue;
        }
        if !in_flight(t.state) {
            continue;
        }
        // Canceled, or the window closed: a node still draining is not rebooted after all. Its
        // install is done; the drain stops, what the run cordoned is uncordoned, and the node
        // leaves the run still needing its reboot (the next run's install reboots it).
        let stop = match (run.hold, window) {
            (RunHold::Canceled, _) => Some("Canceled"),
            (_, WindowState::Closed) => Some("WindowClosed"),
            _ => None,
        };
        if let (TargetState::Draining, Some(reason)) = (t.state, stop) {
            let mut step = NodeStep::default();
            uncordon(t, &mut step);
            t.message = Some(format!(
                "installed, but the run stopped ({reason}) before its reboot: the drain was abandoned and the node still needs a reboot"
            ));
            finish(t, TargetState::Skipped, Some(reason.into()), now);
            actions.extend(step.actions);
            events.extend(step.events);
            wave_done_now = true;
            if obs.labelled {
                actions.push(RolloutAction::Unlabel(t.node.clone()));
            }
            continue;
        }
        let step = advance(t, obs, limits, now);
        actions.extend(step.actions);
        events.extend(step.events);
        if let Some(at) = step.wake {
            wake(at);
        }
        if t.state.is_done() {
            wave_done_now = true;
            if obs.labelled && !keeps_agent(t, obs.installing, limits.node_timeout, now) {
                actions.push(RolloutAction::Unlabel(t.node.clone()));
            }
        } else if !obs.labelled {
            // Status is written before labels; a controller that died in between re-asserts
            // the label of an in-flight node here.
            actions.push(RolloutAction::Label(t.node.clone()));
        }
    }

    // CancelTask at the cutoff: in-flight nodes that have not started installing are stopped.
    let past_cutoff = match window {
        WindowState::Open { cutoff_at, .. } => now >= cutoff_at,
        WindowState::Closed => true,
        WindowState::Unconstrained => false,
    };
    if let WindowState::Open {
        cancel_at_cutoff: true,
        ..
    } = window
        && past_cutoff
    {
        for t in targets
            .iter_mut()
            .filter(|t| t.state == TargetState::InProgress)
        {
            let obs = observed.get(&t.node).unwrap_or(&gone);
            if matches!(
                obs.progress,
                AgentProgress::NotStarted | AgentProgress::Preparing
            ) {
                finish(
                    t,
                    TargetState::Skipped,
                    Some("CanceledAtCutoff".into()),
                    now,
                );
                if obs.labelled {
                    actions.push(RolloutAction::Unlabel(t.node.clone()));
                }
            }
        }
    }

    let mut counts = count(&targets);
    let flying = counts.in_progress;
    let mut last_wave_completion = run.last_wave_completion;
    if wave_done_now && flying == 0 {
        last_wave_completion = Some(now);
    }

    // 2. Error budget.
    let halted = counts.failed > limits.max_errors;
    let was_halted = count(&run.targets).failed > limits.max_errors;
    if halted && !was_halted {
        events.push(RolloutEvent::Halted {
            failed: counts.failed,
            max_errors: limits.max_errors,
        });
    }

    // 3. Start new nodes.
    let mut current_wave = run.current_wave;
    let may_start = !halted
        && run.hold == RunHold::Proceed
        && !past_cutoff
        && !matches!(window, WindowState::Closed)
        && counts.pending > 0
        && soak_over(limits, flying, last_wave_completion, now, &mut wake);
    if may_start {
        let slots = limits.max_concurrency.saturating_sub(flying) as usize;
        let candidates = next_candidates(&targets, limits);
        let chosen: Vec<String> = candidates.into_iter().take(slots).collect();
        if !chosen.is_empty() {
            current_wave += 1;
            for t in targets.iter_mut().filter(|t| chosen.contains(&t.node)) {
                t.state = TargetState::InProgress;
                t.wave = current_wave;
                t.start_time = Some(Time(now));
                t.state_time = Some(Time(now));
                actions.push(RolloutAction::Label(t.node.clone()));
                wake(now + limits.node_timeout);
            }
            events.push(RolloutEvent::WaveStarted {
                wave: current_wave,
                nodes: chosen,
            });
            counts = count(&targets);
        }
    }
    if let WindowState::Open { cutoff_at, .. } = window
        && now < cutoff_at
    {
        wake(cutoff_at);
    }

    // 4. Phase.
    let phase = if counts.in_progress > 0 {
        RunPhase::Running
    } else if halted {
        RunPhase::Halted
    } else if run.hold == RunHold::Canceled {
        RunPhase::Canceled
    } else if counts.pending == 0 {
        RunPhase::Succeeded
    } else if past_cutoff {
        // Window closed or past cutoff with nothing in flight: the rest waits for the next window.
        for t in targets
            .iter_mut()
            .filter(|t| t.state == TargetState::Pending)
        {
            finish(t, TargetState::Skipped, Some("WindowClosed".into()), now);
        }
        counts = count(&targets);
        RunPhase::TimedOut
    } else {
        RunPhase::Running
    };
    if phase.is_finished() && !run.phase.is_finished() {
        events.push(RolloutEvent::Finished(phase));
        requeue_at = None;
    }
    RolloutPlan {
        targets,
        actions,
        events,
        phase,
        current_wave,
        last_wave_completion,
        counts,
        requeue_at,
    }
}

/// Whether a node the run is done with (or that timed out) keeps its label, and so its agent
/// pod, because its report says a package transaction of this run is under way: removing the
/// label, or the run's DaemonSet, would kill the agent and with it dpkg or rpm mid-way. The
/// hold lasts at most another `nodeTimeout` past the node's own (which covers the agent's worst
/// case, [`budget`]), so an agent that died without a word cannot hold a run forever.
pub fn keeps_agent(
    target: &RunTarget,
    installing: bool,
    node_timeout: SignedDuration,
    now: Timestamp,
) -> bool {
    installing
        && target
            .start_time
            .as_ref()
            .is_none_or(|s| now < s.0 + node_timeout + node_timeout)
}

/// What one in-flight node's step decided.
#[derive(Default)]
struct NodeStep {
    actions: Vec<RolloutAction>,
    events: Vec<RolloutEvent>,
    wake: Option<Timestamp>,
}

fn enter(target: &mut RunTarget, state: TargetState, now: Timestamp) {
    target.state = state;
    target.state_time = Some(Time(now));
}

fn fail(
    target: &mut RunTarget,
    step: &mut NodeStep,
    reason: &str,
    message: Option<String>,
    now: Timestamp,
) {
    step.events.push(RolloutEvent::NodeFailed {
        node: target.node.clone(),
        reason: reason.to_string(),
        message: message.clone(),
    });
    target.message = message.map(|m| m.chars().take(1024).collect());
    finish(target, TargetState::Failed, Some(reason.to_string()), now);
}

fn uncordon(target: &mut RunTarget, step: &mut NodeStep) {
    if target.cordoned {
        target.cordoned = false;
        step.actions
            .push(RolloutAction::Uncordon(target.node.clone()));
        step.events.push(RolloutEvent::Uncordoned {
            node: target.node.clone(),
        });
    }
}

/// Move one in-flight node through InProgress → Draining → Rebooting → Verifying → done as far
/// as what is observed allows (several states in one step when the observations are in).
fn advance(
    t: &mut RunTarget,
    obs: &NodeObservation,
    limits: &RolloutLimits,
    now: Timestamp,
) -> NodeStep {
    let mut step = NodeStep::default();
    let since = |t: &RunTarget| {
        t.state_time
            .as_ref()
            .or(t.start_time.as_ref())
            .map(|s| s.0)
            .unwrap_or(now)
    };
    if t.state == TargetState::InProgress {
        match obs.progress {
            AgentProgress::Succeeded {
                reboot_required: true,
            } if limits.reboot_if_needed => {
                // Cordon only a schedulable node: one cordoned by someone else stays theirs.
                t.cordoned = !obs.health.unschedulable;
                if t.cordoned {
                    step.actions.push(RolloutAction::Cordon(t.node.clone()));
                }
                step.events.push(RolloutEvent::DrainStarted {
                    node: t.node.clone(),
                    cordoned: t.cordoned,
                });
                enter(t, TargetState::Draining, now);
                if !limits.drain {
                    t.boot_id = Some(obs.health.boot_id.clone());
                    enter(t, TargetState::Rebooting, now);
                    step.events.push(RolloutEvent::RebootRequested {
                        node: t.node.clone(),
                    });
                }
                // The drain starts on the next step, after the cordon is in place.
                step.wake = Some(now);
                return step;
            }
            AgentProgress::Succeeded { reboot_required } => {
                let state = if reboot_required {
                    TargetState::SucceededRebootRequired
                } else {
                    TargetState::Succeeded
                };
                finish(t, state, None, now);
                return step;
            }
            AgentProgress::Failed => {
                let (reason, message) = match &obs.agent_failure {
                    Some(f) => (f.reason.as_str(), f.message.clone()),
                    None => ("AgentFailed", None),
                };
                fail(t, &mut step, reason, message, now);
                return step;
            }
            AgentProgress::NotStarted | AgentProgress::Preparing | AgentProgress::Installing => {
                let started = t.start_time.as_ref().map(|s| s.0).unwrap_or(now);
                let deadline = started + limits.node_timeout;
                if now >= deadline {
                    let why = obs.installing.then(|| {
                        format!(
                            "the agent was still installing after nodeTimeout {}; it keeps running on the node until its package transaction ends (at most another {})",
                            limits.node_timeout, limits.node_timeout
                        )
                    });
                    fail(t, &mut step, "NodeTimeout", why, now);
                } else {
                    step.wake = Some(deadline);
                }
                return step;
            }
        }
    }
    if t.state == TargetState::Draining {
        // The cordon comes first (again, if someone lifted it): evicted pods must not land on
        // the node again. Not when the drain ends in failure, which uncordons.
        let recordon = t.cordoned && !obs.health.unschedulable;
        match &obs.drain {
            DrainProgress::Done => {
                if recordon {
                    step.actions.push(RolloutAction::Cordon(t.node.clone()));
                }
                t.boot_id = Some(obs.health.boot_id.clone());
                enter(t, TargetState::Rebooting, now);
                step.events.push(RolloutEvent::RebootRequested {
                    node: t.node.clone(),
                });
                // The agent reboots when it sees Rebooting; nothing more to see this step.
                step.wake = Some(now + REBOOT_POLL);
                return step;
            }
            DrainProgress::Blocked(why) => {
                uncordon(t, &mut step);
                fail(t, &mut step, "DrainFailed", Some(why.clone()), now);
                return step;
            }
            DrainProgress::Pending(_) | DrainProgress::NotAttempted => {
                let deadline = since(t) + limits.drain_timeout;
                if now >= deadline {
                    let why = match &obs.drain {
                        DrainProgress::Pending(why) => format!(
                            "drain did not finish within {}: {why}",
                            limits.drain_timeout
                        ),
                        _ => format!("drain did not finish within {}", limits.drain_timeout),
                    };
                    uncordon(t, &mut step);
                    fail(t, &mut step, "DrainTimeout", Some(why), now);
                } else {
                    if recordon {
                        step.actions.push(RolloutAction::Cordon(t.node.clone()));
                    }
                    if !obs.evict.is_empty() {
                        step.actions.push(RolloutAction::Evict {
                            node: t.node.clone(),
                            pods: obs.evict.clone(),
                        });
                    }
                    step.wake = Some(deadline.min(now + REBOOT_POLL));
                }
                return step;
            }
        }
    }
    if t.state == TargetState::Rebooting {
        let new_boot = !obs.health.boot_id.is_empty()
            && t.boot_id.as_deref() != Some(obs.health.boot_id.as_str());
        if new_boot && obs.health.ready {
            step.events.push(RolloutEvent::Rebooted {
                node: t.node.clone(),
                boot_id: obs.health.boot_id.clone(),
            });
            enter(t, TargetState::Verifying, now);
        } else {
            let deadline = since(t) + limits.node_timeout;
            if now >= deadline {
                // Left cordoned: a node that did not come back must not get work.
                let why = format!(
                    "node did not come back (new boot ID and Ready) within nodeTimeout {}; left cordoned for inspection",
                    limits.node_timeout
                );
                fail(t, &mut step, "RebootTimeout", Some(why), now);
            } else {
                step.wake = Some(deadline.min(now + REBOOT_POLL));
            }
            return step;
        }
    }
    if t.state == TargetState::Verifying {
        let confirmed = obs
            .report_boot_id
            .as_deref()
            .is_some_and(|b| t.boot_id.as_deref() != Some(b));
        match obs.progress {
            AgentProgress::Succeeded { reboot_required } if confirmed => {
                uncordon(t, &mut step);
                let state = if reboot_required {
                    TargetState::SucceededRebootRequired
                } else {
                    TargetState::Succeeded
                };
                finish(t, state, None, now);
            }
            AgentProgress::Failed if confirmed => {
                uncordon(t, &mut step);
                fail(
                    t,
                    &mut step,
                    "VerifyFailed",
                    Some("the agent's scan after the reboot failed".into()),
                    now,
                );
            }
            _ => {
                let deadline = since(t) + limits.node_timeout;
                if now >= deadline {
                    uncordon(t, &mut step);
                    fail(
                        t,
                        &mut step,
                        "VerifyTimeout",
                        Some(format!(
                            "the node rebooted but the agent did not report a scan within nodeTimeout {}",
                            limits.node_timeout
                        )),
                        now,
                    );
                } else {
                    step.wake = Some(deadline.min(now + REBOOT_POLL));
                }
            }
        }
    }
    step
}

/// Whether the soak after the last wave is over (always true with soakTime 0 or nothing in
/// flight before the first wave). With soakTime > 0 waves are strict: none starts while one runs.
fn soak_over(
    limits: &RolloutLimits,
    flying: u32,
    last_wave_completion: Option<Timestamp>,
    now: Timestamp,
    wake: &mut impl FnMut(Timestamp),
) -> bool {
    if limits.soak_time.is_zero() {
        return true;
    }
    if flying > 0 {
        return false;
    }
    match last_wave_completion {
        None => true,
        Some(done) => {
            let until = done + limits.soak_time;
            if now >= until {
                true
            } else {
                wake(until);
                false
            }
        }
    }
}

/// Pending nodes eligible now, in start order. With a topology key: only the current group
/// (the one with nodes in flight, else the smallest group with pending nodes; ties by value).
fn next_candidates(targets: &[RunTarget], limits: &RolloutLimits) -> Vec<String> {
    let pending = targets.iter().filter(|t| t.state == TargetState::Pending);
    if limits.topology_key.is_none() {
        return pending.map(|t| t.node.clone()).collect();
    }
    let group_of = |t: &RunTarget| t.topology.clone().unwrap_or_default();
    if let Some(active) = targets.iter().find(|t| in_flight(t.state)).map(group_of) {
        return pending
            .filter(|t| group_of(t) == active)
            .map(|t| t.node.clone())
            .collect();
    }
    let mut sizes: BTreeMap<String, usize> = BTreeMap::new();
    for t in targets.iter() {
        *sizes.entry(group_of(t)).or_default() += 1;
    }
    let mut groups_with_pending: Vec<(usize, String)> = targets
        .iter()
        .filter(|t| t.state == TargetState::Pending)
        .map(group_of)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|g| (sizes.get(&g).copied().unwrap_or(0), g))
        .collect();
    groups_with_pending.sort();
    let Some((_, group)) = groups_with_pending.into_iter().next() else {
        return vec![];
    };
    pending
        .filter(|t| group_of(t) == group)
        .map(|t| t.node.clone())
        .collect()
}

/// Count targets by state.
pub fn count(targets: &[RunTarget]) -> RunNodeCounts {
    let mut c = RunNodeCounts {
        total: targets.len() as u32,
        ..Default::default()
    };
    for t in targets {
        match t.state {
            TargetState::Pending => c.pending += 1,
            TargetState::InProgress
            | TargetState::Draining
            | TargetState::Rebooting
            | TargetState::Verifying => c.in_progress += 1,
            TargetState::Succeeded => c.succeeded += 1,
            TargetState::SucceededRebootRequired => {
                c.succeeded += 1;
                c.succeeded_reboot_required += 1
            }
            TargetState::Failed => c.failed += 1,
            TargetState::Skipped => c.skipped += 1,
        }
    }
    c
}

/// Initial targets of a run: every node pending, sorted by name, with its topology value.
pub fn initial_targets(
    nodes: impl IntoIterator<Item = (String, Option<String>)>,
) -> Vec<RunTarget> {
    let mut targets: Vec<RunTarget> = nodes
        .into_iter()
        .map(|(node, topology)| RunTarget {
            node,
            topology,
            ..Default::default()
        })
        .collect();
    targets.sort_by(|a, b| a.node.cmp(&b.node));
    targets.dedup_by(|a, b| a.node == b.node);
    targets
}

#[cfg(test)]
mod tests;
