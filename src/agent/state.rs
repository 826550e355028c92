//! The agent's state on the node, kept under the host root so it survives pod restarts and
//! reboots:
//!
//! - `/var/lib/nodepatch/first-seen.json`: when this node first saw each candidate version.
//!   apt has no release dates, so `approveAfterDays` counts from that day.
//! - `/var/lib/nodepatch/last-operation.json`: the last operation the agent finished (run,
//!   type, boot ID, failed packages), so that an agent restarted by a reboot re-scans instead
//!   of installing again.
//! - `/var/lib/nodepatch/install-started.json`: an install under way (run, boot ID). Present
//!   at start-up without a finished record of that run, it means the previous agent died
//!   mid-install: the new one repairs the package database and reports the run Failed.
//! - `/var/lib/nodepatch/reboot-requested.json`: the boot the agent asked to leave, so it asks
//!   once per boot.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::host::{HostError, HostRoot};
use crate::api::Operation;
use crate::baseline::model::PackageRef;

/// Host path of the first-seen record.
pub const FIRST_SEEN_PATH: &str = "/var/lib/nodepatch/first-seen.json";
/// Host path of the last-operation record.
pub const LAST_OPERATION_PATH: &str = "/var/lib/nodepatch/last-operation.json";
/// Host path of the install-under-way marker.
pub const INSTALL_STARTED_PATH: &str = "/var/lib/nodepatch/install-started.json";
/// Host path of the reboot request record.
pub const REBOOT_REQUESTED_PATH: &str = "/var/lib/nodepatch/reboot-requested.json";
/// Entries not offered for this long are forgotten (bounds the file; a version that comes back
/// later counts as new).
pub const FIRST_SEEN_RETENTION: SignedDuration = SignedDuration::from_hours(90 * 24);

/// Errors of the state files.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The file exists but is not what we wrote.
    #[error("{path}: not a valid nodepatch state file: {source}")]
    Corrupt {
        /// Host path.
        path: &'static str,
        /// Parse error.
        #[source]
        source: serde_json::Error,
    },
    /// Reading or writing failed.
    #[error(transparent)]
    Host(#[from] HostError),
}

impl StateError {
    /// Bounded category for metrics and report reasons.
    pub fn category(&self) -> &'static str {
        match self {
            StateError::Corrupt { .. } => "StateFileCorrupt",
            StateError::Host(e) => e.category(),
        }
    }
}

/// When one candidate version was first and last offered to this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sighting {
    /// First scan that saw it.
    pub first_seen: Timestamp,
    /// Latest scan that saw it.
    pub last_seen: Timestamp,
}

/// The first-seen record: `name:arch=version` → sighting.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirstSeen {
    /// Format version of the file.
    #[serde(default)]
    pub format: u32,
    /// Sightings by `name:arch=version`.
    #[serde(default)]
    pub versions: BTreeMap<String, Sighting>,
}

/// The key of one candidate version in [`FirstSeen`].
pub fn version_key(name: &str, arch: &str, version: &str) -> String {
    format!("{name}:{arch}={version}")
}

impl FirstSeen {
    /// Load the record; a missing file is an empty record.
    pub fn load(root: &HostRoot) -> Result<FirstSeen, StateError> {
        match root.read_optional(FIRST_SEEN_PATH)? {
            None => Ok(FirstSeen::default()),
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt {
                path: FIRST_SEEN_PATH,
                source,
            }),
        }
    }

    /// Record that `key` is offered at `now`; returns when it was first seen.
    pub fn observe(&mut self, key: String, now: Timestamp) -> Timestamp {
        let sighting = self.versions.entry(key).or_insert(Sighting {
            first_seen: now,
            last_seen: now,
        });
        if now > sighting.last_seen {
            sighting.last_seen = now;
        }
        sighting.first_seen
    }

    /// When `key` was first seen, if ever.
    pub fn first_seen(&self, key: &str) -> Option<Timestamp> {
        self.versions.get(key).map(|s| s.first_seen)
    }

    /// Forget versions not offered within [`FIRST_SEEN_RETENTION`] before `now`.
    pub fn prune(&mut self, now: Timestamp) {
        self.versions
            .retain(|_, s| now.duration_since(s.last_seen) <= FIRST_SEEN_RETENTION);
    }

    /// Write the record (atomically).
    pub fn save(&self, root: &HostRoot) -> Result<(), StateError> {
        let record = FirstSeen {
            format: 1,
            versions: self.versions.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&record).map_err(|source| StateError::Corrupt {
            path: FIRST_SEEN_PATH,
            source,
        })?;
        root.write_atomic(FIRST_SEEN_PATH, &bytes)?;
        Ok(())
    }
}

/// The last operation the agent finished on this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastOperation {
    /// PatchRun name (empty for local operations).
    pub run: String,
    /// Scan or Install.
    pub operation: Operation,
    /// Boot ID the operation finished under.
    #[serde(rename = "bootID")]
    pub boot_id: String,
    /// When it finished.
    pub finished_at: Timestamp,
    /// True when it succeeded.
    pub succeeded: bool,
    /// Packages whose install failed (kept so a confirming scan still reports them Failed).
    #[serde(default)]
    pub failed: Vec<PackageRef>,
}

impl LastOperation {
    /// Load the record, `None` when there is none.
    pub fn load(root: &HostRoot) -> Result<Option<LastOperation>, StateError> {
        match root.read_optional(LAST_OPERATION_PATH)? {
            None => Ok(None),
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|source| StateError::Corrupt {
                        path: LAST_OPERATION_PATH,
                        source,
                    })
            }
        }
    }

    /// Write the record (atomically).
    pub fn save(&self, root: &HostRoot) -> Result<(), StateError> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|source| StateError::Corrupt {
            path: LAST_OPERATION_PATH,
            source,
        })?;
        root.write_atomic(LAST_OPERATION_PATH, &bytes)?;
        Ok(())
    }

    /// True when this record is a finished install of `run`: a restarted agent (after the
    /// reboot that install asked for, or a crash) must not install again, only confirm by a scan.
    pub fn install_done_for(&self, run: &str) -> bool {
        !run.is_empty() && self.run == run && self.operation == Operation::Install
    }
}

/// A small JSON record under the host root (a marker with a few fields).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunMarker {
    /// PatchRun name.
    pub run: String,
    /// Boot ID when it was written.
    #[serde(rename = "bootID")]
    pub boot_id: String,
    /// When it was written.
    pub at: Timestamp,
}

impl RunMarker {
    /// Load the marker at `path`, `None` when absent.
    pub fn load(root: &HostRoot, path: &'static str) -> Result<Option<RunMarker>, StateError> {
        match root.read_optional(path)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| StateError::Corrupt { path, source }),
        }
    }

    /// Write the marker at `path` (atomically).
    pub fn save(&self, root: &HostRoot, path: &'static str) -> Result<(), StateError> {
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|source| StateError::Corrupt { path, source })?;
        root.write_atomic(path, &bytes)?;
        Ok(())
    }

    /// Remove the marker at `path` (absent is fine).
    pub fn clear(root: &HostRoot, path: &'static str) -> Result<(), StateError> {
        root.remove_optional(path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_seen_keeps_the_first_day_and_prunes_old_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = HostRoot::new(dir.path());
        let day1: Timestamp = "2026-01-01T00:00:00Z".parse().expect("ts");
        let day2: Timestamp = "2026-01-02T00:00:00Z".parse().expect("ts");
        let mut record = FirstSeen::load(&root).expect("empty");
        assert_eq!(record.observe(version_key("a", "amd64", "1"), day1), day1);
        record.save(&root).expect("save");
        let mut record = FirstSeen::load(&root).expect("load");
        assert_eq!(record.observe(version_key("a", "amd64", "1"), day2), day1);
        record.observe(version_key("b", "all", "2"), day2);
        let much_later = day2
            .checked_add(SignedDuration::from_hours(91 * 24))
            .expect("ts");
        record.observe(version_key("b", "all", "2"), much_later);
        record.prune(much_later);
        assert_eq!(record.first_seen("a:amd64=1"), None);
        assert_eq!(record.first_seen("b:all=2"), Some(day2));
    }

    #[test]
    fn corrupt_state_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = HostRoot::new(dir.path());
        root.write_atomic(FIRST_SEEN_PATH, b"{not json")
            .expect("write");
        assert_eq!(
            FirstSeen::load(&root).expect_err("corrupt").category(),
            "StateFileCorrupt"
        );
    }

    #[test]
    fn last_operation_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = HostRoot::new(dir.path());
        assert!(LastOperation::load(&root).expect("none").is_none());
        let op = LastOperation {
            run: "r1".into(),
            operation: Operation::Install,
            boot_id: "b1".into(),
            finished_at: "2026-01-01T00:00:00Z".parse().expect("ts"),
            succeeded: true,
            failed: vec![PackageRef {
                name: "np-fail".into(),
                arch: None,
                version: Some("1.0-2".into()),
            }],
        };
        op.save(&root).expect("save");
        let loaded = LastOperation::load(&root).expect("load").expect("some");
        assert_eq!(loaded, op);
        assert!(loaded.install_done_for("r1"));
        assert!(!loaded.install_done_for("r2"));
        assert!(!loaded.install_done_for(""));
    }

    #[test]
    fn run_markers_round_trip_and_clear() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = HostRoot::new(dir.path());
        assert!(
            RunMarker::load(&root, INSTALL_STARTED_PATH)
                .expect("none")
                .is_none()
        );
        let m = RunMarker {
            run: "r1".into(),
            boot_id: "b1".into(),
            at: "2026-01-01T00:00:00Z".parse().expect("ts"),
        };
        m.save(&root, INSTALL_STARTED_PATH).expect("save");
        assert_eq!(
            RunMarker::load(&root, INSTALL_STARTED_PATH).expect("load"),
            Some(m)
        );
        RunMarker::clear(&root, INSTALL_STARTED_PATH).expect("clear");
        RunMarker::clear(&root, INSTALL_STARTED_PATH).expect("clear twice");
        assert!(
            RunMarker::load(&root, INSTALL_STARTED_PATH)
                .expect("none")
                .is_none()
        );
    }
}
