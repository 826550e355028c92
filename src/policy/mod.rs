//! Pure policy decisions: given a PatchPolicy, what is observed of its runs, windows, baselines,
//! member nodes and their reports, and `now`, decide the policy's status, the run to start, the
//! runs to prune and the Events to emit. No I/O and no kube objects beyond the policy itself:
//! the PatchPolicy reconciler (`controller::patchpolicy`) turns the caches into these values and
//! applies the [`PolicyPlan`].
//!
//! - [`references`]: baselineRefs, selector, scan schedule and maintenance windows → `Ready`;
//! - [`schedule`]: which run is due (an install per open window, scans on schedule), deferred
//!   while another run is active;
//! - [`history`]: finished runs beyond `historyLimit`;
//! - [`rollup`]: node compliance counts, conflicts, `Progressing` and `Degraded`.

pub mod history;
mod model;
pub mod references;
pub mod rollup;
pub mod schedule;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::api::conditions::{set_condition, set_health};
use crate::api::{Operation, PatchPolicyStatus};

use model::Wake;
pub use model::{
    MemberReport, NewRun, PolicyEvent, PolicyPlan, PolicyView, RESYNC, RunRecord, WindowRef,
};
pub use schedule::scheduled_run_name;

/// Decide a policy's status and the run to start. Pure.
pub fn plan_policy(view: &PolicyView<'_>, now: Timestamp) -> PolicyPlan {
    let policy = view.policy;
    let generation = policy.metadata.generation;
    let old = policy.status.clone().unwrap_or_default();
    let mut conditions = old.conditions.clone();
    let mut wake = Wake::new(now);

    let refs = references::check(view, now);
    set_condition(
        &mut conditions,
        refs.ready_condition(policy.spec.suspend, generation, now),
    );
    for d in &refs.windows {
        if let Some(b) = d.next_boundary(now) {
            wake.at(b);
        }
    }

    let mut runs: Vec<&RunRecord> = view.runs.iter().collect();
    runs.sort_by_key(|r| std::cmp::Reverse(r.created));
    let active = runs.iter().copied().find(|r| !r.phase.is_finished());
    let mut events = vec![];
    let create = if refs.ready() && !policy.spec.suspend {
        schedule::due_run(policy, &refs, &runs, active, now, &mut wake, &mut events)
    } else {
        None
    };
    let prune = history::prune(&runs, policy.spec.history_limit);

    let rollup = rollup::roll_up(view, &runs, active, create.as_ref(), generation, now);
    for c in rollup.conditions {
        set_condition(&mut conditions, c);
    }
    let health = rollup::health(&conditions);
    set_health(&mut conditions, &health, generation, now);
    let status = PatchPolicyStatus {
        observed_generation: generation,
        nodes: rollup.nodes,
        missing_by_severity: rollup.missing,
        last_scan_time: rollup::last_time(&runs, Operation::Scan),
        last_install_time: rollup::last_time(&runs, Operation::Install),
        next_install_window: policy
            .spec
            .install
            .as_ref()
            .and_then(|_| schedule::next_install_window(&refs.windows, now))
            .map(Time),
        active_run: rollup.active_run,
        active_run_phase: rollup.active_run_phase,
        conflicts: rollup.conflicts,
        conditions,
    };
    let newly_conflicting = status
        .conflicts
        .iter()
        .filter(|c| !old.conflicts.contains(c))
        .count();
    if newly_conflicting > 0 {
        events.push(PolicyEvent::NodeConflict {
            nodes: newly_conflicting,
        });
    }
    PolicyPlan {
        status,
        create,
        prune,
        events,
        requeue_at: wake.at,
    }
}

#[cfg(test)]
mod tests;
