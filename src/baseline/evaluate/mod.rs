//! Evaluate a baseline against a node's packages, in SSM Patch Manager's order:
//!
//! 1. **Global filters**: a candidate that fails one is never approved by a rule.
//! 2. **Approval rules** (any rule approves): filters AND-ed, values OR-ed, `*` wildcards, then
//!    `approveAfterDays` (release day + N days ≤ today, UTC) or `approveUntilDate` (released on
//!    or before that day, UTC). Without `enableNonSecurity` a rule only sees SSM's security
//!    candidates: on apt, versions offered by a security suite; on rpm and zypper, packages
//!    listed in an update notice (updateinfo advisory or zypper patch) of any classification,
//!    which the rule's Classification filter then narrows (so a `Bugfix` rule approves bugfix
//!    advisories without `enableNonSecurity`, as SSM's predefined baselines do); on apk, secdb
//!    fixes. `enableNonSecurity` adds the rest (packages no notice mentions, other apt suites).
//! 3. **approvedPatches** approve regardless of global filters and rules; on rpm, zypper and
//!    apk only within the security candidates unless `approvedPatchesEnableNonSecurity` (apt:
//!    always, as in SSM).
//! 4. **rejectedPatches** are removed (an entry in both lists is rejected). With
//!    `rejectedPatchesAction: Block`, and dependency data, a candidate whose dependency can only
//!    be met by rejected (or themselves blocked) versions is not approved either.
//! 5. Per package (name, arch), the **newest** approved version is the one to install.
//!
//! Each approved candidate carries the highest compliance level of the rules / list approving
//! it. Per package the state is then (SSM's compliance states): an approved newer version →
//! `Missing` (`Failed` if the last install of it failed); an installed version rejected under
//! Block → `InstalledRejected`; installed at or above the newest approved version → `Installed`
//! (`InstalledPendingReboot` if the last install left it waiting for a reboot); installed and not
//! approved → `InstalledOther` (including rejected packages under AllowAsDependency); approved
//! but not installed → `NotApplicable`.

use std::cmp::Ordering;

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::{Deserialize, Serialize};

use crate::api::{
    ApprovalRule, BaselineRef, Compliance, ComplianceLevel, MAX_REPORTED_PATCHES,
    NodePatchReportStatus, OperatingSystem, PackageFamily, PatchBaselineSpec, PatchFilter,
    PatchFilterKey, PatchState, PatchStateCounts, PatchStatus, RejectedPatchesAction,
    SeverityCounts,
};
use crate::baseline::fxhash::{FxHashMap, FxHashSet};
use crate::baseline::hash::baseline_hash;
use crate::baseline::model::{Candidate, Dependency, EvaluationInput, InstalledPackage};
use crate::baseline::names::{NameError, PatchListKind, PatchNameList, PatchTarget};
use crate::baseline::version::{compare_versions, rpm};
use crate::baseline::wildcard::wildcard_match;

/// Most global filters, rules, filters per rule, values per filter, list entries (the CRD's limits).
const MAX_GLOBAL_FILTERS: usize = 4;
const MAX_RULES: usize = 10;
const MAX_FILTERS_PER_RULE: usize = 4;
const MAX_VALUES_PER_FILTER: usize = 20;
const MAX_VALUE_LEN: usize = 64;
const MAX_LIST_ENTRIES: usize = 500;
const MAX_APPROVE_AFTER_DAYS: u32 = 360;
/// Most CVE ids listed per patch in a report.
const MAX_REPORTED_CVES: usize = 20;

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

/// One filter value, pre-classified so the common shapes avoid the general glob matcher.
#[derive(Clone, Debug)]
enum Pattern {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Glob(String),
}

impl Pattern {
    fn new(value: &str) -> Pattern {
        let stars = value.bytes().filter(|&b| b == b'*').count();
        match stars {
            0 => Pattern::Exact(value.to_owned()),
            1 if value.ends_with('*') => Pattern::Prefix(value[..value.len() - 1].to_owned()),
            1 if value.starts_with('*') => Pattern::Suffix(value[1..].to_owned()),
            _ => Pattern::Glob(value.to_owned()),
        }
    }

    fn matches(&self, text: &str, ignore_case: bool) -> bool {
        let eq = |a: &[u8], b: &[u8]| {
            if ignore_case {
                a.eq_ignore_ascii_case(b)
            } else {
                a == b
            }
        };
        let t = text.as_bytes();
        match self {
            Pattern::Exact(p) => eq(p.as_bytes(), t),
            Pattern::Prefix(p) => t.len() >= p.len() && eq(&t[..p.len()], p.as_bytes()),
            Pattern::Suffix(p) => t.len() >= p.len() && eq(&t[t.len() - p.len()..], p.as_bytes()),
            Pattern::Glob(p) => wildcard_match(p, text, ignore_case),
        }
    }
}

/// A filter with its values checked. Identical filters of several rules are compiled once and
/// evaluated once per candidate.
#[derive(Clone, Debug)]
struct CompiledFilter {
    key: PatchFilterKey,
    values: Vec<String>,
    patterns: Vec<Pattern>,
    /// Some value is exactly `*`: matches everything, even a property the candidate lacks.
    matches_all: bool,
    /// Names, repositories and architectures are case-sensitive; the vendor vocabularies
    /// (classification, severity, priority, section, product) are not (updateinfo writes
    /// `important` as often as `Important`).
    ignore_case: bool,
}

/// When a matching candidate becomes approved. Days are counted as UTC calendar days since
/// 1970-01-01 (integer arithmetic per candidate instead of calendar arithmetic).
#[derive(Clone, Copy, Debug)]
enum Timing {
    /// `approveAfterDays` (absent = 0).
    AfterDays(i64),
    /// `approveUntilDate`, as an epoch day.
    UntilDate(i64),
}

const SECONDS_PER_DAY: i64 = 86_400;

/// The UTC calendar day of `ts`, as days since 1970-01-01.
fn epoch_day(ts: Timestamp) -> i64 {
    ts.as_second().div_euclid(SECONDS_PER_DAY)
}

/// The calendar date of an epoch day (none outside jiff's range).
fn date_of_epoch_day(day: i64) -> Option<Date> {
    let span = jiff::Span::new().try_days(day).ok()?;
    Date::constant(1970, 1, 1).checked_add(span).ok()
}

#[derive(Clone, Debug)]
struct CompiledRule {
    /// Indexes into `ResolvedBaseline::filters`, cheapest first (AND is commutative).
    filter_ids: Vec<usize>,
    timing: Timing,
    level: ComplianceLevel,
    enable_non_security: bool,
}

/// A validated baseline, ready to evaluate many nodes: every entry parsed, every date checked,
/// and its content hash computed.
#[derive(Clone, Debug)]
pub struct ResolvedBaseline {
    name: String,
    spec: PatchBaselineSpec,
    family: PackageFamily,
    /// Distinct filters of the global filters and all rules (at most 4 + 10 × 4 = 44).
    filters: Vec<CompiledFilter>,
    global_filter_ids: Vec<usize>,
    rules: Vec<CompiledRule>,
    approved: PatchNameList,
    rejected: PatchNameList,
    hash: String,
}

fn check_count(field: &str, count: usize, max: usize) -> Result<(), BaselineError> {
    if count > max {
        return Err(BaselineError::TooMany {
            field: field.to_owned(),
            count,
            max,
        });
    }
    Ok(())
}

fn compile_filter(field: &str, filter: &PatchFilter) -> Result<CompiledFilter, BaselineError> {
    if filter.values.is_empty() {
        return Err(BaselineError::InvalidFilter {
            field: format!("{field}.values"),
            reason: "at least one value is required".into(),
        });
    }
    check_count(
        &format!("{field}.values"),
        filter.values.len(),
        MAX_VALUES_PER_FILTER,
    )?;
    for (i, value) in filter.values.iter().enumerate() {
        let invalid = |reason: String| BaselineError::InvalidFilter {
            field: format!("{field}.values[{i}]"),
            reason,
        };
        if value.is_empty() || value.len() > MAX_VALUE_LEN {
            return Err(invalid(format!(
                "{value:?} must be 1–{MAX_VALUE_LEN} characters"
            )));
        }
        if value.starts_with('-') {
            return Err(invalid(format!("{value:?} starts with '-'")));
        }
        if let Some(bad) = value
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || "._+:~^*@/-".contains(c)))
        {
            return Err(invalid(format!(
                "{value:?} contains {bad:?}; values use letters, digits, '*' and . _ + : ~ ^ @ / -"
            )));
        }
    }
    Ok(CompiledFilter {
        key: filter.key,
        values: filter.values.clone(),
        patterns: filter.values.iter().map(|v| Pattern::new(v)).collect(),
        matches_all: filter.values.iter().any(|v| v == "*"),
        ignore_case: !matches!(
            filter.key,
            PatchFilterKey::Name | PatchFilterKey::Repository | PatchFilterKey::Arch
        ),
    })
}

/// Compile `filter` into `table`, reusing an identical one; returns its index.
fn intern_filter(
    table: &mut Vec<CompiledFilter>,
    field: &str,
    filter: &PatchFilter,
) -> Result<usize, BaselineError> {
    let compiled = compile_filter(field, filter)?;
    if let Some(i) = table
        .iter()
        .position(|f| f.key == compiled.key && f.values == compiled.values)
    {
        return Ok(i);
    }
    table.push(compiled);
    Ok(table.len() - 1)
}

/// Relative cost of evaluating a filter: lists and free-form names last.
fn filter_cost(f: &CompiledFilter) -> u8 {
    match f.key {
        PatchFilterKey::Name | PatchFilterKey::Repository => 2,
        _ => 1,
    }
}

fn compile_rule(
    index: usize,
    rule: &ApprovalRule,
    table: &mut Vec<CompiledFilter>,
) -> Result<CompiledRule, BaselineError> {
    let field = format!("approvalRules[{index}]");
    check_count(
        &format!("{field}.filters"),
        rule.filters.len(),
        MAX_FILTERS_PER_RULE,
    )?;
    let mut filter_ids = rule
        .filters
        .iter()
        .enumerate()
        .map(|(i, f)| intern_filter(table, &format!("{field}.filters[{i}]"), f))
        .collect::<Result<Vec<_>, _>>()?;
    filter_ids.sort_by_key(|&i| filter_cost(&table[i]));
    let timing = match (rule.approve_after_days, rule.approve_until_date.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(BaselineError::InvalidApprovalRule {
                field: format!("{field}.approveUntilDate"),
                reason: "approveAfterDays and approveUntilDate are mutually exclusive: set one"
                    .into(),
            });
        }
        (Some(days), None) if days > MAX_APPROVE_AFTER_DAYS => {
            return Err(BaselineError::InvalidApprovalRule {
                field: format!("{field}.approveAfterDays"),
                reason: format!("{days} is more than {MAX_APPROVE_AFTER_DAYS}"),
            });
        }
        (days, None) => Timing::AfterDays(i64::from(days.unwrap_or(0))),
        (None, Some(date)) => {
            let strict =
                date.len() == 10 && date.as_bytes()[4] == b'-' && date.as_bytes()[7] == b'-';
            match date
                .parse::<Date>()
                .ok()
                .and_then(|d| d.to_zoned(TimeZone::UTC).ok())
            {
                Some(midnight) if strict => Timing::UntilDate(epoch_day(midnight.timestamp())),
                _ => {
                    return Err(BaselineError::InvalidApprovalRule {
                        field: format!("{field}.approveUntilDate"),
                        reason: format!("{date:?} is not a date in the form YYYY-MM-DD"),
                    });
                }
            }
        }
    };
    Ok(CompiledRule {
        filter_ids,
        timing,
        level: rule.compliance_level,
        enable_non_security: rule.enable_non_security,
    })
}

impl ResolvedBaseline {
    /// Validate `spec` and prepare it for evaluation. `name` is the PatchBaseline's name (or a
    /// predefined baseline's). Errors name the offending field.
    pub fn resolve(
        name: impl Into<String>,
        spec: &PatchBaselineSpec,
    ) -> Result<ResolvedBaseline, BaselineError> {
        let family = spec.operating_system.family();
        check_count(
            "globalFilters",
            spec.global_filters.len(),
            MAX_GLOBAL_FILTERS,
        )?;
        check_count("approvalRules", spec.approval_rules.len(), MAX_RULES)?;
        check_count(
            "approvedPatches",
            spec.approved_patches.len(),
            MAX_LIST_ENTRIES,
        )?;
        check_count(
            "rejectedPatches",
            spec.rejected_patches.len(),
            MAX_LIST_ENTRIES,
        )?;
        let mut filters = Vec::new();
        let mut global_filter_ids = spec
            .global_filters
            .iter()
            .enumerate()
            .map(|(i, f)| intern_filter(&mut filters, &format!("globalFilters[{i}]"), f))
            .collect::<Result<Vec<_>, _>>()?;
        global_filter_ids.sort_by_key(|&i| filter_cost(&filters[i]));
        let rules = spec
            .approval_rules
            .iter()
            .enumerate()
            .map(|(i, r)| compile_rule(i, r, &mut filters))
            .collect::<Result<Vec<_>, _>>()?;
        let list = |field: &str, kind, entries: &[String]| {
            PatchNameList::parse(family, kind, entries).map_err(|(i, source)| {
                BaselineError::InvalidPatchName {
                    field: format!("{field}[{i}]"),
                    source,
                }
            })
        };
        let approved = list(
            "approvedPatches",
            PatchListKind::Approved,
            &spec.approved_patches,
        )?;
        let rejected = list(
            "rejectedPatches",
            PatchListKind::Rejected,
            &spec.rejected_patches,
        )?;
        Ok(ResolvedBaseline {
            name: name.into(),
            spec: spec.clone(),
            family,
            filters,
            global_filter_ids,
            rules,
            approved,
            rejected,
            hash: baseline_hash(spec),
        })
    }

    /// The baseline's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The spec it was resolved from.
    pub fn spec(&self) -> &PatchBaselineSpec {
        &self.spec
    }

    /// The operating system it targets.
    pub fn operating_system(&self) -> OperatingSystem {
        self.spec.operating_system
    }

    /// Content hash (sha256 hex) of the spec's approval semantics; see [`baseline_hash`].
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Name and hash, as recorded in PatchRun and NodePatchReport status.
    pub fn baseline_ref(&self) -> BaselineRef {
        BaselineRef {
            name: self.name.clone(),
            hash: self.hash.clone(),
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

    fn insert(&mut self, source: ApprovalSource) {
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
    /// With `ApprovalPending`: the first day (UTC) a rule approves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvable_on: Option<Date>,
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

/// Per-candidate intermediate result.
#[derive(Clone, Debug)]
struct Assessment<'a> {
    /// Bit i: approvalRules[i] approves it (at most 10 rules).
    rule_approvals: u16,
    /// approvedPatches approves it.
    list_approval: bool,
    /// Highest level of the approvers.
    level: Option<ComplianceLevel>,
    rejected: bool,
    security: bool,
    blocked_by: Option<&'a str>,
    reason: VerdictReason,
    approvable_on: Option<Date>,
}

impl Assessment<'_> {
    fn has_approver(&self) -> bool {
        self.rule_approvals != 0 || self.list_approval
    }

    fn approved(&self) -> bool {
        self.has_approver() && !self.rejected && self.blocked_by.is_none()
    }

    fn level(&self) -> Option<ComplianceLevel> {
        self.level
    }

    fn approve(&mut self, level: ComplianceLevel) {
        self.level = Some(self.level.map_or(level, |l| l.max(level)));
    }

    /// The primary approver (highest level, first in rule order on ties) and the others.
    fn approvers(&self, baseline: &ResolvedBaseline) -> (Option<ApprovalSource>, ApprovalSet) {
        let all = (0..baseline.rules.len())
            .filter(|i| self.rule_approvals & (1 << i) != 0)
            .map(|i| (ApprovalSource::Rule(i), baseline.rules[i].level))
            .chain(self.list_approval.then_some((
                ApprovalSource::ApprovedPatches,
                baseline.spec.approved_patches_compliance_level,
            )));
        let mut primary: Option<(ApprovalSource, ComplianceLevel)> = None;
        let mut others = ApprovalSet::default();
        for (source, level) in all {
            match primary {
                Some((_, best)) if level <= best => others.insert(source),
                Some((previous, _)) => {
                    others.insert(previous);
                    primary = Some((source, level));
                }
                None => primary = Some((source, level)),
            }
        }
        (primary.map(|(s, _)| s), others)
    }
}

/// Which distinct filters a candidate passes, computed on first use (bit i = filter i).
#[derive(Default, Clone, Copy)]
struct FilterCache {
    known: u64,
    passed: u64,
}

impl FilterCache {
    fn passes(
        &mut self,
        baseline: &ResolvedBaseline,
        id: usize,
        c: &Candidate,
        node_product: Option<&str>,
    ) -> bool {
        let bit = 1u64 << id;
        if self.known & bit == 0 {
            self.known |= bit;
            if filter_matches(baseline.family, &baseline.filters[id], c, node_product) {
                self.passed |= bit;
            }
        }
        self.passed & bit != 0
    }
}

/// Apt origins that are security suites: `<codename>-security` (also Ubuntu ESM
/// `<codename>-infra-security` / `-apps-security`) and the old `debian-security`.
fn is_security_repository(repo: &str) -> bool {
    repo.ends_with("-security") || repo == "debian-security"
}

fn is_security_classification(c: &Candidate) -> bool {
    c.classification
        .as_deref()
        .is_some_and(|v| v.eq_ignore_ascii_case("security"))
}

/// Classification as filters see it: apt candidates without one are `Security` when a security
/// suite offers them.
fn effective_classification(family: PackageFamily, c: &Candidate) -> Option<&str> {
    match (&c.classification, family) {
        (Some(v), _) => Some(v),
        (None, PackageFamily::Deb) if c.repositories.iter().any(|r| is_security_repository(r)) => {
            Some("Security")
        }
        _ => None,
    }
}

/// A security update, for reporting (securityNonCompliant) and the apt/apk implicit rule.
fn is_security_update(family: PackageFamily, c: &Candidate) -> bool {
    match family {
        PackageFamily::Deb => {
            effective_classification(family, c).is_some_and(|v| v.eq_ignore_ascii_case("security"))
        }
        PackageFamily::Apk => is_security_classification(c) || !c.cves.is_empty(),
        PackageFamily::Rpm | PackageFamily::Zypper => is_security_classification(c),
    }
}

/// Inside SSM's implicit "security" scope of rules without enableNonSecurity.
fn in_security_scope(family: PackageFamily, c: &Candidate) -> bool {
    match family {
        PackageFamily::Deb | PackageFamily::Apk => is_security_update(family, c),
        // Any package an update notice lists (any classification) is in scope on rpm/zypper.
        PackageFamily::Rpm | PackageFamily::Zypper => {
            c.advisory.is_some() || c.classification.is_some()
        }
    }
}

fn filter_matches(
    family: PackageFamily,
    filter: &CompiledFilter,
    c: &Candidate,
    node_product: Option<&str>,
) -> bool {
    if filter.matches_all {
        return true;
    }
    let any = |value: Option<&str>| {
        value.is_some_and(|v| {
            filter
                .patterns
                .iter()
                .any(|p| p.matches(v, filter.ignore_case))
        })
    };
    match filter.key {
        PatchFilterKey::Classification => any(effective_classification(family, c)),
        PatchFilterKey::Severity => any(c.severity.as_deref()),
        PatchFilterKey::Priority => any(c.priority.as_deref()),
        PatchFilterKey::Section => any(c.section.as_deref()),
        PatchFilterKey::Product => any(c.product.as_deref().or(node_product)),
        PatchFilterKey::Repository => c.repositories.iter().any(|r| any(Some(r))),
        PatchFilterKey::Name => any(Some(&c.name)),
        PatchFilterKey::Arch => any(c.arch.as_deref()),
    }
}

fn target(c: &Candidate) -> PatchTarget<'_> {
    PatchTarget {
        name: &c.name,
        arch: c.arch.as_deref(),
        version: &c.version,
        advisory: c.advisory.as_deref(),
        cves: &c.cves,
        bugzillas: &c.bugzillas,
    }
}

fn assess<'a>(
    baseline: &ResolvedBaseline,
    c: &'a Candidate,
    node_product: Option<&str>,
    today: i64,
    node_filters: FilterCache,
) -> Assessment<'a> {
    let family = baseline.family;
    let security = is_security_update(family, c);
    let in_scope = in_security_scope(family, c);
    let mut a = Assessment {
        rule_approvals: 0,
        list_approval: false,
        level: None,
        rejected: baseline.rejected.matches(&target(c)),
        security,
        blocked_by: None,
        reason: VerdictReason::NoRuleMatched,
        approvable_on: None,
    };
    // Most informative reason among the rules that did not approve.
    let mut best_miss = VerdictReason::NoRuleMatched;
    // Product filters on a candidate without its own product only depend on the node.
    let mut cache = if c.product.is_none() {
        node_filters
    } else {
        FilterCache::default()
    };
    let passes_global = baseline
        .global_filter_ids
        .iter()
        .all(|&id| cache.passes(baseline, id, c, node_product));
    // The release day, computed once and only when a rule needs it.
    let mut release_day: Option<Option<i64>> = None;
    if !passes_global {
        best_miss = VerdictReason::ExcludedByGlobalFilters;
    } else {
        for (i, rule) in baseline.rules.iter().enumerate() {
            if !rule
                .filter_ids
                .iter()
                .all(|&id| cache.passes(baseline, id, c, node_product))
            {
                continue;
            }
            if !rule.enable_non_security && !in_scope {
                best_miss = best_miss.min(VerdictReason::NotSecurity);
                continue;
            }
            let release =
                *release_day.get_or_insert_with(|| c.effective_release_date().map(epoch_day));
            let approve = |a: &mut Assessment| {
                a.rule_approvals |= 1 << i;
                a.approve(rule.level);
            };
            match rule.timing {
                // SSM: without a release date the delay counts as zero.
                Timing::AfterDays(days) => match release {
                    None => approve(&mut a),
                    Some(day) if day + days <= today => approve(&mut a),
                    Some(day) => {
                        best_miss = best_miss.min(VerdictReason::ApprovalPending);
                        if let Some(approvable) = date_of_epoch_day(day + days) {
                            a.approvable_on =
                                Some(a.approvable_on.map_or(approvable, |d| d.min(approvable)));
                        }
                    }
                },
                Timing::UntilDate(cutoff) => match release {
                    Some(day) if day <= cutoff => approve(&mut a),
                    Some(_) => best_miss = best_miss.min(VerdictReason::ReleasedAfterCutoff),
                    None => best_miss = best_miss.min(VerdictReason::NoReleaseDate),
                },
            }
        }
    }
    let list_scope_ok = family == PackageFamily::Deb
        || baseline.spec.approved_patches_enable_non_security
        || in_scope;
    if baseline.approved.matches(&target(c)) {
        if list_scope_ok {
            a.list_approval = true;
            a.approve(baseline.spec.approved_patches_compliance_level);
        } else {
            best_miss = best_miss.min(VerdictReason::NotSecurity);
        }
    }
    a.reason = if a.rejected {
        VerdictReason::Rejected
    } else if a.has_approver() {
        VerdictReason::Approved
    } else {
        best_miss
    };
    if a.reason != VerdictReason::ApprovalPending {
        a.approvable_on = None;
    }
    a
}

/// True when `version` meets `dep`'s version relation.
fn satisfies(family: PackageFamily, version: &str, dep: &Dependency) -> bool {
    let (Some(relation), Some(wanted)) = (dep.relation, dep.version.as_deref()) else {
        return true;
    };
    let ordering = match family {
        // Dependency ranges follow librpm: `>= 1.0` is met by any 1.0 release.
        PackageFamily::Rpm | PackageFamily::Zypper => rpm::compare_evr_range(version, wanted),
        _ => compare_versions(family, version, wanted),
    };
    relation.accepts(ordering)
}

/// rejectedPatchesAction Block: mark candidates whose dependencies can only be met by rejected
/// (or themselves blocked) versions. The least fixed point, so the result does not depend on the
/// order candidates are visited in.
fn block_rejected_dependencies<'a>(
    family: PackageFamily,
    candidates: &'a [Candidate],
    installed: &[InstalledPackage],
    assessments: &mut [Assessment<'a>],
) {
    // Nothing is unavailable unless something is rejected.
    if !assessments.iter().any(|a| a.rejected) {
        return;
    }
    // Index only the packages some dependency names.
    let wanted: FxHashSet<&str> = candidates
        .iter()
        .flat_map(|c| c.dependencies.iter().flatten())
        .map(|d| d.name.as_str())
        .collect();
    if wanted.is_empty() {
        return;
    }
    let mut by_name: FxHashMap<&str, Vec<usize>> = FxHashMap::default();
    for (i, c) in candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| wanted.contains(c.name.as_str()))
    {
        by_name.entry(c.name.as_str()).or_default().push(i);
    }
    let mut installed_by_name: FxHashMap<&str, Vec<&InstalledPackage>> = FxHashMap::default();
    for p in installed
        .iter()
        .filter(|p| wanted.contains(p.name.as_str()))
    {
        installed_by_name
            .entry(p.name.as_str())
            .or_default()
            .push(p);
    }
    let mut unavailable: Vec<bool> = assessments.iter().map(|a| a.rejected).collect();
    let blocked = |dep: &Dependency, unavailable: &[bool]| {
        if installed_by_name
            .get(dep.name.as_str())
            .is_some_and(|ps| ps.iter().any(|p| satisfies(family, &p.version, dep)))
        {
            return false;
        }
        let mut providers = by_name
            .get(dep.name.as_str())
            .into_iter()
            .flatten()
            .filter(|&&j| satisfies(family, &candidates[j].version, dep))
            .peekable();
        // No known provider: nothing says it would be a rejected one.
        providers.peek().is_some() && providers.all(|&j| unavailable[j])
    };
    loop {
        let mut changed = false;
        for (i, c) in candidates.iter().enumerate() {
            if unavailable[i] {
                continue;
            }
            if c.dependencies
                .as_ref()
                .is_some_and(|deps| deps.iter().any(|d| blocked(d, &unavailable)))
            {
                unavailable[i] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    for (i, c) in candidates.iter().enumerate() {
        if unavailable[i] && !assessments[i].rejected {
            // Name the first unmet dependency under the final state (order-independent).
            let dep = c
                .dependencies
                .iter()
                .flatten()
                .find(|d| blocked(d, &unavailable));
            assessments[i].blocked_by = dep.map(|d| d.name.as_str());
            assessments[i].reason = VerdictReason::BlockedByRejectedDependency;
            assessments[i].approvable_on = None;
        }
    }
}

/// Architectures that install on every architecture.
fn arch_independent(arch: Option<&str>) -> bool {
    matches!(arch, None | Some("all" | "noarch" | "any"))
}

/// (name, arch) of a package, the unit a patch state is reported for.
type PackageKey<'a> = (&'a str, Option<&'a str>);

/// A non-compliant patch before it becomes a `PatchStatus`: package, installed version, the
/// candidate describing it, state, compliance level, and whether an approved newer version exists.
type NonCompliantPatch<'a> = (
    PackageKey<'a>,
    &'a InstalledPackage,
    Option<usize>,
    PatchState,
    ComplianceLevel,
    bool,
);

/// Indexes of one package's installed entries or candidates: up to three inline (the usual
/// case), so grouping a node's packages does not allocate per package.
#[derive(Default, Clone)]
struct IndexList {
    inline: [u32; 3],
    len: usize,
    spill: Vec<u32>,
}

impl IndexList {
    fn push(&mut self, index: usize) {
        // Inputs have far fewer than 2^32 entries; an index that does not fit is a bug upstream.
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        if self.len < self.inline.len() {
            self.inline[self.len] = index;
        } else {
            self.spill.push(index);
        }
        self.len += 1;
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn iter(&self) -> impl Iterator<Item = usize> + Clone + '_ {
        self.inline[..self.len.min(self.inline.len())]
            .iter()
            .chain(&self.spill)
            .map(|&i| i as usize)
    }
}

#[derive(Default)]
struct PackageGroup {
    /// Indexes into the input's installed packages.
    installed: IndexList,
    /// Indexes into the input's candidates.
    candidates: IndexList,
}

/// Deterministic preference among candidates of equal version (duplicates from several
/// repositories): higher level, security, then the metadata itself.
fn tie_break(a: (&Candidate, &Assessment<'_>), b: (&Candidate, &Assessment<'_>)) -> Ordering {
    fn key<'c>((c, s): (&'c Candidate, &Assessment<'_>)) -> impl Ord + 'c {
        (
            s.level(),
            s.security,
            c.advisory.as_deref(),
            c.classification.as_deref(),
            c.severity.as_deref(),
            c.effective_release_date(),
            &c.cves,
            &c.repositories,
            c.version.as_str(),
        )
    }
    key(a).cmp(&key(b))
}

/// Evaluate `input` against `baseline` at `now`.
pub fn evaluate(
    baseline: &ResolvedBaseline,
    input: &EvaluationInput,
    now: Timestamp,
) -> Result<Evaluation, EvaluationError> {
    if let Some(node) = input.operating_system
        && node != baseline.operating_system()
    {
        return Err(EvaluationError::OperatingSystemMismatch {
            baseline: baseline.operating_system(),
            node,
        });
    }
    let family = baseline.family;
    let today = epoch_day(now);
    let node_product = input.product.as_deref();
    let candidates = &input.candidates;
    let mut node_filters = FilterCache::default();
    let node_only = Candidate::default();
    for (id, f) in baseline.filters.iter().enumerate() {
        if f.key == PatchFilterKey::Product {
            node_filters.passes(baseline, id, &node_only, node_product);
        }
    }
    let mut assessments: Vec<Assessment> = candidates
        .iter()
        .map(|c| assess(baseline, c, node_product, today, node_filters))
        .collect();
    if baseline.spec.rejected_patches_action == RejectedPatchesAction::Block {
        block_rejected_dependencies(family, candidates, &input.installed, &mut assessments);
    }

    // Group installed versions and candidates per package (name, arch); the map's order makes
    // the output independent of the input order.
    let mut groups: FxHashMap<PackageKey<'_>, PackageGroup> = FxHashMap::default();
    groups.reserve(input.installed.len() + candidates.len() / 2);
    // Installed architectures per name: first one inline, more (multiarch) in a list.
    let mut installed_arches: FxHashMap<&str, (Option<&str>, Vec<Option<&str>>)> =
        FxHashMap::default();
    installed_arches.reserve(input.installed.len());
    for (k, p) in input.installed.iter().enumerate() {
        let group = groups
            .entry((p.name.as_str(), p.arch.as_deref()))
            .or_default();
        if group.installed.is_empty() {
            match installed_arches.entry(p.name.as_str()) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert((p.arch.as_deref(), Vec::new()));
                }
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    o.get_mut().1.push(p.arch.as_deref())
                }
            }
        }
        group.installed.push(k);
    }
    for (i, c) in candidates.iter().enumerate() {
        let exact = (c.name.as_str(), c.arch.as_deref());
        let key = match installed_arches.get(c.name.as_str()) {
            Some((first, more)) if *first == exact.1 || more.contains(&exact.1) => exact,
            // An arch-independent candidate (or installed package) of a single-arch package is
            // the same package (e.g. noarch ↔ x86_64 across versions).
            Some((only, more))
                if more.is_empty() && (arch_independent(exact.1) || arch_independent(*only)) =>
            {
                (exact.0, *only)
            }
            _ => exact,
        };
        groups.entry(key).or_default().candidates.push(i);
    }

    let newer = |a: &str, b: &str| compare_versions(family, a, b);
    let mut counts = PatchStateCounts::default();
    let mut by_severity = SeverityCounts::default();
    let (mut security_nc, mut other_nc) = (0u32, 0u32);
    // Non-compliant patches as (package, installed, describing candidate, state, level): the
    // report keeps the 500 most severe, and only those are turned into PatchStatus objects.
    let mut non_compliant: Vec<NonCompliantPatch<'_>> = Vec::new();
    let mut reboot_required = input.install_result.reboot_required;
    let mut verdicts: Vec<CandidateVerdict> = Vec::with_capacity(candidates.len());

    // Visit packages in (name, arch) order, so the output does not depend on the input order.
    let mut keys: Vec<PackageKey<'_>> = groups.keys().copied().collect();
    keys.sort_unstable();
    for key in keys {
        let (name, arch) = key;
        let group = &groups[&key];
        let installed = group
            .installed
            .iter()
            .map(|k| &input.installed[k])
            .max_by(|a, b| newer(&a.version, &b.version).then_with(|| a.version.cmp(&b.version)));
        let best = group
            .candidates
            .iter()
            .filter(|&i| assessments[i].approved())
            .max_by(|&i, &j| {
                newer(&candidates[i].version, &candidates[j].version).then_with(|| {
                    tie_break(
                        (&candidates[i], &assessments[i]),
                        (&candidates[j], &assessments[j]),
                    )
                })
            });
        let best_is_newer = match (best, installed) {
            (Some(i), Some(inst)) => {
                newer(&candidates[i].version, &inst.version) == Ordering::Greater
            }
            _ => false,
        };
        let to_install = if best_is_newer { best } else { None };
        push_verdicts(
            baseline,
            candidates,
            &assessments,
            group.candidates.iter(),
            to_install,
            &mut verdicts,
        );
        let Some(inst) = installed else {
            if best.is_some() {
                counts.add(PatchState::NotApplicable);
            }
            continue;
        };
        let installed_rejected = baseline.spec.rejected_patches_action
            == RejectedPatchesAction::Block
            && (baseline.rejected.matches(&PatchTarget {
                name,
                arch,
                version: &inst.version,
                advisory: None,
                cves: &[],
                bugzillas: &[],
            }) || group.candidates.iter().any(|i| {
                assessments[i].rejected
                    && newer(&candidates[i].version, &inst.version) == Ordering::Equal
            }));
        let state = match best {
            Some(i) if best_is_newer => {
                if input
                    .install_result
                    .failed
                    .iter()
                    .any(|r| r.names(name, arch, &candidates[i].version))
                {
                    PatchState::Failed
                } else {
                    PatchState::Missing
                }
            }
            _ if installed_rejected => PatchState::InstalledRejected,
            Some(_) => {
                if input
                    .install_result
                    .pending_reboot
                    .iter()
                    .any(|r| r.names(name, arch, &inst.version))
                {
                    PatchState::InstalledPendingReboot
                } else {
                    PatchState::Installed
                }
            }
            None => PatchState::InstalledOther,
        };
        counts.add(state);
        if state == PatchState::InstalledPendingReboot {
            reboot_required = true;
        }
        if !state.is_non_compliant() {
            continue;
        }
        // The candidate that describes the patch: the approved one, or for a rejected
        // installed version the candidate record of that version, if any.
        let described = match state {
            PatchState::InstalledRejected => group
                .candidates
                .iter()
                .filter(|&i| newer(&candidates[i].version, &inst.version) == Ordering::Equal)
                .max_by(|&i, &j| {
                    tie_break(
                        (&candidates[i], &assessments[i]),
                        (&candidates[j], &assessments[j]),
                    )
                }),
            _ => best,
        };
        let level = match state {
            PatchState::InstalledRejected => ComplianceLevel::Unspecified,
            _ => described
                .and_then(|i| assessments[i].level())
                .unwrap_or_default(),
        };
        let security = described.is_some_and(|i| assessments[i].security);
        by_severity.add(level);
        if security {
            security_nc += 1;
        } else {
            other_nc += 1;
        }
        non_compliant.push(((name, arch), inst, described, state, level, best_is_newer));
    }

    // Most severe first, so truncation keeps what matters; then by name for stability.
    non_compliant.sort_unstable_by(|a, b| b.4.cmp(&a.4).then_with(|| a.0.cmp(&b.0)));
    let truncated = non_compliant.len() > MAX_REPORTED_PATCHES;
    non_compliant.truncate(MAX_REPORTED_PATCHES);
    let patches: Vec<PatchStatus> = non_compliant
        .into_iter()
        .map(
            |((name, arch), inst, described, state, level, best_is_newer)| {
                let c = described.map(|i| &candidates[i]);
                PatchStatus {
                    name: name.to_owned(),
                    arch: arch.map(str::to_owned),
                    installed_version: Some(inst.version.clone()),
                    available_version: if best_is_newer {
                        c.map(|c| c.version.clone())
                    } else {
                        None
                    },
                    state,
                    classification: c
                        .and_then(|c| effective_classification(family, c))
                        .map(str::to_owned),
                    severity: c.and_then(|c| c.severity.clone()),
                    compliance_level: Some(level),
                    release_date: c.and_then(Candidate::effective_release_date).map(Time),
                    cves: c
                        .map(|c| c.cves.iter().take(MAX_REPORTED_CVES).cloned().collect())
                        .unwrap_or_default(),
                    advisory: c.and_then(|c| c.advisory.clone()),
                }
            },
        )
        .collect();
    let status = NodePatchReportStatus {
        baseline: Some(baseline.baseline_ref()),
        compliance: if by_severity.total() > 0 {
            Compliance::NonCompliant
        } else {
            Compliance::Compliant
        },
        compliance_level: highest_level(&by_severity),
        counts,
        non_compliant_by_severity: by_severity,
        security_non_compliant: security_nc,
        other_non_compliant: other_nc,
        reboot_required,
        patches,
        truncated,
        ..NodePatchReportStatus::default()
    };
    Ok(Evaluation {
        baseline: baseline.baseline_ref(),
        status,
        candidates: verdicts,
    })
}

/// Append the verdicts of one package's candidates, ordered by version (then by content, so
/// duplicates order the same whatever the input order).
fn push_verdicts(
    baseline: &ResolvedBaseline,
    candidates: &[Candidate],
    assessments: &[Assessment<'_>],
    group: impl Iterator<Item = usize>,
    to_install: Option<usize>,
    out: &mut Vec<CandidateVerdict>,
) {
    let start = out.len();
    for i in group {
        let (c, a) = (&candidates[i], &assessments[i]);
        let approved = a.approved();
        let (approved_by, also_approved_by) = if approved {
            a.approvers(baseline)
        } else {
            (None, ApprovalSet::default())
        };
        out.push(CandidateVerdict {
            name: c.name.clone(),
            arch: c.arch.clone(),
            version: c.version.clone(),
            approved,
            approved_by,
            also_approved_by,
            compliance_level: if approved { a.level() } else { None },
            security: a.security,
            rejected: a.rejected,
            to_install: to_install == Some(i),
            reason: a.reason,
            approvable_on: a.approvable_on,
            blocked_by: a.blocked_by.map(str::to_owned),
        });
    }
    let family = baseline.family;
    out[start..].sort_unstable_by(|a, b| {
        compare_versions(family, &a.version, &b.version)
            .then_with(|| a.version.cmp(&b.version))
            .then_with(|| a.arch.cmp(&b.arch))
            .then_with(|| verdict_key(a).cmp(&verdict_key(b)))
    });
}

/// Remaining fields of a verdict, for a total order between duplicates.
fn verdict_key(v: &CandidateVerdict) -> impl Ord + '_ {
    (
        v.approved,
        v.approved_by,
        v.also_approved_by,
        v.compliance_level,
        v.security,
        v.rejected,
        v.to_install,
        v.reason,
        v.approvable_on,
        v.blocked_by.as_deref(),
    )
}

/// Highest compliance level among the non-compliant patches (all of them, also those cut by
/// truncation); none when the node is compliant.
fn highest_level(by_severity: &SeverityCounts) -> Option<ComplianceLevel> {
    if by_severity.total() == 0 {
        return None;
    }
    let levels = [
        (by_severity.critical, ComplianceLevel::Critical),
        (by_severity.high, ComplianceLevel::High),
        (by_severity.medium, ComplianceLevel::Medium),
        (by_severity.low, ComplianceLevel::Low),
        (by_severity.informational, ComplianceLevel::Informational),
    ];
    Some(
        levels
            .iter()
            .find(|(n, _)| *n > 0)
            .map_or(ComplianceLevel::Unspecified, |(_, l)| *l),
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::baseline::model::{InstallResult, PackageRef, Relation};

    fn now() -> Timestamp {
        "2024-06-15T12:00:00Z".parse().expect("timestamp")
    }

    fn day(d: &str) -> Option<Timestamp> {
        crate::baseline::model::parse_release_time(d).ok()
    }

    fn installed(name: &str, version: &str) -> InstalledPackage {
        InstalledPackage {
            name: name.into(),
            arch: Some("x86_64".into()),
            version: version.into(),
            source: None,
        }
    }

    fn candidate(
        name: &str,
        version: &str,
        classification: Option<&str>,
        severity: Option<&str>,
    ) -> Candidate {
        Candidate {
            name: name.into(),
            arch: Some("x86_64".into()),
            version: version.into(),
            classification: classification.map(Into::into),
            severity: severity.map(Into::into),
            advisory: classification.map(|_| format!("RHSA-2024:{}", name.len())),
            release_date: day("2024-06-01"),
            ..Candidate::default()
        }
    }

    fn filter(key: PatchFilterKey, values: &[&str]) -> PatchFilter {
        PatchFilter {
            key,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn rule(filters: Vec<PatchFilter>, days: u32, level: ComplianceLevel) -> ApprovalRule {
        ApprovalRule {
            filters,
            approve_after_days: Some(days),
            approve_until_date: None,
            compliance_level: level,
            enable_non_security: false,
        }
    }

    fn rhel(rules: Vec<ApprovalRule>) -> PatchBaselineSpec {
        PatchBaselineSpec {
            operating_system: OperatingSystem::RedHatEnterpriseLinux,
            default: false,
            description: None,
            global_filters: vec![],
            approval_rules: rules,
            approved_patches: vec![],
            approved_patches_compliance_level: ComplianceLevel::Unspecified,
            approved_patches_enable_non_security: false,
            rejected_patches: vec![],
            rejected_patches_action: RejectedPatchesAction::AllowAsDependency,
            sources: vec![],
        }
    }

    fn run(spec: &PatchBaselineSpec, input: &EvaluationInput) -> Evaluation {
        let b = ResolvedBaseline::resolve("test", spec).expect("valid baseline");
        evaluate(&b, input, now()).expect("evaluates")
    }

    fn verdict<'a>(e: &'a Evaluation, name: &str, version: &str) -> &'a CandidateVerdict {
        e.candidates
            .iter()
            .find(|v| v.name == name && v.version == version)
            .unwrap_or_else(|| panic!("no verdict for {name} {version}"))
    }

    #[test]
    fn newest_approved_version_is_missing_and_the_rest_counts_by_state() {
        let spec = rhel(vec![rule(
            vec![filter(PatchFilterKey::Classification, &["Security"])],
            7,
            ComplianceLevel::High,
        )]);
        let input = EvaluationInput {
            operating_system: Some(OperatingSystem::RedHatEnterpriseLinux),
            installed: vec![
                installed("openssl", "1:3.0.7-24.el9"),
                installed("bash", "5.1.8-6.el9"),
                installed("zlib", "1.2.11-40.el9"),
            ],
            candidates: vec![
                candidate(
                    "openssl",
                    "1:3.0.7-25.el9",
                    Some("Security"),
                    Some("Important"),
                ),
                candidate(
                    "openssl",
                    "1:3.0.7-27.el9",
                    Some("Security"),
                    Some("Moderate"),
                ),
                candidate("bash", "5.1.8-9.el9", Some("Bugfix"), None),
                candidate("zlib", "1.2.11-40.el9", Some("Security"), Some("Low")),
                candidate("httpd", "2.4.57-5.el9", Some("Security"), Some("Important")),
            ],
            ..EvaluationInput::default()
        };
        let e = run(&spec, &input);
        let s = &e.status;
        assert_eq!(s.compliance, Compliance::NonCompliant);
        assert_eq!(
            s.counts,
            PatchStateCounts {
                installed: 1,
                installed_other: 1,
                missing: 1,
                not_applicable: 1,
                ..PatchStateCounts::default()
            }
        );
        assert_eq!(s.patches.len(), 1);
        assert_eq!(
            s.patches[0].available_version.as_deref(),
            Some("1:3.0.7-27.el9")
        );
        assert_eq!(s.patches[0].state, PatchState::Missing);
        assert_eq!(s.compliance_level, Some(ComplianceLevel::High));
        assert_eq!(s.non_compliant_by_severity.high, 1);
        assert_eq!((s.security_non_compliant, s.other_non_compliant), (1, 0));
        assert!(verdict(&e, "openssl", "1:3.0.7-27.el9").to_install);
        assert!(!verdict(&e, "openssl", "1:3.0.7-25.el9").to_install);
        assert_eq!(
            verdict(&e, "bash", "5.1.8-9.el9").reason,
            VerdictReason::NoRuleMatched
        );
        assert_eq!(e.install_set().count(), 1);
        assert_eq!(s.baseline.as_ref().map(|b| b.name.as_str()), Some("test"));
    }

    #[test]
    fn failed_and_pending_reboot_outcomes_are_reported() {
        let spec = rhel(vec![rule(vec![], 0, ComplianceLevel::Critical)]);
        let mut input = EvaluationInput {
            installed: vec![
                installed("kernel", "5.14.0-362.el9"),
                installed("kernel", "5.14.0-427.el9"),
                installed("curl", "7.76.1-26.el9"),
            ],
            candidates: vec![
                candidate(
                    "kernel",
                    "5.14.0-427.el9",
                    Some("Security"),
                    Some("Important"),
                ),
                candidate("curl", "7.76.1-29.el9", Some("Security"), Some("Moderate")),
            ],
            install_result: InstallResult {
                failed: vec![PackageRef {
                    name: "curl".into(),
                    arch: None,
                    version: None,
                }],
                pending_reboot: vec![PackageRef {
                    name: "kernel".into(),
                    arch: Some("x86_64".into()),
                    version: Some("5.14.0-427.el9".into()),
                }],
                reboot_required: false,
            },
            ..EvaluationInput::default()
        };
        let e = run(&spec, &input);
        assert_eq!(e.status.counts.failed, 1);
        assert_eq!(e.status.counts.installed_pending_reboot, 1);
        assert!(e.status.reboot_required);
        assert_eq!(e.status.compliance_level, Some(ComplianceLevel::Critical));
        input.install_result = InstallResult::default();
        let e = run(&spec, &input);
        assert_eq!(
            e.status.counts.installed, 1,
            "the newest installed kernel is the approved one"
        );
        assert_eq!(e.status.counts.missing, 1);
        assert!(!e.status.reboot_required);
    }

    #[test]
    fn block_removes_updates_that_need_a_rejected_package_and_reports_it_installed_rejected() {
        let mut spec = rhel(vec![rule(vec![], 0, ComplianceLevel::Medium)]);
        spec.rejected_patches = vec!["libfoo*".into()];
        spec.rejected_patches_action = RejectedPatchesAction::Block;
        let mut app = candidate("app", "2.0-1", Some("Security"), Some("Important"));
        app.dependencies = Some(vec![Dependency {
            name: "libfoo".into(),
            relation: Some(Relation::GreaterOrEqual),
            version: Some("2.0".into()),
        }]);
        let mut tool = candidate("tool", "1.1-1", Some("Security"), None);
        tool.dependencies = Some(vec![Dependency {
            name: "app".into(),
            relation: Some(Relation::Equal),
            version: Some("2.0-1".into()),
        }]);
        let input = EvaluationInput {
            installed: vec![
                installed("app", "1.0-1"),
                installed("libfoo", "1.0-1"),
                installed("tool", "1.0-1"),
            ],
            candidates: vec![
                app,
                tool,
                candidate("libfoo", "2.0-1", Some("Security"), Some("Critical")),
            ],
            ..EvaluationInput::default()
        };
        let e = run(&spec, &input);
        let app = verdict(&e, "app", "2.0-1");
        assert!(!app.approved);
        assert_eq!(app.reason, VerdictReason::BlockedByRejectedDependency);
        assert_eq!(app.blocked_by.as_deref(), Some("libfoo"));
        let tool = verdict(&e, "tool", "1.1-1");
        assert_eq!(
            (tool.approved, tool.blocked_by.as_deref()),
            (false, Some("app")),
            "blocking is transitive"
        );
        assert_eq!(e.status.counts.installed_rejected, 1);
        assert_eq!(e.status.counts.installed_other, 2);
        assert_eq!(e.status.compliance, Compliance::NonCompliant);

        // AllowAsDependency: nothing blocked, rejected installed package is InstalledOther.
        spec.rejected_patches_action = RejectedPatchesAction::AllowAsDependency;
        let e = run(&spec, &input);
        assert!(verdict(&e, "app", "2.0-1").approved);
        assert_eq!(e.status.counts.installed_rejected, 0);
        assert_eq!(e.status.counts.missing, 2);
    }

    #[test]
    fn errors_name_the_field() {
        let mut spec = rhel(vec![rule(
            vec![filter(PatchFilterKey::Severity, &["Critical", "-x"])],
            0,
            ComplianceLevel::High,
        )]);
        let err = ResolvedBaseline::resolve("b", &spec).expect_err("bad value");
        assert_eq!(err.field(), "approvalRules[0].filters[0].values[1]");
        spec.approval_rules[0].filters.clear();
        spec.approval_rules[0].approve_after_days = None;
        spec.approval_rules[0].approve_until_date = Some("2024-13-01".into());
        assert_eq!(
            ResolvedBaseline::resolve("b", &spec)
                .expect_err("bad date")
                .field(),
            "approvalRules[0].approveUntilDate"
        );
        spec.approval_rules.clear();
        spec.rejected_patches = vec!["ok".into(), "RHSA-2024:1".into()];
        let err = ResolvedBaseline::resolve("b", &spec).expect_err("id in rejected");
        assert_eq!(
            (err.field(), err.category()),
            ("rejectedPatches[1]", "InvalidPatchName")
        );
        let other = EvaluationInput {
            operating_system: Some(OperatingSystem::Ubuntu),
            ..EvaluationInput::default()
        };
        let b = ResolvedBaseline::resolve("b", &rhel(vec![])).expect("valid");
        assert_eq!(
            evaluate(&b, &other, now()).expect_err("os").category(),
            "OperatingSystemMismatch"
        );
    }

    #[test]
    fn more_than_500_non_compliant_patches_are_truncated_most_severe_first() {
        let spec = rhel(vec![
            rule(
                vec![filter(PatchFilterKey::Severity, &["Critical"])],
                0,
                ComplianceLevel::Critical,
            ),
            rule(vec![], 0, ComplianceLevel::Low),
        ]);
        let mut input = EvaluationInput::default();
        for i in 0..600 {
            let name = format!("pkg{i:03}");
            input.installed.push(installed(&name, "1.0-1"));
            let sev = if i % 100 == 7 { "Critical" } else { "Low" };
            input
                .candidates
                .push(candidate(&name, "1.0-2", Some("Security"), Some(sev)));
        }
        let e = run(&spec, &input);
        assert_eq!(e.status.counts.missing, 600);
        assert_eq!(e.status.patches.len(), MAX_REPORTED_PATCHES);
        assert!(e.status.truncated);
        assert_eq!(e.status.non_compliant_by_severity.critical, 6);
        assert!(
            e.status.patches[..6]
                .iter()
                .all(|p| p.compliance_level == Some(ComplianceLevel::Critical))
        );
        assert_eq!(
            verdict(&e, "pkg007", "1.0-2").approved_by,
            Some(ApprovalSource::Rule(0))
        );
        assert_eq!(
            verdict(&e, "pkg007", "1.0-2")
                .also_approved_by
                .iter()
                .collect::<Vec<_>>(),
            vec![ApprovalSource::Rule(1)]
        );
    }

    // ---- property tests ----

    const NAMES: [&str; 5] = ["a", "b", "c", "libx", "liby"];
    const VERSIONS: [&str; 5] = ["1.0-1", "1.0-2", "1.1-1", "2.0-1", "0.9-1"];

    fn arb_candidate() -> impl Strategy<Value = Candidate> {
        (
            0..NAMES.len(),
            0..VERSIONS.len(),
            prop_oneof![Just(None), Just(Some("Security")), Just(Some("Bugfix"))],
            prop_oneof![
                Just(None),
                Just(Some("Critical")),
                Just(Some("Important")),
                Just(Some("Low"))
            ],
            prop::option::of(0i64..40),
            prop::option::of(prop::collection::vec(
                (0..NAMES.len(), prop::option::of(0..VERSIONS.len())),
                0..3,
            )),
            prop::bool::ANY,
        )
            .prop_map(
                |(n, v, class, sev, days_ago, deps, security_repo)| Candidate {
                    name: NAMES[n].into(),
                    arch: Some("x86_64".into()),
                    version: VERSIONS[v].into(),
                    repositories: vec![if security_repo {
                        "baseos-security".into()
                    } else {
                        "appstream".into()
                    }],
                    classification: class.map(Into::into),
                    severity: sev.map(Into::into),
                    advisory: class.map(|c| format!("RHSA-2024:{c}{n}")),
                    release_date: days_ago
                        .map(|d| now() - jiff::SignedDuration::from_hours(24 * d)),
                    dependencies: deps.map(|ds| {
                        ds.into_iter()
                            .map(|(dn, dv)| Dependency {
                                name: NAMES[dn].into(),
                                relation: dv.map(|_| Relation::GreaterOrEqual),
                                version: dv.map(|i| VERSIONS[i].into()),
                            })
                            .collect()
                    }),
                    ..Candidate::default()
                },
            )
    }

    fn arb_rule() -> impl Strategy<Value = ApprovalRule> {
        (
            prop::sample::subsequence(vec!["Security", "Bugfix", "*"], 0..=2),
            prop::sample::subsequence(vec!["Critical", "Important", "Low"], 0..=2),
            prop_oneof![Just(0u32), Just(7), Just(30)],
            prop::bool::ANY,
            prop_oneof![
                Just(ComplianceLevel::Critical),
                Just(ComplianceLevel::Low),
                Just(ComplianceLevel::Unspecified)
            ],
        )
            .prop_map(|(classes, sevs, days, non_sec, level)| {
                let mut filters = vec![];
                if !classes.is_empty() {
                    filters.push(filter(PatchFilterKey::Classification, &classes));
                }
                if !sevs.is_empty() {
                    filters.push(filter(PatchFilterKey::Severity, &sevs));
                }
                ApprovalRule {
                    filters,
                    approve_after_days: Some(days),
                    approve_until_date: None,
                    compliance_level: level,
                    enable_non_security: non_sec,
                }
            })
    }

    fn arb_spec() -> impl Strategy<Value = PatchBaselineSpec> {
        (
            prop::collection::vec(arb_rule(), 0..4),
            prop::sample::subsequence(vec!["a", "lib*", "1.1-1", "CVE-2024-0001"], 0..=2),
            prop::sample::subsequence(vec!["b", "liby", "c-2.0-1"], 0..=2),
            prop::bool::ANY,
        )
            .prop_map(|(rules, approved, rejected, block)| {
                let mut s = rhel(rules);
                s.approved_patches = approved.into_iter().map(Into::into).collect();
                s.rejected_patches = rejected.into_iter().map(Into::into).collect();
                if block {
                    s.rejected_patches_action = RejectedPatchesAction::Block;
                }
                s
            })
    }

    fn arb_input() -> impl Strategy<Value = EvaluationInput> {
        (
            prop::collection::vec((0..NAMES.len(), 0..VERSIONS.len()), 0..6),
            prop::collection::vec(arb_candidate(), 0..12),
            prop::collection::vec(0..NAMES.len(), 0..2),
        )
            .prop_map(|(inst, mut cands, failed)| {
                // Unique (name, version) candidates, so verdicts can be compared as sets.
                cands.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
                cands.dedup_by(|a, b| a.name == b.name && a.version == b.version);
                EvaluationInput {
                    operating_system: Some(OperatingSystem::RedHatEnterpriseLinux),
                    installed: inst
                        .into_iter()
                        .map(|(n, v)| installed(NAMES[n], VERSIONS[v]))
                        .collect(),
                    candidates: cands,
                    install_result: InstallResult {
                        failed: failed
                            .into_iter()
                            .map(|n| PackageRef {
                                name: NAMES[n].into(),
                                arch: None,
                                version: None,
                            })
                            .collect(),
                        ..InstallResult::default()
                    },
                    ..EvaluationInput::default()
                }
            })
    }

    fn approved_set(e: &Evaluation) -> std::collections::BTreeSet<(String, String)> {
        e.candidates
            .iter()
            .filter(|v| v.approved)
            .map(|v| (v.name.clone(), v.version.clone()))
            .collect()
    }

    proptest! {
        #[test]
        fn verdict_does_not_depend_on_input_order(spec in arb_spec(), input in arb_input(), seed in any::<u64>()) {
            let forward = run(&spec, &input);
            let mut shuffled = input.clone();
            // A seeded rotation + reversal permutes both lists.
            let k = (seed as usize) % (shuffled.candidates.len() + 1);
            let k = k.min(shuffled.candidates.len());
            shuffled.candidates.rotate_left(k);
            shuffled.candidates.reverse();
            shuffled.installed.reverse();
            let m = (seed as usize >> 8) % (shuffled.installed.len() + 1);
            let m = m.min(shuffled.installed.len());
            shuffled.installed.rotate_left(m);
            let mut spec2 = spec.clone();
            spec2.approved_patches.reverse();
            spec2.rejected_patches.reverse();
            prop_assert_eq!(run(&spec2, &shuffled), forward);
        }

        #[test]
        fn a_rejected_patch_is_never_approved(spec in arb_spec(), input in arb_input()) {
            let e = run(&spec, &input);
            for v in &e.candidates {
                prop_assert!(!(v.rejected && (v.approved || v.to_install)), "{:?}", v);
            }
        }

        #[test]
        fn adding_an_approval_rule_never_reduces_the_approved_set(spec in arb_spec(), extra in arb_rule(), input in arb_input()) {
            let before = approved_set(&run(&spec, &input));
            let mut more = spec.clone();
            more.approval_rules.push(extra);
            let after = approved_set(&run(&more, &input));
            prop_assert!(before.is_subset(&after), "lost {:?}", before.difference(&after).collect::<Vec<_>>());
        }

        #[test]
        fn block_never_approves_what_needs_a_rejected_package(spec in arb_spec(), input in arb_input()) {
            let mut spec = spec;
            spec.rejected_patches_action = RejectedPatchesAction::Block;
            let e = run(&spec, &input);
            let rejected: std::collections::BTreeSet<(String, String)> =
                e.candidates.iter().filter(|v| v.rejected).map(|v| (v.name.clone(), v.version.clone())).collect();
            for c in &input.candidates {
                let v = e.candidates.iter().find(|v| v.name == c.name && v.version == c.version).expect("verdict");
                if !v.approved {
                    continue;
                }
                for d in c.dependencies.iter().flatten() {
                    let met_by_installed = input.installed.iter().any(|p| p.name == d.name && satisfies(PackageFamily::Rpm, &p.version, d));
                    let providers: Vec<&Candidate> = input.candidates.iter().filter(|p| p.name == d.name && satisfies(PackageFamily::Rpm, &p.version, d)).collect();
                    let only_rejected = !providers.is_empty() && providers.iter().all(|p| rejected.contains(&(p.name.clone(), p.version.clone())));
                    prop_assert!(met_by_installed || !only_rejected, "{} {} approved but {} only from rejected versions", c.name, c.version, d.name);
                }
            }
        }
    }
}
