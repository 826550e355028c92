//! Step 5 and the verdict: group installed versions and candidates per package (name, arch),
//! pick the newest approved version of each, give each package its SSM compliance state, and
//! build the NodePatchReport status (counts, the most severe non-compliant patches) and the
//! per-candidate verdicts.

use std::cmp::Ordering;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::approval::{Assessment, effective_classification};
use super::compile::ResolvedBaseline;
use super::types::{ApprovalSet, CandidateVerdict, Evaluation};
use crate::api::{
    Compliance, ComplianceLevel, MAX_REPORTED_PATCHES, NodePatchReportStatus, PatchState,
    PatchStateCounts, PatchStatus, RejectedPatchesAction, SeverityCounts,
};
use crate::baseline::model::{Candidate, EvaluationInput, InstalledPackage};
use crate::baseline::names::PatchTarget;
use crate::baseline::version::compare_versions;
use rustc_hash::FxHashMap;

/// Most CVE ids listed per patch in a report.
const MAX_REPORTED_CVES: usize = 20;

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

/// Installed versions and candidates grouped per package, keys sorted by (name, arch).
struct Grouping<'a> {
    groups: FxHashMap<PackageKey<'a>, PackageGroup>,
    /// The keys of `groups`, sorted, so the output does not depend on the input order.
    keys: Vec<PackageKey<'a>>,
}

/// Group installed versions and candidates per package (name, arch). An arch-independent
/// candidate of a single-arch installed package joins that package's group.
fn group_packages(input: &EvaluationInput) -> Grouping<'_> {
    let candidates = &input.candidates;
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
    let mut keys: Vec<PackageKey<'_>> = groups.keys().copied().collect();
    keys.sort_unstable();
    Grouping { groups, keys }
}

/// Step 5 and the verdict: per package the version to install and the compliance state, then
/// the NodePatchReport status and one verdict per candidate.
pub(super) fn judge(
    baseline: &ResolvedBaseline,
    input: &EvaluationInput,
    assessments: &[Assessment<'_>],
) -> Evaluation {
    let family = baseline.family;
    let candidates = &input.candidates;
    let Grouping { groups, keys } = group_packages(input);

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
    for key in keys {
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
        // Block: the newest update a rule or approvedPatches approves but a rejected dependency
        // keeps out. SSM reports the package MISSING (FAILED after an install), not compliant.
        let blocked_update = match (best_is_newer, installed) {
            (false, Some(inst)) => group
                .candidates
                .iter()
                .filter(|&i| assessments[i].blocked_by_rejected_dependency())
                .filter(|&i| newer(&candidates[i].version, &inst.version) == Ordering::Greater)
                .max_by(|&i, &j| {
                    newer(&candidates[i].version, &candidates[j].version).then_with(|| {
                        tie_break(
                            (&candidates[i], &assessments[i]),
                            (&candidates[j], &assessments[j]),
                        )
                    })
                }),
            _ => None,
        };
        push_verdicts(
            baseline,
            candidates,
            assessments,
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
        let state = package_state(
            baseline,
            input,
            assessments,
            key,
            group,
            inst,
            best.filter(|_| best_is_newer).or(blocked_update),
            best.is_some(),
        );
        counts.add(state);
        if state == PatchState::InstalledPendingReboot {
            reboot_required = true;
        }
        if !state.is_non_compliant() {
            continue;
        }
        let (described, level) = describe_patch(
            family,
            candidates,
            assessments,
            group,
            inst,
            state,
            blocked_update.or(best),
        );
        let security = described.is_some_and(|i| assessments[i].security);
        by_severity.add(level);
        if security {
            security_nc += 1;
        } else {
            other_nc += 1;
        }
        non_compliant.push((
            key,
            inst,
            described,
            state,
            level,
            best_is_newer || blocked_update.is_some(),
        ));
    }

    let (patches, omitted) = reported_patches(family, candidates, non_compliant);
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
        truncated: omitted > 0,
        patches_omitted: u32::try_from(omitted).unwrap_or(u32::MAX),
        ..NodePatchReportStatus::default()
    };
    Evaluation {
        baseline: baseline.baseline_ref(),
        status,
        candidates: verdicts,
    }
}

/// The candidate that describes a non-compliant patch (the approved one, or for a rejected
/// installed version the candidate record of that version, if any) and the patch's level.
fn describe_patch(
    family: crate::api::PackageFamily,
    candidates: &[Candidate],
    assessments: &[Assessment<'_>],
    group: &PackageGroup,
    inst: &InstalledPackage,
    state: PatchState,
    best: Option<usize>,
) -> (Option<usize>, ComplianceLevel) {
    if state != PatchState::InstalledRejected {
        let level = best
            .and_then(|i| assessments[i].level())
            .unwrap_or_default();
        return (best, level);
    }
    let described = group
        .candidates
        .iter()
        .filter(|&i| {
            compare_versions(family, &candidates[i].version, &inst.version) == Ordering::Equal
        })
        .max_by(|&i, &j| {
            tie_break(
                (&candidates[i], &assessments[i]),
                (&candidates[j], &assessments[j]),
            )
        });
    (described, ComplianceLevel::Unspecified)
}

/// SSM's state of an installed package: `newer_approved` is the approved version newer than
/// the installed one (to install), or under Block the newer version a rejected dependency keeps
/// out; `any_approved` whether some version is approved at all.
#[allow(clippy::too_many_arguments)]
fn package_state(
    baseline: &ResolvedBaseline,
    input: &EvaluationInput,
    assessments: &[Assessment<'_>],
    (name, arch): PackageKey<'_>,
    group: &PackageGroup,
    inst: &InstalledPackage,
    newer_approved: Option<usize>,
    any_approved: bool,
) -> PatchState {
    let family = baseline.family;
    let candidates = &input.candidates;
    if let Some(i) = newer_approved {
        return if input
            .install_result
            .failed
            .iter()
            .any(|r| r.names(name, arch, &candidates[i].version))
        {
            PatchState::Failed
        } else {
            PatchState::Missing
        };
    }
    let installed_rejected = baseline.spec.rejected_patches_action == RejectedPatchesAction::Block
        && (baseline.rejected.matches(&PatchTarget {
            name,
            arch,
            version: &inst.version,
            advisory: None,
            cves: &[],
            bugzillas: &[],
        }) || group.candidates.iter().any(|i| {
            assessments[i].rejected
                && compare_versions(family, &candidates[i].version, &inst.version)
                    == Ordering::Equal
        }));
    if installed_rejected {
        PatchState::InstalledRejected
    } else if !any_approved {
        PatchState::InstalledOther
    } else if input
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

/// The `patches` of the report: the non-compliant patches most severe first (then by name, for
/// stability), at most [`MAX_REPORTED_PATCHES`]; and how many were cut.
fn reported_patches(
    family: crate::api::PackageFamily,
    candidates: &[Candidate],
    mut non_compliant: Vec<NonCompliantPatch<'_>>,
) -> (Vec<PatchStatus>, usize) {
    non_compliant.sort_unstable_by(|a, b| b.4.cmp(&a.4).then_with(|| a.0.cmp(&b.0)));
    let omitted = non_compliant.len().saturating_sub(MAX_REPORTED_PATCHES);
    non_compliant.truncate(MAX_REPORTED_PATCHES);
    let patches = non_compliant
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
    (patches, omitted)
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
            approvable_at: a.approvable_at,
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
        v.approvable_at,
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
