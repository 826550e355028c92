//! Which nodes runs left cordoned, pure: the input of the `nodepatch_nodes_cordoned` gauge and
//! its `NodepatchNodeStuckCordoned` alert.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;

use crate::api::RunTarget;

/// One run as this decision reads it.
#[derive(Clone, Copy, Debug)]
pub struct RunCordons<'a> {
    /// When the run started (None: not started).
    pub started: Option<Timestamp>,
    /// Its name (breaks ties).
    pub name: &'a str,
    /// Its targets.
    pub targets: &'a [RunTarget],
}

/// Nodes whose latest run (by start, then name) is done with them but recorded them as still
/// cordoned by it: a node that failed in its reboot sequence and stays cordoned, whether that run
/// is still running or ended long ago. In-flight cordons (draining, rebooting, verifying) are
/// not here: they are bounded by the run's own timeouts. A later run of the node decides alone,
/// so a node another run has since handled is not counted. The caller checks that each node is
/// still unschedulable (someone may have uncordoned it by hand).
pub fn left_cordoned<'a>(runs: impl IntoIterator<Item = RunCordons<'a>>) -> Vec<String> {
    let mut latest: BTreeMap<&str, ((Option<Timestamp>, &str), &RunTarget)> = BTreeMap::new();
    for run in runs {
        let order = (run.started, run.name);
        for t in run.targets {
            match latest.get(t.node.as_str()) {
                Some((seen, _)) if *seen >= order => {}
                _ => {
                    latest.insert(t.node.as_str(), (order, t));
                }
            }
        }
    }
    latest
        .into_iter()
        .filter(|(_, (_, t))| t.cordoned && t.state.is_done())
        .map(|(node, _)| node.to_string())
        .collect()
}

/// Nodes an aborted run (deleted, or ended `Failed` because it cannot proceed) holds cordoned
/// in the middle of its reboot sequence: the run cordoned them and will never finish with them,
/// so the abort uncordons them. Nodes the run is done with keep their state (a node that failed
/// to come back stays cordoned on purpose).
pub fn cordoned_in_flight(targets: &[RunTarget]) -> Vec<String> {
    targets
        .iter()
        .filter(|t| t.cordoned && !t.state.is_done())
        .map(|t| t.node.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::TargetState;

    fn target(node: &str, state: TargetState, cordoned: bool) -> RunTarget {
        RunTarget {
            node: node.into(),
            state,
            cordoned,
            ..Default::default()
        }
    }

    fn at(s: &str) -> Option<Timestamp> {
        Some(s.parse().expect("ts"))
    }

    #[test]
    fn an_abort_releases_only_the_nodes_it_holds_mid_sequence() {
        let targets = [
            target("draining", TargetState::Draining, true),
            target("rebooting", TargetState::Rebooting, true),
            target("cordoned-by-someone-else", TargetState::Draining, false),
            target("left", TargetState::Failed, true),
            target("pending", TargetState::Pending, false),
        ];
        assert_eq!(cordoned_in_flight(&targets), ["draining", "rebooting"]);
    }

    #[test]
    fn a_node_failed_and_left_cordoned_counts_until_a_later_run_handles_it() {
        let old = [
            target("a", TargetState::Failed, true),
            target("b", TargetState::Succeeded, false),
            target("c", TargetState::Draining, true),
        ];
        let runs = [RunCordons {
            started: at("2026-12-01T00:00:00Z"),
            name: "r1",
            targets: &old,
        }];
        assert_eq!(
            left_cordoned(runs),
            ["a"],
            "the failed node left cordoned counts, even after its run ended; c is in flight"
        );
        let newer = [target("a", TargetState::Succeeded, false)];
        let both = [
            runs[0],
            RunCordons {
                started: at("2026-12-02T00:00:00Z"),
                name: "r2",
                targets: &newer,
            },
        ];
        assert!(
            left_cordoned(both).is_empty(),
            "a later run took node a over"
        );
        // Order of the input does not matter.
        assert!(left_cordoned([both[1], both[0]]).is_empty());
    }
}
