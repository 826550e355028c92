//! What a draft baseline changes on one node: the draft's verdict next to the current
//! baseline's, both from the same read of the node (a Preview run's per-node result). Pure.

use std::collections::HashSet;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{
    Compliance, MAX_PREVIEW_PATCHES, NodePatchReportStatus, PatchStatus, PreviewPatch,
    PreviewResult,
};

/// Compare the draft's evaluation with the current baseline's: the draft's verdict, the current
/// one, and the patches whose non-compliance the draft adds or removes (keyed by name and
/// architecture; a package non-compliant under both, even at another version, is no change).
/// Lists are cut at [`MAX_PREVIEW_PATCHES`]; counts are complete. A verdict computed from a
/// truncated patch list (over 500 non-compliant patches) marks the result truncated, since
/// patches past the list cannot be compared.
pub fn preview_result(
    run: &str,
    current: &NodePatchReportStatus,
    draft: &NodePatchReportStatus,
    now: Timestamp,
) -> PreviewResult {
    let keys = |s: &NodePatchReportStatus| -> HashSet<(String, Option<String>)> {
        s.patches
            .iter()
            .filter(|p| p.state.is_non_compliant())
            .map(|p| (p.name.clone(), p.arch.clone()))
            .collect()
    };
    let (current_keys, draft_keys) = (keys(current), keys(draft));
    let only_in = |s: &NodePatchReportStatus, other: &HashSet<(String, Option<String>)>| {
        s.patches
            .iter()
            .filter(|p| p.state.is_non_compliant())
            .filter(|p| !other.contains(&(p.name.clone(), p.arch.clone())))
            .map(preview_patch)
            .collect::<Vec<_>>()
    };
    let mut newly_missing = only_in(draft, &current_keys);
    let mut no_longer_missing = only_in(current, &draft_keys);
    let newly_missing_count = count(newly_missing.len());
    let no_longer_missing_count = count(no_longer_missing.len());
    let cut =
        newly_missing.len() > MAX_PREVIEW_PATCHES || no_longer_missing.len() > MAX_PREVIEW_PATCHES;
    newly_missing.truncate(MAX_PREVIEW_PATCHES);
    no_longer_missing.truncate(MAX_PREVIEW_PATCHES);
    PreviewResult {
        run: run.to_string(),
        time: Some(Time(now)),
        compliance: draft.compliance,
        compliance_level: draft.compliance_level,
        current_compliance: current.compliance,
        counts: draft.counts.clone(),
        newly_missing,
        no_longer_missing,
        newly_missing_count,
        no_longer_missing_count,
        truncated: cut || current.truncated || draft.truncated,
        message: None,
    }
}

/// A preview that could not evaluate the node (`compliance` Unknown, or NotApplicable when the
/// draft is for another OS), with the reason.
pub fn preview_failure(
    run: &str,
    compliance: Compliance,
    message: String,
    now: Timestamp,
) -> PreviewResult {
    PreviewResult {
        run: run.to_string(),
        time: Some(Time(now)),
        compliance,
        current_compliance: Compliance::Unknown,
        message: Some(message),
        ..PreviewResult::default()
    }
}

fn preview_patch(p: &PatchStatus) -> PreviewPatch {
    PreviewPatch {
        name: p.name.clone(),
        arch: p.arch.clone(),
        installed_version: p.installed_version.clone(),
        available_version: p.available_version.clone(),
        state: p.state,
        classification: p.classification.clone(),
        severity: p.severity.clone(),
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PatchState;

    fn patch(name: &str, state: PatchState) -> PatchStatus {
        PatchStatus {
            name: name.into(),
            arch: Some("amd64".into()),
            installed_version: Some("1.0".into()),
            available_version: Some("1.1".into()),
            state,
            classification: None,
            severity: None,
            compliance_level: None,
            release_date: None,
            cves: Vec::new(),
            advisory: None,
        }
    }

    fn status(compliance: Compliance, patches: Vec<PatchStatus>) -> NodePatchReportStatus {
        NodePatchReportStatus {
            compliance,
            patches,
            ..NodePatchReportStatus::default()
        }
    }

    #[test]
    fn lists_what_the_draft_adds_and_removes() {
        let now = Timestamp::UNIX_EPOCH;
        let current = status(
            Compliance::NonCompliant,
            vec![
                patch("a", PatchState::Missing),
                patch("b", PatchState::Missing),
            ],
        );
        let draft = status(
            Compliance::NonCompliant,
            vec![
                patch("b", PatchState::Missing),
                patch("c", PatchState::Missing),
                patch("d", PatchState::Installed),
            ],
        );
        let r = preview_result("p1", &current, &draft, now);
        let names = |v: &[PreviewPatch]| v.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&r.newly_missing), ["c"]);
        assert_eq!(names(&r.no_longer_missing), ["a"]);
        assert_eq!((r.newly_missing_count, r.no_longer_missing_count), (1, 1));
        assert_eq!(r.current_compliance, Compliance::NonCompliant);
        assert!(!r.truncated);
    }

    #[test]
    fn a_flip_to_non_compliant_and_the_list_bound() {
        let now = Timestamp::UNIX_EPOCH;
        let current = status(Compliance::Compliant, Vec::new());
        let many: Vec<PatchStatus> = (0..150)
            .map(|i| patch(&format!("p{i}"), PatchState::Missing))
            .collect();
        let draft = status(Compliance::NonCompliant, many);
        let r = preview_result("p1", &current, &draft, now);
        assert_eq!(r.compliance, Compliance::NonCompliant);
        assert_eq!(r.current_compliance, Compliance::Compliant);
        assert_eq!(r.newly_missing.len(), MAX_PREVIEW_PATCHES);
        assert_eq!(r.newly_missing_count, 150);
        assert!(r.truncated);
    }

    #[test]
    fn a_truncated_verdict_makes_the_preview_truncated() {
        let now = Timestamp::UNIX_EPOCH;
        let mut current = status(
            Compliance::NonCompliant,
            vec![patch("a", PatchState::Missing)],
        );
        current.truncated = true;
        let draft = current.clone();
        assert!(preview_result("p1", &current, &draft, now).truncated);
    }
}
