//! The package backends behind one interface, so Scan and Install share one flow
//! (`operation.rs`) across apt, dnf, zypper and apk: read the node (installed packages,
//! candidates with their advisory metadata, reboot need), refresh the metadata, and install an
//! exact set of approved versions, reading back what really happened.
//!
//! | family | backend | inventory | candidates | install |
//! |---|---|---|---|---|
//! | Deb | [`Backend::Apt`] | dpkg status, in-process | apt lists, in-process | `apt-get install name=version` |
//! | Rpm | [`Backend::Dnf`] | `rpm -qa` | `dnf repoquery --upgrades` + cached updateinfo | `dnf upgrade name-evr.arch` |
//! | Zypper | [`Backend::Zypper`] | `rpm -qa` | `zypper --xmlout list-patches --all` + cached updateinfo | `zypper install -t patch` |
//! | Apk | [`Backend::Apk`] | `/lib/apk/db/installed`, in-process | `apk version -l '<'` + secdb | `apk upgrade name` |

use std::fmt;

use jiff::Timestamp;

pub use super::apt::reboot::RebootState;
use super::operation::NodeAgent;
use super::os::DetectedOs;
use super::state::FirstSeen;
use crate::api::{PackageFamily, RebootOption};
use crate::baseline::model::{Candidate, InstalledPackage};

/// A backend failure: what went wrong and its bounded category (the report's reason).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendError {
    /// Bounded category for metrics and report reasons.
    pub category: &'static str,
    /// The message.
    pub message: String,
}

impl BackendError {
    /// An error of `category`.
    pub fn new(category: &'static str, message: impl Into<String>) -> BackendError {
        BackendError {
            category,
            message: message.into(),
        }
    }

    /// Bounded category for metrics and report reasons.
    pub fn category(&self) -> &'static str {
        self.category
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BackendError {}

/// What a backend read from the node.
#[derive(Clone, Debug, Default)]
pub struct NodePackages {
    /// Installed packages in the evaluation's model.
    pub installed: Vec<InstalledPackage>,
    /// Candidates in the evaluation's model.
    pub candidates: Vec<Candidate>,
    /// The node's reboot need.
    pub reboot: RebootState,
    /// Upgrades the package manager keeps back (apt holds): `(name, version)`; evaluated but
    /// never installed.
    pub held: Vec<(String, String)>,
    /// Things worth saying in the report message (interrupted dpkg, unreadable metadata).
    pub notes: Vec<String>,
    /// Architecture of targets whose candidate names none (apt: dpkg's native arch).
    pub native_arch: Option<String>,
}

/// One package version to install, with the advisories that carry it (zypper installs patches).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct InstallTarget {
    /// Package name.
    pub name: String,
    /// Architecture, when known.
    pub arch: Option<String>,
    /// Version in the family's syntax.
    pub version: String,
    /// Advisory ids / patch names of the candidate.
    pub advisories: Vec<String>,
}

/// Outcome of one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetOutcome {
    /// The target.
    pub target: InstallTarget,
    /// Installed at (at least) the target version, read back from the package database.
    pub installed: bool,
    /// Deliberately left out (not a failure): the reboot option forbids what installing it
    /// takes. It stays Missing.
    pub skipped: bool,
    /// Why not, when not.
    pub reason: Option<String>,
}

/// What an install did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstallReport {
    /// One outcome per target, in target order.
    pub outcomes: Vec<TargetOutcome>,
    /// One line per package-manager run: what was asked and how it ended.
    pub runs: Vec<String>,
    /// The package manager said the node needs a reboot (zypper exit 102).
    pub reboot_required: bool,
}

impl InstallReport {
    /// Targets that were installed.
    pub fn installed(&self) -> impl Iterator<Item = &TargetOutcome> {
        self.outcomes.iter().filter(|o| o.installed)
    }

    /// Targets that failed.
    pub fn failed(&self) -> impl Iterator<Item = &TargetOutcome> {
        self.outcomes.iter().filter(|o| !o.installed && !o.skipped)
    }

    /// Targets deliberately left out.
    pub fn skipped(&self) -> impl Iterator<Item = &TargetOutcome> {
        self.outcomes.iter().filter(|o| !o.installed && o.skipped)
    }
}

/// What to install and under which constraints.
#[derive(Clone, Copy, Debug)]
pub struct InstallRequest<'a> {
    /// The approved versions.
    pub targets: &'a [InstallTarget],
    /// rejectedPatches under `rejectedPatchesAction: Block` (kept out of the transaction).
    pub blocked_patterns: &'a [String],
    /// Whether updates that need a reboot may be installed (zypper's interactive patches).
    pub reboot_option: RebootOption,
}

/// The package backend of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Debian, Ubuntu.
    Apt,
    /// RHEL family, Amazon Linux 2023, Fedora.
    Dnf,
    /// SLES, openSUSE.
    Zypper,
    /// Alpine.
    Apk,
}

impl Backend {
    /// The backend of a package family.
    pub fn for_family(family: PackageFamily) -> Backend {
        match family {
            PackageFamily::Deb => Backend::Apt,
            PackageFamily::Rpm => Backend::Dnf,
            PackageFamily::Zypper => Backend::Zypper,
            PackageFamily::Apk => Backend::Apk,
        }
    }

    /// Short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Apt => "apt",
            Backend::Dnf => "dnf",
            Backend::Zypper => "zypper",
            Backend::Apk => "apk",
        }
    }

    /// Refresh the repository metadata (`apt-get update`, `dnf makecache`, `zypper refresh`,
    /// `apk update`). A failure is reported as a note; the cached metadata is used.
    pub fn refresh(self, agent: &NodeAgent) -> Result<(), BackendError> {
        match self {
            Backend::Apt => super::apt::install::refresh_lists(agent.executor.as_ref(), &agent.apt)
                .map(|_| ())
                .map_err(|e| BackendError::new(e.category(), e.to_string())),
            Backend::Dnf => super::rpm::dnf::refresh(agent),
            Backend::Zypper => super::zypper::refresh(agent),
            Backend::Apk => super::apk::refresh(agent),
        }
    }

    /// The note when a refresh failed.
    pub fn refresh_failure_note(self, error: &BackendError) -> String {
        match self {
            Backend::Apt => format!(
                "apt-get update failed, using the lists of the last successful update: {error}"
            ),
            Backend::Dnf => {
                format!("dnf makecache failed, using the cached metadata: {error}")
            }
            Backend::Zypper => {
                format!("zypper refresh failed, using the cached metadata: {error}")
            }
            Backend::Apk => format!("apk update failed, using the cached indexes: {error}"),
        }
    }

    /// Before an install: repair what an interrupted run left behind (apt: `dpkg --configure
    /// -a`). Returns a note for the report, if any.
    pub fn prepare_install(self, agent: &NodeAgent) -> Result<Option<String>, BackendError> {
        match self {
            Backend::Apt => super::apt::prepare_install(agent),
            Backend::Dnf | Backend::Zypper | Backend::Apk => Ok(None),
        }
    }

    /// Read the node: installed packages, candidates (first sightings recorded in
    /// `first_seen`), reboot need.
    pub fn read(
        self,
        agent: &NodeAgent,
        detected: &DetectedOs,
        first_seen: &mut FirstSeen,
        now: Timestamp,
    ) -> Result<NodePackages, BackendError> {
        match self {
            Backend::Apt => super::apt::read_node(agent, detected, first_seen, now),
            Backend::Dnf => super::rpm::dnf::read_node(agent, detected, first_seen, now),
            Backend::Zypper => super::zypper::read_node(agent, detected, first_seen, now),
            Backend::Apk => super::apk::read_node(agent, detected, first_seen, now),
        }
    }

    /// Install exactly `request.targets`, reading back what was installed.
    pub fn install(
        self,
        agent: &NodeAgent,
        before: &NodePackages,
        request: &InstallRequest<'_>,
    ) -> Result<InstallReport, BackendError> {
        match self {
            Backend::Apt => super::apt::install_targets(agent, before, request),
            Backend::Dnf => super::rpm::dnf::install(agent, request),
            Backend::Zypper => super::zypper::install(agent, request),
            Backend::Apk => super::apk::install(agent, request),
        }
    }
}
