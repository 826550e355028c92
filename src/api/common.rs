//! Types shared by several kinds.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Operating systems a PatchBaseline can target (the values of SSM's `OperatingSystem`, for the
/// Linux distributions Kubernetes nodes run).
#[derive(
    Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub enum OperatingSystem {
    Debian,
    Ubuntu,
    RedHatEnterpriseLinux,
    Rocky,
    AlmaLinux,
    CentOSStream,
    OracleLinux,
    AmazonLinux2,
    AmazonLinux2023,
    Fedora,
    #[serde(rename = "SUSE")]
    Suse,
    OpenSUSE,
    Alpine,
}

impl OperatingSystem {
    /// Every value, in declaration order.
    pub const ALL: [OperatingSystem; 13] = [
        OperatingSystem::Debian,
        OperatingSystem::Ubuntu,
        OperatingSystem::RedHatEnterpriseLinux,
        OperatingSystem::Rocky,
        OperatingSystem::AlmaLinux,
        OperatingSystem::CentOSStream,
        OperatingSystem::OracleLinux,
        OperatingSystem::AmazonLinux2,
        OperatingSystem::AmazonLinux2023,
        OperatingSystem::Fedora,
        OperatingSystem::Suse,
        OperatingSystem::OpenSUSE,
        OperatingSystem::Alpine,
    ];

    /// The API spelling (`"SUSE"`, `"AmazonLinux2023"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            OperatingSystem::Debian => "Debian",
            OperatingSystem::Ubuntu => "Ubuntu",
            OperatingSystem::RedHatEnterpriseLinux => "RedHatEnterpriseLinux",
            OperatingSystem::Rocky => "Rocky",
            OperatingSystem::AlmaLinux => "AlmaLinux",
            OperatingSystem::CentOSStream => "CentOSStream",
            OperatingSystem::OracleLinux => "OracleLinux",
            OperatingSystem::AmazonLinux2 => "AmazonLinux2",
            OperatingSystem::AmazonLinux2023 => "AmazonLinux2023",
            OperatingSystem::Fedora => "Fedora",
            OperatingSystem::Suse => "SUSE",
            OperatingSystem::OpenSUSE => "OpenSUSE",
            OperatingSystem::Alpine => "Alpine",
        }
    }

    /// The package-manager family that patches this OS.
    pub fn family(self) -> PackageFamily {
        match self {
            OperatingSystem::Debian | OperatingSystem::Ubuntu => PackageFamily::Deb,
            OperatingSystem::Suse | OperatingSystem::OpenSUSE => PackageFamily::Zypper,
            OperatingSystem::Alpine => PackageFamily::Apk,
            _ => PackageFamily::Rpm,
        }
    }

    /// Parse the API spelling.
    pub fn parse(s: &str) -> Option<OperatingSystem> {
        OperatingSystem::ALL.into_iter().find(|os| os.as_str() == s)
    }
}

impl std::fmt::Display for OperatingSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Package-manager family of a node OS: decides the version ordering and name grammar.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
pub enum PackageFamily {
    /// dpkg/apt (Debian, Ubuntu).
    Deb,
    /// rpm with dnf or yum (RHEL family, Amazon Linux, Fedora).
    Rpm,
    /// rpm with zypper patches (SLES, openSUSE).
    Zypper,
    /// apk (Alpine).
    Apk,
}

/// Compliance level (severity assigned by the baseline) of a missing patch.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    Deserialize,
    Serialize,
    JsonSchema,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
)]
pub enum ComplianceLevel {
    /// No level assigned (lowest).
    #[default]
    Unspecified,
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl ComplianceLevel {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ComplianceLevel::Unspecified => "Unspecified",
            ComplianceLevel::Informational => "Informational",
            ComplianceLevel::Low => "Low",
            ComplianceLevel::Medium => "Medium",
            ComplianceLevel::High => "High",
            ComplianceLevel::Critical => "Critical",
        }
    }
}

/// What to do with a node after installing updates.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
pub enum RebootOption {
    /// Cordon, drain and reboot the node when an installed update needs it.
    #[default]
    RebootIfNeeded,
    /// Never reboot; updates that need a reboot leave the node InstalledPendingReboot
    /// (non-compliant) until it is rebooted by other means.
    NoReboot,
}

/// The kind of work a PatchRun or agent operation does.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Read-only: inventory, candidates and compliance; never disrupts workloads.
    Scan,
    /// Install the approved patches (inside a maintenance window unless triggered manually).
    Install,
    /// What-if: evaluate the run's draft baseline (`spec.preview.baseline`) against each node's
    /// installed packages and repositories, next to the node's current baseline; installs
    /// nothing, drains nothing, leaves the report's verdict as it is and writes only the report's
    /// `status.preview`. Runs outside windows; maxConcurrency and maxErrors apply.
    Preview,
}

impl Operation {
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Scan => "Scan",
            Operation::Install => "Install",
            Operation::Preview => "Preview",
        }
    }
}

/// Count of non-compliant (missing, failed, pending-reboot, rejected-installed) patches per
/// compliance level.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SeverityCounts {
    /// Patches at level Critical.
    #[serde(default)]
    pub critical: u32,
    /// Patches at level High.
    #[serde(default)]
    pub high: u32,
    /// Patches at level Medium.
    #[serde(default)]
    pub medium: u32,
    /// Patches at level Low.
    #[serde(default)]
    pub low: u32,
    /// Patches at level Informational.
    #[serde(default)]
    pub informational: u32,
    /// Patches with no level assigned.
    #[serde(default)]
    pub unspecified: u32,
}

impl SeverityCounts {
    /// Add one patch at `level`.
    pub fn add(&mut self, level: ComplianceLevel) {
        match level {
            ComplianceLevel::Critical => self.critical += 1,
            ComplianceLevel::High => self.high += 1,
            ComplianceLevel::Medium => self.medium += 1,
            ComplianceLevel::Low => self.low += 1,
            ComplianceLevel::Informational => self.informational += 1,
            ComplianceLevel::Unspecified => self.unspecified += 1,
        }
    }

    /// Add every count of `other`.
    pub fn merge(&mut self, other: &SeverityCounts) {
        self.critical += other.critical;
        self.high += other.high;
        self.medium += other.medium;
        self.low += other.low;
        self.informational += other.informational;
        self.unspecified += other.unspecified;
    }

    /// Sum over all levels.
    pub fn total(&self) -> u32 {
        self.critical + self.high + self.medium + self.low + self.informational + self.unspecified
    }
}

/// Node counts by compliance, used by PatchBaseline and PatchPolicy status.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NodeComplianceCounts {
    /// Nodes counted.
    #[serde(default)]
    pub total: u32,
    /// Nodes whose last report is Compliant.
    #[serde(default)]
    pub compliant: u32,
    /// Nodes whose last report is NonCompliant.
    #[serde(default)]
    pub non_compliant: u32,
    /// Nodes without a report yet, or whose report is Unknown.
    #[serde(default)]
    pub unknown: u32,
    /// Nodes nodepatch does not patch (immutable OS, Windows, end of life): their report says
    /// NotApplicable with the reason.
    #[serde(default)]
    pub not_applicable: u32,
    /// Nodes also matched by another policy (PatchPolicy only): skipped until resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflicting: Option<u32>,
}

/// A reference to a resolved baseline: its name and the content hash of its approved set.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BaselineRef {
    /// Name of the PatchBaseline, or of the predefined baseline (`nodepatch-predefined-<os>`).
    pub name: String,
    /// Stable content hash (sha256, hex) of the resolved baseline: every node of a run evaluates
    /// the same hash.
    pub hash: String,
}

/// A Kubernetes-style duration string (`30s`, `15m`, `4h`, `1h30m`).
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$";

/// Pattern of a Kubernetes object name (DNS subdomain, as used by cluster-scoped objects).
pub const NAME_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
