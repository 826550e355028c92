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

//! The dispatch here is one `match` per step over [`Backend`], an enum rather than a trait
//! object: the backends differ in shape (apt carries its command settings and repairs dpkg
//! before an install, apt's install reads what it read before), and an exhaustive `match`
//! makes adding a family a compile error in every step until it is handled.
//!
//! - [`contract`]: what a backend reads, installs and reports, and [`BackendError`].
//! - [`command`]: requiring a command's success and reading why a package failed, once.
//! - [`sources`]: the baseline's alternative patch sources, used instead of the node's
//!   repositories ([`Repositories`]).
//! - [`apt`], [`rpm`] (shared rpm code and [`rpm::dnf`]), [`zypper`], [`apk`]: the backends.

pub mod apk;
pub mod apt;
pub mod command;
pub mod contract;
pub mod rpm;
pub mod sources;
pub mod zypper;

use jiff::Timestamp;

use self::apt::install::AptCommands;
use self::contract::{BackendError, InstallReport, InstallRequest, NodeAgent, NodePackages};
use self::sources::{Repositories, SourcesError};
use crate::agent::os::DetectedOs;
use crate::agent::state::FirstSeen;
use crate::api::PackageFamily;

/// The settings backends are built with (only apt has any; the other backends use fixed
/// timeouts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackendSettings {
    /// apt timeouts and lock wait.
    pub apt: AptCommands,
}

/// The package backend of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Debian, Ubuntu, with how the agent runs apt and dpkg.
    Apt(AptCommands),
    /// RHEL family, Amazon Linux 2023, Fedora.
    Dnf,
    /// SLES, openSUSE.
    Zypper,
    /// Alpine.
    Apk,
}

impl Backend {
    /// The backend of a package family.
    pub fn for_family(family: PackageFamily, settings: &BackendSettings) -> Backend {
        match family {
            PackageFamily::Deb => Backend::Apt(settings.apt),
            PackageFamily::Rpm => Backend::Dnf,
            PackageFamily::Zypper => Backend::Zypper,
            PackageFamily::Apk => Backend::Apk,
        }
    }

    /// Short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Apt(_) => "apt",
            Backend::Dnf => "dnf",
            Backend::Zypper => "zypper",
            Backend::Apk => "apk",
        }
    }

    /// Refresh the repository metadata (`apt-get update`, `dnf makecache`, `zypper refresh`,
    /// `apk update`) of `repositories`. A failure is reported as a note for the node's
    /// repositories (the cached metadata is used); for alternative sources the caller fails.
    pub fn refresh(
        self,
        agent: &NodeAgent,
        repositories: &Repositories,
    ) -> Result<(), BackendError> {
        match (self, repositories) {
            (Backend::Apt(commands), Repositories::Node) => {
                apt::install::refresh_lists(agent.executor.as_ref(), &commands, &[])?;
                Ok(())
            }
            (Backend::Apt(commands), Repositories::Apt(sources)) => {
                sources.prepare(&agent.root)?;
                sources.clear_stamp(&agent.root)?;
                apt::install::refresh_lists(
                    agent.executor.as_ref(),
                    &commands,
                    &sources.apt_options(),
                )?;
                sources.mark_updated(&agent.root)?;
                Ok(())
            }
            (Backend::Dnf, Repositories::Dnf(sources)) => {
                sources.prepare_refresh(&agent.root)?;
                rpm::dnf::refresh(agent, &sources.dnf_options())?;
                sources.mark_refreshed(&agent.root)?;
                Ok(())
            }
            (_, Repositories::Apt(_) | Repositories::Dnf(_)) => Err(unsupported(repositories)),
            (Backend::Dnf, Repositories::Node) => rpm::dnf::refresh(agent, &[]),
            (Backend::Zypper, Repositories::Node) => zypper::refresh(agent),
            (Backend::Apk, Repositories::Node) => apk::refresh(agent),
        }
    }

    /// The note when a refresh failed.
    pub fn refresh_failure_note(self, error: &BackendError) -> String {
        match self {
            Backend::Apt(_) => format!(
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
            Backend::Apt(commands) => apt::prepare_install(agent, &commands),
            Backend::Dnf | Backend::Zypper => rpm::database_note(agent.executor.as_ref()),
            Backend::Apk => Ok(None),
        }
    }

    /// Read the node: installed packages, candidates offered by `repositories` (first
    /// sightings recorded in `first_seen`), reboot need.
    pub fn read(
        self,
        agent: &NodeAgent,
        repositories: &Repositories,
        detected: &DetectedOs,
        first_seen: &mut FirstSeen,
        now: Timestamp,
    ) -> Result<NodePackages, BackendError> {
        match (self, repositories) {
            (Backend::Apt(_), _) => apt::read_node(agent, repositories, detected, first_seen, now),
            (Backend::Dnf, Repositories::Node | Repositories::Dnf(_)) => {
                rpm::dnf::read_node(agent, repositories, detected, first_seen, now)
            }
            (_, Repositories::Apt(_) | Repositories::Dnf(_)) => Err(unsupported(repositories)),
            (Backend::Zypper, Repositories::Node) => {
                zypper::read_node(agent, detected, first_seen, now)
            }
            (Backend::Apk, Repositories::Node) => apk::read_node(agent, detected, first_seen, now),
        }
    }

    /// Install exactly `request.targets` from `repositories`, reading back what was installed.
    pub fn install(
        self,
        agent: &NodeAgent,
        repositories: &Repositories,
        before: &NodePackages,
        request: &InstallRequest<'_>,
    ) -> Result<InstallReport, BackendError> {
        match (self, repositories) {
            (Backend::Apt(commands), _) => {
                apt::install_targets(agent, &commands, repositories, before, request)
            }
            (Backend::Dnf, Repositories::Node) => rpm::dnf::install(agent, &[], request),
            (Backend::Dnf, Repositories::Dnf(sources)) => {
                rpm::dnf::install(agent, &sources.dnf_options(), request)
            }
            (_, Repositories::Apt(_) | Repositories::Dnf(_)) => Err(unsupported(repositories)),
            (Backend::Zypper, Repositories::Node) => zypper::install(agent, request),
            (Backend::Apk, Repositories::Node) => apk::install(agent, request),
        }
    }
}

/// Sources of one package manager given to another backend ([`sources::repositories_for`]
/// never builds that).
fn unsupported(repositories: &Repositories) -> BackendError {
    BackendError::Sources(SourcesError::Unsupported {
        names: repositories.source_names().to_vec(),
        product: String::new(),
    })
}
