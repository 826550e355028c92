//! Evaluate a baseline against a node's packages, in SSM Patch Manager's order:
//!
//! 1. **Global filters**: a candidate that fails one is never approved by a rule.
//! 2. **Approval rules** (any rule approves): filters AND-ed, values OR-ed, `*` wildcards, then
//!    `approveAfterDays` (release instant + N × 24 h ≤ now, as the SSM API reference counts) or
//!    `approveUntilDate` (released on or before that day, UTC). Without `enableNonSecurity` a rule only sees SSM's security
//!    candidates: on apt, versions offered by a security suite; on rpm and zypper, packages
//!    listed in an update notice (updateinfo advisory or zypper patch) of any classification,
//!    which the rule's Classification filter then narrows (so a `Bugfix` rule approves bugfix
//!    advisories without `enableNonSecurity`, as SSM's predefined baselines do); on apk, secdb
//!    fixes. `enableNonSecurity` adds the rest (packages no notice mentions, other apt suites).
//! 3. **approvedPatches** approve regardless of global filters and rules, only within the
//!    security candidates unless `approvedPatchesEnableNonSecurity` (every family, apt too).
//! 4. **rejectedPatches** are removed (an entry in both lists is rejected). With
//!    `rejectedPatchesAction: Block`, and dependency data, a candidate whose dependency can only
//!    be met by rejected (or themselves blocked) versions is not approved either; its package is
//!    `Missing` (SSM's MISSING for scans), or `Failed` once an install reported it failed.
//! 5. Per package (name, arch), the **newest** approved version is the one to install.
//!
//! Each approved candidate carries the highest compliance level of the rules / list approving
//! it. Per package the state is then (SSM's compliance states): an approved newer version →
//! `Missing` (`Failed` if the last install of it failed); an installed version rejected under
//! Block → `InstalledRejected`; installed at or above the newest approved version → `Installed`
//! (`InstalledPendingReboot` if the last install left it waiting for a reboot); installed and not
//! approved → `InstalledOther` (including rejected packages under AllowAsDependency); approved
//! but not installed → `NotApplicable`.
//!
//! The steps live in their own modules: `compile` (the spec into a [`ResolvedBaseline`]),
//! `approval` (steps 1–4 per candidate), `dependency` (Block's dependency closure) and
//! `verdict` (step 5, per-package states and the report).

mod approval;
mod compile;
mod dependency;
mod types;
mod verdict;

use jiff::Timestamp;

pub use compile::ResolvedBaseline;
pub use types::{
    ApprovalSet, ApprovalSource, BaselineError, CandidateVerdict, Evaluation, EvaluationError,
    VerdictReason,
};

use crate::api::RejectedPatchesAction;
use crate::baseline::model::EvaluationInput;

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
    // Steps 1–4 per candidate, then Block's dependency closure over all of them.
    let mut assessments = approval::assess_candidates(baseline, input, now);
    if baseline.spec.rejected_patches_action == RejectedPatchesAction::Block {
        dependency::block_rejected_dependencies(
            baseline.family,
            &input.candidates,
            &input.installed,
            &mut assessments,
        );
    }
    // Step 5 and the report.
    Ok(verdict::judge(baseline, input, &assessments))
}

#[cfg(test)]
mod tests;
