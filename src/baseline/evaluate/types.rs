//! The values evaluation produces and shares between its steps: errors, approvers, verdict
//! reasons and the report.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::api::{BaselineRef, ComplianceLevel, NodePatchReportStatus, OperatingSystem};
use crate::baseline::names::NameError;

/// A baseline spec that cannot be evaluated; `field` is the path inside the spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BaselineError {
    /// An approvedPatches / rejectedPatches entry does not follow the OS family's grammar.
    #[error("{field}: {source}")]
    InvalidPatchName {
        /// Path, e.g. `approvedPatches[3]`.
        field: String,
        /// Why.
        #[source]
        source: NameError,
    },
    /// A filter value is malformed.
    #[error("{field}: {reason}")]
    InvalidFilter {
        /// Path, e.g. `approvalRules[1].filters[0].values[2]`.
        field: String,
        /// Why.
        reason: String,
    },
    /// An approval rule's timing is malformed.
    #[error("{field}: {reason}")]
    InvalidApprovalRule {
        /// Path, e.g. `approvalRules[0].approveUntilDate`.
        field: String,
        /// Why.
        reason: String,
    },
    /// A list is longer than allowed.
    #[error("{field}: {count} entries, at most {max} are allowed")]
    TooMany {
        /// The list.
        field: String,
        /// Its length.
        count: usize,
        /// The limit.
        max: usize,
    },
}

impl BaselineError {
    /// Bounded label for metrics and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            BaselineError::InvalidPatchName { .. } => "InvalidPatchName",
            BaselineError::InvalidFilter { .. } => "InvalidFilter",
            BaselineError::InvalidApprovalRule { .. } => "InvalidApprovalRule",
            BaselineError::TooMany { .. } => "TooManyEntries",
        }
    }

    /// The path of the offending field inside the spec.
    pub fn field(&self) -> &str {
        match self {
            BaselineError::InvalidPatchName { field, .. }
            | BaselineError::InvalidFilter { field, .. }
            | BaselineError::InvalidApprovalRule { field, .. }
            | BaselineError::TooMany { field, .. } => field,
        }
    }
}

/// The node cannot be evaluated against this baseline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvaluationError {
    /// The node runs another operating system than the baseline targets.
    #[error("baseline is for {baseline}, the node runs {node}")]
    OperatingSystemMismatch {
        /// The baseline's OS.
        baseline: OperatingSystem,
        /// The node's OS.
        node: OperatingSystem,
    },
}

impl EvaluationError {
    /// Bounded label for metrics and Event reasons.
    pub fn category(&self) -> &'static str {
        match self {
            EvaluationError::OperatingSystemMismatch { .. } => "OperatingSystemMismatch",
        }
    }
}

/// What approved a candidate; serialised as `approvalRules[N]` or `approvedPatches`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ApprovalSource {
    /// `approvalRules[N]`.
    Rule(usize),
    /// `approvedPatches`.
    ApprovedPatches,
}

impl std::fmt::Display for ApprovalSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApprovalSource::Rule(i) => write!(f, "approvalRules[{i}]"),
            ApprovalSource::ApprovedPatches => f.write_str("approvedPatches"),
        }
    }
}

impl std::str::FromStr for ApprovalSource {
    type Err = String;

    fn from_str(s: &str) -> Result<ApprovalSource, String> {
        if s == "approvedPatches" {
            return Ok(ApprovalSource::ApprovedPatches);
        }
        s.strip_prefix("approvalRules[")
            .and_then(|rest| rest.strip_suffix(']'))
            .and_then(|n| n.parse().ok())
            .map(ApprovalSource::Rule)
            .ok_or_else(|| format!("{s:?} is neither approvalRules[N] nor approvedPatches"))
    }
}

impl Serialize for ApprovalSource {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ApprovalSource {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<ApprovalSource, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Why a candidate is (not) approved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum VerdictReason {
    /// Approved by a rule or approvedPatches.
    Approved,
    /// Listed in rejectedPatches.
    Rejected,
    /// rejectedPatchesAction Block: a dependency can only be met by rejected versions.
    BlockedByRejectedDependency,
    /// A rule matched, but its approveAfterDays delay has not passed yet (see `approvableOn`).
    ApprovalPending,
    /// A rule matched, but the release is after its approveUntilDate.
    ReleasedAfterCutoff,
    /// A rule with approveUntilDate matched, but the candidate has no release date.
    NoReleaseDate,
    /// Some rule's filters matched, but it is not a security update and the rule does not
    /// enable non-security updates.
    NotSecurity,
    /// The global filters exclude it.
    ExcludedByGlobalFilters,
    /// No rule's filters match it, and approvedPatches does not list it.
    NoRuleMatched,
}

/// A set of approvers (rules by index, and approvedPatches); serialised as a list of
/// `approvalRules[N]` / `approvedPatches`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApprovalSet {
    /// Bit i: approvalRules[i] (at most 10 rules).
    rules: u16,
    approved_patches: bool,
}

impl ApprovalSet {
    /// True when the set has no approver.
    pub fn is_empty(&self) -> bool {
        self.rules == 0 && !self.approved_patches
    }

    /// True when `source` is in the set.
    pub fn contains(&self, source: ApprovalSource) -> bool {
        match source {
            ApprovalSource::Rule(i) => i < 16 && self.rules & (1 << i) != 0,
            ApprovalSource::ApprovedPatches => self.approved_patches,
        }
    }

    pub(super) fn insert(&mut self, source: ApprovalSource) {
        match source {
            ApprovalSource::Rule(i) if i < 16 => self.rules |= 1 << i,
            ApprovalSource::Rule(_) => {}
            ApprovalSource::ApprovedPatches => self.approved_patches = true,
        }
    }

    /// The approvers: rules in index order, then approvedPatches.
    pub fn iter(&self) -> impl Iterator<Item = ApprovalSource> + '_ {
        (0..16usize)
            .filter(|i| self.rules & (1 << i) != 0)
            .map(ApprovalSource::Rule)
            .chain(
                self.approved_patches
                    .then_some(ApprovalSource::ApprovedPatches),
            )
    }
}

impl Serialize for ApprovalSet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

/// What the baseline says about one candidate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CandidateVerdict {
    /// Package name.
    pub name: String,
    /// Architecture.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// Candidate version.
    pub version: String,
    /// Approved by the baseline.
    pub approved: bool,
    /// What approved it, the one with the highest compliance level: `approvalRules[N]` or
    /// `approvedPatches`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<ApprovalSource>,
    /// Other rules / lists that approve it too.
    #[serde(skip_serializing_if = "ApprovalSet::is_empty")]
    pub also_approved_by: ApprovalSet,
    /// Compliance level of the approval (highest of its approvers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance_level: Option<ComplianceLevel>,
    /// A security update (classification Security, or offered by an apt security suite).
    pub security: bool,
    /// Listed in rejectedPatches.
    pub rejected: bool,
    /// The version to install: the newest approved version of an installed package, newer
    /// than the installed one.
    pub to_install: bool,
    /// Why it is (not) approved.
    pub reason: VerdictReason,
    /// With `ApprovalPending`: the first instant a rule approves it (release instant plus
    /// approveAfterDays × 24 h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvable_at: Option<Timestamp>,
    /// With `BlockedByRejectedDependency`: the dependency that cannot be met.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_by: Option<String>,
}

/// The outcome of evaluating one node.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Evaluation {
    /// The baseline and its hash.
    pub baseline: BaselineRef,
    /// The compliance part of the node's NodePatchReport status (compliance, level, counts,
    /// per-severity counts, security/other, reboot required, non-compliant patches).
    pub status: NodePatchReportStatus,
    /// One verdict per input candidate, sorted by name, arch and version.
    pub candidates: Vec<CandidateVerdict>,
}

impl Evaluation {
    /// The versions to install (one per package).
    pub fn install_set(&self) -> impl Iterator<Item = &CandidateVerdict> {
        self.candidates.iter().filter(|c| c.to_install)
    }
}
