//! Run history: a policy keeps its `historyLimit` (at least 1) newest finished runs; older
//! finished runs are deleted. Active runs are never pruned.

use super::model::RunRecord;

/// Names of the finished runs beyond `history_limit`, oldest last (`runs` newest first).
pub fn prune(runs: &[&RunRecord], history_limit: u32) -> Vec<String> {
    runs.iter()
        .filter(|r| r.phase.is_finished())
        .skip(history_limit.max(1) as usize)
        .map(|r| r.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Operation, RunPhase, RunTrigger};
    use k8s_openapi::jiff::Timestamp;

    fn record(name: &str, phase: RunPhase) -> RunRecord {
        RunRecord {
            name: name.into(),
            operation: Operation::Scan,
            trigger: RunTrigger::Schedule,
            created: Timestamp::UNIX_EPOCH,
            phase,
            completion_time: None,
        }
    }

    #[test]
    fn active_runs_are_kept_and_at_least_one_finished_run_stays() {
        let runs = [
            record("r4", RunPhase::Running),
            record("r3", RunPhase::Succeeded),
            record("r2", RunPhase::Failed),
            record("r1", RunPhase::Succeeded),
        ];
        let refs: Vec<&RunRecord> = runs.iter().collect();
        assert_eq!(prune(&refs, 0), ["r2", "r1"]);
        assert_eq!(prune(&refs, 2), ["r1"]);
        assert!(prune(&refs, 10).is_empty());
    }
}
