//! Step 4, `rejectedPatchesAction: Block`: candidates whose dependencies can only be met by
//! rejected (or themselves blocked) versions are not approved either.

use super::approval::Assessment;
use super::types::VerdictReason;
use crate::api::PackageFamily;
use crate::baseline::model::{Candidate, Dependency, InstalledPackage};
use crate::baseline::version::{compare_versions, rpm};
use rustc_hash::{FxHashMap, FxHashSet};

/// True when `version` meets `dep`'s version relation.
pub(super) fn satisfies(family: PackageFamily, version: &str, dep: &Dependency) -> bool {
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
pub(super) fn block_rejected_dependencies<'a>(
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
            assessments[i].approvable_at = None;
        }
    }
}
