//! Step 0, compile: validate a `PatchBaselineSpec` into a [`ResolvedBaseline`], with every
//! filter value checked and pre-classified, identical filters of several rules shared, rule
//! timings turned into epoch days, the approved / rejected lists parsed in the OS family's
//! grammar, and the content hash computed. Errors name the offending field.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::types::BaselineError;
use crate::api::{
    ApprovalRule, BaselineRef, ComplianceLevel, OperatingSystem, PackageFamily, PatchBaselineSpec,
    PatchFilter, PatchFilterKey,
};
use crate::baseline::hash::baseline_hash;
use crate::baseline::names::{PatchListKind, PatchNameList};
use crate::baseline::wildcard::wildcard_match;

/// Most global filters, rules, filters per rule, values per filter, list entries (the CRD's limits).
const MAX_GLOBAL_FILTERS: usize = 4;
const MAX_RULES: usize = 10;
const MAX_FILTERS_PER_RULE: usize = 4;
const MAX_VALUES_PER_FILTER: usize = 20;
const MAX_VALUE_LEN: usize = 64;
const MAX_LIST_ENTRIES: usize = 500;
const MAX_APPROVE_AFTER_DAYS: u32 = 360;

/// One filter value, pre-classified so the common shapes avoid the general glob matcher.
#[derive(Clone, Debug)]
pub(super) enum Pattern {
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

    pub(super) fn matches(&self, text: &str, ignore_case: bool) -> bool {
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
pub(super) struct CompiledFilter {
    pub(super) key: PatchFilterKey,
    values: Vec<String>,
    pub(super) patterns: Vec<Pattern>,
    /// Some value is exactly `*`: matches everything, even a property the candidate lacks.
    pub(super) matches_all: bool,
    /// Names, repositories and architectures are case-sensitive; the vendor vocabularies
    /// (classification, severity, priority, section, product) are not (updateinfo writes
    /// `important` as often as `Important`).
    pub(super) ignore_case: bool,
}

/// When a matching candidate becomes approved (integer arithmetic per candidate instead of
/// calendar arithmetic).
#[derive(Clone, Copy, Debug)]
pub(super) enum Timing {
    /// `approveAfterDays` (absent = 0): that many 24-hour days after the release instant.
    AfterDays(i64),
    /// `approveUntilDate`, as a UTC day number since 1970-01-01 (released on or before it).
    UntilDate(i64),
}

/// Seconds in one approval day.
pub(super) const SECONDS_PER_DAY: i64 = 86_400;

/// The UTC calendar day of `ts`, as days since 1970-01-01.
fn epoch_day(ts: Timestamp) -> i64 {
    ts.as_second().div_euclid(SECONDS_PER_DAY)
}

#[derive(Clone, Debug)]
pub(super) struct CompiledRule {
    /// Indexes into `ResolvedBaseline::filters`, cheapest first (AND is commutative).
    pub(super) filter_ids: Vec<usize>,
    pub(super) timing: Timing,
    pub(super) level: ComplianceLevel,
    pub(super) enable_non_security: bool,
}

/// A validated baseline, ready to evaluate many nodes: every entry parsed, every date checked,
/// and its content hash computed.
#[derive(Clone, Debug)]
pub struct ResolvedBaseline {
    name: String,
    pub(super) spec: PatchBaselineSpec,
    pub(super) family: PackageFamily,
    /// Distinct filters of the global filters and all rules (at most 4 + 10 × 4 = 44).
    pub(super) filters: Vec<CompiledFilter>,
    /// Indexes into `filters`, cheapest first.
    pub(super) global_filter_ids: Vec<usize>,
    pub(super) rules: Vec<CompiledRule>,
    pub(super) approved: PatchNameList,
    pub(super) rejected: PatchNameList,
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

fn compile_filter(
    os: OperatingSystem,
    field: &str,
    filter: &PatchFilter,
) -> Result<CompiledFilter, BaselineError> {
    if !filter.key.applies_to(os.family()) {
        let valid: Vec<&str> = OperatingSystem::ALL
            .into_iter()
            .filter(|o| filter.key.applies_to(o.family()))
            .map(OperatingSystem::as_str)
            .collect();
        return Err(BaselineError::InvalidFilter {
            field: format!("{field}.key"),
            reason: format!(
                "filter key {} is not valid for operatingSystem {os} (it applies to: {})",
                filter.key.as_str(),
                valid.join(", ")
            ),
        });
    }
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
            PatchFilterKey::Name
                | PatchFilterKey::Repository
                | PatchFilterKey::Arch
                | PatchFilterKey::Epoch
                | PatchFilterKey::Version
                | PatchFilterKey::Release
        ),
    })
}

/// Compile `filter` into `table`, reusing an identical one; returns its index.
fn intern_filter(
    table: &mut Vec<CompiledFilter>,
    os: OperatingSystem,
    field: &str,
    filter: &PatchFilter,
) -> Result<usize, BaselineError> {
    let compiled = compile_filter(os, field, filter)?;
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
    os: OperatingSystem,
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
        .map(|(i, f)| intern_filter(table, os, &format!("{field}.filters[{i}]"), f))
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
            .map(|(i, f)| {
                intern_filter(
                    &mut filters,
                    spec.operating_system,
                    &format!("globalFilters[{i}]"),
                    f,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        global_filter_ids.sort_by_key(|&i| filter_cost(&filters[i]));
        let rules = spec
            .approval_rules
            .iter()
            .enumerate()
            .map(|(i, r)| compile_rule(spec.operating_system, i, r, &mut filters))
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
