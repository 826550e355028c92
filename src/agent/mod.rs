//! The node agent: detects the host OS, scans and patches it with the host's own package
//! manager, and reports a `NodePatchReport` status. See docs/agent.md.
//!
//! - [`host`]: reading the host root safely and running host commands (nsenter / chroot).
//! - [`os`]: OS detection from os-release.
//! - [`apt`]: the Debian/Ubuntu backend (in-process dpkg and apt lists, apt-get installs).
//! - [`state`]: first-seen dates and the last operation, kept on the node.
//! - [`operation`]: one Scan or Install, ending in a `NodePatchReportStatus`.
//! - [`cluster`]: the `nodepatch agent` command (PatchRun snapshot in, report status out).

pub mod apt;
pub mod cluster;
pub mod host;
pub mod operation;
pub mod os;
pub mod state;
