//! kstatus-style conditions (`Ready`, `Progressing`, `Degraded`, `Open`) on `meta/v1` Condition.
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
