//! NodePatchReport: one per node, named after it, written by the node's agent.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{BaselineRef, ComplianceLevel, Operation, PackageFamily, SeverityCounts};

/// Most patches listed in a report; the rest are counted and `truncated` is set.
pub const MAX_REPORTED_PATCHES: usize = 500;

/// Patch compliance of one node, written by its agent (status only; the spec is empty).
#[derive(CustomResource, KubeSchema, Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[kube(
    group = "nodepatch.dev",
    version = "v1alpha1",
    kind = "NodePatchReport",
    plural = "nodepatchreports",
    shortname = "npr",
    category = "nodepatch",
    status = "NodePatchReportStatus",
    printcolumn = r#"{"name":"OS","type":"string","jsonPath":".status.os.id"}"#,
    printcolumn = r#"{"name":"Version","type":"string","priority":1,"jsonPath":".status.os.versionId"}"#,
    printcolumn = r#"{"name":"Compliance","type":"string","jsonPath":".status.compliance"}"#,
    printcolumn = r#"{"name":"Level","type":"string","jsonPath":".status.complianceLevel"}"#,
    printcolumn = r#"{"name":"Missing","type":"integer","jsonPath":".status.counts.missing"}"#,
    printcolumn = r#"{"name":"Reboot","type":"boolean","jsonPath":".status.rebootRequired"}"#,
    printcolumn = r#"{"name":"Last Scan","type":"date","jsonPath":".status.lastScanTime"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct NodePatchReportSpec {}

/// Compliance verdict of a node.
#[derive(JsonSchema, Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
pub enum Compliance {
    /// Every approved patch is installed and no rejected (Block) package is installed.
    Compliant,
    /// Some patch is Missing, Failed, InstalledPendingReboot or InstalledRejected.
    NonCompliant,
    /// The OS is not patched by nodepatch (immutable OS, or no baseline covers it).
    NotApplicable,
    /// Not scanned yet, or the last scan failed.
    #[default]
    Unknown,
}

impl Compliance {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Compliance::Compliant => "Compliant",
            Compliance::NonCompliant => "NonCompliant",
            Compliance::NotApplicable => "NotApplicable",
            Compliance::Unknown => "Unknown",
        }
    }
}

/// State of one patch on a node (SSM's patch compliance states).
#[derive(
    JsonSchema, Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub enum PatchState {
    /// The approved version (or newer) is installed.
    Installed,
    /// Installed, not approved by the baseline (e.g. pulled in as a dependency).
    InstalledOther,
    /// Installed; a reboot is needed for it to take effect.
    InstalledPendingReboot,
    /// Installed although rejected by the baseline with rejectedPatchesAction Block.
    InstalledRejected,
    /// Approved and not installed.
    Missing,
    /// Approved; the install attempt failed.
    Failed,
    /// Approved, but its package is not installed on this node.
    NotApplicable,
}

impl PatchState {
    /// True for the states that make a node NonCompliant.
    pub fn is_non_compliant(self) -> bool {
        matches!(
            self,
            PatchState::InstalledPendingReboot
                | PatchState::InstalledRejected
                | PatchState::Missing
                | PatchState::Failed
        )
    }
}

/// Phase of the agent's last (or current) operation.
#[derive(JsonSchema, Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, Hash)]
pub enum OperationPhase {
    /// Accepted, not started.
    #[default]
    Pending,
    /// Reading the package database and repositories.
    Scanning,
    /// Installing approved patches.
    Installing,
    /// Installed; a reboot is needed and the controller is cordoning/draining.
    WaitingForReboot,
    /// The agent asked the host to reboot.
    Rebooting,
    /// Done.
    Succeeded,
    /// Failed (see message).
    Failed,
}

impl OperationPhase {
    /// True once the operation is over.
    pub fn is_finished(self) -> bool {
        matches!(self, OperationPhase::Succeeded | OperationPhase::Failed)
    }
}

/// Observed patch state of a node.
#[derive(KubeSchema, Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodePatchReportStatus {
    /// The generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The node's operating system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<OsInfo>,
    /// Baseline (and its content hash) used for the verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineRef>,
    /// The last (or current) operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<OperationStatus>,
    /// Compliance verdict.
    #[serde(default)]
    pub compliance: Compliance,
    /// Why the verdict is NotApplicable: `ImmutableOS` (Bottlerocket, Flatcar, Talos, Fedora or
    /// RHEL CoreOS: patched by their own update operators), `UnsupportedOS` (Windows, or an OS
    /// nodepatch has no backend for) or `EndOfLife` (Amazon Linux 2 after its end of support).
    /// The controller writes these reports from the Node's `kubernetes.io/os` label and
    /// `status.nodeInfo.osImage` (in `os.prettyName`) when a run starts; no run labels such a node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub compliance_reason: Option<String>,
    /// Highest compliance level among non-compliant patches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance_level: Option<ComplianceLevel>,
    /// Patch counts by state.
    #[serde(default)]
    pub counts: PatchStateCounts,
    /// Non-compliant patches by compliance level.
    #[serde(default)]
    pub non_compliant_by_severity: SeverityCounts,
    /// Non-compliant security patches.
    #[serde(default)]
    pub security_non_compliant: u32,
    /// Non-compliant other patches.
    #[serde(default)]
    pub other_non_compliant: u32,
    /// A reboot is needed (installed updates not active yet).
    #[serde(default)]
    pub reboot_required: bool,
    /// Boot ID of the node when the report was written (`/proc/sys/kernel/random/boot_id`).
    #[serde(default, rename = "bootID", skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// Non-compliant patches (at most 500; see truncated).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 500))]
    pub patches: Vec<PatchStatus>,
    /// True when more non-compliant patches exist than are listed.
    #[serde(default)]
    pub truncated: bool,
    /// Last successful scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scan_time: Option<Time>,
    /// Last successful install.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_install_time: Option<Time>,
    /// Ready: the agent could read the node's package state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}

/// Operating system facts from os-release and uname.
#[derive(KubeSchema, Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OsInfo {
    /// Package family (Deb, Rpm, Zypper, Apk); absent for immutable OSes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<PackageFamily>,
    /// os-release ID (`debian`, `ubuntu`, `rocky`, `amzn`, …).
    #[serde(default)]
    pub id: String,
    /// os-release VERSION_ID.
    #[serde(default)]
    pub version_id: String,
    /// os-release PRETTY_NAME.
    #[serde(default)]
    pub pretty_name: String,
    /// Running kernel release.
    #[serde(default)]
    pub kernel: String,
}

/// The agent's last (or current) operation.
#[derive(KubeSchema, Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OperationStatus {
    /// PatchRun the operation belongs to (empty for local scans).
    #[serde(default)]
    pub run: String,
    /// Scan or Install.
    #[serde(rename = "type")]
    pub type_: Option<Operation>,
    /// Phase.
    #[serde(default)]
    pub phase: OperationPhase,
    /// Boot ID the operation ran under (after a reboot the agent only re-scans).
    #[serde(default, rename = "bootID", skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Time>,
    /// Details (errors, what was installed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub message: Option<String>,
}

/// Patch counts by state.
#[derive(KubeSchema, Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PatchStateCounts {
    /// Approved and installed.
    #[serde(default)]
    pub installed: u32,
    /// Installed, not approved.
    #[serde(default)]
    pub installed_other: u32,
    /// Installed, reboot pending.
    #[serde(default)]
    pub installed_pending_reboot: u32,
    /// Installed although rejected (Block).
    #[serde(default)]
    pub installed_rejected: u32,
    /// Approved and missing.
    #[serde(default)]
    pub missing: u32,
    /// Install failed.
    #[serde(default)]
    pub failed: u32,
    /// Approved, package not present on the node.
    #[serde(default)]
    pub not_applicable: u32,
}

impl PatchStateCounts {
    /// Add one patch in `state`.
    pub fn add(&mut self, state: PatchState) {
        match state {
            PatchState::Installed => self.installed += 1,
            PatchState::InstalledOther => self.installed_other += 1,
            PatchState::InstalledPendingReboot => self.installed_pending_reboot += 1,
            PatchState::InstalledRejected => self.installed_rejected += 1,
            PatchState::Missing => self.missing += 1,
            PatchState::Failed => self.failed += 1,
            PatchState::NotApplicable => self.not_applicable += 1,
        }
    }
}

/// One non-compliant patch.
#[derive(KubeSchema, Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PatchStatus {
    /// Package (or zypper patch) name.
    pub name: String,
    /// Architecture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// Installed version, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installed_version: Option<String>,
    /// Approved candidate version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_version: Option<String>,
    /// Patch state.
    pub state: PatchState,
    /// Classification (Security, Bugfix, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<String>,
    /// Vendor severity (Critical, Important, Moderate, Low; apt: from the changelog urgency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// Compliance level the baseline assigns to this patch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance_level: Option<ComplianceLevel>,
    /// Release date (rpm: advisory updated/issued; apt: first seen by this node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_date: Option<Time>,
    /// CVE ids fixed (first 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub cves: Vec<String>,
    /// Advisory id (RHSA-…, ALAS-…, SUSE-SU-…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advisory: Option<String>,
}
