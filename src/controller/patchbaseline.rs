//! PatchBaseline reconciler: `Ready` (the baseline parses, and it is not one of two defaults for
//! its OS), the rule count and content hash, and node counts from the reports evaluated with it.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;

use super::context::Context;
use super::error::Result;
use super::harness;
use crate::api::conditions::{self, new_condition, set_condition, set_health};
use crate::api::{
    Compliance, NodeComplianceCounts, NodePatchReport, PatchBaseline, PatchBaselineStatus,
};
use crate::baseline::ResolvedBaseline;

const KIND: &str = "PatchBaseline";

/// Decide a baseline's status from itself, its peers and the reports. Pure.
pub fn plan_baseline_status<'a>(
    baseline: &PatchBaseline,
    peers: impl IntoIterator<Item = &'a PatchBaseline>,
    reports: impl IntoIterator<Item = &'a NodePatchReport>,
    now: Timestamp,
) -> PatchBaselineStatus {
    let name = baseline.name_any();
    let generation = baseline.metadata.generation;
    let old = baseline.status.clone().unwrap_or_default();
    let mut conditions = old.conditions.clone();
    let resolved = ResolvedBaseline::resolve(name.clone(), &baseline.spec);
    let other_defaults: Vec<String> = peers
        .into_iter()
        .filter(|p| {
            baseline.spec.default
                && p.spec.default
                && p.spec.operating_system == baseline.spec.operating_system
                && p.name_any() != name
        })
        .map(|p| p.name_any())
        .collect();
    let (ready, reason, message) = match (&resolved, other_defaults.is_empty()) {
        (Err(e), _) => (false, "InvalidBaseline", format!("spec.{e}")),
        (Ok(_), false) => (
            false,
            "DuplicateDefault",
            format!(
                "PatchBaselines {} and {} are both the default for {}: mark only one default",
                name,
                other_defaults.join(", "),
                baseline.spec.operating_system
            ),
        ),
        (Ok(_), true) => (true, "Valid", "baseline is valid".to_string()),
    };
    set_condition(
        &mut conditions,
        new_condition(
            conditions::READY,
            ready.into(),
            reason,
            message,
            generation,
            now,
        ),
    );
    // kstatus (docs/gitops.md): an invalid baseline (or a second default) is Stalled until a
    // spec changes; a valid one is Current.
    let health = conditions::health_from_ready(&conditions);
    set_health(&mut conditions, &health, generation, now);
    let mut nodes = NodeComplianceCounts::default();
    for report in reports {
        let Some(status) = &report.status else {
            continue;
        };
        if status.baseline.as_ref().is_none_or(|b| b.name != name) {
            continue;
        }
        nodes.total += 1;
        match status.compliance {
            Compliance::Compliant => nodes.compliant += 1,
            Compliance::NonCompliant => nodes.non_compliant += 1,
            Compliance::NotApplicable => nodes.not_applicable += 1,
            Compliance::Unknown => nodes.unknown += 1,
        }
    }
    PatchBaselineStatus {
        observed_generation: generation,
        nodes,
        rules: baseline.spec.approval_rules.len() as u32,
        hash: resolved.ok().map(|r| r.hash().to_string()),
        conditions,
    }
}

/// Reconcile one baseline.
pub async fn reconcile(baseline: Arc<PatchBaseline>, ctx: Arc<Context>) -> Result<Action> {
    harness::instrumented(KIND, baseline.as_ref(), &ctx, async {
        let peers = ctx.stores.baselines.state();
        let reports = ctx.stores.reports.state();
        let status = plan_baseline_status(
            &baseline,
            peers.iter().map(|p| p.as_ref()),
            reports.iter().map(|r| r.as_ref()),
            Timestamp::now(),
        );
        harness::apply_status_if_changed(
            ctx.as_ref(),
            KIND,
            baseline.as_ref(),
            baseline.status.as_ref(),
            &status,
        )
        .await?;
        // Peers' default flags can change without an event on this object: look again later.
        Ok(Action::requeue(Duration::from_secs(300)))
    })
    .await
}

/// Run the PatchBaseline controller; a report names the baseline it was evaluated with.
pub async fn run(ctx: Arc<Context>) {
    let (store, trigger) = ctx
        .stores
        .controller_watch::<PatchBaseline>(&ctx.client, "PatchBaseline/patchbaseline");
    let reports = ctx
        .stores
        .watch_objects::<NodePatchReport>(&ctx.client, "NodePatchReport/patchbaseline");
    let controller =
        Controller::for_stream(trigger, store).watches_stream(reports, |r: NodePatchReport| {
            r.status
                .and_then(|s| s.baseline)
                .map(|b| ObjectRef::<PatchBaseline>::new(&b.name))
        });
    harness::drive(KIND, controller.run(reconcile, harness::error_policy, ctx)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{BaselineRef, NodePatchReportStatus, OperatingSystem, PatchBaselineSpec};
    use serde_json::json;

    fn baseline(name: &str, os: OperatingSystem, default: bool) -> PatchBaseline {
        let mut spec: PatchBaselineSpec = serde_json::from_value(json!({
            "operatingSystem": os.as_str(),
            "approvalRules": [{"filters": [{"key": "Priority", "values": ["Required"]}]}]
        }))
        .expect("spec");
        spec.default = default;
        let mut b = PatchBaseline::new(name, spec);
        b.metadata.generation = Some(1);
        b
    }

    fn report(node: &str, baseline: &str, compliance: Compliance) -> NodePatchReport {
        let mut r = NodePatchReport::new(node, Default::default());
        r.status = Some(NodePatchReportStatus {
            baseline: Some(BaselineRef {
                name: baseline.into(),
                hash: "h".into(),
            }),
            compliance,
            ..Default::default()
        });
        r
    }

    #[test]
    fn counts_nodes_evaluated_with_this_baseline() {
        let b = baseline("u", OperatingSystem::Ubuntu, true);
        let reports = [
            report("n1", "u", Compliance::Compliant),
            report("n2", "u", Compliance::NonCompliant),
            report("n3", "other", Compliance::NonCompliant),
        ];
        let s = plan_baseline_status(&b, [&b], reports.iter(), Timestamp::UNIX_EPOCH);
        assert_eq!(
            (s.nodes.total, s.nodes.compliant, s.nodes.non_compliant),
            (2, 1, 1)
        );
        assert_eq!(s.rules, 1);
        assert!(s.hash.is_some());
        assert!(conditions::is_true(&s.conditions, conditions::READY));
        assert!(!conditions::is_true(&s.conditions, conditions::STALLED));
        assert!(!conditions::is_true(&s.conditions, conditions::RECONCILING));
        assert!(
            conditions::find(&s.conditions, conditions::STALLED)
                .is_some_and(|c| c.observed_generation == Some(1)),
            "Stalled is written, False, for the current generation"
        );
    }

    #[test]
    fn two_defaults_for_one_os_are_both_not_ready() {
        let a = baseline("a", OperatingSystem::Debian, true);
        let b = baseline("b", OperatingSystem::Debian, true);
        for (me, peers) in [(&a, [&a, &b]), (&b, [&a, &b])] {
            let s = plan_baseline_status(me, peers, [], Timestamp::UNIX_EPOCH);
            let ready = conditions::find(&s.conditions, conditions::READY).expect("ready");
            assert_eq!(
                (ready.status.as_str(), ready.reason.as_str()),
                ("False", "DuplicateDefault")
            );
            let stalled = conditions::find(&s.conditions, conditions::STALLED).expect("stalled");
            assert_eq!(
                (stalled.status.as_str(), stalled.reason.as_str()),
                ("True", "DuplicateDefault"),
                "kstatus reads it Failed until one default is unmarked"
            );
        }
    }
}
