//! The node agent: detects the host OS, scans and patches it with the host's own package
//! manager, and reports a `NodePatchReport` status. See docs/agent.md.
//!
//! Imports run one way, from the orchestration down to the host (no import circle):
//! `cluster` → `resume`, `operation` → `hook`, `backend` → `os`, `state` → `host` → `os_release`.
//!
//! - [`os_release`]: os-release(5) parsing (a leaf).
//! - [`host`]: reading the host root safely (bounded), host commands and their captured
//!   output ([`host::command`]), the executors: nsenter, chroot, installroot ([`host::exec`]).
//! - [`os`]: OS detection from os-release, kernel release and boot ID.
//! - [`state`]: first-seen dates, the last operation and the run markers, kept on the node.
//! - [`backend`]: the package backends as one wing: what a backend is
//!   ([`backend::contract`]), the shared command handling ([`backend::command`]), the dispatch
//!   by package family, and the backends: [`backend::apt`] (Debian/Ubuntu, in-process dpkg and
//!   apt lists, apt-get installs), [`backend::rpm`] (rpm inventory, updateinfo, reboot rules,
//!   and the dnf backend for the RHEL family, Amazon Linux 2023, Fedora), [`backend::zypper`]
//!   (SUSE patches), [`backend::apk`] (Alpine).
//! - [`hook`]: the run's install hooks (preInstall, postInstall), run as argv through the host
//!   executor, with their failure reasons and output tails.
//! - [`operation`]: one Scan or Install, ending in a `NodePatchReportStatus`.
//! - [`resume`]: what an agent does with its operation given what earlier agents left on the
//!   node (install, confirming scan, or report interrupted); pure.
//! - [`cluster`]: the `nodepatch agent` command (PatchRun snapshot in, report status out).

pub mod backend;
pub mod changes;
pub mod cluster;
pub mod hook;
pub mod host;
pub mod operation;
pub mod os;
pub mod os_release;
pub mod resume;
pub mod state;
