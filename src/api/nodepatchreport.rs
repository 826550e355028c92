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
    doc = "The patch state of one node, named after it and written only by that node's agent: operating system, baseline used, last operation, compliance verdict, missing patches, and whether a reboot is needed.",
    category = "nodepatch",
    status = "NodePatchReportStatus",
    printcolumn = r#"{"name":"OS","type":"string","jsonPath":".status.os.id"}"#,
    printcolumn = r#"{"name":"Version","type":"string","priority":1,"jsonPath":".status.os.versionId"}"#,
    printcolumn = r#"{"name":"Compliance","type":"string","jsonPath":".status.compliance"}"#,
    printcolumn = r#"{"name":"Level","type":"string","jsonPath":".status.complianceLevel"}"#,
    printcolumn = r#"{"name":"Missing","type":"integer","jsonPath":".status.counts.missing"}"#,
    printcolumn = r#"{"name":"Reboot","type":"boolean","jsonPath":".status.rebootRequired"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
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
    /// How many non-compliant patches are not listed in patches (the 500-entry limit, or the
    /// report's size cap of 512 KiB); omitted when all are listed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub patches_omitted: u32,
    /// Last successful scan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scan_time: Option<Time>,
    /// Last successful install.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_install_time: Option<Time>,
    /// Ready: the agent could read the node's package state. kstatus's Reconciling is True while
    /// an operation is under way, Stalled True while Ready is False (the last operation failed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The result of the latest Preview run on this node (written by the agent under its own
    /// field manager `nodepatch-agent-preview`; it never changes the verdict above). A new
    /// preview replaces it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<PreviewResult>,
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
    /// Install only: every package whose installed version the install changed (read from the
    /// package database before and after, so dependencies pulled in are listed too), and each
    /// approved update that failed, with the version it stayed at. At most
    /// [`MAX_CHANGES`](crate::api::MAX_CHANGES) (256) entries, the rest counted in
    /// `changesOmitted`. Kept until the node's next operation; the run's status keeps a summary.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub changes: Vec<PackageChange>,
    /// Changes left out of `changes` (over its 256 entries).
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(range(max = 1000000))]
    pub changes_omitted: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Most package changes one report (or one node's entry in a run) lists.
pub const MAX_CHANGES: usize = 256;

/// One package an install changed (or failed to change).
#[derive(KubeSchema, Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PackageChange {
    /// Package name.
    #[schemars(length(max = 256))]
    pub name: String,
    /// Architecture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub arch: Option<String>,
    /// Version before the install (absent: newly installed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub from_version: Option<String>,
    /// Version after the install (absent: removed); for a failed update, the version that was
    /// approved and not installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub to_version: Option<String>,
    /// What happened.
    pub result: ChangeResult,
}

/// Outcome of one package change.
#[derive(JsonSchema, Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Hash)]
pub enum ChangeResult {
    /// The package is now at `toVersion` (an update, or newly installed as a dependency).
    Installed,
    /// The approved update to `toVersion` failed; the package stayed at `fromVersion`.
    Failed,
    /// The package is gone (removed or replaced by the package manager).
    Removed,
}

impl ChangeResult {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeResult::Installed => "Installed",
            ChangeResult::Failed => "Failed",
            ChangeResult::Removed => "Removed",
        }
    }
}

/// A Preview run's verdict on this node: the draft baseline and the node's current baseline
/// evaluated against the same read of the node.
#[derive(KubeSchema, Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PreviewResult {
    /// The Preview PatchRun this result belongs to.
    #[schemars(length(max = 253))]
    pub run: String,
    /// When the node was read and evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
    /// Verdict under the draft baseline (Unknown when the node could not be evaluated:
    /// see `message`; NotApplicable when the draft is for another OS).
    #[serde(default)]
    pub compliance: Compliance,
    /// Highest compliance level among the draft's non-compliant patches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance_level: Option<ComplianceLevel>,
    /// Verdict under the node's current baseline (the run's snapshot for the node's OS), from
    /// the same read.
    #[serde(default)]
    pub current_compliance: Compliance,
    /// Patch counts by state under the draft.
    #[serde(default)]
    pub counts: PatchStateCounts,
    /// Patches non-compliant under the draft that are not under the current baseline (first
    /// 100; see truncated).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub newly_missing: Vec<PreviewPatch>,
    /// Patches non-compliant under the current baseline that are not under the draft (first
    /// 100; see truncated).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub no_longer_missing: Vec<PreviewPatch>,
    /// Number of patches newly non-compliant under the draft (all of them, also past the list's
    /// 100).
    #[serde(default)]
    #[schemars(range(max = 1000000))]
    pub newly_missing_count: u32,
    /// Number of patches no longer non-compliant under the draft.
    #[serde(default)]
    #[schemars(range(max = 1000000))]
    pub no_longer_missing_count: u32,
    /// True when a list above was cut at 100.
    #[serde(default)]
    pub truncated: bool,
    /// Why the node could not be evaluated, or a note (e.g. the draft is for another OS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub message: Option<String>,
}

/// Most patches a preview lists per direction.
pub const MAX_PREVIEW_PATCHES: usize = 100;

/// A patch whose verdict the draft changes.
#[derive(KubeSchema, Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PreviewPatch {
    /// Package (or zypper patch) name.
    #[schemars(length(max = 256))]
    pub name: String,
    /// Architecture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub arch: Option<String>,
    /// Installed version, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub installed_version: Option<String>,
    /// The candidate version concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub available_version: Option<String>,
    /// State under the draft (newlyMissing) or under the current baseline (noLongerMissing).
    pub state: PatchState,
    /// Classification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub classification: Option<String>,
    /// Vendor severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub severity: Option<String>,
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
