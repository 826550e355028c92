//! Which baseline a node is evaluated with, decided once for controller and agent alike: the
//! baseline a policy references for the node's OS, else the one baseline marked default for that
//! OS, else the predefined baseline. The controller chooses among cluster PatchBaselines when a
//! run starts; the agent chooses among the run's snapshots (each one the baseline for its OS), so
//! both read the same rule. Pure: candidates are passed in.

use crate::api::{BaselineSnapshot, OperatingSystem, PatchBaseline};

/// Something a baseline can be chosen from: a cluster PatchBaseline or a run's snapshot.
pub trait BaselineCandidate {
    /// Name of the baseline.
    fn baseline_name(&self) -> &str;
    /// OS the baseline is for.
    fn operating_system(&self) -> OperatingSystem;
    /// Whether it is the default for its OS (a run's snapshot always is: it is *the* baseline
    /// of its OS for that run).
    fn is_default(&self) -> bool;
}

impl BaselineCandidate for PatchBaseline {
    fn baseline_name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or("")
    }
    fn operating_system(&self) -> OperatingSystem {
        self.spec.operating_system
    }
    fn is_default(&self) -> bool {
        self.spec.default
    }
}

impl BaselineCandidate for BaselineSnapshot {
    fn baseline_name(&self) -> &str {
        &self.name
    }
    fn operating_system(&self) -> OperatingSystem {
        self.operating_system
    }
    fn is_default(&self) -> bool {
        true
    }
}

/// The outcome of [`choose_baseline`].
#[derive(Debug, PartialEq)]
pub enum BaselineChoice<'a, T> {
    /// This candidate (referenced, or the single default for the OS).
    Candidate(&'a T),
    /// None fits: the predefined baseline of the OS.
    Predefined,
}

/// Why no baseline can be chosen: the user must fix references or default flags.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChooseBaselineError {
    /// Two referenced baselines are for the same OS.
    #[error("baselineRefs name two baselines for {os}: {first} and {second}")]
    TwoReferenced {
        /// The OS.
        os: OperatingSystem,
        /// First one found.
        first: String,
        /// Second one found.
        second: String,
    },
    /// More than one baseline is the default for the OS.
    #[error("{} PatchBaselines are the default for {os} ({}): mark only one default", .names.len(), .names.join(", "))]
    ManyDefaults {
        /// The OS.
        os: OperatingSystem,
        /// Every default's name.
        names: Vec<String>,
    },
}

impl ChooseBaselineError {
    /// Bounded label for metrics and reasons.
    pub fn category(&self) -> &'static str {
        match self {
            ChooseBaselineError::TwoReferenced { .. } => "two_referenced",
            ChooseBaselineError::ManyDefaults { .. } => "many_defaults",
        }
    }
}

/// Choose the baseline of `os`: the candidate `refs` names for that OS, else the OS's single
/// default candidate, else the predefined baseline. Errors name what is ambiguous.
pub fn choose_baseline<'a, T: BaselineCandidate>(
    os: OperatingSystem,
    refs: &[String],
    candidates: impl IntoIterator<Item = &'a T> + Clone,
) -> Result<BaselineChoice<'a, T>, ChooseBaselineError> {
    let mut referenced = candidates
        .clone()
        .into_iter()
        .filter(|b| b.operating_system() == os && refs.iter().any(|r| r == b.baseline_name()));
    if let Some(b) = referenced.next() {
        if let Some(other) = referenced.next() {
            return Err(ChooseBaselineError::TwoReferenced {
                os,
                first: b.baseline_name().to_string(),
                second: other.baseline_name().to_string(),
            });
        }
        return Ok(BaselineChoice::Candidate(b));
    }
    let defaults: Vec<&T> = candidates
        .into_iter()
        .filter(|b| b.is_default() && b.operating_system() == os)
        .collect();
    match defaults.as_slice() {
        [] => Ok(BaselineChoice::Predefined),
        [one] => Ok(BaselineChoice::Candidate(one)),
        many => Err(ChooseBaselineError::ManyDefaults {
            os,
            names: many.iter().map(|b| b.baseline_name().to_string()).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PatchBaselineSpec;
    use serde_json::json;

    fn baseline(name: &str, os: OperatingSystem, default: bool) -> PatchBaseline {
        let mut spec: PatchBaselineSpec =
            serde_json::from_value(json!({"operatingSystem": os.as_str()})).expect("spec");
        spec.default = default;
        PatchBaseline::new(name, spec)
    }

    fn name<T: BaselineCandidate>(c: BaselineChoice<'_, T>) -> String {
        match c {
            BaselineChoice::Candidate(b) => b.baseline_name().to_string(),
            BaselineChoice::Predefined => "predefined".into(),
        }
    }

    #[test]
    fn baseline_resolution_prefers_ref_then_default_then_predefined() {
        let bs = [
            baseline("u-ref", OperatingSystem::Ubuntu, false),
            baseline("u-def", OperatingSystem::Ubuntu, true),
        ];
        let refs = vec!["u-ref".to_string()];
        let pick = |os, refs: &[String]| name(choose_baseline(os, refs, bs.iter()).expect("ok"));
        assert_eq!(pick(OperatingSystem::Ubuntu, &refs), "u-ref");
        assert_eq!(pick(OperatingSystem::Ubuntu, &[]), "u-def");
        assert_eq!(pick(OperatingSystem::Debian, &refs), "predefined");
    }

    #[test]
    fn two_defaults_for_one_os_is_an_error_naming_both() {
        let bs = [
            baseline("a", OperatingSystem::Debian, true),
            baseline("b", OperatingSystem::Debian, true),
        ];
        let err = choose_baseline(OperatingSystem::Debian, &[], bs.iter()).expect_err("two");
        assert_eq!(
            err.to_string(),
            "2 PatchBaselines are the default for Debian (a, b): mark only one default"
        );
        let refs = vec!["a".to_string(), "b".to_string()];
        let err = choose_baseline(OperatingSystem::Debian, &refs, bs.iter()).expect_err("two");
        assert_eq!(
            err.to_string(),
            "baselineRefs name two baselines for Debian: a and b"
        );
        assert_eq!(err.category(), "two_referenced");
    }

    #[test]
    fn an_agent_takes_the_runs_snapshot_for_its_os_else_the_predefined() {
        let snapshot = |os: OperatingSystem, name: &str| BaselineSnapshot {
            operating_system: os,
            name: name.into(),
            hash: "h".into(),
            baseline: baseline(name, os, false).spec,
        };
        let snapshots = [
            snapshot(OperatingSystem::Ubuntu, "u"),
            snapshot(OperatingSystem::Debian, "d"),
        ];
        let pick = |os| name(choose_baseline(os, &[], snapshots.iter()).expect("ok"));
        assert_eq!(pick(OperatingSystem::Debian), "d");
        assert_eq!(pick(OperatingSystem::Ubuntu), "u");
        assert_eq!(pick(OperatingSystem::Alpine), "predefined");
    }
}
