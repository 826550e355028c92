//! Conditions on `meta/v1` Condition: `Ready`, `Progressing`, `Degraded`, `Open`, and the two
//! kstatus reads (`Reconciling`, `Stalled`, see [`Health`]).
//!
//! Status writes are skipped when nothing changed, so these helpers keep `lastTransitionTime`
//! when a condition's status is unchanged and compare conditions ignoring timestamps.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Condition type: the object is valid and its controller acts on it.
pub const READY: &str = "Ready";
/// Condition type: work is under way (a run is active).
pub const PROGRESSING: &str = "Progressing";
/// Condition type: something failed and needs attention.
pub const DEGRADED: &str = "Degraded";
/// Condition type (MaintenanceWindow): a window is open now.
pub const OPEN: &str = "Open";
/// Condition type (kstatus, abnormal-true): the controller is still working toward the spec.
pub const RECONCILING: &str = "Reconciling";
/// Condition type (kstatus, abnormal-true): the object cannot progress without a change.
pub const STALLED: &str = "Stalled";

/// Status value of a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

impl From<bool> for ConditionStatus {
    fn from(value: bool) -> Self {
        if value {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        }
    }
}

/// Build a condition stamped with `now`.
pub fn new_condition(
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    Condition {
        type_: type_.to_string(),
        status: status.as_str().to_string(),
        reason: reason.to_string(),
        message: truncate_message(message.into()),
        observed_generation,
        last_transition_time: Time(now),
    }
}

/// Insert or replace the condition of `new.type_` in `conditions`, keeping the old
/// `lastTransitionTime` when the status did not change. Returns true when anything but
/// timestamps changed.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time.clone();
            }
            let changed = !same_ignoring_time(old, &new);
            *old = new;
            changed
        }
        None => {
            conditions.push(new);
            conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
            true
        }
    }
}

/// An object's health as kstatus (`sigs.k8s.io/cli-utils/pkg/kstatus`, read by kpt, Config
/// Sync and Flux) understands it, written as its two abnormal-true conditions: `Reconciling`
/// True while the controller works toward the spec (kstatus `InProgress`), `Stalled` True when
/// the object cannot progress without a change (kstatus `Failed`), both False when it is current.
/// Each kind decides which of its states is which (docs/gitops.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// Neither: the object is what its spec asks (kstatus `Current`).
    Current,
    /// Work toward the spec is under way.
    Reconciling {
        /// CamelCase reason.
        reason: String,
        /// What is under way.
        message: String,
    },
    /// No progress is possible without a change to this or another object.
    Stalled {
        /// CamelCase reason.
        reason: String,
        /// What is wrong and what to change.
        message: String,
    },
}

impl Health {
    /// Reconciling with `reason` and `message`.
    pub fn reconciling(reason: &str, message: impl Into<String>) -> Self {
        Health::Reconciling {
            reason: reason.to_string(),
            message: message.into(),
        }
    }

    /// Stalled with `reason` and `message`.
    pub fn stalled(reason: &str, message: impl Into<String>) -> Self {
        Health::Stalled {
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

/// Write `health` as the `Reconciling` and `Stalled` conditions (the one that applies True with
/// the health's reason, the other False), both stamped with `observed_generation`. Returns true
/// when anything but timestamps changed.
pub fn set_health(
    conditions: &mut Vec<Condition>,
    health: &Health,
    observed_generation: Option<i64>,
    now: Timestamp,
) -> bool {
    let (reconciling, stalled) = match health {
        Health::Current => (
            (ConditionStatus::False, "Current", "nothing left to do"),
            (ConditionStatus::False, "Current", "not stalled"),
        ),
        Health::Reconciling { reason, message } => (
            (ConditionStatus::True, reason.as_str(), message.as_str()),
            (ConditionStatus::False, "Reconciling", "not stalled"),
        ),
        Health::Stalled { reason, message } => (
            (
                ConditionStatus::False,
                "Stalled",
                "the controller waits for a change",
            ),
            (ConditionStatus::True, reason.as_str(), message.as_str()),
        ),
    };
    let mut changed = false;
    for (type_, (status, reason, message)) in [(RECONCILING, reconciling), (STALLED, stalled)] {
        changed |= set_condition(
            conditions,
            new_condition(type_, status, reason, message, observed_generation, now),
        );
    }
    changed
}

/// The health of a kind whose reconcile is one synchronous evaluation of its spec (PatchBaseline,
/// MaintenanceWindow): Stalled with Ready's reason and message while Ready is not True (only a
/// spec change helps), Current otherwise. Nothing stays in progress between reconciles; a spec
/// change not yet observed shows as `observedGeneration` behind `metadata.generation`.
pub fn health_from_ready(conditions: &[Condition]) -> Health {
    match find(conditions, READY) {
        Some(r) if r.status != "True" => Health::stalled(&r.reason, r.message.clone()),
        _ => Health::Current,
    }
}

/// Find a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// True when the condition of `type_` exists with status True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

/// Compare two conditions ignoring `lastTransitionTime`.
pub fn same_ignoring_time(a: &Condition, b: &Condition) -> bool {
    a.type_ == b.type_
        && a.status == b.status
        && a.reason == b.reason
        && a.message == b.message
        && a.observed_generation == b.observed_generation
}

/// Compare two condition lists ignoring `lastTransitionTime` and order.
pub fn same_conditions(a: &[Condition], b: &[Condition]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.iter().any(|y| same_ignoring_time(x, y)))
}

/// A status that carries conditions.
pub trait WithConditions: Clone + PartialEq {
    /// The status's conditions.
    fn conditions_mut(&mut self) -> &mut Vec<Condition>;
}

/// Two statuses are the same for writing purposes when they are equal apart from their
/// conditions' `lastTransitionTime` (a status is written only when this is false).
pub fn same_status<S: WithConditions>(a: &S, b: &S) -> bool {
    let (mut a2, mut b2) = (a.clone(), b.clone());
    let (ca, cb) = (
        std::mem::take(a2.conditions_mut()),
        std::mem::take(b2.conditions_mut()),
    );
    a2 == b2 && same_conditions(&ca, &cb)
}

macro_rules! with_conditions {
    ($($status:ty),*) => {$(
        impl WithConditions for $status {
            fn conditions_mut(&mut self) -> &mut Vec<Condition> {
                &mut self.conditions
            }
        }
    )*};
}
with_conditions!(
    super::PatchRunStatus,
    super::PatchPolicyStatus,
    super::PatchBaselineStatus
);

/// Condition messages are bounded (the API allows 32768 bytes); we keep them short enough to
/// read in `kubectl describe`.
fn truncate_message(mut message: String) -> String {
    const MAX: usize = 4096;
    if message.len() > MAX {
        let mut cut = MAX;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("valid timestamp")
    }

    #[test]
    fn unchanged_status_keeps_last_transition_time() {
        let mut conds = vec![];
        let t0 = ts("2026-01-01T00:00:00Z");
        let t1 = ts("2026-01-02T00:00:00Z");
        assert!(set_condition(
            &mut conds,
            new_condition(READY, ConditionStatus::True, "Valid", "ok", Some(1), t0)
        ));
        assert!(!set_condition(
            &mut conds,
            new_condition(READY, ConditionStatus::True, "Valid", "ok", Some(1), t1)
        ));
        assert_eq!(conds[0].last_transition_time.0, t0);
    }

    #[test]
    fn changed_status_moves_last_transition_time() {
        let t0 = ts("2026-01-01T00:00:00Z");
        let t1 = ts("2026-01-02T00:00:00Z");
        let mut conds = vec![new_condition(
            READY,
            ConditionStatus::True,
            "Valid",
            "ok",
            Some(1),
            t0,
        )];
        assert!(set_condition(
            &mut conds,
            new_condition(
                READY,
                ConditionStatus::False,
                "InvalidSchedule",
                "bad",
                Some(2),
                t1
            )
        ));
        assert_eq!(conds[0].last_transition_time.0, t1);
        assert_eq!(conds[0].reason, "InvalidSchedule");
    }

    #[test]
    fn new_generation_with_same_status_is_a_change() {
        let t0 = ts("2026-01-01T00:00:00Z");
        let mut conds = vec![new_condition(
            READY,
            ConditionStatus::True,
            "Valid",
            "ok",
            Some(1),
            t0,
        )];
        assert!(set_condition(
            &mut conds,
            new_condition(READY, ConditionStatus::True, "Valid", "ok", Some(2), t0)
        ));
    }

    #[test]
    fn health_sets_exactly_one_abnormal_condition_true() {
        let t0 = ts("2026-01-01T00:00:00Z");
        let status_of = |conds: &[Condition], t: &str| find(conds, t).map(|c| c.status.clone());
        let mut conds = vec![];
        assert!(set_health(
            &mut conds,
            &Health::reconciling("Rollout", "patching nodes"),
            Some(3),
            t0
        ));
        assert_eq!(status_of(&conds, RECONCILING).as_deref(), Some("True"));
        assert_eq!(status_of(&conds, STALLED).as_deref(), Some("False"));
        assert_eq!(find(&conds, RECONCILING).expect("set").reason, "Rollout");
        assert!(conds.iter().all(|c| c.observed_generation == Some(3)));

        assert!(set_health(
            &mut conds,
            &Health::stalled("ErrorBudgetExceeded", "3 of 4 nodes failed"),
            Some(3),
            t0
        ));
        assert_eq!(status_of(&conds, RECONCILING).as_deref(), Some("False"));
        assert_eq!(status_of(&conds, STALLED).as_deref(), Some("True"));
        assert_eq!(
            find(&conds, STALLED).expect("set").message,
            "3 of 4 nodes failed"
        );

        assert!(set_health(&mut conds, &Health::Current, Some(4), t0));
        assert!(!is_true(&conds, RECONCILING) && !is_true(&conds, STALLED));
        assert!(
            !set_health(&mut conds, &Health::Current, Some(4), t0),
            "the same health again is no change"
        );
        assert!(set_health(&mut conds, &Health::Current, Some(5), t0));
    }

    #[test]
    fn long_messages_are_truncated_on_a_char_boundary() {
        let c = new_condition(
            READY,
            ConditionStatus::False,
            "X",
            "é".repeat(5000),
            None,
            ts("2026-01-01T00:00:00Z"),
        );
        assert!(c.message.len() <= 4096 + '…'.len_utf8());
        assert!(c.message.ends_with('…'));
    }

    #[test]
    fn statuses_differing_only_in_condition_times_are_the_same() {
        let at = |t: &str| {
            vec![new_condition(
                READY,
                ConditionStatus::True,
                "Started",
                "run started",
                Some(1),
                ts(t),
            )]
        };
        let a = crate::api::PatchRunStatus {
            conditions: at("2026-01-01T00:00:00Z"),
            ..Default::default()
        };
        let mut b = crate::api::PatchRunStatus {
            conditions: at("2026-01-02T00:00:00Z"),
            ..Default::default()
        };
        assert!(same_status(&a, &b));
        b.phase = crate::api::RunPhase::Running;
        assert!(!same_status(&a, &b), "other fields count");
        b.phase = a.phase;
        b.conditions[0].reason = "Other".into();
        assert!(!same_status(&a, &b), "condition content counts");
    }
}
