//! What a backend is: the one place that states what every package backend reads from a node
//! ([`NodePackages`]), is asked to install ([`InstallRequest`], [`InstallTarget`]), reports back
//! ([`InstallReport`], [`TargetOutcome`], [`RebootState`]), works with ([`NodeAgent`]) and how it
//! fails ([`BackendError`]). The backends build on this floor; nothing here knows a backend's
//! code, only the error types of the reads they share (host, dpkg, apt lists, updateinfo).

use std::sync::Arc;

use super::apt::dpkg::DpkgError;
use super::apt::install::InstallError;
use super::apt::lists::ListsError;
use super::command::CommandFailed;
use super::rpm::updateinfo::UpdateInfoError;
use super::sources::SourcesError;
use crate::agent::host::command::HostExecutor;
use crate::agent::host::{HostError, HostRoot};
use crate::api::RebootOption;
use crate::baseline::model::{Candidate, InstalledPackage};

/// Where a backend works: the host root and how host commands run. Backend-specific settings
/// (apt's timeouts and lock wait) live in the backend value ([`super::Backend`]), not here.
#[derive(Clone)]
pub struct NodeAgent {
    /// The host's root filesystem.
    pub root: HostRoot,
    /// Runs the host's own programs.
    pub executor: Arc<dyn HostExecutor>,
}

/// A backend failure. Each variant has a bounded [`category`](BackendError::category) (the
/// report's reason); the message is what the report says.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Reading the host or starting a host command failed.
    #[error(transparent)]
    Host(#[from] HostError),
    /// The host has no dnf (Amazon Linux 2's yum is not supported).
    #[error("{0} (the dnf backend needs the host's dnf; Amazon Linux 2's yum is not supported)")]
    DnfMissing(#[source] HostError),
    /// A package-manager command ran and failed.
    #[error(transparent)]
    Command(#[from] CommandFailed),
    /// dpkg's database could not be read.
    #[error(transparent)]
    Dpkg(#[from] DpkgError),
    /// apt's lists could not be read.
    #[error(transparent)]
    Lists(#[from] ListsError),
    /// An apt or dpkg change failed.
    #[error(transparent)]
    AptInstall(#[from] InstallError),
    /// `dpkg --audit` before an install could not run.
    #[error("cannot check dpkg: {0}")]
    DpkgCheck(#[source] InstallError),
    /// A cached updateinfo file could not be read.
    #[error(transparent)]
    UpdateInfo(#[from] UpdateInfoError),
    /// The baseline's alternative patch sources could not be used.
    #[error(transparent)]
    Sources(#[from] SourcesError),
    /// A line of `rpm -qa` output could not be parsed.
    #[error("{0}")]
    RpmQueryMalformed(String),
    /// `rpm -qa` listed nothing: no rpm database at the host root.
    #[error("`{command}` through {executor} listed no installed package: no rpm database there")]
    RpmDatabaseEmpty {
        /// The command run.
        command: String,
        /// The executor that ran it.
        executor: String,
    },
    /// A line of `dnf repoquery` output could not be parsed.
    #[error("{0}")]
    DnfQueryMalformed(String),
    /// zypper's XML output could not be parsed.
    #[error("{0}")]
    ZypperOutputMalformed(String),
    /// zypper's `list-patches` reported errors.
    #[error("zypper list-patches: {}", .0.join("; "))]
    ZypperReportedErrors(Vec<String>),
    /// Another zypper or libzypp process holds the lock (exit code 7).
    #[error("`{command}`: another zypper or libzypp process holds the lock (exit code 7): {tail}")]
    ZypperLocked {
        /// The command run.
        command: String,
        /// Last lines of its output.
        tail: String,
    },
    /// apk's installed database could not be parsed.
    #[error("{0}")]
    ApkDatabaseMalformed(String),
    /// An Alpine secdb document could not be parsed.
    #[error("secdb: {0}")]
    ApkSecdbMalformed(#[source] serde_json::Error),
    /// `rejectedPatchesAction: Block` cannot be enforced with this rejectedPatches entry; the
    /// install is refused before any command runs (never run with the entry left out).
    #[error("rejectedPatchesAction Block: cannot enforce rejected pattern {pattern:?}: {reason}")]
    BlockUnenforceable {
        /// The rejectedPatches entry.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// A target is not a name and version the package manager would take as such; refused
    /// before any command runs.
    #[error(
        "refusing to install {name:?} version {version:?}{}",
        .reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default()
    )]
    InvalidInstallTarget {
        /// Package name.
        name: String,
        /// Version.
        version: String,
        /// Why, when known.
        reason: Option<String>,
    },
}

impl BackendError {
    /// Bounded category for metrics and report reasons.
    pub fn category(&self) -> &'static str {
        match self {
            BackendError::Host(e) | BackendError::DnfMissing(e) => e.category(),
            BackendError::Command(e) => e.category(),
            BackendError::Dpkg(e) => e.category(),
            BackendError::Lists(e) => e.category(),
            BackendError::AptInstall(e) | BackendError::DpkgCheck(e) => e.category(),
            BackendError::UpdateInfo(e) => e.category(),
            BackendError::Sources(e) => e.category(),
            BackendError::RpmQueryMalformed(_) => "RpmQueryMalformed",
            BackendError::RpmDatabaseEmpty { .. } => "RpmDatabaseEmpty",
            BackendError::DnfQueryMalformed(_) => "DnfQueryMalformed",
            BackendError::ZypperOutputMalformed(_) => "ZypperOutputMalformed",
            BackendError::ZypperReportedErrors(_) => "ZypperListPatchesFailed",
            BackendError::ZypperLocked { .. } => "ZypperLocked",
            BackendError::ApkDatabaseMalformed(_) => "ApkDatabaseMalformed",
            BackendError::ApkSecdbMalformed(_) => "ApkSecdbMalformed",
            BackendError::InvalidInstallTarget { .. } => "InvalidInstallTarget",
            BackendError::BlockUnenforceable { .. } => "BlockUnenforceable",
        }
    }
}

/// Reboot need of a node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RebootState {
    /// A reboot is needed.
    pub required: bool,
    /// Why, for the report message.
    pub reasons: Vec<String>,
    /// Package names whose update waits for the reboot.
    pub pending_packages: Vec<String>,
}

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
