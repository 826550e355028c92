//! Patch evaluation, pure: version ordering per package family, the package/patch model, the
//! name grammars of approved and rejected lists, predefined baselines, content hashes, and the
//! evaluation of a baseline against a node's packages into a compliance verdict, the way AWS
//! Systems Manager Patch Manager defines it. Nothing here does I/O or reads the clock: `now` is
//! an argument.
//!
//! The entry points:
//! - [`ResolvedBaseline::resolve`] validates a `PatchBaselineSpec` (errors name the field) and
//!   computes its hash; [`evaluate`] turns a resolved baseline, an [`EvaluationInput`] and `now`
//!   into an [`Evaluation`]: the NodePatchReport status fields plus one verdict per candidate.
//! - [`predefined_baseline`] / [`predefined_for`] / [`predefined_baselines`] give the built-in
//!   baselines; [`baseline_hash`] the content hash of a spec.
//! - [`compare_versions`] orders versions like dpkg, rpm or apk.

pub mod evaluate;
pub mod hash;
pub mod model;
pub mod names;
pub mod predefined;
pub mod preview;
pub mod version;
pub mod wildcard;

pub use evaluate::{
    ApprovalSet, ApprovalSource, BaselineError, CandidateVerdict, Evaluation, EvaluationError,
    ResolvedBaseline, VerdictReason, evaluate,
};
pub use hash::baseline_hash;
pub use model::{
    Candidate, Dependency, EvaluationInput, InstallResult, InstalledPackage, PackageRef, Relation,
};
pub use names::{NameError, PatchListKind, parse_patch_entry};
pub use predefined::{
    PREDEFINED_PREFIX, PredefinedBaseline, predefined_baseline, predefined_baselines,
    predefined_for, predefined_name,
};
pub use version::{VersionError, compare_versions, validate_version};
