//! Start planning of a run, pure: whether the run must wait for another run of its policy, and
//! which targets and baseline snapshots it fixes from the policy's member nodes. The PatchRun
//! reconciler gathers the observations (runs, member nodes and their OS) and writes the result.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::baseline::{BaselineChoice, ChooseBaselineError, choose_baseline};
use super::initial_targets;
use super::targeting::patchability;
use crate::api::{
    BaselineSnapshot, InstallHooks, OperatingSystem, Operation, PatchBaseline, PatchPolicySpec,
    RunTarget, TargetState,
};
use crate::baseline::ResolvedBaseline;
use crate::baseline::predefined::predefined_for;

/// What start planning needs to know of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunEntry {
    /// Run name.
    pub name: String,
    /// Its policy.
    pub policy: String,
    /// Creation time (one-second resolution, so the name breaks ties).
    pub created: Option<Timestamp>,
    /// It has started (a start time or targets in status).
    pub started: bool,
    /// It has finished.
    pub finished: bool,
}

/// One active run per policy: `run` waits while another run of its policy has started and not
/// finished, or an older one (creation time, then name) waits too.
pub fn must_wait_for_active_run<'a>(
    run: &RunEntry,
    others: impl IntoIterator<Item = &'a RunEntry>,
) -> bool {
    let order = |r: &RunEntry| (r.created, r.name.clone());
    let mine = order(run);
    others.into_iter().any(|other| {
        other.policy == run.policy
            && other.name != run.name
            && !other.finished
            && (other.started || order(other) < mine)
    })
}

/// A member node of the policy, as observed when the run starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberNode {
    /// Node name.
    pub name: String,
    /// `status.nodeInfo.osImage`.
    pub os_image: String,
    /// The node's `kubernetes.io/os` label.
    pub kubernetes_os: Option<String>,
    /// The node's value of the policy's `topologyKey` label, if any.
    pub topology: Option<String>,
}

/// What a run fixes when it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct StartPlan {
    /// Every target: pending nodes sorted by name, then nodes skipped for their OS.
    pub targets: Vec<RunTarget>,
    /// One baseline snapshot per OS among the targets, in OS order.
    pub snapshots: Vec<BaselineSnapshot>,
}

/// Why a run cannot start; the run fails with reason `InvalidBaseline`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// References or default flags are ambiguous.
    #[error(transparent)]
    Choice(#[from] ChooseBaselineError),
    /// The chosen baseline does not resolve.
    #[error("PatchBaseline {name}: {message}")]
    Unresolvable {
        /// Baseline name.
        name: String,
        /// The resolver's message.
        message: String,
    },
}

impl StartError {
    /// Bounded label for metrics and reasons.
    pub fn category(&self) -> &'static str {
        match self {
            StartError::Choice(e) => e.category(),
            StartError::Unresolvable { .. } => "unresolvable",
        }
    }

    /// The reason the run fails with.
    pub fn reason(&self) -> &'static str {
        "InvalidBaseline"
    }
}

/// Targets and snapshots of a run over `members`: a node nodepatch does not patch is Skipped
/// with the [`NotPatchable`](super::targeting::NotPatchable) reason and its image; each OS gets the baseline [`choose_baseline`] picks among
/// `baselines` for `refs`, resolved and hashed once.
pub fn plan_start<'a>(
    members: &[MemberNode],
    refs: &[String],
    baselines: impl IntoIterator<Item = &'a PatchBaseline> + Clone,
    now: Timestamp,
) -> Result<StartPlan, StartError> {
    let mut snapshots: BTreeMap<OperatingSystem, BaselineSnapshot> = BTreeMap::new();
    let mut pending = vec![];
    let mut skipped = vec![];
    for node in members {
        let os = match patchability(&node.os_image, node.kubernetes_os.as_deref(), now) {
            Ok(os) => os,
            Err(why) => {
                skipped.push(RunTarget {
                    node: node.name.clone(),
                    state: TargetState::Skipped,
                    reason: Some(why.as_str().to_string()),
                    message: Some(format!("osImage {:?}", node.os_image)),
                    end_time: Some(Time(now)),
                    ..Default::default()
                });
                continue;
            }
        };
        if let std::collections::btree_map::Entry::Vacant(slot) = snapshots.entry(os) {
            slot.insert(snapshot_for(os, refs, baselines.clone())?);
        }
        pending.push((node.name.clone(), node.topology.clone()));
    }
    let mut targets = initial_targets(pending);
    targets.extend(skipped);
    Ok(StartPlan {
        targets,
        snapshots: snapshots.into_values().collect(),
    })
}

/// The install hooks a run fixes at start: its policy's `install.preInstall` and
/// `install.postInstall`, for an install run that has at least one (scans run no hooks).
pub fn run_hooks(operation: Operation, policy: &PatchPolicySpec) -> Option<InstallHooks> {
    let install = policy
        .install
        .as_ref()
        .filter(|_| operation == Operation::Install)?;
    let hooks = InstallHooks {
        pre_install: install.pre_install.clone(),
        post_install: install.post_install.clone(),
    };
    (hooks != InstallHooks::default()).then_some(hooks)
}

/// The snapshot of `os`'s baseline: chosen, resolved, hashed.
fn snapshot_for<'a>(
    os: OperatingSystem,
    refs: &[String],
    baselines: impl IntoIterator<Item = &'a PatchBaseline> + Clone,
) -> Result<BaselineSnapshot, StartError> {
    let (name, spec) = match choose_baseline(os, refs, baselines)? {
        BaselineChoice::Candidate(b) => {
            (b.metadata.name.clone().unwrap_or_default(), b.spec.clone())
        }
        BaselineChoice::Predefined => {
            let p = predefined_for(os);
            (p.name, p.spec)
        }
    };
    let resolved =
        ResolvedBaseline::resolve(name.clone(), &spec).map_err(|e| StartError::Unresolvable {
            name: name.clone(),
            message: e.to_string(),
        })?;
    Ok(BaselineSnapshot {
        operating_system: os,
        name,
        hash: resolved.hash().to_string(),
        baseline: spec,
    })
}

/// A manual run's node subset (`spec.nodes`) applied to the policy's members: the members it
/// names, in member order; `Err` lists (sorted) the names that are not members, and then the run
/// touches no node. An empty subset means every member.
pub fn node_subset(members: &[String], requested: &[String]) -> Result<Vec<String>, Vec<String>> {
    if requested.is_empty() {
        return Ok(members.to_vec());
    }
    let mut strangers: Vec<String> = requested
        .iter()
        .filter(|n| !members.contains(n))
        .cloned()
        .collect();
    if !strangers.is_empty() {
        strangers.sort();
        strangers.dedup();
        return Err(strangers);
    }
    Ok(members
        .iter()
        .filter(|m| requested.contains(m))
        .cloned()
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PatchBaselineSpec;
    use serde_json::json;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn entry(name: &str, created: &str, started: bool, finished: bool) -> RunEntry {
        RunEntry {
            name: name.into(),
            policy: "p".into(),
            created: Some(ts(created)),
            started,
            finished,
        }
    }

    fn member(name: &str, os_image: &str, topology: Option<&str>) -> MemberNode {
        MemberNode {
            name: name.into(),
            os_image: os_image.into(),
            kubernetes_os: Some("linux".into()),
            topology: topology.map(str::to_string),
        }
    }

    #[test]
    fn a_run_waits_for_a_started_or_older_run_of_its_policy() {
        let me = entry("b", "2026-01-01T00:00:00Z", false, false);
        let older = entry("a", "2026-01-01T00:00:00Z", false, false);
        let newer_started = entry("c", "2026-01-01T00:00:05Z", true, false);
        let newer_waiting = entry("c", "2026-01-01T00:00:05Z", false, false);
        let finished = entry("a", "2025-01-01T00:00:00Z", true, true);
        let other_policy = RunEntry {
            policy: "q".into(),
            ..older.clone()
        };
        assert!(
            must_wait_for_active_run(&me, [&older]),
            "same second: by name"
        );
        assert!(must_wait_for_active_run(&me, [&newer_started]));
        assert!(!must_wait_for_active_run(&me, [&newer_waiting]));
        assert!(!must_wait_for_active_run(&me, [&finished, &other_policy]));
        assert!(!must_wait_for_active_run(&me, [&me]), "not itself");
    }

    #[test]
    fn members_become_sorted_targets_with_one_snapshot_per_os_and_unsupported_ones_skipped() {
        let now = ts("2026-01-01T00:00:00Z");
        let members = [
            member("n2", "Ubuntu 24.04.1 LTS", Some("z1")),
            member("n1", "Debian GNU/Linux 12 (bookworm)", None),
            member("n3", "Ubuntu 22.04.4 LTS", Some("z2")),
            member("win", "Windows Server 2022", None),
        ];
        let plan = plan_start(&members, &[], std::iter::empty(), now).expect("plan");
        let nodes: Vec<(&str, TargetState)> = plan
            .targets
            .iter()
            .map(|t| (t.node.as_str(), t.state))
            .collect();
        assert_eq!(
            nodes,
            [
                ("n1", TargetState::Pending),
                ("n2", TargetState::Pending),
                ("n3", TargetState::Pending),
                ("win", TargetState::Skipped)
            ]
        );
        assert_eq!(plan.targets[1].topology.as_deref(), Some("z1"));
        assert_eq!(plan.targets[3].reason.as_deref(), Some("UnsupportedOS"));
        assert_eq!(
            plan.targets[3].message.as_deref(),
            Some("osImage \"Windows Server 2022\"")
        );
        let snapshots: Vec<&str> = plan.snapshots.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            snapshots,
            ["nodepatch-predefined-debian", "nodepatch-predefined-ubuntu"]
        );
        assert!(plan.snapshots.iter().all(|s| !s.hash.is_empty()));
    }

    #[test]
    fn install_runs_fix_their_policys_hooks_and_scans_none() {
        let policy: PatchPolicySpec = serde_json::from_value(json!({
            "nodeSelector": {},
            "install": {
                "maintenanceWindowRefs": ["w"],
                "preInstall": {"command": ["/usr/local/bin/pre", "a b"], "timeout": "30s"}
            }
        }))
        .expect("policy");
        let hooks = run_hooks(Operation::Install, &policy).expect("hooks");
        let pre = hooks.pre_install.expect("pre");
        assert_eq!(pre.command, ["/usr/local/bin/pre", "a b"]);
        assert_eq!(pre.timeout, "30s");
        assert!(hooks.post_install.is_none());
        assert_eq!(
            run_hooks(Operation::Scan, &policy),
            None,
            "scans run no hooks"
        );
        let bare: PatchPolicySpec = serde_json::from_value(
            json!({"nodeSelector": {}, "install": {"maintenanceWindowRefs": ["w"]}}),
        )
        .expect("policy");
        assert_eq!(
            run_hooks(Operation::Install, &bare),
            None,
            "no empty hooks object"
        );
    }

    #[test]
    fn an_ambiguous_default_stops_the_start_naming_the_baselines() {
        let mut spec: PatchBaselineSpec =
            serde_json::from_value(json!({"operatingSystem": "Debian"})).expect("spec");
        spec.default = true;
        let bs = [
            PatchBaseline::new("a", spec.clone()),
            PatchBaseline::new("b", spec),
        ];
        let members = [member("n1", "Debian GNU/Linux 12 (bookworm)", None)];
        let err = plan_start(&members, &[], bs.iter(), Timestamp::UNIX_EPOCH).expect_err("two");
        assert_eq!(err.reason(), "InvalidBaseline");
        assert!(err.to_string().contains("(a, b)"), "{err}");
    }

    #[test]
    fn a_node_subset_keeps_member_order_and_refuses_strangers() {
        let members: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let ask = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(node_subset(&members, &[]), Ok(members.clone()));
        assert_eq!(
            node_subset(&members, &ask(&["c", "a"])),
            Ok(ask(&["a", "c"]))
        );
        assert_eq!(
            node_subset(&members, &ask(&["z", "a", "y"])),
            Err(ask(&["y", "z"]))
        );
    }
}
