//! The node agent: detects the host OS, scans and patches it with the host's own package
//! manager, and reports a `NodePatchReport` status. See docs/agent.md.
//!
//! - [`host`]: reading the host root safely and running host commands (nsenter / chroot / installroot).
//! - [`os`]: OS detection from os-release.
//! - [`backend`]: the package backends behind one interface.
//! - [`apt`]: the Debian/Ubuntu backend (in-process dpkg and apt lists, apt-get installs).
//! - [`rpm`]: rpm inventory, updateinfo, reboot rules, and the dnf backend (RHEL family,
//!   Amazon Linux 2023, Fedora).
//! - [`zypper`]: the SUSE backend (patches).
//! - [`apk`]: the Alpine backend.
//! - [`state`]: first-seen dates and the last operation, kept on the node.
//! - [`operation`]: one Scan or Install, ending in a `NodePatchReportStatus`.
//! - [`cluster`]: the `nodepatch agent` command (PatchRun snapshot in, report status out).

pub mod apk;
pub mod apt;
pub mod backend;
pub mod cluster;
pub mod host;
pub mod operation;
pub mod os;
pub mod rpm;
pub mod state;
pub mod zypper;
