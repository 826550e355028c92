//! Steps 1–4 for one candidate: global filters, approval rules (filters, SSM's implicit security
//! scope, approveAfterDays / approveUntilDate), approvedPatches and rejectedPatches, into an
//! [`Assessment`] that records who approves it, at which level, and why not otherwise.

use jiff::Timestamp;

use super::compile::{CompiledFilter, ResolvedBaseline, SECONDS_PER_DAY, Timing};
use super::types::{ApprovalSet, ApprovalSource, VerdictReason};
use crate::api::{ComplianceLevel, PackageFamily, PatchFilterKey};
use crate::baseline::model::{Candidate, EvaluationInput};
use crate::baseline::names::PatchTarget;
use crate::baseline::version::rpm::Evr;

/// Assess every candidate of `input` (steps 1–4), in input order, at `now`.
pub(super) fn assess_candidates<'a>(
    baseline: &ResolvedBaseline,
    input: &'a EvaluationInput,
    now: Timestamp,
) -> Vec<Assessment<'a>> {
    let node_product = input.product.as_deref();
    // Product filters of candidates without their own product depend only on the node:
    // evaluate them once.
    let mut node_filters = FilterCache::default();
    let node_only = Candidate::default();
    for (id, f) in baseline.filters.iter().enumerate() {
        if f.key == PatchFilterKey::Product {
            node_filters.passes(baseline, id, &node_only, node_product);
        }
    }
    input
        .candidates
        .iter()
        .map(|c| assess(baseline, c, node_product, now.as_second(), node_filters))
        .collect()
}

/// Per-candidate intermediate result.
#[derive(Clone, Debug)]
pub(super) struct Assessment<'a> {
    /// Bit i: approvalRules[i] approves it (at most 10 rules).
    rule_approvals: u16,
    /// approvedPatches approves it.
    list_approval: bool,
    /// Highest level of the approvers.
    level: Option<ComplianceLevel>,
    /// Listed in rejectedPatches.
    pub(super) rejected: bool,
    /// A security update (reporting: securityNonCompliant).
    pub(super) security: bool,
    /// Block: the dependency that cannot be met (set by the dependency step).
    pub(super) blocked_by: Option<&'a str>,
    pub(super) reason: VerdictReason,
    /// With `ApprovalPending`: the first instant a rule approves it.
    pub(super) approvable_at: Option<Timestamp>,
}

impl Assessment<'_> {
    /// Some rule or approvedPatches approves it, whether or not rejected or blocked.
    fn has_approver(&self) -> bool {
        self.rule_approvals != 0 || self.list_approval
    }

    pub(super) fn approved(&self) -> bool {
        self.has_approver() && !self.rejected && self.blocked_by.is_none()
    }

    /// Approved by a rule or approvedPatches, not itself rejected, but kept out by Block because
    /// a dependency can only be met by rejected versions.
    pub(super) fn blocked_by_rejected_dependency(&self) -> bool {
        self.has_approver() && !self.rejected && self.blocked_by.is_some()
    }

    pub(super) fn level(&self) -> Option<ComplianceLevel> {
        self.level
    }

    fn approve(&mut self, level: ComplianceLevel) {
        self.level = Some(self.level.map_or(level, |l| l.max(level)));
    }

    /// The primary approver (highest level, first in rule order on ties) and the others.
    pub(super) fn approvers(
        &self,
        baseline: &ResolvedBaseline,
    ) -> (Option<ApprovalSource>, ApprovalSet) {
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
pub(super) fn effective_classification(family: PackageFamily, c: &Candidate) -> Option<&str> {
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
        PatchFilterKey::CveId => c.cves.iter().any(|v| any(Some(v))),
        PatchFilterKey::AdvisoryId => any(c.advisory.as_deref()),
        PatchFilterKey::BugzillaId => c.bugzillas.iter().any(|v| any(Some(v))),
        // rpm's EVR of the candidate: an unwritten epoch is 0, as rpm compares it.
        PatchFilterKey::Epoch => any(Some(Evr::split(&c.version).epoch.unwrap_or("0"))),
        PatchFilterKey::Version => any(Some(Evr::split(&c.version).version)),
        PatchFilterKey::Release => any(Evr::split(&c.version).release),
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
    now: i64,
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
        approvable_at: None,
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
    // The release instant (seconds since the epoch), computed once and only when a rule needs it.
    let mut release_second: Option<Option<i64>> = None;
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
            let release = *release_second
                .get_or_insert_with(|| c.effective_release_date().map(|t| t.as_second()));
            let approve = |a: &mut Assessment| {
                a.rule_approvals |= 1 << i;
                a.approve(rule.level);
            };
            match rule.timing {
                // SSM: without a release date the delay counts as zero. With one, the delay
                // counts from the release instant (API reference: released at
                // 2025-11-09T18:00:00Z with ApproveAfterDays 7 → approved after
                // 2025-11-16T18:00:00Z), so from that instant on.
                Timing::AfterDays(days) => match release {
                    None => approve(&mut a),
                    Some(at) => {
                        let approvable = at.saturating_add(days * SECONDS_PER_DAY);
                        if approvable <= now {
                            approve(&mut a);
                        } else {
                            best_miss = best_miss.min(VerdictReason::ApprovalPending);
                            if let Ok(t) = Timestamp::from_second(approvable) {
                                a.approvable_at = Some(a.approvable_at.map_or(t, |d| d.min(t)));
                            }
                        }
                    }
                },
                // SSM: "Any patches released on or before this date are installed
                // automatically": the whole UTC day counts.
                Timing::UntilDate(cutoff) => match release {
                    Some(at) if at.div_euclid(SECONDS_PER_DAY) <= cutoff => approve(&mut a),
                    Some(_) => best_miss = best_miss.min(VerdictReason::ReleasedAfterCutoff),
                    None => best_miss = best_miss.min(VerdictReason::NoReleaseDate),
                },
            }
        }
    }
    // approvedPatches stay within the security candidates unless
    // approvedPatchesEnableNonSecurity, on every family (apt: a version only a non-security
    // suite offers is approved only with the flag).
    let list_scope_ok = baseline.spec.approved_patches_enable_non_security || in_scope;
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
        a.approvable_at = None;
    }
    a
}
