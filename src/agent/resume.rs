//! The agent's resume decision: what to do with the operation it was started for, given what
//! the node remembers of earlier agents (the last finished operation and the install-started
//! marker). Pure: `cluster.rs::run` loads the records, asks [`resume`], and does the I/O.
//!
//! An install is never repeated: an install of this run that already finished (before a
//! reboot, before the pod restarted) is confirmed with a scan that keeps its failures, and an
//! install of this run that started and never finished (the previous agent died in the middle)
//! is repaired and reported Failed for this node instead of installing again.

use jiff::Timestamp;

use super::state::{LastOperation, RunMarker};
use crate::api::{Compliance, Operation};
use crate::baseline::model::PackageRef;

/// What the agent does instead of, or as, the operation it was started for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resume {
    /// Run the operation as asked (a scan, or an install this node has not started for the run).
    AsAsked,
    /// An install of this run started at `started_at` and never finished: repair the package
    /// database, record the install as failed, and report the run interrupted for this node.
    ReportInterrupted {
        /// When the interrupted install started (from the marker).
        started_at: Timestamp,
    },
    /// An install of this run already finished: a confirming scan that keeps reporting the
    /// packages that failed then.
    ConfirmingScan {
        /// Packages whose install failed in that install.
        previous_failures: Vec<PackageRef>,
        /// That install did not succeed, so the run's verdict for this node stays Failed.
        install_failed: bool,
    },
}

/// Decide how to resume: `requested` for `run` (empty for no run), with the node's last
/// finished operation and install-started marker (`None` when absent or unreadable).
pub fn resume(
    requested: Operation,
    run: &str,
    last: Option<&LastOperation>,
    install_started: Option<&RunMarker>,
) -> Resume {
    let done = last.filter(|l| l.install_done_for(run));
    let install_run = requested == Operation::Install && !run.is_empty();
    if install_run
        && done.is_none()
        && let Some(marker) = install_started.filter(|m| m.run == run)
    {
        return Resume::ReportInterrupted {
            started_at: marker.at,
        };
    }
    match done {
        Some(last) => Resume::ConfirmingScan {
            previous_failures: last.failed.clone(),
            install_failed: !last.succeeded,
        },
        None => Resume::AsAsked,
    }
}

/// The record of an interrupted install of `run`: finished (so it is never repeated) and
/// failed, on the boot the node is on.
pub fn interrupted_install(run: &str, boot_id: String, now: Timestamp) -> LastOperation {
    LastOperation {
        run: run.to_string(),
        operation: Operation::Install,
        boot_id,
        finished_at: now,
        succeeded: false,
        failed: Vec::new(),
    }
}

/// After an interrupted install was repaired, whether the confirming scan leaves the node
/// Failed for the run. The transaction the dead agent started runs outside its pod and may
/// well have completed: a scan that succeeded and found the node Compliant means the install
/// did what it was for, so it is not reported Failed; anything short of that is.
pub fn interrupted_install_failed(scan_compliance: Compliance, scan_succeeded: bool) -> bool {
    !(scan_succeeded && scan_compliance == Compliance::Compliant)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn last(run: &str, operation: Operation, succeeded: bool, failed: &[&str]) -> LastOperation {
        LastOperation {
            run: run.to_string(),
            operation,
            boot_id: "boot-1".to_string(),
            finished_at: at("2026-01-01T02:30:00Z"),
            succeeded,
            failed: failed
                .iter()
                .map(|name| PackageRef {
                    name: name.to_string(),
                    arch: None,
                    version: Some("1.0-2".to_string()),
                })
                .collect(),
        }
    }

    fn started(run: &str) -> RunMarker {
        RunMarker {
            run: run.to_string(),
            boot_id: "boot-1".to_string(),
            at: at("2026-01-01T02:00:00Z"),
        }
    }

    #[test]
    fn a_fresh_install_runs_as_asked() {
        assert_eq!(
            resume(Operation::Install, "r1", None, None),
            Resume::AsAsked
        );
        let other_run = last("r0", Operation::Install, true, &[]);
        assert_eq!(
            resume(Operation::Install, "r1", Some(&other_run), None),
            Resume::AsAsked
        );
    }

    #[test]
    fn a_scan_runs_as_asked_whatever_the_marker_says() {
        assert_eq!(
            resume(Operation::Scan, "r1", None, Some(&started("r1"))),
            Resume::AsAsked
        );
    }

    #[test]
    fn a_finished_install_of_the_run_is_confirmed_with_a_scan_keeping_its_failures() {
        let done = last("r1", Operation::Install, false, &["np-fail"]);
        let Resume::ConfirmingScan {
            previous_failures,
            install_failed,
        } = resume(Operation::Install, "r1", Some(&done), None)
        else {
            panic!("expected a confirming scan");
        };
        assert_eq!(previous_failures, done.failed);
        assert!(install_failed);
        let ok = last("r1", Operation::Install, true, &[]);
        assert_eq!(
            resume(Operation::Install, "r1", Some(&ok), None),
            Resume::ConfirmingScan {
                previous_failures: Vec::new(),
                install_failed: false,
            }
        );
    }

    #[test]
    fn a_scan_of_a_run_whose_install_finished_also_keeps_its_failures() {
        let done = last("r1", Operation::Install, false, &["np-fail"]);
        assert!(matches!(
            resume(Operation::Scan, "r1", Some(&done), None),
            Resume::ConfirmingScan {
                install_failed: true,
                ..
            }
        ));
    }

    #[test]
    fn a_finished_install_wins_over_a_stale_marker() {
        let done = last("r1", Operation::Install, true, &[]);
        assert!(matches!(
            resume(Operation::Install, "r1", Some(&done), Some(&started("r1"))),
            Resume::ConfirmingScan { .. }
        ));
    }

    #[test]
    fn an_install_started_and_never_finished_is_reported_interrupted() {
        let scan_before = last("r1", Operation::Scan, true, &[]);
        assert_eq!(
            resume(
                Operation::Install,
                "r1",
                Some(&scan_before),
                Some(&started("r1"))
            ),
            Resume::ReportInterrupted {
                started_at: at("2026-01-01T02:00:00Z"),
            }
        );
    }

    #[test]
    fn a_marker_of_another_run_or_without_a_run_is_ignored() {
        assert_eq!(
            resume(Operation::Install, "r1", None, Some(&started("r0"))),
            Resume::AsAsked
        );
        assert_eq!(
            resume(Operation::Install, "", None, Some(&started(""))),
            Resume::AsAsked
        );
    }

    #[test]
    fn the_recorded_interrupted_install_resumes_as_a_failed_confirming_scan() {
        let now = at("2026-01-01T03:00:00Z");
        let record = interrupted_install("r1", "boot-2".to_string(), now);
        assert_eq!(record.finished_at, now);
        assert_eq!(
            resume(Operation::Install, "r1", Some(&record), None),
            Resume::ConfirmingScan {
                previous_failures: Vec::new(),
                install_failed: true,
            }
        );
    }

    #[test]
    fn an_interrupted_install_that_left_the_node_compliant_is_not_failed() {
        assert!(!interrupted_install_failed(Compliance::Compliant, true));
        assert!(interrupted_install_failed(Compliance::NonCompliant, true));
        assert!(interrupted_install_failed(Compliance::Unknown, true));
        assert!(interrupted_install_failed(Compliance::Compliant, false));
    }
}
